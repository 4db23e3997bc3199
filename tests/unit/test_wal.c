/*
 * test_wal.c - unit tests of coordinator/wal.c: the byte format, replay in
 * order across segments, torn tails cut at every byte, corruption before
 * the end of the log, LSN and segment-number gaps, torn segment creation,
 * appending after replay, and a full disk (RLIMIT_FSIZE) undone by
 * truncation.
 *
 * Every test works in its own mkdtemp directory: Criterion runs tests in
 * parallel processes.  Payloads are a function of the LSN so that the
 * replay callback can check every byte it is given.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "dotdb.h"
#include "wal.h"

#define MAX_RECS 4096

static char g_root[64];  /* the mkdtemp directory */
static char g_dir[128];  /* the WAL directory inside it (created by wal_open) */

static void setup(void)
{
    snprintf(g_root, sizeof g_root, "/tmp/dotdb-wal-XXXXXX");
    cr_assert_not_null(mkdtemp(g_root));
    snprintf(g_dir, sizeof g_dir, "%s/wal", g_root);
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (g_root[0] != '\0' && system(cmd) != 0)
        cr_log_warn("could not remove %s", g_root);
}

TestSuite(wal, .init = setup, .fini = teardown);

/* ---- records whose content follows from their LSN ---------------------- */

static size_t payload_of(uint64_t lsn, uint8_t *buf)
{
    size_t len = (size_t)((lsn * 37) % 200);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(lsn * 131 + i * 7);
    return len;
}

static uint32_t type_of(uint64_t lsn)
{
    return (uint32_t)(1 + lsn % 3);
}

struct seen {
    size_t n;
    uint64_t lsn[MAX_RECS];
    int bad;
    uint64_t stop_at; /* return 42 at this LSN; 0: never */
};

static int collect(void *ctx, uint64_t lsn, uint32_t type, const uint8_t *payload, size_t len)
{
    struct seen *s = ctx;
    uint8_t want[256];
    size_t want_len = payload_of(lsn, want);
    if (type != type_of(lsn) || len != want_len || memcmp(payload, want, len) != 0)
        s->bad++;
    if (s->n < MAX_RECS)
        s->lsn[s->n++] = lsn;
    return lsn == s->stop_at ? 42 : 0;
}

static void append_range(wal *w, uint64_t from, uint64_t to)
{
    uint8_t p[256];
    for (uint64_t lsn = from; lsn <= to; lsn++) {
        size_t len = payload_of(lsn, p);
        cr_assert_eq(wal_append(w, lsn, type_of(lsn), p, len), DOTDB_OK, "append %llu",
                     (unsigned long long)lsn);
    }
}

