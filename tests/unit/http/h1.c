/*
 * h1.c — the HTTP/1.1 request reader: split feeding, pipelining, limits,
 * chunked framing, strictness, and over-reads against a guard page.
 *
 * Requests are read through a small copy of conn.c's read loop (drive()):
 * one read buffer of header_max + room bytes, compacted between requests,
 * with the space after the head reused while a body streams in. A request
 * must give the same result however its bytes are cut into reads.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "http/h1.h"

/* ---- a conn.c-shaped driver ------------------------------------------------ */

/* Append a one-line summary of a finished request to out. The slices are
 * copied at once: like conn.c, the driver compacts the buffer afterwards. */
static void summarize(struct buf *out, const struct http_req *r, const char *rbuf, size_t rcap)
{
    char line[8192]; /* larger than any head the tests build */
    int n = snprintf(line, sizeof(line),
                     "REQ %.*s %.*s path=%.*s query=%.*s v=1.%d ka=%d chunked=%d cl=%lld "
                     "expect=%d head=%u hdrs=%u",
                     (int)r->method_name.n, r->method_name.p, (int)r->target.n, r->target.p,
                     (int)r->path.n, r->path.p, (int)r->query.n, r->query.p ? r->query.p : "",
                     r->version_minor, r->keep_alive, r->chunked, (long long)r->content_length,
                     r->expect_continue, r->head_bytes, r->nhdrs);
    cr_assert(buf_append(out, line, (size_t)n) == 0);
    for (unsigned i = 0; i < r->nhdrs; i++) {
        const struct http_header *h = &r->hdrs[i];
        /* zero copy: every slice points into the read buffer */
        cr_assert(h->name.p >= rbuf && h->name.p + h->name.n <= rbuf + rcap);
        cr_assert(h->value.p >= rbuf && h->value.p + h->value.n <= rbuf + rcap);
        n = snprintf(line, sizeof(line), " [%.*s=%.*s]", (int)h->name.n, h->name.p, (int)h->value.n,
                     h->value.p);
        cr_assert(buf_append(out, line, (size_t)n) == 0);
    }
    n = snprintf(line, sizeof(line), " body=%zu:", r->body.n);
    cr_assert(buf_append(out, line, (size_t)n) == 0);
    cr_assert(buf_append(out, r->body.p ? r->body.p : "", r->body.n) == 0);
    cr_assert(buf_append(out, "\n", 1) == 0);
}

struct drive_opt {
    struct h1_limits lim;
    size_t room;        /* read buffer = header_max + room (conn.c: 16 KiB) */
    const size_t *cuts; /* read boundaries, ascending, or NULL */
    size_t ncuts;
    size_t step; /* else reads of this many bytes (0 = all at once) */
};

static const struct h1_limits LIM = {16 * 1024, 100, 1024 * 1024, 10};

/* Feed input as conn_process does and return the summary text (caller frees).
 * Requests print as "REQ ..." lines, an error as "ERR code reason", bytes
 * left in an unfinished request as "EOF". */
static char *drive(const char *in, size_t n, const struct drive_opt *o)
{
    struct h1 h;
    struct http_req req;
    struct buf out = {0};
    size_t rcap = o->lim.header_max + (o->room ? o->room : 16 * 1024);
    char *rbuf = malloc(rcap);
    size_t rlen = 0, rpos = 0, body_base = 0, in_pos = 0, cut = 0;
    bool bound = false, stop = false;

    cr_assert(rbuf != NULL);
    memset(&req, 0, sizeof(req));
    h1_init(&h, &o->lim);
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
            cr_assert(used <= rlen - rpos);
            rpos += used;
            if (res == H1_NEED_MORE) {
                cr_assert_eq(rpos, rlen, "NEED_MORE must consume everything");
                if (h.in_body)
                    rpos = rlen = body_base;
                else if (rlen == rcap) {
                    cr_assert(buf_append(&out, "ERR header_too_large buffer\n", 28) == 0);
                    stop = true;
                }
                break;
            }
            if (res == H1_HEAD_DONE) {
                body_base = rpos;
                continue;
            }
            if (res == H1_REQ_DONE) {
                summarize(&out, &req, rbuf, rcap);
                bound = false;
                continue;
            }
            char line[256];
            int k = snprintf(line, sizeof(line), "ERR %s %s\n", og_err_code(h.err),
                             h.err_reason ? h.err_reason : "-");
            cr_assert(buf_append(&out, line, (size_t)k) == 0);
            stop = true;
        }
        if (stop || in_pos == n)
            break;
        size_t end = n;
        if (o->cuts) {
            while (cut < o->ncuts && o->cuts[cut] <= in_pos)
                cut++;
            if (cut < o->ncuts)
                end = o->cuts[cut];
        } else if (o->step && in_pos + o->step < n) {
            end = in_pos + o->step;
        }
        size_t want = end - in_pos;
        if (want > rcap - rlen)
            want = rcap - rlen;
        memcpy(rbuf + rlen, in + in_pos, want);
        rlen += want;
        in_pos += want;
    }
    if (!stop && bound)
        cr_assert(buf_append(&out, "EOF\n", 4) == 0);
    h1_release(&h); /* as conn.c does with a request it drops */
    buf_release(&req.body);
    buf_release(&req.resp_hdrs);
    free(rbuf);
    cr_assert(buf_append(&out, "", 1) == 0);
    return out.p;
}

