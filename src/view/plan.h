/*
 * plan.h — the view planner: a manifest in, the list of downstream calls
 * out. Pure: no I/O, no loop; unit-tested on its own.
 *
 * Manifest (stored in index):
 *   {"kind":"view", ...any other fields..., "parts":{
 *      KEY:{"type":"object","obj":"b3:..","media_type":"..","size":N?,
 *           "range":[FIRST,LAST]?, "required":bool?},
 *      KEY:{"type":"mailbox","channel":"..","limit":K?},
 *      KEY:{"type":"index","name":".."}}}
 */
#ifndef VIEW_PLAN_H
#define VIEW_PLAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cas/cas.h"
#include "core/status.h"

#define VIEW_PARTS_MAX      64
#define VIEW_KEY_MAX        64
#define VIEW_NAME_MAX       255
#define VIEW_PEEK_MAX       50
#define VIEW_MEDIA_TYPE_MAX 95 /* bytes, without the NUL */

enum part_kind { PART_OBJECT, PART_LINK, PART_MAILBOX, PART_INDEX };

struct view_part {
    enum part_kind kind;
    bool required;
    char key[VIEW_KEY_MAX + 1];
    /* object / link */
    struct cas_addr addr;
    char media_type[VIEW_MEDIA_TYPE_MAX + 1];
    int64_t size; /* from the manifest, -1 if not given */
    bool ranged;
    uint64_t first, last; /* inclusive byte range */
    /* mailbox */
    char channel[VIEW_NAME_MAX + 1];
    unsigned limit;
    /* index */
    char name[VIEW_NAME_MAX + 1];
};

struct view_plan {
    unsigned nparts;
    struct view_part parts[VIEW_PARTS_MAX];
};

/* Build a plan from a parsed manifest. Objects larger than inline_max
 * (by their manifest size) become links and need no call. Returns 0, or -1
 * with *err and *why set: OG_E_NOT_FOUND when the manifest is not a view's
 * (the name names something else), OG_E_BAD_GATEWAY when it is a broken
 * view manifest (no parts, more than max_parts, a bad part). */
int view_plan_build(json_t *manifest, unsigned max_parts, uint64_t inline_max,
                    struct view_plan *out, enum og_err *err, const char **why);

/* Whether a media type is JSON (application/json or +json). */
bool view_media_is_json(const char *mt);

#endif
