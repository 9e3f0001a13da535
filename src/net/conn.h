/*
 * conn.h — one client connection: reading, request lifecycle, timers, writes.
 *
 * Phases and their clocks (all configurable, DESIGN §8):
 *   HEAD     from the first byte (or accept): whole head within head_timeout
 *   QUEUED   the head waits for admission (http/dispatch.h); the admission
 *            layer keeps its wait deadline, and a client that hangs up
 *            leaves the queue at once
 *   BODY     after body_grace, the body must keep body_min_rate
 *   HANDLER  dispatch to response within request_timeout
 *   IDLE     keep-alive wait, idle_timeout
 * and, whatever the phase, a write that makes no progress for write_timeout
 * closes the connection. One uv_timer per connection fires no later than
 * the nearest deadline: it is re-armed only when a deadline comes nearer
 * than the one it is armed for, and when it fires early it looks at every
 * deadline and arms for the next (lazily, as nginx keeps its timers).
 *
 * Under connection pressure (open connections past conn_pressure_high
 * percent of the cap) HEAD and IDLE waits get shorter deadlines, down to
 * head_timeout_min and idle_timeout_min at the cap. Those are kept by the
 * worker, not by each connection: a connection waiting for a request with
 * nothing in service or being written sits in one of the worker's two
 * queues, oldest first, and one timer per worker closes the fronts that
 * are past the shortened deadline. When the cap is reached, a new
 * connection takes the slot of the one that has waited longest.
 */
#ifndef NET_CONN_H
#define NET_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http/conn-t.h"
#include "net/server.h"

enum conn_phase { PHASE_IDLE, PHASE_HEAD, PHASE_QUEUED, PHASE_BODY, PHASE_HANDLER, PHASE_CLOSING };

/* Read buffers, request states and write requests a worker keeps for
 * reuse; more are freed when given back. With responses written at once a
 * worker needs one of each, with slow downstreams or slow readers one per
 * request in service or write unfinished. */
#define CONN_RBUFS_CACHED 32
#define CONN_REQS_CACHED  64
#define CONN_WREQS_CACHED 64

struct conn_req; /* the request being read or served: parser and struct http_req */

/* An idle keep-alive connection is this struct and its two libuv handles:
 * the read buffer and the request state are taken when bytes arrive and
 * given back when the response is done and no byte is left unread. */
struct conn {
    uv_tcp_t tcp; /* first: handle->data is not needed to find us */
    uv_timer_t timer;
    struct http_conn hc; /* what the request layer sees (http/conn-t.h) */
    struct worker *w;
    struct conn *prev, *next;
    /* In w->wait_head or w->wait_idle (waitq) while waiting for a request
     * with nothing in service or being written: what pressure may close. */
    struct pressure_node wait;
    struct pressure_queue *waitq;

    /* Read buffer of rcap bytes (header_max + 16 KiB at the time it was
     * taken), NULL while nothing is unread and no request points into it.
     * 32-bit offsets: header_max is at most 1 MiB. */
    char *rbuf;
    uint32_t rlen, rpos, rcap;
    uint32_t body_base; /* while reading a body, space after the head is reused */

    struct conn_req *rq; /* NULL between requests */

    enum conn_phase phase;
    uint64_t phase_ms;
    uint64_t write_progress_ms;
    uint64_t timer_due; /* loop time the timer fires at; 0 when it is not armed */
    unsigned writes_pending;
    unsigned handles_open;
    bool in_process; /* conn_process is on the stack */
    bool req_active; /* a request's head was dispatched and it is not finished */
    bool head_done;  /* the current request went through http_dispatch_head */
    bool reading;
    bool closing;
    bool slot_given_back; /* evicted: its count in srv->conns went at once */
};

/* Accept callback for a listener (service or admin). */
void conn_on_accept(uv_stream_t *server, int status);

/* Run the callbacks of writes that finished synchronously (from the
 * worker's prepare and check phases: never inside the write that
 * queued them, and always before the loop blocks in poll). */
void conn_flush_completions(struct worker *w);

/* Close the connection now (pending writes are dropped). */
void conn_close(struct conn *c);

/* Close every connection of w (drain timeout) or only idle ones. */
void conn_close_all(struct worker *w, bool idle_only);

/* Read the open-connection count again and apply the pressure it means to
 * w's waiting connections (a service worker, on its own thread): close
 * those past their shortened deadlines, and keep checking every
 * CONN_PRESSURE_POLL_MS while the level stays above 0. */
void conn_pressure_check(struct worker *w);

/* While under pressure, how often a worker reads the shared count again:
 * other workers' connections move it too. */
#define CONN_PRESSURE_POLL_MS 100

/* Loop time in ms. */
static inline uint64_t conn_now(const struct conn *c)
{
    return uv_now((uv_loop_t *)&c->w->loop);
}

#endif
