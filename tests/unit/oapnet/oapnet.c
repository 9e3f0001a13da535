/*
 * The OAP/1 endpoint (src/oapnet/oapnet.c) on a real loop over a
 * socketpair, in both roles: HELLO, a request and its answer, streams
 * paced by credit in each direction, close semantics, and bad frames. The
 * two ends are either two endpoints (client and server) or one endpoint and
 * a raw socket written and read by the test. Callback counts are exact and
 * every loop closes cleanly.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "oap/comp.h"
#include "oap/data.h"
#include "oapnet/oapnet.h"

#define MAXS 8

/* One end: an endpoint, its streams and what its callbacks saw. */
struct side {
    struct oapnet ep;
    struct oapnet_stream st[MAXS];
    int nst;
    int readies, hellos, requests, messages, heads, chunks, ends, sents, aborts, errors, closed;
    int last_status, last_err;
    uint64_t last_off;
    uint16_t code;
    char hdr[256];
    size_t hdr_len;
    uint8_t *body; /* gathered from messages or chunks */
    size_t body_len;
    bool hold; /* chunked: keep every frame until the test releases it */
    int held;  /* frames held now */
    /* Server: answer each request with this (NULL: do not answer). */
    const char *answer_hdr;
    const uint8_t *answer_body;
    size_t answer_len;
    int send_rc;
};

struct fixture {
    uv_loop_t loop;
    struct wbatch_set set;
    struct side cli, srv;
    int raw; /* the other end when one side is a raw socket, else -1 */
    struct oap_decoder dec;
    uint8_t rbuf[1 << 20];
    size_t rn, roff;
    bool reof;
};

static struct side *side_of(struct oapnet *ep)
{
    return ep->data;
}

static void keep_bytes(struct side *s, const uint8_t *p, size_t n)
{
    s->body = realloc(s->body, s->body_len + n + 1);
    cr_assert_not_null(s->body);
    if (n)
        memcpy(s->body + s->body_len, p, n);
    s->body_len += n;
}

static void on_ready(struct oapnet *ep)
{
    side_of(ep)->readies++;
}

static void on_hello(struct oapnet *ep)
{
    side_of(ep)->hellos++;
}

static struct oapnet_stream *on_request(struct oapnet *ep, const struct oap_frame *f)
{
    struct side *s = side_of(ep);
    cr_assert_lt(s->nst, MAXS);
    struct oapnet_stream *st = &s->st[s->nst++];
    oapnet_stream_open(ep, st, f->h.corr_id, f->h.app_proto_id, f->h.tenant);
    s->requests++;
    return st;
}

static void on_message(struct oapnet *ep, struct oapnet_stream *st, int status,
                       struct oapnet_msg *m)
{
    struct side *s = side_of(ep);
    s->messages++;
    s->last_status = status;
    s->code = m->code;
    cr_assert_leq(m->hdr_len, sizeof(s->hdr));
    if (m->hdr_len)
        memcpy(s->hdr, m->hdr, m->hdr_len);
    s->hdr_len = m->hdr_len;
    keep_bytes(s, m->body, m->body_len);
    if (ep->role == OAPNET_CLIENT || !s->answer_hdr) {
        if (ep->role == OAPNET_CLIENT)
            oapnet_stream_close(ep, st);
        return;
    }
    s->send_rc = oapnet_send(ep, st, 200, s->answer_hdr, strlen(s->answer_hdr), s->answer_body,
                             s->answer_len);
    if (s->send_rc == 1)
        oapnet_stream_close(ep, st);
}

static void on_head(struct oapnet *ep, struct oapnet_stream *st, uint16_t code, const char *hdr,
                    size_t hdr_len)
{
    struct side *s = side_of(ep);
    s->heads++;
    s->code = code;
    memcpy(s->hdr, hdr, hdr_len);
    s->hdr_len = hdr_len;
}

static bool on_chunk(struct oapnet *ep, struct oapnet_stream *st, const uint8_t *p, size_t n)
{
    struct side *s = side_of(ep);
    s->chunks++;
    keep_bytes(s, p, n);
    if (s->hold)
        s->held++;
    return s->hold;
}

