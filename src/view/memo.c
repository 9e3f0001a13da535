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

static void render(struct buf *out)
{
    metrics_family(out, "view_memo_hits_total", "counter",
                   "Plans and renderings reused for identical content.");
    metrics_sample(out, "view_memo_hits_total", NULL, (double)atomic_load(&hits));
    metrics_family(out, "view_memo_misses_total", "counter",
                   "Plans and renderings derived from content seen for the first time.");
    metrics_sample(out, "view_memo_misses_total", NULL, (double)atomic_load(&misses));
}

void memo_init(void)
{
    metrics_register(render);
}

/* The full key: domain tag, extra, NUL, bytes — built in a caller buffer
 * when small, else on the heap. Returns NULL on allocation failure. */
static uint8_t *full_key(enum memo_domain d, const void *k, size_t n, const char *extra,
                         uint8_t *stack, size_t cap, size_t *out_len)
{
    size_t el = extra ? strlen(extra) : 0;
    size_t len = 1 + el + 1 + n;
    uint8_t *p = len <= cap ? stack : malloc(len);
    if (p == NULL)
        return NULL;
    p[0] = (uint8_t)d;
    memcpy(p + 1, extra ? extra : "", el);
    p[1 + el] = 0;
    memcpy(p + 2 + el, k, n);
    *out_len = len;
    return p;
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
    uint8_t stack[512];
    size_t fl;
    if (!table())
        return NULL;
    uint8_t *fk = full_key(d, key, key_len, extra, stack, sizeof(stack), &fl);
    if (fk == NULL)
        return NULL;
    uint64_t h = eng_siphash(sipkey, fk, fl);
    struct slot *s = &slots[h % MEMO_SLOTS];
    const void *v = NULL;
    if (s->val && s->h == h && s->key_len == fl && memcmp(s->key, fk, fl) == 0) {
        v = s->val;
        *len = s->len;
    }
    if (fk != stack)
        free(fk);
    atomic_fetch_add_explicit(v ? &hits : &misses, 1, memory_order_relaxed);
    return v;
}

void memo_put(enum memo_domain d, const void *key, size_t key_len, const char *extra,
              const void *value, size_t len)
{
    uint8_t stack[512];
    size_t fl;
    if (!table() || len + key_len > MEMO_ENTRY_MAX)
        return;
    uint8_t *fk = full_key(d, key, key_len, extra, stack, sizeof(stack), &fl);
    if (fk == NULL)
        return;
    uint64_t h = eng_siphash(sipkey, fk, fl);
    struct slot *s = &slots[h % MEMO_SLOTS];
    size_t freed = s->val ? s->len + s->key_len : 0;
    uint8_t *kv = NULL;
    if (bytes - freed + fl + len <= MEMO_BYTES_MAX && (kv = malloc(fl + (len ? len : 1))) != NULL) {
        memcpy(kv, fk, fl);
        memcpy(kv + fl, value, len);
        free(s->key); /* key and value share one block */
        bytes = bytes - freed + fl + len;
        s->h = h;
        s->key = kv;
        s->key_len = fl;
        s->val = kv + fl;
        s->len = len;
    }
    if (fk != stack)
        free(fk);
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
