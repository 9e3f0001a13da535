/*
 * journal.c — the service's changes as log records, and records back into
 * the engines (journal.h).
 *
 * Which ops are logged is one table, LOGGED: a row names the app and op and
 * the function that turns the executed op and its answer into a record. An
 * op added to the app protocol that changes what a restart must keep is
 * one more row (and, if its change is of a new kind, one more record type
 * in walrec.h with its case in journal_apply).
 *
 * Not logged, on purpose: peek, dead and stats (reads), and recv, nack,
 * lease and redrive, which only move leases, delivery counts and dead
 * letters. Those are not kept across a restart: every message that was not
 * acked comes back visible and never delivered, dead letters included.
 * At-least-once delivery allows that redelivery; what it does not allow —
 * a message answered 201 and lost, an acked message coming back, an id
 * issued twice — the records below rule out.
 */
#include "services/durable/journal.h"

#include <jansson.h>
#include <string.h>

#include "oap/oap-t.h"

_Static_assert(MAILBOX_BATCH_MAX <= WALREC_IDS_MAX, "one ack fits one record");

static struct walrec_bytes bytes_of(struct proto_str s)
{
    return (struct walrec_bytes){(const uint8_t *)s.p, s.p ? s.n : 0};
}

/* The answer's header: our own JSON, small. NULL when memory is short. */
static json_t *answer(const struct proto_resp *rs)
{
    json_error_t jerr;
    return json_loadb(rs->hdr, rs->hdr_len, 0, &jerr);
}

/* mailbox send: 201 stored a message with the id in the answer (200 is a
 * duplicate: nothing new). */
static int rec_send(const struct proto_op *op, const uint8_t *body, size_t n, uint64_t now_ms,
                    const struct proto_resp *rs, struct walrec *r)
{
    json_t *a, *id;
    int ok;

    if (rs->code != 201)
        return 0;
    a = answer(rs);
    id = json_object_get(a, "id");
    ok = json_is_integer(id) && json_integer_value(id) > 0;
    *r = (struct walrec){.type = WALREC_MB_SEND,
                         .name = bytes_of(op->channel),
                         .key = bytes_of(op->key),
                         .media = bytes_of(op->type),
                         .id = ok ? (uint64_t)json_integer_value(id) : 0,
                         .sent_ms = now_ms,
                         .body = {body, n}};
    json_decref(a);
    return ok ? 1 : -1;
}

/* Whether id is in the answer's list `key`. */
static bool listed(json_t *a, const char *key, uint64_t id)
{
    json_t *l = json_object_get(a, key);

    for (size_t i = 0; i < json_array_size(l); i++) {
        json_t *v = json_array_get(l, i);
        if (json_is_integer(v) && (uint64_t)json_integer_value(v) == id)
            return true;
    }
    return false;
}

/* mailbox ack: the ids it acked. The answer lists the others (unknown,
 * leased by another owner, not leased); those must not be acked again at
 * replay, where no lease would stop it. */
static int rec_ack(const struct proto_op *op, const uint8_t *body, size_t n, uint64_t now_ms,
                   const struct proto_resp *rs, struct walrec *r)
{
    json_t *a = answer(rs);

    if (a == NULL)
        return -1;
    *r = (struct walrec){.type = WALREC_MB_ACK, .name = bytes_of(op->channel)};
    for (size_t i = 0; i < op->nids && i < WALREC_IDS_MAX; i++)
        if (!listed(a, "unknown", op->ids[i]) && !listed(a, "foreign", op->ids[i]) &&
            !listed(a, "not_leased", op->ids[i]))
            r->ids_buf[r->nids++] = op->ids[i];
    r->ids = r->ids_buf;
    json_decref(a);
    return r->nids > 0;
}

/* index put: 201 new, 200 replaced. */
static int rec_put(const struct proto_op *op, const uint8_t *body, size_t n, uint64_t now_ms,
                   const struct proto_resp *rs, struct walrec *r)
{
    *r = (struct walrec){.type = WALREC_IX_PUT, .name = bytes_of(op->name), .body = {body, n}};
    return 1;
}

typedef int (*record_fn)(const struct proto_op *op, const uint8_t *body, size_t n, uint64_t now_ms,
                         const struct proto_resp *rs, struct walrec *r);

/* The ops whose success changes what a restart must keep. */
static const struct {
    uint16_t app;
    enum proto_kind kind;
    record_fn record;
} LOGGED[] = {
    {OAP_APP_MAILBOX, PROTO_SEND, rec_send},
    {OAP_APP_MAILBOX, PROTO_ACK, rec_ack},
    {OAP_APP_INDEX, PROTO_PUT, rec_put},
};

