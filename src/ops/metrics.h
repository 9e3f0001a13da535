/*
 * metrics.h — the metric registry and per-worker shards (DESIGN §9).
 *
 * Each worker owns one shard and is its only writer (relaxed atomic stores,
 * so a scrape never reads a torn value); the admin loop sums the shards at
 * scrape time. Labels are bounded: routes by template id, methods and
 * statuses from fixed tables. Modules with metrics of their own register a
 * renderer, so /metrics stays one registry.
 */
#ifndef OPS_METRICS_H
#define OPS_METRICS_H

#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

#define METRICS_ROUTES_MAX 48
#define METRICS_METHODS    8
#define METRICS_STATUSES   28
#define METRICS_BUCKETS    10 /* 0.005 … 2 s, then +Inf */

struct metrics_shard {
    uint64_t req[METRICS_ROUTES_MAX][METRICS_METHODS][METRICS_STATUSES];
    uint64_t lat_bucket[METRICS_ROUTES_MAX][METRICS_METHODS][METRICS_BUCKETS];
    uint64_t lat_sum_us[METRICS_ROUTES_MAX][METRICS_METHODS];
    uint64_t ttfb_bucket[METRICS_ROUTES_MAX][METRICS_BUCKETS]; /* time to first byte */
    uint64_t ttfb_sum_us[METRICS_ROUTES_MAX];
    uint64_t rejected[OG_E__COUNT];
    uint64_t bytes_in, bytes_out;
    uint64_t conns_accepted, conns_refused;
};

/* Owner-thread increment visible to the scraper without tearing. */
#define SHARD_ADD(field, v) __atomic_store_n(&(field), (field) + (v), __ATOMIC_RELAXED)
#define SHARD_GET(field)    __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* Start-up: allocate n shards. */
void metrics_init(int nshards);
struct metrics_shard *metrics_shard(int i);

/* Start-up: register a route template label; returns its id (stable). */
int metrics_route_label(const char *tmpl);
/* The id of the label for requests that matched no route. */
int metrics_route_unmatched(void);

void metrics_observe_request(struct metrics_shard *m, int route_id, int llhttp_method, int status,
                             uint64_t latency_us);
/* Time from dispatch to the response head being handed to the socket: for
 * streamed objects this is the range start latency. */
void metrics_observe_ttfb(struct metrics_shard *m, int route_id, uint64_t latency_us);

static inline void metrics_rejected(struct metrics_shard *m, enum og_err e)
{
    SHARD_ADD(m->rejected[e], 1);
}

/* A module's own families, appended to the exposition in registration order. */
typedef void (*metrics_render_fn)(struct buf *out);
void metrics_register(metrics_render_fn fn);

/* Render the whole exposition (Prometheus text format 0.0.4). Returns 0 or -1
 * on allocation failure. */
int metrics_render(struct buf *out);

/* Helpers for renderers. */
void metrics_family(struct buf *out, const char *name, const char *type, const char *help);
void metrics_sample(struct buf *out, const char *name, const char *labels, double v);

#endif
