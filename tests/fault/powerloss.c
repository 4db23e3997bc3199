/*
 * powerloss.c - a test-only LD_PRELOAD file layer that simulates a power
 * cut at a chosen I/O call (never linked into a product).
 *
 * kill -9 keeps the page cache, so it never tests what a power cut does to
 * writes that no fsync covered.  This layer remembers, for every file
 * under $DOTDB_PL_DIR, what each write not yet covered by an fsync of that
 * file changed (the bytes before, the size before), and, for every
 * directory, the creations, renames and removals not yet covered by an
 * fsync of that directory.  At the $DOTDB_PL_CRASH_AT-th tracked call
 * (write, pwrite, fdatasync, fsync, rename, unlink, creating open,
 * ftruncate, mkdir; counted from 1, 0 = never) it applies $DOTDB_PL_MODE to
 * all of that not-yet-durable state and exits at once with status 137:
 *   keep     everything stays (what kill -9 leaves)
 *   drop     every unsynced write is undone, every unsynced directory
 *            change is undone (the disk as of the last fsyncs)
 *   garbage  every unsynced write's bytes are replaced by noise, unsynced
 *            directory changes are undone
 *   mixed    each unsynced write independently kept, dropped or garbage,
 *            each directory change kept or undone ($DOTDB_PL_SEED)
 * This is the POSIX contract (fsync of a file makes its data durable;
 * fsync of a directory makes its entries durable), not a model of one file
 * system, and it assumes sector writes do not tear inside a write() (a
 * torn write is covered by "garbage").  On exit the number of tracked
 * calls is written to $DOTDB_PL_COUNT when set, so a test can sweep every
 * call of a workload.  Replaced names are kept as hidden ".pl-*" links in
 * the same directory until the crash (DotDB ignores names it does not
 * know).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

enum rec_kind { R_DATA, R_CREATE, R_RENAME, R_UNLINK, R_MKDIR };

typedef struct rec {
    int kind;
    dev_t dev;
    ino_t ino;          /* R_DATA: the file; others: the directory */
    int fd;             /* R_DATA: a dup of the file's descriptor */
    off_t off;
    size_t len;
    off_t old_size;
    unsigned char *old; /* R_DATA: bytes before, len of them (up to old_size) */
    char path[4096];    /* R_CREATE/R_UNLINK/R_MKDIR: the path; R_RENAME: the target */
    char from[4096];    /* R_RENAME: the source */
    char backup[4096];  /* R_RENAME/R_UNLINK: the replaced/removed file, kept here; "" none */
    int dead;
} rec;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static rec *recs;
static size_t nrecs, caprecs;
static unsigned long calls, crash_at;
static const char *root;
static size_t root_len;
static int mode; /* 0 keep 1 drop 2 garbage 3 mixed */
static unsigned seed;
static int inited, busy;
static unsigned long backups;

static void init(void)
{
    if (inited)
        return;
    inited = 1;
    root = getenv("DOTDB_PL_DIR");
    root_len = root ? strlen(root) : 0;
    const char *c = getenv("DOTDB_PL_CRASH_AT");
    crash_at = c ? strtoul(c, NULL, 10) : 0;
    const char *m = getenv("DOTDB_PL_MODE");
    mode = !m || !strcmp(m, "keep") ? 0 : !strcmp(m, "drop") ? 1 : !strcmp(m, "garbage") ? 2 : 3;
    const char *s = getenv("DOTDB_PL_SEED");
    seed = s ? (unsigned)strtoul(s, NULL, 10) : 1;
}

__attribute__((destructor)) static void write_count(void)
{
    const char *p = getenv("DOTDB_PL_COUNT");
    if (p == NULL)
        return;
    FILE *f = fopen(p, "w");
    if (f) {
        fprintf(f, "%lu\n", calls);
        fclose(f);
    }
}

static int tracked_path(const char *p)
{
    return root && p && strncmp(p, root, root_len) == 0 &&
           (p[root_len] == '/' || p[root_len] == 0) && !strstr(p, "/.pl-") &&
           !strstr(p, "dotdb.lock") && !strstr(p, "dotdbd.log") && !strstr(p, ".sock");
}

static const char *fd_path(int fd, char *buf, size_t len)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, len - 1);
    if (n < 0)
        return NULL;
    buf[n] = 0;
    return buf;
}

