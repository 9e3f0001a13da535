/*
 * oapsrv.c — OAP/1 connections of the reference services (docs/OAP.md).
 *
 * Per connection: one decoder fed straight from a 64 KiB read buffer, a
 * list of live requests (struct sreq, found by corr_id), and a write path
 * that sends frames as iovecs: 38-byte header, the DATA header, and the
 * body as a view into the engine's ref-counted blob or buffer. Small frames
 * (body ≤ WBATCH_COPY_MAX, net/wbatch.h) are instead copied into the connection's batch,
 * written once per loop turn (check phase; an idle handle keeps the loop
 * from blocking while a batch waits): the answers to every request read in
 * one turn leave in one write syscall. A larger frame flushes the batch
 * first, so frames leave in order. The bytes are copied, but a request with
 * a frame in the batch holds one reference (sreq.writes, sreq.batched) until
 * the batch is flushed, so that finishing it never frees it under a caller
 * still looking at it (req_pump, write_on_done).
 *
 * Requests are executed on receipt (the engines are synchronous); fault
 * latency delays the answer with a uv timer, never the loop. Responses whose
 * payload exceeds one stream chunk are sent as START / data / END frames
 * paced by the client's credit (oap_producer); request streams (a PUT body
 * over one frame) are assembled under SVC_UPLOAD_MAX_BYTES and paced by our
 * own grants (oap_consumer).
 *
 * A frame that breaks the protocol is answered with one error frame —
 * RESP|END, code 400, DATA header {"error":"<oap status name>","offset":N}
 * (N = stream offset of the fault), the offending frame's app and corr_id
 * when its header was readable, else 0 — and the connection is closed after
 * that frame is written. Application errors (bad JSON, unknown op, wrong app
 * id) are ordinary error responses and the connection stays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/wbatch.h"
#include "oap/comp.h"
#include "oap/data.h"
#include "oap/hello.h"
#include "oap/oap.h"
#include "oap/stream.h"
#include "services/substrate.h"

#define RBUF_BYTES 65536

struct sconn;

enum sreq_state {
    SR_UPLOAD,  /* request stream being assembled */
    SR_DISCARD, /* request stream refused: frames dropped until END */
    SR_DELAYED, /* answer waits for the latency timer */
    SR_STREAM,  /* response stream: frames sent as credit allows */
    SR_STALLED, /* fault: never answered */
    SR_DONE,    /* last frame queued; freed when its writes complete */
};

struct sreq {
    struct sreq *next, *prev;
    struct sconn *c; /* NULL once the connection is gone */
    enum sreq_state st;
    enum svc_op op;
    uint64_t corr_id;
    uint16_t app;
    uint8_t tenant[OAP_TENANT_BYTES];
    struct proto_resp rs;
    struct oap_producer prod;
    uint64_t sent;   /* body bytes sent */
    unsigned writes; /* uv_writes referencing rs.body, plus one while batched */
    bool batched;    /* listed in its connection's bref */
    bool timer_on;
    uv_timer_t timer;
    /* Request stream assembly. */
    struct oap_consumer cons;
    uint8_t *up;
    size_t up_len, up_cap;
    bool up_comp;
};

struct sconn {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    struct sconn *next, *prev;
    struct oap_decoder dec;
    struct sreq *reqs; /* live requests, newest first */
    unsigned inflight; /* sreqs counted against SVC_MAX_INFLIGHT */
    uint32_t peer_max_frame;
    uint32_t chunk;
    bool closing;
    bool paused; /* reading stopped for write backpressure */
    bool eof;
    struct wbatch batch; /* small frames for this loop turn (net/wbatch.h) */
    struct sreq **bref;  /* requests with a frame in the batch, once each */
    size_t nbref, bref_cap;
    uint8_t rbuf[RBUF_BYTES];
};

struct swrite {
    uv_write_t w;
    struct sconn *c;
    struct sreq *r; /* NULL for frames owning no body (HELLO, errors, 429) */
    bool close_after;
    uint8_t hdr[OAP_HDR_BYTES];
    size_t pre_len;
    uint8_t pre[2 + OAP_DATA_HDR_MAX_BYTES]; /* DATA header, or small payload */
};

