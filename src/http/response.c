/*
 * response.c — response heads, bodies, streams, and the end of a request.
 */
#include "http/response.h"

#include <inttypes.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dec.h"
#include "core/jw.h"
#include "core/log.h"
#include "config/config.h"
#include "http/ctx.h"
#include "http/dispatch.h"
#include "http/h1.h"
#include "http/router.h"
#include "ops/metrics.h"

/* Fixed head lines are at most this long; the handler's extra header lines
 * (req->resp_hdrs) are added on top. */
#define HEAD_FIXED_MAX 512

/* ---- ids ---------------------------------------------------------------- */

static bool corr_id_ok(const struct slice *v)
{
    if (v->n == 0 || v->n > HTTP_CORR_ID_MAX)
        return false;
    for (size_t i = 0; i < v->n; i++) {
        char ch = v->p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == ':'))
            return false;
    }
    return true;
}

void http_req_ids(struct http_req *req)
{
    struct http_ctx *ctx = req->ctx;
    if (req->req_id[0] == '\0')
        http_ctx_request_id(ctx, req->req_id);
    if (req->corr_id[0] != '\0')
        return;
    const struct slice *v = req->nhdrs ? h1_header(req, "x-corr-id") : NULL;
    if (v && corr_id_ok(v)) {
        memcpy(req->corr_id, v->p, v->n);
        req->corr_id[v->n] = '\0';
    } else {
        http_ctx_request_id(ctx, req->corr_id);
    }
}

void http_req_hop(struct http_req *req, const char *service, double ms)
{
    /* "service:1.234", integer formatting (this runs per downstream call). */
    char t[48];
    size_t n = 0, sl = strlen(service);
    uint64_t us = ms > 0 ? (uint64_t)(ms * 1000.0 + 0.5) : 0;
    if (req->hops_len)
        t[n++] = ',';
    if (sl > 24)
        sl = 24;
    memcpy(t + n, service, sl);
    n += sl;
    t[n++] = ':';
    char d[DEC_U64_MAX_CHARS + 2], *de = d + sizeof(d), *ds = dec_fixed3_back(us, de);
    memcpy(t + n, ds, (size_t)(de - ds));
    n += (size_t)(de - ds);
    if (req->hops_len + n < sizeof(req->hops)) {
        memcpy(req->hops + req->hops_len, t, n);
        req->hops_len += n;
    }
}

int http_add_header(struct http_req *req, const char *name, const char *value, size_t vlen)
{
    struct buf *b = &req->resp_hdrs;
    size_t nl = strlen(name);
    if (buf_reserve(b, nl + vlen + 4) != 0)
        return -1;
    memcpy(b->p + b->n, name, nl);
    b->n += nl;
    memcpy(b->p + b->n, ": ", 2);
    b->n += 2;
    memcpy(b->p + b->n, value, vlen);
    b->n += vlen;
    memcpy(b->p + b->n, "\r\n", 2);
    b->n += 2;
    return 0;
}

/* ---- finishing ---------------------------------------------------------- */

static const char *method_label(const struct http_req *req)
{
    return req->method == HTTP_METHOD_UNKNOWN ? "unknown"
                                              : llhttp_method_name((llhttp_method_t)req->method);
}

