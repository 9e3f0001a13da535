/*
 * blake3_bench.c — BLAKE3 throughput through libcas, one thread: GB/s on
 * 64 KiB and 64 MiB buffers. Prints the SIMD level cas_init() reports, one
 * JSON line per measurement.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cas/cas.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(const char *simd, size_t size, double min_seconds)
{
    uint8_t *buf = malloc(size);
    struct cas_addr a;
    uint64_t iters = 0;
    volatile uint8_t sink = 0;
    double t0, t1;

    if (!buf)
        exit(1);
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(i % 251);
    cas_hash(buf, size, &a); /* warm caches and pages */
    t0 = now_s();
    do {
        cas_hash(buf, size, &a);
        sink ^= a.b[0];
        iters++;
        t1 = now_s();
    } while (t1 - t0 < min_seconds);
    printf("{\"bench\":\"blake3\",\"simd\":\"%s\",\"bytes\":%zu,\"iters\":%llu,"
           "\"gb_per_s\":%.3f,\"ns_per_op\":%.0f}\n",
           simd, size, (unsigned long long)iters, (double)size * (double)iters / (t1 - t0) / 1e9,
           (t1 - t0) * 1e9 / (double)iters);
    free(buf);
    (void)sink;
}

int main(void)
{
    const char *simd = cas_init();
    run(simd, 64 * 1024, 2.0);
    run(simd, 64 * 1024 * 1024, 3.0);
    return 0;
}
