/*
 * server.h — the process-wide server and its per-core workers (DESIGN §3).
 *
 * N worker threads each run a libuv loop with their own SO_REUSEPORT
 * listener, their own connections and their own metric shard: shared
 * nothing. The main thread runs the admin loop (/metrics, /healthz,
 * /readyz, signals, reload). What workers share is read-only after start-up
 * or atomic, as marked below.
 */
#ifndef NET_SERVER_H
#define NET_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/freelist.h"
#include "http/router.h"
#include "net/pressure.h"
#include "ops/metrics.h"

struct conn;
struct http_ctx;
struct server;
struct wreq;

struct worker {
    struct server *srv; /* the server this worker belongs to */
    int id;
    bool is_admin; /* admin listener: not counted against client limits */
    pthread_t thread;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;                    /* drain / reload notifications from the main thread */
    uv_check_t flush;                   /* writes buffered log lines once per loop turn */
    uv_prepare_t before_poll;           /* runs completions queued before poll (timers) */
    struct wreq *done_head, *done_tail; /* writes finished synchronously */
    const struct router *router;        /* routes of this listener, for its handler context */
    struct metrics_shard *m;
    struct conn *conns; /* intrusive list head */
    unsigned nconns;
    /* Connection pressure (net/conn.c): the connections that wait for a
     * request with nothing in service or being written — reading a head,
     * or idle between requests — oldest first; the level this worker last
     * saw; and the timer that closes waits past their shortened timeouts
     * while the level is above 0 (service workers only). */
    struct pressure_queue wait_head, wait_idle;
    unsigned pressure;
    uv_timer_t pressure_timer;
    struct freelist rbufs; /* connections' read buffers, for reuse (net/conn.c) */
    struct freelist reqs;  /* request states, for reuse (net/conn.c) */
    struct freelist wreqs; /* write requests, for reuse (net/conn.c) */
    bool listener_open;
    bool loop_gone; /* the loop has stopped: no more wakes (under worker_wake's lock) */
    const struct og_config *cfg; /* this worker's snapshot, refreshed on wake */
    struct buf logbuf;           /* pending log lines, flushed once per loop turn */
    /* The application's per-worker context (http/ctx-t.h), set by
     * server_hooks.on_worker before the loop runs: net/ only hands it to
     * each request (req->ctx) and keeps its config snapshot current. */
    struct http_ctx *ctx;
};

struct server {
    /* Current configuration; replaced whole on reload, never freed while the
     * process runs (old snapshots stay valid for workers still reading). */
    _Atomic(const struct og_config *) cfg;
    struct router router;
    struct router admin_router;

    atomic_long conns; /* open client connections */
    /* Client connections the descriptor limit leaves room for, next to
     * listeners, loops, downstream pools and one spare to refuse with
     * (server_run; read-only after start-up). */
    long conns_fd_room;
    atomic_bool draining;
    atomic_bool leaving; /* SIGTERM seen: /readyz is 503; draining follows after drain_delay */
    atomic_bool force_close;
    atomic_uint cfg_gen; /* bumped on reload; workers refresh their snapshot */

    /* Readiness keys (DESIGN §8). */
    atomic_bool listener_bound;
    atomic_bool config_loaded;
    atomic_bool last_reload_ok;

    /* Runs on each loop's thread after its loop ended (server_hooks). */
    void (*worker_exit)(struct http_ctx *ctx);

    int nworkers;
    struct worker *workers;
    struct worker admin;
    uint64_t start_time;
};

/* The most client connections that may be open under cfg: max_connections,
 * or fewer when the descriptor limit leaves less room. */
static inline long server_conn_cap(const struct server *srv, const struct og_config *cfg)
{
    return cfg->max_connections < srv->conns_fd_room ? (long)cfg->max_connections
                                                     : srv->conns_fd_room;
}

/* True once srv drains and w has no client connection left: what w's other
 * users (downstream pools) wait for before closing their handles. */
static inline bool worker_drained(const struct worker *w)
{
    return atomic_load(&w->srv->draining) && w->nconns == 0;
}

/* A new configuration snapshot for w and its handler context (w's thread,
 * or before the loop runs). */
void worker_set_config(struct worker *w, const struct og_config *cfg);

/* Create the listener for w on cfg's bind (or admin) address. Returns 0 or a
 * negative errno with a message logged. */
/* shared: every worker listens on addr (SO_REUSEPORT). */
int worker_listen(struct worker *w, const char *addr, bool shared);
/* 0 when nothing else listens on addr; -EADDRINUSE when something does. */
int worker_listen_exclusive_check(const char *addr);
/* Thread body of a service worker. */
void *worker_main(void *arg);
/* Initialise the loop side of a worker of srv (loop, async, check handles),
 * with srv's current configuration. */
int worker_init(struct worker *w, struct server *srv, int id, bool is_admin,
                const struct router *router);
/* Free what w keeps for reuse (buffers, cached blocks), after its loop is closed. */
void worker_release(struct worker *w);
/* Called on the worker's loop when the main thread wakes it. */
void worker_on_wake(uv_async_t *a);
/* Close a drained worker's handles so its loop can end. */
void worker_maybe_finish(struct worker *w);
/* Main thread: wake w's loop, unless it has already stopped (its eventfd is
 * closed by uv_loop_close, and a send to it would abort). */
void worker_wake(struct worker *w);

#endif
