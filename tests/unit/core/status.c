/*
 * status.c — the error table: each code's HTTP status and JSON code, as the
 * responses, metrics and logs use them.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/status.h"

Test(status, table)
{
    static const struct {
        enum og_err e;
        int http;
        const char *code;
    } rows[] = {
        {OG_E_BAD_REQUEST, 400, "bad_request"},
        {OG_E_NOT_FOUND, 404, "not_found"},
        {OG_E_METHOD, 405, "method_not_allowed"},
        {OG_E_TIMEOUT, 408, "timeout"},
        {OG_E_BODY_CAP, 413, "body_cap"},
        {OG_E_HEADER_TOO_LARGE, 431, "header_too_large"},
        {OG_E_BUSY, 503, "busy"},
        {OG_E_INTERNAL, 500, "internal"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        cr_assert_eq(og_err_http(rows[i].e), rows[i].http);
        cr_assert_str_eq(og_err_code(rows[i].e), rows[i].code);
        cr_assert(strlen(og_err_reason(rows[i].e)) > 0);
    }
    /* codes are unique: they are metric labels */
    for (int a = 0; a < OG_E__COUNT; a++)
        for (int b = a + 1; b < OG_E__COUNT; b++)
            cr_assert_str_neq(og_err_code((enum og_err)a), og_err_code((enum og_err)b));
    cr_assert_eq(og_err_http(OG_E__COUNT), 500);
    cr_assert_str_eq(http_status_text(431), "Request Header Fields Too Large");
    cr_assert_str_eq(http_status_text(599), "Unknown");
}
