/*
 * fuzz_engine.c - the coordinator's frame parser and request dispatcher:
 * wire frames (lib/wire.h) as they arrive on a session's socket, the batch
 * parser (batch_iter_init / batch_next) and engine_apply on an in-memory
 * engine (coordinator/engine.c), with no socket and no libev.
 *
 * Input: the bytes a client sends after its HELLO.  They are cut into
 * frames exactly as server.c's parse_frames does (24-byte header, length
 * checked against the frame limit, a cut-off frame waits for bytes that
 * never come), and dispatched as handle_frame does: BATCH goes through
 * the same checks as handle_batch and then engine_apply_ex at the next LSN
 * with the header's lsn as the optimistic snapshot; STATS to
 * engine_stats_json; PING, HELLO and the storage requests need the server
 * and are skipped; unknown opcodes are refused.  The frame's `flags`
 * field (0 on a real connection) steers the harness: bit 0 ends the
 * current group commit with a publication, bit 1 ends it as if the WAL
 * write had failed (engine_undo of the whole group), bit 2 runs a
 * reclamation pass afterwards, bit 3 marks a compact batch (below), bit 4
 * sends the batch as the server applies a batch in fragments as it comes:
 * every operation a fragment of its own, checked (engine_check_docs) and
 * applied ahead (engine_apply_part), then engine_commit_part; a failing
 * part is undone and the batch applied whole, as server.c does; with bit 5
 * too, the early part is undone after the last fragment, as when another
 * session's write overtakes it, and the batch is then applied whole.  The
 * remaining group is published at the end of the input.
 *
 * Compact batch: so that the fuzzer can change an operation without
 * keeping a dozen lengths consistent, the payload of a BATCH frame with
 * flags bit 3 is a list of [kind u8][flags u8][coll_len u8][id_len u8]
 * [doc_len u16] headers each followed by its bytes (lengths cut to what is
 * left), which the harness encodes with batch_add.  A kind with bit 7 set
 * carries JSON text as its doc, encoded by the harness: a document for
 * PUT / UPDATE (an id "g" is added when it has none), a value for MODIFY
 * and DELETE_MANY, "filter NUL update" for UPDATE_MANY.  The encoded
 * batch then goes through the same path as any other.
 *
 * Oracles:
 *   - a second engine (the "replica") replays exactly what would have been
 *     logged (the request, or its resolved batch for derived operations)
 *     when a group is published: every such record must apply there, and
 *     both engines must then hold the same documents (a digest over every
 *     collection name, creation LSN, id and document bytes) - this is the
 *     promise that WAL replay reproduces what was acknowledged;
 *   - after an undo, the primary's newest versions (not only the published
 *     ones) equal the replica's: undo leaves nothing behind;
 *   - a batch applied as it comes changes nothing a snapshot at the
 *     published or applied LSN sees until it is committed, and undoing its
 *     early part restores the newest versions exactly;
 *   - a resolved batch holds no derived operation and parses cleanly;
 *   - the reply of a batch with derived operations has one well-formed
 *     entry per derived operation;
 *   - statistics are valid JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "engine.h"
#include "fuzz_util.h"
#include "snap.h"
#include "wire.h"

#define NOW_MS 1700000000123LL
#define MAX_GROUP 64

typedef struct rec {
    uint8_t *p;
    size_t len;
} rec;

typedef struct harness {
    dotdb_config cfg, repl_cfg;
    engine *prim, *repl;
    rec group[MAX_GROUP];
    size_t ngroup;
    uint64_t group_first; /* first LSN of the unpublished group, 0: none */
} harness;