static char *run(const char *in, const struct h1_limits *lim)
{
    struct drive_opt o = {*lim, 0, NULL, 0, 0};
    return drive(in, strlen(in), &o);
}

#define EXPECT(in, lim, want)                                                                      \
    do {                                                                                           \
        char *got_ = run((in), (lim));                                                             \
        cr_assert_str_eq(got_, (want));                                                            \
        free(got_);                                                                                \
    } while (0)

/* The result must not depend on how reads cut the bytes: every single cut
 * point, every read size, and a small read buffer so body space is reused. */
static void same_every_split(const char *in, const struct h1_limits *lim, size_t room)
{
    size_t n = strlen(in);
    struct drive_opt whole = {*lim, room, NULL, 0, 0};
    char *ref = drive(in, n, &whole);
    for (size_t k = 1; k < n; k++) {
        struct drive_opt o = {*lim, room, &k, 1, 0};
        char *got = drive(in, n, &o);
        cr_assert_str_eq(got, ref, "cut at byte %zu of:\n%s", k, in);
        free(got);
    }
    for (size_t s = 1; s <= n; s++) {
        struct drive_opt o = {*lim, room, NULL, 0, s};
        char *got = drive(in, n, &o);
        cr_assert_str_eq(got, ref, "reads of %zu bytes of:\n%s", s, in);
        free(got);
    }
    free(ref);
}

/* ---- split feeding --------------------------------------------------------- */

static const char *const SPLIT_CASES[] = {
    "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /v1/view/x?a=1&b=2 HTTP/1.1\r\nHost: example.org\r\nUser-Agent: t/1\r\n"
    "Accept: */*\r\nX-Corr-ID: abc-123\r\n\r\n",
    "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
    "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n",
    "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3\r\nabc\r\n0\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
    "xyzGET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    /* errors must be found at the same place too */
    "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n",
};

Test(h1, every_cut_gives_the_same_result)
{
    for (size_t i = 0; i < sizeof(SPLIT_CASES) / sizeof(SPLIT_CASES[0]); i++)
        same_every_split(SPLIT_CASES[i], &LIM, 0);
}

Test(h1, every_cut_with_body_space_reused)
{
    /* A read buffer only 64 bytes past the head: body and trailer bytes land
     * in recycled space, as in conn.c under a large body. */
    struct h1_limits lim = {256, 100, 4096, 10};
    for (size_t i = 0; i < sizeof(SPLIT_CASES) / sizeof(SPLIT_CASES[0]); i++)
        same_every_split(SPLIT_CASES[i], &lim, 64);
}

Test(h1, split_results_are_the_right_ones)
{
    EXPECT(SPLIT_CASES[0], &LIM,
           "REQ GET /healthz path=/healthz query= v=1.1 ka=1 chunked=0 cl=-1 expect=0 head=34 "
           "hdrs=1 [Host=a] body=0:\n");
    EXPECT(SPLIT_CASES[3], &LIM,
           "REQ POST /up path=/up query= v=1.1 ka=1 chunked=1 cl=-1 expect=0 head=58 hdrs=2 "
           "[Host=a] [Transfer-Encoding=chunked] body=16:hello 0123456789\n");
    /* trailers are read and dropped: they never become request headers */
    EXPECT(SPLIT_CASES[4], &LIM,
           "REQ PUT /c path=/c query= v=1.1 ka=1 chunked=1 cl=-1 expect=0 head=56 hdrs=2 "
           "[Host=a] [Transfer-Encoding=chunked] body=3:abc\n");
    EXPECT(SPLIT_CASES[7], &LIM,
           "REQ POST /e path=/e query= v=1.1 ka=1 chunked=0 cl=2 expect=1 head=70 hdrs=3 "
           "[Host=a] [Expect=100-continue] [Content-Length=2] body=2:ok\n");
}

/* ---- pipelining and connection semantics ---------------------------------- */

Test(h1, pipelined_requests_come_out_in_order)
{
    EXPECT(SPLIT_CASES[5], &LIM,
           "REQ GET /a path=/a query= v=1.1 ka=1 chunked=0 cl=-1 expect=0 head=28 hdrs=1 "
           "[Host=a] body=0:\n"
           "REQ POST /b path=/b query= v=1.1 ka=1 chunked=0 cl=3 expect=0 head=48 hdrs=2 "
           "[Host=a] [Content-Length=3] body=3:xyz\n"
           "REQ GET /c path=/c query= v=1.1 ka=0 chunked=0 cl=-1 expect=0 head=47 hdrs=2 "
           "[Host=a] [Connection=close] body=0:\n");
    /* a bad request after a good one: the good one is still served */
    EXPECT(SPLIT_CASES[12], &LIM,
           "REQ GET / path=/ query= v=1.1 ka=1 chunked=0 cl=-1 expect=0 head=27 hdrs=1 "
           "[Host=a] body=0:\n"
           "ERR bad_request missing Host\n");
}

