/*
 * stream.c — chunk sizing, producer/consumer credit state machines, grants.
 */
#include "oap/oap.h"
#include "oap/stream.h"
#include "vec.h"

Test(oap_stream, chunk_clamp)
{
    cr_assert_eq(oap_stream_chunk(0, OAP_MAX_FRAME_BYTES), 65536);
    cr_assert_eq(oap_stream_chunk(1, OAP_MAX_FRAME_BYTES), 32768);
    cr_assert_eq(oap_stream_chunk(100000, OAP_MAX_FRAME_BYTES), 100000);
    cr_assert_eq(oap_stream_chunk(1 << 30, OAP_MAX_FRAME_BYTES), 131072);
    /* a peer's small max_frame wins */
    cr_assert_eq(oap_stream_chunk(0, 4096), 4096 - OAP_HDR_BYTES);
    cr_assert_eq(oap_stream_chunk(0, 10), 1, "clamped max_frame 38 → at least 1 byte");
}

Test(oap_stream, producer_plans_start_data_end)
{
    struct oap_producer p;
    uint16_t fl;
    uint32_t n;
    uint64_t remaining = 200000;

    oap_producer_init(&p, 65536, 100);
    cr_assert_eq(oap_producer_next(&p, remaining, 100, &fl, &n), 0);
    cr_assert_eq(fl, OAP_FLAG_START);
    cr_assert_eq(n, 65536 - 100, "START leaves room for the DATA header");
    remaining -= n;
    cr_assert_eq(oap_producer_next(&p, remaining, 0, &fl, &n), 0);
    cr_assert_eq(fl, 0);
    cr_assert_eq(n, 65536);
    remaining -= n;
    cr_assert_eq(oap_producer_next(&p, remaining, 0, &fl, &n), 0);
    remaining -= n;
    cr_assert_eq(oap_producer_next(&p, remaining, 0, &fl, &n), 0);
    cr_assert_eq(fl, OAP_FLAG_END);
    cr_assert_eq(n, remaining);
    cr_assert_eq(p.frames, 4);
    cr_assert_not(oap_producer_can_send(&p));
    cr_assert_eq(oap_producer_next(&p, 0, 0, &fl, &n), OAP_E_STATE);

    /* empty body: one START|END frame */
    oap_producer_init(&p, 65536, 1);
    cr_assert_eq(oap_producer_next(&p, 0, 20, &fl, &n), 0);
    cr_assert_eq(fl, OAP_FLAG_START | OAP_FLAG_END);
    cr_assert_eq(n, 0);
    oap_producer_init(&p, 100, 1);
    cr_assert_eq(oap_producer_next(&p, 10, 100, &fl, &n), OAP_E_BAD_ARG);
}

/* Drive a producer and a consumer; the application consumes `rate` frames
 * per tick. Returns frames delivered after `ticks`. */
static uint64_t simulate(uint32_t window, int rate, int ticks, uint32_t *max_buffered)
{
    struct oap_producer p;
    struct oap_consumer c;
    uint64_t remaining = 1000ull * 65536, delivered = 0;
    uint16_t fl;
    uint32_t n;

    oap_producer_init(&p, 65536, OAP_STREAM_INITIAL_CREDIT);
    oap_consumer_init(&c, window);
    *max_buffered = 0;
    for (int t = 0; t < ticks && remaining; t++) {
        /* producer sends while it may */
        while (oap_producer_can_send(&p)) {
            cr_assert_eq(oap_producer_next(&p, remaining, 0, &fl, &n), 0);
            remaining -= n;
            cr_assert_eq(oap_consumer_on_frame(&c, fl), 0, "never beyond credit");
            delivered++;
            if (c.buffered > *max_buffered)
                *max_buffered = c.buffered;
        }
        cr_assert_eq(oap_producer_next(&p, remaining, 0, &fl, &n),
                     remaining ? OAP_E_AGAIN : OAP_E_STATE);
        oap_consumer_on_consumed(&c, (uint32_t)rate);
        uint32_t g = oap_consumer_grant(&c);
        if (g)
            cr_assert_eq(oap_producer_on_grant(&p, g), 0);
        cr_assert_leq(c.outstanding + c.buffered, c.window);
    }
    return delivered;
}

