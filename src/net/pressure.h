/*
 * pressure.h — connection pressure: how far the open connections are past
 * the high-water mark, how much that shortens the head and idle timeouts,
 * and which waiting connection goes first when room must be made.
 *
 * The model is Envoy's overload manager: a scaled trigger on the
 * downstream-connection count (0 at and below the mark, rising linearly to
 * full at the cap) drives a "reduce timeouts" action (each timeout moves
 * from its configured value towards its minimum as the level rises). nginx
 * adds the other half: when no connection is free, the reusable ones —
 * those waiting for a request — are closed oldest first.
 *
 * Pure: no I/O, no clock, no globals. net/conn.c keeps one queue per
 * worker for connections waiting for a head and one for idle keep-alive
 * connections, and reads the level and timeouts from here.
 */
#ifndef NET_PRESSURE_H
#define NET_PRESSURE_H

#include <stdint.h>

/* The level at and above the cap; levels are per-mille of it. */
#define PRESSURE_FULL 1000u

/* The level of `conns` open connections against `cap` (the most that may be
 * open) with the mark at high_pct percent of cap (1–100): 0 while conns is
 * at or below the mark, PRESSURE_FULL from cap on, linear in between. A
 * mark of 100 % is reached only past the cap: the level is then 0 or
 * full. */
unsigned pressure_level(long conns, long cap, int64_t high_pct);

/* A timeout of base_ms at pressure 0, shortened linearly to min_ms at
 * PRESSURE_FULL. A minimum at or above the base leaves the base as it is. */
int64_t pressure_timeout_ms(int64_t base_ms, int64_t min_ms, unsigned level);

/* A place in a queue of waiting connections; `since_ms` is when it joined,
 * which is when its wait began. Embedded in struct conn. */
struct pressure_node {
    struct pressure_node *prev, *next;
    uint64_t since_ms;
};

/* Oldest first. Nodes are appended with the loop's clock, which never goes
 * back, so the first node has waited longest and its deadline is the
 * queue's nearest: no search, no heap. */
struct pressure_queue {
    struct pressure_node *first, *last;
    unsigned n;
};

/* Append n (not in a queue) at the back, waiting since now_ms. */
void pressure_queue_push(struct pressure_queue *q, struct pressure_node *n, uint64_t now_ms);

/* Take n (in q) out of q. */
void pressure_queue_remove(struct pressure_queue *q, struct pressure_node *n);

/* The node to close first to make room: the first of a or b that has waited
 * longer, a when they began at the same time; NULL when both are empty. */
struct pressure_node *pressure_victim(const struct pressure_queue *a,
                                      const struct pressure_queue *b);

#endif
