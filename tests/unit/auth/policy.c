/*
 * Tests for src/auth/policy.c: each `when` field alone and together, first
 * match, defaults, the anonymous contract, every parse error with its
 * message, the size and count caps, loading files, the example bundle in
 * testing/policy/, and a long evaluation run.
 */
#include <stdlib.h>

#include "auth/policy.h"
#include "auth_test.h"

#define EXAMPLE "testing/policy/example.json"

static char err[256];

TestSuite(policy);

/* Parse a bundle that must be valid. */
static struct policy *ok(const char *json)
{
    err[0] = 'x';
    struct policy *p = policy_parse(json, strlen(json), err, sizeof(err));
    cr_assert(p != NULL, "%s: %s", json, err);
    cr_assert_str_eq(err, "");
    return p;
}

/* Parse a bundle that must be refused with exactly msg. */
static void bad(const char *json, const char *msg)
{
    memset(err, 0, sizeof(err));
    struct policy *p = policy_parse(json, strlen(json), err, sizeof(err));
    cr_assert(p == NULL, "accepted: %s", json);
    cr_assert_str_eq(err, msg, "for %s", json);
}

/* A bundle with default `def` and one rule `{"id":"r", <rule>}`. */
static struct policy *one(const char *def, const char *rule)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"version\":1,\"default_action\":\"%s\",\"rules\":[{\"id\":\"r\",%s}]}", def, rule);
    return ok(json);
}

/* An authenticated GET of path for tenant acme with view.read. */
static struct policy_input req(const char *method, const char *path)
{
    return (struct policy_input){.method = method,
                                 .path = path,
                                 .path_len = path ? strlen(path) : 0,
                                 .route_tmpl = NULL,
                                 .tenant = "acme",
                                 .scopes = CAP_SCOPE_VIEW_READ,
                                 .klass = POLICY_AUTHED};
}

static struct policy_input anon(const char *method, const char *path)
{
    struct policy_input in = req(method, path);
    in.tenant = NULL;
    in.scopes = 0;
    in.klass = POLICY_ANON;
    return in;
}

/* Evaluate and return the decision. */
static struct policy_decision eval(const struct policy *p, const struct policy_input *in)
{
    struct policy_decision d;
    memset(&d, 0xa5, sizeof(d));
    policy_eval(p, in, &d);
    return d;
}

/* Does the single rule "r" of p match in? */
static bool hits(const struct policy *p, struct policy_input in)
{
    struct policy_decision d = eval(p, &in);
    if (d.explicit_rule)
        cr_assert_str_eq(d.rule_id, "r");
    else
        cr_assert_str_eq(d.rule_id, "default");
    return d.explicit_rule;
}

/* ------------------------------------------------------------------------ */
/* defaults and names                                                       */

Test(policy, class_names)
{
    cr_assert_str_eq(policy_class_name(POLICY_ANON), "anon");
    cr_assert_str_eq(policy_class_name(POLICY_AUTHED), "authed");
    cr_assert_str_eq(policy_class_name(POLICY_INTERNAL), "internal");
    cr_assert_str_eq(policy_class_name((enum policy_class)7), "?");
}

Test(policy, builtin_default_allows)
{
    struct policy *p = policy_default();
    cr_assert(p != NULL);
    cr_assert_eq(policy_rule_count(p), 0);
    struct policy_input in = req("DELETE", "/anything");
    struct policy_decision d = eval(p, &in);
    cr_assert(d.allow);
    cr_assert_not(d.explicit_rule);
    cr_assert_str_eq(d.rule_id, "default");
    cr_assert_str_eq(d.reason, "default");
    policy_free(p);
    policy_free(NULL);
}

Test(policy, default_action_both_ways)
{
    struct policy *allow = ok("{\"version\":1,\"default_action\":\"allow\",\"rules\":[]}");
    struct policy *deny = ok("{\"version\":1,\"default_action\":\"deny\",\"rules\":[]}");
    struct policy_input in = req("GET", "/v1/search");
    struct policy_decision d = eval(allow, &in);
    cr_assert(d.allow);
    cr_assert_not(d.explicit_rule);
    d = eval(deny, &in);
    cr_assert_not(d.allow);
    cr_assert_not(d.explicit_rule);
    cr_assert_str_eq(d.rule_id, "default");
    cr_assert_str_eq(d.reason, "default");
    cr_assert_eq(policy_rule_count(deny), 0);
    policy_free(allow);
    policy_free(deny);
}

Test(policy, default_applies_when_no_rule_matches)
{
    struct policy *p = one("deny", "\"when\":{\"method\":\"POST\"},\"action\":\"allow\"");
    struct policy_input in = req("GET", "/");
    struct policy_decision d = eval(p, &in);
    cr_assert_not(d.allow);
    cr_assert_not(d.explicit_rule);
    in.method = "POST";
    d = eval(p, &in);
    cr_assert(d.allow);
    cr_assert(d.explicit_rule);
    policy_free(p);
}

/* ------------------------------------------------------------------------ */
/* each `when` field                                                        */

