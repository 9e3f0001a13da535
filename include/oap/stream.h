/*
 * stream.h — OAP/1 streams and credit (docs/OAP.md "Streams and credit").
 *
 * A stream is a START frame, zero or more middle frames and an END frame
 * (START|END for a one-frame stream), all with the same app_proto_id and
 * corr_id. The START payload is a DATA payload (header + first body bytes);
 * later payloads are raw body bytes.
 *
 * Credit counts frames. A producer starts with OAP_STREAM_INITIAL_CREDIT
 * (the START frame included) and may send one frame per credit; the receiver
 * adds credit with grant frames (flags EVENT|ACK_REQ, the stream's
 * app_proto_id and corr_id, payload u32 = frames granted). Both sides are
 * pure state machines: no I/O, no allocation.
 */
#ifndef OAP_STREAM_H
#define OAP_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "oap/oap-t.h"

#define OAP_STREAM_CHUNK_MIN_BYTES 32768
#define OAP_STREAM_CHUNK_DEF_BYTES 65536
#define OAP_STREAM_CHUNK_MAX_BYTES 131072
#define OAP_STREAM_INITIAL_CREDIT  4    /* frames, implicit at START */
#define OAP_STREAM_MAX_CREDIT      1024 /* most frames a sender may hold */

#define OAP_CREDIT_FLAGS         (OAP_FLAG_EVENT | OAP_FLAG_ACK_REQ)
#define OAP_CREDIT_PAYLOAD_BYTES 4

/*
 * Payload bytes per stream frame: want (0 = default 64 KiB) clamped to
 * 32..128 KiB, then lowered so that a frame fits max_frame
 * (chunk ≤ max_frame − 38). Always ≥ 1.
 */
uint32_t oap_stream_chunk(uint64_t want, uint32_t max_frame);

/* ---------------------------------------------------------------- producer */

struct oap_producer {
    uint32_t chunk;  /* payload bytes per frame */
    uint32_t credit; /* frames we may still send */
    uint64_t frames; /* frames sent */
    bool started;
    bool ended;
};

/* chunk from oap_stream_chunk(); credit normally OAP_STREAM_INITIAL_CREDIT. */
void oap_producer_init(struct oap_producer *p, uint32_t chunk, uint32_t credit);

/* True when the next frame may be sent now. */
bool oap_producer_can_send(const struct oap_producer *p);

/*
 * Plan the next frame given `remaining` body bytes still to send and
 * `overhead` payload bytes the caller adds to this frame (the DATA header on
 * START). Sets *flags to START and/or END (the caller adds REQ or RESP) and
 * *body_len to min(chunk − overhead, remaining), and spends one credit.
 * Returns 0, OAP_E_AGAIN when out of credit (send nothing, wait for a
 * grant), OAP_E_STATE after END, or OAP_E_BAD_ARG when overhead ≥ chunk.
 */
int oap_producer_next(struct oap_producer *p, uint64_t remaining, uint32_t overhead,
                      uint16_t *flags, uint32_t *body_len);

/* Add a received grant. Returns 0 or OAP_E_BAD_CREDIT when n is 0 or the
 * total would pass OAP_STREAM_MAX_CREDIT (a misbehaving peer). */
int oap_producer_on_grant(struct oap_producer *p, uint32_t n);

/* ---------------------------------------------------------------- consumer */

struct oap_consumer {
    uint32_t window;      /* most frames granted-but-unreceived plus buffered */
    uint32_t outstanding; /* granted, not yet received */
    uint32_t buffered;    /* received, not yet consumed by the application */
    bool ended;
};

/* window clamped to [OAP_STREAM_INITIAL_CREDIT, OAP_STREAM_MAX_CREDIT];
 * the initial credit is already outstanding. */
void oap_consumer_init(struct oap_consumer *c, uint32_t window);

/* A frame of the stream arrived (its flags). Returns 0, or OAP_E_CREDIT when
 * the producer had no credit for it (protocol violation: close the stream),
 * or OAP_E_STATE after END. */
int oap_consumer_on_frame(struct oap_consumer *c, uint16_t flags);

/* The application finished with n buffered frames. */
void oap_consumer_on_consumed(struct oap_consumer *c, uint32_t n);

/*
 * Frames to grant now (0 = send nothing). Grants are batched: only when at
 * least half the window is free, or when the producer has no credit left and
 * any room is free. Outstanding + buffered never exceeds the window, so a
 * consumer that stops consuming stops the producer. Counts the grant as
 * outstanding.
 */
uint32_t oap_consumer_grant(struct oap_consumer *c);

/* ------------------------------------------------------------ grant frames */

/* True when f is shaped as a credit grant (EVENT and ACK_REQ both set). */
bool oap_credit_is(const struct oap_frame *f);

/* Validate a grant: flags exactly OAP_CREDIT_FLAGS, no cap, 4-byte payload
 * with 1 ≤ n ≤ OAP_STREAM_MAX_CREDIT. Returns 0 or OAP_E_BAD_CREDIT. */
int oap_credit_parse(const struct oap_frame *f, uint32_t *n);

/* Fill f (for oap_encode_iov()) as a grant of n frames; payload points to
 * buf, which must outlive the encode. */
void oap_credit_frame(struct oap_frame *f, uint8_t buf[OAP_CREDIT_PAYLOAD_BYTES],
                      uint16_t app_proto_id, const uint8_t tenant[OAP_TENANT_BYTES],
                      uint64_t corr_id, uint32_t n);

#endif
