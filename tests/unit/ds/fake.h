/*
 * fake.h — the downstream core on a real loop over a fake backend: every
 * service's calls are recorded instead of sent, and a test answers them
 * (fake_answer) as a backend would, later. Used by the call lifecycle and
 * coalescing tests.
 */
#ifndef TESTS_UNIT_DS_FAKE_H
#define TESTS_UNIT_DS_FAKE_H

#include "ds/call.h"

#define FAKE_MAX_SENDS 16

struct fake {
    struct og_config cfg;
    const struct og_config *cfgp; /* the worker's snapshot slot: &cfg */
    uv_loop_t loop;
    struct ds_worker *dw;                 /* the downstream handle of worker 0 on loop */
    struct ds_call *sent[FAKE_MAX_SENDS]; /* attempts, in order */
    int nsent;
    int naborted;
    int send_result; /* what send returns (0: accepted) */
    int untried;     /* endpoints the backend still offers a call (0: a set of one) */
    bool closed;     /* fake_close_loop ran */
};

extern struct fake fake;

/* What a test callback saw. */
struct fake_got {
    int n; /* callbacks so far */
    int code;
    enum og_err err;
    bool coalesced;
    int attempts;
};

/* A ds_cb recording into the struct fake_got at arg. */
void fake_on_resp(void *arg, struct ds_resp *r);

/* An idempotent, coalescable storage read of the object whose bytes are
 * addr, due in 30 s (never reached: the tests answer first, even under
 * valgrind). */
struct ds_req fake_read(const char *addr);

/* The backend answers attempt c: code, or code 0 with err. */
void fake_answer(struct ds_call *c, int code, enum og_err err);

/* Criterion fixtures: a worker with its loop, the fake backend for every
 * service; the teardown only cleans up (a failed assertion there does not
 * fail the test). */
void fake_setup(void);
void fake_teardown(void);

/* The end of every test on the fake: run the loop dry and require it to
 * close cleanly (no handle left, none freed while the loop still knew it). */
void fake_close_loop(void);

#endif
