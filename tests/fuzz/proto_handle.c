/*
 * proto_handle.c — libFuzzer target for the app-protocol dispatcher
 * (engines/proto): request header JSON + body against live in-process
 * engines, the way the reference services and micronode call it.
 * Input: byte 0 = app id (1..3) and deadline mode, bytes 1..2 = header
 * length (big-endian), then header, then body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
                           .now_ms = clock_ms += 7,
                           .has_deadline = (data[0] & 4) != 0,
                           .deadline_ms = (data[0] & 8) ? 0 : 1000};
    struct proto_resp rs;
    int code = proto_handle(&engines, &rq, &rs);
    if (code < 200 || code > 599 || rs.code != code || rs.hdr_len > sizeof(rs.hdr))
        abort();
    if (rs.body_len && rs.body == NULL)
        abort();
    proto_resp_release(&rs);
    free(hdr);
    free(body);
    return 0;
}
