/*
 * remote.c — the OAP/1 backend: per-worker connection pools to the
 * downstream services (macronode, DESIGN §2 and §5).
 *
 * Each worker keeps, per remote service, ds__remote_pool_size connections on
 * its own loop (shared-nothing; the state hangs off its struct ds_worker).
 * The connections themselves — socket, decoding, HELLO, frame writes and
 * their batching, stream credit, close — are OAP/1 endpoints in the client
 * role (oapnet/oapnet.h); this file keeps what is omnigate's: pools,
 * reconnects, call slots and the mapping of answers to ds_call.
 *
 * Connection lifecycle (the endpoint's state, plus our timer):
 *   IDLE --timer--> CONNECTING --connected--> HELLO --peer HELLO--> READY
 *   any state but IDLE --error/timeout--> CLOSING --closed--> IDLE (backoff)
 * A connection takes calls only when READY. Connect plus HELLO must finish
 * within REMOTE_CONNECT_TIMEOUT_MS. Reconnects wait remote_backoff_ms()
 * (50 ms doubling to 2 s, ±50 % jitter), forever; a successful HELLO resets
 * the doubling.
 *
 * Calls. Each READY connection has max_inflight slots (the negotiated value;
 * we announce REMOTE_MAX_INFLIGHT, so in practice it is the peer's). A call
 * takes a free slot, whose stream is opened in the endpoint's table under a
 * per-connection sequence number (corr_id), so a stale corr_id never
 * matches a reused slot. c->bstate points at the slot (NULL while the call
 * waits in the pool queue). The endpoint sends the request as one REQ frame
 * when it fits the peer's max_frame, else as a request stream under the
 * peer's credit; small frames go out in the loop turn's batch.
 *
 * Answers. A one-frame answer is copied out of the read buffer into one
 * malloc'd block (header JSON + body); a streamed one is gathered by the
 * endpoint (≤ REMOTE_STREAM_MAX_BYTES, credit granted as frames are
 * copied) and its buffer handed over as is. Either way ds__attempt_done gets
 * one block released by free.
 *
 * Streams (ds_call_stream). The slot's stream is chunked: the START frame's
 * header is the head; the body bytes of every frame are copied once into a
 * chunk of their own (the read buffer is reused by the next read) and
 * handed to the consumer. A frame stays "buffered" in the stream's consumer
 * state until the consumer releases its chunk (backend hook consumed), and
 * only then is credit granted, so the service runs at most the credit
 * window ahead of the client's socket: window = the call's stream_window,
 * raised to OAP_STREAM_INITIAL_CREDIT (4) because the protocol lets a
 * producer send that many frames unasked. There is no size ceiling: memory
 * is bounded by the window, not the object. A one-frame answer reaches the
 * consumer as head + one chunk + end through ds__attempt_done. A stream
 * whose call is cancelled is abandoned: the frames the consumer held are
 * forgotten and the rest is drained like any orphan. Memory per stream: at
 * most max(window, 4) chunks of one frame's body each (64 KiB from the
 * reference services), besides the connection's shared read buffer.
 *
 * Failures and their mapping (ds_resp.code 0, err):
 *   - connection lost, refused, decode error, HELLO failure, unknown
 *     corr_id, stream without credit, COMP payload (we announce no COMP):
 *     the connection closes; every call on it gets BAD_GATEWAY in the close
 *     callback (so never inside the call that armed it); it reconnects.
 *   - malformed DATA payload in a one-frame answer, or a streamed answer
 *     over REMOTE_STREAM_MAX_BYTES (reported at its END, having been
 *     drained): that call gets BAD_GATEWAY; the connection stays (the
 *     framing is intact).
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
 * request stream is unfinished, the endpoint closes the connection instead,
 * since the core frees those bytes. Orphans older than REMOTE_ORPHAN_MAX_MS
 * (a peer that never answers) close the connection so its slots come back.
 *
 * Endpoint sets. A service may list several endpoints (ds/balance.h);
 * each worker keeps one pool of ds__remote_pool_size connections per
 * endpoint, with its own queue. An attempt picks its endpoint with
 * bal_pick() among those whose pool is hopeful here, preferring one the
 * call has not tried; the attempt is counted on the endpoint (outstanding)
 * until it ends — or, abandoned while sent, until the node answers it (the
 * slot is "held") — and its outcome feeds the passive ejection. Every
 * answer's time, late ones included, feeds the endpoint's latency EWMA. An attempt
 * abandoned at its deadline counts as a failure (a timeout); one abandoned
 * for a hedge or a caller that left counts as nothing. The admin loop's
 * worker (dw->prober) probes each endpoint every health_interval with a
 * connection of its own that only does HELLO, and logs endpoints going
 * out of service and coming back.
 *
 * Shutdown: a per-worker tick closes everything once the server drains and
 * the worker has no client connection left, so the worker loop can end.
 */
#include "ds/remote.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dec.h"
#include "core/log.h"
#include "ds/balance.h"
#include "ds/internal.h"
#include "ds/op.h"
#include "oapnet/oapnet.h"
#include "ops/metrics.h"

