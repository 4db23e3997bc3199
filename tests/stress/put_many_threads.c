/*
 * put_many_threads.c - dotdb_put_many's two encoders (lib/read.c) under
 * ThreadSanitizer: scripts/test.sh builds it with -fsanitize=thread, where
 * Criterion cannot run.  A coordinator is started on a temporary
 * directory; two threads of this process, a handle each, each send
 * texts of megabytes (cut into chunks that the calling thread and a
 * helper encode): plain JSON lines, a document spanning many lines whose
 * lines open objects (a guessed chunk start that does not hold), and a
 * bad document near the end.  Each result is checked.
 *
 *   put_many_threads DOTDBD [ROUNDS]
 *
 * Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dotdb.h"

static char dir[] = "/tmp/dotdb-pmt.XXXXXX";
static dotdb_options opts;
static int rounds = 2;
static int passed, failed;
static pthread_mutex_t tally = PTHREAD_MUTEX_INITIALIZER;

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->p ? t->p + t->len : NULL, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (k < 0)
            abort();
        if ((size_t)k < t->cap - t->len) {
            t->len += (size_t)k;
            return;
        }
        t->cap = t->cap ? 2 * t->cap : 1 << 20;
        if ((t->p = realloc(t->p, t->cap)) == NULL)
            abort();
    }
}

static void check(dotdb *db, int ok, const char *what, const char *coll)
{
    pthread_mutex_lock(&tally);
    if (ok)
        passed++;
    else {
        failed++;
        fprintf(stderr, "FAIL: %s (%s): %s\n", what, coll, dotdb_errmsg(db));
    }
    pthread_mutex_unlock(&tally);
}

static uint64_t count(dotdb *db, const char *coll)
{
    uint64_t n = 0;
    if (dotdb_count(db, coll, NULL, &n) != DOTDB_OK)
        return UINT64_MAX;
    return n;
}

static void *writer(void *arg)
{
    int w = (int)(long)arg;
    char coll[32];
    dotdb *db;
    if (dotdb_open(dir, &opts, &db) != DOTDB_OK) {
        check(NULL, 0, "dotdb_open", dir);
        return NULL;
    }
    for (int r = 0; r < rounds; r++) {
        /* plain lines: every document stored */
        text t = {0};
        size_t n = 12000, stored = 0;
        for (size_t i = 0; i < n; i++)
            add(&t, "{\"id\":\"d%zu\",\"v\":%zu,\"pad\":\"%0200d\"}\n", i, i, 0);
        snprintf(coll, sizeof coll, "lines_%d_%d", w, r);
        int rc = dotdb_put_many(db, coll, t.p, t.len, &stored);
        check(db, rc == DOTDB_OK && stored == n && count(db, coll) == n, "JSON lines stored whole", coll);

        /* a document of many lines, each opening an object */
        t.len = 0;
        for (size_t i = 0; i < 2000; i++)
            add(&t, "{\"id\":\"h%zu\",\"pad\":\"%0200d\"}\n", i, 0);
        add(&t, "{\"id\":\"big\",\"parts\":[\n");
        for (size_t i = 0; i < 50000; i++)
            add(&t, "{\"k\":%zu}%s\n", i, i + 1 < 50000 ? "," : "");
        add(&t, "]}\n");
        for (size_t i = 0; i < 3000; i++)
            add(&t, "{\"id\":\"t%zu\",\"pad\":\"%0200d\"}\n", i, 0);
        snprintf(coll, sizeof coll, "multi_%d_%d", w, r);
        rc = dotdb_put_many(db, coll, t.p, t.len, &stored);
        check(db, rc == DOTDB_OK && stored == 5001 && count(db, coll) == 5001,
              "a multi-line document is one document", coll);

        /* a bad document near the end: named, nothing stored */
        t.len = 0;
        for (size_t i = 0; i < n; i++)
            add(&t, i == n - 7 ? "{\"id\":\"x%zu\",\"v\":}\n" : "{\"id\":\"x%zu\",\"pad\":\"%0200d\"}\n",
                i, 0);
        snprintf(coll, sizeof coll, "bad_%d_%d", w, r);
        check(db, dotdb_create_collection(db, coll) == DOTDB_OK, "create a collection", coll);
        rc = dotdb_put_many(db, coll, t.p, t.len, &stored);
        char want[64];
        snprintf(want, sizeof want, "document %zu:", n - 7);
        check(db, rc == DOTDB_EJSON && stored == 0 && strstr(dotdb_errmsg(db), want) != NULL,
              "a bad document is named", coll);
        check(db, count(db, coll) == 0, "nothing of a failed text is stored", coll);
        free(t.p);
    }
    dotdb_close(db);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: put_many_threads DOTDBD [ROUNDS]\n");
        return 2;
    }
    if (argc > 2)
        rounds = atoi(argv[2]);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    opts.coordinator_path = argv[1];
    opts.no_autostart = 1;
    if (dotdb_coordinator_start(dir, NULL, &opts) != DOTDB_OK) {
        fprintf(stderr, "put_many_threads: %s\n", dotdb_errmsg(NULL));
        return 1;
    }
    pthread_t th[2];
    for (long i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, writer, (void *)i) != 0) {
            fprintf(stderr, "put_many_threads: pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    if (dotdb_coordinator_stop(dir, 0) != DOTDB_OK)
        fprintf(stderr, "put_many_threads: the coordinator did not stop\n");
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "put_many_threads: could not remove %s\n", dir);
    printf("put_many_threads: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
