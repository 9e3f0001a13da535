/*
 * Tests for services/durable/walrec: every record type round trips, a frame
 * cut anywhere reads as short, a changed byte never decodes as a record,
 * layouts are exact, limits are refused on both sides. Frames are decoded
 * against a guard page (tests/unit/oap/vec.h), so an over-read crashes.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "services/durable/walrec.h"
#include "tests/unit/oap/vec.h"
#include <zlib.h>

#define B(s) ((struct walrec_bytes){(const uint8_t *)(s), sizeof(s) - 1})

static const uint64_t IDS[] = {1, 7, UINT64_MAX, 0};

/* One record of each type, with every field of its layout set. */
static struct walrec sample(enum walrec_type t)
{
    struct walrec r = {.type = t};
    switch (t) {
    case WALREC_FILE:
        r.magic = WALREC_MAGIC;
        r.version = WALREC_VERSION;
        r.kind = WALREC_KIND_SNAPSHOT;
        r.role = 3;
        r.gen = 0x0102030405060708ull;
        memcpy(r.seed, "0123456789abcdef", WALREC_SEED_BYTES);
        break;
    case WALREC_END: r.count = 12345; break;
    case WALREC_MB_SEND:
        r.name = B("orders");
        r.id = 42;
        r.sent_ms = 1700000000123ull;
        r.key = B("retry-1");
        r.media = B("application/json");
        r.body = B("{\"hello\":[1, 2]}\0binary");
        break;
    case WALREC_MB_ACK:
        r.name = B("orders");
        r.ids = IDS;
        r.nids = 4;
        break;
    case WALREC_MB_CHANNEL:
        r.name = B("c");
        r.next_id = 99;
        break;
    case WALREC_MB_KEY:
        r.name = B("orders");
        r.key = B("k");
        r.id = 3;
        r.expires_ms = 77;
        r.body_hash = 0xfeedfacecafebeefull;
        break;
    case WALREC_IX_PUT:
        r.name = B("user-001");
        r.body = B("{\"parts\":{}}");
        break;
    default: break;
    }
    return r;
}

