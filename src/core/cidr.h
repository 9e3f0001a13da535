/*
 * cidr.h — client addresses behind a proxy: a set of trusted networks
 * (`trusted_proxies = 10.0.0.0/8, 192.168.1.5, fd00::/8`) and the client
 * address a trusted proxy appended to X-Forwarded-For.
 *
 * Addresses are raw bytes as the connection keeps its peer: 4 for IPv4, 16
 * for IPv6 (an IPv4-mapped IPv6 address is matched as IPv4). Pure: no I/O,
 * no allocation.
 */
#ifndef CORE_CIDR_H
#define CORE_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CIDR_SET_MAX 32 /* networks in one set */

struct cidr {
    uint8_t addr[16]; /* the network's address, host bits cleared */
    uint8_t len;      /* 4 or 16 */
    uint8_t bits;     /* prefix length: 0..32 or 0..128 */
};

struct cidr_set {
    int n;
    struct cidr net[CIDR_SET_MAX];
};

/*
 * Parse a comma-separated list of networks, "ADDR/BITS" or a bare ADDR (a
 * single host), numeric IPv4 or IPv6, spaces around each entry allowed; ""
 * is the empty set. Host bits set under the prefix are refused (a typo,
 * most likely). Returns 0, or -1 (out unspecified).
 */
int cidr_set_parse(const char *s, struct cidr_set *out);

/* Whether addr (len 4 or 16 bytes) lies in one of the set's networks. */
bool cidr_set_match(const struct cidr_set *s, const uint8_t *addr, size_t len);

/*
 * The last address of an X-Forwarded-For value (v, n bytes, not
 * NUL-terminated): the one the nearest proxy appended. Spaces around it
 * are allowed; an IPv6 address may be bracketed; a port is not. Returns
 * the address's length (4 or 16) with its bytes in out, or -1 when the
 * last element is not an address.
 */
int cidr_forwarded_for(const char *v, size_t n, uint8_t out[16]);

#endif
