/*
 * gcra.c — the token bucket of gcra.h.
 */
#include "admit/gcra.h"

struct gcra_rate gcra_rate_make(int64_t millirps, int64_t burst)
{
    struct gcra_rate r = {0};
    if (millirps <= 0)
        return r;
    if (burst < 1)
        burst = 1;
    /* 1e12 / millirps: the interval in ns (a rate of 1/1000 s⁻¹ is 1e12 ns). */
    r.interval_ns = 1000000000000ull / (uint64_t)millirps;
    if (r.interval_ns == 0)
        r.interval_ns = 1;
    r.tau_ns = r.interval_ns * (uint64_t)(burst - 1);
    r.burst = (uint64_t)burst;
    return r;
}

struct gcra_verdict gcra_take(struct gcra *b, const struct gcra_rate *r, uint64_t now)
{
    struct gcra_verdict v = {.ok = true, .remaining = r->burst};
    if (gcra_off(r))
        return v;
    uint64_t tat = atomic_load_explicit(&b->tat, memory_order_relaxed);
    for (;;) {
        uint64_t base = tat > now ? tat : now;
        if (base - now > r->tau_ns) {
            v.ok = false;
            v.remaining = 0;
            v.wait_ns = base - now - r->tau_ns;
            return v;
        }
        uint64_t next = base + r->interval_ns;
        if (atomic_compare_exchange_weak_explicit(&b->tat, &tat, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            uint64_t ahead = next - now; /* ≤ tau + interval */
            v.remaining = ahead > r->tau_ns ? 0 : (r->tau_ns - ahead) / r->interval_ns + 1;
            return v;
        }
    }
}

void gcra_clamp(struct gcra *b, const struct gcra_rate *r, uint64_t now)
{
    if (gcra_off(r))
        return;
    uint64_t empty = now + r->tau_ns + r->interval_ns;
    uint64_t tat = atomic_load_explicit(&b->tat, memory_order_relaxed);
    while (tat > empty && !atomic_compare_exchange_weak_explicit(
                              &b->tat, &tat, empty, memory_order_relaxed, memory_order_relaxed))
        ;
}
