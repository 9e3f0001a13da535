/*
 * op.c — typed downstream requests and their header JSON (op.h).
 *
 * The builders only fill in a struct. The writer puts a header straight
 * into the caller's array: the keys and op names are fixed ASCII and
 * addresses are hex, so only strings go through the JSON escaper
 * (jw_escape, as every JSON the project writes). Every bound is checked
 * before a byte is written, so DS_OP_HDR_MAX always holds the result and
 * the buffer never grows.
 */
#include "ds/op.h"

#include <stddef.h>
#include <string.h>

#include "core/jw.h"
#include "ds/internal.h"
#include "engines/proto/proto.h"
#include "oap/oap-t.h"

_Static_assert(DS_OP_HDR_MAX <= PROTO_REQ_HDR_MAX_BYTES,
               "every header written is one the services accept");

/* ---- builders ----------------------------------------------------------- */

/* r for kind on svc, read or not. */
static void start(struct ds_req *r, enum ds_service svc, enum proto_kind kind, bool read)
{
    memset(r, 0, sizeof(*r));
    r->svc = svc;
    r->op.app = ds__app_id(svc);
    r->op.kind = kind;
    r->idempotent = read;
}

/* r for kind with one string, the op's field at offset off. */
static int with_str(struct ds_req *r, enum ds_service svc, enum proto_kind kind, bool read,
                    size_t off, const char *p, size_t n)
{
    if (n > DS_OP_STR_MAX)
        return -1;
    start(r, svc, kind, read);
    *(struct proto_str *)(void *)((char *)&r->op + off) = (struct proto_str){p, n};
    return 0;
}
#define FIELD(f) offsetof(struct proto_op, f)

int ds_op_resolve(struct ds_req *r, const char *name, size_t n)
{
    return with_str(r, DS_INDEX, PROTO_RESOLVE, true, FIELD(name), name, n);
}

int ds_op_search(struct ds_req *r, const char *prefix, size_t n, uint64_t limit)
{
    if (with_str(r, DS_INDEX, PROTO_SEARCH, true, FIELD(prefix), prefix, n) != 0)
        return -1;
    r->op.limit = limit;
    return 0;
}

int ds_op_index_put(struct ds_req *r, const char *name, size_t n)
{
    return with_str(r, DS_INDEX, PROTO_PUT, false, FIELD(name), name, n);
}

int ds_op_peek(struct ds_req *r, const char *channel, size_t n, uint64_t max)
{
    if (with_str(r, DS_MAILBOX, PROTO_PEEK, true, FIELD(channel), channel, n) != 0)
        return -1;
    r->op.max = max;
    return 0;
}

int ds_op_send(struct ds_req *r, const char *channel, const char *key)
{
    size_t kn = key ? strlen(key) : 0;
    if (kn > DS_OP_STR_MAX ||
        with_str(r, DS_MAILBOX, PROTO_SEND, false, FIELD(channel), channel, strlen(channel)) != 0)
        return -1;
    r->op.key = (struct proto_str){key, kn};
    return 0;
}

int ds_op_send_typed(struct ds_req *r, const char *channel, size_t n, const char *key, size_t kn,
                     const char *type, size_t tn)
{
    if (kn > DS_OP_STR_MAX || tn > DS_OP_STR_MAX ||
        with_str(r, DS_MAILBOX, PROTO_SEND, false, FIELD(channel), channel, n) != 0)
        return -1;
    if (key && kn)
        r->op.key = (struct proto_str){key, kn};
    if (type && tn)
        r->op.type = (struct proto_str){type, tn};
    return 0;
}

int ds_op_recv(struct ds_req *r, const char *channel, size_t n, uint64_t max, uint64_t lease_ms,
               const char *owner, size_t on)
{
    if (on > DS_OP_STR_MAX ||
        with_str(r, DS_MAILBOX, PROTO_RECV, false, FIELD(channel), channel, n) != 0)
        return -1;
    r->op.max = max;
    r->op.lease_ms = lease_ms;
    if (owner && on)
        r->op.owner = (struct proto_str){owner, on};
    return 0;
}

