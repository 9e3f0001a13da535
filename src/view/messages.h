/*
 * messages.h — mailbox answers turned into output JSON.
 *
 * A peek answer is {"messages":[{"id","sent_ms",…,"len"}...]} followed by
 * the bodies' bytes (docs/OAP.md "Mailbox answers"). Views
 * inline the messages as an array; feeds also join each message that names
 * an object ({"obj":"b3:..."} in a JSON body) with that object. Both
 * renderings depend only on the answer's bytes, so both are memoised under
 * them (view/memo.h): a channel that has not changed costs one exact-match
 * lookup instead of a JSON parse, JSON checks of the bodies and rendering.
 */
#ifndef VIEW_MESSAGES_H
#define VIEW_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cas/cas.h"
#include "core/buf.h"
#include "core/jw.h"
#include "view/plan.h"

/* Messages array from a peek/recv answer body; -1 if malformed. Each
 * message: id, sent_ms, deliveries and lease_until_ms when the answer has
 * them, type when it was sent with one, and the body — the bytes as sent
 * when they are JSON (and not sent as another type), else base64 after
 * "encoding":"base64". Views, feeds and the mailbox routes all render a
 * message so. */
int view_messages(struct jw *w, const uint8_t *p, size_t n);
/* The same, not memoised (every receive answer is new). */
int view_messages_render(struct jw *w, const uint8_t *p, size_t n);

/* One message of a feed: its JSON object up to (not including) the closing
 * brace — `{"id":N,"sent_ms":M,"body":...` — and, when the body names an
 * object, that object's address and media type. */
struct feed_msg {
    const char *json;
    size_t json_len;
    bool has_obj;
    struct cas_addr addr;
    const char *media_type; /* not NUL-terminated */
    size_t media_type_len;
};

#define FEED_MEDIA_TYPE_MAX VIEW_MEDIA_TYPE_MAX /* it fills a view_part */

/* Decode a peek answer into feed records appended to out (memoised).
 * Returns 0, or -1 if the answer is malformed or memory ran out (out is
 * then left as it was). */
int view_feed_decode(const uint8_t *p, size_t n, struct buf *out);

/* The record at *off of a buffer filled by view_feed_decode; advances *off.
 * False at the end. */
bool view_feed_next(const struct buf *b, size_t *off, struct feed_msg *m);

#endif
