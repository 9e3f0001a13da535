/*
 * range.h — single byte ranges and conditionals for immutable objects
 * (RFC 9110 §13–14). Pure functions.
 */
#ifndef HTTP_RANGE_H
#define HTTP_RANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

enum range_kind {
    RANGE_NONE,  /* no Range, or one we must ignore (bad syntax, other unit) */
    RANGE_MULTI, /* more than one range: we answer the whole object (200) */
    RANGE_OK,    /* one satisfiable range [first, last] */
    RANGE_UNSAT, /* one syntactically valid range that selects nothing: 416 */
};

/* Resolve a Range header value against an object of `size` bytes. Invalid
 * syntax is ignored, as RFC 9110 §14.2 allows; a list of ranges is never
 * expanded (no amplification): it is counted, not resolved. */
enum range_kind range_parse(struct slice v, uint64_t size, uint64_t *first, uint64_t *last);

/* Whether an If-None-Match / If-Range value names the strong ETag etag
 * (the quoted "b3:<hex>"). If-None-Match accepts a list and "*"; If-Range
 * must be a single strong ETag (a date never matches: RFC 9110 §13.1.5). */
bool etag_list_matches(struct slice v, const char *etag, size_t etag_len);
bool if_range_matches(struct slice v, const char *etag, size_t etag_len);

/* Whether a Cache-Control value has the no-cache directive (RFC 9111
 * §5.2.1.4: do not answer from a cache without going to the origin). */
bool cache_control_no_cache(struct slice v);

#endif
