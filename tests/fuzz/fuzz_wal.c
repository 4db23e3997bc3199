/*
 * fuzz_wal.c - WAL record parsing during recovery (coordinator/wal.c):
 * wal_check and wal_replay over segment files built from the input.
 *
 * Input: a flags byte, then the bytes of the WAL.  They are cut before
 * every occurrence of the segment magic "DOTDBWAL" into at most MAX_SEGS
 * files wal_000001.log, wal_000002.log, ... (bytes before the first magic
 * make a segment of their own).  Flags:
 *   bit 0  fix the checksums (and each header's segment number) of every
 *          header and record that is long enough, so the fuzzer gets past
 *          xxh64 to the rules behind it;
 *   bit 1  with bit 0: also renumber the records' LSNs 1, 2, 3, ...;
 *   bits 2-3  after_lsn (the checkpoint LSN): 0, 1, 3 or 1000.
 *
 * Oracles:
 *   - wal_check (read-only) and wal_replay agree on the verdict, the
 *     number of records and the last LSN;
 *   - the callback sees LSNs above after_lsn, strictly increasing, and
 *     its count matches the records the log holds above after_lsn;
 *   - a failed replay leaves every file longer than a segment header as
 *     it was (only a torn creation may be removed);
 *   - after a successful replay the log is writable: a record appended at
 *     wal_last_lsn() + 1, written and synced, is then found by a clean
 *     wal_check (no warning, nothing to truncate) and by a second replay
 *     as the last record, after every record the first replay handed out.
 */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "dotdb.h"
#include "fuzz_util.h"
#include "wal.h"

#define MAX_SEGS 4
#define SEG_SIZE 4096u

typedef struct cb_state {
    uint64_t after, prev, count;
} cb_state;

