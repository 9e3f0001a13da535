/*
 * data.c — DATA payload split/parse/encode and the obj address helper.
 */
#include "oap/data.h"
#include "oap/oap.h"
#include "vec.h"

#define ADDR "b3:ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"

Test(oap_data, encode_parse_roundtrip)
{
    const char *js = "{\"obj\":\"" ADDR "\"}";
    uint8_t buf[256];
    struct oap_data d;
    struct cas_addr a, want;
    json_t *hdr;
    struct guard gp;

    ssize_t n = oap_data_encode(buf, sizeof(buf), js, strlen(js), "body", 4);
    cr_assert_eq(n, (ssize_t)(2 + strlen(js) + 4));
    uint8_t *p = guard_copy(&gp, buf, (size_t)n);
    cr_assert_eq(oap_data_parse(&d, p, (size_t)n, &hdr), 0);
    cr_assert_eq(d.hdr_len, strlen(js));
    cr_assert_eq(d.body_len, 4);
    cr_assert_eq(d.body, p + 2 + strlen(js), "view, not a copy");
    cr_assert_eq(oap_data_obj(hdr, &a), 1);
    cas_hash("hello", 5, &want);
    cr_assert(cas_addr_equal(&a, &want));
    json_decref(hdr);
    guard_free(&gp);
    cr_assert_eq(oap_data_encode(buf, 10, js, strlen(js), NULL, 0), OAP_E_BUF_SMALL);
    cr_assert_eq(oap_data_hdr_write(buf, sizeof(buf), "{", 1), OAP_E_BAD_DATA_HDR);
}

static int parse_hdr(const char *js)
{
    uint8_t buf[OAP_DATA_HDR_MAX_BYTES + 100];
    struct oap_data d;
    json_t *hdr;
    size_t n = strlen(js);
    oap_put16(buf, (uint16_t)n);
    memcpy(buf + 2, js, n);
    int rc = oap_data_parse(&d, buf, n + 2, &hdr);
    json_decref(hdr);
    return rc;
}

Test(oap_data, header_rules)
{
    cr_assert_eq(parse_hdr("{}"), 0);
    cr_assert_eq(parse_hdr("[]"), OAP_E_BAD_DATA_HDR);
    cr_assert_eq(parse_hdr("\"s\""), OAP_E_BAD_DATA_HDR);
    cr_assert_eq(parse_hdr("{\"a\":1,\"a\":2}"), OAP_E_BAD_DATA_HDR);
    cr_assert_eq(parse_hdr("{\"a\":1"), OAP_E_BAD_DATA_HDR);
    cr_assert_eq(parse_hdr("{} {}"), OAP_E_BAD_DATA_HDR);

    static char big[OAP_DATA_HDR_MAX_BYTES + 2];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[OAP_DATA_HDR_MAX_BYTES - 1] = '}';
    big[OAP_DATA_HDR_MAX_BYTES] = '\0';
    cr_assert_eq(parse_hdr(big), 0, "exactly the cap");
    big[OAP_DATA_HDR_MAX_BYTES - 1] = ' ';
    big[OAP_DATA_HDR_MAX_BYTES] = '}';
    cr_assert_eq(parse_hdr(big), OAP_E_BAD_DATA_HDR, "one over the cap");

    struct oap_data d;
    const uint8_t shortp[] = {0x00, 0x05, '{', '}'};
    cr_assert_eq(oap_data_split(&d, shortp, sizeof(shortp)), OAP_E_BAD_DATA_HDR);
    cr_assert_eq(oap_data_split(&d, shortp, 1), OAP_E_BAD_DATA_HDR);
    const uint8_t zero[] = {0x00, 0x00};
    cr_assert_eq(oap_data_split(&d, zero, 2), OAP_E_BAD_DATA_HDR);
}

Test(oap_data, obj_member)
{
    struct cas_addr a;
    const char *bad[] = {
        "{\"obj\":1}",
        "{\"obj\":\"b3:EA8F163DB38682925E4491C5E58D4BB3506EF8C14EB78A86E908C5624A67200F\"}",
        "{\"obj\":\"b3:ea8f\"}",
        "{\"obj\":\"sha:ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *h = json_loads(bad[i], 0, NULL);
        cr_assert(h);
        cr_assert_eq(oap_data_obj(h, &a), OAP_E_BAD_DATA_HDR, "%s", bad[i]);
        json_decref(h);
    }
    json_t *h = json_loads("{\"x\":1}", 0, NULL);
    cr_assert_eq(oap_data_obj(h, &a), 0);
    json_decref(h);
}
