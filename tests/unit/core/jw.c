/*
 * jw.c — the JSON writer: structure, numbers and escaping. Every output is
 * also checked to be valid JSON by jansson.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "core/dec.h"
#include "core/jw.h"

static char *esc(const char *s, size_t n)
{
    struct buf b = {0};
    struct jw w;
    jw_init(&w, &b);
    jw_strn(&w, s, n);
    cr_assert(!jw_failed(&w));
    cr_assert(buf_append(&b, "", 1) == 0);
    json_error_t e;
    json_t *j = json_loads(b.p, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    cr_assert_not_null(j, "not JSON: %s (%s)", b.p, e.text);
    json_decref(j);
    return b.p;
}

#define ESC(lit, want)                                                                             \
    do {                                                                                           \
        char *got_ = esc((lit), sizeof(lit) - 1);                                                  \
        cr_assert_str_eq(got_, (want));                                                            \
        free(got_);                                                                                \
    } while (0)

Test(jw, escapes_quotes_backslash_and_controls)
{
    ESC("plain", "\"plain\"");
    ESC("a\"b\\c", "\"a\\\"b\\\\c\"");
    ESC("\n\r\t", "\"\\n\\r\\t\"");
    ESC("\x01\x1f\b\f", "\"\\u0001\\u001f\\u0008\\u000c\"");
    ESC("nul\0x", "\"nul\\u0000x\"");
    ESC("\x7f", "\"\x7f\""); /* DEL is legal in JSON strings */
    ESC("", "\"\"");
}

Test(jw, utf8_kept_invalid_replaced)
{
    ESC("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    ESC("\xe2\x82\xac \xf0\x9f\x98\x80", "\"\xe2\x82\xac \xf0\x9f\x98\x80\"");
    ESC("\xff", "\"\\ufffd\"");
    ESC("a\x80z", "\"a\\ufffdz\"");
    ESC("\xc3", "\"\\ufffd\"");                                  /* truncated */
    ESC("\xc3(", "\"\\ufffd(\"");                                /* bad continuation */
    ESC("\xc0\xaf", "\"\\ufffd\\ufffd\"");                       /* overlong */
    ESC("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong, 3 bytes */
    ESC("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate */
    ESC("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
    ESC("\xf5\x80", "\"\\ufffd\\ufffd\"");
}

Test(jw, structure_and_numbers)
{
    struct buf b = {0};
    struct jw w;
    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_key(&w, "a\"k");
    jw_int(&w, -42);
    jw_key(&w, "u");
    jw_uint(&w, UINT64_MAX);
    jw_key(&w, "d");
    jw_double(&w, 1.23456, 3);
    jw_key(&w, "arr");
    jw_arr_open(&w);
    jw_bool(&w, true);
    jw_bool(&w, false);
    jw_null(&w);
    jw_obj_open(&w);
    jw_obj_close(&w);
    jw_raw(&w, "[1]", 3);
    jw_arr_close(&w);
    jw_key(&w, "s");
    jw_str(&w, "x");
    jw_obj_close(&w);
    cr_assert(!jw_failed(&w));
    cr_assert(buf_append(&b, "", 1) == 0);
    cr_assert_str_eq(b.p, "{\"a\\\"k\":-42,\"u\":18446744073709551615,\"d\":1.235,"
                          "\"arr\":[true,false,null,{},[1]],\"s\":\"x\"}");
    buf_release(&b);
}

Test(jw, every_byte_gives_valid_json)
{
    for (int c = 0; c < 256; c++) {
        char s[3] = {'a', (char)c, 'b'};
        free(esc(s, 3));
    }
}

Test(jw, integer_edges)
{
    struct buf b = {0};
    struct jw w;
    jw_init(&w, &b);
    jw_arr_open(&w);
    jw_int(&w, 0);
    jw_int(&w, INT64_MIN);
    jw_int(&w, INT64_MAX);
    jw_uint(&w, 0);
    jw_uint(&w, 10);
    jw_int(&w, -1);
    jw_arr_close(&w);
    cr_assert(buf_append(&b, "", 1) == 0);
    cr_assert_str_eq(b.p, "[0,-9223372036854775808,9223372036854775807,0,10,-1]");
    buf_release(&b);
}

Test(jw, fixed3_edges)
{
    struct buf b = {0};
    struct jw w;
    jw_init(&w, &b);
    jw_arr_open(&w);
    jw_fixed3(&w, 0);
    jw_fixed3(&w, 0.0004);
    jw_fixed3(&w, 0.0005);
    jw_fixed3(&w, 1.25);
    jw_fixed3(&w, -0.5);
    jw_fixed3(&w, 12345.6789);
    jw_arr_close(&w);
    cr_assert(buf_append(&b, "", 1) == 0);
    cr_assert_str_eq(b.p, "[0.000,0.000,0.001,1.250,-0.500,12345.679]");
    buf_release(&b);
    char t[DEC_U64_MAX_CHARS + 2], *end = t + sizeof(t);
    char *s = dec_fixed3_back(UINT64_MAX, end);
    cr_assert_eq(end - s, 21);
    cr_assert(memcmp(s, "18446744073709551.615", 21) == 0);
}
