/*
 * test_storage.c - checkpoints, segment files, the bounded WAL, backup,
 * restore and integrity checks, with real coordinators, real kill -9 and a
 * fault-injection shim for the full disk.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <inttypes.h>

#include "harness.h"

static void put_doc(dotdb *db, const char *coll, const char *id, int v, int pad)
{
    char doc[4200];
    snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"v\":%d,\"pad\":\"%0*d\"}", id, v, pad, v);
    int rc = dotdb_put(db, coll, doc, strlen(doc), NULL);
    cr_assert_eq(rc, DOTDB_OK, "put %s: %s", id, dotdb_errmsg(db));
}

/* The document's "v", or -1 when it does not exist. */
static int get_v(dotdb *db, const char *coll, const char *id)
{
    char *json = NULL;
    int rc = dotdb_get(db, coll, id, &json, NULL);
    if (rc == DOTDB_ENOTFOUND || rc == DOTDB_ENOCOLL)
        return -1;
    cr_assert_eq(rc, DOTDB_OK, "get %s: %s", id, dotdb_errmsg(db));
    cJSON *j = cJSON_Parse(json);
    int v = cJSON_GetObjectItem(j, "v")->valueint;
    cJSON_Delete(j);
    dotdb_free(json);
    return v;
}

static cJSON *checkpoint(dotdb *db, unsigned flags, const char *coll)
{
    char *json = NULL;
    int rc = dotdb_checkpoint(db, flags, coll, &json, NULL);
    cr_assert_eq(rc, DOTDB_OK, "checkpoint: %s", dotdb_errmsg(db));
    cJSON *j = cJSON_Parse(json);
    dotdb_free(json);
    cr_assert_not_null(j);
    return j;
}

static uint64_t jnum(const cJSON *j, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = j;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = cJSON_GetObjectItem(cur, tok);
    cr_assert(cJSON_IsNumber(cur) || cJSON_IsBool(cur), "no number at %s", path);
    return cJSON_IsBool(cur) ? (uint64_t)cJSON_IsTrue(cur) : (uint64_t)cur->valuedouble;
}

static cJSON *stats(dotdb *db)
{
    char *json = NULL;
    cr_assert_eq(dotdb_stats(db, NULL, &json, NULL), DOTDB_OK);
    cJSON *j = cJSON_Parse(json);
    dotdb_free(json);
    return j;
}

static uint64_t dir_bytes(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    uint64_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char p[600];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        if (de->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode))
            n += (uint64_t)st.st_size;
    }
    closedir(d);
    return n;
}