Test(h1, keep_alive_rules)
{
    EXPECT("GET / HTTP/1.0\r\n\r\n", &LIM,
           "REQ GET / path=/ query= v=1.0 ka=0 chunked=0 cl=-1 expect=0 head=18 hdrs=0 "
           "body=0:\n");
    EXPECT("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &LIM,
           "REQ GET / path=/ query= v=1.0 ka=1 chunked=0 cl=-1 expect=0 head=42 hdrs=1 "
           "[Connection=keep-alive] body=0:\n");
    EXPECT("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", &LIM,
           "REQ GET / path=/ query= v=1.1 ka=0 chunked=0 cl=-1 expect=0 head=46 hdrs=2 "
           "[Host=a] [Connection=Close] body=0:\n");
}

Test(h1, header_lookup_and_trimming)
{
    const char *in = "GET /p?q HTTP/1.1\r\nhost:  spaced \t\r\nX-Empty:\r\nX-CORR-id: v1\r\n\r\n";
    struct h1 h;
    struct http_req r = {0};
    size_t used;
    h1_init(&h, &LIM);
    h1_begin(&h, &r);
    cr_assert_eq(h1_feed(&h, in, 0, strlen(in), &used), H1_HEAD_DONE);
    const struct slice *v = h1_header(&r, "Host");
    cr_assert(v && slice_eq(*v, "spaced", 6));
    v = h1_header(&r, "x-corr-id");
    cr_assert(v && slice_eq(*v, "v1", 2));
    v = h1_header(&r, "x-empty");
    cr_assert(v && v->n == 0);
    cr_assert_null(h1_header(&r, "x-missing"));
    cr_assert(slice_eq(r.path, "/p", 2) && slice_eq(r.query, "q", 1));
    cr_assert(r.target.p == in + 4, "target is a slice of the input, not a copy");
    cr_assert_eq(h1_feed(&h, in, used, strlen(in), &used), H1_REQ_DONE);
    buf_release(&r.body);
}

/* ---- limits ---------------------------------------------------------------- */

