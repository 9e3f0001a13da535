/*
 * outboard.c — group values, trees and slice proofs (include/cas/outboard.h)
 * on BLAKE3's own compression functions.
 */
#include "cas/outboard.h"

#include <stdlib.h>
#include <string.h>

/* blake3_impl.h defines tables and inline helpers for the implementation's
 * own files; only a few are used here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-const-variable"
#pragma GCC diagnostic ignored "-Wunused-function"
#include "blake3_impl.h"
#pragma GCC diagnostic pop

#define CHUNKS_PER_GROUP (CAS_GROUP_BYTES / BLAKE3_CHUNK_LEN)

uint64_t cas_groups(uint64_t size)
{
    return size / CAS_GROUP_BYTES + (size % CAS_GROUP_BYTES != 0);
}

size_t cas_group_size(uint64_t size, uint64_t g)
{
    uint64_t start = g * CAS_GROUP_BYTES;
    if (start >= size)
        return 0;
    uint64_t left = size - start;
    return left < CAS_GROUP_BYTES ? (size_t)left : CAS_GROUP_BYTES;
}

uint64_t cas_tree_cvs(uint64_t groups)
{
    uint64_t total = 0;
    for (uint64_t c = groups; c >= 2; c = (c + 1) / 2)
        total += c;
    return total;
}

/* The parent of two values; root: the top of the whole tree. */
static void parent_cv(const uint8_t pair[2 * CAS_CV_BYTES], bool root, uint8_t out[CAS_CV_BYTES])
{
    uint32_t cv[8];
    memcpy(cv, IV, sizeof(cv));
    blake3_compress_in_place(cv, pair, BLAKE3_BLOCK_LEN, 0, PARENT | (root ? ROOT : 0));
    store_cv_words(out, cv);
}

/* One level up: c values at in (pairs adjacent) → (c + 1) / 2 values at
 * out, an odd last one carried; c ≥ 2; not the root. out may overlap in
 * when it starts at most one value after in: each batch is hashed into a
 * buffer of its own, then copied where no pair still to be read lies. */
#define BATCH (MAX_SIMD_DEGREE_OR_2 * 4)
static void level_up(const uint8_t *in, uint64_t c, uint8_t *out)
{
    const uint8_t *pairs[BATCH];
    uint8_t made[BATCH * CAS_CV_BYTES];
    uint64_t npairs = c / 2, done = 0;
    while (done < npairs) {
        size_t k = 0;
        for (; k < BATCH && done + k < npairs; k++)
            pairs[k] = in + (done + k) * 2 * CAS_CV_BYTES;
        /* Parents hashed side by side, as blake3.c does for its own tree. */
        blake3_hash_many(pairs, k, 1, IV, 0, false, PARENT, 0, 0, made);
        memcpy(out + done * CAS_CV_BYTES, made, k * CAS_CV_BYTES);
        done += k;
    }
    if (c % 2)
        memmove(out + npairs * CAS_CV_BYTES, in + (c - 1) * CAS_CV_BYTES, CAS_CV_BYTES);
}

/* Reduce c ≥ 1 values at v (overwritten) to one, not the root. */
static void reduce(uint8_t *v, uint64_t c, uint8_t out[CAS_CV_BYTES])
{
    for (; c >= 2; c = (c + 1) / 2)
        level_up(v, c, v);
    memcpy(out, v, CAS_CV_BYTES);
}

void cas_group_cv(const uint8_t *p, size_t n, uint64_t g, uint8_t cv[CAS_CV_BYTES])
{
    uint8_t chunks[CHUNKS_PER_GROUP * CAS_CV_BYTES];
    const uint8_t *inputs[CHUNKS_PER_GROUP];
    size_t full = n / BLAKE3_CHUNK_LEN, tail = n % BLAKE3_CHUNK_LEN;
    uint64_t counter = g * CHUNKS_PER_GROUP;
    for (size_t i = 0; i < full; i++)
        inputs[i] = p + i * BLAKE3_CHUNK_LEN;
    if (full)
        blake3_hash_many(inputs, full, BLAKE3_CHUNK_LEN / BLAKE3_BLOCK_LEN, IV, counter, true, 0,
                         CHUNK_START, CHUNK_END, chunks);
    if (tail) {
        /* A short last chunk: its blocks one by one, the last zero-padded. */
        uint32_t words[8];
        memcpy(words, IV, sizeof(words));
        const uint8_t *q = p + full * BLAKE3_CHUNK_LEN;
        size_t blocks = (tail + BLAKE3_BLOCK_LEN - 1) / BLAKE3_BLOCK_LEN;
        for (size_t b = 0; b < blocks; b++) {
            uint8_t block[BLAKE3_BLOCK_LEN] = {0};
            size_t len = b + 1 < blocks ? BLAKE3_BLOCK_LEN : tail - b * BLAKE3_BLOCK_LEN;
            memcpy(block, q + b * BLAKE3_BLOCK_LEN, len);
            uint8_t flags = (b == 0 ? CHUNK_START : 0) | (b + 1 == blocks ? CHUNK_END : 0);
            blake3_compress_in_place(words, block, (uint8_t)len, counter + full, flags);
        }
        store_cv_words(chunks + full * CAS_CV_BYTES, words);
    }
    reduce(chunks, full + (tail != 0), cv);
}

