/*
 * status.c — lookups over the ENG_STATUS_MAP table.
 */
#include "engines/common/status.h"

#include <stddef.h>

struct status_row {
    int value;
    int http;
    const char *name;
    const char *code;
};

static const struct status_row ROWS[] = {
#define ENG_STATUS_ROW(n, v, c, h) {v, h, #n, c},
    ENG_STATUS_MAP(ENG_STATUS_ROW)
#undef ENG_STATUS_ROW
};

static const struct status_row *find(int st)
{
    for (size_t i = 0; i < sizeof(ROWS) / sizeof(ROWS[0]); i++)
        if (ROWS[i].value == st)
            return &ROWS[i];
    return NULL;
}

const char *eng_status_name(int st)
{
    const struct status_row *r = find(st);
    return r ? r->name : "ENG_E_UNKNOWN";
}

const char *eng_status_code(int st)
{
    const struct status_row *r = find(st);
    return r ? r->code : "internal";
}

int eng_status_http(int st)
{
    const struct status_row *r = find(st);
    return r ? r->http : 500;
}
