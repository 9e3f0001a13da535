/*
 * data.c — DATA payload split/parse/encode.
 */
#include "oap/data.h"

#include <string.h>

#include "oap/oap.h"

int oap_data_split(struct oap_data *d, const uint8_t *p, size_t n)
{
    size_t hl;

    if (n < 2)
        return OAP_E_BAD_DATA_HDR;
    hl = oap_get16(p);
    /* "{}" is the smallest object; the cap comes before any parsing. */
    if (hl < 2 || hl > OAP_DATA_HDR_MAX_BYTES || hl > n - 2)
        return OAP_E_BAD_DATA_HDR;
    d->hdr = (const char *)p + 2;
    d->hdr_len = hl;
    d->body = p + 2 + hl;
    d->body_len = n - 2 - hl;
    return 0;
}

int oap_data_parse(struct oap_data *d, const uint8_t *p, size_t n, json_t **hdr)
{
    json_error_t jerr;
    json_t *root;

    *hdr = NULL;
    if (oap_data_split(d, p, n))
        return OAP_E_BAD_DATA_HDR;
    root = json_loadb(d->hdr, d->hdr_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return OAP_E_BAD_DATA_HDR;
    if (!json_is_object(root)) {
        json_decref(root);
        return OAP_E_BAD_DATA_HDR;
    }
    *hdr = root;
    return 0;
}

int oap_data_obj(json_t *hdr, struct cas_addr *out)
{
    json_t *v = json_object_get(hdr, "obj");

    if (!v)
        return 0;
    if (!json_is_string(v) || cas_addr_parse(out, json_string_value(v), json_string_length(v)) != 0)
        return OAP_E_BAD_DATA_HDR;
    return 1;
}

ssize_t oap_data_hdr_write(uint8_t *out, size_t cap, const char *json, size_t json_len)
{
    if (json_len < 2 || json_len > OAP_DATA_HDR_MAX_BYTES)
        return OAP_E_BAD_DATA_HDR;
    if (cap < 2 + json_len)
        return OAP_E_BUF_SMALL;
    oap_put16(out, (uint16_t)json_len);
    memcpy(out + 2, json, json_len);
    return (ssize_t)(2 + json_len);
}

ssize_t oap_data_encode(uint8_t *out, size_t cap, const char *json, size_t json_len,
                        const void *body, size_t body_len)
{
    ssize_t n = oap_data_hdr_write(out, cap, json, json_len);

    if (n < 0)
        return n;
    if (cap - (size_t)n < body_len)
        return OAP_E_BUF_SMALL;
    if (body_len)
        memcpy(out + n, body, body_len);
    return n + (ssize_t)body_len;
}