static void on_end(struct oapnet *ep, struct oapnet_stream *st)
{
    side_of(ep)->ends++;
    oapnet_stream_close(ep, st);
}

/* A server's answer is out: that ends its exchange. A client's request is
 * out: its answer is still to come. */
static void on_sent(struct oapnet *ep, struct oapnet_stream *st)
{
    side_of(ep)->sents++;
    if (ep->role == OAPNET_SERVER)
        oapnet_stream_close(ep, st);
}

static void on_abort(struct oapnet *ep, struct oapnet_stream *st)
{
    cr_assert_not(st->open, "aborted streams are out of the table");
    side_of(ep)->aborts++;
}

static void on_error(struct oapnet *ep, int err, uint64_t off)
{
    struct side *s = side_of(ep);
    s->errors++;
    s->last_err = err;
    s->last_off = off;
}

static void on_closed(struct oapnet *ep)
{
    side_of(ep)->closed++;
}

static const struct oapnet_ops ops = {
    .on_ready = on_ready,
    .on_hello = on_hello,
    .on_request = on_request,
    .on_message = on_message,
    .on_head = on_head,
    .on_chunk = on_chunk,
    .on_end = on_end,
    .on_sent = on_sent,
    .on_abort = on_abort,
    .on_error = on_error,
    .on_closed = on_closed,
};

/* Run the loop until cond holds (or fail after 10 s). */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        uint64_t until_ = uv_hrtime() + 10000000000ull;                                            \
        while (!(cond)) {                                                                          \
            if (uv_run(&(f)->loop, UV_RUN_NOWAIT) == 0)                                            \
                usleep(100);                                                                       \
            cr_assert_lt(uv_hrtime(), until_, "never: %s", #cond);                                 \
        }                                                                                          \
    } while (0)

/* Let the loop settle: a few turns with nothing left to happen. */
static void settle(struct fixture *f)
{
    for (int i = 0; i < 50; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(200);
    }
}

static void side_init(struct fixture *f, struct side *s, enum oapnet_role role,
                      const struct oap_hello *ours)
{
    oapnet_init(&s->ep, role, &ops, &f->set, ours);
    s->ep.data = s;
}

/* Both ends: client on sv[0], server on sv[1] (server_max_frame 0 = 1 MiB);
 * or, with raw_server / raw_client, the test speaks for that end. */
static void setup(struct fixture *f, uint32_t server_max_frame, bool raw_server, bool raw_client)
{
    int sv[2];
    struct oap_hello srv_hello, cli_hello;

    signal(SIGPIPE, SIG_IGN);
    memset(f, 0, sizeof(*f));
    f->raw = -1;
    cr_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    cr_assert(uv_loop_init(&f->loop) == 0);
    wbatch_set_init(&f->set, &f->loop);
    oap_hello_defaults(&srv_hello);
    if (server_max_frame)
        srv_hello.max_frame = server_max_frame;
    srv_hello.max_inflight = 32;
    oap_hello_defaults(&cli_hello);
    cli_hello.max_inflight = 1024;
    cli_hello.flags = OAP_FLAGS_KNOWN & ~OAP_FLAG_COMP;
    side_init(f, &f->cli, OAPNET_CLIENT, &cli_hello);
    side_init(f, &f->srv, OAPNET_SERVER, &srv_hello);
    f->srv.ep.inflate = oap_inflate_once; /* the server announces COMP */
    oap_decoder_init(&f->dec, OAP_MAX_FRAME_BYTES);
    if (raw_client)
        f->raw = sv[0];
    else
        cr_assert(oapnet_open(&f->cli.ep, &f->loop, sv[0], true) == 0);
    if (raw_server)
        f->raw = sv[1];
    else
        cr_assert(oapnet_open(&f->srv.ep, &f->loop, sv[1], true) == 0);
}

static void teardown(struct fixture *f)
{
    oapnet_close(&f->cli.ep, "test over");
    oapnet_close(&f->srv.ep, "test over");
    RUN_UNTIL(f, f->cli.ep.state == OAPNET_IDLE && f->srv.ep.state == OAPNET_IDLE);
    wbatch_set_close(&f->set, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&f->loop), 0, "every handle closed");
    if (f->raw >= 0)
        close(f->raw);
    oap_decoder_release(&f->dec);
    free(f->cli.body);
    free(f->srv.body);
}

