/*
 * proto.c — the app-protocol dispatcher: request header JSON → engine call →
 * response header JSON and body (contract in proto.h, docs/OAP.md
 * "App protocols: operations").
 *
 * The request header is parsed with jansson (JSON_REJECT_DUPLICATES) after
 * its length was checked against PROTO_REQ_HDR_MAX_BYTES, so a peer bounds
 * our parsing work by that cap. Response headers are small fixed shapes
 * written into rs->hdr (with snprintf, except for the reads on every view:
 * get, has, peek); bodies are engine references (storage
 * blobs, manifests) or, for search and mailbox batches, one eng_buf built
 * here. Nothing is copied that an engine already holds immutably.
 */
#include "engines/proto/proto.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/dec.h"
#include "engines/common/hash.h"
#include "engines/common/status.h"

/* Largest request header accepted: the DATA header cap of OAP/1
 * (OAP_DATA_HDR_MAX_BYTES); an ACK of MAILBOX_BATCH_MAX 20-digit ids fits. */
#define PROTO_REQ_HDR_MAX_BYTES 8192

/* ------------------------------------------------------------ responses */

static void resp_hdr(struct proto_resp *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void resp_hdr(struct proto_resp *rs, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(rs->hdr, sizeof(rs->hdr), fmt, ap);
    va_end(ap);
    /* Every shape written here is far below the cap; clamp anyway. */
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(rs->hdr))
        n = (int)sizeof(rs->hdr) - 1;
    rs->hdr_len = (size_t)n;
}

uint64_t proto_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The answers to reads (get, has, peek: one per view part or feed item) are
 * assembled without printf. Every shape is far below the header cap; a
 * piece that would not fit is dropped rather than overflowing. */
static void hdr_put(struct proto_resp *rs, const char *s, size_t n)
{
    if (rs->hdr_len + n < sizeof(rs->hdr)) {
        memcpy(rs->hdr + rs->hdr_len, s, n);
        rs->hdr_len += n;
        rs->hdr[rs->hdr_len] = '\0';
    }
}
#define HDR_LIT(rs, lit) hdr_put((rs), (lit), sizeof(lit) - 1)

static void hdr_u64(struct proto_resp *rs, uint64_t v)
{
    char t[DEC_U64_MAX_CHARS];
    hdr_put(rs, t, dec_u64(t, v));
}

/* {"obj":"b3:...","size":N — the caller adds the rest and the brace. */
static void hdr_obj_size(struct proto_resp *rs, const struct cas_addr *a, uint64_t size)
{
    char hex[CAS_ADDR_CHARS + 1];
    rs->hdr_len = 0;
    HDR_LIT(rs, "{\"obj\":\"");
    hdr_put(rs, cas_addr_format(a, hex), CAS_ADDR_CHARS);
    HDR_LIT(rs, "\",\"size\":");
    hdr_u64(rs, size);
}

/* An error response: {"error":code,"reason":text}, empty body. The reason is
 * always one of our static strings, so it needs no JSON escaping. */
static int fail(struct proto_resp *rs, int code, const char *err, const char *reason)
{
    proto_resp_release(rs);
    rs->code = code;
    resp_hdr(rs, "{\"error\":\"%s\",\"reason\":\"%s\"}", err, reason);
    return code;
}

/* An engine's error. Any engine call may run out of memory (a write
 * allocates the next snapshot, a thread's first read its reader slot): that
 * reason is the same whatever the op. */
static int fail_eng(struct proto_resp *rs, int st, const char *reason)
{
    if (st == ENG_E_NOMEM)
        reason = "out of memory";
    return fail(rs, eng_status_http(st), eng_status_code(st), reason);
}

static int bad(struct proto_resp *rs, const char *reason)
{
    return fail(rs, 400, "bad_request", reason);
}

void proto_resp_release(struct proto_resp *rs)
{
    if (!rs)
        return;
    storage_blob_unref(rs->blob);
    rs->blob = NULL;
    eng_buf_unref(rs->buf);
    rs->buf = NULL;
    rs->body = NULL;
    rs->body_len = 0;
}

/* ------------------------------------------------------- header fields */

/* Field getters: 1 = present and valid, 0 = absent, -1 = present with the
 * wrong type or out of range. */

