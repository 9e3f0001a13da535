/*
 * The response writer (src/http/response.c) against a fake transport: a
 * struct http_conn whose ops record the bytes written, how often the
 * request was finished and whether the connection was closed. No socket, no
 * loop: every test reads back the exact bytes a client would get.
 */
#include <criterion/criterion.h>
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "http/ctx.h"
#include "http/response.h"
#include "ops/metrics.h"
#include "fake_conn.h"

static struct og_config cfg;
static struct http_ctx ctx;
static struct buf logbuf;
static struct fake_conn fc;
static struct http_req req;

/* Run the write completions, as the transport's next loop turn would. */
static void complete_writes(void)
{
    fake_conn_complete(&fc);
}

/* A parsed GET /x HTTP/1.1 as the transport hands it to dispatch. */
static void request(int method, int version_minor)
{
    buf_release(&req.resp_hdrs);
    memset(&req, 0, sizeof(req));
    req.conn = &fc.hc;
    req.ctx = &ctx;
    req.method = method;
    req.version_minor = version_minor;
    req.keep_alive = true;
    req.content_length = -1;
    req.route_id = metrics_route_unmatched();
    req.t_start_ns = uv_hrtime();
    http_req_ids(&req);
}

static void setup(void)
{
    config_defaults(&cfg);
    log_min_level = LOG_ERROR; /* no access log lines */
    metrics_init(1);
    http_ctx_init(&ctx, 0, &cfg, metrics_shard(0), NULL, &logbuf);
    fake_conn_init(&fc);
    request(HTTP_GET, 1);
}

static void teardown(void)
{
    complete_writes();
    buf_release(&fc.out);
    buf_release(&req.resp_hdrs);
    buf_release(&req.body);
    buf_release(&logbuf);
}

TestSuite(response, .init = setup, .fini = teardown);

/* ---- reading the output back -------------------------------------------- */

static const char *out(void)
{
    cr_assert_eq(buf_reserve(&fc.out, 1), 0);
    fc.out.p[fc.out.n] = '\0';
    return fc.out.p;
}

/* The value of header name in the written head ("" if absent → NULL). */
static const char *header(const char *name, char *v, size_t cap)
{
    const char *s = out();
    const char *end = strstr(s, "\r\n\r\n");
    cr_assert_not_null(end, "a complete head");
    size_t nl = strlen(name);
    for (const char *p = strstr(s, "\r\n") + 2; p < end; p = strstr(p, "\r\n") + 2) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ':' && p[nl + 1] == ' ') {
            const char *e = strstr(p, "\r\n");
            size_t n = (size_t)(e - (p + nl + 2));
            cr_assert_lt(n, cap);
            memcpy(v, p + nl + 2, n);
            v[n] = '\0';
            return v;
        }
    }
    return NULL;
}

static const char *body(void)
{
    return strstr(out(), "\r\n\r\n") + 4;
}

/* ---- complete responses ------------------------------------------------- */

Test(response, status_line_and_standard_headers)
{
    http_respond(&req, 200, "text/plain", "hello", 5);
    char v[128];
    cr_assert(strncmp(out(), "HTTP/1.1 200 OK\r\nServer: omnigate\r\nDate: ", 41) == 0, "%s",
              out());
    cr_assert_str_eq(header("Content-Type", v, sizeof(v)), "text/plain");
    cr_assert_str_eq(header("Content-Length", v, sizeof(v)), "5");
    cr_assert_str_eq(header("X-Request-ID", v, sizeof(v)), req.req_id);
    cr_assert_eq(strlen(v), 16);
    cr_assert_str_eq(header("X-Corr-ID", v, sizeof(v)), req.corr_id);
    cr_assert_null(header("Connection", v, sizeof(v)), "HTTP/1.1 keep-alive is the default");
    cr_assert_str_eq(body(), "hello");
    cr_assert_eq(fc.writes, 1, "head and small body in one write");
    cr_assert_eq(fc.finished, 1);
    cr_assert_eq(fc.closed, 0);
    cr_assert_eq(req.bytes_out, fc.out.n);
    cr_assert_eq(req.status, 200);
}

