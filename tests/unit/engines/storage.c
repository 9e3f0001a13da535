/*
 * Tests for engines/storage: addresses, ranges at every edge, caps,
 * persistence across a restart, amnesia (zero files), verification on read,
 * a concurrency smoke test, and readers while tables grow.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engines/storage/storage.h"

static void setup(void)
{
    cas_init();
}

static struct storage *mk(uint64_t cap, uint64_t maxobj, bool amnesia, const char *dir)
{
    struct storage_opts o = {
        .mem_cap_bytes = cap, .max_object_bytes = maxobj, .amnesia = amnesia, .data_dir = dir};
    int rc = 1;
    struct storage *st = storage_new(&o, &rc);
    cr_assert_not_null(st, "storage_new: %s", eng_status_name(rc));
    cr_assert_eq(rc, ENG_OK);
    return st;
}

static char *mktemp_dir(void)
{
    char *t = strdup("/tmp/og-storage-XXXXXX");
    cr_assert_not_null(mkdtemp(t));
    return t;
}

/* Names of the entries of a directory (not . and ..), joined by '\n'. */
static size_t dir_list(const char *path, char *buf, size_t cap)
{
    DIR *d = opendir(path);
    cr_assert_not_null(d, "opendir %s", path);
    size_t n = 0, count = 0;
    struct dirent *e;
    buf[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s\n", e->d_name);
        count++;
    }
    closedir(d);
    return count;
}

static void rm_dir(char *path)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(path);
    free(path);
}

TestSuite(storage, .init = setup);

Test(storage, status_table)
{
    cr_assert_str_eq(eng_status_name(ENG_E_NOT_FOUND), "ENG_E_NOT_FOUND");
    cr_assert_str_eq(eng_status_code(ENG_E_RANGE), "range_not_satisfiable");
    cr_assert_eq(eng_status_http(ENG_OK), 200);
    cr_assert_eq(eng_status_http(ENG_E_NOT_FOUND), 404);
    cr_assert_eq(eng_status_http(ENG_E_RANGE), 416);
    cr_assert_eq(eng_status_http(ENG_E_TOO_LARGE), 413);
    cr_assert_eq(eng_status_http(ENG_E_FULL), 507);
    cr_assert_eq(eng_status_http(ENG_E_BUSY), 429);
    cr_assert_eq(eng_status_http(ENG_E_INVALID), 400);
    cr_assert_eq(eng_status_http(ENG_E_MISMATCH), 400);
    cr_assert_eq(eng_status_http(-999), 500);
    cr_assert_str_eq(eng_status_name(-999), "ENG_E_UNKNOWN");
}

Test(storage, put_get_roundtrip_and_address)
{
    struct storage *st = mk(0, 0, true, NULL);
    const char *msg = "hello, content addressed world";
    struct cas_addr a, want;
    bool created = false;
    cas_hash(msg, strlen(msg), &want);
    cr_assert_eq(storage_put(st, msg, strlen(msg), NULL, &a, &created), ENG_OK);
    cr_assert(created);
    cr_assert(cas_addr_equal(&a, &want));

    struct storage_view v;
    cr_assert_eq(storage_get(st, &a, 0, STORAGE_LEN_ALL, &v), ENG_OK);
    cr_assert_eq(v.n, strlen(msg));
    cr_assert_eq(memcmp(v.p, msg, v.n), 0);
    cr_assert_eq(v.blob->size, strlen(msg));
    cr_assert(cas_addr_equal(&v.blob->addr, &a));

    uint64_t size = 0;
    cr_assert_eq(storage_has(st, &a, &size), ENG_OK);
    cr_assert_eq(size, strlen(msg));

    /* The blob outlives the store. */
    storage_free(st);
    cr_assert_eq(memcmp(v.p, msg, v.n), 0);
    storage_view_release(&v);
    cr_assert_null(v.blob);
}

Test(storage, duplicate_put_is_idempotent)
{
    struct storage *st = mk(1000, 0, true, NULL);
    bool created = true;
    struct cas_addr a1, a2;
    cr_assert_eq(storage_put(st, "abc", 3, NULL, &a1, &created), ENG_OK);
    cr_assert(created);
    cr_assert_eq(storage_put(st, "abc", 3, NULL, &a2, &created), ENG_OK);
    cr_assert_not(created);
    cr_assert(cas_addr_equal(&a1, &a2));
    struct storage_stats s;
    storage_stats(st, &s);
    cr_assert_eq(s.objects, 1);
    cr_assert_eq(s.bytes, 3);
    storage_free(st);
}

