/*
 * Tests for engines/proto: every op of storage, index and mailbox through
 * proto_handle, and every error path (bad JSON, duplicate keys, missing
 * fields, wrong types, ranges, deadlines, apps not served).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <string.h>

#include "cas/cas.h"
#include "engines/proto/proto.h"

TestSuite(proto);

static struct engines E;

static void setup(void)
{
    struct storage_opts so = {.mem_cap_bytes = 1 << 20, .max_object_bytes = 4096, .amnesia = true};
    int st;

    cas_init();
    E.storage = storage_new(&so, &st);
    E.index = index_new(NULL, &st);
    E.mailbox = mailbox_new(NULL, &st);
    cr_assert(E.storage && E.index && E.mailbox);
}

static void teardown(void)
{
    storage_free(E.storage);
    index_free(E.index);
    mailbox_free(E.mailbox);
    memset(&E, 0, sizeof(E));
}

/* Run one request; the response header must always be a JSON object. */
static int call(struct proto_resp *rs, uint16_t app, const char *hdr, const void *body, size_t n)
{
    struct proto_req rq = {.app = app,
                           .hdr = hdr,
                           .hdr_len = hdr ? strlen(hdr) : 0,
                           .body = body,
                           .body_len = n,
                           .now_ms = 1000};
    int code = proto_handle(&E, &rq, rs);
    json_t *h;

    cr_assert_eq(code, rs->code);
    h = json_loadb(rs->hdr, rs->hdr_len, JSON_REJECT_DUPLICATES, NULL);
    cr_assert(json_is_object(h), "response header not an object: %.*s", (int)rs->hdr_len, rs->hdr);
    json_decref(h);
    cr_assert(rs->op != NULL);
    return code;
}

/* The response header parsed (caller decrefs). */
static json_t *rhdr(const struct proto_resp *rs)
{
    return json_loadb(rs->hdr, rs->hdr_len, 0, NULL);
}

static void expect_error(uint16_t app, const char *hdr, int code, const char *err)
{
    struct proto_resp rs;
    json_t *h;

    cr_assert_eq(call(&rs, app, hdr, "", 0), code, "%s → %d, want %d (%.*s)", hdr, rs.code, code,
                 (int)rs.hdr_len, rs.hdr);
    h = rhdr(&rs);
    cr_assert_str_eq(json_string_value(json_object_get(h, "error")), err, "%s", hdr);
    cr_assert(json_is_string(json_object_get(h, "reason")));
    cr_assert_eq(rs.body_len, 0);
    cr_assert_null(rs.blob);
    cr_assert_null(rs.buf);
    json_decref(h);
    proto_resp_release(&rs);
}

static const char *addr_of(const char *s, char out[CAS_ADDR_CHARS + 1])
{
    struct cas_addr a;
    cas_hash(s, strlen(s), &a);
    return cas_addr_format(&a, out);
}

/* ------------------------------------------------------------- common */

Test(proto, header_errors, .init = setup, .fini = teardown)
{
    char big[9000];

    expect_error(1, "", 400, "bad_request");
    expect_error(1, "{", 400, "bad_request");
    expect_error(1, "[\"op\"]", 400, "bad_request");
    expect_error(1, "\"get\"", 400, "bad_request");
    expect_error(1, "{\"op\":\"has\",\"op\":\"get\"}", 400, "bad_request");
    expect_error(1, "{}", 400, "bad_request");
    expect_error(1, "{\"op\":7}", 400, "bad_request");
    expect_error(1, "{\"op\":\"nope\"}", 400, "bad_request");
    expect_error(1, "{\"op\":\"get\\u0000x\"}", 400, "bad_request");
    expect_error(1, "{\"op\":\"has\"} trailing", 400, "bad_request");
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"op\":\"has\"}", 12);
    big[sizeof(big) - 1] = 0;
    expect_error(1, big, 413, "too_large");
}

