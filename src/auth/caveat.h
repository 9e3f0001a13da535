/*
 * caveat — capability verification: macaroon signature under a root key, then
 * omnigate's first-party caveats, then the request (DESIGN §7).
 *
 * Caveats are "key = value" (blanks around '=' optional, as pymacaroons users
 * write them); every caveat must hold, and a caveat that is not understood
 * makes the token invalid (fail closed):
 *
 *   tenant = T        T is [A-Za-z0-9._-]{1,64}; repeated tenant caveats must
 *                     all name the same tenant.
 *   scope = a[,b...]  scope names from CAP_SCOPE_MAP; the granted set is the
 *                     INTERSECTION of the sets of all scope caveats, so adding
 *                     a caveat can only narrow a token (macaroon attenuation).
 *   expires = N       unix seconds; valid while now < N (expired at N).
 *                     Several: the earliest wins.
 *   route = P         the request path must start with P (byte prefix; P
 *                     starts with '/'); several: the path must match all.
 *   method = M[,N]    the request method must be in the set; several: the
 *                     intersection of the sets.
 *
 * Required: at least one tenant, scope and expires caveat; a token without
 * them is refused (CAP_E_INCOMPLETE) rather than read as unlimited.
 * Third-party caveats are recognised and refused (CAP_E_UNSUPPORTED).
 *
 * Status → HTTP: a missing, malformed, unsigned, unknown-key, expired or
 * not-understood token is 401 `unauth` (the client must get a new token); a
 * valid token that does not cover this request — tenant, route, method,
 * scope — is 403 `forbidden` (a new token would not be needed if the client
 * asked for what it was granted). CAP_STATUS_MAP carries both.
 */
#ifndef AUTH_CAVEAT_H
#define AUTH_CAVEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/keys.h"
#include "auth/macaroon.h"

/* status, value, reason label, HTTP status, JSON error code */
#define CAP_STATUS_MAP(X)                                                                          \
    X(CAP_OK, 0, "ok", 200, "ok")                                                                  \
    X(CAP_E_MISSING, -1, "missing_token", 401, "unauth")                                           \
    X(CAP_E_MALFORMED, -2, "malformed_token", 401, "unauth")                                       \
    X(CAP_E_UNKNOWN_KEY, -3, "unknown_key", 401, "unauth")                                         \
    X(CAP_E_BAD_SIG, -4, "bad_signature", 401, "unauth")                                           \
    X(CAP_E_UNSUPPORTED, -5, "third_party_caveat", 401, "unauth")                                  \
    X(CAP_E_UNKNOWN_CAVEAT, -6, "unknown_caveat", 401, "unauth")                                   \
    X(CAP_E_INCOMPLETE, -7, "missing_caveat", 401, "unauth")                                       \
    X(CAP_E_EXPIRED, -8, "expired", 401, "unauth")                                                 \
    X(CAP_E_TENANT, -9, "wrong_tenant", 403, "forbidden")                                          \
    X(CAP_E_ROUTE, -10, "wrong_route", 403, "forbidden")                                           \
    X(CAP_E_METHOD, -11, "wrong_method", 403, "forbidden")                                         \
    X(CAP_E_SCOPE, -12, "missing_scope", 403, "forbidden")                                         \
    X(CAP_E_INTERNAL, -13, "internal", 500, "internal")

enum cap_status {
#define CAP_ENUM(name, val, reason, http, code) name = val,
    CAP_STATUS_MAP(CAP_ENUM)
#undef CAP_ENUM
};

/* bit, name */
#define CAP_SCOPE_MAP(X)                                                                           \
    X(CAP_SCOPE_VIEW_READ, 0, "view.read")                                                         \
    X(CAP_SCOPE_INDEX_READ, 1, "index.read")                                                       \
    X(CAP_SCOPE_SEARCH_READ, 2, "search.read")                                                     \
    X(CAP_SCOPE_FEED_READ, 3, "feed.read")                                                         \
    X(CAP_SCOPE_MEDIA_READ, 4, "media.read")                                                       \
    X(CAP_SCOPE_OBJECT_READ, 5, "object.read")                                                     \
    X(CAP_SCOPE_OBJECT_WRITE, 6, "object.write")                                                   \
    X(CAP_SCOPE_MAILBOX_READ, 7, "mailbox.read")                                                   \
    X(CAP_SCOPE_MAILBOX_WRITE, 8, "mailbox.write")

enum cap_scope {
#define CAP_SCOPE_ENUM(name, bit, text) name = 1u << bit,
    CAP_SCOPE_MAP(CAP_SCOPE_ENUM)
#undef CAP_SCOPE_ENUM
};
#define CAP_SCOPE_COUNT 9
#define CAP_SCOPE_ALL   ((1u << CAP_SCOPE_COUNT) - 1)

/* Methods a method caveat may name. */
#define CAP_METHOD_MAP(X)                                                                          \
    X(0, "GET") X(1, "HEAD") X(2, "POST") X(3, "PUT") X(4, "DELETE") X(5, "PATCH") X(6, "OPTIONS")
#define CAP_METHOD_ALL 0x7fu

#define CAP_TENANT_MAX 64
#define CAP_ROUTE_MAX  256
#define CAP_CAVEAT_MAX 512 /* bytes of one caveat id */

/* What the request asks for. tenant may be NULL (no tenant in the request);
 * path is the normalised path without query string. */
struct cap_request {
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    const char *tenant;
    size_t tenant_len;
    int64_t now; /* unix seconds */
};

