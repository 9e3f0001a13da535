/*
 * retry.h — the retry policy of idempotent reads: which answers are worth
 * another attempt, how long to wait before it (jittered exponential
 * backoff), and the per-downstream budget that retries and hedges draw on.
 * Pure: no loop, no worker; the caller passes the state in.
 */
#ifndef DS_RETRY_H
#define DS_RETRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ds/ds.h"

#define RETRY_BUDGET_SCALE    1000 /* milli-tokens */
#define RETRY_BUDGET_CAP      (20 * RETRY_BUDGET_SCALE)
#define RETRY_BACKOFF_BASE_MS 10

/* A small PRNG (splitmix64), one per worker: the jitter needs no quality
 * beyond spreading retries, and rand() shares hidden state (and a lock)
 * between threads. */
struct retry_rng {
    uint64_t s;
};

/* Seed r: from getrandom(2) when seed is 0 (falling back to the clock),
 * else from seed, which makes the sequence reproducible (tests). */
void retry_rng_seed(struct retry_rng *r, uint64_t seed);
/* The next 64 random bits of r. */
uint64_t retry_rng_next(struct retry_rng *r);

/*
 * Retry budget: one token bucket per downstream, shared by all workers (an
 * atomic), in milli-tokens. Every first attempt deposits pct/100 of a token
 * (capped at RETRY_BUDGET_CAP), and every retry or hedge must take a whole
 * token *before* it waits in backoff. So a retry waiting in backoff already
 * counts, and when a downstream is down the extra load it sees is bounded
 * by the percentage over any period — not by the share of requests in
 * flight at one instant, which lets every request retry at once after an
 * outage (a known weakness of concurrency-ratio budgets).
 */
extern atomic_long retry_budget[DS__COUNT]; /* shared by all workers */

/* Take one whole token from *b; returns whether there was one. */
bool retry_budget_take(atomic_long *b);
/* A first attempt deposits pct (0..100) percent of a token into *b. */
void retry_budget_deposit(atomic_long *b, int pct);

/* Whether an answer is a transient failure worth another attempt: a lost
 * connection or malformed answer, 502 or 503. */
bool retry_is_transient(const struct ds_resp *r);

/* The wait before the next attempt after `attempts` (>= 1) have failed:
 * uniformly 50–100 % of RETRY_BACKOFF_BASE_MS·2^(attempts-1), drawn from r. */
uint64_t retry_backoff_ms(int attempts, struct retry_rng *r);

#endif
