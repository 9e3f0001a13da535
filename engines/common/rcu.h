/*
 * engines/common/rcu.h — lock-free reads of published snapshots, with
 * epoch-based reclamation (RCU-style).
 *
 * An engine keeps the state its readers need in immutable objects reached
 * from one atomic pointer. A writer (serialised by the engine's own mutex)
 * builds the changed objects, publishes them with one atomic store, and
 * retires what the new state no longer reaches. A retired object is freed
 * only once no reader can still hold it: every reader brackets its accesses
 * with eng_rcu_enter() / eng_rcu_exit(), which announce the global epoch on
 * a slot of the calling thread's own (a cache line nobody else writes);
 * retiring tags the object with the epoch and advances it; reclaiming frees
 * the objects tagged below the oldest epoch a reader is still inside.
 *
 * Cost: a reader pays one sequentially consistent store to its own slot on
 * entry and one release store on exit — no shared cache line is written,
 * so readers on different workers do not contend. A writer pays one atomic
 * increment per retired object and a scan of the reader slots (one per
 * thread that ever read) when it reclaims.
 *
 * Ordering contract (the proof is in rcu.c): published pointers are stored
 * and loaded with memory_order_seq_cst (on x86-64 a store is an xchg, a load
 * a plain mov); what they point to is written before the store and never
 * after. A reader must not block, sleep or take a lock inside a section:
 * that would hold back reclamation everywhere (it never blocks a writer).
 *
 * Threads: a thread gets its slot at its first eng_rcu_enter() (one small
 * allocation) and gives it back when it exits, for the next thread to use.
 * Sections nest. The retired lists are not thread-safe: each belongs to one
 * writer lock.
 */
#ifndef ENGINES_COMMON_RCU_H
#define ENGINES_COMMON_RCU_H

#include <stddef.h>
#include <stdint.h>

struct eng_rcu_head;
typedef void (*eng_rcu_free_fn)(struct eng_rcu_head *h);

/* Embedded in every object that is retired (STYLE §15: no allocation to
 * retire, so retiring cannot fail). */
struct eng_rcu_head {
    struct eng_rcu_head *next;
    uint64_t epoch;
    eng_rcu_free_fn free;
};

/* Objects waiting for their readers to leave, oldest first. Zero-initialised
 * is empty. Guarded by its owner's writer lock. */
struct eng_rcu_list {
    struct eng_rcu_head *head, *tail;
    size_t n;
};

/* Enter a read section on this thread. Returns ENG_OK, or ENG_E_NOMEM when
 * this is the thread's first section and its slot cannot be allocated (then
 * the caller must not read and must not call eng_rcu_exit()). */
__attribute__((warn_unused_result)) int eng_rcu_enter(void);

/* Leave the section entered last. Objects read inside it must not be used
 * after, except through references taken inside (eng_buf_ref()). */
void eng_rcu_exit(void);

/* Hand h, already unreachable from every published pointer, to the list;
 * `free` runs once no reader can hold it (from eng_rcu_reclaim() or
 * eng_rcu_release()). */
void eng_rcu_retire(struct eng_rcu_list *l, struct eng_rcu_head *h, eng_rcu_free_fn free);

/* Free every object of the list that no reader can still hold. Returns how
 * many are left waiting. */
size_t eng_rcu_reclaim(struct eng_rcu_list *l);

/* Free every object of the list now. Only when no reader can be left (the
 * engine is being freed). */
void eng_rcu_release(struct eng_rcu_list *l);

#endif
