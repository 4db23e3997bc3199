/*
 * engine.c - apply, publish, undo and reclaim over the data object.
 *
 * Every change made while applying a batch is recorded as a pending action
 * tagged with the batch's LSN:
 *   ACT_HEAD     a document's head moved from `old` to `new_off` (undo: put
 *                `old` back or mark the slot deleted; the new version was
 *                reachable, so it is retired, not freed)
 *   ACT_SUPERSEDE `old` stopped being the newest version (publish: retire
 *                it; undo: its end_lsn goes back to "newest")
 *   ACT_CATALOG  the catalog moved from `old` (publish: retire old; undo:
 *                restore old and retire the new one)
 *   ACT_RETIRE   a block to retire whatever happens (a grown table's old
 *                array)
 *   ACT_NEWCOLL  a collection created by this batch (undo: retire it)
 *   ACT_TOMB     a tombstone (publish: queue the slot's removal)
 *   ACT_DROP     a collection dropped (publish: queue its reclamation)
 * Publication walks the list forwards, undo walks it backwards.
 */
#include "engine.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "dotdb.h"
#include "dval.h"
#include "index.h"
#include "query.h"
#include "snap.h"
#include "update.h"
#include "wire.h"

enum act_kind { ACT_HEAD, ACT_SUPERSEDE, ACT_CATALOG, ACT_RETIRE, ACT_NEWCOLL, ACT_TOMB, ACT_DROP };

typedef struct action {
    uint64_t lsn;
    int kind;
    uint64_t coll_off;
    uint64_t old;      /* previous head / catalog / superseded version */
    uint64_t new_off;  /* new version / tombstone / dropped collection */
    size_t bytes;      /* size of the block to retire (old or new, per kind) */
    int64_t d_docs;    /* stats delta this action made (undo reverses) */
    int64_t d_bytes;
} action;

typedef struct deferred {
    uint64_t lsn;      /* the LSN that made it invisible */
    uint64_t coll_off;
    uint64_t off;      /* tombstone version, or 0 for a dropped collection */
} deferred;

struct engine {
    const dotdb_config *cfg;
    shm_region *r;
    uint64_t applied;
    uint64_t published;
    action *acts;
    size_t n_acts, cap_acts;
    deferred *defer;   /* FIFO by lsn */
    size_t n_defer, cap_defer, defer_head;
};

static int push_act(engine *e, const action *a)
{
    if (e->n_acts == e->cap_acts) {
        size_t cap = e->cap_acts ? e->cap_acts * 2 : 64;
        action *p = realloc(e->acts, cap * sizeof *p);
        if (p == NULL)
            return DOTDB_ENOMEM;
        e->acts = p;
        e->cap_acts = cap;
    }
    e->acts[e->n_acts++] = *a;
    return 0;
}

static int push_defer(engine *e, uint64_t lsn, uint64_t coll_off, uint64_t off)
{
    if (e->defer_head > 0 && e->defer_head == e->n_defer) {
        e->defer_head = e->n_defer = 0;
    }
    if (e->n_defer == e->cap_defer) {
        if (e->defer_head > e->cap_defer / 2) {
            memmove(e->defer, e->defer + e->defer_head,
                    (e->n_defer - e->defer_head) * sizeof *e->defer);
            e->n_defer -= e->defer_head;
            e->defer_head = 0;
        } else {
            size_t cap = e->cap_defer ? e->cap_defer * 2 : 64;
            deferred *p = realloc(e->defer, cap * sizeof *p);
            if (p == NULL)
                return DOTDB_ENOMEM;
            e->defer = p;
            e->cap_defer = cap;
        }
    }
    e->defer[e->n_defer++] = (deferred){lsn, coll_off, off};
    return 0;
}

int engine_create(const dotdb_config *cfg, uint64_t epoch, engine **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return DOTDB_ENOMEM;
    e->cfg = cfg;
    int rc = region_create(cfg->buffer_pool_size, cfg->max_size, epoch, &e->r, err, errlen);
    if (rc != 0) {
        free(e);
        return rc;
    }
    shm_header *h = region_header(e->r);
    atomic_store_explicit(&h->max_document_size, cfg->max_document_size, memory_order_relaxed);
    atomic_store_explicit(&h->max_depth, cfg->max_depth, memory_order_relaxed);
    uint64_t old;
    size_t old_bytes;
    /* An empty catalog, so readers always find one. */
    rc = catalog_purge(e->r, 0, &old, &old_bytes);
    if (rc != 0) {
        snprintf(err, errlen, "cannot allocate the catalog: %s", dotdb_strerror(rc));
        engine_destroy(e);
        return rc;
    }
    engine_set_base_lsn(e, 1);
    *out = e;
    return 0;
}

void engine_destroy(engine *e)
{
    if (e == NULL)
        return;
    region_destroy(e->r);
    free(e->acts);
    free(e->defer);
    free(e);
}

shm_region *engine_region(engine *e) { return e->r; }
uint64_t engine_applied_lsn(const engine *e) { return e->applied; }
uint64_t engine_published_lsn(const engine *e) { return e->published; }

void engine_set_base_lsn(engine *e, uint64_t lsn)
{
    assert(e->n_acts == 0);
    e->applied = e->published = lsn;
    /* seq_cst: pairs with the readers' validation load (readers.h). */
    atomic_store_explicit(&region_header(e->r)->commit_lsn, lsn, memory_order_seq_cst);
}

/* ---- applying one operation ---- */

typedef struct apply_ctx {
    engine *e;
    uint64_t lsn;
    uint64_t snapshot;
    char *err;
    size_t errlen;
    uint32_t opno;
    engine_out *out;  /* NULL: nothing to return */
    size_t log_start; /* op count position in out->log */
    int64_t now_ms;
    int docs_checked; /* engine_check_docs passed: documents are valid */
    const engine_doc_meta *meta; /* and what it found, per operation (or NULL) */
    size_t n_meta;
    shm_coll *last_coll; /* where the last document went (prefetch hint) */
} apply_ctx;

static shm_coll *coll_ptr(engine *e, const shm_cat_entry *ce)
{
    return region_ptr(e->r, ce->coll_off);
}

