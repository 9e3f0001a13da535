/*
 * hctx.c — handler context: request link, cancel hook, calls in flight.
 *
 * The one place a handler reaches the configuration and the downstream
 * handle through its request (hctx_cfg, hctx_ds), so that how a handler
 * gets them can change here alone.
 */
#include "handler/hctx.h"

#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include "http/ctx-t.h"
#include "http/response.h"

const struct og_config *hctx_cfg(const struct http_req *req)
{
    return req->ctx->cfg;
}

struct ds_worker *hctx_ds(const struct http_req *req)
{
    return req->ctx->ds;
}

uint64_t hctx_hop_deadline(const struct http_req *req)
{
    uint64_t reserve = (uint64_t)hctx_cfg(req)->request_timeout_ms / 10;
    reserve = reserve < 2 ? 2 : reserve > 100 ? 100 : reserve;
    return req->deadline_ms > reserve ? req->deadline_ms - reserve : 0;
}

bool hctx_name_ok(struct slice s)
{
    if (s.n == 0 || s.n > HCTX_NAME_MAX)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':'))
            return false;
    }
    return true;
}

bool hctx_name_check(struct http_req *req, const char *what)
{
    if (hctx_name_ok(req->param))
        return true;
    char reason[64];
    snprintf(reason, sizeof(reason), "%s must be 1-255 of [A-Za-z0-9._:-]", what);
    http_respond_error(req, OG_E_BAD_REQUEST, reason);
    return false;
}

enum og_err hctx_call_err(int code, enum og_err err)
{
    if (code == 0)
        return err == OG_E_DOWNSTREAM_TIMEOUT || err == OG_E_BUSY ? err : OG_E_BAD_GATEWAY;
    if (code == 404)
        return OG_E_NOT_FOUND;
    if (code == 504)
        return OG_E_DOWNSTREAM_TIMEOUT;
    if (code == 429 || code == 503)
        return OG_E_BUSY;
    return OG_E_BAD_GATEWAY;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void req_on_cancel(struct http_req *req)
{
    hctx_end(req->hdata);
}

void hctx_init(struct hctx *h, struct http_req *req, hctx_release_fn release)
{
    h->req = req;
    h->release = release;
    h->calls = NULL;
    h->pending = 0;
    req->hdata = h;
    req->on_cancel = req_on_cancel;
}

struct http_req *hctx_end(struct hctx *h)
{
    struct http_req *req = h->req;
    for (struct hctx_call *c = h->calls; c; c = c->next)
        if (c->call) {
            ds_cancel(c->call);
            c->call = NULL;
        }
    req->on_cancel = NULL;
    if (h->release)
        h->release(h);
    else
        free(h);
    return req;
}

void hctx_fail(struct hctx *h, enum og_err e, const char *reason)
{
    http_respond_error(hctx_end(h), e, reason);
}

void hctx_fail_call(struct hctx *h, const struct ds_resp *r, const char *what)
{
    enum og_err e = hctx_call_err(r->code, r->err);
    char reason[160];
    snprintf(reason, sizeof(reason), "%s: %s", what,
             r->code ? "downstream answered an error" : og_err_reason(r->err));
    hctx_fail(h, e, e == OG_E_NOT_FOUND ? NULL : reason);
}

/* ---- calls -------------------------------------------------------------- */

static void call_on_resp(void *arg, struct ds_resp *r)
{
    struct hctx_call *c = arg;
    struct hctx *h = c->h;
    c->call = NULL;
    h->pending--;
    http_req_hop(h->req, c->hop, r->latency_ms);
    c->on_resp(c, r);
}

int hctx_call(struct hctx *h, struct hctx_call *c, const struct ds_req *dr, const char *hop,
              hctx_resp_fn cb)
{
    struct ds_req d = *dr;
    d.corr_id = h->req->corr_id;
    c->h = h;
    c->hop = hop;
    c->on_resp = cb;
    c->call = ds_call(hctx_ds(h->req), &d, call_on_resp, c);
    if (c->call == NULL)
        return -1;
    /* A call struct may be used again for a later call (a long-poll
     * receives again): it is linked once. */
    struct hctx_call *x = h->calls;
    while (x && x != c)
        x = x->next;
    if (x == NULL) {
        c->next = h->calls;
        h->calls = c;
    }
    h->pending++;
    return 0;
}
