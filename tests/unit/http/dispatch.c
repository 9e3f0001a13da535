/*
 * The dispatcher (src/http/dispatch.c) against a fake transport: routing
 * (404, 405 with Allow), admission (the inflight cap, the admin listener's
 * exemption, the slot given back when the answer is accounted), and the gate
 * (run only for flagged routes, able to stop a request).
 */
#include <criterion/criterion.h>
#include <llhttp.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "fake_conn.h"
#include "http/ctx.h"
#include "http/dispatch.h"
#include "http/response.h"
#include "http/router.h"
#include "ops/metrics.h"

static int handled, gated;
static struct http_req *held; /* a request /hold keeps without answering */

static void on_ok(struct http_req *req)
{
    handled++;
    http_respond(req, 200, "text/plain", "ok", 2);
}

static void on_hold(struct http_req *req)
{
    handled++;
    held = req;
}

static bool gate_refuses(struct http_req *req)
{
    gated++;
    http_respond_error(req, OG_E_FORBIDDEN, NULL);
    return false;
}

static bool gate_allows(struct http_req *req)
{
    gated++;
    return true;
}

static const struct route ROUTES[] = {
    {"/ok", M_GET | M_HEAD, on_ok, 0},
    {"/hold", M_GET, on_hold, 0},
    {"/guarded", M_GET, on_ok, 1},
};

static struct og_config cfg;
static struct router router;
static struct http_ctx ctx;
static struct buf logbuf;
static struct fake_conn fc;
static struct http_req req;

static void setup(void)
{
    config_defaults(&cfg);
    log_min_level = LOG_ERROR;
    metrics_init(1);
    router_setup(&router, ROUTES, sizeof(ROUTES) / sizeof(ROUTES[0]));
    http_ctx_init(&ctx, 0, &cfg, metrics_shard(0), &router, &logbuf);
    fake_conn_init(&fc);
    http_dispatch_set_gate(NULL);
}

static void teardown(void)
{
    fake_conn_complete(&fc);
    buf_release(&fc.out);
    buf_release(&req.resp_hdrs);
    buf_release(&logbuf);
}

TestSuite(dispatch, .init = setup, .fini = teardown);

/* r as the transport hands over a request read on fc. */
static void request(struct http_req *r, int method, const char *path, bool keep_alive)
{
    buf_release(&r->resp_hdrs);
    memset(r, 0, sizeof(*r));
    r->conn = &fc.hc;
    r->ctx = &ctx;
    r->method = method;
    r->version_minor = 1;
    r->keep_alive = keep_alive;
    r->content_length = -1;
    r->path = (struct slice){path, strlen(path)};
    r->route_id = metrics_route_unmatched();
    r->t_start_ns = uv_hrtime();
}

/* Dispatch method path with keep-alive, on a fresh request. */
static void dispatch(int method, const char *path)
{
    request(&req, method, path, true);
    fc.out.n = 0;
    http_dispatch(&req);
}

static bool status_is(const char *line)
{
    cr_assert_eq(buf_reserve(&fc.out, 1), 0);
    fc.out.p[fc.out.n] = '\0';
    return strncmp(fc.out.p, line, strlen(line)) == 0;
}

Test(dispatch, a_matching_route_runs_its_handler)
{
    dispatch(HTTP_GET, "/ok");
    cr_assert_eq(handled, 1);
    cr_assert(status_is("HTTP/1.1 200 OK\r\n"));
    cr_assert_eq(req.route, &ROUTES[0]);
    cr_assert_eq(req.route_id, router.label_ids[0]);
    cr_assert_eq(strlen(req.req_id), 16, "ids are set before the handler");
}

Test(dispatch, no_route_is_404_and_runs_nothing)
{
    dispatch(HTTP_GET, "/nowhere");
    cr_assert_eq(handled, 0);
    cr_assert(status_is("HTTP/1.1 404 "));
    cr_assert_eq(req.route_id, metrics_route_unmatched());
}

Test(dispatch, another_method_is_405_with_allow)
{
    dispatch(HTTP_DELETE, "/ok");
    cr_assert_eq(handled, 0);
    cr_assert(status_is("HTTP/1.1 405 "));
    cr_assert(strstr(fc.out.p, "\r\nAllow: GET, HEAD\r\n") != NULL, "%s", fc.out.p);
}

Test(dispatch, admission_refuses_over_the_inflight_cap_and_gives_slots_back)
{
    cfg.inflight_max = 1;
    dispatch(HTTP_GET, "/hold");
    cr_assert_eq(http_dispatch_inflight(), 1);
    struct http_req *first = held;

    static struct http_req second; /* as if on another connection */
    request(&second, HTTP_GET, "/ok", true);
    fc.out.n = 0;
    http_dispatch(&second);
    cr_assert(status_is("HTTP/1.1 503 "), "over the cap: busy");
    cr_assert(strstr(fc.out.p, "\r\nRetry-After: ") != NULL);
    cr_assert_eq(handled, 1, "the refused request reached no handler");
    cr_assert_eq(http_dispatch_inflight(), 1, "a refused request gives its slot back");
    buf_release(&second.resp_hdrs);

    http_respond(first, 200, "text/plain", "late", 4);
    cr_assert_eq(http_dispatch_inflight(), 0);
}

Test(dispatch, the_admin_listener_is_exempt_from_admission)
{
    cfg.inflight_max = 0;
    ctx.is_admin = true;
    dispatch(HTTP_GET, "/ok");
    cr_assert_eq(handled, 1);
    cr_assert(status_is("HTTP/1.1 200 "));
    cr_assert_eq(http_dispatch_inflight(), 0);
}

Test(dispatch, the_gate_runs_for_flagged_routes_only)
{
    http_dispatch_set_gate(gate_allows);
    dispatch(HTTP_GET, "/ok");
    cr_assert_eq(gated, 0);
    dispatch(HTTP_GET, "/guarded");
    cr_assert_eq(gated, 1);
    cr_assert_eq(handled, 2);
}

Test(dispatch, a_refusing_gate_answers_and_stops_the_request)
{
    http_dispatch_set_gate(gate_refuses);
    dispatch(HTTP_GET, "/guarded");
    cr_assert_eq(gated, 1);
    cr_assert_eq(handled, 0);
    cr_assert(status_is("HTTP/1.1 403 "));
    cr_assert_eq(http_dispatch_inflight(), 0, "the answered request gave its slot back");
}

Test(dispatch, a_closing_transport_makes_the_answer_say_close)
{
    dispatch(HTTP_GET, "/ok");
    cr_assert_not(req.close_after);
    fc.hc.close_after_write = true; /* drain, half-close */
    dispatch(HTTP_GET, "/ok");
    cr_assert(req.close_after);
    cr_assert(strstr(fc.out.p, "\r\nConnection: close\r\n") != NULL);
}

Test(dispatch, a_request_without_keep_alive_is_answered_with_close)
{
    request(&req, HTTP_GET, "/ok", false); /* Connection: close from the client */
    http_dispatch(&req);
    cr_assert(req.close_after);
    cr_assert(status_is("HTTP/1.1 200 "));
    cr_assert(strstr(fc.out.p, "\r\nConnection: close\r\n") != NULL);
}
