/*
 * remote.h — the OAP/1 backend's pure helpers, exposed for tests.
 * The backend itself is ds__remote_backend (ds/internal.h).
 */
#ifndef DS_REMOTE_H
#define DS_REMOTE_H

#include <stdint.h>

#define REMOTE_BACKOFF_MIN_MS 50   /* first reconnect delay */
#define REMOTE_BACKOFF_MAX_MS 2000 /* ceiling of the doubling */

/*
 * Reconnect delay after `failures` consecutive failed or lost connections
 * (0 = the first retry): REMOTE_BACKOFF_MIN_MS doubled per failure, capped
 * at REMOTE_BACKOFF_MAX_MS, then jittered uniformly by ±50 % using rnd (any
 * random 32-bit value). Result in [base/2, base·3/2].
 */
uint64_t remote_backoff_ms(unsigned failures, uint32_t rnd);

#endif
