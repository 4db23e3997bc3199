/*
 * crash_matrix.c - kill -9 of the coordinator at random points of a mixed
 * workload, then an independent check of what survived.
 *
 *   crash_matrix --dotdbd PATH [--rounds N] [--seed S] [--dir DIR] [--verbose]
 *
 * Each round starts a coordinator (sync_mode full, small WAL and checkpoint
 * thresholds so group commits, checkpoints and compactions overlap) and:
 *   - WRITERS writer processes: writer w commits batch i as one transaction
 *     of three new documents w<w>-<i>-0..2 plus the update of w<w>-last to
 *     {"v": i}; each acknowledged i is written to a pipe (the independent
 *     record of acknowledgements).  A writer resumes from w<w>-last.
 *   - a collection process: creates tmp<j>, fills it, drops every other
 *     one; each acknowledged step is recorded.
 *   - a checkpoint process asking for checkpoints and compactions.
 *   - READERS reader processes checking, within one snapshot, that the
 *     batch w<w>-last names is complete, and across snapshots that
 *     w<w>-last never goes backwards; any violation is reported.
 *   - one reader and one writer are SIGKILLed mid-round (a snapshot and a
 *     batch in flight), and a cursor client is killed mid-scan.
 * then SIGKILLs the coordinator at a random moment, restarts it and checks:
 *   every acknowledged batch present in full; the batch in flight at the
 *   kill present in full or absent; no partial batch; per writer the
 *   batches present are exactly 0..k with no hole (a prefix of history);
 *   acknowledged collection creations present, acknowledged drops absent.
 * Exit 0 and "N rounds, M acknowledged batches checked" when all hold.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

#include "dotdb.h"

#define WRITERS 3
#define READERS 3
#define TMP_PER_ROUND 20

static const char *g_dotdbd;
static char g_dir[256];
static int g_verbose;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "crash_matrix: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static dotdb *open_db(int wait_ms)
{
    dotdb_options o = {.no_autostart = 1};
    dotdb *db = NULL;
    uint64_t deadline = now_ms() + (uint64_t)wait_ms;
    int rc;
    while ((rc = dotdb_open(g_dir, &o, &db)) != DOTDB_OK && now_ms() < deadline)
        sleep_ms(5);
    return rc == DOTDB_OK ? db : NULL;
}

static pid_t start_coordinator(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!g_verbose) {
            int nul = open("/dev/null", O_WRONLY);
            dup2(nul, 2);
        }
        char cfg[300];
        snprintf(cfg, sizeof cfg, "%s.json", g_dir);
        execl(g_dotdbd, "dotdbd", "--db", g_dir, "--foreground", "--config", cfg, (char *)NULL);
        _exit(127);
    }
    dotdb *db = open_db(30000);
    if (db == NULL)
        die("the coordinator did not start: %s", dotdb_errmsg(NULL));
    dotdb_close(db);
    return pid;
}

static void reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

/* The value of a document's "v", -1 if absent; in a snapshot. */
static long txn_v(dotdb_txn *t, const char *coll, const char *id)
{
    dotdb_doc d;
    if (dotdb_txn_get(t, coll, id, &d) != DOTDB_OK)
        return -1;
    dotdb_value v;
    if (dotdb_doc_get(&d, "v", &v) != DOTDB_OK || v.type != DOTDB_T_INT)
        return -2;
    return (long)v.i;
}

/* ---- workload processes ---- */

static int writer_main(int w, int fd, int slow)
{
    dotdb *db = open_db(2000);
    if (db == NULL)
        return 0;
    dotdb_txn *t;
    char id[64], doc[256];
    snprintf(id, sizeof id, "w%d-last", w);
    if (dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t) != DOTDB_OK)
        return 0;
    long next = txn_v(t, "matrix", id) + 1;
    dotdb_txn_abort(t);
    if (next < 0)
        next = 0;
    for (long i = next;; i++) {
        if (dotdb_txn_begin(db, 0, &t) != DOTDB_OK)
            break;
        int rc = 0;
        for (int k = 0; k < 3 && rc == 0; k++) {
            int n = snprintf(doc, sizeof doc, "{\"id\":\"w%d-%ld-%d\",\"v\":%ld,\"pad\":\"%0120d\"}",
                             w, i, k, i, k);
            rc = dotdb_txn_put(t, "matrix", doc, (size_t)n, NULL);
            if (slow)
                sleep_ms(1); /* a batch being assembled when the writer is killed */
        }
        int n = snprintf(doc, sizeof doc, "{\"id\":\"w%d-last\",\"v\":%ld}", w, i);
        if (rc == 0)
            rc = dotdb_txn_put(t, "matrix", doc, (size_t)n, NULL);
        if (rc != 0) {
            if (g_verbose)
                fprintf(stderr, "crash_matrix: writer %d: put: %s\n", w, dotdb_errmsg(db));
            dotdb_txn_abort(t);
            break;
        }
        if ((rc = dotdb_txn_commit(t)) != DOTDB_OK) {
            if (g_verbose)
                fprintf(stderr, "crash_matrix: writer %d: commit: %s\n", w, dotdb_errmsg(db));
            break;
        }
        if (write(fd, &i, sizeof i) != (ssize_t)sizeof i)
            break;
    }
    dotdb_close(db);
    return 0;
}

