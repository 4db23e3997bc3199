/*
 * storage.c - checkpoint scheduling, adoption and online backup (see
 * storage.h).  The order that keeps a crash harmless at every point:
 *
 *   rotate the WAL            everything up to L lies in closed segments
 *   pin L, run the job        segments, metadata, then the manifest rename
 *   adopt the manifest        only after ckpt_run reported it durable
 *   remove WAL segments <= L  only now: before, they are the only copy
 *
 * A backup is a checkpoint followed by a copy job: the manifest, the
 * segments it names (immutable), the collections' metadata and the WAL
 * segments up to the bytes written at that moment, all fsynced in the
 * destination.  The result is a data directory a coordinator can start
 * on (`dotdb restore` copies it back and checks it).  Checkpoints wait
 * while a copy runs, so no segment it copies is removed under it.
 */
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "dotdb.h"
#include "segment.h"

#define RETRY_AFTER_FAILURE_NS (5ull * 1000000000ull)
#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

enum job_kind { JOB_CHECKPOINT = 1, JOB_BACKUP = 2 };

typedef struct wal_piece {
    uint64_t segno;
    uint64_t bytes;
} wal_piece;

typedef struct st_job {
    int kind;
    uint64_t gen;
    ckpt_job ck;
    /* backup */
    char dest[4096];
    char src[4096];
    char waldir[4096];
    manifest mf;          /* copy of the manifest to copy */
    wal_piece *wal;
    size_t nwal;
    uint64_t wal_lsn;
    int rc;
    char err[700];
    uint64_t files, bytes;
    double seconds;
} st_job;

