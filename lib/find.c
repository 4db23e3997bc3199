/*
 * find.c - cursors, counting and explain: a compiled filter (query.h) run
 * in place on the binary documents in shared memory, no copy, no JSON
 * parsing and no system call per document.
 *
 * Plans.  A filter that pins "id" to one string is a primary-index lookup
 * (IDLOOKUP); anything else is a scan of the collection's hash table in
 * slot order (COLLSCAN).  Secondary indexes and a cost-based choice come
 * with the indexing work.
 *
 * Parallel scans.  A table of at least PAR_MIN_SLOTS slots is scanned in
 * rounds: each round gives each of the handle's query_threads threads one
 * contiguous range of CHUNK_SLOTS slots; every thread collects the offsets
 * of its matching versions, and the round's results are the ranges'
 * results concatenated in slot order.  So the output is exactly what one
 * thread would produce, in the same order, whatever the thread count.  A
 * cursor without sort streams round by round (memory: one round of
 * offsets); with sort it collects every match (8 bytes each, the documents
 * stay in shared memory), sorts them stably, then streams.  The snapshot
 * (reader slot) is held from the first document to dotdb_cursor_close().
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agg.h"
#include "client.h"
#include "query.h"
#include "snap.h"

#define CHUNK_SLOTS 32768u
#define PAR_MIN_SLOTS (2u * CHUNK_SLOTS)
#define MAX_QUERY_THREADS 64
/* Aggregation pushes each round through its (single-threaded) stages: a
 * round small enough to stay in L2 means the stages find the documents the
 * scan just touched still in cache. */
#define AGG_ROUND_SLOTS 4096u

/* Growable list of version offsets (relative to the mapping's base). */
typedef struct offlist {
    uint64_t *v;
    size_t n, cap;
} offlist;

static int offlist_push(offlist *l, uint64_t off)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        uint64_t *p = realloc(l->v, cap * sizeof *p);
        if (p == NULL)
            return DOTDB_ENOMEM;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = off;
    return 0;
}

struct dotdb_cursor {
    dotdb *db;
    conn *c;
    int slot;            /* reader slot holding the snapshot, -1 when none */
    uint64_t lsn;
    qfilter *q;
    qsort_spec *sort;
    qproj *proj;
    uint64_t skip, limit, returned;
    int threads;
    const shm_table *t;  /* the table as of the snapshot */
    uint64_t pos;        /* next slot to scan */
    int by_id;           /* IDLOOKUP plan */
    const char *id;      /* points into q */
    size_t id_len;
    const shm_coll *coll;
    offlist buf;         /* matches of the current round (or all, sorted) */
    size_t next;         /* next index into buf */
    int scanned;         /* every slot has been scanned */
    uint64_t examined;   /* documents looked at (explain) */
    dbuf out;            /* projected document of the last next_view */
    int is_agg;          /* results of an aggregation, in res */
    dbuf res;            /* encoded result documents back to back */
    size_t res_pos;
};

/* ---- argument parsing ---- */

static int parse_json_arg(dotdb *db, const char *what, const char *json, size_t max_size,
                          dbuf *b)
{
    codec_limits lim = {.max_size = max_size, .max_depth = CODEC_DEFAULT_MAX_DEPTH};
    char err[512] = "";
    int rc = codec_value_from_json(json, strlen(json), &lim, b, err, sizeof err);
    if (rc != 0)
        return cl_fail(db, rc, "%s: %s", what, err[0] ? err : dotdb_strerror(rc));
    if (codec_type((codec_val){b->data, b->len}) != DOTDB_T_OBJECT)
        return cl_fail(db, DOTDB_EINVAL, "%s must be a JSON object", what);
    return 0;
}

static int compile_filter(dotdb *db, const char *json, qfilter **out)
{
    dbuf b;
    dbuf_init(&b);
    int rc = parse_json_arg(db, "filter", json ? json : "{}", CODEC_DEFAULT_MAX_SIZE, &b);
    if (rc == 0) {
        char err[512] = "";
        rc = qfilter_compile((codec_val){b.data, b.len}, out, err, sizeof err);
        if (rc != 0)
            rc = cl_fail(db, rc, "filter: %s", err[0] ? err : dotdb_strerror(rc));
    }
    dbuf_free(&b);
    return rc;
}

