/*
 * Header JSON → typed op (engines/proto: proto_op_parse, proto_exec): the
 * answers to bad and odd headers are byte for byte the ones the JSON-only
 * dispatcher gave before requests were typed; every op gives the same
 * answer whether it comes as JSON or as a typed op; a typed op out of range
 * is refused with the reason its JSON would get; and an op's copy owns its
 * strings.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cas/cas.h"
#include "engines/proto/proto.h"

TestSuite(proto_parse);

#define OBJA "b3:1e39041ddf1a4ceb44da9dd4794e47204dfc1b6e0dc03e16d7567769bac25ab6"

/* Which engines a row's process serves. */
#define ALL        7
#define NO_STORAGE 6
#define NO_INDEX   5
#define NO_MAILBOX 3
#define NONE       0

static struct engines engines_new(int served)
{
    struct storage_opts so = {.mem_cap_bytes = 1 << 20, .max_object_bytes = 4096, .amnesia = true};
    struct engines e = {0};
    int st;

    cas_init();
    if (served & 1)
        e.storage = storage_new(&so, &st);
    if (served & 2)
        e.index = index_new(NULL, &st);
    if (served & 4)
        e.mailbox = mailbox_new(NULL, &st);
    return e;
}

static void engines_free(struct engines *e)
{
    storage_free(e->storage);
    index_free(e->index);
    mailbox_free(e->mailbox);
}

/* (served, app, header) → (status, op label, response header), as answered
 * by the dispatcher when it took only header JSON (commit ee0f188): the
 * order of the checks (length, JSON, op, deadline, app, served, op of the
 * app, fields in order, engine) is part of the contract. */
