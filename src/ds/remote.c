/*
 * remote.c — the OAP/1 backend: per-worker connection pools to the
 * downstream services (macronode, DESIGN §2 and §5).
 *
 * Each worker keeps, per remote service, ds__remote_pool_size connections on
 * its own loop (shared-nothing; the state hangs off w->ext[WORKER_EXT_DS]).
 *
 * Connection lifecycle:
 *   DOWN --timer--> CONNECTING --connected--> HELLO --peer HELLO--> READY
 *   any state but DOWN --error/timeout--> CLOSING --closed--> DOWN (backoff)
 * A connection takes calls only when READY. Connect plus HELLO must finish
 * within REMOTE_CONNECT_TIMEOUT_MS. Reconnects wait remote_backoff_ms()
 * (50 ms doubling to 2 s, ±50 % jitter), forever; a successful HELLO resets
 * the doubling.
 *
 * Calls. Each READY connection has max_inflight slots (the negotiated value;
 * we announce REMOTE_MAX_INFLIGHT, so in practice it is the peer's). A call
 * takes a free slot; its corr_id is (per-connection sequence << 16 | slot),
 * so the answer finds its slot in O(1) and a stale corr_id never matches a
 * reused slot. c->bstate points at the slot (NULL while the call waits in
 * the pool queue). Requests whose payload fits the peer's max_frame go out
 * as one REQ frame; larger ones as a request stream under the peer's credit.
 * Writes are batched per connection (net/wbatch.h): a frame whose body is
 * at most WBATCH_COPY_MAX is appended to the connection's batch buffer, and
 * every batch is written once per loop turn (check phase; an idle handle
 * keeps the loop from blocking while a batch waits), so the calls of many
 * requests that fan out to the same service in one turn cost one write
 * syscall instead of one each. A frame with a larger body flushes the batch
 * and goes out on its own: header, DATA length and header JSON copied into
 * the write request (≤ 8 KiB), the body borrowed from the call.
 *
 * Answers. A RESP frame completes its call; a START frame begins a streamed
 * answer that is gathered (≤ REMOTE_STREAM_MAX_BYTES) until END, with credit
 * granted frame by frame as we copy them out (oap_consumer). What is handed
 * to ds__attempt_done is one malloc'd block (header JSON + body) released by
 * free: frames are views into the read buffer, which the next read reuses.
 *
 * Streams (ds_call_stream). The START frame's header is the head; the body
 * bytes of every frame are copied once into a chunk of their own (the read
 * buffer is reused by the next read) and handed to the consumer. A frame
 * stays "buffered" in the stream's oap_consumer until the consumer releases
 * its chunk (backend hook consumed), and only then is credit granted, so the
 * service runs at most the credit window ahead of the client's socket:
 * window = the call's stream_window, raised to OAP_STREAM_INITIAL_CREDIT
 * (4) because the protocol lets a producer send that many frames unasked.
 * There is no size ceiling: memory is bounded by the window, not the object.
 * A one-frame answer reaches the consumer as head + one chunk + end through
 * ds__attempt_done. A stream whose call is cancelled forgets the frames the
 * consumer held and is drained like any orphan. Memory per stream: at most
 * max(window, 4) chunks of one frame's body each (64 KiB from the reference
 * services), besides the connection's shared read buffer.
 *
 * Failures and their mapping (ds_resp.code 0, err):
 *   - connection lost, refused, decode error, HELLO failure, unknown
 *     corr_id, stream without credit, COMP payload (we announce no COMP):
 *     the connection closes; every call on it gets BAD_GATEWAY in the close
 *     callback (so never inside the call that armed it); it reconnects.
 *   - malformed DATA payload in one answer, or a streamed answer over
 *     REMOTE_STREAM_MAX_BYTES: that call gets BAD_GATEWAY; the connection
 *     stays (the framing is intact; an oversized stream is drained).
 *   - send() returns -1 when the service has no connection that is READY,
 *     CONNECTING or in HELLO (all in backoff): ds core answers BAD_GATEWAY
 *     (retryable) at once, so a dead downstream costs no waiting. When
 *     connections are READY but full, or still connecting, the call waits
 *     in a per-pool FIFO (bounded by the core's concurrency limit) and is
 *     failed with BAD_GATEWAY as soon as every connection is down.
 *
 * abort(): a queued call is unlinked; an in-flight one leaves an orphan slot
 * whose late answer is dropped (a streamed one is drained with credit). If
 * the call's borrowed body may still be read by a queued write, or its
 * request stream is unfinished, the connection is closed instead, since the
 * core frees those bytes. Orphans older than REMOTE_ORPHAN_MAX_MS (a peer
 * that never answers) close the connection so its slots come back.
 *
 * Shutdown: a per-worker tick closes everything once the server drains and
 * the worker has no client connection left, so the worker loop can end.
 */
#include "ds/remote.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "ds/internal.h"
#include "ds/oapc.h"
#include "net/wbatch.h"
#include "oap/data.h"
#include "oap/hello.h"
#include "oap/oap.h"
#include "oap/stream.h"
#include "ops/metrics.h"

#define REMOTE_CONNECT_TIMEOUT_MS 2000  /* connect + HELLO */
#define REMOTE_TICK_MS            100   /* drain and orphan checks */
#define REMOTE_ORPHAN_MAX_MS      10000 /* an abandoned call's answer may take this long */
#define REMOTE_READ_BYTES         65536
#define REMOTE_MAX_INFLIGHT       1024 /* our HELLO: bounds slot memory per connection */
#define REMOTE_STREAM_MAX_BYTES   OAPC_STREAM_MAX_BYTES
#define REMOTE_STREAM_WINDOW      OAPC_STREAM_WINDOW
#define REMOTE_SLOT_BITS          16
#define REMOTE_NO_SLOT            UINT32_MAX

