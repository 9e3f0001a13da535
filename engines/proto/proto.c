/*
 * proto.c — the app-protocol dispatcher: a typed request → engine call →
 * response header JSON and body (contract in proto.h, docs/OAP.md
 * "App protocols: operations"), and the parser that turns request header
 * JSON into a typed request.
 *
 * The request header is parsed with jansson (JSON_REJECT_DUPLICATES) after
 * its length was checked against PROTO_REQ_HDR_MAX_BYTES, so a peer bounds
 * our parsing work by that cap. A refused field gets the same reason
 * whichever way the op came: the parser checks each field's type and range
 * in the order below and keeps the first refusal (answered once the app and
 * op are known to be served), and proto_exec checks the ranges of a typed
 * op with the same reasons. Response headers are small fixed shapes
 * written into rs->hdr (with snprintf, except for the reads on every view:
 * get, has, peek); bodies are engine references (storage
 * blobs, manifests) or, for search and mailbox batches, one eng_buf built
 * here. Nothing is copied that an engine already holds immutably.
 */
#include "engines/proto/proto.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cas/outboard.h"
#include "core/dec.h"
#include "engines/common/status.h"

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

/* ------------------------------------------------------------- fields */

/* Why a field is refused: one reason per field, on both paths. */
#define R_OBJ     "obj must be a b3 address"
#define R_OFF     "off must be a non-negative integer"
#define R_LEN     "len must be a non-negative integer"
#define R_EXPECT  "expect must be a b3 address"
#define R_NAME    "name must be a string"
#define R_PREFIX  "prefix must be a string"
#define R_LIMIT   "limit must be an integer in 1..100"
#define R_CHANNEL "channel must be a string"
#define R_KEY     "key must be a string of 1..255 bytes"
#define R_MAX     "max must be an integer in 1..100"
#define R_LEASE   "lease_ms must be an integer in 0..43200000"
#define R_IDS     "ids must be an array"
#define R_IDS_MAX "at most 100 ids"
#define R_IDS_INT "ids must be non-negative integers"
#define R_TYPE    "type must be 1..127 printable bytes without quotes or backslashes"
#define R_OWNER   "owner must be a string of 1..255 bytes"
#define R_DELAY   "delay_ms must be an integer in 0..43200000"
#define R_EXTEND  "lease_ms must be an integer in 1..43200000"
_Static_assert(INDEX_SEARCH_MAX == 100 && MAILBOX_BATCH_MAX == 100 &&
                   MAILBOX_LEASE_MAX_MS == 43200000,
               "the reasons name the limits");

static const char *const KIND_NAMES[PROTO__KINDS] = {
    [PROTO_NONE] = "invalid",    [PROTO_GET] = "get",           [PROTO_HAS] = "has",
    [PROTO_PROOF] = "proof",     [PROTO_OUTBOARD] = "outboard", [PROTO_PUT] = "put",
    [PROTO_RESOLVE] = "resolve", [PROTO_SEARCH] = "search",     [PROTO_SEND] = "send",
    [PROTO_RECV] = "recv",       [PROTO_PEEK] = "peek",         [PROTO_ACK] = "ack",
    [PROTO_NACK] = "nack",       [PROTO_LEASE] = "lease",       [PROTO_DEAD] = "dead",
    [PROTO_REDRIVE] = "redrive", [PROTO_STATS] = "stats"};

const char *proto_kind_name(enum proto_kind k)
{
    return k > PROTO_NONE && k < PROTO__KINDS ? KIND_NAMES[k] : KIND_NAMES[PROTO_NONE];
}

static enum proto_kind kind_of(const char *name)
{
    for (int k = PROTO_NONE + 1; k < PROTO__KINDS; k++)
        if (strcmp(name, KIND_NAMES[k]) == 0)
            return (enum proto_kind)k;
    return PROTO_NONE;
}

/* Whether app has op kind k. */
static bool app_has(uint16_t app, enum proto_kind k)
{
    switch (app) {
    case 1: return k >= PROTO_GET && k <= PROTO_PUT;
    case 2: return k == PROTO_RESOLVE || k == PROTO_PUT || k == PROTO_SEARCH;
    case 3: return k >= PROTO_SEND && k <= PROTO_STATS;
    default: return false;
    }
}

