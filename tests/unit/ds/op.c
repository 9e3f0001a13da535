/*
 * Typed downstream requests (src/ds/op.c): what every builder puts in its
 * ds_req (the typed op, the service, the metric label, the flags), the
 * exact header the writer puts on the wire for each, that the engines'
 * parser reads that header back into the same op, and the size bound with
 * every byte escaped.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ds/op.h"
#include "ds/stats.h"
#include "engines/proto/proto.h"

#define OBJ "b3:1e39041ddf1a4ceb44da9dd4794e47204dfc1b6e0dc03e16d7567769bac25ab6"

static bool same_str(struct proto_str a, struct proto_str b)
{
    return (a.p == NULL) == (b.p == NULL) && a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* The fields of a and b agree (strings by content); bad is never set. */
static void same_op(const struct proto_op *a, const struct proto_op *b, const char *what)
{
    cr_assert_eq(a->app, b->app, "%s", what);
    cr_assert_eq(a->kind, b->kind, "%s", what);
    cr_assert_eq(a->has_deadline, b->has_deadline, "%s", what);
    cr_assert_eq(a->deadline_ms, b->deadline_ms, "%s", what);
    cr_assert_eq(memcmp(&a->obj, &b->obj, sizeof(a->obj)), 0, "%s", what);
    cr_assert_eq(a->has_off, b->has_off, "%s", what);
    cr_assert_eq(a->has_len, b->has_len, "%s", what);
    if (a->has_off)
        cr_assert_eq(a->off, b->off, "%s", what);
    if (a->has_len)
        cr_assert_eq(a->len, b->len, "%s", what);
    cr_assert_eq(a->has_expect, b->has_expect, "%s", what);
    cr_assert_eq(memcmp(&a->expect, &b->expect, sizeof(a->expect)), 0, "%s", what);
    cr_assert(same_str(a->name, b->name), "%s", what);
    cr_assert(same_str(a->prefix, b->prefix), "%s", what);
    cr_assert(same_str(a->channel, b->channel), "%s", what);
    cr_assert(same_str(a->key, b->key), "%s", what);
    cr_assert_eq(a->limit, b->limit, "%s", what);
    cr_assert_eq(a->max, b->max, "%s", what);
    cr_assert_eq(a->lease_ms, b->lease_ms, "%s", what);
    cr_assert_eq(a->nids, b->nids, "%s", what);
    for (size_t i = 0; i < a->nids; i++)
        cr_assert_eq(a->ids[i], b->ids[i], "%s", what);
    cr_assert_null(a->bad, "%s", what);
    cr_assert_null(b->bad, "%s", what);
}

/* r is what a builder makes, the writer puts hdr on the wire for it, and
 * the engines' parser reads hdr back into r's op. */
static void is(const struct ds_req *r, enum ds_service svc, const char *label, bool read,
               const char *hdr)
{
    char out[DS_OP_HDR_MAX];
    struct proto_parsed ps;
    struct proto_resp rs;

    cr_assert_eq(r->svc, svc, "%s", hdr);
    cr_assert_str_eq(proto_kind_name(r->op.kind), label);
    cr_assert_eq(r->idempotent, read, "%s", hdr);
    cr_assert_eq(r->deadline_ms, 0);
    cr_assert_not(r->op.has_deadline);
    cr_assert_eq(ds_op_write(&r->op, NULL, out), (int)strlen(hdr), "%s", out);
    cr_assert_str_eq(out, hdr); /* NUL-terminated too */
    cr_assert_eq(proto_op_parse(&ps, r->op.app, out, strlen(out), &rs), 0, "%s", out);
    same_op(&r->op, &ps.op, hdr);
    proto_parsed_release(&ps);
}

