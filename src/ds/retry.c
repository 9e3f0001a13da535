/*
 * retry.c — retry budget, backoff and the per-worker PRNG (retry.h).
 */
#include "ds/retry.h"

#include <errno.h>
#include <sys/random.h>
#include <uv.h>

atomic_long retry_budget[DS__COUNT];

/* ---- PRNG --------------------------------------------------------------- */

void retry_rng_seed(struct retry_rng *r, uint64_t seed)
{
    if (seed == 0) {
        ssize_t n;
        do
            n = getrandom(&seed, sizeof(seed), GRND_NONBLOCK);
        while (n == -1 && errno == EINTR);
        if (n != (ssize_t)sizeof(seed)) /* entropy not ready yet: jitter needs none */
            seed = uv_hrtime() ^ (uint64_t)(uintptr_t)r;
    }
    r->s = seed;
}

uint64_t retry_rng_next(struct retry_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- budget ------------------------------------------------------------- */

bool retry_budget_take(atomic_long *b)
{
    long v = atomic_load(b);
    while (v >= RETRY_BUDGET_SCALE)
        if (atomic_compare_exchange_weak(b, &v, v - RETRY_BUDGET_SCALE))
            return true;
    return false;
}

void retry_budget_deposit(atomic_long *b, int pct)
{
    long add = (long)pct * RETRY_BUDGET_SCALE / 100;
    long v = atomic_fetch_add(b, add) + add;
    if (v > RETRY_BUDGET_CAP)
        atomic_fetch_sub(b, v - RETRY_BUDGET_CAP < add ? v - RETRY_BUDGET_CAP : add);
}

/* ---- backoff ------------------------------------------------------------ */

bool retry_is_transient(const struct ds_resp *r)
{
    return (r->code == 0 && r->err == OG_E_BAD_GATEWAY) || r->code == 502 || r->code == 503;
}

uint64_t retry_backoff_ms(int attempts, struct retry_rng *r)
{
    /* retry_max is at most 5 (config); the clamp only keeps the shift
     * defined for any caller. */
    int shift = attempts < 1 ? 0 : attempts > 20 ? 19 : attempts - 1;
    uint64_t cap = (uint64_t)RETRY_BACKOFF_BASE_MS << shift;
    return cap / 2 + retry_rng_next(r) % (cap / 2 + 1);
}
