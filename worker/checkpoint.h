/*
 * checkpoint.h - writing a checkpoint from a snapshot of the data object.
 *
 * The coordinator's loop thread fills a ckpt_job (the snapshot LSN, which
 * it pins in its reclamation so nothing reachable from it is freed, and a
 * copy of the current manifest), hands it to a worker thread that runs
 * ckpt_run, and on completion adopts job->next as the current manifest
 * and deletes the WAL segments wholly at or below job->lsn.  ckpt_run
 * reads the shared region exactly like a client snapshot (snap.h) while
 * the loop thread goes on writing, so writers never wait for it.
 *
 * What ckpt_run does, in this order (each step durable before the next):
 *   1. for each collection visible at lsn: if the previous manifest holds
 *      it (same name and create_lsn) and nothing changed since that
 *      checkpoint (shm_coll.modified_lsn <= prev->checkpoint_lsn), keep its
 *      segments by reference; else write its live documents into new
 *      segment files collections/<name>/data/segment_NNN.db (numbers above
 *      any file present, so no file the old manifest names is touched),
 *      fdatasync each, fsync the data directory, and replace
 *      collections/<name>/metadata.json;
 *   2. write the new manifest (manifest_write: tmp, fsync, rename, fsync);
 *   3. remove segment files no manifest names any more, and the
 *      directories of collections no longer in it (ckpt_cleanup).
 * A failure before 2 removes what this job wrote and leaves the previous
 * checkpoint in force; after 2 the new checkpoint stands (a failed cleanup
 * only leaves garbage that the next start removes).
 */
#ifndef DOTDB_CHECKPOINT_H
#define DOTDB_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

typedef struct ckpt_job {
    /* in (owned by the loop thread, read-only during the run) */
    const uint8_t *base;     /* the coordinator's mapping of the data object */
    uint64_t lsn;            /* snapshot: published, pinned by the caller */
    const char *dir;         /* data directory */
    unsigned codec;          /* SEG_CODEC_* */
    uint64_t segment_size;
    int force;               /* rewrite collections even if unchanged (compact) */
    char only[65];           /* with force: "" all, else just this collection */
    manifest prev;           /* a copy of the manifest in force */
    int64_t now_ms;
    /* out */
    int rc;
    int durable;             /* 0 with rc OK: renamed, but the directory fsync failed */
    char err[700];
    manifest next;           /* the new manifest on success (caller frees) */
    uint64_t colls_written, colls_kept, docs_written, bytes_written, raw_written;
    double seconds;
} ckpt_job;

/* Run the checkpoint (any thread).  job->rc / err / next as above. */
void ckpt_run(ckpt_job *job);

/* Remove segment files that m does not name, collection directories of
 * collections m does not hold, and a stray manifest .tmp.  Errors are
 * reported in err (first one) but the sweep goes on; DOTDB_OK or the
 * first error code. */
int ckpt_cleanup(const char *dir, const manifest *m, char *err, size_t errlen);

/* Free a job's manifests. */
void ckpt_job_free(ckpt_job *job);

#endif /* DOTDB_CHECKPOINT_H */
