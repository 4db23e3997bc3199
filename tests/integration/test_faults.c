/*
 * test_faults.c - fault injection on the write, checkpoint and recovery
 * paths: tests/fault/faultfs.c makes the N-th matching call fail (once, or
 * from then on), for N = 1, 2, 3, ... until the operation completes without
 * the fault firing.  After each run the coordinator is stopped cleanly (the
 * sanitizer build fails on a leak at exit) and restarted, and the state
 * must be exactly the acknowledged writes: every acknowledged document
 * present with its content, every failed one present in full or absent.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <inttypes.h>

#include "harness.h"

#define MAX_DOCS 2048
#define DOC_PAD 60000

typedef struct ledger {
    int n;
    int acked[MAX_DOCS]; /* 1 acknowledged, 0 failed (outcome: all or nothing) */
} ledger;

static int put_one(dotdb *db, int i)
{
    static char doc[DOC_PAD + 100];
    snprintf(doc, sizeof doc, "{\"id\":\"d%d\",\"v\":%d,\"pad\":\"%0*d\"}", i, i, DOC_PAD, i);
    return dotdb_put(db, "f", doc, strlen(doc), NULL);
}

static void verify(coord *c, const ledger *l)
{
    h_start(c);
    dotdb *db = h_open(c);
    for (int i = 0; i < l->n; i++) {
        char id[16], *json = NULL;
        snprintf(id, sizeof id, "d%d", i);
        int rc = dotdb_get(db, "f", id, &json, NULL);
        if (l->acked[i])
            cr_assert_eq(rc, DOTDB_OK, "acknowledged %s lost: %s", id, dotdb_errmsg(db));
        else
            cr_assert(rc == DOTDB_OK || rc == DOTDB_ENOTFOUND || rc == DOTDB_ENOCOLL,
                      "failed %s: %s", id, dotdb_strerror(rc));
        if (rc == DOTDB_OK) {
            cJSON *j = cJSON_Parse(json);
            cr_assert_eq(cJSON_GetObjectItem(j, "v")->valueint, i, "%s whole", id);
            cr_assert_eq(strlen(cJSON_GetObjectItem(j, "pad")->valuestring), DOC_PAD, "%s whole", id);
            cJSON_Delete(j);
            dotdb_free(json);
        }
    }
    dotdb_close(db);
}

static int fd_count(pid_t pid)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(p);
    int n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int read_only(dotdb *db, char *why, size_t whylen)
{
    char *json = NULL;
    if (dotdb_stats(db, NULL, &json, NULL) != DOTDB_OK)
        return -1;
    cJSON *j = cJSON_Parse(json);
    cJSON *co = cJSON_GetObjectItem(j, "coordinator");
    int ro = cJSON_IsTrue(cJSON_GetObjectItem(co, "read_only"));
    snprintf(why, whylen, "%s", cJSON_GetObjectItem(co, "error")->valuestring);
    cJSON_Delete(j);
    dotdb_free(json);
    return ro;
}

typedef struct fcase {
    const char *op, *match;
    int err;
} fcase;

/* Writes: one WAL write and one fdatasync per group; 60 KB documents with
 * 1 MB segments rotate the WAL every ~16 puts; a 1 MB initial region grows
 * (posix_fallocate) every ~16 puts too. */
static const fcase write_cases[] = {
    {"write", "/wal/wal_", 5},          {"write", "/wal/wal_", 28},
    {"fdatasync", "/wal/wal_", 5},      {"open", "/wal/wal_", 28},
    {"fsync", "/wal", 5},               {"fallocate", "memfd:dotdb-data", 28},
    {"fallocate", "/wal/wal_", 28}, /* the WAL's preallocation: best effort */
};

