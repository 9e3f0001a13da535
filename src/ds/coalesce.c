/*
 * coalesce.c — the per-worker coalescing table (coalesce.h).
 */
#include "ds/coalesce.h"

#include <string.h>

bool coalesce_same(const struct ds_req *a, const struct ds_req *b)
{
    const struct proto_op *x = &a->op, *y = &b->op;
    return a->svc == b->svc && x->kind == PROTO_GET && y->kind == PROTO_GET && x->app == y->app &&
           memcmp(&x->obj, &y->obj, sizeof(x->obj)) == 0 && x->has_off == y->has_off &&
           x->has_len == y->has_len && (!x->has_off || x->off == y->off) &&
           (!x->has_len || x->len == y->len);
}

struct ds_call *coalesce_find(const struct ds_worker *dw, const struct ds_req *req)
{
    for (struct ds_call *l = dw->coalesce_head; l; l = l->cnext)
        if (!l->finished && coalesce_same(&l->req, req))
            return l;
    return NULL;
}

void coalesce_join(struct ds_call *l, struct ds_call *f)
{
    f->leader = l;
    f->next_follower = l->followers;
    l->followers = f;
}

void coalesce_lead(struct ds_worker *dw, struct ds_call *c)
{
    c->cnext = dw->coalesce_head;
    dw->coalesce_head = c;
}

void coalesce_leave(struct ds_worker *dw, struct ds_call *c)
{
    if (dw)
        for (struct ds_call **pp = &dw->coalesce_head; *pp; pp = &(*pp)->cnext)
            if (*pp == c) {
                *pp = c->cnext;
                c->cnext = NULL;
                break;
            }
    if (c->leader) { /* a follower finishing on its own (deadline, cancel) */
        for (struct ds_call **pp = &c->leader->followers; *pp; pp = &(*pp)->next_follower)
            if (*pp == c) {
                *pp = c->next_follower;
                break;
            }
        c->leader = NULL;
    }
}

struct ds_call *coalesce_take_followers(struct ds_call *l)
{
    struct ds_call *f = l->followers;
    l->followers = NULL;
    for (struct ds_call *x = f; x; x = x->next_follower)
        x->leader = NULL;
    return f;
}
