/*
 * memo.h — a per-worker memo of pure transformations of content.
 *
 * Parsing a manifest into a plan, checking that bytes are JSON, turning a
 * mailbox answer into output JSON: each result depends only on the input
 * bytes, so it is memoised under those bytes (plus a domain tag). Keys are
 * compared byte for byte, so a hit is exact; the hash (SipHash with a
 * per-thread random key over the key's length and its first and last bytes)
 * only picks the slot, and a collision costs a miss, never a wrong answer.
 * Bytes are still fetched and verified on every request; only the work of
 * re-deriving the same output from the same bytes is skipped.
 * Thread-local (one table per worker, no locks), direct-mapped, bounded in
 * entries and bytes; an entry is replaced by the next key of its slot.
 */
#ifndef VIEW_MEMO_H
#define VIEW_MEMO_H

#include <stddef.h>
#include <stdint.h>

#define MEMO_SLOTS     16384
#define MEMO_BYTES_MAX (16u << 20) /* keys + values, per worker */
#define MEMO_ENTRY_MAX (64u << 10)

enum memo_domain { MEMO_PLAN = 1, MEMO_OBJECT, MEMO_MESSAGES, MEMO_JSON, MEMO_FEED };

/* The value memoised for (domain, key), or NULL. Valid until the next
 * memo_put on this thread. extra (may be NULL) is part of the key. */
const void *memo_get(enum memo_domain d, const void *key, size_t key_len, const char *extra,
                     size_t *len);

/* Store a copy of (key, value); skipped when too large or over budget. */
void memo_put(enum memo_domain d, const void *key, size_t key_len, const char *extra,
              const void *value, size_t len);

/* Free this thread's table (at worker exit). */
void memo_thread_release(void);

/* Start-up: register hit/miss counters for /metrics. */
void memo_init(void);

#endif