static void run_write_case(const fcase *fc, int persistent, int *runs, int *fired_total)
{
    coord c;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"full\", \"segment_size\": \"1MB\", "
               "\"checkpoint_wal_size\": \"1TB\"}, "
               "\"memory\": {\"buffer_pool_size\": \"1MB\", \"max_size\": \"1GB\"}}");
    snprintf(c.fault_ctl, sizeof c.fault_ctl, "%s.faults", c.dir);
    ledger *l = calloc(1, sizeof *l);
    enum { PUTS = 20 };
    for (int n = 0; n < 60; n++) {
        h_start(&c);
        dotdb *db = h_open(&c);
        int fds_before = fd_count(c.pid);
        char rule[200];
        snprintf(rule, sizeof rule, "%s %s %d %d %d\n", fc->op, fc->match, fc->err, n,
                 persistent ? 0 : 1);
        (void)h_faults_fired(&c);
        h_fault(&c, rule);
        int failed = 0;
        for (int k = 0; k < PUTS && l->n < MAX_DOCS; k++) {
            int rc = put_one(db, l->n);
            l->acked[l->n++] = rc == DOTDB_OK;
            if (rc != DOTDB_OK) {
                failed++;
                cr_assert(rc == DOTDB_EIO || rc == DOTDB_ENOSPC || rc == DOTDB_EREADONLY,
                          "%s %s: a clean error, got %s: %s", fc->op, fc->match, dotdb_err_name(rc),
                          dotdb_errmsg(db));
            }
        }
        int fired = h_faults_fired(&c);
        h_fault(&c, NULL);
        if (strcmp(fc->op, "fallocate") == 0 && strstr(fc->match, "/wal") != NULL)
            cr_assert_eq(failed, 0, "N=%d: a WAL that cannot preallocate appends instead", n);
        char why[700];
        int ro = read_only(db, why, sizeof why);
        if (strcmp(fc->op, "fdatasync") == 0 && fired) {
            /* fsyncgate: never retried, no more writes, reads go on */
            cr_assert_eq(ro, 1, "read-only after a failed fdatasync");
            cr_assert(strstr(why, "fdatasync") != NULL, "stats say why: %s", why);
            cr_assert_eq(put_one(db, 999999), DOTDB_EREADONLY);
            char *json = NULL;
            int grc = dotdb_get(db, "f", "d0", &json, NULL);
            dotdb_free(json);
            cr_assert(grc == DOTDB_OK || !l->acked[0], "reads go on when read-only: %s",
                      dotdb_strerror(grc));
        }
        if (fired && !ro && !persistent) {
            /* a one-off failure of a write: the next write works again */
            cr_assert_eq(put_one(db, l->n), DOTDB_OK, "%s %s one-off: writes resume: %s", fc->op,
                         fc->match, dotdb_errmsg(db));
            l->acked[l->n++] = 1;
        }
        int fds_after = fd_count(c.pid);
        cr_expect_leq(fds_after, fds_before + 1, "%s %s N=%d: no descriptor leak (%d -> %d)",
                      fc->op, fc->match, n, fds_before, fds_after);
        dotdb_close(db);
        h_stop(&c); /* exit 0: includes the sanitizer's leak check */
        verify(&c, l);
        h_stop(&c);
        (*runs)++;
        *fired_total += fired;
        if (!fired)
            break; /* N is past every matching call of the workload */
        (void)failed;
    }
    free(l);
    h_cleanup(&c);
    unlink(c.fault_ctl);
}

Test(faults, write_path_every_call_fails_once_and_for_good, .timeout = 600)
{
    int runs = 0, fired = 0;
    for (size_t i = 0; i < sizeof write_cases / sizeof write_cases[0]; i++)
        for (int persistent = 0; persistent < 2; persistent++)
            run_write_case(&write_cases[i], persistent, &runs, &fired);
    cr_log_info("write path: %d runs, %d faults injected", runs, fired);
    cr_assert_gt(fired, 20);
}

static uint64_t stat_u64(dotdb *db, const char *key)
{
    char *json = NULL;
    cr_assert_eq(dotdb_stats(db, NULL, &json, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    cJSON *j = cJSON_Parse(json);
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "coordinator"), key);
    cr_assert(cJSON_IsNumber(v), "stats has coordinator.%s", key);
    uint64_t n = (uint64_t)v->valuedouble;
    cJSON_Delete(j);
    dotdb_free(json);
    return n;
}

/* A stalling disk: the coordinator fdatasyncs on its loop thread while
 * syncs are quick, and moves them to worker threads (two in flight) after
 * one is slow.  Four writer processes through both regimes: every put is
 * acknowledged, both kinds of sync ran, and a restart finds everything. */