Test(storage, empty_object)
{
    struct storage *st = mk(0, 0, true, NULL);
    struct cas_addr a;
    cr_assert_eq(storage_put(st, NULL, 0, NULL, &a, NULL), ENG_OK);
    struct storage_view v;
    cr_assert_eq(storage_get(st, &a, 0, STORAGE_LEN_ALL, &v), ENG_OK);
    cr_assert_eq(v.n, 0);
    storage_view_release(&v);
    cr_assert_eq(storage_get(st, &a, 1, 0, &v), ENG_E_RANGE);
    cr_assert_null(v.blob);
    storage_free(st);
}

Test(storage, address_mismatch_stores_nothing)
{
    struct storage *st = mk(0, 0, true, NULL);
    struct cas_addr wrong, a;
    cas_hash("other", 5, &wrong);
    cr_assert_eq(storage_put(st, "bytes", 5, &wrong, NULL, NULL), ENG_E_MISMATCH);
    cas_hash("bytes", 5, &a);
    cr_assert_eq(storage_has(st, &a, NULL), ENG_E_NOT_FOUND);
    struct storage_stats s;
    storage_stats(st, &s);
    cr_assert_eq(s.objects, 0);
    cr_assert_eq(s.bytes, 0);
    /* The right expectation is accepted. */
    cr_assert_eq(storage_put(st, "bytes", 5, &a, NULL, NULL), ENG_OK);
    cr_assert_eq(storage_has(st, &a, NULL), ENG_OK);
    storage_free(st);
}

Test(storage, not_found)
{
    struct storage *st = mk(0, 0, true, NULL);
    struct cas_addr a;
    struct storage_view v = {.n = 7};
    cas_hash("nothing", 7, &a);
    cr_assert_eq(storage_get(st, &a, 0, STORAGE_LEN_ALL, &v), ENG_E_NOT_FOUND);
    cr_assert_null(v.blob);
    cr_assert_eq(v.n, 0);
    cr_assert_eq(storage_has(st, &a, NULL), ENG_E_NOT_FOUND);
    storage_free(st);
}

Test(storage, ranges_at_every_edge)
{
    struct storage *st = mk(0, 0, true, NULL);
    const char *d = "0123456789"; /* size 10 */
    struct cas_addr a;
    cr_assert_eq(storage_put(st, d, 10, NULL, &a, NULL), ENG_OK);
    struct {
        uint64_t off, len;
        int rc;
        size_t n;
    } cases[] = {
        {0, STORAGE_LEN_ALL, ENG_OK, 10}, /* whole */
        {0, 10, ENG_OK, 10},              /* exact */
        {0, 11, ENG_OK, 10},              /* clipped */
        {0, 0, ENG_OK, 0},                /* empty at start */
        {0, 1, ENG_OK, 1},                /* first byte */
        {9, 1, ENG_OK, 1},                /* last byte */
        {9, 5, ENG_OK, 1},                /* last byte, clipped */
        {3, 4, ENG_OK, 4},                /* middle */
        {10, 0, ENG_OK, 0},               /* off == size, len 0 */
        {10, 5, ENG_OK, 0},               /* off == size, clipped to 0 */
        {11, 0, ENG_E_RANGE, 0},          /* off > size */
        {UINT64_MAX, 1, ENG_E_RANGE, 0},  /* huge off */
        {5, UINT64_MAX, ENG_OK, 5},       /* off + len overflows: clipped */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct storage_view v;
        int rc = storage_get(st, &a, cases[i].off, cases[i].len, &v);
        cr_assert_eq(rc, cases[i].rc, "case %zu: %s", i, eng_status_name(rc));
        cr_assert_eq(v.n, cases[i].n, "case %zu: n=%zu", i, v.n);
        if (rc == ENG_OK) {
            cr_assert_eq(v.p, v.blob->bytes + cases[i].off, "case %zu", i);
            cr_assert_eq(memcmp(v.p, d + cases[i].off, v.n), 0);
        } else {
            cr_assert_null(v.blob);
        }
        storage_view_release(&v);
    }
    storage_free(st);
}

