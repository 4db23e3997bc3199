/*
 * runner.c - the workloads, run the same way for every system.
 *
 * Workloads (the names scripts/bench.sh and the JSON file use):
 *   load               bulk insert of --records documents in batches of
 *                      10,000 (one transaction / round trip each); time is
 *                      the time inside the system's calls, latency per batch
 *   shm_bytes_per_doc  memory of the store per document, next to the
 *                      average JSON size (DotDB: shared memory in use)
 *   point_read_1p      one process, uniform keys: look a document up and
 *                      touch its bytes (DotDB: zero-copy get in a snapshot)
 *   point_read_2p      the same in two processes at once, summed
 *   get_json_1p        one process: the document as a JSON string
 *   scan_filter        count of documents with age > 25 (a full scan);
 *                      ops/s is queries per second
 *   group_by           average score by city; ops/s is queries per second
 *   put_1c             one client, one document per request, sync normal
 *                      (the single-client floor: one round trip per put)
 *   durable_put_8c     8 processes, one document per request, acknowledged
 *                      after fsync
 *   pipelined_put      --clients (8) processes, each sending --depth (16)
 *                      documents at once (batched or pipelined), sync
 *                      normal; ops are documents, latency is per batch
 *   ycsb_a/b/c/f       YCSB core mixes over zipfian keys, one process, sync
 *                      normal: A 50% read 50% update, B 95/5, C read only,
 *                      F 50% read 50% read-modify-write
 * Writes replace existing documents (ids drawn from the loaded key space)
 * with another variant of the document, so the data set keeps its size.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define LOAD_BATCH 10000
#define KEY_RING (1u << 20)  /* request stream length, replayed cyclically */
#define WRITE_POOL 4096      /* distinct document bodies a writer cycles through */
#define SCAN_MIN_RUNS 3
#define SCAN_MAX_RUNS 50

enum wl_kind { WL_LOAD, WL_MEM, WL_DISK, WL_RESTART, WL_READ, WL_GET, WL_SCAN, WL_GROUP, WL_PUT, WL_BATCH, WL_MIX };
enum op_kind { OP_READ = 0, OP_UPDATE = 1, OP_RMW = 2 };

typedef struct workload {
    const char *name;
    enum wl_kind kind;
    int clients;           /* default number of processes */
    enum bench_sync sync;
    int zipf;              /* key choice: 1 zipfian, 0 uniform */
    double read_frac;      /* WL_MIX: fraction of reads */
    enum op_kind write_op; /* WL_MIX: what the other operations are */
} workload;

static const workload workloads[] = {
    {"load", WL_LOAD, 1, BENCH_SYNC_NORMAL, 0, 0, OP_UPDATE},
    {"shm_bytes_per_doc", WL_MEM, 1, BENCH_SYNC_NORMAL, 0, 0, OP_UPDATE},
    {"disk_bytes", WL_DISK, 1, BENCH_SYNC_NORMAL, 0, 0, OP_UPDATE},
    {"restart", WL_RESTART, 1, BENCH_SYNC_NORMAL, 0, 0, OP_UPDATE},
    {"point_read_1p", WL_READ, 1, BENCH_SYNC_NORMAL, 0, 1, OP_UPDATE},
    {"point_read_2p", WL_READ, 2, BENCH_SYNC_NORMAL, 0, 1, OP_UPDATE},
    {"get_json_1p", WL_GET, 1, BENCH_SYNC_NORMAL, 0, 1, OP_UPDATE},
    {"scan_filter", WL_SCAN, 1, BENCH_SYNC_NORMAL, 0, 0, OP_UPDATE},
    {"group_by", WL_GROUP, 1, BENCH_SYNC_NORMAL, 0, 0, OP_UPDATE},
    {"put_1c", WL_PUT, 1, BENCH_SYNC_NORMAL, 0, 0, OP_UPDATE},
    {"durable_put_8c", WL_PUT, 8, BENCH_SYNC_FULL, 0, 0, OP_UPDATE},
    {"pipelined_put", WL_BATCH, 8, BENCH_SYNC_NORMAL, 0, 0, OP_UPDATE},
    {"ycsb_a", WL_MIX, 1, BENCH_SYNC_NORMAL, 1, 0.50, OP_UPDATE},
    {"ycsb_b", WL_MIX, 1, BENCH_SYNC_NORMAL, 1, 0.95, OP_UPDATE},
    {"ycsb_c", WL_MIX, 1, BENCH_SYNC_NORMAL, 1, 1.00, OP_UPDATE},
    {"ycsb_f", WL_MIX, 1, BENCH_SYNC_NORMAL, 1, 0.50, OP_RMW},
};