/* Append, write and sync records from..to, in one write call. */
static void log_range(wal *w, uint64_t from, uint64_t to)
{
    char err[512];
    append_range(w, from, to);
    cr_assert_eq(wal_write(w, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_eq(wal_sync(w, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_eq(wal_unsynced_bytes(w), 0);
}

/* Open and replay; the replay must succeed. */
static wal *open_replay(uint64_t seg_size, uint64_t after, wal_replay_info *info,
                        struct seen *s)
{
    wal *w = NULL;
    char err[512];
    cr_assert_eq(wal_open(g_dir, seg_size, &w, err, sizeof err), DOTDB_OK, "%s", err);
    int rc = wal_replay(w, after, collect, s, info, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "replay: %d %s", rc, err);
    return w;
}

/* Open and replay, expecting failure code `want`; returns the message. */
static void replay_fails(uint64_t seg_size, int want, char *err, size_t errlen)
{
    wal *w = NULL;
    wal_replay_info info;
    struct seen s = {0};
    cr_assert_eq(wal_open(g_dir, seg_size, &w, err, errlen), DOTDB_OK, "%s", err);
    int rc = wal_replay(w, 0, collect, &s, &info, err, errlen);
    cr_assert_eq(rc, want, "replay gave %d (%s), want %d", rc, err, want);
    cr_assert_eq(info.records, 0, "info not cleared on failure");
    wal_close(w);
}

static void assert_lsns(const struct seen *s, uint64_t from, uint64_t to)
{
    cr_assert_eq(s->bad, 0, "payload mismatch");
    cr_assert_eq(s->n, to - from + 1, "saw %zu records, want %llu", s->n,
                 (unsigned long long)(to - from + 1));
    for (size_t i = 0; i < s->n; i++)
        cr_assert_eq(s->lsn[i], from + i);
}

/* ---- files --------------------------------------------------------------- */

static void seg_path(uint64_t segno, char *buf, size_t len)
{
    snprintf(buf, len, "%s/wal_%06llu.log", g_dir, (unsigned long long)segno);
}

static long file_size(uint64_t segno)
{
    char p[256];
    struct stat st;
    seg_path(segno, p, sizeof p);
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static uint8_t *read_seg(uint64_t segno, size_t *len)
{
    char p[256];
    seg_path(segno, p, sizeof p);
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "%s", p);
    uint8_t *buf = malloc(1 << 20);
    cr_assert_not_null(buf);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void write_seg(uint64_t segno, const uint8_t *data, size_t len)
{
    char p[256];
    seg_path(segno, p, sizeof p);
    /* crafted logs are written before any wal_open created the directory */
    cr_assert(mkdir(g_dir, 0700) == 0 || errno == EEXIST);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0, "%s", p);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    cr_assert_eq(close(fd), 0);
}

static void flip_byte(uint64_t segno, size_t off)
{
    size_t len;
    uint8_t *buf = read_seg(segno, &len);
    cr_assert_lt(off, len);
    buf[off] ^= 0x5a;
    write_seg(segno, buf, len);
    free(buf);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A segment header as the specification in wal.h has it. */
static void build_header(uint8_t *h, uint64_t segno, uint32_t version)
{
    memcpy(h, "DOTDBWAL", 8);
    put_le(h + 8, version, 4);
    put_le(h + 12, 0, 4);
    put_le(h + 16, segno, 8);
    put_le(h + 24, XXH64(h, 24, 0), 8);
}

/* A record as the specification has it; returns its size. */
static size_t build_record(uint8_t *out, uint64_t lsn)
{
    uint8_t p[256];
    size_t len = payload_of(lsn, p), body = 16 + ((len + 7) & ~(size_t)7);
    memset(out, 0, body + 8);
    put_le(out, len, 4);
    put_le(out + 4, type_of(lsn), 4);
    put_le(out + 8, lsn, 8);
    memcpy(out + 16, p, len);
    put_le(out + body, XXH64(out, body, 0), 8);
    return body + 8;
}

/* Write segment segno holding the records with the given LSNs. */
static void craft_segment(uint64_t segno, const uint64_t *lsns, size_t n)
{
    uint8_t buf[8192];
    size_t len = 32;
    build_header(buf, segno, 1);
    for (size_t i = 0; i < n; i++)
        len += build_record(buf + len, lsns[i]);
    write_seg(segno, buf, len);
}

static size_t rec_size_of(uint64_t lsn)
{
    uint8_t p[256];
    return 24 + ((payload_of(lsn, p) + 7) & ~(size_t)7);
}

/* Snapshot of every segment 1..n, to prove a failed replay touched nothing. */
struct snapshot {
    size_t n;
    uint8_t *data[64];
    size_t len[64];
};

static void snap_take(struct snapshot *s, size_t n)
{
    s->n = n;
    for (size_t i = 0; i < n; i++)
        s->data[i] = read_seg(i + 1, &s->len[i]);
}

static void snap_same(struct snapshot *s)
{
    for (size_t i = 0; i < s->n; i++) {
        size_t len;
        uint8_t *now = read_seg(i + 1, &len);
        cr_assert_eq(len, s->len[i], "segment %zu changed size", i + 1);
        cr_assert(memcmp(now, s->data[i], len) == 0, "segment %zu changed", i + 1);
        free(now);
        free(s->data[i]);
    }
}

/* ---- tests ------------------------------------------------------------------ */

Test(wal, open_creates_private_directory_and_first_segment)
{
    wal_replay_info info;
    struct seen s = {0};
    struct stat st;
    wal *w = open_replay(1 << 20, 0, &info, &s);
    cr_assert_eq(stat(g_dir, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0700);
    char p[256];
    seg_path(1, p, sizeof p);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_size, 32);
    cr_assert_eq(info.records, 0);
    cr_assert_eq(info.first_lsn, 0);
    cr_assert_eq(info.last_lsn, 0);
    cr_assert_str_eq(info.warning, "");
    cr_assert_eq(wal_current_segno(w), 1);
    cr_assert_eq(wal_total_bytes(w), 32);
    cr_assert_eq(wal_last_lsn(w), 0);
    wal_close(w);
}

Test(wal, open_reports_unusable_paths)
{
    wal *w = (wal *)1;
    char err[512], bad[256];
    snprintf(bad, sizeof bad, "%s/missing/wal", g_root);
    cr_assert_eq(wal_open(bad, 1 << 20, &w, err, sizeof err), DOTDB_EOS);
    cr_assert_null(w);
    cr_assert(strstr(err, bad) != NULL, "%s", err);
    snprintf(bad, sizeof bad, "%s/file", g_root);
    FILE *f = fopen(bad, "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_assert_eq(wal_open(bad, 1 << 20, &w, err, sizeof err), DOTDB_EOS);
    cr_assert(strstr(err, bad) != NULL, "%s", err);
    cr_assert_eq(wal_open(g_dir, 8, &w, err, sizeof err), DOTDB_EINVAL);
    wal_close(NULL);
}

Test(wal, file_format_matches_the_specification)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[256];
    wal *w = open_replay(1 << 20, 0, &info, &s);
    cr_assert_eq(wal_append(w, 1, WAL_REC_BATCH, "abc", 3), DOTDB_OK);
    cr_assert_eq(wal_write(w, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_eq(wal_unsynced_bytes(w), 32);
    cr_assert_eq(wal_sync(w, err, sizeof err), DOTDB_OK, "%s", err);
    wal_close(w);

    size_t len;
    uint8_t *b = read_seg(1, &len);
    uint8_t want[64];
    build_header(want, 1, 1);
    memset(want + 32, 0, 32);
    put_le(want + 32, 3, 4);
    put_le(want + 36, WAL_REC_BATCH, 4);
    put_le(want + 40, 1, 8);
    memcpy(want + 48, "abc", 3);
    put_le(want + 56, XXH64(want + 32, 24, 0), 8);
    cr_assert_eq(len, 64);
    cr_assert(memcmp(b, want, 64) == 0, "bytes differ from the specification");
    free(b);
}

Test(wal, replay_returns_records_in_order)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[256];
    wal *w = open_replay(64 << 20, 0, &info, &s);
    for (uint64_t lsn = 1; lsn <= 300; lsn += 17) {
        uint64_t to = lsn + 16 > 300 ? 300 : lsn + 16;
        append_range(w, lsn, to);
        cr_assert_eq(wal_write(w, err, sizeof err), DOTDB_OK, "%s", err);
        cr_assert_gt(wal_unsynced_bytes(w), 0);
    }
    cr_assert_eq(wal_write(w, err, sizeof err), DOTDB_OK); /* nothing buffered */
    cr_assert_eq(wal_sync(w, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_eq(wal_unsynced_bytes(w), 0);
    cr_assert_eq(wal_last_lsn(w), 300);
    uint64_t total = wal_total_bytes(w);
    cr_assert_eq(total, (uint64_t)file_size(1));
    wal_close(w);

    w = open_replay(64 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 300);
    cr_assert_eq(info.records, 300);
    cr_assert_eq(info.first_lsn, 1);
    cr_assert_eq(info.last_lsn, 300);
    cr_assert_eq(info.truncated_bytes, 0);
    cr_assert_str_eq(info.warning, "");
    cr_assert_eq(wal_total_bytes(w), total);
    cr_assert_eq(wal_last_lsn(w), 300);
    wal_close(w);
}

Test(wal, replay_skips_records_up_to_after_lsn)
{
    wal_replay_info info;
    struct seen s = {0};
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 50);
    wal_close(w);
    w = open_replay(1 << 20, 20, &info, &s);
    assert_lsns(&s, 21, 50);
    cr_assert_eq(info.records, 50);
    cr_assert_eq(info.first_lsn, 1);
    cr_assert_eq(wal_last_lsn(w), 50);
    wal_close(w);
}

Test(wal, callback_failure_stops_replay)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[256];
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 10);
    wal_close(w);
    cr_assert_eq(wal_open(g_dir, 1 << 20, &w, err, sizeof err), DOTDB_OK);
    s.stop_at = 4;
    cr_assert_eq(wal_replay(w, 0, collect, &s, &info, err, sizeof err), 42);
    cr_assert_eq(s.n, 4);
    wal_close(w);
    cr_assert_eq(file_size(1) > 32, 1);
}

Test(wal, rotation_creates_segments_and_replay_crosses_them)
{
    wal_replay_info info;
    struct seen s = {0};
    wal *w = open_replay(1024, 0, &info, &s);
    log_range(w, 1, 5);
    log_range(w, 6, 120); /* one write spanning many segments */
    for (uint64_t lsn = 121; lsn <= 201; lsn += 3)
        log_range(w, lsn, lsn + 2); /* up to 201 */
    uint64_t last_seg = wal_current_segno(w);
    cr_assert_gt(last_seg, 5);
    uint64_t sum = 0;
    for (uint64_t seg = 1; seg <= last_seg; seg++) {
        long sz = file_size(seg);
        cr_assert_gt(sz, 32, "segment %llu has no record", (unsigned long long)seg);
        cr_assert_leq(sz, 1024, "segment %llu is over segment_size", (unsigned long long)seg);
        sum += (uint64_t)sz;
    }
    cr_assert_eq(file_size(last_seg + 1), -1);
    cr_assert_eq(wal_total_bytes(w), sum);
    wal_close(w);

    w = open_replay(1024, 0, &info, &s);
    assert_lsns(&s, 1, 201);
    cr_assert_eq(wal_current_segno(w), last_seg);
    cr_assert_eq(wal_total_bytes(w), sum);
    cr_assert_str_eq(info.warning, "");
    wal_close(w);
}

Test(wal, oversized_record_takes_a_segment_alone)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[256];
    static uint8_t big[3000];
    wal *w = open_replay(256, 0, &info, &s);
    cr_assert_eq(wal_append(w, 1, 1, "a", 1), DOTDB_OK);
    cr_assert_eq(wal_append(w, 2, 1, big, sizeof big), DOTDB_OK);
    cr_assert_eq(wal_append(w, 3, 1, "b", 1), DOTDB_OK);
    cr_assert_eq(wal_write(w, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_eq(wal_current_segno(w), 3);
    cr_assert_eq(file_size(1), 32 + 32);
    cr_assert_eq(file_size(2), 32 + 16 + 3000 + 8);
    cr_assert_eq(file_size(3), 32 + 32);
    wal_close(w);
}

Test(wal, append_rejects_oversized_payloads)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[256];
    wal *w = open_replay(1 << 20, 0, &info, &s);
    cr_assert_eq(wal_append(w, 1, 1, "x", (size_t)WAL_MAX_PAYLOAD + 1), DOTDB_ETOOBIG);
    cr_assert_eq(wal_last_lsn(w), 0);
    cr_assert_eq(wal_write(w, err, sizeof err), DOTDB_OK);
    cr_assert_eq(wal_sync(w, err, sizeof err), DOTDB_OK);
    cr_assert_eq(file_size(1), 32);
    wal_close(w);
}

Test(wal, torn_tail_is_truncated_at_every_offset)
{
    wal_replay_info info;
    struct seen s = {0};
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 2);
    long good = file_size(1);
    log_range(w, 3, 3);
    wal_close(w);
    size_t full;
    uint8_t *bytes = read_seg(1, &full);
    cr_assert_eq(full, (size_t)good + rec_size_of(3));

    for (size_t cut = (size_t)good + 1; cut < full; cut++) {
        write_seg(1, bytes, cut);
        memset(&s, 0, sizeof s);
        w = open_replay(1 << 20, 0, &info, &s);
        assert_lsns(&s, 1, 2);
        cr_assert_eq(info.truncated_bytes, cut - (size_t)good, "cut at %zu", cut);
        char want[64];
        snprintf(want, sizeof want, "at offset %ld", good);
        cr_assert(strstr(info.warning, "wal_000001.log") != NULL, "%s", info.warning);
        cr_assert(strstr(info.warning, want) != NULL, "%s", info.warning);
        cr_assert_eq(file_size(1), good);
        cr_assert_eq(wal_last_lsn(w), 2);
        cr_assert_eq(wal_total_bytes(w), (uint64_t)good);
        wal_close(w);

        memset(&s, 0, sizeof s);
        w = open_replay(1 << 20, 0, &info, &s);
        assert_lsns(&s, 1, 2);
        cr_assert_eq(info.truncated_bytes, 0);
        cr_assert_str_eq(info.warning, "");
        wal_close(w);
    }
    free(bytes);
}

Test(wal, flipped_byte_in_last_record_stops_replay_there)
{
    wal_replay_info info;
    struct seen s = {0};
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 4);
    long good = file_size(1);
    log_range(w, 5, 5);
    wal_close(w);
    size_t full;
    uint8_t *bytes = read_seg(1, &full);

    /* every byte of the last record: header, payload, padding, checksum */
    for (size_t off = (size_t)good; off < full; off++) {
        write_seg(1, bytes, full);
        flip_byte(1, off);
        memset(&s, 0, sizeof s);
        w = open_replay(1 << 20, 0, &info, &s);
        assert_lsns(&s, 1, 4);
        cr_assert_eq(info.truncated_bytes, full - (size_t)good, "flip at %zu", off);
        cr_assert_eq(file_size(1), good);
        wal_close(w);
    }
    free(bytes);
}

/* Zeros after the last record are the space a writer reserved ahead of
 * itself (wal_set_preallocate): the normal end of the last segment, kept,
 * with no warning, and the next records go right after the last one. */
Test(wal, zero_filled_tail_is_the_normal_end_of_the_last_segment)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[512];
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 3);
    long good = file_size(1);
    wal_close(w);
    size_t len;
    uint8_t *b = read_seg(1, &len);
    b = realloc(b, len + 4096);
    memset(b + len, 0, 4096);
    write_seg(1, b, len + 4096);
    w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 3);
    cr_assert_eq(info.truncated_bytes, 0);
    cr_assert_str_empty(info.warning);
    cr_assert_eq(file_size(1), good + 4096, "the reserved space is kept");
    cr_assert_eq(wal_current_bytes(w), (uint64_t)good);
    log_range(w, 4, 6);
    cr_assert_eq(file_size(1), good + 4096, "records overwrite the zeros");
    wal_close(w);
    /* and a check of the live log reports nothing */
    cr_assert_eq(wal_check(g_dir, 0, &info, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_str_empty(info.warning);
    cr_assert_eq(info.last_lsn, 6);
    memset(&s, 0, sizeof s);
    w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 6);
    cr_assert_str_empty(info.warning);
    wal_close(w);
    free(b);
}

/* A record torn inside the reserved space (part of it written, zeros
 * after) is a torn tail like any other: cut, with a warning. */
Test(wal, torn_record_in_reserved_space_is_cut)
{
    wal_replay_info info;
    struct seen s = {0};
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 4);
    long good3 = 32;
    for (uint64_t l = 1; l <= 3; l++)
        good3 += (long)rec_size_of(l);
    wal_close(w);
    size_t len;
    uint8_t *b = read_seg(1, &len);
    b = realloc(b, len + 8192);
    memset(b + len, 0, 8192);
    memset(b + good3 + 20, 0, len - (size_t)good3 - 20); /* record 4 lost after 20 bytes */
    write_seg(1, b, len + 8192);
    w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 3);
    char want[64];
    snprintf(want, sizeof want, "offset %ld", good3);
    cr_assert(strstr(info.warning, want) != NULL, "%s", info.warning);
    cr_assert_eq(file_size(1), good3);
    wal_close(w);
    free(b);
}

