/*
 * oap_addr.c — libFuzzer target for the one OAP/1 address parser
 * (oapnet_addr_parse): "oap://HOST:PORT", bracketed IPv6, "unix:/path" and,
 * where a command line allows it, bare "HOST:PORT"; and endpoint sets of
 * them (oapnet_addr_list_parse). Byte 0 chooses allow_bare (bit 0) and a
 * set (bit 1); the rest is the text, as a NUL-terminated private copy.
 * A parsed address must be one a socket call can take as it is; a set
 * holds 1..OAPNET_ADDR_LIST_MAX of them, each label NUL-terminated.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "oapnet/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *s = malloc(size);
    if (s == NULL)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';

    if (data[0] & 2) {
        struct oapnet_addr set[OAPNET_ADDR_LIST_MAX];
        char names[OAPNET_ADDR_LIST_MAX][64];
        int n = oapnet_addr_list_parse(s, data[0] & 1, set, names, (data[0] >> 2) + 1);
        if (n == 0 || n > OAPNET_ADDR_LIST_MAX || n > (data[0] >> 2) + 1)
            abort();
        for (int i = 0; i < n; i++)
            if (strnlen(names[i], sizeof(names[i])) >= sizeof(names[i]) ||
                (set[i].ss.ss_family != AF_UNIX && set[i].ss.ss_family != AF_INET &&
                 set[i].ss.ss_family != AF_INET6))
                abort();
        free(s);
        return 0;
    }
    struct oapnet_addr a;
    if (oapnet_addr_parse(s, data[0] & 1, &a) == 0) {
        int fam = a.ss.ss_family;
        if (a.is_unix) {
            size_t n = strnlen(a.path, sizeof(a.path));
            if (fam != AF_UNIX || n == 0 || n >= sizeof(a.path) || a.path[0] != '/')
                abort();
        } else if (fam == AF_INET) {
            if (a.ss_len != sizeof(struct sockaddr_in) ||
                ((struct sockaddr_in *)&a.ss)->sin_port == 0)
                abort();
        } else if (fam == AF_INET6) {
            if (a.ss_len != sizeof(struct sockaddr_in6) ||
                ((struct sockaddr_in6 *)&a.ss)->sin6_port == 0)
                abort();
        } else {
            abort();
        }
    }
    free(s);
    return 0;
}