struct storage {
    const dotdb_config *cfg;
    char dir[4096];
    char waldir[4096];
    engine *eng;
    wal *log;
    wk_pool *pool;
    manifest mf;
    st_job *running;
    uint64_t pin;
    uint64_t next_gen, completed_gen;
    /* a request waiting for the running job to finish */
    uint64_t pending_gen;
    int pending_force;
    char pending_only[65];
    char pending_backup[4096];
    int pending_has_backup;
    /* outcome of the last completed generation */
    int last_rc;
    char *last_json;
    /* stats */
    uint64_t checkpoints, failures, last_ckpt_ns, last_fail_ns, start_ns;
    char last_error[700];
    double last_seconds;
    uint64_t last_bytes;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int storage_create(const dotdb_config *cfg, const char *dir, engine *eng, wal *log,
                   wk_pool *pool, manifest *mf, storage **out)
{
    storage *st = calloc(1, sizeof *st);
    if (st == NULL)
        return DOTDB_ENOMEM;
    st->cfg = cfg;
    snprintf(st->dir, sizeof st->dir, "%s", dir);
    if (cfg->wal_directory[0])
        snprintf(st->waldir, sizeof st->waldir, "%s", cfg->wal_directory);
    else
        msgf(st->waldir, sizeof st->waldir, "%s/wal", dir);
    st->eng = eng;
    st->log = log;
    st->pool = pool;
    st->mf = *mf;
    memset(mf, 0, sizeof *mf);
    st->start_ns = st->last_ckpt_ns = mono_ns();
    *out = st;
    return DOTDB_OK;
}

static void job_free(st_job *j)
{
    if (j == NULL)
        return;
    ckpt_job_free(&j->ck);
    manifest_free(&j->mf);
    free(j->wal);
    free(j);
}

void storage_destroy(storage *st)
{
    if (st == NULL)
        return;
    job_free(st->running); /* only after the pool is gone */
    manifest_free(&st->mf);
    free(st->last_json);
    free(st);
}

uint64_t storage_pin(const storage *st) { return st->pin; }
uint64_t storage_completed_gen(const storage *st) { return st->completed_gen; }

int storage_last_result(const storage *st, const char **json)
{
    *json = st->last_json ? st->last_json : "";
    return st->last_rc;
}

static void complete(storage *st, uint64_t gen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void complete(storage *st, uint64_t gen, int rc, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(st->last_json);
    st->last_json = strdup(buf);
    st->last_rc = rc;
    if (gen > st->completed_gen)
        st->completed_gen = gen;
}

static const char *codec_name(unsigned c) { return c == SEG_CODEC_LZ4 ? "lz4" : "none"; }

/* ---- checkpoint ---- */

/* Checkpoints and backups run at this much lower a priority than the
 * coordinator (docs/ARCHITECTURE.md, "Checkpoints yield the CPU"): on a
 * machine whose cores the writers and the loop keep busy (a bulk load) they
 * take what is left instead of an equal share. */
#define STORAGE_NICE 10

typedef struct niced {
    void (*fn)(st_job *);
    st_job *j;
} niced;

static void *niced_main(void *arg)
{
    niced *n = arg;
    /* Per thread on Linux.  Best effort: a refusal leaves the priority as
     * it was, which is only slower for the others. */
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, (id_t)gettid());
    if (errno == 0) {
        int want = cur + STORAGE_NICE > 19 ? 19 : cur + STORAGE_NICE;
        if (setpriority(PRIO_PROCESS, (id_t)gettid(), want) != 0)
            fprintf(stderr, "dotdbd: storage job keeps its priority: setpriority: %s\n",
                    strerror(errno));
    }
    n->fn(n->j);
    return NULL;
}

/* fn(j) on a thread of its own at STORAGE_NICE, which an unprivileged
 * process could not undo on a pool thread; this worker waits for it.  If
 * no thread can be started, fn runs here at the usual priority. */
static void run_niced(void (*fn)(st_job *), st_job *j)
{
    niced n = {fn, j};
    pthread_t t;
    if (pthread_create(&t, NULL, niced_main, &n) != 0) {
        fn(j);
        return;
    }
    int rc = pthread_join(t, NULL);
    if (rc != 0) /* joinable and ours: not expected */
        fprintf(stderr, "dotdbd: pthread_join: %s\n", strerror(rc));
}

static void ckpt_work(st_job *j)
{
    ckpt_run(&j->ck);
}

static void ckpt_fn(void *arg)
{
    run_niced(ckpt_work, arg);
}

static void backup_fn(void *arg);
static int start_backup(storage *st, st_job *j);

/* Fill j as a checkpoint of the published state (what start and
 * storage_checkpoint_now share).  DOTDB_ENOMEM copying the manifest. */
static int fill_checkpoint(storage *st, st_job *j, int force, const char *only)
{
    j->kind = JOB_CHECKPOINT;
    ckpt_job *ck = &j->ck;
    ck->base = region_base(engine_region(st->eng));
    ck->lsn = engine_published_lsn(st->eng);
    ck->dir = st->dir;
    ck->codec = st->cfg->compression == COMP_LZ4 ? SEG_CODEC_LZ4 : SEG_CODEC_NONE;
    ck->segment_size = st->cfg->segment_size;
    ck->force = force;
    snprintf(ck->only, sizeof ck->only, "%s", only ? only : "");
    ck->now_ms = wall_ms();
    return manifest_copy(&st->mf, &ck->prev);
}

/* Start generation gen: a checkpoint (then, with dest, a backup). */
static void start(storage *st, uint64_t gen, int force, const char *only, const char *dest)
{
    char err[600];
    st_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        complete(st, gen, DOTDB_ENOMEM, "out of memory");
        return;
    }
    j->gen = gen;
    if (dest)
        snprintf(j->dest, sizeof j->dest, "%s", dest);
    int rc = wal_rotate(st->log, err, sizeof err);
    if (rc != DOTDB_OK) {
        snprintf(st->last_error, sizeof st->last_error, "%s", err);
        fprintf(stderr, "dotdbd: checkpoint not started: %s\n", err);
        st->failures++;
        st->last_fail_ns = mono_ns();
        complete(st, gen, rc, "%s", err);
        job_free(j);
        return;
    }
    uint64_t lsn = engine_published_lsn(st->eng);
    if (!force && lsn == st->mf.checkpoint_lsn) {
        /* Nothing changed since the checkpoint in force. */
        st->last_ckpt_ns = mono_ns();
        if (dest && start_backup(st, j) == DOTDB_OK)
            return;
        if (!dest)
            complete(st, gen, DOTDB_OK, "{\"checkpoint_lsn\":%" PRIu64 ",\"unchanged\":true}", lsn);
        job_free(j);
        return;
    }
    if (fill_checkpoint(st, j, force, only) != DOTDB_OK) {
        complete(st, gen, DOTDB_ENOMEM, "out of memory");
        job_free(j);
        return;
    }
    st->pin = lsn; /* before the job can read anything (I7) */
    st->running = j;
    if (wk_submit(st->pool, ckpt_fn, j) != DOTDB_OK) {
        ckpt_fn(j); /* no memory for a queue entry: do it here rather than never */
        storage_job_done(st, j);
    }
}

