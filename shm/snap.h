/*
 * snap.h - the read side of the data object: find a collection and a
 * document version as of a snapshot LSN.  Used by clients (zero-copy reads)
 * and by the coordinator (validation).  No system call, no lock, no
 * allocation: a point read is a catalog probe (hot in cache), one hash slot
 * and one version, usually two cache misses.
 *
 * Everything here assumes the caller holds a snapshot published in a reader
 * slot (or is the coordinator), so nothing reachable is freed underneath.
 */
#ifndef DOTDB_SNAP_H
#define DOTDB_SNAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "layout.h"

/* Not XXH_INLINE_ALL: the inlined XXH3 trips GCC's -Warray-bounds on
 * short fixed-size keys; the call costs a few ns. */
#include <xxhash.h>

static inline uint64_t snap_id_hash(const char *id, size_t len)
{
    return XXH3_64bits(id, len);
}

static inline const void *snap_at(const uint8_t *base, uint64_t off)
{
    return off ? base + off : NULL;
}

/* The id bytes of a version. */
static inline const char *ver_id(const shm_version *v)
{
    return (const char *)v->data + v->id_pos;
}

/* Catalog entry for `name` visible at lsn, or NULL. */
static inline const shm_cat_entry *snap_find_coll(const uint8_t *base, uint64_t lsn,
                                                  const char *name, size_t len)
{
    const shm_header *h = (const shm_header *)base;
    /* Pairs with the coordinator's release store of catalog_off. */
    uint64_t off = atomic_load_explicit(&((shm_header *)h)->catalog_off, memory_order_acquire);
    const shm_catalog *cat = snap_at(base, off);
    if (cat == NULL || len == 0 || len > sizeof cat->entries[0].name)
        return NULL;
    for (uint32_t i = 0; i < cat->count; i++) {
        const shm_cat_entry *e = &cat->entries[i];
        if (e->name_len == len && memcmp(e->name, name, len) == 0 && e->create_lsn <= lsn &&
            lsn < e->drop_lsn)
            return e;
    }
    return NULL;
}

/* First version in the chain from head visible at lsn (may be a
 * tombstone), or NULL. */
static inline const shm_version *snap_visible(const uint8_t *base, uint64_t head, uint64_t lsn)
{
    const shm_version *v = snap_at(base, head);
    while (v && v->begin_lsn > lsn) {
        /* Pairs with the coordinator's release store of prev_off. */
        uint64_t prev = atomic_load_explicit(&((shm_version *)v)->prev_off, memory_order_acquire);
        v = snap_at(base, prev);
    }
    return v;
}

/* The live version of document `id` at lsn, or NULL (absent or deleted). */
static inline const shm_version *snap_lookup(const uint8_t *base, const shm_coll *c,
                                             uint64_t lsn, const char *id, size_t id_len)
{
    uint64_t h = snap_id_hash(id, id_len);
    /* Pairs with the release store of a grown table. */
    uint64_t toff = atomic_load_explicit(&((shm_coll *)c)->table_off, memory_order_acquire);
    const shm_table *t = snap_at(base, toff);
    if (t == NULL)
        return NULL;
    uint64_t mask = t->nslots - 1;
    uint64_t tag = TABLE_TAG(h);
    for (uint64_t i = h & mask, n = 0; n < t->nslots; i = (i + 1) & mask, n++) {
        /* Pairs with the coordinator's release store of a slot word. */
        uint64_t w = atomic_load_explicit(&((shm_table *)t)->slots[i], memory_order_acquire);
        if (w == TABLE_EMPTY)
            return NULL;
        if (w == TABLE_DELETED || TABLE_TAG(w) != tag)
            continue;
        const shm_version *head = snap_at(base, w & TABLE_OFF_MASK);
        if (head->id_len != id_len || memcmp(ver_id(head), id, id_len) != 0)
            continue;
        const shm_version *v = snap_visible(base, w & TABLE_OFF_MASK, lsn);
        return (v && !(v->flags & VER_TOMBSTONE)) ? v : NULL;
    }
    return NULL;
}

/* Iterator over the live documents of a collection at lsn, in table order. */
typedef struct snap_iter {
    const uint8_t *base;
    const shm_table *t;
    uint64_t lsn;
    uint64_t pos;
} snap_iter;

static inline void snap_iter_init(snap_iter *it, const uint8_t *base, const shm_coll *c,
                                  uint64_t lsn)
{
    it->base = base;
    uint64_t toff = atomic_load_explicit(&((shm_coll *)c)->table_off, memory_order_acquire);
    it->t = snap_at(base, toff);
    it->lsn = lsn;
    it->pos = 0;
}

static inline const shm_version *snap_iter_next(snap_iter *it)
{
    while (it->t && it->pos < it->t->nslots) {
        uint64_t w =
            atomic_load_explicit(&((shm_table *)it->t)->slots[it->pos++], memory_order_acquire);
        if (w == TABLE_EMPTY || w == TABLE_DELETED)
            continue;
        const shm_version *v = snap_visible(it->base, w & TABLE_OFF_MASK, it->lsn);
        if (v && !(v->flags & VER_TOMBSTONE))
            return v;
    }
    return NULL;
}

#endif /* DOTDB_SNAP_H */
