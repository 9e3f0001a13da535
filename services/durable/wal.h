/*
 * wal.h — the log of a reference service that keeps its state on disk
 * (omnigate-substrate --role mailbox|index --data-dir DIR --no-amnesia;
 * docs/OPERATIONS.md, "Durability").
 *
 * Each change a service makes is described by a record (walrec.h) appended
 * to the log as the change is made; the answer to the request that made it
 * waits until the record is on disk as the fsync policy says. At start the
 * newest snapshot and the logs after it are replayed into the engine before
 * the service listens. When the log has grown past a threshold, and past the
 * size of the live state, it is compacted in the background: a new log is
 * begun and a snapshot of the live state is written beside it, after which
 * the older files are deleted.
 *
 * The directory (one service's, locked with flock while the process runs):
 *
 *   lock           held by the process that owns the directory
 *   log.<G>        records appended since log G was begun (G: 16 hex digits)
 *   snap.<G>       the state at some moment after log G was begun
 *   snap.tmp       a snapshot being written (deleted at start)
 *
 * Every file begins with a FILE record (its kind, the service's role, its
 * generation, the engine's hash seed); a snapshot ends with an END record
 * counting its records. Replay takes the newest snapshot G (if any), then
 * logs G, G+1, … in order. A snapshot is written after its log was begun,
 * so it may already hold some changes of that log; replaying them again is
 * harmless because every record is idempotent (a message put back that is
 * there, an ack of an id that is gone, a name set to its value). That is
 * what lets the snapshot read the engine while the service keeps changing it.
 *
 * Group commit: records appended during one loop turn, or while a write and
 * fsync run, leave together in the next write and fsync (on libuv's
 * threadpool, so the loop keeps serving reads meanwhile). One write and one
 * fsync are in flight at a time.
 *
 * Lifecycle: wal_open (lock, find the files, read the seed) → the caller
 * makes its engine with that seed → wal_replay → wal_start(loop) →
 * wal_append / wal_wait … → wal_stop → the loop ends → wal_free.
 *
 * Threads: the loop thread, except the file work, which runs on the
 * threadpool, and the dump callback, which runs there too while the loop
 * thread goes on changing the engine (the engines are thread-safe).
 */
#ifndef SERVICES_DURABLE_WAL_H
#define SERVICES_DURABLE_WAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "services/durable/walrec.h"

enum wal_fsync {
    WAL_FSYNC_ALWAYS, /* an answer waits for the fsync that covers its record */
    WAL_FSYNC_BATCH,  /* an answer waits for the write; fsync every WAL_BATCH_INTERVAL_MS */
    WAL_FSYNC_NONE,   /* an answer waits for the write; the kernel writes back when it likes */
};

#define WAL_DEFAULT_COMPACT_BYTES (64ull << 20)
#define WAL_BATCH_INTERVAL_MS     100
#define WAL_FSYNC_BUCKETS         12

/* A snapshot being written (wal_snap_put). */
struct wal_snap;

/* Write the live state as records with wal_snap_put(). Runs on a threadpool
 * thread. Returns 0, or nonzero to abandon the snapshot. */
typedef int (*wal_dump_fn)(void *arg, struct wal_snap *s);

/* Apply one record at replay (FILE and END records are the log's own and
 * are not passed). Returns 0, or a negative value to stop: the start fails. */
typedef int (*wal_apply_fn)(void *arg, const struct walrec *r);

struct wal_opts {
    const char *dir;
    uint8_t role; /* the service's OAP/1 app id, kept in every file's FILE record */
    enum wal_fsync fsync;
    uint64_t compact_bytes; /* 0 → WAL_DEFAULT_COMPACT_BYTES */
    wal_dump_fn dump;       /* NULL: never compact */
    /* A write or fsync of the log failed: the records in memory can no
     * longer be made durable, so no answer waiting for them is sent. The
     * substrate logs it and exits (a restart replays what is on disk). */
    void (*fail)(void *arg, const char *what, int err);
    /* Something an operator should read (a torn record dropped at start, a
     * compaction that failed); text without quotes or backslashes. May be
     * NULL. */
    void (*note)(void *arg, const char *text);
    void *arg;
};

