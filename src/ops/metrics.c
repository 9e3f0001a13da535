/*
 * metrics.c — the registry, the one exposition renderer, and omnigate's
 * HTTP and process families.
 */
#include "ops/metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "http/request-t.h"
#include "http/router.h"

/* ---- registry ------------------------------------------------------------- */

/* Slots are claimed with an atomic counter and published with a release
 * store, so a table registered from a worker thread (remote.c, on its first
 * pool) is either rendered whole or not at all. */
static struct metric_table tables[METRICS_TABLES_MAX];
static atomic_bool table_ready[METRICS_TABLES_MAX];
static atomic_int ntables;
static bool with_process; /* set by metrics_init(): omnigate only */

void metrics_register(const struct metric_table *t)
{
    int i = atomic_fetch_add(&ntables, 1);
    if (i >= METRICS_TABLES_MAX)
        abort(); /* more tables than modules: a start-up bug */
    tables[i] = *t;
    atomic_store_explicit(&table_ready[i], true, memory_order_release);
}

/* ---- exposition ------------------------------------------------------------ */

/* One render: the output and whether an append failed. */
struct render {
    struct buf *out;
    bool oom;
};

static void put(struct render *r, const char *p, size_t n)
{
    if (!r->oom && buf_append(r->out, p, n) != 0)
        r->oom = true;
}

static void put_str(struct render *r, const char *s)
{
    put(r, s, strlen(s));
}

/* A sample value: %.17g prints integers below 2^53 exactly and keeps every
 * bit of a fraction. */
static void put_value(struct render *r, double v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), " %.17g\n", v);
    put(r, num, (size_t)n);
}

/* A label value, escaped as the text format requires (\\, \", \n): channel
 * names may hold a quote or a backslash (never a control character). */
static void put_label_value(struct render *r, const char *v)
{
    for (const char *s = v; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
        if (esc)
            put_str(r, esc);
        else
            put(r, s, 1);
    }
}

/* name{labels,le="…"} — le is NULL for a series without one. */
static void put_series(struct render *r, const struct metric_def *d, const char *suffix,
                       const int *ix, const char *le)
{
    put_str(r, d->name);
    put_str(r, suffix);
    bool open = false;
    for (int k = 0; k < METRIC_LABELS_MAX && d->labels[k]; k++) {
        put_str(r, open ? "," : "{");
        open = true;
        put_str(r, d->labels[k]->name);
        put_str(r, "=\"");
        put_label_value(r, d->labels[k]->values[ix[k]]);
        put_str(r, "\"");
    }
    if (le) {
        put_str(r, open ? ",le=\"" : "{le=\"");
        put_str(r, le);
        put_str(r, "\"");
        open = true;
    }
    if (open)
        put_str(r, "}");
}

static uint64_t shard_sum(const struct metric_table *t, size_t off)
{
    uint64_t v = 0;
    for (int i = 0; i < t->nshards; i++)
        v += __atomic_load_n((const uint64_t *)((const char *)t->shards + i * t->shard_bytes + off),
                             __ATOMIC_RELAXED);
    return v;
}

static void render_histogram(struct render *r, const struct metric_table *t,
                             const struct metric_def *d, const int *ix, size_t flat)
{
    uint64_t counts[METRIC_LE_MAX + 1], total = 0, cum = 0;
    if (d->nle < 0 || d->nle > METRIC_LE_MAX)
        return; /* a table bug; the unit tests would show it */
    size_t base = d->off + flat * (size_t)(d->nle + 1) * sizeof(uint64_t);
    for (int b = 0; b <= d->nle; b++)
        total += counts[b] = shard_sum(t, base + (size_t)b * sizeof(uint64_t));
    if (total == 0 && (d->flags & METRIC_SPARSE))
        return;
    for (int b = 0; b <= d->nle; b++) {
        char le[32] = "+Inf";
        if (b < d->nle)
            snprintf(le, sizeof(le), "%g", d->le[b]);
        cum += counts[b];
        put_series(r, d, "_bucket", ix, le);
        put_value(r, (double)cum);
    }
    put_series(r, d, "_sum", ix, NULL);
    put_value(r, (double)shard_sum(t, d->sum_off + flat * sizeof(uint64_t)) / 1e6);
    put_series(r, d, "_count", ix, NULL);
    put_value(r, (double)total);
}

