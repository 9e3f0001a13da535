/*
 * op.h — one typed builder per downstream op, and the one writer of an op
 * as request header JSON.
 *
 * A builder fills a ds_req: the typed op (engines/proto/op-t.h) whose kind
 * is also the `op` label of the downstream metrics, the service,
 * idempotence, and whether identical reads coalesce. It writes no JSON and
 * allocates nothing: an in-process call hands the op to the engines as it
 * is. Strings are borrowed from the caller until ds_call() returns (the
 * call copies them), so one ds_req can be rebuilt and sent again.
 *
 * The JSON is written only where a request leaves the process: by the
 * remote backend for each attempt (with the remaining deadline and the
 * correlation id) and by `omnigate seed`. ds_op_write() is that writer; its
 * output is what engines/proto parses back into the same op.
 *
 * Used by every caller that talks to a downstream: the view and feed
 * handlers, media, and the demo data set. A new downstream op gets its
 * builder here (and its fields in ds_op_write).
 */
#ifndef DS_OP_H
#define DS_OP_H

#include <stddef.h>
#include <stdint.h>

#include "cas/cas.h"
#include "core/dec.h"
#include "ds/ds.h"
#include "engines/mailbox/mailbox.h"

/* Strings in an op (names, channels, prefixes, keys): at most this many
 * bytes each, so that a header, every byte escaped as \u00XX, still fits. */
#define DS_OP_STR_MAX 255
/* The longest corr_id written (HTTP_CORR_ID_MAX). */
#define DS_OP_CORR_ID_MAX 64
/* Every header ds_op_write can write, NUL included: three strings escaped
 * (6 bytes per byte), an ACK's ids, the deadline and corr_id, numbers, keys. */
#define DS_OP_HDR_MAX                                                                              \
    (3 * 6 * DS_OP_STR_MAX + MAILBOX_BATCH_MAX * (DEC_U64_MAX_CHARS + 1) + DS_OP_CORR_ID_MAX + 320)

/* Each returns 0, or -1 when a string is longer than DS_OP_STR_MAX (r is
 * then unusable). The header the wire carries is shown after each. */

/* index {"op":"resolve","name":NAME}; a read. */
int ds_op_resolve(struct ds_req *r, const char *name, size_t n);
/* index {"op":"search","prefix":PREFIX,"limit":LIMIT}; a read. */
int ds_op_search(struct ds_req *r, const char *prefix, size_t n, uint64_t limit);
/* index {"op":"put","name":NAME}; the manifest is the body. */
int ds_op_index_put(struct ds_req *r, const char *name, size_t n);
/* mailbox {"op":"peek","channel":CHANNEL,"max":MAX}; a read. */
int ds_op_peek(struct ds_req *r, const char *channel, size_t n, uint64_t max);
/* mailbox {"op":"send","channel":CHANNEL,"key":KEY}; the message is the
 * body. key NULL: no idempotency key. */
int ds_op_send(struct ds_req *r, const char *channel, const char *key);
/* mailbox {"op":"send","channel":CHANNEL,"key":KEY,"type":TYPE}: ds_op_send
 * with the message's media type (NULL or empty: none). */
int ds_op_send_typed(struct ds_req *r, const char *channel, size_t n, const char *key, size_t kn,
                     const char *type, size_t tn);
/* mailbox {"op":"recv","channel":CHANNEL,"max":MAX,"lease_ms":LEASE,
 * "owner":OWNER}: lease up to max messages to owner (NULL: nobody named);
 * not a read (it leases), never retried. */
int ds_op_recv(struct ds_req *r, const char *channel, size_t n, uint64_t max, uint64_t lease_ms,
               const char *owner, size_t on);
/* mailbox {"op":"ack"|"nack"|"lease","channel":CHANNEL,"ids":[..],
 * "owner":OWNER} with "delay_ms" (nack) or "lease_ms" (lease) = ms. ids are
 * borrowed like the strings. */
int ds_op_settle(struct ds_req *r, enum proto_kind kind, const char *channel, size_t n,
                 const uint64_t *ids, size_t nids, const char *owner, size_t on, uint64_t ms);
/* mailbox {"op":"dead"|"redrive","channel":CHANNEL,"max":MAX}; dead is a
 * read. */
int ds_op_dead(struct ds_req *r, enum proto_kind kind, const char *channel, size_t n, uint64_t max);
/* mailbox {"op":"stats","channel":CHANNEL}; a read. */
int ds_op_stats(struct ds_req *r, const char *channel, size_t n);
/* storage {"op":"has","obj":OBJ}; a read. */
int ds_op_has(struct ds_req *r, const struct cas_addr *obj);
/* storage {"op":"proof","obj":OBJ,"off":OFF,"len":LEN}: the proof of the
 * groups bytes [OFF, OFF+LEN) touch; a read. */
int ds_op_proof(struct ds_req *r, const struct cas_addr *obj, uint64_t off, uint64_t len);
/* storage {"op":"outboard","obj":OBJ}: every group's value; a read. */
int ds_op_outboard(struct ds_req *r, const struct cas_addr *obj);
/* storage {"op":"get","obj":OBJ}, or with ranged {..,"off":OFF,"len":LEN};
 * a read, coalesced with identical reads (same address and range). */
int ds_op_get(struct ds_req *r, const struct cas_addr *obj, bool ranged, uint64_t off,
              uint64_t len);
/* storage {"op":"put"}, or {"op":"put","expect":EXPECT} when expect is not
 * NULL (an address the body must hash to); the object is the body. */
int ds_op_put(struct ds_req *r, const struct cas_addr *expect);

/*
 * op as request header JSON, into out (DS_OP_HDR_MAX bytes): first
 * "deadline_ms" when op->has_deadline, then "corr_id" when corr_id is not
 * NULL or empty (at most DS_OP_CORR_ID_MAX bytes of [A-Za-z0-9._:-], as the
 * edge validated it: it is not escaped), then "op" and the op's fields in
 * the order shown above (recv: channel, max, lease_ms when not 0, owner;
 * ack, nack, lease: channel, ids, owner, delay_ms or lease_ms). Strings are JSON-escaped
 * (jw_escape). NUL-terminated. Returns the length, or -1 for an op this writer refuses: an unknown
 * kind, a string over DS_OP_STR_MAX, a corr_id over DS_OP_CORR_ID_MAX, or
 * more than MAILBOX_BATCH_MAX ids. Never allocates.
 */
int ds_op_write(const struct proto_op *op, const char *corr_id, char out[DS_OP_HDR_MAX]);

#endif
