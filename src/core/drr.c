/*
 * drr.c — deficit round robin over the class queues of drr.h.
 */
#include "core/drr.h"

#include <string.h>

void drr_set_weights(struct drr *d, const unsigned weight[DRR_CLASSES])
{
    for (int c = 0; c < DRR_CLASSES; c++)
        d->weight[c] = weight[c] ? weight[c] : 1;
}

void drr_init(struct drr *d, const unsigned weight[DRR_CLASSES])
{
    memset(d, 0, sizeof(*d));
    drr_set_weights(d, weight);
    d->deficit[0] = d->weight[0];
}

void drr_push(struct drr *d, struct drr_node *x, int klass)
{
    x->klass = klass;
    x->next = NULL;
    x->prev = d->last[klass];
    if (x->prev)
        x->prev->next = x;
    else
        d->first[klass] = x;
    d->last[klass] = x;
    d->n[klass]++;
    d->total++;
    x->queued = true;
}

void drr_remove(struct drr *d, struct drr_node *x)
{
    if (!x->queued)
        return;
    int c = x->klass;
    if (x->prev)
        x->prev->next = x->next;
    else
        d->first[c] = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        d->last[c] = x->prev;
    x->prev = x->next = NULL;
    x->queued = false;
    d->n[c]--;
    d->total--;
}

struct drr_node *drr_pop(struct drr *d)
{
    if (d->total == 0)
        return NULL;
    /* Terminates: some class has a node, and each visit to it adds at
     * least one unit of deficit. */
    for (;;) {
        int c = d->cur;
        if (d->n[c] > 0 && d->deficit[c] >= 1) {
            d->deficit[c]--;
            struct drr_node *x = d->first[c];
            drr_remove(d, x);
            return x;
        }
        if (d->n[c] == 0)
            d->deficit[c] = 0; /* an idle class banks nothing */
        d->cur = (c + 1) % DRR_CLASSES;
        if (d->n[d->cur] > 0)
            d->deficit[d->cur] += d->weight[d->cur];
    }
}