/* ------------------------------------------------------------ raw peer */

static void raw_send(struct fixture *f, const void *p, size_t n)
{
    cr_assert_eq(write(f->raw, p, n), (ssize_t)n);
}

/* Encode and send one frame (validated by liboap's encoder). */
static void raw_frame_send(struct fixture *f, uint16_t flags, uint16_t code, uint16_t app,
                           uint64_t corr, const void *payload, size_t n)
{
    static uint8_t out[OAP_MAX_FRAME_BYTES];
    struct oap_frame fr = {
        .h = {.flags = flags, .code = code, .app_proto_id = app, .corr_id = corr},
        .payload = payload,
        .payload_len = n};
    ssize_t len = oap_encode(&fr, OAP_MAX_FRAME_BYTES, out, sizeof(out));
    cr_assert_gt(len, 0);
    raw_send(f, out, (size_t)len);
}

/* The next frame from the endpoint (views valid until the next call), or
 * false at end of input. Runs the loop meanwhile. */
static bool raw_frame(struct fixture *f, struct oap_frame *out)
{
    uint64_t until = uv_hrtime() + 10000000000ull;
    for (;;) {
        if (f->roff < f->rn) {
            size_t used = 0;
            int e = oap_decoder_feed(&f->dec, f->rbuf + f->roff, f->rn - f->roff, &used, out);
            f->roff += used;
            if (e == 0)
                return true;
            cr_assert_eq(e, OAP_E_AGAIN, "the endpoint wrote a bad frame: %s", oap_status_name(e));
        }
        if (f->reof)
            return false;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ssize_t r = recv(f->raw, f->rbuf, sizeof(f->rbuf), MSG_DONTWAIT);
        if (r > 0) {
            f->rn = (size_t)r;
            f->roff = 0;
        } else if (r == 0) {
            f->reof = true;
        } else {
            usleep(100);
            cr_assert_lt(uv_hrtime(), until, "no frame from the endpoint");
        }
    }
}

/* Nothing more arrives for a while (the producer is stopped). */
static void raw_expect_silence(struct fixture *f)
{
    settle(f);
    cr_assert_eq(recv(f->raw, f->rbuf, 1, MSG_DONTWAIT | MSG_PEEK), -1, "unexpected bytes");
}

/* A DATA payload [u16 len][json][body] into out. */
static size_t data(uint8_t *out, size_t cap, const char *json, const void *body, size_t n)
{
    ssize_t len = oap_data_encode(out, cap, json, strlen(json), body, n);
    cr_assert_gt(len, 0);
    return (size_t)len;
}

/* Play the server's part of HELLO for the client under test. Returns the
 * length of the answer frame. */
static size_t raw_hello_answer(struct fixture *f, uint32_t max_frame)
{
    struct oap_frame fr;
    char hello[128];
    struct oap_hello h = {max_frame, 64, OAP_FLAGS_KNOWN, 1u << (OAP_VERSION - 1)};
    ssize_t n = oap_hello_encode(&h, hello, sizeof(hello));

    cr_assert(raw_frame(f, &fr), "the client says HELLO first");
    cr_assert_eq(fr.h.app_proto_id, OAP_APP_HELLO);
    cr_assert_eq(fr.h.flags, OAP_FLAG_REQ);
    cr_assert_gt(n, 0);
    raw_frame_send(f, OAP_FLAG_RESP, 200, OAP_APP_HELLO, 0, hello, (size_t)n);
    RUN_UNTIL(f, f->cli.readies == 1);
    return OAP_HDR_BYTES + (size_t)n;
}

/* Open the client's stream i under corr and send hdr + body on it. */
static int call(struct fixture *f, int i, uint64_t corr, const char *hdr, const void *body,
                size_t n)
{
    struct oapnet_stream *st = &f->cli.st[i];
    oapnet_stream_open(&f->cli.ep, st, corr, OAP_APP_STORAGE, NULL);
    cr_assert_eq(oapnet_stream_find(&f->cli.ep, corr), st);
    return oapnet_send(&f->cli.ep, st, 0, hdr, strlen(hdr), body, n);
}

