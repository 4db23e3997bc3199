/*
 * test_txn.c - optimistic transactions against a real coordinator:
 * atomic batches, snapshot reads, write-write and (serializable)
 * read-write conflicts, aborts, and transactions that create collections.
 */
#include "harness.h"

#include <pthread.h>

/* v of document id in coll as the transaction sees it: -1 not found,
 * -100 + rc another failure, -200 no integer "v".  No Criterion assertion:
 * threads call it too. */
static long thread_view_v(dotdb_txn *t, const char *coll, const char *id)
{
    dotdb_doc d;
    dotdb_value v;
    int rc = dotdb_txn_get(t, coll, id, &d);
    if (rc != DOTDB_OK)
        return rc == DOTDB_ENOTFOUND || rc == DOTDB_ENOCOLL ? -1 : -100 + rc;
    if (dotdb_doc_get(&d, "v", &v) != DOTDB_OK || v.type != DOTDB_T_INT)
        return -200;
    return (long)v.i;
}

static long view_v(dotdb_txn *t, const char *coll, const char *id)
{
    long v = thread_view_v(t, coll, id);
    cr_assert_neq(v, -200, "%s has no integer v", id);
    return v;
}

static void tput(dotdb_txn *t, const char *coll, const char *id, long v)
{
    char doc[128];
    int n = snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"v\":%ld}", id, v);
    cr_assert_eq(dotdb_txn_put(t, coll, doc, (size_t)n, NULL), DOTDB_OK);
}

static void put(dotdb *db, const char *coll, const char *id, long v)
{
    char doc[128];
    int n = snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"v\":%ld}", id, v);
    cr_assert_eq(dotdb_put(db, coll, doc, (size_t)n, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
}

static long get_v(dotdb *db, const char *coll, const char *id)
{
    dotdb_txn *t;
    cr_assert_eq(dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t), DOTDB_OK);
    long v = view_v(t, coll, id);
    dotdb_txn_abort(t);
    return v;
}