/* A media type kept with a message is written into answers unescaped. */
static bool type_ok(struct proto_str t)
{
    if (t.p == NULL)
        return true;
    if (t.n == 0 || t.n > MAILBOX_TYPE_MAX)
        return false;
    for (size_t i = 0; i < t.n; i++)
        if (t.p[i] < 0x20 || t.p[i] > 0x7e || t.p[i] == '"' || t.p[i] == '\\')
            return false;
    return true;
}

static bool owner_ok(struct proto_str o)
{
    return o.p == NULL || (o.n > 0 && o.n <= MAILBOX_KEY_MAX_BYTES);
}

/* The first field of a typed op out of its range, in the order the parser
 * checks them, or NULL. (A parsed op passed these checks already.) */
static const char *check(const struct proto_op *op)
{
    switch (op->kind) {
    case PROTO_GET:
    case PROTO_PROOF:
        if (op->has_off && op->off > INT64_MAX)
            return R_OFF;
        if (op->has_len && op->len > INT64_MAX)
            return R_LEN;
        return NULL;
    case PROTO_PUT: return op->app == 2 && !op->name.p ? R_NAME : NULL;
    case PROTO_RESOLVE: return op->name.p ? NULL : R_NAME;
    case PROTO_SEARCH:
        if (!op->prefix.p)
            return R_PREFIX;
        return op->limit == 0 || op->limit > INDEX_SEARCH_MAX ? R_LIMIT : NULL;
    case PROTO_SEND:
        if (!op->channel.p)
            return R_CHANNEL;
        /* An explicit empty key is an error, not "no key": the engine reads
         * key_len 0 as absent, which would silently drop idempotency. */
        if (op->key.p && op->key.n == 0)
            return R_KEY;
        return type_ok(op->type) ? NULL : R_TYPE;
    case PROTO_RECV:
    case PROTO_PEEK:
    case PROTO_DEAD:
    case PROTO_REDRIVE:
        if (!op->channel.p)
            return R_CHANNEL;
        if (op->max == 0 || op->max > MAILBOX_BATCH_MAX)
            return R_MAX;
        if (op->kind == PROTO_RECV && op->lease_ms > MAILBOX_LEASE_MAX_MS)
            return R_LEASE;
        return op->kind == PROTO_RECV && !owner_ok(op->owner) ? R_OWNER : NULL;
    case PROTO_ACK:
    case PROTO_NACK:
    case PROTO_LEASE:
        if (!op->channel.p)
            return R_CHANNEL;
        if (op->nids && !op->ids)
            return R_IDS;
        if (op->nids > MAILBOX_BATCH_MAX)
            return R_IDS_MAX;
        if (!owner_ok(op->owner))
            return R_OWNER;
        if (op->kind == PROTO_NACK && op->delay_ms > MAILBOX_LEASE_MAX_MS)
            return R_DELAY;
        if (op->kind == PROTO_LEASE && (op->lease_ms == 0 || op->lease_ms > MAILBOX_LEASE_MAX_MS))
            return R_EXTEND;
        return NULL;
    case PROTO_STATS: return op->channel.p ? NULL : R_CHANNEL;
    default: return NULL;
    }
}

size_t proto_op_copy_size(const struct proto_op *op)
{
    const struct proto_str *s[] = {&op->name, &op->prefix, &op->channel,
                                   &op->key,  &op->type,   &op->owner};
    size_t n = op->nids * sizeof(op->ids[0]);

    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        if (s[i]->p)
            n += s[i]->n + 1;
    return n;
}

/* The ids first (mem is aligned for them), then each string with a NUL. */
void proto_op_copy(struct proto_op *dst, const struct proto_op *src, void *mem)
{
    char *m = mem;

    if (dst != src)
        *dst = *src;
    if (src->nids) {
        memcpy(m, src->ids, src->nids * sizeof(src->ids[0]));
        dst->ids = (const uint64_t *)(void *)m;
        m += src->nids * sizeof(src->ids[0]);
    }
    struct proto_str *d[] = {&dst->name, &dst->prefix, &dst->channel,
                             &dst->key,  &dst->type,   &dst->owner};
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        if (!d[i]->p)
            continue;
        memcpy(m, d[i]->p, d[i]->n);
        m[d[i]->n] = '\0';
        d[i]->p = m;
        m += d[i]->n + 1;
    }
}

