/*
 * oapc.c — a blocking OAP/1 client for tools: the client endpoint on a
 * private loop, run until the step at hand is done (see oapc.h).
 */
#include "tools/oapc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 2, 3))) static int fail(struct oapc *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return -1;
}

static struct oapc *oapc_of(struct oapnet *ep)
{
    return (struct oapc *)((char *)ep - offsetof(struct oapc, ep));
}

/* ------------------------------------------------------ endpoint callbacks */

static void on_ready(struct oapnet *ep)
{
    oapc_of(ep)->ready = true;
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

static void on_message(struct oapnet *ep, struct oapnet_stream *st, int status,
                       struct oapnet_msg *m)
{
    struct oapc *c = oapc_of(ep);

    c->call_done = true;
    if (status == OAP_E_TOO_LARGE)
        c->call_status = fail(c, "streamed response over %u bytes", OAPNET_IN_MAX_DEF);
    else if (status != 0)
        c->call_status = fail(c, "malformed DATA payload in response");
    else
        c->call_status = resp_fill(c, c->resp, m->code, m->hdr, m->hdr_len, m->body, m->body_len);
}

static void on_abort(struct oapnet *ep, struct oapnet_stream *st)
{
    struct oapc *c = oapc_of(ep);

    c->call_done = true;
    c->call_status = fail(c, "connection lost: %s", ep->why ? ep->why : "closed");
}

static void on_closed(struct oapnet *ep)
{
    oapc_of(ep)->closed = true;
}

static const struct oapnet_ops ops = {
    .on_ready = on_ready,
    .on_message = on_message,
    .on_abort = on_abort,
    .on_closed = on_closed,
};

/* ------------------------------------------------------------------ loop */

/* Every timeout_ms: give up unless a byte was read or queued meanwhile. */
static void on_timer(uv_timer_t *t)
{
    struct oapc *c = t->data;
    uint64_t moved = c->bytes_in + c->bytes_out;

    if (moved != c->progress) {
        c->progress = moved;
        return;
    }
    oapnet_close(&c->ep, "timed out");
}

/* Run the loop until *done, or the connection is closed. Returns 0 or -1. */
static int run_until(struct oapc *c, const bool *done)
{
    if (c->timeout_ms > 0) {
        c->progress = c->bytes_in + c->bytes_out;
        uv_timer_start(&c->timer, on_timer, (uint64_t)c->timeout_ms, (uint64_t)c->timeout_ms);
    }
    while (!*done && !c->closed)
        if (uv_run(&c->loop, UV_RUN_ONCE) == 0 && !uv_loop_alive(&c->loop))
            break; /* nothing left that could finish the step */
    uv_timer_stop(&c->timer);
    return *done ? 0 : -1;
}

/* Close, and wait until libuv has let go of every buffer we lent it. */
static void close_wait(struct oapc *c, const char *why)
{
    oapnet_close(&c->ep, why);
    while (!c->closed && c->ep.state != OAPNET_IDLE)
        if (uv_run(&c->loop, UV_RUN_ONCE) == 0 && !uv_loop_alive(&c->loop))
            break;
}

/* ---------------------------------------------------------------- client */

int oapc_connect(struct oapc *c, const char *addr, int timeout_ms)
{
    struct oapnet_addr a;
    struct oap_hello ours;
    int e;

    memset(c, 0, sizeof(*c));
    if (oapnet_addr_parse(addr, true, &a) != 0)
        return fail(c, "bad address '%s' (expected oap://HOST:PORT, HOST:PORT or unix:/path)",
                    addr);
    if ((e = uv_loop_init(&c->loop)) != 0)
        return fail(c, "loop: %s", uv_strerror(e));
    c->inited = true;
    wbatch_set_init(&c->set, &c->loop);
    uv_timer_init(&c->loop, &c->timer);
    c->timer.data = c;
    c->timeout_ms = timeout_ms;
    /* We announce the largest max_inflight so that the peer's value rules. */
    oap_hello_defaults(&ours);
    ours.max_inflight = OAP_HELLO_MAX_INFLIGHT_MAX;
    ours.flags = OAP_FLAGS_KNOWN & ~OAP_FLAG_COMP; /* we never inflate */
    oapnet_init(&c->ep, OAPNET_CLIENT, &ops, &c->set, &ours);
    c->ep.bytes_in = &c->bytes_in;
    c->ep.bytes_out = &c->bytes_out;
    if ((e = oapnet_connect(&c->ep, &c->loop, &a)) != 0)
        return fail(c, "connect %s: %s", addr, uv_strerror(e));
    if (run_until(c, &c->ready) != 0)
        return fail(c, "connect %s: %s", addr, c->ep.why ? c->ep.why : "failed");
    c->next_corr = 1;
    return 0;
}

int oapc_call(struct oapc *c, uint16_t app, const char *hdr, size_t hdr_len, const void *body,
              size_t body_len, struct oapc_resp *r)
{
    int e;

    memset(r, 0, sizeof(*r));
    if (!c->inited || c->ep.state != OAPNET_READY)
        return fail(c, "not connected");
    oapnet_stream_open(&c->ep, &c->st, c->next_corr++, app, NULL);
    c->resp = r;
    c->call_done = false;
    c->call_status = 0;
    if ((e = oapnet_send(&c->ep, &c->st, 0, hdr, hdr_len, body, body_len)) < 0) {
        oapnet_stream_close(&c->ep, &c->st);
        if (e == OAP_E_BAD_DATA_HDR)
            return fail(c, "request header of %zu bytes is not a valid DATA header", hdr_len);
        return fail(c, "cannot send the request (%s)",
                    c->ep.state == OAPNET_READY ? "out of memory" : "connection lost");
    }
    if (run_until(c, &c->call_done) != 0)
        fail(c, "connection lost: %s", c->ep.why ? c->ep.why : "closed");
    /* Answered before the whole request was out (a peer refusing early):
     * the caller may free the body once we return. */
    if (oapnet_stream_borrowing(&c->ep, &c->st))
        close_wait(c, "answered before the request was sent");
    oapnet_stream_close(&c->ep, &c->st);
    return c->call_done ? c->call_status : -1;
}

void oapc_resp_release(struct oapc_resp *r)
{
    free(r->mem);
    memset(r, 0, sizeof(*r));
}

void oapc_release(struct oapc *c)
{
    if (!c->inited)
        return;
    close_wait(c, "released");
    uv_close((uv_handle_t *)&c->timer, NULL);
    wbatch_set_close(&c->set, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&c->loop);
    c->inited = false;
}