Test(ds_op, every_op_built_written_and_read_back)
{
    struct ds_req r;
    struct cas_addr a;
    cr_assert_eq(cas_addr_parse(&a, OBJ, strlen(OBJ)), 0);

    cr_assert_eq(ds_op_resolve(&r, "home:en", 7), 0);
    is(&r, DS_INDEX, "resolve", true, "{\"op\":\"resolve\",\"name\":\"home:en\"}");
    cr_assert_not(r.coalesce);

    cr_assert_eq(ds_op_search(&r, "ho", 2, 10), 0);
    is(&r, DS_INDEX, "search", true, "{\"op\":\"search\",\"prefix\":\"ho\",\"limit\":10}");
    cr_assert_eq(ds_op_search(&r, "", 0, 1), 0);
    is(&r, DS_INDEX, "search", true, "{\"op\":\"search\",\"prefix\":\"\",\"limit\":1}");

    cr_assert_eq(ds_op_index_put(&r, "home", 4), 0);
    is(&r, DS_INDEX, "put", false, "{\"op\":\"put\",\"name\":\"home\"}");

    cr_assert_eq(ds_op_peek(&r, "news", 4, 5), 0);
    is(&r, DS_MAILBOX, "peek", true, "{\"op\":\"peek\",\"channel\":\"news\",\"max\":5}");

    cr_assert_eq(ds_op_send(&r, "news", "k1"), 0);
    is(&r, DS_MAILBOX, "send", false, "{\"op\":\"send\",\"channel\":\"news\",\"key\":\"k1\"}");
    cr_assert_eq(ds_op_send(&r, "news", NULL), 0);
    is(&r, DS_MAILBOX, "send", false, "{\"op\":\"send\",\"channel\":\"news\"}");

    cr_assert_eq(ds_op_has(&r, &a), 0);
    is(&r, DS_STORAGE, "has", true, "{\"op\":\"has\",\"obj\":\"" OBJ "\"}");
    cr_assert_not(r.coalesce);

    cr_assert_eq(ds_op_get(&r, &a, false, 7, 9), 0);
    is(&r, DS_STORAGE, "get", true, "{\"op\":\"get\",\"obj\":\"" OBJ "\"}");
    cr_assert(r.coalesce, "identical reads coalesce");

    cr_assert_eq(ds_op_get(&r, &a, true, 0, 9223372036854775807ull), 0);
    is(&r, DS_STORAGE, "get", true,
       "{\"op\":\"get\",\"obj\":\"" OBJ "\",\"off\":0,\"len\":9223372036854775807}");

    cr_assert_eq(ds_op_put(&r, NULL), 0);
    is(&r, DS_STORAGE, "put", false, "{\"op\":\"put\"}");
    cr_assert_eq(ds_op_put(&r, &a), 0);
    is(&r, DS_STORAGE, "put", false, "{\"op\":\"put\",\"expect\":\"" OBJ "\"}");
}

/* The ops no builder makes yet (omnigate sends no RECV or ACK) are written
 * and read back all the same, so the writer covers the whole protocol. */
Test(ds_op, recv_and_ack_written_and_read_back)
{
    static const uint64_t ids[] = {1, 2, 18446744073709551615ull};
    struct ds_req r = {
        .svc = DS_MAILBOX,
        .op = {.app = 3, .kind = PROTO_RECV, .channel = {"c", 1}, .max = 3, .lease_ms = 5000}};
    is(&r, DS_MAILBOX, "recv", false,
       "{\"op\":\"recv\",\"channel\":\"c\",\"max\":3,\"lease_ms\":5000}");
    r.op.lease_ms = 0;
    is(&r, DS_MAILBOX, "recv", false, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":3}");
    r.op = (struct proto_op){.app = 3, .kind = PROTO_ACK, .channel = {"c", 1}, .ids = ids};
    is(&r, DS_MAILBOX, "ack", false, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[]}");
    r.op.nids = 3;
    /* Over INT64_MAX an id is not a JSON integer jansson reads: the writer
     * writes it, the parser refuses it (as before this writer existed). */
    char out[DS_OP_HDR_MAX];
    cr_assert_gt(ds_op_write(&r.op, NULL, out), 0);
    cr_assert_str_eq(out, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[1,2,18446744073709551615]}");
    r.op.nids = 2;
    is(&r, DS_MAILBOX, "ack", false, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[1,2]}");
}

Test(ds_op, deadline_and_corr_id_come_first)
{
    struct ds_req r;
    char out[DS_OP_HDR_MAX];
    cr_assert_eq(ds_op_resolve(&r, "a", 1), 0);
    r.op.has_deadline = true;
    r.op.deadline_ms = 25;
    cr_assert_gt(ds_op_write(&r.op, "c-1", out), 0);
    cr_assert_str_eq(out,
                     "{\"deadline_ms\":25,\"corr_id\":\"c-1\",\"op\":\"resolve\",\"name\":\"a\"}");
    r.op.deadline_ms = -3;
    cr_assert_gt(ds_op_write(&r.op, "", out), 0);
    cr_assert_str_eq(out, "{\"deadline_ms\":-3,\"op\":\"resolve\",\"name\":\"a\"}");

    struct proto_parsed ps;
    struct proto_resp rs;
    cr_assert_eq(proto_op_parse(&ps, 2, out, strlen(out), &rs), 0);
    same_op(&r.op, &ps.op, out);
    proto_parsed_release(&ps);

    char corr[DS_OP_CORR_ID_MAX + 2];
    memset(corr, 'c', sizeof(corr) - 1);
    corr[sizeof(corr) - 1] = '\0';
    cr_assert_eq(ds_op_write(&r.op, corr, out), -1, "a corr_id over the bound");
    corr[DS_OP_CORR_ID_MAX] = '\0';
    cr_assert_gt(ds_op_write(&r.op, corr, out), 0);
}