static const struct {
    int served;
    uint16_t app;
    const char *hdr;
    int code;
    const char *op;
    const char *resp;
} BEFORE[] = {
    {ALL, 1, "", 400, "invalid", "{\"error\":\"bad_request\",\"reason\":\"missing header\"}"},
    {ALL, 1, "{", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"header is not valid JSON\"}"},
    {ALL, 1, "[\"op\"]", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"header is not a JSON object\"}"},
    {ALL, 1, "\"get\"", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"header is not valid JSON\"}"},
    {ALL, 1, "{\"op\":\"has\",\"op\":\"get\"}", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"header is not valid JSON\"}"},
    {ALL, 1, "{}", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"op must be a string\"}"},
    {ALL, 1, "{\"op\":7}", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"op must be a string\"}"},
    {ALL, 1, "{\"op\":\"nope\"}", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"unknown op\"}"},
    {ALL, 1, "{\"op\":\"get\\u0000x\"}", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"header is not valid JSON\"}"},
    {ALL, 1, "{\"op\":\"has\"} trailing", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"header is not valid JSON\"}"},
    {ALL, 9, "{\"op\":\"get\"}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"unknown app protocol\"}"},
    {ALL, 0, "{\"op\":\"get\"}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"unknown app protocol\"}"},
    {ALL, 1, "{\"op\":\"resolve\",\"name\":\"a\"}", 400, "resolve",
     "{\"error\":\"bad_request\",\"reason\":\"unknown op\"}"},
    {ALL, 2, "{\"op\":\"get\",\"obj\":\"x\"}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"unknown op\"}"},
    {NO_STORAGE, 1, "{\"op\":\"has\",\"obj\":\"x\"}", 400, "has",
     "{\"error\":\"bad_request\",\"reason\":\"storage is not served here\"}"},
    {NO_STORAGE, 1, "{\"op\":\"nope\"}", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"storage is not served here\"}"},
    {NO_INDEX, 2, "{\"op\":\"resolve\"}", 400, "resolve",
     "{\"error\":\"bad_request\",\"reason\":\"index is not served here\"}"},
    {NO_MAILBOX, 3, "{\"op\":\"peek\",\"channel\":1}", 400, "peek",
     "{\"error\":\"bad_request\",\"reason\":\"mailbox is not served here\"}"},
    {NONE, 9, "{\"op\":\"get\"}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"unknown app protocol\"}"},
    {ALL, 1, "{\"op\":\"put\",\"deadline_ms\":0}", 504, "put",
     "{\"error\":\"deadline_exceeded\",\"reason\":\"deadline passed before service\"}"},
    {ALL, 1, "{\"op\":\"put\",\"deadline_ms\":-5}", 504, "put",
     "{\"error\":\"deadline_exceeded\",\"reason\":\"deadline passed before service\"}"},
    {ALL, 1, "{\"op\":\"put\",\"deadline_ms\":\"5\"}", 400, "put",
     "{\"error\":\"bad_request\",\"reason\":\"deadline_ms must be an integer\"}"},
    {ALL, 1, "{\"op\":\"put\",\"deadline_ms\":1.5}", 400, "put",
     "{\"error\":\"bad_request\",\"reason\":\"deadline_ms must be an integer\"}"},
    {ALL, 1, "{\"op\":\"nope\",\"deadline_ms\":0}", 504, "invalid",
     "{\"error\":\"deadline_exceeded\",\"reason\":\"deadline passed before service\"}"},
    {ALL, 9, "{\"op\":\"get\",\"deadline_ms\":0}", 504, "get",
     "{\"error\":\"deadline_exceeded\",\"reason\":\"deadline passed before service\"}"},
    {NO_STORAGE, 1, "{\"op\":\"get\",\"deadline_ms\":-1}", 504, "get",
     "{\"error\":\"deadline_exceeded\",\"reason\":\"deadline passed before service\"}"},
    {ALL, 1, "{\"deadline_ms\":\"x\"}", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"op must be a string\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":5,\"deadline_ms\":\"x\"}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"deadline_ms must be an integer\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":5,\"deadline_ms\":0}", 504, "get",
     "{\"error\":\"deadline_exceeded\",\"reason\":\"deadline passed before service\"}"},
    {ALL, 1, "{\"op\":\"get\"}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"obj must be a b3 address\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":5}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"obj must be a b3 address\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":\"b3:00\"}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"obj must be a b3 address\"}"},
    {ALL, 1,
     "{\"op\":\"get\",\"obj\":\"B3:"
     "1E39041DDF1A4CEB44DA9DD4794E47204DFC1B6E0DC03E16D7567769BAC25AB6\"}",
     400, "get", "{\"error\":\"bad_request\",\"reason\":\"obj must be a b3 address\"}"},
    {ALL, 1, "{\"op\":\"has\"}", 400, "has",
     "{\"error\":\"bad_request\",\"reason\":\"obj must be a b3 address\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"off\":-1}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"off must be a non-negative integer\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"off\":\"1\"}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"off must be a non-negative integer\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"len\":true}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"len must be a non-negative integer\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"off\":-1,\"len\":true}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"off must be a non-negative integer\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"off\":1,\"len\":-2}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"len must be a non-negative integer\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"off\":1.0}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"off must be a non-negative integer\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"off\":9223372036854775807}", 404, "get",
     "{\"error\":\"not_found\",\"reason\":\"get failed\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"off\":9223372036854775808}", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"header is not valid JSON\"}"},
    {ALL, 1, "{\"op\":\"get\",\"obj\":\"" OBJA "\"}", 404, "get",
     "{\"error\":\"not_found\",\"reason\":\"get failed\"}"},
    {ALL, 1, "{\"op\":\"has\",\"obj\":\"" OBJA "\"}", 404, "has",
     "{\"error\":\"not_found\",\"reason\":\"has failed\"}"},
    {ALL, 1, "{\"op\":\"put\",\"expect\":1}", 400, "put",
     "{\"error\":\"bad_request\",\"reason\":\"expect must be a b3 address\"}"},
    {ALL, 1, "{\"op\":\"put\",\"expect\":\"b3:zz\"}", 400, "put",
     "{\"error\":\"bad_request\",\"reason\":\"expect must be a b3 address\"}"},
    {ALL, 1, "{\"op\":\"put\",\"expect\":\"" OBJA "\"}", 400, "put",
     "{\"error\":\"mismatch\",\"reason\":\"bytes do not hash to expect\"}"},
    {ALL, 2, "{\"op\":\"resolve\",\"name\":\"missing\"}", 404, "resolve",
     "{\"error\":\"not_found\",\"reason\":\"no such name\"}"},
    {ALL, 2, "{\"op\":\"resolve\"}", 400, "resolve",
     "{\"error\":\"bad_request\",\"reason\":\"name must be a string\"}"},
    {ALL, 2, "{\"op\":\"resolve\",\"name\":1}", 400, "resolve",
     "{\"error\":\"bad_request\",\"reason\":\"name must be a string\"}"},
    {ALL, 2, "{\"op\":\"resolve\",\"name\":\"\"}", 400, "resolve",
     "{\"error\":\"bad_request\",\"reason\":\"bad name\"}"},
    {ALL, 2, "{\"op\":\"resolve\",\"name\":\"a\\tb\"}", 400, "resolve",
     "{\"error\":\"bad_request\",\"reason\":\"bad name\"}"},
    {ALL, 2, "{\"op\":\"resolve\",\"name\":\"a\\u0000b\"}", 400, "invalid",
     "{\"error\":\"bad_request\",\"reason\":\"header is not valid JSON\"}"},
    {ALL, 2, "{\"op\":\"put\"}", 400, "put",
     "{\"error\":\"bad_request\",\"reason\":\"name must be a string\"}"},
    {ALL, 2, "{\"op\":\"put\",\"name\":null}", 400, "put",
     "{\"error\":\"bad_request\",\"reason\":\"name must be a string\"}"},
    {ALL, 2, "{\"op\":\"put\",\"name\":\"x\"}", 400, "put",
     "{\"error\":\"bad_request\",\"reason\":\"bad name or manifest\"}"},
    {ALL, 2, "{\"op\":\"search\",\"limit\":3}", 400, "search",
     "{\"error\":\"bad_request\",\"reason\":\"prefix must be a string\"}"},
    {ALL, 2, "{\"op\":\"search\",\"prefix\":3,\"limit\":3}", 400, "search",
     "{\"error\":\"bad_request\",\"reason\":\"prefix must be a string\"}"},
    {ALL, 2, "{\"op\":\"search\",\"prefix\":\"a\"}", 400, "search",
     "{\"error\":\"bad_request\",\"reason\":\"limit must be an integer in 1..100\"}"},
    {ALL, 2, "{\"op\":\"search\",\"prefix\":\"a\",\"limit\":0}", 400, "search",
     "{\"error\":\"bad_request\",\"reason\":\"limit must be an integer in 1..100\"}"},
    {ALL, 2, "{\"op\":\"search\",\"prefix\":\"a\",\"limit\":101}", 400, "search",
     "{\"error\":\"bad_request\",\"reason\":\"limit must be an integer in 1..100\"}"},
    {ALL, 2, "{\"op\":\"search\",\"prefix\":\"a\",\"limit\":\"3\"}", 400, "search",
     "{\"error\":\"bad_request\",\"reason\":\"limit must be an integer in 1..100\"}"},
    {ALL, 2, "{\"op\":\"search\",\"prefix\":\"\\u0001\",\"limit\":3}", 400, "search",
     "{\"error\":\"bad_request\",\"reason\":\"bad prefix\"}"},
    {ALL, 2, "{\"op\":\"search\",\"prefix\":1,\"limit\":0}", 400, "search",
     "{\"error\":\"bad_request\",\"reason\":\"prefix must be a string\"}"},
    {ALL, 2, "{\"op\":\"search\",\"prefix\":\"\",\"limit\":100}", 200, "search",
     "{\"count\":0,\"more\":false}"},
    {ALL, 3, "{\"op\":\"send\"}", 400, "send",
     "{\"error\":\"bad_request\",\"reason\":\"channel must be a string\"}"},
    {ALL, 3, "{\"op\":\"send\",\"channel\":1}", 400, "send",
     "{\"error\":\"bad_request\",\"reason\":\"channel must be a string\"}"},
    {ALL, 3, "{\"op\":\"send\",\"channel\":\"\"}", 400, "send",
     "{\"error\":\"bad_request\",\"reason\":\"bad channel or key\"}"},
    {ALL, 3, "{\"op\":\"send\",\"channel\":\"c\",\"key\":7}", 400, "send",
     "{\"error\":\"bad_request\",\"reason\":\"key must be a string of 1..255 bytes\"}"},
    {ALL, 3, "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"\"}", 400, "send",
     "{\"error\":\"bad_request\",\"reason\":\"key must be a string of 1..255 bytes\"}"},
    {ALL, 3, "{\"op\":\"send\",\"channel\":1,\"key\":\"\"}", 400, "send",
     "{\"error\":\"bad_request\",\"reason\":\"channel must be a string\"}"},
    {ALL, 3, "{\"op\":\"recv\",\"channel\":\"c\"}", 400, "recv",
     "{\"error\":\"bad_request\",\"reason\":\"max must be an integer in 1..100\"}"},
    {ALL, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":0}", 400, "recv",
     "{\"error\":\"bad_request\",\"reason\":\"max must be an integer in 1..100\"}"},
    {ALL, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":101}", 400, "recv",
     "{\"error\":\"bad_request\",\"reason\":\"max must be an integer in 1..100\"}"},
    {ALL, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":\"1\"}", 400, "recv",
     "{\"error\":\"bad_request\",\"reason\":\"max must be an integer in 1..100\"}"},
    {ALL, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":1,\"lease_ms\":-1}", 400, "recv",
     "{\"error\":\"bad_request\",\"reason\":\"lease_ms must be an integer in 0..43200000\"}"},
    {ALL, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":1,\"lease_ms\":99999999999}", 400, "recv",
     "{\"error\":\"bad_request\",\"reason\":\"lease_ms must be an integer in 0..43200000\"}"},
    {ALL, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":0,\"lease_ms\":\"x\"}", 400, "recv",
     "{\"error\":\"bad_request\",\"reason\":\"max must be an integer in 1..100\"}"},
    {ALL, 3, "{\"op\":\"recv\",\"max\":1}", 400, "recv",
     "{\"error\":\"bad_request\",\"reason\":\"channel must be a string\"}"},
    {ALL, 3, "{\"op\":\"recv\",\"channel\":\"\",\"max\":1}", 400, "recv",
     "{\"error\":\"bad_request\",\"reason\":\"bad channel\"}"},
    {ALL, 3, "{\"op\":\"peek\",\"channel\":\"c\"}", 400, "peek",
     "{\"error\":\"bad_request\",\"reason\":\"max must be an integer in 1..100\"}"},
    {ALL, 3, "{\"op\":\"peek\",\"channel\":[],\"max\":1}", 400, "peek",
     "{\"error\":\"bad_request\",\"reason\":\"channel must be a string\"}"},
    {ALL, 3, "{\"op\":\"peek\",\"channel\":\"c\",\"max\":1,\"lease_ms\":\"x\"}", 200, "peek",
     "{\"count\":0}"},
    {ALL, 3, "{\"op\":\"peek\",\"channel\":\"nochan\",\"max\":1}", 200, "peek", "{\"count\":0}"},
    {ALL, 3, "{\"op\":\"ack\",\"channel\":\"c\"}", 400, "ack",
     "{\"error\":\"bad_request\",\"reason\":\"ids must be an array\"}"},
    {ALL, 3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":1}", 400, "ack",
     "{\"error\":\"bad_request\",\"reason\":\"ids must be an array\"}"},
    {ALL, 3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[\"1\"]}", 400, "ack",
     "{\"error\":\"bad_request\",\"reason\":\"ids must be non-negative integers\"}"},
    {ALL, 3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[-1]}", 400, "ack",
     "{\"error\":\"bad_request\",\"reason\":\"ids must be non-negative integers\"}"},
    {ALL, 3, "{\"op\":\"ack\",\"ids\":[1]}", 400, "ack",
     "{\"error\":\"bad_request\",\"reason\":\"channel must be a string\"}"},
    {ALL, 3, "{\"op\":\"ack\",\"channel\":\"nochan\",\"ids\":[1]}", 404, "ack",
     "{\"error\":\"not_found\",\"reason\":\"no such channel\"}"},
    {ALL, 3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[1,\"x\"]}", 400, "ack",
     "{\"error\":\"bad_request\",\"reason\":\"ids must be non-negative integers\"}"},
    {ALL, 3, "{\"op\":\"get\",\"obj\":\"" OBJA "\"}", 400, "get",
     "{\"error\":\"bad_request\",\"reason\":\"unknown op\"}"},
};

Test(proto_parse, bad_headers_answered_as_before)
{
    for (size_t i = 0; i < sizeof(BEFORE) / sizeof(BEFORE[0]); i++) {
        struct engines e = engines_new(BEFORE[i].served);
        struct proto_req rq = {.app = BEFORE[i].app,
                               .hdr = BEFORE[i].hdr,
                               .hdr_len = strlen(BEFORE[i].hdr),
                               .now_ms = 1000};
        struct proto_resp rs;
        cr_assert_eq(proto_handle(&e, &rq, &rs), BEFORE[i].code, "%s", BEFORE[i].hdr);
        cr_assert_str_eq(rs.op, BEFORE[i].op, "%s", BEFORE[i].hdr);
        cr_assert_eq(rs.hdr_len, strlen(BEFORE[i].resp), "%s: %.*s", BEFORE[i].hdr, (int)rs.hdr_len,
                     rs.hdr);
        cr_assert_eq(memcmp(rs.hdr, BEFORE[i].resp, rs.hdr_len), 0, "%s: %.*s", BEFORE[i].hdr,
                     (int)rs.hdr_len, rs.hdr);
        proto_resp_release(&rs);
        engines_free(&e);
    }
}

/* Over the header cap: 413 before any parsing (nothing counted). */
Test(proto_parse, header_over_the_cap)
{
    static char big[PROTO_REQ_HDR_MAX_BYTES + 1];
    struct proto_parsed ps;
    struct proto_resp rs;
    uint64_t before = proto_json_parses();

    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"op\":\"has\"}", 12);
    cr_assert_eq(proto_op_parse(&ps, 1, big, sizeof(big), &rs), 413);
    cr_assert_eq(proto_json_parses(), before);
    proto_parsed_release(&ps);
    cr_assert_eq(proto_op_parse(&ps, 1, big, sizeof(big) - 1, &rs), 0);
    cr_assert_eq(proto_json_parses(), before + 1);
    cr_assert_eq(ps.op.kind, PROTO_HAS);
    cr_assert_str_eq(ps.op.bad, "obj must be a b3 address");
    proto_parsed_release(&ps);
}

