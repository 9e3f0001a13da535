/*
 * The metric registry (src/ops/metrics.c): counters, gauges and histograms
 * with labels rendered from declarative tables, byte for byte in the
 * Prometheus text format 0.0.4; shards summed; sparse families; bounded and
 * escaped label values; the HTTP families' method label.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "http/request-t.h"
#include "ops/metrics.h"

#include <llhttp.h>

/* ---- a module of our own --------------------------------------------------- */

struct tshard {
    uint64_t calls[2][3];      /* [svc][op] */
    uint64_t lat[2][3][3];     /* [svc][op][bucket]: 0.25, 1, +Inf */
    uint64_t lat_sum_us[2][3]; /* [svc][op] */
    uint64_t bytes;
};

static const char *const SVC[] = {"a", "b"};
static const char *const OPS[] = {"get", "put", "del"};
static const double LE[] = {0.25, 1};
static const struct metric_label L_SVC = {"svc", SVC, 2, NULL};
static const struct metric_label L_OP = {"op", OPS, 3, NULL};

static double read_temp(const struct metric_def *d, const int *ix)
{
    return ix[0] == 0 ? 21.5 : -3;
}

static double read_nothing(const struct metric_def *d, const int *ix)
{
    return NAN;
}

#define IN(field) offsetof(struct tshard, field)
static const struct metric_def DEFS[] = {
    {"t_calls_total", METRIC_COUNTER, "Calls by service and op.", .labels = {&L_SVC, &L_OP},
     .off = IN(calls), .flags = METRIC_SPARSE},
    {"t_latency_seconds", METRIC_HISTOGRAM, "Call latency.", .labels = {&L_SVC, &L_OP},
     .off = IN(lat), .sum_off = IN(lat_sum_us), .le = LE, .nle = 2, .flags = METRIC_SPARSE},
    {"t_bytes_total", METRIC_COUNTER, "Bytes.", .off = IN(bytes)},
    {"t_temperature", METRIC_GAUGE, "Temperature by service.", .labels = {&L_SVC},
     .read = read_temp},
    {"t_absent", METRIC_GAUGE, "Never has a value.", .read = read_nothing},
};

static void observe(struct tshard *s, int svc, int op, uint64_t us)
{
    SHARD_ADD(s->calls[svc][op], 1);
    SHARD_ADD(s->lat[svc][op][metrics_bucket(LE, 2, us)], 1);
    SHARD_ADD(s->lat_sum_us[svc][op], us);
}

static char *render(const struct metric_table *t)
{
    struct buf out = {0};
    cr_assert_eq(metrics_render_table(&out, t), 0);
    cr_assert(buf_append(&out, "", 1) == 0);
    return out.p;
}

Test(metrics, counter_gauge_histogram_with_labels)
{
    struct tshard sh[2] = {0};
    observe(&sh[0], 0, 1, 250000);  /* le 0.25: a bound is inclusive */
    observe(&sh[1], 0, 1, 500000);  /* le 1 */
    observe(&sh[1], 0, 1, 2000000); /* +Inf */
    observe(&sh[0], 1, 0, 1);
    SHARD_ADD(sh[0].bytes, 40);
    SHARD_ADD(sh[1].bytes, 2);
    char *text =
        render(METRIC_TABLE(DEFS, .shards = sh, .shard_bytes = sizeof(sh[0]), .nshards = 2));
    cr_assert_str_eq(text, "# HELP t_calls_total Calls by service and op.\n"
                           "# TYPE t_calls_total counter\n"
                           "t_calls_total{svc=\"a\",op=\"put\"} 3\n"
                           "t_calls_total{svc=\"b\",op=\"get\"} 1\n"
                           "# HELP t_latency_seconds Call latency.\n"
                           "# TYPE t_latency_seconds histogram\n"
                           "t_latency_seconds_bucket{svc=\"a\",op=\"put\",le=\"0.25\"} 1\n"
                           "t_latency_seconds_bucket{svc=\"a\",op=\"put\",le=\"1\"} 2\n"
                           "t_latency_seconds_bucket{svc=\"a\",op=\"put\",le=\"+Inf\"} 3\n"
                           "t_latency_seconds_sum{svc=\"a\",op=\"put\"} 2.75\n"
                           "t_latency_seconds_count{svc=\"a\",op=\"put\"} 3\n"
                           "t_latency_seconds_bucket{svc=\"b\",op=\"get\",le=\"0.25\"} 1\n"
                           "t_latency_seconds_bucket{svc=\"b\",op=\"get\",le=\"1\"} 1\n"
                           "t_latency_seconds_bucket{svc=\"b\",op=\"get\",le=\"+Inf\"} 1\n"
                           "t_latency_seconds_sum{svc=\"b\",op=\"get\"} 9.9999999999999995e-07\n"
                           "t_latency_seconds_count{svc=\"b\",op=\"get\"} 1\n"
                           "# HELP t_bytes_total Bytes.\n"
                           "# TYPE t_bytes_total counter\n"
                           "t_bytes_total 42\n"
                           "# HELP t_temperature Temperature by service.\n"
                           "# TYPE t_temperature gauge\n"
                           "t_temperature{svc=\"a\"} 21.5\n"
                           "t_temperature{svc=\"b\"} -3\n"
                           "# HELP t_absent Never has a value.\n"
                           "# TYPE t_absent gauge\n");
    free(text);
}

