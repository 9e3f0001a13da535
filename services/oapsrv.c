/*
 * oapsrv.c — request execution of the reference services (docs/OAP.md).
 *
 * Each accepted connection is an OAP/1 endpoint in the server role
 * (oapnet/oapnet.h), which owns the socket, the decode loop, HELLO, credit,
 * frame writes (small ones batched per loop turn) and the typed error frame
 * sent before closing on a protocol error. What is left here is the
 * service: a request (struct sreq, one endpoint stream) is refused, or
 * parsed and executed (proto_op_parse, proto_exec) once its DATA payload is
 * whole, then answered
 * — at once, after the latency fault, or never (stall fault).
 *
 * Requests are executed on receipt (the engines are synchronous); fault
 * latency delays the answer with a uv timer, never the loop. A service that
 * keeps its state on disk logs the change a request made as it is executed
 * (services/durable/journal.h) and holds the answer until the log says the
 * record is durable: a 201 means the message is on disk. Answers whose
 * payload exceeds one stream chunk leave as START / data / END frames paced
 * by the client's credit; their body is a view into the engine's
 * ref-counted blob or buffer, borrowed until the endpoint has written it.
 * Request streams (a PUT body over one frame) are assembled by the endpoint
 * under SVC_UPLOAD_MAX_BYTES, paced by our grants; a larger one is answered
 * 413 after its END. Application errors (bad JSON, unknown op, wrong app
 * id) are ordinary error responses and the connection stays.
 *
 * A request lives until it is answered (its last frame queued) or its
 * connection is gone, and is freed once no write borrows its body and its
 * timer is closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oap/comp.h"
#include "oap/stream.h"
#include "oapnet/oapnet.h"
#include "services/durable/journal.h"
#include "services/substrate.h"

struct sconn;

enum sreq_state {
    SR_RECEIVING, /* the request (a stream) is arriving */
    SR_LOGGING,   /* executed; answer waits for its log record to be durable */
    SR_DELAYED,   /* answer waits for the latency timer */
    SR_ANSWERING, /* answer being sent as credit allows */
    SR_STALLED,   /* fault: never answered */
    SR_DONE,      /* last frame queued; freed when its writes complete */
};

struct sreq {
    struct oapnet_stream st; /* open until the answer is sent */
    struct sconn *c;         /* NULL once detached (answered, or connection gone) */
    enum sreq_state state;
    enum svc_op op;
    struct proto_resp rs;
    bool timer_on;
    bool logging; /* queued on the log (ww): not freed until called back */
    uv_timer_t timer;
    struct wal_waiter ww;
};

struct sconn {
    struct oapnet ep;
    struct sconn *next, *prev;
    unsigned inflight; /* sreqs counted against SVC_MAX_INFLIGHT */
};

static struct sconn *all_conns;
static struct wbatch_set batches; /* every connection's, one loop */
static bool batches_ready;

static void req_free(struct sreq *r);

static struct sconn *conn_of(struct oapnet *ep)
{
    return (struct sconn *)((char *)ep - offsetof(struct sconn, ep));
}

static struct sreq *req_of(struct oapnet_stream *st)
{
    return (struct sreq *)((char *)st - offsetof(struct sreq, st));
}

/* ------------------------------------------------------------ requests */

static struct sreq *req_new(struct sconn *c, const struct oap_hdr *h)
{
    struct sreq *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->c = c;
    r->op = SVC_OP_INVALID;
    oapnet_stream_open(&c->ep, &r->st, h->corr_id, h->app_proto_id, h->tenant);
    r->st.window = OAPNET_WINDOW_DEF;
    c->inflight++;
    g_svc.inflight++;
    return r;
}

/* The request stops counting as inflight on its connection. Its stream is
 * already out of the endpoint's table (answered, or connection closed). */
