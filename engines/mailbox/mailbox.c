/*
 * mailbox.c — channels of messages with leases, idempotency keys and a
 * dead-letter queue.
 *
 * Per channel, live messages sit in one array sorted by id (ids only grow and
 * removals keep the order), so ACK finds an id by binary search and RECV/PEEK
 * walk from either end. The array is bounded by max_depth, so the O(depth)
 * walks are bounded too. Dead letters go to a ring of max_depth entries.
 * Idempotency keys live in a keyed hash table plus a FIFO in send order,
 * which is expiry order since every key gets the same window.
 *
 * Channels are never removed while the mailbox lives, so a channel pointer
 * found under the table lock stays valid after it is released.
 */
#include "engines/mailbox/mailbox.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct idem {
    struct eng_hnode node;
    struct idem *fifo_next;
    uint64_t expires;
    uint64_t id;
    uint8_t len;
    char key[];
};

struct channel {
    struct eng_hnode node;
    pthread_mutex_t mu;
    uint64_t next_id;
    struct mailbox_msg *v; /* live messages, ascending id */
    size_t n, cap;
    size_t leased_exhausted; /* live messages with deliveries ≥ K */
    struct mailbox_msg *dlq; /* ring of max_depth entries, lazily allocated */
    size_t dlq_head, dlq_n, dlq_cap;
    uint64_t dlq_dropped;
    struct eng_hmap idem;
    struct idem *fifo_head, *fifo_tail;
    uint8_t len;
    char name[];
};

struct mailbox {
    pthread_rwlock_t lock; /* guards `channels` */
    struct eng_hmap channels;
    uint8_t seed[16];
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

static bool channel_eq(const struct eng_hnode *node, const void *arg)
{
    const struct channel *c = eng_container_of(node, struct channel, node);
    const struct probe *pr = arg;
    return c->len == pr->n && memcmp(c->name, pr->p, pr->n) == 0;
}

static bool idem_eq(const struct eng_hnode *node, const void *arg)
{
    const struct idem *k = eng_container_of(node, struct idem, node);
    const struct probe *pr = arg;
    return k->len == pr->n && memcmp(k->key, pr->p, pr->n) == 0;
}

/* ---------------------------------------------------------------- setup */

struct mailbox *mailbox_new(const struct mailbox_opts *opts, int *status)
{
    struct mailbox_opts o = {0};
    if (opts != NULL)
        o = *opts;
    struct mailbox *mb = calloc(1, sizeof(*mb));
    if (mb == NULL || eng_hmap_init(&mb->channels) != ENG_OK) {
        free(mb);
        if (status)
            *status = ENG_E_NOMEM;
        return NULL;
    }
    mb->max_channels = o.max_channels ? o.max_channels : MAILBOX_DEFAULT_MAX_CHANNELS;
    mb->max_depth = o.max_depth ? o.max_depth : MAILBOX_DEFAULT_MAX_DEPTH;
    mb->idem_window = o.idem_window_ms ? o.idem_window_ms : MAILBOX_DEFAULT_IDEM_WINDOW_MS;
    mb->lease = o.lease_ms ? o.lease_ms : MAILBOX_DEFAULT_LEASE_MS;
    if (mb->lease > MAILBOX_LEASE_MAX_MS)
        mb->lease = MAILBOX_LEASE_MAX_MS;
    mb->max_deliveries = o.max_deliveries ? o.max_deliveries : MAILBOX_DEFAULT_MAX_DELIVERIES;
    mb->max_msg = o.max_msg_bytes ? o.max_msg_bytes : MAILBOX_DEFAULT_MAX_MSG_BYTES;
    mb->max_idem = o.max_idem_keys ? o.max_idem_keys : 4 * mb->max_depth;
    eng_random_key(mb->seed, sizeof(mb->seed));
    pthread_rwlock_init(&mb->lock, NULL);
    if (status)
        *status = ENG_OK;
    return mb;
}

static void channel_free(struct channel *c)
{
    for (size_t i = 0; i < c->n; i++)
        eng_buf_unref(c->v[i].body);
    free(c->v);
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
    for (size_t i = 0; i < mb->channels.nb; i++) {
        struct eng_hnode *x = mb->channels.b[i], *next;
        for (; x != NULL; x = next) {
            next = x->next;
            channel_free(eng_container_of(x, struct channel, node));
        }
    }
    eng_hmap_release(&mb->channels);
    pthread_rwlock_destroy(&mb->lock);
    free(mb);
}

/* Find channel `name`; with `create`, make it if missing. Returns ENG_OK
 * with *out, ENG_E_NOT_FOUND, ENG_E_FULL or ENG_E_NOMEM. */
static int channel_get(struct mailbox *mb, const char *name, size_t n, bool create,
                       struct channel **out)
{
    struct probe pr = {name, n};
    uint64_t h = eng_siphash(mb->seed, name, n);
    pthread_rwlock_rdlock(&mb->lock);
    struct eng_hnode *x = eng_hmap_find(&mb->channels, h, channel_eq, &pr);
    pthread_rwlock_unlock(&mb->lock);
    if (x != NULL) {
        *out = eng_container_of(x, struct channel, node);
        return ENG_OK;
    }
    if (!create)
        return ENG_E_NOT_FOUND;

