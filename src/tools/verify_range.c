/*
 * verify_range.c — `omnigate verify-range`: check a byte range downloaded
 * through anything (a cache, a CDN, curl -r) against the object's address
 * alone, with its outboard (include/cas/outboard.h).
 *
 *   omnigate verify-range ADDR FIRST-LAST[/SIZE] FILE
 *                         (--outboard FILE | --storage oap://HOST:PORT)
 *
 * FILE holds exactly bytes FIRST..LAST of the object. The outboard (the
 * 32-byte values of its 64 KiB groups, as GET /v1/o/{addr}/outboard serves
 * it) is read from a file or fetched from a storage service; it is first
 * checked against ADDR, then every group the range covers whole is hashed
 * and compared with its value. A group the range covers only in part
 * cannot be checked (its value needs all of its bytes): the tool names the
 * aligned range to fetch instead. The last group's size needs the object's
 * size: from /SIZE (Content-Range's total) or from storage.
 *
 * Exit status: 0 every byte checked and good; 1 a mismatch (bytes or
 * outboard); 2 usage or I/O error; 3 good as far as checked, but some bytes
 * could not be checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas/outboard.h"
#include "oap/oap-t.h"
#include "tools/oapc.h"
#include "tools/tools_oap.h"

#define SIZE_UNKNOWN UINT64_MAX

static int usage(const char *me)
{
    fprintf(stderr,
            "usage: %s ADDR FIRST-LAST[/SIZE] FILE (--outboard FILE | --storage oap://HOST:PORT)\n",
            me);
    return 2;
}

/* The whole of a file, at most max bytes. Returns 0 or an errno value. */
static int read_file(const char *path, uint64_t max, uint8_t **out, size_t *n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return errno;
    struct stat sb;
    if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > max) {
        int e = errno ? errno : EFBIG;
        close(fd);
        return e;
    }
    size_t len = (size_t)sb.st_size, got = 0;
    uint8_t *p = malloc(len ? len : 1);
    if (p == NULL) {
        close(fd);
        return ENOMEM;
    }
    while (got < len) {
        ssize_t r = read(fd, p + got, len - got);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r == 0 ? EIO : errno;
            free(p);
            close(fd);
            return e;
        }
        got += (size_t)r;
    }
    close(fd);
    *out = p;
    *n = len;
    return 0;
}

/* "A-B" or "A-B/S". Returns 0 or -1. */
static int parse_range(const char *s, uint64_t *a, uint64_t *b, uint64_t *size)
{
    char *end;
    errno = 0;
    *size = SIZE_UNKNOWN;
    if (*s < '0' || *s > '9')
        return -1;
    *a = strtoull(s, &end, 10);
    if (errno || *end != '-' || end[1] < '0' || end[1] > '9')
        return -1;
    *b = strtoull(end + 1, &end, 10);
    if (errno || *b < *a)
        return -1;
    if (*end == '/') {
        if (end[1] < '0' || end[1] > '9')
            return -1;
        *size = strtoull(end + 1, &end, 10);
        if (errno || *size <= *b)
            return -1;
    }
    return *end == '\0' ? 0 : -1;
}

/* The outboard and size from a storage service. Returns 0, or 2. */
static int fetch_outboard(const char *me, const char *addr_s, const char *storage, uint8_t **ob,
                          size_t *n, uint64_t *size)
{
    struct oapc c;
    struct oapc_resp r = {0};
    char hdr[128];
    int rc = 2;
    int hn = snprintf(hdr, sizeof(hdr), "{\"op\":\"outboard\",\"obj\":\"%s\"}", addr_s);
    if (oapc_connect(&c, storage, 10000) != 0 ||
        oapc_call(&c, OAP_APP_STORAGE, hdr, (size_t)hn, NULL, 0, &r) != 0) {
        fprintf(stderr, "%s: %s: %s\n", me, storage, c.err);
        oapc_release(&c);
        return 2;
    }
    json_error_t e;
    json_t *h = json_loadb(r.hdr, r.hdr_len, 0, &e);
    json_t *sz = h ? json_object_get(h, "size") : NULL;
    if (r.code != 200 || !json_is_integer(sz) || json_integer_value(sz) < 0) {
        fprintf(stderr, "%s: storage answered %d %.*s\n", me, r.code, (int)r.hdr_len, r.hdr);
    } else if ((*ob = malloc(r.body_len ? r.body_len : 1)) != NULL) {
        memcpy(*ob, r.body, r.body_len);
        *n = r.body_len;
        *size = (uint64_t)json_integer_value(sz);
        rc = 0;
    }
    json_decref(h);
    oapc_resp_release(&r);
    oapc_release(&c);
    return rc;
}