static int create_coll(apply_ctx *ax, const batch_op *op, shm_cat_entry **out)
{
    engine *e = ax->e;
    uint64_t coll_off, old_cat;
    size_t old_bytes;
    int rc = idx_coll_new(e->r, e->cfg->hash_bucket_count, ax->lsn, &coll_off);
    if (rc != 0)
        return rc;
    rc = catalog_add(e->r, op->coll, op->coll_len, ax->lsn, coll_off, &old_cat, &old_bytes);
    if (rc != 0) {
        shm_coll *c = region_ptr(e->r, coll_off);
        shm_table *t = region_ptr(e->r, atomic_load(&c->table_off));
        region_free(e->r, atomic_load(&c->table_off), idx_table_bytes(t));
        region_free(e->r, coll_off, sizeof(shm_coll));
        return rc;
    }
    if ((rc = push_act(e, &(action){.lsn = ax->lsn, .kind = ACT_NEWCOLL, .coll_off = coll_off})) ||
        (rc = push_act(e, &(action){.lsn = ax->lsn, .kind = ACT_CATALOG, .old = old_cat,
                                    .bytes = old_bytes})))
        return rc;
    *out = catalog_find_live(e->r, op->coll, op->coll_len);
    return 0;
}

static int check_conflict(apply_ctx *ax, const shm_cat_entry *ce, uint64_t head)
{
    if (ax->snapshot == 0)
        return 0;
    const shm_version *h = region_ptr(ax->e->r, head);
    /* A collection this very batch created (create_lsn == lsn) is no
     * conflict: the transaction's first write into a new collection. */
    if (ce->create_lsn > ax->snapshot && ce->create_lsn != ax->lsn) {
        snprintf(ax->err, ax->errlen,
                 "transaction conflict: collection \"%.*s\" was created after snapshot %" PRIu64,
                 (int)ce->name_len, ce->name, ax->snapshot);
        return DOTDB_ECONFLICT;
    }
    if (h && h->begin_lsn > ax->snapshot) {
        snprintf(ax->err, ax->errlen,
                 "transaction conflict: document \"%.*s\" in \"%.*s\" changed after snapshot %" PRIu64,
                 h ? (int)h->id_len : 0, h ? ver_id(h) : "", (int)ce->name_len, ce->name,
                 ax->snapshot);
        return DOTDB_ECONFLICT;
    }
    return 0;
}

/* Link a new version (doc, or a tombstone when doc == NULL) as the head;
 * hash is snap_id_hash(id). */
static int link_version_h(apply_ctx *ax, shm_cat_entry *ce, const char *id, size_t id_len,
                          uint64_t hash, size_t id_pos, const uint8_t *doc, size_t doc_len)
{
    engine *e = ax->e;
    shm_coll *c = coll_ptr(e, ce);
    uint64_t slot, head = idx_find_h(e->r, c, id, id_len, hash, &slot);
    int rc = check_conflict(ax, ce, head);
    if (rc != 0)
        return rc;
    size_t data_len = doc ? doc_len : id_len;
    uint64_t off = region_alloc(e->r, version_bytes(data_len), &rc);
    if (off == 0) {
        snprintf(ax->err, ax->errlen, "shared memory is full (memory.max_size %" PRIu64 " bytes)",
                 e->cfg->max_size);
        return rc;
    }
    shm_version *v = region_ptr(e->r, off);
    v->begin_lsn = ax->lsn;
    atomic_store_explicit(&v->end_lsn, UINT64_MAX, memory_order_relaxed);
    atomic_store_explicit(&v->prev_off, head, memory_order_relaxed);
    v->doc_len = doc ? (uint32_t)doc_len : 0;
    v->alloc_size = (uint32_t)version_bytes(data_len);
    v->id_pos = doc ? (uint32_t)id_pos : 0;
    v->id_len = (uint16_t)id_len;
    v->flags = doc ? 0 : VER_TOMBSTONE;
    memcpy(v->data, doc ? (const void *)doc : (const void *)id, data_len);

    uint64_t old_table;
    size_t old_table_bytes;
    rc = idx_set_head(e->r, c, slot, off, hash, &old_table, &old_table_bytes);
    if (rc != 0) {
        region_free(e->r, off, v->alloc_size); /* never linked */
        snprintf(ax->err, ax->errlen, "shared memory is full while growing the index");
        return rc;
    }
    const shm_version *hv = region_ptr(e->r, head);
    int was_live = hv && !(hv->flags & VER_TOMBSTONE);
    action a = {.lsn = ax->lsn, .kind = ACT_HEAD, .coll_off = ce->coll_off, .old = head,
                .new_off = off, .bytes = v->alloc_size};
    a.d_docs = (doc ? 1 : 0) - (was_live ? 1 : 0);
    a.d_bytes = (int64_t)(doc ? doc_len : 0) - (int64_t)(was_live ? hv->doc_len : 0);
    atomic_fetch_add_explicit(&c->live_docs, (uint64_t)a.d_docs, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->live_bytes, (uint64_t)a.d_bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->versions, 1, memory_order_relaxed);
    atomic_store_explicit(&c->modified_lsn, ax->lsn, memory_order_relaxed);
    if (old_table &&
        (rc = push_act(e, &(action){.lsn = ax->lsn, .kind = ACT_RETIRE, .old = old_table,
                                    .bytes = old_table_bytes})))
        return rc;
    if ((rc = push_act(e, &a)) != 0)
        return rc;
    if (head) {
        shm_version *old = region_ptr(e->r, head);
        atomic_store_explicit(&old->end_lsn, ax->lsn, memory_order_release);
        rc = push_act(e, &(action){.lsn = ax->lsn, .kind = ACT_SUPERSEDE, .coll_off = ce->coll_off,
                                   .old = head, .new_off = off, .bytes = old->alloc_size});
        if (rc != 0)
            return rc;
    }
    if (!doc)
        rc = push_act(e, &(action){.lsn = ax->lsn, .kind = ACT_TOMB, .coll_off = ce->coll_off,
                                   .new_off = off});
    return rc;
}

