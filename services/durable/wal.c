/*
 * wal.c — a service's log: files, replay, group commit, compaction
 * (contract and directory layout in wal.h).
 *
 * Appending (loop thread). wal_append encodes a record into `fill` and arms
 * an idle handle, whose callback runs once the loop has dealt with what the
 * current turn read (an active idle handle also keeps the next poll from
 * blocking), so that the records of one loop turn leave together. The
 * flush takes the whole of `fill` as its batch (the two buffers are swapped,
 * nothing is copied) and runs write + fdatasync on the threadpool; records
 * appended meanwhile wait in the new `fill` for the next flush — group
 * commit, without a timer: the busier the service, the more records share
 * an fsync. Positions are byte counts since start; a waiter is called when
 * the position of its last record is written (and, under WAL_FSYNC_ALWAYS,
 * fsynced).
 *
 * A failed write or fsync is not retried: after a failed fsync the kernel
 * may have dropped the dirty pages and cleared the error (PostgreSQL's
 * "fsyncgate", 2018), so nothing appended since the last good fsync can be
 * trusted to be on disk. The waiters are never answered and opts.fail is
 * called; the substrate exits, and a restart replays what is really there.
 *
 * Compaction. Once the current log is past compact_bytes and past the
 * newest snapshot's size (so the log is at least as big as the live state
 * it would replay into), the next flush also fsyncs the log and begins log
 * G+1 (created with its FILE record, fsynced, directory fsynced), and from
 * then on records go there. Then, on the threadpool: the dump callback
 * writes the live state to snap.tmp, which is fsynced, renamed to snap.G+1,
 * and the directory fsynced; only then are log G and older files deleted.
 * A crash at any point leaves either snap.G with logs G, G+1 (replayed in
 * order) or snap.G+1 with log G+1 (the older files are deleted at start).
 * The snapshot is not taken at one instant, but every record is idempotent
 * and every change made after log G+1 was begun is in it, so replaying log
 * G+1 over any state read after that moment ends in the same state.
 * A failed compaction deletes snap.tmp, is noted and counted, and is tried
 * again once the log has grown by compact_bytes more.
 */
#include "services/durable/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engines/common/hash.h"
#include "ops/metrics.h"

#define LOG_PREFIX  "log."
#define SNAP_PREFIX "snap."
#define SNAP_TMP    "snap.tmp"
#define NAME_BYTES  32
/* Snapshot records are written in chunks of about this much. */
#define SNAP_CHUNK_BYTES (1u << 20)
/* Replay reads files through a buffer that holds the largest frame and a
 * read's worth more. */
#define READ_CHUNK_BYTES (1u << 20)

const double wal_fsync_le[WAL_FSYNC_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                0.01,   0.025,   0.05,   0.1,   0.25,   1};

struct wal_snap {
    struct wal *w;
    int fd;
    struct buf out;
    uint64_t count, bytes;
    int err;
};

struct wal {
    struct wal_opts o;
    char *dir;
    int dirfd, lockfd, fd;
    uint64_t gen;    /* of the log appended to */
    uint64_t oldest; /* lowest generation that may still have files */
    uint64_t snap;   /* generation of the newest snapshot; 0: none */
    uint64_t last;   /* highest log generation found at open; 0: none */
    uint8_t seed[WALREC_SEED_BYTES];
    struct wal_stats st;

    /* Appending (loop thread). */
    struct buf fill;
    uint64_t appended, written, durable; /* positions: bytes since start */
    struct wal_waiter *wait_head, *wait_tail;
    bool failed, stopping;
    uv_loop_t *loop;
    uv_idle_t idle;
    uv_timer_t timer;

    /* The flush in flight: the worker's from uv_queue_work until
     * flush_done. */
    uv_work_t flush_req;
    bool flushing, do_sync, do_rotate;
    struct buf batch;
    int flush_err, new_fd;
    const char *flush_what;
    uint64_t flush_us, new_log_bytes;

    /* Compaction. */
    uv_work_t snap_req;
    bool compacting, rotate_wanted, sync_wanted;
    uint64_t snap_gen, snap_bytes, retry_at;
    int snap_err;
    const char *snap_what;
};

/* ------------------------------------------------------------ helpers */

static void file_name(char out[NAME_BYTES], const char *prefix, uint64_t gen)
{
    snprintf(out, NAME_BYTES, "%s%016" PRIx64, prefix, gen);
}

