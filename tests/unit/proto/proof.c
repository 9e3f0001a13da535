/*
 * proof.c — the storage ops "proof" and "outboard" through the JSON
 * dispatcher: every proof answered climbs to the address, the outboard is
 * every group's value, objects of one group have none, errors have their
 * statuses, and an object loaded back from the data directory answers the
 * same proofs as when it was put.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cas/outboard.h"
#include "engines/proto/proto.h"

#define G CAS_GROUP_BYTES

static struct storage *new_store(const char *dir)
{
    struct storage_opts so = {.mem_cap_bytes = 64 << 20,
                              .max_object_bytes = 16 << 20,
                              .amnesia = dir == NULL,
                              .data_dir = dir};
    int st;
    cas_init();
    struct storage *s = storage_new(&so, &st);
    cr_assert(s);
    return s;
}

static int call(struct storage *s, struct proto_resp *rs, const char *hdr, const void *body,
                size_t n)
{
    struct engines e = {.storage = s};
    struct proto_req rq = {
        .app = 1, .hdr = hdr, .hdr_len = strlen(hdr), .body = body, .body_len = n, .now_ms = 1};
    return proto_handle(&e, &rq, rs);
}

static uint64_t hdr_int(const struct proto_resp *rs, const char *key)
{
    json_t *h = json_loadb(rs->hdr, rs->hdr_len, 0, NULL);
    json_t *v = json_object_get(h, key);
    cr_assert(json_is_integer(v), "%s in %.*s", key, (int)rs->hdr_len, rs->hdr);
    uint64_t x = (uint64_t)json_integer_value(v);
    json_decref(h);
    return x;
}

static uint8_t *object(size_t n)
{
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 2654435761u >> 13);
    return p;
}

static void put(struct storage *s, const uint8_t *p, size_t n, char addr[CAS_ADDR_CHARS + 1])
{
    struct proto_resp rs;
    cr_assert_eq(call(s, &rs, "{\"op\":\"put\"}", p, n), 201);
    json_t *h = json_loadb(rs.hdr, rs.hdr_len, 0, NULL);
    strcpy(addr, json_string_value(json_object_get(h, "obj")));
    json_decref(h);
    proto_resp_release(&rs);
}

/* Every proof of a few ranges of an object climbs to its address. */
static void check_proofs(struct storage *s, const char *addr_s, size_t n)
{
    static const uint64_t RANGES[][2] = {{0, 1},          {0, G},      {G - 1, 2},
                                         {100000, 5000},  {3 * G, G},  {5 * G - 3, 2},
                                         {0, 5 * G + 99}, {5 * G, 99}, {5 * G + 98, 1}};
    struct cas_addr addr;
    cr_assert_eq(cas_addr_parse(&addr, addr_s, strlen(addr_s)), 0);
    for (size_t i = 0; i < sizeof(RANGES) / sizeof(RANGES[0]); i++) {
        char hdr[256];
        struct proto_resp rs;
        snprintf(hdr, sizeof(hdr), "{\"op\":\"proof\",\"obj\":\"%s\",\"off\":%llu,\"len\":%llu}",
                 addr_s, (unsigned long long)RANGES[i][0], (unsigned long long)RANGES[i][1]);
        cr_assert_eq(call(s, &rs, hdr, NULL, 0), 200, "%.*s", (int)rs.hdr_len, rs.hdr);
        uint64_t a = RANGES[i][0] / G, b = (RANGES[i][0] + RANGES[i][1] - 1) / G;
        cr_assert_eq(hdr_int(&rs, "size"), n);
        cr_assert_eq(hdr_int(&rs, "groups"), cas_groups(n));
        cr_assert_eq(hdr_int(&rs, "first"), a);
        cr_assert_eq(hdr_int(&rs, "last"), b);
        cr_assert(cas_proof_verify(&addr, cas_groups(n), a, b, rs.body, rs.body_len), "range %zu",
                  i);
        proto_resp_release(&rs);
    }
}

