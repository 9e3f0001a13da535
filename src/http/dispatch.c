/*
 * dispatch.c — routing, admission and the gate, between the transport and
 * the handlers.
 */
#include "http/dispatch.h"

#include <stdatomic.h>

#include "http/conn-t.h"
#include "http/ctx-t.h"
#include "http/response.h"
#include "http/router.h"

/* Requests admitted and not yet answered, over all workers: a shared atomic
 * (DESIGN §3), bumped once per request and read by scrapes and the drain. */
static atomic_long inflight;
/* Set at start-up, read-only while workers run. */
static http_gate_fn gate;
static const struct http_admission *admission;

void http_dispatch_set_gate(http_gate_fn fn)
{
    gate = fn;
}

void http_dispatch_set_admission(const struct http_admission *a)
{
    admission = a;
}

long http_dispatch_inflight(void)
{
    return atomic_load(&inflight);
}

void http__admit_leave(struct http_req *req)
{
    if (req->counted_inflight) {
        atomic_fetch_sub(&inflight, 1);
        req->counted_inflight = false;
        if (admission && !req->ctx->is_admin)
            admission->leave(req);
    }
}

/* Steps 3–5; the admin listener is exempt, so an overloaded node can still
 * be observed and steered. */
static enum http_admit admit(struct http_req *r)
{
    bool exempt = r->ctx->is_admin || admission == NULL;
    if (!exempt && !admission->before_gate(r))
        return HTTP_ADMIT_ANSWERED;
    if (r->route->flags && gate && !gate(r))
        return HTTP_ADMIT_ANSWERED;
    atomic_fetch_add(&inflight, 1);
    r->counted_inflight = true;
    return exempt ? HTTP_ADMIT_GO : admission->enter(r);
}

enum http_admit http_dispatch_head(struct http_req *r)
{
    const struct router *router = r->ctx->router;
    if (!r->keep_alive || r->conn->close_after_write)
        r->close_after = true;
    http_req_ids(r);

    const struct route *rt;
    enum router_result m = router_match(router, r->path, r->method, &rt, &r->param);
    if (m == ROUTE_NOT_FOUND) {
        http_respond_error(r, OG_E_NOT_FOUND, "no route for this path");
        return HTTP_ADMIT_ANSWERED;
    }
    r->route = rt;
    r->route_id = router->label_ids[rt - router->routes];
    if (m == ROUTE_METHOD) {
        char allow[64];
        size_t n = router_allow(router_allowed(router, r->path), allow, sizeof(allow));
        if (http_add_header(r, "Allow", allow, n) != 0) {
            http_respond_error(r, OG_E_INTERNAL, NULL);
            return HTTP_ADMIT_ANSWERED;
        }
        http_respond_error(r, OG_E_METHOD, NULL);
        return HTTP_ADMIT_ANSWERED;
    }
    return admit(r);
}

void http_dispatch_run(struct http_req *r)
{
    r->route->fn(r);
}

void http_dispatch(struct http_req *r)
{
    if (http_dispatch_head(r) == HTTP_ADMIT_GO)
        http_dispatch_run(r);
}

void http_dispatch_detach(struct http_req *r)
{
    http__admit_leave(r);
}

void http_dispatch_resume(struct http_req *r)
{
    r->conn->ops->resume(r->conn);
}
