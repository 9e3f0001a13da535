/*
 * ds.h — the downstream interface: one call shape for index, storage and
 * mailbox, whether they run in process (micronode) or behind OAP/1 sockets
 * (macronode). A handler cannot tell the two apart (DESIGN §2).
 *
 * A call is an app-protocol request (engines/proto/proto.h): a typed op
 * (engines/proto/op-t.h, made by a builder of ds/op.h) and an optional
 * body. In process the op goes to the engines as it is; a remote backend
 * writes it as header JSON on the wire. The downstream layer adds the
 * caller's remaining deadline ("deadline_ms"), enforces the
 * per-downstream concurrency limit, retries idempotent reads within the
 * deadline under a shared retry budget, coalesces identical storage reads,
 * and records per-hop metrics. The callback always runs on the calling
 * worker's loop, on a later turn than ds_call() — never inside it.
 */
#ifndef DS_DS_H
#define DS_DS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "engines/proto/op-t.h"

struct ds_worker;
struct og_config;
struct uv_loop_s;

enum ds_service { DS_INDEX, DS_STORAGE, DS_MAILBOX, DS__COUNT };

/* A finished call. Valid only during the callback unless ds_resp_keep() was
 * called; then the caller owns it and frees it with ds_resp_free(). */
struct ds_resp {
    int code;        /* app status (200, 206, 404, ...), or 0 on transport failure */
    enum og_err err; /* when code == 0: DOWNSTREAM_TIMEOUT, BUSY (shed), BAD_GATEWAY */
    const char *hdr; /* response header JSON (not NUL-terminated) */
    size_t hdr_len;
    const uint8_t *body;
    size_t body_len;
    double latency_ms; /* this hop, all attempts */
    int attempts;
    bool coalesced; /* served by another caller's identical read */
    /* owner of hdr/body: opaque, released by ds_resp_free */
    void *owner;
    void (*release)(void *owner);
};

typedef void (*ds_cb)(void *arg, struct ds_resp *resp);

struct ds_req {
    enum ds_service svc;
    /* What to ask, without a deadline (the call adds it); its kind is the
     * `op` label of the downstream metrics. Its strings are borrowed until
     * ds_call() returns: the call keeps a copy of the op. */
    struct proto_op op;
    const void *body; /* copied by ds_call() too */
    size_t body_len;
    uint64_t deadline_ms; /* loop time (uv_now) at which the caller gives up */
    const char *corr_id;  /* the request's X-Corr-ID, sent on to remote services (or NULL) */
    bool idempotent;      /* reads: may be retried, hedged and coalesced */
    /* Storage reads: identical reads in flight on one worker (same address
     * and range, coalesce.h) share one downstream request. */
    bool coalesce;
    /* ds_call_stream only: chunks the consumer may hold before the producer
     * is paused (DS_STREAM_WINDOW_MIN..MAX; 0 = DS_STREAM_WINDOW_DEF). */
    unsigned stream_window;
};

struct ds_call;

/* Start a call on the worker whose handle is dw (ds_worker_init). Returns a
 * handle (for ds_cancel) or NULL when the call could not even be queued; in
 * every case cb runs exactly once, later, unless the call is cancelled
 * first. */
struct ds_call *ds_call(struct ds_worker *dw, const struct ds_req *req, ds_cb cb, void *arg);

/* The caller no longer wants the answer: cb (or a stream's callbacks) will
 * not run. NULL is a no-op; a handle must not be used once its call ended. */
void ds_cancel(struct ds_call *c);

