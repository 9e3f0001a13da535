/*
 * Tests for engines/mailbox: ids, idempotency window, depth limit, leases
 * and redelivery, dead-lettering after K deliveries, ack semantics, peek,
 * a concurrency smoke test, and peekers while a writer changes channels.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engines/mailbox/mailbox.h"

#define CH  "orders"
#define CHN 6

static struct mailbox *mk(size_t depth, uint64_t window, uint64_t lease, uint32_t k)
{
    struct mailbox_opts o = {.max_channels = 4,
                             .max_depth = depth,
                             .idem_window_ms = window,
                             .lease_ms = lease,
                             .max_deliveries = k,
                             .max_msg_bytes = 64};
    int rc = 1;
    struct mailbox *mb = mailbox_new(&o, &rc);
    cr_assert_not_null(mb);
    cr_assert_eq(rc, ENG_OK);
    return mb;
}

static uint64_t send(struct mailbox *mb, const char *body, const char *key, uint64_t now)
{
    uint64_t id = 0;
    int rc =
        mailbox_send(mb, CH, CHN, body, strlen(body), key, key ? strlen(key) : 0, now, &id, NULL);
    cr_assert_eq(rc, ENG_OK, "send: %s", eng_status_name(rc));
    return id;
}

static size_t recv(struct mailbox *mb, size_t max, uint64_t lease, uint64_t now,
                   struct mailbox_msg *out)
{
    size_t n = 99;
    cr_assert_eq(mailbox_recv(mb, CH, CHN, max, lease, now, out, &n), ENG_OK);
    return n;
}

TestSuite(mailbox);

Test(mailbox, ids_are_monotonic_per_channel)
{
    struct mailbox *mb = mk(0, 0, 0, 0);
    cr_assert_eq(send(mb, "a", NULL, 0), 1);
    cr_assert_eq(send(mb, "b", NULL, 0), 2);
    uint64_t id;
    cr_assert_eq(mailbox_send(mb, "other", 5, "x", 1, NULL, 0, 0, &id, NULL), ENG_OK);
    cr_assert_eq(id, 1);
    cr_assert_eq(send(mb, "c", NULL, 0), 3);
    cr_assert_eq(mailbox_channels(mb), 2);
    mailbox_free(mb);
}

Test(mailbox, validation)
{
    struct mailbox *mb = mk(0, 0, 0, 0);
    uint64_t id;
    struct mailbox_msg out[2];
    size_t n;
    char big[65] = {0};
    cr_assert_eq(mailbox_send(mb, "", 0, "x", 1, NULL, 0, 0, &id, NULL), ENG_E_INVALID);
    cr_assert_eq(mailbox_send(mb, "a\nb", 3, "x", 1, NULL, 0, 0, &id, NULL), ENG_E_INVALID);
    cr_assert_eq(mailbox_send(mb, CH, CHN, big, 65, NULL, 0, 0, &id, NULL), ENG_E_TOO_LARGE);
    cr_assert_eq(mailbox_send(mb, CH, CHN, big, 64, NULL, 0, 0, &id, NULL), ENG_OK);
    char key[257];
    memset(key, 'k', sizeof(key));
    cr_assert_eq(mailbox_send(mb, CH, CHN, "x", 1, key, 256, 0, &id, NULL), ENG_E_INVALID);
    cr_assert_eq(mailbox_recv(mb, CH, CHN, 0, 0, 0, out, &n), ENG_E_INVALID);
    cr_assert_eq(mailbox_recv(mb, CH, CHN, MAILBOX_BATCH_MAX + 1, 0, 0, out, &n), ENG_E_INVALID);
    cr_assert_eq(mailbox_recv(mb, CH, CHN, 1, MAILBOX_LEASE_MAX_MS + 1, 0, out, &n), ENG_E_INVALID);
    cr_assert_eq(mailbox_peek(mb, CH, CHN, 0, 0, out, &n), ENG_E_INVALID);
    /* Unknown channels read as empty; ack and stats say not found. */
    cr_assert_eq(mailbox_recv(mb, "nope", 4, 2, 0, 0, out, &n), ENG_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(mailbox_peek(mb, "nope", 4, 2, 0, out, &n), ENG_OK);
    cr_assert_eq(n, 0);
    uint64_t ids[1] = {1};
    cr_assert_eq(mailbox_ack(mb, "nope", 4, ids, 1, NULL), ENG_E_NOT_FOUND);
    struct mailbox_channel_stats s;
    cr_assert_eq(mailbox_channel_stats(mb, "nope", 4, 0, &s), ENG_E_NOT_FOUND);
    cr_assert_eq(mailbox_channels(mb), 1, "reads do not create channels");
    mailbox_free(mb);
}

Test(mailbox, max_channels)
{
    struct mailbox *mb = mk(0, 0, 0, 0);
    uint64_t id;
    char name[16];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        cr_assert_eq(mailbox_send(mb, name, 2, "x", 1, NULL, 0, 0, &id, NULL), ENG_OK);
    }
    cr_assert_eq(mailbox_send(mb, "c4", 2, "x", 1, NULL, 0, 0, &id, NULL), ENG_E_FULL);
    cr_assert_eq(mailbox_send(mb, "c0", 2, "x", 1, NULL, 0, 0, &id, NULL), ENG_OK);
    mailbox_free(mb);
}

Test(mailbox, idempotency_window)
{
    struct mailbox *mb = mk(0, 1000, 0, 0);
    bool dup = true;
    uint64_t id1, id2;
    cr_assert_eq(mailbox_send(mb, CH, CHN, "a", 1, "k1", 2, 100, &id1, &dup), ENG_OK);
    cr_assert_not(dup);
    /* Within the window: same id, nothing stored. */
    cr_assert_eq(mailbox_send(mb, CH, CHN, "a", 1, "k1", 2, 1099, &id2, &dup), ENG_OK);
    cr_assert(dup);
    cr_assert_eq(id1, id2);
    struct mailbox_channel_stats s;
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 1099, &s), ENG_OK);
    cr_assert_eq(s.depth, 1);
    cr_assert_eq(s.idem_keys, 1);
    /* Still deduplicated after the first message was acked. */
    cr_assert_eq(mailbox_ack(mb, CH, CHN, &id1, 1, NULL), ENG_OK);
    cr_assert_eq(mailbox_send(mb, CH, CHN, "a", 1, "k1", 2, 1099, &id2, &dup), ENG_OK);
    cr_assert(dup);
    cr_assert_eq(id2, id1);
    /* Another key is another message. */
    cr_assert_eq(mailbox_send(mb, CH, CHN, "a", 1, "k2", 2, 1099, &id2, &dup), ENG_OK);
    cr_assert_not(dup);
    cr_assert_eq(id2, 2);
    /* After the window (expires at 100 + 1000): a new message. */
    cr_assert_eq(mailbox_send(mb, CH, CHN, "a", 1, "k1", 2, 1100, &id2, &dup), ENG_OK);
    cr_assert_not(dup);
    cr_assert_eq(id2, 3);
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 1100, &s), ENG_OK);
    cr_assert_eq(s.depth, 2);
    cr_assert_eq(s.idem_keys, 2);
    /* Keys are per channel. */
    cr_assert_eq(mailbox_send(mb, "other", 5, "a", 1, "k1", 2, 1100, &id2, &dup), ENG_OK);
    cr_assert_not(dup);
    cr_assert_eq(id2, 1);
    mailbox_free(mb);
}

