/*
 * lockfree.c - the snapshot, publish and reclaim protocol on one mapping,
 * with threads instead of processes, so ThreadSanitizer can see every
 * access (it cannot see across processes).  scripts/test.sh builds and
 * runs this program under TSan; ctest runs it under ASan.  It is a plain
 * program, not a Criterion test: Criterion cannot start under TSan
 * (Snaipe/Criterion#274).
 *
 * The main thread plays the coordinator's loop thread with the real
 * engine (coordinator/engine.c, shm/region.c, shm/index.c): it applies
 * batches, publishes them in groups of 1 to 4 (engine_publish), undoes
 * some (engine_undo, as after a failed WAL write), and runs the reclaim
 * scan (rdr_page_min + the checkpoint pin, as min_active_snapshot() in
 * coordinator/server.c does) after every group and between applies.  The
 * collection starts with a 16-slot table and keeps inserting new ids, so
 * it grows again and again; it deletes ids (tombstones, deferred slot
 * removal); it drops and re-creates a second collection.  Memory is reused
 * at once (LIFO free lists), so a block freed too early is overwritten
 * while a reader still looks at it.
 *
 * Other threads read through the real read side (shm/readers.h,
 * shm/snap.h), each with its own reader slot:
 *   - short readers: point reads of every pair and of the rolling window,
 *     whole-collection scans, and reads of the dropped-and-recreated one;
 *   - a long reader: holds one snapshot while hundreds of batches are
 *     published and re-reads everything, which must not change;
 *   - a checkpoint thread: like worker/checkpoint.c, reads every
 *     collection of the catalog at an LSN the coordinator pinned
 *     (storage_pin(), coordinator/storage.h), with no reader slot of its
 *     own, slowly, while writes go on.
 *
 * Every document carries "sum" = XXH64 of its other fields and "v" = the
 * LSN that wrote it, so a torn, recycled or foreign version fails the
 * check; pairs are written together (one batch), the counter document "n"
 * names the live window of rolling ids, and "dn" the size of the dropped
 * collection: a snapshot that mixes two LSNs fails.  Values never go
 * backwards across one thread's snapshots.
 *
 *   lockfree_stress [BATCHES] [--bug ignore-slots|ignore-pin|off-by-one]
 * --bug breaks the coordinator's reclamation on purpose (see
 * docs/RELIABILITY.md); the run must then fail.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "codec.h"
#include "config.h"
#include "engine.h"
#include "readers.h"
#include "snap.h"
#include "wire.h"

#define NPAIRS 16      /* pairs "pNNa"/"pNNb", always written in one batch */
#define ROLL_LIVE 24   /* live rolling ids "rNNNNNN" (window lo..hi-1) */
#define DROP_DOCS 6    /* documents in each generation of collection "d" */
#define SHORT_READERS 4
#define MAX_PAD 160
#define LONG_SPAN 3000 /* LSNs a long snapshot stays open across, at most */

enum bug { BUG_NONE, BUG_IGNORE_SLOTS, BUG_IGNORE_PIN, BUG_OFF_BY_ONE };

typedef struct shared {
    engine *e;
    const uint8_t *base;
    shm_header *h;
    uint64_t map_size;
    rdr_page *page;
    _Atomic int stop;
    /* checkpoint hand-off: the coordinator stores the job's LSN (release)
     * after pinning it; the thread clears it and sets ck_done (release). */
    _Atomic uint64_t ck_job;
    _Atomic int ck_done;
    /* counters */
    _Atomic uint64_t point_snaps, scan_snaps, drop_snaps, docs_checked;
    _Atomic uint64_t long_snaps, long_rereads, long_span_max;
    _Atomic uint64_t ckpts, ckpt_docs, ckpt_span_max;
    _Atomic uint64_t bad;
    pthread_mutex_t msg_lock;
    char first_bad[512];
} shared;