static int get_str(json_t *h, const char *key, const char **p, size_t *n)
{
    json_t *v = json_object_get(h, key);

    if (!v)
        return 0;
    if (!json_is_string(v))
        return -1;
    *p = json_string_value(v);
    *n = json_string_length(v);
    return 1;
}

static int get_u64(json_t *h, const char *key, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(h, key);
    json_int_t i;

    if (!v)
        return 0;
    if (!json_is_integer(v))
        return -1;
    i = json_integer_value(v);
    if (i < 0 || (uint64_t)i > max)
        return -1;
    *out = (uint64_t)i;
    return 1;
}

/* "obj" as an address; 1 ok, 0 absent, -1 malformed. */
static int get_addr(json_t *h, const char *key, struct cas_addr *a)
{
    const char *p;
    size_t n;
    int r = get_str(h, key, &p, &n);

    if (r <= 0)
        return r;
    return cas_addr_parse(a, p, n) == 0 ? 1 : -1;
}

/* ------------------------------------------------------------- storage */

static int storage_op_get(struct engines *e, json_t *h, struct proto_resp *rs)
{
    struct cas_addr a;
    struct storage_view v;
    uint64_t off = 0, len = STORAGE_LEN_ALL;
    int r_off, r_len, st;

    if (get_addr(h, "obj", &a) != 1)
        return bad(rs, "obj must be a b3 address");
    if ((r_off = get_u64(h, "off", INT64_MAX, &off)) < 0)
        return bad(rs, "off must be a non-negative integer");
    if ((r_len = get_u64(h, "len", INT64_MAX, &len)) < 0)
        return bad(rs, "len must be a non-negative integer");
    st = storage_get(e->storage, &a, off, len, &v);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_RANGE ? "off past the end" : "get failed");
    rs->blob = v.blob;
    rs->body = v.p;
    rs->body_len = v.n;
    /* A request naming a range is answered 206 even when the range covers
     * the whole object: the caller asked for a slice and gets slice fields. */
    rs->code = (r_off || r_len) ? 206 : 200;
    hdr_obj_size(rs, &a, v.blob->size);
    HDR_LIT(rs, ",\"off\":");
    hdr_u64(rs, off);
    HDR_LIT(rs, ",\"len\":");
    hdr_u64(rs, v.n);
    HDR_LIT(rs, "}");
    return rs->code;
}

static int storage_op_has(struct engines *e, json_t *h, struct proto_resp *rs)
{
    struct cas_addr a;
    uint64_t size = 0;
    int st;

    if (get_addr(h, "obj", &a) != 1)
        return bad(rs, "obj must be a b3 address");
    st = storage_has(e->storage, &a, &size);
    if (st != ENG_OK)
        return fail_eng(rs, st, "has failed");
    rs->code = 200;
    hdr_obj_size(rs, &a, size);
    HDR_LIT(rs, "}");
    return 200;
}

static int storage_op_put(struct engines *e, json_t *h, const struct proto_req *rq,
                          struct proto_resp *rs)
{
    struct cas_addr expect, got;
    char hex[CAS_ADDR_CHARS + 1];
    bool created = false;
    int r, st;

    if ((r = get_addr(h, "expect", &expect)) < 0)
        return bad(rs, "expect must be a b3 address");
    st = storage_put(e->storage, rq->body, rq->body_len, r ? &expect : NULL, &got, &created);
    if (st != ENG_OK)
        return fail_eng(rs, st,
                        st == ENG_E_MISMATCH ? "bytes do not hash to expect" : "put failed");
    rs->code = created ? 201 : 200;
    resp_hdr(rs, "{\"obj\":\"%s\",\"size\":%zu}", cas_addr_format(&got, hex), rq->body_len);
    return rs->code;
}

/* --------------------------------------------------------------- index */

static int index_op_resolve(struct engines *e, json_t *h, struct proto_resp *rs)
{
    const char *name;
    size_t n;
    struct eng_buf *b = NULL;
    int st;

    if (get_str(h, "name", &name, &n) != 1)
        return bad(rs, "name must be a string");
    st = index_resolve(e->index, name, n, &b);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_INVALID ? "bad name" : "no such name");
    rs->buf = b;
    rs->body = b->bytes;
    rs->body_len = b->size;
    rs->code = 200;
    resp_hdr(rs, "{\"size\":%zu}", b->size);
    return 200;
}

