/*
 * bench_dotdb.c - the DotDB driver, through the public API (lib/dotdb.h)
 * only.
 *
 *   load         dotdb_put_many of 10,000 documents (JSON lines): one round
 *                trip and one atomic commit per batch
 *   read         dotdb_txn_begin(READONLY) + dotdb_txn_get: a zero-copy view
 *                in a snapshot, no system call; the bytes are touched
 *   get_json     dotdb_get: the document as a new JSON string
 *   put          dotdb_put: one document, one synchronous request
 *   put_batch    dotdb_put_many of --depth documents.  The API's write calls
 *                are synchronous (one request in flight per handle), so
 *                "pipelined" here is what the API offers: batches, from
 *                several client processes at once
 *   rmw          an optimistic transaction: dotdb_txn_get + dotdb_txn_put +
 *                dotdb_txn_commit (retried on DOTDB_ECONFLICT)
 *   scan_filter  dotdb_count with {"age":{"$gt":25}}; SKIP while the
 *                library answers DOTDB_EINVAL (operators not implemented)
 *   group_by     dotdb_aggregate with $group/$avg when lib/dotdb.h declares
 *                it (CMake defines BENCH_HAVE_AGGREGATE), else SKIP
 *   mem_per_doc  (memory.shm_in_use - memory.retired_bytes) / documents
 *                from dotdb_stats, right after the load
 *
 * Durability: prepare() makes sure the coordinator of --dir runs with the
 * workload's sync_mode ("normal" or "full"), written to
 * DIR/system/config.json as {"storage":{"sync_mode":...}}; it restarts the
 * coordinator (a WAL replay) only when a writing workload needs the other
 * mode.  Read-only workloads leave it as it is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "dotdb.h"

#define COLL "bench"

static int fail(char *err, dotdb *db, const char *what, int rc)
{
    snprintf(err, BENCH_ERRLEN, "%s: %s: %s", what, dotdb_err_name(rc), dotdb_errmsg(db));
    return BENCH_ERR;
}

static int open_db(const bench_cfg *cfg, dotdb **db)
{
    dotdb_options o = {.no_autostart = 1, .coordinator_path = cfg->coordinator};
    return dotdb_open(cfg->dir, &o, db);
}

/* A number that follows "\"key\":" in a JSON text, or -1. */
static double json_number(const char *json, const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

static int write_config(const bench_cfg *cfg, const char *mode, char *err)
{
    char path[300];
    if (strlen(cfg->dir) > sizeof path - 32) {
        snprintf(err, BENCH_ERRLEN, "--dir is longer than %zu bytes", sizeof path - 32);
        return BENCH_ERR;
    }
    snprintf(path, sizeof path, "%s/system", cfg->dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, BENCH_ERRLEN, "mkdir %.300s: %s", path, strerror(errno));
        return BENCH_ERR;
    }
    snprintf(path, sizeof path, "%s/system/config.json", cfg->dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, BENCH_ERRLEN, "%.300s: %s", path, strerror(errno));
        return BENCH_ERR;
    }
    int bad = fprintf(f, "{\"storage\": {\"sync_mode\": \"%s\"}}\n", mode) < 0;
    bad |= fclose(f) != 0;
    if (bad) {
        snprintf(err, BENCH_ERRLEN, "%.300s: write failed", path);
        return BENCH_ERR;
    }
    return BENCH_OK;
}

static int dd_prepare(const bench_cfg *cfg, char *err)
{
    const char *mode = cfg->sync == BENCH_SYNC_FULL ? "full" : "normal";
    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, BENCH_ERRLEN, "mkdir %s: %s", cfg->dir, strerror(errno));
        return BENCH_ERR;
    }
    int running = dotdb_coordinator_status(cfg->dir, NULL);
    if (running < 0)
        return fail(err, NULL, "dotdb_coordinator_status", running);
    if (running) {
        if (!cfg->writes)
            return BENCH_OK;
        dotdb *db;
        int rc = open_db(cfg, &db);
        if (rc != DOTDB_OK)
            return fail(err, NULL, "dotdb_open", rc);
        char *stats = NULL;
        rc = dotdb_stats(db, NULL, &stats, NULL);
        if (rc != DOTDB_OK) {
            fail(err, db, "dotdb_stats", rc);
            dotdb_close(db);
            return BENCH_ERR;
        }
        char want[64];
        snprintf(want, sizeof want, "\"sync_mode\":\"%s\"", mode);
        int same = strstr(stats, want) != NULL;
        dotdb_free(stats);
        dotdb_close(db);
        if (same)
            return BENCH_OK;
        rc = dotdb_coordinator_stop(cfg->dir, 120000);
        if (rc != DOTDB_OK)
            return fail(err, NULL, "dotdb_coordinator_stop", rc);
    }
    if (write_config(cfg, mode, err) != BENCH_OK)
        return BENCH_ERR;
    dotdb_options o = {.coordinator_path = cfg->coordinator, .connect_timeout_ms = 600000};
    int rc = dotdb_coordinator_start(cfg->dir, NULL, &o);
    return rc == DOTDB_OK ? BENCH_OK : fail(err, NULL, "dotdb_coordinator_start", rc);
}