static void access_log(struct http_req *req, uint64_t latency_us)
{
    /* 5xx lines are warnings: they stay visible at log_level = warn. */
    if (log_min_level > (req->status >= 500 ? LOG_WARN : LOG_INFO))
        return;
    struct buf *logbuf = req->ctx->logbuf;
    struct jw j;
    log_begin(&j, logbuf, req->status >= 500 ? LOG_WARN : LOG_INFO, "request");
    jw_key(&j, "route");
    jw_str(&j, req->route ? req->route->tmpl : "unmatched");
    jw_key(&j, "method");
    jw_str(&j, method_label(req));
    jw_key(&j, "status");
    jw_int(&j, req->status);
    jw_key(&j, "latency_ms");
    jw_fixed3(&j, (double)latency_us / 1000.0);
    jw_key(&j, "corr_id");
    jw_str(&j, req->corr_id);
    jw_key(&j, "req_id");
    jw_str(&j, req->req_id);
    if (req->err_code) {
        jw_key(&j, "reason");
        jw_str(&j, req->err_code);
    }
    jw_key(&j, "bytes");
    jw_uint(&j, req->bytes_out);
    if (req->klass) {
        jw_key(&j, "class");
        jw_str(&j, req->klass);
    }
    if (req->queued_ms) {
        jw_key(&j, "queue_ms");
        jw_uint(&j, req->queued_ms);
    }
    if (req->tenant[0]) {
        jw_key(&j, "tenant");
        jw_str(&j, req->tenant);
    }
    if (req->hops_len) {
        jw_key(&j, "hops");
        jw_strn(&j, req->hops, req->hops_len);
    }
    log_line_close(&j);
    if (logbuf->n > 32 * 1024)
        log_flush(logbuf);
}

/* Metrics and the log line, once per request. */
static void account(struct http_req *req)
{
    uint64_t lat_us = (uv_hrtime() - req->t_start_ns) / 1000;
    metrics_observe_request(req->ctx->m, req->route_id, req->method, req->status, lat_us);
    access_log(req, lat_us);
    http__admit_leave(req);
}

/* The response is handed over: the transport takes req back. */
static void finished(struct http_req *req)
{
    struct http_conn *c = req->conn;
    c->ops->finished(c);
}

void http_req_abandon(struct http_req *req, int status, const char *why)
{
    if (req->on_cancel) {
        http_cancel_fn fn = req->on_cancel;
        req->on_cancel = NULL;
        fn(req);
    }
    /* A stream cut off mid-body keeps the status it sent. */
    if (!req->responded)
        req->status = status;
    req->err_code = why;
    req->responded = true;
    account(req);
    finished(req);
}

/* ---- heads -------------------------------------------------------------- */

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v)
{
    return p + dec_u64(p, v);
}

/* Status line and standard headers into out (HEAD_FIXED_MAX + extra bytes).
 * content_length < 0 means chunked; -2 means no length header (1xx/204/304). */
static size_t build_head(struct http_req *req, char *out, int status, const char *ctype,
                         int64_t content_length)
{
    struct http_ctx *ctx = req->ctx;
    if (req->t_start_ns) /* parse errors answered before dispatch have none */
        metrics_observe_ttfb(ctx->m, req->route_id, (uv_hrtime() - req->t_start_ns) / 1000);
    char *p = out;
    p = PUTS(p, "HTTP/1.1 ");
    p = put_u64(p, (uint64_t)status);
    *p++ = ' ';
    const char *txt = http_status_text(status);
    p = put(p, txt, strlen(txt));
    p = PUTS(p, "\r\nServer: omnigate\r\n");
    size_t dl;
    const char *date = http_ctx_date_line(ctx, &dl);
    p = put(p, date, dl);
    if (ctype) {
        p = PUTS(p, "Content-Type: ");
        p = put(p, ctype, strlen(ctype));
        p = PUTS(p, "\r\n");
    }
    if (content_length >= 0) {
        p = PUTS(p, "Content-Length: ");
        p = put_u64(p, (uint64_t)content_length);
        p = PUTS(p, "\r\n");
    } else if (content_length == -1) {
        p = PUTS(p, "Transfer-Encoding: chunked\r\n");
    }
    p = PUTS(p, "X-Corr-ID: ");
    p = put(p, req->corr_id, strlen(req->corr_id));
    p = PUTS(p, "\r\nX-Request-ID: ");
    p = put(p, req->req_id, strlen(req->req_id));
    p = PUTS(p, "\r\n");
    if (req->close_after)
        p = PUTS(p, "Connection: close\r\n");
    else if (req->version_minor == 0)
        p = PUTS(p, "Connection: keep-alive\r\n");
    if (req->resp_hdrs.n)
        p = put(p, req->resp_hdrs.p, req->resp_hdrs.n);
    p = PUTS(p, "\r\n");
    return (size_t)(p - out);
}

