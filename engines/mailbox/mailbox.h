/*
 * engines/mailbox/mailbox.h — named message channels with at-least-once
 * delivery (DESIGN §1, §4 mailbox routes, §6 peek parts).
 *
 * A channel is created by its first SEND. Each message gets an id, a u64
 * that grows by one per channel from 1. RECV leases up to N visible messages
 * for lease_ms: they are invisible to other receivers until the lease ends.
 * ACK removes messages for good. A message whose lease ends unacked becomes
 * visible again and is delivered again; once it has been delivered
 * max_deliveries times and its last lease ends unacked, it moves to the
 * channel's dead-letter queue (DLQ) instead. So an acked message never comes
 * back and an unacked one is never silently lost (the DLQ is bounded by
 * max_depth; past that its oldest entry is dropped and counted).
 *
 * Idempotency: a SEND with a key that was already used on that channel within
 * idem_window_ms returns the first send's id and stores nothing (even if that
 * message has since been acked); the same key with a different body is
 * refused (ENG_E_CONFLICT).
 *
 * Time is an argument (now_ms, any monotonic millisecond clock, the same for
 * all calls on one mailbox), so behaviour is deterministic; there are no
 * threads or timers inside. Leases and dead-lettering are evaluated lazily
 * whenever a call touches the channel.
 *
 * Threads: any function from any thread. PEEK takes no lock: it reads the
 * channel's live messages from an immutable view published behind an atomic
 * pointer (engines/common/rcu.h; mailbox.c says why), unless a dead letter
 * is due to move, which it then does under the channel's mutex as before.
 * mailbox_stats_walk() (metrics) reads the same views and takes no lock
 * either. RECV (it leases what it returns), SEND, ACK, DLQ peeks and one
 * channel's stats change the channel and serialise on that mutex; creating
 * a channel locks the channel table, finding one does not. Bodies are
 * handed out as eng_buf references, so nothing is held while they are
 * sent. Any call may return
 * ENG_E_NOMEM: a change allocates the channel's next view, and a thread's
 * first lock-free read allocates its reader slot.
 */
#ifndef ENGINES_MAILBOX_MAILBOX_H
#define ENGINES_MAILBOX_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engines/common/buf.h"
#include "engines/common/hash.h"
#include "engines/common/status.h"

#define MAILBOX_DEFAULT_MAX_CHANNELS   1024
#define MAILBOX_DEFAULT_MAX_DEPTH      1000
#define MAILBOX_DEFAULT_IDEM_WINDOW_MS (10u * 60 * 1000)
#define MAILBOX_DEFAULT_LEASE_MS       30000
#define MAILBOX_DEFAULT_MAX_DELIVERIES 5
#define MAILBOX_DEFAULT_MAX_MSG_BYTES  (64u << 10)
/* Most messages one RECV/PEEK returns; the longest lease accepted. */
#define MAILBOX_BATCH_MAX     100
#define MAILBOX_LEASE_MAX_MS  (12ull * 3600 * 1000)
#define MAILBOX_KEY_MAX_BYTES 255
#define MAILBOX_SEED_BYTES    16

struct mailbox_opts {
    size_t max_channels;     /* 0 → default */
    size_t max_depth;        /* live (unacked) messages per channel; 0 → default */
    uint64_t idem_window_ms; /* 0 → default */
    uint64_t lease_ms;       /* lease when RECV passes 0; 0 → default */
    uint32_t max_deliveries; /* K: deliveries before dead-lettering; 0 → default */
    size_t max_msg_bytes;    /* 0 → default */
    size_t max_idem_keys;    /* live keys per channel; 0 → 4 × max_depth */
    /* MAILBOX_SEED_BYTES: the key of the mailbox's SipHashes (channel and
     * idempotency tables, the body hash kept with each idempotency key).
     * A mailbox restored from a saved state must get the seed of the one
     * that saved it, or the saved body hashes mean nothing. NULL → random. */
    const uint8_t *seed;
};

/* One message as returned by RECV / PEEK / DLQ peek. `body` is a reference
 * the caller owns: release with mailbox_msgs_release(). */
struct mailbox_msg {
    uint64_t id;
    uint64_t sent_ms;     /* now_ms of the SEND */
    uint64_t lease_until; /* end of the current lease; 0 = never leased */
    uint32_t deliveries;  /* times RECV has handed it out, this one included */
    uint64_t owner;       /* who holds the current lease (mailbox_lease); 0: nobody named */
    uint8_t type_len;     /* media type, stored just past the body: body->bytes[size..) */
    struct eng_buf *body;
};

