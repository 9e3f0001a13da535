/*
 * gcache.c — the verified group cache (gcache.h): up to 16 shards, each a
 * chained hash table of reference-counted entries on an LRU list, under a
 * mutex and a share of the byte budget.
 */
#include "media/gcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cas/outboard.h"
#include "ops/metrics.h"

#define SHARDS   16
#define SIZE_KEY UINT64_MAX /* the entry that only holds an object's size */
/* What an entry costs against the budget besides its bytes. */
#define ENTRY_OVERHEAD 128

struct gcache_entry {
    atomic_uint refs;                 /* the table's one, plus one per user */
    struct gcache_entry *chain;       /* next in the bucket */
    struct gcache_entry *prev, *next; /* LRU, most recent at head.next */
    struct cas_addr addr;
    uint64_t g, size;
    size_t n;
    uint8_t bytes[];
};

struct shard {
    pthread_mutex_t lock;
    struct gcache_entry **buckets;
    struct gcache_entry lru; /* sentinel */
    uint64_t used;
};

static struct {
    struct shard shards[SHARDS];
    unsigned nshards; /* a power of two ≤ SHARDS: each holds 16 groups or more */
    size_t nbuckets;  /* per shard, a power of two; 0: off */
    uint64_t budget;  /* per shard */
    atomic_uint_fast64_t hits, misses, evictions, bytes;
} C;

static uint64_t key_hash(const struct cas_addr *a, uint64_t g)
{
    uint64_t h;
    memcpy(&h, a->b, sizeof(h)); /* the address is already a hash */
    return h ^ (g + 1) * 0x9e3779b97f4a7c15ull;
}

static double read_hits(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&C.hits);
}
static double read_misses(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&C.misses);
}
static double read_evictions(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&C.evictions);
}
static double read_bytes(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&C.bytes);
}

static const struct metric_def METRICS[] = {
    {"range_cache_hits_total", METRIC_COUNTER,
     "Ranges served whole from the verified group cache, with no storage call.", .read = read_hits},
    {"range_cache_misses_total", METRIC_COUNTER,
     "Ranges that needed storage (some group not cached).", .read = read_misses},
    {"range_cache_evictions_total", METRIC_COUNTER,
     "Cached groups dropped to stay under range_cache.", .read = read_evictions},
    {"range_cache_bytes", METRIC_GAUGE, "Bytes held by the verified group cache.",
     .read = read_bytes},
};

void gcache_init(uint64_t bytes)
{
    metrics_register(METRIC_TABLE(METRICS));
    if (bytes == 0)
        return;
    /* A small cache has fewer shards, so a shard's share of the budget
     * still holds a fair number of groups. */
    C.nshards = SHARDS;
    while (C.nshards > 1 && bytes / C.nshards < 16 * (uint64_t)CAS_GROUP_BYTES)
        C.nshards >>= 1;
    C.budget = bytes / C.nshards;
    size_t want = (size_t)(C.budget / CAS_GROUP_BYTES) + 1, n = 16;
    while (n < want)
        n <<= 1;
    C.nbuckets = n;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &C.shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->buckets = calloc(n, sizeof(*s->buckets));
        s->lru.prev = s->lru.next = &s->lru;
        if (s->buckets == NULL) {
            C.nbuckets = 0; /* no memory for the table: run without it */
            return;
        }
    }
}

static struct shard *shard_of(uint64_t h)
{
    return &C.shards[h & (C.nshards - 1)];
}

static struct gcache_entry **slot_of(struct shard *s, uint64_t h)
{
    return &s->buckets[(h >> 4) & (C.nbuckets - 1)];
}

