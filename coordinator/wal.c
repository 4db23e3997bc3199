/*
 * wal.c - the write-ahead log: segmented files of checksummed records.
 *
 * On disk (all little endian; wal.h has the full specification):
 *
 *   <dir>/wal_NNNNNN.log   segment NNNNNN (from 000001, 6 digits or more)
 *     segment header, 32 bytes:
 *       0 "DOTDBWAL" | 8 version u32 = 1 | 12 reserved u32 = 0
 *       16 segno u64 | 24 xxh64(seed 0) of bytes 0..24
 *     records, back to back, each a multiple of 8 bytes:
 *       0 len u32 | 4 type u32 (nonzero) | 8 lsn u64 | 16 payload, zero
 *       padding to a multiple of 8 | then xxh64(seed 0) of all before it
 *
 * Invariants the writer keeps, which recovery relies on:
 *   - LSNs follow each other by exactly 1 through the whole log, across
 *     segments.  The one exception: after a replay whose checkpoint
 *     (after_lsn) is ahead of the log, appends continue at after_lsn + 1,
 *     so a jump to at most after_lsn + 1 is accepted (every LSN skipped is
 *     in the checkpoint).
 *   - A segment's header is written and fdatasynced, and the directory
 *     fsynced, before any record goes into it.  So a segment no longer than
 *     its header with a bad header can only be a crash during creation.
 *   - A segment is fdatasynced before the next one is created.  So only the
 *     last segment can end in a torn record; damage anywhere else means
 *     acknowledged records are gone, and recovery refuses to continue.
 *   - A record never straddles two segments; a segment holds at least one
 *     record even when that record alone is bigger than segment_size.
 *   - After any failed fdatasync the wal refuses every call (DOTDB_EIO):
 *     the kernel may have dropped the dirty pages and marked them clean, so
 *     a retry could "succeed" over lost data (the 2018 fsyncgate lesson).
 *
 * Replay maps each segment read-only and checks every length against the
 * file size before it looks at the bytes it covers: nothing read from disk
 * is trusted.  Only the coordinator thread that owns the wal calls into it.
 */
#include "wal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "dotdb.h"

#define WAL_MAGIC "DOTDBWAL"
#define WAL_VERSION 1u
#define WAL_CHECK_SIZE 8u
#define WAL_REC_MIN (WAL_REC_HDR_SIZE + WAL_CHECK_SIZE) /* an empty payload */
#define WAL_NAME_MAX 32                  /* "wal_" + up to 20 digits + ".log" */
#define WAL_BUF_MIN (64u << 10)          /* first append buffer */
#define WAL_BUF_KEEP (8u << 20)          /* larger buffers are freed after a write */

struct wal {
    char *dir;
    int dir_fd;
    int fd;                  /* current segment, open for writing; -1 before replay */
    uint64_t segment_size;
    uint64_t segno;          /* current segment */
    uint64_t first_segno;    /* oldest segment file (segments first..segno exist) */
    uint64_t seg_bytes;      /* bytes of records (and header) in the current segment */
    uint64_t phys_bytes;     /* its file size: seg_bytes plus preallocated zeros */
    uint64_t prealloc;       /* preallocation step, 0 = off (wal_set_preallocate) */
    bool prealloc_off_seg;   /* preallocation failed in the current segment */
    bool write_zeros;        /* also write the zeros ahead (wal_set_preallocate) */
    uint64_t zeroed;         /* the current segment holds records or written zeros
                              * (no unwritten extents) up to here */
    uint64_t total_bytes;    /* size of all segment files */
    uint64_t unsynced_bytes; /* written to the current segment since its last fdatasync */
    uint64_t last_lsn;       /* last appended, buffered or written */
    uint64_t written_lsn;    /* last written to a file */
    bool replayed;
    bool check_only;         /* wal_check: read, report, change nothing */
    bool failed;             /* an fdatasync failed: see the file comment */
    uint8_t *buf;            /* records appended and not yet written */
    size_t buf_len;
    size_t buf_cap;
};

/* ---- encoding ------------------------------------------------------------ */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Header and payload with its padding: what the record checksum covers. */
static uint64_t rec_body_size(uint64_t len)
{
    return WAL_REC_HDR_SIZE + ((len + 7) & ~UINT64_C(7));
}

static uint64_t rec_size(uint64_t len)
{
    return rec_body_size(len) + WAL_CHECK_SIZE;
}

static void seg_name(uint64_t segno, char name[WAL_NAME_MAX])
{
    snprintf(name, WAL_NAME_MAX, "wal_%06" PRIu64 ".log", segno);
}

/* The segment number of a file name we write ("wal_000042.log"); false for
 * any other name, including non-canonical spellings of a number. */
