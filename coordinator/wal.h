/*
 * wal.h - the write-ahead log: segmented files of checksummed records.
 *
 * Files: <wal_dir>/wal_NNNNNN.log, NNNNNN = segment number from 000001,
 * zero-padded to 6 digits (more digits once past 999999).  Only the
 * coordinator thread that owns the wal touches it.
 *
 * Segment header (32 bytes):
 *   0  magic      8 bytes "DOTDBWAL"
 *   8  version    u32 = 1
 *   12 reserved   u32 = 0
 *   16 segno      u64, equals the number in the file name
 *   24 check      u64 xxh64 (seed 0) of bytes 0..24
 * Records follow back to back, each 8-byte aligned:
 *   0  len        u32  payload bytes (<= WAL_MAX_PAYLOAD)
 *   4  type       u32  WAL_REC_* (nonzero)
 *   8  lsn        u64  1..WAL_LSN_MAX, strictly increasing by exactly 1 through the log
 *                      (across segments too; the one exception is under
 *                      wal_replay: a jump whose skipped LSNs are all <=
 *                      after_lsn, i.e. in the checkpoint)
 *   16 payload    len bytes, then zero padding to a multiple of 8
 *   .. check      u64  xxh64 (seed 0) of everything from `len` to the end
 *                      of the padding
 * All little endian.
 *
 * The last segment may end in zeros: the writer reserves space ahead of
 * its records (wal_set_preallocate) so that an fdatasync after an append
 * does not also commit a change of the file's size.  A segment is trimmed
 * to its last record before it is sealed, so zeros after the last record
 * are the normal end of the last segment only; in a sealed segment they
 * are damage like any other bad record.
 *
 * Recovery (wal_replay) reads the segments in order and hands each good
 * record to a callback.  It stops at the first record that is short (file
 * ends inside it), has a bad checksum, a zero type, a length over the limit
 * or an LSN that does not follow.  If that happens in the LAST segment
 * (a torn tail: the crash cut the final write) the segment is truncated
 * there, fsynced, and replay succeeds with a warning in the info - unless
 * a good record (checksum, nonzero type, an LSN above the last good one)
 * follows somewhere after it: a crash only cuts a suffix, so a bad record
 * with good ones behind it is damage.  That, and a bad record in an
 * earlier segment, would lose acknowledged data after it, so replay fails
 * with DOTDB_ECORRUPT naming the file and the offset.
 * A segment shorter than its header, or with a bad header, at the end of
 * the log is deleted as a torn creation; elsewhere it is DOTDB_ECORRUPT.
 * "Bad header" here means a wrong magic or checksum in a file no longer
 * than the header (headers are synced before any record is written, so a
 * longer file with a bad header is damage: DOTDB_ECORRUPT).  A header with
 * a good checksum but another version is DOTDB_EVERSION, one naming another
 * segment number DOTDB_ECORRUPT, wherever the segment is.  When the torn
 * creation removed was the only segment, it is created again under its
 * number.  The segment before a removed torn creation was synced before it
 * was created, so damage in it is DOTDB_ECORRUPT too.  Segment numbers must
 * be consecutive (a gap is DOTDB_ECORRUPT); files with other names (also
 * non-canonical spellings such as wal_1.log) are ignored.
 *
 * Writing: wal_append() adds records to an in-memory buffer;
 * wal_write() writes the buffer with as few write() calls as possible and
 * wal_sync() fdatasyncs.  A segment is rotated (a new file created, the
 * directory fsynced) before a record that would take it past
 * segment_size; the old segment is fdatasynced before it is closed.  When
 * wal_write() fails (ENOSPC, EIO) it truncates the file back to its size
 * before the call, drops the buffered records, and returns the error: the
 * caller undoes the batch.  After a failed wal_sync() the log is unusable
 * (the kernel may have dropped the dirty pages): every later call fails with
 * DOTDB_EIO.  The same holds after any other failed fdatasync/fsync (segment
 * rotation or creation, truncation during replay, undoing a failed write)
 * and when undoing a failed write itself fails.
 */
#ifndef DOTDB_WAL_H
#define DOTDB_WAL_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#define WAL_REC_BATCH 1u
#define WAL_MAX_PAYLOAD (1u << 30)
#define WAL_SEG_HDR_SIZE 32u
#define WAL_REC_HDR_SIZE 16u
/* Largest LSN a record may carry: UINT64_MAX is the engine's "newest"
 * sentinel (end_lsn, drop_lsn) and would have no successor. */