/* Only the last segment may end in zeros: a sealed one was trimmed to its
 * records before its final fdatasync, so zeros there mean lost records. */
Test(wal, zero_tail_in_a_sealed_segment_is_corrupt)
{
    static const uint64_t a[] = {1, 2}, b2[] = {3};
    char err[512];
    craft_segment(1, a, 2);
    craft_segment(2, b2, 1);
    size_t len;
    uint8_t *b = read_seg(1, &len);
    b = realloc(b, len + 64);
    memset(b + len, 0, 64);
    write_seg(1, b, len + 64);
    free(b);
    replay_fails(1 << 20, DOTDB_ECORRUPT, err, sizeof err);
    cr_assert(strstr(err, "wal_000001.log") != NULL, "%s", err);
    char want[64];
    snprintf(want, sizeof want, "offset %zu", len);
    cr_assert(strstr(err, want) != NULL, "%s", err);
}

/* With preallocation the current segment is reserved ahead in steps, never
 * past segment_size; a sealed segment is trimmed to its records; the byte
 * counts never include the zeros; a restart finds every record. */
Test(wal, preallocation_reserves_ahead_and_trims_sealed_segments)
{
    wal *w = NULL;
    wal_replay_info info;
    struct seen s = {0};
    char err[512];
    const uint64_t seg = 64 << 10, step = 16 << 10;
    cr_assert_eq(wal_open(g_dir, seg, &w, err, sizeof err), DOTDB_OK, "%s", err);
    wal_set_preallocate(w, step, false);
    cr_assert_eq(wal_replay(w, 0, collect, &s, &info, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_eq(file_size(1), (long)(32 + 1 + step), "a new segment is reserved at once");
    uint64_t lsn = 1;
    while (wal_current_segno(w) == 1) {
        log_range(w, lsn, lsn + 9);
        lsn += 10;
        if (wal_current_segno(w) == 1) {
            long fs = file_size(1);
            cr_assert_geq(fs, (long)wal_current_bytes(w));
            cr_assert_leq(fs, (long)seg, "never reserved past segment_size");
        }
    }
    cr_assert_eq(wal_current_segno(w), 2);
    /* segment 1 sealed: exactly its records */
    size_t len;
    uint8_t *b = read_seg(1, &len);
    free(b);
    cr_assert_eq(file_size(1), (long)len);
    cr_assert_eq(wal_total_bytes(w), (uint64_t)file_size(1) + wal_current_bytes(w));
    cr_assert_gt(file_size(2), (long)wal_current_bytes(w), "the new segment has zeros ahead");
    uint64_t last = lsn - 1;
    wal_close(w);
    memset(&s, 0, sizeof s);
    w = open_replay(seg, 0, &info, &s);
    assert_lsns(&s, 1, last);
    cr_assert_str_empty(info.warning);
    cr_assert_eq(wal_check(g_dir, 0, &info, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_str_empty(info.warning);
    wal_close(w);
}

/* Does an extent of segment segno within [from, to) say it is only
 * reserved (FIEMAP_EXTENT_UNWRITTEN)?  1 yes, 0 no, -1 when the file
 * system cannot tell. */
static int has_unwritten(uint64_t segno, uint64_t from, uint64_t to)
{
    char p[256];
    seg_path(segno, p, sizeof p);
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return -1;
    enum { N = 64 };
    struct fiemap *fm = calloc(1, sizeof *fm + N * sizeof(struct fiemap_extent));
    cr_assert_not_null(fm);
    fm->fm_start = from;
    fm->fm_length = to - from;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = N;
    int r = ioctl(fd, FS_IOC_FIEMAP, fm) != 0 ? -1 : 0;
    for (unsigned i = 0; r == 0 && i < fm->fm_mapped_extents; i++)
        if (fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN)
            r = 1;
    free(fm);
    close(fd);
    return r;
}

/* With write_zeros the space ahead of the records is written, not only
 * reserved (where the file system can tell), and holds zeros; sealed
 * segments are trimmed as without it; a restart finds every record and
 * says nothing. */
Test(wal, written_zeros_ahead_of_the_records)
{
    wal *w = NULL;
    wal_replay_info info;
    struct seen s = {0};
    char err[512];
    const uint64_t seg = 256 << 10, step = 64 << 10;
    cr_assert_eq(wal_open(g_dir, seg, &w, err, sizeof err), DOTDB_OK, "%s", err);
    wal_set_preallocate(w, step, true);
    cr_assert_eq(wal_replay(w, 0, collect, &s, &info, err, sizeof err), DOTDB_OK, "%s", err);
    log_range(w, 1, 20);
    uint64_t used = wal_current_bytes(w);
    long fs = file_size(1);
    cr_assert_geq(fs, (long)(used + step / 2), "zeros were written ahead: %ld", fs);
    cr_assert_leq(fs, (long)seg);
    size_t len;
    uint8_t *b = read_seg(1, &len);
    cr_assert_eq(len, (size_t)fs);
    for (size_t i = used; i < len; i++)
        cr_assert_eq(b[i], 0, "byte %zu after the records is not zero", i);
    free(b);
    uint64_t page_after = (used + 4095) / 4096 * 4096, page_end = (uint64_t)fs / 4096 * 4096;
    int u = has_unwritten(1, page_after, page_end);
    cr_assert(u != 1, "the zeros ahead are only reserved, not written");
    uint64_t lsn = 21;
    while (wal_current_segno(w) == 1) {
        log_range(w, lsn, lsn + 9);
        lsn += 10;
    }
    b = read_seg(1, &len);
    free(b);
    cr_assert_eq(file_size(1), (long)len, "the sealed segment is trimmed to its records");
    cr_assert_gt(file_size(2), (long)wal_current_bytes(w), "the new segment has zeros ahead");
    uint64_t last = lsn - 1;
    wal_close(w);
    memset(&s, 0, sizeof s);
    w = open_replay(seg, 0, &info, &s);
    assert_lsns(&s, 1, last);
    cr_assert_str_empty(info.warning);
    cr_assert_eq(wal_check(g_dir, 0, &info, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_str_empty(info.warning);
    wal_close(w);
}

Test(wal, bad_record_in_earlier_segment_is_corrupt)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[512], want[64];
    wal *w = open_replay(1024, 0, &info, &s);
    log_range(w, 1, 60);
    uint64_t nseg = wal_current_segno(w);
    cr_assert_geq(nseg, 3);
    wal_close(w);

    /* the second record of segment 2, a payload byte */
    size_t len;
    uint8_t *b = read_seg(2, &len);
    size_t first = 24 + ((b[32] | (size_t)b[33] << 8) + 7) / 8 * 8;
    size_t second = 32 + first;
    free(b);
    flip_byte(2, second + 20);
    struct snapshot snap;
    snap_take(&snap, nseg);
    replay_fails(1024, DOTDB_ECORRUPT, err, sizeof err);
    cr_assert(strstr(err, "wal_000002.log") != NULL, "%s", err);
    snprintf(want, sizeof want, "offset %zu", second);
    cr_assert(strstr(err, want) != NULL, "%s", err);
    snap_same(&snap);
}

Test(wal, torn_record_in_earlier_segment_is_corrupt)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[512];
    wal *w = open_replay(1024, 0, &info, &s);
    log_range(w, 1, 40);
    uint64_t nseg = wal_current_segno(w);
    wal_close(w);
    size_t len;
    uint8_t *b = read_seg(1, &len);
    write_seg(1, b, len - 5);
    free(b);
    struct snapshot snap;
    snap_take(&snap, nseg);
    replay_fails(1024, DOTDB_ECORRUPT, err, sizeof err);
    cr_assert(strstr(err, "wal_000001.log") != NULL, "%s", err);
    snap_same(&snap);
}

Test(wal, bad_header_in_earlier_segment_is_corrupt)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[512];
    wal *w = open_replay(1024, 0, &info, &s);
    log_range(w, 1, 40);
    uint64_t nseg = wal_current_segno(w);
    wal_close(w);
    flip_byte(2, 3);
    struct snapshot snap;
    snap_take(&snap, nseg);
    replay_fails(1024, DOTDB_ECORRUPT, err, sizeof err);
    cr_assert(strstr(err, "wal_000002.log") != NULL, "%s", err);
    cr_assert(strstr(err, "offset 0") != NULL, "%s", err);
    snap_same(&snap);

    /* a damaged header on a last segment that holds records is not a torn
     * creation: its records may be acknowledged, so it is kept */
    flip_byte(2, 3);
    flip_byte(nseg, 3);
    snap_take(&snap, nseg);
    replay_fails(1024, DOTDB_ECORRUPT, err, sizeof err);
    snap_same(&snap);
}

Test(wal, segment_number_gap_is_corrupt)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[512], p[256];
    wal *w = open_replay(1024, 0, &info, &s);
    log_range(w, 1, 40);
    uint64_t nseg = wal_current_segno(w);
    cr_assert_geq(nseg, 3);
    wal_close(w);
    seg_path(2, p, sizeof p);
    cr_assert_eq(unlink(p), 0);
    replay_fails(1024, DOTDB_ECORRUPT, err, sizeof err);
    cr_assert(strstr(err, "wal_000001.log") != NULL && strstr(err, "wal_000003.log") != NULL,
              "%s", err);
    cr_assert_eq(file_size(1) > 32, 1);
    cr_assert_eq(file_size(3) > 32, 1);
}

Test(wal, wrong_segment_number_or_version_is_refused)
{
    char err[512];
    uint8_t h[32];
    uint64_t one = 1;
    craft_segment(1, &one, 1);
    build_header(h, 7, 1); /* segment 2 claims to be segment 7 */
    write_seg(2, h, 32);
    replay_fails(1 << 20, DOTDB_ECORRUPT, err, sizeof err);
    cr_assert(strstr(err, "wal_000002.log") != NULL, "%s", err);
    cr_assert_eq(file_size(2), 32);
    build_header(h, 2, 2); /* a future format version */
    write_seg(2, h, 32);
    replay_fails(1 << 20, DOTDB_EVERSION, err, sizeof err);
    cr_assert_eq(file_size(2), 32);
}

Test(wal, lsn_gap_in_last_segment_is_cut)
{
    static const uint64_t lsns[] = {1, 2, 4};
    wal_replay_info info;
    struct seen s = {0};
    craft_segment(1, lsns, 3);
    long full = file_size(1);
    wal *w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 2);
    cr_assert_eq(info.truncated_bytes, rec_size_of(4));
    cr_assert(strstr(info.warning, "LSN 4 does not follow 2") != NULL, "%s", info.warning);
    cr_assert_eq(file_size(1), full - (long)rec_size_of(4));
    cr_assert_eq(wal_last_lsn(w), 2);
    wal_close(w);
}

/* Found by fuzz_wal: a record at LSN 2^64 - 1 was replayed, the next
 * append wrapped around to LSN 0, and the start after that cut the
 * acknowledged record as a torn tail. */
Test(wal, lsn_past_the_maximum_is_cut_and_never_appended)
{
    static const uint64_t lsns[] = {1, 2, UINT64_MAX};
    wal_replay_info info;
    struct seen s = {0}, s2 = {0};
    craft_segment(1, lsns, 3);
    wal *w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 2);
    cr_assert_eq(info.truncated_bytes, rec_size_of(UINT64_MAX));
    cr_assert(strstr(info.warning, "does not follow 2") != NULL, "%s", info.warning);
    cr_assert_eq(wal_last_lsn(w), 2);
    wal_close(w);
    /* A log or checkpoint at the top LSN takes no further record. */
    w = open_replay(1 << 20, WAL_LSN_MAX, &info, &s2);
    cr_assert_eq(wal_last_lsn(w), WAL_LSN_MAX);
    cr_assert_eq(wal_append(w, WAL_LSN_MAX + 1, 1, "x", 1), DOTDB_EINVAL);
    wal_close(w);
}

