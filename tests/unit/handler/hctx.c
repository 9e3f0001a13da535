/*
 * The handler context (src/handler/hctx.c): the mapping of a downstream
 * answer to a status, path names, and the cancel hook's lifecycle (without
 * a loop: no call is started).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "handler/hctx.h"
#include "http/request-t.h"

Test(hctx, call_err_maps_every_cause)
{
    /* No answer: the transport's cause, if it is one a client can act on. */
    cr_assert_eq(hctx_call_err(0, OG_E_DOWNSTREAM_TIMEOUT), OG_E_DOWNSTREAM_TIMEOUT);
    cr_assert_eq(hctx_call_err(0, OG_E_BUSY), OG_E_BUSY);
    cr_assert_eq(hctx_call_err(0, OG_E_BAD_GATEWAY), OG_E_BAD_GATEWAY);
    cr_assert_eq(hctx_call_err(0, OG_E_INTERNAL), OG_E_BAD_GATEWAY);
    cr_assert_eq(hctx_call_err(0, OG_E_NOT_FOUND), OG_E_BAD_GATEWAY);
    /* An answer: its status. */
    cr_assert_eq(hctx_call_err(404, OG_E_BAD_REQUEST), OG_E_NOT_FOUND);
    cr_assert_eq(hctx_call_err(504, OG_E_BAD_REQUEST), OG_E_DOWNSTREAM_TIMEOUT);
    cr_assert_eq(hctx_call_err(429, OG_E_BAD_REQUEST), OG_E_BUSY);
    cr_assert_eq(hctx_call_err(503, OG_E_BAD_REQUEST), OG_E_BUSY);
    static const int OTHER[] = {200, 206, 400, 409, 413, 500, 502, 507};
    for (size_t i = 0; i < sizeof(OTHER) / sizeof(OTHER[0]); i++)
        cr_assert_eq(hctx_call_err(OTHER[i], OG_E_BAD_REQUEST), OG_E_BAD_GATEWAY, "%d", OTHER[i]);
}

static struct slice sl(const char *s)
{
    return (struct slice){s, strlen(s)};
}

Test(hctx, name_ok)
{
    cr_assert(hctx_name_ok(sl("a")));
    cr_assert(hctx_name_ok(sl("home.page_v2:en-GB")));
    cr_assert(!hctx_name_ok(sl("")));
    cr_assert(!hctx_name_ok(sl("a/b")));
    cr_assert(!hctx_name_ok(sl("a b")));
    cr_assert(!hctx_name_ok(sl("%41")));
    char max[HCTX_NAME_MAX + 2];
    memset(max, 'x', sizeof(max));
    cr_assert(hctx_name_ok((struct slice){max, HCTX_NAME_MAX}));
    cr_assert(!hctx_name_ok((struct slice){max, HCTX_NAME_MAX + 1}));
}

struct owner {
    struct hctx h;
    int released;
};

static int releases;

static void owner_release(struct hctx *h)
{
    container_of(h, struct owner, h)->released++;
    releases++;
}

Test(hctx, cancel_hook_releases_once)
{
    struct http_req req;
    struct owner o = {0};
    memset(&req, 0, sizeof(req));
    releases = 0;
    hctx_init(&o.h, &req, owner_release);
    cr_assert_eq(req.hdata, &o.h);
    cr_assert_not_null(req.on_cancel);
    req.on_cancel(&req); /* the client went away */
    cr_assert_eq(o.released, 1);
    cr_assert_eq(releases, 1);
    cr_assert_null(req.on_cancel);
}

Test(hctx, end_unhooks_and_hold_counts)
{
    struct http_req req;
    struct owner o = {0};
    memset(&req, 0, sizeof(req));
    hctx_init(&o.h, &req, owner_release);
    hctx_hold(&o.h);
    hctx_hold(&o.h);
    cr_assert(!hctx_idle(&o.h));
    cr_assert(!hctx_drop(&o.h));
    cr_assert(hctx_drop(&o.h));
    cr_assert(hctx_idle(&o.h));
    cr_assert_eq(hctx_end(&o.h), &req);
    cr_assert_null(req.on_cancel);
    cr_assert_eq(o.released, 1);
}