#define WAL_LSN_MAX (UINT64_MAX - 1)
/* The coordinator's preallocation step (wal_set_preallocate). */
#define WAL_PREALLOC_STEP (16u << 20)

typedef struct wal wal;

typedef struct wal_replay_info {
    uint64_t records;          /* good records seen (applied or skipped) */
    uint64_t first_lsn;        /* 0 when the log is empty */
    uint64_t last_lsn;         /* 0 when the log is empty */
    uint64_t truncated_bytes;  /* bytes cut off a torn tail */
    char warning[512];         /* "" or what was truncated, file and offset */
} wal_replay_info;

/* Callback for each good record with lsn > after_lsn, in LSN order.  A
 * nonzero return stops replay and is returned by wal_replay.  payload points
 * into a read-only mapping of the segment, valid only during the call.
 * Records are handed over while the log is being checked, so a later
 * segment may still turn out damaged (wal_replay then fails and the caller
 * must abort start-up rather than use what it applied). */
typedef int (*wal_apply_fn)(void *ctx, uint64_t lsn, uint32_t type, const uint8_t *payload,
                            size_t len);

/*
 * Open (creating if needed, mode 0700) the WAL directory and scan nothing
 * yet.  Only the last path component is created; its parent directory is
 * fsynced then.  *out is owned by the caller (wal_close).  DOTDB_EOS with
 * err naming the path; DOTDB_EINVAL if segment_size < 56 (a header and one
 * empty record).
 */
int wal_open(const char *dir, uint64_t segment_size, wal **out, char *err, size_t errlen);

/*
 * Replay the log (see the header comment), then position the wal to append
 * after the last good record, in the last segment (or a new segment 1 when
 * there is none).  Must be called once, before any append.  next LSN to
 * use is info->last_lsn + 1 (or after_lsn + 1 when the log is empty or
 * older: wal_last_lsn() then returns after_lsn).  fn may be NULL (check
 * only).  *info is cleared on entry and again on failure.  Errors:
 * DOTDB_ECORRUPT, DOTDB_EVERSION, DOTDB_EIO, DOTDB_EOS (err names the file
 * and, for records, the byte offset), or the callback's nonzero value.
 */
int wal_replay(wal *w, uint64_t after_lsn, wal_apply_fn fn, void *ctx, wal_replay_info *info,
               char *err, size_t errlen);

/* Verify the log in dir without changing anything (dotdb check; safe while
 * a coordinator appends): as wal_replay with no callback, except that a
 * torn tail or a torn segment creation is reported in info->warning (the
 * next start would cut it) instead of being removed.  Damage before the
 * tail is DOTDB_ECORRUPT naming the file and offset. */
int wal_check(const char *dir, uint64_t after_lsn, wal_replay_info *info, char *err,
              size_t errlen);

/* Reserve `step` bytes of zeros at a time ahead of the records of the
 * current segment (fallocate), never past segment_size unless one record
 * needs more; 0 (the default) appends as the file grows.  With
 * write_zeros the zeros are also written (buffered pwrite, writeback
 * started at once with sync_file_range) before records reach them: an
 * fdatasync after an overwrite of written blocks commits no extent change
 * either (ext4: 110-120 us against 180-190 us into fallocated space), at
 * the price of writing every WAL byte twice, so it pays only where each
 * group is fdatasynced (sync_mode full).  Call before wal_replay so the
 * segment it leaves open is covered too.  Best effort: a file system
 * without fallocate, a full disk or a file-size limit just means
 * appending.  The zeros cost disk space up to segment_size: sealed
 * segments are trimmed to their records. */
void wal_set_preallocate(wal *w, uint64_t step, bool write_zeros);

/* Buffer one record.  lsn must be last appended + 1 and type nonzero, after
 * wal_replay (assert; DOTDB_EINVAL in builds without asserts), and at most
 * WAL_LSN_MAX (DOTDB_EINVAL: the log is full).
 * DOTDB_ENOMEM, DOTDB_ETOOBIG (len > WAL_MAX_PAYLOAD), DOTDB_EIO (failed). */
int wal_append(wal *w, uint64_t lsn, uint32_t type, const void *payload, size_t len);

