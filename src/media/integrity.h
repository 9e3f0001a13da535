/*
 * integrity.h — counting and reporting bytes that do not match their address.
 *
 * Bytes are never presented as a complete object unless their BLAKE3 hash
 * matched the address, and no byte of a range is sent before its 64 KiB
 * group matched a slice proof that climbs to the address (DESIGN §4,
 * include/cas/outboard.h). Every mismatch, wherever found, is reported
 * here: integrity_failures_total{kind} and one log event naming the address.
 */
#ifndef MEDIA_INTEGRITY_H
#define MEDIA_INTEGRITY_H

#include <stddef.h>
#include <stdint.h>

#include "cas/cas.h"

/* What failed: the `kind` label. */
enum integrity_kind {
    INTEGRITY_OBJECT,   /* a whole object's bytes */
    INTEGRITY_RANGE,    /* a range: a group's bytes, or the proof itself */
    INTEGRITY_VIEW,     /* an object inlined into a view */
    INTEGRITY_OUTBOARD, /* an outboard that does not climb to the address */
    INTEGRITY__KINDS
};

/* No group to name in the report. */
#define INTEGRITY_NO_GROUP (-1)

/* Start-up: register the metric. */
void integrity_init(void);

/* Verify that p[0, n) hashes to a. Returns true when it does; otherwise
 * reports the failure and returns false. */
bool integrity_check(const struct cas_addr *a, const void *p, size_t n, enum integrity_kind kind,
                     const char *corr_id);

/* Report a mismatch found elsewhere; group: the 64 KiB group whose bytes
 * failed, or INTEGRITY_NO_GROUP (a proof, a whole object). */
void integrity_report(const struct cas_addr *a, enum integrity_kind kind, int64_t group,
                      const char *corr_id);

#endif
