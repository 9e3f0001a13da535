/*
 * stats.c — per-hop metrics of downstream calls (stats.h).
 */
#include "ds/stats.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ds/call.h"
#include "ops/metrics.h"

/* The op label: each kind's name in enum proto_kind's order, then "other". */
static const char *const OPS[STATS_OPS] = {
    "get",  "has", "proof", "outboard", "put",  "resolve", "search", "send", "recv",
    "peek", "ack", "nack",  "lease",    "dead", "redrive", "stats",  "other"};
_Static_assert(STATS_OPS == PROTO__KINDS, "one label per kind, and other");
/* Status labels: app codes, then transport outcomes. */
static const int CODES[STATS_CODES] = {200, 201, 206, 400, 404, 413, 416, 429, 500,
                                       502, 503, 504, 507, -1,  -2,  -3,  -4};
#define CODE_TIMEOUT     13
#define CODE_SHED        14
#define CODE_BAD_GATEWAY 15
#define CODE_CANCELLED   16 /* the caller gave up (client gone, hedge lost) */
static const char *const CODE_LABELS[STATS_CODES] = {
    "200", "201", "206", "400", "404",     "413",  "416",         "429",      "500",
    "502", "503", "504", "507", "timeout", "shed", "bad_gateway", "cancelled"};
const double stats_le[STATS_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};

static struct stats_shard *shards; /* one per worker; read-only pointer after start */
static int nshards;

int stats_op_index(enum proto_kind kind)
{
    return kind > PROTO_NONE && kind < PROTO__KINDS ? (int)kind - 1 : STATS_OPS - 1;
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

struct stats_shard *stats_of(const struct ds_worker *dw)
{
    return &shards[dw->id < nshards ? dw->id : nshards - 1];
}

void stats_observe(const struct ds_call *c, const struct ds_resp *r)
{
    struct stats_shard *s = stats_of(c->dw);
    int svc = c->req.svc, op = stats_op_index(c->req.op.kind);
    SHARD_ADD(s->req[svc][op][c->cancelled ? CODE_CANCELLED : code_index(r)], 1);
    uint64_t us = (uint64_t)(r->latency_ms * 1000.0);
    SHARD_ADD(s->lat[svc][op][metrics_bucket(stats_le, STATS_BUCKETS - 1, us)], 1);
    SHARD_ADD(s->lat_sum_us[svc][op], us);
}

/* ---- registration ------------------------------------------------------- */

static double read_inflight(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&ds__inflight[ix[0]]);
}

static double read_budget(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&retry_budget[ix[0]]) / RETRY_BUDGET_SCALE;
}

static double read_amnesia(const struct metric_def *d, const int *ix)
{
    return ds_is_micronode() ? 1 : 0;
}

static const char *const OUTCOMES[2] = {"won", "lost"};
static const struct metric_label L_SERVICE = {"service", ds__service_names, DS__COUNT, NULL};
static const struct metric_label L_OP = {"op", OPS, STATS_OPS, NULL};
static const struct metric_label L_STATUS = {"status", CODE_LABELS, STATS_CODES, NULL};
static const struct metric_label L_OUTCOME = {"outcome", OUTCOMES, 2, NULL};

#define IN_SHARD(field) offsetof(struct stats_shard, field)
static const struct metric_def DS_METRICS[] = {
    {"downstream_requests_total", METRIC_COUNTER,
     "Downstream calls by service, operation and status.", .labels = {&L_SERVICE, &L_OP, &L_STATUS},
     .off = IN_SHARD(req), .flags = METRIC_SPARSE},
    {"downstream_latency_seconds", METRIC_HISTOGRAM,
     "Per-hop latency of downstream calls, all attempts included.", .labels = {&L_SERVICE, &L_OP},
     .off = IN_SHARD(lat), .sum_off = IN_SHARD(lat_sum_us), .le = stats_le,
     .nle = STATS_BUCKETS - 1, .flags = METRIC_SPARSE},
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

int stats_start(int n)
{
    nshards = n;
    shards = calloc((size_t)nshards, sizeof(*shards));
    if (shards == NULL)
        return -1;
    metrics_register(METRIC_TABLE(DS_METRICS, .shards = shards, .shard_bytes = sizeof(*shards),
                                  .nshards = nshards));
    return 0;
}
