/*
 * oap_decode.c — libFuzzer target: the OAP/1 decoder on arbitrary bytes.
 *
 * The first input byte picks the feed size (1..256, or whole input) and a
 * max_frame; the rest is the stream. Every frame must satisfy the header
 * invariants; payloads are run through the DATA, HELLO, credit and (COMP)
 * inflate helpers, which must return a status and never crash.
 */
#include <stdlib.h>
#include <string.h>

#include "oap/comp.h"
#include "oap/data.h"
#include "oap/hello.h"
#include "oap/oap.h"
#include "oap/stream.h"

static void check_frame(const struct oap_frame *f, uint32_t max_frame)
{
    struct oap_data d;
    struct oap_hello h;
    json_t *hdr;
    uint32_t n;

    if (f->h.len < OAP_HDR_BYTES || f->h.len > max_frame || f->h.ver != OAP_VERSION ||
        (f->h.flags & ~OAP_FLAGS_KNOWN) || (f->h.cap_len && !(f->h.flags & OAP_FLAG_START)) ||
        OAP_HDR_BYTES + f->h.cap_len + f->payload_len != f->h.len)
        abort();
    if (oap_data_parse(&d, f->payload, f->payload_len, &hdr) == 0) {
        struct cas_addr a;
        (void)oap_data_obj(hdr, &a);
        json_decref(hdr);
    }
    (void)oap_hello_parse(&h, f->payload, f->payload_len);
    (void)oap_credit_parse(f, &n);
    if (f->h.flags & OAP_FLAG_COMP) {
        static uint8_t out[1 << 16];
        size_t len;
        (void)oap_inflate_once(f->payload, f->payload_len, out, sizeof(out), max_frame, &len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct oap_decoder d;
    struct oap_frame f;
    size_t step, used, pos = 0;
    uint32_t max_frame;
    int rc = OAP_E_AGAIN;

    if (size < 1)
        return 0;
    step = data[0] & 0x80 ? size : (size_t)(data[0] & 0x7f) + 1;
    max_frame = data[0] & 0x40 ? 4096 : OAP_MAX_FRAME_BYTES;
    data++;
    size--;
    oap_decoder_init(&d, max_frame);
    while (pos < size) {
        size_t n = size - pos < step ? size - pos : step;
        /* a fresh copy per feed, so a view kept into an old feed is caught */
        uint8_t *piece = malloc(n);
        if (!piece)
            break;
        memcpy(piece, data + pos, n);
        size_t k = 0;
        while (k < n) {
            rc = oap_decoder_feed(&d, piece + k, n - k, &used, &f);
            k += used;
            if (rc == 0)
                check_frame(&f, max_frame);
            else
                break;
        }
        free(piece);
        pos += k;
        if (rc != 0 && rc != OAP_E_AGAIN)
            break;
        if (k < n && rc == OAP_E_AGAIN)
            abort(); /* AGAIN must consume everything */
    }
    rc = oap_decoder_finish(&d);
    if (rc != 0 && strcmp(oap_status_name(rc), "unknown") == 0)
        abort();
    oap_decoder_release(&d);
    return 0;
}
