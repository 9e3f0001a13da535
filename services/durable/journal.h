/*
 * journal.h — what the mailbox and index services log, and how their logs
 * and snapshots go back into the engines (the files themselves: wal.h;
 * docs/OPERATIONS.md, "Durability").
 *
 * A record says what changed, not what was asked: a send is logged with the
 * id the engine gave it, an index put with the manifest it stored. So replay
 * needs no clock and no luck: ids come back as they were issued, whatever
 * the limits say at replay, and every record can be applied twice.
 */
#ifndef SERVICES_DURABLE_JOURNAL_H
#define SERVICES_DURABLE_JOURNAL_H

#include <stdint.h>

#include "engines/proto/proto.h"
#include "services/durable/wal.h"

/* Log the change that op (with body[0..n), executed at engine time now_ms
 * and answered rs) made, if it is one that changes what a restart must
 * keep (the table in journal.c) and it succeeded. Returns the log position
 * the answer must wait for (> 0); 0 when there is nothing to log (a read, a
 * refusal, a duplicate send); -1 when the record could not be made
 * (memory): the change is made but will not survive a restart, so the
 * caller answers 500 and the client retries. */
int64_t journal_log(struct wal *w, const struct proto_op *op, const uint8_t *body, size_t n,
                    uint64_t now_ms, const struct proto_resp *rs);

/* wal_apply_fn for replay: arg is the struct engines to restore into. */
int journal_apply(void *arg, const struct walrec *r);

/* wal_dump_fn for snapshots: arg is the struct engines to read out. Runs on
 * a threadpool thread while the loop thread changes the engine. */
int journal_dump(void *arg, struct wal_snap *s);

#endif
