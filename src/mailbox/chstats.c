/*
 * chstats.c — per-channel mailbox metrics with a bounded channel label
 * (chstats.h).
 *
 * The registry (ops/metrics.h) renders label values from a table; here the
 * table is the last scrape's top channels, refilled by the metric table's
 * prepare hook before its families are rendered. Everything below runs on
 * the one scraping thread, so the snapshot needs no lock.
 */
#include "mailbox/chstats.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engines/mailbox/mailbox.h"
#include "engines/proto/proto.h"
#include "ops/metrics.h"

#define OTHER "_other"

/* One channel kept for a label. name points into the engine (channels live
 * as long as the mailbox). */
struct top {
    const char *name;
    size_t n;
    uint64_t held; /* live + dead: the ranking key */
    struct mailbox_channel_stats st;
};

static struct mailbox *mbox;
static int top_k;

/* The last scrape. top[] is a min-heap (the least deserving first) while
 * the walk runs, then sorted best first; labels[i] names top[i] and
 * labels[ntop] is "_other". */
static struct {
    bool ok;
    uint64_t now_ms;
    uint64_t channels;
    struct top top[CHSTATS_TOP_MAX];
    int ntop;
    struct mailbox_channel_stats other, total;
    char names[CHSTATS_TOP_MAX][ENG_NAME_MAX_BYTES + 1];
    const char *labels[CHSTATS_TOP_MAX + 1];
    int nlabels; /* the channel label's live count: ntop + 1, or 0 after a failed walk */
} snap;

/* ---- the walk ------------------------------------------------------------- */

/* Does a rank before b: more messages held, then the smaller name. */
static bool ranks_before(const struct top *a, const struct top *b)
{
    if (a->held != b->held)
        return a->held > b->held;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->name, b->name, n);
    return c != 0 ? c < 0 : a->n < b->n;
}

/* Add st to the sums s (oldest_ms: the earliest nonzero one). */
static void add(struct mailbox_channel_stats *s, const struct mailbox_channel_stats *st)
{
    s->depth += st->depth;
    s->leased += st->leased;
    s->dlq += st->dlq;
    if (st->oldest_ms && (s->oldest_ms == 0 || st->oldest_ms < s->oldest_ms))
        s->oldest_ms = st->oldest_ms;
}