/*
 * Streams: the body of an answer is handed over as it arrives, in chunks
 * (about 64 KiB each), so that memory per call stays bounded whatever the
 * object's size. A chunk stays valid until the consumer passes its owner to
 * ds_chunk_done(); that release is what lets the producer go on: remote
 * (OAP/1) streams grant credit to the service, in-process ones hand out the
 * next slice. At most about stream_window chunks are held at once, so a
 * consumer that stops releasing chunks stops the producer.
 *
 * Order of callbacks, all on the calling worker's loop and never inside
 * ds_call_stream() itself:
 *   on_head  exactly once, first. head->code 0 means the call failed before
 *            any answer (head->err: BUSY when shed by the concurrency limit,
 *            DOWNSTREAM_TIMEOUT, BAD_GATEWAY, INTERNAL): nothing follows.
 *            Otherwise head carries the status and header JSON (body empty);
 *            it is valid during the callback, or beyond it via ds_resp_keep.
 *   on_chunk zero or more times, n > 0, in order.
 *   on_end   exactly once after a head with code != 0: status
 *            DS_STREAM_OK, or a negative enum ds_stream_status.
 * ds_cancel() (allowed inside any of the callbacks) stops the stream: no
 * callback runs after it. Chunks already delivered stay owned by the
 * consumer, which releases each of them with ds_chunk_done(), also after
 * the end or a cancel.
 *
 * Streams are never retried, hedged or coalesced: their answer is consumed
 * while it arrives, so a second attempt could not take back what a client
 * has already been sent, and a shared answer would tie one client's pace to
 * another's. The per-downstream concurrency limit applies for the whole
 * stream. req->deadline_ms bounds the time to the head; after it, the
 * stream fails with DS_STREAM_DEADLINE when the producer makes no progress
 * for that same budget while the consumer has room for more (a consumer
 * that holds the whole window is never timed out here: the client's write
 * timeout is its bound).
 */
#define DS_STREAM_WINDOW_MIN  1
#define DS_STREAM_WINDOW_DEF  4
#define DS_STREAM_WINDOW_MAX  16
#define DS_STREAM_CHUNK_BYTES 65536 /* in-process slices; remote chunks are OAP/1 frames */

enum ds_stream_status {
    DS_STREAM_OK = 0,
    DS_STREAM_TRUNCATED = -1, /* the answer broke off or was malformed mid-body */
    DS_STREAM_LOST = -2,      /* the connection to the service was lost */
    DS_STREAM_DEADLINE = -3,  /* no progress from the producer within the budget */
    DS_STREAM_NOMEM = -4,     /* no memory for the next chunk */
};

struct ds_stream_cbs {
    void (*on_head)(void *arg, struct ds_resp *head);
    void (*on_chunk)(void *arg, const uint8_t *p, size_t n, void *chunk_owner);
    void (*on_end)(void *arg, int status);
};

/* Start a streamed call (see above); req->idempotent and coalesce are
 * ignored. cbs is copied. Returns a handle for ds_cancel, or NULL when the
 * call could not be created (no callback will run). */
struct ds_call *ds_call_stream(struct ds_worker *dw, const struct ds_req *req,
                               const struct ds_stream_cbs *cbs, void *arg);

/* The consumer is done with a chunk's bytes. NULL is a no-op. */
void ds_chunk_done(void *chunk_owner);

/* Take ownership of resp beyond the callback (copies the struct). */
struct ds_resp *ds_resp_keep(const struct ds_resp *resp);
void ds_resp_free(struct ds_resp *resp);

/* Process start-up: create the engines (micronode) or check the addresses
 * (macronode), and per-worker state for nworkers loops (worker ids 0 ..
 * nworkers - 1). Returns 0 or -1 with a message on stderr. */
int ds_start(const struct og_config *cfg, int nworkers);
/* Whether a worker has drained (no client connection left while the
 * server drains): its remote pools close then, so its loop can end. */
typedef bool (*ds_drained_fn)(void *arg);

/* Per worker, on its thread before its loop runs: the downstream handle of
 * worker id (0 .. nworkers - 1 of ds_start) whose calls, timers and pools
 * run on loop. cfg is where the worker keeps its current configuration
 * snapshot, read at each use (so a reload reaches ds/ with no call);
 * drained(arg) is asked once per pool tick (NULL: never drained). Returns
 * the handle, which lives until ds_stop; handlers get it from their context
 * (http_ctx.ds). ds/ knows nothing else of the worker. */
struct ds_worker *ds_worker_init(int id, struct uv_loop_s *loop, const struct og_config *const *cfg,
                                 ds_drained_fn drained, void *arg);
void ds_stop(void);

/* Whether all three downstreams are in process. */
bool ds_is_micronode(void);
const char *ds_service_name(enum ds_service s);

/* Micronode only: the in-process engines, for demo data seeding. */
struct engines *ds_local_engines(void);

#endif
