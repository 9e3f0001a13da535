/*
 * range.c — single byte ranges (RFC 9110 §14) and ETag matching for
 * If-None-Match / If-Range (§13.1.2, §13.1.5).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "http/range.h"

#define ETAG     "\"b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262\""
#define ETAG_LEN (sizeof(ETAG) - 1)

/* first/last are poisoned before each call so a result that is not RANGE_OK
 * cannot pass a check by leaving an earlier value behind. */
static uint64_t F, L;

static enum range_kind parse(const char *v, uint64_t size)
{
    F = L = 0xdeadbeefdeadbeefull;
    return range_parse((struct slice){v, strlen(v)}, size, &F, &L);
}

#define assert_range(v, size, f, l)                                                                \
    do {                                                                                           \
        cr_assert_eq(parse(v, size), RANGE_OK, "%s on %llu: not OK", v, (unsigned long long)size); \
        cr_assert_eq(F, (uint64_t)(f), "%s: first %llu", v, (unsigned long long)F);                \
        cr_assert_eq(L, (uint64_t)(l), "%s: last %llu", v, (unsigned long long)L);                 \
    } while (0)

#define assert_kind(v, size, k)                                                                    \
    cr_assert_eq(parse(v, size), k, "%s on %llu: kind %d, wanted %d", v, (unsigned long long)size, \
                 (int)parse(v, size), (int)(k))

static bool inm(const char *v)
{
    return etag_list_matches((struct slice){v, strlen(v)}, ETAG, ETAG_LEN);
}

static bool ifr(const char *v)
{
    return if_range_matches((struct slice){v, strlen(v)}, ETAG, ETAG_LEN);
}

/* ---- range_parse -------------------------------------------------------- */

Test(range, first_last_form)
{
    assert_range("bytes=0-0", 1000, 0, 0);
    assert_range("bytes=0-99", 1000, 0, 99);
    assert_range("bytes=100-199", 1000, 100, 199);
    assert_range("bytes=0-999", 1000, 0, 999);
    assert_range("bytes=999-999", 1000, 999, 999); /* the last byte */
    assert_range("bytes=5-5", 6, 5, 5);
}

Test(range, last_pos_past_the_end_is_clamped)
{
    assert_range("bytes=0-1000", 1000, 0, 999);
    assert_range("bytes=500-5000000", 1000, 500, 999);
    assert_range("bytes=999-1000", 1000, 999, 999);
    assert_range("bytes=0-0", 1, 0, 0);
    assert_range("bytes=0-5", 1, 0, 0);
}

Test(range, open_ended_form)
{
    assert_range("bytes=0-", 1000, 0, 999);
    assert_range("bytes=10-", 1000, 10, 999);
    assert_range("bytes=999-", 1000, 999, 999);
    assert_range("bytes=0-", 1, 0, 0);
}

Test(range, suffix_form)
{
    assert_range("bytes=-1", 1000, 999, 999);
    assert_range("bytes=-100", 1000, 900, 999);
    assert_range("bytes=-1000", 1000, 0, 999);
    /* A suffix longer than the object selects all of it (§14.1.3). */
    assert_range("bytes=-1001", 1000, 0, 999);
    assert_range("bytes=-99999999", 3, 0, 2);
    assert_range("bytes=-1", 1, 0, 0);
}

Test(range, first_pos_at_or_past_the_end_is_unsatisfiable)
{
    assert_kind("bytes=1000-", 1000, RANGE_UNSAT);
    assert_kind("bytes=1000-1000", 1000, RANGE_UNSAT);
    assert_kind("bytes=1001-2000", 1000, RANGE_UNSAT);
    assert_kind("bytes=4294967296-", 1000, RANGE_UNSAT);
    assert_kind("bytes=1-1", 1, RANGE_UNSAT);
}

Test(range, zero_suffix_and_empty_object)
{
    assert_kind("bytes=-0", 1000, RANGE_UNSAT); /* selects nothing */
    assert_kind("bytes=-0", 0, RANGE_UNSAT);
    /* A zero-length object has no satisfiable range at all. */
    assert_kind("bytes=0-0", 0, RANGE_UNSAT);
    assert_kind("bytes=0-", 0, RANGE_UNSAT);
    assert_kind("bytes=-1", 0, RANGE_UNSAT);
    assert_kind("bytes=-100", 0, RANGE_UNSAT);
}

Test(range, last_before_first_is_ignored)
{
    /* Invalid syntax (§14.1.1): the header is ignored → whole object. */
    assert_kind("bytes=5-4", 1000, RANGE_NONE);
    assert_kind("bytes=999-0", 1000, RANGE_NONE);
    assert_kind("bytes=2000-1000", 1000, RANGE_NONE);
}

