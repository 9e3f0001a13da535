/*
 * call.c — the downstream call lifecycle (call.h): admission under the
 * per-downstream concurrency limit, attempts on the service's backend,
 * deadline, retries and hedge timing on one timer per call, and delivery of
 * the answer to the caller and to the calls coalesced on it.
 *
 * The policies live beside it: retry.c (which failures are retried, the
 * backoff, the budget), hedge.c (when a twin starts), coalesce.c (who
 * shares an answer), stream.c (answers delivered in chunks), stats.c (what
 * is counted).
 */
#include "ds/call.h"

#include <stdlib.h>
#include <string.h>

#include "ds/coalesce.h"
#include "ds/hedge.h"
#include "ds/stats.h"
#include "engines/proto/proto.h"
#include "ops/metrics.h"

const struct ds_backend *ds__backends[DS__COUNT];
atomic_long ds__inflight[DS__COUNT];

/* ---- responses ---------------------------------------------------------- */

void ds__owner_release(void *p)
{
    struct ds_owner *o = p;
    if (o && --o->refs == 0) {
        if (o->release)
            o->release(o->p);
        free(o);
    }
}

struct ds_resp *ds_resp_keep(const struct ds_resp *resp)
{
    struct ds_resp *k = malloc(sizeof(*k));
    if (k == NULL)
        return NULL;
    *k = *resp;
    if (k->owner)
        ((struct ds_owner *)k->owner)->refs++;
    return k;
}

void ds_resp_free(struct ds_resp *resp)
{
    if (resp == NULL)
        return;
    if (resp->release)
        resp->release(resp->owner);
    free(resp);
}

/* ---- memory ------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    struct ds_call *c = h->data;
    free(c->body_copy);
    free(c->wire_hdr);
    free(c);
}

void ds__call_free(struct ds_call *c)
{
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

struct ds_call *ds__call_new(struct ds_worker *dw, const struct ds_req *req, ds_cb cb, void *arg)
{
    /* The op's strings live in the call's own block, so a caller may
     * rebuild its request at once, and a retry or a hedge (which copies
     * c->req again) never reads the caller's memory. */
    struct ds_call *c = malloc(sizeof(*c) + proto_op_copy_size(&req->op));
    if (c == NULL)
        return NULL;
    memset(c, 0, sizeof(*c));
    c->dw = dw;
    c->req = *req;
    proto_op_copy(&c->req.op, &req->op, c->op_mem);
    c->cb = cb;
    c->arg = arg;
    c->t0_ns = uv_hrtime();
    if (req->corr_id) {
        size_t cl = strnlen(req->corr_id, sizeof(c->corr_id) - 1);
        memcpy(c->corr_id, req->corr_id, cl);
        c->corr_id[cl] = '\0';
    }
    c->req.corr_id = c->corr_id;
    /* The body is copied so that a cancelled call never leaves a backend
     * writing from the caller's freed memory; bodies are bounded by the
     * body cap. */
    if (req->body_len) {
        c->body_copy = malloc(req->body_len);
        if (c->body_copy == NULL)
            goto fail;
        memcpy(c->body_copy, req->body, req->body_len);
        c->req.body = c->body_copy;
    }
    /* The timer last: once it is initialised the loop knows it, and c may
     * only be freed by its close callback (ds__call_free). */
    uv_timer_init(dw->loop, &c->timer);
    c->timer.data = c;
    return c;
fail:
    free(c);
    return NULL;
}

/* ---- timer -------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

void ds__call_timer_start(struct ds_call *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* The timer runs to the earliest of the deadline, the end of a backoff and
 * the hedge time. */
