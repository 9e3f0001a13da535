/*
 * proto_handle.c — libFuzzer target for the app-protocol dispatcher
 * (engines/proto): request header JSON + body against live in-process
 * engines, the way the reference services and micronode call it.
 * Input: byte 0 = app id (1..3), bytes 1..2 = header length (big-endian),
 * then header, then body. Whatever the parser makes of the header is also
 * written back as JSON by omnigate's header writer (src/ds/op.c) and
 * parsed again: the second parse must give the same op (the JSON path and
 * the typed path micronode takes see the same request).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ds/op.h"
#include "engines/proto/proto.h"

static struct engines engines;

static void setup(void)
{
    int st;
    struct storage_opts so = {
        .mem_cap_bytes = 8u << 20, .max_object_bytes = 1u << 20, .amnesia = true};
    struct index_opts io = {.max_names = 4096};
    struct mailbox_opts mo = {.max_channels = 64, .max_depth = 64};
    engines.storage = storage_new(&so, &st);
    engines.index = index_new(&io, &st);
    engines.mailbox = mailbox_new(&mo, &st);
    if (!engines.storage || !engines.index || !engines.mailbox)
        abort();
}

static bool same_str(struct proto_str a, struct proto_str b)
{
    return (a.p == NULL) == (b.p == NULL) && a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static bool same_op(const struct proto_op *a, const struct proto_op *b)
{
    return a->app == b->app && a->kind == b->kind && a->has_deadline == b->has_deadline &&
           a->deadline_ms == b->deadline_ms && memcmp(&a->obj, &b->obj, sizeof(a->obj)) == 0 &&
           a->has_off == b->has_off && a->has_len == b->has_len && a->off == b->off &&
           a->len == b->len && a->has_expect == b->has_expect &&
           memcmp(&a->expect, &b->expect, sizeof(a->expect)) == 0 && same_str(a->name, b->name) &&
           same_str(a->prefix, b->prefix) && a->limit == b->limit &&
           same_str(a->channel, b->channel) && same_str(a->key, b->key) && a->max == b->max &&
           a->lease_ms == b->lease_ms && a->nids == b->nids &&
           (a->nids == 0 || memcmp(a->ids, b->ids, a->nids * sizeof(a->ids[0])) == 0) &&
           a->bad == NULL && b->bad == NULL;
}

/* A parsed header, written back by omnigate's writer and parsed again, is
 * the same op. The writer may refuse only a string over DS_OP_STR_MAX. */
static void round_trip(uint16_t app, const char *hdr, size_t hl)
{
    static char out[DS_OP_HDR_MAX];
    struct proto_parsed a, b;
    struct proto_resp rs;

    if (proto_op_parse(&a, app, hdr, hl, &rs) == 0 && a.op.bad == NULL && a.op.kind != PROTO_NONE) {
        int n = ds_op_write(&a.op, NULL, out);
        if (n < 0) {
            if (a.op.name.n <= DS_OP_STR_MAX && a.op.prefix.n <= DS_OP_STR_MAX &&
                a.op.channel.n <= DS_OP_STR_MAX && a.op.key.n <= DS_OP_STR_MAX)
                abort();
        } else {
            if ((size_t)n >= DS_OP_HDR_MAX || proto_op_parse(&b, app, out, (size_t)n, &rs) != 0 ||
                !same_op(&a.op, &b.op))
                abort();
            proto_parsed_release(&b);
        }
    }
    proto_parsed_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t clock_ms = 1000;
    if (engines.storage == NULL)
        setup();
    if (size < 3)
        return 0;
    size_t hl = (size_t)data[1] << 8 | data[2];
    if (hl > size - 3)
        hl = size - 3;
    /* Private copies so that reads past either part are caught. */
    char *hdr = malloc(hl ? hl : 1);
    uint8_t *body = malloc(size - 3 - hl + 1);
    if (!hdr || !body)
        abort();
    memcpy(hdr, data + 3, hl);
    memcpy(body, data + 3 + hl, size - 3 - hl);
    struct proto_req rq = {.app = (uint16_t)(data[0] & 3),
                           .hdr = hdr,
                           .hdr_len = hl,
                           .body = body,
                           .body_len = size - 3 - hl,
                           .now_ms = clock_ms += 7};
    struct proto_resp rs;
    int code = proto_handle(&engines, &rq, &rs);
    if (code < 200 || code > 599 || rs.code != code || rs.hdr_len > sizeof(rs.hdr))
        abort();
    if (rs.body_len && rs.body == NULL)
        abort();
    proto_resp_release(&rs);
    round_trip(rq.app, hdr, hl);
    free(hdr);
    free(body);
    return 0;
}