/* Process-wide, any thread: READY connections and reconnects per service. */
static atomic_int ready_conns[DS__COUNT];
static atomic_ulong reconnects[DS__COUNT];
static atomic_flag metrics_registered = ATOMIC_FLAG_INIT;

enum rconn_state { RC_DOWN, RC_CONNECTING, RC_HELLO, RC_READY, RC_CLOSING };

struct rconn;

struct rslot {
    struct rconn *rc;
    struct ds_call *c;  /* NULL when free or orphaned */
    uint64_t corr;      /* 0 when free */
    uint64_t orphan_ms; /* loop time it was abandoned, 0 while wanted */
    uint32_t next_free;
    uint32_t wpending; /* queued writes that borrow c's body */
    bool req_stream;
    struct oap_producer prod;
    size_t sent; /* body bytes handed to uv_write */
    bool resp_stream;
    bool chunked; /* a ds_call_stream answer: frames go to the consumer as chunks */
    int code;
    struct oap_consumer cons;
    char *acc; /* streamed answer: header JSON, then body */
    size_t acc_len, acc_cap, acc_hdr;
};

struct rpool;

struct rconn {
    struct rpool *pool;
    enum rconn_state st;
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    bool handle_open;
    bool started_once;
    uv_connect_t creq;
    uv_timer_t timer; /* backoff while DOWN, connect timeout until READY */
    unsigned failures;
    struct oap_decoder dec;
    uint8_t *rbuf;
    uint32_t max_frame, max_inflight, inflight, orphans;
    uint64_t seq;
    struct rslot *slots;
    uint32_t free_head;
    struct wbatch batch; /* small frames waiting for this loop turn's write */
};

struct rworker;

struct rpool {
    struct rworker *rw;
    enum ds_service svc;
    struct oapc_addr addr;
    int n;
    struct rconn *conns;
    unsigned rr;
    struct ds_call *qhead, *qtail; /* waiting for a slot, linked by qnext */
};

struct rworker {
    struct worker *w;
    struct rpool pools[DS__COUNT];
    uv_timer_t tick;
    struct wbatch_set batches; /* written once per loop turn */
    int handles;               /* open libuv handles; freed when stopping and 0 */
    bool stopping;
    uint64_t rnd;
};

/* A write request with its copied prefix: frame header, then `small`. */
struct rwrite {
    uv_write_t req;
    struct rconn *rc;
    uint32_t slot;
    uint64_t corr;
    bool borrows;
    uint8_t small[]; /* OAP_HDR_BYTES + small_len */
};

static void conn_fail(struct rconn *rc, const char *why);
static void pool_dispatch(struct rpool *p);

/* ------------------------------------------------------------ pure parts */

uint64_t remote_backoff_ms(unsigned failures, uint32_t rnd)
{
    uint64_t base = REMOTE_BACKOFF_MIN_MS;
    for (unsigned i = 0; i < failures && base < REMOTE_BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > REMOTE_BACKOFF_MAX_MS)
        base = REMOTE_BACKOFF_MAX_MS;
    return base / 2 + (uint64_t)rnd % (base + 1);
}

static uint32_t rw_rand(struct rworker *rw)
{
    uint64_t x = rw->rnd; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rw->rnd = x;
    return (uint32_t)(x >> 32);
}

static uint64_t now_ms(struct rconn *rc)
{
    return uv_now(&rc->pool->rw->w->loop);
}

/* ---------------------------------------------------------------- handles */

static void rw_maybe_free(struct rworker *rw)
{
    if (!rw->stopping || rw->handles > 0)
        return;
    for (int s = 0; s < DS__COUNT; s++)
        free(rw->pools[s].conns);
    rw->w->ext[WORKER_EXT_DS] = NULL;
    free(rw);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct rworker *rw = h->data;
    rw->handles--;
    rw_maybe_free(rw);
}

/* ----------------------------------------------------------------- writes */

static void on_write(uv_write_t *req, int status)
{
    struct rwrite *wr = (struct rwrite *)req;
    struct rconn *rc = wr->rc;

    if (wr->borrows && rc->slots && wr->slot < rc->max_inflight &&
        rc->slots[wr->slot].corr == wr->corr && rc->slots[wr->slot].wpending > 0)
        rc->slots[wr->slot].wpending--;
    free(wr);
    if (status < 0 && status != UV_ECANCELED)
        conn_fail(rc, uv_strerror(status));
}

/* The connection's batch could not be written whole (the bytes may be cut
 * mid-frame), or a queued batch write ended badly. */
static void on_batch_write_end(struct wbatch *wb, int status)
{
    struct rconn *rc = (struct rconn *)((char *)wb - offsetof(struct rconn, batch));
    if (status < 0 && status != UV_ECANCELED)
        conn_fail(rc, uv_strerror(status));
}

/*
 * Queue one frame. A body of at most WBATCH_COPY_MAX is copied into the
 * batch (flushed first when the frame would take it past WBATCH_MAX);
 * a larger one flushes the batch and goes out as header + copy of s1/s2 +
 * borrowed body, slot being the call whose body is borrowed (REMOTE_NO_SLOT
 * for none). Returns 0 or a negative libuv/OAP error; on error the frame was
 * not queued.
 */
