/*
 * balance.c — endpoint sets (src/ds/balance.c): power-of-two-choices by
 * outstanding attempts, another endpoint for a retry or a hedge, outlier
 * ejection with a growing backoff and a max share, the panic mode.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "ds/balance.h"

#define ALL(n) ((1u << (n)) - 1)

static const struct bal_policy POL = {
    .eject_after = 3, .eject_base_ms = 1000, .eject_max_ms = 10000, .eject_max_pct = 50};

static void set_up(struct bal_set *s, int n)
{
    char names[BAL_ENDPOINTS_MAX][BAL_NAME_MAX];
    for (int i = 0; i < n; i++)
        snprintf(names[i], sizeof(names[i]), "oap://10.0.0.%d:7001", 11 + i);
    bal_set_init(s, n, (const char(*)[BAL_NAME_MAX])names);
    for (int i = 0; i < n; i++)
        atomic_store(&s->ep[i].probe_ok, true);
}

/* A small xorshift for draws. */
static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

Test(ds_balance, p2c_prefers_less_outstanding)
{
    struct bal_set s;
    uint64_t x = 88172645463325252ull;
    int hits[4] = {0};

    set_up(&s, 4);
    atomic_store(&s.ep[0].outstanding, 50);
    atomic_store(&s.ep[1].outstanding, 10);
    atomic_store(&s.ep[2].outstanding, 20);
    atomic_store(&s.ep[3].outstanding, 30);
    for (int k = 0; k < 12000; k++)
        hits[bal_pick(&s, 0, ALL(4), 0, -1, 1000, next(&x))]++;
    /* With two distinct draws out of 4, the most loaded never wins, the
     * least loaded wins whenever drawn (1/2 of the time), the others 1/3
     * and 1/6. */
    cr_assert_eq(hits[0], 0, "the most loaded of two is never taken");
    cr_assert(hits[1] > 5400 && hits[1] < 6600, "least loaded: %d", hits[1]);
    cr_assert(hits[2] > 3400 && hits[2] < 4600, "second: %d", hits[2]);
    cr_assert(hits[3] > 1500 && hits[3] < 2500, "third: %d", hits[3]);
}

Test(ds_balance, p2c_two_draws_are_distinct)
{
    struct bal_set s;
    set_up(&s, 2);
    atomic_store(&s.ep[0].outstanding, 5);
    /* Whatever the draw, of two endpoints both are compared: the idle one
     * always wins. */
    for (uint64_t r = 0; r < 1000; r++)
        cr_assert_eq(bal_pick(&s, 0, ALL(2), 0, -1, 1000, r * 2654435761u), 1);
}

Test(ds_balance, retry_and_hedge_go_elsewhere)
{
    struct bal_set s;
    uint64_t x = 1;
    set_up(&s, 3);
    for (int k = 0; k < 3000; k++) {
        int a = bal_pick(&s, 0, ALL(3), 0, -1, 1000, next(&x));
        int b = bal_pick(&s, 0, ALL(3), 1u << a, a, 1000, next(&x));
        cr_assert_neq(a, b, "a retry or hedge leaves endpoint %d", a);
        int c = bal_pick(&s, 0, ALL(3), 1u << a | 1u << b, b, 1000, next(&x));
        cr_assert(c != a && c != b, "the third attempt goes to the third endpoint");
        /* All tried: anything but the latest one. */
        int d = bal_pick(&s, 0, ALL(3), ALL(3), c, 1000, next(&x));
        cr_assert_neq(d, c);
    }
    /* A set of one: the same endpoint again rather than nothing. */
    set_up(&s, 1);
    cr_assert_eq(bal_pick(&s, 0, 1, 1, 0, 1000, 7), 0);
}

Test(ds_balance, unreachable_ejected_and_down_are_avoided)
{
    struct bal_set s;
    uint64_t x = 3;
    set_up(&s, 3);
    atomic_store(&s.ep[0].ejected_until_ms, 5000);
    atomic_store(&s.ep[1].probe_ok, false);
    for (int k = 0; k < 500; k++)
        cr_assert_eq(bal_pick(&s, 1000, ALL(3), 0, -1, 1000, next(&x)), 2);
    /* Even untried: a healthy endpoint already tried beats an unhealthy
     * one not tried yet. */
    cr_assert_eq(bal_pick(&s, 1000, ALL(3), 1u << 2, 2, 1000, next(&x)), 2);
    /* Unreachable from this worker: never picked. */
    cr_assert_eq(bal_pick(&s, 1000, 0x3, 0, -1, 1000, next(&x)) != 2, true);
    /* Once the ejection is over it is back. */
    int seen0 = 0;
    for (int k = 0; k < 500; k++)
        seen0 += bal_pick(&s, 6000, ALL(3), 0, -1, 1000, next(&x)) == 0;
    cr_assert(seen0 > 100, "readmitted after its ejection: %d", seen0);
    cr_assert_eq(bal_pick(&s, 0, 0, 0, -1, 1000, 1), BAL_NONE);
}

