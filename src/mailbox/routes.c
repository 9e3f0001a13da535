/*
 * routes.c — the mailbox routes (routes.h).
 */
#include "mailbox/routes.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/jw.h"
#include "ds/ds.h"
#include "ds/op.h"
#include "engines/proto/proto.h"
#include "handler/hctx.h"
#include "http/ctx-t.h"
#include "http/dispatch.h"
#include "http/h1.h"
#include "http/query.h"
#include "http/response.h"
#include "mailbox/chstats.h"
#include "mailbox/park.h"
#include "ops/metrics.h"
#include "view/compose.h"
#include "view/messages.h"

#define RECV_MAX_DEFAULT 10

static struct park_worker **workers; /* by worker id; set before loops run */
static int nworkers;
static atomic_ulong wakeups[3]; /* by enum park_why */
/* Sends seen per channel hash slot: a receiver that found nothing parks
 * only if no send landed since it asked (no wake-up is lost between its
 * answer and its parking). */
#define SEQ_SLOTS 1024
static atomic_ulong send_seq[SEQ_SLOTS];
/* The worker of this thread, once a handler ran on it: its loop's end is
 * reported from this thread (mailbox_routes_worker_exit). */
static __thread struct park_worker *my_worker;

static struct park_worker *pw_of(const struct http_req *req)
{
    return my_worker = workers[req->ctx->id];
}

/* One request's state: the handler context, its downstream call, and its
 * place among the parked receivers. */
struct mb {
    struct hctx h; /* first: hctx releases it */
    struct hctx_call call;
    struct park_waiter park;
    char ch[HCTX_NAME_MAX + 1];
    size_t chn;
    uint64_t max, lease_ms, ms;
    uint64_t wait_end; /* loop time; 0: no long-poll */
    unsigned long seq; /* send_seq of the channel when the receive was asked */
    bool last;         /* the wait is over: this receive answers, whatever it finds */
    uint64_t ids[MAILBOX_BATCH_MAX];
    size_t nids;
    char key[DS_OP_STR_MAX + 1];
    char type[MAILBOX_TYPE_MAX + 1];
};

static void mb_release(struct hctx *h)
{
    struct mb *m = (struct mb *)h;
    park_leave(&m->park);
    free(m);
}

/* A context for req on a valid channel, or NULL when req was answered. */
static struct mb *mb_new(struct http_req *req)
{
    if (!hctx_name_check(req, "channel"))
        return NULL;
    struct mb *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return NULL;
    }
    memcpy(m->ch, req->param.p, req->param.n);
    m->chn = req->param.n;
    return m;
}

/* Who receives: the capability's tenant (the lease owner), or nobody. */
static const char *owner(const struct http_req *req, size_t *n)
{
    *n = strlen(req->tenant);
    return *n ? req->tenant : NULL;
}

static void call(struct mb *m, struct ds_req *dr, hctx_resp_fn cb)
{
    dr->deadline_ms = hctx_hop_deadline(m->h.req);
    if (hctx_call(&m->h, &m->call, dr, "mailbox", cb) != 0)
        hctx_fail(&m->h, OG_E_INTERNAL, NULL);
}

/* A mailbox answer other than success, as the client's status. */
static void fail(struct mb *m, const struct ds_resp *r, const char *what)
{
    enum og_err e;
    switch (r->code) {
    case 400: e = OG_E_BAD_REQUEST; break;
    case 409: e = OG_E_CONFLICT; break;
    case 413: e = OG_E_BODY_CAP; break;
    case 429: e = OG_E_CHANNEL_FULL; break;
    case 507: e = OG_E_STORAGE_FULL; break;
    default: hctx_fail_call(&m->h, r, what); return;
    }
    char reason[160];
    json_t *h = json_loadb(r->hdr, r->hdr_len, 0, NULL);
    const char *why = json_string_value(json_object_get(h, "reason"));
    snprintf(reason, sizeof(reason), "%s: %s", what, why ? why : og_err_reason(e));
    json_decref(h);
    hctx_fail(&m->h, e, reason);
}

/* A duration parameter: "250ms", "10s", "1m", or whole seconds; absent
 * gives def. -1 (answered 400) when malformed or over max. */
