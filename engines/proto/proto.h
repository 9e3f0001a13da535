/*
 * proto.h — the app protocols of index, storage and mailbox (docs/OAP.md).
 *
 * One dispatcher turns a request (app id, header JSON, body) into a response
 * (HTTP-like status, header JSON, body) by calling the engines. The reference
 * services run it behind OAP/1 sockets; omnigate's micronode runs it in
 * process. Same code, same answers: a handler cannot tell the two apart.
 * No I/O here.
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
#include "engines/storage/storage.h"

#define PROTO_HDR_MAX_BYTES 2048

struct engines {
    struct storage *storage; /* NULL when this process does not serve it */
    struct index *index;
    struct mailbox *mailbox;
};

struct proto_req {
    uint16_t app; /* OAP_APP_STORAGE, OAP_APP_INDEX, OAP_APP_MAILBOX */
    const char *hdr;
    size_t hdr_len;
    const uint8_t *body;
    size_t body_len;
    uint64_t now_ms; /* engine clock (leases, idempotency windows): proto_now_ms() */
    /* In-process callers pass the remaining deadline here instead of in the
     * header, so that identical requests have identical header bytes and
     * their parse can be memoised (see proto_handle). */
    bool has_deadline;
    int64_t deadline_ms;
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

/* Serve one request. Always fills rs (errors become error responses);
 * returns rs->code. */
int proto_handle(struct engines *e, const struct proto_req *rq, struct proto_resp *rs);

void proto_resp_release(struct proto_resp *rs);

/* Free this thread's memo of parsed request headers (at thread exit). */
/* The clock engines keep: wall-clock milliseconds (message sent_ms is shown
 * to clients), the same in micronode and in the reference services, so both
 * profiles answer alike. */
uint64_t proto_now_ms(void);

void proto_thread_release(void);

#endif
