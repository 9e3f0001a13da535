/*
 * vectors.c — golden vectors (the .hex files under testing/vectors/oap, docs/OAP.md):
 * decode → expected fields, encode → identical bytes, invalid → typed error
 * at the documented offset.
 */
#include "cas/outboard.h"
#include "oap/comp.h"
#include "oap/data.h"
#include "oap/hello.h"
#include "oap/oap.h"
#include "oap/stream.h"
#include "vec.h"

static const uint8_t TENANT[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                   0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
static const uint8_t ZERO[16];
#define ADDR "b3:ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"

struct want {
    const char *name;
    uint16_t flags, code, app;
    const uint8_t *tenant;
    uint64_t corr;
    const char *cap;
    const char *payload; /* NULL: check length only */
    size_t payload_len;
};

static const struct want VALID[] = {
    {"hello_req", OAP_FLAG_REQ, 0, 0, ZERO, 1, "",
     "{\"max_frame\":1048576,\"max_inflight\":64,\"flags\":255,\"versions\":[1]}", 0},
    {"hello_resp", OAP_FLAG_RESP, 200, 0, ZERO, 1, "",
     "{\"max_frame\":65536,\"max_inflight\":32,\"flags\":127,\"versions\":[1]}", 0},
    {"start_nocap", OAP_FLAG_REQ | OAP_FLAG_START, 0, 1, TENANT, 7, "",
     "\x00\x58{\"op\":\"GET\",\"obj\":\"" ADDR "\"}", 90},
    {"start_cap", OAP_FLAG_REQ | OAP_FLAG_START, 0, 1, TENANT, 8, "macaroon-bytes",
     "\x00\x0c{\"op\":\"PUT\"}hello", 19},
    {"data_hdr", OAP_FLAG_RESP, 200, 1, TENANT, 9, "",
     "\x00\x56{\"obj\":\"" ADDR "\",\"size\":5}hello", 93},
    {"end", OAP_FLAG_RESP | OAP_FLAG_END, 200, 1, TENANT, 10, "", "ijkl", 0},
    {"credit", OAP_FLAG_EVENT | OAP_FLAG_ACK_REQ, 0, 1, TENANT, 10, "", "\x00\x00\x00\x10", 4},
    {"comp", OAP_FLAG_RESP | OAP_FLAG_COMP, 200, 1, TENANT, 11, "", NULL, 0},
    {"proof_req", OAP_FLAG_REQ, 0, 1, TENANT, 12, "", NULL, 0},
    {"proof_resp", OAP_FLAG_RESP, 200, 1, TENANT, 12, "", NULL, 0},
};

static void check_frame(const struct want *w, const struct oap_frame *f, size_t n)
{
    size_t plen = w->payload ? (w->payload_len ? w->payload_len : strlen(w->payload)) : 0;

    cr_assert_eq(f->h.len, n, "%s len", w->name);
    cr_assert_eq(f->h.ver, 1);
    cr_assert_eq(f->h.flags, w->flags, "%s flags %x", w->name, f->h.flags);
    cr_assert_eq(f->h.code, w->code, "%s code", w->name);
    cr_assert_eq(f->h.app_proto_id, w->app, "%s app", w->name);
    cr_assert(memcmp(f->h.tenant, w->tenant, 16) == 0, "%s tenant", w->name);
    cr_assert_eq(f->h.corr_id, w->corr, "%s corr", w->name);
    cr_assert_eq(f->h.cap_len, strlen(w->cap), "%s cap_len", w->name);
    if (f->h.cap_len)
        cr_assert(memcmp(f->cap, w->cap, f->h.cap_len) == 0);
    else
        cr_assert_null(f->cap);
    cr_assert_eq(f->payload_len, n - 38 - f->h.cap_len);
    if (w->payload) {
        cr_assert_eq(f->payload_len, plen, "%s payload_len %zu", w->name, f->payload_len);
        cr_assert(memcmp(f->payload, w->payload, plen) == 0, "%s payload", w->name);
    }
}

Test(oap_vectors, valid_decode_encode)
{
    for (size_t i = 0; i < sizeof(VALID) / sizeof(VALID[0]); i++) {
        const struct want *w = &VALID[i];
        struct oap_decoder d;
        struct oap_frame f, g;
        struct guard gp;
        size_t n, used;
        uint8_t *raw = vec_load(w->name, &n);
        uint8_t *p = guard_copy(&gp, raw, n);
        uint8_t out[8192], hdr[OAP_HDR_BYTES];
        struct iovec iov[3];

        /* whole buffer: views into the input, nothing copied */
        oap_decoder_init(&d, OAP_MAX_FRAME_BYTES);
        cr_assert_eq(oap_decoder_feed(&d, p, n, &used, &f), 0, "%s", w->name);
        cr_assert_eq(used, n);
        check_frame(w, &f, n);
        cr_assert(f.payload >= p && f.payload + f.payload_len == p + n, "zero copy");
        cr_assert_null(d.buf, "no allocation for a contiguous frame");
        cr_assert_eq(oap_decoder_finish(&d), 0);

        /* encode → identical bytes, contiguous and as iovecs */
        g = f;
        g.h.len = 0;
        cr_assert_eq(oap_encode(&g, OAP_MAX_FRAME_BYTES, out, sizeof(out)), (ssize_t)n);
        cr_assert(memcmp(out, raw, n) == 0, "%s re-encodes", w->name);
        int cnt = oap_encode_iov(&g, OAP_MAX_FRAME_BYTES, hdr, iov);
        cr_assert_eq(cnt, 1 + (g.h.cap_len > 0) + (g.payload_len > 0));
        size_t pos = 0;
        for (int k = 0; k < cnt; k++) {
            cr_assert(memcmp(raw + pos, iov[k].iov_base, iov[k].iov_len) == 0);
            pos += iov[k].iov_len;
        }
        cr_assert_eq(pos, n);
        cr_assert_eq(iov[cnt - 1].iov_base, (void *)f.payload, "payload not copied");

        /* one byte at a time */
        int got = 0;
        for (size_t k = 0; k < n; k++) {
            int rc = oap_decoder_feed(&d, p + k, 1, &used, &f);
            cr_assert_eq(used, 1);
            if (rc == 0) {
                cr_assert_eq(k, n - 1);
                got = 1;
            } else {
                cr_assert_eq(rc, OAP_E_AGAIN);
            }
        }
        cr_assert(got);
        check_frame(w, &f, n);
        oap_decoder_release(&d);
        guard_free(&gp);
        free(raw);
    }
}

Test(oap_vectors, hello_payloads)
{
    const char *names[] = {"hello_req", "hello_resp"};
    struct oap_hello h[2], neg;
    char buf[256];

    for (int i = 0; i < 2; i++) {
        struct oap_frame f;
        size_t n;
        uint8_t *raw = vec_load(names[i], &n);
        cr_assert_eq(oap_hdr_parse(&f.h, raw, n, OAP_MAX_FRAME_BYTES, NULL), 0);
        cr_assert_eq(oap_hello_parse(&h[i], raw + 38, n - 38), 0);
        /* our encoder writes exactly the vector's JSON */
        cr_assert_eq(oap_hello_encode(&h[i], buf, sizeof(buf)), (ssize_t)(n - 38));
        cr_assert(memcmp(buf, raw + 38, n - 38) == 0);
        free(raw);
    }
    cr_assert_eq(h[0].max_frame, 1048576);
    cr_assert_eq(h[0].max_inflight, 64);
    cr_assert_eq(h[0].flags, 255);
    cr_assert_eq(h[1].max_frame, 65536);
    cr_assert_eq(h[1].max_inflight, 32);
    cr_assert_eq(h[1].flags, 127);
    cr_assert_eq(oap_hello_negotiate(&h[0], &h[1], &neg), 0);
    cr_assert_eq(neg.max_frame, 65536);
    cr_assert_eq(neg.max_inflight, 32);
    cr_assert_eq(neg.flags, 127);
    cr_assert_eq(neg.versions, 1);
}

Test(oap_vectors, data_and_stream)
{
    size_t n;
    uint8_t *raw = vec_load("data_hdr", &n);
    struct oap_data d;
    struct cas_addr a, want;
    json_t *hdr;

    cr_assert_eq(oap_data_parse(&d, raw + 38, n - 38, &hdr), 0);
    cr_assert_eq(oap_data_obj(hdr, &a), 1);
    cas_hash("hello", 5, &want);
    cr_assert(cas_addr_equal(&a, &want));
    cr_assert_eq(json_integer_value(json_object_get(hdr, "size")), 5);
    cr_assert_eq(d.body_len, 5);
    cr_assert(memcmp(d.body, "hello", 5) == 0);
    json_decref(hdr);
    free(raw);

    /* stream.hex: START(DATA hdr + "abcd"), middle "efgh", END "ijkl" */
    raw = vec_load("stream", &n);
    struct oap_decoder dec;
    struct oap_frame f;
    struct oap_consumer c;
    size_t used, off = 0;
    const uint16_t flags[3] = {OAP_FLAG_RESP | OAP_FLAG_START, OAP_FLAG_RESP,
                               OAP_FLAG_RESP | OAP_FLAG_END};
    oap_decoder_init(&dec, OAP_MAX_FRAME_BYTES);
    oap_consumer_init(&c, 8);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(oap_decoder_feed(&dec, raw + off, n - off, &used, &f), 0);
        off += used;
        cr_assert_eq(f.h.flags, flags[i]);
        cr_assert_eq(f.h.corr_id, 10);
        cr_assert_eq(oap_consumer_on_frame(&c, f.h.flags), 0);
        if (i == 0) {
            cr_assert_eq(oap_data_parse(&d, f.payload, f.payload_len, &hdr), 0);
            cr_assert_eq(d.body_len, 4);
            cr_assert_eq(oap_data_obj(hdr, &a), 0, "no obj member");
            json_decref(hdr);
        }
    }
    cr_assert_eq(off, n);
    cr_assert_eq(oap_decoder_finish(&dec), 0);
    oap_decoder_release(&dec);
    free(raw);

    /* credit.hex: a grant of 16 frames */
    uint32_t g;
    uint8_t buf[4], out[64];
    raw = vec_load("credit", &n);
    cr_assert_eq(oap_hdr_parse(&f.h, raw, n, OAP_MAX_FRAME_BYTES, NULL), 0);
    f.cap = NULL;
    f.payload = raw + 38;
    f.payload_len = n - 38;
    cr_assert(oap_credit_is(&f));
    cr_assert_eq(oap_credit_parse(&f, &g), 0);
    cr_assert_eq(g, 16);
    oap_credit_frame(&f, buf, 1, TENANT, 10, 16);
    cr_assert_eq(oap_encode(&f, OAP_MAX_FRAME_BYTES, out, sizeof(out)), (ssize_t)n);
    cr_assert(memcmp(out, raw, n) == 0);
    free(raw);
}