static int write_frame(struct rconn *rc, uint32_t slot, uint16_t flags, uint16_t app, uint64_t corr,
                       const void *s1, size_t n1, const void *s2, size_t n2, const void *body,
                       size_t body_len)
{
    size_t len = OAP_HDR_BYTES + n1 + n2 + body_len;
    struct rwrite *wr;
    uv_buf_t bufs[2];
    int nb = 1, rc_;

    if (len > rc->max_frame)
        return OAP_E_TOO_LARGE;
    struct oap_hdr h = {.len = (uint32_t)len,
                        .ver = OAP_VERSION,
                        .flags = flags,
                        .app_proto_id = app,
                        .corr_id = corr};
    bool small = wbatch_small(body_len);
    /* Frames leave in order: what is batched goes first. */
    if ((!small || !wbatch_room(&rc->batch, len)) && (rc_ = wbatch_flush(&rc->batch)) != 0)
        return rc_;
    if (small) {
        uint8_t hb[OAP_HDR_BYTES];
        oap_hdr_write(&h, hb);
        uv_buf_t parts[] = {uv_buf_init((char *)hb, OAP_HDR_BYTES), uv_buf_init((char *)s1, n1),
                            uv_buf_init((char *)s2, n2), uv_buf_init((char *)body, body_len)};
        return wbatch_add(&rc->batch, parts, 4) == 0 ? 0 : UV_ENOMEM;
    }
    wr = malloc(sizeof(*wr) + OAP_HDR_BYTES + n1 + n2);
    if (wr == NULL)
        return UV_ENOMEM;
    oap_hdr_write(&h, wr->small);
    if (n1)
        memcpy(wr->small + OAP_HDR_BYTES, s1, n1);
    if (n2)
        memcpy(wr->small + OAP_HDR_BYTES + n1, s2, n2);
    wr->rc = rc;
    wr->slot = slot;
    wr->corr = corr;
    wr->borrows = slot != REMOTE_NO_SLOT && body_len > 0;
    bufs[0] = uv_buf_init((char *)wr->small, (unsigned)(OAP_HDR_BYTES + n1 + n2));
    if (body_len)
        bufs[nb++] = uv_buf_init((char *)body, (unsigned)body_len);
    rc_ = uv_write(&wr->req, &rc->u.s, bufs, (unsigned)nb, on_write);
    if (rc_ != 0) {
        free(wr);
        return rc_;
    }
    if (wr->borrows)
        rc->slots[slot].wpending++;
    return 0;
}

static int send_grant(struct rconn *rc, uint16_t app, uint64_t corr, uint32_t n)
{
    struct oap_frame g;
    uint8_t gb[OAP_CREDIT_PAYLOAD_BYTES];
    static const uint8_t zero[OAP_TENANT_BYTES];

    oap_credit_frame(&g, gb, app, zero, corr, n);
    return write_frame(rc, REMOTE_NO_SLOT, g.h.flags, app, corr, g.payload, g.payload_len, NULL, 0,
                       NULL, 0);
}

/* ------------------------------------------------------------------ slots */

/* A stream chunk: one frame's body bytes, copied out of the read buffer. */
struct rchunk {
    struct ds_chunk ch;
    uint8_t data[];
};

static void rchunk_release(struct ds_chunk *ch)
{
    free(ch);
}

/* Grant the credit s's window allows now (batched by oap_consumer). */
static int slot_grant(struct rconn *rc, struct rslot *s)
{
    uint32_t g;

    if (rc->st != RC_READY || !s->resp_stream)
        return 0;
    g = oap_consumer_grant(&s->cons);
    if (g && send_grant(rc, ds__app_id(rc->pool->svc), s->corr, g) != 0)
        return -1;
    return 0;
}

/* The call of s no longer wants the answer: the slot stays until the
 * answer is over (its corr_id must not be reused before), and the frames
 * its consumer held are forgotten so that the rest drains under credit. */
static void slot_orphan(struct rconn *rc, struct rslot *s)
{
    s->c = NULL;
    s->orphan_ms = now_ms(rc) | 1;
    rc->orphans++;
    free(s->acc); /* a stream in progress is drained, not kept */
    s->acc = NULL;
    if (s->chunked)
        oap_consumer_on_consumed(&s->cons, s->cons.buffered);
}

static struct rslot *slot_of(struct rconn *rc, uint64_t corr)
{
    uint32_t i = (uint32_t)(corr & ((1u << REMOTE_SLOT_BITS) - 1));
    if (rc->slots == NULL || corr == 0 || i >= rc->max_inflight || rc->slots[i].corr != corr)
        return NULL;
    return &rc->slots[i];
}

static void slot_free(struct rconn *rc, struct rslot *s)
{
    uint32_t i = (uint32_t)(s - rc->slots);
    if (s->c == NULL && s->orphan_ms && rc->orphans > 0)
        rc->orphans--;
    free(s->acc);
    memset(s, 0, sizeof(*s));
    s->rc = rc;
    s->next_free = rc->free_head;
    rc->free_head = i;
    rc->inflight--;
}

/*
 * Whether freeing s's call now could leave libuv reading bytes the core
 * frees: its request stream is unfinished, or one of its writes is still in
 * libuv's queue (write_queue_size counts bytes not yet handed to the kernel;
 * a completed write whose callback has not run yet borrows nothing).
 */
static bool slot_unsafe(const struct rconn *rc, const struct rslot *s)
{
    return (s->req_stream && !s->prod.ended) || (s->wpending > 0 && rc->u.s.write_queue_size > 0);
}

static void call_fail(struct ds_call *c)
{
    struct ds_resp r = {.code = 0, .err = OG_E_BAD_GATEWAY};
    c->bstate = NULL;
    ds__attempt_done(c, &r);
}

