/*
 * drr.h — per-class FIFO queues served by deficit round robin (DRR,
 * Shreedhar & Varghese), for requests waiting for an inflight slot.
 *
 * Every request costs one unit, so DRR gives each backlogged class a share
 * of grants proportional to its weight (anon 1, authed 5, internal 10 by
 * default), and a class with nothing waiting gives its turn away at once.
 * Within a class, first come first served. Nodes are embedded in the
 * waiting request (no allocation), and any node can leave in O(1) — a
 * client that hangs up while queued.
 *
 * One instance per worker loop, used on that loop's thread only. Pure.
 */
#ifndef CORE_DRR_H
#define CORE_DRR_H

#include <stdbool.h>
#include <stdint.h>

#define DRR_CLASSES 3 /* anon, authed, internal (auth/policy.h's order) */

struct drr_node {
    struct drr_node *prev, *next;
    uint64_t deadline_ms; /* loop time at which the wait ends */
    uint64_t since_ns;    /* when it was queued, for admission_wait_seconds */
    int klass;
    bool queued;
};

struct drr {
    struct drr_node *first[DRR_CLASSES], *last[DRR_CLASSES];
    unsigned n[DRR_CLASSES];
    unsigned total;
    unsigned weight[DRR_CLASSES];
    unsigned deficit[DRR_CLASSES];
    int cur;
};

/* Weights are at least 1. */
void drr_init(struct drr *d, const unsigned weight[DRR_CLASSES]);
void drr_set_weights(struct drr *d, const unsigned weight[DRR_CLASSES]);

void drr_push(struct drr *d, struct drr_node *x, int klass);
/* x leaves its queue (no-op when it is not queued). */
void drr_remove(struct drr *d, struct drr_node *x);
/* The next node by DRR, removed; NULL when nothing waits. */
struct drr_node *drr_pop(struct drr *d);
/* The head of a class's queue (the longest waiting), or NULL. */
static inline struct drr_node *drr_head(const struct drr *d, int klass)
{
    return d->first[klass];
}

#endif