struct mailbox_channel_stats {
    uint64_t depth;       /* live messages (visible + leased) */
    uint64_t leased;      /* of which leased now */
    uint64_t dlq;         /* messages in the dead-letter queue */
    uint64_t dlq_dropped; /* dead letters dropped because the DLQ was full */
    uint64_t next_id;     /* id the next new message will get */
    uint64_t idem_keys;   /* live idempotency keys */
    uint64_t oldest_ms;   /* sent_ms of the oldest live message; 0 when none */
};

struct mailbox;

/* A new mailbox; opts may be NULL. A default lease over MAILBOX_LEASE_MAX_MS
 * is lowered to it. Returns NULL with *status (if non-NULL) ENG_E_NOMEM on
 * failure; *status ENG_OK else. */
struct mailbox *mailbox_new(const struct mailbox_opts *opts, int *status);

/* Free everything; bodies still referenced by callers stay valid. NULL:
 * no-op. */
void mailbox_free(struct mailbox *mb);

/* Append body[0..n) to channel `ch` (created if new) and set *id_out.
 * key/key_len: optional idempotency key (NULL/0: none), 1..255 bytes.
 * dup_out (optional): true when the key was seen within the window and *id_out
 * is the first send's id (nothing stored).
 * Returns ENG_OK; ENG_E_INVALID (bad channel name or key); ENG_E_TOO_LARGE
 * (n > max_msg_bytes); ENG_E_CONFLICT (the key was used within the window
 * for a different body: nothing stored); ENG_E_BUSY (channel at max_depth, or its idempotency
 * table full of unexpired keys: retry later, 429); ENG_E_FULL (max_channels
 * reached, for a new channel); ENG_E_NOMEM. */
__attribute__((warn_unused_result)) int
mailbox_send(struct mailbox *mb, const char *ch, size_t ch_len, const void *body, size_t n,
             const char *key, size_t key_len, uint64_t now_ms, uint64_t *id_out, bool *dup_out);

/* Lease up to `max` visible messages, oldest first, into out[0..*n_out), each
 * invisible until now_ms + lease_ms (lease_ms 0 → the mailbox default).
 * Messages whose final delivery's lease has ended move to the DLQ first.
 * An unknown channel is simply empty (*n_out = 0, ENG_OK).
 * Returns ENG_OK; ENG_E_INVALID (bad name, max outside 1..MAILBOX_BATCH_MAX,
 * lease over MAILBOX_LEASE_MAX_MS); ENG_E_NOMEM (nothing leased). */
__attribute__((warn_unused_result)) int mailbox_recv(struct mailbox *mb, const char *ch,
                                                     size_t ch_len, size_t max, uint64_t lease_ms,
                                                     uint64_t now_ms, struct mailbox_msg *out,
                                                     size_t *n_out);

/* Remove messages ids[0..n) from the channel, leased or not. Unknown or
 * already acked ids are counted out but harmless. *acked_out (optional):
 * how many were removed. Returns ENG_OK; ENG_E_INVALID (bad name, n over
 * MAILBOX_BATCH_MAX); ENG_E_NOT_FOUND only for an unknown channel;
 * ENG_E_NOMEM (nothing removed). */
int mailbox_ack(struct mailbox *mb, const char *ch, size_t ch_len, const uint64_t *ids, size_t n,
                size_t *acked_out);

/* The newest `max` live messages (visible or leased), newest first, without
 * leasing them or counting a delivery. Unknown channel: empty, ENG_OK.
 * ENG_E_INVALID as for mailbox_recv(); ENG_E_NOMEM. Takes no lock unless a
 * dead letter is due (see Threads). */
__attribute__((warn_unused_result)) int mailbox_peek(struct mailbox *mb, const char *ch,
                                                     size_t ch_len, size_t max, uint64_t now_ms,
                                                     struct mailbox_msg *out, size_t *n_out);

/* The newest `max` dead letters, newest first (same rules as
 * mailbox_peek()). */
__attribute__((warn_unused_result)) int mailbox_dlq_peek(struct mailbox *mb, const char *ch,
                                                         size_t ch_len, size_t max, uint64_t now_ms,
                                                         struct mailbox_msg *out, size_t *n_out);

/* Counters of one channel at now_ms: ENG_OK, ENG_E_NOT_FOUND, ENG_E_INVALID. */
int mailbox_channel_stats(struct mailbox *mb, const char *ch, size_t ch_len, uint64_t now_ms,
                          struct mailbox_channel_stats *out);

