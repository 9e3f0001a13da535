/*
 * hello.h — OAP/1 HELLO (app_proto_id 0): limits exchanged at connection start.
 *
 * Payload (docs/OAP.md "HELLO"): one JSON object, at most
 * OAP_HELLO_MAX_BYTES, e.g.
 *   {"max_frame":1048576,"max_inflight":64,"flags":255,"versions":[1]}
 * The client sends it with REQ, the server answers with RESP and code 200;
 * each side then uses oap_hello_negotiate() on both announcements.
 */
#ifndef OAP_HELLO_H
#define OAP_HELLO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "oap/oap-t.h"

#define OAP_HELLO_MAX_BYTES        1024
#define OAP_HELLO_MAX_INFLIGHT_DEF 64
#define OAP_HELLO_MAX_INFLIGHT_MAX 65535

struct oap_hello {
    uint32_t max_frame;    /* 38 .. OAP_MAX_FRAME_BYTES */
    uint32_t max_inflight; /* 1 .. 65535 */
    uint16_t flags;        /* supported flag bits, subset of OAP_FLAGS_KNOWN */
    uint32_t versions;     /* bit v-1 set when version v (1..32) is supported */
};

/* Our own announcement: OAP_MAX_FRAME_BYTES, 64, all flags, version 1. */
void oap_hello_defaults(struct oap_hello *h);

/*
 * Write h as the HELLO JSON into out (no NUL). Returns the byte count,
 * OAP_E_BAD_HELLO when h is out of range, or OAP_E_BUF_SMALL.
 */
ssize_t oap_hello_encode(const struct oap_hello *h, char *out, size_t cap);

/*
 * Parse a HELLO payload (jansson, JSON_REJECT_DUPLICATES). Must be an object
 * of at most OAP_HELLO_MAX_BYTES; "max_frame" is required, "max_inflight"
 * (default 64), "flags" (default 255) and "versions" (default [1]) are
 * optional; unknown keys are ignored; versions above 32 are ignored.
 * Returns 0 or OAP_E_BAD_HELLO.
 */
int oap_hello_parse(struct oap_hello *h, const void *p, size_t n);

/*
 * Combine two announcements: the smaller max_frame and max_inflight, the
 * common flags and versions. Returns 0, or OAP_E_BAD_VERSION when the two
 * sides share no version (then out is unspecified).
 */
int oap_hello_negotiate(const struct oap_hello *a, const struct oap_hello *b,
                        struct oap_hello *out);

#endif