static int duration_param(struct http_req *req, const char *name, uint64_t def, uint64_t max,
                          uint64_t *out)
{
    char v[32];
    int n = query_get(req->query, name, v, sizeof(v));
    int64_t ms;
    if (n == -1) {
        *out = def;
        return 0;
    }
    bool digits = n > 0 && strspn(v, "0123456789") == (size_t)n;
    if (n > 0 && digits && n <= 9)
        ms = (int64_t)strtoll(v, NULL, 10) * 1000;
    else if (n <= 0 || config_parse_duration_ms(v, &ms) != 0)
        ms = -1;
    if (ms < 0 || (uint64_t)ms > max) {
        char reason[96];
        snprintf(reason, sizeof(reason), "%s must be a duration up to %llu ms (e.g. 500ms, 2s)",
                 name, (unsigned long long)max);
        http_respond_error(req, OG_E_BAD_REQUEST, reason);
        return -1;
    }
    *out = (uint64_t)ms;
    return 0;
}

/* ---- send --------------------------------------------------------------- */

static void on_send(struct hctx_call *c, struct ds_resp *r)
{
    struct mb *m = (struct mb *)c->h;
    if (r->code != 200 && r->code != 201) {
        fail(m, r, "sending");
        return;
    }
    if (r->code == 201) { /* a new message: a receiver parked on it may go */
        uint64_t h = park_channel_hash(m->ch, m->chn);
        atomic_fetch_add(&send_seq[h % SEQ_SLOTS], 1);
        park_notify(h);
    }
    int code = r->code;
    char hdr[128];
    size_t n = r->hdr_len < sizeof(hdr) ? r->hdr_len : 0;
    memcpy(hdr, r->hdr, n);
    struct http_req *req = hctx_end(&m->h);
    if (n == 0) {
        http_respond_error(req, OG_E_BAD_GATEWAY, "mailbox answered without an id");
        return;
    }
    http_respond(req, code, "application/json", hdr, n); /* {"id":N,"duplicate":B} */
}

/* The Content-Type kept with a message: none for JSON (its body must then
 * be JSON), the header's value otherwise; a body sent with none is JSON if
 * it parses, else application/octet-stream. 0, or -1 when answered. */
static int message_type(struct http_req *req, struct mb *m)
{
    const struct slice *ct = h1_header(req, "content-type");
    const uint8_t *b = (const uint8_t *)req->body.p;
    bool json = view_valid_json(b, req->body.n);
    if (ct == NULL) {
        if (!json)
            strcpy(m->type, "application/octet-stream");
        return 0;
    }
    if (ct->n >= 16 && strncasecmp(ct->p, "application/json", 16) == 0) {
        if (!json) {
            http_respond_error(req, OG_E_BAD_REQUEST, "Content-Type says JSON; the body is not");
            return -1;
        }
        return 0;
    }
    if (ct->n == 0 || ct->n > MAILBOX_TYPE_MAX) {
        http_respond_error(req, OG_E_UNSUPPORTED_MEDIA, "Content-Type over 127 bytes");
        return -1;
    }
    for (size_t i = 0; i < ct->n; i++)
        if (ct->p[i] < 0x20 || ct->p[i] > 0x7e || ct->p[i] == '"' || ct->p[i] == '\\') {
            http_respond_error(req, OG_E_UNSUPPORTED_MEDIA, "Content-Type is not printable");
            return -1;
        }
    memcpy(m->type, ct->p, ct->n);
    m->type[ct->n] = '\0';
    return 0;
}

void mailbox_on_send(struct http_req *req)
{
    struct mb *m = mb_new(req);
    if (m == NULL)
        return;
    const struct slice *k = h1_header(req, "idempotency-key");
    if (k && (k->n == 0 || k->n > DS_OP_STR_MAX)) {
        free(m);
        http_respond_error(req, OG_E_BAD_REQUEST, "Idempotency-Key must be 1..255 bytes");
        return;
    }
    if (message_type(req, m) != 0) {
        free(m);
        return;
    }
    if (k) {
        memcpy(m->key, k->p, k->n);
        m->key[k->n] = '\0';
    }
    hctx_init(&m->h, req, mb_release);
    struct ds_req dr;
    (void)ds_op_send_typed(&dr, m->ch, m->chn, k ? m->key : NULL, k ? k->n : 0, m->type,
                           strlen(m->type));
    dr.body = req->body.p;
    dr.body_len = req->body.n;
    call(m, &dr, on_send);
}

