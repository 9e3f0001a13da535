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
