/*
 * ds.c — the downstream core: limits, deadlines, retries under a budget,
 * coalescing and per-hop metrics, over a backend (local.c or remote.c).
 *
 * Retry budget. Each downstream has one token bucket shared by all workers
 * (an atomic): every first attempt deposits retry_budget_percent/100 of a
 * token (capped at DS_BUDGET_CAP tokens), and every retry or hedge must take
 * a whole token *before* it waits in backoff. So a retry waiting in backoff
 * already counts, and when a downstream is down the extra load it sees is
 * bounded by the percentage over any period — not by the share of requests
 * in flight at one instant, which lets every request retry at once after an
 * outage (a known weakness of concurrency-ratio budgets).
 */
#include "ds/ds.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dec.h"
#include "core/log.h"
#include "ds/internal.h"
#include "engines/proto/proto.h"
#include "oap/oap-t.h"
#include "ops/health.h"
#include "ops/metrics.h"

#define DS_BUDGET_SCALE    1000 /* milli-tokens */
#define DS_BUDGET_CAP      (20 * DS_BUDGET_SCALE)
#define DS_BACKOFF_BASE_MS 10
#define DS_OPS             10
#define DS_CODES           17
#define DS_BUCKETS         10

static const char *const SERVICE_NAMES[DS__COUNT] = {"index", "storage", "mailbox"};
static const char *const OPS[DS_OPS] = {"get",  "has",  "put",  "resolve", "search",
                                        "send", "recv", "peek", "ack",     "other"};
/* Status labels: app codes, then transport outcomes. */
static const int CODES[DS_CODES] = {200, 201, 206, 400, 404, 413, 416, 429, 500,
                                    502, 503, 504, 507, -1,  -2,  -3,  -4};
#define CODE_TIMEOUT     13
#define CODE_SHED        14
#define CODE_BAD_GATEWAY 15
#define CODE_CANCELLED   16 /* the caller gave up (client gone, hedge lost) */
static const char *const CODE_LABELS[DS_CODES] = {
    "200", "201", "206", "400", "404",     "413",  "416",         "429",      "500",
    "502", "503", "504", "507", "timeout", "shed", "bad_gateway", "cancelled"};
static const double BUCKETS[DS_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05,  0.1,    0.25,  1};

struct ds_shard {
    uint64_t req[DS__COUNT][DS_OPS][DS_CODES];
    uint64_t lat[DS__COUNT][DS_OPS][DS_BUCKETS];
    uint64_t lat_sum_us[DS__COUNT][DS_OPS];
    uint64_t retries[DS__COUNT];
    uint64_t coalesced[DS__COUNT];
    uint64_t hedged[DS__COUNT][2]; /* won, lost */
};

static const struct ds_backend *backends[DS__COUNT]; /* read-only after start */
static struct ds_shard *shards;                      /* one per worker */
static int nshards;
static atomic_long inflight[DS__COUNT];
static atomic_long budget[DS__COUNT];
const char *ds__remote_addr[DS__COUNT];
int ds__remote_pool_size = 2;

/* Per-worker state, by worker id (ds__worker). The coalescing table is a
 * small open list: only reads in flight at the same moment on the same
 * worker are in it. */
static struct ds_worker *workers;

const char *ds_service_name(enum ds_service s)
{
    return s < DS__COUNT ? SERVICE_NAMES[s] : "?";
}

uint16_t ds__app_id(enum ds_service s)
{
    static const uint16_t ids[DS__COUNT] = {OAP_APP_INDEX, OAP_APP_STORAGE, OAP_APP_MAILBOX};
    return ids[s];
}

bool ds_is_micronode(void)
{
    for (int i = 0; i < DS__COUNT; i++)
        if (backends[i] != &ds__local_backend)
            return false;
    return true;
}

/* ---- metrics ------------------------------------------------------------ */

/* The op's label index, for each call that went downstream: the first byte
 * tells most names apart, so strcmp runs about once. */
static int op_index(const char *op)
{
    for (int i = 0; i < DS_OPS - 1; i++)
        if (OPS[i][0] == op[0] && strcmp(OPS[i], op) == 0)
            return i;
    return DS_OPS - 1;
}

