/*
 * macaroon — v1/v2 codec and signature chain; see macaroon.h for the formats.
 *
 * Every length is checked against what remains of the buffer before it is
 * used, the token size before decoding and the caveat count before storing a
 * caveat, so no input can make the parser read outside buf or loop: every
 * packet consumes at least one byte (a v1 packet shorter than its own header
 * plus "k \n" is refused, which is the libmacaroons infinite loop).
 */
#include "auth/macaroon.h"
#include "core/hex.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

const char *macaroon_strerror(int err)
{
    switch (err) {
#define MACAROON_TEXT(name, val, text)                                                             \
    case name: return text;
        MACAROON_ERR_MAP(MACAROON_TEXT)
#undef MACAROON_TEXT
    }
    return "unknown error";
}

/* ------------------------------------------------------------------------ */
/* base64                                                                   */

/* Value of a base64 digit in either alphabet, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int macaroon_b64_decode(uint8_t *out, size_t cap, const char *in, size_t n)
{
    /* Padded to a multiple of 4 in the standard alphabet for OpenSSL. */
    unsigned char std[MACAROON_MAX_TOKEN_CHARS];
    uint8_t raw[MACAROON_MAX_RAW_BYTES];

    if (n == 0)
        return MACAROON_E_EMPTY;
    if (n > MACAROON_MAX_TOKEN_CHARS)
        return MACAROON_E_TOO_LARGE;

    size_t pad = 0;
    while (pad < n && in[n - 1 - pad] == '=')
        pad++;
    size_t d = n - pad;
    size_t rem = d % 4;
    /* One digit alone carries 6 bits: never a whole byte. */
    if (d == 0 || rem == 1 || pad > 2)
        return MACAROON_E_BASE64;
    if (pad != 0 && pad != (4 - rem) % 4)
        return MACAROON_E_BASE64;

    int v = 0;
    for (size_t i = 0; i < d; i++) {
        v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return MACAROON_E_BASE64;
        if (in[i] == '-')
            std[i] = '+';
        else if (in[i] == '_')
            std[i] = '/';
        else
            std[i] = (unsigned char)in[i];
    }
    /* Bits past the last whole byte must be zero: one text per token. */
    if ((rem == 2 && (v & 0x0f) != 0) || (rem == 3 && (v & 0x03) != 0))
        return MACAROON_E_BASE64;

    size_t fill = rem ? 4 - rem : 0;
    memset(std + d, '=', fill);
    size_t total = d + fill; /* <= MACAROON_MAX_TOKEN_CHARS: the cap is a multiple of 4 */
    size_t len = total / 4 * 3 - fill;
    if (len > cap)
        return MACAROON_E_NOSPACE;

    int got = EVP_DecodeBlock(raw, std, (int)total);
    if (got < 0 || (size_t)got != total / 4 * 3)
        return MACAROON_E_BASE64;
    memcpy(out, raw, len);
    OPENSSL_cleanse(raw, sizeof(raw));
    return (int)len;
}

/* Unpadded url-safe base64 of in[0..n) into out; returns the length or
 * MACAROON_E_NOSPACE. */