Test(oap_vectors, comp_inflates)
{
    size_t n, pn, out_len;
    uint8_t *raw = vec_load("comp", &n), *plain = vec_load("comp_plain", &pn);
    uint8_t out[8192];

    cr_assert_eq(
        oap_inflate_once(raw + 38, n - 38, out, sizeof(out), OAP_MAX_FRAME_BYTES, &out_len), 0);
    cr_assert_eq(out_len, pn);
    cr_assert(memcmp(out, plain, pn) == 0);
    /* a caller cap one byte short is a cap error, not a truncation */
    cr_assert_eq(oap_inflate_once(raw + 38, n - 38, out, pn - 1, OAP_MAX_FRAME_BYTES, &out_len),
                 OAP_E_DECOMPRESS_CAP);
    /* 8 × max_frame also caps: max_frame 512 → 4096 < 4200 */
    cr_assert_eq(oap_inflate_once(raw + 38, n - 38, out, sizeof(out), 512, &out_len),
                 OAP_E_DECOMPRESS_CAP);
    free(raw);
    free(plain);
}

struct bad {
    const char *name;
    int err;
    uint64_t off; /* UINT64_MAX: end of input */
};

static const struct bad INVALID[] = {
    {"bad_truncated", OAP_E_TRUNCATED, UINT64_MAX},
    {"bad_too_large", OAP_E_TOO_LARGE, 0},
    {"bad_len", OAP_E_BAD_LEN, 0},
    {"bad_version", OAP_E_BAD_VERSION, 4},
    {"bad_flags", OAP_E_BAD_FLAGS, 6},
    {"bad_cap_not_start", OAP_E_CAP_NOT_START, 28},
    {"bad_cap_len", OAP_E_CAP_LEN, 28},
};

