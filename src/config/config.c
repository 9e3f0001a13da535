/*
 * config.c — the configuration table and its loaders.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"
#include "core/log.h"
#include "mailbox/chstats.h"
#include "oapnet/addr.h"

#define KiB      1024LL
#define MiB      (1024LL * 1024)
#define GiB      (1024LL * 1024 * 1024)
#define F(field) offsetof(struct og_config, field)

/* The table. Bounds come from what the server can honour: e.g. the head cap
 * must leave room in a connection's read buffer; bodies over one OAP/1
 * frame go to remote storage as a request stream. */
const struct config_row config_rows[] = {
    {"server", "bind", CFG_ADDR, F(bind), 0, 0, "127.0.0.1:9080", false,
     "service listener, HOST:PORT"},
    {"server", "admin", CFG_ADDR, F(admin), 0, 0, "127.0.0.1:9090", false,
     "admin listener for /metrics, /healthz, /readyz"},
    {"server", "workers", CFG_INT, F(workers), 0, 256, "0", false,
     "worker threads, each with its own loop and SO_REUSEPORT listener (0 = CPU count)"},
    {"server", "log_level", CFG_LEVEL, F(log_level), 0, 0, "info", true,
     "debug | info | warn | error"},
    {"server", "trusted_proxies", CFG_CIDRS, F(trusted_proxies), 0, 0, "", false,
     "comma-separated networks (10.0.0.0/8, 192.168.1.5, fd00::/8) of load balancers whose "
     "X-Forwarded-For names the client of an anonymous request (its rate bucket)"},
    {"limits", "header_max", CFG_SIZE, F(header_max), 1 * KiB, 1 * MiB, "16KiB", true,
     "request line + header block cap (431 header_too_large)"},
    {"limits", "header_count_max", CFG_INT, F(header_count_max), 8, 1024, "100", true,
     "header lines per request (431 header_too_large)"},
    {"limits", "body_max", CFG_SIZE, F(body_max), 0, 64 * MiB, "1MiB", true,
     "request body cap, checked before routing (413 body_cap); also caps a decoded body "
     "(413 decompress_cap)"},
    {"limits", "decompress_ratio_max", CFG_INT, F(decompress_ratio_max), 0, 1000000, "10", true,
     "a coded body may decode to this many times the bytes received, plus 64 KiB "
     "(413 ratio_cap; 0 = no ratio cap)"},
    {"limits", "head_timeout", CFG_DURATION, F(head_timeout_ms), 100, 600000, "10s", true,
     "the whole request head must arrive within this (408 timeout)"},
    {"limits", "body_min_rate", CFG_SIZE, F(body_min_rate), 0, 1 * GiB, "1KiB", true,
     "minimum request body rate per second after body_grace (408 timeout)"},
    {"limits", "body_grace", CFG_DURATION, F(body_grace_ms), 0, 600000, "5s", true,
     "time a body may take before body_min_rate applies"},
    {"limits", "request_timeout", CFG_DURATION, F(request_timeout_ms), 10, 600000, "5s", true,
     "end-to-end budget of a request once dispatched"},
    {"limits", "idle_timeout", CFG_DURATION, F(idle_timeout_ms), 100, 3600000, "60s", true,
     "keep-alive connection idle timeout"},
    {"limits", "write_timeout", CFG_DURATION, F(write_timeout_ms), 100, 600000, "10s", true,
     "a response write that makes no progress for this long closes the connection"},
    {"limits", "max_connections", CFG_INT, F(max_connections), 1, 1000000, "16384", true,
     "open client connections; when full a new one takes the slot of the connection that has "
     "waited longest for a request, or gets 503 if there is none"},
    {"limits", "conn_pressure_high", CFG_INT, F(conn_pressure_high), 1, 100, "80", true,
     "percent of max_connections above which head and idle timeouts shorten, reaching "
     "head_timeout_min and idle_timeout_min at max_connections"},
    {"limits", "head_timeout_min", CFG_DURATION, F(head_timeout_min_ms), 100, 600000, "1s", true,
     "head_timeout at max_connections, counted from the head's first byte or accept; a head "
     "past it is closed without an answer"},
    {"limits", "idle_timeout_min", CFG_DURATION, F(idle_timeout_min_ms), 100, 3600000, "1s", true,
     "idle_timeout at max_connections"},
    {"limits", "inflight_max", CFG_INT, F(inflight_max), 1, 1000000, "512", true,
     "requests being served at once (503 busy with Retry-After)"},
    {"limits", "retry_after", CFG_DURATION, F(retry_after_s), 1000, 3600000, "1s", true,
     "Retry-After on 503 answers whose wait cannot be computed (degraded, /readyz)"},
    {"limits", "rate", CFG_RATE, F(rate_milli), 0, 1000000000, "500/s", true,
     "requests per second for the whole instance, all workers (429 quota); 0 = off"},
    {"limits", "rate_burst", CFG_INT, F(rate_burst), 1, 1000000, "100", true,
     "requests the instance bucket lets through at once"},
    {"limits", "tenant_rate", CFG_RATE, F(tenant_rate_milli), 0, 1000000000, "0", true,
     "requests per second per tenant (anonymous: per client address) (429 quota); 0 = off"},
    {"limits", "tenant_burst", CFG_INT, F(tenant_burst), 1, 1000000, "20", true,
     "requests a tenant's bucket lets through at once"},
    {"limits", "tenant_table_max", CFG_INT, F(tenant_table_max), 16, 16777216, "65536", false,
     "tenants whose buckets are tracked at once (16 bytes each)"},
    {"limits", "queue_max", CFG_INT, F(queue_max), 0, 100000, "128", true,
     "requests per class and worker waiting for a slot over inflight_max; 0 = shed at once"},
    {"limits", "queue_wait", CFG_DURATION, F(queue_wait_ms), 1, 600000, "1s", true,
     "longest wait for a slot (503 busy), counted in the request's budget"},
    {"limits", "weight_anon", CFG_INT, F(fq_weight[0]), 1, 1000, "1", true,
     "fair-queue weight of anonymous requests"},
    {"limits", "weight_authed", CFG_INT, F(fq_weight[1]), 1, 1000, "5", true,
     "fair-queue weight of requests with a capability"},
    {"limits", "weight_internal", CFG_INT, F(fq_weight[2]), 1, 1000, "10", true,
     "fair-queue weight of internal requests (internal_key_ids, internal_scopes)"},
    {"limits", "degraded_headroom", CFG_INT, F(degraded_headroom_pct), 0, 100, "10", true,
     "percent of the queues that must stay free; under it /readyz fails and writes are shed"},
    {"limits", "degraded_hold", CFG_DURATION, F(degraded_hold_ms), 0, 600000, "3s", true,
     "how long every cause must stay clear before degraded mode ends"},
    {"mailbox", "mailbox_wait_max", CFG_DURATION, F(mailbox_wait_max_ms), 0, 600000, "30s", true,
     "longest long-poll wait a receive may ask for (wait=...)"},
    {"mailbox", "mailbox_poll_interval", CFG_DURATION, F(mailbox_poll_ms), 0, 600000, "1s", true,
     "macronode: parked receivers also look this often (sends through other replicas); 0 = never"},
    {"mailbox", "mailbox_parked_max", CFG_INT, F(mailbox_parked_max), 0, 1000000, "4096", true,
     "long-poll receivers parked per worker; beyond it a receive that would wait gets 503 busy"},
    {"mailbox", "mailbox_max_deliveries", CFG_INT, F(mailbox_max_deliveries), 1, 1000, "5", false,
     "in-process mailbox: deliveries before a message moves to the dead letters"},
    {"mailbox", "mailbox_idempotency_window", CFG_DURATION, F(mailbox_idem_window_ms), 1000,
     86400000, "10m", false,
     "in-process mailbox: how long an Idempotency-Key returns its first send's id"},
    {"mailbox", "mailbox_depth_max", CFG_INT, F(mailbox_depth_max), 1, 1000000, "1000", false,
     "in-process mailbox: live messages per channel; beyond it a send gets 429 channel_full"},
    {"mailbox", "mailbox_stats_channels", CFG_INT, F(mailbox_stats_channels), 0, CHSTATS_TOP_MAX,
     "16", false,
     "in-process mailbox: channels named in the per-channel metrics (the ones holding the most "
     "messages); the rest are summed under channel=\"_other\""},
    {"downstream", "index", CFG_DSADDR, F(ds_addr[0]), 0, 0, "", false,
     "index service: oap://HOST:PORT or unix:/path, or a comma-separated set of endpoints "
     "serving the same data; empty = in process (micronode)"},
    {"downstream", "storage", CFG_DSADDR, F(ds_addr[1]), 0, 0, "", false,
     "storage service address or endpoint set; empty = in process"},
    {"downstream", "mailbox", CFG_DSADDR, F(ds_addr[2]), 0, 0, "", false,
     "mailbox service address or endpoint set; empty = in process"},
    {"downstream", "pool_size", CFG_INT, F(ds_pool_size), 1, 64, "2", false,
     "OAP/1 connections per worker per remote endpoint"},
    {"downstream", "index_concurrency", CFG_INT, F(ds_concurrency[0]), 1, 100000, "128", false,
     "index calls in flight at once (beyond: 503 shed)"},
    {"downstream", "storage_concurrency", CFG_INT, F(ds_concurrency[1]), 1, 100000, "128", false,
     "storage calls in flight at once"},
    {"downstream", "mailbox_concurrency", CFG_INT, F(ds_concurrency[2]), 1, 100000, "64", false,
     "mailbox calls in flight at once"},
    {"downstream", "retry_max", CFG_INT, F(ds_retry_max), 0, 5, "2", true,
     "retries of an idempotent read, within its deadline"},
    {"downstream", "retry_budget_percent", CFG_INT, F(ds_retry_budget_pct), 0, 100, "10", true,
     "retries and hedges per downstream, as a share of first attempts"},
    {"downstream", "hedge_after", CFG_DURATION, F(ds_hedge_after_ms), 0, 60000, "0", true,
     "send a hedged second read after this long (0 = hedging off), to another endpoint"},
    {"downstream", "eject_after", CFG_INT, F(ds_eject_after), 0, 1000, "5", true,
     "consecutive failures or timeouts that eject an endpoint of a set (0 = never)"},
    {"downstream", "eject_base", CFG_DURATION, F(ds_eject_base_ms), 10, 600000, "1s", true,
     "first ejection's length; the n-th ejection in a row lasts n times as long"},
    {"downstream", "eject_max", CFG_DURATION, F(ds_eject_max_ms), 10, 3600000, "30s", true,
     "longest ejection"},
    {"downstream", "eject_max_percent", CFG_INT, F(ds_eject_max_pct), 0, 100, "50", true,
     "share of a set that may be ejected at once (at least one endpoint of two or more; "
     "never all)"},
    {"downstream", "health_interval", CFG_DURATION, F(ds_health_interval_ms), 100, 600000, "1s",
     true, "each endpoint of a remote service is probed with an OAP/1 HELLO this often"},
    {"downstream", "health_timeout", CFG_DURATION, F(ds_health_timeout_ms), 10, 600000, "1s", true,
     "a probe's connect plus HELLO must finish within this"},
    {"micronode", "storage_mem_cap", CFG_SIZE, F(storage_mem_cap), 1 * MiB, 64 * GiB, "512MiB",
     false, "RAM for in-process storage objects"},
    {"micronode", "storage_max_object", CFG_SIZE, F(storage_max_object), 1 * KiB, 4 * GiB, "128MiB",
     false, "largest object in-process storage accepts"},
    {"view", "max_parts", CFG_INT, F(view_max_parts), 1, 64, "16", true,
     "parts a view manifest may name (more: 502 bad manifest)"},
    {"view", "inline_max", CFG_SIZE, F(view_inline_max), 0, 1 * MiB, "64KiB", true,
     "objects up to this size are inlined in a view; larger ones become links"},
    {"media", "stream_window", CFG_INT, F(media_stream_window), 1, 16, "4", true,
     "64 KiB storage chunks an object stream may hold while its client reads (remote: at least 4)"},
    {"media", "range_cache", CFG_SIZE, F(media_range_cache), 0, 64 * GiB, "64MiB", false,
     "bytes of verified 64 KiB groups kept to serve later ranges with no storage call (0 = off)"},
    {"media", "verify_ranges", CFG_BOOL, F(media_verify_ranges), 0, 1, "true", true,
     "check every range against the object's address, 64 KiB group by group, before sending it"},
    {"auth", "root_keys_file", CFG_STR, F(root_keys_file), 0, 0, "", true,
     "capability root keys, lines `id = <hex secret>`, file mode 0600 (reloaded on SIGHUP)"},
    {"auth", "auth_header", CFG_STR, F(auth_header), 0, 0, "authorization", false,
     "request header carrying `Bearer <token>`"},
    {"auth", "policy_file", CFG_STR, F(policy_file), 0, 0, "", true,
     "JSON policy bundle (reloaded on SIGHUP; empty = allow what capabilities allow)"},
    {"auth", "internal_key_ids", CFG_STR, F(internal_key_ids), 0, 0, "", true,
     "comma-separated key ids whose tokens are class internal"},
    {"auth", "internal_scopes", CFG_STR, F(internal_scopes), 0, 0, "", true,
     "comma-separated scopes that make a token class internal"},
    {"limits", "drain_grace", CFG_DURATION, F(drain_grace_ms), 0, 600000, "10s", false,
     "on SIGTERM, time given to inflight requests before exit"},
    {"limits", "drain_delay", CFG_DURATION, F(drain_delay_ms), 0, 600000, "0", false,
     "on SIGTERM, time /readyz answers 503 while serving on as before, so a load balancer "
     "stops sending before the drain closes anything"},
};
const size_t config_rows_count = sizeof(config_rows) / sizeof(config_rows[0]);