Test(mailbox, depth_limit)
{
    struct mailbox *mb = mk(3, 1000, 0, 0);
    uint64_t id;
    bool dup;
    send(mb, "1", "a", 0);
    send(mb, "2", NULL, 0);
    send(mb, "3", NULL, 0);
    cr_assert_eq(mailbox_send(mb, CH, CHN, "4", 1, NULL, 0, 0, &id, NULL), ENG_E_BUSY);
    cr_assert_eq(eng_status_http(ENG_E_BUSY), 429);
    /* A retry of an accepted send still answers with its id. */
    cr_assert_eq(mailbox_send(mb, CH, CHN, "1", 1, "a", 1, 0, &id, &dup), ENG_OK);
    cr_assert(dup);
    cr_assert_eq(id, 1);
    /* Acking makes room. */
    uint64_t ids[] = {2};
    cr_assert_eq(mailbox_ack(mb, CH, CHN, ids, 1, NULL), ENG_OK);
    cr_assert_eq(send(mb, "4", NULL, 0), 4);
    mailbox_free(mb);
}

Test(mailbox, idempotency_table_bounded)
{
    struct mailbox_opts o = {.max_depth = 100, .max_idem_keys = 2, .idem_window_ms = 50};
    struct mailbox *mb = mailbox_new(&o, NULL);
    uint64_t id;
    cr_assert_eq(mailbox_send(mb, CH, CHN, "x", 1, "a", 1, 0, &id, NULL), ENG_OK);
    cr_assert_eq(mailbox_send(mb, CH, CHN, "x", 1, "b", 1, 0, &id, NULL), ENG_OK);
    cr_assert_eq(mailbox_send(mb, CH, CHN, "x", 1, "c", 1, 0, &id, NULL), ENG_E_BUSY);
    cr_assert_eq(mailbox_send(mb, CH, CHN, "x", 1, NULL, 0, 0, &id, NULL), ENG_OK);
    cr_assert_eq(mailbox_send(mb, CH, CHN, "x", 1, "c", 1, 50, &id, NULL), ENG_OK);
    mailbox_free(mb);
}

Test(mailbox, lease_expiry_and_redelivery)
{
    struct mailbox *mb = mk(0, 0, 100, 5);
    struct mailbox_msg out[10];
    send(mb, "m1", NULL, 0);
    send(mb, "m2", NULL, 0);

    cr_assert_eq(recv(mb, 1, 0, 10, out), 1);
    cr_assert_eq(out[0].id, 1);
    cr_assert_eq(out[0].deliveries, 1);
    cr_assert_eq(out[0].lease_until, 110);
    cr_assert_eq(memcmp(out[0].body->bytes, "m1", 2), 0);
    mailbox_msgs_release(out, 1);

    /* m1 is invisible until 110: the next receive gets m2. */
    cr_assert_eq(recv(mb, 10, 50, 20, out), 1);
    cr_assert_eq(out[0].id, 2);
    mailbox_msgs_release(out, 1);
    cr_assert_eq(recv(mb, 10, 0, 69, out), 0);

    struct mailbox_channel_stats s;
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 69, &s), ENG_OK);
    cr_assert_eq(s.leased, 2);
    cr_assert_eq(s.depth, 2);

    /* m2's lease (20 + 50) ends at 70; m1's at 110. */
    cr_assert_eq(recv(mb, 10, 0, 70, out), 1);
    cr_assert_eq(out[0].id, 2);
    cr_assert_eq(out[0].deliveries, 2);
    mailbox_msgs_release(out, 1);
    cr_assert_eq(recv(mb, 10, 0, 109, out), 0);
    cr_assert_eq(recv(mb, 10, 0, 110, out), 1);
    cr_assert_eq(out[0].id, 1);
    cr_assert_eq(out[0].deliveries, 2);
    mailbox_msgs_release(out, 1);
    mailbox_free(mb);
}

Test(mailbox, acked_never_returns_unacked_never_lost)
{
    struct mailbox *mb = mk(0, 0, 10, 100);
    struct mailbox_msg out[10];
    for (int i = 0; i < 6; i++)
        send(mb, "x", NULL, 0);
    cr_assert_eq(recv(mb, 10, 0, 0, out), 6);
    uint64_t ids[4] = {2, 4, 6, 99};
    size_t acked = 0;
    cr_assert_eq(mailbox_ack(mb, CH, CHN, ids, 4, &acked), ENG_OK);
    cr_assert_eq(acked, 3, "unknown id reported");
    cr_assert_eq(mailbox_ack(mb, CH, CHN, ids, 3, &acked), ENG_OK);
    cr_assert_eq(acked, 0, "acking twice is harmless");
    mailbox_msgs_release(out, 6);
    /* Many lease periods later, exactly the unacked ones keep coming back. */
    for (uint64_t t = 10; t < 500; t += 10) {
        size_t n = recv(mb, 10, 0, t, out);
        cr_assert_eq(n, 3, "t=%lu", (unsigned long)t);
        cr_assert_eq(out[0].id, 1);
        cr_assert_eq(out[1].id, 3);
        cr_assert_eq(out[2].id, 5);
        mailbox_msgs_release(out, n);
    }
    uint64_t rest[3] = {1, 3, 5};
    cr_assert_eq(mailbox_ack(mb, CH, CHN, rest, 3, &acked), ENG_OK);
    cr_assert_eq(acked, 3);
    cr_assert_eq(recv(mb, 10, 0, 10000, out), 0);
    mailbox_free(mb);
}