static bool bytes_eq(struct walrec_bytes a, struct walrec_bytes b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void check_same(const struct walrec *a, const struct walrec *b)
{
    cr_assert_eq(a->type, b->type);
    switch (a->type) {
    case WALREC_FILE:
        cr_assert(a->magic == b->magic && a->version == b->version && a->kind == b->kind &&
                  a->role == b->role && a->gen == b->gen);
        cr_assert_eq(memcmp(a->seed, b->seed, WALREC_SEED_BYTES), 0);
        break;
    case WALREC_END: cr_assert_eq(a->count, b->count); break;
    case WALREC_MB_SEND:
        cr_assert(bytes_eq(a->name, b->name) && bytes_eq(a->key, b->key) &&
                  bytes_eq(a->media, b->media) && bytes_eq(a->body, b->body) && a->id == b->id &&
                  a->sent_ms == b->sent_ms);
        break;
    case WALREC_MB_ACK:
        cr_assert(bytes_eq(a->name, b->name));
        cr_assert_eq(a->nids, b->nids);
        cr_assert_eq(memcmp(a->ids, b->ids, a->nids * sizeof(a->ids[0])), 0);
        break;
    case WALREC_MB_CHANNEL:
        cr_assert(bytes_eq(a->name, b->name) && a->next_id == b->next_id);
        break;
    case WALREC_MB_KEY:
        cr_assert(bytes_eq(a->name, b->name) && bytes_eq(a->key, b->key) && a->id == b->id &&
                  a->expires_ms == b->expires_ms && a->body_hash == b->body_hash);
        break;
    case WALREC_IX_PUT: cr_assert(bytes_eq(a->name, b->name) && bytes_eq(a->body, b->body)); break;
    default: cr_assert_fail("type %d", a->type);
    }
}

static int decode_guarded(const void *p, size_t n, struct walrec *r, size_t *used)
{
    struct guard g;
    int rc = walrec_decode(guard_copy(&g, p, n), n, r, used);
    guard_free(&g);
    return rc;
}

/* The frame of sample(t). */
static struct buf encoded(enum walrec_type t)
{
    struct buf out = {0};
    struct walrec r = sample(t);
    cr_assert_eq(walrec_encode(&out, &r), 0, "type %d", t);
    return out;
}

TestSuite(walrec);

Test(walrec, every_type_round_trips)
{
    struct buf out = {0};
    size_t at = 0;

    for (int t = WALREC_FILE; t < WALREC__TYPES; t++) {
        struct walrec r = sample((enum walrec_type)t);
        cr_assert_eq(walrec_encode(&out, &r), 0, "type %d", t);
    }
    /* Decoded back to back from one buffer, as a file is read. */
    for (int t = WALREC_FILE; t < WALREC__TYPES; t++) {
        struct walrec want = sample((enum walrec_type)t), got;
        size_t used = 0;
        cr_assert_eq(walrec_decode((const uint8_t *)out.p + at, out.n - at, &got, &used), WALREC_OK,
                     "type %d", t);
        check_same(&want, &got);
        at += used;
    }
    cr_assert_eq(at, out.n);
    buf_release(&out);
}

Test(walrec, frame_layout_is_fixed)
{
    struct buf out = encoded(WALREC_MB_CHANNEL);
    /* len 11 (type, str8 "c", u64), crc, type 5, 01 'c', 99 LE. */
    static const uint8_t want[] = {11, 0, 0, 0, 0, 0, 0, 0, 5, 1, 'c', 99, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(out.n, sizeof(want));
    cr_assert_eq(memcmp(out.p, want, 4), 0);
    cr_assert_eq(memcmp(out.p + 8, want + 8, sizeof(want) - 8), 0);
    buf_release(&out);
}

Test(walrec, a_frame_cut_anywhere_is_short)
{
    struct buf out = encoded(WALREC_MB_SEND);
    struct walrec got;
    size_t used;
    for (size_t n = 0; n < out.n; n++)
        cr_assert_eq(decode_guarded(out.p, n, &got, &used), WALREC_SHORT, "cut at %zu", n);
    cr_assert_eq(decode_guarded(out.p, out.n, &got, &used), WALREC_OK);
    cr_assert_eq(used, out.n);
    buf_release(&out);
}

Test(walrec, a_changed_byte_is_never_a_record)
{
    struct buf out = encoded(WALREC_MB_ACK);
    struct walrec got;
    size_t used;
    for (size_t i = 0; i < out.n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            out.p[i] ^= (char)(1 << bit);
            cr_assert_neq(decode_guarded(out.p, out.n, &got, &used), WALREC_OK, "byte %zu bit %d",
                          i, bit);
            out.p[i] ^= (char)(1 << bit);
        }
    }
    buf_release(&out);
}

/* A frame with a right CRC around any type and body. */
static size_t frame(uint8_t *out, uint8_t type, const void *body, size_t n)
{
    uint32_t len = (uint32_t)(1 + n);
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(len >> (8 * i));
    out[8] = type;
    memcpy(out + 9, body, n);
    uLong c = crc32_z(crc32_z(0L, out, 4), out + 8, len);
    for (int i = 0; i < 4; i++)
        out[4 + i] = (uint8_t)(c >> (8 * i));
    return 8 + len;
}

Test(walrec, layouts_are_exact)
{
    uint8_t f[64];
    struct walrec got;
    size_t used;
    /* MB_CHANNEL: str8 + u64. */
    static const uint8_t ok[] = {1, 'c', 1, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(decode_guarded(f, frame(f, WALREC_MB_CHANNEL, ok, sizeof(ok)), &got, &used),
                 WALREC_OK);
    cr_assert_eq(got.next_id, 1);
    static const uint8_t more[] = {1, 'c', 1, 0, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(decode_guarded(f, frame(f, WALREC_MB_CHANNEL, more, sizeof(more)), &got, &used),
                 WALREC_BAD, "a byte past the layout");
    cr_assert_eq(decode_guarded(f, frame(f, WALREC_MB_CHANNEL, ok, sizeof(ok) - 1), &got, &used),
                 WALREC_BAD, "a field cut short");
    static const uint8_t longname[] = {9, 'c', 1, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(
        decode_guarded(f, frame(f, WALREC_MB_CHANNEL, longname, sizeof(longname)), &got, &used),
        WALREC_BAD, "a string past the body");
    cr_assert_eq(decode_guarded(f, frame(f, 0, ok, sizeof(ok)), &got, &used), WALREC_BAD);
    cr_assert_eq(decode_guarded(f, frame(f, WALREC__TYPES, ok, sizeof(ok)), &got, &used),
                 WALREC_BAD);
    /* MB_ACK with more ids than WALREC_IDS_MAX. */
    static const uint8_t many[] = {1, 'c', (WALREC_IDS_MAX + 1) & 0xff, (WALREC_IDS_MAX + 1) >> 8};
    cr_assert_eq(decode_guarded(f, frame(f, WALREC_MB_ACK, many, sizeof(many)), &got, &used),
                 WALREC_BAD);
    /* Lengths: 0 and over the cap are refused before the rest is looked at. */
    static const uint8_t zero[8] = {0};
    cr_assert_eq(decode_guarded(zero, 8, &got, &used), WALREC_BAD);
    uint8_t big[8] = {0};
    uint32_t over = WALREC_MAX_BYTES + 1;
    memcpy(big, &over, 4);
    cr_assert_eq(decode_guarded(big, 8, &got, &used), WALREC_BAD);
}

Test(walrec, encode_refuses_what_does_not_fit)
{
    struct buf out = {0};
    static char name[256], body[WALREC_MAX_BYTES];
    uint64_t ids[WALREC_IDS_MAX + 1] = {0};
    struct walrec r = {.type = WALREC_MB_CHANNEL, .name = {(const uint8_t *)name, 256}};
    cr_assert_eq(walrec_encode(&out, &r), -1);
    r = (struct walrec){
        .type = WALREC_MB_ACK, .name = B("c"), .ids = ids, .nids = WALREC_IDS_MAX + 1};
    cr_assert_eq(walrec_encode(&out, &r), -1);
    r.nids = WALREC_IDS_MAX;
    cr_assert_eq(walrec_encode(&out, &r), 0);
    size_t n = out.n;
    r = (struct walrec){
        .type = WALREC_IX_PUT, .name = B("n"), .body = {(const uint8_t *)body, sizeof(body)}};
    cr_assert_eq(walrec_encode(&out, &r), -1, "frame over WALREC_MAX_BYTES");
    r = (struct walrec){.type = 0};
    cr_assert_eq(walrec_encode(&out, &r), -1);
    cr_assert_eq(out.n, n, "refusals leave out as it was");
    buf_release(&out);
}
