/*
 * cas — BLAKE3 content addresses (DESIGN §1).
 *
 * An address is the BLAKE3-256 hash of an object's plaintext bytes, written
 * "b3:" followed by 64 lowercase hex digits. This library wraps the official
 * BLAKE3 C implementation (compiled from librust-blake3-dev's sources); it has
 * no I/O and no allocation.
 */
#ifndef CAS_CAS_H
#define CAS_CAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blake3.h"

#define CAS_HASH_BYTES 32
#define CAS_HEX_CHARS  64
/* "b3:" + 64 hex digits, without a terminating NUL. */
#define CAS_ADDR_CHARS (3 + CAS_HEX_CHARS)

struct cas_addr {
    uint8_t b[CAS_HASH_BYTES];
};

/* Incremental hashing: init, update any number of times, final. */
struct cas_hasher {
    blake3_hasher h;
};

/* Run the hash once so BLAKE3's CPU-feature cache is filled before threads
 * start (its first use is not thread-safe). Returns the SIMD level's name. */
const char *cas_init(void);

void cas_hasher_init(struct cas_hasher *h);
void cas_hasher_update(struct cas_hasher *h, const void *p, size_t n);
void cas_hasher_final(struct cas_hasher *h, struct cas_addr *out);

/* One-shot hash of a buffer. */
void cas_hash(const void *p, size_t n, struct cas_addr *out);

/* Parse exactly "b3:" + 64 lowercase hex (n must be CAS_ADDR_CHARS).
 * Returns 0, or -1 for anything else (uppercase, wrong length, prefix). */
int cas_addr_parse(struct cas_addr *out, const char *s, size_t n);

/* Write "b3:<hex>" into out (CAS_ADDR_CHARS bytes) and a NUL after it, so out
 * must hold CAS_ADDR_CHARS + 1 bytes. Returns out. */
char *cas_addr_format(const struct cas_addr *a, char *out);

/* Constant-time equality: time depends only on the length, never the bytes. */
bool cas_addr_equal(const struct cas_addr *a, const struct cas_addr *b);

#endif
