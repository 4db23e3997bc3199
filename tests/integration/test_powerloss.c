/*
 * test_powerloss.c - simulated power cuts (tests/fault/powerloss.c) at
 * every I/O call of a short workload: transactions, checkpoints, a
 * compaction and a collection drop.  At the chosen call the layer keeps,
 * drops or garbles every write and directory change no fsync covered yet,
 * and the coordinator dies.  A restart must then show exactly a prefix of
 * the committed history: every acknowledged batch whole, the one in
 * flight whole or absent, nothing partial, no hole; and `dotdb check`
 * must find the files intact.
 *
 * DOTDB_POWERLOSS_STEP=1 sweeps every call (scripts/crash.sh does); the
 * default samples about 40 calls per mode so the suite stays quick.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>

#include "harness.h"

#define BATCHES 40

typedef struct ledger {
    int acked[BATCHES];  /* 1: commit acknowledged */
    int sent;            /* batches whose commit was sent */
    int scratch_created, scratch_dropped; /* acknowledged */
} ledger;

/* Start dotdbd under the power-loss layer; 0 when it accepts, -1 when it
 * died first (a crash point during start-up). */
static int start_pl(coord *c, unsigned long crash_at, const char *mode, const char *count_file)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char n[32];
        snprintf(n, sizeof n, "%lu", crash_at);
        setenv("DOTDB_PL_DIR", c->dir, 1);
        setenv("DOTDB_PL_CRASH_AT", n, 1);
        setenv("DOTDB_PL_MODE", mode, 1);
        setenv("DOTDB_PL_SEED", n, 1);
        if (count_file)
            setenv("DOTDB_PL_COUNT", count_file, 1);
        setenv("LD_PRELOAD", DOTDB_POWERLOSS_PATH, 1);
        const char *a = getenv("ASAN_OPTIONS");
        char opts[600];
        snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", a ? a : "", a && *a ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0 && getenv("DOTDB_TEST_VERBOSE") == NULL)
            dup2(nul, 2);
        execl(DOTDBD_PATH, "dotdbd", "--db", c->dir, "--foreground", "--config", c->config,
              (char *)NULL);
        _exit(127);
    }
    c->pid = pid;
    dotdb_options o = {.no_autostart = 1};
    for (uint64_t deadline = h_now_ms() + 20000; h_now_ms() < deadline;) {
        dotdb *db = NULL;
        if (dotdb_open(c->dir, &o, &db) == DOTDB_OK) {
            dotdb_close(db);
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            c->pid = 0;
            return -1;
        }
        h_sleep_ms(2);
    }
    cr_assert_fail("the coordinator neither started nor died");
    return -1;
}

static int batch(dotdb *db, int i)
{
    dotdb_txn *t;
    if (dotdb_txn_begin(db, 0, &t) != DOTDB_OK)
        return -1;
    for (int k = 0; k < 2; k++) {
        char doc[300];
        int n = snprintf(doc, sizeof doc, "{\"id\":\"b%d-%d\",\"v\":%d,\"pad\":\"%0200d\"}", i, k, i, k);
        if (dotdb_txn_put(t, "pl", doc, (size_t)n, NULL) != DOTDB_OK) {
            dotdb_txn_abort(t);
            return -1;
        }
    }
    return dotdb_txn_commit(t);
}

/* The workload; stops at the first failure (the coordinator is gone). */
static void workload(coord *c, ledger *l)
{
    dotdb_options o = {.no_autostart = 1};
    dotdb *db = NULL;
    if (dotdb_open(c->dir, &o, &db) != DOTDB_OK)
        return;
    char *json = NULL;
    for (int i = 0; i < BATCHES; i++) {
        if (i == 5) {
            if (dotdb_put(db, "scratch", "{\"id\":\"s\"}", 10, NULL) != DOTDB_OK)
                break;
            l->scratch_created = 1;
        }
        if (i == 15 || i == 30) {
            if (dotdb_checkpoint(db, i == 30 ? DOTDB_CHECKPOINT_COMPACT : 0, NULL, &json, NULL) != DOTDB_OK)
                break;
            dotdb_free(json);
        }
        if (i == 25) {
            if (dotdb_drop_collection(db, "scratch") != DOTDB_OK)
                break;
            l->scratch_dropped = 1;
        }
        l->sent = i + 1;
        if (batch(db, i) != DOTDB_OK)
            break;
        l->acked[i] = 1;
    }
    dotdb_close(db);
}

