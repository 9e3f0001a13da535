/*
 * metrics.h — the metric registry and per-worker shards (DESIGN §9).
 *
 * A metric is declared, not printed: each module that has metrics keeps one
 * table of struct metric_def rows (name, type, help, labels with their fixed
 * value sets, histogram buckets, where the values live) and registers it once
 * at start-up with metrics_register(). metrics_render() writes every
 * registered family in the Prometheus text format 0.0.4; no module formats
 * exposition text itself. omnigate and omnigate-substrate share this code.
 *
 * Values live in one of two places:
 *  - shards: counters and histograms on the request path. Each worker owns
 *    one shard of the module's shard struct and is its only writer (relaxed
 *    atomic stores with SHARD_ADD, so a scrape never reads a torn value and
 *    the request path takes no lock); the scrape sums the shards.
 *  - a read function: gauges and process-wide atomics, read at scrape time.
 *
 * Labels are bounded: every label value comes from a fixed table (route
 * templates, methods and statuses from tables here, services, ops and codes
 * from their modules), so no peer input can grow the label set. The one
 * label whose values come from peers — mailbox channel names
 * (mailbox/chstats.h) — is a table of at most n entries refilled by the
 * table's prepare hook at each scrape.
 */
#ifndef OPS_METRICS_H
#define OPS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

/* ---- the registry --------------------------------------------------------- */

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

#define METRIC_LABELS_MAX 3
#define METRIC_LE_MAX     15 /* histogram bounds, +Inf not counted */

/* One label and its fixed values. A series' position along the label is the
 * index of its value in values[]; storage in a shard is a dense array over
 * the labels in the order the family lists them, n entries along each. */
struct metric_label {
    const char *name;
    const char *const *values;
    int n;           /* entries in values[] (and the storage extent along the label) */
    const int *live; /* how many are in use now (≤ n; route templates), or NULL: n */
};

/* Leave out series whose value is 0 (histograms: that have no observation). */
#define METRIC_SPARSE 1u

/* One metric family. */
struct metric_def {
    const char *name; /* the family name; histograms add _bucket, _sum, _count */
    enum metric_type type;
    const char *help;                                     /* required: promtool wants it */
    const struct metric_label *labels[METRIC_LABELS_MAX]; /* unused trailing ones NULL */
    /* Values, from shards unless read is set:
     *   counter, gauge: uint64_t [l0][l1][l2] at byte offset `off` in a shard;
     *   histogram: uint64_t [l0][l1][l2][nle + 1] bucket counts at `off` (not
     *   cumulative; the last one is +Inf) and uint64_t [l0][l1][l2] sums of the
     *   observed microseconds at `sum_off`; rendered in seconds. */
    size_t off, sum_off;
    const double *le; /* histogram: bucket upper bounds in seconds, ascending */
    int nle;
    /* Not sharded (gauges, shared atomics): the value of the series whose
     * label value indices are ix[0..]; d is this row, so one function can
     * serve several (e.g. reading the field at d->off of a stats struct).
     * Called on the admin thread at scrape time; NaN leaves the series out. */
    double (*read)(const struct metric_def *d, const int *ix);
    unsigned flags; /* METRIC_SPARSE */
};

/* A module's families and the shards their values are summed over. */
struct metric_table {
    const struct metric_def *defs;
    int ndefs;
    const void *shards; /* first shard; NULL when every family has a read function */
    size_t shard_bytes; /* distance from one shard to the next */
    int nshards;
    /* Or NULL. Called on the scraping thread just before the table's
     * families are rendered, to take the snapshot that their read functions
     * and live label counts then read (e.g. the mailbox's busiest channels,
     * whose names are the values of a label of at most n entries). Scrapes
     * are serialised: one admin thread renders. */
    void (*prepare)(void);
};

/* A table literal for metrics_register(): METRIC_TABLE(DEFS) for families
 * with read functions, METRIC_TABLE(DEFS, .shards = …, .shard_bytes = …,
 * .nshards = …) for sharded ones. */
