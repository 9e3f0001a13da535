/*
 * gcra.c — the one-word token bucket: burst, refill, the wait it reports,
 * the remaining count, accuracy over a long run at twice the rate, and no
 * token lost or minted when threads race on one bucket.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "admit/gcra.h"

#define SEC 1000000000ull

Test(gcra, a_burst_then_refusal_with_the_exact_wait)
{
    struct gcra b = {0};
    struct gcra_rate r = gcra_rate_make(10 * 1000, 5); /* 10/s, burst 5 */
    uint64_t t = 1000 * SEC;
    for (int i = 0; i < 5; i++) {
        struct gcra_verdict v = gcra_take(&b, &r, t);
        cr_assert(v.ok, "token %d of the burst", i);
        cr_assert_eq(v.remaining, (uint64_t)(4 - i));
    }
    struct gcra_verdict v = gcra_take(&b, &r, t);
    cr_assert_not(v.ok);
    cr_assert_eq(v.wait_ns, SEC / 10, "one interval until the next token");
    cr_assert_eq(gcra_wait_s(v.wait_ns), 1, "Retry-After rounds up");
    cr_assert_not(gcra_take(&b, &r, t + SEC / 10 - 1).ok, "one ns early is still refused");
    cr_assert(gcra_take(&b, &r, t + SEC / 10).ok, "on time it conforms");
}

Test(gcra, an_idle_bucket_refills_to_its_burst_only)
{
    struct gcra b = {0};
    struct gcra_rate r = gcra_rate_make(1000, 3); /* 1/s, burst 3 */
    uint64_t t = 5 * SEC;
    for (int i = 0; i < 3; i++)
        cr_assert(gcra_take(&b, &r, t).ok);
    t += 3600 * SEC; /* an hour idle banks 3 tokens, not 3600 */
    int ok = 0;
    for (int i = 0; i < 10; i++)
        ok += gcra_take(&b, &r, t).ok;
    cr_assert_eq(ok, 3);
}

Test(gcra, twice_the_rate_for_ten_seconds_admits_the_rate)
{
    struct gcra b = {0};
    struct gcra_rate r = gcra_rate_make(500 * 1000, 100); /* the default: 500/s, burst 100 */
    uint64_t t0 = 7 * SEC, admitted = 0;
    for (uint64_t i = 0; i < 10000; i++) /* 1000/s for 10 s */
        admitted += gcra_take(&b, &r, t0 + i * (SEC / 1000)).ok;
    /* 5000 refilled plus the initial burst, within one token. */
    cr_assert(admitted >= 5099 && admitted <= 5101, "admitted %lu", (unsigned long)admitted);
}

Test(gcra, fractional_rates_and_off)
{
    struct gcra b = {0};
    struct gcra_rate r = gcra_rate_make(500, 1); /* 30/m */
    cr_assert_eq(r.interval_ns, 2 * SEC);
    cr_assert(gcra_take(&b, &r, SEC).ok);
    struct gcra_verdict v = gcra_take(&b, &r, SEC);
    cr_assert_not(v.ok);
    cr_assert_eq(gcra_wait_s(v.wait_ns), 2);
    struct gcra_rate off = gcra_rate_make(0, 10);
    cr_assert(gcra_off(&off));
    for (int i = 0; i < 1000; i++)
        cr_assert(gcra_take(&b, &off, 0).ok);
}

static struct gcra shared;
static struct gcra_rate shared_rate;
static atomic_int shared_ok;

static void *hammer(void *arg)
{
    for (int i = 0; i < 20000; i++)
        if (gcra_take(&shared, &shared_rate, 42 * SEC).ok)
            atomic_fetch_add(&shared_ok, 1);
    return NULL;
}

Test(gcra, racing_threads_take_exactly_the_burst)
{
    shared_rate = gcra_rate_make(1000, 1000); /* no refill at a fixed now */
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&shared_ok), 1000, "no token lost or minted by a race");
}

/* Regression: a bucket drained under 1/min kept its TAT minutes ahead after
 * a reload raised the rate to 1000/s, so every request was refused until
 * the old debt ran out. Clamped for the new rate, it is merely empty. */
Test(gcra, a_raised_rate_does_not_keep_the_old_debt)
{
    struct gcra b = {0};
    struct gcra_rate slow = gcra_rate_make(1000 / 60, 3), fast = gcra_rate_make(1000 * 1000, 3);
    uint64_t t = 10 * SEC;
    for (int i = 0; i < 3; i++)
        cr_assert(gcra_take(&b, &slow, t).ok);
    cr_assert_not(gcra_take(&b, &slow, t).ok);
    gcra_clamp(&b, &fast, t);
    struct gcra_verdict v = gcra_take(&b, &fast, t);
    cr_assert_not(v.ok, "empty under the new rate too");
    cr_assert_eq(v.wait_ns, fast.interval_ns, "one new interval, not the old debt");
    for (int i = 0; i < 3; i++)
        cr_assert(gcra_take(&b, &fast, t + SEC / 100).ok, "a full burst 10 ms later");
    cr_assert_not(gcra_take(&b, &fast, t + SEC / 100).ok);
    /* A bucket within the new rate's bounds is left as it is. */
    uint64_t tat = atomic_load(&b.tat);
    gcra_clamp(&b, &fast, t + SEC / 100);
    cr_assert_eq(atomic_load(&b.tat), tat);
    gcra_clamp(&b, &slow, t + SEC / 100);
    cr_assert_eq(atomic_load(&b.tat), tat, "a lowered rate takes nothing back");
}