Test(wal, repeated_last_lsn_is_cut)
{
    static const uint64_t lsns[] = {5, 6, 7, 7};
    wal_replay_info info;
    struct seen s = {0};
    craft_segment(1, lsns, 4);
    wal *w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 5, 7);
    cr_assert_eq(info.first_lsn, 5);
    cr_assert_eq(info.truncated_bytes, rec_size_of(7));
    wal_close(w);
}

Test(wal, repeated_lsn_followed_by_good_records_is_corrupt)
{
    static const uint64_t lsns[] = {5, 6, 6, 7};
    char err[512];
    craft_segment(1, lsns, 4);
    replay_fails(1 << 20, DOTDB_ECORRUPT, err, sizeof err);
    char want[64];
    snprintf(want, sizeof want, "offset %zu", 32 + rec_size_of(5) + rec_size_of(6));
    cr_assert(strstr(err, want) != NULL, "%s", err);
}

/*
 * The tail sweep: for every byte offset of the last three records, each of
 * truncate there, zero-fill from there, garbage from there, one flipped bit
 * there, and (per record) a duplicate of the record right after it.  A
 * damaged tail - nothing good after the damage - is cut with a warning
 * naming the offset; damage with good records behind it stops replay with
 * DOTDB_ECORRUPT naming the offset, and leaves the file as it was.
 */
