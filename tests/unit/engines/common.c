/*
 * Tests for engines/common: SipHash-2-4 reference vector, name rules,
 * reference-counted buffers, the hash table.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "engines/common/buf.h"
#include "engines/common/hash.h"
#include "engines/common/status.h"

TestSuite(engines_common);

Test(engines_common, siphash_reference_vector)
{
    /* The SipHash paper's appendix: key 00..0f, message 00..0e. */
    uint8_t k[16], m[15];
    for (int i = 0; i < 16; i++)
        k[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        m[i] = (uint8_t)i;
    cr_assert_eq(eng_siphash(k, m, 15), 0xa129ca6149be45e5ULL);
    /* Empty message, first row of the reference vectors.h. */
    cr_assert_eq(eng_siphash(k, m, 0), 0x726fdb47dd0e0e31ULL);
}

Test(engines_common, name_rules)
{
    cr_assert_eq(eng_name_check("a", 1), ENG_OK);
    cr_assert_eq(eng_name_check("a", 0), ENG_E_INVALID);
    cr_assert_eq(eng_name_check(NULL, 1), ENG_E_INVALID);
    cr_assert_eq(eng_name_check("\t", 1), ENG_E_INVALID);
    cr_assert_eq(eng_name_check("\xc2\x85", 2), ENG_E_INVALID);         /* C1 NEL */
    cr_assert_eq(eng_name_check("\xc2\xa0", 2), ENG_OK);                /* NBSP */
    cr_assert_eq(eng_name_check("\xf0\x9f\x98\x80", 4), ENG_OK);        /* emoji */
    cr_assert_eq(eng_name_check("\xf4\x90\x80\x80", 4), ENG_E_INVALID); /* > U+10FFFF */
    cr_assert_eq(eng_name_check("\xe0\x80\xaf", 3), ENG_E_INVALID);     /* overlong */
}

Test(engines_common, buf_refcount)
{
    struct eng_buf *b = eng_buf_from("abc", 3);
    cr_assert_not_null(b);
    cr_assert_eq(b->size, 3);
    cr_assert_eq(eng_buf_ref(b), b);
    cr_assert_eq(atomic_load(&b->refs), 2);
    eng_buf_unref(b);
    cr_assert_eq(memcmp(b->bytes, "abc", 3), 0);
    eng_buf_unref(b);
    eng_buf_unref(NULL);
}

struct item {
    struct eng_hnode node;
    int key;
};

static bool item_eq(const struct eng_hnode *n, const void *probe)
{
    return eng_container_of(n, struct item, node)->key == *(const int *)probe;
}

Test(engines_common, hmap_grow_find_remove)
{
    static struct item items[1000];
    struct eng_hmap m;
    uint8_t seed[16] = {1};
    cr_assert_eq(eng_hmap_init(&m), ENG_OK);
    for (int i = 0; i < 1000; i++) {
        items[i].key = i;
        items[i].node.hash = eng_siphash(seed, &i, sizeof(i));
        eng_hmap_insert(&m, &items[i].node);
    }
    cr_assert_eq(m.n, 1000);
    cr_assert_geq(m.nb, 1000);
    for (int i = 0; i < 1000; i += 2)
        eng_hmap_remove(&m, &items[i].node);
    for (int i = 0; i < 1000; i++) {
        uint64_t h = eng_siphash(seed, &i, sizeof(i));
        struct eng_hnode *x = eng_hmap_find(&m, h, item_eq, &i);
        if (i % 2)
            cr_assert_eq(x, &items[i].node);
        else
            cr_assert_null(x);
    }
    cr_assert_eq(m.n, 500);
    eng_hmap_release(&m);
}
