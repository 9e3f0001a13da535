/*
 * op-t.h — a typed app-protocol request (types only, STYLE §4).
 *
 * What a request header JSON says (proto.h, docs/OAP.md), as a struct: the
 * op and its fields. The engines' dispatcher executes it (proto_exec);
 * proto_op_parse() makes one from header JSON (the reference services, on
 * the wire); omnigate's typed builders (src/ds/op.h) make one directly, so
 * an in-process call never writes JSON for the dispatcher to parse back.
 * Only a call that leaves the process is written as JSON, by the remote
 * backend.
 *
 * Strings are slices, borrowed from whoever made the op (the parsed JSON
 * document, or the caller of a builder); proto_op_copy() gives an op its
 * own copy. A slice with p == NULL is absent.
 */
#ifndef ENGINES_PROTO_OP_T_H
#define ENGINES_PROTO_OP_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cas/cas.h"

/* The op names of every app, in one list: their order is the order of the
 * downstream `op` metric label (src/ds/stats.c). "put" is storage's or
 * index's by the app id. PROTO_NONE: a header that named no op. */
enum proto_kind {
    PROTO_NONE = 0,
    PROTO_GET,      /* storage */
    PROTO_HAS,      /* storage */
    PROTO_PROOF,    /* storage: the slice proof of a range's groups */
    PROTO_OUTBOARD, /* storage: every group's chaining value */
    PROTO_PUT,      /* storage, index */
    PROTO_RESOLVE,  /* index */
    PROTO_SEARCH,   /* index */
    PROTO_SEND,     /* mailbox */
    PROTO_RECV,     /* mailbox */
    PROTO_PEEK,     /* mailbox */
    PROTO_ACK,      /* mailbox */
    PROTO_NACK,     /* mailbox */
    PROTO_LEASE,    /* mailbox: extend leases */
    PROTO_DEAD,     /* mailbox: read the dead letters */
    PROTO_REDRIVE,  /* mailbox: dead letters back to the live messages */
    PROTO_STATS,    /* mailbox: one channel's counts */
    PROTO__KINDS
};

struct proto_str {
    const char *p; /* NULL: absent */
    size_t n;
};

struct proto_op {
    uint16_t app; /* OAP_APP_STORAGE (1), OAP_APP_INDEX (2), OAP_APP_MAILBOX (3) */
    enum proto_kind kind;
    /* The caller's remaining budget in ms ("deadline_ms"): a request whose
     * deadline has passed when it is served is answered 504, not run. */
    bool has_deadline;
    int64_t deadline_ms;

    /* storage */
    struct cas_addr obj;    /* get, has, proof, outboard */
    bool has_off, has_len;  /* get, proof: a request naming either asks for a range */
    uint64_t off, len;      /* get, proof: 0 ≤ each ≤ INT64_MAX */
    bool has_expect;        /* put: the address the body must hash to */
    struct cas_addr expect; /* put */
    /* index */
    struct proto_str name;   /* resolve, put */
    struct proto_str prefix; /* search */
    uint64_t limit;          /* search: 1..INDEX_SEARCH_MAX */
    /* mailbox */
    struct proto_str channel; /* every mailbox op */
    struct proto_str key;     /* send: idempotency key (absent, or 1..255 bytes) */
    struct proto_str type;    /* send: media type (absent, or 1..127 printable bytes, no " or \) */
    struct proto_str owner;   /* recv, ack, nack, lease: who receives (absent, or 1..255 bytes) */
    uint64_t max;             /* recv, peek, dead, redrive: 1..MAILBOX_BATCH_MAX */
    uint64_t lease_ms;        /* recv: 0 (the channel's default)..MAILBOX_LEASE_MAX_MS;
                                 lease: 1..MAILBOX_LEASE_MAX_MS */
    uint64_t delay_ms;        /* nack: 0..MAILBOX_LEASE_MAX_MS before it is visible again */
    const uint64_t *ids;      /* ack, nack, lease: nids ≤ MAILBOX_BATCH_MAX message ids */
    size_t nids;

    /* Set only by proto_op_parse: the reason a field of the header was
     * refused, answered 400 once the app and op are known to be served
     * here (the order the dispatcher has always checked in). */
    const char *bad;
};

#endif
