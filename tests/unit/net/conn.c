/*
 * Client connections (src/net/conn.c) on a real worker loop over loopback:
 * an idle connection holds no read buffer and no request state, both are
 * taken when bytes arrive and given back when the response is done and no
 * byte is left unread — with pipelined bursts, heads split into single
 * bytes, bodies larger than the buffer, handlers that answer later, and
 * clients that leave mid-request. The valgrind run checks nothing leaks.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "http/ctx.h"
#include "http/response.h"
#include "net/conn.h"
#include "net/server.h"

static struct og_config cfg;
static struct server srv;
static struct worker w;
static struct http_ctx ctx;
static struct router router;
static int client = -1;
static struct http_req *held; /* the request /later is holding */
static int cancelled;

static void on_now(struct http_req *req)
{
    http_respond(req, 200, "text/plain", req->path.p, req->path.n);
}

static void on_later_cancel(struct http_req *req)
{
    cancelled++;
    held = NULL;
}

static void on_later(struct http_req *req)
{
    held = req;
    req->on_cancel = on_later_cancel;
}

/* Answer the request /later is holding, as its handler would. */
static void answer_held(const char *text)
{
    struct http_req *r = held;
    held = NULL;
    r->on_cancel = NULL;
    http_respond(r, 200, "text/plain", text, strlen(text));
}

static void on_echo(struct http_req *req)
{
    http_respond(req, 200, "application/octet-stream", req->body.p, req->body.n);
}

/* More than loopback's socket buffers hold while the client does not read. */
#define BIG_BYTES (16 * 1024 * 1024)
static void on_big(struct http_req *req)
{
    static const char zeros[BIG_BYTES];
    http_respond(req, 200, "application/octet-stream", zeros, sizeof(zeros));
}

static const struct route ROUTES[] = {
    {"/now", M_GET, on_now, 0},    {"/now/{x}", M_GET, on_now, 0}, {"/later", M_GET, on_later, 0},
    {"/echo", M_POST, on_echo, 0}, {"/big", M_GET, on_big, 0},
};

static void setup(void)
{
    config_defaults(&cfg);
    atomic_store(&srv.cfg, &cfg);
    srv.conns_fd_room = 1000;
    log_min_level = LOG_ERROR;
    metrics_init(1);
    router_setup(&router, ROUTES, sizeof(ROUTES) / sizeof(ROUTES[0]));
    cr_assert_eq(worker_init(&w, &srv, 0, false, &router), 0);
    http_ctx_init(&ctx, 0, &cfg, w.m, &router, &w.logbuf);
    w.ctx = &ctx;

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert_eq(uv_tcp_init(&w.loop, &w.listener), 0);
    w.listener.data = &w;
    cr_assert_eq(uv_tcp_bind(&w.listener, (struct sockaddr *)&a, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&w.listener, 16, conn_on_accept), 0);
    cr_assert_eq(uv_tcp_getsockname(&w.listener, (struct sockaddr *)&a, (int *)&al), 0);

    client = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(client >= 0);
    cr_assert_eq(connect(client, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(client, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 2000 && w.nconns == 0; i++)
        uv_run(&w.loop, UV_RUN_NOWAIT);
    cr_assert_eq(w.nconns, 1);
}

static void teardown(void)
{
    if (client >= 0)
        close(client);
    conn_close_all(&w, false);
    uv_close((uv_handle_t *)&w.listener, NULL);
    uv_close((uv_handle_t *)&w.wake, NULL);
    uv_close((uv_handle_t *)&w.flush, NULL);
    uv_close((uv_handle_t *)&w.before_poll, NULL);
    uv_close((uv_handle_t *)&w.pressure_timer, NULL);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&w.loop), 0);
    worker_release(&w);
}

TestSuite(conn, .init = setup, .fini = teardown);

/* Loop turns until cond holds (2 s at most). */
#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        for (int i_ = 0; i_ < 2000 && !(cond); i_++) {                                             \
            uv_run(&w.loop, UV_RUN_NOWAIT);                                                        \
            if (!(cond))                                                                           \
                usleep(1000);                                                                      \
        }                                                                                          \
        cr_assert(cond, "timed out waiting for " #cond);                                           \
    } while (0)

