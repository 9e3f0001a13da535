/*
 * oapc.c — downstream address parsing and a blocking OAP/1 client for tools.
 *
 * The client speaks exactly what remote.c speaks (HELLO, DATA payloads,
 * request and response streams under credit), but with blocking sockets and
 * one call at a time, which is all a seeding tool or a smoke test needs.
 */
#include "ds/oapc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "oap/data.h"
#include "oap/hello.h"
#include "oap/stream.h"

#define OAPC_READ_BYTES 65536

/* ------------------------------------------------------------- addresses */

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

int oapc_addr_parse(const char *s, bool allow_bare, struct oapc_addr *out)
{
    char host[64];
    const char *hp, *colon;
    size_t hl;
    uint16_t port;
    bool bracketed = false;

    memset(out, 0, sizeof(*out));
    if (strncmp(s, "unix:", 5) == 0) {
        const char *p = s + 5;
        size_t n = strlen(p);
        struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
        if (p[0] != '/' || n >= OAPC_UNIX_PATH_MAX)
            return -1;
        out->is_unix = true;
        memcpy(out->path, p, n + 1);
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, p, n + 1);
        out->ss_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
    }
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
    /* An IPv6 host must be bracketed, so "::1:80" cannot be misread. */
    if (bracketed && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        out->ss_len = sizeof(*in6);
        return 0;
    }
    return -1;
}

/* ---------------------------------------------------------------- client */

__attribute__((format(printf, 2, 3))) static int fail(struct oapc *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return -1;
}

static int writev_all(struct oapc *c, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(c->fd, iov, n);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return fail(c, "write: %s", strerror(errno));
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++, n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Send one frame whose payload is the concatenation of parts (at most 3). */
static int send_frame(struct oapc *c, uint16_t flags, uint16_t app, uint64_t corr,
                      const struct iovec *parts, int nparts)
{
    struct iovec iov[4];
    uint8_t hb[OAP_HDR_BYTES];
    size_t len = OAP_HDR_BYTES;
    int n = 1;

    for (int i = 0; i < nparts; i++) {
        if (parts[i].iov_len == 0)
            continue;
        iov[n++] = parts[i];
        len += parts[i].iov_len;
    }
    if (len > c->max_frame)
        return fail(c, "frame of %zu bytes exceeds max_frame %u", len, c->max_frame);
    struct oap_hdr h = {.len = (uint32_t)len,
                        .ver = OAP_VERSION,
                        .flags = flags,
                        .app_proto_id = app,
                        .corr_id = corr};
    oap_hdr_write(&h, hb);
    iov[0] = (struct iovec){hb, OAP_HDR_BYTES};
    return writev_all(c, iov, n);
}

/* Next frame; its views stay valid until the next read_frame. */
static int read_frame(struct oapc *c, struct oap_frame *f)
{
    for (;;) {
        if (c->roff < c->rlen) {
            size_t used = 0;
            int rc = oap_decoder_feed(&c->dec, c->rbuf + c->roff, c->rlen - c->roff, &used, f);
            c->roff += used;
            if (rc == 0)
                return 0;
            if (rc != OAP_E_AGAIN)
                return fail(c, "bad frame from peer: %s at offset %llu", oap_status_name(rc),
                            (unsigned long long)oap_decoder_error_offset(&c->dec));
        }
        ssize_t n = read(c->fd, c->rbuf, OAPC_READ_BYTES);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return fail(c, "read: %s", errno == EAGAIN ? "timed out" : strerror(errno));
        }
        if (n == 0)
            return fail(c, "connection closed by peer");
        c->rlen = (size_t)n;
        c->roff = 0;
    }
}

static int send_grant(struct oapc *c, uint16_t app, uint64_t corr, uint32_t n)
{
    struct oap_frame g;
    uint8_t gb[OAP_CREDIT_PAYLOAD_BYTES];
    static const uint8_t zero[OAP_TENANT_BYTES];

    oap_credit_frame(&g, gb, app, zero, corr, n);
    return send_frame(c, g.h.flags, app, corr, &(struct iovec){(void *)g.payload, g.payload_len},
                      1);
}