static struct sconn *all_conns;
static struct wbatch_set batches; /* every connection's, one loop */
static bool batches_ready;

static void conn_close(struct sconn *c);
static void req_pump(struct sreq *r);
static void req_free(struct sreq *r);

/* ------------------------------------------------------------ requests */

static struct sreq *req_new(struct sconn *c, const struct oap_hdr *h)
{
    struct sreq *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->c = c;
    r->corr_id = h->corr_id;
    r->app = h->app_proto_id;
    memcpy(r->tenant, h->tenant, OAP_TENANT_BYTES);
    r->op = SVC_OP_INVALID;
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    c->inflight++;
    g_svc.inflight++;
    return r;
}

static struct sreq *req_find(struct sconn *c, uint64_t corr_id)
{
    for (struct sreq *r = c->reqs; r; r = r->next)
        if (r->corr_id == corr_id && r->st != SR_DONE)
            return r;
    return NULL;
}

/* Unlink from the connection (the request stops counting as inflight). */
static void req_detach(struct sreq *r)
{
    struct sconn *c = r->c;

    if (!c)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
    c->inflight--;
    g_svc.inflight--;
    r->c = NULL;
}

static void req_on_timer_closed(uv_handle_t *h)
{
    struct sreq *r = h->data;

    r->timer_on = false;
    req_free(r);
}

/* Free r once it is finished (last frame queued, or its connection gone)
 * and nothing references it any more: no write in flight, timer closed.
 * Safe to call at any time; does nothing while r is still live. */
static void req_free(struct sreq *r)
{
    if (r->st != SR_DONE && r->c)
        return;
    if (r->writes)
        return;
    if (r->timer_on) {
        if (!uv_is_closing((uv_handle_t *)&r->timer))
            uv_close((uv_handle_t *)&r->timer, req_on_timer_closed);
        return;
    }
    req_detach(r);
    proto_resp_release(&r->rs);
    free(r->up);
    free(r);
}

/* ------------------------------------------------------------- writing */

static void conn_maybe_resume(struct sconn *c);
static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void write_on_done(uv_write_t *w, int status)
{
    struct swrite *sw = (struct swrite *)w;
    struct sconn *c = sw->c;
    struct sreq *r = sw->r;

    if (r) {
        r->writes--;
        if (status == 0 && r->st == SR_STREAM && r->c)
            req_pump(r);
        if (r->st == SR_DONE || !r->c)
            req_free(r);
    }
    if (sw->close_after || status < 0)
        conn_close(c);
    else
        conn_maybe_resume(c);
    free(sw);
}

/* ------------------------------------------------------------- batches */

/* Drop the batch's references: a finished request is freed here. */
static void batch_release(struct sconn *c)
{
    size_t n = c->nbref;
    c->nbref = 0;
    for (size_t i = 0; i < n; i++) {
        struct sreq *r = c->bref[i];
        r->batched = false;
        r->writes--;
        if (r->st == SR_DONE || !r->c)
            req_free(r);
    }
}

static struct sconn *conn_of_batch(struct wbatch *wb)
{
    return (struct sconn *)((char *)wb - offsetof(struct sconn, batch));
}

static void on_batch_flushed(struct wbatch *wb)
{
    batch_release(conn_of_batch(wb)); /* the bytes are copied: bodies may go */
}

static void on_batch_write_end(struct wbatch *wb, int status)
{
    struct sconn *c = conn_of_batch(wb);
    if (status < 0)
        conn_close(c);
    else
        conn_maybe_resume(c);
}

