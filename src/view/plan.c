/*
 * plan.c — manifest → plan.
 */
#include "view/plan.h"

#include <stdio.h>
#include <string.h>

bool view_media_is_json(const char *mt)
{
    size_t n = strlen(mt);
    return strcmp(mt, "application/json") == 0 || (n > 5 && strcmp(mt + n - 5, "+json") == 0);
}

static int copy_str(json_t *o, const char *k, char *out, size_t cap, bool required)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL)
        return required ? -1 : 0;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap)
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return strlen(out) == json_string_length(v) ? 0 : -1; /* no embedded NUL */
}

static int part_build(const char *key, json_t *o, uint64_t inline_max, struct view_part *p,
                      const char **why)
{
    char type[16];
    memset(p, 0, sizeof(*p));
    p->size = -1;
    if (strlen(key) == 0 || strlen(key) > VIEW_KEY_MAX || !json_is_object(o)) {
        *why = "manifest part is not an object or its key is empty or too long";
        return -1;
    }
    strcpy(p->key, key);
    if (copy_str(o, "type", type, sizeof(type), true) != 0) {
        *why = "manifest part has no valid type";
        return -1;
    }
    json_t *req = json_object_get(o, "required");
    if (req && !json_is_boolean(req)) {
        *why = "manifest part required must be a boolean";
        return -1;
    }
    p->required = req && json_is_true(req);
    if (strcmp(type, "object") == 0) {
        char addr[CAS_ADDR_CHARS + 1];
        if (copy_str(o, "obj", addr, sizeof(addr), true) != 0 ||
            cas_addr_parse(&p->addr, addr, strlen(addr)) != 0) {
            *why = "manifest object part has no valid obj address";
            return -1;
        }
        if (copy_str(o, "media_type", p->media_type, sizeof(p->media_type), false) != 0) {
            *why = "manifest object part has a bad media_type";
            return -1;
        }
        if (!p->media_type[0])
            strcpy(p->media_type, "application/octet-stream");
        json_t *sz = json_object_get(o, "size");
        if (sz) {
            if (!json_is_integer(sz) || json_integer_value(sz) < 0) {
                *why = "manifest object part has a bad size";
                return -1;
            }
            p->size = json_integer_value(sz);
        }
        json_t *r = json_object_get(o, "range");
        if (r) {
            json_t *a = json_array_get(r, 0), *b = json_array_get(r, 1);
            if (!json_is_array(r) || json_array_size(r) != 2 || !json_is_integer(a) ||
                !json_is_integer(b) || json_integer_value(a) < 0 ||
                json_integer_value(b) < json_integer_value(a) ||
                (uint64_t)(json_integer_value(b) - json_integer_value(a)) >= inline_max) {
                *why = "manifest object part has a bad range (or one over inline_max)";
                return -1;
            }
            p->ranged = true;
            p->first = (uint64_t)json_integer_value(a);
            p->last = (uint64_t)json_integer_value(b);
        }
        p->kind = (!p->ranged && p->size > (int64_t)inline_max) ? PART_LINK : PART_OBJECT;
        return 0;
    }
    if (strcmp(type, "mailbox") == 0) {
        if (copy_str(o, "channel", p->channel, sizeof(p->channel), true) != 0) {
            *why = "manifest mailbox part has no valid channel";
            return -1;
        }
        json_t *l = json_object_get(o, "limit");
        p->limit = 5;
        if (l) {
            if (!json_is_integer(l) || json_integer_value(l) < 1 ||
                json_integer_value(l) > VIEW_PEEK_MAX) {
                *why = "manifest mailbox part has a bad limit";
                return -1;
            }
            p->limit = (unsigned)json_integer_value(l);
        }
        p->kind = PART_MAILBOX;
        return 0;
    }
    if (strcmp(type, "index") == 0) {
        if (copy_str(o, "name", p->name, sizeof(p->name), true) != 0) {
            *why = "manifest index part has no valid name";
            return -1;
        }
        p->kind = PART_INDEX;
        return 0;
    }
    *why = "manifest part has an unknown type";
    return -1;
}

int view_plan_build(json_t *manifest, unsigned max_parts, uint64_t inline_max,
                    struct view_plan *out, enum og_err *err, const char **why)
{
    out->nparts = 0;
    json_t *kind = json_object_get(manifest, "kind");
    if (!json_is_object(manifest) || !json_is_string(kind) ||
        strcmp(json_string_value(kind), "view") != 0) {
        *err = OG_E_NOT_FOUND;
        *why = "not a view manifest";
        return -1;
    }
    *err = OG_E_BAD_GATEWAY; /* from here on, a broken view manifest */
    json_t *parts = json_object_get(manifest, "parts");
    if (!json_is_object(parts)) {
        *why = "view manifest has no parts object";
        return -1;
    }
    /* Bounded fan-out: refuse before planning anything. */
    if (json_object_size(parts) > max_parts || json_object_size(parts) > VIEW_PARTS_MAX) {
        *why = "view manifest has more parts than view.max_parts";
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(parts, key, v)
    {
        if (part_build(key, v, inline_max, &out->parts[out->nparts], why) != 0)
            return -1;
        out->nparts++;
    }
    return 0;
}
