/*
 * conn-t.h — what the request layer sees of a connection (types only, STYLE §4).
 *
 * The transport (net/conn.c) owns sockets, buffers and timers; the request
 * layer (http/) owns requests and responses. They meet here, the way h2o's
 * h2o_conn_t meets its h2o_conn_callbacks_t: a transport embeds a struct
 * http_conn in its connection and fills in the ops; http/ calls only those.
 * So http/ includes nothing from net/, and a unit test can stand a fake
 * writer behind the same three calls.
 */
#ifndef HTTP_CONN_T_H
#define HTTP_CONN_T_H

#include <stdbool.h>
#include <uv.h>

struct http_conn;

/* A write of at most this many buffers (a chunk frame is three). */
#define HTTP_WRITE_BUFS_MAX 8

/* on_done(arg, status) runs once the transport is done with the buffers
 * (status < 0 on error), never inside the write call that queued them; it
 * owns freeing them. */
typedef void (*http_write_cb)(void *arg, int status);

struct http_conn_ops {
    /* Queue nbufs (≤ HTTP_WRITE_BUFS_MAX) buffers in order. Returns 0 (on_done
     * will run) or a negative libuv error (it will not; nothing was written). */
    int (*write)(struct http_conn *c, const uv_buf_t *bufs, unsigned nbufs, http_write_cb on_done,
                 void *arg);
    /* The response to the current request is wholly handed to write: the
     * request's memory goes back to the transport (the struct http_req must
     * not be used after this call), which goes on to the next request. */
    void (*finished)(struct http_conn *c);
    /* Close now; queued writes are dropped. */
    void (*close)(struct http_conn *c);
    /* The request that dispatch parked (http_dispatch_head() answered
     * HTTP_ADMIT_WAIT) was admitted: read its body, if any, and run it. */
    void (*resume)(struct http_conn *c);
};

/* Embedded in the transport's connection. */
struct http_conn {
    const struct http_conn_ops *ops;
    /* Set by the transport when the connection closes after the response in
     * service (drain, half-close, a parse error): the head then says
     * "Connection: close". */
    bool close_after_write;
    /* The client's address, for per-client limits of anonymous requests:
     * 4 (IPv4) or 16 (IPv6) bytes, peer_len 0 when unknown. */
    uint8_t peer[16];
    uint8_t peer_len;
};

#endif