int tool_verify_range_main(int argc, char **argv)
{
    const char *me = argv[0], *ob_path = NULL, *storage = NULL;
    const char *pos[3];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--outboard") == 0 && i + 1 < argc)
            ob_path = argv[++i];
        else if (strcmp(argv[i], "--storage") == 0 && i + 1 < argc)
            storage = argv[++i];
        else if (npos < 3 && argv[i][0] != '-')
            pos[npos++] = argv[i];
        else
            return usage(me);
    }
    struct cas_addr addr;
    uint64_t first, last, size;
    if (npos != 3 || (ob_path == NULL) == (storage == NULL))
        return usage(me);
    if (cas_addr_parse(&addr, pos[0], strlen(pos[0])) != 0) {
        fprintf(stderr, "%s: ADDR must be b3:<64 lowercase hex>\n", me);
        return 2;
    }
    if (parse_range(pos[1], &first, &last, &size) != 0) {
        fprintf(stderr, "%s: the range must be FIRST-LAST or FIRST-LAST/SIZE\n", me);
        return 2;
    }
    cas_init();
    uint8_t *bytes = NULL, *ob = NULL;
    size_t nbytes = 0, nob = 0;
    int rc = 2, err;
    uint64_t want = last - first + 1;
    if ((err = read_file(pos[2], want, &bytes, &nbytes)) != 0 || nbytes != want) {
        fprintf(stderr, "%s: %s: %s\n", me, pos[2],
                err ? strerror(err) : "does not hold exactly the range's bytes");
        goto out;
    }
    if (storage) {
        uint64_t sz;
        if (fetch_outboard(me, pos[0], storage, &ob, &nob, &sz) != 0)
            goto out;
        if (size != SIZE_UNKNOWN && size != sz) {
            fprintf(stderr, "%s: the object is %" PRIu64 " bytes, not %" PRIu64 "\n", me, sz, size);
            goto out;
        }
        size = sz;
    } else if ((err = read_file(ob_path, 1ull << 30, &ob, &nob)) != 0) {
        fprintf(stderr, "%s: %s: %s\n", me, ob_path, strerror(err));
        goto out;
    }
    rc = 1;
    uint64_t groups = nob / CAS_CV_BYTES;
    if (nob % CAS_CV_BYTES || groups == 1 ||
        (size != SIZE_UNKNOWN && (groups ? cas_groups(size) != groups : cas_groups(size) > 1))) {
        fprintf(stderr, "%s: the outboard does not fit the object's size\n", me);
        goto out;
    }
    if (groups == 0) {
        /* One group or none: the object's hash is its only proof. */
        struct cas_addr got;
        if (first != 0 || (size != SIZE_UNKNOWN && last + 1 != size) || want > CAS_GROUP_BYTES) {
            fprintf(stderr, "%s: an object of one group is checked whole: fetch all of it\n", me);
            rc = 3;
            goto out;
        }
        cas_hash(bytes, nbytes, &got);
        if (!cas_addr_equal(&got, &addr) && size == SIZE_UNKNOWN) {
            fprintf(stderr,
                    "%s: an object of one group is checked whole: these bytes are not all of "
                    "it, or not its bytes; give FIRST-LAST/SIZE to tell\n",
                    me);
            rc = 3;
            goto out;
        }
        if (!cas_addr_equal(&got, &addr)) {
            fprintf(stderr, "%s: bytes %" PRIu64 "-%" PRIu64 " do not match %s\n", me, first, last,
                    pos[0]);
            goto out;
        }
        printf("ok: bytes %" PRIu64 "-%" PRIu64 " of %s (the whole object)\n", first, last, pos[0]);
        rc = 0;
        goto out;
    }
    if (!cas_outboard_verify(&addr, groups, ob)) {
        fprintf(stderr, "%s: the outboard does not match %s\n", me, pos[0]);
        goto out;
    }
    if (last >= groups * CAS_GROUP_BYTES) {
        fprintf(stderr, "%s: the range ends past the object's last group\n", me);
        goto out;
    }
    uint64_t checked = 0, lo = UINT64_MAX, hi = 0, need_lo = UINT64_MAX, need_hi = 0;
    for (uint64_t g = first / CAS_GROUP_BYTES; g <= last / CAS_GROUP_BYTES; g++) {
        uint64_t start = g * CAS_GROUP_BYTES;
        uint64_t gsz = g + 1 < groups ? CAS_GROUP_BYTES : size != SIZE_UNKNOWN ? size - start : 0;
        if (gsz == 0 || start < first || start + gsz - 1 > last) {
            /* Partly in the range (or of unknown size): cannot be checked. */
            uint64_t end = gsz ? start + gsz - 1 : last;
            need_lo = need_lo < start ? need_lo : start;
            need_hi = need_hi > end ? need_hi : end;
            continue;
        }
        uint8_t cv[CAS_CV_BYTES];
        cas_group_cv(bytes + (start - first), (size_t)gsz, g, cv);
        if (memcmp(cv, ob + g * CAS_CV_BYTES, CAS_CV_BYTES) != 0) {
            fprintf(stderr,
                    "%s: bytes %" PRIu64 "-%" PRIu64 " (group %" PRIu64 ") do not match %s\n", me,
                    start, start + gsz - 1, g, pos[0]);
            goto out;
        }
        checked += gsz;
        lo = lo < start ? lo : start;
        hi = start + gsz - 1;
    }
    if (checked)
        printf("ok: bytes %" PRIu64 "-%" PRIu64 " of %s\n", lo, hi, pos[0]);
    rc = 0;
    if (checked < want) {
        fprintf(stderr,
                "%s: %" PRIu64 " of the %" PRIu64
                " bytes are in groups the range covers only in part%s; to check them, fetch "
                "bytes %" PRIu64 "-%" PRIu64 "%s\n",
                me, want - checked, want, size == SIZE_UNKNOWN ? " (or of unknown size)" : "",
                need_lo < first ? need_lo : first, need_hi > last ? need_hi : last,
                size == SIZE_UNKNOWN ? " and give FIRST-LAST/SIZE" : "");
        rc = 3;
    }
out:
    free(bytes);
    free(ob);
    return rc;
}