Test(ds_op, strings_are_escaped_and_bounded)
{
    struct ds_req r;
    char out[DS_OP_HDR_MAX];
    cr_assert_eq(ds_op_resolve(&r, "a\"b\\c", 5), 0);
    cr_assert_gt(ds_op_write(&r.op, NULL, out), 0);
    cr_assert_str_eq(out, "{\"op\":\"resolve\",\"name\":\"a\\\"b\\\\c\"}");

    /* The worst case: two strings of the longest length, every byte written
     * as \u00XX, with a deadline and the longest corr_id. */
    char worst[DS_OP_STR_MAX + 1], corr[DS_OP_CORR_ID_MAX + 1];
    memset(worst, 0x01, DS_OP_STR_MAX);
    worst[DS_OP_STR_MAX] = '\0';
    memset(corr, 'c', DS_OP_CORR_ID_MAX);
    corr[DS_OP_CORR_ID_MAX] = '\0';
    cr_assert_eq(ds_op_send(&r, worst, worst), 0);
    r.op.has_deadline = true;
    r.op.deadline_ms = INT64_MIN;
    int n = ds_op_write(&r.op, corr, out);
    cr_assert_eq((size_t)n, strlen("{\"deadline_ms\":-9223372036854775808,\"corr_id\":\"\",\"op\":"
                                   "\"send\",\"channel\":\"\",\"key\":\"\"}") +
                                DS_OP_CORR_ID_MAX + 2 * 6 * DS_OP_STR_MAX);
    cr_assert_lt((size_t)n, sizeof(out));
    cr_assert_eq(ds_op_peek(&r, worst, DS_OP_STR_MAX, 18446744073709551615ull), 0);
    cr_assert_gt(ds_op_write(&r.op, NULL, out), 0);
    /* The longest ACK. */
    static uint64_t ids[MAILBOX_BATCH_MAX];
    memset(ids, 0xff, sizeof(ids));
    r.op = (struct proto_op){.app = 3,
                             .kind = PROTO_ACK,
                             .channel = {worst, DS_OP_STR_MAX},
                             .ids = ids,
                             .nids = MAILBOX_BATCH_MAX};
    cr_assert_lt(ds_op_write(&r.op, corr, out), DS_OP_HDR_MAX);
    r.op.nids++;
    cr_assert_eq(ds_op_write(&r.op, corr, out), -1, "more ids than a batch");

    /* Longer strings are refused, not truncated. */
    char over[DS_OP_STR_MAX + 2];
    memset(over, 'a', sizeof(over) - 1);
    over[DS_OP_STR_MAX + 1] = '\0';
    cr_assert_eq(ds_op_resolve(&r, over, DS_OP_STR_MAX + 1), -1);
    cr_assert_eq(ds_op_search(&r, over, DS_OP_STR_MAX + 1, 1), -1);
    cr_assert_eq(ds_op_peek(&r, over, DS_OP_STR_MAX + 1, 1), -1);
    cr_assert_eq(ds_op_index_put(&r, over, DS_OP_STR_MAX + 1), -1);
    cr_assert_eq(ds_op_send(&r, over, "k"), -1);
    cr_assert_eq(ds_op_send(&r, "c", over), -1);
    r.op = (struct proto_op){.app = 2, .kind = PROTO_RESOLVE, .name = {over, DS_OP_STR_MAX + 1}};
    cr_assert_eq(ds_op_write(&r.op, NULL, out), -1, "the writer checks its bound too");
    r.op.kind = PROTO_NONE;
    r.op.name.n = 1;
    cr_assert_eq(ds_op_write(&r.op, NULL, out), -1, "no op, no header");
}

/* The `op` metric label of every kind is its name. */
Test(ds_op, metric_label_is_the_kind)
{
    static const char *const labels[] = {"get",    "has",  "proof",   "outboard", "put", "resolve",
                                         "search", "send", "recv",    "peek",     "ack", "nack",
                                         "lease",  "dead", "redrive", "stats"};
    for (int k = PROTO_NONE + 1; k < PROTO__KINDS; k++) {
        cr_assert_str_eq(proto_kind_name((enum proto_kind)k), labels[k - 1]);
        cr_assert_eq(stats_op_index((enum proto_kind)k), k - 1);
    }
    cr_assert_eq(stats_op_index(PROTO_NONE), STATS_OPS - 1, "other");
    cr_assert_str_eq(proto_kind_name(PROTO_NONE), "invalid");
}
