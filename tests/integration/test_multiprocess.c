/*
 * test_multiprocess.c - real coordinators, real client processes.
 *
 * Snapshot consistency across processes, read-your-writes across
 * processes, kill -9 of the coordinator during durable writes, a client
 * killed while it holds a snapshot, re-attachment after a restart and
 * max_connections.
 */
#include <cjson/cJSON.h>
#include <poll.h>

#include "harness.h"

static cJSON *stats_json(dotdb *db)
{
    char *s = NULL;
    cr_assert_eq(dotdb_stats(db, NULL, &s, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    cJSON *j = cJSON_Parse(s);
    dotdb_free(s);
    cr_assert_not_null(j);
    return j;
}

static double stat_num(cJSON *j, const char *sect, const char *key)
{
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, sect), key);
    cr_assert(cJSON_IsNumber(v), "stats %s.%s missing", sect, key);
    return v->valuedouble;
}

static void put_ok(dotdb *db, const char *coll, const char *json)
{
    int rc = dotdb_put(db, coll, json, strlen(json), NULL);
    cr_assert_eq(rc, DOTDB_OK, "put %s: %s", json, dotdb_errmsg(db));
}

/* ---- snapshot consistency ---- */

/* Reader process: every snapshot shows a == b (the writer always writes
 * them together) and stays the same within itself; after the writer says
 * "i is acknowledged" a fresh read shows a >= i.  Exit status = verdict. */
static int reader_main(coord *c, int ack_fd)
{
    dotdb *db = h_open(c);
    int64_t last_ack = 0;
    int failures = 0, eof = 0;
    fcntl(ack_fd, F_SETFL, O_NONBLOCK);
    while (!eof && failures == 0) {
        int64_t v;
        ssize_t n = read(ack_fd, &v, sizeof v);
        if (n == 0)
            eof = 1;
        else if (n == (ssize_t)sizeof v)
            last_ack = v;
        dotdb_txn *t;
        if (dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t) != DOTDB_OK)
            return 2;
        dotdb_doc d1, d2;
        dotdb_value a, b, a2;
        if (dotdb_txn_get(t, "pairs", "pair", &d1) == DOTDB_OK) {
            dotdb_doc_get(&d1, "a", &a);
            dotdb_doc_get(&d1, "b", &b);
            if (a.type != DOTDB_T_INT || b.type != DOTDB_T_INT || a.i != b.i)
                failures++;
            /* the same snapshot must give the same answer however the writer moves on */
            if (dotdb_txn_get(t, "pairs", "pair", &d2) != DOTDB_OK)
                failures++;
            dotdb_doc_get(&d2, "a", &a2);
            if (a2.i != a.i)
                failures++;
            if (n == (ssize_t)sizeof v && a.i < last_ack) {
                /* this snapshot began after the ack arrived */
                failures++;
            }
        } else if (last_ack > 0) {
            failures++;
        }
        dotdb_txn_abort(t);
    }
    dotdb_close(db);
    return failures ? 1 : 0;
}

Test(multiprocess, snapshots_stay_consistent_and_acknowledged_writes_are_seen_everywhere,
     .timeout = 120)
{
    coord c;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"normal\"}}");
    h_start(&c);
    enum { READERS = 3, WRITES = 1500 };
    int fds[READERS][2];
    pid_t pids[READERS];
    for (int r = 0; r < READERS; r++) {
        cr_assert_eq(pipe(fds[r]), 0);
        pids[r] = fork();
        if (pids[r] == 0) {
            for (int k = 0; k <= r; k++)
                close(fds[k][1]);
            _exit(reader_main(&c, fds[r][0]));
        }
        close(fds[r][0]);
    }
    dotdb *db = h_open(&c);
    char doc[256];
    for (int64_t i = 1; i <= WRITES; i++) {
        snprintf(doc, sizeof doc, "{\"id\":\"pair\",\"a\":%lld,\"pad\":\"%0*d\",\"b\":%lld}",
                 (long long)i, (int)(i % 97), 0, (long long)i);
        put_ok(db, "pairs", doc);
        for (int r = 0; r < READERS; r++)
            cr_assert_eq(write(fds[r][1], &i, sizeof i), (ssize_t)sizeof i);
    }
    for (int r = 0; r < READERS; r++)
        close(fds[r][1]);
    for (int r = 0; r < READERS; r++) {
        int st = h_wait(pids[r]);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader %d saw an inconsistent "
                  "snapshot or missed an acknowledged write (status %d)", r, st);
    }
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- kill -9 during durable writes ---- */

/* Writer process: put documents until the coordinator dies; report each
 * acknowledged sequence number on ack_fd. */