static void send_str(const char *s, size_t n)
{
    cr_assert_eq(send(client, s, n, 0), (ssize_t)n);
}
#define SEND(lit) send_str((lit), sizeof(lit) - 1)

/* Read n whole responses (Content-Length framed) while the loop runs; their
 * bodies, separated by '|', go to out. Returns the statuses as a number per
 * response, e.g. 200200. */
static long responses(int n, char *out, size_t cap)
{
    static char in[256 * 1024];
    size_t have = 0, used = 0, on = 0;
    long statuses = 0;
    for (int got = 0; got < n;) {
        const char *end = memmem(in + used, have - used, "\r\n\r\n", 4);
        const char *cl =
            end ? memmem(in + used, (size_t)(end - in) - used, "Content-Length: ", 16) : NULL;
        size_t len = cl ? strtoul(cl + 16, NULL, 10) : 0;
        if (end && (size_t)(end + 4 - in) + len <= have) {
            statuses = statuses * 1000 + strtol(in + used + 9, NULL, 10);
            cr_assert(on + len + 1 < cap);
            memcpy(out + on, end + 4, len);
            on += len;
            out[on++] = '|';
            used = (size_t)(end + 4 - in) + len;
            got++;
            continue;
        }
        uv_run(&w.loop, UV_RUN_NOWAIT);
        ssize_t r = recv(client, in + have, sizeof(in) - have, 0);
        if (r > 0)
            have += (size_t)r;
        else
            usleep(500);
    }
    out[on] = '\0';
    cr_assert_eq(have, used, "no bytes beyond the responses");
    return statuses;
}

/* The connection is idle and holds nothing; the worker has cached one of
 * each block. */
static void assert_idle(struct conn *c)
{
    cr_assert_eq(c->phase, PHASE_IDLE);
    cr_assert_null(c->rbuf, "an idle connection holds no read buffer");
    cr_assert_null(c->rq, "an idle connection holds no request state");
    cr_assert_eq(w.rbufs.n, 1);
    cr_assert_eq(w.reqs.n, 1);
}

Test(conn, idle_connection_holds_no_buffer_or_request)
{
    struct conn *c = w.conns;
    char body[64];
    cr_assert_null(c->rbuf, "nothing is taken at accept");
    cr_assert_null(c->rq);
    for (int i = 0; i < 3; i++) {
        SEND("GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
        cr_assert_eq(responses(1, body, sizeof(body)), 200);
        cr_assert_str_eq(body, "/now|");
        assert_idle(c); /* the same two blocks serve every request */
    }
}

Test(conn, pipelined_burst_with_a_partial_head_behind_it)
{
    struct conn *c = w.conns;
    char body[512];
    SEND("GET /now/a HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
         "GET /now/b HTTP/1.1\r\nHost: t\r\n\r\nGET /now/c HTT");
    cr_assert_eq(responses(3, body, sizeof(body)), 200404200);
    cr_assert(strncmp(body, "/now/a|", 7) == 0 && strstr(body, "|/now/b|"));
    /* The fourth head is half here: buffer and request state stay. */
    cr_assert_eq(c->phase, PHASE_HEAD);
    cr_assert_not_null(c->rbuf);
    cr_assert_not_null(c->rq);
    SEND("P/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(responses(1, body, sizeof(body)), 200);
    cr_assert_str_eq(body, "/now/c|");
    assert_idle(c);
}

Test(conn, head_split_into_single_bytes)
{
    static const char REQ[] = "GET /now/split HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n\r\n";
    struct conn *c = w.conns;
    char body[64];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(REQ) - 2; i++) {
            send_str(REQ + i, 1);
            RUN_UNTIL(c->rbuf != NULL && c->rlen == i + 1);
            cr_assert_not_null(c->rq, "a request is started by its first byte");
        }
        send_str(REQ + sizeof(REQ) - 2, 1);
        cr_assert_eq(responses(1, body, sizeof(body)), 200);
        cr_assert_str_eq(body, "/now/split|");
        assert_idle(c);
    }
}

