/*
 * local.c — the micronode backend: the engines run in this process. It
 * creates them at start-up (ds__local_start) and frees them at exit.
 *
 * A call is queued on its worker and served on a later loop turn (a zero
 * timer), exactly as a remote answer would arrive, so handlers see the same
 * ordering in both profiles. Its typed op goes to the engines' dispatcher
 * as it is (proto_exec): no request header JSON is written or parsed in
 * process, only the answer's small header is. The engines' reads take no
 * lock (immutable snapshots, docs/ARCHITECTURE.md "Engines"); only their
 * writes lock, inside the engine. Stored objects come back as ref-counted blobs, so the answer
 * holds nothing of the engine's while its bytes are used.
 *
 * Streams (ds_call_stream) get the same answer, then its body in slices of
 * DS_STREAM_CHUNK_BYTES that point into the one blob (zero copy): at most
 * the call's window of slices is out at once, and a released slice lets the
 * next go out on a later turn (never inside ds_chunk_done), so a slow
 * client paces micronode exactly as it paces a remote service. The answer
 * (and the blob's reference) lives as long as the stream or any slice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "ds/internal.h"
#include "engines/proto/proto.h"

/* Created at start-up, before any worker runs; the engines synchronise
 * their own state between workers. */
static struct engines local_engines;

struct local_worker {
    uv_timer_t tick;
    struct ds_call *head, *tail;
    struct lstream *ready; /* streams with room for more slices */
};

struct lstream;

/* A slice of a stream's body handed to the consumer. */
struct lslice {
    struct ds_chunk ch;
    struct lstream *ls;
};

/* A stream in progress: its answer and the slices out. */
struct lstream {
    int refs;          /* the call's, plus one per slice out */
    struct ds_call *c; /* NULL once the call ended */
    struct local_worker *lw;
    struct proto_resp *rs;
    size_t off;                   /* body bytes handed out */
    bool queued;                  /* on lw->ready */
    struct lstream *next, *bnext; /* lw->ready link; on_tick's batch link */
    uint32_t free_slices;         /* bit i set: slices[i] is free */
    struct lslice slices[DS_STREAM_WINDOW_MAX];
};

static void on_tick(uv_timer_t *t);

static void resp_release(void *p)
{
    struct proto_resp *rs = p;
    proto_resp_release(rs);
    free(rs);
}

/* ---- streams ------------------------------------------------------------ */

static void ls_unref(struct lstream *ls)
{
    if (--ls->refs > 0)
        return;
    resp_release(ls->rs);
    free(ls);
}

static void lslice_release(struct ds_chunk *ch)
{
    struct lslice *sl = (struct lslice *)ch;
    struct lstream *ls = sl->ls;
    ls->free_slices |= 1u << (sl - ls->slices);
    ls_unref(ls);
}

static void ls_unqueue(struct lstream *ls)
{
    for (struct lstream **pp = &ls->lw->ready; *pp; pp = &(*pp)->next)
        if (*pp == ls) {
            *pp = ls->next;
            break;
        }
    ls->queued = false;
    ls->next = NULL;
}

/* Let go of c (it ended or was aborted); slices out keep ls alive. */
static void ls_detach(struct lstream *ls)
{
    if (ls->queued)
        ls_unqueue(ls);
    ls->c->bstream = NULL;
    ls->c = NULL;
    ls_unref(ls);
}

static void ls_queue(struct lstream *ls)
{
    if (ls->queued)
        return;
    ls->queued = true;
    ls->next = ls->lw->ready;
    ls->lw->ready = ls;
    if (!uv_is_active((uv_handle_t *)&ls->lw->tick))
        uv_timer_start(&ls->lw->tick, on_tick, 0, 0);
}