/* ---- every op: the parsed fields ----------------------------------------- */

/* ps is filled in place: its op's ids point into it. */
static void parse_ok(struct proto_parsed *ps, uint16_t app, const char *hdr)
{
    struct proto_resp rs;
    cr_assert_eq(proto_op_parse(ps, app, hdr, strlen(hdr), &rs), 0, "%s", hdr);
    cr_assert_null(ps->op.bad, "%s: %s", hdr, ps->op.bad);
    cr_assert_eq(ps->op.app, app);
}

static void str_is(struct proto_str s, const char *want)
{
    if (want == NULL) {
        cr_assert_null(s.p);
        cr_assert_eq(s.n, 0);
        return;
    }
    cr_assert_not_null(s.p);
    cr_assert_eq(s.n, strlen(want));
    cr_assert_eq(memcmp(s.p, want, s.n), 0);
}

Test(proto_parse, every_op_fields)
{
    struct cas_addr a;
    cr_assert_eq(cas_addr_parse(&a, OBJA, strlen(OBJA)), 0);

    /* Members in any order, unknown ones ignored, deadline anywhere. */
    struct proto_parsed ps;
    parse_ok(&ps, 1, "{\"len\":3,\"x\":[1],\"obj\":\"" OBJA "\",\"op\":\"get\",\"deadline_ms\":9}");
    cr_assert_eq(ps.op.kind, PROTO_GET);
    cr_assert_eq(memcmp(&ps.op.obj, &a, sizeof(a)), 0);
    cr_assert(ps.op.has_len && !ps.op.has_off);
    cr_assert_eq(ps.op.len, 3);
    cr_assert(ps.op.has_deadline);
    cr_assert_eq(ps.op.deadline_ms, 9);
    proto_parsed_release(&ps);

    parse_ok(&ps, 1, "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"off\":0}");
    cr_assert(ps.op.has_off && !ps.op.has_len && !ps.op.has_deadline);
    proto_parsed_release(&ps);

    parse_ok(&ps, 1, "{\"op\":\"has\",\"obj\":\"" OBJA "\",\"off\":\"ignored\"}");
    cr_assert_eq(ps.op.kind, PROTO_HAS);
    cr_assert_eq(memcmp(&ps.op.obj, &a, sizeof(a)), 0);
    cr_assert(!ps.op.has_off);
    proto_parsed_release(&ps);

    parse_ok(&ps, 1, "{\"op\":\"put\"}");
    cr_assert_eq(ps.op.kind, PROTO_PUT);
    cr_assert_not(ps.op.has_expect);
    proto_parsed_release(&ps);
    parse_ok(&ps, 1, "{\"op\":\"put\",\"expect\":\"" OBJA "\",\"name\":5}");
    cr_assert(ps.op.has_expect);
    cr_assert_eq(memcmp(&ps.op.expect, &a, sizeof(a)), 0);
    str_is(ps.op.name, NULL);
    proto_parsed_release(&ps);

    parse_ok(&ps, 2, "{\"op\":\"resolve\",\"name\":\"a\\u00e9\\\"b\"}");
    cr_assert_eq(ps.op.kind, PROTO_RESOLVE);
    str_is(ps.op.name, "a\xc3\xa9\"b");
    proto_parsed_release(&ps);

    parse_ok(&ps, 2, "{\"op\":\"put\",\"name\":\"n\",\"expect\":7}");
    cr_assert_eq(ps.op.kind, PROTO_PUT);
    str_is(ps.op.name, "n");
    cr_assert_not(ps.op.has_expect);
    proto_parsed_release(&ps);

    parse_ok(&ps, 2, "{\"op\":\"search\",\"prefix\":\"\",\"limit\":100}");
    cr_assert_eq(ps.op.kind, PROTO_SEARCH);
    str_is(ps.op.prefix, "");
    cr_assert_eq(ps.op.limit, 100);
    proto_parsed_release(&ps);

    parse_ok(&ps, 3, "{\"op\":\"send\",\"channel\":\"c\"}");
    cr_assert_eq(ps.op.kind, PROTO_SEND);
    str_is(ps.op.channel, "c");
    str_is(ps.op.key, NULL);
    proto_parsed_release(&ps);
    parse_ok(&ps, 3, "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"k\"}");
    str_is(ps.op.key, "k");
    proto_parsed_release(&ps);

    parse_ok(&ps, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":100,\"lease_ms\":43200000}");
    cr_assert_eq(ps.op.kind, PROTO_RECV);
    cr_assert_eq(ps.op.max, 100);
    cr_assert_eq(ps.op.lease_ms, 43200000);
    proto_parsed_release(&ps);

    parse_ok(&ps, 3, "{\"op\":\"peek\",\"channel\":\"c\",\"max\":1,\"lease_ms\":\"not read\"}");
    cr_assert_eq(ps.op.kind, PROTO_PEEK);
    cr_assert_eq(ps.op.max, 1);
    cr_assert_eq(ps.op.lease_ms, 0);
    proto_parsed_release(&ps);

    parse_ok(&ps, 3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[3,0,9223372036854775807]}");
    cr_assert_eq(ps.op.kind, PROTO_ACK);
    cr_assert_eq(ps.op.nids, 3);
    cr_assert_eq(ps.op.ids[0], 3);
    cr_assert_eq(ps.op.ids[1], 0);
    cr_assert_eq(ps.op.ids[2], 9223372036854775807ull);
    proto_parsed_release(&ps);

    /* An op of another app: known by name (its metric label), no fields. */
    parse_ok(&ps, 1, "{\"op\":\"resolve\",\"name\":\"a\"}");
    cr_assert_eq(ps.op.kind, PROTO_RESOLVE);
    str_is(ps.op.name, NULL);
    proto_parsed_release(&ps);
}