static int dd_open(const bench_cfg *cfg, void **h, char *err)
{
    dotdb *db;
    int rc = open_db(cfg, &db);
    if (rc != DOTDB_OK)
        return fail(err, NULL, "dotdb_open", rc);
    *h = db;
    return BENCH_OK;
}

static void dd_close(void *h)
{
    dotdb_close(h);
}

static int dd_put_many(void *h, const bench_batch *b, char *err)
{
    size_t n;
    int rc = dotdb_put_many(h, COLL, b->text, b->text_len, &n);
    if (rc != DOTDB_OK)
        return fail(err, h, "dotdb_put_many", rc);
    if (n != b->n) {
        snprintf(err, BENCH_ERRLEN, "dotdb_put_many stored %zu of %zu", n, b->n);
        return BENCH_ERR;
    }
    return BENCH_OK;
}

static int dd_read(void *h, const char *id, uint64_t *sink, char *err)
{
    dotdb_txn *t;
    int rc = dotdb_txn_begin(h, DOTDB_TXN_READONLY, &t);
    if (rc != DOTDB_OK)
        return fail(err, h, "dotdb_txn_begin", rc);
    dotdb_doc d;
    rc = dotdb_txn_get(t, COLL, id, &d);
    if (rc == DOTDB_OK)
        *sink += d.len + d.data[0] + d.data[d.len - 1];
    dotdb_txn_abort(t);
    return rc == DOTDB_OK ? BENCH_OK : fail(err, h, id, rc);
}

static int dd_get_json(void *h, const char *id, uint64_t *sink, char *err)
{
    char *json;
    size_t len;
    int rc = dotdb_get(h, COLL, id, &json, &len);
    if (rc != DOTDB_OK)
        return fail(err, h, id, rc);
    *sink += len + (uint8_t)json[len / 2];
    dotdb_free(json);
    return BENCH_OK;
}

static int dd_put(void *h, const bench_doc *d, char *err)
{
    int rc = dotdb_put(h, COLL, d->json, d->len, NULL);
    return rc == DOTDB_OK ? BENCH_OK : fail(err, h, "dotdb_put", rc);
}

static int dd_rmw(void *h, const bench_doc *d, uint64_t *sink, char *err)
{
    for (;;) {
        dotdb_txn *t;
        int rc = dotdb_txn_begin(h, 0, &t);
        if (rc != DOTDB_OK)
            return fail(err, h, "dotdb_txn_begin", rc);
        dotdb_doc cur;
        rc = dotdb_txn_get(t, COLL, d->id, &cur);
        if (rc == DOTDB_OK) {
            *sink += cur.len + cur.data[0];
            rc = dotdb_txn_put(t, COLL, d->json, d->len, NULL);
        }
        if (rc != DOTDB_OK) {
            dotdb_txn_abort(t);
            return fail(err, h, "read-modify-write", rc);
        }
        rc = dotdb_txn_commit(t);
        if (rc == DOTDB_OK)
            return BENCH_OK;
        if (rc != DOTDB_ECONFLICT)
            return fail(err, h, "dotdb_txn_commit", rc);
    }
}

static int dd_scan_filter(void *h, uint64_t *count, char *err)
{
    int rc = dotdb_count(h, COLL, "{\"age\":{\"$gt\":25}}", count);
    if (rc == DOTDB_EINVAL) {
        snprintf(err, BENCH_ERRLEN, "skipped (not supported yet: %s)", dotdb_errmsg(h));
        return BENCH_SKIP;
    }
    return rc == DOTDB_OK ? BENCH_OK : fail(err, h, "dotdb_count", rc);
}