/*
 * Finish slot s with a copied answer (mem owns hdr/body; NULL with code 0 for
 * a failure). Delivers to the call if it is still wanted, else drops.
 */
static void slot_finish(struct rconn *rc, struct rslot *s, int code, char *mem, size_t hdr_len,
                        size_t body_off, size_t body_len)
{
    struct ds_call *c = s->c;
    bool unsafe = slot_unsafe(rc, s);
    struct rpool *p = rc->pool;

    if (s->acc == mem)
        s->acc = NULL; /* handed over */
    slot_free(rc, s);
    if (unsafe) /* the peer answered before our request stream was out */
        conn_fail(rc, "answer before the request was sent");
    if (c == NULL) {
        free(mem);
    } else {
        struct ds_resp r = {.code = code, .err = code ? 0 : OG_E_BAD_GATEWAY};
        if (mem) {
            r.hdr = mem;
            r.hdr_len = hdr_len;
            r.body = (const uint8_t *)mem + body_off;
            r.body_len = body_len;
            r.owner = mem;
            r.release = free;
        }
        c->bstate = NULL;
        ds__attempt_done(c, &r);
    }
    if (rc->st == RC_READY)
        pool_dispatch(p);
}

/* Send as much of a request stream as credit allows. Returns 0 or < 0. */
static int slot_pump(struct rconn *rc, struct rslot *s)
{
    struct ds_call *c = s->c;
    uint16_t app = ds__app_id(c->req.svc);
    const uint8_t *body = c->req.body;
    uint8_t dh[2];

    oap_put16(dh, (uint16_t)c->wire_hdr_len);
    while (!s->prod.ended && oap_producer_can_send(&s->prod)) {
        uint16_t fl;
        uint32_t n;
        bool start = !s->prod.started;
        int e = oap_producer_next(&s->prod, c->req.body_len - s->sent,
                                  start ? (uint32_t)(2 + c->wire_hdr_len) : 0, &fl, &n);
        if (e != 0)
            return e;
        uint32_t i = (uint32_t)(s - rc->slots);
        if (start)
            e = write_frame(rc, i, OAP_FLAG_REQ | fl, app, s->corr, dh, 2, c->wire_hdr,
                            c->wire_hdr_len, body, n);
        else
            e = write_frame(rc, i, OAP_FLAG_REQ | fl, app, s->corr, NULL, 0, NULL, 0,
                            body + s->sent, n);
        if (e != 0)
            return e;
        s->sent += n;
    }
    return 0;
}