static int writer_main(coord *c, int round, int w, int ack_fd)
{
    /* One attempt, not h_open's 20 s of retries: on a loaded machine the
     * kill can come before this process connects, and each writer would
     * then hold its round for 20 s (20 rounds: past the test's timeout). */
    dotdb_options o = {.no_autostart = 1};
    dotdb *db = NULL;
    if (dotdb_open(c->dir, &o, &db) != DOTDB_OK)
        return 0;
    char doc[200];
    for (int32_t n = 0;; n++) {
        snprintf(doc, sizeof doc, "{\"id\":\"r%d-w%d-%d\",\"round\":%d,\"n\":%d,\"payload\":\"%032d\"}",
                 round, w, n, round, n, n);
        if (dotdb_put(db, "crash", doc, strlen(doc), NULL) != DOTDB_OK)
            break;
        if (write(ack_fd, &n, sizeof n) != (ssize_t)sizeof n)
            break;
    }
    dotdb_close(db);
    return 0;
}

typedef struct acked {
    int round, w, n;
} acked;

Test(crash, kill9_during_full_sync_writes_keeps_every_acknowledged_write, .timeout = 300)
{
    coord c;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"full\"}}");
    enum { ROUNDS = 20, WRITERS = 3 };
    size_t cap = 1 << 16, n_acked = 0;
    acked *all = malloc(cap * sizeof *all);
    srand(12345);
    for (int round = 0; round < ROUNDS; round++) {
        h_start(&c);
        int fds[WRITERS][2];
        pid_t pids[WRITERS];
        for (int w = 0; w < WRITERS; w++) {
            cr_assert_eq(pipe(fds[w]), 0);
            pids[w] = fork();
            if (pids[w] == 0) {
                close(fds[w][0]);
                _exit(writer_main(&c, round, w, fds[w][1]));
            }
            close(fds[w][1]);
        }
        h_sleep_ms(20 + rand() % 150); /* a random kill point in the stream */
        h_kill9(&c);
        for (int w = 0; w < WRITERS; w++) {
            int32_t n;
            while (read(fds[w][0], &n, sizeof n) == (ssize_t)sizeof n) {
                if (n_acked == cap)
                    all = realloc(all, (cap *= 2) * sizeof *all);
                all[n_acked++] = (acked){round, w, n};
            }
            close(fds[w][0]);
            h_wait(pids[w]);
        }
        /* Restart and check everything acknowledged so far, this round and before. */
        h_start(&c);
        dotdb *db = h_open(&c);
        for (size_t i = 0; i < n_acked; i++) {
            char id[64], *json = NULL;
            snprintf(id, sizeof id, "r%d-w%d-%d", all[i].round, all[i].w, all[i].n);
            int rc = dotdb_get(db, "crash", id, &json, NULL);
            cr_assert_eq(rc, DOTDB_OK, "round %d: acknowledged document %s lost after kill -9 (%s)",
                         round, id, dotdb_errmsg(db));
            char want[64];
            snprintf(want, sizeof want, "\"n\":%d,", all[i].n);
            cr_assert(strstr(json, want) != NULL, "document %s has wrong content: %s", id, json);
            dotdb_free(json);
        }
        dotdb_close(db);
        h_stop(&c);
    }
    cr_log_info("%zu acknowledged writes checked over %d kill points", n_acked, ROUNDS);
    cr_expect_gt(n_acked, (size_t)ROUNDS, "the writers should get some writes through");
    free(all);
    h_cleanup(&c);
}

/* ---- a client killed while it holds a snapshot ---- */

static int json_snapshots_with_pid(cJSON *j, pid_t pid)
{
    int n = 0;
    cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(j, "snapshots"))
        n += cJSON_GetObjectItem(s, "pid")->valueint == pid;
    return n;
}