Test(policy, no_when_and_empty_when_match_everything)
{
    struct policy *a = one("allow", "\"action\":\"deny\"");
    struct policy *b = one("allow", "\"when\":{},\"action\":\"deny\"");
    struct policy_input ins[] = {req("GET", "/"), anon(NULL, NULL), req("PATCH", "/x")};
    ins[2].klass = POLICY_INTERNAL;
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        cr_assert(hits(a, ins[i]));
        cr_assert(hits(b, ins[i]));
        cr_assert_not(eval(a, &ins[i]).allow);
    }
    policy_free(a);
    policy_free(b);
}

Test(policy, method_string)
{
    struct policy *p = one("allow", "\"when\":{\"method\":\"POST\"},\"action\":\"deny\"");
    cr_assert(hits(p, req("POST", "/")));
    cr_assert_not(hits(p, req("GET", "/")));
    cr_assert_not(hits(p, req("post", "/")), "methods are case-sensitive");
    cr_assert_not(hits(p, req("POSTX", "/")));
    cr_assert_not(hits(p, req("BREW", "/")));
    cr_assert_not(hits(p, req(NULL, "/")));
    policy_free(p);
}

Test(policy, method_array)
{
    struct policy *p =
        one("allow", "\"when\":{\"method\":[\"GET\",\"HEAD\",\"OPTIONS\"]},\"action\":\"deny\"");
    cr_assert(hits(p, req("GET", "/")));
    cr_assert(hits(p, req("HEAD", "/")));
    cr_assert(hits(p, req("OPTIONS", "/")));
    cr_assert_not(hits(p, req("PUT", "/")));
    cr_assert_not(hits(p, req("DELETE", "/")));
    cr_assert_not(hits(p, req("PATCH", "/")));
    cr_assert_not(hits(p, req("POST", "/")));
    policy_free(p);

    /* Every method the table knows can be named. */
    p = one("allow", "\"when\":{\"method\":[\"GET\",\"HEAD\",\"POST\",\"PUT\",\"DELETE\","
                     "\"PATCH\",\"OPTIONS\"]},\"action\":\"deny\"");
    const char *all[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < 7; i++)
        cr_assert(hits(p, req(all[i], "/")), "%s", all[i]);
    cr_assert_not(hits(p, req("TRACE", "/")));
    policy_free(p);
}

Test(policy, route_prefix)
{
    struct policy *p = one("allow", "\"when\":{\"route\":\"/v1/feed/\"},\"action\":\"deny\"");
    cr_assert(hits(p, req("GET", "/v1/feed/")));
    cr_assert(hits(p, req("GET", "/v1/feed/news")));
    cr_assert(hits(p, req("GET", "/v1/feed/news/x")));
    cr_assert_not(hits(p, req("GET", "/v1/feed")));
    cr_assert_not(hits(p, req("GET", "/v1/fee")));
    cr_assert_not(hits(p, req("GET", "/v1/Feed/news")));
    cr_assert_not(hits(p, req("GET", "/v2/feed/news")));
    cr_assert_not(hits(p, req("GET", NULL)));
    /* path_len bounds the path, not its NUL. */
    struct policy_input in = req("GET", "/v1/feed/news");
    in.path_len = 8;
    cr_assert_not(hits(p, in));
    in.path_len = 9;
    cr_assert(hits(p, in));
    /* A prefix rule ignores the route template. */
    in = req("GET", "/v1/view/home");
    in.route_tmpl = "/v1/feed/{channel}";
    cr_assert_not(hits(p, in));
    policy_free(p);
}

Test(policy, route_prefix_does_not_read_past_path)
{
    struct policy *p =
        one("allow", "\"when\":{\"route\":\"/v1/feed/news/long\"},\"action\":\"deny\"");
    struct guard g;
    guard_init(&g, "/v1/feed/", 9);
    struct policy_input in = req("GET", NULL);
    in.path = (const char *)g.p;
    in.path_len = 9;
    cr_assert_not(hits(p, in));
    guard_release(&g);
    guard_init(&g, "/v1/feed/news/long", 18);
    in.path = (const char *)g.p;
    in.path_len = 18;
    cr_assert(hits(p, in));
    guard_release(&g);
    policy_free(p);
}

Test(policy, route_template)
{
    struct policy *p = one("allow", "\"when\":{\"route\":\"/v1/view/{name}\"},\"action\":\"deny\"");
    struct policy_input in = req("GET", "/v1/view/home");
    cr_assert_not(hits(p, in), "no template: no match");
    in.route_tmpl = "/v1/view/{name}";
    cr_assert(hits(p, in));
    in.route_tmpl = "/v1/view/{name}/x";
    cr_assert_not(hits(p, in), "equality, not prefix");
    in.route_tmpl = "/v1/view/{nam}";
    cr_assert_not(hits(p, in));
    in.route_tmpl = "/v1/index/{name}";
    cr_assert_not(hits(p, in));
    /* The path is not looked at: a template is not a prefix of the path. */
    in = req("GET", "/v1/view/{name}");
    cr_assert_not(hits(p, in));
    in.path = "/elsewhere";
    in.path_len = 10;
    in.route_tmpl = "/v1/view/{name}";
    cr_assert(hits(p, in));
    policy_free(p);

    /* Several parameters and a suffix are fine in a template. */
    p = one("allow", "\"when\":{\"route\":\"/v1/mailbox/{channel}/ack\"},\"action\":\"deny\"");
    in = req("POST", "/v1/mailbox/c/ack");
    in.route_tmpl = "/v1/mailbox/{channel}/ack";
    cr_assert(hits(p, in));
    in.route_tmpl = "/v1/mailbox/{channel}";
    cr_assert_not(hits(p, in));
    policy_free(p);
}

