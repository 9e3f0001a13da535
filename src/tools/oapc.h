/*
 * oapc.h — a small blocking OAP/1 client for tools (seed) and tests.
 *
 * The connection is the one OAP/1 endpoint (oapnet/oapnet.h) in the client
 * role, run on a private libuv loop until each step is done: the client
 * speaks exactly what omnigate's pools speak (HELLO, DATA payloads, request
 * and response streams under credit), one call at a time. Never used on a
 * worker loop.
 */
#ifndef TOOLS_OAPC_H
#define TOOLS_OAPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "oapnet/oapnet.h"

/* A blocking client connection. */
struct oapc {
    uv_loop_t loop;
    struct wbatch_set set;
    struct oapnet ep;
    struct oapnet_stream st; /* the call in flight */
    uv_timer_t timer;        /* no progress for timeout_ms: give up */
    int timeout_ms;
    uint64_t bytes_in, bytes_out, progress;
    uint64_t next_corr;
    bool inited, ready, closed, call_done;
    int call_status;
    struct oapc_resp *resp;
    char err[256]; /* last error, for messages */
};

/* A response; hdr and body point into one allocation owned by mem. hdr is
 * NUL-terminated for convenience. */
struct oapc_resp {
    int code;
    const char *hdr;
    size_t hdr_len;
    const uint8_t *body;
    size_t body_len;
    void *mem;
};

/*
 * Connect to addr (oapnet_addr_parse syntax, bare HOST:PORT allowed), send
 * our HELLO and negotiate with the peer's answer; timeout_ms (0 = none)
 * bounds how long any step may go without a byte moving. Returns 0, or -1
 * with c->err set; either way oapc_release() must be called.
 */
int oapc_connect(struct oapc *c, const char *addr, int timeout_ms);

/*
 * One request/response exchange on app protocol `app`: hdr is the DATA
 * header JSON, body may be NULL. A payload too large for one frame is sent
 * as a request stream under the peer's credit; a streamed response is
 * gathered (≤ OAPNET_IN_MAX_DEF) with credit granted as it is read.
 * Returns 0 with *r filled (r->code is the peer's status, whatever it is),
 * or -1 with c->err set: a transport or protocol failure (the connection
 * is then closed), or a malformed or oversized answer. Release *r with
 * oapc_resp_release().
 */
int oapc_call(struct oapc *c, uint16_t app, const char *hdr, size_t hdr_len, const void *body,
              size_t body_len, struct oapc_resp *r);

void oapc_resp_release(struct oapc_resp *r);

/* Close the connection and free everything. Safe on a failed connect. */
void oapc_release(struct oapc *c);

#endif