static int link_version(apply_ctx *ax, shm_cat_entry *ce, const char *id, size_t id_len,
                        size_t id_pos, const uint8_t *doc, size_t doc_len)
{
    return link_version_h(ax, ce, id, id_len, snap_id_hash(id, id_len), id_pos, doc, doc_len);
}

static int op_write_doc(apply_ctx *ax, const batch_op *op)
{
    engine *e = ax->e;
    const char *id;
    size_t id_len;
    if (op->doc_len > e->cfg->max_document_size) {
        snprintf(ax->err, ax->errlen, "document of %zu bytes exceeds limits.max_document_size (%" PRIu64 ")",
                 op->doc_len, e->cfg->max_document_size);
        return DOTDB_ETOOBIG;
    }
    int rc = 0;
    const engine_doc_meta *m = ax->meta && ax->opno < ax->n_meta ? &ax->meta[ax->opno] : NULL;
    if (m && m->id_len == 0)
        m = NULL;
    if (m) {
        /* engine_check_docs found it in these very bytes */
        id = (const char *)op->doc + m->id_pos;
        id_len = m->id_len;
    } else if (ax->docs_checked) {
        /* validated by engine_check_docs: the id is a string of 1..255 */
        codec_val v;
        codec_obj_get((codec_val){op->doc, op->doc_len}, "id", 2, &v);
        codec_as_string(v, &id, &id_len);
    } else {
        rc = codec_validate_doc_lim(op->doc, op->doc_len, (int)e->cfg->max_depth,
                                    (uint32_t)e->cfg->max_fields, &id, &id_len, ax->err,
                                    ax->errlen);
    }
    if (rc != 0)
        return rc;
    if (op->id_len && (op->id_len != id_len || memcmp(op->id, id, id_len) != 0)) {
        snprintf(ax->err, ax->errlen, "the document's id \"%.*s\" differs from \"%.*s\"",
                 (int)id_len, id, (int)op->id_len, op->id);
        return DOTDB_EBADID;
    }
    shm_cat_entry *ce = catalog_find_live(e->r, op->coll, op->coll_len);
    if (ce == NULL) {
        if (op->kind == BOP_UPDATE) {
            snprintf(ax->err, ax->errlen, "collection \"%.*s\" does not exist", (int)op->coll_len,
                     op->coll);
            return DOTDB_ENOCOLL;
        }
        if ((rc = create_coll(ax, op, &ce)) != 0)
            return rc;
    }
    if (op->kind == BOP_UPDATE) {
        uint64_t slot, head = idx_find(e->r, coll_ptr(e, ce), id, id_len, &slot);
        const shm_version *hv = region_ptr(e->r, head);
        if (hv == NULL || (hv->flags & VER_TOMBSTONE)) {
            snprintf(ax->err, ax->errlen, "document \"%.*s\" not found in collection \"%.*s\"",
                     (int)id_len, id, (int)op->coll_len, op->coll);
            return DOTDB_ENOTFOUND;
        }
    }
    ax->last_coll = coll_ptr(e, ce);
    return link_version_h(ax, ce, id, id_len, m ? m->hash : snap_id_hash(id, id_len),
                          (size_t)(id - (const char *)op->doc), op->doc, op->doc_len);
}

static int op_delete_or_check(apply_ctx *ax, const batch_op *op)
{
    engine *e = ax->e;
    shm_cat_entry *ce = catalog_find_live(e->r, op->coll, op->coll_len);
    if (ce == NULL) {
        snprintf(ax->err, ax->errlen, "collection \"%.*s\" does not exist", (int)op->coll_len,
                 op->coll);
        return op->kind == BOP_CHECK && ax->snapshot ? DOTDB_ECONFLICT : DOTDB_ENOCOLL;
    }
    uint64_t slot, head = idx_find(e->r, coll_ptr(e, ce), op->id, op->id_len, &slot);
    if (op->kind == BOP_CHECK)
        return check_conflict(ax, ce, head);
    const shm_version *hv = region_ptr(e->r, head);
    if (hv == NULL || (hv->flags & VER_TOMBSTONE)) {
        int rc = check_conflict(ax, ce, head);
        if (rc != 0)
            return rc;
        snprintf(ax->err, ax->errlen, "document \"%.*s\" not found in collection \"%.*s\"",
                 (int)op->id_len, op->id, (int)op->coll_len, op->coll);
        return DOTDB_ENOTFOUND;
    }
    return link_version(ax, ce, op->id, op->id_len, 0, NULL, 0);
}

static int op_collection(apply_ctx *ax, const batch_op *op)
{
    engine *e = ax->e;
    shm_cat_entry *ce = catalog_find_live(e->r, op->coll, op->coll_len);
    if (op->kind == BOP_CREATE_COLL) {
        if (ce != NULL) {
            snprintf(ax->err, ax->errlen, "collection \"%.*s\" already exists", (int)op->coll_len,
                     op->coll);
            return DOTDB_EEXISTS;
        }
        return create_coll(ax, op, &ce);
    }
    if (ce == NULL) {
        snprintf(ax->err, ax->errlen, "collection \"%.*s\" does not exist", (int)op->coll_len,
                 op->coll);
        return DOTDB_ENOCOLL;
    }
    uint64_t coll_off = ce->coll_off, old_cat;
    size_t old_bytes;
    int rc = catalog_mark_dropped(e->r, op->coll, op->coll_len, ax->lsn, &old_cat, &old_bytes);
    if (rc != 0)
        return rc;
    if ((rc = push_act(e, &(action){.lsn = ax->lsn, .kind = ACT_CATALOG, .old = old_cat,
                                    .bytes = old_bytes})))
        return rc;
    return push_act(e, &(action){.lsn = ax->lsn, .kind = ACT_DROP, .coll_off = coll_off});
}

/* ---- derived operations: updates by operators and by filter ---- */