Test(policy, tenant_string)
{
    struct policy *p = one("allow", "\"when\":{\"tenant\":\"acme\"},\"action\":\"deny\"");
    cr_assert(hits(p, req("GET", "/")));
    struct policy_input in = req("GET", "/");
    in.tenant = "acme2";
    cr_assert_not(hits(p, in));
    in.tenant = "acm";
    cr_assert_not(hits(p, in));
    in.tenant = "ACME";
    cr_assert_not(hits(p, in));
    cr_assert_not(hits(p, anon("GET", "/")), "anonymous has no tenant");
    in.tenant = NULL;
    in.klass = POLICY_INTERNAL;
    cr_assert_not(hits(p, in));
    policy_free(p);
}

Test(policy, tenant_array)
{
    struct policy *p =
        one("allow", "\"when\":{\"tenant\":[\"a\",\"b.c\",\"d_e-f\"]},\"action\":\"deny\"");
    struct policy_input in = req("GET", "/");
    const char *yes[] = {"a", "b.c", "d_e-f"};
    for (size_t i = 0; i < 3; i++) {
        in.tenant = yes[i];
        cr_assert(hits(p, in), "%s", yes[i]);
    }
    const char *no[] = {"", "b", "acme", "d_e-", "aa"};
    for (size_t i = 0; i < 5; i++) {
        in.tenant = no[i];
        cr_assert_not(hits(p, in), "%s", no[i]);
    }
    cr_assert_not(hits(p, anon("GET", "/")));
    policy_free(p);
}

Test(policy, tenant_array_at_cap)
{
    char *json = malloc(64 * 1024);
    cr_assert(json != NULL);
    size_t n = (size_t)sprintf(json, "{\"version\":1,\"default_action\":\"allow\",\"rules\":["
                                     "{\"id\":\"r\",\"action\":\"deny\",\"when\":{\"tenant\":[");
    for (int i = 0; i < POLICY_MAX_TENANTS; i++)
        n += (size_t)sprintf(json + n, "%s\"t%d\"", i ? "," : "", i);
    strcpy(json + n, "]}}]}");
    struct policy *p = ok(json);
    struct policy_input in = req("GET", "/");
    in.tenant = "t255";
    cr_assert(hits(p, in));
    in.tenant = "t256";
    cr_assert_not(hits(p, in));
    policy_free(p);

    strcpy(json + n, ",\"t256\"]}}]}");
    bad(json, "rules[0].when.tenant: 257 entries, at most 256");
    free(json);
}

Test(policy, scope)
{
    struct policy *p = one("allow", "\"when\":{\"scope\":\"feed.read\"},\"action\":\"deny\"");
    struct policy_input in = req("GET", "/");
    in.scopes = CAP_SCOPE_FEED_READ;
    cr_assert(hits(p, in));
    in.scopes = CAP_SCOPE_ALL;
    cr_assert(hits(p, in));
    in.scopes = CAP_SCOPE_VIEW_READ | CAP_SCOPE_FEED_READ | CAP_SCOPE_MAILBOX_WRITE;
    cr_assert(hits(p, in));
    in.scopes = CAP_SCOPE_ALL & ~(uint32_t)CAP_SCOPE_FEED_READ;
    cr_assert_not(hits(p, in));
    in.scopes = 0;
    cr_assert_not(hits(p, in));
    cr_assert_not(hits(p, anon("GET", "/")));
    policy_free(p);

    /* Every scope name is accepted and maps to its bit. */
    for (unsigned i = 0; i < CAP_SCOPE_COUNT; i++) {
        char rule[128];
        snprintf(rule, sizeof(rule), "\"when\":{\"scope\":\"%s\"},\"action\":\"deny\"",
                 cap_scope_name(1u << i));
        p = one("allow", rule);
        in.scopes = 1u << i;
        cr_assert(hits(p, in), "%s", cap_scope_name(1u << i));
        in.scopes = CAP_SCOPE_ALL & ~(1u << i);
        cr_assert_not(hits(p, in), "%s", cap_scope_name(1u << i));
        policy_free(p);
    }
}

Test(policy, class)
{
    const char *names[] = {"anon", "authed", "internal"};
    for (int c = 0; c < 3; c++) {
        char rule[128];
        snprintf(rule, sizeof(rule), "\"when\":{\"class\":\"%s\"},\"action\":\"deny\"", names[c]);
        struct policy *p = one("allow", rule);
        for (int k = 0; k < 3; k++) {
            struct policy_input in = req("GET", "/");
            in.klass = (enum policy_class)k;
            cr_assert_eq(hits(p, in), c == k, "rule %s, request %s", names[c], names[k]);
        }
        policy_free(p);
    }
}