Test(ds_balance, panic_mode_when_none_is_usable)
{
    struct bal_set s;
    uint64_t x = 5;
    int hits[2] = {0};
    set_up(&s, 2);
    atomic_store(&s.ep[0].probe_ok, false);
    atomic_store(&s.ep[1].probe_ok, false);
    for (int k = 0; k < 400; k++)
        hits[bal_pick(&s, 0, ALL(2), 0, -1, 1000, next(&x))]++;
    cr_assert(hits[0] > 0 && hits[1] > 0, "every reachable endpoint serves: %d %d", hits[0],
              hits[1]);
    /* Panic mode still goes to another endpoint for a retry. */
    cr_assert_eq(bal_pick(&s, 0, ALL(2), 1, 0, 1000, 9), 1);
}

Test(ds_balance, concurrency_share)
{
    struct bal_set s;
    set_up(&s, 3);
    cr_assert_eq(bal_cap(128, 1), 128, "a set of one has the whole limit");
    cr_assert_eq(bal_cap(128, 2), 128);
    cr_assert_eq(bal_cap(128, 3), 86, "twice an even share, rounded up");
    cr_assert_eq(bal_cap(1, 4), 1);
    atomic_store(&s.ep[0].outstanding, 86);
    atomic_store(&s.ep[1].outstanding, 86);
    for (uint64_t r = 0; r < 100; r++)
        cr_assert_eq(bal_pick(&s, 0, ALL(3), 0, -1, 86, r), 2, "full endpoints are skipped");
    atomic_store(&s.ep[2].outstanding, 86);
    cr_assert_eq(bal_pick(&s, 0, ALL(3), 0, -1, 86, 1), BAL_FULL);
}

Test(ds_balance, ejection_backoff_grows_and_caps)
{
    cr_assert_eq(bal_eject_ms(1, 1000, 10000), 1000);
    cr_assert_eq(bal_eject_ms(2, 1000, 10000), 2000);
    cr_assert_eq(bal_eject_ms(7, 1000, 10000), 7000);
    cr_assert_eq(bal_eject_ms(11, 1000, 10000), 10000);
    cr_assert_eq(bal_eject_ms(0xffffffffu, 1000, 10000), 10000, "no overflow");
    cr_assert_eq(bal_eject_ms(0, 1000, 10000), 1000);
}

Test(ds_balance, consecutive_failures_eject)
{
    struct bal_set s;
    set_up(&s, 3);
    cr_assert_not(bal_report(&s, 0, BAL_FAILED, 100, &POL));
    cr_assert_not(bal_report(&s, 0, BAL_FAILED, 100, &POL));
    cr_assert_not(bal_report(&s, 0, BAL_OK, 100, &POL), "a success resets the count");
    cr_assert_not(bal_report(&s, 0, BAL_FAILED, 100, &POL));
    cr_assert_not(bal_report(&s, 0, BAL_NEUTRAL, 100, &POL), "neutral counts for nothing");
    cr_assert_not(bal_report(&s, 0, BAL_FAILED, 100, &POL));
    cr_assert(bal_report(&s, 0, BAL_FAILED, 100, &POL), "third in a row ejects");
    cr_assert_not(bal_usable(&s.ep[0], 100));
    cr_assert_not(bal_usable(&s.ep[0], 1099));
    cr_assert(bal_usable(&s.ep[0], 1100), "back after eject_base");
    cr_assert_eq(atomic_load(&s.ep[0].ejections_total), 1);
    cr_assert_eq(atomic_load(&s.ep[0].attempts_failed), 5);
    cr_assert_eq(atomic_load(&s.ep[0].attempts_ok), 1);

    /* Ejected again at once: twice as long. */
    for (int k = 0; k < 3; k++)
        bal_report(&s, 0, BAL_FAILED, 1200, &POL);
    cr_assert_eq(atomic_load(&s.ep[0].ejected_until_ms), 1200 + 2000);
    /* Failures while ejected (late answers) do not extend it. */
    for (int k = 0; k < 6; k++)
        cr_assert_not(bal_report(&s, 0, BAL_FAILED, 1300, &POL));
    cr_assert_eq(atomic_load(&s.ep[0].ejected_until_ms), 1200 + 2000);

    struct bal_policy off = POL;
    off.eject_after = 0;
    set_up(&s, 3);
    for (int k = 0; k < 100; k++)
        cr_assert_not(bal_report(&s, 1, BAL_FAILED, 0, &off), "eject_after 0: never");
}

Test(ds_balance, ejections_decay_in_service)
{
    struct bal_set s;
    set_up(&s, 2);
    for (int k = 0; k < 3; k++)
        bal_report(&s, 1, BAL_FAILED, 0, &POL);
    cr_assert_eq(atomic_load(&s.ep[1].ejections), 1);
    bal_tick(&s, 500, &POL);
    cr_assert_eq(atomic_load(&s.ep[1].ejections), 1, "not while ejected");
    bal_tick(&s, 1500, &POL);
    cr_assert_eq(atomic_load(&s.ep[1].ejections), 1, "not before as long again in service");
    bal_tick(&s, 2000, &POL);
    cr_assert_eq(atomic_load(&s.ep[1].ejections), 0, "falls once back in service");
    for (int k = 0; k < 3; k++)
        bal_report(&s, 1, BAL_FAILED, 2100, &POL);
    cr_assert_eq(atomic_load(&s.ep[1].ejected_until_ms), 2100 + 1000,
                 "after the decay the next ejection is short again");
}

