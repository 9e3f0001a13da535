/*
 * keys — root keys for capabilities (DESIGN §7): key id → secret.
 *
 * Only the derived signing key HMAC("macaroons-key-generator", secret) is
 * kept (see macaroon.h); it is as sensitive as the secret, so every copy is
 * wiped with OPENSSL_cleanse when replaced or freed, and nothing here logs.
 * Several keys may be live at once: rotation adds the new key and keeps the
 * old one until its tokens expire; a token names its key by identifier
 * "<key id>[:<opaque nonce>]".
 *
 * A set is built at start-up or reload and read-only afterwards, so workers
 * share it without locks; a reload builds a new set and swaps the pointer.
 */
#ifndef AUTH_KEYS_H
#define AUTH_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/macaroon.h"

#define CAP_KEYS_MAX          64
#define CAP_KEY_ID_MAX        64
#define CAP_SECRET_MIN_BYTES  32 /* 256 bits: the HMAC-SHA256 key size */
#define CAP_SECRET_MAX_BYTES  256
#define CAP_KEYFILE_MAX_BYTES (64 * 1024)
#define CAP_KEYFILE_LINE_MAX  1024

struct cap_key {
    char id[CAP_KEY_ID_MAX + 1]; /* NUL-terminated; [A-Za-z0-9._-]+ */
    size_t id_len;
    uint8_t derived[MACAROON_KEY_BYTES];
};

struct cap_keys {
    size_t n;
    /* Changes (process-wide unique) on every add or replace, so a cache entry
     * made under another set or an older state is never trusted. */
    uint64_t generation;
    struct cap_key keys[CAP_KEYS_MAX];
};

/* An empty set; NULL when out of memory. */
struct cap_keys *cap_keys_new(void);

/* Wipe every key and free the set; NULL is a no-op. */
void cap_keys_free(struct cap_keys *k);

/* True when id[0..n) is a usable key id: 1..CAP_KEY_ID_MAX bytes of
 * [A-Za-z0-9._-] (no ':', which separates the nonce in identifiers). */
bool cap_keys_id_valid(const char *id, size_t n);

/* Add key id with a secret of CAP_SECRET_MIN_BYTES..CAP_SECRET_MAX_BYTES
 * bytes; an existing id is replaced and its old key wiped. The caller keeps
 * (and should wipe) secret. Returns 0, or -1 for a bad id, a secret of the
 * wrong size, a full set or an OpenSSL failure. */
int cap_keys_add(struct cap_keys *k, const char *id, size_t id_len, const uint8_t *secret,
                 size_t n);

/* Add key id with a fresh 32-byte secret from RAND_bytes (for --demo and
 * tests). When secret_out is not NULL the secret is copied there so a demo
 * can hand it to another tool. Returns 0 or -1. */
int cap_keys_add_random(struct cap_keys *k, const char *id, uint8_t *secret_out);

/* Load "id = <hex secret>" lines (blank lines and '#' comments allowed) from
 * path into k, replacing keys with the same id. The file must be a regular
 * file whose mode has no group or other bits (0600 or 0400): anything else is
 * refused. The whole file is checked before k changes, so on error k is
 * untouched. Returns 0, or -1 with one line naming the file (and line) in
 * err[0..errlen); the message never contains a secret. */
int cap_keys_load(struct cap_keys *k, const char *path, char *err, size_t errlen);

/* The key with id[0..n), or NULL. */
const struct cap_key *cap_keys_find(const struct cap_keys *k, const char *id, size_t n);

#endif
