/*
 * libFuzzer target: macaroon token parsing and caveat evaluation.
 *
 * The input is tried three ways: as token text (base64 → v1/v2 parse), as a
 * raw decoded macaroon, and through cap_check_token with a fixed key so the
 * signature path runs too. Whatever parses is evaluated as caveats and must
 * re-encode to something that parses back to the same fields (first-party
 * only, within the size cap).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/caveat.h"
#include "auth/keys.h"
#include "auth/macaroon.h"

static struct cap_keys *keys;

static bool slice_eq(struct macaroon_slice a, struct macaroon_slice b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void roundtrip(const struct macaroon *m)
{
    char text[MACAROON_MAX_TOKEN_CHARS + 1];
    uint8_t buf[MACAROON_MAX_RAW_BYTES];
    struct macaroon back;
    struct cap_result r;

    (void)cap_caveats_eval(m, &r);
    int n = macaroon_encode(m, text, sizeof(text));
    if (n < 0)
        return;
    if (macaroon_decode(&back, buf, text, (size_t)n) != 0)
        abort();
    if (back.version != m->version || back.ncaveats != m->ncaveats ||
        !slice_eq(back.identifier, m->identifier) || memcmp(back.sig, m->sig, 32) != 0)
        abort();
    /* v2 drops an empty location; v1 keeps it. */
    if (m->location.n != 0 && !slice_eq(back.location, m->location))
        abort();
    for (size_t i = 0; i < m->ncaveats; i++)
        if (!slice_eq(back.caveats[i].cid, m->caveats[i].cid))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t buf[MACAROON_MAX_RAW_BYTES];
    struct macaroon m;
    struct cap_result r;

    if (keys == NULL) {
        static const uint8_t secret[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                           11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                           22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
        keys = cap_keys_new();
        if (keys == NULL || cap_keys_add(keys, "k1", 2, secret, sizeof(secret)) != 0)
            abort();
    }

    if (macaroon_decode(&m, buf, (const char *)data, size) == 0)
        roundtrip(&m);
    if (macaroon_parse(&m, data, size) == 0)
        roundtrip(&m);

    struct cap_request req = {"GET", 3, "/v1/view/x", 10, NULL, 0, 1700000000};
    if (cap_verify(keys, (const char *)data, size, &req, &r) == CAP_OK) {
        if (r.tenant_len == 0 || r.tenant[r.tenant_len] != '\0')
            abort();
    }
    return 0;
}