Test(ds_balance, max_share_is_kept)
{
    struct bal_set s;
    set_up(&s, 4); /* 50 %: two of four */
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++)
            bal_report(&s, i, BAL_FAILED, 10, &POL);
    cr_assert_eq(bal_ejected(&s, 10), 2, "at most half of four");
    cr_assert(bal_usable(&s.ep[2], 10) && bal_usable(&s.ep[3], 10));
    /* Once one is back, the next failing one may go. */
    for (int k = 0; k < 3; k++)
        bal_report(&s, 2, BAL_FAILED, 1500, &POL);
    cr_assert_eq(bal_ejected(&s, 1500), 1, "the first two are back, one more is out");

    set_up(&s, 2); /* 50 % of two: one */
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++)
            bal_report(&s, i, BAL_FAILED, 0, &POL);
    cr_assert_eq(bal_ejected(&s, 0), 1);

    struct bal_policy all = POL;
    all.eject_max_pct = 100;
    set_up(&s, 3);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            bal_report(&s, i, BAL_FAILED, 0, &all);
    cr_assert_eq(bal_ejected(&s, 0), 2, "never the whole set, even at 100 %%");

    struct bal_policy tiny = POL;
    tiny.eject_max_pct = 1;
    set_up(&s, 3);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            bal_report(&s, i, BAL_FAILED, 0, &tiny);
    cr_assert_eq(bal_ejected(&s, 0), 1, "at least one of a set of two or more");

    set_up(&s, 1);
    for (int k = 0; k < 10; k++)
        cr_assert_not(bal_report(&s, 0, BAL_FAILED, 0, &all), "a lone endpoint is never out");
}

Test(ds_balance, slow_idle_endpoint_loses_ties_until_its_latency_fades)
{
    struct bal_set s;
    uint64_t x = 11;
    int slow = 0;
    set_up(&s, 2);
    bal_observe(&s.ep[0], 200000, 1000); /* 200 ms */
    bal_observe(&s.ep[1], 1000, 1000);   /* 1 ms */
    cr_assert_eq(atomic_load(&s.ep[1].ewma_us), 1000, "the first sample is the EWMA");
    bal_observe(&s.ep[1], 2000, 1000);
    cr_assert_eq(atomic_load(&s.ep[1].ewma_us), 1250, "then a quarter of each difference");
    for (int k = 0; k < 200; k++)
        slow += bal_pick(&s, 1000, ALL(2), 0, -1, 1000, next(&x)) == 0;
    cr_assert_eq(slow, 0, "both idle: the fast one");
    /* Outstanding still counts: a fast endpoint with a deep queue loses. */
    atomic_store(&s.ep[1].outstanding, 500);
    cr_assert_eq(bal_pick(&s, 1000, ALL(2), 0, -1, 1000, 1), 0);
    atomic_store(&s.ep[1].outstanding, 0);
    /* Without samples the slow one's EWMA halves every BAL_EWMA_HALF_MS,
     * and it is tried again. */
    cr_assert_eq(bal_cost(&s.ep[0], 1000 + BAL_EWMA_HALF_MS), 100001);
    cr_assert_eq(bal_cost(&s.ep[0], 1000 + 64 * BAL_EWMA_HALF_MS), 1);
    atomic_store(&s.ep[1].ewma_at_ms, 1000 + 20 * BAL_EWMA_HALF_MS); /* the fast one is fresh */
    for (int k = 0; k < 200; k++)
        slow += bal_pick(&s, 1000 + 20 * BAL_EWMA_HALF_MS, ALL(2), 0, -1, 1000, next(&x)) == 0;
    cr_assert(slow > 50, "an avoided endpoint is tried again: %d", slow);
}

/* A 404 fall-through stops once every usable endpoint was asked: it must
 * not bounce between two of them because a third is ejected. */
Test(ds_balance, untried_means_what_pick_would_give)
{
    struct bal_set s;
    set_up(&s, 3);
    atomic_store(&s.ep[2].ejected_until_ms, 5000);
    cr_assert(bal_untried(&s, 0, ALL(3), 1u << 0));
    cr_assert_not(bal_untried(&s, 0, ALL(3), 1u << 0 | 1u << 1),
                  "the ejected one is not offered while others are usable");
    cr_assert(bal_untried(&s, 6000, ALL(3), 1u << 0 | 1u << 1), "once readmitted it is");
    cr_assert_not(bal_untried(&s, 0, 1u << 0 | 1u << 1, 0x7), "unreachable ones never");
    /* Panic mode: none usable, untried reachable ones are offered. */
    for (int i = 0; i < 3; i++)
        atomic_store(&s.ep[i].probe_ok, false);
    cr_assert(bal_untried(&s, 0, ALL(3), 1u << 0));
    cr_assert_not(bal_untried(&s, 0, ALL(3), ALL(3)));
}
