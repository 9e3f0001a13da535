/*
 * admin.c — the service's admin HTTP/1.1 endpoint: /healthz, /readyz,
 * /metrics (Prometheus text 0.0.4), GET /faults, POST /faults?k=v&...
 *
 * One request per connection (answers carry Connection: close): this is an
 * operator and test port, not a data path. Requests are read with llhttp
 * into a fixed 8 KiB buffer; anything larger is answered 431.
 */
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/substrate.h"
#include "core/hex.h"

#define ADMIN_REQ_MAX_BYTES 8192
#define ADMIN_URL_MAX_BYTES 1024

struct aconn {
    uv_tcp_t tcp;
    struct aconn *next, *prev;
    llhttp_t p;
    char url[ADMIN_URL_MAX_BYTES];
    size_t url_len;
    bool url_over;
    bool done;
    bool answered;
    size_t got;
    char rbuf[ADMIN_REQ_MAX_BYTES];
};

struct awrite {
    uv_write_t w;
    struct aconn *a;
    size_t len;
    char *buf;
};

static struct aconn *all_admin;
static llhttp_settings_t settings;
static bool settings_ready;

/* ---------------------------------------------------------------- output */

/* A growable text buffer for the exposition. */
struct tbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void tb_printf(struct tbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tb_printf(struct tbuf *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if ((size_t)n < t->cap - t->n) {
            t->n += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->oom = true;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
}

static void admin_on_closed(uv_handle_t *h)
{
    struct aconn *a = h->data;

    if (a->prev)
        a->prev->next = a->next;
    else
        all_admin = a->next;
    if (a->next)
        a->next->prev = a->prev;
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
    free(aw->buf);
    free(aw);
}

/* Send a whole response and close. body is copied. */
static void respond(struct aconn *a, int status, const char *ctype, const char *body, size_t n)
{
    static const char *const reasons[] = {[200] = "OK",
                                          [400] = "Bad Request",
                                          [404] = "Not Found",
                                          [405] = "Method Not Allowed",
                                          [431] = "Request Header Fields Too Large",
                                          [500] = "Internal Server Error",
                                          [503] = "Service Unavailable"};
    struct awrite *aw = calloc(1, sizeof(*aw));
    const char *reason = status < 600 && reasons[status] ? reasons[status] : "Unknown";
    uv_buf_t b;
    int hl;

    a->answered = true;
    uv_read_stop((uv_stream_t *)&a->tcp);
    if (!aw || !(aw->buf = malloc(256 + n))) {
        free(aw);
        admin_close(a);
        return;
    }
    hl = snprintf(aw->buf, 256,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n%s\r\n",
                  status, reason, ctype, n, status == 503 ? "Retry-After: 1\r\n" : "");
    memcpy(aw->buf + hl, body, n);
    aw->len = (size_t)hl + n;
    aw->a = a;
    b = uv_buf_init(aw->buf, (unsigned)aw->len);
    if (uv_write(&aw->w, (uv_stream_t *)&a->tcp, &b, 1, admin_on_written) != 0) {
        free(aw->buf);
        free(aw);
        admin_close(a);
    }
}

static void respond_json(struct aconn *a, int status, const char *json)
{
    respond(a, status, "application/json", json, strlen(json));
}

/* --------------------------------------------------------------- metrics */

static void render_metrics(struct tbuf *t)
{
    const struct svc *s = &g_svc;

    tb_printf(t, "# HELP substrate_requests_total OAP/1 requests answered, by op and code.\n"
                 "# TYPE substrate_requests_total counter\n");
    for (int op = 0; op < SVC_OP__N; op++)
        for (int i = 0; i < SVC_CODES_N; i++) {
            int code = svc_code_at(i);
            if (!s->requests[op][i])
                continue;
            if (code)
                tb_printf(t, "substrate_requests_total{role=\"%s\",op=\"%s\",code=\"%d\"} %llu\n",
                          s->role, svc_op_name((enum svc_op)op), code,
                          (unsigned long long)s->requests[op][i]);
            else
                tb_printf(
                    t, "substrate_requests_total{role=\"%s\",op=\"%s\",code=\"other\"} %llu\n",
                    s->role, svc_op_name((enum svc_op)op), (unsigned long long)s->requests[op][i]);
        }
    tb_printf(t,
              "# HELP substrate_inflight Requests received and not yet fully answered.\n"
              "# TYPE substrate_inflight gauge\nsubstrate_inflight{role=\"%s\"} %llu\n"
              "# HELP substrate_connections Open OAP/1 connections.\n"
              "# TYPE substrate_connections gauge\nsubstrate_connections{role=\"%s\"} %llu\n"
              "# HELP substrate_connections_total OAP/1 connections accepted.\n"
              "# TYPE substrate_connections_total counter\n"
              "substrate_connections_total{role=\"%s\"} %llu\n"
              "# HELP substrate_frame_errors_total Connections closed on a bad frame.\n"
              "# TYPE substrate_frame_errors_total counter\n"
              "substrate_frame_errors_total{role=\"%s\"} %llu\n"
              "# HELP substrate_streams_total Responses sent as credit-paced streams.\n"
              "# TYPE substrate_streams_total counter\n"
              "substrate_streams_total{role=\"%s\"} %llu\n"
              "# TYPE substrate_bytes_in_total counter\n"
              "substrate_bytes_in_total{role=\"%s\"} %llu\n"
              "# TYPE substrate_bytes_out_total counter\n"
              "substrate_bytes_out_total{role=\"%s\"} %llu\n",
              s->role, (unsigned long long)s->inflight, s->role, (unsigned long long)s->conns,
              s->role, (unsigned long long)s->conns_total, s->role,
              (unsigned long long)s->frame_errors, s->role, (unsigned long long)s->streams, s->role,
              (unsigned long long)s->bytes_in, s->role, (unsigned long long)s->bytes_out);
    static const char *const kinds[FAULT__N] = {"latency", "error", "stall", "drop", "corrupt"};
    tb_printf(t, "# HELP substrate_faults_injected_total Faults injected, by kind.\n"
                 "# TYPE substrate_faults_injected_total counter\n");
    for (int k = 0; k < FAULT__N; k++)
        tb_printf(t, "substrate_faults_injected_total{role=\"%s\",kind=\"%s\"} %llu\n", s->role,
                  kinds[k], (unsigned long long)s->faults[k]);
    if (s->eng.storage) {
        struct storage_stats st;
        storage_stats(s->eng.storage, &st);
        tb_printf(t,
                  "# TYPE substrate_storage_objects gauge\nsubstrate_storage_objects %llu\n"
                  "# TYPE substrate_storage_bytes gauge\nsubstrate_storage_bytes %llu\n"
                  "# TYPE substrate_storage_mem_cap_bytes gauge\n"
                  "substrate_storage_mem_cap_bytes %llu\n"
                  "# TYPE substrate_storage_disk_loads_total counter\n"
                  "substrate_storage_disk_loads_total %llu\n"
                  "# TYPE substrate_storage_corrupt_reads_total counter\n"
                  "substrate_storage_corrupt_reads_total %llu\n",
                  (unsigned long long)st.objects, (unsigned long long)st.bytes,
                  (unsigned long long)st.mem_cap_bytes, (unsigned long long)st.disk_loads,
                  (unsigned long long)st.corrupt_reads);
    }
    if (s->eng.index)
        tb_printf(t, "# TYPE substrate_index_names gauge\nsubstrate_index_names %zu\n",
                  index_count(s->eng.index));
    if (s->eng.mailbox)
        tb_printf(t, "# TYPE substrate_mailbox_channels gauge\nsubstrate_mailbox_channels %zu\n",
                  mailbox_channels(s->eng.mailbox));
}

/* --------------------------------------------------------------- routing */

/* Percent-decode s in place ('+' is a space). Returns -1 on a bad escape. */
static int url_decode(char *s)
{
    char *w = s;

    for (; *s; s++) {
        if (*s == '%') {
            int hi = hex_digit(s[1]), lo = hi >= 0 ? hex_digit(s[2]) : -1;
            if (lo < 0)
                return -1;
            *w++ = (char)(hi << 4 | lo);
            s += 2;
        } else {
            *w++ = *s == '+' ? ' ' : *s;
        }
    }
    *w = 0;
    return 0;
}

/* Apply "k=v&k=v" to a copy of the settings; all or nothing. */
static int faults_apply(char *query, char *err, size_t errcap)
{
    struct fault_cfg f = g_svc.fault;

    for (char *kv = strtok(query, "&"); kv; kv = strtok(NULL, "&")) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            snprintf(err, errcap, "expected key=value");
            return -1;
        }
        *eq = 0;
        if (url_decode(kv) != 0 || url_decode(eq + 1) != 0 || fault_set(&f, kv, eq + 1) != 0) {
            snprintf(err, errcap, "bad fault setting %.64s", kv);
            return -1;
        }
    }
    g_svc.fault = f;
    return 0;
}

