/*
 * walrec.h — the records of a service's log and snapshots: a pure codec
 * (no I/O, no allocation but the caller's buffer; docs/OPERATIONS.md,
 * "Durability").
 *
 * A file is a sequence of frames, each one record (little-endian):
 *
 *   len  u32   bytes of type + body: 1..WALREC_MAX_BYTES
 *   crc  u32   CRC-32 (zlib's crc32) of the four len bytes, the type and
 *              the body
 *   type u8    enum walrec_type
 *   body       the type's fields, in the order of its layout (walrec.c)
 *
 * Field encodings: u8, u32, u64; seed = 16 raw bytes; str8 = u8 length +
 * bytes; str32 = u32 length + bytes; ids = u16 count + count u64s. A body
 * must hold its type's fields exactly, no byte more.
 *
 * A reader stops at the first frame that does not decode — length out of
 * range, bytes ending early, CRC or layout wrong: that is what a write cut
 * off by a crash leaves at the end of a log (walrec_decode tells the two
 * cases apart only as far as "more bytes might complete it").
 */
#ifndef SERVICES_DURABLE_WALREC_H
#define SERVICES_DURABLE_WALREC_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define WALREC_HEAD_BYTES 9 /* len, crc, type */
/* Largest type + body: a message or manifest (64 KiB by default, at most
 * one OAP/1 frame of 1 MiB) with its names, with room to spare. A length
 * over it is refused before anything is read or allocated for it. */
#define WALREC_MAX_BYTES  (2u << 20)
#define WALREC_IDS_MAX    256 /* ids in one MB_ACK record */
#define WALREC_SEED_BYTES 16
#define WALREC_MAGIC      0x4c57474fu /* "OGWL" little-endian */
#define WALREC_VERSION    1

enum walrec_type {
    WALREC_FILE = 1,       /* first record of every file: what it is */
    WALREC_END = 2,        /* last record of a snapshot: it is whole */
    WALREC_MB_SEND = 3,    /* mailbox: a message (its media type, idempotency key) */
    WALREC_MB_ACK = 4,     /* mailbox: ids acknowledged */
    WALREC_MB_CHANNEL = 5, /* mailbox: a channel's next id */
    WALREC_MB_KEY = 6,     /* mailbox: an idempotency key on its own */
    WALREC_IX_PUT = 7,     /* index: name → manifest */
    WALREC__TYPES
};

/* WALREC_FILE kind */
enum { WALREC_KIND_LOG = 1, WALREC_KIND_SNAPSHOT = 2 };

struct walrec_bytes {
    const uint8_t *p;
    size_t n;
};

/* One record: type and the fields its layout names (the others are
 * ignored by walrec_encode and left as they were by walrec_decode). Byte
 * fields point into the decoded frame, or into the caller's memory when
 * encoding. */
struct walrec {
    enum walrec_type type;
    /* WALREC_FILE */
    uint32_t magic;
    uint8_t version, kind, role; /* role: the OAP/1 app id of the service */
    uint64_t gen;                /* the file's generation */
    uint8_t seed[WALREC_SEED_BYTES];
    /* WALREC_END */
    uint64_t count; /* records of the snapshot between its FILE and END */
    /* mailbox and index */
    struct walrec_bytes name;  /* channel, or index name */
    struct walrec_bytes key;   /* idempotency key (n 0: none) */
    struct walrec_bytes media; /* a message's media type (n 0: none) */
    struct walrec_bytes body;  /* message body, or manifest */
    uint64_t id, sent_ms, next_id, expires_ms, body_hash;
    const uint64_t *ids; /* MB_ACK: nids ids; decoding points it at ids_buf */
    size_t nids;
    uint64_t ids_buf[WALREC_IDS_MAX];
};

enum {
    WALREC_OK = 0,
    WALREC_SHORT = 1, /* the bytes end inside the frame */
    WALREC_BAD = -1,  /* not a frame: length, CRC, type or layout */
};

/* Decode the frame at the start of p[0..n) into *r. Returns WALREC_OK with
 * *used its size; WALREC_SHORT when more bytes would be needed (n 0
 * included); WALREC_BAD. Nothing is read past p[n). */
int walrec_decode(const uint8_t *p, size_t n, struct walrec *r, size_t *used);

/* Append the frame of r to out. Returns 0, or -1 when r does not fit its
 * layout (a str8 over 255 bytes, more than WALREC_IDS_MAX ids, the frame
 * over WALREC_MAX_BYTES) or memory is short; out is then unchanged. */
__attribute__((warn_unused_result)) int walrec_encode(struct buf *out, const struct walrec *r);

#endif
