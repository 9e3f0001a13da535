/*
 * oapnet.c — the OAP/1 connection endpoint, both roles (see oapnet.h).
 *
 * Reading. One 64 KiB buffer per connection; liboap's decoder returns each
 * frame that lies wholly inside it as views (no copy), and gathers only a
 * frame that straddles two reads. Frames are dispatched in order: credit
 * grants to the stream that produces, frames of a message in progress to
 * its stream, and a frame that opens a message to the user (a server's
 * new request) or to the stream that waits for it (a client's answer).
 *
 * Writing. Every frame's header goes through oap_encode_hdr(), which
 * checks it as a decoder would and against the peer's max_frame. A frame
 * whose body is at most WBATCH_COPY_MAX is copied into the connection's
 * batch (oapnet/wbatch.h): the frames of every request or answer made in
 * one loop turn leave in one write syscall. A larger frame flushes the
 * batch first (frames leave in order) and is written on its own: header and
 * DATA header copied into its write request, the body borrowed (counted in
 * the stream's `writes` until libuv is done with it).
 *
 * Streams. A message larger than one frame (client) or one chunk (server)
 * goes out as START … END under the peer's credit (oap_producer); a
 * streamed message coming in is either gathered into one buffer (core/buf.h
 * doubling, at most in_max bytes) or handed over frame by frame (chunked),
 * and credit is granted back as the user consumes frames (oap_consumer),
 * so a slow consumer stops the producer and nothing grows without bound.
 */
#include "oapnet/oapnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oap/data.h"

static const uint8_t zero_tenant[OAP_TENANT_BYTES];

/* A frame written on its own: header and payload prefix copied, body
 * borrowed from st (when it has one). */
struct owrite {
    uv_write_t req;
    struct oapnet *ep;
    struct oapnet_stream *st;
    uint64_t corr; /* st's corr_id when queued: a stream reused since is not ours */
    bool close_after;
    uint8_t bytes[]; /* OAP_HDR_BYTES + prefix */
};

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

/* uv_buf_init() without a call into libuv: frames are built on the hot path. */
static inline uv_buf_t iov(const void *p, size_t n)
{
    return (uv_buf_t){.base = (char *)p, .len = n};
}

static struct oapnet *ep_of_batch(struct wbatch *wb)
{
    return (struct oapnet *)((char *)wb - offsetof(struct oapnet, batch));
}

/* The flag of the messages we send, and of those we receive. */
static uint16_t dir_out(const struct oapnet *ep)
{
    return ep->role == OAPNET_CLIENT ? OAP_FLAG_REQ : OAP_FLAG_RESP;
}

/* ------------------------------------------------------------------ table */

static uint32_t bucket_of(uint64_t corr, uint32_t nbuckets)
{
    return (uint32_t)((corr * 0x9E3779B97F4A7C15ull) >> 32) & (nbuckets - 1);
}

/* Double the buckets. Without memory the chains just grow longer. */
static void table_grow(struct oapnet *ep)
{
    uint32_t n = ep->nbuckets * 2;
    struct oapnet_stream **b = calloc(n, sizeof(*b)), *st, *next;

    if (b == NULL)
        return;
    for (uint32_t i = 0; i < ep->nbuckets; i++) {
        for (st = ep->buckets[i]; st; st = next) {
            uint32_t k = bucket_of(st->corr, n);
            next = st->next;
            st->next = b[k];
            b[k] = st;
        }
    }
    if (ep->buckets != ep->inl)
        free(ep->buckets);
    ep->buckets = b;
    ep->nbuckets = n;
}

static void table_reset(struct oapnet *ep)
{
    if (ep->buckets != ep->inl)
        free(ep->buckets);
    memset(ep->inl, 0, sizeof(ep->inl));
    ep->buckets = ep->inl;
    ep->nbuckets = OAPNET_BUCKETS_MIN;
    ep->nstreams = 0;
}

void oapnet_stream_open(struct oapnet *ep, struct oapnet_stream *st, uint64_t corr, uint16_t app,
                        const uint8_t tenant[OAP_TENANT_BYTES])
{
    uint32_t k;

    memset(st, 0, sizeof(*st));
    st->corr = corr;
    st->app = app;
    memcpy(st->tenant, tenant ? tenant : zero_tenant, OAP_TENANT_BYTES);
    if (ep->nstreams >= ep->nbuckets)
        table_grow(ep);
    k = bucket_of(corr, ep->nbuckets);
    st->next = ep->buckets[k];
    ep->buckets[k] = st;
    st->open = true;
    ep->nstreams++;
}

