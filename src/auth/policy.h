/*
 * policy — the operator's policy bundle (DESIGN §7): ordered allow/deny rules
 * evaluated after the capability check and before any downstream call.
 *
 * A bundle is one JSON object (at most POLICY_MAX_BYTES, duplicate keys
 * refused):
 *
 *   {"version": 1,
 *    "default_action": "allow" | "deny",
 *    "rules": [
 *      {"id": "deny-feed-tenant-x",
 *       "when": {"method": "GET" | ["GET", "HEAD"],
 *                "route":  "/v1/feed/" | "/v1/view/{name}",
 *                "tenant": "acme" | ["a", "b"],
 *                "scope":  "feed.read",
 *                "class":  "anon" | "authed" | "internal"},
 *       "action": "allow" | "deny",
 *       "reason": "human text"}]}
 *
 * version, default_action and rules are required (rules may be empty, at
 * most POLICY_MAX_RULES). In a rule, id and action are required; when and
 * reason are optional (no when, or an empty one, matches every request; no
 * reason reads as the id). Every field present in when must match:
 *
 *   method  one name or a non-empty array from GET HEAD POST PUT DELETE PATCH
 *           OPTIONS (case-sensitive, RFC 9110 §9.1); the request method is
 *           one of them.
 *   route   starts with '/', printable ASCII, at most CAP_ROUTE_MAX bytes.
 *           With a '{' it is a route template ("/v1/view/{name}", each
 *           {param} a non-empty [A-Za-z0-9_] name) and must equal the
 *           template of the route the request matched; without one it is a
 *           byte prefix of the request path ("/v1/feed/").
 *   tenant  one tenant or a non-empty array of at most POLICY_MAX_TENANTS,
 *           each [A-Za-z0-9._-]{1,64}; the token's tenant is one of them. An
 *           anonymous request has no tenant, so such a rule never matches it.
 *   scope   one scope name (CAP_SCOPE_MAP); the token grants it.
 *   class   the request class.
 *
 * Rules are tried in order and the first that matches decides; when none
 * does, default_action decides with rule id and reason "default". Rule ids
 * are [A-Za-z0-9._-]{1,64} and unique; a reason is at most
 * POLICY_MAX_REASON_BYTES of UTF-8 without control characters (it goes into
 * audit events). Anything else — an unknown key at any level, a wrong type,
 * an unknown action, class, method or scope — refuses the whole bundle with
 * a message naming the place ("rules[3].when.method[1]: unknown method
 * \"FETCH\""), so a typo cannot silently widen or narrow the policy.
 *
 * Anonymous requests: the caller must allow an anonymous request (class
 * POLICY_ANON) only when an explicit rule allowed it — such a rule has class
 * "anon" or no class — and never by default_action, so an "allow" default
 * written for token holders does not open the service to everyone.
 * policy_permits() applies that rule.
 *
 * Threads: a struct policy is read-only after parsing; workers may share one
 * and evaluate concurrently. Reload builds a new one and swaps the pointer.
 */
#ifndef AUTH_POLICY_H
#define AUTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_MAX_BYTES        (1024u * 1024u) /* bundle file / text */
#define POLICY_MAX_RULES        1000
#define POLICY_MAX_TENANTS      256 /* per rule */
#define POLICY_MAX_ID_BYTES     64
#define POLICY_MAX_REASON_BYTES 256

enum policy_class { POLICY_ANON, POLICY_AUTHED, POLICY_INTERNAL };

/* "anon", "authed", "internal"; "?" for a value outside the enum. */
const char *policy_class_name(enum policy_class c);

/* The request as the policy sees it. method and route_tmpl are
 * NUL-terminated; route_tmpl is the matched route's template ("/v1/view/{name}")
 * or NULL when none matched; path is the normalised path without query. */
struct policy_input {
    const char *method;
    const char *path;
    size_t path_len;
    const char *route_tmpl;
    const char *tenant; /* NUL-terminated; NULL when anonymous */
    uint32_t scopes;    /* enum cap_scope bits the token grants; 0 when anonymous */
    enum policy_class klass;
};

struct policy_decision {
    bool allow;
    bool explicit_rule;  /* a rule matched (not the default) */
    const char *rule_id; /* "default" when none */
    const char *reason;  /* the rule's reason (its id when it has none); "default" */
};

/* Parse a bundle from json[0..n) (not NUL-terminated). Returns a new policy,
 * or NULL with a one-line message in err[0..errlen) (err may be NULL): the
 * first problem found, with its place. Text over POLICY_MAX_BYTES is refused
 * before it is parsed. */
struct policy *policy_parse(const char *json, size_t n, char *err, size_t errlen);

/* Read a regular file of at most POLICY_MAX_BYTES and policy_parse it. NULL
 * with a message naming path on any failure (open, read, size, parse). */
struct policy *policy_load(const char *path, char *err, size_t errlen);

/* The built-in policy: default_action allow, no rules. NULL when out of
 * memory. Free it like any other. */
struct policy *policy_default(void);

/* Free; NULL is a no-op. Decisions taken from p are invalid afterwards. */
void policy_free(struct policy *p);

/* Decide in for p: the first matching rule, else the default. Allocates
 * nothing and does not touch in's strings past their ends; the pointers
 * written to out live as long as p. */
void policy_eval(const struct policy *p, const struct policy_input *in,
                 struct policy_decision *out);

/* Number of rules in p. */
size_t policy_rule_count(const struct policy *p);

/* Whether the request may proceed given its class and p's decision for it:
 * d->allow, and for an anonymous request only by an explicit rule (see the
 * anonymous-request contract above). */
static inline bool policy_permits(enum policy_class klass, const struct policy_decision *d)
{
    return d->allow && (klass != POLICY_ANON || d->explicit_rule);
}

#endif
