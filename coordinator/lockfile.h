/*
 * lockfile.h - taking DIR/dotdb.lock for the coordinator (see
 * shm/livefile.h for the file's layout and why clients map it).
 */
#ifndef DOTDB_LOCKFILE_H
#define DOTDB_LOCKFILE_H

#include <stddef.h>
#include <stdint.h>

#include "livefile.h"

typedef struct lockfile {
    int fd;          /* read-write, holds the flock */
    live_word *word; /* writable mapping of the first page */
    char path[4200];
} lockfile;

/*
 * Lock dir's lock file, bump its epoch and record our pid (state STARTING).
 * DOTDB_ELOCKED when another live coordinator holds it (err names its pid),
 * DOTDB_EOS otherwise.  *lf is caller-owned; release with lockfile_release.
 */
int lockfile_acquire(const char *dir, lockfile *lf, char *err, size_t errlen);
void lockfile_set_state(lockfile *lf, uint32_t state);
uint64_t lockfile_epoch(const lockfile *lf);
/* A new read-only descriptor of the file for a client (caller closes). */
int lockfile_open_readonly(const lockfile *lf);
/* Mark stopped, unlock and close. */
void lockfile_release(lockfile *lf);

#endif /* DOTDB_LOCKFILE_H */
