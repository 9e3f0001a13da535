/*
 * admit.c — rate buckets, fair queues and degraded mode (admit.h).
 */
#include "admit/admit.h"

#include <inttypes.h>
#include <llhttp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit/gcra.h"
#include "admit/tenants.h"
#include "config/config.h"
#include "core/cidr.h"
#include "core/drr.h"
#include "core/jw.h"
#include "core/log.h"
#include "http/ctx-t.h"
#include "http/response.h"
#include "ops/health.h"
#include "ops/metrics.h"

#define NCLASS       DRR_CLASSES
#define WAIT_LE      10
#define EVAL_MS      25 /* degraded-mode evaluation period */
#define POLL_MS      1  /* a worker with waiters looks for slots freed elsewhere */
#define RETRY_MAX_S  60
#define SCOPE_INST   0
#define SCOPE_TENANT 1

static const char *const CLASS_NAMES[NCLASS] = {"anon", "authed", "internal"};
static const char *const SCOPES[2] = {"instance", "tenant"};
static const double WAIT_BOUNDS[WAIT_LE] = {0.001, 0.005, 0.01, 0.025, 0.05,
                                            0.1,   0.25,  0.5,  1,     2.5};

/* Causes of degraded mode (bits), in the order they are reported. */
enum { CAUSE_DOWNSTREAM = 1, CAUSE_RELOAD = 2, CAUSE_QUEUE = 4, CAUSE_OPERATOR = 8 };
static const char *const CAUSE_NAMES[4] = {"downstream_health", "last_reload", "queue_headroom",
                                           "operator"};

/* One worker's metrics; it is the only writer (SHARD_ADD). The gauges go up
 * and down on the same worker, so no shard is ever below zero. */
struct admit_shard {
    uint64_t inflight[NCLASS];
    uint64_t depth[NCLASS];
    uint64_t admitted[NCLASS];
    uint64_t wait_bucket[NCLASS][WAIT_LE + 1];
    uint64_t wait_sum_us[NCLASS];
    uint64_t limited[2];
};

struct admit_worker {
    uv_timer_t timer; /* queue deadlines, grants, polls */
    struct drr q;
    struct admit_shard *s;
    const struct og_config *cfg; /* the snapshot the values below come from */
    struct gcra_rate inst, tenant;
    /* Requests this worker finished in its last whole second: the drain
     * rate behind a busy answer's Retry-After. */
    uint64_t win_start_ms, win_done, drain_per_s;
};

static struct {
    atomic_long slots;   /* held, all workers */
    atomic_long waiting; /* queued, all workers */
    struct gcra instance;
    struct tenants tenants;
    /* The intervals the buckets were last clamped for (refresh). */
    _Atomic uint64_t inst_interval, tenant_interval;
    struct cidr_set proxies; /* trusted_proxies: read-only after admit_start */
    struct admit_worker *workers;
    struct admit_shard *shards;
    int nworkers;
    _Atomic(const struct og_config *) cfg; /* newest snapshot a worker has seen */
    atomic_bool operator_on;
    atomic_bool degraded;
    atomic_int causes;
    uv_timer_t eval;
    bool eval_ready;
    uint64_t clear_since_ms; /* admin thread */
} A;

/* ---- helpers ------------------------------------------------------------ */

static struct admit_worker *worker_of(const struct http_req *r)
{
    return r->ctx->admit;
}

/* A new snapshot (start-up or a reload). A changed rate is applied in
 * place: buckets keep their state, but one left in debt by a slower rate is
 * brought back to "empty at the reload" under the new one (gcra_clamp), so
 * it has refilled at the new rate since, and a bucket turned on starts
 * full; the first worker to see a new rate does it, for all, at its first
 * request after the reload. */
static void refresh(struct admit_worker *aw, const struct og_config *cfg)
{
    if (aw->cfg == cfg)
        return;
    aw->cfg = cfg;
    aw->inst = gcra_rate_make(cfg->rate_milli, cfg->rate_burst);
    aw->tenant = gcra_rate_make(cfg->tenant_rate_milli, cfg->tenant_burst);
    uint64_t now = cfg->loaded_ns ? cfg->loaded_ns : uv_hrtime();
    /* A bucket that was off starts full: clamped as of time 0. */
    uint64_t was = atomic_exchange(&A.inst_interval, aw->inst.interval_ns);
    if (was != aw->inst.interval_ns)
        gcra_clamp(&A.instance, &aw->inst, was ? now : 0);
    was = atomic_exchange(&A.tenant_interval, aw->tenant.interval_ns);
    if (was != aw->tenant.interval_ns)
        tenants_clamp(&A.tenants, &aw->tenant, was ? now : 0);
    unsigned w[NCLASS];
    for (int c = 0; c < NCLASS; c++)
        w[c] = (unsigned)cfg->fq_weight[c];
    drr_set_weights(&aw->q, w);
    atomic_store(&A.cfg, cfg);
}

