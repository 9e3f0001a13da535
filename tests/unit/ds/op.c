/*
 * Typed downstream requests (src/ds/op.c): the exact header on the wire for
 * every op, the op label and flags around it, and the size bound with every
 * byte escaped.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ds/op.h"

#define OBJ "b3:1e39041ddf1a4ceb44da9dd4794e47204dfc1b6e0dc03e16d7567769bac25ab6"

static void is(const struct ds_op *op, enum ds_service svc, const char *label, bool read,
               const char *hdr)
{
    cr_assert_eq(op->req.svc, svc, "%s", hdr);
    cr_assert_str_eq(op->req.op, label);
    cr_assert_eq(op->req.idempotent, read, "%s", hdr);
    cr_assert_eq(op->req.hdr_len, strlen(hdr));
    cr_assert_str_eq(op->req.hdr, hdr); /* NUL-terminated too */
    cr_assert_eq(op->req.deadline_ms, 0);
}

Test(ds_op, every_op_on_the_wire)
{
    struct ds_op op;
    struct cas_addr a;
    cr_assert_eq(cas_addr_parse(&a, OBJ, strlen(OBJ)), 0);

    cr_assert_eq(ds_op_resolve(&op, "home:en", 7), 0);
    is(&op, DS_INDEX, "resolve", true, "{\"op\":\"resolve\",\"name\":\"home:en\"}");
    cr_assert_null(op.req.coalesce_key);

    cr_assert_eq(ds_op_search(&op, "ho", 2, 10), 0);
    is(&op, DS_INDEX, "search", true, "{\"op\":\"search\",\"prefix\":\"ho\",\"limit\":10}");

    cr_assert_eq(ds_op_index_put(&op, "home", 4), 0);
    is(&op, DS_INDEX, "put", false, "{\"op\":\"put\",\"name\":\"home\"}");

    cr_assert_eq(ds_op_peek(&op, "news", 4, 5), 0);
    is(&op, DS_MAILBOX, "peek", true, "{\"op\":\"peek\",\"channel\":\"news\",\"max\":5}");

    cr_assert_eq(ds_op_send(&op, "news", "k1"), 0);
    is(&op, DS_MAILBOX, "send", false, "{\"op\":\"send\",\"channel\":\"news\",\"key\":\"k1\"}");

    cr_assert_eq(ds_op_has(&op, &a), 0);
    is(&op, DS_STORAGE, "has", true, "{\"op\":\"has\",\"obj\":\"" OBJ "\"}");
    cr_assert_null(op.req.coalesce_key);

    cr_assert_eq(ds_op_get(&op, &a, false, 7, 9), 0);
    is(&op, DS_STORAGE, "get", true, "{\"op\":\"get\",\"obj\":\"" OBJ "\"}");
    cr_assert_eq(op.req.coalesce_key, op.req.hdr, "identical reads coalesce on the header");
    cr_assert_eq(op.req.coalesce_key_len, op.req.hdr_len);

    cr_assert_eq(ds_op_get(&op, &a, true, 0, 18446744073709551615ull), 0);
    is(&op, DS_STORAGE, "get", true,
       "{\"op\":\"get\",\"obj\":\"" OBJ "\",\"off\":0,\"len\":18446744073709551615}");

    cr_assert_eq(ds_op_put(&op, (struct slice){0}), 0);
    is(&op, DS_STORAGE, "put", false, "{\"op\":\"put\"}");
    cr_assert_eq(ds_op_put(&op, SLICE_LIT(OBJ)), 0);
    is(&op, DS_STORAGE, "put", false, "{\"op\":\"put\",\"expect\":\"" OBJ "\"}");
}

Test(ds_op, strings_are_escaped_and_bounded)
{
    struct ds_op op;
    cr_assert_eq(ds_op_resolve(&op, "a\"b\\c", 5), 0);
    cr_assert_str_eq(op.req.hdr, "{\"op\":\"resolve\",\"name\":\"a\\\"b\\\\c\"}");

    /* The worst case: two strings of the longest length, every byte written
     * as \u00XX. */
    char worst[DS_OP_STR_MAX + 1];
    memset(worst, 0x01, DS_OP_STR_MAX);
    worst[DS_OP_STR_MAX] = '\0';
    cr_assert_eq(ds_op_send(&op, worst, worst), 0);
    cr_assert_eq(op.req.hdr_len,
                 strlen("{\"op\":\"send\",\"channel\":\"\",\"key\":\"\"}") + 2 * 6 * DS_OP_STR_MAX);
    cr_assert_lt(op.req.hdr_len, sizeof(op.hdr));
    cr_assert_eq(ds_op_peek(&op, worst, DS_OP_STR_MAX, 18446744073709551615ull), 0);

    /* Longer strings are refused, not truncated. */
    char over[DS_OP_STR_MAX + 2];
    memset(over, 'a', sizeof(over) - 1);
    over[DS_OP_STR_MAX + 1] = '\0';
    cr_assert_eq(ds_op_resolve(&op, over, DS_OP_STR_MAX + 1), -1);
    cr_assert_eq(ds_op_search(&op, over, DS_OP_STR_MAX + 1, 1), -1);
    cr_assert_eq(ds_op_peek(&op, over, DS_OP_STR_MAX + 1, 1), -1);
    cr_assert_eq(ds_op_index_put(&op, over, DS_OP_STR_MAX + 1), -1);
    cr_assert_eq(ds_op_send(&op, over, "k"), -1);
    cr_assert_eq(ds_op_send(&op, "c", over), -1);
    cr_assert_eq(ds_op_put(&op, (struct slice){over, DS_OP_STR_MAX + 1}), -1);
}
