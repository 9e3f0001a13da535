/*
 * routes.h — the hydration routes: /v1/view, /v1/index, /v1/search, /v1/feed.
 */
#ifndef VIEW_ROUTES_H
#define VIEW_ROUTES_H

#include <stdbool.h>

#include "http/request-t.h"

void view_on_view(struct http_req *req);
void view_on_index(struct http_req *req);
void view_on_search(struct http_req *req);
void view_on_feed(struct http_req *req);

/* A name or channel in a path: 1..255 of [A-Za-z0-9._:-]. */
bool view_name_ok(struct slice s);

#endif
