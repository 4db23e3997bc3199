/*
 * segment.h - checkpoint segment files: a collection's documents at one
 * checkpoint LSN, in blocks that are checksummed and optionally lz4
 * compressed.
 *
 * File collections/<name>/data/segment_NNN.db (NNN zero-padded to 3
 * digits, more once past 999), little endian throughout:
 *
 *   header (64 bytes)
 *     0  magic          8  "DOTDBSEG"
 *     8  version        u32 = 1
 *     12 reserved       u32 = 0
 *     16 segno          u64  equals the number in the file name
 *     24 checkpoint_lsn u64  the snapshot the documents were read at
 *     32 create_lsn     u64  the collection's creation LSN
 *     40 reserved       16 bytes of zero
 *     56 check          u64  xxh64 (seed 0) of bytes 0..56
 *   blocks, back to back, each:
 *     0  magic          u32  "DBLK"
 *     4  codec          u8   0 none, 1 lz4 (block format)
 *     5  reserved       3 bytes of zero
 *     8  ndocs          u32  documents in the block (>= 1)
 *     12 raw_len        u32  bytes of the raw payload
 *     16 stored_len     u32  bytes that follow the header
 *     20 reserved       u32 = 0
 *     24 check          u64  xxh64 (seed 0) of bytes 0..24 and the stored bytes
 *     32 stored payload
 *   trailer (32 bytes): the block header layout with magic "DEND",
 *     codec 0, ndocs = documents in the file, raw_len = number of blocks,
 *     stored_len = 0, check over its first 24 bytes.
 *
 * The raw payload is ndocs records of `u32 len` + `len` bytes of a binary
 * document (lib/codec.h; the id is inside it).  A block holds documents
 * up to SEG_BLOCK_TARGET raw bytes, or one larger document.
 *
 * Rules: a segment is written once, fdatasynced and never modified; it
 * becomes part of the database only when a manifest naming it has been
 * renamed into place (manifest.h).  Every read checks every checksum and
 * every length before use: a segment file is input, not trusted memory.
 * Only the coordinator writes segments (on a worker thread); `dotdbd
 * --check` reads them while a coordinator may be running.
 */
#ifndef DOTDB_SEGMENT_H
#define DOTDB_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#define SEG_HDR_SIZE 64u
#define SEG_BLK_HDR_SIZE 32u
#define SEG_BLOCK_TARGET (64u * 1024u)
#define SEG_CODEC_NONE 0u
#define SEG_CODEC_LZ4 1u
#define SEG_NAME_MAX 40

/* "segment_NNN.db" for segno. */
void seg_name(uint64_t segno, char out[SEG_NAME_MAX]);
/* Parse a canonical segment file name; 1 and *segno, else 0. */
int seg_parse_name(const char *name, uint64_t *segno);

typedef struct seg_writer seg_writer;

typedef struct seg_info {
    uint64_t segno;
    uint64_t docs;
    uint64_t blocks;
    uint64_t file_bytes;  /* size of the file */
    uint64_t raw_bytes;   /* bytes of the documents before compression */
} seg_info;

/*
 * Create segment `segno` in the directory dirfd (O_EXCL: an existing file
 * is an error, never overwritten) and write its header.  codec is
 * SEG_CODEC_*.  *out owned by the caller: seg_finish or seg_abort.
 * DOTDB_ENOSPC / DOTDB_EIO / DOTDB_EOS with err naming the file.
 */
int seg_create(int dirfd, const char *dir_path, uint64_t segno, uint64_t checkpoint_lsn,
               uint64_t create_lsn, unsigned codec, seg_writer **out, char *err, size_t errlen);

/* Add one document (copied).  Writes a block when it is full. */
int seg_add(seg_writer *w, const uint8_t *doc, uint32_t len, char *err, size_t errlen);

/* Bytes the file will hold once what is buffered is written. */
uint64_t seg_size_estimate(const seg_writer *w);

/* Write the last block and the trailer, fdatasync, close; *info filled.
 * The writer is freed whatever the outcome; on failure the file is
 * removed. */
int seg_finish(seg_writer *w, seg_info *info, char *err, size_t errlen);

/* Close and remove the file; free the writer.  NULL ok. */
void seg_abort(seg_writer *w);

/*
 * Read and verify a whole segment: header (segno and, unless 0, the
 * expected checkpoint_lsn / create_lsn), every block's checksum, codec,
 * lengths and document records, the trailer's totals.  On success *raw
 * (malloc'ed, caller frees) holds the concatenated raw payloads
 * (*raw_len bytes, info->docs records of u32 len + document) - documents
 * are not validated here beyond their lengths; the caller validates them
 * with codec_validate_doc.
 *
 * keep_going = 0: stop at the first damage, DOTDB_ECORRUPT with err
 * "PATH: bad block at offset N (reason)".  keep_going = 1 (dotdb check):
 * report every damage through bad(ctx, message), go on with the next block
 * when the damaged one's length is plausible, and return DOTDB_ECORRUPT at
 * the end if anything was bad (err holds the first message); raw may then
 * be NULL.  bad may be NULL.  DOTDB_EOS / DOTDB_ENOMEM for other failures.
 */
int seg_read(int dirfd, const char *dir_path, uint64_t segno, uint64_t checkpoint_lsn,
             uint64_t create_lsn, int keep_going, void (*bad)(void *ctx, const char *msg),
             void *ctx, uint8_t **raw, size_t *raw_len, seg_info *info, char *err,
             size_t errlen);

/* Iterate the records of a raw payload from seg_read: returns 1 and the
 * next document in *doc / *len, 0 at the end.  *pos starts at 0. */
static inline int seg_next_doc(const uint8_t *raw, size_t raw_len, size_t *pos,
                               const uint8_t **doc, uint32_t *len)
{
    if (*pos + 4 > raw_len)
        return 0;
    uint32_t n;
    __builtin_memcpy(&n, raw + *pos, 4);
    if (n > raw_len - *pos - 4)
        return 0; /* seg_read checked every length; unreachable for its output */
    *doc = raw + *pos + 4;
    *len = n;
    *pos += 4 + (size_t)n;
    return 1;
}

#endif /* DOTDB_SEGMENT_H */
