/*
 * internal.h — between the downstream core (call.c and the policy files
 * around it) and its backends (local.c: in-process engines; remote.c:
 * OAP/1 connection pools). Not included from outside src/ds/ (and its unit
 * tests).
 */
#ifndef DS_INTERNAL_H
#define DS_INTERNAL_H

#include <uv.h>

#include "config/config.h"
#include "ds/ds.h"
#include "ds/retry.h"
#include "http/request-t.h"

/* Shared ownership of a response's bytes (coalesced callers share one). */
struct ds_owner {
    int refs; /* worker-local: only the owning worker touches it */
    void *p;
    void (*release)(void *p);
};

/*
 * A chunk of a stream held by the consumer (the chunk_owner of on_chunk).
 * The backend allocates it with its bytes and sets release, which frees
 * both; ds core links it to its call while the call runs (so a release can
 * give credit back) and cuts the link when the call ends (so a release
 * after the end touches only the chunk).
 */
struct ds_chunk {
    struct ds_call *c; /* NULL once the call ended */
    struct ds_chunk *next;
    void (*release)(struct ds_chunk *ch);
};

/* A worker's downstream state and handle, one per worker loop
 * (ds_worker_init): what ds/ needs of the worker (its loop, its config
 * snapshot, its index, whether it drained), the core's coalescing table
 * and PRNG, and each backend's per-worker part. Worker-local. */
struct rworker;
struct local_worker;
struct ds_worker {
    int id;                             /* worker index: picks per-worker shards */
    uv_loop_t *loop;                    /* calls, timers and pools run here */
    const struct og_config *const *cfg; /* the worker's current snapshot (ds__cfg) */
    ds_drained_fn drained;              /* NULL: never drained */
    void *drained_arg;
    struct ds_call *coalesce_head; /* reads in flight here (coalesce.c) */
    struct retry_rng rng;          /* retry jitter (retry.c), seeded by ds_worker_init */
    struct rworker *remote;        /* connection pools (remote.c), NULL before use */
    struct local_worker *local;    /* in-process engine queue (local.c) */
    bool prober;                   /* runs the endpoints' health probes (the admin loop's) */
};

/* dw's configuration snapshot now. */
static inline const struct og_config *ds__cfg(const struct ds_worker *dw)
{
    return *dw->cfg;
}

struct ds_call {
    struct ds_worker *dw; /* the worker the call runs on */
    struct ds_req req;    /* copy; the strings of req.op are in op_mem, req.body in body_copy */
    char corr_id[HTTP_CORR_ID_MAX + 1]; /* X-Corr-ID travelling on to remote services */
    void *body_copy;                    /* the caller's body, owned */
    char *wire_hdr; /* remote backend: header JSON as sent, deadline_ms first; freed with c */
    size_t wire_hdr_len;
    ds_cb cb;
    void *arg;
    uint64_t t0_ns;
    uint64_t backoff_until_ms; /* 0 unless waiting to retry */
    int attempts;
    bool cancelled;
    bool finished;
    bool counted;         /* holds a slot of the per-downstream limit */
    bool in_attempt;      /* a backend attempt is outstanding */
    bool shed;            /* refused by the concurrency limit */
    bool send_failed;     /* the backend could not start the attempt: */
    enum og_err send_err; /* ...BAD_GATEWAY, or INTERNAL (out of memory) */
    bool is_hedge;        /* a hedged twin attempt of another call */
    uint64_t hedge_at_ms; /* 0, or when to start a hedged twin */
    struct ds_call *twin; /* the hedged attempt in flight, if any */
    /* Endpoint sets (remote backend, ds/balance.h): endpoints this call's
     * attempts used (a hedge twin inherits them), the current attempt's
     * and the latest one's, as index + 1 (0: none). */
    uint32_t ep_tried;
    uint8_t ep_at, ep_last;
    uv_timer_t timer;       /* deadline and retry backoff */
    struct ds_call *leader; /* coalesced: the call whose answer we share */
    struct ds_call *followers, *next_follower;
    struct ds_call *qnext; /* backend queue link (the backend's to use) */
    struct ds_call *cnext; /* coalescing list link (ds core) */
    void *bstate;          /* backend's per-attempt state */
    /* Streams (ds_call_stream). */
    bool stream;
    bool head_done; /* on_head ran with an answer */
    struct ds_stream_cbs scbs;
    unsigned window;         /* chunks the consumer may hold */
    unsigned held;           /* chunks the consumer holds now */
    struct ds_chunk *chunks; /* those chunks */
    uint64_t stall_ms;       /* producer progress budget after the head */
    void *bstream;           /* backend's stream state */
    uint64_t op_mem[];       /* req.op's strings and ids (proto_op_copy) */
};

