/*
 * router.c — route tables: set-up and template matching.
 */
#include "http/router.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/metrics.h"

void router_setup(struct router *r, const struct route *routes, size_t n)
{
    if (n > ROUTER_ROUTES_MAX) {
        fprintf(stderr, "omnigate: route table too large\n");
        exit(1);
    }
    r->routes = routes;
    r->n = n;
    for (size_t i = 0; i < n; i++)
        r->label_ids[i] = metrics_route_label(routes[i].tmpl);
}

unsigned router_method_bit(int m)
{
    switch (m) {
    case HTTP_GET: return M_GET;
    case HTTP_HEAD: return M_HEAD;
    case HTTP_POST: return M_POST;
    case HTTP_PUT: return M_PUT;
    case HTTP_DELETE: return M_DELETE;
    case HTTP_OPTIONS: return M_OPTIONS;
    case HTTP_PATCH: return M_PATCH;
    default: return 0;
    }
}

static int match_one(const char *tmpl, struct slice path, struct slice *param)
{
    const char *open = strchr(tmpl, '{');
    if (open == NULL) {
        *param = (struct slice){NULL, 0};
        return slice_eq(path, tmpl, strlen(tmpl));
    }
    const char *close = strchr(open, '}');
    size_t pre = (size_t)(open - tmpl);
    const char *suf = close + 1;
    size_t sufn = strlen(suf);
    if (path.n <= pre + sufn || memcmp(path.p, tmpl, pre) != 0 ||
        memcmp(path.p + path.n - sufn, suf, sufn) != 0)
        return 0;
    struct slice mid = {path.p + pre, path.n - pre - sufn};
    if (memchr(mid.p, '/', mid.n) != NULL)
        return 0;
    *param = mid;
    return 1;
}

enum router_result router_match(const struct router *r, struct slice path, int method,
                                const struct route **out, struct slice *param)
{
    unsigned bit = router_method_bit(method);
    const struct route *path_hit = NULL;
    for (size_t i = 0; i < r->n; i++) {
        struct slice p;
        if (!match_one(r->routes[i].tmpl, path, &p))
            continue;
        if (r->routes[i].methods & bit) {
            *out = &r->routes[i];
            *param = p;
            return ROUTE_OK;
        }
        if (path_hit == NULL)
            path_hit = &r->routes[i];
    }
    *out = path_hit;
    return path_hit ? ROUTE_METHOD : ROUTE_NOT_FOUND;
}

unsigned router_allowed(const struct router *r, struct slice path)
{
    unsigned bits = 0;
    struct slice p;
    for (size_t i = 0; i < r->n; i++)
        if (match_one(r->routes[i].tmpl, path, &p))
            bits |= r->routes[i].methods;
    return bits;
}

size_t router_allow(unsigned methods, char *out, size_t cap)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < 7; i++) {
        if (!(methods & (1u << i)))
            continue;
        int k = snprintf(out + n, cap - n, "%s%s", n ? ", " : "", names[i]);
        if (k < 0 || (size_t)k >= cap - n) {
            out[n] = '\0'; /* whole names only */
            break;
        }
        n += (size_t)k;
    }
    return n;
}
