/*
 * oapnet.h — one OAP/1 connection endpoint on libuv, for both ends
 * (docs/OAP.md, DESIGN §5).
 *
 * omnigate's downstream pools (src/ds/remote.c), the reference services
 * (services/oapsrv.c) and the tools' blocking client (src/tools/oapc.c) all
 * run their connections through this one engine, the way HAProxy runs both
 * directions of HTTP/1 through one mux: a role flag says which side we are,
 * the user keeps only what is its own (pools and calls; request execution).
 *
 * The endpoint owns:
 *   - the handle (TCP or Unix socket), connect / accept / adopt, and close;
 *   - the read buffer and the decode loop (liboap's decoder, fed in place);
 *   - frame writes: header validated by oap_encode_hdr(), small frames copied
 *     into the connection's write batch (oapnet/wbatch.h, written once per
 *     loop turn), larger ones written on their own with the body borrowed;
 *   - HELLO: the client sends it on connect and waits for the answer, the
 *     server answers it whenever it comes; both negotiate the same way;
 *   - the stream table: one struct oapnet_stream per corr_id in flight, found
 *     in O(1), with the producer credit of the message we send and the
 *     consumer credit of the message we receive (one frame or a stream,
 *     gathered whole or handed over chunk by chunk);
 *   - close semantics: every stream still open when the connection closes
 *     is handed to on_abort exactly once, then on_closed runs.
 *
 * Roles. A CLIENT sends requests (REQ) and receives responses (RESP); a
 * SERVER the reverse. The differences are those of the protocol's two
 * sides, and each is named where it is decided in oapnet.c: who sends HELLO,
 * when a message is worth a stream (a request that does not fit one frame;
 * a response larger than one stream chunk), whether a protocol error is
 * answered with an error frame before closing (server) or just closes
 * (client), and whether frames batched when the connection closes still go
 * out (server: answers already made; client: no, their calls fail).
 *
 * Callbacks never run inside the API call that caused them (STYLE §14):
 * they come from the read, write and close callbacks of libuv (the one
 * exception: oapnet_fail() notifies on_error before it returns). A user may
 * close the connection from any callback; the endpoint then stops at once.
 *
 * Not thread-safe: one loop.
 */
#ifndef OAPNET_OAPNET_H
#define OAPNET_OAPNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "oap/hello.h"
#include "oap/oap.h"
#include "oap/stream.h"
#include "oapnet/addr.h"
#include "oapnet/wbatch.h"

#define OAPNET_READ_BYTES  65536       /* one read buffer per connection */
#define OAPNET_WINDOW_DEF  16          /* consumer window (frames) when a stream sets none */
#define OAPNET_IN_MAX_DEF  (64u << 20) /* largest message gathered whole */
#define OAPNET_BUCKETS_MIN 16          /* stream table buckets kept inside the endpoint */

enum oapnet_role { OAPNET_CLIENT, OAPNET_SERVER };

/*
 * IDLE: no handle (before connect/accept, and again after on_closed).
 * CONNECTING, HELLO: client only, until the peer's HELLO answer.
 * READY: frames flow. CLOSING: the handle is being closed, or a server is
 * writing its error frame before closing; nothing more is read or sent.
 */
enum oapnet_state { OAPNET_IDLE, OAPNET_CONNECTING, OAPNET_HELLO, OAPNET_READY, OAPNET_CLOSING };

struct oapnet;

/*
 * One message exchange: one corr_id, the message we send and the one we
 * receive. Embedded by the user (an omnigate call slot, a service request)
 * and found again with container_of. Fields marked "user" may be set
 * between oapnet_stream_open() and the first frame of the received message;
 * the rest belongs to the endpoint and is read-only outside it.
 */
struct oapnet_stream {
    struct oapnet_stream *next; /* table chain */
    uint64_t corr;
    uint16_t app;
    uint8_t tenant[OAP_TENANT_BYTES];
    bool open; /* in the table */
    /* Receiving. */
    bool chunked;    /* user: hand a streamed message over chunk by chunk */
    uint32_t window; /* user: consumer window in frames; 0 = OAPNET_WINDOW_DEF */
    bool in_stream;  /* a streamed message is arriving */
    bool abandoned;  /* nobody wants the message any more: it is drained */
    bool in_over;    /* gathered bytes passed in_max: drained, refused at END */
    uint16_t in_code;
    struct oap_consumer cons;
    struct buf acc;  /* a streamed message gathered whole: its DATA payload */
    size_t acc_base; /* bytes of acc not counted against in_max (DATA header) */
    /* Sending. */
    bool out_stream; /* the message goes out as a stream under the peer's credit */
    bool out_done;   /* its last frame is queued */
    uint16_t out_code;
    const char *out_hdr; /* borrowed until out_done */
    size_t out_hdr_len;
    const uint8_t *out_body; /* borrowed until out_done and writes == 0 */
    size_t out_len, out_sent;
    struct oap_producer prod;
    unsigned writes; /* queued uv_writes that borrow out_body */
};

