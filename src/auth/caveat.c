/*
 * caveat — capability verification, minting and the per-worker cache; the
 * caveat language and the status mapping are documented in caveat.h.
 */
#include "auth/caveat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cas/cas.h"

/* ------------------------------------------------------------------------ */
/* tables                                                                   */

static const struct {
    int st;
    const char *reason;
    int http;
    const char *code;
} status_table[] = {
#define CAP_ROW(name, val, reason, http, code) {name, reason, http, code},
    CAP_STATUS_MAP(CAP_ROW)
#undef CAP_ROW
};

static size_t status_row(int st)
{
    size_t n = sizeof(status_table) / sizeof(status_table[0]);
    for (size_t i = 0; i < n; i++)
        if (status_table[i].st == st)
            return i;
    for (size_t i = 0; i < n; i++)
        if (status_table[i].st == CAP_E_INTERNAL)
            return i;
    return 0;
}

const char *cap_status_reason(int st)
{
    return status_table[status_row(st)].reason;
}

int cap_status_http(int st)
{
    return status_table[status_row(st)].http;
}

const char *cap_status_code(int st)
{
    return status_table[status_row(st)].code;
}

static const char *const scope_names[CAP_SCOPE_COUNT] = {
#define CAP_SCOPE_NAME(name, bit, text) [bit] = text,
    CAP_SCOPE_MAP(CAP_SCOPE_NAME)
#undef CAP_SCOPE_NAME
};

static const char *const method_names[] = {
#define CAP_METHOD_NAME(bit, text) [bit] = text,
    CAP_METHOD_MAP(CAP_METHOD_NAME)
#undef CAP_METHOD_NAME
};
#define METHOD_COUNT (sizeof(method_names) / sizeof(method_names[0]))

