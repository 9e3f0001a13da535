/*
 * buf.c — growable buffers and aborting start-up allocation.
 */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

bool slice_ieq(struct slice a, const char *lit)
{
    size_t n = strlen(lit);
    return a.n == n && strncasecmp(a.p, lit, n) == 0;
}

int buf_reserve(struct buf *b, size_t more)
{
    if (b->cap - b->n >= more)
        return 0;
    size_t want = b->cap ? b->cap : 256;
    while (want - b->n < more) {
        if (want > ((size_t)-1) / 2)
            return -1;
        want *= 2;
    }
    char *p = realloc(b->p, want);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = want;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0; /* an empty buffer may have no storage yet */
    if (buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

void buf_release(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "omnigate: out of memory at start-up (%zu bytes)\n", n);
        abort();
    }
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (p == NULL) {
        fprintf(stderr, "omnigate: out of memory at start-up\n");
        abort();
    }
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}