/* What a client process sends back to the driver. */
typedef struct client_report {
    int status;          /* BENCH_OK, BENCH_SKIP, BENCH_ERR */
    uint64_t ops;        /* operations (documents for batches) */
    double seconds;      /* wall-clock (or in-call time for load/scans) */
    uint64_t sink;       /* keeps reads from being optimised away */
    double mem_bytes;    /* WL_MEM */
    double json_bytes;   /* WL_MEM: average JSON text size */
    uint64_t count;      /* WL_SCAN: the count */
    char check[256];     /* WL_GROUP: the groups */
    char err[BENCH_ERRLEN];
    hist lat;
} client_report;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int missing(client_report *r, const char *what)
{
    snprintf(r->err, sizeof r->err, "%s is not supported", what);
    return BENCH_SKIP;
}

/* ---- the client side ---- */

typedef struct client {
    const bench_cfg *cfg;
    const bench_system *sys;
    const workload *wl;
    int index;
    void *h;
    uint64_t *ring;      /* key | op << 56 */
    bench_batch pool;    /* WRITE_POOL documents, ids rewritten per use */
} client;

#define RING_KEY(e) ((e) & ((UINT64_C(1) << 56) - 1))
#define RING_OP(e) ((int)((e) >> 56))

/* Build the request stream of this client: same seed -> same stream on
 * every system. */
static int client_prepare(client *c, char *err)
{
    const bench_cfg *cfg = c->cfg;
    c->ring = malloc(KEY_RING * sizeof *c->ring);
    if (!c->ring) {
        snprintf(err, BENCH_ERRLEN, "out of memory");
        return BENCH_ERR;
    }
    gen_rng r = {cfg->seed * 1000003u + (uint64_t)c->index * 7919u + 17};
    gen_zipf z;
    if (c->wl->zipf)
        gen_zipf_init(&z, cfg->records);
    for (size_t i = 0; i < KEY_RING; i++) {
        uint64_t k = c->wl->zipf ? gen_zipf_next(&z, &r) : gen_next(&r) % cfg->records;
        uint64_t op = OP_READ;
        if (c->wl->kind == WL_PUT || c->wl->kind == WL_BATCH)
            op = OP_UPDATE;
        else if (c->wl->kind == WL_MIX && gen_unit(&r) >= c->wl->read_frac)
            op = c->wl->write_op;
        c->ring[i] = k | op << 56;
    }
    batch_init(&c->pool);
    if (c->wl->kind == WL_PUT || c->wl->kind == WL_BATCH || c->wl->kind == WL_MIX) {
        for (size_t i = 0; i < WRITE_POOL; i++)
            if (gen_doc(&c->pool, i, 1 + (uint64_t)c->index) != 0) {
                snprintf(err, BENCH_ERRLEN, "out of memory");
                return BENCH_ERR;
            }
    }
    return BENCH_OK;
}

static int run_load(client *c, client_report *rep)
{
    if (!c->sys->load)
        return missing(rep, "load");
    bench_batch b;
    batch_init(&b);
    int rc = BENCH_OK;
    uint64_t in_calls = 0;
    for (uint64_t k = 0; k < c->cfg->records && rc == BENCH_OK;) {
        batch_clear(&b);
        for (; b.n < LOAD_BATCH && k < c->cfg->records; k++)
            if (gen_doc(&b, k, 0) != 0) {
                snprintf(rep->err, sizeof rep->err, "out of memory");
                rc = BENCH_ERR;
                break;
            }
        if (rc != BENCH_OK)
            break;
        uint64_t t0 = now_ns();
        rc = c->sys->load(c->h, &b, rep->err);
        uint64_t dt = now_ns() - t0;
        in_calls += dt;
        hist_add(&rep->lat, dt);
        rep->ops += b.n;
    }
    rep->seconds = (double)in_calls / 1e9;
    batch_free(&b);
    return rc;
}