Test(oap_vectors, invalid_frames)
{
    for (size_t i = 0; i < sizeof(INVALID) / sizeof(INVALID[0]); i++) {
        const struct bad *b = &INVALID[i];
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            struct oap_decoder d;
            struct oap_frame f;
            struct guard gp;
            size_t n, used, k = 0;
            uint8_t *raw = vec_load(b->name, &n);
            uint8_t *p = guard_copy(&gp, raw, n);
            int rc = OAP_E_AGAIN;

            oap_decoder_init(&d, OAP_MAX_FRAME_BYTES);
            while (k < n) {
                size_t step = bytewise ? 1 : n - k;
                rc = oap_decoder_feed(&d, p + k, step, &used, &f);
                k += used;
                cr_assert_neq(rc, 0, "%s yielded a frame", b->name);
                if (rc != OAP_E_AGAIN)
                    break;
            }
            if (rc == OAP_E_AGAIN)
                rc = oap_decoder_finish(&d);
            cr_assert_eq(rc, b->err, "%s: got %s", b->name, oap_status_name(rc));
            cr_assert_eq(oap_decoder_error_offset(&d), b->off == UINT64_MAX ? n : b->off,
                         "%s offset", b->name);
            /* sticky */
            cr_assert_eq(oap_decoder_feed(&d, p, n, &used, &f), b->err);
            cr_assert_eq(used, 0);
            if (b->err != OAP_E_TRUNCATED)
                cr_assert_null(d.buf, "%s: nothing allocated for a bad header", b->name);
            oap_decoder_release(&d);
            guard_free(&gp);
            free(raw);
        }
    }
}