static int b64url_encode(char *out, size_t cap, const uint8_t *in, size_t n)
{
    size_t full = (n + 2) / 3 * 4;
    if (full + 1 > cap)
        return MACAROON_E_NOSPACE;
    int w = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    if (w < 0 || (size_t)w != full)
        return MACAROON_E_NOSPACE;
    size_t len = full;
    while (len > 0 && out[len - 1] == '=')
        len--;
    for (size_t i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    out[len] = '\0';
    return (int)len;
}

/* ------------------------------------------------------------------------ */
/* v1                                                                       */

static bool key_is(const uint8_t *k, size_t n, const char *want)
{
    size_t wn = strlen(want);
    return n == wn && memcmp(k, want, n) == 0;
}

enum v1_stage { V1_START, V1_LOCATION, V1_CAVEATS, V1_DONE };
enum v1_last { V1_NONE, V1_CID, V1_VID, V1_CL };

static int parse_v1(struct macaroon *m, const uint8_t *buf, size_t n)
{
    enum v1_stage stage = V1_START;
    enum v1_last last = V1_NONE;
    size_t pos = 0;

    m->version = 1;
    while (pos < n) {
        if (n - pos < 4)
            return MACAROON_E_TRUNCATED;
        size_t len = 0;
        for (int i = 0; i < 4; i++) {
            int h = hex_digit(buf[pos + i]);
            if (h < 0)
                return MACAROON_E_FIELD;
            len = len << 4 | (size_t)h;
        }
        /* The header counts itself; a packet needs at least "k \n" after it. */
        if (len < 4 + 3)
            return MACAROON_E_ZERO_LENGTH;
        if (len > n - pos)
            return MACAROON_E_TRUNCATED;
        const uint8_t *body = buf + pos + 4;
        size_t blen = len - 4;
        pos += len;

        if (body[blen - 1] != '\n')
            return MACAROON_E_FIELD;
        const uint8_t *sp = memchr(body, ' ', blen - 1);
        if (sp == NULL || sp == body)
            return MACAROON_E_FIELD;
        size_t klen = (size_t)(sp - body);
        struct macaroon_slice val = {sp + 1, blen - 1 - klen - 1};

        if (stage == V1_DONE)
            return MACAROON_E_TRAILING;
        if (stage == V1_START && key_is(body, klen, "location")) {
            m->location = val;
            stage = V1_LOCATION;
        } else if (stage != V1_CAVEATS && key_is(body, klen, "identifier")) {
            if (val.n == 0)
                return MACAROON_E_EMPTY_FIELD;
            m->identifier = val;
            stage = V1_CAVEATS;
        } else if (stage == V1_CAVEATS && key_is(body, klen, "cid")) {
            if (last == V1_VID)
                return MACAROON_E_FIELD;
            if (val.n == 0)
                return MACAROON_E_EMPTY_FIELD;
            if (m->ncaveats == MACAROON_MAX_CAVEATS)
                return MACAROON_E_TOO_MANY_CAVEATS;
            m->caveats[m->ncaveats++] = (struct macaroon_caveat){.cid = val};
            last = V1_CID;
        } else if (stage == V1_CAVEATS && last == V1_CID && key_is(body, klen, "vid")) {
            /* vid.p != NULL marks a third-party caveat even when empty. */
            m->caveats[m->ncaveats - 1].vid = val;
            last = V1_VID;
        } else if (stage == V1_CAVEATS && last == V1_VID && key_is(body, klen, "cl")) {
            m->caveats[m->ncaveats - 1].cl = val;
            last = V1_CL;
        } else if (stage == V1_CAVEATS && last != V1_VID && key_is(body, klen, "signature")) {
            if (val.n != MACAROON_SIG_BYTES)
                return MACAROON_E_SIG_LENGTH;
            m->sig = val.p;
            stage = V1_DONE;
        } else {
            return MACAROON_E_FIELD;
        }
    }
    return stage == V1_DONE ? 0 : MACAROON_E_NO_SIGNATURE;
}

/* ------------------------------------------------------------------------ */
/* v2                                                                       */

enum { V2_EOS = 0, V2_LOCATION = 1, V2_IDENTIFIER = 2, V2_VID = 4, V2_SIGNATURE = 6 };

/* Unsigned LEB128, at most 4 bytes (far beyond any length under the cap),
 * minimal encoding only. */
static int read_varint(const uint8_t *buf, size_t n, size_t *pos, size_t *out)
{
    size_t v = 0;
    for (int i = 0; i < 4; i++) {
        if (*pos >= n)
            return MACAROON_E_TRUNCATED;
        uint8_t b = buf[(*pos)++];
        v |= (size_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0)
                return MACAROON_E_FIELD;
            *out = v;
            return 0;
        }
    }
    return MACAROON_E_FIELD;
}

/* One field: *type, and for non-EOS the data slice. */
static int read_field(const uint8_t *buf, size_t n, size_t *pos, size_t *type,
                      struct macaroon_slice *data)
{
    int rc = read_varint(buf, n, pos, type);
    if (rc < 0)
        return rc;
    if (*type == V2_EOS)
        return 0;
    size_t len;
    rc = read_varint(buf, n, pos, &len);
    if (rc < 0)
        return rc;
    if (len > n - *pos)
        return MACAROON_E_TRUNCATED;
    data->p = buf + *pos;
    data->n = len;
    *pos += len;
    return 0;
}

/* A section: fields in strictly increasing type order up to EOS, each type in
 * allowed (a bitmask of 1 << type). Fills fields[type]; present is a bitmask. */
static int read_section(const uint8_t *buf, size_t n, size_t *pos, unsigned allowed,
                        struct macaroon_slice fields[8], unsigned *present)
{
    size_t prev = 0;
    *present = 0;
    for (;;) {
        size_t type;
        struct macaroon_slice data = {0};
        int rc = read_field(buf, n, pos, &type, &data);
        if (rc < 0)
            return rc;
        if (type == V2_EOS)
            return 0;
        if (type >= 8 || !(allowed & (1u << type)) || type <= prev)
            return MACAROON_E_FIELD;
        fields[type] = data;
        *present |= 1u << type;
        prev = type;
    }
}

