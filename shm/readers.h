/*
 * readers.h - the reader-slot protocol (DESIGN §3, I7, I8).
 *
 * Each connection owns one slot page (layout.h).  A client begins a
 * snapshot by publishing the commit LSN it will read at into one of its
 * slots and validating that the LSN did not move meanwhile; the coordinator
 * frees a block retired with tag P only when every slot is 0 or > P.
 *
 * Why publish-then-validate is enough: the reader's slot store and the
 * coordinator's commit_lsn store are both seq_cst, as are the reader's
 * reload and the coordinator's slot scan.  If the scan misses the reader's
 * store, the reader's reload comes after the coordinator's publication and
 * sees the newer LSN, so the reader retries instead of using the old one.
 *
 * commit_lsn is never 0 once the coordinator runs (an empty database
 * publishes LSN 1), so 0 in a slot always means idle.
 */
#ifndef DOTDB_READERS_H
#define DOTDB_READERS_H

#include <stdint.h>
#include <time.h>

#include "layout.h"

/* Client: publish and validate a snapshot in slot s; returns its LSN. */
static inline uint64_t rdr_begin(rdr_slot *s, shm_header *h)
{
    uint64_t lsn = atomic_load_explicit(&h->commit_lsn, memory_order_acquire);
    for (;;) {
        /* Pairs with the coordinator's seq_cst scan in rdr_min_active(). */
        atomic_store_explicit(&s->snapshot_lsn, lsn, memory_order_seq_cst);
        /* Pairs with the coordinator's seq_cst store of commit_lsn. */
        uint64_t again = atomic_load_explicit(&h->commit_lsn, memory_order_seq_cst);
        if (again == lsn)
            return lsn;
        lsn = again;
    }
}

/* Client: end the snapshot held in slot s. */
static inline void rdr_end(rdr_slot *s)
{
    /* Release: every read of the snapshot happens before the coordinator
     * can see the slot idle and free what it read. */
    atomic_store_explicit(&s->snapshot_lsn, 0, memory_order_release);
}

/* Coordinator: fold the smallest active snapshot of one page into *min. */
static inline void rdr_page_min(rdr_page *p, uint64_t *min)
{
    for (uint32_t i = 0; i < RDR_SLOTS; i++) {
        /* Pairs with the client's seq_cst store in rdr_begin(). */
        uint64_t v = atomic_load_explicit(&p->slots[i].snapshot_lsn, memory_order_seq_cst);
        if (v != 0 && v < *min)
            *min = v;
    }
}

static inline uint64_t rdr_now_ns(void)
{
    struct timespec ts;
    /* vDSO: no system call on Linux x86-64. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif /* DOTDB_READERS_H */