/* An arrived message, its DATA payload split. The views are valid during
 * the callback. mem, when not NULL, is the malloc'd block holding them (a
 * gathered stream, or an inflated COMP payload): the callee may take it
 * (and set mem to NULL), else it is freed after the callback. */
struct oapnet_msg {
    uint16_t code;
    const char *hdr;
    size_t hdr_len;
    const uint8_t *body;
    size_t body_len;
    void *mem;
};

/*
 * The user's side. Unless marked optional, every callback of the role must
 * be set. st stays valid during on_head and on_chunk; on_message, on_end,
 * on_sent, on_written and on_abort may free it (the endpoint does not touch
 * it afterwards).
 */
struct oapnet_ops {
    /* CLIENT: the peer answered HELLO; ep->max_frame and ep->max_inflight
     * hold the negotiated limits. */
    void (*on_ready)(struct oapnet *ep);
    /* SERVER, optional: a HELLO was answered (for counting). */
    void (*on_hello)(struct oapnet *ep);
    /*
     * SERVER: a request frame that opens a message (no stream of its
     * corr_id is receiving one). Return the stream, opened with
     * oapnet_stream_open(), that receives it; or NULL when the request was
     * answered or refused here (oapnet_answer, oapnet_close).
     */
    struct oapnet_stream *(*on_request)(struct oapnet *ep, const struct oap_frame *f);
    /*
     * st's message arrived whole (status 0, *m filled), or failed: status
     * OAP_E_BAD_DATA_HDR (its DATA payload does not split) or
     * OAP_E_TOO_LARGE (a stream over ep->in_max, drained to its END). An
     * abandoned stream ends here too, status 0 and *m empty. st stays in
     * the table; the user closes it.
     */
    void (*on_message)(struct oapnet *ep, struct oapnet_stream *st, int status,
                       struct oapnet_msg *m);
    /* Chunked streams (st->chunked, CLIENT): the START frame's status and
     * header JSON, once; then each frame's body bytes (n > 0): return true
     * to hold the frame (release it with oapnet_consumed, which lets the
     * producer go on), false when done with it; then on_end after END. */
    void (*on_head)(struct oapnet *ep, struct oapnet_stream *st, uint16_t code, const char *hdr,
                    size_t hdr_len);
    bool (*on_chunk)(struct oapnet *ep, struct oapnet_stream *st, const uint8_t *p, size_t n);
    void (*on_end)(struct oapnet *ep, struct oapnet_stream *st);
    /* A grant let st's outgoing stream queue its last frame (SERVER: the
     * answer is sent). Not called when oapnet_send() reported it. */
    void (*on_sent)(struct oapnet *ep, struct oapnet_stream *st);
    /* Optional: a write borrowing st's body ended (st->writes is one less). */
    void (*on_written)(struct oapnet *ep, struct oapnet_stream *st, int status);
    /* The connection closed with st open: st is out of the table. Once per
     * stream, from the close callback, before on_closed. */
    void (*on_abort)(struct oapnet *ep, struct oapnet_stream *st);
    /* Optional: a protocol error at stream offset off, before the close. */
    void (*on_error)(struct oapnet *ep, int err, uint64_t off);
    /* The handle is closed and every open stream aborted; ep->why says why.
     * The endpoint may be connected again, or its memory freed. */
    void (*on_closed)(struct oapnet *ep);
};

struct oapnet {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    uv_connect_t creq;
    enum oapnet_role role;
    enum oapnet_state state;
    const struct oapnet_ops *ops;
    void *data;            /* the user's */
    const char *why;       /* why it closed (a static string), NULL while open */
    struct oap_hello ours; /* what we announce; ours.max_frame bounds what we decode */
    uint32_t max_frame;    /* frames we send stay within it (negotiated) */
    uint32_t max_inflight; /* negotiated (CLIENT: after on_ready) */
    uint32_t chunk;        /* payload bytes per frame of our streams */
    size_t in_max;         /* largest message gathered whole (OAPNET_IN_MAX_DEF) */
    size_t write_high;     /* pause reading above this many queued bytes; 0 = never */
    size_t write_low;      /* resume below it */
    uint64_t *bytes_in;    /* optional counters: bytes read, */
    uint64_t *bytes_out;   /* and bytes of frames queued */
    /* Inflates a COMP payload (oap_inflate_once), for a user that announces
     * COMP; NULL, or COMP not announced: a COMP frame is a protocol error.
     * A pointer, so that a client, which never inflates, does not link
     * zstd. */
    int (*inflate)(const void *src, size_t n, void *dst, size_t dst_cap, uint32_t max_frame,
                   size_t *out_len);
    bool paused;
    struct wbatch_set *set;
    struct wbatch batch;
    struct oap_decoder dec;
    uint8_t *rbuf;
    /* The stream table: chained buckets, a power of two, doubled when the
     * streams outnumber them (inl until then, so opening never fails). */
    struct oapnet_stream **buckets;
    uint32_t nbuckets, nstreams;
    struct oapnet_stream *inl[OAPNET_BUCKETS_MIN];
};