Test(faults, stalling_fdatasync_moves_syncs_to_workers_and_loses_nothing, .timeout = 300)
{
    coord c;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"full\"}}");
    snprintf(c.fault_ctl, sizeof c.fault_ctl, "%s.faults", c.dir);
    h_start(&c);
    dotdb *db = h_open(&c);
    enum { WRITERS = 4, PER = 150 };
    /* syncs 20..29 from now take 40 ms each: more than SLOW_SYNC_NS */
    h_fault(&c, "fdatasync /wal/wal_ delay=40 20 10\n");
    pid_t kids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        kids[w] = fork();
        cr_assert_geq(kids[w], 0);
        if (kids[w] == 0) {
            dotdb *k = NULL;
            dotdb_options o = {.no_autostart = 1};
            if (dotdb_open(c.dir, &o, &k) != DOTDB_OK)
                _exit(2);
            for (int i = 0; i < PER; i++) {
                char doc[128];
                snprintf(doc, sizeof doc, "{\"id\":\"w%d-%d\",\"v\":%d}", w, i, i);
                if (dotdb_put(k, "s", doc, strlen(doc), NULL) != DOTDB_OK)
                    _exit(1);
            }
            dotdb_close(k);
            _exit(0);
        }
    }
    for (int w = 0; w < WRITERS; w++)
        cr_assert_eq(h_wait(kids[w]), 0, "writer %d: every put acknowledged", w);
    int fired = h_faults_fired(&c);
    h_fault(&c, NULL);
    cr_assert_geq(fired, 1, "the stall happened");
    uint64_t all = stat_u64(db, "fsyncs"), inl = stat_u64(db, "fsyncs_inline");
    cr_log_info("stall: %d slow syncs, %" PRIu64 " fsyncs, %" PRIu64 " on the loop thread", fired,
                all, inl);
    cr_assert_gt(inl, 0, "quick syncs run on the loop thread");
    cr_assert_gt(all, inl, "after a slow one, syncs go to workers");
    /* four closed-loop writers: the loop waited for them (gather), and the
     * time between two inline syncs is accounted */
    cr_assert_gt(stat_u64(db, "gathers"), 0);
    cr_assert_gt(stat_u64(db, "turnaround_avg_us"), 0);
    dotdb_close(db);
    h_stop(&c);
    h_start(&c);
    db = h_open(&c);
    for (int w = 0; w < WRITERS; w++)
        for (int i = 0; i < PER; i++) {
            char id[32], *json = NULL;
            snprintf(id, sizeof id, "w%d-%d", w, i);
            cr_assert_eq(dotdb_get(db, "s", id, &json, NULL), DOTDB_OK, "%s after restart", id);
            dotdb_free(json);
        }
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
    unlink(c.fault_ctl);
}

/* Checkpoints: every call on its path, failing once or for good; the
 * checkpoint fails cleanly (previous one in force) or completes, writes go
 * on, and after a restart the data is exact. */
static const fcase ckpt_cases[] = {
    {"open", "/data/segment_", 28},      {"write", "/data/segment_", 28},
    {"fdatasync", "/data/segment_", 5},  {"fsync", "/data", 5},
    {"open", "metadata.json.tmp", 28},   {"write", "metadata.json.tmp", 28},
    {"rename", "/metadata.json", 5},     {"open", "manifest.json.tmp", 28},
    {"write", "manifest.json.tmp", 28},  {"fdatasync", "manifest.json.tmp", 5},
    {"rename", "/manifest.json", 5},     {"fsync", "/system", 5},
    {"unlink", "/wal/wal_", 5},          {"open", "/wal/wal_", 28},
};

static uint64_t ckpt_lsn(dotdb *db)
{
    char *json = NULL;
    cr_assert_eq(dotdb_stats(db, NULL, &json, NULL), DOTDB_OK);
    cJSON *j = cJSON_Parse(json);
    uint64_t v = (uint64_t)cJSON_GetObjectItem(cJSON_GetObjectItem(j, "storage"), "checkpoint_lsn")
                     ->valuedouble;
    cJSON_Delete(j);
    dotdb_free(json);
    return v;
}

