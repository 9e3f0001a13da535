/*
 * dispatch.c — routing, admission and the gate, between the transport and
 * the handlers.
 */
#include "http/dispatch.h"

#include <stdatomic.h>

#include "config/config.h"
#include "http/ctx-t.h"
#include "http/response.h"
#include "http/router.h"

/* Requests admitted and not yet answered, over all workers: a shared atomic
 * (DESIGN §3), bumped once per request and read by scrapes and the drain. */
static atomic_long inflight;
/* Set at start-up, read-only while workers run. */
static http_gate_fn gate;

void http_dispatch_set_gate(http_gate_fn fn)
{
    gate = fn;
}

long http_dispatch_inflight(void)
{
    return atomic_load(&inflight);
}

/* ---- admission ---------------------------------------------------------- */

/* Admission: true to go on, false when req was refused (answered). Every
 * admitted or refused request passes http__admit_leave once, when it is
 * accounted. The admin listener is exempt so an overloaded node can still be
 * observed. */
static bool admit_enter(struct http_req *req)
{
    const struct http_ctx *ctx = req->ctx;
    if (ctx->is_admin)
        return true;
    long n = atomic_fetch_add(&inflight, 1) + 1;
    req->counted_inflight = true;
    if (n > ctx->cfg->inflight_max) {
        http_respond_error(req, OG_E_BUSY, NULL);
        return false;
    }
    return true;
}

void http__admit_leave(struct http_req *req)
{
    if (req->counted_inflight) {
        atomic_fetch_sub(&inflight, 1);
        req->counted_inflight = false;
    }
}

/* ---- dispatch ----------------------------------------------------------- */

void http_dispatch(struct http_req *r)
{
    const struct router *router = r->ctx->router;
    if (!r->keep_alive || r->conn->close_after_write)
        r->close_after = true;
    http_req_ids(r);

    const struct route *rt;
    enum router_result m = router_match(router, r->path, r->method, &rt, &r->param);
    if (m == ROUTE_NOT_FOUND) {
        http_respond_error(r, OG_E_NOT_FOUND, "no route for this path");
        return;
    }
    r->route = rt;
    r->route_id = router->label_ids[rt - router->routes];
    if (m == ROUTE_METHOD) {
        char allow[64];
        size_t n = router_allow(router_allowed(router, r->path), allow, sizeof(allow));
        if (http_add_header(r, "Allow", allow, n) != 0) {
            http_respond_error(r, OG_E_INTERNAL, NULL);
            return;
        }
        http_respond_error(r, OG_E_METHOD, NULL);
        return;
    }
    if (!admit_enter(r))
        return;
    if (rt->flags && gate && !gate(r))
        return;
    rt->fn(r);
}
