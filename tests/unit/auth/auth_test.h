/*
 * Shared fixtures for the capability tests: fixed root secrets, a token
 * builder that signs arbitrary caveats, and a guard-page buffer so that a
 * parser over-read crashes instead of passing silently.
 */
#ifndef TESTS_UNIT_AUTH_AUTH_TEST_H
#define TESTS_UNIT_AUTH_AUTH_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "auth/caveat.h"
#include "auth/keys.h"
#include "auth/macaroon.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* bytes(range(32)), the secret the pymacaroons vectors below were made with. */
static const uint8_t SECRET1[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
static const uint8_t SECRET2[32] = {[0] = 0xa5, [31] = 0x5a};

/* Keys k1 (SECRET1) and k2 (SECRET2). */
static inline struct cap_keys *test_keys(void)
{
    struct cap_keys *k = cap_keys_new();
    cr_assert(k != NULL);
    cr_assert(cap_keys_add(k, "k1", 2, SECRET1, sizeof(SECRET1)) == 0);
    cr_assert(cap_keys_add(k, "k2", 2, SECRET2, sizeof(SECRET2)) == 0);
    return k;
}

/* Sign identifier `ident` and caveats cav[0..n) with `secret`; write the
 * base64 token into out. Returns its length. */
static inline int mk_token_secret(const uint8_t *secret, size_t slen, const char *ident,
                                  int version, const char *const *cav, size_t n, char *out,
                                  size_t cap)
{
    struct macaroon m;
    uint8_t key[32], sig[32];
    if (n > MACAROON_MAX_CAVEATS)
        return MACAROON_E_TOO_MANY_CAVEATS;
    memset(&m, 0, sizeof(m));
    m.version = version;
    m.identifier = (struct macaroon_slice){(const uint8_t *)ident, strlen(ident)};
    for (size_t i = 0; i < n; i++)
        m.caveats[i].cid = (struct macaroon_slice){(const uint8_t *)cav[i], strlen(cav[i])};
    m.ncaveats = n;
    cr_assert(macaroon_derive_key(secret, slen, key) == 0);
    cr_assert(macaroon_sign(&m, key, sig) == 0);
    m.sig = sig;
    return macaroon_encode(&m, out, cap);
}

static inline int mk_token(const char *ident, int version, const char *const *cav, size_t n,
                           char *out, size_t cap)
{
    return mk_token_secret(SECRET1, sizeof(SECRET1), ident, version, cav, n, out, cap);
}

/* A request at `now` for GET path. */
static inline struct cap_request test_req(const char *method, const char *path, int64_t now)
{
    struct cap_request r = {
        method, method ? strlen(method) : 0, path, path ? strlen(path) : 0, NULL, 0, now};
    return r;
}

/* n bytes copied so that they end exactly at a PROT_NONE page. */
struct guard {
    uint8_t *map;
    size_t maplen;
    uint8_t *p;
};

static inline void guard_init(struct guard *g, const void *src, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + page - 1) / page + 1;
    g->maplen = (data_pages + 1) * page;
    g->map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(g->map != MAP_FAILED);
    cr_assert(mprotect(g->map + data_pages * page, page, PROT_NONE) == 0);
    g->p = g->map + data_pages * page - n;
    memcpy(g->p, src, n);
}

static inline void guard_release(struct guard *g)
{
    munmap(g->map, g->maplen);
}

#endif