const struct config_row *config_row_find(const char *key)
{
    for (size_t i = 0; i < config_rows_count; i++) {
        const char *k = config_rows[i].key;
        size_t j = 0;
        while (k[j] && (key[j] == k[j] || (k[j] == '_' && key[j] == '-')))
            j++;
        if (k[j] == '\0' && key[j] == '\0')
            return &config_rows[i];
    }
    return NULL;
}

/* Strict non-negative integer: digits only (at most 18), no sign. */
static int parse_i64(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int parse_unit(const char *s, int64_t *out, const char *const units[], const int64_t mult[],
                      size_t nunits)
{
    size_t d = 0;
    while (isdigit((unsigned char)s[d]))
        d++;
    int64_t v;
    if (parse_i64(s, d, &v) != 0)
        return -1;
    const char *u = s + d;
    while (*u == ' ')
        u++;
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(u, units[i]) == 0) {
            if (v > INT64_MAX / mult[i])
                return -1;
            *out = v * mult[i];
            return 0;
        }
    }
    return -1;
}

int config_parse_size(const char *s, int64_t *out)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", ""};
    static const int64_t mult[] = {1, KiB, MiB, GiB, 1};
    return parse_unit(s, out, units, mult, 5);
}

int config_parse_duration_ms(const char *s, int64_t *out)
{
    static const char *const units[] = {"ms", "s", "m"};
    static const int64_t mult[] = {1, 1000, 60000};
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    return parse_unit(s, out, units, mult, 3);
}