/* Report a failed check (the first message is kept for the summary). */
static void fail(shared *sh, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (atomic_fetch_add(&sh->bad, 1) < 5)
        fprintf(stderr, "lockfree_stress: %s\n", msg);
    pthread_mutex_lock(&sh->msg_lock);
    if (sh->first_bad[0] == 0)
        snprintf(sh->first_bad, sizeof sh->first_bad, "%s", msg);
    pthread_mutex_unlock(&sh->msg_lock);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- documents: {"id","v","x","y","pad","sum"} ---- */

static uint64_t doc_sum(const char *id, size_t id_len, int64_t v, int64_t x, int64_t y,
                        const char *pad, size_t pad_len)
{
    XXH64_state_t *st = XXH64_createState();
    XXH64_reset(st, 0x646f7464625f6c66ull);
    XXH64_update(st, id, id_len);
    int64_t nums[3] = {v, x, y};
    XXH64_update(st, nums, sizeof nums);
    XXH64_update(st, pad, pad_len);
    uint64_t h = XXH64_digest(st);
    XXH64_freeState(st);
    return h >> 1; /* fits an int64 */
}

/* Append one document to batch b (BOP_PUT into coll). */
static void add_put(dbuf *b, size_t start, const char *coll, const char *id, uint64_t v,
                    int64_t x, int64_t y, int undone)
{
    char pad[MAX_PAD + 1];
    size_t pad_len;
    if (undone) {
        pad_len = (size_t)snprintf(pad, sizeof pad, "UNDONE");
    } else {
        pad_len = (size_t)((v * 7 + (uint64_t)strlen(id) * 13) % MAX_PAD);
        for (size_t i = 0; i < pad_len; i++)
            pad[i] = (char)('a' + (v + i) % 26);
        pad[pad_len] = 0;
    }
    uint64_t sum = doc_sum(id, strlen(id), (int64_t)v, x, y, pad, pad_len);
    char json[MAX_PAD + 256], err[256];
    int n = snprintf(json, sizeof json,
                     "{\"id\":\"%s\",\"v\":%" PRIu64 ",\"x\":%" PRId64 ",\"y\":%" PRId64
                     ",\"pad\":\"%s\",\"sum\":%" PRIu64 "}",
                     id, v, x, y, pad, sum);
    dbuf doc;
    dbuf_init(&doc);
    codec_limits lim = {CODEC_DEFAULT_MAX_SIZE, CODEC_DEFAULT_MAX_DEPTH};
    if (codec_from_json(json, (size_t)n, &lim, NULL, &doc, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "encode: %s\n", err);
        exit(2);
    }
    batch_op op = {.kind = BOP_PUT, .coll = coll, .coll_len = strlen(coll), .doc = doc.data,
                   .doc_len = doc.len};
    if (batch_add(b, start, &op) != 0)
        exit(2);
    dbuf_free(&doc);
}

static void add_simple(dbuf *b, size_t start, int kind, const char *coll, const char *id)
{
    batch_op op = {.kind = (uint8_t)kind, .coll = coll, .coll_len = strlen(coll), .id = id,
                   .id_len = id ? strlen(id) : 0};
    if (batch_add(b, start, &op) != 0)
        exit(2);
}

typedef struct docinfo {
    int64_t v, x, y;
} docinfo;

/*
 * Check one version seen at snapshot L: inside the mapping, a valid
 * document (validated first: a recycled block may hold anything), the id
 * it is filed under, "sum" matching, "v" the version's begin_lsn <= L, and
 * not the output of an undone batch.
 */
static int check_doc(shared *sh, const shm_version *ver, uint64_t L, const char *want_id,
                     size_t want_len, const char *who, docinfo *out)
{
    uint64_t off = (uint64_t)((const uint8_t *)ver - sh->base);
    if (off < SHM_HEADER_SIZE || off + sizeof *ver > sh->map_size ||
        ver->doc_len > sh->map_size - off - sizeof *ver) {
        fail(sh, "%s: version at offset %" PRIu64 " lies outside the mapping (doc_len %u)", who,
             off, ver->doc_len);
        return 0;
    }
    uint64_t begin = ver->begin_lsn;
    const char *id;
    size_t id_len;
    char err[200];
    if (codec_validate_doc(ver->data, ver->doc_len, 100, &id, &id_len, err, sizeof err) != 0) {
        fail(sh, "%s: torn or recycled version at offset %" PRIu64 " (snapshot %" PRIu64 "): %s",
             who, off, L, err);
        return 0;
    }
    codec_val d = {ver->data, ver->doc_len}, f;
    const char *pad = NULL;
    size_t pad_len = 0;
    int64_t v = -1, x = -1, y = -1, sum = -1;
    int ok = codec_obj_get(d, "v", 1, &f) && codec_as_int64(f, &v);
    ok = ok && codec_obj_get(d, "x", 1, &f) && codec_as_int64(f, &x);
    ok = ok && codec_obj_get(d, "y", 1, &f) && codec_as_int64(f, &y);
    ok = ok && codec_obj_get(d, "pad", 3, &f) && codec_as_string(f, &pad, &pad_len);
    ok = ok && codec_obj_get(d, "sum", 3, &f) && codec_as_int64(f, &sum);
    if (!ok || (uint64_t)sum != doc_sum(id, id_len, v, x, y, pad, pad_len)) {
        fail(sh, "%s: checksum mismatch in \"%.*s\" at snapshot %" PRIu64, who, (int)id_len, id, L);
        return 0;
    }
    if (want_id && (id_len != want_len || memcmp(id, want_id, id_len) != 0)) {
        fail(sh, "%s: asked for \"%.*s\", got \"%.*s\"", who, (int)want_len, want_id, (int)id_len,
             id);
        return 0;
    }
    if ((uint64_t)v != begin || begin > L) {
        fail(sh, "%s: \"%.*s\" written at %" PRId64 " in a version stamped %" PRIu64
             " seen at snapshot %" PRIu64, who, (int)id_len, id, v, begin, L);
        return 0;
    }
    if (pad_len == 6 && memcmp(pad, "UNDONE", 6) == 0) {
        fail(sh, "%s: \"%.*s\" from an undone batch is visible at %" PRIu64, who, (int)id_len, id, L);
        return 0;
    }
    atomic_fetch_add_explicit(&sh->docs_checked, 1, memory_order_relaxed);
    if (out)
        *out = (docinfo){v, x, y};
    return 1;
}

/* Point read of coll/id at L: 1 and *out when present, 0 when absent,
 * -1 after a failed check. */
static int get_doc(shared *sh, const shm_coll *c, uint64_t L, const char *id, const char *who,
                   docinfo *out)
{
    const shm_version *v = snap_lookup(sh->base, c, L, id, strlen(id));
    if (v == NULL)
        return 0;
    return check_doc(sh, v, L, id, strlen(id), who, out) ? 1 : -1;
}

static const shm_coll *find_coll(shared *sh, uint64_t L, const char *name)
{
    const shm_cat_entry *ce = snap_find_coll(sh->base, L, name, strlen(name));
    return ce ? (const shm_coll *)(sh->base + ce->coll_off) : NULL;
}

static void pair_id(char *buf, size_t len, int i, char side)
{
    snprintf(buf, len, "p%02d%c", i, side);
}

static void roll_id(char *buf, size_t len, int64_t i) { snprintf(buf, len, "r%06" PRId64, i); }

/* What one snapshot of collection "c" holds, gathered by point reads. */
typedef struct cview {
    int64_t pair_v[NPAIRS];
    int64_t lo, hi;
} cview;

/* Point reads of every pair (both halves at the same LSN) and of the
 * counter "n"; the rolling window must be exactly lo..hi-1. */
static int read_c_points(shared *sh, const shm_coll *c, uint64_t L, const char *who, cview *cv,
                         int window_probes)
{
    char a[16], b[16];
    docinfo da, db, dn;
    for (int i = 0; i < NPAIRS; i++) {
        pair_id(a, sizeof a, i, 'a');
        pair_id(b, sizeof b, i, 'b');
        int ra = get_doc(sh, c, L, a, who, &da), rb = get_doc(sh, c, L, b, who, &db);
        if (ra < 0 || rb < 0)
            return 0;
        if (ra == 0 || rb == 0 || da.v != db.v) {
            fail(sh, "%s: pair %d not written as one batch at snapshot %" PRIu64
                 " (a %s v%" PRId64 ", b %s v%" PRId64 ")", who, i, L, ra ? "present" : "absent",
                 ra ? da.v : 0, rb ? "present" : "absent", rb ? db.v : 0);
            return 0;
        }
        cv->pair_v[i] = da.v;
    }
    int rn = get_doc(sh, c, L, "n", who, &dn);
    if (rn <= 0) {
        if (rn == 0)
            fail(sh, "%s: counter document missing at %" PRIu64, who, L);
        return 0;
    }
    cv->lo = dn.x;
    cv->hi = dn.y;
    char r[32];
    for (int k = 0; k < window_probes + 2; k++) {
        int64_t i;
        if (k == 0)
            i = cv->lo - 1; /* deleted */
        else if (k == 1)
            i = cv->hi; /* not yet inserted */
        else
            i = cv->lo + (int64_t)(k - 2) * (cv->hi - cv->lo) / (window_probes ? window_probes : 1);
        if (i < 0 || (k >= 2 && i >= cv->hi))
            continue;
        roll_id(r, sizeof r, i);
        int rr = get_doc(sh, c, L, r, who, NULL);
        if (rr < 0)
            return 0;
        if (rr != (k >= 2)) {
            fail(sh, "%s: rolling id %s %s at snapshot %" PRIu64 " (window %" PRId64 "..%" PRId64
                 ")", who, r, rr ? "present" : "absent", L, cv->lo, cv->hi - 1);
            return 0;
        }
    }
    return 1;
}

/* Scan collection c at L: every document checked; returns the count, the
 * sum of "v" in *vsum, or -1 after a failed check. */
static int64_t scan_coll(shared *sh, const shm_coll *c, uint64_t L, const char *who,
                         uint64_t *vsum, int slow)
{
    snap_iter it;
    snap_iter_init(&it, sh->base, c, L);
    const shm_version *v;
    int64_t n = 0;
    uint64_t s = 0;
    docinfo di;
    while ((v = snap_iter_next(&it)) != NULL) {
        if (!check_doc(sh, v, L, NULL, 0, who, &di))
            return -1;
        s += (uint64_t)di.v;
        n++;
        if (slow && n % 8 == 0)
            sched_yield();
    }
    if (vsum)
        *vsum = s;
    return n;
}

/* The scan of "c" must hold the pairs, the window and "n". */
static int check_c_scan(shared *sh, const shm_coll *c, uint64_t L, const char *who, int slow)
{
    cview cv;
    if (!read_c_points(sh, c, L, who, &cv, 0))
        return 0;
    int64_t n = scan_coll(sh, c, L, who, NULL, slow);
    if (n < 0)
        return 0;
    int64_t want = 2 * NPAIRS + (cv.hi - cv.lo) + 1;
    if (n != want) {
        fail(sh, "%s: scan at %" PRIu64 " saw %" PRId64 " documents, the snapshot holds %" PRId64,
             who, L, n, want);
        return 0;
    }
    return 1;
}

/* Collection "d", if visible at L: exactly the generation "dn" names. */
static int check_d(shared *sh, uint64_t L, const char *who, int slow)
{
    const shm_coll *d = find_coll(sh, L, "d");
    if (d == NULL)
        return 1;
    docinfo dn;
    int r = get_doc(sh, d, L, "dn", who, &dn);
    if (r <= 0) {
        if (r == 0)
            fail(sh, "%s: collection d visible at %" PRIu64 " without its counter", who, L);
        return 0;
    }
    snap_iter it;
    snap_iter_init(&it, sh->base, d, L);
    const shm_version *v;
    int64_t n = 0;
    docinfo di;
    while ((v = snap_iter_next(&it)) != NULL) {
        if (!check_doc(sh, v, L, NULL, 0, who, &di))
            return 0;
        if (di.x != dn.x) {
            fail(sh, "%s: collection d at %" PRIu64 " mixes generations %" PRId64 " and %" PRId64,
                 who, L, di.x, dn.x);
            return 0;
        }
        n++;
        if (slow && n % 8 == 0)
            sched_yield();
    }
    if (n != dn.y + 1) {
        fail(sh, "%s: collection d at %" PRIu64 " has %" PRId64 " documents, expected %" PRId64,
             who, L, n, dn.y + 1);
        return 0;
    }
    return 1;
}

static _Atomic int next_slot;

static rdr_slot *claim_slot(shared *sh)
{
    return &sh->page->slots[atomic_fetch_add(&next_slot, 1) % RDR_SLOTS];
}

/* Short snapshots: point reads, scans and the dropped collection. */
static void *short_reader(void *arg)
{
    shared *sh = arg;
    rdr_slot *s = claim_slot(sh);
    char who[32];
    snprintf(who, sizeof who, "reader %d", (int)(s - sh->page->slots));
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)s;
    int64_t seen[NPAIRS] = {0}, seen_lo = 0;
    uint64_t last_L = 0;
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        uint64_t L = rdr_begin(s, sh->h);
        if (L < last_L)
            fail(sh, "%s: snapshot went back from %" PRIu64 " to %" PRIu64, who, last_L, L);
        last_L = L;
        const shm_coll *c = find_coll(sh, L, "c");
        int mode = (int)(rng_next(&rng) % 4);
        if (c == NULL) {
            fail(sh, "%s: collection c missing at %" PRIu64, who, L);
        } else if (mode <= 1) {
            cview cv;
            if (read_c_points(sh, c, L, who, &cv, 6)) {
                for (int i = 0; i < NPAIRS; i++) {
                    if (cv.pair_v[i] < seen[i])
                        fail(sh, "%s: pair %d went back from v%" PRId64 " to v%" PRId64, who, i,
                             seen[i], cv.pair_v[i]);
                    seen[i] = cv.pair_v[i];
                }
                if (cv.lo < seen_lo)
                    fail(sh, "%s: rolling window went back", who);
                seen_lo = cv.lo;
            }
            atomic_fetch_add_explicit(&sh->point_snaps, 1, memory_order_relaxed);
        } else if (mode == 2) {
            check_c_scan(sh, c, L, who, 0);
            atomic_fetch_add_explicit(&sh->scan_snaps, 1, memory_order_relaxed);
        } else {
            check_d(sh, L, who, 0);
            atomic_fetch_add_explicit(&sh->drop_snaps, 1, memory_order_relaxed);
        }
        rdr_end(s);
        /* Idle between snapshots, as a client is: the coordinator then
         * sees the slot at 0 and frees what this snapshot read, which is
         * where a missing release on rdr_end() would show. */
        sched_yield();
    }
    return NULL;
}

