/*
 * dec.h — unsigned integers in decimal, without printf.
 *
 * Integers are on every hot path (sizes, ids, timestamps, deadlines) and
 * printf's format interpretation costs more than the rest of a small JSON
 * object. Header-only so the engines can use it without the server core.
 */
#ifndef CORE_DEC_H
#define CORE_DEC_H

#include <stdint.h>
#include <string.h>

#define DEC_U64_MAX_CHARS 20

/* Write v's digits so that they end just before end; returns the first. */
static inline char *dec_u64_back(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* Write v's digits at out (no NUL); returns how many. out holds 20. */
static inline size_t dec_u64(char *out, uint64_t v)
{
    char t[DEC_U64_MAX_CHARS], *s = dec_u64_back(v, t + sizeof(t));
    size_t n = (size_t)(t + sizeof(t) - s);
    memcpy(out, s, n);
    return n;
}

/* thousandths as "I.FFF" (at least one integer digit, exactly three
 * decimals), ending just before end; returns the first character. Timings
 * in milliseconds are written this way. */
static inline char *dec_fixed3_back(uint64_t thousandths, char *end)
{
    for (int d = 0; d < 3; d++, thousandths /= 10)
        *--end = (char)('0' + thousandths % 10);
    *--end = '.';
    return dec_u64_back(thousandths, end);
}

#endif