static int option_u64(dotdb *db, codec_val v, const char *name, uint64_t *out)
{
    int64_t i;
    if (!codec_as_int64(v, &i) || i < 0)
        return cl_fail(db, DOTDB_EINVAL, "option \"%s\" must be a non-negative integer", name);
    *out = (uint64_t)i;
    return 0;
}

static int key_is(const char *k, size_t kl, const char *name)
{
    return kl == strlen(name) && memcmp(k, name, kl) == 0;
}

/* options: {"projection": {...}, "sort": {...}, "skip": N, "limit": N} */
static int parse_options(dotdb *db, const char *json, dotdb_cursor *cur)
{
    if (json == NULL)
        return 0;
    dbuf b;
    dbuf_init(&b);
    int rc = parse_json_arg(db, "options", json, 1u << 20, &b);
    codec_val v = {b.data, b.len};
    for (size_t i = 0; rc == 0 && i < codec_count(v); i++) {
        const char *k;
        size_t kl;
        codec_val m;
        char err[512] = "";
        codec_obj_at(v, i, &k, &kl, &m);
        if (key_is(k, kl, "limit")) {
            rc = option_u64(db, m, "limit", &cur->limit);
        } else if (key_is(k, kl, "skip")) {
            rc = option_u64(db, m, "skip", &cur->skip);
        } else if (key_is(k, kl, "sort") || key_is(k, kl, "projection")) {
            int is_sort = kl == 4;
            if (codec_type(m) != DOTDB_T_OBJECT)
                rc = cl_fail(db, DOTDB_EINVAL, "option \"%s\" must be a JSON object",
                             is_sort ? "sort" : "projection");
            else if (is_sort && codec_count(m) > 0)
                rc = qsort_compile(m, &cur->sort, err, sizeof err);
            else if (!is_sort && codec_count(m) > 0)
                rc = qproj_compile(m, &cur->proj, err, sizeof err);
            if (rc != 0 && err[0])
                rc = cl_fail(db, rc, "%s: %s", is_sort ? "sort" : "projection", err);
        } else {
            rc = cl_fail(db, DOTDB_EINVAL, "unknown option \"%.*s\" (known: projection, sort, "
                         "skip, limit)", (int)kl, k);
        }
    }
    dbuf_free(&b);
    return rc;
}

/* ---- scanning ---- */

typedef struct scan_job {
    const dotdb_cursor *cur;
    uint64_t from, to;   /* slot range */
    int count_only;
    offlist hits;
    uint64_t count, examined;
    int rc;
} scan_job;

#define PREFETCH_AHEAD 12

static inline void prefetch_slot(const uint8_t *base, const shm_table *t, uint64_t i)
{
    /* A plain (relaxed) look: only a hint, the real load comes later. */
    uint64_t w = atomic_load_explicit(&((shm_table *)t)->slots[i], memory_order_relaxed);
    if (w != TABLE_EMPTY && w != TABLE_DELETED) {
        const uint8_t *v = base + (w & TABLE_OFF_MASK);
        __builtin_prefetch(v);
        __builtin_prefetch(v + 64);
        __builtin_prefetch(v + 128);
        __builtin_prefetch(v + 192);
    }
}

static void scan_range(scan_job *j)
{
    const dotdb_cursor *cur = j->cur;
    const uint8_t *base = cur->c->base;
    const shm_table *t = cur->t;
    int all = cur->q == NULL || qfilter_is_all(cur->q);
    /* The table is in hash order, so the versions it points to are spread
     * over the whole mapping: each is a cache (and TLB) miss.  Prefetching
     * PREFETCH_AHEAD slots ahead lets those misses overlap. */
    for (uint64_t i = j->from; i < j->from + PREFETCH_AHEAD && i < j->to; i++)
        prefetch_slot(base, t, i);
    for (uint64_t i = j->from; i < j->to; i++) {
        if (i + PREFETCH_AHEAD < j->to)
            prefetch_slot(base, t, i + PREFETCH_AHEAD);
        /* Pairs with the coordinator's release store of a slot word. */
        uint64_t w = atomic_load_explicit(&((shm_table *)t)->slots[i], memory_order_acquire);
        if (w == TABLE_EMPTY || w == TABLE_DELETED)
            continue;
        const shm_version *v = snap_visible(base, w & TABLE_OFF_MASK, cur->lsn);
        if (v == NULL || (v->flags & VER_TOMBSTONE))
            continue;
        j->examined++;
        if (!all && !qfilter_match(cur->q, (codec_val){v->data, v->doc_len}))
            continue;
        if (j->count_only)
            j->count++;
        else if ((j->rc = offlist_push(&j->hits, (uint64_t)((const uint8_t *)v - base))) != 0)
            return;
    }
}

