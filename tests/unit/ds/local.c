/*
 * local.c — the in-process backend (src/ds/local.c) on a real loop with
 * real engines: every op a handler sends reaches the engines as a typed op
 * and answers as the JSON path would, and no request header JSON is parsed
 * on the way (engines/proto counts every header it parses).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "ds/call.h"
#include "ds/op.h"
#include "engines/proto/proto.h"

static struct og_config cfg;
static const struct og_config *cfgp = &cfg;
static uv_loop_t loop;
static struct ds_worker *dw;

static void setup(void)
{
    config_defaults(&cfg); /* no downstream address: all three in process */
    log_min_level = LOG_ERROR;
    cas_init();
    cr_assert_eq(ds_start(&cfg, 1), 0);
    cr_assert(ds_is_micronode());
    cr_assert_eq(uv_loop_init(&loop), 0);
    dw = ds_worker_init(0, &loop, &cfgp, NULL, NULL);
}

static void close_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void teardown(void)
{
    uv_walk(&loop, close_handle, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    ds_stop();
}

TestSuite(ds_local, .init = setup, .fini = teardown);

struct got {
    int n;
    int code;
    char hdr[256];
    char body[256];
    size_t body_len;
};

static void on_resp(void *arg, struct ds_resp *r)
{
    struct got *g = arg;
    g->n++;
    g->code = r->code;
    snprintf(g->hdr, sizeof(g->hdr), "%.*s", (int)r->hdr_len, r->hdr);
    g->body_len = r->body_len < sizeof(g->body) ? r->body_len : sizeof(g->body);
    if (g->body_len)
        memcpy(g->body, r->body, g->body_len);
}

/* Send r (with body) and run the loop until it is answered. */
static struct got call(struct ds_req *r, const char *body)
{
    struct got g = {0};
    r->deadline_ms = uv_now(&loop) + 30000;
    r->body = body;
    r->body_len = body ? strlen(body) : 0;
    cr_assert_not_null(ds_call(dw, r, on_resp, &g));
    cr_assert_eq(g.n, 0, "never inside ds_call");
    while (g.n == 0)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(g.n, 1);
    return g;
}

Test(ds_local, every_op_in_process_without_json)
{
    struct ds_req r;
    struct cas_addr a;
    char hex[CAS_ADDR_CHARS + 1], want[256];
    uint64_t parses = proto_json_parses();

    cas_hash("hello world", 11, &a);
    cas_addr_format(&a, hex);
    cr_assert_eq(ds_op_put(&r, &a), 0);
    struct got g = call(&r, "hello world");
    cr_assert_eq(g.code, 201, "%s", g.hdr);
    snprintf(want, sizeof(want), "{\"obj\":\"%s\",\"size\":11}", hex);
    cr_assert_str_eq(g.hdr, want);

    cr_assert_eq(ds_op_get(&r, &a, false, 0, 0), 0);
    g = call(&r, NULL);
    cr_assert_eq(g.code, 200);
    snprintf(want, sizeof(want), "{\"obj\":\"%s\",\"size\":11,\"off\":0,\"len\":11}", hex);
    cr_assert_str_eq(g.hdr, want);
    cr_assert_eq(g.body_len, 11);
    cr_assert_eq(memcmp(g.body, "hello world", 11), 0);

    cr_assert_eq(ds_op_get(&r, &a, true, 6, 3), 0);
    g = call(&r, NULL);
    cr_assert_eq(g.code, 206);
    cr_assert_eq(g.body_len, 3);
    cr_assert_eq(memcmp(g.body, "wor", 3), 0);

    cr_assert_eq(ds_op_has(&r, &a), 0);
    g = call(&r, NULL);
    cr_assert_eq(g.code, 200);

    cr_assert_eq(ds_op_index_put(&r, "v/a", 3), 0);
    g = call(&r, "{\"kind\":\"view\",\"parts\":{}}");
    cr_assert_eq(g.code, 201, "%s", g.hdr);
    cr_assert_eq(ds_op_resolve(&r, "v/a", 3), 0);
    g = call(&r, NULL);
    cr_assert_eq(g.code, 200);
    cr_assert_str_eq(g.body, "{\"kind\":\"view\",\"parts\":{}}");
    cr_assert_eq(ds_op_search(&r, "v/", 2, 5), 0);
    g = call(&r, NULL);
    cr_assert_eq(g.code, 200);
    cr_assert_str_eq(g.body, "{\"names\":[\"v/a\"],\"more\":false}");

    cr_assert_eq(ds_op_send(&r, "news", "k1"), 0);
    g = call(&r, "first");
    cr_assert_eq(g.code, 201, "%s", g.hdr);
    g = call(&r, "first");
    cr_assert_eq(g.code, 200, "the same key again: a duplicate");
    cr_assert_eq(ds_op_peek(&r, "news", 4, 5), 0);
    g = call(&r, NULL);
    cr_assert_eq(g.code, 200);
    cr_assert_str_eq(g.hdr, "{\"count\":1}");

    /* Refusals come from the same checks as on the wire. */
    cr_assert_eq(ds_op_resolve(&r, "a\tb", 3), 0);
    g = call(&r, NULL);
    cr_assert_eq(g.code, 400);
    cr_assert_str_eq(g.hdr, "{\"error\":\"bad_request\",\"reason\":\"bad name\"}");
    cr_assert_eq(ds_op_peek(&r, "news", 4, 0), 0);
    g = call(&r, NULL);
    cr_assert_eq(g.code, 400);
    cr_assert_str_eq(g.hdr,
                     "{\"error\":\"bad_request\",\"reason\":\"max must be an integer in 1..100\"}");

    cr_assert_eq(proto_json_parses(), parses, "no request header JSON parsed in process");
}

/* The remaining deadline travels with the typed op: a call whose deadline
 * has passed when the engines serve it is answered 504, not run. */
Test(ds_local, deadline_travels_with_the_op)
{
    struct ds_req r;
    struct got g = {0};
    cr_assert_eq(ds_op_send(&r, "late", NULL), 0);
    r.body = "m";
    r.body_len = 1;
    r.deadline_ms = uv_now(&loop); /* nothing left */
    cr_assert_not_null(ds_call(dw, &r, on_resp, &g));
    while (g.n == 0)
        uv_run(&loop, UV_RUN_ONCE);
    /* Either the engines said 504 or the call's own timer fired first. */
    cr_assert(g.code == 504 || g.code == 0, "%d %s", g.code, g.hdr);
    cr_assert_eq(ds_op_peek(&r, "late", 4, 5), 0);
    g = call(&r, NULL);
    cr_assert_str_eq(g.hdr, "{\"count\":0}", "the send was not run");
}
