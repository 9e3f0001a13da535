/*
 * messages.c — mailbox answers turned into output JSON (see messages.h).
 */
#include "view/messages.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "view/compose.h"
#include "view/memo.h"

/* A message body: its bytes in the answer, after the JSON in front. */
struct body {
    const uint8_t *raw;
    size_t len;
};

/* An answer: {"messages":[...]} and then the bodies' bytes, each message's
 * "len" of them in order (docs/OAP.md "Mailbox answers"). */
struct answer {
    json_t *doc;
    json_t *msgs;
    const uint8_t *next, *end; /* the bodies not taken yet */
};

/* Parse the JSON in front (jansson stops at its closing brace and says how
 * many bytes it read) and check that the lengths account for every byte
 * after it. -1 if the answer is malformed. */
static int answer_open(struct answer *a, const uint8_t *p, size_t n)
{
    json_error_t e;
    a->doc = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &e);
    json_t *msgs = a->doc ? json_object_get(a->doc, "messages") : NULL;
    a->msgs = json_is_array(msgs) ? msgs : NULL;
    if (a->msgs == NULL || e.position < 0 || (size_t)e.position > n) {
        json_decref(a->doc);
        return -1;
    }
    a->next = p + e.position;
    a->end = p + n;
    size_t left = n - (size_t)e.position, i;
    json_t *m;
    json_array_foreach(a->msgs, i, m)
    {
        json_t *l = json_object_get(m, "len");
        if (!json_is_object(m) || !json_is_integer(l) || json_integer_value(l) < 0 ||
            (uint64_t)json_integer_value(l) > left) {
            json_decref(a->doc);
            return -1;
        }
        left -= (size_t)json_integer_value(l);
    }
    if (left != 0) {
        json_decref(a->doc);
        return -1;
    }
    return 0;
}

/* The next message's body (answer_open checked the lengths). */
static struct body body_take(struct answer *a, json_t *m)
{
    struct body b = {a->next, (size_t)json_integer_value(json_object_get(m, "len"))};
    a->next += b.len;
    return b;
}

/* Whether a body sent with this media type (NULL: none given) is shown as
 * JSON when it parses as JSON. */
static bool json_typed(json_t *m)
{
    json_t *t = json_object_get(m, "type");
    return !json_is_string(t) || strstr(json_string_value(t), "json") != NULL;
}

/* The body, one way everywhere (views, feeds, the mailbox routes): the
 * bytes as sent when they are JSON (and were not sent as another type),
 * else base64 with "encoding":"base64" before it. */
static void body_field(struct jw *w, json_t *m, const struct body *b)
{
    if (json_typed(m) && view_valid_json(b->raw, b->len)) {
        jw_key(w, "body");
        jw_raw(w, (const char *)b->raw, b->len);
    } else {
        jw_key(w, "encoding");
        jw_str(w, "base64");
        jw_key(w, "body");
        view_jw_base64(w, b->raw, b->len);
    }
}

/* id, sent_ms, then what the answer has of deliveries, lease_until_ms and
 * type. */
static void head_fields(struct jw *w, json_t *m)
{
    static const char *const NUMS[] = {"id", "sent_ms", "deliveries", "lease_until_ms"};
    for (size_t i = 0; i < sizeof(NUMS) / sizeof(NUMS[0]); i++) {
        json_t *v = json_object_get(m, NUMS[i]);
        if (i >= 2 && !json_is_integer(v))
            continue;
        jw_key(w, NUMS[i]);
        jw_uint(w, (uint64_t)json_integer_value(v));
    }
    json_t *t = json_object_get(m, "type");
    if (json_is_string(t)) {
        jw_key(w, "type");
        jw_strn(w, json_string_value(t), json_string_length(t));
    }
}

static int render_messages(struct jw *w, const uint8_t *p, size_t n)
{
    struct answer a;
    if (answer_open(&a, p, n) != 0)
        return -1;
    size_t i;
    json_t *m;
    jw_arr_open(w);
    json_array_foreach(a.msgs, i, m)
    {
        struct body b = body_take(&a, m);
        jw_obj_open(w);
        head_fields(w, m);
        body_field(w, m, &b);
        jw_obj_close(w);
    }
    jw_arr_close(w);
    json_decref(a.doc);
    return 0;
}

int view_messages_render(struct jw *w, const uint8_t *p, size_t n)
{
    return render_messages(w, p, n);
}