Test(range, very_large_positions)
{
    /* Within uint64_t. */
    assert_range("bytes=0-18446744073709551614", 1000, 0, 999);
    assert_kind("bytes=18446744073709551614-", 1000, RANGE_UNSAT);
    assert_range("bytes=-18446744073709551614", 1000, 0, 999);
    /* Digits beyond uint64_t are still valid syntax (the grammar has no
     * bound): they must not wrap to a small number. A last-pos that large
     * means "to the end", a first-pos that large is past any object, a
     * suffix that large is the whole object. */
    assert_range("bytes=0-18446744073709551616", 1000, 0, 999);
    assert_range("bytes=0-99999999999999999999999999999", 1000, 0, 999);
    assert_range("bytes=10-18446744073709551615", 1000, 10, 999);
    assert_kind("bytes=18446744073709551616-", 1000, RANGE_UNSAT);
    assert_kind("bytes=99999999999999999999999999999-99999999999999999999999999999", 1000,
                RANGE_UNSAT);
    assert_range("bytes=-99999999999999999999999999999", 1000, 0, 999);
    /* Wrapping would have turned 2^64 + 5 into 5: never a small range. */
    enum range_kind k = parse("bytes=18446744073709551621-18446744073709551625", 1000);
    cr_assert(k == RANGE_UNSAT || k == RANGE_NONE);
    cr_assert_neq(F, 5);
}

Test(range, unit_is_case_insensitive_and_other_units_are_ignored)
{
    assert_range("Bytes=0-9", 100, 0, 9);
    assert_range("BYTES=0-9", 100, 0, 9);
    assert_kind("items=0-9", 100, RANGE_NONE);
    assert_kind("bits=0-9", 100, RANGE_NONE);
    assert_kind("byte=0-9", 100, RANGE_NONE);
    assert_kind("bytesx=0-9", 100, RANGE_NONE);
    assert_kind("bytes0-9", 100, RANGE_NONE);
    assert_kind("bytes", 100, RANGE_NONE);
    assert_kind("bytes=", 100, RANGE_NONE);
    assert_kind("", 100, RANGE_NONE);
}

Test(range, whitespace)
{
    assert_range(" bytes=0-9", 100, 0, 9);
    assert_range("\tbytes=0-9", 100, 0, 9);
    assert_range("bytes=0-9 ", 100, 0, 9);
    assert_range("bytes= 0-9", 100, 0, 9);
    /* Whitespace inside a range-spec is not in the grammar. */
    assert_kind("bytes=0 -9", 100, RANGE_NONE);
    assert_kind("bytes=0- 9", 100, RANGE_NONE);
    assert_kind("bytes =0-9", 100, RANGE_NONE);
}

Test(range, multiple_ranges_are_counted_never_resolved)
{
    assert_kind("bytes=0-0,1-1", 100, RANGE_MULTI);
    assert_kind("bytes=0-9, 20-29", 100, RANGE_MULTI);
    assert_kind("bytes=0-9 , 20-29", 100, RANGE_MULTI);
    assert_kind("bytes=-1,0-0", 100, RANGE_MULTI);
    assert_kind("bytes=0-,0-,0-,0-,0-,0-,0-,0-", 100, RANGE_MULTI);
    /* Even when every part lies past the end: still the whole object. */
    assert_kind("bytes=500-600,700-800", 100, RANGE_MULTI);
    /* Resolution must not touch the outputs. */
    cr_assert_eq(F, 0xdeadbeefdeadbeefull);
    cr_assert_eq(L, 0xdeadbeefdeadbeefull);

    /* A long list (an amplification attempt) is still one answer. */
    char big[8192] = "bytes=";
    for (int i = 0; i < 1000; i++)
        strcat(big, i ? ",0-0" : "0-0");
    assert_kind(big, 100, RANGE_MULTI);
}

