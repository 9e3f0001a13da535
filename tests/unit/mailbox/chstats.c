/*
 * chstats.c — the mailbox's per-channel metrics (src/mailbox/chstats.c)
 * rendered by the registry: the channels holding the most messages get a
 * label (ties by name), the rest are summed under "_other" (a channel named
 * "_other" too), totals beside them, names escaped, and the series count
 * stays top_k + 1 however many channels there are.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engines/mailbox/mailbox.h"
#include "engines/proto/proto.h"
#include "mailbox/chstats.h"
#include "ops/metrics.h"

static struct mailbox *mk(size_t channels)
{
    struct mailbox_opts o = {.max_channels = channels, .max_deliveries = 1};
    int rc;
    struct mailbox *mb = mailbox_new(&o, &rc);
    cr_assert_not_null(mb);
    return mb;
}

static void put(struct mailbox *mb, const char *ch, int n, uint64_t now)
{
    for (int i = 0; i < n; i++) {
        uint64_t id;
        cr_assert_eq(mailbox_send(mb, ch, strlen(ch), "x", 1, NULL, 0, now, &id, NULL), ENG_OK);
    }
}

static void lease(struct mailbox *mb, const char *ch, uint64_t lease_ms, uint64_t now)
{
    struct mailbox_msg m[1];
    size_t n;
    cr_assert_eq(mailbox_recv(mb, ch, strlen(ch), 1, lease_ms, now, m, &n), ENG_OK);
    cr_assert_eq(n, 1);
    mailbox_msgs_release(m, n);
}

static char *scrape(void)
{
    struct buf out = {0};
    cr_assert_eq(metrics_render(&out), 0);
    cr_assert(buf_append(&out, "", 1) == 0);
    return out.p;
}

/* The value of the one sample line that starts with series (name and
 * labels), or -1. */
static double value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static int count(const char *text, const char *prefix)
{
    int c = 0;
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        c += strncmp(p, prefix, n) == 0;
    return c;
}

/* Six channels sent 5 s ago: a 5, b 5, q"b\ 4, c 2 (one leased), d 1 (a
 * dead letter due: max_deliveries 1, its lease over), _other 10. */
static struct mailbox *six(void)
{
    uint64_t then = proto_now_ms() - 5000;
    struct mailbox *mb = mk(16);
    put(mb, "b", 5, then);
    put(mb, "a", 5, then);
    put(mb, "q\"b\\", 4, then);
    put(mb, "c", 2, then);
    lease(mb, "c", 3600 * 1000, then);
    put(mb, "d", 1, then);
    lease(mb, "d", 1, then);
    put(mb, "_other", 10, then);
    return mb;
}

Test(chstats, top_channels_named_the_rest_summed_totals_beside)
{
    struct mailbox *mb = six();
    chstats_start(mb, 3);
    char *t = scrape();
    cr_assert_eq(count(t, "mailbox_channel_depth{"), 4, "%s", t);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"a\"}"), 5, "%s", t);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"b\"}"), 5);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"q\\\"b\\\\\"}"), 4, "escaped: %s", t);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"_other\"}"), 12, "c, d, _other");
    cr_assert_eq(value(t, "mailbox_channel_leased{channel=\"_other\"}"), 1);
    cr_assert_eq(value(t, "mailbox_channel_leased{channel=\"a\"}"), 0);
    cr_assert_eq(value(t, "mailbox_channel_dead{channel=\"_other\"}"), 1);
    cr_assert_eq(value(t, "mailbox_channels"), 6);
    cr_assert_eq(value(t, "mailbox_depth"), 26);
    cr_assert_eq(value(t, "mailbox_leased"), 1);
    cr_assert_eq(value(t, "mailbox_dead"), 1);
    double age = value(t, "mailbox_channel_oldest_age_seconds{channel=\"a\"}");
    cr_assert(age >= 5 && age < 6, "age %g", age);
    age = value(t, "mailbox_oldest_age_seconds");
    cr_assert(age >= 5 && age < 6, "age %g", age);
    /* Ranked by messages held, ties by name: a before b, then q"b\. */
    const char *a = strstr(t, "mailbox_channel_depth{channel=\"a\"}");
    const char *b = strstr(t, "mailbox_channel_depth{channel=\"b\"}");
    const char *q = strstr(t, "mailbox_channel_depth{channel=\"q");
    const char *o = strstr(t, "mailbox_channel_depth{channel=\"_other\"}");
    cr_assert(a && a < b && b < q && q < o, "%s", t);
    cr_assert_eq(count(t, "# TYPE mailbox_channel_depth gauge"), 1);
    free(t);
    mailbox_free(mb);
}

