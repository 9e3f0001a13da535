/*
 * buf.h — a growable byte buffer and string slices (STYLE §12).
 *
 * Data-path growth returns an error instead of aborting (STYLE §10); the
 * caller checks its own cap before asking for room.
 */
#ifndef CORE_BUF_H
#define CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* A view into memory owned by someone else. */
struct slice {
    const char *p;
    size_t n;
};

#define SLICE_LIT(s) ((struct slice){(s), sizeof(s) - 1})

static inline bool slice_eq(struct slice a, const char *lit, size_t n)
{
    return a.n == n && memcmp(a.p, lit, n) == 0;
}
/* ASCII case-insensitive equality with a literal. */
bool slice_ieq(struct slice a, const char *lit);

struct buf {
    char *p;
    size_t n, cap;
};

/* Make room for `more` bytes past n. Returns 0, or -1 if memory is short. */
__attribute__((warn_unused_result)) int buf_reserve(struct buf *b, size_t more);
__attribute__((warn_unused_result)) int buf_append(struct buf *b, const void *p, size_t n);
void buf_release(struct buf *b);

/* Aborting allocation, for start-up and configuration only (STYLE §10). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
char *xstrdup(const char *s);

#endif
