/*
 * recovery.c - loading the last checkpoint at start-up, and `dotdb check`.
 *
 * Loading is a pipeline: reader threads take segments in manifest order
 * (an atomic counter), read, verify and decompress each into a private
 * buffer; the loop thread inserts them in the same order, each as soon as
 * it is ready, and frees it.  Inserting stays on one thread because the
 * shared-memory allocator and the hash tables have a single writer.
 */
#include "recovery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "buf.h"
#include "dotdb.h"
#include "segment.h"
#include "wal.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
#define MAX_LOAD_THREADS 8

typedef struct seg_task {
    const mf_coll *coll;
    const mf_segment *seg;
    int ready;           /* under loader.mu */
    int rc;
    char err[700];
    uint8_t *raw;
    size_t raw_len;
    seg_info info;
} seg_task;

typedef struct loader {
    const char *dir;
    seg_task *tasks;
    size_t ntasks;
    atomic_size_t next;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} loader;

static void read_task(loader *l, seg_task *t)
{
    char path[4400];
    msgf(path, sizeof path, "%s/collections/%s/data", l->dir, t->coll->name);
    int dirfd = open(path, DIR_FLAGS);
    if (dirfd < 0) {
        msgf(t->err, sizeof t->err, "cannot open %s: %s", path, strerror(errno));
        t->rc = DOTDB_ECORRUPT;
        return;
    }
    t->rc = seg_read(dirfd, path, t->seg->segno, t->seg->ckpt_lsn, t->coll->create_lsn, 0, NULL,
                     NULL, &t->raw, &t->raw_len, &t->info, t->err, sizeof t->err);
    close(dirfd);
    if (t->rc == DOTDB_OK && t->info.docs != t->seg->docs) {
        char name[SEG_NAME_MAX];
        seg_name(t->seg->segno, name);
        msgf(t->err, sizeof t->err, "%s/%s: holds %" PRIu64 " documents, the manifest says %" PRIu64,
             path, name, t->info.docs, t->seg->docs);
        t->rc = DOTDB_ECORRUPT;
    }
}

static void *reader_main(void *arg)
{
    loader *l = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&l->next, 1);
        if (i >= l->ntasks || atomic_load(&l->stop))
            break;
        seg_task *t = &l->tasks[i];
        read_task(l, t);
        pthread_mutex_lock(&l->mu);
        t->ready = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

static int insert_task(engine *e, seg_task *t, uint64_t *docs, char *err, size_t errlen)
{
    size_t pos = 0;
    const uint8_t *doc;
    uint32_t len;
    const char *name = t->coll->name;
    char derr[400];
    char sname[SEG_NAME_MAX];
    seg_name(t->seg->segno, sname);
    while (seg_next_doc(t->raw, t->raw_len, &pos, &doc, &len)) {
        int rc = engine_load_doc(e, name, strlen(name), doc, len, derr, sizeof derr);
        if (rc != 0) {
            msgf(err, errlen, "collections/%s/data/%s: document %" PRIu64 ": %s", name, sname,
                 *docs, derr);
            return rc;
        }
        (*docs)++;
    }
    return DOTDB_OK;
}

