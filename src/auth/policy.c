/*
 * policy — parse a policy bundle into precomputed rules, and evaluate them
 * without allocating. The bundle language is documented in policy.h.
 *
 * Parsing keeps the jansson document alive for the life of the policy: every
 * string a rule or a decision points at (id, reason, route, tenants) is the
 * document's own, so nothing is copied and decision pointers live as long as
 * the policy. Everything else is reduced at parse time to what a request is
 * tested against: a method bitmask, a scope bitmask, a tenant array, a
 * route prefix or template with its length.
 */
#include "auth/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "auth/caveat.h"

enum {
    HAS_METHOD = 1 << 0,
    HAS_ROUTE = 1 << 1,
    HAS_TENANT = 1 << 2,
    HAS_SCOPE = 1 << 3,
    HAS_CLASS = 1 << 4,
};

struct policy_rule {
    const char *id;
    const char *reason;
    bool allow;
    unsigned has;     /* HAS_* */
    uint32_t methods; /* CAP_METHOD_MAP bits */
    uint32_t scope;   /* one enum cap_scope bit */
    enum policy_class klass;
    bool route_tmpl; /* route is a template compared for equality */
    const char *route;
    size_t route_len;
    const char **tenants; /* ntenants NUL-terminated names */
    size_t ntenants;
};

struct policy {
    json_t *doc; /* owns the strings the rules point at; NULL for the default */
    bool default_allow;
    size_t nrules;
    struct policy_rule *rules;
};

static const char *const method_names[] = {
#define POLICY_METHOD_NAME(bit, name) [bit] = name,
    CAP_METHOD_MAP(POLICY_METHOD_NAME)
#undef POLICY_METHOD_NAME
};
#define NMETHODS (sizeof(method_names) / sizeof(method_names[0]))

static const char *const class_names[] = {
    [POLICY_ANON] = "anon",
    [POLICY_AUTHED] = "authed",
    [POLICY_INTERNAL] = "internal",
};
#define NCLASSES (sizeof(class_names) / sizeof(class_names[0]))

const char *policy_class_name(enum policy_class c)
{
    return (unsigned)c < NCLASSES ? class_names[c] : "?";
}

/* ------------------------------------------------------------------------ */
/* parsing                                                                  */

/* Where a parse error's message goes (err may be NULL). */
struct perr {
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 2, 3))) static void fail(struct perr *e, const char *fmt, ...)
{
    if (e->err == NULL || e->errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->errlen, fmt, ap);
    va_end(ap);
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* [A-Za-z0-9._-]{1,max}: rule ids and tenants (the tenant caveat's syntax). */
static bool name_valid(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i]))
            return false;
    return true;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Report a value of the wrong type at place; returns -1. */
static int wrong_type(struct perr *e, const char *place, const char *want, const json_t *v)
{
    fail(e, "%s: must be %s, not %s", place, want, type_name(v));
    return -1;
}

/* Refuse any key of obj not in keys[]. */
static int check_keys(struct perr *e, const char *place, json_t *obj, const char *const *keys,
                      size_t nkeys)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        size_t i = 0;
        while (i < nkeys && strcmp(k, keys[i]) != 0)
            i++;
        if (i == nkeys) {
            fail(e, "%s: unknown key \"%.64s\"", place, k);
            return -1;
        }
    }
    return 0;
}

/* "allow" → 1, "deny" → 0, anything else → -1 with a message. */
static int parse_action(struct perr *e, const char *place, const json_t *v)
{
    if (!json_is_string(v))
        return wrong_type(e, place, "\"allow\" or \"deny\"", v);
    const char *s = json_string_value(v);
    if (strcmp(s, "allow") == 0)
        return 1;
    if (strcmp(s, "deny") == 0)
        return 0;
    fail(e, "%s: unknown action \"%.64s\" (allow or deny)", place, s);
    return -1;
}

/* Call item(e, place-of-element, element, arg) for a string or for each
 * element of a non-empty array of at most max strings. */
typedef int (*str_item_fn)(struct perr *e, const char *place, const json_t *s, void *arg);

static int for_strings(struct perr *e, const char *place, const json_t *v, size_t max,
                       str_item_fn item, void *arg)
{
    char sub[96];
    if (json_is_string(v))
        return item(e, place, v, arg);
    if (!json_is_array(v))
        return wrong_type(e, place, "a string or an array of strings", v);
    size_t n = json_array_size(v);
    if (n == 0) {
        fail(e, "%s: empty array", place);
        return -1;
    }
    if (n > max) {
        fail(e, "%s: %zu entries, at most %zu", place, n, max);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(v, i);
        snprintf(sub, sizeof(sub), "%s[%zu]", place, i);
        if (!json_is_string(s))
            return wrong_type(e, sub, "a string", s);
        if (item(e, sub, s, arg) < 0)
            return -1;
    }
    return 0;
}