static void *scan_thread(void *arg)
{
    scan_job *j = arg;
    scan_range(j);
    return NULL;
}

/*
 * Scan slots [cur->pos, cur->pos + nslots) with up to cur->threads threads,
 * appending matches to `into` in slot order (or adding to *count).
 */
static int scan_round(dotdb_cursor *cur, uint64_t nslots, offlist *into, uint64_t *count)
{
    uint64_t end = cur->pos + nslots > cur->t->nslots ? cur->t->nslots : cur->pos + nslots;
    uint64_t span = end - cur->pos;
    int nt = cur->threads;
    if (span < PAR_MIN_SLOTS || nt < 2)
        nt = 1;
    if ((uint64_t)nt > span / CHUNK_SLOTS + 1)
        nt = (int)(span / CHUNK_SLOTS + 1);
    scan_job jobs[MAX_QUERY_THREADS];
    pthread_t tid[MAX_QUERY_THREADS];
    int started[MAX_QUERY_THREADS] = {0};
    uint64_t per = (span + (uint64_t)nt - 1) / (uint64_t)nt;
    for (int i = 0; i < nt; i++) {
        uint64_t from = cur->pos + per * (uint64_t)i;
        jobs[i] = (scan_job){.cur = cur, .from = from > end ? end : from,
                             .to = from + per > end ? end : from + per,
                             .count_only = into == NULL};
    }
    for (int i = 1; i < nt; i++)
        started[i] = pthread_create(&tid[i], NULL, scan_thread, &jobs[i]) == 0;
    for (int i = 1; i < nt; i++)
        if (!started[i])
            scan_range(&jobs[i]); /* no thread: do it here */
    scan_range(&jobs[0]);
    int rc = 0;
    for (int i = 0; i < nt; i++) {
        if (i > 0 && started[i])
            pthread_join(tid[i], NULL);
        if (jobs[i].rc)
            rc = jobs[i].rc;
        cur->examined += jobs[i].examined;
        if (count)
            *count += jobs[i].count;
        for (size_t k = 0; rc == 0 && into && k < jobs[i].hits.n; k++)
            rc = offlist_push(into, jobs[i].hits.v[k]);
        free(jobs[i].hits.v);
    }
    cur->pos = end;
    cur->scanned = end == cur->t->nslots;
    return rc;
}

/* Fill cur->buf with the next round of matches (IDLOOKUP: the one). */
static int refill(dotdb_cursor *cur)
{
    cur->buf.n = cur->next = 0;
    if (cur->by_id) {
        if (!cur->scanned) {
            cur->scanned = 1;
            const shm_version *v = snap_lookup(cur->c->base, cur->coll, cur->lsn, cur->id,
                                               cur->id_len);
            if (v) {
                cur->examined++;
                if (qfilter_match(cur->q, (codec_val){v->data, v->doc_len}))
                    return offlist_push(&cur->buf, (uint64_t)((const uint8_t *)v - cur->c->base));
            }
        }
        return 0;
    }
    while (!cur->scanned && cur->buf.n == 0 && cur->t) {
        int rc = scan_round(cur, (uint64_t)cur->threads * CHUNK_SLOTS, &cur->buf, NULL);
        if (rc != 0)
            return rc;
    }
    if (cur->t == NULL)
        cur->scanned = 1;
    return 0;
}

