/*
 * Tests for engines/index: name and manifest validation, put/replace/resolve,
 * prefix search order and limits, 100 000 names, deletion, threads (readers
 * while a writer changes the index).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engines/index/index.h"

#if defined(__has_include) && __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1 /* ASan runs this code 2-4 times slower */
#else
#define UNDER_ASAN 0
#endif

#define M_OK "{\"parts\":{}}"

static struct index *mk(size_t max_names, size_t max_manifest)
{
    struct index_opts o = {.max_names = max_names, .max_manifest_bytes = max_manifest};
    int rc = 1;
    struct index *idx = index_new(&o, &rc);
    cr_assert_not_null(idx);
    cr_assert_eq(rc, ENG_OK);
    return idx;
}

static int put(struct index *idx, const char *name, const char *m)
{
    return index_put(idx, name, strlen(name), m, strlen(m), NULL);
}

/* This process's CPU time: the timing bounds below are about the algorithm,
 * and a loaded machine must not fail them. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TestSuite(index);

Test(index, put_resolve_replace)
{
    struct index *idx = mk(0, 0);
    bool created = false;
    cr_assert_eq(index_put(idx, "home", 4, M_OK, strlen(M_OK), &created), ENG_OK);
    cr_assert(created);
    struct eng_buf *m;
    cr_assert_eq(index_resolve(idx, "home", 4, &m), ENG_OK);
    cr_assert_eq(m->size, strlen(M_OK));
    cr_assert_eq(memcmp(m->bytes, M_OK, m->size), 0);

    const char *m2 = "{\"v\":2}";
    cr_assert_eq(index_put(idx, "home", 4, m2, strlen(m2), &created), ENG_OK);
    cr_assert_not(created);
    cr_assert_eq(index_count(idx), 1);
    /* The old reference still reads the old bytes: buffers are immutable. */
    cr_assert_eq(memcmp(m->bytes, M_OK, m->size), 0);
    eng_buf_unref(m);
    cr_assert_eq(index_resolve(idx, "home", 4, &m), ENG_OK);
    cr_assert_eq(memcmp(m->bytes, m2, m->size), 0);
    index_free(idx);
    /* And a reference outlives the index. */
    cr_assert_eq(memcmp(m->bytes, m2, m->size), 0);
    eng_buf_unref(m);
}

Test(index, not_found)
{
    struct index *idx = mk(0, 0);
    struct eng_buf *m = (struct eng_buf *)1;
    cr_assert_eq(index_resolve(idx, "nope", 4, &m), ENG_E_NOT_FOUND);
    cr_assert_null(m);
    cr_assert_eq(put(idx, "b", M_OK), ENG_OK);
    cr_assert_eq(index_resolve(idx, "a", 1, &m), ENG_E_NOT_FOUND);
    cr_assert_eq(index_resolve(idx, "bb", 2, &m), ENG_E_NOT_FOUND);
    cr_assert_eq(index_resolve(idx, "c", 1, &m), ENG_E_NOT_FOUND);
    index_free(idx);
}

