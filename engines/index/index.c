/*
 * index.c — a two-level sorted array of names under one rwlock.
 *
 * blocks[0..nblocks) are sorted, each holds 1..BLOCK_MAX sorted entry
 * pointers, and every entry of block i sorts before every entry of block
 * i + 1. Lookup: binary search over the blocks' first names, then inside one
 * block. Insert moves at most BLOCK_MAX pointers, and splitting a full block
 * moves nblocks pointers (n / 128 at worst): 100 000 random inserts cost a
 * few tens of milliseconds, where one flat sorted array would move gigabytes.
 */
#include "engines/index/index.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_MAX 256

struct entry {
    struct eng_buf *manifest;
    uint8_t len;
    char name[]; /* len bytes, NUL-terminated for convenience */
};

struct block {
    uint32_t n;
    struct entry *e[BLOCK_MAX];
};

struct index {
    pthread_rwlock_t lock;
    struct block **blocks;
    size_t nblocks, cap_blocks;
    size_t count;
    size_t max_names;
    size_t max_manifest;
};

/* ---------------------------------------------------------------- search */

static int cmp(const struct entry *e, const char *k, size_t kn)
{
    size_t m = e->len < kn ? e->len : kn;
    int c = memcmp(e->name, k, m);
    if (c != 0)
        return c;
    return (e->len > kn) - (e->len < kn);
}

/* Position of the first entry ≥ key: block *bi, slot *ej (which may equal
 * that block's n, meaning "before the next block"). Returns whether the entry
 * there equals key. Caller holds the lock; nblocks > 0. */
static bool locate(const struct index *idx, const char *k, size_t kn, size_t *bi, size_t *ej)
{
    /* Last block whose first entry is ≤ key, or block 0. */
    size_t lo = 0, hi = idx->nblocks;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp(idx->blocks[mid]->e[0], k, kn) <= 0)
            lo = mid;
        else
            hi = mid;
    }
    const struct block *b = idx->blocks[lo];
    size_t l = 0, h = b->n;
    while (l < h) {
        size_t mid = l + (h - l) / 2;
        if (cmp(b->e[mid], k, kn) < 0)
            l = mid + 1;
        else
            h = mid;
    }
    *bi = lo;
    *ej = l;
    return l < b->n && cmp(b->e[l], k, kn) == 0;
}

static struct entry *find(const struct index *idx, const char *k, size_t kn)
{
    size_t bi, ej;
    if (idx->nblocks == 0 || !locate(idx, k, kn, &bi, &ej))
        return NULL;
    return idx->blocks[bi]->e[ej];
}

/* ---------------------------------------------------------------- change */

/* Insert block b at position pos of the block array. */
static int blocks_insert(struct index *idx, size_t pos, struct block *b)
{
    if (idx->nblocks == idx->cap_blocks) {
        size_t cap = idx->cap_blocks ? idx->cap_blocks * 2 : 16;
        struct block **nb = realloc(idx->blocks, cap * sizeof(*nb));
        if (nb == NULL)
            return ENG_E_NOMEM;
        idx->blocks = nb;
        idx->cap_blocks = cap;
    }
    memmove(&idx->blocks[pos + 1], &idx->blocks[pos], (idx->nblocks - pos) * sizeof(*idx->blocks));
    idx->blocks[pos] = b;
    idx->nblocks++;
    return ENG_OK;
}