Test(mailbox, dead_letter_after_k)
{
    struct mailbox *mb = mk(0, 0, 10, 3);
    struct mailbox_msg out[10];
    send(mb, "poison", NULL, 0);
    send(mb, "fine", NULL, 0);
    uint64_t t = 0;
    for (uint32_t d = 1; d <= 3; d++, t += 10) {
        size_t n = recv(mb, 10, 0, t, out);
        cr_assert_eq(n, 2);
        cr_assert_eq(out[0].id, 1);
        cr_assert_eq(out[0].deliveries, d);
        mailbox_msgs_release(out, n);
    }
    /* Ack "fine" on its third delivery. Lease of the third delivery of
     * "poison" ends at t = 30: until then it is neither visible nor dead. */
    uint64_t id2 = 2;
    cr_assert_eq(mailbox_ack(mb, CH, CHN, &id2, 1, NULL), ENG_OK);
    size_t n;
    cr_assert_eq(mailbox_dlq_peek(mb, CH, CHN, 10, 29, out, &n), ENG_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(recv(mb, 10, 0, 29, out), 0);

    cr_assert_eq(recv(mb, 10, 0, 30, out), 0, "dead-lettered, not redelivered");
    cr_assert_eq(mailbox_dlq_peek(mb, CH, CHN, 10, 30, out, &n), ENG_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0].id, 1);
    cr_assert_eq(out[0].deliveries, 3);
    cr_assert_eq(memcmp(out[0].body->bytes, "poison", 6), 0);
    mailbox_msgs_release(out, n);
    struct mailbox_channel_stats s;
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 30, &s), ENG_OK);
    cr_assert_eq(s.depth, 0);
    cr_assert_eq(s.dlq, 1);
    /* An ack of a dead letter finds nothing. */
    uint64_t id1 = 1;
    size_t acked = 9;
    cr_assert_eq(mailbox_ack(mb, CH, CHN, &id1, 1, &acked), ENG_OK);
    cr_assert_eq(acked, 0);
    mailbox_free(mb);
}

Test(mailbox, ack_on_final_delivery_is_not_dead_lettered)
{
    struct mailbox *mb = mk(0, 0, 10, 2);
    struct mailbox_msg out[2];
    send(mb, "x", NULL, 0);
    cr_assert_eq(recv(mb, 1, 0, 0, out), 1);
    mailbox_msgs_release(out, 1);
    cr_assert_eq(recv(mb, 1, 0, 10, out), 1);
    mailbox_msgs_release(out, 1);
    uint64_t id = 1;
    size_t acked;
    cr_assert_eq(mailbox_ack(mb, CH, CHN, &id, 1, &acked), ENG_OK);
    cr_assert_eq(acked, 1);
    struct mailbox_channel_stats s;
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 1000, &s), ENG_OK);
    cr_assert_eq(s.dlq, 0);
    cr_assert_eq(s.depth, 0);
    mailbox_free(mb);
}

Test(mailbox, dlq_bounded_drops_oldest)
{
    struct mailbox *mb = mk(2, 0, 10, 1);
    struct mailbox_msg out[4];
    for (int round = 0; round < 3; round++) {
        send(mb, "x", NULL, (uint64_t)round * 100);
        cr_assert_eq(recv(mb, 4, 0, (uint64_t)round * 100, out), 1);
        mailbox_msgs_release(out, 1);
    }
    size_t n;
    cr_assert_eq(mailbox_dlq_peek(mb, CH, CHN, 4, 1000, out, &n), ENG_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].id, 3);
    cr_assert_eq(out[1].id, 2);
    mailbox_msgs_release(out, n);
    struct mailbox_channel_stats s;
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 1000, &s), ENG_OK);
    cr_assert_eq(s.dlq_dropped, 1);
    mailbox_free(mb);
}

Test(mailbox, peek_newest_without_leasing)
{
    struct mailbox *mb = mk(0, 0, 100, 0);
    struct mailbox_msg out[10];
    char b[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(b, sizeof(b), "m%d", i);
        send(mb, b, NULL, (uint64_t)i);
    }
    size_t n;
    cr_assert_eq(mailbox_peek(mb, CH, CHN, 3, 10, out, &n), ENG_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(out[0].id, 5);
    cr_assert_eq(out[1].id, 4);
    cr_assert_eq(out[2].id, 3);
    cr_assert_eq(out[0].sent_ms, 5);
    cr_assert_eq(out[0].deliveries, 0);
    cr_assert_eq(memcmp(out[2].body->bytes, "m3", 2), 0);
    mailbox_msgs_release(out, n);
    cr_assert_null(out[0].body);
    /* Peeking leased nothing. */
    cr_assert_eq(recv(mb, 10, 0, 10, out), 5);
    mailbox_msgs_release(out, 5);
    /* Leased messages still show in a peek. */
    cr_assert_eq(mailbox_peek(mb, CH, CHN, 10, 11, out, &n), ENG_OK);
    cr_assert_eq(n, 5);
    cr_assert_eq(out[0].deliveries, 1);
    mailbox_msgs_release(out, n);
    mailbox_free(mb);
}

Test(mailbox, body_outlives_ack_and_free)
{
    struct mailbox *mb = mk(0, 0, 0, 0);
    struct mailbox_msg out[1];
    send(mb, "keep", NULL, 0);
    cr_assert_eq(recv(mb, 1, 0, 0, out), 1);
    uint64_t id = 1;
    cr_assert_eq(mailbox_ack(mb, CH, CHN, &id, 1, NULL), ENG_OK);
    mailbox_free(mb);
    cr_assert_eq(memcmp(out[0].body->bytes, "keep", 4), 0);
    mailbox_msgs_release(out, 1);
}

/* ---------------------------------------------------------------- threads */

#define MW_THREADS 4
#define MW_SENDS   2000

struct mw {
    struct mailbox *mb;
    int id;
    int errors;
    size_t received;
};

static void *producer(void *arg)
{
    struct mw *w = arg;
    char key[32];
    for (int i = 0; i < MW_SENDS; i++) {
        uint64_t id;
        snprintf(key, sizeof(key), "p%d-%d", w->id, i);
        /* Each send is made twice: the retry must deduplicate. */
        for (int r = 0; r < 2; r++)
            if (mailbox_send(w->mb, "q", 1, key, strlen(key), key, strlen(key), 0, &id, NULL) !=
                ENG_OK)
                w->errors++;
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct mw *w = arg;
    struct mailbox_msg out[16];
    uint64_t ids[16];
    /* Bounded by time, not by a spin count: on a loaded host the producers
     * may not run for a while, and an empty receive yields to them. */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (t = t0; w->received < MW_SENDS && t.tv_sec - t0.tv_sec < 30;
         clock_gettime(CLOCK_MONOTONIC, &t)) {
        size_t n = 0;
        if (mailbox_recv(w->mb, "q", 1, 16, 0, 0, out, &n) != ENG_OK)
            w->errors++;
        for (size_t i = 0; i < n; i++)
            ids[i] = out[i].id;
        size_t acked = 0;
        if (n > 0 && mailbox_ack(w->mb, "q", 1, ids, n, &acked) != ENG_OK)
            w->errors++;
        if (acked != n)
            w->errors++;
        w->received += n;
        mailbox_msgs_release(out, n);
        if (n == 0)
            sched_yield();
    }
    return NULL;
}

Test(mailbox, concurrency_smoke, .timeout = 60)
{
    /* Lease long enough (default 30 s at now = 0) that nothing is redelivered:
     * every message is received exactly once across the consumers. */
    struct mailbox_opts o = {.max_depth = 4 * MW_SENDS};
    struct mailbox *mb = mailbox_new(&o, NULL);
    pthread_t t[MW_THREADS];
    struct mw w[MW_THREADS];
    for (int i = 0; i < MW_THREADS; i++) {
        w[i] = (struct mw){.mb = mb, .id = i};
        pthread_create(&t[i], NULL, i < 2 ? producer : consumer, &w[i]);
    }
    size_t received = 0;
    for (int i = 0; i < MW_THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].errors, 0, "thread %d", i);
        received += w[i].received;
    }
    cr_assert_eq(received, 2 * MW_SENDS, "received %zu", received);
    struct mailbox_channel_stats s;
    cr_assert_eq(mailbox_channel_stats(mb, "q", 1, 0, &s), ENG_OK);
    cr_assert_eq(s.depth, 0);
    cr_assert_eq(s.next_id, 2 * MW_SENDS + 1, "no duplicates stored");
    mailbox_free(mb);
}