static int method_item(struct perr *e, const char *place, const json_t *s, void *arg)
{
    struct policy_rule *r = arg;
    const char *m = json_string_value(s);
    for (size_t i = 0; i < NMETHODS; i++) {
        if (strcmp(m, method_names[i]) == 0) {
            r->methods |= 1u << i;
            return 0;
        }
    }
    fail(e, "%s: unknown method \"%.32s\"", place, m);
    return -1;
}

static int tenant_item(struct perr *e, const char *place, const json_t *s, void *arg)
{
    struct policy_rule *r = arg;
    if (!name_valid(json_string_value(s), json_string_length(s), CAP_TENANT_MAX)) {
        fail(e, "%s: a tenant is 1..%d characters of [A-Za-z0-9._-]", place, CAP_TENANT_MAX);
        return -1;
    }
    r->tenants[r->ntenants++] = json_string_value(s);
    return 0;
}

/* A template's {param}s: each closed, not nested, named [A-Za-z0-9_]+. */
static bool template_valid(const char *s, size_t n)
{
    bool open = false;
    size_t name = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '{') {
            if (open)
                return false;
            open = true;
            name = 0;
        } else if (c == '}') {
            if (!open || name == 0)
                return false;
            open = false;
        } else if (open) {
            if (!(is_name_char(c) && c != '.' && c != '-'))
                return false;
            name++;
        }
    }
    return !open;
}

static int parse_route(struct perr *e, const char *place, const json_t *v, struct policy_rule *r)
{
    if (!json_is_string(v))
        return wrong_type(e, place, "a string", v);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || s[0] != '/' || n > CAP_ROUTE_MAX) {
        fail(e, "%s: must start with '/' and be at most %d bytes", place, CAP_ROUTE_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            fail(e, "%s: byte %zu is not printable ASCII", place, i);
            return -1;
        }
    }
    r->route_tmpl = memchr(s, '{', n) != NULL || memchr(s, '}', n) != NULL;
    if (r->route_tmpl && !template_valid(s, n)) {
        fail(e, "%s: bad template \"%s\" (each {param} closed, named [A-Za-z0-9_]+)", place, s);
        return -1;
    }
    r->route = s;
    r->route_len = n;
    return 0;
}

static int parse_scope(struct perr *e, const char *place, const json_t *v, struct policy_rule *r)
{
    if (!json_is_string(v))
        return wrong_type(e, place, "a string", v);
    const char *s = json_string_value(v);
    for (unsigned i = 0; i < CAP_SCOPE_COUNT; i++) {
        const char *name = cap_scope_name(1u << i);
        if (name != NULL && strcmp(s, name) == 0) {
            r->scope = 1u << i;
            return 0;
        }
    }
    fail(e, "%s: unknown scope \"%.64s\"", place, s);
    return -1;
}

static int parse_class(struct perr *e, const char *place, const json_t *v, struct policy_rule *r)
{
    if (!json_is_string(v))
        return wrong_type(e, place, "a string", v);
    const char *s = json_string_value(v);
    for (size_t i = 0; i < NCLASSES; i++) {
        if (strcmp(s, class_names[i]) == 0) {
            r->klass = (enum policy_class)i;
            return 0;
        }
    }
    fail(e, "%s: unknown class \"%.64s\" (anon, authed or internal)", place, s);
    return -1;
}

static int parse_when(struct perr *e, const char *rplace, json_t *w, struct policy_rule *r)
{
    static const char *const keys[] = {"method", "route", "tenant", "scope", "class"};
    char place[64];
    json_t *v;

    snprintf(place, sizeof(place), "%s.when", rplace);
    if (!json_is_object(w))
        return wrong_type(e, place, "an object", w);
    if (check_keys(e, place, w, keys, sizeof(keys) / sizeof(keys[0])) < 0)
        return -1;

    if ((v = json_object_get(w, "method")) != NULL) {
        snprintf(place, sizeof(place), "%s.when.method", rplace);
        if (for_strings(e, place, v, SIZE_MAX, method_item, r) < 0)
            return -1;
        r->has |= HAS_METHOD;
    }
    if ((v = json_object_get(w, "route")) != NULL) {
        snprintf(place, sizeof(place), "%s.when.route", rplace);
        if (parse_route(e, place, v, r) < 0)
            return -1;
        r->has |= HAS_ROUTE;
    }
    if ((v = json_object_get(w, "tenant")) != NULL) {
        snprintf(place, sizeof(place), "%s.when.tenant", rplace);
        /* Sized from the JSON before the loop fills it; the count is capped first. */
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        if (n > 0 && n <= POLICY_MAX_TENANTS) {
            r->tenants = calloc(n, sizeof(*r->tenants));
            if (r->tenants == NULL) {
                fail(e, "%s: out of memory", place);
                return -1;
            }
        }
        if (for_strings(e, place, v, POLICY_MAX_TENANTS, tenant_item, r) < 0)
            return -1;
        r->has |= HAS_TENANT;
    }
    if ((v = json_object_get(w, "scope")) != NULL) {
        snprintf(place, sizeof(place), "%s.when.scope", rplace);
        if (parse_scope(e, place, v, r) < 0)
            return -1;
        r->has |= HAS_SCOPE;
    }
    if ((v = json_object_get(w, "class")) != NULL) {
        snprintf(place, sizeof(place), "%s.when.class", rplace);
        if (parse_class(e, place, v, r) < 0)
            return -1;
        r->has |= HAS_CLASS;
    }
    return 0;
}