Test(index, name_validation)
{
    struct index *idx = mk(0, 0);
    char longname[257];
    memset(longname, 'n', sizeof(longname));
    cr_assert_eq(index_put(idx, "", 0, M_OK, strlen(M_OK), NULL), ENG_E_INVALID);
    cr_assert_eq(index_put(idx, longname, 256, M_OK, strlen(M_OK), NULL), ENG_E_INVALID);
    cr_assert_eq(index_put(idx, longname, 255, M_OK, strlen(M_OK), NULL), ENG_OK);
    cr_assert_eq(index_put(idx, "a\nb", 3, M_OK, strlen(M_OK), NULL), ENG_E_INVALID);
    cr_assert_eq(index_put(idx, "a\0b", 3, M_OK, strlen(M_OK), NULL), ENG_E_INVALID);
    cr_assert_eq(index_put(idx, "a\x7f", 2, M_OK, strlen(M_OK), NULL), ENG_E_INVALID);
    cr_assert_eq(index_put(idx, "\xff", 1, M_OK, strlen(M_OK), NULL), ENG_E_INVALID);
    cr_assert_eq(index_put(idx, "\xc0\xaf", 2, M_OK, strlen(M_OK), NULL), ENG_E_INVALID);
    cr_assert_eq(index_put(idx, "\xc3", 1, M_OK, strlen(M_OK), NULL), ENG_E_INVALID);
    cr_assert_eq(index_put(idx, "\xed\xa0\x80", 3, M_OK, strlen(M_OK), NULL), ENG_E_INVALID);
    cr_assert_eq(index_put(idx, "caf\xc3\xa9", 5, M_OK, strlen(M_OK), NULL), ENG_OK);
    cr_assert_eq(index_put(idx, "a/b c:d", 7, M_OK, strlen(M_OK), NULL), ENG_OK);
    struct eng_buf *m;
    cr_assert_eq(index_resolve(idx, "", 0, &m), ENG_E_INVALID);
    cr_assert_eq(index_count(idx), 3);
    index_free(idx);
}

Test(index, manifest_validation)
{
    struct index *idx = mk(0, 64);
    cr_assert_eq(put(idx, "x", "[1,2]"), ENG_E_INVALID);
    cr_assert_eq(put(idx, "x", "\"s\""), ENG_E_INVALID);
    cr_assert_eq(put(idx, "x", "{"), ENG_E_INVALID);
    cr_assert_eq(put(idx, "x", "{\"a\":1,\"a\":2}"), ENG_E_INVALID);
    cr_assert_eq(put(idx, "x", "{} {}"), ENG_E_INVALID);
    cr_assert_eq(put(idx, "x", ""), ENG_E_INVALID);
    cr_assert_eq(index_put(idx, "x", 1, "{\"a\":\"\0\"}", 9, NULL), ENG_E_INVALID);
    char big[66];
    memset(big, ' ', sizeof(big));
    big[0] = '{';
    big[64] = '}';
    big[65] = '\0';
    cr_assert_eq(put(idx, "x", big), ENG_E_TOO_LARGE); /* 65 bytes > 64 */
    big[63] = '}';
    big[64] = '\0';
    cr_assert_eq(put(idx, "x", big), ENG_OK); /* exactly 64 */
    cr_assert_eq(put(idx, "y", " {\"a\":{\"b\":[1,null]}} \n"), ENG_OK);
    cr_assert_eq(index_count(idx), 2);
    cr_assert_eq(index_manifest_check("{}", 2, 0), ENG_OK);
    index_free(idx);
}

Test(index, max_names)
{
    struct index *idx = mk(2, 0);
    cr_assert_eq(put(idx, "a", M_OK), ENG_OK);
    cr_assert_eq(put(idx, "b", M_OK), ENG_OK);
    cr_assert_eq(put(idx, "c", M_OK), ENG_E_FULL);
    cr_assert_eq(put(idx, "a", "{\"r\":1}"), ENG_OK); /* replacing is fine */
    cr_assert_eq(index_count(idx), 2);
    index_free(idx);
}