static void req_detach(struct sreq *r)
{
    if (!r->c)
        return;
    r->c->inflight--;
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
 * and nothing references it any more: no write borrowing its body in
 * flight, timer closed. Safe to call at any time; does nothing while r is
 * still live. */
static void req_free(struct sreq *r)
{
    if (r->logging)
        return;
    if (r->state != SR_DONE && r->c)
        return;
    if (r->st.writes)
        return;
    if (r->timer_on) {
        if (!uv_is_closing((uv_handle_t *)&r->timer))
            uv_close((uv_handle_t *)&r->timer, req_on_timer_closed);
        return;
    }
    req_detach(r);
    proto_resp_release(&r->rs);
    free(r);
}

/* The last frame of r is queued: r is answered, so it stops counting
 * against the connection's inflight cap; it is freed when its writes end. */
static void req_done(struct sreq *r)
{
    r->state = SR_DONE;
    if (r->c)
        oapnet_stream_close(&r->c->ep, &r->st);
    req_detach(r);
    req_free(r);
}

/* Start answering r (its rs is final). */
static void req_answer(struct sreq *r)
{
    struct sconn *c = r->c;
    int e;

    if (!c || c->ep.state != OAPNET_READY)
        return;
    svc_count(r->op, r->rs.code);
    r->state = SR_ANSWERING;
    e = oapnet_send(&c->ep, &r->st, (uint16_t)r->rs.code, r->rs.hdr, r->rs.hdr_len, r->rs.body,
                    r->rs.body_len);
    if (r->st.out_stream && e >= 0)
        g_svc.streams++;
    if (e == 1)
        req_done(r);
    else if (e < 0)
        oapnet_close(&c->ep, "write failed");
}

static void req_on_timer(uv_timer_t *t)
{
    struct sreq *r = t->data;

    uv_close((uv_handle_t *)t, req_on_timer_closed);
    if (r->state == SR_DELAYED && r->c)
        req_answer(r);
}

/* Answer r now, or after the latency fault. */
static void req_reply(struct sreq *r)
{
    uint32_t delay = fault_delay_ms();

    if (delay == 0) {
        req_answer(r);
        return;
    }
    r->state = SR_DELAYED;
    uv_timer_init(g_svc.loop, &r->timer);
    r->timer.data = r;
    r->timer_on = true;
    uv_timer_start(&r->timer, req_on_timer, delay, 0);
}

/* r's log record is durable: answer it, unless its connection is gone. */
static void req_on_logged(struct wal_waiter *ww)
{
    struct sreq *r = (struct sreq *)((char *)ww - offsetof(struct sreq, ww));

    r->logging = false;
    if (r->c == NULL) {
        req_free(r);
        return;
    }
    req_reply(r);
}

/* Run r with its request payload split in m and answer it (or delay the
 * answer, or never answer it). */
static void req_execute(struct sreq *r, const struct oapnet_msg *m)
{
    if (fault_stall()) {
        r->state = SR_STALLED; /* stays inflight until the connection closes */
        return;
    }
    if (!fault_error(&r->rs)) {
        /* proto_handle(), with the parsed op kept for the log. */
        struct proto_parsed ps;
        uint64_t now = proto_now_ms();
        int64_t pos = 0;
        if (proto_op_parse(&ps, r->st.app, m->hdr, m->hdr_len, &r->rs) == 0)
            proto_exec(&g_svc.eng, &ps.op, m->body, m->body_len, now, &r->rs);
        r->op = svc_op_of(r->rs.op);
        fault_corrupt(r->st.app, &r->rs);
        if (g_svc.wal != NULL)
            pos = journal_log(g_svc.wal, &ps.op, m->body, m->body_len, now, &r->rs);
        proto_parsed_release(&ps);
        if (pos < 0) {
            proto_resp_release(&r->rs);
            r->rs.code = 500;
            r->rs.hdr_len = (size_t)snprintf(
                r->rs.hdr, sizeof(r->rs.hdr), "%s",
                "{\"error\":\"internal\",\"reason\":\"the change could not be logged\"}");
        } else if (pos > 0) {
            r->state = SR_LOGGING;
            r->logging = true;
            wal_wait(g_svc.wal, &r->ww, (uint64_t)pos, req_on_logged);
            return;
        }
    }
    req_reply(r);
}

/* ------------------------------------------------- endpoint callbacks */

/* A request frame that opens a message: refuse it with an ordinary answer
 * when it is not for us, a duplicate or over the inflight cap. */
static struct oapnet_stream *conn_on_request(struct oapnet *ep, const struct oap_frame *f)
{
    struct sconn *c = conn_of(ep);
    const struct oap_hdr *h = &f->h;
    const char *refusal = NULL;
    int code = 400;
    struct sreq *r;

    if (h->app_proto_id != g_svc.app) {
        refusal = "{\"error\":\"bad_request\",\"reason\":\"wrong app protocol for this service\"}";
    } else if (oapnet_stream_find(ep, h->corr_id)) {
        refusal = "{\"error\":\"bad_request\",\"reason\":\"corr_id already in flight\"}";
    } else if (c->inflight >= SVC_MAX_INFLIGHT) {
        code = 429;
        refusal = "{\"error\":\"busy\",\"reason\":\"max_inflight reached\"}";
    }
    if (refusal) {
        svc_count(SVC_OP_INVALID, code);
        if (oapnet_answer(ep, h, 0, (uint16_t)code, refusal, strlen(refusal)) != 0)
            oapnet_close(ep, "write failed");
        return NULL;
    }
    if (fault_drop()) {
        oapnet_close(ep, "fault: dropped");
        return NULL;
    }
    if ((r = req_new(c, h)) == NULL) {
        oapnet_close(ep, "out of memory");
        return NULL;
    }
    return &r->st;
}

static void conn_on_message(struct oapnet *ep, struct oapnet_stream *st, int status,
                            struct oapnet_msg *m)
{
    struct sreq *r = req_of(st);

    if (status == OAP_E_TOO_LARGE) {
        r->op = r->st.app == OAP_APP_STORAGE ? SVC_OP_PUT : SVC_OP_INVALID;
        r->rs.code = 413;
        r->rs.op = "invalid";
        r->rs.hdr_len = (size_t)snprintf(r->rs.hdr, sizeof(r->rs.hdr),
                                         "{\"error\":\"too_large\",\"reason\":\"request stream "
                                         "over %u bytes\"}",
                                         SVC_UPLOAD_MAX_BYTES);
        req_answer(r);
        return;
    }
    if (status != 0) {
        /* A DATA payload that does not split: a protocol error. Offset: the
         * end of the frame that completed the request. */
        struct oap_hdr h = {.app_proto_id = r->st.app, .corr_id = r->st.corr};
        memcpy(h.tenant, r->st.tenant, OAP_TENANT_BYTES);
        req_done(r);
        oapnet_fail(ep, status, oapnet_offset(ep), &h);
        return;
    }
    req_execute(r, m);
}

/* A grant let the answer's last frame go. */
static void conn_on_sent(struct oapnet *ep, struct oapnet_stream *st)
{
    req_done(req_of(st));
}

static void conn_on_written(struct oapnet *ep, struct oapnet_stream *st, int status)
{
    req_free(req_of(st));
}

static void conn_on_abort(struct oapnet *ep, struct oapnet_stream *st)
{
    struct sreq *r = req_of(st);

    req_detach(r);
    req_free(r);
}

static void conn_on_hello(struct oapnet *ep)
{
    svc_count(SVC_OP_HELLO, 200);
}

static void conn_on_error(struct oapnet *ep, int err, uint64_t off)
{
    g_svc.frame_errors++;
    svc_log("\"msg\":\"bad frame\",\"error\":\"%s\",\"offset\":%llu", oap_status_name(err),
            (unsigned long long)off);
}

static void conn_on_closed(struct oapnet *ep)
{
    struct sconn *c = conn_of(ep);

    if (c->prev)
        c->prev->next = c->next;
    else
        all_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    g_svc.conns--;
    free(c);
}

static const struct oapnet_ops conn_ops = {
    .on_hello = conn_on_hello,
    .on_request = conn_on_request,
    .on_message = conn_on_message,
    .on_sent = conn_on_sent,
    .on_written = conn_on_written,
    .on_abort = conn_on_abort,
    .on_error = conn_on_error,
    .on_closed = conn_on_closed,
};

/* ---------------------------------------------------------- connection */

void oapsrv_on_conn(uv_stream_t *server, int status)
{
    struct oap_hello mine;
    struct sconn *c;

    if (status != 0)
        return;
    if (!batches_ready) {
        wbatch_set_init(&batches, g_svc.loop);
        batches_ready = true;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    oap_hello_defaults(&mine);
    mine.max_frame = g_svc.max_frame;
    mine.max_inflight = SVC_MAX_INFLIGHT;
    oapnet_init(&c->ep, OAPNET_SERVER, &conn_ops, &batches, &mine);
    c->ep.in_max = SVC_UPLOAD_MAX_BYTES;
    c->ep.write_high = SVC_WRITE_HIGH_BYTES;
    c->ep.write_low = SVC_WRITE_LOW_BYTES;
    c->ep.bytes_in = &g_svc.bytes_in;
    c->ep.bytes_out = &g_svc.bytes_out;
    c->ep.inflate = oap_inflate_once; /* we announce COMP */
    if (oapnet_accept(&c->ep, server) != 0) {
        free(c);
        return;
    }
    c->next = all_conns;
    if (all_conns)
        all_conns->prev = c;
    all_conns = c;
    g_svc.conns++;
    g_svc.conns_total++;
}

void oapsrv_close_all(void)
{
    for (struct sconn *c = all_conns; c; c = c->next)
        oapnet_close(&c->ep, "shutting down");
    if (batches_ready) {
        batches_ready = false;
        wbatch_set_close(&batches, NULL);
    }
}