/* Written by the loop thread only (it also serves the metrics). */
struct wal_stats {
    uint64_t log_bytes;      /* size of the current log file */
    uint64_t snapshot_bytes; /* size of the newest snapshot; 0: none */
    uint64_t appended;       /* records appended since start */
    uint64_t replayed;       /* records applied at start */
    uint64_t truncated;      /* bytes of a torn last record dropped at start */
    uint64_t fsyncs;
    uint64_t fsync_bucket[WAL_FSYNC_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    uint64_t fsync_sum_us;
    uint64_t compactions;
    uint64_t compaction_failures;
    uint64_t waiting; /* answers waiting for their records */
};

/* Upper bounds in seconds of the fsync latency buckets. */
extern const double wal_fsync_le[WAL_FSYNC_BUCKETS];

/* An answer waiting for its records (embed it; STYLE §15). */
struct wal_waiter {
    struct wal_waiter *next;
    uint64_t pos;
    void (*cb)(struct wal_waiter *wt);
};

struct wal;

/* Take dir (created if missing, one level) for this process: lock it, find
 * its files, delete a half-written snapshot, and read the seed the engine
 * must use into seed (a new random one for a new directory). Returns the
 * log, or NULL with a one-line reason in err: the directory cannot be
 * created or locked (another process has it), a file is of another role or
 * version, a snapshot's log is missing, a log in the chain is missing. */
struct wal *wal_open(const struct wal_opts *o, uint8_t seed[WALREC_SEED_BYTES], char *err,
                     size_t errcap);

/* Apply the newest snapshot and the logs after it, in order, with apply;
 * then open the last log for appending (or begin log 1) and delete the
 * files the snapshot made unneeded. The last log may end in a torn record
 * (a write cut off by a crash): replay stops there, and the log is cut back
 * to its last whole record (noted, counted in stats.truncated). Anything
 * else that does not read — a damaged snapshot, an earlier log that does
 * not end cleanly, a record apply refuses — fails the start: 0, or -1 with
 * err. */
int wal_replay(struct wal *w, wal_apply_fn apply, void *arg, char *err, size_t errcap);

/* Start writing on loop (after wal_replay). Returns 0. */
int wal_start(struct wal *w, uv_loop_t *loop);

/* Append r. Returns the log position its record ends at (> 0), for
 * wal_wait; 0 when memory is short or r does not encode (nothing
 * appended). */
uint64_t wal_append(struct wal *w, const struct walrec *r);

/* Call wt->cb(wt) once every record up to pos is durable by the policy
 * (always from a later callback, never inside this call). Waiters are
 * called in the order they were queued; pos must not decrease between
 * calls. After a failure (opts.fail) waiters are never called. */
void wal_wait(struct wal *w, struct wal_waiter *wt, uint64_t pos, void (*cb)(struct wal_waiter *));

/* From the dump callback: add r to the snapshot. Returns 0, or -1 after a
 * write failed (the dump should stop). */
int wal_snap_put(struct wal_snap *s, const struct walrec *r);

/* Begin the end: stop the timers, start no compaction. Writes in flight and
 * records already appended still go out, and their waiters are called. */
void wal_stop(struct wal *w);

/* After the loop has ended: write and fsync what is left, close, free.
 * NULL: no-op. */
void wal_free(struct wal *w);

const struct wal_stats *wal_stats(const struct wal *w);

/* ---- for tests: the steps of a flush and of a compaction, run at once on
 * the calling thread, and a crash ------------------------------------------ */

/* Write and fsync the records appended so far. 0 or an errno. */
int wal__flush_sync(struct wal *w);

/* Run one step of a compaction, in order: 1 flush and begin the next log,
 * 2 write and fsync snap.tmp, 3 rename it and fsync the directory, 4 delete
 * the files it made unneeded. 0 or an errno. */
int wal__compact_step(struct wal *w, int step);

/* Close and free as a killed process would leave things: nothing more is
 * written. */
void wal__crash(struct wal *w);

#endif