/* Bytes the files under path occupy (allocated blocks; logs, sockets and
 * locks are not data). */
static uint64_t du(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (S_ISREG(st.st_mode)) {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        if (strcmp(b, "dotdbd.log") == 0 || strcmp(b, "dotdb.lock") == 0 ||
            strcmp(b, "stats.json") == 0 || strcmp(b, "lock.mdb") == 0)
            return 0;
        return (uint64_t)st.st_blocks * 512;
    }
    if (!S_ISDIR(st.st_mode))
        return 0;
    uint64_t n = 0;
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        n += du(p);
    }
    if (d)
        closedir(d);
    return n;
}

/* disk_bytes: durable first, then the files' size per document. */
static int run_disk(client *c, client_report *rep)
{
    if (!c->sys->durable)
        return missing(rep, "disk_bytes (files outside --dir)");
    double s;
    uint64_t b;
    int rc = c->sys->durable(c->h, &s, &b, rep->err);
    if (rc != BENCH_OK)
        return rc;
    rep->mem_bytes = (double)du(c->cfg->dir);
    rep->seconds = s;
    rep->count = b;
    return BENCH_OK;
}

/* restart: durable, close, stop; then start, open and read one document:
 * the time from the start to that read is what a user waits for. */
static int run_restart(client *c, client_report *rep)
{
    if (!c->sys->durable || !c->sys->read)
        return missing(rep, "restart (the server is restarted by bench.sh only)");
    double ckpt_s;
    uint64_t ckpt_bytes;
    int rc = c->sys->durable(c->h, &ckpt_s, &ckpt_bytes, rep->err);
    if (rc != BENCH_OK)
        return rc;
    c->sys->close(c->h);
    c->h = NULL;
    if (c->sys->stop && (rc = c->sys->stop(c->cfg, rep->err)) != BENCH_OK)
        return rc;
    char id[BENCH_ID_LEN + 1];
    gen_id(c->cfg->records / 2, id);
    uint64_t t0 = now_ns(), sink = 0;
    if (c->sys->start && (rc = c->sys->start(c->cfg, rep->err)) != BENCH_OK)
        return rc;
    if ((rc = c->sys->open(c->cfg, &c->h, rep->err)) != BENCH_OK)
        return rc;
    if ((rc = c->sys->read(c->h, id, &sink, rep->err)) != BENCH_OK)
        return rc;
    uint64_t dt = now_ns() - t0;
    hist_add(&rep->lat, dt);
    rep->ops = c->cfg->records;
    rep->seconds = (double)dt / 1e9;
    rep->mem_bytes = ckpt_s;
    rep->count = ckpt_bytes;
    rep->sink = sink;
    return BENCH_OK;
}

static int run_mem(client *c, client_report *rep)
{
    if (!c->sys->mem_per_doc)
        return missing(rep, "shm_bytes_per_doc");
    int rc = c->sys->mem_per_doc(c->h, &rep->mem_bytes, rep->err);
    if (rc != BENCH_OK)
        return rc;
    bench_batch b;
    batch_init(&b);
    uint64_t total = 0;
    for (uint64_t k = 0; k < c->cfg->records; k++) {
        batch_clear(&b);
        if (gen_doc(&b, k, 0) != 0) {
            batch_free(&b);
            snprintf(rep->err, sizeof rep->err, "out of memory");
            return BENCH_ERR;
        }
        total += b.docs[0].len;
    }
    batch_free(&b);
    rep->json_bytes = (double)total / (double)c->cfg->records;
    return BENCH_OK;
}

