/*
 * bench_sqlite.c - the SQLite driver: DIR/bench.db in WAL mode, one table
 * docs(id TEXT PRIMARY KEY, doc TEXT), prepared statements only.
 *
 *   load         BEGIN; 10,000 INSERT OR REPLACE; COMMIT
 *   read         SELECT doc FROM docs WHERE id = ?, touch the bytes
 *   get_json     the same, copied into a new string
 *   put          INSERT OR REPLACE in autocommit (one transaction)
 *   put_batch    BEGIN IMMEDIATE; --depth INSERT OR REPLACE; COMMIT
 *   rmw          BEGIN IMMEDIATE; SELECT; INSERT OR REPLACE; COMMIT
 *   scan_filter  SELECT count(*) FROM docs WHERE json_extract(doc,'$.age') > 25
 *   group_by     SELECT json_extract(doc,'$.city') AS c,
 *                avg(json_extract(doc,'$.score')) FROM docs GROUP BY c
 * Settings: journal_mode=WAL; synchronous=FULL for sync full (the WAL is
 * fsynced at every commit), NORMAL otherwise; busy_timeout 60 s so
 * concurrent writers wait for the lock; mmap_size 4 GiB so reads come from
 * the mapping as LMDB's and DotDB's do (the usual tuning for a
 * read-mostly SQLite).
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "bench.h"

enum { S_SELECT, S_UPSERT, S_BEGIN, S_COMMIT, S_ROLLBACK, S_COUNT, S_GROUP, S_N };
static const char *const sql_text[S_N] = {
    "SELECT doc FROM docs WHERE id = ?1",
    "INSERT OR REPLACE INTO docs(id, doc) VALUES (?1, ?2)",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SELECT count(*) FROM docs WHERE json_extract(doc, '$.age') > 25",
    "SELECT json_extract(doc, '$.city') AS c, avg(json_extract(doc, '$.score')) "
    "FROM docs GROUP BY c ORDER BY c",
};

typedef struct sq {
    sqlite3 *db;
    sqlite3_stmt *st[S_N];
} sq;

static int fail(char *err, sq *s, const char *what)
{
    snprintf(err, BENCH_ERRLEN, "%.200s: %.300s", what, s && s->db ? sqlite3_errmsg(s->db) : "?");
    return BENCH_ERR;
}

static void db_path(const bench_cfg *cfg, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/bench.db", cfg->dir);
}

static int exec(sq *s, const char *sql, char *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, BENCH_ERRLEN, "%s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return BENCH_ERR;
    }
    return BENCH_OK;
}

static void sq_close(void *h)
{
    sq *s = h;
    if (!s)
        return;
    for (int i = 0; i < S_N; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    free(s);
}

static int sq_open(const bench_cfg *cfg, void **h, char *err)
{
    sq *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, BENCH_ERRLEN, "out of memory");
        return BENCH_ERR;
    }
    char path[4096];
    db_path(cfg, path, sizeof path);
    int rc = BENCH_OK;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        rc = fail(err, s, path);
    if (rc == BENCH_OK)
        sqlite3_busy_timeout(s->db, 60000);
    if (rc == BENCH_OK)
        rc = exec(s, cfg->sync == BENCH_SYNC_FULL ? "PRAGMA synchronous=FULL"
                                                  : "PRAGMA synchronous=NORMAL", err);
    if (rc == BENCH_OK)
        rc = exec(s, "PRAGMA mmap_size=4294967296", err);
    for (int i = 0; i < S_N && rc == BENCH_OK; i++)
        if (sqlite3_prepare_v2(s->db, sql_text[i], -1, &s->st[i], NULL) != SQLITE_OK)
            rc = fail(err, s, sql_text[i]);
    if (rc != BENCH_OK) {
        sq_close(s);
        return rc;
    }
    *h = s;
    return BENCH_OK;
}

/* Schema and journal mode, once, before the clients open. */
static int sq_prepare(const bench_cfg *cfg, char *err)
{
    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, BENCH_ERRLEN, "mkdir %s: %s", cfg->dir, strerror(errno));
        return BENCH_ERR;
    }
    char path[4096];
    db_path(cfg, path, sizeof path);
    sq s = {0};
    int rc = BENCH_OK;
    if (sqlite3_open_v2(path, &s.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        rc = fail(err, &s, path);
    if (rc == BENCH_OK)
        sqlite3_busy_timeout(s.db, 60000);
    if (rc == BENCH_OK)
        rc = exec(&s, "PRAGMA journal_mode=WAL", err);
    if (rc == BENCH_OK)
        rc = exec(&s, "CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, doc TEXT)", err);
    sqlite3_close(s.db);
    return rc;
}

/* Run a statement that returns no row; SQLITE_BUSY is retried (the busy
 * timeout covers most waits, not a deadlock-avoidance BUSY). */
static int step_done(sq *s, sqlite3_stmt *st, char *err)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_BUSY)
        sqlite3_reset(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? BENCH_OK : fail(err, s, sqlite3_sql(st));
}