/* Write the buffered records to the file(s), one write() per segment
 * touched.  0 when nothing is buffered.  DOTDB_ENOSPC (ENOSPC, EDQUOT,
 * EFBIG) / DOTDB_EIO (errno detail in err).  On failure every segment this
 * call created is removed, the first one truncated back and fdatasynced, the
 * buffer dropped and wal_last_lsn() goes back to the last written record:
 * the next append reuses the LSNs of the dropped records. */
int wal_write(wal *w, char *err, size_t errlen);

/* fdatasync what was written (nothing to do when wal_unsynced_bytes() is 0;
 * buffered, unwritten records are not written).  DOTDB_EIO, after which the
 * wal is failed. */
int wal_sync(wal *w, char *err, size_t errlen);

/*
 * The same fdatasync in three steps, so it can run on a worker thread while
 * the loop thread goes on appending and writing (pipelined group commit):
 * wal_sync_begin (loop thread) captures what has been written so far in a
 * ticket holding its own descriptor; wal_sync_run (any thread) touches only
 * the ticket; wal_sync_end (loop thread) records the result.  Tickets may
 * overlap: a second one can begin while the first runs (it covers what
 * the first covers and what was written since), so the kernel can start
 * the next sync the moment the first ends; they may end in any order.
 * begin returns 0 with t->fd == -1 when nothing needs syncing; end returns
 * DOTDB_EIO after a failed sync, and the wal is then failed exactly as
 * after a failed wal_sync.
 */
typedef struct wal_sync_ticket {
    int fd;            /* dup of the segment's descriptor; closed by run */
    bool borrowed;     /* fd is the wal's own (wal_sync_begin_here): not closed */
    uint64_t segno;
    uint64_t bytes;    /* unsynced bytes of that segment the sync covers */
    uint64_t upto;     /* the segment's size when the sync began */
    uint64_t lsn;      /* every record up to this LSN is covered */
    int err_no;        /* set by run: 0 or the fdatasync errno */
} wal_sync_ticket;

int wal_sync_begin(wal *w, wal_sync_ticket *t, char *err, size_t errlen);
/* wal_sync_begin for a ticket the same thread runs at once, before any
 * other call on w: the ticket borrows the segment's descriptor instead of
 * a dup (two system calls fewer per sync). */
int wal_sync_begin_here(wal *w, wal_sync_ticket *t, char *err, size_t errlen);
void wal_sync_run(wal_sync_ticket *t);
int wal_sync_end(wal *w, const wal_sync_ticket *t, char *err, size_t errlen);

/* Seal the current segment (fdatasync) and start the next one, so that
 * everything written so far lies in closed segments (a checkpoint does
 * this before it reads its snapshot).  Nothing to do when the current
 * segment holds no record.  DOTDB_EIO (the wal is then failed) /
 * DOTDB_ENOSPC / DOTDB_EOS. */
int wal_rotate(wal *w, char *err, size_t errlen);

/* Remove, oldest first, the closed segments whose every record has an LSN
 * <= lsn (they are in a checkpoint), fsyncing the directory after each
 * removal; the current segment always stays.  *removed counts them. */
int wal_remove_through(wal *w, uint64_t lsn, uint64_t *removed, char *err, size_t errlen);

/* Nonzero once an fdatasync/fsync failed: the log refuses every write. */
int wal_is_failed(const wal *w);

/* Oldest segment number present. */
uint64_t wal_first_segno(const wal *w);
/* Bytes written to the current segment file (whole records). */
uint64_t wal_current_bytes(const wal *w);

/* Last LSN whose record has been written to a file. */
uint64_t wal_written_lsn(const wal *w);

/* Bytes written and not yet synced (rotation syncs the segments it leaves,
 * so this counts the current segment only). */
uint64_t wal_unsynced_bytes(const wal *w);
/* Total bytes of records and headers in all segment files (preallocated
 * zeros not counted). */
uint64_t wal_total_bytes(const wal *w);
/* Current segment number. */
uint64_t wal_current_segno(const wal *w);
/* Last LSN appended (or replayed). */
uint64_t wal_last_lsn(const wal *w);

/* Close (without syncing; call wal_sync first for durability; records
 * buffered and not written are dropped).  NULL ok. */
void wal_close(wal *w);

#endif /* DOTDB_WAL_H */
