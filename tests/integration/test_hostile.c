/*
 * test_hostile.c - hostile and careless clients (I1, I8, I9).
 *
 * Each test runs a real coordinator, a bystander process that keeps
 * writing and reading through the library the whole time, and an offender
 * that speaks the wire protocol by hand (raw_client.h): garbage, huge
 * declared lengths, frames cut off, unknown opcodes and versions,
 * connection churn, a snapshot held forever, documents at and past every
 * limit sent past the library's checks, and a reader slot page full of
 * garbage.  Every time: the offender gets a clear error (or is cut off),
 * the coordinator stays up, the bystander never sees a failure, and
 * nothing leaks.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <sys/mman.h>

#include "codec.h"
#include "raw_client.h"

/* ---- helpers ---- */

static const char *const BASE_CFG = "\"storage\": {\"sync_mode\": \"off\"}";

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    /* xorshift64*: deterministic across runs, so a failure replays */
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * 0x2545f4914f6cdd1dull;
}

static void init(coord *c, const char *extra_cfg)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{%s%s%s}", BASE_CFG, extra_cfg ? ", " : "", extra_cfg ? extra_cfg : "");
    h_init(c, cfg);
}

static void start(coord *c, const char *extra_cfg)
{
    init(c, extra_cfg);
    h_start(c);
}

static int coord_alive(const coord *c)
{
    int st;
    return c->pid > 0 && waitpid(c->pid, &st, WNOHANG) == 0;
}

static cJSON *stats(dotdb *db)
{
    char *s = NULL;
    cr_assert_eq(dotdb_stats(db, NULL, &s, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    cJSON *j = cJSON_Parse(s);
    cr_assert_not_null(j, "stats is not JSON: %.300s", s);
    dotdb_free(s);
    return j;
}

static double stat_num(dotdb *db, const char *sect, const char *key)
{
    cJSON *j = stats(db);
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, sect), key);
    cr_assert(cJSON_IsNumber(v), "stats %s.%s missing", sect, key);
    double d = v->valuedouble;
    cJSON_Delete(j);
    return d;
}

/* Poll stats until sect.key == want (5 s). */
static void wait_stat(dotdb *db, const char *sect, const char *key, double want)
{
    uint64_t deadline = h_now_ms() + 5000;
    double v;
    while ((v = stat_num(db, sect, key)) != want && h_now_ms() < deadline)
        h_sleep_ms(10);
    cr_assert_eq(v, want, "stats %s.%s is %.0f, expected %.0f", sect, key, v, want);
}

static void put_ok(dotdb *db, const char *coll, const char *json)
{
    int rc = dotdb_put(db, coll, json, strlen(json), NULL);
    cr_assert_eq(rc, DOTDB_OK, "put %.80s: %s", json, dotdb_errmsg(db));
}

