/*
 * addr.h — OAP/1 peer addresses: the one parser for every place that names
 * a downstream or listens for one (config, omnigate's pools, the reference
 * services' --listen, the tools).
 *
 * Syntax: "oap://HOST:PORT" with a numeric IPv4 host or a bracketed IPv6
 * host ("oap://[::1]:9000"), port 1..65535; or "unix:/absolute/path"
 * (shorter than 108 bytes, Linux's sun_path). Where a command line takes an
 * address, a bare "HOST:PORT" is accepted too. Pure: no I/O, no allocation.
 */
#ifndef OAPNET_ADDR_H
#define OAPNET_ADDR_H

#include <stdbool.h>
#include <sys/socket.h>

/* sun_path of Linux: 108 bytes including the NUL. */
#define OAPNET_UNIX_PATH_MAX 108

/* A parsed address: a socket address ready for connect(2) or bind(2). */
struct oapnet_addr {
    bool is_unix;
    struct sockaddr_storage ss; /* AF_INET / AF_INET6 / AF_UNIX, port set */
    socklen_t ss_len;
    char path[OAPNET_UNIX_PATH_MAX]; /* unix only, NUL-terminated */
};

/*
 * Parse s as above; allow_bare also accepts "HOST:PORT" without "oap://".
 * An IPv6 host must be bracketed, so "::1:80" cannot be misread. Returns 0,
 * or -1 (out unspecified).
 */
int oapnet_addr_parse(const char *s, bool allow_bare, struct oapnet_addr *out);

/* Endpoints one service name may list (the downstream endpoint sets). */
#define OAPNET_ADDR_LIST_MAX 16

/*
 * An endpoint set: addresses separated by commas, each with optional
 * spaces or tabs around it ("oap://10.0.0.11:7001, oap://10.0.0.12:7001"),
 * each parsed as above. At most max entries (≤ OAPNET_ADDR_LIST_MAX), no
 * empty entry, no address twice. out[i] receives the i-th address and,
 * when names is not NULL, names[i] its text without the spaces
 * (NUL-terminated, truncated to 63 bytes: a metric label). Returns the
 * number of addresses (≥ 1), or -1 (out unspecified).
 */
int oapnet_addr_list_parse(const char *s, bool allow_bare, struct oapnet_addr *out,
                           char (*names)[64], int max);

#endif