Test(multiprocess, killed_client_releases_its_snapshot_and_pinned_versions, .timeout = 120)
{
    coord c;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"off\"}}");
    h_start(&c);
    dotdb *db = h_open(&c);
    char big[5000];
    snprintf(big, sizeof big, "{\"id\":\"x\",\"v\":0,\"pad\":\"%04000d\"}", 0);
    put_ok(db, "pin", big);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        dotdb *cdb = h_open(&c);
        dotdb_txn *t;
        dotdb_doc d;
        if (dotdb_txn_begin(cdb, DOTDB_TXN_READONLY, &t) != 0 || dotdb_txn_get(t, "pin", "x", &d) != 0)
            _exit(1);
        (void)!write(p[1], "r", 1);
        for (;;)
            pause(); /* hold the snapshot until killed */
    }
    close(p[1]);
    char ch;
    cr_assert_eq(read(p[0], &ch, 1), 1, "child could not take its snapshot");
    cJSON *j = stats_json(db);
    cr_assert_eq(json_snapshots_with_pid(j, child), 1, "stats show the child's snapshot");
    cJSON_Delete(j);

    for (int i = 1; i <= 200; i++) {
        snprintf(big, sizeof big, "{\"id\":\"x\",\"v\":%d,\"pad\":\"%04000d\"}", i, i);
        put_ok(db, "pin", big);
    }
    j = stats_json(db);
    double pinned = stat_num(j, "memory", "retired_bytes");
    cJSON_Delete(j);
    cr_assert_gt(pinned, 190 * 4000.0, "old versions must stay while the snapshot holds them");

    kill(child, SIGKILL);
    h_wait(child);
    uint64_t deadline = h_now_ms() + 10000;
    double retired = pinned;
    int snaps = 1;
    while ((retired > 64 * 1024 || snaps) && h_now_ms() < deadline) {
        h_sleep_ms(20);
        j = stats_json(db);
        retired = stat_num(j, "memory", "retired_bytes");
        snaps = json_snapshots_with_pid(j, child);
        cJSON_Delete(j);
    }
    cr_expect_eq(snaps, 0, "the dead client's slot is cleared");
    cr_expect_lt(retired, 64 * 1024.0, "versions pinned by the dead client are reclaimed (%.0f bytes left)",
                 retired);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- restarts and limits ---- */

