/*
 * outboard.c — group values and slice proofs against the real BLAKE3 tree:
 * for objects of every size class the tree's root is exactly the BLAKE3
 * hash (the official implementation's, which is b3sum's), every proof of
 * every run of groups climbs to it, and no changed value does.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cas/outboard.h"

#define G CAS_GROUP_BYTES

static uint8_t *random_bytes(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    cr_assert(p);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (uint8_t)x;
    }
    return p;
}

static const size_t SIZES[] = {
    0,         1,        1023,      1024,        1025,      2048,       G - 1,     G,
    G + 1,     G + 1023, G + 1024,  G + 1025,    2 * G - 1, 2 * G,      2 * G + 1, 3 * G,
    3 * G + 5, 4 * G,    5 * G - 1, 7 * G + 333, 9 * G,     17 * G + 1, 33 * G,    65 * G + 999,
};

Test(cas_outboard, groups_and_sizes)
{
    cr_assert_eq(cas_groups(0), 0);
    cr_assert_eq(cas_groups(1), 1);
    cr_assert_eq(cas_groups(G), 1);
    cr_assert_eq(cas_groups(G + 1), 2);
    cr_assert_eq(cas_group_size(G + 1, 0), G);
    cr_assert_eq(cas_group_size(G + 1, 1), 1);
    cr_assert_eq(cas_group_size(G + 1, 2), 0);
    cr_assert_eq(cas_tree_cvs(0), 0);
    cr_assert_eq(cas_tree_cvs(1), 0);
    cr_assert_eq(cas_tree_cvs(2), 2);
    cr_assert_eq(cas_tree_cvs(3), 3 + 2);
    cr_assert_eq(cas_tree_cvs(5), 5 + 3 + 2);
    cr_assert_eq(cas_tree_cvs(8), 8 + 4 + 2);
}

Test(cas_outboard, the_tree_root_is_the_blake3_hash)
{
    for (size_t i = 0; i < sizeof(SIZES) / sizeof(SIZES[0]); i++) {
        size_t n = SIZES[i];
        uint8_t *p = random_bytes(n, i + 1);
        uint64_t groups = cas_groups(n);
        uint8_t *tree = malloc(cas_tree_cvs(groups) * CAS_CV_BYTES + 1);
        struct cas_addr want, got;
        cas_hash(p, n, &want);
        cas_hash_tree(p, n, tree, &got);
        cr_assert(cas_addr_equal(&want, &got), "size %zu", n);
        if (groups >= 2) {
            /* Level 0 is the outboard: each value is its group's. */
            for (uint64_t g = 0; g < groups; g++) {
                uint8_t cv[CAS_CV_BYTES];
                cas_group_cv(p + g * G, cas_group_size(n, g), g, cv);
                cr_assert(memcmp(cv, tree + g * CAS_CV_BYTES, CAS_CV_BYTES) == 0,
                          "size %zu group %llu", n, (unsigned long long)g);
            }
            cr_assert(cas_outboard_verify(&want, groups, tree), "size %zu", n);
            /* One byte of the object changed: its group's value changes,
             * and the outboard no longer climbs to the address. */
            p[n / 2] ^= 1;
            uint8_t cv[CAS_CV_BYTES];
            uint64_t g = (n / 2) / G;
            cas_group_cv(p + g * G, cas_group_size(n, g), g, cv);
            cr_assert(memcmp(cv, tree + g * CAS_CV_BYTES, CAS_CV_BYTES) != 0);
            memcpy(tree + g * CAS_CV_BYTES, cv, CAS_CV_BYTES);
            cr_assert(!cas_outboard_verify(&want, groups, tree), "size %zu", n);
        }
        free(tree);
        free(p);
    }
}

Test(cas_outboard, a_group_value_depends_on_its_position)
{
    uint8_t *p = random_bytes(G, 9);
    uint8_t a[CAS_CV_BYTES], b[CAS_CV_BYTES];
    cas_group_cv(p, G, 0, a);
    cas_group_cv(p, G, 1, b);
    cr_assert(memcmp(a, b, CAS_CV_BYTES) != 0);
    free(p);
}

/* Every run [a, b] of every object of 2..24 groups (and a few runs of
 * larger ones, around powers of two; sizes kept small for valgrind): the
 * proof verifies, its first values are the groups' own, and any flipped
 * bit or a wrong length fails. */
