/*
 * comp.c — bounded zstd inflate: round trip, caps, bombs, windows, junk.
 */
#include <malloc.h>
#include <zstd.h>

#include "oap/comp.h"
#include "oap/oap.h"
#include "vec.h"

Test(oap_comp, roundtrip)
{
    static uint8_t src[300000], z[400000], out[300000];
    uint64_t seed = 5;
    size_t n;

    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(prng_below(&seed, 4) + 'a');
    ssize_t zn = oap_deflate(src, sizeof(src), z, sizeof(z), 3);
    cr_assert_gt(zn, 0);
    cr_assert_eq(oap_inflate_once(z, (size_t)zn, out, sizeof(out), OAP_MAX_FRAME_BYTES, &n), 0);
    cr_assert_eq(n, sizeof(src));
    cr_assert(memcmp(src, out, n) == 0);
    /* truncated input and garbage */
    cr_assert_eq(oap_inflate_once(z, (size_t)zn - 10, out, sizeof(out), OAP_MAX_FRAME_BYTES, &n),
                 OAP_E_DECOMPRESS);
    cr_assert_eq(oap_inflate_once("garbage!", 8, out, sizeof(out), OAP_MAX_FRAME_BYTES, &n),
                 OAP_E_DECOMPRESS);
    cr_assert_eq(oap_inflate_once(z, 0, out, sizeof(out), OAP_MAX_FRAME_BYTES, &n),
                 OAP_E_DECOMPRESS);
    cr_assert_eq(oap_deflate(src, sizeof(src), z, 10, 3), OAP_E_BUF_SMALL);

    /* a reused inflater starts clean after an error */
    struct oap_inflater zi;
    cr_assert_eq(oap_inflater_init(&zi), 0);
    cr_assert_eq(oap_inflate(&zi, z, (size_t)zn / 2, out, sizeof(out), OAP_MAX_FRAME_BYTES, &n),
                 OAP_E_DECOMPRESS);
    cr_assert_eq(oap_inflate(&zi, z, (size_t)zn, out, sizeof(out), OAP_MAX_FRAME_BYTES, &n), 0);
    cr_assert_eq(n, sizeof(src));
    oap_inflater_release(&zi);
}

/* Compress `total` zero bytes by streaming, so the test itself never holds
 * the plaintext. */
static uint8_t *zero_bomb(uint64_t total, size_t *zlen)
{
    static uint8_t zeros[1 << 20];
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t cap = 1 << 20, len = 0;
    uint8_t *out = malloc(cap);

    cr_assert(c && out);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 23);
    for (uint64_t done = 0; done < total; done += sizeof(zeros)) {
        ZSTD_inBuffer in = {zeros, sizeof(zeros), 0};
        ZSTD_EndDirective e = done + sizeof(zeros) >= total ? ZSTD_e_end : ZSTD_e_continue;
        size_t rem;
        do {
            ZSTD_outBuffer o = {out + len, cap - len, 0};
            rem = ZSTD_compressStream2(c, &o, &in, e);
            cr_assert(!ZSTD_isError(rem));
            len += o.pos;
            cr_assert_lt(len, cap, "bomb stays small");
        } while (in.pos < in.size || (e == ZSTD_e_end && rem != 0));
    }
    ZSTD_freeCCtx(c);
    *zlen = len;
    return out;
}

Test(oap_comp, bomb_rejected_without_allocating, .timeout = 600)
{
    size_t zlen, n;
    uint8_t *bomb = zero_bomb(1ull << 30, &zlen);
    static uint8_t out[8 << 20];

    cr_assert_lt(zlen, 200000, "1 GiB of zeros compresses to %zu bytes", zlen);
    struct mallinfo2 before = mallinfo2();
    cr_assert_eq(oap_inflate_once(bomb, zlen, out, sizeof(out), OAP_MAX_FRAME_BYTES, &n),
                 OAP_E_DECOMPRESS_CAP);
    struct mallinfo2 after = mallinfo2();
    /* The DCtx and its 8 MiB window at most: nothing sized by the bomb. The
     * window may come from mmap (hblkhd) and is freed again. */
    cr_assert_leq(after.uordblks + after.hblkhd, before.uordblks + before.hblkhd + 4096);
    /* the cap is min(caller, 8 × max_frame): 4 KiB peer → 32 KiB */
    cr_assert_eq(oap_inflate_once(bomb, zlen, out, sizeof(out), 4096, &n), OAP_E_DECOMPRESS_CAP);
    free(bomb);
}

Test(oap_comp, large_window_rejected)
{
    static uint8_t src[1 << 20], z[1 << 20], out[4 << 20];
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t n;

    /* a frame that declares a 32 MiB window (above 2^23) */
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 25);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    /* input fed with e_continue first: the size is unknown when the frame
     * header is written, so zstd keeps the 2^25 window */
    ZSTD_inBuffer in = {src, sizeof(src), 0};
    ZSTD_outBuffer o = {z, sizeof(z), 0};
    size_t rem = ZSTD_compressStream2(c, &o, &in, ZSTD_e_continue);
    cr_assert(!ZSTD_isError(rem) && in.pos == in.size);
    ZSTD_inBuffer none = {NULL, 0, 0};
    rem = ZSTD_compressStream2(c, &o, &none, ZSTD_e_end);
    cr_assert(!ZSTD_isError(rem) && rem == 0);
    cr_assert_eq(ZSTD_getFrameContentSize(z, o.pos), ZSTD_CONTENTSIZE_UNKNOWN);
    ZSTD_freeCCtx(c);
    cr_assert_eq(oap_inflate_once(z, o.pos, out, sizeof(out), OAP_MAX_FRAME_BYTES, &n),
                 OAP_E_DECOMPRESS);
}

Test(oap_comp, exact_cap_ok)
{
    static uint8_t src[8192], z[9000], out[8192];
    size_t n;
    memset(src, 'x', sizeof(src));
    ssize_t zn = oap_deflate(src, sizeof(src), z, sizeof(z), 1);
    cr_assert_gt(zn, 0);
    /* 8 × 1024 = 8192: exactly at the cap is allowed */
    cr_assert_eq(oap_inflate_once(z, (size_t)zn, out, sizeof(out), 1024, &n), 0);
    cr_assert_eq(n, 8192);
    cr_assert_eq(oap_inflate_once(z, (size_t)zn, out, sizeof(out), 1023, &n), OAP_E_DECOMPRESS_CAP);
}