Test(storage, max_object_and_memory_cap)
{
    struct storage *st = mk(1000, 600, true, NULL);
    static uint8_t buf[1001];
    struct cas_addr a;
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(storage_put(st, buf, 601, NULL, NULL, NULL), ENG_E_TOO_LARGE);
    cr_assert_eq(storage_put(st, buf, 600, NULL, NULL, NULL), ENG_OK);
    buf[0] = 'y';
    cr_assert_eq(storage_put(st, buf, 401, NULL, &a, NULL), ENG_E_FULL);
    cr_assert_eq(storage_has(st, &a, NULL), ENG_E_NOT_FOUND);
    struct storage_stats s;
    storage_stats(st, &s);
    cr_assert_eq(s.objects, 1);
    cr_assert_eq(s.bytes, 600);
    /* Exactly filling the cap is allowed; one more byte is not. */
    cr_assert_eq(storage_put(st, buf, 400, NULL, NULL, NULL), ENG_OK);
    buf[0] = 'z';
    cr_assert_eq(storage_put(st, buf, 1, NULL, NULL, NULL), ENG_E_FULL);
    /* A duplicate of a stored object is still fine when full. */
    buf[0] = 'x';
    cr_assert_eq(storage_put(st, buf, 600, NULL, NULL, NULL), ENG_OK);
    storage_stats(st, &s);
    cr_assert_eq(s.bytes, 1000);
    cr_assert_eq(s.objects, 2);
    storage_free(st);

    int rc = 0;
    struct storage_opts bad = {.mem_cap_bytes = 10, .max_object_bytes = 11, .amnesia = true};
    cr_assert_null(storage_new(&bad, &rc));
    cr_assert_eq(rc, ENG_E_INVALID);
}

Test(storage, persistence_across_restart)
{
    char *dir = mktemp_dir();
    struct storage *st = mk(0, 0, false, dir);
    struct cas_addr a[3];
    const char *objs[3] = {"first object", "second", ""};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(storage_put(st, objs[i], strlen(objs[i]), NULL, &a[i], NULL), ENG_OK);
    storage_free(st);

    char list[4096];
    cr_assert_eq(dir_list(dir, list, sizeof(list)), 3, "files: %s", list);
    char hex[CAS_ADDR_CHARS + 1];
    cas_addr_format(&a[0], hex);
    cr_assert(strstr(list, hex + 3) != NULL, "file named by hex address");
    cr_assert(strstr(list, ".tmp") == NULL);

    st = mk(0, 0, false, dir);
    for (int i = 0; i < 3; i++) {
        struct storage_view v;
        cr_assert_eq(storage_get(st, &a[i], 0, STORAGE_LEN_ALL, &v), ENG_OK, "obj %d", i);
        cr_assert_eq(v.n, strlen(objs[i]));
        cr_assert_eq(memcmp(v.p, objs[i], v.n), 0);
        storage_view_release(&v);
    }
    uint64_t size;
    cr_assert_eq(storage_has(st, &a[1], &size), ENG_OK);
    cr_assert_eq(size, strlen(objs[1]));
    struct storage_stats s;
    storage_stats(st, &s);
    cr_assert_eq(s.disk_loads, 3);
    cr_assert(s.persistent);
    struct cas_addr missing;
    cas_hash("missing", 7, &missing);
    cr_assert_eq(storage_has(st, &missing, NULL), ENG_E_NOT_FOUND);
    storage_free(st);
    rm_dir(dir);
}

