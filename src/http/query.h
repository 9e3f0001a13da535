/*
 * query.h — application/x-www-form-urlencoded query parameters.
 */
#ifndef HTTP_QUERY_H
#define HTTP_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Find parameter `name` in query q and percent-decode its value into out
 * (cap bytes, NUL-terminated). Returns the decoded length, -1 if absent,
 * -2 if malformed (bad %XX, NUL byte) or longer than cap - 1. */
int query_get(struct slice q, const char *name, char *out, size_t cap);

/* Iterate over the "key=value" pairs of q: the next pair from *q into *key
 * and *value (raw, still percent-encoded) and advance *q past it; empty pairs
 * ("a=1&&b=2") are skipped. Returns 1 for a pair, 0 at the end, -1 for a
 * pair without '=' (*key then holds it). */
int query_next(struct slice *q, struct slice *key, struct slice *value);

/* Percent-decode one raw key or value into out (cap bytes, NUL-terminated);
 * '+' is a space. Returns the decoded length, or -2 if malformed (bad %XX,
 * NUL byte) or longer than cap - 1. */
int query_decode(struct slice raw, char *out, size_t cap);

/* An unsigned integer parameter in [min, max]; absent gives def. Returns 0,
 * or -1 when present but not a number in range. */
int query_get_uint(struct slice q, const char *name, uint64_t min, uint64_t max, uint64_t def,
                   uint64_t *out);

#endif