Test(oap_vectors, invalid_data_headers)
{
    const char *names[] = {"bad_data_hdr", "bad_data_hdr_dup", "bad_data_hdr_array"};

    for (int i = 0; i < 3; i++) {
        struct oap_decoder d;
        struct oap_frame f;
        struct oap_data dd;
        json_t *hdr = (json_t *)1;
        size_t n, used;
        uint8_t *raw = vec_load(names[i], &n);

        oap_decoder_init(&d, OAP_MAX_FRAME_BYTES);
        cr_assert_eq(oap_decoder_feed(&d, raw, n, &used, &f), 0, "frame itself is valid");
        cr_assert_eq(oap_data_parse(&dd, f.payload, f.payload_len, &hdr), OAP_E_BAD_DATA_HDR, "%s",
                     names[i]);
        cr_assert_null(hdr);
        oap_decoder_release(&d);
        free(raw);
    }
}

Test(oap_vectors, smaller_peer_max_frame)
{
    struct oap_decoder d;
    struct oap_frame f;
    size_t n, used;
    uint8_t *raw = vec_load("start_nocap", &n);

    oap_decoder_init(&d, OAP_MAX_FRAME_BYTES);
    oap_decoder_set_max_frame(&d, (uint32_t)n - 1);
    cr_assert_eq(oap_decoder_feed(&d, raw, n, &used, &f), OAP_E_TOO_LARGE);
    cr_assert_eq(oap_decoder_error_offset(&d), 0);
    oap_decoder_release(&d);
    oap_decoder_init(&d, (uint32_t)n);
    cr_assert_eq(oap_decoder_feed(&d, raw, n, &used, &f), 0);
    oap_decoder_release(&d);
    free(raw);
}

/* proof_resp.hex: the slice proof of group 1 of a three-group object (byte
 * i = i % 251, 132072 bytes). Its header names the object and the groups;
 * its body is group 1's value and the siblings (group 0, then group 2),
 * and it climbs to the object's BLAKE3 hash (b3sum's, in the header). */
Test(oap_vectors, slice_proof)
{
    size_t n, size = 2 * 65536 + 1000;
    uint8_t *raw = vec_load("proof_resp", &n), *obj = malloc(size);
    struct oap_data d;
    struct cas_addr a, want;
    json_t *hdr;
    for (size_t i = 0; i < size; i++)
        obj[i] = (uint8_t)(i % 251);
    cr_assert_eq(oap_data_parse(&d, raw + 38, n - 38, &hdr), 0);
    cr_assert_eq(oap_data_obj(hdr, &a), 1);
    cas_hash(obj, size, &want);
    cr_assert(cas_addr_equal(&a, &want));
    cr_assert_eq(json_integer_value(json_object_get(hdr, "size")), (json_int_t)size);
    cr_assert_eq(json_integer_value(json_object_get(hdr, "groups")), 3);
    cr_assert_eq(json_integer_value(json_object_get(hdr, "first")), 1);
    cr_assert_eq(json_integer_value(json_object_get(hdr, "last")), 1);
    cr_assert_eq(d.body_len, 3 * CAS_CV_BYTES);
    cr_assert(cas_proof_verify(&a, 3, 1, 1, d.body, d.body_len));
    uint8_t cv[CAS_CV_BYTES];
    cas_group_cv(obj + 65536, 65536, 1, cv);
    cr_assert(memcmp(cv, d.body, CAS_CV_BYTES) == 0);
    cas_group_cv(obj, 65536, 0, cv);
    cr_assert(memcmp(cv, d.body + CAS_CV_BYTES, CAS_CV_BYTES) == 0, "left sibling: group 0");
    cas_group_cv(obj + 2 * 65536, 1000, 2, cv);
    cr_assert(memcmp(cv, d.body + 2 * CAS_CV_BYTES, CAS_CV_BYTES) == 0, "right: group 2");
    json_decref(hdr);
    free(obj);
    free(raw);
}
