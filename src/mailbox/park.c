/*
 * park.c — parked long-poll receivers (park.h).
 */
#include "mailbox/park.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engines/common/hash.h"

#define BUCKETS 256 /* per worker, by channel hash */
#define RING    256 /* pending notifications per worker */

struct park_worker {
    uv_timer_t timer; /* the earliest deadline, or the next poll */
    uv_async_t async; /* notifications from any worker */
    struct park_waiter *bucket[BUCKETS];
    struct park_waiter *dhead, *dtail; /* ascending deadline */
    uint64_t poll_every_ms;            /* smallest poll interval asked for; 0: none */
    uint64_t next_poll_ms;
    atomic_long nparked;
    /* Multi-producer ring of channel hashes (0: slot not written yet). */
    _Atomic uint64_t ring[RING];
    atomic_ulong head, tail;
    atomic_bool overflow; /* a notification did not fit: wake everyone */
    /* Notifiers take it, and only when receivers are parked here; the
     * worker takes it once, when its loop has ended. */
    pthread_mutex_t lock;
    bool gone;
};

static struct park_worker *workers;
static int nworkers;
static atomic_long parked_total;
static uint8_t sipkey[16];

int park_start(int n)
{
    nworkers = n;
    workers = calloc((size_t)n, sizeof(*workers));
    if (workers == NULL)
        return -1;
    eng_random_key(sipkey, sizeof(sipkey));
    return 0;
}

uint64_t park_channel_hash(const char *name, size_t n)
{
    return eng_siphash(sipkey, name, n) | 1; /* never 0: 0 marks an empty ring slot */
}

long park_count(void)
{
    return atomic_load(&parked_total);
}

long park_worker_count(struct park_worker *pw)
{
    return atomic_load(&pw->nparked);
}

uint64_t park_now(struct park_worker *pw)
{
    return uv_now(pw->timer.loop);
}

/* ---- the lists ---------------------------------------------------------- */

static void unlink_waiter(struct park_waiter *w)
{
    struct park_worker *pw = w->pw;
    struct park_waiter **b = &pw->bucket[w->chash % BUCKETS];
    if (w->prev)
        w->prev->next = w->next;
    else
        *b = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (w->dprev)
        w->dprev->dnext = w->dnext;
    else
        pw->dhead = w->dnext;
    if (w->dnext)
        w->dnext->dprev = w->dprev;
    else
        pw->dtail = w->dprev;
    w->prev = w->next = w->dprev = w->dnext = NULL;
    w->parked = false;
    atomic_fetch_sub(&pw->nparked, 1);
    atomic_fetch_sub(&parked_total, 1);
}

static void rearm(struct park_worker *pw);

static void wake(struct park_waiter *w, enum park_why why)
{
    unlink_waiter(w);
    w->wake(w, why);
}

static void on_timer(uv_timer_t *t)
{
    struct park_worker *pw = t->data;
    uint64_t now = uv_now(t->loop);
    while (pw->dhead && pw->dhead->deadline_ms <= now)
        wake(pw->dhead, PARK_DEADLINE);
    if (pw->poll_every_ms && now >= pw->next_poll_ms) {
        /* Everyone due for a poll looks once; wakers may park again, at the
         * tail with a later poll time, so stop at the first not due. */
        for (struct park_waiter *w = pw->dhead, *next; w; w = next) {
            next = w->dnext;
            if (w->poll_ms <= now)
                wake(w, PARK_POLL);
        }
        pw->next_poll_ms = now + pw->poll_every_ms;
    }
    rearm(pw);
}

static void rearm(struct park_worker *pw)
{
    if (pw->dhead == NULL) {
        uv_timer_stop(&pw->timer);
        pw->poll_every_ms = 0;
        return;
    }
    uint64_t now = uv_now(pw->timer.loop), due = pw->dhead->deadline_ms;
    if (pw->poll_every_ms && pw->next_poll_ms < due)
        due = pw->next_poll_ms;
    uv_timer_start(&pw->timer, on_timer, due > now ? due - now : 0, 0);
}

