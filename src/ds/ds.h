/*
 * ds.h — the downstream interface: one call shape for index, storage and
 * mailbox, whether they run in process (micronode) or behind OAP/1 sockets
 * (macronode). A handler cannot tell the two apart (DESIGN §2).
 *
 * A call is an app-protocol request (engines/proto/proto.h): a header JSON
 * object with "op" and its fields, and an optional body. The downstream
 * layer adds the caller's remaining deadline ("deadline_ms"), enforces the
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

struct worker;
struct og_config;

enum ds_service { DS_INDEX, DS_STORAGE, DS_MAILBOX, DS__COUNT };

/* A finished call. Valid only during the callback unless ds_resp_keep() was
 * called; then the caller owns it and frees it with ds_resp_free(). */
struct ds_resp {
    int code;          /* app status (200, 206, 404, ...), or 0 on transport failure */
    enum og_err err;   /* when code == 0: DOWNSTREAM_TIMEOUT, BUSY (shed), BAD_GATEWAY */
    const char *hdr;   /* response header JSON (not NUL-terminated) */
    size_t hdr_len;
    const uint8_t *body;
    size_t body_len;
    double latency_ms; /* this hop, all attempts */
    int attempts;
    bool coalesced;    /* served by another caller's identical read */
    /* owner of hdr/body: opaque, released by ds_resp_free */
    void *owner;
    void (*release)(void *owner);
};

typedef void (*ds_cb)(void *arg, struct ds_resp *resp);

struct ds_req {
    enum ds_service svc;
    const char *op;      /* metric label: "get", "resolve", ... (static string) */
    const char *hdr;     /* header JSON object, without deadline_ms */
    size_t hdr_len;
    const void *body;    /* borrowed until the callback */
    size_t body_len;
    uint64_t deadline_ms; /* loop time (uv_now) at which the caller gives up */
    bool idempotent;     /* reads: may be retried, hedged and coalesced */
    /* For coalescing storage reads: address + range key, or NULL. */
    const char *coalesce_key;
    size_t coalesce_key_len;
};

struct ds_call;

/* Start a call on worker w. Returns a handle (for ds_cancel) or NULL when the
 * call could not even be queued; in every case cb runs exactly once, later,
 * unless the call is cancelled first. */
struct ds_call *ds_call(struct worker *w, const struct ds_req *req, ds_cb cb, void *arg);

/* The caller no longer wants the answer: cb will not run. */
void ds_cancel(struct ds_call *c);

/* Take ownership of resp beyond the callback (copies the struct). */
struct ds_resp *ds_resp_keep(const struct ds_resp *resp);
void ds_resp_free(struct ds_resp *resp);

/* Process start-up: create the engines (micronode) or check the addresses
 * (macronode). Returns 0 or -1 with a message on stderr. */
int ds_start(const struct og_config *cfg);
/* Per worker, before its loop runs: pools, timers, coalescing table. */
void ds_worker_init(struct worker *w);
void ds_stop(void);

/* Whether all three downstreams are in process. */
bool ds_is_micronode(void);
const char *ds_service_name(enum ds_service s);

/* Micronode only: the in-process engines, for demo data seeding. */
struct engines *ds_local_engines(void);

#endif