static int code_index(const struct ds_resp *r)
{
    if (r->code == 0)
        return r->err == OG_E_DOWNSTREAM_TIMEOUT ? CODE_TIMEOUT
               : r->err == OG_E_BUSY             ? CODE_SHED
                                                 : CODE_BAD_GATEWAY;
    for (int i = 0; i < CODE_TIMEOUT; i++)
        if (CODES[i] == r->code)
            return i;
    return 8; /* other codes are counted as 500 */
}

struct ds_worker *ds__worker(const struct worker *w)
{
    return &workers[w->id < nshards ? w->id : nshards - 1];
}

static struct ds_shard *shard_of(struct worker *w)
{
    return &shards[w->id < nshards ? w->id : nshards - 1];
}

static void observe(struct ds_call *c, const struct ds_resp *r)
{
    struct ds_shard *s = shard_of(c->w);
    int svc = c->req.svc, op = op_index(c->req.op);
    SHARD_ADD(s->req[svc][op][c->cancelled ? CODE_CANCELLED : code_index(r)], 1);
    uint64_t us = (uint64_t)(r->latency_ms * 1000.0);
    SHARD_ADD(s->lat[svc][op][metrics_bucket(BUCKETS, DS_BUCKETS - 1, us)], 1);
    SHARD_ADD(s->lat_sum_us[svc][op], us);
}

static double read_inflight(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&inflight[ix[0]]);
}

static double read_budget(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&budget[ix[0]]) / DS_BUDGET_SCALE;
}

static double read_amnesia(const struct metric_def *d, const int *ix)
{
    return ds_is_micronode() ? 1 : 0;
}

static const char *const OUTCOMES[2] = {"won", "lost"};
static const struct metric_label L_SERVICE = {"service", SERVICE_NAMES, DS__COUNT, NULL};
static const struct metric_label L_OP = {"op", OPS, DS_OPS, NULL};
static const struct metric_label L_STATUS = {"status", CODE_LABELS, DS_CODES, NULL};
static const struct metric_label L_OUTCOME = {"outcome", OUTCOMES, 2, NULL};

#define IN_SHARD(field) offsetof(struct ds_shard, field)
static const struct metric_def DS_METRICS[] = {
    {"downstream_requests_total", METRIC_COUNTER,
     "Downstream calls by service, operation and status.", .labels = {&L_SERVICE, &L_OP, &L_STATUS},
     .off = IN_SHARD(req), .flags = METRIC_SPARSE},
    {"downstream_latency_seconds", METRIC_HISTOGRAM,
     "Per-hop latency of downstream calls, all attempts included.", .labels = {&L_SERVICE, &L_OP},
     .off = IN_SHARD(lat), .sum_off = IN_SHARD(lat_sum_us), .le = BUCKETS, .nle = DS_BUCKETS - 1,
     .flags = METRIC_SPARSE},
    {"downstream_inflight", METRIC_GAUGE, "Downstream calls in flight.", .labels = {&L_SERVICE},
     .read = read_inflight},
    {"downstream_retries_total", METRIC_COUNTER, "Retries of idempotent reads.",
     .labels = {&L_SERVICE}, .off = IN_SHARD(retries)},
    {"downstream_retry_budget_tokens", METRIC_GAUGE,
     "Retry and hedge tokens available per downstream.", .labels = {&L_SERVICE},
     .read = read_budget},
    {"downstream_coalesced_total", METRIC_COUNTER,
     "Reads answered by an identical read already in flight.", .labels = {&L_SERVICE},
     .off = IN_SHARD(coalesced)},
    {"hedged_requests_total", METRIC_COUNTER, "Hedged reads by outcome.",
     .labels = {&L_SERVICE, &L_OUTCOME}, .off = IN_SHARD(hedged)},
    {"amnesia", METRIC_GAUGE, "1 when no downstream data is written to disk.",
     .read = read_amnesia},
};

static bool key_downstream_health(void)
{
    for (int s = 0; s < DS__COUNT; s++)
        if (backends[s]->healthy && !backends[s]->healthy((enum ds_service)s))
            return false;
    return true;
}

/* ---- responses ---------------------------------------------------------- */

static void owner_release(void *p)
{
    struct ds_owner *o = p;
    if (o && --o->refs == 0) {
        if (o->release)
            o->release(o->p);
        free(o);
    }
}

