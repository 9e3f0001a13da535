/*
 * coalesce.c — coalescing of identical reads (src/ds/coalesce.c): the
 * table alone, then through ds_call on a loop with a fake backend (fake.h).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ds/coalesce.h"
#include "ds/op.h"
#include "ds/stats.h"
#include "fake.h"

/* ---- the table ---------------------------------------------------------- */

/* A storage get of the object whose bytes are s, as a builder makes it. */
static struct ds_req get_of(const char *s, bool ranged, uint64_t off, uint64_t len)
{
    struct ds_req r;
    struct cas_addr a;
    cas_hash(s, strlen(s), &a);
    cr_assert_eq(ds_op_get(&r, &a, ranged, off, len), 0);
    return r;
}

static struct ds_call table_call(struct ds_req r)
{
    return (struct ds_call){.req = r};
}

Test(ds_coalesce, table_finds_identical_unfinished_leaders)
{
    struct ds_worker dw = {0};
    struct ds_req ra = get_of("a", false, 0, 0), rb = get_of("b", true, 10, 20);
    struct ds_call a = table_call(ra), b = table_call(rb);

    cr_assert_null(coalesce_find(&dw, &ra), "an empty table");
    coalesce_lead(&dw, &a);
    coalesce_lead(&dw, &b);
    struct ds_req same_a = get_of("a", false, 7, 9), same_b = get_of("b", true, 10, 20);
    cr_assert_eq(coalesce_find(&dw, &same_a), &a, "a whole read: off and len do not count");
    cr_assert_eq(coalesce_find(&dw, &same_b), &b);
    struct ds_req other = get_of("c", false, 0, 0);
    cr_assert_null(coalesce_find(&dw, &other), "another address");
    other = get_of("b", true, 10, 21);
    cr_assert_null(coalesce_find(&dw, &other), "another range");
    other = get_of("b", true, 11, 20);
    cr_assert_null(coalesce_find(&dw, &other), "another offset");
    other = get_of("a", true, 0, 1);
    cr_assert_null(coalesce_find(&dw, &other), "a range of a whole read's object");
    other = ra;
    other.svc = DS_INDEX;
    cr_assert_null(coalesce_find(&dw, &other), "the same op to another service");
    cr_assert_eq(ds_op_has(&other, &ra.op.obj), 0);
    cr_assert_null(coalesce_find(&dw, &other), "only gets coalesce");
    a.finished = true;
    cr_assert_null(coalesce_find(&dw, &ra), "a finished leader takes no one");
}

Test(ds_coalesce, table_leave_and_take_followers)
{
    struct ds_worker dw = {0};
    struct ds_req r = get_of("x", false, 0, 0);
    struct ds_call l = table_call(r), f1 = l, f2 = l, f3 = l;

    coalesce_lead(&dw, &l);
    coalesce_join(&l, &f1);
    coalesce_join(&l, &f2);
    coalesce_join(&l, &f3);
    cr_assert_eq(f2.leader, &l);
    /* A follower leaving on its own takes only itself out. */
    coalesce_leave(&dw, &f2);
    cr_assert_null(f2.leader);
    cr_assert_eq(coalesce_find(&dw, &r), &l, "the leader stays");
    /* The leader ends: out of the table, its remaining followers handed over. */
    coalesce_leave(&dw, &l);
    cr_assert_null(dw.coalesce_head);
    struct ds_call *f = coalesce_take_followers(&l);
    int n = 0;
    for (; f; f = f->next_follower, n++) {
        cr_assert(f == &f1 || f == &f3);
        cr_assert_null(f->leader);
    }
    cr_assert_eq(n, 2);
    cr_assert_null(l.followers);
    coalesce_leave(NULL, &f1); /* a worker without a table: a no-op */
}

/* ---- through ds_call ---------------------------------------------------- */

TestSuite(ds_coalesce_call, .init = fake_setup, .fini = fake_teardown);

Test(ds_coalesce_call, second_identical_read_joins_the_first)
{
    struct fake_got g1 = {0}, g2 = {0};
    struct ds_req r = fake_read("x");
    cr_assert_not_null(ds_call(fake.dw, &r, fake_on_resp, &g1));
    r = fake_read("x");
    cr_assert_not_null(ds_call(fake.dw, &r, fake_on_resp, &g2));
    cr_assert_eq(fake.nsent, 1, "one request downstream for both");
    fake_answer(fake.sent[0], 200, 0);
    cr_assert_eq(g1.n, 1);
    cr_assert_eq(g1.code, 200);
    cr_assert_not(g1.coalesced);
    cr_assert_eq(g2.n, 1);
    cr_assert_eq(g2.code, 200);
    cr_assert(g2.coalesced);
    cr_assert_eq(stats_of(fake.dw)->coalesced[DS_STORAGE], 1);
    fake_close_loop();
}