/* ---- receive ------------------------------------------------------------ */

static void recv_start(struct mb *m);

/* {"messages":[...]} from a recv or dead answer. */
static void answer_messages(struct mb *m, const struct ds_resp *r)
{
    struct buf out = {0};
    struct jw j;
    jw_init(&j, &out);
    jw_obj_open(&j);
    jw_key(&j, "messages");
    int rc = r ? view_messages_render(&j, r->body, r->body_len) : (jw_raw(&j, "[]", 2), 0);
    jw_obj_close(&j);
    struct http_req *req = hctx_end(&m->h);
    if (rc != 0 || jw_failed(&j)) {
        buf_release(&out);
        http_respond_error(req, rc != 0 ? OG_E_BAD_GATEWAY : OG_E_INTERNAL,
                           rc != 0 ? "mailbox answer is not a message list" : NULL);
        return;
    }
    http_respond_buf(req, 200, "application/json", &out);
}

static void on_wake(struct park_waiter *w, enum park_why why)
{
    struct mb *m = container_of(w, struct mb, park);
    atomic_fetch_add(&wakeups[why], 1);
    m->last = why == PARK_DEADLINE; /* one more look, then answer */
    recv_start(m);
}

/* How many messages an answer holds: its header says {"count":N}. */
static long answer_count(const struct ds_resp *r)
{
    const char *p = memchr(r->hdr, ':', r->hdr_len);
    return p ? strtol(p + 1, NULL, 10) : -1;
}

static void on_recv(struct hctx_call *c, struct ds_resp *r)
{
    struct mb *m = (struct mb *)c->h;
    if (r->code != 200) {
        fail(m, r, "receiving");
        return;
    }
    struct park_worker *pw = pw_of(m->h.req);
    if (m->wait_end && !m->last && answer_count(r) == 0 && park_now(pw) < m->wait_end) {
        const struct og_config *cfg = hctx_cfg(m->h.req);
        if (park_worker_count(pw) >= cfg->mailbox_parked_max) {
            hctx_fail(&m->h, OG_E_BUSY, "too many receivers waiting");
            return;
        }
        /* Sends through other processes are seen only by polling them. */
        uint64_t poll = ds_is_micronode() ? 0 : (uint64_t)cfg->mailbox_poll_ms;
        uint64_t h = park_channel_hash(m->ch, m->chn);
        http_dispatch_detach(m->h.req); /* parked: no admission slot held */
        park_enter(pw, &m->park, h, m->wait_end, poll, on_wake);
        /* Parked first, then checked: a send after this sees us parked. */
        if (atomic_load(&send_seq[h % SEQ_SLOTS]) != m->seq) {
            park_leave(&m->park);
            recv_start(m);
        }
        return;
    }
    answer_messages(m, r);
}

static void recv_start(struct mb *m)
{
    m->seq = atomic_load(&send_seq[park_channel_hash(m->ch, m->chn) % SEQ_SLOTS]);
    size_t on;
    const char *o = owner(m->h.req, &on);
    struct ds_req dr;
    (void)ds_op_recv(&dr, m->ch, m->chn, m->max, m->lease_ms, o, on);
    call(m, &dr, on_recv);
}

void mailbox_on_recv(struct http_req *req)
{
    const struct og_config *cfg = hctx_cfg(req);
    uint64_t max, lease, wait;
    if (query_get_uint(req->query, "max", 1, MAILBOX_BATCH_MAX, RECV_MAX_DEFAULT, &max) != 0) {
        http_respond_error(req, OG_E_BAD_REQUEST, "max must be an integer in 1..100");
        return;
    }
    if (duration_param(req, "lease", 0, MAILBOX_LEASE_MAX_MS, &lease) != 0 ||
        duration_param(req, "wait", 0, (uint64_t)cfg->mailbox_wait_max_ms, &wait) != 0)
        return;
    struct mb *m = mb_new(req);
    if (m == NULL)
        return;
    m->max = max;
    m->lease_ms = lease;
    hctx_init(&m->h, req, mb_release);
    if (wait) {
        /* The request lives through its wait: its budget is counted after
         * it, and a client that hangs up meanwhile is forgotten at once. */
        m->wait_end = park_now(pw_of(req)) + wait;
        req->deadline_ms += wait;
        req->abandon_on_eof = true;
    }
    recv_start(m);
}

