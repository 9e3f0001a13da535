/*
 * walrec_decode.c — libFuzzer target: the frames of a service's log
 * (services/durable/walrec.h) read back to back from arbitrary bytes, as
 * replay reads a file. Every frame that decodes must encode back to exactly
 * its own bytes, and reading stops cleanly at the first one that does not.
 */
#include <stdlib.h>
#include <string.h>

#include "services/durable/walrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct walrec r; /* 2 KiB of ids: off the stack */
    struct buf again = {0};
    size_t at = 0, used;
    int rc;

    while ((rc = walrec_decode(data + at, size - at, &r, &used)) == WALREC_OK) {
        if (used < WALREC_HEAD_BYTES || used > size - at)
            abort();
        again.n = 0;
        if (walrec_encode(&again, &r) != 0 || again.n != used ||
            memcmp(again.p, data + at, used) != 0)
            abort();
        at += used;
    }
    if (rc != WALREC_SHORT && rc != WALREC_BAD)
        abort();
    buf_release(&again);
    return 0;
}