static int run_query(client *c, client_report *rep)
{
    int is_scan = c->wl->kind == WL_SCAN;
    if (is_scan ? !c->sys->scan_filter : !c->sys->group_by)
        return missing(rep, c->wl->name);
    uint64_t in_calls = 0, budget = (uint64_t)(c->cfg->seconds * 1e9);
    int rc = BENCH_OK;
    for (int run = 0; run < SCAN_MAX_RUNS && (run < SCAN_MIN_RUNS || in_calls < budget); run++) {
        uint64_t t0 = now_ns();
        rc = is_scan ? c->sys->scan_filter(c->h, &rep->count, rep->err)
                     : c->sys->group_by(c->h, rep->check, sizeof rep->check, rep->err);
        uint64_t dt = now_ns() - t0;
        if (rc != BENCH_OK)
            break;
        in_calls += dt;
        hist_add(&rep->lat, dt);
        rep->ops++;
    }
    rep->seconds = (double)in_calls / 1e9;
    return rc;
}

/* One timed operation of the request stream; i is its position. */
static int timed_op(client *c, uint64_t i, uint64_t *sink, char *err)
{
    const bench_system *s = c->sys;
    uint64_t e = c->ring[i % KEY_RING];
    uint64_t k = RING_KEY(e);
    switch (c->wl->kind) {
    case WL_READ:
    case WL_GET: {
        char id[BENCH_ID_LEN + 1];
        gen_id(k, id);
        return c->wl->kind == WL_READ ? s->read(c->h, id, sink, err)
                                      : s->get_json(c->h, id, sink, err);
    }
    case WL_PUT: {
        size_t j = i % WRITE_POOL;
        batch_set_id(&c->pool, j, k);
        return s->put(c->h, &c->pool.docs[j], err);
    }
    case WL_BATCH: {
        /* depth consecutive pool documents, viewed as one batch */
        size_t d = (size_t)c->cfg->depth;
        size_t first = (size_t)((i * d) % (WRITE_POOL - WRITE_POOL % d));
        bench_batch view = c->pool;
        view.docs = c->pool.docs + first;
        view.n = d;
        view.text = (char *)c->pool.docs[first].json;
        view.text_len = (size_t)(c->pool.docs[first + d - 1].json + c->pool.docs[first + d - 1].len
                                 + 1 - c->pool.docs[first].json);
        for (size_t j = 0; j < d; j++)
            batch_set_id(&c->pool, first + j, RING_KEY(c->ring[(i * d + j) % KEY_RING]));
        return s->put_batch(c->h, &view, err);
    }
    case WL_MIX: {
        size_t j = i % WRITE_POOL;
        switch (RING_OP(e)) {
        case OP_READ: {
            char id[BENCH_ID_LEN + 1];
            gen_id(k, id);
            return s->read(c->h, id, sink, err);
        }
        case OP_UPDATE:
            batch_set_id(&c->pool, j, k);
            return s->put(c->h, &c->pool.docs[j], err);
        default:
            batch_set_id(&c->pool, j, k);
            return s->rmw(c->h, &c->pool.docs[j], sink, err);
        }
    }
    default:
        snprintf(err, BENCH_ERRLEN, "not a timed workload");
        return BENCH_ERR;
    }
}

static int check_timed_ops(const client *c, client_report *rep)
{
    const bench_system *s = c->sys;
    switch (c->wl->kind) {
    case WL_READ: return s->read ? BENCH_OK : missing(rep, "read");
    case WL_GET: return s->get_json ? BENCH_OK : missing(rep, "get_json");
    case WL_PUT: return s->put ? BENCH_OK : missing(rep, "put");
    case WL_BATCH:
        if (c->cfg->depth < 1 || c->cfg->depth > WRITE_POOL) {
            snprintf(rep->err, sizeof rep->err, "--depth must be 1..%d", WRITE_POOL);
            return BENCH_ERR;
        }
        return s->put_batch ? BENCH_OK : missing(rep, "put_batch");
    case WL_MIX:
        if (!s->read || !s->put || (c->wl->write_op == OP_RMW && !s->rmw))
            return missing(rep, "read, put or read-modify-write");
        return BENCH_OK;
    default: return BENCH_OK;
    }
}