static int class_of(const struct http_req *r)
{
    if (r->klass == NULL)
        return 0;
    if (strcmp(r->klass, "internal") == 0)
        return 2;
    return strcmp(r->klass, "authed") == 0 ? 1 : 0;
}

static bool is_write(const struct http_req *r)
{
    return r->method != HTTP_GET && r->method != HTTP_HEAD && r->method != HTTP_OPTIONS;
}

static bool acquire(long cap)
{
    long n = atomic_load(&A.slots);
    while (n < cap)
        if (atomic_compare_exchange_weak(&A.slots, &n, n + 1))
            return true;
    return false;
}

static void take(struct admit_worker *aw, struct http_req *r)
{
    r->admitted = true;
    SHARD_ADD(aw->s->inflight[r->admit_class], 1);
    SHARD_ADD(aw->s->admitted[r->admit_class], 1);
}

static void on_timer(uv_timer_t *t);

static void schedule(struct admit_worker *aw, uint64_t ms)
{
    uv_timer_start(&aw->timer, on_timer, ms, 0);
}

/* ---- refusals ----------------------------------------------------------- */

/* 429 quota, with the draft-ietf-httpapi-ratelimit-headers fields: the
 * policy (quota q over a window w, the time a full burst takes to refill)
 * and the state (r tokens left, t seconds until one is back). */
static void refuse_rate(struct http_req *r, struct admit_worker *aw, int scope,
                        const struct gcra_rate *rate, const struct gcra_verdict *v)
{
    uint64_t wait_s = gcra_wait_s(v->wait_ns);
    uint64_t window_s = gcra_wait_s(rate->interval_ns * rate->burst);
    char pol[96], now[64];
    int np = snprintf(pol, sizeof(pol), "\"%s\";q=%" PRIu64 ";w=%" PRIu64, SCOPES[scope],
                      rate->burst, window_s);
    int nn = snprintf(now, sizeof(now), "\"%s\";r=0;t=%" PRIu64, SCOPES[scope], wait_s);
    if (http_add_header(r, "RateLimit-Policy", pol, (size_t)np) != 0 ||
        http_add_header(r, "RateLimit", now, (size_t)nn) != 0)
        r->close_after = true;
    r->retry_after_s = (uint32_t)(wait_s < UINT32_MAX ? wait_s : UINT32_MAX);
    SHARD_ADD(aw->s->limited[scope], 1);
    http_respond_error(r, OG_E_QUOTA,
                       scope == SCOPE_INST ? "instance rate limit" : "tenant rate limit");
}

/* 503 busy; Retry-After is the time this worker's queue takes to drain at
 * the rate it drained over the last second. */
static void refuse_busy(struct http_req *r, struct admit_worker *aw, const char *why)
{
    uint64_t rate = aw->drain_per_s;
    uint64_t s = rate ? (aw->q.total + rate) / rate : 0; /* ceil((depth + 1) / rate) */
    /* No drain measured yet (the first second): the configured retry_after. */
    r->retry_after_s = (uint32_t)(s == 0 ? 0 : s > RETRY_MAX_S ? RETRY_MAX_S : s);
    http_respond_error(r, OG_E_BUSY, why);
}

/* ---- the hooks ---------------------------------------------------------- */

static bool before_gate(struct http_req *r)
{
    struct admit_worker *aw = worker_of(r);
    refresh(aw, r->ctx->cfg);
    if (gcra_off(&aw->inst))
        return true;
    struct gcra_verdict v = gcra_take(&A.instance, &aw->inst, uv_hrtime());
    if (v.ok)
        return true;
    refuse_rate(r, aw, SCOPE_INST, &aw->inst, &v);
    return false;
}

static void leave_queue(struct admit_worker *aw, struct http_req *r)
{
    drr_remove(&aw->q, &r->wait);
    atomic_fetch_sub(&A.waiting, 1);
    SHARD_ADD(aw->s->depth[r->admit_class], (uint64_t)-1);
}

