/*
 * admin.c — the service's admin HTTP/1.1 endpoint: /healthz, /readyz,
 * /metrics (Prometheus text 0.0.4, rendered by src/ops/metrics.c from the
 * tables registered in substrate.c), GET /faults, POST /faults?k=v&...
 *
 * One request per connection (answers carry Connection: close): this is an
 * operator and test port, not a data path. Requests are read by the
 * project's HTTP/1.1 reader (src/http/h1.c, with its strictness checks and
 * limits) from one buffer reserved at accept, so its slices stay valid; a
 * head over ADMIN_HEAD_MAX_BYTES is answered 431.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/substrate.h"
#include "core/jw.h"
#include "http/h1.h"
#include "http/query.h"
#include "ops/metrics.h"

#define ADMIN_HEAD_MAX_BYTES 8192
#define ADMIN_HEADERS_MAX    64
/* POST /faults takes its settings in the query; a small body is read and
 * ignored. */
#define ADMIN_BODY_MAX_BYTES 1024
/* Head, body and chunk framing all fit; a request that does not is 431. */
#define ADMIN_READ_BYTES (ADMIN_HEAD_MAX_BYTES + ADMIN_BODY_MAX_BYTES + 1024)

struct aconn {
    uv_tcp_t tcp;
    struct aconn *next, *prev;
    struct h1 h1;
    struct http_req req;
    struct buf in; /* reserved once: the reader's slices point into it */
    size_t parsed; /* bytes of in handed to the reader */
    bool answered;
};

struct awrite {
    uv_write_t w;
    struct aconn *a;
    char head[256];
    struct buf body;
};

static struct aconn *all_admin;

/* ---------------------------------------------------------------- output */

static void admin_on_closed(uv_handle_t *h)
{
    struct aconn *a = h->data;

    if (a->prev)
        a->prev->next = a->next;
    else
        all_admin = a->next;
    if (a->next)
        a->next->prev = a->prev;
    h1_release(&a->h1);
    buf_release(&a->in);
    buf_release(&a->req.body);
    free(a);
}

static void admin_close(struct aconn *a)
{
    if (!uv_is_closing((uv_handle_t *)&a->tcp))
        uv_close((uv_handle_t *)&a->tcp, admin_on_closed);
}

static void admin_on_written(uv_write_t *w, int status)
{
    struct awrite *aw = (struct awrite *)w;

    admin_close(aw->a);
    buf_release(&aw->body);
    free(aw);
}

