/*
 * stress_mp.c - the multi-process stress run of scripts/stress.sh: a real
 * coordinator, reader processes and writer processes on one database, for
 * a given time.  ThreadSanitizer cannot see across processes; here every
 * read checks what it sees instead:
 *
 *   - every document carries "sum" = XXH64 of its other fields, so a torn
 *     read, a reclaimed and reused version, or a version of another
 *     document shows up as a mismatch;
 *   - writers own their keys and only ever raise a key's "seq", so within
 *     one snapshot and across the snapshots of one process the seq seen
 *     for a key never goes back (and the snapshot LSN never does);
 *   - pairs are written in one transaction with the same seq, so a
 *     snapshot that sees the halves differ saw half a batch;
 *   - the scratch collection "x" is dropped and refilled (one batch) over
 *     and over: a snapshot sees all of one generation or none;
 *   - a long snapshot re-reads its keys for a second or two while writers
 *     go on: nothing it sees may change;
 *   - at the end, every acknowledged write is there (then again after a
 *     restart from checkpoint + WAL).
 * Readers use zero-copy point reads (dotdb_txn_get), scans (dotdb_find,
 * dotdb_cursor_next_view) and long snapshots.  The coordinator runs with a
 * 16-slot initial hash table (so tables grow), frequent checkpoints (so
 * the checkpoint pin is exercised) and sync_mode normal.
 *
 *   dotdb_stress [--seconds N] [--readers N] [--writers N] [--keep]
 * Exit 0 when every check passed; the first failure of each process is
 * printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "dotdb.h"

#define MAX_WRITERS 16
#define MAX_READERS 64
#define KEYS 48        /* single keys per writer */
#define PAIRS 8        /* pairs per writer */
#define XDOCS 12       /* documents per generation of "x" */
#define MAX_PAD 120

static double g_seconds = 300;
static int g_readers = 16, g_writers = 3;
static char g_dir[256], g_config[300];

typedef struct result {
    int role;          /* 0 reader, 1 writer */
    int index;
    int bad;
    uint64_t snaps, point_reads, scans, scan_docs, long_snaps, long_rereads, x_reads;
    uint64_t docs_checked, writes, pair_txns, deletes, drops;
    char first_bad[300];
} result;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void bad(result *r, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->bad++ == 0) {
        snprintf(r->first_bad, sizeof r->first_bad, "%s", msg);
        fprintf(stderr, "dotdb_stress: %s %d: %s\n", r->role ? "writer" : "reader", r->index, msg);
    }
}

/* ---- documents: {"id","w","k","seq","pad","sum"} ---- */

static uint64_t doc_sum(const char *id, size_t id_len, int64_t w, int64_t k, int64_t seq,
                        const char *pad, size_t pad_len)
{
    XXH64_state_t *st = XXH64_createState();
    XXH64_reset(st, 0x73747265737321ull);
    XXH64_update(st, id, id_len);
    int64_t nums[3] = {w, k, seq};
    XXH64_update(st, nums, sizeof nums);
    XXH64_update(st, pad, pad_len);
    uint64_t h = XXH64_digest(st);
    XXH64_freeState(st);
    return h >> 1;
}

static int make_doc(char *out, size_t len, const char *id, int64_t w, int64_t k, int64_t seq)
{
    char pad[MAX_PAD + 1];
    size_t pad_len = (size_t)((uint64_t)(seq * 7 + k * 13 + w) % MAX_PAD);
    for (size_t i = 0; i < pad_len; i++)
        pad[i] = (char)('a' + (uint64_t)(seq + (int64_t)i) % 26);
    pad[pad_len] = 0;
    uint64_t sum = doc_sum(id, strlen(id), w, k, seq, pad, pad_len);
    return snprintf(out, len,
                    "{\"id\":\"%s\",\"w\":%" PRId64 ",\"k\":%" PRId64 ",\"seq\":%" PRId64
                    ",\"pad\":\"%s\",\"sum\":%" PRIu64 "}",
                    id, w, k, seq, pad, sum);
}

typedef struct docinfo {
    int64_t w, k, seq;
} docinfo;

static int64_t field_int(const dotdb_doc *d, const char *name, int *ok)
{
    dotdb_value v;
    if (dotdb_doc_get(d, name, &v) != DOTDB_OK || v.type != DOTDB_T_INT) {
        *ok = 0;
        return -1;
    }
    return v.i;
}

