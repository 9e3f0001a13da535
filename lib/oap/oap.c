/*
 * oap.c — OAP/1 frame header, incremental decoder, encoder, status names.
 *
 * The decoder has two paths. When a whole frame sits inside one feed's input
 * it is returned as views into that input: no copy, no allocation (the common
 * case for a read buffer of 64 KiB or more). Otherwise the header is gathered
 * in a 38-byte array, validated, and only then is a buffer of exactly `len`
 * bytes (≤ max_frame) reserved for the rest of the frame (STYLE §9).
 */
#include "oap/oap.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ status */

const char *oap_status_name(int status)
{
    switch (status) {
    case OAP_OK: return "ok";
#define X(n, v, s, d)                                                                              \
    case OAP_E_##n: return s;
        OAP_STATUS_MAP(X)
#undef X
    }
    return "unknown";
}

const char *oap_strerror(int status)
{
    switch (status) {
    case OAP_OK: return "success";
#define X(n, v, s, d)                                                                              \
    case OAP_E_##n: return d;
        OAP_STATUS_MAP(X)
#undef X
    }
    return "unknown status";
}

const char *const oap_flag_names[8] = {"REQ", "RESP",    "EVENT", "START",
                                       "END", "ACK_REQ", "COMP",  "APP_E2E"};

/* ------------------------------------------------------------------ header */

uint32_t oap_max_frame_clamp(uint64_t max_frame)
{
    if (max_frame < OAP_HDR_BYTES)
        return OAP_HDR_BYTES;
    if (max_frame > OAP_MAX_FRAME_BYTES)
        return OAP_MAX_FRAME_BYTES;
    return (uint32_t)max_frame;
}

/* The rules shared by the decoder and the encoder, in wire order so the
 * reported field is the first bad one. */
static int hdr_check(const struct oap_hdr *h, uint32_t max_frame, size_t *field)
{
    if (h->len < OAP_HDR_BYTES) {
        *field = OAP_OFF_LEN;
        return OAP_E_BAD_LEN;
    }
    if (h->len > max_frame) {
        *field = OAP_OFF_LEN;
        return OAP_E_TOO_LARGE;
    }
    if (h->ver != OAP_VERSION) {
        *field = OAP_OFF_VER;
        return OAP_E_BAD_VERSION;
    }
    if (h->flags & ~OAP_FLAGS_KNOWN) {
        *field = OAP_OFF_FLAGS;
        return OAP_E_BAD_FLAGS;
    }
    if (h->cap_len && !(h->flags & OAP_FLAG_START)) {
        *field = OAP_OFF_CAP_LEN;
        return OAP_E_CAP_NOT_START;
    }
    if ((uint32_t)OAP_HDR_BYTES + h->cap_len > h->len) {
        *field = OAP_OFF_CAP_LEN;
        return OAP_E_CAP_LEN;
    }
    return 0;
}

int oap_hdr_parse(struct oap_hdr *h, const uint8_t *p, size_t n, uint32_t max_frame,
                  size_t *err_off)
{
    size_t field = 0;
    int rc;

    if (n < OAP_HDR_BYTES)
        return OAP_E_AGAIN;
    h->len = oap_get32(p + OAP_OFF_LEN);
    h->ver = oap_get16(p + OAP_OFF_VER);
    h->flags = oap_get16(p + OAP_OFF_FLAGS);
    h->code = oap_get16(p + OAP_OFF_CODE);
    h->app_proto_id = oap_get16(p + OAP_OFF_APP);
    memcpy(h->tenant, p + OAP_OFF_TENANT, OAP_TENANT_BYTES);
    h->cap_len = oap_get16(p + OAP_OFF_CAP_LEN);
    h->corr_id = oap_get64(p + OAP_OFF_CORR_ID);
    rc = hdr_check(h, oap_max_frame_clamp(max_frame), &field);
    if (rc && err_off)
        *err_off = field;
    return rc;
}

void oap_hdr_write(const struct oap_hdr *h, uint8_t out[OAP_HDR_BYTES])
{
    oap_put32(out + OAP_OFF_LEN, h->len);
    oap_put16(out + OAP_OFF_VER, h->ver);
    oap_put16(out + OAP_OFF_FLAGS, h->flags);
    oap_put16(out + OAP_OFF_CODE, h->code);
    oap_put16(out + OAP_OFF_APP, h->app_proto_id);
    memcpy(out + OAP_OFF_TENANT, h->tenant, OAP_TENANT_BYTES);
    oap_put16(out + OAP_OFF_CAP_LEN, h->cap_len);
    oap_put64(out + OAP_OFF_CORR_ID, h->corr_id);
}

/* Point f's views at a complete frame starting at p (header already parsed). */
static void frame_views(struct oap_frame *f, const struct oap_hdr *h, const uint8_t *p)
{
    f->h = *h;
    f->cap = h->cap_len ? p + OAP_HDR_BYTES : NULL;
    f->payload = p + OAP_HDR_BYTES + h->cap_len;
    f->payload_len = h->len - OAP_HDR_BYTES - h->cap_len;
}

/* ----------------------------------------------------------------- decoder */

void oap_decoder_init(struct oap_decoder *d, uint32_t max_frame)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = oap_max_frame_clamp(max_frame);
}

void oap_decoder_release(struct oap_decoder *d)
{
    free(d->buf);
    d->buf = NULL;
    d->buf_cap = 0;
    d->have = 0;
}

void oap_decoder_set_max_frame(struct oap_decoder *d, uint32_t max_frame)
{
    d->max_frame = oap_max_frame_clamp(max_frame);
}

