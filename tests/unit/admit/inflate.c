/*
 * inflate.c — the decompression guard: Content-Encoding lists, round trips
 * however the input is cut, bombs (built here with zlib and zstd), streams
 * that lie about their size, truncation, trailing bytes, both caps at their
 * exact boundary, bounded memory, out-of-memory paths.
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "admit/inflate.h"
#include "tests/unit/fault.h"

/* ---- building inputs ------------------------------------------------------ */

struct bytes {
    uint8_t *p;
    size_t n;
};

/* Text-like bytes that compress about 3:1. */
static struct bytes text(size_t n, uint64_t seed)
{
    static const char *const WORDS[] = {"view ",   "object ", "b3:",      "mailbox ",
                                        "{\"k\":", "42, ",    "hydrate ", "\n"};
    struct bytes b = {malloc(n), n};
    cr_assert(b.p);
    size_t i = 0;
    while (i < n) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        const char *w = WORDS[(seed >> 33) % 8];
        for (size_t k = 0; w[k] && i < n; k++)
            b.p[i++] = (uint8_t)(w[k] + ((seed >> 40) % 3 == 0 ? (int)((seed >> 50) % 5) : 0));
    }
    return b;
}

/* zlib's deflate of `total` bytes of `fill` (streamed, so the plaintext is
 * never held): window_bits 15 + 16 = gzip, 15 = zlib, -15 = raw. */
