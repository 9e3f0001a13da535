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

/* An unsigned integer parameter in [min, max]; absent gives def. Returns 0,
 * or -1 when present but not a number in range. */
int query_get_uint(struct slice q, const char *name, uint64_t min, uint64_t max, uint64_t def,
                   uint64_t *out);

#endif
