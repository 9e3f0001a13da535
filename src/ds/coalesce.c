/*
 * coalesce.c — the per-worker coalescing table (coalesce.h).
 */
#include "ds/coalesce.h"

#include <string.h>

struct ds_call *coalesce_find(const struct ds_worker *dw, enum ds_service svc, const char *hdr)
{
    for (struct ds_call *l = dw->coalesce_head; l; l = l->cnext)
        if (l->req.svc == svc && strcmp(l->hdr_copy, hdr) == 0 && !l->finished)
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