Test(policy, all_fields_are_anded)
{
    struct policy *p = one("allow", "\"when\":{\"method\":[\"PUT\",\"POST\"],\"route\":\"/v1/o\","
                                    "\"tenant\":[\"acme\",\"globex\"],\"scope\":\"object.write\","
                                    "\"class\":\"authed\"},\"action\":\"deny\",\"reason\":\"no\"");
    struct policy_input base = req("PUT", "/v1/o");
    base.scopes = CAP_SCOPE_OBJECT_WRITE | CAP_SCOPE_VIEW_READ;
    cr_assert(hits(p, base));
    struct policy_decision d = eval(p, &base);
    cr_assert_not(d.allow);
    cr_assert_str_eq(d.reason, "no");

    struct policy_input in = base;
    in.method = "GET";
    cr_assert_not(hits(p, in), "method");
    in = base;
    in.path = "/v1/x";
    cr_assert_not(hits(p, in), "route");
    in = base;
    in.tenant = "initech";
    cr_assert_not(hits(p, in), "tenant");
    in = base;
    in.scopes = CAP_SCOPE_OBJECT_READ;
    cr_assert_not(hits(p, in), "scope");
    in = base;
    in.klass = POLICY_INTERNAL;
    cr_assert_not(hits(p, in), "class");
    policy_free(p);
}

/* ------------------------------------------------------------------------ */
/* order, decisions, the anonymous contract                                 */