/* A fresh handle writes and reads back: the coordinator still serves. */
static void others_still_work(coord *c, const char *tag)
{
    cr_assert(coord_alive(c), "%s: the coordinator died", tag);
    dotdb *db = h_open(c);
    char doc[128], *json = NULL;
    snprintf(doc, sizeof doc, "{\"id\":\"after-%s\",\"ok\":true}", tag);
    put_ok(db, "bystander", doc);
    snprintf(doc, sizeof doc, "after-%s", tag);
    cr_assert_eq(dotdb_get(db, "bystander", doc, &json, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_free(json);
    dotdb_close(db);
}

/* ---- the bystander: a well-behaved client working throughout ---- */

typedef struct bystander {
    pid_t pid;
    int stop_fd; /* closing it tells the child to finish */
    int res_fd;  /* the child reports its operation count here */
} bystander;

static int bystander_main(coord *c, int stop_fd, int res_fd)
{
    dotdb *db = h_open(c);
    int64_t n = 0;
    char doc[160], id[32], want[48], *json;
    for (;;) {
        struct pollfd p = {.fd = stop_fd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0)
            break;
        snprintf(id, sizeof id, "b%lld", (long long)(n % 50));
        snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"n\":%lld,\"pad\":\"%064d\"}", id, (long long)n, 0);
        if (dotdb_put(db, "bystander", doc, strlen(doc), NULL) != DOTDB_OK) {
            fprintf(stderr, "bystander: put %lld failed: %s\n", (long long)n, dotdb_errmsg(db));
            return 1;
        }
        json = NULL;
        if (dotdb_get(db, "bystander", id, &json, NULL) != DOTDB_OK) {
            fprintf(stderr, "bystander: get %s failed: %s\n", id, dotdb_errmsg(db));
            return 1;
        }
        snprintf(want, sizeof want, "\"n\":%lld,", (long long)n);
        if (strstr(json, want) == NULL) {
            fprintf(stderr, "bystander: %s is %s, expected %s\n", id, json, want);
            return 1;
        }
        dotdb_free(json);
        if (n++ == 0)
            (void)!write(res_fd, "r", 1); /* working: the test may begin */
        h_sleep_ms(1); /* leave the cores to the coordinator and the offender */
    }
    (void)!write(res_fd, &n, sizeof n);
    dotdb_close(db);
    return 0;
}

static bystander bystander_start(coord *c)
{
    int stop[2], res[2];
    cr_assert_eq(pipe(stop), 0);
    cr_assert_eq(pipe(res), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(stop[1]);
        close(res[0]);
        _exit(bystander_main(c, stop[0], res[1]));
    }
    close(stop[0]);
    close(res[1]);
    char ch;
    ssize_t k;
    do
        k = read(res[0], &ch, 1);
    while (k < 0 && errno == EINTR);
    cr_assert_eq(k, 1, "the bystander could not start working");
    return (bystander){pid, stop[1], res[0]};
}

/* Stop it and check it never failed and got work done. */
static void bystander_stop(bystander *b)
{
    close(b->stop_fd);
    int64_t n = -1;
    ssize_t k;
    do
        k = read(b->res_fd, &n, sizeof n);
    while (k < 0 && errno == EINTR);
    close(b->res_fd);
    int st = h_wait(b->pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the bystander failed (status 0x%x)", st);
    cr_assert_gt(n, 0, "the bystander got no work done");
    cr_log_info("bystander: %lld put+get pairs meanwhile", (long long)n);
}

/* ---- garbage ---- */

/* A valid one-document batch, in b. */
static void good_batch(dbuf *b, const char *coll, const char *json)
{
    dbuf doc;
    dbuf_init(&doc);
    char err[256];
    cr_assert_eq(codec_from_json(json, strlen(json), NULL, NULL, &doc, NULL, err, sizeof err), 0,
                 "%s", err);
    size_t start;
    b->len = 0;
    cr_assert_eq(batch_begin(b, &start), 0);
    batch_op op = {.kind = BOP_PUT, .coll = coll, .coll_len = strlen(coll), .doc = doc.data,
                   .doc_len = doc.len};
    cr_assert_eq(batch_add(b, start, &op), 0);
    dbuf_free(&doc);
}

Test(hostile, garbage_bytes_get_an_error_and_leave_others_unaffected, .timeout = 120)
{
    coord c;
    start(&c, "\"memory\": {\"frame_timeout_ms\": 300}");
    bystander b = bystander_start(&c);
    dotdb *db = h_open(&c);
    uint8_t junk[4096];
    int cases = 0, closed = 0, batches = 0, batch_ok = 0;

    /* 1: random bytes instead of a handshake, and 2: after one. */
    for (int round = 0; round < 30; round++) {
        int fd = round < 15 ? raw_connect(&c) : raw_open(&c, NULL);
        cr_assert_geq(fd, 0);
        size_t n = 1 + rnd() % sizeof junk;
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)rnd();
        (void)raw_send(fd, junk, n);
        int errs = 0;
        rframe last;
        int eof = raw_wait_eof(fd, 3000, &errs, &last);
        cr_expect_gt(errs, 0, "round %d: %zu garbage bytes got no error frame", round, n);
        if (eof)
            closed++;
        else /* the garbage happened to end on a frame boundary */
            cr_expect_eq(raw_ping(fd, 77), 0, "round %d: connection left unusable", round);
        close(fd);
        cases++;
    }

    /* 3: well-formed frames with random opcodes and payloads: each gets
     * its answer and the connection stays usable. */
    for (int round = 0; round < 10; round++) {
        int fd = raw_open(&c, NULL);
        int nframes = 1 + (int)(rnd() % 20);
        for (int k = 0; k < nframes; k++) {
            uint16_t op = (uint16_t)rnd();
            if (op == WIRE_OP_BACKUP || op == WIRE_OP_PING || op == WIRE_OP_CHECKPOINT)
                op = 1000 + (uint16_t)k; /* a random BACKUP path would write somewhere */
            uint32_t len = (uint32_t)(rnd() % 300);
            for (uint32_t i = 0; i < len; i++)
                junk[i] = (uint8_t)rnd();
            cr_assert_eq(raw_frame(fd, op, (uint32_t)k + 10, rnd(), junk, len), 0);
            rframe f;
            cr_assert_eq(raw_recv(fd, &f, 5000), 1, "round %d: frame %d (op %u) unanswered", round,
                         k, op);
            raw_close_fds(&f);
            cr_expect_eq(f.h.req_id, (uint32_t)k + 10);
            if (op != WIRE_OP_STATS && op != WIRE_OP_BATCH)
                cr_expect_neq(f.h.status, 0, "op %u with junk payload was accepted", op);
            cases++;
        }
        cr_expect_eq(raw_ping(fd, 99), 0);
        close(fd);
    }

    /* 4: a valid batch with 1..8 random bytes changed, 300 times: the
     * batch and document validators must refuse or accept, never crash. */
    int fd = raw_open(&c, NULL);
    dbuf good, bad;
    dbuf_init(&good);
    dbuf_init(&bad);
    good_batch(&good, "mut", "{\"id\":\"m1\",\"a\":[1,2.5,\"x\",{\"b\":null}],\"c\":{\"d\":true,\"e\":-7}}");
    for (int round = 0; round < 300; round++) {
        bad.len = 0;
        cr_assert_eq(dbuf_append(&bad, good.data, good.len), 0);
        int flips = 1 + (int)(rnd() % 8);
        for (int k = 0; k < flips; k++)
            bad.data[rnd() % bad.len] = (uint8_t)rnd();
        cr_assert_eq(raw_frame(fd, WIRE_OP_BATCH, (uint32_t)round, 0, bad.data, (uint32_t)bad.len), 0);
        rframe f;
        cr_assert_eq(raw_recv(fd, &f, 5000), 1, "mutated batch %d unanswered", round);
        cr_expect_eq(f.h.req_id, (uint32_t)round);
        if (f.h.status != 0)
            cr_expect(f.pl[0] != 0, "mutated batch %d: an error without a message", round);
        batch_ok += f.h.status == 0;
        batches++;
    }
    cr_expect_eq(raw_ping(fd, 12345), 0);
    close(fd);
    dbuf_free(&good);
    dbuf_free(&bad);

    cr_log_info("garbage: %d connections/frames (%d cut off by the coordinator), %d mutated "
                "batches (%d still valid and applied)", cases, closed, batches, batch_ok);
    cr_expect_gt(stat_num(db, "coordinator", "frame_timeouts"), 0,
                 "some garbage left a frame incomplete and was timed out");
    wait_stat(db, "coordinator", "connections", 2); /* the bystander and db */
    bystander_stop(&b);
    others_still_work(&c, "garbage");
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(hostile, huge_declared_length_is_refused_and_the_connection_closed, .timeout = 60)
{
    coord c;
    start(&c, "\"limits\": {\"max_document_size\": \"1MB\"}, \"memory\": {\"frame_timeout_ms\": 300}");
    bystander b = bystander_start(&c);
    const uint32_t max_frame = (1u << 20) + (64u << 20); /* max_document_size + 64 MiB */
    const uint32_t lens[] = {UINT32_MAX, 1u << 30, max_frame + 1};
    for (int after_hello = 0; after_hello < 2; after_hello++) {
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            int fd = after_hello ? raw_open(&c, NULL) : raw_connect(&c);
            uint8_t hdr[WIRE_HDR_SIZE];
            wire_hdr h = {.len = lens[i], .req_id = 7, .op = after_hello ? WIRE_OP_BATCH : WIRE_OP_HELLO};
            wire_hdr_put(hdr, &h);
            cr_assert_eq(raw_send(fd, hdr, sizeof hdr), 0);
            rframe f;
            cr_assert_eq(raw_recv(fd, &f, 3000), 1, "len %u: no answer", lens[i]);
            cr_expect_eq(f.h.status, DOTDB_ETOOBIG, "len %u: status %d", lens[i], f.h.status);
            cr_expect_eq(f.h.req_id, 7u);
            cr_expect(strstr(f.pl, "exceeds the limit") != NULL, "message: %s", f.pl);
            cr_expect_eq(raw_wait_eof(fd, 2000, NULL, NULL), 1, "len %u: connection not closed",
                         lens[i]);
            close(fd);
        }
    }
    /* Exactly at the limit the frame is accepted as incomplete (and then
     * timed out, since it never arrives whole). */
    int fd = raw_open(&c, NULL);
    uint8_t hdr[WIRE_HDR_SIZE + 1000] = {0};
    wire_hdr h = {.len = max_frame, .req_id = 8, .op = WIRE_OP_BATCH};
    wire_hdr_put(hdr, &h);
    cr_assert_eq(raw_send(fd, hdr, sizeof hdr), 0);
    rframe f;
    cr_assert_eq(raw_recv(fd, &f, 5000), 1);
    cr_expect_eq(f.h.status, DOTDB_EPROTO);
    cr_expect(strstr(f.pl, "incomplete frame") != NULL, "message: %s", f.pl);
    cr_expect_eq(raw_wait_eof(fd, 2000, NULL, NULL), 1);
    close(fd);
    bystander_stop(&b);
    others_still_work(&c, "huge");
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- frames cut off, then silence ---- */

/* Wait for the timeout's error frame and EOF; returns the elapsed ms. */
static uint64_t expect_timed_out(int fd, uint64_t t0, const char *want, const char *what)
{
    rframe f;
    int r = raw_recv(fd, &f, 5000);
    cr_assert_eq(r, 1, "%s: no error frame", what);
    cr_expect_eq(f.h.status, DOTDB_EPROTO, "%s: status %d", what, f.h.status);
    cr_expect(strstr(f.pl, want) != NULL, "%s: message \"%s\" lacks \"%s\"", what, f.pl, want);
    cr_expect(strstr(f.pl, "memory.frame_timeout_ms") != NULL, "%s: %s", what, f.pl);
    cr_expect_eq(raw_wait_eof(fd, 2000, NULL, NULL), 1, "%s: not closed", what);
    uint64_t ms = h_now_ms() - t0;
    cr_expect_geq(ms, 250, "%s: closed after %llu ms, before the timeout", what, (unsigned long long)ms);
    cr_expect_lt(ms, 3000, "%s: closed only after %llu ms", what, (unsigned long long)ms);
    return ms;
}

Test(hostile, frame_cut_off_then_silence_is_closed_after_frame_timeout, .timeout = 60)
{
    coord c;
    start(&c, "\"memory\": {\"frame_timeout_ms\": 300}");
    bystander b = bystander_start(&c);
    dotdb *db = h_open(&c);
    uint8_t buf[WIRE_HDR_SIZE + 200] = {0};
    wire_hdr h = {.len = 100, .req_id = 3, .op = WIRE_OP_BATCH};
    wire_hdr_put(buf, &h);

    /* a: header and 10 of 100 payload bytes */
    int fd = raw_open(&c, NULL);
    uint64_t t0 = h_now_ms();
    cr_assert_eq(raw_send(fd, buf, WIRE_HDR_SIZE + 10), 0);
    expect_timed_out(fd, t0, "34 of 124 bytes", "payload cut off");
    close(fd);

    /* b: 10 bytes of a header */
    fd = raw_open(&c, NULL);
    t0 = h_now_ms();
    cr_assert_eq(raw_send(fd, buf, 10), 0);
    expect_timed_out(fd, t0, "10 of the 24 header bytes", "header cut off");
    close(fd);

    /* c: connected, no handshake at all */
    t0 = h_now_ms();
    fd = raw_connect(&c);
    cr_assert_geq(fd, 0);
    expect_timed_out(fd, t0, "no handshake", "silent before HELLO");
    close(fd);

    /* d: a byte every 50 ms: the clock runs from the frame's first byte */
    fd = raw_open(&c, NULL);
    h.len = 200;
    wire_hdr_put(buf, &h);
    t0 = h_now_ms();
    size_t sent = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (sent < sizeof buf && poll(&p, 1, 50) == 0)
        if (raw_send(fd, buf + sent++, 1) != 0)
            break;
    cr_expect_lt(sent, sizeof buf, "the trickle was allowed to finish its frame");
    expect_timed_out(fd, t0, "incomplete frame", "trickle");
    close(fd);

    /* e: idle between frames is fine, however long */
    fd = raw_open(&c, NULL);
    p.fd = fd;
    cr_expect_eq(poll(&p, 1, 1000), 0, "an idle connection got something");
    cr_expect_eq(raw_ping(fd, 5), 0, "an idle connection was closed");

    /* f: a frame in two halves 100 ms apart is within the timeout */
    h = (wire_hdr){.len = 0, .req_id = 6, .op = WIRE_OP_PING};
    wire_hdr_put(buf, &h);
    cr_assert_eq(raw_send(fd, buf, 12), 0);
    h_sleep_ms(100); /* deliberately: a slow but live client */
    cr_assert_eq(raw_send(fd, buf + 12, 12), 0);
    rframe f;
    cr_assert_eq(raw_recv(fd, &f, 3000), 1);
    cr_expect_eq(f.h.status, 0);
    cr_expect_eq(f.h.req_id, 6u);
    close(fd);

    cr_expect_eq(stat_num(db, "coordinator", "frame_timeouts"), 4);
    wait_stat(db, "coordinator", "connections", 2);
    bystander_stop(&b);
    others_still_work(&c, "cutoff");
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- opcodes and versions ---- */

static void expect_error(int fd, int status, const char *want, const char *what)
{
    rframe f;
    cr_assert_eq(raw_recv(fd, &f, 3000), 1, "%s: no answer", what);
    cr_expect_eq(f.nfds, 0, "%s: descriptors handed out with an error", what);
    raw_close_fds(&f);
    cr_expect_eq(f.h.status, status, "%s: status %s (%s)", what, dotdb_err_name(f.h.status), f.pl);
    cr_expect(strstr(f.pl, want) != NULL, "%s: message \"%s\" lacks \"%s\"", what, f.pl, want);
}

Test(hostile, unknown_opcodes_and_wrong_versions_get_clear_errors, .timeout = 60)
{
    coord c;
    start(&c, NULL);
    bystander b = bystander_start(&c);

    int fd = raw_open(&c, NULL);
    cr_assert_eq(raw_frame(fd, 999, 1, 0, "hello", 5), 0);
    expect_error(fd, DOTDB_EPROTO, "unknown opcode 999", "opcode 999");
    cr_assert_eq(raw_frame(fd, 0, 2, 0, NULL, 0), 0);
    expect_error(fd, DOTDB_EPROTO, "unknown opcode 0", "opcode 0");
    cr_expect_eq(raw_ping(fd, 3), 0, "the connection survives unknown opcodes");
    rframe f;
    cr_assert_eq(raw_hello(fd, DOTDB_PROTOCOL_VERSION, SHM_LAYOUT_VERSION, &f), 1);
    cr_expect_eq(f.h.status, DOTDB_EPROTO);
    cr_expect(strstr(f.pl, "HELLO sent twice") != NULL, "%s", f.pl);
    cr_expect_eq(f.nfds, 0);
    cr_expect_eq(raw_ping(fd, 4), 0, "and a second HELLO");
    close(fd);

    fd = raw_connect(&c);
    cr_assert_eq(raw_frame(fd, WIRE_OP_PING, 1, 0, NULL, 0), 0);
    expect_error(fd, DOTDB_EPROTO, "first request must be HELLO", "PING before HELLO");
    cr_expect_eq(raw_wait_eof(fd, 2000, NULL, NULL), 1);
    close(fd);

    const uint32_t versions[][2] = {{99, SHM_LAYOUT_VERSION}, {DOTDB_PROTOCOL_VERSION, 99}, {0, 0}};
    const char *wants[] = {"protocol 99", "layout 99", "protocol 0 / layout 0"};
    for (int i = 0; i < 3; i++) {
        fd = raw_connect(&c);
        cr_assert_eq(raw_hello(fd, versions[i][0], versions[i][1], &f), 1);
        cr_expect_eq(f.h.status, DOTDB_EVERSION, "versions %u/%u", versions[i][0], versions[i][1]);
        cr_expect(strstr(f.pl, wants[i]) != NULL, "%s", f.pl);
        cr_expect(strstr(f.pl, "upgrade") != NULL, "%s", f.pl);
        cr_expect_eq(f.nfds, 0, "no descriptor for a wrong version");
        raw_close_fds(&f);
        cr_expect_eq(raw_wait_eof(fd, 2000, NULL, NULL), 1);
        close(fd);
    }

    fd = raw_connect(&c);
    cr_assert_eq(raw_frame(fd, WIRE_OP_HELLO, 1, 0, "\1\0\0\0\1\0\0\0", 8), 0);
    expect_error(fd, DOTDB_EPROTO, "too short", "HELLO of 8 bytes");
    cr_expect_eq(raw_wait_eof(fd, 2000, NULL, NULL), 1);
    close(fd);

    /* The library reports a refusal by version as such. */
    bystander_stop(&b);
    others_still_work(&c, "versions");
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- connection churn ---- */

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    cr_assert_not_null(d, "%s: %s", path, strerror(errno));
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* VmRSS of a process, in KiB. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Lines of a file that contain `what`. */
static int count_lines_with(const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

Test(hostile, connection_churn_leaks_no_descriptor_or_mapping, .timeout = 120)
{
    coord c;
    start(&c, "\"memory\": {\"max_connections\": 16, \"frame_timeout_ms\": 300}");
    bystander b = bystander_start(&c);
    dotdb *db = h_open(&c);
    char fd_dir[64], maps[64];
    snprintf(fd_dir, sizeof fd_dir, "/proc/%d/fd", (int)c.pid);
    snprintf(maps, sizeof maps, "/proc/%d/maps", (int)c.pid);
    wait_stat(db, "coordinator", "connections", 2);
    int fds0 = count_dir(fd_dir), maps0 = count_lines_with(maps, "dotdb-readers");
    long rss0 = rss_kib(c.pid);

    enum { ROUNDS = 3000 };
    int refused = 0, served = 0;
    uint64_t t0 = h_now_ms();
    for (int i = 0; i < ROUNDS; i++) {
        int fd;
        rframe f;
        switch (i % 4) {
        case 0: /* connect and go */
            fd = raw_connect(&c);
            cr_assert_geq(fd, 0);
            close(fd);
            break;
        case 1: /* handshake, then go */
            fd = raw_open(&c, &f);
            raw_close_fds(&f);
            close(fd);
            break;
        case 2: /* handshake, half a frame, go */
            fd = raw_open(&c, NULL);
            (void)raw_send(fd, "\x40\0\0\0\1\0\0\0\2\0", 10);
            close(fd);
            break;
        default: /* a request, then go */
            fd = raw_open(&c, NULL);
            cr_assert_eq(raw_ping(fd, 1), 0);
            close(fd);
        }
        if (i % 100 == 50) {
            /* a burst past max_connections: the extras are refused */
            int burst[24];
            for (int k = 0; k < 24; k++) {
                burst[k] = raw_connect(&c);
                cr_assert_geq(burst[k], 0);
                (void)raw_hello(burst[k], DOTDB_PROTOCOL_VERSION, SHM_LAYOUT_VERSION, &f);
                raw_close_fds(&f);
                if (f.h.status == DOTDB_ETOOMANY)
                    refused++;
                else if (f.h.status == 0)
                    served++;
            }
            for (int k = 0; k < 24; k++)
                close(burst[k]);
            wait_stat(db, "coordinator", "connections", 2); /* before the next one */
        }
        if (i % 500 == 0) {
            dotdb *x = h_open(&c); /* and the library's own attach */
            dotdb_close(x);
        }
    }
    cr_log_info("%d connections opened and closed in %llu ms; bursts: %d served, %d refused",
                ROUNDS, (unsigned long long)(h_now_ms() - t0), served, refused);
    cr_expect_gt(refused, 0, "bursts past max_connections were refused");
    wait_stat(db, "coordinator", "connections", 2);
    cr_assert(coord_alive(&c));
    int fds1 = count_dir(fd_dir), maps1 = count_lines_with(maps, "dotdb-readers");
    cr_expect_eq(fds1, fds0, "the coordinator holds %d descriptors, %d before the churn", fds1, fds0);
    cr_expect_eq(maps1, maps0, "the coordinator maps %d slot pages, %d before the churn", maps1,
                 maps0);
    long rss1 = rss_kib(c.pid);
    cr_log_info("coordinator RSS %ld KiB before the churn, %ld after", rss0, rss1);
#ifndef __SANITIZE_ADDRESS__
    /* (ASan's quarantine keeps freed memory resident; there LeakSanitizer
     * at the coordinator's exit is the check.) */
    cr_expect_lt(rss1 - rss0, 8 * 1024, "the coordinator grew by %ld KiB over 3000 connections",
                 rss1 - rss0);
#endif
    bystander_stop(&b);
    others_still_work(&c, "churn");
    dotdb_close(db);
    h_stop(&c); /* under ASan, LeakSanitizer fails this exit on any heap leak */
    h_cleanup(&c);
}

/* A descriptor limit below max_connections: the connections past it are
 * refused at once with a clear error, never half served. */
Test(hostile, descriptor_limit_refuses_extra_connections_with_a_clear_error, .timeout = 60)
{
    coord c;
    init(&c, NULL);
    c.nofile_limit = 80; /* far below max_connections (1000) */
    h_start(&c);
    bystander b = bystander_start(&c);
    enum { N = 60 };
    int fds[N], served = 0, told = 0;
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(&c);
        cr_assert_geq(fds[i], 0, "connect %d: %s", i, strerror(errno));
        rframe f;
        cr_assert_eq(raw_hello(fds[i], DOTDB_PROTOCOL_VERSION, SHM_LAYOUT_VERSION, &f), 1,
                     "connection %d got no answer", i);
        raw_close_fds(&f);
        if (f.h.status == 0) {
            cr_expect_eq(told, 0, "connection %d served after one was refused", i);
            served++;
        } else {
            cr_expect_eq(f.h.status, DOTDB_ETOOMANY, "connection %d: %s", i, f.pl);
            cr_expect(strstr(f.pl, "RLIMIT_NOFILE") != NULL, "%s", f.pl);
            told++;
        }
    }
    cr_log_info("descriptor limit 80: %d connections served, %d refused", served, told);
    cr_expect_gt(served, 10);
    cr_expect_gt(told, 0, "all %d served under a limit of 80 descriptors?", N);
    /* The library reports the refusal, not the broken pipe of its HELLO
     * (the coordinator refuses at accept, often before HELLO is sent). */
    dotdb_options o = {.no_autostart = 1};
    for (int i = 0; i < 20; i++) {
        dotdb *x = NULL;
        int rc = dotdb_open(c.dir, &o, &x);
        cr_expect_eq(rc, DOTDB_ETOOMANY, "attempt %d: %s (%s)", i, dotdb_err_name(rc),
                     dotdb_errmsg(NULL));
        cr_expect(strstr(dotdb_errmsg(NULL), "RLIMIT_NOFILE") != NULL, "%s", dotdb_errmsg(NULL));
        if (rc == DOTDB_OK)
            dotdb_close(x);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    others_still_work(&c, "fd-limit");
    bystander_stop(&b);
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- a snapshot held forever ---- */

static int snapshot_of(dotdb *db, pid_t pid, int *ousted)
{
    cJSON *j = stats(db), *s;
    int n = 0;
    *ousted = 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(j, "snapshots"))
    {
        if (cJSON_GetObjectItem(s, "pid")->valueint != pid)
            continue;
        n++;
        *ousted |= cJSON_IsTrue(cJSON_GetObjectItem(s, "ousted"));
    }
    cJSON_Delete(j);
    return n;
}

/* Child: hold a snapshot until told, then read on it; report each rc. */
static int holder_main(coord *c, int to_parent, int from_parent)
{
    dotdb *db = h_open(c);
    dotdb_txn *t;
    dotdb_doc d;
    char ch;
    int rc[3];
    if (dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t) != 0 || dotdb_txn_get(t, "pin", "x", &d) != 0)
        return 2;
    (void)!write(to_parent, "r", 1);
    if (read(from_parent, &ch, 1) != 1)
        return 3;
    rc[0] = dotdb_txn_get(t, "pin", "x", &d);
    if (rc[0] == DOTDB_ESNAPSHOT_EXPIRED && strstr(dotdb_errmsg(db), "max_snapshot_age") == NULL)
        return 4;
    dotdb_txn_abort(t);
    /* Again with nothing written meanwhile: the next snapshot gets the
     * same LSN as the ousted one, and must not inherit its fate. */
    if (dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t) != 0 || dotdb_txn_get(t, "pin", "x", &d) != 0)
        return 5;
    (void)!write(to_parent, "h", 1);
    if (read(from_parent, &ch, 1) != 1)
        return 6;
    rc[1] = dotdb_txn_get(t, "pin", "x", &d);
    dotdb_txn_abort(t);
    if (dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t) != 0)
        return 7;
    rc[2] = dotdb_txn_get(t, "pin", "x", &d);
    dotdb_txn_abort(t);
    (void)!write(to_parent, rc, sizeof rc);
    dotdb_close(db);
    return 0;
}

Test(hostile, snapshot_held_forever_is_ousted_and_shown_in_stats, .timeout = 60)
{
    coord c;
    start(&c, "\"memory\": {\"max_snapshot_age_ms\": 300}");
    dotdb *db = h_open(&c);
    char big[5000];
    snprintf(big, sizeof big, "{\"id\":\"x\",\"v\":0,\"pad\":\"%04000d\"}", 0);
    put_ok(db, "pin", big);
    int up[2], down[2];
    cr_assert_eq(pipe(up), 0);
    cr_assert_eq(pipe(down), 0);
    pid_t child = fork();
    if (child == 0) {
        close(up[0]);
        close(down[1]);
        _exit(holder_main(&c, up[1], down[0]));
    }
    close(up[1]);
    close(down[0]);
    char ch;
    cr_assert_eq(read(up[0], &ch, 1), 1, "the holder could not take its snapshot");
    int ousted;
    cr_assert_eq(snapshot_of(db, child, &ousted), 1, "stats show the holder's snapshot");

    for (int i = 1; i <= 200; i++) {
        snprintf(big, sizeof big, "{\"id\":\"x\",\"v\":%d,\"pad\":\"%04000d\"}", i, i);
        put_ok(db, "pin", big);
    }
    /* Ousted after 300 ms: what it pinned is freed although the holder is
     * still connected and its slot still names its snapshot. */
    uint64_t deadline = h_now_ms() + 5000;
    double retired;
    do {
        h_sleep_ms(20);
        retired = stat_num(db, "memory", "retired_bytes");
    } while ((retired > 64 * 1024 || snapshot_of(db, child, &ousted) != 1 || !ousted) &&
             h_now_ms() < deadline);
    cr_expect(ousted, "stats mark the holder's snapshot as ousted");
    cr_expect_lt(retired, 64 * 1024.0, "the ousted snapshot no longer pins versions (%.0f bytes)",
                 retired);
    cr_expect_geq(stat_num(db, "coordinator", "snapshots_ousted"), 1);
    cr_assert_eq(write(down[1], "g", 1), 1);

    cr_assert_eq(read(up[0], &ch, 1), 1);
    /* The second snapshot, at the current LSN, ages out too. */
    deadline = h_now_ms() + 5000;
    while ((snapshot_of(db, child, &ousted) != 1 || !ousted) && h_now_ms() < deadline)
        h_sleep_ms(20);
    cr_expect(ousted, "the second snapshot is ousted as well");
    cr_assert_eq(write(down[1], "g", 1), 1);
    int rc[3] = {1, 1, 1};
    cr_assert_eq(read(up[0], rc, sizeof rc), (ssize_t)sizeof rc);
    int st = h_wait(child);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "holder exit status 0x%x", st);
    cr_expect_eq(rc[0], DOTDB_ESNAPSHOT_EXPIRED, "a read on the ousted snapshot: %s",
                 dotdb_err_name(rc[0]));
    cr_expect_eq(rc[1], DOTDB_ESNAPSHOT_EXPIRED, "second ousted snapshot: %s", dotdb_err_name(rc[1]));
    cr_expect_eq(rc[2], DOTDB_OK, "a fresh snapshot at the ousted one's LSN: %s",
                 dotdb_err_name(rc[2]));
    close(up[0]);
    close(down[1]);
    others_still_work(&c, "ousted");
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- documents at and past every limit ---- */

#define LIMITS_CFG "\"limits\": {\"max_document_size\": 8192, \"max_depth\": 20, \"max_fields\": 50}"

/* JSON text of exactly `len` bytes: {"id":"ID","p":"xxx..."} */
static char *doc_of_len(const char *id, size_t len)
{
    char *s = malloc(len + 1);
    int head = snprintf(s, len + 1, "{\"id\":\"%s\",\"p\":\"", id);
    cr_assert(head > 0 && (size_t)head + 2 <= len);
    memset(s + head, 'x', len - (size_t)head - 2);
    memcpy(s + len - 2, "\"}", 3);
    return s;
}

/* {"id":"ID","a":{"a":...1...}} with `depth` containers in all (the
 * document counts as one), arrays instead of objects when is_array. */
static char *doc_of_depth(const char *id, int depth, int is_array)
{
    size_t cap = 64 + (size_t)depth * 8;
    char *s = malloc(cap), *p = s;
    p += sprintf(p, "{\"id\":\"%s\",\"a\":", id);
    for (int i = 1; i < depth; i++)
        p += sprintf(p, is_array ? "[" : "{\"a\":");
    p += sprintf(p, "1");
    for (int i = 1; i < depth; i++)
        *p++ = is_array ? ']' : '}';
    strcpy(p, "}");
    return s;
}

/* An object with `n` members ("id" counts) at the top, or nested in "o"
 * (with n members there). */
static char *doc_of_fields(const char *id, int n, int nested)
{
    char *s = malloc(64 + (size_t)n * 12), *p = s;
    p += sprintf(p, "{\"id\":\"%s\"", id);
    if (nested)
        p += sprintf(p, ",\"o\":{\"k0\":0");
    for (int i = 1; i < n; i++)
        p += sprintf(p, ",\"k%d\":%d", i, i);
    strcpy(p, nested ? "}}" : "}");
    return s;
}

static void put_expect(dotdb *db, const char *coll, const char *json, int want, const char *what)
{
    int rc = dotdb_put(db, coll, json, strlen(json), NULL);
    cr_expect_eq(rc, want, "%s: %s, expected %s (%s)", what, dotdb_err_name(rc), dotdb_err_name(want),
                 dotdb_errmsg(db));
}

static const char *const BAD_NAMES[] = {"a/b", "..", ".", ".hidden", "-x", "", "a b", "\xc3\xbc",
                                        "../hostile-escape", "a\\b", "ccccccccccccccccccccccccccccccc"
                                        "ccccccccccccccccccccccccccccccccccc" /* 66 */};
static const char NAME64[] = "c123456789012345678901234567890123456789012345678901234567890123";
_Static_assert(sizeof NAME64 == 65, "a 64-character name");

Test(hostile, documents_at_and_past_every_limit_through_the_api, .timeout = 60)
{
    coord c;
    start(&c, LIMITS_CFG);
    dotdb *db = h_open(&c);
    char *json = NULL;
    int cases = 0;

    /* The limit holds for the JSON text and for its encoding: 8185 bytes
     * of this shape encode to 8192. */
    char *s = doc_of_len("s", 8185);
    put_expect(db, "lim", s, DOTDB_OK, "encoding of 8192 bytes");
    free(s);
    s = doc_of_len("s2", 8186);
    put_expect(db, "lim", s, DOTDB_ETOOBIG, "encoding of 8193 bytes");
    cr_expect_eq(dotdb_get(db, "lim", "s2", &json, NULL), DOTDB_ENOTFOUND, "nothing stored");
    free(s);
    s = malloc(8194);
    for (int len = 8192; len <= 8193; len++) {
        int head = sprintf(s, "{\"id\":\"w\"");
        memset(s + head, ' ', (size_t)len - (size_t)head - 1);
        strcpy(s + len - 1, "}");
        put_expect(db, "lim", s, len == 8192 ? DOTDB_OK : DOTDB_ETOOBIG, "JSON text at the limit");
    }
    free(s);
    cases += 4;

    for (int is_array = 0; is_array < 2; is_array++) {
        s = doc_of_depth("d", 20, is_array);
        put_expect(db, "lim", s, DOTDB_OK, "depth 20");
        free(s);
        s = doc_of_depth("d2", 21, is_array);
        put_expect(db, "lim", s, DOTDB_ETOODEEP, "depth 21");
        free(s);
        cases += 2;
    }

    char id[300], doc[400];
    memset(id, 'i', 255);
    id[255] = 0;
    snprintf(doc, sizeof doc, "{\"id\":\"%s\"}", id);
    put_expect(db, "lim", doc, DOTDB_OK, "id of 255 bytes");
    cr_expect_eq(dotdb_get(db, "lim", id, &json, NULL), DOTDB_OK);
    dotdb_free(json);
    snprintf(doc, sizeof doc, "{\"id\":\"%si\"}", id);
    put_expect(db, "lim", doc, DOTDB_EBADID, "id of 256 bytes");
    put_expect(db, "lim", "{\"id\":\"\"}", DOTDB_EBADID, "empty id");
    put_expect(db, "lim", "{\"id\":7}", DOTDB_EBADID, "id a number");
    cases += 4;

    for (int nested = 0; nested < 2; nested++) {
        s = doc_of_fields("f", 50, nested);
        put_expect(db, "lim", s, DOTDB_OK, "50 fields");
        free(s);
        s = doc_of_fields("f2", 51, nested);
        put_expect(db, "lim", s, DOTDB_ETOOBIG, "51 fields");
        cr_expect(strstr(dotdb_errmsg(db), "limits.max_fields (50)") != NULL, "%s", dotdb_errmsg(db));
        free(s);
        cases += 2;
    }
    /* An update that would add the 51st field changes nothing. */
    s = doc_of_fields("f", 50, 0);
    put_expect(db, "lim", s, DOTDB_OK, "50 fields again");
    free(s);
    const char *upd = "{\"$set\": {\"k50\": 50}}";
    cr_expect_eq(dotdb_update(db, "lim", "f", upd, strlen(upd)), DOTDB_ETOOBIG, "%s",
                 dotdb_errmsg(db));
    cr_assert_eq(dotdb_get(db, "lim", "f", &json, NULL), DOTDB_OK);
    cr_expect(strstr(json, "k50") == NULL, "the refused update left its mark: %.80s", json);
    dotdb_free(json);
    cases++;

    for (size_t i = 0; i < sizeof BAD_NAMES / sizeof BAD_NAMES[0]; i++) {
        put_expect(db, BAD_NAMES[i], "{\"id\":\"n\"}", DOTDB_EBADNAME, BAD_NAMES[i]);
        cr_expect_eq(dotdb_create_collection(db, BAD_NAMES[i]), DOTDB_EBADNAME, "create \"%s\"",
                     BAD_NAMES[i]);
        cases += 2;
    }
    put_expect(db, NAME64, "{\"id\":\"n\"}", DOTDB_OK, "64-character name");
    cr_expect_eq(dotdb_get(db, NAME64, "n", &json, NULL), DOTDB_OK);
    dotdb_free(json);
    cases++;
    cr_log_info("%d limit cases through the API", cases);
    dotdb_close(db);
    others_still_work(&c, "limits-api");
    h_stop(&c);
    h_cleanup(&c);
}

/* Send one batch op on a raw connection; the response's status, and its
 * message in msg. */
static int raw_batch_op(int fd, const batch_op *op, char *msg, size_t msglen)
{
    static uint32_t req = 100;
    dbuf b;
    dbuf_init(&b);
    size_t start;
    cr_assert_eq(batch_begin(&b, &start), 0);
    cr_assert_eq(batch_add(&b, start, op), 0);
    cr_assert_eq(raw_frame(fd, WIRE_OP_BATCH, ++req, 0, b.data, (uint32_t)b.len), 0);
    dbuf_free(&b);
    rframe f;
    cr_assert_eq(raw_recv(fd, &f, 5000), 1, "no answer to a batch");
    cr_assert_eq(f.h.req_id, req);
    snprintf(msg, msglen, "%s", f.pl);
    return f.h.status;
}

/* Encode JSON with the client library's checks lifted. */
static void encode_loose(const char *json, dbuf *out)
{
    codec_limits lim = {.max_size = 64u << 20, .max_depth = 1000};
    char err[256];
    out->len = 0;
    cr_assert_eq(codec_value_from_json(json, strlen(json), &lim, out, err, sizeof err), 0, "%s", err);
}

static int raw_put(int fd, const char *coll, size_t coll_len, const dbuf *doc, char *msg, size_t n)
{
    batch_op op = {.kind = BOP_PUT, .coll = coll, .coll_len = coll_len, .doc = doc->data,
                   .doc_len = doc->len};
    return raw_batch_op(fd, &op, msg, n);
}

static void raw_expect(int got, int want, const char *msg, const char *what)
{
    cr_expect_eq(got, want, "%s: %s, expected %s (%s)", what, dotdb_err_name(got),
                 dotdb_err_name(want), msg);
    if (want != 0)
        cr_expect(msg[0] != 0, "%s: an error without a message", what);
}

Test(hostile, documents_past_every_limit_in_raw_frames_are_refused_by_the_coordinator,
     .timeout = 60)
{
    coord c;
    start(&c, LIMITS_CFG);
    bystander b = bystander_start(&c);
    int fd = raw_open(&c, NULL);
    dbuf d;
    dbuf_init(&d);
    char msg[4096];
    int cases = 0;

    /* size: binary documents of exactly 8192 and 8193 bytes */
    size_t pad;
    for (pad = 8000; pad < 8300; pad++) {
        char *s = doc_of_len("s", pad);
        encode_loose(s, &d);
        free(s);
        if (d.len >= 8192)
            break;
    }
    cr_assert_eq(d.len, 8192u, "cannot make a document of 8192 bytes");
    raw_expect(raw_put(fd, "raw", 3, &d, msg, sizeof msg), 0, msg, "8192 bytes");
    char *s = doc_of_len("s", pad + 1);
    encode_loose(s, &d);
    free(s);
    cr_assert_eq(d.len, 8193u);
    raw_expect(raw_put(fd, "raw", 3, &d, msg, sizeof msg), DOTDB_ETOOBIG, msg, "8193 bytes");
    cr_expect(strstr(msg, "limits.max_document_size") != NULL, "%s", msg);
    cases += 2;

    /* depth */
    const int depths[] = {20, 21, 1000};
    for (int i = 0; i < 3; i++) {
        s = doc_of_depth("d", depths[i], i > 0);
        encode_loose(s, &d);
        free(s);
        raw_expect(raw_put(fd, "raw", 3, &d, msg, sizeof msg), depths[i] == 20 ? 0 : DOTDB_ETOODEEP,
                   msg, "depth");
        cases++;
    }

    /* id: 256 bytes inside the document (the encoder refuses to write it,
     * so write {"ie": ...} and rename the key), in the op header, missing,
     * a number, or differing between header and document */
    char id[300], json[400];
    memset(id, 'i', 256);
    id[256] = 0;
    snprintf(json, sizeof json, "{\"ie\":\"%s\"}", id);
    encode_loose(json, &d);
    uint8_t *k = memmem(d.data, d.len, "ie", 2);
    cr_assert_not_null(k);
    k[1] = 'd';
    raw_expect(raw_put(fd, "raw", 3, &d, msg, sizeof msg), DOTDB_EBADID, msg, "id of 256 bytes");
    batch_op del = {.kind = BOP_DELETE, .coll = "raw", .coll_len = 3, .id = id, .id_len = 256};
    raw_expect(raw_batch_op(fd, &del, msg, sizeof msg), DOTDB_EBADID, msg, "delete, id_len 256");
    del.id_len = 0;
    raw_expect(raw_batch_op(fd, &del, msg, sizeof msg), DOTDB_EBADID, msg, "delete, id_len 0");
    encode_loose("{\"a\":1}", &d);
    raw_expect(raw_put(fd, "raw", 3, &d, msg, sizeof msg), DOTDB_EBADID, msg, "no id");
    encode_loose("{\"id\":12}", &d);
    raw_expect(raw_put(fd, "raw", 3, &d, msg, sizeof msg), DOTDB_EBADID, msg, "id a number");
    encode_loose("{\"id\":\"one\"}", &d);
    batch_op put = {.kind = BOP_PUT, .coll = "raw", .coll_len = 3, .id = "two", .id_len = 3,
                    .doc = d.data, .doc_len = d.len};
    raw_expect(raw_batch_op(fd, &put, msg, sizeof msg), DOTDB_EBADID, msg, "header id differs");
    cases += 6;

    /* fields */
    for (int nested = 0; nested < 2; nested++) {
        for (int n = 50; n <= 51; n++) {
            s = doc_of_fields("f", n, nested);
            encode_loose(s, &d);
            free(s);
            raw_expect(raw_put(fd, "raw", 3, &d, msg, sizeof msg), n == 50 ? 0 : DOTDB_ETOOBIG, msg,
                       "fields");
            cases++;
        }
    }

    /* collection names, NUL bytes included, for every kind that names one */
    encode_loose("{\"id\":\"n\"}", &d);
    struct {
        const char *name;
        size_t len;
    } names[] = {{"a/b", 3}, {"..", 2}, {".", 1}, {"a\0b", 3}, {"\0", 1}, {"", 0}, {"a\0", 2},
                 {"../../hostile-escape", 20}, {"/tmp/hostile-escape", 19}, {"x\xff", 2},
                 {NAME64, 64}, {"c1234567890123456789012345678901234567890123456789012345678901234", 65}};
    const uint8_t kinds[] = {BOP_DROP_COLL, BOP_CREATE_COLL, BOP_DELETE, BOP_CHECK, BOP_PUT};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int good = names[i].len == 64;
        for (size_t kk = 0; kk < sizeof kinds; kk++) {
            batch_op op = {.kind = kinds[kk], .coll = names[i].name, .coll_len = names[i].len,
                           .id = "n", .id_len = kinds[kk] == BOP_DELETE || kinds[kk] == BOP_CHECK ? 1 : 0,
                           .doc = kinds[kk] == BOP_PUT ? d.data : NULL,
                           .doc_len = kinds[kk] == BOP_PUT ? d.len : 0};
            int rc = raw_batch_op(fd, &op, msg, sizeof msg);
            if (good)
                cr_expect_neq(rc, DOTDB_EBADNAME, "64-character name, kind %u: %s", kinds[kk], msg);
            else
                raw_expect(rc, DOTDB_EBADNAME, msg, "bad collection name");
            cases++;
        }
        /* STATS and CHECKPOINT name a collection too */
        cr_assert_eq(raw_frame(fd, WIRE_OP_STATS, 1, 0, names[i].name, (uint32_t)names[i].len), 0);
        rframe f;
        cr_assert_eq(raw_recv(fd, &f, 5000), 1);
        if (!good && names[i].len)
            raw_expect(f.h.status, DOTDB_EBADNAME, f.pl, "STATS of a bad name");
        uint8_t ck[4 + 80] = {0};
        memcpy(ck + 4, names[i].name, names[i].len);
        cr_assert_eq(raw_frame(fd, WIRE_OP_CHECKPOINT, 2, 0, ck, 4 + (uint32_t)names[i].len), 0);
        cr_assert_eq(raw_recv(fd, &f, 10000), 1);
        if (!good && names[i].len)
            raw_expect(f.h.status, DOTDB_EINVAL, f.pl, "CHECKPOINT of a bad name");
        cases += 2;
    }

    /* malformed batches */
    const struct {
        const char *bytes;
        uint32_t len;
        const char *what;
    } bad[] = {{"\xff\xff\xff\x7f", 4, "2^31 operations in 4 bytes"},
               {"\1\0\0\0\1\0\3\0", 8, "an operation cut off"},
               {"\1\0\0\0\1\0\3\0\0\0\0\0\0\0\0\0raw", 19, "PUT without a document"},
               {"\1\0\0\0\x63\0\3\0\0\0\0\0\0\0\0\0raw", 19, "unknown kind"},
               {"\1\0\0\0\3\x80\3\0\1\0\0\0\0\0\0\0rawn", 20, "unknown flags"},
               {"\1\0\0\0\3\0\3\0\1\0\0\0\0\0\0\0rawsXYZ", 23, "trailing bytes"},
               {"\1\0\0\0\1\0\3\0\0\0\0\0\xff\xff\xff\xffraw", 19, "document length past the end"},
               {"\0\0\0\0", 4, "no operations"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(raw_frame(fd, WIRE_OP_BATCH, 9, 0, bad[i].bytes, bad[i].len), 0);
        rframe f;
        cr_assert_eq(raw_recv(fd, &f, 5000), 1);
        cr_expect(f.h.status == DOTDB_EPROTO || f.h.status == DOTDB_EINVAL ||
                      f.h.status == DOTDB_ECORRUPT,
                  "%s: %s (%s)", bad[i].what, dotdb_err_name(f.h.status), f.pl);
        cases++;
    }
    cr_expect_eq(raw_ping(fd, 1), 0, "the connection is still usable");
    close(fd);
    dbuf_free(&d);

    /* Nothing of the bad names reached the file system. */
    dotdb *db = h_open(&c);
    char *out = NULL;
    cr_assert_eq(dotdb_checkpoint(db, 0, NULL, &out, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_free(out);
    char path[400];
    snprintf(path, sizeof path, "%s/collections", c.dir);
    DIR *dir = opendir(path);
    cr_assert_not_null(dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        cr_expect(name_is_valid(de->d_name, strlen(de->d_name)), "collections/%s", de->d_name);
        n++;
    }
    closedir(dir);
    cr_expect_geq(n, 2, "raw and the 64-character collection were checkpointed");
    struct stat st;
    cr_expect_neq(stat("/tmp/hostile-escape", &st), 0, "a name escaped the data directory");
    snprintf(path, sizeof path, "%s/hostile-escape", c.dir);
    cr_expect_neq(stat(path, &st), 0, "a name escaped the collections directory");
    cr_log_info("%d limit cases in raw frames", cases);
    dotdb_close(db);
    bystander_stop(&b);
    others_still_work(&c, "limits-raw");
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- a reader slot page full of garbage ---- */

static rdr_page *map_slots(const rframe *f)
{
    void *p = mmap(NULL, RDR_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fds[1], 0);
    cr_assert_neq(p, MAP_FAILED, "the slot page is the client's to write: %s", strerror(errno));
    return p;
}

static void write_versions(dotdb *db, int from, int to)
{
    char big[5000];
    for (int i = from; i <= to; i++) {
        snprintf(big, sizeof big, "{\"id\":\"x\",\"v\":%d,\"pad\":\"%04000d\"}", i, i);
        put_ok(db, "pin", big);
    }
}

/* Poll until retired_bytes is below (is_below) or above limit. */
static double wait_retired(dotdb *db, int is_below, double limit)
{
    uint64_t deadline = h_now_ms() + 5000;
    double r;
    while (((r = stat_num(db, "memory", "retired_bytes")) < limit) != is_below &&
           h_now_ms() < deadline)
        h_sleep_ms(20);
    return r;
}

Test(hostile, reader_slot_garbage_pins_versions_at_worst_until_disconnect, .timeout = 60)
{
    coord c;
    start(&c, NULL);
    bystander b = bystander_start(&c);
    dotdb *db = h_open(&c);
    write_versions(db, 0, 0);
    rframe f;
    int fd = raw_open(&c, &f);
    rdr_page *pg = map_slots(&f);

    /* The page cannot be resized: a shrunk page would fault in the
     * coordinator's next scan of it. */
    cr_expect_neq(ftruncate(f.fds[1], 0), 0, "the slot page must not shrink");
    cr_expect_neq(ftruncate(f.fds[1], 1 << 20), 0, "nor grow");
    cr_expect_neq(fcntl(f.fds[1], F_ADD_SEALS, F_SEAL_WRITE), 0, "nor take new seals");

    /* Random garbage over the whole page, again and again, while writes
     * go on and stats reads the page. */
    for (int round = 0; round < 20; round++) {
        uint8_t *bytes = (uint8_t *)pg;
        for (size_t i = 0; i < RDR_PAGE_SIZE; i++)
            bytes[i] = (uint8_t)rnd();
        write_versions(db, round * 10 + 1, round * 10 + 10);
        cJSON_Delete(stats(db));
    }
    /* The worst it can do: pin everything since LSN 1. */
    for (uint32_t i = 0; i < RDR_SLOTS; i++) {
        atomic_store(&pg->slots[i].begin_seq, rnd());
        atomic_store(&pg->slots[i].snapshot_lsn, 1);
    }
    write_versions(db, 1000, 1200);
    double pinned = wait_retired(db, 0, 190 * 4000.0);
    cr_expect_gt(pinned, 190 * 4000.0, "garbage LSN 1 in the slots pins versions (%.0f)", pinned);
    cr_expect(coord_alive(&c));
    others_still_work(&c, "slot-garbage");

    /* ... until that client disconnects. */
    munmap(pg, RDR_PAGE_SIZE);
    raw_close_fds(&f);
    close(fd);
    double retired = wait_retired(db, 1, 64 * 1024.0);
    cr_expect_lt(retired, 64 * 1024.0, "disconnecting releases what the garbage pinned (%.0f)",
                 retired);
    bystander_stop(&b);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(hostile, reader_slot_garbage_cannot_dodge_max_snapshot_age, .timeout = 60)
{
    coord c;
    start(&c, "\"memory\": {\"max_snapshot_age_ms\": 300}");
    dotdb *db = h_open(&c);
    write_versions(db, 0, 0);
    rframe f;
    int fd = raw_open(&c, &f);
    rdr_page *pg = map_slots(&f);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    /* sequence numbers of 0, 2^64 - 1, an hour's worth of ns ahead and
     * an honest one: the coordinator times them all itself */
    const uint64_t starts[] = {0, UINT64_MAX, now + 3600ull * 1000000000ull, 1};
    for (uint32_t i = 0; i < 4; i++) {
        atomic_store(&pg->slots[i].begin_seq, starts[i]);
        atomic_store(&pg->slots[i].snapshot_lsn, 1 + i);
    }
    write_versions(db, 1, 200);
    double retired = wait_retired(db, 1, 64 * 1024.0);
    cr_expect_lt(retired, 64 * 1024.0, "the garbage snapshots were ousted (%.0f bytes pinned)",
                 retired);
    cr_expect_geq(stat_num(db, "coordinator", "snapshots_ousted"), 4);
    /* Clearing the ousted mark in its own page does not bring them back. */
    for (uint32_t i = 0; i < 4; i++)
        atomic_store(&pg->slots[i].ousted_lsn, 0);
    write_versions(db, 201, 400);
    retired = wait_retired(db, 1, 64 * 1024.0);
    cr_expect_lt(retired, 64 * 1024.0, "un-ousting by hand pins nothing (%.0f)", retired);
    munmap(pg, RDR_PAGE_SIZE);
    raw_close_fds(&f);
    close(fd);
    others_still_work(&c, "slot-age");
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}