enum damage { D_TRUNCATE, D_ZERO, D_GARBAGE, D_FLIP, D_KINDS };

static void sweep_case(const uint8_t *bytes, size_t full, const size_t *rec_off, int nrec,
                       int kind, size_t off, unsigned *seed, int *cut_cases, int *corrupt_cases)
{
    uint8_t *b = malloc(full);
    cr_assert_not_null(b);
    memcpy(b, bytes, full);
    size_t len = full;
    switch (kind) {
    case D_TRUNCATE: len = off; break;
    case D_ZERO: memset(b + off, 0, full - off); break;
    case D_GARBAGE:
        for (size_t i = off; i < full; i++)
            b[i] = (uint8_t)(rand_r(seed) >> 7);
        break;
    default: b[off] ^= (uint8_t)(1u << (rand_r(seed) % 8)); break;
    }
    write_seg(1, b, len);
    /* the record the damage starts in */
    int hit = nrec - 1;
    while (hit > 0 && rec_off[hit] > off)
        hit--;
    /* only a flipped bit leaves the records after it intact */
    int good_after = kind == D_FLIP && hit < nrec - 1;
    /* zeros from a record's start on: reserved space, kept as it is */
    int zero_end = kind == D_ZERO && off == rec_off[hit];
    wal *w = NULL;
    wal_replay_info info;
    struct seen s = {0};
    char err[512], want[64];
    cr_assert_eq(wal_open(g_dir, 1 << 20, &w, err, sizeof err), DOTDB_OK, "%s", err);
    int rc = wal_replay(w, 0, collect, &s, &info, err, sizeof err);
    snprintf(want, sizeof want, "offset %zu", rec_off[hit]);
    if (good_after) {
        cr_assert_eq(rc, DOTDB_ECORRUPT, "kind %d at %zu: damage before the tail is refused", kind, off);
        cr_assert(strstr(err, want) != NULL, "kind %d at %zu: %s", kind, off, err);
        cr_assert_eq(file_size(1), (long)len, "a refused replay changes nothing");
        (*corrupt_cases)++;
    } else {
        cr_assert_eq(rc, DOTDB_OK, "kind %d at %zu: %s", kind, off, err);
        cr_assert_eq(s.bad, 0);
        cr_assert_eq(s.n, (size_t)hit, "kind %d at %zu: the records before the damage are "
                     "replayed (%zu)", kind, off, s.n);
        if (zero_end) {
            cr_assert_str_empty(info.warning, "kind %d at %zu: %s", kind, off, info.warning);
            cr_assert_eq(file_size(1), (long)len);
        } else {
            if (len > rec_off[hit]) {
                cr_assert(strstr(info.warning, want) != NULL, "kind %d at %zu: %s", kind, off,
                          info.warning);
                (*cut_cases)++;
            }
            cr_assert_eq(file_size(1), (long)rec_off[hit]);
        }
    }
    wal_close(w);
    free(b);
}

