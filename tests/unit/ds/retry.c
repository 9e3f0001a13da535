/*
 * retry.c — the retry policy (src/ds/retry.c): the per-downstream budget,
 * jittered backoff with a seeded PRNG, and which failures are transient.
 */
#include <criterion/criterion.h>

#include "ds/retry.h"

TestSuite(ds_retry);

Test(ds_retry, budget_takes_whole_tokens_only)
{
    atomic_long b = 0;
    cr_assert_not(retry_budget_take(&b), "an empty budget gives nothing");
    b = RETRY_BUDGET_SCALE - 1;
    cr_assert_not(retry_budget_take(&b), "a part of a token is not a token");
    cr_assert_eq(atomic_load(&b), RETRY_BUDGET_SCALE - 1, "a refused take leaves the budget");
    b = 2 * RETRY_BUDGET_SCALE + 1;
    cr_assert(retry_budget_take(&b));
    cr_assert(retry_budget_take(&b));
    cr_assert_not(retry_budget_take(&b));
    cr_assert_eq(atomic_load(&b), 1);
}

Test(ds_retry, budget_ratio_of_first_attempts)
{
    /* At 10 %, 100 first attempts pay for exactly 10 retries. */
    atomic_long b = 0;
    for (int i = 0; i < 100; i++)
        retry_budget_deposit(&b, 10);
    int taken = 0;
    while (retry_budget_take(&b))
        taken++;
    cr_assert_eq(taken, 10);

    /* 25 % and 1 %: the ratio holds for any percentage. */
    b = 0;
    for (int i = 0; i < 40; i++)
        retry_budget_deposit(&b, 25);
    for (taken = 0; retry_budget_take(&b); taken++)
        ;
    cr_assert_eq(taken, 10);
    b = 0;
    for (int i = 0; i < 999; i++)
        retry_budget_deposit(&b, 1);
    for (taken = 0; retry_budget_take(&b); taken++)
        ;
    cr_assert_eq(taken, 9, "999 attempts at 1 %% are 9.99 tokens, not 10");
}

Test(ds_retry, budget_percent_zero_never_refills)
{
    atomic_long b = 0;
    for (int i = 0; i < 10000; i++)
        retry_budget_deposit(&b, 0);
    cr_assert_eq(atomic_load(&b), 0);
    cr_assert_not(retry_budget_take(&b));
}

Test(ds_retry, budget_refills_up_to_the_cap)
{
    atomic_long b = 0;
    /* An outage spent every token; first attempts refill it... */
    cr_assert_not(retry_budget_take(&b));
    retry_budget_deposit(&b, 100);
    cr_assert(retry_budget_take(&b), "one first attempt at 100 %% pays for one retry");
    /* ...but never beyond the cap, however long the calm lasts. */
    for (int i = 0; i < 1000; i++)
        retry_budget_deposit(&b, 100);
    cr_assert_eq(atomic_load(&b), RETRY_BUDGET_CAP);
    /* A deposit that crosses the cap stops exactly at it. */
    b = RETRY_BUDGET_CAP - 30;
    retry_budget_deposit(&b, 10);
    cr_assert_eq(atomic_load(&b), RETRY_BUDGET_CAP);
    int taken = 0;
    while (retry_budget_take(&b))
        taken++;
    cr_assert_eq(taken, RETRY_BUDGET_CAP / RETRY_BUDGET_SCALE);
}

Test(ds_retry, backoff_within_bounds_and_spread)
{
    struct retry_rng r;
    retry_rng_seed(&r, 42);
    for (int a = 1; a <= 5; a++) {
        uint64_t cap = (uint64_t)RETRY_BACKOFF_BASE_MS << (a - 1), lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 5000; i++) {
            uint64_t d = retry_backoff_ms(a, &r);
            cr_assert(d >= cap / 2 && d <= cap, "attempt %d: %llu outside %llu..%llu", a,
                      (unsigned long long)d, (unsigned long long)(cap / 2),
                      (unsigned long long)cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* The jitter covers the whole 50–100 % range. */
        cr_assert_eq(lo, cap / 2, "attempt %d", a);
        cr_assert_eq(hi, cap, "attempt %d", a);
    }
    /* Out-of-range attempt counts stay defined. */
    cr_assert_leq(retry_backoff_ms(0, &r), RETRY_BACKOFF_BASE_MS);
    cr_assert_leq(retry_backoff_ms(1000, &r), (uint64_t)RETRY_BACKOFF_BASE_MS << 19);
}

Test(ds_retry, backoff_deterministic_with_a_seed)
{
    struct retry_rng a, b, c;
    retry_rng_seed(&a, 7);
    retry_rng_seed(&b, 7);
    retry_rng_seed(&c, 8);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = retry_backoff_ms(5, &a);
        cr_assert_eq(x, retry_backoff_ms(5, &b), "draw %d", i);
        differ += x != retry_backoff_ms(5, &c);
    }
    cr_assert_gt(differ, 50, "another seed gives another sequence");
    /* The reference splitmix64 gives this first from state 0: the
     * generator is the one documented, not a look-alike. */
    struct retry_rng z = {0};
    cr_assert_eq(retry_rng_next(&z), 0xe220a8397b1dcdafull);
}

Test(ds_retry, seeds_from_the_system)
{
    struct retry_rng a, b;
    retry_rng_seed(&a, 0);
    retry_rng_seed(&b, 0);
    cr_assert_neq(a.s, b.s, "two workers do not share a sequence");
}

Test(ds_retry, transient_failures)
{
    struct ds_resp r = {.code = 0, .err = OG_E_BAD_GATEWAY};
    cr_assert(retry_is_transient(&r), "connection lost or malformed answer");
    r.err = OG_E_DOWNSTREAM_TIMEOUT;
    cr_assert_not(retry_is_transient(&r), "no time is left for another attempt");
    r.err = OG_E_BUSY;
    cr_assert_not(retry_is_transient(&r), "shed by our own limit");
    r.err = OG_E_INTERNAL;
    cr_assert_not(retry_is_transient(&r));
    static const int yes[] = {502, 503}, no[] = {200, 206, 400, 404, 429, 500, 504, 507};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        r = (struct ds_resp){.code = yes[i]};
        cr_assert(retry_is_transient(&r), "%d", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        r = (struct ds_resp){.code = no[i]};
        cr_assert_not(retry_is_transient(&r), "%d", no[i]);
    }
}