Test(proto, apps_not_served, .init = setup, .fini = teardown)
{
    struct storage *st = E.storage;

    expect_error(9, "{\"op\":\"get\"}", 400, "bad_request");
    expect_error(0, "{\"op\":\"get\"}", 400, "bad_request");
    /* An op of another app is unknown here. */
    expect_error(1, "{\"op\":\"resolve\",\"name\":\"a\"}", 400, "bad_request");
    expect_error(2, "{\"op\":\"get\",\"obj\":\"x\"}", 400, "bad_request");
    E.storage = NULL;
    expect_error(1, "{\"op\":\"has\",\"obj\":\"x\"}", 400, "bad_request");
    E.storage = st;
}

Test(proto, deadline, .init = setup, .fini = teardown)
{
    struct proto_resp rs;
    char a[CAS_ADDR_CHARS + 1], hdr[200];

    /* Expired: 504, and the put is not executed. */
    cr_assert_eq(call(&rs, 1, "{\"op\":\"put\",\"deadline_ms\":0}", "hello", 5), 504);
    cr_assert_str_eq(rs.op, "put");
    proto_resp_release(&rs);
    expect_error(1, "{\"op\":\"put\",\"deadline_ms\":-5}", 504, "deadline_exceeded");
    snprintf(hdr, sizeof(hdr), "{\"op\":\"has\",\"obj\":\"%s\"}", addr_of("hello", a));
    expect_error(1, hdr, 404, "not_found");
    expect_error(1, "{\"op\":\"put\",\"deadline_ms\":\"5\"}", 400, "bad_request");
    expect_error(1, "{\"op\":\"put\",\"deadline_ms\":1.5}", 400, "bad_request");
    /* A live deadline runs the op. */
    cr_assert_eq(call(&rs, 1, "{\"op\":\"put\",\"deadline_ms\":100}", "hello", 5), 201);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 1, hdr, NULL, 0), 200);
    proto_resp_release(&rs);
}

/* ------------------------------------------------------------ storage */

Test(proto, storage_put_get_has, .init = setup, .fini = teardown)
{
    struct proto_resp rs;
    char a[CAS_ADDR_CHARS + 1], hdr[256];
    json_t *h;

    addr_of("hello world", a);
    cr_assert_eq(call(&rs, 1, "{\"op\":\"put\"}", "hello world", 11), 201);
    cr_assert_str_eq(rs.op, "put");
    h = rhdr(&rs);
    cr_assert_str_eq(json_string_value(json_object_get(h, "obj")), a);
    cr_assert_eq(json_integer_value(json_object_get(h, "size")), 11);
    json_decref(h);
    proto_resp_release(&rs);
    /* Same bytes again: 200, idempotent. */
    cr_assert_eq(call(&rs, 1, "{\"op\":\"put\"}", "hello world", 11), 200);
    proto_resp_release(&rs);
    /* With a matching expect. */
    snprintf(hdr, sizeof(hdr), "{\"op\":\"put\",\"expect\":\"%s\"}", a);
    cr_assert_eq(call(&rs, 1, hdr, "hello world", 11), 200);
    proto_resp_release(&rs);

    /* Whole get: 200, body is a view into the blob. */
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\"}", a);
    cr_assert_eq(call(&rs, 1, hdr, NULL, 0), 200);
    cr_assert_str_eq(rs.op, "get");
    cr_assert_not_null(rs.blob);
    cr_assert_eq(rs.body_len, 11);
    cr_assert_eq(memcmp(rs.body, "hello world", 11), 0);
    cr_assert(rs.body >= rs.blob->bytes && rs.body < rs.blob->bytes + rs.blob->size);
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "size")), 11);
    cr_assert_eq(json_integer_value(json_object_get(h, "off")), 0);
    cr_assert_eq(json_integer_value(json_object_get(h, "len")), 11);
    json_decref(h);
    proto_resp_release(&rs);
    cr_assert_null(rs.blob);

    /* Range: 206. */
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\",\"off\":6,\"len\":3}", a);
    cr_assert_eq(call(&rs, 1, hdr, NULL, 0), 206);
    cr_assert_eq(rs.body_len, 3);
    cr_assert_eq(memcmp(rs.body, "wor", 3), 0);
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "size")), 11);
    cr_assert_eq(json_integer_value(json_object_get(h, "off")), 6);
    cr_assert_eq(json_integer_value(json_object_get(h, "len")), 3);
    json_decref(h);
    proto_resp_release(&rs);
    /* Open-ended and clipped ranges. */
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\",\"off\":6}", a);
    cr_assert_eq(call(&rs, 1, hdr, NULL, 0), 206);
    cr_assert_eq(rs.body_len, 5);
    proto_resp_release(&rs);
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\",\"off\":10,\"len\":100}", a);
    cr_assert_eq(call(&rs, 1, hdr, NULL, 0), 206);
    cr_assert_eq(rs.body_len, 1);
    proto_resp_release(&rs);
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\",\"off\":11}", a);
    cr_assert_eq(call(&rs, 1, hdr, NULL, 0), 206);
    cr_assert_eq(rs.body_len, 0);
    proto_resp_release(&rs);
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\",\"off\":12}", a);
    expect_error(1, hdr, 416, "range_not_satisfiable");

    /* Has. */
    snprintf(hdr, sizeof(hdr), "{\"op\":\"has\",\"obj\":\"%s\"}", a);
    cr_assert_eq(call(&rs, 1, hdr, NULL, 0), 200);
    cr_assert_str_eq(rs.op, "has");
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "size")), 11);
    json_decref(h);
    cr_assert_eq(rs.body_len, 0);
    proto_resp_release(&rs);
}