/* Restore the heap below slot i (the least deserving at the root). */
static void sift_down(int i)
{
    struct top *h = snap.top;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < snap.ntop && ranks_before(&h[w], &h[l]))
            w = l;
        if (r < snap.ntop && ranks_before(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        struct top t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void sift_up(int i)
{
    struct top *h = snap.top;
    while (i > 0 && ranks_before(&h[(i - 1) / 2], &h[i])) {
        struct top t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static int on_channel(void *arg, const char *name, size_t n, const struct mailbox_channel_stats *st)
{
    struct top c = {name, n, st->depth + st->dlq, *st};
    snap.channels++;
    add(&snap.total, st);
    if (n == sizeof(OTHER) - 1 && memcmp(name, OTHER, n) == 0) {
        add(&snap.other, st); /* its label would be the aggregate's */
    } else if (snap.ntop < top_k) {
        snap.top[snap.ntop++] = c;
        sift_up(snap.ntop - 1);
    } else if (top_k > 0 && ranks_before(&c, &snap.top[0])) {
        add(&snap.other, &snap.top[0].st);
        snap.top[0] = c;
        sift_down(0);
    } else {
        add(&snap.other, st);
    }
    return 0;
}

static int by_rank(const void *a, const void *b)
{
    return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

/* The prepare hook: a fresh snapshot for this scrape. */
static void chstats_take(void)
{
    snap.ntop = 0;
    snap.channels = 0;
    snap.other = snap.total = (struct mailbox_channel_stats){0};
    snap.now_ms = proto_now_ms();
    snap.ok = mailbox_stats_walk(mbox, snap.now_ms, on_channel, NULL) == ENG_OK;
    if (!snap.ok) {
        snap.ntop = snap.nlabels = 0; /* no series rather than partial ones */
        return;
    }
    qsort(snap.top, (size_t)snap.ntop, sizeof(snap.top[0]), by_rank);
    for (int i = 0; i < snap.ntop; i++) {
        memcpy(snap.names[i], snap.top[i].name, snap.top[i].n);
        snap.names[i][snap.top[i].n] = '\0';
        snap.labels[i] = snap.names[i];
    }
    snap.labels[snap.ntop] = OTHER;
    snap.nlabels = snap.ntop + 1;
}

/* ---- the families ----------------------------------------------------------- */

/* The stats behind series ix of a labelled family, or the totals. */
static const struct mailbox_channel_stats *stats_at(const struct metric_def *d, const int *ix)
{
    if (!snap.ok)
        return NULL;
    if (d->labels[0] == NULL)
        return &snap.total;
    return ix[0] < snap.ntop ? &snap.top[ix[0]].st : &snap.other;
}

/* A uint64_t field of struct mailbox_channel_stats, at the row's off. */
static double read_field(const struct metric_def *d, const int *ix)
{
    const struct mailbox_channel_stats *st = stats_at(d, ix);
    uint64_t v;
    if (st == NULL)
        return NAN;
    memcpy(&v, (const char *)st + d->off, sizeof(v));
    return (double)v;
}

static double read_age(const struct metric_def *d, const int *ix)
{
    const struct mailbox_channel_stats *st = stats_at(d, ix);
    if (st == NULL)
        return NAN;
    if (st->oldest_ms == 0 || st->oldest_ms >= snap.now_ms)
        return 0;
    return (double)(snap.now_ms - st->oldest_ms) / 1e3;
}

static double read_channels(const struct metric_def *d, const int *ix)
{
    return snap.ok ? (double)snap.channels : NAN;
}

static const struct metric_label L_CHANNEL = {"channel", snap.labels, CHSTATS_TOP_MAX + 1,
                                              &snap.nlabels};

#define FIELD(f) .off = offsetof(struct mailbox_channel_stats, f), .read = read_field
static const struct metric_def CHSTATS_METRICS[] = {
    {"mailbox_channel_depth", METRIC_GAUGE,
     "Live messages (visible and leased) of the channels holding the most messages; the rest "
     "under channel=\"_other\".",
     .labels = {&L_CHANNEL}, FIELD(depth)},
    {"mailbox_channel_leased", METRIC_GAUGE, "Messages leased now, per channel as for depth.",
     .labels = {&L_CHANNEL}, FIELD(leased)},
    {"mailbox_channel_dead", METRIC_GAUGE, "Dead letters, per channel as for depth.",
     .labels = {&L_CHANNEL}, FIELD(dlq)},
    {"mailbox_channel_oldest_age_seconds", METRIC_GAUGE,
     "Age of the oldest live message (0: none), per channel as for depth; _other: the oldest "
     "among the rest.",
     .labels = {&L_CHANNEL}, .read = read_age},
    {"mailbox_channels", METRIC_GAUGE, "Mailbox channels.", .read = read_channels},
    {"mailbox_depth", METRIC_GAUGE, "Live messages over all channels.", FIELD(depth)},
    {"mailbox_leased", METRIC_GAUGE, "Messages leased now over all channels.", FIELD(leased)},
    {"mailbox_dead", METRIC_GAUGE, "Dead letters over all channels.", FIELD(dlq)},
    {"mailbox_oldest_age_seconds", METRIC_GAUGE,
     "Age of the oldest live message of any channel (0: none).", .read = read_age},
};

void chstats_start(struct mailbox *mb, int k)
{
    mbox = mb;
    top_k = k < 0 ? 0 : k > CHSTATS_TOP_MAX ? CHSTATS_TOP_MAX : k;
    metrics_register(METRIC_TABLE(CHSTATS_METRICS, .prepare = chstats_take));
}