/* Hand out slices while the consumer has room; end after the last. */
static void ls_pump(struct lstream *ls)
{
    struct ds_call *c = ls->c;
    size_t len = ls->rs->body_len;

    /* The consumer may release slices and cancel inside its callback: our
     * own reference keeps ls until we are done with it. */
    ls->refs++;
    while (ls->c && ls->off < len && c->held < c->window && ls->free_slices) {
        int i = __builtin_ctz(ls->free_slices);
        struct lslice *sl = &ls->slices[i];
        size_t n = len - ls->off < DS_STREAM_CHUNK_BYTES ? len - ls->off : DS_STREAM_CHUNK_BYTES;
        const uint8_t *p = ls->rs->body + ls->off;
        ls->free_slices &= ~(1u << i);
        ls->refs++;
        ls->off += n;
        sl->ls = ls;
        sl->ch.release = lslice_release;
        /* The consumer may cancel in there: ls->c is then NULL. */
        ds__stream_chunk(c, &sl->ch, p, n);
    }
    if (ls->c && ls->off == len) {
        ls_detach(ls);
        ds__stream_end(c, DS_STREAM_OK);
    }
    ls_unref(ls);
}

/* Start streaming c's answer rs (taken over). */
static void ls_start(struct local_worker *lw, struct ds_call *c, struct proto_resp *rs)
{
    struct lstream *ls = calloc(1, sizeof(*ls));
    if (ls == NULL) {
        struct ds_resp r = {.code = 0, .err = OG_E_INTERNAL};
        resp_release(rs);
        ds__attempt_done(c, &r);
        return;
    }
    ls->refs = 2; /* the call's, and ours until the head is out */
    ls->c = c;
    ls->lw = lw;
    ls->rs = rs;
    ls->free_slices = (1u << DS_STREAM_WINDOW_MAX) - 1;
    c->bstream = ls;
    if (ds__stream_head(c, rs->code, rs->hdr, rs->hdr_len))
        ls_pump(ls);
    /* else: the call ended in there, and local_abort detached ls */
    ls_unref(ls);
}

static void on_tick(uv_timer_t *t)
{
    struct local_worker *lw = t->data;
    /* Streams whose consumer made room, then what is queued now; calls and
     * releases from callbacks wait a turn. */
    struct lstream *batch = NULL, *ls, *lnext;
    /* Take the ready list apart first (its link is reused by any re-queue)
     * and hold each stream, since a callback may end another one. */
    for (ls = lw->ready; ls; ls = lnext) {
        lnext = ls->next;
        ls->next = NULL;
        ls->queued = false;
        ls->refs++;
        ls->bnext = batch;
        batch = ls;
    }
    lw->ready = NULL;
    for (ls = batch; ls; ls = lnext) {
        lnext = ls->bnext;
        if (ls->c)
            ls_pump(ls);
        ls_unref(ls);
    }
    struct ds_call *c = lw->head;
    lw->head = lw->tail = NULL;
    while (c) {
        struct ds_call *next = c->qnext;
        c->qnext = NULL;
        if (c->bstate != lw) {
            /* Cancelled by an earlier callback of this batch: local_abort
             * found it no longer queued. Its memory lives until its timer's
             * close callback, after this tick. */
            c = next;
            continue;
        }
        c->bstate = NULL;
        struct proto_resp *rs = malloc(sizeof(*rs));
        struct ds_resp r = {0};
        if (rs == NULL) {
            r.code = 0;
            r.err = OG_E_INTERNAL;
        } else {
            /* The remaining deadline, as a remote service would get it;
             * the call's own copy of the op carries it to this attempt. */
            uint64_t now = uv_now(c->dw->loop);
            c->req.op.has_deadline = true;
            c->req.op.deadline_ms = (int64_t)c->req.deadline_ms - (int64_t)now;
            proto_exec(ds_local_engines(), &c->req.op, c->req.body, c->req.body_len, proto_now_ms(),
                       rs);
            r.code = rs->code;
            r.hdr = rs->hdr;
            r.hdr_len = rs->hdr_len;
            r.body = rs->body;
            r.body_len = rs->body_len;
            r.owner = rs;
            r.release = resp_release;
            if (c->stream && rs->code != 0) {
                ls_start(lw, c, rs);
                c = next;
                continue;
            }
        }
        ds__attempt_done(c, &r);
        c = next;
    }
}

