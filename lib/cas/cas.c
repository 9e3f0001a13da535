/*
 * cas.c — BLAKE3 addresses: hashing wrappers, parse/format, constant-time compare.
 */
#include "cas/cas.h"

#include <string.h>

static const char HEX[] = "0123456789abcdef";

const char *cas_init(void)
{
    struct cas_addr a;
    uint8_t probe[4096] = {0};
    /* The dispatcher caches CPUID results on first call; do it once here. */
    cas_hash(probe, sizeof(probe), &a);
    /* blake3_dispatch.c does not export its choice; report what the CPU offers,
     * in the order the dispatcher prefers them. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        return "avx512";
    if (__builtin_cpu_supports("avx2"))
        return "avx2";
    if (__builtin_cpu_supports("sse4.1"))
        return "sse4.1";
    if (__builtin_cpu_supports("sse2"))
        return "sse2";
    return "portable";
}

void cas_hasher_init(struct cas_hasher *h)
{
    blake3_hasher_init(&h->h);
}

void cas_hasher_update(struct cas_hasher *h, const void *p, size_t n)
{
    blake3_hasher_update(&h->h, p, n);
}

void cas_hasher_final(struct cas_hasher *h, struct cas_addr *out)
{
    blake3_hasher_finalize(&h->h, out->b, CAS_HASH_BYTES);
}

void cas_hash(const void *p, size_t n, struct cas_addr *out)
{
    struct cas_hasher h;
    cas_hasher_init(&h);
    cas_hasher_update(&h, p, n);
    cas_hasher_final(&h, out);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase is refused: one spelling per address */
}

int cas_addr_parse(struct cas_addr *out, const char *s, size_t n)
{
    if (n != CAS_ADDR_CHARS || memcmp(s, "b3:", 3) != 0)
        return -1;
    s += 3;
    for (size_t i = 0; i < CAS_HASH_BYTES; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out->b[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

char *cas_addr_format(const struct cas_addr *a, char *out)
{
    memcpy(out, "b3:", 3);
    for (size_t i = 0; i < CAS_HASH_BYTES; i++) {
        out[3 + 2 * i] = HEX[a->b[i] >> 4];
        out[4 + 2 * i] = HEX[a->b[i] & 15];
    }
    out[CAS_ADDR_CHARS] = '\0';
    return out;
}

bool cas_addr_equal(const struct cas_addr *a, const struct cas_addr *b)
{
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < CAS_HASH_BYTES; i++)
        diff |= a->b[i] ^ b->b[i];
    return diff == 0;
}
