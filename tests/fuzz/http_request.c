/*
 * http_request.c — libFuzzer target: the whole request-reading path.
 *
 * The bytes are read the way conn.c reads them: one buffer of header_max +
 * room bytes, compacted between requests, the space after the head reused
 * while a body streams in, h1_begin/h1_feed restarted after every request.
 * The first input byte picks the read size (1..128, or all at once) and
 * small or large limits, so the limit paths are reached. Each read is copied
 * into the buffer, so a slice kept into consumed input would show as wrong
 * bytes, and every finished request's invariants are checked. Bodies sent
 * with a Content-Encoding (in the dictionary and the corpus) go through the
 * decoder of src/admit/inflate.c, freed by h1_release() when a run stops
 * mid-body, so a leaked decoder shows as a leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"

static void check_slice(struct slice s, const char *rbuf, size_t rlen)
{
    if (s.n && (s.p < rbuf || s.p + s.n > rbuf + rlen))
        abort();
}

static void check_request(const struct http_req *r, const struct h1_limits *lim, const char *rbuf,
                          size_t rlen)
{
    if (r->head_bytes > lim->header_max || r->nhdrs > lim->header_count_max ||
        r->nhdrs > HTTP_HEADERS_MAX || r->body.n > lim->body_max ||
        r->body_received > lim->body_max)
        abort();
    /* body_received counts the bytes as sent; body holds them decoded */
    if (r->content_length >= 0 && !r->chunked && (uint64_t)r->content_length != r->body_received)
        abort();
    if (r->target.n == 0 || r->target.p[0] != '/' || r->path.n == 0 || r->path.p[0] != '/')
        abort();
    check_slice(r->method_name, rbuf, rlen);
    check_slice(r->target, rbuf, rlen);
    unsigned hosts = 0;
    for (unsigned i = 0; i < r->nhdrs; i++) {
        const struct http_header *h = &r->hdrs[i];
        check_slice(h->name, rbuf, rlen);
        check_slice(h->value, rbuf, rlen);
        if (h->name.n == 0 || memchr(h->value.p, '\n', h->value.n) ||
            memchr(h->value.p, '\r', h->value.n))
            abort();
        if (slice_ieq(h->name, "host"))
            hosts++;
    }
    if (r->version_minor >= 1 && hosts != 1)
        abort();
    (void)h1_header(r, "x-corr-id");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] & 0x80 ? size : (size_t)(data[0] & 0x7f) + 1;
    struct h1_limits lim =
        data[0] & 0x40 ? (struct h1_limits){64, 8, 16, 2} : (struct h1_limits){1024, 16, 4096, 10};
    const char *in = (const char *)data + 1;
    size_t n = size - 1, in_pos = 0;

    size_t rcap = lim.header_max + 64;
    char *rbuf = malloc(rcap);
    if (rbuf == NULL)
        return 0;
    size_t rlen = 0, rpos = 0, body_base = 0;
    struct h1 h;
    struct http_req req;
    memset(&req, 0, sizeof(req));
    h1_init(&h, &lim);
    bool bound = false, stop = false;
    for (;;) {
        while (!stop) {
            if (!bound) {
                if (rpos == rlen) {
                    rpos = rlen = 0;
                    break;
                }
                memmove(rbuf, rbuf + rpos, rlen - rpos);
                rlen -= rpos;
                rpos = 0;
                struct buf body = req.body;
                body.n = 0;
                memset(&req, 0, sizeof(req));
                req.body = body;
                req.content_length = -1;
                h1_begin(&h, &req);
                bound = true;
                body_base = 0;
            }
            size_t used = 0;
            enum h1_result res = h1_feed(&h, rbuf, rpos, rlen, &used);
            if (used > rlen - rpos)
                abort();
            rpos += used;
            if (res == H1_NEED_MORE) {
                if (rpos != rlen)
                    abort(); /* NEED_MORE consumes everything */
                if (h.in_body)
                    rpos = rlen = body_base;
                else if (rlen == rcap)
                    stop = true; /* conn.c: 431 */
                break;
            }
            if (res == H1_HEAD_DONE) {
                if (req.head_bytes == 0 || req.head_bytes > lim.header_max)
                    abort();
                body_base = rpos;
                continue;
            }
            if (res == H1_REQ_DONE) {
                check_request(&req, &lim, rbuf, rlen);
                if (h.inflate != NULL) /* freed when the body ended */
                    abort();
                if (h.coding == ADMIT_CODING_IDENTITY && req.body.n != req.body_received)
                    abort();
                bound = false;
                continue;
            }
            if (h.err_reason == NULL || og_err_http(h.err) < 400)
                abort();
            stop = true;
        }
        if (stop || in_pos == n)
            break;
        size_t want = n - in_pos < step ? n - in_pos : step;
        if (want > rcap - rlen)
            want = rcap - rlen;
        memcpy(rbuf + rlen, in + in_pos, want);
        rlen += want;
        in_pos += want;
    }
    h1_release(&h);
    buf_release(&req.body);
    buf_release(&req.resp_hdrs);
    free(rbuf);
    return 0;
}
