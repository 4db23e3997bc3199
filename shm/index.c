/*
 * index.c - writing the catalog and the primary hash tables (single writer).
 *
 * The hash table is open addressing with linear probing, grown (doubled)
 * at 70% occupancy.  A grow copies every word into a new table, publishes
 * it with a release store of shm_coll.table_off and hands the old table
 * back for retirement: readers that loaded the old offset keep a complete,
 * immutable table until their snapshots end.  Words are only ever changed
 * with release stores of complete values, so a reader sees either the old
 * or the new head, both valid for it.
 */
#include "index.h"

#include <assert.h>
#include <string.h>

#include "dotdb.h"
#include "snap.h"

size_t idx_table_bytes(const shm_table *t) { return sizeof(shm_table) + t->nslots * 8; }

static uint64_t table_new(shm_region *r, uint64_t nslots, int *rc)
{
    uint64_t off = region_alloc(r, sizeof(shm_table) + nslots * 8, rc);
    if (off == 0)
        return 0;
    shm_table *t = region_ptr(r, off);
    t->nslots = nslots;
    t->used = 0;
    t->alloc_size = sizeof(shm_table) + nslots * 8;
    return off; /* region_alloc zeroed the slots: all TABLE_EMPTY */
}

int idx_coll_new(shm_region *r, uint64_t nslots, uint64_t create_lsn, uint64_t *coll_off)
{
    int rc;
    *coll_off = 0;
    uint64_t off = region_alloc(r, sizeof(shm_coll), &rc);
    if (off == 0)
        return rc;
    uint64_t toff = table_new(r, nslots, &rc);
    if (toff == 0) {
        region_free(r, off, sizeof(shm_coll));
        return rc;
    }
    shm_coll *c = region_ptr(r, off);
    c->create_lsn = create_lsn;
    atomic_store_explicit(&c->modified_lsn, create_lsn, memory_order_relaxed);
    atomic_store_explicit(&c->table_off, toff, memory_order_release);
    *coll_off = off;
    return 0;
}

static shm_table *coll_table(shm_region *r, shm_coll *c)
{
    return region_ptr(r, atomic_load_explicit(&c->table_off, memory_order_relaxed));
}

uint64_t idx_find(shm_region *r, shm_coll *c, const char *id, size_t id_len, uint64_t *slot)
{
    return idx_find_h(r, c, id, id_len, snap_id_hash(id, id_len), slot);
}

void idx_prefetch(shm_region *r, shm_coll *c, uint64_t hash)
{
    const shm_table *t = coll_table(r, c);
    __builtin_prefetch(&t->slots[hash & (t->nslots - 1)], 1);
}

uint64_t idx_find_h(shm_region *r, shm_coll *c, const char *id, size_t id_len, uint64_t h,
                    uint64_t *slot)
{
    const uint8_t *base = region_base(r);
    shm_table *t = coll_table(r, c);
    uint64_t mask = t->nslots - 1;
    *slot = UINT64_MAX;
    for (uint64_t i = h & mask, n = 0; n < t->nslots; i = (i + 1) & mask, n++) {
        uint64_t w = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (w == TABLE_EMPTY)
            return 0;
        if (w == TABLE_DELETED || TABLE_TAG(w) != TABLE_TAG(h))
            continue;
        const shm_version *v = snap_at(base, w & TABLE_OFF_MASK);
        if (v->id_len == id_len && memcmp(ver_id(v), id, id_len) == 0) {
            *slot = i;
            return w & TABLE_OFF_MASK;
        }
    }
    return 0;
}

/* Insert word w into t (coordinator-private until published). */
static void table_put(shm_table *t, uint64_t hash, uint64_t w)
{
    uint64_t mask = t->nslots - 1;
    for (uint64_t i = hash & mask;; i = (i + 1) & mask) {
        uint64_t cur = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (cur == TABLE_EMPTY || cur == TABLE_DELETED) {
            if (cur == TABLE_EMPTY)
                t->used++;
            /* Pairs with the readers' acquire load of the slot word. */
            atomic_store_explicit(&t->slots[i], w, memory_order_release);
            return;
        }
    }
}