static int upsert(sq *s, const bench_doc *d, char *err)
{
    sqlite3_stmt *st = s->st[S_UPSERT];
    sqlite3_bind_text(st, 1, d->id, BENCH_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->json, (int)d->len, SQLITE_STATIC);
    int rc = step_done(s, st, err);
    sqlite3_clear_bindings(st);
    return rc;
}

static int in_txn(sq *s, const bench_batch *b, char *err)
{
    int rc = step_done(s, s->st[S_BEGIN], err);
    for (size_t i = 0; i < b->n && rc == BENCH_OK; i++)
        rc = upsert(s, &b->docs[i], err);
    if (rc == BENCH_OK)
        return step_done(s, s->st[S_COMMIT], err);
    char ignored[BENCH_ERRLEN];
    (void)step_done(s, s->st[S_ROLLBACK], ignored);
    return rc;
}

static int sq_load(void *h, const bench_batch *b, char *err)
{
    return in_txn(h, b, err);
}

/* SELECT the document; on success the row is current until reset. */
static int select_doc(sq *s, const char *id, const unsigned char **doc, int *len, char *err)
{
    sqlite3_stmt *st = s->st[S_SELECT];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        if (rc == SQLITE_DONE) {
            snprintf(err, BENCH_ERRLEN, "%s: not found", id);
            return BENCH_ERR;
        }
        return fail(err, s, id);
    }
    *doc = sqlite3_column_text(st, 0);
    *len = sqlite3_column_bytes(st, 0);
    return BENCH_OK;
}

static int sq_read(void *h, const char *id, uint64_t *sink, char *err)
{
    sq *s = h;
    const unsigned char *doc;
    int len;
    if (select_doc(s, id, &doc, &len, err) != BENCH_OK)
        return BENCH_ERR;
    *sink += (uint64_t)len + doc[0] + doc[len - 1];
    sqlite3_reset(s->st[S_SELECT]);
    return BENCH_OK;
}

static int sq_get_json(void *h, const char *id, uint64_t *sink, char *err)
{
    sq *s = h;
    const unsigned char *doc;
    int len;
    if (select_doc(s, id, &doc, &len, err) != BENCH_OK)
        return BENCH_ERR;
    char *copy = malloc((size_t)len + 1);
    if (copy) {
        memcpy(copy, doc, (size_t)len + 1);
        *sink += (uint64_t)len + (uint8_t)copy[len / 2];
    }
    sqlite3_reset(s->st[S_SELECT]);
    free(copy);
    if (!copy) {
        snprintf(err, BENCH_ERRLEN, "out of memory");
        return BENCH_ERR;
    }
    return BENCH_OK;
}

static int sq_put(void *h, const bench_doc *d, char *err)
{
    return upsert(h, d, err);
}

static int sq_put_batch(void *h, const bench_batch *b, char *err)
{
    return in_txn(h, b, err);
}

static int sq_rmw(void *h, const bench_doc *d, uint64_t *sink, char *err)
{
    sq *s = h;
    int rc = step_done(s, s->st[S_BEGIN], err);
    if (rc != BENCH_OK)
        return rc;
    const unsigned char *doc;
    int len;
    rc = select_doc(s, d->id, &doc, &len, err);
    if (rc == BENCH_OK) {
        *sink += (uint64_t)len + doc[0];
        sqlite3_reset(s->st[S_SELECT]);
        rc = upsert(s, d, err);
    }
    if (rc == BENCH_OK)
        return step_done(s, s->st[S_COMMIT], err);
    char ignored[BENCH_ERRLEN];
    (void)step_done(s, s->st[S_ROLLBACK], ignored);
    return rc;
}

static int sq_scan_filter(void *h, uint64_t *count, char *err)
{
    sq *s = h;
    sqlite3_stmt *st = s->st[S_COUNT];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *count = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? BENCH_OK : fail(err, s, "count");
}

static int sq_group_by(void *h, char *out, size_t outlen, char *err)
{
    sq *s = h;
    sqlite3_stmt *st = s->st[S_GROUP];
    size_t used = 0;
    int rc;
    out[0] = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int n = snprintf(out + used, outlen - used, "%s%s=%.3f", used ? "," : "",
                         (const char *)sqlite3_column_text(st, 0), sqlite3_column_double(st, 1));
        if (n > 0 && (size_t)n < outlen - used)
            used += (size_t)n;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? BENCH_OK : fail(err, s, "group by");
}

/* Fold the WAL into the database file (what a restart then reads). */
static int sq_durable(void *h, double *seconds, uint64_t *bytes, char *err)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = exec(h, "PRAGMA wal_checkpoint(TRUNCATE)", err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    *seconds = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    *bytes = 0;
    return rc;
}

static const bench_system sqlite_system = {
    .name = "sqlite",
    .prepare = sq_prepare,
    .open = sq_open,
    .close = sq_close,
    .load = sq_load,
    .read = sq_read,
    .get_json = sq_get_json,
    .put = sq_put,
    .put_batch = sq_put_batch,
    .rmw = sq_rmw,
    .scan_filter = sq_scan_filter,
    .group_by = sq_group_by,    .durable = sq_durable,
};

int main(int argc, char **argv)
{
    return bench_main(argc, argv, &sqlite_system);
}
