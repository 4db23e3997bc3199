/*
 * bench_lmdb.c - the LMDB driver: documents as values keyed by id, in the
 * unnamed database of an environment in --dir.
 *
 *   load       one write transaction of 10,000 mdb_put per batch
 *   read       mdb_txn_renew of a read transaction kept per process, then
 *              mdb_get and touch the bytes, then mdb_txn_reset (a snapshot
 *              per read, as DotDB's read); values are read in place in the
 *              map (zero-copy)
 *   get_json   the same, copied out into a new string (what a caller that
 *              keeps the document must do)
 *   put        one write transaction per document
 *   put_batch  one write transaction of --depth documents
 *   rmw        mdb_get + mdb_put in one write transaction
 * Durability: sync full is LMDB's default (fsync at each commit); sync
 * normal is MDB_NOSYNC (the OS writes the pages back, LMDB's closest match
 * to "acknowledged once written").  scan_filter and group_by are not
 * offered: LMDB stores opaque bytes and has no query language.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "bench.h"

typedef struct lm {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *rtxn; /* reset between reads, renewed for the next */
} lm;

static int fail(char *err, const char *what, int rc)
{
    snprintf(err, BENCH_ERRLEN, "%s: %s", what, mdb_strerror(rc));
    return BENCH_ERR;
}

static int lm_prepare(const bench_cfg *cfg, char *err)
{
    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, BENCH_ERRLEN, "mkdir %s: %s", cfg->dir, strerror(errno));
        return BENCH_ERR;
    }
    return BENCH_OK;
}

static void lm_close(void *h)
{
    lm *l = h;
    if (!l)
        return;
    if (l->rtxn)
        mdb_txn_abort(l->rtxn);
    if (l->env)
        mdb_env_close(l->env);
    free(l);
}

static int lm_open(const bench_cfg *cfg, void **h, char *err)
{
    lm *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, BENCH_ERRLEN, "out of memory");
        return BENCH_ERR;
    }
    size_t map = (size_t)cfg->records * 2048 + ((size_t)1 << 30);
    unsigned flags = cfg->sync == BENCH_SYNC_FULL ? 0 : MDB_NOSYNC;
    MDB_txn *t = NULL;
    int rc = mdb_env_create(&l->env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(l->env, map);
    if (rc == 0)
        rc = mdb_env_open(l->env, cfg->dir, flags, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(l->env, NULL, 0, &t);
    if (rc == 0)
        rc = mdb_dbi_open(t, NULL, 0, &l->dbi);
    if (rc == 0) {
        rc = mdb_txn_commit(t);
        t = NULL;
    }
    if (rc == 0) {
        rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &l->rtxn);
        if (rc == 0)
            mdb_txn_reset(l->rtxn);
    }
    if (rc != 0) {
        if (t)
            mdb_txn_abort(t);
        lm_close(l);
        return fail(err, "open", rc);
    }
    *h = l;
    return BENCH_OK;
}

static int put_batch(lm *l, const bench_batch *b, char *err)
{
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, 0, &t);
    if (rc != 0)
        return fail(err, "mdb_txn_begin", rc);
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        MDB_val k = {BENCH_ID_LEN, (void *)b->docs[i].id};
        MDB_val v = {b->docs[i].len, (void *)b->docs[i].json};
        rc = mdb_put(t, l->dbi, &k, &v, 0);
    }
    if (rc != 0) {
        mdb_txn_abort(t);
        return fail(err, "mdb_put", rc);
    }
    rc = mdb_txn_commit(t);
    return rc == 0 ? BENCH_OK : fail(err, "mdb_txn_commit", rc);
}

static int lm_load(void *h, const bench_batch *b, char *err)
{
    return put_batch(h, b, err);
}

/* Look id up in a fresh snapshot; the value stays valid until reset. */
static int get(lm *l, const char *id, MDB_val *v, char *err)
{
    int rc = mdb_txn_renew(l->rtxn);
    if (rc != 0)
        return fail(err, "mdb_txn_renew", rc);
    MDB_val k = {strlen(id), (void *)id};
    rc = mdb_get(l->rtxn, l->dbi, &k, v);
    if (rc != 0) {
        mdb_txn_reset(l->rtxn);
        return fail(err, id, rc);
    }
    return BENCH_OK;
}

static int lm_read(void *h, const char *id, uint64_t *sink, char *err)
{
    lm *l = h;
    MDB_val v;
    if (get(l, id, &v, err) != BENCH_OK)
        return BENCH_ERR;
    const uint8_t *p = v.mv_data;
    *sink += v.mv_size + p[0] + p[v.mv_size - 1];
    mdb_txn_reset(l->rtxn);
    return BENCH_OK;
}

static int lm_get_json(void *h, const char *id, uint64_t *sink, char *err)
{
    lm *l = h;
    MDB_val v;
    if (get(l, id, &v, err) != BENCH_OK)
        return BENCH_ERR;
    char *s = malloc(v.mv_size + 1);
    if (s) {
        memcpy(s, v.mv_data, v.mv_size);
        s[v.mv_size] = 0;
    }
    mdb_txn_reset(l->rtxn);
    if (!s) {
        snprintf(err, BENCH_ERRLEN, "out of memory");
        return BENCH_ERR;
    }
    *sink += v.mv_size + (uint8_t)s[v.mv_size / 2];
    free(s);
    return BENCH_OK;
}

static int lm_put(void *h, const bench_doc *d, char *err)
{
    bench_batch one = {.docs = (bench_doc *)d, .n = 1};
    return put_batch(h, &one, err);
}

static int lm_put_batch(void *h, const bench_batch *b, char *err)
{
    return put_batch(h, b, err);
}

static int lm_rmw(void *h, const bench_doc *d, uint64_t *sink, char *err)
{
    lm *l = h;
    MDB_txn *t;
    int rc = mdb_txn_begin(l->env, NULL, 0, &t);
    if (rc != 0)
        return fail(err, "mdb_txn_begin", rc);
    MDB_val k = {BENCH_ID_LEN, (void *)d->id}, v;
    rc = mdb_get(t, l->dbi, &k, &v);
    if (rc == 0) {
        *sink += v.mv_size + ((const uint8_t *)v.mv_data)[0];
        v.mv_size = d->len;
        v.mv_data = (void *)d->json;
        rc = mdb_put(t, l->dbi, &k, &v, 0);
    }
    if (rc != 0) {
        mdb_txn_abort(t);
        return fail(err, "read-modify-write", rc);
    }
    rc = mdb_txn_commit(t);
    return rc == 0 ? BENCH_OK : fail(err, "mdb_txn_commit", rc);
}

/* A forced sync of the map. */
static int lm_durable(void *h, double *seconds, uint64_t *bytes, char *err)
{
    lm *l = h;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = mdb_env_sync(l->env, 1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    *seconds = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    *bytes = 0;
    return rc == 0 ? BENCH_OK : fail(err, "mdb_env_sync", rc);
}

static const bench_system lmdb_system = {
    .name = "lmdb",
    .prepare = lm_prepare,
    .open = lm_open,
    .close = lm_close,
    .load = lm_load,
    .read = lm_read,
    .get_json = lm_get_json,
    .put = lm_put,
    .put_batch = lm_put_batch,
    .rmw = lm_rmw,    .durable = lm_durable,
};

int main(int argc, char **argv)
{
    return bench_main(argc, argv, &lmdb_system);
}
