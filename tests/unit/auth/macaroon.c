/*
 * Tests for src/auth/macaroon.c: base64, v1/v2 parsing against pymacaroons
 * vectors, every malformed shape (including the two inputs that crash
 * libmacaroons 0.3.0), encoding byte-exact with pymacaroons.
 */
#include "auth_test.h"

/* pymacaroons 0.13, key bytes(range(32)), identifier "k1:n0nce", location
 * "https://omnigate.test", caveats "tenant = acme", "scope = view.read,
 * media.read", "expires = 2000000000". */
static const char PY_V1[] =
    "MDAyM2xvY2F0aW9uIGh0dHBzOi8vb21uaWdhdGUudGVzdAowMDE4aWRlbnRpZmllciBrMTpuMG5jZQowMDE2Y2lkIHRl"
    "bmFudCA9IGFjbWUKMDAyNmNpZCBzY29wZSA9IHZpZXcucmVhZCwgbWVkaWEucmVhZAowMDFkY2lkIGV4cGlyZXMgPSAy"
    "MDAwMDAwMDAwCjAwMmZzaWduYXR1cmUgTprpP2JzynmyBFBFQS1QTBsyKo2EDdtMX1lzHkUPe1EK";
static const char PY_V2[] =
    "AgEVaHR0cHM6Ly9vbW5pZ2F0ZS50ZXN0AghrMTpuMG5jZQACDXRlbmFudCA9IGFjbWUAAh1zY29wZSA9IHZpZXcucmVh"
    "ZCwgbWVkaWEucmVhZAACFGV4cGlyZXMgPSAyMDAwMDAwMDAwAAAGIE6a6T9ic8p5sgRQRUEtUEwbMiqNhA3bTF9Zcx5F"
    "D3tR";
static const uint8_t PY_SIG[32] = {0x4e, 0x9a, 0xe9, 0x3f, 0x62, 0x73, 0xca, 0x79, 0xb2, 0x04, 0x50,
                                   0x45, 0x41, 0x2d, 0x50, 0x4c, 0x1b, 0x32, 0x2a, 0x8d, 0x84, 0x0d,
                                   0xdb, 0x4c, 0x5f, 0x59, 0x73, 0x1e, 0x45, 0x0f, 0x7b, 0x51};
/* pymacaroons v2 with the default empty location: a zero-length location
 * field, identifier "k1:abc", caveat "tenant = acme". */
static const char PY_V2_EMPTY_LOC[] =
    "AgEAAgZrMTphYmMAAg10ZW5hbnQgPSBhY21lAAAGIGG0OGn2nPgBJ0TxVOsCmXmiFl4DL-AM7I6YuaaYDt-B";

/* libmacaroons 0.3.0 crash inputs. */
/* v1, no signature packet: heap overflow in libmacaroons. */
static const char LIBMAC_NO_SIG[] =
    "MDAwZWxvY2F0aW9uIAowMDE2aWRlbnRpZmllciBrMTphYmMKMDAxNmNpZCB0ZW5hbnQgPSBhY21lCg==";
/* v1, a packet of length 0000: infinite loop in libmacaroons. */
static const char LIBMAC_ZERO_PKT[] = "MDAwZWxvY2F0aW9uIAowMDAwaWRlbnRpZmllciBrMTphYmMK";

static int decode(struct macaroon *m, uint8_t *buf, const char *tok)
{
    return macaroon_decode(m, buf, tok, strlen(tok));
}

