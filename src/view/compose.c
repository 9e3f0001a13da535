/*
 * compose.c — writing composed views and feeds.
 *
 * Not pure: object and JSON renderings go through the content memo
 * (view/memo.h), and a part failing its integrity check is logged and
 * counted (media/integrity.h). Both depend only on the bytes composed, so a
 * composition still is a function of its inputs.
 */
#include "view/compose.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "cas/outboard.h"
#include "core/dec.h"
#include "handler/hctx.h"
#include "media/integrity.h"
#include "view/memo.h"
#include "view/messages.h"

const char *view_part_error(const struct part_result *r)
{
    if (r->integrity_failed)
        return "integrity";
    return og_err_code(hctx_call_err(r->code, r->err));
}

void view_jw_base64(struct jw *w, const uint8_t *p, size_t n)
{
    /* Base64 needs no JSON escaping: encode straight into the output. */
    size_t enc = 4 * ((n + 2) / 3);
    jw_raw(w, "\"", 1);
    if (w->failed || buf_reserve(w->b, enc + 2) != 0) {
        w->failed = true;
        return;
    }
    int len = EVP_EncodeBlock((unsigned char *)w->b->p + w->b->n, p, (int)n);
    w->b->n += (size_t)len;
    w->b->p[w->b->n++] = '"';
}

static bool valid_json(const uint8_t *p, size_t n)
{
    json_error_t e;
    json_t *v = json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (v == NULL)
        return false;
    json_decref(v);
    return true;
}

/* Whether bytes are valid JSON depends on the bytes alone: memoised by their
 * hash (view/memo.h), cheaper than parsing them again. */
bool view_valid_json(const uint8_t *p, size_t n)
{
    size_t len;
    const uint8_t *m = memo_get(MEMO_JSON, p, n, NULL, &len);
    if (m && len == 1)
        return m[0] == 1;
    bool ok = valid_json(p, n);
    uint8_t v = ok ? 1 : 2;
    memo_put(MEMO_JSON, p, n, NULL, &v, 1);
    return ok;
}

static void render_object(struct jw *w, const struct view_part *p, const struct part_result *r,
                          bool verified, uint64_t inline_max)
{
    char addr[CAS_ADDR_CHARS + 1];
    cas_addr_format(&p->addr, addr);
    jw_obj_open(w);
    jw_key(w, "status");
    jw_int(w, r->code);
    jw_key(w, "obj");
    jw_str(w, addr);
    jw_key(w, "media_type");
    jw_str(w, p->media_type);
    jw_key(w, "verified");
    jw_bool(w, verified);
    if (p->ranged) {
        jw_key(w, "range");
        jw_arr_open(w);
        jw_uint(w, p->first);
        jw_uint(w, p->first + (r->body_len ? r->body_len - 1 : 0));
        jw_arr_close(w);
    }
    jw_key(w, "size");
    jw_uint(w, r->body_len);
    if (verified && !p->ranged && view_media_is_json(p->media_type) &&
        valid_json(r->body, r->body_len)) {
        jw_key(w, "json");
        jw_raw(w, (const char *)r->body, r->body_len);
    } else if (r->body_len <= inline_max) {
        jw_key(w, "base64");
        view_jw_base64(w, r->body, r->body_len);
    } else {
        char link[CAS_ADDR_CHARS + 8];
        memcpy(link, "/v1/o/", 6);
        memcpy(link + 6, addr, CAS_ADDR_CHARS + 1);
        jw_key(w, "link");
        jw_str(w, link);
    }
    jw_obj_close(w);
}

/* A ranged part's bytes (the whole groups its range touches, read from
 * the group boundary before it) against the proof, as /v1/o ranges are
 * checked (src/media/objects.c): the proof climbs to the address, each
 * group matches its proven value (an object of one group: its hash).
 * Then r->body is narrowed to the asked bytes. Returns false on any
 * mismatch, or an answer that does not fit the asked range. */
