/*
 * lifecycle.c — process start-up, the admin loop, signals, reload, drain.
 */
#include "net/lifecycle.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/log.h"
#include "http/dispatch.h"
#include "net/conn.h"
#include "net/server.h"
#include "ops/health.h"

static const struct route ADMIN_ROUTES[] = {
    {"/metrics", M_GET | M_HEAD, health_on_metrics, 0},
    {"/healthz", M_GET | M_HEAD, health_on_healthz, 0},
    {"/readyz", M_GET | M_HEAD, health_on_readyz, 0},
};

/* The one server of this process; its parts go to the hooks and workers
 * explicitly. */
static struct server srv;

static const struct config_args *saved_args;
static const struct server_hooks *saved_hooks;
static char *const *saved_envp;
static uv_signal_t sig_hup, sig_term, sig_int;
static uv_timer_t drain_timer, drain_poll, pressure_poll;

static bool key_listener_bound(void)
{
    return atomic_load(&srv.listener_bound);
}
static bool key_config_loaded(void)
{
    return atomic_load(&srv.config_loaded);
}
static bool key_last_reload_ok(void)
{
    return atomic_load(&srv.last_reload_ok);
}
static bool key_not_draining(void)
{
    return !atomic_load(&srv.leaving);
}

static double read_inflight(const struct metric_def *d, const int *ix)
{
    return (double)http_dispatch_inflight();
}

static double read_conns(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&srv.conns);
}

/* The connection pressure level now (net/pressure.h), from the shared count. */
static unsigned pressure_now(void)
{
    const struct og_config *cfg = atomic_load(&srv.cfg);
    return pressure_level(atomic_load(&srv.conns), server_conn_cap(&srv, cfg),
                          cfg->conn_pressure_high);
}

static double read_pressure(const struct metric_def *d, const int *ix)
{
    return (double)pressure_now() / PRESSURE_FULL;
}

static double read_degraded(const struct metric_def *d, const int *ix)
{
    return ready_all() ? 0 : 1;
}

static double read_workers(const struct metric_def *d, const int *ix)
{
    return srv.nworkers;
}

static const struct metric_def GAUGES[] = {
    {"inflight_requests", METRIC_GAUGE, "Requests being served now.", .read = read_inflight},
    {"open_connections", METRIC_GAUGE, "Open client connections.", .read = read_conns},
    {"conn_pressure", METRIC_GAUGE,
     "Connection pressure: 0 up to conn_pressure_high, 1 at max_connections; head and idle "
     "timeouts shorten as it rises.",
     .read = read_pressure},
    {"readyz_degraded", METRIC_GAUGE, "1 when /readyz answers 503.", .read = read_degraded},
    {"workers", METRIC_GAUGE, "Worker threads serving requests.", .read = read_workers},
};

static void wake_workers(void)
{
    for (int i = 0; i < srv.nworkers; i++)
        worker_wake(&srv.workers[i]);
}

/* A worker reads the count at each of its own accepts, and then every
 * CONN_PRESSURE_POLL_MS while it is over the mark; one that accepts nothing
 * while the others fill the slots would keep its long timeouts. So the
 * admin loop samples the count too, wakes every worker when it crosses the
 * mark, and logs when pressure begins and, after a calm second, ends. */
#define PRESSURE_SAMPLE_MS    250
#define PRESSURE_CALM_SAMPLES 4
static unsigned pressure_last; /* admin loop only, as the two below */
static bool pressure_logged;
static int pressure_calm;

static void on_pressure_poll(uv_timer_t *t)
{
    unsigned level = pressure_now();
    if (level > 0 && pressure_last == 0)
        wake_workers();
    pressure_last = level;
    if (level > 0) {
        pressure_calm = 0;
        if (!pressure_logged) {
            pressure_logged = true;
            log_event(LOG_WARN, "conn_pressure",
                      "%ld client connections open: head and idle timeouts shortened, the "
                      "longest waiting closed first to make room",
                      (long)atomic_load(&srv.conns));
        }
    } else if (pressure_logged && ++pressure_calm >= PRESSURE_CALM_SAMPLES) {
        pressure_logged = false;
        log_event(LOG_INFO, "conn_pressure_end", "%ld client connections open: timeouts restored",
                  (long)atomic_load(&srv.conns));
    }
}

