/*
 * seed.c — `omnigate seed`: the demo data set into remote services.
 *
 * A blocking client (tools/oapc.h) per endpoint; operations are sent one at
 * a time in demo_generate()'s order, so manifests land after the objects
 * they reference. A service given as an endpoint set ("ADDR,ADDR", or the
 * flag repeated) gets every operation on every endpoint: a set's endpoints
 * serve the same data. Put answers are 201 (new) or 200 (existing, replaced,
 * duplicate): anything ≥ 400 stops the run, since a partly seeded substrate
 * would make every later test confusing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo/demo.h"
#include "ds/op.h"
#include "oapnet/addr.h"
#include "tools/oapc.h"
#include "oap/oap-t.h"
#include "tools/tools_seed.h"

#define SEED_TIMEOUT_MS_DEF 10000

enum { SEED_INDEX, SEED_STORAGE, SEED_MAILBOX, SEED__COUNT };

static const char *const SEED_NAMES[SEED__COUNT] = {"index", "storage", "mailbox"};
static const uint16_t SEED_APPS[SEED__COUNT] = {OAP_APP_INDEX, OAP_APP_STORAGE, OAP_APP_MAILBOX};

struct seed {
    /* Endpoints per service: the flags' values split at commas. */
    char *addr[SEED__COUNT][OAPNET_ADDR_LIST_MAX];
    int n[SEED__COUNT];
    struct oapc conn[SEED__COUNT][OAPNET_ADDR_LIST_MAX];
    int connected[SEED__COUNT];
    unsigned long long ops[SEED__COUNT], bytes[SEED__COUNT];
    char args[4096]; /* the split copies of the flags' values */
    size_t args_len;
};

/* Add the endpoints of one flag value (comma-separated, spaces around
 * each allowed) to service k. Returns 0, or -1 when there are too many or
 * the value is too long or has an empty entry. */
static int seed_add(struct seed *s, int k, const char *v)
{
    size_t len = strlen(v);
    if (len + 1 > sizeof(s->args) - s->args_len)
        return -1;
    char *p = memcpy(s->args + s->args_len, v, len + 1);
    s->args_len += len + 1;
    for (char *save = NULL, *t = strtok_r(p, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        size_t tl = strlen(t);
        while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
            t[--tl] = '\0';
        if (tl == 0 || s->n[k] >= OAPNET_ADDR_LIST_MAX)
            return -1;
        s->addr[k][s->n[k]++] = t;
    }
    return len && v[len - 1] != ',' && v[0] != ',' ? 0 : -1;
}

static int seed_emit(void *arg, const struct proto_op *op, const uint8_t *body, size_t body_len)
{
    struct seed *s = arg;
    struct oapc_resp r;
    uint16_t app = op->app;
    char hdr[DS_OP_HDR_MAX];
    int i;

    for (i = 0; i < SEED__COUNT && SEED_APPS[i] != app; i++)
        ;
    if (i == SEED__COUNT) {
        fprintf(stderr, "omnigate seed: demo operation for unknown app %u\n", app);
        return 1;
    }
    int n = ds_op_write(op, NULL, hdr);
    if (n < 0) {
        fprintf(stderr, "omnigate seed: a demo operation the header writer refuses\n");
        return 1;
    }
    for (int e = 0; e < s->n[i]; e++) {
        struct oapc *c = &s->conn[i][e];
        if (oapc_call(c, app, hdr, (size_t)n, body, body_len, &r) != 0) {
            fprintf(stderr, "omnigate seed: %s at %s: %s: %s\n", SEED_NAMES[i], s->addr[i][e], hdr,
                    c->err);
            return 1;
        }
        if (r.code >= 400 || r.code < 200) {
            fprintf(stderr, "omnigate seed: %s at %s: %s: refused with %d %.*s\n", SEED_NAMES[i],
                    s->addr[i][e], hdr, r.code, (int)r.hdr_len, r.hdr);
            oapc_resp_release(&r);
            return 1;
        }
        oapc_resp_release(&r);
    }
    s->ops[i]++;
    s->bytes[i] += body_len;
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: omnigate seed --index ADDRS --storage ADDRS --mailbox ADDRS "
                    "[--timeout-ms N]\n"
                    "       ADDRS is one endpoint or a comma-separated set (or repeat the flag);\n"
                    "       an endpoint is oap://HOST:PORT, HOST:PORT or unix:/path. Every\n"
                    "       endpoint of a set gets the whole data set.\n");
    return 2;
}

int tool_seed_main(int argc, char **argv)
{
    struct seed s;
    long timeout_ms = SEED_TIMEOUT_MS_DEF;
    int rc = 1;

    memset(&s, 0, sizeof(s));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int k;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        }
        if (i + 1 >= argc)
            return usage();
        if (strcmp(a, "--timeout-ms") == 0) {
            char *end;
            errno = 0;
            timeout_ms = strtol(argv[++i], &end, 10);
            if (errno || *end || timeout_ms < 0 || timeout_ms > 3600000)
                return usage();
            continue;
        }
        for (k = 0; k < SEED__COUNT; k++)
            if (strncmp(a, "--", 2) == 0 && strcmp(a + 2, SEED_NAMES[k]) == 0)
                break;
        if (k == SEED__COUNT)
            return usage();
        if (seed_add(&s, k, argv[++i]) != 0) {
            fprintf(stderr, "omnigate seed: --%s: an empty entry, or more than %d endpoints\n",
                    SEED_NAMES[k], OAPNET_ADDR_LIST_MAX);
            return usage();
        }
    }
    for (int k = 0; k < SEED__COUNT; k++) {
        if (s.n[k] == 0) {
            fprintf(stderr, "omnigate seed: --%s ADDRS is required\n", SEED_NAMES[k]);
            return usage();
        }
    }
    for (int k = 0; k < SEED__COUNT; k++) {
        for (int e = 0; e < s.n[k]; e++) {
            s.connected[k]++;
            if (oapc_connect(&s.conn[k][e], s.addr[k][e], (int)timeout_ms) != 0) {
                fprintf(stderr, "omnigate seed: %s at %s: %s\n", SEED_NAMES[k], s.addr[k][e],
                        s.conn[k][e].err);
                goto out;
            }
        }
    }
    int e = demo_generate(seed_emit, &s);
    if (e != 0) {
        if (e < 0)
            fprintf(stderr, "omnigate seed: out of memory generating the demo data set\n");
        goto out;
    }
    printf("{\"seeded\":true");
    for (int k = 0; k < SEED__COUNT; k++)
        printf(",\"%s\":{\"ops\":%llu,\"bytes\":%llu,\"endpoints\":%d}", SEED_NAMES[k], s.ops[k],
               s.bytes[k], s.n[k]);
    printf("}\n");
    rc = 0;
out:
    for (int k = 0; k < SEED__COUNT; k++)
        for (int j = 0; j < s.connected[k]; j++)
            oapc_release(&s.conn[k][j]);
    return rc;
}
