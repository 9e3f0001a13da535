/*
 * wbatch.c — small writes batched per stream and loop turn (see wbatch.h).
 */
#include "oapnet/wbatch.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A batch handed to libuv because the socket did not take it at once. */
struct bwrite {
    uv_write_t req;
    struct wbatch *wb;
    char *p;
};

static void on_written(uv_write_t *req, int status)
{
    struct bwrite *bw = (struct bwrite *)req;
    struct wbatch *wb = bw->wb;
    free(bw->p);
    free(bw);
    wb->on_write_end(wb, status);
}

static void flushed(struct wbatch *wb)
{
    if (wb->on_flushed)
        wb->on_flushed(wb);
}

int wbatch_flush(struct wbatch *wb)
{
    size_t n = wb->buf.n, done = 0;
    if (n == 0)
        return 0;
    uv_buf_t b = uv_buf_init(wb->buf.p, (unsigned)n);
    int e = uv_try_write(wb->stream, &b, 1);
    if (e >= 0 || e == UV_EAGAIN) {
        done = e > 0 ? (size_t)e : 0;
        e = 0;
    }
    if (e == 0 && done == n) {
        wb->buf.n = 0;
        if (wb->buf.cap > WBATCH_KEEP)
            buf_release(&wb->buf);
        flushed(wb);
        return 0;
    }
    struct bwrite *bw = e == 0 ? malloc(sizeof(*bw)) : NULL;
    if (e == 0 && bw == NULL)
        e = UV_ENOMEM;
    if (e == 0) {
        bw->wb = wb;
        bw->p = wb->buf.p;
        wb->buf = (struct buf){0};
        b = uv_buf_init(bw->p + done, (unsigned)(n - done));
        if ((e = uv_write(&bw->req, wb->stream, &b, 1, on_written)) == 0) {
            flushed(wb);
            return 0;
        }
        free(bw->p);
        free(bw);
    }
    /* Part of a frame may be on the wire: the owner must close. */
    wb->buf.n = 0;
    flushed(wb);
    wb->on_write_end(wb, e);
    return e;
}

static struct wbatch_set *set_of_check(uv_check_t *h)
{
    return (struct wbatch_set *)((char *)h - offsetof(struct wbatch_set, check));
}

static struct wbatch_set *set_of_idle(uv_idle_t *h)
{
    return (struct wbatch_set *)((char *)h - offsetof(struct wbatch_set, idle));
}

static void flush_set(struct wbatch_set *s)
{
    while (s->dirty) {
        struct wbatch *wb = s->dirty;
        s->dirty = wb->next_dirty;
        wb->dirty = false;
        wbatch_flush(wb);
    }
    uv_idle_stop(&s->idle);
}

static void on_check(uv_check_t *h)
{
    flush_set(set_of_check(h));
}

static void on_idle(uv_idle_t *h)
{
    flush_set(set_of_idle(h));
}

void wbatch_set_init(struct wbatch_set *s, uv_loop_t *loop)
{
    memset(s, 0, sizeof(*s));
    uv_check_init(loop, &s->check);
    uv_idle_init(loop, &s->idle);
    uv_check_start(&s->check, on_check);
    uv_unref((uv_handle_t *)&s->check);
    uv_unref((uv_handle_t *)&s->idle);
}

void wbatch_set_close(struct wbatch_set *s, uv_close_cb close_cb)
{
    s->closed = true;
    uv_close((uv_handle_t *)&s->check, close_cb);
    uv_close((uv_handle_t *)&s->idle, close_cb);
}

void wbatch_init(struct wbatch *wb, struct wbatch_set *s, uv_stream_t *stream)
{
    memset(wb, 0, sizeof(*wb));
    wb->set = s;
    wb->stream = stream;
}

int wbatch_add(struct wbatch *wb, const uv_buf_t *parts, unsigned n)
{
    size_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += parts[i].len;
    if (buf_reserve(&wb->buf, len) != 0)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        if (parts[i].len)
            memcpy(wb->buf.p + wb->buf.n, parts[i].base, parts[i].len);
        wb->buf.n += parts[i].len;
    }
    struct wbatch_set *s = wb->set;
    if (!wb->dirty && !s->closed) {
        wb->dirty = true;
        wb->next_dirty = s->dirty;
        s->dirty = wb;
        uv_idle_start(&s->idle, on_idle);
    }
    return 0;
}

void wbatch_drop(struct wbatch *wb)
{
    if (wb->dirty) {
        struct wbatch **pp = &wb->set->dirty;
        while (*pp != wb)
            pp = &(*pp)->next_dirty;
        *pp = wb->next_dirty;
        wb->dirty = false;
    }
    wb->buf.n = 0;
}

void wbatch_release(struct wbatch *wb)
{
    wbatch_drop(wb);
    buf_release(&wb->buf);
}
