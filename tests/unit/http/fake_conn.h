/*
 * fake_conn.h — a transport for request-layer tests: a struct http_conn
 * whose ops record every byte written, how often the request was finished
 * and whether the connection was closed. Completions run only when the test
 * calls fake_conn_complete(), as a transport runs them on a later loop turn.
 */
#ifndef TESTS_UNIT_HTTP_FAKE_CONN_H
#define TESTS_UNIT_HTTP_FAKE_CONN_H

#include <criterion/criterion.h>
#include <string.h>

#include "core/buf.h"
#include "http/conn-t.h"

#define PENDING_MAX 16

struct fake_conn {
    struct http_conn hc; /* first: the ops get it back by a cast */
    struct buf out;      /* every byte written, in order */
    int writes, finished, closed, resumed;
    int fail_writes; /* > 0: the next writes fail with UV_EPIPE */
    struct {
        http_write_cb cb;
        void *arg;
    } pending[PENDING_MAX];
    int npending;
};

static int fake_write(struct http_conn *hc, const uv_buf_t *bufs, unsigned nbufs,
                      http_write_cb on_done, void *arg)
{
    struct fake_conn *f = (struct fake_conn *)hc;
    cr_assert_leq(nbufs, HTTP_WRITE_BUFS_MAX);
    if (f->fail_writes > 0) {
        f->fail_writes--;
        return UV_EPIPE;
    }
    for (unsigned i = 0; i < nbufs; i++) {
        cr_assert_eq(buf_reserve(&f->out, bufs[i].len), 0);
        memcpy(f->out.p + f->out.n, bufs[i].base, bufs[i].len);
        f->out.n += bufs[i].len;
    }
    f->writes++;
    cr_assert_lt(f->npending, PENDING_MAX);
    f->pending[f->npending].cb = on_done;
    f->pending[f->npending].arg = arg;
    f->npending++;
    return 0;
}

static void fake_finished(struct http_conn *hc)
{
    ((struct fake_conn *)hc)->finished++;
}

static void fake_close(struct http_conn *hc)
{
    ((struct fake_conn *)hc)->closed++;
}

static void fake_resume(struct http_conn *hc)
{
    ((struct fake_conn *)hc)->resumed++;
}

static const struct http_conn_ops FAKE_OPS = {fake_write, fake_finished, fake_close, fake_resume};

static inline void fake_conn_init(struct fake_conn *f)
{
    memset(f, 0, sizeof(*f));
    f->hc.ops = &FAKE_OPS;
}

/* Run the write completions, as the transport's next loop turn would. */
static inline void fake_conn_complete(struct fake_conn *f)
{
    for (int i = 0; i < f->npending; i++)
        if (f->pending[i].cb)
            f->pending[i].cb(f->pending[i].arg, 0);
    f->npending = 0;
}

#endif