/* Insert e at (bi, ej) as found by locate(). Caller holds the write lock. */
static int insert_at(struct index *idx, size_t bi, size_t ej, struct entry *e)
{
    if (idx->nblocks == 0) {
        struct block *b = calloc(1, sizeof(*b));
        if (b == NULL)
            return ENG_E_NOMEM;
        if (blocks_insert(idx, 0, b) != ENG_OK) {
            free(b);
            return ENG_E_NOMEM;
        }
        bi = ej = 0;
    }
    struct block *b = idx->blocks[bi];
    if (b->n == BLOCK_MAX) {
        struct block *nb = malloc(sizeof(*nb));
        if (nb == NULL)
            return ENG_E_NOMEM;
        if (blocks_insert(idx, bi + 1, nb) != ENG_OK) {
            free(nb);
            return ENG_E_NOMEM;
        }
        nb->n = BLOCK_MAX / 2;
        memcpy(nb->e, &b->e[BLOCK_MAX / 2], nb->n * sizeof(nb->e[0]));
        b->n = BLOCK_MAX / 2;
        if (ej > b->n) {
            ej -= b->n;
            b = nb;
        }
    }
    memmove(&b->e[ej + 1], &b->e[ej], (b->n - ej) * sizeof(b->e[0]));
    b->e[ej] = e;
    b->n++;
    idx->count++;
    return ENG_OK;
}

/* ---------------------------------------------------------------- API */

int index_manifest_check(const void *p, size_t n, size_t max_bytes)
{
    if (max_bytes == 0)
        max_bytes = INDEX_DEFAULT_MAX_MANIFEST_BYTES;
    if (n > max_bytes)
        return ENG_E_TOO_LARGE;
    if (p == NULL || n == 0)
        return ENG_E_INVALID;
    json_error_t err;
    /* Trailing bytes are rejected by jansson's default EOF check, NUL inside
     * strings by its default (no JSON_ALLOW_NUL), nesting by its depth cap. */
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &err);
    int rc = (j != NULL && json_is_object(j)) ? ENG_OK : ENG_E_INVALID;
    json_decref(j);
    return rc;
}

struct index *index_new(const struct index_opts *opts, int *status)
{
    struct index *idx = calloc(1, sizeof(*idx));
    if (idx == NULL) {
        if (status)
            *status = ENG_E_NOMEM;
        return NULL;
    }
    idx->max_names = opts && opts->max_names ? opts->max_names : INDEX_DEFAULT_MAX_NAMES;
    idx->max_manifest = opts && opts->max_manifest_bytes ? opts->max_manifest_bytes
                                                         : INDEX_DEFAULT_MAX_MANIFEST_BYTES;
    pthread_rwlock_init(&idx->lock, NULL);
    if (status)
        *status = ENG_OK;
    return idx;
}

void index_free(struct index *idx)
{
    if (idx == NULL)
        return;
    for (size_t i = 0; i < idx->nblocks; i++) {
        struct block *b = idx->blocks[i];
        for (uint32_t j = 0; j < b->n; j++) {
            eng_buf_unref(b->e[j]->manifest);
            free(b->e[j]);
        }
        free(b);
    }
    free(idx->blocks);
    pthread_rwlock_destroy(&idx->lock);
    free(idx);
}

int index_put(struct index *idx, const char *name, size_t name_len, const void *manifest,
              size_t manifest_len, bool *created_out)
{
    int rc = eng_name_check(name, name_len);
    if (rc != ENG_OK)
        return rc;
    rc = index_manifest_check(manifest, manifest_len, idx->max_manifest);
    if (rc != ENG_OK)
        return rc;
    struct eng_buf *m = eng_buf_from(manifest, manifest_len);
    if (m == NULL)
        return ENG_E_NOMEM;
    /* Allocated before the lock in case the name is new; freed if not. */
    struct entry *e = malloc(sizeof(*e) + name_len + 1);
    if (e == NULL) {
        eng_buf_unref(m);
        return ENG_E_NOMEM;
    }
    e->len = (uint8_t)name_len;
    memcpy(e->name, name, name_len);
    e->name[name_len] = '\0';
    e->manifest = m;

    struct eng_buf *old = NULL;
    bool created = false;
    size_t bi = 0, ej = 0;
    pthread_rwlock_wrlock(&idx->lock);
    if (idx->nblocks > 0 && locate(idx, name, name_len, &bi, &ej)) {
        struct entry *cur = idx->blocks[bi]->e[ej];
        old = cur->manifest;
        cur->manifest = m;
    } else if (idx->count >= idx->max_names) {
        rc = ENG_E_FULL;
    } else {
        rc = insert_at(idx, bi, ej, e);
        created = rc == ENG_OK;
    }
    pthread_rwlock_unlock(&idx->lock);

    if (!created) {
        free(e);
        if (rc != ENG_OK)
            eng_buf_unref(m);
    }
    eng_buf_unref(old);
    if (rc == ENG_OK && created_out)
        *created_out = created;
    return rc;
}

