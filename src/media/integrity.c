/*
 * integrity.c — integrity_failures_total{kind} and its log events.
 */
#include "media/integrity.h"

#include <stdatomic.h>

#include "core/log.h"
#include "ops/metrics.h"

static const char *const KINDS[INTEGRITY__KINDS] = {"object", "range", "view", "outboard"};
static atomic_ulong failures[INTEGRITY__KINDS]; /* any thread */

static double read_failures(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&failures[ix[0]]);
}

static const struct metric_label L_KIND = {"kind", KINDS, INTEGRITY__KINDS, NULL};

static const struct metric_def METRICS[] = {
    {"integrity_failures_total", METRIC_COUNTER,
     "Bytes from storage that did not match their address, by what was checked.",
     .labels = {&L_KIND}, .read = read_failures},
};

void integrity_init(void)
{
    metrics_register(METRIC_TABLE(METRICS));
}

void integrity_report(const struct cas_addr *a, enum integrity_kind kind, int64_t group,
                      const char *corr_id)
{
    char s[CAS_ADDR_CHARS + 1];
    atomic_fetch_add(&failures[kind], 1);
    struct buf b = {0};
    struct jw j;
    log_begin(&j, &b, LOG_ERROR, "integrity_failure");
    jw_key(&j, "obj");
    jw_str(&j, cas_addr_format(a, s));
    jw_key(&j, "kind");
    jw_str(&j, KINDS[kind]);
    if (group >= 0) {
        jw_key(&j, "group");
        jw_int(&j, group);
    }
    jw_key(&j, "corr_id");
    jw_str(&j, corr_id ? corr_id : "");
    log_end(&j);
    buf_release(&b);
}

bool integrity_check(const struct cas_addr *a, const void *p, size_t n, enum integrity_kind kind,
                     const char *corr_id)
{
    struct cas_addr got;
    cas_hash(p, n, &got);
    if (cas_addr_equal(&got, a))
        return true;
    integrity_report(a, kind, INTEGRITY_NO_GROUP, corr_id);
    return false;
}