/* ---- ack, nack, lease ------------------------------------------------------ */

static void on_settle(struct hctx_call *c, struct ds_resp *r)
{
    struct mb *m = (struct mb *)c->h;
    if (r->code != 200) {
        fail(m, r, "settling");
        return;
    }
    /* The answer is the outcome of every id, as JSON already:
     * {"acked"|"done":N,"unknown":[..],"foreign":[..],"not_leased":[..]}. */
    struct buf out = {0};
    if (buf_append(&out, r->hdr, r->hdr_len) != 0) {
        buf_release(&out);
        hctx_fail(&m->h, OG_E_INTERNAL, NULL);
        return;
    }
    http_respond_buf(hctx_end(&m->h), 200, "application/json", &out);
}

/* The body {"ids":[N,..]} and, for nack, "delay_ms"; for lease,
 * "lease_ms". 0, or -1 when answered. */
static int settle_body(struct http_req *req, struct mb *m, enum proto_kind kind)
{
    json_error_t e;
    json_t *doc = json_loadb(req->body.p, req->body.n, JSON_REJECT_DUPLICATES, &e);
    json_t *ids = json_object_get(doc, "ids");
    const char *why = NULL;
    if (!json_is_object(doc))
        why = "the body must be a JSON object {\"ids\":[...]}";
    else if (!json_is_array(ids) || json_array_size(ids) == 0 ||
             json_array_size(ids) > MAILBOX_BATCH_MAX)
        why = "ids must be an array of 1..100 message ids";
    for (size_t i = 0; why == NULL && i < json_array_size(ids); i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            why = "ids must be positive integers";
        else
            m->ids[m->nids++] = (uint64_t)json_integer_value(v);
    }
    const char *field = kind == PROTO_NACK ? "delay_ms" : kind == PROTO_LEASE ? "lease_ms" : NULL;
    json_t *ms = field ? json_object_get(doc, field) : NULL;
    if (why == NULL && field) {
        if (ms == NULL && kind == PROTO_NACK)
            m->ms = 0;
        else if (!json_is_integer(ms) || json_integer_value(ms) < (kind == PROTO_LEASE) ||
                 json_integer_value(ms) > (json_int_t)MAILBOX_LEASE_MAX_MS)
            why = kind == PROTO_NACK ? "delay_ms must be an integer in 0..43200000"
                                     : "lease_ms must be an integer in 1..43200000";
        else
            m->ms = (uint64_t)json_integer_value(ms);
    }
    json_decref(doc);
    if (why) {
        http_respond_error(req, OG_E_BAD_REQUEST, why);
        return -1;
    }
    return 0;
}

static void settle(struct http_req *req, enum proto_kind kind)
{
    struct mb *m = mb_new(req);
    if (m == NULL)
        return;
    if (settle_body(req, m, kind) != 0) {
        free(m);
        return;
    }
    hctx_init(&m->h, req, mb_release);
    size_t on;
    const char *o = owner(req, &on);
    struct ds_req dr;
    (void)ds_op_settle(&dr, kind, m->ch, m->chn, m->ids, m->nids, o, on, m->ms);
    call(m, &dr, on_settle);
}

void mailbox_on_ack(struct http_req *req)
{
    settle(req, PROTO_ACK);
}

void mailbox_on_nack(struct http_req *req)
{
    settle(req, PROTO_NACK);
}

void mailbox_on_lease(struct http_req *req)
{
    settle(req, PROTO_LEASE);
}

/* ---- dead letters --------------------------------------------------------- */

static void on_dead(struct hctx_call *c, struct ds_resp *r)
{
    struct mb *m = (struct mb *)c->h;
    if (r->code != 200)
        fail(m, r, "reading dead letters");
    else
        answer_messages(m, r);
}

static void dead(struct http_req *req, enum proto_kind kind, hctx_resp_fn cb)
{
    uint64_t max;
    if (query_get_uint(req->query, "max", 1, MAILBOX_BATCH_MAX, RECV_MAX_DEFAULT, &max) != 0) {
        http_respond_error(req, OG_E_BAD_REQUEST, "max must be an integer in 1..100");
        return;
    }
    struct mb *m = mb_new(req);
    if (m == NULL)
        return;
    hctx_init(&m->h, req, mb_release);
    struct ds_req dr;
    (void)ds_op_dead(&dr, kind, m->ch, m->chn, max);
    call(m, &dr, cb);
}

