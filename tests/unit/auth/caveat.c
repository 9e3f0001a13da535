/*
 * Tests for src/auth/caveat.c: every caveat, expiry edges, key rotation,
 * signature tampering, status mapping, minting, and the per-worker cache.
 */
#include "auth_test.h"

#include "cas/cas.h"

#define NOW 1700000000LL

static char tok[MACAROON_MAX_TOKEN_CHARS + 1];
static struct cap_keys *keys;

static void setup(void)
{
    keys = test_keys();
}

static void teardown(void)
{
    cap_keys_free(keys);
    keys = NULL;
}

/* Sign ident + caveats with k1 and verify against req. */
static int run(const struct cap_request *req, struct cap_result *out, size_t n,
               const char *const *cav)
{
    cr_assert_gt(mk_token("k1:nonce", 2, cav, n, tok, sizeof(tok)), 0);
    return cap_verify(keys, tok, strlen(tok), req, out);
}

#define VERIFY(req, out, ...)                                                                      \
    run(req, out, sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *),                    \
        (const char *[]){__VA_ARGS__})

#define BASE "tenant = acme", "scope = view.read", "expires = 1700000100"

TestSuite(caveat, .init = setup, .fini = teardown);

Test(caveat, basic_grant)
{
    struct cap_request req = test_req("GET", "/v1/view/home", NOW);
    struct cap_result r;
    cr_assert_eq(VERIFY(&req, &r, BASE), CAP_OK);
    cr_assert_str_eq(r.tenant, "acme");
    cr_assert_eq(r.tenant_len, 4);
    cr_assert_str_eq(r.key_id, "k1");
    cr_assert_eq(r.scopes, CAP_SCOPE_VIEW_READ);
    cr_assert_eq(r.expires, 1700000100);
    cr_assert(cap_has_scope(&r, CAP_SCOPE_VIEW_READ));
    cr_assert_not(cap_has_scope(&r, CAP_SCOPE_MEDIA_READ));
    cr_assert_not(cap_has_scope(&r, CAP_SCOPE_VIEW_READ | CAP_SCOPE_MEDIA_READ));
    cr_assert(cap_has_scope(&r, 0));
}

Test(caveat, whitespace_around_equals)
{
    struct cap_request req = test_req("GET", "/", NOW);
    struct cap_result r;
    cr_assert_eq(VERIFY(&req, &r, "tenant=acme", "scope =view.read", "expires= 1700000100"),
                 CAP_OK);
    cr_assert_str_eq(r.tenant, "acme");
    cr_assert_eq(VERIFY(&req, &r, "  tenant \t=\t acme  ", "scope=view.read", "expires=1700000100"),
                 CAP_OK);
    cr_assert_str_eq(r.tenant, "acme");
}

Test(caveat, required_caveats)
{
    struct cap_request req = test_req("GET", "/", NOW);
    struct cap_result r;
    cr_assert_eq(VERIFY(&req, &r, "scope = view.read", "expires = 1700000100"), CAP_E_INCOMPLETE);
    cr_assert_eq(VERIFY(&req, &r, "tenant = acme", "expires = 1700000100"), CAP_E_INCOMPLETE);
    cr_assert_eq(VERIFY(&req, &r, "tenant = acme", "scope = view.read"), CAP_E_INCOMPLETE);
}

Test(caveat, tenant)
{
    struct cap_request req = test_req("GET", "/", NOW);
    struct cap_result r;
    req.tenant = "acme";
    req.tenant_len = 4;
    cr_assert_eq(VERIFY(&req, &r, BASE), CAP_OK);
    req.tenant = "acm";
    req.tenant_len = 3;
    cr_assert_eq(VERIFY(&req, &r, BASE), CAP_E_TENANT);
    req.tenant = "other";
    req.tenant_len = 5;
    cr_assert_eq(VERIFY(&req, &r, BASE), CAP_E_TENANT);
    req.tenant = NULL;
    cr_assert_eq(VERIFY(&req, &r, BASE, "tenant = acme"), CAP_OK);
    cr_assert_eq(VERIFY(&req, &r, BASE, "tenant = other"), CAP_E_TENANT);
    cr_assert_eq(VERIFY(&req, &r, BASE, "tenant = a b"), CAP_E_UNKNOWN_CAVEAT);
    cr_assert_eq(VERIFY(&req, &r, BASE, "tenant ="), CAP_E_UNKNOWN_CAVEAT);
}

