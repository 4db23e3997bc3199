/*
 * dotdb.h - the public interface of libdotdb-shm, DotDB's client library.
 *
 * A DotDB database is a data directory owned by one coordinator process
 * (dotdbd).  Client processes attach with dotdb_open(): they receive the
 * coordinator's shared-memory data object read-only and read documents
 * straight from it, without a system call and without a lock.  Writes go to
 * the coordinator over a Unix-domain socket; a write call returns once the
 * write is durable according to the database's sync_mode and visible to
 * every attached process (read-your-writes across processes).
 *
 * Conventions
 *   - Every function that can fail returns DOTDB_OK (0) or a negative
 *     DOTDB_E* code.  dotdb_strerror(code) names the code; dotdb_errmsg(db)
 *     gives the detail of the last failure on that handle (which key, which
 *     byte, which limit).
 *   - Out-parameters come last and are cleared on entry: a call that fails
 *     leaves NULL / 0 in them, never a half-built result.
 *   - Strings passed in are borrowed for the duration of the call only.
 *   - Memory returned to the caller (char ** out-parameters) is owned by the
 *     caller and released with dotdb_free().
 *   - Zero-copy views (dotdb_doc, dotdb_value) point into shared memory and
 *     are valid until the transaction (snapshot) that produced them ends.
 *
 * Threads
 *   A dotdb handle may be shared by several threads.  Reads
 *   (dotdb_get, dotdb_txn_begin with DOTDB_TXN_READONLY, dotdb_txn_get,
 *   dotdb_find, dotdb_count) are lock-free and run in parallel; calls that
 *   talk to the coordinator (every write, collection management, stats) are
 *   serialised by a mutex inside the handle.  A dotdb_txn and a
 *   dotdb_cursor belong to one thread at a time.  dotdb_errmsg() returns the
 *   message of the most recent failure on the handle from any thread: read
 *   it right after the failing call in the same thread.  A handle holds at
 *   most DOTDB_MAX_SNAPSHOTS open transactions and cursors at once.
 *
 * Documents
 *   JSON objects of at most max_document_size bytes (16 MiB by default, as
 *   text and encoded), nesting depth 100 and 100000 members in any one
 *   object (limits.max_fields: DOTDB_ETOOBIG, checked by the coordinator),
 *   with a string field "id" of 1 to 255 bytes that is the primary key.  A put without "id" gets a generated one: 24
 *   characters, time-ordered, unique across processes and restarts.
 *   Integers are kept as 64-bit integers and other numbers as doubles.
 *   Collection names match ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$.
 */
#ifndef DOTDB_H
#define DOTDB_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DOTDB_API __attribute__((visibility("default")))
#else
#define DOTDB_API
#endif

/* Status codes (see errors.h for the table). */
enum dotdb_status {
#define DOTDB_XX_ENUM(name, value, msg) DOTDB_##name = value,
    DOTDB_ERRNO_MAP(DOTDB_XX_ENUM)
#undef DOTDB_XX_ENUM
};

#define DOTDB_ID_MAX 255             /* longest id, in bytes */
#define DOTDB_COLL_NAME_MAX 64       /* longest collection name, in bytes */
#define DOTDB_MAX_SNAPSHOTS 64       /* open txns + cursors per handle */
#define DOTDB_PROTOCOL_VERSION 2 /* 2: BATCH in fragments (WIRE_F_MORE) */

typedef struct dotdb dotdb;
typedef struct dotdb_txn dotdb_txn;
typedef struct dotdb_cursor dotdb_cursor;
typedef struct dotdb_doc dotdb_doc;

