/*
 * lifecycle.h — start, run, reload and drain the whole server.
 *
 * server_run() starts the workers, serves the admin listener on the calling
 * thread and handles signals there: SIGHUP reloads the configuration (a bad
 * file keeps the old one, logs why and clears last_reload_ok), SIGTERM and
 * SIGINT drain (stop accepting, let inflight requests finish within
 * drain_grace, then exit).
 */
#ifndef NET_LIFECYCLE_H
#define NET_LIFECYCLE_H

#include "config/config.h"
#include "http/router.h"

struct server;
struct worker;

/* Hooks modules run at start-up (after config, before workers) and per worker. */
struct server_hooks {
    /* The server is configured (srv->cfg, srv->nworkers; srv->admin's loop is
     * not running yet): 0, or -1 to abort start-up. */
    int (*on_start)(struct server *srv);
    /* Each worker, the admin one included (w->is_admin), before its loop
     * runs: must set w->ctx, the application's handler context. */
    void (*on_worker)(struct worker *w);
    void (*on_stop)(void);
    /* On each loop's thread after its loop ended, the admin loop's included
     * (ctx->is_admin): thread-local caches and what ctx keeps. */
    void (*on_worker_exit)(struct http_ctx *ctx);
    /* SIGHUP, admin thread, with the new configuration already validated:
     * 0 to accept, -1 (err set) to keep the running state. */
    int (*on_reload)(const struct og_config *nu, char *err, size_t errlen);
    /* Routes the admin listener serves besides /metrics, /healthz, /readyz. */
    const struct route *admin_routes;
    size_t nadmin_routes;
};

/* Takes ownership of cfg (heap allocated). args and envp are kept for reloads.
 * Returns the process exit code. */
int server_run(struct og_config *cfg, const struct config_args *args, char *const *envp,
               const struct route *routes, size_t nroutes, const struct server_hooks *hooks);

#endif