/* ----------------------------------------------------------- parsing */

/* Each field of a header in order, type and range at once, the first
 * refusal kept in op->bad; the strings point into h. */
static void parse_fields(struct proto_parsed *ps, json_t *h)
{
    struct proto_op *op = &ps->op;
    json_t *arr, *v;
    int r;

#define REFUSE(reason)                                                                             \
    do {                                                                                           \
        op->bad = (reason);                                                                        \
        return;                                                                                    \
    } while (0)
    switch (op->kind) {
    case PROTO_GET:
    case PROTO_HAS:
    case PROTO_PROOF:
    case PROTO_OUTBOARD:
        if (get_addr(h, "obj", &op->obj) != 1)
            REFUSE(R_OBJ);
        if (op->kind == PROTO_HAS || op->kind == PROTO_OUTBOARD)
            return;
        if ((r = get_u64(h, "off", INT64_MAX, &op->off)) < 0)
            REFUSE(R_OFF);
        op->has_off = r == 1;
        if ((r = get_u64(h, "len", INT64_MAX, &op->len)) < 0)
            REFUSE(R_LEN);
        op->has_len = r == 1;
        return;
    case PROTO_PUT:
        if (op->app == 1) {
            if ((r = get_addr(h, "expect", &op->expect)) < 0)
                REFUSE(R_EXPECT);
            op->has_expect = r == 1;
            return;
        }
        __attribute__((fallthrough)); /* index put: a name, as resolve */
    case PROTO_RESOLVE:
        if (get_str(h, "name", &op->name.p, &op->name.n) != 1)
            REFUSE(R_NAME);
        return;
    case PROTO_SEARCH:
        if (get_str(h, "prefix", &op->prefix.p, &op->prefix.n) != 1)
            REFUSE(R_PREFIX);
        if (get_u64(h, "limit", INDEX_SEARCH_MAX, &op->limit) != 1 || op->limit == 0)
            REFUSE(R_LIMIT);
        return;
    default: break;
    }
    /* mailbox */
    if (get_str(h, "channel", &op->channel.p, &op->channel.n) != 1)
        REFUSE(R_CHANNEL);
    switch (op->kind) {
    case PROTO_SEND:
        if ((r = get_str(h, "key", &op->key.p, &op->key.n)) < 0 || (r == 1 && op->key.n == 0))
            REFUSE(R_KEY);
        if (get_str(h, "type", &op->type.p, &op->type.n) < 0 || !type_ok(op->type))
            REFUSE(R_TYPE);
        return;
    case PROTO_RECV:
    case PROTO_PEEK:
    case PROTO_DEAD:
    case PROTO_REDRIVE:
        if (get_u64(h, "max", MAILBOX_BATCH_MAX, &op->max) != 1 || op->max == 0)
            REFUSE(R_MAX);
        if (op->kind == PROTO_RECV &&
            get_u64(h, "lease_ms", MAILBOX_LEASE_MAX_MS, &op->lease_ms) < 0)
            REFUSE(R_LEASE);
        if (op->kind == PROTO_RECV &&
            (get_str(h, "owner", &op->owner.p, &op->owner.n) < 0 || !owner_ok(op->owner)))
            REFUSE(R_OWNER);
        return;
    case PROTO_STATS: return;
    case PROTO_ACK:
    case PROTO_NACK:
    case PROTO_LEASE:
        arr = json_object_get(h, "ids");
        if (!json_is_array(arr))
            REFUSE(R_IDS);
        if (json_array_size(arr) > MAILBOX_BATCH_MAX)
            REFUSE(R_IDS_MAX);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            v = json_array_get(arr, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                REFUSE(R_IDS_INT);
            ps->ids[i] = (uint64_t)json_integer_value(v);
        }
        op->ids = ps->ids;
        op->nids = json_array_size(arr);
        if (get_str(h, "owner", &op->owner.p, &op->owner.n) < 0 || !owner_ok(op->owner))
            REFUSE(R_OWNER);
        if (op->kind == PROTO_NACK &&
            get_u64(h, "delay_ms", MAILBOX_LEASE_MAX_MS, &op->delay_ms) < 0)
            REFUSE(R_DELAY);
        if (op->kind == PROTO_LEASE &&
            (get_u64(h, "lease_ms", MAILBOX_LEASE_MAX_MS, &op->lease_ms) != 1 || op->lease_ms == 0))
            REFUSE(R_EXTEND);
        return;
    default: return;
    }
#undef REFUSE
}

