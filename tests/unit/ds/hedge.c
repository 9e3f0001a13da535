/*
 * hedge.c — the hedge delay (src/ds/hedge.c): the live p95 read from a
 * latency histogram, floored at hedge_after and capped by the largest
 * finite bucket.
 */
#include <criterion/criterion.h>

#include "ds/hedge.h"

TestSuite(ds_hedge);

/* Bucket indexes of stats_le: 1, 2.5, 5, 10, 25, 50, 100, 250, 1000 ms, +Inf. */
#define B_1MS   0
#define B_2_5MS 1
#define B_10MS  3
#define B_100MS 6
#define B_1S    8
#define B_INF   9

Test(ds_hedge, too_few_samples_use_hedge_after)
{
    uint64_t h[STATS_BUCKETS] = {0};
    cr_assert_eq(hedge_live_p95_ms(h), 0);
    cr_assert_eq(hedge_delay_ms(h, 30), 30);
    h[B_1S] = HEDGE_MIN_SAMPLES - 1;
    cr_assert_eq(hedge_live_p95_ms(h), 0, "19 samples are not trusted");
    cr_assert_eq(hedge_delay_ms(h, 30), 30);
    h[B_1S]++;
    cr_assert_eq(hedge_live_p95_ms(h), 1000, "20 are");
}

Test(ds_hedge, p95_is_the_bucket_bound)
{
    uint64_t h[STATS_BUCKETS] = {0};
    h[B_10MS] = 100;
    cr_assert_eq(hedge_live_p95_ms(h), 10);
    cr_assert_eq(hedge_delay_ms(h, 5), 10, "the live p95 when above hedge_after");
    /* 95 fast and 5 slow: the 95th sample is still fast. */
    memset(h, 0, sizeof(h));
    h[B_1MS] = 95;
    h[B_1S] = 5;
    cr_assert_eq(hedge_live_p95_ms(h), 1);
    /* One more slow one moves the p95 into the slow bucket. */
    h[B_1MS] = 94;
    h[B_100MS] = 6;
    h[B_1S] = 0;
    cr_assert_eq(hedge_live_p95_ms(h), 100);
    /* Fractional bounds round to the nearest ms. */
    memset(h, 0, sizeof(h));
    h[B_2_5MS] = 50;
    cr_assert_eq(hedge_live_p95_ms(h), 3);
}

Test(ds_hedge, floor_is_hedge_after)
{
    uint64_t h[STATS_BUCKETS] = {0};
    h[B_1MS] = 1000;
    cr_assert_eq(hedge_delay_ms(h, 50), 50, "a fast hop never hedges sooner than configured");
    cr_assert_eq(hedge_delay_ms(h, 1), 1);
}

Test(ds_hedge, ceiling_is_the_largest_finite_bucket)
{
    uint64_t h[STATS_BUCKETS] = {0};
    h[B_INF] = 1000;
    cr_assert_eq(hedge_live_p95_ms(h), 1000, "a p95 beyond 1 s reads as 1 s");
    cr_assert_eq(hedge_delay_ms(h, 200), 1000);
    cr_assert_eq(hedge_delay_ms(h, 5000), 5000, "hedge_after above the ceiling still rules");
}