/* Copy one frame (sw->hdr written) into the batch. Returns 0 or -1. */
static int batch_add(struct sconn *c, const struct swrite *sw, const uint8_t *body, size_t body_len)
{
    size_t len = OAP_HDR_BYTES + sw->pre_len + body_len;
    struct sreq *r = sw->r;

    if (r && !r->batched && c->nbref == c->bref_cap) {
        size_t cap = c->bref_cap ? 2 * c->bref_cap : 16;
        struct sreq **nb = realloc(c->bref, cap * sizeof(*nb));
        if (nb == NULL)
            return -1;
        c->bref = nb;
        c->bref_cap = cap;
    }
    uv_buf_t parts[] = {uv_buf_init((char *)sw->hdr, OAP_HDR_BYTES),
                        uv_buf_init((char *)sw->pre, (unsigned)sw->pre_len),
                        uv_buf_init((char *)body, (unsigned)body_len)};
    if (wbatch_add(&c->batch, parts, 3) != 0)
        return -1;
    if (r && !r->batched) {
        c->bref[c->nbref++] = r;
        r->batched = true;
        r->writes++;
    }
    g_svc.bytes_out += len;
    return 0;
}

/* The connection is gone: off the dirty list, batch dropped. */
static void batch_discard(struct sconn *c)
{
    wbatch_release(&c->batch);
    batch_release(c);
    free(c->bref);
}

/* Queue one frame: header fields from h (len is computed), payload =
 * sw->pre[0..pre_len) + body[0..body_len). Returns 0 or -1 (the connection
 * is then closed). */
static int frame_send(struct sconn *c, struct swrite *sw, struct oap_hdr *h, const uint8_t *body,
                      size_t body_len)
{
    uv_buf_t b[3];
    unsigned nb = 0;
    int rc;

    h->ver = OAP_VERSION;
    h->cap_len = 0;
    h->len = (uint32_t)(OAP_HDR_BYTES + sw->pre_len + body_len);
    oap_hdr_write(h, sw->hdr);
    bool small = !sw->close_after && wbatch_small(body_len);
    /* Frames leave in order: what is batched goes first. */
    if ((!small || !wbatch_room(&c->batch, h->len)) && wbatch_flush(&c->batch) != 0) {
        free(sw);
        conn_close(c);
        return -1;
    }
    if (small) {
        rc = batch_add(c, sw, body, body_len);
        free(sw);
        if (rc != 0)
            conn_close(c);
        return rc;
    }
    b[nb++] = uv_buf_init((char *)sw->hdr, OAP_HDR_BYTES);
    if (sw->pre_len)
        b[nb++] = uv_buf_init((char *)sw->pre, (unsigned)sw->pre_len);
    if (body_len)
        b[nb++] = uv_buf_init((char *)body, (unsigned)body_len);
    sw->c = c;
    if (sw->r)
        sw->r->writes++;
    rc = uv_write(&sw->w, &c->u.s, b, nb, write_on_done);
    if (rc != 0) {
        if (sw->r)
            sw->r->writes--;
        free(sw);
        conn_close(c);
        return -1;
    }
    g_svc.bytes_out += h->len;
    return 0;
}

static struct swrite *sw_new(struct sreq *r)
{
    struct swrite *sw = malloc(sizeof(*sw));

    if (sw) {
        sw->r = r;
        sw->close_after = false;
        sw->pre_len = 0;
    }
    return sw;
}

/* A DATA payload header [u16 len][json] into sw->pre. */
static void sw_data_hdr(struct swrite *sw, const char *json, size_t n)
{
    ssize_t w = oap_data_hdr_write(sw->pre, sizeof(sw->pre), json, n);

    sw->pre_len = w > 0 ? (size_t)w : 0;
}

/* A one-frame answer with a small header and no body (429, wrong app, the
 * error frame). */
static void send_small(struct sconn *c, const struct oap_hdr *rq, uint16_t flags, int code,
                       const char *json, bool close_after)
{
    struct swrite *sw = sw_new(NULL);
    struct oap_hdr h;

    if (!sw) {
        conn_close(c);
        return;
    }
    memset(&h, 0, sizeof(h));
    h.flags = flags;
    h.code = (uint16_t)code;
    if (rq) {
        h.app_proto_id = rq->app_proto_id;
        memcpy(h.tenant, rq->tenant, OAP_TENANT_BYTES);
        h.corr_id = rq->corr_id;
    }
    sw_data_hdr(sw, json, strlen(json));
    sw->close_after = close_after;
    frame_send(c, sw, &h, NULL, 0);
}

/* The typed error frame, then close (see the file comment). rq NULL when
 * the frame header itself was bad. */
