/*
 * ctx.h — a worker's handler context: set-up and the per-worker helpers the
 * response writer uses (cached Date line, request ids).
 */
#ifndef HTTP_CTX_H
#define HTTP_CTX_H

#include "http/ctx-t.h"

/* Set up ctx for worker id with its config snapshot, metric shard, routes
 * and log buffer (all borrowed: they must outlive ctx); is_admin is false
 * and ds NULL until the caller sets them. */
void http_ctx_init(struct http_ctx *ctx, int id, const struct og_config *cfg,
                   struct metrics_shard *m, const struct router *router, struct buf *logbuf);

/* Free what ctx keeps (on its loop's thread, after the loop ended). */
void http_ctx_release(struct http_ctx *ctx);

/* A reloaded configuration: handlers on ctx's worker see cfg from now on. */
static inline void http_ctx_set_config(struct http_ctx *ctx, const struct og_config *cfg)
{
    ctx->cfg = cfg;
}

/* "Date: <IMF-fixdate>\r\n" for the current second; *len is its length. The
 * memory is ctx's, valid until the next call. */
const char *http_ctx_date_line(struct http_ctx *ctx, size_t *len);

/* A fresh 16-hex request id into out (NUL-terminated). */
void http_ctx_request_id(struct http_ctx *ctx, char out[17]);

#endif