static void route(struct aconn *a)
{
    int method = llhttp_get_method(&a->p);
    char *q = strchr(a->url, '?');
    char body[1024];

    if (q)
        *q++ = 0;
    if (strcmp(a->url, "/healthz") == 0) {
        respond_json(a, 200, "{\"status\":\"ok\"}");
    } else if (strcmp(a->url, "/readyz") == 0) {
        if (g_svc.ready)
            respond_json(a, 200, "{\"ready\":true}");
        else
            respond_json(a, 503, "{\"ready\":false,\"missing\":[\"listener\"],\"retry_after\":1}");
    } else if (strcmp(a->url, "/metrics") == 0) {
        struct tbuf t = {.p = malloc(4096), .cap = 4096};
        if (!t.p) {
            admin_close(a);
            return;
        }
        render_metrics(&t);
        if (t.oom)
            respond_json(a, 500, "{\"error\":\"internal\"}");
        else
            respond(a, 200, "text/plain; version=0.0.4", t.p, t.n);
        free(t.p);
    } else if (strcmp(a->url, "/faults") == 0) {
        if (method == HTTP_POST) {
            char err[128];
            if (q && faults_apply(q, err, sizeof(err)) != 0) {
                snprintf(body, sizeof(body), "{\"error\":\"bad_request\",\"reason\":\"%s\"}", err);
                respond_json(a, 400, body);
                return;
            }
            svc_log("\"msg\":\"faults changed\",\"query\":\"%s\"", q ? "set" : "none");
        } else if (method != HTTP_GET) {
            respond_json(a, 405, "{\"error\":\"method_not_allowed\"}");
            return;
        }
        fault_json(&g_svc.fault, body, sizeof(body));
        respond_json(a, 200, body);
    } else {
        respond_json(a, 404, "{\"error\":\"not_found\"}");
    }
}