/* ---- every op: the same answer as JSON and as a typed op ---------------- */

struct step {
    uint16_t app;
    const char *hdr;
    struct proto_op op; /* .app is set from app */
    const char *body;
};

/* Run the steps on two fresh sets of engines, one by JSON, one typed; every
 * answer must be the same bytes. */
static void same_answers(const struct step *s, size_t n)
{
    struct engines ej = engines_new(ALL), et = engines_new(ALL);

    for (size_t i = 0; i < n; i++) {
        size_t bl = s[i].body ? strlen(s[i].body) : 0;
        struct proto_req rq = {.app = s[i].app,
                               .hdr = s[i].hdr,
                               .hdr_len = strlen(s[i].hdr),
                               .body = (const uint8_t *)s[i].body,
                               .body_len = bl,
                               .now_ms = 5000 + i};
        struct proto_op op = s[i].op;
        struct proto_resp rj, rt;
        op.app = s[i].app;
        int cj = proto_handle(&ej, &rq, &rj);
        uint64_t parses = proto_json_parses();
        int ct = proto_exec(&et, &op, (const uint8_t *)s[i].body, bl, 5000 + i, &rt);
        cr_assert_eq(proto_json_parses(), parses, "proto_exec parses no JSON");
        cr_assert_eq(cj, ct, "%s: %d, typed %d (%.*s)", s[i].hdr, cj, ct, (int)rt.hdr_len, rt.hdr);
        cr_assert_str_eq(rj.op, rt.op);
        cr_assert_eq(rj.hdr_len, rt.hdr_len, "%s: %.*s / %.*s", s[i].hdr, (int)rj.hdr_len, rj.hdr,
                     (int)rt.hdr_len, rt.hdr);
        cr_assert_eq(memcmp(rj.hdr, rt.hdr, rj.hdr_len), 0, "%s", s[i].hdr);
        cr_assert_eq(rj.body_len, rt.body_len, "%s", s[i].hdr);
        cr_assert(rj.body_len == 0 || memcmp(rj.body, rt.body, rj.body_len) == 0, "%s", s[i].hdr);
        proto_resp_release(&rj);
        proto_resp_release(&rt);
    }
    engines_free(&ej);
    engines_free(&et);
}