int view_messages(struct jw *w, const uint8_t *p, size_t n)
{
    size_t len;
    const char *m = memo_get(MEMO_MESSAGES, p, n, NULL, &len);
    if (m) {
        jw_raw(w, m, len);
        return 0;
    }
    struct buf tmp = {0};
    struct jw tw;
    jw_init(&tw, &tmp);
    int rc = render_messages(&tw, p, n);
    if (rc == 0 && !jw_failed(&tw)) {
        memo_put(MEMO_MESSAGES, p, n, NULL, tmp.p, tmp.n);
        jw_raw(w, tmp.p, tmp.n);
    } else if (rc == 0) {
        w->failed = true;
    }
    buf_release(&tmp);
    return rc;
}

/*
 * Feed records, laid out as
 *     u32 json_len | json | u8 has_obj [| 32-byte address | u8 mt_len | mt]
 * one after another. Native byte order: they never leave the worker.
 */

static int put_u32(struct buf *b, uint32_t v)
{
    return buf_append(b, &v, sizeof(v));
}

/* One record: the message rendered up to its closing brace, then the object
 * its body names, if any. */
static int feed_record(struct buf *out, json_t *m, const struct body *b)
{
    json_t *doc =
        json_loadb((const char *)b->raw, b->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    size_t at = out->n;
    struct jw w;
    int rc = put_u32(out, 0);
    jw_init(&w, out);
    jw_obj_open(&w);
    head_fields(&w, m);
    body_field(&w, m, b); /* the bytes as sent, as in views */
    if (rc != 0 || jw_failed(&w)) {
        json_decref(doc);
        return -1;
    }
    uint32_t jl = (uint32_t)(out->n - at - sizeof(uint32_t));
    memcpy(out->p + at, &jl, sizeof(jl));

    /* Pull-on-read join: a message naming an object gets it attached. */
    struct cas_addr addr;
    json_t *obj = json_object_get(doc, "obj");
    uint8_t has = json_is_string(obj) &&
                  cas_addr_parse(&addr, json_string_value(obj), json_string_length(obj)) == 0;
    rc = buf_append(out, &has, 1);
    if (has && rc == 0) {
        json_t *mt = json_object_get(doc, "media_type");
        const char *t = "application/json";
        if (json_is_string(mt) && json_string_length(mt) <= FEED_MEDIA_TYPE_MAX)
            t = json_string_value(mt);
        uint8_t tl = (uint8_t)strlen(t);
        rc = buf_append(out, addr.b, sizeof(addr.b));
        rc = rc ? rc : buf_append(out, &tl, 1);
        rc = rc ? rc : buf_append(out, t, tl);
    }
    json_decref(doc);
    return rc;
}

static int feed_render(const uint8_t *p, size_t n, struct buf *out)
{
    struct answer a;
    if (answer_open(&a, p, n) != 0)
        return -1;
    int rc = 0;
    size_t i;
    json_t *m;
    json_array_foreach(a.msgs, i, m)
    {
        struct body b = body_take(&a, m);
        if (rc == 0 && feed_record(out, m, &b) != 0)
            rc = -1;
    }
    json_decref(a.doc);
    return rc;
}

int view_feed_decode(const uint8_t *p, size_t n, struct buf *out)
{
    size_t len, start = out->n;
    /* A hit is copied: the feed holds its records across downstream calls,
     * and any memo_put on this worker meanwhile may free the memo's copy. */
    const uint8_t *m = memo_get(MEMO_FEED, p, n, NULL, &len);
    if (m)
        return buf_append(out, m, len);
    if (feed_render(p, n, out) != 0) {
        out->n = start;
        return -1;
    }
    memo_put(MEMO_FEED, p, n, NULL, out->p + start, out->n - start);
    return 0;
}

bool view_feed_next(const struct buf *b, size_t *off, struct feed_msg *m)
{
    const uint8_t *p = (const uint8_t *)b->p + *off, *end = (const uint8_t *)b->p + b->n;
    uint32_t jl;
    if ((size_t)(end - p) < sizeof(jl) + 1)
        return false;
    memcpy(&jl, p, sizeof(jl));
    p += sizeof(jl);
    m->json = (const char *)p;
    m->json_len = jl;
    p += jl;
    m->has_obj = *p++ != 0;
    if (m->has_obj) {
        memcpy(m->addr.b, p, sizeof(m->addr.b));
        p += sizeof(m->addr.b);
        m->media_type_len = *p++;
        m->media_type = (const char *)p;
        p += m->media_type_len;
    }
    *off = (size_t)(p - (const uint8_t *)b->p);
    return true;
}
