/*
 * compose.h — the view and feed composers: plan + part results (or feed
 * messages + their objects) → one JSON document, written straight into the
 * response buffer (no DOM for output). No network I/O and no loop:
 * unit-testable with hand-made results. Not pure: verified object renderings
 * and JSON validity are memoised (view/memo.h), and an integrity failure is
 * logged and counted (media/integrity.h).
 */
#ifndef VIEW_COMPOSE_H
#define VIEW_COMPOSE_H

#include <jansson.h>
#include <stdbool.h>

#include "core/jw.h"
#include "core/status.h"
#include "ds/ds.h"
#include "view/messages.h"
#include "view/plan.h"

struct part_result {
    int code;        /* app status of the call, 0 = transport failure */
    enum og_err err; /* transport failure cause */
    const uint8_t *body;
    size_t body_len;
    double ms;
    bool integrity_failed; /* set by the composer */
    /* A ranged object part: body is the whole 64 KiB groups the range
     * touches, and this the storage proof of them (header JSON and body);
     * the composer checks both and narrows body to the asked bytes. */
    int proof_code;        /* the proof call's status (0: transport failure) */
    enum og_err proof_err; /* its transport failure cause */
    const char *proof_hdr;
    size_t proof_hdr_len;
    const uint8_t *proof;
    size_t proof_len;
};

struct compose_out {
    bool complete;        /* every part answered well */
    bool required_failed; /* a required part failed: answer with fail_err */
    enum og_err fail_err;
    const char *fail_key;
};

/* Write the view. The manifest's fields (view_manifest_fields) are copied; each part
 * goes under its key, with "status" or {"error":code}; then "complete" and
 * "timing". Returns 0 or -1 when memory ran out. */
int view_compose(struct jw *w, const char *name, const char *fields, size_t fields_len,
                 const struct view_plan *plan, struct part_result *res, double resolve_ms,
                 double total_ms, uint64_t inline_max, const char *corr_id,
                 struct compose_out *out);

/* The manifest's own fields (all but "parts" and the names the composer
 * writes) as a JSON fragment `,"k":v...` to pass to view_compose. */
int view_manifest_fields(json_t *manifest, struct buf *out);

/* The error code of a failed part ("downstream_timeout", "not_found", ...). */
const char *view_part_error(const struct part_result *r);

/* One message of a feed with the object it names, if any. */
struct feed_entry {
    struct feed_msg msg;    /* points into the feed's records */
    struct view_part part;  /* the named object: address and media type */
    struct part_result res; /* storage's answer for it */
};

/* Write a feed: {"channel", "messages":[each message, with "object" (the
 * part, or {"error":code}) when it names one], "complete", "timing":{peek_ms,
 * total_ms}}. *complete is false when a named object failed. Returns 0 or -1
 * when memory ran out. */
int view_feed_compose(struct jw *w, const char *channel, size_t channel_len, struct feed_entry *e,
                      unsigned n, double peek_ms, double total_ms, uint64_t inline_max,
                      const char *corr_id, bool *complete);

/* One object part (verified, inlined as JSON or base64, or linked). */
void view_object_part(struct jw *w, const struct view_part *p, struct part_result *r,
                      uint64_t inline_max, const char *corr_id);

/* Whether bytes are one JSON value (memoised by content). */
bool view_valid_json(const uint8_t *p, size_t n);

/* Base64 (OpenSSL EVP) of p[0..n) appended as a JSON string. */
void view_jw_base64(struct jw *w, const uint8_t *p, size_t n);

#endif