static void start_pending(storage *st)
{
    if (st->running || st->pending_gen == 0)
        return;
    uint64_t gen = st->pending_gen;
    st->pending_gen = 0;
    start(st, gen, st->pending_force, st->pending_only,
          st->pending_has_backup ? st->pending_backup : NULL);
    st->pending_has_backup = 0;
}

/* The bytes c's segments take on disk and hold uncompressed (c may be NULL). */
static void coll_bytes(const mf_coll *c, uint64_t *disk, uint64_t *raw)
{
    *disk = *raw = 0;
    for (size_t k = 0; c && k < c->nsegs; k++) {
        *disk += c->segs[k].size;
        *raw += c->segs[k].raw_bytes;
    }
}

void storage_tick(storage *st, int read_only)
{
    if (st->running || read_only)
        return;
    if (st->pending_gen) {
        start_pending(st);
        return;
    }
    uint64_t now = mono_ns();
    if (st->last_fail_ns && now - st->last_fail_ns < RETRY_AFTER_FAILURE_NS)
        return;
    uint64_t published = engine_published_lsn(st->eng);
    if (published == st->mf.checkpoint_lsn)
        return;
    /* Geometric, as Redis rewrites its AOF: a checkpoint rewrites every
     * changed collection, so after one of D bytes the next waits for
     * checkpoint_wal_percent of D in the WAL; a bulk load of N bytes then
     * costs O(N) of checkpoint writes, not O(N^2 / checkpoint_wal_size). */
    uint64_t wal_bytes = wal_total_bytes(st->log), raw = 0;
    for (size_t i = 0; i < st->mf.ncolls; i++) {
        uint64_t d, r;
        coll_bytes(&st->mf.colls[i], &d, &r);
        raw += r;
    }
    int by_size = wal_bytes >= st->cfg->checkpoint_wal_size &&
                  wal_bytes / 100 >= raw / 100 * st->cfg->checkpoint_wal_percent / 100;
    int by_time = st->cfg->checkpoint_interval_ms &&
                  now - st->last_ckpt_ns >= st->cfg->checkpoint_interval_ms * 1000000ull;
    if (by_size || by_time)
        start(st, ++st->next_gen, 0, NULL, NULL);
}

int storage_request(storage *st, int force, const char *only, const char *backup_dest,
                    uint64_t *gen)
{
    if (st->running == NULL && st->pending_gen == 0) {
        *gen = ++st->next_gen;
        start(st, *gen, force, only, backup_dest);
        return DOTDB_OK;
    }
    if (backup_dest && st->pending_has_backup)
        return DOTDB_EBUSY;
    if (st->pending_gen == 0) {
        st->pending_gen = ++st->next_gen;
        st->pending_force = 0;
        st->pending_only[0] = 0;
    } else if (force && st->pending_force && strcmp(st->pending_only, only ? only : "") != 0) {
        st->pending_only[0] = 0; /* two different compactions: compact everything */
    }
    if (force && !st->pending_force)
        snprintf(st->pending_only, sizeof st->pending_only, "%s", only ? only : "");
    st->pending_force |= force;
    if (backup_dest) {
        snprintf(st->pending_backup, sizeof st->pending_backup, "%s", backup_dest);
        st->pending_has_backup = 1;
    }
    *gen = st->pending_gen;
    return DOTDB_OK;
}

