/*
 * stream.c — streamed calls (ds_call_stream, ds.h): the head, chunks held
 * by the consumer within the call's window, the producer's progress
 * budget, and the end. The backend side of it is in internal.h.
 */
#include <stdlib.h>
#include <string.h>

#include "ds/call.h"
#include "ds/stats.h"

struct ds_call *ds_call_stream(struct ds_worker *dw, const struct ds_req *req,
                               const struct ds_stream_cbs *cbs, void *arg)
{
    if (cbs == NULL || !cbs->on_head || !cbs->on_chunk || !cbs->on_end)
        return NULL;
    struct ds_call *c = ds__call_new(dw, req, NULL, arg);
    if (c == NULL)
        return NULL;
    c->stream = true;
    c->scbs = *cbs;
    /* No retry, hedge or coalescing (ds.h says why). */
    c->req.idempotent = false;
    c->req.coalesce = false;
    unsigned win = req->stream_window ? req->stream_window : DS_STREAM_WINDOW_DEF;
    c->window = win < DS_STREAM_WINDOW_MIN   ? DS_STREAM_WINDOW_MIN
                : win > DS_STREAM_WINDOW_MAX ? DS_STREAM_WINDOW_MAX
                                             : win;
    uint64_t now = uv_now(dw->loop);
    c->stall_ms = req->deadline_ms > now ? req->deadline_ms - now : 1;
    if (ds__admit(c))
        ds__attempt(c);
    return c;
}

/* After the head, the timer watches the producer: it runs while the
 * consumer has room for another chunk (so the producer is the one to move)
 * and restarts on every chunk in either direction. */
static void stream_progress(struct ds_call *c)
{
    if (c->finished || !c->head_done)
        return;
    if (c->held < c->window)
        ds__call_timer_start(c, c->stall_ms);
    else
        uv_timer_stop(&c->timer);
}

/* A stream is over: let the backend go, give back the limit's slot and cut
 * the chunks the consumer still holds loose from c. */
static void stream_teardown(struct ds_call *c)
{
    ds__call_release(c);
    for (struct ds_chunk *ch = c->chunks; ch; ch = ch->next)
        ch->c = NULL;
    c->chunks = NULL;
    c->held = 0;
}

/* End a stream after its head; the consumer hears status unless it
 * cancelled. */
static void stream_end(struct ds_call *c, int status)
{
    stream_teardown(c);
    if (!c->cancelled)
        c->scbs.on_end(c->arg, status);
    ds__call_free(c);
}

struct whole_chunk {
    struct ds_chunk ch;
    void *owner;
    void (*release)(void *owner);
};

static void whole_chunk_release(struct ds_chunk *ch)
{
    struct whole_chunk *k = (struct whole_chunk *)ch;
    if (k->release)
        k->release(k->owner);
    free(k);
}

void ds__stream_finish(struct ds_call *c, struct ds_resp *resp)
{
    if (resp->code != 0 && !c->head_done) {
        /* One answer: head, the body as one chunk (its owner's bytes), end. */
        struct ds_resp r = *resp;
        struct whole_chunk *k = NULL;
        bool more = ds__stream_head(c, r.code, r.hdr, r.hdr_len);
        if (more && r.body_len > 0 && (k = malloc(sizeof(*k))) != NULL) {
            *k = (struct whole_chunk){
                .ch.release = whole_chunk_release, .owner = r.owner, .release = r.release};
            r.release = NULL; /* the chunk has it now */
            more = ds__stream_chunk(c, &k->ch, r.body, r.body_len);
        }
        if (r.release)
            r.release(r.owner);
        if (more)
            ds__stream_end(c, r.body_len > 0 && k == NULL ? DS_STREAM_NOMEM : DS_STREAM_OK);
        return;
    }
    if (resp->release)
        resp->release(resp->owner);
    if (c->head_done) {
        stream_end(c, resp->code != 0                        ? DS_STREAM_TRUNCATED
                      : resp->err == OG_E_DOWNSTREAM_TIMEOUT ? DS_STREAM_DEADLINE
                                                             : DS_STREAM_LOST);
        return;
    }
    /* No answer at all: the head says so, and nothing follows. */
    stream_teardown(c);
    struct ds_resp r = {.code = 0, .err = resp->err, .attempts = c->attempts};
    r.latency_ms = (double)(uv_hrtime() - c->t0_ns) / 1e6;
    stats_observe(c, &r);
    if (!c->cancelled)
        c->scbs.on_head(c->arg, &r);
    ds__call_free(c);
}

bool ds__stream_head(struct ds_call *c, int code, const char *hdr, size_t hdr_len)
{
    if (c->finished)
        return false;
    /* The header is copied behind a ds_owner so that ds_resp_keep works on
     * the head as on any answer (the backend's bytes are a read buffer). */
    struct ds_owner *o = code != 0 ? malloc(sizeof(*o) + hdr_len + 1) : NULL;
    if (o == NULL) {
        ds__fail(c, code != 0 ? OG_E_INTERNAL : OG_E_BAD_GATEWAY);
        return false;
    }
    char *h = (char *)(o + 1);
    if (hdr_len)
        memcpy(h, hdr, hdr_len);
    h[hdr_len] = '\0';
    *o = (struct ds_owner){.refs = 1};
    struct ds_resp r = {.code = code,
                        .hdr = h,
                        .hdr_len = hdr_len,
                        .attempts = c->attempts,
                        .owner = o,
                        .release = ds__owner_release};
    r.latency_ms = (double)(uv_hrtime() - c->t0_ns) / 1e6;
    c->head_done = true;
    stats_observe(c, &r);
    stream_progress(c);
    c->scbs.on_head(c->arg, &r);
    ds__owner_release(o);
    return !c->finished;
}

bool ds__stream_chunk(struct ds_call *c, struct ds_chunk *ch, const uint8_t *p, size_t n)
{
    if (c->finished || n == 0) {
        ch->c = NULL;
        ch->release(ch);
        return !c->finished;
    }
    ch->c = c;
    ch->next = c->chunks;
    c->chunks = ch;
    c->held++;
    stream_progress(c);
    c->scbs.on_chunk(c->arg, p, n, ch);
    return !c->finished;
}

void ds__stream_end(struct ds_call *c, int status)
{
    if (c->finished)
        return;
    c->in_attempt = false; /* the backend has let go (internal.h) */
    stream_end(c, status);
}

void ds_chunk_done(void *chunk_owner)
{
    struct ds_chunk *ch = chunk_owner;
    if (ch == NULL)
        return;
    struct ds_call *c = ch->c;
    if (c) {
        /* Held chunks number at most DS_STREAM_WINDOW_MAX: a list walk. */
        for (struct ds_chunk **pp = &c->chunks; *pp; pp = &(*pp)->next)
            if (*pp == ch) {
                *pp = ch->next;
                break;
            }
        c->held--;
        ch->c = NULL;
        if (c->in_attempt && ds__backends[c->req.svc]->consumed)
            ds__backends[c->req.svc]->consumed(c);
        stream_progress(c);
    }
    ch->release(ch);
}
