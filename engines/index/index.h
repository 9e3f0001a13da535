/*
 * engines/index/index.h — names → manifests, with prefix search for
 * autocomplete (DESIGN §1, §6).
 *
 * A name is 1..255 bytes of UTF-8 with no control character
 * (eng_name_check()). A manifest is a JSON object (parsed with jansson,
 * JSON_REJECT_DUPLICATES, at most max_manifest_bytes), kept byte for byte as
 * sent in an immutable reference-counted `struct eng_buf`.
 *
 * Names are kept in one sorted structure (a three-level tree of sorted
 * arrays: pages of leaves of up to 128 entries), so exact lookup and prefix
 * search are both binary searches, O(log n), and a change copies one path
 * of it (a few KiB). Exact lookup uses the same binary search rather than a
 * separate hash map: one structure to keep consistent, and no hash to flood.
 *
 * Threads: any function may be called from any thread. Readers (resolve,
 * search, count) take no lock: they read an immutable snapshot published
 * behind an atomic pointer (engines/common/rcu.h; index.c says why).
 * Writers (put, del) serialise on a mutex held for the copy-and-publish
 * only: JSON validation and copying the manifest happen before. Manifests
 * are handed out as references, so nothing is held while they are read or
 * sent. A reader that is the first of its thread may fail with ENG_E_NOMEM
 * (its reader slot could not be allocated).
 */
#ifndef ENGINES_INDEX_INDEX_H
#define ENGINES_INDEX_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engines/common/buf.h"
#include "engines/common/hash.h"
#include "engines/common/status.h"

#define INDEX_NAME_MAX_BYTES             ENG_NAME_MAX_BYTES
#define INDEX_DEFAULT_MAX_MANIFEST_BYTES (64u << 10)
#define INDEX_DEFAULT_MAX_NAMES          (1u << 20)
/* Most names one search may return. */
#define INDEX_SEARCH_MAX 100

struct index_opts {
    size_t max_names;          /* 0 → INDEX_DEFAULT_MAX_NAMES */
    size_t max_manifest_bytes; /* 0 → INDEX_DEFAULT_MAX_MANIFEST_BYTES */
};

/* Caller-owned result of index_search(): no allocation per search. About
 * 26 KiB, so keep it on the heap or in a long-lived struct on small stacks. */
struct index_search_result {
    size_t count; /* names[0..count) are valid, in ascending byte order */
    bool more;    /* more names match the prefix past the limit */
    uint8_t len[INDEX_SEARCH_MAX];
    char name[INDEX_SEARCH_MAX][INDEX_NAME_MAX_BYTES + 1]; /* NUL-terminated copies */
};

struct index;

/* A new empty index. opts may be NULL (defaults). Returns NULL and sets
 * *status (if non-NULL) to ENG_E_NOMEM on failure; ENG_OK on success. */
struct index *index_new(const struct index_opts *opts, int *status);

/* Free the index and drop its manifest references (manifests still held by
 * callers stay valid). NULL: no-op. */
void index_free(struct index *idx);

/* Bind name → manifest, replacing any previous manifest of that name.
 * The manifest bytes are copied. created_out (optional): true when the name
 * is new. Returns ENG_OK; ENG_E_INVALID (bad name, or the manifest is not a
 * JSON object, has duplicate keys or trailing bytes); ENG_E_TOO_LARGE
 * (manifest over max_manifest_bytes, checked before parsing); ENG_E_FULL
 * (max_names reached, for a new name); ENG_E_NOMEM. */
__attribute__((warn_unused_result)) int index_put(struct index *idx, const char *name,
                                                  size_t name_len, const void *manifest,
                                                  size_t manifest_len, bool *created_out);

/* The manifest of `name`: ENG_OK with *out a new reference (release with
 * eng_buf_unref()); ENG_E_NOT_FOUND; ENG_E_INVALID (bad name); ENG_E_NOMEM
 * (see Threads). *out is NULL on error. Takes no lock. */
__attribute__((warn_unused_result)) int index_resolve(struct index *idx, const char *name,
                                                      size_t name_len, struct eng_buf **out);

/* Remove `name`: ENG_OK, ENG_E_NOT_FOUND, ENG_E_INVALID or ENG_E_NOMEM. */
int index_del(struct index *idx, const char *name, size_t name_len);

/* Up to `limit` names that start with prefix[0..prefix_len), in ascending
 * byte-wise lexicographic order (a name sorts before its extensions), copied
 * into *out. prefix_len may be 0 (all names). The prefix is checked only for
 * length (≤ 255) and control characters: it may end inside a UTF-8 sequence.
 * Returns ENG_OK (out->count may be 0), ENG_E_INVALID (bad prefix, or limit
 * outside 1..INDEX_SEARCH_MAX) or ENG_E_NOMEM (see Threads). O(log n +
 * limit); the names all come from one snapshot. Takes no lock. */
int index_search(struct index *idx, const char *prefix, size_t prefix_len, size_t limit,
                 struct index_search_result *out);

/* Number of names (an atomic read). */
size_t index_count(struct index *idx);

/* Validate a manifest as index_put() would: ENG_OK, ENG_E_TOO_LARGE or
 * ENG_E_INVALID. max_bytes 0 → INDEX_DEFAULT_MAX_MANIFEST_BYTES. */
int index_manifest_check(const void *p, size_t n, size_t max_bytes);

/* Called once per name by index_dump(), with no lock held; name and
 * manifest are valid during the call only. A nonzero return stops the walk. */
typedef int (*index_dump_fn)(void *arg, const char *name, size_t len,
                             const struct eng_buf *manifest);

/* Every name and its manifest, in ascending order, for saving the index.
 * The walk goes a page of names at a time, each page from one snapshot: a
 * name put or replaced meanwhile may be seen in its old or its new state.
 * Returns ENG_OK, ENG_E_NOMEM, or the first nonzero return of fn. */
int index_dump(struct index *idx, index_dump_fn fn, void *arg);

#endif