static void conn_fail(struct sconn *c, int oap_err, uint64_t offset, const struct oap_hdr *rq)
{
    char json[128];

    if (c->closing)
        return;
    g_svc.frame_errors++;
    snprintf(json, sizeof(json), "{\"error\":\"%s\",\"offset\":%llu}", oap_status_name(oap_err),
             (unsigned long long)offset);
    svc_log("\"msg\":\"bad frame\",\"error\":\"%s\",\"offset\":%llu", oap_status_name(oap_err),
            (unsigned long long)offset);
    uv_read_stop(&c->u.s);
    send_small(c, rq, OAP_FLAG_RESP | OAP_FLAG_END, 400, json, true);
    c->closing = true; /* after the send: send_small must still reach the socket */
}

static struct oap_hdr resp_hdr_of(const struct sreq *r, uint16_t flags)
{
    struct oap_hdr h;

    memset(&h, 0, sizeof(h));
    h.flags = OAP_FLAG_RESP | flags;
    h.code = (uint16_t)r->rs.code;
    h.app_proto_id = r->app;
    memcpy(h.tenant, r->tenant, OAP_TENANT_BYTES);
    h.corr_id = r->corr_id;
    return h;
}

/* The last frame of r is queued: r is answered, so it stops counting
 * against the connection's inflight cap; it is freed when its writes end. */
static void req_done(struct sreq *r)
{
    r->st = SR_DONE;
    req_detach(r);
}

/* Send the stream frames the client's credit allows. */
static void req_pump(struct sreq *r)
{
    struct sconn *c = r->c;

    while (c && !c->closing && r->st == SR_STREAM && oap_producer_can_send(&r->prod)) {
        uint64_t remaining = r->rs.body_len - r->sent;
        uint32_t overhead = r->prod.started ? 0 : (uint32_t)(2 + r->rs.hdr_len), blen;
        uint16_t flags;
        struct swrite *sw;
        struct oap_hdr h;

        if (oap_producer_next(&r->prod, remaining, overhead, &flags, &blen) != 0)
            break;
        sw = sw_new(r);
        if (!sw) {
            conn_close(c);
            return;
        }
        if (flags & OAP_FLAG_START)
            sw_data_hdr(sw, r->rs.hdr, r->rs.hdr_len);
        h = resp_hdr_of(r, flags);
        if (frame_send(c, sw, &h, r->rs.body + r->sent, blen) != 0)
            return;
        r->sent += blen;
        if (flags & OAP_FLAG_END) {
            req_done(r);
            return;
        }
    }
}

/* Start answering r (its rs is final). */
static void req_answer(struct sreq *r)
{
    struct sconn *c = r->c;
    struct swrite *sw;
    struct oap_hdr h;

    if (!c || c->closing)
        return;
    svc_count(r->op, r->rs.code);
    if (2 + r->rs.hdr_len + r->rs.body_len > c->chunk) {
        /* Larger than one chunk: a credit-paced stream. */
        g_svc.streams++;
        oap_producer_init(&r->prod, c->chunk, OAP_STREAM_INITIAL_CREDIT);
        r->st = SR_STREAM;
        req_pump(r);
        return;
    }
    sw = sw_new(r);
    if (!sw) {
        conn_close(c);
        return;
    }
    sw_data_hdr(sw, r->rs.hdr, r->rs.hdr_len);
    h = resp_hdr_of(r, 0);
    if (frame_send(c, sw, &h, r->rs.body, r->rs.body_len) == 0)
        req_done(r);
}

static void req_on_timer(uv_timer_t *t)
{
    struct sreq *r = t->data;

    uv_close((uv_handle_t *)t, req_on_timer_closed);
    if (r->st == SR_DELAYED && r->c)
        req_answer(r);
}

/* ----------------------------------------------------------- executing */

/* Corrupt fault: serve a copy with one byte flipped, never the engine's
 * blob (other readers share it). */