static int index_op_put(struct engines *e, json_t *h, const struct proto_req *rq,
                        struct proto_resp *rs)
{
    const char *name;
    size_t n;
    bool created = false;
    int st;

    if (get_str(h, "name", &name, &n) != 1)
        return bad(rs, "name must be a string");
    st = index_put(e->index, name, n, rq->body, rq->body_len, &created);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_INVALID ? "bad name or manifest" : "put failed");
    rs->code = created ? 201 : 200;
    resp_hdr(rs, "{\"created\":%s}", created ? "true" : "false");
    return rs->code;
}

static int index_op_search(struct engines *e, json_t *h, struct proto_resp *rs)
{
    const char *prefix;
    size_t n;
    uint64_t limit;
    struct index_search_result *res;
    json_t *doc = NULL, *names;
    struct eng_buf *b = NULL;
    size_t len;
    int st, code;

    if (get_str(h, "prefix", &prefix, &n) != 1)
        return bad(rs, "prefix must be a string");
    if (get_u64(h, "limit", INDEX_SEARCH_MAX, &limit) != 1 || limit == 0)
        return bad(rs, "limit must be an integer in 1..100");
    /* About 26 KiB: on the heap, the services run on small stacks too. */
    res = malloc(sizeof(*res));
    if (!res)
        return fail_eng(rs, ENG_E_NOMEM, "out of memory");
    st = index_search(e->index, prefix, n, (size_t)limit, res);
    if (st != ENG_OK) {
        code = fail_eng(rs, st, "bad prefix");
        goto out;
    }
    doc = json_object();
    names = json_array();
    if (!doc || !names || json_object_set_new(doc, "names", names) != 0) {
        if (!doc)
            json_decref(names);
        code = fail_eng(rs, ENG_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < res->count; i++)
        if (json_array_append_new(names, json_stringn(res->name[i], res->len[i])) != 0) {
            code = fail_eng(rs, ENG_E_NOMEM, "out of memory");
            goto out;
        }
    if (json_object_set_new(doc, "more", json_boolean(res->more)) != 0) {
        code = fail_eng(rs, ENG_E_NOMEM, "out of memory");
        goto out;
    }
    len = json_dumpb(doc, NULL, 0, JSON_COMPACT);
    b = len ? eng_buf_new(len) : NULL;
    if (!b || json_dumpb(doc, (char *)b->bytes, len, JSON_COMPACT) != len) {
        eng_buf_unref(b);
        code = fail_eng(rs, ENG_E_NOMEM, "out of memory");
        goto out;
    }
    rs->buf = b;
    rs->body = b->bytes;
    rs->body_len = len;
    rs->code = code = 200;
    resp_hdr(rs, "{\"count\":%zu,\"more\":%s}", res->count, res->more ? "true" : "false");
out:
    json_decref(doc);
    free(res);
    return code;
}

/* ------------------------------------------------------------- mailbox */

static int get_channel(json_t *h, const char **ch, size_t *n)
{
    return get_str(h, "channel", ch, n) == 1;
}

static int mailbox_op_send(struct engines *e, json_t *h, const struct proto_req *rq,
                           struct proto_resp *rs)
{
    const char *ch, *key = NULL;
    size_t ch_len, key_len = 0;
    uint64_t id = 0;
    bool dup = false;
    int st;

    if (!get_channel(h, &ch, &ch_len))
        return bad(rs, "channel must be a string");
    /* An explicit empty key is an error, not "no key": the engine reads
     * key_len 0 as absent, which would silently drop idempotency. */
    if (get_str(h, "key", &key, &key_len) < 0 || (key && key_len == 0))
        return bad(rs, "key must be a string of 1..255 bytes");
    st = mailbox_send(e->mailbox, ch, ch_len, rq->body, rq->body_len, key, key_len, rq->now_ms, &id,
                      &dup);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_INVALID ? "bad channel or key" : "send failed");
    rs->code = dup ? 200 : 201;
    resp_hdr(rs, "{\"id\":%llu,\"duplicate\":%s}", (unsigned long long)id, dup ? "true" : "false");
    return rs->code;
}

