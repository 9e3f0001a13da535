/*
 * objects.c — object and media delivery.
 *
 * A GET is HAS (size) → conditionals and Range → a streamed GET of exactly
 * the bytes to send (ds_call_stream). Each chunk storage hands over (about
 * 64 KiB) is written to the client as it arrives and released when the
 * socket took it; the release is what lets storage send the next one. So at
 * most [media] stream_window chunks of a response are in omnigate's memory
 * whatever the object's size, a slow client slows storage down, and the
 * write timeout cuts off a client that stops reading.
 *
 * Integrity (DESIGN §4): a whole object is hashed chunk by chunk as it is
 * sent, and the last chunk is written only after the final hash matched the
 * address; on a mismatch the connection is closed short of Content-Length,
 * so no client can take the bytes for the object. A range cannot be checked
 * against the address of the whole object: it is served as the storage
 * service read it for that address (docs/API.md says exactly this).
 * Storage sending more or fewer bytes than asked, or failing mid-body, also
 * ends the response short of its length.
 */
#include "media/objects.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cas/cas.h"
#include "config/config.h"
#include "core/log.h"
#include "ds/ds.h"
#include "ds/op.h"
#include "handler/hctx.h"
#include "http/h1.h"
#include "http/range.h"
#include "http/response.h"
#include "http/router.h"
#include "media/integrity.h"

enum obj_phase { PH_RESOLVE, PH_HAS, PH_GET, PH_STREAM };

struct obj_ctx;

/* Bytes from storage being written to the client. */
struct obj_write {
    struct obj_ctx *o;
    void *chunk;          /* ds chunk owner: released when the write is done */
    struct ds_resp *kept; /* or a whole (small) answer */
};

struct obj_ctx {
    struct http_req *req; /* NULL once the request is gone */
    struct ds_call *call;
    enum obj_phase phase;
    struct cas_addr addr;
    char addr_s[CAS_ADDR_CHARS + 1];
    char etag[CAS_ADDR_CHARS + 3];
    char ctype[96];
    uint64_t size, first, last;
    bool ranged;
    /* streaming */
    uint64_t len, got;    /* bytes to send; bytes storage handed over */
    unsigned inflight;    /* chunk writes not done yet */
    uint32_t free_writes; /* bit i set: writes[i] is free */
    struct obj_write writes[DS_STREAM_WINDOW_MAX];
    struct cas_hasher h;
};

static void ctx_free(struct obj_ctx *o)
{
    free(o);
}

/* Free o once nothing refers to it: no request, no call, no write. */
static void maybe_free(struct obj_ctx *o)
{
    if (o->req == NULL && o->call == NULL && o->inflight == 0)
        ctx_free(o);
}

static void obj_cancel(struct http_req *req)
{
    struct obj_ctx *o = req->hdata;
    o->req = NULL;
    if (o->call) {
        ds_cancel(o->call);
        o->call = NULL;
    }
    maybe_free(o); /* else: the last chunk's write callback frees it */
}

static void object_headers(struct obj_ctx *o)
{
    struct http_req *req = o->req;
    int rc = http_add_header(req, "ETag", o->etag, strlen(o->etag));
    rc |= http_add_header(req, "Accept-Ranges", "bytes", 5);
    rc |= http_add_header(req, "Cache-Control", "public, max-age=31536000, immutable", 35);
    if (rc)
        req->close_after = true;
}

/* The headers of a 200, or of a 206 with its Content-Range when the
 * request is ranged. Returns the status. */
static int ok_headers(struct obj_ctx *o)
{
    struct http_req *req = o->req;
    object_headers(o);
    if (!o->ranged)
        return 200;
    char cr[80];
    int n = snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)o->first,
                     (unsigned long long)o->last, (unsigned long long)o->size);
    if (http_add_header(req, "Content-Range", cr, (size_t)n) != 0)
        req->close_after = true;
    return 206;
}

static void done_with_req(struct obj_ctx *o)
{
    if (o->req)
        o->req->on_cancel = NULL;
    o->req = NULL;
}

/* Start o's next call, a read, bounded by the request deadline itself,
 * answered whole to cb, or streamed to cbs when cbs is not NULL. When it
 * cannot even be queued, the request is answered 500 and o freed. */
