/*
 * manifest.h - the checkpoint manifest: which segment files make up the
 * database at which checkpoint LSN.
 *
 * File DIR/system/manifest.json, replaced atomically: written to
 * manifest.json.tmp, fdatasynced, renamed over manifest.json, and the
 * directory fsynced.  Only the coordinator writes it; a crash leaves either
 * the old or the new one, and at most a stray .tmp (removed at start).
 *
 *   {"format": 1, "checkpoint_lsn": 812, "created_ms": 1764640000000,
 *    "check": "9f...": xxh64 (hex) over the values below, in a fixed binary
 *             order (manifest.c: mf_checksum), so damage that still parses
 *             as JSON is caught,
 *    "collections": [
 *      {"name": "users", "create_lsn": 2, "modified_lsn": 790,
 *       "documents": 1000, "bytes": 162000,
 *       "segments": [{"file": "segment_001.db", "segno": 1, "documents": 1000,
 *                     "blocks": 3, "size": 61234, "raw_bytes": 166000}]}]}
 *
 * Segments of a collection hold its documents at checkpoint_lsn, each id
 * once across them.  A collection listed with no segments is empty.
 * Segment files of a collection that are not listed belong to an older
 * or an unfinished checkpoint and may be removed.
 */
#ifndef DOTDB_MANIFEST_H
#define DOTDB_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define MANIFEST_FORMAT 1
#define MANIFEST_NAME "manifest.json"

typedef struct mf_segment {
    uint64_t segno;
    uint64_t docs;
    uint64_t blocks;
    uint64_t size;
    uint64_t raw_bytes;
    uint64_t ckpt_lsn;   /* checkpoint that wrote the file (kept by reference later) */
} mf_segment;

typedef struct mf_coll {
    char name[65];
    uint64_t create_lsn;
    uint64_t modified_lsn; /* last change at or before the checkpoint */
    uint64_t docs;
    uint64_t bytes;        /* bytes of the binary documents */
    mf_segment *segs;      /* owned */
    size_t nsegs;
} mf_coll;

typedef struct manifest {
    uint64_t checkpoint_lsn; /* 0: no checkpoint (the WAL is everything) */
    int64_t created_ms;
    mf_coll *colls;          /* owned */
    size_t ncolls;
} manifest;

/* Read DIR/system/manifest.json into *m (zeroed first).  A missing file is
 * not an error: *m stays empty (checkpoint_lsn 0).  DOTDB_ECORRUPT with err
 * naming the file for anything malformed (JSON, types, check, names).
 * DOTDB_EOS for I/O.  Free with manifest_free. */
int manifest_read(const char *dir, manifest *m, char *err, size_t errlen);

/* Write *m atomically (see above).  sysdir_fd: DIR/system, open.  err names
 * the step that failed.  *renamed (may be NULL) tells whether the rename
 * happened: if it did and only the directory fsync failed, the new
 * manifest is in place but may not survive a crash, so both it and the old
 * one must stay loadable (keep every segment and the WAL since the old). */
int manifest_write(int sysdir_fd, const char *dir, const manifest *m, int *renamed, char *err,
                   size_t errlen);

/* Deep copy / free (NULL ok; *m zeroed). */
int manifest_copy(const manifest *src, manifest *dst);
void manifest_free(manifest *m);

/* The entry for a collection name, or NULL. */
const mf_coll *manifest_find(const manifest *m, const char *name);

/* Append a copy of c (its segment array copied too). */
int manifest_add(manifest *m, const mf_coll *c);

#endif /* DOTDB_MANIFEST_H */