static bool seg_parse_name(const char *name, uint64_t *segno)
{
    if (strncmp(name, "wal_", 4) != 0)
        return false;
    const char *d = name + 4;
    size_t n = strspn(d, "0123456789");
    if (n < 6 || n > 20 || strcmp(d + n, ".log") != 0 || (n > 6 && d[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned digit = (unsigned)(d[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *segno = v;
    return v != 0;
}

/* ---- messages and system calls -------------------------------------------- */

static __attribute__((format(printf, 3, 4))) void msg_set(char *buf, size_t len,
                                                          const char *fmt, ...)
{
    if (buf == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* "what DIR/NAME: strerror(e)" into err; returns code. */
static int sys_fail(const wal *w, char *err, size_t errlen, int code, int e, const char *what,
                    const char *name)
{
    char ebuf[128];
    msg_set(err, errlen, "%s %s/%s: %s", what, w->dir, name, strerror_r(e, ebuf, sizeof ebuf));
    return code;
}

/* Disk full in any of its forms is ENOSPC to the caller; the rest is EIO. */
static int io_code(int e)
{
    return e == ENOSPC || e == EDQUOT || e == EFBIG ? DOTDB_ENOSPC : DOTDB_EIO;
}

static int failed_rc(const wal *w, char *err, size_t errlen)
{
    msg_set(err, errlen, "write-ahead log in %s is unusable after a failed fdatasync", w->dir);
    return DOTDB_EIO;
}

/* Write all n bytes at the file offset; 0 or an errno value. */
static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            return EIO; /* no progress and no error: do not spin */
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* For descriptors whose data is already durable (or read-only): a failing
 * close loses nothing, and Linux releases the descriptor either way. */
static void close_synced(int fd)
{
    if (fd >= 0 && close(fd) != 0 && errno != EINTR)
        assert(errno != EBADF);
}

/* Make the creation of `path` durable by fsyncing its parent directory. */
static int fsync_parent(const char *path, char *err, size_t errlen)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return DOTDB_ENOMEM;
    int rc = DOTDB_OK;
    const char *parent = dirname(copy);
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        char ebuf[128];
        msg_set(err, errlen, "cannot fsync directory %s: %s", parent,
                strerror_r(errno, ebuf, sizeof ebuf));
        rc = DOTDB_EOS;
    }
    close_synced(fd);
    free(copy);
    return rc;
}

/* ---- open and close ---------------------------------------------------------- */

static int make_dir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) == 0)
        return fsync_parent(dir, err, errlen);
    if (errno == EEXIST)
        return DOTDB_OK; /* not a directory: the open below says so */
    char ebuf[128];
    msg_set(err, errlen, "cannot create WAL directory %s: %s", dir,
            strerror_r(errno, ebuf, sizeof ebuf));
    return DOTDB_EOS;
}

int wal_open(const char *dir, uint64_t segment_size, wal **out, char *err, size_t errlen)
{
    *out = NULL;
    msg_set(err, errlen, "%s", "");
    if (dir == NULL || segment_size < WAL_SEG_HDR_SIZE + WAL_REC_MIN) {
        msg_set(err, errlen, "invalid WAL directory or segment size %" PRIu64, segment_size);
        return DOTDB_EINVAL;
    }
    int rc = DOTDB_ENOMEM;
    wal *w = calloc(1, sizeof *w);
    if (w == NULL)
        goto fail;
    w->fd = -1;
    w->dir_fd = -1;
    w->segment_size = segment_size;
    w->dir = strdup(dir);
    if (w->dir == NULL)
        goto fail;
    rc = make_dir(dir, err, errlen);
    if (rc != DOTDB_OK)
        goto fail;
    w->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dir_fd < 0) {
        char ebuf[128];
        msg_set(err, errlen, "cannot open WAL directory %s: %s", dir,
                strerror_r(errno, ebuf, sizeof ebuf));
        rc = DOTDB_EOS;
        goto fail;
    }
    *out = w;
    return DOTDB_OK;
fail:
    if (rc == DOTDB_ENOMEM)
        msg_set(err, errlen, "out of memory opening the WAL in %s", dir);
    wal_close(w);
    return rc;
}

int wal_check(const char *dir, uint64_t after_lsn, wal_replay_info *info, char *err,
              size_t errlen)
{
    memset(info, 0, sizeof *info);
    msg_set(err, errlen, "%s", "");
    wal *w = calloc(1, sizeof *w);
    if (w == NULL)
        return DOTDB_ENOMEM;
    w->fd = -1;
    w->check_only = true;
    w->segment_size = UINT64_MAX;
    w->dir = strdup(dir);
    w->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;
    if (w->dir == NULL) {
        rc = DOTDB_ENOMEM;
    } else if (w->dir_fd < 0) {
        char ebuf[128];
        msg_set(err, errlen, "cannot open WAL directory %s: %s", dir,
                strerror_r(errno, ebuf, sizeof ebuf));
        rc = DOTDB_EOS;
    } else {
        rc = wal_replay(w, after_lsn, NULL, NULL, info, err, errlen);
    }
    wal_close(w);
    return rc;
}

void wal_close(wal *w)
{
    if (w == NULL)
        return;
    close_synced(w->fd); /* unsynced data stays in the page cache: see wal.h */
    close_synced(w->dir_fd);
    free(w->buf);
    free(w->dir);
    free(w);
}

/* ---- preallocation --------------------------------------------------------------- */

void wal_set_preallocate(wal *w, uint64_t step, bool write_zeros)
{
    w->prealloc = step;
    w->write_zeros = write_zeros && step > 0;
}

/* Make the current segment's file at least `need` bytes long with zeros
 * reserved ahead of the records (one step, capped at segment_size), so
 * that the fdatasync after an append no longer commits a file-size change
 * through the file system's journal.  Best effort: when fallocate fails
 * (ENOSPC, EFBIG, no support) records are appended as without it, and the
 * file is no longer than fstat says (a failed fallocate may still have
 * reserved part of the range). */
static void prealloc_fd(wal *w, int fd, uint64_t *phys, uint64_t need)
{
    if (w->prealloc == 0 || need <= *phys)
        return;
    uint64_t cap = w->segment_size > need ? w->segment_size : need;
    uint64_t target = need + w->prealloc < cap ? need + w->prealloc : cap;
    if (target <= *phys)
        return;
    if (fallocate(fd, 0, (off_t)*phys, (off_t)(target - *phys)) == 0) {
        *phys = target;
        return;
    }
    int e = errno;
    struct stat st;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > *phys)
        *phys = (uint64_t)st.st_size;
    if (e == EOPNOTSUPP || e == ENOSYS)
        w->prealloc = 0; /* this file system cannot: stop asking */
    else
        w->prealloc_off_seg = true; /* ENOSPC and the like: again in the next segment */
}

/* Write zeros from the end of the records (or of the zeros written
 * before) up to one step past `need`, capped like prealloc_fd, and start
 * their writeback, so that the next fdatasync finds them mostly on disk.
 * A failed write (ENOSPC and the like) stops it for this segment; what was
 * written stays (zeros are the normal end of the last segment). */
