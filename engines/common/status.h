/*
 * engines/common/status.h — the one status vocabulary of the engines
 * (STYLE §6).
 *
 * Every engine function that can fail returns an int: ENG_OK (0) on success
 * or one negative value below. One X-macro row gives each status its enum
 * value, its name, its JSON `error` code (DESIGN §4, also the metric `reason`
 * label) and the HTTP-like status a transport answers with (DESIGN §5: the
 * OAP/1 `code` field and the HTTP routes use the same numbers).
 */
#ifndef ENGINES_COMMON_STATUS_H
#define ENGINES_COMMON_STATUS_H

/*  X(enum name,     value, json code,               http) */
#define ENG_STATUS_MAP(X)                                                                          \
    X(ENG_OK, 0, "ok", 200)                                                                        \
    X(ENG_E_INVALID, -1, "bad_request", 400)         /* malformed name, key, JSON, args */         \
    X(ENG_E_NOT_FOUND, -2, "not_found", 404)         /* no such object, name, channel */           \
    X(ENG_E_MISMATCH, -3, "mismatch", 400)           /* bytes do not hash to expected addr */      \
    X(ENG_E_RANGE, -4, "range_not_satisfiable", 416) /* byte range starts past the end */          \
    X(ENG_E_TOO_LARGE, -5, "too_large", 413)         /* object/manifest/message over cap */        \
    X(ENG_E_FULL, -6, "full", 507)                   /* memory cap, name or channel count */       \
    X(ENG_E_BUSY, -7, "busy", 429)                   /* channel depth, idempotency table */        \
    X(ENG_E_IO, -8, "io", 500)                       /* a syscall on the data dir failed */        \
    X(ENG_E_CORRUPT, -9, "corrupt", 500)             /* stored bytes fail verification */          \
    X(ENG_E_NOMEM, -10, "internal", 500)             /* an allocation failed */                    \
    X(ENG_E_CONFLICT, -11, "conflict", 409)          /* idempotency key reused for another body */

enum eng_status {
#define ENG_STATUS_ENUM(name, value, code, http) name = value,
    ENG_STATUS_MAP(ENG_STATUS_ENUM)
#undef ENG_STATUS_ENUM
};

/* The enum's own name ("ENG_E_NOT_FOUND"); "ENG_E_UNKNOWN" for a value that
 * is not in the table. Never NULL; the string is static. */
const char *eng_status_name(int st);

/* The JSON error code / metric reason ("not_found"); "internal" for a value
 * not in the table. Never NULL; the string is static. */
const char *eng_status_code(int st);

/* The HTTP-like status (200, 400, 404, 409, 413, 416, 429, 500, 507); 500 for a
 * value not in the table. */
int eng_status_http(int st);

#endif