/* The client went away (or the request timed out) while queued. */
static void on_cancel_wait(struct http_req *r)
{
    leave_queue(worker_of(r), r);
}

/* The key of an anonymous request's bucket: its client address, in a key
 * space of its own. Behind a trusted proxy (trusted_proxies) the client is
 * the address that proxy appended to the last X-Forwarded-For line; from
 * anyone else the header is ignored, so a client cannot pick its bucket. */
static uint64_t anon_key(const struct http_req *r)
{
    const uint8_t *ip = r->conn->peer;
    size_t len = r->conn->peer_len;
    uint8_t fwd[16];

    if (A.proxies.n && cidr_set_match(&A.proxies, ip, len)) {
        const struct slice *xff = NULL;
        for (unsigned i = 0; i < r->nhdrs; i++) {
            const struct slice *h = &r->hdrs[i].name;
            if (h->n == 15 && strncasecmp(h->p, "x-forwarded-for", 15) == 0)
                xff = &r->hdrs[i].value;
        }
        int k = xff ? cidr_forwarded_for(xff->p, xff->n, fwd) : -1;
        if (k > 0)
            ip = fwd, len = (size_t)k;
    }
    return tenants_key(&A.tenants, ip, len) ^ 1;
}

static enum http_admit enter(struct http_req *r)
{
    struct admit_worker *aw = worker_of(r);
    const struct og_config *cfg = aw->cfg;
    r->admit_class = class_of(r);
    if (r->klass == NULL)
        r->klass = CLASS_NAMES[0]; /* no capability check ran: anonymous */
    if (!gcra_off(&aw->tenant)) {
        uint64_t key;
        if (r->admit_class != 0 && r->tenant[0])
            key = tenants_key(&A.tenants, r->tenant, strlen(r->tenant));
        else
            key = anon_key(r);
        struct gcra_verdict v = tenants_take(&A.tenants, key, &aw->tenant, uv_hrtime());
        if (!v.ok) {
            refuse_rate(r, aw, SCOPE_TENANT, &aw->tenant, &v);
            return HTTP_ADMIT_ANSWERED;
        }
    }
    if (is_write(r) && atomic_load_explicit(&A.degraded, memory_order_relaxed)) {
        http_respond_error(r, OG_E_DEGRADED, "writes are shed while the service is degraded");
        return HTTP_ADMIT_ANSWERED;
    }
    if (atomic_load(&A.waiting) == 0 && acquire(cfg->inflight_max)) {
        take(aw, r);
        return HTTP_ADMIT_GO;
    }
    if (aw->q.n[r->admit_class] >= (unsigned)cfg->queue_max) {
        refuse_busy(r, aw, cfg->queue_max ? "queue full" : "too many requests in flight");
        return HTTP_ADMIT_ANSWERED;
    }
    uv_loop_t *loop = aw->timer.loop;
    r->wait.deadline_ms = uv_now(loop) + (uint64_t)cfg->queue_wait_ms;
    r->wait.since_ns = uv_hrtime();
    drr_push(&aw->q, &r->wait, r->admit_class);
    atomic_fetch_add(&A.waiting, 1);
    SHARD_ADD(aw->s->depth[r->admit_class], 1);
    r->on_cancel = on_cancel_wait;
    /* Look for a slot on the next turn: one may have been freed between
     * the failed acquire and the waiting count going up. */
    schedule(aw, 0);
    return HTTP_ADMIT_WAIT;
}

static void leave(struct http_req *r)
{
    if (!r->admitted)
        return;
    struct admit_worker *aw = worker_of(r);
    r->admitted = false;
    atomic_fetch_sub(&A.slots, 1);
    SHARD_ADD(aw->s->inflight[r->admit_class], (uint64_t)-1);
    uint64_t now = uv_now(aw->timer.loop);
    if (now - aw->win_start_ms >= 1000) {
        aw->drain_per_s = aw->win_done * 1000 / (now - aw->win_start_ms);
        aw->win_start_ms = now;
        aw->win_done = 0;
    }
    aw->win_done++;
    if (aw->q.total > 0)
        schedule(aw, 0); /* the slot goes to this worker's queue next turn */
}

const struct http_admission admit_hooks = {
    .before_gate = before_gate,
    .enter = enter,
    .leave = leave,
};

/* ---- the queue timer ---------------------------------------------------- */

static struct http_req *req_of(struct drr_node *x)
{
    return (struct http_req *)((char *)x - offsetof(struct http_req, wait));
}