static void obj_call(struct obj_ctx *o, struct ds_req *dr, ds_cb cb,
                     const struct ds_stream_cbs *cbs)
{
    struct http_req *req = o->req;
    dr->deadline_ms = req->deadline_ms;
    dr->corr_id = req->corr_id;
    if (cbs)
        o->call = ds_call_stream(hctx_ds(req), dr, cbs, o);
    else
        o->call = ds_call(hctx_ds(req), dr, cb, o);
    if (o->call == NULL) {
        done_with_req(o);
        ctx_free(o);
        http_respond_error(req, OG_E_INTERNAL, NULL);
    }
}

static void fail_call(struct obj_ctx *o, const struct ds_resp *r, const char *what)
{
    struct http_req *req = o->req;
    done_with_req(o);
    ctx_free(o);
    enum og_err e = hctx_call_err(r->code, r->err);
    http_respond_error(req, e, e == OG_E_NOT_FOUND ? "no such object" : what);
}

/* o's call answered r (its latency goes to the hop list as hop). Returns
 * true for a 200; otherwise the request is failed with what and o freed. */
static bool answered(struct obj_ctx *o, struct ds_resp *r, const char *hop, const char *what)
{
    o->call = NULL;
    http_req_hop(o->req, hop, r->latency_ms);
    if (r->code == 200)
        return true;
    fail_call(o, r, what);
    return false;
}

/* ---- the pump ----------------------------------------------------------- */

/* The response is over: complete (every byte handed to the socket), or cut
 * short of Content-Length. The storage stream is let go either way. */
static void stream_stop(struct obj_ctx *o, bool ok)
{
    struct http_req *req = o->req;
    if (o->call) {
        ds_cancel(o->call);
        o->call = NULL;
    }
    if (req) {
        done_with_req(o);
        http_stream_end(req, ok);
    }
    maybe_free(o);
}

static void on_chunk_sent(void *arg, int status)
{
    struct obj_write *wr = arg;
    struct obj_ctx *o = wr->o;
    o->free_writes |= 1u << (wr - o->writes);
    o->inflight--;
    ds_chunk_done(wr->chunk); /* storage may send one more */
    ds_resp_free(wr->kept);
    if (status < 0 && o->req) {
        stream_stop(o, false); /* the connection is closing */
        return;
    }
    maybe_free(o);
}

/* Send n bytes from storage, owned by chunk or kept (released once the
 * socket took them): hash, check the whole before the last byte, write. */
static void take_bytes(struct obj_ctx *o, const uint8_t *p, size_t n, void *chunk,
                       struct ds_resp *kept)
{
    struct http_req *req = o->req;
    if (n > o->len - o->got || o->free_writes == 0) {
        /* More than asked for, or more chunks than the window: not the
         * answer to this request. */
        ds_chunk_done(chunk);
        ds_resp_free(kept);
        log_event(LOG_WARN, "media_stream_aborted", "%s: storage sent more than %llu bytes",
                  o->addr_s, (unsigned long long)o->len);
        stream_stop(o, false);
        return;
    }
    bool last = o->got + n == o->len;
    if (!o->ranged) {
        cas_hasher_update(&o->h, p, n);
        if (last) {
            /* Before the last byte goes out, the whole must match. */
            struct cas_addr got;
            cas_hasher_final(&o->h, &got);
            if (!cas_addr_equal(&got, &o->addr)) {
                ds_chunk_done(chunk);
                ds_resp_free(kept);
                integrity_report(&o->addr, "object", req->corr_id);
                stream_stop(o, false);
                return;
            }
        }
    }
    o->got += n;
    int i = __builtin_ctz(o->free_writes);
    struct obj_write *wr = &o->writes[i];
    wr->o = o;
    wr->chunk = chunk;
    wr->kept = kept;
    o->free_writes &= ~(1u << i);
    o->inflight++;
    /* The bytes are written in place: they stay valid until on_chunk_sent
     * releases them. */
    if (http_stream_send(req, p, n, on_chunk_sent, wr) != 0) {
        o->inflight--;
        o->free_writes |= 1u << i;
        ds_chunk_done(chunk);
        ds_resp_free(kept);
        stream_stop(o, false);
        return;
    }
    if (last)
        stream_stop(o, true);
}

static void on_stream_chunk(void *arg, const uint8_t *p, size_t n, void *chunk)
{
    take_bytes(arg, p, n, chunk, NULL);
}

static void on_stream_end(void *arg, int status)
{
    struct obj_ctx *o = arg;
    o->call = NULL;
    /* Every byte would have ended the response already (on_stream_chunk):
     * this stream broke off short, or failed. */
    log_event(LOG_WARN, "media_stream_aborted",
              "%s: storage stream ended after %llu of %llu bytes (status %d)", o->addr_s,
              (unsigned long long)o->got, (unsigned long long)o->len, status);
    stream_stop(o, false);
}

