/*
 * mint — `omnigate mint` and `omnigate verify`; usage in tools_auth.h.
 *
 * Both load the root keys file with the server's loader (same 0600 rule) and
 * never print a secret; verify prints no part of the token either.
 */
#include "tools/tools_auth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth/caveat.h"
#include "auth/keys.h"

struct opt {
    const char *name;
    const char **val; /* NULL: a flag, stored in *flag */
    int *flag;
};

/* "--name value", "--name=value" and flags; the one positional argument
 * lands in *pos. Returns 0 or -1 after printing why. */
static int parse_opts(int argc, char **argv, const struct opt *opts, const char **pos)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || strcmp(a, "-") == 0) {
            if (pos == NULL || *pos != NULL) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], a);
                return -1;
            }
            *pos = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        const struct opt *o = opts;
        while (o->name != NULL && !(strlen(o->name) == n && memcmp(o->name, a, n) == 0))
            o++;
        if (o->name == NULL) {
            fprintf(stderr, "%s: unknown option '%.*s'\n", argv[0], (int)n, a);
            return -1;
        }
        if (o->val == NULL) {
            if (eq != NULL) {
                fprintf(stderr, "%s: %s takes no value\n", argv[0], o->name);
                return -1;
            }
            *o->flag = 1;
        } else if (eq != NULL) {
            *o->val = eq + 1;
        } else if (i + 1 < argc) {
            *o->val = argv[++i];
        } else {
            fprintf(stderr, "%s: %s needs a value\n", argv[0], o->name);
            return -1;
        }
    }
    return 0;
}

/* N[s|m|h|d] → seconds; -1 when invalid or not in 1 s .. 10 years. */
static int64_t parse_duration(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    int64_t mul;
    if (end == s || v <= 0)
        return -1;
    switch (*end) {
    case '\0':
    case 's': mul = 1; break;
    case 'm': mul = 60; break;
    case 'h': mul = 3600; break;
    case 'd': mul = 86400; break;
    default: return -1;
    }
    if (*end != '\0' && end[1] != '\0')
        return -1;
    if (v > 10LL * 366 * 86400 / mul)
        return -1;
    return v * mul;
}

static int parse_now(const char *s, int64_t *now)
{
    if (s == NULL) {
        *now = (int64_t)time(NULL);
        return 0;
    }
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v < 0)
        return -1;
    *now = v;
    return 0;
}

