/*
 * freelist.h — a bounded cache of same-size heap blocks (STYLE §11).
 *
 * One per worker and per kind of block (read buffers, request state), used
 * by one thread, no lock. A block given back is kept for the next taker
 * while fewer than `max` are cached and freed beyond that, so a burst of
 * busy connections leaves at most `max` blocks behind (nginx frees a
 * keep-alive connection's buffers the same way; here a few stay warm for
 * the next request instead of a malloc/free pair per request).
 *
 * The block size may change between takes (a reload changes header_max):
 * asking for another size drops what is cached, and a block given back with
 * a size other than the current one is freed, never handed out again.
 * Under ASan a cached block is poisoned, so a use after it was given back
 * is reported.
 */
#ifndef CORE_FREELIST_H
#define CORE_FREELIST_H

#include <stddef.h>

struct freelist {
    void *head;   /* cached blocks, linked through their first word */
    size_t size;  /* size of the blocks cached */
    unsigned n;   /* blocks cached now */
    unsigned max; /* blocks cached at most */
};

/* An empty list that caches up to max blocks. */
void freelist_init(struct freelist *fl, unsigned max);

/* A block of `size` bytes (≥ sizeof(void *)), uninitialised: a cached one
 * or a new malloc. Returns NULL when memory is short. */
__attribute__((warn_unused_result)) void *freelist_get(struct freelist *fl, size_t size);

/* Give back blk, taken with this size: cached, or freed when the list is
 * full or the size is no longer current. blk may be NULL (no-op). */
void freelist_put(struct freelist *fl, void *blk, size_t size);

/* Free every cached block; the list stays usable. */
void freelist_release(struct freelist *fl);

#endif
