/*
 * addr.c — the one OAP/1 address parser (src/oapnet/addr.c): oap://HOST:PORT
 * with a numeric IPv4 or bracketed IPv6 host, unix:/absolute/path, and the
 * bare HOST:PORT that command lines (tools, the services' --listen) accept.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "oapnet/addr.h"

Test(oapnet_addr, ipv4)
{
    struct oapnet_addr a;
    struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
    char host[INET_ADDRSTRLEN];

    cr_assert_eq(oapnet_addr_parse("oap://127.0.0.1:9000", false, &a), 0);
    cr_assert_not(a.is_unix);
    cr_assert_eq(in->sin_family, AF_INET);
    cr_assert_eq(ntohs(in->sin_port), 9000);
    cr_assert_eq(a.ss_len, sizeof(struct sockaddr_in));
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(oapnet_addr_parse("oap://10.1.2.3:65535", false, &a), 0);
    cr_assert_eq(ntohs(in->sin_port), 65535);
}

Test(oapnet_addr, ipv6)
{
    struct oapnet_addr a;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;
    struct in6_addr lo = IN6ADDR_LOOPBACK_INIT;

    cr_assert_eq(oapnet_addr_parse("oap://[::1]:9001", false, &a), 0);
    cr_assert_eq(in6->sin6_family, AF_INET6);
    cr_assert_eq(ntohs(in6->sin6_port), 9001);
    cr_assert_eq(memcmp(&in6->sin6_addr, &lo, sizeof(lo)), 0);
    /* IPv6 must be bracketed: the last colon would be ambiguous. */
    cr_assert_eq(oapnet_addr_parse("oap://::1:9001", false, &a), -1);
    /* An IPv4 literal in brackets is not an IPv6 address. */
    cr_assert_eq(oapnet_addr_parse("oap://[127.0.0.1]:9001", false, &a), -1);
}

Test(oapnet_addr, unix)
{
    struct oapnet_addr a;
    struct sockaddr_un *un = (struct sockaddr_un *)&a.ss;
    char longp[200];

    cr_assert_eq(oapnet_addr_parse("unix:/tmp/x", false, &a), 0);
    cr_assert(a.is_unix);
    cr_assert_str_eq(a.path, "/tmp/x");
    cr_assert_eq(un->sun_family, AF_UNIX);
    cr_assert_str_eq(un->sun_path, "/tmp/x");
    cr_assert_eq(oapnet_addr_parse("unix:tmp/x", false, &a), -1, "relative path");
    cr_assert_eq(oapnet_addr_parse("unix:", false, &a), -1);
    /* 107 path bytes + NUL fit sun_path; 108 do not. */
    memset(longp, 'a', sizeof(longp));
    memcpy(longp, "unix:/", 6);
    longp[5 + 107] = '\0';
    cr_assert_eq(oapnet_addr_parse(longp, false, &a), 0);
    cr_assert_eq(strlen(a.path), 107);
    longp[5 + 107] = 'a';
    longp[5 + 108] = '\0';
    cr_assert_eq(oapnet_addr_parse(longp, false, &a), -1);
}

Test(oapnet_addr, invalid)
{
    static const char *const bad[] = {
        "",
        "oap://",
        "oap://127.0.0.1",
        "oap://127.0.0.1:",
        "oap://127.0.0.1:0",
        "oap://127.0.0.1:65536",
        "oap://127.0.0.1:99999999999",
        "oap://127.0.0.1:-1",
        "oap://127.0.0.1:80x",
        "oap://localhost:9000",
        "oap://:9000",
        "oap://256.0.0.1:9000",
        "oap://[::1:9000",
        "tcp://127.0.0.1:9000",
        "127.0.0.1:9000",
    };
    struct oapnet_addr a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(oapnet_addr_parse(bad[i], false, &a), -1, "accepted '%s'", bad[i]);
}

Test(oapnet_addr, bare_for_tools)
{
    struct oapnet_addr a;
    cr_assert_eq(oapnet_addr_parse("127.0.0.1:9000", true, &a), 0);
    cr_assert_eq(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 9000);
    cr_assert_eq(oapnet_addr_parse("[::1]:9000", true, &a), 0);
    cr_assert_eq(oapnet_addr_parse(":9000", true, &a), -1);
    cr_assert_eq(oapnet_addr_parse("9000", true, &a), -1);
}

Test(oapnet_addr, list)
{
    struct oapnet_addr a[OAPNET_ADDR_LIST_MAX];
    char names[OAPNET_ADDR_LIST_MAX][64];

    cr_assert_eq(oapnet_addr_list_parse("oap://10.0.0.11:7001, oap://10.0.0.12:7001", false, a,
                                        names, OAPNET_ADDR_LIST_MAX),
                 2);
    cr_assert_str_eq(names[0], "oap://10.0.0.11:7001");
    cr_assert_str_eq(names[1], "oap://10.0.0.12:7001");
    cr_assert_eq(ntohs(((struct sockaddr_in *)&a[1].ss)->sin_port), 7001);
    cr_assert_eq(oapnet_addr_list_parse(" \toap://[::1]:1 ,unix:/run/a.sock", false, a, NULL, 4),
                 2);
    cr_assert(a[1].is_unix);
    cr_assert_eq(oapnet_addr_list_parse("oap://127.0.0.1:9", false, a, names, 1), 1,
                 "one address is a set of one");
    cr_assert_eq(oapnet_addr_list_parse("127.0.0.1:9,127.0.0.1:10", true, a, names, 4), 2,
                 "bare entries where the caller allows them");
}

Test(oapnet_addr, list_invalid)
{
    struct oapnet_addr a[OAPNET_ADDR_LIST_MAX];
    char many[40 * 20] = "";
    static const char *const bad[] = {
        "",
        ",",
        "oap://127.0.0.1:9,",
        ",oap://127.0.0.1:9",
        "oap://127.0.0.1:9,,oap://127.0.0.1:10",
        "oap://127.0.0.1:9, oap://127.0.0.1:9", /* twice the same endpoint */
        "oap://127.0.0.1:9 oap://127.0.0.1:10", /* no comma */
        "oap://127.0.0.1:9,127.0.0.1:10",       /* bare where not allowed */
        "oap://127.0.0.1:9,oap://127.0.0.1:0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(oapnet_addr_list_parse(bad[i], false, a, NULL, OAPNET_ADDR_LIST_MAX), -1, "%s",
                     bad[i]);
    cr_assert_eq(oapnet_addr_list_parse("oap://127.0.0.1:9,oap://127.0.0.1:10", false, a, NULL, 1),
                 -1, "more than max");
    for (int i = 0; i <= OAPNET_ADDR_LIST_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%soap://127.0.0.1:%d",
                 i ? "," : "", 100 + i);
    cr_assert_eq(oapnet_addr_list_parse(many, false, a, NULL, 1000), -1,
                 "never more than OAPNET_ADDR_LIST_MAX, whatever max says");
}