Test(index, search_order_and_limits)
{
    struct index *idx = mk(0, 0);
    const char *names[] = {"b", "app",         "apple",   "ap",     "apply", "apt",
                           "a", "application", "apricot", "banana", "APP",   "ap\xc3\xa9"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cr_assert_eq(put(idx, names[i], M_OK), ENG_OK, "%s", names[i]);

    struct index_search_result *r = malloc(sizeof(*r));
    cr_assert_eq(index_search(idx, "ap", 2, 100, r), ENG_OK);
    const char *want[] = {"ap",    "app",     "apple", "application",
                          "apply", "apricot", "apt",   "ap\xc3\xa9"};
    cr_assert_eq(r->count, 8);
    cr_assert_not(r->more);
    for (size_t i = 0; i < r->count; i++) {
        cr_assert_str_eq(r->name[i], want[i], "pos %zu", i);
        cr_assert_eq(r->len[i], strlen(want[i]));
    }

    cr_assert_eq(index_search(idx, "ap", 2, 3, r), ENG_OK);
    cr_assert_eq(r->count, 3);
    cr_assert(r->more);
    cr_assert_str_eq(r->name[2], "apple");

    cr_assert_eq(index_search(idx, "app", 3, 4, r), ENG_OK); /* exactly the limit */
    cr_assert_eq(r->count, 4);
    cr_assert_not(r->more);

    cr_assert_eq(index_search(idx, "", 0, 2, r), ENG_OK);
    cr_assert_eq(r->count, 2);
    cr_assert_str_eq(r->name[0], "APP");
    cr_assert_str_eq(r->name[1], "a");

    cr_assert_eq(index_search(idx, "zzz", 3, 10, r), ENG_OK);
    cr_assert_eq(r->count, 0);
    cr_assert_eq(index_search(idx, "apz", 3, 10, r), ENG_OK);
    cr_assert_eq(r->count, 0);
    cr_assert_eq(index_search(idx, "ap\xc3", 3, 10, r), ENG_OK); /* partial UTF-8 */
    cr_assert_eq(r->count, 1);

    cr_assert_eq(index_search(idx, "a", 1, 0, r), ENG_E_INVALID);
    cr_assert_eq(index_search(idx, "a", 1, INDEX_SEARCH_MAX + 1, r), ENG_E_INVALID);
    cr_assert_eq(index_search(idx, "a\n", 2, 5, r), ENG_E_INVALID);

    struct index *empty = mk(0, 0);
    cr_assert_eq(index_search(empty, "a", 1, 5, r), ENG_OK);
    cr_assert_eq(r->count, 0);
    index_free(empty);
    free(r);
    index_free(idx);
}

Test(index, delete)
{
    struct index *idx = mk(0, 0);
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "n%04d", i);
        cr_assert_eq(put(idx, name, M_OK), ENG_OK);
    }
    for (int i = 0; i < 1000; i += 2) {
        snprintf(name, sizeof(name), "n%04d", i);
        cr_assert_eq(index_del(idx, name, strlen(name)), ENG_OK);
    }
    cr_assert_eq(index_del(idx, "n0000", 5), ENG_E_NOT_FOUND);
    cr_assert_eq(index_count(idx), 500);
    struct index_search_result *r = malloc(sizeof(*r));
    cr_assert_eq(index_search(idx, "n00", 3, 100, r), ENG_OK);
    cr_assert_eq(r->count, 50);
    cr_assert_str_eq(r->name[0], "n0001");
    cr_assert_str_eq(r->name[49], "n0099");
    /* Empty every block and fill again. */
    for (int i = 1; i < 1000; i += 2) {
        snprintf(name, sizeof(name), "n%04d", i);
        cr_assert_eq(index_del(idx, name, strlen(name)), ENG_OK);
    }
    cr_assert_eq(index_count(idx), 0);
    cr_assert_eq(index_search(idx, "", 0, 10, r), ENG_OK);
    cr_assert_eq(r->count, 0);
    cr_assert_eq(put(idx, "again", M_OK), ENG_OK);
    cr_assert_eq(index_search(idx, "", 0, 10, r), ENG_OK);
    cr_assert_eq(r->count, 1);
    free(r);
    index_free(idx);
}