/* A head block, optionally followed by a copied body or pointing to an owned one. */
struct out_block {
    void *owned_body;
    struct freelist *from; /* the worker's small blocks it came from, or NULL: malloc */
    char data[];
};

/* A block for a head with its extra headers and `extra` bytes after it: one
 * of the worker's small blocks when that fits (most answers), else malloc. */
static struct out_block *out_block_new(struct http_req *req, size_t extra)
{
    size_t need = sizeof(struct out_block) + HEAD_FIXED_MAX + req->resp_hdrs.n + extra;
    struct freelist *fl = need <= HTTP_SMALL_BLOCK ? &req->ctx->small_blocks : NULL;
    struct out_block *b = fl ? freelist_get(fl, HTTP_SMALL_BLOCK) : malloc(need);
    if (b) {
        b->owned_body = NULL;
        b->from = fl;
    }
    return b;
}

static void out_block_done(void *arg, int status)
{
    struct out_block *b = arg;
    free(b->owned_body);
    if (b->from)
        freelist_put(b->from, b, HTTP_SMALL_BLOCK);
    else
        free(b);
}

static bool bodyless_status(int status)
{
    return status < 200 || status == 204 || status == 304;
}

static void respond(struct http_req *req, int status, const char *ctype, const void *body,
                    size_t len, void *owned)
{
    struct http_conn *c = req->conn;
    if (req->responded) { /* a late second answer (e.g. after a timeout) */
        free(owned);
        return;
    }
    /* An answer before the body was read (a refusal at the head) leaves the
     * body unread on the connection: it cannot carry another request. */
    if (c->close_after_write || req->body_pending)
        req->close_after = true;
    req->status = status;
    req->responded = true;
    bool no_body = bodyless_status(status) || router_method_bit(req->method) == M_HEAD;
    size_t copy = owned || no_body ? 0 : len;
    struct out_block *b = out_block_new(req, copy);
    if (b == NULL) {
        free(owned);
        req->close_after = true;
        account(req);
        finished(req);
        c->ops->close(c);
        return;
    }
    b->owned_body = owned;
    size_t hl = build_head(req, b->data, status, bodyless_status(status) ? NULL : ctype,
                           bodyless_status(status) ? -2 : (int64_t)len);
    uv_buf_t iov[2];
    unsigned n = 1;
    iov[0] = uv_buf_init(b->data, (unsigned)hl);
    if (!no_body && len) {
        if (owned) {
            iov[1] = uv_buf_init((char *)body, (unsigned)len);
            n = 2;
        } else {
            memcpy(b->data + hl, body, len);
            iov[0].len += (unsigned)len;
        }
    }
    req->bytes_out = iov[0].len + (n == 2 ? iov[1].len : 0);
    if (c->ops->write(c, iov, n, out_block_done, b) != 0) {
        out_block_done(b, 0);
        req->close_after = true;
    }
    account(req);
    finished(req);
}

void http_respond(struct http_req *req, int status, const char *ctype, const void *body, size_t len)
{
    respond(req, status, ctype, body, len, NULL);
}

void http_respond_buf(struct http_req *req, int status, const char *ctype, struct buf *body)
{
    void *p = body->p;
    size_t n = body->n;
    body->p = NULL;
    body->n = body->cap = 0;
    if (n == 0) {
        free(p);
        respond(req, status, ctype, NULL, 0, NULL);
        return;
    }
    respond(req, status, ctype, p, n, p);
}