/* Called once per channel by mailbox_stats_walk(): name[0..n) is the
 * channel's name (not NUL-terminated), valid as long as the mailbox lives
 * (channels are never removed); st has depth, leased, dlq (dead letters,
 * swept or due) and oldest_ms filled, the other fields 0. It runs inside a
 * lock-free read section: it must not block, take a lock or call into the
 * mailbox. A nonzero return stops the walk. */
typedef int (*mailbox_stats_fn)(void *arg, const char *name, size_t n,
                                const struct mailbox_channel_stats *st);

/* The counters of every channel at now_ms, for metrics, without any lock:
 * from each channel's published view, so neither senders nor peeks wait for
 * it and nothing is swept. A channel costs O(1) unless one of its leases
 * ended or a dead letter fell due since its last change (then O(depth)).
 * Channels are not seen at one instant together, and a message moving
 * between the live set and the DLQ at that moment may be counted in both.
 * Returns ENG_OK, ENG_E_NOMEM (this thread's first read section could not
 * be set up: nothing walked), or the first nonzero return of fn. */
int mailbox_stats_walk(struct mailbox *mb, uint64_t now_ms, mailbox_stats_fn fn, void *arg);

/* Number of channels (an atomic read). */
size_t mailbox_channels(struct mailbox *mb);

/* Drop the body references of msgs[0..n) and clear them. */
void mailbox_msgs_release(struct mailbox_msg *msgs, size_t n);

/* ---- leases with an owner, settling, redrive ---------------------------- */

#define MAILBOX_TYPE_MAX 127

/* mailbox_send() of a message with a media type (type_len ≤
 * MAILBOX_TYPE_MAX; 0: none), kept with it and handed back with it
 * (mailbox_msg_type). mailbox_send() is this with no type. */
__attribute__((warn_unused_result)) int
mailbox_send_typed(struct mailbox *mb, const char *ch, size_t ch_len, const void *body, size_t n,
                   const char *type, size_t type_len, const char *key, size_t key_len,
                   uint64_t now_ms, uint64_t *id_out, bool *dup_out);

/* The media type a message was sent with (type_len bytes, not
 * NUL-terminated; empty when none). */
static inline const char *mailbox_msg_type(const struct mailbox_msg *m)
{
    return (const char *)m->body->bytes + m->body->size;
}

/* mailbox_recv() for a named receiver: each message leased is marked with
 * `owner` (any nonzero token, e.g. a hash of the caller's tenant; 0 names
 * nobody), so that another receiver cannot ack, nack or extend it while the
 * lease runs. mailbox_recv() is this with owner 0. */
__attribute__((warn_unused_result)) int mailbox_lease(struct mailbox *mb, const char *ch,
                                                      size_t ch_len, size_t max, uint64_t lease_ms,
                                                      uint64_t owner, uint64_t now_ms,
                                                      struct mailbox_msg *out, size_t *n_out);

enum mailbox_settle_op {
    MAILBOX_ACK,    /* remove for good */
    MAILBOX_NACK,   /* end the lease now; visible again after ms (0: at once) */
    MAILBOX_EXTEND, /* the lease now ends ms from now (≤ MAILBOX_LEASE_MAX_MS) */
};

/* What settling did to one id. */
enum mailbox_outcome {
    MAILBOX_DONE,       /* acked, released or extended */
    MAILBOX_UNKNOWN,    /* no live message with that id (never sent, acked, dead) */
    MAILBOX_FOREIGN,    /* leased now by another owner: unchanged */
    MAILBOX_NOT_LEASED, /* NACK, EXTEND: its lease has ended (or it was never leased) */
};

/* Apply op to ids[0..n) on behalf of owner (0: any owner) and write one
 * outcome per id to outcome[0..n). An ACK of a message whose lease has
 * ended is done (the caller received it; at-least-once). A lease released by
 * NACK counts as a failed delivery: after max_deliveries the message moves to
 * the DLQ when it is visible again. Returns ENG_OK; ENG_E_INVALID (bad name,
 * n over MAILBOX_BATCH_MAX, ms over MAILBOX_LEASE_MAX_MS); ENG_E_NOT_FOUND
 * for an unknown channel; ENG_E_NOMEM (nothing changed). */
int mailbox_settle(struct mailbox *mb, const char *ch, size_t ch_len, enum mailbox_settle_op op,
                   const uint64_t *ids, size_t n, uint64_t owner, uint64_t ms, uint64_t now_ms,
                   enum mailbox_outcome *outcome);