Test(index, pages_split_and_empty)
{
    /* Enough names for many leaves and pages, removed from both ends and
     * the middle until the index is empty: every level splits and empties. */
    enum { N = 20000 };
    struct index *idx = mk(0, 0);
    struct index_search_result *r = malloc(sizeof(*r));
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "p%05d", (i * 7919) % N);
        cr_assert_eq(put(idx, name, M_OK), ENG_OK);
    }
    size_t live = N;
    for (int pass = 0; pass < 3; pass++) {
        for (int i = pass; i < N; i += 3, live--) {
            snprintf(name, sizeof(name), "p%05d", i);
            cr_assert_eq(index_del(idx, name, strlen(name)), ENG_OK);
        }
        cr_assert_eq(index_count(idx), live);
        cr_assert_eq(index_search(idx, "p", 1, 100, r), ENG_OK);
        for (size_t j = 1; j < r->count; j++)
            cr_assert_lt(strcmp(r->name[j - 1], r->name[j]), 0);
        struct eng_buf *m;
        snprintf(name, sizeof(name), "p%05d", N - 1);
        cr_assert_eq(index_resolve(idx, name, strlen(name), &m),
                     (N - 1) % 3 <= pass ? ENG_E_NOT_FOUND : ENG_OK);
        eng_buf_unref(m);
    }
    cr_assert_eq(index_search(idx, "", 0, 10, r), ENG_OK);
    cr_assert_eq(r->count, 0);
    cr_assert_eq(put(idx, "again", M_OK), ENG_OK);
    cr_assert_eq(index_count(idx), 1);
    free(r);
    index_free(idx);
}

/* xorshift: deterministic pseudo-random order without libc rand() state. */
static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(index, hundred_thousand_names, .timeout = 600)
{
    enum { N = 100000, SEARCHES = 10000 };
    struct index *idx = mk(0, 0);
    char name[64];
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    /* Names "user/<5 digits>/<tag>", inserted in a shuffled order. */
    uint32_t *order = malloc(N * sizeof(*order));
    for (uint32_t i = 0; i < N; i++)
        order[i] = i;
    for (uint32_t i = N - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(rng(&s) % (i + 1));
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    double t0 = cpu_s();
    for (uint32_t i = 0; i < N; i++) {
        int n = snprintf(name, sizeof(name), "user/%05u/p", order[i]);
        cr_assert_eq(index_put(idx, name, (size_t)n, "{}", 2, NULL), ENG_OK);
    }
    double t_insert = cpu_s() - t0;
    cr_assert_eq(index_count(idx), N);

    struct index_search_result *r = malloc(sizeof(*r));
    t0 = cpu_s();
    for (int i = 0; i < SEARCHES; i++) {
        uint32_t k = (uint32_t)(rng(&s) % N);
        /* "user/NNN" matches 100 names: ask for 10, expect the first 10. */
        int n = snprintf(name, sizeof(name), "user/%03u", k / 100);
        cr_assert_eq(index_search(idx, name, (size_t)n, 10, r), ENG_OK);
        cr_assert_eq(r->count, 10);
        cr_assert(r->more);
        for (size_t j = 0; j < r->count; j++) {
            char want[64];
            snprintf(want, sizeof(want), "user/%03u%02zu/p", k / 100, j);
            if (strcmp(r->name[j], want) != 0)
                cr_assert_fail("search %d pos %zu: %s != %s", i, j, r->name[j], want);
        }
    }
    double t_search = cpu_s() - t0;
    cr_log_info("100k inserts %.3f s, 10k searches %.3f s (CPU)", t_insert, t_search);
    /* The bounds catch a search or an insert that is not O(log n) plus a
     * bounded copy (one flat sorted array would move gigabytes). Under
     * valgrind this code runs 20-40 times slower, and an insert, which
     * copies one leaf, page and top (about 1 KiB), costs 1.5-2 times the
     * in-place insert it replaced, and a loaded host adds more: the
     * bounds widen there. */
    double slow = RUNNING_ON_VALGRIND ? 50.0 : UNDER_ASAN ? 5.0 : 1.0;
    cr_assert_lt(t_search, 2.0 * slow, "10k searches took %.3f s", t_search);
    cr_assert_lt(t_insert, 5.0 * slow, "100k inserts took %.3f s", t_insert);

    /* The whole order, walked through resolve and a full scan by prefixes. */
    cr_assert_eq(index_search(idx, "user/9999", 9, 100, r), ENG_OK);
    cr_assert_eq(r->count, 10);
    cr_assert_str_eq(r->name[9], "user/99999/p");
    struct eng_buf *m;
    cr_assert_eq(index_resolve(idx, "user/00000/p", 12, &m), ENG_OK);
    eng_buf_unref(m);
    cr_assert_eq(index_resolve(idx, "user/99999/p", 12, &m), ENG_OK);
    eng_buf_unref(m);
    cr_assert_eq(index_resolve(idx, "user/99999/q", 12, &m), ENG_E_NOT_FOUND);
    free(r);
    free(order);
    index_free(idx);
}

struct iw {
    struct index *idx;
    int id;
    int errors;
};

static void *iw_run(void *arg)
{
    struct iw *w = arg;
    struct index_search_result *r = malloc(sizeof(*r));
    char name[32];
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(name, sizeof(name), "t%d/%05d", w->id, i);
        if (index_put(w->idx, name, (size_t)n, "{\"k\":1}", 7, NULL) != ENG_OK)
            w->errors++;
        struct eng_buf *m;
        if (index_resolve(w->idx, name, (size_t)n, &m) != ENG_OK || m->size != 7)
            w->errors++;
        eng_buf_unref(m);
        /* Shared name replaced by everyone. */
        if (index_put(w->idx, "shared", 6, "{\"k\":2}", 7, NULL) != ENG_OK)
            w->errors++;
        if (index_search(w->idx, name, 3, 10, r) != ENG_OK || r->count == 0)
            w->errors++;
    }
    free(r);
    return NULL;
}