int recovery_load(const dotdb_config *cfg, const char *dir, engine *e, const manifest *mf,
                  uint64_t *docs, char *err, size_t errlen)
{
    *docs = 0;
    if (mf->checkpoint_lsn == 0)
        return DOTDB_OK;
    engine_set_base_lsn(e, mf->checkpoint_lsn);
    loader l = {.dir = dir};
    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.cv, NULL);
    int rc = DOTDB_OK;
    for (size_t i = 0; i < mf->ncolls; i++)
        l.ntasks += mf->colls[i].nsegs;
    l.tasks = l.ntasks ? calloc(l.ntasks, sizeof *l.tasks) : NULL;
    if (l.ntasks && l.tasks == NULL)
        return DOTDB_ENOMEM;
    for (size_t i = 0, k = 0; i < mf->ncolls; i++)
        for (size_t j = 0; j < mf->colls[i].nsegs; j++)
            l.tasks[k++] = (seg_task){.coll = &mf->colls[i], .seg = &mf->colls[i].segs[j]};
    int nthreads = (int)(cfg->worker_threads < MAX_LOAD_THREADS ? cfg->worker_threads : MAX_LOAD_THREADS);
    if (nthreads < 1)
        nthreads = 1;
    if ((size_t)nthreads > l.ntasks)
        nthreads = (int)l.ntasks;
    pthread_t th[MAX_LOAD_THREADS];
    int started = 0;
    for (; started < nthreads; started++)
        if (pthread_create(&th[started], NULL, reader_main, &l) != 0)
            break;
    size_t k = 0;
    for (size_t i = 0; rc == DOTDB_OK && i < mf->ncolls; i++) {
        const mf_coll *c = &mf->colls[i];
        rc = engine_load_collection(e, c->name, strlen(c->name), c->create_lsn, c->modified_lsn,
                                    c->docs, err, errlen);
        for (size_t j = 0; rc == DOTDB_OK && j < c->nsegs; j++, k++) {
            seg_task *t = &l.tasks[k];
            if (started == 0) {
                read_task(&l, t); /* no thread could start: read here */
            } else {
                pthread_mutex_lock(&l.mu);
                while (!t->ready)
                    pthread_cond_wait(&l.cv, &l.mu);
                pthread_mutex_unlock(&l.mu);
            }
            rc = t->rc;
            if (rc != DOTDB_OK)
                msgf(err, errlen, "%s", t->err);
            else
                rc = insert_task(e, t, docs, err, errlen);
            free(t->raw);
            t->raw = NULL;
        }
    }
    atomic_store(&l.stop, 1);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    for (size_t i = 0; i < l.ntasks; i++)
        free(l.tasks[i].raw);
    free(l.tasks);
    pthread_mutex_destroy(&l.mu);
    pthread_cond_destroy(&l.cv);
    return rc;
}

/* ---- dotdb check ---- */

typedef struct check_ctx {
    FILE *out;
    uint64_t bad;
} check_ctx;

static void report_bad(void *ctx, const char *msg)
{
    check_ctx *c = ctx;
    fprintf(c->out, "DAMAGED %s\n", msg);
    c->bad++;
}

