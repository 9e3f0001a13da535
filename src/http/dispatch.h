/*
 * dispatch.h — from a parsed request to its handler: routing, admission, the
 * route's gate, then the handler.
 *
 * The transport calls http_dispatch_head() as soon as a request's head is
 * parsed — before its body is read, so a refused request's body is never
 * buffered and a client that sent Expect: 100-continue gets the refusal
 * instead of 100 Continue — and http_dispatch_run() once the body is read
 * too. The steps, in order (dispatch.c):
 *   1. ids        X-Request-ID and X-Corr-ID
 *   2. route      404 without a route, 405 (with Allow) for another method
 *   3. admission, before the gate: the instance rate (hooks->before_gate)
 *   4. gate       routes with non-zero flags: capability and policy (auth/)
 *   5. admission, after the gate: per-tenant rate, degraded mode, an
 *      inflight slot or a place in a fair queue (hooks->enter)
 *   6. handler    the route's function, which owns req until it answers
 * The admission hooks are src/admit/'s; a new limit that refuses requests
 * before any handler runs belongs there. The admin listener is exempt.
 */
#ifndef HTTP_DISPATCH_H
#define HTTP_DISPATCH_H

#include <stdbool.h>

#include "http/request-t.h"

/* Checks a routed request whose route has non-zero flags before its handler;
 * answers and returns false to stop it, returns true to go on. */
typedef bool (*http_gate_fn)(struct http_req *req);

/* Start-up, before any worker runs: the gate for flagged routes (NULL: none). */
void http_dispatch_set_gate(http_gate_fn gate);

enum http_admit {
    HTTP_ADMIT_GO,       /* go on: read the body, run the handler */
    HTTP_ADMIT_ANSWERED, /* refused and answered: req is the transport's again */
    HTTP_ADMIT_WAIT,     /* parked: the admission layer answers it or calls
                          * http_dispatch_resume() later */
};

struct http_admission {
    /* Before the gate (cheap refusals that need no identity): true to go on,
     * false when req was answered. */
    bool (*before_gate)(struct http_req *req);
    /* After the gate (req->klass and req->tenant are known). */
    enum http_admit (*enter)(struct http_req *req);
    /* Once per request that went through enter, when it is accounted
     * (answered or abandoned, queued or not). */
    void (*leave)(struct http_req *req);
};

/* Start-up, before any worker runs (NULL: admit everything). */
void http_dispatch_set_admission(const struct http_admission *a);

/* Steps 1–5 for req, whose head is parsed (req->ctx and req->conn set,
 * keep_alive and close_after as the transport decided, body_pending when a
 * body is still to be read). */
enum http_admit http_dispatch_head(struct http_req *req);

/* Step 6: the handler of an admitted request whose body is read. req is
 * answered, or owned by the handler, when this returns. */
void http_dispatch_run(struct http_req *req);

/* Both at once, for a request whose body is already read (tests, tools). */
void http_dispatch(struct http_req *req);

/* Admission layer: a parked request may go on (the transport's resume op). */
void http_dispatch_resume(struct http_req *req);

/* A handler that will wait a long time for an outside event (a parked
 * long-poll) gives back its admission slot now: waiting is not serving. */
void http_dispatch_detach(struct http_req *req);

/* Requests admitted and not answered yet, over all workers (gauge, drain). */
long http_dispatch_inflight(void);

/* Response writer, once per request when it is accounted: give back what
 * admission took for req. */
void http__admit_leave(struct http_req *req);

#endif