static struct bytes zlib_of(const uint8_t *src, size_t n, uint64_t total, int fill, int window_bits,
                            int level)
{
    static uint8_t chunk[1 << 16];
    z_stream s = {0};
    cr_assert_eq(deflateInit2(&s, level, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = 1 << 16;
    struct bytes out = {malloc(cap), 0};
    memset(chunk, fill, sizeof(chunk));
    uint64_t done = 0;
    if (src)
        total = n;
    int rc;
    do {
        size_t take = total - done < sizeof(chunk) ? (size_t)(total - done) : sizeof(chunk);
        s.next_in = (Bytef *)(src ? src + done : chunk);
        s.avail_in = (uInt)take;
        done += take;
        int flush = done == total ? Z_FINISH : Z_NO_FLUSH;
        do {
            if (cap - out.n < 1 << 15)
                cr_assert((out.p = realloc(out.p, cap *= 2)) != NULL);
            s.next_out = out.p + out.n;
            s.avail_out = (uInt)(cap - out.n);
            rc = deflate(&s, flush);
            cr_assert(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
            out.n = cap - s.avail_out;
        } while (s.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
    } while (done < total);
    deflateEnd(&s);
    return out;
}

static struct bytes gz(const struct bytes *b)
{
    return zlib_of(b->p, b->n, 0, 0, 15 + 16, 6);
}

/* zstd of src (or of `total` zeros, streamed), with or without the content
 * size in the frame header, with a window of 2^window_log. */
static struct bytes zstd_of(const uint8_t *src, size_t n, uint64_t total, bool size_known,
                            int window_log, bool checksum)
{
    static uint8_t zeros[1 << 16];
    ZSTD_CCtx *c = ZSTD_createCCtx();
    cr_assert(c);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, size_known);
    if (src)
        total = n;
    if (size_known)
        ZSTD_CCtx_setPledgedSrcSize(c, total);
    size_t cap = ZSTD_compressBound(src ? n : sizeof(zeros)) + (1 << 16);
    struct bytes out = {malloc(cap), 0};
    uint64_t done = 0;
    size_t rem;
    do {
        size_t take = total - done < sizeof(zeros) ? (size_t)(total - done) : sizeof(zeros);
        ZSTD_inBuffer in = {src ? src + done : zeros, take, 0};
        done += take;
        ZSTD_EndDirective e = done == total ? ZSTD_e_end : ZSTD_e_continue;
        do {
            if (cap - out.n < ZSTD_CStreamOutSize())
                cr_assert((out.p = realloc(out.p, cap *= 2)) != NULL);
            ZSTD_outBuffer o = {out.p + out.n, cap - out.n, 0};
            rem = ZSTD_compressStream2(c, &o, &in, e);
            cr_assert(!ZSTD_isError(rem), "%s", ZSTD_getErrorName(rem));
            out.n += o.pos;
        } while (in.pos < in.size || (e == ZSTD_e_end && rem != 0));
    } while (done < total);
    ZSTD_freeCCtx(c);
    return out;
}

static struct bytes zst(const struct bytes *b)
{
    return zstd_of(b->p, b->n, 0, true, 20, true);
}

static struct bytes copy_of(const struct bytes *a)
{
    struct bytes c = {malloc(a->n + 1), a->n};
    memcpy(c.p, a->p, a->n);
    return c;
}

static struct bytes cat(const struct bytes *a, const struct bytes *b)
{
    struct bytes c = {malloc(a->n + b->n + 1), a->n + b->n};
    memcpy(c.p, a->p, a->n);
    memcpy(c.p + a->n, b->p, b->n);
    return c;
}

/* ---- running the decoder -------------------------------------------------- */

static const struct admit_inflate_limits BIG = {64 << 20, 0, 0};

struct result {
    int rc; /* 0 whole, -1 refused */
    enum og_err err;
    const char *reason;
    struct buf out;
    uint64_t in, produced;
};

/* Decode in pieces of `step` bytes (0 = all at once), then end. */
static struct result decode(enum admit_coding c, const struct bytes *in, size_t step,
                            const struct admit_inflate_limits *lim)
{
    struct result r = {0};
    struct admit_inflate *z = admit_inflate_new(c, lim);
    cr_assert(z);
    size_t off = 0;
    do {
        size_t k = step && in->n - off > step ? step : in->n - off;
        r.rc = admit_inflate_feed(z, in->p + off, k, &r.out);
        off += k;
    } while (r.rc == 0 && off < in->n);
    if (r.rc == 0)
        r.rc = admit_inflate_end(z);
    if (r.rc != 0)
        r.err = admit_inflate_error(z, &r.reason);
    r.in = admit_inflate_in(z);
    r.produced = admit_inflate_out(z);
    cr_assert_eq(r.produced, r.out.n);
    admit_inflate_free(z);
    return r;
}

static void expect_plain(enum admit_coding c, const struct bytes *enc, const struct bytes *plain,
                         size_t step)
{
    struct result r = decode(c, enc, step, &BIG);
    cr_assert_eq(r.rc, 0, "step %zu: %s", step, r.reason ? r.reason : "");
    cr_assert_eq(r.out.n, plain->n, "step %zu", step);
    cr_assert(memcmp(r.out.p, plain->p, plain->n) == 0, "step %zu", step);
    cr_assert_eq(r.in, enc->n);
    buf_release(&r.out);
}

static void expect_refused(enum admit_coding c, const struct bytes *enc, size_t step,
                           const struct admit_inflate_limits *lim, enum og_err want)
{
    struct result r = decode(c, enc, step, lim);
    cr_assert_eq(r.rc, -1, "step %zu: accepted", step);
    cr_assert_eq(r.err, want, "step %zu: %s (%s)", step, og_err_code(r.err), r.reason);
    cr_assert(r.reason && *r.reason);
    buf_release(&r.out);
}

static const size_t STEPS[] = {0, 1, 2, 3, 7, 100, 4096, 65536};
#define NSTEPS (sizeof(STEPS) / sizeof(STEPS[0]))

/* ---- Content-Encoding ----------------------------------------------------- */

static int parse(const char *v, enum admit_coding *c)
{
    const char *why = NULL;
    int rc = admit_coding_parse((struct slice){v, strlen(v)}, c, &why);
    cr_assert(rc == 0 || (why && *why));
    return rc;
}

Test(admit_coding, lists_tokens_and_identity)
{
    static const struct {
        const char *v;
        int rc;
        enum admit_coding c;
    } CASES[] = {
        {"gzip", 0, ADMIT_CODING_GZIP},
        {"GZip", 0, ADMIT_CODING_GZIP},
        {" x-gzip\t", 0, ADMIT_CODING_GZIP},
        {"deflate", 0, ADMIT_CODING_DEFLATE},
        {"zstd", 0, ADMIT_CODING_ZSTD},
        {"identity", 0, ADMIT_CODING_IDENTITY},
        {"IDENTITY", 0, ADMIT_CODING_IDENTITY},
        {"", 0, ADMIT_CODING_IDENTITY},
        {" , ,", 0, ADMIT_CODING_IDENTITY},
        {"identity, zstd", 0, ADMIT_CODING_ZSTD},
        {"gzip ,identity,", 0, ADMIT_CODING_GZIP},
        {",,deflate,,", 0, ADMIT_CODING_DEFLATE},
        /* stacked */
        {"gzip, gzip", -1, 0},
        {"gzip,zstd", -1, 0},
        {"deflate, identity, gzip", -1, 0},
        /* unknown, or not a list of tokens */
        {"br", -1, 0},
        {"compress", -1, 0},
        {"x-compress", -1, 0},
        {"gzip2", -1, 0},
        {"gzip;q=1", -1, 0},
        {"gzip zstd", -1, 0},
        {"\"gzip\"", -1, 0},
        {"gz\x01ip", -1, 0},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        enum admit_coding c = ADMIT_CODING_IDENTITY;
        cr_assert_eq(parse(CASES[i].v, &c), CASES[i].rc, "\"%s\"", CASES[i].v);
        if (CASES[i].rc == 0)
            cr_assert_eq(c, CASES[i].c, "\"%s\"", CASES[i].v);
    }
}

Test(admit_coding, fields_fold_into_one_list)
{
    /* Content-Encoding: gzip + Content-Encoding: deflate = stacked */
    enum admit_coding c = ADMIT_CODING_IDENTITY;
    cr_assert_eq(parse("gzip", &c), 0);
    cr_assert_eq(parse("identity", &c), 0);
    cr_assert_eq(c, ADMIT_CODING_GZIP);
    cr_assert_eq(parse("deflate", &c), -1);
    c = ADMIT_CODING_IDENTITY;
    cr_assert_eq(parse("zstd", &c), 0);
    cr_assert_eq(parse("zstd", &c), -1, "the same coding twice is stacked too");
    cr_assert_str_eq(admit_coding_name(ADMIT_CODING_ZSTD), "zstd");
    cr_assert_str_eq(admit_coding_name(ADMIT_CODING_IDENTITY), "identity");
}

/* ---- round trips ---------------------------------------------------------- */

Test(admit_inflate, every_coding_round_trips_however_cut)
{
    struct bytes plain = text(300000, 1);
    struct bytes g = gz(&plain), zl = zlib_of(plain.p, plain.n, 0, 0, 15, 6),
                 raw = zlib_of(plain.p, plain.n, 0, 0, -15, 6), zs = zst(&plain),
                 zs_unsized = zstd_of(plain.p, plain.n, 0, false, 22, false);
    cr_assert_lt(g.n, plain.n / 2);
    for (size_t i = 0; i < NSTEPS; i++) {
        expect_plain(ADMIT_CODING_GZIP, &g, &plain, STEPS[i]);
        expect_plain(ADMIT_CODING_GZIP, &zl, &plain, STEPS[i]); /* windowBits 15 + 32 */
        expect_plain(ADMIT_CODING_DEFLATE, &zl, &plain, STEPS[i]);
        expect_plain(ADMIT_CODING_DEFLATE, &raw, &plain, STEPS[i]);
        expect_plain(ADMIT_CODING_ZSTD, &zs, &plain, STEPS[i]);
        expect_plain(ADMIT_CODING_ZSTD, &zs_unsized, &plain, STEPS[i]);
    }
    free(plain.p), free(g.p), free(zl.p), free(raw.p), free(zs.p), free(zs_unsized.p);
}

Test(admit_inflate, gzip_members_and_zstd_frames_concatenate)
{
    struct bytes a = text(5000, 2), b = text(70000, 3);
    struct bytes ab = cat(&a, &b);
    struct bytes ga = gz(&a), gb = gz(&b), za = zst(&a), zb = zst(&b);
    struct bytes g2 = cat(&ga, &gb), z2 = cat(&za, &zb);
    /* A zstd skippable frame (magic 0x184D2A50, 4 bytes of content). */
    static const uint8_t SKIP[] = {0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4};
    struct bytes skip = {(uint8_t *)SKIP, sizeof(SKIP)};
    struct bytes z3 = cat(&skip, &z2);
    for (size_t i = 0; i < NSTEPS; i++) {
        expect_plain(ADMIT_CODING_GZIP, &g2, &ab, STEPS[i]);
        expect_plain(ADMIT_CODING_ZSTD, &z2, &ab, STEPS[i]);
        expect_plain(ADMIT_CODING_ZSTD, &z3, &ab, STEPS[i]);
    }
    /* a zlib stream is one stream: a second one after it is trailing data */
    struct bytes da = zlib_of(a.p, a.n, 0, 0, 15, 6), db = zlib_of(b.p, b.n, 0, 0, 15, 6);
    struct bytes d2 = cat(&da, &db);
    expect_refused(ADMIT_CODING_DEFLATE, &d2, 0, &BIG, OG_E_BAD_REQUEST);
    free(a.p), free(b.p), free(ab.p), free(ga.p), free(gb.p), free(za.p), free(zb.p);
    free(g2.p), free(z2.p), free(z3.p), free(da.p), free(db.p), free(d2.p);
}

Test(admit_inflate, trailing_bytes_are_refused)
{
    struct bytes plain = text(2000, 4), junk = {(uint8_t *)"\0\0\0\0x", 5};
    struct bytes encs[] = {gz(&plain), zlib_of(plain.p, plain.n, 0, 0, -15, 6), zst(&plain)};
    enum admit_coding cs[] = {ADMIT_CODING_GZIP, ADMIT_CODING_DEFLATE, ADMIT_CODING_ZSTD};
    for (size_t i = 0; i < 3; i++) {
        struct bytes e = cat(&encs[i], &junk);
        for (size_t s = 0; s < NSTEPS; s++)
            expect_refused(cs[i], &e, STEPS[s], &BIG, OG_E_BAD_REQUEST);
        free(e.p), free(encs[i].p);
    }
    free(plain.p);
}

/* ---- truncation ----------------------------------------------------------- */

Test(admit_inflate, every_truncation_is_400)
{
    struct bytes plain = text(3000, 5);
    struct bytes encs[] = {gz(&plain), zlib_of(plain.p, plain.n, 0, 0, 15, 6),
                           zlib_of(plain.p, plain.n, 0, 0, -15, 6), zst(&plain),
                           zstd_of(plain.p, plain.n, 0, false, 20, false)};
    enum admit_coding cs[] = {ADMIT_CODING_GZIP, ADMIT_CODING_DEFLATE, ADMIT_CODING_DEFLATE,
                              ADMIT_CODING_ZSTD, ADMIT_CODING_ZSTD};
    for (size_t i = 0; i < 5; i++) {
        for (size_t k = 0; k < encs[i].n; k++) {
            struct bytes cut = {encs[i].p, k};
            struct result r = decode(cs[i], &cut, k % 2 ? 1 : 0, &BIG);
            cr_assert_eq(r.rc, -1, "coding %zu cut at %zu of %zu accepted", i, k, encs[i].n);
            cr_assert_eq(r.err, OG_E_BAD_REQUEST, "%s", r.reason);
            cr_assert_leq(r.out.n, plain.n);
            cr_assert(memcmp(r.out.p ? r.out.p : "", plain.p, r.out.n) == 0,
                      "what was decoded is a prefix of the body");
            buf_release(&r.out);
        }
        free(encs[i].p);
    }
    struct result r = decode(ADMIT_CODING_GZIP, &(struct bytes){(uint8_t *)"", 0}, 0, &BIG);
    cr_assert_eq(r.rc, -1, "no byte at all is not a gzip stream");
    cr_assert_str_eq(r.reason, "truncated gzip body");
    buf_release(&r.out);
    free(plain.p);
}

/* ---- corrupt and lying streams ------------------------------------------- */

Test(admit_inflate, gzip_trailer_that_lies_about_the_size)
{
    struct bytes plain = text(20000, 6);
    struct bytes g = gz(&plain);
    /* ISIZE (the last 4 bytes, little-endian) claims 100 bytes. */
    memcpy(g.p + g.n - 4, "\x64\0\0\0", 4);
    expect_refused(ADMIT_CODING_GZIP, &g, 0, &BIG, OG_E_BAD_REQUEST);
    /* A size-lying bomb: 16 MiB of zeros whose trailer says 100 bytes is
     * stopped by the caps long before the trailer is read. */
    struct bytes bomb = zlib_of(NULL, 0, 16 << 20, 0, 15 + 16, 9);
    memcpy(bomb.p + bomb.n - 4, "\x64\0\0\0", 4);
    struct admit_inflate_limits lim = {1 << 20, 0, 0};
    expect_refused(ADMIT_CODING_GZIP, &bomb, 0, &lim, OG_E_DECOMPRESS_CAP);
    /* a flipped data byte: the CRC (or the stream itself) catches it */
    free(g.p);
    g = gz(&plain);
    g.p[g.n / 2] ^= 0x55;
    expect_refused(ADMIT_CODING_GZIP, &g, 0, &BIG, OG_E_BAD_REQUEST);
    free(plain.p), free(g.p), free(bomb.p);
}

Test(admit_inflate, deflate_stored_block_that_lies_about_its_length)
{
    /* Raw deflate, one final stored block: BFINAL=1 BTYPE=00, LEN, ~LEN. */
    uint8_t blk[5 + 10] = {0x01, 0xff, 0xff, 0x00, 0x00};
    memset(blk + 5, 'a', 10);
    struct bytes b = {blk, sizeof(blk)};
    /* says 65535 bytes, carries 10: truncated */
    expect_refused(ADMIT_CODING_DEFLATE, &b, 0, &BIG, OG_E_BAD_REQUEST);
    /* LEN and NLEN disagree */
    blk[1] = 10, blk[2] = 0, blk[3] = 0x00, blk[4] = 0x00;
    expect_refused(ADMIT_CODING_DEFLATE, &b, 0, &BIG, OG_E_BAD_REQUEST);
    /* honest: 10 bytes */
    blk[3] = 0xf5, blk[4] = 0xff;
    struct bytes ten = {(uint8_t *)"aaaaaaaaaa", 10};
    expect_plain(ADMIT_CODING_DEFLATE, &b, &ten, 0);
    expect_plain(ADMIT_CODING_DEFLATE, &b, &ten, 1);
}

/* The zstd frame header's Frame_Content_Size, single-segment, 2 bytes
 * (FCS_Field_Size 2 holds the size - 256). */
Test(admit_inflate, zstd_content_size_that_lies)
{
    struct bytes plain = text(3000, 7);
    struct bytes z = zstd_of(plain.p, plain.n, 0, true, 20, false);
    /* magic (4), descriptor: FCS flag 01 (2 bytes), single segment */
    cr_assert_eq(z.p[4] & 0xe0, 0x60, "descriptor %#x", z.p[4]);
    uint16_t fcs = (uint16_t)(z.p[5] | z.p[6] << 8);
    cr_assert_eq(fcs + 256, plain.n);
    for (int delta = -1000; delta <= 1000; delta += 1000) {
        if (delta == 0)
            continue;
        struct bytes lie = copy_of(&z);
        uint16_t v = (uint16_t)(fcs + delta);
        lie.p[5] = (uint8_t)v, lie.p[6] = (uint8_t)(v >> 8);
        for (size_t s = 0; s < NSTEPS; s++)
            expect_refused(ADMIT_CODING_ZSTD, &lie, STEPS[s], &BIG, OG_E_BAD_REQUEST);
        free(lie.p);
    }
    /* A header claiming 2^40 bytes in one segment needs a 2^40 window. */
    static const uint8_t HUGE_FCS[] = {0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0};
    struct bytes h = {(uint8_t *)HUGE_FCS, sizeof(HUGE_FCS)};
    expect_refused(ADMIT_CODING_ZSTD, &h, 0, &BIG, OG_E_DECOMPRESS_CAP);
    free(plain.p), free(z.p);
}

Test(admit_inflate, zstd_window_over_8_mib_is_refused)
{
    /* 9 MiB of zeros with an unknown size and a 16 MiB window: the header
     * asks for the window before any block. */
    struct bytes big = zstd_of(NULL, 0, 9 << 20, false, 24, false);
    expect_refused(ADMIT_CODING_ZSTD, &big, 0, &BIG, OG_E_DECOMPRESS_CAP);
    /* A frame that declares both its content size and a window larger than
     * it needs: refused whether it arrives whole (libzstd's one-pass path
     * would skip the window check) or in pieces. Window descriptor: byte 5,
     * windowLog = 10 + (byte >> 3). */
    struct bytes plain = text(3000, 12);
    struct bytes small = zstd_of(plain.p, plain.n, 0, true, 10, false);
    cr_assert_eq(small.p[4], 0x40, "FCS in 2 bytes, a window descriptor, no checksum");
    cr_assert_eq(small.p[5], 0x00, "a 1 KiB window");
    static const uint8_t WINDOWS[] = {0x70 /* 16 MiB */, 0xa0 /* 1 GiB */};
    for (size_t w = 0; w < 2; w++) {
        small.p[5] = WINDOWS[w];
        for (size_t s = 0; s < NSTEPS; s++)
            expect_refused(ADMIT_CODING_ZSTD, &small, STEPS[s], &BIG, OG_E_DECOMPRESS_CAP);
    }
    small.p[5] = 0x68; /* 8 MiB: allowed */
    for (size_t s = 0; s < NSTEPS; s++)
        expect_plain(ADMIT_CODING_ZSTD, &small, &plain, STEPS[s]);
    free(plain.p), free(small.p);
    struct bytes ok = zstd_of(NULL, 0, 9 << 20, false, 23, false);
    struct result r = decode(ADMIT_CODING_ZSTD, &ok, 0, &BIG);
    cr_assert_eq(r.rc, 0, "%s", r.reason);
    cr_assert_eq(r.out.n, 9 << 20);
    buf_release(&r.out);
    free(big.p), free(ok.p);
}

Test(admit_inflate, garbage_and_dictionaries_are_400)
{
    struct bytes junk = {(uint8_t *)"this is not compressed at all", 29};
    expect_refused(ADMIT_CODING_GZIP, &junk, 0, &BIG, OG_E_BAD_REQUEST);
    expect_refused(ADMIT_CODING_ZSTD, &junk, 0, &BIG, OG_E_BAD_REQUEST);
    /* raw deflate of junk: BTYPE 11 is invalid ('t' = 0x74 → 10, ...) */
    struct result r = decode(ADMIT_CODING_DEFLATE, &junk, 0, &BIG);
    cr_assert_eq(r.rc, -1);
    buf_release(&r.out);
    /* a zlib stream that needs a preset dictionary */
    z_stream s = {0};
    uint8_t out[256];
    cr_assert_eq(deflateInit(&s, 6), Z_OK);
    cr_assert_eq(deflateSetDictionary(&s, (const Bytef *)"dictionary", 10), Z_OK);
    s.next_in = (Bytef *)"dictionary words";
    s.avail_in = 16;
    s.next_out = out;
    s.avail_out = sizeof(out);
    cr_assert_eq(deflate(&s, Z_FINISH), Z_STREAM_END);
    struct bytes d = {out, sizeof(out) - s.avail_out};
    deflateEnd(&s);
    r = decode(ADMIT_CODING_DEFLATE, &d, 0, &BIG);
    cr_assert_eq(r.rc, -1);
    cr_assert_str_eq(r.reason, "deflate stream needs a preset dictionary");
    buf_release(&r.out);
}

Test(admit_inflate, only_rfc8878_frames_however_cut)
{
    /* A byte before a pre-1.0 ("legacy", v0.7) zstd magic number: libzstd
     * would decode the legacy frame when the first byte came alone. Every
     * cut refuses it, and a legacy frame after a good one too. */
    static const uint8_t legacy[] = {0x28, 0x27, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 0};
    struct bytes l = {(uint8_t *)legacy, sizeof(legacy)};
    for (size_t i = 0; i < NSTEPS; i++)
        expect_refused(ADMIT_CODING_ZSTD, &l, STEPS[i], &BIG, OG_E_BAD_REQUEST);
    struct bytes v07 = {(uint8_t *)legacy + 1, sizeof(legacy) - 1};
    struct bytes plain = text(1000, 7);
    struct bytes good = zst(&plain);
    struct bytes both = cat(&good, &v07);
    for (size_t i = 0; i < NSTEPS; i++) {
        expect_refused(ADMIT_CODING_ZSTD, &v07, STEPS[i], &BIG, OG_E_BAD_REQUEST);
        struct result r = decode(ADMIT_CODING_ZSTD, &both, STEPS[i], &BIG);
        cr_assert_eq(r.rc, -1, "step %zu", STEPS[i]);
        cr_assert_str_eq(r.reason, "not a zstd frame (RFC 8878 frames only)");
        buf_release(&r.out);
    }
    /* Part of a next frame's magic number is a cut body, not trailing
     * bytes to ignore. */
    struct bytes part = {(uint8_t *)"\x28\xb5", 2};
    struct bytes cut = cat(&good, &part);
    for (size_t i = 0; i < NSTEPS; i++)
        expect_refused(ADMIT_CODING_ZSTD, &cut, STEPS[i], &BIG, OG_E_BAD_REQUEST);
    free(plain.p);
    free(good.p);
    free(both.p);
    free(cut.p);
}

/* ---- caps ----------------------------------------------------------------- */

Test(admit_inflate, body_cap_exactly_at_the_boundary)
{
    struct bytes plain = text(200000, 8);
    struct bytes encs[] = {gz(&plain), zlib_of(plain.p, plain.n, 0, 0, -15, 6), zst(&plain)};
    enum admit_coding cs[] = {ADMIT_CODING_GZIP, ADMIT_CODING_DEFLATE, ADMIT_CODING_ZSTD};
    for (size_t i = 0; i < 3; i++) {
        for (size_t s = 0; s < NSTEPS; s += 3) {
            struct admit_inflate_limits at = {plain.n, 0, 0}, under = {plain.n - 1, 0, 0};
            struct result r = decode(cs[i], &encs[i], STEPS[s], &at);
            cr_assert_eq(r.rc, 0, "%s", r.reason);
            cr_assert_eq(r.out.n, plain.n);
            buf_release(&r.out);
            r = decode(cs[i], &encs[i], STEPS[s], &under);
            cr_assert_eq(r.rc, -1);
            cr_assert_eq(r.err, OG_E_DECOMPRESS_CAP, "%s", r.reason);
            cr_assert_eq(r.out.n, plain.n - 1, "stopped at the cap, not before");
            cr_assert_leq(r.out.cap, 256 * 1024, "the buffer never grew for the byte past it");
            buf_release(&r.out);
        }
        free(encs[i].p);
    }
    free(plain.p);
}

Test(admit_inflate, ratio_cap_exactly_at_the_boundary)
{
    /* Fed whole, the input received is the whole stream: decoded bytes may
     * be ratio × that + slack, and not one more. */
    struct bytes plain = text(200000, 9);
    struct bytes encs[] = {gz(&plain), zlib_of(plain.p, plain.n, 0, 0, 15, 6), zst(&plain)};
    enum admit_coding cs[] = {ADMIT_CODING_GZIP, ADMIT_CODING_DEFLATE, ADMIT_CODING_ZSTD};
    for (size_t i = 0; i < 3; i++) {
        size_t n = encs[i].n;
        cr_assert_gt(plain.n, 2 * n);
        struct admit_inflate_limits at = {1 << 30, 2, plain.n - 2 * n};
        struct admit_inflate_limits under = {1 << 30, 2, plain.n - 2 * n - 1};
        struct result r = decode(cs[i], &encs[i], 0, &at);
        cr_assert_eq(r.rc, 0, "%s", r.reason);
        buf_release(&r.out);
        r = decode(cs[i], &encs[i], 0, &under);
        cr_assert_eq(r.rc, -1);
        cr_assert_eq(r.err, OG_E_RATIO_CAP, "%s", r.reason);
        cr_assert_eq(r.out.n, plain.n - 1);
        buf_release(&r.out);
        /* The slack alone lets a small body through at any ratio. */
        struct admit_inflate_limits slack = {1 << 30, 1, plain.n};
        r = decode(cs[i], &encs[i], 1000, &slack);
        cr_assert_eq(r.rc, 0, "%s", r.reason);
        buf_release(&r.out);
        free(encs[i].p);
    }
    free(plain.p);
}

Test(admit_inflate, ratio_holds_while_streaming)
{
    /* Piece by piece, decoded ≤ ratio × received + slack after every piece. */
    struct bytes bomb = zlib_of(NULL, 0, 8 << 20, 0, 15 + 16, 9);
    struct admit_inflate_limits lim = {64 << 20, 10, 1000};
    struct admit_inflate *z = admit_inflate_new(ADMIT_CODING_GZIP, &lim);
    struct buf out = {0};
    size_t off = 0;
    int rc = 0;
    while (rc == 0 && off < bomb.n) {
        rc = admit_inflate_feed(z, bomb.p + off, 37, &out);
        off += 37;
        cr_assert_leq(out.n, 10 * admit_inflate_in(z) + 1000);
    }
    const char *why;
    cr_assert_eq(rc, -1);
    cr_assert_eq(admit_inflate_error(z, &why), OG_E_RATIO_CAP);
    cr_assert_lt(off, 1000, "refused within the first KiB of the bomb");
    cr_assert_eq(admit_inflate_feed(z, bomb.p, 1, &out), -1, "stays refused");
    cr_assert_eq(admit_inflate_end(z), -1);
    cr_assert_eq(admit_inflate_error(z, &why), OG_E_RATIO_CAP);
    admit_inflate_free(z);
    buf_release(&out);
    free(bomb.p);
}

/* ---- bombs ------------------------------------------------------------------ */

static size_t heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

/* A bomb against the default caps (1 MiB, 10×, 64 KiB) refused with `want`,
 * with the output and the decoder's memory bounded. */
static void bomb(enum admit_coding c, const struct bytes *b, uint32_t ratio, enum og_err want,
                 size_t max_out, size_t max_heap)
{
    struct admit_inflate_limits lim = {1 << 20, ratio, ADMIT_INFLATE_RATIO_SLACK_BYTES};
    size_t before = heap_in_use();
    struct admit_inflate *z = admit_inflate_new(c, &lim);
    struct buf out = {0};
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < b->n; off += 16384)
        rc = admit_inflate_feed(z, b->p + off, b->n - off < 16384 ? b->n - off : 16384, &out);
    const char *why;
    cr_assert_eq(rc, -1);
    cr_assert_eq(admit_inflate_error(z, &why), want, "%s", why);
    cr_assert_leq(out.n, max_out);
    size_t held = heap_in_use() - before;
    cr_assert_leq(held, max_heap, "decoder and output hold %zu bytes", held);
    admit_inflate_free(z);
    buf_release(&out);
}

Test(admit_inflate, gzip_bomb)
{
    /* 16 MiB of zeros: about 16 KiB of gzip, over 1000:1 */
    struct bytes b = zlib_of(NULL, 0, 16 << 20, 0, 15 + 16, 9);
    cr_assert_gt((16 << 20) / b.n, 1000, "ratio %zu", (size_t)(16 << 20) / b.n);
    /* the ratio stops it after the first 16 KiB piece: 10 × 16 KiB + 64 KiB */
    bomb(ADMIT_CODING_GZIP, &b, 10, OG_E_RATIO_CAP, 10 * 16384 + 65536, 512 << 10);
    /* without a ratio cap, body_max does */
    bomb(ADMIT_CODING_GZIP, &b, 0, OG_E_DECOMPRESS_CAP, 1 << 20, (1 << 20) + (256 << 10));
    /* the same bomb as raw deflate and zlib */
    struct bytes raw = zlib_of(NULL, 0, 16 << 20, 0, -15, 9);
    bomb(ADMIT_CODING_DEFLATE, &raw, 10, OG_E_RATIO_CAP, 10 * 16384 + 65536, 512 << 10);
    free(b.p), free(raw.p);
}

Test(admit_inflate, zstd_bomb)
{
    /* 64 MiB of zeros in a few KiB: far over 1000:1 */
    struct bytes b = zstd_of(NULL, 0, 64 << 20, false, 23, false);
    cr_assert_gt((64 << 20) / b.n, 10000, "ratio %zu", (size_t)(64 << 20) / b.n);
    /* the window (8 MiB) is reserved, not touched: count what is in use,
     * output included, well under the bomb's size */
    bomb(ADMIT_CODING_ZSTD, &b, 10, OG_E_RATIO_CAP, 10 * 16384 + 65536, 10 << 20);
    bomb(ADMIT_CODING_ZSTD, &b, 0, OG_E_DECOMPRESS_CAP, 1 << 20, 11 << 20);
    free(b.p);
}

/* ---- memory ----------------------------------------------------------------- */

Test(admit_inflate, out_of_memory_is_a_status)
{
    for (enum admit_coding c = ADMIT_CODING_GZIP; c <= ADMIT_CODING_ZSTD; c++) {
        fault_malloc_fail_after(0);
        cr_assert_null(admit_inflate_new(c, &BIG), "coding %d", c);
    }
    /* gzip: the inflate state (zlib allocates through our malloc) */
    fault_malloc_fail_after(1);
    cr_assert_null(admit_inflate_new(ADMIT_CODING_GZIP, &BIG));
    /* deflate: the state, when the first two bytes arrive */
    struct bytes plain = text(5000, 10);
    struct bytes raw = zlib_of(plain.p, plain.n, 0, 0, -15, 6);
    struct admit_inflate *z = admit_inflate_new(ADMIT_CODING_DEFLATE, &BIG);
    struct buf out = {0};
    fault_malloc_fail_after(0);
    const char *why;
    cr_assert_eq(admit_inflate_feed(z, raw.p, raw.n, &out), -1);
    cr_assert_eq(admit_inflate_error(z, &why), OG_E_INTERNAL);
    admit_inflate_free(z);
    /* gzip: the window, allocated at the first output of a stream that
     * does not end in the same call */
    struct bytes g = gz(&plain);
    z = admit_inflate_new(ADMIT_CODING_GZIP, &BIG);
    fault_malloc_fail_after(0);
    cr_assert_eq(admit_inflate_feed(z, g.p, g.n / 2, &out), -1);
    cr_assert_eq(admit_inflate_error(z, &why), OG_E_INTERNAL, "%s", why);
    admit_inflate_free(z);
    admit_inflate_free(NULL);
    buf_release(&out);
    free(plain.p), free(raw.p), free(g.p);
}

Test(admit_inflate, freed_mid_stream)
{
    /* A request abandoned mid-body: the decoder goes with all it holds
     * (valgrind and ASan check that nothing stays behind). */
    struct bytes plain = text(100000, 11);
    struct bytes encs[] = {gz(&plain), zlib_of(plain.p, plain.n, 0, 0, 15, 6), zst(&plain)};
    enum admit_coding cs[] = {ADMIT_CODING_GZIP, ADMIT_CODING_DEFLATE, ADMIT_CODING_ZSTD};
    for (size_t i = 0; i < 3; i++) {
        for (size_t k = 0; k < 3; k++) {
            struct admit_inflate *z = admit_inflate_new(cs[i], &BIG);
            struct buf out = {0};
            cr_assert_eq(admit_inflate_feed(z, encs[i].p, k, &out), 0);
            cr_assert_eq(admit_inflate_feed(z, encs[i].p + k, encs[i].n / 2, &out), 0);
            admit_inflate_free(z);
            buf_release(&out);
        }
        free(encs[i].p);
    }
    free(plain.p);
}