/* Long snapshots: one LSN held while the writer publishes hundreds of
 * batches; every re-read must give the same answer. */
static void *long_reader(void *arg)
{
    shared *sh = arg;
    rdr_slot *s = claim_slot(sh);
    const char *who = "long reader";
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        uint64_t L = rdr_begin(s, sh->h);
        const shm_coll *c = find_coll(sh, L, "c");
        cview first, again;
        uint64_t vsum0 = 0, vsum = 0;
        int64_t n0;
        if (c == NULL || !read_c_points(sh, c, L, who, &first, 4) ||
            (n0 = scan_coll(sh, c, L, who, &vsum0, 0)) < 0) {
            rdr_end(s);
            break;
        }
        /* Held for 400 re-reads or LONG_SPAN published LSNs, whichever
         * comes first: long enough to see the table grow and collections
         * come and go underneath, short enough that what it pins (every
         * superseded version and catalog since L) stays bounded. */
        for (int round = 0; round < 400 && !atomic_load_explicit(&sh->stop, memory_order_relaxed) &&
                            atomic_load_explicit(&sh->h->commit_lsn, memory_order_relaxed) - L < LONG_SPAN;
             round++) {
            sched_yield();
            if (!read_c_points(sh, c, L, who, &again, 4))
                break;
            if (memcmp(&first, &again, sizeof first) != 0)
                fail(sh, "%s: snapshot %" PRIu64 " changed while held", who, L);
            if (round % 16 == 0) {
                int64_t n = scan_coll(sh, c, L, who, &vsum, 0);
                if (n != n0 || vsum != vsum0)
                    fail(sh, "%s: scan of snapshot %" PRIu64 " changed while held", who, L);
                check_d(sh, L, who, 0);
            }
            atomic_fetch_add_explicit(&sh->long_rereads, 1, memory_order_relaxed);
        }
        uint64_t span = atomic_load(&sh->h->commit_lsn) - L;
        if (span > atomic_load(&sh->long_span_max))
            atomic_store(&sh->long_span_max, span);
        rdr_end(s);
        atomic_fetch_add_explicit(&sh->long_snaps, 1, memory_order_relaxed);
        /* Idle for a while: reclamation then runs with short snapshots
         * only, and frees what this one read right after its end. */
        uint64_t idle_from = atomic_load_explicit(&sh->h->commit_lsn, memory_order_relaxed);
        while (!atomic_load_explicit(&sh->stop, memory_order_relaxed) &&
               atomic_load_explicit(&sh->h->commit_lsn, memory_order_relaxed) - idle_from <
                   LONG_SPAN / 2)
            sched_yield();
    }
    return NULL;
}