/* qsort_r comparator context: stable order via the offsets' scan index. */
typedef struct sort_ctx {
    const qsort_spec *s;
    const uint8_t *base;
    const uint64_t *offs;
} sort_ctx;

static int cmp_idx(const void *a, const void *b, void *arg)
{
    const sort_ctx *sc = arg;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    const shm_version *x = (const shm_version *)(sc->base + sc->offs[i]);
    const shm_version *y = (const shm_version *)(sc->base + sc->offs[j]);
    int r = qsort_cmp(sc->s, (codec_val){x->data, x->doc_len}, (codec_val){y->data, y->doc_len});
    return r ? r : (i > j) - (i < j);
}

/* Collect every match, then order them by the sort spec (stable). */
static int sort_all(dotdb_cursor *cur)
{
    int rc = 0;
    if (cur->by_id || cur->t == NULL)
        rc = refill(cur);
    while (rc == 0 && !cur->scanned)
        rc = scan_round(cur, (uint64_t)cur->threads * CHUNK_SLOTS, &cur->buf, NULL);
    if (rc != 0 || cur->buf.n < 2)
        return rc;
    if (cur->buf.n > UINT32_MAX)
        return cl_fail(cur->db, DOTDB_ETOOBIG, "sort: more than 2^32 documents");
    uint32_t *idx = malloc(cur->buf.n * sizeof *idx);
    uint64_t *sorted = malloc(cur->buf.n * sizeof *sorted);
    if (idx == NULL || sorted == NULL) {
        free(idx);
        free(sorted);
        return cl_fail(cur->db, DOTDB_ENOMEM, "sort: out of memory for %zu documents",
                       cur->buf.n);
    }
    for (size_t i = 0; i < cur->buf.n; i++)
        idx[i] = (uint32_t)i;
    sort_ctx sc = {cur->sort, cur->c->base, cur->buf.v};
    qsort_r(idx, cur->buf.n, sizeof *idx, cmp_idx, &sc);
    for (size_t i = 0; i < cur->buf.n; i++)
        sorted[i] = cur->buf.v[idx[i]];
    free(idx);
    free(cur->buf.v);
    cur->buf.v = sorted;
    cur->buf.cap = cur->buf.n;
    return 0;
}

static int query_threads(const dotdb *db)
{
    int n = db->opts.query_threads;
    if (n <= 0) {
        const char *env = getenv("DOTDB_QUERY_THREADS");
        n = env ? atoi(env) : 0;
    }
    if (n <= 0)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_QUERY_THREADS ? MAX_QUERY_THREADS : n;
}

static int open_snapshot(dotdb_cursor *cur, const char *coll);

int dotdb_find(dotdb *db, const char *coll, const char *filter_json, const char *options_json,
               dotdb_cursor **out)
{
    *out = NULL;
    int rc = cl_check_name(db, coll);
    if (rc != 0)
        return rc;
    dotdb_cursor *cur = calloc(1, sizeof *cur);
    if (cur == NULL)
        return cl_fail(db, DOTDB_ENOMEM, "out of memory");
    cur->db = db;
    cur->slot = -1;
    cur->threads = query_threads(db);
    dbuf_init(&cur->out);
    dbuf_init(&cur->res);
    rc = compile_filter(db, filter_json, &cur->q);
    if (rc == 0)
        rc = parse_options(db, options_json, cur);
    if (rc == 0)
        rc = open_snapshot(cur, coll);
    if (rc == 0) {
        cur->by_id = qfilter_id_eq(cur->q, &cur->id, &cur->id_len);
        if (cur->sort)
            rc = sort_all(cur);
    }
    if (rc != 0) {
        dotdb_cursor_close(cur);
        return rc;
    }
    *out = cur;
    return 0;
}