/* Record one derived op's outcome in the reply (wire.h). */
static int reply_add(apply_ctx *ax, uint64_t matched, uint64_t modified, const char *id,
                     size_t id_len)
{
    dbuf *r = &ax->out->reply;
    int rc = dbuf_put_u64(r, matched);
    if (rc == 0)
        rc = dbuf_put_u64(r, modified);
    if (rc == 0)
        rc = dbuf_put_u16(r, (uint16_t)id_len);
    if (rc == 0)
        rc = dbuf_append(r, id, id_len);
    return rc;
}

/* Store `doc` (built here, validated like any client document, I9) as the
 * new head for its id, and record it in the resolved batch as a PUT. */
static int put_resolved(apply_ctx *ax, shm_cat_entry *ce, const batch_op *op, const uint8_t *doc,
                        size_t len, const char **id_out, size_t *id_len_out)
{
    engine *e = ax->e;
    const char *id;
    size_t id_len;
    if (len > e->cfg->max_document_size) {
        snprintf(ax->err, ax->errlen, "the updated document of %zu bytes exceeds "
                 "limits.max_document_size (%" PRIu64 ")", len, e->cfg->max_document_size);
        return DOTDB_ETOOBIG;
    }
    int rc = codec_validate_doc_lim(doc, len, (int)e->cfg->max_depth,
                                    (uint32_t)e->cfg->max_fields, &id, &id_len, ax->err,
                                    ax->errlen);
    if (rc != 0)
        return rc;
    rc = link_version(ax, ce, id, id_len, (size_t)(id - (const char *)doc), doc, len);
    if (rc != 0)
        return rc;
    batch_op put = {.kind = BOP_PUT, .coll = op->coll, .coll_len = op->coll_len, .id = id,
                    .id_len = id_len, .doc = doc, .doc_len = len};
    if (id_out) {
        *id_out = id;
        *id_len_out = id_len;
    }
    return batch_add(&ax->out->log, ax->log_start, &put);
}

/* Offsets of the live versions of collection ce that match q, at the
 * engine's newest state (this batch's earlier ops included).  Collected
 * before anything changes, so an update never meets its own output. */
static int collect_matches(apply_ctx *ax, shm_cat_entry *ce, const qfilter *q, uint64_t **out,
                           size_t *n_out)
{
    engine *e = ax->e;
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    const char *id;
    size_t id_len;
    const uint8_t *base = region_base(e->r);
    const shm_coll *c = coll_ptr(e, ce);
    const shm_version *one = NULL;
    snap_iter it;
    int by_id = qfilter_id_eq(q, &id, &id_len);
    if (by_id)
        one = snap_lookup(base, c, ax->lsn, id, id_len);
    else
        snap_iter_init(&it, base, c, ax->lsn);
    for (;;) {
        const shm_version *ver = by_id ? one : snap_iter_next(&it);
        one = NULL;
        if (ver == NULL)
            break;
        if (!qfilter_match(q, (codec_val){ver->data, ver->doc_len}))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            uint64_t *p = realloc(v, ncap * sizeof *p);
            if (p == NULL) {
                free(v);
                return DOTDB_ENOMEM;
            }
            v = p;
            cap = ncap;
        }
        v[n++] = (uint64_t)((const uint8_t *)ver - base);
    }
    *out = v;
    *n_out = n;
    return 0;
}

/* The encoded {"id": id} an upsert by id starts from. */
static int seed_with_id(const qfilter *q, const char *id, size_t id_len, dbuf *out)
{
    dbuf seed;
    dbuf_init(&seed);
    int rc = q ? qfilter_seed(q, &seed) : 0;
    dval d = dval_object();
    if (rc == 0 && seed.len)
        rc = dval_from_codec((codec_val){seed.data, seed.len}, &d);
    if (rc == 0 && dval_obj_get(&d, "id", 2) == NULL) {
        dval idv;
        rc = dval_string(id, id_len, &idv);
        if (rc == 0)
            rc = dval_obj_set(&d, "id", 2, &idv);
    }
    if (rc == 0)
        rc = dval_encode(&d, out);
    dval_free(&d);
    dbuf_free(&seed);
    return rc;
}

/*
 * BOP_MODIFY (one document by id), BOP_UPDATE_MANY and BOP_DELETE_MANY:
 * evaluated here, inside the write path, on the newest state, so that
 * concurrent read-modify-write from many processes loses nothing.
 */
