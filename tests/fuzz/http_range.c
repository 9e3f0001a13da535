/*
 * http_range.c — libFuzzer target for the header-value parsers of the
 * object routes: Range (range_parse), If-None-Match / If-Range
 * (etag_list_matches / if_range_matches) and query parameters (query_get).
 * Input: byte 0..7 = object size, rest = the header value or query string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/query.h"
#include "http/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t objsize;
    memcpy(&objsize, data, 8);
    objsize %= (1ull << 40);
    /* A private copy, so reads past the value are caught by ASan. */
    size_t n = size - 8;
    char *v = malloc(n ? n : 1);
    if (v == NULL)
        return 0;
    memcpy(v, data + 8, n);
    struct slice s = {v, n};

    uint64_t a = 0, b = 0;
    enum range_kind k = range_parse(s, objsize, &a, &b);
    if (k == RANGE_OK && (a > b || b >= objsize))
        abort(); /* a satisfiable range must lie inside the object */

    static const char ETAG[] =
        "\"b3:0000000000000000000000000000000000000000000000000000000000000000\"";
    (void)etag_list_matches(s, ETAG, sizeof(ETAG) - 1);
    (void)cache_control_no_cache(s);
    (void)if_range_matches(s, ETAG, sizeof(ETAG) - 1);

    char out[64];
    int qn = query_get(s, "q", out, sizeof(out));
    if (qn >= 0 && ((size_t)qn >= sizeof(out) || out[qn] != '\0'))
        abort();
    uint64_t lim;
    if (query_get_uint(s, "limit", 1, 10, 10, &lim) == 0 && (lim < 1 || lim > 10))
        abort();
    free(v);
    return 0;
}
