/*
 * oap_addr.c — libFuzzer target for the one OAP/1 address parser
 * (oapnet_addr_parse): "oap://HOST:PORT", bracketed IPv6, "unix:/path" and,
 * where a command line allows it, bare "HOST:PORT". Byte 0 chooses
 * allow_bare; the rest is the address, as a NUL-terminated private copy.
 * A parsed address must be one a socket call can take as it is.
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
