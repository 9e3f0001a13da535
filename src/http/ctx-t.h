/*
 * ctx-t.h — a worker's handler context (types only, STYLE §4).
 *
 * Everything a handler or the response writer needs from the worker it runs
 * on, handed over explicitly (req->ctx) instead of reached through the
 * connection. One per worker loop, owned by the application (src/main.c
 * makes them; a unit test makes its own) and used only on that loop's
 * thread; net/ keeps a pointer to it without looking inside.
 */
#ifndef HTTP_CTX_T_H
#define HTTP_CTX_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/freelist.h"

struct admit_worker;
struct buf;
struct ds_worker;
struct metrics_shard;
struct og_config;
struct router;

struct http_ctx {
    int id;                      /* worker index: picks per-worker shards of other modules */
    bool is_admin;               /* admin listener: exempt from admission */
    const struct og_config *cfg; /* this worker's snapshot, replaced on reload */
    struct metrics_shard *m;     /* this worker's HTTP metric shard */
    const struct router *router; /* this listener's routes */
    /* Downstream handle (ds_worker_init): ds_call() runs the call on this
     * worker's loop, with this context's cfg. NULL on the admin loop. */
    struct ds_worker *ds;
    struct buf *logbuf;         /* access log lines; the loop's owner flushes it once per turn */
    struct admit_worker *admit; /* this worker's admission queues (admit/), NULL on admin */

    /* Cached "Date: ...\r\n" header line, rebuilt when the second changes. */
    char date_line[48];
    size_t date_len;
    int64_t date_sec;
    uint64_t rid_state; /* request-id generator */
    /* Response blocks of HTTP_SMALL_BLOCK bytes (head and small body), kept
     * for reuse: most answers fit one, so they cost no malloc. */
    struct freelist small_blocks;
};

#define HTTP_SMALL_BLOCK         1024
#define HTTP_SMALL_BLOCKS_CACHED 64

#endif
