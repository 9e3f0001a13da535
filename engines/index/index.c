/*
 * index.c — names in a three-level sorted tree, published as immutable
 * snapshots: readers take no lock.
 *
 * The tree: a top node holds pages, a page holds up to PAGE_MAX leaves, a
 * leaf holds up to LEAF_MAX entry pointers; every level is sorted, and
 * everything under one child sorts before everything under the next.
 * Lookup: binary search over the children's first names at each level, then
 * inside one leaf. Nodes are never empty (locate() reads every child's
 * first name); an empty index publishes NULL.
 *
 * Why snapshots (STYLE §17: no lock on the request path). Every view and
 * search on every worker reads the index, and writes are rare (a publish).
 * A reader-writer lock made each read write the lock's shared counter, so
 * two workers' reads contended for one cache line. Now no node and no entry
 * is changed once published: a read enters an RCU section
 * (engines/common/rcu.h: a store to its own thread's slot), loads the top
 * pointer, searches, takes a reference to the manifest and leaves. A write
 * copies the path it changes — one leaf, one page, the top: at most
 * LEAF_MAX + PAGE_MAX + n / (LEAF_MAX * PAGE_MAX / 4) pointers, about 3 KiB
 * at a million names — publishes the new top with one atomic store, and
 * retires the three old nodes; they are freed when no reader can still hold
 * them, and an entry that leaves goes with its old leaf, manifest reference
 * included, so a reader that found it always gets a live buffer. Writers
 * still serialise on a mutex: they are not on the request path.
 *
 * Set aside: per-worker copies would make a write visible on other workers
 * only later (a PUT then a GET on another connection could miss it);
 * sharding the lock would still lock. A snapshot is seen whole: a search
 * never mixes two versions.
 */
#include "engines/index/index.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engines/common/rcu.h"

#define LEAF_MAX 128 /* entries per leaf */
#define PAGE_MAX 64  /* leaves per page */

/* Entries and nodes are immutable once published. */
struct entry {
    struct eng_buf *manifest; /* the entry's reference, dropped with it */
    uint8_t len;
    char name[]; /* len bytes, NUL-terminated for convenience */
};

/* A leaf (p[] are entries), a page (p[] are leaves) or the top (p[] are
 * pages, no size limit). */
struct node {
    struct eng_rcu_head rcu;
    /* Writer only, set when a leaf is retired: the entry that left the
     * index with it, freed with the leaf. (Kept here rather than as a head
     * in every entry: smaller entries make the reads' binary search touch
     * fewer cache lines.) */
    struct entry *gone;
    size_t n;
    void *p[];
};