static __thread uint64_t json_parses;

uint64_t proto_json_parses(void)
{
    return json_parses;
}

int proto_op_parse(struct proto_parsed *ps, uint16_t app, const char *hdr, size_t n,
                   struct proto_resp *rs)
{
    json_t *h, *dl;
    json_error_t jerr;
    const char *name;
    size_t name_len;

    memset(&ps->op, 0, sizeof(ps->op));
    ps->op.app = app;
    ps->doc = NULL;
    memset(rs, 0, sizeof(*rs));
    rs->op = proto_kind_name(PROTO_NONE);
    if (!hdr || n == 0)
        return bad(rs, "missing header");
    if (n > PROTO_REQ_HDR_MAX_BYTES)
        return fail(rs, 413, "too_large", "header over 8192 bytes");
    json_parses++;
    ps->doc = h = json_loadb(hdr, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!h)
        return bad(rs, "header is not valid JSON");
    if (!json_is_object(h))
        return bad(rs, "header is not a JSON object");
    if (get_str(h, "op", &name, &name_len) != 1 || strlen(name) != name_len)
        return bad(rs, "op must be a string");
    ps->op.kind = kind_of(name);
    rs->op = proto_kind_name(ps->op.kind);
    if ((dl = json_object_get(h, "deadline_ms")) != NULL) {
        if (!json_is_integer(dl))
            return bad(rs, "deadline_ms must be an integer");
        ps->op.has_deadline = true;
        ps->op.deadline_ms = json_integer_value(dl);
    }
    if (app_has(app, ps->op.kind))
        parse_fields(ps, h);
    return 0;
}

void proto_parsed_release(struct proto_parsed *ps)
{
    json_decref(ps->doc);
    ps->doc = NULL;
}

/* ------------------------------------------------------------- storage */

static int storage_op_get(struct engines *e, const struct proto_op *op, struct proto_resp *rs)
{
    struct storage_view v;
    uint64_t off = op->has_off ? op->off : 0, len = op->has_len ? op->len : STORAGE_LEN_ALL;
    int st;

    st = storage_get(e->storage, &op->obj, off, len, &v);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_RANGE ? "off past the end" : "get failed");
    rs->blob = v.blob;
    rs->body = v.p;
    rs->body_len = v.n;
    /* A request naming a range is answered 206 even when the range covers
     * the whole object: the caller asked for a slice and gets slice fields. */
    rs->code = (op->has_off || op->has_len) ? 206 : 200;
    hdr_obj_size(rs, &op->obj, v.blob->size);
    HDR_LIT(rs, ",\"off\":");
    hdr_u64(rs, off);
    HDR_LIT(rs, ",\"len\":");
    hdr_u64(rs, v.n);
    HDR_LIT(rs, "}");
    return rs->code;
}

static int storage_op_has(struct engines *e, const struct proto_op *op, struct proto_resp *rs)
{
    uint64_t size = 0;
    int st;

    st = storage_has(e->storage, &op->obj, &size);
    if (st != ENG_OK)
        return fail_eng(rs, st, "has failed");
    rs->code = 200;
    hdr_obj_size(rs, &op->obj, size);
    HDR_LIT(rs, "}");
    return 200;
}

/* The groups a range touches, and the proof that ties them to the address:
 * hdr {"obj","size","groups":G,"first":A,"last":B}, body the proof (group
 * values A..B, then siblings; include/cas/outboard.h). An object of one
 * group or none, or an empty range, has no proof: "groups" only, no body. */