    struct channel *c = calloc(1, sizeof(*c) + n);
    if (c == NULL)
        return ENG_E_NOMEM;
    if (eng_hmap_init(&c->idem) != ENG_OK) {
        free(c);
        return ENG_E_NOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->next_id = 1;
    c->len = (uint8_t)n;
    memcpy(c->name, name, n);
    c->node.hash = h;

    int rc = ENG_OK;
    pthread_rwlock_wrlock(&mb->lock);
    x = eng_hmap_find(&mb->channels, h, channel_eq, &pr); /* lost a race? */
    if (x != NULL) {
        *out = eng_container_of(x, struct channel, node);
    } else if (mb->channels.n >= mb->max_channels) {
        rc = ENG_E_FULL;
    } else {
        eng_hmap_insert(&mb->channels, &c->node);
        *out = c;
        c = NULL;
    }
    pthread_rwlock_unlock(&mb->lock);
    if (c != NULL)
        channel_free(c);
    return rc;
}

/* ---------------------------------------------------------------- channel
 * Everything below until the API section runs under the channel mutex. */

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

static void dlq_push(struct mailbox *mb, struct channel *c, const struct mailbox_msg *m)
{
    if (c->dlq == NULL) {
        c->dlq = calloc(mb->max_depth, sizeof(*c->dlq));
        if (c->dlq == NULL) {
            /* Cannot keep it: count it as dropped rather than lose it quietly. */
            eng_buf_unref(m->body);
            c->dlq_dropped++;
            return;
        }
        c->dlq_cap = mb->max_depth;
    }
    if (c->dlq_n == mb->max_depth) {
        eng_buf_unref(c->dlq[c->dlq_head].body);
        c->dlq_head = (c->dlq_head + 1) % mb->max_depth;
        c->dlq_n--;
        c->dlq_dropped++;
    }
    c->dlq[(c->dlq_head + c->dlq_n) % mb->max_depth] = *m;
    c->dlq_n++;
}

/* Move messages whose last allowed lease has ended to the DLQ. */
static void sweep(struct mailbox *mb, struct channel *c, uint64_t now)
{
    if (c->leased_exhausted == 0)
        return;
    size_t w = 0;
    for (size_t r = 0; r < c->n; r++) {
        struct mailbox_msg *m = &c->v[r];
        if (m->deliveries >= mb->max_deliveries && m->lease_until <= now) {
            dlq_push(mb, c, m);
            c->leased_exhausted--;
        } else {
            c->v[w++] = *m;
        }
    }
    c->n = w;
}

static size_t find_id(const struct channel *c, uint64_t id)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->v[lo].id == id ? lo : SIZE_MAX;
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
    int rc = eng_name_check(ch, ch_len);
    if (rc != ENG_OK)
        return rc;
    if (key_len > MAILBOX_KEY_MAX_BYTES || (key == NULL && key_len > 0) || (body == NULL && n > 0))
        return ENG_E_INVALID;
    if (n > mb->max_msg)
        return ENG_E_TOO_LARGE;
    struct channel *c;
    rc = channel_get(mb, ch, ch_len, true, &c);
    if (rc != ENG_OK)
        return rc;

    /* Allocate before locking; whatever goes unused is freed after. */
    struct eng_buf *b = eng_buf_from(body, n);
    struct idem *k = NULL;
    if (b == NULL)
        return ENG_E_NOMEM;
    if (key_len > 0) {
        k = malloc(sizeof(*k) + key_len);
        if (k == NULL) {
            eng_buf_unref(b);
            return ENG_E_NOMEM;
        }
        k->len = (uint8_t)key_len;
        memcpy(k->key, key, key_len);
        k->node.hash = eng_siphash(mb->seed, key, key_len);
        k->expires = now_ms + mb->idem_window;
        k->fifo_next = NULL;
    }

