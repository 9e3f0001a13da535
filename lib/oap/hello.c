/*
 * hello.c — HELLO payload: JSON encode (written directly), parse (jansson),
 * and negotiation.
 */
#include "oap/hello.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

void oap_hello_defaults(struct oap_hello *h)
{
    h->max_frame = OAP_MAX_FRAME_BYTES;
    h->max_inflight = OAP_HELLO_MAX_INFLIGHT_DEF;
    h->flags = OAP_FLAGS_KNOWN;
    h->versions = 1u << (OAP_VERSION - 1);
}

static int hello_valid(const struct oap_hello *h)
{
    return h->max_frame >= OAP_HDR_BYTES && h->max_frame <= OAP_MAX_FRAME_BYTES &&
           h->max_inflight >= 1 && h->max_inflight <= OAP_HELLO_MAX_INFLIGHT_MAX &&
           !(h->flags & ~OAP_FLAGS_KNOWN) && h->versions != 0;
}

ssize_t oap_hello_encode(const struct oap_hello *h, char *out, size_t cap)
{
    size_t pos;
    int n;
    const char *sep = "";

    if (!hello_valid(h))
        return OAP_E_BAD_HELLO;
    n = snprintf(out, cap, "{\"max_frame\":%u,\"max_inflight\":%u,\"flags\":%u,\"versions\":[",
                 h->max_frame, h->max_inflight, (unsigned)h->flags);
    if (n < 0 || (size_t)n >= cap)
        return OAP_E_BUF_SMALL;
    pos = (size_t)n;
    for (unsigned v = 1; v <= 32; v++) {
        if (!(h->versions & (1u << (v - 1))))
            continue;
        n = snprintf(out + pos, cap - pos, "%s%u", sep, v);
        if (n < 0 || (size_t)n >= cap - pos)
            return OAP_E_BUF_SMALL;
        pos += (size_t)n;
        sep = ",";
    }
    if (cap - pos < 2)
        return OAP_E_BUF_SMALL;
    out[pos++] = ']';
    out[pos++] = '}';
    return (ssize_t)pos;
}

/* An optional integer member within [lo, hi]; absent keeps *out. */
static int get_uint(json_t *obj, const char *key, uint64_t lo, uint64_t hi, bool required,
                    uint32_t *out)
{
    json_t *v = json_object_get(obj, key);
    json_int_t x;

    if (!v)
        return required ? -1 : 0;
    if (!json_is_integer(v))
        return -1;
    x = json_integer_value(v);
    if (x < 0 || (uint64_t)x < lo || (uint64_t)x > hi)
        return -1;
    *out = (uint32_t)x;
    return 0;
}

int oap_hello_parse(struct oap_hello *h, const void *p, size_t n)
{
    json_error_t jerr;
    json_t *root, *vers;
    uint32_t flags = OAP_FLAGS_KNOWN;
    int rc = OAP_E_BAD_HELLO;

    if (n == 0 || n > OAP_HELLO_MAX_BYTES)
        return OAP_E_BAD_HELLO;
    root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return OAP_E_BAD_HELLO;
    if (!json_is_object(root))
        goto out;
    oap_hello_defaults(h);
    if (get_uint(root, "max_frame", OAP_HDR_BYTES, OAP_MAX_FRAME_BYTES, true, &h->max_frame) ||
        get_uint(root, "max_inflight", 1, OAP_HELLO_MAX_INFLIGHT_MAX, false, &h->max_inflight) ||
        get_uint(root, "flags", 0, OAP_FLAGS_KNOWN, false, &flags))
        goto out;
    h->flags = (uint16_t)flags;
    vers = json_object_get(root, "versions");
    if (vers) {
        size_t i;
        json_t *v;
        if (!json_is_array(vers) || json_array_size(vers) == 0)
            goto out;
        h->versions = 0;
        json_array_foreach(vers, i, v)
        {
            json_int_t x;
            if (!json_is_integer(v))
                goto out;
            x = json_integer_value(v);
            if (x < 1 || x > 65535)
                goto out;
            if (x <= 32)
                h->versions |= 1u << (x - 1);
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int oap_hello_negotiate(const struct oap_hello *a, const struct oap_hello *b, struct oap_hello *out)
{
    out->max_frame = a->max_frame < b->max_frame ? a->max_frame : b->max_frame;
    out->max_inflight = a->max_inflight < b->max_inflight ? a->max_inflight : b->max_inflight;
    out->flags = a->flags & b->flags;
    out->versions = a->versions & b->versions;
    return out->versions ? 0 : OAP_E_BAD_VERSION;
}