#ifdef BENCH_HAVE_AGGREGATE
/* Results look like {"_id":"Accra","avg":499.1}. */
static int dd_group_by(void *h, char *out, size_t outlen, char *err)
{
    static const char pipeline[] =
        "[{\"$group\":{\"_id\":\"$city\",\"avg\":{\"$avg\":\"$score\"}}},{\"$sort\":{\"_id\":1}}]";
    dotdb_cursor *cur;
    int rc = dotdb_aggregate(h, COLL, pipeline, &cur);
    if (rc == DOTDB_EINVAL) {
        snprintf(err, BENCH_ERRLEN, "skipped (not supported yet: %s)", dotdb_errmsg(h));
        return BENCH_SKIP;
    }
    if (rc != DOTDB_OK)
        return fail(err, h, "dotdb_aggregate", rc);
    size_t used = 0;
    out[0] = 0;
    char *json;
    while ((rc = dotdb_cursor_next(cur, &json, NULL)) == DOTDB_OK) {
        const char *city = strstr(json, "\"_id\":\"");
        double avg = json_number(json, "avg");
        if (city) {
            city += 7;
            int n = snprintf(out + used, outlen - used, "%s%.*s=%.3f", used ? "," : "",
                             (int)strcspn(city, "\""), city, avg);
            if (n > 0 && (size_t)n < outlen - used)
                used += (size_t)n;
        }
        dotdb_free(json);
    }
    dotdb_cursor_close(cur);
    return rc == DOTDB_EDONE ? BENCH_OK : fail(err, h, "dotdb_cursor_next", rc);
}
#else
/* TODO(group_by): lib/dotdb.h of this build has no dotdb_aggregate.  When it
 * lands, CMake finds "dotdb_aggregate(" in the header, defines
 * BENCH_HAVE_AGGREGATE and the function above is used instead. */
static int dd_group_by(void *h, char *out, size_t outlen, char *err)
{
    (void)h;
    (void)out;
    (void)outlen;
    snprintf(err, BENCH_ERRLEN, "skipped (not supported yet: no dotdb_aggregate in this build)");
    return BENCH_SKIP;
}
#endif

static int dd_mem_per_doc(void *h, double *bytes, char *err)
{
    char *all = NULL, *coll = NULL;
    int rc = dotdb_stats(h, NULL, &all, NULL);
    if (rc == DOTDB_OK)
        rc = dotdb_stats(h, COLL, &coll, NULL);
    if (rc != DOTDB_OK) {
        dotdb_free(all);
        return fail(err, h, "dotdb_stats", rc);
    }
    double in_use = json_number(all, "shm_in_use");
    double retired = json_number(all, "retired_bytes");
    double docs = json_number(coll, "documents");
    dotdb_free(all);
    dotdb_free(coll);
    if (in_use < 0 || retired < 0 || docs <= 0) {
        snprintf(err, BENCH_ERRLEN, "dotdb_stats: shm_in_use, retired_bytes or documents missing");
        return BENCH_ERR;
    }
    *bytes = (in_use - retired) / docs;
    return BENCH_OK;
}

/* A checkpoint: segments, manifest, the WAL it covers removed. */
static int dd_durable(void *h, double *seconds, uint64_t *bytes, char *err)
{
    char *json = NULL;
    int rc = dotdb_checkpoint(h, 0, NULL, &json, NULL);
    if (rc != DOTDB_OK)
        return fail(err, h, "dotdb_checkpoint", rc);
    double s = json_number(json, "seconds"), b = json_number(json, "bytes");
    *seconds = s > 0 ? s : 0;
    *bytes = b > 0 ? (uint64_t)b : 0;
    dotdb_free(json);
    return BENCH_OK;
}

static int dd_stop(const bench_cfg *cfg, char *err)
{
    int rc = dotdb_coordinator_stop(cfg->dir, 120000);
    return rc == DOTDB_OK ? BENCH_OK : fail(err, NULL, "dotdb_coordinator_stop", rc);
}

/* Returns once the coordinator accepts: the checkpoint is loaded and the
 * WAL after it replayed. */
static int dd_start(const bench_cfg *cfg, char *err)
{
    dotdb_options o = {.coordinator_path = cfg->coordinator, .connect_timeout_ms = 600000};
    int rc = dotdb_coordinator_start(cfg->dir, NULL, &o);
    return rc == DOTDB_OK ? BENCH_OK : fail(err, NULL, "dotdb_coordinator_start", rc);
}

static const bench_system dotdb_system = {
    .name = "dotdb",
    .prepare = dd_prepare,
    .open = dd_open,
    .close = dd_close,
    .load = dd_put_many,
    .read = dd_read,
    .get_json = dd_get_json,
    .put = dd_put,
    .put_batch = dd_put_many,
    .rmw = dd_rmw,
    .scan_filter = dd_scan_filter,
    .group_by = dd_group_by,
    .mem_per_doc = dd_mem_per_doc,
    .durable = dd_durable,
    .stop = dd_stop,
    .start = dd_start,
};

int main(int argc, char **argv)
{
    return bench_main(argc, argv, &dotdb_system);
}
