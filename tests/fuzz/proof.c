/*
 * proof.c — libFuzzer target: slice-proof verification
 * (cas_proof_verify, include/cas/outboard.h), which reads proofs from
 * storage, an untrusted peer.
 *
 * Input: bytes 0-1 the object's group count (2..65537), bytes 2-3 and 4-5
 * pick the run [a, b], byte 6 the root's first byte, the rest the proof.
 * Checked on every run: no memory error, and a proof of the wrong length
 * is never accepted. Each run also builds an object of 2..5 groups from
 * the input, takes a real proof of the picked run, and checks it verifies
 * and that the fuzzed bytes written over any part of it do not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cas/outboard.h"

static void real_proof(const uint8_t *data, size_t size)
{
    uint64_t groups = 2 + data[0] % 4;
    size_t n = (size_t)(groups - 1) * CAS_GROUP_BYTES + 1 + data[1];
    uint8_t *obj = calloc(1, n);
    uint8_t *tree = malloc(cas_tree_cvs(groups) * CAS_CV_BYTES);
    if (obj == NULL || tree == NULL)
        abort();
    memcpy(obj, data, size < n ? size : n);
    struct cas_addr root;
    cas_hash_tree(obj, n, tree, &root);
    uint64_t a = data[2] % groups, b = a + data[4] % (groups - a);
    uint64_t k = cas_proof_cvs(groups, a, b);
    uint8_t *proof = malloc(k * CAS_CV_BYTES);
    if (proof == NULL)
        abort();
    cas_proof_build(tree, groups, a, b, proof);
    if (!cas_proof_verify(&root, groups, a, b, proof, k * CAS_CV_BYTES))
        abort();
    /* Overwrite one value with fuzzed bytes: accepted only if unchanged. */
    if (size >= 7 + CAS_CV_BYTES) {
        uint64_t v = data[5] % k;
        int same = memcmp(proof + v * CAS_CV_BYTES, data + 7, CAS_CV_BYTES) == 0;
        memcpy(proof + v * CAS_CV_BYTES, data + 7, CAS_CV_BYTES);
        if (!same && cas_proof_verify(&root, groups, a, b, proof, k * CAS_CV_BYTES))
            abort();
    }
    free(proof);
    free(tree);
    free(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 7)
        return 0;
    uint64_t groups = 2 + ((uint64_t)data[0] | (uint64_t)data[1] << 8);
    uint64_t a = ((uint64_t)data[2] | (uint64_t)data[3] << 8) % groups;
    uint64_t b = a + ((uint64_t)data[4] | (uint64_t)data[5] << 8) % (groups - a);
    struct cas_addr root = {{data[6]}};
    const uint8_t *proof = data + 7;
    size_t len = size - 7;
    /* A private copy, so an over-read is caught by ASan. */
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, proof, len);
    int ok = cas_proof_verify(&root, groups, a, b, copy, len);
    if (ok && len != cas_proof_cvs(groups, a, b) * CAS_CV_BYTES)
        abort();
    free(copy);
    real_proof(data, size);
    return 0;
}
