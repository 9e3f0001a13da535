/*
 * health.h — liveness, readiness and the metrics endpoint (DESIGN §4, §8).
 *
 * Readiness is a set of named keys, each a function answering "ok?". A key
 * that is not ok is listed under "missing" in the 503 body. Modules add their
 * own keys at start-up (e.g. downstream_health_ok).
 */
#ifndef OPS_HEALTH_H
#define OPS_HEALTH_H

#include <stdbool.h>

#include "http/request-t.h"

typedef bool (*ready_fn)(void);

/* Start-up only: add a readiness key. */
void ready_register(const char *key, ready_fn fn);

/* Whether the key named so is ok right now (true for an unknown key). */
bool ready_key_ok(const char *key);

/* Whether every key is ok right now. */
bool ready_all(void);

void health_on_healthz(struct http_req *req);
void health_on_readyz(struct http_req *req);
void health_on_metrics(struct http_req *req);

/* Start-up only: whether this node keeps its data in RAM only (micronode:
 * every service in process, nothing written to disk), said by /readyz as
 * "amnesia". */
void health_set_amnesia(bool on);

#endif