static void arm(struct ds_call *c)
{
    uint64_t now = uv_now(c->dw->loop);
    uint64_t due = c->req.deadline_ms;
    if (c->backoff_until_ms && c->backoff_until_ms < due)
        due = c->backoff_until_ms;
    if (c->hedge_at_ms && c->hedge_at_ms < due)
        due = c->hedge_at_ms;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct ds_call *c = t->data;
    uint64_t now = uv_now(c->dw->loop);
    if (c->send_failed) {
        struct ds_resp r = {.code = 0, .err = c->send_err};
        c->send_failed = false;
        ds__attempt_done(c, &r);
        return;
    }
    if (c->shed) {
        ds__fail(c, OG_E_BUSY);
        return;
    }
    if (c->stream && c->head_done) { /* armed only while the producer owes us */
        ds__fail(c, OG_E_DOWNSTREAM_TIMEOUT);
        return;
    }
    if (now >= c->req.deadline_ms) {
        ds__fail(c, OG_E_DOWNSTREAM_TIMEOUT);
        return;
    }
    if (c->backoff_until_ms && now >= c->backoff_until_ms) {
        ds__attempt(c);
        return;
    }
    if (c->hedge_at_ms && now >= c->hedge_at_ms) {
        c->hedge_at_ms = 0;
        if (c->in_attempt && !c->twin)
            hedge_start(c);
    }
    arm(c);
}

/* ---- attempts ----------------------------------------------------------- */

bool ds__admit(struct ds_call *c)
{
    enum ds_service svc = c->req.svc;
    retry_budget_deposit(&retry_budget[svc], (int)ds__cfg(c->dw)->ds_retry_budget_pct);
    long n = atomic_fetch_add(&ds__inflight[svc], 1) + 1;
    c->counted = true;
    if (n > ds__cfg(c->dw)->ds_concurrency[svc]) {
        atomic_fetch_sub(&ds__inflight[svc], 1);
        c->counted = false;
        c->shed = true;
        uv_timer_start(&c->timer, on_timer, 0, 0);
        return false;
    }
    return true;
}

void ds__attempt(struct ds_call *c)
{
    c->backoff_until_ms = 0;
    c->attempts++;
    c->in_attempt = true;
    uint64_t hedge_ms = (uint64_t)ds__cfg(c->dw)->ds_hedge_after_ms;
    if (hedge_ms && c->req.idempotent && !c->is_hedge && c->attempts == 1)
        hedge_arm(c, hedge_ms);
    int e = ds__backends[c->req.svc]->send(c);
    if (e != 0) {
        c->in_attempt = false;
        /* The failure is taken up by the timer on a later turn, since this
         * may run inside ds_call() and the callback must never (ds.h). */
        c->send_failed = true;
        c->send_err = e == DS_SEND_NOMEM  ? OG_E_INTERNAL
                      : e == DS_SEND_BUSY ? OG_E_BUSY
                                          : OG_E_BAD_GATEWAY;
        uv_timer_start(&c->timer, on_timer, 0, 0);
        return;
    }
    arm(c);
}

void ds__attempt_abort(struct ds_call *c)
{
    if (c->in_attempt) {
        ds__backends[c->req.svc]->abort(c);
        c->in_attempt = false;
    }
}

/* A storage read that missed (404) on one endpoint of a set is tried on
 * an endpoint it has not tried, before the caller sees 404: objects are
 * content-addressed, so any node may hold one. Streams too (their 404 is a
 * whole answer, before any head). Bounded by the set's size; outside the
 * retry budget, since a miss is an answer, not a failure. */
static bool fall_through(const struct ds_call *c, const struct ds_resp *resp)
{
    const struct ds_backend *b = ds__backends[c->req.svc];
    /* attempts: a bound whatever the backend says (a set has at most 16). */
    return resp->code == 404 && c->req.svc == DS_STORAGE && c->attempts < 16 &&
           (c->req.op.kind == PROTO_GET || c->req.op.kind == PROTO_HAS) && b->untried &&
           b->untried(c) && uv_now(c->dw->loop) < c->req.deadline_ms;
}

