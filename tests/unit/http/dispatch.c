/*
 * The dispatcher (src/http/dispatch.c) against a fake transport: routing
 * (404, 405 with Allow), the admission hooks (their order around the gate,
 * the admin listener's exemption, leave once per accounted request, parking
 * and resuming), and the gate (run only for flagged routes, able to stop a
 * request).
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

/* A stand-in admission layer that records the order of calls. */
static char trail[64];
static bool refuse_early;
static enum http_admit verdict;
static int left;

static void mark(char c)
{
    size_t n = strlen(trail);
    if (n + 1 < sizeof(trail))
        trail[n] = c, trail[n + 1] = '\0';
}

static bool stub_before_gate(struct http_req *r)
{
    mark('b');
    if (refuse_early)
        http_respond_error(r, OG_E_QUOTA, NULL);
    return !refuse_early;
}

static enum http_admit stub_enter(struct http_req *r)
{
    mark('e');
    if (verdict == HTTP_ADMIT_ANSWERED)
        http_respond_error(r, OG_E_BUSY, NULL);
    return verdict;
}

static void stub_leave(struct http_req *r)
{
    mark('l');
    left++;
}

static bool gate_marks(struct http_req *r)
{
    mark('g');
    return true;
}

static const struct http_admission STUB = {stub_before_gate, stub_enter, stub_leave};

static void use_stub(void)
{
    trail[0] = '\0';
    refuse_early = false;
    verdict = HTTP_ADMIT_GO;
    left = 0;
    http_dispatch_set_admission(&STUB);
    http_dispatch_set_gate(gate_marks);
}

Test(dispatch, admission_runs_around_the_gate_and_leaves_once)
{
    use_stub();
    dispatch(HTTP_GET, "/hold");
    cr_assert_str_eq(trail, "be", "before_gate, then enter; the gate is for flagged routes");
    cr_assert_eq(http_dispatch_inflight(), 1);
    static struct http_req second; /* as if on another connection */
    request(&second, HTTP_GET, "/guarded", true);
    http_dispatch_head(&second);
    cr_assert_str_eq(trail, "bebge");
    http_respond(held, 200, "text/plain", "late", 4);
    cr_assert_eq(left, 1, "leave runs once, when the held request is accounted");
    http_dispatch_run(&second);
    cr_assert_eq(left, 2);
    buf_release(&second.resp_hdrs);
    cr_assert_eq(http_dispatch_inflight(), 0);
    http_dispatch_set_admission(NULL);
}

Test(dispatch, a_refusal_before_the_gate_stops_everything_after_it)
{
    use_stub();
    refuse_early = true;
    dispatch(HTTP_GET, "/guarded");
    cr_assert_str_eq(trail, "b", "neither the gate nor enter ran");
    cr_assert(status_is("HTTP/1.1 429 "));
    cr_assert_eq(handled, 0);
    cr_assert_eq(left, 0, "nothing to give back");
    cr_assert_eq(http_dispatch_inflight(), 0);
    http_dispatch_set_admission(NULL);
}

Test(dispatch, a_refused_enter_answers_and_gives_back)
{
    use_stub();
    verdict = HTTP_ADMIT_ANSWERED;
    dispatch(HTTP_GET, "/ok");
    cr_assert(status_is("HTTP/1.1 503 "));
    cr_assert(strstr(fc.out.p, "\r\nRetry-After: ") != NULL);
    cr_assert_eq(handled, 0);
    cr_assert_eq(left, 1);
    cr_assert_eq(http_dispatch_inflight(), 0);
    http_dispatch_set_admission(NULL);
}

Test(dispatch, a_parked_request_waits_for_resume)
{
    use_stub();
    verdict = HTTP_ADMIT_WAIT;
    request(&req, HTTP_GET, "/ok", true);
    cr_assert_eq(http_dispatch_head(&req), HTTP_ADMIT_WAIT);
    cr_assert_eq(handled, 0, "a parked request runs nothing");
    cr_assert_eq(fc.out.n, 0);
    http_dispatch_resume(&req);
    cr_assert_eq(fc.resumed, 1, "resume goes through the transport");
    http_dispatch_run(&req);
    cr_assert_eq(handled, 1);
    cr_assert_eq(left, 1);
    http_dispatch_set_admission(NULL);
}

Test(dispatch, the_admin_listener_is_exempt_from_admission)
{
    use_stub();
    ctx.is_admin = true;
    refuse_early = true;
    dispatch(HTTP_GET, "/ok");
    cr_assert_eq(handled, 1);
    cr_assert(status_is("HTTP/1.1 200 "));
    cr_assert_str_eq(trail, "", "no hook ran");
    ctx.is_admin = false;
    http_dispatch_set_admission(NULL);
}

Test(dispatch, an_answer_before_the_body_closes_the_connection)
{
    request(&req, HTTP_PUT, "/nowhere", true);
    req.body_pending = true;
    fc.out.n = 0;
    http_dispatch(&req);
    cr_assert(status_is("HTTP/1.1 404 "));
    cr_assert(req.close_after, "the unread body cannot be framed");
    cr_assert(strstr(fc.out.p, "\r\nConnection: close\r\n") != NULL);
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