/* A GET whose head is exactly n bytes. */
static char *head_of(size_t n)
{
    static const char pre[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
    static const char post[] = "\r\n\r\n";
    size_t fixed = sizeof(pre) - 1 + sizeof(post) - 1;
    cr_assert(n > fixed);
    char *s = malloc(n + 1);
    memcpy(s, pre, sizeof(pre) - 1);
    memset(s + sizeof(pre) - 1, 'p', n - fixed);
    memcpy(s + n - (sizeof(post) - 1), post, sizeof(post));
    cr_assert_eq(strlen(s), n);
    return s;
}

Test(h1, header_max_at_and_one_past)
{
    struct h1_limits lim = {1024, 100, 0, 10};
    for (size_t step = 0; step <= 7; step += 7) {
        char *at = head_of(1024), *past = head_of(1025);
        struct drive_opt o = {lim, 0, NULL, 0, step};
        char *got = drive(at, 1024, &o);
        cr_assert(strncmp(got, "REQ GET /", 9) == 0, "%s", got);
        cr_assert(strstr(got, " head=1024 ") != NULL, "%s", got);
        free(got);
        got = drive(past, 1025, &o);
        cr_assert_str_eq(got, "ERR header_too_large request head over the cap\n");
        free(got);
        free(at);
        free(past);
    }
}

Test(h1, header_max_refused_before_the_head_ends)
{
    /* An endless header line is refused once it passes the cap, without
     * waiting for the end of the head. */
    struct h1_limits lim = {1024, 100, 0, 10};
    size_t n = 4096;
    char *s = malloc(n + 1);
    memcpy(s, "GET / HTTP/1.1\r\nX-Long: ", 24);
    memset(s + 24, 'a', n - 24);
    s[n] = '\0';
    struct drive_opt o = {lim, 64, NULL, 0, 100};
    char *got = drive(s, n, &o);
    cr_assert_str_eq(got, "ERR header_too_large request head over the cap\n");
    free(got);
    free(s);
}

Test(h1, header_count_max)
{
    struct h1_limits lim = {16384, 8, 0, 10};
    char in[1024];
    /* Host + 7 = 8 fields: fine; one more: 431 */
    size_t n = (size_t)sprintf(in, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 7; i++)
        n += (size_t)sprintf(in + n, "X-%d: v\r\n", i);
    strcpy(in + n, "\r\n");
    char *got = run(in, &lim);
    cr_assert(strstr(got, " hdrs=8 ") != NULL, "%s", got);
    free(got);
    n += (size_t)sprintf(in + n, "X-last: v\r\n");
    strcpy(in + n, "\r\n");
    EXPECT(in, &lim, "ERR header_too_large too many header fields\n");
    /* the compiled-in array bound holds whatever the configured count */
    struct h1_limits big = {1 << 20, 100000, 0, 10};
    n = (size_t)sprintf(in, "GET / HTTP/1.1\r\nHost: a\r\n");
    char *many = malloc(HTTP_HEADERS_MAX * 8 + 64);
    memcpy(many, in, n);
    for (int i = 0; i < HTTP_HEADERS_MAX; i++)
        n += (size_t)sprintf(many + n, "X: v\r\n");
    strcpy(many + n, "\r\n");
    EXPECT(many, &big, "ERR header_too_large too many header fields\n");
    free(many);
}

/* Regression: a head refused before it ended (too many header lines, a bad
 * header) kept method 0, which is llhttp's HTTP_DELETE, so it was counted and
 * logged as DELETE. The method is set when its token is read; until then it
 * is HTTP_METHOD_UNKNOWN. */
static int method_after(const char *in, const struct h1_limits *lim, enum h1_result want)
{
    struct h1 h;
    struct http_req req;
    size_t used = 0, n = strlen(in);

    memset(&req, 0, sizeof(req)); /* method 0 = HTTP_DELETE, as conn.c leaves it */
    h1_init(&h, lim);
    h1_begin(&h, &req);
    cr_assert_eq(req.method, HTTP_METHOD_UNKNOWN);
    cr_assert_eq(h1_feed(&h, in, 0, n, &used), want, "%s", in);
    buf_release(&req.body);
    return req.method;
}

Test(h1, method_of_a_head_refused_early_is_not_delete)
{
    struct h1_limits lim = {16384, 2, 0, 10};
    cr_assert_eq(
        method_after("GET / HTTP/1.1\r\nHost: a\r\nX-1: a\r\nX-2: b\r\n\r\n", &lim, H1_ERROR),
        HTTP_GET, "too many header lines: the method was read");
    cr_assert_eq(method_after("PUT / HTTP/1.1\r\nHost: a\r\nX\x01: b\r\n\r\n", &lim, H1_ERROR),
                 HTTP_PUT, "a bad header name");
    cr_assert_eq(method_after("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", &lim, H1_ERROR),
                 HTTP_METHOD_UNKNOWN, "a token llhttp does not know");
    cr_assert_eq(method_after("DEL", &lim, H1_NEED_MORE), HTTP_METHOD_UNKNOWN, "half a token");
    cr_assert_eq(method_after("DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n", &lim, H1_HEAD_DONE),
                 HTTP_DELETE);
    cr_assert_eq(method_after("PROPFIND /x HTTP/1.1\r\nHost: a\r\n\r\n", &lim, H1_HEAD_DONE),
                 HTTP_PROPFIND);
}

Test(h1, body_max_content_length)
{
    struct h1_limits lim = {16384, 100, 10, 10};
    EXPECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", &lim,
           "REQ POST / path=/ query= v=1.1 ka=1 chunked=0 cl=10 expect=0 head=48 hdrs=2 "
           "[Host=a] [Content-Length=10] body=10:0123456789\n");
    /* refused from the declaration alone: no body byte was sent */
    EXPECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", &lim,
           "ERR body_cap declared Content-Length over the body cap\n");
    EXPECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999\r\n\r\n", &lim,
           "ERR body_cap declared Content-Length over the body cap\n");
    struct h1_limits zero = {16384, 100, 0, 10};
    EXPECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", &zero,
           "ERR body_cap declared Content-Length over the body cap\n");
}

Test(h1, body_max_chunked_mid_stream)
{
    struct h1_limits lim = {16384, 100, 10, 10};
    const char *head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    char in[512];
    snprintf(in, sizeof(in), "%s4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n", head);
    char *got = run(in, &lim);
    cr_assert(strstr(got, "body=10:abcdefghij\n") != NULL, "%s", got);
    free(got);
    /* one byte over, in the second chunk: refused when it arrives */
    snprintf(in, sizeof(in), "%s4\r\nabcd\r\n7\r\nefghijk", head);
    same_every_split(in, &lim, 0);
    got = run(in, &lim);
    cr_assert_str_eq(got, "ERR body_cap request body over the body cap\n");
    free(got);
    /* a huge declared chunk is refused as its bytes arrive */
    snprintf(in, sizeof(in), "%sffffffff\r\n0123456789X", head);
    EXPECT(in, &lim, "ERR body_cap request body over the body cap\n");
}

/* ---- chunked framing ------------------------------------------------------- */

