/*
 * checkpoint.c - the checkpoint writer (see checkpoint.h for the order of
 * the steps and why it is safe to crash between any two of them).
 *
 * Paths: every directory is opened with O_DIRECTORY | O_NOFOLLOW relative
 * to its parent's descriptor, and collection names have been validated by
 * the engine (^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$, never "." or ".."), so a
 * symlink planted under the data directory is refused, not followed.
 */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "dotdb.h"
#include "segment.h"
#include "snap.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

void ckpt_job_free(ckpt_job *job)
{
    manifest_free(&job->prev);
    manifest_free(&job->next);
}

/* The message for a directory that would not open: a planted symlink
 * fails O_NOFOLLOW | O_DIRECTORY with ELOOP or ENOTDIR; say so. */
static void open_failed(char *err, size_t errlen, const char *path, int e)
{
    msgf(err, errlen, "cannot open %s: %s%s", path, strerror(e),
         e == ELOOP || e == ENOTDIR ? " (it must be a directory; symbolic links under the data "
                                      "directory are never followed)" : "");
}

/* Open (creating when missing, then fsyncing the parent) dir `name`
 * under parent.  -1 with errno. */
static int open_subdir(int parent, const char *name)
{
    int fd = openat(parent, name, DIR_FLAGS);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    if (mkdirat(parent, name, 0700) != 0 && errno != EEXIST)
        return -1;
    if (fsync(parent) != 0)
        return -1;
    return openat(parent, name, DIR_FLAGS);
}

/* Highest segment number of a data directory (0 if none). */
static int max_segno(int datafd, uint64_t *out)
{
    *out = 0;
    int fd = dup(datafd);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -1;
    }
    rewinddir(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t s;
        if (seg_parse_name(de->d_name, &s) && s > *out)
            *out = s;
    }
    closedir(d);
    return 0;
}

static int errno_code(int e)
{
    return (e == ENOSPC || e == EDQUOT || e == EFBIG) ? DOTDB_ENOSPC : DOTDB_EIO;
}

/* Replace collections/<name>/metadata.json: options, index definitions
 * and counters (the primary hash index on id is the only index today). */
static int write_metadata(int collfd, const char *path, const mf_coll *c, uint64_t lsn,
                          char *err, size_t errlen)
{
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "{\"name\": \"%s\", \"create_lsn\": %" PRIu64 ", \"checkpoint_lsn\": %" PRIu64
                     ", \"documents\": %" PRIu64 ", \"bytes\": %" PRIu64 ",\n"
                     " \"options\": {},\n"
                     " \"indexes\": [{\"name\": \"primary\", \"type\": \"hash\", \"fields\": [\"id\"], "
                     "\"unique\": true}]}\n",
                     c->name, c->create_lsn, lsn, c->docs, c->bytes);
    int fd = openat(collfd, "metadata.json.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                    0600);
    int e = 0;
    if (fd < 0) {
        e = errno;
    } else {
        ssize_t k = write(fd, text, (size_t)n);
        if (k != n)
            e = k < 0 ? errno : ENOSPC;
        if (e == 0 && fdatasync(fd) != 0)
            e = errno;
        if (close(fd) != 0 && e == 0)
            e = errno;
    }
    if (e == 0 && renameat(collfd, "metadata.json.tmp", collfd, "metadata.json") != 0)
        e = errno;
    if (e == 0 && fsync(collfd) != 0)
        e = errno;
    if (e != 0) {
        (void)unlinkat(collfd, "metadata.json.tmp", 0);
        msgf(err, errlen, "cannot write %s/metadata.json: %s", path, strerror(e));
        return errno_code(e);
    }
    return DOTDB_OK;
}

typedef struct written {
    int datafd;
    uint64_t segno;
} written;

typedef struct run {
    ckpt_job *j;
    written *w;       /* segment files this job created, to remove on failure */
    size_t nw, capw;
} run;