Test(storage, checkpoint_then_wal_replay_restores_exactly_the_acknowledged_state, .timeout = 120)
{
    coord c;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"full\", \"segment_size\": \"1MB\"}}");
    h_start(&c);
    dotdb *db = h_open(&c);
    char id[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "d%d", i);
        put_doc(db, "users", id, i, 40);
    }
    put_doc(db, "gone", "x", 1, 1);
    cJSON *r = checkpoint(db, 0, NULL);
    cr_expect_eq(jnum(r, "documents"), 3001);
    cJSON_Delete(r);
    char data[400];
    snprintf(data, sizeof data, "%s/collections/users/data", c.dir);
    cr_expect_gt(dir_bytes(data), 1000, "segments are written");
    /* After the checkpoint: updates, deletes, a drop, a new collection. */
    for (int i = 0; i < 3000; i += 3) {
        snprintf(id, sizeof id, "d%d", i);
        put_doc(db, "users", id, i + 100000, 40);
    }
    for (int i = 1; i < 3000; i += 7) {
        snprintf(id, sizeof id, "d%d", i);
        cr_assert_eq(dotdb_delete(db, "users", id), DOTDB_OK);
    }
    cr_assert_eq(dotdb_drop_collection(db, "gone"), DOTDB_OK);
    put_doc(db, "later", "y", 7, 1);
    dotdb_close(db);
    h_kill9(&c); /* no clean-stop checkpoint: checkpoint + WAL must do */

    h_start(&c);
    db = h_open(&c);
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "d%d", i);
        int want = (i % 7 == 1) ? -1 : (i % 3 == 0 ? i + 100000 : i);
        cr_assert_eq(get_v(db, "users", id), want, "%s after restart", id);
    }
    cr_expect_eq(get_v(db, "gone", "x"), -1, "a dropped collection stays dropped");
    cr_expect_eq(get_v(db, "later", "y"), 7);
    uint64_t count = 0;
    cr_assert_eq(dotdb_count(db, "users", NULL, &count), DOTDB_OK);
    cr_expect_eq(count, 3000 - 429);
    dotdb_close(db);
    h_stop(&c); /* clean stop: a final checkpoint */

    /* The next start loads everything from segments and replays nothing. */
    char out[8192];
    snprintf(out, sizeof out, "%s/dotdbd.log", c.dir);
    h_start(&c);
    db = h_open(&c);
    cJSON *s = stats(db);
    cr_expect_gt(jnum(s, "storage.checkpoint_lsn"), 0);
    cr_expect_eq(get_v(db, "users", "d3"), 100003);
    cJSON_Delete(s);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(storage, unchanged_collections_keep_their_segments, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    put_doc(db, "a", "1", 1, 10);
    put_doc(db, "b", "1", 1, 10);
    cJSON_Delete(checkpoint(db, 0, NULL));
    char seg[400];
    snprintf(seg, sizeof seg, "%s/collections/b/data/segment_001.db", c.dir);
    struct stat before, after;
    cr_assert_eq(stat(seg, &before), 0);
    put_doc(db, "a", "2", 2, 10);
    cJSON *r = checkpoint(db, 0, NULL);
    cr_expect_eq(jnum(r, "collections_written"), 1, "only the changed collection is rewritten");
    cr_expect_eq(jnum(r, "collections_kept"), 1);
    cJSON_Delete(r);
    cr_assert_eq(stat(seg, &after), 0, "b's segment is kept by reference");
    cr_expect_eq(before.st_ino, after.st_ino);
    r = checkpoint(db, 0, NULL);
    cr_expect_eq(jnum(r, "unchanged"), 1, "nothing changed: nothing written");
    cJSON_Delete(r);
    /* compact rewrites even an unchanged collection, under a new name */
    r = checkpoint(db, DOTDB_CHECKPOINT_COMPACT, "b");
    cr_expect_eq(jnum(r, "collections_written"), 1);
    cJSON_Delete(r);
    cr_expect_neq(stat(seg, &after), 0, "the old segment of b is removed after compaction");
    char *none = NULL;
    cr_expect_eq(dotdb_checkpoint(db, DOTDB_CHECKPOINT_COMPACT, "nope", &none, NULL), DOTDB_ENOCOLL);
    dotdb_free(none);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(storage, wal_stays_bounded_under_a_steady_write_load, .timeout = 180)
{
    coord c;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"normal\", \"segment_size\": \"1MB\", "
               "\"checkpoint_wal_size\": \"1MB\", \"checkpoint_interval_ms\": 3600000}}");
    h_start(&c);
    dotdb *db = h_open(&c);
    char wal[400], id[32];
    snprintf(wal, sizeof wal, "%s/wal", c.dir);
    uint64_t peak = 0;
    /* ~24 MB of writes over 500 documents */
    for (int i = 0; i < 24000; i++) {
        snprintf(id, sizeof id, "k%d", i % 500);
        put_doc(db, "load", id, i, 1000);
        if (i % 500 == 0) {
            uint64_t b = dir_bytes(wal);
            if (b > peak)
                peak = b;
        }
    }
    cJSON *s = stats(db);
    uint64_t ckpts = jnum(s, "storage.checkpoints");
    cJSON_Delete(s);
    cr_log_info("WAL peak %" PRIu64 " bytes over 24 MB written, %" PRIu64 " checkpoints", peak, ckpts);
    cr_expect_geq(ckpts, 5, "the WAL size triggered checkpoints (%" PRIu64 ")", ckpts);
    /* bounded: the trigger size plus what arrives while a checkpoint runs */
    cr_expect_lt(peak, 8u << 20, "the WAL directory stayed bounded (peak %" PRIu64 ")", peak);
    for (int k = 0; k < 500; k += 50) {
        snprintf(id, sizeof id, "k%d", k);
        cr_expect_eq(get_v(db, "load", id), 23500 + k);
    }
    dotdb_close(db);
    h_kill9(&c);
    h_start(&c);
    db = h_open(&c);
    cr_expect_eq(get_v(db, "load", "k499"), 23999);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* Writes ~kb KiB as updates of 100 documents of ~1 KiB. */
static void write_kib(dotdb *db, int kb, int base)
{
    char id[32];
    for (int i = 0; i < kb; i++) {
        snprintf(id, sizeof id, "u%d", i % 100);
        put_doc(db, "big", id, base + i, 1000);
    }
}

static uint64_t checkpoints_after_ticks(dotdb *db)
{
    h_sleep_ms(400); /* the trigger is looked at every 50 ms */
    cJSON *s = stats(db);
    while (jnum(s, "storage.running")) {
        cJSON_Delete(s);
        h_sleep_ms(50);
        s = stats(db);
    }
    uint64_t n = jnum(s, "storage.checkpoints");
    cJSON_Delete(s);
    return n;
}

/* After a checkpoint of D bytes the WAL may hold checkpoint_wal_percent of
 * D before the size triggers the next one (a big collection is not
 * rewritten for every checkpoint_wal_size written); 0 restores the size
 * alone. */
static void wal_percent_case(int percent, int expect_early)
{
    coord c;
    char cfg[300];
    snprintf(cfg, sizeof cfg, "{\"storage\": {\"sync_mode\": \"normal\", \"segment_size\": \"1MB\", "
             "\"checkpoint_wal_size\": \"1MB\", \"checkpoint_wal_percent\": %d, "
             "\"checkpoint_interval_ms\": 3600000}}", percent);
    h_init(&c, cfg);
    h_start(&c);
    dotdb *db = h_open(&c);
    char id[32];
    for (int i = 0; i < 6000; i++) { /* ~6 MB of data */
        snprintf(id, sizeof id, "d%d", i);
        put_doc(db, "big", id, i, 1000);
    }
    char *json = NULL;
    cr_assert_eq(dotdb_checkpoint(db, 0, NULL, &json, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_free(json);
    uint64_t before = checkpoints_after_ticks(db);
    write_kib(db, 2500, 0); /* ~2.5 MB: over the size, under 100% of the data */
    uint64_t mid = checkpoints_after_ticks(db);
    if (expect_early)
        cr_expect_gt(mid, before, "2.5 MB of WAL over a 1 MB size took a checkpoint");
    else
        cr_expect_eq(mid, before, "2.5 MB of WAL is under 100%% of ~6 MB checkpointed");
    write_kib(db, 5000, 10000); /* ~7.5 MB in all: over the data checkpointed */
    uint64_t after = checkpoints_after_ticks(db);
    cr_expect_gt(after, mid, "the WAL grew past the checkpointed data: a checkpoint");
    cr_expect_eq(get_v(db, "big", "u99"), 10000 + 4999);
    cr_expect_eq(get_v(db, "big", "d5999"), 5999);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(storage, checkpoint_waits_for_a_share_of_the_data_in_the_wal, .timeout = 180)
{
    wal_percent_case(100, 0);
}

Test(storage, checkpoint_wal_percent_0_is_the_size_alone, .timeout = 180)
{
    wal_percent_case(0, 1);
}

/* The nice value of each of pid's threads: how many are at `want`. */
static int threads_at_nice(pid_t pid, int want, int *others_at_0)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    int n = 0, zero = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sp[400], buf[1024];
        snprintf(sp, sizeof sp, "%s/%s/stat", path, e->d_name);
        FILE *f = fopen(sp, "r");
        if (f == NULL)
            continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = 0;
        /* after "(comm)": state is field 3, nice field 19 */
        const char *q = strrchr(buf, ')');
        int field = 2, nice = 0;
        for (; q && *q; q++)
            if (*q == ' ' && ++field == 19) {
                nice = atoi(q + 1);
                break;
            }
        if (field != 19)
            continue;
        n += nice == want;
        zero += nice == 0;
    }
    closedir(d);
    *others_at_0 = zero;
    return n;
}

/* A checkpoint runs on a thread at nice +10 (it yields the CPU to
 * requests); the loop and the pool stay at the coordinator's priority. */
Test(storage, checkpoint_runs_at_a_lower_priority, .timeout = 180)
{
    coord c;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"normal\", \"checkpoint_wal_size\": \"1TB\"}}");
    h_start(&c);
    dotdb *db = h_open(&c);
    /* ~40 MB, so that the checkpoint lasts long enough to be seen */
    size_t cap = 4000 * 1100, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (int b = 0; b < 10; b++) {
        len = 0;
        for (int i = 0; i < 4000; i++)
            len += (size_t)snprintf(text + len, cap - len, "{\"id\":\"b%d-%d\",\"pad\":\"%01000d\"}\n",
                                    b, i, i);
        size_t n = 0;
        cr_assert_eq(dotdb_put_many(db, "big", text, len, &n), DOTDB_OK, "%s", dotdb_errmsg(db));
    }
    free(text);
    pid_t kid = fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) {
        dotdb *k = NULL;
        dotdb_options o = {.no_autostart = 1};
        char *json = NULL;
        if (dotdb_open(c.dir, &o, &k) != DOTDB_OK ||
            dotdb_checkpoint(k, DOTDB_CHECKPOINT_COMPACT, NULL, &json, NULL) != DOTDB_OK)
            _exit(1);
        _exit(0);
    }
    int seen = 0, zero = 0;
    for (int i = 0; i < 20000 && !seen; i++) {
        seen = threads_at_nice(c.pid, 10, &zero);
        int st;
        if (!seen && waitpid(kid, &st, WNOHANG) == kid) {
            kid = -1;
            break;
        }
        usleep(200);
    }
    if (kid > 0)
        cr_assert_eq(h_wait(kid), 0, "the checkpoint succeeded");
    cr_assert_geq(seen, 1, "a thread at nice 10 while the checkpoint ran");
    cr_assert_geq(zero, 1, "the loop thread stays at nice 0");
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- kill -9 during checkpoints ---- */

/* A writer: sync full puts of keys w-k with increasing values; each
 * acknowledged (key, value) goes to the pipe. */
static int ck_writer(coord *c, int w, int round, int fd)
{
    dotdb_options o = {.no_autostart = 1};
    dotdb *db;
    if (dotdb_open(c->dir, &o, &db) != DOTDB_OK)
        return 1;
    for (int32_t n = round * 1000000;; n++) {
        char doc[200];
        int32_t rec[2] = {n % 200, n};
        snprintf(doc, sizeof doc, "{\"id\":\"w%d-%d\",\"v\":%d,\"pad\":\"%080d\"}", w, rec[0], n, n);
        if (dotdb_put(db, "ck", doc, strlen(doc), NULL) != DOTDB_OK)
            break;
        if (write(fd, rec, sizeof rec) != (ssize_t)sizeof rec)
            break;
    }
    dotdb_close(db);
    return 0;
}

/* Asks for checkpoints back to back. */
static int ck_requester(coord *c)
{
    dotdb_options o = {.no_autostart = 1};
    dotdb *db;
    if (dotdb_open(c->dir, &o, &db) != DOTDB_OK)
        return 1;
    for (int i = 0;; i++) {
        char *json = NULL;
        if (dotdb_checkpoint(db, i % 4 == 3 ? DOTDB_CHECKPOINT_COMPACT : 0, NULL, &json, NULL) != DOTDB_OK)
            break;
        dotdb_free(json);
    }
    dotdb_close(db);
    return 0;
}

Test(crash, kill9_during_checkpoints_keeps_exactly_the_acknowledged_writes, .timeout = 600)
{
    coord c;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"full\", \"segment_size\": \"1MB\", "
               "\"checkpoint_wal_size\": \"1MB\"}}");
    enum { ROUNDS = 24, WRITERS = 2, KEYS = 200 };
    int acked[WRITERS][KEYS];
    memset(acked, -1, sizeof acked);
    /* A bulk of documents so that a checkpoint takes a while to write. */
    h_start(&c);
    dotdb *db = h_open(&c);
    char id[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof id, "bulk%d", i);
        put_doc(db, "bulk", id, i, 100);
    }
    dotdb_close(db);
    srand(4242);
    uint64_t checkpoints_seen = 0;
    for (int round = 0; round < ROUNDS; round++) {
        if (round > 0)
            h_start(&c);
        int fds[WRITERS][2];
        pid_t pids[WRITERS + 1];
        for (int w = 0; w < WRITERS; w++) {
            cr_assert_eq(pipe(fds[w]), 0);
            pids[w] = fork();
            if (pids[w] == 0) {
                close(fds[w][0]);
                _exit(ck_writer(&c, w, round, fds[w][1]));
            }
            close(fds[w][1]);
        }
        pids[WRITERS] = fork();
        if (pids[WRITERS] == 0)
            _exit(ck_requester(&c));
        h_sleep_ms(30 + rand() % 300);
        h_kill9(&c);
        for (int w = 0; w < WRITERS; w++) {
            int32_t rec[2];
            while (read(fds[w][0], rec, sizeof rec) == (ssize_t)sizeof rec)
                acked[w][rec[0]] = rec[1];
            close(fds[w][0]);
        }
        for (int w = 0; w <= WRITERS; w++)
            h_wait(pids[w]);
        /* Restart: every acknowledged write, nothing older, bulk intact. */
        h_start(&c);
        db = h_open(&c);
        for (int w = 0; w < WRITERS; w++) {
            for (int k = 0; k < KEYS; k++) {
                snprintf(id, sizeof id, "w%d-%d", w, k);
                int v = get_v(db, "ck", id);
                /* v may be newer than the last ack (the write in flight,
                 * outcome unknown) but never older, never lost */
                cr_assert(v >= acked[w][k], "round %d: %s holds %d, acknowledged %d", round, id, v,
                          acked[w][k]);
                cr_assert(acked[w][k] < 0 || v % KEYS == k, "round %d: %s holds %d", round, id, v);
            }
        }
        uint64_t n = 0;
        cr_assert_eq(dotdb_count(db, "bulk", NULL, &n), DOTDB_OK);
        cr_assert_eq(n, 20000, "round %d: the bulk collection is whole", round);
        for (int i = 0; i < 20000; i += 997) {
            snprintf(id, sizeof id, "bulk%d", i);
            cr_assert_eq(get_v(db, "bulk", id), i);
        }
        cJSON *s = stats(db);
        checkpoints_seen = jnum(s, "storage.checkpoint_lsn") ? checkpoints_seen + 1 : checkpoints_seen;
        cJSON_Delete(s);
        dotdb_close(db);
        h_kill9(&c);
        /* the files are consistent for dotdb check too */
        char out[16384];
        static const char *const check[] = {"--check", NULL};
        int st = h_run_dotdbd(&c, check, out, sizeof out, 60000);
        cr_assert_eq(st, 0, "round %d: dotdb check after kill -9: %s", round, out);
    }
    cr_expect_eq(checkpoints_seen, ROUNDS, "every restart found a checkpoint");
    h_cleanup(&c);
}