/* Descriptors kept for other than client connections: stdio, per worker its
 * loop, wake-up descriptor, listener and downstream pools, and the admin
 * side with a spare to accept-and-refuse with. */
#define FD_RESERVE_FIXED      64
#define FD_RESERVE_PER_WORKER 4

static void warn_fd_room(const struct og_config *cfg)
{
    if (cfg->max_connections > srv.conns_fd_room)
        log_event(LOG_WARN, "fd_limit",
                  "max_connections %lld is more than the descriptor limit leaves room for "
                  "(raise the hard RLIMIT_NOFILE): connections beyond %ld are refused",
                  (long long)cfg->max_connections, srv.conns_fd_room);
}

/* Every client connection is a descriptor, and the soft RLIMIT_NOFILE is
 * often 1024: raise it to the hard limit (what nginx's worker_rlimit_nofile
 * or HAProxy do) and return how many client connections fit beside the
 * reserve. Past that, accept() would fail with EMFILE, clients would be
 * dropped without an answer and downstream reconnects would fail, so
 * conn_on_accept refuses them with 503 as it does over max_connections. */
static long raise_fd_limit(const struct og_config *cfg, int nworkers)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return LONG_MAX; /* unknown: max_connections alone decides */
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY) {
        /* An unlimited hard limit still stops at fs.nr_open. */
        long nr_open = 1024 * 1024;
        FILE *f = fopen("/proc/sys/fs/nr_open", "r");
        if (f) {
            if (fscanf(f, "%ld", &nr_open) != 1)
                nr_open = 1024 * 1024;
            fclose(f);
        }
        want = (rlim_t)nr_open;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit nu = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nu) == 0)
            rl.rlim_cur = want;
        else
            log_event(LOG_WARN, "fd_limit", "cannot raise RLIMIT_NOFILE from %llu to %llu: %s",
                      (unsigned long long)rl.rlim_cur, (unsigned long long)want, strerror(errno));
    }
    long limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)LONG_MAX / 2
                     ? LONG_MAX / 2
                     : (long)rl.rlim_cur;
    long services = (long)(sizeof(cfg->ds_addr) / sizeof(cfg->ds_addr[0]));
    long reserve =
        FD_RESERVE_FIXED + (long)nworkers * (FD_RESERVE_PER_WORKER + services * cfg->ds_pool_size);
    return limit > reserve ? limit - reserve : 1;
}

static void on_hup(uv_signal_t *s, int signum)
{
    struct og_config *nu = malloc(sizeof(*nu));
    char err[CONFIG_ERR_MAX];
    if (nu == NULL) {
        log_event(LOG_ERROR, "reload_failed", "out of memory");
        atomic_store(&srv.last_reload_ok, false);
        return;
    }
    const struct og_config *old = atomic_load(&srv.cfg);
    if (config_build(nu, saved_args, saved_envp, err, sizeof(err)) != 0 ||
        config_reload_check(old, nu, err, sizeof(err)) != 0) {
        log_event(LOG_ERROR, "reload_failed", "%s; keeping the running configuration", err);
        atomic_store(&srv.last_reload_ok, false);
        free(nu);
        return;
    }
    if (saved_hooks && saved_hooks->on_reload && saved_hooks->on_reload(nu, err, sizeof(err))) {
        log_event(LOG_ERROR, "reload_failed", "%s; keeping the running configuration", err);
        atomic_store(&srv.last_reload_ok, false);
        free(nu);
        return;
    }
    log_min_level = log_level_parse(nu->log_level);
    nu->loaded_ns = uv_hrtime();
    /* Old snapshots are never freed: a worker may still hold one, and a
     * reload costs a few hundred bytes. */
    atomic_store(&srv.cfg, nu);
    worker_set_config(&srv.admin, nu);
    atomic_fetch_add(&srv.cfg_gen, 1);
    atomic_store(&srv.last_reload_ok, true);
    warn_fd_room(nu);
    wake_workers();
    log_event(LOG_INFO, "reload", "configuration reloaded from %s",
              nu->config_path[0] ? nu->config_path : "(no file)");
}

