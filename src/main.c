/*
 * main.c — arguments, configuration, subcommands; then the server.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cas/cas.h"
#include "config/config.h"
#include "http/ctx.h"
#include "http/dispatch.h"
#include "net/lifecycle.h"
#include "net/server.h"
#include "media/gcache.h"
#include "media/objects.h"
#include "ops/health.h"
#include "view/memo.h"
#include "view/routes.h"
#include "admit/admit.h"
#include "auth/authz.h"
#include "auth/caveat.h"
#include "demo/demo.h"
#include "ds/ds.h"
#include "engines/proto/proto.h"
#include "mailbox/routes.h"
#include "media/integrity.h"
#include "oap/oap-t.h"
#include "tools/tools_auth.h"
#include "tools/tools_oap.h"
#include "tools/tools_seed.h"
#include "version.h"

extern char **environ;

static const struct route ROUTES[] = {
    {"/healthz", M_GET | M_HEAD, health_on_healthz, 0},
    {"/readyz", M_GET | M_HEAD, health_on_readyz, 0},
    {"/v1/view/{name}", M_GET | M_HEAD, view_on_view, ROUTE_NEEDS(CAP_SCOPE_VIEW_READ)},
    {"/v1/index/{name}", M_GET | M_HEAD, view_on_index, ROUTE_NEEDS(CAP_SCOPE_INDEX_READ)},
    {"/v1/search", M_GET | M_HEAD, view_on_search, ROUTE_NEEDS(CAP_SCOPE_SEARCH_READ)},
    {"/v1/feed/{channel}", M_GET | M_HEAD, view_on_feed, ROUTE_NEEDS(CAP_SCOPE_FEED_READ)},
    {"/v1/o/{addr}", M_GET | M_HEAD, media_on_object, ROUTE_NEEDS(CAP_SCOPE_OBJECT_READ)},
    {"/v1/o/{addr}/outboard", M_GET | M_HEAD, media_on_outboard,
     ROUTE_NEEDS(CAP_SCOPE_OBJECT_READ)},
    {"/v1/o", M_PUT, media_on_put, ROUTE_NEEDS(CAP_SCOPE_OBJECT_WRITE)},
    {"/v1/media/{name}", M_GET | M_HEAD, media_on_media, ROUTE_NEEDS(CAP_SCOPE_MEDIA_READ)},
    {"/v1/mailbox/{channel}", M_POST, mailbox_on_send, ROUTE_NEEDS(CAP_SCOPE_MAILBOX_WRITE)},
    {"/v1/mailbox/{channel}", M_GET, mailbox_on_recv, ROUTE_NEEDS(CAP_SCOPE_MAILBOX_READ)},
    {"/v1/mailbox/{channel}/ack", M_POST, mailbox_on_ack, ROUTE_NEEDS(CAP_SCOPE_MAILBOX_WRITE)},
    {"/v1/mailbox/{channel}/nack", M_POST, mailbox_on_nack, ROUTE_NEEDS(CAP_SCOPE_MAILBOX_WRITE)},
    {"/v1/mailbox/{channel}/lease", M_POST, mailbox_on_lease, ROUTE_NEEDS(CAP_SCOPE_MAILBOX_WRITE)},
    {"/v1/mailbox/{channel}/dead", M_GET, mailbox_on_dead, ROUTE_NEEDS(CAP_SCOPE_MAILBOX_READ)},
    {"/v1/mailbox/{channel}/dead/redrive", M_POST, mailbox_on_redrive,
     ROUTE_NEEDS(CAP_SCOPE_MAILBOX_WRITE)},
};

static const struct route ADMIN_ROUTES[] = {
    {"/admin/degraded", M_GET | M_HEAD | M_PUT | M_DELETE, admit_on_degraded, 0},
    {"/admin/mailbox/{channel}", M_GET | M_HEAD, mailbox_on_stats, 0},
};

static bool opt_demo;
static char dev_token[1024];

/* --demo in micronode: load the demo data straight into the engines. */
static int demo_emit_local(void *arg, const struct proto_op *op, const uint8_t *body,
                           size_t body_len)
{
    struct engines *e = arg;
    struct proto_resp rs;
    uint16_t app = op->app;
    if ((app == OAP_APP_STORAGE && !e->storage) || (app == OAP_APP_INDEX && !e->index) ||
        (app == OAP_APP_MAILBOX && !e->mailbox))
        return 0; /* that service is remote: `omnigate seed` fills it */
    int code = proto_exec(e, op, body, body_len, (uint64_t)time(NULL) * 1000, &rs);
    if (code >= 400)
        fprintf(stderr, "omnigate: demo data: %s (app %u) answered %d %.*s\n",
                proto_kind_name(op->kind), app, code, (int)rs.hdr_len, rs.hdr);
    proto_resp_release(&rs);
    return code >= 400 ? -1 : 0;
}