/* Collection steps of round r: j in [r*TMP_PER_ROUND, (r+1)*TMP_PER_ROUND):
 * step j*2 = tmp<j> created and filled, j*2+1 = dropped (all but every
 * fourth).  Each acknowledged step goes to the pipe. */
static int colls_main(int fd, int start)
{
    dotdb *db = open_db(2000);
    if (db == NULL)
        return 0;
    for (int j = start; j < start + TMP_PER_ROUND; j++) {
        sleep_ms(5);
        char name[32], doc[64];
        snprintf(name, sizeof name, "tmp%d", j);
        int n = snprintf(doc, sizeof doc, "{\"id\":\"x\",\"v\":%d}", j);
        if (dotdb_put(db, name, doc, (size_t)n, NULL) != DOTDB_OK)
            break;
        int32_t step = j * 2;
        if (write(fd, &step, sizeof step) != (ssize_t)sizeof step)
            break;
        if (j % 4 != 0) {
            if (dotdb_drop_collection(db, name) != DOTDB_OK)
                break;
            step = j * 2 + 1;
            if (write(fd, &step, sizeof step) != (ssize_t)sizeof step)
                break;
        }
    }
    dotdb_close(db);
    return 0;
}

static int checkpointer_main(void)
{
    dotdb *db = open_db(2000);
    if (db == NULL)
        return 0;
    for (int i = 0;; i++) {
        char *json = NULL;
        if (dotdb_checkpoint(db, i % 3 == 2 ? DOTDB_CHECKPOINT_COMPACT : 0, NULL, &json, NULL) != DOTDB_OK)
            break;
        dotdb_free(json);
        sleep_ms(10);
    }
    dotdb_close(db);
    return 0;
}

/* A reader's violation: recorded in DIR.violation for the driver (which
 * kills the readers once the coordinator is gone: they would go on reading
 * its last published state forever, as designed). */
static int violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int violation(const char *fmt, ...)
{
    char path[300];
    snprintf(path, sizeof path, "%s.violation", g_dir);
    FILE *f = fopen(path, "a");
    va_list ap;
    va_start(ap, fmt);
    if (f) {
        vfprintf(f, fmt, ap);
        fputc('\n', f);
        fclose(f);
    }
    va_end(ap);
    return 3;
}

/* Snapshot checks; a violation is recorded (see violation()). */
static int reader_main(int hold)
{
    dotdb *db = open_db(2000);
    if (db == NULL)
        return 0;
    long seen[WRITERS];
    for (int w = 0; w < WRITERS; w++)
        seen[w] = -1;
    for (;;) {
        dotdb_txn *t;
        if (dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t) != DOTDB_OK)
            break;
        for (int w = 0; w < WRITERS; w++) {
            char id[64];
            snprintf(id, sizeof id, "w%d-last", w);
            long k = txn_v(t, "matrix", id);
            if (k == -2) {
                dotdb_txn_abort(t);
                goto out;
            }
            if (k < seen[w])
                return violation("reader: w%d-last went back from %ld to %ld", w, seen[w], k);
            seen[w] = k;
            for (int d = 0; k >= 0 && d < 3; d++) {
                snprintf(id, sizeof id, "w%d-%ld-%d", w, k, d);
                if (txn_v(t, "matrix", id) != k)
                    return violation("reader: a snapshot shows w%d-last=%ld without %s", w, k, id);
            }
        }
        if (hold)
            sleep_ms(50); /* a long snapshot, killed while held */
        dotdb_txn_abort(t);
    }
out:
    dotdb_close(db);
    return 0;
}

static int cursor_main(void)
{
    dotdb *db = open_db(2000);
    if (db == NULL)
        return 0;
    for (;;) {
        dotdb_cursor *cur;
        if (dotdb_find(db, "matrix", "{\"v\":{\"$gte\":0}}", NULL, &cur) != DOTDB_OK)
            break;
        dotdb_doc d;
        while (dotdb_cursor_next_view(cur, &d) == DOTDB_OK)
            sleep_ms(0);
        dotdb_cursor_close(cur);
    }
    dotdb_close(db);
    return 0;
}

