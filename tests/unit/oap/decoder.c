/*
 * decoder.c — property tests for the incremental decoder (seeded PRNG):
 * random valid frame sequences cut at random points decode to the same
 * frames; random mutations give a frame or a typed error, never a crash.
 */
#include "oap/oap.h"
#include "vec.h"

#define SEQ_FRAMES 40

struct gen {
    struct oap_frame f[SEQ_FRAMES];
    uint8_t *bytes;
    size_t len;
    size_t ends[SEQ_FRAMES]; /* stream offset where frame i ends */
};

/* Build a random valid sequence: mostly small frames, some over 64 KiB so
 * they straddle any feed. */
static void gen_seq(struct gen *g, uint64_t *seed)
{
    static uint8_t pool[200000];
    size_t cap = 0;

    for (size_t i = 0; i < sizeof(pool); i++)
        pool[i] = (uint8_t)prng_next(seed);
    for (int i = 0; i < SEQ_FRAMES; i++) {
        struct oap_frame *f = &g->f[i];
        memset(f, 0, sizeof(*f));
        f->h.flags = (uint16_t)(prng_next(seed) & OAP_FLAGS_KNOWN);
        f->h.code = (uint16_t)prng_next(seed);
        f->h.app_proto_id = (uint16_t)prng_below(seed, 5);
        for (int k = 0; k < 16; k++)
            f->h.tenant[k] = (uint8_t)prng_next(seed);
        f->h.corr_id = prng_next(seed);
        if (f->h.flags & OAP_FLAG_START) {
            f->h.cap_len = (uint16_t)prng_below(seed, 300);
            f->cap = f->h.cap_len ? pool + prng_below(seed, 1000) : NULL;
        }
        f->payload_len =
            prng_below(seed, 8) == 0 ? 60000 + prng_below(seed, 40000) : prng_below(seed, 2000);
        f->payload = f->payload_len ? pool + prng_below(seed, 1000) : NULL;
        cap += OAP_HDR_BYTES + f->h.cap_len + f->payload_len;
    }
    g->bytes = malloc(cap);
    cr_assert(g->bytes);
    g->len = 0;
    for (int i = 0; i < SEQ_FRAMES; i++) {
        ssize_t n = oap_encode(&g->f[i], OAP_MAX_FRAME_BYTES, g->bytes + g->len, cap - g->len);
        cr_assert_gt(n, 0);
        g->len += (size_t)n;
        g->ends[i] = g->len;
    }
}

static void same_frame(const struct oap_frame *a, const struct oap_frame *b)
{
    cr_assert_eq(a->h.len, b->h.len);
    cr_assert_eq(a->h.flags, b->h.flags);
    cr_assert_eq(a->h.code, b->h.code);
    cr_assert_eq(a->h.app_proto_id, b->h.app_proto_id);
    cr_assert(memcmp(a->h.tenant, b->h.tenant, 16) == 0);
    cr_assert_eq(a->h.cap_len, b->h.cap_len);
    cr_assert_eq(a->h.corr_id, b->h.corr_id);
    cr_assert_eq(a->payload_len, b->payload_len);
    if (a->h.cap_len)
        cr_assert(memcmp(a->cap, b->cap, a->h.cap_len) == 0);
    if (a->payload_len)
        cr_assert(memcmp(a->payload, b->payload, a->payload_len) == 0);
}