static void render_family(struct render *r, const struct metric_table *t,
                          const struct metric_def *d)
{
    static const char *const TYPES[] = {"counter", "gauge", "histogram"};
    int n[METRIC_LABELS_MAX], live[METRIC_LABELS_MAX], ix[METRIC_LABELS_MAX] = {0};
    int nl = 0;
    for (; nl < METRIC_LABELS_MAX && d->labels[nl]; nl++) {
        n[nl] = d->labels[nl]->n;
        live[nl] = d->labels[nl]->live ? *d->labels[nl]->live : n[nl];
        if (live[nl] <= 0)
            return;
    }
    put_str(r, "# HELP ");
    put_str(r, d->name);
    put_str(r, " ");
    put_str(r, d->help);
    put_str(r, "\n# TYPE ");
    put_str(r, d->name);
    put_str(r, " ");
    put_str(r, TYPES[d->type]);
    put_str(r, "\n");
    /* Every combination of live label values, the last label fastest. */
    for (;;) {
        size_t flat = 0;
        for (int k = 0; k < nl; k++)
            flat = flat * (size_t)n[k] + (size_t)ix[k];
        if (d->type == METRIC_HISTOGRAM) {
            render_histogram(r, t, d, ix, flat);
        } else {
            double v =
                d->read ? d->read(d, ix) : (double)shard_sum(t, d->off + flat * sizeof(uint64_t));
            if (!isnan(v) && !(v == 0 && (d->flags & METRIC_SPARSE))) {
                put_series(r, d, "", ix, NULL);
                put_value(r, v);
            }
        }
        int k = nl - 1;
        while (k >= 0 && ++ix[k] == live[k])
            ix[k--] = 0;
        if (k < 0)
            break;
    }
}

int metrics_render_table(struct buf *out, const struct metric_table *t)
{
    struct render r = {out, false};
    if (t->prepare)
        t->prepare();
    for (int i = 0; i < t->ndefs; i++)
        render_family(&r, t, &t->defs[i]);
    return r.oom ? -1 : 0;
}

/* ---- omnigate's HTTP families ---------------------------------------------- */

static struct metrics_shard *shards;                 /* written by owners, read by the scraper */
static const char *route_labels[METRICS_ROUTES_MAX]; /* read-only after start-up */
static int nroutes;

/* The status label set; a status outside it is counted as "0". */
// clang-format off
#define HTTP_STATUS_LABELS(X)                                                                      \
    X(0)   X(200) X(201) X(202) X(204) X(206) X(304) X(400) X(401) X(403) X(404) X(405) X(408)    \
    X(409) X(411) X(413) X(415) X(416) X(417) X(429) X(431) X(499) X(500) X(501) X(502) X(503)    \
    X(504) X(507)
// clang-format on
#define AS_INT(s) s,
#define AS_STR(s) #s,
static const int STATUSES[METRICS_STATUSES] = {HTTP_STATUS_LABELS(AS_INT)};
static const char *const STATUS_LABELS[METRICS_STATUSES] = {HTTP_STATUS_LABELS(AS_STR)};
/* Indexed by the M_* bit number; then methods outside them, then a head that
 * failed before its method was read (lowercase, unlike every method
 * llhttp knows). */
static const char *const METHODS[METRICS_METHODS] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "OTHER", "unknown"};
#define METHOD_OTHER   7
#define METHOD_UNKNOWN 8
static const double BUCKETS[METRICS_BUCKETS - 1] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2};
static const char *const REASONS[OG_E__COUNT] = {
#define X(name, http, code, reason) code,
    OG_ERRORS(X)
#undef X
};

static const struct metric_label L_ROUTE = {"route", route_labels, METRICS_ROUTES_MAX, &nroutes};
static const struct metric_label L_METHOD = {"method", METHODS, METRICS_METHODS, NULL};
static const struct metric_label L_STATUS = {"status", STATUS_LABELS, METRICS_STATUSES, NULL};
static const struct metric_label L_REASON = {"reason", REASONS, OG_E__COUNT, NULL};
static const char *const EVICT_REASONS[METRICS_EVICT__COUNT] = {"head_timeout", "idle_timeout",
                                                                "make_room"};
static const struct metric_label L_EVICT = {"reason", EVICT_REASONS, METRICS_EVICT__COUNT, NULL};

#define IN_SHARD(field) offsetof(struct metrics_shard, field)
static const struct metric_def HTTP_METRICS[] = {
    {"http_requests_total", METRIC_COUNTER, "HTTP requests by route template, method and status.",
     .labels = {&L_ROUTE, &L_METHOD, &L_STATUS}, .off = IN_SHARD(req), .flags = METRIC_SPARSE},
    {"request_latency_seconds", METRIC_HISTOGRAM, "Time from a request's dispatch to its response.",
     .labels = {&L_ROUTE, &L_METHOD}, .off = IN_SHARD(lat_bucket), .sum_off = IN_SHARD(lat_sum_us),
     .le = BUCKETS, .nle = METRICS_BUCKETS - 1, .flags = METRIC_SPARSE},
    {"response_first_byte_seconds", METRIC_HISTOGRAM,
     "Time from dispatch to the response head on the socket (range start for objects).",
     .labels = {&L_ROUTE}, .off = IN_SHARD(ttfb_bucket), .sum_off = IN_SHARD(ttfb_sum_us),
     .le = BUCKETS, .nle = METRICS_BUCKETS - 1, .flags = METRIC_SPARSE},
    {"rejected_total", METRIC_COUNTER, "Non-2xx answers by error code.", .labels = {&L_REASON},
     .off = IN_SHARD(rejected)},
    {"bytes_in_total", METRIC_COUNTER, "Bytes read from clients.", .off = IN_SHARD(bytes_in)},
    {"bytes_out_total", METRIC_COUNTER, "Bytes written to clients.", .off = IN_SHARD(bytes_out)},
    {"connections_accepted_total", METRIC_COUNTER, "Client connections accepted.",
     .off = IN_SHARD(conns_accepted)},
    {"connections_refused_total", METRIC_COUNTER,
     "Client connections refused: over max_connections with none to evict, or draining.",
     .off = IN_SHARD(conns_refused)},
    {"connections_evicted_total", METRIC_COUNTER,
     "Client connections waiting for a request closed under connection pressure, by reason.",
     .labels = {&L_EVICT}, .off = IN_SHARD(conns_evicted)},
};