/* Attach, take a snapshot and find the collection's table as of it. */
static int open_snapshot(dotdb_cursor *cur, const char *coll)
{
    dotdb *db = cur->db;
    int rc = cl_conn_get(db, &cur->c);
    if (rc == 0)
        rc = cl_snap_begin(db, cur->c, &cur->slot, &cur->lsn);
    if (rc == 0) {
        const shm_cat_entry *ce = snap_find_coll(cur->c->base, cur->lsn, coll, strlen(coll));
        if (ce == NULL)
            rc = cl_fail(db, DOTDB_ENOCOLL, "collection \"%s\" does not exist", coll);
        else
            cur->coll = (const shm_coll *)(cur->c->base + ce->coll_off);
    }
    if (rc == 0) {
        /* Pairs with the coordinator's release store of a grown table. */
        uint64_t toff = atomic_load_explicit(&((shm_coll *)cur->coll)->table_off,
                                             memory_order_acquire);
        cur->t = snap_at(cur->c->base, toff);
    }
    return rc;
}

/* Next matching version, honouring skip and limit; NULL at the end (or
 * on error, in *rc). */
static const shm_version *cursor_step(dotdb_cursor *cur, int *rc)
{
    *rc = 0;
    while (!(cur->limit && cur->returned >= cur->limit)) {
        if (cur->next == cur->buf.n) {
            if (cur->scanned || cur->sort)
                return NULL;
            if ((*rc = refill(cur)) != 0 || cur->buf.n == 0)
                return NULL;
        }
        const shm_version *v = (const shm_version *)(cur->c->base + cur->buf.v[cur->next++]);
        if (cur->skip) {
            cur->skip--;
            continue;
        }
        cur->returned++;
        return v;
    }
    return NULL;
}

/* Next result of an aggregation (documents need not have an "id"). */
static int agg_next_view(dotdb_cursor *cur, dotdb_doc *out)
{
    if (cur->res_pos >= cur->res.len || (cur->limit && cur->returned >= cur->limit))
        return DOTDB_EDONE;
    codec_val v = {cur->res.data + cur->res_pos, 0};
    v.len = codec_val_len(v.p);
    cur->res_pos += v.len;
    cur->returned++;
    out->data = v.p;
    out->len = v.len;
    codec_val idv;
    if (codec_obj_get(v, "id", 2, &idv) && codec_as_string(idv, &out->id, &out->id_len))
        return 0;
    out->id = NULL;
    out->id_len = 0;
    return 0;
}

int dotdb_cursor_next_view(dotdb_cursor *cur, dotdb_doc *out)
{
    memset(out, 0, sizeof *out);
    if (cur->is_agg)
        return agg_next_view(cur, out);
    int rc;
    const shm_version *v = cursor_step(cur, &rc);
    if (rc != 0)
        return cl_fail(cur->db, rc, "out of memory while scanning");
    if ((rc = cl_snap_check(cur->db, cur->c, cur->slot, cur->lsn)) != 0)
        return rc;
    if (v == NULL)
        return DOTDB_EDONE;
    out->id = ver_id(v);
    out->id_len = v->id_len;
    if (cur->proj == NULL) {
        out->data = v->data;
        out->len = v->doc_len;
        return 0;
    }
    cur->out.len = 0;
    if (qproj_apply(cur->proj, (codec_val){v->data, v->doc_len}, &cur->out) != 0)
        return cl_fail(cur->db, DOTDB_ENOMEM, "out of memory");
    out->data = cur->out.data;
    out->len = cur->out.len;
    return 0;
}

int dotdb_cursor_next(dotdb_cursor *cur, char **json_out, size_t *len_out)
{
    *json_out = NULL;
    if (len_out)
        *len_out = 0;
    dotdb_doc d;
    int rc = dotdb_cursor_next_view(cur, &d);
    if (rc != 0)
        return rc;
    dbuf b;
    dbuf_init(&b);
    rc = codec_to_json((codec_val){d.data, d.len}, &b);
    if (rc == 0)
        rc = dbuf_to_cstr(&b, json_out, len_out);
    else
        dbuf_free(&b);
    return rc ? cl_fail(cur->db, rc, "out of memory") : 0;
}

void dotdb_cursor_close(dotdb_cursor *cur)
{
    if (cur == NULL)
        return;
    if (cur->c) {
        if (cur->slot >= 0)
            cl_snap_end(cur->c, cur->slot);
        conn_unref(cur->c);
    }
    if (cur->q)
        qfilter_free(cur->q);
    if (cur->sort)
        qsort_free(cur->sort);
    if (cur->proj)
        qproj_free(cur->proj);
    free(cur->buf.v);
    dbuf_free(&cur->out);
    dbuf_free(&cur->res);
    free(cur);
}