Test(h1, chunked_edge_cases)
{
    const char *head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const struct {
        const char *body;
        const char *want; /* substring of the result */
    } cases[] = {
        {"5;name=value\r\nhello\r\n0\r\n\r\n", "body=5:hello\n"},
        {"5;x\r\nhello\r\n0\r\n\r\n", "body=5:hello\n"},
        {"5;q=\"quoted\"\r\nhello\r\n0;last\r\n\r\n", "body=5:hello\n"},
        {"A\r\n0123456789\r\n0\r\n\r\n", "body=10:0123456789\n"},
        {"0\r\n\r\n", "body=0:\n"},
        {"0\r\nX-T: a\r\nX-U: b\r\n\r\n", "hdrs=2 [Host=a] [Transfer-Encoding=chunked] body=0:\n"},
        {"000002\r\nab\r\n0\r\n\r\n", "body=2:ab\n"},
        {"zz\r\nab\r\n0\r\n\r\n", "ERR bad_request "},
        {"5\r\nhelloXX\r\n0\r\n\r\n", "ERR bad_request "},
        {"-1\r\n", "ERR bad_request "},
        {"1ffffffffffffffff\r\n", "ERR bad_request "}, /* 65-bit size */
        {"fffffffffffffffff\r\n", "ERR bad_request "},
        {"5\r\nhello\r\n\r\n", "ERR bad_request "}, /* missing last chunk */
        {"5\nhello\n0\n\n", "ERR bad_request "},    /* bare LF */
    };
    struct h1_limits lim = {16384, 100, 1 << 20, 10};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[512];
        snprintf(in, sizeof(in), "%s%s", head, cases[i].body);
        char *got = run(in, &lim);
        cr_assert(strstr(got, cases[i].want) != NULL, "case %zu: %s\ngot: %s", i, cases[i].body,
                  got);
        free(got);
    }
}

/* ---- strictness ------------------------------------------------------------ */

Test(h1, invalid_requests_are_400)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"GET / HTTP/1.1\nHost: a\n\n", "ERR bad_request "},
        {"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", "ERR bad_request "},
        {"GET / HTTP/1.1\r\nHost: a\r\n\n", "ERR bad_request "},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
         "ERR bad_request "},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
         "ERR bad_request "},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
         "ERR bad_request "},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", "ERR bad_request "},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "ERR bad_request "},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "ERR bad_request "},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
         "ERR bad_request obsolete line folding in a header\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n",
         "ERR bad_request obsolete line folding in a header\n"},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "ERR bad_request "},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", "ERR bad_request "},
        {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", "ERR bad_request "},
        {"GET / HTTP/1.1\r\n\r\n", "ERR bad_request missing Host\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
         "ERR bad_request more than one Host header\n"},
        {"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
         "ERR bad_request request target must be an absolute path\n"},
        {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
         "ERR bad_request request target must be an absolute path\n"},
        {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "ERR bad_request "},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "ERR bad_request "},
        {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "ERR bad_request "},
        {"G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n", "ERR bad_request "},
        {"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", "ERR bad_request "},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", "ERR bad_request "},
        {"GET / HTTP/1.1\r\nHo\x01st: a\r\n\r\n", "ERR bad_request "},
        {"GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", "ERR bad_request "},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = run(cases[i].in, &LIM);
        cr_assert(strncmp(got, cases[i].want, strlen(cases[i].want)) == 0, "case %zu: %s\ngot: %s",
                  i, cases[i].in, got);
        free(got);
    }
}

Test(h1, http10_without_host_is_fine)
{
    char *got = run("GET /x HTTP/1.0\r\n\r\n", &LIM);
    cr_assert(strncmp(got, "REQ GET /x ", 11) == 0, "%s", got);
    free(got);
}

Test(h1, upgrade_is_not_switched)
{
    /* An edge service never switches protocols: an Upgrade request is served
     * as a plain request and the connection stays HTTP/1.1. */
    char *got = run("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                    "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
                    &LIM);
    cr_assert(strncmp(got, "REQ GET / ", 10) == 0, "%s", got);
    cr_assert(strstr(got, "\nREQ GET /2 ") != NULL, "%s", got);
    free(got);
}

/* ---- guard page ------------------------------------------------------------ */

/* Copy s so that its last byte is the last readable byte before a PROT_NONE
 * page: reading one byte past the input faults. */
struct guarded {
    char *map;
    size_t maplen;
    char *p;
};