Test(faults, checkpoint_path_every_call_fails_once_and_for_good, .timeout = 600)
{
    int runs = 0, fired_total = 0, failed_ckpts = 0;
    for (size_t i = 0; i < sizeof ckpt_cases / sizeof ckpt_cases[0]; i++) {
        for (int persistent = 0; persistent < 2; persistent++) {
            const fcase *fc = &ckpt_cases[i];
            coord c;
            h_init(&c, "{\"storage\": {\"sync_mode\": \"full\"}}");
            snprintf(c.fault_ctl, sizeof c.fault_ctl, "%s.faults", c.dir);
            ledger *l = calloc(1, sizeof *l);
            for (int n = 0; n < 40; n++) {
                h_start(&c);
                dotdb *db = h_open(&c);
                /* two collections changed: several segments, two metadata files */
                for (int k = 0; k < 3; k++) {
                    cr_assert_eq(put_one(db, l->n), DOTDB_OK, "%s", dotdb_errmsg(db));
                    l->acked[l->n++] = 1;
                }
                char doc[64];
                snprintf(doc, sizeof doc, "{\"id\":\"o%d\"}", n);
                cr_assert_eq(dotdb_put(db, "other", doc, strlen(doc), NULL), DOTDB_OK);
                uint64_t before = ckpt_lsn(db);
                char rule[200], *json = NULL;
                snprintf(rule, sizeof rule, "%s %s %d %d %d\n", fc->op, fc->match, fc->err, n,
                         persistent ? 0 : 1);
                (void)h_faults_fired(&c);
                h_fault(&c, rule);
                int rc = dotdb_checkpoint(db, 0, NULL, &json, NULL);
                dotdb_free(json);
                int fired = h_faults_fired(&c);
                h_fault(&c, NULL);
                uint64_t after = ckpt_lsn(db);
                if (rc != DOTDB_OK) {
                    failed_ckpts++;
                    cr_assert(rc == DOTDB_EIO || rc == DOTDB_ENOSPC || rc == DOTDB_EOS ||
                                  rc == DOTDB_EREADONLY,
                              "%s %s: %s", fc->op, fc->match, dotdb_errmsg(db));
                    cr_assert_eq(after, before, "%s %s N=%d: a failed checkpoint leaves the "
                                 "previous one in force", fc->op, fc->match, n);
                }
                /* writes go on unless the WAL itself failed (its rotation's fsync) */
                char why[700];
                if (read_only(db, why, sizeof why) != 1) {
                    cr_assert_eq(put_one(db, l->n), DOTDB_OK, "%s %s N=%d: writes go on: %s", fc->op,
                                 fc->match, n, dotdb_errmsg(db));
                    l->acked[l->n++] = 1;
                }
                dotdb_close(db);
                if (n % 2)
                    h_kill9(&c); /* a crash right after the failed checkpoint */
                else
                    h_stop(&c);
                verify(&c, l);
                h_stop(&c);
                char out[16384];
                static const char *const check[] = {"--check", NULL};
                cr_assert_eq(h_run_dotdbd(&c, check, out, sizeof out, 60000), 0,
                             "%s %s N=%d: the files stay consistent: %s", fc->op, fc->match, n, out);
                runs++;
                fired_total += fired;
                if (!fired)
                    break;
            }
            free(l);
            h_cleanup(&c);
            unlink(c.fault_ctl);
        }
    }
    cr_log_info("checkpoint path: %d runs, %d faults injected, %d checkpoints failed cleanly", runs,
                fired_total, failed_ckpts);
    cr_assert_gt(failed_ckpts, 10);
}

/* Recovery: start-up with a failing call; it either comes up with the
 * exact state or refuses with a message, and a later clean start works. */
static const fcase recovery_cases[] = {
    {"fallocate", "memfd:dotdb-data", 28}, {"fdatasync", "/wal/wal_", 5},
    {"ftruncate", "/wal/wal_", 5},
};

