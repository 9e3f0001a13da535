/*
 * response.h — writing HTTP/1.1 responses.
 *
 * A response head is built once into an owned buffer (status line, cached
 * Date, Content-Length or chunked, X-Corr-ID, X-Request-ID, the handler's
 * extra headers) and written with the body as iovecs; bodies handed over as
 * a struct buf are not copied. Finishing a response records the metrics and
 * the access log line, releases the inflight slot and lets the connection
 * go on to the next (pipelined) request. Everything goes through
 * req->conn's ops (http/conn-t.h) and req->ctx: nothing here knows the
 * transport, so a test can answer into a fake writer. The calls that finish a response —
 * http_respond*, http_respond_error, http_stream_end, http_req_abandon — end
 * req's life: it must not be used after they return.
 */
#ifndef HTTP_RESPONSE_H
#define HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "http/conn-t.h"
#include "http/request-t.h"

/* Record a downstream hop's latency for the request's log line. */
void http_req_hop(struct http_req *req, const char *service, double ms);

/* Add a header line to the response being built. Returns 0 or -1 (memory). */
int http_add_header(struct http_req *req, const char *name, const char *value, size_t vlen);

/* A complete response; the body is copied (use for small bodies). */
void http_respond(struct http_req *req, int status, const char *ctype, const void *body,
                  size_t len);
/* A complete response whose body memory is taken over (body is left empty). */
void http_respond_buf(struct http_req *req, int status, const char *ctype, struct buf *body);
/* The JSON error body {"error","reason","corr_id"} with the table's status;
 * 429/503 carry Retry-After; 405 callers add Allow first. reason NULL = the
 * table's default. */
void http_respond_error(struct http_req *req, enum og_err e, const char *reason);

/* Streaming: a head, then any number of sends, then an end. content_length
 * < 0 selects chunked encoding. Each send's memory must stay valid until its
 * done callback. http_stream_end(req, false) aborts: the connection closes
 * before the declared length, so the client cannot mistake a partial body
 * for a whole one. */
int http_stream_begin(struct http_req *req, int status, const char *ctype, int64_t content_length);
int http_stream_send(struct http_req *req, const void *p, size_t n, http_write_cb done, void *arg);
void http_stream_end(struct http_req *req, bool ok);

/* The connection went away (or timed out) while a handler owned req —
 * before its response, or while streaming one: run the handler's cancel hook
 * and account for the request (a started stream keeps its status). */
void http_req_abandon(struct http_req *req, int status, const char *why);

/* Ids: generated on first use; X-Corr-ID is echoed when the client's value is
 * 1..64 characters of [A-Za-z0-9._:-]. */
void http_req_ids(struct http_req *req);

#endif
