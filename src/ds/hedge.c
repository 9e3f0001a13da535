/*
 * hedge.c — hedge delay from the live p95, and the twin attempt (hedge.h).
 *
 * A twin is a call of its own (coalescing off, is_hedge set, so it never
 * hedges in turn) whose callback is on_twin with the parent as argument.
 * Whichever answers well first finishes the parent; the other is
 * cancelled and counted as the hedge's outcome.
 */
#include "ds/hedge.h"

#include "ds/call.h"
#include "ops/metrics.h"

uint64_t hedge_live_p95_ms(const uint64_t counts[STATS_BUCKETS])
{
    uint64_t total = 0, cum = 0;
    for (int b = 0; b < STATS_BUCKETS; b++)
        total += counts[b];
    if (total < HEDGE_MIN_SAMPLES)
        return 0; /* too few samples: rely on hedge_after alone */
    for (int b = 0; b < STATS_BUCKETS - 1; b++) {
        cum += counts[b];
        if (cum * 100 >= total * 95)
            return (uint64_t)(stats_le[b] * 1000.0 + 0.5);
    }
    return (uint64_t)(stats_le[STATS_BUCKETS - 2] * 1000.0);
}

uint64_t hedge_delay_ms(const uint64_t counts[STATS_BUCKETS], uint64_t hedge_after_ms)
{
    uint64_t p95 = hedge_live_p95_ms(counts);
    return p95 > hedge_after_ms ? p95 : hedge_after_ms;
}

void hedge_arm(struct ds_call *c, uint64_t hedge_after_ms)
{
    const uint64_t *counts = stats_of(c->dw)->lat[c->req.svc][stats_op_index(c->req.op.kind)];
    c->hedge_at_ms = uv_now(c->dw->loop) + hedge_delay_ms(counts, hedge_after_ms);
}

/* The twin answered. A good answer wins for the parent; a failed one is
 * dropped and the parent's own attempt goes on. */
static void on_twin(void *arg, struct ds_resp *r)
{
    struct ds_call *parent = arg;
    parent->twin = NULL;
    if (parent->finished || r->code == 0 || r->code >= 500)
        return;
    SHARD_ADD(stats_of(parent->dw)->hedged[parent->req.svc][0], 1);
    ds__attempt_abort(parent);
    struct ds_resp won = *r;
    if (won.owner) /* the twin's finish drops its own reference afterwards */
        ((struct ds_owner *)won.owner)->refs++;
    ds__finish(parent, &won);
}

void hedge_start(struct ds_call *c)
{
    if (!retry_budget_take(&retry_budget[c->req.svc]))
        return; /* hedges share the retry budget */
    /* r's strings are c's copy: the twin copies them again. */
    struct ds_req r = c->req;
    r.coalesce = false;
    struct ds_call *t = ds__call_new(c->dw, &r, on_twin, c);
    if (t == NULL)
        return;
    t->is_hedge = true;
    /* Another endpoint than the attempt it backs up (remote sets). */
    t->ep_tried = c->ep_tried;
    t->ep_last = c->ep_last;
    c->twin = t;
    ds__attempt(t);
}

void hedge_lost(struct ds_call *c)
{
    struct ds_call *t = c->twin;
    c->twin = NULL;
    SHARD_ADD(stats_of(c->dw)->hedged[c->req.svc][1], 1);
    ds_cancel(t);
}