static const char *at_path(int dfd, const char *p, char *buf, size_t len)
{
    if (p[0] == '/' || dfd == AT_FDCWD) {
        if (p[0] == '/')
            snprintf(buf, len, "%s", p);
        else {
            char cwd[4096];
            snprintf(buf, len, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", p);
        }
        return buf;
    }
    char d[4096];
    if (fd_path(dfd, d, sizeof d) == NULL)
        return NULL;
    snprintf(buf, len, "%s/%s", d, p);
    return buf;
}

static rec *push(void)
{
    if (nrecs == caprecs) {
        caprecs = caprecs ? caprecs * 2 : 256;
        recs = realloc(recs, caprecs * sizeof *recs);
        if (recs == NULL)
            abort();
    }
    rec *r = &recs[nrecs++];
    memset(r, 0, sizeof *r);
    r->fd = -1;
    return r;
}

static void parent_of(const char *p, char *out, size_t len)
{
    snprintf(out, len, "%s", p);
    char *s = strrchr(out, '/');
    if (s && s != out)
        *s = 0;
}

static void dir_id(const char *path, dev_t *dev, ino_t *ino)
{
    char d[4096];
    struct stat st;
    parent_of(path, d, sizeof d);
    if (stat(d, &st) == 0) {
        *dev = st.st_dev;
        *ino = st.st_ino;
    }
}

/* Keep a link to an existing file before it is replaced or removed. */
static void keep_backup(const char *path, char *backup, size_t len)
{
    char d[4096];
    struct stat st;
    backup[0] = 0;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    parent_of(path, d, sizeof d);
    snprintf(backup, len, "%s/.pl-%d-%lu", d, (int)getpid(), backups++);
    if (link(path, backup) != 0)
        backup[0] = 0;
}

static int pick(void)
{
    if (mode != 3)
        return mode;
    return (int)(rand_r(&seed) % 3);
}

/* The power cut: make the disk what it could be after one, then die. */
static void crash(void)
{
    for (size_t i = nrecs; i-- > 0;) {
        rec *r = &recs[i];
        if (r->dead)
            continue;
        int m = pick();
        if (r->kind == R_DATA) {
            if (m == 1) {
                if (r->old && r->len)
                    (void)NEXT(pwrite)(r->fd, r->old, r->len, r->off);
                (void)NEXT(ftruncate)(r->fd, r->old_size);
            } else if (m == 2) {
                unsigned char noise[4096];
                for (size_t k = 0; k < sizeof noise; k++)
                    noise[k] = (unsigned char)rand_r(&seed);
                size_t total = r->len ? r->len : 0;
                for (size_t done = 0; done < total;) {
                    size_t n = total - done < sizeof noise ? total - done : sizeof noise;
                    (void)NEXT(pwrite)(r->fd, noise, n, r->off + (off_t)done);
                    done += n;
                }
            }
            continue;
        }
        if (m == 0) {
            if (r->backup[0])
                (void)NEXT(unlink)(r->backup);
            continue;
        }
        switch (r->kind) {
        case R_CREATE: (void)NEXT(unlinkat)(AT_FDCWD, r->path, 0); break;
        case R_MKDIR: (void)rmdir(r->path); break;
        case R_RENAME:
            (void)NEXT(rename)(r->path, r->from);
            if (r->backup[0])
                (void)NEXT(rename)(r->backup, r->path);
            break;
        case R_UNLINK:
            if (r->backup[0])
                (void)NEXT(rename)(r->backup, r->path);
            break;
        }
    }
    /* remaining backups of kept changes */
    for (size_t i = 0; i < nrecs; i++)
        if (recs[i].backup[0])
            (void)NEXT(unlink)(recs[i].backup);
    sync();
    _exit(137);
}

/* Count a tracked call; crash when its turn has come.  Under mu. */
static void tick(void)
{
    calls++;
    if (crash_at && calls == crash_at)
        crash();
}

static void forget_data(dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < nrecs; i++) {
        rec *r = &recs[i];
        if (!r->dead && r->kind == R_DATA && r->dev == dev && r->ino == ino) {
            r->dead = 1;
            free(r->old);
            r->old = NULL;
            close(r->fd);
        }
    }
}

static void forget_dir(dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < nrecs; i++) {
        rec *r = &recs[i];
        if (!r->dead && r->kind != R_DATA && r->dev == dev && r->ino == ino) {
            r->dead = 1;
            if (r->backup[0])
                (void)NEXT(unlink)(r->backup);
            r->backup[0] = 0;
        }
    }
}

/* Before a write of n bytes at off (-1: the current position). */
static void note_write(int fd, size_t n, off_t off)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    if (off < 0) {
        int fl = fcntl(fd, F_GETFL);
        off = (fl & O_APPEND) ? st.st_size : lseek(fd, 0, SEEK_CUR);
    }
    rec *r = push();
    r->kind = R_DATA;
    r->dev = st.st_dev;
    r->ino = st.st_ino;
    r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 1000);
    r->off = off;
    r->len = n;
    r->old_size = st.st_size;
    if (off < st.st_size) {
        size_t have = (size_t)(st.st_size - off) < n ? (size_t)(st.st_size - off) : n;
        r->old = malloc(n);
        memset(r->old, 0, n);
        (void)pread(fd, r->old, have, off);
    }
}

static int enter(void)
{
    pthread_mutex_lock(&mu);
    init();
    if (busy) {
        pthread_mutex_unlock(&mu);
        return 0;
    }
    busy = 1;
    return 1;
}

static void leave(void)
{
    busy = 0;
    pthread_mutex_unlock(&mu);
}

