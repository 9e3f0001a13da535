/*
 * pressure.c — connection pressure levels, shortened timeouts and the
 * waiting queues (see pressure.h).
 */
#include "net/pressure.h"

#include <stddef.h>

unsigned pressure_level(long conns, long cap, int64_t high_pct)
{
    if (cap < 1)
        cap = 1;
    if (high_pct > 100)
        high_pct = 100;
    /* Rounded down, so a mark of 80 % of 64 is 51: the 52nd connection is
     * the first one over it. */
    long mark = (long)((double)cap * (double)(high_pct < 0 ? 0 : high_pct) / 100.0);
    if (conns <= mark)
        return 0;
    if (conns >= cap)
        return PRESSURE_FULL;
    /* mark < conns < cap here, so the ratio is in (0, 1). In double: cap
     * comes from configuration and the descriptor limit, and a product in
     * long could overflow for a huge one. */
    return (unsigned)((double)(conns - mark) * PRESSURE_FULL / (double)(cap - mark));
}

int64_t pressure_timeout_ms(int64_t base_ms, int64_t min_ms, unsigned level)
{
    if (min_ms >= base_ms)
        return base_ms;
    if (level > PRESSURE_FULL)
        level = PRESSURE_FULL;
    /* Durations are at most an hour (3.6e6 ms): the product fits. */
    return base_ms - (base_ms - min_ms) * (int64_t)level / (int64_t)PRESSURE_FULL;
}

void pressure_queue_push(struct pressure_queue *q, struct pressure_node *n, uint64_t now_ms)
{
    n->since_ms = now_ms;
    n->next = NULL;
    n->prev = q->last;
    if (q->last)
        q->last->next = n;
    else
        q->first = n;
    q->last = n;
    q->n++;
}

void pressure_queue_remove(struct pressure_queue *q, struct pressure_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        q->first = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->last = n->prev;
    n->prev = n->next = NULL;
    q->n--;
}

struct pressure_node *pressure_victim(const struct pressure_queue *a,
                                      const struct pressure_queue *b)
{
    if (a->first == NULL)
        return b->first;
    if (b->first == NULL || a->first->since_ms <= b->first->since_ms)
        return a->first;
    return b->first;
}