/* s got exactly one whole message: header json, body p[0..n). */
static void expect_message(const struct side *s, const char *json, const void *p, size_t n)
{
    cr_assert_eq(s->messages, 1);
    cr_assert_eq(s->last_status, 0);
    cr_assert_eq(s->hdr_len, strlen(json));
    cr_assert(memcmp(s->hdr, json, s->hdr_len) == 0, "%.*s", (int)s->hdr_len, s->hdr);
    cr_assert_eq(s->body_len, n);
    cr_assert(n == 0 || memcmp(s->body, p, n) == 0);
}

/* ------------------------------------------------------------------ HELLO */

Test(oapnet, hello_exchange_negotiates_both_ends)
{
    struct fixture f;
    setup(&f, 65536, false, false);
    cr_assert_eq(f.cli.ep.state, OAPNET_HELLO);
    cr_assert_eq(f.srv.ep.state, OAPNET_READY, "a server needs no HELLO to serve");
    RUN_UNTIL(&f, f.cli.readies == 1);
    settle(&f);
    cr_assert_eq(f.cli.readies, 1);
    cr_assert_eq(f.srv.hellos, 1);
    cr_assert_eq(f.cli.ep.state, OAPNET_READY);
    /* min of both announcements, on both ends */
    cr_assert_eq(f.cli.ep.max_frame, 65536);
    cr_assert_eq(f.cli.ep.max_inflight, 32);
    cr_assert_eq(f.srv.ep.max_frame, 65536);
    cr_assert_eq(f.srv.ep.chunk, oap_stream_chunk(0, 65536));
    cr_assert_eq(f.cli.errors + f.srv.errors + f.cli.closed + f.srv.closed, 0);
    teardown(&f);
    cr_assert_eq(f.cli.closed, 1);
    cr_assert_eq(f.srv.closed, 1);
    cr_assert_eq(f.cli.aborts + f.srv.aborts, 0);
}

Test(oapnet, client_refuses_a_hello_without_a_common_version)
{
    struct fixture f;
    struct oap_frame fr;
    static const char bad[] = "{\"max_frame\":4096,\"versions\":[2]}";
    setup(&f, 0, true, false);
    cr_assert(raw_frame(&f, &fr), "the client says HELLO first");
    cr_assert_eq(fr.h.app_proto_id, OAP_APP_HELLO);
    cr_assert_eq(fr.h.flags, OAP_FLAG_REQ);
    raw_frame_send(&f, OAP_FLAG_RESP, 200, OAP_APP_HELLO, 0, bad, sizeof(bad) - 1);
    RUN_UNTIL(&f, f.cli.closed == 1);
    cr_assert_eq(f.cli.readies, 0);
    cr_assert_eq(f.cli.errors, 1);
    cr_assert_eq(f.cli.last_err, OAP_E_BAD_VERSION);
    cr_assert_str_eq(f.cli.ep.why, oap_strerror(OAP_E_BAD_VERSION));
    cr_assert_not(raw_frame(&f, &fr), "a client just closes");
    teardown(&f);
}

/* ------------------------------------------------------- request/response */

Test(oapnet, request_and_answer)
{
    struct fixture f;
    static const char req[] = "{\"op\":\"get\"}", ans[] = "{\"ok\":true}";
    setup(&f, 0, false, false);
    f.srv.answer_hdr = ans;
    f.srv.answer_body = (const uint8_t *)"world";
    f.srv.answer_len = 5;
    RUN_UNTIL(&f, f.cli.readies == 1);

    cr_assert_eq(call(&f, 0, 7, req, "hello", 5), 1, "one frame");
    cr_assert_eq(f.srv.requests, 0, "nothing happens inside the call");
    RUN_UNTIL(&f, f.cli.messages == 1);
    settle(&f);

    cr_assert_eq(f.srv.requests, 1);
    expect_message(&f.srv, req, "hello", 5);
    cr_assert_eq(f.srv.send_rc, 1);
    cr_assert_eq(f.srv.st[0].app, OAP_APP_STORAGE);
    cr_assert_eq(f.srv.st[0].corr, 7);

    cr_assert_eq(f.cli.code, 200);
    expect_message(&f.cli, ans, "world", 5);
    cr_assert_null(oapnet_stream_find(&f.cli.ep, 7), "closed by its user");
    cr_assert_eq(f.cli.heads + f.cli.chunks + f.cli.sents + f.srv.sents, 0);
    teardown(&f);
    cr_assert_eq(f.cli.aborts + f.srv.aborts, 0);
}

