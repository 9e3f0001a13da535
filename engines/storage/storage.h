/*
 * engines/storage/storage.h — content-addressed blob store (DESIGN §1, §2).
 *
 * Objects are immutable byte strings named by the BLAKE3-256 hash of their
 * bytes (include/cas/cas.h). The engine keeps them in RAM under a byte cap
 * and, when amnesia is off and a data directory is given, also as one file
 * per object named by the 64 lowercase hex digits of its address.
 *
 * Threads: every function may be called from any thread at the same time.
 * A read of a resident object (get, has) takes no lock: objects are never
 * removed, so their tables are read with atomic loads (storage.c says how).
 * Inserts serialise per shard (16 shards) on a mutex held only for the
 * insert; hashing, file I/O and the caller's reading of the bytes happen
 * with no lock held. Objects are handed out as reference-counted
 * `struct storage_blob`s, which stay valid after storage_free() until their
 * last reference is dropped.
 *
 * There is no I/O other than on the data directory, no networking, no event
 * loop, and no callback. Call cas_init() once before any thread uses this.
 * Errors are the negative statuses of engines/common/status.h.
 */
#ifndef ENGINES_STORAGE_STORAGE_H
#define ENGINES_STORAGE_STORAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cas/cas.h"
#include "engines/common/status.h"

#define STORAGE_DEFAULT_MEM_CAP_BYTES    (256ull << 20)
#define STORAGE_DEFAULT_MAX_OBJECT_BYTES (64ull << 20)
/* `len` for storage_get() meaning "to the end of the object". */
#define STORAGE_LEN_ALL UINT64_MAX

struct storage_opts {
    /* Bytes of object payload held in RAM at most (per-object bookkeeping of
     * about 80 bytes, and the slice-proof tree of 64 bytes per 64 KiB, are
     * not counted). 0 → STORAGE_DEFAULT_MEM_CAP_BYTES. */
    uint64_t mem_cap_bytes;
    /* Largest object accepted by storage_put() or loaded from disk.
     * 0 → STORAGE_DEFAULT_MAX_OBJECT_BYTES; must be ≤ the memory cap. */
    uint64_t max_object_bytes;
    /* true: RAM only, zero files written, data_dir is not even opened. */
    bool amnesia;
    /* With amnesia off: the directory that holds one file per object (created
     * if missing, one level). NULL or "" → RAM only. The directory belongs to
     * one storage at a time: storage_new() deletes stale temporary files
     * (".tmp-*") that a crash may have left. */
    const char *data_dir;
};

/* An immutable object. `bytes` is never written after the blob is published.
 * Hold a reference while reading it; drop it with storage_blob_unref().
 *
 * Slice proofs (include/cas/outboard.h): `tree` holds every level of the
 * BLAKE3 tree above the object's 64 KiB groups that has two nodes or more,
 * level 0 (the outboard, 32 bytes a group) first: 64 bytes per 64 KiB,
 * computed in the same pass that hashes the bytes (at put, and when a file
 * is loaded and verified), kept in the blob's own allocation. NULL for an
 * object of one group or none, whose hash is its own proof. */
struct storage_blob {
    atomic_size_t refs;
    struct cas_addr addr;
    size_t size;
    uint64_t groups;     /* cas_groups(size) */
    const uint8_t *tree; /* cas_tree_cvs(groups) values, or NULL */
    uint8_t bytes[];
};

/* The answer of storage_get(): a reference to the whole blob and the
 * requested slice of it, p[0..n) inside blob->bytes (n may be 0). */
struct storage_view {
    struct storage_blob *blob;
    const uint8_t *p;
    size_t n;
};

struct storage_stats {
    uint64_t objects;       /* objects resident in RAM */
    uint64_t bytes;         /* payload bytes resident in RAM (≤ mem_cap) */
    uint64_t mem_cap_bytes; /* effective cap */
    uint64_t max_object_bytes;
    uint64_t disk_loads;    /* objects loaded and verified from the data dir */
    uint64_t corrupt_reads; /* files that failed verification */
    bool persistent;        /* a data directory is in use */
};