Test(storage, stale_temp_files_swept_on_start)
{
    char *dir = mktemp_dir();
    char path[512];
    snprintf(path, sizeof(path), "%s/.tmp-deadbeef", dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    cr_assert_neq(fd, -1);
    close(fd);
    struct storage *st = mk(0, 0, false, dir);
    char list[1024];
    cr_assert_eq(dir_list(dir, list, sizeof(list)), 0, "left: %s", list);
    storage_free(st);
    rm_dir(dir);
}

Test(storage, amnesia_writes_zero_files)
{
    char *dir = mktemp_dir();
    char cwd_before[65536], cwd_after[65536], dir_after[1024];
    size_t n_before = dir_list(".", cwd_before, sizeof(cwd_before));

    struct storage *st = mk(0, 0, true, dir);
    struct cas_addr a;
    for (int i = 0; i < 50; i++) {
        char b[32];
        int n = snprintf(b, sizeof(b), "object %d", i);
        cr_assert_eq(storage_put(st, b, (size_t)n, NULL, &a, NULL), ENG_OK);
        struct storage_view v;
        cr_assert_eq(storage_get(st, &a, 1, 3, &v), ENG_OK);
        storage_view_release(&v);
    }
    struct cas_addr missing;
    cas_hash("missing", 7, &missing);
    cr_assert_eq(storage_has(st, &missing, NULL), ENG_E_NOT_FOUND);
    struct storage_stats s;
    storage_stats(st, &s);
    cr_assert_not(s.persistent);
    storage_free(st);

    cr_assert_eq(dir_list(dir, dir_after, sizeof(dir_after)), 0, "data dir: %s", dir_after);
    size_t n_after = dir_list(".", cwd_after, sizeof(cwd_after));
    cr_assert_eq(n_before, n_after);
    cr_assert_str_eq(cwd_before, cwd_after);
    rm_dir(dir);
}

static void overwrite(const char *dir, const struct cas_addr *a, const void *p, size_t n)
{
    char hex[CAS_ADDR_CHARS + 1], path[512];
    cas_addr_format(a, hex);
    snprintf(path, sizeof(path), "%s/%s", dir, hex + 3);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    if (n > 0)
        cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

Test(storage, corrupt_file_detected_on_read)
{
    char *dir = mktemp_dir();
    struct storage *st = mk(0, 0, false, dir);
    struct cas_addr a, b;
    cr_assert_eq(storage_put(st, "genuine bytes", 13, NULL, &a, NULL), ENG_OK);
    cr_assert_eq(storage_put(st, "other genuine", 13, NULL, &b, NULL), ENG_OK);
    storage_free(st);

    overwrite(dir, &a, "genuine bytez", 13); /* same size, flipped byte */
    overwrite(dir, &b, "other", 5);          /* truncated */

    st = mk(0, 0, false, dir);
    struct storage_view v;
    cr_assert_eq(storage_get(st, &a, 0, STORAGE_LEN_ALL, &v), ENG_E_CORRUPT);
    cr_assert_null(v.blob);
    cr_assert_eq(storage_get(st, &a, 0, 4, &v), ENG_E_CORRUPT); /* ranges too */
    cr_assert_eq(storage_has(st, &a, NULL), ENG_E_CORRUPT);
    cr_assert_eq(storage_get(st, &b, 0, STORAGE_LEN_ALL, &v), ENG_E_CORRUPT);
    struct storage_stats s;
    storage_stats(st, &s);
    cr_assert_eq(s.objects, 0, "corrupt objects are not cached");
    cr_assert_geq(s.corrupt_reads, 4);
    /* A fresh PUT of the genuine bytes repairs the file. */
    cr_assert_eq(storage_put(st, "genuine bytes", 13, &a, NULL, NULL), ENG_OK);
    storage_free(st);
    st = mk(0, 0, false, dir);
    cr_assert_eq(storage_get(st, &a, 0, STORAGE_LEN_ALL, &v), ENG_OK);
    cr_assert_eq(memcmp(v.p, "genuine bytes", 13), 0);
    storage_view_release(&v);
    storage_free(st);
    rm_dir(dir);
}

Test(storage, disk_object_over_cap_served_uncached)
{
    char *dir = mktemp_dir();
    struct storage *st = mk(100, 100, false, dir);
    static uint8_t big[100];
    memset(big, 'b', sizeof(big));
    struct cas_addr a, c;
    cr_assert_eq(storage_put(st, big, 100, NULL, &a, NULL), ENG_OK);
    storage_free(st);
    st = mk(100, 100, false, dir);
    cr_assert_eq(storage_put(st, "c", 1, NULL, &c, NULL), ENG_OK); /* takes 1 byte */
    struct storage_view v;
    cr_assert_eq(storage_get(st, &a, 0, STORAGE_LEN_ALL, &v), ENG_OK);
    cr_assert_eq(v.n, 100);
    storage_view_release(&v);
    struct storage_stats s;
    storage_stats(st, &s);
    cr_assert_eq(s.bytes, 1);
    cr_assert_eq(s.objects, 1);
    storage_free(st);
    rm_dir(dir);
}

/* ---------------------------------------------------------------- threads */

#define THREADS    4
#define PER_THREAD 2000

struct worker {
    struct storage *st;
    int id;
    int errors;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char b[64];
        /* Half the objects are shared by all threads (duplicate PUT races),
         * half are the thread's own. */
        int n = (i % 2) ? snprintf(b, sizeof(b), "shared-%d", i)
                        : snprintf(b, sizeof(b), "t%d-%d", w->id, i);
        struct cas_addr a;
        if (storage_put(w->st, b, (size_t)n, NULL, &a, NULL) != ENG_OK) {
            w->errors++;
            continue;
        }
        struct storage_view v;
        if (storage_get(w->st, &a, 0, STORAGE_LEN_ALL, &v) != ENG_OK || v.n != (size_t)n ||
            memcmp(v.p, b, v.n) != 0)
            w->errors++;
        storage_view_release(&v);
    }
    return NULL;
}

Test(storage, concurrency_smoke)
{
    struct storage *st = mk(0, 0, true, NULL);
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.st = st, .id = i};
        cr_assert_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].errors, 0, "thread %d", i);
    }
    struct storage_stats s;
    storage_stats(st, &s);
    /* PER_THREAD/2 shared objects + PER_THREAD/2 own per thread. */
    cr_assert_eq(s.objects, PER_THREAD / 2 + THREADS * PER_THREAD / 2);
    uint64_t bytes = 0;
    for (int i = 0; i < PER_THREAD; i++) {
        char b[64];
        if (i % 2) {
            bytes += (uint64_t)snprintf(b, sizeof(b), "shared-%d", i);
        } else {
            for (int k = 0; k < THREADS; k++)
                bytes += (uint64_t)snprintf(b, sizeof(b), "t%d-%d", k, i);
        }
    }
    cr_assert_eq(s.bytes, bytes);
    storage_free(st);
}

