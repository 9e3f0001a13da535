/*
 * cidr.c — trusted proxy networks and X-Forwarded-For (cidr.h).
 */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* One numeric address, NUL-terminated in a, into out. Returns 4, 16 or -1. */
static int parse_ip(const char *a, uint8_t out[16])
{
    if (inet_pton(AF_INET, a, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, a, out) == 1)
        return 16;
    return -1;
}

/* Trim spaces and tabs around [p, p + *n). */
static const char *trim(const char *p, size_t *n)
{
    while (*n && (*p == ' ' || *p == '\t'))
        p++, (*n)--;
    while (*n && (p[*n - 1] == ' ' || p[*n - 1] == '\t'))
        (*n)--;
    return p;
}

static bool host_bits_clear(const struct cidr *c)
{
    for (int i = 0; i < c->len; i++) {
        int keep = c->bits - 8 * i; /* prefix bits in this byte */
        uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        if (c->addr[i] & ~mask)
            return false;
    }
    return true;
}

int cidr_set_parse(const char *s, struct cidr_set *out)
{
    char one[64]; /* the longest IPv6 text plus "/128" fits well */

    memset(out, 0, sizeof(*out));
    if (*trim(s, &(size_t){strlen(s)}) == '\0')
        return 0;
    for (;;) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        const char *p = trim(s, &n);
        if (n == 0 || n >= sizeof(one) || out->n >= CIDR_SET_MAX)
            return -1;
        memcpy(one, p, n);
        one[n] = '\0';
        struct cidr *c = &out->net[out->n];
        char *slash = strchr(one, '/');
        long bits = -1;
        if (slash) {
            char *q = slash + 1;
            *slash = '\0';
            if (*q == '\0' || strlen(q) > 3)
                return -1;
            for (bits = 0; *q; q++) {
                if (*q < '0' || *q > '9')
                    return -1;
                bits = bits * 10 + (*q - '0');
            }
        }
        int len = parse_ip(one, c->addr);
        if (len < 0 || bits > len * 8)
            return -1;
        c->len = (uint8_t)len;
        c->bits = (uint8_t)(bits < 0 ? len * 8 : bits);
        if (!host_bits_clear(c))
            return -1;
        out->n++;
        if (end == NULL)
            return 0;
        s = end + 1;
    }
}

static bool in_net(const struct cidr *c, const uint8_t *a)
{
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, a, (size_t)full) != 0)
        return false;
    return rest == 0 || ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool cidr_set_match(const struct cidr_set *s, const uint8_t *addr, size_t len)
{
    if (len == 16 && memcmp(addr, V4_MAPPED, sizeof(V4_MAPPED)) == 0)
        addr += 12, len = 4;
    if (len != 4 && len != 16)
        return false;
    for (int i = 0; i < s->n; i++)
        if (s->net[i].len == len && in_net(&s->net[i], addr))
            return true;
    return false;
}

int cidr_forwarded_for(const char *v, size_t n, uint8_t out[16])
{
    char one[64];
    const char *last = memrchr(v, ',', n);
    const char *p = last ? last + 1 : v;
    size_t len = n - (size_t)(p - v);

    p = trim(p, &len);
    if (len >= 2 && p[0] == '[' && p[len - 1] == ']')
        p++, len -= 2;
    if (len == 0 || len >= sizeof(one))
        return -1;
    memcpy(one, p, len);
    one[len] = '\0';
    int k = parse_ip(one, out);
    if (k == 16 && memcmp(out, V4_MAPPED, sizeof(V4_MAPPED)) == 0) {
        memmove(out, out + 12, 4);
        k = 4;
    }
    return k;
}