static bool slice_is(struct macaroon_slice s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* Append one v1 packet "<hex len><key> <val>\n" to out; returns its size. */
static size_t pkt(char *out, const char *key, const char *val)
{
    size_t len = 4 + strlen(key) + 1 + strlen(val) + 1;
    return (size_t)sprintf(out, "%04zx%s %s\n", len, key, val);
}

static int raw_of(const char *tok, uint8_t *raw)
{
    return macaroon_b64_decode(raw, MACAROON_MAX_RAW_BYTES, tok, strlen(tok));
}

/* ---- base64 ---- */

Test(macaroon, b64_alphabets_and_padding)
{
    uint8_t out[16];
    cr_assert_eq(macaroon_b64_decode(out, sizeof(out), "-_-_", 4), 3);
    cr_assert(out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);
    cr_assert_eq(macaroon_b64_decode(out, sizeof(out), "+/+/", 4), 3);
    cr_assert(out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);
    cr_assert_eq(macaroon_b64_decode(out, sizeof(out), "YWI", 3), 2);
    cr_assert_eq(macaroon_b64_decode(out, sizeof(out), "YWI=", 4), 2);
    cr_assert(memcmp(out, "ab", 2) == 0);
    cr_assert_eq(macaroon_b64_decode(out, sizeof(out), "YQ", 2), 1);
    cr_assert_eq(macaroon_b64_decode(out, sizeof(out), "YQ==", 4), 1);
    cr_assert(out[0] == 'a');
}

Test(macaroon, b64_rejects)
{
    uint8_t out[4096];
    static const char *bad[] = {"Y",  "YQ=", "YQ=== ", "YQ===",  "Y Q=", "YQ\n",  "Y=Q=", "=YQ=",
                                "YR", "YWJ", "YW*",    "YQ==YQ", "====", "YWI==", "\0YWI"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_lt(
            macaroon_b64_decode(out, sizeof(out), bad[i], strlen(bad[i]) ? strlen(bad[i]) : 4), 0,
            "accepted '%s'", bad[i]);
    cr_assert_eq(macaroon_b64_decode(out, sizeof(out), "", 0), MACAROON_E_EMPTY);

    char big[MACAROON_MAX_TOKEN_CHARS + 4];
    memset(big, 'A', sizeof(big));
    cr_assert_eq(macaroon_b64_decode(out, sizeof(out), big, MACAROON_MAX_TOKEN_CHARS + 1),
                 MACAROON_E_TOO_LARGE);
    cr_assert_eq(macaroon_b64_decode(out, sizeof(out), big, MACAROON_MAX_TOKEN_CHARS),
                 MACAROON_MAX_RAW_BYTES);
    cr_assert_eq(macaroon_b64_decode(out, 2, "YWJj", 4), MACAROON_E_NOSPACE);
}

/* ---- pymacaroons vectors ---- */

static void check_py_fields(const struct macaroon *m, int version)
{
    cr_assert_eq(m->version, version);
    cr_assert(slice_is(m->location, "https://omnigate.test"));
    cr_assert(slice_is(m->identifier, "k1:n0nce"));
    cr_assert_eq(m->ncaveats, 3);
    cr_assert(slice_is(m->caveats[0].cid, "tenant = acme"));
    cr_assert(slice_is(m->caveats[1].cid, "scope = view.read, media.read"));
    cr_assert(slice_is(m->caveats[2].cid, "expires = 2000000000"));
    for (int i = 0; i < 3; i++)
        cr_assert_null(m->caveats[i].vid.p);
    cr_assert(memcmp(m->sig, PY_SIG, 32) == 0);
}

Test(macaroon, pymacaroons_v1_v2_decode_and_verify)
{
    uint8_t buf[MACAROON_MAX_RAW_BYTES], key[32];
    struct macaroon m;
    cr_assert(macaroon_derive_key(SECRET1, 32, key) == 0);

    cr_assert_eq(decode(&m, buf, PY_V1), 0);
    check_py_fields(&m, 1);
    cr_assert(macaroon_verify_sig(&m, key));

    cr_assert_eq(decode(&m, buf, PY_V2), 0);
    check_py_fields(&m, 2);
    cr_assert(macaroon_verify_sig(&m, key));

    cr_assert_eq(decode(&m, buf, PY_V2_EMPTY_LOC), 0);
    cr_assert_eq(m.location.n, 0);
    cr_assert(slice_is(m.identifier, "k1:abc"));
    cr_assert(macaroon_verify_sig(&m, key));

    /* A different secret, and a derived key used as if it were the secret. */
    uint8_t other[32];
    cr_assert(macaroon_derive_key(SECRET2, 32, other) == 0);
    cr_assert_not(macaroon_verify_sig(&m, other));
    cr_assert_not(macaroon_verify_sig(&m, SECRET1));
}

Test(macaroon, standard_alphabet_and_padding_accepted)
{
    uint8_t buf[MACAROON_MAX_RAW_BYTES], key[32];
    char tok[sizeof(PY_V2_EMPTY_LOC) + 4];
    struct macaroon m;
    /* Translate to the standard alphabet and pad, as other encoders emit. */
    size_t n = strlen(PY_V2_EMPTY_LOC);
    for (size_t i = 0; i < n; i++)
        tok[i] = PY_V2_EMPTY_LOC[i] == '-'   ? '+'
                 : PY_V2_EMPTY_LOC[i] == '_' ? '/'
                                             : PY_V2_EMPTY_LOC[i];
    while (n % 4)
        tok[n++] = '=';
    tok[n] = '\0';
    cr_assert_eq(decode(&m, buf, tok), 0);
    cr_assert(macaroon_derive_key(SECRET1, 32, key) == 0);
    cr_assert(macaroon_verify_sig(&m, key));
}

Test(macaroon, encode_matches_pymacaroons_byte_for_byte)
{
    uint8_t buf[MACAROON_MAX_RAW_BYTES];
    char out[MACAROON_MAX_TOKEN_CHARS + 1];
    struct macaroon m;
    cr_assert_eq(decode(&m, buf, PY_V1), 0);
    cr_assert_eq(macaroon_encode(&m, out, sizeof(out)), (int)strlen(PY_V1));
    cr_assert_str_eq(out, PY_V1);
    cr_assert_eq(decode(&m, buf, PY_V2), 0);
    cr_assert_eq(macaroon_encode(&m, out, sizeof(out)), (int)strlen(PY_V2));
    cr_assert_str_eq(out, PY_V2);
    cr_assert_eq(macaroon_encode(&m, out, 10), MACAROON_E_NOSPACE);
}

/* Found by the fuzzer: encoding a v1 macaroon parsed without a location
 * packet passed memcpy a NULL source. */
Test(macaroon, encode_v1_without_location)
{
    char raw[256], out[512];
    uint8_t buf[MACAROON_MAX_RAW_BYTES];
    struct macaroon m, back;
    size_t n = pkt(raw, "identifier", "k1");
    n += pkt(raw + n, "cid", "tenant = t");
    memcpy(raw + n, "002fsignature ", 14);
    memset(raw + n + 14, 'S', 32);
    raw[n + 46] = '\n';
    n += 47;
    cr_assert_eq(macaroon_parse(&m, (const uint8_t *)raw, n), 0);
    cr_assert_null(m.location.p);
    cr_assert_gt(macaroon_encode(&m, out, sizeof(out)), 0);
    cr_assert_eq(macaroon_decode(&back, buf, out, strlen(out)), 0);
    cr_assert_eq(back.location.n, 0);
    cr_assert(slice_is(back.caveats[0].cid, "tenant = t"));
}

Test(macaroon, roundtrip_own_tokens)
{
    static const char *cav[] = {"tenant = t", "scope = view.read", "expires = 5"};
    for (int v = 1; v <= 2; v++) {
        char tok[MACAROON_MAX_TOKEN_CHARS + 1];
        uint8_t buf[MACAROON_MAX_RAW_BYTES], key[32];
        struct macaroon m;
        cr_assert_gt(mk_token("k1:abc", v, cav, 3, tok, sizeof(tok)), 0);
        cr_assert_null(strchr(tok, '='));
        cr_assert_null(strchr(tok, '+'));
        cr_assert_null(strchr(tok, '/'));
        cr_assert_eq(decode(&m, buf, tok), 0);
        cr_assert_eq(m.version, v);
        cr_assert_eq(m.ncaveats, 3);
        cr_assert(slice_is(m.caveats[2].cid, "expires = 5"));
        cr_assert(macaroon_derive_key(SECRET1, 32, key) == 0);
        cr_assert(macaroon_verify_sig(&m, key));
    }
}

/* ---- malformed ---- */

Test(macaroon, libmacaroons_crash_inputs_rejected)
{
    uint8_t buf[MACAROON_MAX_RAW_BYTES];
    struct macaroon m;
    cr_assert_eq(decode(&m, buf, LIBMAC_NO_SIG), MACAROON_E_NO_SIGNATURE);
    cr_assert_eq(decode(&m, buf, LIBMAC_ZERO_PKT), MACAROON_E_ZERO_LENGTH);

    struct cap_keys *k = test_keys();
    struct cap_result r;
    cr_assert_eq(cap_check_token(k, LIBMAC_NO_SIG, strlen(LIBMAC_NO_SIG), 0, &r), CAP_E_MALFORMED);
    cr_assert_eq(cap_check_token(k, LIBMAC_ZERO_PKT, strlen(LIBMAC_ZERO_PKT), 0, &r),
                 CAP_E_MALFORMED);
    cap_keys_free(k);
}

Test(macaroon, v1_undersized_packets)
{
    /* Every length below the 7-byte minimum, at the start and mid-token. */
    for (unsigned len = 0; len < 7; len++) {
        char raw[64];
        struct macaroon m;
        int n = snprintf(raw, sizeof(raw), "%04xk v\n", len);
        cr_assert_eq(macaroon_parse(&m, (const uint8_t *)raw, (size_t)n), MACAROON_E_ZERO_LENGTH);
        size_t off = pkt(raw, "identifier", "k1");
        off += (size_t)sprintf(raw + off, "%04xcid x\n", len);
        cr_assert_eq(macaroon_parse(&m, (const uint8_t *)raw, off), MACAROON_E_ZERO_LENGTH);
    }
}

static void every_prefix_fails(const char *tok)
{
    uint8_t raw[MACAROON_MAX_RAW_BYTES];
    int n = raw_of(tok, raw);
    cr_assert_gt(n, 0);
    for (int cut = 0; cut < n; cut++) {
        struct guard g;
        struct macaroon m;
        guard_init(&g, raw, (size_t)cut);
        cr_assert_lt(macaroon_parse(&m, g.p, (size_t)cut), 0, "prefix %d of %d parsed", cut, n);
        guard_release(&g);
    }
    struct guard g;
    struct macaroon m;
    guard_init(&g, raw, (size_t)n);
    cr_assert_eq(macaroon_parse(&m, g.p, (size_t)n), 0);
    guard_release(&g);

    /* And the text, at every character: never a valid token. */
    struct cap_keys *k = test_keys();
    size_t tn = strlen(tok);
    for (size_t cut = 0; cut < tn; cut++) {
        struct guard gt;
        struct cap_result r;
        guard_init(&gt, tok, cut);
        int rc = cap_check_token(k, (const char *)gt.p, cut, 0, &r);
        cr_assert(rc == CAP_E_MALFORMED || rc == CAP_E_MISSING, "text prefix %zu: %d", cut, rc);
        guard_release(&gt);
    }
    cap_keys_free(k);
}

Test(macaroon, truncated_at_every_byte_v1)
{
    every_prefix_fails(PY_V1);
}

Test(macaroon, truncated_at_every_byte_v2)
{
    every_prefix_fails(PY_V2);
    every_prefix_fails(PY_V2_EMPTY_LOC);
}

Test(macaroon, trailing_bytes_rejected)
{
    uint8_t raw[MACAROON_MAX_RAW_BYTES + 8];
    struct macaroon m;
    int n = raw_of(PY_V2, raw);
    raw[n] = 0;
    cr_assert_eq(macaroon_parse(&m, raw, (size_t)n + 1), MACAROON_E_TRAILING);
    n = raw_of(PY_V1, raw);
    size_t extra = pkt((char *)raw + n, "cid", "x");
    cr_assert_eq(macaroon_parse(&m, raw, (size_t)n + extra), MACAROON_E_TRAILING);
}

Test(macaroon, version_byte)
{
    struct macaroon m;
    static const uint8_t v3[] = {3, 0, 0};
    static const uint8_t z[] = {'z', 'z'};
    cr_assert_eq(macaroon_parse(&m, v3, sizeof(v3)), MACAROON_E_VERSION);
    cr_assert_eq(macaroon_parse(&m, z, sizeof(z)), MACAROON_E_VERSION);
    cr_assert_eq(macaroon_parse(&m, v3, 0), MACAROON_E_EMPTY);
}

#define RAW(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

Test(macaroon, v2_structure_errors)
{
    struct macaroon m;
    /* no identifier */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 1, 1, 'x', 0, 0, 6, 0)), MACAROON_E_FIELD);
    /* fields out of order: identifier then location */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 1, 'k', 1, 1, 'x', 0)), MACAROON_E_FIELD);
    /* unknown field type in the header */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 1, 'k', 3, 1, 'x', 0)), MACAROON_E_FIELD);
    /* non-minimal varint */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 0x82, 0x00, 1, 'k', 0)), MACAROON_E_FIELD);
    /* varint longer than 4 bytes */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 0xff, 0xff, 0xff, 0xff, 0x7f)), MACAROON_E_FIELD);
    /* declared length past the end */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 0x7f, 'k')), MACAROON_E_TRUNCATED);
    /* empty identifier */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 0, 0, 0)), MACAROON_E_EMPTY_FIELD);
    /* caveat list ends, no signature */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 1, 'k', 0, 0)), MACAROON_E_NO_SIGNATURE);
    /* caveat section without identifier / location without vid */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 1, 'k', 0, 1, 1, 'l', 0)), MACAROON_E_FIELD);
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 1, 'k', 0, 1, 1, 'l', 2, 1, 'c', 0)),
                 MACAROON_E_FIELD);
    /* empty caveat id */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 1, 'k', 0, 2, 0, 0)), MACAROON_E_EMPTY_FIELD);
    /* wrong field where the signature belongs, and a short signature */
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 1, 'k', 0, 0, 2, 1, 'x')), MACAROON_E_FIELD);
    cr_assert_eq(macaroon_parse(&m, RAW(2, 2, 1, 'k', 0, 0, 6, 1, 'x')), MACAROON_E_SIG_LENGTH);
}