int oapc_connect(struct oapc *c, const char *addr, int timeout_ms)
{
    struct oapc_addr a;
    struct oap_hello ours, peer;
    struct oap_frame f;
    char hello[OAP_HELLO_MAX_BYTES];
    ssize_t hn;

    memset(c, 0, sizeof(*c));
    c->fd = -1;
    oap_decoder_init(&c->dec, OAP_MAX_FRAME_BYTES);
    c->max_frame = OAP_MAX_FRAME_BYTES;
    c->rbuf = malloc(OAPC_READ_BYTES);
    if (c->rbuf == NULL)
        return fail(c, "out of memory");
    if (oapc_addr_parse(addr, true, &a) != 0)
        return fail(c, "bad address '%s' (expected oap://HOST:PORT, HOST:PORT or unix:/path)",
                    addr);
    c->fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd == -1)
        return fail(c, "socket: %s", strerror(errno));
    if (timeout_ms > 0) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (connect(c->fd, (struct sockaddr *)&a.ss, a.ss_len) == -1)
        return fail(c, "connect %s: %s", addr, strerror(errno));
    if (!a.is_unix)
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));

    /* We announce the largest max_inflight so that the peer's value rules. */
    oap_hello_defaults(&ours);
    ours.max_inflight = OAP_HELLO_MAX_INFLIGHT_MAX;
    ours.flags = OAP_FLAGS_KNOWN & ~OAP_FLAG_COMP; /* we never inflate */
    hn = oap_hello_encode(&ours, hello, sizeof(hello));
    if (hn < 0)
        return fail(c, "hello: %s", oap_status_name((int)hn));
    if (send_frame(c, OAP_FLAG_REQ, OAP_APP_HELLO, 0, &(struct iovec){hello, (size_t)hn}, 1))
        return -1;
    if (read_frame(c, &f) != 0)
        return -1;
    if (f.h.app_proto_id != OAP_APP_HELLO || !(f.h.flags & OAP_FLAG_RESP) || f.h.corr_id != 0)
        return fail(c, "peer did not answer HELLO");
    if (f.h.code != 200)
        return fail(c, "peer refused HELLO with code %u", f.h.code);
    if (oap_hello_parse(&peer, f.payload, f.payload_len) != 0)
        return fail(c, "malformed HELLO from peer");
    struct oap_hello neg;
    if (oap_hello_negotiate(&ours, &peer, &neg) != 0)
        return fail(c, "no common protocol version with peer");
    c->max_frame = neg.max_frame;
    c->max_inflight = neg.max_inflight;
    c->next_corr = 1;
    return 0;
}

/* Send the request, as one frame or as a request stream. On an early
 * response (peer refused mid-stream) *early is set and f holds it. */
static int send_request(struct oapc *c, uint16_t app, uint64_t corr, const char *hdr,
                        size_t hdr_len, const uint8_t *body, size_t body_len, struct oap_frame *f,
                        bool *early)
{
    uint8_t dh[2];
    struct oap_producer p;
    size_t off = 0;

    *early = false;
    /* Only the u16 length prefix goes in dh; the header JSON is sent from
     * where it is (an iovec), so nothing is copied into this 2-byte buffer. */
    if (hdr_len < 2 || hdr_len > OAP_DATA_HDR_MAX_BYTES)
        return fail(c, "request header of %zu bytes is not a valid DATA header", hdr_len);
    dh[0] = (uint8_t)(hdr_len >> 8);
    dh[1] = (uint8_t)hdr_len;
    if (OAP_HDR_BYTES + 2 + hdr_len + body_len <= c->max_frame) {
        struct iovec parts[3] = {{dh, 2}, {(void *)hdr, hdr_len}, {(void *)body, body_len}};
        return send_frame(c, OAP_FLAG_REQ, app, corr, parts, 3);
    }
    oap_producer_init(&p, oap_stream_chunk(0, c->max_frame), OAP_STREAM_INITIAL_CREDIT);
    while (!p.ended) {
        uint16_t fl;
        uint32_t n;
        int rc =
            oap_producer_next(&p, body_len - off, off == 0 ? (uint32_t)(2 + hdr_len) : 0, &fl, &n);
        if (rc == OAP_E_AGAIN) { /* out of credit: wait for a grant */
            uint32_t g;
            if (read_frame(c, f) != 0)
                return -1;
            if (f->h.corr_id != corr)
                return fail(c, "unexpected frame for corr_id %llu",
                            (unsigned long long)f->h.corr_id);
            if (f->h.flags & OAP_FLAG_RESP) {
                *early = true;
                return 0;
            }
            if (oap_credit_parse(f, &g) != 0 || oap_producer_on_grant(&p, g) != 0)
                return fail(c, "bad credit grant from peer");
            continue;
        }
        if (rc != 0)
            return fail(c, "stream: %s", oap_status_name(rc));
        if (fl & OAP_FLAG_START) {
            struct iovec parts[3] = {{dh, 2}, {(void *)hdr, hdr_len}, {(void *)body, n}};
            rc = send_frame(c, OAP_FLAG_REQ | fl, app, corr, parts, 3);
        } else {
            rc = send_frame(c, OAP_FLAG_REQ | fl, app, corr,
                            &(struct iovec){(void *)(body + off), n}, 1);
        }
        if (rc != 0)
            return -1;
        off += n;
    }
    return 0;
}

