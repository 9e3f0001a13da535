/*
 * substrate.c — build/omnigate-substrate: the reference index, storage or
 * mailbox service (DESIGN §2). Arguments, engines, listeners, fault
 * settings, metric tables and shutdown; the OAP/1 connections live in
 * oapsrv.c, fault injection in fault.c and the admin endpoint in admin.c.
 *
 *   omnigate-substrate --role index|storage|mailbox
 *       --listen HOST:PORT|unix:/path   (repeatable, up to 4)
 *       --admin HOST:PORT
 *       [--mem-cap SIZE] [--max-frame SIZE] [--data-dir DIR --no-amnesia]
 *       [--fsync always|batch|none] [--compact-bytes SIZE] [--stats-channels N]
 *       [--latency-ms N] [--jitter-ms N] [--error-rate F] [--stall-rate F]
 *       [--drop-rate F] [--corrupt-rate F] [--corrupt-op OP]
 *
 * With --data-dir DIR --no-amnesia, storage keeps one file per object
 * (engines/storage); index and mailbox keep a log and snapshots
 * (services/durable/), replayed here before the service listens.
 */
#include "services/substrate.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cas/cas.h"
#include "oap/oap-t.h"
#include "mailbox/chstats.h"
#include "oapnet/addr.h"
#include "ops/metrics.h"
#include "services/durable/journal.h"

struct svc g_svc;

static const int CODES[SVC_CODES_N] = {200, 201, 206, 400, 404, 413, 416,
                                       429, 500, 503, 504, 507, 401, 0};
static const char *const CODE_LABELS[SVC_CODES_N] = {"200", "201", "206", "400",  "404",
                                                     "413", "416", "429", "500",  "503",
                                                     "504", "507", "401", "other"};
static const char *const OP_NAMES[SVC_OP__N] = {
#define SVC_OP_NAME(e, s) s,
    SVC_OPS(SVC_OP_NAME)
#undef SVC_OP_NAME
};

/* ---------------------------------------------------------------- helpers */

void svc_log(const char *fmt, ...)
{
    va_list ap;
    char line[512];

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "{\"svc\":\"substrate\",\"role\":\"%s\",%s}\n", g_svc.role ? g_svc.role : "?",
            line);
}