    bool dup = false;
    pthread_mutex_lock(&c->mu);
    idem_purge(c, now_ms);
    struct eng_hnode *x = NULL;
    if (k != NULL) {
        struct probe pr = {key, key_len};
        x = eng_hmap_find(&c->idem, k->node.hash, idem_eq, &pr);
    }
    if (x != NULL) {
        *id_out = eng_container_of(x, struct idem, node)->id;
        dup = true;
    } else if (c->n >= mb->max_depth || (k != NULL && c->idem.n >= mb->max_idem)) {
        rc = ENG_E_BUSY;
    } else {
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 16;
            if (cap > mb->max_depth)
                cap = mb->max_depth;
            struct mailbox_msg *v = realloc(c->v, cap * sizeof(*v));
            if (v == NULL) {
                rc = ENG_E_NOMEM;
                goto unlock;
            }
            c->v = v;
            c->cap = cap;
        }
        uint64_t id = c->next_id++;
        c->v[c->n++] = (struct mailbox_msg){.id = id, .sent_ms = now_ms, .body = b};
        b = NULL;
        if (k != NULL) {
            k->id = id;
            eng_hmap_insert(&c->idem, &k->node);
            if (c->fifo_tail)
                c->fifo_tail->fifo_next = k;
            else
                c->fifo_head = k;
            c->fifo_tail = k;
            k = NULL;
        }
        *id_out = id;
    }
unlock:
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
    *n_out = 0;
    int rc = check_batch(ch, ch_len, max);
    if (rc != ENG_OK)
        return rc;
    if (lease_ms > MAILBOX_LEASE_MAX_MS)
        return ENG_E_INVALID;
    if (lease_ms == 0)
        lease_ms = mb->lease;
    struct channel *c;
    if (channel_get(mb, ch, ch_len, false, &c) != ENG_OK)
        return ENG_OK; /* unknown channel: empty */

    size_t k = 0;
    pthread_mutex_lock(&c->mu);
    sweep(mb, c, now_ms);
    for (size_t i = 0; i < c->n && k < max; i++) {
        struct mailbox_msg *m = &c->v[i];
        if (m->lease_until > now_ms)
            continue; /* leased to someone else */
        m->lease_until = now_ms + lease_ms;
        m->deliveries++;
        if (m->deliveries == mb->max_deliveries)
            c->leased_exhausted++;
        out[k] = *m;
        eng_buf_ref(out[k].body);
        k++;
    }
    pthread_mutex_unlock(&c->mu);
    *n_out = k;
    return ENG_OK;
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

    struct eng_buf *drop[MAILBOX_BATCH_MAX];
    size_t nd = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        size_t at = find_id(c, ids[i]);
        if (at == SIZE_MAX)
            continue;
        struct mailbox_msg *m = &c->v[at];
        if (m->deliveries >= mb->max_deliveries)
            c->leased_exhausted--;
        drop[nd++] = m->body;
        memmove(m, m + 1, (c->n - at - 1) * sizeof(*m));
        c->n--;
    }
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < nd; i++)
        eng_buf_unref(drop[i]);
    if (acked_out)
        *acked_out = nd;
    return ENG_OK;
}

int mailbox_peek(struct mailbox *mb, const char *ch, size_t ch_len, size_t max, uint64_t now_ms,
                 struct mailbox_msg *out, size_t *n_out)
{
    *n_out = 0;
    int rc = check_batch(ch, ch_len, max);
    if (rc != ENG_OK)
        return rc;
    struct channel *c;
    if (channel_get(mb, ch, ch_len, false, &c) != ENG_OK)
        return ENG_OK;
    size_t k = 0;
    pthread_mutex_lock(&c->mu);
    sweep(mb, c, now_ms);
    for (size_t i = c->n; i > 0 && k < max; i--) {
        out[k] = c->v[i - 1];
        eng_buf_ref(out[k].body);
        k++;
    }
    pthread_mutex_unlock(&c->mu);
    *n_out = k;
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
    if (channel_get(mb, ch, ch_len, false, &c) != ENG_OK)
        return ENG_OK;
    size_t k = 0;
    pthread_mutex_lock(&c->mu);
    sweep(mb, c, now_ms);
    for (size_t i = c->dlq_n; i > 0 && k < max; i--) {
        out[k] = c->dlq[(c->dlq_head + i - 1) % mb->max_depth];
        eng_buf_ref(out[k].body);
        k++;
    }
    pthread_mutex_unlock(&c->mu);
    *n_out = k;
    return ENG_OK;
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
    sweep(mb, c, now_ms);
    idem_purge(c, now_ms);
    out->depth = c->n;
    for (size_t i = 0; i < c->n; i++)
        out->leased += c->v[i].lease_until > now_ms;
    out->dlq = c->dlq_n;
    out->dlq_dropped = c->dlq_dropped;
    out->next_id = c->next_id;
    out->idem_keys = c->idem.n;
    pthread_mutex_unlock(&c->mu);
    return ENG_OK;
}

size_t mailbox_channels(struct mailbox *mb)
{
    pthread_rwlock_rdlock(&mb->lock);
    size_t n = mb->channels.n;
    pthread_rwlock_unlock(&mb->lock);
    return n;
}

void mailbox_msgs_release(struct mailbox_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        eng_buf_unref(msgs[i].body);
        msgs[i].body = NULL;
    }
}
