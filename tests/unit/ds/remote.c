/*
 * remote.c — pure pieces of the OAP/1 backend: the reconnect backoff
 * (ds/remote.c). Addresses: tests/unit/oapnet/addr.c.
 */
#include <criterion/criterion.h>

#include "ds/remote.h"

Test(ds_remote, backoff_doubles_to_cap)
{
    /* rnd = base/2 gives exactly base: 50, 100, ..., capped at 2000. */
    static const uint64_t want[] = {50, 100, 200, 400, 800, 1600, 2000, 2000, 2000};
    for (unsigned f = 0; f < sizeof(want) / sizeof(want[0]); f++)
        cr_assert_eq(remote_backoff_ms(f, (uint32_t)(want[f] / 2)), want[f], "failures %u", f);
    cr_assert_eq(remote_backoff_ms(1000, 1000), 2000, "huge failure counts do not overflow");
}

Test(ds_remote, backoff_jitter_bounds)
{
    uint64_t x = 0x9e3779b97f4a7c15ull, lo = UINT64_MAX, hi = 0;
    for (unsigned f = 0; f < 12; f++) {
        uint64_t base = f >= 6 ? REMOTE_BACKOFF_MAX_MS : (uint64_t)REMOTE_BACKOFF_MIN_MS << f;
        for (int i = 0; i < 2000; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t d = remote_backoff_ms(f, (uint32_t)x);
            cr_assert(d >= base / 2 && d <= base + base / 2, "failures %u: %llu", f,
                      (unsigned long long)d);
            if (f == 0) {
                lo = d < lo ? d : lo;
                hi = d > hi ? d : hi;
            }
        }
    }
    /* The jitter actually spreads: both ends of ±50 % are reached. */
    cr_assert_eq(remote_backoff_ms(0, 0), 25);
    cr_assert_eq(remote_backoff_ms(0, 50), 75);
    cr_assert(lo <= 30 && hi >= 70, "spread %llu..%llu", (unsigned long long)lo,
              (unsigned long long)hi);
    cr_assert_eq(remote_backoff_ms(20, UINT32_MAX), 2000 / 2 + UINT32_MAX % 2001);
}