struct ds_resp *ds_resp_keep(const struct ds_resp *resp)
{
    struct ds_resp *k = malloc(sizeof(*k));
    if (k == NULL)
        return NULL;
    *k = *resp;
    if (k->owner)
        ((struct ds_owner *)k->owner)->refs++;
    return k;
}

void ds_resp_free(struct ds_resp *resp)
{
    if (resp == NULL)
        return;
    if (resp->release)
        resp->release(resp->owner);
    free(resp);
}

/* ---- call lifecycle ----------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    struct ds_call *c = h->data;
    free(c->hdr_copy);
    free(c->body_copy);
    free(c->wire_hdr);
    free(c);
}

static void call_free(struct ds_call *c)
{
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void coalesce_unlink(struct ds_call *c)
{
    struct ds_worker *dw = ds__worker(c->w);
    for (struct ds_call **pp = &dw->coalesce_head; *pp; pp = &(*pp)->cnext)
        if (*pp == c) {
            *pp = c->cnext;
            c->cnext = NULL;
            return;
        }
}

/* Deliver resp to c (and to calls coalesced on it), then free them. The
 * owner is wrapped so that every receiver can keep it independently. */
void ds_cancel(struct ds_call *c);

static void stream_finish(struct ds_call *c, struct ds_resp *resp);

/* The backend stops working on c's current attempt, if any. */
static void attempt_abort(struct ds_call *c)
{
    if (c->in_attempt) {
        backends[c->req.svc]->abort(c);
        c->in_attempt = false;
    }
}

/* The call is over for the backend: its timer, its attempt and its slot in
 * the downstream's concurrency limit are given back. */
static void call_release(struct ds_call *c)
{
    c->finished = true;
    uv_timer_stop(&c->timer);
    attempt_abort(c);
    if (c->counted) {
        atomic_fetch_sub(&inflight[c->req.svc], 1);
        c->counted = false;
    }
}

static void finish(struct ds_call *c, struct ds_resp *resp)
{
    if (c->finished)
        return;
    if (c->stream) {
        stream_finish(c, resp);
        return;
    }
    c->finished = true;
    if (c->twin) { /* our own attempt answered first: the hedge lost */
        struct ds_call *t = c->twin;
        c->twin = NULL;
        SHARD_ADD(shard_of(c->w)->hedged[c->req.svc][1], 1);
        ds_cancel(t);
    }
    call_release(c);
    coalesce_unlink(c);
    if (c->leader) { /* a follower finishing on its own (deadline) */
        for (struct ds_call **pp = &c->leader->followers; *pp; pp = &(*pp)->next_follower)
            if (*pp == c) {
                *pp = c->next_follower;
                break;
            }
        c->leader = NULL;
    }
    struct ds_owner *o = NULL;
    if (resp->owner || resp->release) {
        o = malloc(sizeof(*o));
        if (o == NULL) { /* cannot share: deliver a failure instead */
            if (resp->release)
                resp->release(resp->owner);
            *resp = (struct ds_resp){.code = 0, .err = OG_E_INTERNAL};
        } else {
            *o = (struct ds_owner){1, resp->owner, resp->release};
            resp->owner = o;
            resp->release = owner_release;
        }
    }
    resp->latency_ms = (double)(uv_hrtime() - c->t0_ns) / 1e6;
    resp->attempts = c->attempts;
    observe(c, resp);
    if (!c->cancelled && c->cb)
        c->cb(c->arg, resp);
    for (struct ds_call *f = c->followers, *next; f; f = next) {
        next = f->next_follower;
        f->finished = true;
        uv_timer_stop(&f->timer);
        SHARD_ADD(shard_of(f->w)->coalesced[f->req.svc], 1);
        if (!f->cancelled && f->cb) {
            struct ds_resp fr = *resp;
            fr.coalesced = true;
            fr.latency_ms = (double)(uv_hrtime() - f->t0_ns) / 1e6;
            f->cb(f->arg, &fr);
        }
        call_free(f);
    }
    if (o)
        owner_release(o);
    call_free(c);
}

static void fail(struct ds_call *c, enum og_err e)
{
    struct ds_resp r = {.code = 0, .err = e};
    finish(c, &r);
}

