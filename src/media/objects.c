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
 * so no client can take the bytes for the object.
 *
 * A range is verified group by group (include/cas/outboard.h): HAS → PROOF
 * (the values of the 64 KiB groups the range touches and the siblings that
 * climb to the root; checked against the address before anything else) →
 * GET of exactly those groups. Each group's bytes are hashed when the whole
 * group is in, compared with its proven value, and only then is the part
 * of it the client asked for written. The head waits for the first group,
 * so a bad first group (or a bad proof) is a clean 502; a bad later group
 * cuts the response before its bytes. An object of one group is its own
 * proof: the range is read whole and hashed against the address.
 * Storage sending more or fewer bytes than asked, or failing mid-body, also
 * ends the response short of its length.
 */
#include "media/objects.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cas/cas.h"
#include "cas/outboard.h"
#include "config/config.h"
#include "core/log.h"
#include "ds/ds.h"
#include "ds/op.h"
#include "handler/hctx.h"
#include "http/h1.h"
#include "http/range.h"
#include "http/response.h"
#include "http/router.h"
#include "media/gcache.h"
#include "media/integrity.h"

enum obj_phase { PH_RESOLVE, PH_HAS, PH_PROOF, PH_GET, PH_STREAM };

struct obj_ctx;

/* Bytes from storage being written to the client. */
struct obj_write {
    struct obj_ctx *o;
    void *chunk;              /* ds chunk owner: released when the write is done */
    struct ds_resp *kept;     /* or a whole (small) answer */
    void *own;                /* or a verified group gathered here: freed */
    struct gcache_entry *ent; /* or a cached group: unreferenced */
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
    /* verified ranges */
    bool verify;                   /* a range, checked group by group */
    bool no_cache;                 /* Cache-Control: no-cache: storage, not gcache */
    bool head_sent;                /* verify: the head waits for the first good group */
    uint64_t groups;               /* cas_groups(size) */
    uint64_t ga, gb;               /* the groups the range touches */
    uint64_t fetch_off, fetch_len; /* whole groups, as read from storage */
    uint64_t pos;                  /* offset of storage's next byte */
    uint8_t *cvs;                  /* proven values of groups ga..gb (2 groups or more) */
    uint8_t *gbuf;                 /* a group gathered across pieces */
    size_t gfill;
};

static void ctx_free(struct obj_ctx *o)
{
    free(o->cvs);
    free(o->gbuf);
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

/* Release whichever owner of written bytes is set (struct obj_write). */
static void owners_release(void *chunk, struct ds_resp *kept, void *own, struct gcache_entry *ent)
{
    ds_chunk_done(chunk);
    ds_resp_free(kept);
    free(own);
    gcache_unref(ent);
}

static void on_chunk_sent(void *arg, int status)
{
    struct obj_write *wr = arg;
    struct obj_ctx *o = wr->o;
    o->free_writes |= 1u << (wr - o->writes);
    o->inflight--;
    owners_release(wr->chunk, wr->kept, wr->own, wr->ent); /* storage may send one more */
    if (status < 0 && o->req) {
        stream_stop(o, false); /* the connection is closing */
        return;
    }
    maybe_free(o);
}

/* Write n bytes to the client, owned by chunk, kept or own (released once
 * the socket took them; writes complete in order, so of several pieces of
 * one owner only the last names it). The response ends after its last
 * byte, or is cut when the write cannot be queued. Needs a free write
 * slot. Returns 0, or -1 when the response was stopped. */
static int write_piece(struct obj_ctx *o, const uint8_t *p, size_t n, void *chunk,
                       struct ds_resp *kept, void *own, struct gcache_entry *ent)
{
    o->got += n;
    bool last = o->got == o->len;
    int i = __builtin_ctz(o->free_writes);
    struct obj_write *wr = &o->writes[i];
    wr->o = o;
    wr->chunk = chunk;
    wr->kept = kept;
    wr->own = own;
    wr->ent = ent;
    o->free_writes &= ~(1u << i);
    o->inflight++;
    /* The bytes are written in place: they stay valid until on_chunk_sent
     * releases them. */
    if (http_stream_send(o->req, p, n, on_chunk_sent, wr) != 0) {
        o->inflight--;
        o->free_writes |= 1u << i;
        owners_release(chunk, kept, own, ent);
        stream_stop(o, false);
        return -1;
    }
    if (last)
        stream_stop(o, true);
    return 0;
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
                integrity_report(&o->addr, INTEGRITY_OBJECT, INTEGRITY_NO_GROUP, req->corr_id);
                stream_stop(o, false);
                return;
            }
        }
    }
    write_piece(o, p, n, chunk, kept, NULL, NULL);
}

