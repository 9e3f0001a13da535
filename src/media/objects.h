/*
 * objects.h — objects and media: GET/HEAD with single ranges, strong ETags
 * and conditionals, streaming with integrity checks; PUT uploads.
 */
#ifndef MEDIA_OBJECTS_H
#define MEDIA_OBJECTS_H

#include "http/request-t.h"

void media_on_object(struct http_req *req); /* GET, HEAD /v1/o/{addr} */
/* GET, HEAD /v1/o/{addr}/outboard: the object's group values (32 bytes per
 * 64 KiB group, empty for an object of one group), checked against the
 * address before they are served. */
void media_on_outboard(struct http_req *req);
void media_on_media(struct http_req *req); /* GET, HEAD /v1/media/{name} */
void media_on_put(struct http_req *req);   /* PUT /v1/o */

#endif
