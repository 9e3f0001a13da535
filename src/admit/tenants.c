/*
 * tenants.c — the tenant bucket table of tenants.h.
 */
#include "admit/tenants.h"

#include <stdlib.h>

#include "engines/common/hash.h"

int tenants_init(struct tenants *t, size_t max_tenants)
{
    t->nsets = (max_tenants + TENANTS_WAYS - 1) / TENANTS_WAYS;
    if (t->nsets == 0)
        t->nsets = 1;
    t->slots = calloc(t->nsets * TENANTS_WAYS, sizeof(*t->slots));
    if (t->slots == NULL)
        return -1;
    eng_random_key(t->sipkey, sizeof(t->sipkey));
    atomic_init(&t->evicted_busy, 0);
    return 0;
}

void tenants_free(struct tenants *t)
{
    free(t->slots);
    t->slots = NULL;
}

uint64_t tenants_key(const struct tenants *t, const void *name, size_t n)
{
    uint64_t k = eng_siphash(t->sipkey, name, n);
    return k ? k : 1;
}

/* The slot holding key, claiming one for it when none does. */
static struct tenant_slot *slot_for(struct tenants *t, uint64_t key, uint64_t now)
{
    struct tenant_slot *set = &t->slots[(key >> 32) % t->nsets * TENANTS_WAYS];
    for (int attempt = 0; attempt < 2; attempt++) {
        struct tenant_slot *victim = NULL;
        uint64_t victim_tat = UINT64_MAX;
        for (int i = 0; i < TENANTS_WAYS; i++) {
            uint64_t k = atomic_load_explicit(&set[i].key, memory_order_relaxed);
            if (k == key)
                return &set[i];
            uint64_t tat =
                k == 0 ? 0 : atomic_load_explicit(&set[i].bucket.tat, memory_order_relaxed);
            if (tat < victim_tat) {
                victim = &set[i];
                victim_tat = tat;
            }
        }
        uint64_t old = atomic_load_explicit(&victim->key, memory_order_relaxed);
        if (atomic_compare_exchange_strong(&victim->key, &old, key)) {
            if (old != 0 && victim_tat > now) {
                atomic_fetch_add_explicit(&t->evicted_busy, 1, memory_order_relaxed);
                /* The newcomer starts with a full bucket, not the debt of
                 * the tenant it displaced: otherwise enough busy tenants
                 * (addresses are cheap) would make every new client's first
                 * request a 429. A take racing this store is lost or kept
                 * as it falls: at most one token per worker either way. */
                atomic_store_explicit(&victim->bucket.tat, 0, memory_order_relaxed);
            }
            return victim;
        }
        /* Another thread took that slot: look again (it may have been us). */
    }
    /* Two lost races in a row: share the set's first slot rather than spin. */
    return set;
}

struct gcra_verdict tenants_take(struct tenants *t, uint64_t key, const struct gcra_rate *r,
                                 uint64_t now)
{
    if (gcra_off(r)) {
        struct gcra_verdict v = {.ok = true, .remaining = r->burst};
        return v;
    }
    return gcra_take(&slot_for(t, key, now)->bucket, r, now);
}

void tenants_clamp(struct tenants *t, const struct gcra_rate *r, uint64_t now)
{
    for (size_t i = 0; i < t->nsets * TENANTS_WAYS; i++)
        gcra_clamp(&t->slots[i].bucket, r, now);
}