static int parse_v2(struct macaroon *m, const uint8_t *buf, size_t n)
{
    struct macaroon_slice f[8];
    unsigned present;
    size_t pos = 1;
    int rc;

    m->version = 2;
    rc = read_section(buf, n, &pos, 1u << V2_LOCATION | 1u << V2_IDENTIFIER, f, &present);
    if (rc < 0)
        return rc;
    if (!(present & 1u << V2_IDENTIFIER))
        return MACAROON_E_FIELD;
    if (f[V2_IDENTIFIER].n == 0)
        return MACAROON_E_EMPTY_FIELD;
    if (present & 1u << V2_LOCATION)
        m->location = f[V2_LOCATION];
    m->identifier = f[V2_IDENTIFIER];

    for (;;) {
        rc = read_section(buf, n, &pos, 1u << V2_LOCATION | 1u << V2_IDENTIFIER | 1u << V2_VID, f,
                          &present);
        if (rc < 0)
            return rc;
        if (present == 0)
            break; /* the EOS that ends the caveat list */
        if (!(present & 1u << V2_IDENTIFIER))
            return MACAROON_E_FIELD;
        /* A location without a vid is not a caveat any implementation emits. */
        if ((present & 1u << V2_LOCATION) && !(present & 1u << V2_VID))
            return MACAROON_E_FIELD;
        if (f[V2_IDENTIFIER].n == 0)
            return MACAROON_E_EMPTY_FIELD;
        if (m->ncaveats == MACAROON_MAX_CAVEATS)
            return MACAROON_E_TOO_MANY_CAVEATS;
        struct macaroon_caveat *c = &m->caveats[m->ncaveats++];
        c->cid = f[V2_IDENTIFIER];
        if (present & 1u << V2_VID) {
            c->vid = f[V2_VID];
            /* Non-NULL marker even for an empty vid. */
            if (c->vid.p == NULL)
                c->vid.p = buf;
        }
        if (present & 1u << V2_LOCATION)
            c->cl = f[V2_LOCATION];
    }

    if (pos == n)
        return MACAROON_E_NO_SIGNATURE;
    size_t type;
    struct macaroon_slice sig = {0};
    rc = read_field(buf, n, &pos, &type, &sig);
    if (rc < 0)
        return rc;
    if (type != V2_SIGNATURE)
        return MACAROON_E_FIELD;
    if (sig.n != MACAROON_SIG_BYTES)
        return MACAROON_E_SIG_LENGTH;
    if (pos != n)
        return MACAROON_E_TRAILING;
    m->sig = sig.p;
    return 0;
}

int macaroon_parse(struct macaroon *m, const uint8_t *buf, size_t n)
{
    memset(m, 0, sizeof(*m));
    if (n == 0)
        return MACAROON_E_EMPTY;
    if (n > MACAROON_MAX_RAW_BYTES)
        return MACAROON_E_TOO_LARGE;
    if (buf[0] == 2)
        return parse_v2(m, buf, n);
    if (hex_digit(buf[0]) >= 0)
        return parse_v1(m, buf, n);
    return MACAROON_E_VERSION;
}

int macaroon_decode(struct macaroon *m, uint8_t buf[MACAROON_MAX_RAW_BYTES], const char *token,
                    size_t n)
{
    int len = macaroon_b64_decode(buf, MACAROON_MAX_RAW_BYTES, token, n);
    if (len < 0) {
        memset(m, 0, sizeof(*m));
        return len;
    }
    return macaroon_parse(m, buf, (size_t)len);
}

/* ------------------------------------------------------------------------ */
/* signatures                                                               */

static int hmac256(const uint8_t *key, size_t klen, const uint8_t *msg, size_t n, uint8_t out[32])
{
    unsigned int olen = 0;
    static const uint8_t empty;
    if (HMAC(EVP_sha256(), key, (int)klen, n ? msg : &empty, n, out, &olen) == NULL || olen != 32)
        return -1;
    return 0;
}

int macaroon_derive_key(const uint8_t *secret, size_t n, uint8_t out[MACAROON_KEY_BYTES])
{
    static const char gen[] = "macaroons-key-generator";
    return hmac256((const uint8_t *)gen, sizeof(gen) - 1, secret, n, out);
}