static int op_derived(apply_ctx *ax, const batch_op *op)
{
    engine *e = ax->e;
    int depth = (int)e->cfg->max_depth;
    codec_limits lim = {.max_size = e->cfg->max_document_size, .max_depth = depth};
    codec_val fv = {NULL, 0}, uv = {NULL, 0};
    qfilter *q = NULL;
    upd_spec *u = NULL;
    uint64_t *hits = NULL;
    size_t nhits = 0;
    uint64_t matched = 0, modified = 0;
    const char *up_id = "";
    size_t up_len = 0;
    dbuf nd;
    dbuf_init(&nd);
    int rc = 0;

    if (op->kind == BOP_UPDATE_MANY) {
        /* doc_len < 4 must fail here: doc_len - 4 would wrap around and
         * let a filter length reach past the batch. */
        if (op->doc_len < 4 || ld_u32(op->doc) > op->doc_len - 4) {
            snprintf(ax->err, ax->errlen, "malformed update-many operation");
            return DOTDB_EPROTO;
        }
        uint32_t flen = ld_u32(op->doc);
        fv = (codec_val){op->doc + 4, flen};
        uv = (codec_val){op->doc + 4 + flen, op->doc_len - 4 - flen};
    } else if (op->kind == BOP_DELETE_MANY) {
        fv = (codec_val){op->doc, op->doc_len};
    } else {
        uv = (codec_val){op->doc, op->doc_len};
    }
    if (fv.p && (rc = codec_validate(fv.p, fv.len, depth, ax->err, ax->errlen)) == 0)
        rc = qfilter_compile(fv, &q, ax->err, ax->errlen);
    if (rc == 0 && uv.p && (rc = codec_validate(uv.p, uv.len, depth, ax->err, ax->errlen)) == 0)
        rc = update_compile(uv, &u, ax->err, ax->errlen);
    if (rc != 0)
        goto out;

    shm_cat_entry *ce = catalog_find_live(e->r, op->coll, op->coll_len);
    if (ce == NULL && op->kind == BOP_MODIFY && !(op->flags & BOP_F_UPSERT)) {
        snprintf(ax->err, ax->errlen, "collection \"%.*s\" does not exist", (int)op->coll_len,
                 op->coll);
        rc = DOTDB_ENOCOLL;
        goto out;
    }
    if (ce) {
        if (op->kind == BOP_MODIFY) {
            const shm_version *v = snap_lookup(region_base(e->r), coll_ptr(e, ce), ax->lsn,
                                               op->id, op->id_len);
            if (v) {
                hits = malloc(sizeof *hits);
                if (hits == NULL) {
                    rc = DOTDB_ENOMEM;
                    goto out;
                }
                hits[nhits++] = (uint64_t)((const uint8_t *)v - region_base(e->r));
            }
        } else if ((rc = collect_matches(ax, ce, q, &hits, &nhits)) != 0) {
            goto out;
        }
    }
    for (size_t i = 0; i < nhits; i++) {
        const shm_version *v = region_ptr(e->r, hits[i]);
        matched++;
        if (op->kind == BOP_DELETE_MANY) {
            batch_op del = {.kind = BOP_DELETE, .coll = op->coll, .coll_len = op->coll_len,
                            .id = ver_id(v), .id_len = v->id_len};
            if ((rc = batch_add(&ax->out->log, ax->log_start, &del)) != 0 ||
                (rc = link_version(ax, ce, ver_id(v), v->id_len, 0, NULL, 0)) != 0)
                goto out;
            modified++;
            continue;
        }
        int changed = 0;
        nd.len = 0;
        rc = update_apply(u, (codec_val){v->data, v->doc_len}, ax->now_ms, &lim, &nd, &changed,
                          ax->err, ax->errlen);
        if (rc == 0 && changed)
            rc = put_resolved(ax, ce, op, nd.data, nd.len, NULL, NULL);
        if (rc != 0)
            goto out;
        modified += changed != 0;
    }
    if (nhits == 0 && op->kind == BOP_MODIFY && !(op->flags & BOP_F_UPSERT)) {
        snprintf(ax->err, ax->errlen, "document \"%.*s\" not found in collection \"%.*s\"",
                 (int)op->id_len, op->id, (int)op->coll_len, op->coll);
        rc = DOTDB_ENOTFOUND;
        goto out;
    }
    if (nhits == 0 && (op->flags & BOP_F_UPSERT)) {
        if (op->id_len == 0) {
            snprintf(ax->err, ax->errlen, "an upsert needs an id for the new document");
            rc = DOTDB_EBADID;
            goto out;
        }
        dbuf seed;
        dbuf_init(&seed);
        int changed = 0;
        rc = seed_with_id(q, op->id, op->id_len, &seed);
        if (rc == DOTDB_EINVAL)
            snprintf(ax->err, ax->errlen, "upsert: the filter's equality conditions cannot "
                     "make a document (conflicting paths such as \"a\" and \"a.b\")");
        if (rc == 0) {
            nd.len = 0;
            rc = update_apply(u, (codec_val){seed.data, seed.len}, ax->now_ms, &lim, &nd,
                              &changed, ax->err, ax->errlen);
        }
        dbuf_free(&seed);
        if (rc == 0 && ce == NULL)
            rc = create_coll(ax, op, &ce);
        /* up_id: the id actually stored (the filter may have fixed it);
         * it points into nd, which lives until the reply is written. */
        if (rc == 0)
            rc = put_resolved(ax, ce, op, nd.data, nd.len, &up_id, &up_len);
        if (rc != 0)
            goto out;
    }
    rc = reply_add(ax, matched, modified, up_id, up_len);
out:
    dbuf_free(&nd);
    free(hits);
    if (q)
        qfilter_free(q);
    if (u)
        update_free(u);
    return rc;
}


static int apply_op(apply_ctx *ax, const batch_op *op)
{
    if (!name_is_valid(op->coll, op->coll_len)) {
        snprintf(ax->err, ax->errlen, "invalid collection name \"%.*s\" (expected 1 to 64 of "
                 "A-Z a-z 0-9 _ . -, not starting with . or -)",
                 (int)(op->coll_len > 80 ? 80 : op->coll_len), op->coll);
        return DOTDB_EBADNAME;
    }
    if (op->id_len > DOTDB_ID_MAX ||
        ((op->kind == BOP_DELETE || op->kind == BOP_CHECK || op->kind == BOP_MODIFY) &&
                                      op->id_len == 0)) {
        snprintf(ax->err, ax->errlen, "id must be a string of 1 to %d bytes", DOTDB_ID_MAX);
        return DOTDB_EBADID;
    }
    switch (op->kind) {
    case BOP_PUT:
    case BOP_UPDATE:
        return op_write_doc(ax, op);
    case BOP_MODIFY:
    case BOP_UPDATE_MANY:
    case BOP_DELETE_MANY:
        return op_derived(ax, op);
    case BOP_DELETE:
    case BOP_CHECK:
        return op_delete_or_check(ax, op);
    default:
        return op_collection(ax, op);
    }
}

/* Does the batch hold derived operations?  (A pass over the headers.) */
static int batch_has_derived(const uint8_t *batch, size_t len)
{
    batch_iter it;
    batch_op op;
    char err[8];
    if (batch_iter_init(&it, batch, len, err, sizeof err) != 0)
        return 0;
    while (batch_next(&it, &op, err, sizeof err) == 1)
        if (bop_is_derived(op.kind))
            return 1;
    return 0;
}

/* Apply the operations of `it` (first_op: the index of its first in the
 * batch, for messages); err names the one that failed. */