static int on_record(void *ctx, uint64_t lsn, uint32_t type, const uint8_t *p, size_t len)
{
    cb_state *s = ctx;
    (void)p;
    (void)len;
    FUZZ_CHECK(type != 0, "record of type 0 handed out");
    FUZZ_CHECK(lsn > s->after, "LSN %llu not after the checkpoint %llu",
               (unsigned long long)lsn, (unsigned long long)s->after);
    FUZZ_CHECK(lsn > s->prev, "LSN %llu after %llu", (unsigned long long)lsn,
               (unsigned long long)s->prev);
    s->prev = lsn;
    s->count++;
    return 0;
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Recompute what bit 0 / bit 1 of the flags ask for, in place. */
static void fix_segment(uint8_t *f, size_t n, uint64_t segno, int renumber, uint64_t *next_lsn)
{
    if (n >= 24)
        put64(f + 16, segno);
    if (n >= WAL_SEG_HDR_SIZE)
        put64(f + 24, XXH64(f, 24, 0));
    size_t off = WAL_SEG_HDR_SIZE;
    while (n >= off && n - off >= WAL_REC_HDR_SIZE + 8) {
        uint32_t len = get32(f + off);
        uint64_t body = WAL_REC_HDR_SIZE + (((uint64_t)len + 7) & ~(uint64_t)7);
        if (body + 8 > n - off)
            break;
        if (renumber)
            put64(f + off + 8, (*next_lsn)++);
        put64(f + off + body, XXH64(f + off, (size_t)body, 0));
        off += (size_t)body + 8;
    }
}

typedef struct snapshot {
    char name[MAX_SEGS][32];
    uint8_t *data[MAX_SEGS];
    size_t len[MAX_SEGS];
    size_t n;
} snapshot;

static void read_file(const char *path, uint8_t **p, size_t *n)
{
    *p = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    *p = malloc(sz > 0 ? (size_t)sz : 1);
    FUZZ_CHECK(*p != NULL, "alloc");
    *n = fread(*p, 1, (size_t)sz, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    static const uint64_t afters[] = {0, 1, 3, 1000};
    uint64_t after = afters[(flags >> 2) & 3];
    const uint8_t *log = data + 1;
    size_t loglen = size - 1;

    /* Cut into segments before each magic. */
    size_t cut[MAX_SEGS + 1], ncut = 0;
    cut[ncut++] = 0;
    for (size_t i = 1; i + 8 <= loglen && ncut < MAX_SEGS; i++)
        if (memcmp(log + i, "DOTDBWAL", 8) == 0)
            cut[ncut++] = i;
    cut[ncut] = loglen;

    char dir[512], path[600];
    fuzz_mkdtemp(dir, sizeof dir, "wal");
    snapshot before = {.n = 0};
    uint64_t next_lsn = 1;
    for (size_t s = 0; s < ncut && loglen > 0; s++) {
        size_t n = cut[s + 1] - cut[s];
        uint8_t *f = malloc(n ? n : 1);
        FUZZ_CHECK(f != NULL, "alloc");
        memcpy(f, log + cut[s], n);
        if (flags & 1)
            fix_segment(f, n, s + 1, flags & 2, &next_lsn);
        snprintf(before.name[s], sizeof before.name[s], "wal_%06zu.log", s + 1);
        snprintf(path, sizeof path, "%s/%s", dir, before.name[s]);
        fuzz_write_file(path, f, n);
        before.data[s] = f;
        before.len[s] = n;
        before.n++;
    }

    char err[1024];
    wal_replay_info ci, ri;
    int rc_check = wal_check(dir, after, &ci, err, sizeof err);
    wal *w = NULL;
    FUZZ_CHECK(wal_open(dir, SEG_SIZE, &w, err, sizeof err) == DOTDB_OK, "wal_open: %s", err);
    cb_state st = {.after = after};
    int rc = wal_replay(w, after, on_record, &st, &ri, err, sizeof err);
    if (getenv("FUZZ_DEBUG"))
        fprintf(stderr, "wal: %zu segments, after %llu: check %d, replay %d (%s), %llu records "
                "to %llu, warning: %s\n", before.n, (unsigned long long)after, rc_check, rc, err,
                (unsigned long long)ri.records, (unsigned long long)ri.last_lsn, ri.warning);
    FUZZ_CHECK(rc == rc_check, "wal_check says %d, wal_replay %d (%s)", rc_check, rc, err);
    if (rc != DOTDB_OK) {
        wal_close(w);
        for (size_t s = 0; s < before.n; s++) {
            if (before.len[s] <= WAL_SEG_HDR_SIZE)
                continue;
            uint8_t *now;
            size_t nlen;
            snprintf(path, sizeof path, "%s/%s", dir, before.name[s]);
            read_file(path, &now, &nlen);
            FUZZ_CHECK(now != NULL && nlen == before.len[s] &&
                           memcmp(now, before.data[s], nlen) == 0,
                       "a failed replay changed %s", before.name[s]);
            free(now);
        }
        goto out;
    }
    FUZZ_CHECK(ci.records == ri.records && ci.last_lsn == ri.last_lsn &&
                   ci.first_lsn == ri.first_lsn && ci.truncated_bytes == ri.truncated_bytes,
               "check and replay disagree: %llu/%llu records, last %llu/%llu",
               (unsigned long long)ci.records, (unsigned long long)ri.records,
               (unsigned long long)ci.last_lsn, (unsigned long long)ri.last_lsn);
    FUZZ_CHECK(st.count <= ri.records, "callback ran more often than there are records");
    uint64_t last = wal_last_lsn(w);
    FUZZ_CHECK(last == (ri.last_lsn > after ? ri.last_lsn : after), "wal_last_lsn %llu",
               (unsigned long long)last);

    /* The log must take the next record where replay left it. */
    static const uint8_t payload[] = {1, 0, 0, 0, 'f', 'u', 'z', 'z', 'e', 'd'};
    rc = wal_append(w, last + 1, WAL_REC_BATCH, payload, sizeof payload);
    if (last >= WAL_LSN_MAX) { /* the log is full: nothing may be appended */
        FUZZ_CHECK(rc == DOTDB_EINVAL, "append past WAL_LSN_MAX: %d", rc);
        wal_close(w);
        goto out;
    }
    FUZZ_CHECK(rc == DOTDB_OK, "append after replay: %d", rc);
    rc = wal_write(w, err, sizeof err);
    FUZZ_CHECK(rc == DOTDB_OK, "write after replay: %s", err);
    rc = wal_sync(w, err, sizeof err);
    FUZZ_CHECK(rc == DOTDB_OK, "sync after replay: %s", err);
    wal_close(w);
    w = NULL;

    rc = wal_check(dir, after, &ci, err, sizeof err);
    FUZZ_CHECK(rc == DOTDB_OK, "the log replay repaired does not check: %s", err);
    FUZZ_CHECK(ci.warning[0] == '\0' && ci.truncated_bytes == 0,
               "the repaired log still has damage: %s", ci.warning);
    FUZZ_CHECK(ci.last_lsn == last + 1 && ci.records == ri.records + 1,
               "appended record lost: last %llu (want %llu), %llu records (want %llu)",
               (unsigned long long)ci.last_lsn, (unsigned long long)(last + 1),
               (unsigned long long)ci.records, (unsigned long long)(ri.records + 1));
    FUZZ_CHECK(wal_open(dir, SEG_SIZE, &w, err, sizeof err) == DOTDB_OK, "reopen: %s", err);
    cb_state st2 = {.after = after};
    rc = wal_replay(w, after, on_record, &st2, &ri, err, sizeof err);
    FUZZ_CHECK(rc == DOTDB_OK, "second replay: %s", err);
    FUZZ_CHECK(st2.count == st.count + 1 && st2.prev == last + 1,
               "second replay handed out %llu records ending at %llu, want %llu ending at %llu",
               (unsigned long long)st2.count, (unsigned long long)st2.prev,
               (unsigned long long)(st.count + 1), (unsigned long long)(last + 1));
    wal_close(w);
out:
    for (size_t s = 0; s < before.n; s++)
        free(before.data[s]);
    fuzz_rmtree(dir);
    return 0;
}
