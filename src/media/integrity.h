/*
 * integrity.h — counting and reporting bytes that do not match their address.
 *
 * Bytes are never presented as a complete object unless their BLAKE3 hash
 * matched the address (DESIGN §4). Every mismatch, wherever found, is
 * reported here: integrity_failures_total and one log event naming the
 * address.
 */
#ifndef MEDIA_INTEGRITY_H
#define MEDIA_INTEGRITY_H

#include <stddef.h>

#include "cas/cas.h"

/* Start-up: register the metric. */
void integrity_init(void);

/* Verify that p[0, n) hashes to a. Returns true when it does; otherwise
 * reports the failure (where = "view", "feed", "object") and returns false. */
bool integrity_check(const struct cas_addr *a, const void *p, size_t n, const char *where,
                     const char *corr_id);

/* Report a mismatch found elsewhere (e.g. at the end of a stream). */
void integrity_report(const struct cas_addr *a, const char *where, const char *corr_id);

#endif
