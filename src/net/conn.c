/*
 * conn.c — client connections on a worker loop.
 *
 * The read buffer holds the current request's head in place (requests'
 * slices point into it) and is compacted only between requests. While a
 * body is read, the space after the head is reused, so a 1 MiB body never
 * needs a 1 MiB read buffer. Pipelined requests are parsed one at a time:
 * while a request is served, further bytes wait in the read buffer, and a
 * full buffer stops reading until the request is done — the backpressure a
 * pipelining client sees.
 *
 * Memory follows the bytes, not the connection (nginx gives a keep-alive
 * connection's buffers back the same way): the read buffer is taken from
 * the worker's free list when libuv asks for room to read into, and the
 * request state (parser and struct http_req) when a request's first byte is
 * parsed. The request state goes back when its response is handed to the
 * writer, the buffer when, in addition, no byte in it is unread. An idle
 * connection holds neither; a connection that holds a buffer always has
 * bytes in it or a request pointing into it.
 */
#include "net/conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/freelist.h"
#include "core/log.h"
#include "http/dispatch.h"
#include "http/h1.h"
#include "http/response.h"

/* A refused connection gets this and is closed at once (no queueing). */
#define BUSY_BODY     "{\"error\":\"busy\",\"reason\":\"too many open connections\",\"corr_id\":\"\"}\n"
#define BUSY_BODY_LEN "67"
_Static_assert(sizeof(BUSY_BODY) - 1 == 67, "BUSY_BODY_LEN must be the length of BUSY_BODY");
static const char BUSY_RESPONSE[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    "Retry-After: 1\r\nConnection: close\r\nContent-Length: " BUSY_BODY_LEN "\r\n\r\n" BUSY_BODY;

/* After the last byte of a closing response, keep reading (and dropping)
 * for this long so unread input does not turn our close into a reset that
 * destroys the response in flight (nginx's lingering close). */
#define CONN_LINGER_MS 1000
/* Extra read-buffer room beyond the head cap, used for bodies. */
#define CONN_BODY_ROOM (16 * 1024)

/* Request-only state, from the worker's free list for one request. */
struct conn_req {
    struct http_req req;
    struct h1 h1;
};

static void conn_process(struct conn *c);
static void conn_rearm(struct conn *c);
static const struct http_conn_ops CONN_OPS;

static const struct og_config *CFG(const struct conn *c)
{
    return c->w->cfg;
}

/* ---- buffers and request state ------------------------------------------ */

/* A read buffer sized for the current header_max. Returns 0 or -1 (memory). */
static int rbuf_take(struct conn *c)
{
    size_t cap = (size_t)CFG(c)->header_max + CONN_BODY_ROOM;
    c->rbuf = freelist_get(&c->w->rbufs, cap);
    if (c->rbuf == NULL)
        return -1;
    c->rcap = (uint32_t)cap;
    c->rpos = c->rlen = 0;
    return 0;
}

/* The buffer goes back once no byte in it is unread and no request points
 * into it (a request's head slices do until its response is handed over). */
static void rbuf_maybe_give_back(struct conn *c)
{
    if (c->rbuf == NULL || c->rq != NULL || c->rpos != c->rlen)
        return;
    freelist_put(&c->w->rbufs, c->rbuf, c->rcap);
    c->rbuf = NULL;
    c->rpos = c->rlen = 0;
}

/* Request state goes back without heap memory of its own: the body and the
 * extra header lines are freed (they are rare, and a cached state should
 * not keep up to body_max alive). */
static void req_give_back(struct conn *c)
{
    struct conn_req *q = c->rq;
    if (q == NULL)
        return;
    c->rq = NULL;
    h1_release(&q->h1); /* a coded body's decoder, if it was cut off mid-body */
    buf_release(&q->req.body);
    buf_release(&q->req.resp_hdrs);
    freelist_put(&c->w->reqs, q, sizeof(*q));
}

/* ---- lifecycle ---------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    struct worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    if (!w->is_admin && !c->slot_given_back)
        atomic_fetch_sub(&w->srv->conns, 1);
    req_give_back(c);
    freelist_put(&w->rbufs, c->rbuf, c->rcap);
    c->rbuf = NULL;
    free(c);
    worker_maybe_finish(w);
}

static void wait_leave(struct conn *c)
{
    if (c->waitq) {
        pressure_queue_remove(c->waitq, &c->wait);
        c->waitq = NULL;
    }
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    wait_leave(c);
    /* A request still in service — waiting for downstreams, or streaming a
     * body — is told through its cancel hook, so nothing refers to this
     * connection after it is freed. */
    if (c->req_active)
        http_req_abandon(&c->rq->req, 499, "client_closed");
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

void conn_close_all(struct worker *w, bool idle_only)
{
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        /* A request whose head or body is still arriving is in flight: the
         * parser has consumed every byte, so rpos == rlen alone says nothing;
         * it holds request state from its first byte to its response. */
        bool idle = c->rq == NULL && c->rpos == c->rlen && c->writes_pending == 0;
        if (!idle_only || idle)
            conn_close(c);
        else
            c->hc.close_after_write = true;
    }
}