/* The checkpoint job: every collection of the catalog at the pinned LSN,
 * read as worker/checkpoint.c does, with no reader slot. */
static void *checkpointer(void *arg)
{
    shared *sh = arg;
    const char *who = "checkpoint";
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        /* Pairs with the coordinator's release store of the job. */
        uint64_t L = atomic_load_explicit(&sh->ck_job, memory_order_acquire);
        if (L == 0) {
            sched_yield();
            continue;
        }
        /* Rounds over the whole catalog until LONG_SPAN LSNs were
         * published meanwhile (at most 8): the pin is held across many
         * batches, table grows and drops, but not for ever. */
        for (int round = 0; round < 8; round++) {
            uint64_t off = atomic_load_explicit(&sh->h->catalog_off, memory_order_acquire);
            const shm_catalog *cat = snap_at(sh->base, off);
            for (uint32_t i = 0; cat && i < cat->count; i++) {
                const shm_cat_entry *ce = &cat->entries[i];
                if (!(ce->create_lsn <= L && L < ce->drop_lsn))
                    continue;
                const shm_coll *c = (const shm_coll *)(sh->base + ce->coll_off);
                int64_t n = scan_coll(sh, c, L, who, NULL, 1);
                if (n > 0)
                    atomic_fetch_add_explicit(&sh->ckpt_docs, (uint64_t)n, memory_order_relaxed);
            }
            /* And the snapshot's invariants, still at the pinned LSN. */
            const shm_coll *c = find_coll(sh, L, "c");
            if (c)
                check_c_scan(sh, c, L, who, 1);
            check_d(sh, L, who, 1);
            if (atomic_load_explicit(&sh->h->commit_lsn, memory_order_relaxed) - L >= LONG_SPAN)
                break;
        }
        uint64_t span = atomic_load(&sh->h->commit_lsn) - L;
        if (span > atomic_load(&sh->ckpt_span_max))
            atomic_store(&sh->ckpt_span_max, span);
        atomic_fetch_add_explicit(&sh->ckpts, 1, memory_order_relaxed);
        atomic_store_explicit(&sh->ck_job, 0, memory_order_relaxed);
        /* Pairs with the coordinator's acquire load: every read above
         * happens before it drops the pin. */
        atomic_store_explicit(&sh->ck_done, 1, memory_order_release);
    }
    return NULL;
}

