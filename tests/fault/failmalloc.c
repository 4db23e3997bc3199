/*
 * failmalloc.c - a test-only LD_PRELOAD shim that makes the N-th heap
 * allocation fail (malloc, calloc, realloc, posix_memalign, aligned_alloc
 * return NULL with ENOMEM), for a coordinator built WITHOUT sanitizers
 * (their allocator cannot be replaced this way).  Never linked into a
 * product.
 *
 * While the file $DOTDB_MALLOC_CTL exists and holds "SKIP COUNT", the
 * allocations after the first SKIP (counted from the moment the file last
 * changed) fail, COUNT of them (0: all).  Each injected failure is counted
 * in $DOTDB_MALLOC_CTL.fired (one byte appended), so the test knows
 * whether it fired.  The shim's own bookkeeping never allocates.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static __thread int in_shim;
static unsigned long seen;
static long long last_mtime_ns = -1;

/* Read the control file with raw system calls (stdio would allocate). */
static int should_fail(void)
{
    static const char *ctl;
    static int init;
    if (!init) {
        ctl = getenv("DOTDB_MALLOC_CTL");
        init = 1;
    }
    if (ctl == NULL || in_shim)
        return 0;
    in_shim = 1;
    int fail = 0;
    struct stat st;
    if (stat(ctl, &st) == 0) {
        long long m = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec + st.st_size;
        if (m != last_mtime_ns) {
            last_mtime_ns = m;
            __atomic_store_n(&seen, 0, __ATOMIC_SEQ_CST);
        }
        char buf[64] = {0};
        int fd = open(ctl, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n > 0) {
                char *end;
                unsigned long skip = strtoul(buf, &end, 10), count = strtoul(end, NULL, 10);
                unsigned long k = __atomic_fetch_add(&seen, 1, __ATOMIC_SEQ_CST);
                if (k >= skip && (count == 0 || k < skip + count)) {
                    fail = 1;
                    char fired[4200];
                    size_t l = strlen(ctl);
                    if (l < sizeof fired - 8) {
                        memcpy(fired, ctl, l);
                        memcpy(fired + l, ".fired", 7);
                        int f2 = open(fired, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                        if (f2 >= 0) {
                            (void)!write(f2, "x", 1);
                            close(f2);
                        }
                    }
                }
            }
        }
    }
    in_shim = 0;
    return fail;
}

void *malloc(size_t n)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    if (n && should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (should_fail())
        return ENOMEM;
    void *p = __libc_memalign(align, n);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_memalign(align, n);
}