Test(policy, first_match_wins)
{
    struct policy *p = ok("{\"version\":1,\"default_action\":\"deny\",\"rules\":["
                          "{\"id\":\"a\",\"when\":{\"route\":\"/v1/feed/x\"},\"action\":\"deny\","
                          "\"reason\":\"first\"},"
                          "{\"id\":\"b\",\"when\":{\"route\":\"/v1/feed/\"},\"action\":\"allow\","
                          "\"reason\":\"second\"},"
                          "{\"id\":\"c\",\"when\":{\"route\":\"/v1/\"},\"action\":\"deny\"},"
                          "{\"id\":\"d\",\"action\":\"allow\"}]}");
    cr_assert_eq(policy_rule_count(p), 4);
    struct {
        const char *path, *id, *reason;
        bool allow;
    } cases[] = {
        {"/v1/feed/xyz", "a", "first", false},
        {"/v1/feed/news", "b", "second", true},
        {"/v1/view/home", "c", "c", false},
        {"/healthz", "d", "d", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_input in = req("GET", cases[i].path);
        struct policy_decision d = eval(p, &in);
        cr_assert(d.explicit_rule);
        cr_assert_str_eq(d.rule_id, cases[i].id, "%s", cases[i].path);
        cr_assert_str_eq(d.reason, cases[i].reason, "%s", cases[i].path);
        cr_assert_eq(d.allow, cases[i].allow, "%s", cases[i].path);
    }
    policy_free(p);
}

Test(policy, reason_defaults_to_id)
{
    struct policy *p = one("allow", "\"action\":\"deny\"");
    struct policy_input in = req("GET", "/");
    struct policy_decision d = eval(p, &in);
    cr_assert_str_eq(d.rule_id, "r");
    cr_assert_str_eq(d.reason, "r");
    policy_free(p);
}

Test(policy, decision_pointers_live_with_policy)
{
    struct policy *p = one("deny", "\"action\":\"allow\",\"reason\":\"ok — ünïcode\"");
    struct policy_input in = req("GET", "/");
    struct policy_decision d = eval(p, &in);
    /* The input's strings may die; the decision's must not depend on them. */
    char method[] = "GET";
    in.method = method;
    d = eval(p, &in);
    memset(method, 0, sizeof(method));
    cr_assert_str_eq(d.reason, "ok — ünïcode");
    cr_assert_str_eq(d.rule_id, "r");
    policy_free(p);
}

Test(policy, anonymous_only_by_explicit_rule)
{
    struct policy *p = one("allow", "\"when\":{\"route\":\"/v1/search\"},\"action\":\"allow\"");
    struct policy_input in = anon("GET", "/v1/search");
    struct policy_decision d = eval(p, &in);
    cr_assert(d.allow && d.explicit_rule);
    cr_assert(policy_permits(POLICY_ANON, &d));

    in = anon("GET", "/v1/view/home");
    d = eval(p, &in);
    cr_assert(d.allow);
    cr_assert_not(d.explicit_rule);
    cr_assert_not(policy_permits(POLICY_ANON, &d), "default allow must not admit anonymous");
    cr_assert(policy_permits(POLICY_AUTHED, &d));
    cr_assert(policy_permits(POLICY_INTERNAL, &d));
    policy_free(p);

    /* A class-"authed" allow does not match anonymous requests at all. */
    p = one("deny", "\"when\":{\"class\":\"authed\"},\"action\":\"allow\"");
    in = anon("GET", "/");
    d = eval(p, &in);
    cr_assert_not(d.explicit_rule);
    cr_assert_not(policy_permits(POLICY_ANON, &d));
    policy_free(p);

    /* An explicit deny stays a deny for everyone. */
    struct policy_decision deny = {false, true, "x", "x"};
    cr_assert_not(policy_permits(POLICY_ANON, &deny));
    cr_assert_not(policy_permits(POLICY_AUTHED, &deny));
}

/* ------------------------------------------------------------------------ */
/* parse errors                                                             */

#define B(rules) "{\"version\":1,\"default_action\":\"allow\",\"rules\":[" rules "]}"

Test(policy, errors_top_level)
{
    bad("", "json: line 1 column 0: '[' or '{' expected near end of file");
    bad("{", "json: line 1 column 1: string or '}' expected near end of file");
    bad("[]", "bundle: must be an object, not an array");
    bad("{\"version\":1,\"default_action\":\"allow\",\"rules\":[],\"extra\":0}",
        "bundle: unknown key \"extra\"");
    bad("{\"default_action\":\"allow\",\"rules\":[]}", "version: missing");
    bad("{\"version\":\"1\",\"default_action\":\"allow\",\"rules\":[]}",
        "version: must be the integer 1, not a string");
    bad("{\"version\":1.0,\"default_action\":\"allow\",\"rules\":[]}",
        "version: must be the integer 1, not a number");
    bad("{\"version\":2,\"default_action\":\"allow\",\"rules\":[]}",
        "version: unsupported version 2 (this build reads 1)");
    bad("{\"version\":1,\"rules\":[]}", "default_action: missing");
    bad("{\"version\":1,\"default_action\":\"permit\",\"rules\":[]}",
        "default_action: unknown action \"permit\" (allow or deny)");
    bad("{\"version\":1,\"default_action\":true,\"rules\":[]}",
        "default_action: must be \"allow\" or \"deny\", not a boolean");
    bad("{\"version\":1,\"default_action\":\"allow\"}",
        "rules: missing (an empty array is allowed)");
    bad("{\"version\":1,\"default_action\":\"allow\",\"rules\":{}}",
        "rules: must be an array, not an object");
    bad("{\"version\":1,\"default_action\":\"allow\",\"rules\":null}",
        "rules: must be an array, not null");
}

Test(policy, errors_duplicate_json_keys)
{
    bad("{\"version\":1,\"version\":1,\"default_action\":\"allow\",\"rules\":[]}",
        "json: line 1 column 22: duplicate object key near '\"version\"'");
    memset(err, 0, sizeof(err));
    const char *j = B("{\"id\":\"a\",\"action\":\"deny\",\"action\":\"allow\"}");
    cr_assert_null(policy_parse(j, strlen(j), err, sizeof(err)));
    cr_assert(strncmp(err, "json: ", 6) == 0 && strstr(err, "duplicate object key"), "%s", err);
}

Test(policy, errors_rule)
{
    bad(B("3"), "rules[0]: must be an object, not a number");
    bad(B("{\"id\":\"a\",\"action\":\"deny\"},[]"), "rules[1]: must be an object, not an array");
    bad(B("{\"action\":\"deny\"}"), "rules[0].id: missing");
    bad(B("{\"id\":7,\"action\":\"deny\"}"), "rules[0].id: must be a string, not a number");
    bad(B("{\"id\":\"\",\"action\":\"deny\"}"),
        "rules[0].id: an id is 1..64 characters of [A-Za-z0-9._-]");
    bad(B("{\"id\":\"has space\",\"action\":\"deny\"}"),
        "rules[0].id: an id is 1..64 characters of [A-Za-z0-9._-]");
    bad(B("{\"id\":\"a/b\",\"action\":\"deny\"}"),
        "rules[0].id: an id is 1..64 characters of [A-Za-z0-9._-]");
    bad(B("{\"id\":\"12345678901234567890123456789012345678901234567890123456789012345\","
          "\"action\":\"deny\"}"),
        "rules[0].id: an id is 1..64 characters of [A-Za-z0-9._-]");
    policy_free(ok(B("{\"id\":\"1234567890123456789012345678901234567890123456789012345678901234\","
                     "\"action\":\"deny\"}")));
    bad(B("{\"id\":\"a\"}"), "rules[0].action: missing");
    bad(B("{\"id\":\"a\",\"action\":\"Allow\"}"),
        "rules[0].action: unknown action \"Allow\" (allow or deny)");
    bad(B("{\"id\":\"a\",\"action\":1}"),
        "rules[0].action: must be \"allow\" or \"deny\", not a number");
    bad(B("{\"id\":\"a\",\"action\":\"deny\",\"why\":\"x\"}"), "rules[0]: unknown key \"why\"");
    bad(B("{\"id\":\"a\",\"action\":\"deny\",\"reason\":5}"),
        "rules[0].reason: must be a string, not a number");
    bad(B("{\"id\":\"a\",\"action\":\"deny\",\"reason\":\"\"}"),
        "rules[0].reason: must be 1..256 bytes");
    bad(B("{\"id\":\"a\",\"action\":\"deny\",\"reason\":\"line\\nbreak\"}"),
        "rules[0].reason: control character at byte 4");
    bad(B("{\"id\":\"a\",\"action\":\"deny\",\"when\":[]}"),
        "rules[0].when: must be an object, not an array");
    bad(B("{\"id\":\"a\",\"action\":\"deny\",\"when\":{\"path\":\"/\"}}"),
        "rules[0].when: unknown key \"path\"");
}

Test(policy, errors_reason_length)
{
    char json[1024], reason[258];
    memset(reason, 'x', 257);
    reason[257] = '\0';
    snprintf(json, sizeof(json), B("{\"id\":\"a\",\"action\":\"deny\",\"reason\":\"%s\"}"), reason);
    bad(json, "rules[0].reason: must be 1..256 bytes");
    reason[256] = '\0';
    snprintf(json, sizeof(json), B("{\"id\":\"a\",\"action\":\"deny\",\"reason\":\"%s\"}"), reason);
    policy_free(ok(json));
}

#define W(when)                                                                                    \
    B("{\"id\":\"a\",\"action\":\"deny\"},{\"id\":\"b\",\"action\":\"deny\",\"when\":" when "}")

Test(policy, errors_when_fields)
{
    bad(W("{\"method\":\"FETCH\"}"), "rules[1].when.method: unknown method \"FETCH\"");
    bad(W("{\"method\":\"get\"}"), "rules[1].when.method: unknown method \"get\"");
    bad(W("{\"method\":[\"GET\",\"BREW\"]}"), "rules[1].when.method[1]: unknown method \"BREW\"");
    bad(W("{\"method\":[]}"), "rules[1].when.method: empty array");
    bad(W("{\"method\":[\"GET\",1]}"), "rules[1].when.method[1]: must be a string, not a number");
    bad(W("{\"method\":{}}"),
        "rules[1].when.method: must be a string or an array of strings, not an object");

    bad(W("{\"route\":1}"), "rules[1].when.route: must be a string, not a number");
    bad(W("{\"route\":[\"/a\"]}"), "rules[1].when.route: must be a string, not an array");
    bad(W("{\"route\":\"\"}"), "rules[1].when.route: must start with '/' and be at most 256 bytes");
    bad(W("{\"route\":\"v1/feed\"}"),
        "rules[1].when.route: must start with '/' and be at most 256 bytes");
    bad(W("{\"route\":\"/v1/a b\"}"), "rules[1].when.route: byte 5 is not printable ASCII");
    bad(W("{\"route\":\"/v1/\\u00e9\"}"), "rules[1].when.route: byte 4 is not printable ASCII");
    bad(W("{\"route\":\"/v1/view/{name\"}"),
        "rules[1].when.route: bad template \"/v1/view/{name\" (each {param} closed, named "
        "[A-Za-z0-9_]+)");
    bad(W("{\"route\":\"/v1/view/{}\"}"),
        "rules[1].when.route: bad template \"/v1/view/{}\" (each {param} closed, named "
        "[A-Za-z0-9_]+)");
    bad(W("{\"route\":\"/v1/view/name}\"}"),
        "rules[1].when.route: bad template \"/v1/view/name}\" (each {param} closed, named "
        "[A-Za-z0-9_]+)");
    bad(W("{\"route\":\"/v1/{a{b}}\"}"),
        "rules[1].when.route: bad template \"/v1/{a{b}}\" (each {param} closed, named "
        "[A-Za-z0-9_]+)");
    bad(W("{\"route\":\"/v1/{a/b}\"}"),
        "rules[1].when.route: bad template \"/v1/{a/b}\" (each {param} closed, named "
        "[A-Za-z0-9_]+)");

    bad(W("{\"tenant\":\"\"}"), "rules[1].when.tenant: a tenant is 1..64 characters of "
                                "[A-Za-z0-9._-]");
    bad(W("{\"tenant\":[\"ok\",\"not ok\"]}"),
        "rules[1].when.tenant[1]: a tenant is 1..64 characters of [A-Za-z0-9._-]");
    bad(W("{\"tenant\":[]}"), "rules[1].when.tenant: empty array");
    bad(W("{\"tenant\":5}"),
        "rules[1].when.tenant: must be a string or an array of strings, not a number");
    bad(W("{\"tenant\":[null]}"), "rules[1].when.tenant[0]: must be a string, not null");

    bad(W("{\"scope\":\"feed.write\"}"), "rules[1].when.scope: unknown scope \"feed.write\"");
    bad(W("{\"scope\":\"view.read,feed.read\"}"),
        "rules[1].when.scope: unknown scope \"view.read,feed.read\"");
    bad(W("{\"scope\":\" view.read\"}"), "rules[1].when.scope: unknown scope \" view.read\"");
    bad(W("{\"scope\":[\"view.read\"]}"), "rules[1].when.scope: must be a string, not an array");

    bad(W("{\"class\":\"admin\"}"),
        "rules[1].when.class: unknown class \"admin\" (anon, authed or internal)");
    bad(W("{\"class\":false}"), "rules[1].when.class: must be a string, not a boolean");
}

Test(policy, errors_duplicate_rule_ids)
{
    bad(B("{\"id\":\"a\",\"action\":\"deny\"},{\"id\":\"b\",\"action\":\"deny\"},"
          "{\"id\":\"a\",\"action\":\"allow\"}"),
        "rules[2].id: duplicate id \"a\" (first at rules[0])");
    /* Ids are case-sensitive. */
    policy_free(ok(B("{\"id\":\"a\",\"action\":\"deny\"},{\"id\":\"A\",\"action\":\"deny\"}")));
}

Test(policy, error_message_truncates_and_err_may_be_null)
{
    const char *j = W("{\"class\":\"admin\"}");
    char small[8];
    memset(small, 'z', sizeof(small));
    cr_assert_null(policy_parse(j, strlen(j), small, sizeof(small)));
    cr_assert_str_eq(small, "rules[1");
    cr_assert_null(policy_parse(j, strlen(j), NULL, 0));
    cr_assert_null(policy_parse(j, strlen(j), small, 0));
}

/* ------------------------------------------------------------------------ */
/* caps                                                                     */

/* A bundle of n rules "r0".."r<n-1>", each denying its own path prefix. */
static char *many_rules(size_t n)
{
    char *json = malloc(64 + n * 80);
    cr_assert(json != NULL);
    size_t k = (size_t)sprintf(json, "{\"version\":1,\"default_action\":\"allow\",\"rules\":[");
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(
            json + k, "%s{\"id\":\"r%zu\",\"when\":{\"route\":\"/p%zu/\"},\"action\":\"deny\"}",
            i ? "," : "", i, i);
    strcpy(json + k, "]}");
    return json;
}

Test(policy, rule_count_cap)
{
    char *json = many_rules(POLICY_MAX_RULES);
    struct policy *p = ok(json);
    cr_assert_eq(policy_rule_count(p), POLICY_MAX_RULES);
    struct policy_input in = req("GET", "/p999/x");
    struct policy_decision d = eval(p, &in);
    cr_assert(d.explicit_rule);
    cr_assert_str_eq(d.rule_id, "r999");
    in = req("GET", "/p1000/x");
    d = eval(p, &in);
    cr_assert_not(d.explicit_rule);
    policy_free(p);
    free(json);

    json = many_rules(POLICY_MAX_RULES + 1);
    bad(json, "rules: 1001 rules, at most 1000");
    free(json);
}

Test(policy, size_cap)
{
    /* A valid bundle padded with blanks to exactly the cap parses... */
    const char *core = "{\"version\":1,\"default_action\":\"deny\",\"rules\":[]}";
    size_t n = POLICY_MAX_BYTES;
    char *json = malloc(n + 1);
    cr_assert(json != NULL);
    memset(json, ' ', n + 1);
    memcpy(json, core, strlen(core));
    struct policy *p = policy_parse(json, n, err, sizeof(err));
    cr_assert(p != NULL, "%s", err);
    policy_free(p);
    /* ...and one byte more is refused before parsing. */
    cr_assert_null(policy_parse(json, n + 1, err, sizeof(err)));
    cr_assert_str_eq(err, "bundle: 1048577 bytes, at most 1048576");
    free(json);
}

/* ------------------------------------------------------------------------ */
/* files                                                                    */

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

Test(policy, load_errors)
{
    cr_assert_null(policy_load("testing/policy/does-not-exist.json", err, sizeof(err)));
    cr_assert_str_eq(err, "testing/policy/does-not-exist.json: No such file or directory");
    cr_assert_null(policy_load("testing/policy", err, sizeof(err)));
    cr_assert_str_eq(err, "testing/policy: not a regular file");

    char dir[] = "/tmp/policy-test-XXXXXX";
    cr_assert(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof(path), "%s/big.json", dir);
    char *big = malloc(POLICY_MAX_BYTES + 1);
    cr_assert(big != NULL);
    memset(big, ' ', POLICY_MAX_BYTES + 1);
    write_file(path, big, POLICY_MAX_BYTES + 1);
    cr_assert_null(policy_load(path, err, sizeof(err)));
    char want[128];
    snprintf(want, sizeof(want), "%s: 1048577 bytes, at most 1048576", path);
    cr_assert_str_eq(err, want);

    const char *broken = "{\"version\":1,\"default_action\":\"allow\",\"rules\":[{\"id\":\"x\"}]}";
    write_file(path, broken, strlen(broken));
    cr_assert_null(policy_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: rules[0].action: missing", path);
    cr_assert_str_eq(err, want);

    write_file(path, "", 0);
    cr_assert_null(policy_load(path, err, sizeof(err)));
    cr_assert(strstr(err, ": json: ") != NULL, "%s", err);

    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rmdir(dir), 0);
    free(big);
}

Test(policy, load_shipped_bundles)
{
    const char *files[] = {"testing/policy/example.json", "testing/policy/deny-by-default.json",
                           "testing/policy/empty.json"};
    size_t counts[] = {4, 3, 0};
    for (size_t i = 0; i < 3; i++) {
        struct policy *p = policy_load(files[i], err, sizeof(err));
        cr_assert(p != NULL, "%s: %s", files[i], err);
        cr_assert_eq(policy_rule_count(p), counts[i], "%s", files[i]);
        policy_free(p);
    }
}

/* The decisions docs/ quote for testing/policy/example.json. */
struct example_case {
    struct policy_input in;
    bool allow, explicit_rule, permits;
    const char *rule;
};

static const struct example_case example_cases[] = {
    /* A suspended tenant loses its feed, and only its feed. */
    {{"GET", "/v1/feed/news", 13, "/v1/feed/{channel}", "suspended-co", CAP_SCOPE_FEED_READ,
      POLICY_AUTHED},
     false,
     true,
     false,
     "deny-feed-tenant-suspended"},
    {{"GET", "/v1/feed/news", 13, "/v1/feed/{channel}", "trial-expired", CAP_SCOPE_FEED_READ,
      POLICY_INTERNAL},
     false,
     true,
     false,
     "deny-feed-tenant-suspended"},
    {{"GET", "/v1/view/home", 13, "/v1/view/{name}", "suspended-co", CAP_SCOPE_VIEW_READ,
      POLICY_AUTHED},
     true,
     false,
     true,
     "default"},
    {{"GET", "/v1/feed/news", 13, "/v1/feed/{channel}", "acme", CAP_SCOPE_FEED_READ, POLICY_AUTHED},
     true,
     false,
     true,
     "default"},
    /* Anonymous search is allowed by its rule; other anonymous requests are
     * allowed by the default only, which does not admit them. */
    {{"GET", "/v1/search", 10, "/v1/search", NULL, 0, POLICY_ANON},
     true,
     true,
     true,
     "allow-anon-search"},
    {{"HEAD", "/v1/search", 10, "/v1/search", NULL, 0, POLICY_ANON},
     true,
     true,
     true,
     "allow-anon-search"},
    {{"POST", "/v1/search", 10, NULL, NULL, 0, POLICY_ANON}, true, false, false, "default"},
    {{"GET", "/v1/view/home", 13, "/v1/view/{name}", NULL, 0, POLICY_ANON},
     true,
     false,
     false,
     "default"},
    {{"GET", "/v1/feed/news", 13, "/v1/feed/{channel}", NULL, 0, POLICY_ANON},
     true,
     false,
     false,
     "default"},
    /* Object writes: authed callers are refused, internal ones are not. */
    {{"PUT", "/v1/o", 5, "/v1/o", "acme", CAP_SCOPE_OBJECT_WRITE | CAP_SCOPE_OBJECT_READ,
      POLICY_AUTHED},
     false,
     true,
     false,
     "deny-authed-object-write"},
    {{"PUT", "/v1/o", 5, "/v1/o", "acme", CAP_SCOPE_OBJECT_WRITE, POLICY_INTERNAL},
     true,
     false,
     true,
     "default"},
    {{"GET", "/v1/o/b3:00", 11, "/v1/o/{addr}", "acme", CAP_SCOPE_OBJECT_WRITE, POLICY_AUTHED},
     true,
     false,
     true,
     "default"},
    {{"PUT", "/v1/o", 5, "/v1/o", "acme", CAP_SCOPE_OBJECT_READ, POLICY_AUTHED},
     true,
     false,
     true,
     "default"},
    /* Views are read-only, whatever the path spells. */
    {{"DELETE", "/v1/view/home", 13, "/v1/view/{name}", "acme", CAP_SCOPE_ALL, POLICY_INTERNAL},
     false,
     true,
     false,
     "deny-view-admin"},
    {{"GET", "/v1/view/home", 13, "/v1/view/{name}", "acme", CAP_SCOPE_ALL, POLICY_INTERNAL},
     true,
     false,
     true,
     "default"},
};
#define NEXAMPLE (sizeof(example_cases) / sizeof(example_cases[0]))

static void check_example(const struct policy *p, const struct example_case *c, size_t i)
{
    struct policy_decision d;
    policy_eval(p, &c->in, &d);
    cr_assert_eq(d.allow, c->allow, "case %zu", i);
    cr_assert_eq(d.explicit_rule, c->explicit_rule, "case %zu", i);
    cr_assert_eq(policy_permits(c->in.klass, &d), c->permits, "case %zu", i);
    cr_assert_str_eq(d.rule_id, c->rule, "case %zu", i);
}

Test(policy, example_bundle)
{
    struct policy *p = policy_load(EXAMPLE, err, sizeof(err));
    cr_assert(p != NULL, "%s", err);
    for (size_t i = 0; i < NEXAMPLE; i++)
        check_example(p, &example_cases[i], i);
    struct policy_decision d;
    policy_eval(p, &example_cases[0].in, &d);
    cr_assert_str_eq(d.reason, "feed access suspended for this tenant");
    policy_free(p);
}

/* Per-request cost: many evaluations over a bundle near the rule cap, the
 * example cases interleaved, every answer checked. */
Test(policy, eval_100k)
{
    struct policy *p = policy_load(EXAMPLE, err, sizeof(err));
    cr_assert(p != NULL, "%s", err);
    char *json = many_rules(POLICY_MAX_RULES);
    struct policy *big = ok(json);
    free(json);

    char path[32];
    unsigned bad_answers = 0;
    for (unsigned i = 0; i < 100000; i++) {
        const struct example_case *c = &example_cases[i % NEXAMPLE];
        struct policy_decision d;
        policy_eval(p, &c->in, &d);
        if (d.allow != c->allow || d.explicit_rule != c->explicit_rule ||
            strcmp(d.rule_id, c->rule) != 0)
            bad_answers++;

        unsigned r = (i * 7919u) % (POLICY_MAX_RULES + 50);
        int n = snprintf(path, sizeof(path), "/p%u/x", r);
        struct policy_input in = req("GET", path);
        in.path_len = (size_t)n;
        policy_eval(big, &in, &d);
        bool want = r < POLICY_MAX_RULES;
        char id[16];
        snprintf(id, sizeof(id), "r%u", r);
        if (d.explicit_rule != want || d.allow == want ||
            strcmp(d.rule_id, want ? id : "default") != 0)
            bad_answers++;
    }
    cr_assert_eq(bad_answers, 0);
    policy_free(big);
    policy_free(p);
}