Test(index, concurrency_smoke)
{
    struct index *idx = mk(0, 0);
    pthread_t t[4];
    struct iw w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct iw){.idx = idx, .id = i};
        pthread_create(&t[i], NULL, iw_run, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].errors, 0);
    }
    cr_assert_eq(index_count(idx), 4 * 3000 + 1);
    index_free(idx);
}

/* Readers on several threads while one writer replaces, inserts and
 * deletes: a reader never misses a name that is only ever replaced, always
 * gets a whole manifest (ASan catches a freed one), and every search comes
 * out sorted from one snapshot. */
#define RW_READERS 3
#define RW_NAMES   10000 /* several pages of leaves */

struct rw {
    struct index *idx;
    atomic_bool *stop;
    uint64_t seed;
    int errors;
    long reads;
};

static bool manifest_ok(const struct eng_buf *m)
{
    return m->size >= 7 && memcmp(m->bytes, "{\"v\":", 5) == 0 && m->bytes[m->size - 1] == '}';
}

static void *rw_reader(void *arg)
{
    struct rw *r = arg;
    struct index_search_result *res = malloc(sizeof(*res));
    char name[32];
    while (!atomic_load(r->stop) || r->reads < 1000) {
        int n = snprintf(name, sizeof(name), "r/%05u", (unsigned)(rng(&r->seed) % RW_NAMES));
        struct eng_buf *m = NULL;
        if (index_resolve(r->idx, name, (size_t)n, &m) != ENG_OK || !manifest_ok(m))
            r->errors++;
        eng_buf_unref(m);
        const char *prefix = (r->reads & 1) ? "r/" : "w/";
        if (index_search(r->idx, prefix, 2, 100, res) != ENG_OK)
            r->errors++;
        if (prefix[0] == 'r' && (res->count != 100 || !res->more))
            r->errors++;
        for (size_t i = 0; i < res->count; i++) {
            if (memcmp(res->name[i], prefix, 2) != 0)
                r->errors++;
            if (i > 0 && strcmp(res->name[i - 1], res->name[i]) >= 0)
                r->errors++;
        }
        r->reads++;
    }
    free(res);
    return NULL;
}

