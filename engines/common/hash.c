/*
 * hash.c — SipHash-2-4, random keys, name validation, chained hash table.
 */
#include "engines/common/hash.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engines/common/status.h"

/* ---------------------------------------------------------------- SipHash */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t eng_siphash(const uint8_t k[16], const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t k0 = load64le(k), k1 = load64le(k + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    const uint8_t *end = p + (n & ~(size_t)7);

    for (; p != end; p += 8) {
        uint64_t m = load64le(p);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < (n & 7); i++)
        b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void eng_random_key(uint8_t *k, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(k + got, n - got, 0);
        if (r == -1)
            break; /* EINTR, ENOSYS: fall back below for what is missing */
        got += (size_t)r;
    }
    if (got == n)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uintptr_t)k;
    for (size_t i = got; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        k[i] = (uint8_t)(seed >> 56);
    }
}

/* ---------------------------------------------------------------- names */

int eng_name_check(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    if (p == NULL || n == 0 || n > ENG_NAME_MAX_BYTES)
        return ENG_E_INVALID;
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        if (c < 0x20 || c == 0x7f)
            return ENG_E_INVALID;
        if (c < 0x80) {
            i++;
            continue;
        }
        /* UTF-8 per RFC 3629: no overlongs, no surrogates, ≤ U+10FFFF. */
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return ENG_E_INVALID;
        }
        if (n - i < len)
            return ENG_E_INVALID;
        for (size_t j = 1; j < len; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return ENG_E_INVALID;
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return ENG_E_INVALID;
        if (cp >= 0x80 && cp <= 0x9f) /* C1 controls */
            return ENG_E_INVALID;
        i += len;
    }
    return ENG_OK;
}

/* ---------------------------------------------------------------- table */

int eng_hmap_init(struct eng_hmap *m)
{
    m->nb = 16;
    m->n = 0;
    m->b = calloc(m->nb, sizeof(*m->b));
    return m->b ? ENG_OK : ENG_E_NOMEM;
}

void eng_hmap_release(struct eng_hmap *m)
{
    free(m->b);
    m->b = NULL;
    m->nb = m->n = 0;
}

struct eng_hnode *eng_hmap_find(const struct eng_hmap *m, uint64_t hash, eng_hmap_eq_fn eq,
                                const void *probe)
{
    for (struct eng_hnode *x = m->b[hash & (m->nb - 1)]; x != NULL; x = x->next)
        if (x->hash == hash && eq(x, probe))
            return x;
    return NULL;
}

static void grow(struct eng_hmap *m)
{
    size_t nb = m->nb * 2;
    struct eng_hnode **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < m->nb; i++) {
        struct eng_hnode *x = m->b[i], *next;
        for (; x != NULL; x = next) {
            next = x->next;
            x->next = b[x->hash & (nb - 1)];
            b[x->hash & (nb - 1)] = x;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

void eng_hmap_insert(struct eng_hmap *m, struct eng_hnode *node)
{
    if (m->n >= m->nb)
        grow(m);
    struct eng_hnode **head = &m->b[node->hash & (m->nb - 1)];
    node->next = *head;
    *head = node;
    m->n++;
}

void eng_hmap_remove(struct eng_hmap *m, struct eng_hnode *node)
{
    struct eng_hnode **pp = &m->b[node->hash & (m->nb - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == node) {
            *pp = node->next;
            node->next = NULL;
            m->n--;
            return;
        }
    }
}