static int storage_op_proof(struct engines *e, const struct proto_op *op, struct proto_resp *rs)
{
    struct storage_view v;
    uint64_t off = op->has_off ? op->off : 0, len = op->has_len ? op->len : STORAGE_LEN_ALL;
    int st = storage_get(e->storage, &op->obj, off, len, &v);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_RANGE ? "off past the end" : "proof failed");
    const struct storage_blob *b = v.blob;
    uint64_t a = off / CAS_GROUP_BYTES, z = v.n ? (off + v.n - 1) / CAS_GROUP_BYTES : 0;
    uint64_t k = v.n ? cas_proof_cvs(b->groups, a, z) : 0;
    if (k) {
        struct eng_buf *pb = eng_buf_new(k * CAS_CV_BYTES);
        if (pb == NULL) {
            storage_view_release(&v);
            return fail(rs, 500, "internal", "out of memory");
        }
        cas_proof_build(b->tree, b->groups, a, z, pb->bytes);
        rs->buf = pb;
        rs->body = pb->bytes;
        rs->body_len = k * CAS_CV_BYTES;
    }
    rs->code = 200;
    hdr_obj_size(rs, &op->obj, b->size);
    HDR_LIT(rs, ",\"groups\":");
    hdr_u64(rs, b->groups);
    if (k) {
        HDR_LIT(rs, ",\"first\":");
        hdr_u64(rs, a);
        HDR_LIT(rs, ",\"last\":");
        hdr_u64(rs, z);
    }
    HDR_LIT(rs, "}");
    storage_view_release(&v);
    return 200;
}

/* Every group's value, in order: hdr {"obj","size","groups":G}, body
 * 32 × G bytes (empty for an object of one group or none). */
static int storage_op_outboard(struct engines *e, const struct proto_op *op, struct proto_resp *rs)
{
    struct storage_view v;
    int st = storage_get(e->storage, &op->obj, 0, 0, &v);
    if (st != ENG_OK)
        return fail_eng(rs, st, "outboard failed");
    rs->blob = v.blob;
    rs->body = v.blob->tree;
    rs->body_len = v.blob->tree ? (size_t)v.blob->groups * CAS_CV_BYTES : 0;
    rs->code = 200;
    hdr_obj_size(rs, &op->obj, v.blob->size);
    HDR_LIT(rs, ",\"groups\":");
    hdr_u64(rs, v.blob->groups);
    HDR_LIT(rs, "}");
    return 200;
}

static int storage_op_put(struct engines *e, const struct proto_op *op, const uint8_t *body,
                          size_t body_len, struct proto_resp *rs)
{
    struct cas_addr got;
    char hex[CAS_ADDR_CHARS + 1];
    bool created = false;
    int st;

    st = storage_put(e->storage, body, body_len, op->has_expect ? &op->expect : NULL, &got,
                     &created);
    if (st != ENG_OK)
        return fail_eng(rs, st,
                        st == ENG_E_MISMATCH ? "bytes do not hash to expect" : "put failed");
    rs->code = created ? 201 : 200;
    resp_hdr(rs, "{\"obj\":\"%s\",\"size\":%zu}", cas_addr_format(&got, hex), body_len);
    return rs->code;
}

/* --------------------------------------------------------------- index */

static int index_op_resolve(struct engines *e, const struct proto_op *op, struct proto_resp *rs)
{
    struct eng_buf *b = NULL;
    int st;

    st = index_resolve(e->index, op->name.p, op->name.n, &b);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_INVALID ? "bad name" : "no such name");
    rs->buf = b;
    rs->body = b->bytes;
    rs->body_len = b->size;
    rs->code = 200;
    resp_hdr(rs, "{\"size\":%zu}", b->size);
    return 200;
}

static int index_op_put(struct engines *e, const struct proto_op *op, const uint8_t *body,
                        size_t body_len, struct proto_resp *rs)
{
    bool created = false;
    int st;

    st = index_put(e->index, op->name.p, op->name.n, body, body_len, &created);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_INVALID ? "bad name or manifest" : "put failed");
    rs->code = created ? 201 : 200;
    resp_hdr(rs, "{\"created\":%s}", created ? "true" : "false");
    return rs->code;
}

