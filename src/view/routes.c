/*
 * routes.c — hydration handlers: resolve, plan, fan out, compose.
 *
 * Every handler follows the same shape: validate the request, start
 * downstream calls bounded by the request's deadline, register a cancel hook
 * (client gone or request timeout → the calls are cancelled), and answer
 * from the callbacks. Failures keep their cause: 504 deadline, 503 shed,
 * 502 bad downstream, 404 missing name.
 */
#include "view/routes.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dec.h"
#include "ds/ds.h"
#include "config/config.h"
#include "http/ctx-t.h"
#include "http/query.h"
#include "http/response.h"
#include "view/compose.h"
#include "view/memo.h"
#include "view/messages.h"
#include "view/plan.h"

#define SEARCH_LIMIT_MAX 10
#define FEED_LIMIT_MAX   50

bool view_name_ok(struct slice s)
{
    if (s.n == 0 || s.n > VIEW_NAME_MAX)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':'))
            return false;
    }
    return true;
}

/* Header JSON {"op":OP,KEY:VAL} for a call. */
static int hdr_kv(struct buf *b, const char *op, const char *key, const char *val, size_t vlen)
{
    struct jw j;
    b->n = 0;
    jw_init(&j, b);
    jw_obj_open(&j);
    jw_key(&j, "op");
    jw_str(&j, op);
    if (key) {
        jw_key(&j, key);
        jw_strn(&j, val, vlen);
    }
    jw_obj_close(&j);
    return jw_failed(&j) ? -1 : 0;
}

/* The hop deadline sits inside the request budget: a tenth of it (2 to
 * 100 ms) is kept back so that a late part ends as that part's timeout and
 * the partial view is still composed and sent before the request timeout
 * would answer 504 for the whole request (DESIGN §6). */
static uint64_t hop_deadline(const struct http_req *req)
{
    uint64_t reserve = (uint64_t)req->ctx->cfg->request_timeout_ms / 10;
    reserve = reserve < 2 ? 2 : reserve > 100 ? 100 : reserve;
    return req->deadline_ms > reserve ? req->deadline_ms - reserve : 0;
}

static struct ds_call *start(struct http_req *req, enum ds_service svc, const char *op,
                             const struct buf *hdr, bool idem, ds_cb cb, void *arg)
{
    struct ds_req dr = {.svc = svc,
                        .op = op,
                        .hdr = hdr->p,
                        .hdr_len = hdr->n,
                        .deadline_ms = hop_deadline(req),
                        .corr_id = req->corr_id,
                        .idempotent = idem,
                        .coalesce_key = svc == DS_STORAGE && idem ? hdr->p : NULL,
                        .coalesce_key_len = hdr->n};
    return ds_call(req->ctx->ds, &dr, cb, arg);
}

/* Answer a failed call with the status of its cause. */
static void respond_failed(struct http_req *req, const struct ds_resp *r, const char *what)
{
    enum og_err e = view_call_err(r->code, r->err);
    char reason[160];
    snprintf(reason, sizeof(reason), "%s: %s", what,
             r->code ? "downstream answered an error" : og_err_reason(r->err));
    http_respond_error(req, e, e == OG_E_NOT_FOUND ? NULL : reason);
}

/* ---- simple single-call routes ------------------------------------------ */

struct one_ctx {
    struct http_req *req;
    struct ds_call *call;
    int kind; /* 0 index, 1 search */
};

static void one_cancel(struct http_req *req)
{
    struct one_ctx *c = req->hdata;
    ds_cancel(c->call);
    free(c);
}

static void one_on_resp(void *arg, struct ds_resp *r)
{
    struct one_ctx *c = arg;
    struct http_req *req = c->req;
    req->on_cancel = NULL;
    http_req_hop(req, c->kind ? "index.search" : "index.resolve", r->latency_ms);
    free(c);
    if (r->code != 200) {
        respond_failed(req, r, "index");
        return;
    }
    http_respond(req, 200, "application/json", r->body, r->body_len);
}