/* Options for dotdb_open(); zero-initialise, then set what you need. */
typedef struct dotdb_options {
    int no_autostart;    /* 1: fail with DOTDB_ENOCOORD instead of starting dotdbd */
    const char *coordinator_path; /* dotdbd binary for autostart; NULL: next to
                                     this program, then $DOTDB_COORDINATOR, then PATH */
    int connect_timeout_ms;       /* how long to wait for an autostarted
                                     coordinator; 0: 10000 */
    int query_threads;            /* threads a scan may use in this process;
                                     0: $DOTDB_QUERY_THREADS, else the number
                                     of online cores */
    size_t agg_memory_bytes;      /* memory each blocking aggregation stage
                                     ($group, $sort) may hold; 0:
                                     $DOTDB_AGG_MEMORY, else 100 MiB */
    int spin_us;                  /* how long a request polls for its reply
                                     (yielding the CPU between tries) before
                                     it sleeps; 0: $DOTDB_SPIN_US, else 1000
                                     (0 on a one-core machine); < 0: never
                                     poll; at most 1000000 */
} dotdb_options;

/* ---- Errors ---------------------------------------------------------- */

/* Static message for a status code; never NULL, never to be freed. */
DOTDB_API const char *dotdb_strerror(int rc);
/* Static name of a status code ("DOTDB_ENOTFOUND"); never NULL. */
DOTDB_API const char *dotdb_err_name(int rc);
/* Detail of the last failure on db (owned by db, valid until the next call
 * on db).  With db == NULL: the detail of the last dotdb_open() failure in
 * this thread. */
DOTDB_API const char *dotdb_errmsg(dotdb *db);

/* ---- Handles ----------------------------------------------------------- */

/* Attach to the database in directory `dir`, starting a coordinator for it
 * if none runs (unless opts->no_autostart).  opts may be NULL (defaults).
 * On success *out is a new handle owned by the caller (dotdb_close()).
 * Errors: DOTDB_ENOCOORD, DOTDB_EPERM (uid not allowed), DOTDB_ETOOMANY
 * (max_connections reached, or the coordinator's descriptor limit),
 * DOTDB_EVERSION, DOTDB_EOS. */
DOTDB_API int dotdb_open(const char *dir, const dotdb_options *opts, dotdb **out);
/* Detach and free the handle.  Open transactions and cursors must have
 * ended.  NULL is allowed. */
DOTDB_API void dotdb_close(dotdb *db);
/* Release memory that a dotdb_* call returned to the caller.  NULL ok. */
DOTDB_API void dotdb_free(void *p);

/* ---- Coordinator control ------------------------------------------------ */

/* Is a coordinator running for `dir`?  Returns 1 (and its pid in *pid_out,
 * may be NULL), 0 when none runs, or a negative code (DOTDB_EOS). */
DOTDB_API int dotdb_coordinator_status(const char *dir, long *pid_out);
/* Start a coordinator for `dir` in the background and wait until it accepts
 * connections.  config_path (may be NULL) is passed as --config.  opts may
 * be NULL.  DOTDB_ELOCKED if one already runs (message names its pid);
 * DOTDB_ECONFIG / DOTDB_EOS with the coordinator's own message otherwise. */
DOTDB_API int dotdb_coordinator_start(const char *dir, const char *config_path,
                                      const dotdb_options *opts);
/* Ask the coordinator of `dir` to stop (SIGTERM: it finishes the batch in
 * flight, syncs the WAL and removes its socket) and wait up to timeout_ms
 * (0: 30000) for it to exit.  DOTDB_ENOCOORD when none runs, DOTDB_EBUSY on
 * timeout. */
DOTDB_API int dotdb_coordinator_stop(const char *dir, int timeout_ms);

/* Run the coordinator program for `dir` in one of its maintenance modes, in
 * the foreground, with this process's stdout and stderr: args is a
 * NULL-terminated list such as {"--check", NULL} or {"--restore", SRC,
 * NULL} (see dotdbd --help).  The program is found as for
 * dotdb_coordinator_start (opts may be NULL).  Returns 0 and its exit
 * status in *exit_status, or DOTDB_EOS when it cannot be run. */
