/*
 * Tests for services/durable/wal and journal: requests executed by the app
 * protocol, logged by the journal's table, replayed into new engines after
 * a simulated crash; a torn last record cut at every offset; a damaged
 * earlier log refused; a crash between every two steps of a compaction;
 * group commit, background compaction and the fsync policies on a real
 * libuv loop (exact callback counts, a clean uv_loop_close); a log that
 * cannot be written; the directory lock and the role check.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oap/oap-t.h"
#include "services/durable/journal.h"

/* A service under test: its directory, log and engines. */
struct svc {
    char dir[64];
    struct wal *w;
    struct engines eng;
    uint8_t seed[WALREC_SEED_BYTES];
    enum wal_fsync policy;
    uint64_t compact_bytes;
    uint8_t role;
    int failed; /* opts.fail calls */
};

/* opts.arg is the engines (for the dump); the service holds them. */
static void on_fail(void *arg, const char *what, int err)
{
    ((struct svc *)((char *)arg - offsetof(struct svc, eng)))->failed++;
}

/* Open s->dir and replay it into new engines. Returns wal_replay's result
 * (0 or -1, with err). */
static int boot(struct svc *s, char *err, size_t errcap)
{
    struct wal_opts o = {.dir = s->dir,
                         .role = s->role ? s->role : OAP_APP_MAILBOX,
                         .fsync = s->policy,
                         .compact_bytes = s->compact_bytes,
                         .dump = journal_dump,
                         .fail = on_fail,
                         .arg = &s->eng};
    s->w = wal_open(&o, s->seed, err, errcap);
    if (s->w == NULL)
        return -1;
    memset(&s->eng, 0, sizeof(s->eng));
    if (o.role == OAP_APP_INDEX) {
        s->eng.index = index_new(NULL, NULL);
    } else {
        struct mailbox_opts mo = {.seed = s->seed};
        s->eng.mailbox = mailbox_new(&mo, NULL);
    }
    /* The engines struct moves with s: the dump reads it through arg. */
    return wal_replay(s->w, journal_apply, &s->eng, err, errcap);
}

static void start(struct svc *s, const char *dir_or_null)
{
    char err[256] = "";
    if (dir_or_null == NULL) {
        strcpy(s->dir, "/tmp/og-wal-XXXXXX");
        cr_assert_not_null(mkdtemp(s->dir));
    }
    cr_assert_eq(boot(s, err, sizeof(err)), 0, "boot: %s", err);
}

static void engines_free(struct svc *s)
{
    mailbox_free(s->eng.mailbox);
    index_free(s->eng.index);
    memset(&s->eng, 0, sizeof(s->eng));
}

/* kill -9: nothing more is written; the engines' memory is gone. */
static void crash(struct svc *s)
{
    wal__crash(s->w);
    s->w = NULL;
    engines_free(s);
}

