/*
 * call.c — the call lifecycle (src/ds/call.c) on a loop with a fake
 * backend (fake.h): copies, out-of-memory paths, failed sends, retries, the
 * concurrency limit.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "ds/op.h"
#include "ds/stats.h"
#include "fake.h"
#include "tests/unit/fault.h"

TestSuite(ds_call, .init = fake_setup, .fini = fake_teardown);

/*
 * Regression: a call whose header (or body) copy could not be allocated
 * was freed after its uv_timer_t had been initialised, so the loop still
 * listed the freed handle: uv_loop_close then read freed memory and found
 * the loop busy (fake_close_loop checks for a clean close). The header is
 * now the typed op, copied into the call's own block with its strings.
 */
Test(ds_call, oom_allocating_the_call_leaves_no_handle)
{
    struct fake_got g = {0};
    struct ds_req r = fake_read("x");
    fault_malloc_fail_after(0);
    cr_assert_null(ds_call(fake.dw, &r, fake_on_resp, &g));
    cr_assert_eq(fake.nsent, 0);
    cr_assert_eq(g.n, 0, "no callback for a call that was never made");
    fake_close_loop();
}

Test(ds_call, oom_copying_the_body_leaves_no_handle)
{
    static const char body[] = "some body";
    struct fake_got g = {0};
    struct ds_req r = fake_read("x");
    r.body = body;
    r.body_len = sizeof(body);
    fault_malloc_fail_after(1); /* the call's block (with the op) succeeds */
    cr_assert_null(ds_call(fake.dw, &r, fake_on_resp, &g));
    cr_assert_eq(g.n, 0);
    fake_close_loop();
}

static void never_head(void *arg, struct ds_resp *r)
{
    cr_assert_fail("unexpected head");
}

static void never_chunk(void *arg, const uint8_t *p, size_t n, void *owner)
{
    cr_assert_fail("unexpected chunk");
}

static void never_end(void *arg, int status)
{
    cr_assert_fail("unexpected end");
}

static const struct ds_stream_cbs NEVER_CBS = {never_head, never_chunk, never_end};

Test(ds_call, oom_allocating_a_stream_leaves_no_handle)
{
    struct ds_req r = fake_read("x");
    fault_malloc_fail_after(0);
    cr_assert_null(ds_call_stream(fake.dw, &r, &NEVER_CBS, NULL));
    fake_close_loop();
}

Test(ds_call, body_is_copied)
{
    char body[] = "some body";
    struct fake_got g = {0};
    struct ds_req r = fake_read("x");
    r.body = body;
    r.body_len = sizeof(body);
    r.idempotent = false;
    cr_assert_not_null(ds_call(fake.dw, &r, fake_on_resp, &g));
    memset(body, 'X', sizeof(body)); /* the caller's buffer is gone */
    cr_assert_eq(fake.nsent, 1);
    cr_assert_eq(memcmp(fake.sent[0]->req.body, "some body", sizeof(body)), 0);
    fake_answer(fake.sent[0], 201, 0);
    cr_assert_eq(g.n, 1);
    fake_close_loop();
}

/* The op's strings are the call's own: the caller may reuse its buffers
 * and its request at once, and a retry sends the same op. */