/* Move up to max of the oldest dead letters back to the live messages, with
 * their ids and bodies, as never delivered (deliveries 0, no lease); stops
 * early when the channel is at max_depth. *moved_out: how many moved.
 * Returns ENG_OK (an unknown channel moves nothing); ENG_E_INVALID;
 * ENG_E_NOMEM (nothing moved). */
int mailbox_redrive(struct mailbox *mb, const char *ch, size_t ch_len, size_t max, uint64_t now_ms,
                    size_t *moved_out);

/* ---- restoring a saved state ----------------------------------------------
 * A service that keeps its mailbox on disk saves what a restart must keep —
 * each channel's next id, its messages (id, send time, body, media type)
 * and its live idempotency keys — and puts it back at start with these
 * functions, before anyone else calls. Leases, delivery counts and
 * dead-lettering are not saved: a message comes back visible, as never
 * delivered, whether it was leased or dead (at-least-once allows the
 * redelivery). Restoring is idempotent: what is already there is left as it
 * is. max_depth and max_idem_keys are not checked (what was accepted is
 * never refused when it is put back); names, key and type lengths are. */

/* A message as saved: id (≥ 1), send time, body[0..n), media type
 * (type_len ≤ MAILBOX_TYPE_MAX; 0: none) and the send's idempotency key
 * (key_len 0: none). */
struct mailbox_saved_msg {
    uint64_t id;
    uint64_t sent_ms;
    const void *body;
    size_t n;
    const char *type;
    size_t type_len;
    const char *key;
    size_t key_len;
};

/* Message s of channel ch (created if new), copied: put back in id order
 * unless that id is live already. The channel's next id becomes at least
 * s->id + 1. With a key, the send's idempotency key comes back too,
 * expiring idem_window_ms after s->sent_ms (not at all when that is ≤
 * now_ms). Returns ENG_OK, ENG_E_INVALID, ENG_E_FULL (max_channels),
 * ENG_E_NOMEM (nothing changed). */
__attribute__((warn_unused_result)) int mailbox_restore_msg(struct mailbox *mb, const char *ch,
                                                            size_t ch_len,
                                                            const struct mailbox_saved_msg *s,
                                                            uint64_t now_ms);

/* An idempotency key of channel ch for message id, as saved by
 * mailbox_dump() (body_hash under the same seed). Skipped when expires_ms
 * ≤ now_ms or the key is there. ENG_OK, ENG_E_INVALID, ENG_E_FULL,
 * ENG_E_NOMEM. */
__attribute__((warn_unused_result)) int mailbox_restore_key(struct mailbox *mb, const char *ch,
                                                            size_t ch_len, const char *key,
                                                            size_t key_len, uint64_t id,
                                                            uint64_t body_hash, uint64_t expires_ms,
                                                            uint64_t now_ms);

/* Channel ch's next id becomes at least next_id (≥ 1): ids of acked
 * messages are never issued again. ENG_OK, ENG_E_INVALID, ENG_E_FULL,
 * ENG_E_NOMEM. */
__attribute__((warn_unused_result)) int mailbox_restore_next_id(struct mailbox *mb, const char *ch,
                                                                size_t ch_len, uint64_t next_id);

/* One live idempotency key, as mailbox_dump() saw it. */
struct mailbox_key_state {
    uint64_t id;
    uint64_t expires_ms;
    uint64_t body_hash;
    uint8_t len;
    char key[MAILBOX_KEY_MAX_BYTES];
};

/* What a restart must keep of one channel. */
struct mailbox_dump {
    const char *ch;
    size_t ch_len;
    uint64_t next_id;
    struct mailbox_msg *msgs; /* live and dead messages, ascending id */
    size_t nmsgs;
    struct mailbox_key_state *keys; /* live keys, oldest first */
    size_t nkeys;
};

/* Called once per channel with no lock held; d and its arrays are valid
 * during the call only. A nonzero return stops the walk. */
typedef int (*mailbox_dump_fn)(void *arg, const struct mailbox_dump *d);

/* Read out every channel's state for saving, one channel at a time (each
 * copied under its mutex, so a channel is seen whole; channels are not seen
 * at one instant together). Keys expired at now_ms are left out. Returns
 * ENG_OK, ENG_E_NOMEM, or the first nonzero return of fn. */
int mailbox_dump(struct mailbox *mb, uint64_t now_ms, mailbox_dump_fn fn, void *arg);

#endif