Test(range, garbage_is_ignored)
{
    assert_kind("bytes=abc", 100, RANGE_NONE);
    assert_kind("bytes=-", 100, RANGE_NONE);
    assert_kind("bytes=--5", 100, RANGE_NONE);
    assert_kind("bytes=0-9-", 100, RANGE_NONE);
    assert_kind("bytes=0-9x", 100, RANGE_NONE);
    assert_kind("bytes=x0-9", 100, RANGE_NONE);
    assert_kind("bytes=0x10-0x20", 100, RANGE_NONE);
    assert_kind("bytes=+1-2", 100, RANGE_NONE);
    assert_kind("bytes=1.5-2", 100, RANGE_NONE);
    assert_kind("bytes=0-9;q=1", 100, RANGE_NONE);
    assert_kind("bytes=5", 100, RANGE_NONE);
    assert_kind("bytes=0-9,abc", 100, RANGE_NONE);
    assert_kind("bytes=0-9,1-2;x", 100, RANGE_NONE);
    assert_kind("bytes=,", 100, RANGE_NONE);
    assert_kind("0-9", 100, RANGE_NONE);
    /* Not NUL-terminated: the parser must read only v.n bytes. */
    const char buf[] = {'b', 'y', 't', 'e', 's', '=', '1', '-', '2', '3'};
    uint64_t f = 7, l = 7;
    cr_assert_eq(range_parse((struct slice){buf, 9}, 100, &f, &l), RANGE_OK);
    cr_assert_eq(f, 1);
    cr_assert_eq(l, 2);
}

/* ---- If-None-Match ------------------------------------------------------ */

Test(range, if_none_match_single_and_star)
{
    cr_assert(inm(ETAG));
    cr_assert(inm(" " ETAG));
    cr_assert(inm("*"));
    cr_assert_not(inm("\"*\""));
    cr_assert_not(inm("\"b3:0000000000000000000000000000000000000000000000000000000000000000\""));
    cr_assert_not(inm(""));
    /* Unquoted, or a prefix / extension of the tag: no match. */
    cr_assert_not(inm("b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"));
    cr_assert_not(inm("\"b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f326\""));
    cr_assert_not(inm("\"b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f32620\""));
    cr_assert_not(inm("\"B3:AF1349B9F5F9A1A6A0404DEA36DCC9499BCB25C9ADC112B7CC9A93CAE41F3262\""));
    /* Unterminated quote. */
    cr_assert_not(inm("\"b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"));
}

Test(range, if_none_match_weak_comparison)
{
    /* §13.1.2: If-None-Match compares weakly, W/ is ignored. */
    cr_assert(inm("W/" ETAG));
    cr_assert(inm("\"x\", W/" ETAG));
    cr_assert_not(inm("w/" ETAG)); /* the weak prefix is case-sensitive W/ */
}

Test(range, if_none_match_lists)
{
    cr_assert(inm("\"a\", " ETAG));
    cr_assert(inm("\"a\"," ETAG));
    cr_assert(inm("\"a\",\t" ETAG ", \"b\""));
    cr_assert(inm(ETAG ", \"a\""));
    cr_assert(inm("\"a\", , " ETAG)); /* empty list element */
    cr_assert(inm("\"with,comma\", " ETAG));
    cr_assert(inm("garbage, " ETAG));
    cr_assert_not(inm("\"a\", \"b\", W/\"c\""));
    cr_assert_not(inm("\"a\", *")); /* "*" is only valid alone */
    cr_assert_not(inm("\"a\", "));
}

/* ---- If-Range ----------------------------------------------------------- */

Test(range, if_range_strong_etag_only)
{
    cr_assert(ifr(ETAG));
    cr_assert(ifr(" " ETAG " "));
    /* §13.1.5: a weak validator never matches If-Range. */
    cr_assert_not(ifr("W/" ETAG));
    cr_assert_not(ifr("\"b3:0000000000000000000000000000000000000000000000000000000000000000\""));
    cr_assert_not(ifr("*"));
    /* If-Range takes one validator, not a list. */
    cr_assert_not(ifr(ETAG ", \"a\""));
    cr_assert_not(ifr("\"a\", " ETAG));
    cr_assert_not(ifr(""));
}

Test(range, if_range_date_never_matches)
{
    /* Objects have no Last-Modified: a date cannot validate anything. */
    cr_assert_not(ifr("Wed, 21 Oct 2015 07:28:00 GMT"));
    cr_assert_not(ifr("Thu, 01 Jan 1970 00:00:00 GMT"));
    cr_assert_not(ifr("Fri, 31 Dec 9999 23:59:59 GMT"));
}

Test(range, cache_control_no_cache)
{
    static const struct {
        const char *v;
        bool want;
    } cases[] = {
        {"no-cache", true},
        {"No-Cache", true},
        {"max-age=0, no-cache", true},
        {"  no-cache  ,private", true},
        {"no-cache=\"set-cookie\"", true},
        {"private=\"a, no-cache\", max-age=5", false},
        {"no-cache-please", false},
        {"no-store", false},
        {"", false},
        {",,,", false},
        {"x=\"\\\"no-cache", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(cache_control_no_cache((struct slice){cases[i].v, strlen(cases[i].v)}),
                     cases[i].want, "%s", cases[i].v);
}
