/*
 * index.h - the coordinator's (writing) side of the catalog and of the
 * primary hash tables.  Single writer: only the coordinator's loop thread
 * calls these.  Readers use snap.h concurrently; every store that makes
 * something reachable is a release store done after the thing is complete.
 *
 * Nothing here frees memory that a snapshot might reach: blocks that stop
 * being reachable are returned to the caller (old_off out-parameters) so
 * the commit path can retire them when the batch is published, or free
 * them at once if the batch is undone.
 */
#ifndef DOTDB_INDEX_H
#define DOTDB_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "region.h"

/* A new, empty collection (shm_coll + a table of nslots, a power of two)
 * stamped create_lsn.  *coll_off receives it.  DOTDB_ENOSPC. */
int idx_coll_new(shm_region *r, uint64_t nslots, uint64_t create_lsn, uint64_t *coll_off);
/* Bytes of a collection's current table (for freeing/retiring). */
size_t idx_table_bytes(const shm_table *t);

/*
 * Find the slot of document `id`: returns the head version offset (0 when
 * the id has no slot) and its slot index in *slot.
 */
uint64_t idx_find(shm_region *r, shm_coll *c, const char *id, size_t id_len, uint64_t *slot);

/* idx_find with the id's snap_id_hash already known. */
uint64_t idx_find_h(shm_region *r, shm_coll *c, const char *id, size_t id_len, uint64_t hash,
                    uint64_t *slot);

/* Start loading the table line where idx_find_h(hash) looks first: a hint,
 * no effect on the table. */
void idx_prefetch(shm_region *r, shm_coll *c, uint64_t hash);

/*
 * Make ver_off the head for its id.  `slot` is what idx_find returned when
 * the id had a slot (the caller has already set the new version's
 * prev_off), or UINT64_MAX for an id without one (the table may grow: the
 * old table's offset and size come back in *old_table / *old_bytes, to be
 * retired; 0 when it did not grow).  DOTDB_ENOSPC.
 */
int idx_set_head(shm_region *r, shm_coll *c, uint64_t slot, uint64_t ver_off, uint64_t hash,
                 uint64_t *old_table, size_t *old_bytes);

/* Remove the id's slot (store DELETED) if its head is still head_off. */
void idx_remove_if_head(shm_region *r, shm_coll *c, const char *id, size_t id_len,
                        uint64_t head_off);

/*
 * Catalog changes.  Each builds a new catalog, publishes it (release store
 * of catalog_off) and returns the old one in *old_cat / *old_bytes for the
 * caller to retire (or to restore with catalog_restore on undo).
 */
int catalog_add(shm_region *r, const char *name, size_t len, uint64_t lsn, uint64_t coll_off,
                uint64_t *old_cat, size_t *old_bytes);
int catalog_mark_dropped(shm_region *r, const char *name, size_t len, uint64_t lsn,
                         uint64_t *old_cat, size_t *old_bytes);
/* Remove entries dropped at or before `lsn` (no snapshot can see them). */
int catalog_purge(shm_region *r, uint64_t lsn, uint64_t *old_cat, size_t *old_bytes);
/* Undo: put back old_cat; the current catalog (reachable, so to be
 * retired by the caller, not freed) comes back in *cur_cat / *cur_bytes. */
void catalog_restore(shm_region *r, uint64_t old_cat, uint64_t *cur_cat, size_t *cur_bytes);
/* The live entry for a name (coordinator view: newest state), or NULL. */
shm_cat_entry *catalog_find_live(shm_region *r, const char *name, size_t len);
shm_catalog *catalog_current(shm_region *r);
size_t catalog_bytes(uint32_t count);

/* A version block: header + data_len bytes. */
static inline size_t version_bytes(size_t data_len) { return sizeof(shm_version) + data_len; }

#endif /* DOTDB_INDEX_H */
