/*
 * Tests for engines/common: SipHash-2-4 reference vector, name rules,
 * reference-counted buffers, the hash table, RCU reclamation.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engines/common/buf.h"
#include "engines/common/hash.h"
#include "engines/common/rcu.h"
#include "engines/common/status.h"

TestSuite(engines_common);

Test(engines_common, siphash_reference_vector)
{
    /* The SipHash paper's appendix: key 00..0f, message 00..0e. */
    uint8_t k[16], m[15];
    for (int i = 0; i < 16; i++)
        k[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        m[i] = (uint8_t)i;
    cr_assert_eq(eng_siphash(k, m, 15), 0xa129ca6149be45e5ULL);
    /* Empty message, first row of the reference vectors.h. */
    cr_assert_eq(eng_siphash(k, m, 0), 0x726fdb47dd0e0e31ULL);
}

Test(engines_common, name_rules)
{
    cr_assert_eq(eng_name_check("a", 1), ENG_OK);
    cr_assert_eq(eng_name_check("a", 0), ENG_E_INVALID);
    cr_assert_eq(eng_name_check(NULL, 1), ENG_E_INVALID);
    cr_assert_eq(eng_name_check("\t", 1), ENG_E_INVALID);
    cr_assert_eq(eng_name_check("\xc2\x85", 2), ENG_E_INVALID);         /* C1 NEL */
    cr_assert_eq(eng_name_check("\xc2\xa0", 2), ENG_OK);                /* NBSP */
    cr_assert_eq(eng_name_check("\xf0\x9f\x98\x80", 4), ENG_OK);        /* emoji */
    cr_assert_eq(eng_name_check("\xf4\x90\x80\x80", 4), ENG_E_INVALID); /* > U+10FFFF */
    cr_assert_eq(eng_name_check("\xe0\x80\xaf", 3), ENG_E_INVALID);     /* overlong */
}

Test(engines_common, buf_refcount)
{
    struct eng_buf *b = eng_buf_from("abc", 3);
    cr_assert_not_null(b);
    cr_assert_eq(b->size, 3);
    cr_assert_eq(eng_buf_ref(b), b);
    cr_assert_eq(atomic_load(&b->refs), 2);
    eng_buf_unref(b);
    cr_assert_eq(memcmp(b->bytes, "abc", 3), 0);
    eng_buf_unref(b);
    eng_buf_unref(NULL);
}

struct item {
    struct eng_hnode node;
    int key;
};

static bool item_eq(const struct eng_hnode *n, const void *probe)
{
    return eng_container_of(n, struct item, node)->key == *(const int *)probe;
}

Test(engines_common, hmap_grow_find_remove)
{
    static struct item items[1000];
    struct eng_hmap m;
    uint8_t seed[16] = {1};
    cr_assert_eq(eng_hmap_init(&m), ENG_OK);
    for (int i = 0; i < 1000; i++) {
        items[i].key = i;
        items[i].node.hash = eng_siphash(seed, &i, sizeof(i));
        eng_hmap_insert(&m, &items[i].node);
    }
    cr_assert_eq(m.n, 1000);
    cr_assert_geq(m.nb, 1000);
    for (int i = 0; i < 1000; i += 2)
        eng_hmap_remove(&m, &items[i].node);
    for (int i = 0; i < 1000; i++) {
        uint64_t h = eng_siphash(seed, &i, sizeof(i));
        struct eng_hnode *x = eng_hmap_find(&m, h, item_eq, &i);
        if (i % 2)
            cr_assert_eq(x, &items[i].node);
        else
            cr_assert_null(x);
    }
    cr_assert_eq(m.n, 500);
    eng_hmap_release(&m);
}

/* ---------------------------------------------------------------- rcu */

struct retiree {
    struct eng_rcu_head rcu;
    int *freed;
};

static void retiree_free(struct eng_rcu_head *h)
{
    struct retiree *r = (struct retiree *)h;
    (*r->freed)++;
    free(r);
}

