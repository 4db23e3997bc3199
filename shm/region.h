/*
 * region.h - the coordinator's side of the data object: creation, sealing,
 * growth, the allocator and deferred reclamation.
 *
 * Only the coordinator links this module's writing half.  The allocator's
 * bookkeeping (free lists, the retire queue) lives in the coordinator's
 * private heap, never in shared memory: the shared region is derived state
 * (I5) and clients need none of it.
 */
#ifndef DOTDB_REGION_H
#define DOTDB_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

typedef struct shm_region shm_region;

/* Free-list classes: 16-byte steps up to 4 KiB, then whole pages. */
#define REGION_SMALL_MAX 4096u

typedef struct region_stats {
    uint64_t size;          /* backed bytes */
    uint64_t max_size;
    uint64_t top;           /* bump pointer */
    uint64_t in_use;        /* bytes in live blocks */
    uint64_t retired;       /* bytes waiting for readers to move on */
    uint64_t retired_items;
} region_stats;

/*
 * Create the data object: a memfd of initial_size bytes (reserved with
 * posix_fallocate), mapped read-write over max_size bytes of virtual space.
 * The header is initialised with `epoch`.  *out is owned by the caller
 * (region_destroy).  DOTDB_ENOSPC when the memory cannot be reserved,
 * DOTDB_EOS otherwise; err says which call failed.
 */
int region_create(uint64_t initial_size, uint64_t max_size, uint64_t epoch, shm_region **out,
                  char *err, size_t errlen);
/* Seal the object against writes through new mappings or write(2) and
 * against shrinking.  Call once before the descriptor is handed out. */
int region_seal(shm_region *r, char *err, size_t errlen);
/* Unmap and close; NULL ok. */
void region_destroy(shm_region *r);

/* Base address (coordinator's writable mapping) and descriptor. */
uint8_t *region_base(shm_region *r);
int region_fd(const shm_region *r);
shm_header *region_header(shm_region *r);

/*
 * Allocate n bytes (rounded up to 16) and return the offset, zeroed.
 * Grows the backing (ftruncate + posix_fallocate) when needed.  On failure
 * returns 0 and sets *rc (DOTDB_ENOSPC: max_size reached or memory
 * exhausted).
 */
uint64_t region_alloc(shm_region *r, size_t n, int *rc);
/* Return a block nobody can reach any more (never published, or freed by
 * reclamation) to the free lists at once. */
void region_free(shm_region *r, uint64_t off, size_t n);

/* Kinds of retired item, so reclamation can do the follow-up work. */
enum retire_kind {
    RETIRE_BLOCK = 0,     /* plain block: just free it */
    RETIRE_VERSION = 1,   /* superseded version: also clear aux's prev_off */
};

/*
 * Defer freeing block (off, n) until no snapshot can reach it: it is
 * retired with the currently published LSN as its tag (see layout.h).
 * aux: for RETIRE_VERSION, the offset of the newer version whose prev_off
 * points at this one.  DOTDB_ENOMEM if the queue cannot grow (the block is
 * then leaked, not freed early).
 */
int region_retire(shm_region *r, int kind, uint64_t off, size_t n, uint64_t aux);

/*
 * Free every retired item whose tag is below min_active (the smallest
 * nonzero snapshot LSN in any reader slot, or UINT64_MAX when none) and
 * below the published commit LSN.  Returns the number freed.
 */
size_t region_reclaim(shm_region *r, uint64_t min_active);

void region_get_stats(shm_region *r, region_stats *st);

/* Offset <-> pointer for the coordinator. */
static inline void *region_ptr(shm_region *r, uint64_t off)
{
    return off ? region_base(r) + off : NULL;
}

#endif /* DOTDB_REGION_H */