/* Readers on several threads while one writer fills the store, so every
 * shard's table grows under them: an object stored before a read began is
 * always found whole (no lost object while a table is replaced). */
#define GR_READERS 3
#define GR_OBJECTS 8000

struct grow {
    struct storage *st;
    const struct cas_addr *addr;
    atomic_int *stored; /* objects [0, *stored) are in */
    uint64_t seed;
    int errors;
    long reads;
};

static void *grow_reader(void *arg)
{
    struct grow *g = arg;
    char want[32];
    for (;;) {
        int done = atomic_load(g->stored);
        if (done == GR_OBJECTS && g->reads > 1000)
            break;
        if (done == 0)
            continue;
        g->seed ^= g->seed << 13;
        g->seed ^= g->seed >> 7;
        g->seed ^= g->seed << 17;
        int i = (int)(g->seed % (uint64_t)done);
        struct storage_view v;
        int n = snprintf(want, sizeof(want), "object-%d", i);
        if (storage_get(g->st, &g->addr[i], 0, STORAGE_LEN_ALL, &v) != ENG_OK || v.n != (size_t)n ||
            memcmp(v.p, want, v.n) != 0)
            g->errors++;
        storage_view_release(&v);
        uint64_t size = 0;
        if (storage_has(g->st, &g->addr[i], &size) != ENG_OK || size != (uint64_t)n)
            g->errors++;
        g->reads++;
    }
    return NULL;
}

Test(storage, readers_while_tables_grow, .timeout = 120)
{
    struct storage *st = mk(0, 0, true, NULL);
    struct cas_addr *addr = malloc(GR_OBJECTS * sizeof(*addr));
    char b[32];
    for (int i = 0; i < GR_OBJECTS; i++)
        cas_hash(b, (size_t)snprintf(b, sizeof(b), "object-%d", i), &addr[i]);
    atomic_int stored = 0;
    pthread_t t[GR_READERS];
    struct grow g[GR_READERS];
    for (int i = 0; i < GR_READERS; i++) {
        g[i] = (struct grow){
            .st = st, .addr = addr, .stored = &stored, .seed = 0x9e3779b9ULL * (uint64_t)(i + 1)};
        cr_assert_eq(pthread_create(&t[i], NULL, grow_reader, &g[i]), 0);
    }
    for (int i = 0; i < GR_OBJECTS; i++) {
        int n = snprintf(b, sizeof(b), "object-%d", i);
        cr_assert_eq(storage_put(st, b, (size_t)n, &addr[i], NULL, NULL), ENG_OK);
        atomic_store(&stored, i + 1);
    }
    for (int i = 0; i < GR_READERS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(g[i].errors, 0, "reader %d: %d errors in %ld reads", i, g[i].errors,
                     g[i].reads);
    }
    free(addr);
    storage_free(st);
}
