/*
 * hedge.h — hedged reads: when an idempotent read's first attempt is slow,
 * a twin attempt is started and the first good answer wins (DESIGN §6).
 * The delay follows the hop's live p95 on this worker, never below the
 * configured hedge_after; twins draw on the retry budget (retry.h).
 */
#ifndef DS_HEDGE_H
#define DS_HEDGE_H

#include <stdint.h>

#include "ds/stats.h"

struct ds_call;

/* Hedges need this many samples of a hop before its p95 is trusted. */
#define HEDGE_MIN_SAMPLES 20

/* The p95 of a latency histogram (counts per stats_le bucket, +Inf last),
 * in ms: the upper bound of the bucket holding it (coarse, and cheap). 0
 * with fewer than HEDGE_MIN_SAMPLES samples; at most the largest finite
 * bound (1 s), also when the p95 falls in +Inf. Pure. */
uint64_t hedge_live_p95_ms(const uint64_t counts[STATS_BUCKETS]);

/* How long a first attempt may run before its twin starts: the live p95
 * of counts, floored at hedge_after_ms (which stands alone while the p95 is
 * unknown). Pure. */
uint64_t hedge_delay_ms(const uint64_t counts[STATS_BUCKETS], uint64_t hedge_after_ms);

/* Plan c's hedge (first attempt of an idempotent read, hedging on): set
 * c->hedge_at_ms from this worker's histogram of c's hop. */
void hedge_arm(struct ds_call *c, uint64_t hedge_after_ms);

/* c's hedge time came with its attempt still out: start the twin, if the
 * budget has a token and memory allows (else c simply goes on alone). */
void hedge_start(struct ds_call *c);

/* c finished by its own attempt while its twin is out: the hedge lost and
 * is cancelled. */
void hedge_lost(struct ds_call *c);

#endif
