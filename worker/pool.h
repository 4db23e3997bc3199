/*
 * pool.h - the coordinator's background threads (memory.worker_threads).
 *
 * Jobs are functions run on a worker thread; when one finishes, the pool
 * calls `notify` (from the worker thread) so the owner can wake its event
 * loop (the coordinator passes a function that does ev_async_send), and the
 * owner collects finished jobs on its own thread with wk_collect().  The
 * pool knows nothing of libev or of the database.
 *
 * Used for the WAL fdatasync of pipelined group commit; checkpoints, index
 * builds and compaction will run here too.
 */
#ifndef DOTDB_POOL_H
#define DOTDB_POOL_H

#include <stddef.h>

typedef struct wk_pool wk_pool;
typedef void (*wk_fn)(void *arg);

/* Start nthreads workers.  notify(notify_arg) is called from a worker after
 * each job.  *out owned by the caller (wk_destroy).  DOTDB_ENOMEM/EOS. */
int wk_create(int nthreads, void (*notify)(void *), void *notify_arg, wk_pool **out);
/* Queue fn(arg); arg stays owned by the caller until wk_collect hands it
 * back.  DOTDB_ENOMEM. */
int wk_submit(wk_pool *p, wk_fn fn, void *arg);
/* Hand every finished job's arg to done(arg, ctx) on the calling thread, in
 * completion order.  Returns how many. */
size_t wk_collect(wk_pool *p, void (*done)(void *arg, void *ctx), void *ctx);
/* Block until every submitted job has finished (they still need wk_collect). */
void wk_wait_idle(wk_pool *p);
/* Finish queued jobs, stop the threads, free.  NULL ok. */
void wk_destroy(wk_pool *p);

#endif /* DOTDB_POOL_H */