Test(conn, request_answered_later_keeps_its_state_and_the_bytes_behind_it)
{
    struct conn *c = w.conns;
    char body[64];
    SEND("GET /later HTTP/1.1\r\nHost: t\r\n\r\nGET /now/next HTTP/1.1\r\nHost: t\r\n\r\n");
    RUN_UNTIL(held != NULL);
    cr_assert(c->req_active);
    cr_assert_eq(held->conn, &c->hc);
    cr_assert_not_null(c->rq);
    cr_assert_not_null(c->rbuf, "the head and the pipelined request are in the buffer");
    cr_assert(held->path.n == 6 && memcmp(held->path.p, "/later", 6) == 0,
              "head slices stay valid");
    cr_assert_eq(w.reqs.n, 0);
    answer_held("later");
    cr_assert_eq(responses(2, body, sizeof(body)), 200200);
    cr_assert_str_eq(body, "later|/now/next|");
    assert_idle(c);
}

Test(conn, bodies_larger_than_the_buffer)
{
    struct conn *c = w.conns;
    static char big[40000], out[2 * sizeof(big)], msg[sizeof(big) + 64];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    /* Fixed length, arriving in pieces: the space after the head is reused. */
    int n = snprintf(msg, sizeof(msg),
                     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", sizeof(big));
    send_str(msg, (size_t)n);
    for (size_t off = 0; off < sizeof(big); off += 3000) {
        send_str(big + off, sizeof(big) - off < 3000 ? sizeof(big) - off : 3000);
        for (int i = 0; i < 5; i++)
            uv_run(&w.loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(responses(1, out, sizeof(out)), 200);
    cr_assert_eq(strlen(out), sizeof(big) + 1);
    cr_assert(memcmp(out, big, sizeof(big)) == 0);
    assert_idle(c);
    /* Chunked, two chunks, then a GET pipelined behind it. */
    SEND("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(responses(2, out, sizeof(out)), 200200);
    cr_assert_str_eq(out, "hello world|/now|");
    assert_idle(c);
}

/* The client goes away: with a reset, or with a FIN (a half-close, after
 * which a request already read is still answered). */
static void close_client(bool reset)
{
    struct linger lg = {1, 0};
    if (reset)
        setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(client);
    client = -1;
}

/* The connection is gone and gave its read buffer and request state back. */
static void assert_closed_and_given_back(void)
{
    RUN_UNTIL(w.nconns == 0);
    cr_assert_eq(w.rbufs.n, 1, "the read buffer is back");
    cr_assert_eq(w.reqs.n, 1, "the request state is back");
}

Test(conn, client_gone_mid_request_gives_everything_back)
{
    SEND("GET /later HTTP/1.1\r\nHost: t\r\n\r\n");
    RUN_UNTIL(held != NULL);
    close_client(true);
    assert_closed_and_given_back();
    cr_assert_eq(cancelled, 1, "the handler was told");
    cr_assert_null(held);
}

Test(conn, client_gone_mid_head_gives_everything_back)
{
    SEND("GET /now HTTP/1.1\r\nHo");
    RUN_UNTIL(w.conns->rq != NULL);
    close_client(false);
    assert_closed_and_given_back();
}

Test(conn, connection_close_drops_what_is_pipelined_behind)
{
    struct conn *c = w.conns;
    char body[64];
    SEND("GET /now HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /now/x HTTP/1.1\r\n");
    cr_assert_eq(responses(1, body, sizeof(body)), 200);
    cr_assert_eq(c->phase, PHASE_CLOSING);
    cr_assert_null(c->rq);
    cr_assert_null(c->rbuf, "lingering close reads into a buffer only while it drains");
    char tail[16];
    RUN_UNTIL(recv(client, tail, sizeof(tail), 0) == 0); /* FIN after the response */
}

Test(conn, half_close_still_gets_its_answer)
{
    char body[64];
    SEND("GET /later HTTP/1.1\r\nHost: t\r\n\r\n");
    RUN_UNTIL(held != NULL);
    shutdown(client, SHUT_WR);
    for (int i = 0; i < 20; i++)
        uv_run(&w.loop, UV_RUN_NOWAIT);
    cr_assert_eq(w.nconns, 1, "a FIN alone does not abandon the request");
    answer_held("late");
    cr_assert_eq(responses(1, body, sizeof(body)), 200);
    cr_assert_str_eq(body, "late|");
    assert_closed_and_given_back(); /* Connection: close after a half-close */
    cr_assert_eq(cancelled, 0);
}

Test(conn, head_timeout_answers_408_and_gives_everything_back)
{
    char body[512];
    cfg.head_timeout_ms = 100;
    SEND("GET /now HTTP/1.1\r\nHost:");
    cr_assert_eq(responses(1, body, sizeof(body)), 408);
    cr_assert(strstr(body, "\"timeout\""), "%s", body);
    close_client(false);
    assert_closed_and_given_back();
}

Test(conn, buffers_follow_header_max_after_a_reload)
{
    struct conn *c = w.conns;
    char body[64];
    SEND("GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(responses(1, body, sizeof(body)), 200);
    size_t room = w.rbufs.size - (size_t)cfg.header_max; /* for bodies, beyond the head cap */
    cfg.header_max = 2048; /* what a reload does to the worker's snapshot */
    SEND("GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(responses(1, body, sizeof(body)), 200);
    cr_assert_eq(w.rbufs.size, 2048 + room);
    assert_idle(c);
}

/* ---- connection pressure ------------------------------------------------ */

static struct sockaddr_in listen_addr(void)
{
    struct sockaddr_in a;
    int al = sizeof(a);
    cr_assert_eq(uv_tcp_getsockname(&w.listener, (struct sockaddr *)&a, &al), 0);
    return a;
}

/* Another client; returns once the worker has accepted or refused it. With
 * rcvbuf > 0 its receive buffer is that small (set before connecting). */
static int open_client(int rcvbuf)
{
    struct sockaddr_in a = listen_addr();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    if (rcvbuf > 0)
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    uint64_t seen = w.m->conns_accepted + w.m->conns_refused;
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    RUN_UNTIL(w.m->conns_accepted + w.m->conns_refused > seen);
    return fd;
}

/* One request on fd (another client than `client`) and its 200. */
static void request_on(int fd, const char *path)
{
    char req[128], in[4096];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    cr_assert_eq(send(fd, req, (size_t)n, 0), n);
    size_t have = 0;
    for (int i = 0; i < 2000; i++) {
        uv_run(&w.loop, UV_RUN_NOWAIT);
        ssize_t r = recv(fd, in + have, sizeof(in) - 1 - have, 0);
        if (r > 0)
            have += (size_t)r;
        in[have] = '\0';
        const char *end = strstr(in, "\r\n\r\n");
        const char *cl = strstr(in, "Content-Length: ");
        if (end && cl && have >= (size_t)(end + 4 - in) + strtoul(cl + 16, NULL, 10))
            break;
        usleep(1000);
    }
    cr_assert(strncmp(in, "HTTP/1.1 200 ", 13) == 0, "%s", in);
}

/* True when the server has closed fd: EOF or a reset, with no byte before
 * it (a connection closed under pressure is not answered). */
static bool closed_silently(int fd)
{
    char b[64];
    ssize_t r = recv(fd, b, sizeof(b), 0);
    cr_assert(r <= 0, "a connection closed under pressure got bytes: %.*s", (int)r, b);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* Shortened timeouts out of the way, for tests of making room. */
static void no_shortening(void)
{
    cfg.head_timeout_min_ms = cfg.head_timeout_ms;
    cfg.idle_timeout_min_ms = cfg.idle_timeout_ms;
}

/* Loop turns for ms milliseconds of wall time, so waits begin at distinct
 * times (also under valgrind, where a turn takes longer). */
static void run_for(int ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
    while (uv_hrtime() < end) {
        uv_run(&w.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    uv_update_time(&w.loop);
}

Test(conn, full_house_gives_the_longest_waiting_slot_to_a_newcomer)
{
    no_shortening();
    char body[64];
    cfg.max_connections = 3;
    SEND("GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(responses(1, body, sizeof(body)), 200); /* idle from here: the oldest wait */
    run_for(5);
    int second = open_client(0);
    request_on(second, "/now");
    run_for(5);
    int third = open_client(0); /* waits for its head */
    cr_assert_eq(w.wait_idle.n, 2);
    cr_assert_eq(w.wait_head.n, 1);
    cr_assert_eq(atomic_load(&srv.conns), 3);
    cr_assert_eq(w.pressure, PRESSURE_FULL);

    int fourth = open_client(0);
    cr_assert_eq(w.m->conns_refused, 0, "room was made, nobody refused");
    cr_assert_eq(w.m->conns_evicted[METRICS_EVICT_ROOM], 1);
    RUN_UNTIL(closed_silently(client));
    cr_assert_eq(atomic_load(&srv.conns), 3, "the slot went to the newcomer");
    request_on(fourth, "/now");
    request_on(second, "/now"); /* the others keep theirs */
    request_on(third, "/now");
    RUN_UNTIL(w.nconns == 3);
    close(second);
    close(third);
    close(fourth);
}

Test(conn, requests_read_or_served_are_never_closed_to_make_room)
{
    no_shortening();
    cfg.max_connections = 2;
    SEND("GET /later HTTP/1.1\r\nHost: t\r\n\r\n");
    RUN_UNTIL(held != NULL);
    int body = open_client(0);
    static const char HEAD[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab";
    cr_assert_eq(send(body, HEAD, sizeof(HEAD) - 1, 0), (ssize_t)sizeof(HEAD) - 1);
    RUN_UNTIL(w.conns->phase == PHASE_BODY);
    cr_assert_eq(w.wait_head.n + w.wait_idle.n, 0, "neither waits for a request");

    int extra = open_client(0);
    cr_assert_eq(w.m->conns_refused, 1);
    cr_assert_eq(w.m->conns_evicted[METRICS_EVICT_ROOM], 0);
    char in[512];
    ssize_t n = 0;
    for (int i = 0; i < 2000 && n <= 0; i++) {
        n = recv(extra, in, sizeof(in) - 1, 0);
        usleep(500);
    }
    cr_assert(n > 0 && strncmp(in, "HTTP/1.1 503 ", 13) == 0);
    cr_assert_eq(atomic_load(&srv.conns), 2);
    answer_held("served");
    char out[64];
    cr_assert_eq(responses(1, out, sizeof(out)), 200);
    cr_assert_str_eq(out, "served|");
    cr_assert_eq(cancelled, 0);
    close(extra);
    close(body);
}

Test(conn, an_answer_still_being_written_is_never_closed_to_make_room)
{
    no_shortening();
    cfg.max_connections = 2;
    int slow = open_client(4096); /* reads nothing for now */
    static const char REQ[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
    cr_assert_eq(send(slow, REQ, sizeof(REQ) - 1, 0), (ssize_t)sizeof(REQ) - 1);
    struct conn *c = w.conns; /* the newest is first */
    RUN_UNTIL(c->phase == PHASE_IDLE && c->writes_pending > 0);
    cr_assert_null(c->waitq, "its response is still on its way");

    int extra = open_client(0);
    cr_assert_eq(w.m->conns_evicted[METRICS_EVICT_ROOM], 1);
    RUN_UNTIL(closed_silently(client));
    cr_assert_eq(w.m->conns_refused, 0);
    /* The whole answer still arrives. */
    static char in[65536];
    size_t got = 0;
    for (int i = 0; i < 20000; i++) {
        uv_run(&w.loop, UV_RUN_NOWAIT);
        ssize_t r = recv(slow, in, sizeof(in), 0);
        if (r > 0)
            got += (size_t)r;
        else if (c->writes_pending == 0)
            break;
        else
            usleep(200);
    }
    cr_assert_gt(got, BIG_BYTES, "head and 16 MiB of body: %zu bytes", got);
    cr_assert_eq(c->waitq, &w.wait_idle, "idle and waiting once written");
    close(slow);
    close(extra);
}

Test(conn, under_pressure_a_slow_head_is_cut_from_its_start)
{
    cfg.max_connections = 2;
    cfg.conn_pressure_high = 50; /* mark 1: the second connection is full pressure */
    cfg.head_timeout_min_ms = 200;
    SEND("GET /now HTTP/1.1\r\nHo");
    RUN_UNTIL(w.conns->rq != NULL);
    uint64_t started = w.conns->wait.since_ms;
    run_for(100);
    int other = open_client(0);
    cr_assert_eq(w.pressure, PRESSURE_FULL);
    /* Trickling bytes does not move the deadline. */
    for (int i = 0; i < 20 && !w.m->conns_evicted[METRICS_EVICT_HEAD]; i++) {
        send(client, "s", 1, MSG_NOSIGNAL);
        run_for(20);
    }
    RUN_UNTIL(w.m->conns_evicted[METRICS_EVICT_HEAD] == 1);
    uint64_t cut = uv_now(&w.loop);
    cr_assert(cut >= started + 200 && cut < started + 1000, "cut %llu ms after its start",
              (unsigned long long)(cut - started));
    RUN_UNTIL(closed_silently(client));
    /* One connection left is under the mark: the other keeps the full head_timeout. */
    RUN_UNTIL(w.pressure == 0);
    run_for(300);
    cr_assert_eq(w.m->conns_evicted[METRICS_EVICT_HEAD], 1);
    request_on(other, "/now");
    close(other);
}

/* Which of fds[0..n) the server has closed, one bit each. */
static unsigned closed_set(const int *fds, int n)
{
    unsigned set = 0;
    for (int i = 0; i < n; i++) {
        char b;
        ssize_t r = recv(fds[i], &b, 1, MSG_PEEK);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            set |= 1u << i;
    }
    return set;
}

Test(conn, idle_keep_alive_closed_oldest_first_as_pressure_shortens_idle_timeout)
{
    cfg.max_connections = 3;
    cfg.conn_pressure_high = 1; /* mark 0: every connection counts */
    cfg.idle_timeout_ms = 2000;
    cfg.idle_timeout_min_ms = 500;
    int fds[3] = {client, -1, -1};
    uint64_t idle_at[3];
    char body[64];
    SEND("GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(responses(1, body, sizeof(body)), 200);
    idle_at[0] = uv_now(&w.loop);
    for (int i = 1; i < 3; i++) {
        run_for(30);
        fds[i] = open_client(0);
        request_on(fds[i], "/now");
        idle_at[i] = uv_now(&w.loop);
    }
    /* 3 of 3: idle_timeout 500 ms; then 2 of 3: 1000 ms; then 1 of 3: 1500 ms. */
    unsigned order[3], seen = 0;
    uint64_t at[3];
    for (int k = 0; k < 3; k++) {
        RUN_UNTIL(closed_set(fds, 3) != seen);
        unsigned now_closed = closed_set(fds, 3);
        order[k] = now_closed & ~seen;
        at[k] = uv_now(&w.loop);
        seen = now_closed;
    }
    cr_assert_eq(order[0], 1u << 0, "the oldest idle connection first (%x)", order[0]);
    cr_assert_eq(order[1], 1u << 1, "then the next (%x)", order[1]);
    cr_assert_eq(order[2], 1u << 2, "the newest last (%x)", order[2]);
    cr_assert_geq(at[0] - idle_at[0], 500, "not before the shortest idle_timeout");
    for (int k = 0; k < 3; k++)
        cr_assert_lt(at[k] - idle_at[k], 2000, "connection %d: closed %llu ms after going idle", k,
                     (unsigned long long)(at[k] - idle_at[k]));
    cr_assert_eq(w.m->conns_evicted[METRICS_EVICT_IDLE], 3);
    close(fds[1]);
    close(fds[2]);
}

Test(conn, a_full_house_closes_only_as_many_as_the_pressure_calls_for)
{
    cfg.max_connections = 3;
    cfg.conn_pressure_high = 1; /* mark 0 */
    cfg.idle_timeout_ms = 2000;
    cfg.idle_timeout_min_ms = 500;
    char body[64];
    SEND("GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(responses(1, body, sizeof(body)), 200);
    run_for(20);
    int second = open_client(0);
    request_on(second, "/now");
    /* 2 of 3: idle_timeout 1000 ms. Both wait longer than a full house's 500. */
    run_for(700);
    cr_assert_eq(w.m->conns_evicted[METRICS_EVICT_IDLE], 0);
    int third = open_client(0);
    /* Full: the oldest goes at once. That makes it 2 of 3 again, where the
     * second, idle for 700 ms, may stay. */
    RUN_UNTIL(closed_silently(client));
    cr_assert_eq(w.m->conns_evicted[METRICS_EVICT_IDLE], 1);
    request_on(second, "/now");
    close(second);
    close(third);
}