static void print_banner(const struct og_config *cfg);

/* Handler contexts, one per worker and one for the admin listener (index
 * nworkers); they live as long as the process. */
static struct http_ctx *ctxs;

static int on_start(struct server *srv)
{
    const struct og_config *cfg = atomic_load(&srv->cfg);
    int nshards = srv->nworkers + 1; /* workers and the admin loop */
    ctxs = xcalloc((size_t)nshards, sizeof(*ctxs));
    integrity_init();
    gcache_init((uint64_t)cfg->media_range_cache);
    memo_init();
    if (ds_start(cfg, nshards) != 0)
        return -1;
    if (authz_start(cfg, &srv->admin.loop, nshards, opt_demo, dev_token, sizeof(dev_token)) != 0)
        return -1;
    http_dispatch_set_gate(authz_check);
    if (admit_start(cfg, srv->nworkers) != 0 || mailbox_routes_start(cfg, srv->nworkers) != 0)
        return -1;
    http_dispatch_set_admission(&admit_hooks);
    if (opt_demo && demo_generate(demo_emit_local, ds_local_engines()) != 0)
        return -1;
    print_banner(cfg);
    return 0;
}

static bool worker_is_drained(void *w)
{
    return worker_drained(w);
}

static void on_worker(struct worker *w)
{
    struct http_ctx *ctx = &ctxs[w->id];
    http_ctx_init(ctx, w->id, w->cfg, w->m, w->router, &w->logbuf);
    ctx->is_admin = w->is_admin;
    w->ctx = ctx;
    /* ds/ reads the config through the context net/ keeps current. */
    /* The admin loop has a downstream handle too: operators' channel stats. */
    ctx->ds = ds_worker_init(w->id, &w->loop, &ctx->cfg, worker_is_drained, w);
    if (w->is_admin) {
        admit_admin_init(&w->loop);
    } else {
        ctx->admit = admit_worker_init(&w->loop, w->id);
        mailbox_routes_worker(&w->loop, w->id);
    }
}

static void on_worker_exit(struct http_ctx *ctx)
{
    http_ctx_release(ctx);
    if (ctx->is_admin)
        return;
    memo_thread_release();
    mailbox_routes_worker_exit();
}

static void on_stop(void)
{
    ds_stop();
    authz_stop();
    admit_stop();
}

static const struct server_hooks HOOKS = {
    .on_start = on_start,
    .on_worker = on_worker,
    .on_stop = on_stop,
    .on_worker_exit = on_worker_exit,
    .on_reload = authz_reload,
    .admin_routes = ADMIN_ROUTES,
    .nadmin_routes = sizeof(ADMIN_ROUTES) / sizeof(ADMIN_ROUTES[0]),
};

struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct subcommand SUBCOMMANDS[] = {
    {"hash", tool_hash_main, "print the b3: address of each FILE (- for stdin)"},
    {"oap-dump", tool_oap_dump_main, "decode OAP/1 frames from stdin as JSON lines"},
    {"verify-range", tool_verify_range_main,
     "check a downloaded byte range against an address with its outboard"},
    {"mint", tool_mint_main, "issue a capability token from a root key file"},
    {"verify", tool_verify_main, "verify a capability token and print its caveats"},
    {"seed", tool_seed_main, "load the demo data set into remote services"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: omnigate [--config FILE] [--bind HOST:PORT] [--admin HOST:PORT]\n"
               "                [--workers N] [--<limit> VALUE]... [--demo] [--check-config]\n"
               "       omnigate --help | --version\n"
               "       omnigate <subcommand> [args]\n\n"
               "Subcommands:\n");
    for (const struct subcommand *s = SUBCOMMANDS; s->name; s++)
        fprintf(f, "  %-10s %s\n", s->name, s->help);
    fprintf(f, "\nSettings (flag, [section] key = default, environment):\n");
    config_print_help(f);
}

