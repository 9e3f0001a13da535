/*
 * Query strings (src/http/query.c): walking key=value pairs and decoding
 * them, as the substrate's POST /faults does.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "http/query.h"

static struct slice S(const char *s) {
    return (struct slice){s, strlen(s)};
}

Test(query, next_walks_pairs_and_skips_empty_ones)
{
    struct slice q = S("a=1&&b=x%20y&c=&=v&"), k, v;
    char out[16];
    cr_assert_eq(query_next(&q, &k, &v), 1);
    cr_assert(slice_eq(k, "a", 1) && slice_eq(v, "1", 1));
    cr_assert_eq(query_next(&q, &k, &v), 1);
    cr_assert(slice_eq(k, "b", 1) && slice_eq(v, "x%20y", 5), "raw, still encoded");
    cr_assert_eq(query_decode(v, out, sizeof(out)), 3);
    cr_assert_str_eq(out, "x y");
    cr_assert_eq(query_next(&q, &k, &v), 1);
    cr_assert(slice_eq(k, "c", 1) && v.n == 0);
    cr_assert_eq(query_next(&q, &k, &v), 1);
    cr_assert(k.n == 0 && slice_eq(v, "v", 1));
    cr_assert_eq(query_next(&q, &k, &v), 0);
    cr_assert_eq(query_next(&q, &k, &v), 0, "stays at the end");
}

Test(query, next_reports_a_pair_without_equals)
{
    struct slice q = S("a=1&flag&b=2"), k, v;
    cr_assert_eq(query_next(&q, &k, &v), 1);
    cr_assert_eq(query_next(&q, &k, &v), -1);
    cr_assert(slice_eq(k, "flag", 4));
    cr_assert_eq(query_next(&q, &k, &v), 1, "the caller may go on");
    cr_assert(slice_eq(k, "b", 1) && slice_eq(v, "2", 1));
    struct slice empty = {NULL, 0};
    cr_assert_eq(query_next(&empty, &k, &v), 0);
}

Test(query, decode_refuses_bad_escapes_nul_and_overflow)
{
    char out[4];
    cr_assert_eq(query_decode(S("a+b"), out, sizeof(out)), 3);
    cr_assert_str_eq(out, "a b");
    cr_assert_eq(query_decode(S("%4"), out, sizeof(out)), -2);
    cr_assert_eq(query_decode(S("%zz"), out, sizeof(out)), -2);
    cr_assert_eq(query_decode(S("%00"), out, sizeof(out)), -2);
    cr_assert_eq(query_decode(S("abcd"), out, sizeof(out)), -2, "no room for the NUL");
}