/* Count without collecting: each thread counts its ranges. */
static int count_matches(dotdb_cursor *cur, uint64_t *n)
{
    if (cur->by_id) {
        int rc;
        while (cursor_step(cur, &rc) != NULL)
            (*n)++;
        return rc;
    }
    while (cur->t && !cur->scanned) {
        int rc = scan_round(cur, (uint64_t)cur->threads * CHUNK_SLOTS * 4, NULL, n);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int dotdb_count(dotdb *db, const char *coll, const char *filter_json, uint64_t *count_out)
{
    *count_out = 0;
    dotdb_cursor *cur;
    int rc = dotdb_find(db, coll, filter_json, NULL, &cur);
    if (rc != 0)
        return rc;
    uint64_t n = 0;
    rc = count_matches(cur, &n);
    if (rc != 0)
        rc = cl_fail(db, rc, "out of memory while counting");
    if (rc == 0)
        rc = cl_snap_check(db, cur->c, cur->slot, cur->lsn);
    dotdb_cursor_close(cur);
    if (rc == 0)
        *count_out = n;
    return rc;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int dotdb_explain(dotdb *db, const char *coll, const char *filter_json, const char *options_json,
                  char **json_out, size_t *len_out)
{
    *json_out = NULL;
    if (len_out)
        *len_out = 0;
    uint64_t t0 = now_us();
    dotdb_cursor *cur;
    int rc = dotdb_find(db, coll, filter_json, options_json, &cur);
    if (rc != 0)
        return rc;
    uint64_t returned = 0;
    dotdb_doc d;
    while ((rc = dotdb_cursor_next_view(cur, &d)) == 0)
        returned++;
    if (rc == DOTDB_EDONE)
        rc = 0;
    uint64_t docs = atomic_load_explicit(&((shm_coll *)cur->coll)->live_docs,
                                         memory_order_relaxed);
    dbuf b;
    dbuf_init(&b);
    char head[640];
    int n = snprintf(head, sizeof head,
                     "{\"collection\":\"%s\",\"plan\":\"%s\",\"index\":\"%s\",\"threads\":%d,"
                     "\"sort\":\"%s\",\"projection\":%s,\"snapshot_lsn\":%" PRIu64
                     ",\"documents\":%" PRIu64 ",\"examined\":%" PRIu64 ",\"returned\":%" PRIu64
                     ",\"time_us\":%" PRIu64 "}",
                     coll, cur->by_id ? "IDLOOKUP" : "COLLSCAN", cur->by_id ? "id" : "none",
                     cur->by_id ? 1 : cur->threads,
                     cur->sort ? "in memory, stable" : "none", cur->proj ? "true" : "false",
                     cur->lsn, docs, cur->examined, returned, now_us() - t0);
    dotdb_cursor_close(cur);
    if (rc == 0 && (rc = dbuf_append(&b, head, (size_t)n)) == 0)
        rc = dbuf_to_cstr(&b, json_out, len_out);
    else
        dbuf_free(&b);
    return rc;
}

/* ---- aggregation ---- */

static size_t agg_memory_bytes(const dotdb *db)
{
    if (db->opts.agg_memory_bytes > 0)
        return db->opts.agg_memory_bytes;
    const char *env = getenv("DOTDB_AGG_MEMORY");
    long long v = env ? atoll(env) : 0;
    return v > 0 ? (size_t)v : AGG_DEFAULT_MEMORY_BYTES;
}

/*
 * Run the pipeline over one snapshot.  A leading $match runs inside the
 * (parallel) scan; matching documents are pushed in natural order, round
 * by round, so a $limit early in the pipeline stops the scan.  Results are
 * materialised in cur->res and streamed by the cursor.
 */
int dotdb_aggregate(dotdb *db, const char *coll, const char *pipeline_json, dotdb_cursor **out)
{
    *out = NULL;
    int rc = cl_check_name(db, coll);
    if (rc != 0)
        return rc;
    if (pipeline_json == NULL)
        return cl_fail(db, DOTDB_EINVAL, "pipeline must be a JSON array of stages");
    dbuf pb;
    dbuf_init(&pb);
    codec_limits lim = {.max_size = CODEC_DEFAULT_MAX_SIZE, .max_depth = CODEC_DEFAULT_MAX_DEPTH};
    char err[512] = "";
    rc = codec_value_from_json(pipeline_json, strlen(pipeline_json), &lim, &pb, err, sizeof err);
    if (rc != 0) {
        dbuf_free(&pb);
        return cl_fail(db, rc, "pipeline: %s", err[0] ? err : dotdb_strerror(rc));
    }
    agg_pipeline *p = NULL;
    if (codec_type((codec_val){pb.data, pb.len}) != DOTDB_T_ARRAY)
        rc = cl_fail(db, DOTDB_EINVAL, "pipeline must be a JSON array of stages");
    else if ((rc = agg_compile((codec_val){pb.data, pb.len}, &p, err, sizeof err)) != 0)
        rc = cl_fail(db, rc, "pipeline: %s", err[0] ? err : dotdb_strerror(rc));
    dbuf_free(&pb);
    if (rc != 0)
        return rc;

    dotdb_cursor *cur = calloc(1, sizeof *cur);
    agg_run *run = NULL;
    if (cur == NULL) {
        agg_free(p);
        return cl_fail(db, DOTDB_ENOMEM, "out of memory");
    }
    cur->db = db;
    cur->slot = -1;
    cur->threads = query_threads(db);
    cur->is_agg = 1;
    dbuf_init(&cur->out);
    dbuf_init(&cur->res);
    /* cur->q stays NULL (all documents) unless the pipeline starts with a
     * $match; the filter is owned by p, which outlives the scan. */
    const qfilter *lead = agg_leading_match(p);
    rc = open_snapshot(cur, coll);
    if (rc == 0 && (rc = agg_begin(p, lead != NULL, agg_memory_bytes(db), &cur->res, &run)) != 0)
        rc = cl_fail(db, rc, "aggregate: %s", dotdb_strerror(rc));
    cur->q = (qfilter *)lead;
    int stop = 0;
    while (rc == 0 && !stop && cur->t && !cur->scanned) {
        cur->buf.n = 0;
        rc = scan_round(cur, AGG_ROUND_SLOTS, &cur->buf, NULL);
        if (rc != 0) {
            rc = cl_fail(db, rc, "out of memory while scanning");
            break;
        }
        for (size_t i = 0; i < cur->buf.n; i++) {
            const shm_version *v = (const shm_version *)(cur->c->base + cur->buf.v[i]);
            if (i + PREFETCH_AHEAD < cur->buf.n) { /* the round has left the cache */
                const uint8_t *a = cur->c->base + cur->buf.v[i + PREFETCH_AHEAD];
                __builtin_prefetch(a);
                __builtin_prefetch(a + 64);
                __builtin_prefetch(a + 128);
                __builtin_prefetch(a + 192);
            }
            err[0] = 0;
            int r = agg_push(run, (codec_val){v->data, v->doc_len}, err, sizeof err);
            if (r == AGG_STOP) {
                stop = 1;
                break;
            }
            if (r != 0) {
                rc = cl_fail(db, r, "aggregate: %s", err[0] ? err : dotdb_strerror(r));
                break;
            }
        }
    }
    cur->q = NULL; /* owned by p */
    if (rc == 0) {
        err[0] = 0;
        int r = agg_finish(run, err, sizeof err);
        if (r != 0)
            rc = cl_fail(db, r, "aggregate: %s", err[0] ? err : dotdb_strerror(r));
    }
    if (rc == 0)
        rc = cl_snap_check(db, cur->c, cur->slot, cur->lsn);
    if (run)
        agg_run_free(run);
    agg_free(p);
    /* The results are copies: the snapshot can go now. */
    if (cur->c && cur->slot >= 0) {
        cl_snap_end(cur->c, cur->slot);
        cur->slot = -1;
    }
    free(cur->buf.v);
    cur->buf = (offlist){0};
    if (rc != 0) {
        dotdb_cursor_close(cur);
        return rc;
    }
    *out = cur;
    return 0;
}