/*
 * Set up ep (no handle yet): role, callbacks, the loop's write batch set,
 * and our HELLO announcement (NULL = oap_hello_defaults()). The limits
 * (in_max, write_high/low), the counters, inflate and data may be set
 * afterwards.
 */
void oapnet_init(struct oapnet *ep, enum oapnet_role role, const struct oapnet_ops *ops,
                 struct wbatch_set *set, const struct oap_hello *ours);

/*
 * Open a connection: oapnet_connect() to an address (CLIENT), or
 * oapnet_accept() on a listener whose connection callback fired (SERVER),
 * or oapnet_open() on a connected socket of the given kind (either role;
 * for tests and socketpairs). ep must be IDLE. A CLIENT sends HELLO once
 * connected. Returns 0 when a handle is open (a later failure, such as a
 * refused connect, ends in on_closed) or a negative libuv error when none
 * is (nothing to close).
 */
int oapnet_connect(struct oapnet *ep, uv_loop_t *loop, const struct oapnet_addr *a);
int oapnet_accept(struct oapnet *ep, uv_stream_t *server);
int oapnet_open(struct oapnet *ep, uv_loop_t *loop, uv_os_sock_t fd, bool is_unix);

/* Close (why: a static string, kept for on_closed). Safe in any state; the
 * first reason is kept. */
void oapnet_close(struct oapnet *ep, const char *why);

/*
 * A protocol error at stream offset off (h: the offending frame's header,
 * NULL when unreadable): on_error, then a SERVER answers one error frame
 * (RESP|END, code 400, DATA header {"error":"<oap status name>",
 * "offset":off}, h's app, tenant and corr_id) and closes once it is written;
 * a CLIENT closes.
 */
void oapnet_fail(struct oapnet *ep, int err, uint64_t off, const struct oap_hdr *h);

/* Stream offset of the bytes decoded so far. */
static inline uint64_t oapnet_offset(const struct oapnet *ep)
{
    return ep->dec.off;
}

/* ---------------------------------------------------------------- streams */

/* Reset st and put it in the table under corr (not already in use). */
void oapnet_stream_open(struct oapnet *ep, struct oapnet_stream *st, uint64_t corr, uint16_t app,
                        const uint8_t tenant[OAP_TENANT_BYTES]);

/* The stream of corr, or NULL. */
struct oapnet_stream *oapnet_stream_find(const struct oapnet *ep, uint64_t corr);

/* Take st out of the table and free what it gathered. Later frames of its
 * corr_id are unknown; a late credit grant is ignored. Idempotent. */
void oapnet_stream_close(struct oapnet *ep, struct oapnet_stream *st);

/*
 * The user no longer wants st's message: what was gathered is dropped, the
 * frames a chunked stream held are released, the producer gets the credit
 * that frees, and the rest is drained; on_message (status 0, empty) still
 * marks its end. A grant that cannot be sent closes the connection.
 */
void oapnet_stream_abandon(struct oapnet *ep, struct oapnet_stream *st);

/* Whether freeing the body st sends could leave libuv reading freed bytes:
 * its outgoing stream is unfinished, or one of its writes is still in
 * libuv's queue (a completed write whose callback has not run borrows
 * nothing). */
bool oapnet_stream_borrowing(const struct oapnet *ep, const struct oapnet_stream *st);

/*
 * Send st's message: DATA header JSON hdr (2..OAP_DATA_HDR_MAX_BYTES bytes)
 * and body, with status code (SERVER; 0 for a CLIENT). One frame, or a
 * stream paced by the peer's credit when it is larger than one frame
 * (CLIENT) or than one stream chunk (SERVER). hdr is borrowed until the
 * last frame is queued, body until then and until st->writes is 0.
 * Returns 1 when every frame is queued, 0 when a stream waits for credit
 * (on_sent follows), or an error: OAP_E_BAD_DATA_HDR, OAP_E_STATE (not
 * READY), OAP_E_NOMEM, a libuv error. After an error nothing of the message
 * is queued, or the connection is closing (part may be on the wire).
 */
int oapnet_send(struct oapnet *ep, struct oapnet_stream *st, uint16_t code, const char *hdr,
                size_t hdr_len, const void *body, size_t body_len);

/*
 * A one-frame answer to the request whose header is rq, outside any stream
 * (SERVER: a refusal such as 429): RESP|flags, code, rq's app, tenant and
 * corr_id, DATA header json and no body. Returns 0 or an error as
 * oapnet_send().
 */
int oapnet_answer(struct oapnet *ep, const struct oap_hdr *rq, uint16_t flags, uint16_t code,
                  const char *json, size_t json_len);

/* The consumer of a chunked stream is done with n frames it held: grant
 * what the window allows. A grant that cannot be sent closes the
 * connection. */
void oapnet_consumed(struct oapnet *ep, struct oapnet_stream *st, uint32_t n);

#endif