Test(metrics, dense_families_show_zeros_sparse_ones_do_not)
{
    static const struct metric_def dense[] = {
        {"t_calls_total", METRIC_COUNTER, "Calls.", .labels = {&L_SVC, &L_OP}, .off = IN(calls)},
        {"t_latency_seconds", METRIC_HISTOGRAM, "Latency.", .labels = {&L_SVC}, .off = IN(lat),
         .sum_off = IN(lat_sum_us), .le = LE, .nle = 2},
    };
    struct tshard sh = {0};
    char *text =
        render(METRIC_TABLE(dense, .shards = &sh, .shard_bytes = sizeof(sh), .nshards = 1));
    cr_assert(strstr(text, "t_calls_total{svc=\"a\",op=\"get\"} 0\n"));
    cr_assert(strstr(text, "t_calls_total{svc=\"b\",op=\"del\"} 0\n"));
    cr_assert(strstr(text, "t_latency_seconds_count{svc=\"b\"} 0\n"));
    free(text);
    text = render(METRIC_TABLE(DEFS, .shards = &sh, .shard_bytes = sizeof(sh), .nshards = 1));
    cr_assert_null(strstr(text, "t_calls_total{"), "%s", text);
    cr_assert_null(strstr(text, "t_latency_seconds_bucket"), "%s", text);
    cr_assert(strstr(text, "# TYPE t_latency_seconds histogram\n"), "the family is still declared");
    free(text);
}

Test(metrics, live_label_values_and_escaping)
{
    static const char *values[4] = {"plain", "q\"uote", "back\\slash", "new\nline"};
    static int live = 3;
    static const struct metric_label l = {"v", values, 4, &live};
    static const struct metric_def defs[] = {
        {"t_x_total", METRIC_COUNTER, "X.", .labels = {&l}, .off = 0},
    };
    uint64_t counts[4] = {1, 2, 3, 4};
    char *text =
        render(METRIC_TABLE(defs, .shards = counts, .shard_bytes = sizeof(counts), .nshards = 1));
    cr_assert_str_eq(text, "# HELP t_x_total X.\n"
                           "# TYPE t_x_total counter\n"
                           "t_x_total{v=\"plain\"} 1\n"
                           "t_x_total{v=\"q\\\"uote\"} 2\n"
                           "t_x_total{v=\"back\\\\slash\"} 3\n");
    free(text);
    live = 4;
    text =
        render(METRIC_TABLE(defs, .shards = counts, .shard_bytes = sizeof(counts), .nshards = 1));
    cr_assert(strstr(text, "t_x_total{v=\"new\\nline\"} 4\n"), "%s", text);
    free(text);
}

Test(metrics, bucket_bounds_are_inclusive)
{
    cr_assert_eq(metrics_bucket(LE, 2, 0), 0);
    cr_assert_eq(metrics_bucket(LE, 2, 250000), 0);
    cr_assert_eq(metrics_bucket(LE, 2, 250001), 1);
    cr_assert_eq(metrics_bucket(LE, 2, 1000000), 1);
    cr_assert_eq(metrics_bucket(LE, 2, 1000001), 2);
    cr_assert_eq(metrics_bucket(LE, 2, UINT64_MAX), 2);
}

