/*
 * oap-t.h — OAP/1 wire types, constants and the status table (DESIGN §5).
 *
 * Types only: no prototypes, includes nothing but libc headers, so any
 * header may include it without cycles. The wire format is documented
 * byte by byte in docs/OAP.md.
 */
#ifndef OAP_OAP_T_H
#define OAP_OAP_T_H

#include <stddef.h>
#include <stdint.h>

#define OAP_VERSION         1
#define OAP_HDR_BYTES       38      /* fixed header, before cap and payload */
#define OAP_MAX_FRAME_BYTES 1048576 /* protocol ceiling for `len` (1 MiB) */
#define OAP_TENANT_BYTES    16

/* Header field offsets, used for error positions and by the codec. */
#define OAP_OFF_LEN     0
#define OAP_OFF_VER     4
#define OAP_OFF_FLAGS   6
#define OAP_OFF_CODE    8
#define OAP_OFF_APP     10
#define OAP_OFF_TENANT  12
#define OAP_OFF_CAP_LEN 28
#define OAP_OFF_CORR_ID 30

/* Flags (u16); bits 8..15 are reserved and make a frame invalid. */
#define OAP_FLAG_REQ     (1u << 0)
#define OAP_FLAG_RESP    (1u << 1)
#define OAP_FLAG_EVENT   (1u << 2)
#define OAP_FLAG_START   (1u << 3)
#define OAP_FLAG_END     (1u << 4)
#define OAP_FLAG_ACK_REQ (1u << 5)
#define OAP_FLAG_COMP    (1u << 6)
#define OAP_FLAG_APP_E2E (1u << 7)
#define OAP_FLAGS_KNOWN  0x00ffu

/* App protocol ids (u16 `app_proto_id`); docs/OAP.md "App protocols". */
enum oap_app {
    OAP_APP_HELLO = 0,
    OAP_APP_STORAGE = 1,
    OAP_APP_INDEX = 2,
    OAP_APP_MAILBOX = 3,
};

/*
 * Status table (STYLE §6): 0 is success, OAP_E_AGAIN means "need more input"
 * (or, for a stream producer, "no credit"), every other value is a typed
 * error. X(enum suffix, value, wire/JSON name, description).
 */
#define OAP_STATUS_MAP(X)                                                                          \
    X(AGAIN, -1, "again", "need more input")                                                       \
    X(TRUNCATED, -2, "truncated", "input ended inside a frame")                                    \
    X(TOO_LARGE, -3, "too_large", "frame len exceeds max_frame")                                   \
    X(BAD_LEN, -4, "bad_len", "frame len below the 38-byte header")                                \
    X(BAD_VERSION, -5, "bad_version", "unsupported protocol version")                              \
    X(BAD_FLAGS, -6, "bad_flags", "reserved flag bit set")                                         \
    X(CAP_NOT_START, -7, "cap_not_start", "cap section on a non-START frame")                      \
    X(CAP_LEN, -8, "cap_len", "cap_len does not fit inside len")                                   \
    X(NOMEM, -9, "nomem", "out of memory")                                                         \
    X(BAD_DATA_HDR, -10, "bad_data_hdr", "malformed DATA payload header")                          \
    X(BAD_HELLO, -11, "bad_hello", "malformed HELLO payload")                                      \
    X(DECOMPRESS_CAP, -12, "decompress_cap", "inflated payload exceeds its cap")                   \
    X(DECOMPRESS, -13, "decompress", "corrupt or unsupported zstd payload")                        \
    X(BUF_SMALL, -14, "buf_small", "output buffer too small")                                      \
    X(BAD_ARG, -15, "bad_arg", "invalid argument")                                                 \
    X(BAD_CREDIT, -16, "bad_credit", "malformed or excessive credit grant")                        \
    X(CREDIT, -17, "credit", "peer sent a frame without credit")                                   \
    X(STATE, -18, "state", "call not valid in this state")

enum oap_status {
    OAP_OK = 0,
#define OAP__ENUM(n, v, s, d) OAP_E_##n = (v),
    OAP_STATUS_MAP(OAP__ENUM)
#undef OAP__ENUM
};

/*
 * The fixed header, host order. `len` counts the whole frame (header, cap,
 * payload); `cap_len` counts the cap section.
 */
struct oap_hdr {
    uint32_t len;
    uint16_t ver;
    uint16_t flags;
    uint16_t code;
    uint16_t app_proto_id;
    uint8_t tenant[OAP_TENANT_BYTES];
    uint16_t cap_len;
    uint64_t corr_id;
};

/*
 * A decoded frame, or a frame to encode. `cap` and `payload` are views: the
 * frame owns nothing. From the decoder they point into the caller's input
 * buffer or into the decoder's own buffer (see oap_decoder_feed()).
 */
struct oap_frame {
    struct oap_hdr h;
    const uint8_t *cap; /* h.cap_len bytes, NULL when 0 */
    const uint8_t *payload;
    size_t payload_len;
};

#endif