int index_resolve(struct index *idx, const char *name, size_t name_len, struct eng_buf **out)
{
    *out = NULL;
    int rc = eng_name_check(name, name_len);
    if (rc != ENG_OK)
        return rc;
    pthread_rwlock_rdlock(&idx->lock);
    struct entry *e = find(idx, name, name_len);
    if (e != NULL)
        *out = eng_buf_ref(e->manifest);
    pthread_rwlock_unlock(&idx->lock);
    return e != NULL ? ENG_OK : ENG_E_NOT_FOUND;
}

int index_del(struct index *idx, const char *name, size_t name_len)
{
    int rc = eng_name_check(name, name_len);
    if (rc != ENG_OK)
        return rc;
    struct entry *e = NULL;
    struct block *dead = NULL;
    size_t bi, ej;
    pthread_rwlock_wrlock(&idx->lock);
    if (idx->nblocks > 0 && locate(idx, name, name_len, &bi, &ej)) {
        struct block *b = idx->blocks[bi];
        e = b->e[ej];
        memmove(&b->e[ej], &b->e[ej + 1], (b->n - ej - 1) * sizeof(b->e[0]));
        b->n--;
        idx->count--;
        if (b->n == 0) {
            /* Blocks are never empty: locate() reads e[0]. */
            dead = b;
            memmove(&idx->blocks[bi], &idx->blocks[bi + 1],
                    (idx->nblocks - bi - 1) * sizeof(idx->blocks[0]));
            idx->nblocks--;
        }
    }
    pthread_rwlock_unlock(&idx->lock);
    free(dead);
    if (e == NULL)
        return ENG_E_NOT_FOUND;
    eng_buf_unref(e->manifest);
    free(e);
    return ENG_OK;
}

int index_search(struct index *idx, const char *prefix, size_t prefix_len, size_t limit,
                 struct index_search_result *out)
{
    out->count = 0;
    out->more = false;
    if (limit == 0 || limit > INDEX_SEARCH_MAX || prefix_len > INDEX_NAME_MAX_BYTES ||
        (prefix == NULL && prefix_len > 0))
        return ENG_E_INVALID;
    for (size_t i = 0; i < prefix_len; i++) {
        uint8_t c = (uint8_t)prefix[i];
        if (c < 0x20 || c == 0x7f)
            return ENG_E_INVALID;
    }

    pthread_rwlock_rdlock(&idx->lock);
    size_t bi, ej;
    if (idx->nblocks > 0) {
        locate(idx, prefix, prefix_len, &bi, &ej);
        for (; bi < idx->nblocks; bi++, ej = 0) {
            const struct block *b = idx->blocks[bi];
            for (; ej < b->n; ej++) {
                const struct entry *e = b->e[ej];
                if (e->len < prefix_len || memcmp(e->name, prefix, prefix_len) != 0)
                    goto done;
                if (out->count == limit) {
                    out->more = true;
                    goto done;
                }
                out->len[out->count] = e->len;
                memcpy(out->name[out->count], e->name, (size_t)e->len + 1);
                out->count++;
            }
        }
    }
done:
    pthread_rwlock_unlock(&idx->lock);
    return ENG_OK;
}

size_t index_count(struct index *idx)
{
    pthread_rwlock_rdlock(&idx->lock);
    size_t n = idx->count;
    pthread_rwlock_unlock(&idx->lock);
    return n;
}