/* Adopt a finished checkpoint (loop thread). */
static void ckpt_finished(storage *st, st_job *j)
{
    ckpt_job *ck = &j->ck;
    st->pin = 0;
    if (ck->rc != DOTDB_OK) {
        st->failures++;
        st->last_fail_ns = mono_ns();
        snprintf(st->last_error, sizeof st->last_error, "%s", ck->err);
        fprintf(stderr, "dotdbd: checkpoint at LSN %" PRIu64 " failed, the previous one (LSN %"
                PRIu64 ") stays in force: %s\n", ck->lsn, st->mf.checkpoint_lsn, ck->err);
        complete(st, j->gen, ck->rc, "checkpoint failed: %s", ck->err);
        job_free(j);
        return;
    }
    manifest_free(&st->mf);
    st->mf = ck->next;
    memset(&ck->next, 0, sizeof ck->next);
    st->checkpoints++;
    st->last_fail_ns = 0;
    st->last_error[0] = 0;
    st->last_ckpt_ns = mono_ns();
    st->last_seconds = ck->seconds;
    st->last_bytes = ck->bytes_written;
    char err[600] = "";
    uint64_t removed = 0;
    int rc = DOTDB_OK;
    if (!ck->durable) {
        /* Renamed but the directory fsync failed: the old manifest may come
         * back after a crash, so the WAL since it stays. */
        msgf(st->last_error, sizeof st->last_error, "checkpoint at LSN %" PRIu64 " is in "
             "place but its directory fsync failed (WAL kept): %s", ck->lsn, ck->err);
        fprintf(stderr, "dotdbd: warning: %s\n", st->last_error);
        st->failures++;
    } else {
        rc = wal_remove_through(st->log, ck->lsn, &removed, err, sizeof err);
    }
    if (rc != DOTDB_OK)
        fprintf(stderr, "dotdbd: warning: checkpoint at LSN %" PRIu64 " taken, but old WAL "
                "segments remain: %s\n", ck->lsn, err);
    fprintf(stderr, "dotdbd: checkpoint at LSN %" PRIu64 ": %" PRIu64 " collections written, %"
            PRIu64 " kept, %" PRIu64 " documents, %" PRIu64 " bytes (%s) in %.3f s; %" PRIu64
            " WAL segments removed\n", ck->lsn, ck->colls_written, ck->colls_kept,
            ck->docs_written, ck->bytes_written, codec_name(ck->codec), ck->seconds, removed);
    if (j->dest[0] && start_backup(st, j) == DOTDB_OK)
        return;
    complete(st, j->gen, DOTDB_OK,
             "{\"checkpoint_lsn\":%" PRIu64 ",\"collections_written\":%" PRIu64
             ",\"collections_kept\":%" PRIu64 ",\"documents\":%" PRIu64 ",\"bytes\":%" PRIu64
             ",\"raw_bytes\":%" PRIu64 ",\"seconds\":%.3f,\"wal_segments_removed\":%" PRIu64 "}",
             ck->lsn, ck->colls_written, ck->colls_kept, ck->docs_written, ck->bytes_written,
             ck->raw_written, ck->seconds, removed);
    job_free(j);
}

int storage_job_done(storage *st, void *arg)
{
    st_job *j = arg;
    if (j == NULL || j != st->running)
        return 0;
    st->running = NULL;
    if (j->kind == JOB_CHECKPOINT) {
        ckpt_finished(st, j);
    } else {
        if (j->rc == DOTDB_OK) {
            fprintf(stderr, "dotdbd: backup into %s: checkpoint LSN %" PRIu64 ", WAL to LSN %"
                    PRIu64 ", %" PRIu64 " files, %" PRIu64 " bytes in %.3f s\n", j->dest,
                    j->mf.checkpoint_lsn, j->wal_lsn, j->files, j->bytes, j->seconds);
            complete(st, j->gen, DOTDB_OK,
                     "{\"backup\":\"%s\",\"checkpoint_lsn\":%" PRIu64 ",\"wal_lsn\":%" PRIu64
                     ",\"files\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.3f}",
                     j->dest, j->mf.checkpoint_lsn, j->wal_lsn, j->files, j->bytes, j->seconds);
        } else {
            fprintf(stderr, "dotdbd: backup into %s failed: %s\n", j->dest, j->err);
            complete(st, j->gen, j->rc, "backup failed: %s", j->err);
        }
        job_free(j);
    }
    start_pending(st);
    return 1;
}