struct index {
    _Atomic(struct node *) top;  /* NULL when empty; seq_cst loads and stores (rcu.h) */
    pthread_mutex_t wlock;       /* writers: put, del */
    struct eng_rcu_list retired; /* under wlock */
    atomic_size_t count;         /* names; written under wlock */
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

/* The first entry under x, a node `level` levels above the entries (a leaf
 * is level 1). */
static const struct entry *first_entry(const struct node *x, int level)
{
    while (--level > 0)
        x = x->p[0];
    return x->p[0];
}

/* The last child of x (level ≥ 2) whose first entry is ≤ key, or 0. */
static size_t child_for(const struct node *x, int level, const char *k, size_t kn)
{
    size_t lo = 0, hi = x->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp(first_entry(x->p[mid], level - 1), k, kn) <= 0)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Where key is or would go under top (non-NULL): page *pi, leaf *li, slot
 * *ej (which may equal that leaf's n: after its last entry). Returns whether
 * the entry there equals key. */
static bool locate(const struct node *top, const char *k, size_t kn, size_t *pi, size_t *li,
                   size_t *ej)
{
    *pi = child_for(top, 3, k, kn);
    const struct node *page = top->p[*pi];
    *li = child_for(page, 2, k, kn);
    const struct node *leaf = page->p[*li];
    size_t l = 0, h = leaf->n;
    while (l < h) {
        size_t mid = l + (h - l) / 2;
        if (cmp(leaf->p[mid], k, kn) < 0)
            l = mid + 1;
        else
            h = mid;
    }
    *ej = l;
    return l < leaf->n && cmp(leaf->p[l], k, kn) == 0;
}

/* The entry at page *pi, leaf *li, slot *ej of top (non-NULL), moving the
 * position past the end of a leaf or page to the next one; NULL past the
 * last entry. The next entry in order is at (*pi, *li, *ej + 1). */
static const struct entry *entry_at(const struct node *top, size_t *pi, size_t *li, size_t *ej)
{
    for (; *pi < top->n; (*pi)++, *li = 0) {
        const struct node *page = top->p[*pi];
        for (; *li < page->n; (*li)++, *ej = 0) {
            const struct node *leaf = page->p[*li];
            if (*ej < leaf->n)
                return leaf->p[*ej];
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- copies
 * A write builds new nodes from the published ones along one path; nothing
 * reachable from a published top is written. */

static void free_entry(struct entry *e)
{
    if (e == NULL)
        return;
    eng_buf_unref(e->manifest);
    free(e);
}

static void free_node(struct eng_rcu_head *h)
{
    struct node *x = eng_container_of(h, struct node, rcu);
    free_entry(x->gone);
    free(x);
}

/* Copy src[0..m) to positions [k, k + m) of the sequence out[0]->p[0..left)
 * ++ out[1]->p; returns k + m. */
static size_t put_run(struct node *out[2], size_t left, size_t k, void *const *src, size_t m)
{
    size_t first = k < left ? (left - k < m ? left - k : m) : 0;
    if (first > 0)
        memcpy(out[0]->p + k, src, first * sizeof(src[0]));
    if (m > first)
        memcpy(out[1]->p + (k + first - left), src + first, (m - first) * sizeof(src[0]));
    return k + m;
}

/* x (NULL: empty) with p[at, at + ndel) replaced by ins[0..nins), as new
 * nodes in out[0..*nout): none when nothing is left, two halves when more
 * than max. ENG_OK or ENG_E_NOMEM (nothing allocated). */
static int node_splice(const struct node *x, size_t at, size_t ndel, void *const *ins, size_t nins,
                       size_t max, struct node *out[2], size_t *nout)
{
    size_t n = (x ? x->n : 0) - ndel + nins;
    size_t parts = n == 0 ? 0 : n > max ? 2 : 1;
    size_t left = parts == 2 ? n / 2 : n;

    out[0] = out[1] = NULL;
    for (size_t i = 0; i < parts; i++) {
        size_t m = i == 0 ? left : n - left;
        if ((out[i] = malloc(sizeof(*out[i]) + m * sizeof(out[i]->p[0]))) == NULL) {
            free(out[0]);
            out[0] = NULL;
            return ENG_E_NOMEM;
        }
        out[i]->gone = NULL;
        out[i]->n = m;
    }
    /* The result is x->p[0, at) ++ ins ++ x->p[at + ndel, end), cut at left. */
    size_t k = put_run(out, left, 0, x ? x->p : NULL, at);
    k = put_run(out, left, k, ins, nins);
    put_run(out, left, k, x ? x->p + at + ndel : NULL, n - k);
    *nout = parts;
    return ENG_OK;
}

/* Replace entries [ej, ej + ndel) of leaf (pi, li) of top (NULL: empty)
 * with `ins` (NULL: none), publish the new top, and retire the old top,
 * page and leaf, the leaf taking `gone` (the entry that left, if any) with
 * it. Caller holds wlock. ENG_OK or ENG_E_NOMEM (nothing changed). */
static int change(struct index *idx, struct node *top, size_t pi, size_t li, size_t ej, size_t ndel,
                  struct entry *ins, struct entry *gone)
{
    struct node *page = top ? top->p[pi] : NULL;
    struct node *leaf = page ? page->p[li] : NULL;
    struct node *nl[2], *np[2], *nt[2];
    size_t nnl, nnp, nnt;
    void *v[2] = {ins};

    if (node_splice(leaf, ej, ndel, v, ins ? 1 : 0, LEAF_MAX, nl, &nnl) != ENG_OK)
        return ENG_E_NOMEM;
    v[0] = nl[0];
    v[1] = nl[1];
    if (node_splice(page, li, leaf ? 1 : 0, v, nnl, PAGE_MAX, np, &nnp) != ENG_OK)
        goto fail_leaf;
    v[0] = np[0];
    v[1] = np[1];
    if (node_splice(top, pi, page ? 1 : 0, v, nnp, SIZE_MAX, nt, &nnt) != ENG_OK)
        goto fail_page;

    size_t count = atomic_load_explicit(&idx->count, memory_order_relaxed);
    atomic_store_explicit(&idx->top, nnt ? nt[0] : NULL, memory_order_seq_cst);
    atomic_store_explicit(&idx->count, count - ndel + (ins ? 1 : 0), memory_order_relaxed);
    if (top != NULL) {
        leaf->gone = gone;
        eng_rcu_retire(&idx->retired, &top->rcu, free_node);
        eng_rcu_retire(&idx->retired, &page->rcu, free_node);
        eng_rcu_retire(&idx->retired, &leaf->rcu, free_node);
    }
    eng_rcu_reclaim(&idx->retired);
    return ENG_OK;

fail_page:
    free(np[0]);
    free(np[1]);
fail_leaf:
    free(nl[0]);
    free(nl[1]);
    return ENG_E_NOMEM;
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
    atomic_init(&idx->top, NULL);
    atomic_init(&idx->count, 0);
    pthread_mutex_init(&idx->wlock, NULL);
    if (status)
        *status = ENG_OK;
    return idx;
}

void index_free(struct index *idx)
{
    if (idx == NULL)
        return;
    eng_rcu_release(&idx->retired);
    struct node *top = atomic_load_explicit(&idx->top, memory_order_relaxed);
    for (size_t i = 0; top != NULL && i < top->n; i++) {
        struct node *page = top->p[i];
        for (size_t j = 0; j < page->n; j++) {
            struct node *leaf = page->p[j];
            for (size_t k = 0; k < leaf->n; k++)
                free_entry(leaf->p[k]);
            free(leaf);
        }
        free(page);
    }
    free(top);
    pthread_mutex_destroy(&idx->wlock);
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
    /* A new entry either way: published entries are not changed. */
    struct entry *e = malloc(sizeof(*e) + name_len + 1);
    if (e == NULL) {
        eng_buf_unref(m);
        return ENG_E_NOMEM;
    }
    e->len = (uint8_t)name_len;
    memcpy(e->name, name, name_len);
    e->name[name_len] = '\0';
    e->manifest = m;

    bool created = false;
    size_t pi = 0, li = 0, ej = 0;
    pthread_mutex_lock(&idx->wlock);
    struct node *top = atomic_load_explicit(&idx->top, memory_order_relaxed);
    if (top != NULL && locate(top, name, name_len, &pi, &li, &ej)) {
        struct node *leaf = ((struct node *)top->p[pi])->p[li];
        rc = change(idx, top, pi, li, ej, 1, e, leaf->p[ej]);
    } else if (atomic_load_explicit(&idx->count, memory_order_relaxed) >= idx->max_names) {
        rc = ENG_E_FULL;
    } else {
        rc = change(idx, top, pi, li, ej, 0, e, NULL);
        created = rc == ENG_OK;
    }
    pthread_mutex_unlock(&idx->wlock);

    if (rc != ENG_OK)
        free_entry(e);
    else if (created_out)
        *created_out = created;
    return rc;
}

int index_resolve(struct index *idx, const char *name, size_t name_len, struct eng_buf **out)
{
    *out = NULL;
    int rc = eng_name_check(name, name_len);
    if (rc != ENG_OK)
        return rc;
    if ((rc = eng_rcu_enter()) != ENG_OK)
        return rc;
    const struct node *top = atomic_load_explicit(&idx->top, memory_order_seq_cst);
    size_t pi, li, ej;
    rc = ENG_E_NOT_FOUND;
    if (top != NULL && locate(top, name, name_len, &pi, &li, &ej)) {
        const struct node *leaf = ((const struct node *)top->p[pi])->p[li];
        *out = eng_buf_ref(((const struct entry *)leaf->p[ej])->manifest);
        rc = ENG_OK;
    }
    eng_rcu_exit();
    return rc;
}

int index_del(struct index *idx, const char *name, size_t name_len)
{
    int rc = eng_name_check(name, name_len);
    if (rc != ENG_OK)
        return rc;
    size_t pi, li, ej;
    pthread_mutex_lock(&idx->wlock);
    struct node *top = atomic_load_explicit(&idx->top, memory_order_relaxed);
    if (top != NULL && locate(top, name, name_len, &pi, &li, &ej)) {
        struct node *leaf = ((struct node *)top->p[pi])->p[li];
        rc = change(idx, top, pi, li, ej, 1, NULL, leaf->p[ej]);
    } else {
        rc = ENG_E_NOT_FOUND;
    }
    pthread_mutex_unlock(&idx->wlock);
    return rc;
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

    int rc = eng_rcu_enter();
    if (rc != ENG_OK)
        return rc;
    const struct node *top = atomic_load_explicit(&idx->top, memory_order_seq_cst);
    size_t pi, li, ej;
    if (top != NULL) {
        const struct entry *e;
        locate(top, prefix, prefix_len, &pi, &li, &ej);
        for (; (e = entry_at(top, &pi, &li, &ej)) != NULL; ej++) {
            if (e->len < prefix_len || memcmp(e->name, prefix, prefix_len) != 0)
                break;
            if (out->count == limit) {
                out->more = true;
                break;
            }
            out->len[out->count] = e->len;
            memcpy(out->name[out->count], e->name, (size_t)e->len + 1);
            out->count++;
        }
    }
    eng_rcu_exit();
    return ENG_OK;
}

size_t index_count(struct index *idx)
{
    return atomic_load_explicit(&idx->count, memory_order_relaxed);
}

/* Entries copied per RCU section by index_dump(): the section stays short
 * (writers' retired nodes wait for it), and the callback runs outside it. */
#define DUMP_PAGE 64

int index_dump(struct index *idx, index_dump_fn fn, void *arg)
{
    struct {
        uint8_t len;
        char name[INDEX_NAME_MAX_BYTES];
        struct eng_buf *manifest;
    } *page = malloc(DUMP_PAGE * sizeof(*page));
    size_t n = DUMP_PAGE;
    int rc = ENG_OK;

    if (page == NULL)
        return ENG_E_NOMEM;
    /* Each page starts after the last name of the one before. */
    for (bool first = true; rc == ENG_OK && n == DUMP_PAGE; first = false) {
        if ((rc = eng_rcu_enter()) != ENG_OK)
            break;
        const struct node *top = atomic_load_explicit(&idx->top, memory_order_seq_cst);
        const struct entry *e;
        size_t pi = 0, li = 0, ej = 0;
        n = 0;
        if (top != NULL && !first &&
            locate(top, page[DUMP_PAGE - 1].name, page[DUMP_PAGE - 1].len, &pi, &li, &ej))
            ej++;
        for (; top != NULL && n < DUMP_PAGE && (e = entry_at(top, &pi, &li, &ej)) != NULL; ej++) {
            page[n].len = e->len;
            memcpy(page[n].name, e->name, e->len);
            page[n].manifest = eng_buf_ref(e->manifest);
            n++;
        }
        eng_rcu_exit();
        for (size_t i = 0; i < n; i++) {
            if (rc == ENG_OK)
                rc = fn(arg, page[i].name, page[i].len, page[i].manifest);
            eng_buf_unref(page[i].manifest);
        }
    }
    free(page);
    return rc;
}