/* ---- phases ------------------------------------------------------------- */

static int begin_response(struct obj_ctx *o);

static void on_stream_head(void *arg, struct ds_resp *r)
{
    struct obj_ctx *o = arg;
    struct http_req *req = o->req;
    http_req_hop(req, "storage", r->latency_ms);
    if (r->code == 0) { /* no answer: the call is over */
        o->call = NULL;
        fail_call(o, r, "storage read failed");
        return;
    }
    uint64_t want = o->last - o->first + 1;
    bool len_ok = true;
    if (r->code == 200 || r->code == 206) {
        json_error_t e;
        json_t *h = json_loadb(r->hdr, r->hdr_len, 0, &e);
        json_t *ln = h ? json_object_get(h, "len") : NULL;
        /* The byte count is checked as the body arrives; a header that
         * already says otherwise is refused before the client sees a head. */
        len_ok = ln == NULL || (json_is_integer(ln) && (uint64_t)json_integer_value(ln) == want);
        json_decref(h);
    }
    if ((r->code != 200 && r->code != 206) || !len_ok) {
        struct ds_resp bad = {.code = 502};
        ds_cancel(o->call);
        o->call = NULL;
        if (len_ok)
            fail_call(o, r, "storage read failed");
        else
            fail_call(o, &bad, "storage returned a different length than asked");
        return;
    }
    if (begin_response(o) != 0)
        stream_stop(o, false);
    /* else: the chunks follow */
}

/* Send the head of a 200/206 with the bytes to follow. Returns 0 or -1. */
static int begin_response(struct obj_ctx *o)
{
    struct http_req *req = o->req;
    o->len = o->last - o->first + 1;
    o->got = 0;
    o->free_writes = (1u << DS_STREAM_WINDOW_MAX) - 1;
    o->phase = PH_STREAM;
    cas_hasher_init(&o->h);
    int status = ok_headers(o);
    return http_stream_begin(req, status, o->ctype, (int64_t)o->len) != 0 ? -1 : 0;
}

/* A read small enough to be answered whole (see start_get). */
static void on_get(void *arg, struct ds_resp *r)
{
    struct obj_ctx *o = arg;
    struct http_req *req = o->req;
    o->call = NULL;
    http_req_hop(req, "storage", r->latency_ms);
    if (r->code != 200 && r->code != 206) {
        fail_call(o, r, "storage read failed");
        return;
    }
    struct ds_resp *kept = NULL;
    if (r->body_len != o->last - o->first + 1 || (kept = ds_resp_keep(r)) == NULL) {
        struct ds_resp bad = {.code = 502};
        fail_call(o, &bad, "storage returned a different length than asked");
        return;
    }
    if (begin_response(o) != 0) {
        ds_resp_free(kept);
        stream_stop(o, false);
        return;
    }
    take_bytes(o, kept->body, kept->body_len, NULL, kept);
}

static const struct ds_stream_cbs GET_CBS = {
    .on_head = on_stream_head,
    .on_chunk = on_stream_chunk,
    .on_end = on_stream_end,
};

static void start_get(struct obj_ctx *o)
{
    struct http_req *req = o->req;
    struct ds_req op;
    unsigned window = (unsigned)hctx_cfg(req)->media_stream_window;
    /* cannot fail: no string of the caller's */
    (void)ds_op_get(&op, &o->addr, true, o->first, o->last - o->first + 1);
    op.stream_window = window;
    o->phase = PH_GET;
    /* A read that fits in the stream window costs no more memory answered
     * whole than streamed, and keeps retries, hedges and coalescing of
     * identical reads (many clients on one hot range); larger ones stream. */
    bool whole = o->last - o->first + 1 <= (uint64_t)window * DS_STREAM_CHUNK_BYTES;
    obj_call(o, &op, on_get, whole ? NULL : &GET_CBS);
}

/* The object size in a HAS answer's header. Returns 0, or -1 without one. */
static int has_size(const struct ds_resp *r, uint64_t *size)
{
    json_error_t e;
    json_t *h = json_loadb(r->hdr, r->hdr_len, 0, &e);
    json_t *sz = h ? json_object_get(h, "size") : NULL;
    int rc = json_is_integer(sz) && json_integer_value(sz) >= 0 ? 0 : -1;
    if (rc == 0)
        *size = (uint64_t)json_integer_value(sz);
    json_decref(h);
    return rc;
}