int storage_checkpoint_now(storage *st, char *err, size_t errlen)
{
    if (st->running) {
        wk_wait_idle(st->pool);
        return DOTDB_EBUSY; /* the caller collects, then asks again */
    }
    if (engine_published_lsn(st->eng) == st->mf.checkpoint_lsn)
        return DOTDB_OK;
    st_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return DOTDB_ENOMEM;
    char rerr[600];
    int rc = wal_rotate(st->log, rerr, sizeof rerr);
    if (rc != DOTDB_OK) {
        msgf(err, errlen, "%s", rerr);
        job_free(j);
        return rc;
    }
    j->gen = ++st->next_gen;
    if (fill_checkpoint(st, j, 0, NULL) != DOTDB_OK) {
        job_free(j);
        return DOTDB_ENOMEM;
    }
    ckpt_job *ck = &j->ck;
    ckpt_run(ck);
    rc = ck->rc;
    if (rc != DOTDB_OK)
        msgf(err, errlen, "%s", ck->err);
    st->running = j;
    storage_job_done(st, j);
    return rc;
}

/* ---- backup ---- */

static int start_backup(storage *st, st_job *j)
{
    j->kind = JOB_BACKUP;
    snprintf(j->src, sizeof j->src, "%s", st->dir);
    snprintf(j->waldir, sizeof j->waldir, "%s", st->waldir);
    manifest_free(&j->mf);
    if (manifest_copy(&st->mf, &j->mf) != DOTDB_OK)
        goto nomem;
    /* The WAL as written now: closed segments whole, the current one up
     * to the last complete write (records are written whole). */
    uint64_t first = wal_first_segno(st->log), cur = wal_current_segno(st->log);
    j->nwal = (size_t)(cur - first + 1);
    j->wal = calloc(j->nwal, sizeof *j->wal);
    if (j->wal == NULL)
        goto nomem;
    for (uint64_t s = first; s <= cur; s++)
        j->wal[s - first] = (wal_piece){s, s == cur ? wal_current_bytes(st->log) : UINT64_MAX};
    j->wal_lsn = wal_written_lsn(st->log);
    st->running = j;
    if (wk_submit(st->pool, backup_fn, j) != DOTDB_OK) {
        backup_fn(j);
        storage_job_done(st, j);
    }
    return DOTDB_OK;
nomem:
    complete(st, j->gen, DOTDB_ENOMEM, "backup failed: out of memory");
    job_free(j);
    return DOTDB_ENOMEM;
}

/* Copy up to limit bytes (UINT64_MAX: all) of src_dir/name into
 * dst_dir/name, fdatasynced. */
static int copy_file(st_job *j, const char *src_dir, const char *dst_dir, const char *name,
                     uint64_t limit)
{
    char sp[4400], dp[4400];
    msgf(sp, sizeof sp, "%s/%s", src_dir, name);
    msgf(dp, sizeof dp, "%s/%s", dst_dir, name);
    int in = open(sp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0) {
        msgf(j->err, sizeof j->err, "cannot open %s: %s", sp, strerror(errno));
        return DOTDB_EOS;
    }
    int out = open(dp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) {
        msgf(j->err, sizeof j->err, "cannot create %s: %s", dp, strerror(errno));
        close(in);
        return DOTDB_EOS;
    }
    static __thread char buf[1 << 16];
    uint64_t done = 0;
    int e = 0;
    while (done < limit) {
        size_t want = limit - done < sizeof buf ? (size_t)(limit - done) : sizeof buf;
        ssize_t n = read(in, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t w = 0; w < n;) {
            ssize_t k = write(out, buf + w, (size_t)(n - w));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                e = k < 0 ? errno : EIO;
                break;
            }
            w += k;
        }
        if (e)
            break;
        done += (uint64_t)n;
    }
    if (e == 0 && fdatasync(out) != 0)
        e = errno;
    if (close(out) != 0 && e == 0)
        e = errno;
    close(in);
    if (e != 0) {
        msgf(j->err, sizeof j->err, "cannot copy %s to %s: %s", sp, dp, strerror(e));
        return (e == ENOSPC || e == EDQUOT || e == EFBIG) ? DOTDB_ENOSPC : DOTDB_EIO;
    }
    j->files++;
    j->bytes += done;
    return DOTDB_OK;
}