Test(caveat, scope_lists_intersect)
{
    struct cap_request req = test_req("GET", "/", NOW);
    struct cap_result r;
    cr_assert_eq(VERIFY(&req, &r, "tenant = acme", "expires = 1700000100",
                        "scope = view.read, media.read,object.write"),
                 CAP_OK);
    cr_assert_eq(r.scopes, CAP_SCOPE_VIEW_READ | CAP_SCOPE_MEDIA_READ | CAP_SCOPE_OBJECT_WRITE);
    cr_assert_eq(VERIFY(&req, &r, "tenant = acme", "expires = 1700000100",
                        "scope = view.read,media.read", "scope = media.read,mailbox.read"),
                 CAP_OK);
    cr_assert_eq(r.scopes, CAP_SCOPE_MEDIA_READ);
    /* Disjoint scope caveats: a valid token that grants nothing. */
    cr_assert_eq(VERIFY(&req, &r, "tenant = acme", "expires = 1700000100", "scope = view.read",
                        "scope = media.read"),
                 CAP_OK);
    cr_assert_eq(r.scopes, 0);
    cr_assert_not(cap_has_scope(&r, CAP_SCOPE_VIEW_READ));
    /* Every known scope name round-trips. */
    for (unsigned i = 0; i < CAP_SCOPE_COUNT; i++) {
        uint32_t m;
        const char *name = cap_scope_name(1u << i);
        cr_assert_not_null(name);
        cr_assert_eq(cap_scope_parse(name, strlen(name), &m), 0);
        cr_assert_eq(m, 1u << i);
    }
    cr_assert_null(cap_scope_name(3));
}