Test(wal, tail_damage_sweep_cuts_a_torn_tail_and_refuses_damage_before_it, .timeout = 120)
{
    wal_replay_info info;
    struct seen s = {0};
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 6);
    wal_close(w);
    size_t full;
    uint8_t *bytes = read_seg(1, &full);
    size_t rec_off[6];
    rec_off[0] = 32;
    for (int i = 1; i < 6; i++)
        rec_off[i] = rec_off[i - 1] + rec_size_of((uint64_t)i);
    cr_assert_eq(rec_off[5] + rec_size_of(6), full);
    unsigned seed = 7;
    int cut = 0, corrupt = 0, cases = 0;
    for (int kind = 0; kind < D_KINDS; kind++)
        for (size_t off = rec_off[3]; off < full; off++, cases++)
            sweep_case(bytes, full, rec_off, 6, kind, off, &seed, &cut, &corrupt);
    /* a duplicated record: at the tail it is cut, before good ones refused */
    for (int k = 3; k < 6; k++, cases++) {
        size_t rs = rec_size_of((uint64_t)k + 1), at = rec_off[k] + rs;
        uint8_t *b = malloc(full + rs);
        memcpy(b, bytes, at);
        memcpy(b + at, bytes + rec_off[k], rs);
        memcpy(b + at + rs, bytes + at, full - at);
        write_seg(1, b, full + rs);
        free(b);
        char err[512];
        cr_assert_eq(wal_open(g_dir, 1 << 20, &w, err, sizeof err), DOTDB_OK);
        memset(&s, 0, sizeof s);
        int rc = wal_replay(w, 0, collect, &s, &info, err, sizeof err);
        if (k == 5) {
            cr_assert_eq(rc, DOTDB_OK, "%s", err);
            cr_assert_eq(s.n, 6);
            cr_assert_eq(info.truncated_bytes, rs);
        } else {
            cr_assert_eq(rc, DOTDB_ECORRUPT, "duplicate of record %d before good ones", k + 1);
        }
        wal_close(w);
    }
    cr_log_info("tail sweep: %d cases, %d tails cut, %d refused", cases, cut, corrupt);
    cr_assert_gt(corrupt, 0);
    cr_assert_gt(cut, 0);
    free(bytes);
}

