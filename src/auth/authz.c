/*
 * authz.c — the per-request capability and policy check.
 *
 * Keys and policy live in one immutable snapshot swapped atomically on
 * reload. A retired snapshot is freed (keys wiped) two seconds later by a
 * timer on the admin loop: a check holds a snapshot only for the
 * microseconds of one synchronous call.
 */
#include "auth/authz.h"

#include <llhttp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/caveat.h"
#include "auth/keys.h"
#include "auth/policy.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "http/ctx-t.h"
#include "http/h1.h"
#include "http/response.h"
#include "http/router.h"
#include "ops/health.h"
#include "ops/metrics.h"

#define AUTH_CACHE_ENTRIES 1024
#define INTERNAL_IDS_MAX   16

struct auth_state {
    struct cap_keys *keys;
    struct policy *policy;
    char header[CONFIG_STR_MAX];
    char internal_ids[INTERNAL_IDS_MAX][CAP_KEY_ID_MAX + 1];
    unsigned ninternal;
    uint32_t internal_scopes;
};

static _Atomic(struct auth_state *) current;
#define AUTH_RETIRE_MS   2000
#define AUTH_RETIRED_MAX 16
static struct auth_state *retired[AUTH_RETIRED_MAX]; /* admin thread only */
static unsigned nretired;
static uv_timer_t retire_timer;
static uv_loop_t *admin_loop; /* the retire timer's loop; set at start-up */
static bool retire_timer_ready;
static atomic_bool keys_ok = true, policy_ok = true;
static bool demo_keys; /* the key set is the in-memory demo key */

enum { OUT_ALLOW, OUT_UNAUTH, OUT_FORBIDDEN, OUT_POLICY, OUT__COUNT };

/* Per worker, by worker id: its decision counters (the worker is their only
 * writer, metrics.h) and its verification cache. */
struct authz_shard {
    uint64_t outcomes[3][OUT__COUNT]; /* [class][outcome] */
    struct cap_cache *cache;          /* made on first use */
};
static struct authz_shard *shards; /* read-only pointer after start-up */
static int nshards;

static void state_free(struct auth_state *s)
{
    if (s == NULL)
        return;
    cap_keys_free(s->keys); /* wipes the secrets */
    policy_free(s->policy);
    free(s);
}

static const char *class_names[3]; /* policy_class_name()s; set at start-up */
static const char *const OUTCOMES[OUT__COUNT] = {"allow", "unauth", "forbidden", "policy_denied"};
static const struct metric_label L_CLASS = {"class", class_names, 3, NULL};
static const struct metric_label L_OUTCOME = {"outcome", OUTCOMES, OUT__COUNT, NULL};
static const struct metric_def METRICS[] = {
    {"auth_requests_total", METRIC_COUNTER,
     "Capability and policy decisions by request class and outcome.",
     .labels = {&L_CLASS, &L_OUTCOME}, .off = offsetof(struct authz_shard, outcomes)},
};

static bool key_keys_ok(void)
{
    return atomic_load(&keys_ok);
}

static bool key_policy_ok(void)
{
    return atomic_load(&policy_ok);
}

/* Comma list → ids / scope bits. */
static int parse_internal(struct auth_state *s, const struct og_config *cfg, char *err,
                          size_t errlen)
{
    const char *p = cfg->internal_key_ids;
    while (*p) {
        size_t n = strcspn(p, ",");
        while (n && p[0] == ' ')
            p++, n--;
        if (n) {
            if (s->ninternal >= INTERNAL_IDS_MAX || !cap_keys_id_valid(p, n)) {
                snprintf(err, errlen, "auth: internal_key_ids: bad or too many key ids");
                return -1;
            }
            memcpy(s->internal_ids[s->ninternal], p, n);
            s->internal_ids[s->ninternal++][n] = '\0';
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (cfg->internal_scopes[0] &&
        cap_scope_parse(cfg->internal_scopes, strlen(cfg->internal_scopes), &s->internal_scopes) !=
            0) {
        snprintf(err, errlen, "auth: internal_scopes: unknown scope in \"%s\"",
                 cfg->internal_scopes);
        return -1;
    }
    return 0;
}

static struct auth_state *state_build(const struct og_config *cfg, bool demo, char *err,
                                      size_t errlen)
{
    struct auth_state *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->keys = cap_keys_new()) == NULL) {
        snprintf(err, errlen, "auth: out of memory");
        free(s);
        return NULL;
    }
    snprintf(s->header, sizeof(s->header), "%s", cfg->auth_header);
    if (cfg->root_keys_file[0]) {
        if (cap_keys_load(s->keys, cfg->root_keys_file, err, errlen) != 0) {
            atomic_store(&keys_ok, false);
            goto fail;
        }
    } else if (demo) {
        if (cap_keys_add_random(s->keys, "dev", NULL) != 0) {
            snprintf(err, errlen, "auth: cannot make the demo key");
            goto fail;
        }
    }
    if (cfg->policy_file[0]) {
        s->policy = policy_load(cfg->policy_file, err, errlen);
        if (s->policy == NULL) {
            atomic_store(&policy_ok, false);
            goto fail;
        }
    } else if ((s->policy = policy_default()) == NULL) {
        snprintf(err, errlen, "auth: out of memory");
        goto fail;
    }
    if (parse_internal(s, cfg, err, errlen) != 0)
        goto fail;
    return s;
fail:
    state_free(s);
    return NULL;
}