Test(mailbox, peek_moves_a_due_dead_letter_as_before)
{
    /* PEEK reads without a lock, but when a dead letter is due it still
     * moves it first: an ACK after that PEEK finds nothing to ack. */
    struct mailbox *mb = mk(0, 0, 10, 1);
    struct mailbox_msg out[4];
    send(mb, "a", NULL, 0);
    send(mb, "b", NULL, 0);
    cr_assert_eq(recv(mb, 1, 0, 0, out), 1); /* id 1, its only delivery, until 10 */
    mailbox_msgs_release(out, 1);
    size_t n;
    cr_assert_eq(mailbox_peek(mb, CH, CHN, 4, 9, out, &n), ENG_OK);
    cr_assert_eq(n, 2, "not due yet");
    mailbox_msgs_release(out, n);
    cr_assert_eq(mailbox_peek(mb, CH, CHN, 4, 10, out, &n), ENG_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0].id, 2);
    mailbox_msgs_release(out, n);
    uint64_t id = 1;
    size_t acked = 9;
    cr_assert_eq(mailbox_ack(mb, CH, CHN, &id, 1, &acked), ENG_OK);
    cr_assert_eq(acked, 0, "the peek moved it to the DLQ");
    cr_assert_eq(mailbox_dlq_peek(mb, CH, CHN, 4, 10, out, &n), ENG_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0].id, 1);
    mailbox_msgs_release(out, n);
    mailbox_free(mb);
}

Test(mailbox, ack_repeated_id_counts_once)
{
    struct mailbox *mb = mk(0, 0, 0, 0);
    send(mb, "a", NULL, 0);
    send(mb, "b", NULL, 0);
    uint64_t ids[] = {2, 2, 1, 2};
    size_t acked = 0;
    cr_assert_eq(mailbox_ack(mb, CH, CHN, ids, 4, &acked), ENG_OK);
    cr_assert_eq(acked, 2);
    struct mailbox_channel_stats s;
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 0, &s), ENG_OK);
    cr_assert_eq(s.depth, 0);
    mailbox_free(mb);
}

/* Peekers on several threads while one writer sends, receives, acks and
 * creates channels: every peek is newest first, each body matches its id
 * (ASan catches a body freed under a reader), and no peek fails. */
#define PW_READERS 3

struct pw {
    struct mailbox *mb;
    atomic_bool *stop;
    int errors;
    long peeks;
};

static void *pw_reader(void *arg)
{
    struct pw *p = arg;
    struct mailbox_msg out[10];
    char ch[16], want[24];
    while (!atomic_load(p->stop) || p->peeks < 1000) {
        size_t n = 0;
        if (mailbox_peek(p->mb, "q", 1, 10, 0, out, &n) != ENG_OK)
            p->errors++;
        for (size_t i = 0; i < n; i++) {
            int w = snprintf(want, sizeof(want), "%llu", (unsigned long long)out[i].id);
            if (out[i].body->size != (size_t)w || memcmp(out[i].body->bytes, want, (size_t)w))
                p->errors++;
            if (i > 0 && out[i - 1].id <= out[i].id)
                p->errors++;
        }
        mailbox_msgs_release(out, n);
        /* Channels being created while we look them up. */
        int cn = snprintf(ch, sizeof(ch), "c%ld", p->peeks % 300);
        if (mailbox_peek(p->mb, ch, (size_t)cn, 1, 0, out, &n) != ENG_OK)
            p->errors++;
        mailbox_msgs_release(out, n);
        p->peeks++;
    }
    return NULL;
}

Test(mailbox, peekers_while_a_writer_changes, .timeout = 120)
{
    struct mailbox_opts o = {.max_depth = 200, .max_channels = 400};
    struct mailbox *mb = mailbox_new(&o, NULL);
    atomic_bool stop = false;
    pthread_t t[PW_READERS];
    struct pw p[PW_READERS];
    for (int i = 0; i < PW_READERS; i++) {
        p[i] = (struct pw){.mb = mb, .stop = &stop};
        cr_assert_eq(pthread_create(&t[i], NULL, pw_reader, &p[i]), 0);
    }
    struct mailbox_msg out[8];
    char body[24];
    for (uint64_t i = 1; i <= 5000; i++) {
        uint64_t id;
        int n = snprintf(body, sizeof(body), "%llu", (unsigned long long)i);
        cr_assert_eq(mailbox_send(mb, "q", 1, body, (size_t)n, NULL, 0, 0, &id, NULL), ENG_OK);
        cr_assert_eq(id, i);
        if (i % 4 == 0) {
            /* Lease the oldest few, ack every other one: views change in
             * the middle and at both ends. */
            size_t got = 0;
            cr_assert_eq(mailbox_recv(mb, "q", 1, 8, 1000000, 0, out, &got), ENG_OK);
            uint64_t ids[8];
            size_t na = 0;
            for (size_t k = 0; k < got; k += 2)
                ids[na++] = out[k].id;
            mailbox_msgs_release(out, got);
            cr_assert_eq(mailbox_ack(mb, "q", 1, ids, na, NULL), ENG_OK);
        }
        if (i % 64 == 0) {
            int cn = snprintf(body, sizeof(body), "c%llu", (unsigned long long)(i / 64));
            cr_assert_eq(mailbox_send(mb, body, (size_t)cn, "x", 1, NULL, 0, 0, &id, NULL), ENG_OK);
        }
        if (i % 100 == 0) {
            /* Keep the depth bounded: ack the oldest 50 live ones. */
            struct mailbox_msg pk[100];
            size_t got = 0;
            cr_assert_eq(mailbox_peek(mb, "q", 1, 100, 0, pk, &got), ENG_OK);
            uint64_t ids[100];
            for (size_t k = 0; k < got; k++)
                ids[k] = pk[k].id;
            mailbox_msgs_release(pk, got);
            cr_assert_eq(mailbox_ack(mb, "q", 1, ids + got / 2, got - got / 2, NULL), ENG_OK);
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < PW_READERS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(p[i].errors, 0, "reader %d: %d errors in %ld peeks", i, p[i].errors,
                     p[i].peeks);
    }
    cr_assert_eq(mailbox_channels(mb), 1 + 5000 / 64);
    mailbox_free(mb);
}

/* ---- owned leases, settling, redrive, idempotency conflicts ------------- */

Test(mailbox, the_same_key_with_another_body_is_a_conflict)
{
    struct mailbox *mb = mk(0, 1000, 0, 0);
    uint64_t id = send(mb, "a", "k1", 0), again = 0;
    bool dup = false;
    cr_assert_eq(mailbox_send(mb, CH, CHN, "a", 1, "k1", 2, 10, &again, &dup), ENG_OK);
    cr_assert(dup && again == id, "a retry with the same body is the first send");
    cr_assert_eq(mailbox_send(mb, CH, CHN, "b", 1, "k1", 2, 10, &again, &dup), ENG_E_CONFLICT);
    struct mailbox_channel_stats st;
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 10, &st), ENG_OK);
    cr_assert_eq(st.depth, 1, "nothing stored by the conflicting send");
    cr_assert_eq(eng_status_http(ENG_E_CONFLICT), 409);
    mailbox_free(mb);
}