/* Check a document view: its checksum, and its id if want_id. */
static int check_doc(result *r, const dotdb_doc *d, const char *want_id, docinfo *out)
{
    int ok = 1;
    int64_t w = field_int(d, "w", &ok), k = field_int(d, "k", &ok);
    int64_t seq = field_int(d, "seq", &ok), sum = field_int(d, "sum", &ok);
    dotdb_value pad;
    if (dotdb_doc_get(d, "pad", &pad) != DOTDB_OK || pad.type != DOTDB_T_STRING)
        ok = 0;
    if (!ok || d->id == NULL ||
        (uint64_t)sum != doc_sum(d->id, d->id_len, w, k, seq, pad.str, pad.str_len)) {
        bad(r, "torn or recycled document \"%.*s\" (checksum mismatch)", d->id ? (int)d->id_len : 0,
            d->id ? d->id : "");
        return 0;
    }
    if (want_id && (d->id_len != strlen(want_id) || memcmp(d->id, want_id, d->id_len) != 0)) {
        bad(r, "asked for \"%s\", got \"%.*s\"", want_id, (int)d->id_len, d->id);
        return 0;
    }
    r->docs_checked++;
    *out = (docinfo){w, k, seq};
    return 1;
}

static void key_id(char *buf, size_t len, int w, int k) { snprintf(buf, len, "w%d-k%02d", w, k); }
static void pair_id(char *buf, size_t len, int w, int p, char side)
{
    snprintf(buf, len, "w%d-p%d%c", w, p, side);
}

/* ---- the coordinator ---- */

