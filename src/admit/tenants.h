/*
 * tenants.h — per-tenant token buckets in a bounded table, shared by every
 * worker thread without a lock.
 *
 * A tenant (the capability's tenant; an anonymous client's address) is a
 * 64-bit keyed hash, placed in one set of TENANTS_WAYS slots. Each slot is a
 * key word and a GCRA bucket (gcra.h), both atomics. A tenant not in its set
 * takes a slot whose bucket is full again (TAT ≤ now: evicting it loses
 * nothing, a full bucket is a fresh one), an empty one, or else the one
 * closest to full, whose bucket it resets. Only in that last case — more
 * tenants busy at once than the table holds — does a tenant lose its debt
 * (it comes back to a full bucket); it is counted (evicted_busy) so an
 * operator can grow the table. A newcomer never inherits another tenant's
 * debt: a flood of busy tenants cannot make a new client's first request a
 * 429. The displaced tenant is the least indebted of its set, so a tenant
 * flooding at its limit is the last to be displaced.
 *
 * Memory is fixed at start-up: 16 bytes per slot.
 */
#ifndef ADMIT_TENANTS_H
#define ADMIT_TENANTS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "admit/gcra.h"

#define TENANTS_WAYS 4

struct tenant_slot {
    _Atomic uint64_t key; /* 0: never used */
    struct gcra bucket;
};

struct tenants {
    struct tenant_slot *slots;
    size_t nsets;
    uint8_t sipkey[16];
    atomic_ulong evicted_busy;
};

/* Room for at least max_tenants tenants. Returns 0 or -1 (memory). */
int tenants_init(struct tenants *t, size_t max_tenants);
void tenants_free(struct tenants *t);

/* The key of a tenant name (n bytes); never 0. */
uint64_t tenants_key(const struct tenants *t, const void *name, size_t n);

/* Take a token from the tenant's bucket at now. */
struct gcra_verdict tenants_take(struct tenants *t, uint64_t key, const struct gcra_rate *r,
                                 uint64_t now);

/* gcra_clamp() on every slot, after the tenant rate changed: one pass over
 * the table (16 bytes a slot; about 0.3 ms at the default 65 536). */
void tenants_clamp(struct tenants *t, const struct gcra_rate *r, uint64_t now);

#endif
