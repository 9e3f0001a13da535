/*
 * gcache.h — the verified group cache: 64 KiB groups of objects whose bytes
 * were checked against the object's address, kept to serve later ranges
 * without asking storage again.
 *
 * Objects are immutable and named by their hash, so a group that matched
 * its proven value stays right forever: nothing is invalidated, only
 * evicted (least recently used first, per shard) to stay under the byte
 * budget (`[media] range_cache`). Each object's size is kept too, so a
 * range of a cached object needs no downstream call at all. Only verified
 * bytes go in: the range pump inserts a group after it matched.
 *
 * Threads: any. The table is up to 16 shards (fewer for a small budget, so
 * each holds 16 groups or more), each behind its own mutex held for
 * a lookup or an insert (never while hashing or writing); entries are
 * reference counted, and their bytes never change, so a worker writes them
 * to a socket with no lock held.
 */
#ifndef MEDIA_GCACHE_H
#define MEDIA_GCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cas/cas.h"

struct gcache_entry;

/* Start-up: a budget of `bytes` for group bytes (0: the cache is off and
 * every call below is a miss or a no-op); registers the metrics. */
void gcache_init(uint64_t bytes);

/* The size of object a, when the cache knows it. */
bool gcache_size(const struct cas_addr *a, uint64_t *size);

/* A reference to group g of a, or NULL. */
struct gcache_entry *gcache_get(const struct cas_addr *a, uint64_t g);

/* The entry's bytes (the whole group). */
const uint8_t *gcache_bytes(const struct gcache_entry *e, size_t *n);

void gcache_unref(struct gcache_entry *e); /* NULL: no-op */

/* Keep a copy of group g (p[0..n), verified) of a, an object of `size`
 * bytes, and its size. A group already kept, or one over the budget, is
 * not copied. */
void gcache_put(const struct cas_addr *a, uint64_t size, uint64_t g, const uint8_t *p, size_t n);

/* Count a range served from the cache (hit) or not (miss). */
void gcache_count(bool hit);

/* Drop everything (tests; exit). */
void gcache_clear(void);

#endif
