/*
 * stream.c — stream chunking and the frame-credit state machines.
 */
#include "oap/stream.h"

#include <string.h>

#include "oap/oap.h"

uint32_t oap_stream_chunk(uint64_t want, uint32_t max_frame)
{
    uint32_t c, room = oap_max_frame_clamp(max_frame) - OAP_HDR_BYTES;

    if (want == 0)
        want = OAP_STREAM_CHUNK_DEF_BYTES;
    if (want < OAP_STREAM_CHUNK_MIN_BYTES)
        want = OAP_STREAM_CHUNK_MIN_BYTES;
    if (want > OAP_STREAM_CHUNK_MAX_BYTES)
        want = OAP_STREAM_CHUNK_MAX_BYTES;
    c = (uint32_t)want;
    /* A peer with a small max_frame wins over the 32 KiB floor. */
    if (c > room)
        c = room;
    return c ? c : 1;
}

void oap_producer_init(struct oap_producer *p, uint32_t chunk, uint32_t credit)
{
    memset(p, 0, sizeof(*p));
    p->chunk = chunk ? chunk : 1;
    p->credit = credit > OAP_STREAM_MAX_CREDIT ? OAP_STREAM_MAX_CREDIT : credit;
}

bool oap_producer_can_send(const struct oap_producer *p)
{
    return !p->ended && p->credit > 0;
}

int oap_producer_next(struct oap_producer *p, uint64_t remaining, uint32_t overhead,
                      uint16_t *flags, uint32_t *body_len)
{
    uint32_t room;

    if (p->ended)
        return OAP_E_STATE;
    if (overhead >= p->chunk)
        return OAP_E_BAD_ARG;
    if (p->credit == 0)
        return OAP_E_AGAIN;
    room = p->chunk - overhead;
    *body_len = remaining < room ? (uint32_t)remaining : room;
    *flags = 0;
    if (!p->started)
        *flags |= OAP_FLAG_START;
    if (*body_len == remaining)
        *flags |= OAP_FLAG_END;
    p->started = true;
    p->ended = (*flags & OAP_FLAG_END) != 0;
    p->credit--;
    p->frames++;
    return 0;
}

int oap_producer_on_grant(struct oap_producer *p, uint32_t n)
{
    if (n == 0 || n > OAP_STREAM_MAX_CREDIT - p->credit)
        return OAP_E_BAD_CREDIT;
    p->credit += n;
    return 0;
}

void oap_consumer_init(struct oap_consumer *c, uint32_t window)
{
    memset(c, 0, sizeof(*c));
    if (window < OAP_STREAM_INITIAL_CREDIT)
        window = OAP_STREAM_INITIAL_CREDIT;
    if (window > OAP_STREAM_MAX_CREDIT)
        window = OAP_STREAM_MAX_CREDIT;
    c->window = window;
    c->outstanding = OAP_STREAM_INITIAL_CREDIT;
}

int oap_consumer_on_frame(struct oap_consumer *c, uint16_t flags)
{
    if (c->ended)
        return OAP_E_STATE;
    if (c->outstanding == 0)
        return OAP_E_CREDIT;
    c->outstanding--;
    c->buffered++;
    if (flags & OAP_FLAG_END)
        c->ended = true;
    return 0;
}

void oap_consumer_on_consumed(struct oap_consumer *c, uint32_t n)
{
    c->buffered -= n < c->buffered ? n : c->buffered;
}

uint32_t oap_consumer_grant(struct oap_consumer *c)
{
    uint32_t used = c->outstanding + c->buffered, room;

    if (c->ended || used >= c->window)
        return 0;
    room = c->window - used;
    /* Batch small grants, but never leave a producer with no credit while
     * there is room: that would stall the stream forever. */
    if (room < c->window / 2 && c->outstanding > 0)
        return 0;
    c->outstanding += room;
    return room;
}

bool oap_credit_is(const struct oap_frame *f)
{
    return (f->h.flags & OAP_CREDIT_FLAGS) == OAP_CREDIT_FLAGS;
}

int oap_credit_parse(const struct oap_frame *f, uint32_t *n)
{
    uint32_t v;

    if (f->h.flags != OAP_CREDIT_FLAGS || f->h.cap_len != 0 ||
        f->payload_len != OAP_CREDIT_PAYLOAD_BYTES)
        return OAP_E_BAD_CREDIT;
    v = oap_get32(f->payload);
    if (v == 0 || v > OAP_STREAM_MAX_CREDIT)
        return OAP_E_BAD_CREDIT;
    *n = v;
    return 0;
}

void oap_credit_frame(struct oap_frame *f, uint8_t buf[OAP_CREDIT_PAYLOAD_BYTES],
                      uint16_t app_proto_id, const uint8_t tenant[OAP_TENANT_BYTES],
                      uint64_t corr_id, uint32_t n)
{
    memset(f, 0, sizeof(*f));
    f->h.ver = OAP_VERSION;
    f->h.flags = OAP_CREDIT_FLAGS;
    f->h.app_proto_id = app_proto_id;
    memcpy(f->h.tenant, tenant, OAP_TENANT_BYTES);
    f->h.corr_id = corr_id;
    oap_put32(buf, n);
    f->payload = buf;
    f->payload_len = OAP_CREDIT_PAYLOAD_BYTES;
}
