/*
 * coalesce.h — identical idempotent reads in flight at once on one worker
 * share one downstream request (DESIGN §6): the first leads, the others
 * follow and get a copy of its answer. Safe for storage reads because
 * objects are immutable under their address. Worker-local, no loop: the
 * table is a list in struct ds_worker, the links are in struct ds_call.
 *
 * Identical means the same key, derived from the typed op: the service,
 * a storage get, its address and the range as it was asked for (whole, or
 * off and len). Only gets are coalesced. The call's own deadline still
 * applies to a follower, and a leader whose caller cancels goes on for its followers
 * (call.c).
 */
#ifndef DS_COALESCE_H
#define DS_COALESCE_H

#include "ds/internal.h"

/* Whether reads a and b are identical (the key above). */
bool coalesce_same(const struct ds_req *a, const struct ds_req *b);

/* The unfinished leader in dw identical to req, or NULL. */
struct ds_call *coalesce_find(const struct ds_worker *dw, const struct ds_req *req);

/* f follows l: it is answered when l is. */
void coalesce_join(struct ds_call *l, struct ds_call *f);

/* c is about to go downstream: identical reads may now join it. */
void coalesce_lead(struct ds_worker *dw, struct ds_call *c);

/* c ends: out of dw's table if it leads, out of its leader's followers if
 * it follows (its followers stay; see coalesce_take_followers). */
void coalesce_leave(struct ds_worker *dw, struct ds_call *c);

/* Detach l's followers and return them, linked by next_follower: the
 * finishing leader answers each of them. */
struct ds_call *coalesce_take_followers(struct ds_call *l);

#endif
