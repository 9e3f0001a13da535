/*
 * routes.h — the hydration routes: /v1/view, /v1/index, /v1/search, /v1/feed.
 */
#ifndef VIEW_ROUTES_H
#define VIEW_ROUTES_H

#include "http/request-t.h"

void view_on_view(struct http_req *req);
void view_on_index(struct http_req *req);
void view_on_search(struct http_req *req);
void view_on_feed(struct http_req *req);

#endif