static int index_op_search(struct engines *e, const struct proto_op *op, struct proto_resp *rs)
{
    struct index_search_result *res;
    json_t *doc = NULL, *names;
    struct eng_buf *b = NULL;
    size_t len;
    int st, code;

    /* About 26 KiB: on the heap, the services run on small stacks too. */
    res = malloc(sizeof(*res));
    if (!res)
        return fail_eng(rs, ENG_E_NOMEM, "out of memory");
    st = index_search(e->index, op->prefix.p, op->prefix.n, (size_t)op->limit, res);
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

/* A receiver's name as the engine's lease owner: a keyed hash, the same in
 * every process (owners are compared within one engine only). 0: none. */
static uint64_t owner_of(struct proto_str o)
{
    static const uint8_t k[16] = "omnigate-owner01";
    return o.p ? eng_siphash(k, o.p, o.n) | 1 : 0;
}

static int mailbox_op_send(struct engines *e, const struct proto_op *op, const uint8_t *body,
                           size_t body_len, uint64_t now_ms, struct proto_resp *rs)
{
    uint64_t id = 0;
    bool dup = false;
    int st;

    st = mailbox_send_typed(e->mailbox, op->channel.p, op->channel.n, body, body_len, op->type.p,
                            op->type.n, op->key.p, op->key.n, now_ms, &id, &dup);
    if (st != ENG_OK)
        return fail_eng(rs, st,
                        st == ENG_E_INVALID    ? "bad channel or key"
                        : st == ENG_E_CONFLICT ? "idempotency key already used for another body"
                                               : "send failed");
    rs->code = dup ? 200 : 201;
    resp_hdr(rs, "{\"id\":%llu,\"duplicate\":%s}", (unsigned long long)id, dup ? "true" : "false");
    return rs->code;
}

/* {"messages":[M..]} then the bodies' bytes, one after another, with
 * M = {"id":N,"deliveries":N,"sent_ms":N[,"lease_until_ms":N][,"type":T],"len":L}
 * (docs/OAP.md "Mailbox answers"). Written straight into one buffer sized
 * from the bodies: the bodies are copied once, as they are, and a reader
 * parses only the small JSON in front of them (a body may be 64 KiB; as a
 * JSON string it would be escaped or base64-encoded, and read character by
 * character). */
#define MSG_K_ID         "{\"id\":"
#define MSG_K_DELIVERIES ",\"deliveries\":"
#define MSG_K_SENT       ",\"sent_ms\":"
#define MSG_K_LEASE      ",\"lease_until_ms\":"
#define MSG_K_TYPE       ",\"type\":\""
#define MSG_K_LEN        ",\"len\":"
#define MSG_FIXED_BYTES  160 /* comma, keys, closing quotes and brace, the numbers */
_Static_assert(1 + sizeof(MSG_K_ID) - 1 + sizeof(MSG_K_DELIVERIES) - 1 + sizeof(MSG_K_SENT) - 1 +
                       sizeof(MSG_K_LEASE) - 1 + sizeof(MSG_K_TYPE) - 1 + 1 + sizeof(MSG_K_LEN) -
                       1 + 1 + 4 * DEC_U64_MAX_CHARS + 10 <=
                   MSG_FIXED_BYTES,
               "a message's fixed part fits MSG_FIXED_BYTES (deliveries is a uint32_t)");

static struct eng_buf *messages_body(const struct mailbox_msg *m, size_t n)
{
    static const char head[] = "{\"messages\":[", tail[] = "]}";
    size_t cap = sizeof(head) + sizeof(tail), w = 0;
    struct eng_buf *b;
    char *p;

    for (size_t i = 0; i < n; i++)
        cap += MSG_FIXED_BYTES + m[i].type_len + m[i].body->size + 1;
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
        if (m[i].lease_until) {
            memcpy(p + w, MSG_K_LEASE, sizeof(MSG_K_LEASE) - 1);
            w += sizeof(MSG_K_LEASE) - 1;
            w += dec_u64(p + w, m[i].lease_until);
        }
        if (m[i].type_len) { /* checked at send: nothing to escape */
            memcpy(p + w, MSG_K_TYPE, sizeof(MSG_K_TYPE) - 1);
            w += sizeof(MSG_K_TYPE) - 1;
            memcpy(p + w, mailbox_msg_type(&m[i]), m[i].type_len);
            w += m[i].type_len;
            p[w++] = '"';
        }
        memcpy(p + w, MSG_K_LEN, sizeof(MSG_K_LEN) - 1);
        w += sizeof(MSG_K_LEN) - 1;
        w += dec_u64(p + w, m[i].body->size);
        p[w++] = '}';
    }
    memcpy(p + w, tail, sizeof(tail) - 1);
    w += sizeof(tail) - 1;
    for (size_t i = 0; i < n; i++) {
        memcpy(p + w, m[i].body->bytes, m[i].body->size);
        w += m[i].body->size;
    }
    b->size = w; /* ≤ cap: the buffer is not published yet */
    return b;
}

