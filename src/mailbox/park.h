/*
 * park.h — long-poll receivers parked per worker until a message arrives on
 * their channel or their wait ends.
 *
 * A parked receiver holds no downstream call and no worker: it is a node in
 * its worker's table (by channel hash) and in its deadline list, embedded in
 * the handler's state (no allocation). When a send to a channel succeeds on
 * any worker, park_notify() tells every worker that has receivers parked:
 * a bounded lock-free ring of channel hashes per worker and a uv_async wake
 * (a full ring wakes every receiver of that worker instead — none is lost).
 * The worker then wakes, on that channel, the receiver that waited longest
 * (one per message sent through this process); a woken receiver that finds
 * nothing parks again. A parked receiver's client hanging up removes it at
 * once (park_leave() from the handler's cancel hook).
 *
 * Sends through another omnigate process are not seen here: with
 * `poll_interval` set, each parked receiver is also woken that often to
 * look (macronode behind several replicas).
 */
#ifndef MAILBOX_PARK_H
#define MAILBOX_PARK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct park_worker;
struct park_waiter;

/* Why a waiter was woken. */
enum park_why { PARK_MESSAGE, PARK_POLL, PARK_DEADLINE };

typedef void (*park_wake_fn)(struct park_waiter *w, enum park_why why);

struct park_waiter {
    struct park_waiter *prev, *next;   /* same bucket */
    struct park_waiter *dprev, *dnext; /* deadline order */
    uint64_t chash;
    uint64_t deadline_ms; /* loop time the wait ends */
    uint64_t poll_ms;     /* loop time of the next poll; UINT64_MAX: none */
    park_wake_fn wake;
    struct park_worker *pw;
    bool parked;
};

/* Start-up: room for nworkers workers. Returns 0 or -1. */
int park_start(int nworkers);

/* On worker id's thread before its loop runs. */
struct park_worker *park_worker_init(uv_loop_t *loop, int id);

/* On the worker's thread after its loop ended: no more notifications. */
void park_worker_gone(struct park_worker *pw);

/* The hash of a channel name (the same on every worker). */
uint64_t park_channel_hash(const char *name, size_t n);

/* Park w on pw for the channel, until deadline_ms (loop time); poll_every_ms
 * > 0 also wakes it that often with PARK_POLL. `wake` runs once, on pw's
 * loop, with w already unparked. */
void park_enter(struct park_worker *pw, struct park_waiter *w, uint64_t chash, uint64_t deadline_ms,
                uint64_t poll_every_ms, park_wake_fn wake);

/* Unpark w without waking it (client gone). No-op when not parked. */
void park_leave(struct park_waiter *w);

/* Any thread: a message was sent to the channel. */
void park_notify(uint64_t chash);

/* Receivers parked now, over all workers (metrics), and on pw. */
long park_count(void);
long park_worker_count(struct park_worker *pw);

/* pw's loop time. */
uint64_t park_now(struct park_worker *pw);

#endif
