/*
 * inflate.c — libFuzzer target: the decompression guard (src/admit/inflate.c)
 * and the Content-Encoding list parser.
 *
 * Input: byte 0 picks the coding (low 2 bits: gzip, deflate, zstd, and a
 * fourth value that parses the rest as a Content-Encoding value instead)
 * and the piece size (high 6 bits: 1..63 bytes, or 0 = all at once); byte 1
 * picks small caps (out_max 0..4 KiB, ratio 0..7, slack 0..255 bytes) so
 * the cap paths are reached; the rest is the compressed body. Each piece is
 * a private copy, so an over-read is caught by ASan. Checked on every run:
 * the output never passes a cap, a refusal has one of the decoder's three
 * statuses and a reason, a refused decoder stays refused, and with no ratio
 * cap the answer does not depend on how the input was cut.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admit/inflate.h"

struct run {
    int rc;
    enum og_err err;
    struct buf out;
};

static void check_caps(const struct admit_inflate *z, const struct buf *out,
                       const struct admit_inflate_limits *lim)
{
    if (out->n != admit_inflate_out(z) || out->n > lim->out_max)
        abort();
    if (lim->ratio_max && out->n > lim->ratio_max * admit_inflate_in(z) + lim->ratio_slack)
        abort();
}

static struct run decode(enum admit_coding c, const uint8_t *in, size_t n, size_t step,
                         const struct admit_inflate_limits *lim)
{
    struct run r = {0};
    struct admit_inflate *z = admit_inflate_new(c, lim);
    if (z == NULL) {
        r.rc = -2;
        return r;
    }
    size_t off = 0;
    do {
        size_t k = step && n - off > step ? step : n - off;
        uint8_t *piece = malloc(k ? k : 1);
        if (piece == NULL)
            abort();
        memcpy(piece, in + off, k);
        r.rc = admit_inflate_feed(z, piece, k, &r.out);
        free(piece);
        off += k;
        check_caps(z, &r.out, lim);
    } while (r.rc == 0 && off < n);
    if (r.rc == 0)
        r.rc = admit_inflate_end(z);
    if (r.rc != 0) {
        const char *why = NULL;
        r.err = admit_inflate_error(z, &why);
        if (why == NULL || *why == '\0')
            abort();
        /* OG_E_INTERNAL would be memory (libFuzzer stops before malloc fails)
         * or a decoder that made no progress: a bug either way. */
        if (r.err != OG_E_BAD_REQUEST && r.err != OG_E_DECOMPRESS_CAP && r.err != OG_E_RATIO_CAP)
            abort();
        if (admit_inflate_feed(z, in, n < 4 ? n : 4, &r.out) != -1 || admit_inflate_end(z) != -1)
            abort(); /* stays refused */
        enum og_err again = admit_inflate_error(z, &why);
        if (again != r.err)
            abort();
    }
    check_caps(z, &r.out, lim);
    admit_inflate_free(z);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned pick = data[0] & 3;
    size_t step = data[0] >> 2;
    const uint8_t *in = data + 2;
    size_t n = size - 2;

    if (pick == 3) {
        char *v = malloc(n ? n : 1);
        if (v == NULL)
            return 0;
        memcpy(v, in, n);
        enum admit_coding c = ADMIT_CODING_IDENTITY;
        const char *why = NULL;
        int rc = admit_coding_parse((struct slice){v, n}, &c, &why);
        if ((rc != 0 && rc != -1) || (rc == -1 && why == NULL) || c > ADMIT_CODING_ZSTD)
            abort();
        free(v);
        return 0;
    }

    enum admit_coding c = (enum admit_coding)(pick + 1);
    struct admit_inflate_limits lim = {(size_t)(data[1] & 0x0f) << 8, (uint32_t)(data[1] >> 4) & 7,
                                       (size_t)(data[1] & 0x80 ? data[1] : 0)};
    struct run a = decode(c, in, n, step, &lim);
    if (lim.ratio_max == 0 && a.rc != -2) {
        /* The same bytes in one piece: the same answer, and when accepted
         * the same body. */
        struct run b = decode(c, in, n, 0, &lim);
        if (b.rc != -2 && (a.rc != b.rc || a.err != b.err))
            abort();
        if (a.rc == 0 && (a.out.n != b.out.n || (a.out.n && memcmp(a.out.p, b.out.p, a.out.n))))
            abort();
        buf_release(&b.out);
    }
    buf_release(&a.out);
    return 0;
}
