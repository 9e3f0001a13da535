/*
 * Write batching (src/oapnet/wbatch.c) on a real loop over a socketpair: frames
 * leave in order once per turn, a batch the socket cannot take goes through
 * libuv's queue, and a failed write is reported and dropped.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "oapnet/wbatch.h"

struct fixture {
    uv_loop_t loop;
    uv_pipe_t pipe;
    int peer; /* the other end, read with plain read(2) */
    struct wbatch_set set;
    struct wbatch wb;
    int ends, last_status, flushed;
};

static void on_end(struct wbatch *wb, int status)
{
    struct fixture *f = (struct fixture *)((char *)wb - offsetof(struct fixture, wb));
    f->ends++;
    f->last_status = status;
}

static void on_flushed(struct wbatch *wb)
{
    struct fixture *f = (struct fixture *)((char *)wb - offsetof(struct fixture, wb));
    f->flushed++;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char rbuf[64];
    *b = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
}

static void setup(struct fixture *f, int sndbuf)
{
    int sv[2];
    signal(SIGPIPE, SIG_IGN);
    memset(f, 0, sizeof(*f));
    cr_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    if (sndbuf)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    f->peer = sv[1];
    cr_assert(uv_loop_init(&f->loop) == 0);
    cr_assert(uv_pipe_init(&f->loop, &f->pipe, 0) == 0);
    cr_assert(uv_pipe_open(&f->pipe, sv[0]) == 0);
    /* An active, referenced handle: uv_run(NOWAIT) runs its phases. */
    cr_assert(uv_read_start((uv_stream_t *)&f->pipe, on_alloc, on_read) == 0);
    wbatch_set_init(&f->set, &f->loop);
    wbatch_init(&f->wb, &f->set, (uv_stream_t *)&f->pipe);
    f->wb.on_write_end = on_end;
    f->wb.on_flushed = on_flushed;
}

static void teardown(struct fixture *f)
{
    wbatch_release(&f->wb);
    wbatch_set_close(&f->set, NULL);
    uv_close((uv_handle_t *)&f->pipe, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    cr_assert(uv_loop_close(&f->loop) == 0);
    if (f->peer >= 0)
        close(f->peer);
}

static int add(struct fixture *f, const char *a, const char *b)
{
    uv_buf_t parts[] = {uv_buf_init((char *)a, (unsigned)strlen(a)),
                        uv_buf_init((char *)b, (unsigned)strlen(b))};
    return wbatch_add(&f->wb, parts, 2);
}

/* Read exactly n bytes from the peer while the loop runs. */
static void read_peer(struct fixture *f, char *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ssize_t r = recv(f->peer, out + got, n - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        else
            usleep(1000);
    }
}

Test(wbatch, frames_leave_in_order_once_per_turn)
{
    struct fixture f;
    setup(&f, 0);
    cr_assert(add(&f, "one:", "1;") == 0);
    cr_assert(add(&f, "two:", "") == 0);
    cr_assert(f.wb.dirty && f.set.dirty == &f.wb);
    char buf[16] = {0};
    cr_assert_eq(recv(f.peer, buf, sizeof(buf), MSG_DONTWAIT), -1, "nothing before the turn");
    uv_run(&f.loop, UV_RUN_NOWAIT); /* the check phase writes the batch */
    cr_assert_eq(f.flushed, 1);
    cr_assert_not(f.wb.dirty);
    cr_assert_eq(recv(f.peer, buf, sizeof(buf), MSG_DONTWAIT), 10);
    cr_assert(memcmp(buf, "one:1;two:", 10) == 0);
    cr_assert_eq(f.ends, 0, "no queued write, no failure");
    teardown(&f);
}

Test(wbatch, what_the_socket_refuses_is_queued)
{
    struct fixture f;
    setup(&f, 4096);
    static char big[WBATCH_MAX], got[WBATCH_MAX];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    big[sizeof(big) - 1] = '\0';
    cr_assert(add(&f, big, "") == 0);
    cr_assert_eq(wbatch_flush(&f.wb), 0);
    cr_assert_eq(f.flushed, 1);
    cr_assert_eq(f.wb.buf.n, 0, "the rest belongs to libuv now");
    cr_assert_eq(f.ends, 0);
    read_peer(&f, got, sizeof(big) - 1);
    cr_assert(memcmp(got, big, sizeof(big) - 1) == 0);
    while (f.ends == 0)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    cr_assert_eq(f.last_status, 0, "the queued write ended well");
    teardown(&f);
}

Test(wbatch, a_failed_write_is_reported_and_dropped)
{
    struct fixture f;
    setup(&f, 0);
    close(f.peer);
    f.peer = -1;
    cr_assert(add(&f, "lost", "") == 0);
    cr_assert_neq(wbatch_flush(&f.wb), 0);
    cr_assert_eq(f.ends, 1);
    cr_assert_lt(f.last_status, 0);
    cr_assert_eq(f.wb.buf.n, 0);
    cr_assert_eq(f.flushed, 1);
    teardown(&f);
}

Test(wbatch, dropped_batch_leaves_the_set)
{
    struct fixture f;
    setup(&f, 0);
    cr_assert(add(&f, "x", "") == 0);
    wbatch_drop(&f.wb);
    cr_assert_null(f.set.dirty);
    cr_assert_eq(f.wb.buf.n, 0);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    char buf[4];
    cr_assert_eq(recv(f.peer, buf, sizeof(buf), MSG_DONTWAIT), -1, "nothing was written");
    cr_assert_eq(f.flushed, 0);
    teardown(&f);
}