/* Rounded up: a request that queued at all logs a queue_ms, and its
 * downstream budget errs short, never long. */
static uint64_t waited_ms(const struct http_req *r)
{
    return (uv_hrtime() - r->wait.since_ns + 999999) / 1000000;
}

static void on_timer(uv_timer_t *t)
{
    struct admit_worker *aw = t->data;
    uint64_t now = uv_now(t->loop);
    for (int c = 0; c < NCLASS; c++) {
        struct drr_node *x;
        while ((x = drr_head(&aw->q, c)) != NULL && x->deadline_ms <= now) {
            struct http_req *r = req_of(x);
            leave_queue(aw, r);
            r->on_cancel = NULL;
            r->queued_ms = waited_ms(r); /* the log line says how long */
            refuse_busy(r, aw, "queue wait deadline passed");
        }
    }
    while (aw->q.total > 0 && acquire(aw->cfg->inflight_max)) {
        struct http_req *r = req_of(drr_pop(&aw->q));
        atomic_fetch_sub(&A.waiting, 1);
        int c = r->admit_class;
        SHARD_ADD(aw->s->depth[c], (uint64_t)-1);
        uint64_t us = (uv_hrtime() - r->wait.since_ns) / 1000;
        SHARD_ADD(aw->s->wait_bucket[c][metrics_bucket(WAIT_BOUNDS, WAIT_LE, us)], 1);
        SHARD_ADD(aw->s->wait_sum_us[c], us);
        r->queued_ms = waited_ms(r);
        r->on_cancel = NULL;
        take(aw, r);
        http_dispatch_resume(r);
    }
    if (aw->q.total == 0)
        return;
    uint64_t due = UINT64_MAX;
    for (int c = 0; c < NCLASS; c++) {
        struct drr_node *x = drr_head(&aw->q, c);
        if (x && x->deadline_ms < due)
            due = x->deadline_ms;
    }
    if (A.nworkers > 1 && now + POLL_MS < due)
        due = now + POLL_MS;
    schedule(aw, due > now ? due - now : 0);
}

struct admit_worker *admit_worker_init(uv_loop_t *loop, int id)
{
    struct admit_worker *aw = &A.workers[id];
    uv_timer_init(loop, &aw->timer);
    aw->timer.data = aw;
    uv_unref((uv_handle_t *)&aw->timer);
    aw->s = &A.shards[id];
    aw->win_start_ms = uv_now(loop);
    unsigned w[NCLASS] = {1, 1, 1};
    drr_init(&aw->q, w);
    return aw;
}

/* ---- degraded mode ------------------------------------------------------ */

static bool headroom_ok(void)
{
    const struct og_config *cfg = atomic_load(&A.cfg);
    long cap = (long)cfg->queue_max * NCLASS * A.nworkers;
    if (cap == 0)
        return true;
    long free_ = cap - atomic_load(&A.waiting);
    return free_ * 100 >= (long)cfg->degraded_headroom_pct * cap;
}

static void evaluate(uint64_t now)
{
    const struct og_config *cfg = atomic_load(&A.cfg);
    int causes = (ready_key_ok("downstream_health_ok") ? 0 : CAUSE_DOWNSTREAM) |
                 (ready_key_ok("last_reload_ok") ? 0 : CAUSE_RELOAD) |
                 (headroom_ok() ? 0 : CAUSE_QUEUE) |
                 (atomic_load(&A.operator_on) ? CAUSE_OPERATOR : 0);
    int before = atomic_exchange(&A.causes, causes);
    bool was = atomic_load(&A.degraded);
    if (causes) {
        A.clear_since_ms = 0;
        if (!was) {
            atomic_store(&A.degraded, true);
            log_event(LOG_WARN, "degraded", "entering degraded mode (causes 0x%x): writes are shed",
                      (unsigned)causes);
        }
        return;
    }
    if (!was)
        return;
    if (before || A.clear_since_ms == 0)
        A.clear_since_ms = now;
    if (now - A.clear_since_ms >= (uint64_t)cfg->degraded_hold_ms) {
        atomic_store(&A.degraded, false);
        log_event(LOG_INFO, "degraded", "leaving degraded mode: writes accepted again");
    }
}

static void on_eval(uv_timer_t *t)
{
    evaluate(uv_now(t->loop));
}

bool admit_degraded(void)
{
    return atomic_load(&A.degraded);
}

static bool key_queue_headroom(void)
{
    return headroom_ok();
}

