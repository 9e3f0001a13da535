/*
 * mailbox_answer.c — libFuzzer target: mailbox answers (docs/OAP.md
 * "Mailbox answers": JSON in front, then the bodies' bytes by their "len"),
 * which a macronode reads from a mailbox service, an untrusted peer, and
 * renders for receives, views and feeds (src/view/messages.c).
 *
 * Checked on every run: no memory error; the receive rendering and the
 * feed decoding agree on whether the answer is well-formed; a refused
 * answer leaves the feed output as it was; and every record a feed decode
 * made reads back whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/jw.h"
#include "view/memo.h"
#include "view/messages.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf out = {0};
    struct jw w;
    jw_init(&w, &out);
    int rendered = view_messages_render(&w, data, size);

    struct buf rec = {0};
    if (buf_append(&rec, "keep", 4) != 0)
        abort();
    int decoded = view_feed_decode(data, size, &rec);
    if ((rendered == 0) != (decoded == 0) && !jw_failed(&w))
        abort();
    if (decoded != 0 && (rec.n != 4 || memcmp(rec.p, "keep", 4) != 0))
        abort();
    if (decoded == 0) {
        struct buf only = {.p = rec.p + 4, .n = rec.n - 4};
        size_t off = 0;
        struct feed_msg m;
        while (view_feed_next(&only, &off, &m))
            if (m.json_len > only.n)
                abort();
        if (off != only.n)
            abort();
    }
    buf_release(&rec);
    buf_release(&out);
    memo_thread_release();
    return 0;
}