int config_parse_rate_milli(const char *s, int64_t *out)
{
    /* Stored in thousandths of a request per second, so 30/m is exact. */
    static const char *const units[] = {"/s", "/m", "/h", ""};
    static const int64_t mult[] = {3600000, 60000, 1000, 3600000};
    int64_t per_h_milli; /* requests × 3.6e6 / unit length in s, over 3600 below */
    if (parse_unit(s, &per_h_milli, units, mult, 4) != 0)
        return -1;
    *out = per_h_milli / 3600;
    return per_h_milli > 0 && *out == 0 ? -1 : 0; /* below 1/1000 per second */
}

int config_parse_addr(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[') { /* [::1]:9080 */
        if (hl < 2 || h[hl - 1] != ']')
            return -1;
        h++, hl -= 2;
    }
    if (hl + 1 > hostlen || hl >= 64)
        return -1;
    char tmp[64];
    memcpy(tmp, h, hl);
    tmp[hl] = '\0';
    unsigned char sa[16];
    if (inet_pton(AF_INET, tmp, sa) != 1 && inet_pton(AF_INET6, tmp, sa) != 1)
        return -1;
    int64_t p;
    if (parse_i64(colon + 1, strlen(colon + 1), &p) != 0 || p > 65535)
        return -1;
    memcpy(host, tmp, hl + 1);
    *port = (int)p;
    return 0;
}