static void on_has(void *arg, struct ds_resp *r)
{
    struct obj_ctx *o = arg;
    if (!answered(o, r, "storage", "storage lookup failed"))
        return;
    if (has_size(r, &o->size) != 0) {
        struct ds_resp bad = {.code = 502};
        fail_call(o, &bad, "storage answered HAS without a size");
        return;
    }
    struct http_req *req = o->req;

    const struct slice *inm = h1_header(req, "if-none-match");
    if (inm && etag_list_matches(*inm, o->etag, strlen(o->etag))) {
        object_headers(o);
        done_with_req(o);
        ctx_free(o);
        http_respond(req, 304, NULL, NULL, 0);
        return;
    }
    o->first = 0;
    o->last = o->size ? o->size - 1 : 0;
    const struct slice *rg = h1_header(req, "range");
    const struct slice *ir = h1_header(req, "if-range");
    if (rg && (!ir || if_range_matches(*ir, o->etag, strlen(o->etag)))) {
        uint64_t a, b;
        switch (range_parse(*rg, o->size, &a, &b)) {
        case RANGE_OK:
            o->ranged = true;
            o->first = a;
            o->last = b;
            break;
        case RANGE_UNSAT: {
            char cr[48];
            int n = snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)o->size);
            object_headers(o);
            if (http_add_header(req, "Content-Range", cr, (size_t)n) != 0)
                req->close_after = true;
            done_with_req(o);
            ctx_free(o);
            http_respond_error(req, OG_E_RANGE, "the range starts past the end of the object");
            return;
        }
        default: /* none, ignored or several ranges: the whole object */ break;
        }
    }
    bool head = router_method_bit(req->method) == M_HEAD;
    /* An empty body is still a claim about the object: the address must be
     * the hash of zero bytes, or storage is answering for something else. */
    if (!head && o->size == 0 && !integrity_check(&o->addr, "", 0, "object", req->corr_id)) {
        done_with_req(o);
        ctx_free(o);
        http_respond_error(req, OG_E_BAD_GATEWAY, "storage reports an empty body for this address");
        return;
    }
    if (head || o->size == 0) {
        int status = ok_headers(o);
        uint64_t len = o->ranged ? o->last - o->first + 1 : o->size;
        /* HEAD (or an empty object): the head says everything; no body read. */
        done_with_req(o);
        int rc = http_stream_begin(req, status, o->ctype, (int64_t)len);
        ctx_free(o);
        http_stream_end(req, rc == 0);
        return;
    }
    start_get(o);
}

static void start_has(struct obj_ctx *o)
{
    struct ds_req op;
    (void)ds_op_has(&op, &o->addr); /* cannot fail: no string of the caller's */
    o->phase = PH_HAS;
    obj_call(o, &op, on_has, NULL);
}

static struct obj_ctx *ctx_new(struct http_req *req)
{
    struct obj_ctx *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return NULL;
    }
    o->req = req;
    req->hdata = o;
    req->on_cancel = obj_cancel;
    return o;
}

static void set_addr(struct obj_ctx *o)
{
    cas_addr_format(&o->addr, o->addr_s);
    snprintf(o->etag, sizeof(o->etag), "\"%s\"", o->addr_s);
}

void media_on_object(struct http_req *req)
{
    struct cas_addr a;
    if (cas_addr_parse(&a, req->param.p, req->param.n) != 0) {
        http_respond_error(req, OG_E_BAD_REQUEST, "object address must be b3:<64 lowercase hex>");
        return;
    }
    struct obj_ctx *o = ctx_new(req);
    if (o == NULL)
        return;
    o->addr = a;
    set_addr(o);
    strcpy(o->ctype, "application/octet-stream");
    start_has(o);
}

