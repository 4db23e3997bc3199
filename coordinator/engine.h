/*
 * engine.h - the coordinator's state machine over the data object:
 * validate and apply a batch (unpublished), publish, undo, reclaim.
 *
 * The commit path (commit.c) drives it: for each request of a group it
 * calls engine_apply() with the next LSN, appends the batch to the WAL,
 * and once the WAL is written (and synced per sync_mode) calls
 * engine_publish() with the group's last LSN.  If the WAL write fails it
 * calls engine_undo() and fails the whole group.  Recovery feeds every WAL
 * record through engine_apply() + engine_publish().
 *
 * Applied but unpublished versions carry begin_lsn > commit_lsn, so no
 * reader sees them.  Memory that stops being reachable is retired at
 * publication (or undo), never freed while a snapshot might hold it.
 * Single-threaded: only the coordinator's loop thread calls these.
 */
#ifndef DOTDB_ENGINE_H
#define DOTDB_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "region.h"

typedef struct engine engine;

/* Create the data object per cfg (buffer_pool_size, max_size) and publish
 * an empty database at LSN 1.  *out owned by the caller (engine_destroy). */
int engine_create(const dotdb_config *cfg, uint64_t epoch, engine **out, char *err,
                  size_t errlen);
void engine_destroy(engine *e);
shm_region *engine_region(engine *e);

/*
 * Validate and apply the batch (wire.h encoding, untrusted) at `lsn`,
 * which must be engine_applied_lsn() + 1.  snapshot_lsn: 0 for a plain
 * write, else the snapshot of an optimistic transaction (DOTDB_ECONFLICT if
 * anything it writes or checks changed after it).  All or nothing: on
 * failure every change of this batch is undone and the LSN stays unused;
 * err names the operation and the reason.
 */
int engine_apply(engine *e, uint64_t lsn, uint64_t snapshot_lsn, const uint8_t *batch,
                 size_t len, char *err, size_t errlen);

/*
 * What applying a request produced besides the state change.  A batch
 * with derived operations (BOP_MODIFY, BOP_UPDATE_MANY, BOP_DELETE_MANY:
 * updates by operators and by filter) is resolved against the current
 * state into plain PUT / DELETE operations: `log` then holds that resolved
 * batch, which is what the WAL must record (is_resolved = 1), and `reply`
 * the per-operation counts for the client (wire.h).  Caller-owned
 * buffers: initialise with dbuf_init, free with dbuf_free.
 */
/* What engine_check_docs learnt about one operation of a batch, for the
 * apply of the same bytes (all zero for an operation that is not a PUT or
 * UPDATE). */
typedef struct engine_doc_meta {
    uint64_t hash;   /* snap_id_hash of the document's id */
    uint32_t id_pos; /* the id's bytes are at doc + id_pos */
    uint32_t id_len; /* 0: nothing known */
} engine_doc_meta;

typedef struct engine_out {
    int64_t now_ms;  /* in: the time $currentDate writes */
    int docs_checked; /* in: engine_check_docs() passed on this very batch, whose
                       * bytes have stayed in the coordinator's memory since:
                       * its PUT / UPDATE documents are not validated again */
    const engine_doc_meta *meta; /* in, with docs_checked: what it found, one
                                  * entry per operation, or NULL */
    size_t n_meta;
    int is_resolved; /* out: log `log` instead of the request */
    dbuf log;
    dbuf reply;
} engine_out;

/* engine_apply, with the resolved batch and reply in *out (may be NULL:
 * then derived operations are resolved but nothing is returned). */
int engine_apply_ex(engine *e, uint64_t lsn, uint64_t snapshot_lsn, const uint8_t *batch,
                    size_t len, engine_out *out, char *err, size_t errlen);

/*
 * The document checks of engine_apply, alone and without touching any
 * state: the batch's structure, and every PUT / UPDATE document against
 * limits.max_document_size and codec_validate_doc (I9).  For a batch that
 * arrives in fragments (WIRE_F_MORE): each fragment is checked as it
 * comes, while the client is still encoding the next, and the assembled
 * batch is applied with docs_checked.  first_op numbers the fragment's
 * operations in messages ("operation N: ...").  With meta (caller-owned,
 * may be NULL) one engine_doc_meta per operation of the fragment is
 * appended to it, for engine_out.meta.
 */