Test(wal, lsn_gap_between_segments_is_corrupt)
{
    static const uint64_t a[] = {1, 2}, b[] = {4, 5}, c[] = {6};
    char err[512];
    craft_segment(1, a, 2);
    craft_segment(2, b, 2);
    craft_segment(3, c, 1);
    replay_fails(1 << 20, DOTDB_ECORRUPT, err, sizeof err);
    cr_assert(strstr(err, "wal_000002.log") != NULL, "%s", err);
    cr_assert(strstr(err, "offset 32") != NULL, "%s", err);
    cr_assert(strstr(err, "LSN 4 does not follow 2") != NULL, "%s", err);
}

Test(wal, lsn_jump_covered_by_the_checkpoint_is_accepted)
{
    static const uint64_t lsns[] = {1, 2, 4};
    wal_replay_info info;
    struct seen s = {0};
    craft_segment(1, lsns, 3);
    wal *w = open_replay(1 << 20, 3, &info, &s);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.lsn[0], 4);
    cr_assert_eq(info.records, 3);
    cr_assert_eq(info.truncated_bytes, 0);
    cr_assert_eq(wal_last_lsn(w), 4);
    wal_close(w);
}

Test(wal, log_older_than_checkpoint_continues_after_it)
{
    wal_replay_info info;
    struct seen s = {0};
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 3);
    wal_close(w);
    w = open_replay(1 << 20, 10, &info, &s);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(info.last_lsn, 3);
    cr_assert_eq(wal_last_lsn(w), 10);
    log_range(w, 11, 12);
    wal_close(w);
    w = open_replay(1 << 20, 10, &info, &s);
    assert_lsns(&s, 11, 12);
    cr_assert_eq(info.records, 5);
    cr_assert_eq(info.truncated_bytes, 0);
    wal_close(w);
}

Test(wal, header_only_last_segment_is_used)
{
    wal_replay_info info;
    struct seen s = {0};
    uint8_t h[32];
    wal *w = open_replay(1024, 0, &info, &s);
    log_range(w, 1, 30);
    uint64_t nseg = wal_current_segno(w);
    wal_close(w);
    build_header(h, nseg + 1, 1);
    write_seg(nseg + 1, h, 32);

    w = open_replay(1024, 0, &info, &s);
    assert_lsns(&s, 1, 30);
    cr_assert_str_eq(info.warning, "");
    cr_assert_eq(wal_current_segno(w), nseg + 1);
    log_range(w, 31, 31);
    cr_assert_eq(file_size(nseg + 1), 32 + (long)rec_size_of(31));
    wal_close(w);
    memset(&s, 0, sizeof s);
    w = open_replay(1024, 0, &info, &s);
    assert_lsns(&s, 1, 31);
    wal_close(w);
}

Test(wal, torn_segment_creation_at_the_end_is_removed)
{
    static const size_t torn_sizes[] = {0, 10, 32};
    wal_replay_info info;
    struct seen s = {0};
    wal *w = open_replay(1024, 0, &info, &s);
    log_range(w, 1, 30);
    uint64_t nseg = wal_current_segno(w);
    wal_close(w);
    uint64_t next = 31;
    for (size_t i = 0; i < sizeof torn_sizes / sizeof torn_sizes[0]; i++) {
        uint8_t junk[32];
        memset(junk, i == 2 ? 0 : 0x77, sizeof junk); /* 32 zero bytes: header never written */
        write_seg(nseg + 1, junk, torn_sizes[i]);
        memset(&s, 0, sizeof s);
        w = open_replay(1024, 0, &info, &s);
        assert_lsns(&s, 1, next - 1);
        cr_assert(strstr(info.warning, "removed") != NULL, "%s", info.warning);
        char name[32];
        snprintf(name, sizeof name, "wal_%06llu.log", (unsigned long long)(nseg + 1));
        cr_assert(strstr(info.warning, name) != NULL, "%s", info.warning);
        cr_assert_eq(file_size(nseg + 1), -1);
        cr_assert_eq(wal_current_segno(w), nseg);
        /* appends continue in the previous segment (it has room for one) */
        log_range(w, next, next);
        cr_assert_eq(wal_current_segno(w) - nseg <= 1, 1);
        nseg = wal_current_segno(w);
        next++;
        wal_close(w);
    }
    memset(&s, 0, sizeof s);
    w = open_replay(1024, 0, &info, &s);
    assert_lsns(&s, 1, next - 1);
    cr_assert_str_eq(info.warning, "");
    wal_close(w);
}