static int fail(struct oap_decoder *d, int err, uint64_t off)
{
    d->err = err;
    d->err_off = off;
    return err;
}

int oap_decoder_feed(struct oap_decoder *d, const uint8_t *p, size_t n, size_t *consumed,
                     struct oap_frame *f)
{
    size_t pos = 0, field = 0, take;
    int rc;

    *consumed = 0;
    if (d->err)
        return d->err;

    if (d->have == 0) {
        /* The previous frame has been handed out: a big buffer is no longer
         * referenced and an idle connection should not keep it. */
        if (d->buf_cap > OAP_DECODER_KEEP_BYTES) {
            free(d->buf);
            d->buf = NULL;
            d->buf_cap = 0;
        }
        d->frame_off = d->off;
        if (n >= OAP_HDR_BYTES) {
            /* Fast path: the header is contiguous in the caller's input. */
            rc = oap_hdr_parse(&d->h, p, n, d->max_frame, &field);
            if (rc)
                return fail(d, rc, d->frame_off + field);
            if (n >= d->h.len) {
                frame_views(f, &d->h, p);
                *consumed = d->h.len;
                d->off += d->h.len;
                return 0;
            }
        }
    }

    /* Slow path: gather the header, then the frame, across feeds. */
    if (d->have < OAP_HDR_BYTES) {
        take = OAP_HDR_BYTES - d->have;
        if (take > n)
            take = n;
        memcpy(d->hdr + d->have, p, take);
        d->have += take;
        pos += take;
        if (d->have < OAP_HDR_BYTES)
            goto again;
        rc = oap_hdr_parse(&d->h, d->hdr, OAP_HDR_BYTES, d->max_frame, &field);
        if (rc) {
            d->off += pos;
            *consumed = pos;
            return fail(d, rc, d->frame_off + field);
        }
        /* len is validated (≤ max_frame): only now reserve memory for it. */
        if (d->buf_cap < d->h.len) {
            uint8_t *nb = malloc(d->h.len);
            if (!nb) {
                d->off += pos;
                *consumed = pos;
                return fail(d, OAP_E_NOMEM, d->frame_off);
            }
            free(d->buf);
            d->buf = nb;
            d->buf_cap = d->h.len;
        }
        memcpy(d->buf, d->hdr, OAP_HDR_BYTES);
    }
    take = d->h.len - d->have;
    if (take > n - pos)
        take = n - pos;
    memcpy(d->buf + d->have, p + pos, take);
    d->have += take;
    pos += take;
    if (d->have == d->h.len) {
        frame_views(f, &d->h, d->buf);
        d->have = 0;
        d->off += pos;
        *consumed = pos;
        return 0;
    }
again:
    d->off += pos;
    *consumed = pos;
    return OAP_E_AGAIN;
}

int oap_decoder_finish(struct oap_decoder *d)
{
    if (d->err)
        return d->err;
    if (d->have)
        return fail(d, OAP_E_TRUNCATED, d->off);
    return 0;
}

uint64_t oap_decoder_error_offset(const struct oap_decoder *d)
{
    return d->err ? d->err_off : 0;
}

bool oap_decoder_busy(const struct oap_decoder *d)
{
    return d->have != 0;
}

/* ----------------------------------------------------------------- encoder */

int oap_encode_hdr(struct oap_hdr *h, size_t payload_len, uint32_t max_frame,
                   uint8_t out[OAP_HDR_BYTES])
{
    uint64_t len = (uint64_t)OAP_HDR_BYTES + h->cap_len + payload_len;
    size_t field;
    int rc;

    max_frame = oap_max_frame_clamp(max_frame);
    if (len > max_frame)
        return OAP_E_TOO_LARGE;
    h->len = (uint32_t)len;
    h->ver = OAP_VERSION;
    rc = hdr_check(h, max_frame, &field);
    if (rc)
        return rc;
    oap_hdr_write(h, out);
    return 0;
}

int oap_encode_iov(struct oap_frame *f, uint32_t max_frame, uint8_t hdr[OAP_HDR_BYTES],
                   struct iovec iov[3])
{
    uint64_t len = (uint64_t)OAP_HDR_BYTES + f->h.cap_len + f->payload_len;
    int rc, n = 0;

    if (len > oap_max_frame_clamp(max_frame))
        return OAP_E_TOO_LARGE;
    if ((f->h.cap_len && !f->cap) || (f->payload_len && !f->payload))
        return OAP_E_BAD_ARG;
    rc = oap_encode_hdr(&f->h, f->payload_len, max_frame, hdr);
    if (rc)
        return rc;
    iov[n].iov_base = hdr;
    iov[n++].iov_len = OAP_HDR_BYTES;
    if (f->h.cap_len) {
        iov[n].iov_base = (void *)f->cap;
        iov[n++].iov_len = f->h.cap_len;
    }
    if (f->payload_len) {
        iov[n].iov_base = (void *)f->payload;
        iov[n++].iov_len = f->payload_len;
    }
    return n;
}

ssize_t oap_encode(struct oap_frame *f, uint32_t max_frame, uint8_t *out, size_t out_cap)
{
    uint8_t hdr[OAP_HDR_BYTES];
    struct iovec iov[3];
    size_t pos = 0;
    int n = oap_encode_iov(f, max_frame, hdr, iov);

    if (n < 0)
        return n;
    if (out_cap < f->h.len)
        return OAP_E_BUF_SMALL;
    for (int i = 0; i < n; i++) {
        memcpy(out + pos, iov[i].iov_base, iov[i].iov_len);
        pos += iov[i].iov_len;
    }
    return (ssize_t)pos;
}
