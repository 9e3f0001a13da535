/*
 * inflate.c — streaming decoders for coded request bodies, under caps.
 *
 * zlib decodes gzip and deflate, libzstd decodes zstd, both through their
 * streaming APIs, into the caller's buffer in steps whose size the caps
 * decide before the buffer grows. When the output has reached a cap, the
 * decoder is asked for one more byte into a byte on the stack (the probe,
 * as lib/oap/comp.c does): a byte means the stream goes on past the cap and
 * is refused; none means it ends there or needs more input.
 *
 * Choices, each as browsers and common servers make them:
 * - gzip is read with windowBits 15 + 32, so a zlib stream labelled gzip is
 *   accepted too; several gzip members one after the other are one body
 *   (RFC 1952 §2.2, as gunzip reads them); anything else after a member is
 *   400.
 * - deflate is the zlib format (RFC 9110 §8.4.1.2), but some clients send
 *   raw deflate (RFC 1951) under that name; browsers accept both, and so do
 *   we: the first two bytes decide — a valid zlib header (CM 8, CINFO ≤ 7,
 *   header check divisible by 31) means zlib, anything else raw. Bytes after
 *   the end of the stream are 400.
 * - zstd frames may follow one another, skippable frames included (RFC 8878
 *   §3); a frame needing a window over 2^23 bytes is refused with 413
 *   decompress_cap (RFC 9659 lets us: the memory is what we refuse).
 * - An empty body has nothing to decode: h1.c makes no decoder for it.
 */
#include "admit/inflate.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/* Output reserved per decoder call, at most: bounds a step's growth of the
 * body buffer (it still doubles as buf.c grows it). */
#define STEP_BYTES (64 * 1024)

struct admit_inflate {
    enum admit_coding coding;
    struct admit_inflate_limits lim;
    uint64_t in, out; /* compressed received, decoded produced */
    bool failed;
    bool started;     /* the decoder proper is initialised (deflate waits for its header) */
    bool at_end;      /* zlib: Z_STREAM_END seen and nothing after it yet */
    bool in_frame;    /* zstd: inside a frame (or nothing read yet) */
    bool frame_start; /* zstd: the next byte starts a frame */
    enum og_err err;
    const char *reason;
    uint8_t hdr[4]; /* deflate: the first bytes, until they tell zlib from raw;
                     * zstd: a frame's magic number, until it is whole */
    uint8_t nhdr;
    union {
        z_stream zs;
        ZSTD_DCtx *zd;
    } u;
};

/* ---- Content-Encoding ---------------------------------------------------- */

static bool is_tchar(unsigned char c)
{
    /* RFC 9110 §5.6.2 */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

const char *admit_coding_name(enum admit_coding c)
{
    switch (c) {
    case ADMIT_CODING_GZIP: return "gzip";
    case ADMIT_CODING_DEFLATE: return "deflate";
    case ADMIT_CODING_ZSTD: return "zstd";
    case ADMIT_CODING_IDENTITY: break;
    }
    return "identity";
}

int admit_coding_parse(struct slice v, enum admit_coding *coding, const char **reason)
{
    static const struct {
        const char *name;
        enum admit_coding c;
    } KNOWN[] = {
        {"identity", ADMIT_CODING_IDENTITY}, {"gzip", ADMIT_CODING_GZIP},
        {"x-gzip", ADMIT_CODING_GZIP}, /* RFC 9110 §8.4.1.3 */
        {"deflate", ADMIT_CODING_DEFLATE},   {"zstd", ADMIT_CODING_ZSTD},
    };
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (is_ows(v.p[i]) || v.p[i] == ','))
            i++;
        if (i == v.n)
            break;
        size_t start = i;
        while (i < v.n && is_tchar((unsigned char)v.p[i]))
            i++;
        struct slice tok = {v.p + start, i - start};
        while (i < v.n && is_ows(v.p[i]))
            i++;
        if (tok.n == 0 || (i < v.n && v.p[i] != ',')) {
            *reason = "Content-Encoding is not a list of codings";
            return -1;
        }
        size_t k = 0;
        while (k < sizeof(KNOWN) / sizeof(KNOWN[0]) && !slice_ieq(tok, KNOWN[k].name))
            k++;
        if (k == sizeof(KNOWN) / sizeof(KNOWN[0])) {
            *reason = "unsupported content coding (accepted: gzip, deflate, zstd)";
            return -1;
        }
        if (KNOWN[k].c == ADMIT_CODING_IDENTITY)
            continue;
        if (*coding != ADMIT_CODING_IDENTITY) {
            *reason = "stacked content codings are not accepted (one of gzip, deflate, zstd)";
            return -1;
        }
        *coding = KNOWN[k].c;
    }
    return 0;
}