static void on_resolve(void *arg, struct ds_resp *r)
{
    struct obj_ctx *o = arg;
    struct http_req *req = o->req;
    if (!answered(o, r, "index", "resolving the media name failed"))
        return;
    json_error_t e;
    json_t *m = json_loadb((const char *)r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
    json_t *kind = m ? json_object_get(m, "kind") : NULL;
    json_t *obj = m ? json_object_get(m, "obj") : NULL;
    json_t *mt = m ? json_object_get(m, "media_type") : NULL;
    const char *why = NULL;
    enum og_err err = OG_E_BAD_GATEWAY;
    if (!json_is_string(kind) || strcmp(json_string_value(kind), "media") != 0) {
        err = OG_E_NOT_FOUND; /* the name names something else */
        why = "not a media name";
    } else if (!json_is_string(obj) ||
               cas_addr_parse(&o->addr, json_string_value(obj), json_string_length(obj)) != 0) {
        why = "media manifest has no valid obj";
    }
    if (why) {
        json_decref(m);
        done_with_req(o);
        ctx_free(o);
        http_respond_error(req, err, why);
        return;
    }
    /* Content-Type comes from the manifest; only a plain type/subtype token
     * is copied into a header (no CR/LF or quotes from downstream data). */
    strcpy(o->ctype, "application/octet-stream");
    if (json_is_string(mt) && json_string_length(mt) < sizeof(o->ctype)) {
        const char *s = json_string_value(mt);
        bool ok = strchr(s, '/') != NULL;
        for (const char *c = s; *c && ok; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                 strchr("/+-.", *c);
        if (ok)
            strcpy(o->ctype, s);
    }
    json_decref(m);
    set_addr(o);
    start_has(o);
}

void media_on_media(struct http_req *req)
{
    if (!hctx_name_check(req, "name"))
        return;
    struct obj_ctx *o = ctx_new(req);
    if (o == NULL)
        return;
    struct ds_req op;
    (void)ds_op_resolve(&op, req->param.p, req->param.n); /* the name was checked */
    o->phase = PH_RESOLVE;
    obj_call(o, &op, on_resolve, NULL);
}

/* ---- PUT /v1/o ---------------------------------------------------------- */

struct put_ctx {
    struct hctx h;
    struct hctx_call call;
};

static void on_put(struct hctx_call *c, struct ds_resp *r)
{
    struct http_req *req = hctx_end(c->h);
    if (r->code == 400) {
        http_respond_error(req, OG_E_BAD_REQUEST, "body does not hash to X-Expect-Obj");
        return;
    }
    if (r->code == 413) {
        http_respond_error(req, OG_E_BODY_CAP, "object larger than storage accepts");
        return;
    }
    if (r->code == 507) {
        http_respond_error(req, OG_E_STORAGE_FULL, NULL);
        return;
    }
    if (r->code != 200 && r->code != 201) {
        enum og_err e = hctx_call_err(r->code, r->err);
        http_respond_error(req, e == OG_E_NOT_FOUND ? OG_E_BAD_GATEWAY : e, "storage write failed");
        return;
    }
    json_error_t e;
    json_t *h = json_loadb(r->hdr, r->hdr_len, 0, &e);
    json_t *obj = h ? json_object_get(h, "obj") : NULL;
    struct cas_addr a;
    if (!json_is_string(obj) ||
        cas_addr_parse(&a, json_string_value(obj), json_string_length(obj)) != 0) {
        json_decref(h);
        http_respond_error(req, OG_E_BAD_GATEWAY, "storage answered PUT without an address");
        return;
    }
    json_decref(h);
    char addr[CAS_ADDR_CHARS + 1], loc[CAS_ADDR_CHARS + 8], body[CAS_ADDR_CHARS + 32];
    cas_addr_format(&a, addr);
    int ln = snprintf(loc, sizeof(loc), "/v1/o/%s", addr);
    int bn = snprintf(body, sizeof(body), "{\"obj\":\"%s\",\"size\":%zu}", addr, req->body.n);
    if (http_add_header(req, "Location", loc, (size_t)ln) != 0)
        req->close_after = true;
    http_respond(req, r->code == 201 ? 201 : 200, "application/json", body, (size_t)bn);
}

void media_on_put(struct http_req *req)
{
    struct ds_req op;
    struct cas_addr expect;
    const struct slice *x = h1_header(req, "x-expect-obj");
    if (x && cas_addr_parse(&expect, x->p, x->n) != 0) {
        http_respond_error(req, OG_E_BAD_REQUEST, "X-Expect-Obj must be b3:<64 lowercase hex>");
        return;
    }
    struct put_ctx *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    hctx_init(&p->h, req, NULL);
    (void)ds_op_put(&op, x ? &expect : NULL); /* cannot fail: no string */
    /* Object and media calls use the request deadline itself. */
    op.deadline_ms = req->deadline_ms;
    op.body = req->body.p;
    op.body_len = req->body.n;
    if (hctx_call(&p->h, &p->call, &op, "storage", on_put) != 0)
        hctx_fail(&p->h, OG_E_INTERNAL, NULL);
}