static int apply_ops(apply_ctx *ax, batch_iter *it, uint32_t first_op, char *err, size_t errlen)
{
    engine *e = ax->e;
    batch_op op;
    int rc;
    while ((rc = batch_next(it, &op, err, errlen)) == 1) {
        char inner[400];
        inner[0] = 0; /* not = "": that would clear 400 bytes per operation */
        ax->err = inner;
        ax->errlen = sizeof inner;
        /* A batch of new ids waits on one table miss per document: start
         * the one APPLY_AHEAD documents on now (same collection assumed). */
        enum { APPLY_AHEAD = 8 };
        if (ax->last_coll && ax->opno + APPLY_AHEAD < ax->n_meta &&
            ax->meta[ax->opno + APPLY_AHEAD].id_len)
            idx_prefetch(e->r, ax->last_coll, ax->meta[ax->opno + APPLY_AHEAD].hash);
        rc = apply_op(ax, &op);
        if (rc == 0 && ax->out && !bop_is_derived(op.kind))
            rc = batch_add(&ax->out->log, ax->log_start, &op);
        if (rc != 0) {
            if (it->nops > 1 || first_op > 0)
                snprintf(err, errlen, "operation %u: %s", first_op + ax->opno,
                         inner[0] ? inner : dotdb_strerror(rc));
            else
                snprintf(err, errlen, "%s", inner[0] ? inner : dotdb_strerror(rc));
            return rc;
        }
        ax->opno++;
    }
    return rc;
}

int engine_apply_ex(engine *e, uint64_t lsn, uint64_t snapshot_lsn, const uint8_t *batch,
                    size_t len, engine_out *out, char *err, size_t errlen)
{
    assert(lsn == e->applied + 1);
    batch_iter it;
    engine_out local = {0};
    apply_ctx ax = {.e = e, .lsn = lsn, .snapshot = snapshot_lsn, .err = err, .errlen = errlen,
                    .docs_checked = out ? out->docs_checked : 0};
    if (ax.docs_checked && out->meta) {
        ax.meta = out->meta;
        ax.n_meta = out->n_meta;
    }
    int rc = batch_iter_init(&it, batch, len, err, errlen);
    if (rc != 0)
        return rc;
    if (batch_has_derived(batch, len)) {
        ax.out = out ? out : &local;
        ax.out->is_resolved = 1;
        ax.now_ms = out ? out->now_ms : 0;
        ax.out->log.len = ax.out->reply.len = 0;
        if ((rc = batch_begin(&ax.out->log, &ax.log_start)) != 0)
            return rc;
    }
    rc = apply_ops(&ax, &it, 0, err, errlen);
    dbuf_free(&local.log);
    dbuf_free(&local.reply);
    if (rc != 0) {
        e->applied = lsn; /* so engine_undo covers this batch's actions */
        engine_undo(e, lsn);
        return rc;
    }
    e->applied = lsn;
    return 0;
}

int engine_apply_part(engine *e, const uint8_t *frag, size_t len, const engine_doc_meta *meta,
                      size_t n_meta, uint32_t first_op, char *err, size_t errlen)
{
    batch_iter it;
    batch_op op;
    int rc = batch_iter_init(&it, frag, len, err, errlen);
    if (rc != 0)
        return rc;
    while ((rc = batch_next(&it, &op, err, errlen)) == 1)
        if (op.kind != BOP_PUT) {
            snprintf(err, errlen, "not a fragment of plain puts");
            return DOTDB_EINVAL;
        }
    if (rc != 0 || (rc = batch_iter_init(&it, frag, len, err, errlen)) != 0)
        return rc;
    apply_ctx ax = {.e = e, .lsn = e->applied + 1, .docs_checked = 1, .meta = meta,
                    .n_meta = n_meta};
    return apply_ops(&ax, &it, first_op, err, errlen);
}

uint64_t engine_commit_part(engine *e) { return ++e->applied; }

static int push_meta(dbuf *meta, engine_doc_meta m, char *err, size_t errlen)
{
    if (meta == NULL || dbuf_append(meta, &m, sizeof m) == 0)
        return 0;
    snprintf(err, errlen, "coordinator out of memory");
    return DOTDB_ENOMEM;
}

int engine_check_docs(engine *e, const uint8_t *batch, size_t len, uint32_t first_op, dbuf *meta,
                      char *err, size_t errlen)
{
    batch_iter it;
    batch_op op;
    int rc = batch_iter_init(&it, batch, len, err, errlen);
    if (rc != 0)
        return rc;
    for (uint32_t n = first_op; (rc = batch_next(&it, &op, err, errlen)) == 1; n++) {
        if (op.kind != BOP_PUT && op.kind != BOP_UPDATE) {
            if ((rc = push_meta(meta, (engine_doc_meta){0}, err, errlen)) != 0)
                return rc;
            continue;
        }
        char inner[400];
        inner[0] = 0;
        const char *id;
        size_t id_len;
        if (op.doc_len > e->cfg->max_document_size) {
            snprintf(inner, sizeof inner,
                     "document of %zu bytes exceeds limits.max_document_size (%" PRIu64 ")",
                     op.doc_len, e->cfg->max_document_size);
            rc = DOTDB_ETOOBIG;
        } else {
            rc = codec_validate_doc_lim(op.doc, op.doc_len, (int)e->cfg->max_depth,
                                        (uint32_t)e->cfg->max_fields, &id, &id_len,
                                        inner, sizeof inner);
        }
        if (rc != 0) {
            snprintf(err, errlen, "operation %u: %s", n, inner[0] ? inner : dotdb_strerror(rc));
            return rc;
        }
        if (meta != NULL &&
            (rc = push_meta(meta, (engine_doc_meta){.hash = snap_id_hash(id, id_len),
                                                    .id_pos = (uint32_t)((const uint8_t *)id - op.doc),
                                                    .id_len = (uint32_t)id_len},
                            err, errlen)) != 0)
            return rc;
    }
    return rc;
}

int engine_apply(engine *e, uint64_t lsn, uint64_t snapshot_lsn, const uint8_t *batch,
                 size_t len, char *err, size_t errlen)
{
    return engine_apply_ex(e, lsn, snapshot_lsn, batch, len, NULL, err, errlen);
}

/* ---- loading a checkpoint ---- */

