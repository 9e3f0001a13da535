/*
 * metrics.c — shards, summing and text exposition.
 */
#include "ops/metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "http/router.h"

static struct metrics_shard *shards; /* written by owners, read by the scraper */
static int nshards;
static const char *route_labels[METRICS_ROUTES_MAX]; /* read-only after start-up */
static int nroutes;
static metrics_render_fn renderers[16]; /* read-only after start-up */
static int nrenderers;
static int render_oom; /* set by put() during a render; admin thread only */

static const int STATUSES[METRICS_STATUSES] = {0,   200, 201, 202, 204, 206, 304, 400, 401, 403,
                                               404, 405, 408, 409, 411, 413, 415, 416, 417, 429,
                                               431, 499, 500, 501, 502, 503, 504, 507};
static const char *const METHODS[METRICS_METHODS] = {"GET",    "HEAD",    "POST",  "PUT",
                                                     "DELETE", "OPTIONS", "PATCH", "OTHER"};
static const double BUCKETS[METRICS_BUCKETS - 1] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2};

void metrics_init(int n)
{
    /* Shards are large and zeroed; calloc keeps untouched pages unbacked. */
    shards = calloc((size_t)n, sizeof(*shards));
    if (shards == NULL) {
        fprintf(stderr, "omnigate: out of memory for metric shards\n");
        abort();
    }
    nshards = n;
    if (nroutes == 0)
        metrics_route_label("unmatched");
}

struct metrics_shard *metrics_shard(int i)
{
    return &shards[i];
}

int metrics_route_label(const char *tmpl)
{
    for (int i = 0; i < nroutes; i++)
        if (strcmp(route_labels[i], tmpl) == 0)
            return i;
    if (nroutes == 0 && strcmp(tmpl, "unmatched") != 0)
        route_labels[nroutes++] = "unmatched";
    if (nroutes >= METRICS_ROUTES_MAX)
        abort(); /* a start-up table bigger than the label space */
    route_labels[nroutes] = tmpl;
    return nroutes++;
}

int metrics_route_unmatched(void)
{
    return 0;
}

static int status_index(int status)
{
    for (int i = 1; i < METRICS_STATUSES; i++)
        if (STATUSES[i] == status)
            return i;
    return 0;
}

static int method_index(int m)
{
    unsigned bit = router_method_bit(m);
    return bit ? __builtin_ctz(bit) : METRICS_METHODS - 1;
}

/* The latency histogram bucket of a duration (the last one is +Inf). */
static int bucket_of(uint64_t latency_us)
{
    int b = 0;
    while (b < METRICS_BUCKETS - 1 && (double)latency_us > BUCKETS[b] * 1e6)
        b++;
    return b;
}

void metrics_observe_request(struct metrics_shard *m, int route_id, int llhttp_method, int status,
                             uint64_t latency_us)
{
    int mi = method_index(llhttp_method);
    SHARD_ADD(m->req[route_id][mi][status_index(status)], 1);
    SHARD_ADD(m->lat_bucket[route_id][mi][bucket_of(latency_us)], 1);
    SHARD_ADD(m->lat_sum_us[route_id][mi], latency_us);
}

void metrics_observe_ttfb(struct metrics_shard *m, int route_id, uint64_t latency_us)
{
    int b = bucket_of(latency_us);
    SHARD_ADD(m->ttfb_bucket[route_id][b], 1);
    SHARD_ADD(m->ttfb_sum_us[route_id], latency_us);
}

void metrics_register(metrics_render_fn fn)
{
    if (nrenderers < (int)(sizeof(renderers) / sizeof(renderers[0])))
        renderers[nrenderers++] = fn;
}

static void put(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0 && buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1))
        render_oom = 1;
}

