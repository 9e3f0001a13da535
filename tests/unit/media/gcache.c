/*
 * gcache.c — the verified group cache: hits give the bytes put, sizes are
 * remembered, the budget holds with least-recently-used eviction, an entry
 * in use outlives its eviction, threads may share it, and a cache of 0
 * bytes keeps nothing.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "cas/outboard.h"
#include "media/gcache.h"

#define G CAS_GROUP_BYTES

static struct cas_addr addr(uint8_t k)
{
    struct cas_addr a;
    memset(a.b, k, sizeof(a.b));
    a.b[0] = (uint8_t)(k * 37);
    return a;
}

static uint8_t group[G];

Test(gcache, off_keeps_nothing)
{
    gcache_init(0);
    struct cas_addr a = addr(1);
    uint64_t size;
    gcache_put(&a, 3 * G, 0, group, G);
    cr_assert_null(gcache_get(&a, 0));
    cr_assert(!gcache_size(&a, &size));
}

Test(gcache, hits_and_sizes)
{
    gcache_init(4 << 20);
    struct cas_addr a = addr(2), b = addr(3);
    for (size_t i = 0; i < G; i++)
        group[i] = (uint8_t)i;
    uint64_t size = 0;
    cr_assert(!gcache_size(&a, &size));
    gcache_put(&a, 5 * G + 1, 3, group, G);
    cr_assert(gcache_size(&a, &size));
    cr_assert_eq(size, 5 * G + 1);
    cr_assert_null(gcache_get(&a, 2));
    cr_assert_null(gcache_get(&b, 3));
    struct gcache_entry *e = gcache_get(&a, 3);
    cr_assert_not_null(e);
    size_t n;
    const uint8_t *p = gcache_bytes(e, &n);
    cr_assert_eq(n, G);
    cr_assert(memcmp(p, group, G) == 0);
    gcache_unref(e);
    /* A second put of the same group keeps the first copy. */
    uint8_t other[16] = {9};
    gcache_put(&a, 5 * G + 1, 3, other, sizeof(other));
    e = gcache_get(&a, 3);
    gcache_bytes(e, &n);
    cr_assert_eq(n, G);
    gcache_unref(e);
}

Test(gcache, budget_and_lru)
{
    gcache_init(16 * G + 16 * 1024); /* one shard: 16 groups and their sizes */
    struct cas_addr a = addr(4);
    struct gcache_entry *held = NULL;
    for (uint64_t g = 0; g < 40; g++) {
        gcache_put(&a, 64 * G, g, group, G);
        if (g == 0)
            held = gcache_get(&a, 0); /* in use while evicted */
        /* Group 1 is used all along: it stays. */
        gcache_unref(gcache_get(&a, 1));
    }
    cr_assert_not_null(gcache_get(&a, 1));
    cr_assert_null(gcache_get(&a, 2), "least recently used: evicted");
    cr_assert_not_null(gcache_get(&a, 39));
    size_t n;
    cr_assert_eq(gcache_bytes(held, &n)[0], group[0]);
    cr_assert_eq(n, G);
    gcache_unref(held);
    gcache_clear();
    cr_assert_null(gcache_get(&a, 39));
}

static void *worker(void *arg)
{
    struct cas_addr a = addr((uint8_t)(uintptr_t)arg);
    for (int i = 0; i < 2000; i++) {
        uint64_t g = (uint64_t)(i % 50);
        gcache_put(&a, 50 * G, g, group, 4096);
        struct gcache_entry *e = gcache_get(&a, g);
        if (e) {
            size_t n;
            cr_assert_eq(gcache_bytes(e, &n)[4095], group[4095]);
            gcache_unref(e);
        }
    }
    return NULL;
}

Test(gcache, threads_share_it)
{
    gcache_init(2 << 20);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)(i + 10));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    gcache_clear();
}
