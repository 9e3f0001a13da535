/*
 * inflate.h — the decompression guard: request bodies sent with
 * Content-Encoding gzip, deflate or zstd, decoded as they stream under an
 * absolute and a ratio cap (DESIGN §8).
 *
 * A pure, resumable decoder (STYLE §13): compressed bytes in, decoded bytes
 * appended to the caller's buffer, no I/O. Every growth of the output is
 * bounded before it happens, so memory never depends on what the input
 * claims or contains:
 *
 *   out ≤ out_max                                   else 413 decompress_cap
 *   out ≤ ratio_max × in + ratio_slack              else 413 ratio_cap
 *
 * where `in` is the compressed bytes received so far and `out` the bytes
 * decoded from them, both counted from the first byte; the ratio holds at
 * every point of the stream, not only at its end, so a bomb is stopped after
 * at most ratio_slack + ratio_max × (bytes sent) of output. The slack
 * lets small bodies compress well (a 3 KiB JSON document in 200 bytes) without
 * being refused on ratio alone. The decoder never trusts a size the stream
 * declares (gzip ISIZE, a zstd frame's content size): it counts.
 *
 * The decoder's own memory is bounded too: zlib's inflate state and 32 KiB
 * window; zstd's context and a window of at most 2^23 bytes
 * (ADMIT_INFLATE_ZSTD_WINDOW_LOG_MAX, the 8 MiB RFC 9659 lets a decoder
 * insist on), of which only what the output reaches is ever touched.
 */
#ifndef ADMIT_INFLATE_H
#define ADMIT_INFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

/* The default slack of the ratio cap (h1.c passes it). */
#define ADMIT_INFLATE_RATIO_SLACK_BYTES (64 * 1024)
/* RFC 9659 §3: zstd content-coding decoders need not accept larger windows,
 * and encoders must not need them. A frame asking for more is refused. */
#define ADMIT_INFLATE_ZSTD_WINDOW_LOG_MAX 23

enum admit_coding {
    ADMIT_CODING_IDENTITY = 0, /* no coding: the body is used as sent */
    ADMIT_CODING_GZIP,         /* RFC 9110 §8.4.1.3 (also x-gzip) */
    ADMIT_CODING_DEFLATE,      /* RFC 9110 §8.4.1.2: zlib, or raw deflate (see inflate.c) */
    ADMIT_CODING_ZSTD,         /* RFC 8878 §7.2 */
};

/* Name of a coding for logs and messages ("gzip"). */
const char *admit_coding_name(enum admit_coding c);

/*
 * Fold one Content-Encoding field value into *coding, which starts at
 * ADMIT_CODING_IDENTITY and is passed to each field of the request in turn
 * (several fields form one list, RFC 9110 §5.3). The value is a
 * comma-separated list of tokens, ASCII case-insensitive, with optional
 * whitespace and empty elements (RFC 9110 §5.6.1); `identity` means no
 * coding. Returns 0, or -1 with *reason set (a static string) when an
 * element is not a coding we decode, or when it is a second one: stacked
 * codings are refused, so a body is decoded at most once (415).
 */
int admit_coding_parse(struct slice value, enum admit_coding *coding, const char **reason);

struct admit_inflate_limits {
    size_t out_max;     /* decoded bytes: the body cap */
    uint32_t ratio_max; /* decoded ≤ ratio_max × received + ratio_slack; 0 = no ratio cap */
    size_t ratio_slack;
};

struct admit_inflate; /* opaque: it holds a zlib or zstd decoder */

/*
 * A decoder for one body in `coding` (not IDENTITY). Returns NULL when
 * memory is short. Free it with admit_inflate_free() whatever happens.
 */
__attribute__((warn_unused_result)) struct admit_inflate *
admit_inflate_new(enum admit_coding coding, const struct admit_inflate_limits *lim);

/*
 * Decode the next n compressed bytes, appending what they decode to to out
 * (out->n grows; out is never grown past what the caps allow). Every byte of
 * input is consumed or the call fails. Returns 0, or -1 once the body is
 * refused: see admit_inflate_error(). After -1 every call fails the same way.
 */
__attribute__((warn_unused_result)) int admit_inflate_feed(struct admit_inflate *z, const void *in,
                                                           size_t n, struct buf *out);

/*
 * The body has ended. Returns 0 when the input was whole (every gzip member,
 * the deflate stream, every zstd frame complete), or -1 (400: truncated).
 */
__attribute__((warn_unused_result)) int admit_inflate_end(struct admit_inflate *z);

/* Why the last call returned -1: the status (OG_E_DECOMPRESS_CAP,
 * OG_E_RATIO_CAP, OG_E_BAD_REQUEST for corrupt or truncated input,
 * OG_E_INTERNAL for memory) and, in *reason, a static human string. */
enum og_err admit_inflate_error(const struct admit_inflate *z, const char **reason);

/* Compressed bytes received and decoded bytes produced so far. */
uint64_t admit_inflate_in(const struct admit_inflate *z);
uint64_t admit_inflate_out(const struct admit_inflate *z);

/* Free the decoder and everything it holds; NULL is a no-op. */
void admit_inflate_free(struct admit_inflate *z);

#endif
