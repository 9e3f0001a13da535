/*
 * mailbox.c — channels of messages with leases, idempotency keys and a
 * dead-letter queue; peeks take no lock.
 *
 * Per channel, live messages sit in one array sorted by id (ids only grow and
 * removals keep the order), so ACK finds an id by binary search and RECV/PEEK
 * walk from either end. The array is bounded by max_depth, so the O(depth)
 * walks are bounded too. Dead letters go to a ring of max_depth entries.
 * Idempotency keys live in a keyed hash table plus a FIFO in send order,
 * which is expiry order since every key gets the same window.
 *
 * What takes no lock, and why the rest still does (STYLE §17). Views and
 * feeds PEEK channels on every request, on every worker; nothing on the
 * request path SENDs, RECVs or ACKs. So the live array is a `struct mview`
 * published behind an atomic pointer (engines/common/rcu.h), whose published
 * messages never change: PEEK enters an RCU section, finds the channel in
 * the channel table (also published, immutable but for slots going from NULL
 * to a channel), reads the view's length, copies the newest messages out
 * with a reference to each body, and leaves. SEND appends in place when the
 * view has room (it writes past the published length, then publishes the
 * new length; room doubles like a realloc, so a SEND is amortised O(1)).
 * Any other change copies the array (O(depth), as ACK's memmove and RECV's
 * walk already were), publishes the copy and retires the old view; a body
 * leaving the live set (acked, or
 * moved to the DLQ, which takes a reference of its own) is released only
 * when the view that held it is freed, so a reader of that view always gets
 * a live body. RECV leases what it returns, so it is a write; SEND and ACK
 * are writes; DLQ peeks and stats move dead letters and purge keys. Those
 * stay serialised on the channel's mutex, as before. PEEK itself moves dead
 * letters too (a message whose last allowed lease has ended): each view
 * records when its first one falls due (`dead_at`), and a PEEK at or past it
 * takes the mutex and sweeps first, exactly as before, so the answers and
 * the DLQ are what they were. Creating a channel locks the table.
 *
 * Channels are never removed while the mailbox lives, so a channel pointer
 * found in a section stays valid after the section ends.
 *
 * A service that keeps the mailbox on disk (services/durable/) reads its
 * state out with mailbox_dump() and puts it back with the mailbox_restore_*
 * functions: they are writers like SEND, under the same mutexes, and a
 * restored message goes into the live array at its id's place.
 */
#include "engines/mailbox/mailbox.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engines/common/rcu.h"

#define TAB_MIN_SLOTS 16

struct idem {
    struct eng_hnode node;
    struct idem *fifo_next;
    uint64_t expires;
    uint64_t id;
    uint64_t body_hash; /* a retry must carry the same body */
    uint8_t len;
    char key[];
};

/* The live messages of a channel. m[0..len) never change once published;
 * SEND appends in place (writes m[len], then publishes len + 1), every other
 * change publishes a new view. The live set holds one reference to each
 * body. */
struct mview {
    /* Writer only, once the view is retired: the nd bodies its successor no
     * longer holds, released when this view is freed. */
    struct eng_rcu_head rcu;
    size_t nd;
    struct eng_buf **drop;
    size_t cap; /* room for cap messages, then cap drop slots */
    /* Read by PEEK. */
    atomic_size_t len; /* ≥ 1: an empty channel publishes NULL */
    uint64_t dead_at;  /* earliest lease end among messages at K deliveries;
                          UINT64_MAX: none (appended messages have none) */
    /* For stats without the mutex (mailbox_stats_walk): messages with a
     * lease end set and the earliest such end (UINT64_MAX: none). Before
     * lease_min all nlease of them are still leased; appended messages
     * have no lease, so an append keeps both true. */
    size_t nlease;
    uint64_t lease_min;
    struct mailbox_msg m[]; /* ascending id */
};

struct channel {
    pthread_mutex_t mu;           /* writers of this channel (all but PEEK) */
    _Atomic(struct mview *) view; /* NULL: no live message; seq_cst (rcu.h) */
    struct eng_rcu_list retired;  /* under mu */
    uint64_t next_id;
    struct mailbox_msg *dlq; /* ring of max_depth entries, lazily allocated */
    size_t dlq_head, dlq_n, dlq_cap;
    uint64_t dlq_dropped;
    struct eng_hmap idem;
    struct idem *fifo_head, *fifo_tail;
    uint64_t hash;
    uint8_t len;
    char name[];
};

/* Open addressing, linear probing, at most half full. Slots only go from
 * NULL to a channel; growing publishes a new table and retires this one. */
struct ctab {
    struct eng_rcu_head rcu;
    size_t cap; /* a power of two */
    _Atomic(struct channel *) slot[];
};

struct mailbox {
    _Atomic(struct ctab *) tab;  /* seq_cst (rcu.h) */
    pthread_mutex_t lock;        /* creating channels */
    struct eng_rcu_list retired; /* old tables, under lock */
    atomic_size_t nchannels;
    uint8_t seed[MAILBOX_SEED_BYTES];
    size_t max_channels;
    size_t max_depth;
    uint64_t idem_window;
    uint64_t lease;
    uint32_t max_deliveries;
    size_t max_msg;
    size_t max_idem;
};

struct probe {
    const char *p;
    size_t n;
};

static bool idem_eq(const struct eng_hnode *node, const void *arg)
{
    const struct idem *k = eng_container_of(node, struct idem, node);
    const struct probe *pr = arg;
    return k->len == pr->n && memcmp(k->key, pr->p, pr->n) == 0;
}

/* ---------------------------------------------------------------- views */

/* A view of n messages with room to grow (doubling, as a realloc would, up
 * to max_depth), so that SENDs append without copying. */
static struct mview *view_new_cap(size_t n, size_t cap)
{
    struct mview *v = malloc(sizeof(*v) + cap * (sizeof(v->m[0]) + sizeof(struct eng_buf *)));
    if (v == NULL)
        return NULL;
    v->nd = 0;
    v->drop = (struct eng_buf **)(v->m + cap);
    v->cap = cap;
    atomic_init(&v->len, n);
    return v;
}

