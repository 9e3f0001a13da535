/*
 * macaroon — our own macaroon v1/v2 codec and HMAC-SHA256 signature chain
 * (DESIGN §7, §12).
 *
 * libmacaroons 0.3.0 overflows the heap on a token without a signature packet
 * and loops forever on a zero-length v1 packet, so client input is parsed here
 * only. The parser is pure: no allocation, no I/O, no logging; it fills a
 * struct macaroon whose slices point into the caller's decoded buffer.
 *
 * Wire formats (libmacaroons doc/format.txt, pymacaroons binary_serializer):
 *   v1: packets "HHHH<key> <value>\n", HHHH = hex length including itself;
 *       location, identifier, (cid [vid cl])*, signature (32 raw bytes).
 *   v2: 0x02, header section {1 location, 2 identifier} EOS, caveat sections
 *       {1 location, 2 identifier, 4 vid} EOS ..., EOS, 6 signature (32 bytes);
 *       field type and length are unsigned LEB128 varints, EOS is type 0.
 * Both travel as base64: url-safe or standard alphabet, padded or not, as
 * pymacaroons emits (url-safe, unpadded) and accepts.
 *
 * Signatures (pymacaroons utils.py, libmacaroons): k = HMAC(key =
 * "macaroons-key-generator", msg = root secret); sig = HMAC(k, identifier);
 * for each first-party caveat sig = HMAC(sig, cid).
 */
#ifndef AUTH_MACAROON_H
#define AUTH_MACAROON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Encoded token cap, checked before any decoding. 4 KiB keeps a bearer token
 * well inside the HTTP header cap and bounds the HMAC work per request. */
#define MACAROON_MAX_TOKEN_CHARS 4096
/* Decoded bytes can never exceed 3/4 of the encoded cap. */
#define MACAROON_MAX_RAW_BYTES (MACAROON_MAX_TOKEN_CHARS / 4 * 3)
/* Caveat count cap, checked while parsing, before any HMAC. */
#define MACAROON_MAX_CAVEATS 32
#define MACAROON_SIG_BYTES   32
#define MACAROON_KEY_BYTES   32

/* Codec errors: all negative; callers of the capability layer see them as
 * CAP_E_MALFORMED, tests and tools see the detail. */
#define MACAROON_ERR_MAP(X)                                                                        \
    X(MACAROON_E_EMPTY, -1, "empty token")                                                         \
    X(MACAROON_E_TOO_LARGE, -2, "token larger than the size cap")                                  \
    X(MACAROON_E_BASE64, -3, "invalid base64")                                                     \
    X(MACAROON_E_VERSION, -4, "unknown serialization version")                                     \
    X(MACAROON_E_TRUNCATED, -5, "packet extends past the end of the token")                        \
    X(MACAROON_E_ZERO_LENGTH, -6, "zero-length or undersized packet")                              \
    X(MACAROON_E_FIELD, -7, "unexpected or out-of-order field")                                    \
    X(MACAROON_E_NO_SIGNATURE, -8, "missing signature")                                            \
    X(MACAROON_E_SIG_LENGTH, -9, "signature is not 32 bytes")                                      \
    X(MACAROON_E_TOO_MANY_CAVEATS, -10, "too many caveats")                                        \
    X(MACAROON_E_TRAILING, -11, "bytes after the signature")                                       \
    X(MACAROON_E_EMPTY_FIELD, -12, "empty identifier or caveat id")                                \
    X(MACAROON_E_NOSPACE, -13, "output buffer too small")

enum macaroon_err {
#define MACAROON_ENUM(name, val, text) name = val,
    MACAROON_ERR_MAP(MACAROON_ENUM)
#undef MACAROON_ENUM
};

/* Bytes inside the decoded buffer; never NUL-terminated. */
struct macaroon_slice {
    const uint8_t *p;
    size_t n;
};

/* A caveat: first-party when vid.p == NULL. Third-party caveats carry a
 * verification id (and a location); they are recognised so that verification
 * can refuse them by name. */
struct macaroon_caveat {
    struct macaroon_slice cid;
    struct macaroon_slice vid;
    struct macaroon_slice cl;
};

struct macaroon {
    int version; /* 1 or 2 */
    struct macaroon_slice location;
    struct macaroon_slice identifier;
    size_t ncaveats;
    struct macaroon_caveat caveats[MACAROON_MAX_CAVEATS];
    const uint8_t *sig; /* MACAROON_SIG_BYTES bytes inside the buffer */
};

/* Human text for a MACAROON_E_* value ("unknown error" for anything else). */
const char *macaroon_strerror(int err);

/* Decode base64 text (url-safe or standard alphabet, '=' padding optional but
 * well-placed, no whitespace, zero trailing bits) into out[0..cap).
 * Returns the decoded length, or MACAROON_E_TOO_LARGE / MACAROON_E_BASE64 /
 * MACAROON_E_NOSPACE. n is checked against MACAROON_MAX_TOKEN_CHARS first. */
int macaroon_b64_decode(uint8_t *out, size_t cap, const char *in, size_t n);

/* Parse a decoded v1 or v2 macaroon of n bytes. On 0, m's slices point into
 * buf, which must outlive m. On error m's contents are unspecified. */
int macaroon_parse(struct macaroon *m, const uint8_t *buf, size_t n);

/* Base64-decode token[0..n) into buf (MACAROON_MAX_RAW_BYTES bytes) and
 * parse it. Returns 0 or a MACAROON_E_* value; m points into buf. */
int macaroon_decode(struct macaroon *m, uint8_t buf[MACAROON_MAX_RAW_BYTES], const char *token,
                    size_t n);

/* out = HMAC-SHA256(key = "macaroons-key-generator", msg = secret): the key
 * that actually signs identifiers. Keys are stored derived (src/auth/keys.c).
 * Returns 0, or -1 if OpenSSL fails. */
int macaroon_derive_key(const uint8_t *secret, size_t n, uint8_t out[MACAROON_KEY_BYTES]);

/* Recompute the signature chain of m under the derived key into out. Third-
 * party caveats are not chained (refused before this is meaningful).
 * Returns 0, or -1 if OpenSSL fails. */
int macaroon_sign(const struct macaroon *m, const uint8_t key[MACAROON_KEY_BYTES],
                  uint8_t out[MACAROON_SIG_BYTES]);

/* Constant-time check of m's signature under the derived key. */
bool macaroon_verify_sig(const struct macaroon *m, const uint8_t key[MACAROON_KEY_BYTES]);

/* Serialize m (version 1 or 2, first-party caveats only; m->sig must be set)
 * as unpadded url-safe base64 text into out[0..cap), NUL-terminated.
 * Returns the text length, or MACAROON_E_TOO_LARGE when the token would break
 * the size cap, MACAROON_E_NOSPACE when cap is too small, MACAROON_E_FIELD
 * for an empty identifier or an unsupported version. */
int macaroon_encode(const struct macaroon *m, char *out, size_t cap);

#endif
