/*
 * oapc.h — downstream addresses and a small blocking OAP/1 client.
 *
 * The address parser is shared by the event-loop backend (remote.c) and by
 * tools. The client is for tools and tests only (seed, smoke tests): plain
 * blocking sockets, one call at a time, never used on a worker loop.
 */
#ifndef DS_OAPC_H
#define DS_OAPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "oap/oap.h"

/* sun_path of Linux: 108 bytes including the NUL. */
#define OAPC_UNIX_PATH_MAX 108
/* A streamed response larger than this is refused (bad_gateway). */
#define OAPC_STREAM_MAX_BYTES (64u << 20)
/* Frames a receiver lets a producer have outstanding (credit window). */
#define OAPC_STREAM_WINDOW 16

/* A parsed downstream address. */
struct oapc_addr {
    bool is_unix;
    struct sockaddr_storage ss; /* AF_INET / AF_INET6 / AF_UNIX, port set */
    socklen_t ss_len;
    char path[OAPC_UNIX_PATH_MAX]; /* unix only, NUL-terminated */
};

/*
 * Parse "oap://HOST:PORT" (numeric IPv4, or [IPv6]; port 1..65535) or
 * "unix:/absolute/path" (shorter than 108 bytes). With allow_bare, a bare
 * "HOST:PORT" is accepted too (tools' command lines). Pure: no I/O, no
 * allocation. Returns 0 or -1 (out unspecified).
 */
int oapc_addr_parse(const char *s, bool allow_bare, struct oapc_addr *out);

/* A blocking client connection. */
struct oapc {
    int fd;
    struct oap_decoder dec;
    uint32_t max_frame;    /* negotiated: frames we send stay within it */
    uint32_t max_inflight; /* negotiated */
    uint64_t next_corr;
    uint8_t *rbuf; /* read buffer, OAPC_READ_BYTES */
    size_t rlen, roff;
    char err[256]; /* last error, for messages */
};

/* A response; hdr and body point into one allocation owned by mem. hdr is
 * NUL-terminated for convenience. */
struct oapc_resp {
    int code;
    const char *hdr;
    size_t hdr_len;
    const uint8_t *body;
    size_t body_len;
    void *mem;
};

/*
 * Connect to addr (oapc_addr_parse syntax, bare HOST:PORT allowed), send our
 * HELLO and negotiate with the peer's answer; timeout_ms bounds each socket
 * operation (0 = none). Returns 0, or -1 with c->err set; either way
 * oapc_release() must be called.
 */
int oapc_connect(struct oapc *c, const char *addr, int timeout_ms);

/*
 * One request/response exchange on app protocol `app`: hdr is the DATA
 * header JSON, body may be NULL. A payload too large for one frame is sent
 * as a request stream under the peer's credit; a streamed response is
 * reassembled (≤ OAPC_STREAM_MAX_BYTES) with credit granted as it is read.
 * Returns 0 with *r filled (r->code is the peer's status, whatever it is),
 * or -1 on a transport or protocol failure with c->err set (the connection
 * is then unusable). Release *r with oapc_resp_release().
 */
int oapc_call(struct oapc *c, uint16_t app, const char *hdr, size_t hdr_len, const void *body,
              size_t body_len, struct oapc_resp *r);

void oapc_resp_release(struct oapc_resp *r);

/* Close the socket and free the buffers. Safe on a failed connect. */
void oapc_release(struct oapc *c);

#endif
