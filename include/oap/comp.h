/*
 * comp.h — COMP frames: zstd payloads, inflated with a hard output cap.
 *
 * A frame with the COMP flag carries a zstd stream (one or more zstd frames)
 * whose decompressed bytes are the payload it stands for. Inflation runs by
 * streaming with a window of at most 2^OAP_COMP_WINDOW_LOG_MAX bytes into a
 * caller buffer and stops as soon as the output would pass
 * min(8 × max_frame, caller cap): a decompression bomb costs the receiver at
 * most that buffer, never the bomb's size.
 */
#ifndef OAP_COMP_H
#define OAP_COMP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "oap/oap-t.h"

#define OAP_COMP_WINDOW_LOG_MAX 23 /* 8 MiB window (DESIGN §12) */
#define OAP_COMP_RATIO_MAX      8  /* inflated ≤ 8 × max_frame */

/* A reusable inflater; holds one ZSTD_DCtx. */
struct oap_inflater {
    void *dctx;
};

/* Returns 0 or OAP_E_NOMEM. */
int oap_inflater_init(struct oap_inflater *z);
void oap_inflater_release(struct oap_inflater *z);

/*
 * Inflate n bytes at src into dst. The output cap is
 * min(dst_cap, OAP_COMP_RATIO_MAX × max_frame). Sets *out_len and returns 0;
 * OAP_E_DECOMPRESS_CAP when the output would pass the cap (detected on the
 * first byte beyond it); OAP_E_DECOMPRESS for corrupt or truncated input or
 * a window above 2^23. The inflater is reset on every call.
 */
int oap_inflate(struct oap_inflater *z, const void *src, size_t n, void *dst, size_t dst_cap,
                uint32_t max_frame, size_t *out_len);

/* One-shot form of oap_inflate() with a temporary inflater. */
int oap_inflate_once(const void *src, size_t n, void *dst, size_t dst_cap, uint32_t max_frame,
                     size_t *out_len);

/*
 * Compress n bytes (zstd level `level`, window ≤ 2^23) into dst. Returns the
 * compressed length, OAP_E_BUF_SMALL, or OAP_E_NOMEM. For peers and tests;
 * the gateway itself never needs to compress on the data path.
 */
ssize_t oap_deflate(const void *src, size_t n, void *dst, size_t dst_cap, int level);

#endif
