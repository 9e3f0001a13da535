/*
 * stats.h — per-hop metrics of downstream calls: per-worker shards of
 * counters and latency histograms, and their registration with the metric
 * registry (ops/metrics.h). The hedge delay reads this worker's histogram
 * (hedge.h).
 */
#ifndef DS_STATS_H
#define DS_STATS_H

#include <stdint.h>

#include "ds/ds.h"

#define STATS_OPS     17
#define STATS_CODES   17
#define STATS_BUCKETS 10 /* latency buckets, +Inf included */

/* Upper bounds (seconds) of the finite latency buckets. */
extern const double stats_le[STATS_BUCKETS - 1];

struct stats_shard {
    uint64_t req[DS__COUNT][STATS_OPS][STATS_CODES];
    uint64_t lat[DS__COUNT][STATS_OPS][STATS_BUCKETS];
    uint64_t lat_sum_us[DS__COUNT][STATS_OPS];
    uint64_t retries[DS__COUNT];
    uint64_t coalesced[DS__COUNT];
    uint64_t hedged[DS__COUNT][2]; /* won, lost */
};

struct ds_call;

/* Allocate one shard per worker (nshards) and register the downstream
 * metric families and gauges. Start-up only; returns 0 or -1 (no memory). */
int stats_start(int nshards);

/* The shard of worker dw (written only by its thread). */
struct stats_shard *stats_of(const struct ds_worker *dw);

/* The label index of an op kind ("other" for PROTO_NONE). */
int stats_op_index(enum proto_kind kind);

/* Count a finished call (or a stream's head) with its latency: status from
 * r, or "cancelled" when the caller gave up. */
void stats_observe(const struct ds_call *c, const struct ds_resp *r);

#endif
