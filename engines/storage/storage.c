/*
 * storage.c — content-addressed blobs in sharded RAM tables, optionally
 * persisted one file per object.
 *
 * Layout: 16 shards chosen by the address's keyed hash; each shard is an
 * open-addressing table of blob pointers with linear probing. Objects are
 * never removed while the store lives (there is no DELETE), so the table
 * needs no tombstones — and reads need no lock (STYLE §17): a slot only ever
 * goes from NULL to a blob, stored with release after the blob is complete,
 * so a reader probing with acquire loads sees either the blob whole or an
 * empty slot (a miss, as if it had looked a moment earlier). Inserts and
 * growth serialise on the shard's mutex. Growing publishes a new table
 * behind the shard's atomic pointer; a reader may still be probing the old
 * one, so superseded tables are kept until storage_free(): they add up to
 * less than the current table (sizes double), 8 bytes a slot at a load of at
 * most one half — a small price next to the objects — and in exchange a read
 * costs no atomic read-modify-write at all, not even an RCU section
 * (engines/common/rcu.h, which the index and mailbox need because they do
 * remove things). The only RMW left on a read is the blob's reference
 * count. The byte budget is one
 * atomic counter: a writer reserves its size with a compare-and-swap before
 * allocating, so the cap is never exceeded even transiently, and gives it
 * back if the insert loses a race or fails.
 *
 * Persistence (amnesia off): write "<dir>/.tmp-XXXXXX", fsync it, rename it
 * to "<dir>/<hex>", fsync the directory, then publish in RAM. Files are read
 * back lazily on a RAM miss and verified by recomputing the hash: a file
 * whose bytes do not match its name is reported ENG_E_CORRUPT and never
 * served or cached.
 */
#include "engines/storage/storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas/outboard.h"
#include "engines/common/hash.h"

#define SHARDS     16
#define TMP_PREFIX ".tmp-"
#define MIN_SLOTS  64

/* A shard's slot table. Published tables are written only by filling an
 * empty slot. */
struct stab {
    struct stab *older; /* superseded tables, kept for readers (see above) */
    size_t cap;         /* power of two */
    _Atomic(struct storage_blob *) slots[];
};

struct shard {
    _Atomic(struct stab *) tab; /* NULL until the first insert */
    pthread_mutex_t wlock;      /* inserts */
    size_t n;                   /* under wlock */
};

struct storage {
    uint64_t mem_cap;
    uint64_t max_object;
    int dirfd; /* -1: RAM only */
    uint8_t seed[16];
    atomic_uint_fast64_t used;
    atomic_uint_fast64_t objects;
    atomic_uint_fast64_t disk_loads;
    atomic_uint_fast64_t corrupt_reads;
    struct shard shards[SHARDS];
};

/* ---------------------------------------------------------------- blobs */

