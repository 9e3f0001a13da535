/*
 * park.c — parked long-poll receivers on a real libuv loop: a notification
 * wakes the receiver of that channel that waited longest, deadlines wake
 * with PARK_DEADLINE in order, a receiver that left is never woken, a
 * notification from another thread arrives, and a burst larger than the
 * ring wakes everyone rather than losing anyone.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "mailbox/park.h"

struct rx {
    struct park_waiter w; /* first: the callback gets it back by a cast */
    int woken;
    enum park_why why;
    int order;
};

static int woken_seq;

static void on_wake(struct park_waiter *w, enum park_why why)
{
    struct rx *r = (struct rx *)w;
    r->woken++;
    r->why = why;
    r->order = ++woken_seq;
}

static uv_loop_t loop;
static uv_timer_t keepalive;

static void on_keepalive(uv_timer_t *t)
{
}

static struct park_worker *pw;
static bool started;

static void setup(void)
{
    if (!started) {
        cr_assert_eq(park_start(1), 0);
        started = true;
    }
    uv_loop_init(&loop);
    pw = park_worker_init(&loop, 0);
    /* The park handles do not keep a loop alive (a server's listener
     * does): this timer stands in for it. */
    uv_timer_init(&loop, &keepalive);
    uv_timer_start(&keepalive, on_keepalive, 1000, 1000);
    woken_seq = 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void teardown(void)
{
    park_worker_gone(pw);
    uv_walk(&loop, walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

TestSuite(park, .init = setup, .fini = teardown);

static void spin(int ms)
{
    uint64_t end = uv_now(&loop) + (uint64_t)ms;
    while (uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&loop);
    }
}

Test(park, a_message_wakes_the_longest_waiting_receiver_of_its_channel)
{
    struct rx a = {0}, b = {0}, other = {0};
    uint64_t news = park_channel_hash("news", 4), sport = park_channel_hash("sport", 5);
    uint64_t far = uv_now(&loop) + 10000;
    park_enter(pw, &a.w, news, far, 0, on_wake);
    park_enter(pw, &other.w, sport, far, 0, on_wake);
    park_enter(pw, &b.w, news, far, 0, on_wake);
    cr_assert_eq(park_count(), 3);
    park_notify(news);
    spin(20);
    cr_assert(a.woken == 1 && a.why == PARK_MESSAGE, "the first to park is woken");
    cr_assert_eq(b.woken, 0, "one message, one receiver");
    cr_assert_eq(other.woken, 0);
    park_notify(news);
    spin(20);
    cr_assert_eq(b.woken, 1);
    park_leave(&other.w);
    cr_assert_eq(park_count(), 0);
    park_notify(sport);
    spin(20);
    cr_assert_eq(other.woken, 0, "a receiver that left is never woken");
}

Test(park, deadlines_wake_in_order)
{
    struct rx a = {0}, b = {0};
    uint64_t ch = park_channel_hash("q", 1), now = uv_now(&loop);
    park_enter(pw, &a.w, ch, now + 60, 0, on_wake);
    park_enter(pw, &b.w, ch, now + 30, 0, on_wake);
    spin(45);
    cr_assert(b.woken == 1 && b.why == PARK_DEADLINE && a.woken == 0);
    spin(40);
    cr_assert(a.woken == 1 && a.why == PARK_DEADLINE);
    cr_assert(b.order < a.order);
}

Test(park, polling_wakes_receivers_periodically)
{
    struct rx a = {0};
    park_enter(pw, &a.w, park_channel_hash("p", 1), uv_now(&loop) + 10000, 20, on_wake);
    spin(40);
    cr_assert(a.woken == 1 && a.why == PARK_POLL);
}

static void *notifier(void *arg)
{
    park_notify(*(uint64_t *)arg);
    return NULL;
}

Test(park, a_notification_from_another_thread_arrives)
{
    struct rx a = {0};
    uint64_t ch = park_channel_hash("x", 1);
    park_enter(pw, &a.w, ch, uv_now(&loop) + 10000, 0, on_wake);
    pthread_t t;
    pthread_create(&t, NULL, notifier, &ch);
    pthread_join(t, NULL);
    spin(20);
    cr_assert_eq(a.woken, 1);
}

Test(park, a_burst_past_the_ring_loses_nobody)
{
    static struct rx rs[300];
    memset(rs, 0, sizeof(rs));
    uint64_t far = uv_now(&loop) + 10000;
    char name[16];
    uint64_t hs[300];
    for (int i = 0; i < 300; i++) {
        int n = snprintf(name, sizeof(name), "c%d", i);
        hs[i] = park_channel_hash(name, (size_t)n);
        park_enter(pw, &rs[i].w, hs[i], far, 0, on_wake);
    }
    for (int i = 0; i < 300; i++)
        park_notify(hs[i]); /* no loop turn in between: the ring overflows */
    spin(30);
    for (int i = 0; i < 300; i++)
        cr_assert_eq(rs[i].woken, 1, "receiver %d", i);
    cr_assert_eq(park_count(), 0);
}