/* ---- verified ranges ----------------------------------------------------- */

static int send_head(struct obj_ctx *o);

/* Whether group g's bytes p[0..n) are the object's: its proven value, or
 * for an object of one group the address itself. */
static bool group_ok(const struct obj_ctx *o, uint64_t g, const uint8_t *p, size_t n)
{
    return cas_group_check(&o->addr, o->groups, o->ga, o->cvs, g, p, n);
}

/* Nothing was sent yet: answer 502 instead (o is freed). */
static void fail_before_head(struct obj_ctx *o, const char *why)
{
    struct http_req *req = o->req;
    if (o->call) {
        ds_cancel(o->call);
        o->call = NULL;
    }
    done_with_req(o);
    ctx_free(o);
    http_respond_error(req, OG_E_BAD_GATEWAY, why);
}

#define R_MISMATCH "storage returned bytes that do not match the object's address"

/* Group g did not match: reported, and no byte of it leaves. */
static void group_failed(struct obj_ctx *o, uint64_t g)
{
    integrity_report(&o->addr, INTEGRITY_RANGE, (int64_t)g, o->req ? o->req->corr_id : NULL);
    if (!o->head_sent)
        fail_before_head(o, R_MISMATCH);
    else
        stream_stop(o, false);
}

/* Write what the client asked for of a verified group (bytes p[0..n) at
 * offset start), the head first if it has not gone. Returns 0 or -1 (the
 * response was stopped; the owner was released). */
static int send_group(struct obj_ctx *o, uint64_t start, const uint8_t *p, size_t n, void *chunk,
                      struct ds_resp *kept, void *own, struct gcache_entry *ent)
{
    uint64_t lo = start > o->first ? start : o->first;
    uint64_t hi = start + n < o->last + 1 ? start + n : o->last + 1;
    if (!o->head_sent && send_head(o) != 0) {
        owners_release(chunk, kept, own, ent);
        stream_stop(o, false);
        return -1;
    }
    return write_piece(o, p + (lo - start), (size_t)(hi - lo), chunk, kept, own, ent);
}

/* A streamed piece of the groups: a whole group in place is checked and
 * written from the chunk itself; anything else is gathered a group at a
 * time, checked, and written from the gathered copy. */
static void range_piece(struct obj_ctx *o, const uint8_t *p, size_t n, void *chunk)
{
    if (n > o->fetch_off + o->fetch_len - o->pos || o->free_writes == 0) {
        ds_chunk_done(chunk);
        log_event(LOG_WARN, "media_stream_aborted", "%s: storage sent more than %llu bytes",
                  o->addr_s, (unsigned long long)o->fetch_len);
        if (o->head_sent)
            stream_stop(o, false);
        else
            fail_before_head(o, "storage sent more than asked");
        return;
    }
    uint64_t g = o->pos / CAS_GROUP_BYTES;
    size_t gsz = cas_group_size(o->size, g);
    if (o->gfill == 0 && o->pos % CAS_GROUP_BYTES == 0 && n == gsz) {
        o->pos += n;
        if (!group_ok(o, g, p, n)) {
            ds_chunk_done(chunk);
            group_failed(o, g);
            return;
        }
        gcache_put(&o->addr, o->size, g, p, n);
        send_group(o, g * CAS_GROUP_BYTES, p, n, chunk, NULL, NULL, NULL);
        return;
    }
    while (n > 0 && o->req) {
        g = o->pos / CAS_GROUP_BYTES;
        gsz = cas_group_size(o->size, g);
        if (o->gbuf == NULL && (o->gbuf = malloc(CAS_GROUP_BYTES)) == NULL) {
            ds_chunk_done(chunk);
            stream_stop(o, false);
            return;
        }
        size_t take = n < gsz - o->gfill ? n : gsz - o->gfill;
        memcpy(o->gbuf + o->gfill, p, take);
        o->gfill += take;
        o->pos += take;
        p += take;
        n -= take;
        if (o->gfill < gsz)
            continue;
        uint8_t *full = o->gbuf;
        o->gbuf = NULL;
        o->gfill = 0;
        if (!group_ok(o, g, full, gsz)) {
            free(full);
            ds_chunk_done(chunk);
            group_failed(o, g);
            return;
        }
        gcache_put(&o->addr, o->size, g, full, gsz);
        if (o->free_writes == 0 ||
            send_group(o, g * CAS_GROUP_BYTES, full, gsz, NULL, NULL, full, NULL) != 0) {
            if (o->free_writes == 0) {
                free(full);
                stream_stop(o, false);
            }
            break;
        }
    }
    ds_chunk_done(chunk);
}