Test(caveat, scope_rejects)
{
    struct cap_request req = test_req("GET", "/", NOW);
    struct cap_result r;
    static const char *bad[] = {"scope = view.write", "scope = view.read,",
                                "scope = ,view.read", "scope = view.read,,media.read",
                                "scope = VIEW.READ",  "scope ="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(VERIFY(&req, &r, BASE, bad[i]), CAP_E_UNKNOWN_CAVEAT, "%s", bad[i]);
}

Test(caveat, expiry_edges)
{
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", 1700000099);
    cr_assert_eq(VERIFY(&req, &r, BASE), CAP_OK); /* now = expires - 1 */
    req.now = 1700000100;
    cr_assert_eq(VERIFY(&req, &r, BASE), CAP_E_EXPIRED); /* now = expires */
    req.now = 1700000101;
    cr_assert_eq(VERIFY(&req, &r, BASE), CAP_E_EXPIRED); /* now = expires + 1 */
    /* The request-free check (verify tool, cache fill) has the same edge. */
    cr_assert_eq(cap_check_token(keys, tok, strlen(tok), 1700000099, &r), CAP_OK);
    cr_assert_eq(cap_check_token(keys, tok, strlen(tok), 1700000100, &r), CAP_E_EXPIRED);
    cr_assert_eq(cap_check_request(&r, &req), CAP_E_EXPIRED);
    /* Several expires caveats: the earliest wins. */
    req.now = 1700000050;
    cr_assert_eq(VERIFY(&req, &r, BASE, "expires = 1700000060"), CAP_OK);
    cr_assert_eq(r.expires, 1700000060);
    cr_assert_eq(VERIFY(&req, &r, BASE, "expires = 1700000050"), CAP_E_EXPIRED);
    cr_assert_eq(VERIFY(&req, &r, BASE, "expires = 1800000000"), CAP_OK);
    cr_assert_eq(r.expires, 1700000100);
    static const char *bad[] = {"expires = -5", "expires = 12x", "expires = 1 2",
                                "expires = 1234567890123456789", "expires = 2030-01-01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(VERIFY(&req, &r, BASE, bad[i]), CAP_E_UNKNOWN_CAVEAT, "%s", bad[i]);
}

Test(caveat, route)
{
    struct cap_result r;
    struct cap_request req = test_req("GET", "/v1/view/home", NOW);
    cr_assert_eq(VERIFY(&req, &r, BASE, "route = /v1/view/"), CAP_OK);
    cr_assert_str_eq(r.route, "/v1/view/");
    cr_assert_eq(VERIFY(&req, &r, BASE, "route = /v1/view/home"), CAP_OK);
    cr_assert_eq(VERIFY(&req, &r, BASE, "route = /v1/media/"), CAP_E_ROUTE);
    cr_assert_eq(VERIFY(&req, &r, BASE, "route = /v1/view/home/x"), CAP_E_ROUTE);
    /* Nested prefixes narrow to the longest; disjoint ones match nothing. */
    cr_assert_eq(VERIFY(&req, &r, BASE, "route = /v1/", "route = /v1/view/"), CAP_OK);
    cr_assert_str_eq(r.route, "/v1/view/");
    cr_assert_eq(VERIFY(&req, &r, BASE, "route = /v1/view/", "route = /v1/"), CAP_OK);
    cr_assert_str_eq(r.route, "/v1/view/");
    cr_assert_eq(VERIFY(&req, &r, BASE, "route = /v1/view/", "route = /v1/o/"), CAP_E_ROUTE);
    /* Dot segments cannot climb out of the prefix. */
    static const char *dots[] = {"/v1/view/../o/x", "/v1/view/./x", "/v1/view/..", "/v1/view/x/."};
    for (size_t i = 0; i < sizeof(dots) / sizeof(dots[0]); i++) {
        req = test_req("GET", dots[i], NOW);
        cr_assert_eq(VERIFY(&req, &r, BASE, "route = /v1/view/"), CAP_E_ROUTE, "%s", dots[i]);
    }
    req = test_req("GET", "/v1/view/..x", NOW);
    cr_assert_eq(VERIFY(&req, &r, BASE, "route = /v1/view/"), CAP_OK);
    /* No route caveat: any path. */
    req = test_req("GET", "/anything", NOW);
    cr_assert_eq(VERIFY(&req, &r, BASE), CAP_OK);
    cr_assert_eq(r.route_len, 0);
    cr_assert_eq(VERIFY(&req, &r, BASE, "route = v1"), CAP_E_UNKNOWN_CAVEAT);
    cr_assert_eq(VERIFY(&req, &r, BASE, "route = /a b"), CAP_E_UNKNOWN_CAVEAT);
}

Test(caveat, method)
{
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", NOW);
    cr_assert_eq(VERIFY(&req, &r, BASE, "method = GET"), CAP_OK);
    cr_assert_eq(VERIFY(&req, &r, BASE, "method = GET, HEAD"), CAP_OK);
    cr_assert_eq(VERIFY(&req, &r, BASE, "method = POST"), CAP_E_METHOD);
    cr_assert_eq(VERIFY(&req, &r, BASE, "method = GET,HEAD", "method = HEAD"), CAP_E_METHOD);
    cr_assert_eq(VERIFY(&req, &r, BASE, "method = GET", "method = POST"), CAP_E_METHOD);
    cr_assert_eq(VERIFY(&req, &r, BASE, "method = get"), CAP_E_UNKNOWN_CAVEAT);
    cr_assert_eq(VERIFY(&req, &r, BASE, "method = PROPFIND"), CAP_E_UNKNOWN_CAVEAT);
    req = test_req("HEAD", "/", NOW);
    cr_assert_eq(VERIFY(&req, &r, BASE, "method = GET,HEAD", "method = HEAD"), CAP_OK);
    req = test_req("PROPFIND", "/", NOW);
    cr_assert_eq(VERIFY(&req, &r, BASE, "method = GET"), CAP_E_METHOD);
    cr_assert_eq(VERIFY(&req, &r, BASE), CAP_OK);
}

Test(caveat, unknown_caveats_fail_closed)
{
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", NOW);
    static const char *bad[] = {
        "time < 2030-01-01T00:00", "foo = bar",     "Tenant = acme", "tenant acme", "= acme",
        "tenant = acme\xc3\xa9",   "tenant = a\nb", "account = 1234"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(VERIFY(&req, &r, BASE, bad[i]), CAP_E_UNKNOWN_CAVEAT, "%s", bad[i]);
    char longcav[CAP_CAVEAT_MAX + 16];
    memset(longcav, ' ', sizeof(longcav));
    memcpy(longcav, "tenant = acme", 13);
    longcav[CAP_CAVEAT_MAX + 1] = '\0';
    cr_assert_eq(VERIFY(&req, &r, BASE, longcav), CAP_E_UNKNOWN_CAVEAT);
}

Test(caveat, keys_and_signatures)
{
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", NOW);
    static const char *cav[] = {BASE};

    /* Identifier without nonce; unknown key id; empty key id. */
    cr_assert_gt(mk_token("k1", 2, cav, 3, tok, sizeof(tok)), 0);
    cr_assert_eq(cap_verify(keys, tok, strlen(tok), &req, &r), CAP_OK);
    cr_assert_gt(mk_token("k9:x", 2, cav, 3, tok, sizeof(tok)), 0);
    cr_assert_eq(cap_verify(keys, tok, strlen(tok), &req, &r), CAP_E_UNKNOWN_KEY);
    cr_assert_gt(mk_token(":x", 2, cav, 3, tok, sizeof(tok)), 0);
    cr_assert_eq(cap_verify(keys, tok, strlen(tok), &req, &r), CAP_E_UNKNOWN_KEY);
    /* Signed by k2's secret but naming k1. */
    cr_assert_gt(mk_token_secret(SECRET2, 32, "k1:x", 2, cav, 3, tok, sizeof(tok)), 0);
    cr_assert_eq(cap_verify(keys, tok, strlen(tok), &req, &r), CAP_E_BAD_SIG);
    cr_assert_gt(mk_token_secret(SECRET2, 32, "k2:x", 1, cav, 3, tok, sizeof(tok)), 0);
    cr_assert_eq(cap_verify(keys, tok, strlen(tok), &req, &r), CAP_OK);
    cr_assert_str_eq(r.key_id, "k2");
}

/* Decode tok, let edit() change the macaroon, re-encode keeping the old
 * signature unless resign. */
static int tamper(void (*edit)(struct macaroon *), bool resign)
{
    static const char *cav[] = {BASE, "route = /v1/view/"};
    uint8_t buf[MACAROON_MAX_RAW_BYTES], key[32], sig[32];
    struct macaroon m;
    struct cap_result r;
    struct cap_request req = test_req("GET", "/v1/view/x", NOW);
    cr_assert_gt(mk_token("k1:n", 2, cav, 4, tok, sizeof(tok)), 0);
    cr_assert_eq(macaroon_decode(&m, buf, tok, strlen(tok)), 0);
    memcpy(sig, m.sig, 32);
    edit(&m);
    if (resign) {
        cr_assert(macaroon_derive_key(SECRET1, 32, key) == 0);
        cr_assert_eq(macaroon_sign(&m, key, sig), 0);
    }
    m.sig = sig;
    char out[MACAROON_MAX_TOKEN_CHARS + 1];
    cr_assert_gt(macaroon_encode(&m, out, sizeof(out)), 0);
    return cap_verify(keys, out, strlen(out), &req, &r);
}

static void drop_route(struct macaroon *m)
{
    m->ncaveats--;
}
static void swap_tenant(struct macaroon *m)
{
    m->caveats[0].cid = (struct macaroon_slice){(const uint8_t *)"tenant = evil", 13};
}
static void add_scope(struct macaroon *m)
{
    m->caveats[m->ncaveats++].cid =
        (struct macaroon_slice){(const uint8_t *)"scope = view.read", 17};
}
static void other_ident(struct macaroon *m)
{
    m->identifier = (struct macaroon_slice){(const uint8_t *)"k1:m", 4};
}

Test(caveat, tampering_breaks_the_signature)
{
    cr_assert_eq(tamper(drop_route, false), CAP_E_BAD_SIG);
    cr_assert_eq(tamper(swap_tenant, false), CAP_E_BAD_SIG);
    cr_assert_eq(tamper(add_scope, false), CAP_E_BAD_SIG);
    cr_assert_eq(tamper(other_ident, false), CAP_E_BAD_SIG);
    /* Control: the same edits signed with the real key pass. */
    cr_assert_eq(tamper(drop_route, true), CAP_OK);
    cr_assert_eq(tamper(other_ident, true), CAP_OK);
}

Test(caveat, holder_attenuation_narrows)
{
    /* A holder can append a caveat without the root key: sig' = HMAC(sig, cid). */
    static const char *cav[] = {"tenant = acme", "scope = view.read,media.read",
                                "expires = 1700000100"};
    static const char extra[] = "scope = media.read";
    uint8_t buf[MACAROON_MAX_RAW_BYTES], sig[32];
    unsigned int sl = 0;
    struct macaroon m;
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", NOW);
    cr_assert_gt(mk_token("k1:n", 1, cav, 3, tok, sizeof(tok)), 0);
    cr_assert_eq(macaroon_decode(&m, buf, tok, strlen(tok)), 0);
    cr_assert_not_null(
        HMAC(EVP_sha256(), m.sig, 32, (const uint8_t *)extra, strlen(extra), sig, &sl));
    m.caveats[m.ncaveats++].cid = (struct macaroon_slice){(const uint8_t *)extra, strlen(extra)};
    m.sig = sig;
    char out[MACAROON_MAX_TOKEN_CHARS + 1];
    cr_assert_gt(macaroon_encode(&m, out, sizeof(out)), 0);
    cr_assert_eq(cap_verify(keys, out, strlen(out), &req, &r), CAP_OK);
    cr_assert_eq(r.scopes, CAP_SCOPE_MEDIA_READ);
}

Test(caveat, third_party_unsupported)
{
    uint8_t key[32], sig[32];
    struct macaroon m;
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", NOW);
    static const char *cav[] = {BASE};
    cr_assert_gt(mk_token("k1:n", 1, cav, 3, tok, sizeof(tok)), 0);
    uint8_t buf[MACAROON_MAX_RAW_BYTES];
    cr_assert_eq(macaroon_decode(&m, buf, tok, strlen(tok)), 0);
    /* Re-serialize by hand in v1 with a vid/cl pair on the last caveat. */
    char raw[1024];
    size_t n = 0;
#define P(k, v, vn)                                                                                \
    n += (size_t)sprintf(raw + n, "%04zx%s ", 4 + strlen(k) + 1 + (vn) + 1, k),                    \
        memcpy(raw + n, v, vn), n += (vn), raw[n++] = '\n'
    P("location", "", 0);
    P("identifier", m.identifier.p, m.identifier.n);
    for (size_t i = 0; i < m.ncaveats; i++)
        P("cid", m.caveats[i].cid.p, m.caveats[i].cid.n);
    P("vid", "vvvv", 4);
    P("cl", "https://elsewhere", 17);
    cr_assert(macaroon_derive_key(SECRET1, 32, key) == 0);
    memset(sig, 7, 32);
    P("signature", sig, 32);
#undef P
    char text[2048];
    cr_assert_gt(EVP_EncodeBlock((unsigned char *)text, (const unsigned char *)raw, (int)n), 0);
    cr_assert_eq(cap_verify(keys, text, strlen(text), &req, &r), CAP_E_UNSUPPORTED);
}

Test(caveat, status_table_maps_401_and_403)
{
    int unauth[] = {CAP_E_MISSING,     CAP_E_MALFORMED,      CAP_E_UNKNOWN_KEY, CAP_E_BAD_SIG,
                    CAP_E_UNSUPPORTED, CAP_E_UNKNOWN_CAVEAT, CAP_E_INCOMPLETE,  CAP_E_EXPIRED};
    int forbidden[] = {CAP_E_TENANT, CAP_E_ROUTE, CAP_E_METHOD, CAP_E_SCOPE};
    for (size_t i = 0; i < sizeof(unauth) / sizeof(unauth[0]); i++) {
        cr_assert_eq(cap_status_http(unauth[i]), 401);
        cr_assert_str_eq(cap_status_code(unauth[i]), "unauth");
    }
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
        cr_assert_eq(cap_status_http(forbidden[i]), 403);
        cr_assert_str_eq(cap_status_code(forbidden[i]), "forbidden");
    }
    cr_assert_str_eq(cap_status_reason(CAP_E_EXPIRED), "expired");
    cr_assert_eq(cap_status_http(-999), 500);
    cr_assert_eq(cap_status_http(CAP_OK), 200);
}

Test(caveat, missing_and_oversized_tokens)
{
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", NOW);
    cr_assert_eq(cap_verify(keys, NULL, 0, &req, &r), CAP_E_MISSING);
    cr_assert_eq(cap_verify(keys, "", 0, &req, &r), CAP_E_MISSING);
    static char big[MACAROON_MAX_TOKEN_CHARS + 2];
    memset(big, 'A', sizeof(big) - 1);
    cr_assert_eq(cap_verify(keys, big, MACAROON_MAX_TOKEN_CHARS + 1, &req, &r), CAP_E_MALFORMED);
    cr_assert_eq(cap_verify(keys, "not a token", 11, &req, &r), CAP_E_MALFORMED);
}

Test(caveat, mint_roundtrip)
{
    struct cap_result r;
    struct cap_request req = test_req("HEAD", "/v1/media/cat", NOW);
    for (int v = 1; v <= 2; v++) {
        struct cap_mint p = {.key_id = "k2",
                             .tenant = "acme",
                             .scopes = CAP_SCOPE_MEDIA_READ | CAP_SCOPE_VIEW_READ,
                             .expires = NOW + 60,
                             .route = "/v1/media/",
                             .method = "GET,HEAD",
                             .location = "https://omnigate.test",
                             .version = v};
        int n = cap_mint(keys, &p, tok, sizeof(tok));
        cr_assert_gt(n, 0);
        cr_assert_eq((size_t)n, strlen(tok));
        cr_assert_eq(cap_verify(keys, tok, strlen(tok), &req, &r), CAP_OK);
        cr_assert_str_eq(r.key_id, "k2");
        cr_assert_eq(r.scopes, CAP_SCOPE_MEDIA_READ | CAP_SCOPE_VIEW_READ);
        cr_assert_eq(r.expires, NOW + 60);
        char first[MACAROON_MAX_TOKEN_CHARS + 1];
        strcpy(first, tok);
        cr_assert_gt(cap_mint(keys, &p, tok, sizeof(tok)), 0);
        cr_assert_str_neq(first, tok, "nonce must make tokens unique");
    }
    struct cap_mint p = {.key_id = "k1",
                         .tenant = "acme",
                         .scopes = CAP_SCOPE_VIEW_READ,
                         .expires = NOW + 60,
                         .version = 2};
    p.key_id = "nope";
    cr_assert_eq(cap_mint(keys, &p, tok, sizeof(tok)), CAP_E_UNKNOWN_KEY);
    p.key_id = "k1";
    p.tenant = "bad tenant";
    cr_assert_eq(cap_mint(keys, &p, tok, sizeof(tok)), CAP_E_MALFORMED);
    p.tenant = "acme";
    p.route = "no-slash";
    cr_assert_eq(cap_mint(keys, &p, tok, sizeof(tok)), CAP_E_MALFORMED);
    p.route = NULL;
    p.method = "FETCH";
    cr_assert_eq(cap_mint(keys, &p, tok, sizeof(tok)), CAP_E_MALFORMED);
    p.method = NULL;
    p.scopes = 0;
    cr_assert_eq(cap_mint(keys, &p, tok, sizeof(tok)), CAP_E_MALFORMED);
    p.scopes = CAP_SCOPE_VIEW_READ;
    p.version = 3;
    cr_assert_eq(cap_mint(keys, &p, tok, sizeof(tok)), CAP_E_MALFORMED);
    p.version = 2;
    cr_assert_eq(cap_mint(keys, &p, tok, 8), CAP_E_MALFORMED);
}

/* ------------------------------------------------------------------------ */
/* cache                                                                    */

TestSuite(capcache, .init = setup, .fini = teardown);

static void mint_into(char *out, const char *tenant, int64_t expires, const char *route)
{
    struct cap_mint p = {.key_id = "k1",
                         .tenant = tenant,
                         .scopes = CAP_SCOPE_VIEW_READ,
                         .expires = expires,
                         .route = route,
                         .method = "GET",
                         .version = 2};
    cr_assert_gt(cap_mint(keys, &p, out, MACAROON_MAX_TOKEN_CHARS + 1), 0);
}

Test(capcache, hit_gives_the_same_result)
{
    struct cap_cache *c = cap_cache_new(64);
    struct cap_result a, b;
    struct cap_request req = test_req("GET", "/v1/view/x", NOW);
    mint_into(tok, "acme", NOW + 100, "/v1/view/");
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &a), CAP_OK);
    cr_assert_eq(c->misses, 1);
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &b), CAP_OK);
    cr_assert_eq(c->hits, 1);
    cr_assert(memcmp(&a, &b, sizeof(a)) == 0);
    cr_assert_str_eq(b.tenant, "acme");
    cap_cache_free(c);
}