/* ---- caps ---------------------------------------------------------------- */

static int fail(struct admit_inflate *z, enum og_err e, const char *reason)
{
    z->failed = true;
    z->err = e;
    z->reason = reason;
    return -1;
}

/* The most output the ratio cap allows after `in` received bytes
 * (saturating). */
static uint64_t ratio_limit(const struct admit_inflate *z, uint64_t in)
{
    uint64_t r = z->lim.ratio_max;
    if (r == 0 || in > (UINT64_MAX - z->lim.ratio_slack) / r)
        return UINT64_MAX;
    return in * r + z->lim.ratio_slack;
}

/* Where the next step writes: room in out for as much as the caps allow,
 * or the probe byte when that is nothing. Returns 0, or -1 when memory is
 * short. */
static int next_room(struct admit_inflate *z, struct buf *out, uint8_t *probe, uint8_t **dst,
                     size_t *room)
{
    uint64_t lim = ratio_limit(z, z->in);
    if (lim > z->lim.out_max)
        lim = z->lim.out_max;
    if (z->out >= lim) {
        *dst = probe;
        *room = 1;
        return 0;
    }
    uint64_t want = lim - z->out;
    *room = want < STEP_BYTES ? (size_t)want : STEP_BYTES;
    if (buf_reserve(out, *room) != 0)
        return fail(z, OG_E_INTERNAL, "out of memory for the decoded request body");
    *dst = (uint8_t *)out->p + out->n;
    return 0;
}

/* Account a step that wrote `made` bytes at dst. The room kept the output
 * within the caps; a byte in the probe is the first one past one of them. */
static int step_done(struct admit_inflate *z, struct buf *out, const uint8_t *dst,
                     const uint8_t *probe, size_t made)
{
    if (dst != probe) {
        out->n += made;
        z->out += made;
        return 0;
    }
    if (made == 0)
        return 0;
    if (z->out + made > z->lim.out_max)
        return fail(z, OG_E_DECOMPRESS_CAP, "decoded request body over body_max");
    return fail(z, OG_E_RATIO_CAP, "request body expands more than decompress_ratio_max");
}

/* ---- zlib ---------------------------------------------------------------- */