/* ---- reading ------------------------------------------------------------ */

/* libuv asks for room before every read. A connection without a buffer
 * takes one here; if the read brings nothing (nread 0, EOF, an error),
 * on_read gives it back or the close does. No room at all is UV_ENOBUFS. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct conn *c = h->data;
    *b = uv_buf_init(NULL, 0);
    if (c->rbuf == NULL && rbuf_take(c) != 0)
        return;
    if (c->phase == PHASE_CLOSING) {
        /* lingering: read into the start of the buffer and drop it */
        *b = uv_buf_init(c->rbuf, c->rcap);
        return;
    }
    *b = uv_buf_init(c->rbuf + c->rlen, c->rcap - c->rlen);
}

static void start_reading(struct conn *c);
static void stop_reading(struct conn *c);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    if (c->closing)
        return;
    if (nread == 0) { /* EAGAIN: a buffer taken for this read goes back */
        rbuf_maybe_give_back(c);
        return;
    }
    if (nread == UV_ENOBUFS) {
        if (c->rbuf == NULL) /* no memory for a read buffer */
            conn_close(c);
        else /* buffer full behind a request in service */
            stop_reading(c);
        return;
    }
    if (c->phase == PHASE_CLOSING) { /* lingering close: discard */
        c->rpos = c->rlen = 0;
        rbuf_maybe_give_back(c);
        if (nread < 0)
            conn_close(c);
        return;
    }
    if (nread < 0) {
        /* Half-close with requests still buffered or in service: answer them,
         * then close. Anything else: the client is gone. */
        if (c->phase == PHASE_QUEUED || (c->req_active && c->rq && c->rq->req.abandon_on_eof)) {
            /* a client gone while waiting (for a slot, or a long-poll) leaves at once */
            conn_close(c);
            return;
        }
        if (nread == UV_EOF && (c->req_active || c->rpos < c->rlen)) {
            c->hc.close_after_write = true;
            uv_read_stop(s);
            c->reading = false;
            conn_process(c);
            return;
        }
        conn_close(c);
        return;
    }
    SHARD_ADD(c->w->m->bytes_in, (uint64_t)nread);
    c->rlen += (uint32_t)nread;
    if (c->phase == PHASE_IDLE) {
        c->phase = PHASE_HEAD;
        c->phase_ms = conn_now(c);
    }
    conn_process(c);
}