static bool contains(const void *hay, size_t hn, const void *needle, size_t nn)
{
    return memmem(hay, hn, needle, nn) != NULL;
}

Test(capcache, holds_no_token_bytes)
{
    struct cap_cache *c = cap_cache_new(16);
    struct cap_result r;
    struct cap_request req = test_req("GET", "/v1/view/x", NOW);
    uint8_t buf[MACAROON_MAX_RAW_BYTES];
    struct macaroon m;
    size_t bytes = cap_cache_capacity(c) * sizeof(struct cap_cache_entry);

    mint_into(tok, "acme", NOW + 100, "/v1/view/");
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_OK);
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_OK);
    cr_assert_eq(c->hits, 1);
    /* No 8-character window of the token text ... */
    for (size_t i = 0; i + 8 <= strlen(tok); i++)
        cr_assert_not(contains(c->e, bytes, tok + i, 8), "token text at %zu is cached", i);
    /* ... nor the signature, nor the identifier with its nonce. */
    cr_assert_eq(macaroon_decode(&m, buf, tok, strlen(tok)), 0);
    cr_assert_not(contains(c->e, bytes, m.sig, 8));
    cr_assert_not(contains(c->e, bytes, m.identifier.p, m.identifier.n));
    /* What it does hold: the BLAKE3 hash of the token. */
    struct cas_addr d;
    cas_hash(tok, strlen(tok), &d);
    cr_assert(contains(c->e, bytes, d.b, 32));
    cap_cache_free(c);
}

