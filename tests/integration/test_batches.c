/*
 * test_batches.c - large batches sent in fragments (lib/read.c put_many,
 * coordinator/fragments.c, wire.h WIRE_F_MORE).
 *
 * A batch in fragments must be exactly as atomic as one sent in a single
 * frame: one LSN, all or nothing, whatever fragment goes wrong and
 * whenever the client stops; other connections' batches go on meanwhile.
 * The library is driven through the public API; the protocol corner cases
 * through a raw connection that speaks the frames itself.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "codec.h"
#include "harness.h"
#include "layout.h"
#include "wire.h"

/* ---- helpers ---- */

/* coordinator.<key> of the statistics. */
static uint64_t coord_stat(dotdb *db, const char *key)
{
    char *s = NULL, want[64];
    cr_assert_eq(dotdb_stats(db, NULL, &s, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    snprintf(want, sizeof want, "\"%s\":", key);
    const char *p = strstr(s, want);
    cr_assert_not_null(p, "stats has %s", key);
    uint64_t v = strtoull(p + strlen(want), NULL, 10);
    dotdb_free(s);
    return v;
}

static uint64_t commit_lsn(dotdb *db) { return coord_stat(db, "commit_lsn"); }

/* n documents as JSON lines, ids "<prefix><i>"; document `bad` (if < n)
 * is malformed JSON. */
static char *docs_text(size_t n, const char *prefix, size_t bad, size_t *len)
{
    size_t cap = n * 200 + 1, used = 0;
    char *t = malloc(cap);
    cr_assert_not_null(t);
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(t + used, cap - used,
                                 i == bad ? "{\"id\":\"%s%zu\",\"v\":}\n"
                                          : "{\"id\":\"%s%zu\",\"v\":%zu,\"pad\":\"%080d\"}\n",
                                 prefix, i, i, 0);
    *len = used;
    return t;
}

static int doc_exists(dotdb *db, const char *coll, const char *id)
{
    char *json = NULL;
    int rc = dotdb_get(db, coll, id, &json, NULL);
    dotdb_free(json);
    cr_assert(rc == DOTDB_OK || rc == DOTDB_ENOTFOUND || rc == DOTDB_ENOCOLL, "get %s: %s", id,
              dotdb_err_name(rc));
    return rc == DOTDB_OK;
}

/* ---- the library ---- */

Test(batches, put_many_in_fragments_commits_everything_at_one_lsn, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    size_t len, n = 5000, stored = 0;
    char *text = docs_text(n, "f", SIZE_MAX, &len);
    cr_assert_gt(len, 3 * 128 * 1024, "big enough for several fragments");
    uint64_t before = commit_lsn(db);
    cr_assert_eq(dotdb_put_many(db, "many", text, len, &stored), DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_assert_eq(stored, n);
    cr_assert_eq(commit_lsn(db), before + 1, "one batch, one LSN");
    char id[32];
    for (size_t i = 0; i < n; i += 97) {
        snprintf(id, sizeof id, "f%zu", i);
        cr_assert(doc_exists(db, "many", id), "%s", id);
    }
    cr_assert(doc_exists(db, "many", "f4999"));
    char *s = NULL;
    cr_assert_eq(dotdb_stats(db, "many", &s, NULL), DOTDB_OK);
    cr_assert_not_null(strstr(s, "\"documents\":5000"), "%s", s);
    dotdb_free(s);
    free(text);
    dotdb_close(db);
    /* and it is in the WAL as one record: a restart replays all of it */
    h_stop(&c);
    h_start(&c);
    db = h_open(&c);
    cr_assert(doc_exists(db, "many", "f0"));
    cr_assert(doc_exists(db, "many", "f4999"));
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(batches, bad_document_after_sent_fragments_stores_nothing, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    size_t len, stored = 7;
    char *text = docs_text(5000, "g", 4500, &len);
    uint64_t before = commit_lsn(db);
    cr_assert_eq(dotdb_put_many(db, "many", text, len, &stored), DOTDB_EJSON);
    cr_assert_not_null(strstr(dotdb_errmsg(db), "document 4500"), "%s", dotdb_errmsg(db));
    cr_assert_eq(stored, 0);
    cr_assert_eq(commit_lsn(db), before, "nothing committed");
    cr_assert(!doc_exists(db, "many", "g0"));
    /* the handle goes on as if nothing happened */
    const char *doc = "{\"id\":\"after\"}";
    cr_assert_eq(dotdb_put(db, "many", doc, strlen(doc), NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_assert(doc_exists(db, "many", "after"));
    cr_assert(!doc_exists(db, "many", "g1"));
    free(text);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- texts of a MiB or more: two encoders (lib/read.c) ---- */

/* A growing text. */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void text_add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        cr_assert_geq(k, 0);
        if ((size_t)k < t->cap - t->len) {
            t->len += (size_t)k;
            return;
        }
        t->cap = t->cap ? 2 * t->cap : 1 << 20;
        t->p = realloc(t->p, t->cap);
        cr_assert_not_null(t->p);
    }
}

static uint64_t coll_count(dotdb *db, const char *coll)
{
    uint64_t n = 0;
    cr_assert_eq(dotdb_count(db, coll, NULL, &n), DOTDB_OK, "%s", dotdb_errmsg(db));
    return n;
}

Test(batches, a_text_of_megabytes_is_stored_whole_at_one_lsn_with_unique_ids, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    /* every third document has no id: the library generates them, from
     * both encoders at once */
    text t = {0};
    size_t n = 15000, stored = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 3 == 0)
            text_add(&t, "{\"v\":%zu,\"pad\":\"%0100d\"}\n", i, 0);
        else
            text_add(&t, "{\"id\":\"m%zu\",\"v\":%zu,\"pad\":\"%0100d\"}\n", i, i, 0);
    }
    cr_assert_gt(t.len, 1u << 20, "past the two-encoder threshold (PUT_MANY_SPLIT_MIN)");
    uint64_t before = commit_lsn(db);
    cr_assert_eq(dotdb_put_many(db, "big", t.p, t.len, &stored), DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_assert_eq(stored, n);
    cr_assert_eq(commit_lsn(db), before + 1, "one batch, one LSN");
    cr_assert_eq(coll_count(db, "big"), n, "every document, every generated id distinct");
    char id[32];
    for (size_t i = 1; i < n; i += 3) {
        snprintf(id, sizeof id, "m%zu", i);
        cr_assert(doc_exists(db, "big", id), "%s", id);
    }
    /* the values arrived in the documents they belong to */
    uint64_t k = 0;
    cr_assert_eq(dotdb_count(db, "big", "{\"v\": {\"$gte\": 7500}}", &k), DOTDB_OK);
    cr_expect_eq(k, n - 7500);
    free(t.p);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(batches, a_bad_document_in_either_half_names_its_index_and_stores_nothing, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    size_t n = 15000, bads[] = {120, 7600, 14990};
    const char *kinds[] = {"{\"id\":\"x%zu\",\"v\":}\n", "[%zu]\n", "{\"id\":\"x%zu\",\"v\":}\n"};
    const char *want[] = {"document 120:", "document 7600: expected a JSON object",
                          "document 14990:"};
    for (int b = 0; b < 3; b++) {
        text t = {0};
        for (size_t i = 0; i < n; i++) {
            if (i == bads[b])
                text_add(&t, kinds[b], i);
            else
                text_add(&t, "{\"id\":\"x%zu\",\"pad\":\"%0100d\"}\n", i, 0);
        }
        size_t stored = 7;
        uint64_t before = commit_lsn(db);
        cr_assert_eq(dotdb_put_many(db, "bad", t.p, t.len, &stored), DOTDB_EJSON, "case %d", b);
        cr_expect_not_null(strstr(dotdb_errmsg(db), want[b]), "case %d: %s", b, dotdb_errmsg(db));
        cr_assert_eq(stored, 0);
        cr_assert_eq(commit_lsn(db), before, "case %d: nothing committed", b);
        cr_assert(!doc_exists(db, "bad", "x0"));
        cr_assert(!doc_exists(db, "bad", "x14999"));
        free(t.p);
    }
    const char *doc = "{\"id\":\"after\"}";
    cr_assert_eq(dotdb_put(db, "bad", doc, strlen(doc), NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* The second encoder starts at a line that opens an object past the
 * middle; here that line is inside a document that spans many lines, and
 * the result must be what one encoder would store. */
Test(batches, a_middle_inside_a_multiline_document_changes_nothing, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    text t = {0};
    size_t head = 3000, parts = 60000, tail = 500, stored = 0;
    for (size_t i = 0; i < head; i++)
        text_add(&t, "{\"id\":\"h%zu\",\"pad\":\"%0100d\"}\n", i, 0);
    size_t big_from = t.len;
    text_add(&t, "{\"id\":\"big\",\"parts\":[\n");
    for (size_t i = 0; i < parts; i++)
        text_add(&t, "{\"k\":%zu}%s\n", i, i + 1 < parts ? "," : "");
    text_add(&t, "]}\n");
    size_t big_to = t.len;
    for (size_t i = 0; i < tail; i++)
        text_add(&t, "{\"id\":\"t%zu\",\"pad\":\"%0100d\"}\n", i, 0);
    cr_assert_gt(t.len, 1u << 20);
    cr_assert(t.len / 2 > big_from && t.len / 2 < big_to, "the middle falls inside \"big\"");
    cr_assert_eq(dotdb_put_many(db, "ml", t.p, t.len, &stored), DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_assert_eq(stored, head + 1 + tail);
    cr_assert_eq(coll_count(db, "ml"), head + 1 + tail, "no nested object stored as a document");
    dotdb_txn *x;
    cr_assert_eq(dotdb_txn_begin(db, DOTDB_TXN_READONLY, &x), DOTDB_OK);
    dotdb_doc d;
    cr_assert_eq(dotdb_txn_get(x, "ml", "big", &d), DOTDB_OK);
    dotdb_value v;
    cr_assert_eq(dotdb_doc_get(&d, "parts.59999.k", &v), DOTDB_OK);
    cr_expect(v.type == DOTDB_T_INT && v.i == 59999);
    dotdb_txn_abort(x);
    cr_assert(doc_exists(db, "ml", "t499"));
    free(t.p);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- the protocol, by hand ---- */

typedef struct raw {
    int fd;
    uint32_t req;
} raw;

static void raw_open(const char *dir, raw *r)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/dotdb.sock", dir);
    r->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    r->req = 0;
    cr_assert_eq(connect(r->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    uint8_t frame[WIRE_HDR_SIZE + 16];
    wire_hdr h = {.len = 16, .op = WIRE_OP_HELLO};
    wire_hdr_put(frame, &h);
    st_u32(frame + WIRE_HDR_SIZE, DOTDB_PROTOCOL_VERSION);
    st_u32(frame + WIRE_HDR_SIZE + 4, SHM_LAYOUT_VERSION);
    st_u64(frame + WIRE_HDR_SIZE + 8, (uint64_t)getpid());
    cr_assert_eq(send(r->fd, frame, sizeof frame, MSG_NOSIGNAL), (ssize_t)sizeof frame);
    uint8_t resp[WIRE_HDR_SIZE + 64];
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {resp, WIRE_HDR_SIZE + 40};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    cr_assert_eq(recvmsg(r->fd, &msg, MSG_WAITALL), WIRE_HDR_SIZE + 40);
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        int fds[3];
        memcpy(fds, CMSG_DATA(cm), sizeof fds);
        for (int i = 0; i < 3; i++)
            close(fds[i]);
    }
    wire_hdr_get(resp, &h);
    cr_assert_eq(h.status, 0);
}

/* A batch of PUTs into `coll` of the given documents (JSON, NULL = a
 * corrupt binary document). */
static void raw_batch_in(dbuf *b, const char *coll, const char *const *docs, size_t n)
{
    size_t start;
    dbuf_init(b);
    cr_assert_eq(batch_begin(b, &start), 0);
    for (size_t i = 0; i < n; i++) {
        dbuf d;
        dbuf_init(&d);
        if (docs[i]) {
            cr_assert_eq(codec_from_json(docs[i], strlen(docs[i]), NULL, NULL, &d, NULL, NULL, 0),
                         DOTDB_OK);
        } else {
            uint8_t junk[] = {0x20, 0xff, 0x01, 0x00};
            dbuf_append(&d, junk, sizeof junk);
        }
        batch_op op = {.kind = BOP_PUT, .coll = coll, .coll_len = strlen(coll), .doc = d.data,
                       .doc_len = d.len};
        cr_assert_eq(batch_add(b, start, &op), 0);
        dbuf_free(&d);
    }
}

static void raw_batch(dbuf *b, const char *const *docs, size_t n)
{
    raw_batch_in(b, "raw", docs, n);
}

static void raw_send(raw *r, uint16_t flags, const dbuf *b)
{
    uint8_t hdr[WIRE_HDR_SIZE];
    wire_hdr h = {.len = (uint32_t)b->len, .req_id = ++r->req, .op = WIRE_OP_BATCH, .flags = flags};
    wire_hdr_put(hdr, &h);
    cr_assert_eq(send(r->fd, hdr, sizeof hdr, MSG_NOSIGNAL), (ssize_t)sizeof hdr);
    cr_assert_eq(send(r->fd, b->data, b->len, MSG_NOSIGNAL), (ssize_t)b->len);
}

/* The next response: its status; the message into msg. */
static int raw_answer(raw *r, char *msg, size_t cap)
{
    uint8_t hdr[WIRE_HDR_SIZE];
    cr_assert_eq(recv(r->fd, hdr, sizeof hdr, MSG_WAITALL), (ssize_t)sizeof hdr);
    wire_hdr h;
    wire_hdr_get(hdr, &h);
    cr_assert_eq(h.req_id, r->req, "the answer is for the frame that ended the batch");
    cr_assert_lt(h.len, cap);
    if (h.len)
        cr_assert_eq(recv(r->fd, msg, h.len, MSG_WAITALL), (ssize_t)h.len);
    msg[h.len] = 0;
    return h.status;
}

static void raw_put(raw *r, uint16_t flags, const char *const *docs, size_t n)
{
    dbuf b;
    raw_batch(&b, docs, n);
    raw_send(r, flags, &b);
    dbuf_free(&b);
}

Test(batches, bad_fragment_fails_the_whole_batch, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    raw r;
    raw_open(c.dir, &r);
    char msg[600];
    const char *a[] = {"{\"id\":\"a1\"}", "{\"id\":\"a2\"}"}, *bad[] = {"{\"id\":\"b1\"}", NULL},
               *last[] = {"{\"id\":\"c1\"}"};
    raw_put(&r, WIRE_F_MORE, a, 2);
    raw_put(&r, WIRE_F_MORE, bad, 2);
    raw_put(&r, WIRE_F_MORE, a, 1); /* dropped unread */
    raw_put(&r, 0, last, 1);
    cr_assert_eq(raw_answer(&r, msg, sizeof msg), DOTDB_ECORRUPT, "%s", msg);
    cr_assert_not_null(strstr(msg, "operation 3"), "numbered across fragments: %s", msg);
    cr_assert(!doc_exists(db, "raw", "a1"));
    cr_assert(!doc_exists(db, "raw", "c1"));
    /* the connection starts afresh: a good batch in fragments goes through */
    const char *d[] = {"{\"id\":\"d1\"}"}, *e[] = {"{\"id\":\"e1\"}", "{\"id\":\"e2\"}"};
    uint64_t before = commit_lsn(db);
    raw_put(&r, WIRE_F_MORE, d, 1);
    raw_put(&r, 0, e, 2);
    cr_assert_eq(raw_answer(&r, msg, sizeof msg), DOTDB_OK, "%s", msg);
    cr_assert_eq(commit_lsn(db), before + 1);
    cr_assert(doc_exists(db, "raw", "d1") && doc_exists(db, "raw", "e2"));
    close(r.fd);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(batches, abandoned_or_cut_off_fragments_leave_nothing, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    raw r;
    raw_open(c.dir, &r);
    char msg[600];
    const char *a[] = {"{\"id\":\"a1\"}"};
    /* an ending frame without operations abandons the batch */
    raw_put(&r, WIRE_F_MORE, a, 1);
    raw_put(&r, 0, NULL, 0);
    cr_assert_eq(raw_answer(&r, msg, sizeof msg), DOTDB_EINVAL, "%s", msg);
    cr_assert(!doc_exists(db, "raw", "a1"));
    /* a client that goes away half-way */
    const char *b[] = {"{\"id\":\"b1\"}"};
    raw_put(&r, WIRE_F_MORE, b, 1);
    close(r.fd);
    const char *doc = "{\"id\":\"other\"}";
    cr_assert_eq(dotdb_put(db, "raw", doc, strlen(doc), NULL), DOTDB_OK);
    cr_assert(!doc_exists(db, "raw", "b1"));
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(batches, other_connections_commit_while_a_batch_is_in_fragments, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    raw r;
    raw_open(c.dir, &r);
    char msg[600];
    const char *a[] = {"{\"id\":\"a1\"}"}, *z[] = {"{\"id\":\"a2\"}"};
    raw_put(&r, WIRE_F_MORE, a, 1);
    const char *doc = "{\"id\":\"between\"}";
    cr_assert_eq(dotdb_put(db, "raw", doc, strlen(doc), NULL), DOTDB_OK, "not held up");
    cr_assert(!doc_exists(db, "raw", "a1"), "nothing of the open batch is visible");
    raw_put(&r, 0, z, 1);
    cr_assert_eq(raw_answer(&r, msg, sizeof msg), DOTDB_OK, "%s", msg);
    cr_assert(doc_exists(db, "raw", "a1") && doc_exists(db, "raw", "a2"));
    cr_assert(doc_exists(db, "raw", "between"));
    close(r.fd);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* ---- fragments applied as they come (coordinator/server.c apply_ahead) ---- */

/* The documents the coordinator has applied to `coll` (its statistics
 * count what is applied, committed or not); UINT64_MAX: no collection. */
static uint64_t applied_docs(dotdb *db, const char *coll)
{
    char *s = NULL;
    int rc = dotdb_stats(db, coll, &s, NULL);
    if (rc == DOTDB_ENOCOLL)
        return UINT64_MAX;
    cr_assert_eq(rc, DOTDB_OK, "%s", dotdb_errmsg(db));
    const char *p = strstr(s, "\"documents\":");
    cr_assert_not_null(p);
    uint64_t v = strtoull(p + 12, NULL, 10);
    dotdb_free(s);
    return v;
}

/* Wait until the coordinator has applied n documents to coll (it reads a
 * raw connection's frames when it gets to them). */
static void wait_applied(dotdb *db, const char *coll, uint64_t n)
{
    for (int i = 0; i < 2000 && applied_docs(db, coll) != n; i++)
        usleep(5000);
    cr_assert_eq(applied_docs(db, coll), n, "%s: %" PRIu64 " documents applied", coll, n);
}

Test(batches, a_batch_applied_as_it_comes_stays_invisible_until_its_end, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    raw r;
    raw_open(c.dir, &r);
    char msg[600];
    uint64_t ahead = coord_stat(db, "batches_applied_ahead");
    uint64_t undone = coord_stat(db, "batches_ahead_undone");

    /* two fragments, applied as they come, seen by no snapshot */
    const char *a[] = {"{\"id\":\"a1\"}", "{\"id\":\"a2\"}"}, *a3[] = {"{\"id\":\"a3\"}"},
               *a4[] = {"{\"id\":\"a4\"}"};
    uint64_t before = commit_lsn(db);
    raw_put(&r, WIRE_F_MORE, a, 2);
    raw_put(&r, WIRE_F_MORE, a3, 1);
    wait_applied(db, "raw", 3);
    cr_assert(!doc_exists(db, "raw", "a1") && !doc_exists(db, "raw", "a3"), "invisible");
    uint64_t n = 9;
    cr_assert_eq(dotdb_count(db, "raw", NULL, &n), DOTDB_ENOCOLL,
                 "the collection it creates does not exist yet");
    cr_assert_eq(commit_lsn(db), before);
    raw_put(&r, 0, a4, 1);
    cr_assert_eq(raw_answer(&r, msg, sizeof msg), DOTDB_OK, "%s", msg);
    cr_assert_eq(commit_lsn(db), before + 1, "one batch, one LSN");
    cr_assert_eq(coord_stat(db, "batches_applied_ahead"), ahead + 1, "it was applied ahead");
    cr_assert(doc_exists(db, "raw", "a1") && doc_exists(db, "raw", "a4"));

    /* abandoned by an empty last frame: undone */
    const char *d[] = {"{\"id\":\"d1\"}"};
    raw_put(&r, WIRE_F_MORE, d, 1);
    wait_applied(db, "raw", 5);
    raw_put(&r, 0, NULL, 0);
    cr_assert_eq(raw_answer(&r, msg, sizeof msg), DOTDB_EINVAL, "%s", msg);
    cr_assert_eq(applied_docs(db, "raw"), 4);
    cr_assert(!doc_exists(db, "raw", "d1"));
    cr_assert_eq(coord_stat(db, "batches_ahead_undone"), undone + 1);

    /* into a new collection, then cut off: the collection goes too */
    raw r2;
    raw_open(c.dir, &r2);
    dbuf b;
    const char *g[] = {"{\"id\":\"g1\"}", "{\"id\":\"g2\"}"};
    raw_batch_in(&b, "gone", g, 2);
    raw_send(&r2, WIRE_F_MORE, &b);
    dbuf_free(&b);
    wait_applied(db, "gone", 2);
    close(r2.fd);
    wait_applied(db, "gone", UINT64_MAX);
    cr_assert_eq(dotdb_count(db, "gone", NULL, &n), DOTDB_ENOCOLL);
    /* and a batch after it is applied ahead again */
    const char *k1[] = {"{\"id\":\"k1\"}"}, *k2[] = {"{\"id\":\"k2\"}"};
    raw_put(&r, WIRE_F_MORE, k1, 1);
    raw_put(&r, 0, k2, 1);
    cr_assert_eq(raw_answer(&r, msg, sizeof msg), DOTDB_OK, "%s", msg);
    cr_assert_eq(coord_stat(db, "batches_applied_ahead"), ahead + 2);

    /* overtaken by another connection's write, which goes first: the
     * early part is undone and the batch applied whole at its end */
    const char *e1[] = {"{\"id\":\"e1\"}"}, *e2[] = {"{\"id\":\"e2\"}"};
    raw_put(&r, WIRE_F_MORE, e1, 1);
    wait_applied(db, "raw", 7);
    const char *doc = "{\"id\":\"between\"}";
    cr_assert_eq(dotdb_put(db, "raw", doc, strlen(doc), NULL), DOTDB_OK, "not held up");
    cr_assert(!doc_exists(db, "raw", "e1"));
    cr_assert_eq(coord_stat(db, "batches_ahead_undone"), undone + 3);
    before = commit_lsn(db);
    raw_put(&r, 0, e2, 1);
    cr_assert_eq(raw_answer(&r, msg, sizeof msg), DOTDB_OK, "%s", msg);
    cr_assert_eq(commit_lsn(db), before + 1);
    cr_assert(doc_exists(db, "raw", "e1") && doc_exists(db, "raw", "e2"));
    cr_assert(doc_exists(db, "raw", "between"));
    cr_assert_eq(coord_stat(db, "batches_applied_ahead"), ahead + 2, "that one was not");
    /* and, other writers being about, the next ones are applied at their end */
    const char *h1[] = {"{\"id\":\"h1\"}"}, *h2[] = {"{\"id\":\"h2\"}"};
    raw_put(&r, WIRE_F_MORE, h1, 1);
    raw_put(&r, 0, h2, 1);
    cr_assert_eq(raw_answer(&r, msg, sizeof msg), DOTDB_OK, "%s", msg);
    cr_assert(doc_exists(db, "raw", "h1") && doc_exists(db, "raw", "h2"));
    cr_assert_eq(coord_stat(db, "batches_applied_ahead"), ahead + 2);

    /* a restart finds exactly what was committed */
    close(r.fd);
    dotdb_close(db);
    h_stop(&c);
    h_start(&c);
    db = h_open(&c);
    cr_assert_eq(dotdb_count(db, "raw", NULL, &n), DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_assert_eq(n, 11, "a1-a4, k1, k2, between, e1, e2, h1, h2");
    cr_assert(!doc_exists(db, "raw", "d1"));
    cr_assert_eq(dotdb_count(db, "gone", NULL, &n), DOTDB_ENOCOLL);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* A reader process counting the collection while large batches are
 * applied as they come sees whole batches only: 0, N, 2N, ... */
Test(batches, a_reader_sees_whole_batches_while_they_are_applied_as_they_come, .timeout = 120)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    enum { ROUNDS = 4, N = 12000 };
    int stop[2];
    cr_assert_eq(pipe(stop), 0);
    pid_t kid = fork();
    if (kid == 0) {
        close(stop[1]);
        dotdb *rd = h_open(&c);
        struct pollfd pfd = {.fd = stop[0], .events = POLLIN};
        uint64_t counts = 0, partial = 0;
        while (poll(&pfd, 1, 0) == 0) {
            uint64_t n = 0;
            int rc = dotdb_count(rd, "whole", NULL, &n);
            if (rc == DOTDB_ENOCOLL)
                continue;
            if (rc != DOTDB_OK || n % N != 0)
                partial++;
            counts++;
        }
        dotdb_close(rd);
        _exit(partial ? 1 : counts ? 0 : 2);
    }
    close(stop[0]);
    dotdb *db = h_open(&c);
    uint64_t ahead = coord_stat(db, "batches_applied_ahead");
    for (int r = 0; r < ROUNDS; r++) {
        char prefix[8];
        snprintf(prefix, sizeof prefix, "r%d_", r);
        size_t len, stored = 0;
        char *t = docs_text(N, prefix, N, &len);
        cr_assert_gt(len, 1u << 20, "sent in fragments");
        cr_assert_eq(dotdb_put_many(db, "whole", t, len, &stored), DOTDB_OK, "%s",
                     dotdb_errmsg(db));
        cr_assert_eq(stored, N);
        free(t);
        usleep(20000); /* let the reader count between batches too */
    }
    cr_assert_eq(coord_stat(db, "batches_applied_ahead"), ahead + ROUNDS);
    close(stop[1]);
    int st = h_wait(kid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the reader saw part of a batch (1) or never counted (2): status %d", st);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}
