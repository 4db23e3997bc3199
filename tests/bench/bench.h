/*
 * bench.h - the shared part of the benchmark drivers (tests/bench/).
 *
 * One driver per system (bench_dotdb, bench_lmdb, bench_sqlite,
 * bench_redis) runs the same workloads over the same data and the same
 * request stream.  A driver only says how to do each basic operation on its
 * system (a bench_system table of callbacks); everything that must be the
 * same for all of them lives here and in gen.c, hist.c and runner.c:
 *
 *   gen.c     the records (deterministic ~250-byte JSON documents) and the
 *             key choice (uniform, scrambled zipfian; fixed seed)
 *   hist.c    latency histogram (log-linear buckets, ~3% precision)
 *   runner.c  argument parsing, the workloads, client processes, result
 *             lines
 *
 * Command line of every driver (scripts/bench.sh passes these):
 *   bench_X --workload W --dir DIR [--records N] [--seconds S] [--clients C]
 *           [--depth D] [--seed X] [--socket PATH] [--coordinator PATH]
 * Output on stdout, one line per result, fields separated by one space:
 *   RESULT <workload> <system> <ops_per_sec> <p50_us> <p99_us> <extra>
 * where a figure that does not apply is "null" and <extra> is a JSON object
 * of additional fields ({} if none).  A workload the system cannot run
 * prints "SKIP <workload> <system> <reason>" and exits 0.  Errors go to
 * stderr with exit status 1.
 *
 * Processes: every measured client runs in its own process forked from the
 * driver (so a system's handle, environment or connection is never shared
 * across fork); clients build their request streams first, then wait on a
 * start barrier, run until the deadline and send their histograms back
 * through a pipe.  ops_per_sec is the sum over clients of operations
 * divided by that client's wall-clock time.
 */
#ifndef DOTDB_BENCH_H
#define DOTDB_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* ---- status of a system callback ---- */
#define BENCH_OK 0
#define BENCH_ERR (-1)  /* failure; message in the errbuf */
#define BENCH_SKIP 1    /* not supported by this system; reason in the errbuf */

#define BENCH_ERRLEN 512

/* Durability asked of the writes of a workload. */
enum bench_sync {
    BENCH_SYNC_NORMAL = 0, /* acknowledged after the write reaches the OS */
    BENCH_SYNC_FULL = 1,   /* acknowledged after fsync */
};

/* The configuration of one driver run (from the command line). */
typedef struct bench_cfg {
    const char *workload;
    const char *dir;         /* this system's data directory (created if absent) */
    const char *socket;      /* Redis Unix socket */
    const char *coordinator; /* dotdbd binary */
    uint64_t records;        /* documents loaded by `load` */
    double seconds;          /* duration of each timed workload */
    int clients;             /* processes of the multi-client workloads */
    int depth;               /* documents per batch / in flight (pipelined_put) */
    uint64_t seed;
    enum bench_sync sync;    /* set by the runner from the workload */
    int writes;              /* set by the runner: 1 if the workload writes */
} bench_cfg;

/* A document: its id (fixed width, NUL-terminated) and its JSON text. */
#define BENCH_ID_LEN 11 /* "u" + 10 digits */
typedef struct bench_doc {
    char id[BENCH_ID_LEN + 1];
    const char *json;
    size_t len;
} bench_doc;

/* A batch of documents: the JSON texts one after another, separated by
 * '\n' (JSON lines, what dotdb_put_many takes), and a view of each. */
typedef struct bench_batch {
    char *text;
    size_t text_len, text_cap;
    bench_doc *docs;
    size_t n, cap;
} bench_batch;

/* What a driver implements.  `h` is the per-process handle made by open.
 * Every callback returns BENCH_OK, BENCH_SKIP or BENCH_ERR (message in err,
 * BENCH_ERRLEN bytes).  A NULL callback means BENCH_SKIP "not supported". */