/* ---------------------------------------------------------------- credit */

/* Server produces, client consumes chunk by chunk: the server stops when
 * its credit is spent and goes on as the client releases frames. */
Test(oapnet, server_stream_paced_by_client_credit)
{
    struct fixture f;
    static uint8_t big[20 * 65536];
    static const char ans[] = "{\"size\":1310720}";
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + i / 65536);
    setup(&f, 0, false, false);
    f.srv.answer_hdr = ans;
    f.srv.answer_body = big;
    f.srv.answer_len = sizeof(big);
    f.cli.hold = true;
    RUN_UNTIL(&f, f.cli.readies == 1);

    struct oapnet_stream *st = &f.cli.st[0];
    oapnet_stream_open(&f.cli.ep, st, 1, OAP_APP_STORAGE, NULL);
    st->chunked = true; /* set before the answer's first frame */
    st->window = OAP_STREAM_INITIAL_CREDIT;
    cr_assert_eq(oapnet_send(&f.cli.ep, st, 0, "{}", 2, NULL, 0), 1);
    RUN_UNTIL(&f, f.cli.chunks == OAP_STREAM_INITIAL_CREDIT);
    settle(&f);
    struct oapnet_stream *out = &f.srv.st[0];
    cr_assert_eq(f.srv.send_rc, 0, "a stream waiting for credit");
    cr_assert(out->out_stream);
    cr_assert_eq(f.cli.heads, 1);
    cr_assert_eq(f.cli.code, 200);
    cr_assert_eq(f.cli.chunks, 4, "the initial credit, no more");
    cr_assert_eq(out->prod.frames, 4);
    cr_assert_eq(out->prod.credit, 0);
    cr_assert_not(out->out_done);

    /* Half the window free: one grant of 2, two more frames. */
    oapnet_consumed(&f.cli.ep, st, 2);
    f.cli.held -= 2;
    RUN_UNTIL(&f, f.cli.chunks == 6);
    settle(&f);
    cr_assert_eq(f.cli.chunks, 6);
    cr_assert_eq(out->prod.frames, 6);

    /* Release everything from now on: the stream runs to its END. */
    f.cli.hold = false;
    oapnet_consumed(&f.cli.ep, st, (uint32_t)f.cli.held);
    f.cli.held = 0;
    RUN_UNTIL(&f, f.cli.ends == 1);
    settle(&f);
    cr_assert_eq(f.srv.sents, 1, "told once, when a grant let END go");
    cr_assert_eq(f.cli.ends, 1);
    cr_assert_eq(f.cli.messages, 0, "a chunked stream ends in on_end");
    cr_assert_eq(f.cli.body_len, sizeof(big));
    cr_assert(memcmp(f.cli.body, big, sizeof(big)) == 0);
    cr_assert_eq(f.cli.chunks, (int)((sizeof(big) + 2 + strlen(ans)) / f.srv.ep.chunk + 1));
    teardown(&f);
    cr_assert_eq(f.cli.aborts + f.srv.aborts, 0);
}

/* Client produces a request stream: it stops when the peer's credit is
 * spent and sends exactly one frame per credit granted. */