static void stop_admin(void)
{
    uv_loop_t *loop = &srv.admin.loop;
    if (srv.admin.listener_open) {
        uv_close((uv_handle_t *)&srv.admin.listener, NULL);
        srv.admin.listener_open = false;
    }
    conn_close_all(&srv.admin, false);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&drain_timer, NULL);
    uv_close((uv_handle_t *)&drain_poll, NULL);
    uv_close((uv_handle_t *)&pressure_poll, NULL);
    uv_close((uv_handle_t *)&srv.admin.wake, NULL);
    uv_close((uv_handle_t *)&srv.admin.flush, NULL);
    (void)loop;
}

static void on_drain_poll(uv_timer_t *t)
{
    if (atomic_load(&srv.conns) == 0 && http_dispatch_inflight() == 0)
        stop_admin();
}

static void on_drain_deadline(uv_timer_t *t)
{
    log_event(LOG_WARN, "drain_timeout", "closing %ld connections still open",
              (long)atomic_load(&srv.conns));
    atomic_store(&srv.force_close, true);
    wake_workers();
}

/* Listeners close, idle connections close, in-flight requests finish. */
static void drain_begin(int signum)
{
    const struct og_config *cfg = atomic_load(&srv.cfg);
    atomic_store(&srv.draining, true);
    log_event(LOG_INFO, "drain", "signal %d: draining, grace %lld ms", signum,
              (long long)cfg->drain_grace_ms);
    wake_workers();
    uv_timer_start(&drain_timer, on_drain_deadline, (uint64_t)cfg->drain_grace_ms, 0);
    uv_timer_start(&drain_poll, on_drain_poll, 0, 20);
}

static void on_drain_delay(uv_timer_t *t)
{
    drain_begin(SIGTERM);
}

/* /readyz turns 503 at once. With drain_delay, the process then goes on
 * serving as before (listeners open, keep-alive kept) for that long, so a
 * balancer checking /readyz stops sending before any connection is closed
 * or refused; the drain proper follows. */
static void on_term(uv_signal_t *s, int signum)
{
    if (atomic_exchange(&srv.leaving, true))
        return; /* already leaving */
    const struct og_config *cfg = atomic_load(&srv.cfg);
    if (cfg->drain_delay_ms == 0) {
        drain_begin(signum);
        return;
    }
    log_event(LOG_INFO, "unready", "signal %d: /readyz answers 503; draining in %lld ms", signum,
              (long long)cfg->drain_delay_ms);
    uv_timer_start(&drain_timer, on_drain_delay, (uint64_t)cfg->drain_delay_ms, 0);
}