#define REMOTE_CONNECT_TIMEOUT_MS 2000  /* connect + HELLO */
#define REMOTE_TICK_MS            100   /* drain and orphan checks */
#define REMOTE_ORPHAN_MAX_MS      10000 /* an abandoned call's answer may take this long */
#define REMOTE_MAX_INFLIGHT       1024  /* our HELLO: bounds slot memory per connection */
#define REMOTE_STREAM_MAX_BYTES   OAPNET_IN_MAX_DEF
#define REMOTE_STREAM_WINDOW      OAPNET_WINDOW_DEF

/* Process-wide, any thread: READY connections and reconnects per service. */
static atomic_int ready_conns[DS__COUNT];
/* The endpoint sets and their addresses: written by ds__remote_start
 * before the workers start, then only the sets' atomics change. */
static struct bal_set sets[DS__COUNT];
static struct oapnet_addr set_addrs[DS__COUNT][BAL_ENDPOINTS_MAX];
static atomic_ulong reconnects[DS__COUNT];
static atomic_flag metrics_registered = ATOMIC_FLAG_INIT;

struct rconn;

struct rslot {
    struct oapnet_stream st; /* open while the slot is in use */
    struct rconn *rc;
    struct ds_call *c;  /* NULL when free or orphaned */
    uint64_t orphan_ms; /* loop time it was abandoned, 0 while wanted */
    uint64_t t0_ns;     /* when its request went out */
    bool held;          /* orphaned: still counted in its endpoint's outstanding */
    uint32_t next_free;
};

struct rpool;

struct rconn {
    struct oapnet ep;
    struct rpool *pool;
    bool counted_ready; /* counted in ready_conns */
    bool started_once;
    uv_timer_t timer; /* backoff while IDLE, connect timeout until READY */
    unsigned failures;
    uint32_t inflight, orphans;
    uint64_t seq;
    struct rslot *slots; /* ep.max_inflight of them while READY */
    uint32_t free_head;
};

struct rworker;

/* One endpoint's pool on one worker. */
struct rpool {
    struct rworker *rw;
    enum ds_service svc;
    int ep; /* index in sets[svc] */
    const struct oapnet_addr *addr;
    int n;
    struct rconn *conns;
    unsigned rr;
    struct ds_call *qhead, *qtail; /* waiting for a slot, linked by qnext */
};

/* The prober's HELLO-only connection to one endpoint. */
struct rprobe {
    struct oapnet ep;
    struct rworker *rw;
    enum ds_service svc;
    int i;
    bool ok;          /* this probe finished HELLO */
    bool was_usable;  /* as last logged */
    uv_timer_t timer; /* the interval while IDLE, the probe's timeout otherwise */
};

struct rworker {
    struct ds_worker *dw;
    struct rpool *pools[DS__COUNT]; /* one per endpoint of the service's set */
    int npools[DS__COUNT];
    struct rprobe *probes[DS__COUNT]; /* the prober only */
    uv_timer_t tick;
    struct wbatch_set batches; /* every connection's, written once per loop turn */
    int handles;               /* open libuv handles; freed when stopping and 0 */
    bool stopping;
    uint64_t rnd;
};

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
    return uv_now(rc->pool->rw->dw->loop);
}

static struct rconn *rconn_of(struct oapnet *ep)
{
    return (struct rconn *)((char *)ep - offsetof(struct rconn, ep));
}

static struct rslot *slot_of(struct oapnet_stream *st)
{
    return (struct rslot *)((char *)st - offsetof(struct rslot, st));
}

/* ---------------------------------------------------------------- handles */