static int local_send(struct ds_call *c)
{
    struct local_worker *lw = c->dw->local;
    c->qnext = NULL;
    c->bstate = lw;
    if (lw->tail)
        lw->tail->qnext = c;
    else
        lw->head = c;
    lw->tail = c;
    if (!uv_is_active((uv_handle_t *)&lw->tick))
        uv_timer_start(&lw->tick, on_tick, 0, 0);
    return 0;
}

static void local_abort(struct ds_call *c)
{
    if (c->bstream)
        ls_detach(c->bstream);
    struct local_worker *lw = c->bstate;
    if (lw == NULL)
        return;
    struct ds_call *prev = NULL;
    for (struct ds_call *x = lw->head; x; prev = x, x = x->qnext) {
        if (x != c)
            continue;
        if (prev)
            prev->qnext = x->qnext;
        else
            lw->head = x->qnext;
        if (lw->tail == x)
            lw->tail = prev;
        break;
    }
    c->bstate = NULL;
}

/* A slice came back: the next may go out, on a later turn. */
static void local_consumed(struct ds_call *c)
{
    struct lstream *ls = c->bstream;
    if (ls)
        ls_queue(ls);
}

static void local_worker_init(struct ds_worker *dw, enum ds_service svc)
{
    if (dw->local)
        return;
    struct local_worker *lw = xcalloc(1, sizeof(*lw));
    uv_timer_init(dw->loop, &lw->tick);
    lw->tick.data = lw;
    uv_unref((uv_handle_t *)&lw->tick);
    dw->local = lw;
}

static bool local_healthy(enum ds_service svc)
{
    return true;
}

/* ---- engines ------------------------------------------------------------ */

struct engines *ds_local_engines(void)
{
    return &local_engines;
}

int ds__local_start(const struct og_config *cfg)
{
    int st = 0;
    if (!cfg->ds_addr[DS_STORAGE][0]) {
        struct storage_opts so = {.mem_cap_bytes = (uint64_t)cfg->storage_mem_cap,
                                  .max_object_bytes = (uint64_t)cfg->storage_max_object,
                                  .amnesia = true};
        local_engines.storage = storage_new(&so, &st);
    }
    if (!cfg->ds_addr[DS_INDEX][0]) {
        struct index_opts io = {0};
        local_engines.index = index_new(&io, &st);
    }
    if (!cfg->ds_addr[DS_MAILBOX][0]) {
        /* A message may be as large as a request body. */
        struct mailbox_opts mo = {.max_msg_bytes = (size_t)cfg->body_max,
                                  .max_deliveries = (uint32_t)cfg->mailbox_max_deliveries,
                                  .idem_window_ms = (uint64_t)cfg->mailbox_idem_window_ms,
                                  .max_depth = (size_t)cfg->mailbox_depth_max};
        local_engines.mailbox = mailbox_new(&mo, &st);
    }
    if ((!cfg->ds_addr[DS_STORAGE][0] && !local_engines.storage) ||
        (!cfg->ds_addr[DS_INDEX][0] && !local_engines.index) ||
        (!cfg->ds_addr[DS_MAILBOX][0] && !local_engines.mailbox)) {
        fprintf(stderr, "omnigate: cannot create the in-process engines: %s\n",
                eng_status_name(st));
        return -1;
    }
    return 0;
}

void ds__local_stop(void)
{
    storage_free(local_engines.storage);
    index_free(local_engines.index);
    mailbox_free(local_engines.mailbox);
    local_engines = (struct engines){0};
}

const struct ds_backend ds__local_backend = {
    .name = "local",
    .send = local_send,
    .abort = local_abort,
    .worker_init = local_worker_init,
    .consumed = local_consumed,
    .healthy = local_healthy,
};
