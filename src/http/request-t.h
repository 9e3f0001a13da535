/*
 * request-t.h — the parsed HTTP/1.1 request (types only, STYLE §4).
 *
 * Every slice points into the connection's read buffer (zero copy): the
 * request head stays in place until the response is done. Only the body is
 * copied, into a buffer sized after the body cap was checked.
 *
 * A struct http_req lives from the request's first byte until its response
 * is finished (the transport, net/conn.c, takes it from a per-worker free list and gives it
 * back then, to serve another connection's request): a handler must not
 * touch req, nor keep a slice of it, after the call that finishes it.
 */
#ifndef HTTP_REQUEST_T_H
#define HTTP_REQUEST_T_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/drr.h"
#include "core/status.h"

#define HTTP_HEADERS_MAX 128
#define HTTP_CORR_ID_MAX 64
/* http_req.method before the reader has read a whole method token (a head
 * that failed early, or a token llhttp does not know): labelled "unknown" in
 * metrics and logs. llhttp's methods are all >= 0 (HTTP_DELETE is 0). */
#define HTTP_METHOD_UNKNOWN (-1)

struct http_header {
    struct slice name, value;
};

struct http_conn;
struct http_ctx;
struct route;
struct http_req;

/* Called when the request is abandoned (client gone, timeout) while a
 * handler still owns it; the handler must drop every reference to req. */
typedef void (*http_cancel_fn)(struct http_req *req);

struct http_req {
    struct http_conn *conn; /* the transport's connection, through its ops (http/conn-t.h) */
    struct http_ctx *ctx;   /* the worker's handler context (http/ctx-t.h) */

    /* Head, as parsed. */
    int method; /* enum llhttp_method, or HTTP_METHOD_UNKNOWN */
    struct slice method_name, target, path, query;
    int version_minor;
    struct http_header hdrs[HTTP_HEADERS_MAX];
    unsigned nhdrs;
    bool keep_alive;
    bool expect_continue;
    bool chunked;
    int64_t content_length; /* -1: none declared */
    uint32_t head_bytes;

    /* Body, copied out of the read buffer (≤ body cap), decoded when it
     * came with a Content-Encoding. */
    struct buf body;
    uint64_t body_received; /* body bytes as they came (before decoding) */

    /* Routing. */
    const struct route *route;
    int route_id; /* metric label index */
    struct slice param;

    /* Identity and timing. */
    char corr_id[HTTP_CORR_ID_MAX + 1];
    char req_id[17];
    uint64_t t_start_ns;
    uint64_t deadline_ms; /* loop time at which the request budget ends */

    /* Response bookkeeping. */
    int status;
    const char *err_code; /* error code for the log line, or NULL */
    uint64_t bytes_out;
    bool responded;        /* head (or whole response) handed to the writer */
    bool close_after;      /* Connection: close on the response */
    bool counted_inflight; /* holds a slot of the global inflight cap */
    bool chunked_out;      /* streaming with Transfer-Encoding: chunked */
    bool head_only;        /* HEAD: headers are sent, body bytes are not */
    struct buf resp_hdrs;  /* extra response header lines, "Name: value\r\n" */

    /* Who is asking (set by the capability check). */
    const char *klass; /* "anon", "authed", "internal", or NULL before the check */
    char tenant[65];

    /* Admission (http/dispatch.h's hooks; src/admit/). */
    bool body_pending;      /* answered now, the unread body closes the connection */
    bool admitted;          /* holds an admission slot until accounted */
    int admit_class;        /* index of klass (core/drr.h's classes) once admitted or queued */
    uint32_t retry_after_s; /* Retry-After of a 429/503 answer; 0: the configured one */
    uint64_t queued_ms;     /* time waited for a slot, taken from the request's budget */
    bool abandon_on_eof;    /* the client's end of stream is a hang-up (long-poll) */
    struct drr_node wait;   /* link in the worker's queues while waiting */

    /* Per-hop timings for the log line, "index:0.41,storage:0.22". */
    char hops[160];
    size_t hops_len;

    /* Handler state. */
    void *hdata;
    http_cancel_fn on_cancel;
};

#endif
