/*
 * local.c — the micronode backend: the engines run in this process.
 *
 * A call is queued on its worker and served on a later loop turn (a zero
 * timer), exactly as a remote answer would arrive, so handlers see the same
 * ordering in both profiles. The engines lock internally only for a lookup or
 * an insert; stored objects come back as ref-counted blobs, so the answer
 * holds no lock while its bytes are used.
 */
#include <stdlib.h>
#include <string.h>

#include "ds/internal.h"
#include "engines/proto/proto.h"

struct local_worker {
    uv_timer_t tick;
    struct ds_call *head, *tail;
};

static void resp_release(void *p)
{
    struct proto_resp *rs = p;
    proto_resp_release(rs);
    free(rs);
}

/* Engines keep wall-clock times (message sent_ms is shown to clients). */
static uint64_t wall_ms(void)
{
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void on_tick(uv_timer_t *t)
{
    struct local_worker *lw = t->data;
    /* Serve what is queued now; calls queued by callbacks wait a turn. */
    struct ds_call *c = lw->head;
    lw->head = lw->tail = NULL;
    while (c) {
        struct ds_call *next = c->qnext;
        c->qnext = NULL;
        c->bstate = NULL;
        struct proto_resp *rs = malloc(sizeof(*rs));
        struct ds_resp r = {0};
        if (rs == NULL) {
            r.code = 0;
            r.err = OG_E_INTERNAL;
        } else {
            /* The deadline goes beside the header (not inside it) so the
             * engines' dispatcher can reuse the parse of identical requests. */
            uint64_t now = uv_now(&c->w->loop);
            struct proto_req rq = {.app = ds__app_id(c->req.svc),
                                   .hdr = c->req.hdr,
                                   .hdr_len = c->req.hdr_len,
                                   .body = c->req.body,
                                   .body_len = c->req.body_len,
                                   .now_ms = wall_ms(),
                                   .has_deadline = true,
                                   .deadline_ms = (int64_t)c->req.deadline_ms - (int64_t)now};
            proto_handle(ds_local_engines(), &rq, rs);
            r.code = rs->code;
            r.hdr = rs->hdr;
            r.hdr_len = rs->hdr_len;
            r.body = rs->body;
            r.body_len = rs->body_len;
            r.owner = rs;
            r.release = resp_release;
        }
        ds__attempt_done(c, &r);
        c = next;
    }
}

static int local_send(struct ds_call *c)
{
    struct local_worker *lw = c->w->ext[WORKER_EXT_LOCAL];
    c->qnext = NULL;
    c->bstate = lw;
    if (lw->tail)
        lw->tail->qnext = c;
    else
        lw->head = c;
    lw->tail = c;
    if (!uv_is_active((uv_handle_t *)&lw->tick))
        uv_timer_start(&lw->tick, on_tick, 0, 0);
    return 0;
}

static void local_abort(struct ds_call *c)
{
    struct local_worker *lw = c->bstate;
    if (lw == NULL)
        return;
    struct ds_call *prev = NULL;
    for (struct ds_call *x = lw->head; x; prev = x, x = x->qnext) {
        if (x != c)
            continue;
        if (prev)
            prev->qnext = x->qnext;
        else
            lw->head = x->qnext;
        if (lw->tail == x)
            lw->tail = prev;
        break;
    }
    c->bstate = NULL;
}

static void local_worker_init(struct worker *w, enum ds_service svc)
{
    if (w->ext[WORKER_EXT_LOCAL])
        return;
    struct local_worker *lw = xcalloc(1, sizeof(*lw));
    uv_timer_init(&w->loop, &lw->tick);
    lw->tick.data = lw;
    uv_unref((uv_handle_t *)&lw->tick);
    w->ext[WORKER_EXT_LOCAL] = lw;
}

static bool local_healthy(enum ds_service svc)
{
    return true;
}

const struct ds_backend ds__local_backend = {
    .name = "local",
    .send = local_send,
    .abort = local_abort,
    .worker_init = local_worker_init,
    .healthy = local_healthy,
};