static int table_grow(shm_region *r, shm_coll *c, uint64_t *old_table, size_t *old_bytes)
{
    int rc;
    shm_table *t = coll_table(r, c);
    uint64_t live = 0;
    for (uint64_t i = 0; i < t->nslots; i++) {
        uint64_t w = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        live += (w != TABLE_EMPTY && w != TABLE_DELETED);
    }
    uint64_t n = t->nslots;
    while (live * 10 >= n * 5) /* leave the new table at most half full */
        n *= 2;
    uint64_t noff = table_new(r, n, &rc);
    if (noff == 0)
        return rc;
    t = coll_table(r, c); /* region_alloc never moves the mapping; reload for clarity */
    shm_table *nt = region_ptr(r, noff);
    const uint8_t *base = region_base(r);
    /* Rehashing reads every version's id, and the table is in hash order,
     * so each is a cache miss: prefetch GROW_AHEAD versions ahead and keep
     * that many misses in flight instead of one. */
    enum { GROW_AHEAD = 16 };
    uint64_t ring[GROW_AHEAD];
    size_t queued = 0;
    for (uint64_t i = 0; i < t->nslots; i++) {
        uint64_t w = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (w == TABLE_EMPTY || w == TABLE_DELETED)
            continue;
        const shm_version *v = snap_at(base, w & TABLE_OFF_MASK);
        __builtin_prefetch(v);
        __builtin_prefetch((const uint8_t *)v + 64);
        if (queued >= GROW_AHEAD) {
            uint64_t old = ring[queued % GROW_AHEAD];
            const shm_version *ov = snap_at(base, old & TABLE_OFF_MASK);
            table_put(nt, snap_id_hash(ver_id(ov), ov->id_len), old);
        }
        ring[queued++ % GROW_AHEAD] = w;
    }
    for (size_t k = queued > GROW_AHEAD ? queued - GROW_AHEAD : 0; k < queued; k++) {
        uint64_t old = ring[k % GROW_AHEAD];
        const shm_version *ov = snap_at(base, old & TABLE_OFF_MASK);
        table_put(nt, snap_id_hash(ver_id(ov), ov->id_len), old);
    }
    *old_table = atomic_load_explicit(&c->table_off, memory_order_relaxed);
    *old_bytes = idx_table_bytes(t);
    /* Pairs with the readers' acquire load of table_off. */
    atomic_store_explicit(&c->table_off, noff, memory_order_release);
    return 0;
}

int idx_set_head(shm_region *r, shm_coll *c, uint64_t slot, uint64_t ver_off, uint64_t hash,
                 uint64_t *old_table, size_t *old_bytes)
{
    *old_table = 0;
    *old_bytes = 0;
    assert((ver_off & TABLE_OFF_MASK) == ver_off && ver_off > TABLE_DELETED);
    uint64_t w = (TABLE_TAG(hash) << TABLE_OFF_BITS) | ver_off;
    shm_table *t = coll_table(r, c);
    if (slot != UINT64_MAX) {
        assert(slot < t->nslots);
        /* Pairs with the readers' acquire load; the version's prev_off was
         * stored before this. */
        atomic_store_explicit(&t->slots[slot], w, memory_order_release);
        return 0;
    }
    if ((t->used + 1) * 10 > t->nslots * 7) {
        int rc = table_grow(r, c, old_table, old_bytes);
        if (rc != 0)
            return rc;
        t = coll_table(r, c);
    }
    table_put(t, hash, w);
    return 0;
}

void idx_remove_if_head(shm_region *r, shm_coll *c, const char *id, size_t id_len,
                        uint64_t head_off)
{
    uint64_t slot;
    if (idx_find(r, c, id, id_len, &slot) == head_off && slot != UINT64_MAX)
        atomic_store_explicit(&coll_table(r, c)->slots[slot], TABLE_DELETED,
                              memory_order_release);
}

/* ---- catalog ---- */

size_t catalog_bytes(uint32_t count) { return sizeof(shm_catalog) + count * sizeof(shm_cat_entry); }

shm_catalog *catalog_current(shm_region *r)
{
    return region_ptr(r, atomic_load_explicit(&region_header(r)->catalog_off,
                                              memory_order_relaxed));
}