void metrics_init(int n)
{
    /* Shards are large and zeroed; calloc keeps untouched pages unbacked. */
    shards = calloc((size_t)n, sizeof(*shards));
    if (shards == NULL) {
        fprintf(stderr, "omnigate: out of memory for metric shards\n");
        abort();
    }
    if (nroutes == 0)
        metrics_route_label("unmatched");
    metrics_register(
        METRIC_TABLE(HTTP_METRICS, .shards = shards, .shard_bytes = sizeof(*shards), .nshards = n));
    with_process = true;
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
    if (bit)
        return __builtin_ctz(bit);
    return m == HTTP_METHOD_UNKNOWN ? METHOD_UNKNOWN : METHOD_OTHER;
}

void metrics_observe_request(struct metrics_shard *m, int route_id, int llhttp_method, int status,
                             uint64_t latency_us)
{
    int mi = method_index(llhttp_method);
    SHARD_ADD(m->req[route_id][mi][status_index(status)], 1);
    SHARD_ADD(m->lat_bucket[route_id][mi][metrics_bucket(BUCKETS, METRICS_BUCKETS - 1, latency_us)],
              1);
    SHARD_ADD(m->lat_sum_us[route_id][mi], latency_us);
}

void metrics_observe_ttfb(struct metrics_shard *m, int route_id, uint64_t latency_us)
{
    SHARD_ADD(m->ttfb_bucket[route_id][metrics_bucket(BUCKETS, METRICS_BUCKETS - 1, latency_us)],
              1);
    SHARD_ADD(m->ttfb_sum_us[route_id], latency_us);
}

/* ---- process families (omnigate) -------------------------------------------- */

/* /proc/self/statm: field 0 is the virtual size, 1 the resident set, in pages. */
static double statm_bytes(int field)
{
    unsigned long v[2] = {0, 0};
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &v[0], &v[1]) != 2)
            v[0] = v[1] = 0;
        fclose(f);
    }
    return (double)v[field] * (double)sysconf(_SC_PAGESIZE);
}

static double read_rss(const struct metric_def *d, const int *ix)
{
    return statm_bytes(1);
}

static double read_vsize(const struct metric_def *d, const int *ix)
{
    return statm_bytes(0);
}

static double read_open_fds(const struct metric_def *d, const int *ix)
{
    int fds = 0;
    DIR *dir = opendir("/proc/self/fd");
    if (dir) {
        while (readdir(dir))
            fds++;
        closedir(dir);
        fds -= 3; /* ".", ".." and the directory's own fd */
    }
    return fds;
}

static double read_max_fds(const struct metric_def *d, const int *ix)
{
    struct rlimit rl;
    return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (double)rl.rlim_cur : NAN;
}

static double read_cpu(const struct metric_def *d, const int *ix)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static const struct metric_def PROCESS_METRICS[] = {
    {"process_resident_memory_bytes", METRIC_GAUGE, "Resident set size.", .read = read_rss},
    {"process_virtual_memory_bytes", METRIC_GAUGE, "Virtual memory size.", .read = read_vsize},
    {"process_open_fds", METRIC_GAUGE, "Open file descriptors.", .read = read_open_fds},
    {"process_max_fds", METRIC_GAUGE, "File descriptor limit.", .read = read_max_fds},
    {"process_cpu_seconds_total", METRIC_COUNTER, "User and system CPU time.", .read = read_cpu},
};

/* ---- all of it ---------------------------------------------------------------- */

int metrics_render(struct buf *out)
{
    int rc = 0, n = atomic_load(&ntables);
    for (int i = 0; i < n && i < METRICS_TABLES_MAX; i++)
        if (atomic_load_explicit(&table_ready[i], memory_order_acquire) &&
            metrics_render_table(out, &tables[i]) != 0)
            rc = -1;
    if (with_process && metrics_render_table(out, METRIC_TABLE(PROCESS_METRICS)) != 0)
        rc = -1;
    return rc;
}