Test(wal, only_segment_torn_at_creation_is_recreated)
{
    wal_replay_info info;
    struct seen s = {0};
    write_seg(1, (const uint8_t *)"", 0);
    wal *w = open_replay(1 << 20, 0, &info, &s);
    cr_assert_eq(info.records, 0);
    cr_assert(strstr(info.warning, "wal_000001.log") != NULL, "%s", info.warning);
    cr_assert_eq(file_size(1), 32);
    cr_assert_eq(wal_current_segno(w), 1);
    log_range(w, 1, 3);
    wal_close(w);
    w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 3);
    wal_close(w);
}

Test(wal, torn_creation_after_a_damaged_segment_is_corrupt)
{
    /* segment 1 was synced before segment 2 was created, so a torn record
     * in it is damage, even once the torn segment 2 is gone */
    wal_replay_info info;
    struct seen s = {0};
    char err[512];
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 3);
    wal_close(w);
    size_t len;
    uint8_t *b = read_seg(1, &len);
    write_seg(1, b, len - 3);
    free(b);
    write_seg(2, (const uint8_t *)"", 0);
    replay_fails(1 << 20, DOTDB_ECORRUPT, err, sizeof err);
    cr_assert(strstr(err, "wal_000001.log") != NULL, "%s", err);
}

Test(wal, append_after_replay_continues_the_file)
{
    wal_replay_info info;
    struct seen s = {0};
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 5);
    long before = file_size(1);
    wal_close(w);
    w = open_replay(1 << 20, 0, &info, &s);
    cr_assert_eq(wal_last_lsn(w), 5);
    cr_assert_eq(wal_total_bytes(w), (uint64_t)before);
    log_range(w, 6, 8);
    cr_assert_eq(wal_current_segno(w), 1);
    cr_assert_eq(file_size(2), -1);
    long after = file_size(1);
    cr_assert_eq(after, before + (long)(rec_size_of(6) + rec_size_of(7) + rec_size_of(8)));
    cr_assert_eq(wal_total_bytes(w), (uint64_t)after);
    wal_close(w);
    memset(&s, 0, sizeof s);
    w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 8);
    wal_close(w);
}

Test(wal, foreign_files_are_ignored)
{
    wal_replay_info info;
    struct seen s = {0};
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 2);
    wal_close(w);
    char p[256];
    static const char *const names[] = {"notes.txt", "wal_1.log", "wal_0000002.log",
                                        "wal_000002.log.tmp", "wal_000000.log"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, names[i]);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        fputs("junk", f);
        fclose(f);
    }
    w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 2);
    cr_assert_str_eq(info.warning, "");
    wal_close(w);
}

/* ---- a full disk ------------------------------------------------------------- */

static void limit_file_size(rlim_t bytes)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = bytes;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0, "%s", strerror(errno));
}

static void unlimit_file_size(void)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

Test(wal, full_disk_write_is_undone)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[512];
    signal(SIGXFSZ, SIG_IGN); /* the write then fails with EFBIG */
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 3);
    long before = file_size(1);
    uint64_t total = wal_total_bytes(w);

    limit_file_size((rlim_t)before + 100);
    append_range(w, 4, 20);
    int rc = wal_write(w, err, sizeof err);
    cr_assert_eq(rc, DOTDB_ENOSPC, "wal_write gave %d: %s", rc, err);
    cr_assert(strstr(err, "wal_000001.log") != NULL, "%s", err);
    cr_assert(strstr(err, "File too large") != NULL, "%s", err);
    cr_assert_eq(file_size(1), before);
    cr_assert_eq(wal_last_lsn(w), 3);
    cr_assert_eq(wal_total_bytes(w), total);
    cr_assert_eq(wal_unsynced_bytes(w), 0);
    wal_close(w);

    /* a fresh replay sees only what was there before the failed write */
    memset(&s, 0, sizeof s);
    w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 3);
    cr_assert_eq(info.truncated_bytes, 0);
    cr_assert_str_eq(info.warning, "");

    /* once there is room again the LSNs of the undone batch are reused */
    unlimit_file_size();
    log_range(w, 4, 20);
    wal_close(w);
    memset(&s, 0, sizeof s);
    w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 20);
    wal_close(w);
}

Test(wal, failed_write_keeps_the_wal_usable_in_the_same_handle)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[512];
    signal(SIGXFSZ, SIG_IGN);
    wal *w = open_replay(1 << 20, 0, &info, &s);
    log_range(w, 1, 3);
    limit_file_size((rlim_t)file_size(1) + 10);
    append_range(w, 4, 6);
    cr_assert_eq(wal_write(w, err, sizeof err), DOTDB_ENOSPC);
    unlimit_file_size();
    log_range(w, 4, 5);
    wal_close(w);
    memset(&s, 0, sizeof s);
    w = open_replay(1 << 20, 0, &info, &s);
    assert_lsns(&s, 1, 5);
    wal_close(w);
}

Test(wal, full_disk_during_rotation_removes_the_new_segment)
{
    wal_replay_info info;
    struct seen s = {0};
    char err[512];
    static uint8_t big[1500];
    signal(SIGXFSZ, SIG_IGN);
    wal *w = open_replay(1024, 0, &info, &s);
    log_range(w, 1, 2);
    long before = file_size(1);

    /* record 3 fits in segment 1; record 4 needs a segment of its own that
     * outgrows the file size limit */
    limit_file_size(1024);
    append_range(w, 3, 3);
    cr_assert_eq(wal_append(w, 4, 1, big, sizeof big), DOTDB_OK);
    int rc = wal_write(w, err, sizeof err);
    cr_assert_eq(rc, DOTDB_ENOSPC, "wal_write gave %d: %s", rc, err);
    cr_assert(strstr(err, "wal_000002.log") != NULL, "%s", err);
    cr_assert_eq(file_size(1), before);
    cr_assert_eq(file_size(2), -1);
    cr_assert_eq(wal_current_segno(w), 1);
    cr_assert_eq(wal_total_bytes(w), (uint64_t)before);
    cr_assert_eq(wal_last_lsn(w), 2);
    unlimit_file_size();
    log_range(w, 3, 6);
    wal_close(w);

    memset(&s, 0, sizeof s);
    w = open_replay(1024, 0, &info, &s);
    assert_lsns(&s, 1, 6);
    wal_close(w);
}