static struct guarded guard_place(const char *s, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (n + page - 1) / page * page;
    if (data == 0)
        data = page;
    struct guarded g;
    g.maplen = data + page;
    g.map = mmap(NULL, g.maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(g.map != MAP_FAILED);
    cr_assert_eq(mprotect(g.map + data, page, PROT_NONE), 0);
    g.p = g.map + data - n;
    memcpy(g.p, s, n);
    return g;
}

/* Feed every prefix of in, each against the guard page, as the only bytes
 * the reader has; then the whole input in reads of 3 bytes. Nothing is
 * asserted about the result: an over-read is a crash. */
static void feed_guarded(const char *in, const struct h1_limits *lim)
{
    size_t n = strlen(in);
    for (size_t k = 0; k <= n; k++) {
        struct guarded g = guard_place(in, k);
        struct h1 h;
        struct http_req r = {0};
        size_t off = 0, used;
        h1_init(&h, lim);
        h1_begin(&h, &r);
        for (int rounds = 0; rounds < 64; rounds++) {
            enum h1_result res = h1_feed(&h, g.p, off, k, &used);
            off += used;
            if (res == H1_ERROR || res == H1_NEED_MORE)
                break;
            if (res == H1_REQ_DONE) {
                buf_release(&r.body);
                memset(&r, 0, sizeof(r));
                h1_begin(&h, &r);
            }
        }
        h1_release(&h);
        buf_release(&r.body);
        buf_release(&r.resp_hdrs);
        munmap(g.map, g.maplen);
    }
}

Test(h1, no_over_read_past_the_input)
{
    static const char *const inputs[] = {
        "GET /a?b HTTP/1.1\r\nHost: a\r\nX-A:  v  \r\nX-Empty:\r\nX-B: w\r\n\r\nGET / HTTP/1.1\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\n"
        "T: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nX:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: \t\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip,\r\nContent-Length: 1\r\n\r\nx",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Encoding:x-gzi\r\n\r\nx",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Encoding: zstd\r\n\r\n(",
    };
    struct h1_limits small = {48, 4, 8, 10};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        feed_guarded(inputs[i], &LIM);
        feed_guarded(inputs[i], &small);
    }
    for (size_t i = 0; i < sizeof(SPLIT_CASES) / sizeof(SPLIT_CASES[0]); i++)
        feed_guarded(SPLIT_CASES[i], &LIM);
}

/* ---- coded bodies (Content-Encoding) ---------------------------------------- */

/* gzip (window_bits 31), zlib (15) or raw deflate (-15) of n bytes. */
static size_t zlib_pack(const void *src, size_t n, int window_bits, uint8_t *dst, size_t cap)
{
    z_stream s = {0};
    cr_assert_eq(deflateInit2(&s, 9, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY), Z_OK);
    s.next_in = (Bytef *)src;
    s.avail_in = (uInt)n;
    s.next_out = dst;
    s.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&s, Z_FINISH), Z_STREAM_END);
    deflateEnd(&s);
    return cap - s.avail_out;
}

/* A request with the given extra header lines and body, framed by
 * Content-Length or, when chunked, in chunks of 7 bytes. */
static size_t coded_request(char *out, size_t cap, const char *hdrs, const uint8_t *body, size_t n,
                            bool chunked)
{
    int k = snprintf(out, cap, "PUT /v1/o HTTP/1.1\r\nHost: a\r\n%s", hdrs);
    if (!chunked) {
        k += snprintf(out + k, cap - (size_t)k, "Content-Length: %zu\r\n\r\n", n);
        memcpy(out + k, body, n);
        return (size_t)k + n;
    }
    k += snprintf(out + k, cap - (size_t)k, "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t i = 0; i < n; i += 7) {
        size_t c = n - i < 7 ? n - i : 7;
        k += snprintf(out + k, cap - (size_t)k, "%zx\r\n", c);
        memcpy(out + k, body + i, c);
        k += (int)c;
        k += snprintf(out + k, cap - (size_t)k, "\r\n");
    }
    k += snprintf(out + k, cap - (size_t)k, "0\r\n\r\n");
    return (size_t)k;
}

/* The summary's body part ("body=N:bytes"), which must be `want`. */
static void expect_body(const char *got, const char *want)
{
    char tail[4096];
    snprintf(tail, sizeof(tail), " body=%zu:%s\n", strlen(want), want);
    cr_assert(strncmp(got, "REQ ", 4) == 0, "%s", got);
    size_t g = strlen(got), t = strlen(tail);
    cr_assert(g >= t && strcmp(got + g - t, tail) == 0, "got: %s\nwant: ...%s", got, tail);
}

static const char PLAIN[] = "{\"kind\":\"view\",\"parts\":{\"a\":{\"type\":\"object\"},"
                            "\"b\":{\"type\":\"object\"},\"c\":{\"type\":\"object\"}}}";

Test(h1, coded_bodies_are_decoded_however_cut)
{
    static uint8_t enc[4][512];
    size_t encn[4];
    encn[0] = zlib_pack(PLAIN, strlen(PLAIN), 15 + 16, enc[0], sizeof(enc[0]));
    encn[1] = zlib_pack(PLAIN, strlen(PLAIN), 15, enc[1], sizeof(enc[1]));
    encn[2] = zlib_pack(PLAIN, strlen(PLAIN), -15, enc[2], sizeof(enc[2]));
    encn[3] = ZSTD_compress(enc[3], sizeof(enc[3]), PLAIN, strlen(PLAIN), 3);
    cr_assert(!ZSTD_isError(encn[3]));
    static const char *const HDRS[] = {
        "Content-Encoding: gzip\r\n", "Content-Encoding: deflate\r\n",
        "content-encoding: DEFLATE\r\n", "Content-Encoding: identity, zstd\r\n"};
    /* a small read buffer too, so body space is reused under the decoder */
    struct h1_limits small = {512, 100, 4096, 10};
    for (size_t i = 0; i < 4; i++) {
        for (int chunked = 0; chunked <= 1; chunked++) {
            char in[2048];
            size_t n = coded_request(in, sizeof(in), HDRS[i], enc[i], encn[i], chunked);
            struct drive_opt whole = {LIM, 0, NULL, 0, 0};
            char *ref = drive(in, n, &whole);
            expect_body(ref, PLAIN);
            for (size_t k = 1; k < n; k++) {
                struct drive_opt o = {small, 64, &k, 1, 0};
                char *got = drive(in, n, &o);
                cr_assert_str_eq(got, ref, "coding %zu chunked %d cut at %zu", i, chunked, k);
                free(got);
            }
            for (size_t st = 1; st < 40; st++) {
                struct drive_opt o = {LIM, 0, NULL, 0, st};
                char *got = drive(in, n, &o);
                cr_assert_str_eq(got, ref, "coding %zu chunked %d reads of %zu", i, chunked, st);
                free(got);
            }
            free(ref);
        }
    }
}