static bool budget_take(enum ds_service s)
{
    long v = atomic_load(&budget[s]);
    while (v >= DS_BUDGET_SCALE)
        if (atomic_compare_exchange_weak(&budget[s], &v, v - DS_BUDGET_SCALE))
            return true;
    return false;
}

static void budget_deposit(enum ds_service s, int pct)
{
    long add = (long)pct * DS_BUDGET_SCALE / 100;
    long v = atomic_fetch_add(&budget[s], add) + add;
    if (v > DS_BUDGET_CAP)
        atomic_fetch_sub(&budget[s], v - DS_BUDGET_CAP < add ? v - DS_BUDGET_CAP : add);
}

static int build_wire_hdr(struct ds_call *c)
{
    uint64_t now = uv_now(&c->w->loop);
    uint64_t left = c->req.deadline_ms > now ? c->req.deadline_ms - now : 0;
    /* deadline_ms first, then the correlation id (validated to
     * [A-Za-z0-9._:-] at the edge, so it needs no escaping). */
    char pre[sizeof("{\"deadline_ms\":") + DEC_U64_MAX_CHARS + sizeof(",\"corr_id\":\"") +
             sizeof(c->corr_id) + 2];
    size_t n = 0, cl = strlen(c->corr_id);
    memcpy(pre, "{\"deadline_ms\":", 15);
    n = 15 + dec_u64(pre + 15, left);
    if (cl) {
        memcpy(pre + n, ",\"corr_id\":\"", 12);
        memcpy(pre + n + 12, c->corr_id, cl);
        n += 12 + cl;
        pre[n++] = '"';
    }
    if (c->req.hdr_len > 2)
        pre[n++] = ',';
    size_t rest = c->req.hdr_len > 1 ? c->req.hdr_len - 1 : 0; /* skip the caller's '{' */
    char *p = realloc(c->wire_hdr, n + rest + 1);
    if (p == NULL)
        return -1;
    memcpy(p, pre, n);
    memcpy(p + n, c->req.hdr + 1, rest);
    p[n + rest] = '\0';
    c->wire_hdr = p;
    c->wire_hdr_len = n + rest;
    return 0;
}

static void arm(struct ds_call *c);
static void attempt(struct ds_call *c);
static void on_timer(uv_timer_t *t);
static struct ds_call *call_new(struct worker *w, const struct ds_req *req, ds_cb cb, void *arg);

/* The hop's live p95 on this worker, from its latency histogram: the upper
 * bound of the bucket holding the 95th percentile (coarse, and cheap). */
static uint64_t live_p95_ms(const struct ds_call *c)
{
    struct ds_shard *s = shard_of(c->w);
    int svc = c->req.svc, op = op_index(c->req.op);
    uint64_t total = 0, cum = 0;
    for (int b = 0; b < DS_BUCKETS; b++)
        total += s->lat[svc][op][b];
    if (total < 20)
        return 0; /* too few samples: rely on hedge_after alone */
    for (int b = 0; b < DS_BUCKETS - 1; b++) {
        cum += s->lat[svc][op][b];
        if (cum * 100 >= total * 95)
            return (uint64_t)(BUCKETS[b] * 1000.0 + 0.5);
    }
    return (uint64_t)(BUCKETS[DS_BUCKETS - 2] * 1000.0);
}

/* The hedge answered. A good answer wins for the parent; a failed one is
 * dropped and the parent's own attempt goes on. */
static void on_hedge(void *arg, struct ds_resp *r)
{
    struct ds_call *parent = arg;
    parent->twin = NULL;
    if (parent->finished || r->code == 0 || r->code >= 500)
        return;
    SHARD_ADD(shard_of(parent->w)->hedged[parent->req.svc][0], 1);
    attempt_abort(parent);
    struct ds_resp won = *r;
    if (won.owner) /* the twin's finish drops its own reference afterwards */
        ((struct ds_owner *)won.owner)->refs++;
    finish(parent, &won);
}

static void start_hedge(struct ds_call *c)
{
    if (!budget_take(c->req.svc))
        return; /* hedges share the retry budget */
    struct ds_req r = c->req;
    r.coalesce_key = NULL;
    struct ds_call *t = call_new(c->w, &r, on_hedge, c);
    if (t == NULL)
        return;
    t->is_hedge = true;
    c->twin = t;
    attempt(t);
}