int recovery_check(const dotdb_config *cfg, const char *dir, int coordinator_running, void *out_v)
{
    FILE *out = out_v;
    check_ctx cc = {out, 0};
    char err[1024];
    manifest mf;
    int rc = manifest_read(dir, &mf, err, sizeof err);
    if (rc == DOTDB_ECORRUPT) {
        report_bad(&cc, err);
        memset(&mf, 0, sizeof mf);
    } else if (rc != DOTDB_OK) {
        fprintf(out, "ERROR %s\n", err);
        return 2;
    }
    uint64_t segs = 0, docs = 0, bytes = 0;
    if (rc == DOTDB_OK)
        fprintf(out, "manifest: checkpoint LSN %" PRIu64 ", %zu collections\n", mf.checkpoint_lsn,
                mf.ncolls);
    for (size_t i = 0; i < mf.ncolls; i++) {
        const mf_coll *c = &mf.colls[i];
        char path[4400];
        msgf(path, sizeof path, "%s/collections/%s/data", dir, c->name);
        int dirfd = open(path, DIR_FLAGS);
        if (dirfd < 0 && c->nsegs) {
            char m[4600];
            msgf(m, sizeof m, "%s: %s", path, strerror(errno));
            report_bad(&cc, m);
            continue;
        }
        uint64_t cdocs = 0;
        for (size_t j = 0; j < c->nsegs; j++) {
            const mf_segment *s = &c->segs[j];
            uint8_t *raw = NULL;
            size_t raw_len = 0;
            seg_info info;
            uint64_t before = cc.bad;
            int r = seg_read(dirfd, path, s->segno, s->ckpt_lsn, c->create_lsn, 1, report_bad, &cc,
                             &raw, &raw_len, &info, err, sizeof err);
            if (r != DOTDB_OK && cc.bad == before)
                report_bad(&cc, err);
            size_t pos = 0;
            const uint8_t *doc;
            uint32_t len;
            uint64_t n = 0;
            while (raw && seg_next_doc(raw, raw_len, &pos, &doc, &len)) {
                const char *id;
                size_t id_len;
                char derr[300];
                if (codec_validate_doc(doc, len, (int)cfg->max_depth, &id, &id_len, derr,
                                       sizeof derr) != 0) {
                    char m[5000];
                    char name[SEG_NAME_MAX];
                    seg_name(s->segno, name);
                    msgf(m, sizeof m, "%s/%s: document %" PRIu64 " is invalid: %s", path, name, n,
                         derr);
                    report_bad(&cc, m);
                }
                n++;
            }
            free(raw);
            if (r == DOTDB_OK && info.docs != s->docs) {
                char m[5000];
                msgf(m, sizeof m, "%s: segment %" PRIu64 " holds %" PRIu64
                     " documents, the manifest says %" PRIu64, path, s->segno, info.docs, s->docs);
                report_bad(&cc, m);
            }
            segs++;
            cdocs += info.docs;
            bytes += info.file_bytes;
        }
        if (dirfd >= 0)
            close(dirfd);
        if (cdocs != c->docs) {
            char m[5000];
            msgf(m, sizeof m, "collection %s: segments hold %" PRIu64 " documents, the manifest "
                 "says %" PRIu64, c->name, cdocs, c->docs);
            report_bad(&cc, m);
        }
        docs += cdocs;
        fprintf(out, "collection %s: %zu segments, %" PRIu64 " documents\n", c->name, c->nsegs, cdocs);
    }
    char waldir[4200];
    if (cfg->wal_directory[0])
        msgf(waldir, sizeof waldir, "%s", cfg->wal_directory);
    else
        msgf(waldir, sizeof waldir, "%s/wal", dir);
    struct stat st;
    if (stat(waldir, &st) == 0) {
        wal_replay_info info;
        int r = wal_check(waldir, mf.checkpoint_lsn, &info, err, sizeof err);
        if (r != DOTDB_OK) {
            report_bad(&cc, err);
        } else {
            fprintf(out, "wal: %" PRIu64 " records, LSN %" PRIu64 " to %" PRIu64 "\n", info.records,
                    info.first_lsn, info.last_lsn);
            if (info.warning[0])
                fprintf(out, "%s %s\n", coordinator_running ? "note" : "WARNING", info.warning);
            uint64_t base = mf.checkpoint_lsn ? mf.checkpoint_lsn : 1;
            if (info.records && info.first_lsn > base + 1) {
                char m[600];
                msgf(m, sizeof m, "%s: the WAL starts at LSN %" PRIu64 " but the checkpoint ends "
                     "at %" PRIu64 ": records in between are missing", waldir, info.first_lsn, base);
                report_bad(&cc, m);
            }
        }
    } else if (mf.checkpoint_lsn == 0) {
        fprintf(out, "wal: none (an empty database)\n");
    }
    manifest_free(&mf);
    fprintf(out, "%s: %" PRIu64 " segments, %" PRIu64 " documents, %" PRIu64 " bytes checked; %"
            PRIu64 " problems\n", cc.bad ? "DAMAGED" : "OK", segs, docs, bytes, cc.bad);
    return cc.bad ? 1 : 0;
}

/* ---- dotdb restore ---- */

/* Copy the regular files and directories under src into dst (created),
 * refusing symlinks and anything else; each file fdatasynced, each
 * directory fsynced.  depth bounds the recursion (collections/C/data). */