#define S(p, n) ((struct proto_str){(p), (n)})

Test(proto_parse, every_op_same_answer_as_json_and_typed)
{
    char a[CAS_ADDR_CHARS + 1], hdr[8][200];
    struct cas_addr addr;
    static const uint64_t ids[] = {1, 2, 99};

    cas_init();
    cas_hash("hello world", 11, &addr);
    cas_addr_format(&addr, a);
    snprintf(hdr[0], sizeof(hdr[0]), "{\"op\":\"get\",\"obj\":\"%s\"}", a);
    snprintf(hdr[1], sizeof(hdr[1]), "{\"op\":\"get\",\"obj\":\"%s\",\"off\":6,\"len\":3}", a);
    snprintf(hdr[2], sizeof(hdr[2]), "{\"op\":\"get\",\"obj\":\"%s\",\"off\":6}", a);
    snprintf(hdr[3], sizeof(hdr[3]), "{\"op\":\"get\",\"obj\":\"%s\",\"off\":12}", a);
    snprintf(hdr[4], sizeof(hdr[4]), "{\"op\":\"has\",\"obj\":\"%s\"}", a);
    snprintf(hdr[5], sizeof(hdr[5]), "{\"op\":\"put\",\"expect\":\"%s\"}", a);
    const struct step steps[] = {
        {1, hdr[0], {.kind = PROTO_GET, .obj = addr}, NULL},
        {1, "{\"op\":\"put\"}", {.kind = PROTO_PUT}, "hello world"},
        {1, "{\"op\":\"put\"}", {.kind = PROTO_PUT}, "hello world"},
        {1, hdr[5], {.kind = PROTO_PUT, .has_expect = true, .expect = addr}, "hello world"},
        {1, hdr[5], {.kind = PROTO_PUT, .has_expect = true, .expect = addr}, "other"},
        {1, hdr[0], {.kind = PROTO_GET, .obj = addr}, NULL},
        {1,
         hdr[1],
         {.kind = PROTO_GET, .obj = addr, .has_off = true, .off = 6, .has_len = true, .len = 3},
         NULL},
        {1, hdr[2], {.kind = PROTO_GET, .obj = addr, .has_off = true, .off = 6}, NULL},
        {1, hdr[3], {.kind = PROTO_GET, .obj = addr, .has_off = true, .off = 12}, NULL},
        {1, hdr[4], {.kind = PROTO_HAS, .obj = addr}, NULL},
        {2,
         "{\"op\":\"resolve\",\"name\":\"app/home\"}",
         {.kind = PROTO_RESOLVE, .name = S("app/home", 8)},
         NULL},
        {2,
         "{\"op\":\"put\",\"name\":\"app/home\"}",
         {.kind = PROTO_PUT, .name = S("app/home", 8)},
         "{\"parts\":{}}"},
        {2,
         "{\"op\":\"put\",\"name\":\"app/home\"}",
         {.kind = PROTO_PUT, .name = S("app/home", 8)},
         "{\"parts\":{\"a\":1}}"},
        {2,
         "{\"op\":\"put\",\"name\":\"app/x\"}",
         {.kind = PROTO_PUT, .name = S("app/x", 5)},
         "[1]"},
        {2,
         "{\"op\":\"resolve\",\"name\":\"app/home\"}",
         {.kind = PROTO_RESOLVE, .name = S("app/home", 8)},
         NULL},
        {2,
         "{\"op\":\"resolve\",\"name\":\"a\\tb\"}",
         {.kind = PROTO_RESOLVE, .name = S("a\tb", 3)},
         NULL},
        {2,
         "{\"op\":\"search\",\"prefix\":\"app\",\"limit\":5}",
         {.kind = PROTO_SEARCH, .prefix = S("app", 3), .limit = 5},
         NULL},
        {2,
         "{\"op\":\"search\",\"prefix\":\"\",\"limit\":1}",
         {.kind = PROTO_SEARCH, .prefix = S("", 0), .limit = 1},
         NULL},
        {3,
         "{\"op\":\"send\",\"channel\":\"c\"}",
         {.kind = PROTO_SEND, .channel = S("c", 1)},
         "m1"},
        {3,
         "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"k\"}",
         {.kind = PROTO_SEND, .channel = S("c", 1), .key = S("k", 1)},
         "m2"},
        {3,
         "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"k\"}",
         {.kind = PROTO_SEND, .channel = S("c", 1), .key = S("k", 1)},
         "m2"},
        {3,
         "{\"op\":\"peek\",\"channel\":\"c\",\"max\":10}",
         {.kind = PROTO_PEEK, .channel = S("c", 1), .max = 10},
         NULL},
        {3,
         "{\"op\":\"recv\",\"channel\":\"c\",\"max\":1,\"lease_ms\":5000}",
         {.kind = PROTO_RECV, .channel = S("c", 1), .max = 1, .lease_ms = 5000},
         NULL},
        {3,
         "{\"op\":\"recv\",\"channel\":\"c\",\"max\":5}",
         {.kind = PROTO_RECV, .channel = S("c", 1), .max = 5},
         NULL},
        {3,
         "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[1,2,99]}",
         {.kind = PROTO_ACK, .channel = S("c", 1), .ids = ids, .nids = 3},
         NULL},
        {3,
         "{\"op\":\"ack\",\"channel\":\"nochan\",\"ids\":[1]}",
         {.kind = PROTO_ACK, .channel = S("nochan", 6), .ids = ids, .nids = 1},
         NULL},
        {3,
         "{\"op\":\"peek\",\"channel\":\"c\",\"max\":10,\"deadline_ms\":0}",
         {.kind = PROTO_PEEK, .channel = S("c", 1), .max = 10, .has_deadline = true},
         NULL},
        {3,
         "{\"op\":\"peek\",\"channel\":\"c\",\"max\":10,\"deadline_ms\":50}",
         {.kind = PROTO_PEEK,
          .channel = S("c", 1),
          .max = 10,
          .has_deadline = true,
          .deadline_ms = 50},
         NULL},
    };
    same_answers(steps, sizeof(steps) / sizeof(steps[0]));
}