/* The groups answered whole: each is checked in order, and the client gets
 * the asked bytes of the groups before the first bad one, if any. */
static void range_whole(struct obj_ctx *o, struct ds_resp *kept)
{
    const uint8_t *body = kept->body;
    uint64_t good = o->fetch_off;
    int64_t bad = -1;
    for (uint64_t g = o->ga; g <= o->gb; g++) {
        size_t gsz = cas_group_size(o->size, g);
        const uint8_t *gp = body + (g * CAS_GROUP_BYTES - o->fetch_off);
        if (!group_ok(o, g, gp, gsz)) {
            bad = (int64_t)g;
            break;
        }
        gcache_put(&o->addr, o->size, g, gp, gsz);
        good += gsz;
    }
    o->pos = o->fetch_off + o->fetch_len;
    if (bad >= 0 && good <= o->first) {
        ds_resp_free(kept);
        group_failed(o, (uint64_t)bad);
        return;
    }
    uint64_t end = good < o->last + 1 ? good : o->last + 1;
    if (send_group(o, o->first, body + (o->first - o->fetch_off), (size_t)(end - o->first), NULL,
                   kept, NULL, NULL) != 0 ||
        bad < 0)
        return;
    group_failed(o, (uint64_t)bad); /* after the good part: cut there */
}