int authz_start(const struct og_config *cfg, uv_loop_t *loop, int nworkers, bool demo,
                char *dev_token, size_t cap)
{
    char err[CONFIG_ERR_MAX];
    admin_loop = loop;
    nshards = nworkers;
    shards = xcalloc((size_t)nworkers, sizeof(*shards));
    struct auth_state *s = state_build(cfg, demo, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "omnigate: %s\n", err);
        return -1;
    }
    demo_keys = demo && !cfg->root_keys_file[0];
    if (dev_token && cap) {
        dev_token[0] = '\0';
        if (demo_keys) {
            struct cap_mint m = {.key_id = "dev",
                                 .tenant = "demo",
                                 .scopes = CAP_SCOPE_ALL,
                                 .expires = (int64_t)time(NULL) + 24 * 3600,
                                 .version = 2};
            if (cap_mint(s->keys, &m, dev_token, cap) < 0)
                dev_token[0] = '\0';
        }
    }
    atomic_store(&current, s);
    for (int c = 0; c < 3; c++)
        class_names[c] = policy_class_name((enum policy_class)c);
    metrics_register(METRIC_TABLE(METRICS, .shards = shards, .shard_bytes = sizeof(*shards),
                                  .nshards = nshards));
    ready_register("keys_ok", key_keys_ok);
    ready_register("policy_ok", key_policy_ok);
    return 0;
}

/* Free the n oldest retired snapshots. */
static void free_retired_upto(unsigned n)
{
    if (n > nretired)
        n = nretired;
    for (unsigned i = 0; i < n; i++)
        state_free(retired[i]);
    memmove(retired, retired + n, (nretired - n) * sizeof(retired[0]));
    nretired -= n;
}

static void on_retire(uv_timer_t *t)
{
    free_retired_upto(nretired);
}

int authz_reload(const struct og_config *nu, char *err, size_t errlen)
{
    struct auth_state *s = state_build(nu, demo_keys, err, errlen);
    if (s == NULL)
        return -1;
    if (demo_keys && !nu->root_keys_file[0]) {
        /* Keep the running demo key: a reload must not invalidate the dev token. */
        cap_keys_free(s->keys);
        s->keys = NULL;
        struct auth_state *cur = atomic_load(&current);
        struct cap_keys *k = cap_keys_new();
        if (k == NULL) {
            state_free(s);
            snprintf(err, errlen, "auth: out of memory");
            return -1;
        }
        memcpy(k, cur->keys, sizeof(*k)); /* same key material, same generation */
        s->keys = k;
    }
    atomic_store(&keys_ok, true);
    atomic_store(&policy_ok, true);
    struct auth_state *old = atomic_exchange(&current, s);
    if (nretired == AUTH_RETIRED_MAX) /* a reload storm: free the oldest now */
        free_retired_upto(1);
    retired[nretired++] = old;
    if (!retire_timer_ready) {
        uv_timer_init(admin_loop, &retire_timer);
        uv_unref((uv_handle_t *)&retire_timer);
        retire_timer_ready = true;
    }
    uv_timer_start(&retire_timer, on_retire, AUTH_RETIRE_MS, 0);
    return 0;
}

void authz_stop(void)
{
    free_retired_upto(nretired);
    if (retire_timer_ready && !uv_is_closing((uv_handle_t *)&retire_timer))
        uv_close((uv_handle_t *)&retire_timer, NULL);
    state_free(atomic_exchange(&current, NULL));
}

/* ---- per request -------------------------------------------------------- */

static void deny(struct http_req *req, enum og_err e, const char *reason, const char *www)
{
    if (www && http_add_header(req, "WWW-Authenticate", www, strlen(www)) != 0)
        req->close_after = true;
    http_respond_error(req, e, reason);
}