static int run_timed(client *c, client_report *rep)
{
    uint64_t per_op = c->wl->kind == WL_BATCH ? (uint64_t)c->cfg->depth : 1;
    uint64_t t0 = now_ns(), prev = t0, end = t0 + (uint64_t)(c->cfg->seconds * 1e9);
    uint64_t i = 0;
    int rc = BENCH_OK;
    while (prev < end) {
        rc = timed_op(c, i++, &rep->sink, rep->err);
        if (rc != BENCH_OK)
            break;
        uint64_t t = now_ns();
        hist_add(&rep->lat, t - prev);
        prev = t;
        rep->ops += per_op;
    }
    rep->seconds = (double)(prev - t0) / 1e9;
    return rc;
}

static void write_all(int fd, const void *p, size_t n)
{
    const char *q = p;
    while (n) {
        ssize_t w = write(fd, q, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(3);
        q += w;
        n -= (size_t)w;
    }
}

/* Body of a client process: prepare, tell the driver (ready_fd), wait for
 * the start (go_fd closed), run, report (out_fd).  Never returns. */
static void client_main(client *c, int ready_fd, int go_fd, int out_fd)
{
    client_report *rep = calloc(1, sizeof *rep);
    if (!rep)
        _exit(2);
    hist_init(&rep->lat);
    int rc = check_timed_ops(c, rep);
    if (rc == BENCH_OK)
        rc = client_prepare(c, rep->err);
    if (rc == BENCH_OK)
        rc = c->sys->open(c->cfg, &c->h, rep->err);
    char one = 1;
    write_all(ready_fd, &one, 1);
    close(ready_fd);
    char byte;
    while (read(go_fd, &byte, 1) < 0 && errno == EINTR) /* EOF: start */
        ;
    close(go_fd);
    if (rc == BENCH_OK) {
        switch (c->wl->kind) {
        case WL_LOAD: rc = run_load(c, rep); break;
        case WL_MEM: rc = run_mem(c, rep); break;
        case WL_DISK: rc = run_disk(c, rep); break;
        case WL_RESTART: rc = run_restart(c, rep); break;
        case WL_SCAN:
        case WL_GROUP: rc = run_query(c, rep); break;
        default: rc = run_timed(c, rep); break;
        }
    }
    if (c->h)
        c->sys->close(c->h);
    rep->status = rc;
    write_all(out_fd, rep, sizeof *rep);
    close(out_fd);
    free(c->ring);
    batch_free(&c->pool);
    free(rep);
    _exit(0);
}

static int read_all(int fd, void *p, size_t n)
{
    char *q = p;
    while (n) {
        ssize_t r = read(fd, q, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        q += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- the driver side ---- */

static void print_result(const bench_cfg *cfg, const bench_system *sys, const workload *wl,
                         const client_report *sum, double ops_per_sec)
{
    char extra[512];
    switch (wl->kind) {
    case WL_MEM:
        snprintf(extra, sizeof extra,
                 "{\"bytes_per_doc\":%.1f,\"json_bytes_per_doc\":%.1f,\"ratio_to_json\":%.3f}",
                 sum->mem_bytes, sum->json_bytes, sum->mem_bytes / sum->json_bytes);
        printf("RESULT %s %s null null null %s\n", wl->name, sys->name, extra);
        return;
    case WL_DISK:
        snprintf(extra, sizeof extra,
                 "{\"bytes\":%.0f,\"bytes_per_doc\":%.1f,\"durable_seconds\":%.3f}",
                 sum->mem_bytes, sum->mem_bytes / (double)cfg->records, sum->seconds);
        printf("RESULT %s %s null null null %s\n", wl->name, sys->name, extra);
        return;
    case WL_RESTART:
        snprintf(extra, sizeof extra,
                 "{\"restart_seconds\":%.3f,\"checkpoint_seconds\":%.3f,\"checkpoint_bytes\":%llu,"
                 "\"checkpoint_mb_per_s\":%.1f}",
                 sum->seconds, sum->mem_bytes, (unsigned long long)sum->count,
                 sum->mem_bytes > 0 ? (double)sum->count / 1048576.0 / sum->mem_bytes : 0.0);
        break;
    case WL_SCAN:
        snprintf(extra, sizeof extra, "{\"check\":\"%llu\",\"runs\":%llu,\"docs_per_sec\":%.0f}",
                 (unsigned long long)sum->count, (unsigned long long)sum->ops,
                 ops_per_sec * (double)cfg->records);
        break;
    case WL_GROUP:
        snprintf(extra, sizeof extra, "{\"check\":\"%s\",\"runs\":%llu,\"docs_per_sec\":%.0f}",
                 sum->check, (unsigned long long)sum->ops, ops_per_sec * (double)cfg->records);
        break;
    case WL_LOAD:
        snprintf(extra, sizeof extra, "{\"batch\":%d,\"latency\":\"per batch\"}", LOAD_BATCH);
        break;
    case WL_BATCH:
        snprintf(extra, sizeof extra, "{\"clients\":%d,\"depth\":%d,\"latency\":\"per batch\"}",
                 cfg->clients, cfg->depth);
        break;
    default:
        snprintf(extra, sizeof extra, "{\"clients\":%d}", cfg->clients);
        break;
    }
    printf("RESULT %s %s %.1f %.2f %.2f %s\n", wl->name, sys->name, ops_per_sec,
           hist_quantile(&sum->lat, 0.50) / 1000.0, hist_quantile(&sum->lat, 0.99) / 1000.0,
           extra);
}

static int run_workload(const bench_cfg *cfg, const bench_system *sys, const workload *wl)
{
    char err[BENCH_ERRLEN] = "";
    int rc = sys->prepare ? sys->prepare(cfg, err) : BENCH_OK;
    if (rc == BENCH_SKIP) {
        printf("SKIP %s %s %s\n", wl->name, sys->name, err);
        return 0;
    }
    if (rc != BENCH_OK) {
        fprintf(stderr, "bench_%s: %s: prepare: %s\n", sys->name, wl->name, err);
        return 1;
    }
    int n = wl->kind == WL_BATCH || wl->kind == WL_PUT || wl->kind == WL_READ ? cfg->clients : 1;
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    int *outs = calloc((size_t)n, sizeof *outs);
    client_report *rep = calloc(1, sizeof *rep), *sum = calloc(1, sizeof *sum);
    int ready[2] = {-1, -1}, go[2] = {-1, -1};
    int status = 1, started = 0;
    if (!pids || !outs || !rep || !sum || pipe(ready) != 0 || pipe(go) != 0) {
        fprintf(stderr, "bench_%s: %s\n", sys->name, strerror(errno));
        goto out;
    }
    fflush(stdout);
    for (; started < n; started++) {
        int o[2];
        if (pipe(o) != 0) {
            fprintf(stderr, "bench_%s: pipe: %s\n", sys->name, strerror(errno));
            goto out;
        }
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "bench_%s: fork: %s\n", sys->name, strerror(errno));
            close(o[0]);
            close(o[1]);
            goto out;
        }
        if (pid == 0) {
            close(ready[0]);
            close(go[1]);
            close(o[0]);
            client c = {.cfg = cfg, .sys = sys, .wl = wl, .index = started};
            client_main(&c, ready[1], go[0], o[1]);
        }
        close(o[1]);
        pids[started] = pid;
        outs[started] = o[0];
    }
    close(ready[1]);
    ready[1] = -1;
    for (int i = 0; i < n; i++) { /* every client has built its stream */
        char b;
        if (read_all(ready[0], &b, 1) != 0) {
            fprintf(stderr, "bench_%s: a client died while preparing\n", sys->name);
            goto out;
        }
    }
    close(go[1]); /* start */
    go[1] = -1;
    hist_init(&sum->lat);
    double ops_per_sec = 0;
    int skipped = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        if (read_all(outs[i], rep, sizeof *rep) != 0) {
            fprintf(stderr, "bench_%s: %s: client %d died\n", sys->name, wl->name, i);
            failed = 1;
            continue;
        }
        if (rep->status == BENCH_SKIP) {
            if (!skipped)
                printf("SKIP %s %s %s\n", wl->name, sys->name, rep->err);
            skipped = 1;
            continue;
        }
        if (rep->status != BENCH_OK) {
            fprintf(stderr, "bench_%s: %s: client %d: %s\n", sys->name, wl->name, i, rep->err);
            failed = 1;
            continue;
        }
        sum->ops += rep->ops;
        sum->sink += rep->sink;
        sum->mem_bytes = rep->mem_bytes;
        sum->seconds = rep->seconds;
        sum->json_bytes = rep->json_bytes;
        sum->count = rep->count;
        memcpy(sum->check, rep->check, sizeof sum->check);
        if (rep->seconds > 0)
            ops_per_sec += (double)rep->ops / rep->seconds;
        hist_merge(&sum->lat, &rep->lat);
    }
    if (!failed && !skipped)
        print_result(cfg, sys, wl, sum, ops_per_sec);
    if (sum->sink == 1) /* never true in practice; makes the sink observable */
        fprintf(stderr, "sink\n");
    status = failed;
out:
    for (int i = 0; i < started; i++) {
        if (status != 0 && pids[i] > 0)
            kill(pids[i], SIGKILL);
        int st;
        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
            ;
        close(outs[i]);
    }
    for (int i = 0; i < 2; i++) {
        if (ready[i] >= 0)
            close(ready[i]);
        if (go[i] >= 0)
            close(go[i]);
    }
    free(pids);
    free(outs);
    free(rep);
    free(sum);
    fflush(stdout);
    return status;
}

static void usage(FILE *f, const char *name)
{
    fprintf(f,
            "usage: bench_%s --workload W --dir DIR [--records N] [--seconds S]\n"
            "       [--clients C] [--depth D] [--seed X] [--socket PATH] [--coordinator PATH]\n"
            "workloads:",
            name);
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
        fprintf(f, " %s", workloads[i].name);
    fprintf(f, "\n");
}

int bench_main(int argc, char **argv, const bench_system *sys)
{
    static const struct option opts[] = {
        {"workload", required_argument, NULL, 'w'}, {"dir", required_argument, NULL, 'd'},
        {"records", required_argument, NULL, 'n'},  {"seconds", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'c'},  {"depth", required_argument, NULL, 'D'},
        {"seed", required_argument, NULL, 'S'},     {"socket", required_argument, NULL, 'u'},
        {"coordinator", required_argument, NULL, 'C'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    bench_cfg cfg = {.records = 100000, .seconds = 2.0, .clients = 0, .depth = 16, .seed = 42};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'w': cfg.workload = optarg; break;
        case 'd': cfg.dir = optarg; break;
        case 'n': cfg.records = strtoull(optarg, NULL, 10); break;
        case 's': cfg.seconds = strtod(optarg, NULL); break;
        case 'c': cfg.clients = atoi(optarg); break;
        case 'D': cfg.depth = atoi(optarg); break;
        case 'S': cfg.seed = strtoull(optarg, NULL, 10); break;
        case 'u': cfg.socket = optarg; break;
        case 'C': cfg.coordinator = optarg; break;
        case 'h': usage(stdout, sys->name); return 0;
        default: usage(stderr, sys->name); return 2;
        }
    }
    const workload *wl = NULL;
    for (size_t i = 0; cfg.workload && i < sizeof workloads / sizeof workloads[0]; i++)
        if (strcmp(workloads[i].name, cfg.workload) == 0)
            wl = &workloads[i];
    if (!wl || !cfg.dir || cfg.records == 0 || cfg.seconds <= 0 || cfg.clients < 0) {
        usage(stderr, sys->name);
        return 2;
    }
    if (cfg.clients == 0)
        cfg.clients = wl->clients;
    cfg.sync = wl->sync;
    cfg.writes = wl->kind == WL_LOAD || wl->kind == WL_PUT || wl->kind == WL_BATCH ||
                 (wl->kind == WL_MIX && wl->read_frac < 1.0);
    return run_workload(&cfg, sys, wl);
}