static int parse_rule(struct perr *e, size_t idx, json_t *o, struct policy_rule *r)
{
    static const char *const keys[] = {"id", "when", "action", "reason"};
    char place[32], field[64];
    json_t *v;

    snprintf(place, sizeof(place), "rules[%zu]", idx);
    if (!json_is_object(o))
        return wrong_type(e, place, "an object", o);
    if (check_keys(e, place, o, keys, sizeof(keys) / sizeof(keys[0])) < 0)
        return -1;

    snprintf(field, sizeof(field), "%s.id", place);
    if ((v = json_object_get(o, "id")) == NULL) {
        fail(e, "%s: missing", field);
        return -1;
    }
    if (!json_is_string(v))
        return wrong_type(e, field, "a string", v);
    if (!name_valid(json_string_value(v), json_string_length(v), POLICY_MAX_ID_BYTES)) {
        fail(e, "%s: an id is 1..%d characters of [A-Za-z0-9._-]", field, POLICY_MAX_ID_BYTES);
        return -1;
    }
    r->id = json_string_value(v);

    snprintf(field, sizeof(field), "%s.action", place);
    if ((v = json_object_get(o, "action")) == NULL) {
        fail(e, "%s: missing", field);
        return -1;
    }
    int a = parse_action(e, field, v);
    if (a < 0)
        return -1;
    r->allow = a == 1;

    r->reason = r->id;
    if ((v = json_object_get(o, "reason")) != NULL) {
        snprintf(field, sizeof(field), "%s.reason", place);
        if (!json_is_string(v))
            return wrong_type(e, field, "a string", v);
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0 || n > POLICY_MAX_REASON_BYTES) {
            fail(e, "%s: must be 1..%d bytes", field, POLICY_MAX_REASON_BYTES);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
                fail(e, "%s: control character at byte %zu", field, i);
                return -1;
            }
        }
        r->reason = s;
    }

    if ((v = json_object_get(o, "when")) != NULL && parse_when(e, place, v, r) < 0)
        return -1;
    return 0;
}

/* The top level; fills p->default_allow, p->rules and p->nrules. */
static int parse_bundle(struct perr *e, json_t *doc, struct policy *p)
{
    static const char *const keys[] = {"version", "default_action", "rules"};
    json_t *v;

    if (!json_is_object(doc))
        return wrong_type(e, "bundle", "an object", doc);
    if (check_keys(e, "bundle", doc, keys, sizeof(keys) / sizeof(keys[0])) < 0)
        return -1;

    if ((v = json_object_get(doc, "version")) == NULL) {
        fail(e, "version: missing");
        return -1;
    }
    if (!json_is_integer(v))
        return wrong_type(e, "version", "the integer 1", v);
    if (json_integer_value(v) != 1) {
        fail(e, "version: unsupported version %lld (this build reads 1)",
             (long long)json_integer_value(v));
        return -1;
    }

    if ((v = json_object_get(doc, "default_action")) == NULL) {
        fail(e, "default_action: missing");
        return -1;
    }
    int a = parse_action(e, "default_action", v);
    if (a < 0)
        return -1;
    p->default_allow = a == 1;

    if ((v = json_object_get(doc, "rules")) == NULL) {
        fail(e, "rules: missing (an empty array is allowed)");
        return -1;
    }
    if (!json_is_array(v))
        return wrong_type(e, "rules", "an array", v);
    size_t n = json_array_size(v);
    if (n > POLICY_MAX_RULES) {
        fail(e, "rules: %zu rules, at most %d", n, POLICY_MAX_RULES);
        return -1;
    }
    if (n == 0)
        return 0;
    p->rules = calloc(n, sizeof(*p->rules));
    if (p->rules == NULL) {
        fail(e, "rules: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        /* Counted before parsing so policy_free releases a half-built rule. */
        p->nrules = i + 1;
        if (parse_rule(e, i, json_array_get(v, i), &p->rules[i]) < 0)
            return -1;
        /* Quadratic, but bounded by POLICY_MAX_RULES and paid once per load. */
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->rules[j].id, p->rules[i].id) == 0) {
                fail(e, "rules[%zu].id: duplicate id \"%s\" (first at rules[%zu])", i,
                     p->rules[i].id, j);
                return -1;
            }
        }
    }
    return 0;
}

