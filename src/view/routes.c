/*
 * routes.c — hydration handlers: resolve, plan, fan out, compose.
 *
 * Every handler follows the same shape, given by handler/hctx.h: validate
 * the request, start downstream calls bounded by the hop deadline, let the
 * context cancel them if the client goes or the request times out, and
 * answer from the callbacks. Failures keep their cause: 504 deadline, 503
 * shed, 502 bad downstream, 404 missing name. The documents themselves are
 * written by view/compose.c.
 */
#include "view/routes.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cas/outboard.h"
#include "config/config.h"
#include "core/dec.h"
#include "ds/ds.h"
#include "ds/op.h"
#include "handler/hctx.h"
#include "http/query.h"
#include "http/response.h"
#include "view/compose.h"
#include "view/memo.h"
#include "view/messages.h"
#include "view/plan.h"

#define SEARCH_LIMIT_MAX 10
#define FEED_LIMIT_MAX   50

/* Start op for h's request, bounded by the hop deadline. */
static int start(struct hctx *h, struct hctx_call *c, struct ds_req *op, const char *hop,
                 hctx_resp_fn cb)
{
    op->deadline_ms = hctx_hop_deadline(h->req);
    return hctx_call(h, c, op, hop, cb);
}

/* Begin handling req with the context h (NULL when it could not be
 * allocated) by its first call c, op (op_rc != 0 when it could not be
 * built). On any failure the request is answered 500 and the context
 * released. */
