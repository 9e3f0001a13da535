/*
 * hello.c — HELLO payload encode/parse/negotiate edge cases.
 */
#include "oap/hello.h"
#include "oap/oap.h"
#include "vec.h"

static int parse(const char *s, struct oap_hello *h)
{
    return oap_hello_parse(h, s, strlen(s));
}

Test(oap_hello, defaults_roundtrip)
{
    struct oap_hello h, g;
    char buf[128];

    oap_hello_defaults(&h);
    ssize_t n = oap_hello_encode(&h, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq(memcmp(buf,
                        "{\"max_frame\":1048576,\"max_inflight\":64,\"flags\":255,"
                        "\"versions\":[1]}",
                        (size_t)n),
                 0);
    cr_assert_eq(oap_hello_parse(&g, buf, (size_t)n), 0);
    cr_assert_eq(g.max_frame, h.max_frame);
    cr_assert_eq(g.max_inflight, h.max_inflight);
    cr_assert_eq(g.flags, h.flags);
    cr_assert_eq(g.versions, h.versions);
    cr_assert_eq(oap_hello_encode(&h, buf, 20), OAP_E_BUF_SMALL);
    h.max_frame = 10;
    cr_assert_eq(oap_hello_encode(&h, buf, sizeof(buf)), OAP_E_BAD_HELLO);
}

Test(oap_hello, parse_rules)
{
    struct oap_hello h;

    cr_assert_eq(parse("{\"max_frame\":4096}", &h), 0);
    cr_assert_eq(h.max_inflight, 64, "default");
    cr_assert_eq(h.flags, 255);
    cr_assert_eq(h.versions, 1);
    cr_assert_eq(parse("{\"max_frame\":4096,\"versions\":[1,2,99],\"x\":{}}", &h), 0);
    cr_assert_eq(h.versions, 3, "unknown keys and versions > 32 ignored");
    const char *bad[] = {
        "",
        "[]",
        "{}",
        "{\"max_frame\":37}",
        "{\"max_frame\":1048577}",
        "{\"max_frame\":\"4096\"}",
        "{\"max_frame\":4096,\"max_frame\":4096}",
        "{\"max_frame\":4096,\"max_inflight\":0}",
        "{\"max_frame\":4096,\"flags\":256}",
        "{\"max_frame\":4096,\"versions\":[]}",
        "{\"max_frame\":4096,\"versions\":[0]}",
        "{\"max_frame\":4096,\"versions\":1}",
        "{\"max_frame\":4096} trailing",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse(bad[i], &h), OAP_E_BAD_HELLO, "%s", bad[i]);
    char big[OAP_HELLO_MAX_BYTES + 10];
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"max_frame\":4096}", 18);
    cr_assert_eq(oap_hello_parse(&h, big, sizeof(big)), OAP_E_BAD_HELLO, "size bound");
    cr_assert_eq(oap_hello_parse(&h, big, OAP_HELLO_MAX_BYTES), 0);
}

Test(oap_hello, negotiate)
{
    struct oap_hello a, b, o;

    oap_hello_defaults(&a);
    oap_hello_defaults(&b);
    b.max_frame = 65536;
    a.max_inflight = 8;
    b.flags = OAP_FLAG_REQ | OAP_FLAG_RESP;
    cr_assert_eq(oap_hello_negotiate(&a, &b, &o), 0);
    cr_assert_eq(o.max_frame, 65536);
    cr_assert_eq(o.max_inflight, 8);
    cr_assert_eq(o.flags, OAP_FLAG_REQ | OAP_FLAG_RESP);
    b.versions = 2;
    cr_assert_eq(oap_hello_negotiate(&a, &b, &o), OAP_E_BAD_VERSION);
}
