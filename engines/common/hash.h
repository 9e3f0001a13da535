/*
 * engines/common/hash.h — keyed hashing and an intrusive chained hash table
 * shared by the engines.
 *
 * Keys of these tables (channel names, idempotency keys, object addresses)
 * come from clients, so the hash is SipHash-2-4 under a per-table random key:
 * a client cannot choose keys that collide (hash flooding).
 *
 * The table stores `struct eng_hnode` members embedded in the caller's own
 * records (STYLE §15): no per-node allocation, the caller owns the records.
 * It is not thread-safe; its owner locks around it.
 */
#ifndef ENGINES_COMMON_HASH_H
#define ENGINES_COMMON_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define eng_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* SipHash-2-4 of p[0..n) under the 16-byte key k. */
uint64_t eng_siphash(const uint8_t k[16], const void *p, size_t n);

/* Fill k[0..n) with random bytes from getrandom(2), falling back to a mix of
 * time and addresses if it is unavailable (the key is a flooding defence,
 * not a secret protecting data). */
void eng_random_key(uint8_t *k, size_t n);

/* Names of index entries and mailbox channels: 1..255 bytes, no ASCII
 * control character (0x00-0x1f, 0x7f), valid UTF-8 (names are written into
 * JSON documents). Returns ENG_OK or ENG_E_INVALID. */
#define ENG_NAME_MAX_BYTES 255
int eng_name_check(const char *p, size_t n);

struct eng_hnode {
    struct eng_hnode *next;
    uint64_t hash;
};

struct eng_hmap {
    struct eng_hnode **b;
    size_t nb; /* bucket count, a power of two */
    size_t n;  /* nodes */
};

/* Returns true when the node's key equals the probe's key. */
typedef bool (*eng_hmap_eq_fn)(const struct eng_hnode *node, const void *probe);

/* Empty table with 16 buckets. Returns ENG_OK or ENG_E_NOMEM. */
int eng_hmap_init(struct eng_hmap *m);

/* Frees the bucket array; nodes stay the caller's. */
void eng_hmap_release(struct eng_hmap *m);

/* The node with this hash for which eq(node, probe) holds, or NULL. */
struct eng_hnode *eng_hmap_find(const struct eng_hmap *m, uint64_t hash, eng_hmap_eq_fn eq,
                                const void *probe);

/* Link node (its `hash` already set). Doubles the bucket array past a load
 * of 1; if that allocation fails the table keeps working with longer chains,
 * so inserting never fails. */
void eng_hmap_insert(struct eng_hmap *m, struct eng_hnode *node);

/* Unlink a node that is in the table. */
void eng_hmap_remove(struct eng_hmap *m, struct eng_hnode *node);

#endif