static void attempt(struct ds_call *c)
{
    c->backoff_until_ms = 0;
    c->attempts++;
    /* Only a remote backend sends header bytes; in process the deadline
     * travels beside the header (engines/proto/proto.h). */
    if (backends[c->req.svc] != &ds__local_backend && build_wire_hdr(c) != 0) {
        fail(c, OG_E_INTERNAL);
        return;
    }
    c->in_attempt = true;
    uint64_t hedge_ms = (uint64_t)c->w->cfg->ds_hedge_after_ms;
    if (hedge_ms && c->req.idempotent && !c->is_hedge && c->attempts == 1) {
        uint64_t p95 = live_p95_ms(c);
        c->hedge_at_ms = uv_now(&c->w->loop) + (p95 > hedge_ms ? p95 : hedge_ms);
    }
    if (backends[c->req.svc]->send(c) != 0) {
        c->in_attempt = false;
        /* No connection to send on: the downstream is unavailable. The
         * failure is taken up by the timer on a later turn, since this may
         * run inside ds_call() and the callback must never (ds.h). */
        c->send_failed = true;
        uv_timer_start(&c->timer, on_timer, 0, 0);
        return;
    }
    arm(c);
}

static void on_timer(uv_timer_t *t)
{
    struct ds_call *c = t->data;
    uint64_t now = uv_now(&c->w->loop);
    if (c->send_failed) {
        struct ds_resp r = {.code = 0, .err = OG_E_BAD_GATEWAY};
        c->send_failed = false;
        ds__attempt_done(c, &r);
        return;
    }
    if (c->shed) {
        fail(c, OG_E_BUSY);
        return;
    }
    if (c->stream && c->head_done) { /* armed only while the producer owes us */
        fail(c, OG_E_DOWNSTREAM_TIMEOUT);
        return;
    }
    if (now >= c->req.deadline_ms) {
        fail(c, OG_E_DOWNSTREAM_TIMEOUT);
        return;
    }
    if (c->backoff_until_ms && now >= c->backoff_until_ms) {
        attempt(c);
        return;
    }
    if (c->hedge_at_ms && now >= c->hedge_at_ms) {
        c->hedge_at_ms = 0;
        if (c->in_attempt && !c->twin)
            start_hedge(c);
    }
    arm(c);
}