int config_parse_ds_addr(const char *s)
{
    struct oapnet_addr a[OAPNET_ADDR_LIST_MAX];
    /* The pools parse it again with the same parser, so what passes here
     * is what they connect to. */
    return s[0] == '\0' || oapnet_addr_list_parse(s, false, a, NULL, OAPNET_ADDR_LIST_MAX) > 0 ? 0
                                                                                               : -1;
}

static const char *type_hint(enum config_type t)
{
    switch (t) {
    case CFG_SIZE: return "a size like 512B, 64KiB, 1MiB";
    case CFG_DURATION: return "a duration like 250ms, 10s, 1m";
    case CFG_INT: return "an integer";
    case CFG_ADDR: return "HOST:PORT with a numeric IPv4 or [IPv6] host";
    case CFG_LEVEL: return "one of debug, info, warn, error";
    case CFG_DSADDR:
        return "empty, or a comma-separated list of up to 16 oap://HOST:PORT or unix:/path";
    case CFG_CIDRS: return "a comma-separated list of ADDR/BITS or ADDR networks";
    case CFG_RATE: return "a rate like 500/s, 30/m, 100/h (0 = off)";
    case CFG_BOOL: return "true or false";
    default: return "a string";
    }
}

int config_set(struct og_config *cfg, const struct config_row *row, const char *value,
               const char *source, char *err, size_t errlen)
{
    char *field = (char *)cfg + row->offset;
    int64_t v = 0;
    int rc = 0;
    switch (row->type) {
    case CFG_STR:
    case CFG_ADDR:
    case CFG_DSADDR:
    case CFG_CIDRS:
    case CFG_LEVEL: {
        char host[64];
        int port;
        if (strlen(value) >= CONFIG_STR_MAX)
            rc = -1;
        else if (row->type == CFG_ADDR && config_parse_addr(value, host, sizeof(host), &port))
            rc = -1;
        else if (row->type == CFG_LEVEL && log_level_parse(value) < 0)
            rc = -1;
        else if (row->type == CFG_DSADDR && config_parse_ds_addr(value) != 0)
            rc = -1;
        else if (row->type == CFG_CIDRS && cidr_set_parse(value, &(struct cidr_set){0}) != 0)
            rc = -1;
        if (rc == 0)
            snprintf(field, CONFIG_STR_MAX, "%s", value);
        break;
    }
    case CFG_INT: rc = parse_i64(value, strlen(value), &v); break;
    case CFG_SIZE: rc = config_parse_size(value, &v); break;
    case CFG_DURATION: rc = config_parse_duration_ms(value, &v); break;
    case CFG_RATE: rc = config_parse_rate_milli(value, &v); break;
    case CFG_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "on") == 0)
            v = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "off") == 0)
            v = 0;
        else
            rc = -1;
        break;
    }
    if (row->type == CFG_INT || row->type == CFG_SIZE || row->type == CFG_DURATION ||
        row->type == CFG_RATE || row->type == CFG_BOOL) {
        if (rc == 0 && (v < row->min || v > row->max)) {
            snprintf(err, errlen,
                     "config: %s = \"%s\" (from %s) is out of range: allowed %" PRId64
                     " to %" PRId64 "%s",
                     row->key, value, source, row->min, row->max,
                     row->type == CFG_SIZE       ? " bytes"
                     : row->type == CFG_DURATION ? " ms"
                     : row->type == CFG_RATE     ? " thousandths of a request per second"
                                                 : "");
            return -1;
        }
        if (rc == 0) {
            /* retry_after is stored in seconds; every other duration in ms. */
            if (row->offset == F(retry_after_s))
                v /= 1000;
            memcpy(field, &v, sizeof(v));
        }
    }
    if (rc != 0) {
        snprintf(err, errlen, "config: %s = \"%s\" (from %s) is invalid: expected %s", row->key,
                 value, source, type_hint(row->type));
        return -1;
    }
    return 0;
}

