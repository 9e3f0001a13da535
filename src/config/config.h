/*
 * config.h — omnigate's configuration: one declarative table (STYLE §16).
 *
 * Every setting is a row: section, key, type, bounds, default, target field,
 * help and whether a SIGHUP reload may change it. The INI loader (libinih),
 * the OMNIGATE_* environment, the command-line flags, --help, --check-config
 * and docs/CONFIG.md all walk the same table. Precedence (DESIGN §10):
 * flags > environment > file > defaults.
 */
#ifndef CONFIG_CONFIG_H
#define CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_STR_MAX 256
#define CONFIG_ERR_MAX 512
/* libinih truncates longer lines silently; we refuse them instead. */
#define CONFIG_LINE_MAX 200

struct og_config {
    char bind[CONFIG_STR_MAX];
    char admin[CONFIG_STR_MAX];
    int64_t workers;
    char log_level[CONFIG_STR_MAX];
    char trusted_proxies[CONFIG_STR_MAX]; /* CIDR list (core/cidr.h) */

    int64_t header_max;       /* bytes */
    int64_t header_count_max; /* header lines */
    int64_t body_max;         /* bytes */
    int64_t head_timeout_ms;  /* whole request head must arrive within */
    int64_t body_min_rate;    /* bytes per second, after body_grace_ms */
    int64_t body_grace_ms;
    int64_t request_timeout_ms; /* dispatch to response */
    int64_t idle_timeout_ms;    /* keep-alive idle */
    int64_t write_timeout_ms;   /* no write progress for this long */
    int64_t max_connections;
    int64_t conn_pressure_high;  /* percent of max_connections: timeouts shorten above it */
    int64_t head_timeout_min_ms; /* head_timeout at max_connections */
    int64_t idle_timeout_min_ms; /* idle_timeout at max_connections */
    int64_t inflight_max;
    int64_t retry_after_s;
    /* Admission (src/admit/). Rates in thousandths of a request per second. */
    int64_t rate_milli, rate_burst;
    int64_t tenant_rate_milli, tenant_burst, tenant_table_max;
    int64_t queue_max, queue_wait_ms;
    int64_t fq_weight[3]; /* anon, authed, internal */
    int64_t degraded_headroom_pct, degraded_hold_ms;
    /* Mailbox routes (src/mailbox/) and the in-process mailbox engine. */
    int64_t mailbox_wait_max_ms, mailbox_poll_ms, mailbox_parked_max;
    int64_t mailbox_max_deliveries, mailbox_idem_window_ms, mailbox_depth_max;
    int64_t mailbox_stats_channels;
    int64_t drain_grace_ms;
    int64_t drain_delay_ms; /* SIGTERM: unready this long before the drain */

    /* Request bodies sent with a Content-Encoding: decoded bytes per byte
     * received (plus 64 KiB); 0 = no ratio cap. */
    int64_t decompress_ratio_max;

    /* Downstreams: "" = in process (micronode), else oap://HOST:PORT or unix:/path. */
    char ds_addr[3][CONFIG_STR_MAX]; /* index, storage, mailbox (enum ds_service order) */
    int64_t ds_pool_size;
    int64_t ds_concurrency[3];
    int64_t ds_retry_max;
    int64_t ds_retry_budget_pct;
    int64_t ds_hedge_after_ms; /* 0 = hedging off */
    /* Endpoint sets (ds/balance.h): passive ejection and active probes. */
    int64_t ds_eject_after, ds_eject_base_ms, ds_eject_max_ms, ds_eject_max_pct;
    int64_t ds_health_interval_ms, ds_health_timeout_ms;
    int64_t storage_mem_cap;
    int64_t storage_max_object;

    /* Views. */
    int64_t view_max_parts;
    int64_t view_inline_max;

    /* Media. */
    int64_t media_stream_window; /* storage chunks held per object stream */
    int64_t media_verify_ranges; /* 1: every range checked group by group */
    int64_t media_range_cache;   /* bytes of the verified group cache */

    /* Capabilities and policy. */
    char root_keys_file[CONFIG_STR_MAX];
    char auth_header[CONFIG_STR_MAX];
    char policy_file[CONFIG_STR_MAX];
    char internal_key_ids[CONFIG_STR_MAX];
    char internal_scopes[CONFIG_STR_MAX];

    /* Not table rows: where the file came from, and when a reload put this
     * snapshot in force (uv_hrtime(); 0 for the start-up one). */
    char config_path[CONFIG_STR_MAX];
    uint64_t loaded_ns;
};

enum config_type {
    CFG_STR,
    CFG_INT,
    CFG_SIZE,
    CFG_DURATION,
    CFG_ADDR,
    CFG_LEVEL,
    CFG_DSADDR,
    CFG_RATE,
    CFG_BOOL, /* true/on or false/off, stored as an int64_t 1 or 0 */
    CFG_CIDRS,
};

struct config_row {
    const char *section, *key;
    enum config_type type;
    size_t offset;
    int64_t min, max; /* numeric bounds, inclusive */
    const char *def;  /* default, in the same syntax as the file */
    bool reload;      /* a SIGHUP may change it */
    const char *help;
};

extern const struct config_row config_rows[];
extern const size_t config_rows_count;

/* Overrides taken from the command line, kept for reloads. */
struct config_args {
    const char *config_path; /* --config, or NULL */
    size_t n;
    struct {
        const struct config_row *row;
        const char *value;
    } set[64];
};

/* Find a row by key ("body_max") or flag spelling ("body-max"). */
const struct config_row *config_row_find(const char *key);

/* Parse one value into cfg. Returns 0, or -1 with a one-line message in err
 * naming the key, the value, the source and what is allowed. */
int config_set(struct og_config *cfg, const struct config_row *row, const char *value,
               const char *source, char *err, size_t errlen);

void config_defaults(struct og_config *cfg);

/* Build a configuration: defaults, then file (args->config_path or
 * $OMNIGATE_CONFIG), then OMNIGATE_* environment, then args. Returns 0 or -1
 * with err set. `envp` is the environment to read (environ in production). */
int config_build(struct og_config *cfg, const struct config_args *args, char *const *envp,
                 char *err, size_t errlen);

/* Check that a reload may go from old to new: only rows marked reload may
 * differ. Returns 0, or -1 with err naming the first key that may not. */
int config_reload_check(const struct og_config *old, const struct og_config *nu, char *err,
                        size_t errlen);

/* Parsers exposed for tests and other modules. Return 0 or -1. */
int config_parse_size(const char *s, int64_t *out);
int config_parse_duration_ms(const char *s, int64_t *out);
/* "500/s", "30/m", "100/h" or a bare count per second; "0" is off. In
 * thousandths of a request per second; a rate under 1/1000 s⁻¹ is refused. */
int config_parse_rate_milli(const char *s, int64_t *out);
/* "host:port" with a numeric IPv4/IPv6 host; port 0..65535. */
int config_parse_addr(const char *s, char *host, size_t hostlen, int *port);

/* "" (in process), "oap://HOST:PORT" or "unix:/path". Returns 0 or -1. */
int config_parse_ds_addr(const char *s);

/* Print the table as --help text. */
void config_print_help(void *file);

#endif
