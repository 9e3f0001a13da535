/*
 * h1.h — HTTP/1.1 request reading: llhttp glue, strictness and limits.
 *
 * A pure, resumable reader (STYLE §13): bytes in, a result out, no I/O. It
 * fills a struct http_req whose slices point into the caller's buffer; the
 * caller must keep the head bytes where they are until the request is done.
 * Limits are checked as bytes arrive, before any allocation: head size,
 * header count, declared and streamed body size.
 */
#ifndef HTTP_H1_H
#define HTTP_H1_H

#include <llhttp.h>
#include <stddef.h>

#include "admit/inflate.h"
#include "http/request-t.h"

enum h1_result {
    H1_NEED_MORE = 0, /* all input consumed, request not finished */
    H1_HEAD_DONE,     /* head parsed and checked; call again for the body */
    H1_REQ_DONE,      /* a whole request is ready */
    H1_ERROR,         /* see h1->err and h1->err_reason; close after answering */
};

struct h1_limits {
    size_t header_max;
    unsigned header_count_max;
    size_t body_max;           /* bytes received, and bytes decoded from a coded body */
    unsigned decompress_ratio; /* decoded ≤ this × received + slack; 0 = no ratio cap */
};

struct h1 {
    llhttp_t p;
    struct http_req *req;
    struct h1_limits lim;
    const char *base;  /* start of the caller's buffer, for offsets */
    size_t head_start; /* offset of the request's first byte */
    bool in_head, in_body;
    bool last_was_value;
    size_t trailer_bytes;          /* chunked trailer fields seen (dropped, capped) */
    enum admit_coding coding;      /* the body's Content-Encoding */
    struct admit_inflate *inflate; /* its decoder, from the first body byte to the last */
    enum og_err err;
    const char *err_reason;
};

void h1_init(struct h1 *h, const struct h1_limits *lim);

/* Bind the next request to fill. Call before feeding a new request's bytes.
 * req->method is HTTP_METHOD_UNKNOWN until a whole method token was read. */
void h1_begin(struct h1 *h, struct http_req *req);

/* Free what the reader holds for a request it did not finish reading (the
 * decoder of a coded body, up to its window). The reader frees it itself when
 * a body ends or is refused; the owner calls this when it drops a request
 * mid-body (connection closed, timeout). Safe to call at any time. */
void h1_release(struct h1 *h);

/* Feed bytes buf[off, len). `buf` must stay the same buffer for a request's
 * head. Returns the result and sets *consumed to the bytes parsed. After
 * H1_HEAD_DONE or H1_REQ_DONE, unconsumed bytes belong to what follows. */
enum h1_result h1_feed(struct h1 *h, const char *buf, size_t off, size_t len, size_t *consumed);

/* Header lookup, ASCII case-insensitive. Returns NULL if absent. */
const struct slice *h1_header(const struct http_req *req, const char *name);

#endif