Test(proto, storage_errors, .init = setup, .fini = teardown)
{
    char a[CAS_ADDR_CHARS + 1], other[CAS_ADDR_CHARS + 1], hdr[256];
    static char big[5000];

    addr_of("absent", a);
    addr_of("other", other);
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\"}", a);
    expect_error(1, hdr, 404, "not_found");
    snprintf(hdr, sizeof(hdr), "{\"op\":\"has\",\"obj\":\"%s\"}", a);
    expect_error(1, hdr, 404, "not_found");
    expect_error(1, "{\"op\":\"get\"}", 400, "bad_request");
    expect_error(1, "{\"op\":\"get\",\"obj\":5}", 400, "bad_request");
    expect_error(1, "{\"op\":\"get\",\"obj\":\"b3:00\"}", 400, "bad_request");
    expect_error(1, "{\"op\":\"has\"}", 400, "bad_request");
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\",\"off\":-1}", a);
    expect_error(1, hdr, 400, "bad_request");
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\",\"off\":\"1\"}", a);
    expect_error(1, hdr, 400, "bad_request");
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\",\"len\":true}", a);
    expect_error(1, hdr, 400, "bad_request");
    /* PUT with a wrong or malformed expect. */
    snprintf(hdr, sizeof(hdr), "{\"op\":\"put\",\"expect\":\"%s\"}", other);
    {
        struct proto_resp rs;
        cr_assert_eq(call(&rs, 1, hdr, "hello", 5), 400);
        json_t *h = rhdr(&rs);
        cr_assert_str_eq(json_string_value(json_object_get(h, "error")), "mismatch");
        json_decref(h);
        proto_resp_release(&rs);
    }
    expect_error(1, "{\"op\":\"put\",\"expect\":1}", 400, "bad_request");
    /* Over the object cap (4096 in this fixture). */
    {
        struct proto_resp rs;
        cr_assert_eq(call(&rs, 1, "{\"op\":\"put\"}", big, sizeof(big)), 413);
        proto_resp_release(&rs);
    }
}

Test(proto, storage_blob_outlives_store, .init = setup, .fini = teardown)
{
    struct proto_resp rs;
    char a[CAS_ADDR_CHARS + 1], hdr[256];

    cr_assert_eq(call(&rs, 1, "{\"op\":\"put\"}", "keep me", 7), 201);
    proto_resp_release(&rs);
    snprintf(hdr, sizeof(hdr), "{\"op\":\"get\",\"obj\":\"%s\"}", addr_of("keep me", a));
    cr_assert_eq(call(&rs, 1, hdr, NULL, 0), 200);
    storage_free(E.storage);
    E.storage = NULL;
    /* The response still holds its own reference. */
    cr_assert_eq(memcmp(rs.body, "keep me", 7), 0);
    proto_resp_release(&rs);
}

/* -------------------------------------------------------------- index */