DOTDB_API int dotdb_coordinator_run(const char *dir, const char *const *args,
                                    const dotdb_options *opts, int *exit_status);

/* ---- Storage administration -------------------------------------------- */

#define DOTDB_CHECKPOINT_COMPACT 0x1u /* rewrite segments even if unchanged */

/* Write a checkpoint of everything committed now and return once it is
 * durable (the manifest renamed into place) and the WAL it covers removed.
 * Collections unchanged since the last checkpoint keep their segments.
 * With DOTDB_CHECKPOINT_COMPACT every collection (or only `coll`, else
 * NULL) is rewritten, dropping deleted and superseded documents.  *json_out
 * (caller frees with dotdb_free) summarises it: {"checkpoint_lsn",
 * "collections_written", "collections_kept", "documents", "bytes",
 * "raw_bytes", "seconds", "wal_segments_removed"} or {"checkpoint_lsn",
 * "unchanged": true}.  DOTDB_EREADONLY after a failed fsync, DOTDB_ENOSPC /
 * DOTDB_EIO when the disk refuses (the previous checkpoint stays valid),
 * DOTDB_ENOCOLL for an unknown coll.  Blocks for as long as it takes. */
DOTDB_API int dotdb_checkpoint(dotdb *db, unsigned flags, const char *coll, char **json_out,
                               size_t *len_out);
/* Online, consistent backup into dest_dir (must not exist or be empty, and
 * lie outside the data directory): a checkpoint, then its segments and the
 * WAL written up to that moment are copied and fsynced while writers go
 * on.  The result is a data directory a coordinator can start on; `dotdb
 * restore` copies it back.  *json_out: {"backup", "checkpoint_lsn",
 * "wal_lsn", "files", "bytes", "seconds"} (dotdb_free).  DOTDB_EEXISTS for
 * a non-empty destination, DOTDB_EBUSY when another backup waits,
 * DOTDB_EPERM unless the caller is the database's owner (the coordinator
 * writes dest_dir with its own rights). */
DOTDB_API int dotdb_backup(dotdb *db, const char *dest_dir, char **json_out, size_t *len_out);

/* ---- Collections ----------------------------------------------------- */

/* Create collection `coll`.  DOTDB_EEXISTS if it exists, DOTDB_EBADNAME if
 * the name is invalid. */
DOTDB_API int dotdb_create_collection(dotdb *db, const char *coll);
/* Drop collection `coll` and all its documents.  DOTDB_ENOCOLL if absent. */
DOTDB_API int dotdb_drop_collection(dotdb *db, const char *coll);
/* The collections visible now, as a JSON array of names (sorted), in a new
 * string owned by the caller (dotdb_free()). */
DOTDB_API int dotdb_list_collections(dotdb *db, char **json_out, size_t *len_out);
/* Statistics of one collection as a JSON object owned by the caller:
 * {"name","documents","versions","bytes","created_lsn"}.
 * With coll == NULL: the whole database (coordinator, memory, WAL,
 * connections, snapshots, and every collection). */
DOTDB_API int dotdb_stats(dotdb *db, const char *coll, char **json_out, size_t *len_out);

/* ---- Documents (JSON text in and out) ---------------------------------- */

/* Store a document (insert, or replace the document with the same id).
 * `json` is len bytes of JSON text (an object).  If it has no "id" one is
 * generated.  When id_out is not NULL it receives the id, NUL-terminated
 * (DOTDB_ID_MAX+1 bytes).  The collection is created if it does not exist
 * (as MongoDB does on insert).  Errors: DOTDB_EJSON, DOTDB_EBADID,
 * DOTDB_ETOOBIG, DOTDB_ETOODEEP, DOTDB_EBADNAME, DOTDB_ENOSPC. */
DOTDB_API int dotdb_put(dotdb *db, const char *coll, const char *json, size_t len,
                        char *id_out);