/* zlib allocates through these, so its memory is the project's malloc (and
 * a failure a test can cause). */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return malloc((size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    free(p);
}

static int zlib_start(struct admit_inflate *z, int window_bits)
{
    z_stream *s = &z->u.zs;
    memset(s, 0, sizeof(*s));
    s->zalloc = z_alloc;
    s->zfree = z_free;
    if (inflateInit2(s, window_bits) != Z_OK)
        return fail(z, OG_E_INTERNAL, "out of memory for the body decoder");
    z->started = true;
    return 0;
}

static const char *zlib_why(const struct admit_inflate *z, int rc)
{
    if (rc == Z_NEED_DICT)
        return "deflate stream needs a preset dictionary";
    if (z->coding == ADMIT_CODING_GZIP)
        return z->u.zs.msg ? z->u.zs.msg : "corrupt gzip stream";
    return z->u.zs.msg ? z->u.zs.msg : "corrupt deflate stream";
}

static int zlib_feed(struct admit_inflate *z, const uint8_t *p, size_t n, struct buf *out)
{
    z_stream *s = &z->u.zs;
    for (;;) {
        if (z->at_end) {
            if (n == 0)
                return 0;
            if (z->coding != ADMIT_CODING_GZIP)
                return fail(z, OG_E_BAD_REQUEST, "data after the end of the deflate stream");
            /* Another gzip member: the same settings, a fresh stream. */
            if (inflateReset(s) != Z_OK)
                return fail(z, OG_E_INTERNAL, "body decoder reset failed");
            z->at_end = false;
        }
        uint8_t probe, *dst;
        size_t room;
        if (next_room(z, out, &probe, &dst, &room) != 0)
            return -1;
        s->next_in = (Bytef *)p;
        s->avail_in = n < UINT_MAX ? (uInt)n : UINT_MAX;
        s->next_out = dst;
        s->avail_out = (uInt)room;
        int rc = inflate(s, Z_NO_FLUSH);
        size_t used = (size_t)(s->next_in - p), made = room - s->avail_out;
        p += used;
        n -= used;
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
            return fail(z, rc == Z_MEM_ERROR ? OG_E_INTERNAL : OG_E_BAD_REQUEST, zlib_why(z, rc));
        if (step_done(z, out, dst, &probe, made) != 0)
            return -1;
        if (rc == Z_STREAM_END) {
            z->at_end = true;
            continue;
        }
        /* Room left over with all input taken: zlib has given all it can
         * (Z_BUF_ERROR, no progress, is that case with nothing to give). */
        if (n == 0 && made < room)
            return 0;
        if (used == 0 && made == 0)
            return fail(z, OG_E_INTERNAL, "body decoder made no progress");
    }
}

/* deflate: hold the first two bytes until they say zlib or raw. */
static int deflate_start(struct admit_inflate *z, const uint8_t **p, size_t *n, struct buf *out)
{
    while (z->nhdr < 2 && *n > 0) {
        z->hdr[z->nhdr++] = **p;
        (*p)++;
        (*n)--;
    }
    if (z->nhdr < 2)
        return 0;
    unsigned cmf = z->hdr[0], flg = z->hdr[1];
    bool zlib = (cmf & 0x0f) == 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 == 0;
    if (zlib_start(z, zlib ? 15 : -15) != 0)
        return -1;
    return zlib_feed(z, z->hdr, 2, out);
}

/* ---- zstd ---------------------------------------------------------------- */

static int zstd_fail(struct admit_inflate *z, size_t rc)
{
    switch (ZSTD_getErrorCode(rc)) {
    case ZSTD_error_frameParameter_windowTooLarge:
        return fail(z, OG_E_DECOMPRESS_CAP, "zstd frame needs a window over 8 MiB (RFC 9659)");
    case ZSTD_error_memory_allocation:
        return fail(z, OG_E_INTERNAL, "out of memory for the body decoder");
    default:
        /* ZSTD_getErrorName gives a static string. */
        return fail(z, OG_E_BAD_REQUEST, ZSTD_getErrorName(rc));
    }
}

/* Each frame's magic number is checked here, four bytes gathered across
 * reads, before libzstd sees the frame: a body is RFC 8878 frames
 * (zstd or skippable) and nothing else. libzstd as packaged also decodes
 * the pre-1.0 "legacy" formats, and it looks for their magic in the bytes
 * of the current call rather than from the frame's start, so without this
 * check whether a body was accepted would depend on how it was cut.
 *
 * The magic then goes to libzstd in a call of its own. libzstd decodes a
 * frame in one pass, straight into the output, when the whole frame is in
 * one call's input and its declared content size fits the room; that path
 * skips the ZSTD_d_windowLogMax check. It needs the frame to start in the
 * call that completes its header, so it is never taken, and every frame
 * meets the window cap. */
static int zstd_magic(struct admit_inflate *z, const uint8_t **p, size_t *n)
{
    while (z->nhdr < 4 && *n > 0) {
        z->in_frame = true; /* a body that ends here is cut */
        z->hdr[z->nhdr++] = **p;
        (*p)++;
        (*n)--;
    }
    if (z->nhdr < 4)
        return 0;
    uint32_t m = (uint32_t)z->hdr[0] | (uint32_t)z->hdr[1] << 8 | (uint32_t)z->hdr[2] << 16 |
                 (uint32_t)z->hdr[3] << 24;
    if (m != ZSTD_MAGICNUMBER && (m & ZSTD_MAGIC_SKIPPABLE_MASK) != ZSTD_MAGIC_SKIPPABLE_START)
        return fail(z, OG_E_BAD_REQUEST, "not a zstd frame (RFC 8878 frames only)");
    z->nhdr = 0;
    return 1;
}

static int zstd_feed(struct admit_inflate *z, const uint8_t *p, size_t n, struct buf *out)
{
    for (;;) {
        const uint8_t *src = p;
        size_t len = n;
        bool magic = z->frame_start;
        if (magic) {
            int rc = zstd_magic(z, &p, &n);
            if (rc <= 0)
                return rc; /* refused, or more bytes needed */
            src = z->hdr;
            len = 4;
        }
        uint8_t probe, *dst;
        size_t room;
        if (next_room(z, out, &probe, &dst, &room) != 0)
            return -1;
        ZSTD_inBuffer in = {src, len, 0};
        ZSTD_outBuffer o = {dst, room, 0};
        size_t rc = ZSTD_decompressStream(z->u.zd, &o, &in);
        if (ZSTD_isError(rc))
            return zstd_fail(z, rc);
        if (step_done(z, out, dst, &probe, o.pos) != 0)
            return -1;
        if (magic) {
            /* Four bytes are less than any frame header: all are kept. */
            if (in.pos != 4)
                return fail(z, OG_E_INTERNAL, "body decoder made no progress");
            z->frame_start = false;
            continue;
        }
        p += in.pos;
        n -= in.pos;
        /* 0: a frame is complete and flushed, and the call stopped there
         * (another may follow, magic first). A call that moved nothing says
         * only that a next frame would need input. */
        if (in.pos > 0 || o.pos > 0) {
            z->in_frame = rc != 0;
            z->frame_start = rc == 0;
        }
        if (z->frame_start)
            continue;
        /* Room left over with all input taken: everything is flushed. */
        if (n == 0 && o.pos < room)
            return 0;
        if (in.pos == 0 && o.pos == 0)
            return fail(z, OG_E_INTERNAL, "body decoder made no progress");
    }
}

/* ---- the decoder ---------------------------------------------------------- */

struct admit_inflate *admit_inflate_new(enum admit_coding coding,
                                        const struct admit_inflate_limits *lim)
{
    struct admit_inflate *z = malloc(sizeof(*z));
    if (z == NULL)
        return NULL;
    memset(z, 0, sizeof(*z));
    z->coding = coding;
    z->lim = *lim;
    z->in_frame = true;
    z->frame_start = true;
    switch (coding) {
    case ADMIT_CODING_GZIP:
        /* 15 + 32: a 32 KiB window, gzip or zlib header detected. */
        if (zlib_start(z, 15 + 32) != 0)
            goto fail;
        break;
    case ADMIT_CODING_DEFLATE: break; /* started by its first two bytes */
    case ADMIT_CODING_ZSTD:
        z->u.zd = ZSTD_createDCtx();
        if (z->u.zd == NULL)
            goto fail;
        /* A frame must not make us reserve a larger window. */
        if (ZSTD_isError(ZSTD_DCtx_setParameter(z->u.zd, ZSTD_d_windowLogMax,
                                                ADMIT_INFLATE_ZSTD_WINDOW_LOG_MAX)))
            goto fail;
        z->started = true;
        break;
    case ADMIT_CODING_IDENTITY: goto fail; /* nothing to decode: a caller's error */
    }
    return z;
fail:
    admit_inflate_free(z);
    return NULL;
}

int admit_inflate_feed(struct admit_inflate *z, const void *in, size_t n, struct buf *out)
{
    const uint8_t *p = in;
    if (z->failed)
        return -1;
    /* Input counts when it arrives: the decoder takes all of it before this
     * call returns, so the ratio is decoded / received at every step. */
    z->in += n;
    switch (z->coding) {
    case ADMIT_CODING_GZIP: return zlib_feed(z, p, n, out);
    case ADMIT_CODING_DEFLATE:
        if (!z->started) {
            if (deflate_start(z, &p, &n, out) != 0)
                return -1;
            if (!z->started)
                return 0; /* still waiting for the second byte */
        }
        return zlib_feed(z, p, n, out);
    case ADMIT_CODING_ZSTD: return zstd_feed(z, p, n, out);
    case ADMIT_CODING_IDENTITY: break;
    }
    return fail(z, OG_E_INTERNAL, "no decoder for this coding");
}

int admit_inflate_end(struct admit_inflate *z)
{
    if (z->failed)
        return -1;
    bool whole = z->coding == ADMIT_CODING_ZSTD ? !z->in_frame : z->started && z->at_end;
    if (!whole)
        return fail(z, OG_E_BAD_REQUEST,
                    z->coding == ADMIT_CODING_ZSTD   ? "truncated zstd body"
                    : z->coding == ADMIT_CODING_GZIP ? "truncated gzip body"
                                                     : "truncated deflate body");
    return 0;
}

enum og_err admit_inflate_error(const struct admit_inflate *z, const char **reason)
{
    *reason = z->reason;
    return z->err;
}

uint64_t admit_inflate_in(const struct admit_inflate *z)
{
    return z->in;
}

uint64_t admit_inflate_out(const struct admit_inflate *z)
{
    return z->out;
}

void admit_inflate_free(struct admit_inflate *z)
{
    if (z == NULL)
        return;
    if (z->coding == ADMIT_CODING_ZSTD)
        ZSTD_freeDCtx(z->u.zd); /* NULL-safe */
    else if (z->started)
        inflateEnd(&z->u.zs);
    free(z);
}
