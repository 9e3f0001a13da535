/*
 * authz.h — capability and policy checks on each request, before any fan-out
 * (DESIGN §7).
 *
 * A route that needs a capability carries ROUTE_NEEDS(scope bits) in its
 * flags. The check reads `Authorization: Bearer <token>` (header name from
 * auth_header), verifies it through the worker's verification cache against
 * the current root keys, checks the route's scope, classifies the request
 * (anon / authed / internal) and evaluates the policy bundle. It answers
 * 401/403 itself; a deny is also one audit log event.
 */
#ifndef AUTH_AUTHZ_H
#define AUTH_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "http/request-t.h"

#define ROUTE_F_AUTH            1u
#define ROUTE_NEEDS(scope_bits) (ROUTE_F_AUTH | ((unsigned)(scope_bits) << 8))

struct og_config;

/* Start-up: load root keys and the policy bundle, and keep per-worker
 * counters and verification caches for nworkers loops (http_ctx ids 0 ..
 * nworkers - 1); retired key sets are freed by a timer on admin_loop, the
 * loop authz_reload runs on (it need not run yet). With demo and no key
 * file, a fresh random key "dev" is made in memory and a dev token with
 * every scope for tenant "demo" (24 h) is written to dev_token. Returns 0 or
 * -1 with a message on stderr. */
int authz_start(const struct og_config *cfg, uv_loop_t *admin_loop, int nworkers, bool demo,
                char *dev_token, size_t cap);

/* SIGHUP: reload keys and policy from nu. On error nothing changes, err is
 * set and readiness key policy_ok / keys_ok turns false. */
int authz_reload(const struct og_config *nu, char *err, size_t errlen);

/* True: go on (req->klass and req->tenant are set). False: answered. */
bool authz_check(struct http_req *req);

void authz_stop(void);

#endif