/* ---- damage ---- */

/* Inside the first block's payload: blocks start after the 64-byte
 * segment header, payloads after their 32-byte block header. */
#define FIRST_BLOCK_PAYLOAD_BYTE (64 + 40)

Test(storage, a_flipped_byte_in_a_segment_stops_start_up_naming_file_and_offset, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    char id[32];
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof id, "d%d", i);
        put_doc(db, "users", id, i, 50);
    }
    dotdb_close(db);
    h_stop(&c); /* the clean stop writes the checkpoint */
    char seg[400];
    snprintf(seg, sizeof seg, "%s/collections/users/data/segment_001.db", c.dir);
    int fd = open(seg, O_RDWR);
    cr_assert_geq(fd, 0);
    long off = FIRST_BLOCK_PAYLOAD_BYTE;
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x10;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);

    char out[16384];
    int st = h_run_dotdbd(&c, NULL, out, sizeof out, 20000);
    cr_expect_eq(st, 1, "the coordinator refuses to start: %s", out);
    cr_expect(strstr(out, "segment_001.db") && strstr(out, "offset 64"),
              "the message names the file and the block offset: %s", out);
    cr_expect(strstr(out, "checksum mismatch") != NULL, "%s", out);
    cr_expect(strstr(out, "restore from a backup") != NULL,
              "the WAL no longer covers the data, the message says what to do: %s", out);
    static const char *const check[] = {"--check", NULL};
    st = h_run_dotdbd(&c, check, out, sizeof out, 20000);
    cr_expect_eq(st, 1, "dotdb check reports the damage: %s", out);
    cr_expect(strstr(out, "DAMAGED") && strstr(out, "segment_001.db") && strstr(out, "offset 64"),
              "%s", out);
    /* the damaged files are left as they were: nothing silently dropped */
    struct stat sb;
    cr_expect_eq(stat(seg, &sb), 0);
    static const char *const recover[] = {"--recover", NULL};
    st = h_run_dotdbd(&c, recover, out, sizeof out, 20000);
    cr_expect_neq(st, 0, "recover refuses when the WAL does not hold every write: %s", out);
    cr_expect(strstr(out, "--recover refused") != NULL, "%s", out);
    h_cleanup(&c);
}

