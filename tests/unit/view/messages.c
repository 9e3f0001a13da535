/*
 * Mailbox answers rendered for views and feeds (src/view/messages.c),
 * fresh and from the memo.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "view/memo.h"
#include "view/messages.h"

#define ADDR "b3:1e39041ddf1a4ceb44da9dd4794e47204dfc1b6e0dc03e16d7567769bac25ab6"

/* A peek answer: the JSON in front, then the bodies' bytes. */
static size_t with_bodies(char *out, size_t cap, const char *json, const char *const *bodies,
                          const size_t *lens, size_t n)
{
    size_t w = strlen(json);
    cr_assert(w < cap);
    memcpy(out, json, w);
    for (size_t i = 0; i < n; i++) {
        cr_assert(w + lens[i] <= cap);
        memcpy(out + w, bodies[i], lens[i]);
        w += lens[i];
    }
    return w;
}

/* A peek answer with four messages: JSON naming an object with a media type,
 * JSON naming nothing, binary bytes, and text that is not JSON. */
static size_t answer(char *out, size_t cap)
{
    const char *m1 = "{\"obj\": \"" ADDR "\", \"media_type\": \"text/plain\"}";
    const char *const bodies[] = {m1, "[1, 2]", "\x00\xff", "not json"};
    const size_t lens[] = {strlen(m1), 6, 2, 8};
    char json[512];
    snprintf(json, sizeof(json),
             "{\"messages\":[{\"id\":3,\"sent_ms\":1000,\"len\":%zu},"
             "{\"id\":2,\"sent_ms\":900,\"len\":6},"
             "{\"id\":1,\"sent_ms\":800,\"len\":2},"
             "{\"id\":0,\"sent_ms\":700,\"len\":8}]}",
             lens[0]);
    return with_bodies(out, cap, json, bodies, lens, 4);
}

static void check_records(const struct buf *rec)
{
    struct feed_msg m;
    size_t off = 0;
    cr_assert(view_feed_next(rec, &off, &m));
    /* The body as sent, spaces and all: feeds and views render it alike. */
    cr_assert_eq(m.json_len, strlen("{\"id\":3,\"sent_ms\":1000,\"body\":{\"obj\": \"" ADDR
                                    "\", \"media_type\": \"text/plain\"}"));
    const char *head = "{\"id\":3,\"sent_ms\":1000,\"body\":{\"obj\": ";
    cr_assert(memcmp(m.json, head, strlen(head)) == 0);
    cr_assert(m.has_obj);
    struct cas_addr want;
    cr_assert(cas_addr_parse(&want, ADDR, strlen(ADDR)) == 0);
    cr_assert(memcmp(m.addr.b, want.b, sizeof(want.b)) == 0);
    cr_assert_eq(m.media_type_len, 10);
    cr_assert(memcmp(m.media_type, "text/plain", 10) == 0);

    cr_assert(view_feed_next(rec, &off, &m));
    /* [1, 2] stays [1, 2], as a view shows it (it used to be re-serialised). */
    cr_assert_eq(m.json_len, strlen("{\"id\":2,\"sent_ms\":900,\"body\":[1, 2]"));
    cr_assert(memcmp(m.json, "{\"id\":2,\"sent_ms\":900,\"body\":[1, 2]", m.json_len) == 0);
    cr_assert(!m.has_obj);

    cr_assert(view_feed_next(rec, &off, &m));
    cr_assert(memcmp(m.json, "{\"id\":1,\"sent_ms\":800,\"encoding\":\"base64\",\"body\":\"AP8=\"",
                     m.json_len) == 0);
    cr_assert(!m.has_obj);

    cr_assert(view_feed_next(rec, &off, &m));
    cr_assert(memcmp(m.json,
                     "{\"id\":0,\"sent_ms\":700,\"encoding\":\"base64\",\"body\":\"bm90IGpzb24=\"",
                     m.json_len) == 0);
    cr_assert(!view_feed_next(rec, &off, &m));
}

Test(messages, feed_records_fresh_then_memoised)
{
    char ans[1024];
    size_t n = answer(ans, sizeof(ans));
    for (int round = 0; round < 2; round++) { /* the second round is a memo hit */
        struct buf rec = {0};
        cr_assert_eq(view_feed_decode((const uint8_t *)ans, n, &rec), 0);
        check_records(&rec);
        buf_release(&rec);
    }
    memo_thread_release();
}