/* A backend starts one attempt of c (c->req.op, c->req.body) and later
 * calls ds__attempt_done exactly once, unless ds core calls abort first.
 * send returns 0, or a negative value if the attempt could not start (then
 * ds__attempt_done must not be called): DS_SEND_NOMEM when it ran out of
 * memory (the call fails INTERNAL), any other when the service cannot be
 * reached (BAD_GATEWAY, which an idempotent call may retry). The core
 * answers either on a later turn. Both run on c->dw's loop. */
#define DS_SEND_NOMEM (-2)
#define DS_SEND_BUSY  (-3) /* every endpoint is at its concurrency share: BUSY, not retried */
struct ds_backend {
    const char *name;
    int (*send)(struct ds_call *c);
    void (*abort)(struct ds_call *c);
    void (*worker_init)(struct ds_worker *dw, enum ds_service svc);
    /* A stream's consumer released one chunk of c, which is still running:
     * the backend may let the producer send one more. Never delivers a
     * chunk from inside (the consumer may be in its own callback). */
    void (*consumed)(struct ds_call *c);
    bool (*healthy)(enum ds_service svc); /* for /readyz; any thread */
    /* Whether another endpoint could still answer c (one its attempts
     * have not tried): a storage read's 404 is then tried there. NULL: a
     * backend of one endpoint. */
    bool (*untried)(const struct ds_call *c);
};

/* resp->owner/release describe the bytes; the core takes them over. A
 * transport failure is code 0 with err set (BAD_GATEWAY: connection lost or
 * malformed answer; BUSY: no capacity). */
void ds__attempt_done(struct ds_call *c, struct ds_resp *resp);

/*
 * Streams. A backend sees c->stream and, instead of one whole answer,
 * delivers a head, then chunks, then an end, each at most once per call and
 * in that order. ds__attempt_done stays the way to fail a stream (code 0):
 * before the head the consumer gets on_head with the error; after it,
 * on_end(DS_STREAM_LOST, or DEADLINE for DOWNSTREAM_TIMEOUT). A whole
 * answer passed to ds__attempt_done is delivered as head, one chunk (the
 * body, zero copy) and end: the way a one-frame answer of a small object
 * reaches a stream.
 *
 * ds__stream_head: the answer's status and header JSON (copied). Returns
 * whether the call still wants its body (false: it was cancelled or ended).
 * ds__stream_chunk: takes ch in every case (n > 0); returns as above.
 * ds__stream_end: the last callback; the backend must have let go of c.
 */
bool ds__stream_head(struct ds_call *c, int code, const char *hdr, size_t hdr_len);
bool ds__stream_chunk(struct ds_call *c, struct ds_chunk *ch, const uint8_t *p, size_t n);
void ds__stream_end(struct ds_call *c, int status);

/* App protocol id of a service (OAP_APP_*). */
uint16_t ds__app_id(enum ds_service s);

/* Metric label of each service ("index", "storage", "mailbox"). */
extern const char *const ds__service_names[DS__COUNT];

/* The in-process engines (local.c) of the services cfg gives no address:
 * created by ds__local_start at process start-up (0, or -1 with a message
 * on stderr), freed by ds__local_stop once the workers are gone. */
int ds__local_start(const struct og_config *cfg);
void ds__local_stop(void);

extern const struct ds_backend ds__local_backend;
extern const struct ds_backend ds__remote_backend;

/* Remote backend configuration, set by ds_start: pool size per worker and
 * endpoint. ds__remote_start parses the endpoint set of each service cfg
 * gives an address (0, or -1 with a message on stderr). */
extern int ds__remote_pool_size;
int ds__remote_start(const struct og_config *cfg);

#endif