static int remember(run *r, int datafd, uint64_t segno)
{
    if (r->nw == r->capw) {
        size_t c = r->capw ? r->capw * 2 : 16;
        written *p = realloc(r->w, c * sizeof *p);
        if (p == NULL)
            return DOTDB_ENOMEM;
        r->w = p;
        r->capw = c;
    }
    r->w[r->nw++] = (written){datafd, segno};
    return DOTDB_OK;
}

/* Finish segment w and add it to the collection's manifest entry. */
static int finish_segment(ckpt_job *j, seg_writer *w, mf_coll *out)
{
    seg_info info;
    int rc = seg_finish(w, &info, j->err, sizeof j->err);
    if (rc != DOTDB_OK)
        return rc;
    mf_segment *p = realloc(out->segs, (out->nsegs + 1) * sizeof *p);
    if (p == NULL)
        return DOTDB_ENOMEM;
    out->segs = p;
    out->segs[out->nsegs++] = (mf_segment){info.segno, info.docs, info.blocks, info.file_bytes,
                                           info.raw_bytes, j->lsn};
    j->bytes_written += info.file_bytes;
    j->raw_written += info.raw_bytes;
    return DOTDB_OK;
}

/* Write one collection's documents at the snapshot into new segments. */
static int write_coll(run *r, int colls_fd, const shm_cat_entry *ce, const shm_coll *sc,
                      mf_coll *out, int *datafd_out)
{
    ckpt_job *j = r->j;
    char path[4400];
    snprintf(path, sizeof path, "%s/collections/%s", j->dir, out->name);
    int collfd = open_subdir(colls_fd, out->name);
    if (collfd < 0) {
        int e = errno;
        open_failed(j->err, sizeof j->err, path, e);
        return errno_code(e);
    }
    int datafd = open_subdir(collfd, "data");
    if (datafd < 0) {
        int e = errno;
        char dp[4500];
        snprintf(dp, sizeof dp, "%s/data", path);
        open_failed(j->err, sizeof j->err, dp, e);
        close(collfd);
        return errno_code(e);
    }
    *datafd_out = datafd;
    char data_path[4500];
    snprintf(data_path, sizeof data_path, "%s/data", path);
    uint64_t segno;
    if (max_segno(datafd, &segno) != 0) {
        msgf(j->err, sizeof j->err, "cannot list %s: %s", data_path, strerror(errno));
        close(collfd);
        return DOTDB_EOS;
    }
    int rc = DOTDB_OK;
    seg_writer *w = NULL;
    snap_iter it;
    snap_iter_init(&it, j->base, sc, j->lsn);
    const shm_version *v;
    while (rc == DOTDB_OK && (v = snap_iter_next(&it)) != NULL) {
        if (w == NULL) {
            segno++;
            rc = seg_create(datafd, data_path, segno, j->lsn, ce->create_lsn, j->codec, &w,
                            j->err, sizeof j->err);
            if (rc == DOTDB_OK)
                rc = remember(r, datafd, segno);
            if (rc != DOTDB_OK)
                break;
        }
        rc = seg_add(w, v->data, v->doc_len, j->err, sizeof j->err);
        out->docs++;
        out->bytes += v->doc_len;
        if (rc == DOTDB_OK && seg_size_estimate(w) >= j->segment_size) {
            rc = finish_segment(j, w, out);
            w = NULL;
        }
    }
    if (rc == DOTDB_OK && w != NULL) {
        rc = finish_segment(j, w, out);
        w = NULL;
    }
    seg_abort(w);
    if (rc == DOTDB_OK && fsync(datafd) != 0) {
        int e = errno;
        msgf(j->err, sizeof j->err, "cannot fsync %s: %s", data_path, strerror(e));
        rc = errno_code(e);
    }
    if (rc == DOTDB_OK)
        rc = write_metadata(collfd, path, out, j->lsn, j->err, sizeof j->err);
    close(collfd);
    j->docs_written += out->docs;
    return rc;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ckpt_run(ckpt_job *j)
{
    double t0 = mono_s();
    run r = {.j = j};
    int *fds = NULL;
    size_t nfds = 0;
    j->err[0] = 0;
    memset(&j->next, 0, sizeof j->next);
    j->next.checkpoint_lsn = j->lsn;
    j->next.created_ms = j->now_ms;
    int rc = DOTDB_OK;
    int dirfd = open(j->dir, DIR_FLAGS), sysfd = -1, collsfd = -1;
    const char *which = "";
    if (dirfd < 0 || (which = "/system", sysfd = openat(dirfd, "system", DIR_FLAGS)) < 0 ||
        (which = "/collections", collsfd = open_subdir(dirfd, "collections")) < 0) {
        int e = errno;
        char path[4200];
        snprintf(path, sizeof path, "%s%s", j->dir, which);
        open_failed(j->err, sizeof j->err, path, e);
        rc = DOTDB_EOS;
        goto out;
    }
    const shm_header *h = (const shm_header *)j->base;
    /* Pairs with the coordinator's release store of catalog_off. */
    uint64_t cat_off =
        atomic_load_explicit(&((shm_header *)h)->catalog_off, memory_order_acquire);
    const shm_catalog *cat = snap_at(j->base, cat_off);
    for (uint32_t i = 0; rc == DOTDB_OK && cat && i < cat->count; i++) {
        const shm_cat_entry *ce = &cat->entries[i];
        if (!(ce->create_lsn <= j->lsn && j->lsn < ce->drop_lsn))
            continue;
        const shm_coll *sc = snap_at(j->base, ce->coll_off);
        mf_coll c = {0};
        snprintf(c.name, sizeof c.name, "%.*s", (int)ce->name_len, ce->name);
        c.create_lsn = ce->create_lsn;
        uint64_t mod = atomic_load_explicit(&((shm_coll *)sc)->modified_lsn, memory_order_relaxed);
        const mf_coll *old = manifest_find(&j->prev, c.name);
        int forced = j->force && (j->only[0] == 0 || strcmp(j->only, c.name) == 0);
        if (!forced && old && old->create_lsn == ce->create_lsn && j->prev.checkpoint_lsn &&
            mod <= j->prev.checkpoint_lsn) {
            rc = manifest_add(&j->next, old); /* unchanged: kept by reference */
            j->colls_kept++;
            continue;
        }
        c.modified_lsn = mod < j->lsn ? mod : j->lsn;
        int datafd = -1;
        rc = write_coll(&r, collsfd, ce, sc, &c, &datafd);
        if (datafd >= 0) {
            int *p = realloc(fds, (nfds + 1) * sizeof *p);
            if (p == NULL) {
                close(datafd);
                rc = rc ? rc : DOTDB_ENOMEM;
            } else {
                fds = p;
                fds[nfds++] = datafd;
            }
        }
        if (rc == DOTDB_OK)
            rc = manifest_add(&j->next, &c);
        free(c.segs);
        j->colls_written++;
    }
    if (rc == DOTDB_OK && fsync(collsfd) != 0) {
        msgf(j->err, sizeof j->err, "cannot fsync %s/collections: %s", j->dir, strerror(errno));
        rc = errno_code(errno);
    }
    int renamed = 0;
    if (rc == DOTDB_OK)
        rc = manifest_write(sysfd, j->dir, &j->next, &renamed, j->err, sizeof j->err);
    if (rc != DOTDB_OK && renamed) {
        /* The new manifest is in place but maybe not durably: after a crash
         * either one may be found, so keep everything both name (no
         * cleanup here, no WAL removal by the caller). */
        j->durable = 0;
        rc = DOTDB_OK;
    } else if (rc != DOTDB_OK) {
        for (size_t i = 0; i < r.nw; i++) {
            char name[SEG_NAME_MAX];
            seg_name(r.w[i].segno, name);
            (void)unlinkat(r.w[i].datafd, name, 0);
        }
        manifest_free(&j->next);
        if (j->err[0] == 0)
            msgf(j->err, sizeof j->err, "%s", dotdb_strerror(rc));
    } else {
        j->durable = 1;
        char cerr[600];
        (void)ckpt_cleanup(j->dir, &j->next, cerr, sizeof cerr); /* garbage only */
    }
out:
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    free(fds);
    free(r.w);
    if (collsfd >= 0)
        close(collsfd);
    if (sysfd >= 0)
        close(sysfd);
    if (dirfd >= 0)
        close(dirfd);
    j->rc = rc;
    j->seconds = mono_s() - t0;
}

/* Remove the unreferenced segments of one collection directory. */
static int sweep_data(int collfd, const char *path, const mf_coll *c, char *err, size_t errlen)
{
    int datafd = openat(collfd, "data", DIR_FLAGS);
    if (datafd < 0)
        return errno == ENOENT ? DOTDB_OK : DOTDB_EOS;
    DIR *d = fdopendir(datafd);
    if (d == NULL) {
        close(datafd);
        return DOTDB_EOS;
    }
    int rc = DOTDB_OK, removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t s;
        int is_seg = seg_parse_name(de->d_name, &s);
        if (!is_seg)
            continue;
        int keep = 0;
        for (size_t i = 0; c && i < c->nsegs && !keep; i++)
            keep = c->segs[i].segno == s;
        if (keep)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0 && rc == DOTDB_OK) {
            msgf(err, errlen, "cannot remove %s/data/%s: %s", path, de->d_name, strerror(errno));
            rc = DOTDB_EIO;
        }
        removed = 1;
    }
    if (removed)
        (void)fsync(dirfd(d));
    closedir(d);
    return rc;
}

