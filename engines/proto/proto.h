/*
 * proto.h — the app protocols of index, storage and mailbox (docs/OAP.md).
 *
 * One dispatcher turns a request into a response (HTTP-like status, header
 * JSON, body) by calling the engines. A request is a typed op (op-t.h) and
 * a body: proto_exec() runs it. On the wire a request is header JSON and a
 * body: proto_handle() parses the header into a typed op
 * (proto_op_parse()) and runs that. The reference services take the JSON
 * path behind OAP/1 sockets; omnigate's micronode hands its typed ops
 * straight to proto_exec(), with no JSON either way. Same code, same
 * answers: a handler cannot tell the two apart. No I/O here.
 *
 * Request header JSON always has "op"; it may have "deadline_ms" (the
 * caller's remaining budget in ms: a request whose deadline has passed when
 * it is served is answered 504 and not executed).
 *
 * storage (app 1)
 *   {"op":"get","obj":"b3:..","off":N?,"len":N?}   200 whole / 206 range
 *       resp hdr {"obj":"b3:..","size":TOTAL,"off":N,"len":N}  body = bytes
 *   {"op":"has","obj":"b3:.."}                      200 {"obj","size"} / 404
 *   {"op":"put","expect":"b3:.."?}  body = bytes    201 new / 200 existing {"obj","size"}
 * index (app 2)
 *   {"op":"resolve","name":".."}                    200, body = manifest JSON
 *   {"op":"put","name":".."}  body = manifest JSON  201 new / 200 replaced
 *   {"op":"search","prefix":"..","limit":N}         200, body {"names":[..],"more":bool}
 * mailbox (app 3)
 *   {"op":"send","channel":"..","key":".."?} body  201 new / 200 duplicate {"id":N,"duplicate":b}
 *   {"op":"recv","channel":"..","max":N,"lease_ms":N?}  200, body {"messages":[M..]}
 *   {"op":"peek","channel":"..","max":N}            200, body {"messages":[M..]}
 *   {"op":"ack","channel":"..","ids":[N..]}         200 {"acked":N}
 *   M = {"id":N,"deliveries":N,"sent_ms":N,"body":"<base64>"}
 * Errors: status from the engine (400, 404, 413, 416, 429, 500, 504, 507),
 * header {"error":"<code>","reason":"<text>"}, empty body.
 */
#ifndef ENGINES_PROTO_PROTO_H
#define ENGINES_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engines/common/buf.h"
#include "engines/index/index.h"
#include "engines/mailbox/mailbox.h"
#include "engines/proto/op-t.h"
#include "engines/storage/storage.h"

#define PROTO_HDR_MAX_BYTES 2048
/* Largest request header JSON accepted: the DATA header cap of OAP/1
 * (OAP_DATA_HDR_MAX_BYTES); an ACK of MAILBOX_BATCH_MAX 20-digit ids fits. */
#define PROTO_REQ_HDR_MAX_BYTES 8192

struct engines {
    struct storage *storage; /* NULL when this process does not serve it */
    struct index *index;
    struct mailbox *mailbox;
};

/* A request as the wire carries it: header JSON and body. */
struct proto_req {
    uint16_t app; /* OAP_APP_STORAGE, OAP_APP_INDEX, OAP_APP_MAILBOX */
    const char *hdr;
    size_t hdr_len;
    const uint8_t *body;
    size_t body_len;
    uint64_t now_ms; /* engine clock (leases, idempotency windows): proto_now_ms() */
};

/* A response. The body is a view kept alive by exactly one of blob / buf
 * (or neither when n == 0); proto_resp_release drops the reference. */
struct proto_resp {
    int code;
    char hdr[PROTO_HDR_MAX_BYTES];
    size_t hdr_len;
    const uint8_t *body;
    size_t body_len;
    struct storage_blob *blob;
    struct eng_buf *buf;
    /* Static name of the operation for metric labels ("get", "resolve", ...;
     * "invalid" when the header named no known op). Never NULL. */
    const char *op;
};

/* Serve one request whose header is JSON: proto_op_parse, then proto_exec.
 * Always fills rs (errors become error responses); returns rs->code. */
int proto_handle(struct engines *e, const struct proto_req *rq, struct proto_resp *rs);

/* Serve one typed request: op with the body (borrowed for the call) at
 * engine time now_ms. Checked in this order, each failure answered as an
 * error response: the deadline (504), the app and whether it is served
 * here, the op (400), the fields (400, the same reasons the JSON path
 * gives), then the engine's own answer. Always fills rs; returns rs->code.
 * Parses no JSON. */
int proto_exec(struct engines *e, const struct proto_op *op, const uint8_t *body, size_t body_len,
               uint64_t now_ms, struct proto_resp *rs);

/* A request header parsed: the op, and what its slices point into (so it
 * is used where it was parsed: op.ids points into the struct itself). */
struct proto_parsed {
    struct proto_op op;
    void *doc; /* the JSON document (jansson's); the op's strings are its */
    uint64_t ids[MAILBOX_BATCH_MAX];
};

/* Parse header JSON hdr[0..n) of app into ps->op. Returns 0 (the op may
 * still carry a refused field in op.bad, which proto_exec answers), or the
 * status of an error response written to rs: 413 for a header over
 * PROTO_REQ_HDR_MAX_BYTES, 400 for one that is not a JSON object (duplicate
 * keys refused), names no op, or has a malformed "deadline_ms". Either way
 * release ps with proto_parsed_release. Counted in proto_json_parses(). */
int proto_op_parse(struct proto_parsed *ps, uint16_t app, const char *hdr, size_t n,
                   struct proto_resp *rs);
void proto_parsed_release(struct proto_parsed *ps);

/* Headers this thread has parsed (proto_op_parse calls), for tests that
 * check a path parses none. */
uint64_t proto_json_parses(void);

/* The op's name ("get", ..., "ack"; "invalid" for PROTO_NONE or out of
 * range): the "op" of its header and its metric label. Static. */
const char *proto_kind_name(enum proto_kind k);

/* Copying an op whose strings and ids must outlive their owner: the bytes
 * they need (proto_op_copy_size), then the copy into mem, which must hold
 * that many and outlive dst. dst may be src. */
size_t proto_op_copy_size(const struct proto_op *op);
void proto_op_copy(struct proto_op *dst, const struct proto_op *src, void *mem);

void proto_resp_release(struct proto_resp *rs);

/* The clock engines keep: wall-clock milliseconds (message sent_ms is shown
 * to clients), the same in micronode and in the reference services, so both
 * profiles answer alike. */
uint64_t proto_now_ms(void);

#endif
