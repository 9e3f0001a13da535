/*
 * fault.h — fault injection of the reference services (DESIGN §2): added
 * latency, an error rate, stalls, dropped connections and corrupted bytes,
 * for chaos and performance tests.
 *
 * Settings come from flags and POST /faults (admin.c) and are read per
 * request; the rolls are made by the request path (oapsrv.c) and each hit
 * is counted in g_svc.faults. Everything runs on the service's one loop.
 */
#ifndef SERVICES_FAULT_H
#define SERVICES_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engines/proto/proto.h"

#define SVC_FAULT_MAX_MS 60000

/* Fault settings: changed by flags and POST /faults, read per request. */
struct fault_cfg {
    uint32_t latency_ms; /* added to every answer */
    uint32_t jitter_ms;  /* plus uniform 0..jitter_ms */
    double error_rate;   /* answer 503 {"error":"injected"} without executing */
    double stall_rate;   /* never answer the request */
    double drop_rate;    /* close the connection on receipt */
    double corrupt_rate; /* flip a byte in a copy of served storage bytes */
    /* which storage answers corrupt_rate applies to: "any", or one op
     * ("get", "proof", "outboard"); "" is "any" */
    char corrupt_op[12];
};

enum fault_kind { FAULT_LATENCY, FAULT_ERROR, FAULT_STALL, FAULT_DROP, FAULT_CORRUPT, FAULT__N };

/* Apply one fault setting by name ("latency_ms", ...) from text. Returns 0
 * or -1 when the name is unknown or the value out of range (nothing
 * changes). */
int fault_set(struct fault_cfg *f, const char *name, const char *value);
/* The settings and injected counters as a JSON object into out. */
int fault_json(const struct fault_cfg *f, char *out, size_t cap);

/* The rolls, in the order a request meets them. Each uses the current
 * settings (g_svc.fault) and counts a hit. */

/* Close the connection on receipt of a request (HELLO is never faulted). */
bool fault_drop(void);
/* Never answer the request (it stays in flight until its connection ends). */
bool fault_stall(void);
/* Answer 503 {"error":"injected"} without executing: fills rs. */
bool fault_error(struct proto_resp *rs);
/* After executing a storage read: maybe serve a copy of the bytes with one
 * byte flipped, never the engine's blob (other readers share it). */
void fault_corrupt(uint16_t app, struct proto_resp *rs);
/* Milliseconds to delay the answer by (latency plus jitter), 0 for none. */
uint32_t fault_delay_ms(void);

#endif