static void check_recovered(coord *c, const ledger *l, unsigned long at, const char *mode)
{
    h_start(c);
    dotdb *db = h_open(c);
    int last_present = -1;
    for (int i = 0; i < BATCHES; i++) {
        int present = 0;
        for (int k = 0; k < 2; k++) {
            char id[32], *json = NULL;
            snprintf(id, sizeof id, "b%d-%d", i, k);
            int rc = dotdb_get(db, "pl", id, &json, NULL);
            cr_assert(rc == DOTDB_OK || rc == DOTDB_ENOTFOUND || rc == DOTDB_ENOCOLL,
                      "%s@%lu: %s: %s", mode, at, id, dotdb_strerror(rc));
            if (rc == DOTDB_OK) {
                cJSON *j = cJSON_Parse(json);
                cr_assert_eq(cJSON_GetObjectItem(j, "v")->valueint, i, "%s@%lu: %s whole", mode, at, id);
                cJSON_Delete(j);
                present++;
            }
            dotdb_free(json);
        }
        cr_assert(present == 0 || present == 2, "%s@%lu: batch %d is partial (%d of 2)", mode, at,
                  i, present);
        if (l->acked[i])
            cr_assert_eq(present, 2, "%s@%lu: acknowledged batch %d lost", mode, at, i);
        if (present) {
            cr_assert_eq(last_present, i - 1, "%s@%lu: batch %d present after a hole", mode, at, i);
            cr_assert_lt(i, l->sent, "%s@%lu: batch %d was never sent", mode, at, i);
            last_present = i;
        }
    }
    char *json = NULL;
    int rc = dotdb_get(db, "scratch", "s", &json, NULL);
    dotdb_free(json);
    if (l->scratch_dropped)
        cr_assert_eq(rc, DOTDB_ENOCOLL, "%s@%lu: an acknowledged drop came back", mode, at);
    else if (l->scratch_created && l->sent <= 25)
        cr_assert_eq(rc, DOTDB_OK, "%s@%lu: an acknowledged collection is gone", mode, at);
    dotdb_close(db);
    h_stop(c);
    char out[16384];
    static const char *const check[] = {"--check", NULL};
    cr_assert_eq(h_run_dotdbd(c, check, out, sizeof out, 60000), 0, "%s@%lu: check: %s", mode, at,
                 out);
}

Test(powerloss, every_io_call_of_a_workload_as_a_power_cut, .timeout = 1200)
{
    static const char cfg[] = "{\"storage\": {\"sync_mode\": \"full\", \"segment_size\": \"1MB\", "
                              "\"checkpoint_wal_size\": \"1TB\"}}";
    /* how many tracked calls the workload makes, without a crash */
    coord c;
    h_init(&c, cfg);
    char count_file[300];
    snprintf(count_file, sizeof count_file, "%s.count", c.dir);
    ledger l = {0};
    cr_assert_eq(start_pl(&c, 0, "keep", count_file), 0);
    workload(&c, &l);
    h_stop(&c);
    FILE *f = fopen(count_file, "r");
    cr_assert_not_null(f, "the layer counted the calls");
    unsigned long total = 0;
    cr_assert_eq(fscanf(f, "%lu", &total), 1);
    fclose(f);
    unlink(count_file);
    cr_assert_eq(l.sent, BATCHES);
    h_cleanup(&c);
    const char *env = getenv("DOTDB_POWERLOSS_STEP");
    unsigned long step = env ? strtoul(env, NULL, 10) : total / 40 + 1;
    if (step == 0)
        step = 1;
    static const char *const modes[] = {"drop", "garbage", "mixed"};
    int runs = 0;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        for (unsigned long at = 1 + m; at <= total; at += step) {
            coord r;
            h_init(&r, cfg);
            ledger lr = {0};
            if (start_pl(&r, at, modes[m], NULL) == 0) {
                workload(&r, &lr);
                /* the cut may also fall into the clean stop (its checkpoint) */
                kill(r.pid, SIGTERM);
                int st = h_wait(r.pid);
                r.pid = 0;
                cr_assert(WIFEXITED(st) && (WEXITSTATUS(st) == 137 || WEXITSTATUS(st) == 0),
                          "%s@%lu: exit status %d", modes[m], at, st);
            }
            check_recovered(&r, &lr, at, modes[m]);
            h_cleanup(&r);
            runs++;
        }
    }
    cr_log_info("power loss: %lu I/O calls in the workload, %d crash points checked (every %lu)",
                total, runs, step);
}
