/*
 * router.h — routes keyed by templates (so metrics say /v1/view/{name}).
 *
 * A template is a literal path, or a prefix + one "{param}" + optional
 * suffix; the parameter matches one non-empty path segment. Tables are
 * static arrays built at start-up and read-only afterwards.
 */
#ifndef HTTP_ROUTER_H
#define HTTP_ROUTER_H

#include <stddef.h>

#include "core/buf.h"
#include "http/request-t.h"

typedef void (*http_handler_fn)(struct http_req *req);

/* Method bits. */
enum {
    M_GET = 1 << 0,
    M_HEAD = 1 << 1,
    M_POST = 1 << 2,
    M_PUT = 1 << 3,
    M_DELETE = 1 << 4,
    M_OPTIONS = 1 << 5,
    M_PATCH = 1 << 6,
};

struct route {
    const char *tmpl; /* "/v1/view/{name}" */
    unsigned methods; /* M_* bits */
    http_handler_fn fn;
    unsigned flags; /* route-specific, e.g. needs a capability */
};

#define ROUTER_ROUTES_MAX 48

struct router {
    const struct route *routes;
    size_t n;
    int label_ids[ROUTER_ROUTES_MAX]; /* metric label id of each route */
};

enum router_result { ROUTE_OK, ROUTE_NOT_FOUND, ROUTE_METHOD };

/* Start-up: r serves routes[0 .. n), each with its route label registered
 * for the metrics. More than ROUTER_ROUTES_MAX rows exits (a build bug). */
void router_setup(struct router *r, const struct route *routes, size_t n);

/* M_* bit of an llhttp method, 0 for others. */
unsigned router_method_bit(int llhttp_method);

/* Match path and method. On ROUTE_OK sets *out and *param; on ROUTE_METHOD
 * sets *out to the matching route (for Allow); *out is NULL otherwise. */
enum router_result router_match(const struct router *r, struct slice path, int method,
                                const struct route **out, struct slice *param);

/* Methods of every route whose template matches path (several rows may share
 * a template, one per handler): the Allow set of a 405. */
unsigned router_allowed(const struct router *r, struct slice path);

/* Write the Allow header value for a route's methods ("GET, HEAD"). */
size_t router_allow(unsigned methods, char *out, size_t cap);

#endif