static int mailbox_op_batch(struct engines *e, const struct proto_op *op, uint64_t now_ms,
                            struct proto_resp *rs)
{
    size_t n = 0;
    struct mailbox_msg *msgs;
    struct eng_buf *b;
    int st;

    msgs = calloc((size_t)op->max, sizeof(*msgs));
    if (!msgs)
        return fail_eng(rs, ENG_E_NOMEM, "out of memory");
    if (op->kind == PROTO_RECV)
        st = mailbox_lease(e->mailbox, op->channel.p, op->channel.n, (size_t)op->max, op->lease_ms,
                           owner_of(op->owner), now_ms, msgs, &n);
    else if (op->kind == PROTO_DEAD)
        st = mailbox_dlq_peek(e->mailbox, op->channel.p, op->channel.n, (size_t)op->max, now_ms,
                              msgs, &n);
    else
        st = mailbox_peek(e->mailbox, op->channel.p, op->channel.n, (size_t)op->max, now_ms, msgs,
                          &n);
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

/* ack, nack, lease: {"acked"|"done":N, "unknown":[..], "foreign":[..],
 * "not_leased":[..]} — every id in exactly one place. */
static int mailbox_op_settle(struct engines *e, const struct proto_op *op, uint64_t now_ms,
                             struct proto_resp *rs)
{
    enum mailbox_outcome oc[MAILBOX_BATCH_MAX];
    enum mailbox_settle_op sop = op->kind == PROTO_ACK    ? MAILBOX_ACK
                                 : op->kind == PROTO_NACK ? MAILBOX_NACK
                                                          : MAILBOX_EXTEND;
    uint64_t ms = op->kind == PROTO_NACK ? op->delay_ms : op->lease_ms;
    int st = mailbox_settle(e->mailbox, op->channel.p, op->channel.n, sop, op->ids, op->nids,
                            owner_of(op->owner), ms, now_ms, oc);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_NOT_FOUND ? "no such channel" : "bad channel");
    static const char *const LISTS[] = {NULL, "unknown", "foreign", "not_leased"};
    size_t done = 0;
    for (size_t i = 0; i < op->nids; i++)
        done += oc[i] == MAILBOX_DONE;
    rs->code = 200;
    rs->hdr_len = 0;
    HDR_LIT(rs, "{\"");
    hdr_put(rs, op->kind == PROTO_ACK ? "acked" : "done", op->kind == PROTO_ACK ? 5 : 4);
    HDR_LIT(rs, "\":");
    hdr_u64(rs, done);
    for (int l = MAILBOX_UNKNOWN; l <= MAILBOX_NOT_LEASED; l++) {
        HDR_LIT(rs, ",\"");
        hdr_put(rs, LISTS[l], strlen(LISTS[l]));
        HDR_LIT(rs, "\":[");
        bool first = true;
        for (size_t i = 0; i < op->nids; i++) {
            if (oc[i] != (enum mailbox_outcome)l)
                continue;
            if (!first)
                HDR_LIT(rs, ",");
            hdr_u64(rs, op->ids[i]);
            first = false;
        }
        HDR_LIT(rs, "]");
    }
    HDR_LIT(rs, "}");
    return 200;
}

static int mailbox_op_redrive(struct engines *e, const struct proto_op *op, uint64_t now_ms,
                              struct proto_resp *rs)
{
    size_t moved = 0;
    int st =
        mailbox_redrive(e->mailbox, op->channel.p, op->channel.n, (size_t)op->max, now_ms, &moved);
    if (st != ENG_OK)
        return fail_eng(rs, st, "bad channel");
    rs->code = 200;
    resp_hdr(rs, "{\"redriven\":%zu}", moved);
    return 200;
}