static uint64_t mix(uint64_t h) /* splitmix64 finaliser */
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* Order-independent digest of every live document visible at lsn. */
static uint64_t digest(engine *e, uint64_t lsn, uint64_t *ndocs)
{
    shm_region *r = engine_region(e);
    const uint8_t *base = region_base(r);
    uint64_t off = atomic_load(&region_header(r)->catalog_off);
    const shm_catalog *cat = snap_at(base, off);
    uint64_t sum = 0;
    *ndocs = 0;
    for (uint32_t i = 0; cat && i < cat->count; i++) {
        const shm_cat_entry *ce = &cat->entries[i];
        if (!(ce->create_lsn <= lsn && lsn < ce->drop_lsn))
            continue;
        uint64_t nh = XXH64(ce->name, ce->name_len, 0);
        sum += mix(nh ^ ce->create_lsn);
        snap_iter it;
        snap_iter_init(&it, base, snap_at(base, ce->coll_off), lsn);
        const shm_version *v;
        while ((v = snap_iter_next(&it)) != NULL) {
            FUZZ_CHECK(codec_validate_doc(v->data, v->doc_len, 1000, NULL, NULL, NULL, 0) ==
                           DOTDB_OK,
                       "a stored document does not validate");
            sum += mix(nh + XXH64(v->data, v->doc_len, 1));
            (*ndocs)++;
        }
    }
    return sum;
}

static void compare(harness *h, uint64_t prim_lsn, const char *when)
{
    uint64_t np, nr;
    uint64_t dp = digest(h->prim, prim_lsn, &np);
    uint64_t dr = digest(h->repl, engine_published_lsn(h->repl), &nr);
    FUZZ_CHECK(dp == dr && np == nr, "%s: primary (%llu docs) and replica (%llu docs) differ",
               when, (unsigned long long)np, (unsigned long long)nr);
}

static void reclaim(harness *h)
{
    engine_reclaim(h->prim, UINT64_MAX);
    engine_reclaim(h->repl, UINT64_MAX);
}

static void drop_group(harness *h)
{
    for (size_t i = 0; i < h->ngroup; i++)
        free(h->group[i].p);
    h->ngroup = 0;
    h->group_first = 0;
}

static void publish(harness *h)
{
    if (h->group_first == 0)
        return;
    engine_publish(h->prim, engine_applied_lsn(h->prim));
    char err[512];
    for (size_t i = 0; i < h->ngroup; i++) {
        uint64_t lsn = engine_applied_lsn(h->repl) + 1;
        int rc = engine_apply(h->repl, lsn, 0, h->group[i].p, h->group[i].len, err, sizeof err);
        if (rc == DOTDB_ENOSPC) { /* as recovery does */
            engine_reclaim(h->repl, UINT64_MAX);
            rc = engine_apply(h->repl, lsn, 0, h->group[i].p, h->group[i].len, err, sizeof err);
        }
        FUZZ_CHECK(rc == DOTDB_OK, "an acknowledged batch does not replay: %s (%d)", err, rc);
        engine_publish(h->repl, lsn);
    }
    FUZZ_CHECK(engine_published_lsn(h->prim) == engine_published_lsn(h->repl),
               "LSNs diverged");
    drop_group(h);
    compare(h, engine_published_lsn(h->prim), "after publication");
}

static void undo(harness *h)
{
    if (h->group_first == 0)
        return;
    engine_undo(h->prim, h->group_first);
    FUZZ_CHECK(engine_applied_lsn(h->prim) == engine_published_lsn(h->prim),
               "undo left applied %llu > published %llu",
               (unsigned long long)engine_applied_lsn(h->prim),
               (unsigned long long)engine_published_lsn(h->prim));
    drop_group(h);
    compare(h, UINT64_MAX - 1, "after undo");
}

