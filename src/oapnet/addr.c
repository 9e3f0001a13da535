/*
 * addr.c — OAP/1 peer addresses (see addr.h).
 */
#include "oapnet/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

/* Decimal 1..65535, digits only (no sign, no spaces). */
static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;

    if (*s == '\0' || strlen(s) > 5)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static int parse_unix(const char *p, struct oapnet_addr *out)
{
    size_t n = strlen(p);
    struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;

    if (p[0] != '/' || n >= OAPNET_UNIX_PATH_MAX)
        return -1;
    out->is_unix = true;
    memcpy(out->path, p, n + 1);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, p, n + 1);
    out->ss_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int oapnet_addr_parse(const char *s, bool allow_bare, struct oapnet_addr *out)
{
    char host[64];
    const char *hp, *colon;
    size_t hl;
    uint16_t port;
    bool bracketed = false;

    memset(out, 0, sizeof(*out));
    if (strncmp(s, "unix:", 5) == 0)
        return parse_unix(s + 5, out);
    if (strncmp(s, "oap://", 6) == 0)
        hp = s + 6;
    else if (allow_bare)
        hp = s;
    else
        return -1;
    colon = strrchr(hp, ':');
    if (colon == NULL || colon == hp || parse_port(colon + 1, &port) != 0)
        return -1;
    hl = (size_t)(colon - hp);
    if (hp[0] == '[') { /* [::1]:9000 */
        if (hl < 3 || hp[hl - 1] != ']')
            return -1;
        hp++, hl -= 2;
        bracketed = true;
    }
    if (hl >= sizeof(host))
        return -1;
    memcpy(host, hp, hl);
    host[hl] = '\0';
    struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
    if (!bracketed && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        out->ss_len = sizeof(*in4);
        return 0;
    }
    if (bracketed && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        out->ss_len = sizeof(*in6);
        return 0;
    }
    return -1;
}

static bool addr_same(const struct oapnet_addr *a, const struct oapnet_addr *b)
{
    return a->ss_len == b->ss_len && memcmp(&a->ss, &b->ss, a->ss_len) == 0;
}

int oapnet_addr_list_parse(const char *s, bool allow_bare, struct oapnet_addr *out,
                           char (*names)[64], int max)
{
    /* One entry is at most a unix path plus "unix:", or a bracketed IPv6
     * address with its port: a longer one is refused before it is copied. */
    char one[OAPNET_UNIX_PATH_MAX + 8];
    int n = 0;

    if (max > OAPNET_ADDR_LIST_MAX)
        max = OAPNET_ADDR_LIST_MAX;
    for (;;) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        while (len && (*s == ' ' || *s == '\t'))
            s++, len--;
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len == 0 || len >= sizeof(one) || n >= max)
            return -1;
        memcpy(one, s, len);
        one[len] = '\0';
        if (oapnet_addr_parse(one, allow_bare, &out[n]) != 0)
            return -1;
        for (int k = 0; k < n; k++)
            if (addr_same(&out[k], &out[n]))
                return -1;
        if (names) { /* a label: truncated, never refused */
            size_t k = len < sizeof(names[n]) ? len : sizeof(names[n]) - 1;
            memcpy(names[n], one, k);
            names[n][k] = '\0';
        }
        n++;
        if (end == NULL)
            return n;
        s = end + 1;
    }
}
