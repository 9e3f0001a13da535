/*
 * freelist.c — bounded block caches: blocks come back in LIFO order, at most
 * `max` are kept, a size change drops the cache, and nothing leaks (the
 * valgrind run of this suite checks the frees).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/freelist.h"

Test(freelist, reuses_what_was_given_back)
{
    struct freelist fl;
    freelist_init(&fl, 4);
    char *a = freelist_get(&fl, 100), *b = freelist_get(&fl, 100);
    cr_assert(a && b && a != b);
    memset(a, 'a', 100);
    memset(b, 'b', 100);
    cr_assert_eq(fl.n, 0, "blocks in use are not cached");
    freelist_put(&fl, a, 100);
    freelist_put(&fl, b, 100);
    cr_assert_eq(fl.n, 2);
    cr_assert_eq(freelist_get(&fl, 100), b, "last given back, first taken");
    cr_assert_eq(freelist_get(&fl, 100), a);
    cr_assert_eq(fl.n, 0);
    freelist_put(&fl, a, 100);
    freelist_put(&fl, b, 100);
    freelist_put(&fl, NULL, 100); /* no-op */
    cr_assert_eq(fl.n, 2);
    freelist_release(&fl);
    cr_assert_eq(fl.n, 0);
    cr_assert_null(fl.head);
}

Test(freelist, keeps_at_most_max)
{
    struct freelist fl;
    void *blk[10];
    freelist_init(&fl, 3);
    for (int i = 0; i < 10; i++)
        cr_assert_not_null(blk[i] = freelist_get(&fl, 64));
    for (int i = 0; i < 10; i++)
        freelist_put(&fl, blk[i], 64); /* the seven beyond max are freed */
    cr_assert_eq(fl.n, 3);
    cr_assert_eq(freelist_get(&fl, 64), blk[2]);
    cr_assert_eq(freelist_get(&fl, 64), blk[1]);
    cr_assert_eq(freelist_get(&fl, 64), blk[0]);
    cr_assert_eq(fl.n, 0);
    for (int i = 0; i < 3; i++)
        free(blk[i]);
    freelist_release(&fl);
}

Test(freelist, a_new_size_drops_the_old_blocks)
{
    struct freelist fl;
    freelist_init(&fl, 8);
    void *small = freelist_get(&fl, 128), *kept = freelist_get(&fl, 128);
    freelist_put(&fl, kept, 128);
    cr_assert_eq(fl.n, 1);
    /* header_max grew on reload: the cached small block must not come back. */
    char *big = freelist_get(&fl, 4096);
    cr_assert_not_null(big);
    cr_assert_eq(fl.n, 0);
    cr_assert_eq(fl.size, 4096);
    memset(big, 0, 4096);
    /* A block taken before the change is freed when given back. */
    freelist_put(&fl, small, 128);
    cr_assert_eq(fl.n, 0);
    freelist_put(&fl, big, 4096);
    cr_assert_eq(fl.n, 1);
    freelist_release(&fl);
}

Test(freelist, zero_max_caches_nothing)
{
    struct freelist fl;
    freelist_init(&fl, 0);
    void *p = freelist_get(&fl, 1); /* rounded up to hold the link */
    cr_assert_not_null(p);
    freelist_put(&fl, p, 1);
    cr_assert_eq(fl.n, 0);
    cr_assert_null(fl.head);
}