static void corrupt_body(struct sreq *r)
{
    struct eng_buf *copy = eng_buf_from(r->rs.body, r->rs.body_len);

    if (!copy)
        return;
    copy->bytes[svc_rand_below(
        (uint32_t)(r->rs.body_len > UINT32_MAX ? UINT32_MAX : r->rs.body_len))] ^= 0xff;
    storage_blob_unref(r->rs.blob);
    r->rs.blob = NULL;
    eng_buf_unref(r->rs.buf);
    r->rs.buf = copy;
    r->rs.body = copy->bytes;
    g_svc.faults[FAULT_CORRUPT]++;
}

/* Run r with its DATA payload p[0..n) and answer it (or delay the answer). */
static void req_execute(struct sreq *r, const uint8_t *p, size_t n)
{
    struct sconn *c = r->c;
    const struct fault_cfg *f = &g_svc.fault;
    struct oap_data d;
    uint32_t delay;

    if (oap_data_split(&d, p, n) != 0) {
        struct oap_hdr h = {.app_proto_id = r->app, .corr_id = r->corr_id};
        memcpy(h.tenant, r->tenant, OAP_TENANT_BYTES);
        r->st = SR_DONE;
        req_free(r);
        /* Offset: the frame's payload start is where the DATA header is. */
        conn_fail(c, OAP_E_BAD_DATA_HDR, c->dec.off, &h);
        return;
    }
    if (f->stall_rate > 0 && svc_rand01() < f->stall_rate) {
        g_svc.faults[FAULT_STALL]++;
        r->st = SR_STALLED; /* stays inflight until the connection closes */
        return;
    }
    if (f->error_rate > 0 && svc_rand01() < f->error_rate) {
        g_svc.faults[FAULT_ERROR]++;
        r->rs.code = 503;
        r->rs.op = "invalid";
        r->rs.hdr_len = (size_t)snprintf(r->rs.hdr, sizeof(r->rs.hdr),
                                         "{\"error\":\"injected\",\"reason\":\"fault injection\"}");
    } else {
        struct proto_req rq = {.app = r->app,
                               .hdr = d.hdr,
                               .hdr_len = d.hdr_len,
                               .body = d.body,
                               .body_len = d.body_len,
                               .now_ms = proto_now_ms()};
        proto_handle(&g_svc.eng, &rq, &r->rs);
        r->op = svc_op_of(r->rs.op);
        if (r->app == OAP_APP_STORAGE && r->rs.body_len > 0 &&
            (r->rs.code == 200 || r->rs.code == 206) && f->corrupt_rate > 0 &&
            svc_rand01() < f->corrupt_rate)
            corrupt_body(r);
    }
    delay = f->latency_ms + svc_rand_below(f->jitter_ms ? f->jitter_ms + 1 : 0);
    if (delay == 0) {
        req_answer(r);
        if (r->st == SR_DONE)
            req_free(r);
        return;
    }
    g_svc.faults[FAULT_LATENCY]++;
    r->st = SR_DELAYED;
    uv_timer_init(g_svc.loop, &r->timer);
    r->timer.data = r;
    r->timer_on = true;
    uv_timer_start(&r->timer, req_on_timer, delay, 0);
}

/* ------------------------------------------------------------ frames in */

static void on_hello(struct sconn *c, const struct oap_frame *f)
{
    struct oap_hello mine, peer, both;
    struct swrite *sw;
    struct oap_hdr h;
    ssize_t n;

    if (oap_hello_parse(&peer, f->payload, f->payload_len) != 0) {
        conn_fail(c, OAP_E_BAD_HELLO, c->dec.off - f->h.len + OAP_HDR_BYTES, &f->h);
        return;
    }
    oap_hello_defaults(&mine);
    mine.max_frame = SVC_MAX_FRAME_BYTES;
    mine.max_inflight = SVC_MAX_INFLIGHT;
    if (oap_hello_negotiate(&mine, &peer, &both) != 0) {
        conn_fail(c, OAP_E_BAD_VERSION, c->dec.off - f->h.len + OAP_HDR_BYTES, &f->h);
        return;
    }
    /* We encode within the peer's limit and keep decoding with ours. */
    c->peer_max_frame = both.max_frame;
    c->chunk = oap_stream_chunk(0, both.max_frame);
    sw = sw_new(NULL);
    if (!sw) {
        conn_close(c);
        return;
    }
    n = oap_hello_encode(&mine, (char *)sw->pre, sizeof(sw->pre));
    sw->pre_len = n > 0 ? (size_t)n : 0;
    memset(&h, 0, sizeof(h));
    h.flags = OAP_FLAG_RESP;
    h.code = 200;
    h.corr_id = f->h.corr_id;
    memcpy(h.tenant, f->h.tenant, OAP_TENANT_BYTES);
    svc_count(SVC_OP_HELLO, 200);
    frame_send(c, sw, &h, NULL, 0);
}