Test(cas_outboard, every_proof_of_every_run)
{
    static const uint64_t MORE[] = {33, 64, 65};
    for (size_t t = 0; t < 23 + sizeof(MORE) / sizeof(MORE[0]); t++) {
        uint64_t groups = t < 23 ? t + 2 : MORE[t - 23];
        size_t n = (size_t)(groups - 1) * G + 1 + (size_t)(t * 977) % G;
        uint8_t *p = random_bytes(n, 100 + t);
        uint8_t *tree = malloc(cas_tree_cvs(groups) * CAS_CV_BYTES);
        struct cas_addr root;
        cas_hash_tree(p, n, tree, &root);
        uint64_t step = groups > 24 ? groups / 7 : 1;
        for (uint64_t a = 0; a < groups; a += step)
            for (uint64_t b = a; b < groups; b += step) {
                uint64_t k = cas_proof_cvs(groups, a, b);
                cr_assert(k >= b - a + 1);
                uint8_t *proof = malloc(k * CAS_CV_BYTES);
                cas_proof_build(tree, groups, a, b, proof);
                size_t len = k * CAS_CV_BYTES;
                cr_assert(cas_proof_verify(&root, groups, a, b, proof, len),
                          "%llu groups [%llu,%llu]", (unsigned long long)groups,
                          (unsigned long long)a, (unsigned long long)b);
                cr_assert(memcmp(proof, tree + a * CAS_CV_BYTES, (b - a + 1) * CAS_CV_BYTES) == 0);
                cr_assert(!cas_proof_verify(&root, groups, a, b, proof, len - CAS_CV_BYTES));
                for (uint64_t v = 0; v < k; v++) {
                    proof[v * CAS_CV_BYTES + v % CAS_CV_BYTES] ^= 0x40;
                    cr_assert(!cas_proof_verify(&root, groups, a, b, proof, len),
                              "value %llu of the proof changed", (unsigned long long)v);
                    proof[v * CAS_CV_BYTES + v % CAS_CV_BYTES] ^= 0x40;
                }
                free(proof);
            }
        free(tree);
        free(p);
    }
}

Test(cas_outboard, proofs_of_nothing_are_refused)
{
    struct cas_addr root = {{0}};
    uint8_t cv[2 * CAS_CV_BYTES] = {0};
    cr_assert_eq(cas_proof_cvs(1, 0, 0), 0);
    cr_assert_eq(cas_proof_cvs(4, 2, 1), 0);
    cr_assert_eq(cas_proof_cvs(4, 0, 4), 0);
    cr_assert(!cas_proof_verify(&root, 1, 0, 0, cv, 0));
    cr_assert(!cas_proof_verify(&root, 2, 1, 0, cv, sizeof(cv)));
    cr_assert(!cas_proof_verify(&root, 2, 0, 1, cv, sizeof(cv)));
}

Test(cas_outboard, group_check_against_a_proof_or_the_address)
{
    /* Three groups: each is right at its own place in a proof of [1, 2]
     * and wrong at another's or with one byte changed. */
    size_t n = 2 * G + 100;
    uint8_t *p = random_bytes(n, 7);
    uint8_t *tree = malloc(cas_tree_cvs(3) * CAS_CV_BYTES);
    struct cas_addr root;
    cas_hash_tree(p, n, tree, &root);
    uint8_t *proof = malloc(cas_proof_cvs(3, 1, 2) * CAS_CV_BYTES);
    cas_proof_build(tree, 3, 1, 2, proof);
    cr_assert(cas_group_check(&root, 3, 1, proof, 1, p + G, G));
    cr_assert(cas_group_check(&root, 3, 1, proof, 2, p + 2 * G, 100));
    cr_assert(!cas_group_check(&root, 3, 1, proof, 2, p + G, 100), "another group's bytes");
    p[2 * G + 99] ^= 1;
    cr_assert(!cas_group_check(&root, 3, 1, proof, 2, p + 2 * G, 100), "a byte changed");
    /* One group: no proof, the bytes are the object. */
    struct cas_addr one;
    cas_hash(p, 1000, &one);
    cr_assert(cas_group_check(&one, 1, 0, NULL, 0, p, 1000));
    cr_assert(!cas_group_check(&one, 1, 0, NULL, 0, p, 999));
    free(proof);
    free(tree);
    free(p);
}
