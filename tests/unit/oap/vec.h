/*
 * vec.h — helpers shared by the OAP unit tests: golden vector loading, guard
 * pages, a seeded PRNG. Header-only (static) so each test file stands alone.
 */
#ifndef TESTS_UNIT_OAP_VEC_H
#define TESTS_UNIT_OAP_VEC_H

#include <criterion/criterion.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define VEC_DIR "testing/vectors/oap/"

/* Read VEC_DIR/name.hex ('#' lines are comments, whitespace ignored).
 * Returns a malloc'd buffer; *n gets its length. Fails the test if absent. */
static inline uint8_t *vec_load(const char *name, size_t *n)
{
    char path[256];
    FILE *f;
    uint8_t *out;
    size_t cap = 1 << 16, len = 0;
    int c, hi = -1, comment = 0;

    snprintf(path, sizeof(path), VEC_DIR "%s.hex", name);
    f = fopen(path, "r");
    cr_assert(f, "cannot open %s (run from the repository root)", path);
    out = malloc(cap);
    cr_assert(out);
    while ((c = fgetc(f)) != EOF) {
        if (comment) {
            comment = c != '\n';
            continue;
        }
        if (c == '#') {
            comment = 1;
            continue;
        }
        if (isspace(c))
            continue;
        cr_assert(isxdigit(c), "%s: bad hex character", path);
        int v = isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (len == cap) {
            cap *= 2;
            out = realloc(out, cap);
            cr_assert(out);
        }
        out[len++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    fclose(f);
    cr_assert(hi < 0, "%s: odd number of hex digits", path);
    *n = len;
    return out;
}

/* Copy n bytes so that the last one sits just before a PROT_NONE page: any
 * read past the end faults (picohttpparser's trick). Free with guard_free. */
struct guard {
    uint8_t *map;
    size_t map_len;
    uint8_t *p;
};

static inline uint8_t *guard_copy(struct guard *g, const void *src, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + pg - 1) / pg;

    g->map_len = (data_pages + 1) * pg;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(g->map != MAP_FAILED);
    cr_assert(mprotect(g->map + data_pages * pg, pg, PROT_NONE) == 0);
    g->p = g->map + data_pages * pg - n;
    if (n)
        memcpy(g->p, src, n);
    return g->p;
}

static inline void guard_free(struct guard *g)
{
    munmap(g->map, g->map_len);
}

/* xorshift64*: deterministic across runs and platforms. */
static inline uint64_t prng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t prng_below(uint64_t *s, uint64_t n)
{
    return n ? prng_next(s) % n : 0;
}

#endif