/* ---- the coordinator ---- */

typedef struct writer {
    shared *sh;
    enum bug bug;
    uint64_t rng;
    uint64_t pin;       /* storage_pin(): LSN of the running checkpoint */
    int ck_running;
    uint64_t ck_last;   /* published LSN when the last checkpoint started */
    int64_t lo, hi;     /* rolling window */
    int d_exists;
    int64_t d_gen;
    uint64_t batches, undone, groups, drops, grows_seen, reclaims;
    dbuf b;
    size_t start;
} writer;

static void w_begin(writer *w)
{
    w->b.len = 0;
    if (batch_begin(&w->b, &w->start) != 0)
        exit(2);
}

static uint64_t w_lsn(writer *w) { return engine_applied_lsn(w->sh->e) + 1; }

static void w_apply(writer *w)
{
    char err[512];
    uint64_t lsn = w_lsn(w);
    if (engine_apply(w->sh->e, lsn, 0, w->b.data, w->b.len, err, sizeof err) != 0) {
        fprintf(stderr, "apply at %" PRIu64 ": %s\n", lsn, err);
        exit(2);
    }
    w->batches++;
}

/* min_active_snapshot() of coordinator/server.c, with the injected bugs. */
static uint64_t w_min_active(writer *w)
{
    uint64_t min = UINT64_MAX;
    rdr_page_min(w->sh->page, &min);
    if (w->bug != BUG_IGNORE_PIN && w->pin && w->pin < min)
        min = w->pin;
    if (w->bug == BUG_IGNORE_SLOTS)
        min = UINT64_MAX;
    if (w->bug == BUG_OFF_BY_ONE && min != UINT64_MAX)
        min++; /* frees what was retired with tag == a reader's LSN */
    return min;
}

