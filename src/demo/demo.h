/*
 * demo.h — the demo data set, generated deterministically (no downloads).
 *
 * A few hundred user and article views whose manifests reference JSON
 * documents, images and a few MiB of media objects, plus mailbox channels
 * with messages. Loaded in process by `omnigate --demo` (micronode) and into
 * remote services by `omnigate seed`. Names: user-000 … user-199,
 * article-000 … article-099, clip-1 … clip-4; channels user-NNN, news,
 * comments-article-NNN.
 */
#ifndef DEMO_DEMO_H
#define DEMO_DEMO_H

#include <stddef.h>
#include <stdint.h>

#define DEMO_USERS    200
#define DEMO_ARTICLES 100
#define DEMO_CLIPS    4

struct proto_op;

/* emit is called once per operation, in order: op is the typed request
 * (engines/proto/op-t.h; op->app is OAP_APP_STORAGE / OAP_APP_INDEX /
 * OAP_APP_MAILBOX), valid during the call; body may be NULL. Returns 0 or
 * the first non-zero emit result (or -1 if memory ran out). */
typedef int (*demo_emit_fn)(void *arg, const struct proto_op *op, const uint8_t *body,
                            size_t body_len);
int demo_generate(demo_emit_fn emit, void *arg);

#endif