void config_defaults(struct og_config *cfg)
{
    char err[CONFIG_ERR_MAX];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < config_rows_count; i++)
        if (config_set(cfg, &config_rows[i], config_rows[i].def, "default", err, sizeof(err)))
            abort(); /* a bad default is a programming error */
}

struct file_ctx {
    struct og_config *cfg;
    const char *path;
    char *err;
    size_t errlen;
    int failed;
};

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    struct file_ctx *c = user;
    if (c->failed)
        return 0;
    const struct config_row *row = config_row_find(name);
    if (row == NULL || strchr(name, '-') != NULL || strcmp(row->section, section) != 0) {
        snprintf(c->err, c->errlen, "config: %s: unknown key [%s] %s", c->path, section, name);
        c->failed = 1;
        return 0;
    }
    char src[CONFIG_STR_MAX + 16];
    snprintf(src, sizeof(src), "file %s", c->path);
    if (config_set(c->cfg, row, value, src, c->err, c->errlen) != 0) {
        c->failed = 1;
        return 0;
    }
    return 1;
}

/* libinih would silently truncate long lines; refuse them with a line number. */
static int check_line_lengths(FILE *f, const char *path, char *err, size_t errlen)
{
    int c, line = 1;
    size_t len = 0;
    while ((c = getc(f)) != EOF) {
        if (c == '\n') {
            line++, len = 0;
            continue;
        }
        if (++len > CONFIG_LINE_MAX) {
            snprintf(err, errlen, "config: %s:%d: line longer than %d characters", path, line,
                     CONFIG_LINE_MAX);
            return -1;
        }
    }
    rewind(f);
    return 0;
}

