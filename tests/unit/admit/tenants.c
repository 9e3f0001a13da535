/*
 * tenants.c — per-tenant buckets: isolation between tenants, a fixed-size
 * table that reuses slots of idle tenants without penalty, and counts the
 * takeover of a busy one.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "admit/tenants.h"

#define SEC 1000000000ull

static uint64_t key(struct tenants *t, const char *name)
{
    return tenants_key(t, name, strlen(name));
}

Test(tenants, one_tenant_flooding_leaves_another_alone)
{
    struct tenants t;
    cr_assert_eq(tenants_init(&t, 64), 0);
    struct gcra_rate r = gcra_rate_make(5 * 1000, 5);
    uint64_t a = key(&t, "tenant-a"), b = key(&t, "tenant-b");
    cr_assert_neq(a, b);
    int ok_a = 0;
    for (int i = 0; i < 100; i++)
        ok_a += tenants_take(&t, a, &r, SEC).ok;
    cr_assert_eq(ok_a, 5, "a gets its burst");
    for (int i = 0; i < 5; i++)
        cr_assert(tenants_take(&t, b, &r, SEC).ok, "b is untouched by a's flood");
    cr_assert_not(tenants_take(&t, b, &r, SEC).ok);
    cr_assert_eq(atomic_load(&t.evicted_busy), 0);
    tenants_free(&t);
}

Test(tenants, idle_slots_are_reused_without_penalty)
{
    struct tenants t;
    cr_assert_eq(tenants_init(&t, 16), 0); /* 4 sets of 4 */
    struct gcra_rate r = gcra_rate_make(1000, 2);
    char name[32];
    uint64_t now = 10 * SEC;
    for (int i = 0; i < 1000; i++) { /* far more tenants than slots, one at a time */
        snprintf(name, sizeof(name), "t%d", i);
        cr_assert(tenants_take(&t, key(&t, name), &r, now).ok, "a new tenant starts full");
        now += 2 * SEC; /* long enough for every bucket to refill */
    }
    cr_assert_eq(atomic_load(&t.evicted_busy), 0, "idle tenants are evicted for free");
    tenants_free(&t);
}

Test(tenants, a_full_table_takes_over_the_nearest_to_full)
{
    struct tenants t;
    cr_assert_eq(tenants_init(&t, 4), 0); /* one set */
    struct gcra_rate r = gcra_rate_make(1000, 1);
    char name[32];
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof(name), "busy%d", i);
        tenants_take(&t, key(&t, name), &r, SEC); /* each drains its bucket */
    }
    cr_assert_eq(atomic_load(&t.evicted_busy), 4, "four busy tenants were displaced");
    tenants_free(&t);
}

/* Regression: a newcomer that displaced a busy tenant inherited its debt,
 * so with the table full of busy tenants every new client's first request
 * was a 429. */
Test(tenants, a_newcomer_in_a_full_table_starts_with_a_full_bucket)
{
    struct tenants t;
    cr_assert_eq(tenants_init(&t, 4), 0);              /* one set */
    struct gcra_rate r = gcra_rate_make(1000 / 60, 2); /* 1/min, burst 2 */
    char name[32];
    uint64_t now = SEC;
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        uint64_t k = key(&t, name);
        cr_assert(tenants_take(&t, k, &r, now).ok, "tenant %d: first request refused", i);
        cr_assert(tenants_take(&t, k, &r, now).ok, "tenant %d: second request refused", i);
        cr_assert_not(tenants_take(&t, k, &r, now).ok, "tenant %d: over its burst", i);
        now += SEC / 100;
    }
    cr_assert_eq(atomic_load(&t.evicted_busy), 96);
    /* t0 was displaced long ago: it comes back to a full bucket. */
    uint64_t k0 = key(&t, "t0");
    cr_assert(tenants_take(&t, k0, &r, now).ok);
    cr_assert(tenants_take(&t, k0, &r, now).ok);
    cr_assert_not(tenants_take(&t, k0, &r, now).ok);
    tenants_free(&t);
}

Test(tenants, a_raised_rate_clamps_every_slot)
{
    struct tenants t;
    cr_assert_eq(tenants_init(&t, 16), 0);
    struct gcra_rate slow = gcra_rate_make(1000 / 60, 1), fast = gcra_rate_make(1000 * 1000, 1);
    uint64_t a = key(&t, "a"), b = key(&t, "b");
    cr_assert(tenants_take(&t, a, &slow, SEC).ok);
    cr_assert(tenants_take(&t, b, &slow, SEC).ok);
    tenants_clamp(&t, &fast, SEC);
    cr_assert(tenants_take(&t, a, &fast, SEC + SEC / 1000).ok);
    cr_assert(tenants_take(&t, b, &fast, SEC + SEC / 1000).ok);
    tenants_free(&t);
}