/* A typed op whose fields no header could carry (or that a header would
 * carry wrongly) is refused with the reason of the JSON that says the same,
 * in the same order of checks. */
Test(proto_parse, typed_out_of_range_refused_as_json)
{
    static uint64_t ids[MAILBOX_BATCH_MAX + 1];
    char many[2048];
    size_t w = (size_t)snprintf(many, sizeof(many), "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[");
    for (int i = 0; i <= MAILBOX_BATCH_MAX; i++)
        w += (size_t)snprintf(many + w, sizeof(many) - w, "%s0", i ? "," : "");
    snprintf(many + w, sizeof(many) - w, "]}");
    const struct step steps[] = {
        {1,
         "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"off\":-1}",
         {.kind = PROTO_GET, .has_off = true, .off = (uint64_t)INT64_MAX + 1},
         NULL},
        {1,
         "{\"op\":\"get\",\"obj\":\"" OBJA "\",\"len\":-1}",
         {.kind = PROTO_GET, .has_len = true, .len = UINT64_MAX},
         NULL},
        {2, "{\"op\":\"resolve\"}", {.kind = PROTO_RESOLVE}, NULL},
        {2, "{\"op\":\"put\"}", {.kind = PROTO_PUT}, "{}"},
        {2, "{\"op\":\"search\",\"limit\":3}", {.kind = PROTO_SEARCH, .limit = 3}, NULL},
        {2,
         "{\"op\":\"search\",\"prefix\":\"a\",\"limit\":0}",
         {.kind = PROTO_SEARCH, .prefix = S("a", 1)},
         NULL},
        {2,
         "{\"op\":\"search\",\"prefix\":\"a\",\"limit\":101}",
         {.kind = PROTO_SEARCH, .prefix = S("a", 1), .limit = 101},
         NULL},
        {3, "{\"op\":\"send\"}", {.kind = PROTO_SEND, .key = S("k", 1)}, "m"},
        {3,
         "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"\"}",
         {.kind = PROTO_SEND, .channel = S("c", 1), .key = S("", 0)},
         "m"},
        {3,
         "{\"op\":\"peek\",\"channel\":\"c\",\"max\":0}",
         {.kind = PROTO_PEEK, .channel = S("c", 1)},
         NULL},
        {3,
         "{\"op\":\"recv\",\"channel\":\"c\",\"max\":101}",
         {.kind = PROTO_RECV, .channel = S("c", 1), .max = 101},
         NULL},
        {3,
         "{\"op\":\"recv\",\"channel\":\"c\",\"max\":0,\"lease_ms\":-1}",
         {.kind = PROTO_RECV, .channel = S("c", 1), .lease_ms = UINT64_MAX},
         NULL},
        {3,
         "{\"op\":\"recv\",\"channel\":\"c\",\"max\":1,\"lease_ms\":43200001}",
         {.kind = PROTO_RECV, .channel = S("c", 1), .max = 1, .lease_ms = 43200001},
         NULL},
        {3, "{\"op\":\"ack\",\"ids\":[]}", {.kind = PROTO_ACK}, NULL},
        {3,
         many,
         {.kind = PROTO_ACK, .channel = S("c", 1), .ids = ids, .nids = MAILBOX_BATCH_MAX + 1},
         NULL},
        {1,
         "{\"op\":\"resolve\",\"name\":\"a\"}",
         {.kind = PROTO_RESOLVE, .name = S("a", 1)},
         NULL},
        {3, "{\"op\":\"nope\"}", {.kind = PROTO_NONE}, NULL},
        {9, "{\"op\":\"get\"}", {.kind = PROTO_GET}, NULL},
        {9,
         "{\"op\":\"get\",\"deadline_ms\":-1}",
         {.kind = PROTO_GET, .has_deadline = true, .deadline_ms = -1},
         NULL},
    };
    same_answers(steps, sizeof(steps) / sizeof(steps[0]));
}