static struct mview *view_new(const struct mailbox *mb, size_t n)
{
    size_t cap = n < 8 ? 16 : 2 * n;
    if (cap > mb->max_depth)
        cap = mb->max_depth > n ? mb->max_depth : n;
    return view_new_cap(n, cap);
}

/* Messages in v (NULL: none). */
static size_t view_len(const struct mview *v)
{
    return v != NULL ? atomic_load_explicit(&v->len, memory_order_acquire) : 0;
}

static void view_free(struct eng_rcu_head *h)
{
    struct mview *v = eng_container_of(h, struct mview, rcu);
    for (size_t i = 0; i < v->nd; i++)
        eng_buf_unref(v->drop[i]);
    free(v);
}

static bool is_exhausted(const struct mailbox *mb, const struct mailbox_msg *m)
{
    return m->deliveries >= mb->max_deliveries;
}

/* Publish nv (NULL, or a view of ≥ 1 messages) in place of old, whose drop
 * list the caller has filled, and retire old. Caller holds c->mu. */
static void view_publish(struct mailbox *mb, struct channel *c, struct mview *old, struct mview *nv)
{
    if (nv != NULL) {
        nv->dead_at = nv->lease_min = UINT64_MAX;
        nv->nlease = 0;
        for (size_t i = 0, n = view_len(nv); i < n; i++) {
            uint64_t until = nv->m[i].lease_until;
            if (is_exhausted(mb, &nv->m[i]) && until < nv->dead_at)
                nv->dead_at = until;
            if (until != 0) {
                nv->nlease++;
                if (until < nv->lease_min)
                    nv->lease_min = until;
            }
        }
    }
    atomic_store_explicit(&c->view, nv, memory_order_seq_cst);
    if (old != NULL)
        eng_rcu_retire(&c->retired, &old->rcu, view_free);
    eng_rcu_reclaim(&c->retired);
}

/* The current view, for a writer holding c->mu. */
static struct mview *view_of(struct channel *c)
{
    return atomic_load_explicit(&c->view, memory_order_relaxed);
}

/* Put m (its body reference moves in) at position `at` (≤ the length) of
 * c's live messages: in place when it goes last and the view has room
 * (readers see it once the release store of the new length makes it part
 * of the view), else in a new view. Past max_depth (only a restore goes
 * there) the room still doubles. Caller holds c->mu. ENG_OK or ENG_E_NOMEM
 * (nothing changed). */
static int view_put(struct mailbox *mb, struct channel *c, size_t at, const struct mailbox_msg *m)
{
    struct mview *v = view_of(c), *nv;
    size_t n = view_len(v);

    if (v != NULL && at == n && n < v->cap) {
        v->m[n] = *m;
        atomic_store_explicit(&v->len, n + 1, memory_order_release);
        return ENG_OK;
    }
    nv = n + 1 > mb->max_depth ? view_new_cap(n + 1, 2 * (n + 1)) : view_new(mb, n + 1);
    if (nv == NULL)
        return ENG_E_NOMEM;
    if (at > 0)
        memcpy(nv->m, v->m, at * sizeof(nv->m[0]));
    nv->m[at] = *m;
    if (n > at)
        memcpy(nv->m + at + 1, v->m + at, (n - at) * sizeof(nv->m[0]));
    view_publish(mb, c, v, nv);
    return ENG_OK;
}

/* The newest `max` messages of v, newest first, into out with a body
 * reference each, leaving out dead letters not yet swept when `now` is at
 * or past v->dead_at. Returns the count. */
static size_t view_newest(const struct mailbox *mb, const struct mview *v, size_t max, uint64_t now,
                          struct mailbox_msg *out)
{
    size_t k = 0;
    for (size_t i = view_len(v); i > 0 && k < max; i--) {
        const struct mailbox_msg *m = &v->m[i - 1];
        if (now >= v->dead_at && is_exhausted(mb, m) && m->lease_until <= now)
            continue;
        out[k] = *m;
        eng_buf_ref(out[k].body);
        k++;
    }
    return k;
}

/* ---------------------------------------------------------------- table */

static struct ctab *tab_new(size_t cap)
{
    struct ctab *t = calloc(1, sizeof(*t) + cap * sizeof(t->slot[0]));
    if (t != NULL)
        t->cap = cap;
    return t;
}

static void tab_free(struct eng_rcu_head *h)
{
    free(eng_container_of(h, struct ctab, rcu));
}

static void tab_place(struct ctab *t, struct channel *c)
{
    size_t i = c->hash & (t->cap - 1);
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed) != NULL)
        i = (i + 1) & (t->cap - 1);
    atomic_store_explicit(&t->slot[i], c, memory_order_release);
}

/* Channel `name` in t, or NULL. Inside a section, or holding mb->lock. */
static struct channel *tab_find(const struct ctab *t, uint64_t h, const char *name, size_t n)
{
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        struct channel *c = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (c == NULL)
            return NULL;
        if (c->hash == h && c->len == n && memcmp(c->name, name, n) == 0)
            return c;
    }
}

/* Channel `name` (hash h) in the published table, or NULL. Inside a
 * section. */
static struct channel *channel_find(struct mailbox *mb, uint64_t h, const char *name, size_t n)
{
    return tab_find(atomic_load_explicit(&mb->tab, memory_order_seq_cst), h, name, n);
}

/* ---------------------------------------------------------------- setup */

