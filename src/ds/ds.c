/*
 * ds.c — the downstream module's set-up: which backend serves each service
 * (local.c in process, remote.c over OAP/1), the readiness key over their
 * health, and the per-worker state (struct ds_worker). The call itself is in
 * call.c; see there for the map of the other files.
 */
#include "ds/ds.h"

#include <stdio.h>
#include <stdlib.h>

#include "ds/call.h"
#include "ds/stats.h"
#include "oap/oap-t.h"
#include "ops/health.h"

const char *const ds__service_names[DS__COUNT] = {"index", "storage", "mailbox"};
int ds__remote_pool_size = 2;

/* Per-worker state, by worker id (ds_worker_init); the table is made at
 * start-up, each entry used by its worker only. */
static struct ds_worker *workers;
static int nstates;

const char *ds_service_name(enum ds_service s)
{
    return s < DS__COUNT ? ds__service_names[s] : "?";
}

uint16_t ds__app_id(enum ds_service s)
{
    static const uint16_t ids[DS__COUNT] = {OAP_APP_INDEX, OAP_APP_STORAGE, OAP_APP_MAILBOX};
    return ids[s];
}

bool ds_is_micronode(void)
{
    for (int i = 0; i < DS__COUNT; i++)
        if (ds__backends[i] != &ds__local_backend)
            return false;
    return true;
}

static bool key_downstream_health(void)
{
    for (int s = 0; s < DS__COUNT; s++)
        if (ds__backends[s]->healthy && !ds__backends[s]->healthy((enum ds_service)s))
            return false;
    return true;
}

int ds_start(const struct og_config *cfg, int nworkers)
{
    bool any_local = false, any_remote = false;
    for (int s = 0; s < DS__COUNT; s++) {
        if (cfg->ds_addr[s][0]) {
            ds__backends[s] = &ds__remote_backend;
            any_remote = true;
        } else {
            ds__backends[s] = &ds__local_backend;
            any_local = true;
        }
        atomic_store(&retry_budget[s], RETRY_BUDGET_CAP / 2);
    }
    ds__remote_pool_size = (int)cfg->ds_pool_size;
    if (any_local && ds__local_start(cfg) != 0)
        return -1;
    if (any_remote && ds__remote_start(cfg) != 0)
        return -1;
    health_set_amnesia(ds_is_micronode()); /* in-process engines keep RAM only */
    nstates = nworkers;
    workers = calloc((size_t)nworkers, sizeof(*workers));
    if (workers == NULL || stats_start(nworkers) != 0)
        return -1;
    ready_register("downstream_health_ok", key_downstream_health);
    return 0;
}

struct ds_worker *ds_worker_init(int id, uv_loop_t *loop, const struct og_config *const *cfg,
                                 ds_drained_fn drained, void *arg)
{
    struct ds_worker *dw = &workers[id < nstates ? id : nstates - 1];
    dw->id = id;
    dw->loop = loop;
    dw->cfg = cfg;
    dw->drained = drained;
    dw->drained_arg = arg;
    retry_rng_seed(&dw->rng, 0);
    dw->prober = id == nstates - 1; /* the last loop is the admin's */
    for (int s = 0; s < DS__COUNT; s++)
        if (ds__backends[s]->worker_init)
            ds__backends[s]->worker_init(dw, (enum ds_service)s);
    return dw;
}

void ds_stop(void)
{
    ds__local_stop();
}