static int copy_tree(const char *src, const char *dst, int depth, uint64_t *files, char *err,
                     size_t errlen)
{
    if (depth > 4) {
        msgf(err, errlen, "%s: unexpected nesting", src);
        return DOTDB_EINVAL;
    }
    if (mkdir(dst, 0700) != 0 && errno != EEXIST) {
        msgf(err, errlen, "cannot create %s: %s", dst, strerror(errno));
        return errno == ENOSPC ? DOTDB_ENOSPC : DOTDB_EOS;
    }
    DIR *d = opendir(src);
    if (d == NULL) {
        msgf(err, errlen, "cannot open %s: %s", src, strerror(errno));
        return DOTDB_EOS;
    }
    int rc = DOTDB_OK;
    struct dirent *de;
    static __thread char buf[1 << 16];
    while (rc == DOTDB_OK && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char sp[4400], dp[4400];
        msgf(sp, sizeof sp, "%s/%s", src, de->d_name);
        msgf(dp, sizeof dp, "%s/%s", dst, de->d_name);
        struct stat st;
        if (lstat(sp, &st) != 0) {
            msgf(err, errlen, "cannot stat %s: %s", sp, strerror(errno));
            rc = DOTDB_EOS;
        } else if (S_ISDIR(st.st_mode)) {
            rc = copy_tree(sp, dp, depth + 1, files, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            if (strstr(de->d_name, ".tmp") || strcmp(de->d_name, "dotdb.lock") == 0 ||
                strcmp(de->d_name, "dotdbd.log") == 0 || strcmp(de->d_name, "stats.json") == 0)
                continue;
            int in = open(sp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            int out = in < 0 ? -1 : open(dp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
            int e = in < 0 || out < 0 ? errno : 0;
            ssize_t n;
            while (e == 0 && (n = read(in, buf, sizeof buf)) != 0) {
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    e = errno;
                    break;
                }
                if (write(out, buf, (size_t)n) != n)
                    e = errno ? errno : EIO;
            }
            if (e == 0 && fdatasync(out) != 0)
                e = errno;
            if (out >= 0 && close(out) != 0 && e == 0)
                e = errno;
            if (in >= 0)
                close(in);
            if (e != 0) {
                msgf(err, errlen, "cannot copy %s to %s: %s", sp, dp, strerror(e));
                rc = (e == ENOSPC || e == EDQUOT || e == EFBIG) ? DOTDB_ENOSPC : DOTDB_EIO;
            }
            (*files)++;
        } else if (!S_ISSOCK(st.st_mode)) {
            msgf(err, errlen, "%s is neither a file nor a directory (refused)", sp);
            rc = DOTDB_EINVAL;
        }
    }
    closedir(d);
    int fd = open(dst, DIR_FLAGS);
    if (fd >= 0) {
        if (fsync(fd) != 0 && rc == DOTDB_OK) {
            msgf(err, errlen, "cannot fsync %s: %s", dst, strerror(errno));
            rc = DOTDB_EIO;
        }
        close(fd);
    }
    return rc;
}

int recovery_restore(const char *src, const char *dst, uint64_t *files, char *err, size_t errlen)
{
    *files = 0;
    struct stat st;
    char p[4400];
    msgf(p, sizeof p, "%s/wal", src);
    if (stat(src, &st) != 0 || !S_ISDIR(st.st_mode) || stat(p, &st) != 0) {
        msgf(err, errlen, "%s is not a DotDB backup (no wal/ directory)", src);
        return DOTDB_EINVAL;
    }
    DIR *d = opendir(dst);
    if (d != NULL) {
        struct dirent *de;
        int n = 0;
        while ((de = readdir(d)) != NULL)
            n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
        closedir(d);
        if (n) {
            msgf(err, errlen, "%s is not empty: restore goes into a new or empty directory", dst);
            return DOTDB_EEXISTS;
        }
    } else if (errno != ENOENT) {
        msgf(err, errlen, "cannot open %s: %s", dst, strerror(errno));
        return DOTDB_EOS;
    }
    static const char *const parts[] = {"system", "collections", "wal"};
    if (mkdir(dst, 0700) != 0 && errno != EEXIST) {
        msgf(err, errlen, "cannot create %s: %s", dst, strerror(errno));
        return DOTDB_EOS;
    }
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char sp[4400], dp[4400];
        msgf(sp, sizeof sp, "%s/%s", src, parts[i]);
        msgf(dp, sizeof dp, "%s/%s", dst, parts[i]);
        if (stat(sp, &st) != 0)
            continue;
        int rc = copy_tree(sp, dp, 1, files, err, errlen);
        if (rc != DOTDB_OK)
            return rc;
    }
    int fd = open(dst, DIR_FLAGS);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    return DOTDB_OK;
}