Test(h1, identity_and_empty_coded_bodies)
{
    char in[1024];
    size_t n = coded_request(in, sizeof(in), "Content-Encoding: identity\r\n",
                             (const uint8_t *)"plain", 5, false);
    char *got = drive(in, n, &(struct drive_opt){LIM, 0, NULL, 0, 0});
    expect_body(got, "plain");
    free(got);
    /* a coded request without body bytes: nothing to decode, no decoder */
    struct h1 h;
    struct http_req r = {0};
    size_t used;
    const char *empty = "PUT /v1/o HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    h1_init(&h, &LIM);
    h1_begin(&h, &r);
    cr_assert_eq(h1_feed(&h, empty, 0, strlen(empty), &used), H1_HEAD_DONE);
    cr_assert_eq(h.coding, ADMIT_CODING_GZIP);
    cr_assert_eq(h1_feed(&h, empty, used, strlen(empty), &used), H1_REQ_DONE);
    cr_assert_null(h.inflate);
    cr_assert_eq(r.body.n, 0);
    /* a stray coding on a request without a body is not looked at */
    EXPECT("GET / HTTP/1.1\r\nHost: a\r\nContent-Encoding: br\r\n\r\n", &LIM,
           "REQ GET / path=/ query= v=1.1 ka=1 chunked=0 cl=-1 expect=0 head=49 hdrs=2 "
           "[Host=a] [Content-Encoding=br] body=0:\n");
    EXPECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: br\r\nContent-Length: 0\r\n\r\n", &LIM,
           "REQ POST / path=/ query= v=1.1 ka=1 chunked=0 cl=0 expect=0 head=69 hdrs=3 "
           "[Host=a] [Content-Encoding=br] [Content-Length=0] body=0:\n");
}

/* Unknown and stacked codings are refused with the head, before any body
 * byte, and the answer names what is accepted. */
Test(h1, unsupported_and_stacked_codings_are_415_before_the_body)
{
    static const char *const HDRS[] = {
        "Content-Encoding: br\r\n",
        "Content-Encoding: gzip, zstd\r\n",
        "Content-Encoding: gzip\r\nContent-Encoding: gzip\r\n",
        "Content-Encoding: identity\r\nContent-Encoding: gzip;q=1\r\n",
        "Content-Encoding: compress\r\n",
    };
    for (size_t i = 0; i < sizeof(HDRS) / sizeof(HDRS[0]); i++) {
        for (int chunked = 0; chunked <= 1; chunked++) {
            char in[1024];
            /* the head only: the body never needs to arrive */
            size_t n = coded_request(in, sizeof(in), HDRS[i], (const uint8_t *)"x", 1, chunked);
            size_t head = (size_t)(strstr(in, "\r\n\r\n") + 4 - in);
            (void)n;
            struct h1 h;
            struct http_req r = {0};
            size_t used;
            h1_init(&h, &LIM);
            h1_begin(&h, &r);
            cr_assert_eq(h1_feed(&h, in, 0, head, &used), H1_ERROR, "%s", HDRS[i]);
            cr_assert_eq(h.err, OG_E_UNSUPPORTED_MEDIA, "%s", HDRS[i]);
            cr_assert_eq(og_err_http(h.err), 415);
            cr_assert(r.resp_hdrs.n > 0 && slice_eq((struct slice){r.resp_hdrs.p, r.resp_hdrs.n},
                                                    "Accept-Encoding: gzip, deflate, zstd\r\n", 38),
                      "%.*s", (int)r.resp_hdrs.n, r.resp_hdrs.p);
            cr_assert_null(h.inflate);
            buf_release(&r.resp_hdrs);
        }
    }
}

