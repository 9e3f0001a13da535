/*
 * The planner's typed failures (view_plan_build in src/view/plan.c): a
 * manifest that is not a view's is "not found", a broken view manifest is a
 * bad downstream answer.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include "view/plan.h"

#define OBJ "b3:1e39041ddf1a4ceb44da9dd4794e47204dfc1b6e0dc03e16d7567769bac25ab6"

static int plan(const char *text, unsigned max_parts, enum og_err *err, const char **why)
{
    static struct view_plan p;
    json_error_t e;
    json_t *m = json_loads(text, 0, &e);
    cr_assert_not_null(m, "%s", text);
    *err = OG_E__COUNT;
    *why = NULL;
    int rc = view_plan_build(m, max_parts, 1024, &p, err, why);
    json_decref(m);
    return rc;
}

Test(plan, failures_are_typed)
{
    static const struct {
        const char *manifest;
        enum og_err want;
    } CASES[] = {
        /* Not a view's manifest: the name names something else. */
        {"{\"kind\":\"media\",\"obj\":\"" OBJ "\"}", OG_E_NOT_FOUND},
        {"{\"parts\":{}}", OG_E_NOT_FOUND},
        {"{\"kind\":7,\"parts\":{}}", OG_E_NOT_FOUND},
        {"[1]", OG_E_NOT_FOUND},
        /* A broken view manifest: a bad downstream answer. */
        {"{\"kind\":\"view\"}", OG_E_BAD_GATEWAY},
        {"{\"kind\":\"view\",\"parts\":[]}", OG_E_BAD_GATEWAY},
        {"{\"kind\":\"view\",\"parts\":{\"a\":{\"type\":\"index\",\"name\":\"n\"},"
         "\"b\":{\"type\":\"index\",\"name\":\"n\"},\"c\":{\"type\":\"index\",\"name\":\"n\"}}}",
         OG_E_BAD_GATEWAY}, /* over max_parts (2) */
        {"{\"kind\":\"view\",\"parts\":{\"a\":{\"type\":\"nope\"}}}", OG_E_BAD_GATEWAY},
        {"{\"kind\":\"view\",\"parts\":{\"a\":{\"type\":\"object\",\"obj\":\"b3:00\"}}}",
         OG_E_BAD_GATEWAY},
        {"{\"kind\":\"view\",\"parts\":{\"a\":{\"type\":\"mailbox\"}}}", OG_E_BAD_GATEWAY},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        enum og_err err;
        const char *why;
        cr_assert_eq(plan(CASES[i].manifest, 2, &err, &why), -1, "%s", CASES[i].manifest);
        cr_assert_eq(err, CASES[i].want, "%s", CASES[i].manifest);
        cr_assert_not_null(why);
    }
}

Test(plan, a_view_plans)
{
    enum og_err err;
    const char *why;
    cr_assert_eq(plan("{\"kind\":\"view\",\"parts\":{\"a\":{\"type\":\"object\",\"obj\":\"" OBJ
                      "\"},\"m\":{\"type\":\"mailbox\",\"channel\":\"c\"}}}",
                      8, &err, &why),
                 0);
}