void ds__attempt_done(struct ds_call *c, struct ds_resp *resp)
{
    c->in_attempt = false;
    const struct og_config *cfg = ds__cfg(c->dw);
    uint64_t now = uv_now(c->dw->loop);
    if (fall_through(c, resp)) {
        if (resp->release)
            resp->release(resp->owner);
        ds__attempt(c);
        return;
    }
    if (c->req.idempotent && retry_is_transient(resp) && c->attempts <= cfg->ds_retry_max &&
        now < c->req.deadline_ms) {
        uint64_t wait = retry_backoff_ms(c->attempts, &c->dw->rng);
        if (now + wait < c->req.deadline_ms && retry_budget_take(&retry_budget[c->req.svc])) {
            if (resp->release)
                resp->release(resp->owner);
            SHARD_ADD(stats_of(c->dw)->retries[c->req.svc], 1);
            c->backoff_until_ms = now + wait;
            arm(c);
            return;
        }
    }
    ds__finish(c, resp);
}

/* ---- the end ------------------------------------------------------------ */

void ds__call_release(struct ds_call *c)
{
    c->finished = true;
    uv_timer_stop(&c->timer);
    ds__attempt_abort(c);
    if (c->counted) {
        atomic_fetch_sub(&ds__inflight[c->req.svc], 1);
        c->counted = false;
    }
}

void ds__finish(struct ds_call *c, struct ds_resp *resp)
{
    if (c->finished)
        return;
    if (c->stream) {
        ds__stream_finish(c, resp);
        return;
    }
    c->finished = true;
    if (c->twin) /* our own attempt answered first */
        hedge_lost(c);
    ds__call_release(c);
    coalesce_leave(c->dw, c);
    /* The owner is wrapped so that every receiver can keep it
     * independently (ds_resp_keep). */
    struct ds_owner *o = NULL;
    if (resp->owner || resp->release) {
        o = malloc(sizeof(*o));
        if (o == NULL) { /* cannot share: deliver a failure instead */
            if (resp->release)
                resp->release(resp->owner);
            *resp = (struct ds_resp){.code = 0, .err = OG_E_INTERNAL};
        } else {
            *o = (struct ds_owner){1, resp->owner, resp->release};
            resp->owner = o;
            resp->release = ds__owner_release;
        }
    }
    resp->latency_ms = (double)(uv_hrtime() - c->t0_ns) / 1e6;
    resp->attempts = c->attempts;
    stats_observe(c, resp);
    struct ds_call *f = coalesce_take_followers(c), *next;
    if (!c->cancelled && c->cb)
        c->cb(c->arg, resp);
    for (; f; f = next) {
        next = f->next_follower;
        if (f->finished) /* another callback of this answer cancelled it */
            continue;
        f->finished = true;
        uv_timer_stop(&f->timer);
        SHARD_ADD(stats_of(f->dw)->coalesced[f->req.svc], 1);
        if (!f->cancelled && f->cb) {
            struct ds_resp fr = *resp;
            fr.coalesced = true;
            fr.latency_ms = (double)(uv_hrtime() - f->t0_ns) / 1e6;
            f->cb(f->arg, &fr);
        }
        ds__call_free(f);
    }
    if (o)
        ds__owner_release(o);
    ds__call_free(c);
}

void ds__fail(struct ds_call *c, enum og_err e)
{
    struct ds_resp r = {.code = 0, .err = e};
    ds__finish(c, &r);
}

/* ---- the interface ------------------------------------------------------ */

struct ds_call *ds_call(struct ds_worker *dw, const struct ds_req *req, ds_cb cb, void *arg)
{
    struct ds_call *c = ds__call_new(dw, req, cb, arg);
    if (c == NULL)
        return NULL;

    /* Coalescing: an identical read in flight on this worker answers both. */
    bool coalesce = req->idempotent && req->coalesce;
    if (coalesce) {
        struct ds_call *l = coalesce_find(dw, &c->req);
        if (l) {
            coalesce_join(l, c);
            arm(c);
            return c;
        }
    }
    if (!ds__admit(c))
        return c;
    if (coalesce)
        coalesce_lead(dw, c);
    ds__attempt(c);
    return c;
}

void ds_cancel(struct ds_call *c)
{
    if (c == NULL || c->finished)
        return;
    c->cancelled = true;
    /* A lone call stops now; a leader keeps going for its followers. */
    if (c->followers == NULL)
        ds__fail(c, OG_E_DOWNSTREAM_TIMEOUT);
}