static bool range_part_ok(const struct view_part *p, struct part_result *r)
{
    json_error_t e;
    json_t *h = json_loadb(r->proof_hdr, r->proof_hdr_len, 0, &e);
    json_t *sz = json_object_get(h, "size"), *gs = json_object_get(h, "groups");
    json_t *fa = json_object_get(h, "first"), *la = json_object_get(h, "last");
    bool ok = json_is_integer(sz) && json_integer_value(sz) >= 0 && json_is_integer(gs);
    uint64_t size = ok ? (uint64_t)json_integer_value(sz) : 0;
    if (ok && p->first >= size) { /* a range at the end: no bytes to show */
        json_decref(h);
        r->body_len = 0;
        return true;
    }
    uint64_t groups = cas_groups(size);
    uint64_t off = p->first / CAS_GROUP_BYTES * CAS_GROUP_BYTES;
    uint64_t end = p->last + 1 < size ? p->last + 1 : size; /* past the asked bytes */
    uint64_t gend = (end - 1) / CAS_GROUP_BYTES + 1;        /* past the last group */
    ok = ok && (uint64_t)json_integer_value(gs) == groups && p->first < size &&
         r->body_len == (gend * CAS_GROUP_BYTES < size ? gend * CAS_GROUP_BYTES : size) - off;
    uint64_t a = p->first / CAS_GROUP_BYTES, b = gend - 1;
    if (ok && groups >= 2) /* one group has no proof: it is hashed whole */
        ok = json_is_integer(fa) && json_is_integer(la) && (uint64_t)json_integer_value(fa) == a &&
             (uint64_t)json_integer_value(la) == b &&
             cas_proof_verify(&p->addr, groups, a, b, r->proof, r->proof_len);
    for (uint64_t g = a; ok && g <= b; g++)
        ok = cas_group_check(&p->addr, groups, a, r->proof, g,
                             r->body + (g * CAS_GROUP_BYTES - off), cas_group_size(size, g));
    json_decref(h);
    if (ok) {
        r->body += p->first - off;
        r->body_len = (size_t)(end - p->first);
    }
    return ok;
}

static void integrity_error(struct jw *w, struct part_result *r)
{
    r->integrity_failed = true;
    jw_obj_open(w);
    jw_key(w, "error");
    jw_str(w, "integrity");
    jw_obj_close(w);
}

void view_object_part(struct jw *w, const struct view_part *p, struct part_result *r,
                      uint64_t inline_max, const char *corr_id)
{
    /* Nothing of an object is shown before it is verified: a whole object
     * by its hash, a range group by group against its slice proof. */
    if (p->ranged) {
        if (!range_part_ok(p, r)) {
            integrity_report(&p->addr, INTEGRITY_VIEW, INTEGRITY_NO_GROUP, corr_id);
            integrity_error(w, r);
            return;
        }
        render_object(w, p, r, true, inline_max);
        return;
    }
    if (!integrity_check(&p->addr, r->body, r->body_len, INTEGRITY_VIEW, corr_id)) {
        integrity_error(w, r);
        return;
    }
    /* Verified bytes: their rendering depends only on (address, media type,
     * inline limit), so it is memoised. */
    char extra[sizeof(p->media_type) + 2 + DEC_U64_MAX_CHARS];
    size_t el = strlen(p->media_type);
    memcpy(extra, p->media_type, el);
    extra[el++] = '|';
    extra[el + dec_u64(extra + el, inline_max)] = '\0';
    size_t len;
    const char *m = memo_get(MEMO_OBJECT, p->addr.b, sizeof(p->addr.b), extra, &len);
    if (m) {
        jw_raw(w, m, len);
        return;
    }
    struct buf tmp = {0};
    struct jw tw;
    jw_init(&tw, &tmp);
    render_object(&tw, p, r, true, inline_max);
    if (!jw_failed(&tw)) {
        memo_put(MEMO_OBJECT, p->addr.b, sizeof(p->addr.b), extra, tmp.p, tmp.n);
        jw_raw(w, tmp.p, tmp.n);
    } else {
        w->failed = true;
    }
    buf_release(&tmp);
}

static void link_part(struct jw *w, const struct view_part *p)
{
    char addr[CAS_ADDR_CHARS + 1], link[CAS_ADDR_CHARS + 8];
    cas_addr_format(&p->addr, addr);
    memcpy(link, "/v1/o/", 6);
    memcpy(link + 6, addr, CAS_ADDR_CHARS + 1);
    jw_obj_open(w);
    jw_key(w, "obj");
    jw_str(w, addr);
    jw_key(w, "media_type");
    jw_str(w, p->media_type);
    jw_key(w, "size");
    jw_int(w, p->size);
    jw_key(w, "link");
    jw_str(w, link);
    jw_obj_close(w);
}

int view_manifest_fields(json_t *manifest, struct buf *out)
{
    const char *k;
    json_t *v;
    struct jw w;
    jw_init(&w, out);
    w.need_comma = true; /* the fragment follows "name" */
    json_object_foreach(manifest, k, v)
    {
        if (strcmp(k, "parts") == 0 || strcmp(k, "name") == 0 || strcmp(k, "complete") == 0 ||
            strcmp(k, "timing") == 0)
            continue;
        char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (dump == NULL)
            return -1;
        jw_key(&w, k);
        jw_raw(&w, dump, strlen(dump));
        free(dump);
    }
    return jw_failed(&w) ? -1 : 0;
}