static void begin(struct http_req *req, struct hctx *h, hctx_release_fn release,
                  struct hctx_call *c, int op_rc, struct ds_req *op, const char *hop,
                  hctx_resp_fn cb)
{
    if (h == NULL) {
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    hctx_init(h, req, release);
    if (op_rc != 0 || start(h, c, op, hop, cb) != 0)
        hctx_fail(h, OG_E_INTERNAL, NULL);
}

/* A part's answer into its result; a body to compose from is kept (*kept,
 * freed with the handler's context). */
static void part_take(struct part_result *res, struct ds_resp **kept, struct ds_resp *r)
{
    res->code = r->code;
    res->err = r->err;
    res->ms = r->latency_ms;
    if (r->code != 200 && r->code != 206)
        return;
    *kept = ds_resp_keep(r);
    if (*kept == NULL) {
        res->code = 0;
        res->err = OG_E_INTERNAL;
        return;
    }
    res->body = (*kept)->body;
    res->body_len = (*kept)->body_len;
}

/* Answer 200 with a composed document; an incomplete one says so in
 * X-View-Complete (or, if that header does not fit, by closing after). */
static void respond_doc(struct http_req *req, struct buf *out, bool complete)
{
    if (!complete && http_add_header(req, "X-View-Complete", "false", 5) != 0)
        req->close_after = true;
    http_respond_buf(req, 200, "application/json", out);
}

/* ---- simple single-call routes ------------------------------------------ */

struct one_ctx {
    struct hctx h;
    struct hctx_call call;
};

static void one_on_resp(struct hctx_call *c, struct ds_resp *r)
{
    if (r->code != 200) {
        hctx_fail_call(c->h, r, "index");
        return;
    }
    http_respond(hctx_end(c->h), 200, "application/json", r->body, r->body_len);
}

static void one_start(struct http_req *req, int op_rc, struct ds_req *op, const char *hop)
{
    struct one_ctx *c = calloc(1, sizeof(*c));
    begin(req, c ? &c->h : NULL, NULL, c ? &c->call : NULL, op_rc, op, hop, one_on_resp);
}

void view_on_index(struct http_req *req)
{
    if (!hctx_name_check(req, "name"))
        return;
    struct ds_req op;
    int rc = ds_op_resolve(&op, req->param.p, req->param.n);
    one_start(req, rc, &op, "index.resolve");
}

void view_on_search(struct http_req *req)
{
    char q[VIEW_NAME_MAX + 1];
    uint64_t limit;
    int qn = query_get(req->query, "q", q, sizeof(q));
    if (qn < 0) {
        http_respond_error(req, OG_E_BAD_REQUEST,
                           "q (a name prefix of at most 255 bytes) is required");
        return;
    }
    if (query_get_uint(req->query, "limit", 1, SEARCH_LIMIT_MAX, SEARCH_LIMIT_MAX, &limit) != 0) {
        http_respond_error(req, OG_E_BAD_REQUEST, "limit must be 1 to 10");
        return;
    }
    struct ds_req op;
    int rc = ds_op_search(&op, q, (size_t)qn, limit);
    one_start(req, rc, &op, "index.search");
}

/* ---- /v1/view/{name} ---------------------------------------------------- */

/* Per-part call state, sized to the plan once it is known. */
struct part_state {
    struct ds_resp *kept;
    struct hctx_call call;
    struct ds_resp *proof_kept; /* a ranged object part's proof */
    struct hctx_call proof_call;
};

struct view_ctx {
    struct hctx h;
    struct hctx_call resolve;
    uint64_t t0_ns;
    double resolve_ms;
    struct buf fields;      /* the manifest's own fields, pre-rendered */
    struct view_plan *plan; /* parts[0..nparts) valid */
    struct part_state *ps;
    struct part_result *res; /* what the composer reads, one per part */
};

/* Plan memo value: the plan's parts, then the fields fragment. */
struct plan_memo_hdr {
    uint32_t nparts;
    uint32_t fields_len;
};

static void view_release(struct hctx *h)
{
    struct view_ctx *v = container_of(h, struct view_ctx, h);
    if (v->ps)
        for (unsigned i = 0; i < v->plan->nparts; i++) {
            ds_resp_free(v->ps[i].kept);
            ds_resp_free(v->ps[i].proof_kept);
        }
    free(v->ps);
    free(v->res);
    free(v->plan);
    buf_release(&v->fields);
    free(v);
}

static void view_finish(struct view_ctx *v)
{
    struct http_req *req = v->h.req;
    const struct og_config *cfg = hctx_cfg(req);
    struct buf out = {0};
    struct jw j;
    struct compose_out co;
    jw_init(&j, &out);
    double total = (double)(uv_hrtime() - v->t0_ns) / 1e6;
    char name[VIEW_NAME_MAX + 1];
    memcpy(name, req->param.p, req->param.n);
    name[req->param.n] = '\0';
    int rc = view_compose(&j, name, v->fields.p, v->fields.n, v->plan, v->res, v->resolve_ms, total,
                          (uint64_t)cfg->view_inline_max, req->corr_id, &co);
    if (rc != 0) {
        buf_release(&out);
        hctx_fail(&v->h, OG_E_INTERNAL, "out of memory composing the view");
        return;
    }
    if (co.required_failed) {
        char reason[128];
        snprintf(reason, sizeof(reason), "required part '%s' failed", co.fail_key);
        buf_release(&out);
        hctx_fail(&v->h, co.fail_err, reason);
        return;
    }
    respond_doc(hctx_end(&v->h), &out, co.complete);
}

static void part_on_resp(struct hctx_call *c, struct ds_resp *r)
{
    struct view_ctx *v = container_of(c->h, struct view_ctx, h);
    struct part_state *ps = container_of(c, struct part_state, call);
    part_take(&v->res[ps - v->ps], &ps->kept, r);
    if (hctx_idle(&v->h))
        view_finish(v);
}

/* A ranged part's proof: kept for the composer, which fails the part when
 * the proof call failed. */
static void part_on_proof(struct hctx_call *c, struct ds_resp *r)
{
    struct view_ctx *v = container_of(c->h, struct view_ctx, h);
    struct part_state *ps = container_of(c, struct part_state, proof_call);
    struct part_result *res = &v->res[ps - v->ps];
    res->proof_code = r->code;
    res->proof_err = r->err;
    if (r->code == 200 && (ps->proof_kept = ds_resp_keep(r)) == NULL) {
        res->proof_code = 0;
        res->proof_err = OG_E_INTERNAL;
    } else if (r->code == 200) {
        res->proof_hdr = ps->proof_kept->hdr;
        res->proof_hdr_len = ps->proof_kept->hdr_len;
        res->proof = ps->proof_kept->body;
        res->proof_len = ps->proof_kept->body_len;
    }
    if (hctx_idle(&v->h))
        view_finish(v);
}

/* Start part i's call (a ranged object part: its groups and their proof,
 * in parallel). Returns 0, 1 for a part that needs no call (a link), or
 * -1. */
static int part_start(struct view_ctx *v, unsigned i)
{
    const struct view_part *p = &v->plan->parts[i];
    struct ds_req op;
    const char *hop;
    int rc;
    switch (p->kind) {
    case PART_OBJECT:
        hop = "storage";
        if (p->ranged) {
            uint64_t off = p->first / CAS_GROUP_BYTES * CAS_GROUP_BYTES;
            uint64_t end = (p->last / CAS_GROUP_BYTES + 1) * CAS_GROUP_BYTES;
            struct ds_req pr;
            (void)ds_op_proof(&pr, &p->addr, p->first, p->last - p->first + 1);
            if (start(&v->h, &v->ps[i].proof_call, &pr, hop, part_on_proof) != 0)
                return -1;
            rc = ds_op_get(&op, &p->addr, true, off, end - off);
            break;
        }
        rc = ds_op_get(&op, &p->addr, false, 0, 0);
        break;
    case PART_MAILBOX:
        hop = "mailbox";
        rc = ds_op_peek(&op, p->channel, strlen(p->channel), p->limit);
        break;
    case PART_INDEX:
        hop = "index";
        rc = ds_op_resolve(&op, p->name, strlen(p->name));
        break;
    default: return 1;
    }
    return rc == 0 ? start(&v->h, &v->ps[i].call, &op, hop, part_on_resp) : -1;
}

/* Manifest bytes → plan and fields, through the plan memo (a manifest's
 * plan depends only on its bytes and the two limits). Returns 0, or -1 with
 * *err and *why: OG_E_NOT_FOUND for a name that is not a view, else
 * OG_E_BAD_GATEWAY (a broken manifest is a bad downstream answer). */
static int plan_for(struct view_ctx *v, const uint8_t *m, size_t n, enum og_err *err,
                    const char **why)
{
    const struct og_config *cfg = hctx_cfg(v->h.req);
    char extra[2 * DEC_U64_MAX_CHARS + 2];
    size_t len = dec_u64(extra, (uint64_t)cfg->view_max_parts);
    extra[len++] = '|';
    extra[len + dec_u64(extra + len, (uint64_t)cfg->view_inline_max)] = '\0';
    *err = OG_E_BAD_GATEWAY;
    v->plan = malloc(sizeof(*v->plan));
    if (v->plan == NULL) {
        *why = "out of memory";
        return -1;
    }
    const uint8_t *hit = memo_get(MEMO_PLAN, m, n, extra, &len);
    if (hit) {
        struct plan_memo_hdr h;
        memcpy(&h, hit, sizeof(h));
        v->plan->nparts = h.nparts;
        memcpy(v->plan->parts, hit + sizeof(h), h.nparts * sizeof(struct view_part));
        if (buf_append(&v->fields, hit + sizeof(h) + h.nparts * sizeof(struct view_part),
                       h.fields_len) != 0) {
            *why = "out of memory";
            return -1;
        }
        return 0;
    }
    json_error_t e;
    json_t *man = json_loadb((const char *)m, n, JSON_REJECT_DUPLICATES, &e);
    *why = "manifest is not valid JSON";
    if (man == NULL)
        return -1;
    int rc = view_plan_build(man, (unsigned)cfg->view_max_parts, (uint64_t)cfg->view_inline_max,
                             v->plan, err, why);
    if (rc == 0 && view_manifest_fields(man, &v->fields) != 0) {
        *err = OG_E_BAD_GATEWAY;
        *why = "out of memory";
        rc = -1;
    }
    json_decref(man);
    if (rc != 0) {
        v->plan->nparts = 0;
        return -1;
    }
    size_t parts_len = v->plan->nparts * sizeof(struct view_part);
    size_t total = sizeof(struct plan_memo_hdr) + parts_len + v->fields.n;
    uint8_t *val = malloc(total);
    if (val) {
        struct plan_memo_hdr h = {v->plan->nparts, (uint32_t)v->fields.n};
        memcpy(val, &h, sizeof(h));
        memcpy(val + sizeof(h), v->plan->parts, parts_len);
        memcpy(val + sizeof(h) + parts_len, v->fields.p, v->fields.n);
        memo_put(MEMO_PLAN, m, n, extra, val, total);
        free(val);
    }
    return 0;
}

static void resolve_on_resp(struct hctx_call *c, struct ds_resp *r)
{
    struct view_ctx *v = container_of(c, struct view_ctx, resolve);
    v->resolve_ms = r->latency_ms;
    if (r->code != 200) {
        hctx_fail_call(&v->h, r, "resolving the view's manifest");
        return;
    }
    enum og_err err;
    const char *why;
    if (plan_for(v, r->body, r->body_len, &err, &why) != 0) {
        /* A name that is not a view is a missing view; a broken one is a bad
         * downstream answer. */
        hctx_fail(&v->h, err, err == OG_E_NOT_FOUND ? "no view by this name" : why);
        return;
    }
    unsigned n = v->plan->nparts;
    v->ps = calloc(n ? n : 1, sizeof(*v->ps));
    v->res = calloc(n ? n : 1, sizeof(*v->res));
    if (v->ps == NULL || v->res == NULL) {
        hctx_fail(&v->h, OG_E_INTERNAL, NULL);
        return;
    }
    /* Fan out: every part in parallel, held busy until all are started so a
     * part answering early cannot finish the view. */
    hctx_hold(&v->h);
    for (unsigned i = 0; i < n; i++)
        if (part_start(v, i) < 0)
            v->res[i] = (struct part_result){.code = 0, .err = OG_E_INTERNAL};
    if (hctx_drop(&v->h))
        view_finish(v);
}

void view_on_view(struct http_req *req)
{
    if (!hctx_name_check(req, "name"))
        return;
    struct view_ctx *v = calloc(1, sizeof(*v));
    struct ds_req op;
    int rc = ds_op_resolve(&op, req->param.p, req->param.n);
    if (v)
        v->t0_ns = uv_hrtime();
    begin(req, v ? &v->h : NULL, view_release, v ? &v->resolve : NULL, rc, &op, "index",
          resolve_on_resp);
}

/* ---- /v1/feed/{channel} ------------------------------------------------- */

/* Per-message call state; the message and its result are in entries. */
struct feed_slot {
    struct ds_resp *kept;
    struct hctx_call call;
};

struct feed_ctx {
    struct hctx h;
    struct hctx_call peek;
    uint64_t t0_ns;
    double peek_ms;
    unsigned limit, n;
    struct buf records;          /* view_feed_decode output */
    struct feed_slot *slots;     /* [limit], after entries in the same block */
    struct feed_entry entries[]; /* [limit], what the composer reads */
};

static void feed_release(struct hctx *h)
{
    struct feed_ctx *f = container_of(h, struct feed_ctx, h);
    for (unsigned i = 0; i < f->n; i++)
        ds_resp_free(f->slots[i].kept);
    buf_release(&f->records);
    free(f);
}

static void feed_finish(struct feed_ctx *f)
{
    struct http_req *req = f->h.req;
    double total = (double)(uv_hrtime() - f->t0_ns) / 1e6;
    uint64_t inline_max = (uint64_t)hctx_cfg(req)->view_inline_max;
    struct buf out = {0};
    struct jw j;
    bool complete;
    jw_init(&j, &out);
    int rc = view_feed_compose(&j, req->param.p, req->param.n, f->entries, f->n, f->peek_ms, total,
                               inline_max, req->corr_id, &complete);
    if (rc != 0) {
        buf_release(&out);
        hctx_fail(&f->h, OG_E_INTERNAL, NULL);
        return;
    }
    respond_doc(hctx_end(&f->h), &out, complete);
}

static void item_on_resp(struct hctx_call *c, struct ds_resp *r)
{
    struct feed_ctx *f = container_of(c->h, struct feed_ctx, h);
    struct feed_slot *s = container_of(c, struct feed_slot, call);
    part_take(&f->entries[s - f->slots].res, &s->kept, r);
    if (hctx_idle(&f->h))
        feed_finish(f);
}

static void peek_on_resp(struct hctx_call *c, struct ds_resp *r)
{
    struct feed_ctx *f = container_of(c, struct feed_ctx, peek);
    f->peek_ms = r->latency_ms;
    if (r->code == 404) { /* the mailbox answers 404 only for a malformed channel name */
        hctx_fail(&f->h, OG_E_NOT_FOUND, "no such channel");
        return;
    }
    if (r->code != 200) {
        hctx_fail_call(&f->h, r, "mailbox peek");
        return;
    }
    if (view_feed_decode(r->body, r->body_len, &f->records) < 0) {
        hctx_fail(&f->h, OG_E_BAD_GATEWAY, "mailbox answer is malformed");
        return;
    }
    hctx_hold(&f->h);
    size_t off = 0;
    struct ds_req op; /* reused: ds_call copies the op */
    while (f->n < f->limit && view_feed_next(&f->records, &off, &f->entries[f->n].msg)) {
        struct feed_entry *e = &f->entries[f->n];
        struct feed_slot *s = &f->slots[f->n++];
        if (!e->msg.has_obj)
            continue;
        e->part.addr = e->msg.addr;
        memcpy(e->part.media_type, e->msg.media_type, e->msg.media_type_len);
        e->part.media_type[e->msg.media_type_len] = '\0';
        if (ds_op_get(&op, &e->part.addr, false, 0, 0) != 0 ||
            start(&f->h, &s->call, &op, "storage", item_on_resp) != 0)
            e->res = (struct part_result){.code = 0, .err = OG_E_INTERNAL};
    }
    if (hctx_drop(&f->h))
        feed_finish(f);
}

void view_on_feed(struct http_req *req)
{
    uint64_t limit;
    if (!hctx_name_check(req, "channel"))
        return;
    if (query_get_uint(req->query, "limit", 1, FEED_LIMIT_MAX, 10, &limit) != 0) {
        http_respond_error(req, OG_E_BAD_REQUEST, "limit must be 1 to 50");
        return;
    }
    /* One block: the context, the entries, the slots. */
    _Static_assert(_Alignof(struct feed_slot) <= _Alignof(struct feed_entry),
                   "slots follow entries");
    struct feed_ctx *f =
        calloc(1, sizeof(*f) + limit * (sizeof(f->entries[0]) + sizeof(f->slots[0])));
    struct ds_req op;
    int rc = ds_op_peek(&op, req->param.p, req->param.n, limit);
    if (f) {
        f->slots = (struct feed_slot *)(f->entries + limit);
        f->limit = (unsigned)limit;
        f->t0_ns = uv_hrtime();
    }
    begin(req, f ? &f->h : NULL, feed_release, f ? &f->peek : NULL, rc, &op, "mailbox",
          peek_on_resp);
}
