/*
 * hctx.h — what every route handler that calls downstreams needs, once:
 * the link to its request, the cancel hook, the calls in flight, the hop
 * timings, the answer when a call failed, and the mapping of a downstream
 * answer to the status vocabulary (core/status.h).
 *
 * A handler embeds struct hctx as the first member of its heap context and a
 * struct hctx_call per downstream call it makes:
 *
 *     struct one_ctx { struct hctx h; struct hctx_call call; };
 *
 *     hctx_init(&c->h, req, NULL);               // cancel hook registered
 *     if (hctx_call(&c->h, &c->call, &dr, "index", one_on_resp) != 0)
 *         hctx_fail(&c->h, OG_E_INTERNAL, NULL);  // context released, 500
 *     ...
 *     static void one_on_resp(struct hctx_call *call, struct ds_resp *r) {
 *         struct http_req *req = hctx_end(call->h); // context released
 *         http_respond(req, ...);
 *     }
 *
 * If the client goes away or the request times out first, every call still
 * in flight is cancelled and the context released; no callback runs.
 *
 * This sits between the routes (src/view, src/media) and the layers they use
 * (src/http for the request, src/ds for calls): neither of those should know
 * the other, and the routes should not borrow from each other.
 */
#ifndef HANDLER_HCTX_H
#define HANDLER_HCTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "ds/ds.h"
#include "http/request-t.h"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

struct hctx;
struct hctx_call;
struct og_config;

/* Releases the context that embeds h (default: free(h), h being first). */
typedef void (*hctx_release_fn)(struct hctx *h);
/* A call's answer; the call is over (c->call is NULL) and its hop recorded. */
typedef void (*hctx_resp_fn)(struct hctx_call *c, struct ds_resp *r);

struct hctx_call {
    struct hctx *h;
    struct ds_call *call; /* in flight, or NULL */
    const char *hop;      /* label in the request's hop list (static string) */
    hctx_resp_fn on_resp;
    struct hctx_call *next; /* the calls started, for cancelling */
};

struct hctx {
    struct http_req *req;
    hctx_release_fn release;
    struct hctx_call *calls;
    unsigned pending; /* calls in flight plus holds (hctx_hold) */
};

/* Start handling req with h: registers the cancel hook (client gone or
 * request timeout → calls cancelled, release(h)). release NULL means free(h). */
void hctx_init(struct hctx *h, struct http_req *req, hctx_release_fn release);

/* Start call c (in memory owned by h's context; unused, or used by h for an
 * earlier call that has answered) for dr;
 * the request's correlation id is filled in. The answer goes to cb and its
 * latency to the hop list under `hop`. Returns 0, or -1 when the call could
 * not even be queued (cb will not run). */
int hctx_call(struct hctx *h, struct hctx_call *c, const struct ds_req *dr, const char *hop,
              hctx_resp_fn cb);

/* Fan-out: hold h busy while starting several calls, so that an early answer
 * cannot find nothing pending; hctx_drop returns true when nothing is pending
 * any more (the caller finishes). hctx_idle says the same in a callback. */
static inline void hctx_hold(struct hctx *h)
{
    h->pending++;
}
static inline bool hctx_drop(struct hctx *h)
{
    return --h->pending == 0;
}
static inline bool hctx_idle(const struct hctx *h)
{
    return h->pending == 0;
}

/* The handler answers now: cancels calls still in flight, unhooks the cancel
 * hook, releases the context. Returns the request, for the answer. */
struct http_req *hctx_end(struct hctx *h);

/* hctx_end, then answer e with reason (NULL: the status's default). */
void hctx_fail(struct hctx *h, enum og_err e, const char *reason);

/* hctx_end, then answer a failed call r with the status of its cause and
 * the reason "WHAT: <cause>"; a 404 is answered without a reason. */
void hctx_fail_call(struct hctx *h, const struct ds_resp *r, const char *what);

/* The status a failed downstream answer maps to: a transport failure keeps
 * its timeout or busy cause (else bad gateway); an app status 404 is
 * not_found, 504 downstream_timeout, 429 or 503 busy, anything else
 * bad_gateway. code 0 means no answer, with err the cause. */
enum og_err hctx_call_err(int code, enum og_err err);

/* Loop time at which a downstream hop gives up: inside the request budget,
 * keeping a tenth of the request timeout (2 to 100 ms) back so a late part
 * ends as that part's timeout and a partial answer can still be sent before
 * the request timeout answers 504 (DESIGN §6). */
uint64_t hctx_hop_deadline(const struct http_req *req);

/* The configuration a handler runs with, and its worker's downstream
 * handle (for ds_call). */
const struct og_config *hctx_cfg(const struct http_req *req);
struct ds_worker *hctx_ds(const struct http_req *req);

/* A name or channel in a path: 1..255 of [A-Za-z0-9._:-]. */
#define HCTX_NAME_MAX 255
bool hctx_name_ok(struct slice s);
/* Whether req's path parameter is such a name; if not, answers 400 saying
 * "WHAT must be ..." and returns false. */
bool hctx_name_check(struct http_req *req, const char *what);

#endif