struct oapnet_stream *oapnet_stream_find(const struct oapnet *ep, uint64_t corr)
{
    for (struct oapnet_stream *st = ep->buckets[bucket_of(corr, ep->nbuckets)]; st; st = st->next)
        if (st->corr == corr)
            return st;
    return NULL;
}

void oapnet_stream_close(struct oapnet *ep, struct oapnet_stream *st)
{
    if (st->open) {
        struct oapnet_stream **pp = &ep->buckets[bucket_of(st->corr, ep->nbuckets)];
        while (*pp != st)
            pp = &(*pp)->next;
        *pp = st->next;
        st->next = NULL;
        st->open = false;
        ep->nstreams--;
    }
    if (st->acc.p) /* only streams gathered whole have one */
        buf_release(&st->acc);
}

bool oapnet_stream_borrowing(const struct oapnet *ep, const struct oapnet_stream *st)
{
    return (st->out_stream && !st->out_done) || (st->writes > 0 && ep->u.s.write_queue_size > 0);
}

/* ----------------------------------------------------------------- writes */

static void maybe_resume(struct oapnet *ep)
{
    if (ep->paused && ep->state == OAPNET_READY && ep->u.s.write_queue_size < ep->write_low) {
        ep->paused = false;
        if (uv_read_start(&ep->u.s, on_alloc, on_read) != 0)
            oapnet_close(ep, "cannot read");
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct owrite *w = (struct owrite *)req;
    struct oapnet *ep = w->ep;
    struct oapnet_stream *st = w->st;
    bool close_after = w->close_after;
    bool ours = st && st->corr == w->corr && st->writes > 0;

    free(w);
    if (ours) {
        st->writes--;
        if (ep->ops->on_written)
            ep->ops->on_written(ep, st, status); /* may free st */
    }
    if (status < 0)
        oapnet_close(ep, uv_strerror(status));
    else if (close_after)
        oapnet_close(ep, ep->why);
    else
        maybe_resume(ep);
}

/* A batch could not be written whole (part of a frame may be on the wire:
 * the connection cannot go on), or a queued batch write ended. */
static void on_batch_end(struct wbatch *wb, int status)
{
    struct oapnet *ep = ep_of_batch(wb);

    if (status < 0)
        oapnet_close(ep, uv_strerror(status));
    else
        maybe_resume(ep);
}

/*
 * Queue one frame: header fields in h (len and ver are set here), payload =
 * the npre (at most 2) prefix parts (copied) then body (copied into the batch when
 * small, else borrowed from st, which may be NULL when body_len is 0).
 * close_after: written on its own, and the connection closes once it is.
 * Returns 0, or a negative OAP or libuv error (the frame is not queued).
 */
static int write_frame(struct oapnet *ep, struct oapnet_stream *st, struct oap_hdr *h,
                       const uv_buf_t *pre, unsigned npre, const void *body, size_t body_len,
                       bool close_after)
{
    uint8_t hb[OAP_HDR_BYTES];
    size_t pre_len = 0;
    struct owrite *w;
    uv_buf_t b[2];
    int e;

    for (unsigned i = 0; i < npre; i++)
        pre_len += pre[i].len;
    if ((e = oap_encode_hdr(h, pre_len + body_len, ep->max_frame, hb)) != 0)
        return e;
    bool small = !close_after && wbatch_small(body_len);
    /* Frames leave in order: what is batched goes first. */
    if ((!small || !wbatch_room(&ep->batch, h->len)) && (e = wbatch_flush(&ep->batch)) != 0)
        return e;
    if (small) {
        uv_buf_t parts[4];
        unsigned n = 0;
        parts[n++] = iov(hb, OAP_HDR_BYTES);
        for (unsigned i = 0; i < npre; i++)
            parts[n++] = pre[i];
        parts[n++] = iov(body, body_len);
        if (wbatch_add(&ep->batch, parts, n) != 0)
            return OAP_E_NOMEM;
    } else {
        if ((w = malloc(sizeof(*w) + OAP_HDR_BYTES + pre_len)) == NULL)
            return OAP_E_NOMEM;
        memcpy(w->bytes, hb, OAP_HDR_BYTES);
        pre_len = OAP_HDR_BYTES;
        for (unsigned i = 0; i < npre; i++) {
            if (pre[i].len)
                memcpy(w->bytes + pre_len, pre[i].base, pre[i].len);
            pre_len += pre[i].len;
        }
        w->ep = ep;
        w->st = body_len ? st : NULL;
        w->corr = st ? st->corr : 0;
        w->close_after = close_after;
        b[0] = iov(w->bytes, pre_len);
        b[1] = iov(body, body_len);
        if ((e = uv_write(&w->req, &ep->u.s, b, body_len ? 2 : 1, on_write)) != 0) {
            free(w);
            return e;
        }
        if (w->st)
            w->st->writes++;
    }
    if (ep->bytes_out)
        *ep->bytes_out += h->len;
    return 0;
}

/* A frame of st's outgoing message. */
static struct oap_hdr out_hdr(const struct oapnet *ep, const struct oapnet_stream *st,
                              uint16_t flags)
{
    struct oap_hdr h = {.flags = (uint16_t)(dir_out(ep) | flags),
                        .code = st->out_code,
                        .app_proto_id = st->app,
                        .corr_id = st->corr};
    memcpy(h.tenant, st->tenant, OAP_TENANT_BYTES);
    return h;
}

/* Send the frames of st's outgoing stream that the credit allows. Returns 1
 * when its last frame is queued, 0 when it waits for a grant, or an error
 * (the frame counted by the producer was not queued). */
static int pump(struct oapnet *ep, struct oapnet_stream *st)
{
    uint8_t dh[2];

    oap_put16(dh, (uint16_t)st->out_hdr_len);
    while (!st->prod.ended) {
        uint16_t fl;
        uint32_t n;
        bool start = !st->prod.started;
        int e = oap_producer_next(&st->prod, st->out_len - st->out_sent,
                                  start ? (uint32_t)(2 + st->out_hdr_len) : 0, &fl, &n);
        if (e == OAP_E_AGAIN)
            return 0;
        if (e != 0)
            return e;
        struct oap_hdr h = out_hdr(ep, st, fl);
        uv_buf_t pre[2] = {iov(dh, 2), iov(st->out_hdr, st->out_hdr_len)};
        e = write_frame(ep, st, &h, pre, start ? 2 : 0, st->out_body + st->out_sent, n, false);
        if (e != 0)
            return e;
        st->out_sent += n;
    }
    st->out_done = true;
    return 1;
}

int oapnet_send(struct oapnet *ep, struct oapnet_stream *st, uint16_t code, const char *hdr,
                size_t hdr_len, const void *body, size_t body_len)
{
    size_t payload = 2 + hdr_len + body_len;
    int e;

    if (ep->state != OAPNET_READY)
        return OAP_E_STATE;
    if (hdr_len < 2 || hdr_len > OAP_DATA_HDR_MAX_BYTES)
        return OAP_E_BAD_DATA_HDR;
    st->out_code = code;
    st->out_hdr = hdr;
    st->out_hdr_len = hdr_len;
    st->out_body = body;
    st->out_len = body_len;
    st->out_sent = 0;
    st->out_done = false;
    /* A request is streamed only when it does not fit one frame; an answer
     * larger than one chunk always is, so the client's credit paces every
     * large answer (docs/OAP.md "Requests and responses"). */
    st->out_stream =
        ep->role == OAPNET_SERVER ? payload > ep->chunk : OAP_HDR_BYTES + payload > ep->max_frame;
    if (!st->out_stream) {
        uint8_t dh[2];
        struct oap_hdr h = out_hdr(ep, st, 0);
        oap_put16(dh, (uint16_t)hdr_len);
        uv_buf_t pre[2] = {iov(dh, 2), iov(hdr, hdr_len)};
        if ((e = write_frame(ep, st, &h, pre, 2, body, body_len, false)) != 0)
            return e;
        st->out_sent = body_len;
        st->out_done = true;
        return 1;
    }
    oap_producer_init(&st->prod, ep->chunk, OAP_STREAM_INITIAL_CREDIT);
    e = pump(ep, st);
    /* Frames before the failed one are queued: the message cannot be taken
     * back, so the connection goes. */
    if (e < 0 && st->prod.frames > 1)
        oapnet_close(ep, "write failed");
    return e;
}

/* A one-frame DATA answer with no body to the request whose header is rq. */
static int answer_frame(struct oapnet *ep, const struct oap_hdr *rq, uint16_t flags, uint16_t code,
                        const char *json, size_t json_len, bool close_after)
{
    struct oap_hdr h = {.flags = (uint16_t)(OAP_FLAG_RESP | flags),
                        .code = code,
                        .app_proto_id = rq->app_proto_id,
                        .corr_id = rq->corr_id};
    uint8_t dh[2];

    if (json_len < 2 || json_len > OAP_DATA_HDR_MAX_BYTES)
        return OAP_E_BAD_DATA_HDR;
    memcpy(h.tenant, rq->tenant, OAP_TENANT_BYTES);
    oap_put16(dh, (uint16_t)json_len);
    uv_buf_t pre[2] = {iov(dh, 2), iov(json, json_len)};
    return write_frame(ep, NULL, &h, pre, 2, NULL, 0, close_after);
}

int oapnet_answer(struct oapnet *ep, const struct oap_hdr *rq, uint16_t flags, uint16_t code,
                  const char *json, size_t json_len)
{
    if (ep->state != OAPNET_READY)
        return OAP_E_STATE;
    return answer_frame(ep, rq, flags, code, json, json_len, false);
}

/* Grant st's producer what the consumer window allows now (batched by
 * oap_consumer). Returns 0 or an error. */
static int grant(struct oapnet *ep, struct oapnet_stream *st)
{
    struct oap_frame g;
    uint8_t gb[OAP_CREDIT_PAYLOAD_BYTES];
    uint32_t n;

    if (ep->state != OAPNET_READY || !st->in_stream || (n = oap_consumer_grant(&st->cons)) == 0)
        return 0;
    oap_credit_frame(&g, gb, st->app, st->tenant, st->corr, n);
    uv_buf_t part = iov(gb, OAP_CREDIT_PAYLOAD_BYTES);
    return write_frame(ep, NULL, &g.h, &part, 1, NULL, 0, false);
}

void oapnet_consumed(struct oapnet *ep, struct oapnet_stream *st, uint32_t n)
{
    oap_consumer_on_consumed(&st->cons, n);
    if (grant(ep, st) != 0)
        oapnet_close(ep, "cannot grant credit");
}

void oapnet_stream_abandon(struct oapnet *ep, struct oapnet_stream *st)
{
    st->abandoned = true;
    buf_release(&st->acc);
    if (st->in_stream && st->chunked)
        oap_consumer_on_consumed(&st->cons, st->cons.buffered);
    /* The user is about to free what st sends. */
    if (oapnet_stream_borrowing(ep, st))
        oapnet_close(ep, "abandoned request still being written");
    else if (grant(ep, st) != 0)
        oapnet_close(ep, "cannot grant credit");
}

/* ------------------------------------------------------------------ HELLO */

static int hello_send(struct oapnet *ep, uint16_t flags, uint16_t code, uint64_t corr,
                      const uint8_t tenant[OAP_TENANT_BYTES])
{
    char json[OAP_HELLO_MAX_BYTES];
    ssize_t n = oap_hello_encode(&ep->ours, json, sizeof(json));
    struct oap_hdr h = {
        .flags = flags, .code = code, .app_proto_id = OAP_APP_HELLO, .corr_id = corr};

    if (n < 0)
        return (int)n;
    memcpy(h.tenant, tenant, OAP_TENANT_BYTES);
    uv_buf_t part = iov(json, (size_t)n);
    return write_frame(ep, NULL, &h, &part, 1, NULL, 0, false);
}

/* The peer's announcement against ours. Returns 0, OAP_E_BAD_HELLO or
 * OAP_E_BAD_VERSION. */
static int hello_negotiate(const struct oapnet *ep, const struct oap_frame *f,
                           struct oap_hello *both)
{
    struct oap_hello peer;

    if (oap_hello_parse(&peer, f->payload, f->payload_len) != 0)
        return OAP_E_BAD_HELLO;
    return oap_hello_negotiate(&ep->ours, &peer, both) != 0 ? OAP_E_BAD_VERSION : 0;
}

/* We encode within the peer's limits and keep decoding with ours. */
static void hello_apply(struct oapnet *ep, const struct oap_hello *both)
{
    ep->max_frame = both->max_frame;
    ep->max_inflight = both->max_inflight;
    ep->chunk = oap_stream_chunk(0, both->max_frame);
}

/* CLIENT, in HELLO: the first frame must be the answer to ours. */
static void on_hello_answer(struct oapnet *ep, const struct oap_frame *f, uint64_t at)
{
    struct oap_hello both;
    int e = OAP_E_BAD_HELLO;

    if (f->h.app_proto_id != OAP_APP_HELLO || !(f->h.flags & OAP_FLAG_RESP) || f->h.corr_id != 0 ||
        f->h.code != 200 || (e = hello_negotiate(ep, f, &both)) != 0) {
        oapnet_fail(ep, e, at + OAP_HDR_BYTES, &f->h);
        return;
    }
    hello_apply(ep, &both);
    ep->state = OAPNET_READY;
    ep->ops->on_ready(ep);
}

/* SERVER: a HELLO may come at any time (it is optional); answer it with
 * ours, written within the limit in force before it. */
static void on_hello_request(struct oapnet *ep, const struct oap_frame *f, uint64_t at)
{
    struct oap_hello both;
    int e = hello_negotiate(ep, f, &both);

    if (e != 0) {
        oapnet_fail(ep, e, at + OAP_HDR_BYTES, &f->h);
        return;
    }
    if (ep->ops->on_hello)
        ep->ops->on_hello(ep);
    if (hello_send(ep, OAP_FLAG_RESP, 200, f->h.corr_id, f->h.tenant) != 0) {
        oapnet_close(ep, "cannot answer HELLO");
        return;
    }
    hello_apply(ep, &both);
}

/* --------------------------------------------------------- frames coming in */

void oapnet_fail(struct oapnet *ep, int err, uint64_t off, const struct oap_hdr *h)
{
    static const struct oap_hdr none;
    char json[128];
    int n;

    if (ep->state == OAPNET_IDLE || ep->state == OAPNET_CLOSING)
        return;
    if (ep->ops->on_error)
        ep->ops->on_error(ep, err, off);
    if (ep->role == OAPNET_CLIENT) {
        oapnet_close(ep, oap_strerror(err));
        return;
    }
    n = snprintf(json, sizeof(json), "{\"error\":\"%s\",\"offset\":%llu}", oap_status_name(err),
                 (unsigned long long)off);
    uv_read_stop(&ep->u.s);
    if (answer_frame(ep, h ? h : &none, OAP_FLAG_END, 400, json, (size_t)n, true) != 0) {
        oapnet_close(ep, oap_strerror(err));
        return;
    }
    /* Closed by on_write once the error frame is out. */
    ep->state = OAPNET_CLOSING;
    if (ep->why == NULL)
        ep->why = oap_strerror(err);
}

/* A message's DATA payload p[0..n) split into m. Returns 0 or
 * OAP_E_BAD_DATA_HDR. */
static int msg_split(struct oapnet_msg *m, const uint8_t *p, size_t n)
{
    struct oap_data d;

    if (oap_data_split(&d, p, n) != 0)
        return OAP_E_BAD_DATA_HDR;
    m->hdr = d.hdr;
    m->hdr_len = d.hdr_len;
    m->body = d.body;
    m->body_len = d.body_len;
    return 0;
}

/* The end of st's message: to the user, gathered or refused. */
static void deliver(struct oapnet *ep, struct oapnet_stream *st, int status, struct oapnet_msg *m)
{
    ep->ops->on_message(ep, st, status, m); /* may free st */
    if (m->mem)
        free(m->mem);
}

static void in_end(struct oapnet *ep, struct oapnet_stream *st)
{
    struct oapnet_msg m = {.code = st->in_code};
    int status = 0;

    if (st->chunked && !st->abandoned) {
        ep->ops->on_end(ep, st);
        return;
    }
    if (st->in_over) {
        status = OAP_E_TOO_LARGE;
    } else if (!st->abandoned &&
               (status = msg_split(&m, (const uint8_t *)st->acc.p, st->acc.n)) == 0) {
        m.mem = st->acc.p; /* handed over */
        st->acc = (struct buf){0};
    }
    buf_release(&st->acc);
    deliver(ep, st, status, &m);
}

/* Gather n more payload bytes of st's message. Past in_max the message is
 * refused: dropped here, drained, and reported at its END. The first block
 * is sized for this frame and the frames the initial credit allows (no
 * rounding up: most streamed answers end there); it doubles after that. */
static int acc_add(struct oapnet *ep, struct oapnet_stream *st, const uint8_t *p, size_t n)
{
    if (st->acc.n + n - st->acc_base > ep->in_max) {
        st->in_over = true;
        buf_release(&st->acc);
        return 0;
    }
    if (st->acc.cap == 0) {
        size_t first = n + (size_t)OAP_STREAM_INITIAL_CREDIT * OAP_STREAM_CHUNK_DEF_BYTES;
        if ((st->acc.p = malloc(first)) == NULL)
            return -1;
        st->acc.cap = first;
    }
    return buf_append(&st->acc, p, n);
}

/* A frame of st's streamed message, START included: credit, then its bytes
 * to the user (chunked) or to the gathering buffer. */
static void in_frame(struct oapnet *ep, struct oapnet_stream *st, const struct oap_frame *f,
                     uint64_t at)
{
    const struct oap_hdr *h = &f->h;
    const uint8_t *part = f->payload;
    size_t part_len = f->payload_len;
    bool held = false;

    if (oap_consumer_on_frame(&st->cons, h->flags) != 0) {
        oapnet_fail(ep, OAP_E_CREDIT, at, h); /* no credit for it */
        return;
    }
    /* A response's DATA header must be whole in its START frame: a chunked
     * call is handed its head at once. A request's is read after END. */
    if ((h->flags & OAP_FLAG_START) && ep->role == OAPNET_CLIENT) {
        struct oap_data d;
        if (oap_data_split(&d, part, part_len) != 0) {
            oapnet_fail(ep, OAP_E_BAD_DATA_HDR, at + OAP_HDR_BYTES + h->cap_len, h);
            return;
        }
        st->acc_base = 2 + d.hdr_len;
        if (st->chunked && !st->abandoned) {
            ep->ops->on_head(ep, st, h->code, d.hdr, d.hdr_len);
            if (ep->state != OAPNET_READY)
                return;
            part = d.body;
            part_len = d.body_len;
        }
    }
    if (st->chunked && !st->abandoned) {
        if (part_len > 0)
            held = ep->ops->on_chunk(ep, st, part, part_len);
        if (ep->state != OAPNET_READY)
            return;
    } else if (!st->abandoned && !st->in_over && acc_add(ep, st, part, part_len) != 0) {
        oapnet_fail(ep, OAP_E_NOMEM, at, h);
        return;
    }
    if (!held)
        oap_consumer_on_consumed(&st->cons, 1);
    if (h->flags & OAP_FLAG_END) {
        in_end(ep, st);
        return;
    }
    if (grant(ep, st) != 0)
        oapnet_close(ep, "cannot grant credit");
}

/* A message in one frame. A COMP payload (on_frame let it through: we
 * announced COMP and have an inflater) is inflated within our own
 * max_frame: one request is one frame's worth. */
static void in_single(struct oapnet *ep, struct oapnet_stream *st, const struct oap_frame *f,
                      uint64_t at)
{
    const struct oap_hdr *h = &f->h;
    struct oapnet_msg m = {.code = h->code};
    const uint8_t *p = f->payload;
    size_t n = f->payload_len;
    int status = 0;

    if (h->flags & OAP_FLAG_COMP) {
        uint8_t *buf = malloc(ep->ours.max_frame);
        int e =
            buf ? ep->inflate(p, n, buf, ep->ours.max_frame, ep->ours.max_frame, &n) : OAP_E_NOMEM;
        if (e != 0) {
            free(buf);
            oapnet_fail(ep, e, at + OAP_HDR_BYTES + h->cap_len, h);
            return;
        }
        p = buf;
        m.mem = buf;
    }
    if (st->abandoned) {
        free(m.mem);
        m = (struct oapnet_msg){.code = h->code};
    } else {
        status = msg_split(&m, p, n);
    }
    deliver(ep, st, status, &m);
}

/* A frame that opens st's message. A client takes START|END as a stream of
 * one frame (its DATA header checked at START like any answer's); a server
 * takes it as a plain request, which may be COMP. */
static void in_begin(struct oapnet *ep, struct oapnet_stream *st, const struct oap_frame *f,
                     uint64_t at)
{
    uint16_t fl = f->h.flags;

    if (!(fl & OAP_FLAG_START) || (ep->role == OAPNET_SERVER && (fl & OAP_FLAG_END))) {
        in_single(ep, st, f, at);
        return;
    }
    st->in_stream = true;
    st->in_code = f->h.code;
    oap_consumer_init(&st->cons, st->window ? st->window : OAPNET_WINDOW_DEF);
    in_frame(ep, st, f, at);
}

static void on_credit(struct oapnet *ep, const struct oap_frame *f, uint64_t at)
{
    struct oapnet_stream *st;
    uint32_t n;
    int e;

    if (oap_credit_parse(f, &n) != 0) {
        oapnet_fail(ep, OAP_E_BAD_CREDIT, at, &f->h);
        return;
    }
    st = oapnet_stream_find(ep, f->h.corr_id);
    /* A grant that crossed our END, or for a stream gone: harmless. */
    if (st == NULL || !st->out_stream || st->out_done)
        return;
    if (oap_producer_on_grant(&st->prod, n) != 0) {
        oapnet_fail(ep, OAP_E_BAD_CREDIT, at, &f->h);
        return;
    }
    if ((e = pump(ep, st)) < 0)
        oapnet_close(ep, "write failed");
    else if (e == 1 && ep->ops->on_sent)
        ep->ops->on_sent(ep, st);
}

/* One frame on a READY connection. */
static void on_frame(struct oapnet *ep, const struct oap_frame *f)
{
    const struct oap_hdr *h = &f->h;
    uint64_t at = ep->dec.off - h->len; /* where the frame starts */
    struct oapnet_stream *st;

    /* COMP only where we announced it and can inflate (a client never does). */
    if ((h->flags & OAP_FLAG_COMP) && (!(ep->ours.flags & OAP_FLAG_COMP) || !ep->inflate)) {
        oapnet_fail(ep, OAP_E_BAD_FLAGS, at + OAP_OFF_FLAGS, h);
        return;
    }
    if (oap_credit_is(f)) {
        on_credit(ep, f, at);
        return;
    }
    if (ep->role == OAPNET_CLIENT && !(h->flags & OAP_FLAG_RESP)) {
        if (!(h->flags & OAP_FLAG_EVENT)) /* events we do not know are ignored */
            oapnet_fail(ep, OAP_E_STATE, at + OAP_OFF_FLAGS, h);
        return;
    }
    if (ep->role == OAPNET_SERVER &&
        (!(h->flags & OAP_FLAG_REQ) || (h->flags & (OAP_FLAG_RESP | OAP_FLAG_EVENT)))) {
        oapnet_fail(ep, OAP_E_STATE, at + OAP_OFF_FLAGS, h);
        return;
    }
    st = oapnet_stream_find(ep, h->corr_id);
    if (st && st->in_stream && !st->cons.ended) { /* the next frame of a message */
        if (h->flags & OAP_FLAG_START)
            oapnet_fail(ep, OAP_E_STATE, at + OAP_OFF_FLAGS, h);
        else
            in_frame(ep, st, f, at);
        return;
    }
    if (ep->role == OAPNET_CLIENT) {
        if (st == NULL || st->in_stream) { /* not a call of ours, or answered already */
            oapnet_fail(ep, OAP_E_STATE, at + OAP_OFF_CORR_ID, h);
            return;
        }
    } else if (h->app_proto_id == OAP_APP_HELLO) {
        on_hello_request(ep, f, at);
        return;
    } else if ((st = ep->ops->on_request(ep, f)) == NULL || ep->state != OAPNET_READY) {
        return;
    }
    in_begin(ep, st, f, at);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct oapnet *ep = h->data;

    *b = iov(ep->rbuf, OAPNET_READ_BYTES);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct oapnet *ep = s->data;
    const uint8_t *p = (const uint8_t *)b->base;
    size_t n = nread > 0 ? (size_t)nread : 0;

    if (nread < 0) {
        /* End of input inside a frame is a truncated frame. */
        int e = oap_decoder_finish(&ep->dec);
        if (nread == UV_EOF && e != 0)
            oapnet_fail(ep, e, oap_decoder_error_offset(&ep->dec), NULL);
        else
            oapnet_close(ep, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (ep->bytes_in)
        *ep->bytes_in += n;
    while (n > 0 && (ep->state == OAPNET_HELLO || ep->state == OAPNET_READY)) {
        struct oap_frame f;
        size_t used = 0;
        int e = oap_decoder_feed(&ep->dec, p, n, &used, &f);
        p += used;
        n -= used;
        if (e == OAP_E_AGAIN)
            break;
        if (e != 0) {
            oapnet_fail(ep, e, oap_decoder_error_offset(&ep->dec), NULL);
            return;
        }
        if (ep->state == OAPNET_HELLO)
            on_hello_answer(ep, &f, ep->dec.off - f.h.len);
        else
            on_frame(ep, &f);
    }
    /* A peer that sends without reading stops being read. */
    if (ep->state == OAPNET_READY && ep->write_high && ep->u.s.write_queue_size > ep->write_high) {
        ep->paused = true;
        uv_read_stop(&ep->u.s);
    }
}

/* ------------------------------------------------------------- lifecycle */

void oapnet_init(struct oapnet *ep, enum oapnet_role role, const struct oapnet_ops *ops,
                 struct wbatch_set *set, const struct oap_hello *ours)
{
    memset(ep, 0, sizeof(*ep));
    ep->role = role;
    ep->ops = ops;
    ep->set = set;
    if (ours)
        ep->ours = *ours;
    else
        oap_hello_defaults(&ep->ours);
    ep->in_max = OAPNET_IN_MAX_DEF;
    table_reset(ep);
}

/* A fresh handle and the per-connection state. */
static int handle_init(struct oapnet *ep, uv_loop_t *loop, bool is_unix)
{
    int e;

    if (ep->state != OAPNET_IDLE)
        return UV_EBUSY;
    if ((ep->rbuf = malloc(OAPNET_READ_BYTES)) == NULL)
        return UV_ENOMEM;
    e = is_unix ? uv_pipe_init(loop, &ep->u.pipe, 0) : uv_tcp_init(loop, &ep->u.tcp);
    if (e != 0) {
        free(ep->rbuf);
        ep->rbuf = NULL;
        return e;
    }
    ep->u.h.data = ep;
    oap_decoder_init(&ep->dec, ep->ours.max_frame);
    wbatch_init(&ep->batch, ep->set, &ep->u.s);
    ep->batch.on_write_end = on_batch_end;
    ep->max_frame = ep->ours.max_frame; /* until HELLO: only our HELLO is sent */
    ep->max_inflight = ep->ours.max_inflight;
    ep->chunk = oap_stream_chunk(0, ep->max_frame);
    ep->why = NULL;
    ep->paused = false;
    table_reset(ep);
    return 0;
}

/* Connected: read, and a client says HELLO. */
static void start(struct oapnet *ep)
{
    if (ep->u.h.type == UV_TCP)
        uv_tcp_nodelay(&ep->u.tcp, 1);
    ep->state = ep->role == OAPNET_CLIENT ? OAPNET_HELLO : OAPNET_READY;
    if (uv_read_start(&ep->u.s, on_alloc, on_read) != 0)
        oapnet_close(ep, "cannot read");
    else if (ep->role == OAPNET_CLIENT && hello_send(ep, OAP_FLAG_REQ, 0, 0, zero_tenant) != 0)
        oapnet_close(ep, "cannot send HELLO");
}

static void on_connect(uv_connect_t *req, int status)
{
    struct oapnet *ep = req->data;

    if (ep->state != OAPNET_CONNECTING)
        return; /* closed meanwhile */
    if (status < 0)
        oapnet_close(ep, uv_strerror(status));
    else
        start(ep);
}

int oapnet_connect(struct oapnet *ep, uv_loop_t *loop, const struct oapnet_addr *a)
{
    int e = handle_init(ep, loop, a->is_unix);

    if (e != 0)
        return e;
    ep->state = OAPNET_CONNECTING;
    ep->creq.data = ep;
    if (a->is_unix) {
        uv_pipe_connect(&ep->creq, &ep->u.pipe, a->path, on_connect);
        return 0;
    }
    e = uv_tcp_connect(&ep->creq, &ep->u.tcp, (const struct sockaddr *)&a->ss, on_connect);
    if (e != 0)
        oapnet_close(ep, uv_strerror(e));
    return 0;
}

int oapnet_accept(struct oapnet *ep, uv_stream_t *server)
{
    int e = handle_init(ep, server->loop, server->type == UV_NAMED_PIPE);

    if (e != 0)
        return e;
    ep->state = OAPNET_CONNECTING;
    if ((e = uv_accept(server, &ep->u.s)) != 0)
        oapnet_close(ep, uv_strerror(e));
    else
        start(ep);
    return 0;
}

int oapnet_open(struct oapnet *ep, uv_loop_t *loop, uv_os_sock_t fd, bool is_unix)
{
    int e = handle_init(ep, loop, is_unix);

    if (e != 0)
        return e;
    ep->state = OAPNET_CONNECTING;
    e = is_unix ? uv_pipe_open(&ep->u.pipe, fd) : uv_tcp_open(&ep->u.tcp, fd);
    if (e != 0)
        oapnet_close(ep, uv_strerror(e));
    else
        start(ep);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct oapnet *ep = h->data;

    /* libuv has run every write callback (cancelled) by now. */
    wbatch_release(&ep->batch);
    ep->state = OAPNET_IDLE;
    for (uint32_t i = 0; i < ep->nbuckets; i++) {
        struct oapnet_stream *st;
        while ((st = ep->buckets[i]) != NULL) {
            ep->buckets[i] = st->next;
            st->next = NULL;
            st->open = false;
            ep->nstreams--;
            buf_release(&st->acc);
            ep->ops->on_abort(ep, st);
        }
    }
    table_reset(ep);
    oap_decoder_release(&ep->dec);
    free(ep->rbuf);
    ep->rbuf = NULL;
    ep->ops->on_closed(ep);
}

void oapnet_close(struct oapnet *ep, const char *why)
{
    bool flush;

    if (ep->state == OAPNET_IDLE || uv_is_closing(&ep->u.h))
        return;
    if (ep->why == NULL)
        ep->why = why;
    /* A server's answers batched this turn still go out, as far as the
     * socket takes them now (a half-closed peer waits for them); a client's
     * requests do not: their calls are about to fail. */
    flush = ep->role == OAPNET_SERVER && ep->state != OAPNET_CLOSING;
    ep->state = OAPNET_CLOSING;
    if (flush) {
        (void)wbatch_flush(&ep->batch);
        if (uv_is_closing(&ep->u.h)) /* the flush failed and closed it */
            return;
    }
    wbatch_drop(&ep->batch);
    uv_close(&ep->u.h, on_closed);
}