/* The receiver of chash that waited longest, woken; false when none. */
static bool wake_one(struct park_worker *pw, uint64_t chash)
{
    for (struct park_waiter *w = pw->bucket[chash % BUCKETS]; w; w = w->next)
        if (w->chash == chash) {
            wake(w, PARK_MESSAGE);
            return true;
        }
    return false;
}

static void on_async(uv_async_t *a)
{
    struct park_worker *pw = a->data;
    if (atomic_exchange(&pw->overflow, false)) {
        while (pw->dhead)
            wake(pw->dhead, PARK_MESSAGE);
    }
    unsigned long h = atomic_load(&pw->head);
    while (h != atomic_load(&pw->tail)) {
        uint64_t c = atomic_exchange(&pw->ring[h % RING], 0);
        if (c == 0)
            break; /* reserved, not written yet: its writer wakes us again */
        atomic_store(&pw->head, ++h);
        wake_one(pw, c);
    }
    rearm(pw);
}

struct park_worker *park_worker_init(uv_loop_t *loop, int id)
{
    struct park_worker *pw = &workers[id];
    uv_timer_init(loop, &pw->timer);
    pw->timer.data = pw;
    uv_unref((uv_handle_t *)&pw->timer);
    uv_async_init(loop, &pw->async, on_async);
    pw->async.data = pw;
    uv_unref((uv_handle_t *)&pw->async);
    pthread_mutex_init(&pw->lock, NULL);
    return pw;
}

void park_worker_gone(struct park_worker *pw)
{
    pthread_mutex_lock(&pw->lock);
    pw->gone = true;
    pthread_mutex_unlock(&pw->lock);
}

void park_enter(struct park_worker *pw, struct park_waiter *w, uint64_t chash, uint64_t deadline_ms,
                uint64_t poll_every_ms, park_wake_fn fn)
{
    uint64_t now = uv_now(pw->timer.loop);
    w->pw = pw;
    w->chash = chash;
    w->deadline_ms = deadline_ms;
    w->wake = fn;
    w->poll_ms = poll_every_ms ? now + poll_every_ms : UINT64_MAX;
    w->parked = true;
    /* Bucket: at the tail, so its head has waited longest. */
    struct park_waiter **b = &pw->bucket[chash % BUCKETS];
    w->next = NULL;
    w->prev = NULL;
    if (*b == NULL) {
        *b = w;
    } else {
        struct park_waiter *t = *b;
        while (t->next)
            t = t->next;
        t->next = w;
        w->prev = t;
    }
    /* Deadline list: from the tail (waits are mostly alike). */
    struct park_waiter *d = pw->dtail;
    while (d && d->deadline_ms > deadline_ms)
        d = d->dprev;
    w->dprev = d;
    w->dnext = d ? d->dnext : pw->dhead;
    if (w->dnext)
        w->dnext->dprev = w;
    else
        pw->dtail = w;
    if (d)
        d->dnext = w;
    else
        pw->dhead = w;
    if (poll_every_ms && (pw->poll_every_ms == 0 || poll_every_ms < pw->poll_every_ms)) {
        pw->poll_every_ms = poll_every_ms;
        pw->next_poll_ms = now + poll_every_ms;
    }
    atomic_fetch_add(&pw->nparked, 1);
    atomic_fetch_add(&parked_total, 1);
    rearm(pw);
}

void park_leave(struct park_waiter *w)
{
    if (!w->parked)
        return;
    struct park_worker *pw = w->pw;
    unlink_waiter(w);
    rearm(pw);
}

void park_notify(uint64_t chash)
{
    for (int i = 0; i < nworkers; i++) {
        struct park_worker *pw = &workers[i];
        if (atomic_load(&pw->nparked) == 0)
            continue;
        unsigned long t = atomic_load(&pw->tail);
        bool placed = false;
        while (t - atomic_load(&pw->head) < RING) {
            if (atomic_compare_exchange_weak(&pw->tail, &t, t + 1)) {
                atomic_store(&pw->ring[t % RING], chash);
                placed = true;
                break;
            }
        }
        if (!placed)
            atomic_store(&pw->overflow, true);
        pthread_mutex_lock(&pw->lock);
        if (!pw->gone)
            uv_async_send(&pw->async);
        pthread_mutex_unlock(&pw->lock);
    }
}
