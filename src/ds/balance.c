/*
 * balance.c — endpoint choice and outlier ejection (balance.h).
 */
#include "ds/balance.h"

#include <stdio.h>
#include <string.h>

void bal_set_init(struct bal_set *s, int n, const char (*names)[BAL_NAME_MAX])
{
    memset(s, 0, sizeof(*s));
    atomic_flag_clear(&s->ejecting);
    s->n = n < 0 ? 0 : n > BAL_ENDPOINTS_MAX ? BAL_ENDPOINTS_MAX : n;
    for (int i = 0; i < s->n; i++)
        snprintf(s->ep[i].name, sizeof(s->ep[i].name), "%s", names ? names[i] : "");
}

bool bal_usable(const struct bal_ep *e, uint64_t now)
{
    return atomic_load_explicit(&e->probe_ok, memory_order_relaxed) &&
           atomic_load_explicit(&e->ejected_until_ms, memory_order_relaxed) <= now;
}

uint64_t bal_cost(const struct bal_ep *e, uint64_t now)
{
    long out = atomic_load_explicit(&e->outstanding, memory_order_relaxed);
    uint64_t ewma = atomic_load_explicit(&e->ewma_us, memory_order_relaxed);
    uint64_t at = atomic_load_explicit(&e->ewma_at_ms, memory_order_relaxed);
    uint64_t halvings = now > at ? (now - at) / BAL_EWMA_HALF_MS : 0;
    ewma = halvings >= 64 ? 0 : ewma >> halvings;
    return (uint64_t)(out < 0 ? 1 : out + 1) * (ewma + 1);
}

void bal_observe(struct bal_ep *e, uint64_t us, uint64_t now)
{
    uint64_t old = atomic_load_explicit(&e->ewma_us, memory_order_relaxed);
    uint64_t at = atomic_load_explicit(&e->ewma_at_ms, memory_order_relaxed);
    uint64_t halvings = now > at ? (now - at) / BAL_EWMA_HALF_MS : 0;
    old = halvings >= 64 ? 0 : old >> halvings; /* what bal_cost saw */
    uint64_t nu = old == 0 ? us : us >= old ? old + (us - old) / 4 : old - (old - us) / 4;
    atomic_store_explicit(&e->ewma_us, nu, memory_order_relaxed);
    atomic_store_explicit(&e->ewma_at_ms, now, memory_order_relaxed);
}

long bal_cap(long concurrency, int n)
{
    if (n <= 1)
        return concurrency;
    return (2 * concurrency + n - 1) / n;
}

uint64_t bal_eject_ms(unsigned k, uint64_t base_ms, uint64_t max_ms)
{
    if (k == 0)
        k = 1;
    if (base_ms && k > max_ms / base_ms) /* saturate instead of wrapping */
        return max_ms;
    uint64_t d = base_ms * k;
    return d < max_ms ? d : max_ms;
}

/* Two distinct random members of mask (≥ 1 bit): the less loaded wins,
 * the first drawn on a tie. */
static int p2c(const struct bal_set *s, uint32_t mask, uint64_t now, uint64_t rnd)
{
    int idx[BAL_ENDPOINTS_MAX], m = 0;
    for (int i = 0; i < s->n; i++)
        if (mask & (1u << i))
            idx[m++] = i;
    if (m == 1)
        return idx[0];
    /* The second is drawn among the m - 1 others, so it always differs. */
    uint64_t ai = rnd % (uint64_t)m, bi = rnd / (uint64_t)m % (uint64_t)(m - 1);
    if (bi >= ai)
        bi++;
    int a = idx[ai], b = idx[bi];
    return bal_cost(&s->ep[b], now) < bal_cost(&s->ep[a], now) ? b : a;
}