/* Remove a dropped collection's directory (its files, data/, itself). */
static void remove_coll_dir(int collsfd, const char *name)
{
    int collfd = openat(collsfd, name, DIR_FLAGS);
    if (collfd < 0)
        return;
    char err[8];
    (void)sweep_data(collfd, "", NULL, err, sizeof err);
    (void)unlinkat(collfd, "data", AT_REMOVEDIR);
    (void)unlinkat(collfd, "metadata.json", 0);
    (void)unlinkat(collfd, "metadata.json.tmp", 0);
    close(collfd);
    (void)unlinkat(collsfd, name, AT_REMOVEDIR);
}

int ckpt_cleanup(const char *dir, const manifest *m, char *err, size_t errlen)
{
    err[0] = 0;
    int dirfd = open(dir, DIR_FLAGS);
    if (dirfd < 0) {
        msgf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
        return DOTDB_EOS;
    }
    (void)unlinkat(dirfd, "system/" MANIFEST_NAME ".tmp", 0);
    int collsfd = openat(dirfd, "collections", DIR_FLAGS);
    close(dirfd);
    if (collsfd < 0)
        return DOTDB_OK;
    int dup_fd = dup(collsfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (d == NULL) {
        if (dup_fd >= 0)
            close(dup_fd);
        close(collsfd);
        return DOTDB_EOS;
    }
    int rc = DOTDB_OK, dropped = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        const mf_coll *c = manifest_find(m, de->d_name);
        if (c == NULL) {
            remove_coll_dir(collsfd, de->d_name);
            dropped = 1;
            continue;
        }
        int collfd = openat(collsfd, de->d_name, DIR_FLAGS);
        if (collfd < 0)
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/collections/%s", dir, de->d_name);
        int r = sweep_data(collfd, path, c, err, errlen);
        if (r != DOTDB_OK && rc == DOTDB_OK)
            rc = r;
        close(collfd);
    }
    closedir(d);
    if (dropped)
        (void)fsync(collsfd);
    close(collsfd);
    return rc;
}