static void audit(struct http_req *req, const struct policy_decision *d)
{
    struct buf b = {0};
    struct jw j;
    log_begin(&j, &b, LOG_WARN, "policy_denied");
    jw_key(&j, "rule");
    jw_str(&j, d->rule_id);
    jw_key(&j, "route");
    jw_str(&j, req->route->tmpl);
    jw_key(&j, "method");
    jw_str(&j, llhttp_method_name((llhttp_method_t)req->method));
    jw_key(&j, "tenant");
    jw_str(&j, req->tenant);
    jw_key(&j, "class");
    jw_str(&j, req->klass ? req->klass : "");
    jw_key(&j, "corr_id");
    jw_str(&j, req->corr_id);
    jw_key(&j, "reason");
    jw_str(&j, d->reason);
    log_end(&j);
    buf_release(&b);
}

static struct authz_shard *shard_of(const struct http_req *req)
{
    int id = req->ctx->id;
    return &shards[id < nshards ? id : nshards - 1];
}

/* One decision of class k with outcome o, on the request's worker. */
static void count(struct authz_shard *sh, int k, int o)
{
    SHARD_ADD(sh->outcomes[k][o], 1);
}

bool authz_check(struct http_req *req)
{
    struct auth_state *s = atomic_load(&current);
    struct authz_shard *sh = shard_of(req);
    const char *method = llhttp_method_name((llhttp_method_t)req->method);
    uint32_t need = req->route->flags >> 8;
    struct policy_input in = {.method = method,
                              .path = req->path.p,
                              .path_len = req->path.n,
                              .route_tmpl = req->route->tmpl,
                              .tenant = NULL,
                              .scopes = 0,
                              .klass = POLICY_ANON};
    struct policy_decision d;
    const struct slice *h = h1_header(req, s->header);

    if (h == NULL) {
        /* Anonymous use only where a rule explicitly opens it. */
        policy_eval(s->policy, &in, &d);
        if (d.allow && d.explicit_rule) {
            req->klass = "anon";
            count(sh, POLICY_ANON, OUT_ALLOW);
            return true;
        }
        count(sh, POLICY_ANON, OUT_UNAUTH);
        deny(req, OG_E_UNAUTH, "a capability is required (Authorization: Bearer <token>)",
             "Bearer realm=\"omnigate\"");
        return false;
    }
    struct slice v = *h;
    if (v.n < 7 || strncasecmp(v.p, "Bearer ", 7) != 0) {
        count(sh, POLICY_ANON, OUT_UNAUTH);
        deny(req, OG_E_UNAUTH, "expected `Bearer <token>`",
             "Bearer realm=\"omnigate\", error=\"invalid_request\"");
        return false;
    }
    v.p += 7, v.n -= 7;
    while (v.n && v.p[0] == ' ')
        v.p++, v.n--;

    struct cap_request cr = {.method = method,
                             .method_len = strlen(method),
                             .path = req->path.p,
                             .path_len = req->path.n,
                             .now = (int64_t)time(NULL)};
    struct cap_result res;
    if (sh->cache == NULL)
        sh->cache = cap_cache_new(AUTH_CACHE_ENTRIES);
    struct cap_cache *cache = sh->cache;
    int rc = cache ? cap_cache_verify(cache, s->keys, v.p, v.n, &cr, &res)
                   : cap_verify(s->keys, v.p, v.n, &cr, &res);
    if (rc == CAP_OK && !(res.scopes & need))
        rc = CAP_E_SCOPE;
    if (rc != CAP_OK) {
        char reason[96];
        snprintf(reason, sizeof(reason), "capability refused: %s", cap_status_reason(rc));
        if (cap_status_http(rc) == 401) {
            count(sh, POLICY_AUTHED, OUT_UNAUTH);
            deny(req, OG_E_UNAUTH, reason, "Bearer realm=\"omnigate\", error=\"invalid_token\"");
        } else if (cap_status_http(rc) == 403) {
            count(sh, POLICY_AUTHED, OUT_FORBIDDEN);
            deny(req, OG_E_FORBIDDEN, reason, NULL);
        } else {
            deny(req, OG_E_INTERNAL, reason, NULL);
        }
        return false;
    }
    memcpy(req->tenant, res.tenant, res.tenant_len < 64 ? res.tenant_len : 64);
    req->tenant[res.tenant_len < 64 ? res.tenant_len : 64] = '\0';
    enum policy_class k = POLICY_AUTHED;
    if (res.scopes & s->internal_scopes)
        k = POLICY_INTERNAL;
    for (unsigned i = 0; i < s->ninternal && k != POLICY_INTERNAL; i++)
        if (strcmp(s->internal_ids[i], res.key_id) == 0)
            k = POLICY_INTERNAL;
    req->klass = policy_class_name(k);
    in.tenant = req->tenant;
    in.scopes = res.scopes;
    in.klass = k;
    policy_eval(s->policy, &in, &d);
    if (!d.allow) {
        count(sh, k, OUT_POLICY);
        audit(req, &d);
        deny(req, OG_E_FORBIDDEN, d.reason, NULL);
        return false;
    }
    count(sh, k, OUT_ALLOW);
    return true;
}