Test(oap_stream, slow_consumer_stops_producer)
{
    uint32_t maxb;
    /* a consumer that never consumes: the producer stops at the window */
    cr_assert_eq(simulate(16, 0, 100, &maxb), 4 + 12);
    cr_assert_eq(maxb, 16);
    /* consuming one frame per tick: one frame per tick flows, buffer bounded */
    uint64_t got = simulate(16, 1, 100, &maxb);
    cr_assert_leq(got, 16 + 100);
    cr_assert_geq(got, 100);
    cr_assert_leq(maxb, 16);
    /* a fast consumer gets the whole stream */
    cr_assert_eq(simulate(64, 64, 100, &maxb), 1000);
}

Test(oap_stream, consumer_rejects_overrun)
{
    struct oap_consumer c;

    oap_consumer_init(&c, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(oap_consumer_on_frame(&c, 0), 0);
    cr_assert_eq(oap_consumer_on_frame(&c, 0), OAP_E_CREDIT);
    cr_assert_eq(oap_consumer_grant(&c), 0, "buffer full: no grant");
    oap_consumer_on_consumed(&c, 1);
    cr_assert_eq(oap_consumer_grant(&c), 1, "producer at zero credit gets the room");
    cr_assert_eq(oap_consumer_on_frame(&c, OAP_FLAG_END), 0);
    cr_assert_eq(oap_consumer_on_frame(&c, 0), OAP_E_STATE);
    oap_consumer_on_consumed(&c, 10);
    cr_assert_eq(oap_consumer_grant(&c), 0, "no grants after END");
}

Test(oap_stream, grant_limits)
{
    struct oap_producer p;
    oap_producer_init(&p, 65536, 4);
    cr_assert_eq(oap_producer_on_grant(&p, 0), OAP_E_BAD_CREDIT);
    cr_assert_eq(oap_producer_on_grant(&p, OAP_STREAM_MAX_CREDIT - 4), 0);
    cr_assert_eq(oap_producer_on_grant(&p, 1), OAP_E_BAD_CREDIT, "over the max");
}

Test(oap_stream, credit_frames)
{
    static const uint8_t tenant[16] = {1};
    struct oap_frame f, g;
    struct oap_decoder d;
    uint8_t buf[4], wire[64];
    uint32_t n;
    size_t used;

    oap_credit_frame(&f, buf, 3, tenant, 99, 7);
    ssize_t len = oap_encode(&f, OAP_MAX_FRAME_BYTES, wire, sizeof(wire));
    cr_assert_eq(len, 42);
    oap_decoder_init(&d, OAP_MAX_FRAME_BYTES);
    cr_assert_eq(oap_decoder_feed(&d, wire, (size_t)len, &used, &g), 0);
    cr_assert(oap_credit_is(&g));
    cr_assert_eq(oap_credit_parse(&g, &n), 0);
    cr_assert_eq(n, 7);
    cr_assert_eq(g.h.corr_id, 99);
    cr_assert_eq(g.h.app_proto_id, 3);
    g.payload_len = 3;
    cr_assert_eq(oap_credit_parse(&g, &n), OAP_E_BAD_CREDIT);
    g.payload_len = 4;
    g.h.flags |= OAP_FLAG_RESP;
    cr_assert_eq(oap_credit_parse(&g, &n), OAP_E_BAD_CREDIT);
    g.h.flags = OAP_FLAG_REQ;
    cr_assert_not(oap_credit_is(&g));
    oap_put32(buf, 0);
    cr_assert_eq(oap_credit_parse(&f, &n), OAP_E_BAD_CREDIT, "zero grant");
    oap_decoder_release(&d);
}
