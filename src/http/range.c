/*
 * range.c — Range and ETag matching.
 */
#include "http/range.h"

#include <string.h>
#include <strings.h>

static void skip_ows(const char **p, const char *end)
{
    while (*p < end && (**p == ' ' || **p == '\t'))
        (*p)++;
}

/* Digits → value; false on none. The grammar puts no bound on the digits, so
 * a value beyond uint64_t saturates to UINT64_MAX (larger than any object:
 * a last-pos reaches the end, a first-pos is past it) instead of wrapping. */
static bool digits(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        unsigned d = (unsigned)(**p - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
        (*p)++;
    }
    *out = v;
    return *p > s;
}

enum range_kind range_parse(struct slice v, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p = v.p, *end = v.p + v.n;
    skip_ows(&p, end);
    if ((size_t)(end - p) < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return RANGE_NONE;
    p += 6;
    /* Count the list first: more than one spec → whole object, nothing resolved. */
    unsigned specs = 0;
    for (const char *q = p; q < end; q++)
        if (*q == ',')
            specs++;
    skip_ows(&p, end);
    uint64_t a = 0, b = 0;
    bool has_a = digits(&p, end, &a);
    if (p >= end || *p != '-')
        return RANGE_NONE;
    p++;
    bool has_b = digits(&p, end, &b);
    skip_ows(&p, end);
    if (specs > 0) {
        /* Validate the rest loosely: any garbage → ignore the header. */
        for (const char *q = p; q < end; q++)
            if (!strchr("0123456789-, \t", *q))
                return RANGE_NONE;
        return p < end && *p == ',' ? RANGE_MULTI : RANGE_NONE;
    }
    if (p != end || (!has_a && !has_b))
        return RANGE_NONE;
    if (has_a && has_b && b < a)
        return RANGE_NONE; /* invalid: last < first */
    if (!has_a) {          /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return RANGE_UNSAT;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return RANGE_OK;
    }
    if (a >= size)
        return RANGE_UNSAT;
    *first = a;
    *last = has_b && b < size - 1 ? b : size - 1;
    return RANGE_OK;
}

static bool tag_at(const char **p, const char *end, const char *etag, size_t n, bool *weak)
{
    *weak = false;
    if (end - *p >= 2 && (*p)[0] == 'W' && (*p)[1] == '/') {
        *weak = true;
        *p += 2;
    }
    if (*p >= end || **p != '"')
        return false;
    const char *close = memchr(*p + 1, '"', (size_t)(end - *p - 1));
    if (close == NULL)
        return false;
    bool eq = (size_t)(close + 1 - *p) == n && memcmp(*p, etag, n) == 0;
    *p = close + 1;
    return eq;
}

bool etag_list_matches(struct slice v, const char *etag, size_t etag_len)
{
    const char *p = v.p, *end = v.p + v.n;
    skip_ows(&p, end);
    if (end - p == 1 && *p == '*')
        return true;
    while (p < end) {
        bool weak;
        /* If-None-Match uses weak comparison (RFC 9110 §13.1.2). */
        if (tag_at(&p, end, etag, etag_len, &weak))
            return true;
        const char *comma = memchr(p, ',', (size_t)(end - p));
        if (comma == NULL)
            return false;
        p = comma + 1;
        skip_ows(&p, end);
    }
    return false;
}

bool cache_control_no_cache(struct slice v)
{
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        skip_ows(&p, end);
        const char *e = p;
        while (e < end && *e != ',' && *e != '=' && *e != ' ' && *e != '\t')
            e++;
        if (e - p == 8 && strncasecmp(p, "no-cache", 8) == 0)
            return true;
        /* Skip the rest of this directive, a quoted value included. */
        bool quoted = false;
        for (p = e; p < end && (quoted || *p != ','); p++)
            if (*p == '"')
                quoted = !quoted;
            else if (*p == '\\' && quoted && p + 1 < end)
                p++;
        if (p < end)
            p++;
    }
    return false;
}

bool if_range_matches(struct slice v, const char *etag, size_t etag_len)
{
    const char *p = v.p, *end = v.p + v.n;
    skip_ows(&p, end);
    bool weak;
    bool eq = tag_at(&p, end, etag, etag_len, &weak);
    skip_ows(&p, end);
    return eq && !weak && p == end; /* strong comparison only */
}