struct mailbox *mailbox_new(const struct mailbox_opts *opts, int *status)
{
    struct mailbox_opts o = {0};
    if (opts != NULL)
        o = *opts;
    struct mailbox *mb = calloc(1, sizeof(*mb));
    struct ctab *t = tab_new(TAB_MIN_SLOTS);
    if (mb == NULL || t == NULL) {
        free(mb);
        free(t);
        if (status)
            *status = ENG_E_NOMEM;
        return NULL;
    }
    atomic_init(&mb->tab, t);
    atomic_init(&mb->nchannels, 0);
    mb->max_channels = o.max_channels ? o.max_channels : MAILBOX_DEFAULT_MAX_CHANNELS;
    mb->max_depth = o.max_depth ? o.max_depth : MAILBOX_DEFAULT_MAX_DEPTH;
    mb->idem_window = o.idem_window_ms ? o.idem_window_ms : MAILBOX_DEFAULT_IDEM_WINDOW_MS;
    mb->lease = o.lease_ms ? o.lease_ms : MAILBOX_DEFAULT_LEASE_MS;
    if (mb->lease > MAILBOX_LEASE_MAX_MS)
        mb->lease = MAILBOX_LEASE_MAX_MS;
    mb->max_deliveries = o.max_deliveries ? o.max_deliveries : MAILBOX_DEFAULT_MAX_DELIVERIES;
    mb->max_msg = o.max_msg_bytes ? o.max_msg_bytes : MAILBOX_DEFAULT_MAX_MSG_BYTES;
    mb->max_idem = o.max_idem_keys ? o.max_idem_keys : 4 * mb->max_depth;
    if (o.seed != NULL)
        memcpy(mb->seed, o.seed, sizeof(mb->seed));
    else
        eng_random_key(mb->seed, sizeof(mb->seed));
    pthread_mutex_init(&mb->lock, NULL);
    if (status)
        *status = ENG_OK;
    return mb;
}