Test(mailbox, a_foreign_lease_cannot_be_settled)
{
    struct mailbox *mb = mk(0, 0, 1000, 0);
    uint64_t id = send(mb, "a", NULL, 0), ghost = 999;
    struct mailbox_msg out[2];
    size_t n = 0;
    cr_assert_eq(mailbox_lease(mb, CH, CHN, 1, 0, 7, 0, out, &n), ENG_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0].owner, 7);
    mailbox_msgs_release(out, n);
    enum mailbox_outcome oc[2];
    uint64_t ids[2] = {id, ghost};
    for (int op = MAILBOX_ACK; op <= MAILBOX_EXTEND; op++) {
        cr_assert_eq(mailbox_settle(mb, CH, CHN, op, ids, 2, 8, 0, 10, oc), ENG_OK);
        cr_assert_eq(oc[0], MAILBOX_FOREIGN, "op %d by another owner", op);
        cr_assert_eq(oc[1], MAILBOX_UNKNOWN);
    }
    struct mailbox_channel_stats st;
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 10, &st), ENG_OK);
    cr_assert(st.depth == 1 && st.leased == 1, "nothing changed");
    cr_assert_eq(mailbox_settle(mb, CH, CHN, MAILBOX_ACK, ids, 1, 7, 0, 10, oc), ENG_OK);
    cr_assert_eq(oc[0], MAILBOX_DONE, "the owner acks");
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 10, &st), ENG_OK);
    cr_assert_eq(st.depth, 0);
    mailbox_free(mb);
}

Test(mailbox, nack_releases_and_extend_keeps_a_lease)
{
    struct mailbox *mb = mk(0, 0, 1000, 0);
    uint64_t a = send(mb, "a", NULL, 0), b = send(mb, "b", NULL, 0);
    struct mailbox_msg out[2];
    size_t n = 0;
    cr_assert_eq(mailbox_lease(mb, CH, CHN, 2, 0, 5, 0, out, &n), ENG_OK);
    mailbox_msgs_release(out, n);
    enum mailbox_outcome oc[1];
    cr_assert_eq(mailbox_settle(mb, CH, CHN, MAILBOX_NACK, &a, 1, 5, 0, 100, oc), ENG_OK);
    cr_assert_eq(oc[0], MAILBOX_DONE);
    cr_assert_eq(mailbox_settle(mb, CH, CHN, MAILBOX_EXTEND, &b, 1, 5, 5000, 100, oc), ENG_OK);
    cr_assert_eq(oc[0], MAILBOX_DONE);
    cr_assert_eq(recv(mb, 2, 10000, 2000, out), 1, "a is visible again, b's lease runs to 5100");
    cr_assert_eq(out[0].id, a);
    cr_assert_eq(out[0].deliveries, 2);
    mailbox_msgs_release(out, 1);
    cr_assert_eq(recv(mb, 2, 1000, 5099, out), 0, "a leased again, b still leased");
    cr_assert_eq(recv(mb, 2, 1000, 5100, out), 1, "b's extended lease has ended");
    cr_assert_eq(out[0].id, b);
    mailbox_msgs_release(out, 1);
    /* A lease that ended cannot be extended or released. */
    cr_assert_eq(mailbox_settle(mb, CH, CHN, MAILBOX_EXTEND, &b, 1, 5, 100, 9000, oc), ENG_OK);
    cr_assert_eq(oc[0], MAILBOX_NOT_LEASED);
    cr_assert_eq(mailbox_settle(mb, CH, CHN, MAILBOX_NACK, &b, 1, 0, 100, 9000, oc), ENG_OK);
    cr_assert_eq(oc[0], MAILBOX_NOT_LEASED);
    /* A delayed nack hides the message for the delay. */
    cr_assert_eq(recv(mb, 2, 1000, 20000, out), 2);
    mailbox_msgs_release(out, 2);
    cr_assert_eq(mailbox_settle(mb, CH, CHN, MAILBOX_NACK, &a, 1, 0, 3000, 20000, oc), ENG_OK);
    cr_assert_eq(recv(mb, 1, 100000, 22000, out), 1, "b, whose lease ended; a is still hidden");
    cr_assert_eq(out[0].id, b);
    mailbox_msgs_release(out, 1);
    cr_assert_eq(recv(mb, 2, 1000, 23000, out), 1);
    cr_assert_eq(out[0].id, a);
    mailbox_msgs_release(out, 1);
    cr_assert_eq(
        mailbox_settle(mb, CH, CHN, MAILBOX_NACK, &a, 1, 0, MAILBOX_LEASE_MAX_MS + 1, 23000, oc),
        ENG_E_INVALID);
    mailbox_free(mb);
}