static int make_dir(st_job *j, const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        msgf(j->err, sizeof j->err, "cannot create %s: %s", path, strerror(errno));
        return errno == ENOSPC ? DOTDB_ENOSPC : DOTDB_EOS;
    }
    return DOTDB_OK;
}

static void sync_dir(const char *path)
{
    int fd = open(path, DIR_FLAGS);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int dest_is_usable(st_job *j)
{
    struct stat s;
    if (lstat(j->dest, &s) != 0)
        return errno == ENOENT ? DOTDB_OK : DOTDB_EOS;
    if (!S_ISDIR(s.st_mode)) {
        msgf(j->err, sizeof j->err, "%s exists and is not a directory", j->dest);
        return DOTDB_EEXISTS;
    }
    DIR *d = opendir(j->dest);
    if (d == NULL) {
        msgf(j->err, sizeof j->err, "cannot open %s: %s", j->dest, strerror(errno));
        return DOTDB_EOS;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    if (n != 0) {
        msgf(j->err, sizeof j->err, "%s is not empty: a backup goes into a new or empty directory",
             j->dest);
        return DOTDB_EEXISTS;
    }
    return DOTDB_OK;
}

static double mono_s(void) { return (double)mono_ns() / 1e9; }

static void backup_work(st_job *j);

static void backup_fn(void *arg)
{
    run_niced(backup_work, arg);
}

static void backup_work(st_job *j)
{
    double t0 = mono_s();
    char p[4400], sp[4400];
    int rc = dest_is_usable(j);
    if (rc == DOTDB_OK)
        rc = make_dir(j, j->dest);
    msgf(p, sizeof p, "%s/system", j->dest);
    if (rc == DOTDB_OK)
        rc = make_dir(j, p);
    msgf(p, sizeof p, "%s/wal", j->dest);
    if (rc == DOTDB_OK)
        rc = make_dir(j, p);
    msgf(p, sizeof p, "%s/collections", j->dest);
    if (rc == DOTDB_OK && j->mf.ncolls)
        rc = make_dir(j, p);
    for (size_t i = 0; rc == DOTDB_OK && i < j->mf.ncolls; i++) {
        const mf_coll *c = &j->mf.colls[i];
        msgf(p, sizeof p, "%s/collections/%s", j->dest, c->name);
        rc = make_dir(j, p);
        msgf(sp, sizeof sp, "%s/collections/%s", j->src, c->name);
        if (rc == DOTDB_OK)
            rc = copy_file(j, sp, p, "metadata.json", UINT64_MAX);
        msgf(p, sizeof p, "%s/collections/%s/data", j->dest, c->name);
        msgf(sp, sizeof sp, "%s/collections/%s/data", j->src, c->name);
        if (rc == DOTDB_OK && c->nsegs)
            rc = make_dir(j, p);
        for (size_t k = 0; rc == DOTDB_OK && k < c->nsegs; k++) {
            char name[SEG_NAME_MAX];
            seg_name(c->segs[k].segno, name);
            rc = copy_file(j, sp, p, name, UINT64_MAX);
        }
        if (rc == DOTDB_OK) {
            sync_dir(p);
            msgf(p, sizeof p, "%s/collections/%s", j->dest, c->name);
            sync_dir(p);
        }
    }
    msgf(p, sizeof p, "%s/wal", j->dest);
    for (size_t i = 0; rc == DOTDB_OK && i < j->nwal; i++) {
        char name[64];
        snprintf(name, sizeof name, "wal_%06" PRIu64 ".log", j->wal[i].segno);
        rc = copy_file(j, j->waldir, p, name, j->wal[i].bytes);
    }
    if (rc == DOTDB_OK) {
        sync_dir(p);
        msgf(p, sizeof p, "%s/collections", j->dest);
        sync_dir(p);
        /* The manifest last: a backup cut short has none naming segments
         * it lacks. */
        msgf(p, sizeof p, "%s/system", j->dest);
        msgf(sp, sizeof sp, "%s/system", j->src);
        if (j->mf.checkpoint_lsn)
            rc = copy_file(j, sp, p, MANIFEST_NAME, UINT64_MAX);
        sync_dir(p);
        sync_dir(j->dest);
    }
    j->rc = rc;
    j->seconds = mono_s() - t0;
}

/* ---- statistics ---- */

int storage_stats_json(const storage *st, dbuf *out)
{
    char b[2048];
    uint64_t now = mono_ns();
    int n = snprintf(b, sizeof b,
                     "{\"checkpoint_lsn\":%" PRIu64 ",\"checkpoint_age_s\":%.1f,\"checkpoints\":%" PRIu64
                     ",\"failures\":%" PRIu64 ",\"running\":%s,\"last_seconds\":%.3f,\"last_bytes\":%"
                     PRIu64 ",\"wal_bytes\":%" PRIu64 ",\"compression\":\"%s\",\"last_error\":\"",
                     st->mf.checkpoint_lsn, (double)(now - st->last_ckpt_ns) / 1e9, st->checkpoints,
                     st->failures, st->running ? "true" : "false", st->last_seconds, st->last_bytes,
                     wal_total_bytes(st->log), st->cfg->compression == COMP_LZ4 ? "lz4" : "none");
    int rc = dbuf_append(out, b, (size_t)n);
    for (const char *p = st->last_error; rc == 0 && *p; p++) {
        if (*p == '"' || *p == '\\')
            rc = dbuf_putc(out, '\\');
        if (rc == 0)
            rc = dbuf_putc(out, (unsigned char)*p < 0x20 ? ' ' : (uint8_t)*p);
    }
    if (rc == 0)
        rc = dbuf_append(out, "\",\"collections\":{", 17);
    for (size_t i = 0; rc == 0 && i < st->mf.ncolls; i++) {
        const mf_coll *c = &st->mf.colls[i];
        uint64_t disk, raw;
        coll_bytes(c, &disk, &raw);
        n = snprintf(b, sizeof b,
                     "%s\"%s\":{\"disk_bytes\":%" PRIu64 ",\"raw_bytes\":%" PRIu64 ",\"segments\":%zu"
                     ",\"documents\":%" PRIu64 ",\"compression_ratio\":%.3f}",
                     i ? "," : "", c->name, disk, raw, c->nsegs, c->docs,
                     disk ? (double)raw / (double)disk : 0.0);
        rc = dbuf_append(out, b, (size_t)n);
    }
    return rc ? rc : dbuf_append(out, "}}", 2);
}

int storage_coll_json(void *ctx, const char *name, size_t len, dbuf *out)
{
    const storage *st = ctx;
    char key[65];
    snprintf(key, sizeof key, "%.*s", (int)(len < 64 ? len : 64), name);
    const mf_coll *c = manifest_find(&st->mf, key);
    uint64_t disk, raw;
    coll_bytes(c, &disk, &raw);
    char b[400];
    int n = snprintf(b, sizeof b,
                     ",\"disk_bytes\":%" PRIu64 ",\"disk_raw_bytes\":%" PRIu64 ",\"segments\":%zu"
                     ",\"compression_ratio\":%.3f,\"checkpoint_lsn\":%" PRIu64
                     ",\"checkpoint_age_s\":%.1f",
                     disk, raw, c ? c->nsegs : (size_t)0, disk ? (double)raw / (double)disk : 0.0,
                     c ? st->mf.checkpoint_lsn : 0,
                     c ? (double)(mono_ns() - st->last_ckpt_ns) / 1e9 : 0.0);
    return dbuf_append(out, b, (size_t)n);
}

void storage_write_stats(const storage *st, const char *text, size_t len)
{
    char tmp[4200], dst[4200];
    msgf(tmp, sizeof tmp, "%s/system/stats.json.tmp", st->dir);
    msgf(dst, sizeof dst, "%s/system/stats.json", st->dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    ssize_t k = write(fd, text, len);
    int ok = k == (ssize_t)len && write(fd, "\n", 1) == 1;
    if (close(fd) != 0)
        ok = 0;
    if (!ok || rename(tmp, dst) != 0)
        (void)unlink(tmp); /* statistics only: nothing is lost */
}