Test(ds_call, op_strings_are_copied_and_kept_for_retries)
{
    char name[] = "user-007";
    struct fake_got g = {0};
    struct ds_req r;
    cr_assert_eq(ds_op_resolve(&r, name, strlen(name)), 0);
    r.deadline_ms = uv_now(&fake.loop) + 30000;
    fake.cfg.ds_retry_max = 1;
    atomic_store(&retry_budget[DS_INDEX], RETRY_BUDGET_SCALE);
    cr_assert_not_null(ds_call(fake.dw, &r, fake_on_resp, &g));
    memset(name, 'X', strlen(name));
    cr_assert_eq(ds_op_resolve(&r, "other", 5), 0); /* the request rebuilt */
    const struct proto_op *sent = &fake.sent[0]->req.op;
    cr_assert_eq(sent->kind, PROTO_RESOLVE);
    cr_assert_eq(sent->name.n, 8);
    cr_assert_eq(memcmp(sent->name.p, "user-007", 8), 0);
    cr_assert_neq(sent->name.p, name);
    fake_answer(fake.sent[0], 503, 0);
    while (fake.nsent < 2) {
        uv_run(&fake.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    cr_assert_eq(fake.sent[1], fake.sent[0], "a retry is the same call");
    cr_assert_eq(memcmp(fake.sent[1]->req.op.name.p, "user-007", 8), 0);
    fake_answer(fake.sent[1], 200, 0);
    cr_assert_eq(g.code, 200);
    fake_close_loop();
}

/* A backend that cannot start an attempt is answered on a later turn,
 * never inside ds_call: out of memory as INTERNAL, unreachable as
 * BAD_GATEWAY (retried, for an idempotent read, until the budget says no). */
Test(ds_call, failed_send_answers_on_a_later_turn)
{
    struct fake_got g = {0}, g2 = {0};
    struct ds_req r = fake_read("x");
    fake.send_result = DS_SEND_NOMEM;
    cr_assert_not_null(ds_call(fake.dw, &r, fake_on_resp, &g));
    cr_assert_eq(g.n, 0);
    uv_run(&fake.loop, UV_RUN_NOWAIT);
    cr_assert_eq(g.n, 1);
    cr_assert_eq(g.code, 0);
    cr_assert_eq(g.err, OG_E_INTERNAL);

    fake.send_result = -1;
    fake.cfg.ds_retry_max = 0;
    r = fake_read("y");
    cr_assert_not_null(ds_call(fake.dw, &r, fake_on_resp, &g2));
    cr_assert_eq(g2.n, 0);
    uv_run(&fake.loop, UV_RUN_NOWAIT);
    cr_assert_eq(g2.n, 1);
    cr_assert_eq(g2.err, OG_E_BAD_GATEWAY);
    fake_close_loop();
}

Test(ds_call, transient_failure_is_retried_after_backoff)
{
    struct fake_got g = {0};
    struct ds_req r = fake_read("x");
    fake.cfg.ds_retry_max = 2;
    atomic_store(&retry_budget[DS_STORAGE], RETRY_BUDGET_SCALE); /* one retry's worth */
    cr_assert_not_null(ds_call(fake.dw, &r, fake_on_resp, &g));
    fake_answer(fake.sent[0], 503, 0);
    cr_assert_eq(g.n, 0, "waiting in backoff");
    cr_assert_eq(stats_of(fake.dw)->retries[DS_STORAGE], 1);
    /* NOWAIT: ONCE may run the due backoff and then block in poll until the
     * next timer, the deadline. */
    while (fake.nsent < 2) {
        uv_run(&fake.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    fake_answer(fake.sent[1], 502, 0);
    cr_assert_eq(g.n, 1, "the budget is spent: the failure is final");
    cr_assert_eq(g.code, 502);
    cr_assert_eq(g.attempts, 2);
    fake_close_loop();
}

/* Endpoint sets: a storage read's 404 is tried on an endpoint the call has
 * not tried, and the caller sees 404 only once none is left; other
 * services and other answers are not. */
Test(ds_call, storage_404_falls_through_while_endpoints_are_untried)
{
    struct fake_got g = {0};
    struct ds_req r = fake_read("x");
    fake.untried = 2;
    cr_assert_not_null(ds_call(fake.dw, &r, fake_on_resp, &g));
    fake_answer(fake.sent[0], 404, 0);
    cr_assert_eq(fake.nsent, 2, "tried on another endpoint at once");
    cr_assert_eq(g.n, 0);
    fake_answer(fake.sent[1], 404, 0);
    cr_assert_eq(fake.nsent, 3);
    fake_answer(fake.sent[2], 404, 0);
    cr_assert_eq(g.n, 1, "no endpoint left: the caller gets the 404");
    cr_assert_eq(g.code, 404);
    cr_assert_eq(g.attempts, 3);
    cr_assert_eq(stats_of(fake.dw)->retries[DS_STORAGE], 0, "a miss is not a retry");

    struct fake_got g2 = {0};
    r = fake_read("y");
    r.svc = DS_INDEX;
    fake.untried = 2;
    ds_call(fake.dw, &r, fake_on_resp, &g2);
    fake_answer(fake.sent[3], 404, 0);
    cr_assert_eq(g2.n, 1, "an index 404 is an answer");
    fake_close_loop();
}

/* A hedged twin avoids the endpoints its parent's attempts used. */
Test(ds_call, hedge_twin_inherits_the_endpoints_tried)
{
    struct fake_got g = {0};
    struct ds_req r = fake_read("x");
    fake.cfg.ds_hedge_after_ms = 1;
    atomic_store(&retry_budget[DS_STORAGE], RETRY_BUDGET_SCALE);
    cr_assert_not_null(ds_call(fake.dw, &r, fake_on_resp, &g));
    fake.sent[0]->ep_tried = 1u << 2; /* as the remote backend marks it */
    fake.sent[0]->ep_last = 3;
    while (fake.nsent < 2) {
        uv_run(&fake.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    cr_assert(fake.sent[1]->is_hedge);
    cr_assert_eq(fake.sent[1]->ep_tried, 1u << 2);
    cr_assert_eq(fake.sent[1]->ep_last, 3);
    fake_answer(fake.sent[1], 200, 0);
    cr_assert_eq(g.code, 200);
    fake_close_loop();
}

Test(ds_call, shed_over_the_concurrency_limit)
{
    struct fake_got g[2] = {{0}};
    fake.cfg.ds_concurrency[DS_STORAGE] = 1;
    struct ds_req r = fake_read("x");
    ds_call(fake.dw, &r, fake_on_resp, &g[0]);
    r = fake_read("y");
    ds_call(fake.dw, &r, fake_on_resp, &g[1]);
    cr_assert_eq(fake.nsent, 1);
    uv_run(&fake.loop, UV_RUN_NOWAIT);
    cr_assert_eq(g[1].n, 1);
    cr_assert_eq(g[1].err, OG_E_BUSY);
    fake_answer(fake.sent[0], 200, 0);
    cr_assert_eq(g[0].code, 200);
    cr_assert_eq(atomic_load(&ds__inflight[DS_STORAGE]), 0);
    fake_close_loop();
}

/* ds/ reads the configuration through the slot the worker keeps current
 * (ds_worker_init): a reload's new snapshot applies to the next call with
 * no call into ds/. */
Test(ds_call, a_reloaded_snapshot_applies_to_the_next_call)
{
    struct fake_got g[2] = {{0}};
    struct og_config reloaded = fake.cfg;
    reloaded.ds_concurrency[DS_STORAGE] = 1;
    fake.cfgp = &reloaded;
    struct ds_req r = fake_read("x");
    ds_call(fake.dw, &r, fake_on_resp, &g[0]);
    r = fake_read("y");
    ds_call(fake.dw, &r, fake_on_resp, &g[1]);
    uv_run(&fake.loop, UV_RUN_NOWAIT);
    cr_assert_eq(g[1].err, OG_E_BUSY, "the new limit applies");
    fake_answer(fake.sent[0], 200, 0);
    fake.cfgp = &fake.cfg;
    fake_close_loop();
}
