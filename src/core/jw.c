/*
 * jw.c — direct JSON output.
 */
#include "core/jw.h"

#include <stdio.h>

#include "core/dec.h"

void jw_init(struct jw *w, struct buf *b)
{
    w->b = b;
    w->failed = false;
    w->need_comma = false;
}

static void put(struct jw *w, const char *s, size_t n)
{
    if (!w->failed && buf_append(w->b, s, n) != 0)
        w->failed = true;
}

static void sep(struct jw *w)
{
    if (w->need_comma)
        put(w, ",", 1);
    w->need_comma = true;
}

void jw_obj_open(struct jw *w)
{
    sep(w);
    put(w, "{", 1);
    w->need_comma = false;
}

void jw_obj_close(struct jw *w)
{
    put(w, "}", 1);
    w->need_comma = true;
}

void jw_arr_open(struct jw *w)
{
    sep(w);
    put(w, "[", 1);
    w->need_comma = false;
}

void jw_arr_close(struct jw *w)
{
    put(w, "]", 1);
    w->need_comma = true;
}

void jw_key(struct jw *w, const char *k)
{
    sep(w);
    put(w, "\"", 1);
    jw_escape(w, k, strlen(k));
    put(w, "\":", 2);
    w->need_comma = false;
}

/* Length of a valid UTF-8 sequence starting at s (max n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        len = 2, min = 0x80;
    else if (c < 0xF0)
        len = 3, min = 0x800;
    else if (c < 0xF5)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    unsigned cp = c & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

void jw_escape(struct jw *w, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++, run++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                i += l, run += l;
                continue;
            }
        }
        put(w, (const char *)p + i - run, run);
        run = 0;
        char esc[8];
        switch (c) {
        case '"': put(w, "\\\"", 2); break;
        case '\\': put(w, "\\\\", 2); break;
        case '\n': put(w, "\\n", 2); break;
        case '\r': put(w, "\\r", 2); break;
        case '\t': put(w, "\\t", 2); break;
        default:
            if (c >= 0x80) {
                put(w, "\\ufffd", 6);
            } else {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                put(w, esc, 6);
            }
        }
        i++;
    }
    put(w, (const char *)p + n - run, run);
}

void jw_strn(struct jw *w, const char *s, size_t n)
{
    sep(w);
    put(w, "\"", 1);
    jw_escape(w, s, n);
    put(w, "\"", 1);
}

void jw_str(struct jw *w, const char *s)
{
    jw_strn(w, s, strlen(s));
}

void jw_int(struct jw *w, int64_t v)
{
    char t[24], *end = t + sizeof(t);
    char *s = dec_u64_back(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, end);
    if (v < 0)
        *--s = '-';
    sep(w);
    put(w, s, (size_t)(end - s));
}

void jw_uint(struct jw *w, uint64_t v)
{
    char t[24], *end = t + sizeof(t);
    char *s = dec_u64_back(v, end);
    sep(w);
    put(w, s, (size_t)(end - s));
}

void jw_fixed3(struct jw *w, double v)
{
    /* Integer formatting: printf's floating-point path costs more than the
     * rest of a small object's serialisation. */
    char t[32], *end = t + sizeof(t);
    bool neg = v < 0;
    char *s = dec_fixed3_back((uint64_t)((neg ? -v : v) * 1000.0 + 0.5), end);
    if (neg)
        *--s = '-';
    sep(w);
    put(w, s, (size_t)(end - s));
}

void jw_double(struct jw *w, double v, int decimals)
{
    char t[48];
    int n = snprintf(t, sizeof(t), "%.*f", decimals, v);
    sep(w);
    put(w, t, (size_t)n);
}

void jw_bool(struct jw *w, bool v)
{
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(struct jw *w)
{
    sep(w);
    put(w, "null", 4);
}

void jw_raw(struct jw *w, const char *s, size_t n)
{
    sep(w);
    put(w, s, n);
}
