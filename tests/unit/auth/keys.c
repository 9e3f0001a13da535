/*
 * Tests for src/auth/keys.c: the key file format, the 0600 rule, rotation,
 * and that errors never echo a secret.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "auth_test.h"

#define HEX1 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX2 "a500000000000000000000000000000000000000000000000000000000000000005a"

static char dir[64];
static char path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/og-keys-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/root.keys", dir);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

static void write_file(const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_neq(fd, -1);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    cr_assert_eq(chmod(path, mode), 0);
}

static int load(struct cap_keys *k, char *err, size_t errlen)
{
    return cap_keys_load(k, path, err, errlen);
}

TestSuite(keys, .init = setup, .fini = teardown);

Test(keys, loads_ids_comments_and_blanks)
{
    char err[256] = "";
    struct cap_keys *k = cap_keys_new();
    write_file("# root keys\n\n  old-2023 = " HEX1 "  \r\n\t# rotated in:\nnew.2024=" HEX2 "\n",
               0600);
    cr_assert_eq(load(k, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(k->n, 2);
    const struct cap_key *a = cap_keys_find(k, "old-2023", 8);
    const struct cap_key *b = cap_keys_find(k, "new.2024", 8);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_null(cap_keys_find(k, "old", 3));
    /* Stored derived, never raw. */
    uint8_t d[32];
    cr_assert(macaroon_derive_key(SECRET1, 32, d) == 0);
    cr_assert(memcmp(a->derived, d, 32) == 0);
    cr_assert(memcmp(a->derived, SECRET1, 32) != 0);
    cap_keys_free(k);
}

Test(keys, mode_must_have_no_group_or_other_bits)
{
    static const mode_t bad[] = {0640, 0604, 0660, 0644, 0666, 0601, 0610, 0700 | 0004};
    char err[512];
    struct cap_keys *k = cap_keys_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file("k1 = " HEX1 "\n", bad[i]);
        err[0] = '\0';
        cr_assert_eq(load(k, err, sizeof(err)), -1, "mode %o accepted", bad[i]);
        cr_assert_not_null(strstr(err, path), "error does not name the file: %s", err);
        cr_assert_not_null(strstr(err, "0600"), "%s", err);
        cr_assert_eq(k->n, 0);
    }
    write_file("k1 = " HEX1 "\n", 0400);
    cr_assert_eq(load(k, err, sizeof(err)), 0, "%s", err);
    write_file("k1 = " HEX1 "\n", 0600);
    cr_assert_eq(load(k, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(k->n, 1);
    cap_keys_free(k);
}

Test(keys, not_a_file_or_missing)
{
    char err[512];
    struct cap_keys *k = cap_keys_new();
    cr_assert_eq(chmod(dir, 0700), 0);
    cr_assert_eq(cap_keys_load(k, dir, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
    cr_assert_eq(cap_keys_load(k, "/nonexistent/og.keys", err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "/nonexistent/og.keys"), "%s", err);
    cap_keys_free(k);
}

Test(keys, bad_lines_name_the_line_and_hide_the_secret)
{
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"k1 " HEX1 "\n", ":1:"},
        {"# c\nk:1 = " HEX1 "\n", ":2:"},
        {"bad id = " HEX1 "\n", ":1:"},
        {" = " HEX1 "\n", ":1:"},
        {"k1 = " HEX1 "\nk1 = " HEX2 "\n", "twice"},
        {"k1 = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e\n", "32 to"},
        {"k1 = " HEX1 "0\n", "32 to"},
        {"k1 = " HEX1 "zz\n", "not hex"},
        {"k1 = " HEX1 " # comment\n", ":1:"},
        {"# only comments\n\n", "no keys"},
        {"", "no keys"},
    };
    char err[512];
    struct cap_keys *k = cap_keys_new();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(cases[i].text, 0600);
        err[0] = '\0';
        cr_assert_eq(load(k, err, sizeof(err)), -1, "accepted: %s", cases[i].text);
        cr_assert_not_null(strstr(err, cases[i].want), "case %zu: %s", i, err);
        cr_assert_not_null(strstr(err, path), "%s", err);
        cr_assert_null(strstr(err, "0405060708"), "secret in error: %s", err);
        cr_assert_null(strstr(err, "00000000000000"), "secret in error: %s", err);
    }
    cr_assert_eq(k->n, 0);
    cap_keys_free(k);
}

Test(keys, long_lines_and_big_files_refused)
{
    char err[512];
    struct cap_keys *k = cap_keys_new();
    static char text[CAP_KEYFILE_MAX_BYTES + 64];
    memset(text, '#', CAP_KEYFILE_LINE_MAX + 1);
    text[CAP_KEYFILE_LINE_MAX + 1] = '\0';
    write_file(text, 0600);
    cr_assert_eq(load(k, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "line longer"), "%s", err);
    for (size_t i = 0; i < sizeof(text) - 1; i++)
        text[i] = (i % 80 == 79) ? '\n' : '#';
    text[sizeof(text) - 1] = '\0';
    write_file(text, 0600);
    cr_assert_eq(load(k, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "larger than"), "%s", err);
    cap_keys_free(k);
}

Test(keys, failed_load_leaves_set_unchanged)
{
    char err[512];
    struct cap_keys *k = cap_keys_new();
    write_file("k1 = " HEX1 "\n", 0600);
    cr_assert_eq(load(k, err, sizeof(err)), 0);
    uint64_t gen = k->generation;
    uint8_t before[32];
    memcpy(before, k->keys[0].derived, 32);
    write_file("k1 = " HEX2 "\nk2 = nothex\n", 0600);
    cr_assert_eq(load(k, err, sizeof(err)), -1);
    cr_assert_eq(k->n, 1);
    cr_assert_eq(k->generation, gen);
    cr_assert(memcmp(k->keys[0].derived, before, 32) == 0);
    cap_keys_free(k);
}