/* What a valid token grants; owns its bytes (no pointer into the token), so
 * it can be cached and outlive the request. */
struct cap_result {
    char tenant[CAP_TENANT_MAX + 1];
    size_t tenant_len;
    char key_id[CAP_KEY_ID_MAX + 1];
    uint32_t scopes;  /* enum cap_scope bits */
    int64_t expires;  /* unix seconds: valid while now < expires */
    uint32_t methods; /* CAP_METHOD_MAP bits allowed; CAP_METHOD_ALL when unrestricted */
    size_t route_len; /* 0: any path */
    char route[CAP_ROUTE_MAX + 1];
};

/* Table look-ups for a status: reason label, HTTP status, JSON error code.
 * Unknown values read as CAP_E_INTERNAL. */
const char *cap_status_reason(int st);
int cap_status_http(int st);
const char *cap_status_code(int st);

/* Name of one scope bit, or NULL. */
const char *cap_scope_name(uint32_t bit);

/* Parse "a,b,..." (blanks around names allowed) into a scope mask. Returns 0,
 * or -1 for an empty item or an unknown name. */
int cap_scope_parse(const char *s, size_t n, uint32_t *out);

/* True when every scope in mask is granted (mask 0 is always true). */
bool cap_has_scope(const struct cap_result *r, uint32_t mask);

/* Evaluate m's caveats (signature already checked) into out->tenant, scopes,
 * expires, methods and route. Returns CAP_OK, CAP_E_UNSUPPORTED,
 * CAP_E_UNKNOWN_CAVEAT, CAP_E_INCOMPLETE, or CAP_E_TENANT / CAP_E_ROUTE /
 * CAP_E_METHOD when the caveats contradict each other so no request can
 * satisfy them. Pure; no time check. */
int cap_caveats_eval(const struct macaroon *m, struct cap_result *out);

/* Token validity, independent of the request: size, decoding, key, signature,
 * caveats, expiry at now. Fills out on CAP_OK; returns a CAP_E_* otherwise. */
int cap_check_token(const struct cap_keys *keys, const char *token, size_t len, int64_t now,
                    struct cap_result *out);

/* Does a valid token's grant cover req (expiry at req->now, tenant, route,
 * method)? Returns CAP_OK, CAP_E_EXPIRED, CAP_E_TENANT, CAP_E_ROUTE or
 * CAP_E_METHOD. Scope is the caller's: see cap_has_scope. */
int cap_check_request(const struct cap_result *r, const struct cap_request *req);

/* cap_check_token then cap_check_request. out is filled only on CAP_OK. */
int cap_verify(const struct cap_keys *keys, const char *token, size_t len,
               const struct cap_request *req, struct cap_result *out);

/* ------------------------------------------------------------------------ */
/* Minting (operators, tests, --demo)                                        */

struct cap_mint {
    const char *key_id;
    const char *tenant;
    uint32_t scopes;
    int64_t expires;
    const char *route;    /* NULL: none */
    const char *method;   /* NULL: none; "GET" or "GET,HEAD" */
    const char *location; /* NULL: empty */
    int version;          /* 1 or 2 */
};

/* Issue a token under keys[p->key_id] with identifier "<key id>:<32 hex
 * random nonce>" and caveats tenant, scope, expires[, route][, method], as
 * unpadded url-safe base64 into out[0..cap), NUL-terminated. Returns the
 * length, CAP_E_UNKNOWN_KEY, CAP_E_MALFORMED for a bad parameter (checked
 * with the verifier's own rules, so a minted token always verifies), or
 * CAP_E_INTERNAL. */
int cap_mint(const struct cap_keys *keys, const struct cap_mint *p, char *out, size_t cap);

/* ------------------------------------------------------------------------ */
/* Per-worker verification cache                                            */

/* Not thread-safe by design: one per worker loop. Set-associative with
 * CAP_CACHE_WAYS ways and LRU replacement inside a set, so memory is fixed
 * at creation. Entries are keyed by the BLAKE3 hash of the token text and hold only
 * the digest and the cap_result — never the token or its signature. An entry
 * lives at most CAP_CACHE_TTL_S seconds and never past the token's expiry,
 * and only under the keys generation it was verified with; expiry, tenant,
 * route and method are still checked on every hit. Only successes are
 * cached, so bad tokens cannot evict good ones. */
#define CAP_CACHE_WAYS  4
#define CAP_CACHE_TTL_S 5

struct cap_cache_entry {
    uint8_t digest[32];
    uint64_t generation;
    int64_t until;  /* usable while now < until */
    uint64_t stamp; /* last use; 0 = empty */
    struct cap_result res;
};

struct cap_cache {
    size_t nsets;
    uint64_t clock;
    uint64_t hits, misses;
    struct cap_cache_entry *e; /* nsets * CAP_CACHE_WAYS */
};

/* A cache of at least `entries` entries (rounded up to a power of two,
 * minimum CAP_CACHE_WAYS, maximum 65536). NULL when out of memory. */
struct cap_cache *cap_cache_new(size_t entries);

/* Free; NULL is a no-op. */
void cap_cache_free(struct cap_cache *c);

/* Number of entries the cache holds at most. */
size_t cap_cache_capacity(const struct cap_cache *c);

/* cap_verify through the cache: same results and the same out. */
int cap_cache_verify(struct cap_cache *c, const struct cap_keys *keys, const char *token,
                     size_t len, const struct cap_request *req, struct cap_result *out);

#endif