Test(proto, index_ops, .init = setup, .fini = teardown)
{
    struct proto_resp rs;
    json_t *h, *b;
    const char *m1 = "{\"parts\":{\"a\":1}}", *m2 = "{\"parts\":{}}";

    cr_assert_eq(call(&rs, 2, "{\"op\":\"put\",\"name\":\"app/home\"}", m1, strlen(m1)), 201);
    cr_assert_str_eq(rs.op, "put");
    h = rhdr(&rs);
    cr_assert(json_is_true(json_object_get(h, "created")));
    json_decref(h);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 2, "{\"op\":\"put\",\"name\":\"app/home\"}", m2, strlen(m2)), 200);
    h = rhdr(&rs);
    cr_assert(json_is_false(json_object_get(h, "created")));
    json_decref(h);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 2, "{\"op\":\"put\",\"name\":\"app/about\"}", m1, strlen(m1)), 201);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 2, "{\"op\":\"put\",\"name\":\"zzz\"}", m1, strlen(m1)), 201);
    proto_resp_release(&rs);

    cr_assert_eq(call(&rs, 2, "{\"op\":\"resolve\",\"name\":\"app/home\"}", NULL, 0), 200);
    cr_assert_str_eq(rs.op, "resolve");
    cr_assert_not_null(rs.buf);
    cr_assert_eq(rs.body_len, strlen(m2));
    cr_assert_eq(memcmp(rs.body, m2, rs.body_len), 0);
    proto_resp_release(&rs);

    cr_assert_eq(call(&rs, 2, "{\"op\":\"search\",\"prefix\":\"app/\",\"limit\":1}", NULL, 0), 200);
    cr_assert_str_eq(rs.op, "search");
    b = json_loadb((const char *)rs.body, rs.body_len, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(b, "names")), 1);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(b, "names"), 0)),
                     "app/about");
    cr_assert(json_is_true(json_object_get(b, "more")));
    json_decref(b);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 2, "{\"op\":\"search\",\"prefix\":\"\",\"limit\":100}", NULL, 0), 200);
    b = json_loadb((const char *)rs.body, rs.body_len, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(b, "names")), 3);
    cr_assert(json_is_false(json_object_get(b, "more")));
    json_decref(b);
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "count")), 3);
    json_decref(h);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 2, "{\"op\":\"search\",\"prefix\":\"q\",\"limit\":5}", NULL, 0), 200);
    cr_assert_eq(rs.body_len, strlen("{\"names\":[],\"more\":false}"));
    proto_resp_release(&rs);
}

Test(proto, index_errors, .init = setup, .fini = teardown)
{
    struct proto_resp rs;

    expect_error(2, "{\"op\":\"resolve\",\"name\":\"missing\"}", 404, "not_found");
    expect_error(2, "{\"op\":\"resolve\"}", 400, "bad_request");
    expect_error(2, "{\"op\":\"resolve\",\"name\":1}", 400, "bad_request");
    expect_error(2, "{\"op\":\"resolve\",\"name\":\"\"}", 400, "bad_request");
    expect_error(2, "{\"op\":\"resolve\",\"name\":\"a\\tb\"}", 400, "bad_request");
    expect_error(2, "{\"op\":\"put\"}", 400, "bad_request");
    cr_assert_eq(call(&rs, 2, "{\"op\":\"put\",\"name\":\"x\"}", "[1]", 3), 400);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 2, "{\"op\":\"put\",\"name\":\"x\"}", "{\"a\":1,\"a\":2}", 13), 400);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 2, "{\"op\":\"put\",\"name\":\"x\"}", "", 0), 400);
    proto_resp_release(&rs);
    expect_error(2, "{\"op\":\"search\",\"limit\":3}", 400, "bad_request");
    expect_error(2, "{\"op\":\"search\",\"prefix\":3,\"limit\":3}", 400, "bad_request");
    expect_error(2, "{\"op\":\"search\",\"prefix\":\"a\"}", 400, "bad_request");
    expect_error(2, "{\"op\":\"search\",\"prefix\":\"a\",\"limit\":0}", 400, "bad_request");
    expect_error(2, "{\"op\":\"search\",\"prefix\":\"a\",\"limit\":101}", 400, "bad_request");
    expect_error(2, "{\"op\":\"search\",\"prefix\":\"a\",\"limit\":\"3\"}", 400, "bad_request");
    expect_error(2, "{\"op\":\"search\",\"prefix\":\"\\u0001\",\"limit\":3}", 400, "bad_request");
}