static void on_stream_chunk(void *arg, const uint8_t *p, size_t n, void *chunk)
{
    struct obj_ctx *o = arg;
    if (o->verify)
        range_piece(o, p, n, chunk);
    else
        take_bytes(o, p, n, chunk, NULL);
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
    if (o->verify && !o->head_sent && o->req)
        fail_before_head(o, "storage read failed"); /* a verified range had sent nothing */
    else
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
    uint64_t want = o->verify ? o->fetch_len : o->last - o->first + 1;
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

static int send_head(struct obj_ctx *o)
{
    o->head_sent = true;
    int status = ok_headers(o);
    return http_stream_begin(o->req, status, o->ctype, (int64_t)o->len) != 0 ? -1 : 0;
}

/* Ready for the bytes, and send the head of a 200/206 — except for a
 * verified range, whose head waits for its first good group. Returns 0 or
 * -1. */
static int begin_response(struct obj_ctx *o)
{
    o->len = o->last - o->first + 1;
    o->got = 0;
    o->free_writes = (1u << DS_STREAM_WINDOW_MAX) - 1;
    o->phase = PH_STREAM;
    cas_hasher_init(&o->h);
    return o->verify ? 0 : send_head(o);
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
    uint64_t want = o->verify ? o->fetch_len : o->last - o->first + 1;
    if (r->body_len != want || (kept = ds_resp_keep(r)) == NULL) {
        struct ds_resp bad = {.code = 502};
        fail_call(o, &bad, "storage returned a different length than asked");
        return;
    }
    if (begin_response(o) != 0) {
        ds_resp_free(kept);
        stream_stop(o, false);
        return;
    }
    if (o->verify)
        range_whole(o, kept);
    else
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
    uint64_t off = o->verify ? o->fetch_off : o->first;
    uint64_t len = o->verify ? o->fetch_len : o->last - o->first + 1;
    /* cannot fail: no string of the caller's */
    (void)ds_op_get(&op, &o->addr, true, off, len);
    op.stream_window = window;
    o->phase = PH_GET;
    o->pos = off;
    /* A read that fits in the stream window costs no more memory answered
     * whole than streamed, and keeps retries, hedges and coalescing of
     * identical reads (many clients on one hot range); larger ones stream. */
    bool whole = len <= (uint64_t)window * DS_STREAM_CHUNK_BYTES;
    obj_call(o, &op, on_get, whole ? NULL : &GET_CBS);
}

/* Integer fields of a storage answer's header, parsed once: for each key
 * of the NULL-terminated keys, into the matching out. Returns 0, or -1 when
 * one is missing or not a non-negative integer. */
static int hdr_u64s(const struct ds_resp *r, const char *const *keys, uint64_t *const *out)
{
    json_error_t e;
    json_t *h = json_loadb(r->hdr, r->hdr_len, 0, &e);
    int rc = h ? 0 : -1;
    for (size_t i = 0; rc == 0 && keys[i]; i++) {
        json_t *x = json_object_get(h, keys[i]);
        if (json_is_integer(x) && json_integer_value(x) >= 0)
            *out[i] = (uint64_t)json_integer_value(x);
        else
            rc = -1;
    }
    json_decref(h);
    return rc;
}

static int hdr_u64(const struct ds_resp *r, const char *key, uint64_t *v)
{
    return hdr_u64s(r, (const char *const[]){key, NULL}, (uint64_t *const[]){v});
}

static void on_proof(void *arg, struct ds_resp *r)
{
    struct obj_ctx *o = arg;
    if (!answered(o, r, "storage", "storage proof failed"))
        return;
    uint64_t groups = 0, a = 0, b = 0;
    uint64_t k = cas_proof_cvs(o->groups, o->ga, o->gb);
    if (hdr_u64s(r, (const char *const[]){"groups", "first", "last", NULL},
                 (uint64_t *const[]){&groups, &a, &b}) != 0 ||
        groups != o->groups || a != o->ga || b != o->gb || r->body_len != k * CAS_CV_BYTES) {
        fail_before_head(o, "storage answered a proof for other groups");
        return;
    }
    if (!cas_proof_verify(&o->addr, o->groups, o->ga, o->gb, r->body, r->body_len)) {
        integrity_report(&o->addr, INTEGRITY_RANGE, INTEGRITY_NO_GROUP, o->req->corr_id);
        fail_before_head(o, "storage's slice proof does not match the object's address");
        return;
    }
    size_t n = (size_t)(o->gb - o->ga + 1) * CAS_CV_BYTES;
    if ((o->cvs = malloc(n)) == NULL) {
        struct http_req *req = o->req;
        done_with_req(o);
        ctx_free(o);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    memcpy(o->cvs, r->body, n);
    start_get(o);
}

/* Every group of the range from the verified group cache, with no storage
 * call. Returns false (nothing done) when one of them is not cached. */
static bool serve_cached(struct obj_ctx *o)
{
    struct gcache_entry *ents[DS_STREAM_WINDOW_MAX];
    uint64_t n = o->gb - o->ga + 1;
    if (n > DS_STREAM_WINDOW_MAX)
        return false;
    for (uint64_t i = 0; i < n; i++)
        if ((ents[i] = gcache_get(&o->addr, o->ga + i)) == NULL) {
            while (i > 0)
                gcache_unref(ents[--i]);
            gcache_count(false);
            return false;
        }
    gcache_count(true);
    begin_response(o); /* a verified range: no head yet, cannot fail */
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        const uint8_t *p = gcache_bytes(ents[i], &len);
        if (send_group(o, (o->ga + i) * CAS_GROUP_BYTES, p, len, NULL, NULL, NULL, ents[i]) != 0) {
            while (++i < n)
                gcache_unref(ents[i]);
            break;
        }
    }
    return true;
}

/* A range to verify: the whole groups it touches, and their proof first
 * (an object of one group is read whole and hashed). */
static void start_verified(struct obj_ctx *o)
{
    o->verify = true;
    o->groups = cas_groups(o->size);
    o->ga = o->first / CAS_GROUP_BYTES;
    o->gb = o->last / CAS_GROUP_BYTES;
    o->fetch_off = o->ga * CAS_GROUP_BYTES;
    uint64_t end = (o->gb + 1) * CAS_GROUP_BYTES;
    o->fetch_len = (end < o->size ? end : o->size) - o->fetch_off;
    if (!o->no_cache && serve_cached(o))
        return;
    if (o->groups < 2) {
        start_get(o);
        return;
    }
    struct ds_req op;
    (void)ds_op_proof(&op, &o->addr, o->fetch_off, o->fetch_len); /* cannot fail */
    o->phase = PH_PROOF;
    obj_call(o, &op, on_proof, NULL);
}

static void have_size(struct obj_ctx *o);

static void on_has(void *arg, struct ds_resp *r)
{
    struct obj_ctx *o = arg;
    if (!answered(o, r, "storage", "storage lookup failed"))
        return;
    if (hdr_u64(r, "size", &o->size) != 0) {
        struct ds_resp bad = {.code = 502};
        fail_call(o, &bad, "storage answered HAS without a size");
        return;
    }
    have_size(o);
}

/* The size is known (from HAS, or from the group cache): conditionals,
 * Range, then the read. */
static void have_size(struct obj_ctx *o)
{
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
    if (!head && o->size == 0 &&
        !integrity_check(&o->addr, "", 0, INTEGRITY_OBJECT, req->corr_id)) {
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
    if (o->ranged && hctx_cfg(req)->media_verify_ranges)
        start_verified(o);
    else
        start_get(o);
}

/* The size from the group cache, else from storage. A client's
 * Cache-Control: no-cache sends the whole request to storage. */
static void start_has(struct obj_ctx *o)
{
    const struct slice *cc = h1_header(o->req, "cache-control");
    o->no_cache = cc && cache_control_no_cache(*cc);
    if (!o->no_cache && gcache_size(&o->addr, &o->size)) {
        have_size(o);
        return;
    }
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

/* The {addr} of the route into *a; false once answered 400. */
static bool param_addr(struct http_req *req, struct cas_addr *a)
{
    if (cas_addr_parse(a, req->param.p, req->param.n) == 0)
        return true;
    http_respond_error(req, OG_E_BAD_REQUEST, "object address must be b3:<64 lowercase hex>");
    return false;
}

void media_on_object(struct http_req *req)
{
    struct cas_addr a;
    if (!param_addr(req, &a))
        return;
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

/* ---- GET /v1/o/{addr}/outboard ------------------------------------------ */

struct outboard_ctx {
    struct hctx h;
    struct hctx_call call;
    struct cas_addr addr;
};

static void on_outboard(struct hctx_call *c, struct ds_resp *r)
{
    struct outboard_ctx *x = (struct outboard_ctx *)c->h;
    struct cas_addr addr = x->addr;
    struct http_req *req = hctx_end(c->h);
    if (r->code != 200) {
        enum og_err e = hctx_call_err(r->code, r->err);
        http_respond_error(req, e, e == OG_E_NOT_FOUND ? "no such object" : "storage read failed");
        return;
    }
    uint64_t size = 0, groups = 0;
    if (hdr_u64s(r, (const char *const[]){"size", "groups", NULL},
                 (uint64_t *const[]){&size, &groups}) != 0 ||
        groups != cas_groups(size) || r->body_len != (groups < 2 ? 0 : groups * CAS_CV_BYTES)) {
        http_respond_error(req, OG_E_BAD_GATEWAY, "storage answered an outboard of another size");
        return;
    }
    /* Served only when it climbs to the address: a client may trust it as
     * far as it trusts omnigate, and check it against the address itself. */
    if (groups >= 2 && !cas_outboard_verify(&addr, groups, r->body)) {
        integrity_report(&addr, INTEGRITY_OUTBOARD, INTEGRITY_NO_GROUP, req->corr_id);
        http_respond_error(req, OG_E_BAD_GATEWAY,
                           "storage's outboard does not match the object's address");
        return;
    }
    char size_s[24];
    int n = snprintf(size_s, sizeof(size_s), "%llu", (unsigned long long)size);
    int rc = http_add_header(req, "X-Object-Size", size_s, (size_t)n);
    rc |= http_add_header(req, "Cache-Control", "public, max-age=31536000, immutable", 35);
    if (rc)
        req->close_after = true;
    http_respond(req, 200, "application/octet-stream", (const char *)r->body, r->body_len);
}

void media_on_outboard(struct http_req *req)
{
    struct cas_addr a;
    if (!param_addr(req, &a))
        return;
    struct outboard_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    x->addr = a;
    hctx_init(&x->h, req, NULL);
    struct ds_req op;
    (void)ds_op_outboard(&op, &a); /* cannot fail: no string */
    op.deadline_ms = req->deadline_ms;
    if (hctx_call(&x->h, &x->call, &op, "storage", on_outboard) != 0)
        hctx_fail(&x->h, OG_E_INTERNAL, NULL);
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