int engine_load_collection(engine *e, const char *name, size_t len, uint64_t create_lsn,
                           uint64_t modified_lsn, uint64_t expect_docs, char *err, size_t errlen)
{
    assert(e->n_acts == 0 && e->applied == e->published);
    if (!name_is_valid(name, len) || create_lsn == 0 || create_lsn > e->applied) {
        snprintf(err, errlen, "collection \"%.*s\": invalid name or creation LSN %" PRIu64,
                 (int)(len > 64 ? 64 : len), name, create_lsn);
        return DOTDB_ECORRUPT;
    }
    if (catalog_find_live(e->r, name, len) != NULL) {
        snprintf(err, errlen, "collection \"%.*s\" is listed twice", (int)len, name);
        return DOTDB_EEXISTS;
    }
    uint64_t nslots = e->cfg->hash_bucket_count;
    while (nslots < 2 * expect_docs && nslots < (UINT64_C(1) << 40))
        nslots <<= 1;
    uint64_t coll_off, old_cat;
    size_t old_bytes;
    int rc = idx_coll_new(e->r, nslots, create_lsn, &coll_off);
    if (rc == 0) {
        rc = catalog_add(e->r, name, len, create_lsn, coll_off, &old_cat, &old_bytes);
        if (rc == 0)
            (void)region_retire(e->r, RETIRE_BLOCK, old_cat, old_bytes, 0);
    }
    if (rc != 0) {
        snprintf(err, errlen, "shared memory is full while loading collection \"%.*s\"",
                 (int)len, name);
        return rc;
    }
    shm_coll *c = region_ptr(e->r, coll_off);
    atomic_store_explicit(&c->modified_lsn, modified_lsn, memory_order_relaxed);
    return 0;
}

int engine_load_doc(engine *e, const char *name, size_t len, const uint8_t *doc, size_t doc_len,
                    char *err, size_t errlen)
{
    const char *id;
    size_t id_len;
    int rc = codec_validate_doc(doc, doc_len, (int)e->cfg->max_depth, &id, &id_len, err, errlen);
    if (rc != 0)
        return DOTDB_ECORRUPT;
    shm_cat_entry *ce = catalog_find_live(e->r, name, len);
    if (ce == NULL) {
        snprintf(err, errlen, "collection \"%.*s\" was not loaded", (int)len, name);
        return DOTDB_ENOCOLL;
    }
    shm_coll *c = coll_ptr(e, ce);
    uint64_t slot;
    if (idx_find(e->r, c, id, id_len, &slot) != 0) {
        snprintf(err, errlen, "document \"%.*s\" appears twice", (int)id_len, id);
        return DOTDB_ECORRUPT;
    }
    uint64_t keep_mod = atomic_load_explicit(&c->modified_lsn, memory_order_relaxed);
    apply_ctx ax = {.e = e, .lsn = e->applied, .err = err, .errlen = errlen};
    rc = link_version(&ax, ce, id, id_len, (size_t)(id - (const char *)doc), doc, doc_len);
    atomic_store_explicit(&c->modified_lsn, keep_mod, memory_order_relaxed);
    /* Nothing to undo at start-up (a failure aborts it): drop the actions,
     * retiring what they superseded (a grown table). */
    engine_publish(e, e->applied);
    return rc;
}

/* ---- publish / undo ---- */

void engine_publish(engine *e, uint64_t lsn)
{
    assert(lsn <= e->applied && lsn >= e->published);
    size_t i = 0;
    for (; i < e->n_acts && e->acts[i].lsn <= lsn; i++) {
        action *a = &e->acts[i];
        switch (a->kind) {
        case ACT_SUPERSEDE:
            (void)region_retire(e->r, RETIRE_VERSION, a->old, a->bytes, a->new_off);
            break;
        case ACT_CATALOG:
        case ACT_RETIRE:
            (void)region_retire(e->r, RETIRE_BLOCK, a->old, a->bytes, 0);
            break;
        case ACT_TOMB:
            (void)push_defer(e, a->lsn, a->coll_off, a->new_off);
            break;
        case ACT_DROP:
            (void)push_defer(e, a->lsn, a->coll_off, 0);
            break;
        default:
            break;
        }
    }
    if (i > 0) { /* e->acts is NULL until the first action: no arithmetic on it */
        memmove(e->acts, e->acts + i, (e->n_acts - i) * sizeof *e->acts);
        e->n_acts -= i;
    }
    e->published = lsn;
    /* seq_cst: pairs with the readers' validation load and orders this
     * publication before any later reclaim scan (readers.h). */
    atomic_store_explicit(&region_header(e->r)->commit_lsn, lsn, memory_order_seq_cst);
}

static void retire_collection(engine *e, uint64_t coll_off);

static void undo_one(engine *e, action *a)
{
    shm_coll *c = region_ptr(e->r, a->coll_off);
    switch (a->kind) {
    case ACT_HEAD: {
        shm_version *v = region_ptr(e->r, a->new_off);
        if (a->old) {
            uint64_t slot;
            shm_table *t = region_ptr(e->r, atomic_load(&c->table_off));
            idx_find(e->r, c, ver_id(v), v->id_len, &slot);
            assert(slot != UINT64_MAX);
            uint64_t w = (TABLE_TAG(snap_id_hash(ver_id(v), v->id_len)) << TABLE_OFF_BITS) | a->old;
            atomic_store_explicit(&t->slots[slot], w, memory_order_release);
        } else {
            idx_remove_if_head(e->r, c, ver_id(v), v->id_len, a->new_off);
        }
        atomic_fetch_sub_explicit(&c->live_docs, (uint64_t)a->d_docs, memory_order_relaxed);
        atomic_fetch_sub_explicit(&c->live_bytes, (uint64_t)a->d_bytes, memory_order_relaxed);
        atomic_fetch_sub_explicit(&c->versions, 1, memory_order_relaxed);
        (void)region_retire(e->r, RETIRE_BLOCK, a->new_off, a->bytes, 0);
        break;
    }
    case ACT_SUPERSEDE: {
        shm_version *old = region_ptr(e->r, a->old);
        atomic_store_explicit(&old->end_lsn, UINT64_MAX, memory_order_release);
        break;
    }
    case ACT_CATALOG: {
        uint64_t cur;
        size_t cur_bytes;
        catalog_restore(e->r, a->old, &cur, &cur_bytes);
        (void)region_retire(e->r, RETIRE_BLOCK, cur, cur_bytes, 0);
        break;
    }
    case ACT_RETIRE:
        (void)region_retire(e->r, RETIRE_BLOCK, a->old, a->bytes, 0);
        break;
    case ACT_NEWCOLL:
        retire_collection(e, a->coll_off);
        break;
    default: /* ACT_TOMB, ACT_DROP: nothing happened yet */
        break;
    }
}