/* {"messages":[M..]}, M = {"id":N,"deliveries":N,"sent_ms":N,"body":"<b64>"}
 * written straight into one buffer sized from the bodies: base64 needs no
 * JSON escaping, and a message body may be 64 KiB, so going through jansson
 * would cost a second copy of every body. */
#define MSG_K_ID         "{\"id\":"
#define MSG_K_DELIVERIES ",\"deliveries\":"
#define MSG_K_SENT       ",\"sent_ms\":"
#define MSG_K_BODY       ",\"body\":\""
#define MSG_FIXED_BYTES  96 /* comma, keys, closing quote and brace, the numbers */
_Static_assert(1 + sizeof(MSG_K_ID) - 1 + sizeof(MSG_K_DELIVERIES) - 1 + sizeof(MSG_K_SENT) - 1 +
                       sizeof(MSG_K_BODY) - 1 + 2 + 2 * DEC_U64_MAX_CHARS + 10 <=
                   MSG_FIXED_BYTES,
               "a message's fixed part fits MSG_FIXED_BYTES (deliveries is a uint32_t)");

static struct eng_buf *messages_body(const struct mailbox_msg *m, size_t n)
{
    static const char head[] = "{\"messages\":[", tail[] = "]}";
    size_t cap = sizeof(head) + sizeof(tail), w = 0;
    struct eng_buf *b;
    char *p;

    for (size_t i = 0; i < n; i++)
        cap += MSG_FIXED_BYTES + 4 * ((m[i].body->size + 2) / 3) + 1;
    b = eng_buf_new(cap);
    if (!b)
        return NULL;
    p = (char *)b->bytes;
    memcpy(p, head, sizeof(head) - 1);
    w = sizeof(head) - 1;
    for (size_t i = 0; i < n; i++) {
        if (i)
            p[w++] = ',';
        memcpy(p + w, MSG_K_ID, sizeof(MSG_K_ID) - 1);
        w += sizeof(MSG_K_ID) - 1;
        w += dec_u64(p + w, m[i].id);
        memcpy(p + w, MSG_K_DELIVERIES, sizeof(MSG_K_DELIVERIES) - 1);
        w += sizeof(MSG_K_DELIVERIES) - 1;
        w += dec_u64(p + w, m[i].deliveries);
        memcpy(p + w, MSG_K_SENT, sizeof(MSG_K_SENT) - 1);
        w += sizeof(MSG_K_SENT) - 1;
        w += dec_u64(p + w, m[i].sent_ms);
        memcpy(p + w, MSG_K_BODY, sizeof(MSG_K_BODY) - 1);
        w += sizeof(MSG_K_BODY) - 1;
        /* EVP_EncodeBlock takes an int length: bodies are ≤ max_msg_bytes. */
        w +=
            (size_t)EVP_EncodeBlock((unsigned char *)p + w, m[i].body->bytes, (int)m[i].body->size);
        p[w++] = '"';
        p[w++] = '}';
    }
    memcpy(p + w, tail, sizeof(tail) - 1);
    w += sizeof(tail) - 1;
    b->size = w; /* ≤ cap: the buffer is not published yet */
    return b;
}

static int mailbox_op_batch(struct engines *e, json_t *h, const struct proto_req *rq,
                            struct proto_resp *rs, bool recv)
{
    const char *ch;
    size_t ch_len, n = 0;
    uint64_t max, lease = 0;
    struct mailbox_msg *msgs;
    struct eng_buf *b;
    int st;