Test(response, date_line_is_an_imf_fixdate)
{
    http_respond(&req, 200, "text/plain", "", 0);
    char v[64];
    /* "Wed, 02 Dec 2026 18:00:00 GMT" */
    cr_assert_eq(strlen(header("Date", v, sizeof(v))), 29);
    cr_assert(strcmp(v + 26, "GMT") == 0);
}

Test(response, content_length_counts_body_bytes)
{
    static const char big[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    http_respond(&req, 201, "application/octet-stream", big, sizeof(big) - 1);
    char v[32];
    cr_assert_str_eq(header("Content-Length", v, sizeof(v)), "36");
    cr_assert_str_eq(body(), big);
    cr_assert(strncmp(out(), "HTTP/1.1 201 Created\r\n", 22) == 0, "%s", out());
}

Test(response, owned_body_is_written_without_a_copy_and_taken_over)
{
    struct buf b = {0};
    cr_assert_eq(buf_reserve(&b, 4), 0);
    memcpy(b.p, "owned", 5);
    b.n = 5;
    http_respond_buf(&req, 200, "text/plain", &b);
    cr_assert_null(b.p, "the writer took the memory");
    cr_assert_eq(b.n, 0);
    char v[32];
    cr_assert_str_eq(header("Content-Length", v, sizeof(v)), "5");
    cr_assert_str_eq(body(), "owned");
    /* complete_writes in teardown frees it: valgrind checks */
}

Test(response, empty_owned_body_has_zero_length)
{
    struct buf b = {0};
    cr_assert_eq(buf_reserve(&b, 16), 0);
    http_respond_buf(&req, 200, "text/plain", &b);
    char v[32];
    cr_assert_str_eq(header("Content-Length", v, sizeof(v)), "0");
    cr_assert_str_eq(body(), "");
}

Test(response, extra_headers_come_before_the_blank_line)
{
    cr_assert_eq(http_add_header(&req, "ETag", "\"b3:ab\"", 7), 0);
    cr_assert_eq(http_add_header(&req, "Cache-Control", "no-store", 8), 0);
    http_respond(&req, 200, "text/plain", "x", 1);
    char v[32];
    cr_assert_str_eq(header("ETag", v, sizeof(v)), "\"b3:ab\"");
    cr_assert_str_eq(header("Cache-Control", v, sizeof(v)), "no-store");
    cr_assert_str_eq(body(), "x");
}

Test(response, bodyless_statuses_carry_no_length_and_no_body)
{
    http_respond(&req, 304, "text/plain", "ignored", 7);
    char v[32];
    cr_assert(strncmp(out(), "HTTP/1.1 304 Not Modified\r\n", 27) == 0, "%s", out());
    cr_assert_null(header("Content-Length", v, sizeof(v)));
    cr_assert_null(header("Content-Type", v, sizeof(v)));
    cr_assert_str_eq(body(), "");

    request(HTTP_GET, 1);
    fc.out.n = 0;
    http_respond(&req, 204, NULL, NULL, 0);
    cr_assert_null(header("Content-Length", v, sizeof(v)));
    cr_assert_str_eq(body(), "");
}

Test(response, a_second_answer_is_ignored)
{
    http_respond(&req, 200, "text/plain", "first", 5);
    size_t n = fc.out.n;
    http_respond(&req, 500, "text/plain", "second", 6);
    http_respond_error(&req, OG_E_INTERNAL, NULL);
    cr_assert_eq(fc.out.n, n);
    cr_assert_eq(fc.finished, 1);
}

/* ---- HEAD --------------------------------------------------------------- */

Test(response, head_sends_the_length_of_the_body_it_leaves_out)
{
    request(HTTP_HEAD, 1);
    http_respond(&req, 200, "text/plain", "hello", 5);
    char v[32];
    cr_assert_str_eq(header("Content-Length", v, sizeof(v)), "5");
    cr_assert_str_eq(body(), "");
    cr_assert_eq(req.bytes_out, fc.out.n);
}

Test(response, head_stream_writes_the_head_only)
{
    request(HTTP_HEAD, 1);
    cr_assert_eq(http_stream_begin(&req, 200, "application/octet-stream", 10), 0);
    cr_assert_eq(http_stream_send(&req, "0123456789", 10, NULL, NULL), 0);
    http_stream_end(&req, true);
    char v[32];
    cr_assert_str_eq(header("Content-Length", v, sizeof(v)), "10");
    cr_assert_str_eq(body(), "");
    cr_assert_eq(fc.finished, 1);
}

/* ---- errors ------------------------------------------------------------- */

Test(response, error_body_is_the_status_tables_json)
{
    http_respond_error(&req, OG_E_NOT_FOUND, "no route for this path");
    char v[64], want[256];
    cr_assert(strncmp(out(), "HTTP/1.1 404 Not Found\r\n", 24) == 0, "%s", out());
    cr_assert_str_eq(header("Content-Type", v, sizeof(v)), "application/json");
    snprintf(want, sizeof(want),
             "{\"error\":\"not_found\",\"reason\":\"no route for this path\",\"corr_id\":\"%s\"}",
             req.corr_id);
    cr_assert_str_eq(body(), want);
    snprintf(want, sizeof(want), "%zu", strlen(body()));
    cr_assert_str_eq(header("Content-Length", v, sizeof(v)), want);
    cr_assert_null(header("Retry-After", v, sizeof(v)));
    cr_assert_null(header("Connection", v, sizeof(v)), "a 404 keeps the connection");
    cr_assert_str_eq(req.err_code, "not_found");
    cr_assert_eq(SHARD_GET(metrics_shard(0)->rejected[OG_E_NOT_FOUND]), 1);
}

Test(response, error_without_reason_uses_the_tables_default)
{
    http_respond_error(&req, OG_E_NOT_FOUND, NULL);
    cr_assert(strstr(body(), "\"reason\":\"no such resource\"") != NULL, "%s", body());
}

Test(response, busy_carries_retry_after_from_the_config)
{
    cfg.retry_after_s = 7;
    http_respond_error(&req, OG_E_BUSY, NULL);
    char v[32];
    cr_assert(strncmp(out(), "HTTP/1.1 503 ", 13) == 0, "%s", out());
    cr_assert_str_eq(header("Retry-After", v, sizeof(v)), "7");
    cr_assert(strstr(body(), "\"error\":\"busy\"") != NULL);
}

Test(response, framing_errors_close_the_connection)
{
    http_respond_error(&req, OG_E_HEADER_TOO_LARGE, NULL);
    char v[32];
    cr_assert(strncmp(out(), "HTTP/1.1 431 ", 13) == 0, "%s", out());
    cr_assert_str_eq(header("Connection", v, sizeof(v)), "close");
    cr_assert(req.close_after);

    request(HTTP_GET, 1);
    fc.out.n = 0;
    http_respond_error(&req, OG_E_BAD_REQUEST, NULL);
    cr_assert_str_eq(header("Connection", v, sizeof(v)), "close");
}

Test(response, error_on_a_head_request_has_no_body)
{
    request(HTTP_HEAD, 1);
    http_respond_error(&req, OG_E_NOT_FOUND, NULL);
    char v[32];
    cr_assert_neq(strcmp(header("Content-Length", v, sizeof(v)), "0"), 0);
    cr_assert_str_eq(body(), "");
}

/* ---- keep-alive and close ----------------------------------------------- */

Test(response, http10_keep_alive_is_said_explicitly)
{
    request(HTTP_GET, 0);
    http_respond(&req, 200, "text/plain", "x", 1);
    char v[32];
    cr_assert_str_eq(header("Connection", v, sizeof(v)), "keep-alive");
}

Test(response, close_after_says_connection_close)
{
    req.close_after = true;
    http_respond(&req, 200, "text/plain", "x", 1);
    char v[32];
    cr_assert_str_eq(header("Connection", v, sizeof(v)), "close");
    cr_assert_eq(fc.finished, 1);
    cr_assert_eq(fc.closed, 0, "the transport closes after the write, not the writer");
}

Test(response, a_closing_transport_makes_the_response_say_close)
{
    fc.hc.close_after_write = true; /* drain, half-close */
    request(HTTP_GET, 0);
    http_respond(&req, 200, "text/plain", "x", 1);
    char v[32];
    cr_assert_str_eq(header("Connection", v, sizeof(v)), "close");
    cr_assert(req.close_after);
}

Test(response, a_failed_write_asks_the_transport_to_close)
{
    fc.fail_writes = 1;
    http_respond(&req, 200, "text/plain", "x", 1);
    cr_assert_eq(fc.out.n, 0);
    cr_assert(req.close_after);
    cr_assert_eq(fc.finished, 1);
}

/* ---- streams ------------------------------------------------------------ */

static int sent_done;
static void on_sent(void *arg, int status)
{
    sent_done++;
}

Test(response, chunked_stream_frames_each_send_and_ends_with_a_zero_chunk)
{
    cr_assert_eq(http_stream_begin(&req, 200, "text/plain", -1), 0);
    cr_assert_eq(http_stream_send(&req, "hello", 5, on_sent, NULL), 0);
    cr_assert_eq(http_stream_send(&req, "0123456789abcdefg", 17, on_sent, NULL), 0);
    cr_assert_eq(fc.finished, 0, "the request lives while it streams");
    http_stream_end(&req, true);
    char v[32];
    cr_assert_str_eq(header("Transfer-Encoding", v, sizeof(v)), "chunked");
    cr_assert_null(header("Content-Length", v, sizeof(v)));
    cr_assert_str_eq(body(), "5\r\nhello\r\n11\r\n0123456789abcdefg\r\n0\r\n\r\n");
    cr_assert_eq(fc.finished, 1);
    cr_assert_eq(sent_done, 0, "completions run later, from the transport");
    complete_writes();
    cr_assert_eq(sent_done, 2);
}

Test(response, sized_stream_writes_the_bytes_as_they_are)
{
    cr_assert_eq(http_stream_begin(&req, 206, "application/octet-stream", 4), 0);
    cr_assert_eq(http_stream_send(&req, "ab", 2, NULL, NULL), 0);
    cr_assert_eq(http_stream_send(&req, "cd", 2, NULL, NULL), 0);
    http_stream_end(&req, true);
    char v[32];
    cr_assert_str_eq(header("Content-Length", v, sizeof(v)), "4");
    cr_assert_str_eq(body(), "abcd");
    cr_assert_eq(req.bytes_out, fc.out.n);
}

Test(response, aborted_stream_closes_before_the_declared_length)
{
    cr_assert_eq(http_stream_begin(&req, 200, "application/octet-stream", 100), 0);
    cr_assert_eq(http_stream_send(&req, "part", 4, NULL, NULL), 0);
    http_stream_end(&req, false);
    cr_assert_eq(fc.finished, 1);
    cr_assert_eq(fc.closed, 1);
    cr_assert_str_eq(req.err_code, "aborted");
}

/* ---- abandoned requests ------------------------------------------------- */

static int cancelled;
static void on_cancel(struct http_req *r)
{
    cancelled++;
}

Test(response, abandon_runs_the_cancel_hook_once_and_writes_nothing)
{
    req.on_cancel = on_cancel;
    http_req_abandon(&req, 499, "client_closed");
    cr_assert_eq(cancelled, 1);
    cr_assert_eq(req.status, 499);
    cr_assert_eq(fc.out.n, 0);
    cr_assert_eq(fc.finished, 1);
}

/* ---- ids ---------------------------------------------------------------- */

Test(response, a_valid_client_corr_id_is_echoed)
{
    memset(&req, 0, sizeof(req));
    req.conn = &fc.hc;
    req.ctx = &ctx;
    static const char name[] = "X-Corr-ID", value[] = "abc.DEF_1:2-3";
    req.hdrs[0].name = (struct slice){name, sizeof(name) - 1};
    req.hdrs[0].value = (struct slice){value, sizeof(value) - 1};
    req.nhdrs = 1;
    http_req_ids(&req);
    cr_assert_str_eq(req.corr_id, value);

    memset(&req, 0, sizeof(req));
    req.ctx = &ctx;
    static const char bad[] = "has space";
    req.hdrs[0].name = (struct slice){name, sizeof(name) - 1};
    req.hdrs[0].value = (struct slice){bad, sizeof(bad) - 1};
    req.nhdrs = 1;
    http_req_ids(&req);
    cr_assert_eq(strlen(req.corr_id), 16, "replaced by a generated id");
    cr_assert_neq(strcmp(req.corr_id, req.req_id), 0);
}
