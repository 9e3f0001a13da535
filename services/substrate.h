/*
 * substrate.h — internals shared by the reference downstream service
 * (build/omnigate-substrate): one process serving one role (index, storage
 * or mailbox) over OAP/1, with an admin HTTP endpoint and fault injection.
 *
 * The service runs one libuv loop on one thread; everything here is owned by
 * that loop and needs no lock. The engines themselves are thread-safe, but
 * one loop is enough for a reference service and keeps it simple.
 */
#ifndef SERVICES_SUBSTRATE_H
#define SERVICES_SUBSTRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "engines/proto/proto.h"
#include "services/durable/wal.h"
#include "services/fault.h"

#define SVC_MAX_FRAME_BYTES 1048576 /* default: announced in HELLO and enforced */
#define SVC_MIN_FRAME_BYTES 16384   /* smallest --max-frame */
#define SVC_MAX_INFLIGHT    64      /* requests in flight per connection */
#define SVC_LISTEN_MAX      4
/* Bytes queued for writing on a connection before we stop reading it: a
 * client that sends without reading stops being read (no unbounded queue). */
#define SVC_WRITE_HIGH_BYTES (8u << 20)
#define SVC_WRITE_LOW_BYTES  (1u << 20)
/* Largest body a request stream may assemble (storage PUT of a big object):
 * the storage engine's default object cap; index and mailbox bodies must
 * fit one frame anyway. */
#define SVC_UPLOAD_MAX_BYTES (64u << 20)

/* Metric label tables: fixed, so a peer cannot grow the label set. */
#define SVC_OPS(X)                                                                                 \
    X(HELLO, "hello")                                                                              \
    X(GET, "get")                                                                                  \
    X(HAS, "has")                                                                                  \
    X(PROOF, "proof")                                                                              \
    X(OUTBOARD, "outboard")                                                                        \
    X(PUT, "put")                                                                                  \
    X(RESOLVE, "resolve")                                                                          \
    X(SEARCH, "search")                                                                            \
    X(SEND, "send")                                                                                \
    X(RECV, "recv")                                                                                \
    X(PEEK, "peek")                                                                                \
    X(ACK, "ack")                                                                                  \
    X(NACK, "nack")                                                                                \
    X(LEASE, "lease")                                                                              \
    X(DEAD, "dead")                                                                                \
    X(REDRIVE, "redrive")                                                                          \
    X(STATS, "stats")                                                                              \
    X(INVALID, "invalid")
enum svc_op {
#define SVC_OP_ENUM(e, s) SVC_OP_##e,
    SVC_OPS(SVC_OP_ENUM)
#undef SVC_OP_ENUM
        SVC_OP__N
};
#define SVC_CODES_N 14 /* 13 known codes + "other" */

struct svc {
    uv_loop_t *loop;
    const char *role;
    uint16_t app; /* OAP_APP_* of the role */
    struct engines eng;
    /* The log of a mailbox or index that keeps its state on disk
     * (--data-dir DIR --no-amnesia); NULL: RAM only (storage keeps its own
     * files). */
    struct wal *wal;
    bool amnesia;       /* nothing is written to disk */
    uint32_t max_frame; /* announced in HELLO and enforced (--max-frame) */
    struct fault_cfg fault;
    uint64_t rng;
    bool ready;
    bool stopping;

    /* Metrics (loop thread only). */
    uint64_t requests[SVC_OP__N][SVC_CODES_N];
    uint64_t faults[FAULT__N];
    uint64_t frame_errors; /* connections closed on a bad frame */
    uint64_t inflight;     /* requests received and not yet fully answered */
    uint64_t conns;        /* open OAP connections */
    uint64_t conns_total;
    uint64_t streams; /* response streams started */
    uint64_t bytes_in, bytes_out;
};

extern struct svc g_svc;

/* substrate.c */
double svc_rand01(void);
uint32_t svc_rand_below(uint32_t n); /* 0..n-1; 0 when n == 0 */
enum svc_op svc_op_of(const char *name);
void svc_count(enum svc_op op, int code);
const char *svc_op_name(enum svc_op op);
int svc_code_at(int i); /* code of label slot i; 0 = "other" */

/* Listen on addr ("HOST:PORT", "oap://HOST:PORT" or "unix:/path", the one
 * OAP/1 address syntax of oapnet/addr.h) with on_conn. Returns 0 or a
 * negative libuv error (logged). */
int svc_listen(const char *addr, uv_connection_cb on_conn, uv_handle_t **out);
void svc_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* oapsrv.c: accept callback of the OAP listeners; closes every connection
 * on shutdown. Fault injection: fault.h. */
void oapsrv_on_conn(uv_stream_t *server, int status);
void oapsrv_close_all(void);

/* admin.c */
void admin_on_conn(uv_stream_t *server, int status);
void admin_close_all(void);

#endif