Test(capcache, bounded)
{
    struct cap_cache *c = cap_cache_new(8);
    struct cap_result r;
    struct cap_request req = test_req("GET", "/v1/view/x", NOW);
    static char toks[100][MACAROON_MAX_TOKEN_CHARS + 1];
    cr_assert_eq(cap_cache_capacity(c), 8);
    for (int i = 0; i < 100; i++) {
        mint_into(toks[i], "acme", NOW + 100, NULL);
        cr_assert_eq(cap_cache_verify(c, keys, toks[i], strlen(toks[i]), &req, &r), CAP_OK);
    }
    cr_assert_eq(c->misses, 100);
    size_t used = 0;
    for (size_t i = 0; i < cap_cache_capacity(c); i++)
        used += c->e[i].stamp != 0;
    cr_assert_eq(used, 8);
    /* The most recent token is still cached; evicted ones still verify. */
    cr_assert_eq(cap_cache_verify(c, keys, toks[99], strlen(toks[99]), &req, &r), CAP_OK);
    cr_assert_eq(c->hits, 1);
    cr_assert_eq(cap_cache_verify(c, keys, toks[0], strlen(toks[0]), &req, &r), CAP_OK);
    cap_cache_free(c);
    cr_assert_eq(cap_cache_capacity(c = cap_cache_new(1000)), 1024);
    cap_cache_free(c);
    cr_assert_eq(cap_cache_capacity(c = cap_cache_new(1u << 30)), 65536);
    cap_cache_free(c);
    cap_cache_free(NULL);
}