/* ---- the driver ---- */

typedef struct state {
    long acked[WRITERS];   /* last acknowledged batch, -1 none */
    long known[WRITERS];   /* last batch known committed (after a restart check) */
    int8_t *coll_step;     /* per j: -1 nothing, 0 created acked, 1 dropped acked */
    int ncolls;            /* j below this may have been touched */
    uint64_t batches_checked, colls_checked;
} state;

static void drain_writer(int fd, long *acked)
{
    long i;
    while (read(fd, &i, sizeof i) == (ssize_t)sizeof i)
        if (i > *acked)
            *acked = i;
}

static void check_after_restart(state *s, int round)
{
    dotdb *db = open_db(30000);
    if (db == NULL)
        die("round %d: cannot open after restart: %s", round, dotdb_errmsg(NULL));
    dotdb_txn *t;
    if (dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t) != DOTDB_OK)
        die("round %d: txn_begin", round);
    for (int w = 0; w < WRITERS; w++) {
        char id[64];
        snprintf(id, sizeof id, "w%d-last", w);
        long k = txn_v(t, "matrix", id);
        if (k < s->acked[w])
            die("round %d: writer %d: batch %ld was acknowledged, the database ends at %ld", round,
                w, s->acked[w], k);
        if (k > s->acked[w] + 1)
            die("round %d: writer %d: the database holds batch %ld, never sent (acked %ld)",
                round, w, k, s->acked[w]);
        /* every batch 0..k whole, the next one absent: a prefix, no hole,
         * no partial batch (only the batches since the last check are
         * read again, older ones were checked before) */
        long from = s->known[w] > 0 ? s->known[w] - 1 : 0;
        for (long i = from; i <= k + 1; i++) {
            int present = 0;
            for (int d = 0; d < 3; d++) {
                snprintf(id, sizeof id, "w%d-%ld-%d", w, i, d);
                long v = txn_v(t, "matrix", id);
                if (v == i)
                    present++;
                else if (v != -1)
                    die("round %d: %s holds %ld", round, id, v);
            }
            if (i <= k && present != 3)
                die("round %d: writer %d: batch %ld has %d of its 3 documents (history ends at %ld)",
                    round, w, i, present, k);
            if (i > k && present != 0)
                die("round %d: writer %d: batch %ld is partly visible (%d documents) past the end %ld",
                    round, w, i, present, k);
            s->batches_checked++;
        }
        s->acked[w] = s->known[w] = k;
    }
    dotdb_txn_abort(t);
    for (int j = 0; j < s->ncolls; j++) {
        if (s->coll_step[j] < 0)
            continue; /* never acknowledged: its outcome is unknown */
        char name[32], *json = NULL;
        snprintf(name, sizeof name, "tmp%d", j);
        int rc = dotdb_get(db, name, "x", &json, NULL);
        dotdb_free(json);
        int drop_planned = j % 4 != 0;
        if (s->coll_step[j] == 0 && !drop_planned && rc != DOTDB_OK)
            die("round %d: collection %s was acknowledged, it is gone: %s", round, name,
                dotdb_strerror(rc));
        if (s->coll_step[j] == 1 && rc != DOTDB_ENOCOLL)
            die("round %d: collection %s was dropped (acknowledged), it is back", round, name);
        s->colls_checked++;
    }
    dotdb_close(db);
}