#define METRIC_TABLE(defs_, ...)                                                                   \
    (&(struct metric_table){                                                                       \
        .defs = (defs_), .ndefs = (int)(sizeof(defs_) / sizeof((defs_)[0])), __VA_ARGS__})

/* Start-up: add a table; families are rendered in registration order. The
 * table is copied, its defs and shards are not (they must outlive the
 * process's scrapes). Safe to call from any thread; at most
 * METRICS_TABLES_MAX tables (more aborts: a start-up bug). */
#define METRICS_TABLES_MAX 16
void metrics_register(const struct metric_table *t);

/* Render one table into out. Returns 0, or -1 when memory ran short (out
 * then holds a partial exposition). */
int metrics_render_table(struct buf *out, const struct metric_table *t);

/* Render every registered table (and, in omnigate, the HTTP families first
 * and the process families last). Returns 0 or -1 as above. */
int metrics_render(struct buf *out);

/* The histogram bucket of an observation of us microseconds: the first bound
 * it does not exceed, or nle (+Inf). For the request path: no division. */
static inline int metrics_bucket(const double *le, int nle, uint64_t us)
{
    int b = 0;
    while (b < nle && (double)us > le[b] * 1e6)
        b++;
    return b;
}

/* ---- omnigate's HTTP families ------------------------------------------- */

#define METRICS_ROUTES_MAX 48
#define METRICS_METHODS    9 /* 7 names, OTHER, unknown */
#define METRICS_STATUSES   28
#define METRICS_BUCKETS    10 /* 0.005 … 2 s, then +Inf */

/* Why a connection waiting for a request was closed under connection
 * pressure (net/conn.c): its head or its idle wait outlasted the shortened
 * timeout, or its slot went to a new connection. */
enum metrics_evict {
    METRICS_EVICT_HEAD,
    METRICS_EVICT_IDLE,
    METRICS_EVICT_ROOM,
    METRICS_EVICT__COUNT
};

struct metrics_shard {
    uint64_t req[METRICS_ROUTES_MAX][METRICS_METHODS][METRICS_STATUSES];
    uint64_t lat_bucket[METRICS_ROUTES_MAX][METRICS_METHODS][METRICS_BUCKETS];
    uint64_t lat_sum_us[METRICS_ROUTES_MAX][METRICS_METHODS];
    uint64_t ttfb_bucket[METRICS_ROUTES_MAX][METRICS_BUCKETS]; /* time to first byte */
    uint64_t ttfb_sum_us[METRICS_ROUTES_MAX];
    uint64_t rejected[OG_E__COUNT];
    uint64_t bytes_in, bytes_out;
    uint64_t conns_accepted, conns_refused;
    uint64_t conns_evicted[METRICS_EVICT__COUNT];
};

/* Owner-thread increment visible to the scraper without tearing. */
#define SHARD_ADD(field, v) __atomic_store_n(&(field), (field) + (v), __ATOMIC_RELAXED)
#define SHARD_GET(field)    __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* Start-up (omnigate): allocate n shards and register the HTTP families, so
 * they come first in the exposition, and the process families, which come
 * last. */
void metrics_init(int nshards);
struct metrics_shard *metrics_shard(int i);

/* Start-up: register a route template label; returns its id (stable). */
int metrics_route_label(const char *tmpl);
/* The id of the label for requests that matched no route. */
int metrics_route_unmatched(void);

/* One answered request. llhttp_method is an enum llhttp_method, or
 * HTTP_METHOD_UNKNOWN (http/request-t.h) when the head failed before its
 * method was parsed: labelled "unknown". Methods outside GET, HEAD, POST,
 * PUT, DELETE, OPTIONS, PATCH are labelled OTHER. */
void metrics_observe_request(struct metrics_shard *m, int route_id, int llhttp_method, int status,
                             uint64_t latency_us);
/* Time from dispatch to the response head being handed to the socket: for
 * streamed objects this is the range start latency. */
void metrics_observe_ttfb(struct metrics_shard *m, int route_id, uint64_t latency_us);

static inline void metrics_rejected(struct metrics_shard *m, enum og_err e)
{
    SHARD_ADD(m->rejected[e], 1);
}

#endif
