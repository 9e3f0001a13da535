/*
 * balance.h — endpoint sets of a remote service (DESIGN §2): which endpoint
 * an attempt goes to, and which endpoints are out.
 *
 * A service may name several endpoints that serve the same data. The state
 * of each is process-wide (every worker's pools reach the same nodes, and
 * an ejection decided on one worker holds for all) and made of atomics, so
 * no lock is taken on the request path:
 *   - outstanding: attempts on it now, all workers;
 *   - passive outlier ejection: eject_after consecutive failures or
 *     timeouts eject it for eject_base × (ejections in a row), capped at
 *     eject_max (Envoy's outlier detection); never more than
 *     eject_max_percent of the set at once (at least one of two or more,
 *     never all); the count in a row falls by one for each ejection length
 *     spent back in service;
 *   - active health: an OAP/1 HELLO probe on an interval (remote.c) sets
 *     probe_ok.
 * An endpoint is usable while probe_ok and not ejected. bal_pick() takes
 * the less loaded of two random usable candidates (power of two choices):
 * the lower cost, (outstanding + 1) × (its latency EWMA + 1 µs), Finagle's
 * "peak EWMA" load, so an endpoint that is slow but idle does not win a
 * tie against a fast idle one; the EWMA halves for every BAL_EWMA_HALF_MS
 * without a sample, so an avoided endpoint is tried again. It prefers
 * endpoints the call has not tried yet, so retries, hedges and
 * 404 fall-throughs go to another endpoint than the attempt they back up.
 * When no endpoint is usable, reachable ones are used anyway (Envoy's
 * panic mode): a wrong health verdict then costs latency, not every call.
 */
#ifndef DS_BALANCE_H
#define DS_BALANCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define BAL_ENDPOINTS_MAX 16 /* OAPNET_ADDR_LIST_MAX */
#define BAL_NAME_MAX      64
#define BAL_EWMA_HALF_MS  1000 /* latency memory of an endpoint that gets no samples */

/* One endpoint; every field may be read and written by any thread.
 * NEEDSWORK: every remote attempt writes outstanding (twice), one of the
 * attempt counters and the EWMA on this shared line; on many cores the
 * counters belong in per-worker shards (ds/stats.h), and outstanding could
 * be a per-worker estimate. Measured on 2 cores only. */
struct bal_ep {
    atomic_long outstanding;
    atomic_uint_least64_t ewma_us, ewma_at_ms; /* attempt latency, and when last sampled */
    atomic_int consec_fail;
    atomic_uint_least64_t ejected_until_ms; /* loop time (uv_now); ≤ now: not ejected */
    atomic_uint_least64_t decay_at_ms;      /* when `ejections` falls by one */
    atomic_uint ejections;                  /* in a row: the next ejection's multiplier */
    atomic_bool probe_ok;                   /* last HELLO probe succeeded */
    atomic_ulong ejections_total, attempts_ok, attempts_failed;
    char name[BAL_NAME_MAX]; /* the address as configured: the metric label */
};

/* A service's set: n endpoints, fixed after start-up. */
struct bal_set {
    int n;
    atomic_flag ejecting; /* one ejection decision at a time (max share) */
    struct bal_ep ep[BAL_ENDPOINTS_MAX];
};

/* Ejection settings (config rows eject_*). */
struct bal_policy {
    int eject_after; /* 0: never eject */
    uint64_t eject_base_ms, eject_max_ms;
    int eject_max_pct;
};

/* Outcome of one attempt on an endpoint. */
enum bal_outcome {
    BAL_OK,      /* an answer (any status below 500) */
    BAL_FAILED,  /* transport failure, or a 5xx answer */
    BAL_NEUTRAL, /* abandoned before an answer for a reason of the caller's */
};

/* bal_pick results besides an index. */
#define BAL_NONE (-1) /* no endpoint reachable */
#define BAL_FULL (-2) /* every reachable endpoint is at its concurrency share */

/* Reset s to n endpoints (≤ BAL_ENDPOINTS_MAX), named names[i]. probe_ok
 * starts false (no endpoint is called healthy before its first probe);
 * bal_pick's panic mode serves calls until then. */
void bal_set_init(struct bal_set *s, int n, const char (*names)[BAL_NAME_MAX]);

/* Whether endpoint e takes calls at now (probe_ok and not ejected). */
bool bal_usable(const struct bal_ep *e, uint64_t now);

/*
 * The endpoint for an attempt. reach: endpoints the caller can send to now
 * (its pools have a connection up or coming); tried: those the call already
 * used; last: the index of its latest attempt, or -1; cap: an endpoint's
 * share of the service's concurrency (attempts on it, all workers); rnd:
 * any random value. Preference, first non-empty tier wins:
 *   usable and untried; usable and not `last`; usable; then (panic) any
 *   reachable untried; any reachable.
 * Within a tier, endpoints at cap are skipped; of the rest, two distinct
 * ones are drawn and the one of lower bal_cost() wins (the first drawn on
 * a tie). Returns the index, BAL_FULL when reachable
 * endpoints exist but all are at cap, or BAL_NONE.
 */
int bal_pick(const struct bal_set *s, uint64_t now, uint32_t reach, uint32_t tried, int last,
             long cap, uint64_t rnd);

/* Whether bal_pick would give a call that tried `tried` an endpoint it
 * has not tried: an untried usable one, or, when none is usable (panic
 * mode), an untried reachable one. What a 404 fall-through asks. */
bool bal_untried(const struct bal_set *s, uint64_t now, uint32_t reach, uint32_t tried);

/* Endpoint e's load at now: (outstanding + 1) × (decayed EWMA µs + 1). */
uint64_t bal_cost(const struct bal_ep *e, uint64_t now);

/* A request on e was answered (or given up with its connection) after us,
 * whether its call still wanted it or not. EWMA with weight 1/4, over the
 * decayed value; lossy under races (samples, not counts). */
void bal_observe(struct bal_ep *e, uint64_t us, uint64_t now);

/* An endpoint's share of a service concurrency limit: twice its even
 * share, so that losing half the set keeps the whole limit; no cap for a
 * set of one. */
long bal_cap(long concurrency, int n);

/* How long the k-th ejection in a row lasts (k ≥ 1): base × k, capped. */
uint64_t bal_eject_ms(unsigned k, uint64_t base_ms, uint64_t max_ms);

/*
 * Count the outcome of an attempt on endpoint i at now. A failure that
 * makes eject_after in a row ejects i, unless the max share is reached or
 * another thread is deciding an ejection (the next failure tries again).
 * Returns true when this call ejected i.
 */
bool bal_report(struct bal_set *s, int i, enum bal_outcome o, uint64_t now,
                const struct bal_policy *p);

/* Periodic upkeep at now (the prober's tick): the count of ejections in a
 * row decays for endpoints back in service. */
void bal_tick(struct bal_set *s, uint64_t now, const struct bal_policy *p);

/* Endpoints of s ejected at now. */
int bal_ejected(const struct bal_set *s, uint64_t now);

#endif