Test(keys, rotation_old_and_new_both_verify)
{
    char err[512], t1[MACAROON_MAX_TOKEN_CHARS + 1], t2[MACAROON_MAX_TOKEN_CHARS + 1];
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", 1000);
    struct cap_keys *k = cap_keys_new();
    struct cap_mint p = {.key_id = "old",
                         .tenant = "t",
                         .scopes = CAP_SCOPE_VIEW_READ,
                         .expires = 2000,
                         .version = 2};

    write_file("old = " HEX1 "\n", 0600);
    cr_assert_eq(load(k, err, sizeof(err)), 0, "%s", err);
    cr_assert_gt(cap_mint(k, &p, t1, sizeof(t1)), 0);

    /* Rotation: the file now has both keys; the set reloads in place. */
    write_file("old = " HEX1 "\nnew = " HEX2 "\n", 0600);
    cr_assert_eq(load(k, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(k->n, 2);
    p.key_id = "new";
    cr_assert_gt(cap_mint(k, &p, t2, sizeof(t2)), 0);
    cr_assert_eq(cap_verify(k, t1, strlen(t1), &req, &r), CAP_OK);
    cr_assert_str_eq(r.key_id, "old");
    cr_assert_eq(cap_verify(k, t2, strlen(t2), &req, &r), CAP_OK);
    cr_assert_str_eq(r.key_id, "new");

    /* Retiring the old key: a fresh set from a file without it. */
    write_file("new = " HEX2 "\n", 0600);
    struct cap_keys *k2 = cap_keys_new();
    cr_assert_eq(cap_keys_load(k2, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cap_verify(k2, t1, strlen(t1), &req, &r), CAP_E_UNKNOWN_KEY);
    cr_assert_eq(cap_verify(k2, t2, strlen(t2), &req, &r), CAP_OK);

    /* Same id, new secret: old tokens under that id stop verifying. */
    write_file("new = " HEX1 "\n", 0600);
    cr_assert_eq(cap_keys_load(k2, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(k2->n, 1);
    cr_assert_eq(cap_verify(k2, t2, strlen(t2), &req, &r), CAP_E_BAD_SIG);
    cap_keys_free(k);
    cap_keys_free(k2);
}

Test(keys, add_rules_and_generation)
{
    struct cap_keys *k = cap_keys_new();
    struct cap_keys *other = cap_keys_new();
    uint64_t g0 = k->generation;
    cr_assert_neq(g0, other->generation);
    cr_assert_eq(cap_keys_add(k, "a", 1, SECRET1, 31), -1);
    cr_assert_eq(cap_keys_add(k, "a", 1, SECRET1, CAP_SECRET_MAX_BYTES + 1), -1);
    cr_assert_eq(cap_keys_add(k, "a:b", 3, SECRET1, 32), -1);
    cr_assert_eq(cap_keys_add(k, "", 0, SECRET1, 32), -1);
    cr_assert_eq(k->generation, g0);
    cr_assert_eq(cap_keys_add(k, "a", 1, SECRET1, 32), 0);
    cr_assert_neq(k->generation, g0);
    uint64_t g1 = k->generation;
    cr_assert_eq(cap_keys_add(k, "a", 1, SECRET2, 32), 0);
    cr_assert_eq(k->n, 1);
    cr_assert_neq(k->generation, g1);
    char id[16];
    for (int i = 1; i < CAP_KEYS_MAX; i++) {
        snprintf(id, sizeof(id), "k%d", i);
        cr_assert_eq(cap_keys_add(k, id, strlen(id), SECRET1, 32), 0);
    }
    cr_assert_eq(cap_keys_add(k, "one-more", 8, SECRET1, 32), -1);
    cr_assert_eq(cap_keys_add(k, "a", 1, SECRET1, 32), 0, "replacing still works when full");
    cap_keys_free(k);
    cap_keys_free(other);
    cap_keys_free(NULL);
}

Test(keys, random_keys)
{
    uint8_t s1[32], s2[32];
    char t[MACAROON_MAX_TOKEN_CHARS + 1];
    struct cap_result r;
    struct cap_request req = test_req("GET", "/", 1000);
    struct cap_keys *k = cap_keys_new();
    cr_assert_eq(cap_keys_add_random(k, "demo", s1), 0);
    cr_assert_eq(cap_keys_add_random(k, "demo2", s2), 0);
    cr_assert(memcmp(s1, s2, 32) != 0);
    cr_assert(memcmp(k->keys[0].derived, k->keys[1].derived, 32) != 0);
    cr_assert_eq(cap_keys_add_random(k, "bad id", NULL), -1);
    struct cap_mint p = {.key_id = "demo",
                         .tenant = "t",
                         .scopes = CAP_SCOPE_VIEW_READ,
                         .expires = 2000,
                         .version = 2};
    cr_assert_gt(cap_mint(k, &p, t, sizeof(t)), 0);
    cr_assert_eq(cap_verify(k, t, strlen(t), &req, &r), CAP_OK);
    /* The returned secret is the real one: a set built from it agrees. */
    struct cap_keys *k2 = cap_keys_new();
    cr_assert_eq(cap_keys_add(k2, "demo", 4, s1, 32), 0);
    cr_assert_eq(cap_verify(k2, t, strlen(t), &req, &r), CAP_OK);
    cap_keys_free(k);
    cap_keys_free(k2);
}