static struct retiree *retiree_new(int *freed)
{
    struct retiree *r = malloc(sizeof(*r));
    cr_assert_not_null(r);
    r->freed = freed;
    return r;
}

/* A reader that enters, says so, and leaves when told. */
struct holder {
    atomic_int state; /* 0 start, 1 inside, 2 may leave, 3 left */
};

static void *holder_run(void *arg)
{
    struct holder *h = arg;
    cr_assert_eq(eng_rcu_enter(), ENG_OK);
    atomic_store(&h->state, 1);
    while (atomic_load(&h->state) != 2)
        sched_yield();
    eng_rcu_exit();
    atomic_store(&h->state, 3);
    return NULL;
}

Test(engines_common, rcu_waits_for_readers_inside)
{
    struct eng_rcu_list l = {0};
    int freed = 0;

    /* No reader: freed at once. */
    eng_rcu_retire(&l, &retiree_new(&freed)->rcu, retiree_free);
    cr_assert_eq(eng_rcu_reclaim(&l), 0);
    cr_assert_eq(freed, 1);

    /* A reader inside since before the retire holds it back... */
    struct holder h = {0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, holder_run, &h), 0);
    while (atomic_load(&h.state) != 1)
        sched_yield();
    eng_rcu_retire(&l, &retiree_new(&freed)->rcu, retiree_free);
    cr_assert_eq(eng_rcu_reclaim(&l), 1);
    cr_assert_eq(freed, 1);
    /* ...and so does a section on this thread, nested or not. */
    cr_assert_eq(eng_rcu_enter(), ENG_OK);
    cr_assert_eq(eng_rcu_enter(), ENG_OK);
    eng_rcu_exit();
    atomic_store(&h.state, 2);
    pthread_join(t, NULL);
    cr_assert_eq(atomic_load(&h.state), 3);
    eng_rcu_retire(&l, &retiree_new(&freed)->rcu, retiree_free);
    /* The second waited only for the holder; the third waits for this
     * thread's section, which began before it was retired. */
    cr_assert_eq(eng_rcu_reclaim(&l), 1);
    cr_assert_eq(freed, 2);
    eng_rcu_exit();
    cr_assert_eq(eng_rcu_reclaim(&l), 0);
    cr_assert_eq(freed, 3);

    /* A section entered after the retire does not hold it back. */
    eng_rcu_retire(&l, &retiree_new(&freed)->rcu, retiree_free);
    cr_assert_eq(eng_rcu_enter(), ENG_OK);
    cr_assert_eq(eng_rcu_reclaim(&l), 0);
    eng_rcu_exit();
    cr_assert_eq(freed, 4);

    /* release frees whatever waits, readers or not (engine teardown). */
    cr_assert_eq(eng_rcu_enter(), ENG_OK);
    eng_rcu_retire(&l, &retiree_new(&freed)->rcu, retiree_free);
    eng_rcu_release(&l);
    eng_rcu_exit();
    cr_assert_eq(freed, 5);
    cr_assert_null(l.head);
}

static void *enter_exit_run(void *arg)
{
    for (int i = 0; i < 1000; i++) {
        if (eng_rcu_enter() != ENG_OK)
            return arg;
        eng_rcu_exit();
    }
    return NULL;
}

Test(engines_common, rcu_short_lived_threads)
{
    /* Many short-lived readers, a few at a time: each gets a slot (the
     * slots of exited threads are taken again) and leaves it clean. */
    for (int round = 0; round < 50; round++) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            cr_assert_eq(pthread_create(&t[i], NULL, enter_exit_run, NULL), 0);
        for (int i = 0; i < 4; i++) {
            void *rv;
            pthread_join(t[i], &rv);
            cr_assert_null(rv);
        }
    }
    struct eng_rcu_list l = {0};
    int freed = 0;
    eng_rcu_retire(&l, &retiree_new(&freed)->rcu, retiree_free);
    cr_assert_eq(eng_rcu_reclaim(&l), 0, "no exited thread still counts as inside");
    cr_assert_eq(freed, 1);
}