static void start_reading(struct conn *c)
{
    if (!c->reading && !c->closing && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void stop_reading(struct conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* ---- request lifecycle -------------------------------------------------- */

/* Request state for the bytes at rpos, with the current limits. Returns 0,
 * or -1 when memory is short. */
static int start_request(struct conn *c)
{
    /* Between requests nothing points into the buffer: compact it. */
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    struct conn_req *q = freelist_get(&c->w->reqs, sizeof(*q));
    if (q == NULL)
        return -1;
    struct http_req *r = &q->req;
    memset(r, 0, sizeof(*r));
    r->conn = &c->hc;
    r->ctx = c->w->ctx;
    r->content_length = -1;
    r->route_id = metrics_route_unmatched();
    const struct og_config *cfg = CFG(c);
    struct h1_limits lim = {(size_t)cfg->header_max, (unsigned)cfg->header_count_max,
                            (size_t)cfg->body_max, (unsigned)cfg->decompress_ratio_max};
    /* A fresh parser per request: llhttp resumed after a message and one
     * started on the next byte parse the same way. */
    h1_init(&q->h1, &lim);
    h1_begin(&q->h1, r);
    c->rq = q;
    c->head_done = false;
    c->body_base = 0;
    if (c->phase != PHASE_HEAD) {
        c->phase = PHASE_HEAD;
        c->phase_ms = conn_now(c);
    }
    return 0;
}

static void send_continue(struct conn *c)
{
    static const char CONT[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init((char *)CONT, sizeof(CONT) - 1);
    /* Tiny and first on the wire: try_write almost always takes it whole. */
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n != (int)b.len)
        c->hc.close_after_write = true; /* cannot promise the client anything */
}

/* The head is parsed: http/ routes and admits the request before its body
 * is read (http/dispatch.c), so a refused body is never buffered and a
 * client waiting for 100 Continue gets the refusal instead. Returns true to
 * go on (body, then handler); false when the request was answered (its
 * state is already given back) or parked until admission resumes it. */
static bool head_admitted(struct conn *c, bool body_pending)
{
    struct http_req *r = &c->rq->req;
    c->req_active = true;
    c->head_done = true;
    r->body_pending = body_pending;
    r->t_start_ns = uv_hrtime();
    if (atomic_load(&c->w->srv->draining))
        r->close_after = true; /* a draining server reuses no connection */
    enum http_admit a = http_dispatch_head(r);
    if (a == HTTP_ADMIT_WAIT) {
        c->phase = PHASE_QUEUED;
        c->phase_ms = conn_now(c);
    }
    return a == HTTP_ADMIT_GO;
}

static void begin_body(struct conn *c)
{
    const struct http_req *r = &c->rq->req;
    c->phase = PHASE_BODY;
    c->phase_ms = conn_now(c);
    if (r->expect_continue)
        send_continue(c);
}

/* The whole request is read and admitted: the handler phase and its clock
 * (the request budget less the time it waited for a slot); then the
 * handler runs (http/dispatch.c). */
static void run(struct conn *c)
{
    struct http_req *r = &c->rq->req;
    uint64_t budget = (uint64_t)CFG(c)->request_timeout_ms;
    r->body_pending = false;
    c->phase = PHASE_HANDLER;
    c->phase_ms = conn_now(c);
    r->deadline_ms = c->phase_ms + (r->queued_ms < budget ? budget - r->queued_ms : 0);
    http_dispatch_run(r);
}

/* ops->resume: admission granted the parked request a slot. */
static void conn_resume(struct conn *c)
{
    if (c->closing || c->phase != PHASE_QUEUED)
        return;
    if (c->rq->req.body_pending) {
        begin_body(c);
        conn_process(c);
        return;
    }
    run(c);
    conn_rearm(c);
}

/* ops->finished: http_req_abandon and the response writer call this with
 * req_active. The request state goes back to the worker, then the
 * connection goes on with the next request, waits idle, or closes if asked. */
static void conn_request_finished(struct conn *c)
{
    c->req_active = false;
    bool close_now = (c->rq && c->rq->req.close_after) || c->hc.close_after_write || c->closing;
    req_give_back(c);
    if (close_now) {
        c->hc.close_after_write = true;
        c->phase = PHASE_CLOSING;
        c->phase_ms = conn_now(c);
        stop_reading(c);
        /* Pipelined requests behind this one are not answered: drop them. */
        c->rpos = c->rlen = 0;
        rbuf_maybe_give_back(c);
        if (c->writes_pending == 0 && !c->closing) {
            /* Lingering close: FIN now, drain input briefly, then close. */
            start_reading(c);
        }
        conn_rearm(c);
        return;
    }
    c->phase = PHASE_IDLE;
    c->phase_ms = conn_now(c);
    if (!c->in_process)
        conn_process(c);
    else
        conn_rearm(c);
}

/* Answer the request being read with an error and close after it. */
static void answer_parse_error(struct conn *c, enum og_err e, const char *reason)
{
    struct http_req *r = &c->rq->req;
    c->req_active = true;
    c->hc.close_after_write = true;
    r->close_after = true;
    if (r->t_start_ns == 0)
        r->t_start_ns = uv_hrtime();
    http_respond_error(r, e, reason);
}

static void conn_process(struct conn *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    /* One request at a time: while one is parked or served, the loop stops
     * (pipelined bytes wait); while its body arrives, it feeds the body. */
    while (!c->closing && c->phase != PHASE_CLOSING && (!c->req_active || c->phase == PHASE_BODY)) {
        if (c->rq == NULL) {
            if (c->rpos == c->rlen)
                break;
            if (start_request(c) != 0) {
                conn_close(c); /* no memory to read a request with */
                break;
            }
        }
        struct h1 *h = &c->rq->h1;
        const struct http_req *r = &c->rq->req;
        size_t used = 0;
        enum h1_result res = h1_feed(h, c->rbuf, c->rpos, c->rlen, &used);
        c->rpos += (uint32_t)used;
        if (res == H1_NEED_MORE) {
            if (h->in_body && c->rpos == c->rlen)
                c->rpos = c->rlen = c->body_base; /* body bytes were copied out */
            else if (c->rlen == c->rcap)
                /* The head cannot fit: the parser already refused it, or the
                 * buffer is shorter than the configured cap after a reload. */
                answer_parse_error(c, OG_E_HEADER_TOO_LARGE, "request head over the cap");
            break;
        }
        if (res == H1_HEAD_DONE) {
            c->body_base = c->rpos;
            if (head_admitted(c, r->content_length > 0 || r->chunked))
                begin_body(c);
            continue;
        }
        if (res == H1_REQ_DONE) {
            /* the request state stays until its response is done */
            if (c->head_done || head_admitted(c, false))
                run(c);
            continue;
        }
        answer_parse_error(c, h->err, h->err_reason);
        break;
    }
    c->in_process = false;
    if (c->closing)
        return;
    rbuf_maybe_give_back(c);
    /* Reading goes on while a request is served (pipelined bytes wait in
     * the buffer), so the poll set is not touched per request; a full buffer
     * stops it (on_read, UV_ENOBUFS) until the request is done. */
    if (c->phase == PHASE_CLOSING || c->hc.close_after_write)
        stop_reading(c);
    else if (c->rbuf == NULL || c->rlen < c->rcap)
        start_reading(c);
    if (c->phase == PHASE_CLOSING && c->writes_pending == 0)
        start_reading(c); /* lingering close */
    conn_rearm(c);
}

/* ---- timers ------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    const struct og_config *cfg = CFG(c);
    uint64_t now = conn_now(c);
    c->timer_due = 0; /* one-shot: no longer armed */
    if (c->closing)
        return;
    if (c->writes_pending > 0 && now >= c->write_progress_ms + (uint64_t)cfg->write_timeout_ms) {
        log_event(LOG_WARN, "write_timeout", "client stopped reading; connection closed");
        conn_close(c);
        return;
    }
    switch (c->phase) {
    case PHASE_IDLE:
        if (now >= c->phase_ms + (uint64_t)cfg->idle_timeout_ms)
            conn_close(c);
        break;
    case PHASE_HEAD:
        if (now >= c->phase_ms + (uint64_t)cfg->head_timeout_ms) {
            if (c->rq == NULL) {
                conn_close(c); /* nothing of a request arrived: just close */
                return;
            }
            stop_reading(c);
            answer_parse_error(c, OG_E_TIMEOUT, "request head not received in time");
        }
        break;
    case PHASE_BODY: {
        uint64_t elapsed = now - c->phase_ms;
        if (elapsed >= (uint64_t)cfg->body_grace_ms &&
            (double)c->rq->req.body_received <
                (double)cfg->body_min_rate * ((double)elapsed / 1000.0)) {
            stop_reading(c);
            answer_parse_error(c, OG_E_TIMEOUT, "request body slower than the minimum rate");
        }
        break;
    }
    case PHASE_HANDLER: {
        struct http_req *r = &c->rq->req;
        if (now >= r->deadline_ms && !r->responded) {
            if (r->on_cancel) {
                http_cancel_fn fn = r->on_cancel;
                r->on_cancel = NULL;
                fn(r);
            }
            http_respond_error(r, OG_E_DOWNSTREAM_TIMEOUT, "request timeout");
        }
        break;
    }
    case PHASE_CLOSING:
        if (c->writes_pending == 0 && now >= c->phase_ms + CONN_LINGER_MS)
            conn_close(c);
        break;
    case PHASE_QUEUED: break; /* admission keeps the wait deadline */
    }
    if (!c->closing)
        conn_rearm(c);
}

/* A connection waits for a request while it reads a head or is idle
 * between requests with no request in service and nothing left to write:
 * closing it then loses nothing the client was promised, so it is what
 * pressure may close (never one whose request is read, served or being
 * answered). Called on every re-arm, which follows every change of phase,
 * of req_active and of writes_pending. A new wait (the phase restarted
 * since the connection joined its queue) goes to the back, so each queue
 * stays in the order its waits began. */
static void wait_track(struct conn *c)
{
    struct worker *w = c->w;
    struct pressure_queue *want = NULL;
    /* The admin worker's connections are tracked too (it is cheaper than
     * asking): nothing sweeps or evicts there. */
    if (!c->req_active && c->writes_pending == 0) {
        if (c->phase == PHASE_HEAD)
            want = &w->wait_head;
        else if (c->phase == PHASE_IDLE)
            want = &w->wait_idle;
    }
    if (c->waitq == want && (want == NULL || c->phase_ms <= c->wait.since_ms))
        return;
    wait_leave(c);
    if (want) {
        pressure_queue_push(want, &c->wait, conn_now(c));
        c->waitq = want;
    }
}

static void conn_rearm(struct conn *c)
{
    if (c->closing)
        return;
    wait_track(c);
    const struct og_config *cfg = CFG(c);
    uint64_t now = conn_now(c), due = UINT64_MAX;
#define DUE(t) ((t) < due ? (due = (t)) : 0)
    if (c->writes_pending > 0)
        DUE(c->write_progress_ms + (uint64_t)cfg->write_timeout_ms);
    switch (c->phase) {
    case PHASE_IDLE: DUE(c->phase_ms + (uint64_t)cfg->idle_timeout_ms); break;
    case PHASE_HEAD: DUE(c->phase_ms + (uint64_t)cfg->head_timeout_ms); break;
    case PHASE_BODY: {
        uint64_t grace_end = c->phase_ms + (uint64_t)cfg->body_grace_ms;
        DUE(now < grace_end ? grace_end : now + 1000);
        break;
    }
    case PHASE_HANDLER:
        if (!c->rq->req.responded)
            DUE(c->rq->req.deadline_ms);
        break;
    case PHASE_CLOSING:
        if (c->writes_pending == 0)
            DUE(c->phase_ms + CONN_LINGER_MS);
        break;
    case PHASE_QUEUED: break;
    }
#undef DUE
    /* Lazily: a timer armed to fire no later than `due` is left alone, and
     * one with no deadline left is left to fire and find nothing. Most
     * changes move the deadline later (a head read, a response written, a
     * keep-alive wait begun), so a busy connection touches libuv's timer
     * heap about once per timeout, not several times per request; firing
     * early costs one look at the deadlines (on_timer), which re-arms. */
    if (due == UINT64_MAX || (c->timer_due != 0 && c->timer_due <= due))
        return;
    c->timer_due = due;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

/* ---- connection pressure ------------------------------------------------ */

static struct conn *conn_of_wait(struct pressure_node *n)
{
    return (struct conn *)((char *)n - offsetof(struct conn, wait));
}

/* Close c, which waits for a request, to relieve pressure: silently (no
 * 408: no write to wait for, no lingering second holding the slot), and a
 * client may retry, as nothing of its was served. Its slot is given back
 * at once — uv_close closes the descriptor now — so an accept may use it.
 * Returns the open-connection count after. */
static long evict(struct conn *c, enum metrics_evict why)
{
    struct worker *w = c->w;
    SHARD_ADD(w->m->conns_evicted[why], 1);
    c->slot_given_back = true;
    long n = atomic_fetch_sub(&w->srv->conns, 1) - 1;
    conn_close(c);
    return n;
}

static void on_pressure_timer(uv_timer_t *t);

static unsigned level_of(const struct worker *w, long conns)
{
    return pressure_level(conns, server_conn_cap(w->srv, w->cfg), w->cfg->conn_pressure_high);
}

/* When the wait at the front of q ends at pressure `level`; UINT64_MAX for
 * an empty queue. */
static uint64_t front_due(const struct pressure_queue *q, int64_t base_ms, int64_t min_ms,
                          unsigned level)
{
    if (q->first == NULL)
        return UINT64_MAX;
    return q->first->since_ms + (uint64_t)pressure_timeout_ms(base_ms, min_ms, level);
}

/* Apply w->pressure. Shortened deadlines run from the start of each wait,
 * so a head that has trickled in for longer than the new deadline is cut
 * at once. Only the front of each queue is looked at (the rest began
 * later). After each close the level is taken again: one close lowers the
 * pressure and so lengthens the deadlines of the rest, and a full house
 * does not close every connection idle for a second, only as many as the
 * lower level then allows. The connection's own timer keeps the
 * unshortened deadlines, so nothing changes for it when the pressure is
 * gone. */
static void pressure_sweep(struct worker *w)
{
    const struct og_config *cfg = w->cfg;
    uint64_t now = uv_now(&w->loop);
    while (w->pressure > 0) {
        uint64_t head =
            front_due(&w->wait_head, cfg->head_timeout_ms, cfg->head_timeout_min_ms, w->pressure);
        uint64_t idle =
            front_due(&w->wait_idle, cfg->idle_timeout_ms, cfg->idle_timeout_min_ms, w->pressure);
        long n;
        if (head <= now && head <= idle)
            n = evict(conn_of_wait(w->wait_head.first), METRICS_EVICT_HEAD);
        else if (idle <= now)
            n = evict(conn_of_wait(w->wait_idle.first), METRICS_EVICT_IDLE);
        else {
            uint64_t due = now + CONN_PRESSURE_POLL_MS;
            due = head < due ? head : due;
            due = idle < due ? idle : due;
            uv_timer_start(&w->pressure_timer, on_pressure_timer, due - now, 0);
            return;
        }
        w->pressure = level_of(w, n);
    }
    uv_timer_stop(&w->pressure_timer);
}

static void pressure_set(struct worker *w, long conns)
{
    unsigned level = level_of(w, conns);
    bool rising = level > w->pressure;
    w->pressure = level;
    /* Deadlines only shrink as the level rises; a falling level is applied
     * by the timer already running. */
    if (rising)
        pressure_sweep(w);
}

void conn_pressure_check(struct worker *w)
{
    if (w->is_admin)
        return;
    /* Other workers' accepts and closes move the count too: read it. */
    w->pressure = level_of(w, atomic_load(&w->srv->conns));
    pressure_sweep(w);
}

static void on_pressure_timer(uv_timer_t *t)
{
    conn_pressure_check(t->data);
}

/* The accept that took the count to n found every slot taken: close this
 * worker's connections that have waited longest for a request — idle
 * keep-alive ones first when they began waiting at the same time — until
 * the count is back within the cap (more than one only when workers raced
 * for the last slot or a reload lowered the cap; at most a few per accept,
 * so one accept does a bounded amount of work). Returns true if the
 * newcomer may stay: something was closed, so the count did not grow. A
 * worker cannot close another's connections (they belong to its loop), so
 * a worker with none waiting refuses even when others have some. */
#define CONN_EVICT_PER_ACCEPT 4
static bool make_room(struct worker *w, long n, long cap)
{
    bool made = false;
    for (int i = 0; n > cap && i < CONN_EVICT_PER_ACCEPT; i++) {
        struct pressure_node *v = pressure_victim(&w->wait_idle, &w->wait_head);
        if (v == NULL)
            break;
        n = evict(conn_of_wait(v), METRICS_EVICT_ROOM);
        made = true;
    }
    return made;
}

/* ---- writing ------------------------------------------------------------ */

static void free_shutdown(uv_shutdown_t *sh, int status)
{
    free(sh);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* A write: libuv's request, or a record of one that finished at once. */
struct wreq {
    uv_write_t w;
    struct conn *c;
    http_write_cb cb;
    void *arg;
    struct wreq *next; /* worker's completed list */
};

static void write_finished(struct conn *c, http_write_cb cb, void *arg, int status)
{
    c->writes_pending--;
    c->write_progress_ms = conn_now(c);
    if (cb)
        cb(arg, status);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->phase == PHASE_CLOSING && c->writes_pending == 0) {
        uv_shutdown_t *sh = malloc(sizeof(*sh));
        if (sh == NULL || uv_shutdown(sh, (uv_stream_t *)&c->tcp, free_shutdown) != 0) {
            free(sh);
            conn_close(c);
            return;
        }
        c->phase_ms = conn_now(c);
        start_reading(c);
    }
    conn_rearm(c);
}

static void on_write(uv_write_t *w, int status)
{
    struct wreq *wr = (struct wreq *)w;
    struct conn *c = wr->c;
    http_write_cb cb = wr->cb;
    void *arg = wr->arg;
    freelist_put(&c->w->wreqs, wr, sizeof(*wr));
    write_finished(c, cb, arg, status);
}

void conn_flush_completions(struct worker *w)
{
    /* Callbacks may write again (a stream pump): take the list, run it, and
     * repeat until nothing new finished. */
    while (w->done_head) {
        struct wreq *wr = w->done_head;
        w->done_head = w->done_tail = NULL;
        while (wr) {
            struct wreq *next = wr->next;
            struct conn *c = wr->c;
            http_write_cb cb = wr->cb;
            void *arg = wr->arg;
            freelist_put(&w->wreqs, wr, sizeof(*wr));
            write_finished(c, cb, arg, 0);
            wr = next;
        }
    }
}

/* Try to write everything now. libuv's uv_write re-arms the poll set after
 * every completed write (one epoll_ctl per response); a write the kernel
 * takes whole needs no poll at all. Returns bytes written, or < 0. */
static ssize_t write_now(struct conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    /* uv_try_write refuses (EAGAIN) while bytes are queued: order is kept. */
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    return n == UV_EAGAIN ? 0 : n;
}

/* ops->write (http/conn-t.h). */
static int conn_write(struct conn *c, const uv_buf_t *bufs, unsigned nbufs, http_write_cb on_done,
                      void *arg)
{
    if (c->closing)
        return UV_ECANCELED;
    if (nbufs > HTTP_WRITE_BUFS_MAX)
        return UV_EINVAL; /* checked before anything is written */
    struct wreq *wr = freelist_get(&c->w->wreqs, sizeof(*wr));
    if (wr == NULL)
        return UV_ENOMEM;
    wr->c = c;
    wr->cb = on_done;
    wr->arg = arg;
    wr->next = NULL;
    if (c->writes_pending == 0)
        c->write_progress_ms = conn_now(c);
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    ssize_t done = write_now(c, bufs, nbufs);
    if (done < 0) {
        freelist_put(&c->w->wreqs, wr, sizeof(*wr));
        return (int)done;
    }
    if ((size_t)done == total) {
        /* Finished: the callback still runs later, from the check phase. */
        struct worker *w = c->w;
        if (w->done_tail)
            w->done_tail->next = wr;
        else
            w->done_head = wr;
        w->done_tail = wr;
    } else {
        /* Queue what is left; the caller's buffers stay valid until on_done. */
        uv_buf_t rest[HTTP_WRITE_BUFS_MAX];
        unsigned k = 0;
        size_t skip = (size_t)done;
        for (unsigned i = 0; i < nbufs; i++) {
            if (skip >= bufs[i].len) {
                skip -= bufs[i].len;
                continue;
            }
            rest[k++] = uv_buf_init(bufs[i].base + skip, (unsigned)(bufs[i].len - skip));
            skip = 0;
        }
        int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, rest, k, on_write);
        if (rc != 0) {
            freelist_put(&c->w->wreqs, wr, sizeof(*wr));
            return rc;
        }
    }
    c->writes_pending++;
    if (c->writes_pending == 1)
        conn_rearm(c); /* the write timeout runs while anything is unwritten */
    SHARD_ADD(c->w->m->bytes_out, total);
    return 0;
}

/* ---- the request layer's view ------------------------------------------ */

static struct conn *conn_of(struct http_conn *hc)
{
    return (struct conn *)((char *)hc - offsetof(struct conn, hc));
}

static int ops_write(struct http_conn *hc, const uv_buf_t *bufs, unsigned nbufs,
                     http_write_cb on_done, void *arg)
{
    return conn_write(conn_of(hc), bufs, nbufs, on_done, arg);
}

static void ops_finished(struct http_conn *hc)
{
    conn_request_finished(conn_of(hc));
}

static void ops_close(struct http_conn *hc)
{
    conn_close(conn_of(hc));
}

static void ops_resume(struct http_conn *hc)
{
    conn_resume(conn_of(hc));
}

static const struct http_conn_ops CONN_OPS = {
    .write = ops_write,
    .finished = ops_finished,
    .close = ops_close,
    .resume = ops_resume,
};

/* ---- accepting ---------------------------------------------------------- */

static void refuse(uv_stream_t *server)
{
    uv_tcp_t *t = malloc(sizeof(*t));
    if (t == NULL || uv_tcp_init(server->loop, t) != 0) {
        free(t);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)t) == 0) {
        uv_buf_t b = uv_buf_init((char *)BUSY_RESPONSE, sizeof(BUSY_RESPONSE) - 1);
        (void)uv_try_write((uv_stream_t *)t, &b, 1);
    }
    uv_close((uv_handle_t *)t, free_handle);
}

