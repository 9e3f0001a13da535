/*
 * ctx.c — per-worker helpers of the response writer.
 */
#include "http/ctx.h"

#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

void http_ctx_init(struct http_ctx *ctx, int id, const struct og_config *cfg,
                   struct metrics_shard *m, const struct router *router, struct buf *logbuf)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->id = id;
    ctx->cfg = cfg;
    ctx->m = m;
    ctx->router = router;
    ctx->logbuf = logbuf;
    ctx->date_sec = -1;
    ctx->rid_state = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ ((uint64_t)id << 56);
    freelist_init(&ctx->small_blocks, HTTP_SMALL_BLOCKS_CACHED);
}

void http_ctx_release(struct http_ctx *ctx)
{
    freelist_release(&ctx->small_blocks);
}

const char *http_ctx_date_line(struct http_ctx *ctx, size_t *len)
{
    time_t now = time(NULL);
    if (now != ctx->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        ctx->date_len = strftime(ctx->date_line, sizeof(ctx->date_line),
                                 "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        ctx->date_sec = now;
    }
    *len = ctx->date_len;
    return ctx->date_line;
}

void http_ctx_request_id(struct http_ctx *ctx, char out[17])
{
    /* splitmix64 over a per-worker random seed: unique per process run and
     * cheap; not a secret, so no CSPRNG is needed. */
    uint64_t z = (ctx->rid_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    static const char HEX[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, z >>= 4)
        out[i] = HEX[z & 15];
    out[16] = '\0';
}