int engine_check_docs(engine *e, const uint8_t *batch, size_t len, uint32_t first_op, dbuf *meta,
                      char *err, size_t errlen);

/*
 * Applying a batch that arrives in fragments while it arrives
 * (docs/ARCHITECTURE.md, "A batch in fragments is applied as it comes").
 * engine_apply_part applies the operations of one fragment, checked by
 * engine_check_docs (meta: its n_meta entries for them; first_op: the
 * index of the fragment's first operation in the batch, for messages), at
 * the LSN the batch will have, engine_applied_lsn() + 1, without advancing
 * the applied LSN: what it links stays invisible (no publish can pass the
 * applied LSN) and engine_undo(e, engine_applied_lsn(e) + 1) removes all
 * of it.  Only fragments of BOP_PUT operations are taken: DOTDB_EINVAL for
 * any other (nothing of the fragment applied).  On any failure the
 * fragment's operations applied so far stay until that undo; the caller
 * must undo before anything else is applied.  engine_commit_part ends the
 * batch once every fragment, the last frame's too, is applied: returns its
 * LSN, now the applied one.
 */
int engine_apply_part(engine *e, const uint8_t *frag, size_t len, const engine_doc_meta *meta,
                      size_t n_meta, uint32_t first_op, char *err, size_t errlen);
uint64_t engine_commit_part(engine *e);

/* Make everything applied up to `lsn` visible (seq_cst store of
 * commit_lsn) after retiring what it superseded. */
void engine_publish(engine *e, uint64_t lsn);

/* Undo every applied, unpublished batch with LSN >= from_lsn. */
void engine_undo(engine *e, uint64_t from_lsn);

/* Free what no snapshot can reach; min_active = smallest nonzero reader
 * slot LSN (UINT64_MAX when none).  Also removes deleted documents' slots
 * and dropped collections once invisible. */
void engine_reclaim(engine *e, uint64_t min_active);

uint64_t engine_applied_lsn(const engine *e);
uint64_t engine_published_lsn(const engine *e);
/* Set the LSN of an empty engine before replay (checkpoint LSN). */
void engine_set_base_lsn(engine *e, uint64_t lsn);

/*
 * Loading a checkpoint at start-up, after engine_set_base_lsn(checkpoint
 * LSN) and before any engine_apply.  Documents become versions stamped
 * with the checkpoint LSN, visible at once (no reader exists yet).
 * engine_load_collection creates the collection with its original
 * create_lsn (DOTDB_EEXISTS if it is there already), its primary table
 * sized for expect_docs.  engine_load_doc validates the document (I9:
 * segment files are input) and refuses an id the collection already holds
 * (DOTDB_ECORRUPT); err says why.
 */
int engine_load_collection(engine *e, const char *name, size_t len, uint64_t create_lsn,
                           uint64_t modified_lsn, uint64_t expect_docs, char *err, size_t errlen);
int engine_load_doc(engine *e, const char *name, size_t len, const uint8_t *doc, size_t doc_len,
                    char *err, size_t errlen);

/* Append a JSON object with per-collection statistics to out (coll NULL:
 * an array of all collections; otherwise the one named, DOTDB_ENOCOLL). */
int engine_stats_json(engine *e, const char *coll, size_t coll_len, dbuf *out);
/* The same, calling extra(ctx, name, len, out) inside each collection's
 * object to append more members (",\"key\":value..."). */
typedef int (*engine_json_extra)(void *ctx, const char *name, size_t len, dbuf *out);
int engine_stats_json_ex(engine *e, const char *coll, size_t coll_len, engine_json_extra extra,
                         void *ctx, dbuf *out);
/* Append the JSON statistics of the data object (memory) to out. */
int engine_memory_json(engine *e, dbuf *out);

#endif /* DOTDB_ENGINE_H */