static void arm(struct ds_call *c)
{
    uint64_t now = uv_now(&c->w->loop);
    uint64_t due = c->req.deadline_ms;
    if (c->backoff_until_ms && c->backoff_until_ms < due)
        due = c->backoff_until_ms;
    if (c->hedge_at_ms && c->hedge_at_ms < due)
        due = c->hedge_at_ms;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

static bool retryable(const struct ds_resp *r)
{
    return (r->code == 0 && r->err == OG_E_BAD_GATEWAY) || r->code == 502 || r->code == 503;
}

void ds__attempt_done(struct ds_call *c, struct ds_resp *resp)
{
    c->in_attempt = false;
    const struct og_config *cfg = c->w->cfg;
    uint64_t now = uv_now(&c->w->loop);
    if (c->req.idempotent && retryable(resp) && c->attempts <= cfg->ds_retry_max &&
        now < c->req.deadline_ms) {
        /* Jittered exponential backoff: base·2^(n-1), uniformly 50–100 %. */
        uint64_t cap = (uint64_t)DS_BACKOFF_BASE_MS << (c->attempts - 1);
        uint64_t wait = cap / 2 + (uint64_t)rand() % (cap / 2 + 1);
        if (now + wait < c->req.deadline_ms && budget_take(c->req.svc)) {
            if (resp->release)
                resp->release(resp->owner);
            SHARD_ADD(shard_of(c->w)->retries[c->req.svc], 1);
            c->backoff_until_ms = now + wait;
            arm(c);
            return;
        }
    }
    finish(c, resp);
}

/* Allocate a call with private copies of the header and body. */
static struct ds_call *call_new(struct worker *w, const struct ds_req *req, ds_cb cb, void *arg)
{
    struct ds_call *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->w = w;
    c->req = *req;
    c->cb = cb;
    c->arg = arg;
    c->t0_ns = uv_hrtime();
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->hdr_copy = malloc(req->hdr_len + 1);
    if (c->hdr_copy == NULL) {
        free(c);
        return NULL;
    }
    memcpy(c->hdr_copy, req->hdr, req->hdr_len);
    c->hdr_copy[req->hdr_len] = '\0';
    c->req.hdr = c->hdr_copy;
    if (req->corr_id) {
        size_t cl = strnlen(req->corr_id, sizeof(c->corr_id) - 1);
        memcpy(c->corr_id, req->corr_id, cl);
        c->corr_id[cl] = '\0';
    }
    c->req.corr_id = c->corr_id;
    /* The body is copied so that a cancelled call never leaves a backend
     * writing from the caller's freed memory; bodies are bounded by the
     * body cap. */
    if (req->body_len) {
        c->body_copy = malloc(req->body_len);
        if (c->body_copy == NULL) {
            free(c->hdr_copy);
            free(c);
            return NULL;
        }
        memcpy(c->body_copy, req->body, req->body_len);
        c->req.body = c->body_copy;
    }
    return c;
}

static bool admit(struct ds_call *c);

struct ds_call *ds_call(struct worker *w, const struct ds_req *req, ds_cb cb, void *arg)
{
    struct ds_call *c = call_new(w, req, cb, arg);
    if (c == NULL)
        return NULL;
    c->req.coalesce_key = NULL; /* borrowed: only read below, while req is alive */

    /* Coalescing: an identical read in flight on this worker answers both. */
    struct ds_worker *dw = ds__worker(w);
    if (req->idempotent && req->coalesce_key && dw) {
        for (struct ds_call *l = dw->coalesce_head; l; l = l->cnext) {
            if (l->req.svc == req->svc && strcmp(l->hdr_copy, c->hdr_copy) == 0 && !l->finished) {
                c->leader = l;
                c->next_follower = l->followers;
                l->followers = c;
                c->req.deadline_ms = req->deadline_ms;
                arm(c);
                return c;
            }
        }
    }

    if (!admit(c))
        return c;
    if (dw && req->idempotent && req->coalesce_key) {
        c->cnext = dw->coalesce_head;
        dw->coalesce_head = c;
    }
    attempt(c);
    return c;
}

/* Take a slot of the per-downstream limit, or mark c shed (answered on the
 * next turn). Returns whether c was admitted. */
static bool admit(struct ds_call *c)
{
    enum ds_service svc = c->req.svc;
    budget_deposit(svc, (int)c->w->cfg->ds_retry_budget_pct);
    long n = atomic_fetch_add(&inflight[svc], 1) + 1;
    c->counted = true;
    if (n > c->w->cfg->ds_concurrency[svc]) {
        atomic_fetch_sub(&inflight[svc], 1);
        c->counted = false;
        c->shed = true;
        uv_timer_start(&c->timer, on_timer, 0, 0);
        return false;
    }
    return true;
}

/* ---- streams ------------------------------------------------------------ */

struct ds_call *ds_call_stream(struct worker *w, const struct ds_req *req,
                               const struct ds_stream_cbs *cbs, void *arg)
{
    if (cbs == NULL || !cbs->on_head || !cbs->on_chunk || !cbs->on_end)
        return NULL;
    struct ds_call *c = call_new(w, req, NULL, arg);
    if (c == NULL)
        return NULL;
    c->stream = true;
    c->scbs = *cbs;
    /* No retry, hedge or coalescing (ds.h says why). */
    c->req.idempotent = false;
    c->req.coalesce_key = NULL;
    c->req.coalesce_key_len = 0;
    unsigned win = req->stream_window ? req->stream_window : DS_STREAM_WINDOW_DEF;
    c->window = win < DS_STREAM_WINDOW_MIN   ? DS_STREAM_WINDOW_MIN
                : win > DS_STREAM_WINDOW_MAX ? DS_STREAM_WINDOW_MAX
                                             : win;
    uint64_t now = uv_now(&w->loop);
    c->stall_ms = req->deadline_ms > now ? req->deadline_ms - now : 1;
    if (admit(c))
        attempt(c);
    return c;
}

/* After the head, the timer watches the producer: it runs while the
 * consumer has room for another chunk (so the producer is the one to move)
 * and restarts on every chunk in either direction. */
static void stream_progress(struct ds_call *c)
{
    if (c->finished || !c->head_done)
        return;
    if (c->held < c->window)
        uv_timer_start(&c->timer, on_timer, c->stall_ms, 0);
    else
        uv_timer_stop(&c->timer);
}

/* A stream is over: let the backend go, give back the limit's slot and cut
 * the chunks the consumer still holds loose from c. */
static void stream_teardown(struct ds_call *c)
{
    call_release(c);
    for (struct ds_chunk *ch = c->chunks; ch; ch = ch->next)
        ch->c = NULL;
    c->chunks = NULL;
    c->held = 0;
}

/* End a stream after its head; the consumer hears status unless it
 * cancelled. */
static void stream_end(struct ds_call *c, int status)
{
    stream_teardown(c);
    if (!c->cancelled)
        c->scbs.on_end(c->arg, status);
    call_free(c);
}

struct whole_chunk {
    struct ds_chunk ch;
    void *owner;
    void (*release)(void *owner);
};

static void whole_chunk_release(struct ds_chunk *ch)
{
    struct whole_chunk *k = (struct whole_chunk *)ch;
    if (k->release)
        k->release(k->owner);
    free(k);
}

/* finish() of a stream: a failure, or a whole answer from the backend. */
static void stream_finish(struct ds_call *c, struct ds_resp *resp)
{
    if (resp->code != 0 && !c->head_done) {
        /* One answer: head, the body as one chunk (its owner's bytes), end. */
        struct ds_resp r = *resp;
        struct whole_chunk *k = NULL;
        bool more = ds__stream_head(c, r.code, r.hdr, r.hdr_len);
        if (more && r.body_len > 0 && (k = malloc(sizeof(*k))) != NULL) {
            *k = (struct whole_chunk){
                .ch.release = whole_chunk_release, .owner = r.owner, .release = r.release};
            r.release = NULL; /* the chunk has it now */
            more = ds__stream_chunk(c, &k->ch, r.body, r.body_len);
        }
        if (r.release)
            r.release(r.owner);
        if (more)
            ds__stream_end(c, r.body_len > 0 && k == NULL ? DS_STREAM_NOMEM : DS_STREAM_OK);
        return;
    }
    if (resp->release)
        resp->release(resp->owner);
    if (c->head_done) {
        stream_end(c, resp->code != 0                        ? DS_STREAM_TRUNCATED
                      : resp->err == OG_E_DOWNSTREAM_TIMEOUT ? DS_STREAM_DEADLINE
                                                             : DS_STREAM_LOST);
        return;
    }
    /* No answer at all: the head says so, and nothing follows. */
    stream_teardown(c);
    struct ds_resp r = {.code = 0, .err = resp->err, .attempts = c->attempts};
    r.latency_ms = (double)(uv_hrtime() - c->t0_ns) / 1e6;
    observe(c, &r);
    if (!c->cancelled)
        c->scbs.on_head(c->arg, &r);
    call_free(c);
}

bool ds__stream_head(struct ds_call *c, int code, const char *hdr, size_t hdr_len)
{
    if (c->finished)
        return false;
    /* The header is copied behind a ds_owner so that ds_resp_keep works on
     * the head as on any answer (the backend's bytes are a read buffer). */
    struct ds_owner *o = code != 0 ? malloc(sizeof(*o) + hdr_len + 1) : NULL;
    if (o == NULL) {
        fail(c, code != 0 ? OG_E_INTERNAL : OG_E_BAD_GATEWAY);
        return false;
    }
    char *h = (char *)(o + 1);
    if (hdr_len)
        memcpy(h, hdr, hdr_len);
    h[hdr_len] = '\0';
    *o = (struct ds_owner){.refs = 1};
    struct ds_resp r = {.code = code,
                        .hdr = h,
                        .hdr_len = hdr_len,
                        .attempts = c->attempts,
                        .owner = o,
                        .release = owner_release};
    r.latency_ms = (double)(uv_hrtime() - c->t0_ns) / 1e6;
    c->head_done = true;
    observe(c, &r);
    stream_progress(c);
    c->scbs.on_head(c->arg, &r);
    owner_release(o);
    return !c->finished;
}

bool ds__stream_chunk(struct ds_call *c, struct ds_chunk *ch, const uint8_t *p, size_t n)
{
    if (c->finished || n == 0) {
        ch->c = NULL;
        ch->release(ch);
        return !c->finished;
    }
    ch->c = c;
    ch->next = c->chunks;
    c->chunks = ch;
    c->held++;
    stream_progress(c);
    c->scbs.on_chunk(c->arg, p, n, ch);
    return !c->finished;
}

void ds__stream_end(struct ds_call *c, int status)
{
    if (c->finished)
        return;
    c->in_attempt = false; /* the backend has let go (internal.h) */
    stream_end(c, status);
}

void ds_chunk_done(void *chunk_owner)
{
    struct ds_chunk *ch = chunk_owner;
    if (ch == NULL)
        return;
    struct ds_call *c = ch->c;
    if (c) {
        /* Held chunks number at most DS_STREAM_WINDOW_MAX: a list walk. */
        for (struct ds_chunk **pp = &c->chunks; *pp; pp = &(*pp)->next)
            if (*pp == ch) {
                *pp = ch->next;
                break;
            }
        c->held--;
        ch->c = NULL;
        if (c->in_attempt && backends[c->req.svc]->consumed)
            backends[c->req.svc]->consumed(c);
        stream_progress(c);
    }
    ch->release(ch);
}

void ds_cancel(struct ds_call *c)
{
    if (c == NULL || c->finished)
        return;
    c->cancelled = true;
    /* A lone call stops now; a leader keeps going for its followers. */
    if (c->followers == NULL)
        fail(c, OG_E_DOWNSTREAM_TIMEOUT);
}

static struct engines local_engines;

struct engines *ds_local_engines(void)
{
    return &local_engines;
}

int ds_start(const struct og_config *cfg, int nworkers)
{
    bool any_local = false;
    for (int s = 0; s < DS__COUNT; s++) {
        if (cfg->ds_addr[s][0]) {
            backends[s] = &ds__remote_backend;
            ds__remote_addr[s] = cfg->ds_addr[s];
        } else {
            backends[s] = &ds__local_backend;
            any_local = true;
        }
        atomic_store(&budget[s], DS_BUDGET_CAP / 2);
    }
    ds__remote_pool_size = (int)cfg->ds_pool_size;
    if (any_local) {
        int st = 0;
        if (!cfg->ds_addr[DS_STORAGE][0]) {
            struct storage_opts so = {.mem_cap_bytes = (uint64_t)cfg->storage_mem_cap,
                                      .max_object_bytes = (uint64_t)cfg->storage_max_object,
                                      .amnesia = true};
            local_engines.storage = storage_new(&so, &st);
        }
        if (!cfg->ds_addr[DS_INDEX][0]) {
            struct index_opts io = {0};
            local_engines.index = index_new(&io, &st);
        }
        if (!cfg->ds_addr[DS_MAILBOX][0]) {
            struct mailbox_opts mo = {0};
            local_engines.mailbox = mailbox_new(&mo, &st);
        }
        if ((!cfg->ds_addr[DS_STORAGE][0] && !local_engines.storage) ||
            (!cfg->ds_addr[DS_INDEX][0] && !local_engines.index) ||
            (!cfg->ds_addr[DS_MAILBOX][0] && !local_engines.mailbox)) {
            fprintf(stderr, "omnigate: cannot create the in-process engines: %s\n",
                    eng_status_name(st));
            return -1;
        }
    }
    nshards = nworkers;
    shards = calloc((size_t)nshards, sizeof(*shards));
    workers = calloc((size_t)nshards, sizeof(*workers));
    if (shards == NULL || workers == NULL)
        return -1;
    metrics_register(METRIC_TABLE(DS_METRICS, .shards = shards, .shard_bytes = sizeof(*shards),
                                  .nshards = nshards));
    ready_register("downstream_health_ok", key_downstream_health);
    return 0;
}

void ds_worker_init(struct worker *w)
{
    for (int s = 0; s < DS__COUNT; s++)
        if (backends[s]->worker_init)
            backends[s]->worker_init(w, (enum ds_service)s);
}

void ds_stop(void)
{
    storage_free(local_engines.storage);
    index_free(local_engines.index);
    mailbox_free(local_engines.mailbox);
    local_engines = (struct engines){0};
}