static pid_t start_coordinator(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char log[400];
        snprintf(log, sizeof log, "%s.log", g_dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(DOTDBD_PATH, "dotdbd", "--db", g_dir, "--foreground", "--config", g_config,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static dotdb *open_db(void)
{
    dotdb_options o = {.no_autostart = 1, .query_threads = 1};
    dotdb *db = NULL;
    uint64_t deadline = now_ms() + 30000;
    int rc;
    while ((rc = dotdb_open(g_dir, &o, &db)) != DOTDB_OK && now_ms() < deadline)
        sleep_ms(10);
    if (rc != DOTDB_OK) {
        fprintf(stderr, "dotdb_stress: dotdb_open(%s): %s\n", g_dir, dotdb_errmsg(NULL));
        exit(2);
    }
    return db;
}

static int stop_coordinator(pid_t pid)
{
    kill(pid, SIGTERM);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- writers ---- */

typedef struct ack {
    int64_t seq[KEYS];      /* last acknowledged seq of each key */
    int deleted[KEYS];      /* its last acknowledged write was a delete */
    int64_t pair_seq[PAIRS];
} ack;

static int put(result *r, dotdb *db, const char *coll, const char *id, int w, int k, int64_t seq)
{
    char json[MAX_PAD + 200];
    int n = make_doc(json, sizeof json, id, w, k, seq);
    int rc = dotdb_put(db, coll, json, (size_t)n, NULL);
    if (rc != DOTDB_OK)
        bad(r, "put %s: %s", id, dotdb_errmsg(db));
    return rc == DOTDB_OK;
}

static void write_ack(int w, const ack *a)
{
    char path[400], tmp[420];
    snprintf(path, sizeof path, "%s.ack%d", g_dir, w);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL || fwrite(a, sizeof *a, 1, f) != 1 || fclose(f) != 0 || rename(tmp, path) != 0) {
        perror("ack file");
        exit(2);
    }
}

static int read_ack(int w, ack *a)
{
    char path[400];
    snprintf(path, sizeof path, "%s.ack%d", g_dir, w);
    FILE *f = fopen(path, "rb");
    int ok = f && fread(a, sizeof *a, 1, f) == 1;
    if (f)
        fclose(f);
    return ok;
}

static void writer_main(int w, uint64_t deadline, result *r)
{
    dotdb *db = open_db();
    ack a;
    memset(&a, 0, sizeof a);
    uint64_t rng = 0x853c49e6748fea9bull + (uint64_t)w * 0x9e3779b97f4a7c15ull;
    int64_t seq = 0, xgen = 0;
    char id[64], id2[64];
    /* every key exists from the start */
    for (int k = 0; k < KEYS && !r->bad; k++) {
        key_id(id, sizeof id, w, k);
        if (put(r, db, "s", id, w, k, ++seq))
            a.seq[k] = seq;
    }
    while (now_ms() < deadline && !r->bad) {
        uint64_t x = rng_next(&rng) % 100;
        if (x < 60) {
            int k = (int)(rng_next(&rng) % KEYS);
            key_id(id, sizeof id, w, k);
            if (put(r, db, "s", id, w, k, ++seq)) {
                a.seq[k] = seq;
                a.deleted[k] = 0;
                r->writes++;
            }
        } else if (x < 85) {
            /* a pair in one transaction: both halves get the same seq */
            int p = (int)(rng_next(&rng) % PAIRS);
            pair_id(id, sizeof id, w, p, 'a');
            pair_id(id2, sizeof id2, w, p, 'b');
            dotdb_txn *t = NULL;
            char ja[MAX_PAD + 200], jb[MAX_PAD + 200];
            ++seq;
            int na = make_doc(ja, sizeof ja, id, w, 1000 + p, seq);
            int nb = make_doc(jb, sizeof jb, id2, w, 2000 + p, seq);
            int rc = dotdb_txn_begin(db, 0, &t);
            if (rc == DOTDB_OK)
                rc = dotdb_txn_put(t, "s", ja, (size_t)na, NULL);
            if (rc == DOTDB_OK)
                rc = dotdb_txn_put(t, "s", jb, (size_t)nb, NULL);
            if (rc == DOTDB_OK) {
                rc = dotdb_txn_commit(t);
                t = NULL;
            }
            dotdb_txn_abort(t);
            if (rc != DOTDB_OK) {
                bad(r, "pair transaction: %s", dotdb_errmsg(db));
            } else {
                a.pair_seq[p] = seq;
                r->pair_txns++;
            }
        } else if (x < 95) {
            int k = (int)(rng_next(&rng) % KEYS);
            if (a.deleted[k])
                continue;
            key_id(id, sizeof id, w, k);
            int rc = dotdb_delete(db, "s", id);
            if (rc != DOTDB_OK) {
                bad(r, "delete %s: %s", id, dotdb_errmsg(db));
            } else {
                a.deleted[k] = 1;
                r->deletes++;
            }
        } else if (w == 0) {
            /* drop the scratch collection and refill it in one batch */
            int rc = dotdb_drop_collection(db, "x");
            if (rc != DOTDB_OK && rc != DOTDB_ENOCOLL) {
                bad(r, "drop x: %s", dotdb_errmsg(db));
                continue;
            }
            xgen++;
            char buf[XDOCS * (MAX_PAD + 200)];
            size_t used = 0;
            for (int k = 0; k < XDOCS; k++) {
                snprintf(id, sizeof id, "x%02d", k);
                used += (size_t)make_doc(buf + used, sizeof buf - used, id, xgen, k, xgen);
                buf[used++] = '\n';
            }
            size_t count = 0;
            rc = dotdb_put_many(db, "x", buf, used, &count);
            if (rc != DOTDB_OK || count != XDOCS)
                bad(r, "put_many x: %s", dotdb_errmsg(db));
            r->drops++;
        }
    }
    write_ack(w, &a);
    dotdb_close(db);
}

/* ---- readers ---- */

typedef struct seen {
    int64_t key[MAX_WRITERS][KEYS];
    int64_t pair[MAX_WRITERS][PAIRS];
    int64_t xgen;
    uint64_t lsn;
} seen;

/* A seq seen for a key: never lower than the last one this process saw. */
static void saw(result *r, int64_t *last, int64_t seq, const char *id)
{
    if (seq < *last)
        bad(r, "%s went back from seq %" PRId64 " to %" PRId64, id, *last, seq);
    else
        *last = seq;
}

static int txn_begin_checked(result *r, dotdb *db, seen *sn, dotdb_txn **t)
{
    int rc = dotdb_txn_begin(db, DOTDB_TXN_READONLY, t);
    if (rc != DOTDB_OK) {
        bad(r, "txn_begin: %s", dotdb_errmsg(db));
        return 0;
    }
    uint64_t lsn = dotdb_txn_lsn(*t);
    if (lsn < sn->lsn)
        bad(r, "snapshot LSN went back from %" PRIu64 " to %" PRIu64, sn->lsn, lsn);
    sn->lsn = lsn;
    r->snaps++;
    return 1;
}

/* Point read of id in t: 1 found (checked), 0 absent, -1 error. */
static int get(result *r, dotdb_txn *t, const char *id, docinfo *di)
{
    dotdb_doc d;
    int rc = dotdb_txn_get(t, "s", id, &d);
    if (rc == DOTDB_ENOTFOUND)
        return 0;
    if (rc != DOTDB_OK) {
        bad(r, "txn_get %s: %s", id, dotdb_strerror(rc));
        return -1;
    }
    r->point_reads++;
    return check_doc(r, &d, id, di) ? 1 : -1;
}

static void read_pair(result *r, dotdb_txn *t, seen *sn, int w, int p, int64_t *seq_out)
{
    char a[64], b[64];
    docinfo da, db;
    pair_id(a, sizeof a, w, p, 'a');
    pair_id(b, sizeof b, w, p, 'b');
    int ra = get(r, t, a, &da), rb = get(r, t, b, &db);
    if (ra < 0 || rb < 0)
        return;
    if (ra != rb || (ra && da.seq != db.seq)) {
        bad(r, "half a transaction: %s %s seq %" PRId64 ", %s %s seq %" PRId64, a,
            ra ? "present" : "absent", ra ? da.seq : 0, b, rb ? "present" : "absent",
            rb ? db.seq : 0);
        return;
    }
    if (ra)
        saw(r, &sn->pair[w][p], da.seq, a);
    *seq_out = ra ? da.seq : 0;
}

static void point_snapshot(result *r, dotdb *db, seen *sn, uint64_t *rng)
{
    dotdb_txn *t;
    if (!txn_begin_checked(r, db, sn, &t))
        return;
    char id[64];
    docinfo di, again;
    for (int i = 0; i < 24; i++) {
        int w = (int)(rng_next(rng) % (uint64_t)g_writers), k = (int)(rng_next(rng) % KEYS);
        key_id(id, sizeof id, w, k);
        int rc = get(r, t, id, &di);
        if (rc == 1) {
            saw(r, &sn->key[w][k], di.seq, id);
            /* the same key again in the same snapshot: the same version */
            if (get(r, t, id, &again) != 1 || again.seq != di.seq)
                bad(r, "%s changed within one snapshot", id);
        }
    }
    for (int i = 0; i < 4; i++) {
        int64_t s;
        read_pair(r, t, sn, (int)(rng_next(rng) % (uint64_t)g_writers),
                  (int)(rng_next(rng) % PAIRS), &s);
    }
    dotdb_txn_abort(t);
}

static void scan_snapshot(result *r, dotdb *db, seen *sn)
{
    dotdb_cursor *cur;
    int rc = dotdb_find(db, "s", NULL, NULL, &cur);
    if (rc != DOTDB_OK) {
        bad(r, "find: %s", dotdb_errmsg(db));
        return;
    }
    static int64_t pa[MAX_WRITERS][PAIRS], pb[MAX_WRITERS][PAIRS];
    memset(pa, 0, sizeof pa);
    memset(pb, 0, sizeof pb);
    dotdb_doc d;
    docinfo di;
    char id[64];
    while ((rc = dotdb_cursor_next_view(cur, &d)) == DOTDB_OK) {
        if (!check_doc(r, &d, NULL, &di))
            break;
        r->scan_docs++;
        if (di.w < 0 || di.w >= g_writers) {
            bad(r, "scan: document of unknown writer %" PRId64, di.w);
            break;
        }
        snprintf(id, sizeof id, "%.*s", (int)d.id_len, d.id);
        if (di.k >= 0 && di.k < KEYS)
            saw(r, &sn->key[di.w][di.k], di.seq, id);
        else if (di.k >= 1000 && di.k < 1000 + PAIRS)
            pa[di.w][di.k - 1000] = di.seq;
        else if (di.k >= 2000 && di.k < 2000 + PAIRS)
            pb[di.w][di.k - 2000] = di.seq;
    }
    if (rc != DOTDB_EDONE && rc != DOTDB_OK)
        bad(r, "cursor: %s", dotdb_strerror(rc));
    dotdb_cursor_close(cur);
    for (int w = 0; w < g_writers; w++)
        for (int p = 0; p < PAIRS; p++) {
            if (pa[w][p] != pb[w][p])
                bad(r, "scan saw half a transaction: pair w%d-p%d seq %" PRId64 " / %" PRId64, w,
                    p, pa[w][p], pb[w][p]);
            else if (pa[w][p])
                saw(r, &sn->pair[w][p], pa[w][p], "pair (scan)");
        }
    r->scans++;
}

/* One snapshot held for about a second while the writers go on. */
static void long_snapshot(result *r, dotdb *db, seen *sn, uint64_t *rng)
{
    dotdb_txn *t;
    if (!txn_begin_checked(r, db, sn, &t))
        return;
    enum { N = 32 };
    char ids[N][64];
    int found[N];
    docinfo first[N], again;
    const uint8_t *where[N];
    for (int i = 0; i < N; i++) {
        int w = (int)(rng_next(rng) % (uint64_t)g_writers), k = (int)(rng_next(rng) % KEYS);
        key_id(ids[i], sizeof ids[i], w, k);
        dotdb_doc d;
        found[i] = dotdb_txn_get(t, "s", ids[i], &d) == DOTDB_OK;
        where[i] = found[i] ? d.data : NULL;
        if (found[i] && check_doc(r, &d, ids[i], &first[i]))
            saw(r, &sn->key[w][k], first[i].seq, ids[i]);
    }
    uint64_t until = now_ms() + 500 + rng_next(rng) % 1500;
    while (now_ms() < until && !r->bad) {
        for (int i = 0; i < N; i++) {
            dotdb_doc d;
            int rc = dotdb_txn_get(t, "s", ids[i], &d);
            if ((rc == DOTDB_OK) != found[i] || (found[i] && d.data != where[i])) {
                bad(r, "%s changed within a long snapshot", ids[i]);
                break;
            }
            if (found[i] && (!check_doc(r, &d, ids[i], &again) || again.seq != first[i].seq))
                break;
        }
        r->long_rereads++;
        sleep_ms(20);
    }
    dotdb_txn_abort(t);
    r->long_snaps++;
}

/* The scratch collection: one whole generation, or nothing. */
static void x_snapshot(result *r, dotdb *db, seen *sn)
{
    dotdb_cursor *cur;
    int rc = dotdb_find(db, "x", NULL, NULL, &cur);
    r->x_reads++;
    if (rc == DOTDB_ENOCOLL)
        return;
    if (rc != DOTDB_OK) {
        bad(r, "find x: %s", dotdb_errmsg(db));
        return;
    }
    dotdb_doc d;
    docinfo di;
    int64_t gen = -1, n = 0;
    while ((rc = dotdb_cursor_next_view(cur, &d)) == DOTDB_OK) {
        if (!check_doc(r, &d, NULL, &di))
            break;
        if (gen < 0)
            gen = di.w;
        if (di.w != gen) {
            bad(r, "collection x mixes generations %" PRId64 " and %" PRId64, gen, di.w);
            break;
        }
        n++;
    }
    dotdb_cursor_close(cur);
    if (!r->bad && n != 0 && n != XDOCS)
        bad(r, "collection x generation %" PRId64 " has %" PRId64 " of %d documents", gen, n, XDOCS);
    if (n)
        saw(r, &sn->xgen, gen, "collection x generation");
}

static void reader_main(int idx, uint64_t deadline, result *r)
{
    dotdb *db = open_db();
    static seen sn;
    memset(&sn, 0, sizeof sn);
    uint64_t rng = 0xda3e39cb94b95bdbull ^ ((uint64_t)idx << 32);
    while (now_ms() < deadline && !r->bad) {
        uint64_t x = rng_next(&rng) % 20;
        if (x < 10)
            point_snapshot(r, db, &sn, &rng);
        else if (x < 16)
            scan_snapshot(r, db, &sn);
        else if (x < 17 && idx % 4 == 0)
            long_snapshot(r, db, &sn, &rng);
        else
            x_snapshot(r, db, &sn);
    }
    dotdb_close(db);
}

/* ---- the parent ---- */

/* Every acknowledged write is there, as acknowledged. */
static int check_acks(const char *when, char *msg, size_t len)
{
    dotdb *db = open_db();
    dotdb_txn *t = NULL;
    int failures = 0;
    uint64_t checked = 0;
    msg[0] = 0;
    if (dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t) != DOTDB_OK) {
        snprintf(msg, len, "txn_begin: %s", dotdb_errmsg(db));
        dotdb_close(db);
        return 0;
    }
    result dummy = {.index = -1};
    for (int w = 0; w < g_writers; w++) {
        ack a;
        if (!read_ack(w, &a)) {
            snprintf(msg, len, "writer %d left no record of its acknowledgements", w);
            failures++;
            continue;
        }
        char id[64];
        docinfo di;
        for (int k = 0; k < KEYS + PAIRS; k++) {
            int is_pair = k >= KEYS;
            if (is_pair)
                pair_id(id, sizeof id, w, k - KEYS, 'a');
            else
                key_id(id, sizeof id, w, k);
            int64_t want = is_pair ? a.pair_seq[k - KEYS] : a.seq[k];
            int want_present = is_pair ? want != 0 : !a.deleted[k];
            int rc = get(&dummy, t, id, &di);
            checked++;
            if (rc != want_present || (rc == 1 && di.seq != want)) {
                if (failures++ == 0)
                    snprintf(msg, len, "%s: %s is %s seq %" PRId64 ", acknowledged %s seq %" PRId64,
                             when, id, rc == 1 ? "present" : "absent", rc == 1 ? di.seq : 0,
                             want_present ? "present" : "deleted", want);
            }
        }
    }
    dotdb_txn_abort(t);
    dotdb_close(db);
    if (failures == 0)
        snprintf(msg, len, "%s: all %" PRIu64 " keys of %d writers hold their last acknowledged "
                 "write", when, checked, g_writers);
    return failures == 0 && dummy.bad == 0;
}

static int check(int ok, const char *what, int *failed, int *passed)
{
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    fflush(stdout);
    *failed += !ok;
    *passed += ok;
    return ok;
}

int main(int argc, char **argv)
{
    int keep = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            g_seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--readers") == 0 && i + 1 < argc)
            g_readers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--writers") == 0 && i + 1 < argc)
            g_writers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--keep") == 0)
            keep = 1;
        else {
            fprintf(stderr, "usage: dotdb_stress [--seconds N] [--readers N] [--writers N] [--keep]\n");
            return 2;
        }
    }
    if (g_readers < 1 || g_readers > MAX_READERS || g_writers < 1 || g_writers > MAX_WRITERS) {
        fprintf(stderr, "dotdb_stress: 1..%d readers and 1..%d writers\n", MAX_READERS, MAX_WRITERS);
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/dotdb-stress-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(g_config, sizeof g_config, "%s.json", g_dir);
    FILE *f = fopen(g_config, "w");
    if (f == NULL) {
        perror(g_config);
        return 2;
    }
    /* Small tables so they grow; checkpoints every second so a pinned
     * checkpoint snapshot is read while the writers go on. */
    fputs("{\"storage\": {\"sync_mode\": \"normal\", \"checkpoint_interval_ms\": 1000,"
          " \"checkpoint_wal_size\": \"1MB\"},"
          " \"indexing\": {\"hash_bucket_count\": 16},"
          " \"memory\": {\"buffer_pool_size\": \"8MB\", \"max_size\": \"1GB\"}}\n", f);
    fclose(f);
    setvbuf(stdout, NULL, _IOLBF, 0);

    pid_t coord = start_coordinator();
    dotdb *db = open_db();
    /* "s" exists before any reader starts: from then on a missing "s" is
     * a failure */
    if (dotdb_create_collection(db, "s") != DOTDB_OK) {
        fprintf(stderr, "dotdb_stress: create s: %s\n", dotdb_errmsg(db));
        return 2;
    }
    dotdb_close(db);

    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 2;
    }
    uint64_t start = now_ms(), deadline = start + (uint64_t)(g_seconds * 1000);
    int nchild = g_readers + g_writers;
    pid_t kids[MAX_READERS + MAX_WRITERS];
    for (int i = 0; i < nchild; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            close(fds[0]);
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            static result r;
            memset(&r, 0, sizeof r);
            r.role = i < g_writers;
            r.index = r.role ? i : i - g_writers;
            if (r.role)
                writer_main(r.index, deadline, &r);
            else
                reader_main(r.index, deadline, &r);
            /* one write of less than PIPE_BUF bytes: atomic */
            if (write(fds[1], &r, sizeof r) != (ssize_t)sizeof r)
                _exit(3);
            close(fds[1]);
            exit(r.bad ? 1 : 0);
        }
        kids[i] = pid;
    }
    close(fds[1]);

    result total = {0};
    int passed = 0, failed = 0, got = 0, crashed = 0, bad_procs = 0;
    char first[400] = "";
    result r;
    ssize_t k;
    while ((k = read(fds[0], &r, sizeof r)) == (ssize_t)sizeof r) {
        got++;
        total.snaps += r.snaps;
        total.point_reads += r.point_reads;
        total.scans += r.scans;
        total.scan_docs += r.scan_docs;
        total.long_snaps += r.long_snaps;
        total.long_rereads += r.long_rereads;
        total.x_reads += r.x_reads;
        total.docs_checked += r.docs_checked;
        total.writes += r.writes;
        total.pair_txns += r.pair_txns;
        total.deletes += r.deletes;
        total.drops += r.drops;
        if (r.bad) {
            bad_procs++;
            if (!first[0])
                snprintf(first, sizeof first, "%s %d: %s", r.role ? "writer" : "reader", r.index,
                         r.first_bad);
        }
    }
    close(fds[0]);
    for (int i = 0; i < nchild; i++) {
        int st;
        while (waitpid(kids[i], &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) > 1) {
            crashed++;
            fprintf(stderr, "dotdb_stress: %s %d ended with status %d\n",
                    i < g_writers ? "writer" : "reader", i < g_writers ? i : i - g_writers, st);
        }
    }
    double secs = (double)(now_ms() - start) / 1000.0;
    int coord_alive = waitpid(coord, NULL, WNOHANG) == 0;

    char what[900];
    snprintf(what, sizeof what,
             "%d writers, %.0f s: %" PRIu64 " puts, %" PRIu64 " pair transactions, %" PRIu64
             " deletes, %" PRIu64 " drop+refill of a collection, coordinator %s",
             g_writers, secs, total.writes, total.pair_txns, total.deletes, total.drops,
             coord_alive ? "up" : "DIED");
    check(coord_alive && total.writes > 0 && total.pair_txns > 0 && total.drops > 0, what,
          &failed, &passed);
    snprintf(what, sizeof what,
             "%d reader processes: %" PRIu64 " snapshots (%" PRIu64 " zero-copy point reads), %"
             PRIu64 " scans (%" PRIu64 " documents), %" PRIu64 " long snapshots (%" PRIu64
             " re-reads), %" PRIu64 " reads of the dropped collection; %" PRIu64 " document "
             "checksums verified; %d processes failed a check, %d crashed%s%s",
             g_readers, total.snaps, total.point_reads, total.scans, total.scan_docs,
             total.long_snaps, total.long_rereads, total.x_reads, total.docs_checked, bad_procs,
             crashed + (nchild - got), first[0] ? "; first: " : "", first);
    check(bad_procs == 0 && crashed == 0 && got == nchild && total.scans > 0 &&
              total.long_snaps > 0,
          what, &failed, &passed);

    char msg[400];
    if (coord_alive) {
        check(check_acks("live", msg, sizeof msg), msg, &failed, &passed);
        int st = stop_coordinator(coord);
        snprintf(what, sizeof what, "coordinator stopped cleanly (exit status %d)", st);
        check(st == 0, what, &failed, &passed);
        coord = start_coordinator();
        check(check_acks("after restart", msg, sizeof msg), msg, &failed, &passed);
        st = stop_coordinator(coord);
        snprintf(what, sizeof what, "restarted coordinator stopped cleanly (exit status %d)", st);
        check(st == 0, what, &failed, &passed);
    } else {
        failed++;
    }
    if (failed == 0 && !keep) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s.log' '%s'.ack*", g_dir, g_config, g_dir,
                 g_dir);
        (void)!system(cmd);
    } else {
        printf("dotdb_stress: data directory kept: %s (coordinator log %s.log)\n", g_dir, g_dir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