static void check_reply(const uint8_t *req, size_t len, const dbuf *reply)
{
    batch_iter it;
    batch_op op;
    char err[256];
    size_t derived = 0, pos = 0, entries = 0;
    FUZZ_CHECK(batch_iter_init(&it, req, len, err, sizeof err) == 0, "request reparse");
    while (batch_next(&it, &op, err, sizeof err) == 1)
        derived += bop_is_derived(op.kind);
    while (pos < reply->len) {
        FUZZ_CHECK(reply->len - pos >= 18, "reply entry cut off");
        uint64_t matched = ld_u64(reply->data + pos), modified = ld_u64(reply->data + pos + 8);
        uint16_t idl = ld_u16(reply->data + pos + 16);
        FUZZ_CHECK(modified <= matched, "modified %llu > matched %llu",
                   (unsigned long long)modified, (unsigned long long)matched);
        FUZZ_CHECK(idl <= DOTDB_ID_MAX && reply->len - pos - 18 >= idl, "reply id overruns");
        pos += 18 + idl;
        entries++;
    }
    FUZZ_CHECK(entries == derived, "%zu reply entries for %zu derived operations", entries,
               derived);
}

static void check_resolved(const dbuf *log)
{
    batch_iter it;
    batch_op op;
    char err[256];
    FUZZ_CHECK(batch_iter_init(&it, log->data, log->len, err, sizeof err) == 0,
               "resolved batch: %s", err);
    int rc;
    while ((rc = batch_next(&it, &op, err, sizeof err)) == 1)
        FUZZ_CHECK(!bop_is_derived(op.kind), "resolved batch holds a derived operation");
    FUZZ_CHECK(rc == 0, "resolved batch: %s", err);
}

static void stats(harness *h, const uint8_t *p, size_t len)
{
    dbuf out;
    dbuf_init(&out);
    int rc = len ? engine_stats_json(h->prim, (const char *)p, len, &out)
                 : engine_stats_json(h->prim, NULL, 0, &out);
    if (rc == DOTDB_OK) {
        dbuf enc;
        dbuf_init(&enc);
        char err[256];
        FUZZ_CHECK(codec_value_from_json((const char *)out.data, out.len, NULL, &enc, err,
                                         sizeof err) == DOTDB_OK,
                   "stats are not JSON (%s): %.*s", err, (int)out.len, (const char *)out.data);
        dbuf_free(&enc);
    } else {
        FUZZ_CHECK(rc == DOTDB_ENOCOLL, "stats rc %d", rc);
    }
    out.len = 0;
    FUZZ_CHECK(engine_memory_json(h->prim, &out) == DOTDB_OK, "memory stats");
    dbuf_free(&out);
}

/* Encode a compact batch (see the top of the file) into b. */
static void compact_batch(const uint8_t *p, size_t n, dbuf *b)
{
    size_t start, pos = 0;
    FUZZ_CHECK(batch_begin(b, &start) == 0, "alloc");
    while (n - pos >= 6) {
        const uint8_t *h = p + pos;
        size_t lens[3] = {h[2], h[3], ld_u16(h + 4)};
        pos += 6;
        const uint8_t *part[3];
        for (int i = 0; i < 3; i++) {
            if (lens[i] > n - pos)
                lens[i] = n - pos;
            part[i] = p + pos;
            pos += lens[i];
        }
        batch_op op = {.kind = h[0] & 0x7f, .flags = h[1], .coll = (const char *)part[0],
                       .coll_len = lens[0], .id = (const char *)part[1], .id_len = lens[1],
                       .doc = part[2], .doc_len = lens[2]};
        dbuf enc;
        dbuf_init(&enc);
        if (h[0] & 0x80) {
            const char *text = (const char *)part[2];
            size_t tlen = lens[2];
            int rc;
            if (op.kind == BOP_PUT || op.kind == BOP_UPDATE) {
                rc = codec_from_json(text, tlen, NULL, "g", &enc, NULL, NULL, 0);
            } else if (op.kind == BOP_UPDATE_MANY) {
                const char *nul = memchr(text, 0, tlen);
                size_t flen = nul ? (size_t)(nul - text) : tlen;
                rc = dbuf_put_u32(&enc, 0);
                if (rc == 0)
                    rc = codec_value_from_json(text, flen, NULL, &enc, NULL, 0);
                if (rc == 0) {
                    st_u32(enc.data, (uint32_t)(enc.len - 4));
                    rc = nul ? codec_value_from_json(nul + 1, tlen - flen - 1, NULL, &enc, NULL, 0)
                             : DOTDB_EJSON;
                }
            } else {
                rc = codec_value_from_json(text, tlen, NULL, &enc, NULL, 0);
            }
            if (rc == 0) {
                op.doc = enc.data;
                op.doc_len = enc.len;
            } else {
                op.doc_len = 0;
            }
        }
        FUZZ_CHECK(batch_add(b, start, &op) == 0, "batch_add");
        dbuf_free(&enc);
    }
}

