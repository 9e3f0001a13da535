/*
 * oap_dump.c — `omnigate oap-dump`: OAP/1 frames from stdin as JSON lines.
 *
 * One line per frame, fields in wire order:
 *   {"offset":0,"len":..,"ver":1,"flags":["REQ"],"code":0,"app_proto_id":0,
 *    "tenant":"<32 hex>","cap_len":0,"corr_id":1,"payload_len":..,
 *    "data_hdr":{...}}
 * "data_hdr" appears when the payload parses as a DATA payload, "hello" for
 * a HELLO payload, "credit" for a credit grant. A decode error prints
 * {"error":"<name>","offset":N} (stream offset) and exits 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oap/data.h"
#include "oap/hello.h"
#include "oap/oap.h"
#include "oap/stream.h"
#include "tools/tools_oap.h"

#define DUMP_READ_BYTES 65536

static void dump_frame(const struct oap_frame *f, uint64_t off)
{
    static const char HEX[] = "0123456789abcdef";
    char tenant[2 * OAP_TENANT_BYTES + 1];
    const char *sep = "";
    struct oap_data d;
    struct oap_hello hello;
    json_t *hdr = NULL;
    uint32_t grant;

    for (int i = 0; i < OAP_TENANT_BYTES; i++) {
        tenant[2 * i] = HEX[f->h.tenant[i] >> 4];
        tenant[2 * i + 1] = HEX[f->h.tenant[i] & 15];
    }
    tenant[2 * OAP_TENANT_BYTES] = '\0';
    printf("{\"offset\":%" PRIu64 ",\"len\":%u,\"ver\":%u,\"flags\":[", off, f->h.len,
           (unsigned)f->h.ver);
    for (int b = 0; b < 8; b++) {
        if (f->h.flags & (1u << b)) {
            printf("%s\"%s\"", sep, oap_flag_names[b]);
            sep = ",";
        }
    }
    printf("],\"code\":%u,\"app_proto_id\":%u,\"tenant\":\"%s\",\"cap_len\":%u,"
           "\"corr_id\":%" PRIu64 ",\"payload_len\":%zu",
           (unsigned)f->h.code, (unsigned)f->h.app_proto_id, tenant, (unsigned)f->h.cap_len,
           f->h.corr_id, f->payload_len);
    if (f->h.flags & (OAP_FLAG_COMP | OAP_FLAG_APP_E2E)) {
        /* compressed or end-to-end opaque: nothing to interpret */
    } else if (oap_credit_is(f)) {
        if (oap_credit_parse(f, &grant) == 0)
            printf(",\"credit\":%u", grant);
    } else if (f->h.app_proto_id == OAP_APP_HELLO) {
        if (oap_hello_parse(&hello, f->payload, f->payload_len) == 0) {
            printf(",\"hello\":{\"max_frame\":%u,\"max_inflight\":%u,\"flags\":%u,"
                   "\"versions\":[",
                   hello.max_frame, hello.max_inflight, (unsigned)hello.flags);
            sep = "";
            for (unsigned v = 1; v <= 32; v++) {
                if (hello.versions & (1u << (v - 1))) {
                    printf("%s%u", sep, v);
                    sep = ",";
                }
            }
            printf("]}");
        }
    } else if (oap_data_parse(&d, f->payload, f->payload_len, &hdr) == 0) {
        char *s = json_dumps(hdr, JSON_COMPACT);
        if (s)
            printf(",\"data_hdr\":%s,\"body_len\":%zu", s, d.body_len);
        free(s);
        json_decref(hdr);
    }
    printf("}\n");
}

int tool_oap_dump_main(int argc, char **argv)
{
    static uint8_t buf[DUMP_READ_BYTES];
    struct oap_decoder dec;
    struct oap_frame f;
    int rc = 0;

    oap_decoder_init(&dec, OAP_MAX_FRAME_BYTES);
    for (;;) {
        ssize_t n = read(0, buf, sizeof(buf));
        const uint8_t *p = buf;
        size_t left, used;

        if (n == -1) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s: read: %s\n", argv[0], strerror(errno));
            rc = 2;
            goto out;
        }
        if (n == 0)
            break;
        left = (size_t)n;
        while (left) {
            int r = oap_decoder_feed(&dec, p, left, &used, &f);
            p += used;
            left -= used;
            if (r == 0) {
                /* frame_off is where this frame began, even across reads */
                dump_frame(&f, dec.frame_off);
                continue;
            }
            if (r == OAP_E_AGAIN)
                break;
            goto fail;
        }
    }
    if (oap_decoder_finish(&dec) == 0)
        goto out;
fail:
    printf("{\"error\":\"%s\",\"offset\":%" PRIu64 "}\n", oap_status_name(dec.err),
           oap_decoder_error_offset(&dec));
    rc = 1;
out:
    oap_decoder_release(&dec);
    fflush(stdout);
    return rc;
}
