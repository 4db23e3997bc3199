/*
 * lockfile.c - single-coordinator ownership of a data directory.
 */
#include "lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dotdb.h"
#include "layout.h"

int lockfile_acquire(const char *dir, lockfile *lf, char *err, size_t errlen)
{
    lf->fd = -1;
    lf->word = NULL;
    snprintf(lf->path, sizeof lf->path, "%s/%s", dir, LIVE_FILE_NAME);
    lf->fd = open(lf->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lf->fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", lf->path, strerror(errno));
        return DOTDB_EOS;
    }
    if (flock(lf->fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        live_word w = {0};
        ssize_t n = pread(lf->fd, &w, sizeof w, 0);
        uint64_t pid = (n == (ssize_t)sizeof w && w.magic == LIVE_MAGIC) ? atomic_load(&w.pid) : 0;
        if (e == EWOULDBLOCK)
            snprintf(err, errlen, "database %s is already served by coordinator pid %llu", dir,
                     (unsigned long long)pid);
        else
            snprintf(err, errlen, "cannot lock %s: %s", lf->path, strerror(e));
        close(lf->fd);
        lf->fd = -1;
        return e == EWOULDBLOCK ? DOTDB_ELOCKED : DOTDB_EOS;
    }
    if (ftruncate(lf->fd, LIVE_FILE_SIZE) != 0) {
        snprintf(err, errlen, "cannot size %s: %s", lf->path, strerror(errno));
        goto fail;
    }
    void *p = mmap(NULL, LIVE_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, lf->fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %s: %s", lf->path, strerror(errno));
        goto fail;
    }
    lf->word = p;
    uint64_t epoch = lf->word->magic == LIVE_MAGIC ? atomic_load(&lf->word->epoch) : 0;
    lf->word->magic = LIVE_MAGIC;
    atomic_store_explicit(&lf->word->pid, (uint64_t)getpid(), memory_order_relaxed);
    atomic_store_explicit(&lf->word->state, SHM_STATE_STARTING, memory_order_release);
    /* Pairs with the clients' acquire load of the epoch in their read path. */
    atomic_store_explicit(&lf->word->epoch, epoch + 1, memory_order_release);
    return 0;
fail:
    close(lf->fd);
    lf->fd = -1;
    return DOTDB_EOS;
}

void lockfile_set_state(lockfile *lf, uint32_t state)
{
    if (lf->word)
        atomic_store_explicit(&lf->word->state, state, memory_order_release);
}

uint64_t lockfile_epoch(const lockfile *lf)
{
    return lf->word ? atomic_load_explicit(&lf->word->epoch, memory_order_relaxed) : 0;
}

int lockfile_open_readonly(const lockfile *lf)
{
    return open(lf->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

void lockfile_release(lockfile *lf)
{
    if (lf->word) {
        lockfile_set_state(lf, SHM_STATE_STOPPED);
        msync(lf->word, LIVE_FILE_SIZE, MS_SYNC);
        munmap(lf->word, LIVE_FILE_SIZE);
        lf->word = NULL;
    }
    if (lf->fd >= 0) {
        flock(lf->fd, LOCK_UN);
        close(lf->fd);
        lf->fd = -1;
    }
}
