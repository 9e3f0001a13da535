/*
 * rcu.c — reader slots, the global epoch, retire and reclaim.
 *
 * Why it is safe. Every operation below that the argument uses is
 * memory_order_seq_cst, so they all fall in one total order S. A reader does
 *   G  = load(epoch); A: store(slot, G); L: load(published pointer) ...
 * A writer does
 *   U: store(published pointer, new); T: tag = fetch_add(epoch);
 *   later, W: load(slot) for every slot; free the objects with tag < min.
 * Take an object X unlinked by U and tagged T, and a reader that could have
 * read X through L. If W saw the reader's slot as 0 or as a value written
 * before A, then W precedes A in S, so U < W < A < L and L reads U's pointer
 * or a newer one: it cannot reach X. If W saw A's value G, the reader's load
 * of the epoch either read T's increment or a later one — then T < G-load
 * < A < L and again L cannot reach X — or an earlier value, G ≤ tag, and X is
 * kept. A slot added to the list after W read the list head belongs to a
 * thread whose first A comes after W. Leaving a section stores 0 with
 * release, so a writer whose W reads that 0 (acquire) sees every read of the
 * section happen before its free.
 */
#include "engines/common/rcu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "engines/common/status.h"

/* One per thread that ever read, on its own cache line. epoch 0 = outside
 * any section. Never freed: a slot whose thread exited is reused. */
struct reader {
    _Atomic uint64_t epoch;
    atomic_bool used;
    struct reader *next; /* written once, before the slot is pushed */
} __attribute__((aligned(64)));

/* Shared by all engines (atomics only, STYLE §17): the epoch starts at 1 so
 * that 0 can mean "outside". */
static _Atomic uint64_t g_epoch = 1;
static _Atomic(struct reader *) g_readers;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;

static __thread struct reader *t_self;
static __thread unsigned t_depth;

static void reader_on_exit(void *p)
{
    struct reader *r = p;
    atomic_store_explicit(&r->epoch, 0, memory_order_release);
    atomic_store_explicit(&r->used, false, memory_order_release);
}

static void key_init(void)
{
    /* Without the key a slot is simply not reused after its thread exits. */
    (void)pthread_key_create(&g_key, reader_on_exit);
}

/* A slot for this thread: a free one, else a new one pushed on the list.
 * Once per thread, not on a hot path. */
static struct reader *reader_claim(void)
{
    struct reader *r;

    pthread_once(&g_once, key_init);
    for (r = atomic_load_explicit(&g_readers, memory_order_acquire); r != NULL; r = r->next) {
        bool f = false;
        if (!atomic_load_explicit(&r->used, memory_order_relaxed) &&
            atomic_compare_exchange_strong_explicit(&r->used, &f, true, memory_order_acquire,
                                                    memory_order_relaxed))
            goto out;
    }
    r = aligned_alloc(64, sizeof(*r));
    if (r == NULL)
        return NULL;
    atomic_init(&r->epoch, 0);
    atomic_init(&r->used, true);
    r->next = atomic_load_explicit(&g_readers, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&g_readers, &r->next, r, memory_order_seq_cst,
                                                  memory_order_relaxed))
        ;
out:
    (void)pthread_setspecific(g_key, r);
    return r;
}

int eng_rcu_enter(void)
{
    if (t_depth++ > 0)
        return ENG_OK;
    if (t_self == NULL && (t_self = reader_claim()) == NULL) {
        t_depth = 0;
        return ENG_E_NOMEM;
    }
    uint64_t e = atomic_load_explicit(&g_epoch, memory_order_seq_cst);
    atomic_store_explicit(&t_self->epoch, e, memory_order_seq_cst);
    return ENG_OK;
}

void eng_rcu_exit(void)
{
    if (--t_depth > 0)
        return;
    atomic_store_explicit(&t_self->epoch, 0, memory_order_release);
}

void eng_rcu_retire(struct eng_rcu_list *l, struct eng_rcu_head *h, eng_rcu_free_fn free_fn)
{
    h->free = free_fn;
    h->next = NULL;
    h->epoch = atomic_fetch_add_explicit(&g_epoch, 1, memory_order_seq_cst);
    if (l->tail != NULL)
        l->tail->next = h;
    else
        l->head = h;
    l->tail = h;
    l->n++;
}

/* The oldest epoch a reader is inside now; UINT64_MAX when none is. */
static uint64_t oldest_reader(void)
{
    uint64_t min = UINT64_MAX;
    for (struct reader *r = atomic_load_explicit(&g_readers, memory_order_seq_cst); r != NULL;
         r = r->next) {
        uint64_t e = atomic_load_explicit(&r->epoch, memory_order_seq_cst);
        if (e != 0 && e < min)
            min = e;
    }
    return min;
}

size_t eng_rcu_reclaim(struct eng_rcu_list *l)
{
    if (l->head == NULL)
        return 0;
    /* Tags grow along the list, so the freeable objects are a prefix. */
    uint64_t min = oldest_reader();
    while (l->head != NULL && l->head->epoch < min) {
        struct eng_rcu_head *h = l->head;
        l->head = h->next;
        l->n--;
        h->free(h);
    }
    if (l->head == NULL)
        l->tail = NULL;
    return l->n;
}

void eng_rcu_release(struct eng_rcu_list *l)
{
    while (l->head != NULL) {
        struct eng_rcu_head *h = l->head;
        l->head = h->next;
        h->free(h);
    }
    l->tail = NULL;
    l->n = 0;
}
