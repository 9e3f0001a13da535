/*
 * oap.h — OAP/1 frame codec: header parse/write, an incremental decoder and
 * an iovec encoder (DESIGN §5, docs/OAP.md).
 *
 * No I/O, no logging, no libuv. The decoder is pure and resumable: it is fed
 * any split of the byte stream (one byte at a time works) and allocates only
 * when a frame straddles feeds, and then only after the header's `len` was
 * checked against max_frame.
 */
#ifndef OAP_OAP_H
#define OAP_OAP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "oap/oap-t.h"

/* Short name of a status ("too_large"), as used in JSON `error` fields.
 * Unknown values give "unknown". Never NULL. */
const char *oap_status_name(int status);

/* One-line English description of a status. Never NULL. */
const char *oap_strerror(int status);

/* Names of the flag bits, indexed by bit number 0..7 ("REQ", "RESP", ...). */
extern const char *const oap_flag_names[8];

/*
 * Parse and validate the 38-byte header at p (n bytes available).
 * Checks, in wire order: len ≥ 38, len ≤ max_frame, ver = 1, no reserved
 * flag, cap_len = 0 unless START, 38 + cap_len ≤ len.
 * max_frame is clamped to [OAP_HDR_BYTES, OAP_MAX_FRAME_BYTES].
 * Returns 0, OAP_E_AGAIN when n < 38, or an error; on error *err_off (if not
 * NULL) gets the offset of the offending field within the header.
 */
int oap_hdr_parse(struct oap_hdr *h, const uint8_t *p, size_t n, uint32_t max_frame,
                  size_t *err_off);

/* Write h as 38 big-endian bytes. No validation (see oap_encode_iov()). */
void oap_hdr_write(const struct oap_hdr *h, uint8_t out[OAP_HDR_BYTES]);

/* Clamp a max_frame value to what the protocol allows. */
uint32_t oap_max_frame_clamp(uint64_t max_frame);

/*
 * Incremental decoder. Embed it, oap_decoder_init() it, feed it, and
 * oap_decoder_release() it. Errors are sticky: after one, every feed returns
 * the same error.
 */
struct oap_decoder {
    uint32_t max_frame; /* frames with a larger len are rejected */
    int err;            /* sticky error, 0 while healthy */
    uint64_t err_off;   /* stream offset of the error */
    uint64_t off;       /* stream bytes consumed so far */
    uint64_t frame_off; /* stream offset of the frame being read */
    size_t have;        /* bytes of the current frame buffered */
    struct oap_hdr h;   /* valid once have ≥ OAP_HDR_BYTES */
    uint8_t hdr[OAP_HDR_BYTES];
    uint8_t *buf; /* whole-frame buffer for straddling frames */
    size_t buf_cap;
};

/* Decoder buffers larger than this are returned to the allocator once the
 * frame they held has been handed out, so an idle connection keeps at most
 * this much: a 64 KiB stream chunk plus its header and a DATA header fit, so
 * steady 64 KiB streaming reuses one buffer. */
#define OAP_DECODER_KEEP_BYTES (65536 + 4096)

void oap_decoder_init(struct oap_decoder *d, uint32_t max_frame);
void oap_decoder_release(struct oap_decoder *d);

/* Lower (or raise, up to OAP_MAX_FRAME_BYTES) the frame limit, e.g. after a
 * HELLO in which the peer announced a smaller max_frame. Applies to frames
 * whose header has not been read yet. */
void oap_decoder_set_max_frame(struct oap_decoder *d, uint32_t max_frame);

/*
 * Feed n bytes at p. Sets *consumed to the bytes used (always ≤ n) and
 * returns:
 *   0            a frame is in *f; call again with the rest of the input.
 *                The views in *f point into p when the whole frame was inside
 *                this call's input (no copy), otherwise into the decoder's
 *                buffer; either way they stay valid until the next feed or
 *                release, and as long as the caller keeps p alive.
 *   OAP_E_AGAIN  all n bytes consumed, no complete frame yet.
 *   < -1         a typed error; oap_decoder_error_offset() gives its stream
 *                offset. Nothing further is accepted.
 */
int oap_decoder_feed(struct oap_decoder *d, const uint8_t *p, size_t n, size_t *consumed,
                     struct oap_frame *f);

/* At end of input: 0 when the stream ended on a frame boundary, otherwise
 * OAP_E_TRUNCATED (at the end-of-stream offset) or the sticky error. */
int oap_decoder_finish(struct oap_decoder *d);

/* Stream offset of the sticky error (0 when there is none). */
uint64_t oap_decoder_error_offset(const struct oap_decoder *d);

/* True when part of a frame is buffered. */
bool oap_decoder_busy(const struct oap_decoder *d);

/*
 * Validate and write the header of a frame whose payload (payload_len bytes)
 * the caller sends from where it is, e.g. in several pieces: sets h->len and
 * h->ver, checks h as the decoder would (flags, cap only on START,
 * len ≤ max_frame; h->cap_len counts a cap the caller sends too) and writes
 * the 38 bytes into out. Returns 0 or an error (out untouched).
 */
int oap_encode_hdr(struct oap_hdr *h, size_t payload_len, uint32_t max_frame,
                   uint8_t out[OAP_HDR_BYTES]);

/*
 * Encode f as header + cap + payload without copying cap or payload. Sets
 * f->h.len and f->h.cap_len from the sizes (their input values are ignored;
 * f->cap must then hold f->h.cap_len bytes — pass cap_len in f->h.cap_len).
 * Validates the frame as the decoder would (version, flags, cap only on
 * START, len ≤ max_frame). Writes the header into hdr and fills iov[0..2]
 * (empty sections are left out). Returns the iovec count (1..3) or an error.
 */
int oap_encode_iov(struct oap_frame *f, uint32_t max_frame, uint8_t hdr[OAP_HDR_BYTES],
                   struct iovec iov[3]);

/* Same, into one contiguous buffer (copies cap and payload). Returns the
 * frame length, OAP_E_BUF_SMALL, or a validation error. */
ssize_t oap_encode(struct oap_frame *f, uint32_t max_frame, uint8_t *out, size_t out_cap);

/* Big-endian helpers shared by the codec modules. */
static inline uint16_t oap_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t oap_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t oap_get64(const uint8_t *p)
{
    return (uint64_t)oap_get32(p) << 32 | oap_get32(p + 4);
}
static inline void oap_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void oap_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void oap_put64(uint8_t *p, uint64_t v)
{
    oap_put32(p, (uint32_t)(v >> 32));
    oap_put32(p + 4, (uint32_t)v);
}

#endif
