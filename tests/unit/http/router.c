/*
 * router.c — template matching and the Allow text of a 405.
 */
#include <criterion/criterion.h>
#include <llhttp.h>
#include <string.h>

#include "http/router.h"

static void h_a(struct http_req *r)
{
    (void)r;
}

static const struct route ROUTES[] = {
    {"/healthz", M_GET | M_HEAD, h_a, 0},         {"/v1/view/{name}", M_GET, h_a, 0},
    {"/v1/obj/{id}/meta", M_GET | M_PUT, h_a, 0}, {"/v1/put", M_POST, h_a, 0},
    {"/v1/view/{name}", M_DELETE, h_a, 1}, /* same template, later row */
};
static const struct router R = {ROUTES, sizeof(ROUTES) / sizeof(ROUTES[0]), {0}};

static enum router_result match(const char *path, int method, const struct route **rt,
                                struct slice *param)
{
    return router_match(&R, (struct slice){path, strlen(path)}, method, rt, param);
}

Test(router, literal_and_param_templates)
{
    const struct route *rt;
    struct slice p;
    cr_assert_eq(match("/healthz", HTTP_GET, &rt, &p), ROUTE_OK);
    cr_assert_eq(rt, &ROUTES[0]);
    cr_assert_eq(p.n, 0);
    cr_assert_eq(match("/healthz", HTTP_HEAD, &rt, &p), ROUTE_OK);

    cr_assert_eq(match("/v1/view/home", HTTP_GET, &rt, &p), ROUTE_OK);
    cr_assert_eq(rt, &ROUTES[1]);
    cr_assert(slice_eq(p, "home", 4));

    cr_assert_eq(match("/v1/obj/abc123/meta", HTTP_PUT, &rt, &p), ROUTE_OK);
    cr_assert_eq(rt, &ROUTES[2]);
    cr_assert(slice_eq(p, "abc123", 6));

    /* a later row with the same template serves its own method */
    cr_assert_eq(match("/v1/view/home", HTTP_DELETE, &rt, &p), ROUTE_OK);
    cr_assert_eq(rt, &ROUTES[4]);
}

Test(router, not_found)
{
    const struct route *rt = ROUTES;
    struct slice p;
    static const char *const miss[] = {
        "/",
        "/healthz/",
        "/healthzz",
        "/HEALTHZ",
        "/health",
        "/v1/view",
        "/v1/view/",
        "/v1/view/a/b",
        "/v1/obj//meta",
        "/v1/obj/a/b/meta",
        "/v1/obj/a/met",
        "/v1/obj/a/metax",
        "/x/v1/view/a",
        "",
    };
    for (size_t i = 0; i < sizeof(miss) / sizeof(miss[0]); i++) {
        cr_assert_eq(match(miss[i], HTTP_GET, &rt, &p), ROUTE_NOT_FOUND, "%s", miss[i]);
        cr_assert_null(rt, "%s", miss[i]);
    }
}

Test(router, wrong_method_gives_the_route)
{
    const struct route *rt;
    struct slice p;
    cr_assert_eq(match("/healthz", HTTP_POST, &rt, &p), ROUTE_METHOD);
    cr_assert_eq(rt, &ROUTES[0]);
    cr_assert_eq(match("/v1/put", HTTP_GET, &rt, &p), ROUTE_METHOD);
    cr_assert_eq(rt, &ROUTES[3]);
    /* Allow lists the methods of every row sharing the template */
    cr_assert_eq(match("/v1/view/x", HTTP_POST, &rt, &p), ROUTE_METHOD);
    cr_assert_eq(router_allowed(&R, (struct slice){"/v1/view/x", 10}), M_GET | M_DELETE);
    cr_assert_eq(router_allowed(&R, (struct slice){"/healthz", 8}), M_GET | M_HEAD);
    cr_assert_eq(router_allowed(&R, (struct slice){"/nope", 5}), 0);
    /* methods outside the M_* set never match */
    cr_assert_eq(match("/healthz", HTTP_TRACE, &rt, &p), ROUTE_METHOD);
    cr_assert_eq(router_method_bit(HTTP_TRACE), 0);
    cr_assert_eq(router_method_bit(HTTP_PATCH), M_PATCH);
}

Test(router, allow_text)
{
    char out[64];
    size_t n = router_allow(M_GET | M_HEAD, out, sizeof(out));
    cr_assert_str_eq(out, "GET, HEAD");
    cr_assert_eq(n, 9);
    n = router_allow(M_POST, out, sizeof(out));
    cr_assert_str_eq(out, "POST");
    n = router_allow(M_GET | M_HEAD | M_POST | M_PUT | M_DELETE | M_OPTIONS | M_PATCH, out,
                     sizeof(out));
    cr_assert_str_eq(out, "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH");
    cr_assert_eq(n, strlen(out));
    n = router_allow(0, out, sizeof(out));
    cr_assert_eq(n, 0);
    cr_assert_str_eq(out, "");
    /* a short buffer keeps whole names only, always terminated */
    n = router_allow(M_GET | M_HEAD | M_POST, out, 12);
    cr_assert_str_eq(out, "GET, HEAD");
    cr_assert_eq(n, 9);
}
