/*
 * h1.c — llhttp glue for requests.
 *
 * llhttp does the parsing (it rejects bare LF, CL+TE, duplicate CL, bad
 * tokens); this file adds what llhttp lets through and what an edge service
 * needs: obs-fold and whitespace before the colon are refused (RFC 9112
 * §5.1–5.2), HTTP/1.1 requires exactly one Host (RFC 9112 §3.2), only
 * origin-form targets are served, and every size limit is checked as bytes
 * arrive, before anything is allocated.
 *
 * A body with a Content-Encoding is decoded as it arrives (src/admit/
 * inflate.c): body_max holds for the bytes received and for the bytes
 * decoded, and what handlers see in req->body is the decoded body, whatever
 * the route. The coding is checked with the head, so an unsupported or
 * stacked one is refused (415) before any of the body is read — and before
 * a client waiting on Expect: 100-continue sends it.
 */
#include "http/h1.h"

#include <string.h>
#include <strings.h>

static int fail(struct h1 *h, enum og_err e, const char *reason)
{
    h->err = e;
    h->err_reason = reason;
    return -1; /* llhttp turns a non-zero callback return into HPE_USER */
}

/* Extend a slice with a piece llhttp hands us. The head never moves while it
 * is parsed, so pieces of one token split across reads are contiguous and
 * nothing is copied. */
static int extend(struct h1 *h, struct slice *s, const char *at, size_t n)
{
    if (s->p == NULL) {
        s->p = at;
        s->n = n;
        return 0;
    }
    if (s->p + s->n != at)
        return fail(h, OG_E_INTERNAL, "request head moved while parsing");
    s->n += n;
    return 0;
}

static struct h1 *H(llhttp_t *p)
{
    return (struct h1 *)p->data;
}

static int on_message_begin(llhttp_t *p)
{
    H(p)->in_head = true;
    return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t n)
{
    return extend(H(p), &H(p)->req->method_name, at, n);
}

/* The method is known as soon as its token is: a head refused later (too
 * many header lines, a bad header) is still labelled with it. */
static int on_method_complete(llhttp_t *p)
{
    H(p)->req->method = p->method;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    return extend(H(p), &H(p)->req->target, at, n);
}

/* Trailer fields (after a chunked body) are read and dropped (RFC 9110
 * §6.5.1 lets a recipient discard them): they arrive in the space conn.c
 * reuses for body bytes, so slices to them would not stay valid. Their size
 * counts against the head cap, so they cannot stream forever. */
