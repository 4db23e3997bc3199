/*
 * faultfs.c - a test-only LD_PRELOAD shim that makes file system calls
 * fail, for the fault-injection tests (never linked into a product).
 *
 * While the file named by $DOTDB_FAULT_CTL exists, each of its lines
 *     OP SUBSTRING ERRNO [SKIP [COUNT]]
 * makes calls of OP (write, pwrite, fdatasync, fsync, rename, unlink, mmap,
 * open) on a path containing SUBSTRING fail with ERRNO, after SKIP matching
 * calls have gone through, for COUNT calls (0 or absent: every call).  For
 * calls on a descriptor the path is read from /proc/self/fd.  The control
 * file is read again on every call, so a test turns faults on and off
 * while the process runs.  Counting state is kept per line number, in
 * this process, and starts again whenever the control file changes (so
 * "SKIP" means "the SKIP+1-th call from now").  Each injected failure is
 * appended as a line "OP PATH ERRNO" to $DOTDB_FAULT_LOG when set, so a
 * test knows whether its fault fired.  ERRNO may instead be "delay=MS":
 * the call then succeeds after sleeping MS milliseconds (a stalling disk),
 * and is logged with errno 0.  "fallocate" covers posix_fallocate and
 * fallocate.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_RULES 16

static __thread int in_shim; /* our own file reads must not recurse */
static unsigned long hits[MAX_RULES];

static int should_fail(const char *op, const char *path)
{
    const char *ctl = getenv("DOTDB_FAULT_CTL");
    if (ctl == NULL || path == NULL || in_shim)
        return 0;
    in_shim = 1;
    int fail = 0, delayed = 0;
    static struct timespec last_mtime;
    static off_t last_size = -1;
    struct stat st;
    if (stat(ctl, &st) == 0 && (st.st_mtim.tv_sec != last_mtime.tv_sec ||
                                st.st_mtim.tv_nsec != last_mtime.tv_nsec || st.st_size != last_size)) {
        memset(hits, 0, sizeof hits);
        last_mtime = st.st_mtim;
        last_size = st.st_size;
    }
    FILE *f = fopen(ctl, "re");
    if (f != NULL) {
        char line[512];
        int n = 0;
        while (!fail && n < MAX_RULES && fgets(line, sizeof line, f)) {
            char rop[32], sub[256], what[32];
            int err = 0, delay_ms = -1;
            unsigned long skip = 0, count = 0;
            int k = sscanf(line, "%31s %255s %31s %lu %lu", rop, sub, what, &skip, &count);
            if (k >= 3 && sscanf(what, "delay=%d", &delay_ms) != 1)
                err = atoi(what);
            if (k >= 3 && strcmp(rop, op) == 0 && strstr(path, sub) != NULL) {
                unsigned long seen = hits[n]++;
                if (seen >= skip && (count == 0 || seen < skip + count)) {
                    if (delay_ms >= 0) {
                        struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
                        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                            ;
                        delayed = 1;
                        break;
                    }
                    errno = err;
                    fail = 1;
                }
            }
            n++;
        }
        fclose(f);
    }
    const char *log = getenv("DOTDB_FAULT_LOG");
    if ((fail || delayed) && log) {
        int e = fail ? errno : 0;
        FILE *lf = fopen(log, "ae");
        if (lf) {
            fprintf(lf, "%s %s %d\n", op, path, e);
            fclose(lf);
        }
        if (fail)
            errno = e;
    }
    in_shim = 0;
    return fail;
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

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t write(int fd, const void *p, size_t n)
{
    char b[4096];
    if (should_fail("write", fd_path(fd, b, sizeof b)))
        return -1;
    return NEXT(write)(fd, p, n);
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
    char b[4096];
    if (should_fail("pwrite", fd_path(fd, b, sizeof b)))
        return -1;
    return NEXT(pwrite)(fd, p, n, off);
}

int fdatasync(int fd)
{
    char b[4096];
    if (should_fail("fdatasync", fd_path(fd, b, sizeof b)))
        return -1;
    return NEXT(fdatasync)(fd);
}

int fsync(int fd)
{
    char b[4096];
    if (should_fail("fsync", fd_path(fd, b, sizeof b)))
        return -1;
    return NEXT(fsync)(fd);
}

int rename(const char *a, const char *b)
{
    if (should_fail("rename", b))
        return -1;
    return NEXT(rename)(a, b);
}

int renameat(int da, const char *a, int db, const char *b)
{
    char d[4096], full[8192];
    const char *dir = fd_path(db, d, sizeof d);
    snprintf(full, sizeof full, "%s/%s", dir ? dir : "", b);
    if (should_fail("rename", full))
        return -1;
    return NEXT(renameat)(da, a, db, b);
}

int unlinkat(int dfd, const char *p, int flags)
{
    char d[4096], full[8192];
    const char *dir = dfd == AT_FDCWD ? "" : fd_path(dfd, d, sizeof d);
    snprintf(full, sizeof full, "%s/%s", dir ? dir : "", p);
    if (should_fail("unlink", full))
        return -1;
    return NEXT(unlinkat)(dfd, p, flags);
}

int openat(int dfd, const char *p, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    char d[4096], full[8192];
    const char *dir = dfd == AT_FDCWD || p[0] == '/' ? "" : fd_path(dfd, d, sizeof d);
    snprintf(full, sizeof full, "%s/%s", dir ? dir : "", p);
    if ((flags & O_CREAT) && should_fail("open", full))
        return -1;
    return NEXT(openat)(dfd, p, flags, mode);
}

int posix_fallocate(int fd, off_t off, off_t len)
{
    char b[4096];
    if (should_fail("fallocate", fd_path(fd, b, sizeof b)))
        return errno; /* posix_fallocate returns the error */
    return NEXT(posix_fallocate)(fd, off, len);
}

int ftruncate(int fd, off_t len)
{
    char b[4096];
    if (should_fail("ftruncate", fd_path(fd, b, sizeof b)))
        return -1;
    return NEXT(ftruncate)(fd, len);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    char b[4096];
    if (fd >= 0 && should_fail("mmap", fd_path(fd, b, sizeof b)))
        return MAP_FAILED;
    return NEXT(mmap)(addr, len, prot, flags, fd, off);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    char b[4096];
    if (should_fail("fallocate", fd_path(fd, b, sizeof b)))
        return -1;
    return NEXT(fallocate)(fd, mode, off, len);
}