static void restart(struct svc *s)
{
    crash(s);
    start(s, s->dir);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

static void finish(struct svc *s)
{
    wal_free(s->w);
    s->w = NULL;
    engines_free(s);
    nftw(s->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Execute one request as oapsrv does and log it. Returns the answer's
 * code; *pos (optional) the log position to wait for (-1: could not be
 * logged). */
static int exec_pos(struct svc *s, uint16_t app, const char *hdr, const char *body, int64_t *pos,
                    json_t **answer)
{
    const uint8_t *b = (const uint8_t *)body;
    size_t n = body ? strlen(body) : 0;
    uint64_t now = proto_now_ms();
    struct proto_parsed ps;
    struct proto_resp rs;
    int code = proto_op_parse(&ps, app, hdr, strlen(hdr), &rs);
    if (code == 0)
        code = proto_exec(&s->eng, &ps.op, b, n, now, &rs);
    *pos = journal_log(s->w, &ps.op, b, n, now, &rs);
    proto_parsed_release(&ps);
    if (answer) {
        json_error_t jerr;
        /* A mailbox answer's bodies follow its JSON. */
        *answer = rs.body_len ? json_loadb((const char *)rs.body, rs.body_len,
                                           JSON_DISABLE_EOF_CHECK, &jerr)
                              : json_loadb(rs.hdr, rs.hdr_len, 0, &jerr);
    }
    proto_resp_release(&rs);
    return code;
}

static int exec(struct svc *s, uint16_t app, const char *hdr, const char *body, int64_t *pos,
                json_t **answer)
{
    int64_t p;
    int code = exec_pos(s, app, hdr, body, &p, answer);
    cr_assert_geq(p, 0);
    if (pos)
        *pos = p;
    return code;
}

static uint64_t send_msg(struct svc *s, const char *ch, const char *key, const char *body)
{
    char hdr[256];
    json_t *a;
    if (key)
        snprintf(hdr, sizeof(hdr), "{\"op\":\"send\",\"channel\":\"%s\",\"key\":\"%s\"}", ch, key);
    else
        snprintf(hdr, sizeof(hdr), "{\"op\":\"send\",\"channel\":\"%s\"}", ch);
    int code = exec(s, OAP_APP_MAILBOX, hdr, body, NULL, &a);
    cr_assert(code == 201 || code == 200, "send: %d", code);
    uint64_t id = (uint64_t)json_integer_value(json_object_get(a, "id"));
    json_decref(a);
    return id;
}

static void ack(struct svc *s, const char *ch, const char *ids)
{
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "{\"op\":\"ack\",\"channel\":\"%s\",\"ids\":[%s]}", ch, ids);
    cr_assert_eq(exec(s, OAP_APP_MAILBOX, hdr, NULL, NULL, NULL), 200);
}

/* The live ids of a channel, oldest first, as "a,b,c". */
static char *live(struct svc *s, const char *ch)
{
    static char out[1024];
    char hdr[128];
    json_t *a;
    size_t w = 0;
    snprintf(hdr, sizeof(hdr), "{\"op\":\"peek\",\"channel\":\"%s\",\"max\":100}", ch);
    cr_assert_eq(exec(s, OAP_APP_MAILBOX, hdr, NULL, NULL, &a), 200);
    json_t *msgs = json_object_get(a, "messages");
    out[0] = '\0';
    for (size_t i = json_array_size(msgs); i > 0; i--)
        w += (size_t)snprintf(
            out + w, sizeof(out) - w, "%s%lld", w ? "," : "",
            json_integer_value(json_object_get(json_array_get(msgs, i - 1), "id")));
    json_decref(a);
    return out;
}

static off_t file_size(struct svc *s, const char *name)
{
    char p[128];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", s->dir, name);
    return stat(p, &st) == 0 ? st.st_size : -1;
}

static bool exists(struct svc *s, const char *name)
{
    return file_size(s, name) >= 0;
}

TestSuite(wal);

Test(wal, acknowledged_changes_survive_a_crash)
{
    struct svc s = {0};
    start(&s, NULL);
    for (int i = 1; i <= 5; i++) {
        char key[16], body[16];
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(body, sizeof(body), "m%d", i);
        cr_assert_eq(send_msg(&s, "news", key, body), (uint64_t)i);
    }
    cr_assert_eq(send_msg(&s, "news", "k3", "m3"), 3, "a duplicate is not a new record");
    ack(&s, "news", "2,4");
    cr_assert_eq(wal_stats(s.w)->appended, 6, "5 sends and an ack");
    cr_assert_eq(wal__flush_sync(s.w), 0);
    restart(&s);

    cr_assert_eq(wal_stats(s.w)->replayed, 6);
    cr_assert_str_eq(live(&s, "news"), "1,3,5");
    cr_assert_eq(send_msg(&s, "news", NULL, "m6"), 6, "ids go on past the highest issued");
    cr_assert_eq(send_msg(&s, "news", "k4", "m4"), 4, "the key of an acked message came back");
    json_t *a;
    cr_assert_eq(exec(&s, OAP_APP_MAILBOX, "{\"op\":\"send\",\"channel\":\"news\",\"key\":\"k1\"}",
                      "other", NULL, &a),
                 409);
    json_decref(a);
    finish(&s);
}

Test(wal, media_types_and_owned_acks_are_kept_as_answered)
{
    struct svc s = {0};
    json_t *a;
    int64_t pos;
    start(&s, NULL);
    cr_assert_eq(exec(&s, OAP_APP_MAILBOX,
                      "{\"op\":\"send\",\"channel\":\"c\",\"type\":\"text/plain\"}", "one", NULL,
                      NULL),
                 201);
    send_msg(&s, "c", NULL, "two");
    /* Leased to owner a: owner b's ack is refused (foreign), so it must
     * not be replayed as an ack. */
    cr_assert_eq(exec(&s, OAP_APP_MAILBOX,
                      "{\"op\":\"recv\",\"channel\":\"c\",\"max\":2,\"owner\":\"a\"}", NULL, NULL,
                      NULL),
                 200);
    cr_assert_eq(exec(&s, OAP_APP_MAILBOX,
                      "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[1,2],\"owner\":\"b\"}", NULL,
                      &pos, &a),
                 200);
    json_decref(a);
    cr_assert_eq(pos, 0, "nothing acked, nothing logged");
    cr_assert_eq(exec(&s, OAP_APP_MAILBOX,
                      "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[2,9],\"owner\":\"a\"}", NULL,
                      &pos, NULL),
                 200);
    cr_assert_gt(pos, 0);
    cr_assert_eq(wal__flush_sync(s.w), 0);
    restart(&s);
    cr_assert_str_eq(live(&s, "c"), "1");
    cr_assert_eq(
        exec(&s, OAP_APP_MAILBOX, "{\"op\":\"peek\",\"channel\":\"c\",\"max\":1}", NULL, NULL, &a),
        200);
    json_t *m = json_array_get(json_object_get(a, "messages"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(m, "type")), "text/plain");
    json_decref(a);
    finish(&s);
}

Test(wal, reads_refusals_and_duplicates_are_not_logged)
{
    struct svc s = {0};
    int64_t pos = -1;
    start(&s, NULL);
    send_msg(&s, "c", "k", "body");
    uint64_t n = wal_stats(s.w)->appended;
    const char *none[] = {
        "{\"op\":\"peek\",\"channel\":\"c\",\"max\":5}",
        "{\"op\":\"recv\",\"channel\":\"c\",\"max\":5}",
        "{\"op\":\"send\",\"channel\":\"c\",\"key\":\"k\"}", /* duplicate: 200 */
        "{\"op\":\"send\",\"channel\":\"bad\\nname\"}",      /* 400 */
        "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[]}",     /* nothing acked */
        "{\"op\":\"ack\",\"channel\":\"nope\",\"ids\":[1]}", /* 404 */
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        exec(&s, OAP_APP_MAILBOX, none[i], "body", &pos, NULL);
        cr_assert_eq(pos, 0, "%s", none[i]);
    }
    cr_assert_eq(wal_stats(s.w)->appended, n);
    exec(&s, OAP_APP_MAILBOX, "{\"op\":\"ack\",\"channel\":\"c\",\"ids\":[1]}", NULL, &pos, NULL);
    cr_assert_gt(pos, 0);
    finish(&s);
}

Test(wal, a_torn_last_record_is_cut_off_at_any_offset)
{
    struct svc s = {0};
    char name[] = "log.0000000000000001", path[128];
    start(&s, NULL);
    send_msg(&s, "c", NULL, "first");
    send_msg(&s, "c", "key", "second");
    cr_assert_eq(wal__flush_sync(s.w), 0);
    off_t whole = file_size(&s, name);
    send_msg(&s, "c", "key3", "the third message, cut short");
    cr_assert_eq(wal__flush_sync(s.w), 0);
    off_t full = file_size(&s, name);
    crash(&s);

    snprintf(path, sizeof(path), "%s/%s", s.dir, name);
    FILE *f = fopen(path, "rb");
    char *bytes = malloc((size_t)full);
    cr_assert_eq(fread(bytes, 1, (size_t)full, f), (size_t)full);
    fclose(f);
    for (off_t cut = whole; cut < full; cut++) {
        f = fopen(path, "wb");
        cr_assert_eq(fwrite(bytes, 1, (size_t)cut, f), (size_t)cut);
        fclose(f);
        start(&s, s.dir);
        cr_assert_eq(wal_stats(s.w)->replayed, 2, "cut at %lld", (long long)cut);
        cr_assert_eq(wal_stats(s.w)->truncated, (uint64_t)(cut - whole));
        cr_assert_eq(file_size(&s, name), whole, "cut back to the last whole record");
        cr_assert_str_eq(live(&s, "c"), "1,2");
        crash(&s);
    }
    /* Appending goes on after the cut, and replays. */
    start(&s, s.dir);
    cr_assert_eq(send_msg(&s, "c", NULL, "third again"), 3);
    cr_assert_eq(wal__flush_sync(s.w), 0);
    restart(&s);
    cr_assert_str_eq(live(&s, "c"), "1,2,3");
    free(bytes);
    finish(&s);
}

Test(wal, a_damaged_earlier_log_fails_the_start)
{
    struct svc s = {0};
    char err[256] = "", path[128];
    start(&s, NULL);
    send_msg(&s, "c", NULL, "one");
    send_msg(&s, "c", NULL, "two");
    cr_assert_eq(wal__compact_step(s.w, 1), 0); /* log 2 begun */
    send_msg(&s, "c", NULL, "three");
    cr_assert_eq(wal__flush_sync(s.w), 0);
    crash(&s);
    snprintf(path, sizeof(path), "%s/log.0000000000000001", s.dir);
    int fd = open(path, O_WRONLY);
    cr_assert_eq(pwrite(fd, "X", 1, file_size(&s, "log.0000000000000001") - 2), 1);
    close(fd);
    cr_assert_eq(boot(&s, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "does not end cleanly"), "%s", err);
    crash(&s);
    /* A missing link of the chain is refused too. */
    unlink(path);
    cr_assert_eq(boot(&s, err, sizeof(err)), -1);
    cr_assert_null(s.w);
    cr_assert_not_null(strstr(err, "log 1 is missing"), "%s", err);
    finish(&s);
}

/* Changes before a compaction, between each of its steps, and after;
 * then a crash after `steps` steps. */
static void compact_and_crash(struct svc *s, int steps)
{
    for (int i = 1; i <= 10; i++)
        send_msg(s, "c", i == 9 ? "nine" : NULL, "m");
    ack(s, "c", "1,2,3,4");
    send_msg(s, "empty", NULL, "gone");
    ack(s, "empty", "1");
    for (int step = 1; step <= steps; step++) {
        cr_assert_eq(wal__compact_step(s->w, step), 0, "step %d", step);
        if (step == 1) {
            send_msg(s, "c", NULL, "m11");
            ack(s, "c", "5");
        } else if (step == 2) {
            send_msg(s, "c", NULL, "m12");
            ack(s, "c", "6");
        }
    }
    if (steps < 1) {
        send_msg(s, "c", NULL, "m11");
        ack(s, "c", "5");
    }
    if (steps < 2) {
        send_msg(s, "c", NULL, "m12");
        ack(s, "c", "6");
    }
    cr_assert_eq(wal__flush_sync(s->w), 0);
    crash(s);
}

Test(wal, a_crash_between_compaction_steps_loses_nothing)
{
    for (int steps = 0; steps <= 4; steps++) {
        struct svc s = {0};
        start(&s, NULL);
        compact_and_crash(&s, steps);
        start(&s, s.dir);
        cr_assert_str_eq(live(&s, "c"), "7,8,9,10,11,12", "after %d steps", steps);
        cr_assert_eq(send_msg(&s, "c", "nine", "m"), 9, "keys kept (%d steps)", steps);
        cr_assert_eq(send_msg(&s, "c", NULL, "m13"), 13);
        cr_assert_eq(send_msg(&s, "empty", NULL, "again"), 2, "next id of an emptied channel");
        /* Files: a snapshot only once renamed; old ones gone once pruned
         * (at the latest by this start). */
        cr_assert_eq(exists(&s, "snap.0000000000000002"), steps >= 3);
        cr_assert_eq(exists(&s, "log.0000000000000001"), steps < 3);
        cr_assert_eq(exists(&s, "log.0000000000000002"), steps >= 1);
        cr_assert_not(exists(&s, "snap.tmp"));
        finish(&s);
    }
}

Test(wal, index_names_survive_crashes_and_compaction)
{
    struct svc s = {.role = OAP_APP_INDEX};
    struct eng_buf *m = NULL;
    start(&s, NULL);
    cr_assert_eq(
        exec(&s, OAP_APP_INDEX, "{\"op\":\"put\",\"name\":\"a\"}", "{\"v\":1}", NULL, NULL), 201);
    cr_assert_eq(
        exec(&s, OAP_APP_INDEX, "{\"op\":\"put\",\"name\":\"b\"}", "{\"v\":2}", NULL, NULL), 201);
    for (int step = 1; step <= 4; step++) {
        cr_assert_eq(wal__compact_step(s.w, step), 0);
        if (step == 1)
            cr_assert_eq(
                exec(&s, OAP_APP_INDEX, "{\"op\":\"put\",\"name\":\"a\"}", "{\"v\":3}", NULL, NULL),
                200);
    }
    cr_assert_eq(
        exec(&s, OAP_APP_INDEX, "{\"op\":\"put\",\"name\":\"c\"}", "{\"v\":4}", NULL, NULL), 201);
    cr_assert_eq(wal__flush_sync(s.w), 0);
    restart(&s);
    cr_assert_eq(index_count(s.eng.index), 3);
    cr_assert_eq(index_resolve(s.eng.index, "a", 1, &m), ENG_OK);
    cr_assert_eq(m->size, 7);
    cr_assert_eq(memcmp(m->bytes, "{\"v\":3}", 7), 0, "the last put wins");
    eng_buf_unref(m);
    finish(&s);
}

Test(wal, the_directory_is_one_process_and_one_role)
{
    struct svc a = {0}, b = {0};
    char err[256] = "";
    start(&a, NULL);
    send_msg(&a, "c", NULL, "x");
    strcpy(b.dir, a.dir);
    cr_assert_eq(boot(&b, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "another process"), "%s", err);
    cr_assert_eq(wal__flush_sync(a.w), 0);
    crash(&a);
    b.role = OAP_APP_INDEX;
    cr_assert_eq(boot(&b, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "not this service's file"), "%s", err);
    crash(&b);
    finish(&a);
}

/* ---- on a loop ---------------------------------------------------------- */

struct waiter {
    struct wal_waiter ww;
    int *calls;
    int order;
    const struct wal_stats *st;
    uint64_t fsyncs_seen; /* when it was called */
};

static int next_order;

static void on_durable(struct wal_waiter *ww)
{
    struct waiter *t = (struct waiter *)ww;
    (*t->calls)++;
    t->order = ++next_order;
    t->fsyncs_seen = t->st->fsyncs;
}

static void append_wait(struct svc *s, struct waiter *t, int *calls)
{
    int64_t pos;
    exec(s, OAP_APP_MAILBOX, "{\"op\":\"send\",\"channel\":\"c\"}", "payload", &pos, NULL);
    cr_assert_gt(pos, 0);
    t->calls = calls;
    t->st = wal_stats(s->w);
    wal_wait(s->w, &t->ww, (uint64_t)pos, on_durable);
}

static void loop_end(struct svc *s, uv_loop_t *loop)
{
    wal_stop(s->w);
    cr_assert_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(loop), 0, "a clean close: every handle and request done");
}

Test(wal, group_commit_shares_fsyncs)
{
    struct svc s = {0};
    struct waiter t[10] = {0};
    int calls = 0;
    uv_loop_t loop;
    uv_loop_init(&loop);
    start(&s, NULL);
    wal_start(s.w, &loop);
    for (int i = 0; i < 5; i++)
        append_wait(&s, &t[i], &calls);
    cr_assert_eq(calls, 0, "never called inside wal_wait");
    /* One turn: the idle callback hands the five records to one write +
     * fsync. */
    uv_run(&loop, UV_RUN_NOWAIT);
    /* These arrive while that fsync may still run: they go in the next. */
    for (int i = 5; i < 10; i++)
        append_wait(&s, &t[i], &calls);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(calls, 10);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(t[i].order, i + 1, "answered in order");
    cr_assert_eq(wal_stats(s.w)->fsyncs, 2, "two fsyncs for ten records");
    cr_assert_eq(wal_stats(s.w)->waiting, 0);
    uint64_t observed = 0;
    for (int b = 0; b <= WAL_FSYNC_BUCKETS; b++)
        observed += wal_stats(s.w)->fsync_bucket[b];
    cr_assert_eq(observed, 2, "each fsync timed once");
    loop_end(&s, &loop);
    restart(&s);
    cr_assert_str_eq(live(&s, "c"), "1,2,3,4,5,6,7,8,9,10");
    finish(&s);
}

static void close_timer(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
}

Test(wal, without_fsync_an_answer_waits_for_the_write_only)
{
    for (int p = WAL_FSYNC_BATCH; p <= WAL_FSYNC_NONE; p++) {
        struct svc s = {.policy = (enum wal_fsync)p};
        struct waiter t = {0};
        int calls = 0;
        uv_loop_t loop;
        uv_loop_init(&loop);
        start(&s, NULL);
        wal_start(s.w, &loop);
        append_wait(&s, &t, &calls);
        cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
        cr_assert_eq(calls, 1);
        if (p == WAL_FSYNC_BATCH) {
            /* The interval timer syncs what was written. */
            uv_timer_t keep;
            uv_timer_init(&loop, &keep);
            uv_timer_start(&keep, close_timer, 3 * WAL_BATCH_INTERVAL_MS, 0);
            cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
            cr_assert_eq(wal_stats(s.w)->fsyncs, 1);
        } else {
            cr_assert_eq(t.fsyncs_seen, 0, "answered without an fsync");
            cr_assert_eq(wal_stats(s.w)->fsyncs, 0);
        }
        loop_end(&s, &loop);
        restart(&s); /* a process killed after the write loses nothing */
        cr_assert_str_eq(live(&s, "c"), "1");
        finish(&s);
    }
}

Test(wal, compaction_runs_in_the_background)
{
    struct svc s = {.compact_bytes = 2048};
    struct waiter t[200] = {0};
    int calls = 0;
    uv_loop_t loop;
    uv_loop_init(&loop);
    start(&s, NULL);
    wal_start(s.w, &loop);
    /* Ten turns of twenty sends, each turn acking the one before. */
    for (int turn = 0; turn < 10; turn++) {
        for (int i = 0; i < 20; i++)
            append_wait(&s, &t[turn * 20 + i], &calls);
        if (turn > 0) {
            char ids[256];
            size_t w = 0;
            for (int i = 1; i <= 20; i++)
                w += (size_t)snprintf(ids + w, sizeof(ids) - w, "%s%d", i > 1 ? "," : "",
                                      (turn - 1) * 20 + i);
            ack(&s, "c", ids);
        }
        cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    }
    cr_assert_eq(calls, 200);
    const struct wal_stats *st = wal_stats(s.w);
    cr_assert_geq(st->compactions, 1);
    cr_assert_eq(st->compaction_failures, 0);
    cr_assert_gt(st->snapshot_bytes, 0);
    loop_end(&s, &loop);
    restart(&s);
    cr_assert_str_eq(live(&s, "c"), "181,182,183,184,185,186,187,188,189,190,191,192,193,194,"
                                    "195,196,197,198,199,200");
    cr_assert_not(exists(&s, "log.0000000000000001"), "compacted away");
    cr_assert_eq(send_msg(&s, "c", NULL, "next"), 201);
    finish(&s);
}

Test(wal, a_log_that_cannot_be_written_answers_nobody)
{
    struct svc s = {0};
    struct waiter t = {0};
    int calls = 0;
    uv_loop_t loop;
    struct rlimit lim;
    uv_loop_init(&loop);
    start(&s, NULL);
    wal_start(s.w, &loop);
    /* The file may not grow: the write fails with EFBIG. */
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &lim);
    lim.rlim_cur = (rlim_t)file_size(&s, "log.0000000000000001");
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    append_wait(&s, &t, &calls);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(s.failed, 1);
    cr_assert_eq(calls, 0, "the waiting answer is never sent");
    cr_assert_eq(wal_stats(s.w)->waiting, 1);
    /* A change made now cannot be logged: its answer is an error. */
    int64_t pos;
    cr_assert_eq(
        exec_pos(&s, OAP_APP_MAILBOX, "{\"op\":\"send\",\"channel\":\"c\"}", "x", &pos, NULL), 201);
    cr_assert_eq(pos, -1);
    loop_end(&s, &loop);
    finish(&s);
}