Test(storage, a_damaged_manifest_stops_start_up, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    put_doc(db, "users", "a", 1, 10);
    dotdb_close(db);
    h_stop(&c);
    char mf[400];
    snprintf(mf, sizeof mf, "%s/system/manifest.json", c.dir);
    FILE *f = fopen(mf, "r+");
    cr_assert_not_null(f);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    char *p = strstr(text, "\"documents\": 1");
    cr_assert_not_null(p);
    p[13] = '2'; /* still valid JSON, wrong content */
    rewind(f);
    fwrite(text, 1, n, f);
    fclose(f);
    char out[8192];
    int st = h_run_dotdbd(&c, NULL, out, sizeof out, 20000);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect(strstr(out, "manifest") && strstr(out, "damaged"), "%s", out);
    h_cleanup(&c);
}

/* ---- a full disk during a checkpoint ---- */

Test(storage, a_full_disk_fails_the_checkpoint_cleanly_and_writes_go_on, .timeout = 120)
{
    coord c;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"full\"}}");
    snprintf(c.fault_ctl, sizeof c.fault_ctl, "%s.faults", c.dir);
    h_start(&c);
    dotdb *db = h_open(&c);
    char id[32];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "d%d", i);
        put_doc(db, "users", id, i, 100);
    }
    cJSON *r = checkpoint(db, 0, NULL);
    uint64_t good = jnum(r, "checkpoint_lsn");
    cJSON_Delete(r);
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "d%d", i);
        put_doc(db, "users", id, i + 1000, 100);
    }
    /* ENOSPC (28) on every write to a segment file, then on the manifest */
    static const char *const faults[] = {"write segment_ 28\n", "write manifest.json 28\n",
                                         "fdatasync segment_ 5\n", "rename manifest.json 28\n"};
    for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
        h_fault(&c, faults[f]);
        char *json = NULL;
        int rc = dotdb_checkpoint(db, 0, NULL, &json, NULL);
        cr_expect(rc == DOTDB_ENOSPC || rc == DOTDB_EIO, "%s: checkpoint fails (%s): %s", faults[f],
                  dotdb_err_name(rc), dotdb_errmsg(db));
        cJSON *s = stats(db);
        cr_expect_eq(jnum(s, "storage.checkpoint_lsn"), good, "the previous checkpoint stays");
        const char *err = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "storage"), "last_error")->valuestring;
        cr_expect(strlen(err) > 0, "the error is visible in stats");
        cJSON_Delete(s);
        /* writes go on while the WAL can be written */
        snprintf(id, sizeof id, "during%zu", f);
        put_doc(db, "users", id, (int)f, 10);
        h_fault(&c, NULL);
    }
    /* the disk has room again: the next checkpoint succeeds */
    r = checkpoint(db, 0, NULL);
    cr_expect_gt(jnum(r, "checkpoint_lsn"), good);
    cJSON_Delete(r);
    dotdb_close(db);
    h_kill9(&c);
    c.fault_ctl[0] = 0;
    h_start(&c);
    db = h_open(&c);
    for (int i = 0; i < 200; i += 13) {
        snprintf(id, sizeof id, "d%d", i);
        cr_expect_eq(get_v(db, "users", id), i + 1000);
    }
    cr_expect_eq(get_v(db, "users", "during3"), 3);
    dotdb_close(db);
    h_stop(&c);
    char out[16384];
    static const char *const check[] = {"--check", NULL};
    cr_expect_eq(h_run_dotdbd(&c, check, out, sizeof out, 20000), 0, "%s", out);
    h_cleanup(&c);
}