Test(txn, a_transaction_into_a_new_collection_commits_atomically, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    dotdb_txn *t;
    cr_assert_eq(dotdb_txn_begin(db, 0, &t), DOTDB_OK);
    tput(t, "fresh", "a", 1);
    tput(t, "fresh", "b", 2);
    tput(t, "other_fresh", "c", 3);
    cr_expect_eq(view_v(t, "fresh", "a"), 1, "a transaction reads its own buffered writes");
    cr_assert_eq(dotdb_txn_commit(t), DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_expect_eq(get_v(db, "fresh", "a"), 1);
    cr_expect_eq(get_v(db, "fresh", "b"), 2);
    cr_expect_eq(get_v(db, "other_fresh", "c"), 3);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(txn, write_write_conflict_fails_the_later_commit_and_stores_nothing, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *a = h_open(&c), *b = h_open(&c);
    put(a, "acct", "x", 100);
    put(a, "acct", "y", 0);
    dotdb_txn *ta, *tb;
    cr_assert_eq(dotdb_txn_begin(a, 0, &ta), DOTDB_OK);
    cr_assert_eq(dotdb_txn_begin(b, 0, &tb), DOTDB_OK);
    /* both move money from x; only one may win */
    tput(ta, "acct", "x", view_v(ta, "acct", "x") - 10);
    tput(ta, "acct", "y", view_v(ta, "acct", "y") + 10);
    tput(tb, "acct", "x", view_v(tb, "acct", "x") - 30);
    tput(tb, "acct", "z", 30);
    cr_assert_eq(dotdb_txn_commit(ta), DOTDB_OK);
    int rc = dotdb_txn_commit(tb);
    cr_assert_eq(rc, DOTDB_ECONFLICT, "the second writer of x conflicts: %s", dotdb_strerror(rc));
    cr_expect(strstr(dotdb_errmsg(b), "\"x\"") != NULL, "the message names the document: %s",
              dotdb_errmsg(b));
    cr_expect_eq(get_v(a, "acct", "x"), 90);
    cr_expect_eq(get_v(a, "acct", "y"), 10);
    cr_expect_eq(get_v(a, "acct", "z"), -1, "nothing of the failed transaction is stored");
    dotdb_close(a);
    dotdb_close(b);
    h_stop(&c);
    h_cleanup(&c);
}

Test(txn, snapshot_reads_repeat_while_another_process_writes, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    put(db, "s", "k", 1);
    dotdb_txn *t;
    cr_assert_eq(dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t), DOTDB_OK);
    cr_assert_eq(view_v(t, "s", "k"), 1);
    pid_t p = fork();
    if (p == 0) {
        dotdb *w = h_open(&c);
        for (int i = 2; i <= 50; i++)
            put(w, "s", "k", i);
        put(w, "s", "new", 1);
        dotdb_close(w);
        _exit(0);
    }
    h_wait(p);
    cr_expect_eq(view_v(t, "s", "k"), 1, "the snapshot does not move");
    cr_expect_eq(view_v(t, "s", "new"), -1, "nor sees later documents");
    dotdb_txn_abort(t);
    cr_expect_eq(get_v(db, "s", "k"), 50, "a new snapshot sees the other process's writes");
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(txn, serializable_transactions_conflict_on_what_they_read, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    put(db, "s", "limit", 5);
    put(db, "s", "used", 0);
    /* snapshot isolation allows write skew; serializable does not */
    dotdb_txn *t;
    cr_assert_eq(dotdb_txn_begin(db, 0, &t), DOTDB_OK);
    long lim = view_v(t, "s", "limit");
    put(db, "s", "limit", 1); /* changed after t's snapshot, t only read it */
    tput(t, "s", "used", lim);
    cr_expect_eq(dotdb_txn_commit(t), DOTDB_OK, "snapshot isolation: reads are not checked");
    cr_assert_eq(dotdb_txn_begin(db, DOTDB_TXN_SERIALIZABLE, &t), DOTDB_OK);
    lim = view_v(t, "s", "limit");
    put(db, "s", "limit", 2);
    tput(t, "s", "used", lim);
    cr_expect_eq(dotdb_txn_commit(t), DOTDB_ECONFLICT, "serializable: a changed read conflicts");
    cr_expect_eq(get_v(db, "s", "used"), 5);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(txn, abort_and_delete_and_a_collection_created_after_the_snapshot, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    put(db, "d", "gone", 1);
    dotdb_txn *t;
    cr_assert_eq(dotdb_txn_begin(db, 0, &t), DOTDB_OK);
    tput(t, "d", "kept", 1);
    cr_assert_eq(dotdb_txn_delete(t, "d", "gone"), DOTDB_OK);
    dotdb_txn_abort(t);
    cr_expect_eq(get_v(db, "d", "gone"), 1, "an aborted transaction changes nothing");
    cr_expect_eq(get_v(db, "d", "kept"), -1);
    cr_assert_eq(dotdb_txn_begin(db, 0, &t), DOTDB_OK);
    cr_assert_eq(dotdb_txn_delete(t, "d", "gone"), DOTDB_OK);
    cr_assert_eq(dotdb_txn_commit(t), DOTDB_OK);
    cr_expect_eq(get_v(db, "d", "gone"), -1);
    /* another process creates "late" after t's snapshot: t's write into it conflicts */
    cr_assert_eq(dotdb_txn_begin(db, 0, &t), DOTDB_OK);
    put(db, "late", "a", 1);
    tput(t, "late", "b", 2);
    cr_expect_eq(dotdb_txn_commit(t), DOTDB_ECONFLICT);
    cr_expect(strstr(dotdb_errmsg(db), "created after snapshot") != NULL, "%s", dotdb_errmsg(db));
    cr_expect_eq(get_v(db, "late", "b"), -1);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* Threads sharing one handle (dotdb.h allows it), each with its own
 * transactions: begin/get/abort point reads and read-write transactions
 * whose buffered writes only they see.  Ended transactions' memory is
 * reused by the next begin on any thread (lib/read.c), so a transaction
 * that kept anything of an earlier one shows here. */
typedef struct {
    dotdb *db;
    int me;
    int bad;
    char why[160];
} share_arg;

static void *share_worker(void *p)
{
    share_arg *a = p;
    char mine[32], other[32];
    snprintf(mine, sizeof mine, "t%d", a->me);
    snprintf(other, sizeof other, "t%d", (a->me + 1) % 4);
    for (int i = 0; i < 3000 && !a->bad; i++) {
        dotdb_txn *t;
        char id[32];
        snprintf(id, sizeof id, "k%d", (i * 7 + a->me) % 50);
        if (dotdb_txn_begin(a->db, DOTDB_TXN_READONLY, &t) != DOTDB_OK) {
            snprintf(a->why, sizeof a->why, "begin: %s", dotdb_errmsg(a->db));
            a->bad = 1;
            break;
        }
        long v = thread_view_v(t, "shared", id);
        long o = thread_view_v(t, "shared", other);
        dotdb_txn_abort(t);
        /* the other thread's key: 0 or a committed write (i % 100 == 50),
         * never one it aborted or had only buffered */
        if (v != (i * 7 + a->me) % 50 || (o != 0 && (o < 1000000 || (o - 1000000) % 100 != 50))) {
            snprintf(a->why, sizeof a->why, "%s read %ld, %s read %ld", id, v, other, o);
            a->bad = 1;
            break;
        }
        if (i % 50 == 0) {
            if (dotdb_txn_begin(a->db, 0, &t) != DOTDB_OK) {
                a->bad = 1;
                break;
            }
            char doc[96];
            int n = snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"v\":%d}", mine, 1000000 + i);
            int rc = dotdb_txn_put(t, "shared", doc, (size_t)n, NULL);
            long seen = thread_view_v(t, "shared", mine);
            if (rc != DOTDB_OK || seen != 1000000 + i) {
                snprintf(a->why, sizeof a->why, "own buffered write: rc %d, read %ld", rc, seen);
                a->bad = 1;
                dotdb_txn_abort(t);
                break;
            }
            if (i % 100 == 0) {
                dotdb_txn_abort(t); /* never stored: no one may see 1000000 + i */
            } else if ((rc = dotdb_txn_commit(t)) != DOTDB_OK) {
                snprintf(a->why, sizeof a->why, "commit: %s", dotdb_errmsg(a->db));
                a->bad = 1;
                break;
            }
        }
    }
    return NULL;
}

Test(txn, threads_sharing_one_handle_keep_their_transactions_apart, .timeout = 120)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    for (int k = 0; k < 50; k++) {
        char id[16];
        snprintf(id, sizeof id, "k%d", k);
        put(db, "shared", id, k);
    }
    for (int k = 0; k < 4; k++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", k);
        put(db, "shared", id, 0);
    }
    pthread_t th[4];
    share_arg a[4];
    for (int k = 0; k < 4; k++) {
        a[k] = (share_arg){.db = db, .me = k};
        cr_assert_eq(pthread_create(&th[k], NULL, share_worker, &a[k]), 0);
    }
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(pthread_join(th[k], NULL), 0);
        cr_expect_eq(a[k].bad, 0, "thread %d: %s", k, a[k].why);
    }
    /* every thread's last committed write is there, the aborted ones not */
    for (int k = 0; k < 4; k++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", k);
        long v = get_v(db, "shared", id);
        cr_expect(v == 0 || (v > 1000000 && (v - 1000000) % 100 == 50), "%s = %ld", id, v);
    }
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* A handle holds up to 64 snapshots at once (RDR_SLOTS), the idle slot an
 * ended transaction keeps for the next one included: all 64 can be open,
 * the 65th is refused with a message, and ending one makes room again. */
Test(txn, a_handle_holds_64_snapshots_and_refuses_the_65th, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    put(db, "s", "a", 7);
    cr_assert_eq(get_v(db, "s", "a"), 7); /* leaves an ended transaction behind */
    dotdb_txn *t[65];
    for (int i = 0; i < 64; i++)
        cr_assert_eq(dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t[i]), DOTDB_OK, "txn %d: %s", i,
                     dotdb_errmsg(db));
    cr_assert_eq(dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t[64]), DOTDB_EBUSY);
    cr_expect(strstr(dotdb_errmsg(db), "open snapshots") != NULL, "%s", dotdb_errmsg(db));
    for (int i = 0; i < 64; i++)
        cr_expect_eq(view_v(t[i], "s", "a"), 7);
    dotdb_txn_abort(t[10]);
    cr_assert_eq(dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t[10]), DOTDB_OK);
    /* 63 open and the 64th's slot kept by its ended transaction: a cursor
     * takes that slot */
    dotdb_txn_abort(t[63]);
    dotdb_cursor *cur;
    cr_assert_eq(dotdb_find(db, "s", NULL, NULL, &cur), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_doc d;
    cr_expect_eq(dotdb_cursor_next_view(cur, &d), DOTDB_OK);
    cr_assert_eq(dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t[63]), DOTDB_EBUSY);
    dotdb_cursor_close(cur);
    cr_assert_eq(dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t[63]), DOTDB_OK);
    for (int i = 0; i < 64; i++)
        dotdb_txn_abort(t[i]);
    cr_expect_eq(get_v(db, "s", "a"), 7);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* An ended transaction kept for reuse belongs to the connection it ran
 * on: after the coordinator restarts, the next transaction runs on the
 * new one and sees what was committed. */
Test(txn, transactions_after_a_coordinator_restart_use_the_new_connection, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    put(db, "r", "a", 1);
    cr_assert_eq(get_v(db, "r", "a"), 1);
    h_stop(&c);
    h_start(&c);
    long v = -1;
    for (int i = 0; i < 50 && v != 1; i++) { /* the first call may find it still starting */
        dotdb_txn *t;
        if (dotdb_txn_begin(db, DOTDB_TXN_READONLY, &t) == DOTDB_OK) {
            v = view_v(t, "r", "a");
            dotdb_txn_abort(t);
        }
    }
    cr_expect_eq(v, 1, "%s", dotdb_errmsg(db));
    put(db, "r", "a", 2);
    cr_expect_eq(get_v(db, "r", "a"), 2);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}