static void on_credit(struct sconn *c, const struct oap_frame *f)
{
    uint32_t n;
    struct sreq *r;
    uint64_t at = c->dec.off - f->h.len;

    if (oap_credit_parse(f, &n) != 0) {
        conn_fail(c, OAP_E_BAD_CREDIT, at, &f->h);
        return;
    }
    r = req_find(c, f->h.corr_id);
    /* A grant for a stream that already ended crossed our END: harmless. */
    if (!r || r->st != SR_STREAM)
        return;
    if (oap_producer_on_grant(&r->prod, n) != 0) {
        conn_fail(c, OAP_E_BAD_CREDIT, at, &f->h);
        return;
    }
    req_pump(r);
    if (r->st == SR_DONE)
        req_free(r);
}

/* Our grant for a request stream. */
static void send_grant(struct sconn *c, struct sreq *r, uint32_t n)
{
    struct swrite *sw = sw_new(NULL);
    struct oap_hdr h;

    if (!sw) {
        conn_close(c);
        return;
    }
    memset(&h, 0, sizeof(h));
    h.flags = OAP_CREDIT_FLAGS;
    h.app_proto_id = r->app;
    memcpy(h.tenant, r->tenant, OAP_TENANT_BYTES);
    h.corr_id = r->corr_id;
    oap_put32(sw->pre, n);
    sw->pre_len = OAP_CREDIT_PAYLOAD_BYTES;
    frame_send(c, sw, &h, NULL, 0);
}

/* Inflate a COMP payload into a new buffer (cap: our max_frame, stricter
 * than the protocol's 8 × max_frame: one request is one frame's worth).
 * Returns the buffer (caller frees) or NULL with *err set. */