static int trailer(struct h1 *h, size_t n)
{
    h->trailer_bytes += n;
    if (h->trailer_bytes > h->lim.header_max)
        return fail(h, OG_E_HEADER_TOO_LARGE, "trailer fields over the head cap");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct h1 *h = H(p);
    struct http_req *r = h->req;
    if (h->in_body)
        return trailer(h, n);
    if (h->last_was_value || r->nhdrs == 0) {
        if (r->nhdrs >= h->lim.header_count_max || r->nhdrs >= HTTP_HEADERS_MAX)
            return fail(h, OG_E_HEADER_TOO_LARGE, "too many header fields");
        r->hdrs[r->nhdrs++] = (struct http_header){{NULL, 0}, {NULL, 0}};
        h->last_was_value = false;
    }
    return extend(h, &r->hdrs[r->nhdrs - 1].name, at, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct h1 *h = H(p);
    struct http_req *r = h->req;
    if (h->in_body)
        return trailer(h, n);
    h->last_was_value = true;
    struct slice *v = &r->hdrs[r->nhdrs - 1].value;
    if (v->p == NULL && n == 0)
        return 0;
    /* llhttp hands a folded value over in pieces with the fold between them. */
    if (v->p != NULL && v->p + v->n != at)
        return fail(h, OG_E_BAD_REQUEST, "obsolete line folding in a header");
    return extend(h, v, at, n);
}

static void trim(struct slice *s)
{
    while (s->n && (s->p[0] == ' ' || s->p[0] == '\t'))
        s->p++, s->n--;
    while (s->n && (s->p[s->n - 1] == ' ' || s->p[s->n - 1] == '\t'))
        s->n--;
}

static int check_headers(struct h1 *h)
{
    struct http_req *r = h->req;
    unsigned hosts = 0;
    for (unsigned i = 0; i < r->nhdrs; i++) {
        struct http_header *x = &r->hdrs[i];
        if (x->value.p == NULL)
            x->value.p = x->name.p + x->name.n;
        trim(&x->value);
        /* obs-fold: llhttp keeps the folded line inside the value. */
        if (memchr(x->value.p, '\n', x->value.n) || memchr(x->value.p, '\r', x->value.n))
            return fail(h, OG_E_BAD_REQUEST, "obsolete line folding in a header");
        /* llhttp's token check already refuses "Name :"; keep the rule here too
         * so a lenient build of the parser cannot bring it back. */
        if (x->name.n == 0 || x->name.p[x->name.n - 1] == ' ' || x->name.p[x->name.n - 1] == '\t')
            return fail(h, OG_E_BAD_REQUEST, "whitespace before a header colon");
        if (slice_ieq(x->name, "host"))
            hosts++;
        else if (slice_ieq(x->name, "expect") && slice_ieq(x->value, "100-continue"))
            r->expect_continue = true;
    }
    if (r->version_minor >= 1 && hosts != 1)
        return fail(h, OG_E_BAD_REQUEST, hosts ? "more than one Host header" : "missing Host");
    return 0;
}

/* The body's coding, from every Content-Encoding field (one list, RFC 9110
 * §5.3). Unknown or stacked codings are 415; the answer names the codings
 * we take in Accept-Encoding (RFC 9110 §12.5.3). */
static int read_coding(struct h1 *h)
{
    struct http_req *r = h->req;
    for (unsigned i = 0; i < r->nhdrs; i++) {
        const char *why;
        if (slice_ieq(r->hdrs[i].name, "content-encoding") &&
            admit_coding_parse(r->hdrs[i].value, &h->coding, &why) != 0) {
            static const char ACCEPT[] = "Accept-Encoding: gzip, deflate, zstd\r\n";
            /* Short of memory, the 415 goes out without it. */
            int named = buf_append(&r->resp_hdrs, ACCEPT, sizeof(ACCEPT) - 1);
            (void)named;
            return fail(h, OG_E_UNSUPPORTED_MEDIA, why);
        }
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct h1 *h = H(p);
    struct http_req *r = h->req;
    r->version_minor = p->http_minor;
    if (p->http_major != 1)
        return fail(h, OG_E_BAD_REQUEST, "unsupported HTTP version");
    if (check_headers(h) != 0)
        return -1;
    r->keep_alive = llhttp_should_keep_alive(p);
    /* We never answer 101: an Upgrade (e.g. curl's h2c) request is served as
     * plain HTTP/1.1 and the connection goes on, so llhttp must not stop at
     * the end of the message waiting for another protocol. */
    p->upgrade = 0;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    if (r->content_length > (int64_t)h->lim.body_max)
        return fail(h, OG_E_BODY_CAP, "declared Content-Length over the body cap");
    /* Only a request with a body has a representation to decode (RFC 9110
     * §8.4): a stray Content-Encoding on a GET is ignored. */
    h->coding = ADMIT_CODING_IDENTITY;
    if ((r->content_length > 0 || r->chunked) && read_coding(h) != 0)
        return -1;

    /* Origin-form only: we are not a forward proxy. */
    const struct slice t = r->target;
    if (t.n == 0 || t.p[0] != '/')
        return fail(h, OG_E_BAD_REQUEST, "request target must be an absolute path");
    const char *q = memchr(t.p, '?', t.n);
    r->path = (struct slice){t.p, q ? (size_t)(q - t.p) : t.n};
    r->query = q ? (struct slice){q + 1, t.n - (size_t)(q - t.p) - 1} : (struct slice){q, 0};

    /* A coded body's decoded size is unknown: its decoder grows the buffer. */
    if (r->content_length > 0 && h->coding == ADMIT_CODING_IDENTITY &&
        buf_reserve(&r->body, (size_t)r->content_length) != 0)
        return fail(h, OG_E_INTERNAL, "out of memory for the request body");
    h->in_head = false;
    h->in_body = true;
    return HPE_PAUSED;
}

/* Refuse a coded body: the decoder's reason, and its memory back at once. */
static int inflate_failed(struct h1 *h)
{
    const char *why;
    enum og_err e = admit_inflate_error(h->inflate, &why);
    h1_release(h);
    return fail(h, e, why); /* why is a static string */
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct h1 *h = H(p);
    struct http_req *r = h->req;
    if (n > h->lim.body_max || r->body_received > h->lim.body_max - n)
        return fail(h, OG_E_BODY_CAP, "request body over the body cap");
    r->body_received += n;
    if (h->coding == ADMIT_CODING_IDENTITY) {
        if (buf_append(&r->body, at, n) != 0)
            return fail(h, OG_E_INTERNAL, "out of memory for the request body");
        return 0;
    }
    /* The decoder is made on the first body byte: a coded request with an
     * empty body costs nothing. */
    if (h->inflate == NULL) {
        const struct admit_inflate_limits lim = {h->lim.body_max, h->lim.decompress_ratio,
                                                 ADMIT_INFLATE_RATIO_SLACK_BYTES};
        h->inflate = admit_inflate_new(h->coding, &lim);
        if (h->inflate == NULL)
            return fail(h, OG_E_INTERNAL, "out of memory for the body decoder");
    }
    if (admit_inflate_feed(h->inflate, at, n, &r->body) != 0)
        return inflate_failed(h);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct h1 *h = H(p);
    h->in_body = false;
    if (h->inflate != NULL) {
        if (admit_inflate_end(h->inflate) != 0)
            return inflate_failed(h);
        h1_release(h); /* the decoder's window is not kept while the handler runs */
    }
    return HPE_PAUSED;
}

static const llhttp_settings_t SETTINGS = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_method_complete = on_method_complete,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void h1_init(struct h1 *h, const struct h1_limits *lim)
{
    memset(h, 0, sizeof(*h));
    h->lim = *lim;
    llhttp_init(&h->p, HTTP_REQUEST, &SETTINGS);
    h->p.data = h;
}

void h1_begin(struct h1 *h, struct http_req *req)
{
    h1_release(h);
    h->req = req;
    req->method = HTTP_METHOD_UNKNOWN;
    h->in_head = h->in_body = false;
    h->last_was_value = false;
    h->trailer_bytes = 0;
    h->err = OG_E_BAD_REQUEST;
    h->err_reason = NULL;
    h->base = NULL;
}

void h1_release(struct h1 *h)
{
    if (h->inflate == NULL)
        return; /* every request without a coded body in flight */
    admit_inflate_free(h->inflate);
    h->inflate = NULL;
}

enum h1_result h1_feed(struct h1 *h, const char *buf, size_t off, size_t len, size_t *consumed)
{
    if (h->base == NULL) {
        h->base = buf;
        h->head_start = off;
    }
    if (llhttp_get_errno(&h->p) == HPE_PAUSED)
        llhttp_resume(&h->p);
    const char *start = buf + off;
    enum llhttp_errno e = llhttp_execute(&h->p, start, len - off);
    size_t used = e == HPE_OK ? len - off : (size_t)(llhttp_get_error_pos(&h->p) - start);
    *consumed = used;
    size_t head_len = off + used - h->head_start;

    if (e == HPE_PAUSED) {
        if (h->req->head_bytes == 0) {
            h->req->head_bytes = (uint32_t)head_len;
            if (head_len > h->lim.header_max) {
                h->err = OG_E_HEADER_TOO_LARGE;
                h->err_reason = "request head over the cap";
                return H1_ERROR;
            }
            /* llhttp 8 accepts a bare LF as the head's last line; RFC 9112
             * §2.2 lets a server refuse it, and a proxy in front of us might
             * frame it differently. The head is contiguous in buf. */
            const char *end = start + used;
            if (head_len < 4 || memcmp(end - 4, "\r\n\r\n", 4) != 0) {
                h->err = OG_E_BAD_REQUEST;
                h->err_reason = "bare LF in the request head";
                return H1_ERROR;
            }
            if (h->in_body)
                return H1_HEAD_DONE;
        }
        return H1_REQ_DONE;
    }
    if (e != HPE_OK) {
        if (h->err_reason == NULL) { /* llhttp's own error, not one of fail()'s */
            h->err = OG_E_BAD_REQUEST;
            h->err_reason = llhttp_get_error_reason(&h->p);
        }
        /* An oversized head reported as a token error is still a size problem. */
        if (h->in_head && head_len > h->lim.header_max && h->err == OG_E_BAD_REQUEST) {
            h->err = OG_E_HEADER_TOO_LARGE;
            h->err_reason = "request head over the cap";
        }
        return H1_ERROR;
    }
    if (h->in_head && head_len > h->lim.header_max) {
        h->err = OG_E_HEADER_TOO_LARGE;
        h->err_reason = "request head over the cap";
        return H1_ERROR;
    }
    return H1_NEED_MORE;
}

const struct slice *h1_header(const struct http_req *req, const char *name)
{
    /* The name's length once, not per header: most names differ in length
     * and are passed over without a call (this runs on every request). */
    size_t n = strlen(name);
    for (unsigned i = 0; i < req->nhdrs; i++) {
        const struct slice *h = &req->hdrs[i].name;
        if (h->n == n && strncasecmp(h->p, name, n) == 0)
            return &req->hdrs[i].value;
    }
    return NULL;
}