typedef struct bench_system {
    const char *name;
    /* In the driver process before the workload's clients start: create the
     * schema, switch the durability mode of a server (cfg->sync), ... */
    int (*prepare)(const bench_cfg *cfg, char *err);
    /* In each client process: connect / open. */
    int (*open)(const bench_cfg *cfg, void **h, char *err);
    void (*close)(void *h);
    /* Insert a batch in one transaction / round trip (load). */
    int (*load)(void *h, const bench_batch *b, char *err);
    /* Point read: look the document up and touch it; add to *sink. */
    int (*read)(void *h, const char *id, uint64_t *sink, char *err);
    /* The document as a JSON string owned by the caller, then freed. */
    int (*get_json)(void *h, const char *id, uint64_t *sink, char *err);
    /* Store one document, one request, acknowledged per cfg->sync. */
    int (*put)(void *h, const bench_doc *d, char *err);
    /* Store b->n documents batched or pipelined (all in flight at once). */
    int (*put_batch)(void *h, const bench_batch *b, char *err);
    /* Read `d->id`, then store d (read-modify-write, YCSB F). */
    int (*rmw)(void *h, const bench_doc *d, uint64_t *sink, char *err);
    /* Count the documents with age > 25. */
    int (*scan_filter)(void *h, uint64_t *count, char *err);
    /* Average score by city: one "city=avg" per city, sorted by city,
     * separated by ',' in out (outlen bytes). */
    int (*group_by)(void *h, char *out, size_t outlen, char *err);
    /* Bytes of the store's own memory per document (DotDB shared memory). */
    int (*mem_per_doc)(void *h, double *bytes, char *err);
    /* restart / disk_bytes: make everything durable in the files of
     * cfg->dir (DotDB: a checkpoint; SQLite: a WAL checkpoint; LMDB: a
     * forced sync); *seconds and *bytes say what that took and wrote. */
    int (*durable)(void *h, double *seconds, uint64_t *bytes, char *err);
    /* restart: stop the server side (DotDB: the coordinator) after close,
     * and start it again (returns once it serves). NULL: nothing to do. */
    int (*stop)(const bench_cfg *cfg, char *err);
    int (*start)(const bench_cfg *cfg, char *err);
} bench_system;

/* The driver's main: parse argv, run cfg.workload, print the result.
 * Returns the process exit status. */
int bench_main(int argc, char **argv, const bench_system *sys);

/* ---- gen.c: records and keys ---- */

/* Write id of key k ("u0000000042") into out (BENCH_ID_LEN+1 bytes). */
void gen_id(uint64_t k, char *out);
/* Append document (k, variant) to b.  variant 0 is the loaded version; the
 * write workloads use other variants (same id, other content).  Returns 0
 * or -1 (out of memory). */
int gen_doc(bench_batch *b, uint64_t k, uint64_t variant);
void batch_init(bench_batch *b);
void batch_clear(bench_batch *b);
void batch_free(bench_batch *b);
/* Rewrite the id of document i of b in place (ids are fixed width). */
void batch_set_id(bench_batch *b, size_t i, uint64_t k);

/* 64-bit PRNG (splitmix64 stream). */
typedef struct gen_rng {
    uint64_t s;
} gen_rng;
uint64_t gen_next(gen_rng *r);
double gen_unit(gen_rng *r); /* [0, 1) */

/* Scrambled zipfian over [0, n) with theta 0.99 (YCSB's default): rank r
 * is drawn with Gray et al.'s method and hashed to a key, so the hot keys
 * are spread over the key space. */
typedef struct gen_zipf {
    uint64_t n;
    double theta, alpha, zetan, eta, zeta2;
} gen_zipf;
void gen_zipf_init(gen_zipf *z, uint64_t n);
uint64_t gen_zipf_next(gen_zipf *z, gen_rng *r);

/* ---- hist.c: latency histogram in nanoseconds ---- */
#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB * 42)
typedef struct hist {
    uint64_t count;
    uint64_t max_ns;
    uint64_t b[HIST_BUCKETS];
} hist;
void hist_init(hist *h);
void hist_add(hist *h, uint64_t ns);
void hist_merge(hist *into, const hist *from);
/* The value below which a fraction q (0..1) of the samples lie, in ns
 * (the middle of its bucket); 0 when empty. */
double hist_quantile(const hist *h, double q);

#endif /* DOTDB_BENCH_H */
