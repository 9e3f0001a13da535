/*
 * The content memo (src/view/memo.c): hits are exact whatever the slot hash
 * samples, and domain and extra are part of the key.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "view/memo.h"

Test(memo, exact_hits_only)
{
    char a[1000], b[1000];
    memset(a, 'x', sizeof(a));
    memcpy(b, a, sizeof(b));
    b[500] = 'y'; /* same length, head and tail: the same slot, a different key */
    size_t len;
    memo_put(MEMO_JSON, a, sizeof(a), NULL, "A", 1);
    const char *v = memo_get(MEMO_JSON, a, sizeof(a), NULL, &len);
    cr_assert(v && len == 1 && v[0] == 'A');
    cr_assert_null(memo_get(MEMO_JSON, b, sizeof(b), NULL, &len), "a middle byte differs");
    memo_put(MEMO_JSON, b, sizeof(b), NULL, "B", 1);
    v = memo_get(MEMO_JSON, b, sizeof(b), NULL, &len);
    cr_assert(v && len == 1 && v[0] == 'B');
    v = memo_get(MEMO_JSON, a, sizeof(a), NULL, &len);
    cr_assert(v == NULL || (len == 1 && v[0] == 'A'), "never the other key's value");
    memo_thread_release();
}

Test(memo, domain_extra_and_length_separate_keys)
{
    size_t len;
    memo_put(MEMO_PLAN, "k", 1, "8|1024", "plan", 4);
    cr_assert_null(memo_get(MEMO_OBJECT, "k", 1, "8|1024", &len));
    cr_assert_null(memo_get(MEMO_PLAN, "k", 1, "8|1025", &len));
    cr_assert_null(memo_get(MEMO_PLAN, "k", 1, NULL, &len));
    cr_assert_null(memo_get(MEMO_PLAN, "k\0", 2, "8|1024", &len));
    const char *v = memo_get(MEMO_PLAN, "k", 1, "8|1024", &len);
    cr_assert(v && len == 4 && memcmp(v, "plan", 4) == 0);
    memo_put(MEMO_JSON, "", 0, NULL, "", 0); /* empty key and value */
    cr_assert_not_null(memo_get(MEMO_JSON, "", 0, NULL, &len));
    cr_assert_eq(len, 0);
    memo_thread_release();
}

Test(memo, entry_size_bound)
{
    static char big[MEMO_ENTRY_MAX + 1];
    size_t len;
    memset(big, 'v', sizeof(big));
    memo_put(MEMO_JSON, "k1", 2, NULL, big, MEMO_ENTRY_MAX - 2); /* key + value at the bound */
    const char *v = memo_get(MEMO_JSON, "k1", 2, NULL, &len);
    cr_assert(v && len == MEMO_ENTRY_MAX - 2);
    memo_put(MEMO_JSON, "k2", 2, NULL, big, MEMO_ENTRY_MAX - 1); /* one byte over */
    cr_assert_null(memo_get(MEMO_JSON, "k2", 2, NULL, &len));
    memo_thread_release();
}

Test(memo, empty_key_and_value_without_storage)
{
    size_t len;
    memo_put(MEMO_FEED, NULL, 0, NULL, NULL, 0);
    cr_assert_not_null(memo_get(MEMO_FEED, NULL, 0, NULL, &len));
    cr_assert_eq(len, 0);
    memo_thread_release();
}