void metrics_family(struct buf *out, const char *name, const char *type, const char *help)
{
    put(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct buf *out, const char *name, const char *labels, double v)
{
    if (labels && *labels)
        put(out, "%s{%s} %.17g\n", name, labels, v);
    else
        put(out, "%s %.17g\n", name, v);
}

static uint64_t sum(size_t off)
{
    uint64_t t = 0;
    for (int i = 0; i < nshards; i++)
        t += __atomic_load_n((uint64_t *)((char *)&shards[i] + off), __ATOMIC_RELAXED);
    return t;
}
#define SUM(field) sum(offsetof(struct metrics_shard, field))

static void render_http(struct buf *out)
{
    char lab[256];
    metrics_family(out, "http_requests_total", "counter",
                   "HTTP requests by route template, method and status.");
    for (int r = 0; r < nroutes; r++)
        for (int m = 0; m < METRICS_METHODS; m++)
            for (int s = 0; s < METRICS_STATUSES; s++) {
                uint64_t v = SUM(req[r][m][s]);
                if (!v)
                    continue;
                snprintf(lab, sizeof(lab), "route=\"%s\",method=\"%s\",status=\"%d\"",
                         route_labels[r], METHODS[m], STATUSES[s]);
                metrics_sample(out, "http_requests_total", lab, (double)v);
            }
    metrics_family(out, "request_latency_seconds", "histogram",
                   "Time from a request's dispatch to its response.");
    for (int r = 0; r < nroutes; r++)
        for (int m = 0; m < METRICS_METHODS; m++) {
            uint64_t counts[METRICS_BUCKETS], total = 0;
            for (int b = 0; b < METRICS_BUCKETS; b++)
                total += counts[b] = SUM(lat_bucket[r][m][b]);
            if (!total)
                continue;
            uint64_t cum = 0;
            for (int b = 0; b < METRICS_BUCKETS; b++) {
                cum += counts[b];
                if (b < METRICS_BUCKETS - 1)
                    snprintf(lab, sizeof(lab), "route=\"%s\",method=\"%s\",le=\"%g\"",
                             route_labels[r], METHODS[m], BUCKETS[b]);
                else
                    snprintf(lab, sizeof(lab), "route=\"%s\",method=\"%s\",le=\"+Inf\"",
                             route_labels[r], METHODS[m]);
                metrics_sample(out, "request_latency_seconds_bucket", lab, (double)cum);
            }
            snprintf(lab, sizeof(lab), "route=\"%s\",method=\"%s\"", route_labels[r], METHODS[m]);
            metrics_sample(out, "request_latency_seconds_sum", lab,
                           (double)SUM(lat_sum_us[r][m]) / 1e6);
            metrics_sample(out, "request_latency_seconds_count", lab, (double)total);
        }
    metrics_family(
        out, "response_first_byte_seconds", "histogram",
        "Time from dispatch to the response head on the socket (range start for objects).");
    for (int r = 0; r < nroutes; r++) {
        uint64_t counts[METRICS_BUCKETS], total = 0, cum = 0;
        for (int b = 0; b < METRICS_BUCKETS; b++)
            total += counts[b] = SUM(ttfb_bucket[r][b]);
        if (!total)
            continue;
        for (int b = 0; b < METRICS_BUCKETS; b++) {
            cum += counts[b];
            if (b < METRICS_BUCKETS - 1)
                snprintf(lab, sizeof(lab), "route=\"%s\",le=\"%g\"", route_labels[r], BUCKETS[b]);
            else
                snprintf(lab, sizeof(lab), "route=\"%s\",le=\"+Inf\"", route_labels[r]);
            metrics_sample(out, "response_first_byte_seconds_bucket", lab, (double)cum);
        }
        snprintf(lab, sizeof(lab), "route=\"%s\"", route_labels[r]);
        metrics_sample(out, "response_first_byte_seconds_sum", lab,
                       (double)SUM(ttfb_sum_us[r]) / 1e6);
        metrics_sample(out, "response_first_byte_seconds_count", lab, (double)total);
    }
    metrics_family(out, "rejected_total", "counter", "Non-2xx answers by error code.");
    for (int e = 0; e < OG_E__COUNT; e++) {
        snprintf(lab, sizeof(lab), "reason=\"%s\"", og_err_code((enum og_err)e));
        metrics_sample(out, "rejected_total", lab, (double)SUM(rejected[e]));
    }
    metrics_family(out, "bytes_in_total", "counter", "Bytes read from clients.");
    metrics_sample(out, "bytes_in_total", NULL, (double)SUM(bytes_in));
    metrics_family(out, "bytes_out_total", "counter", "Bytes written to clients.");
    metrics_sample(out, "bytes_out_total", NULL, (double)SUM(bytes_out));
    metrics_family(out, "connections_accepted_total", "counter", "Client connections accepted.");
    metrics_sample(out, "connections_accepted_total", NULL, (double)SUM(conns_accepted));
    metrics_family(out, "connections_refused_total", "counter",
                   "Client connections refused over max_connections.");
    metrics_sample(out, "connections_refused_total", NULL, (double)SUM(conns_refused));
}

static void render_process(struct buf *out)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &rss) != 2)
            size = rss = 0;
        fclose(f);
    }
    metrics_family(out, "process_resident_memory_bytes", "gauge", "Resident set size.");
    metrics_sample(out, "process_resident_memory_bytes", NULL, (double)rss * (double)page);
    metrics_family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size.");
    metrics_sample(out, "process_virtual_memory_bytes", NULL, (double)size * (double)page);
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        while (readdir(d))
            fds++;
        closedir(d);
        fds -= 3; /* ".", ".." and the directory's own fd */
    }
    metrics_family(out, "process_open_fds", "gauge", "Open file descriptors.");
    metrics_sample(out, "process_open_fds", NULL, fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        metrics_family(out, "process_max_fds", "gauge", "File descriptor limit.");
        metrics_sample(out, "process_max_fds", NULL, (double)rl.rlim_cur);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    metrics_family(out, "process_cpu_seconds_total", "counter", "User and system CPU time.");
    metrics_sample(out, "process_cpu_seconds_total", NULL, cpu);
}

int metrics_render(struct buf *out)
{
    render_oom = 0;
    render_http(out);
    for (int i = 0; i < nrenderers; i++)
        renderers[i](out);
    render_process(out);
    return render_oom ? -1 : 0;
}