Test(messages, feed_malformed_answers)
{
    const char *bad[] = {"", "{", "[]", "{\"messages\":{}}", "{\"messages\":[1]}",
                         "{\"messages\":[],\"messages\":[]}",
                         /* lengths that do not account for the bytes after the JSON */
                         "{\"messages\":[{\"id\":1,\"sent_ms\":1}]}x",
                         "{\"messages\":[{\"id\":1,\"sent_ms\":1,\"len\":2}]}x",
                         "{\"messages\":[{\"id\":1,\"sent_ms\":1,\"len\":1}]}xy",
                         "{\"messages\":[{\"id\":1,\"sent_ms\":1,\"len\":-1}]}",
                         "{\"messages\":[{\"id\":1,\"sent_ms\":1,\"len\":\"1\"}]}x",
                         "{\"messages\":[]}trailing"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf rec = {0};
        cr_assert(buf_append(&rec, "keep", 4) == 0);
        cr_assert_eq(view_feed_decode((const uint8_t *)bad[i], strlen(bad[i]), &rec), -1, "%s",
                     bad[i]);
        cr_assert_eq(rec.n, 4, "output untouched for %s", bad[i]);
        buf_release(&rec);
    }
    struct buf rec = {0};
    cr_assert_eq(view_feed_decode((const uint8_t *)"{\"messages\":[]}", 15, &rec), 0);
    size_t off = 0;
    struct feed_msg m;
    cr_assert(!view_feed_next(&rec, &off, &m));
    buf_release(&rec);
    memo_thread_release();
}

Test(messages, view_messages_array)
{
    char ans[1024];
    size_t n = answer(ans, sizeof(ans));
    for (int round = 0; round < 2; round++) {
        struct buf out = {0};
        struct jw w;
        jw_init(&w, &out);
        cr_assert_eq(view_messages(&w, (const uint8_t *)ans, n), 0);
        cr_assert(buf_append(&out, "", 1) == 0);
        cr_assert(strstr(out.p, "{\"id\":2,\"sent_ms\":900,\"body\":[1, 2]}") != NULL, "%s", out.p);
        cr_assert(
            strstr(out.p, "{\"id\":1,\"sent_ms\":800,\"encoding\":\"base64\",\"body\":\"AP8=\"}") !=
            NULL);
        cr_assert(strstr(out.p, "{\"id\":0,\"sent_ms\":700,\"encoding\":\"base64\",\"body\":"
                                "\"bm90IGpzb24=\"}]") != NULL);
        buf_release(&out);
    }
    struct buf out = {0};
    struct jw w;
    jw_init(&w, &out);
    cr_assert_eq(view_messages(&w, (const uint8_t *)"{}", 2), -1);
    buf_release(&out);
    memo_thread_release();
}

/* One message whose JSON body names ADDR with a media type of mt_len 'x's. */
static size_t answer_with_media_type(char *out, size_t cap, size_t mt_len)
{
    char body[512], json[128], mt[256];
    memset(mt, 'x', mt_len);
    mt[mt_len] = '\0';
    int bl = snprintf(body, sizeof(body), "{\"obj\":\"" ADDR "\",\"media_type\":\"%s\"}", mt);
    snprintf(json, sizeof(json), "{\"messages\":[{\"id\":1,\"sent_ms\":1,\"len\":%d}]}", bl);
    const char *const bodies[] = {body};
    const size_t lens[] = {(size_t)bl};
    return with_bodies(out, cap, json, bodies, lens, 1);
}

Test(messages, feed_media_type_bound)
{
    char ans[2048];
    for (size_t mt_len = FEED_MEDIA_TYPE_MAX; mt_len <= FEED_MEDIA_TYPE_MAX + 1; mt_len++) {
        size_t n = answer_with_media_type(ans, sizeof(ans), mt_len);
        struct buf rec = {0};
        struct feed_msg m;
        size_t off = 0;
        cr_assert_eq(view_feed_decode((const uint8_t *)ans, n, &rec), 0);
        cr_assert(view_feed_next(&rec, &off, &m) && m.has_obj);
        if (mt_len <= FEED_MEDIA_TYPE_MAX) { /* kept whole */
            cr_assert_eq(m.media_type_len, mt_len);
            cr_assert_eq(m.media_type[0], 'x');
        } else { /* too long for a part: the default */
            cr_assert_eq(m.media_type_len, strlen("application/json"));
            cr_assert(memcmp(m.media_type, "application/json", m.media_type_len) == 0);
        }
        buf_release(&rec);
    }
    memo_thread_release();
}