    if (!get_channel(h, &ch, &ch_len))
        return bad(rs, "channel must be a string");
    if (get_u64(h, "max", MAILBOX_BATCH_MAX, &max) != 1 || max == 0)
        return bad(rs, "max must be an integer in 1..100");
    if (recv && get_u64(h, "lease_ms", MAILBOX_LEASE_MAX_MS, &lease) < 0)
        return bad(rs, "lease_ms must be an integer in 0..43200000");
    msgs = calloc((size_t)max, sizeof(*msgs));
    if (!msgs)
        return fail_eng(rs, ENG_E_NOMEM, "out of memory");
    if (recv)
        st = mailbox_recv(e->mailbox, ch, ch_len, (size_t)max, lease, rq->now_ms, msgs, &n);
    else
        st = mailbox_peek(e->mailbox, ch, ch_len, (size_t)max, rq->now_ms, msgs, &n);
    if (st != ENG_OK) {
        free(msgs);
        return fail_eng(rs, st, "bad channel");
    }
    b = messages_body(msgs, n);
    mailbox_msgs_release(msgs, n);
    free(msgs);
    /* NEEDSWORK: a RECV whose batch cannot be encoded has leased its
     * messages anyway; they come back when the lease ends. */
    if (!b)
        return fail_eng(rs, ENG_E_NOMEM, "out of memory");
    rs->buf = b;
    rs->body = b->bytes;
    rs->body_len = b->size;
    rs->code = 200;
    rs->hdr_len = 0;
    HDR_LIT(rs, "{\"count\":");
    hdr_u64(rs, n);
    HDR_LIT(rs, "}");
    return 200;
}

static int mailbox_op_ack(struct engines *e, json_t *h, struct proto_resp *rs)
{
    const char *ch;
    size_t ch_len, n, acked = 0;
    uint64_t ids[MAILBOX_BATCH_MAX];
    json_t *arr = json_object_get(h, "ids"), *v;
    int st;

    if (!get_channel(h, &ch, &ch_len))
        return bad(rs, "channel must be a string");
    if (!json_is_array(arr))
        return bad(rs, "ids must be an array");
    n = json_array_size(arr);
    if (n > MAILBOX_BATCH_MAX)
        return bad(rs, "at most 100 ids");
    for (size_t i = 0; i < n; i++) {
        v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad(rs, "ids must be non-negative integers");
        ids[i] = (uint64_t)json_integer_value(v);
    }
    st = mailbox_ack(e->mailbox, ch, ch_len, ids, n, &acked);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_NOT_FOUND ? "no such channel" : "bad channel");
    rs->code = 200;
    resp_hdr(rs, "{\"acked\":%zu}", acked);
    return 200;
}

/* ------------------------------------------------------------ dispatch */

static int dispatch(struct engines *e, json_t *h, const char *op, const struct proto_req *rq,
                    struct proto_resp *rs)
{
#define OP(name) (strcmp(op, name) == 0)
    switch (rq->app) {
    case 1: /* OAP_APP_STORAGE */
        if (!e->storage)
            return bad(rs, "storage is not served here");
        if (OP("get"))
            return storage_op_get(e, h, rs);
        if (OP("has"))
            return storage_op_has(e, h, rs);
        if (OP("put"))
            return storage_op_put(e, h, rq, rs);
        break;
    case 2: /* OAP_APP_INDEX */
        if (!e->index)
            return bad(rs, "index is not served here");
        if (OP("resolve"))
            return index_op_resolve(e, h, rs);
        if (OP("put"))
            return index_op_put(e, h, rq, rs);
        if (OP("search"))
            return index_op_search(e, h, rs);
        break;
    case 3: /* OAP_APP_MAILBOX */
        if (!e->mailbox)
            return bad(rs, "mailbox is not served here");
        if (OP("send"))
            return mailbox_op_send(e, h, rq, rs);
        if (OP("recv"))
            return mailbox_op_batch(e, h, rq, rs, true);
        if (OP("peek"))
            return mailbox_op_batch(e, h, rq, rs, false);
        if (OP("ack"))
            return mailbox_op_ack(e, h, rs);
        break;
    default: return bad(rs, "unknown app protocol");
    }
#undef OP
    return bad(rs, "unknown op");
}

/* The metric label of an op: a static string, so labels stay a fixed set
 * whatever a peer sends. */
static const char *op_label(const char *op)
{
    static const char *const ops[] = {"get",  "has",  "put",  "resolve", "search",
                                      "send", "recv", "peek", "ack"};

    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(op, ops[i]) == 0)
            return ops[i];
    return "invalid";
}