/* Send a whole response and close; takes body (released after the write). */
static void respond_buf(struct aconn *a, int status, const char *ctype, struct buf *body)
{
    struct awrite *aw = calloc(1, sizeof(*aw));
    uv_buf_t b[2];

    a->answered = true;
    uv_read_stop((uv_stream_t *)&a->tcp);
    if (!aw) {
        buf_release(body);
        admin_close(a);
        return;
    }
    aw->a = a;
    aw->body = *body;
    *body = (struct buf){0};
    int hl = snprintf(aw->head, sizeof(aw->head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n%s\r\n",
                      status, http_status_text(status), ctype, aw->body.n,
                      status == 503 ? "Retry-After: 1\r\n" : "");
    b[0] = uv_buf_init(aw->head, (unsigned)hl);
    b[1] = uv_buf_init(aw->body.p, (unsigned)aw->body.n);
    if (uv_write(&aw->w, (uv_stream_t *)&a->tcp, b, 2, admin_on_written) != 0) {
        buf_release(&aw->body);
        free(aw);
        admin_close(a);
    }
}

static void respond_json(struct aconn *a, int status, const char *json)
{
    struct buf body = {0};

    if (buf_append(&body, json, strlen(json)) != 0) {
        a->answered = true;
        admin_close(a);
        return;
    }
    respond_buf(a, status, "application/json", &body);
}

/* {"error":code} for a status from the table, with an optional reason. */
static void respond_error(struct aconn *a, enum og_err e, const char *reason)
{
    struct buf body = {0};
    struct jw j;

    jw_init(&j, &body);
    jw_obj_open(&j);
    og_err_json(&j, e, reason);
    jw_obj_close(&j);
    if (jw_failed(&j)) {
        buf_release(&body);
        a->answered = true;
        admin_close(a);
        return;
    }
    respond_buf(a, og_err_http(e), "application/json", &body);
}

/* --------------------------------------------------------------- routing */

/* Apply "k=v&k=v" to a copy of the settings; all or nothing. */
static int faults_apply(struct slice q, char *err, size_t errcap)
{
    struct fault_cfg f = g_svc.fault;
    struct slice k, v;
    int rc;

    while ((rc = query_next(&q, &k, &v)) != 0) {
        char key[32], val[64];
        if (rc < 0) {
            snprintf(err, errcap, "expected key=value");
            return -1;
        }
        if (query_decode(k, key, sizeof(key)) < 0 || query_decode(v, val, sizeof(val)) < 0 ||
            fault_set(&f, key, val) != 0) {
            snprintf(err, errcap, "bad fault setting %.*s", k.n < 64 ? (int)k.n : 64, k.p);
            return -1;
        }
    }
    g_svc.fault = f;
    return 0;
}

static bool path_is(const struct http_req *r, const char *path)
{
    return slice_eq(r->path, path, strlen(path));
}

static void route(struct aconn *a)
{
    const struct http_req *r = &a->req;
    char body[1024];

    if (path_is(r, "/healthz")) {
        respond_json(a, 200, "{\"status\":\"ok\"}");
    } else if (path_is(r, "/readyz")) {
        /* "amnesia": whether this service keeps nothing on disk. */
        if (g_svc.ready)
            snprintf(body, sizeof(body), "{\"ready\":true,\"amnesia\":%s}",
                     g_svc.amnesia ? "true" : "false");
        else
            snprintf(body, sizeof(body),
                     "{\"ready\":false,\"missing\":[\"listener\"],\"retry_after\":1,"
                     "\"amnesia\":%s}",
                     g_svc.amnesia ? "true" : "false");
        respond_json(a, g_svc.ready ? 200 : 503, body);
    } else if (path_is(r, "/metrics")) {
        struct buf out = {0};
        if (metrics_render(&out) != 0) {
            buf_release(&out);
            respond_error(a, OG_E_INTERNAL, NULL);
            return;
        }
        respond_buf(a, 200, "text/plain; version=0.0.4", &out);
    } else if (path_is(r, "/faults")) {
        if (r->method == HTTP_POST) {
            char err[128];
            if (r->query.p && faults_apply(r->query, err, sizeof(err)) != 0) {
                respond_error(a, OG_E_BAD_REQUEST, err);
                return;
            }
            svc_log("\"msg\":\"faults changed\",\"query\":\"%s\"", r->query.p ? "set" : "none");
        } else if (r->method != HTTP_GET) {
            respond_error(a, OG_E_METHOD, NULL);
            return;
        }
        fault_json(&g_svc.fault, body, sizeof(body));
        respond_json(a, 200, body);
    } else {
        respond_error(a, OG_E_NOT_FOUND, NULL);
    }
}

/* -------------------------------------------------------------- reading */

static void admin_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct aconn *a = h->data;

    *b = uv_buf_init(a->in.p + a->in.n, (unsigned)(a->in.cap - a->in.n));
}

static void admin_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct aconn *a = s->data;

    if (nread < 0) {
        admin_close(a);
        return;
    }
    if (a->answered || nread == 0)
        return;
    a->in.n += (size_t)nread;
    for (;;) {
        size_t used = 0;
        enum h1_result res = h1_feed(&a->h1, a->in.p, a->parsed, a->in.n, &used);
        a->parsed += used;
        if (res == H1_REQ_DONE) {
            route(a);
            return;
        }
        if (res == H1_ERROR) {
            respond_error(a, a->h1.err, NULL);
            return;
        }
        if (res == H1_NEED_MORE)
            break;
    }
    if (a->in.n == a->in.cap)
        respond_error(a, OG_E_HEADER_TOO_LARGE, NULL);
}

void admin_on_conn(uv_stream_t *server, int status)
{
    /* A coded body is decoded under the gateway's default ratio cap. */
    static const struct h1_limits lim = {ADMIN_HEAD_MAX_BYTES, ADMIN_HEADERS_MAX,
                                         ADMIN_BODY_MAX_BYTES, 10};
    struct aconn *a;

    if (status != 0)
        return;
    a = calloc(1, sizeof(*a));
    if (!a)
        return;
    if (buf_reserve(&a->in, ADMIN_READ_BYTES) != 0) {
        free(a);
        return;
    }
    uv_tcp_init(g_svc.loop, &a->tcp);
    a->tcp.data = a;
    a->next = all_admin;
    if (all_admin)
        all_admin->prev = a;
    all_admin = a;
    h1_init(&a->h1, &lim);
    a->req.content_length = -1;
    h1_begin(&a->h1, &a->req);
    if (uv_accept(server, (uv_stream_t *)&a->tcp) != 0) {
        admin_close(a);
        return;
    }
    uv_read_start((uv_stream_t *)&a->tcp, admin_on_alloc, admin_on_read);
}

void admin_close_all(void)
{
    for (struct aconn *a = all_admin; a; a = a->next)
        admin_close(a);
}
