/*
 * fake.c — the fake backend and the loop fixture of fake.h.
 */
#include "fake.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "ds/op.h"

struct fake fake;

static int fake_send(struct ds_call *c)
{
    if (fake.send_result != 0)
        return fake.send_result;
    cr_assert_lt(fake.nsent, FAKE_MAX_SENDS);
    fake.sent[fake.nsent++] = c;
    return 0;
}

static void fake_abort(struct ds_call *c)
{
    fake.naborted++;
}

/* An endpoint set whose untried endpoints the test counts down. */
static bool fake_untried(const struct ds_call *c)
{
    return fake.untried > 0 && fake.untried--;
}

static const struct ds_backend fake_backend = {
    .name = "fake",
    .send = fake_send,
    .abort = fake_abort,
    .untried = fake_untried,
};

void fake_on_resp(void *arg, struct ds_resp *r)
{
    struct fake_got *g = arg;
    g->n++;
    g->code = r->code;
    g->err = r->err;
    g->coalesced = r->coalesced;
    g->attempts = r->attempts;
}

struct ds_req fake_read(const char *addr)
{
    struct ds_req r;
    struct cas_addr a;
    cas_hash(addr, strlen(addr), &a);
    cr_assert_eq(ds_op_get(&r, &a, false, 0, 0), 0);
    r.deadline_ms = uv_now(&fake.loop) + 30000;
    return r;
}

void fake_answer(struct ds_call *c, int code, enum og_err err)
{
    static const char hdr[] = "{}";
    struct ds_resp r = {.code = code, .err = err};
    if (code != 0) {
        r.hdr = hdr;
        r.hdr_len = 2;
    }
    ds__attempt_done(c, &r);
}

void fake_setup(void)
{
    memset(&fake, 0, sizeof(fake));
    config_defaults(&fake.cfg);
    log_min_level = LOG_ERROR;
    /* The real start-up (in-process engines, budgets, metrics, per-worker
     * state), then the fake in place of every backend. */
    cr_assert_eq(ds_start(&fake.cfg, 1), 0);
    for (int s = 0; s < DS__COUNT; s++)
        ds__backends[s] = &fake_backend;
    cr_assert_eq(uv_loop_init(&fake.loop), 0);
    fake.cfgp = &fake.cfg;
    fake.dw = ds_worker_init(0, &fake.loop, &fake.cfgp, NULL, NULL);
    retry_rng_seed(&fake.dw->rng, 1);
}

void fake_close_loop(void)
{
    cr_assert_eq(uv_run(&fake.loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&fake.loop), 0, "a handle outlived its call");
    fake.closed = true;
}

void fake_teardown(void)
{
    if (!fake.closed) {
        uv_run(&fake.loop, UV_RUN_DEFAULT);
        uv_loop_close(&fake.loop);
    }
    ds_stop();
}