int64_t journal_log(struct wal *w, const struct proto_op *op, const uint8_t *body, size_t n,
                    uint64_t now_ms, const struct proto_resp *rs)
{
    static struct walrec r; /* the loop thread's: 2 KiB of ids off the stack */
    uint64_t pos;
    int rc;

    if (rs->code < 200 || rs->code > 299)
        return 0;
    for (size_t i = 0; i < sizeof(LOGGED) / sizeof(LOGGED[0]); i++) {
        if (LOGGED[i].app != op->app || LOGGED[i].kind != op->kind)
            continue;
        if ((rc = LOGGED[i].record(op, body, n, now_ms, rs, &r)) <= 0)
            return rc;
        pos = wal_append(w, &r);
        return pos > 0 ? (int64_t)pos : -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- replay */

int journal_apply(void *arg, const struct walrec *r)
{
    struct engines *e = arg;
    uint64_t now = proto_now_ms();
    const char *name = (const char *)r->name.p;
    int st;

    if (r->type == WALREC_IX_PUT) {
        if (e->index == NULL)
            return -1;
        return index_put(e->index, name, r->name.n, r->body.p, r->body.n, NULL) == ENG_OK ? 0 : -1;
    }
    if (e->mailbox == NULL)
        return -1;
    switch (r->type) {
    case WALREC_MB_SEND: {
        struct mailbox_saved_msg m = {.id = r->id,
                                      .sent_ms = r->sent_ms,
                                      .body = r->body.p,
                                      .n = r->body.n,
                                      .type = (const char *)r->media.p,
                                      .type_len = r->media.n,
                                      .key = (const char *)r->key.p,
                                      .key_len = r->key.n};
        st = mailbox_restore_msg(e->mailbox, name, r->name.n, &m, now);
        break;
    }
    case WALREC_MB_ACK:
        st = mailbox_ack(e->mailbox, name, r->name.n, r->ids, r->nids, NULL);
        if (st == ENG_E_NOT_FOUND)
            st = ENG_OK; /* nothing there to ack */
        break;
    case WALREC_MB_CHANNEL:
        st = mailbox_restore_next_id(e->mailbox, name, r->name.n, r->next_id);
        break;
    case WALREC_MB_KEY:
        st = mailbox_restore_key(e->mailbox, name, r->name.n, (const char *)r->key.p, r->key.n,
                                 r->id, r->body_hash, r->expires_ms, now);
        break;
    default: st = ENG_E_INVALID;
    }
    return st == ENG_OK ? 0 : -1;
}

/* ------------------------------------------------------------- snapshots */

static int dump_channel(void *arg, const struct mailbox_dump *d)
{
    struct wal_snap *s = arg;
    struct walrec_bytes ch = {(const uint8_t *)d->ch, d->ch_len};
    struct walrec r = {.type = WALREC_MB_CHANNEL, .name = ch, .next_id = d->next_id};

    if (wal_snap_put(s, &r) != 0)
        return -1;
    for (size_t i = 0; i < d->nmsgs; i++) {
        const struct mailbox_msg *m = &d->msgs[i];
        r = (struct walrec){.type = WALREC_MB_SEND,
                            .name = ch,
                            .id = m->id,
                            .sent_ms = m->sent_ms,
                            .media = {(const uint8_t *)mailbox_msg_type(m), m->type_len},
                            .body = {m->body->bytes, m->body->size}};
        if (wal_snap_put(s, &r) != 0)
            return -1;
    }
    for (size_t i = 0; i < d->nkeys; i++) {
        const struct mailbox_key_state *k = &d->keys[i];
        r = (struct walrec){.type = WALREC_MB_KEY,
                            .name = ch,
                            .key = {(const uint8_t *)k->key, k->len},
                            .id = k->id,
                            .expires_ms = k->expires_ms,
                            .body_hash = k->body_hash};
        if (wal_snap_put(s, &r) != 0)
            return -1;
    }
    return 0;
}

static int dump_name(void *arg, const char *name, size_t len, const struct eng_buf *manifest)
{
    struct walrec r = {.type = WALREC_IX_PUT,
                       .name = {(const uint8_t *)name, len},
                       .body = {manifest->bytes, manifest->size}};
    return wal_snap_put(arg, &r) != 0 ? -1 : 0;
}

int journal_dump(void *arg, struct wal_snap *s)
{
    struct engines *e = arg;

    if (e->mailbox != NULL && mailbox_dump(e->mailbox, proto_now_ms(), dump_channel, s) != ENG_OK)
        return -1;
    if (e->index != NULL && index_dump(e->index, dump_name, s) != ENG_OK)
        return -1;
    return 0;
}