/* Parsed request headers, memoised per thread and matched on their exact
 * bytes (a keyed SipHash only picks the slot). A header's meaning depends only on its bytes; for
 * in-process calls the deadline travels beside the header (proto_req.has_deadline), so the same
 * read of the same object or name is parsed once per thread, not once per request. The memo holds a
 * reference; ops only read the object. */
#define HDR_MEMO_SLOTS   4096
#define HDR_MEMO_KEY_MAX 256
struct hdr_memo {
    uint8_t key[HDR_MEMO_KEY_MAX]; /* the header bytes themselves: exact match */
    size_t key_len;
    json_t *h;
};
static __thread struct hdr_memo *hdr_memo;
static __thread uint8_t hdr_sipkey[16];

void proto_thread_release(void)
{
    if (hdr_memo == NULL)
        return;
    for (size_t i = 0; i < HDR_MEMO_SLOTS; i++)
        json_decref(hdr_memo[i].h);
    free(hdr_memo);
    hdr_memo = NULL;
}

static json_t *parse_hdr(const struct proto_req *rq, json_error_t *jerr)
{
    if (!rq->has_deadline)
        return json_loadb(rq->hdr, rq->hdr_len, JSON_REJECT_DUPLICATES, jerr);
    if (rq->hdr_len > HDR_MEMO_KEY_MAX)
        return json_loadb(rq->hdr, rq->hdr_len, JSON_REJECT_DUPLICATES, jerr);
    if (hdr_memo == NULL) {
        if ((hdr_memo = calloc(HDR_MEMO_SLOTS, sizeof(*hdr_memo))) == NULL)
            return json_loadb(rq->hdr, rq->hdr_len, JSON_REJECT_DUPLICATES, jerr);
        eng_random_key(hdr_sipkey, sizeof(hdr_sipkey));
    }
    /* The slot is picked by a keyed hash; a hit compares the bytes. */
    struct hdr_memo *m = &hdr_memo[eng_siphash(hdr_sipkey, rq->hdr, rq->hdr_len) % HDR_MEMO_SLOTS];
    if (m->h && m->key_len == rq->hdr_len && memcmp(m->key, rq->hdr, rq->hdr_len) == 0)
        return json_incref(m->h);
    json_t *h = json_loadb(rq->hdr, rq->hdr_len, JSON_REJECT_DUPLICATES, jerr);
    if (h && json_is_object(h)) {
        json_decref(m->h);
        memcpy(m->key, rq->hdr, rq->hdr_len);
        m->key_len = rq->hdr_len;
        m->h = json_incref(h);
    }
    return h;
}

int proto_handle(struct engines *e, const struct proto_req *rq, struct proto_resp *rs)
{
    json_t *h;
    json_error_t jerr;
    const char *op;
    size_t op_len;
    json_int_t dl;
    int code;

    memset(rs, 0, sizeof(*rs));
    rs->op = "invalid";
    if (!rq->hdr || rq->hdr_len == 0)
        return bad(rs, "missing header");
    if (rq->hdr_len > PROTO_REQ_HDR_MAX_BYTES)
        return fail(rs, 413, "too_large", "header over 8192 bytes");
    h = parse_hdr(rq, &jerr);
    if (!h)
        return bad(rs, "header is not valid JSON");
    if (!json_is_object(h)) {
        code = bad(rs, "header is not a JSON object");
        goto out;
    }
    if (get_str(h, "op", &op, &op_len) != 1 || strlen(op) != op_len) {
        code = bad(rs, "op must be a string");
        goto out;
    }
    rs->op = op_label(op);
    if (rq->has_deadline && rq->deadline_ms <= 0) {
        code = fail(rs, 504, "deadline_exceeded", "deadline passed before service");
        goto out;
    }
    if (json_object_get(h, "deadline_ms")) {
        json_t *v = json_object_get(h, "deadline_ms");
        if (!json_is_integer(v)) {
            code = bad(rs, "deadline_ms must be an integer");
            goto out;
        }
        dl = json_integer_value(v);
        if (dl <= 0) {
            /* The caller has given up: running the op would only spend
             * work (and, for RECV, lease messages nobody will read). */
            code = fail(rs, 504, "deadline_exceeded", "deadline passed before service");
            goto out;
        }
    }
    code = dispatch(e, h, op, rq, rs);
out:
    json_decref(h);
    return code;
}
