/*
 * worker.c — per-core loops and SO_REUSEPORT listeners.
 */
#include "net/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "http/ctx.h"
#include "net/conn.h"

#define LISTEN_BACKLOG 1024

void worker_set_config(struct worker *w, const struct og_config *cfg)
{
    w->cfg = cfg;
    if (w->ctx)
        http_ctx_set_config(w->ctx, cfg);
}

/* A socket bound to addr, listening unless probe. shared: SO_REUSEPORT, so
 * that every worker has its own listener on the same port. */
static int listen_fd(const char *addr, bool shared, bool probe, int *out)
{
    char host[64];
    int port;
    if (config_parse_addr(addr, host, sizeof(host), &port) != 0)
        return -EINVAL;
    struct sockaddr_storage ss;
    int rc = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)
                               : uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (rc != 0)
        return rc;
    /* libuv 1.44 has no UV_TCP_REUSEPORT: make the socket ourselves. */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        (shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)) {
        rc = -errno;
        close(fd);
        return rc;
    }
    socklen_t sl =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, sl) == -1 ||
        (!probe && listen(fd, LISTEN_BACKLOG) == -1)) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

int worker_listen_exclusive_check(const char *addr)
{
    /* Without SO_REUSEPORT, bind fails while any other socket listens on
     * the port, SO_REUSEPORT or not: a second omnigate (or anything else)
     * refuses to start instead of silently taking a share of the
     * connections. Bound only, never listening: no client can be
     * accepted by it and then reset. */
    int fd = -1;
    int rc = listen_fd(addr, false, true, &fd);
    if (fd != -1)
        close(fd);
    return rc;
}

int worker_listen(struct worker *w, const char *addr, bool shared)
{
    int fd = -1;
    int rc = listen_fd(addr, shared, false, &fd);
    if (rc != 0)
        return rc;
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    if ((rc = uv_tcp_open(&w->listener, fd)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&w->listener, LISTEN_BACKLOG, conn_on_accept)) != 0) {
        uv_close((uv_handle_t *)&w->listener, NULL);
        return rc;
    }
    w->listener_open = true;
    return 0;
}

static void on_before_poll(uv_prepare_t *h)
{
    /* Writes finished while timers ran must complete before poll blocks. */
    conn_flush_completions(h->data);
}

static void on_flush(uv_check_t *h)
{
    struct worker *w = h->data;
    conn_flush_completions(w);
    if (w->logbuf.n)
        log_flush(&w->logbuf);
}

int worker_init(struct worker *w, struct server *srv, int id, bool is_admin,
                const struct router *router)
{
    memset(w, 0, sizeof(*w));
    w->srv = srv;
    w->id = id;
    w->is_admin = is_admin;
    w->router = router;
    w->m = metrics_shard(id);
    w->cfg = atomic_load(&srv->cfg);
    freelist_init(&w->rbufs, CONN_RBUFS_CACHED);
    freelist_init(&w->reqs, CONN_REQS_CACHED);
    freelist_init(&w->wreqs, CONN_WREQS_CACHED);
    int rc = uv_loop_init(&w->loop);
    if (rc != 0)
        return rc;
    w->loop.data = w;
    uv_async_init(&w->loop, &w->wake, worker_on_wake);
    w->wake.data = w;
    uv_check_init(&w->loop, &w->flush);
    w->flush.data = w;
    uv_check_start(&w->flush, on_flush);
    uv_unref((uv_handle_t *)&w->flush);
    uv_prepare_init(&w->loop, &w->before_poll);
    w->before_poll.data = w;
    uv_prepare_start(&w->before_poll, on_before_poll);
    uv_unref((uv_handle_t *)&w->before_poll);
    if (!is_admin) { /* admin connections are not counted: no pressure */
        uv_timer_init(&w->loop, &w->pressure_timer);
        w->pressure_timer.data = w;
        uv_unref((uv_handle_t *)&w->pressure_timer);
    }
    return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void worker_maybe_finish(struct worker *w)
{
    if (w->is_admin || !worker_drained(w))
        return;
    w->listener_open = false;
    /* No client is left: close everything else on this loop (downstream
     * pools, timers) so it can end. Their memory goes with the process. */
    uv_walk(&w->loop, walk_close, NULL);
}

/* Taken by the main thread around a wake and by a worker once its loop has
 * stopped; never on the request path. */
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;

void worker_wake(struct worker *w)
{
    pthread_mutex_lock(&wake_lock);
    if (!w->loop_gone)
        uv_async_send(&w->wake);
    pthread_mutex_unlock(&wake_lock);
}

void worker_on_wake(uv_async_t *a)
{
    struct worker *w = a->data;
    worker_set_config(w, atomic_load(&w->srv->cfg));
    if (!atomic_load(&w->srv->draining)) {
        /* A reload may have moved the mark, or the admin loop saw the count
         * cross it (lifecycle.c) while this worker accepted nothing. */
        conn_pressure_check(w);
        return;
    }
    if (w->listener_open) {
        uv_close((uv_handle_t *)&w->listener, NULL);
        w->listener_open = false;
    }
    conn_close_all(w, !atomic_load(&w->srv->force_close));
    worker_maybe_finish(w);
}

void *worker_main(void *arg)
{
    struct worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    pthread_mutex_lock(&wake_lock);
    w->loop_gone = true;
    pthread_mutex_unlock(&wake_lock);
    if (w->logbuf.n)
        log_flush(&w->logbuf);
    int rc = uv_loop_close(&w->loop);
    if (rc != 0)
        log_event(LOG_WARN, "worker_exit", "worker %d loop closed with handles open", w->id);
    /* Per-thread caches of other modules (memos, the engines' header
     * cache) are released on the thread that filled them. */
    if (w->srv->worker_exit)
        w->srv->worker_exit(w->ctx);
    worker_release(w);
    return NULL;
}

void worker_release(struct worker *w)
{
    buf_release(&w->logbuf);
    freelist_release(&w->rbufs);
    freelist_release(&w->reqs);
    freelist_release(&w->wreqs);
}