static uint8_t *inflate_payload(const struct oap_frame *f, size_t *out_len, int *err)
{
    uint8_t *buf = malloc(SVC_MAX_FRAME_BYTES);

    if (!buf) {
        *err = OAP_E_NOMEM;
        return NULL;
    }
    *err = oap_inflate_once(f->payload, f->payload_len, buf, SVC_MAX_FRAME_BYTES,
                            SVC_MAX_FRAME_BYTES, out_len);
    if (*err != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* A frame continuing a request stream. */
static void on_upload_frame(struct sconn *c, struct sreq *r, const struct oap_frame *f)
{
    uint64_t at = c->dec.off - f->h.len;
    uint32_t g;

    if (oap_consumer_on_frame(&r->cons, f->h.flags) != 0) {
        conn_fail(c, OAP_E_CREDIT, at, &f->h);
        return;
    }
    if (r->st == SR_UPLOAD) {
        if (f->payload_len > SVC_UPLOAD_MAX_BYTES - r->up_len) {
            /* Over the cap: answer 413 at END, drop the rest. */
            free(r->up);
            r->up = NULL;
            r->up_len = r->up_cap = 0;
            r->st = SR_DISCARD;
        } else {
            if (r->up_len + f->payload_len > r->up_cap) {
                size_t cap = r->up_cap ? r->up_cap : 65536;
                uint8_t *nb;
                while (cap < r->up_len + f->payload_len)
                    cap *= 2;
                if (cap > SVC_UPLOAD_MAX_BYTES)
                    cap = SVC_UPLOAD_MAX_BYTES;
                nb = realloc(r->up, cap);
                if (!nb) {
                    conn_fail(c, OAP_E_NOMEM, at, &f->h);
                    return;
                }
                r->up = nb;
                r->up_cap = cap;
            }
            memcpy(r->up + r->up_len, f->payload, f->payload_len);
            r->up_len += f->payload_len;
        }
    }
    oap_consumer_on_consumed(&r->cons, 1);
    if (!(f->h.flags & OAP_FLAG_END)) {
        if ((g = oap_consumer_grant(&r->cons)) > 0)
            send_grant(c, r, g);
        return;
    }
    if (r->st == SR_DISCARD) {
        r->op = r->app == OAP_APP_STORAGE ? SVC_OP_PUT : SVC_OP_INVALID;
        r->rs.code = 413;
        r->rs.op = "invalid";
        r->rs.hdr_len = (size_t)snprintf(r->rs.hdr, sizeof(r->rs.hdr),
                                         "{\"error\":\"too_large\",\"reason\":\"request stream "
                                         "over %u bytes\"}",
                                         SVC_UPLOAD_MAX_BYTES);
        req_answer(r);
        if (r->st == SR_DONE)
            req_free(r);
        return;
    }
    r->st = SR_DELAYED; /* not yet answered; req_execute sets the real state */
    {
        uint8_t *buf = r->up;
        size_t len = r->up_len;
        r->up = NULL;
        req_execute(r, buf, len);
        free(buf);
    }
}

static void on_frame(struct sconn *c, const struct oap_frame *f)
{
    const struct oap_hdr *h = &f->h;
    uint64_t at = c->dec.off - h->len;
    struct sreq *r;
    uint8_t *inflated = NULL;
    const uint8_t *p = f->payload;
    size_t n = f->payload_len;
    int err;

    if (oap_credit_is(f)) {
        on_credit(c, f);
        return;
    }
    if (!(h->flags & OAP_FLAG_REQ) || (h->flags & (OAP_FLAG_RESP | OAP_FLAG_EVENT))) {
        conn_fail(c, OAP_E_STATE, at + OAP_OFF_FLAGS, h);
        return;
    }
    /* Continuation of a request stream? */
    r = req_find(c, h->corr_id);
    if (r && (r->st == SR_UPLOAD || r->st == SR_DISCARD)) {
        if (h->flags & OAP_FLAG_START) {
            conn_fail(c, OAP_E_STATE, at + OAP_OFF_FLAGS, h);
            return;
        }
        on_upload_frame(c, r, f);
        return;
    }
    if (h->app_proto_id == OAP_APP_HELLO) {
        on_hello(c, f);
        return;
    }
    if (h->app_proto_id != g_svc.app) {
        svc_count(SVC_OP_INVALID, 400);
        send_small(c, h, OAP_FLAG_RESP, 400,
                   "{\"error\":\"bad_request\",\"reason\":\"wrong app protocol for this service\"}",
                   false);
        return;
    }
    if (r) {
        svc_count(SVC_OP_INVALID, 400);
        send_small(c, h, OAP_FLAG_RESP, 400,
                   "{\"error\":\"bad_request\",\"reason\":\"corr_id already in flight\"}", false);
        return;
    }
    if (c->inflight >= SVC_MAX_INFLIGHT) {
        svc_count(SVC_OP_INVALID, 429);
        send_small(c, h, OAP_FLAG_RESP, 429,
                   "{\"error\":\"busy\",\"reason\":\"max_inflight reached\"}", false);
        return;
    }
    if (g_svc.fault.drop_rate > 0 && svc_rand01() < g_svc.fault.drop_rate) {
        g_svc.faults[FAULT_DROP]++;
        conn_close(c);
        return;
    }
    if ((h->flags & OAP_FLAG_START) && !(h->flags & OAP_FLAG_END)) {
        /* A request stream: assemble it (the initial credit is implicit). */
        r = req_new(c, h);
        if (!r) {
            conn_close(c);
            return;
        }
        r->st = SR_UPLOAD;
        oap_consumer_init(&r->cons, 16);
        on_upload_frame(c, r, f);
        return;
    }
    if (h->flags & OAP_FLAG_COMP) {
        inflated = inflate_payload(f, &n, &err);
        if (!inflated) {
            conn_fail(c, err, at + OAP_HDR_BYTES + h->cap_len, h);
            return;
        }
        p = inflated;
    }
    r = req_new(c, h);
    if (!r) {
        free(inflated);
        conn_close(c);
        return;
    }
    req_execute(r, p, n);
    free(inflated);
}

/* ---------------------------------------------------------- connection */

static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct sconn *c = h->data;

    *b = uv_buf_init((char *)c->rbuf, RBUF_BYTES);
}

static void conn_maybe_resume(struct sconn *c)
{
    if (c->paused && !c->closing && c->u.s.write_queue_size < SVC_WRITE_LOW_BYTES) {
        c->paused = false;
        uv_read_start(&c->u.s, conn_on_alloc, conn_on_read);
    }
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct sconn *c = s->data;
    size_t off = 0;

    if (nread < 0) {
        int rc = oap_decoder_finish(&c->dec);
        if (rc != 0 && nread == UV_EOF)
            conn_fail(c, rc, oap_decoder_error_offset(&c->dec), NULL);
        else
            conn_close(c);
        return;
    }
    g_svc.bytes_in += (uint64_t)nread;
    while (off < (size_t)nread && !c->closing) {
        struct oap_frame f;
        size_t used = 0;
        int rc = oap_decoder_feed(&c->dec, (const uint8_t *)b->base + off, (size_t)nread - off,
                                  &used, &f);
        off += used;
        if (rc == OAP_E_AGAIN)
            break;
        if (rc != 0) {
            conn_fail(c, rc, oap_decoder_error_offset(&c->dec), NULL);
            break;
        }
        on_frame(c, &f);
    }
    if (!c->closing && c->u.s.write_queue_size > SVC_WRITE_HIGH_BYTES) {
        c->paused = true;
        uv_read_stop(&c->u.s);
    }
}

static void conn_on_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;

    /* libuv has run every pending write callback (cancelled) by now. */
    batch_discard(c);
    while (c->reqs) {
        struct sreq *r = c->reqs;
        req_detach(r);
        req_free(r);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        all_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    oap_decoder_release(&c->dec);
    g_svc.conns--;
    free(c);
}

static void conn_close(struct sconn *c)
{
    /* Answers batched this turn still go out, as far as the socket takes
     * them now (a half-closed peer waits for them). */
    bool was_closing = c->closing;
    c->closing = true;
    if (!was_closing) {
        (void)wbatch_flush(&c->batch);
        wbatch_drop(&c->batch);
    }
    if (!uv_is_closing(&c->u.h))
        uv_close(&c->u.h, conn_on_closed);
}

void oapsrv_on_conn(uv_stream_t *server, int status)
{
    struct sconn *c;
    int rc;

    if (status != 0)
        return;
    if (!batches_ready) {
        wbatch_set_init(&batches, g_svc.loop);
        batches_ready = true;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    if (server->type == UV_NAMED_PIPE)
        uv_pipe_init(g_svc.loop, &c->u.pipe, 0);
    else
        uv_tcp_init(g_svc.loop, &c->u.tcp);
    c->u.h.data = c;
    wbatch_init(&c->batch, &batches, &c->u.s);
    c->batch.on_write_end = on_batch_write_end;
    c->batch.on_flushed = on_batch_flushed;
    oap_decoder_init(&c->dec, SVC_MAX_FRAME_BYTES);
    c->peer_max_frame = SVC_MAX_FRAME_BYTES;
    c->chunk = oap_stream_chunk(0, SVC_MAX_FRAME_BYTES);
    c->next = all_conns;
    if (all_conns)
        all_conns->prev = c;
    all_conns = c;
    g_svc.conns++;
    g_svc.conns_total++;
    rc = uv_accept(server, &c->u.s);
    if (rc != 0) {
        conn_close(c);
        return;
    }
    if (server->type == UV_TCP)
        uv_tcp_nodelay(&c->u.tcp, 1);
    uv_read_start(&c->u.s, conn_on_alloc, conn_on_read);
}

void oapsrv_close_all(void)
{
    for (struct sconn *c = all_conns; c; c = c->next)
        conn_close(c);
    if (batches_ready) {
        batches_ready = false;
        wbatch_set_close(&batches, NULL);
    }
}