void mailbox_on_dead(struct http_req *req)
{
    dead(req, PROTO_DEAD, on_dead);
}

void mailbox_on_redrive(struct http_req *req)
{
    dead(req, PROTO_REDRIVE, on_settle); /* {"redriven":N} */
}

/* ---- channel stats (admin) ---------------------------------------------- */

static void on_stats(struct hctx_call *c, struct ds_resp *r)
{
    struct mb *m = (struct mb *)c->h;
    if (r->code != 200) {
        fail(m, r, "channel stats");
        return;
    }
    json_t *h = json_loadb(r->hdr, r->hdr_len, 0, NULL);
    if (!json_is_object(h)) {
        json_decref(h);
        hctx_fail(&m->h, OG_E_BAD_GATEWAY, "mailbox stats are not a JSON object");
        return;
    }
    uint64_t oldest = (uint64_t)json_integer_value(json_object_get(h, "oldest_ms"));
    uint64_t now = proto_now_ms();
    struct buf out = {0};
    struct jw j;
    jw_init(&j, &out);
    jw_obj_open(&j);
    jw_key(&j, "channel");
    jw_strn(&j, m->ch, m->chn);
    static const char *const KEYS[] = {"depth", "leased", "dead", "dead_dropped", "next_id"};
    for (size_t i = 0; i < sizeof(KEYS) / sizeof(KEYS[0]); i++) {
        jw_key(&j, KEYS[i]);
        jw_uint(&j, (uint64_t)json_integer_value(json_object_get(h, KEYS[i])));
    }
    jw_key(&j, "oldest_age_ms");
    jw_uint(&j, oldest && now > oldest ? now - oldest : 0);
    jw_obj_close(&j);
    json_decref(h);
    struct http_req *req = hctx_end(&m->h);
    if (jw_failed(&j)) {
        buf_release(&out);
        http_respond_error(req, OG_E_INTERNAL, NULL);
        return;
    }
    http_respond_buf(req, 200, "application/json", &out);
}

void mailbox_on_stats(struct http_req *req)
{
    struct mb *m = mb_new(req);
    if (m == NULL)
        return;
    hctx_init(&m->h, req, mb_release);
    struct ds_req dr;
    (void)ds_op_stats(&dr, m->ch, m->chn);
    call(m, &dr, on_stats);
}

/* ---- start-up and metrics ------------------------------------------------- */

static const char *const WHY[3] = {"message", "poll", "deadline"};

static double read_parked(const struct metric_def *d, const int *ix)
{
    return (double)park_count();
}

static double read_wakeups(const struct metric_def *d, const int *ix)
{
    return (double)atomic_load(&wakeups[ix[0]]);
}

static const struct metric_label L_WHY = {"reason", WHY, 3, NULL};
static const struct metric_def MAILBOX_METRICS[] = {
    {"mailbox_parked_receivers", METRIC_GAUGE,
     "Long-poll receivers waiting for a message; they hold no downstream call.",
     .read = read_parked},
    {"mailbox_wakeups_total", METRIC_COUNTER,
     "Parked receivers woken, by reason (a message, a poll, the end of the wait).",
     .labels = {&L_WHY}, .read = read_wakeups},
};

int mailbox_routes_start(const struct og_config *cfg, int n)
{
    nworkers = n;
    workers = calloc((size_t)n, sizeof(*workers));
    if (workers == NULL || park_start(n) != 0)
        return -1;
    metrics_register(METRIC_TABLE(MAILBOX_METRICS));
    /* Micronode: the engine is here, and so are its channels' metrics. */
    struct mailbox *mb = ds_local_engines()->mailbox;
    if (mb != NULL)
        chstats_start(mb, (int)cfg->mailbox_stats_channels);
    return 0;
}

void mailbox_routes_worker(uv_loop_t *loop, int id)
{
    workers[id] = park_worker_init(loop, id);
}

void mailbox_routes_worker_exit(void)
{
    if (my_worker)
        park_worker_gone(my_worker);
}
