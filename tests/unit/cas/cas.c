/*
 * cas.c — BLAKE3 addresses: official test-vector inputs, parse/format edge
 * cases, incremental == one-shot, constant-time compare correctness.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cas/cas.h"

struct tv {
    size_t len;
    const char *hex;
};

static const struct tv VECTORS[] = {
#include "vectors.inc"
};

static uint8_t *tv_input(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    cr_assert(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i % 251);
    return p;
}

Test(cas, official_vectors)
{
    char buf[CAS_ADDR_CHARS + 1];
    const char *simd = cas_init();

    cr_assert(simd && *simd);
    cr_assert_eq(sizeof(VECTORS) / sizeof(VECTORS[0]), 22);
    for (size_t i = 0; i < sizeof(VECTORS) / sizeof(VECTORS[0]); i++) {
        struct cas_addr a;
        uint8_t *in = tv_input(VECTORS[i].len);
        cas_hash(in, VECTORS[i].len, &a);
        cas_addr_format(&a, buf);
        cr_assert_eq(strncmp(buf, "b3:", 3), 0);
        cr_assert_str_eq(buf + 3, VECTORS[i].hex, "length %zu", VECTORS[i].len);
        free(in);
    }
}

Test(cas, incremental_equals_oneshot)
{
    static const size_t splits[] = {1, 3, 7, 63, 64, 65, 1023, 1024, 1025, 4097, 65537};
    size_t n = 102400;
    uint8_t *in = tv_input(n);
    struct cas_addr one, inc;

    cas_hash(in, n, &one);
    for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
        struct cas_hasher h;
        cas_hasher_init(&h);
        for (size_t off = 0; off < n; off += splits[s])
            cas_hasher_update(&h, in + off, off + splits[s] > n ? n - off : splits[s]);
        cas_hasher_final(&h, &inc);
        cr_assert(cas_addr_equal(&one, &inc), "split %zu", splits[s]);
    }
    /* uneven pieces, including empty updates */
    struct cas_hasher h;
    size_t off = 0, step = 0;
    cas_hasher_init(&h);
    while (off < n) {
        size_t k = (step * 7919) % 3001;
        if (k > n - off)
            k = n - off;
        cas_hasher_update(&h, in + off, k);
        off += k;
        step++;
    }
    cas_hasher_final(&h, &inc);
    cr_assert(cas_addr_equal(&one, &inc));
    free(in);
}

Test(cas, parse_format_roundtrip)
{
    struct cas_addr a, b;
    char buf[CAS_ADDR_CHARS + 1];

    for (int i = 0; i < CAS_HASH_BYTES; i++)
        a.b[i] = (uint8_t)(i * 37 + 1);
    cas_addr_format(&a, buf);
    cr_assert_eq(strlen(buf), CAS_ADDR_CHARS);
    cr_assert_eq(cas_addr_parse(&b, buf, CAS_ADDR_CHARS), 0);
    cr_assert_eq(memcmp(a.b, b.b, CAS_HASH_BYTES), 0);
    memset(a.b, 0xff, sizeof(a.b));
    cr_assert_str_eq(cas_addr_format(&a, buf),
                     "b3:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
}

Test(cas, parse_rejects)
{
    const char *good = "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
    struct cas_addr a;
    char s[CAS_ADDR_CHARS + 2];

    cr_assert_eq(cas_addr_parse(&a, good, strlen(good)), 0);
    cr_assert_eq(a.b[0], 0xaf);
    cr_assert_eq(a.b[31], 0x62);
    /* uppercase digit, uppercase prefix */
    memcpy(s, good, CAS_ADDR_CHARS);
    s[10] = 'F';
    cr_assert_eq(cas_addr_parse(&a, s, CAS_ADDR_CHARS), -1);
    memcpy(s, good, CAS_ADDR_CHARS);
    s[0] = 'B';
    cr_assert_eq(cas_addr_parse(&a, s, CAS_ADDR_CHARS), -1);
    /* wrong prefixes */
    cr_assert_eq(
        cas_addr_parse(&a, "b2:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
                       CAS_ADDR_CHARS),
        -1);
    cr_assert_eq(
        cas_addr_parse(&a, "b3-af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
                       CAS_ADDR_CHARS),
        -1);
    /* wrong lengths: short, long, bare hex */
    cr_assert_eq(cas_addr_parse(&a, good, CAS_ADDR_CHARS - 1), -1);
    memcpy(s, good, CAS_ADDR_CHARS);
    s[CAS_ADDR_CHARS] = '0';
    cr_assert_eq(cas_addr_parse(&a, s, CAS_ADDR_CHARS + 1), -1);
    cr_assert_eq(cas_addr_parse(&a, good + 3, 64), -1);
    cr_assert_eq(cas_addr_parse(&a, "", 0), -1);
    /* non-hex characters anywhere */
    const char bad_chars[] = {'g', 'G', ' ', ':', '\0', '/', '@', '`', '\xff'};
    for (size_t i = 0; i < sizeof(bad_chars); i++) {
        for (size_t pos = 3; pos < CAS_ADDR_CHARS; pos += 13) {
            memcpy(s, good, CAS_ADDR_CHARS);
            s[pos] = bad_chars[i];
            cr_assert_eq(cas_addr_parse(&a, s, CAS_ADDR_CHARS), -1, "char %d at %zu", bad_chars[i],
                         pos);
        }
    }
}

Test(cas, equal_compares_every_byte)
{
    struct cas_addr a, b;

    cas_hash("x", 1, &a);
    b = a;
    cr_assert(cas_addr_equal(&a, &b));
    for (int i = 0; i < CAS_HASH_BYTES; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b = a;
            b.b[i] ^= (uint8_t)(1u << bit);
            cr_assert_not(cas_addr_equal(&a, &b), "byte %d bit %d", i, bit);
        }
    }
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    cr_assert(cas_addr_equal(&a, &b));
}