struct storage;

/* Create a store. Returns NULL and sets *status (if non-NULL) to
 * ENG_E_INVALID (max object over the memory cap), ENG_E_IO (data dir cannot
 * be created or opened; errno tells why) or ENG_E_NOMEM; on success *status
 * is ENG_OK. opts may be NULL (all defaults: RAM only). */
struct storage *storage_new(const struct storage_opts *opts, int *status);

/* Drop the store's references to its blobs and free it. Blobs still
 * referenced by callers stay valid. Files on disk are kept. NULL: no-op. */
void storage_free(struct storage *st);

/* Store p[0..n) and write its address to *addr_out (if non-NULL).
 *
 * expect: if non-NULL, the address the caller claims; when the bytes hash to
 * anything else, returns ENG_E_MISMATCH and stores nothing.
 * created_out: if non-NULL, set to true when the object is new in RAM, false
 * when it was already there (a duplicate PUT is idempotent and returns
 * ENG_OK).
 *
 * Returns ENG_OK; ENG_E_TOO_LARGE (n > max object, checked before hashing);
 * ENG_E_MISMATCH; ENG_E_FULL (the memory cap would be exceeded: nothing is
 * stored, no file written); ENG_E_IO (persisting failed: nothing stored);
 * ENG_E_NOMEM. With persistence, the object is on disk (fsynced file and
 * directory) before it becomes visible in RAM and before ENG_OK returns.
 * Hashes n bytes on the calling thread. */
__attribute__((warn_unused_result)) int storage_put(struct storage *st, const void *p, size_t n,
                                                    const struct cas_addr *expect,
                                                    struct cas_addr *addr_out, bool *created_out);

/* Read bytes [off, off + len) of the object `addr`.
 *
 * Range rules: off > size → ENG_E_RANGE; off == size → ENG_OK with an empty
 * slice (for any len); otherwise len is clipped to size - off (so
 * len = STORAGE_LEN_ALL, or any len running past the end, reads to the end;
 * off + len may overflow, it is clipped, not wrapped). Whole object: off 0,
 * len STORAGE_LEN_ALL. Translating an HTTP Range header, where a range that
 * starts at the size is unsatisfiable (RFC 9110 §14.1.2), is the caller's.
 *
 * On ENG_OK, *out holds a new blob reference (release with
 * storage_view_release() or storage_blob_unref(out->blob)). On error *out is
 * zeroed. Errors: ENG_E_NOT_FOUND; ENG_E_RANGE; ENG_E_CORRUPT (the file on
 * disk does not hash to its name: it is never served); ENG_E_IO; ENG_E_NOMEM.
 *
 * A miss in RAM with persistence on loads the object's file, recomputes its
 * hash, and keeps it in RAM if the memory cap allows (else it is served
 * without being kept). */
__attribute__((warn_unused_result)) int storage_get(struct storage *st, const struct cas_addr *addr,
                                                    uint64_t off, uint64_t len,
                                                    struct storage_view *out);

/* Whether `addr` is stored: ENG_OK with *size_out (if non-NULL) set to its
 * size, or the errors of storage_get() (a file on disk is loaded and verified
 * first, so a corrupt object is never reported present). */
__attribute__((warn_unused_result)) int storage_has(struct storage *st, const struct cas_addr *addr,
                                                    uint64_t *size_out);

/* A snapshot of the counters (each read atomically; together approximate
 * while other threads write). */
void storage_stats(struct storage *st, struct storage_stats *out);

/* Take one more reference to a blob; returns b. */
struct storage_blob *storage_blob_ref(struct storage_blob *b);

/* Drop one reference; the last frees the blob. NULL: no-op. */
void storage_blob_unref(struct storage_blob *b);

/* Drop the view's blob reference and zero the view. NULL or empty: no-op. */
void storage_view_release(struct storage_view *v);

#endif