Test(faults, recovery_path_failures_refuse_start_or_recover_exactly, .timeout = 300)
{
    int runs = 0, refused = 0;
    for (size_t i = 0; i < sizeof recovery_cases / sizeof recovery_cases[0]; i++) {
        const fcase *fc = &recovery_cases[i];
        coord c;
        h_init(&c, "{\"storage\": {\"sync_mode\": \"full\"}}");
        snprintf(c.fault_ctl, sizeof c.fault_ctl, "%s.faults", c.dir);
        ledger *l = calloc(1, sizeof *l);
        h_start(&c);
        dotdb *db = h_open(&c);
        for (int k = 0; k < 10; k++) {
            cr_assert_eq(put_one(db, l->n), DOTDB_OK);
            l->acked[l->n++] = 1;
        }
        dotdb_close(db);
        h_kill9(&c);
        /* a torn tail for the recovery to cut, and an orphan segment to remove */
        char p[400];
        snprintf(p, sizeof p, "%s/wal/wal_000001.log", c.dir);
        FILE *f = fopen(p, "a");
        fputs("torn", f);
        fclose(f);
        for (int n = 0; n < 20; n++) {
            char rule[200], out[16384];
            snprintf(rule, sizeof rule, "%s %s %d %d 0\n", fc->op, fc->match, fc->err, n);
            h_fault(&c, rule);
            (void)h_faults_fired(&c);
            int st = h_run_dotdbd(&c, NULL, out, sizeof out, 1500);
            int fired = h_faults_fired(&c);
            h_fault(&c, NULL);
            runs++;
            if (st == -1) {
                /* it started (ran until the timeout): the state must be exact */
                verify(&c, l);
                h_stop(&c);
                if (!fired)
                    break;
                continue;
            }
            cr_assert_neq(st, 0, "%s %s: a refusal exits non-zero", fc->op, fc->match);
            cr_assert(strstr(out, "dotdbd: ") != NULL, "%s %s: a message: %s", fc->op, fc->match, out);
            refused++;
            verify(&c, l); /* nothing lost by the failed start */
            h_stop(&c);
        }
        free(l);
        h_cleanup(&c);
        unlink(c.fault_ctl);
    }
    cr_log_info("recovery path: %d starts, %d refused cleanly", runs, refused);
    cr_assert_gt(refused, 0);
}

/* mmap: the data object at start-up (refused with a message), a client's
 * reader-slot page (that client refused, everybody else served). */
Test(faults, failed_mmaps_refuse_start_or_one_client, .timeout = 120)
{
    coord c;
    h_init(&c, NULL);
    snprintf(c.fault_ctl, sizeof c.fault_ctl, "%s.faults", c.dir);
    h_fault(&c, "mmap memfd:dotdb-data 12 0 0\n");
    char out[8192];
    int st = h_run_dotdbd(&c, NULL, out, sizeof out, 20000);
    cr_expect_neq(st, 0, "no data object, no coordinator: %s", out);
    cr_expect(strstr(out, "dotdbd: ") != NULL && strstr(out, "memory") != NULL, "%s", out);
    h_fault(&c, NULL);
    h_start(&c);
    dotdb *a = h_open(&c);
    cr_assert_eq(put_one(a, 0), DOTDB_OK);
    for (int n = 0; n < 3; n++) {
        char rule[128];
        snprintf(rule, sizeof rule, "mmap memfd:dotdb-readers 12 %d 1\n", n);
        h_fault(&c, rule);
        dotdb_options o = {.no_autostart = 1};
        dotdb *x = NULL;
        int rc = dotdb_open(c.dir, &o, &x);
        int fired = h_faults_fired(&c);
        h_fault(&c, NULL);
        if (fired) {
            cr_expect_neq(rc, DOTDB_OK, "the client whose slot page failed is refused");
            cr_expect(dotdb_errmsg(NULL) && *dotdb_errmsg(NULL), "with a message");
        } else {
            cr_expect_eq(rc, DOTDB_OK);
        }
        dotdb_close(x);
        cr_assert_eq(put_one(a, n + 1), DOTDB_OK, "an attached client goes on: %s", dotdb_errmsg(a));
    }
    dotdb_close(a);
    h_stop(&c);
    h_cleanup(&c);
    unlink(c.fault_ctl);
}