Test(oapnet, client_stream_stops_without_credit)
{
    struct fixture f;
    struct oap_frame fr;
    static uint8_t big[3 << 20];
    uint8_t g[4];
    setup(&f, 0, true, false);
    raw_hello_answer(&f, 65536);

    struct oapnet_stream *st = &f.cli.st[0];
    cr_assert_eq(call(&f, 0, 9, "{\"op\":\"put\"}", big, sizeof(big)), 0);
    cr_assert(oapnet_stream_borrowing(&f.cli.ep, st), "its body is still needed");
    for (int i = 0; i < OAP_STREAM_INITIAL_CREDIT; i++) {
        cr_assert(raw_frame(&f, &fr));
        cr_assert_eq(fr.h.corr_id, 9);
        cr_assert_eq(fr.h.flags, OAP_FLAG_REQ | (i == 0 ? OAP_FLAG_START : 0));
        cr_assert_leq(fr.h.len, 65536, "within the peer's max_frame");
    }
    raw_expect_silence(&f);
    cr_assert_eq(st->prod.credit, 0);

    oap_put32(g, 3);
    raw_frame_send(&f, OAP_CREDIT_FLAGS, 0, OAP_APP_STORAGE, 9, g, 4);
    for (int i = 0; i < 3; i++) {
        cr_assert(raw_frame(&f, &fr));
        cr_assert_eq(fr.h.flags, OAP_FLAG_REQ);
    }
    raw_expect_silence(&f);
    cr_assert_eq(st->prod.frames, 7);
    cr_assert_eq(f.cli.errors + f.cli.closed, 0);
    teardown(&f);
    cr_assert_eq(f.cli.aborts, 1, "the unanswered call, once");
}

/* Client produces, server gathers: the server grants as it consumes, and
 * gets the whole body as one message. */
Test(oapnet, request_stream_gathered_by_server)
{
    struct fixture f;
    static uint8_t big[100000];
    static const char req[] = "{\"op\":\"put\"}";
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i % 251);
    setup(&f, 4096, false, false);
    f.srv.answer_hdr = "{\"created\":true}";
    RUN_UNTIL(&f, f.cli.readies == 1);
    cr_assert_eq(f.cli.ep.max_frame, 4096);

    struct oapnet_stream *st = &f.cli.st[0];
    cr_assert_eq(call(&f, 0, 3, req, big, sizeof(big)), 0);
    RUN_UNTIL(&f, f.cli.messages == 1);
    settle(&f);
    cr_assert_eq(f.srv.requests, 1);
    expect_message(&f.srv, req, big, sizeof(big));
    cr_assert_gt(st->prod.frames, OAP_STREAM_INITIAL_CREDIT, "went on with granted credit");
    cr_assert(st->out_done);
    cr_assert_eq(f.cli.code, 200);
    teardown(&f);
    cr_assert_eq(f.cli.aborts + f.srv.aborts, 0);
}

/* --------------------------------------------------------------- closing */

/* The server goes away with three calls in flight, one of them in the
 * middle of its answer stream: each call is failed once. */
Test(oapnet, peer_closing_mid_stream_fails_each_call_once)
{
    struct fixture f;
    static uint8_t big[10 * 65536];
    setup(&f, 0, false, false);
    RUN_UNTIL(&f, f.cli.readies == 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(call(&f, i, (uint64_t)i + 1, "{}", NULL, 0), 1);
        f.cli.st[i].chunked = true; /* before any answer: the loop has not run */
        f.cli.st[i].window = OAP_STREAM_INITIAL_CREDIT;
    }
    f.cli.hold = true;
    RUN_UNTIL(&f, f.srv.messages == 3);
    /* Answer the first as a stream the client does not consume. */
    cr_assert_eq(oapnet_send(&f.srv.ep, &f.srv.st[0], 200, "{}", 2, big, sizeof(big)), 0);
    RUN_UNTIL(&f, f.cli.chunks == OAP_STREAM_INITIAL_CREDIT);
    settle(&f);
    cr_assert_eq(f.cli.chunks, OAP_STREAM_INITIAL_CREDIT, "mid-stream: the window is full");
    oapnet_close(&f.srv.ep, "gone");
    RUN_UNTIL(&f, f.cli.closed == 1 && f.srv.closed == 1);
    settle(&f);
    cr_assert_eq(f.cli.aborts, 3);
    cr_assert_eq(f.cli.closed, 1);
    cr_assert_str_eq(f.cli.ep.why, "closed by peer");
    cr_assert_eq(f.cli.ep.nstreams, 0);
    cr_assert_eq(f.srv.aborts, 3, "the server's own requests, once each");
    cr_assert_eq(f.srv.closed, 1);
    cr_assert_eq(f.cli.errors + f.srv.errors + f.cli.ends + f.cli.messages, 0);
    teardown(&f);
    cr_assert_eq(f.cli.aborts, 3, "not again");
    cr_assert_eq(f.cli.closed, 1);
}

