/* mv-pool: run one function over many items on a pool of threads, and
 * wait until every item pushed so far has run.  The pool keeps no result:
 * each item is the caller's, written by the function (one thread per item,
 * so no lock is needed for an item's own fields) and read after
 * mv_pool_wait.  For work that is CPU-bound and needs no database
 * connection (parsing, extraction, classification: index --reextract,
 * retention apply).
 *
 * Ownership: mv_pool_new returns a pool freed with mv_pool_free, which
 * waits for the items still pushed; items and context stay the caller's. */
#ifndef MV_POOL_H
#define MV_POOL_H

#include <glib.h>

typedef struct mv_pool mv_pool;
typedef void mv_pool_fn(void *item, void *context);

/* A pool of threads (one per processor, at most max_threads, at least
 * one), or NULL when no thread could be started. */
mv_pool *mv_pool_new(mv_pool_fn *fn, void *context, guint max_threads);

void mv_pool_push(mv_pool *pool, void *item);

/* Until every item pushed has run. */
void mv_pool_wait(mv_pool *pool);

void mv_pool_free(mv_pool **pool);

#endif