/* ------------------------------------------------------------ mailbox */

/* The messages array of a RECV/PEEK body (caller decrefs the document):
 * the JSON in front of the bodies, whose lengths must account for every
 * byte after it; *at is where the bodies start. */
static json_t *messages_at(const struct proto_resp *rs, json_t **doc, size_t *at)
{
    json_error_t e;
    *doc = json_loadb((const char *)rs->body, rs->body_len,
                      JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &e);
    cr_assert_not_null(*doc, "body not JSON in front: %.*s", (int)rs->body_len, rs->body);
    json_t *ms = json_object_get(*doc, "messages");
    size_t total = (size_t)e.position;
    for (size_t i = 0; i < json_array_size(ms); i++)
        total += (size_t)json_integer_value(json_object_get(json_array_get(ms, i), "len"));
    cr_assert_eq(total, rs->body_len, "the lengths account for every byte");
    *at = (size_t)e.position;
    return ms;
}

static json_t *messages(const struct proto_resp *rs, json_t **doc)
{
    size_t at;
    return messages_at(rs, doc, &at);
}

/* Message i's body in a RECV/PEEK answer is want[0..n). */
static void assert_body(const struct proto_resp *rs, size_t i, const void *want, size_t n)
{
    json_t *doc;
    size_t at;
    json_t *ms = messages_at(rs, &doc, &at);
    for (size_t k = 0; k < i; k++)
        at += (size_t)json_integer_value(json_object_get(json_array_get(ms, k), "len"));
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(ms, i), "len")), (json_int_t)n);
    cr_assert_eq(memcmp(rs->body + at, want, n), 0);
    json_decref(doc);
}

Test(proto, mailbox_ops, .init = setup, .fini = teardown)
{
    struct proto_resp rs;
    json_t *h, *doc, *ms;
    uint8_t bin[5] = {0, 0xff, '"', '\\', 0x80};

    cr_assert_eq(call(&rs, 3, "{\"op\":\"send\",\"channel\":\"c\"}", "first", 5), 201);
    cr_assert_str_eq(rs.op, "send");
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "id")), 1);
    cr_assert(json_is_false(json_object_get(h, "duplicate")));
    json_decref(h);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 3, "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"k1\"}", bin, 5), 201);
    proto_resp_release(&rs);
    /* Same key: duplicate, same id, 200. */
    cr_assert_eq(call(&rs, 3, "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"k1\"}", bin, 5), 200);
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "id")), 2);
    cr_assert(json_is_true(json_object_get(h, "duplicate")));
    json_decref(h);
    proto_resp_release(&rs);

    /* Peek: newest first, no lease. */
    cr_assert_eq(call(&rs, 3, "{\"op\":\"peek\",\"channel\":\"c\",\"max\":10}", NULL, 0), 200);
    cr_assert_str_eq(rs.op, "peek");
    ms = messages(&rs, &doc);
    cr_assert_eq(json_array_size(ms), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(ms, 0), "id")), 2);
    assert_body(&rs, 0, bin, 5);
    json_decref(doc);
    proto_resp_release(&rs);

    /* Recv: oldest first, leased. */
    cr_assert_eq(
        call(&rs, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":1,\"lease_ms\":5000}", NULL, 0),
        200);
    cr_assert_str_eq(rs.op, "recv");
    ms = messages(&rs, &doc);
    cr_assert_eq(json_array_size(ms), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(ms, 0), "id")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(ms, 0), "deliveries")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(ms, 0), "sent_ms")), 1000);
    assert_body(&rs, 0, "first", 5);
    json_decref(doc);
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "count")), 1);
    json_decref(h);
    proto_resp_release(&rs);
    /* The next recv gets the other one; then none is visible. */
    cr_assert_eq(call(&rs, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":5}", NULL, 0), 200);
    ms = messages(&rs, &doc);
    cr_assert_eq(json_array_size(ms), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(ms, 0), "id")), 2);
    json_decref(doc);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":5}", NULL, 0), 200);
    ms = messages(&rs, &doc);
    cr_assert_eq(json_array_size(ms), 0);
    json_decref(doc);
    proto_resp_release(&rs);

    /* Ack. */
    cr_assert_eq(call(&rs, 3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[1,2,99]}", NULL, 0), 200);
    cr_assert_str_eq(rs.op, "ack");
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "acked")), 2);
    json_decref(h);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 3, "{\"op\":\"peek\",\"channel\":\"c\",\"max\":10}", NULL, 0), 200);
    ms = messages(&rs, &doc);
    cr_assert_eq(json_array_size(ms), 0);
    json_decref(doc);
    proto_resp_release(&rs);
    /* Empty ids array is fine. */
    cr_assert_eq(call(&rs, 3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[]}", NULL, 0), 200);
    proto_resp_release(&rs);
}

