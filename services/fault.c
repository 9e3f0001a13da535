/*
 * fault.c — fault injection of the reference services (see fault.h).
 */
#include "services/fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oap/oap-t.h"
#include "services/substrate.h"

/* ---------------------------------------------------------------- settings */

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

int fault_set(struct fault_cfg *f, const char *name, const char *value)
{
    if (strcmp(name, "latency_ms") == 0)
        return parse_u32(value, SVC_FAULT_MAX_MS, &f->latency_ms);
    if (strcmp(name, "jitter_ms") == 0)
        return parse_u32(value, SVC_FAULT_MAX_MS, &f->jitter_ms);
    if (strcmp(name, "error_rate") == 0)
        return parse_rate(value, &f->error_rate);
    if (strcmp(name, "stall_rate") == 0)
        return parse_rate(value, &f->stall_rate);
    if (strcmp(name, "drop_rate") == 0)
        return parse_rate(value, &f->drop_rate);
    if (strcmp(name, "corrupt_rate") == 0)
        return parse_rate(value, &f->corrupt_rate);
    if (strcmp(name, "corrupt_op") == 0) {
        if (strcmp(value, "any") != 0 && strcmp(value, "get") != 0 && strcmp(value, "proof") != 0 &&
            strcmp(value, "outboard") != 0)
            return -1;
        snprintf(f->corrupt_op, sizeof(f->corrupt_op), "%s", value);
        return 0;
    }
    return -1;
}

int fault_json(const struct fault_cfg *f, char *out, size_t cap)
{
    const uint64_t *n = g_svc.faults;

    return snprintf(out, cap,
                    "{\"latency_ms\":%u,\"jitter_ms\":%u,\"error_rate\":%g,\"stall_rate\":%g,"
                    "\"drop_rate\":%g,\"corrupt_rate\":%g,\"corrupt_op\":\"%s\","
                    "\"injected\":{\"latency\":%llu,"
                    "\"error\":%llu,\"stall\":%llu,\"drop\":%llu,\"corrupt\":%llu}}",
                    f->latency_ms, f->jitter_ms, f->error_rate, f->stall_rate, f->drop_rate,
                    f->corrupt_rate, f->corrupt_op[0] ? f->corrupt_op : "any",
                    (unsigned long long)n[FAULT_LATENCY], (unsigned long long)n[FAULT_ERROR],
                    (unsigned long long)n[FAULT_STALL], (unsigned long long)n[FAULT_DROP],
                    (unsigned long long)n[FAULT_CORRUPT]);
}

/* ------------------------------------------------------------------- rolls */

/* A hit with probability rate (no random draw when the rate is 0). */
static bool roll(double rate, enum fault_kind kind)
{
    if (!(rate > 0 && svc_rand01() < rate))
        return false;
    g_svc.faults[kind]++;
    return true;
}

bool fault_drop(void)
{
    return roll(g_svc.fault.drop_rate, FAULT_DROP);
}

bool fault_stall(void)
{
    return roll(g_svc.fault.stall_rate, FAULT_STALL);
}

bool fault_error(struct proto_resp *rs)
{
    if (!roll(g_svc.fault.error_rate, FAULT_ERROR))
        return false;
    rs->code = 503;
    rs->op = "invalid";
    rs->hdr_len = (size_t)snprintf(rs->hdr, sizeof(rs->hdr),
                                   "{\"error\":\"injected\",\"reason\":\"fault injection\"}");
    return true;
}

void fault_corrupt(uint16_t app, struct proto_resp *rs)
{
    struct eng_buf *copy;

    const char *only = g_svc.fault.corrupt_op;
    if (app != OAP_APP_STORAGE || rs->body_len == 0 || (rs->code != 200 && rs->code != 206) ||
        (only[0] && strcmp(only, "any") != 0 && strcmp(only, rs->op) != 0) ||
        !(g_svc.fault.corrupt_rate > 0 && svc_rand01() < g_svc.fault.corrupt_rate))
        return;
    if ((copy = eng_buf_from(rs->body, rs->body_len)) == NULL)
        return;
    copy->bytes[svc_rand_below(
        (uint32_t)(rs->body_len > UINT32_MAX ? UINT32_MAX : rs->body_len))] ^= 0xff;
    storage_blob_unref(rs->blob);
    rs->blob = NULL;
    eng_buf_unref(rs->buf);
    rs->buf = copy;
    rs->body = copy->bytes;
    g_svc.faults[FAULT_CORRUPT]++;
}

uint32_t fault_delay_ms(void)
{
    const struct fault_cfg *f = &g_svc.fault;
    uint32_t delay = f->latency_ms + svc_rand_below(f->jitter_ms ? f->jitter_ms + 1 : 0);

    if (delay > 0)
        g_svc.faults[FAULT_LATENCY]++;
    return delay;
}