Test(index, readers_while_a_writer_changes)
{
    struct index *idx = mk(0, 0);
    char name[32], m[64];
    for (int i = 0; i < RW_NAMES; i++) {
        snprintf(name, sizeof(name), "r/%05d", i);
        cr_assert_eq(put(idx, name, "{\"v\":0}"), ENG_OK);
    }
    atomic_bool stop = false;
    pthread_t t[RW_READERS];
    struct rw r[RW_READERS];
    for (int i = 0; i < RW_READERS; i++) {
        r[i] = (struct rw){.idx = idx, .stop = &stop, .seed = 0x1234567ULL * (uint64_t)(i + 1)};
        cr_assert_eq(pthread_create(&t[i], NULL, rw_reader, &r[i]), 0);
    }
    uint64_t s = 42;
    size_t live = RW_NAMES;
    for (int round = 0; round < 5000; round++) {
        snprintf(name, sizeof(name), "r/%05u", (unsigned)(rng(&s) % RW_NAMES));
        snprintf(m, sizeof(m), "{\"v\":%d}", round);
        cr_assert_eq(put(idx, name, m), ENG_OK);
        /* Names that come and go, enough to split and empty blocks. */
        snprintf(name, sizeof(name), "w/%05d", round % 700);
        if ((round / 700) % 2 == 0) {
            cr_assert_eq(put(idx, name, m), ENG_OK);
            live++;
        } else {
            cr_assert_eq(index_del(idx, name, strlen(name)), ENG_OK);
            live--;
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < RW_READERS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(r[i].errors, 0, "reader %d: %d errors in %ld reads", i, r[i].errors,
                     r[i].reads);
    }
    cr_assert_eq(index_count(idx), live);
    index_free(idx);
}

struct dumped {
    size_t n, stop_at;
    char last[INDEX_NAME_MAX_BYTES + 1];
    size_t last_len;
    struct index *into;
};

static int dump_one(void *arg, const char *name, size_t len, const struct eng_buf *m)
{
    struct dumped *d = arg;
    if (d->n > 0) {
        size_t k = len < d->last_len ? len : d->last_len;
        int c = memcmp(d->last, name, k);
        cr_assert(c < 0 || (c == 0 && d->last_len < len), "ascending, no repeats");
    }
    memcpy(d->last, name, len);
    d->last_len = len;
    d->n++;
    if (d->into)
        cr_assert_eq(index_put(d->into, name, len, m->bytes, m->size, NULL), ENG_OK);
    return d->stop_at && d->n == d->stop_at ? 5 : 0;
}

Test(index, dump_walks_every_name_in_order)
{
    struct index *idx = mk(0, 0), *copy = mk(0, 0);
    struct dumped d = {0};
    char name[32], m[64];

    cr_assert_eq(index_dump(idx, dump_one, &d), ENG_OK);
    cr_assert_eq(d.n, 0);
    /* Enough names for several dump pages and several leaves. */
    for (int i = 999; i >= 0; i--) {
        snprintf(name, sizeof(name), "n%d", i);
        snprintf(m, sizeof(m), "{\"i\":%d}", i);
        cr_assert_eq(put(idx, name, m), ENG_OK);
    }
    d.into = copy;
    cr_assert_eq(index_dump(idx, dump_one, &d), ENG_OK);
    cr_assert_eq(d.n, 1000);
    cr_assert_eq(index_count(copy), 1000);
    struct eng_buf *b = NULL;
    cr_assert_eq(index_resolve(copy, "n640", 4, &b), ENG_OK);
    cr_assert_eq(b->size, 9);
    cr_assert_eq(memcmp(b->bytes, "{\"i\":640}", 9), 0);
    eng_buf_unref(b);

    struct dumped s = {.stop_at = 70};
    cr_assert_eq(index_dump(idx, dump_one, &s), 5);
    cr_assert_eq(s.n, 70);
    index_free(idx);
    index_free(copy);
}