struct storage_blob *storage_blob_ref(struct storage_blob *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void storage_blob_unref(struct storage_blob *b)
{
    if (b == NULL)
        return;
    /* acq_rel, not release plus an acquire fence: see eng_buf_unref(). */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

void storage_view_release(struct storage_view *v)
{
    if (v == NULL)
        return;
    storage_blob_unref(v->blob);
    v->blob = NULL;
    v->p = NULL;
    v->n = 0;
}

/* Bytes of a blob's tree (0.1 % of its size; like the rest of a blob's
 * bookkeeping, not counted against the byte budget). */
static uint64_t tree_bytes(uint64_t size)
{
    return cas_tree_cvs(cas_groups(size)) * CAS_CV_BYTES;
}

/* A blob with room for size bytes and their tree (filled by the caller). */
static struct storage_blob *blob_alloc(size_t size)
{
    uint64_t tb = tree_bytes(size);
    size_t at = (sizeof(struct storage_blob) + size + 7) & ~(size_t)7;
    if (size > SIZE_MAX / 2 - sizeof(struct storage_blob))
        return NULL;
    struct storage_blob *b = malloc(at + tb);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->size = size;
    b->groups = cas_groups(size);
    b->tree = tb ? (const uint8_t *)b + at : NULL;
    return b;
}

/* The blob's tree, writable until the blob is published. */
static uint8_t *tree_of(struct storage_blob *b)
{
    return (uint8_t *)b->tree;
}

/* ---------------------------------------------------------------- budget */

static bool budget_reserve(struct storage *st, uint64_t n)
{
    uint_fast64_t cur = atomic_load_explicit(&st->used, memory_order_relaxed);
    do {
        if (n > st->mem_cap || cur > st->mem_cap - n)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&st->used, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

static void budget_release(struct storage *st, uint64_t n)
{
    atomic_fetch_sub_explicit(&st->used, n, memory_order_relaxed);
}

/* ---------------------------------------------------------------- shards */

static uint64_t addr_hash(const struct storage *st, const struct cas_addr *a)
{
    return eng_siphash(st->seed, a->b, sizeof(a->b));
}

static struct shard *shard_of(struct storage *st, uint64_t h)
{
    return &st->shards[h >> 60]; /* top bits pick the shard, low bits the slot */
}

static bool addr_eq(const struct cas_addr *a, const struct cas_addr *b)
{
    /* Addresses are public names, not secrets: memcmp is fine here. */
    return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

/* The blob `a` in the shard's current table, or NULL. No lock. */
static struct storage_blob *shard_find(const struct shard *sh, uint64_t h, const struct cas_addr *a)
{
    const struct stab *t = atomic_load_explicit(&sh->tab, memory_order_acquire);
    if (t == NULL)
        return NULL;
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        struct storage_blob *b = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (b == NULL)
            return NULL;
        if (addr_eq(&b->addr, a))
            return b;
    }
}

static void slots_place(struct stab *t, uint64_t h, struct storage_blob *b)
{
    size_t i = h & (t->cap - 1);
    while (atomic_load_explicit(&t->slots[i], memory_order_relaxed) != NULL)
        i = (i + 1) & (t->cap - 1);
    atomic_store_explicit(&t->slots[i], b, memory_order_release);
}

/* Caller holds wlock. Keeps the load at or under one half. */
static int shard_insert(struct storage *st, struct shard *sh, uint64_t h, struct storage_blob *b)
{
    struct stab *t = atomic_load_explicit(&sh->tab, memory_order_relaxed);
    size_t cap = t ? t->cap : 0;
    if ((sh->n + 1) * 2 > cap) {
        size_t ncap = cap ? cap * 2 : MIN_SLOTS;
        struct stab *nt = calloc(1, sizeof(*nt) + ncap * sizeof(nt->slots[0]));
        if (nt == NULL)
            return ENG_E_NOMEM;
        nt->cap = ncap;
        nt->older = t;
        for (size_t i = 0; i < cap; i++) {
            struct storage_blob *x = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
            if (x != NULL)
                slots_place(nt, addr_hash(st, &x->addr), x);
        }
        slots_place(nt, h, b);
        atomic_store_explicit(&sh->tab, nt, memory_order_release);
    } else {
        slots_place(t, h, b);
    }
    sh->n++;
    return ENG_OK;
}

/* Take a reference to the resident blob `a`, or NULL. No lock: resident
 * blobs stay until storage_free(). */
static struct storage_blob *lookup(struct storage *st, uint64_t h, const struct cas_addr *a)
{
    struct storage_blob *b = shard_find(shard_of(st, h), h, a);
    return b != NULL ? storage_blob_ref(b) : NULL;
}

/* Publish b (whose size is already reserved in the budget; the store takes
 * over the caller's reference). If the address is already resident, b is
 * dropped, its budget returned, and *winner gets a reference to the resident
 * blob; otherwise *winner gets a new reference to b. Returns ENG_OK, or
 * ENG_E_NOMEM (b dropped and its budget returned). */
static int publish(struct storage *st, uint64_t h, struct storage_blob *b,
                   struct storage_blob **winner, bool *created)
{
    struct shard *sh = shard_of(st, h);
    pthread_mutex_lock(&sh->wlock);
    struct storage_blob *old = shard_find(sh, h, &b->addr);
    int rc = ENG_OK;
    if (old != NULL) {
        if (winner)
            *winner = storage_blob_ref(old);
        *created = false;
    } else {
        rc = shard_insert(st, sh, h, b);
        if (rc == ENG_OK) {
            if (winner)
                *winner = storage_blob_ref(b);
            *created = true;
            atomic_fetch_add_explicit(&st->objects, 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&sh->wlock);
    if (old != NULL || rc != ENG_OK) {
        budget_release(st, b->size);
        storage_blob_unref(b);
    }
    return rc;
}

/* ---------------------------------------------------------------- files */

static void hex_name(const struct cas_addr *a, char out[CAS_HEX_CHARS + 1])
{
    char full[CAS_ADDR_CHARS + 1];
    cas_addr_format(a, full);
    memcpy(out, full + 3, CAS_HEX_CHARS + 1);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write the blob to "<dir>/<hex>" atomically and durably. */
static int persist(struct storage *st, const struct storage_blob *b)
{
    char name[CAS_HEX_CHARS + 1];
    char tmp[sizeof(TMP_PREFIX) + 32];
    int fd = -1;

    hex_name(&b->addr, name);
    /* mkstemp needs a path; we hold a dirfd, so pick names ourselves and rely
     * on O_EXCL, retrying on the (unlikely) collision. */
    for (int tries = 0;; tries++) {
        uint8_t r[8];
        eng_random_key(r, sizeof(r));
        snprintf(tmp, sizeof(tmp), TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
                 r[3], r[4], r[5], r[6], r[7]);
        fd = openat(st->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd != -1)
            break;
        if (errno != EEXIST || tries > 8)
            return ENG_E_IO;
    }
    if (write_all(fd, b->bytes, b->size) == -1 || fsync(fd) == -1)
        goto fail;
    if (close(fd) == -1) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (renameat(st->dirfd, tmp, st->dirfd, name) == -1)
        goto fail;
    if (fsync(st->dirfd) == -1)
        return ENG_E_IO; /* renamed but not known durable: report, keep file */
    return ENG_OK;

fail:
    if (fd != -1)
        close(fd);
    unlinkat(st->dirfd, tmp, 0);
    return ENG_E_IO;
}

/* Load "<dir>/<hex>" and verify it. On ENG_OK *out is a new blob holding
 * one reference, not published. */
static int load_file(struct storage *st, const struct cas_addr *a, struct storage_blob **out)
{
    char name[CAS_HEX_CHARS + 1];
    struct storage_blob *b = NULL;
    struct stat sb;
    int rc = ENG_E_CORRUPT;

    hex_name(a, name);
    int fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1)
        return errno == ENOENT ? ENG_E_NOT_FOUND : ENG_E_IO;
    if (fstat(fd, &sb) == -1) {
        rc = ENG_E_IO;
        goto out;
    }
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > st->max_object)
        goto out;
    b = blob_alloc((size_t)sb.st_size);
    if (b == NULL) {
        rc = ENG_E_NOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < b->size) {
        ssize_t r = read(fd, b->bytes + got, b->size - got);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1) {
            rc = ENG_E_IO;
            goto out;
        }
        if (r == 0)
            goto out; /* truncated under us */
        got += (size_t)r;
    }
    /* The file is never trusted: its bytes are hashed again, and that pass
     * yields the tree, so no tree is kept on disk to go stale or be
     * tampered with beside them. */
    cas_hash_tree(b->bytes, b->size, tree_of(b), &b->addr);
    if (!cas_addr_equal(&b->addr, a))
        goto out;
    atomic_fetch_add_explicit(&st->disk_loads, 1, memory_order_relaxed);
    *out = b;
    b = NULL;
    rc = ENG_OK;
out:
    if (rc == ENG_E_CORRUPT)
        atomic_fetch_add_explicit(&st->corrupt_reads, 1, memory_order_relaxed);
    storage_blob_unref(b);
    close(fd);
    return rc;
}

/* Remove temporary files a crash may have left in the data dir. */
static void sweep_tmp(int dirfd)
{
    int fd = dup(dirfd);
    if (fd == -1)
        return;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0)
            unlinkat(dirfd, e->d_name, 0);
    closedir(d);
}

/* ---------------------------------------------------------------- API */

struct storage *storage_new(const struct storage_opts *opts, int *status)
{
    struct storage_opts o = {0};
    int rc = ENG_E_NOMEM;
    if (opts != NULL)
        o = *opts;
    if (o.mem_cap_bytes == 0)
        o.mem_cap_bytes = STORAGE_DEFAULT_MEM_CAP_BYTES;
    if (o.max_object_bytes == 0)
        o.max_object_bytes = o.mem_cap_bytes < STORAGE_DEFAULT_MAX_OBJECT_BYTES
                                 ? o.mem_cap_bytes
                                 : STORAGE_DEFAULT_MAX_OBJECT_BYTES;
    if (o.max_object_bytes > o.mem_cap_bytes || o.max_object_bytes > SIZE_MAX / 2) {
        rc = ENG_E_INVALID;
        goto fail_early;
    }

    struct storage *st = calloc(1, sizeof(*st));
    if (st == NULL)
        goto fail_early;
    st->mem_cap = o.mem_cap_bytes;
    st->max_object = o.max_object_bytes;
    st->dirfd = -1;
    atomic_init(&st->used, 0);
    atomic_init(&st->objects, 0);
    atomic_init(&st->disk_loads, 0);
    atomic_init(&st->corrupt_reads, 0);
    eng_random_key(st->seed, sizeof(st->seed));
    for (int i = 0; i < SHARDS; i++) {
        atomic_init(&st->shards[i].tab, NULL);
        pthread_mutex_init(&st->shards[i].wlock, NULL);
    }

    if (!o.amnesia && o.data_dir != NULL && o.data_dir[0] != '\0') {
        if (mkdir(o.data_dir, 0755) == -1 && errno != EEXIST) {
            rc = ENG_E_IO;
            goto fail;
        }
        st->dirfd = open(o.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (st->dirfd == -1) {
            rc = ENG_E_IO;
            goto fail;
        }
        sweep_tmp(st->dirfd);
    }
    if (status)
        *status = ENG_OK;
    return st;

fail:
    storage_free(st);
fail_early:
    if (status)
        *status = rc;
    return NULL;
}

void storage_free(struct storage *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *sh = &st->shards[i];
        struct stab *t = atomic_load_explicit(&sh->tab, memory_order_relaxed);
        for (size_t j = 0; t != NULL && j < t->cap; j++)
            storage_blob_unref(atomic_load_explicit(&t->slots[j], memory_order_relaxed));
        while (t != NULL) {
            struct stab *older = t->older;
            free(t);
            t = older;
        }
        pthread_mutex_destroy(&sh->wlock);
    }
    if (st->dirfd != -1)
        close(st->dirfd);
    free(st);
}

int storage_put(struct storage *st, const void *p, size_t n, const struct cas_addr *expect,
                struct cas_addr *addr_out, bool *created_out)
{
    struct cas_addr a;
    bool created = false;

    if (p == NULL && n > 0)
        return ENG_E_INVALID;
    if (n > st->max_object)
        return ENG_E_TOO_LARGE;
    /* One pass hashes the bytes and builds their tree (64 bytes per
     * 64 KiB, held aside until the object is known to be new). */
    uint64_t tb = tree_bytes(n);
    uint8_t *tree = tb ? malloc(tb) : NULL;
    if (tb && tree == NULL)
        return ENG_E_NOMEM;
    cas_hash_tree(p, n, tree, &a);
    if (expect != NULL && !cas_addr_equal(expect, &a)) {
        free(tree);
        return ENG_E_MISMATCH;
    }
    if (addr_out)
        *addr_out = a;

    uint64_t h = addr_hash(st, &a);
    struct storage_blob *b = lookup(st, h, &a);
    if (b != NULL) {
        free(tree);
        storage_blob_unref(b);
        if (created_out)
            *created_out = false;
        return ENG_OK;
    }
    if (!budget_reserve(st, n)) {
        free(tree);
        return ENG_E_FULL;
    }
    b = blob_alloc(n);
    if (b == NULL) {
        free(tree);
        budget_release(st, n);
        return ENG_E_NOMEM;
    }
    b->addr = a;
    if (n > 0)
        memcpy(b->bytes, p, n);
    if (tb)
        memcpy(tree_of(b), tree, tb);
    free(tree);
    if (st->dirfd != -1) {
        int rc = persist(st, b);
        if (rc != ENG_OK) {
            budget_release(st, n);
            storage_blob_unref(b);
            return rc;
        }
    }
    int rc = publish(st, h, b, NULL, &created);
    if (rc == ENG_OK && created_out)
        *created_out = created;
    return rc;
}

/* A referenced blob for `a`: from RAM, else verified from disk. */
static int acquire(struct storage *st, const struct cas_addr *a, struct storage_blob **out)
{
    uint64_t h = addr_hash(st, a);
    struct storage_blob *b = lookup(st, h, a);
    if (b != NULL) {
        *out = b;
        return ENG_OK;
    }
    if (st->dirfd == -1)
        return ENG_E_NOT_FOUND;
    int rc = load_file(st, a, &b);
    if (rc != ENG_OK)
        return rc;
    if (!budget_reserve(st, b->size)) {
        *out = b; /* over the cap: serve it without keeping it */
        return ENG_OK;
    }
    bool created;
    return publish(st, h, b, out, &created);
}

int storage_get(struct storage *st, const struct cas_addr *addr, uint64_t off, uint64_t len,
                struct storage_view *out)
{
    struct storage_blob *b = NULL;
    memset(out, 0, sizeof(*out));
    int rc = acquire(st, addr, &b);
    if (rc != ENG_OK)
        return rc;
    if (off > b->size) {
        storage_blob_unref(b);
        return ENG_E_RANGE;
    }
    uint64_t avail = b->size - off;
    out->blob = b;
    out->p = b->bytes + off;
    out->n = (size_t)(len < avail ? len : avail);
    return ENG_OK;
}

int storage_has(struct storage *st, const struct cas_addr *addr, uint64_t *size_out)
{
    struct storage_blob *b = NULL;
    int rc = acquire(st, addr, &b);
    if (rc != ENG_OK)
        return rc;
    if (size_out)
        *size_out = b->size;
    storage_blob_unref(b);
    return ENG_OK;
}

void storage_stats(struct storage *st, struct storage_stats *out)
{
    out->objects = atomic_load_explicit(&st->objects, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&st->used, memory_order_relaxed);
    out->mem_cap_bytes = st->mem_cap;
    out->max_object_bytes = st->max_object;
    out->disk_loads = atomic_load_explicit(&st->disk_loads, memory_order_relaxed);
    out->corrupt_reads = atomic_load_explicit(&st->corrupt_reads, memory_order_relaxed);
    out->persistent = st->dirfd != -1;
}
