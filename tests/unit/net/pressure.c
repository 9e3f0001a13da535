/*
 * pressure.c — connection pressure without a loop: the level against the
 * mark and the cap, the timeouts it shortens, the queues of waiting
 * connections and which one is closed first to make room.
 */
#include <criterion/criterion.h>

#include "net/pressure.h"

Test(pressure, level_is_zero_up_to_the_mark_and_full_at_the_cap)
{
    /* 80 % of 64 is 51.2: the mark is 51. */
    cr_assert_eq(pressure_level(0, 64, 80), 0);
    cr_assert_eq(pressure_level(51, 64, 80), 0);
    cr_assert_eq(pressure_level(52, 64, 80), 1 * PRESSURE_FULL / 13);
    cr_assert_eq(pressure_level(58, 64, 80), 7 * PRESSURE_FULL / 13);
    cr_assert_eq(pressure_level(63, 64, 80), 12 * PRESSURE_FULL / 13);
    cr_assert_eq(pressure_level(64, 64, 80), PRESSURE_FULL);
    cr_assert_eq(pressure_level(65, 64, 80), PRESSURE_FULL, "past the cap (an accept over it)");
    cr_assert_eq(pressure_level(1000000, 64, 80), PRESSURE_FULL);
}

Test(pressure, level_rises_with_every_connection_past_the_mark)
{
    unsigned prev = 0;
    for (long n = 800; n <= 1000; n++) {
        unsigned l = pressure_level(n, 1000, 80);
        cr_assert(l >= prev && l <= PRESSURE_FULL, "n %ld: %u after %u", n, l, prev);
        if (n > 800)
            cr_assert(l > prev, "n %ld: each connection past the mark raises the level", n);
        prev = l;
    }
    cr_assert_eq(prev, PRESSURE_FULL);
    cr_assert_eq(pressure_level(900, 1000, 80), PRESSURE_FULL / 2);
}

Test(pressure, mark_at_100_percent_is_all_or_nothing)
{
    cr_assert_eq(pressure_level(63, 64, 100), 0);
    cr_assert_eq(pressure_level(64, 64, 100), 0, "a full house alone is not past the mark");
    cr_assert_eq(pressure_level(65, 64, 100), PRESSURE_FULL, "one more is");
}

Test(pressure, small_and_degenerate_caps)
{
    cr_assert_eq(pressure_level(0, 1, 80), 0);
    cr_assert_eq(pressure_level(1, 1, 80), PRESSURE_FULL, "mark 0 of 1: the one slot is full");
    cr_assert_eq(pressure_level(1, 2, 1), PRESSURE_FULL / 2, "mark 0 of 2");
    cr_assert_eq(pressure_level(1, 0, 80), PRESSURE_FULL, "a cap under 1 counts as 1");
    cr_assert_eq(pressure_level(0, 0, 80), 0);
    /* A cap no configuration allows does not overflow. */
    cr_assert_eq(pressure_level(0x3fffffffffffffffL, 0x3fffffffffffffffL, 50), PRESSURE_FULL);
    cr_assert_eq(pressure_level(0x3000000000000000L, 0x4000000000000000L, 50), PRESSURE_FULL / 2);
}

Test(pressure, timeouts_shorten_linearly_to_their_minimum)
{
    cr_assert_eq(pressure_timeout_ms(10000, 1000, 0), 10000);
    cr_assert_eq(pressure_timeout_ms(10000, 1000, PRESSURE_FULL / 2), 5500);
    cr_assert_eq(pressure_timeout_ms(10000, 1000, PRESSURE_FULL), 1000);
    cr_assert_eq(pressure_timeout_ms(10000, 1000, PRESSURE_FULL + 5), 1000, "clamped at full");
    cr_assert_eq(pressure_timeout_ms(3600000, 100, PRESSURE_FULL), 100);
    int64_t prev = 60000;
    for (unsigned l = 0; l <= PRESSURE_FULL; l++) {
        int64_t t = pressure_timeout_ms(60000, 1000, l);
        cr_assert(t <= prev && t >= 1000, "level %u: %lld after %lld", l, (long long)t,
                  (long long)prev);
        prev = t;
    }
}

Test(pressure, a_minimum_above_the_base_changes_nothing)
{
    cr_assert_eq(pressure_timeout_ms(500, 1000, PRESSURE_FULL), 500);
    cr_assert_eq(pressure_timeout_ms(1000, 1000, PRESSURE_FULL), 1000);
}

static void assert_order(const struct pressure_queue *q, struct pressure_node *const *want, int n)
{
    cr_assert_eq(q->n, (unsigned)n);
    struct pressure_node *p = q->first, *prev = NULL;
    for (int i = 0; i < n; i++, prev = p, p = p->next) {
        cr_assert_eq(p, want[i], "position %d", i);
        cr_assert_eq(p->prev, prev);
    }
    cr_assert_null(p);
    cr_assert_eq(q->last, n ? want[n - 1] : NULL);
    if (n == 0)
        cr_assert_null(q->first);
}

Test(pressure, queue_keeps_arrival_order_through_removals)
{
    struct pressure_queue q = {0};
    struct pressure_node a, b, c, d;
    pressure_queue_push(&q, &a, 10);
    pressure_queue_push(&q, &b, 20);
    pressure_queue_push(&q, &c, 20);
    pressure_queue_push(&q, &d, 30);
    assert_order(&q, (struct pressure_node *[]){&a, &b, &c, &d}, 4);
    cr_assert_eq(b.since_ms, 20);
    pressure_queue_remove(&q, &b); /* middle */
    assert_order(&q, (struct pressure_node *[]){&a, &c, &d}, 3);
    pressure_queue_remove(&q, &a); /* first */
    assert_order(&q, (struct pressure_node *[]){&c, &d}, 2);
    pressure_queue_remove(&q, &d); /* last */
    assert_order(&q, (struct pressure_node *[]){&c}, 1);
    pressure_queue_push(&q, &a, 40); /* a new wait goes to the back */
    assert_order(&q, (struct pressure_node *[]){&c, &a}, 2);
    cr_assert_eq(a.since_ms, 40);
    pressure_queue_remove(&q, &c);
    pressure_queue_remove(&q, &a);
    assert_order(&q, NULL, 0);
}

Test(pressure, victim_is_the_longest_waiting_of_both_queues)
{
    struct pressure_queue idle = {0}, head = {0};
    struct pressure_node i1, i2, h1, h2;
    cr_assert_null(pressure_victim(&idle, &head), "nothing waits: nothing to close");
    pressure_queue_push(&head, &h1, 100);
    cr_assert_eq(pressure_victim(&idle, &head), &h1);
    pressure_queue_push(&idle, &i1, 150);
    pressure_queue_push(&head, &h2, 160);
    pressure_queue_push(&idle, &i2, 170);
    cr_assert_eq(pressure_victim(&idle, &head), &h1, "the head that began first");
    pressure_queue_remove(&head, &h1);
    cr_assert_eq(pressure_victim(&idle, &head), &i1);
    pressure_queue_remove(&idle, &i1);
    cr_assert_eq(pressure_victim(&idle, &head), &h2);
    pressure_queue_remove(&head, &h2);
    cr_assert_eq(pressure_victim(&idle, &head), &i2);
    /* Waits that began at the same moment: the first queue's goes first. */
    pressure_queue_push(&head, &h1, 170);
    cr_assert_eq(pressure_victim(&idle, &head), &i2);
    cr_assert_eq(pressure_victim(&head, &idle), &h1);
}
