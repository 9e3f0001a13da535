/*
 * walrec.c — record frames of the logs and snapshots (walrec.h).
 *
 * Each type's body is described once, as a layout: a list of fields, each
 * a kind and the place of its value in struct walrec. The encoder and the
 * decoder walk the same list, so the two cannot disagree on a format.
 *
 * The checksum is zlib's CRC-32 (a library already linked, DESIGN §12).
 * It covers the length field too, so a length corrupted into another
 * plausible value is caught by the CRC rather than read as a shorter frame.
 */
#include "services/durable/walrec.h"

#include <stdbool.h>
#include <string.h>
#include <zlib.h>

enum fkind { F_U8, F_U32, F_U64, F_SEED, F_STR8, F_STR32, F_IDS };

struct field {
    enum fkind kind;
    size_t off; /* of the value in struct walrec */
};

#define AT(member) offsetof(struct walrec, member)
static const struct field L_FILE[] = {{F_U32, AT(magic)}, {F_U8, AT(version)}, {F_U8, AT(kind)},
                                      {F_U8, AT(role)},   {F_U64, AT(gen)},    {F_SEED, AT(seed)}};
static const struct field L_END[] = {{F_U64, AT(count)}};
static const struct field L_MB_SEND[] = {{F_STR8, AT(name)},   {F_U64, AT(id)},
                                         {F_U64, AT(sent_ms)}, {F_STR8, AT(key)},
                                         {F_STR8, AT(media)},  {F_STR32, AT(body)}};
static const struct field L_MB_ACK[] = {{F_STR8, AT(name)}, {F_IDS, AT(ids)}};
static const struct field L_MB_CHANNEL[] = {{F_STR8, AT(name)}, {F_U64, AT(next_id)}};
static const struct field L_MB_KEY[] = {{F_STR8, AT(name)},
                                        {F_STR8, AT(key)},
                                        {F_U64, AT(id)},
                                        {F_U64, AT(expires_ms)},
                                        {F_U64, AT(body_hash)}};
static const struct field L_IX_PUT[] = {{F_STR8, AT(name)}, {F_STR32, AT(body)}};

#define LAYOUT(t, l) [t] = {(l), sizeof(l) / sizeof((l)[0])}
static const struct {
    const struct field *f;
    size_t n;
} LAYOUTS[WALREC__TYPES] = {
    LAYOUT(WALREC_FILE, L_FILE),
    LAYOUT(WALREC_END, L_END),
    LAYOUT(WALREC_MB_SEND, L_MB_SEND),
    LAYOUT(WALREC_MB_ACK, L_MB_ACK),
    LAYOUT(WALREC_MB_CHANNEL, L_MB_CHANNEL),
    LAYOUT(WALREC_MB_KEY, L_MB_KEY),
    LAYOUT(WALREC_IX_PUT, L_IX_PUT),
};

static bool type_known(unsigned t)
{
    return t < WALREC__TYPES && LAYOUTS[t].f != NULL;
}

static uint32_t frame_crc(const uint8_t *len_le, const uint8_t *rest, size_t n)
{
    uLong c = crc32_z(0L, len_le, 4);
    return (uint32_t)crc32_z(c, rest, n);
}

/* ------------------------------------------------------------- encode */

/* Bytes of r's body, or SIZE_MAX when a field is over its size. */
static size_t body_size(const struct walrec *r)
{
    size_t n = 0;

    for (size_t i = 0; i < LAYOUTS[r->type].n; i++) {
        const struct field *f = &LAYOUTS[r->type].f[i];
        const void *v = (const char *)r + f->off;
        switch (f->kind) {
        case F_U8: n += 1; break;
        case F_U32: n += 4; break;
        case F_U64: n += 8; break;
        case F_SEED: n += WALREC_SEED_BYTES; break;
        case F_STR8:
            if (((const struct walrec_bytes *)v)->n > UINT8_MAX)
                return SIZE_MAX;
            n += 1 + ((const struct walrec_bytes *)v)->n;
            break;
        case F_STR32:
            if (((const struct walrec_bytes *)v)->n > WALREC_MAX_BYTES)
                return SIZE_MAX;
            n += 4 + ((const struct walrec_bytes *)v)->n;
            break;
        case F_IDS:
            if (r->nids > WALREC_IDS_MAX)
                return SIZE_MAX;
            n += 2 + 8 * r->nids;
            break;
        }
    }
    return n;
}

static uint8_t *put_le(uint8_t *w, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)(v >> (8 * i));
    return w + bytes;
}

static uint8_t *put_bytes(uint8_t *w, const void *p, size_t n)
{
    if (n > 0)
        memcpy(w, p, n);
    return w + n;
}