struct opts {
    struct config_args args;
    bool check_only, demo;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--version") == 0) {
            printf("omnigate %s\n", OMNIGATE_VERSION);
            exit(0);
        }
        if (strcmp(a, "--check-config") == 0) {
            o->check_only = true;
            continue;
        }
        if (strcmp(a, "--demo") == 0) {
            o->demo = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "omnigate: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        const char *name = a + 2, *val = NULL;
        char key[64];
        const char *eq = strchr(name, '=');
        size_t kl = eq ? (size_t)(eq - name) : strlen(name);
        if (kl >= sizeof(key)) {
            fprintf(stderr, "omnigate: unknown flag '%s' (see --help)\n", a);
            return -1;
        }
        memcpy(key, name, kl);
        key[kl] = '\0';
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(stderr, "omnigate: flag --%s needs a value\n", key);
            return -1;
        }
        if (strcmp(key, "config") == 0) {
            o->args.config_path = val;
            continue;
        }
        /* Short spellings documented by the CLI. */
        const char *lookup = strcmp(key, "root-keys") == 0 ? "root-keys-file"
                             : strcmp(key, "policy") == 0  ? "policy-file"
                                                           : key;
        const struct config_row *row = config_row_find(lookup);
        if (row == NULL || strchr(key, '_') != NULL) {
            fprintf(stderr, "omnigate: unknown flag '--%s' (see --help)\n", key);
            return -1;
        }
        if (o->args.n >= sizeof(o->args.set) / sizeof(o->args.set[0])) {
            fprintf(stderr, "omnigate: too many flags\n");
            return -1;
        }
        o->args.set[o->args.n].row = row;
        o->args.set[o->args.n].value = val;
        o->args.n++;
    }
    return 0;
}

static void print_banner(const struct og_config *cfg)
{
    bool micro = ds_is_micronode();
    printf("omnigate %s (%s%s)\n"
           "  service  http://%s\n"
           "  admin    http://%s  (/metrics, /healthz, /readyz)\n",
           OMNIGATE_VERSION, micro ? "micronode" : "macronode", opt_demo ? ", demo data" : "",
           cfg->bind, cfg->admin);
    /* Every rate in force, so a demo or a benchmark says what it ran with. */
    printf("  limits   ");
    if (cfg->rate_milli)
        printf("%g req/s per instance (burst %lld), ", (double)cfg->rate_milli / 1000,
               (long long)cfg->rate_burst);
    else
        printf("no instance rate limit, ");
    if (cfg->tenant_rate_milli)
        printf("%g req/s per tenant (burst %lld), ", (double)cfg->tenant_rate_milli / 1000,
               (long long)cfg->tenant_burst);
    else
        printf("no limit per tenant, ");
    printf("%lld in flight\n", (long long)cfg->inflight_max);
    if (dev_token[0])
        printf("\nDev capability (tenant demo, every scope, 24 h; in memory only):\n"
               "  export TOKEN='%s'\n",
               dev_token);
    printf("\nTry:\n"
           "  curl -s http://%s/healthz\n"
           "  curl -s http://%s/metrics | head -30\n",
           cfg->bind, cfg->admin);
    if (opt_demo)
        printf("  curl -s -H \"Authorization: Bearer $TOKEN\" http://%s/v1/view/user-007\n"
               "  curl -s -H \"Authorization: Bearer $TOKEN\" "
               "'http://%s/v1/search?q=article-01&limit=5'\n"
               "  curl -s -H \"Authorization: Bearer $TOKEN\" 'http://%s/v1/feed/news?limit=3'\n"
               "  curl -s -H \"Authorization: Bearer $TOKEN\" -r 0-99 http://%s/v1/media/clip-1 | "
               "wc -c\n",
               cfg->bind, cfg->bind, cfg->bind, cfg->bind);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc > 1 && argv[1][0] != '-') {
        for (const struct subcommand *s = SUBCOMMANDS; s->name; s++)
            if (strcmp(argv[1], s->name) == 0)
                return s->fn(argc - 1, argv + 1);
        fprintf(stderr, "omnigate: unknown subcommand '%s' (see --help)\n", argv[1]);
        return 2;
    }
    struct opts o = {0};
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    struct og_config *cfg = xmalloc(sizeof(*cfg));
    char err[CONFIG_ERR_MAX];
    if (config_build(cfg, &o.args, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "omnigate: %s\n", err);
        free(cfg);
        return 2;
    }
    if (o.check_only) {
        printf("omnigate: configuration ok\n");
        free(cfg);
        return 0;
    }
    cas_init(); /* BLAKE3's CPU-feature cache must be filled before threads */
    opt_demo = o.demo;
    return server_run(cfg, &o.args, environ, ROUTES, sizeof(ROUTES) / sizeof(ROUTES[0]), &HOOKS);
}
