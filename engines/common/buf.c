/*
 * buf.c — reference-counted immutable buffers.
 */
#include "engines/common/buf.h"

#include <stdlib.h>
#include <string.h>

struct eng_buf *eng_buf_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(struct eng_buf))
        return NULL;
    struct eng_buf *b = malloc(sizeof(*b) + size);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->size = size;
    return b;
}

struct eng_buf *eng_buf_from(const void *p, size_t n)
{
    struct eng_buf *b = eng_buf_new(n);
    if (b != NULL && n > 0)
        memcpy(b->bytes, p, n);
    return b;
}

struct eng_buf *eng_buf_with_tail(const void *p, size_t n, const void *tail, size_t tn)
{
    if (tn > SIZE_MAX - sizeof(struct eng_buf) - n)
        return NULL;
    struct eng_buf *b = eng_buf_new(n + tn);
    if (b == NULL)
        return NULL;
    b->size = n;
    if (n > 0)
        memcpy(b->bytes, p, n);
    if (tn > 0)
        memcpy(b->bytes + n, tail, tn);
    return b;
}

struct eng_buf *eng_buf_ref(struct eng_buf *b)
{
    /* Relaxed is enough to take a reference from one we already hold. */
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void eng_buf_unref(struct eng_buf *b)
{
    if (b == NULL)
        return;
    /* Release on the decrement and acquire before the free, so every write
     * and read made through other references happens before the free. One
     * acq_rel decrement rather than release plus an acquire fence on the
     * last: the same locked instruction on x86-64, and ThreadSanitizer, which
     * does not model fences, then sees the order too. */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}