ssize_t write(int fd, const void *p, size_t n)
{
    char b[4096];
    if (enter()) {
        if (tracked_path(fd_path(fd, b, sizeof b))) {
            tick();
            note_write(fd, n, -1);
        }
        leave();
    }
    return NEXT(write)(fd, p, n);
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
    char b[4096];
    if (enter()) {
        if (tracked_path(fd_path(fd, b, sizeof b))) {
            tick();
            note_write(fd, n, off);
        }
        leave();
    }
    return NEXT(pwrite)(fd, p, n, off);
}

int ftruncate(int fd, off_t len)
{
    char b[4096];
    if (enter()) {
        if (tracked_path(fd_path(fd, b, sizeof b))) {
            tick();
            struct stat st;
            if (fstat(fd, &st) == 0 && len < st.st_size)
                note_write(fd, (size_t)(st.st_size - len), len); /* the cut bytes, to put back */
            else
                note_write(fd, 0, len);
        }
        leave();
    }
    return NEXT(ftruncate)(fd, len);
}

static int sync_common(int fd, int (*real)(int))
{
    char b[4096];
    int tracked = 0;
    if (enter()) {
        tracked = tracked_path(fd_path(fd, b, sizeof b));
        if (tracked)
            tick(); /* a crash here: before the sync */
        leave();
    }
    int r = real(fd);
    if (r == 0 && tracked && enter()) {
        {
            struct stat st;
            if (fstat(fd, &st) == 0) {
                if (S_ISDIR(st.st_mode))
                    forget_dir(st.st_dev, st.st_ino);
                else
                    forget_data(st.st_dev, st.st_ino);
            }
        }
        leave();
    }
    return r;
}

int fdatasync(int fd) { return sync_common(fd, NEXT(fdatasync)); }
int fsync(int fd) { return sync_common(fd, NEXT(fsync)); }

static void note_rename(const char *from, const char *to)
{
    tick();
    rec *r = push();
    r->kind = R_RENAME;
    snprintf(r->from, sizeof r->from, "%s", from);
    snprintf(r->path, sizeof r->path, "%s", to);
    dir_id(to, &r->dev, &r->ino);
    keep_backup(to, r->backup, sizeof r->backup);
}

int rename(const char *a, const char *b)
{
    char fa[4096], fb[4096];
    if (enter()) {
        if (at_path(AT_FDCWD, b, fb, sizeof fb) && tracked_path(fb) &&
            at_path(AT_FDCWD, a, fa, sizeof fa))
            note_rename(fa, fb);
        leave();
    }
    return NEXT(rename)(a, b);
}

int renameat(int da, const char *a, int db, const char *b)
{
    char fa[4096], fb[4096];
    if (enter()) {
        if (at_path(db, b, fb, sizeof fb) && tracked_path(fb) && at_path(da, a, fa, sizeof fa))
            note_rename(fa, fb);
        leave();
    }
    return NEXT(renameat)(da, a, db, b);
}

static void note_unlink(const char *full)
{
    tick();
    rec *r = push();
    r->kind = R_UNLINK;
    snprintf(r->path, sizeof r->path, "%s", full);
    dir_id(full, &r->dev, &r->ino);
    keep_backup(full, r->backup, sizeof r->backup);
}

int unlinkat(int dfd, const char *p, int flags)
{
    char full[4096];
    if (enter()) {
        if (!(flags & AT_REMOVEDIR) && at_path(dfd, p, full, sizeof full) && tracked_path(full))
            note_unlink(full);
        leave();
    }
    return NEXT(unlinkat)(dfd, p, flags);
}

int unlink(const char *p)
{
    char full[4096];
    if (enter()) {
        if (at_path(AT_FDCWD, p, full, sizeof full) && tracked_path(full))
            note_unlink(full);
        leave();
    }
    return NEXT(unlink)(p);
}

static void note_create(const char *full, int is_dir)
{
    rec *r = push();
    r->kind = is_dir ? R_MKDIR : R_CREATE;
    snprintf(r->path, sizeof r->path, "%s", full);
    dir_id(full, &r->dev, &r->ino);
}

int openat(int dfd, const char *p, int flags, ...)
{
    mode_t m = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        m = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    char full[4096];
    int created = 0;
    if ((flags & O_CREAT) && enter()) {
        struct stat st;
        if (at_path(dfd, p, full, sizeof full) && tracked_path(full) && lstat(full, &st) != 0) {
            created = 1;
            tick(); /* a crash here: before the file exists */
        }
        leave();
    }
    int fd = NEXT(openat)(dfd, p, flags, m);
    if (created && fd >= 0 && enter()) {
        note_create(full, 0);
        leave();
    }
    return fd;
}

int open(const char *p, int flags, ...)
{
    mode_t m = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        m = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return openat(AT_FDCWD, p, flags, m);
}

int mkdirat(int dfd, const char *p, mode_t m)
{
    char full[4096];
    int tracked = 0;
    if (enter()) {
        tracked = at_path(dfd, p, full, sizeof full) && tracked_path(full);
        if (tracked)
            tick();
        leave();
    }
    int r = NEXT(mkdirat)(dfd, p, m);
    if (r == 0 && tracked && enter()) {
        note_create(full, 1);
        leave();
    }
    return r;
}

int mkdir(const char *p, mode_t m)
{
    return mkdirat(AT_FDCWD, p, m);
}