static void rw_maybe_free(struct rworker *rw)
{
    if (!rw->stopping || rw->handles > 0)
        return;
    for (int s = 0; s < DS__COUNT; s++) {
        for (int i = 0; i < rw->npools[s]; i++)
            free(rw->pools[s][i].conns);
        free(rw->pools[s]);
        free(rw->probes[s]);
    }
    rw->dw->remote = NULL;
    free(rw);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct rworker *rw = h->data;
    rw->handles--;
    rw_maybe_free(rw);
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

/* The call of s no longer wants the answer: the slot stays until the
 * answer is over (its corr_id must not be reused before), and the endpoint
 * drains the rest under credit. */
static void slot_orphan(struct rconn *rc, struct rslot *s)
{
    s->c = NULL;
    s->orphan_ms = now_ms(rc) | 1;
    rc->orphans++;
    /* The node is still working on it: it stays load on the endpoint until
     * its answer comes (slot_free), so a slow node whose attempts lose to
     * hedges does not look idle. */
    atomic_fetch_add_explicit(&sets[rc->pool->svc].ep[rc->pool->ep].outstanding, 1,
                              memory_order_relaxed);
    s->held = true;
    oapnet_stream_abandon(&rc->ep, &s->st);
}

/* Back on the free list; its stream is reset when the slot is taken again
 * (oapnet_stream_open). */
static void slot_free(struct rconn *rc, struct rslot *s)
{
    uint32_t i = (uint32_t)(s - rc->slots);
    if (s->c == NULL && s->orphan_ms && rc->orphans > 0)
        rc->orphans--;
    /* The endpoint's latency, answers to abandoned attempts included: a
     * slow node whose attempts lose to hedges is still seen as slow. */
    struct bal_ep *e = &sets[rc->pool->svc].ep[rc->pool->ep];
    bal_observe(e, (uv_hrtime() - s->t0_ns) / 1000, now_ms(rc));
    if (s->held)
        atomic_fetch_sub_explicit(&e->outstanding, 1, memory_order_relaxed);
    s->held = false;
    oapnet_stream_close(&rc->ep, &s->st);
    s->c = NULL;
    s->orphan_ms = 0;
    s->next_free = rc->free_head;
    rc->free_head = i;
    rc->inflight--;
}

/* ---------------------------------------------------------- endpoints */

static struct bal_policy policy_of(const struct og_config *cfg)
{
    return (struct bal_policy){.eject_after = (int)cfg->ds_eject_after,
                               .eject_base_ms = (uint64_t)cfg->ds_eject_base_ms,
                               .eject_max_ms = (uint64_t)cfg->ds_eject_max_ms,
                               .eject_max_pct = (int)cfg->ds_eject_max_pct};
}

/* c's attempt goes to endpoint i: counted there until attempt_end. */
static void attempt_begin(struct ds_call *c, int i)
{
    atomic_fetch_add_explicit(&sets[c->req.svc].ep[i].outstanding, 1, memory_order_relaxed);
    c->ep_at = c->ep_last = (uint8_t)(i + 1);
    c->ep_tried |= 1u << i;
}

/* c's attempt is over with outcome o (a no-op when it had no endpoint). */
static void attempt_end(struct ds_call *c, enum bal_outcome o)
{
    if (c->ep_at == 0)
        return;
    int i = c->ep_at - 1;
    struct bal_set *set = &sets[c->req.svc];
    struct bal_policy pol = policy_of(ds__cfg(c->dw));
    uint64_t now = uv_now(c->dw->loop);

    c->ep_at = 0;
    atomic_fetch_sub_explicit(&set->ep[i].outstanding, 1, memory_order_relaxed);
    if (bal_report(set, i, o, now, &pol))
        log_event(LOG_WARN, "downstream_ejected",
                  "%s endpoint %s ejected for %llu ms after %d failures in a row",
                  ds_service_name(c->req.svc), set->ep[i].name,
                  (unsigned long long)(atomic_load(&set->ep[i].ejected_until_ms) - now),
                  pol.eject_after);
}

/* An answer's code: 5xx counts against the endpoint (Envoy's
 * consecutive_5xx), as does no answer (0). */
static enum bal_outcome outcome_of(int code)
{
    return code == 0 || code >= 500 ? BAL_FAILED : BAL_OK;
}

static void call_fail(struct ds_call *c)
{
    struct ds_resp r = {.code = 0, .err = OG_E_BAD_GATEWAY};
    c->bstate = NULL;
    attempt_end(c, BAL_FAILED);
    ds__attempt_done(c, &r);
}

/*
 * Free slot s, closing the connection first if the peer answered before our
 * request was out (freeing the call's body now could leave libuv reading
 * freed bytes). Returns the call that was waiting, if any.
 */
static struct ds_call *slot_end(struct rconn *rc, struct rslot *s)
{
    struct ds_call *c = s->c;
    bool unsafe = oapnet_stream_borrowing(&rc->ep, &s->st);

    slot_free(rc, s);
    if (unsafe)
        oapnet_close(&rc->ep, "answer before the request was sent");
    if (c)
        c->bstate = NULL;
    return c;
}

/* Start c on rc (READY, with a free slot). Returns 0 or -1 (nothing sent). */
static int conn_send(struct rconn *rc, struct ds_call *c)
{
    uint32_t i = rc->free_head;
    struct rslot *s = &rc->slots[i];

    rc->free_head = s->next_free;
    rc->inflight++;
    s->c = c;
    s->t0_ns = uv_hrtime();
    oapnet_stream_open(&rc->ep, &s->st, ++rc->seq, ds__app_id(c->req.svc), NULL);
    s->st.chunked = c->stream;
    s->st.window = c->stream ? c->window : REMOTE_STREAM_WINDOW;
    c->bstate = s;
    if (oapnet_send(&rc->ep, &s->st, 0, c->wire_hdr, c->wire_hdr_len, c->req.body,
                    c->req.body_len) < 0) {
        /* A partly queued stream closed the connection (its close callback
         * fails the other calls, not this one). */
        s->c = NULL;
        c->bstate = NULL;
        slot_free(rc, s);
        attempt_end(c, BAL_FAILED);
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------------------- pools */

static struct rconn *pool_pick(struct rpool *p)
{
    for (int k = 0; k < p->n; k++) {
        struct rconn *rc = &p->conns[(p->rr + (unsigned)k) % (unsigned)p->n];
        if (rc->ep.state == OAPNET_READY && rc->inflight < rc->ep.max_inflight) {
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
        enum oapnet_state st = p->conns[k].ep.state;
        if (st == OAPNET_READY || st == OAPNET_CONNECTING || st == OAPNET_HELLO)
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

/* ------------------------------------------------- endpoint callbacks */

static void conn_on_ready(struct oapnet *ep)
{
    struct rconn *rc = rconn_of(ep);
    uint32_t n = ep->max_inflight;

    rc->slots = calloc(n, sizeof(*rc->slots));
    if (rc->slots == NULL) {
        oapnet_close(ep, "out of memory");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        rc->slots[i].rc = rc;
        rc->slots[i].next_free = i + 1;
    }
    rc->free_head = 0;
    rc->inflight = 0;
    rc->failures = 0;
    uv_timer_stop(&rc->timer);
    rc->counted_ready = true;
    atomic_fetch_add(&ready_conns[rc->pool->svc], 1);
    pool_dispatch(rc->pool);
}

/* A whole answer (or, status < 0, a malformed or oversized one; or the end
 * of an orphan's): to the call, as one block released by free. */
static void conn_on_message(struct oapnet *ep, struct oapnet_stream *st, int status,
                            struct oapnet_msg *m)
{
    struct rconn *rc = rconn_of(ep);
    struct rpool *p = rc->pool;
    struct ds_call *c = slot_end(rc, slot_of(st));
    struct ds_resp r = {.code = 0, .err = OG_E_BAD_GATEWAY};
    char *mem = NULL;

    if (c && status == 0) {
        if (m->mem) { /* a gathered stream: its buffer as is */
            mem = m->mem;
            m->mem = NULL;
        } else if ((mem = malloc(m->hdr_len + m->body_len + 1)) != NULL) {
            memcpy(mem, m->hdr, m->hdr_len);
            if (m->body_len)
                memcpy(mem + m->hdr_len, m->body, m->body_len);
            m->hdr = mem;
            m->body = (const uint8_t *)mem + m->hdr_len;
        }
    }
    if (c) {
        attempt_end(c, mem ? outcome_of(m->code) : BAL_FAILED);
        if (mem) {
            r = (struct ds_resp){.code = m->code,
                                 .hdr = m->hdr,
                                 .hdr_len = m->hdr_len,
                                 .body = m->body,
                                 .body_len = m->body_len,
                                 .owner = mem,
                                 .release = free};
        }
        ds__attempt_done(c, &r);
    }
    if (rc->ep.state == OAPNET_READY)
        pool_dispatch(p);
}

static void conn_on_head(struct oapnet *ep, struct oapnet_stream *st, uint16_t code,
                         const char *hdr, size_t hdr_len)
{
    struct rslot *s = slot_of(st);

    /* A cancel or failure in there leaves s an orphan to drain. */
    if (s->c)
        ds__stream_head(s->c, code, hdr, hdr_len);
}

/* A frame's body of a chunked answer: copied into a chunk of its own,
 * which keeps the frame "buffered" until the consumer releases it
 * (remote_consumed). Without a call (cancelled) or memory the frame is
 * consumed at once. */
static bool conn_on_chunk(struct oapnet *ep, struct oapnet_stream *st, const uint8_t *p, size_t n)
{
    struct rslot *s = slot_of(st);
    struct ds_call *c = s->c;
    struct rchunk *k;

    if (c == NULL)
        return false;
    if ((k = malloc(sizeof(*k) + n)) == NULL) {
        slot_orphan(s->rc, s);
        c->bstate = NULL;
        attempt_end(c, BAL_NEUTRAL);
        ds__stream_end(c, DS_STREAM_NOMEM);
        return false;
    }
    memcpy(k->data, p, n);
    k->ch.release = rchunk_release;
    /* The consumer may cancel in there: s is then an orphan. */
    ds__stream_chunk(c, &k->ch, k->data, n);
    return true;
}

/* The last frame of a chunked answer was taken: the slot is done. */
static void conn_on_end(struct oapnet *ep, struct oapnet_stream *st)
{
    struct rconn *rc = rconn_of(ep);
    struct rpool *p = rc->pool;
    struct ds_call *c = slot_end(rc, slot_of(st));

    if (c) {
        attempt_end(c, BAL_OK);
        ds__stream_end(c, DS_STREAM_OK);
    }
    if (rc->ep.state == OAPNET_READY)
        pool_dispatch(p);
}

/* The connection closed with s in use. */
static void conn_on_abort(struct oapnet *ep, struct oapnet_stream *st)
{
    struct rslot *s = slot_of(st);
    struct ds_call *c = s->c;

    s->c = NULL;
    if (c)
        call_fail(c);
}

static void conn_backoff(struct rconn *rc);

static void conn_on_closed(struct oapnet *ep)
{
    struct rconn *rc = rconn_of(ep);
    struct rworker *rw = rc->pool->rw;
    struct rpool *p = rc->pool;
    const char *svc = ds_service_name(p->svc);

    if (rc->counted_ready) {
        rc->counted_ready = false;
        atomic_fetch_sub(&ready_conns[p->svc], 1);
        if (!rw->stopping)
            log_event(LOG_WARN, "downstream_lost", "%s connection lost: %s", svc, ep->why);
    } else if (!rw->stopping) {
        log_event(LOG_DEBUG, "downstream_connect", "%s: %s", svc, ep->why);
    }
    rw->handles--;
    for (uint32_t i = 0; rc->slots && i < ep->max_inflight; i++)
        if (rc->slots[i].held)
            atomic_fetch_sub_explicit(&sets[p->svc].ep[p->ep].outstanding, 1, memory_order_relaxed);
    free(rc->slots);
    rc->slots = NULL;
    rc->inflight = rc->orphans = 0;
    conn_backoff(rc);
    pool_dispatch(p);
    rw_maybe_free(rw);
}

static const struct oapnet_ops conn_ops = {
    .on_ready = conn_on_ready,
    .on_message = conn_on_message,
    .on_head = conn_on_head,
    .on_chunk = conn_on_chunk,
    .on_end = conn_on_end,
    .on_abort = conn_on_abort,
    .on_closed = conn_on_closed,
};

/* ----------------------------------------------------------- connections */

static void conn_start(struct rconn *rc);

static void on_conn_timer(uv_timer_t *t)
{
    struct rconn *rc = t->data;
    if (rc->ep.state == OAPNET_IDLE)
        conn_start(rc);
    else if (rc->ep.state == OAPNET_CONNECTING || rc->ep.state == OAPNET_HELLO)
        oapnet_close(&rc->ep, "connect or HELLO timed out");
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

static void conn_start(struct rconn *rc)
{
    struct rpool *p = rc->pool;
    struct rworker *rw = p->rw;

    if (rw->stopping)
        return;
    if (rc->started_once)
        atomic_fetch_add(&reconnects[p->svc], 1);
    rc->started_once = true;
    if (oapnet_connect(&rc->ep, rw->dw->loop, p->addr) != 0) {
        conn_backoff(rc);
        return;
    }
    rw->handles++;
    uv_timer_start(&rc->timer, on_conn_timer, REMOTE_CONNECT_TIMEOUT_MS, 0);
}

/* ---------------------------------------------------------- worker tick */

/* -------------------------------------------------------------- probes */

static void probe_start(struct rprobe *pr);

static void probe_on_timer(uv_timer_t *t)
{
    struct rprobe *pr = t->data;
    if (pr->ep.state == OAPNET_IDLE)
        probe_start(pr);
    else
        oapnet_close(&pr->ep, "probe timed out");
}

static void probe_verdict(struct rprobe *pr, bool ok)
{
    atomic_store(&sets[pr->svc].ep[pr->i].probe_ok, ok);
}

static struct rprobe *probe_of(struct oapnet *ep)
{
    return (struct rprobe *)((char *)ep - offsetof(struct rprobe, ep));
}

/* HELLO answered: the endpoint is up; the probe's work is done. */
static void probe_on_ready(struct oapnet *ep)
{
    struct rprobe *pr = probe_of(ep);
    pr->ok = true;
    probe_verdict(pr, true);
    oapnet_close(ep, "probe done");
}

static void probe_on_closed(struct oapnet *ep)
{
    struct rprobe *pr = probe_of(ep);
    struct rworker *rw = pr->rw;

    rw->handles--;
    if (!pr->ok)
        probe_verdict(pr, false);
    if (!rw->stopping)
        uv_timer_start(&pr->timer, probe_on_timer, (uint64_t)ds__cfg(rw->dw)->ds_health_interval_ms,
                       0);
    rw_maybe_free(rw);
}

/* A probe asks nothing but HELLO: no stream ever opens on it. */
static void probe_on_message(struct oapnet *ep, struct oapnet_stream *st, int status,
                             struct oapnet_msg *m)
{
}
static void probe_on_stream(struct oapnet *ep, struct oapnet_stream *st)
{
}
static void probe_on_head(struct oapnet *ep, struct oapnet_stream *st, uint16_t code,
                          const char *hdr, size_t hdr_len)
{
}
static bool probe_on_chunk(struct oapnet *ep, struct oapnet_stream *st, const uint8_t *p, size_t n)
{
    return false;
}

static const struct oapnet_ops probe_ops = {
    .on_ready = probe_on_ready,
    .on_message = probe_on_message,
    .on_head = probe_on_head,
    .on_chunk = probe_on_chunk,
    .on_end = probe_on_stream,
    .on_abort = probe_on_stream,
    .on_closed = probe_on_closed,
};

static void probe_start(struct rprobe *pr)
{
    struct rworker *rw = pr->rw;
    const struct og_config *cfg = ds__cfg(rw->dw);

    if (rw->stopping)
        return;
    pr->ok = false;
    if (oapnet_connect(&pr->ep, rw->dw->loop, &set_addrs[pr->svc][pr->i]) != 0) {
        probe_verdict(pr, false);
        uv_timer_start(&pr->timer, probe_on_timer, (uint64_t)cfg->ds_health_interval_ms, 0);
        return;
    }
    rw->handles++;
    uv_timer_start(&pr->timer, probe_on_timer, (uint64_t)cfg->ds_health_timeout_ms, 0);
}

static void probes_init(struct rworker *rw, enum ds_service svc, const struct oap_hello *ours)
{
    int n = sets[svc].n;
    rw->probes[svc] = xcalloc((size_t)n, sizeof(struct rprobe));
    for (int i = 0; i < n; i++) {
        struct rprobe *pr = &rw->probes[svc][i];
        oapnet_init(&pr->ep, OAPNET_CLIENT, &probe_ops, &rw->batches, ours);
        pr->rw = rw;
        pr->svc = svc;
        pr->i = i;
        uv_timer_init(rw->dw->loop, &pr->timer);
        pr->timer.data = pr;
        rw->handles++;
        uv_timer_start(&pr->timer, probe_on_timer, 0, 0);
        uv_unref((uv_handle_t *)&pr->timer);
    }
}

/* The prober's tick: ejections decay, and an endpoint leaving or coming
 * back into service is logged once. */
static void probes_tick(struct rworker *rw, uint64_t now)
{
    for (int sv = 0; sv < DS__COUNT; sv++) {
        if (rw->probes[sv] == NULL)
            continue;
        struct bal_set *set = &sets[sv];
        bal_tick(
            set, now,
            &(struct bal_policy){.eject_base_ms = (uint64_t)ds__cfg(rw->dw)->ds_eject_base_ms});
        for (int i = 0; i < set->n; i++) {
            struct rprobe *pr = &rw->probes[sv][i];
            bool up = bal_usable(&set->ep[i], now);
            if (up == pr->was_usable)
                continue;
            pr->was_usable = up;
            log_event(up ? LOG_INFO : LOG_WARN,
                      up ? "downstream_endpoint_up" : "downstream_endpoint_down",
                      "%s endpoint %s %s", ds_service_name((enum ds_service)sv), set->ep[i].name,
                      up                                                ? "back in service"
                      : atomic_load(&set->ep[i].ejected_until_ms) > now ? "ejected"
                                                                        : "failed its probe");
        }
    }
}

/* ---------------------------------------------------------- worker tick */

static void rw_stop(struct rworker *rw)
{
    rw->stopping = true;
    for (int s = 0; s < DS__COUNT; s++) {
        for (int i = 0; i < rw->npools[s]; i++) {
            struct rpool *p = &rw->pools[s][i];
            for (int k = 0; k < p->n; k++) {
                oapnet_close(&p->conns[k].ep, "shutting down");
                p->conns[k].timer.data = rw;
                uv_close((uv_handle_t *)&p->conns[k].timer, on_handle_closed);
            }
            pool_dispatch(p);
        }
        for (int i = 0; rw->probes[s] && i < sets[s].n; i++) {
            struct rprobe *pr = &rw->probes[s][i];
            oapnet_close(&pr->ep, "shutting down");
            pr->timer.data = rw;
            uv_close((uv_handle_t *)&pr->timer, on_handle_closed);
        }
    }
    uv_close((uv_handle_t *)&rw->tick, on_handle_closed);
    wbatch_set_close(&rw->batches, on_handle_closed);
}

static void on_tick(uv_timer_t *t)
{
    struct rworker *rw = t->data;
    uint64_t now = uv_now(rw->dw->loop);

    if (rw->dw->drained && rw->dw->drained(rw->dw->drained_arg)) {
        rw_stop(rw);
        return;
    }
    if (rw->dw->prober)
        probes_tick(rw, now);
    for (int sv = 0; sv < DS__COUNT; sv++) {
        for (int e = 0; e < rw->npools[sv]; e++) {
            struct rpool *p = &rw->pools[sv][e];
            for (int k = 0; k < p->n; k++) {
                struct rconn *rc = &p->conns[k];
                if (rc->ep.state != OAPNET_READY || rc->orphans == 0)
                    continue;
                for (uint32_t i = 0; i < rc->ep.max_inflight; i++) {
                    struct rslot *s = &rc->slots[i];
                    if (s->st.open && s->c == NULL && s->orphan_ms &&
                        now - s->orphan_ms > REMOTE_ORPHAN_MAX_MS) {
                        oapnet_close(&rc->ep, "abandoned calls never answered");
                        break;
                    }
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

/* The endpoint label: every configured endpoint of every remote service,
 * so its values are bounded by the configuration. A series exists only for
 * the service the endpoint belongs to (the others read NaN: left out). */
static const char *ep_label_values[DS__COUNT * BAL_ENDPOINTS_MAX];
static int ep_label_svc[DS__COUNT * BAL_ENDPOINTS_MAX], ep_label_idx[DS__COUNT * BAL_ENDPOINTS_MAX];
static int ep_labels;

static const struct bal_ep *ep_of(const int *ix)
{
    return ep_label_svc[ix[1]] == ix[0] ? &sets[ix[0]].ep[ep_label_idx[ix[1]]] : NULL;
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000; /* the clock of uv_now, at full resolution */
}

static double read_ep_healthy(const struct metric_def *d, const int *ix)
{
    const struct bal_ep *e = ep_of(ix);
    return e ? bal_usable(e, mono_ms()) : NAN;
}

static double read_ep_ejected(const struct metric_def *d, const int *ix)
{
    const struct bal_ep *e = ep_of(ix);
    return e ? atomic_load(&e->ejected_until_ms) > mono_ms() : NAN;
}

static double read_ep_outstanding(const struct metric_def *d, const int *ix)
{
    const struct bal_ep *e = ep_of(ix);
    return e ? (double)atomic_load(&e->outstanding) : NAN;
}

static double read_ep_ejections(const struct metric_def *d, const int *ix)
{
    const struct bal_ep *e = ep_of(ix);
    return e ? (double)atomic_load(&e->ejections_total) : NAN;
}

static double read_ep_attempts(const struct metric_def *d, const int *ix)
{
    const struct bal_ep *e = ep_of(ix);
    if (e == NULL)
        return NAN;
    return (double)(ix[2] == 0 ? atomic_load(&e->attempts_ok) : atomic_load(&e->attempts_failed));
}

static const char *service_names[DS__COUNT]; /* ds_service_name()s; set before registering */
static const char *const OUTCOMES[] = {"ok", "failed"};
static const struct metric_label L_SERVICE = {"service", service_names, DS__COUNT, NULL};
static const struct metric_label L_ENDPOINT = {"endpoint", ep_label_values,
                                               DS__COUNT *BAL_ENDPOINTS_MAX, &ep_labels};
static const struct metric_label L_OUTCOME = {"outcome", OUTCOMES, 2, NULL};
static const struct metric_def METRICS[] = {
    {"downstream_connections", METRIC_GAUGE,
     "OAP/1 connections to a downstream that finished HELLO.", .labels = {&L_SERVICE},
     .read = read_ready_conns},
    {"downstream_reconnects_total", METRIC_COUNTER,
     "Connection attempts to a downstream after a failure or a lost connection.",
     .labels = {&L_SERVICE}, .read = read_reconnects},
    {"downstream_endpoint_healthy", METRIC_GAUGE,
     "1 while an endpoint takes calls: its last HELLO probe succeeded and it is not ejected.",
     .labels = {&L_SERVICE, &L_ENDPOINT}, .read = read_ep_healthy},
    {"downstream_endpoint_ejected", METRIC_GAUGE,
     "1 while an endpoint is ejected for consecutive failures or timeouts.",
     .labels = {&L_SERVICE, &L_ENDPOINT}, .read = read_ep_ejected},
    {"downstream_endpoint_outstanding", METRIC_GAUGE,
     "Attempts in flight on an endpoint, all workers.", .labels = {&L_SERVICE, &L_ENDPOINT},
     .read = read_ep_outstanding},
    {"downstream_endpoint_ejections_total", METRIC_COUNTER, "Times an endpoint was ejected.",
     .labels = {&L_SERVICE, &L_ENDPOINT}, .read = read_ep_ejections},
    {"downstream_endpoint_attempts_total", METRIC_COUNTER,
     "Attempts an endpoint finished, by outcome (failed: no answer, a 5xx or a timeout).",
     .labels = {&L_SERVICE, &L_ENDPOINT, &L_OUTCOME}, .read = read_ep_attempts},
};

static void register_metrics(void)
{
    for (int s = 0; s < DS__COUNT; s++)
        service_names[s] = ds_service_name((enum ds_service)s);
    metrics_register(METRIC_TABLE(METRICS));
}

/* ---------------------------------------------------------------- backend */

int ds__remote_start(const struct og_config *cfg)
{
    char names[BAL_ENDPOINTS_MAX][BAL_NAME_MAX];

    ep_labels = 0;
    for (int s = 0; s < DS__COUNT; s++) {
        if (cfg->ds_addr[s][0] == '\0') {
            bal_set_init(&sets[s], 0, NULL);
            continue;
        }
        int n =
            oapnet_addr_list_parse(cfg->ds_addr[s], false, set_addrs[s], names, BAL_ENDPOINTS_MAX);
        if (n < 1) {
            fprintf(stderr, "omnigate: %s = \"%s\": invalid endpoint set\n",
                    ds_service_name((enum ds_service)s), cfg->ds_addr[s]);
            return -1;
        }
        bal_set_init(&sets[s], n, (const char(*)[BAL_NAME_MAX])names);
        for (int i = 0; i < n; i++) {
            ep_label_values[ep_labels] = sets[s].ep[i].name;
            ep_label_svc[ep_labels] = s;
            ep_label_idx[ep_labels] = i;
            ep_labels++;
        }
    }
    return 0;
}

static void remote_worker_init(struct ds_worker *dw, enum ds_service svc)
{
    struct rworker *rw = dw->remote;
    struct oap_hello ours;
    int n = ds__remote_pool_size > 0 ? ds__remote_pool_size : 1;

    if (!atomic_flag_test_and_set(&metrics_registered))
        register_metrics();
    if (rw == NULL) {
        rw = xcalloc(1, sizeof(*rw));
        rw->dw = dw;
        rw->rnd = uv_hrtime() ^ ((uint64_t)(dw->id + 1) << 40) ^ (uintptr_t)rw;
        if (rw->rnd == 0)
            rw->rnd = 1;
        uv_timer_init(dw->loop, &rw->tick);
        rw->tick.data = rw;
        rw->handles++;
        uv_timer_start(&rw->tick, on_tick, REMOTE_TICK_MS, REMOTE_TICK_MS);
        uv_unref((uv_handle_t *)&rw->tick);
        wbatch_set_init(&rw->batches, dw->loop);
        rw->batches.check.data = rw->batches.idle.data = rw;
        rw->handles += 2; /* closed by wbatch_set_close, with on_handle_closed */
        dw->remote = rw;
    }
    if (sets[svc].n == 0) {
        log_event(LOG_ERROR, "downstream_addr", "%s: no endpoint", ds_service_name(svc));
        return;
    }
    oap_hello_defaults(&ours);
    ours.max_inflight = REMOTE_MAX_INFLIGHT;
    ours.flags = OAP_FLAGS_KNOWN & ~OAP_FLAG_COMP; /* we never inflate */
    rw->npools[svc] = sets[svc].n;
    rw->pools[svc] = xcalloc((size_t)sets[svc].n, sizeof(struct rpool));
    for (int e = 0; e < sets[svc].n; e++) {
        struct rpool *p = &rw->pools[svc][e];
        p->rw = rw;
        p->svc = svc;
        p->ep = e;
        p->addr = &set_addrs[svc][e];
        p->conns = xcalloc((size_t)n, sizeof(*p->conns));
        p->n = n;
        for (int k = 0; k < n; k++) {
            struct rconn *rc = &p->conns[k];
            oapnet_init(&rc->ep, OAPNET_CLIENT, &conn_ops, &rw->batches, &ours);
            rc->ep.in_max = REMOTE_STREAM_MAX_BYTES;
            rc->pool = p;
            uv_timer_init(dw->loop, &rc->timer);
            rc->timer.data = rc;
            rw->handles++;
            /* Connect on the worker's own loop, once it runs. */
            uv_timer_start(&rc->timer, on_conn_timer, 0, 0);
        }
    }
    if (dw->prober)
        probes_init(rw, svc, &ours);
}

/* ---- wire header -------------------------------------------------------- */

_Static_assert(DS_OP_CORR_ID_MAX >= HTTP_CORR_ID_MAX, "every corr_id is written");

/* c's header as the service reads it, written from the typed op for each
 * attempt (ds_op_write): the caller's remaining deadline first, then the
 * correlation id (validated to [A-Za-z0-9._:-] at the edge, so it needs no
 * escaping), then the op's fields. Only this backend writes request
 * header JSON: in process the op goes to the engines as it is. Returns 0,
 * or DS_SEND_NOMEM out of memory or for an op the writer refuses (none a
 * builder makes): the call fails INTERNAL, not retried. */
static int wire_hdr_build(struct ds_call *c)
{
    uint64_t now = uv_now(c->dw->loop);
    char h[DS_OP_HDR_MAX];
    c->req.op.has_deadline = true;
    c->req.op.deadline_ms = c->req.deadline_ms > now ? (int64_t)(c->req.deadline_ms - now) : 0;
    int n = ds_op_write(&c->req.op, c->corr_id, h);
    if (n < 0)
        return DS_SEND_NOMEM;
    char *p = realloc(c->wire_hdr, (size_t)n + 1);
    if (p == NULL)
        return DS_SEND_NOMEM;
    memcpy(p, h, (size_t)n + 1);
    c->wire_hdr = p;
    c->wire_hdr_len = (size_t)n;
    return 0;
}

/* Endpoints of c's service whose pool on this worker has a connection up
 * or coming. */
static uint32_t reachable(const struct rworker *rw, enum ds_service svc)
{
    uint32_t m = 0;
    for (int i = 0; i < rw->npools[svc]; i++)
        if (pool_hopeful(&rw->pools[svc][i]))
            m |= 1u << i;
    return m;
}

/* Returns 0 (sent or queued), DS_SEND_NOMEM, DS_SEND_BUSY when every
 * reachable endpoint is at its share of the concurrency limit, or -1 when
 * every connection to every endpoint of the service is down (the core
 * answers BAD_GATEWAY). */
static int remote_send(struct ds_call *c)
{
    struct rworker *rw = c->dw->remote;
    enum ds_service svc = c->req.svc;
    struct rpool *p;
    struct rconn *rc;

    c->bstate = NULL;
    if (wire_hdr_build(c) != 0)
        return DS_SEND_NOMEM;
    if (rw == NULL || rw->stopping || rw->npools[svc] == 0)
        return -1;
    int i = bal_pick(&sets[svc], uv_now(c->dw->loop), reachable(rw, svc), c->ep_tried,
                     (int)c->ep_last - 1,
                     bal_cap((long)ds__cfg(c->dw)->ds_concurrency[svc], sets[svc].n),
                     (uint64_t)rw_rand(rw) << 32 | rw_rand(rw));
    if (i == BAL_FULL)
        return DS_SEND_BUSY;
    if (i < 0)
        return -1;
    p = &rw->pools[svc][i];
    attempt_begin(c, i);
    if ((rc = pool_pick(p)) != NULL)
        return conn_send(rc, c);
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
    struct rworker *rw = c->dw->remote;
    struct rslot *s = c->bstate;

    c->bstate = NULL;
    /* Abandoned at its deadline: a timeout of the endpoint. Otherwise the
     * caller left, or a hedge won: nothing to hold against it. */
    attempt_end(c, uv_now(c->dw->loop) >= c->req.deadline_ms ? BAL_FAILED : BAL_NEUTRAL);
    if (rw == NULL)
        return;
    if (s == NULL) {
        struct rpool *pools = rw->pools[c->req.svc];
        for (int i = 0; i < rw->npools[c->req.svc]; i++)
            queue_unlink(&pools[i], c);
        return;
    }
    /* The endpoint closes the connection if the call's body may still be
     * read by a queued write, or its request stream is unfinished. */
    slot_orphan(s->rc, s);
}

/* The consumer of a chunked answer released one chunk: one frame less is
 * buffered, which may open the window for a grant. */
static void remote_consumed(struct ds_call *c)
{
    struct rslot *s = c->bstate;

    if (s == NULL || s->c != c || !s->st.chunked)
        return;
    oapnet_consumed(&s->rc->ep, &s->st, 1);
}

/* Ready while one endpoint of the set takes calls. Any thread. */
static bool remote_healthy(enum ds_service svc)
{
    uint64_t now = mono_ms();
    for (int i = 0; i < sets[svc].n; i++)
        if (bal_usable(&sets[svc].ep[i], now))
            return true;
    return false;
}

static bool remote_untried(const struct ds_call *c)
{
    struct rworker *rw = c->dw->remote;
    return rw && !rw->stopping &&
           bal_untried(&sets[c->req.svc], uv_now(c->dw->loop), reachable(rw, c->req.svc),
                       c->ep_tried);
}

const struct ds_backend ds__remote_backend = {
    .name = "remote",
    .send = remote_send,
    .abort = remote_abort,
    .worker_init = remote_worker_init,
    .consumed = remote_consumed,
    .healthy = remote_healthy,
    .untried = remote_untried,
};