/* xorshift64*: fault rolls need speed and spread, not secrecy. */
double svc_rand01(void)
{
    uint64_t x = g_svc.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    g_svc.rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

uint32_t svc_rand_below(uint32_t n)
{
    return n ? (uint32_t)(svc_rand01() * n) % n : 0;
}

enum svc_op svc_op_of(const char *name)
{
    for (int i = 0; i < SVC_OP__N; i++)
        if (strcmp(OP_NAMES[i], name) == 0)
            return (enum svc_op)i;
    return SVC_OP_INVALID;
}

const char *svc_op_name(enum svc_op op)
{
    return op < SVC_OP__N ? OP_NAMES[op] : "invalid";
}

int svc_code_at(int i)
{
    return CODES[i];
}

void svc_count(enum svc_op op, int code)
{
    int i;

    for (i = 0; i < SVC_CODES_N - 1; i++)
        if (CODES[i] == code)
            break;
    g_svc.requests[op < SVC_OP__N ? op : SVC_OP_INVALID][i]++;
}

/* --------------------------------------------------------------- metrics */

/* The service's families, rendered by src/ops/metrics.c on the admin port.
 * g_svc is the one shard: the loop thread writes it and serves /metrics. */
static const char *const FAULT_KINDS[FAULT__N] = {"latency", "error", "stall", "drop", "corrupt"};
static const struct metric_label L_ROLE = {"role", &g_svc.role, 1, NULL};
static const struct metric_label L_OP = {"op", OP_NAMES, SVC_OP__N, NULL};
static const struct metric_label L_CODE = {"code", CODE_LABELS, SVC_CODES_N, NULL};
static const struct metric_label L_KIND = {"kind", FAULT_KINDS, FAULT__N, NULL};

#define IN_SVC(field) offsetof(struct svc, field)
static const struct metric_def SVC_METRICS[] = {
    {"substrate_requests_total", METRIC_COUNTER, "OAP/1 requests answered, by op and code.",
     .labels = {&L_ROLE, &L_OP, &L_CODE}, .off = IN_SVC(requests), .flags = METRIC_SPARSE},
    {"substrate_inflight", METRIC_GAUGE, "Requests received and not yet fully answered.",
     .labels = {&L_ROLE}, .off = IN_SVC(inflight)},
    {"substrate_connections", METRIC_GAUGE, "Open OAP/1 connections.", .labels = {&L_ROLE},
     .off = IN_SVC(conns)},
    {"substrate_connections_total", METRIC_COUNTER, "OAP/1 connections accepted.",
     .labels = {&L_ROLE}, .off = IN_SVC(conns_total)},
    {"substrate_frame_errors_total", METRIC_COUNTER, "Connections closed on a bad frame.",
     .labels = {&L_ROLE}, .off = IN_SVC(frame_errors)},
    {"substrate_streams_total", METRIC_COUNTER, "Responses sent as credit-paced streams.",
     .labels = {&L_ROLE}, .off = IN_SVC(streams)},
    {"substrate_bytes_in_total", METRIC_COUNTER, "Bytes read from OAP/1 clients.",
     .labels = {&L_ROLE}, .off = IN_SVC(bytes_in)},
    {"substrate_bytes_out_total", METRIC_COUNTER, "Bytes written to OAP/1 clients.",
     .labels = {&L_ROLE}, .off = IN_SVC(bytes_out)},
    {"substrate_faults_injected_total", METRIC_COUNTER, "Faults injected, by kind.",
     .labels = {&L_ROLE, &L_KIND}, .off = IN_SVC(faults)},
};

/* A uint64_t field of the storage engine's stats, at the row's off. */
static double read_storage(const struct metric_def *d, const int *ix)
{
    struct storage_stats st;
    uint64_t v;

    storage_stats(g_svc.eng.storage, &st);
    memcpy(&v, (const char *)&st + d->off, sizeof(v));
    return (double)v;
}

static double read_index_names(const struct metric_def *d, const int *ix)
{
    return (double)index_count(g_svc.eng.index);
}

static double read_mailbox_channels(const struct metric_def *d, const int *ix)
{
    return (double)mailbox_channels(g_svc.eng.mailbox);
}

#define IN_STATS(field) .off = offsetof(struct storage_stats, field), .read = read_storage
static const struct metric_def STORAGE_METRICS[] = {
    {"substrate_storage_objects", METRIC_GAUGE, "Objects held in memory.", IN_STATS(objects)},
    {"substrate_storage_bytes", METRIC_GAUGE, "Object bytes held in memory.", IN_STATS(bytes)},
    {"substrate_storage_mem_cap_bytes", METRIC_GAUGE, "The cap on object bytes in memory.",
     IN_STATS(mem_cap_bytes)},
    {"substrate_storage_disk_loads_total", METRIC_COUNTER,
     "Objects loaded from the data directory and verified.", IN_STATS(disk_loads)},
    {"substrate_storage_corrupt_reads_total", METRIC_COUNTER,
     "Object files in the data directory that failed verification.", IN_STATS(corrupt_reads)},
};
static const struct metric_def INDEX_METRICS[] = {
    {"substrate_index_names", METRIC_GAUGE, "Names in the index.", .read = read_index_names},
};
static const struct metric_def MAILBOX_METRICS[] = {
    {"substrate_mailbox_channels", METRIC_GAUGE, "Mailbox channels.",
     .read = read_mailbox_channels},
};

static double read_amnesia(const struct metric_def *d, const int *ix)
{
    return g_svc.amnesia ? 1 : 0;
}

static const struct metric_def AMNESIA_METRICS[] = {
    {"substrate_amnesia", METRIC_GAUGE, "1 when the service keeps nothing on disk (RAM only).",
     .labels = {&L_ROLE}, .read = read_amnesia},
};

/* The log of a durable index or mailbox: struct wal_stats is the one
 * shard, written by the loop thread, which also serves /metrics. */
#define IN_LOG(field) offsetof(struct wal_stats, field)
static const struct metric_def LOG_METRICS[] = {
    {"substrate_log_bytes", METRIC_GAUGE, "Bytes in the current log file.", .labels = {&L_ROLE},
     .off = IN_LOG(log_bytes)},
    {"substrate_log_snapshot_bytes", METRIC_GAUGE, "Bytes in the newest snapshot (0: none).",
     .labels = {&L_ROLE}, .off = IN_LOG(snapshot_bytes)},
    {"substrate_log_records_total", METRIC_COUNTER, "Records appended to the log since start.",
     .labels = {&L_ROLE}, .off = IN_LOG(appended)},
    {"substrate_log_replayed_records_total", METRIC_COUNTER,
     "Records applied from the snapshot and the logs at start.", .labels = {&L_ROLE},
     .off = IN_LOG(replayed)},
    {"substrate_log_truncated_bytes", METRIC_GAUGE,
     "Bytes of a torn last record cut off the log at start.", .labels = {&L_ROLE},
     .off = IN_LOG(truncated)},
    {"substrate_log_fsyncs_total", METRIC_COUNTER, "fsyncs of the log.", .labels = {&L_ROLE},
     .off = IN_LOG(fsyncs)},
    {"substrate_log_fsync_seconds", METRIC_HISTOGRAM, "Time one fsync of the log took.",
     .labels = {&L_ROLE}, .off = IN_LOG(fsync_bucket), .sum_off = IN_LOG(fsync_sum_us),
     .le = wal_fsync_le, .nle = WAL_FSYNC_BUCKETS},
    {"substrate_log_compactions_total", METRIC_COUNTER,
     "Snapshots written, after which older log files were deleted.", .labels = {&L_ROLE},
     .off = IN_LOG(compactions)},
    {"substrate_log_compaction_failures_total", METRIC_COUNTER,
     "Compactions abandoned (the log goes on; tried again later).", .labels = {&L_ROLE},
     .off = IN_LOG(compaction_failures)},
    {"substrate_log_waiting", METRIC_GAUGE, "Answers waiting for their records to be durable.",
     .labels = {&L_ROLE}, .off = IN_LOG(waiting)},
};

/* Start-up, once the role's engine exists. stats_channels: how many
 * mailbox channels the per-channel families name (mailbox/chstats.h). */
static void register_metrics(int stats_channels)
{
    metrics_register(
        METRIC_TABLE(SVC_METRICS, .shards = &g_svc, .shard_bytes = sizeof(g_svc), .nshards = 1));
    if (g_svc.eng.storage)
        metrics_register(METRIC_TABLE(STORAGE_METRICS));
    if (g_svc.eng.index)
        metrics_register(METRIC_TABLE(INDEX_METRICS));
    if (g_svc.eng.mailbox) {
        metrics_register(METRIC_TABLE(MAILBOX_METRICS));
        chstats_start(g_svc.eng.mailbox, stats_channels);
    }
    metrics_register(METRIC_TABLE(AMNESIA_METRICS));
    if (g_svc.wal)
        metrics_register(METRIC_TABLE(LOG_METRICS, .shards = wal_stats(g_svc.wal),
                                      .shard_bytes = sizeof(struct wal_stats), .nshards = 1));
}

/* ------------------------------------------------------------- listening */

static uv_handle_t *listeners[SVC_LISTEN_MAX + 1];
static char *unix_paths[SVC_LISTEN_MAX];
static int nlisteners, nunix;

static void handle_free_on_close(uv_handle_t *h)
{
    free(h);
}

int svc_listen(const char *addr, uv_connection_cb on_conn, uv_handle_t **out)
{
    struct oapnet_addr a;
    uv_handle_t *h;
    int rc;

    if (oapnet_addr_parse(addr, true, &a) != 0)
        return UV_EINVAL;
    if (a.is_unix) {
        uv_pipe_t *p = calloc(1, sizeof(*p));
        if (!p)
            return UV_ENOMEM;
        uv_pipe_init(g_svc.loop, p, 0);
        /* A stale socket file from a previous run would make bind fail. */
        unlink(a.path);
        rc = uv_pipe_bind(p, a.path);
        h = (uv_handle_t *)p;
    } else {
        uv_tcp_t *t = calloc(1, sizeof(*t));
        if (!t)
            return UV_ENOMEM;
        uv_tcp_init(g_svc.loop, t);
        rc = uv_tcp_bind(t, (const struct sockaddr *)&a.ss, 0);
        h = (uv_handle_t *)t;
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)h, 1024, on_conn);
    if (rc != 0) {
        svc_log("\"msg\":\"listen failed\",\"addr\":\"%s\",\"error\":\"%s\"", addr,
                uv_strerror(rc));
        uv_close(h, handle_free_on_close);
        return rc;
    }
    if (a.is_unix && nunix < SVC_LISTEN_MAX)
        unix_paths[nunix++] = strdup(a.path);
    *out = h;
    svc_log("\"msg\":\"listening\",\"addr\":\"%s\"", addr);
    return 0;
}

