/*
 * op.c — typed downstream requests (op.h).
 *
 * Headers are written straight into the op's own array: the keys and op
 * names are fixed ASCII and addresses are hex, so only the caller's strings
 * go through the JSON escaper (jw_escape, as every JSON the project writes).
 * That keeps a header at a few hundred instructions, no more than the
 * snprintf() it replaces on the media path. DS_OP_HDR_MAX bounds every
 * header the builders can write (strings are checked against DS_OP_STR_MAX
 * first), so the buffer never grows.
 */
#include "ds/op.h"

#include <string.h>

#include "core/dec.h"
#include "core/jw.h"

_Static_assert(DS_OP_HDR_MAX > 2 * 6 * DS_OP_STR_MAX + 2 * 20 + 64, "header bound");

enum field_kind { F_STR, F_NUM, F_ADDR };

/* One member of a header: "KEY": then a string to escape, a number or an
 * address. */
struct field {
    const char *key; /* fixed ASCII, no escaping needed */
    enum field_kind kind;
    const char *s;
    size_t n;
    uint64_t v;
    const struct cas_addr *addr;
};

static size_t put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return n;
}

/* Write {"op":"NAME", then the fields in order} into op and fill in its
 * request. Returns 0, or -1 when a string is over DS_OP_STR_MAX. */
static int build(struct ds_op *op, enum ds_service svc, const char *name, bool read,
                 const struct field *f, size_t nf)
{
    for (size_t i = 0; i < nf; i++)
        if (f[i].kind == F_STR && f[i].n > DS_OP_STR_MAX)
            return -1;
    char *h = op->hdr;
    size_t n = put(h, "{\"op\":\"");
    n += put(h + n, name);
    h[n++] = '"';
    for (size_t i = 0; i < nf; i++) {
        h[n++] = ',';
        h[n++] = '"';
        n += put(h + n, f[i].key);
        h[n++] = '"';
        h[n++] = ':';
        switch (f[i].kind) {
        case F_NUM: n += dec_u64(h + n, f[i].v); break;
        case F_ADDR:
            h[n++] = '"';
            cas_addr_format(f[i].addr, h + n);
            n += CAS_ADDR_CHARS;
            h[n++] = '"';
            break;
        case F_STR: {
            /* Within the bound: the buffer never has to grow. */
            struct buf b = {h, n, sizeof(op->hdr) - 1};
            struct jw w;
            h[n++] = '"';
            b.n = n;
            jw_init(&w, &b);
            jw_escape(&w, f[i].s, f[i].n);
            if (jw_failed(&w))
                return -1;
            n = b.n;
            h[n++] = '"';
            break;
        }
        }
    }
    h[n++] = '}';
    h[n] = '\0';
    op->req =
        (struct ds_req){.svc = svc, .op = name, .hdr = op->hdr, .hdr_len = n, .idempotent = read};
    return 0;
}

#define STR(k, p, len)                                                                             \
    {                                                                                              \
        .key = (k), .kind = F_STR, .s = (p), .n = (len)                                            \
    }
#define NUM(k, x)                                                                                  \
    {                                                                                              \
        .key = (k), .kind = F_NUM, .v = (x)                                                        \
    }
#define ADDR(k, a)                                                                                 \
    {                                                                                              \
        .key = (k), .kind = F_ADDR, .addr = (a)                                                    \
    }

int ds_op_resolve(struct ds_op *op, const char *name, size_t n)
{
    const struct field f[] = {STR("name", name, n)};
    return build(op, DS_INDEX, "resolve", true, f, 1);
}

int ds_op_search(struct ds_op *op, const char *prefix, size_t n, uint64_t limit)
{
    const struct field f[] = {STR("prefix", prefix, n), NUM("limit", limit)};
    return build(op, DS_INDEX, "search", true, f, 2);
}

int ds_op_index_put(struct ds_op *op, const char *name, size_t n)
{
    const struct field f[] = {STR("name", name, n)};
    return build(op, DS_INDEX, "put", false, f, 1);
}

int ds_op_peek(struct ds_op *op, const char *channel, size_t n, uint64_t max)
{
    const struct field f[] = {STR("channel", channel, n), NUM("max", max)};
    return build(op, DS_MAILBOX, "peek", true, f, 2);
}

int ds_op_send(struct ds_op *op, const char *channel, const char *key)
{
    const struct field f[] = {STR("channel", channel, strlen(channel)),
                              STR("key", key, strlen(key))};
    return build(op, DS_MAILBOX, "send", false, f, 2);
}

int ds_op_has(struct ds_op *op, const struct cas_addr *obj)
{
    const struct field f[] = {ADDR("obj", obj)};
    return build(op, DS_STORAGE, "has", true, f, 1);
}

int ds_op_get(struct ds_op *op, const struct cas_addr *obj, bool ranged, uint64_t off, uint64_t len)
{
    const struct field f[] = {ADDR("obj", obj), NUM("off", off), NUM("len", len)};
    if (build(op, DS_STORAGE, "get", true, f, ranged ? 3 : 1) != 0)
        return -1;
    op->req.coalesce_key = op->req.hdr;
    op->req.coalesce_key_len = op->req.hdr_len;
    return 0;
}

int ds_op_put(struct ds_op *op, struct slice expect)
{
    const struct field f[] = {STR("expect", expect.p, expect.n)};
    return build(op, DS_STORAGE, "put", false, f, expect.n ? 1 : 0);
}
