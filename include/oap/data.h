/*
 * data.h — OAP/1 DATA payloads: [u16 header_len][header JSON][raw body].
 *
 * header_len is big-endian and counts the JSON bytes only; the JSON must be
 * an object of 2..OAP_DATA_HDR_MAX_BYTES bytes; the body is everything after
 * it (possibly empty). Object bodies carry "obj":"b3:<64 hex>" in the header.
 */
#ifndef OAP_DATA_H
#define OAP_DATA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cas/cas.h"
#include "oap/oap-t.h"

/* Cap on the header JSON: bounds jansson's work per frame. */
#define OAP_DATA_HDR_MAX_BYTES 8192

/* Views into a DATA payload. */
struct oap_data {
    const char *hdr; /* header JSON, hdr_len bytes, not NUL-terminated */
    size_t hdr_len;
    const uint8_t *body;
    size_t body_len;
};

/*
 * Split a payload into header and body without parsing the JSON. Checks
 * 2 ≤ header_len ≤ OAP_DATA_HDR_MAX_BYTES and that it fits in n.
 * Returns 0 or OAP_E_BAD_DATA_HDR.
 */
int oap_data_split(struct oap_data *d, const uint8_t *p, size_t n);

/*
 * Split and parse the header with jansson (JSON_REJECT_DUPLICATES); the
 * header must be a JSON object. On success *hdr holds a new reference the
 * caller json_decref()s. Returns 0 or OAP_E_BAD_DATA_HDR.
 */
int oap_data_parse(struct oap_data *d, const uint8_t *p, size_t n, json_t **hdr);

/*
 * The "obj" member of a parsed header as an address (validated with
 * cas_addr_parse). Returns 1 and fills *out when present and valid, 0 when
 * absent, OAP_E_BAD_DATA_HDR when present but not a valid "b3:<hex>" string.
 */
int oap_data_obj(json_t *hdr, struct cas_addr *out);

/*
 * Fast encoder: write [u16 json_len][json] into out; the body goes after it
 * (or in its own iovec). The JSON is the caller's, written as is; only its
 * length is checked. Returns 2 + json_len, OAP_E_BAD_DATA_HDR when json_len
 * is outside 2..OAP_DATA_HDR_MAX_BYTES, or OAP_E_BUF_SMALL.
 */
ssize_t oap_data_hdr_write(uint8_t *out, size_t cap, const char *json, size_t json_len);

/* Header then body, contiguous. Returns the payload length or an error as
 * oap_data_hdr_write(). */
ssize_t oap_data_encode(uint8_t *out, size_t cap, const char *json, size_t json_len,
                        const void *body, size_t body_len);

#endif
