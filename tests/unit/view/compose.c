/*
 * The feed composer (view_feed_compose in src/view/compose.c) on fixed
 * inputs: messages with and without an object, an object that answered, one
 * that failed, one whose bytes do not hash to its address.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "cas/cas.h"
#include "view/compose.h"
#include "view/memo.h"

static void msg(struct feed_entry *e, const char *json, const struct cas_addr *obj, const char *mt)
{
    memset(e, 0, sizeof(*e));
    e->msg.json = json;
    e->msg.json_len = strlen(json);
    if (obj) {
        e->msg.has_obj = true;
        e->part.addr = *obj;
        strcpy(e->part.media_type, mt);
    }
}

static char *compose(struct feed_entry *e, unsigned n, bool *complete)
{
    static char text[4096];
    struct buf out = {0};
    struct jw w;
    jw_init(&w, &out);
    cr_assert_eq(view_feed_compose(&w, "news", 4, e, n, 1.25, 3.5, 1024, "c1", complete), 0);
    cr_assert_lt(out.n, sizeof(text));
    memcpy(text, out.p, out.n);
    text[out.n] = '\0';
    buf_release(&out);
    return text;
}

Test(feed_compose, every_kind_of_message)
{
    cas_init();
    static const char hello[] = "hello";
    struct cas_addr good, other;
    cas_hash(hello, 5, &good);
    cas_hash("other", 5, &other);
    char a_good[CAS_ADDR_CHARS + 1], a_other[CAS_ADDR_CHARS + 1];
    cas_addr_format(&good, a_good);
    cas_addr_format(&other, a_other);

    struct feed_entry e[4];
    msg(&e[0], "{\"id\":4,\"body\":{\"obj\":\"x\"}", &good, "text/plain");
    e[0].res = (struct part_result){.code = 200, .body = (const uint8_t *)hello, .body_len = 5};
    msg(&e[1], "{\"id\":3,\"body\":[1,2]", NULL, NULL);
    msg(&e[2], "{\"id\":2,\"body\":{\"obj\":\"y\"}", &other, "application/json");
    e[2].res = (struct part_result){.code = 0, .err = OG_E_DOWNSTREAM_TIMEOUT};
    msg(&e[3], "{\"id\":1,\"body\":{\"obj\":\"z\"}", &other, "text/plain");
    e[3].res = (struct part_result){.code = 200, .body = (const uint8_t *)hello, .body_len = 5};

    for (int round = 0; round < 2; round++) { /* the second round hits the object memo */
        e[3].res.integrity_failed = false;
        bool complete = true;
        char *got = compose(e, 4, &complete);
        char want[2048];
        snprintf(
            want, sizeof(want),
            "{\"channel\":\"news\",\"messages\":["
            "{\"id\":4,\"body\":{\"obj\":\"x\"},\"object\":{\"status\":200,\"obj\":\"%s\","
            "\"media_type\":\"text/plain\",\"verified\":true,\"size\":5,"
            "\"base64\":\"aGVsbG8=\"}},"
            "{\"id\":3,\"body\":[1,2]},"
            "{\"id\":2,\"body\":{\"obj\":\"y\"},\"object\":{\"error\":\"downstream_timeout\"}},"
            "{\"id\":1,\"body\":{\"obj\":\"z\"},\"object\":{\"error\":\"integrity\"}}],"
            "\"complete\":false,\"timing\":{\"peek_ms\":1.250,\"total_ms\":3.500}}",
            a_good);
        cr_assert_str_eq(got, want);
        cr_assert(!complete);
        cr_assert(e[3].res.integrity_failed);
    }
    memo_thread_release();
}

Test(feed_compose, complete_and_empty)
{
    bool complete = false;
    cr_assert_str_eq(compose(NULL, 0, &complete),
                     "{\"channel\":\"news\",\"messages\":[],\"complete\":true,"
                     "\"timing\":{\"peek_ms\":1.250,\"total_ms\":3.500}}");
    cr_assert(complete);

    struct feed_entry e;
    msg(&e, "{\"id\":9,\"body\":null", NULL, NULL);
    cr_assert_str_eq(compose(&e, 1, &complete),
                     "{\"channel\":\"news\",\"messages\":[{\"id\":9,\"body\":null}],"
                     "\"complete\":true,\"timing\":{\"peek_ms\":1.250,\"total_ms\":3.500}}");
    cr_assert(complete);
}

Test(feed_compose, failed_answers_name_their_cause)
{
    static const struct {
        int code;
        enum og_err err;
        const char *want;
    } CASES[] = {
        {0, OG_E_BUSY, "busy"}, {0, OG_E_INTERNAL, "bad_gateway"}, {404, 0, "not_found"},
        {503, 0, "busy"},       {504, 0, "downstream_timeout"},    {206, 0, "bad_gateway"},
    };
    struct cas_addr a;
    cas_hash("x", 1, &a);
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        struct feed_entry e;
        msg(&e, "{\"id\":1", &a, "text/plain");
        e.res = (struct part_result){.code = CASES[i].code, .err = CASES[i].err};
        bool complete = true;
        char want[128];
        snprintf(want, sizeof(want), "\"object\":{\"error\":\"%s\"}}]", CASES[i].want);
        cr_assert(strstr(compose(&e, 1, &complete), want) != NULL, "%s", CASES[i].want);
        cr_assert(!complete);
    }
}
