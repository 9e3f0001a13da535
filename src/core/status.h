/*
 * status.h — the one error vocabulary of omnigate (STYLE §6).
 *
 * Each row gives an error its enum value, HTTP status, JSON `error` code (also
 * the `reason` label of rejected_total) and a default human reason. Names
 * cannot drift between the response body, the log line and the metric.
 */
#ifndef CORE_STATUS_H
#define CORE_STATUS_H

#define OG_ERRORS(X)                                                                               \
    X(BAD_REQUEST, 400, "bad_request", "malformed request")                                        \
    X(UNAUTH, 401, "unauth", "missing or invalid capability")                                      \
    X(FORBIDDEN, 403, "forbidden", "capability does not allow this request")                       \
    X(NOT_FOUND, 404, "not_found", "no such resource")                                             \
    X(METHOD, 405, "method_not_allowed", "method not allowed on this route")                       \
    X(CONFLICT, 409, "conflict", "idempotency key already used for another body")                  \
    X(TIMEOUT, 408, "timeout", "client too slow")                                                  \
    X(BODY_CAP, 413, "body_cap", "request body over the cap")                                      \
    X(DECOMPRESS_CAP, 413, "decompress_cap", "inflated body over the cap")                         \
    X(RATIO_CAP, 413, "ratio_cap", "compression ratio over the cap")                               \
    X(UNSUPPORTED_MEDIA, 415, "unsupported_media_type", "unsupported content type")                \
    X(RANGE, 416, "range_not_satisfiable", "range not satisfiable")                                \
    X(QUOTA, 429, "quota", "rate limit exceeded")                                                  \
    X(CHANNEL_FULL, 429, "channel_full", "channel at its depth cap")                               \
    X(HEADER_TOO_LARGE, 431, "header_too_large", "request header block over the cap")              \
    X(INTERNAL, 500, "internal", "internal error")                                                 \
    X(NOT_IMPLEMENTED, 501, "not_implemented", "not implemented")                                  \
    X(BAD_GATEWAY, 502, "bad_gateway", "bad answer from a downstream")                             \
    X(BUSY, 503, "busy", "too many requests in flight")                                            \
    X(DEGRADED, 503, "degraded", "service degraded")                                               \
    X(STORAGE_FULL, 507, "storage_full", "storage is full")                                        \
    X(DOWNSTREAM_TIMEOUT, 504, "downstream_timeout", "deadline exceeded")

enum og_err {
#define X(name, http, code, reason) OG_E_##name,
    OG_ERRORS(X)
#undef X
        OG_E__COUNT
};

/* HTTP status of an error. */
int og_err_http(enum og_err e);
/* JSON `error` code and metric reason label, e.g. "body_cap". */
const char *og_err_code(enum og_err e);
/* Default human-readable reason. */
const char *og_err_reason(enum og_err e);
struct jw;
/* The members of a JSON error body, into an open object: "error" (the code)
 * and, unless reason is NULL, "reason". One shape for every error answer
 * (omnigate's and the reference services' admin port). */
void og_err_json(struct jw *j, enum og_err e, const char *reason);

/* Reason phrase for an HTTP status code ("Not Found"); "Unknown" if none. */
const char *http_status_text(int status);

#endif