/* Decode g->bytes in pieces of random size in [1, maxstep]. */
static void decode_split(struct gen *g, uint64_t *seed, size_t maxstep)
{
    struct oap_decoder d;
    struct oap_frame f;
    size_t pos = 0, used;
    int idx = 0;

    oap_decoder_init(&d, OAP_MAX_FRAME_BYTES);
    while (pos < g->len) {
        size_t step = 1 + prng_below(seed, maxstep);
        size_t end = pos + step > g->len ? g->len : pos + step;
        /* copy each piece into its own heap block, freed after use: a view
         * kept into an old piece, or an over-read, trips ASan/valgrind */
        size_t plen = end - pos;
        uint8_t *piece = malloc(plen);
        cr_assert(piece);
        memcpy(piece, g->bytes + pos, plen);
        size_t k = 0;
        while (k < plen) {
            int rc = oap_decoder_feed(&d, piece + k, plen - k, &used, &f);
            k += used;
            if (rc == OAP_E_AGAIN) {
                cr_assert_eq(k, plen);
                break;
            }
            cr_assert_eq(rc, 0, "rc %s at %zu", oap_status_name(rc), pos + k);
            cr_assert_lt(idx, SEQ_FRAMES);
            cr_assert_eq(pos + k, g->ends[idx], "frame %d ends at the right offset", idx);
            same_frame(&f, &g->f[idx]);
            idx++;
        }
        free(piece);
        pos = end;
    }
    cr_assert_eq(idx, SEQ_FRAMES);
    cr_assert_eq(oap_decoder_finish(&d), 0);
    oap_decoder_release(&d);
}

Test(oap_decoder, random_splits)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 20; round++) {
        struct gen g;
        gen_seq(&g, &seed);
        decode_split(&g, &seed, round % 2 ? 100 : 70000);
        free(g.bytes);
    }
}

Test(oap_decoder, one_byte_at_a_time)
{
    uint64_t seed = 42;
    struct gen g;
    gen_seq(&g, &seed);
    decode_split(&g, &seed, 1);
    free(g.bytes);
}

Test(oap_decoder, random_mutations)
{
    uint64_t seed = 7;
    int frames = 0, errors = 0;

    for (int round = 0; round < 300; round++) {
        struct gen g;
        struct oap_decoder d;
        struct oap_frame f;
        size_t pos = 0, used;
        int rc = OAP_E_AGAIN;

        gen_seq(&g, &seed);
        /* flip bytes, mostly in headers where they matter */
        int muts = 1 + (int)prng_below(&seed, 8);
        for (int m = 0; m < muts; m++) {
            int which = (int)prng_below(&seed, SEQ_FRAMES);
            size_t start = which ? g.ends[which - 1] : 0;
            size_t at = prng_below(&seed, 2) ? start + prng_below(&seed, OAP_HDR_BYTES)
                                             : prng_below(&seed, g.len);
            g.bytes[at] ^= (uint8_t)(1 + prng_below(&seed, 255));
        }
        if (prng_below(&seed, 4) == 0)
            g.len = prng_below(&seed, g.len);
        oap_decoder_init(&d, (uint32_t)(1000 + prng_below(&seed, OAP_MAX_FRAME_BYTES)));
        while (pos < g.len) {
            size_t step = 1 + prng_below(&seed, 5000);
            if (step > g.len - pos)
                step = g.len - pos;
            rc = oap_decoder_feed(&d, g.bytes + pos, step, &used, &f);
            cr_assert_leq(used, step);
            pos += used;
            if (rc == 0) {
                frames++;
                cr_assert_geq(f.h.len, OAP_HDR_BYTES);
                cr_assert_leq(f.h.len, d.max_frame);
                cr_assert_eq(f.h.ver, 1);
                cr_assert_eq(f.h.flags & ~OAP_FLAGS_KNOWN, 0);
                cr_assert(f.h.cap_len == 0 || (f.h.flags & OAP_FLAG_START));
                cr_assert_eq(OAP_HDR_BYTES + f.h.cap_len + f.payload_len, f.h.len);
                continue;
            }
            if (rc == OAP_E_AGAIN)
                continue;
            break;
        }
        if (rc == OAP_E_AGAIN || rc == 0)
            rc = oap_decoder_finish(&d);
        if (rc) {
            errors++;
            cr_assert_neq(strcmp(oap_status_name(rc), "unknown"), 0);
            cr_assert_lt(rc, OAP_E_AGAIN, "a typed error");
            cr_assert_leq(oap_decoder_error_offset(&d), g.len);
        }
        oap_decoder_release(&d);
        free(g.bytes);
    }
    cr_assert_gt(frames, 0);
    cr_assert_gt(errors, 0);
}

