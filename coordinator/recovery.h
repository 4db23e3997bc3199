/*
 * recovery.h - rebuilding the shared state at start-up (I5): the last
 * checkpoint's segments, then the WAL after it; and the offline checks
 * behind `dotdb check` (dotdbd --check).
 */
#ifndef DOTDB_RECOVERY_H
#define DOTDB_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine.h"
#include "manifest.h"

/*
 * Load the checkpoint described by *mf into the (empty) engine: base LSN,
 * collections, documents.  Segments are read, verified and decompressed
 * on up to cfg->worker_threads threads while this thread inserts them in
 * manifest order.  Any damage fails with DOTDB_ECORRUPT and err naming
 * the file and byte offset; nothing is skipped.  *docs gets the number of
 * documents loaded.
 */
int recovery_load(const dotdb_config *cfg, const char *dir, engine *e, const manifest *mf,
                  uint64_t *docs, char *err, size_t errlen);

/*
 * Verify a data directory without changing it (works while a coordinator
 * runs): the manifest, every segment block's checksum and every document
 * in it, the counts the manifest records, every WAL record's checksum and
 * the continuity of the WAL with the checkpoint.  Prints one line per file
 * and one per damage (file and offset) to out, then a summary.  Returns 0
 * when everything is intact, 1 when anything is damaged, 2 when the
 * directory cannot be read.
 */
int recovery_check(const dotdb_config *cfg, const char *dir, int coordinator_running, void *out);

/* Copy a backup (a data directory made by `dotdb backup`) from src into
 * dst, which must not exist or be empty: system/, collections/, wal/,
 * every file fdatasynced.  The caller then checks dst (recovery_check).
 * *files counts the files copied. */
int recovery_restore(const char *src, const char *dst, uint64_t *files, char *err, size_t errlen);

#endif /* DOTDB_RECOVERY_H */