Test(macaroon, v1_structure_errors)
{
    struct macaroon m;
    char raw[512];
    size_t n;
#define V1_BAD(expect, ...)                                                                        \
    do {                                                                                           \
        const char *kv[] = {__VA_ARGS__};                                                          \
        n = 0;                                                                                     \
        for (size_t i = 0; i + 1 < sizeof(kv) / sizeof(kv[0]); i += 2)                             \
            n += pkt(raw + n, kv[i], kv[i + 1]);                                                   \
        cr_assert_eq(macaroon_parse(&m, (const uint8_t *)raw, n), expect, "%s", #__VA_ARGS__);     \
    } while (0)
    V1_BAD(MACAROON_E_FIELD, "identifier", "k1", "bad", "x");
    V1_BAD(MACAROON_E_FIELD, "identifier", "k1", "vid", "x");
    V1_BAD(MACAROON_E_FIELD, "identifier", "k1", "cid", "x", "cl", "x");
    V1_BAD(MACAROON_E_FIELD, "location", "l", "cid", "x");
    V1_BAD(MACAROON_E_FIELD, "location", "l", "location", "l");
    V1_BAD(MACAROON_E_FIELD, "identifier", "k1", "identifier", "k1");
    V1_BAD(MACAROON_E_FIELD, "identifier", "k1", "cid", "x", "vid", "v", "cid", "y");
    V1_BAD(MACAROON_E_NO_SIGNATURE, "identifier", "k1", "cid", "x", "vid", "v");
    V1_BAD(MACAROON_E_NO_SIGNATURE, "location", "l");
    V1_BAD(MACAROON_E_EMPTY_FIELD, "identifier", "");
    V1_BAD(MACAROON_E_EMPTY_FIELD, "identifier", "k1", "cid", "");
    V1_BAD(MACAROON_E_SIG_LENGTH, "identifier", "k1", "signature",
           "0123456789012345678901234567890");
#undef V1_BAD

    n = pkt(raw, "identifier", "k1");
    cr_assert_eq(macaroon_parse(&m, (const uint8_t *)"0008cidx\n", 9), MACAROON_E_FIELD);
    cr_assert_eq(macaroon_parse(&m, (const uint8_t *)"000acid xx", 10), MACAROON_E_FIELD);
    cr_assert_eq(macaroon_parse(&m, (const uint8_t *)"00zzidentifier k1\n", 18), MACAROON_E_FIELD);
    n += (size_t)sprintf(raw + n, "00ffcid x\n");
    cr_assert_eq(macaroon_parse(&m, (const uint8_t *)raw, n), MACAROON_E_TRUNCATED);
    cr_assert_eq(macaroon_parse(&m, (const uint8_t *)raw, 3), MACAROON_E_TRUNCATED);
}

Test(macaroon, caveat_count_capped)
{
    const char *cav[MACAROON_MAX_CAVEATS + 1];
    for (int i = 0; i <= MACAROON_MAX_CAVEATS; i++)
        cav[i] = "tenant = t";
    char tok[MACAROON_MAX_TOKEN_CHARS + 1];
    uint8_t buf[MACAROON_MAX_RAW_BYTES];
    struct macaroon m;
    for (int v = 1; v <= 2; v++) {
        cr_assert_gt(mk_token("k1", v, cav, MACAROON_MAX_CAVEATS, tok, sizeof(tok)), 0);
        cr_assert_eq(decode(&m, buf, tok), 0);
        cr_assert_eq(m.ncaveats, MACAROON_MAX_CAVEATS);
    }
    /* Encoders cannot produce 33, so build the token by hand. */
    char raw[2048];
    size_t n = pkt(raw, "identifier", "k1");
    for (int i = 0; i <= MACAROON_MAX_CAVEATS; i++)
        n += pkt(raw + n, "cid", "x");
    cr_assert_eq(macaroon_parse(&m, (const uint8_t *)raw, n), MACAROON_E_TOO_MANY_CAVEATS);
}

Test(macaroon, oversized_token_refused_before_decoding)
{
    static const char *cav[] = {"tenant = t"};
    char big[MACAROON_MAX_TOKEN_CHARS * 2];
    char ident[3100];
    memset(ident, 'a', sizeof(ident) - 1);
    ident[sizeof(ident) - 1] = '\0';
    cr_assert_eq(mk_token(ident, 2, cav, 1, big, sizeof(big)), MACAROON_E_TOO_LARGE);
}

Test(macaroon, third_party_caveats_recognised)
{
    struct macaroon m;
    char v1[256];
    size_t n = pkt(v1, "identifier", "k1");
    n += pkt(v1 + n, "cid", "x");
    n += pkt(v1 + n, "vid", "v");
    n += pkt(v1 + n, "cl", "loc");
    cr_assert_eq(macaroon_parse(&m, (const uint8_t *)v1, n), MACAROON_E_NO_SIGNATURE);
    cr_assert_eq(m.ncaveats, 1);
    cr_assert_not_null(m.caveats[0].vid.p);
    /* v2: location + identifier + vid, then the signature. */
    uint8_t raw[64] = {2, 2, 1, 'k', 0, 1, 1, 'l', 2, 1, 'c', 4, 1, 'v', 0, 0, 6, 32};
    cr_assert_eq(macaroon_parse(&m, raw, 18 + 32), 0);
    cr_assert_eq(m.ncaveats, 1);
    cr_assert(slice_is(m.caveats[0].vid, "v"));
    cr_assert(slice_is(m.caveats[0].cl, "l"));
    uint8_t key[32] = {0}, sig[32];
    cr_assert_eq(macaroon_sign(&m, key, sig), -1);
    cr_assert_not(macaroon_verify_sig(&m, key));
}

Test(macaroon, strerror_covers_table)
{
    cr_assert_str_eq(macaroon_strerror(MACAROON_E_NO_SIGNATURE), "missing signature");
    cr_assert_str_eq(macaroon_strerror(12345), "unknown error");
}
