/*
 * keys — root key set and key file loader; contract in keys.h.
 */
#include "auth/keys.h"
#include "core/hex.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

/* Process-wide so that two different sets never share a generation. */
static _Atomic uint64_t keys_generation_seq;

struct cap_keys *cap_keys_new(void)
{
    struct cap_keys *k = calloc(1, sizeof(*k));
    if (k != NULL)
        k->generation = atomic_fetch_add(&keys_generation_seq, 1) + 1;
    return k;
}

void cap_keys_free(struct cap_keys *k)
{
    if (k == NULL)
        return;
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

bool cap_keys_id_valid(const char *id, size_t n)
{
    if (n == 0 || n > CAP_KEY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

const struct cap_key *cap_keys_find(const struct cap_keys *k, const char *id, size_t n)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->keys[i].id_len == n && memcmp(k->keys[i].id, id, n) == 0)
            return &k->keys[i];
    return NULL;
}

int cap_keys_add(struct cap_keys *k, const char *id, size_t id_len, const uint8_t *secret, size_t n)
{
    uint8_t derived[MACAROON_KEY_BYTES];

    if (!cap_keys_id_valid(id, id_len) || n < CAP_SECRET_MIN_BYTES || n > CAP_SECRET_MAX_BYTES)
        return -1;
    struct cap_key *slot = (struct cap_key *)cap_keys_find(k, id, id_len);
    if (slot == NULL && k->n == CAP_KEYS_MAX)
        return -1;
    if (macaroon_derive_key(secret, n, derived) < 0)
        return -1;
    if (slot == NULL) {
        slot = &k->keys[k->n++];
        memcpy(slot->id, id, id_len);
        slot->id[id_len] = '\0';
        slot->id_len = id_len;
    }
    OPENSSL_cleanse(slot->derived, sizeof(slot->derived));
    memcpy(slot->derived, derived, sizeof(derived));
    OPENSSL_cleanse(derived, sizeof(derived));
    k->generation = atomic_fetch_add(&keys_generation_seq, 1) + 1;
    return 0;
}

int cap_keys_add_random(struct cap_keys *k, const char *id, uint8_t *secret_out)
{
    uint8_t secret[CAP_SECRET_MIN_BYTES];
    int rc = -1;

    if (RAND_bytes(secret, sizeof(secret)) == 1)
        rc = cap_keys_add(k, id, strlen(id), secret, sizeof(secret));
    if (rc == 0 && secret_out != NULL)
        memcpy(secret_out, secret, sizeof(secret));
    OPENSSL_cleanse(secret, sizeof(secret));
    return rc;
}

/* ------------------------------------------------------------------------ */
/* key file                                                                 */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Read the whole file into a fresh buffer after the mode and size checks.
 * Returns the buffer (caller wipes and frees) or NULL with err set. */
static char *read_key_file(const char *path, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    int fd;

    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd == -1 && errno == EINTR);
    if (fd == -1) {
        set_err(err, errlen, "root keys file %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) == -1) {
        set_err(err, errlen, "root keys file %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "root keys file %s: not a regular file", path);
        goto fail;
    }
    if ((st.st_mode & 077) != 0) {
        set_err(err, errlen,
                "root keys file %s: mode %04o gives group/other access; it must be 0600 "
                "(chmod 600 %s)",
                path, (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    if (st.st_size > CAP_KEYFILE_MAX_BYTES) {
        set_err(err, errlen, "root keys file %s: larger than %d bytes", path,
                CAP_KEYFILE_MAX_BYTES);
        goto fail;
    }
    buf = malloc(CAP_KEYFILE_MAX_BYTES + 1);
    if (buf == NULL) {
        set_err(err, errlen, "root keys file %s: out of memory", path);
        goto fail;
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, CAP_KEYFILE_MAX_BYTES + 1 - got);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1) {
            set_err(err, errlen, "root keys file %s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > CAP_KEYFILE_MAX_BYTES) {
            set_err(err, errlen, "root keys file %s: larger than %d bytes", path,
                    CAP_KEYFILE_MAX_BYTES);
            goto fail;
        }
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
fail:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, CAP_KEYFILE_MAX_BYTES + 1);
        free(buf);
    }
    close(fd);
    return NULL;
}

/* Parse one non-comment line "id = hex" into tmp. Returns 0 or -1 with err. */
static int parse_line(struct cap_keys *tmp, const char *path, int lineno, const char *s, size_t n,
                      char *err, size_t errlen)
{
    uint8_t secret[CAP_SECRET_MAX_BYTES];
    int rc = -1;

    const char *eq = memchr(s, '=', n);
    if (eq == NULL) {
        set_err(err, errlen, "root keys file %s:%d: expected 'id = <hex secret>'", path, lineno);
        return -1;
    }
    const char *id = s, *id_end = eq;
    while (id_end > id && is_blank(id_end[-1]))
        id_end--;
    const char *hex = eq + 1, *hex_end = s + n;
    while (hex < hex_end && is_blank(*hex))
        hex++;
    size_t id_len = (size_t)(id_end - id), hex_len = (size_t)(hex_end - hex);

    if (!cap_keys_id_valid(id, id_len)) {
        set_err(err, errlen,
                "root keys file %s:%d: key id must be 1-%d characters of [A-Za-z0-9._-]", path,
                lineno, CAP_KEY_ID_MAX);
        return -1;
    }
    if (cap_keys_find(tmp, id, id_len) != NULL) {
        set_err(err, errlen, "root keys file %s:%d: key id '%.*s' appears twice", path, lineno,
                (int)id_len, id);
        return -1;
    }
    if (hex_len % 2 != 0 || hex_len / 2 < CAP_SECRET_MIN_BYTES ||
        hex_len / 2 > CAP_SECRET_MAX_BYTES) {
        set_err(err, errlen,
                "root keys file %s:%d: secret of key '%.*s' must be %d to %d bytes of hex", path,
                lineno, (int)id_len, id, CAP_SECRET_MIN_BYTES, CAP_SECRET_MAX_BYTES);
        return -1;
    }
    for (size_t i = 0; i < hex_len / 2; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            set_err(err, errlen, "root keys file %s:%d: secret of key '%.*s' is not hex", path,
                    lineno, (int)id_len, id);
            goto out;
        }
        secret[i] = (uint8_t)(hi << 4 | lo);
    }
    if (tmp->n == CAP_KEYS_MAX) {
        set_err(err, errlen, "root keys file %s:%d: more than %d keys", path, lineno, CAP_KEYS_MAX);
        goto out;
    }
    if (cap_keys_add(tmp, id, id_len, secret, hex_len / 2) < 0) {
        set_err(err, errlen, "root keys file %s:%d: cannot derive key '%.*s'", path, lineno,
                (int)id_len, id);
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    return rc;
}

int cap_keys_load(struct cap_keys *k, const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    int rc = -1;

    char *buf = read_key_file(path, &len, err, errlen);
    if (buf == NULL)
        return -1;
    struct cap_keys *tmp = cap_keys_new();
    if (tmp == NULL) {
        set_err(err, errlen, "root keys file %s: out of memory", path);
        goto out;
    }

    int lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        if (n > CAP_KEYFILE_LINE_MAX) {
            set_err(err, errlen, "root keys file %s:%d: line longer than %d characters", path,
                    lineno, CAP_KEYFILE_LINE_MAX);
            goto out;
        }
        while (n > 0 && is_blank(*line)) {
            line++;
            n--;
        }
        while (n > 0 && is_blank(line[n - 1]))
            n--;
        if (n == 0 || line[0] == '#')
            continue;
        if (parse_line(tmp, path, lineno, line, n, err, errlen) < 0)
            goto out;
    }
    if (tmp->n == 0) {
        set_err(err, errlen, "root keys file %s: no keys", path);
        goto out;
    }
    size_t added = 0;
    for (size_t i = 0; i < tmp->n; i++)
        if (cap_keys_find(k, tmp->keys[i].id, tmp->keys[i].id_len) == NULL)
            added++;
    if (k->n + added > CAP_KEYS_MAX) {
        set_err(err, errlen, "root keys file %s: more than %d keys in all", path, CAP_KEYS_MAX);
        goto out;
    }
    for (size_t i = 0; i < tmp->n; i++) {
        struct cap_key *src = &tmp->keys[i];
        struct cap_key *dst = (struct cap_key *)cap_keys_find(k, src->id, src->id_len);
        if (dst == NULL)
            dst = &k->keys[k->n++];
        OPENSSL_cleanse(dst, sizeof(*dst));
        memcpy(dst, src, sizeof(*dst));
    }
    k->generation = atomic_fetch_add(&keys_generation_seq, 1) + 1;
    rc = 0;
out:
    cap_keys_free(tmp);
    OPENSSL_cleanse(buf, len);
    free(buf);
    return rc;
}