/* Copy header + body into one allocation for *r. */
static int resp_fill(struct oapc *c, struct oapc_resp *r, int code, const char *hdr, size_t hdr_len,
                     const uint8_t *body, size_t body_len)
{
    char *m = malloc(hdr_len + 1 + body_len + 1);
    if (m == NULL)
        return fail(c, "out of memory");
    memcpy(m, hdr, hdr_len);
    m[hdr_len] = '\0';
    if (body_len)
        memcpy(m + hdr_len + 1, body, body_len);
    *r = (struct oapc_resp){code, m, hdr_len, (uint8_t *)m + hdr_len + 1, body_len, m};
    return 0;
}

int oapc_call(struct oapc *c, uint16_t app, const char *hdr, size_t hdr_len, const void *body,
              size_t body_len, struct oapc_resp *r)
{
    struct oap_frame f;
    struct oap_data d;
    struct oap_consumer cons;
    uint64_t corr = c->next_corr++;
    bool early;
    char *acc = NULL;
    size_t acc_len = 0, acc_cap = 0, acc_hdr = 0;
    int code = 0;

    memset(r, 0, sizeof(*r));
    if (c->fd == -1)
        return fail(c, "not connected");
    if (send_request(c, app, corr, hdr, hdr_len, body, body_len, &f, &early) != 0)
        return -1;
    for (;;) {
        if (!early && read_frame(c, &f) != 0)
            goto fail;
        early = false;
        if (f.h.corr_id != corr) {
            fail(c, "unexpected frame for corr_id %llu", (unsigned long long)f.h.corr_id);
            goto fail;
        }
        if (oap_credit_is(&f))
            continue; /* a late grant for our request stream */
        if (!(f.h.flags & OAP_FLAG_RESP) || (f.h.flags & OAP_FLAG_COMP)) {
            fail(c, "unexpected frame flags 0x%x", f.h.flags);
            goto fail;
        }
        if (acc == NULL && !(f.h.flags & OAP_FLAG_START)) {
            if (oap_data_split(&d, f.payload, f.payload_len) != 0) {
                fail(c, "malformed DATA payload in response");
                goto fail;
            }
            return resp_fill(c, r, f.h.code, d.hdr, d.hdr_len, d.body, d.body_len);
        }
        const uint8_t *part = f.payload;
        size_t part_len = f.payload_len;
        if (f.h.flags & OAP_FLAG_START) {
            if (acc != NULL) {
                fail(c, "second START in one response");
                goto fail;
            }
            if (oap_data_split(&d, f.payload, f.payload_len) != 0) {
                fail(c, "malformed DATA payload in response");
                goto fail;
            }
            oap_consumer_init(&cons, OAPC_STREAM_WINDOW);
            code = f.h.code;
            acc_hdr = d.hdr_len;
            part = d.body;
            part_len = d.body_len;
            acc_cap = d.hdr_len + 1 + part_len + 65536;
            acc = malloc(acc_cap);
            if (acc == NULL) {
                fail(c, "out of memory");
                goto fail;
            }
            memcpy(acc, d.hdr, d.hdr_len);
            acc[d.hdr_len] = '\0';
            acc_len = d.hdr_len + 1;
        }
        if (oap_consumer_on_frame(&cons, f.h.flags) != 0) {
            fail(c, "peer sent a stream frame without credit");
            goto fail;
        }
        if (acc_len - acc_hdr - 1 + part_len > OAPC_STREAM_MAX_BYTES) {
            fail(c, "streamed response over %u bytes", OAPC_STREAM_MAX_BYTES);
            goto fail;
        }
        if (acc_len + part_len + 1 > acc_cap) {
            size_t nc = acc_cap * 2 > acc_len + part_len + 1 ? acc_cap * 2 : acc_len + part_len + 1;
            char *p = realloc(acc, nc);
            if (p == NULL) {
                fail(c, "out of memory");
                goto fail;
            }
            acc = p, acc_cap = nc;
        }
        memcpy(acc + acc_len, part, part_len);
        acc_len += part_len;
        oap_consumer_on_consumed(&cons, 1);
        if (f.h.flags & OAP_FLAG_END) {
            *r = (struct oapc_resp){
                code, acc, acc_hdr, (uint8_t *)acc + acc_hdr + 1, acc_len - acc_hdr - 1, acc};
            return 0;
        }
        uint32_t g = oap_consumer_grant(&cons);
        if (g && send_grant(c, app, corr, g) != 0)
            goto fail;
    }
fail:
    free(acc);
    return -1;
}

void oapc_resp_release(struct oapc_resp *r)
{
    free(r->mem);
    memset(r, 0, sizeof(*r));
}

void oapc_release(struct oapc *c)
{
    if (c->fd != -1)
        close(c->fd);
    c->fd = -1;
    oap_decoder_release(&c->dec);
    free(c->rbuf);
    c->rbuf = NULL;
}