/* server.c's apply_ahead on batch p[0..len) as fragments of one operation
 * each (flags: the frame's).  Returns 1 when it was committed at `lsn`, 0
 * when the early part was undone and the batch is to be applied whole. */
static int batch_ahead(harness *h, const uint8_t *p, size_t len, unsigned flags, uint64_t lsn)
{
    batch_iter it;
    batch_op op;
    char err[512];
    if (batch_iter_init(&it, p, len, err, sizeof err) != 0)
        return 0;
    uint64_t n0, newest = digest(h->prim, UINT64_MAX - 1, &n0);
    uint64_t pub = engine_published_lsn(h->prim), app = engine_applied_lsn(h->prim);
    uint64_t n1, seen_pub = digest(h->prim, pub, &n1), n2, seen_app = digest(h->prim, app, &n2);
    dbuf frag, meta;
    dbuf_init(&frag);
    dbuf_init(&meta);
    int ok = 1, rc = 0;
    uint32_t k = 0;
    while (ok && (rc = batch_next(&it, &op, err, sizeof err)) == 1) {
        size_t start;
        frag.len = meta.len = 0;
        FUZZ_CHECK(batch_begin(&frag, &start) == 0 && batch_add(&frag, start, &op) == 0, "alloc");
        ok = engine_check_docs(h->prim, frag.data, frag.len, k, &meta, err, sizeof err) == 0 &&
             engine_apply_part(h->prim, frag.data, frag.len, (const engine_doc_meta *)meta.data,
                               meta.len / sizeof(engine_doc_meta), k, err, sizeof err) == 0;
        FUZZ_CHECK(engine_applied_lsn(h->prim) == app, "a part moved the applied LSN");
        k++;
    }
    ok = ok && rc == 0 && k > 0 && !(flags & 32u);
    uint64_t m;
    FUZZ_CHECK(digest(h->prim, pub, &m) == seen_pub && m == n1 &&
                   digest(h->prim, app, &m) == seen_app && m == n2,
               "a batch applied as it comes is visible before its commit");
    if (ok) {
        FUZZ_CHECK(engine_commit_part(h->prim) == lsn, "commit_part LSN");
    } else {
        engine_undo(h->prim, app + 1);
        FUZZ_CHECK(engine_applied_lsn(h->prim) == app, "undo of an early part moved the LSN");
        FUZZ_CHECK(digest(h->prim, UINT64_MAX - 1, &m) == newest && m == n0,
                   "undoing an early part left something behind");
    }
    dbuf_free(&frag);
    dbuf_free(&meta);
    return ok;
}