int view_compose(struct jw *w, const char *name, const char *fields, size_t fields_len,
                 const struct view_plan *plan, struct part_result *res, double resolve_ms,
                 double total_ms, uint64_t inline_max, const char *corr_id, struct compose_out *out)
{
    out->complete = true;
    out->required_failed = false;
    jw_obj_open(w);
    jw_key(w, "name");
    jw_str(w, name);
    if (fields_len && !w->failed && buf_append(w->b, fields, fields_len) != 0)
        w->failed = true;
    jw_key(w, "parts");
    jw_obj_open(w);
    for (unsigned i = 0; i < plan->nparts; i++) {
        const struct view_part *p = &plan->parts[i];
        struct part_result *r = &res[i];
        jw_key(w, p->key);
        if (p->kind == PART_LINK) {
            link_part(w, p);
            continue;
        }
        bool ok = r->code == 200 || r->code == 206;
        if (ok && p->kind == PART_OBJECT && p->ranged && r->proof_code != 200) {
            r->code = r->proof_code; /* no proof, no ranged part */
            r->err = r->proof_err;
            ok = false;
        }
        if (ok && p->kind == PART_OBJECT) {
            view_object_part(w, p, r, inline_max, corr_id);
            ok = !r->integrity_failed;
        } else if (ok && p->kind == PART_MAILBOX) {
            size_t mark = w->b->n;
            bool comma = w->need_comma;
            jw_obj_open(w);
            jw_key(w, "status");
            jw_int(w, r->code);
            jw_key(w, "channel");
            jw_str(w, p->channel);
            jw_key(w, "messages");
            if (view_messages(w, r->body, r->body_len) != 0) {
                w->b->n = mark; /* drop the half-written part */
                w->need_comma = comma;
                r->code = 502;
                ok = false;
            } else {
                jw_obj_close(w);
            }
        } else if (ok && p->kind == PART_INDEX) {
            if (view_valid_json(r->body, r->body_len)) {
                jw_obj_open(w);
                jw_key(w, "status");
                jw_int(w, r->code);
                jw_key(w, "name");
                jw_str(w, p->name);
                jw_key(w, "manifest");
                jw_raw(w, (const char *)r->body, r->body_len);
                jw_obj_close(w);
            } else {
                r->code = 502;
                ok = false;
            }
        }
        if (!ok) {
            if (!r->integrity_failed) {
                jw_obj_open(w);
                jw_key(w, "error");
                jw_str(w, view_part_error(r));
                jw_obj_close(w);
            }
            out->complete = false;
            if (p->required && !out->required_failed) {
                out->required_failed = true;
                out->fail_err =
                    r->integrity_failed ? OG_E_BAD_GATEWAY : hctx_call_err(r->code, r->err);
                if (out->fail_err == OG_E_NOT_FOUND)
                    out->fail_err = OG_E_BAD_GATEWAY; /* the manifest names a missing part */
                out->fail_key = p->key;
            }
        }
    }
    jw_obj_close(w);
    jw_key(w, "complete");
    jw_bool(w, out->complete);
    jw_key(w, "timing");
    jw_obj_open(w);
    jw_key(w, "resolve_ms");
    jw_fixed3(w, resolve_ms);
    jw_key(w, "parts_ms");
    jw_obj_open(w);
    for (unsigned i = 0; i < plan->nparts; i++) {
        jw_key(w, plan->parts[i].key);
        jw_fixed3(w, res[i].ms);
    }
    jw_obj_close(w);
    jw_key(w, "total_ms");
    jw_fixed3(w, total_ms);
    jw_obj_close(w);
    jw_obj_close(w);
    return jw_failed(w) ? -1 : 0;
}

int view_feed_compose(struct jw *w, const char *channel, size_t channel_len, struct feed_entry *e,
                      unsigned n, double peek_ms, double total_ms, uint64_t inline_max,
                      const char *corr_id, bool *complete)
{
    *complete = true;
    jw_obj_open(w);
    jw_key(w, "channel");
    jw_strn(w, channel, channel_len);
    jw_key(w, "messages");
    jw_arr_open(w);
    for (unsigned i = 0; i < n; i++) {
        jw_raw(w, e[i].msg.json, e[i].msg.json_len); /* the message up to its closing brace */
        if (e[i].msg.has_obj) {
            jw_key(w, "object");
            if (e[i].res.code == 200) {
                view_object_part(w, &e[i].part, &e[i].res, inline_max, corr_id);
                if (e[i].res.integrity_failed)
                    *complete = false;
            } else {
                jw_obj_open(w);
                jw_key(w, "error");
                jw_str(w, view_part_error(&e[i].res));
                jw_obj_close(w);
                *complete = false;
            }
        }
        jw_obj_close(w);
    }
    jw_arr_close(w);
    jw_key(w, "complete");
    jw_bool(w, *complete);
    jw_key(w, "timing");
    jw_obj_open(w);
    jw_key(w, "peek_ms");
    jw_fixed3(w, peek_ms);
    jw_key(w, "total_ms");
    jw_fixed3(w, total_ms);
    jw_obj_close(w);
    jw_obj_close(w);
    return jw_failed(w) ? -1 : 0;
}