/* A client that closes in the middle of its request stream: the server's
 * request is aborted once, without a protocol error. */
Test(oapnet, client_closing_mid_request_stream)
{
    struct fixture f;
    uint8_t p[256];
    setup(&f, 0, false, true);
    size_t n = data(p, sizeof(p), "{\"op\":\"put\"}", "abc", 3);
    raw_frame_send(&f, OAP_FLAG_REQ | OAP_FLAG_START, 0, OAP_APP_STORAGE, 5, p, n);
    RUN_UNTIL(&f, f.srv.requests == 1);
    cr_assert(f.srv.st[0].in_stream);
    close(f.raw);
    f.raw = -1;
    RUN_UNTIL(&f, f.srv.closed == 1);
    cr_assert_eq(f.srv.aborts, 1);
    cr_assert_eq(f.srv.messages, 0);
    cr_assert_eq(f.srv.errors, 0, "end of input on a frame boundary is no error");
    teardown(&f);
    cr_assert_eq(f.srv.aborts, 1);
}

/* ------------------------------------------------------------ bad frames */

/* A server answers a bad frame with one typed error frame, then closes. */
Test(oapnet, server_bad_frame_typed_error_then_close)
{
    struct fixture f;
    struct oap_frame fr;
    uint8_t good[128], bad[OAP_HDR_BYTES];
    setup(&f, 0, false, true);
    /* A good request first (not answered), so the error's offset is a
     * stream offset. */
    size_t n = data(good, sizeof(good), "{\"op\":\"has\"}", NULL, 0);
    raw_frame_send(&f, OAP_FLAG_REQ, 0, OAP_APP_STORAGE, 4, good, n);
    struct oap_hdr h = {.len = OAP_HDR_BYTES,
                        .ver = OAP_VERSION,
                        .flags = OAP_FLAG_REQ | 0x100,
                        .app_proto_id = OAP_APP_STORAGE,
                        .corr_id = 5};
    oap_hdr_write(&h, bad);
    raw_send(&f, bad, sizeof(bad));
    cr_assert(raw_frame(&f, &fr));
    cr_assert_eq(fr.h.flags, OAP_FLAG_RESP | OAP_FLAG_END);
    cr_assert_eq(fr.h.code, 400);
    cr_assert_eq(fr.h.corr_id, 0, "the bad header was not readable");
    struct oap_data d;
    cr_assert_eq(oap_data_split(&d, fr.payload, fr.payload_len), 0);
    char want[64];
    int wn = snprintf(want, sizeof(want), "{\"error\":\"bad_flags\",\"offset\":%zu}",
                      OAP_HDR_BYTES + n + OAP_OFF_FLAGS);
    cr_assert_eq(d.hdr_len, (size_t)wn);
    cr_assert(memcmp(d.hdr, want, d.hdr_len) == 0, "%.*s", (int)d.hdr_len, d.hdr);
    cr_assert_not(raw_frame(&f, &fr), "then the connection closes");
    RUN_UNTIL(&f, f.srv.closed == 1);
    cr_assert_eq(f.srv.errors, 1);
    cr_assert_eq(f.srv.last_err, OAP_E_BAD_FLAGS);
    cr_assert_eq(f.srv.last_off, OAP_HDR_BYTES + n + OAP_OFF_FLAGS);
    cr_assert_eq(f.srv.aborts, 1, "the unanswered request, once");
    teardown(&f);
}

/* A client takes a bad frame as the end of the connection: its pending
 * call fails once, and nothing is sent back. */