/* --------------------------------------------------------------- shutdown */

static uv_signal_t sig_term, sig_int;

static void on_signal(uv_signal_t *s, int signum)
{
    if (g_svc.stopping)
        return;
    g_svc.stopping = true;
    g_svc.ready = false;
    svc_log("\"msg\":\"stopping\",\"signal\":%d", signum);
    for (int i = 0; i < nlisteners; i++)
        uv_close(listeners[i], handle_free_on_close);
    nlisteners = 0;
    oapsrv_close_all();
    admin_close_all();
    if (g_svc.wal)
        wal_stop(g_svc.wal);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

/* ------------------------------------------------------------------- main */

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mul = 1;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    switch (*end) {
    case 'k':
    case 'K':
        mul = 1ull << 10;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1ull << 20;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1ull << 30;
        end++;
        break;
    default: break;
    }
    if ((*end == 'i' || *end == 'I') && mul > 1)
        end++;
    if ((*end == 'b' || *end == 'B'))
        end++;
    if (*end || v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: omnigate-substrate --role index|storage|mailbox --listen HOST:PORT|unix:/path\n"
            "         [--listen ...] --admin HOST:PORT [--mem-cap SIZE] [--max-frame SIZE]\n"
            "         [--data-dir DIR --no-amnesia] [--fsync always|batch|none]\n"
            "         [--compact-bytes SIZE] [--stats-channels N] [--latency-ms N]\n"
            "         [--jitter-ms N] [--error-rate F] [--stall-rate F] [--drop-rate F]\n"
            "         [--corrupt-rate F] [--corrupt-op any|get|proof|outboard]\n");
}