static void lru_unlink(struct gcache_entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_front(struct shard *s, struct gcache_entry *e)
{
    e->next = s->lru.next;
    e->prev = &s->lru;
    s->lru.next->prev = e;
    s->lru.next = e;
}

/* Under the shard's lock: the entry for (a, g), moved to the front. */
static struct gcache_entry *find(struct shard *s, uint64_t h, const struct cas_addr *a, uint64_t g)
{
    for (struct gcache_entry *e = *slot_of(s, h); e; e = e->chain)
        if (e->g == g && memcmp(e->addr.b, a->b, sizeof(a->b)) == 0) {
            lru_unlink(e);
            lru_front(s, e);
            return e;
        }
    return NULL;
}

void gcache_unref(struct gcache_entry *e)
{
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

static uint64_t cost(const struct gcache_entry *e)
{
    return e->n + ENTRY_OVERHEAD;
}

/* Under the lock: take e out of the table and drop the table's reference. */
static void drop(struct shard *s, struct gcache_entry *e)
{
    uint64_t h = key_hash(&e->addr, e->g);
    for (struct gcache_entry **p = slot_of(s, h); *p; p = &(*p)->chain)
        if (*p == e) {
            *p = e->chain;
            break;
        }
    lru_unlink(e);
    s->used -= cost(e);
    atomic_fetch_sub(&C.bytes, cost(e));
    gcache_unref(e);
}

/* A reference to the entry (a, g), or NULL; *size set on a hit. */
static struct gcache_entry *lookup(const struct cas_addr *a, uint64_t g, uint64_t *size)
{
    if (C.nbuckets == 0)
        return NULL;
    uint64_t h = key_hash(a, g);
    struct shard *s = shard_of(h);
    pthread_mutex_lock(&s->lock);
    struct gcache_entry *e = find(s, h, a, g);
    if (e) {
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        *size = e->size;
    }
    pthread_mutex_unlock(&s->lock);
    return e;
}

bool gcache_size(const struct cas_addr *a, uint64_t *size)
{
    struct gcache_entry *e = lookup(a, SIZE_KEY, size);
    gcache_unref(e);
    return e != NULL;
}

struct gcache_entry *gcache_get(const struct cas_addr *a, uint64_t g)
{
    uint64_t size;
    return lookup(a, g, &size);
}

const uint8_t *gcache_bytes(const struct gcache_entry *e, size_t *n)
{
    *n = e->n;
    return e->bytes;
}

/* Insert (a, g) with n bytes from p unless present or too large. */
static void insert(const struct cas_addr *a, uint64_t size, uint64_t g, const uint8_t *p, size_t n)
{
    uint64_t h = key_hash(a, g);
    struct shard *s = shard_of(h);
    if (n + ENTRY_OVERHEAD > C.budget)
        return;
    pthread_mutex_lock(&s->lock);
    bool have = find(s, h, a, g) != NULL;
    pthread_mutex_unlock(&s->lock);
    if (have)
        return;
    /* Copied with no lock held; a racing insert of the same group wins
     * below and this copy is dropped. */
    struct gcache_entry *e = malloc(sizeof(*e) + n);
    if (e == NULL)
        return;
    atomic_init(&e->refs, 1);
    e->addr = *a;
    e->g = g;
    e->size = size;
    e->n = n;
    if (n)
        memcpy(e->bytes, p, n);
    pthread_mutex_lock(&s->lock);
    if (find(s, h, a, g) != NULL) {
        pthread_mutex_unlock(&s->lock);
        free(e);
        return;
    }
    while (s->used + cost(e) > C.budget && s->lru.prev != &s->lru) {
        drop(s, s->lru.prev);
        atomic_fetch_add(&C.evictions, 1);
    }
    struct gcache_entry **slot = slot_of(s, h);
    e->chain = *slot;
    *slot = e;
    lru_front(s, e);
    s->used += cost(e);
    atomic_fetch_add(&C.bytes, cost(e));
    pthread_mutex_unlock(&s->lock);
}

void gcache_put(const struct cas_addr *a, uint64_t size, uint64_t g, const uint8_t *p, size_t n)
{
    if (C.nbuckets == 0)
        return;
    insert(a, size, SIZE_KEY, NULL, 0);
    insert(a, size, g, p, n);
}

void gcache_clear(void)
{
    for (int i = 0; C.nbuckets && i < SHARDS; i++) {
        struct shard *s = &C.shards[i];
        pthread_mutex_lock(&s->lock);
        while (s->lru.next != &s->lru)
            drop(s, s->lru.next);
        pthread_mutex_unlock(&s->lock);
    }
}

void gcache_count(bool hit)
{
    atomic_fetch_add(hit ? &C.hits : &C.misses, 1);
}
