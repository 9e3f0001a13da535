/*
 * status.c — tables behind status.h.
 */
#include "core/status.h"

#include "core/jw.h"

static const struct {
    short http;
    const char *code, *reason;
} ERRS[] = {
#define X(name, http, code, reason) {http, code, reason},
    OG_ERRORS(X)
#undef X
};

int og_err_http(enum og_err e)
{
    return e < OG_E__COUNT ? ERRS[e].http : 500;
}

const char *og_err_code(enum og_err e)
{
    return e < OG_E__COUNT ? ERRS[e].code : "internal";
}

const char *og_err_reason(enum og_err e)
{
    return e < OG_E__COUNT ? ERRS[e].reason : "internal error";
}

void og_err_json(struct jw *j, enum og_err e, const char *reason)
{
    jw_key(j, "error");
    jw_str(j, og_err_code(e));
    if (reason) {
        jw_key(j, "reason");
        jw_str(j, reason);
    }
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