/* ------------------------------------------------------------ durability */

static const char *const FSYNC_NAMES[] = {"always", "batch", "none"}; /* enum wal_fsync */

static int parse_fsync(const char *s, enum wal_fsync *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, FSYNC_NAMES[i]) == 0) {
            *out = (enum wal_fsync)i;
            return 0;
        }
    return -1;
}

/* The log cannot make its records durable any more: answering the writes
 * that wait for them would be a lie, and serving on would let the memory
 * drift from the disk. A restart replays what is on disk (wal.c says why
 * a failed fsync is not retried). */
static void on_wal_fail(void *arg, const char *what, int err)
{
    svc_log("\"msg\":\"log write failed, exiting\",\"op\":\"%s\",\"error\":\"%s\"", what,
            strerror(err));
    exit(1);
}

static void on_wal_note(void *arg, const char *text)
{
    svc_log("\"msg\":\"log\",\"detail\":\"%s\"", text);
}

/* Open the data directory of an index or mailbox before its engine exists:
 * the engine needs the seed kept there. 0, or 1 after logging why not. */
static int durable_open(const char *dir, enum wal_fsync policy, uint64_t compact_bytes,
                        uint8_t seed[WALREC_SEED_BYTES])
{
    struct wal_opts o = {.dir = dir,
                         .role = (uint8_t)g_svc.app,
                         .fsync = policy,
                         .compact_bytes = compact_bytes,
                         .dump = journal_dump,
                         .fail = on_wal_fail,
                         .note = on_wal_note,
                         .arg = &g_svc.eng};
    char err[512];

    if ((g_svc.wal = wal_open(&o, seed, err, sizeof(err))) == NULL) {
        svc_log("\"msg\":\"data dir refused\",\"error\":\"%s\"", err);
        return 1;
    }
    return 0;
}

