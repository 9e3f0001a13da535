/*
 * chstats.h — the mailbox's per-channel stats as metrics, with a bounded
 * channel label (docs/OPERATIONS.md "Mailbox channels").
 *
 * Channel names come from clients, so they cannot all be label values. At
 * each scrape the families name the top_k channels that hold the most
 * messages (live + dead; ties by name, bytewise), sum every other channel
 * into one series labelled channel="_other", and give the totals over all
 * channels as families without a label. A scrape thus has at most top_k + 1
 * series per family whatever the number of channels. A channel really
 * named "_other" is never named: it is always counted under "_other".
 *
 * Served by whoever holds the engine: omnigate in micronode (the
 * in-process mailbox) and omnigate-substrate --role mailbox. The values are
 * read at scrape time with mailbox_stats_walk(), which takes no lock: the
 * request path pays nothing for them, and a scrape costs a walk of the
 * channel table (O(channels), plus O(depth) for a channel whose lease
 * ended or whose dead letter fell due since its last change) and a heap of
 * top_k entries (O(channels · log top_k)).
 */
#ifndef MAILBOX_CHSTATS_H
#define MAILBOX_CHSTATS_H

struct mailbox;

#define CHSTATS_TOP_DEFAULT 16
#define CHSTATS_TOP_MAX     256

/* Start-up, once per process: register the channel families over mb,
 * naming up to top_k channels (0 ≤ top_k ≤ CHSTATS_TOP_MAX; larger values
 * are lowered to it). mb must outlive every scrape. */
void chstats_start(struct mailbox *mb, int top_k);

#endif