/* -------------------------------------------------------------- reading */

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct aconn *a = p->data;

    if (n >= ADMIN_URL_MAX_BYTES - a->url_len) {
        a->url_over = true;
        return 0;
    }
    memcpy(a->url + a->url_len, at, n);
    a->url_len += n;
    a->url[a->url_len] = 0;
    return 0;
}

static int on_complete(llhttp_t *p)
{
    struct aconn *a = p->data;

    a->done = true;
    return HPE_PAUSED;
}

static void admin_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct aconn *a = h->data;

    *b = uv_buf_init(a->rbuf + a->got, (unsigned)(sizeof(a->rbuf) - a->got));
}

static void admin_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct aconn *a = s->data;
    llhttp_errno_t e;

    if (nread < 0) {
        admin_close(a);
        return;
    }
    if (a->answered || nread == 0)
        return;
    e = llhttp_execute(&a->p, b->base, (size_t)nread);
    a->got += (size_t)nread;
    if (a->done) {
        if (a->url_over)
            respond_json(a, 431, "{\"error\":\"header_too_large\"}");
        else
            route(a);
    } else if (e != HPE_OK) {
        respond_json(a, 400, "{\"error\":\"bad_request\"}");
    } else if (a->got >= sizeof(a->rbuf)) {
        respond_json(a, 431, "{\"error\":\"header_too_large\"}");
    }
}

void admin_on_conn(uv_stream_t *server, int status)
{
    struct aconn *a;

    if (status != 0)
        return;
    if (!settings_ready) {
        llhttp_settings_init(&settings);
        settings.on_url = on_url;
        settings.on_message_complete = on_complete;
        settings_ready = true;
    }
    a = calloc(1, sizeof(*a));
    if (!a)
        return;
    uv_tcp_init(g_svc.loop, &a->tcp);
    a->tcp.data = a;
    a->next = all_admin;
    if (all_admin)
        all_admin->prev = a;
    all_admin = a;
    llhttp_init(&a->p, HTTP_REQUEST, &settings);
    a->p.data = a;
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
