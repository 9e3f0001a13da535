/*
 * wbatch.h — small writes to a stream, copied into one buffer and written
 * once per loop turn.
 *
 * Both ends of an OAP/1 connection send many small frames: omnigate's pools
 * one per downstream call, the reference services one per answer. Written
 * one by one they cost a write syscall each; batched, the frames of every
 * request handled in one loop turn leave in one. A frame whose body is at
 * most WBATCH_COPY_MAX is copied into its stream's batch (wbatch_add); the
 * set writes every dirty batch from a check handle, after the turn's I/O
 * callbacks, and an idle handle keeps poll from blocking while a batch waits
 * (a batch filled after the check phase is written early in the next turn).
 * A larger frame is written by its owner after wbatch_flush(), so frames
 * leave in order: uv_try_write refuses while libuv has bytes queued.
 *
 * Flushing tries the socket at once; what it does not take goes through
 * uv_write, which then owns the buffer. Not thread-safe: one set per loop.
 */
#ifndef OAPNET_WBATCH_H
#define OAPNET_WBATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "core/buf.h"

#define WBATCH_COPY_MAX 16384  /* frame bodies up to this are copied */
#define WBATCH_MAX      262144 /* a batch is flushed before it grows past this */
#define WBATCH_KEEP     65536  /* buffer capacity kept between turns */

struct wbatch;

/* The batches of one loop that wait for the check phase. */
struct wbatch_set {
    uv_check_t check;
    uv_idle_t idle;
    struct wbatch *dirty;
    bool closed;
};

struct wbatch {
    struct wbatch_set *set;
    uv_stream_t *stream;
    struct buf buf;
    bool dirty;
    struct wbatch *next_dirty;
    /* A write of this batch failed (status < 0: the bytes are lost, the
     * owner closes the stream) or a queued write ended (status 0, or
     * UV_ECANCELED when the stream closed). May be called from
     * wbatch_flush(). */
    void (*on_write_end)(struct wbatch *wb, int status);
    /* Optional: the batch's bytes were handed to the socket or to libuv, or
     * dropped by a failure. */
    void (*on_flushed)(struct wbatch *wb);
};

/* Start a set on loop (handles unreferenced: they keep no loop alive). */
void wbatch_set_init(struct wbatch_set *s, uv_loop_t *loop);
/* Close the set's two handles; close_cb (may be NULL) runs for each. No
 * batch is written by the set afterwards. */
void wbatch_set_close(struct wbatch_set *s, uv_close_cb close_cb);

/* Attach a batch to its stream; callbacks are set by the caller. */
void wbatch_init(struct wbatch *wb, struct wbatch_set *s, uv_stream_t *stream);

/* Whether a frame of len bytes with a body of body_len belongs in the batch
 * (after a flush when the batch is too full for it). */
static inline bool wbatch_small(size_t body_len)
{
    return body_len <= WBATCH_COPY_MAX;
}
static inline bool wbatch_room(const struct wbatch *wb, size_t len)
{
    return wb->buf.n + len <= WBATCH_MAX;
}

/* Copy the n parts of one frame into the batch and mark it dirty. Returns 0,
 * or -1 when memory is short (nothing was added). */
int wbatch_add(struct wbatch *wb, const uv_buf_t *parts, unsigned n);

/* Write the batch now. Returns 0, or a libuv error after on_write_end was
 * told (the batch is dropped). */
int wbatch_flush(struct wbatch *wb);

/* The stream is going away: off the dirty list, unsent bytes dropped. */
void wbatch_drop(struct wbatch *wb);
/* Drop, and free the buffer. */
void wbatch_release(struct wbatch *wb);

#endif