Test(capcache, rechecks_expiry_route_method_tenant_on_hit)
{
    struct cap_cache *c = cap_cache_new(64);
    struct cap_result r;
    struct cap_request req = test_req("GET", "/v1/view/x", NOW);
    mint_into(tok, "acme", NOW + 3, "/v1/view/");
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_OK);
    req = test_req("POST", "/v1/view/x", NOW);
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_E_METHOD);
    req = test_req("GET", "/v1/o/x", NOW);
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_E_ROUTE);
    req = test_req("GET", "/v1/view/x", NOW);
    req.tenant = "other";
    req.tenant_len = 5;
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_E_TENANT);
    cr_assert_eq(c->hits, 3);
    req = test_req("GET", "/v1/view/x", NOW + 2);
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_OK);
    req.now = NOW + 3;
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_E_EXPIRED);
    cap_cache_free(c);
}

Test(capcache, entries_live_five_seconds)
{
    struct cap_cache *c = cap_cache_new(64);
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", NOW);
    mint_into(tok, "acme", NOW + 100, NULL);
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_OK);
    req.now = NOW + CAP_CACHE_TTL_S - 1;
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_OK);
    cr_assert_eq(c->hits, 1);
    req.now = NOW + CAP_CACHE_TTL_S;
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_OK);
    cr_assert_eq(c->misses, 2);
    size_t used = 0;
    for (size_t i = 0; i < cap_cache_capacity(c); i++)
        used += c->e[i].stamp != 0;
    cr_assert_eq(used, 1, "a refreshed entry reuses its slot");
    cap_cache_free(c);
}

Test(capcache, key_change_invalidates)
{
    struct cap_cache *c = cap_cache_new(64);
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", NOW);
    mint_into(tok, "acme", NOW + 100, NULL);
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_OK);
    /* Replace k1's secret: the cached grant must not survive. */
    cr_assert_eq(cap_keys_add(keys, "k1", 2, SECRET2, 32), 0);
    cr_assert_eq(cap_cache_verify(c, keys, tok, strlen(tok), &req, &r), CAP_E_BAD_SIG);
    cr_assert_eq(c->hits, 0);
    cap_cache_free(c);
}

Test(capcache, failures_are_not_cached)
{
    struct cap_cache *c = cap_cache_new(64);
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", NOW);
    cr_assert_eq(cap_cache_verify(c, keys, "AAAA", 4, &req, &r), CAP_E_MALFORMED);
    cr_assert_eq(cap_cache_verify(c, keys, NULL, 0, &req, &r), CAP_E_MISSING);
    for (size_t i = 0; i < cap_cache_capacity(c); i++)
        cr_assert_eq(c->e[i].stamp, 0);
    cap_cache_free(c);
}
