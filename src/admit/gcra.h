/*
 * gcra.h — a token bucket in one atomic word (the generic cell rate
 * algorithm, GCRA), shared by every worker thread without a lock.
 *
 * A bucket of `burst` tokens refilled at `rate` per second is the same
 * thing as a theoretical arrival time (TAT): the instant the bucket would be
 * full again. A request at `now` conforms when TAT − now ≤ τ, where τ, the
 * burst tolerance, is (burst − 1) emission intervals; it then moves TAT one
 * interval on. So the whole state is TAT, one 64-bit atomic updated by a
 * compare-and-swap loop: exact under any interleaving (no token is lost or
 * minted by a race), and a bucket whose TAT ≤ now is indistinguishable from
 * a fresh one — which is what lets the tenant table (tenants.h) reuse idle
 * slots without resetting them.
 *
 * Times are CLOCK_MONOTONIC nanoseconds (uv_hrtime()), the same on every
 * thread. Pure: no I/O, the caller passes now.
 */
#ifndef ADMIT_GCRA_H
#define ADMIT_GCRA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* A rate: `interval_ns` between tokens, `tau_ns` burst tolerance. A zero
 * interval is "off": every request conforms. */
struct gcra_rate {
    uint64_t interval_ns;
    uint64_t tau_ns;
    uint64_t burst; /* tokens, for the RateLimit-Policy header */
};

struct gcra {
    _Atomic uint64_t tat;
};

/* The rate for millirps/1000 requests per second and a burst of `burst`
 * requests (≥ 1). millirps 0 gives the "off" rate. */
struct gcra_rate gcra_rate_make(int64_t millirps, int64_t burst);

static inline bool gcra_off(const struct gcra_rate *r)
{
    return r->interval_ns == 0;
}

/* What a decision tells the client: tokens left after it (RateLimit r=) and,
 * refused, nanoseconds until a request would conform (Retry-After). */
struct gcra_verdict {
    bool ok;
    uint64_t remaining;
    uint64_t wait_ns;
};

/* Take one token at `now` if the bucket has one. */
struct gcra_verdict gcra_take(struct gcra *b, const struct gcra_rate *r, uint64_t now);

/* After a change of rate (a reload): under one rate TAT never runs more
 * than τ + one interval ahead of now, so a TAT further ahead was set under
 * a slower rate and would refuse every request until that old debt ran out
 * (minutes, after 1/m was raised to 1000/s). Moves it back to now + τ + one
 * interval: an empty bucket under r. A take still racing under the old
 * rate may push it ahead again; the caller clamps once per change. */
void gcra_clamp(struct gcra *b, const struct gcra_rate *r, uint64_t now);

/* Seconds, rounded up and at least 1, for a Retry-After of wait_ns. */
static inline uint64_t gcra_wait_s(uint64_t wait_ns)
{
    uint64_t s = (wait_ns + 999999999u) / 1000000000u;
    return s ? s : 1;
}

#endif