/* Start c on rc (READY, with a free slot). Returns 0 or -1 (nothing sent). */
static int conn_send(struct rconn *rc, struct ds_call *c)
{
    uint32_t i = rc->free_head;
    struct rslot *s = &rc->slots[i];
    uint16_t app = ds__app_id(c->req.svc);
    uint8_t dh[2];
    int e;

    if (c->wire_hdr_len < 2 || c->wire_hdr_len > OAP_DATA_HDR_MAX_BYTES)
        return -1;
    rc->free_head = s->next_free;
    rc->inflight++;
    rc->seq++;
    s->c = c;
    s->corr = rc->seq << REMOTE_SLOT_BITS | i;
    c->bstate = s;
    oap_put16(dh, (uint16_t)c->wire_hdr_len);
    if (OAP_HDR_BYTES + 2 + c->wire_hdr_len + c->req.body_len <= rc->max_frame) {
        e = write_frame(rc, i, OAP_FLAG_REQ, app, s->corr, dh, 2, c->wire_hdr, c->wire_hdr_len,
                        c->req.body, c->req.body_len);
    } else {
        s->req_stream = true;
        oap_producer_init(&s->prod, oap_stream_chunk(0, rc->max_frame), OAP_STREAM_INITIAL_CREDIT);
        e = slot_pump(rc, s);
    }
    if (e != 0) {
        bool unsafe = s->wpending > 0 || s->sent > 0; /* part of a stream is out */
        s->c = NULL;
        c->bstate = NULL;
        slot_free(rc, s);
        /* A partly queued stream cannot be taken back: the connection goes
         * (its close callback fails the other calls, not this one). */
        if (unsafe)
            conn_fail(rc, "write failed");
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------------------- pools */

static struct rconn *pool_pick(struct rpool *p)
{
    for (int k = 0; k < p->n; k++) {
        struct rconn *rc = &p->conns[(p->rr + (unsigned)k) % (unsigned)p->n];
        if (rc->st == RC_READY && rc->inflight < rc->max_inflight) {
            p->rr = (p->rr + (unsigned)k + 1) % (unsigned)p->n;
            return rc;
        }
    }
    return NULL;
}

/* Whether a queued call may still be served soon. */
static bool pool_hopeful(const struct rpool *p)
{
    for (int k = 0; k < p->n; k++) {
        enum rconn_state st = p->conns[k].st;
        if (st == RC_READY || st == RC_CONNECTING || st == RC_HELLO)
            return true;
    }
    return false;
}

static struct ds_call *queue_pop(struct rpool *p)
{
    struct ds_call *c = p->qhead;
    if (c) {
        p->qhead = c->qnext;
        if (p->qhead == NULL)
            p->qtail = NULL;
        c->qnext = NULL;
    }
    return c;
}

static void queue_unlink(struct rpool *p, struct ds_call *c)
{
    struct ds_call *prev = NULL;
    for (struct ds_call *q = p->qhead; q; prev = q, q = q->qnext) {
        if (q != c)
            continue;
        if (prev)
            prev->qnext = q->qnext;
        else
            p->qhead = q->qnext;
        if (p->qtail == q)
            p->qtail = prev;
        q->qnext = NULL;
        return;
    }
}

/* Start queued calls while connections have room; fail them all when no
 * connection can take them any more. Runs from callbacks only. */
static void pool_dispatch(struct rpool *p)
{
    struct rconn *rc;
    struct ds_call *c;

    while (p->qhead && (rc = pool_pick(p)) != NULL) {
        c = queue_pop(p);
        if (conn_send(rc, c) != 0)
            call_fail(c);
    }
    if (!pool_hopeful(p) || p->rw->stopping)
        while ((c = queue_pop(p)) != NULL)
            call_fail(c);
}

/* ----------------------------------------------------------- connections */

static void conn_start(struct rconn *rc);

static void on_conn_timer(uv_timer_t *t)
{
    struct rconn *rc = t->data;
    if (rc->st == RC_DOWN)
        conn_start(rc);
    else if (rc->st == RC_CONNECTING || rc->st == RC_HELLO)
        conn_fail(rc, "connect or HELLO timed out");
}

static void conn_backoff(struct rconn *rc)
{
    struct rworker *rw = rc->pool->rw;
    if (rw->stopping)
        return;
    uint64_t d = remote_backoff_ms(rc->failures, rw_rand(rw));
    if (rc->failures < 32)
        rc->failures++;
    uv_timer_start(&rc->timer, on_conn_timer, d, 0);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct rconn *rc = h->data;
    struct rworker *rw = rc->pool->rw;
    struct rpool *p = rc->pool;

    rc->handle_open = false;
    rw->handles--;
    /* Detach every call first: their callbacks may start new calls. */
    for (uint32_t i = 0; rc->slots && i < rc->max_inflight; i++) {
        struct rslot *s = &rc->slots[i];
        struct ds_call *c = s->c;
        if (s->corr == 0)
            continue;
        s->c = NULL;
        free(s->acc);
        s->acc = NULL;
        if (c)
            call_fail(c);
    }
    free(rc->slots);
    rc->slots = NULL;
    rc->inflight = rc->orphans = 0;
    oap_decoder_release(&rc->dec);
    free(rc->rbuf);
    rc->rbuf = NULL;
    wbatch_release(&rc->batch); /* unsent frames of calls that just failed */
    rc->st = RC_DOWN;
    conn_backoff(rc);
    pool_dispatch(p);
    rw_maybe_free(rw);
}

static void conn_fail(struct rconn *rc, const char *why)
{
    if (rc->st == RC_DOWN || rc->st == RC_CLOSING)
        return;
    if (rc->st == RC_READY)
        atomic_fetch_sub(&ready_conns[rc->pool->svc], 1);
    else if (!rc->pool->rw->stopping)
        log_event(LOG_DEBUG, "downstream_connect", "%s: %s", ds_service_name(rc->pool->svc), why);
    if (rc->st == RC_READY && !rc->pool->rw->stopping)
        log_event(LOG_WARN, "downstream_lost", "%s connection lost: %s",
                  ds_service_name(rc->pool->svc), why);
    rc->st = RC_CLOSING;
    wbatch_drop(&rc->batch); /* its calls fail in the close callback */
    uv_timer_stop(&rc->timer);
    uv_close(&rc->u.h, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct rconn *rc = h->data;
    *buf = uv_buf_init((char *)rc->rbuf, REMOTE_READ_BYTES);
}

static int conn_on_hello(struct rconn *rc, const struct oap_frame *f)
{
    struct oap_hello ours, peer, neg;

    if (f->h.app_proto_id != OAP_APP_HELLO || !(f->h.flags & OAP_FLAG_RESP) || f->h.corr_id != 0 ||
        f->h.code != 200)
        return -1;
    if (oap_hello_parse(&peer, f->payload, f->payload_len) != 0)
        return -1;
    oap_hello_defaults(&ours);
    ours.max_inflight = REMOTE_MAX_INFLIGHT;
    ours.flags = OAP_FLAGS_KNOWN & ~OAP_FLAG_COMP;
    if (oap_hello_negotiate(&ours, &peer, &neg) != 0)
        return -1;
    rc->max_frame = neg.max_frame;
    rc->max_inflight = neg.max_inflight;
    rc->slots = calloc(neg.max_inflight, sizeof(*rc->slots));
    if (rc->slots == NULL)
        return -1;
    for (uint32_t i = 0; i < neg.max_inflight; i++) {
        rc->slots[i].rc = rc;
        rc->slots[i].next_free = i + 1;
    }
    rc->free_head = 0;
    rc->inflight = 0;
    rc->st = RC_READY;
    rc->failures = 0;
    uv_timer_stop(&rc->timer);
    atomic_fetch_add(&ready_conns[rc->pool->svc], 1);
    return 0;
}

/* A frame of a streamed answer (START included, payload = its body part). */
static int conn_on_stream(struct rconn *rc, struct rslot *s, const struct oap_frame *f,
                          const uint8_t *part, size_t part_len)
{
    if (oap_consumer_on_frame(&s->cons, f->h.flags) != 0)
        return -1; /* no credit for it, or after END */
    if (s->c && s->acc) {
        size_t body = s->acc_len - s->acc_hdr;
        if (body + part_len > REMOTE_STREAM_MAX_BYTES) {
            struct ds_call *c = s->c;
            slot_orphan(rc, s); /* refuse it, keep draining the stream */
            call_fail(c);
            if (rc->st != RC_READY)
                return 0;
        } else {
            if (s->acc_len + part_len > s->acc_cap) {
                size_t nc = s->acc_cap * 2;
                if (nc < s->acc_len + part_len)
                    nc = s->acc_len + part_len;
                char *p = realloc(s->acc, nc);
                if (p == NULL)
                    return -1;
                s->acc = p;
                s->acc_cap = nc;
            }
            memcpy(s->acc + s->acc_len, part, part_len);
            s->acc_len += part_len;
        }
    }
    oap_consumer_on_consumed(&s->cons, 1);
    if (f->h.flags & OAP_FLAG_END) {
        if (s->c && s->acc)
            slot_finish(rc, s, s->code, s->acc, s->acc_hdr, s->acc_hdr, s->acc_len - s->acc_hdr);
        else
            slot_finish(rc, s, 0, NULL, 0, 0, 0);
        return 0;
    }
    uint32_t g = oap_consumer_grant(&s->cons);
    if (g && send_grant(rc, f->h.app_proto_id, s->corr, g) != 0)
        return -1;
    return 0;
}

/* The last frame of a chunked answer was taken: the slot is done. */
static void stream_slot_end(struct rconn *rc, struct rslot *s)
{
    struct ds_call *c = s->c;
    bool unsafe = slot_unsafe(rc, s);
    struct rpool *p = rc->pool;

    slot_free(rc, s);
    if (unsafe)
        conn_fail(rc, "answer before the request was sent");
    if (c) {
        c->bstate = NULL;
        ds__stream_end(c, DS_STREAM_OK);
    }
    if (rc->st == RC_READY)
        pool_dispatch(p);
}

/*
 * A frame of a chunked answer, already counted by the consumer state: its
 * body part goes to the call as a chunk, which keeps the frame "buffered"
 * until the consumer releases it (remote_consumed). Without a call (cancelled,
 * or no memory) the frame is consumed at once. Returns 0 or -1 (protocol).
 */
static int stream_take(struct rconn *rc, struct rslot *s, const struct oap_frame *f,
                       const uint8_t *part, size_t part_len)
{
    struct ds_call *c = s->c;
    bool held = false;

    if (c && part_len > 0) {
        struct rchunk *k = malloc(sizeof(*k) + part_len);
        if (k == NULL) {
            slot_orphan(rc, s);
            c->bstate = NULL;
            ds__stream_end(c, DS_STREAM_NOMEM);
        } else {
            memcpy(k->data, part, part_len);
            k->ch.release = rchunk_release;
            held = true;
            /* The consumer may cancel in there: s is then an orphan. */
            ds__stream_chunk(c, &k->ch, k->data, part_len);
        }
    }
    if (!held)
        oap_consumer_on_consumed(&s->cons, 1);
    if (f->h.flags & OAP_FLAG_END) {
        stream_slot_end(rc, s);
        return 0;
    }
    return slot_grant(rc, s);
}

/* One frame on a READY connection. Returns 0, or -1 for a protocol error
 * (the caller closes the connection). */
static int conn_on_frame(struct rconn *rc, const struct oap_frame *f)
{
    struct oap_data d;
    struct rslot *s;

    if (f->h.flags & OAP_FLAG_COMP)
        return -1;
    if (oap_credit_is(f)) {
        uint32_t n;
        if (oap_credit_parse(f, &n) != 0)
            return -1;
        s = slot_of(rc, f->h.corr_id);
        if (s == NULL || !s->req_stream || s->prod.ended)
            return 0; /* a late grant: harmless */
        if (oap_producer_on_grant(&s->prod, n) != 0)
            return -1;
        if (s->c && slot_pump(rc, s) != 0)
            return -1;
        return 0;
    }
    if (!(f->h.flags & OAP_FLAG_RESP))
        return (f->h.flags & OAP_FLAG_EVENT) ? 0 : -1; /* events we do not know: ignored */
    s = slot_of(rc, f->h.corr_id);
    if (s == NULL)
        return -1;
    if (f->h.flags & OAP_FLAG_START) {
        if (s->resp_stream || oap_data_split(&d, f->payload, f->payload_len) != 0)
            return -1;
        s->resp_stream = true;
        s->code = f->h.code;
        if (s->c && s->c->stream) {
            s->chunked = true;
            oap_consumer_init(&s->cons, s->c->window);
            if (oap_consumer_on_frame(&s->cons, f->h.flags) != 0)
                return -1;
            /* A cancel or failure in there leaves s an orphan to drain. */
            ds__stream_head(s->c, f->h.code, d.hdr, d.hdr_len);
            return stream_take(rc, s, f, d.body, d.body_len);
        }
        oap_consumer_init(&s->cons, REMOTE_STREAM_WINDOW);
        if (s->c) {
            s->acc_cap = d.hdr_len + d.body_len + 4 * OAP_STREAM_CHUNK_DEF_BYTES;
            s->acc = malloc(s->acc_cap);
            if (s->acc == NULL)
                return -1;
            memcpy(s->acc, d.hdr, d.hdr_len);
            s->acc_len = s->acc_hdr = d.hdr_len;
        }
        return conn_on_stream(rc, s, f, d.body, d.body_len);
    }
    if (s->resp_stream && s->chunked) {
        if (oap_consumer_on_frame(&s->cons, f->h.flags) != 0)
            return -1; /* no credit for it, or after END */
        return stream_take(rc, s, f, f->payload, f->payload_len);
    }
    if (s->resp_stream)
        return conn_on_stream(rc, s, f, f->payload, f->payload_len);
    if (oap_data_split(&d, f->payload, f->payload_len) != 0) {
        slot_finish(rc, s, 0, NULL, 0, 0, 0); /* framing intact: fail just this call */
        return 0;
    }
    char *mem = NULL;
    if (s->c) {
        mem = malloc(d.hdr_len + d.body_len + 1);
        if (mem == NULL) {
            slot_finish(rc, s, 0, NULL, 0, 0, 0);
            return 0;
        }
        memcpy(mem, d.hdr, d.hdr_len);
        if (d.body_len)
            memcpy(mem + d.hdr_len, d.body, d.body_len);
    }
    slot_finish(rc, s, mem ? f->h.code : 0, mem, d.hdr_len, d.hdr_len, d.body_len);
    return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct rconn *rc = stream->data;
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = nread > 0 ? (size_t)nread : 0;

    if (nread < 0) {
        conn_fail(rc, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
        return;
    }
    while (n > 0 && (rc->st == RC_HELLO || rc->st == RC_READY)) {
        struct oap_frame f;
        size_t used = 0;
        int e = oap_decoder_feed(&rc->dec, p, n, &used, &f);
        p += used;
        n -= used;
        if (e == OAP_E_AGAIN)
            break;
        if (e != 0) {
            conn_fail(rc, oap_strerror(e));
            return;
        }
        if (rc->st == RC_HELLO) {
            if (conn_on_hello(rc, &f) != 0) {
                conn_fail(rc, "bad HELLO answer");
                return;
            }
            pool_dispatch(rc->pool);
            continue;
        }
        if (conn_on_frame(rc, &f) != 0) {
            conn_fail(rc, "protocol error");
            return;
        }
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct rconn *rc = req->data;
    struct oap_hello ours;
    char hello[OAP_HELLO_MAX_BYTES];
    ssize_t hn;

    if (rc->st != RC_CONNECTING)
        return; /* cancelled by a close */
    if (status < 0) {
        conn_fail(rc, uv_strerror(status));
        return;
    }
    rc->st = RC_HELLO;
    if (!rc->pool->addr.is_unix)
        uv_tcp_nodelay(&rc->u.tcp, 1);
    oap_hello_defaults(&ours);
    ours.max_inflight = REMOTE_MAX_INFLIGHT;
    ours.flags = OAP_FLAGS_KNOWN & ~OAP_FLAG_COMP; /* we never inflate */
    hn = oap_hello_encode(&ours, hello, sizeof(hello));
    if (hn < 0 || uv_read_start(&rc->u.s, on_alloc, on_read) != 0 ||
        write_frame(rc, REMOTE_NO_SLOT, OAP_FLAG_REQ, OAP_APP_HELLO, 0, hello, (size_t)hn, NULL, 0,
                    NULL, 0) != 0)
        conn_fail(rc, "cannot send HELLO");
}

static void conn_start(struct rconn *rc)
{
    struct rpool *p = rc->pool;
    struct rworker *rw = p->rw;
    uv_loop_t *loop = &rw->w->loop;
    int e;

    if (rw->stopping)
        return;
    if (rc->started_once)
        atomic_fetch_add(&reconnects[p->svc], 1);
    rc->started_once = true;
    rc->rbuf = malloc(REMOTE_READ_BYTES);
    if (rc->rbuf == NULL) {
        conn_backoff(rc);
        return;
    }
    oap_decoder_init(&rc->dec, OAP_MAX_FRAME_BYTES);
    rc->max_frame = OAP_MAX_FRAME_BYTES; /* until HELLO: only our HELLO is sent */
    rc->max_inflight = 0;
    e = p->addr.is_unix ? uv_pipe_init(loop, &rc->u.pipe, 0) : uv_tcp_init(loop, &rc->u.tcp);
    if (e != 0) {
        oap_decoder_release(&rc->dec);
        free(rc->rbuf);
        rc->rbuf = NULL;
        conn_backoff(rc);
        return;
    }
    rc->u.h.data = rc;
    wbatch_init(&rc->batch, &rw->batches, &rc->u.s);
    rc->batch.on_write_end = on_batch_write_end;
    rc->handle_open = true;
    rw->handles++;
    rc->st = RC_CONNECTING;
    rc->creq.data = rc;
    uv_timer_start(&rc->timer, on_conn_timer, REMOTE_CONNECT_TIMEOUT_MS, 0);
    if (p->addr.is_unix) {
        uv_pipe_connect(&rc->creq, &rc->u.pipe, p->addr.path, on_connect);
        return;
    }
    e = uv_tcp_connect(&rc->creq, &rc->u.tcp, (const struct sockaddr *)&p->addr.ss, on_connect);
    if (e != 0)
        conn_fail(rc, uv_strerror(e));
}

/* ---------------------------------------------------------- worker tick */

static void rw_stop(struct rworker *rw)
{
    rw->stopping = true;
    for (int s = 0; s < DS__COUNT; s++) {
        struct rpool *p = &rw->pools[s];
        for (int k = 0; k < p->n; k++) {
            conn_fail(&p->conns[k], "shutting down");
            p->conns[k].timer.data = rw;
            uv_close((uv_handle_t *)&p->conns[k].timer, on_handle_closed);
        }
        pool_dispatch(p);
    }
    uv_close((uv_handle_t *)&rw->tick, on_handle_closed);
    wbatch_set_close(&rw->batches, on_handle_closed);
}

static void on_tick(uv_timer_t *t)
{
    struct rworker *rw = t->data;
    uint64_t now = uv_now(&rw->w->loop);

    if (atomic_load(&g_server.draining) && rw->w->nconns == 0) {
        rw_stop(rw);
        return;
    }
    for (int sv = 0; sv < DS__COUNT; sv++) {
        struct rpool *p = &rw->pools[sv];
        for (int k = 0; k < p->n; k++) {
            struct rconn *rc = &p->conns[k];
            if (rc->st != RC_READY || rc->orphans == 0)
                continue;
            for (uint32_t i = 0; i < rc->max_inflight; i++) {
                struct rslot *s = &rc->slots[i];
                if (s->corr && s->c == NULL && s->orphan_ms &&
                    now - s->orphan_ms > REMOTE_ORPHAN_MAX_MS) {
                    conn_fail(rc, "abandoned calls never answered");
                    break;
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- metrics */

static double read_ready_conns(const struct metric_def *d, const int *ix)
{
    return atomic_load(&ready_conns[ix[0]]);
}

static double read_reconnects(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&reconnects[ix[0]]);
}

static const char *service_names[DS__COUNT]; /* ds_service_name()s; set before registering */
static const struct metric_label L_SERVICE = {"service", service_names, DS__COUNT, NULL};
static const struct metric_def METRICS[] = {
    {"downstream_connections", METRIC_GAUGE,
     "OAP/1 connections to a downstream that finished HELLO.", .labels = {&L_SERVICE},
     .read = read_ready_conns},
    {"downstream_reconnects_total", METRIC_COUNTER,
     "Connection attempts to a downstream after a failure or a lost connection.",
     .labels = {&L_SERVICE}, .read = read_reconnects},
};

static void register_metrics(void)
{
    for (int s = 0; s < DS__COUNT; s++)
        service_names[s] = ds_service_name((enum ds_service)s);
    metrics_register(METRIC_TABLE(METRICS));
}

/* ---------------------------------------------------------------- backend */

static void remote_worker_init(struct worker *w, enum ds_service svc)
{
    struct rworker *rw = w->ext[WORKER_EXT_DS];
    struct rpool *p;
    int n = ds__remote_pool_size > 0 ? ds__remote_pool_size : 1;

    if (!atomic_flag_test_and_set(&metrics_registered))
        register_metrics();
    if (rw == NULL) {
        rw = xcalloc(1, sizeof(*rw));
        rw->w = w;
        rw->rnd = uv_hrtime() ^ ((uint64_t)(w->id + 1) << 40) ^ (uintptr_t)rw;
        if (rw->rnd == 0)
            rw->rnd = 1;
        uv_timer_init(&w->loop, &rw->tick);
        rw->tick.data = rw;
        rw->handles++;
        uv_timer_start(&rw->tick, on_tick, REMOTE_TICK_MS, REMOTE_TICK_MS);
        uv_unref((uv_handle_t *)&rw->tick);
        wbatch_set_init(&rw->batches, &w->loop);
        rw->batches.check.data = rw->batches.idle.data = rw;
        rw->handles += 2; /* closed by wbatch_set_close, with on_handle_closed */
        w->ext[WORKER_EXT_DS] = rw;
    }
    p = &rw->pools[svc];
    p->rw = rw;
    p->svc = svc;
    if (ds__remote_addr[svc] == NULL || oapc_addr_parse(ds__remote_addr[svc], false, &p->addr)) {
        log_event(LOG_ERROR, "downstream_addr", "%s: invalid address", ds_service_name(svc));
        return;
    }
    p->conns = xcalloc((size_t)n, sizeof(*p->conns));
    p->n = n;
    for (int k = 0; k < n; k++) {
        struct rconn *rc = &p->conns[k];
        rc->pool = p;
        uv_timer_init(&w->loop, &rc->timer);
        rc->timer.data = rc;
        rw->handles++;
        /* Connect on the worker's own loop, once it runs. */
        uv_timer_start(&rc->timer, on_conn_timer, 0, 0);
    }
}

/* Returns 0 (sent or queued), or -1 when every connection of the service is
 * down (the core answers BAD_GATEWAY). */
static int remote_send(struct ds_call *c)
{
    struct rworker *rw = c->w->ext[WORKER_EXT_DS];
    struct rpool *p;
    struct rconn *rc;

    c->bstate = NULL;
    if (rw == NULL || rw->stopping)
        return -1;
    p = &rw->pools[c->req.svc];
    if (p->n == 0)
        return -1;
    if ((rc = pool_pick(p)) != NULL)
        return conn_send(rc, c);
    if (!pool_hopeful(p))
        return -1;
    c->qnext = NULL;
    if (p->qtail)
        p->qtail->qnext = c;
    else
        p->qhead = c;
    p->qtail = c;
    return 0;
}

static void remote_abort(struct ds_call *c)
{
    struct rworker *rw = c->w->ext[WORKER_EXT_DS];
    struct rslot *s = c->bstate;

    c->bstate = NULL;
    if (rw == NULL)
        return;
    if (s == NULL) {
        queue_unlink(&rw->pools[c->req.svc], c);
        return;
    }
    struct rconn *rc = s->rc;
    slot_orphan(rc, s);
    if (slot_unsafe(rc, s))
        conn_fail(rc, "abandoned request still being written");
    else if (slot_grant(rc, s) != 0)
        conn_fail(rc, "cannot grant credit");
}

/* The consumer of a chunked answer released one chunk: one frame less is
 * buffered, which may open the window for a grant. */
static void remote_consumed(struct ds_call *c)
{
    struct rslot *s = c->bstate;

    if (s == NULL || s->c != c || !s->chunked)
        return;
    oap_consumer_on_consumed(&s->cons, 1);
    if (slot_grant(s->rc, s) != 0)
        conn_fail(s->rc, "cannot grant credit");
}

static bool remote_healthy(enum ds_service svc)
{
    return atomic_load(&ready_conns[svc]) > 0;
}

const struct ds_backend ds__remote_backend = {
    .name = "remote",
    .send = remote_send,
    .abort = remote_abort,
    .worker_init = remote_worker_init,
    .consumed = remote_consumed,
    .healthy = remote_healthy,
};
