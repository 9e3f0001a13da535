/*
 * integrity.c — integrity_failures_total and its log events.
 */
#include "media/integrity.h"

#include <stdatomic.h>

#include "core/log.h"
#include "ops/metrics.h"

static atomic_ulong failures; /* any thread */

static double read_failures(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&failures);
}

static const struct metric_def METRICS[] = {
    {"integrity_failures_total", METRIC_COUNTER,
     "Objects whose bytes did not hash to their address.", .read = read_failures},
};

void integrity_init(void)
{
    metrics_register(METRIC_TABLE(METRICS));
}

void integrity_report(const struct cas_addr *a, const char *where, const char *corr_id)
{
    char s[CAS_ADDR_CHARS + 1];
    atomic_fetch_add(&failures, 1);
    struct buf b = {0};
    struct jw j;
    log_begin(&j, &b, LOG_ERROR, "integrity_failure");
    jw_key(&j, "obj");
    jw_str(&j, cas_addr_format(a, s));
    jw_key(&j, "where");
    jw_str(&j, where);
    jw_key(&j, "corr_id");
    jw_str(&j, corr_id ? corr_id : "");
    log_end(&j);
    buf_release(&b);
}

bool integrity_check(const struct cas_addr *a, const void *p, size_t n, const char *where,
                     const char *corr_id)
{
    struct cas_addr got;
    cas_hash(p, n, &got);
    if (cas_addr_equal(&got, a))
        return true;
    integrity_report(a, where, corr_id);
    return false;
}