static int load_file(struct og_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "config: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = check_line_lengths(f, path, err, errlen);
    if (rc == 0) {
        struct file_ctx c = {cfg, path, err, errlen, 0};
        int r = ini_parse_file(f, on_ini, &c);
        if (c.failed) {
            rc = -1;
        } else if (r != 0) {
            snprintf(err, errlen, "config: %s:%d: syntax error", path, r);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

static int load_env(struct og_config *cfg, char *const *envp, char *err, size_t errlen)
{
    for (; envp && *envp; envp++) {
        const char *e = *envp;
        if (strncmp(e, "OMNIGATE_", 9) != 0)
            continue;
        const char *eq = strchr(e, '=');
        if (eq == NULL)
            continue;
        char key[64];
        size_t kl = (size_t)(eq - e - 9);
        if (kl == 0 || kl >= sizeof(key))
            continue;
        for (size_t i = 0; i < kl; i++)
            key[i] = (char)tolower((unsigned char)e[9 + i]);
        key[kl] = '\0';
        if (strcmp(key, "config") == 0)
            continue; /* the file path itself, handled by the caller */
        const struct config_row *row = config_row_find(key);
        if (row == NULL || strchr(key, '-') != NULL) {
            snprintf(err, errlen, "config: unknown environment variable %.*s", (int)(eq - e), e);
            return -1;
        }
        char src[80];
        snprintf(src, sizeof(src), "env %.*s", (int)(eq - e), e);
        if (config_set(cfg, row, eq + 1, src, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int config_build(struct og_config *cfg, const struct config_args *args, char *const *envp,
                 char *err, size_t errlen)
{
    config_defaults(cfg);
    const char *path = args ? args->config_path : NULL;
    for (char *const *e = envp; path == NULL && e && *e; e++)
        if (strncmp(*e, "OMNIGATE_CONFIG=", 16) == 0)
            path = *e + 16;
    if (path != NULL) {
        if (strlen(path) >= CONFIG_STR_MAX) {
            snprintf(err, errlen, "config: path too long");
            return -1;
        }
        if (load_file(cfg, path, err, errlen) != 0)
            return -1;
        snprintf(cfg->config_path, sizeof(cfg->config_path), "%s", path);
    }
    if (load_env(cfg, envp, err, errlen) != 0)
        return -1;
    for (size_t i = 0; args && i < args->n; i++) {
        char src[80];
        snprintf(src, sizeof(src), "flag --%s", args->set[i].row->key);
        for (char *p = src; *p; p++)
            if (*p == '_')
                *p = '-';
        if (config_set(cfg, args->set[i].row, args->set[i].value, src, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int config_reload_check(const struct og_config *old, const struct og_config *nu, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < config_rows_count; i++) {
        const struct config_row *r = &config_rows[i];
        if (r->reload)
            continue;
        const char *a = (const char *)old + r->offset, *b = (const char *)nu + r->offset;
        bool is_str = r->type == CFG_STR || r->type == CFG_ADDR || r->type == CFG_LEVEL ||
                      r->type == CFG_DSADDR || r->type == CFG_CIDRS;
        /* Strings compare as strings: bytes after the NUL are not part of them. */
        bool differs = is_str ? strcmp(a, b) != 0 : memcmp(a, b, sizeof(int64_t)) != 0;
        if (differs) {
            snprintf(err, errlen, "config: %s cannot change on reload (restart instead)", r->key);
            return -1;
        }
    }
    return 0;
}

void config_print_help(void *file)
{
    FILE *f = file;
    for (size_t i = 0; i < config_rows_count; i++) {
        const struct config_row *r = &config_rows[i];
        char flag[64], env[64];
        size_t j;
        for (j = 0; r->key[j] && j < sizeof(flag) - 1; j++)
            flag[j] = r->key[j] == '_' ? '-' : r->key[j];
        flag[j] = '\0';
        for (j = 0; r->key[j] && j < sizeof(env) - 1; j++)
            env[j] = (char)toupper((unsigned char)r->key[j]);
        env[j] = '\0';
        fprintf(f, "  --%-18s %-34s [%s] %s = %s%s\n      %s\n", flag, "", r->section, r->key,
                r->def, r->reload ? "" : "  (restart to change)", r->help);
        fprintf(f, "      env OMNIGATE_%s\n", env);
    }
}
