/*
 * call.h — the call lifecycle (call.c) as the core's other files use it:
 * hedge.c starts twin calls, stream.c ends streams. Internal to src/ds/.
 *
 * A call is created (ds__call_new), admitted under its downstream's
 * concurrency limit (ds__admit), attempted once or more (ds__attempt, then
 * the backend's ds__attempt_done), and finished exactly once
 * (ds__finish): its callback runs, then ds__call_free hands the memory to
 * the timer's close callback, since the call embeds an initialised
 * uv_timer_t (STYLE §14).
 */
#ifndef DS_CALL_H
#define DS_CALL_H

#include <stdatomic.h>

#include "ds/internal.h"

/* The backend of each service: read-only after ds_start. */
extern const struct ds_backend *ds__backends[DS__COUNT];
/* Calls in flight per downstream, all workers (the concurrency limit). */
extern atomic_long ds__inflight[DS__COUNT];

/* A call on dw with private copies of req's op (with its strings) and body. Returns NULL
 * when out of memory; nothing then needs releasing. */
struct ds_call *ds__call_new(struct ds_worker *dw, const struct ds_req *req, ds_cb cb, void *arg);
/* Release c's memory once its timer is closed (after ds__call_release). */
void ds__call_free(struct ds_call *c);
/* Take a slot of the per-downstream limit and deposit into the retry
 * budget, or mark c shed (answered BUSY on the next turn). Returns whether c
 * was admitted. */
bool ds__admit(struct ds_call *c);
/* Start the next attempt of c on its backend. */
void ds__attempt(struct ds_call *c);
/* The backend stops working on c's current attempt, if any. */
void ds__attempt_abort(struct ds_call *c);
/* The call is over for the backend: its timer, its attempt and its slot in
 * the concurrency limit are given back. */
void ds__call_release(struct ds_call *c);
/* Deliver resp (taken over) to c and to the calls coalesced on it, then
 * free them; a second finish is a no-op. */
void ds__finish(struct ds_call *c, struct ds_resp *resp);
/* ds__finish with a transport failure e. */
void ds__fail(struct ds_call *c, enum og_err e);
/* Run c's timer in ms (streams: the producer's progress budget). */
void ds__call_timer_start(struct ds_call *c, uint64_t ms);
/* ds__finish of a stream (stream.c): a failure, or a whole answer from the
 * backend delivered as head, one chunk and end. */
void ds__stream_finish(struct ds_call *c, struct ds_resp *resp);
/* Release function of a shared ds_owner: the last reference frees it. */
void ds__owner_release(void *p);

#endif
