/*
 * messages.c — mailbox answers turned into output JSON (see messages.h).
 */
#include "view/messages.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "view/compose.h"
#include "view/memo.h"

/* A message body: base64 in the answer, raw bytes after decoding. */
struct body {
    uint8_t *raw; /* NULL when the base64 is malformed */
    size_t len;
};

static struct body body_decode(json_t *m)
{
    json_t *b = json_object_get(m, "body");
    const char *s = json_is_string(b) ? json_string_value(b) : "";
    size_t sl = json_is_string(b) ? json_string_length(b) : 0;
    struct body out = {.raw = malloc(sl / 4 * 3 + 3)};
    long rl = out.raw ? view_base64_decode(s, sl, out.raw) : -1;
    if (rl < 0) {
        free(out.raw);
        out.raw = NULL;
    } else {
        out.len = (size_t)rl;
    }
    return out;
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
    if (b->raw && json_typed(m) && view_valid_json(b->raw, b->len)) {
        jw_key(w, "body");
        jw_raw(w, (const char *)b->raw, b->len);
    } else if (b->raw) {
        jw_key(w, "encoding");
        jw_str(w, "base64");
        jw_key(w, "body");
        view_jw_base64(w, b->raw, b->len);
    } else {
        jw_key(w, "body");
        jw_null(w);
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

static json_t *answer_messages(json_t *doc)
{
    json_t *msgs = doc ? json_object_get(doc, "messages") : NULL;
    return json_is_array(msgs) ? msgs : NULL;
}

static int render_messages(struct jw *w, const uint8_t *p, size_t n)
{
    json_error_t e;
    json_t *doc = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &e);
    json_t *msgs = answer_messages(doc);
    if (msgs == NULL) {
        json_decref(doc);
        return -1;
    }
    size_t i;
    json_t *m;
    jw_arr_open(w);
    json_array_foreach(msgs, i, m)
    {
        struct body b = body_decode(m);
        jw_obj_open(w);
        head_fields(w, m);
        body_field(w, m, &b);
        jw_obj_close(w);
        free(b.raw);
    }
    jw_arr_close(w);
    json_decref(doc);
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
static int feed_record(struct buf *out, json_t *m)
{
    struct body b = body_decode(m);
    json_t *doc = b.raw ? json_loadb((const char *)b.raw, b.len,
                                     JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL)
                        : NULL;
    size_t at = out->n;
    struct jw w;
    int rc = put_u32(out, 0);
    jw_init(&w, out);
    jw_obj_open(&w);
    head_fields(&w, m);
    body_field(&w, m, &b); /* the bytes as sent, as in views */
    free(b.raw);
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
    json_t *doc = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL);
    json_t *msgs = answer_messages(doc);
    int rc = msgs ? 0 : -1;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (rc == 0 && (!json_is_object(m) || feed_record(out, m) != 0))
            rc = -1;
    }
    json_decref(doc);
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