Test(chstats, dead_letters_count_toward_the_rank)
{
    struct mailbox *mb = six();
    uint64_t then = proto_now_ms() - 5000;
    /* d: 6 dead letters due, 7 held with the first: more than a or b. */
    for (int i = 0; i < 6; i++) {
        put(mb, "d", 1, then);
        lease(mb, "d", 1, then);
    }
    chstats_start(mb, 1);
    char *t = scrape();
    cr_assert_eq(value(t, "mailbox_channel_dead{channel=\"d\"}"), 7, "%s", t);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"d\"}"), 0);
    cr_assert_eq(count(t, "mailbox_channel_dead{"), 2);
    free(t);
    mailbox_free(mb);
}

Test(chstats, zero_names_none)
{
    struct mailbox *mb = six();
    chstats_start(mb, 0);
    char *t = scrape();
    cr_assert_eq(count(t, "mailbox_channel_depth{"), 1, "%s", t);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"_other\"}"), 26);
    free(t);
    mailbox_free(mb);
}

Test(chstats, an_empty_mailbox_has_an_empty_other)
{
    struct mailbox *mb = mk(16);
    chstats_start(mb, 16);
    char *t = scrape();
    cr_assert_eq(count(t, "mailbox_channel_depth{"), 1, "%s", t);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"_other\"}"), 0);
    cr_assert_eq(value(t, "mailbox_channel_oldest_age_seconds{channel=\"_other\"}"), 0);
    cr_assert_eq(value(t, "mailbox_channels"), 0);
    free(t);
    mailbox_free(mb);
}

/* Many channels: the series count stays top_k + 1 and each scrape sees the
 * channels as they are now. Prints what a scrape of them costs. */
Test(chstats, many_channels_stay_bounded)
{
    enum { N = 1024, K = 16 };
    struct mailbox *mb = mk(N);
    uint64_t now = proto_now_ms();
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "ch-%04d", i);
        put(mb, name, 1 + i % 50, now); /* ch-0049, ch-0099, … hold 50 */
    }
    chstats_start(mb, K);
    char *t = scrape();
    free(t);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    t = scrape();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(count(t, "mailbox_channel_depth{"), K + 1);
    cr_assert_eq(count(t, "mailbox_channel_oldest_age_seconds{"), K + 1);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"ch-0049\"}"), 50, "%.600s", t);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"ch-0799\"}"), 50);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"ch-0849\"}"), -1, "the 17th is summed");
    double total = 0;
    for (int i = 0; i < N; i++)
        total += 1 + i % 50;
    cr_assert_eq(value(t, "mailbox_depth"), total);
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"_other\"}"), total - 16 * 50);
    fprintf(stderr, "chstats: a scrape of %d channels, %.0f messages: %.0f us\n", N, total,
            ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3);
    free(t);
    /* A new busiest channel is named at the next scrape. */
    put(mb, "ch-0000", 60, now);
    t = scrape();
    cr_assert_eq(value(t, "mailbox_channel_depth{channel=\"ch-0000\"}"), 61);
    cr_assert_eq(count(t, "mailbox_channel_depth{"), K + 1);
    free(t);
    mailbox_free(mb);
}