static void zero_ahead(wal *w, uint64_t need)
{
    static const uint8_t zeros[1u << 20];
    uint64_t from = w->zeroed > w->seg_bytes ? w->zeroed : w->seg_bytes;
    uint64_t cap = w->segment_size > need ? w->segment_size : need;
    uint64_t to = need + w->prealloc < cap ? need + w->prealloc : cap;
    uint64_t at = from;
    while (at < to) {
        size_t n = to - at < sizeof zeros ? (size_t)(to - at) : sizeof zeros;
        ssize_t k = pwrite(w->fd, zeros, n, (off_t)at);
        if (k <= 0) {
            w->prealloc_off_seg = true;
            break;
        }
        at += (uint64_t)k;
    }
    if (at > from)
        (void)sync_file_range(w->fd, (off_t)from, (off_t)(at - from), SYNC_FILE_RANGE_WRITE);
    w->zeroed = at;
    if (at > w->phys_bytes)
        w->phys_bytes = at;
}

static void prealloc_reserve(wal *w, uint64_t need)
{
    if (w->prealloc_off_seg)
        return;
    prealloc_fd(w, w->fd, &w->phys_bytes, need);
    if (w->write_zeros && need > w->zeroed && !w->prealloc_off_seg)
        zero_ahead(w, need);
}

/* Before a segment is sealed: give back the zeros reserved past its last
 * record, so that only the last segment ever ends in preallocated space
 * (replay relies on it).  The fdatasync that seals it makes this durable. */
static int prealloc_trim(wal *w)
{
    if (w->phys_bytes <= w->seg_bytes)
        return 0;
    if (ftruncate(w->fd, (off_t)w->seg_bytes) != 0)
        return errno;
    w->phys_bytes = w->zeroed = w->seg_bytes;
    return 0;
}

/* ---- segment creation ------------------------------------------------------- */

static void seg_header(uint8_t h[WAL_SEG_HDR_SIZE], uint64_t segno)
{
    memcpy(h, WAL_MAGIC, 8);
    put_u32(h + 8, WAL_VERSION);
    put_u32(h + 12, 0);
    put_u64(h + 16, segno);
    put_u64(h + 24, XXH64(h, 24, 0));
}

/* Create segment segno, header durable and directory entry durable, and
 * return its descriptor (positioned after the header) in *fd_out and its
 * file size (preallocated zeros included) in *phys_out. */