/* Put the saved state back into the engine. 0, or 1 after logging why. */
static int durable_replay(enum wal_fsync policy)
{
    char err[512];
    const struct wal_stats *st;

    if (wal_replay(g_svc.wal, journal_apply, &g_svc.eng, err, sizeof(err)) != 0) {
        svc_log("\"msg\":\"replay failed\",\"error\":\"%s\"", err);
        return 1;
    }
    st = wal_stats(g_svc.wal);
    svc_log("\"msg\":\"replayed\",\"records\":%llu,\"snapshot_bytes\":%llu,\"log_bytes\":%llu,"
            "\"fsync\":\"%s\"",
            (unsigned long long)st->replayed, (unsigned long long)st->snapshot_bytes,
            (unsigned long long)st->log_bytes, FSYNC_NAMES[policy]);
    return 0;
}

int main(int argc, char **argv)
{
    const char *listen_addrs[SVC_LISTEN_MAX], *admin_addr = NULL, *data_dir = NULL;
    int nlisten = 0, st = ENG_OK, rc = 1, stats_channels = CHSTATS_TOP_DEFAULT;
    uint64_t mem_cap = 0, compact_bytes = 0;
    bool amnesia = true, log_flags = false;
    enum wal_fsync policy = WAL_FSYNC_ALWAYS;
    uint8_t seed[WALREC_SEED_BYTES];
    uv_handle_t *h;

    memset(&g_svc, 0, sizeof(g_svc));
    g_svc.rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 17 ^ 1;
    g_svc.max_frame = SVC_MAX_FRAME_BYTES;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;

        if (strcmp(a, "--no-amnesia") == 0) {
            amnesia = false;
            takes = false;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        } else if (!v) {
            fprintf(stderr, "omnigate-substrate: %s needs a value\n", a);
            return 2;
        } else if (strcmp(a, "--role") == 0) {
            g_svc.role = v;
        } else if (strcmp(a, "--listen") == 0) {
            if (nlisten == SVC_LISTEN_MAX) {
                fprintf(stderr, "omnigate-substrate: at most %d --listen\n", SVC_LISTEN_MAX);
                return 2;
            }
            listen_addrs[nlisten++] = v;
        } else if (strcmp(a, "--admin") == 0) {
            admin_addr = v;
        } else if (strcmp(a, "--max-frame") == 0) {
            uint64_t mf;
            if (parse_size(v, &mf) != 0 || mf < SVC_MIN_FRAME_BYTES || mf > SVC_MAX_FRAME_BYTES) {
                fprintf(stderr, "omnigate-substrate: bad --max-frame %s (16KiB to 1MiB)\n", v);
                return 2;
            }
            g_svc.max_frame = (uint32_t)mf;
        } else if (strcmp(a, "--mem-cap") == 0) {
            if (parse_size(v, &mem_cap) != 0) {
                fprintf(stderr, "omnigate-substrate: bad --mem-cap %s\n", v);
                return 2;
            }
        } else if (strcmp(a, "--data-dir") == 0) {
            data_dir = v;
        } else if (strcmp(a, "--fsync") == 0) {
            if (parse_fsync(v, &policy) != 0) {
                fprintf(stderr, "omnigate-substrate: bad --fsync %s (always, batch or none)\n", v);
                return 2;
            }
            log_flags = true;
        } else if (strcmp(a, "--stats-channels") == 0) {
            char *end;
            long k = strtol(v, &end, 10);
            if (*v == '\0' || *end || k < 0 || k > CHSTATS_TOP_MAX) {
                fprintf(stderr, "omnigate-substrate: bad --stats-channels %s (0 to %d)\n", v,
                        CHSTATS_TOP_MAX);
                return 2;
            }
            stats_channels = (int)k;
        } else if (strcmp(a, "--compact-bytes") == 0) {
            if (parse_size(v, &compact_bytes) != 0 || compact_bytes == 0) {
                fprintf(stderr, "omnigate-substrate: bad --compact-bytes %s\n", v);
                return 2;
            }
            log_flags = true;
        } else if (strncmp(a, "--", 2) == 0 && strlen(a) < 40) {
            /* --latency-ms → latency_ms */
            char name[40];
            size_t n = strlen(a + 2);
            memcpy(name, a + 2, n + 1);
            for (size_t k = 0; k < n; k++)
                if (name[k] == '-')
                    name[k] = '_';
            if (fault_set(&g_svc.fault, name, v) != 0) {
                fprintf(stderr, "omnigate-substrate: bad option %s %s\n", a, v);
                usage();
                return 2;
            }
        } else {
            usage();
            return 2;
        }
        if (takes)
            i++;
    }
    if (!g_svc.role || nlisten == 0) {
        usage();
        return 2;
    }
    /* Persistence takes both flags, so that neither alone surprises: a
     * directory given with amnesia on would silently stay empty. */
    if (data_dir && amnesia) {
        fprintf(stderr, "omnigate-substrate: --data-dir needs --no-amnesia (amnesia is on by "
                        "default: nothing is written)\n");
        return 2;
    }
    if (!amnesia && (!data_dir || !data_dir[0])) {
        fprintf(stderr, "omnigate-substrate: --no-amnesia needs --data-dir DIR\n");
        return 2;
    }
    if (log_flags && (amnesia || strcmp(g_svc.role, "storage") == 0)) {
        fprintf(stderr, "omnigate-substrate: --fsync and --compact-bytes are for --role "
                        "index|mailbox with --data-dir DIR --no-amnesia\n");
        return 2;
    }
    g_svc.amnesia = amnesia;

    cas_init();
    if (strcmp(g_svc.role, "storage") == 0) {
        struct storage_opts o = {
            .mem_cap_bytes = mem_cap, .amnesia = amnesia, .data_dir = data_dir};
        if (mem_cap && mem_cap < STORAGE_DEFAULT_MAX_OBJECT_BYTES)
            o.max_object_bytes = mem_cap;
        g_svc.app = OAP_APP_STORAGE;
        g_svc.eng.storage = storage_new(&o, &st);
    } else if (strcmp(g_svc.role, "index") == 0) {
        g_svc.app = OAP_APP_INDEX;
        if (!amnesia && durable_open(data_dir, policy, compact_bytes, seed) != 0)
            return 1;
        g_svc.eng.index = index_new(NULL, &st);
    } else if (strcmp(g_svc.role, "mailbox") == 0) {
        struct mailbox_opts o = {0};
        g_svc.app = OAP_APP_MAILBOX;
        if (!amnesia && durable_open(data_dir, policy, compact_bytes, seed) != 0)
            return 1;
        o.seed = g_svc.wal ? seed : NULL;
        g_svc.eng.mailbox = mailbox_new(&o, &st);
    } else {
        fprintf(stderr, "omnigate-substrate: unknown role %s\n", g_svc.role);
        return 2;
    }
    if (st != ENG_OK) {
        svc_log("\"msg\":\"engine failed\",\"error\":\"%s\"", eng_status_code(st));
        goto done;
    }
    if (g_svc.wal && durable_replay(policy) != 0)
        goto done;

    register_metrics(stats_channels);
    g_svc.loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < nlisten; i++) {
        if (svc_listen(listen_addrs[i], oapsrv_on_conn, &h) != 0)
            goto out;
        listeners[nlisteners++] = h;
    }
    if (admin_addr) {
        if (svc_listen(admin_addr, admin_on_conn, &h) != 0)
            goto out;
        listeners[nlisteners++] = h;
    }
    uv_signal_init(g_svc.loop, &sig_term);
    uv_signal_init(g_svc.loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    if (g_svc.wal)
        wal_start(g_svc.wal, g_svc.loop);
    g_svc.ready = true;
    svc_log("\"msg\":\"ready\",\"max_frame\":%u,\"max_inflight\":%u,\"amnesia\":%s",
            g_svc.max_frame, SVC_MAX_INFLIGHT, amnesia ? "true" : "false");
    uv_run(g_svc.loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (rc != 0) {
        for (int i = 0; i < nlisteners; i++)
            uv_close(listeners[i], handle_free_on_close);
        uv_run(g_svc.loop, UV_RUN_DEFAULT);
    }
    if (uv_loop_close(g_svc.loop) != 0)
        svc_log("\"msg\":\"loop not empty at exit\"");
    for (int i = 0; i < nunix; i++) {
        unlink(unix_paths[i]);
        free(unix_paths[i]);
    }
done:
    wal_free(g_svc.wal);
    storage_free(g_svc.eng.storage);
    index_free(g_svc.eng.index);
    mailbox_free(g_svc.eng.mailbox);
    return rc;
}