int ds_op_settle(struct ds_req *r, enum proto_kind kind, const char *channel, size_t n,
                 const uint64_t *ids, size_t nids, const char *owner, size_t on, uint64_t ms)
{
    if (on > DS_OP_STR_MAX || nids > MAILBOX_BATCH_MAX ||
        (kind != PROTO_ACK && kind != PROTO_NACK && kind != PROTO_LEASE) ||
        with_str(r, DS_MAILBOX, kind, false, FIELD(channel), channel, n) != 0)
        return -1;
    r->op.ids = ids;
    r->op.nids = nids;
    if (owner && on)
        r->op.owner = (struct proto_str){owner, on};
    if (kind == PROTO_NACK)
        r->op.delay_ms = ms;
    else if (kind == PROTO_LEASE)
        r->op.lease_ms = ms;
    return 0;
}

int ds_op_dead(struct ds_req *r, enum proto_kind kind, const char *channel, size_t n, uint64_t max)
{
    if ((kind != PROTO_DEAD && kind != PROTO_REDRIVE) ||
        with_str(r, DS_MAILBOX, kind, kind == PROTO_DEAD, FIELD(channel), channel, n) != 0)
        return -1;
    r->op.max = max;
    return 0;
}

int ds_op_stats(struct ds_req *r, const char *channel, size_t n)
{
    return with_str(r, DS_MAILBOX, PROTO_STATS, true, FIELD(channel), channel, n);
}

int ds_op_has(struct ds_req *r, const struct cas_addr *obj)
{
    start(r, DS_STORAGE, PROTO_HAS, true);
    r->op.obj = *obj;
    return 0;
}

int ds_op_proof(struct ds_req *r, const struct cas_addr *obj, uint64_t off, uint64_t len)
{
    start(r, DS_STORAGE, PROTO_PROOF, true);
    r->op.obj = *obj;
    r->op.has_off = r->op.has_len = true;
    r->op.off = off;
    r->op.len = len;
    return 0;
}

int ds_op_outboard(struct ds_req *r, const struct cas_addr *obj)
{
    start(r, DS_STORAGE, PROTO_OUTBOARD, true);
    r->op.obj = *obj;
    return 0;
}

int ds_op_get(struct ds_req *r, const struct cas_addr *obj, bool ranged, uint64_t off, uint64_t len)
{
    start(r, DS_STORAGE, PROTO_GET, true);
    r->op.obj = *obj;
    r->op.has_off = r->op.has_len = ranged;
    r->op.off = ranged ? off : 0;
    r->op.len = ranged ? len : 0;
    r->coalesce = true;
    return 0;
}

int ds_op_put(struct ds_req *r, const struct cas_addr *expect)
{
    start(r, DS_STORAGE, PROTO_PUT, false);
    if (expect) {
        r->op.has_expect = true;
        r->op.expect = *expect;
    }
    return 0;
}

/* ---- the writer --------------------------------------------------------- */

struct w {
    char *p;
    size_t n;
};

static void lit(struct w *w, const char *s, size_t n)
{
    memcpy(w->p + w->n, s, n);
    w->n += n;
}
#define LIT(w, s) lit((w), (s), sizeof(s) - 1)

/* ,"KEY": (the first member has no comma) */
static void key(struct w *w, const char *k)
{
    if (w->n > 1)
        w->p[w->n++] = ',';
    w->p[w->n++] = '"';
    lit(w, k, strlen(k));
    LIT(w, "\":");
}

static void num(struct w *w, const char *k, uint64_t v)
{
    key(w, k);
    w->n += dec_u64(w->p + w->n, v);
}

static void addr(struct w *w, const char *k, const struct cas_addr *a)
{
    key(w, k);
    w->p[w->n++] = '"';
    cas_addr_format(a, w->p + w->n);
    w->n += CAS_ADDR_CHARS;
    w->p[w->n++] = '"';
}

/* A string within DS_OP_STR_MAX, escaped: at most 6 bytes per byte, which
 * DS_OP_HDR_MAX counts for, so the buffer never has to grow. An absent one
 * is left out, as the parser would find it. */