int walrec_encode(struct buf *out, const struct walrec *r)
{
    size_t body, len;
    uint8_t *start, *w;

    if (!type_known(r->type) || (body = body_size(r)) == SIZE_MAX || body + 1 > WALREC_MAX_BYTES)
        return -1;
    len = 1 + body;
    if (buf_reserve(out, 8 + len) != 0)
        return -1;
    start = (uint8_t *)out->p + out->n;
    w = put_le(start, len, 4) + 4; /* the crc goes in last */
    *w++ = (uint8_t)r->type;
    for (size_t i = 0; i < LAYOUTS[r->type].n; i++) {
        const struct field *f = &LAYOUTS[r->type].f[i];
        const char *v = (const char *)r + f->off;
        const struct walrec_bytes *b = (const struct walrec_bytes *)v;
        switch (f->kind) {
        case F_U8: w = put_le(w, *(const uint8_t *)v, 1); break;
        case F_U32: w = put_le(w, *(const uint32_t *)v, 4); break;
        case F_U64: w = put_le(w, *(const uint64_t *)v, 8); break;
        case F_SEED: w = put_bytes(w, v, WALREC_SEED_BYTES); break;
        case F_STR8: w = put_bytes(put_le(w, b->n, 1), b->p, b->n); break;
        case F_STR32: w = put_bytes(put_le(w, b->n, 4), b->p, b->n); break;
        case F_IDS:
            w = put_le(w, r->nids, 2);
            for (size_t k = 0; k < r->nids; k++)
                w = put_le(w, r->ids[k], 8);
            break;
        }
    }
    put_le(start + 4, frame_crc(start, start + 8, len), 4);
    out->n += 8 + len;
    return 0;
}

/* ------------------------------------------------------------- decode */

static uint64_t get_le(const uint8_t *p, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Take `bytes` from the body: the cursor, or NULL past its end. */
static const uint8_t *take(const uint8_t **at, const uint8_t *end, size_t bytes)
{
    const uint8_t *p = *at;
    if ((size_t)(end - p) < bytes)
        return NULL;
    *at = p + bytes;
    return p;
}

/* Fill r's fields from body[0..n): 0, or -1 unless the layout fits it
 * exactly. */
static int parse_body(struct walrec *r, const uint8_t *body, size_t n)
{
    const uint8_t *at = body, *end = body + n, *p;

    for (size_t i = 0; i < LAYOUTS[r->type].n; i++) {
        const struct field *f = &LAYOUTS[r->type].f[i];
        char *v = (char *)r + f->off;
        struct walrec_bytes *b = (struct walrec_bytes *)v;
        size_t len;
        switch (f->kind) {
        case F_U8:
            if ((p = take(&at, end, 1)) == NULL)
                return -1;
            *(uint8_t *)v = p[0];
            break;
        case F_U32:
            if ((p = take(&at, end, 4)) == NULL)
                return -1;
            *(uint32_t *)v = (uint32_t)get_le(p, 4);
            break;
        case F_U64:
            if ((p = take(&at, end, 8)) == NULL)
                return -1;
            *(uint64_t *)v = get_le(p, 8);
            break;
        case F_SEED:
            if ((p = take(&at, end, WALREC_SEED_BYTES)) == NULL)
                return -1;
            memcpy(v, p, WALREC_SEED_BYTES);
            break;
        case F_STR8:
        case F_STR32:
            if ((p = take(&at, end, f->kind == F_STR8 ? 1 : 4)) == NULL)
                return -1;
            len = f->kind == F_STR8 ? p[0] : (size_t)get_le(p, 4);
            if ((b->p = take(&at, end, len)) == NULL)
                return -1;
            b->n = len;
            break;
        case F_IDS:
            if ((p = take(&at, end, 2)) == NULL)
                return -1;
            len = (size_t)get_le(p, 2);
            if (len > WALREC_IDS_MAX || (p = take(&at, end, 8 * len)) == NULL)
                return -1;
            for (size_t k = 0; k < len; k++)
                r->ids_buf[k] = get_le(p + 8 * k, 8);
            r->ids = r->ids_buf;
            r->nids = len;
            break;
        }
    }
    return at == end ? 0 : -1;
}

int walrec_decode(const uint8_t *p, size_t n, struct walrec *r, size_t *used)
{
    uint32_t len;

    if (n < 8)
        return WALREC_SHORT;
    len = (uint32_t)get_le(p, 4);
    if (len == 0 || len > WALREC_MAX_BYTES)
        return WALREC_BAD;
    if (n - 8 < len)
        return WALREC_SHORT;
    if ((uint32_t)get_le(p + 4, 4) != frame_crc(p, p + 8, len) || !type_known(p[8]))
        return WALREC_BAD;
    r->type = (enum walrec_type)p[8];
    if (parse_body(r, p + 9, len - 1) != 0)
        return WALREC_BAD;
    *used = 8 + (size_t)len;
    return WALREC_OK;
}