/* ---- backup and restore ---- */

static int bk_writer(coord *c, int fd)
{
    dotdb_options o = {.no_autostart = 1};
    dotdb *db;
    if (dotdb_open(c->dir, &o, &db) != DOTDB_OK)
        return 1;
    for (int32_t n = 0; n < 100000; n++) {
        char doc[128];
        snprintf(doc, sizeof doc, "{\"id\":\"live%d\",\"v\":%d}", n, n);
        if (dotdb_put(db, "live", doc, strlen(doc), NULL) != DOTDB_OK ||
            write(fd, &n, sizeof n) != (ssize_t)sizeof n)
            break;
    }
    dotdb_close(db);
    return 0;
}

Test(storage, online_backup_is_consistent_and_restores, .timeout = 120)
{
    coord c, r;
    h_init(&c, "{\"storage\": {\"sync_mode\": \"normal\"}}");
    h_init(&r, NULL);
    rmdir(r.dir); /* restore creates it */
    h_start(&c);
    dotdb *db = h_open(&c);
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "d%d", i);
        put_doc(db, "users", id, i, 50);
    }
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t w = fork();
    if (w == 0) {
        close(p[0]);
        _exit(bk_writer(&c, p[1]));
    }
    close(p[1]);
    h_sleep_ms(100);
    /* every write acknowledged before the backup starts must be in it */
    int32_t before = -1, n;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    while (read(p[0], &n, sizeof n) == (ssize_t)sizeof n)
        before = n;
    char dest[300], *json = NULL;
    snprintf(dest, sizeof dest, "%s.backup", c.dir);
    int rc = dotdb_backup(db, dest, &json, NULL);
    cr_assert_eq(rc, DOTDB_OK, "backup: %s", dotdb_errmsg(db));
    cr_log_info("backup: %s", json);
    dotdb_free(json);
    cr_expect_eq(dotdb_backup(db, dest, &json, NULL), DOTDB_EEXISTS, "a non-empty destination is refused");
    char inside[300];
    snprintf(inside, sizeof inside, "%s/bk", c.dir);
    cr_expect_eq(dotdb_backup(db, inside, &json, NULL), DOTDB_EINVAL,
                 "a destination inside the data directory is refused");
    kill(w, SIGKILL);
    h_wait(w);
    close(p[0]);
    cr_assert_gt(before, 0, "the writer ran during the backup");
    dotdb_close(db);
    h_stop(&c);

    /* restore into a new directory and start a coordinator on it */
    char out[16384];
    const char *const restore[] = {"--restore", dest, NULL};
    int st = h_run_dotdbd(&r, restore, out, sizeof out, 60000);
    cr_assert_eq(st, 0, "restore: %s", out);
    cr_expect(strstr(out, "OK:") != NULL, "the restored copy is checked: %s", out);
    st = h_run_dotdbd(&r, restore, out, sizeof out, 60000);
    cr_expect_neq(st, 0, "restore into a non-empty directory is refused: %s", out);
    h_start(&r);
    db = h_open(&r);
    for (int i = 0; i < 1000; i += 37) {
        snprintf(id, sizeof id, "d%d", i);
        cr_expect_eq(get_v(db, "users", id), i);
    }
    /* a prefix of the live writes: everything up to `before`, no holes */
    int last = -1;
    for (int i = 0;; i++) {
        snprintf(id, sizeof id, "live%d", i);
        if (get_v(db, "live", id) != i)
            break;
        last = i;
    }
    cr_expect_geq(last, before, "acknowledged before the backup: %d, in it: %d", before, last);
    uint64_t cnt = 0;
    cr_assert_eq(dotdb_count(db, "live", NULL, &cnt), DOTDB_OK);
    cr_expect_eq(cnt, (uint64_t)last + 1, "no document after a hole");
    dotdb_close(db);
    h_stop(&r);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dest);
    (void)!system(cmd);
    h_cleanup(&r);
    h_cleanup(&c);
}

Test(storage, check_finds_a_damaged_wal_record_before_the_tail, .timeout = 60)
{
    coord c;
    h_init(&c, "{\"storage\": {\"checkpoint_wal_size\": \"1GB\"}}");
    h_start(&c);
    dotdb *db = h_open(&c);
    char id[32];
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "d%d", i);
        put_doc(db, "users", id, i, 50);
    }
    dotdb_close(db);
    h_kill9(&c); /* no checkpoint: the WAL is everything */
    char seg[400];
    snprintf(seg, sizeof seg, "%s/wal/wal_000001.log", c.dir);
    int fd = open(seg, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, 100), 1);
    b ^= 1;
    cr_assert_eq(pwrite(fd, &b, 1, 100), 1);
    close(fd);
    char out[16384];
    static const char *const check[] = {"--check", NULL};
    int st = h_run_dotdbd(&c, check, out, sizeof out, 20000);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect(strstr(out, "wal_000001.log") && strstr(out, "offset 32"), "%s", out);
    st = h_run_dotdbd(&c, NULL, out, sizeof out, 20000);
    cr_expect_eq(st, 1, "start-up refuses damage before the tail: %s", out);
    h_cleanup(&c);
}
