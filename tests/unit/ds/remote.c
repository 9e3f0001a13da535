/*
 * remote.c — pure pieces of the OAP/1 backend: downstream address parsing
 * (ds/oapc.c) and the reconnect backoff (ds/remote.c).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "ds/oapc.h"
#include "ds/remote.h"

Test(ds_remote, addr_ipv4)
{
    struct oapc_addr a;
    struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
    char host[INET_ADDRSTRLEN];

    cr_assert_eq(oapc_addr_parse("oap://127.0.0.1:9000", false, &a), 0);
    cr_assert_not(a.is_unix);
    cr_assert_eq(in->sin_family, AF_INET);
    cr_assert_eq(ntohs(in->sin_port), 9000);
    cr_assert_eq(a.ss_len, sizeof(struct sockaddr_in));
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(oapc_addr_parse("oap://10.1.2.3:65535", false, &a), 0);
    cr_assert_eq(ntohs(in->sin_port), 65535);
}

Test(ds_remote, addr_ipv6)
{
    struct oapc_addr a;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;
    struct in6_addr lo = IN6ADDR_LOOPBACK_INIT;

    cr_assert_eq(oapc_addr_parse("oap://[::1]:9001", false, &a), 0);
    cr_assert_eq(in6->sin6_family, AF_INET6);
    cr_assert_eq(ntohs(in6->sin6_port), 9001);
    cr_assert_eq(memcmp(&in6->sin6_addr, &lo, sizeof(lo)), 0);
    /* IPv6 must be bracketed: the last colon would be ambiguous. */
    cr_assert_eq(oapc_addr_parse("oap://::1:9001", false, &a), -1);
    /* An IPv4 literal in brackets is not an IPv6 address. */
    cr_assert_eq(oapc_addr_parse("oap://[127.0.0.1]:9001", false, &a), -1);
}

Test(ds_remote, addr_unix)
{
    struct oapc_addr a;
    struct sockaddr_un *un = (struct sockaddr_un *)&a.ss;
    char longp[200];

    cr_assert_eq(oapc_addr_parse("unix:/tmp/x", false, &a), 0);
    cr_assert(a.is_unix);
    cr_assert_str_eq(a.path, "/tmp/x");
    cr_assert_eq(un->sun_family, AF_UNIX);
    cr_assert_str_eq(un->sun_path, "/tmp/x");
    cr_assert_eq(oapc_addr_parse("unix:tmp/x", false, &a), -1, "relative path");
    cr_assert_eq(oapc_addr_parse("unix:", false, &a), -1);
    /* 107 path bytes + NUL fit sun_path; 108 do not. */
    memset(longp, 'a', sizeof(longp));
    memcpy(longp, "unix:/", 6);
    longp[5 + 107] = '\0';
    cr_assert_eq(oapc_addr_parse(longp, false, &a), 0);
    cr_assert_eq(strlen(a.path), 107);
    longp[5 + 107] = 'a';
    longp[5 + 108] = '\0';
    cr_assert_eq(oapc_addr_parse(longp, false, &a), -1);
}

Test(ds_remote, addr_invalid)
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
    struct oapc_addr a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(oapc_addr_parse(bad[i], false, &a), -1, "accepted '%s'", bad[i]);
}

Test(ds_remote, addr_bare_for_tools)
{
    struct oapc_addr a;
    cr_assert_eq(oapc_addr_parse("127.0.0.1:9000", true, &a), 0);
    cr_assert_eq(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 9000);
    cr_assert_eq(oapc_addr_parse("[::1]:9000", true, &a), 0);
    cr_assert_eq(oapc_addr_parse(":9000", true, &a), -1);
    cr_assert_eq(oapc_addr_parse("9000", true, &a), -1);
}

Test(ds_remote, backoff_doubles_to_cap)
{
    /* rnd = base/2 gives exactly base: 50, 100, ..., capped at 2000. */
    static const uint64_t want[] = {50, 100, 200, 400, 800, 1600, 2000, 2000, 2000};
    for (unsigned f = 0; f < sizeof(want) / sizeof(want[0]); f++)
        cr_assert_eq(remote_backoff_ms(f, (uint32_t)(want[f] / 2)), want[f], "failures %u", f);
    cr_assert_eq(remote_backoff_ms(1000, 1000), 2000, "huge failure counts do not overflow");
}

Test(ds_remote, backoff_jitter_bounds)
{
    uint64_t x = 0x9e3779b97f4a7c15ull, lo = UINT64_MAX, hi = 0;
    for (unsigned f = 0; f < 12; f++) {
        uint64_t base = f >= 6 ? REMOTE_BACKOFF_MAX_MS : (uint64_t)REMOTE_BACKOFF_MIN_MS << f;
        for (int i = 0; i < 2000; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t d = remote_backoff_ms(f, (uint32_t)x);
            cr_assert(d >= base / 2 && d <= base + base / 2, "failures %u: %llu", f,
                      (unsigned long long)d);
            if (f == 0) {
                lo = d < lo ? d : lo;
                hi = d > hi ? d : hi;
            }
        }
    }
    /* The jitter actually spreads: both ends of ±50 % are reached. */
    cr_assert_eq(remote_backoff_ms(0, 0), 25);
    cr_assert_eq(remote_backoff_ms(0, 50), 75);
    cr_assert(lo <= 30 && hi >= 70, "spread %llu..%llu", (unsigned long long)lo,
              (unsigned long long)hi);
    cr_assert_eq(remote_backoff_ms(20, UINT32_MAX), 2000 / 2 + UINT32_MAX % 2001);
}
