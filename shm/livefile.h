/*
 * livefile.h - DIR/dotdb.lock: the coordinator's ownership lock and its
 * liveness word.
 *
 * The coordinator holds an exclusive flock(2) on the file for its whole
 * life (the kernel drops it when the process dies, even by SIGKILL), so a
 * second coordinator on the same directory fails at once and can name the
 * owner's pid, read from the file.  The first 64 bytes are also mapped
 * read-only by every client (the coordinator passes a read-only descriptor
 * in the handshake): a client compares `epoch` with the epoch of the data
 * object it reads and sees a restarted or stopped coordinator with one
 * load, no system call.
 *
 *   0  magic  u64 LIVE_MAGIC
 *   8  epoch  u64 incremented at every coordinator start (release store)
 *   16 pid    u64 the owner
 *   24 state  u32 SHM_STATE_* (release store)
 *   28 pad to 64
 */
#ifndef DOTDB_LIVEFILE_H
#define DOTDB_LIVEFILE_H

#include <stdatomic.h>
#include <stdint.h>

#define LIVE_MAGIC 0x314556494C424444ULL /* "DDBLIVE1" little endian */
#define LIVE_FILE_NAME "dotdb.lock"
#define LIVE_FILE_SIZE 4096u

typedef struct live_word {
    uint64_t magic;
    _Atomic uint64_t epoch;
    _Atomic uint64_t pid;
    _Atomic uint32_t state;
    uint32_t pad[9];
} live_word;
_Static_assert(sizeof(live_word) == 64, "live word size");

#endif /* DOTDB_LIVEFILE_H */