Test(h1, truncated_and_corrupt_coded_bodies_are_400)
{
    uint8_t enc[512];
    size_t n = zlib_pack(PLAIN, strlen(PLAIN), 15 + 16, enc, sizeof(enc));
    char in[2048];
    /* framing complete, stream cut: found when the body ends */
    size_t k = coded_request(in, sizeof(in), "Content-Encoding: gzip\r\n", enc, n - 3, false);
    char *got = drive(in, k, &(struct drive_opt){LIM, 0, NULL, 0, 0});
    cr_assert_str_eq(got, "ERR bad_request truncated gzip body\n");
    free(got);
    k = coded_request(in, sizeof(in), "Content-Encoding: gzip\r\n", enc, n - 3, true);
    got = drive(in, k, &(struct drive_opt){LIM, 0, NULL, 0, 5});
    cr_assert_str_eq(got, "ERR bad_request truncated gzip body\n");
    free(got);
    /* bytes that are not what the coding says */
    k = coded_request(in, sizeof(in), "Content-Encoding: zstd\r\n", enc, n, false);
    got = drive(in, k, &(struct drive_opt){LIM, 0, NULL, 0, 0});
    cr_assert(strncmp(got, "ERR bad_request ", 16) == 0, "%s", got);
    free(got);
}

Test(h1, bombs_stop_at_the_caps)
{
    /* 4 MiB of zeros in about 4 KiB of gzip */
    size_t plain = 4 << 20, cap = 64 << 10;
    uint8_t *zeros = calloc(1, plain), *enc = malloc(cap);
    size_t n = zlib_pack(zeros, plain, 15 + 16, enc, cap);
    cr_assert_gt(plain / n, 1000);
    size_t room = 2 * n + 1024; /* chunks of 7 bytes take 12 */
    char *in = malloc(room);
    size_t k = coded_request(in, room, "Content-Encoding: gzip\r\n", enc, n, false);
    struct h1_limits lim = {16384, 100, 1 << 20, 10};
    char *got = drive(in, k, &(struct drive_opt){lim, 0, NULL, 0, 0});
    cr_assert_str_eq(got, "ERR ratio_cap request body expands more than decompress_ratio_max\n");
    free(got);
    lim.decompress_ratio = 0; /* no ratio cap: body_max still holds */
    got = drive(in, k, &(struct drive_opt){lim, 0, NULL, 0, 0});
    cr_assert_str_eq(got, "ERR decompress_cap decoded request body over body_max\n");
    free(got);
    /* the bytes received still count against body_max on their own */
    lim.body_max = n - 1;
    got = drive(in, k, &(struct drive_opt){lim, 0, NULL, 0, 0});
    cr_assert_str_eq(got, "ERR body_cap declared Content-Length over the body cap\n");
    free(got);
    /* chunked, with bytes that do not compress: the received bytes pass
     * body_max before the decoded ones do */
    uint64_t seed = 7;
    for (size_t i = 0; i < 3000; i++)
        zeros[i] = (uint8_t)((seed = seed * 6364136223846793005ull + 1) >> 56);
    n = zlib_pack(zeros, 3000, 15 + 16, enc, cap);
    cr_assert_gt(n, 3000);
    lim.body_max = 3000;
    k = coded_request(in, room, "Content-Encoding: gzip\r\n", enc, n, true);
    got = drive(in, k, &(struct drive_opt){lim, 0, NULL, 0, 0});
    cr_assert_str_eq(got, "ERR body_cap request body over the body cap\n");
    free(got);
    free(zeros), free(enc), free(in);
}

Test(h1, decoder_lives_from_first_byte_to_last)
{
    uint8_t enc[512];
    size_t n = ZSTD_compress(enc, sizeof(enc), PLAIN, strlen(PLAIN), 3);
    char in[2048];
    size_t k = coded_request(in, sizeof(in), "Content-Encoding: zstd\r\n", enc, n, false);
    size_t head = (size_t)(strstr(in, "\r\n\r\n") + 4 - in);
    struct h1 h;
    struct http_req r = {0};
    size_t used;
    h1_init(&h, &LIM);
    h1_begin(&h, &r);
    cr_assert_eq(h1_feed(&h, in, 0, head, &used), H1_HEAD_DONE);
    cr_assert_null(h.inflate, "no decoder before the first body byte");
    cr_assert_eq(h1_feed(&h, in, head, head + 5, &used), H1_NEED_MORE);
    cr_assert_not_null(h.inflate);
    cr_assert_eq(r.body_received, 5);
    cr_assert_eq(h1_feed(&h, in, head + 5, k, &used), H1_REQ_DONE);
    cr_assert_null(h.inflate, "freed when the body ended");
    cr_assert_eq(r.body_received, n);
    cr_assert_eq(r.body.n, strlen(PLAIN));
    cr_assert(memcmp(r.body.p, PLAIN, r.body.n) == 0);
    /* dropped mid-body: h1_release (conn.c) or the next h1_begin frees it */
    struct http_req r2 = {0};
    h1_init(&h, &LIM);
    h1_begin(&h, &r2);
    cr_assert_eq(h1_feed(&h, in, 0, head + 5, &used), H1_HEAD_DONE);
    cr_assert_eq(h1_feed(&h, in, used, head + 5, &used), H1_NEED_MORE);
    cr_assert_not_null(h.inflate);
    h1_begin(&h, &r2);
    cr_assert_null(h.inflate);
    h1_release(&h);
    h1_release(&h);
    buf_release(&r.body);
    buf_release(&r2.body);
}
