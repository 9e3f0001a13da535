/*
 * health.c — /healthz, /readyz, /metrics.
 */
#include "ops/health.h"

#include <stdio.h>
#include <string.h>

#include "core/jw.h"
#include "http/response.h"
#include "config/config.h"
#include "http/ctx-t.h"
#include "ops/metrics.h"

#define READY_KEYS_MAX 16

static struct {
    const char *key;
    ready_fn fn;
} keys[READY_KEYS_MAX]; /* read-only after start-up */
static int nkeys;
static bool amnesia; /* set at start-up, read-only after */

void health_set_amnesia(bool on)
{
    amnesia = on;
}

void ready_register(const char *key, ready_fn fn)
{
    if (nkeys < READY_KEYS_MAX)
        keys[nkeys++] = (typeof(keys[0])){key, fn};
}

bool ready_key_ok(const char *key)
{
    for (int i = 0; i < nkeys; i++)
        if (strcmp(keys[i].key, key) == 0)
            return keys[i].fn();
    return true;
}

bool ready_all(void)
{
    for (int i = 0; i < nkeys; i++)
        if (!keys[i].fn())
            return false;
    return true;
}

void health_on_healthz(struct http_req *req)
{
    static const char OK[] = "{\"status\":\"ok\"}";
    http_respond(req, 200, "application/json", OK, sizeof(OK) - 1);
}

void health_on_readyz(struct http_req *req)
{
    if (ready_all()) {
        static const char OK[] = "{\"ready\":true,\"amnesia\":false}";
        static const char OK_AMNESIA[] = "{\"ready\":true,\"amnesia\":true}";
        if (amnesia)
            http_respond(req, 200, "application/json", OK_AMNESIA, sizeof(OK_AMNESIA) - 1);
        else
            http_respond(req, 200, "application/json", OK, sizeof(OK) - 1);
        return;
    }
    int64_t ra = req->ctx->cfg->retry_after_s;
    struct buf body = {0};
    struct jw j;
    jw_init(&j, &body);
    jw_obj_open(&j);
    jw_key(&j, "ready");
    jw_bool(&j, false);
    jw_key(&j, "degraded");
    jw_bool(&j, true);
    jw_key(&j, "missing");
    jw_arr_open(&j);
    for (int i = 0; i < nkeys; i++)
        if (!keys[i].fn())
            jw_str(&j, keys[i].key);
    jw_arr_close(&j);
    jw_key(&j, "retry_after");
    jw_int(&j, ra);
    jw_key(&j, "amnesia");
    jw_bool(&j, amnesia);
    jw_obj_close(&j);
    char ra_s[24];
    int n = snprintf(ra_s, sizeof(ra_s), "%lld", (long long)ra);
    if (jw_failed(&j) || http_add_header(req, "Retry-After", ra_s, (size_t)n) != 0) {
        buf_release(&body);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    http_respond_buf(req, 503, "application/json", &body);
}

void health_on_metrics(struct http_req *req)
{
    struct buf out = {0};
    if (metrics_render(&out) != 0) {
        buf_release(&out);
        http_respond_error(req, OG_E_INTERNAL, "out of memory rendering metrics");
        return;
    }
    http_respond_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &out);
}
