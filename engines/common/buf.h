/*
 * engines/common/buf.h — immutable, reference-counted byte buffers.
 *
 * Engines hand out stored objects (manifests, message bodies) as eng_buf
 * references: the engine is looked into (without a lock, engines/common/rcu.h)
 * only to find the buffer and take a reference, and the bytes are then read
 * or streamed holding nothing else of the engine's.
 * The bytes are written once, by the creator, before the buffer is published;
 * after that nobody writes them. The count is atomic, so references may be
 * taken and dropped from any thread.
 */
#ifndef ENGINES_COMMON_BUF_H
#define ENGINES_COMMON_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct eng_buf {
    atomic_size_t refs;
    size_t size;
    uint8_t bytes[];
};

/* A new buffer of `size` bytes (contents undefined) holding one reference.
 * Returns NULL when the allocation fails. */
__attribute__((warn_unused_result)) struct eng_buf *eng_buf_new(size_t size);

/* A new buffer holding a copy of p[0..n), one reference; NULL on failure. */
__attribute__((warn_unused_result)) struct eng_buf *eng_buf_from(const void *p, size_t n);

/* A buffer of size n holding a copy of p[0..n), followed by a copy of
 * tail[0..tn) just past its end (bytes[n..n + tn), not counted in size):
 * one allocation for a body and a small attribute of it. NULL on failure. */
__attribute__((warn_unused_result)) struct eng_buf *eng_buf_with_tail(const void *p, size_t n,
                                                                      const void *tail, size_t tn);

/* Take one more reference; returns b. b must be non-NULL and live. */
struct eng_buf *eng_buf_ref(struct eng_buf *b);

/* Drop one reference; the last one frees the buffer. NULL is a no-op. */
void eng_buf_unref(struct eng_buf *b);

#endif