static int seg_create(wal *w, uint64_t segno, int *fd_out, uint64_t *phys_out, char *err,
                      size_t errlen)
{
    *fd_out = -1;
    *phys_out = WAL_SEG_HDR_SIZE;
    w->prealloc_off_seg = false;
    char name[WAL_NAME_MAX];
    uint8_t h[WAL_SEG_HDR_SIZE];
    seg_name(segno, name);
    seg_header(h, segno);
    int fd = openat(w->dir_fd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return sys_fail(w, err, errlen, io_code(errno), errno, "cannot create", name);
    int rc = DOTDB_OK, e = write_all(fd, h, sizeof h);
    if (e != 0) {
        rc = sys_fail(w, err, errlen, io_code(e), e, "cannot write the header of", name);
    } else if (fdatasync(fd) != 0 || fsync(w->dir_fd) != 0) {
        w->failed = true;
        rc = sys_fail(w, err, errlen, DOTDB_EIO, errno, "cannot sync new segment", name);
    }
    if (rc != DOTDB_OK) {
        close_synced(fd);
        /* a header-less segment at the end is removed by replay anyway */
        if (unlinkat(w->dir_fd, name, 0) != 0 && errno != ENOENT)
            w->failed = true;
        return rc;
    }
    /* Only once the header is durable: a file longer than a header is never
     * taken for a torn creation, so its header must be good by then.  The
     * new size becomes durable with the first record's fdatasync. */
    prealloc_fd(w, fd, phys_out, WAL_SEG_HDR_SIZE + 1);
    *fd_out = fd;
    return DOTDB_OK;
}

/* ---- appending ------------------------------------------------------------------ */

static int buf_reserve(wal *w, size_t extra)
{
    if (extra > SIZE_MAX / 2 - w->buf_len)
        return DOTDB_ENOMEM;
    size_t need = w->buf_len + extra;
    if (need <= w->buf_cap)
        return DOTDB_OK;
    size_t cap = w->buf_cap < WAL_BUF_MIN ? WAL_BUF_MIN : w->buf_cap;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(w->buf, cap);
    if (p == NULL)
        return DOTDB_ENOMEM;
    w->buf = p;
    w->buf_cap = cap;
    return DOTDB_OK;
}

int wal_append(wal *w, uint64_t lsn, uint32_t type, const void *payload, size_t len)
{
    if (w->failed)
        return DOTDB_EIO;
    if (len > WAL_MAX_PAYLOAD)
        return DOTDB_ETOOBIG;
    /* a caller bug; checked in release builds too, since a wrong LSN on
     * disk would make the next recovery stop here */
    assert(w->replayed && lsn == w->last_lsn + 1 && type != 0);
    if (!w->replayed || lsn != w->last_lsn + 1 || type == 0)
        return DOTDB_EINVAL;
    /* After a log ending at the top LSN, last + 1 wraps: such a record
     * would be written, acknowledged and refused by the next replay. */
    if (lsn == 0 || lsn > WAL_LSN_MAX)
        return DOTDB_EINVAL;
    size_t body = (size_t)rec_body_size(len);
    int rc = buf_reserve(w, body + WAL_CHECK_SIZE);
    if (rc != DOTDB_OK)
        return rc;
    uint8_t *p = w->buf + w->buf_len;
    put_u32(p, (uint32_t)len);
    put_u32(p + 4, type);
    put_u64(p + 8, lsn);
    if (len > 0)
        memcpy(p + WAL_REC_HDR_SIZE, payload, len);
    memset(p + WAL_REC_HDR_SIZE + len, 0, body - WAL_REC_HDR_SIZE - len);
    put_u64(p + body, XXH64(p, body, 0));
    w->buf_len += body + WAL_CHECK_SIZE;
    w->last_lsn = lsn;
    return DOTDB_OK;
}

/* ---- writing --------------------------------------------------------------------- */

/* Where a wal_write started, to undo it. */
struct write_mark {
    uint64_t segno;
    uint64_t seg_bytes;
    uint64_t total_bytes;
    int fd0; /* segment `segno`, kept open once a rotation moved past it */
};

/* Bytes of whole records from buf[pos] that go into the current segment;
 * 0 when the segment must be rotated first. */
static size_t fit_in_segment(const wal *w, size_t pos)
{
    uint64_t room = w->seg_bytes < w->segment_size ? w->segment_size - w->seg_bytes : 0;
    bool seg_empty = w->seg_bytes <= WAL_SEG_HDR_SIZE;
    size_t n = 0;
    while (pos + n < w->buf_len) {
        size_t rs = (size_t)rec_size(get_u32(w->buf + pos + n));
        if (n + rs > room && !(seg_empty && n == 0))
            break;
        n += rs;
    }
    return n;
}

/* Seal the current segment (fdatasync) and continue in a new one. */
static int rotate(wal *w, struct write_mark *m, char *err, size_t errlen)
{
    char name[WAL_NAME_MAX];
    seg_name(w->segno, name);
    int e = prealloc_trim(w);
    if (e != 0)
        return sys_fail(w, err, errlen, io_code(e), e, "cannot trim the preallocated end of", name);
    if (fdatasync(w->fd) != 0) {
        w->failed = true;
        return sys_fail(w, err, errlen, DOTDB_EIO, errno, "fdatasync failed on", name);
    }
    w->unsynced_bytes = 0;
    int fd;
    uint64_t phys;
    int rc = seg_create(w, w->segno + 1, &fd, &phys, err, errlen);
    if (rc != DOTDB_OK)
        return rc;
    if (m->fd0 < 0)
        m->fd0 = w->fd;
    else
        close_synced(w->fd);
    w->fd = fd;
    w->segno++;
    w->seg_bytes = w->zeroed = WAL_SEG_HDR_SIZE;
    w->phys_bytes = phys;
    w->total_bytes += WAL_SEG_HDR_SIZE;
    return DOTDB_OK;
}

static int write_records(wal *w, struct write_mark *m, char *err, size_t errlen)
{
    size_t pos = 0;
    while (pos < w->buf_len) {
        size_t n = fit_in_segment(w, pos);
        if (n == 0) {
            int rc = rotate(w, m, err, errlen);
            if (rc != DOTDB_OK)
                return rc;
            continue;
        }
        prealloc_reserve(w, w->seg_bytes + n);
        int e = write_all(w->fd, w->buf + pos, n);
        if (e != 0) {
            char name[WAL_NAME_MAX];
            seg_name(w->segno, name);
            return sys_fail(w, err, errlen, io_code(e), e, "cannot write to", name);
        }
        pos += n;
        w->seg_bytes += n;
        w->total_bytes += n;
        w->unsynced_bytes += n;
    }
    return DOTDB_OK;
}

/* Undo a failed write: the first segment back to its size, durably, then
 * the segments this call created removed.  In that order, so that a crash
 * in between leaves at most a new last segment whose first LSN does not
 * follow, which recovery truncates.  If the undo fails the wal is failed. */
static void rollback(wal *w, struct write_mark *m, char *err, size_t errlen)
{
    int fd0 = m->fd0 >= 0 ? m->fd0 : w->fd;
    int e = 0;
    if (ftruncate(fd0, (off_t)m->seg_bytes) != 0 || fdatasync(fd0) != 0 ||
        lseek(fd0, (off_t)m->seg_bytes, SEEK_SET) != (off_t)m->seg_bytes)
        e = errno;
    if (m->fd0 >= 0) {
        close_synced(w->fd); /* its file is removed below */
        for (uint64_t s = w->segno; s > m->segno; s--) {
            char name[WAL_NAME_MAX];
            seg_name(s, name);
            if (unlinkat(w->dir_fd, name, 0) != 0 && errno != ENOENT && e == 0)
                e = errno;
        }
        if (fsync(w->dir_fd) != 0 && e == 0)
            e = errno;
        w->fd = m->fd0;
        w->segno = m->segno;
    }
    w->seg_bytes = w->phys_bytes = w->zeroed = m->seg_bytes; /* the preallocated end went too */
    w->total_bytes = m->total_bytes;
    w->unsynced_bytes = 0; /* the fdatasync above covered the whole segment */
    if (e != 0) {
        w->failed = true;
        size_t used = err != NULL && errlen > 0 ? strnlen(err, errlen) : 0;
        char ebuf[128];
        if (used + 1 < errlen)
            msg_set(err + used, errlen - used, "; undoing the write failed too: %s",
                    strerror_r(e, ebuf, sizeof ebuf));
    }
}

int wal_write(wal *w, char *err, size_t errlen)
{
    msg_set(err, errlen, "%s", "");
    if (w->failed)
        return failed_rc(w, err, errlen);
    if (w->buf_len == 0)
        return DOTDB_OK;
    assert(w->replayed && w->fd >= 0);
    struct write_mark m = {w->segno, w->seg_bytes, w->total_bytes, -1};
    int rc = write_records(w, &m, err, errlen);
    if (rc != DOTDB_OK) {
        rollback(w, &m, err, errlen);
        w->last_lsn = w->written_lsn;
    } else {
        close_synced(m.fd0); /* fdatasynced by the rotation */
        w->written_lsn = w->last_lsn;
    }
    w->buf_len = 0;
    if (w->buf_cap > WAL_BUF_KEEP) {
        free(w->buf);
        w->buf = NULL;
        w->buf_cap = 0;
    }
    return rc;
}

int wal_sync(wal *w, char *err, size_t errlen)
{
    msg_set(err, errlen, "%s", "");
    if (w->failed)
        return failed_rc(w, err, errlen);
    if (w->unsynced_bytes == 0)
        return DOTDB_OK;
    if (fdatasync(w->fd) != 0) {
        char name[WAL_NAME_MAX];
        seg_name(w->segno, name);
        w->failed = true;
        return sys_fail(w, err, errlen, DOTDB_EIO, errno, "fdatasync failed on", name);
    }
    w->unsynced_bytes = 0;
    return DOTDB_OK;
}

static int sync_begin(wal *w, wal_sync_ticket *t, bool borrow, char *err, size_t errlen)
{
    msg_set(err, errlen, "%s", "");
    t->fd = -1;
    t->borrowed = false;
    t->err_no = 0;
    t->segno = w->segno;
    t->bytes = w->unsynced_bytes;
    t->upto = w->seg_bytes;
    t->lsn = w->written_lsn;
    if (w->failed)
        return failed_rc(w, err, errlen);
    if (w->unsynced_bytes == 0)
        return DOTDB_OK;
    if (borrow) { /* run at once by this thread: nothing can close it meanwhile */
        t->fd = w->fd;
        t->borrowed = true;
        return DOTDB_OK;
    }
    /* Our own descriptor: a rotation may close w->fd while the sync runs. */
    t->fd = fcntl(w->fd, F_DUPFD_CLOEXEC, 0);
    if (t->fd < 0)
        return sys_fail(w, err, errlen, DOTDB_EOS, errno, "cannot duplicate the descriptor of",
                        "the current segment");
    return DOTDB_OK;
}

int wal_sync_begin(wal *w, wal_sync_ticket *t, char *err, size_t errlen)
{
    return sync_begin(w, t, false, err, errlen);
}

int wal_sync_begin_here(wal *w, wal_sync_ticket *t, char *err, size_t errlen)
{
    return sync_begin(w, t, true, err, errlen);
}

void wal_sync_run(wal_sync_ticket *t)
{
    if (t->fd < 0)
        return;
    t->err_no = fdatasync(t->fd) == 0 ? 0 : errno;
    if (!t->borrowed)
        close(t->fd);
    t->fd = -1;
}

int wal_sync_end(wal *w, const wal_sync_ticket *t, char *err, size_t errlen)
{
    msg_set(err, errlen, "%s", "");
    if (w->failed)
        return failed_rc(w, err, errlen);
    if (t->err_no != 0) {
        char name[WAL_NAME_MAX];
        seg_name(t->segno, name);
        w->failed = true; /* never retried: see the file comment */
        return sys_fail(w, err, errlen, DOTDB_EIO, t->err_no, "fdatasync failed on", name);
    }
    /* A rotation since begin synced that segment itself; otherwise at most
     * what was written after begin is still unsynced (an overlapping
     * ticket that ended first may have covered some of that already). */
    if (w->segno == t->segno) {
        uint64_t after = w->seg_bytes > t->upto ? w->seg_bytes - t->upto : 0;
        if (w->unsynced_bytes > after)
            w->unsynced_bytes = after;
    }
    return DOTDB_OK;
}

int wal_rotate(wal *w, char *err, size_t errlen)
{
    msg_set(err, errlen, "%s", "");
    if (w->failed)
        return failed_rc(w, err, errlen);
    assert(w->replayed && w->fd >= 0);
    if (w->seg_bytes <= WAL_SEG_HDR_SIZE)
        return DOTDB_OK;
    struct write_mark m = {w->segno, w->seg_bytes, w->total_bytes, -1};
    int rc = rotate(w, &m, err, errlen);
    close_synced(m.fd0); /* fdatasynced by the rotation */
    return rc;
}

/* LSN of the first record of segment segno, 0 when it has none. */
static int first_lsn_of(const wal *w, uint64_t segno, uint64_t *lsn, char *err, size_t errlen)
{
    char name[WAL_NAME_MAX];
    uint8_t h[WAL_REC_HDR_SIZE];
    seg_name(segno, name);
    *lsn = 0;
    int fd = openat(w->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sys_fail(w, err, errlen, DOTDB_EOS, errno, "cannot open", name);
    ssize_t got = pread(fd, h, sizeof h, WAL_SEG_HDR_SIZE);
    close_synced(fd);
    if (got == (ssize_t)sizeof h)
        *lsn = get_u64(h + 8);
    return DOTDB_OK;
}

int wal_remove_through(wal *w, uint64_t lsn, uint64_t *removed, char *err, size_t errlen)
{
    msg_set(err, errlen, "%s", "");
    *removed = 0;
    if (w->failed)
        return failed_rc(w, err, errlen);
    while (w->first_segno < w->segno) {
        /* Every record of a segment is older than the first of the next
         * one; a next segment without records is the current one. */
        uint64_t next_first;
        int rc = first_lsn_of(w, w->first_segno + 1, &next_first, err, errlen);
        if (rc != DOTDB_OK)
            return rc;
        int covered = next_first ? next_first - 1 <= lsn
                                 : (w->first_segno + 1 == w->segno && w->written_lsn <= lsn);
        if (!covered)
            break;
        char name[WAL_NAME_MAX];
        struct stat st;
        seg_name(w->first_segno, name);
        uint64_t size = fstatat(w->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? (uint64_t)st.st_size : 0;
        if (unlinkat(w->dir_fd, name, 0) != 0)
            return sys_fail(w, err, errlen, DOTDB_EIO, errno, "cannot remove", name);
        /* One directory fsync per removal, oldest first: the log on disk
         * never has a hole in its segment numbers, whatever survives a
         * crash. */
        if (fsync(w->dir_fd) != 0)
            return sys_fail(w, err, errlen, DOTDB_EIO, errno, "cannot fsync the directory after removing",
                            name);
        w->total_bytes -= size <= w->total_bytes ? size : w->total_bytes;
        w->first_segno++;
        (*removed)++;
    }
    return DOTDB_OK;
}

uint64_t wal_first_segno(const wal *w) { return w->first_segno; }
int wal_is_failed(const wal *w) { return w->failed; }
uint64_t wal_current_bytes(const wal *w) { return w->seg_bytes; }

uint64_t wal_written_lsn(const wal *w) { return w->written_lsn; }

uint64_t wal_unsynced_bytes(const wal *w) { return w->unsynced_bytes; }
uint64_t wal_total_bytes(const wal *w) { return w->total_bytes; }
uint64_t wal_current_segno(const wal *w) { return w->segno; }
uint64_t wal_last_lsn(const wal *w) { return w->last_lsn; }

/* ---- replay: finding the segments ------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int push_segno(uint64_t **segs, size_t *n, size_t *cap, uint64_t segno)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        uint64_t *p = realloc(*segs, c * sizeof *p);
        if (p == NULL)
            return DOTDB_ENOMEM;
        *segs = p;
        *cap = c;
    }
    (*segs)[(*n)++] = segno;
    return DOTDB_OK;
}

/* The segment numbers in the directory, sorted (*segs_out malloc'ed). */
static int list_segments(const wal *w, uint64_t **segs_out, size_t *n_out, char *err,
                         size_t errlen)
{
    *segs_out = NULL;
    *n_out = 0;
    uint64_t *segs = NULL;
    size_t n = 0, cap = 0;
    int rc = DOTDB_OK;
    DIR *d = opendir(w->dir);
    if (d == NULL)
        return sys_fail(w, err, errlen, DOTDB_EOS, errno, "cannot list", ".");
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        uint64_t segno;
        if (de == NULL) {
            if (errno != 0)
                rc = sys_fail(w, err, errlen, DOTDB_EOS, errno, "cannot list", ".");
            break;
        }
        if (seg_parse_name(de->d_name, &segno)) {
            rc = push_segno(&segs, &n, &cap, segno);
            if (rc != DOTDB_OK)
                break;
        }
    }
    closedir(d); /* a read-only stream: its close cannot lose anything */
    if (rc == DOTDB_OK && n > 0)
        qsort(segs, n, sizeof *segs, cmp_u64);
    if (rc == DOTDB_OK) {
        *segs_out = segs;
        *n_out = n;
    } else {
        free(segs);
    }
    return rc;
}

static int check_consecutive(const wal *w, const uint64_t *segs, size_t n, char *err,
                             size_t errlen)
{
    for (size_t i = 1; i < n; i++) {
        if (segs[i] != segs[i - 1] + 1) {
            char a[WAL_NAME_MAX], b[WAL_NAME_MAX];
            seg_name(segs[i - 1], a);
            seg_name(segs[i], b);
            msg_set(err, errlen, "WAL in %s is missing segments between %s and %s", w->dir, a,
                    b);
            return DOTDB_ECORRUPT;
        }
    }
    return DOTDB_OK;
}

/* ---- replay: records -------------------------------------------------------- */

struct replay {
    wal *w;
    uint64_t after_lsn;
    wal_apply_fn fn;
    void *ctx;
    wal_replay_info *info;
    uint64_t prev_lsn;   /* last good record; 0 before the first */
    bool last_is_sealed; /* the real last segment was a torn creation, now removed */
    uint64_t removed_segno; /* that segment's number, 0 if none */
    char *err;
    size_t errlen;
};

static void add_warning(wal_replay_info *info, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_warning(wal_replay_info *info, const char *fmt, ...)
{
    size_t used = strnlen(info->warning, sizeof info->warning);
    if (used > 0 && used + 2 < sizeof info->warning) {
        memcpy(info->warning + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= sizeof info->warning)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(info->warning + used, sizeof info->warning - used, fmt, ap);
    va_end(ap);
}

static bool lsn_follows(const struct replay *r, uint64_t lsn)
{
    if (lsn == 0 || lsn > WAL_LSN_MAX)
        return false; /* no successor could be appended after it */
    if (r->prev_lsn == 0)
        return true; /* the log may start anywhere: older segments were checkpointed */
    /* a jump is harmless when the checkpoint holds every LSN skipped */
    return lsn == r->prev_lsn + 1 || (lsn > r->prev_lsn && lsn - 1 <= r->after_lsn);
}

/* Check the record at p (avail bytes to the end of the file).  NULL and
 * *size_out if it is good, else why not (in why). */
static const char *record_check(const struct replay *r, const uint8_t *p, uint64_t avail,
                                uint64_t *size_out, char *why, size_t whylen)
{
    *size_out = 0;
    if (avail < WAL_REC_MIN)
        return "the file ends inside the record header";
    uint32_t len = get_u32(p), type = get_u32(p + 4);
    uint64_t lsn = get_u64(p + 8);
    if (len > WAL_MAX_PAYLOAD)
        return "payload length over the limit";
    uint64_t body = rec_body_size(len);
    if (body + WAL_CHECK_SIZE > avail)
        return "the file ends inside the record";
    if (get_u64(p + body) != XXH64(p, (size_t)body, 0))
        return "checksum mismatch";
    if (type == 0)
        return "record type 0";
    if (!lsn_follows(r, lsn)) {
        snprintf(why, whylen, "LSN %" PRIu64 " does not follow %" PRIu64, lsn, r->prev_lsn);
        return why;
    }
    *size_out = body + WAL_CHECK_SIZE;
    return NULL;
}

/* Hand the good records of one mapped segment to the callback.  *stop_at
 * is where the first bad record starts (size if none), *why the reason. */
static int scan_records(struct replay *r, const uint8_t *map, uint64_t size, uint64_t *stop_at,
                        const char **why, char *whybuf, size_t whylen)
{
    uint64_t off = WAL_SEG_HDR_SIZE, rs;
    *why = NULL;
    while (off < size) {
        *why = record_check(r, map + off, size - off, &rs, whybuf, whylen);
        if (*why != NULL)
            break;
        const uint8_t *p = map + off;
        uint64_t lsn = get_u64(p + 8);
        r->info->records++;
        if (r->info->first_lsn == 0)
            r->info->first_lsn = lsn;
        r->info->last_lsn = r->prev_lsn = lsn;
        if (lsn > r->after_lsn && r->fn != NULL) {
            int rc = r->fn(r->ctx, lsn, get_u32(p + 4), p + WAL_REC_HDR_SIZE, get_u32(p));
            if (rc != 0)
                return rc;
        }
        off += rs;
    }
    *stop_at = off;
    return DOTDB_OK;
}

/* ---- replay: segments --------------------------------------------------------- */

enum hdr_state { HDR_OK, HDR_TORN, HDR_VERSION, HDR_MISMATCH };

static enum hdr_state header_check(const uint8_t *h, uint64_t size, uint64_t segno)
{
    if (size < WAL_SEG_HDR_SIZE || memcmp(h, WAL_MAGIC, 8) != 0 ||
        get_u64(h + 24) != XXH64(h, 24, 0))
        return HDR_TORN;
    if (get_u32(h + 8) != WAL_VERSION)
        return HDR_VERSION;
    if (get_u32(h + 12) != 0 || get_u64(h + 16) != segno)
        return HDR_MISMATCH;
    return HDR_OK;
}

static int header_error(const struct replay *r, enum hdr_state hs, const char *name,
                        const uint8_t *h)
{
    if (hs == HDR_VERSION) {
        msg_set(r->err, r->errlen, "%s/%s: WAL format version %" PRIu32 " (this build reads %u)",
                r->w->dir, name, get_u32(h + 8), WAL_VERSION);
        return DOTDB_EVERSION;
    }
    msg_set(r->err, r->errlen, "%s/%s: %s segment header at offset 0", r->w->dir, name,
            hs == HDR_MISMATCH ? "wrong segment number in the" : "bad or short");
    return DOTDB_ECORRUPT;
}

/* If the last segment is no longer than a header and its header is bad, a
 * crash cut its creation short (headers are synced before any record):
 * remove it.  *n drops by one then. */
static int drop_torn_creation(struct replay *r, const uint64_t *segs, size_t *n)
{
    if (*n == 0)
        return DOTDB_OK;
    wal *w = r->w;
    char name[WAL_NAME_MAX];
    uint8_t h[WAL_SEG_HDR_SIZE] = {0};
    struct stat st;
    seg_name(segs[*n - 1], name);
    int fd = openat(w->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sys_fail(w, r->err, r->errlen, DOTDB_EOS, errno, "cannot open", name);
    int rc = DOTDB_OK;
    ssize_t got = 0;
    if (fstat(fd, &st) != 0 || (got = pread(fd, h, sizeof h, 0)) < 0)
        rc = sys_fail(w, r->err, r->errlen, DOTDB_EOS, errno, "cannot read", name);
    close_synced(fd);
    if (rc != DOTDB_OK || st.st_size > (off_t)WAL_SEG_HDR_SIZE ||
        header_check(h, (uint64_t)got, segs[*n - 1]) != HDR_TORN)
        return rc;
    if (w->check_only) {
        add_warning(r->info, "%s/%s: a segment of %lld bytes cut short while being created "
                    "(removed at the next start)", w->dir, name, (long long)st.st_size);
        r->removed_segno = segs[*n - 1];
        r->last_is_sealed = true;
        (*n)--;
        return DOTDB_OK;
    }
    if (unlinkat(w->dir_fd, name, 0) != 0)
        return sys_fail(w, r->err, r->errlen, DOTDB_EIO, errno, "cannot remove torn segment",
                        name);
    if (fsync(w->dir_fd) != 0) {
        w->failed = true;
        return sys_fail(w, r->err, r->errlen, DOTDB_EIO, errno, "fsync failed on the directory of",
                        name);
    }
    add_warning(r->info, "removed %s/%s: a segment of %lld bytes cut short while being created",
                w->dir, name, (long long)st.st_size);
    r->removed_segno = segs[*n - 1];
    r->last_is_sealed = true;
    (*n)--;
    return DOTDB_OK;
}

/* Cut a torn tail off the last segment, durably. */
static int truncate_tail(struct replay *r, int fd, const char *name, uint64_t size,
                         uint64_t off, const char *why)
{
    if (ftruncate(fd, (off_t)off) != 0)
        return sys_fail(r->w, r->err, r->errlen, DOTDB_EIO, errno, "cannot truncate", name);
    if (fdatasync(fd) != 0) {
        r->w->failed = true;
        return sys_fail(r->w, r->err, r->errlen, DOTDB_EIO, errno, "fdatasync failed on", name);
    }
    r->info->truncated_bytes += size - off;
    add_warning(r->info, "truncated torn tail of %s/%s at offset %" PRIu64 " (%s): %" PRIu64
                " bytes removed", r->w->dir, name, off, why, size - off);
    return DOTDB_OK;
}

static int map_segment(const struct replay *r, int fd, const char *name, uint64_t *size_out,
                       const uint8_t **map_out)
{
    struct stat st;
    *size_out = 0;
    *map_out = NULL;
    if (fstat(fd, &st) != 0)
        return sys_fail(r->w, r->err, r->errlen, DOTDB_EOS, errno, "cannot stat", name);
    if (!S_ISREG(st.st_mode)) {
        msg_set(r->err, r->errlen, "%s/%s is not a regular file", r->w->dir, name);
        return DOTDB_ECORRUPT;
    }
    if (st.st_size == 0)
        return DOTDB_OK;
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return sys_fail(r->w, r->err, r->errlen, DOTDB_EOS, errno, "cannot map", name);
    *size_out = (uint64_t)st.st_size;
    *map_out = p;
    return DOTDB_OK;
}

/* Make fd (the last segment, good up to `end`, `phys` bytes long) the one
 * appends go to. */
static int adopt_last(struct replay *r, int fd, uint64_t segno, uint64_t end, uint64_t phys,
                      const char *name)
{
    if (lseek(fd, (off_t)end, SEEK_SET) != (off_t)end)
        return sys_fail(r->w, r->err, r->errlen, DOTDB_EOS, errno, "cannot seek in", name);
    r->w->fd = fd;
    r->w->segno = segno;
    r->w->seg_bytes = r->w->zeroed = end; /* zeros past end: maybe only reserved */
    r->w->phys_bytes = phys;
    return DOTDB_OK;
}

/* Are the n bytes at p all zero?  (The first one is, and each equals the
 * next: memcmp's vector loop over a tail of tens of megabytes.) */
static bool all_zero(const uint8_t *p, uint64_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, (size_t)n - 1) == 0);
}

/* Is there a good record anywhere after a bad one at `from`?  Then the bad
 * one is damage in the middle of the log, not a tail cut short by a crash
 * (a crash only ever loses a suffix).  Candidates are 8-byte aligned and
 * must look like a batch record that follows prev_lsn before the checksum
 * is computed, so a garbage tail costs a linear scan, not a hash per byte. */
static bool good_record_after(const struct replay *r, const uint8_t *map, uint64_t size,
                              uint64_t from)
{
    for (uint64_t off = from + 8; off + WAL_REC_MIN <= size; off += 8) {
        const uint8_t *p = map + off;
        uint32_t len = get_u32(p), type = get_u32(p + 4);
        uint64_t lsn = get_u64(p + 8);
        if (type == 0 || len > WAL_MAX_PAYLOAD || lsn <= r->prev_lsn ||
            lsn - r->prev_lsn > (UINT64_C(1) << 20))
            continue;
        uint64_t body = rec_body_size(len);
        if (body + WAL_CHECK_SIZE > size - off)
            continue;
        if (get_u64(p + body) == XXH64(p, (size_t)body, 0))
            return true;
    }
    return false;
}

/* Check the header and the records of one segment, then: the last one is
 * truncated after its last good record and kept open for appends; damage
 * in any other is DOTDB_ECORRUPT. */
static int replay_segment(struct replay *r, uint64_t segno, bool is_last)
{
    char name[WAL_NAME_MAX], whybuf[96];
    const char *why = NULL;
    const uint8_t *map = NULL;
    uint64_t size = 0, stop = 0, phys = 0;
    seg_name(segno, name);
    int fd = openat(r->w->dir_fd, name, (is_last && !r->w->check_only ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return sys_fail(r->w, r->err, r->errlen, DOTDB_EOS, errno, "cannot open", name);
    int rc = map_segment(r, fd, name, &size, &map);
    if (rc != DOTDB_OK)
        goto out;
    enum hdr_state hs = header_check(map, size, segno);
    if (hs != HDR_OK) {
        rc = header_error(r, hs, name, map);
        goto out;
    }
    rc = scan_records(r, map, size, &stop, &why, whybuf, sizeof whybuf);
    if (rc != DOTDB_OK || why == NULL)
        goto out;
    /* Zeros from the last record to the end are the space the writer
     * reserved ahead of itself: the normal end of the last segment (sealed
     * segments are trimmed before their final fdatasync). */
    bool zero_tail = all_zero(map + stop, size - stop);
    if (zero_tail && is_last && !r->last_is_sealed) {
        phys = size;
        goto out;
    }
    if (!is_last || r->last_is_sealed || zero_tail || good_record_after(r, map, size, stop)) {
        msg_set(r->err, r->errlen, "%s/%s: corrupt record at offset %" PRIu64
                " (%s) before the end of the log", r->w->dir, name, stop, why);
        rc = DOTDB_ECORRUPT;
        goto out;
    }
    munmap((void *)map, (size_t)size); /* before the file shrinks under it */
    map = NULL;
    if (r->w->check_only) {
        r->info->truncated_bytes += size - stop;
        add_warning(r->info, "%s/%s: incomplete last record at offset %" PRIu64 " (%s): a torn "
                    "tail (or a write in progress), %" PRIu64 " bytes cut at the next start",
                    r->w->dir, name, stop, why, size - stop);
    } else {
        rc = truncate_tail(r, fd, name, size, stop, why);
    }
out:
    if (map != NULL)
        munmap((void *)map, (size_t)size); /* a valid mapping: cannot fail */
    if (rc == DOTDB_OK) {
        r->w->total_bytes += stop;
        if (is_last && !r->w->check_only &&
            (rc = adopt_last(r, fd, segno, stop, phys > stop ? phys : stop, name)) == DOTDB_OK)
            fd = -1;
    }
    close_synced(fd);
    return rc;
}

/* The log is empty (or was only a torn creation): start it. */
static int start_log(struct replay *r)
{
    uint64_t segno = r->removed_segno != 0 ? r->removed_segno : 1;
    int fd;
    uint64_t phys;
    int rc = seg_create(r->w, segno, &fd, &phys, r->err, r->errlen);
    if (rc != DOTDB_OK)
        return rc;
    r->w->fd = fd;
    r->w->segno = r->w->first_segno = segno;
    r->w->seg_bytes = r->w->zeroed = WAL_SEG_HDR_SIZE;
    r->w->phys_bytes = phys;
    r->w->total_bytes = WAL_SEG_HDR_SIZE;
    return DOTDB_OK;
}

int wal_replay(wal *w, uint64_t after_lsn, wal_apply_fn fn, void *ctx, wal_replay_info *info,
               char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    msg_set(err, errlen, "%s", "");
    if (w->failed)
        return failed_rc(w, err, errlen);
    assert(!w->replayed);
    if (w->replayed)
        return DOTDB_EINVAL;
    struct replay r = {w, after_lsn, fn, ctx, info, 0, false, 0, err, errlen};
    uint64_t *segs = NULL;
    size_t n = 0;
    int rc = list_segments(w, &segs, &n, err, errlen);
    if (rc == DOTDB_OK)
        rc = check_consecutive(w, segs, n, err, errlen);
    if (rc == DOTDB_OK)
        rc = drop_torn_creation(&r, segs, &n);
    if (rc == DOTDB_OK && n > 0)
        w->first_segno = segs[0];
    for (size_t i = 0; rc == DOTDB_OK && i < n; i++)
        rc = replay_segment(&r, segs[i], i + 1 == n);
    if (rc == DOTDB_OK && n == 0 && !w->check_only)
        rc = start_log(&r);
    free(segs);
    if (rc != DOTDB_OK) {
        close_synced(w->fd);
        w->fd = -1;
        w->segno = w->seg_bytes = w->total_bytes = 0;
        memset(info, 0, sizeof *info);
        return rc;
    }
    w->last_lsn = w->written_lsn = r.prev_lsn > after_lsn ? r.prev_lsn : after_lsn;
    w->replayed = true;
    return DOTDB_OK;
}