static void w_reclaim(writer *w)
{
    engine_reclaim(w->sh->e, w_min_active(w));
    w->reclaims++;
}

static void w_checkpoint(writer *w)
{
    shared *sh = w->sh;
    /* Pairs with the checkpoint thread's release store of ck_done. */
    if (w->ck_running && atomic_load_explicit(&sh->ck_done, memory_order_acquire)) {
        atomic_store_explicit(&sh->ck_done, 0, memory_order_relaxed);
        w->pin = 0; /* ckpt_finished(): the pin goes after the job is done */
        w->ck_running = 0;
    }
    /* A checkpoint now and then, with stretches of no pin in between. */
    if (!w->ck_running && engine_published_lsn(sh->e) - w->ck_last >= LONG_SPAN &&
        rng_next(&w->rng) % 16 == 0) {
        w->ck_last = engine_published_lsn(sh->e);
        w->pin = engine_published_lsn(sh->e); /* storage.c start(): pin first */
        w->ck_running = 1;
        /* Pairs with the checkpoint thread's acquire load of the job. */
        atomic_store_explicit(&sh->ck_job, w->pin, memory_order_release);
    }
}

/* One batch of the workload (applied, not yet published). */
static void w_one_batch(writer *w)
{
    char id[32], id2[32];
    uint64_t r = rng_next(&w->rng) % 100;
    w_begin(w);
    uint64_t lsn = w_lsn(w);
    if (r < 55) {
        /* a pair, as one batch */
        int i = (int)(rng_next(&w->rng) % NPAIRS);
        pair_id(id, sizeof id, i, 'a');
        pair_id(id2, sizeof id2, i, 'b');
        add_put(&w->b, w->start, "c", id, lsn, i, 0, 0);
        add_put(&w->b, w->start, "c", id2, lsn, i, 1, 0);
    } else if (r < 99 || !w->d_exists) {
        /* the rolling window: insert at hi, or delete at lo; new ids make
         * the table grow again and again, deletes leave tombstones */
        if (w->hi - w->lo < ROLL_LIVE || (w->hi - w->lo < 2 * ROLL_LIVE && r % 2)) {
            roll_id(id, sizeof id, w->hi);
            add_put(&w->b, w->start, "c", id, lsn, w->hi, 0, 0);
            w->hi++;
        } else {
            roll_id(id, sizeof id, w->lo);
            add_simple(&w->b, w->start, BOP_DELETE, "c", id);
            w->lo++;
        }
        add_put(&w->b, w->start, "c", "n", lsn, w->lo, w->hi, 0);
        if (!w->d_exists) {
            /* (re-)create collection d in this batch too */
            w->d_gen++;
            for (int k = 0; k < DROP_DOCS; k++) {
                snprintf(id2, sizeof id2, "d%d", k);
                add_put(&w->b, w->start, "d", id2, lsn, w->d_gen, k, 0);
            }
            add_put(&w->b, w->start, "d", "dn", lsn, w->d_gen, DROP_DOCS, 0);
            w->d_exists = 1;
        }
    } else {
        add_simple(&w->b, w->start, BOP_DROP_COLL, "d", NULL);
        w->d_exists = 0;
        w->drops++;
    }
    w_apply(w);
}

