/*
 * dispatch.h — from a parsed request to its handler: routing, admission, the
 * route's gate, then the handler.
 *
 * The transport calls http_dispatch() once per request whose head and body
 * are read; everything after that is the request layer's. The steps, in
 * order (dispatch.c):
 *   1. ids        X-Request-ID and X-Corr-ID
 *   2. route      404 without a route, 405 (with Allow) for another method
 *   3. admission  the global inflight cap; the admin listener is exempt
 *   4. gate       routes with non-zero flags: capability and policy (auth/)
 *   5. handler    the route's function, which owns req until it answers
 * A new limit that refuses requests before any handler runs belongs in
 * step 3 (admit_enter in dispatch.c), where src/admit/ plugs in.
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

/* Route and run req (req->ctx and req->conn set, keep_alive and
 * close_after as the transport decided). req is answered, or owned by a
 * handler, when this returns. */
void http_dispatch(struct http_req *req);

/* Requests admitted and not answered yet, over all workers (gauge, drain). */
long http_dispatch_inflight(void);

/* Response writer, once per request when it is accounted: give back what
 * admission took for req. */
void http__admit_leave(struct http_req *req);

#endif
