/*
 * cidr.c — trusted proxy networks and X-Forwarded-For (src/core/cidr.c).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/cidr.h"

static bool match(const struct cidr_set *s, const char *ip)
{
    uint8_t a[16];
    if (inet_pton(AF_INET, ip, a) == 1)
        return cidr_set_match(s, a, 4);
    cr_assert_eq(inet_pton(AF_INET6, ip, a), 1, "%s", ip);
    return cidr_set_match(s, a, 16);
}

Test(core_cidr, parse_and_match)
{
    struct cidr_set s;
    cr_assert_eq(cidr_set_parse("10.0.0.0/8, 192.168.1.5 ,fd00::/8,127.0.0.1/32", &s), 0);
    cr_assert_eq(s.n, 4);
    cr_assert(match(&s, "10.1.2.3"));
    cr_assert(match(&s, "10.255.255.255"));
    cr_assert_not(match(&s, "11.0.0.1"));
    cr_assert(match(&s, "192.168.1.5"));
    cr_assert_not(match(&s, "192.168.1.6"), "a bare address is one host");
    cr_assert(match(&s, "fd12::1"));
    cr_assert_not(match(&s, "fe80::1"));
    cr_assert(match(&s, "::ffff:10.9.9.9"), "IPv4-mapped matches as IPv4");
    cr_assert(match(&s, "127.0.0.1"));

    cr_assert_eq(cidr_set_parse("172.16.0.0/12", &s), 0);
    cr_assert(match(&s, "172.31.255.1"));
    cr_assert_not(match(&s, "172.32.0.1"), "a prefix that ends inside a byte");
    cr_assert_eq(cidr_set_parse("0.0.0.0/0", &s), 0);
    cr_assert(match(&s, "8.8.8.8"));
    cr_assert_not(match(&s, "::1"), "families never mix");

    cr_assert_eq(cidr_set_parse("", &s), 0);
    cr_assert_eq(s.n, 0);
    cr_assert_not(match(&s, "127.0.0.1"), "the empty set trusts nobody");
    cr_assert_eq(cidr_set_parse("  ", &s), 0);
    uint8_t odd[3] = {1, 2, 3};
    cr_assert_not(cidr_set_match(&s, odd, 3));
}

Test(core_cidr, parse_refuses)
{
    struct cidr_set s;
    static const char *const bad[] = {
        "10.0.0.0/33",     "10.0.0.1/8", /* host bits under the prefix */
        "10.0.0.0/",       "10.0.0.0/-1", "10.0.0.0/8x", "10.0.0.0/0008", "::/129",
        "10.0.0",          "example.com", "10.0.0.0/8,", ",10.0.0.0/8",   "10.0.0.0/8,,10.0.0.0/8",
        "1.2.3.4 5.6.7.8",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(cidr_set_parse(bad[i], &s), -1, "%s", bad[i]);
    char many[40 * 20] = "";
    for (int i = 0; i <= CIDR_SET_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s10.0.%d.0/24", i ? "," : "",
                 i);
    cr_assert_eq(cidr_set_parse(many, &s), -1, "at most CIDR_SET_MAX");
}

Test(core_cidr, forwarded_for_takes_the_last)
{
    uint8_t a[16];
    const char *v = "203.0.113.9, 10.1.1.1, 198.51.100.7";
    cr_assert_eq(cidr_forwarded_for(v, strlen(v), a), 4);
    cr_assert_eq(memcmp(a, "\xc6\x33\x64\x07", 4), 0);
    v = "2001:db8::1";
    cr_assert_eq(cidr_forwarded_for(v, strlen(v), a), 16);
    v = "1.2.3.4,  [2001:db8::2] ";
    cr_assert_eq(cidr_forwarded_for(v, strlen(v), a), 16);
    cr_assert_eq(a[15], 2);
    v = "::ffff:192.0.2.1";
    cr_assert_eq(cidr_forwarded_for(v, strlen(v), a), 4, "IPv4-mapped is IPv4");
    cr_assert_eq(a[0], 192);
    /* Not NUL-terminated: only n bytes are read. */
    cr_assert_eq(cidr_forwarded_for("10.0.0.1999", 8, a), 4);
    static const char *const bad[] = {"",           ",",        "1.2.3.4,",  "unknown",
                                      "1.2.3.4:80", "[::1]:80", "1.2.3.4, x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(cidr_forwarded_for(bad[i], strlen(bad[i]), a), -1, "%s", bad[i]);
    char big[200];
    memset(big, '1', sizeof(big));
    cr_assert_eq(cidr_forwarded_for(big, sizeof(big), a), -1);
}