void cas_hash_tree(const void *p, size_t n, uint8_t *tree, struct cas_addr *out)
{
    uint64_t groups = cas_groups(n);
    if (groups < 2) {
        cas_hash(p, n, out);
        return;
    }
    for (uint64_t g = 0; g < groups; g++)
        cas_group_cv((const uint8_t *)p + g * CAS_GROUP_BYTES, cas_group_size(n, g), g,
                     tree + g * CAS_CV_BYTES);
    uint8_t *level = tree;
    uint64_t c = groups;
    while (c > 2) {
        level_up(level, c, level + c * CAS_CV_BYTES);
        level += c * CAS_CV_BYTES;
        c = (c + 1) / 2;
    }
    parent_cv(level, true, out->b);
}

uint64_t cas_proof_cvs(uint64_t groups, uint64_t a, uint64_t b)
{
    if (groups < 2 || a > b || b >= groups)
        return 0;
    uint64_t n = b - a + 1;
    for (uint64_t c = groups; c >= 2; c = (c + 1) / 2, a >>= 1, b >>= 1)
        n += (a & 1) + (!(b & 1) && b + 1 < c);
    return n;
}

void cas_proof_build(const uint8_t *tree, uint64_t groups, uint64_t a, uint64_t b, uint8_t *out)
{
    memcpy(out, tree + a * CAS_CV_BYTES, (b - a + 1) * CAS_CV_BYTES);
    out += (b - a + 1) * CAS_CV_BYTES;
    const uint8_t *level = tree;
    for (uint64_t c = groups; c >= 2;
         level += c * CAS_CV_BYTES, c = (c + 1) / 2, a >>= 1, b >>= 1) {
        if (a & 1) {
            memcpy(out, level + (a - 1) * CAS_CV_BYTES, CAS_CV_BYTES);
            out += CAS_CV_BYTES;
        }
        if (!(b & 1) && b + 1 < c) {
            memcpy(out, level + (b + 1) * CAS_CV_BYTES, CAS_CV_BYTES);
            out += CAS_CV_BYTES;
        }
    }
}

/* Constant time: a proof that nearly matches says nothing of how near. */
static bool cv_equal(const uint8_t *x, const uint8_t *y)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < CAS_CV_BYTES; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}

bool cas_group_check(const struct cas_addr *root, uint64_t groups, uint64_t a, const uint8_t *cvs,
                     uint64_t g, const uint8_t *p, size_t n)
{
    if (groups < 2) {
        struct cas_addr got;
        cas_hash(p, n, &got);
        return cas_addr_equal(&got, root);
    }
    uint8_t cv[CAS_CV_BYTES];
    cas_group_cv(p, n, g, cv);
    return memcmp(cv, cvs + (g - a) * CAS_CV_BYTES, CAS_CV_BYTES) == 0;
}

bool cas_proof_verify(const struct cas_addr *root, uint64_t groups, uint64_t a, uint64_t b,
                      const uint8_t *proof, size_t proof_len)
{
    uint64_t need = cas_proof_cvs(groups, a, b);
    if (need == 0 || proof_len / CAS_CV_BYTES != need || proof_len % CAS_CV_BYTES)
        return false;
    /* The run of values being climbed, with room for a sibling each side. */
    uint64_t n = b - a + 1;
    uint8_t small[16 * CAS_CV_BYTES];
    uint8_t *run = n + 2 <= 16 ? small : malloc((n + 2) * CAS_CV_BYTES);
    if (run == NULL)
        return false;
    uint8_t *v = run + CAS_CV_BYTES; /* v[0] is node a of this level */
    memcpy(v, proof, n * CAS_CV_BYTES);
    const uint8_t *sib = proof + n * CAS_CV_BYTES;
    uint8_t top[CAS_CV_BYTES];
    for (uint64_t c = groups;; c = (c + 1) / 2, a >>= 1, b >>= 1) {
        if (a & 1) {
            v -= CAS_CV_BYTES;
            memcpy(v, sib, CAS_CV_BYTES);
            sib += CAS_CV_BYTES;
            a--;
        }
        if (!(b & 1) && b + 1 < c) {
            memcpy(v + (b - a + 1) * CAS_CV_BYTES, sib, CAS_CV_BYTES);
            sib += CAS_CV_BYTES;
            b++;
        }
        if (c == 2) {
            parent_cv(v, true, top);
            break;
        }
        /* v now starts on an even node; pairs are adjacent; the last node
         * may be carried. The result goes back to the start of the buffer
         * with one free slot before it. */
        uint8_t *next = run + CAS_CV_BYTES;
        level_up(v, b - a + 1, next);
        v = next;
    }
    bool ok = cv_equal(top, root->b);
    if (run != small)
        free(run);
    return ok;
}

bool cas_outboard_verify(const struct cas_addr *root, uint64_t groups, const uint8_t *outboard)
{
    return cas_proof_verify(root, groups, 0, groups - 1, outboard, groups * CAS_CV_BYTES);
}