Test(ds_coalesce_call, different_reads_do_not_join)
{
    struct fake_got g[4] = {{0}};
    struct ds_req r = fake_read("x");
    ds_call(fake.dw, &r, fake_on_resp, &g[0]);
    r = fake_read("y");
    ds_call(fake.dw, &r, fake_on_resp, &g[1]);
    r = fake_read("x");
    r.svc = DS_INDEX; /* same op, other service */
    ds_call(fake.dw, &r, fake_on_resp, &g[2]);
    r = fake_read("x");
    r.idempotent = false; /* writes never share an answer */
    ds_call(fake.dw, &r, fake_on_resp, &g[3]);
    cr_assert_eq(fake.nsent, 4);
    for (int i = 0; i < 4; i++)
        fake_answer(fake.sent[i], 200, 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(g[i].n, 1, "call %d", i);
        cr_assert_not(g[i].coalesced, "call %d", i);
    }
    fake_close_loop();
}

Test(ds_coalesce_call, failing_leader_fails_all_followers)
{
    struct fake_got g[3] = {{0}};
    fake.cfg.ds_retry_max = 0; /* the failure is final */
    for (int i = 0; i < 3; i++) {
        struct ds_req r = fake_read("x");
        ds_call(fake.dw, &r, fake_on_resp, &g[i]);
    }
    cr_assert_eq(fake.nsent, 1);
    fake_answer(fake.sent[0], 0, OG_E_BAD_GATEWAY);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(g[i].n, 1, "call %d", i);
        cr_assert_eq(g[i].code, 0, "call %d", i);
        cr_assert_eq(g[i].err, OG_E_BAD_GATEWAY, "call %d", i);
    }
    fake_close_loop();
}

/* Three identical reads, the caller of call `which` cancels: the others
 * are answered all the same, and the one request downstream goes on. */
static void cancel_one_of_three(int which)
{
    struct fake_got g[3] = {{0}};
    struct ds_call *c[3];
    for (int i = 0; i < 3; i++) {
        struct ds_req r = fake_read("x");
        c[i] = ds_call(fake.dw, &r, fake_on_resp, &g[i]);
    }
    ds_cancel(c[which]);
    cr_assert_eq(fake.naborted, 0, "the leader's request goes on");
    fake_answer(fake.sent[0], 200, 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(g[i].n, i != which, "call %d: a cancelled call hears nothing", i);
        if (i != which) {
            cr_assert_eq(g[i].code, 200, "call %d", i);
            cr_assert_eq(g[i].coalesced, i != 0, "call %d", i);
        }
    }
    fake_close_loop();
}

Test(ds_coalesce_call, cancelled_follower_spares_the_others)
{
    cancel_one_of_three(1);
}

Test(ds_coalesce_call, cancelled_leader_goes_on_for_its_followers)
{
    cancel_one_of_three(0);
}

/* A caller cancels a follower from inside the callback of the same answer
 * (one request fanned out into identical reads): that follower must be
 * skipped, not answered or closed a second time. */
static struct ds_call *victim;

static void on_resp_cancel_victim(void *arg, struct ds_resp *r)
{
    fake_on_resp(arg, r);
    ds_cancel(victim);
}

/* Three identical reads; the callback of the first (the leader) or of the
 * third (the follower answered before the second) cancels the second. */
static void cancel_from_a_callback(bool by_leader)
{
    struct fake_got g[3] = {{0}};
    struct ds_req r = fake_read("x");
    ds_call(fake.dw, &r, by_leader ? on_resp_cancel_victim : fake_on_resp, &g[0]);
    r = fake_read("x");
    victim = ds_call(fake.dw, &r, fake_on_resp, &g[1]);
    r = fake_read("x");
    ds_call(fake.dw, &r, by_leader ? fake_on_resp : on_resp_cancel_victim, &g[2]);
    fake_answer(fake.sent[0], 200, 0);
    cr_assert_eq(g[0].n, 1);
    cr_assert_eq(g[1].n, 0);
    cr_assert_eq(g[2].n, 1);
    fake_close_loop();
}

Test(ds_coalesce_call, follower_cancelled_by_the_leaders_callback)
{
    cancel_from_a_callback(true);
}

Test(ds_coalesce_call, follower_cancelled_by_another_followers_callback)
{
    cancel_from_a_callback(false);
}