static void one_start(struct http_req *req, const char *op, const char *key, const char *val,
                      size_t vlen, int kind, struct buf *extra)
{
    struct one_ctx *c = calloc(1, sizeof(*c));
    struct buf hdr = {0};
    int rc = extra ? 0 : hdr_kv(&hdr, op, key, val, vlen);
    if (c == NULL || rc != 0) {
        free(c);
        buf_release(&hdr);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    c->req = req;
    c->kind = kind;
    c->call = start(req, DS_INDEX, op, extra ? extra : &hdr, true, one_on_resp, c);
    buf_release(&hdr);
    if (c->call == NULL) {
        free(c);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    req->hdata = c;
    req->on_cancel = one_cancel;
}

void view_on_index(struct http_req *req)
{
    if (!view_name_ok(req->param)) {
        http_respond_error(req, OG_E_BAD_REQUEST, "name must be 1-255 of [A-Za-z0-9._:-]");
        return;
    }
    one_start(req, "resolve", "name", req->param.p, req->param.n, 0, NULL);
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
    struct buf hdr = {0};
    struct jw j;
    jw_init(&j, &hdr);
    jw_obj_open(&j);
    jw_key(&j, "op");
    jw_str(&j, "search");
    jw_key(&j, "prefix");
    jw_strn(&j, q, (size_t)qn);
    jw_key(&j, "limit");
    jw_uint(&j, limit);
    jw_obj_close(&j);
    if (jw_failed(&j)) {
        buf_release(&hdr);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    one_start(req, "search", NULL, NULL, 0, 1, &hdr);
    buf_release(&hdr);
}

/* ---- /v1/view/{name} ---------------------------------------------------- */

struct view_ctx;
struct part_arg {
    struct view_ctx *v;
    unsigned i;
};

/* Per-part state, sized to the plan once it is known. */
struct part_state {
    struct part_result res;
    struct ds_resp *kept;
    struct ds_call *call;
    struct part_arg arg;
};

struct view_ctx {
    struct http_req *req;
    struct ds_call *resolve;
    uint64_t t0_ns;
    double resolve_ms;
    unsigned pending;
    struct buf fields;      /* the manifest's own fields, pre-rendered */
    struct view_plan *plan; /* parts[0..nparts) valid */
    struct part_state *ps;
    struct part_result *res; /* contiguous copy for the composer */
};

/* Plan memo value: the plan's parts, then the fields fragment. */
struct plan_memo_hdr {
    uint32_t nparts;
    uint32_t fields_len;
};

static void view_free(struct view_ctx *v)
{
    if (v->ps)
        for (unsigned i = 0; i < v->plan->nparts; i++)
            ds_resp_free(v->ps[i].kept);
    free(v->ps);
    free(v->res);
    free(v->plan);
    buf_release(&v->fields);
    free(v);
}

static void view_cancel(struct http_req *req)
{
    struct view_ctx *v = req->hdata;
    ds_cancel(v->resolve);
    if (v->ps)
        for (unsigned i = 0; i < v->plan->nparts; i++)
            if (v->ps[i].call)
                ds_cancel(v->ps[i].call);
    view_free(v);
}

static void view_finish(struct view_ctx *v)
{
    struct http_req *req = v->req;
    req->on_cancel = NULL;
    const struct og_config *cfg = req->ctx->cfg;
    struct buf out = {0};
    struct jw j;
    struct compose_out co;
    jw_init(&j, &out);
    double total = (double)(uv_hrtime() - v->t0_ns) / 1e6;
    char name[VIEW_NAME_MAX + 1];
    memcpy(name, req->param.p, req->param.n);
    name[req->param.n] = '\0';
    for (unsigned i = 0; i < v->plan->nparts; i++)
        v->res[i] = v->ps[i].res;
    int rc = view_compose(&j, name, v->fields.p, v->fields.n, v->plan, v->res, v->resolve_ms, total,
                          (uint64_t)cfg->view_inline_max, req->corr_id, &co);
    if (rc != 0) {
        buf_release(&out);
        view_free(v);
        http_respond_error(req, OG_E_INTERNAL, "out of memory composing the view");
        return;
    }
    if (co.required_failed) {
        char reason[128];
        snprintf(reason, sizeof(reason), "required part '%s' failed", co.fail_key);
        buf_release(&out);
        view_free(v);
        http_respond_error(req, co.fail_err, reason);
        return;
    }
    if (!co.complete && http_add_header(req, "X-View-Complete", "false", 5) != 0)
        req->close_after = true;
    view_free(v);
    http_respond_buf(req, 200, "application/json", &out);
}

static void part_on_resp(void *arg, struct ds_resp *r)
{
    struct part_arg *a = arg;
    struct view_ctx *v = a->v;
    struct part_state *ps = &v->ps[a->i];
    ps->call = NULL;
    ps->res.code = r->code;
    ps->res.err = r->err;
    ps->res.ms = r->latency_ms;
    if (r->code == 200 || r->code == 206) {
        ps->kept = ds_resp_keep(r);
        if (ps->kept == NULL) {
            ps->res.code = 0;
            ps->res.err = OG_E_INTERNAL;
        } else {
            ps->res.body = ps->kept->body;
            ps->res.body_len = ps->kept->body_len;
        }
    }
    static const char *const HOP[] = {"index", "storage", "mailbox"};
    enum part_kind k = v->plan->parts[a->i].kind;
    http_req_hop(v->req, HOP[k == PART_MAILBOX ? 2 : k == PART_INDEX ? 0 : 1], r->latency_ms);
    if (--v->pending == 0)
        view_finish(v);
}

static int part_start(struct view_ctx *v, unsigned i)
{
    const struct view_part *p = &v->plan->parts[i];
    struct buf hdr = {0};
    struct jw j;
    char addr[CAS_ADDR_CHARS + 1];
    enum ds_service svc;
    const char *op;
    jw_init(&j, &hdr);
    jw_obj_open(&j);
    switch (p->kind) {
    case PART_OBJECT:
        svc = DS_STORAGE;
        op = "get";
        jw_key(&j, "op");
        jw_str(&j, op);
        jw_key(&j, "obj");
        jw_str(&j, cas_addr_format(&p->addr, addr));
        if (p->ranged) {
            jw_key(&j, "off");
            jw_uint(&j, p->first);
            jw_key(&j, "len");
            jw_uint(&j, p->last - p->first + 1);
        }
        break;
    case PART_MAILBOX:
        svc = DS_MAILBOX;
        op = "peek";
        jw_key(&j, "op");
        jw_str(&j, op);
        jw_key(&j, "channel");
        jw_str(&j, p->channel);
        jw_key(&j, "max");
        jw_uint(&j, p->limit);
        break;
    case PART_INDEX:
        svc = DS_INDEX;
        op = "resolve";
        jw_key(&j, "op");
        jw_str(&j, op);
        jw_key(&j, "name");
        jw_str(&j, p->name);
        break;
    default: buf_release(&hdr); return 1; /* links need no call */
    }
    jw_obj_close(&j);
    if (jw_failed(&j)) {
        buf_release(&hdr);
        return -1;
    }
    v->ps[i].arg = (struct part_arg){v, i};
    v->ps[i].call = start(v->req, svc, op, &hdr, true, part_on_resp, &v->ps[i].arg);
    buf_release(&hdr);
    return v->ps[i].call ? 0 : -1;
}

/* Manifest bytes → plan and fields, through the plan memo (a manifest's
 * plan depends only on its bytes and the two limits). Returns 0, or -1 with
 * *why (and *not_view for a name that is not a view). */
static int plan_for(struct view_ctx *v, const uint8_t *m, size_t n, const char **why,
                    bool *not_view)
{
    const struct og_config *cfg = v->req->ctx->cfg;
    char extra[2 * DEC_U64_MAX_CHARS + 2];
    size_t len = dec_u64(extra, (uint64_t)cfg->view_max_parts);
    extra[len++] = '|';
    extra[len + dec_u64(extra + len, (uint64_t)cfg->view_inline_max)] = '\0';
    *not_view = false;
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
                             v->plan, why);
    if (rc == 0 && view_manifest_fields(man, &v->fields) != 0) {
        *why = "out of memory";
        rc = -1;
    }
    json_decref(man);
    if (rc != 0) {
        *not_view = strcmp(*why, "not a view manifest") == 0;
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

static void resolve_on_resp(void *arg, struct ds_resp *r)
{
    struct view_ctx *v = arg;
    struct http_req *req = v->req;
    v->resolve = NULL;
    v->resolve_ms = r->latency_ms;
    http_req_hop(req, "index", r->latency_ms);
    if (r->code != 200) {
        req->on_cancel = NULL;
        view_free(v);
        respond_failed(req, r, "resolving the view's manifest");
        return;
    }
    const char *why;
    bool not_view;
    if (plan_for(v, r->body, r->body_len, &why, &not_view) != 0) {
        req->on_cancel = NULL;
        view_free(v);
        /* A name that is not a view is a missing view; a broken one is a bad
         * downstream answer. */
        if (not_view)
            http_respond_error(req, OG_E_NOT_FOUND, "no view by this name");
        else
            http_respond_error(req, OG_E_BAD_GATEWAY, why);
        return;
    }
    unsigned n = v->plan->nparts;
    v->ps = calloc(n ? n : 1, sizeof(*v->ps));
    v->res = calloc(n ? n : 1, sizeof(*v->res));
    if (v->ps == NULL || v->res == NULL) {
        req->on_cancel = NULL;
        view_free(v);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    /* Fan out: every part in parallel. pending counts one extra until all
     * are started, so a part answering early cannot finish the view. */
    v->pending = 1;
    for (unsigned i = 0; i < n; i++) {
        int rc = part_start(v, i);
        if (rc == 0) {
            v->pending++;
        } else if (rc < 0) {
            v->ps[i].res.code = 0;
            v->ps[i].res.err = OG_E_INTERNAL;
        }
    }
    if (--v->pending == 0)
        view_finish(v);
}

void view_on_view(struct http_req *req)
{
    if (!view_name_ok(req->param)) {
        http_respond_error(req, OG_E_BAD_REQUEST, "name must be 1-255 of [A-Za-z0-9._:-]");
        return;
    }
    struct view_ctx *v = calloc(1, sizeof(*v));
    struct buf hdr = {0};
    if (v == NULL || hdr_kv(&hdr, "resolve", "name", req->param.p, req->param.n) != 0) {
        free(v);
        buf_release(&hdr);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    v->req = req;
    v->t0_ns = uv_hrtime();
    v->resolve = start(req, DS_INDEX, "resolve", &hdr, true, resolve_on_resp, v);
    buf_release(&hdr);
    if (v->resolve == NULL) {
        free(v);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    req->hdata = v;
    req->on_cancel = view_cancel;
}

/* ---- /v1/feed/{channel} ------------------------------------------------- */

struct feed_ctx;
struct feed_item {
    struct feed_ctx *f;
    struct feed_msg msg; /* points into the feed's records */
    struct view_part part;
    struct part_result res;
    struct ds_resp *kept;
    struct ds_call *call;
};

struct feed_ctx {
    struct http_req *req;
    struct ds_call *peek;
    uint64_t t0_ns;
    double peek_ms;
    unsigned limit, n, pending;
    struct buf records; /* view_feed_decode output */
    struct feed_item items[];
};

static void feed_free(struct feed_ctx *f)
{
    for (unsigned i = 0; i < f->n; i++)
        ds_resp_free(f->items[i].kept);
    buf_release(&f->records);
    free(f);
}

static void feed_cancel(struct http_req *req)
{
    struct feed_ctx *f = req->hdata;
    ds_cancel(f->peek);
    for (unsigned i = 0; i < f->n; i++)
        if (f->items[i].call)
            ds_cancel(f->items[i].call);
    feed_free(f);
}

static void feed_finish(struct feed_ctx *f)
{
    struct http_req *req = f->req;
    req->on_cancel = NULL;
    const struct og_config *cfg = req->ctx->cfg;
    struct buf out = {0};
    struct jw j;
    bool complete = true;
    jw_init(&j, &out);
    jw_obj_open(&j);
    jw_key(&j, "channel");
    jw_strn(&j, req->param.p, req->param.n);
    jw_key(&j, "messages");
    jw_arr_open(&j);
    for (unsigned i = 0; i < f->n; i++) {
        struct feed_item *it = &f->items[i];
        jw_raw(&j, it->msg.json, it->msg.json_len); /* the message up to its closing brace */
        if (it->msg.has_obj) {
            jw_key(&j, "object");
            if (it->res.code == 200) {
                view_object_part(&j, &it->part, &it->res, (uint64_t)cfg->view_inline_max,
                                 req->corr_id);
                if (it->res.integrity_failed)
                    complete = false;
            } else {
                jw_obj_open(&j);
                jw_key(&j, "error");
                jw_str(&j, view_part_error(&it->res));
                jw_obj_close(&j);
                complete = false;
            }
        }
        jw_obj_close(&j);
    }
    jw_arr_close(&j);
    jw_key(&j, "complete");
    jw_bool(&j, complete);
    jw_key(&j, "timing");
    jw_obj_open(&j);
    jw_key(&j, "peek_ms");
    jw_fixed3(&j, f->peek_ms);
    jw_key(&j, "total_ms");
    jw_fixed3(&j, (double)(uv_hrtime() - f->t0_ns) / 1e6);
    jw_obj_close(&j);
    jw_obj_close(&j);
    feed_free(f);
    if (jw_failed(&j)) {
        buf_release(&out);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    if (!complete && http_add_header(req, "X-View-Complete", "false", 5) != 0)
        req->close_after = true;
    http_respond_buf(req, 200, "application/json", &out);
}

static void item_on_resp(void *arg, struct ds_resp *r)
{
    struct feed_item *it = arg;
    struct feed_ctx *f = it->f;
    it->call = NULL;
    it->res.code = r->code;
    it->res.err = r->err;
    it->res.ms = r->latency_ms;
    if (r->code == 200 && (it->kept = ds_resp_keep(r)) != NULL) {
        it->res.body = it->kept->body;
        it->res.body_len = it->kept->body_len;
    } else if (r->code == 200) {
        it->res.code = 0;
        it->res.err = OG_E_INTERNAL;
    }
    http_req_hop(f->req, "storage", r->latency_ms);
    if (--f->pending == 0)
        feed_finish(f);
}

static void peek_on_resp(void *arg, struct ds_resp *r)
{
    struct feed_ctx *f = arg;
    struct http_req *req = f->req;
    f->peek = NULL;
    f->peek_ms = r->latency_ms;
    http_req_hop(req, "mailbox", r->latency_ms);
    if (r->code != 200) {
        req->on_cancel = NULL;
        feed_free(f);
        if (r->code == 404) /* the mailbox answers 404 only for a malformed channel name */
            http_respond_error(req, OG_E_NOT_FOUND, "no such channel");
        else
            respond_failed(req, r, "mailbox peek");
        return;
    }
    if (view_feed_decode(r->body, r->body_len, &f->records) < 0) {
        req->on_cancel = NULL;
        feed_free(f);
        http_respond_error(req, OG_E_BAD_GATEWAY, "mailbox answer is malformed");
        return;
    }
    f->pending = 1;
    size_t off = 0;
    struct buf hdr = {0}; /* reused: ds_call copies the header */
    while (f->n < f->limit && view_feed_next(&f->records, &off, &f->items[f->n].msg)) {
        struct feed_item *it = &f->items[f->n++];
        it->f = f;
        if (!it->msg.has_obj)
            continue;
        it->part.addr = it->msg.addr;
        memcpy(it->part.media_type, it->msg.media_type, it->msg.media_type_len);
        it->part.media_type[it->msg.media_type_len] = '\0';
        char addr[CAS_ADDR_CHARS + 1];
        if (hdr_kv(&hdr, "get", "obj", cas_addr_format(&it->part.addr, addr), CAS_ADDR_CHARS) == 0)
            it->call = start(req, DS_STORAGE, "get", &hdr, true, item_on_resp, it);
        if (it->call)
            f->pending++;
        else
            it->res = (struct part_result){.code = 0, .err = OG_E_INTERNAL};
    }
    buf_release(&hdr);
    if (--f->pending == 0)
        feed_finish(f);
}

void view_on_feed(struct http_req *req)
{
    uint64_t limit;
    if (!view_name_ok(req->param)) {
        http_respond_error(req, OG_E_BAD_REQUEST, "channel must be 1-255 of [A-Za-z0-9._:-]");
        return;
    }
    if (query_get_uint(req->query, "limit", 1, FEED_LIMIT_MAX, 10, &limit) != 0) {
        http_respond_error(req, OG_E_BAD_REQUEST, "limit must be 1 to 50");
        return;
    }
    struct feed_ctx *f = calloc(1, sizeof(*f) + limit * sizeof(f->items[0]));
    struct buf hdr = {0};
    struct jw j;
    jw_init(&j, &hdr);
    jw_obj_open(&j);
    jw_key(&j, "op");
    jw_str(&j, "peek");
    jw_key(&j, "channel");
    jw_strn(&j, req->param.p, req->param.n);
    jw_key(&j, "max");
    jw_uint(&j, limit);
    jw_obj_close(&j);
    if (f == NULL || jw_failed(&j)) {
        free(f);
        buf_release(&hdr);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    f->req = req;
    f->limit = (unsigned)limit;
    f->t0_ns = uv_hrtime();
    f->peek = start(req, DS_MAILBOX, "peek", &hdr, true, peek_on_resp, f);
    buf_release(&hdr);
    if (f->peek == NULL) {
        free(f);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    req->hdata = f;
    req->on_cancel = feed_cancel;
}
