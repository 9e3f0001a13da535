/*
 * memo.c — thread-local, exact-match content memo.
 */
#include "view/memo.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engines/common/hash.h"
#include "ops/metrics.h"

struct slot {
    uint64_t h;
    uint8_t *key; /* domain byte, extra, NUL, key bytes */
    size_t key_len;
    void *val;
    size_t len;
};

static __thread struct slot *slots; /* this worker's table */
static __thread size_t bytes;
static __thread uint8_t sipkey[16];
static atomic_ulong hits, misses; /* all workers, for /metrics */

static double read_hits(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&hits);
}

static double read_misses(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&misses);
}

static const struct metric_def METRICS[] = {
    {"view_memo_hits_total", METRIC_COUNTER, "Plans and renderings reused for identical content.",
     .read = read_hits},
    {"view_memo_misses_total", METRIC_COUNTER,
     "Plans and renderings derived from content seen for the first time.", .read = read_misses},
};

void memo_init(void)
{
    metrics_register(METRIC_TABLE(METRICS));
}

/* A key as looked up: stored as domain tag, extra, NUL, key bytes. */
struct mkey {
    enum memo_domain d;
    const char *extra;
    size_t el; /* strlen(extra) */
    const uint8_t *k;
    size_t n;
    uint64_t h; /* slot hash */
};

static bool key_equal(const struct slot *s, const struct mkey *m)
{
    return s->val && s->h == m->h && s->key_len == 2 + m->el + m->n && s->key[0] == (uint8_t)m->d &&
           memcmp(s->key + 1, m->extra, m->el + 1) == 0 &&
           (m->n == 0 || memcmp(s->key + 2 + m->el, m->k, m->n) == 0);
}

/* The slot hash: SipHash (per-thread random key) over the domain, extra,
 * length, and the key's first and last MEMO_HASH_SAMPLE bytes. The hash only
 * picks the slot — a hit needs the whole key to compare equal — so keys that
 * differ only in the middle merely share a slot; hashing a sample keeps a
 * lookup of a large manifest or mailbox answer to one compare. */
#define MEMO_HASH_SAMPLE  128
#define MEMO_EXTRA_HASHED 255 /* bytes of extra that feed the hash */

static struct mkey mkey_make(enum memo_domain d, const char *extra, const void *k, size_t n)
{
    struct mkey m = {.d = d, .extra = extra ? extra : "", .k = k, .n = n};
    uint8_t in[1 + MEMO_EXTRA_HASHED + sizeof(uint64_t) + 2 * MEMO_HASH_SAMPLE];
    uint64_t len = n;
    size_t w = 0;
    m.el = strlen(m.extra);
    size_t eh = m.el < MEMO_EXTRA_HASHED ? m.el : MEMO_EXTRA_HASHED;
    in[w++] = (uint8_t)d;
    memcpy(in + w, m.extra, eh);
    w += eh;
    memcpy(in + w, &len, sizeof(len));
    w += sizeof(len);
    if (n <= 2 * MEMO_HASH_SAMPLE) {
        if (n)
            memcpy(in + w, m.k, n);
        w += n;
    } else {
        memcpy(in + w, m.k, MEMO_HASH_SAMPLE);
        memcpy(in + w + MEMO_HASH_SAMPLE, m.k + n - MEMO_HASH_SAMPLE, MEMO_HASH_SAMPLE);
        w += 2 * MEMO_HASH_SAMPLE;
    }
    m.h = eng_siphash(sipkey, in, w);
    return m;
}

static bool table(void)
{
    if (slots)
        return true;
    slots = calloc(MEMO_SLOTS, sizeof(*slots));
    if (slots)
        eng_random_key(sipkey, sizeof(sipkey));
    return slots != NULL;
}

const void *memo_get(enum memo_domain d, const void *key, size_t key_len, const char *extra,
                     size_t *len)
{
    if (!table())
        return NULL;
    struct mkey m = mkey_make(d, extra, key, key_len);
    struct slot *s = &slots[m.h % MEMO_SLOTS];
    const void *v = NULL;
    if (key_equal(s, &m)) {
        v = s->val;
        *len = s->len;
    }
    atomic_fetch_add_explicit(v ? &hits : &misses, 1, memory_order_relaxed);
    return v;
}

void memo_put(enum memo_domain d, const void *key, size_t key_len, const char *extra,
              const void *value, size_t len)
{
    if (!table() || len + key_len > MEMO_ENTRY_MAX)
        return;
    struct mkey m = mkey_make(d, extra, key, key_len);
    size_t el = m.el, fl = 2 + el + key_len;
    struct slot *s = &slots[m.h % MEMO_SLOTS];
    size_t freed = s->val ? s->len + s->key_len : 0;
    uint8_t *kv;
    if (bytes - freed + fl + len > MEMO_BYTES_MAX || (kv = malloc(fl + (len ? len : 1))) == NULL)
        return;
    kv[0] = (uint8_t)d;
    memcpy(kv + 1, m.extra, el + 1);
    if (key_len) /* empty keys and values may come without storage */
        memcpy(kv + 2 + el, key, key_len);
    if (len)
        memcpy(kv + fl, value, len);
    free(s->key); /* key and value share one block */
    bytes = bytes - freed + fl + len;
    s->h = m.h;
    s->key = kv;
    s->key_len = fl;
    s->val = kv + fl;
    s->len = len;
}

void memo_thread_release(void)
{
    if (slots == NULL)
        return;
    for (size_t i = 0; i < MEMO_SLOTS; i++)
        free(slots[i].key);
    free(slots);
    slots = NULL;
    bytes = 0;
}