Test(mailbox, redrive_returns_dead_letters_in_id_order)
{
    struct mailbox *mb = mk(0, 0, 100, 1); /* one delivery, then dead */
    uint64_t a = send(mb, "a", NULL, 0), b = send(mb, "b", NULL, 0);
    struct mailbox_msg out[4];
    cr_assert_eq(recv(mb, 1, 100, 0, out), 1); /* a leased once, never acked */
    mailbox_msgs_release(out, 1);
    uint64_t c = send(mb, "c", NULL, 10);
    size_t n = 0;
    cr_assert_eq(mailbox_dlq_peek(mb, CH, CHN, 4, 200, out, &n), ENG_OK);
    cr_assert(n == 1 && out[0].id == a, "a is dead after its only lease");
    mailbox_msgs_release(out, n);
    size_t moved = 0;
    cr_assert_eq(mailbox_redrive(mb, CH, CHN, 10, 200, &moved), ENG_OK);
    cr_assert_eq(moved, 1);
    cr_assert_eq(mailbox_dlq_peek(mb, CH, CHN, 4, 200, out, &n), ENG_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(recv(mb, 3, 100, 200, out), 3);
    cr_assert(out[0].id == a && out[1].id == b && out[2].id == c, "ids ascending");
    cr_assert_eq(out[0].deliveries, 1, "redriven as never delivered, now once");
    cr_assert_eq(out[0].body->bytes[0], (uint8_t)'a');
    mailbox_msgs_release(out, 3);
    cr_assert_eq(mailbox_redrive(mb, "none", 4, 10, 200, &moved), ENG_OK);
    cr_assert_eq(moved, 0);
    mailbox_free(mb);
}

/* ---- restoring a saved state -------------------------------------------- */

static const uint8_t SEED[MAILBOX_SEED_BYTES] = "0123456789abcdef";

static struct mailbox *mk_seeded(size_t depth, uint64_t window)
{
    struct mailbox_opts o = {.max_channels = 4,
                             .max_depth = depth,
                             .idem_window_ms = window,
                             .max_msg_bytes = 64,
                             .seed = SEED};
    struct mailbox *mb = mailbox_new(&o, NULL);
    cr_assert_not_null(mb);
    return mb;
}

/* mailbox_restore_msg of a message on CH (or ch) with no media type. */
static int restore_on(struct mailbox *mb, const char *ch, uint64_t id, uint64_t sent,
                      const char *body, const char *key, uint64_t now)
{
    struct mailbox_saved_msg m = {.id = id,
                                  .sent_ms = sent,
                                  .body = body,
                                  .n = strlen(body),
                                  .key = key,
                                  .key_len = key ? strlen(key) : 0};
    return mailbox_restore_msg(mb, ch, strlen(ch), &m, now);
}

static int restore(struct mailbox *mb, uint64_t id, uint64_t sent, const char *body,
                   const char *key, uint64_t now)
{
    return restore_on(mb, CH, id, sent, body, key, now);
}

/* Ids of the channel's live messages, oldest first, by PEEK. */
static size_t live_ids(struct mailbox *mb, uint64_t now, uint64_t *ids)
{
    struct mailbox_msg out[MAILBOX_BATCH_MAX];
    size_t n = 0;
    cr_assert_eq(mailbox_peek(mb, CH, CHN, MAILBOX_BATCH_MAX, now, out, &n), ENG_OK);
    for (size_t i = 0; i < n; i++)
        ids[i] = out[n - 1 - i].id;
    mailbox_msgs_release(out, n);
    return n;
}

Test(mailbox, restore_puts_messages_back_in_id_order)
{
    struct mailbox *mb = mk_seeded(3, 1000);
    uint64_t ids[8];
    /* Out of order, one twice: kept once, sorted; max_depth does not apply. */
    cr_assert_eq(restore(mb, 7, 70, "m7", NULL, 0), ENG_OK);
    cr_assert_eq(restore(mb, 2, 20, "m2", NULL, 0), ENG_OK);
    cr_assert_eq(restore(mb, 9, 90, "m9", NULL, 0), ENG_OK);
    cr_assert_eq(restore(mb, 2, 20, "xx", NULL, 0), ENG_OK);
    cr_assert_eq(restore(mb, 5, 50, "m5", NULL, 0), ENG_OK);
    cr_assert_eq(live_ids(mb, 100, ids), 4);
    cr_assert(ids[0] == 2 && ids[1] == 5 && ids[2] == 7 && ids[3] == 9);

    struct mailbox_msg out[4];
    size_t n = recv(mb, 4, 0, 100, out);
    cr_assert_eq(n, 4);
    cr_assert_eq(out[0].id, 2);
    cr_assert_eq(out[0].sent_ms, 20);
    cr_assert_eq(out[0].deliveries, 1, "restored as never delivered");
    cr_assert_eq(memcmp(out[0].body->bytes, "m2", 2), 0, "the first restore of an id stays");
    mailbox_msgs_release(out, n);

    /* Full (4 live over a depth of 3): sends wait for acks; ids go on from
     * the highest restored. */
    uint64_t id;
    cr_assert_eq(mailbox_send(mb, CH, CHN, "n", 1, NULL, 0, 100, &id, NULL), ENG_E_BUSY);
    uint64_t ack[] = {2, 5};
    cr_assert_eq(mailbox_ack(mb, CH, CHN, ack, 2, NULL), ENG_OK);
    cr_assert_eq(send(mb, "n", NULL, 100), 10);
    mailbox_free(mb);
}

Test(mailbox, restore_next_id_outlives_acked_messages)
{
    struct mailbox *mb = mk_seeded(0, 0);
    cr_assert_eq(mailbox_restore_next_id(mb, CH, CHN, 42), ENG_OK);
    cr_assert_eq(mailbox_restore_next_id(mb, CH, CHN, 7), ENG_OK, "never lowered");
    cr_assert_eq(restore(mb, 3, 0, "old", NULL, 0), ENG_OK);
    cr_assert_eq(send(mb, "a", NULL, 0), 42);
    cr_assert_eq(mailbox_restore_next_id(mb, CH, CHN, 0), ENG_E_INVALID);
    cr_assert_eq(restore(mb, 0, 0, "x", NULL, 0), ENG_E_INVALID);
    cr_assert_eq(restore_on(mb, "", 1, 0, "x", NULL, 0), ENG_E_INVALID);
    cr_assert_eq(mailbox_restore_key(mb, CH, CHN, "k", 0, 1, 0, 10, 0), ENG_E_INVALID);
    mailbox_free(mb);
}

Test(mailbox, restore_brings_idempotency_keys_back)
{
    struct mailbox *mb = mk_seeded(0, 1000);
    uint64_t id;
    bool dup = false;
    /* Sent at 100 with key k1: deduplicated until 1100, even once acked. */
    cr_assert_eq(restore(mb, 4, 100, "a", "k1", 500), ENG_OK);
    cr_assert_eq(mailbox_ack(mb, CH, CHN, &(uint64_t){4}, 1, NULL), ENG_OK);
    cr_assert_eq(mailbox_send(mb, CH, CHN, "a", 1, "k1", 2, 600, &id, &dup), ENG_OK);
    cr_assert(dup);
    cr_assert_eq(id, 4);
    cr_assert_eq(mailbox_send(mb, CH, CHN, "b", 1, "k1", 2, 600, &id, &dup), ENG_E_CONFLICT);
    /* A key whose window has passed is not restored. */
    cr_assert_eq(restore(mb, 5, 100, "c", "k2", 1100), ENG_OK);
    cr_assert_eq(mailbox_send(mb, CH, CHN, "c", 1, "k2", 2, 1100, &id, &dup), ENG_OK);
    cr_assert_not(dup);
    cr_assert_eq(id, 6);
    mailbox_free(mb);
}

struct saved {
    struct mailbox_dump d[4];
    struct mailbox_msg msgs[4][16];
    struct mailbox_key_state keys[4][16];
    char names[4][16];
    size_t n;
    int stop_after;
};

static int save_channel(void *arg, const struct mailbox_dump *d)
{
    struct saved *s = arg;
    cr_assert_lt(s->n, 4);
    cr_assert_leq(d->nmsgs, 16);
    cr_assert_leq(d->nkeys, 16);
    struct mailbox_dump *o = &s->d[s->n];
    *o = *d;
    memcpy(s->names[s->n], d->ch, d->ch_len);
    o->ch = s->names[s->n];
    for (size_t i = 0; i < d->nmsgs; i++) {
        s->msgs[s->n][i] = d->msgs[i];
        eng_buf_ref(d->msgs[i].body);
    }
    if (d->nkeys > 0)
        memcpy(s->keys[s->n], d->keys, d->nkeys * sizeof(d->keys[0]));
    o->msgs = s->msgs[s->n];
    o->keys = s->keys[s->n];
    s->n++;
    return s->stop_after && (int)s->n == s->stop_after ? 7 : 0;
}

Test(mailbox, dump_and_restore_round_trip)
{
    struct mailbox_opts o = {
        .max_depth = 8, .idem_window_ms = 1000, .lease_ms = 10, .max_deliveries = 1, .seed = SEED};
    struct mailbox *a = mailbox_new(&o, NULL);
    struct mailbox_msg out[8];
    uint64_t id;
    send(a, "m1", "k1", 0);
    cr_assert_eq(mailbox_send_typed(a, CH, CHN, "m2", 2, "text/plain", 10, NULL, 0, 0, &id, NULL),
                 ENG_OK);
    send(a, "m3", "k3", 0);
    send(a, "m4", NULL, 0);
    cr_assert_eq(mailbox_send(a, "empty", 5, "e", 1, NULL, 0, 0, &id, NULL), ENG_OK);
    cr_assert_eq(mailbox_ack(a, "empty", 5, &id, 1, NULL), ENG_OK);
    cr_assert_eq(mailbox_ack(a, CH, CHN, &(uint64_t){3}, 1, NULL), ENG_OK);
    /* m1 leased once with K = 1: a dead letter once its lease ends. */
    cr_assert_eq(recv(a, 1, 0, 0, out), 1);
    mailbox_msgs_release(out, 1);
    struct mailbox_channel_stats st;
    cr_assert_eq(mailbox_channel_stats(a, CH, CHN, 20, &st), ENG_OK);
    cr_assert_eq(st.dlq, 1);

    struct saved s = {0};
    cr_assert_eq(mailbox_dump(a, 20, save_channel, &s), ENG_OK);
    cr_assert_eq(s.n, 2);
    struct mailbox *b = mailbox_new(&o, NULL);
    for (size_t c = 0; c < s.n; c++) {
        const struct mailbox_dump *d = &s.d[c];
        cr_assert_eq(mailbox_restore_next_id(b, d->ch, d->ch_len, d->next_id), ENG_OK);
        for (size_t i = 0; i < d->nmsgs; i++) {
            const struct mailbox_msg *m = &d->msgs[i];
            if (i > 0)
                cr_assert_lt(d->msgs[i - 1].id, m->id, "ascending ids");
            struct mailbox_saved_msg sm = {.id = m->id,
                                           .sent_ms = m->sent_ms,
                                           .body = m->body->bytes,
                                           .n = m->body->size,
                                           .type = mailbox_msg_type(m),
                                           .type_len = m->type_len};
            cr_assert_eq(mailbox_restore_msg(b, d->ch, d->ch_len, &sm, 20), ENG_OK);
        }
        for (size_t i = 0; i < d->nkeys; i++) {
            const struct mailbox_key_state *k = &d->keys[i];
            cr_assert_eq(mailbox_restore_key(b, d->ch, d->ch_len, k->key, k->len, k->id,
                                             k->body_hash, k->expires_ms, 20),
                         ENG_OK);
        }
        mailbox_msgs_release(s.msgs[c], d->nmsgs);
    }
    /* The dead letter m1 is live again; m3 (acked) is not; ids go on. */
    uint64_t ids[8];
    cr_assert_eq(live_ids(b, 20, ids), 3);
    cr_assert(ids[0] == 1 && ids[1] == 2 && ids[2] == 4);
    size_t n = 0;
    cr_assert_eq(mailbox_peek(b, CH, CHN, 3, 20, out, &n), ENG_OK);
    cr_assert_eq(out[1].id, 2);
    cr_assert_eq(out[1].type_len, 10, "the media type came back");
    cr_assert_eq(memcmp(mailbox_msg_type(&out[1]), "text/plain", 10), 0);
    cr_assert_eq(out[1].body->size, 2);
    mailbox_msgs_release(out, n);
    bool dup = false;
    cr_assert_eq(mailbox_send(b, CH, CHN, "m3", 2, "k3", 2, 30, &id, &dup), ENG_OK);
    cr_assert(dup, "the key of an acked message came back");
    cr_assert_eq(id, 3);
    cr_assert_eq(mailbox_send(b, CH, CHN, "zz", 2, "k1", 2, 30, &id, &dup), ENG_E_CONFLICT,
                 "body hashes kept under the same seed");
    cr_assert_eq(send(b, "m5", NULL, 30), 5);
    cr_assert_eq(mailbox_send(b, "empty", 5, "e", 1, NULL, 0, 30, &id, NULL), ENG_OK);
    cr_assert_eq(id, 2, "an empty channel keeps its next id");

    /* A nonzero return stops the walk and is returned. */
    struct saved t = {.stop_after = 1};
    cr_assert_eq(mailbox_dump(b, 30, save_channel, &t), 7);
    cr_assert_eq(t.n, 1);
    mailbox_msgs_release(t.msgs[0], t.d[0].nmsgs);
    mailbox_free(a);
    mailbox_free(b);
}

/* ---- the lock-free stats walk (metrics) ----------------------------------- */

struct walked {
    int n;
    char name[4][8];
    struct mailbox_channel_stats st[4];
};

static int on_walk(void *arg, const char *name, size_t n, const struct mailbox_channel_stats *st)
{
    struct walked *w = arg;
    cr_assert_lt(w->n, 4);
    cr_assert_lt(n, sizeof(w->name[0]));
    memcpy(w->name[w->n], name, n);
    w->name[w->n][n] = '\0';
    w->st[w->n++] = *st;
    return 0;
}

/* The walk at now must say what the locked stats say: it reads the views
 * without sweeping, so dead letters that are due count as dead and not as
 * live, leases that ended count as ended. The locked call comes second (it
 * sweeps). */
static void walk_agrees(struct mailbox *mb, uint64_t now, const char *what)
{
    struct walked w = {0};
    cr_assert_eq(mailbox_stats_walk(mb, now, on_walk, &w), ENG_OK);
    cr_assert_eq((size_t)w.n, mailbox_channels(mb));
    for (int i = 0; i < w.n; i++) {
        struct mailbox_channel_stats s;
        cr_assert_eq(mailbox_channel_stats(mb, w.name[i], strlen(w.name[i]), now, &s), ENG_OK);
        cr_assert(w.st[i].depth == s.depth && w.st[i].leased == s.leased && w.st[i].dlq == s.dlq &&
                      w.st[i].oldest_ms == s.oldest_ms,
                  "%s, %s at %lu: walk depth %lu leased %lu dead %lu oldest %lu; locked %lu %lu "
                  "%lu %lu",
                  what, w.name[i], (unsigned long)now, (unsigned long)w.st[i].depth,
                  (unsigned long)w.st[i].leased, (unsigned long)w.st[i].dlq,
                  (unsigned long)w.st[i].oldest_ms, (unsigned long)s.depth, (unsigned long)s.leased,
                  (unsigned long)s.dlq, (unsigned long)s.oldest_ms);
    }
}

/* The walk's counters of channel CH at now, checked against known ones
 * (the locked stats share the view arithmetic, so agreeing is not enough). */
static void walk_is(struct mailbox *mb, uint64_t now, uint64_t depth, uint64_t leased,
                    uint64_t dead, uint64_t oldest)
{
    struct walked w = {0};
    cr_assert_eq(mailbox_stats_walk(mb, now, on_walk, &w), ENG_OK);
    for (int i = 0; i < w.n; i++)
        if (strcmp(w.name[i], CH) == 0) {
            cr_assert(w.st[i].depth == depth && w.st[i].leased == leased && w.st[i].dlq == dead &&
                          w.st[i].oldest_ms == oldest,
                      "at %lu: depth %lu leased %lu dead %lu oldest %lu", (unsigned long)now,
                      (unsigned long)w.st[i].depth, (unsigned long)w.st[i].leased,
                      (unsigned long)w.st[i].dlq, (unsigned long)w.st[i].oldest_ms);
            return;
        }
    cr_assert_fail("no channel %s", CH);
}

Test(mailbox, stats_walk_agrees_with_the_locked_stats)
{
    struct mailbox *mb = mk(0, 0, 100, 2);
    struct mailbox_msg out[10];
    uint64_t id;
    walk_agrees(mb, 0, "no channel");
    for (int i = 0; i < 5; i++)
        send(mb, "x", NULL, 10 + (uint64_t)i);
    cr_assert_eq(mailbox_send(mb, "idle", 4, "y", 1, NULL, 0, 3, &id, NULL), ENG_OK);
    walk_agrees(mb, 20, "sent");
    cr_assert_eq(recv(mb, 3, 0, 20, out), 3); /* 1..3 leased until 120 */
    mailbox_msgs_release(out, 3);
    walk_is(mb, 119, 5, 3, 0, 10);
    walk_agrees(mb, 119, "leased");
    walk_is(mb, 120, 5, 0, 0, 10);
    walk_agrees(mb, 120, "leases ended, not yet touched");
    cr_assert_eq(recv(mb, 2, 0, 130, out), 2); /* 1, 2 again: their last delivery */
    mailbox_msgs_release(out, 2);
    uint64_t four = 4;
    enum mailbox_outcome oc;
    cr_assert_eq(recv(mb, 10, 0, 130, out), 3); /* 3, 4, 5 */
    mailbox_msgs_release(out, 3);
    cr_assert_eq(mailbox_settle(mb, CH, CHN, MAILBOX_NACK, &four, 1, 0, 50, 140, &oc), ENG_OK);
    walk_is(mb, 150, 5, 5, 0, 10);
    walk_agrees(mb, 150, "nacked with a delay");
    walk_is(mb, 189, 5, 5, 0, 10);
    walk_is(mb, 190, 5, 4, 0, 10);
    walk_is(mb, 230, 2, 0, 3, 13);
    walk_agrees(mb, 230, "dead letters due, not swept");
    /* 1, 2, 3 are dead (swept by the locked stats above); 4 is acked. */
    cr_assert_eq(mailbox_ack(mb, CH, CHN, &four, 1, NULL), ENG_OK);
    walk_agrees(mb, 231, "swept, one acked");
    size_t moved;
    cr_assert_eq(mailbox_redrive(mb, CH, CHN, 1, 240, &moved), ENG_OK);
    cr_assert_eq(moved, 1);
    walk_is(mb, 240, 2, 0, 2, 10);
    walk_agrees(mb, 240, "one redriven");
    struct mailbox_channel_stats s;
    cr_assert_eq(mailbox_channel_stats(mb, CH, CHN, 240, &s), ENG_OK);
    cr_assert_eq(s.dlq, 2);
    cr_assert_eq(s.depth, 2, "5 and the redriven 1");
    cr_assert_eq(s.oldest_ms, 10);
    mailbox_free(mb);
}

static int stop_at_first(void *arg, const char *name, size_t n,
                         const struct mailbox_channel_stats *st)
{
    ++*(int *)arg;
    return 7;
}

Test(mailbox, stats_walk_stops_when_told)
{
    struct mailbox *mb = mk(0, 0, 0, 0);
    uint64_t id;
    cr_assert_eq(mailbox_send(mb, "a", 1, "x", 1, NULL, 0, 0, &id, NULL), ENG_OK);
    cr_assert_eq(mailbox_send(mb, "b", 1, "x", 1, NULL, 0, 0, &id, NULL), ENG_OK);
    int calls = 0;
    cr_assert_eq(mailbox_stats_walk(mb, 0, stop_at_first, &calls), 7);
    cr_assert_eq(calls, 1);
    mailbox_free(mb);
}