static void batch(harness *h, const wire_hdr *hd, const uint8_t *p, engine_out *out)
{
    char err[512];
    if (hd->len < 4 || ld_u32(p) == 0)
        return; /* "empty batch" */
    if (h->ngroup == MAX_GROUP)
        publish(h);
    uint64_t lsn = engine_applied_lsn(h->prim) + 1;
    out->now_ms = NOW_MS;
    out->is_resolved = 0;
    out->reply.len = 0;
    int rc = (hd->flags & 16u) && hd->lsn == 0 && batch_ahead(h, p, hd->len, hd->flags, lsn)
                 ? DOTDB_OK
                 : engine_apply_ex(h->prim, lsn, hd->lsn, p, hd->len, out, err, sizeof err);
    if (getenv("FUZZ_DEBUG"))
        fprintf(stderr, "engine: batch at LSN %llu: %d %s\n", (unsigned long long)lsn, rc,
                rc ? err : "");
    if (rc != DOTDB_OK) {
        FUZZ_CHECK(rc < 0, "rc %d", rc);
        FUZZ_CHECK(engine_applied_lsn(h->prim) == lsn - 1, "a failed batch consumed its LSN");
        return;
    }
    FUZZ_CHECK(engine_applied_lsn(h->prim) == lsn, "applied LSN");
    const uint8_t *logp = p;
    size_t logn = hd->len;
    if (out->is_resolved) {
        check_resolved(&out->log);
        check_reply(p, hd->len, &out->reply);
        logp = out->log.data;
        logn = out->log.len;
    } else {
        FUZZ_CHECK(out->reply.len == 0, "a plain batch got a reply payload");
    }
    rec *r = &h->group[h->ngroup++];
    r->p = malloc(logn ? logn : 1);
    FUZZ_CHECK(r->p != NULL, "alloc");
    memcpy(r->p, logp, logn);
    r->len = logn;
    if (h->group_first == 0)
        h->group_first = lsn;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    harness h;
    memset(&h, 0, sizeof h);
    config_defaults(&h.cfg);
    h.cfg.buffer_pool_size = 256 * 1024;
    h.cfg.max_size = 4 * 1024 * 1024;
    char err[512];
    FUZZ_CHECK(engine_create(&h.cfg, 1, &h.prim, err, sizeof err) == DOTDB_OK, "%s", err);
    /* The replica is larger: it never holds the primary's undone batches. */
    h.repl_cfg = h.cfg;
    h.repl_cfg.max_size = 4 * h.cfg.max_size;
    FUZZ_CHECK(engine_create(&h.repl_cfg, 2, &h.repl, err, sizeof err) == DOTDB_OK, "%s", err);
    engine_out out;
    memset(&out, 0, sizeof out);
    dbuf_init(&out.log);
    dbuf_init(&out.reply);

    uint64_t max_frame = h.cfg.max_document_size + 64u * 1024u * 1024u;
    if (max_frame > WIRE_MAX_FRAME)
        max_frame = WIRE_MAX_FRAME;
    size_t pos = 0;
    while (size - pos >= WIRE_HDR_SIZE) {
        wire_hdr hd;
        wire_hdr_get(data + pos, &hd);
        if (hd.len > max_frame)
            break; /* ETOOBIG, the session closes */
        if (size - pos - WIRE_HDR_SIZE < hd.len)
            break; /* waits for the rest */
        const uint8_t *p = data + pos + WIRE_HDR_SIZE;
        switch (hd.op) {
        case WIRE_OP_BATCH:
            if (hd.flags & 8u) {
                dbuf b;
                dbuf_init(&b);
                compact_batch(p, hd.len, &b);
                wire_hdr cb = hd;
                cb.len = (uint32_t)b.len;
                batch(&h, &cb, b.data, &out);
                dbuf_free(&b);
            } else {
                batch(&h, &hd, p, &out);
            }
            break;
        case WIRE_OP_STATS:
            stats(&h, p, hd.len);
            break;
        default:
            break;
        }
        if (hd.flags & 1u)
            publish(&h);
        else if (hd.flags & 2u)
            undo(&h);
        if (hd.flags & 4u)
            reclaim(&h);
        pos += WIRE_HDR_SIZE + hd.len;
    }
    publish(&h);
    reclaim(&h);
    compare(&h, engine_published_lsn(h.prim), "at the end");
    drop_group(&h);
    dbuf_free(&out.log);
    dbuf_free(&out.reply);
    engine_destroy(h.prim);
    engine_destroy(h.repl);
    return 0;
}