static void channel_free(struct channel *c)
{
    eng_rcu_release(&c->retired);
    struct mview *v = view_of(c);
    for (size_t i = 0, n = view_len(v); i < n; i++)
        eng_buf_unref(v->m[i].body);
    free(v);
    for (size_t i = 0; i < c->dlq_n; i++)
        eng_buf_unref(c->dlq[(c->dlq_head + i) % c->dlq_cap].body);
    free(c->dlq);
    for (struct idem *k = c->fifo_head, *next; k != NULL; k = next) {
        next = k->fifo_next;
        free(k);
    }
    eng_hmap_release(&c->idem);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void mailbox_free(struct mailbox *mb)
{
    if (mb == NULL)
        return;
    eng_rcu_release(&mb->retired);
    struct ctab *t = atomic_load_explicit(&mb->tab, memory_order_relaxed);
    for (size_t i = 0; i < t->cap; i++) {
        struct channel *c = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (c != NULL)
            channel_free(c);
    }
    free(t);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

/* Find channel `name` (without a lock); with `create`, make it if missing
 * (under mb->lock). Returns ENG_OK with *out, ENG_E_NOT_FOUND, ENG_E_FULL or
 * ENG_E_NOMEM. */
static int channel_get(struct mailbox *mb, const char *name, size_t n, bool create,
                       struct channel **out)
{
    uint64_t h = eng_siphash(mb->seed, name, n);
    int rc = eng_rcu_enter();
    if (rc != ENG_OK)
        return rc;
    struct channel *c = channel_find(mb, h, name, n);
    eng_rcu_exit();
    if (c != NULL) {
        *out = c;
        return ENG_OK;
    }
    if (!create)
        return ENG_E_NOT_FOUND;

    c = calloc(1, sizeof(*c) + n);
    if (c == NULL)
        return ENG_E_NOMEM;
    if (eng_hmap_init(&c->idem) != ENG_OK) {
        free(c);
        return ENG_E_NOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->view, NULL);
    c->next_id = 1;
    c->len = (uint8_t)n;
    memcpy(c->name, name, n);
    c->hash = h;

    pthread_mutex_lock(&mb->lock);
    struct ctab *t = atomic_load_explicit(&mb->tab, memory_order_relaxed);
    size_t nch = atomic_load_explicit(&mb->nchannels, memory_order_relaxed);
    struct channel *x = tab_find(t, h, name, n); /* lost a race? */
    if (x != NULL) {
        *out = x;
    } else if (nch >= mb->max_channels) {
        rc = ENG_E_FULL;
    } else if ((nch + 1) * 2 > t->cap) {
        struct ctab *nt = tab_new(t->cap * 2);
        if (nt == NULL) {
            rc = ENG_E_NOMEM;
        } else {
            for (size_t i = 0; i < t->cap; i++) {
                struct channel *y = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
                if (y != NULL)
                    tab_place(nt, y);
            }
            tab_place(nt, c);
            atomic_store_explicit(&mb->tab, nt, memory_order_seq_cst);
            eng_rcu_retire(&mb->retired, &t->rcu, tab_free);
            eng_rcu_reclaim(&mb->retired);
        }
    } else {
        tab_place(t, c);
    }
    if (rc == ENG_OK && x == NULL) {
        atomic_store_explicit(&mb->nchannels, nch + 1, memory_order_relaxed);
        *out = c;
        c = NULL;
    }
    pthread_mutex_unlock(&mb->lock);
    if (c != NULL)
        channel_free(c);
    return rc;
}

/* ---------------------------------------------------------------- channel
 * Everything below until the API section runs under the channel mutex. */

/* A key record, not linked yet (id 0); NULL when memory is short. */
static struct idem *idem_new(const struct mailbox *mb, const char *key, size_t key_len,
                             uint64_t body_hash, uint64_t expires)
{
    struct idem *k = malloc(sizeof(*k) + key_len);
    if (k == NULL)
        return NULL;
    k->len = (uint8_t)key_len;
    memcpy(k->key, key, key_len);
    k->node.hash = eng_siphash(mb->seed, key, key_len);
    k->expires = expires;
    k->fifo_next = NULL;
    k->id = 0;
    k->body_hash = body_hash;
    return k;
}

/* The live key of c with k's bytes, or NULL. */
static struct idem *idem_find(struct channel *c, const struct idem *k)
{
    struct probe pr = {k->key, k->len};
    struct eng_hnode *x = eng_hmap_find(&c->idem, k->node.hash, idem_eq, &pr);
    return x != NULL ? eng_container_of(x, struct idem, node) : NULL;
}

/* Link k as c's newest key: the FIFO is in send order, which is expiry
 * order since every key gets the same window. */
static void idem_link(struct channel *c, struct idem *k)
{
    eng_hmap_insert(&c->idem, &k->node);
    if (c->fifo_tail)
        c->fifo_tail->fifo_next = k;
    else
        c->fifo_head = k;
    c->fifo_tail = k;
}

static void idem_purge(struct channel *c, uint64_t now)
{
    while (c->fifo_head != NULL && c->fifo_head->expires <= now) {
        struct idem *k = c->fifo_head;
        c->fifo_head = k->fifo_next;
        if (c->fifo_head == NULL)
            c->fifo_tail = NULL;
        eng_hmap_remove(&c->idem, &k->node);
        free(k);
    }
}

/* The DLQ's length changes only here, under c->mu, but is also read
 * without it (mailbox_stats_walk()): a relaxed atomic store, so that
 * reader never sees a torn value. */
static void dlq_set_len(struct channel *c, size_t n)
{
    __atomic_store_n(&c->dlq_n, n, __ATOMIC_RELAXED);
}

/* Put a dead letter in the DLQ, which takes its own reference to the body
 * (the live set's is released with the view that held it). */
static void dlq_push(struct mailbox *mb, struct channel *c, const struct mailbox_msg *m)
{
    if (c->dlq == NULL) {
        c->dlq = calloc(mb->max_depth, sizeof(*c->dlq));
        if (c->dlq == NULL) {
            /* Cannot keep it: count it as dropped rather than lose it quietly. */
            c->dlq_dropped++;
            return;
        }
        c->dlq_cap = mb->max_depth;
    }
    if (c->dlq_n == mb->max_depth) {
        eng_buf_unref(c->dlq[c->dlq_head].body);
        c->dlq_head = (c->dlq_head + 1) % mb->max_depth;
        dlq_set_len(c, c->dlq_n - 1);
        c->dlq_dropped++;
    }
    struct mailbox_msg *d = &c->dlq[(c->dlq_head + c->dlq_n) % mb->max_depth];
    *d = *m;
    eng_buf_ref(d->body);
    dlq_set_len(c, c->dlq_n + 1);
}

/* Move messages whose last allowed lease has ended to the DLQ. ENG_OK or
 * ENG_E_NOMEM (nothing moved). */
static int sweep(struct mailbox *mb, struct channel *c, uint64_t now)
{
    struct mview *v = view_of(c);
    if (v == NULL || now < v->dead_at)
        return ENG_OK;
    size_t n = view_len(v), dead = 0;
    for (size_t i = 0; i < n; i++)
        dead += is_exhausted(mb, &v->m[i]) && v->m[i].lease_until <= now;
    struct mview *nv = NULL;
    if (dead < n && (nv = view_new(mb, n - dead)) == NULL)
        return ENG_E_NOMEM;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        const struct mailbox_msg *m = &v->m[i];
        if (is_exhausted(mb, m) && m->lease_until <= now) {
            dlq_push(mb, c, m);
            v->drop[v->nd++] = m->body;
        } else {
            nv->m[w++] = *m;
        }
    }
    view_publish(mb, c, v, nv);
    return ENG_OK;
}

/* Position of the first live message with an id ≥ id (the length if none). */
static size_t lower_bound(const struct mview *v, uint64_t id)
{
    size_t lo = 0, hi = view_len(v);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->m[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Position of message id, or SIZE_MAX. */
static size_t find_id(const struct mview *v, uint64_t id)
{
    size_t at = lower_bound(v, id);
    return at < view_len(v) && v->m[at].id == id ? at : SIZE_MAX;
}

/* depth, leased and oldest_ms of the live messages in v at now, into s;
 * returns how many of v's messages are dead letters not yet swept (not
 * counted in s). Reads only what a published view never changes, so it
 * serves both the locked stats and the lock-free walk. O(1) unless a lease
 * has ended or a dead letter is due since v was published; then O(length
 * of v). */
static uint64_t view_stats(const struct mailbox *mb, const struct mview *v, uint64_t now,
                           struct mailbox_channel_stats *s)
{
    size_t n = view_len(v);
    if (n == 0)
        return 0;
    bool due = now >= v->dead_at;
    if (!due && now < v->lease_min) {
        s->depth = n;
        s->leased = v->nlease;
        s->oldest_ms = v->m[0].sent_ms;
        return 0;
    }
    uint64_t dead = 0;
    for (size_t i = 0; i < n; i++) {
        const struct mailbox_msg *m = &v->m[i];
        if (due && is_exhausted(mb, m) && m->lease_until <= now) {
            dead++;
            continue;
        }
        if (s->depth++ == 0)
            s->oldest_ms = m->sent_ms;
        s->leased += m->lease_until > now;
    }
    return dead;
}

/* ---------------------------------------------------------------- API */

static int check_batch(const char *ch, size_t ch_len, size_t max)
{
    if (max == 0 || max > MAILBOX_BATCH_MAX)
        return ENG_E_INVALID;
    return eng_name_check(ch, ch_len);
}

int mailbox_send(struct mailbox *mb, const char *ch, size_t ch_len, const void *body, size_t n,
                 const char *key, size_t key_len, uint64_t now_ms, uint64_t *id_out, bool *dup_out)
{
    return mailbox_send_typed(mb, ch, ch_len, body, n, NULL, 0, key, key_len, now_ms, id_out,
                              dup_out);
}

int mailbox_send_typed(struct mailbox *mb, const char *ch, size_t ch_len, const void *body,
                       size_t n, const char *type, size_t type_len, const char *key, size_t key_len,
                       uint64_t now_ms, uint64_t *id_out, bool *dup_out)
{
    int rc = eng_name_check(ch, ch_len);
    if (rc != ENG_OK)
        return rc;
    if (key_len > MAILBOX_KEY_MAX_BYTES || (key == NULL && key_len > 0) || (body == NULL && n > 0))
        return ENG_E_INVALID;
    if (type_len > MAILBOX_TYPE_MAX || (type == NULL && type_len > 0))
        return ENG_E_INVALID;
    if (n > mb->max_msg)
        return ENG_E_TOO_LARGE;
    struct channel *c;
    rc = channel_get(mb, ch, ch_len, true, &c);
    if (rc != ENG_OK)
        return rc;

    /* Allocate before locking; whatever goes unused is freed after. */
    struct eng_buf *b = eng_buf_with_tail(body, n, type, type_len);
    struct idem *k = NULL;
    if (b == NULL)
        return ENG_E_NOMEM;
    if (key_len > 0 && (k = idem_new(mb, key, key_len, eng_siphash(mb->seed, body, n),
                                     now_ms + mb->idem_window)) == NULL) {
        eng_buf_unref(b);
        return ENG_E_NOMEM;
    }

    bool dup = false;
    pthread_mutex_lock(&c->mu);
    idem_purge(c, now_ms);
    size_t depth = view_len(view_of(c));
    struct idem *x = k != NULL ? idem_find(c, k) : NULL;
    if (x != NULL && x->body_hash != k->body_hash) {
        rc = ENG_E_CONFLICT;
    } else if (x != NULL) {
        *id_out = x->id;
        dup = true;
    } else if (depth >= mb->max_depth || (k != NULL && c->idem.n >= mb->max_idem)) {
        rc = ENG_E_BUSY;
    } else {
        struct mailbox_msg m = {
            .id = c->next_id, .sent_ms = now_ms, .body = b, .type_len = (uint8_t)type_len};
        if ((rc = view_put(mb, c, depth, &m)) == ENG_OK) {
            b = NULL;
            c->next_id++;
            if (k != NULL) {
                k->id = m.id;
                idem_link(c, k);
                k = NULL;
            }
            *id_out = m.id;
        }
    }
    pthread_mutex_unlock(&c->mu);
    eng_buf_unref(b);
    free(k);
    if (rc == ENG_OK && dup_out)
        *dup_out = dup;
    return rc;
}

int mailbox_recv(struct mailbox *mb, const char *ch, size_t ch_len, size_t max, uint64_t lease_ms,
                 uint64_t now_ms, struct mailbox_msg *out, size_t *n_out)
{
    return mailbox_lease(mb, ch, ch_len, max, lease_ms, 0, now_ms, out, n_out);
}

int mailbox_lease(struct mailbox *mb, const char *ch, size_t ch_len, size_t max, uint64_t lease_ms,
                  uint64_t owner, uint64_t now_ms, struct mailbox_msg *out, size_t *n_out)
{
    *n_out = 0;
    int rc = check_batch(ch, ch_len, max);
    if (rc != ENG_OK)
        return rc;
    if (lease_ms > MAILBOX_LEASE_MAX_MS)
        return ENG_E_INVALID;
    if (lease_ms == 0)
        lease_ms = mb->lease;
    struct channel *c;
    rc = channel_get(mb, ch, ch_len, false, &c);
    if (rc != ENG_OK)
        return rc == ENG_E_NOT_FOUND ? ENG_OK : rc; /* unknown channel: empty */

    size_t k = 0;
    pthread_mutex_lock(&c->mu);
    rc = sweep(mb, c, now_ms);
    struct mview *v = view_of(c), *nv = NULL;
    size_t n = view_len(v), visible = 0;
    for (size_t i = 0; rc == ENG_OK && i < n && visible < max; i++)
        visible += v->m[i].lease_until <= now_ms;
    if (visible > 0 && (nv = view_new(mb, n)) == NULL)
        rc = ENG_E_NOMEM;
    if (nv != NULL) {
        memcpy(nv->m, v->m, n * sizeof(nv->m[0]));
        for (size_t i = 0; i < n && k < max; i++) {
            struct mailbox_msg *m = &nv->m[i];
            if (m->lease_until > now_ms)
                continue; /* leased to someone else */
            m->lease_until = now_ms + lease_ms;
            m->owner = owner;
            m->deliveries++;
            out[k] = *m;
            eng_buf_ref(out[k].body);
            k++;
        }
        view_publish(mb, c, v, nv);
    }
    pthread_mutex_unlock(&c->mu);
    *n_out = k;
    return rc;
}

int mailbox_ack(struct mailbox *mb, const char *ch, size_t ch_len, const uint64_t *ids, size_t n,
                size_t *acked_out)
{
    if (acked_out)
        *acked_out = 0;
    int rc = eng_name_check(ch, ch_len);
    if (rc != ENG_OK)
        return rc;
    if (n > MAILBOX_BATCH_MAX || (ids == NULL && n > 0))
        return ENG_E_INVALID;
    struct channel *c;
    rc = channel_get(mb, ch, ch_len, false, &c);
    if (rc != ENG_OK)
        return rc;

    /* Positions of the acked messages, ascending and distinct. */
    size_t at[MAILBOX_BATCH_MAX];
    size_t nd = 0;
    pthread_mutex_lock(&c->mu);
    struct mview *v = view_of(c), *nv = NULL;
    size_t vn = view_len(v);
    for (size_t i = 0; v != NULL && i < n; i++) {
        size_t p = find_id(v, ids[i]), j = nd;
        if (p == SIZE_MAX)
            continue;
        while (j > 0 && at[j - 1] > p)
            j--;
        if (j > 0 && at[j - 1] == p)
            continue; /* the same id twice */
        memmove(&at[j + 1], &at[j], (nd - j) * sizeof(at[0]));
        at[j] = p;
        nd++;
    }
    if (nd > 0 && nd < vn && (nv = view_new(mb, vn - nd)) == NULL) {
        rc = ENG_E_NOMEM;
        nd = 0;
    }
    if (nd > 0) {
        size_t w = 0, d = 0;
        for (size_t i = 0; i < vn; i++) {
            if (d < nd && at[d] == i) {
                v->drop[v->nd++] = v->m[i].body;
                d++;
            } else {
                nv->m[w++] = v->m[i];
            }
        }
        view_publish(mb, c, v, nv);
    }
    pthread_mutex_unlock(&c->mu);
    if (acked_out)
        *acked_out = nd;
    return rc;
}

/* PEEK when a dead letter is due: sweep first, as a write. */
static int peek_locked(struct mailbox *mb, struct channel *c, size_t max, uint64_t now_ms,
                       struct mailbox_msg *out, size_t *n_out)
{
    pthread_mutex_lock(&c->mu);
    int rc = sweep(mb, c, now_ms);
    if (rc == ENG_OK)
        *n_out = view_newest(mb, view_of(c), max, now_ms, out);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int mailbox_peek(struct mailbox *mb, const char *ch, size_t ch_len, size_t max, uint64_t now_ms,
                 struct mailbox_msg *out, size_t *n_out)
{
    *n_out = 0;
    int rc = check_batch(ch, ch_len, max);
    if (rc != ENG_OK)
        return rc;
    uint64_t h = eng_siphash(mb->seed, ch, ch_len);
    if ((rc = eng_rcu_enter()) != ENG_OK)
        return rc;
    struct channel *c = channel_find(mb, h, ch, ch_len);
    if (c == NULL) {
        eng_rcu_exit();
        return ENG_OK; /* unknown channel: empty */
    }
    const struct mview *v = atomic_load_explicit(&c->view, memory_order_seq_cst);
    if (v != NULL && now_ms >= v->dead_at) {
        eng_rcu_exit();
        return peek_locked(mb, c, max, now_ms, out, n_out);
    }
    *n_out = view_newest(mb, v, max, now_ms, out);
    eng_rcu_exit();
    return ENG_OK;
}

int mailbox_dlq_peek(struct mailbox *mb, const char *ch, size_t ch_len, size_t max, uint64_t now_ms,
                     struct mailbox_msg *out, size_t *n_out)
{
    *n_out = 0;
    int rc = check_batch(ch, ch_len, max);
    if (rc != ENG_OK)
        return rc;
    struct channel *c;
    rc = channel_get(mb, ch, ch_len, false, &c);
    if (rc != ENG_OK)
        return rc == ENG_E_NOT_FOUND ? ENG_OK : rc;
    size_t k = 0;
    pthread_mutex_lock(&c->mu);
    rc = sweep(mb, c, now_ms);
    for (size_t i = c->dlq_n; rc == ENG_OK && i > 0 && k < max; i--) {
        out[k] = c->dlq[(c->dlq_head + i - 1) % mb->max_depth];
        eng_buf_ref(out[k].body);
        k++;
    }
    pthread_mutex_unlock(&c->mu);
    *n_out = k;
    return rc;
}

int mailbox_channel_stats(struct mailbox *mb, const char *ch, size_t ch_len, uint64_t now_ms,
                          struct mailbox_channel_stats *out)
{
    memset(out, 0, sizeof(*out));
    int rc = eng_name_check(ch, ch_len);
    if (rc != ENG_OK)
        return rc;
    struct channel *c;
    rc = channel_get(mb, ch, ch_len, false, &c);
    if (rc != ENG_OK)
        return rc;
    pthread_mutex_lock(&c->mu);
    rc = sweep(mb, c, now_ms);
    idem_purge(c, now_ms);
    out->dlq = c->dlq_n + view_stats(mb, view_of(c), now_ms, out);
    out->dlq_dropped = c->dlq_dropped;
    out->next_id = c->next_id;
    out->idem_keys = c->idem.n;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int mailbox_stats_walk(struct mailbox *mb, uint64_t now_ms, mailbox_stats_fn fn, void *arg)
{
    int rc = eng_rcu_enter();
    if (rc != ENG_OK)
        return rc;
    const struct ctab *t = atomic_load_explicit(&mb->tab, memory_order_seq_cst);
    for (size_t i = 0; rc == ENG_OK && i < t->cap; i++) {
        const struct channel *c = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (c == NULL)
            continue;
        struct mailbox_channel_stats st = {0};
        const struct mview *v = atomic_load_explicit(&c->view, memory_order_seq_cst);
        st.dlq = __atomic_load_n(&c->dlq_n, __ATOMIC_RELAXED) + view_stats(mb, v, now_ms, &st);
        rc = fn(arg, c->name, c->len, &st);
    }
    eng_rcu_exit();
    return rc;
}

size_t mailbox_channels(struct mailbox *mb)
{
    return atomic_load_explicit(&mb->nchannels, memory_order_relaxed);
}

void mailbox_msgs_release(struct mailbox_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        eng_buf_unref(msgs[i].body);
        msgs[i].body = NULL;
    }
}

/* ---------------------------------------------------------------- settle */

static enum mailbox_outcome settle_one(struct mailbox_msg *m, enum mailbox_settle_op op,
                                       uint64_t owner, uint64_t ms, uint64_t now)
{
    bool leased = m->lease_until > now;
    if (leased && owner != 0 && m->owner != 0 && m->owner != owner)
        return MAILBOX_FOREIGN;
    if (op == MAILBOX_ACK)
        return MAILBOX_DONE;
    if (!leased)
        return MAILBOX_NOT_LEASED;
    m->lease_until = now + ms;
    if (op == MAILBOX_NACK)
        m->owner = 0; /* released: whoever receives it next holds it */
    return MAILBOX_DONE;
}

int mailbox_settle(struct mailbox *mb, const char *ch, size_t ch_len, enum mailbox_settle_op op,
                   const uint64_t *ids, size_t n, uint64_t owner, uint64_t ms, uint64_t now_ms,
                   enum mailbox_outcome *outcome)
{
    int rc = eng_name_check(ch, ch_len);
    if (rc != ENG_OK)
        return rc;
    if (n > MAILBOX_BATCH_MAX || (ids == NULL && n > 0) || ms > MAILBOX_LEASE_MAX_MS)
        return ENG_E_INVALID;
    if (op == MAILBOX_ACK) {
        /* Acks go through mailbox_ack, after the ownership check here. */
        struct channel *c;
        if ((rc = channel_get(mb, ch, ch_len, false, &c)) != ENG_OK)
            return rc;
        uint64_t ok[MAILBOX_BATCH_MAX];
        size_t nok = 0;
        pthread_mutex_lock(&c->mu);
        const struct mview *v = view_of(c);
        for (size_t i = 0; i < n; i++) {
            size_t p = v ? find_id(v, ids[i]) : SIZE_MAX;
            struct mailbox_msg m;
            if (p != SIZE_MAX)
                m = v->m[p];
            outcome[i] = p == SIZE_MAX ? MAILBOX_UNKNOWN : settle_one(&m, op, owner, ms, now_ms);
            if (outcome[i] == MAILBOX_DONE)
                ok[nok++] = ids[i];
        }
        pthread_mutex_unlock(&c->mu);
        /* Between the unlock and the ack only another ack or a lease can
         * happen: an id acked twice is counted once, and a message leased
         * meanwhile by another owner is acked by the one who received it
         * before — at-least-once allows both. */
        return nok ? mailbox_ack(mb, ch, ch_len, ok, nok, NULL) : ENG_OK;
    }
    struct channel *c;
    if ((rc = channel_get(mb, ch, ch_len, false, &c)) != ENG_OK)
        return rc;
    pthread_mutex_lock(&c->mu);
    struct mview *v = view_of(c), *nv = NULL;
    size_t vn = view_len(v);
    if (vn > 0 && (nv = view_new(mb, vn)) == NULL) {
        pthread_mutex_unlock(&c->mu);
        return ENG_E_NOMEM;
    }
    if (nv != NULL)
        memcpy(nv->m, v->m, vn * sizeof(nv->m[0]));
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        size_t p = nv ? find_id(nv, ids[i]) : SIZE_MAX;
        outcome[i] = p == SIZE_MAX ? MAILBOX_UNKNOWN : settle_one(&nv->m[p], op, owner, ms, now_ms);
        changed |= outcome[i] == MAILBOX_DONE;
    }
    if (changed)
        view_publish(mb, c, v, nv);
    else
        free(nv);
    pthread_mutex_unlock(&c->mu);
    return ENG_OK;
}

int mailbox_redrive(struct mailbox *mb, const char *ch, size_t ch_len, size_t max, uint64_t now_ms,
                    size_t *moved_out)
{
    *moved_out = 0;
    int rc = check_batch(ch, ch_len, max);
    if (rc != ENG_OK)
        return rc;
    struct channel *c;
    rc = channel_get(mb, ch, ch_len, false, &c);
    if (rc != ENG_OK)
        return rc == ENG_E_NOT_FOUND ? ENG_OK : rc;
    pthread_mutex_lock(&c->mu);
    rc = sweep(mb, c, now_ms);
    struct mview *v = view_of(c), *nv = NULL;
    size_t vn = view_len(v), k = c->dlq_n < max ? c->dlq_n : max;
    if (vn + k > mb->max_depth)
        k = mb->max_depth > vn ? mb->max_depth - vn : 0;
    if (rc == ENG_OK && k > 0 && (nv = view_new(mb, vn + k)) == NULL)
        rc = ENG_E_NOMEM;
    if (nv != NULL) {
        /* Merge the k oldest dead letters (ascending ids) into the live
         * messages by id: a view stays sorted. The DLQ's references move
         * to the live set. */
        size_t a = 0, b = 0, w = 0;
        while (a < vn || b < k) {
            const struct mailbox_msg *d = b < k ? &c->dlq[(c->dlq_head + b) % mb->max_depth] : NULL;
            if (a < vn && (d == NULL || v->m[a].id < d->id)) {
                nv->m[w++] = v->m[a++];
            } else {
                struct mailbox_msg m = *d;
                m.deliveries = 0;
                m.lease_until = 0;
                m.owner = 0;
                nv->m[w++] = m;
                b++;
            }
        }
        c->dlq_head = (c->dlq_head + k) % mb->max_depth;
        view_publish(mb, c, v, nv);
        dlq_set_len(c, c->dlq_n - k); /* after: a lock-free reader never misses them */
        *moved_out = k;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---------------------------------------------------------------- restore
 * A saved state put back (a service's log replayed at start) and the state
 * read out for saving. Nothing here checks max_depth or max_idem_keys:
 * what was accepted once is never refused when it is put back. */

int mailbox_restore_msg(struct mailbox *mb, const char *ch, size_t ch_len,
                        const struct mailbox_saved_msg *s, uint64_t now_ms)
{
    int rc = eng_name_check(ch, ch_len);
    if (rc != ENG_OK)
        return rc;
    if (s->id == 0 || s->id == UINT64_MAX || s->key_len > MAILBOX_KEY_MAX_BYTES ||
        (s->key == NULL && s->key_len > 0) || (s->body == NULL && s->n > 0) ||
        s->type_len > MAILBOX_TYPE_MAX || (s->type == NULL && s->type_len > 0))
        return ENG_E_INVALID;
    struct channel *c;
    if ((rc = channel_get(mb, ch, ch_len, true, &c)) != ENG_OK)
        return rc;
    struct eng_buf *b = eng_buf_with_tail(s->body, s->n, s->type, s->type_len);
    struct idem *k = NULL;
    uint64_t expires = s->sent_ms + mb->idem_window;
    if (b == NULL)
        return ENG_E_NOMEM;
    if (s->key_len > 0 && expires > now_ms &&
        (k = idem_new(mb, s->key, s->key_len, eng_siphash(mb->seed, s->body, s->n), expires)) ==
            NULL) {
        eng_buf_unref(b);
        return ENG_E_NOMEM;
    }

    pthread_mutex_lock(&c->mu);
    idem_purge(c, now_ms);
    const struct mview *v = view_of(c);
    size_t at = lower_bound(v, s->id);
    if (at == view_len(v) || v->m[at].id != s->id) {
        struct mailbox_msg m = {
            .id = s->id, .sent_ms = s->sent_ms, .body = b, .type_len = (uint8_t)s->type_len};
        if ((rc = view_put(mb, c, at, &m)) == ENG_OK)
            b = NULL;
    }
    if (rc == ENG_OK && c->next_id <= s->id)
        c->next_id = s->id + 1;
    if (rc == ENG_OK && k != NULL && idem_find(c, k) == NULL) {
        k->id = s->id;
        idem_link(c, k);
        k = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    eng_buf_unref(b);
    free(k);
    return rc;
}

int mailbox_restore_key(struct mailbox *mb, const char *ch, size_t ch_len, const char *key,
                        size_t key_len, uint64_t id, uint64_t body_hash, uint64_t expires_ms,
                        uint64_t now_ms)
{
    int rc = eng_name_check(ch, ch_len);
    if (rc != ENG_OK)
        return rc;
    if (key == NULL || key_len == 0 || key_len > MAILBOX_KEY_MAX_BYTES || id == 0)
        return ENG_E_INVALID;
    if (expires_ms <= now_ms)
        return ENG_OK; /* its window has passed */
    struct channel *c;
    if ((rc = channel_get(mb, ch, ch_len, true, &c)) != ENG_OK)
        return rc;
    struct idem *k = idem_new(mb, key, key_len, body_hash, expires_ms);
    if (k == NULL)
        return ENG_E_NOMEM;
    k->id = id;
    pthread_mutex_lock(&c->mu);
    idem_purge(c, now_ms);
    if (idem_find(c, k) == NULL) {
        /* Keys come back in the order they were saved, which is send
         * order; one out of order would only be purged a little late. */
        idem_link(c, k);
        k = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(k);
    return ENG_OK;
}

int mailbox_restore_next_id(struct mailbox *mb, const char *ch, size_t ch_len, uint64_t next_id)
{
    int rc = eng_name_check(ch, ch_len);
    if (rc != ENG_OK)
        return rc;
    if (next_id == 0)
        return ENG_E_INVALID;
    struct channel *c;
    if ((rc = channel_get(mb, ch, ch_len, true, &c)) != ENG_OK)
        return rc;
    pthread_mutex_lock(&c->mu);
    if (c->next_id < next_id)
        c->next_id = next_id;
    pthread_mutex_unlock(&c->mu);
    return ENG_OK;
}

static int by_id(const void *a, const void *b)
{
    uint64_t x = ((const struct mailbox_msg *)a)->id, y = ((const struct mailbox_msg *)b)->id;
    return (x > y) - (x < y);
}

/* Copy channel c's saved state into d (references to the bodies), under
 * its mutex. ENG_OK or ENG_E_NOMEM (d left empty). */
static int channel_dump(struct mailbox *mb, struct channel *c, uint64_t now, struct mailbox_dump *d)
{
    int rc = ENG_OK;

    pthread_mutex_lock(&c->mu);
    idem_purge(c, now);
    const struct mview *v = view_of(c);
    size_t vn = view_len(v), n = vn + c->dlq_n;
    d->next_id = c->next_id;
    d->msgs = n ? malloc(n * sizeof(d->msgs[0])) : NULL;
    d->keys = c->idem.n ? malloc(c->idem.n * sizeof(d->keys[0])) : NULL;
    if ((n && d->msgs == NULL) || (c->idem.n && d->keys == NULL)) {
        rc = ENG_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < vn; i++)
        d->msgs[d->nmsgs++] = v->m[i];
    for (size_t i = 0; i < c->dlq_n; i++)
        d->msgs[d->nmsgs++] = c->dlq[(c->dlq_head + i) % c->dlq_cap];
    for (size_t i = 0; i < d->nmsgs; i++)
        eng_buf_ref(d->msgs[i].body);
    for (const struct idem *k = c->fifo_head; k != NULL; k = k->fifo_next) {
        struct mailbox_key_state *o = &d->keys[d->nkeys++];
        o->id = k->id;
        o->expires_ms = k->expires;
        o->body_hash = k->body_hash;
        o->len = k->len;
        memcpy(o->key, k->key, k->len);
    }
out:
    pthread_mutex_unlock(&c->mu);
    if (rc != ENG_OK) {
        free(d->msgs);
        free(d->keys);
        d->msgs = NULL;
        d->keys = NULL;
    } else if (c->dlq_n > 0) {
        /* Dead letters left the live array in lease order: one id order. */
        qsort(d->msgs, d->nmsgs, sizeof(d->msgs[0]), by_id);
    }
    return rc;
}

int mailbox_dump(struct mailbox *mb, uint64_t now_ms, mailbox_dump_fn fn, void *arg)
{
    /* The channels as they are now (the table changes only under mb->lock,
     * and channels are never freed while the mailbox lives). */
    pthread_mutex_lock(&mb->lock);
    struct ctab *t = atomic_load_explicit(&mb->tab, memory_order_relaxed);
    size_t nch = 0;
    struct channel **chans = malloc(t->cap * sizeof(chans[0]));
    for (size_t i = 0; chans != NULL && i < t->cap; i++) {
        struct channel *c = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (c != NULL)
            chans[nch++] = c;
    }
    pthread_mutex_unlock(&mb->lock);
    if (chans == NULL)
        return ENG_E_NOMEM;

    int rc = ENG_OK;
    for (size_t i = 0; rc == ENG_OK && i < nch; i++) {
        struct mailbox_dump d = {.ch = chans[i]->name, .ch_len = chans[i]->len};
        if ((rc = channel_dump(mb, chans[i], now_ms, &d)) != ENG_OK)
            break;
        rc = fn(arg, &d);
        mailbox_msgs_release(d.msgs, d.nmsgs);
        free(d.msgs);
        free(d.keys);
    }
    free(chans);
    return rc;
}