static void string(struct w *w, const char *k, struct proto_str s)
{
    if (s.p == NULL)
        return;
    key(w, k);
    struct buf b = {w->p, w->n + 1, DS_OP_HDR_MAX - 1};
    struct jw j;
    w->p[w->n] = '"';
    jw_init(&j, &b);
    jw_escape(&j, s.p, s.n);
    w->n = b.n;
    w->p[w->n++] = '"';
}

/* The strings of op, for the bound checks. */
static bool strings_fit(const struct proto_op *op)
{
    const struct proto_str *s[] = {&op->name, &op->prefix, &op->channel,
                                   &op->key,  &op->type,   &op->owner};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        if (s[i]->n > DS_OP_STR_MAX)
            return false;
    return true;
}

int ds_op_write(const struct proto_op *op, const char *corr_id, char out[DS_OP_HDR_MAX])
{
    size_t cl = corr_id ? strnlen(corr_id, DS_OP_CORR_ID_MAX + 1) : 0;
    struct w w = {out, 0};

    if (op->kind <= PROTO_NONE || op->kind >= PROTO__KINDS || !strings_fit(op) ||
        cl > DS_OP_CORR_ID_MAX || op->nids > MAILBOX_BATCH_MAX)
        return -1;
    out[w.n++] = '{';
    if (op->has_deadline) {
        key(&w, "deadline_ms");
        if (op->deadline_ms < 0)
            out[w.n++] = '-';
        w.n += dec_u64(out + w.n, op->deadline_ms < 0 ? (uint64_t)0 - (uint64_t)op->deadline_ms
                                                      : (uint64_t)op->deadline_ms);
    }
    if (cl) {
        key(&w, "corr_id");
        out[w.n++] = '"';
        lit(&w, corr_id, cl);
        out[w.n++] = '"';
    }
    key(&w, "op");
    out[w.n++] = '"';
    lit(&w, proto_kind_name(op->kind), strlen(proto_kind_name(op->kind)));
    out[w.n++] = '"';
    switch (op->kind) {
    case PROTO_GET:
        addr(&w, "obj", &op->obj);
        if (op->has_off)
            num(&w, "off", op->off);
        if (op->has_len)
            num(&w, "len", op->len);
        break;
    case PROTO_PROOF:
        addr(&w, "obj", &op->obj);
        num(&w, "off", op->off);
        num(&w, "len", op->len);
        break;
    case PROTO_HAS:
    case PROTO_OUTBOARD: addr(&w, "obj", &op->obj); break;
    case PROTO_PUT:
        if (op->app == OAP_APP_INDEX)
            string(&w, "name", op->name);
        else if (op->has_expect)
            addr(&w, "expect", &op->expect);
        break;
    case PROTO_RESOLVE: string(&w, "name", op->name); break;
    case PROTO_SEARCH:
        string(&w, "prefix", op->prefix);
        num(&w, "limit", op->limit);
        break;
    default: /* mailbox */
        string(&w, "channel", op->channel);
        if (op->kind == PROTO_SEND) {
            string(&w, "key", op->key);
            string(&w, "type", op->type);
        }
        if (op->kind == PROTO_RECV || op->kind == PROTO_PEEK || op->kind == PROTO_DEAD ||
            op->kind == PROTO_REDRIVE)
            num(&w, "max", op->max);
        if (op->kind == PROTO_RECV && op->lease_ms)
            num(&w, "lease_ms", op->lease_ms);
        if (op->kind == PROTO_RECV)
            string(&w, "owner", op->owner);
        if (op->kind == PROTO_ACK || op->kind == PROTO_NACK || op->kind == PROTO_LEASE) {
            key(&w, "ids");
            out[w.n++] = '[';
            for (size_t i = 0; i < op->nids; i++) {
                if (i)
                    out[w.n++] = ',';
                w.n += dec_u64(out + w.n, op->ids[i]);
            }
            out[w.n++] = ']';
            string(&w, "owner", op->owner);
            if (op->kind == PROTO_NACK)
                num(&w, "delay_ms", op->delay_ms);
            if (op->kind == PROTO_LEASE)
                num(&w, "lease_ms", op->lease_ms);
        }
        break;
    }
    out[w.n++] = '}';
    out[w.n] = '\0';
    return (int)w.n;
}