int macaroon_sign(const struct macaroon *m, const uint8_t key[MACAROON_KEY_BYTES],
                  uint8_t out[MACAROON_SIG_BYTES])
{
    uint8_t sig[MACAROON_SIG_BYTES];
    int rc = hmac256(key, MACAROON_KEY_BYTES, m->identifier.p, m->identifier.n, sig);
    for (size_t i = 0; rc == 0 && i < m->ncaveats; i++) {
        const struct macaroon_caveat *c = &m->caveats[i];
        if (c->vid.p != NULL) {
            rc = -1;
            break;
        }
        rc = hmac256(sig, sizeof(sig), c->cid.p, c->cid.n, sig);
    }
    if (rc == 0)
        memcpy(out, sig, MACAROON_SIG_BYTES);
    OPENSSL_cleanse(sig, sizeof(sig));
    return rc;
}

bool macaroon_verify_sig(const struct macaroon *m, const uint8_t key[MACAROON_KEY_BYTES])
{
    uint8_t sig[MACAROON_SIG_BYTES];
    if (m->sig == NULL || macaroon_sign(m, key, sig) < 0)
        return false;
    bool ok = CRYPTO_memcmp(sig, m->sig, MACAROON_SIG_BYTES) == 0;
    OPENSSL_cleanse(sig, sizeof(sig));
    return ok;
}

/* ------------------------------------------------------------------------ */
/* encoding                                                                 */

struct wbuf {
    uint8_t *p;
    size_t n, cap;
    bool overflow;
};

static void put(struct wbuf *w, const void *p, size_t n)
{
    if (n == 0)
        return; /* p may be NULL (an absent location) */
    if (w->overflow || n > w->cap - w->n) {
        w->overflow = true;
        return;
    }
    memcpy(w->p + w->n, p, n);
    w->n += n;
}

static void put_varint(struct wbuf *w, size_t v)
{
    uint8_t b;
    do {
        b = v & 0x7f;
        v >>= 7;
        if (v)
            b |= 0x80;
        put(w, &b, 1);
    } while (v);
}

static void put_v1(struct wbuf *w, const char *key, const uint8_t *val, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = 4 + strlen(key) + 1 + n + 1;
    if (len > 0xffff) {
        w->overflow = true;
        return;
    }
    char h[4] = {hex[len >> 12 & 15], hex[len >> 8 & 15], hex[len >> 4 & 15], hex[len & 15]};
    put(w, h, 4);
    put(w, key, strlen(key));
    put(w, " ", 1);
    put(w, val, n);
    put(w, "\n", 1);
}

static void put_v2(struct wbuf *w, unsigned type, const uint8_t *val, size_t n)
{
    put_varint(w, type);
    put_varint(w, n);
    put(w, val, n);
}

int macaroon_encode(const struct macaroon *m, char *out, size_t cap)
{
    uint8_t raw[MACAROON_MAX_RAW_BYTES];
    struct wbuf w = {raw, 0, sizeof(raw), false};
    static const uint8_t eos;

    if (m->identifier.n == 0 || m->sig == NULL || m->ncaveats > MACAROON_MAX_CAVEATS)
        return MACAROON_E_FIELD;
    for (size_t i = 0; i < m->ncaveats; i++)
        if (m->caveats[i].vid.p != NULL || m->caveats[i].cid.n == 0)
            return MACAROON_E_FIELD;

    if (m->version == 1) {
        put_v1(&w, "location", m->location.p, m->location.n);
        put_v1(&w, "identifier", m->identifier.p, m->identifier.n);
        for (size_t i = 0; i < m->ncaveats; i++)
            put_v1(&w, "cid", m->caveats[i].cid.p, m->caveats[i].cid.n);
        put_v1(&w, "signature", m->sig, MACAROON_SIG_BYTES);
    } else if (m->version == 2) {
        uint8_t v = 2;
        put(&w, &v, 1);
        if (m->location.n)
            put_v2(&w, V2_LOCATION, m->location.p, m->location.n);
        put_v2(&w, V2_IDENTIFIER, m->identifier.p, m->identifier.n);
        put(&w, &eos, 1);
        for (size_t i = 0; i < m->ncaveats; i++) {
            put_v2(&w, V2_IDENTIFIER, m->caveats[i].cid.p, m->caveats[i].cid.n);
            put(&w, &eos, 1);
        }
        put(&w, &eos, 1);
        put_v2(&w, V2_SIGNATURE, m->sig, MACAROON_SIG_BYTES);
    } else {
        return MACAROON_E_FIELD;
    }
    if (w.overflow || (w.n + 2) / 3 * 4 > MACAROON_MAX_TOKEN_CHARS)
        return MACAROON_E_TOO_LARGE;
    return b64url_encode(out, cap, raw, w.n);
}
