/*
 * jw.h — a small JSON writer that appends straight into a struct buf.
 *
 * Hot-path JSON output is written directly, never through a DOM (DESIGN §12).
 * Errors are sticky: after an allocation failure every call is a no-op and
 * jw_failed() says so, so callers check once at the end.
 */
#ifndef CORE_JW_H
#define CORE_JW_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

struct jw {
    struct buf *b;
    bool failed;
    bool need_comma; /* a value was written at the current nesting level */
};

void jw_init(struct jw *w, struct buf *b);
static inline bool jw_failed(const struct jw *w)
{
    return w->failed;
}

void jw_obj_open(struct jw *w);
void jw_obj_close(struct jw *w);
void jw_arr_open(struct jw *w);
void jw_arr_close(struct jw *w);
/* Object key; the next call writes its value. */
void jw_key(struct jw *w, const char *k);
void jw_str(struct jw *w, const char *s);
void jw_strn(struct jw *w, const char *s, size_t n);
void jw_int(struct jw *w, int64_t v);
void jw_uint(struct jw *w, uint64_t v);
void jw_double(struct jw *w, double v, int decimals);
/* v with exactly three decimals ("1.250"), without printf. */
void jw_fixed3(struct jw *w, double v);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
/* Already-serialised JSON, appended verbatim (caller guarantees validity). */
void jw_raw(struct jw *w, const char *s, size_t n);

/* Append JSON-escaped bytes without quotes (control chars as \u00XX,
 * invalid UTF-8 bytes replaced by U+FFFD so output is always valid JSON). */
void jw_escape(struct jw *w, const char *s, size_t n);

#endif