int server_run(struct og_config *cfg, const struct config_args *args, char *const *envp,
               const struct route *routes, size_t nroutes, const struct server_hooks *hooks)
{
    saved_args = args;
    saved_envp = envp;
    saved_hooks = hooks;
    signal(SIGPIPE, SIG_IGN);
    log_min_level = log_level_parse(cfg->log_level);

    int n = (int)cfg->workers;
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    atomic_store(&srv.cfg, cfg);
    atomic_store(&srv.config_loaded, true);
    atomic_store(&srv.last_reload_ok, true);
    srv.nworkers = n;
    srv.conns_fd_room = raise_fd_limit(cfg, n);
    warn_fd_room(cfg);
    srv.workers = xcalloc((size_t)n, sizeof(struct worker));
    metrics_init(n + 1);
    router_setup(&srv.router, routes, nroutes);
    /* The built-in admin routes, then the application's. */
    static struct route admin_routes[ROUTER_ROUTES_MAX];
    size_t nadmin = sizeof(ADMIN_ROUTES) / sizeof(ADMIN_ROUTES[0]);
    memcpy(admin_routes, ADMIN_ROUTES, sizeof(ADMIN_ROUTES));
    for (size_t i = 0; hooks && i < hooks->nadmin_routes && nadmin < ROUTER_ROUTES_MAX; i++)
        admin_routes[nadmin++] = hooks->admin_routes[i];
    router_setup(&srv.admin_router, admin_routes, nadmin);
    metrics_register(METRIC_TABLE(GAUGES));
    ready_register("listener_bound", key_listener_bound);
    ready_register("config_loaded", key_config_loaded);
    ready_register("last_reload_ok", key_last_reload_ok);
    ready_register("not_draining", key_not_draining);

    if (hooks)
        srv.worker_exit = hooks->on_worker_exit;
    if (hooks && hooks->on_start && hooks->on_start(&srv) != 0)
        return 1;

    /* Admin loop on this thread. */
    struct worker *adm = &srv.admin;
    if (worker_init(adm, &srv, n, true, &srv.admin_router) != 0)
        return 1;
    if (hooks && hooks->on_worker)
        hooks->on_worker(adm);
    int rc = worker_listen(adm, cfg->admin, false);
    if (rc != 0) {
        fprintf(stderr, "omnigate: cannot listen on admin %s: %s\n", cfg->admin, uv_strerror(rc));
        return 1;
    }
    if ((rc = worker_listen_exclusive_check(cfg->bind)) != 0) {
        fprintf(stderr, "omnigate: cannot listen on %s: %s\n", cfg->bind, uv_strerror(rc));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        struct worker *w = &srv.workers[i];
        if (worker_init(w, &srv, i, false, &srv.router) != 0 ||
            (rc = worker_listen(w, cfg->bind, true)) != 0) {
            fprintf(stderr, "omnigate: cannot listen on %s: %s\n", cfg->bind, uv_strerror(rc));
            return 1;
        }
        if (hooks && hooks->on_worker)
            hooks->on_worker(w);
    }
    /* Signals are caught before any worker runs: a client that has had an
     * answer may send SIGTERM at once, and it must drain, not kill. The
     * admin loop runs on_term only from uv_run() below, once every worker
     * thread exists. */
    uv_loop_t *loop = &adm->loop;
    uv_signal_init(loop, &sig_hup);
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    uv_signal_start(&sig_term, on_term, SIGTERM);
    uv_signal_start(&sig_int, on_term, SIGINT);
    uv_timer_init(loop, &drain_timer);
    uv_timer_init(loop, &drain_poll);
    uv_timer_init(loop, &pressure_poll);
    uv_timer_start(&pressure_poll, on_pressure_poll, PRESSURE_SAMPLE_MS, PRESSURE_SAMPLE_MS);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&srv.workers[i].thread, NULL, worker_main, &srv.workers[i])) {
            fprintf(stderr, "omnigate: cannot start worker threads\n");
            return 1;
        }
    }
    atomic_store(&srv.listener_bound, true);

    log_event(LOG_INFO, "start", "omnigate listening on %s (admin %s), %d workers", cfg->bind,
              cfg->admin, n);

    uv_run(loop, UV_RUN_DEFAULT);

    for (int i = 0; i < n; i++)
        pthread_join(srv.workers[i].thread, NULL);
    if (hooks && hooks->on_stop)
        hooks->on_stop();
    if (adm->logbuf.n)
        log_flush(&adm->logbuf);
    uv_run(loop, UV_RUN_NOWAIT);
    uv_loop_close(loop);
    if (srv.worker_exit)
        srv.worker_exit(adm->ctx);
    worker_release(adm);
    log_event(LOG_INFO, "stop", "drained, exiting");
    return 0;
}