int bal_pick(const struct bal_set *s, uint64_t now, uint32_t reach, uint32_t tried, int last,
             long cap, uint64_t rnd)
{
    uint32_t usable = 0, room = 0;
    uint32_t not_last = last >= 0 && last < 32 ? ~(1u << last) : ~0u;

    for (int i = 0; i < s->n; i++) {
        uint32_t bit = 1u << i;
        if (!(reach & bit))
            continue;
        if (atomic_load_explicit(&s->ep[i].outstanding, memory_order_relaxed) < cap)
            room |= bit;
        if (bal_usable(&s->ep[i], now))
            usable |= bit;
    }
    const uint32_t tiers[] = {usable & ~tried, usable & not_last, usable, reach & ~tried, reach};
    for (size_t t = 0; t < sizeof(tiers) / sizeof(tiers[0]); t++)
        if (tiers[t] & room)
            return p2c(s, tiers[t] & room, now, rnd);
    return reach & ((1u << s->n) - 1) ? BAL_FULL : BAL_NONE;
}

bool bal_untried(const struct bal_set *s, uint64_t now, uint32_t reach, uint32_t tried)
{
    uint32_t usable = 0;
    for (int i = 0; i < s->n; i++)
        if ((reach & (1u << i)) && bal_usable(&s->ep[i], now))
            usable |= 1u << i;
    return usable ? (usable & ~tried) != 0 : (reach & ~tried & ((1u << s->n) - 1)) != 0;
}

int bal_ejected(const struct bal_set *s, uint64_t now)
{
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (atomic_load(&s->ep[i].ejected_until_ms) > now)
            k++;
    return k;
}

/* Whether one more ejection keeps within the max share of the set. */
static bool may_eject(const struct bal_set *s, uint64_t now, int pct)
{
    if (s->n < 2)
        return false; /* a lone endpoint is all there is: never out */
    int allowed = s->n * pct / 100;
    if (allowed < 1)
        allowed = 1;
    if (allowed > s->n - 1)
        allowed = s->n - 1;
    return bal_ejected(s, now) + 1 <= allowed;
}

bool bal_report(struct bal_set *s, int i, enum bal_outcome o, uint64_t now,
                const struct bal_policy *p)
{
    struct bal_ep *e = &s->ep[i];

    if (o == BAL_NEUTRAL)
        return false;
    if (o == BAL_OK) {
        atomic_fetch_add_explicit(&e->attempts_ok, 1, memory_order_relaxed);
        /* Read first: a store on every success would bounce the line. */
        if (atomic_load_explicit(&e->consec_fail, memory_order_relaxed) != 0)
            atomic_store_explicit(&e->consec_fail, 0, memory_order_relaxed);
        return false;
    }
    atomic_fetch_add_explicit(&e->attempts_failed, 1, memory_order_relaxed);
    int n = atomic_fetch_add(&e->consec_fail, 1) + 1;
    if (p->eject_after <= 0 || n < p->eject_after || atomic_load(&e->ejected_until_ms) > now)
        return false;
    if (atomic_flag_test_and_set(&s->ejecting))
        return false; /* another thread decides now; a later failure retries */
    bool ejected = false;
    if (atomic_load(&e->ejected_until_ms) <= now && may_eject(s, now, p->eject_max_pct)) {
        unsigned k = atomic_fetch_add(&e->ejections, 1) + 1;
        uint64_t d = bal_eject_ms(k, p->eject_base_ms, p->eject_max_ms);
        atomic_store(&e->ejected_until_ms, now + d);
        /* Back in service for as long again before the multiplier falls. */
        atomic_store(&e->decay_at_ms, now + 2 * d);
        atomic_store(&e->consec_fail, 0);
        atomic_fetch_add(&e->ejections_total, 1);
        ejected = true;
    }
    atomic_flag_clear(&s->ejecting);
    return ejected;
}

void bal_tick(struct bal_set *s, uint64_t now, const struct bal_policy *p)
{
    for (int i = 0; i < s->n; i++) {
        struct bal_ep *e = &s->ep[i];
        if (atomic_load(&e->ejections) == 0 || atomic_load(&e->ejected_until_ms) > now ||
            atomic_load(&e->decay_at_ms) > now)
            continue;
        atomic_fetch_sub(&e->ejections, 1);
        atomic_store(&e->decay_at_ms, now + p->eject_base_ms);
    }
}
