/*
 * authz_bench.c — the capability check of every request: cap_cache_verify on
 * a benchmark token like `omnigate mint` issues (v2, tenant, seven scopes,
 * expiry), for GET /v1/view/article-007.
 *
 *   authz_bench                 ns/op of both modes
 *   authz_bench cached|full N   exactly N checks (testing/performance/budgets.py
 *                               runs two counts under callgrind and takes the
 *                               difference, so set-up cancels)
 *
 * cached: one token, warm cache — what a request pays after its first.
 * full:   TOKENS tokens in turn through a 4-entry cache (one set, LRU), so
 *         every check misses: BLAKE3 of the token, lookup, base64, parse,
 *         HMAC chain, caveats, insert. The clock is fixed, so no entry ages.
 * Prints one JSON line per mode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/caveat.h"
#include "cas/cas.h"

#define TOKENS 16
#define NOW    1700000000

static char tokens[TOKENS][MACAROON_MAX_TOKEN_CHARS + 1];

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void run(const struct cap_keys *keys, const char *mode, unsigned long iters)
{
    int full = strcmp(mode, "full") == 0;
    struct cap_cache *c = cap_cache_new(full ? CAP_CACHE_WAYS : 1024);
    static const char path[] = "/v1/view/article-007";
    struct cap_request rq = {"GET", 3, path, sizeof(path) - 1, NULL, 0, NOW};
    struct cap_result res;
    if (c == NULL)
        exit(1);
    double t0 = now_ns();
    for (unsigned long i = 0; i < iters; i++) {
        const char *t = tokens[full ? i % TOKENS : 0];
        if (cap_cache_verify(c, keys, t, strlen(t), &rq, &res) != CAP_OK)
            exit(1);
    }
    double t1 = now_ns();
    printf("{\"bench\":\"authz\",\"mode\":\"%s\",\"iters\":%lu,\"ns_per_op\":%.1f,"
           "\"hits\":%llu,\"misses\":%llu}\n",
           mode, iters, iters ? (t1 - t0) / (double)iters : 0.0, (unsigned long long)c->hits,
           (unsigned long long)c->misses);
    cap_cache_free(c);
}

int main(int argc, char **argv)
{
    struct cap_keys *keys = cap_keys_new();
    struct cap_mint p = {.key_id = "bench",
                         .tenant = "demo",
                         .scopes =
                             CAP_SCOPE_ALL & ~(CAP_SCOPE_MAILBOX_READ | CAP_SCOPE_MAILBOX_WRITE),
                         .expires = NOW + 3600,
                         .version = 2};
    cas_init();
    if (keys == NULL || cap_keys_add_random(keys, "bench", NULL) != 0)
        return 1;
    for (int i = 0; i < TOKENS; i++)
        if (cap_mint(keys, &p, tokens[i], sizeof(tokens[i])) < 0)
            return 1;
    if (argc == 3 && (strcmp(argv[1], "cached") == 0 || strcmp(argv[1], "full") == 0)) {
        run(keys, argv[1], strtoul(argv[2], NULL, 10));
    } else if (argc == 1) {
        run(keys, "cached", 2000000);
        run(keys, "full", 100000);
    } else {
        fprintf(stderr, "usage: authz_bench [cached|full N]\n");
        return 2;
    }
    cap_keys_free(keys);
    return 0;
}