static struct cap_keys *load_keys(const char *tool, const char *path)
{
    char err[512];
    if (path == NULL) {
        fprintf(stderr, "%s: --root-keys FILE is required\n", tool);
        return NULL;
    }
    struct cap_keys *k = cap_keys_new();
    if (k == NULL) {
        fprintf(stderr, "%s: out of memory\n", tool);
        return NULL;
    }
    if (cap_keys_load(k, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", tool, err);
        cap_keys_free(k);
        return NULL;
    }
    return k;
}

int tool_mint_main(int argc, char **argv)
{
    const char *keys_path = NULL, *key_id = NULL, *tenant = NULL, *scope = NULL, *ttl = NULL;
    const char *route = NULL, *method = NULL, *location = NULL, *now_s = NULL;
    int v1 = 0;
    const struct opt opts[] = {
        {"--root-keys", &keys_path, NULL},
        {"--key-id", &key_id, NULL},
        {"--tenant", &tenant, NULL},
        {"--scope", &scope, NULL},
        {"--ttl", &ttl, NULL},
        {"--route", &route, NULL},
        {"--method", &method, NULL},
        {"--location", &location, NULL},
        {"--now", &now_s, NULL},
        {"--v1", NULL, &v1},
        {NULL, NULL, NULL},
    };
    char token[MACAROON_MAX_TOKEN_CHARS + 1];
    struct cap_mint p;
    int64_t now, secs;
    uint32_t scopes;

    if (parse_opts(argc, argv, opts, NULL) < 0)
        return 2;
    if (key_id == NULL || tenant == NULL || scope == NULL || ttl == NULL) {
        fprintf(stderr, "mint: --key-id, --tenant, --scope and --ttl are required\n");
        return 2;
    }
    if (cap_scope_parse(scope, strlen(scope), &scopes) < 0) {
        fprintf(stderr, "mint: --scope '%s': allowed scopes are", scope);
        for (unsigned i = 0; i < CAP_SCOPE_COUNT; i++)
            fprintf(stderr, " %s", cap_scope_name(1u << i));
        fprintf(stderr, "\n");
        return 2;
    }
    secs = parse_duration(ttl);
    if (secs < 0) {
        fprintf(stderr, "mint: --ttl '%s': expected N with unit s, m, h or d\n", ttl);
        return 2;
    }
    if (parse_now(now_s, &now) < 0) {
        fprintf(stderr, "mint: --now '%s': expected unix seconds\n", now_s);
        return 2;
    }
    struct cap_keys *keys = load_keys("mint", keys_path);
    if (keys == NULL)
        return 1;

    p = (struct cap_mint){
        .key_id = key_id,
        .tenant = tenant,
        .scopes = scopes,
        .expires = now + secs,
        .route = route,
        .method = method,
        .location = location,
        .version = v1 ? 1 : 2,
    };
    int rc = cap_mint(keys, &p, token, sizeof(token));
    cap_keys_free(keys);
    if (rc < 0) {
        if (rc == CAP_E_UNKNOWN_KEY)
            fprintf(stderr, "mint: key id '%s' is not in %s\n", key_id, keys_path);
        else
            fprintf(stderr,
                    "mint: cannot issue: check --tenant ([A-Za-z0-9._-]{1,64}), --route "
                    "(starts with '/'), --method (GET HEAD POST PUT DELETE PATCH OPTIONS)\n");
        return 1;
    }
    printf("%s\n", token);
    return 0;
}

/* JSON string body for text we validated to be printable ASCII. */
static void put_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

static int verify_fail(int rc)
{
    printf("{\"ok\":false,\"error\":\"%s\",\"reason\":\"%s\",\"status\":%d}\n", cap_status_code(rc),
           cap_status_reason(rc), cap_status_http(rc));
    return 1;
}

int tool_verify_main(int argc, char **argv)
{
    const char *keys_path = NULL, *method = NULL, *path = NULL, *tenant = NULL, *now_s = NULL;
    const char *token = NULL;
    const struct opt opts[] = {
        {"--root-keys", &keys_path, NULL}, {"--method", &method, NULL}, {"--path", &path, NULL},
        {"--tenant", &tenant, NULL},       {"--now", &now_s, NULL},     {NULL, NULL, NULL},
    };
    char line[MACAROON_MAX_TOKEN_CHARS + 2];
    struct cap_result r;
    int64_t now;

    if (parse_opts(argc, argv, opts, &token) < 0)
        return 2;
    if (token == NULL) {
        fprintf(stderr, "verify: TOKEN (or - for stdin) is required\n");
        return 2;
    }
    if (parse_now(now_s, &now) < 0) {
        fprintf(stderr, "verify: --now '%s': expected unix seconds\n", now_s);
        return 2;
    }
    if (strcmp(token, "-") == 0) {
        if (fgets(line, sizeof(line), stdin) == NULL)
            line[0] = '\0';
        line[strcspn(line, "\r\n")] = '\0';
        token = line;
    }
    struct cap_keys *keys = load_keys("verify", keys_path);
    if (keys == NULL)
        return 2;

    int rc = cap_check_token(keys, token, strlen(token), now, &r);
    cap_keys_free(keys);
    OPENSSL_cleanse(line, sizeof(line));
    if (rc != CAP_OK)
        return verify_fail(rc);

    /* Only the request facets asked about are checked. */
    struct cap_result facet = r;
    if (path == NULL)
        facet.route_len = 0;
    if (method == NULL)
        facet.methods = CAP_METHOD_ALL;
    struct cap_request req = {
        .method = method,
        .method_len = method ? strlen(method) : 0,
        .path = path,
        .path_len = path ? strlen(path) : 0,
        .tenant = tenant,
        .tenant_len = tenant ? strlen(tenant) : 0,
        .now = now,
    };
    rc = cap_check_request(&facet, &req);
    if (rc != CAP_OK)
        return verify_fail(rc);

    printf("{\"ok\":true,\"tenant\":");
    put_json_str(r.tenant);
    printf(",\"scopes\":[");
    int first = 1;
    for (unsigned i = 0; i < CAP_SCOPE_COUNT; i++) {
        if (!(r.scopes & 1u << i))
            continue;
        printf("%s\"%s\"", first ? "" : ",", cap_scope_name(1u << i));
        first = 0;
    }
    printf("],\"key_id\":");
    put_json_str(r.key_id);
    printf(",\"expires\":%lld", (long long)r.expires);
    if (r.route_len) {
        printf(",\"route\":");
        put_json_str(r.route);
    }
    printf("}\n");
    return 0;
}