const char *cap_scope_name(uint32_t bit)
{
    for (unsigned i = 0; i < CAP_SCOPE_COUNT; i++)
        if (bit == 1u << i)
            return scope_names[i];
    return NULL;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool slice_eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Parse a comma list of names from table[0..count) into a bitmask. */
static int parse_set(const char *s, size_t n, const char *const *table, size_t count, uint32_t *out)
{
    uint32_t mask = 0;
    size_t pos = 0;
    for (;;) {
        const char *item = s + pos;
        const char *comma = memchr(item, ',', n - pos);
        size_t len = comma ? (size_t)(comma - item) : n - pos;
        pos += len + (comma ? 1 : 0);
        while (len > 0 && is_blank(*item)) {
            item++;
            len--;
        }
        while (len > 0 && is_blank(item[len - 1]))
            len--;
        size_t i;
        for (i = 0; i < count; i++)
            if (slice_eq(item, len, table[i]))
                break;
        if (i == count)
            return -1;
        mask |= 1u << i;
        if (comma == NULL)
            break;
    }
    *out = mask;
    return 0;
}

int cap_scope_parse(const char *s, size_t n, uint32_t *out)
{
    return parse_set(s, n, scope_names, CAP_SCOPE_COUNT, out);
}

bool cap_has_scope(const struct cap_result *r, uint32_t mask)
{
    return (r->scopes & mask) == mask;
}

/* ------------------------------------------------------------------------ */
/* caveats                                                                  */

static bool tenant_valid(const char *s, size_t n)
{
    return cap_keys_id_valid(s, n) && n <= CAP_TENANT_MAX;
}

static bool route_valid(const char *s, size_t n)
{
    if (n == 0 || n > CAP_ROUTE_MAX || s[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Decimal unix seconds, 1..18 digits (no sign, no blanks). */
static int parse_time(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

struct caveat_acc {
    bool have_tenant, have_scope, have_expires;
};

/* Apply one first-party caveat to out. */
static int apply_caveat(const uint8_t *cid, size_t n, struct cap_result *out,
                        struct caveat_acc *acc)
{
    const char *s = (const char *)cid;
    if (n > CAP_CAVEAT_MAX)
        return CAP_E_UNKNOWN_CAVEAT;
    for (size_t i = 0; i < n; i++)
        if ((cid[i] < 0x20 && cid[i] != '\t') || cid[i] >= 0x7f)
            return CAP_E_UNKNOWN_CAVEAT;
    const char *eq = memchr(s, '=', n);
    if (eq == NULL)
        return CAP_E_UNKNOWN_CAVEAT;
    const char *k = s, *k_end = eq, *v = eq + 1, *v_end = s + n;
    while (k < k_end && is_blank(*k))
        k++;
    while (k_end > k && is_blank(k_end[-1]))
        k_end--;
    while (v < v_end && is_blank(*v))
        v++;
    while (v_end > v && is_blank(v_end[-1]))
        v_end--;
    size_t kn = (size_t)(k_end - k), vn = (size_t)(v_end - v);

    if (slice_eq(k, kn, "tenant")) {
        if (!tenant_valid(v, vn))
            return CAP_E_UNKNOWN_CAVEAT;
        if (acc->have_tenant && !slice_eq(v, vn, out->tenant))
            return CAP_E_TENANT;
        memcpy(out->tenant, v, vn);
        out->tenant[vn] = '\0';
        out->tenant_len = vn;
        acc->have_tenant = true;
    } else if (slice_eq(k, kn, "scope")) {
        uint32_t set;
        if (cap_scope_parse(v, vn, &set) < 0)
            return CAP_E_UNKNOWN_CAVEAT;
        out->scopes = acc->have_scope ? out->scopes & set : set;
        acc->have_scope = true;
    } else if (slice_eq(k, kn, "expires")) {
        int64_t t;
        if (parse_time(v, vn, &t) < 0)
            return CAP_E_UNKNOWN_CAVEAT;
        if (!acc->have_expires || t < out->expires)
            out->expires = t;
        acc->have_expires = true;
    } else if (slice_eq(k, kn, "route")) {
        if (!route_valid(v, vn))
            return CAP_E_UNKNOWN_CAVEAT;
        /* Paths matching every prefix: the longest, if each is a prefix of it. */
        if (out->route_len == 0 || vn > out->route_len) {
            if (out->route_len != 0 && memcmp(v, out->route, out->route_len) != 0)
                return CAP_E_ROUTE;
            memcpy(out->route, v, vn);
            out->route[vn] = '\0';
            out->route_len = vn;
        } else if (memcmp(out->route, v, vn) != 0) {
            return CAP_E_ROUTE;
        }
    } else if (slice_eq(k, kn, "method")) {
        uint32_t set;
        if (parse_set(v, vn, method_names, METHOD_COUNT, &set) < 0)
            return CAP_E_UNKNOWN_CAVEAT;
        out->methods &= set;
        if (out->methods == 0)
            return CAP_E_METHOD;
    } else {
        return CAP_E_UNKNOWN_CAVEAT;
    }
    return CAP_OK;
}

int cap_caveats_eval(const struct macaroon *m, struct cap_result *out)
{
    struct caveat_acc acc = {false, false, false};

    out->tenant[0] = '\0';
    out->tenant_len = 0;
    out->scopes = 0;
    out->expires = 0;
    out->methods = CAP_METHOD_ALL;
    out->route[0] = '\0';
    out->route_len = 0;
    /* Third-party first: a token we cannot fully check is refused as such. */
    for (size_t i = 0; i < m->ncaveats; i++)
        if (m->caveats[i].vid.p != NULL)
            return CAP_E_UNSUPPORTED;
    for (size_t i = 0; i < m->ncaveats; i++) {
        int rc = apply_caveat(m->caveats[i].cid.p, m->caveats[i].cid.n, out, &acc);
        if (rc != CAP_OK)
            return rc;
    }
    if (!acc.have_tenant || !acc.have_scope || !acc.have_expires)
        return CAP_E_INCOMPLETE;
    return CAP_OK;
}

/* ------------------------------------------------------------------------ */
/* verification                                                             */

int cap_check_token(const struct cap_keys *keys, const char *token, size_t len, int64_t now,
                    struct cap_result *out)
{
    uint8_t buf[MACAROON_MAX_RAW_BYTES];
    struct macaroon m;
    struct cap_result r;

    if (token == NULL || len == 0)
        return CAP_E_MISSING;
    /* Size before decoding, decoding before any HMAC. */
    if (len > MACAROON_MAX_TOKEN_CHARS || macaroon_decode(&m, buf, token, len) < 0)
        return CAP_E_MALFORMED;

    const uint8_t *colon = memchr(m.identifier.p, ':', m.identifier.n);
    size_t id_len = colon ? (size_t)(colon - m.identifier.p) : m.identifier.n;
    const struct cap_key *key = cap_keys_find(keys, (const char *)m.identifier.p, id_len);
    if (key == NULL)
        return CAP_E_UNKNOWN_KEY;
    /* Third-party caveats have no first-party chain to check: refuse them
     * before the signature so their bytes are never interpreted. */
    for (size_t i = 0; i < m.ncaveats; i++)
        if (m.caveats[i].vid.p != NULL)
            return CAP_E_UNSUPPORTED;
    if (!macaroon_verify_sig(&m, key->derived))
        return CAP_E_BAD_SIG;

    int rc = cap_caveats_eval(&m, &r);
    if (rc != CAP_OK)
        return rc;
    if (now >= r.expires)
        return CAP_E_EXPIRED;
    memcpy(r.key_id, key->id, key->id_len + 1);
    *out = r;
    return CAP_OK;
}

/* A path with "." or ".." segments could step out of a route prefix after
 * normalisation elsewhere; refuse it under a route caveat. */
static bool has_dot_segment(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '/')
            continue;
        size_t j = i + 1;
        size_t dots = 0;
        while (j < n && p[j] == '.') {
            j++;
            dots++;
        }
        if ((dots == 1 || dots == 2) && (j == n || p[j] == '/'))
            return true;
    }
    return false;
}

int cap_check_request(const struct cap_result *r, const struct cap_request *req)
{
    if (req->now >= r->expires)
        return CAP_E_EXPIRED;
    if (req->tenant != NULL &&
        (req->tenant_len != r->tenant_len || memcmp(req->tenant, r->tenant, r->tenant_len) != 0))
        return CAP_E_TENANT;
    if (r->route_len != 0) {
        if (req->path == NULL || req->path_len < r->route_len ||
            memcmp(req->path, r->route, r->route_len) != 0 ||
            has_dot_segment(req->path, req->path_len))
            return CAP_E_ROUTE;
    }
    if (r->methods != CAP_METHOD_ALL) {
        uint32_t bit = 0;
        for (size_t i = 0; req->method != NULL && i < METHOD_COUNT; i++)
            if (slice_eq(req->method, req->method_len, method_names[i]))
                bit = 1u << i;
        if ((r->methods & bit) == 0)
            return CAP_E_METHOD;
    }
    return CAP_OK;
}

int cap_verify(const struct cap_keys *keys, const char *token, size_t len,
               const struct cap_request *req, struct cap_result *out)
{
    struct cap_result r;
    int rc = cap_check_token(keys, token, len, req->now, &r);
    if (rc == CAP_OK)
        rc = cap_check_request(&r, req);
    if (rc == CAP_OK)
        *out = r;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* minting                                                                  */

int cap_mint(const struct cap_keys *keys, const struct cap_mint *p, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    char ident[CAP_KEY_ID_MAX + 1 + 32 + 1];
    char cav[5][CAP_CAVEAT_MAX + 1];
    uint8_t nonce[16];
    uint8_t sig[MACAROON_SIG_BYTES];
    struct macaroon m;
    struct cap_result check;
    int rc;

    if (p->key_id == NULL || p->tenant == NULL)
        return CAP_E_MALFORMED;
    const struct cap_key *key = cap_keys_find(keys, p->key_id, strlen(p->key_id));
    if (key == NULL)
        return CAP_E_UNKNOWN_KEY;
    if ((p->scopes & ~CAP_SCOPE_ALL) != 0 || p->scopes == 0 || p->expires <= 0 ||
        (p->version != 1 && p->version != 2))
        return CAP_E_MALFORMED;
    if (RAND_bytes(nonce, sizeof(nonce)) != 1)
        return CAP_E_INTERNAL;

    size_t il = (size_t)snprintf(ident, sizeof(ident), "%s:", key->id);
    for (size_t i = 0; i < sizeof(nonce); i++) {
        ident[il++] = hex[nonce[i] >> 4];
        ident[il++] = hex[nonce[i] & 15];
    }
    ident[il] = '\0';

    memset(&m, 0, sizeof(m));
    m.version = p->version;
    m.location.p = (const uint8_t *)(p->location ? p->location : "");
    m.location.n = p->location ? strlen(p->location) : 0;
    m.identifier = (struct macaroon_slice){(const uint8_t *)ident, il};

    size_t nc = 0, len;
    len = (size_t)snprintf(cav[nc++], sizeof(cav[0]), "tenant = %s", p->tenant);
    if (len >= sizeof(cav[0]))
        return CAP_E_MALFORMED;
    len = (size_t)snprintf(cav[nc++], sizeof(cav[0]), "scope = ");
    for (unsigned i = 0; i < CAP_SCOPE_COUNT; i++)
        if (p->scopes & 1u << i)
            len += (size_t)snprintf(cav[1] + len, sizeof(cav[0]) - len, "%s%s", len > 8 ? "," : "",
                                    scope_names[i]);
    len = (size_t)snprintf(cav[nc++], sizeof(cav[0]), "expires = %lld", (long long)p->expires);
    if (p->route != NULL) {
        len = (size_t)snprintf(cav[nc++], sizeof(cav[0]), "route = %s", p->route);
        if (len >= sizeof(cav[0]))
            return CAP_E_MALFORMED;
    }
    if (p->method != NULL) {
        len = (size_t)snprintf(cav[nc++], sizeof(cav[0]), "method = %s", p->method);
        if (len >= sizeof(cav[0]))
            return CAP_E_MALFORMED;
    }
    for (size_t i = 0; i < nc; i++)
        m.caveats[i].cid = (struct macaroon_slice){(const uint8_t *)cav[i], strlen(cav[i])};
    m.ncaveats = nc;

    /* The verifier's own rules: whatever we issue must verify. */
    rc = cap_caveats_eval(&m, &check);
    if (rc != CAP_OK)
        return CAP_E_MALFORMED;
    if (macaroon_sign(&m, key->derived, sig) < 0)
        return CAP_E_INTERNAL;
    m.sig = sig;
    rc = macaroon_encode(&m, out, cap);
    OPENSSL_cleanse(sig, sizeof(sig));
    return rc < 0 ? CAP_E_MALFORMED : rc;
}

/* ------------------------------------------------------------------------ */
/* cache                                                                    */

#define CACHE_MAX_ENTRIES 65536

struct cap_cache *cap_cache_new(size_t entries)
{
    size_t n = CAP_CACHE_WAYS;
    while (n < entries && n < CACHE_MAX_ENTRIES)
        n <<= 1;
    struct cap_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->e = calloc(n, sizeof(*c->e));
    if (c->e == NULL) {
        free(c);
        return NULL;
    }
    c->nsets = n / CAP_CACHE_WAYS;
    return c;
}

void cap_cache_free(struct cap_cache *c)
{
    if (c == NULL)
        return;
    /* Results are not secret, but tenants and grants need not linger. */
    OPENSSL_cleanse(c->e, c->nsets * CAP_CACHE_WAYS * sizeof(*c->e));
    free(c->e);
    free(c);
}

size_t cap_cache_capacity(const struct cap_cache *c)
{
    return c->nsets * CAP_CACHE_WAYS;
}

int cap_cache_verify(struct cap_cache *c, const struct cap_keys *keys, const char *token,
                     size_t len, const struct cap_request *req, struct cap_result *out)
{
    if (token == NULL || len == 0)
        return CAP_E_MISSING;
    /* The cap before hashing, as before decoding. */
    if (len > MACAROON_MAX_TOKEN_CHARS)
        return CAP_E_MALFORMED;
    /* BLAKE3 of the token: collision-resistant like SHA-256 and about a
     * tenth of its instructions for a token (this runs on every request). */
    struct cas_addr a;
    cas_hash(token, len, &a);
    const uint8_t *digest = a.b;

    uint64_t h;
    memcpy(&h, digest, sizeof(h));
    struct cap_cache_entry *set = &c->e[(h & (c->nsets - 1)) * CAP_CACHE_WAYS];
    struct cap_cache_entry *victim = &set[0];
    c->clock++;
    for (int i = 0; i < CAP_CACHE_WAYS; i++) {
        struct cap_cache_entry *e = &set[i];
        if (e->stamp != 0 && CRYPTO_memcmp(e->digest, digest, sizeof(a.b)) == 0) {
            if (e->generation != keys->generation || req->now >= e->until) {
                victim = e; /* stale: verify again into the same slot */
                break;
            }
            e->stamp = c->clock;
            c->hits++;
            int rc = cap_check_request(&e->res, req);
            if (rc == CAP_OK)
                *out = e->res;
            return rc;
        }
        if (e->stamp < victim->stamp)
            victim = e;
    }
    c->misses++;

    struct cap_result r;
    int rc = cap_check_token(keys, token, len, req->now, &r);
    if (rc != CAP_OK) {
        if (victim->stamp != 0 && CRYPTO_memcmp(victim->digest, digest, sizeof(a.b)) == 0)
            memset(victim, 0, sizeof(*victim)); /* no longer valid: drop it */
        return rc;
    }
    memcpy(victim->digest, digest, sizeof(a.b));
    victim->generation = keys->generation;
    victim->until = r.expires < req->now + CAP_CACHE_TTL_S ? r.expires : req->now + CAP_CACHE_TTL_S;
    victim->stamp = c->clock;
    victim->res = r;
    rc = cap_check_request(&r, req);
    if (rc == CAP_OK)
        *out = r;
    return rc;
}