struct policy *policy_parse(const char *json, size_t n, char *err, size_t errlen)
{
    struct perr e = {err, errlen};
    json_error_t je;
    struct policy *p = NULL;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (n > POLICY_MAX_BYTES) {
        fail(&e, "bundle: %zu bytes, at most %u", n, POLICY_MAX_BYTES);
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        fail(&e, "bundle: out of memory");
        return NULL;
    }
    p->doc = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je);
    if (p->doc == NULL) {
        fail(&e, "json: line %d column %d: %s", je.line, je.column, je.text);
        goto fail;
    }
    if (parse_bundle(&e, p->doc, p) < 0)
        goto fail;
    return p;

fail:
    policy_free(p);
    return NULL;
}

struct policy *policy_load(const char *path, char *err, size_t errlen)
{
    struct perr e = {err, errlen};
    struct policy *p = NULL;
    char *text = NULL;
    size_t n = 0;
    struct stat st;
    int fd;

    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd == -1 && errno == EINTR);
    if (fd == -1) {
        fail(&e, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) == -1) {
        fail(&e, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(&e, "%s: not a regular file", path);
        goto out;
    }
    if ((uintmax_t)st.st_size > POLICY_MAX_BYTES) {
        fail(&e, "%s: %jd bytes, at most %u", path, (intmax_t)st.st_size, POLICY_MAX_BYTES);
        goto out;
    }
    /* One byte of slack tells a file that grew past the cap after fstat. */
    text = malloc(POLICY_MAX_BYTES + 1);
    if (text == NULL) {
        fail(&e, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, text + n, POLICY_MAX_BYTES + 1 - n);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1) {
            fail(&e, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > POLICY_MAX_BYTES) {
            fail(&e, "%s: more than %u bytes", path, POLICY_MAX_BYTES);
            goto out;
        }
    }
    char msg[256];
    p = policy_parse(text, n, msg, sizeof(msg));
    if (p == NULL)
        fail(&e, "%s: %s", path, msg);

out:
    free(text);
    close(fd);
    return p;
}

struct policy *policy_default(void)
{
    struct policy *p = calloc(1, sizeof(*p));
    if (p != NULL)
        p->default_allow = true;
    return p;
}

void policy_free(struct policy *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nrules; i++)
        free(p->rules[i].tenants);
    free(p->rules);
    json_decref(p->doc);
    free(p);
}

size_t policy_rule_count(const struct policy *p)
{
    return p->nrules;
}

/* ------------------------------------------------------------------------ */
/* evaluation: per request, no allocation                                   */

/* CAP_METHOD_MAP bit of a request method; 0 (matches no method rule) for
 * NULL or a method outside the table. */
static uint32_t method_bit(const char *m)
{
    if (m == NULL)
        return 0;
    for (size_t i = 0; i < NMETHODS; i++)
        if (strcmp(m, method_names[i]) == 0)
            return 1u << i;
    return 0;
}

static bool rule_matches(const struct policy_rule *r, const struct policy_input *in, uint32_t mbit)
{
    if ((r->has & HAS_CLASS) && r->klass != in->klass)
        return false;
    if ((r->has & HAS_METHOD) && (r->methods & mbit) == 0)
        return false;
    if ((r->has & HAS_SCOPE) && (in->scopes & r->scope) == 0)
        return false;
    if (r->has & HAS_ROUTE) {
        if (r->route_tmpl) {
            if (in->route_tmpl == NULL || strcmp(in->route_tmpl, r->route) != 0)
                return false;
        } else if (in->path == NULL || in->path_len < r->route_len ||
                   memcmp(in->path, r->route, r->route_len) != 0) {
            return false;
        }
    }
    if (r->has & HAS_TENANT) {
        if (in->tenant == NULL)
            return false;
        size_t i = 0;
        while (i < r->ntenants && strcmp(r->tenants[i], in->tenant) != 0)
            i++;
        if (i == r->ntenants)
            return false;
    }
    return true;
}

void policy_eval(const struct policy *p, const struct policy_input *in, struct policy_decision *out)
{
    uint32_t mbit = method_bit(in->method);
    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];
        if (rule_matches(r, in, mbit)) {
            *out = (struct policy_decision){r->allow, true, r->id, r->reason};
            return;
        }
    }
    *out = (struct policy_decision){p->default_allow, false, "default", "default"};
}