Test(storage_proof, proofs_and_outboard)
{
    struct storage *s = new_store(NULL);
    size_t n = 5 * G + 99;
    uint8_t *p = object(n);
    char addr_s[CAS_ADDR_CHARS + 1], hdr[160];
    put(s, p, n, addr_s);
    check_proofs(s, addr_s, n);

    struct proto_resp rs;
    snprintf(hdr, sizeof(hdr), "{\"op\":\"outboard\",\"obj\":\"%s\"}", addr_s);
    cr_assert_eq(call(s, &rs, hdr, NULL, 0), 200);
    cr_assert_eq(hdr_int(&rs, "groups"), 6);
    cr_assert_eq(rs.body_len, 6 * CAS_CV_BYTES);
    for (uint64_t g = 0; g < 6; g++) {
        uint8_t cv[CAS_CV_BYTES];
        cas_group_cv(p + g * G, cas_group_size(n, g), g, cv);
        cr_assert(memcmp(cv, rs.body + g * CAS_CV_BYTES, CAS_CV_BYTES) == 0);
    }
    proto_resp_release(&rs);

    /* An empty range has no groups; past the end is 416. */
    snprintf(hdr, sizeof(hdr), "{\"op\":\"proof\",\"obj\":\"%s\",\"off\":%zu}", addr_s, n);
    cr_assert_eq(call(s, &rs, hdr, NULL, 0), 200);
    cr_assert_eq(rs.body_len, 0);
    proto_resp_release(&rs);
    snprintf(hdr, sizeof(hdr), "{\"op\":\"proof\",\"obj\":\"%s\",\"off\":%zu}", addr_s, n + 1);
    cr_assert_eq(call(s, &rs, hdr, NULL, 0), 416);
    proto_resp_release(&rs);
    /* Unknown objects, bad fields. */
    snprintf(hdr, sizeof(hdr), "{\"op\":\"outboard\",\"obj\":\"b3:%064d\"}", 0);
    cr_assert_eq(call(s, &rs, hdr, NULL, 0), 404);
    proto_resp_release(&rs);
    cr_assert_eq(call(s, &rs, "{\"op\":\"proof\",\"obj\":\"b3:12\"}", NULL, 0), 400);
    proto_resp_release(&rs);
    snprintf(hdr, sizeof(hdr), "{\"op\":\"proof\",\"obj\":\"%s\",\"off\":-1}", addr_s);
    cr_assert_eq(call(s, &rs, hdr, NULL, 0), 400);
    proto_resp_release(&rs);

    /* One group: no outboard, no proof. */
    char small_s[CAS_ADDR_CHARS + 1];
    put(s, p, 1000, small_s);
    snprintf(hdr, sizeof(hdr), "{\"op\":\"outboard\",\"obj\":\"%s\"}", small_s);
    cr_assert_eq(call(s, &rs, hdr, NULL, 0), 200);
    cr_assert_eq(hdr_int(&rs, "groups"), 1);
    cr_assert_eq(rs.body_len, 0);
    proto_resp_release(&rs);
    snprintf(hdr, sizeof(hdr), "{\"op\":\"proof\",\"obj\":\"%s\",\"off\":5,\"len\":10}", small_s);
    cr_assert_eq(call(s, &rs, hdr, NULL, 0), 200);
    cr_assert_eq(rs.body_len, 0);
    proto_resp_release(&rs);
    free(p);
    storage_free(s);
}

Test(storage_proof, the_tree_is_rebuilt_when_a_file_is_loaded)
{
    char dir[] = "/tmp/og-proof-XXXXXX";
    cr_assert(mkdtemp(dir));
    struct storage *s = new_store(dir);
    size_t n = 5 * G + 99;
    uint8_t *p = object(n);
    char addr_s[CAS_ADDR_CHARS + 1];
    put(s, p, n, addr_s);
    storage_free(s);
    s = new_store(dir); /* empty RAM: the object comes from its file */
    check_proofs(s, addr_s, n);
    struct storage_stats st;
    storage_stats(s, &st);
    cr_assert_eq(st.disk_loads, 1);
    storage_free(s);
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, addr_s + 3);
    unlink(path);
    rmdir(dir);
    free(p);
}
