/*
 * drr.c — the fair queues: shares follow the weights while every class is
 * backlogged, an idle class gives its turn away and banks nothing, FIFO
 * within a class, and any node leaves in O(1).
 */
#include <criterion/criterion.h>

#include "core/drr.h"

#define N 200

static struct drr_node nodes[DRR_CLASSES][N];

static void fill(struct drr *d, int per_class)
{
    for (int c = 0; c < DRR_CLASSES; c++)
        for (int i = 0; i < per_class; i++)
            drr_push(d, &nodes[c][i], c);
}

Test(drr, backlogged_classes_are_served_by_weight)
{
    struct drr d;
    const unsigned w[DRR_CLASSES] = {1, 5, 10};
    drr_init(&d, w);
    fill(&d, N);
    int served[DRR_CLASSES] = {0};
    for (int i = 0; i < 160; i++) /* ten rounds of 1 + 5 + 10 */
        served[drr_pop(&d)->klass]++;
    cr_assert_eq(served[0], 10);
    cr_assert_eq(served[1], 50);
    cr_assert_eq(served[2], 100);
    cr_assert_eq(d.total, 3 * N - 160);
}

Test(drr, fifo_within_a_class)
{
    struct drr d;
    const unsigned w[DRR_CLASSES] = {1, 1, 1};
    drr_init(&d, w);
    for (int i = 0; i < 5; i++)
        drr_push(&d, &nodes[1][i], 1);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(drr_pop(&d), &nodes[1][i]);
    cr_assert_null(drr_pop(&d));
}

Test(drr, an_idle_class_gives_its_turn_away_and_banks_nothing)
{
    struct drr d;
    const unsigned w[DRR_CLASSES] = {1, 5, 10};
    drr_init(&d, w);
    for (int i = 0; i < 20; i++)
        drr_push(&d, &nodes[0][i], 0);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(drr_pop(&d)->klass, 0, "alone, anon takes every slot");
    /* internal was idle all along: it starts with one quantum, not twenty. */
    for (int i = 0; i < 30; i++) {
        drr_push(&d, &nodes[0][i], 0);
        drr_push(&d, &nodes[2][i], 2);
    }
    int internal = 0;
    for (int i = 0; i < 11; i++)
        internal += drr_pop(&d)->klass == 2;
    cr_assert_eq(internal, 10, "one round: 10 internal and 1 anon");
}

Test(drr, any_node_leaves_at_once)
{
    struct drr d;
    const unsigned w[DRR_CLASSES] = {1, 1, 1};
    drr_init(&d, w);
    for (int i = 0; i < 3; i++)
        drr_push(&d, &nodes[0][i], 0);
    drr_remove(&d, &nodes[0][1]); /* middle */
    cr_assert_not(nodes[0][1].queued);
    drr_remove(&d, &nodes[0][1]); /* twice: no-op */
    cr_assert_eq(d.total, 2);
    drr_remove(&d, &nodes[0][2]); /* last */
    drr_push(&d, &nodes[0][3], 0);
    cr_assert_eq(drr_pop(&d), &nodes[0][0]);
    cr_assert_eq(drr_pop(&d), &nodes[0][3]);
    cr_assert_null(drr_pop(&d));
    cr_assert_eq(d.n[0], 0);
}

Test(drr, a_zero_weight_counts_as_one)
{
    struct drr d;
    const unsigned w[DRR_CLASSES] = {0, 0, 0};
    drr_init(&d, w);
    fill(&d, 2);
    for (int i = 0; i < 6; i++)
        cr_assert_not_null(drr_pop(&d), "terminates and serves every class");
    cr_assert_null(drr_pop(&d));
}