shm_cat_entry *catalog_find_live(shm_region *r, const char *name, size_t len)
{
    shm_catalog *cat = catalog_current(r);
    for (uint32_t i = 0; cat && i < cat->count; i++) {
        shm_cat_entry *e = &cat->entries[i];
        if (e->drop_lsn == UINT64_MAX && e->name_len == len && memcmp(e->name, name, len) == 0)
            return e;
    }
    return NULL;
}

/* Copy the current catalog into a new block with room for `extra` more
 * entries, skipping entries dropped at or before skip_dropped_at. */
static shm_catalog *catalog_copy(shm_region *r, uint32_t extra, uint64_t skip_dropped_at,
                                 uint64_t *new_off, int *rc)
{
    shm_catalog *old = catalog_current(r);
    uint32_t n = old ? old->count : 0;
    uint64_t off = region_alloc(r, catalog_bytes(n + extra), rc);
    if (off == 0)
        return NULL;
    shm_catalog *cat = region_ptr(r, off);
    cat->alloc_size = catalog_bytes(n + extra);
    old = catalog_current(r);
    for (uint32_t i = 0; i < n; i++) {
        if (old->entries[i].drop_lsn <= skip_dropped_at)
            continue;
        cat->entries[cat->count++] = old->entries[i];
    }
    *new_off = off;
    return cat;
}

static void catalog_publish(shm_region *r, uint64_t new_off, uint64_t *old_cat,
                            size_t *old_bytes)
{
    shm_header *h = region_header(r);
    shm_catalog *old = catalog_current(r);
    *old_cat = atomic_load_explicit(&h->catalog_off, memory_order_relaxed);
    *old_bytes = old ? old->alloc_size : 0;
    /* Pairs with the readers' acquire load of catalog_off. */
    atomic_store_explicit(&h->catalog_off, new_off, memory_order_release);
}

int catalog_add(shm_region *r, const char *name, size_t len, uint64_t lsn, uint64_t coll_off,
                uint64_t *old_cat, size_t *old_bytes)
{
    int rc;
    uint64_t off;
    *old_cat = 0;
    *old_bytes = 0;
    assert(len > 0 && len <= 64);
    shm_catalog *cat = catalog_copy(r, 1, 0, &off, &rc);
    if (cat == NULL)
        return rc;
    shm_cat_entry *e = &cat->entries[cat->count++];
    memcpy(e->name, name, len);
    e->name_len = (uint32_t)len;
    e->create_lsn = lsn;
    e->drop_lsn = UINT64_MAX;
    e->coll_off = coll_off;
    catalog_publish(r, off, old_cat, old_bytes);
    return 0;
}

int catalog_mark_dropped(shm_region *r, const char *name, size_t len, uint64_t lsn,
                         uint64_t *old_cat, size_t *old_bytes)
{
    int rc;
    uint64_t off;
    *old_cat = 0;
    *old_bytes = 0;
    shm_catalog *cat = catalog_copy(r, 0, 0, &off, &rc);
    if (cat == NULL)
        return rc;
    for (uint32_t i = 0; i < cat->count; i++) {
        shm_cat_entry *e = &cat->entries[i];
        if (e->drop_lsn == UINT64_MAX && e->name_len == len && memcmp(e->name, name, len) == 0)
            e->drop_lsn = lsn;
    }
    catalog_publish(r, off, old_cat, old_bytes);
    return 0;
}

int catalog_purge(shm_region *r, uint64_t lsn, uint64_t *old_cat, size_t *old_bytes)
{
    int rc;
    uint64_t off;
    *old_cat = 0;
    *old_bytes = 0;
    shm_catalog *cat = catalog_copy(r, 0, lsn, &off, &rc);
    if (cat == NULL)
        return rc;
    catalog_publish(r, off, old_cat, old_bytes);
    return 0;
}

void catalog_restore(shm_region *r, uint64_t old_cat, uint64_t *cur_cat, size_t *cur_bytes)
{
    shm_header *h = region_header(r);
    shm_catalog *cur = catalog_current(r);
    *cur_cat = atomic_load_explicit(&h->catalog_off, memory_order_relaxed);
    *cur_bytes = cur ? cur->alloc_size : 0;
    /* Pairs with the readers' acquire load of catalog_off.  The undone
     * catalog was reachable, so the caller retires it rather than frees it. */
    atomic_store_explicit(&h->catalog_off, old_cat, memory_order_release);
}
