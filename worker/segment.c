/*
 * segment.c - writing and verifying checkpoint segments (format in
 * segment.h).
 *
 * A writer accumulates documents in a raw block buffer; when it reaches
 * SEG_BLOCK_TARGET the block is compressed (lz4, kept raw when that does
 * not make it smaller), checksummed and written with one write().  Reading
 * maps nothing: the file is read whole with pread (segments are at most
 * storage.segment_size plus one block), then verified block by block.
 */
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "buf.h"
#include "dotdb.h"

#define SEG_MAGIC "DOTDBSEG"
#define SEG_VERSION 1u
#define BLK_MAGIC 0x4b4c4244u /* "DBLK" */
#define END_MAGIC 0x444e4544u /* "DEND" */
#define SEG_MAX_FILE (UINT64_C(1) << 34) /* 16 GiB: more is damage, not data */
/* An lz4 block never decompresses to more than about 255 times its size
 * (one length byte adds at most 255 bytes of output). */
#define LZ4_MAX_RATIO 255u

struct seg_writer {
    int dirfd;
    int fd;
    char name[SEG_NAME_MAX];
    const char *dir_path;
    unsigned codec;
    seg_info info;
    dbuf raw;          /* the block being filled */
    uint32_t blk_docs;
    uint8_t *out;      /* header + compressed payload */
    size_t out_cap;
};

void seg_name(uint64_t segno, char out[SEG_NAME_MAX])
{
    snprintf(out, SEG_NAME_MAX, "segment_%03" PRIu64 ".db", segno);
}

int seg_parse_name(const char *name, uint64_t *segno)
{
    if (strncmp(name, "segment_", 8) != 0)
        return 0;
    const char *p = name + 8;
    uint64_t v = 0;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 20) {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (digits < 3 || strcmp(p, ".db") != 0 || v == 0)
        return 0;
    char canon[SEG_NAME_MAX];
    seg_name(v, canon);
    if (strcmp(canon, name) != 0)
        return 0;
    *segno = v;
    return 1;
}

