/*
 * op.h — one typed builder per downstream op: the request header JSON that
 * goes on the wire, and the ds_req around it (service, the op label of the
 * downstream metrics, idempotence, the coalescing key of storage reads).
 *
 * Used by every caller that talks to a downstream: the view and feed
 * handlers, media, and the demo data set. The header is written into the
 * op itself (no allocation); ds_call() copies it, so one op can be rebuilt
 * and sent again. The header is NUL-terminated (not counted in hdr_len).
 *
 * A new downstream op gets its builder here.
 */
#ifndef DS_OP_H
#define DS_OP_H

#include <stddef.h>
#include <stdint.h>

#include "cas/cas.h"
#include "core/buf.h"
#include "ds/ds.h"

/* Strings in a header (names, channels, prefixes, keys): at most this many
 * bytes each, so that a header, every byte escaped as \u00XX, still fits. */
#define DS_OP_STR_MAX 255
/* Two such strings escaped (6 bytes per byte), two numbers and the keys. */
#define DS_OP_HDR_MAX (2 * 6 * DS_OP_STR_MAX + 160)

struct ds_op {
    struct ds_req req; /* .hdr points into hdr; the caller sets deadline_ms (and body) */
    char hdr[DS_OP_HDR_MAX];
};

/* Each returns 0, or -1 when a string is longer than DS_OP_STR_MAX (the
 * op is then unusable). The header is shown after each. */

/* index {"op":"resolve","name":NAME}; a read. */
int ds_op_resolve(struct ds_op *op, const char *name, size_t n);
/* index {"op":"search","prefix":PREFIX,"limit":LIMIT}; a read. */
int ds_op_search(struct ds_op *op, const char *prefix, size_t n, uint64_t limit);
/* index {"op":"put","name":NAME}; the manifest is the body. */
int ds_op_index_put(struct ds_op *op, const char *name, size_t n);
/* mailbox {"op":"peek","channel":CHANNEL,"max":MAX}; a read. */
int ds_op_peek(struct ds_op *op, const char *channel, size_t n, uint64_t max);
/* mailbox {"op":"send","channel":CHANNEL,"key":KEY}; the message is the body. */
int ds_op_send(struct ds_op *op, const char *channel, const char *key);
/* storage {"op":"has","obj":OBJ}; a read. */
int ds_op_has(struct ds_op *op, const struct cas_addr *obj);
/* storage {"op":"get","obj":OBJ}, or with ranged {..,"off":OFF,"len":LEN};
 * a read, coalesced with identical reads (the header is the key). */
int ds_op_get(struct ds_op *op, const struct cas_addr *obj, bool ranged, uint64_t off,
              uint64_t len);
/* storage {"op":"put"}, or {"op":"put","expect":EXPECT} when expect is not
 * empty (an address the body must hash to); the object is the body. */
int ds_op_put(struct ds_op *op, struct slice expect);

#endif
