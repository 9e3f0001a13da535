/*
 * comp.c — bounded zstd inflate for COMP payloads, and a compressor.
 */
#include "oap/comp.h"

#include <zstd.h>
#include <zstd_errors.h>

int oap_inflater_init(struct oap_inflater *z)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();

    z->dctx = d;
    if (!d)
        return OAP_E_NOMEM;
    /* A peer must not make us reserve a large window. */
    if (ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, OAP_COMP_WINDOW_LOG_MAX))) {
        ZSTD_freeDCtx(d);
        z->dctx = NULL;
        return OAP_E_NOMEM;
    }
    return 0;
}

void oap_inflater_release(struct oap_inflater *z)
{
    ZSTD_freeDCtx(z->dctx);
    z->dctx = NULL;
}

int oap_inflate(struct oap_inflater *z, const void *src, size_t n, void *dst, size_t dst_cap,
                uint32_t max_frame, size_t *out_len)
{
    ZSTD_DCtx *d = z->dctx;
    uint64_t cap = (uint64_t)OAP_COMP_RATIO_MAX * max_frame;
    ZSTD_inBuffer in = {src, n, 0};
    ZSTD_outBuffer out;
    size_t ret = 1;

    *out_len = 0;
    if (cap > dst_cap)
        cap = dst_cap;
    out = (ZSTD_outBuffer){dst, (size_t)cap, 0};
    /* reset_session_only keeps windowLogMax. */
    ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
    if (n == 0)
        return OAP_E_DECOMPRESS;
    for (;;) {
        ret = ZSTD_decompressStream(d, &out, &in);
        if (ZSTD_isError(ret))
            return OAP_E_DECOMPRESS;
        if (ret == 0 && in.pos == in.size)
            break; /* last frame complete and flushed */
        if (out.pos == out.size) {
            /* Full: one more byte of output means the cap is passed; none
             * means only the frame epilogue (checksum, next frame header)
             * is left. */
            uint8_t probe;
            ZSTD_outBuffer one = {&probe, 1, 0};
            ret = ZSTD_decompressStream(d, &one, &in);
            if (ZSTD_isError(ret))
                return OAP_E_DECOMPRESS;
            if (one.pos)
                return OAP_E_DECOMPRESS_CAP;
            if (ret == 0 && in.pos == in.size)
                break;
            if (in.pos == in.size)
                return OAP_E_DECOMPRESS; /* truncated */
            continue;
        }
        if (in.pos == in.size)
            return OAP_E_DECOMPRESS; /* input ended inside a frame */
    }
    *out_len = out.pos;
    return 0;
}

int oap_inflate_once(const void *src, size_t n, void *dst, size_t dst_cap, uint32_t max_frame,
                     size_t *out_len)
{
    struct oap_inflater z;
    int rc = oap_inflater_init(&z);

    if (rc)
        return rc;
    rc = oap_inflate(&z, src, n, dst, dst_cap, max_frame, out_len);
    oap_inflater_release(&z);
    return rc;
}

ssize_t oap_deflate(const void *src, size_t n, void *dst, size_t dst_cap, int level)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t r;

    if (!c)
        return OAP_E_NOMEM;
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, OAP_COMP_WINDOW_LOG_MAX);
    r = ZSTD_compress2(c, dst, dst_cap, src, n);
    ZSTD_freeCCtx(c);
    if (ZSTD_isError(r))
        return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? OAP_E_BUF_SMALL : OAP_E_NOMEM;
    return (ssize_t)r;
}