/* Store several documents in one round trip and one atomic commit: `json`
 * holds JSON objects one after another (JSON lines; any whitespace may
 * separate them, and an object may span lines), or one JSON array of
 * objects.  *count_out (may be NULL) receives how many were stored.  If any
 * document is bad nothing is stored and dotdb_errmsg() names its index
 * (0-based) and the reason.  A large batch goes to the coordinator in
 * fragments while the rest is being encoded (the coordinator checks them
 * meanwhile, still one atomic commit); other threads' requests on the same
 * handle wait until it is done.  A text of 1 MiB or more in JSON lines is
 * encoded by the calling thread and one short-lived helper thread at once
 * (on a machine with two cores or more); `json` must stay unchanged until
 * the call returns, as always. */
DOTDB_API int dotdb_put_many(dotdb *db, const char *coll, const char *json, size_t len,
                             size_t *count_out);
/* Fetch document `id` as JSON text in a new NUL-terminated string owned by
 * the caller (dotdb_free()); *len_out (may be NULL) gets its length.  Reads
 * the latest committed state.  DOTDB_ENOTFOUND, DOTDB_ENOCOLL. */
DOTDB_API int dotdb_get(dotdb *db, const char *coll, const char *id, char **json_out,
                        size_t *len_out);
/* Update document `id`.  `json` is either a replacement document (its "id",
 * if present, must equal `id`) or update operators, applied atomically by
 * the coordinator to the newest version: $set $unset $inc $mul $min $max
 * $rename $push ($each $slice $position) $pull $addToSet ($each) $pop
 * $currentDate (see the README for the exact semantics).
 * DOTDB_ENOTFOUND if there is no such document; DOTDB_EINVAL (message
 * names the operator and field) for a bad update: $inc on a string, a
 * change of "id", conflicting paths such as $set of "a" and "a.b". */
DOTDB_API int dotdb_update(dotdb *db, const char *coll, const char *id, const char *json,
                           size_t len);

#define DOTDB_UPSERT 0x1u /* update: insert when nothing matches */

/* dotdb_update with flags: DOTDB_UPSERT inserts {"id": id} with the update
 * applied (or the replacement) when the document does not exist (and
 * creates the collection if needed).  *upserted_out (may be NULL) is 1 when
 * a document was inserted. */
DOTDB_API int dotdb_update_ex(dotdb *db, const char *coll, const char *id, const char *json,
                              size_t len, unsigned flags, int *upserted_out);
/* Apply `update_json` (operators or a replacement) to every document of
 * `coll` matching `filter_json` (NULL: all), as one atomic batch.
 * *matched_out / *modified_out (may be NULL) receive how many documents
 * matched and how many changed (an update that leaves a document as it was
 * does not count as modified).  A missing collection matches nothing. */
DOTDB_API int dotdb_update_many(dotdb *db, const char *coll, const char *filter_json,
                                const char *update_json, uint64_t *matched_out,
                                uint64_t *modified_out);
/* As dotdb_update_many; with DOTDB_UPSERT, when nothing matches, insert
 * one document built from the filter's equality conditions with the update
 * applied; its id (generated unless the filter fixes "id") goes to
 * upserted_id_out (DOTDB_ID_MAX+1 bytes, may be NULL; "" when nothing was
 * inserted). */
DOTDB_API int dotdb_update_many_ex(dotdb *db, const char *coll, const char *filter_json,
                                   const char *update_json, unsigned flags,
                                   uint64_t *matched_out, uint64_t *modified_out,
                                   char *upserted_id_out);
/* Delete every document of `coll` matching `filter_json` (NULL or "{}":
 * all), as one atomic batch; *deleted_out (may be NULL) gets the count. */
DOTDB_API int dotdb_delete_many(dotdb *db, const char *coll, const char *filter_json,
                                uint64_t *deleted_out);
/* Delete document `id`.  DOTDB_ENOTFOUND if there is no such document. */
DOTDB_API int dotdb_delete(dotdb *db, const char *coll, const char *id);