static void note(struct wal *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct wal *w, const char *fmt, ...)
{
    char text[256];
    va_list ap;

    if (w->o.note == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    w->o.note(w->o.arg, text);
}

static int fail_with(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_with(char *err, size_t errcap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
    return -1;
}

/* 0 or an errno. */
static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k == -1) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static struct walrec file_record(const struct wal *w, uint8_t kind, uint64_t gen)
{
    struct walrec r = {.type = WALREC_FILE,
                       .magic = WALREC_MAGIC,
                       .version = WALREC_VERSION,
                       .kind = kind,
                       .role = w->o.role,
                       .gen = gen};
    memcpy(r.seed, w->seed, sizeof(r.seed));
    return r;
}

/* Create file `name` holding just its FILE record, fsync it and the
 * directory. *fd_out: open for appending. 0 or an errno. */
static int file_begin(struct wal *w, const char *name, uint8_t kind, uint64_t gen, int *fd_out,
                      uint64_t *bytes)
{
    struct walrec r = file_record(w, kind, gen);
    struct buf b = {0};
    int fd, e;

    if (walrec_encode(&b, &r) != 0)
        return ENOMEM;
    fd = openat(w->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd == -1) {
        e = errno;
        buf_release(&b);
        return e;
    }
    e = write_all(fd, b.p, b.n);
    if (e == 0 && fdatasync(fd) == -1)
        e = errno;
    if (e == 0 && fsync(w->dirfd) == -1)
        e = errno;
    *bytes = b.n;
    buf_release(&b);
    if (e != 0) {
        close(fd);
        return e;
    }
    *fd_out = fd;
    return 0;
}

/* ------------------------------------------------------------- reading */

/* How a file read ended. */
struct readout {
    uint64_t records;  /* applied (FILE and END not counted) */
    uint64_t good_end; /* offset after the last whole record */
    uint64_t size;
    bool header;   /* its FILE record was read */
    bool clean;    /* it ends exactly after a whole record */
    bool end_seen; /* a snapshot's END, with the right count, last in the file */
};

/* Read file `name` (kind, generation gen) record by record, passing all
 * but FILE and END to apply. A FILE record that says another file is an
 * error; so is anything after a snapshot's END. Where the bytes stop
 * decoding, the read stops and out says so. 0, or -1 with err. */
static int read_file(struct wal *w, const char *name, uint8_t kind, uint64_t gen,
                     wal_apply_fn apply, void *arg, struct readout *out, char *err, size_t errcap)
{
    static struct walrec r; /* start-up, one thread: 2 KiB of ids off the stack */
    size_t cap = WALREC_MAX_BYTES + 8 + READ_CHUNK_BYTES, have = 0, at = 0;
    uint8_t *b = NULL;
    int fd, rc = -1;
    bool eof = false;

    memset(out, 0, sizeof(*out));
    fd = openat(w->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return fail_with(err, errcap, "cannot open %s/%s: %s", w->dir, name, strerror(errno));
    if ((b = malloc(cap)) == NULL) {
        fail_with(err, errcap, "out of memory reading %s", name);
        goto out;
    }
    for (;;) {
        size_t used = 0;
        int d = walrec_decode(b + at, have - at, &r, &used);
        if (d == WALREC_SHORT && !eof) {
            memmove(b, b + at, have - at);
            have -= at;
            at = 0;
            ssize_t k = read(fd, b + have, cap - have);
            if (k == -1 && errno == EINTR)
                continue;
            if (k == -1) {
                fail_with(err, errcap, "cannot read %s/%s: %s", w->dir, name, strerror(errno));
                goto out;
            }
            eof = k == 0;
            have += (size_t)k;
            out->size += (uint64_t)k;
            continue;
        }
        if (d != WALREC_OK) {
            out->clean = d == WALREC_SHORT && at == have;
            break;
        }
        if (!out->header) {
            if (r.type != WALREC_FILE || r.magic != WALREC_MAGIC)
                break; /* not begun: read as torn at offset 0 */
            if (r.version != WALREC_VERSION || r.kind != kind || r.role != w->o.role ||
                r.gen != gen) {
                fail_with(err, errcap,
                          "%s/%s is not this service's file (version %u, kind %u, role %u, "
                          "generation %" PRIu64 ")",
                          w->dir, name, r.version, r.kind, r.role, r.gen);
                goto out;
            }
            out->header = true;
        } else if (out->end_seen || r.type == WALREC_FILE) {
            break; /* nothing may follow END; one FILE per file */
        } else if (r.type == WALREC_END) {
            if (kind != WALREC_KIND_SNAPSHOT || r.count != out->records)
                break;
            out->end_seen = true;
        } else if (apply(arg, &r) != 0) {
            fail_with(err, errcap, "record %" PRIu64 " of %s/%s could not be applied",
                      out->records + 1, w->dir, name);
            goto out;
        } else {
            out->records++;
        }
        at += used;
        out->good_end += used;
    }
    if (kind == WALREC_KIND_SNAPSHOT && !(out->clean && out->end_seen))
        out->end_seen = false;
    rc = 0;
out:
    free(b);
    close(fd);
    return rc;
}

/* The seed in the FILE record of `name`: 0, or -1 if it has none that reads. */
static int read_seed(struct wal *w, const char *name, uint8_t seed[WALREC_SEED_BYTES])
{
    struct walrec r;
    uint8_t b[128];
    size_t used;
    ssize_t k;
    int fd = openat(w->dirfd, name, O_RDONLY | O_CLOEXEC);

    if (fd == -1)
        return -1;
    k = read(fd, b, sizeof(b));
    close(fd);
    if (k <= 0 || walrec_decode(b, (size_t)k, &r, &used) != WALREC_OK || r.type != WALREC_FILE ||
        r.magic != WALREC_MAGIC)
        return -1;
    memcpy(seed, r.seed, WALREC_SEED_BYTES);
    return 0;
}

/* ---------------------------------------------------------------- open */

/* Generation of "log.<16 hex>" / "snap.<16 hex>", or 0. */
static uint64_t gen_of(const char *name, const char *prefix)
{
    size_t pl = strlen(prefix);
    uint64_t g = 0;

    if (strncmp(name, prefix, pl) != 0 || strlen(name + pl) != 16)
        return 0;
    for (const char *c = name + pl; *c; c++) {
        int v = *c >= '0' && *c <= '9' ? *c - '0' : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;
        if (v < 0)
            return 0;
        g = g << 4 | (uint64_t)v;
    }
    return g;
}

/* Find the newest snapshot, the first and last logs, and check the chain
 * of logs from the snapshot on is whole. */
static int scan_dir(struct wal *w, char *err, size_t errcap)
{
    uint64_t first = 0, nlogs = 0, oldest = UINT64_MAX;
    int fd = dup(w->dirfd);
    DIR *d = fd == -1 ? NULL : fdopendir(fd);
    struct dirent *e;

    if (d == NULL) {
        if (fd != -1)
            close(fd);
        return fail_with(err, errcap, "cannot list %s: %s", w->dir, strerror(errno));
    }
    /* First pass: the newest snapshot, the logs' range and count. */
    while ((e = readdir(d)) != NULL) {
        uint64_t g;
        if (strcmp(e->d_name, SNAP_TMP) == 0) {
            unlinkat(w->dirfd, SNAP_TMP, 0); /* a compaction cut short */
        } else if ((g = gen_of(e->d_name, SNAP_PREFIX)) != 0) {
            w->snap = g > w->snap ? g : w->snap;
            oldest = g < oldest ? g : oldest;
        } else if ((g = gen_of(e->d_name, LOG_PREFIX)) != 0) {
            w->last = g > w->last ? g : w->last;
            oldest = g < oldest ? g : oldest;
        }
    }
    /* Second pass: the logs from the snapshot's generation on. */
    rewinddir(d);
    while ((e = readdir(d)) != NULL) {
        uint64_t g = gen_of(e->d_name, LOG_PREFIX);
        if (g != 0 && g >= (w->snap ? w->snap : 1)) {
            nlogs++;
            first = first == 0 || g < first ? g : first;
        }
    }
    closedir(d);
    w->oldest = oldest == UINT64_MAX ? 1 : oldest;
    if (w->snap == 0 && w->last == 0)
        return 0; /* a new directory */
    if (w->snap != 0 && (nlogs == 0 || first != w->snap))
        return fail_with(err, errcap,
                         "%s: log %016" PRIx64 " of snapshot %016" PRIx64 " is missing", w->dir,
                         w->snap, w->snap);
    if (w->snap == 0 && first != 1)
        return fail_with(err, errcap, "%s: no snapshot and log 1 is missing", w->dir);
    if (nlogs != w->last - first + 1)
        return fail_with(err, errcap, "%s: logs %016" PRIx64 "..%016" PRIx64 " are not all there",
                         w->dir, first, w->last);
    return 0;
}

struct wal *wal_open(const struct wal_opts *o, uint8_t seed[WALREC_SEED_BYTES], char *err,
                     size_t errcap)
{
    struct wal *w = calloc(1, sizeof(*w));
    char name[NAME_BYTES];

    if (w == NULL || (w->dir = strdup(o->dir)) == NULL) {
        free(w);
        fail_with(err, errcap, "out of memory");
        return NULL;
    }
    w->o = *o;
    w->o.dir = w->dir;
    w->new_fd = -1;
    if (w->o.compact_bytes == 0)
        w->o.compact_bytes = WAL_DEFAULT_COMPACT_BYTES;
    w->dirfd = w->lockfd = w->fd = -1;
    if (mkdir(o->dir, 0755) == -1 && errno != EEXIST) {
        fail_with(err, errcap, "cannot create %s: %s", o->dir, strerror(errno));
        goto fail;
    }
    if ((w->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
        fail_with(err, errcap, "cannot open %s: %s", o->dir, strerror(errno));
        goto fail;
    }
    w->lockfd = openat(w->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (w->lockfd == -1 || flock(w->lockfd, LOCK_EX | LOCK_NB) == -1) {
        fail_with(err, errcap, "cannot lock %s/lock: %s", o->dir,
                  errno == EWOULDBLOCK ? "another process uses this directory" : strerror(errno));
        goto fail;
    }
    if (scan_dir(w, err, errcap) != 0)
        goto fail;
    /* The seed: the snapshot's, or the first log's; a new one when no file
     * has a FILE record that reads (nothing was ever written). */
    if (w->snap)
        file_name(name, SNAP_PREFIX, w->snap);
    else
        file_name(name, LOG_PREFIX, 1);
    if ((w->snap == 0 && w->last == 0) || read_seed(w, name, w->seed) != 0) {
        if (w->snap != 0) {
            fail_with(err, errcap, "%s/%s has no FILE record", o->dir, name);
            goto fail;
        }
        eng_random_key(w->seed, sizeof(w->seed));
    }
    memcpy(seed, w->seed, WALREC_SEED_BYTES);
    return w;

fail:
    wal__crash(w);
    return NULL;
}

/* ---------------------------------------------------------------- replay */

/* Delete every file of a generation below gen. */
static void prune_below(struct wal *w, uint64_t gen)
{
    char name[NAME_BYTES];

    for (uint64_t g = w->oldest; g < gen; g++) {
        file_name(name, LOG_PREFIX, g);
        unlinkat(w->dirfd, name, 0);
        file_name(name, SNAP_PREFIX, g);
        unlinkat(w->dirfd, name, 0);
    }
}

int wal_replay(struct wal *w, wal_apply_fn apply, void *arg, char *err, size_t errcap)
{
    char name[NAME_BYTES];
    struct readout ro;
    uint64_t first = w->snap ? w->snap : 1, bytes;
    bool begin_again = false;
    int e;

    if (w->snap != 0) {
        file_name(name, SNAP_PREFIX, w->snap);
        if (read_file(w, name, WALREC_KIND_SNAPSHOT, w->snap, apply, arg, &ro, err, errcap) != 0)
            return -1;
        if (!ro.header || !ro.end_seen)
            return fail_with(err, errcap, "%s/%s is damaged at byte %" PRIu64, w->dir, name,
                             ro.good_end);
        w->st.replayed += ro.records;
        w->st.snapshot_bytes = ro.size;
    }
    for (uint64_t g = first; w->last != 0 && g <= w->last; g++) {
        bool last = g == w->last;
        file_name(name, LOG_PREFIX, g);
        if (read_file(w, name, WALREC_KIND_LOG, g, apply, arg, &ro, err, errcap) != 0)
            return -1;
        w->st.replayed += ro.records;
        if (ro.clean && ro.header)
            continue;
        if (!last)
            return fail_with(err, errcap,
                             "%s/%s does not end cleanly (byte %" PRIu64 " of %" PRIu64
                             ") though a later log exists",
                             w->dir, name, ro.good_end, ro.size);
        if (!ro.header) {
            /* Begun, but its FILE record never made it, so nothing after
             * it did either: begin it again. */
            begin_again = true;
            break;
        }
        /* A write cut off by a crash: keep the whole records before it. */
        int fd = openat(w->dirfd, name, O_WRONLY | O_CLOEXEC);
        if (fd == -1 || ftruncate(fd, (off_t)ro.good_end) == -1 || fsync(fd) == -1) {
            e = errno;
            if (fd != -1)
                close(fd);
            return fail_with(err, errcap, "cannot cut %s/%s back to byte %" PRIu64 ": %s", w->dir,
                             name, ro.good_end, strerror(e));
        }
        close(fd);
        w->st.truncated = ro.size - ro.good_end;
        note(w,
             "%s/%s ended in a torn record: cut back from %" PRIu64 " to %" PRIu64
             " bytes after %" PRIu64 " records",
             w->dir, name, ro.size, ro.good_end, ro.records);
        ro.size = ro.good_end;
    }
    w->gen = w->last != 0 ? w->last : first;
    file_name(name, LOG_PREFIX, w->gen);
    if (w->last != 0 && !begin_again) {
        if ((w->fd = openat(w->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC)) == -1)
            return fail_with(err, errcap, "cannot open %s/%s: %s", w->dir, name, strerror(errno));
        w->st.log_bytes = ro.size;
    } else {
        if ((e = file_begin(w, name, WALREC_KIND_LOG, w->gen, &w->fd, &bytes)) != 0)
            return fail_with(err, errcap, "cannot begin %s/%s: %s", w->dir, name, strerror(e));
        w->st.log_bytes = bytes;
    }
    prune_below(w, first);
    w->oldest = first;
    return 0;
}

/* ------------------------------------------------------------- appending */

static void kick(struct wal *w);

static void on_idle(uv_idle_t *h)
{
    struct wal *w = h->data;

    uv_idle_stop(h);
    kick(w);
}

static void on_timer(uv_timer_t *t)
{
    struct wal *w = t->data;

    if (w->durable < w->written || w->fill.n > 0) {
        w->sync_wanted = true;
        kick(w);
    }
}

int wal_start(struct wal *w, uv_loop_t *loop)
{
    w->loop = loop;
    uv_idle_init(loop, &w->idle);
    w->idle.data = w;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    if (w->o.fsync == WAL_FSYNC_BATCH) {
        uv_timer_start(&w->timer, on_timer, WAL_BATCH_INTERVAL_MS, WAL_BATCH_INTERVAL_MS);
        uv_unref((uv_handle_t *)&w->timer); /* it alone does not keep the loop running */
    }
    return 0;
}

uint64_t wal_append(struct wal *w, const struct walrec *r)
{
    size_t before = w->fill.n;

    if (w->failed || walrec_encode(&w->fill, r) != 0)
        return 0;
    w->appended += w->fill.n - before;
    w->st.appended++;
    if (before == 0 && w->loop != NULL) {
        if (w->stopping)
            kick(w);
        else
            uv_idle_start(&w->idle, on_idle);
    }
    return w->appended;
}

void wal_wait(struct wal *w, struct wal_waiter *wt, uint64_t pos, void (*cb)(struct wal_waiter *))
{
    wt->next = NULL;
    wt->pos = pos;
    wt->cb = cb;
    if (w->wait_tail)
        w->wait_tail->next = wt;
    else
        w->wait_head = wt;
    w->wait_tail = wt;
    w->st.waiting++;
}

static void wake(struct wal *w)
{
    uint64_t covered = w->o.fsync == WAL_FSYNC_ALWAYS ? w->durable : w->written;

    while (w->wait_head != NULL && w->wait_head->pos <= covered) {
        struct wal_waiter *wt = w->wait_head;
        w->wait_head = wt->next;
        if (w->wait_head == NULL)
            w->wait_tail = NULL;
        w->st.waiting--;
        wt->cb(wt);
    }
}

static void flush_work(uv_work_t *req)
{
    struct wal *w = eng_container_of(req, struct wal, flush_req);
    char name[NAME_BYTES];
    uint64_t t0, bytes;

    w->flush_err = 0;
    w->flush_us = UINT64_MAX; /* no fsync */
    if (w->batch.n > 0 && (w->flush_err = write_all(w->fd, w->batch.p, w->batch.n)) != 0) {
        w->flush_what = "write";
        return;
    }
    if (w->do_sync || w->do_rotate) {
        t0 = now_us();
        if (fdatasync(w->fd) == -1) {
            w->flush_err = errno;
            w->flush_what = "fsync";
            return;
        }
        w->flush_us = now_us() - t0;
    }
    if (w->do_rotate) {
        file_name(name, LOG_PREFIX, w->gen + 1);
        w->flush_err = file_begin(w, name, WALREC_KIND_LOG, w->gen + 1, &w->new_fd, &bytes);
        w->flush_what = "begin the next log";
        w->new_log_bytes = bytes;
    }
}

static void snap_start(struct wal *w);

static void maybe_compact(struct wal *w)
{
    const struct wal_stats *s = &w->st;

    if (w->compacting || w->stopping || w->failed || w->o.dump == NULL)
        return;
    if (s->log_bytes < w->o.compact_bytes || s->log_bytes < s->snapshot_bytes ||
        s->log_bytes < w->retry_at)
        return;
    w->compacting = true;
    w->rotate_wanted = true;
}

static void flush_done(uv_work_t *req, int status)
{
    struct wal *w = eng_container_of(req, struct wal, flush_req);

    w->flushing = false;
    if (w->flush_err != 0) {
        w->failed = true;
        if (w->o.fail != NULL)
            w->o.fail(w->o.arg, w->flush_what, w->flush_err);
        return;
    }
    w->written += w->batch.n;
    w->st.log_bytes += w->batch.n;
    w->batch.n = 0;
    if (w->flush_us != UINT64_MAX) {
        w->durable = w->written;
        w->st.fsyncs++;
        w->st.fsync_sum_us += w->flush_us;
        w->st.fsync_bucket[metrics_bucket(wal_fsync_le, WAL_FSYNC_BUCKETS, w->flush_us)]++;
    }
    if (w->do_rotate) {
        close(w->fd);
        w->fd = w->new_fd;
        w->new_fd = -1;
        w->gen++;
        w->st.log_bytes = w->new_log_bytes;
        snap_start(w);
    }
    wake(w);
    maybe_compact(w);
    kick(w);
}

static void kick(struct wal *w)
{
    struct buf t;

    if (w->flushing || w->failed || w->loop == NULL)
        return;
    if (w->fill.n == 0 && !w->rotate_wanted && !w->sync_wanted)
        return;
    t = w->batch; /* empty: its room is reused */
    w->batch = w->fill;
    w->fill = t;
    w->do_sync = w->o.fsync == WAL_FSYNC_ALWAYS ? w->batch.n > 0 : w->sync_wanted;
    w->do_rotate = w->rotate_wanted;
    w->rotate_wanted = w->sync_wanted = false;
    w->flushing = true;
    uv_queue_work(w->loop, &w->flush_req, flush_work, flush_done);
}

/* ------------------------------------------------------------ snapshots */

int wal_snap_put(struct wal_snap *s, const struct walrec *r)
{
    if (s->err != 0)
        return -1;
    if (walrec_encode(&s->out, r) != 0) {
        s->err = ENOMEM;
        return -1;
    }
    s->count++;
    if (s->out.n >= SNAP_CHUNK_BYTES) {
        if ((s->err = write_all(s->fd, s->out.p, s->out.n)) != 0)
            return -1;
        s->bytes += s->out.n;
        s->out.n = 0;
    }
    return 0;
}

/* Write snapshot gen to snap.tmp and fsync it. 0 or an errno, *what. */
static int snap_write(struct wal *w, uint64_t gen, uint64_t *bytes, const char **what)
{
    struct wal_snap s = {.w = w};
    struct walrec end = {.type = WALREC_END};
    uint64_t head;
    int e;

    *what = "begin snap.tmp";
    if ((e = file_begin(w, SNAP_TMP, WALREC_KIND_SNAPSHOT, gen, &s.fd, &head)) != 0)
        return e;
    *what = "write snap.tmp";
    if (w->o.dump(w->o.arg, &s) != 0 && s.err == 0)
        s.err = EIO; /* the dump gave up */
    end.count = s.count;
    if (s.err == 0 && walrec_encode(&s.out, &end) != 0)
        s.err = ENOMEM;
    if (s.err == 0)
        s.err = write_all(s.fd, s.out.p, s.out.n);
    s.bytes += s.out.n;
    if (s.err == 0 && fdatasync(s.fd) == -1)
        s.err = errno;
    if (close(s.fd) == -1 && s.err == 0)
        s.err = errno;
    buf_release(&s.out);
    if (s.err != 0)
        unlinkat(w->dirfd, SNAP_TMP, 0);
    *bytes = head + s.bytes;
    return s.err;
}

/* snap.tmp becomes snapshot gen. 0 or an errno. */
static int snap_commit(struct wal *w, uint64_t gen, const char **what)
{
    char name[NAME_BYTES];

    file_name(name, SNAP_PREFIX, gen);
    *what = "rename snap.tmp";
    if (renameat(w->dirfd, SNAP_TMP, w->dirfd, name) == -1) {
        int e = errno;
        unlinkat(w->dirfd, SNAP_TMP, 0);
        return e;
    }
    *what = "fsync the directory";
    return fsync(w->dirfd) == -1 ? errno : 0;
}

static void snap_work(uv_work_t *req)
{
    struct wal *w = eng_container_of(req, struct wal, snap_req);

    w->snap_err = snap_write(w, w->snap_gen, &w->snap_bytes, &w->snap_what);
    if (w->snap_err == 0)
        w->snap_err = snap_commit(w, w->snap_gen, &w->snap_what);
    if (w->snap_err == 0)
        prune_below(w, w->snap_gen);
}

static void snap_done(uv_work_t *req, int status)
{
    struct wal *w = eng_container_of(req, struct wal, snap_req);

    w->compacting = false;
    if (w->snap_err == 0) {
        w->st.compactions++;
        w->st.snapshot_bytes = w->snap_bytes;
        w->snap = w->oldest = w->snap_gen;
        return;
    }
    w->st.compaction_failures++;
    w->retry_at = w->st.log_bytes + w->o.compact_bytes;
    note(w, "compaction to snapshot %016" PRIx64 " failed (%s: %s); the log goes on", w->snap_gen,
         w->snap_what, strerror(w->snap_err));
}

/* Log snap_gen has just been begun: write its snapshot. */
static void snap_start(struct wal *w)
{
    w->snap_gen = w->gen;
    uv_queue_work(w->loop, &w->snap_req, snap_work, snap_done);
}

/* ------------------------------------------------------------------ end */

void wal_stop(struct wal *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    if (w->loop == NULL)
        return;
    uv_close((uv_handle_t *)&w->idle, NULL);
    uv_close((uv_handle_t *)&w->timer, NULL);
    kick(w); /* what the idle callback would have sent */
}

const struct wal_stats *wal_stats(const struct wal *w)
{
    return &w->st;
}

int wal__flush_sync(struct wal *w)
{
    int e = write_all(w->fd, w->fill.p, w->fill.n);

    if (e == 0 && fdatasync(w->fd) == -1)
        e = errno;
    if (e != 0)
        return e;
    w->written += w->fill.n;
    w->st.log_bytes += w->fill.n;
    w->durable = w->written;
    w->fill.n = 0;
    return 0;
}

int wal__compact_step(struct wal *w, int step)
{
    char name[NAME_BYTES];
    const char *what;
    uint64_t bytes;
    int e, fd;

    switch (step) {
    case 1:
        if ((e = wal__flush_sync(w)) != 0)
            return e;
        file_name(name, LOG_PREFIX, w->gen + 1);
        if ((e = file_begin(w, name, WALREC_KIND_LOG, w->gen + 1, &fd, &bytes)) != 0)
            return e;
        close(w->fd);
        w->fd = fd;
        w->gen++;
        w->st.log_bytes = bytes;
        return 0;
    case 2:
        e = snap_write(w, w->gen, &bytes, &what);
        w->snap_bytes = bytes;
        return e;
    case 3: return snap_commit(w, w->gen, &what);
    case 4:
        prune_below(w, w->gen);
        w->snap = w->oldest = w->gen;
        w->st.snapshot_bytes = w->snap_bytes;
        return 0;
    default: return EINVAL;
    }
}

void wal_free(struct wal *w)
{
    if (w == NULL)
        return;
    /* A clean stop leaves nothing behind, whatever the policy. */
    if (w->fd != -1 && !w->failed && (w->fill.n > 0 || w->durable < w->written))
        wal__flush_sync(w);
    wal__crash(w);
}

void wal__crash(struct wal *w)
{
    if (w == NULL)
        return;
    if (w->fd != -1)
        close(w->fd);
    if (w->new_fd != -1)
        close(w->new_fd);
    if (w->lockfd != -1)
        close(w->lockfd);
    if (w->dirfd != -1)
        close(w->dirfd);
    buf_release(&w->fill);
    buf_release(&w->batch);
    free(w->dir);
    free(w);
}