void engine_undo(engine *e, uint64_t from_lsn)
{
    while (e->n_acts && e->acts[e->n_acts - 1].lsn >= from_lsn) {
        undo_one(e, &e->acts[e->n_acts - 1]);
        e->n_acts--;
    }
    if (from_lsn <= e->applied)
        e->applied = from_lsn - 1;
}

/* ---- reclamation ---- */

/* Retire a collection that no snapshot can see: every version, the
 * table and the collection block. */
static void retire_collection(engine *e, uint64_t coll_off)
{
    shm_coll *c = region_ptr(e->r, coll_off);
    uint64_t toff = atomic_load_explicit(&c->table_off, memory_order_relaxed);
    shm_table *t = region_ptr(e->r, toff);
    for (uint64_t i = 0; i < t->nslots; i++) {
        uint64_t w = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (w == TABLE_EMPTY || w == TABLE_DELETED)
            continue;
        /* Older versions were retired when they were superseded; only the
         * heads are left to retire here. */
        shm_version *v = region_ptr(e->r, w & TABLE_OFF_MASK);
        (void)region_retire(e->r, RETIRE_BLOCK, w & TABLE_OFF_MASK, v->alloc_size, 0);
    }
    (void)region_retire(e->r, RETIRE_BLOCK, toff, idx_table_bytes(t), 0);
    (void)region_retire(e->r, RETIRE_BLOCK, coll_off, sizeof(shm_coll), 0);
}

void engine_reclaim(engine *e, uint64_t min_active)
{
    /* A deleted document's slot (and a dropped collection) can go once no
     * snapshot older than the delete remains: readers at or after it see
     * "absent" either way. */
    while (e->defer_head < e->n_defer) {
        deferred *d = &e->defer[e->defer_head];
        if (!(d->lsn <= min_active && d->lsn <= e->published))
            break;
        if (d->off) {
            shm_coll *c = region_ptr(e->r, d->coll_off);
            shm_version *t = region_ptr(e->r, d->off);
            uint64_t slot, head = idx_find(e->r, c, ver_id(t), t->id_len, &slot);
            if (head == d->off) {
                idx_remove_if_head(e->r, c, ver_id(t), t->id_len, d->off);
                atomic_fetch_sub_explicit(&c->versions, 1, memory_order_relaxed);
                (void)region_retire(e->r, RETIRE_BLOCK, d->off, t->alloc_size, 0);
            }
        } else {
            uint64_t old_cat;
            size_t old_bytes;
            if (catalog_purge(e->r, d->lsn, &old_cat, &old_bytes) != 0)
                break; /* out of memory: try again later */
            (void)region_retire(e->r, RETIRE_BLOCK, old_cat, old_bytes, 0);
            retire_collection(e, d->coll_off);
        }
        e->defer_head++;
    }
    if (e->defer_head == e->n_defer)
        e->defer_head = e->n_defer = 0;
    region_reclaim(e->r, min_active);
}

/* ---- statistics ---- */

static int coll_json(engine *e, const shm_cat_entry *ce, engine_json_extra extra, void *ctx,
                     dbuf *out)
{
    shm_coll *c = coll_ptr(e, ce);
    shm_table *t = region_ptr(e->r, atomic_load(&c->table_off));
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"name\":\"%.*s\",\"documents\":%" PRIu64 ",\"bytes\":%" PRIu64
                     ",\"versions\":%" PRIu64 ",\"index_slots\":%" PRIu64
                     ",\"created_lsn\":%" PRIu64,
                     (int)ce->name_len, ce->name, atomic_load(&c->live_docs),
                     atomic_load(&c->live_bytes), atomic_load(&c->versions), t->nslots,
                     ce->create_lsn);
    int rc = dbuf_append(out, buf, (size_t)n);
    if (rc == 0 && extra)
        rc = extra(ctx, ce->name, ce->name_len, out);
    return rc ? rc : dbuf_putc(out, '}');
}

int engine_stats_json(engine *e, const char *coll, size_t coll_len, dbuf *out)
{
    return engine_stats_json_ex(e, coll, coll_len, NULL, NULL, out);
}

int engine_stats_json_ex(engine *e, const char *coll, size_t coll_len, engine_json_extra extra,
                         void *ctx, dbuf *out)
{
    if (coll) {
        shm_cat_entry *ce = catalog_find_live(e->r, coll, coll_len);
        return ce ? coll_json(e, ce, extra, ctx, out) : DOTDB_ENOCOLL;
    }
    shm_catalog *cat = catalog_current(e->r);
    int rc = dbuf_putc(out, '[');
    int first = 1;
    for (uint32_t i = 0; rc == 0 && cat && i < cat->count; i++) {
        if (cat->entries[i].drop_lsn != UINT64_MAX)
            continue;
        if (!first)
            rc = dbuf_putc(out, ',');
        first = 0;
        if (rc == 0)
            rc = coll_json(e, &cat->entries[i], extra, ctx, out);
    }
    return rc ? rc : dbuf_putc(out, ']');
}

int engine_memory_json(engine *e, dbuf *out)
{
    region_stats st;
    region_get_stats(e->r, &st);
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"shm_size\":%" PRIu64 ",\"shm_max_size\":%" PRIu64 ",\"shm_used\":%" PRIu64
                     ",\"shm_in_use\":%" PRIu64 ",\"retired_bytes\":%" PRIu64
                     ",\"retired_blocks\":%" PRIu64 ",\"pending_actions\":%zu}",
                     st.size, st.max_size, st.top, st.in_use, st.retired, st.retired_items,
                     e->n_acts);
    return dbuf_append(out, buf, (size_t)n);
}