/* A batch applied and undone (as after a failed WAL write): its versions
 * were linked, so readers may hold them; they must never be visible. */
static void w_undone_batch(writer *w)
{
    char id[32], id2[32];
    int i = (int)(rng_next(&w->rng) % NPAIRS);
    w_begin(w);
    uint64_t lsn = w_lsn(w);
    pair_id(id, sizeof id, i, 'a');
    pair_id(id2, sizeof id2, i, 'b');
    add_put(&w->b, w->start, "c", id, lsn, i, 0, 1);
    roll_id(id, sizeof id, w->hi + 1000000); /* a new id: may grow the table */
    add_put(&w->b, w->start, "c", id, lsn, 0, 0, 1);
    add_put(&w->b, w->start, "c", id2, lsn, i, 1, 1);
    w_apply(w);
    engine_undo(w->sh->e, lsn);
    w->undone++;
}

static int check(int ok, const char *what, int *failed)
{
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    *failed += !ok;
    return ok;
}

int main(int argc, char **argv)
{
    long total = 20000;
    enum bug bug = BUG_NONE;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bug") == 0 && i + 1 < argc) {
            const char *b = argv[++i];
            bug = strcmp(b, "ignore-slots") == 0 ? BUG_IGNORE_SLOTS
                  : strcmp(b, "ignore-pin") == 0 ? BUG_IGNORE_PIN
                  : strcmp(b, "off-by-one") == 0 ? BUG_OFF_BY_ONE
                                                 : (fprintf(stderr, "unknown bug %s\n", b), exit(2), BUG_NONE);
        } else {
            total = atol(argv[i]);
        }
    }
    dotdb_config cfg;
    config_defaults(&cfg);
    cfg.buffer_pool_size = 8u << 20;
    cfg.max_size = 256u << 20;
    cfg.hash_bucket_count = 16;
    char err[256];
    static shared sh;
    pthread_mutex_init(&sh.msg_lock, NULL);
    if (engine_create(&cfg, 1, &sh.e, err, sizeof err) != 0) {
        fprintf(stderr, "engine_create: %s\n", err);
        return 2;
    }
    sh.base = region_base(engine_region(sh.e));
    sh.h = region_header(engine_region(sh.e));
    sh.map_size = cfg.max_size;
    sh.page = aligned_alloc(64, sizeof(rdr_page));
    memset(sh.page, 0, sizeof(rdr_page));

    writer w = {.sh = &sh, .bug = bug, .rng = 0x2545F4914F6CDD1Dull};
    dbuf_init(&w.b);
    /* LSN 2: every pair and the counter, before any reader starts. */
    w_begin(&w);
    uint64_t lsn = w_lsn(&w);
    char id[16];
    for (int i = 0; i < NPAIRS; i++) {
        pair_id(id, sizeof id, i, 'a');
        add_put(&w.b, w.start, "c", id, lsn, i, 0, 0);
        pair_id(id, sizeof id, i, 'b');
        add_put(&w.b, w.start, "c", id, lsn, i, 1, 0);
    }
    add_put(&w.b, w.start, "c", "n", lsn, 0, 0, 0);
    w_apply(&w);
    engine_publish(sh.e, lsn);

    pthread_t th[SHORT_READERS + 2];
    int nth = 0;
    for (int i = 0; i < SHORT_READERS; i++)
        pthread_create(&th[nth++], NULL, short_reader, &sh);
    pthread_create(&th[nth++], NULL, long_reader, &sh);
    pthread_create(&th[nth++], NULL, checkpointer, &sh);

    uint64_t max_slots = 0;
    while ((long)w.batches < total) {
        /* a group of 1 to 4 batches, published together */
        int group = 1 + (int)(rng_next(&w.rng) % 4);
        for (int g = 0; g < group; g++) {
            w_one_batch(&w);
            if (rng_next(&w.rng) % 4 == 0)
                w_reclaim(&w); /* the 50 ms timer may fire between applies */
        }
        if (rng_next(&w.rng) % 40 == 0)
            w_undone_batch(&w);
        engine_publish(sh.e, engine_applied_lsn(sh.e));
        w.groups++;
        w_checkpoint(&w);
        w_reclaim(&w);
        shm_coll *c = (shm_coll *)find_coll(&sh, engine_published_lsn(sh.e), "c");
        const shm_table *t = snap_at(sh.base, atomic_load(&c->table_off));
        if (t->nslots > max_slots) {
            max_slots = t->nslots;
            w.grows_seen++;
        }
        if (atomic_load(&sh.bad) && bug != BUG_NONE)
            break; /* caught: no need to go on */
    }
    atomic_store(&sh.stop, 1);
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);

    int failed = 0;
    char what[1400];
    snprintf(what, sizeof what,
             "%" PRIu64 " batches (%" PRIu64 " groups, %" PRIu64 " undone, %" PRIu64
             " collection drops, %" PRIu64 " reclaim scans, table grown to %" PRIu64 " slots)",
             w.batches, w.groups, w.undone, w.drops, w.reclaims, max_slots);
    check(w.groups > 0 && w.undone > 0 && w.drops > 0 && max_slots > 16, what, &failed);
    snprintf(what, sizeof what,
             "%" PRIu64 " point-read, %" PRIu64 " scan and %" PRIu64 " dropped-collection "
             "snapshots, %" PRIu64 " long snapshots (%" PRIu64 " re-reads, held across up to %"
             PRIu64 " LSNs), %" PRIu64 " pinned checkpoint reads (%" PRIu64 " documents, pinned "
             "across up to %" PRIu64 " LSNs): %" PRIu64 " documents checked, %" PRIu64 " bad%s%s",
             atomic_load(&sh.point_snaps), atomic_load(&sh.scan_snaps), atomic_load(&sh.drop_snaps),
             atomic_load(&sh.long_snaps), atomic_load(&sh.long_rereads),
             atomic_load(&sh.long_span_max), atomic_load(&sh.ckpts), atomic_load(&sh.ckpt_docs),
             atomic_load(&sh.ckpt_span_max), atomic_load(&sh.docs_checked), atomic_load(&sh.bad),
             sh.first_bad[0] ? "; first: " : "", sh.first_bad);
    check(atomic_load(&sh.bad) == 0 && atomic_load(&sh.point_snaps) > 0 &&
              atomic_load(&sh.scan_snaps) > 0 && atomic_load(&sh.long_snaps) > 0 &&
              atomic_load(&sh.ckpts) > 0,
          what, &failed);
    region_stats st;
    engine_reclaim(sh.e, UINT64_MAX);
    region_get_stats(engine_region(sh.e), &st);
    snprintf(what, sizeof what, "memory is reused: %" PRIu64 " bytes of shared memory used "
             "(%" PRIu64 " in use, %" PRIu64 " retired) after %" PRIu64 " batches",
             st.top, st.in_use, st.retired, w.batches);
    check(st.top < (16u << 20), what, &failed);
    dbuf_free(&w.b);
    free(sh.page);
    engine_destroy(sh.e);
    pthread_mutex_destroy(&sh.msg_lock);
    printf("%d passed, %d failed\n", 3 - failed, failed);
    return failed ? 1 : 0;
}
