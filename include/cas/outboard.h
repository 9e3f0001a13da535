/*
 * outboard — BLAKE3 slice proofs: the chaining values of an object's 64 KiB
 * chunk groups, and the proofs that tie any run of groups to the address.
 *
 * BLAKE3 is a Merkle tree over 1 KiB chunks. A chunk group is 64 chunks
 * (64 KiB) starting at a multiple of 64 KiB; the last group of an object
 * may be shorter. Every group of an object of two groups or more is a
 * whole subtree of BLAKE3's tree, and the tree above the groups pairs them
 * left to right, level by level, an odd last node going up unpaired: that
 * is BLAKE3's own rule (a left subtree holds the largest power of two of
 * chunks less than the whole). The root, compressed with the ROOT flag, is
 * the object's BLAKE3 hash, its `b3:` address.
 *
 * The values are computed with the official BLAKE3 C implementation's
 * compression functions (blake3_impl.h, already compiled in for cas.c):
 * chunk values with blake3_hash_many, parents with blake3_compress_in_place.
 * Nothing of BLAKE3 itself is written here; this file only decides which
 * subtree each call covers.
 *
 * Terms:
 *   groups   G = ceil(size / 64 KiB); 0 for an empty object.
 *   outboard the G group values, 32 bytes each, in order (level 0).
 *   tree     every level of the tree that has two nodes or more, level 0
 *            first: what storage keeps to build proofs without hashing.
 *   proof    for groups [a, b]: their values, then the values of the
 *            sibling subtrees met climbing from [a, b] to the root, level
 *            by level, left sibling before right.
 * An object of one group or none has no tree and an empty proof: its hash
 * is computed from its bytes alone.
 */
#ifndef CAS_OUTBOARD_H
#define CAS_OUTBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cas/cas.h"

#define CAS_GROUP_BYTES 65536u
#define CAS_CV_BYTES    32u

/* ceil(size / 64 KiB). */
uint64_t cas_groups(uint64_t size);

/* Bytes of group g of an object of `size` bytes (the last may be short). */
size_t cas_group_size(uint64_t size, uint64_t g);

/* Values in the tree of an object of `groups` groups (0 when groups < 2). */
uint64_t cas_tree_cvs(uint64_t groups);

/* The address of p[0..n), and when n spans two groups or more, its tree
 * into tree (cas_tree_cvs(cas_groups(n)) values; may be NULL otherwise). */
void cas_hash_tree(const void *p, size_t n, uint8_t *tree, struct cas_addr *out);

/* The value of group g: p[0..n) are its bytes, 1 ≤ n ≤ 64 KiB. Meaningful
 * only in an object of two groups or more (otherwise the group is the root). */
void cas_group_cv(const uint8_t *p, size_t n, uint64_t g, uint8_t cv[CAS_CV_BYTES]);

/* Values in the proof of groups [a, b] of `groups` groups (a ≤ b < groups,
 * groups ≥ 2); 0 when the arguments are not that. */
uint64_t cas_proof_cvs(uint64_t groups, uint64_t a, uint64_t b);

/* Write the proof of groups [a, b] (cas_proof_cvs() values) from a tree. */
void cas_proof_build(const uint8_t *tree, uint64_t groups, uint64_t a, uint64_t b, uint8_t *out);

/* Whether a proof of groups [a, b] (proof_len bytes) climbs to `root`.
 * When it does, its first b - a + 1 values are the groups' true values. */
bool cas_proof_verify(const struct cas_addr *root, uint64_t groups, uint64_t a, uint64_t b,
                      const uint8_t *proof, size_t proof_len);

/* Whether group g's bytes p[0..n) are right, given the values `cvs` of
 * groups [a, …] from a proof cas_proof_verify() accepted: g's value must be
 * its entry. An object of one group has no proof (cvs may be NULL): its
 * bytes are hashed whole against `root`. */
bool cas_group_check(const struct cas_addr *root, uint64_t groups, uint64_t a, const uint8_t *cvs,
                     uint64_t g, const uint8_t *p, size_t n);

/* Whether an outboard of `groups` ≥ 2 values climbs to `root`. */
bool cas_outboard_verify(const struct cas_addr *root, uint64_t groups, const uint8_t *outboard);

#endif
