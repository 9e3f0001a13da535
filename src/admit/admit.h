/*
 * admit.h — admission under overload (DESIGN §8): rate buckets, per-class
 * fair queues, degraded mode.
 *
 * Plugs into the dispatcher's admission hooks (http/dispatch.h), so every
 * decision is taken as soon as the request head is parsed, before its body
 * is read:
 *   before the gate  the instance bucket ([limits] rate, rate_burst): one
 *                    GCRA word shared by all workers (gcra.h), exact and
 *                    lock-free; over it, 429 quota with a computed
 *                    Retry-After and the RateLimit-Policy / RateLimit headers
 *   after the gate   the tenant bucket (tenant_rate; the capability's tenant,
 *                    or the client address for anonymous requests; a bounded
 *                    table, tenants.h); then degraded mode: a write (any
 *                    method but GET, HEAD, OPTIONS) gets 503 degraded; then
 *                    an inflight slot (inflight_max, all workers) or a place
 *                    in this worker's queue of the request's class (anon,
 *                    authed, internal; DRR by weight, core/drr.h), bounded
 *                    by queue_max and queue_wait. A full queue or an expired
 *                    wait is 503 busy with Retry-After from the drain rate.
 *
 * Slots are global (one atomic counter) and queues are per worker. A slot
 * freed on a worker goes to that worker's queue on the next loop turn; a
 * worker whose queue waits while another worker frees slots polls for them
 * every millisecond (only while it has waiters). New arrivals queue behind
 * waiters anywhere, so a freed slot cannot be taken past the queue.
 *
 * Degraded mode is evaluated on the admin loop every 25 ms: entered at once
 * when a downstream fails readiness (HELLO), the last reload failed, queue
 * headroom is under degraded_headroom, or an operator asked for it (admin
 * listener: PUT /admin/degraded); left once every cause has been clear for
 * degraded_hold.
 */
#ifndef ADMIT_ADMIT_H
#define ADMIT_ADMIT_H

#include <stdbool.h>
#include <uv.h>

#include "http/dispatch.h"

struct og_config;
struct admit_worker;

/* Start-up, before workers run: the tenant table, metrics and the
 * readiness key queue_headroom. Returns 0 or -1 with a message on stderr. */
int admit_start(const struct og_config *cfg, int nworkers);
/* On the admin loop's thread, before it runs: the degraded-mode timer. */
void admit_admin_init(uv_loop_t *admin_loop);
void admit_stop(void);

/* The hooks for http_dispatch_set_admission(). */
extern const struct http_admission admit_hooks;

/* Per worker, on its thread before its loop runs: its queues and timer.
 * id < nworkers. */
struct admit_worker *admit_worker_init(uv_loop_t *loop, int id);

/* Degraded mode now (any thread). */
bool admit_degraded(void);

/* Admin routes: GET shows degraded mode and its causes, PUT enters it, DELETE
 * clears the operator's request (the mode ends after degraded_hold if no
 * other cause holds it). */
void admit_on_degraded(struct http_req *req);

#endif