Test(proto, mailbox_large_batch, .init = setup, .fini = teardown)
{
    struct proto_resp rs;
    static uint8_t body[64 << 10];
    json_t *doc, *ms;

    memset(body, 0xab, sizeof(body));
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(call(&rs, 3, "{\"op\":\"send\",\"channel\":\"big\"}", body, sizeof(body)),
                     201);
        proto_resp_release(&rs);
    }
    cr_assert_eq(call(&rs, 3, "{\"op\":\"peek\",\"channel\":\"big\",\"max\":100}", NULL, 0), 200);
    cr_assert_gt(rs.body_len, 3 * sizeof(body));
    ms = messages(&rs, &doc);
    cr_assert_eq(json_array_size(ms), 3);
    json_decref(doc);
    assert_body(&rs, 2, body, sizeof(body));
    proto_resp_release(&rs);
}

Test(proto, mailbox_errors, .init = setup, .fini = teardown)
{
    struct proto_resp rs;
    char hdr[1200];
    size_t w;

    expect_error(3, "{\"op\":\"send\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"send\",\"channel\":1}", 400, "bad_request");
    expect_error(3, "{\"op\":\"send\",\"channel\":\"\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"send\",\"channel\":\"c\",\"key\":7}", 400, "bad_request");
    expect_error(3, "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"recv\",\"channel\":\"c\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":0}", 400, "bad_request");
    expect_error(3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":101}", 400, "bad_request");
    expect_error(3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":\"1\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":1,\"lease_ms\":-1}", 400,
                 "bad_request");
    expect_error(3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":1,\"lease_ms\":99999999999}", 400,
                 "bad_request");
    expect_error(3, "{\"op\":\"recv\",\"max\":1}", 400, "bad_request");
    expect_error(3, "{\"op\":\"peek\",\"channel\":\"c\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"peek\",\"channel\":[],\"max\":1}", 400, "bad_request");
    expect_error(3, "{\"op\":\"ack\",\"channel\":\"c\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":1}", 400, "bad_request");
    expect_error(3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[\"1\"]}", 400, "bad_request");
    expect_error(3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[-1]}", 400, "bad_request");
    expect_error(3, "{\"op\":\"ack\",\"ids\":[1]}", 400, "bad_request");
    /* Unknown channel: 404 for ack. */
    expect_error(3, "{\"op\":\"ack\",\"channel\":\"nochan\",\"ids\":[1]}", 404, "not_found");
    /* More than 100 ids. */
    w = (size_t)snprintf(hdr, sizeof(hdr), "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[");
    for (int i = 0; i < 101; i++)
        w += (size_t)snprintf(hdr + w, sizeof(hdr) - w, "%s%d", i ? "," : "", i);
    snprintf(hdr + w, sizeof(hdr) - w, "]}");
    expect_error(3, hdr, 400, "bad_request");
    /* Message over the cap: 413. */
    {
        static uint8_t big[(64 << 10) + 1];
        cr_assert_eq(call(&rs, 3, "{\"op\":\"send\",\"channel\":\"c\"}", big, sizeof(big)), 413);
        proto_resp_release(&rs);
    }
}

/* ---- mailbox: owners, settling, dead letters, stats, types --------------- */

/* The response body parsed (caller decrefs). */
static json_t *rbody(const struct proto_resp *rs)
{
    return json_loadb((const char *)rs->body, rs->body_len, JSON_DISABLE_EOF_CHECK, NULL);
}

Test(proto, mailbox_settle_with_owners_and_outcomes, .init = setup, .fini = teardown)
{
    struct proto_resp rs;
    cr_assert_eq(
        call(&rs, 3, "{\"op\":\"send\",\"channel\":\"c\",\"type\":\"text/plain\"}", "hi", 2), 201);
    proto_resp_release(&rs);
    cr_assert_eq(
        call(&rs, 3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":5,\"owner\":\"alice\"}", "", 0),
        200);
    json_t *b = rbody(&rs);
    json_t *m = json_array_get(json_object_get(b, "messages"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(m, "type")), "text/plain");
    cr_assert(json_integer_value(json_object_get(m, "lease_until_ms")) > 1000, "lease deadline");
    json_decref(b);
    proto_resp_release(&rs);
    /* Another owner can neither ack nor extend; unknown ids are listed. */
    cr_assert_eq(
        call(&rs, 3, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[1,9],\"owner\":\"bob\"}", "", 0),
        200);
    json_t *h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "acked")), 0);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(h, "foreign"), 0)), 1);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(h, "unknown"), 0)), 9);
    json_decref(h);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 3,
                      "{\"op\":\"lease\",\"channel\":\"c\",\"ids\":[1],\"owner\":\"alice\",\"lease_"
                      "ms\":5000}",
                      "", 0),
                 200);
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "done")), 1);
    json_decref(h);
    proto_resp_release(&rs);
    cr_assert_eq(
        call(&rs, 3, "{\"op\":\"nack\",\"channel\":\"c\",\"ids\":[1],\"owner\":\"alice\"}", "", 0),
        200);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 3, "{\"op\":\"stats\",\"channel\":\"c\"}", "", 0), 200);
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "depth")), 1);
    cr_assert_eq(json_integer_value(json_object_get(h, "leased")), 0, "released by the nack");
    cr_assert_eq(json_integer_value(json_object_get(h, "oldest_ms")), 1000);
    json_decref(h);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 3, "{\"op\":\"dead\",\"channel\":\"c\",\"max\":5}", "", 0), 200);
    b = rbody(&rs);
    cr_assert_eq(json_array_size(json_object_get(b, "messages")), 0);
    json_decref(b);
    proto_resp_release(&rs);
    cr_assert_eq(call(&rs, 3, "{\"op\":\"redrive\",\"channel\":\"c\",\"max\":5}", "", 0), 200);
    h = rhdr(&rs);
    cr_assert_eq(json_integer_value(json_object_get(h, "redriven")), 0);
    json_decref(h);
    proto_resp_release(&rs);
}

