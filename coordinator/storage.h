/*
 * storage.h - the coordinator's side of checkpoints and backups: when to
 * take one, handing it to a worker thread, adopting the result (the new
 * manifest, the WAL segments it makes unnecessary), and their statistics.
 *
 * Single-threaded like the engine: only the loop thread calls these; the
 * work itself (worker/checkpoint.c, the backup copy) runs on the pool.
 * Requests are numbered: storage_request returns the generation the caller
 * waits for, and storage_completed_gen tells when it is done, with the
 * outcome in storage_last_result.  The server parks a response on that
 * generation so a `dotdb checkpoint` returns when its checkpoint is durable.
 *
 * Triggers (storage_tick): the retained WAL reaches
 * storage.checkpoint_wal_size and storage.checkpoint_wal_percent of the
 * data the last checkpoint wrote, or storage.checkpoint_interval_ms passed
 * with changes since the last checkpoint; explicit requests; shutdown.
 * A failed checkpoint is retried no sooner than 5 s later (a full disk
 * does not turn into a busy loop); its error stays visible in stats.
 */
#ifndef DOTDB_STORAGE_H
#define DOTDB_STORAGE_H

#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "engine.h"
#include "manifest.h"
#include "pool.h"
#include "wal.h"

typedef struct storage storage;

/* *mf (the manifest loaded at start) is moved into the storage object.
 * *out owned by the caller (storage_destroy).  DOTDB_ENOMEM. */
int storage_create(const dotdb_config *cfg, const char *dir, engine *eng, wal *log,
                   wk_pool *pool, manifest *mf, storage **out);
void storage_destroy(storage *st);

/* Start a checkpoint if a trigger fired and none runs. */
void storage_tick(storage *st, int read_only);

/*
 * Ask for a checkpoint that covers everything published now (force: rewrite
 * even unchanged collections, only: "" or one collection: `dotdb compact`),
 * or, with backup_dest non-NULL, for an online backup into that directory
 * (which must not exist or be empty) after that checkpoint.  Returns the
 * generation to wait for in *gen.  DOTDB_ENOMEM / DOTDB_EREADONLY.
 */
int storage_request(storage *st, int force, const char *only, const char *backup_dest,
                    uint64_t *gen);

/* A pool job finished: 1 if it was one of ours (handled), else 0. */
int storage_job_done(storage *st, void *arg);

/* Highest generation completed, and the outcome of the latest one: status
 * and a JSON summary (owned by st, valid until the next completion). */
uint64_t storage_completed_gen(const storage *st);
int storage_last_result(const storage *st, const char **json);

/* LSN pinned by a running checkpoint (0 = none): reclamation must treat it
 * as a reader's snapshot (I7). */
uint64_t storage_pin(const storage *st);

/* Checkpoint synchronously on this thread (clean shutdown).  Waits for a
 * running job first (the pool must be idle-able). */
int storage_checkpoint_now(storage *st, char *err, size_t errlen);

/* {"checkpoint_lsn", "checkpoint_age_s", "checkpoints", "last_error",
 *  "wal_bytes", "running", "collections": {name: {"disk_bytes",
 *  "raw_bytes", "segments", "compression_ratio"}}} appended to out. */
int storage_stats_json(const storage *st, dbuf *out);

/* engine_json_extra for one collection: ",\"disk_bytes\":N,\"disk_raw_bytes\":N,
 * \"segments\":N,\"compression_ratio\":R,\"checkpoint_lsn\":L,
 * \"checkpoint_age_s\":S" (zeros when the checkpoint does not hold it yet). */
int storage_coll_json(void *st, const char *name, size_t len, dbuf *out);

/* Write text (the whole stats JSON) to DIR/system/stats.json (tmp +
 * rename; statistics need no fsync). */
void storage_write_stats(const storage *st, const char *text, size_t len);

#endif /* DOTDB_STORAGE_H */
