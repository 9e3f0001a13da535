/*
 * query.c — query string parameters.
 */
#include "http/query.h"
#include "core/hex.h"

#include <string.h>

static int decode(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            if (i + 2 >= n)
                return -2;
            int hi = hex_digit(p[i + 1]), lo = hex_digit(p[i + 2]);
            if (hi < 0 || lo < 0)
                return -2;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (ch == '\0' || o + 1 >= cap)
            return -2;
        out[o++] = ch;
    }
    out[o] = '\0';
    return (int)o;
}

int query_get(struct slice q, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = q.p, *end = q.p + q.n;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - p) == nl && memcmp(p, name, nl) == 0) {
            const char *v = eq ? eq + 1 : stop;
            return decode(v, (size_t)(stop - v), out, cap);
        }
        p = amp ? amp + 1 : NULL;
    }
    return -1;
}

int query_next(struct slice *q, struct slice *key, struct slice *value)
{
    while (q->n > 0) {
        const char *amp = memchr(q->p, '&', q->n);
        size_t len = amp ? (size_t)(amp - q->p) : q->n;
        struct slice pair = {q->p, len};
        q->p += amp ? len + 1 : len;
        q->n -= amp ? len + 1 : len;
        if (len == 0)
            continue;
        const char *eq = memchr(pair.p, '=', pair.n);
        if (eq == NULL) {
            *key = pair;
            return -1;
        }
        *key = (struct slice){pair.p, (size_t)(eq - pair.p)};
        *value = (struct slice){eq + 1, pair.n - key->n - 1};
        return 1;
    }
    return 0;
}

int query_decode(struct slice raw, char *out, size_t cap)
{
    return decode(raw.p, raw.n, out, cap);
}

int query_get_uint(struct slice q, const char *name, uint64_t min, uint64_t max, uint64_t def,
                   uint64_t *out)
{
    char v[24];
    int n = query_get(q, name, v, sizeof(v));
    if (n == -1) {
        *out = def;
        return 0;
    }
    if (n <= 0 || n > 18)
        return -1;
    uint64_t x = 0;
    for (int i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x < min || x > max)
        return -1;
    *out = x;
    return 0;
}
