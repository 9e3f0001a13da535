/*
 * oap_bench.c — OAP/1 codec micro-benchmark: ns/op and allocations/op for
 * decode and encode of a small control frame and a 64 KiB DATA frame.
 *
 * Allocations are counted by interposing malloc/calloc/realloc/free in this
 * executable (they forward to glibc's __libc_* entry points), so every
 * allocation made by liboap — or by jansson/zstd on its behalf — is seen.
 * Prints one JSON line per measurement.
 *
 *   oap_bench            every measurement
 *   oap_bench decode N   decoding only: each frame N times whole in one read
 *                        and N/100 times straddling two, 2 (N + N/100) frames
 *                        in all, so that the decoder's own work outweighs the
 *                        64 KiB copies (testing/performance/budgets.py runs
 *                        two counts under callgrind: instructions per frame,
 *                        and allocations per frame, which must be 0)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oap/data.h"
#include "oap/oap.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static uint64_t allocs;

void *malloc(size_t n)
{
    allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    allocs++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    allocs++;
    return __libc_realloc(p, n);
}
void free(void *p)
{
    __libc_free(p);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void report(const char *op, const char *frame, size_t bytes, uint64_t iters, double ns,
                   uint64_t a, int copied)
{
    printf("{\"bench\":\"oap\",\"op\":\"%s\",\"frame\":\"%s\",\"bytes\":%zu,\"iters\":%llu,"
           "\"ns_per_op\":%.1f,\"allocs_per_op\":%.3f,\"payload_copied\":%s}\n",
           op, frame, bytes, (unsigned long long)iters, ns / (double)iters,
           (double)a / (double)iters, copied ? "true" : "false");
}

static void bench_frame(const char *name, struct oap_frame *f, uint64_t iters, uint64_t splits,
                        int decode_only)
{
    static uint8_t wire[OAP_HDR_BYTES + 70000];
    uint8_t hdr[OAP_HDR_BYTES];
    struct iovec iov[3];
    struct oap_decoder d;
    struct oap_frame out;
    size_t used;
    volatile uint64_t sink = 0;
    ssize_t n = oap_encode(f, OAP_MAX_FRAME_BYTES, wire, sizeof(wire));
    int copied = 0;

    if (n < 0) {
        fprintf(stderr, "encode failed: %s\n", oap_strerror((int)n));
        exit(1);
    }
    /* decode: a read buffer holding whole frames, the common case */
    oap_decoder_init(&d, OAP_MAX_FRAME_BYTES);
    uint64_t a0 = allocs;
    double t0 = now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        if (oap_decoder_feed(&d, wire, (size_t)n, &used, &out) != 0)
            exit(1);
        sink += out.payload_len;
        copied |= out.payload != wire + OAP_HDR_BYTES + out.h.cap_len;
    }
    double t1 = now_ns();
    report("decode", name, (size_t)n, iters, t1 - t0, allocs - a0, copied);

    /* decode of a frame straddling two reads: copied into the decoder's
     * buffer, which is reused from frame to frame */
    a0 = allocs;
    t0 = now_ns();
    for (uint64_t i = 0; i < splits; i++) {
        size_t half = (size_t)n / 2;
        if (oap_decoder_feed(&d, wire, half, &used, &out) != OAP_E_AGAIN ||
            oap_decoder_feed(&d, wire + half, (size_t)n - half, &used, &out) != 0)
            exit(1);
        sink += out.payload_len;
    }
    t1 = now_ns();
    report("decode_split", name, (size_t)n, splits, t1 - t0, allocs - a0, 1);
    oap_decoder_release(&d);
    if (decode_only)
        return;

    /* encode as iovecs: header written, payload referenced */
    a0 = allocs;
    t0 = now_ns();
    copied = 0;
    for (uint64_t i = 0; i < iters; i++) {
        int c = oap_encode_iov(f, OAP_MAX_FRAME_BYTES, hdr, iov);
        sink += (uint64_t)c;
        copied |= f->payload_len && iov[c - 1].iov_base != f->payload;
    }
    t1 = now_ns();
    report("encode_iov", name, (size_t)n, iters, t1 - t0, allocs - a0, copied);
    (void)sink;
}

int main(int argc, char **argv)
{
    /* OAP_BENCH_SCALE divides the iteration counts, e.g. 1000 under callgrind. */
    const char *sc = getenv("OAP_BENCH_SCALE");
    uint64_t scale = sc && atoi(sc) > 0 ? (uint64_t)atoi(sc) : 1;
    int decode_only = argc == 3 && strcmp(argv[1], "decode") == 0;
    uint64_t n_ctl = 20000000 / scale, n_data = 5000000 / scale, split_div = 10;
    static uint8_t payload[65536];
    static uint8_t body[65536];
    struct oap_frame f = {0};
    const char *js =
        "{\"obj\":\"b3:ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f\"}";

    if (argc != 1 && !decode_only) {
        fprintf(stderr, "usage: oap_bench [decode N]\n");
        return 2;
    }
    if (decode_only) {
        n_ctl = n_data = strtoull(argv[2], NULL, 10);
        split_div = 100;
    }

    /* small control frame: a 4-byte credit-grant-sized payload */
    f.h.flags = OAP_FLAG_REQ;
    f.h.app_proto_id = 1;
    f.h.corr_id = 42;
    f.payload = (const uint8_t *)"\0\0\0\x10";
    f.payload_len = 4;
    bench_frame("control", &f, n_ctl, n_ctl / split_div, decode_only);

    /* 64 KiB DATA frame */
    memset(body, 'x', sizeof(body));
    ssize_t n = oap_data_encode(payload, sizeof(payload), js, strlen(js), body,
                                sizeof(payload) - 2 - strlen(js));
    if (n < 0)
        return 1;
    f.h.flags = OAP_FLAG_RESP;
    f.payload = payload;
    f.payload_len = (size_t)n;
    bench_frame("data_64k", &f, n_data, n_data / split_div, decode_only);
    return 0;
}