/* ---- Queries ------------------------------------------------------------ */

/* Open a cursor over the documents of `coll` that match `filter_json`
 * (NULL or "{}": all), a MongoDB filter: comparison ($eq $ne $gt $gte $lt
 * $lte $in $nin, implicit equality), logical ($and $or $nor $not), element
 * ($exists $type), array ($all $size $elemMatch, implicit matching of array
 * elements, numeric path parts, dotted paths through arrays of objects) and
 * evaluation ($regex with $options, $mod) operators, with MongoDB's
 * cross-type rules (README, "Queries").  options_json may be NULL or
 * {"projection": {...}, "sort": {"f": 1, "g": -1}, "skip": N, "limit": N}.
 * The filter and options are checked before anything runs (DOTDB_EINVAL,
 * DOTDB_EJSON; dotdb_errmsg() names the operator).  The cursor holds one
 * snapshot from its creation to dotdb_cursor_close(); it is owned by the
 * caller and used by one thread at a time.  Without sort, documents come
 * in the collection's natural (unspecified but stable) order, streamed;
 * with sort all matches are collected (8 bytes each: the documents stay in
 * shared memory) and ordered stably.  Large scans use query_threads
 * threads (dotdb_options) with the same results in the same order. */
DOTDB_API int dotdb_find(dotdb *db, const char *coll, const char *filter_json,
                         const char *options_json, dotdb_cursor **out);
/* Next document as a zero-copy view: into shared memory, or (with a
 * projection) into the cursor's own buffer.  Valid until the next call on
 * the cursor or its close.  DOTDB_EDONE at the end. */
DOTDB_API int dotdb_cursor_next_view(dotdb_cursor *cur, dotdb_doc *out);
/* Next matching document as JSON text (new string owned by the caller).
 * DOTDB_EDONE when the cursor is exhausted. */
DOTDB_API int dotdb_cursor_next(dotdb_cursor *cur, char **json_out, size_t *len_out);
/* End the cursor and its snapshot.  NULL allowed. */
DOTDB_API void dotdb_cursor_close(dotdb_cursor *cur);
/* Count the documents of `coll` that match `filter_json` (NULL: all). */
DOTDB_API int dotdb_count(dotdb *db, const char *coll, const char *filter_json,
                          uint64_t *count_out);
/* Run an aggregation pipeline (a JSON array of stages, MongoDB syntax) over
 * one snapshot of `coll` and open a cursor over its results.  Stages:
 * $match $project $addFields $set $unset $group $sort $limit $skip $unwind
 * $count $sortByCount $replaceRoot; see the README for accumulators and
 * expressions.  A blocking stage ($group, $sort) holding more than
 * agg_memory_bytes (dotdb_options) fails with DOTDB_ETOOBIG.  Results are
 * computed before this returns; the cursor (owned by the caller) streams
 * them with dotdb_cursor_next / dotdb_cursor_next_view (a view's id is NULL
 * when a result has no string "id").  DOTDB_EINVAL names the stage and
 * operator of a bad pipeline. */
DOTDB_API int dotdb_aggregate(dotdb *db, const char *coll, const char *pipeline_json,
                              dotdb_cursor **out);
/* Run the query and describe how: a JSON object owned by the caller with
 * "plan" ("IDLOOKUP": the primary index, when the filter fixes "id";
 * "COLLSCAN" otherwise), "threads", "sort", "documents" (in the
 * collection), "examined", "returned" and "time_us". */
DOTDB_API int dotdb_explain(dotdb *db, const char *coll, const char *filter_json,
                            const char *options_json, char **json_out, size_t *len_out);

/* ---- Transactions and zero-copy views ---------------------------------- */

#define DOTDB_TXN_READONLY 0x1u     /* a snapshot for reads only */
#define DOTDB_TXN_SERIALIZABLE 0x2u /* also fail commit if a document read changed */