Test(oapnet, client_bad_frame_closes_and_fails_calls)
{
    struct fixture f;
    struct oap_frame fr;
    uint8_t bad[OAP_HDR_BYTES];
    setup(&f, 0, true, false);
    size_t hello_len = raw_hello_answer(&f, OAP_MAX_FRAME_BYTES);
    cr_assert_eq(call(&f, 0, 11, "{}", NULL, 0), 1);
    cr_assert(raw_frame(&f, &fr));
    cr_assert_eq(fr.h.corr_id, 11);
    struct oap_hdr h = {.len = OAP_HDR_BYTES, .ver = 2, .flags = OAP_FLAG_RESP, .corr_id = 11};
    oap_hdr_write(&h, bad);
    raw_send(&f, bad, sizeof(bad));
    RUN_UNTIL(&f, f.cli.closed == 1);
    cr_assert_eq(f.cli.errors, 1);
    cr_assert_eq(f.cli.last_err, OAP_E_BAD_VERSION);
    cr_assert_eq(f.cli.last_off, hello_len + OAP_OFF_VER);
    cr_assert_eq(f.cli.aborts, 1);
    cr_assert_eq(f.cli.messages, 0);
    cr_assert_not(raw_frame(&f, &fr), "no error frame from a client");
    teardown(&f);
    cr_assert_eq(f.cli.aborts, 1);
}

/* A malformed DATA payload in a one-frame answer fails that message only;
 * the connection stays. */
Test(oapnet, bad_data_payload_fails_one_message)
{
    struct fixture f;
    uint8_t p[64] = {0};
    setup(&f, 0, true, false);
    raw_hello_answer(&f, OAP_MAX_FRAME_BYTES);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(call(&f, i, (uint64_t)i + 20, "{}", NULL, 0), 1);
    oap_put16(p, 200); /* header_len past the payload */
    raw_frame_send(&f, OAP_FLAG_RESP, 200, OAP_APP_STORAGE, 20, p, 4);
    RUN_UNTIL(&f, f.cli.messages == 1);
    cr_assert_eq(f.cli.last_status, OAP_E_BAD_DATA_HDR);
    size_t n = data(p, sizeof(p), "{\"v\":1}", "x", 1);
    raw_frame_send(&f, OAP_FLAG_RESP, 404, OAP_APP_STORAGE, 21, p, n);
    RUN_UNTIL(&f, f.cli.messages == 2);
    cr_assert_eq(f.cli.last_status, 0);
    cr_assert_eq(f.cli.code, 404);
    cr_assert_eq(f.cli.ep.state, OAPNET_READY);
    cr_assert_eq(f.cli.errors + f.cli.closed, 0);
    teardown(&f);
    cr_assert_eq(f.cli.aborts, 0);
}

/* COMP: a server that announced it inflates a one-frame request; a client,
 * which announces none, takes a COMP frame as a protocol error. */
Test(oapnet, comp_inflated_by_server_refused_by_client)
{
    struct fixture f;
    static uint8_t body[20000], p[32768], z[32768];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i % 7);
    size_t n = data(p, sizeof(p), "{\"op\":\"put\"}", body, sizeof(body));
    ssize_t zn = oap_deflate(p, n, z, sizeof(z), 3);
    cr_assert_gt(zn, 0);
    cr_assert_lt((size_t)zn, n);

    setup(&f, 0, false, true);
    raw_frame_send(&f, OAP_FLAG_REQ | OAP_FLAG_COMP, 0, OAP_APP_STORAGE, 6, z, (size_t)zn);
    RUN_UNTIL(&f, f.srv.messages == 1);
    expect_message(&f.srv, "{\"op\":\"put\"}", body, sizeof(body));
    cr_assert_eq(f.srv.errors, 0);
    teardown(&f);

    setup(&f, 0, true, false);
    raw_hello_answer(&f, OAP_MAX_FRAME_BYTES);
    cr_assert_eq(call(&f, 0, 6, "{}", NULL, 0), 1);
    raw_frame_send(&f, OAP_FLAG_RESP | OAP_FLAG_COMP, 200, OAP_APP_STORAGE, 6, z, (size_t)zn);
    RUN_UNTIL(&f, f.cli.closed == 1);
    cr_assert_eq(f.cli.errors, 1);
    cr_assert_eq(f.cli.last_err, OAP_E_BAD_FLAGS);
    cr_assert_eq(f.cli.aborts, 1);
    cr_assert_eq(f.cli.messages, 0);
    teardown(&f);
}
