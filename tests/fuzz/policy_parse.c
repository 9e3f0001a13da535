/*
 * libFuzzer target: policy bundle parsing and evaluation.
 *
 * The input is a bundle text. A refused bundle must say why; an accepted one
 * is evaluated against a fixed set of requests (every class, with and
 * without tenant, template and prefix routes, an unknown method, a path that
 * is not NUL-terminated) and each decision must be well-formed and stable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/caveat.h"
#include "auth/policy.h"

/* "/v1/feed/newsXXXX": only the first 13 bytes are the path. */
static const char feed_path[] = {'/', 'v', '1', '/', 'f', 'e', 'e', 'd', '/',
                                 'n', 'e', 'w', 's', 'X', 'X', 'X', 'X'};

static const struct policy_input inputs[] = {
    {"GET", "/v1/search", 10, "/v1/search", NULL, 0, POLICY_ANON},
    {"GET", feed_path, 13, "/v1/feed/{channel}", "acme", CAP_SCOPE_FEED_READ, POLICY_AUTHED},
    {"PUT", "/v1/o", 5, "/v1/o", "acme", CAP_SCOPE_OBJECT_WRITE | CAP_SCOPE_OBJECT_READ,
     POLICY_AUTHED},
    {"DELETE", "/v1/view/home", 13, "/v1/view/{name}", "a", CAP_SCOPE_ALL, POLICY_INTERNAL},
    {"BREW", "/", 1, NULL, "b.c", 0, POLICY_AUTHED},
    {NULL, NULL, 0, NULL, NULL, 0, POLICY_ANON},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = '\0';
    struct policy *p = policy_parse((const char *)data, size, err, sizeof(err));
    if (p == NULL) {
        if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
            abort();
        return 0;
    }
    if (policy_rule_count(p) > POLICY_MAX_RULES)
        abort();
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        struct policy_decision d, again;
        policy_eval(p, &inputs[i], &d);
        if (d.rule_id == NULL || d.reason == NULL || d.rule_id[0] == '\0' || d.reason[0] == '\0')
            abort();
        if (!d.explicit_rule && (strcmp(d.rule_id, "default") != 0 || strcmp(d.reason, "default")))
            abort();
        if (d.explicit_rule && policy_rule_count(p) == 0)
            abort();
        /* An anonymous request is never admitted by the default. */
        if (inputs[i].klass == POLICY_ANON && !d.explicit_rule && policy_permits(POLICY_ANON, &d))
            abort();
        policy_eval(p, &inputs[i], &again);
        if (d.allow != again.allow || d.explicit_rule != again.explicit_rule ||
            d.rule_id != again.rule_id || d.reason != again.reason)
            abort();
    }
    policy_free(p);
    return 0;
}