Test(proto, mailbox_new_fields_are_checked, .init = setup, .fini = teardown)
{
    expect_error(3, "{\"op\":\"send\",\"channel\":\"c\",\"type\":\"a\\\"b\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"send\",\"channel\":\"c\",\"type\":\"\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"recv\",\"channel\":\"c\",\"max\":1,\"owner\":\"\"}", 400,
                 "bad_request");
    expect_error(3, "{\"op\":\"nack\",\"channel\":\"c\",\"ids\":[1],\"delay_ms\":-1}", 400,
                 "bad_request");
    expect_error(3, "{\"op\":\"lease\",\"channel\":\"c\",\"ids\":[1]}", 400, "bad_request");
    expect_error(3, "{\"op\":\"lease\",\"channel\":\"c\",\"ids\":[1],\"lease_ms\":0}", 400,
                 "bad_request");
    expect_error(3, "{\"op\":\"dead\",\"channel\":\"c\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"stats\"}", 400, "bad_request");
    expect_error(3, "{\"op\":\"stats\",\"channel\":\"nope\"}", 404, "not_found");
    struct proto_resp rs;
    cr_assert_eq(call(&rs, 3, "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"k\"}", "a", 1), 201);
    proto_resp_release(&rs);
    {
        struct proto_resp r2;
        cr_assert_eq(call(&r2, 3, "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"k\"}", "b", 1),
                     409);
        proto_resp_release(&r2);
    }
}