static int mailbox_op_stats(struct engines *e, const struct proto_op *op, uint64_t now_ms,
                            struct proto_resp *rs)
{
    struct mailbox_channel_stats cs;
    int st = mailbox_channel_stats(e->mailbox, op->channel.p, op->channel.n, now_ms, &cs);
    if (st != ENG_OK)
        return fail_eng(rs, st, st == ENG_E_NOT_FOUND ? "no such channel" : "bad channel");
    rs->code = 200;
    resp_hdr(rs,
             "{\"depth\":%llu,\"leased\":%llu,\"dead\":%llu,\"dead_dropped\":%llu,"
             "\"next_id\":%llu,\"oldest_ms\":%llu}",
             (unsigned long long)cs.depth, (unsigned long long)cs.leased,
             (unsigned long long)cs.dlq, (unsigned long long)cs.dlq_dropped,
             (unsigned long long)cs.next_id, (unsigned long long)cs.oldest_ms);
    return 200;
}

/* ------------------------------------------------------------ dispatch */

int proto_exec(struct engines *e, const struct proto_op *op, const uint8_t *body, size_t body_len,
               uint64_t now_ms, struct proto_resp *rs)
{
    const char *why;

    memset(rs, 0, sizeof(*rs));
    rs->op = proto_kind_name(op->kind);
    /* The caller has given up: running the op would only spend work (and,
     * for RECV, lease messages nobody will read). */
    if (op->has_deadline && op->deadline_ms <= 0)
        return fail(rs, 504, "deadline_exceeded", "deadline passed before service");
    switch (op->app) {
    case 1: /* OAP_APP_STORAGE */
        if (!e->storage)
            return bad(rs, "storage is not served here");
        break;
    case 2: /* OAP_APP_INDEX */
        if (!e->index)
            return bad(rs, "index is not served here");
        break;
    case 3: /* OAP_APP_MAILBOX */
        if (!e->mailbox)
            return bad(rs, "mailbox is not served here");
        break;
    default: return bad(rs, "unknown app protocol");
    }
    if (!app_has(op->app, op->kind))
        return bad(rs, "unknown op");
    if ((why = op->bad ? op->bad : check(op)) != NULL)
        return bad(rs, why);
    switch (op->kind) {
    case PROTO_GET: return storage_op_get(e, op, rs);
    case PROTO_HAS: return storage_op_has(e, op, rs);
    case PROTO_PROOF: return storage_op_proof(e, op, rs);
    case PROTO_OUTBOARD: return storage_op_outboard(e, op, rs);
    case PROTO_PUT:
        return op->app == 1 ? storage_op_put(e, op, body, body_len, rs)
                            : index_op_put(e, op, body, body_len, rs);
    case PROTO_RESOLVE: return index_op_resolve(e, op, rs);
    case PROTO_SEARCH: return index_op_search(e, op, rs);
    case PROTO_SEND: return mailbox_op_send(e, op, body, body_len, now_ms, rs);
    case PROTO_RECV:
    case PROTO_PEEK:
    case PROTO_DEAD: return mailbox_op_batch(e, op, now_ms, rs);
    case PROTO_ACK:
    case PROTO_NACK:
    case PROTO_LEASE: return mailbox_op_settle(e, op, now_ms, rs);
    case PROTO_REDRIVE: return mailbox_op_redrive(e, op, now_ms, rs);
    case PROTO_STATS: return mailbox_op_stats(e, op, now_ms, rs);
    default: return bad(rs, "unknown op"); /* not reached: app_has */
    }
}

int proto_handle(struct engines *e, const struct proto_req *rq, struct proto_resp *rs)
{
    struct proto_parsed ps;
    int code = proto_op_parse(&ps, rq->app, rq->hdr, rq->hdr_len, rs);

    if (code == 0)
        code = proto_exec(e, &ps.op, rq->body, rq->body_len, rq->now_ms, rs);
    proto_parsed_release(&ps);
    return code;
}