/* A copy of an op owns its strings and ids: the source may go. */
Test(proto_parse, copy_owns_strings_and_ids)
{
    char name[] = "name", ch[] = "chan", key[] = "key";
    uint64_t ids[] = {7, 8};
    struct proto_op src = {.app = 3,
                           .kind = PROTO_SEND,
                           .name = S(name, 4),
                           .channel = S(ch, 4),
                           .key = S(key, 0),
                           .ids = ids,
                           .nids = 2};
    size_t n = proto_op_copy_size(&src);
    cr_assert_eq(n, 2 * sizeof(uint64_t) + 5 + 5 + 1);
    uint64_t mem[8];
    struct proto_op dst;
    proto_op_copy(&dst, &src, mem);
    memset(name, 'x', 4);
    memset(ch, 'x', 4);
    ids[0] = 0;
    str_is(dst.name, "name");
    str_is(dst.channel, "chan");
    str_is(dst.prefix, NULL);
    cr_assert_not_null(dst.key.p, "an empty key stays present");
    cr_assert_eq(dst.key.n, 0);
    cr_assert_eq(dst.ids[0], 7);
    cr_assert_eq(dst.ids[1], 8);
    cr_assert_eq(dst.kind, PROTO_SEND);
    struct proto_op none = {.kind = PROTO_GET};
    cr_assert_eq(proto_op_copy_size(&none), 0);
}