Test(oap_decoder, status_names_unique)
{
    for (int a = OAP_E_STATE; a <= OAP_OK; a++) {
        cr_assert_neq(strcmp(oap_status_name(a), "unknown"), 0);
        cr_assert_neq(strcmp(oap_strerror(a), "unknown status"), 0);
        for (int b = OAP_E_STATE; b < a; b++)
            cr_assert_neq(strcmp(oap_status_name(a), oap_status_name(b)), 0);
    }
    cr_assert_str_eq(oap_status_name(1), "unknown");
    cr_assert_str_eq(oap_status_name(OAP_E_TOO_LARGE), "too_large");
}

Test(oap_decoder, big_frame_buffer_released)
{
    static uint8_t payload[200000];
    static uint8_t wire[OAP_HDR_BYTES + sizeof(payload)];
    struct oap_frame f = {.payload = payload, .payload_len = sizeof(payload)};
    struct oap_decoder d;
    size_t used;

    cr_assert_eq(oap_encode(&f, OAP_MAX_FRAME_BYTES, wire, sizeof(wire)), (ssize_t)sizeof(wire));
    oap_decoder_init(&d, OAP_MAX_FRAME_BYTES);
    cr_assert_eq(oap_decoder_feed(&d, wire, 100, &used, &f), OAP_E_AGAIN);
    cr_assert_eq(d.buf_cap, sizeof(wire), "buffer sized by the validated len");
    cr_assert_eq(oap_decoder_feed(&d, wire + 100, sizeof(wire) - 100, &used, &f), 0);
    cr_assert_eq(f.payload, d.buf + OAP_HDR_BYTES);
    /* next feed drops the big buffer before anything else */
    cr_assert_eq(oap_decoder_feed(&d, wire, 10, &used, &f), OAP_E_AGAIN);
    cr_assert_null(d.buf);
    oap_decoder_release(&d);
}

Test(oap_decoder, encoder_rejects)
{
    uint8_t hdr[OAP_HDR_BYTES], out[64];
    struct iovec iov[3];
    struct oap_frame f = {0};
    static uint8_t big[OAP_MAX_FRAME_BYTES];

    f.h.flags = 0x100;
    cr_assert_eq(oap_encode_iov(&f, OAP_MAX_FRAME_BYTES, hdr, iov), OAP_E_BAD_FLAGS);
    f.h.flags = OAP_FLAG_REQ;
    f.h.cap_len = 3;
    f.cap = (const uint8_t *)"cap";
    cr_assert_eq(oap_encode_iov(&f, OAP_MAX_FRAME_BYTES, hdr, iov), OAP_E_CAP_NOT_START);
    f.h.flags |= OAP_FLAG_START;
    cr_assert_eq(oap_encode_iov(&f, OAP_MAX_FRAME_BYTES, hdr, iov), 2);
    cr_assert_eq(oap_encode(&f, OAP_MAX_FRAME_BYTES, out, 40), OAP_E_BUF_SMALL);
    f.payload = big;
    f.payload_len = sizeof(big) - OAP_HDR_BYTES - 3;
    cr_assert_eq(oap_encode_iov(&f, OAP_MAX_FRAME_BYTES, hdr, iov), 3, "exactly 1 MiB");
    f.payload_len++;
    cr_assert_eq(oap_encode_iov(&f, OAP_MAX_FRAME_BYTES, hdr, iov), OAP_E_TOO_LARGE);
    f.payload_len = 10;
    cr_assert_eq(oap_encode_iov(&f, 50, hdr, iov), OAP_E_TOO_LARGE, "peer's max_frame");
}