/* A zero-copy view of one document in shared memory.  Valid until the
 * transaction that produced it ends; never freed by the caller. */
struct dotdb_doc {
    const uint8_t *data; /* binary encoding (see docs/ARCHITECTURE.md) */
    size_t len;
    const char *id;      /* NOT NUL-terminated; id_len bytes */
    size_t id_len;
};

/* Value types of dotdb_value. */
enum dotdb_type {
    DOTDB_T_MISSING = 0,
    DOTDB_T_NULL,
    DOTDB_T_BOOL,
    DOTDB_T_INT,
    DOTDB_T_DOUBLE,
    DOTDB_T_STRING,
    DOTDB_T_ARRAY,
    DOTDB_T_OBJECT
};

/* A zero-copy view of one value inside a document. */
typedef struct dotdb_value {
    int type;            /* enum dotdb_type */
    int64_t i;           /* DOTDB_T_INT, DOTDB_T_BOOL (0/1) */
    double d;            /* DOTDB_T_DOUBLE */
    const char *str;     /* DOTDB_T_STRING: not NUL-terminated */
    size_t str_len;
    size_t count;        /* DOTDB_T_ARRAY, DOTDB_T_OBJECT: number of members */
    const uint8_t *raw;  /* the encoded value (for nested access) */
    size_t raw_len;
} dotdb_value;

/* Begin a transaction on the latest committed state.  flags: 0 or
 * DOTDB_TXN_READONLY, optionally | DOTDB_TXN_SERIALIZABLE.  Makes no system
 * call.  *out is owned by the caller until dotdb_txn_commit() or
 * dotdb_txn_abort().  DOTDB_EBUSY when the handle has DOTDB_MAX_SNAPSHOTS
 * open. */
DOTDB_API int dotdb_txn_begin(dotdb *db, unsigned flags, dotdb_txn **out);
/* Look up `id` in the transaction's snapshot (its own buffered writes
 * first).  *out is a zero-copy view valid until the transaction ends.  No
 * system call, no lock, no allocation for snapshot reads.
 * DOTDB_ENOTFOUND, DOTDB_ENOCOLL. */
DOTDB_API int dotdb_txn_get(dotdb_txn *txn, const char *coll, const char *id, dotdb_doc *out);
/* Buffer a put (insert or replace) in the transaction.  id_out as dotdb_put. */
DOTDB_API int dotdb_txn_put(dotdb_txn *txn, const char *coll, const char *json, size_t len,
                            char *id_out);
/* Buffer a delete in the transaction. */
DOTDB_API int dotdb_txn_delete(dotdb_txn *txn, const char *coll, const char *id);
/* Send the buffered writes as one atomic batch and end the transaction (the
 * txn is freed whatever the result).  DOTDB_ECONFLICT if a document it
 * writes (or, with DOTDB_TXN_SERIALIZABLE, read) changed after its
 * snapshot; then nothing of it is stored.  A read-only txn just ends. */
DOTDB_API int dotdb_txn_commit(dotdb_txn *txn);
/* Discard the transaction and end its snapshot (read-only ones too).  NULL
 * allowed. */
DOTDB_API void dotdb_txn_abort(dotdb_txn *txn);
/* The snapshot's commit LSN. */
DOTDB_API uint64_t dotdb_txn_lsn(const dotdb_txn *txn);

/* The value at a dotted path ("preferences.theme", "tags.0") of a document
 * view; *out->type is DOTDB_T_MISSING when absent.  Zero-copy: *out points
 * into the same memory as doc. */
DOTDB_API int dotdb_doc_get(const dotdb_doc *doc, const char *path, dotdb_value *out);
/* The document view as JSON text, in a new string owned by the caller. */
DOTDB_API int dotdb_doc_to_json(const dotdb_doc *doc, char **json_out, size_t *len_out);

#ifdef __cplusplus
}
#endif

#endif /* DOTDB_H */