Test(metrics, registry_renders_tables_in_registration_order)
{
    static const struct metric_def first[] = {
        {"t_first", METRIC_GAUGE, "First.", .read = read_temp},
    };
    static const struct metric_def second[] = {
        {"t_second", METRIC_GAUGE, "Second.", .labels = {&L_SVC}, .read = read_temp},
    };
    metrics_register(METRIC_TABLE(first));
    metrics_register(METRIC_TABLE(second));
    struct buf out = {0};
    cr_assert_eq(metrics_render(&out), 0);
    cr_assert(buf_append(&out, "", 1) == 0);
    /* No metrics_init(): neither HTTP nor process families (the substrate). */
    cr_assert_str_eq(out.p, "# HELP t_first First.\n"
                            "# TYPE t_first gauge\n"
                            "t_first 21.5\n"
                            "# HELP t_second Second.\n"
                            "# TYPE t_second gauge\n"
                            "t_second{svc=\"a\"} 21.5\n"
                            "t_second{svc=\"b\"} -3\n");
    buf_release(&out);
}

/* ---- omnigate's HTTP families ------------------------------------------------ */

Test(metrics, http_families_and_the_unknown_method)
{
    metrics_init(2);
    int view = metrics_route_label("/v1/view/{name}");
    cr_assert_eq(metrics_route_label("/v1/view/{name}"), view, "labels are registered once");
    metrics_observe_request(metrics_shard(0), view, HTTP_GET, 200, 1000);
    metrics_observe_request(metrics_shard(1), view, HTTP_GET, 200, 30000);
    metrics_observe_request(metrics_shard(1), view, HTTP_PROPFIND, 405, 10);
    metrics_observe_request(metrics_shard(0), metrics_route_unmatched(), HTTP_METHOD_UNKNOWN, 400,
                            10);
    metrics_observe_request(metrics_shard(0), metrics_route_unmatched(), HTTP_DELETE, 999, 10);
    metrics_observe_ttfb(metrics_shard(1), view, 3000000);
    metrics_rejected(metrics_shard(0), OG_E_HEADER_TOO_LARGE);
    struct buf out = {0};
    cr_assert_eq(metrics_render(&out), 0);
    cr_assert(buf_append(&out, "", 1) == 0);
    const char *t = out.p;
    cr_assert(
        strstr(t, "# HELP http_requests_total HTTP requests by route template, method and "
                  "status.\n# TYPE http_requests_total counter\n"
                  "http_requests_total{route=\"unmatched\",method=\"DELETE\",status=\"0\"} 1\n"
                  "http_requests_total{route=\"unmatched\",method=\"unknown\",status=\"400\"} "
                  "1\n"
                  "http_requests_total{route=\"/v1/view/{name}\",method=\"GET\",status=\"200\"} "
                  "2\n"
                  "http_requests_total{route=\"/v1/view/{name}\",method=\"OTHER\",status=\"405\"}"
                  " 1\n# HELP request_latency_seconds "),
        "%s", t);
    cr_assert(strstr(t, "request_latency_seconds_bucket{route=\"/v1/view/{name}\",method=\"GET\","
                        "le=\"0.005\"} 1\n"
                        "request_latency_seconds_bucket{route=\"/v1/view/{name}\",method=\"GET\","
                        "le=\"0.01\"} 1\n"
                        "request_latency_seconds_bucket{route=\"/v1/view/{name}\",method=\"GET\","
                        "le=\"0.025\"} 1\n"
                        "request_latency_seconds_bucket{route=\"/v1/view/{name}\",method=\"GET\","
                        "le=\"0.05\"} 2\n"),
              "%s", t);
    cr_assert(strstr(t, "request_latency_seconds_sum{route=\"/v1/view/{name}\",method=\"GET\"} "
                        "0.031\n"
                        "request_latency_seconds_count{route=\"/v1/view/{name}\",method=\"GET\"} "
                        "2\n"),
              "%s", t);
    cr_assert(strstr(t, "response_first_byte_seconds_bucket{route=\"/v1/view/{name}\",le=\"2\"} 0\n"
                        "response_first_byte_seconds_bucket{route=\"/v1/view/{name}\",le=\"+Inf\"}"
                        " 1\n"),
              "%s", t);
    cr_assert(strstr(t, "rejected_total{reason=\"bad_request\"} 0\n"), "dense: every reason");
    cr_assert(strstr(t, "rejected_total{reason=\"header_too_large\"} 1\n"));
    cr_assert(strstr(t, "# TYPE process_open_fds gauge\nprocess_open_fds "), "process last");
    cr_assert_null(strstr(t, "DELETE\",status=\"400\""), "an unread method is not DELETE");
    buf_release(&out);
}