Test(multiprocess, handle_reattaches_after_coordinator_restart, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    put_ok(db, "users", "{\"id\":\"u1\",\"name\":\"Alice\"}");
    h_stop(&c);
    /* stopped: the handle must not serve stale memory silently */
    char *json = NULL;
    int rc = dotdb_get(db, "users", "u1", &json, NULL);
    cr_expect_neq(rc, DOTDB_OK, "a read after a clean stop must fail, not read the old memory");
    h_start(&c);
    rc = dotdb_get(db, "users", "u1", &json, NULL);
    cr_assert_eq(rc, DOTDB_OK, "re-attach after restart: %s", dotdb_errmsg(db));
    cr_expect(strstr(json, "Alice") != NULL);
    dotdb_free(json);
    put_ok(db, "users", "{\"id\":\"u2\",\"name\":\"Bob\"}");
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- polling for a reply ---- */

/* Times this thread went to sleep (voluntary context switches) during n
 * puts through a new handle opened with spin_us. */
static long sleeps_during_puts(coord *c, int spin_us, int n)
{
    dotdb_options o = {.no_autostart = 1, .spin_us = spin_us};
    dotdb *db = NULL;
    cr_assert_eq(dotdb_open(c->dir, &o, &db), DOTDB_OK, "open: %s", dotdb_errmsg(NULL));
    put_ok(db, "spin", "{\"id\":\"warm\"}");
    struct rusage before, after;
    cr_assert_eq(getrusage(RUSAGE_THREAD, &before), 0);
    for (int i = 0; i < n; i++) {
        char doc[64];
        snprintf(doc, sizeof doc, "{\"id\":\"s%d\",\"spin\":%d}", i, spin_us);
        put_ok(db, "spin", doc);
    }
    cr_assert_eq(getrusage(RUSAGE_THREAD, &after), 0);
    dotdb_close(db);
    return after.ru_nvcsw - before.ru_nvcsw;
}

/* A write whose reply comes within the handle's polling budget costs the
 * client no sleep and wake-up; spin_us < 0, or $DOTDB_SPIN_US=0, restores
 * a blocking wait for every reply.  (Counts of sleeps, not times: a reply
 * in sync_mode normal comes well within the 1 s budget however slow the
 * machine, and yielding the CPU while polling is not a sleep.) */
Test(multiprocess, a_reply_within_the_polling_budget_does_not_put_the_client_to_sleep,
     .timeout = 120)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        cr_skip_test("one core: the library never polls there");
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    long polled = sleeps_during_puts(&c, 1000000, 200);
    long blocking = sleeps_during_puts(&c, -1, 200);
    cr_assert_eq(setenv("DOTDB_SPIN_US", "0", 1), 0);
    long env_off = sleeps_during_puts(&c, 0, 200);
    cr_assert_eq(unsetenv("DOTDB_SPIN_US"), 0);
    cr_log_info("sleeps in 200 puts: polled %ld, spin_us -1 %ld, DOTDB_SPIN_US=0 %ld", polled,
                blocking, env_off);
    cr_expect_lt(polled, 20, "200 puts with a 1 s polling budget slept %ld times", polled);
    cr_expect_geq(blocking, 100, "200 puts with spin_us -1 slept only %ld times", blocking);
    cr_expect_geq(env_off, 100, "200 puts with DOTDB_SPIN_US=0 slept only %ld times", env_off);
    /* every document is there, whichever way its reply was waited for */
    dotdb *db = h_open(&c);
    uint64_t n = 0;
    cr_assert_eq(dotdb_count(db, "spin", NULL, &n), DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_expect_eq(n, 201, "count %llu", (unsigned long long)n);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(multiprocess, max_connections_refuses_with_a_clear_error, .timeout = 60)
{
    coord c;
    h_init(&c, "{\"memory\": {\"max_connections\": 2}}");
    h_start(&c);
    dotdb *a = h_open(&c), *b = h_open(&c), *x = NULL;
    dotdb_options o = {.no_autostart = 1};
    int rc = dotdb_open(c.dir, &o, &x);
    cr_expect_eq(rc, DOTDB_ETOOMANY, "third connection: %s", dotdb_strerror(rc));
    cr_expect(strstr(dotdb_errmsg(NULL), "max_connections") != NULL, "message: %s",
              dotdb_errmsg(NULL));
    dotdb_close(b);
    /* a slot frees up when a client leaves */
    uint64_t deadline = h_now_ms() + 5000;
    while ((rc = dotdb_open(c.dir, &o, &x)) != DOTDB_OK && h_now_ms() < deadline)
        h_sleep_ms(10);
    cr_expect_eq(rc, DOTDB_OK);
    dotdb_close(x);
    dotdb_close(a);
    h_stop(&c);
    h_cleanup(&c);
}

Test(multiprocess, second_coordinator_on_same_directory_names_the_owner, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        execl(h_dotdbd(), "dotdbd", "--db", c.dir, "--foreground", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char msg[512] = "";
    ssize_t n = read(p[0], msg, sizeof msg - 1);
    msg[n > 0 ? n : 0] = 0;
    close(p[0]);
    int st = h_wait(pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0, "second coordinator must fail");
    char want[32];
    snprintf(want, sizeof want, "pid %d", (int)c.pid);
    cr_expect(strstr(msg, want) != NULL, "message names the owner: %s", msg);
    /* the first one is unharmed */
    dotdb *db = h_open(&c);
    put_ok(db, "still", "{\"id\":\"ok\"}");
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* Each of the 50 documents must hold the content of its last acknowledged
 * write (value i, with i % 50 == its number). */
static void expect_last_acked(dotdb *db, const int last[50])
{
    for (int k = 0; k < 50; k++) {
        char id[16], *json = NULL, want[32];
        snprintf(id, sizeof id, "d%d", k);
        cr_assert_eq(dotdb_get(db, "disk", id, &json, NULL), DOTDB_OK, "%s: %s", id, dotdb_errmsg(db));
        snprintf(want, sizeof want, "\"v\":%d,", last[k]);
        cr_expect(strstr(json, want) != NULL, "%s should hold its last acknowledged write %d: %.60s",
                  id, last[k], json);
        dotdb_free(json);
    }
}

Test(multiprocess, full_disk_fails_the_write_cleanly_and_loses_nothing, .timeout = 120)
{
    coord c;
    /* The file-size limit applies to the shared memory object too, so keep
     * it small and let the WAL be what fills up. */
    h_init(&c, "{\"storage\": {\"sync_mode\": \"full\"}, "
               "\"memory\": {\"buffer_pool_size\": \"1MB\", \"max_size\": \"1MB\"}}");
    c.fsize_limit = 2 * 1024 * 1024;
    h_start(&c);
    dotdb *db = h_open(&c);
    char doc[1200];
    int last[50], rc = DOTDB_OK, i;
    for (i = 0; i < 10000; i++) {
        snprintf(doc, sizeof doc, "{\"id\":\"d%d\",\"v\":%d,\"pad\":\"%01000d\"}", i % 50, i, i);
        rc = dotdb_put(db, "disk", doc, strlen(doc), NULL);
        if (rc != DOTDB_OK)
            break;
        last[i % 50] = i;
    }
    cr_assert_eq(rc, DOTDB_ENOSPC, "a full disk is DOTDB_ENOSPC, got %s: %s", dotdb_err_name(rc),
                 dotdb_errmsg(db));
    cr_assert_gt(i, 100, "the first writes fit");
    expect_last_acked(db, last); /* the failed write is not visible; reads go on */
    /* another write fails the same clean way */
    cr_expect_eq(dotdb_put(db, "disk", doc, strlen(doc), NULL), DOTDB_ENOSPC);
    expect_last_acked(db, last);
    dotdb_close(db);
    h_stop(&c);

    c.fsize_limit = 0; /* space again */
    h_start(&c);
    db = h_open(&c);
    expect_last_acked(db, last); /* every acknowledged write survived the full disk */
    snprintf(doc, sizeof doc, "{\"id\":\"after\",\"v\":1}");
    cr_expect_eq(dotdb_put(db, "disk", doc, strlen(doc), NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}