/* The client's address, once per connection (per-client limits). */
static void peer_address(struct conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        memcpy(c->hc.peer, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        c->hc.peer_len = 4;
    } else if (ss.ss_family == AF_INET6) {
        memcpy(c->hc.peer, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        c->hc.peer_len = 16;
    }
}

void conn_on_accept(uv_stream_t *server, int status)
{
    struct worker *w = server->data;
    if (status < 0)
        return;
    if (!w->is_admin) {
        struct server *srv = w->srv;
        long n = atomic_fetch_add(&srv->conns, 1) + 1;
        long cap = server_conn_cap(srv, w->cfg);
        if (atomic_load(&srv->draining) || (n > cap && !make_room(w, n, cap))) {
            atomic_fetch_sub(&srv->conns, 1);
            SHARD_ADD(w->m->conns_refused, 1);
            refuse(server);
            pressure_set(w, n);
            return;
        }
        pressure_set(w, n);
    }
    /* No read buffer yet: it is taken when the first bytes arrive. */
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        if (!w->is_admin)
            atomic_fetch_sub(&w->srv->conns, 1);
        refuse(server);
        return;
    }
    c->w = w;
    c->hc.ops = &CONN_OPS;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    SHARD_ADD(w->m->conns_accepted, 1);
    uv_tcp_nodelay(&c->tcp, 1);
    peer_address(c);
    /* A new connection must deliver its first head within head_timeout. */
    c->phase = PHASE_HEAD;
    c->phase_ms = conn_now(c);
    start_reading(c);
    conn_rearm(c);
}