int main(int argc, char **argv)
{
    int rounds = 20;
    unsigned seed = 1;
    const char *dir = NULL;
    static const struct option lo[] = {{"dotdbd", required_argument, 0, 'x'},
                                       {"rounds", required_argument, 0, 'r'},
                                       {"seed", required_argument, 0, 's'},
                                       {"dir", required_argument, 0, 'd'},
                                       {"verbose", no_argument, 0, 'v'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'x': g_dotdbd = optarg; break;
        case 'r': rounds = atoi(optarg); break;
        case 's': seed = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'd': dir = optarg; break;
        case 'v': g_verbose = 1; break;
        default:
            fprintf(stderr, "usage: crash_matrix --dotdbd PATH [--rounds N] [--seed S] [--dir DIR] "
                    "[--verbose]\n");
            return 2;
        }
    }
    if (g_dotdbd == NULL || rounds < 1) {
        fprintf(stderr, "crash_matrix: --dotdbd PATH is required, --rounds >= 1\n");
        return 2;
    }
    if (dir)
        snprintf(g_dir, sizeof g_dir, "%s", dir);
    else {
        snprintf(g_dir, sizeof g_dir, "/tmp/dotdb-crash-XXXXXX");
        if (mkdtemp(g_dir) == NULL)
            die("mkdtemp: %s", strerror(errno));
    }
    char cfg[300];
    snprintf(cfg, sizeof cfg, "%s.json", g_dir);
    FILE *f = fopen(cfg, "w");
    if (f == NULL)
        die("%s: %s", cfg, strerror(errno));
    fputs("{\"storage\": {\"sync_mode\": \"full\", \"segment_size\": \"1MB\", "
          "\"checkpoint_wal_size\": \"1MB\", \"checkpoint_interval_ms\": 200}}\n", f);
    fclose(f);
    signal(SIGPIPE, SIG_IGN);
    srand(seed);
    state s;
    memset(&s, 0, sizeof s);
    s.coll_step = malloc((size_t)rounds * TMP_PER_ROUND);
    memset(s.coll_step, -1, (size_t)rounds * TMP_PER_ROUND);
    for (int w = 0; w < WRITERS; w++)
        s.acked[w] = s.known[w] = -1;
    for (int round = 0; round < rounds; round++) {
        pid_t coord = start_coordinator();
        int wfd[WRITERS][2], cfd[2];
        pid_t kids[WRITERS + READERS + 3];
        int nk = 0;
        for (int w = 0; w < WRITERS; w++) {
            if (pipe(wfd[w]) != 0)
                die("pipe");
            pid_t p = fork();
            if (p == 0) {
                close(wfd[w][0]);
                _exit(writer_main(w, wfd[w][1], w == 0));
            }
            close(wfd[w][1]);
            kids[nk++] = p;
        }
        if (pipe(cfd) != 0)
            die("pipe");
        pid_t p = fork();
        if (p == 0) {
            close(cfd[0]);
            _exit(colls_main(cfd[1], round * TMP_PER_ROUND));
        }
        close(cfd[1]);
        kids[nk++] = p;
        if ((p = fork()) == 0)
            _exit(checkpointer_main());
        kids[nk++] = p;
        int first_reader = nk;
        for (int r = 0; r < READERS; r++) {
            if ((p = fork()) == 0)
                _exit(reader_main(r == 0));
            kids[nk++] = p;
        }
        pid_t cursor = fork();
        if (cursor == 0)
            _exit(cursor_main());
        kids[nk++] = cursor;
        int run_ms = 80 + rand() % 400;
        sleep_ms(run_ms / 2);
        /* clients killed in the middle of a snapshot, a batch, a cursor */
        kill(kids[first_reader], SIGKILL);
        kill(kids[0], SIGKILL);
        kill(cursor, SIGKILL);
        sleep_ms(run_ms / 2);
        kill(coord, SIGKILL);
        reap(coord);
        sleep_ms(20); /* writers notice and exit; readers would read on */
        for (int k = WRITERS; k < nk; k++)
            kill(kids[k], SIGKILL);
        for (int w = 0; w < WRITERS; w++) {
            drain_writer(wfd[w][0], &s.acked[w]);
            close(wfd[w][0]);
        }
        int32_t step;
        while (read(cfd[0], &step, sizeof step) == (ssize_t)sizeof step) {
            int j = step / 2;
            s.coll_step[j] = (int8_t)(step % 2);
        }
        s.ncolls = (round + 1) * TMP_PER_ROUND;
        close(cfd[0]);
        for (int k = 0; k < nk; k++) {
            int st;
            while (waitpid(kids[k], &st, 0) < 0 && errno == EINTR)
                ;
            (void)st;
        }
        char vpath[300];
        snprintf(vpath, sizeof vpath, "%s.violation", g_dir);
        FILE *vf = fopen(vpath, "r");
        if (vf) {
            char line[300] = "";
            (void)!fgets(line, sizeof line, vf);
            die("round %d: %s", round, line);
        }
        coord = start_coordinator();
        check_after_restart(&s, round);
        kill(coord, SIGKILL);
        reap(coord);
        if (g_verbose)
            fprintf(stderr, "crash_matrix: round %d ok (ran %d ms; batches acked %ld %ld %ld)\n",
                    round, run_ms, s.acked[0], s.acked[1], s.acked[2]);
    }
    printf("crash_matrix: %d kill points, %" PRIu64 " batch checks, %" PRIu64
           " collection checks; 0 violations\n", rounds, s.batches_checked, s.colls_checked);
    if (dir == NULL) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", g_dir, cfg);
        (void)!system(cmd);
    }
    free(s.coll_step);
    return 0;
}