void admit_on_degraded(struct http_req *req)
{
    if (req->method == HTTP_PUT || req->method == HTTP_DELETE) {
        atomic_store(&A.operator_on, req->method == HTTP_PUT);
        evaluate(uv_now(A.eval.loop));
    }
    struct buf body = {0};
    struct jw j;
    jw_init(&j, &body);
    jw_obj_open(&j);
    jw_key(&j, "degraded");
    jw_bool(&j, atomic_load(&A.degraded));
    jw_key(&j, "causes");
    jw_arr_open(&j);
    int causes = atomic_load(&A.causes);
    for (int i = 0; i < 4; i++)
        if (causes & (1 << i))
            jw_str(&j, CAUSE_NAMES[i]);
    jw_arr_close(&j);
    jw_obj_close(&j);
    if (jw_failed(&j)) {
        buf_release(&body);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    http_respond_buf(req, 200, "application/json", &body);
}

/* ---- metrics and start-up ----------------------------------------------- */

static double read_degraded(const struct metric_def *d, const int *ix)
{
    return atomic_load(&A.degraded) ? 1 : 0;
}

static double read_evicted(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&A.tenants.evicted_busy);
}

static const struct metric_label L_CLASS = {"class", CLASS_NAMES, NCLASS, NULL};
static const struct metric_label L_SCOPE = {"scope", SCOPES, 2, NULL};

#define IN_SHARD(field) offsetof(struct admit_shard, field)
static const struct metric_def ADMIT_METRICS[] = {
    {"fq_inflight", METRIC_GAUGE, "Requests holding an admission slot, by class.",
     .labels = {&L_CLASS}, .off = IN_SHARD(inflight)},
    {"fq_queue_depth", METRIC_GAUGE, "Requests waiting for an admission slot, by class.",
     .labels = {&L_CLASS}, .off = IN_SHARD(depth)},
    {"fq_admitted_total", METRIC_COUNTER, "Requests given an admission slot, by class.",
     .labels = {&L_CLASS}, .off = IN_SHARD(admitted)},
    {"admission_wait_seconds", METRIC_HISTOGRAM,
     "Time queued requests waited for an admission slot, by class.", .labels = {&L_CLASS},
     .off = IN_SHARD(wait_bucket), .sum_off = IN_SHARD(wait_sum_us), .le = WAIT_BOUNDS,
     .nle = WAIT_LE, .flags = METRIC_SPARSE},
    {"rate_limited_total", METRIC_COUNTER, "Requests refused by a rate bucket (429 quota).",
     .labels = {&L_SCOPE}, .off = IN_SHARD(limited)},
    {"degraded_mode", METRIC_GAUGE, "1 while writes are shed (degraded mode).",
     .read = read_degraded},
    {"tenant_buckets_evicted_busy_total", METRIC_COUNTER,
     "Tenant buckets taken over while not yet refilled (tenant_table_max too small).",
     .read = read_evicted},
};

int admit_start(const struct og_config *cfg, int nworkers)
{
    A.nworkers = nworkers;
    atomic_store(&A.cfg, cfg);
    if (cidr_set_parse(cfg->trusted_proxies, &A.proxies) != 0) { /* checked by config */
        fprintf(stderr, "omnigate: trusted_proxies: invalid network list\n");
        return -1;
    }
    A.workers = calloc((size_t)nworkers, sizeof(*A.workers));
    A.shards = calloc((size_t)nworkers, sizeof(*A.shards));
    if (A.workers == NULL || A.shards == NULL ||
        tenants_init(&A.tenants, (size_t)cfg->tenant_table_max) != 0) {
        fprintf(stderr, "omnigate: no memory for the admission tables\n");
        return -1;
    }
    metrics_register(METRIC_TABLE(ADMIT_METRICS, .shards = A.shards,
                                  .shard_bytes = sizeof(*A.shards), .nshards = nworkers));
    ready_register("queue_headroom", key_queue_headroom);
    return 0;
}

void admit_admin_init(uv_loop_t *admin_loop)
{
    uv_timer_init(admin_loop, &A.eval);
    uv_unref((uv_handle_t *)&A.eval);
    uv_timer_start(&A.eval, on_eval, EVAL_MS, EVAL_MS);
    A.eval_ready = true;
}

void admit_stop(void)
{
    if (A.eval_ready && !uv_is_closing((uv_handle_t *)&A.eval))
        uv_close((uv_handle_t *)&A.eval, NULL);
    tenants_free(&A.tenants);
}