static int io_code(int e)
{
    return (e == ENOSPC || e == EDQUOT || e == EFBIG) ? DOTDB_ENOSPC : DOTDB_EIO;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno;
        if (k == 0)
            return EIO;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static void blk_header(uint8_t h[SEG_BLK_HDR_SIZE], uint32_t magic, unsigned codec, uint32_t ndocs,
                       uint32_t raw_len, uint32_t stored_len, const uint8_t *stored)
{
    memset(h, 0, SEG_BLK_HDR_SIZE);
    st_u32(h, magic);
    h[4] = (uint8_t)codec;
    st_u32(h + 8, ndocs);
    st_u32(h + 12, raw_len);
    st_u32(h + 16, stored_len);
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    XXH64_update(&st, h, 24);
    if (stored_len)
        XXH64_update(&st, stored, stored_len);
    st_u64(h + 24, XXH64_digest(&st));
}

int seg_create(int dirfd, const char *dir_path, uint64_t segno, uint64_t checkpoint_lsn,
               uint64_t create_lsn, unsigned codec, seg_writer **out, char *err, size_t errlen)
{
    *out = NULL;
    seg_writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return DOTDB_ENOMEM;
    w->dirfd = dirfd;
    w->dir_path = dir_path;
    w->codec = codec;
    w->info.segno = segno;
    dbuf_init(&w->raw);
    seg_name(segno, w->name);
    w->fd = openat(dirfd, w->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (w->fd < 0) {
        int e = errno;
        msgf(err, errlen, "cannot create %s/%s: %s", dir_path, w->name, strerror(e));
        free(w);
        return io_code(e) == DOTDB_ENOSPC ? DOTDB_ENOSPC : DOTDB_EOS;
    }
    uint8_t h[SEG_HDR_SIZE] = {0};
    memcpy(h, SEG_MAGIC, 8);
    st_u32(h + 8, SEG_VERSION);
    st_u64(h + 16, segno);
    st_u64(h + 24, checkpoint_lsn);
    st_u64(h + 32, create_lsn);
    st_u64(h + 56, XXH64(h, 56, 0));
    int e = write_all(w->fd, h, sizeof h);
    if (e != 0) {
        msgf(err, errlen, "cannot write %s/%s: %s", dir_path, w->name, strerror(e));
        seg_abort(w);
        return io_code(e);
    }
    w->info.file_bytes = SEG_HDR_SIZE;
    *out = w;
    return DOTDB_OK;
}

/* Compress (when it pays) and write the block being filled. */
static int flush_block(seg_writer *w, char *err, size_t errlen)
{
    if (w->blk_docs == 0)
        return DOTDB_OK;
    size_t raw_len = w->raw.len;
    size_t bound = (size_t)LZ4_compressBound((int)raw_len);
    size_t need = SEG_BLK_HDR_SIZE + (bound > raw_len ? bound : raw_len);
    if (need > w->out_cap) {
        uint8_t *p = realloc(w->out, need);
        if (p == NULL)
            return DOTDB_ENOMEM;
        w->out = p;
        w->out_cap = need;
    }
    unsigned codec = SEG_CODEC_NONE;
    size_t stored = raw_len;
    if (w->codec == SEG_CODEC_LZ4) {
        int n = LZ4_compress_default((const char *)w->raw.data, (char *)w->out + SEG_BLK_HDR_SIZE,
                                     (int)raw_len, (int)bound);
        if (n > 0 && (size_t)n < raw_len) {
            codec = SEG_CODEC_LZ4;
            stored = (size_t)n;
        }
    }
    if (codec == SEG_CODEC_NONE)
        memcpy(w->out + SEG_BLK_HDR_SIZE, w->raw.data, raw_len);
    blk_header(w->out, BLK_MAGIC, codec, w->blk_docs, (uint32_t)raw_len, (uint32_t)stored,
               w->out + SEG_BLK_HDR_SIZE);
    int e = write_all(w->fd, w->out, SEG_BLK_HDR_SIZE + stored);
    if (e != 0) {
        msgf(err, errlen, "cannot write %s/%s: %s", w->dir_path, w->name, strerror(e));
        return io_code(e);
    }
    w->info.file_bytes += SEG_BLK_HDR_SIZE + stored;
    w->info.blocks++;
    w->info.raw_bytes += raw_len;
    w->raw.len = 0;
    w->blk_docs = 0;
    return DOTDB_OK;
}

int seg_add(seg_writer *w, const uint8_t *doc, uint32_t len, char *err, size_t errlen)
{
    /* A document that would overflow the block goes into the next one;
     * one larger than a block gets a block of its own. */
    if (w->blk_docs > 0 && w->raw.len + 4 + len > SEG_BLOCK_TARGET) {
        int rc = flush_block(w, err, errlen);
        if (rc != DOTDB_OK)
            return rc;
    }
    int rc = dbuf_put_u32(&w->raw, len);
    if (rc == DOTDB_OK)
        rc = dbuf_append(&w->raw, doc, len);
    if (rc != DOTDB_OK)
        return rc;
    w->blk_docs++;
    w->info.docs++;
    if (w->raw.len >= SEG_BLOCK_TARGET)
        return flush_block(w, err, errlen);
    return DOTDB_OK;
}

uint64_t seg_size_estimate(const seg_writer *w)
{
    return w->info.file_bytes + w->raw.len;
}

static void writer_free(seg_writer *w)
{
    dbuf_free(&w->raw);
    free(w->out);
    free(w);
}

int seg_finish(seg_writer *w, seg_info *info, char *err, size_t errlen)
{
    int rc = flush_block(w, err, errlen);
    if (rc == DOTDB_OK) {
        uint8_t t[SEG_BLK_HDR_SIZE];
        blk_header(t, END_MAGIC, 0, (uint32_t)w->info.docs, (uint32_t)w->info.blocks, 0, NULL);
        int e = write_all(w->fd, t, sizeof t);
        if (e == 0 && fdatasync(w->fd) != 0)
            e = errno;
        if (e != 0) {
            msgf(err, errlen, "cannot write %s/%s: %s", w->dir_path, w->name, strerror(e));
            rc = io_code(e);
        }
        w->info.file_bytes += SEG_BLK_HDR_SIZE;
    }
    if (rc != DOTDB_OK) {
        seg_abort(w);
        return rc;
    }
    if (close(w->fd) != 0) {
        int e = errno;
        msgf(err, errlen, "cannot close %s/%s: %s", w->dir_path, w->name, strerror(e));
        w->fd = -1;
        seg_abort(w);
        return DOTDB_EIO;
    }
    *info = w->info;
    writer_free(w);
    return DOTDB_OK;
}

void seg_abort(seg_writer *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd); /* the file is being removed: nothing to lose */
    (void)unlinkat(w->dirfd, w->name, 0);
    writer_free(w);
}

/* ---- reading ---- */

typedef struct reader {
    const char *path_dir;
    const char *name;
    int keep_going;
    void (*bad)(void *ctx, const char *msg);
    void *ctx;
    int damaged;
    char *err;
    size_t errlen;
} reader;

static void damage(reader *r, uint64_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void damage(reader *r, uint64_t off, const char *fmt, ...)
{
    char why[160], line[4400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "%s/%s: bad block at offset %" PRIu64 " (%s)", r->path_dir,
             r->name, off, why);
    if (!r->damaged)
        msgf(r->err, r->errlen, "%s", line);
    r->damaged = 1;
    if (r->bad)
        r->bad(r->ctx, line);
}

static int read_whole(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, buf + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno;
        if (k == 0)
            return EIO; /* shrank under us */
        got += (size_t)k;
    }
    return 0;
}

/* Check the document records of a raw payload: ndocs of them exactly. */
static const char *check_records(const uint8_t *raw, size_t len, uint32_t ndocs)
{
    size_t pos = 0;
    for (uint32_t i = 0; i < ndocs; i++) {
        if (len - pos < 4)
            return "a document record runs past the block";
        uint32_t n = ld_u32(raw + pos);
        if (n == 0 || n > len - pos - 4)
            return "a document length runs past the block";
        pos += 4 + (size_t)n;
    }
    return pos == len ? NULL : "bytes after the last document of the block";
}

int seg_read(int dirfd, const char *dir_path, uint64_t segno, uint64_t checkpoint_lsn,
             uint64_t create_lsn, int keep_going, void (*bad)(void *ctx, const char *msg),
             void *ctx, uint8_t **raw_out, size_t *raw_len_out, seg_info *info, char *err,
             size_t errlen)
{
    char name[SEG_NAME_MAX];
    seg_name(segno, name);
    reader r = {dir_path, name, keep_going, bad, ctx, 0, err, errlen};
    memset(info, 0, sizeof *info);
    info->segno = segno;
    *raw_out = NULL;
    *raw_len_out = 0;
    uint8_t *file = NULL;
    dbuf raw;
    dbuf_init(&raw);
    int rc = DOTDB_OK;
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        msgf(err, errlen, "cannot open %s/%s: %s", dir_path, name, strerror(errno));
        return errno == ENOENT ? DOTDB_ECORRUPT : DOTDB_EOS;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > SEG_MAX_FILE) {
        msgf(err, errlen, "%s/%s is not a readable segment file", dir_path, name);
        rc = DOTDB_ECORRUPT;
        goto out;
    }
    size_t size = (size_t)st.st_size;
    file = malloc(size ? size : 1);
    if (file == NULL) {
        rc = DOTDB_ENOMEM;
        goto out;
    }
    int e = read_whole(fd, file, size);
    if (e != 0) {
        msgf(err, errlen, "cannot read %s/%s: %s", dir_path, name, strerror(e));
        rc = DOTDB_EOS;
        goto out;
    }
    info->file_bytes = size;
    if (size < SEG_HDR_SIZE || memcmp(file, SEG_MAGIC, 8) != 0 ||
        ld_u64(file + 56) != XXH64(file, 56, 0)) {
        damage(&r, 0, "bad or short segment header");
        rc = DOTDB_ECORRUPT;
        goto out;
    }
    if (ld_u32(file + 8) != SEG_VERSION) {
        msgf(err, errlen, "%s/%s: segment format version %" PRIu32 " (this build reads %u)",
            dir_path, name, ld_u32(file + 8), SEG_VERSION);
        rc = DOTDB_EVERSION;
        goto out;
    }
    if (ld_u64(file + 16) != segno || (checkpoint_lsn && ld_u64(file + 24) != checkpoint_lsn) ||
        (create_lsn && ld_u64(file + 32) != create_lsn)) {
        damage(&r, 0, "the header names another segment, checkpoint or collection");
        rc = DOTDB_ECORRUPT;
        goto out;
    }
    size_t off = SEG_HDR_SIZE;
    int ended = 0;
    char *lz_buf = NULL;
    size_t lz_cap = 0;
    while (off < size && !ended) {
        if (size - off < SEG_BLK_HDR_SIZE) {
            damage(&r, off, "the file ends inside a block header");
            break;
        }
        const uint8_t *h = file + off;
        uint32_t magic = ld_u32(h), ndocs = ld_u32(h + 8), raw_len = ld_u32(h + 12),
                 stored = ld_u32(h + 16);
        if ((magic != BLK_MAGIC && magic != END_MAGIC) || stored > size - off - SEG_BLK_HDR_SIZE) {
            damage(&r, off, "%s", magic != BLK_MAGIC && magic != END_MAGIC
                                      ? "no block magic" : "the block runs past the end of the file");
            break; /* no trustworthy length to skip by */
        }
        XXH64_state_t xs;
        XXH64_reset(&xs, 0);
        XXH64_update(&xs, h, 24);
        XXH64_update(&xs, h + SEG_BLK_HDR_SIZE, stored);
        size_t next = off + SEG_BLK_HDR_SIZE + stored;
        if (ld_u64(h + 24) != XXH64_digest(&xs)) {
            damage(&r, off, "checksum mismatch");
            off = next;
            if (!keep_going)
                break;
            continue;
        }
        if (magic == END_MAGIC) {
            if (ndocs != info->docs || raw_len != info->blocks || stored != 0)
                damage(&r, off, "the trailer counts %" PRIu32 " documents in %" PRIu32
                       " blocks, the file holds %" PRIu64 " in %" PRIu64,
                       ndocs, raw_len, info->docs, info->blocks);
            else if (next != size)
                damage(&r, next, "bytes after the trailer");
            ended = 1;
            break;
        }
        const uint8_t *payload = h + SEG_BLK_HDR_SIZE;
        const char *why = NULL;
        if (h[4] == SEG_CODEC_LZ4 && (uint64_t)raw_len > (uint64_t)stored * LZ4_MAX_RATIO + 64u) {
            /* Checked before the buffer is sized: trusting raw_len would
             * allocate up to 4 GiB for a 32-byte block. */
            why = "raw length impossible for the lz4 data";
        } else if (h[4] == SEG_CODEC_LZ4) {
            if (raw_len > lz_cap) {
                char *p = realloc(lz_buf, raw_len);
                if (p == NULL) {
                    rc = DOTDB_ENOMEM;
                    break;
                }
                lz_buf = p;
                lz_cap = raw_len;
            }
            int n = LZ4_decompress_safe((const char *)payload, lz_buf, (int)stored, (int)raw_len);
            if (n < 0 || (uint32_t)n != raw_len)
                why = "lz4 data does not decompress to the recorded length";
            payload = (const uint8_t *)lz_buf;
        } else if (h[4] != SEG_CODEC_NONE) {
            why = "unknown codec";
        } else if (stored != raw_len) {
            why = "stored and raw lengths differ in an uncompressed block";
        }
        if (why == NULL && ndocs == 0)
            why = "a block without documents";
        if (why == NULL)
            why = check_records(payload, raw_len, ndocs);
        if (why != NULL) {
            damage(&r, off, "%s", why);
        } else {
            info->docs += ndocs;
            info->blocks++;
            info->raw_bytes += raw_len;
            if (!r.damaged && dbuf_append(&raw, payload, raw_len) != DOTDB_OK) {
                rc = DOTDB_ENOMEM;
                break;
            }
        }
        off = next;
        if (r.damaged && !keep_going)
            break;
    }
    free(lz_buf);
    if (rc == DOTDB_OK && !ended && !r.damaged)
        damage(&r, off, "the segment has no trailer (cut short)");
    if (rc == DOTDB_OK && r.damaged)
        rc = DOTDB_ECORRUPT;
out:
    close(fd); /* read-only: nothing to lose */
    free(file);
    if (rc == DOTDB_OK) {
        *raw_out = dbuf_steal(&raw, raw_len_out);
    } else {
        dbuf_free(&raw);
    }
    return rc;
}
