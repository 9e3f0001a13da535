/*
 * routes.h — the mailbox over HTTP (docs/API.md "Mailbox"): send, receive
 * with leases and long-poll, ack / nack / lease extension, dead letters and
 * redrive, and channel stats for operators.
 *
 * A receiver's identity for leases is its capability's tenant: a message
 * leased to one tenant cannot be acked, released or extended by another
 * while the lease runs. A receive with `wait` parks (park.h) when nothing is
 * visible, holding no downstream call and no worker, and answers as soon as
 * a message sent through this process arrives on the channel, or when the
 * wait ends (200 with an empty list).
 */
#ifndef MAILBOX_ROUTES_H
#define MAILBOX_ROUTES_H

#include <uv.h>

#include "http/request-t.h"

struct og_config;

/* Start-up: the parked-receiver registry for nworkers workers and the
 * mailbox metrics (with the in-process mailbox, micronode, its channels'
 * too: chstats.h). After ds_start(). Returns 0 or -1. */
int mailbox_routes_start(const struct og_config *cfg, int nworkers);
/* Per worker, before its loop runs (not the admin loop). */
void mailbox_routes_worker(uv_loop_t *loop, int id);
/* On a worker's thread once its loop has ended. */
void mailbox_routes_worker_exit(void);

void mailbox_on_send(struct http_req *req);    /* POST /v1/mailbox/{channel} */
void mailbox_on_recv(struct http_req *req);    /* GET  /v1/mailbox/{channel} */
void mailbox_on_ack(struct http_req *req);     /* POST /v1/mailbox/{channel}/ack */
void mailbox_on_nack(struct http_req *req);    /* POST /v1/mailbox/{channel}/nack */
void mailbox_on_lease(struct http_req *req);   /* POST /v1/mailbox/{channel}/lease */
void mailbox_on_dead(struct http_req *req);    /* GET  /v1/mailbox/{channel}/dead */
void mailbox_on_redrive(struct http_req *req); /* POST /v1/mailbox/{channel}/dead/redrive */
void mailbox_on_stats(struct http_req *req);   /* GET  /admin/mailbox/{channel} (admin) */

#endif