void http_respond_error(struct http_req *req, enum og_err e, const char *reason)
{
    if (req->responded)
        return;
    http_req_ids(req);
    req->err_code = og_err_code(e);
    metrics_rejected(req->ctx->m, e);
    int status = og_err_http(e);
    if (status == 429 || status == 503) {
        char ra[24];
        int64_t secs = req->retry_after_s ? req->retry_after_s : req->ctx->cfg->retry_after_s;
        int n = snprintf(ra, sizeof(ra), "%" PRId64, secs);
        if (http_add_header(req, "Retry-After", ra, (size_t)n) != 0)
            req->close_after = true;
    }
    if (status == 408 || status == 413 || status == 431 || status == 400)
        req->close_after = true; /* framing may be lost: do not reuse */
    struct buf body = {0};
    struct jw j;
    jw_init(&j, &body);
    jw_obj_open(&j);
    og_err_json(&j, e, reason ? reason : og_err_reason(e));
    jw_key(&j, "corr_id");
    jw_str(&j, req->corr_id);
    jw_obj_close(&j);
    if (jw_failed(&j)) {
        buf_release(&body);
        respond(req, status, "application/json", "{\"error\":\"internal\"}", 20, NULL);
        return;
    }
    http_respond_buf(req, status, "application/json", &body);
}

/* ---- streams ------------------------------------------------------------ */

struct chunk_frame {
    char pre[20];
    http_write_cb done;
    void *arg;
};

static void chunk_done(void *arg, int status)
{
    struct chunk_frame *f = arg;
    if (f->done)
        f->done(f->arg, status);
    free(f);
}

int http_stream_begin(struct http_req *req, int status, const char *ctype, int64_t content_length)
{
    struct http_conn *c = req->conn;
    if (req->responded)
        return -1;
    if (c->close_after_write || req->body_pending)
        req->close_after = true;
    req->status = status;
    req->responded = true;
    req->chunked_out = content_length < 0;
    bool no_body = router_method_bit(req->method) == M_HEAD;
    req->head_only = no_body;
    struct out_block *b = out_block_new(req, 0);
    if (b == NULL)
        return -1;
    size_t hl = build_head(req, b->data, status, ctype, content_length < 0 ? -1 : content_length);
    uv_buf_t iov = uv_buf_init(b->data, (unsigned)hl);
    req->bytes_out += hl;
    if (c->ops->write(c, &iov, 1, out_block_done, b) != 0) {
        out_block_done(b, 0);
        return -1;
    }
    return 0;
}

int http_stream_send(struct http_req *req, const void *p, size_t n, http_write_cb done, void *arg)
{
    struct http_conn *c = req->conn;
    if (req->head_only || n == 0) {
        if (done)
            done(arg, 0);
        return 0;
    }
    req->bytes_out += n;
    if (!req->chunked_out) {
        uv_buf_t iov = uv_buf_init((char *)p, (unsigned)n);
        return c->ops->write(c, &iov, 1, done, arg);
    }
    struct chunk_frame *f = malloc(sizeof(*f));
    if (f == NULL)
        return UV_ENOMEM;
    f->done = done;
    f->arg = arg;
    int pl = snprintf(f->pre, sizeof(f->pre), "%zx\r\n", n);
    uv_buf_t iov[3] = {uv_buf_init(f->pre, (unsigned)pl), uv_buf_init((char *)p, (unsigned)n),
                       uv_buf_init((char *)"\r\n", 2)};
    int rc = c->ops->write(c, iov, 3, chunk_done, f);
    if (rc != 0)
        free(f);
    return rc;
}

void http_stream_end(struct http_req *req, bool ok)
{
    struct http_conn *c = req->conn;
    if (!ok) {
        req->close_after = true;
        req->err_code = "aborted";
        account(req);
        finished(req);
        c->ops->close(c); /* before the declared length: the client sees a short body */
        return;
    }
    if (req->chunked_out && !req->head_only) {
        uv_buf_t iov = uv_buf_init((char *)"0\r\n\r\n", 5);
        if (c->ops->write(c, &iov, 1, NULL, NULL) != 0)
            req->close_after = true;
        req->bytes_out += 5;
    }
    account(req);
    finished(req);
}
