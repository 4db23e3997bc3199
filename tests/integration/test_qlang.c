/*
 * test_qlang.c - the query language end to end, against a real
 * coordinator: update operators applied atomically in the write path
 * (concurrent $inc from several processes), update_many / delete_many /
 * upsert as one batch, find with sort / projection / skip / limit, the
 * same results from 1 and 4 scan threads, explain, errors that change
 * nothing, and the resolved WAL replaying to the same state.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>

#include "harness.h"

static dotdb *open_threads(coord *c, int threads)
{
    dotdb_options o = {.no_autostart = 1, .query_threads = threads};
    dotdb *db = NULL;
    cr_assert_eq(dotdb_open(c->dir, &o, &db), DOTDB_OK, "%s", dotdb_errmsg(NULL));
    return db;
}

static void put_ok(dotdb *db, const char *coll, const char *json)
{
    int rc = dotdb_put(db, coll, json, strlen(json), NULL);
    cr_assert_eq(rc, DOTDB_OK, "put %s: %s", json, dotdb_errmsg(db));
}

static cJSON *get_doc(dotdb *db, const char *coll, const char *id)
{
    char *json = NULL;
    int rc = dotdb_get(db, coll, id, &json, NULL);
    cr_assert_eq(rc, DOTDB_OK, "get %s: %s", id, dotdb_errmsg(db));
    cJSON *j = cJSON_Parse(json);
    dotdb_free(json);
    cr_assert_not_null(j);
    return j;
}

/* All documents of a find, concatenated as JSON lines. */
static char *find_all(dotdb *db, const char *coll, const char *filter, const char *opts)
{
    dotdb_cursor *cur = NULL;
    int rc = dotdb_find(db, coll, filter, opts, &cur);
    cr_assert_eq(rc, DOTDB_OK, "find %s %s: %s", filter, opts ? opts : "", dotdb_errmsg(db));
    size_t cap = 1 << 16, len = 0;
    char *all = malloc(cap);
    cr_assert_not_null(all);
    all[0] = 0;
    char *doc;
    size_t n;
    while ((rc = dotdb_cursor_next(cur, &doc, &n)) == DOTDB_OK) {
        while (len + n + 2 > cap) {
            cap *= 2;
            all = realloc(all, cap);
            cr_assert_not_null(all);
        }
        memcpy(all + len, doc, n);
        len += n;
        all[len++] = '\n';
        all[len] = 0;
        dotdb_free(doc);
    }
    cr_assert_eq(rc, DOTDB_EDONE, "cursor: %s", dotdb_errmsg(db));
    dotdb_cursor_close(cur);
    return all;
}

static int inc_worker(coord *c, int n)
{
    dotdb *db = open_threads(c, 1);
    for (int i = 0; i < n; i++) {
        const char *u = "{\"$inc\":{\"n\":1,\"f\":0.5}}";
        if (dotdb_update(db, "ctr", "x", u, strlen(u)) != DOTDB_OK)
            return 1;
    }
    dotdb_close(db);
    return 0;
}

Test(query, concurrent_inc_from_ten_processes_loses_nothing, .timeout = 120)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    put_ok(db, "ctr", "{\"id\":\"x\",\"n\":0,\"f\":0}");
    pid_t kids[10];
    for (int k = 0; k < 10; k++) {
        kids[k] = fork();
        cr_assert_geq(kids[k], 0);
        if (kids[k] == 0)
            _exit(inc_worker(&c, 100));
    }
    for (int k = 0; k < 10; k++) {
        int st = h_wait(kids[k]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d failed", k);
    }
    cJSON *d = get_doc(db, "ctr", "x");
    cr_expect_eq(cJSON_GetObjectItem(d, "n")->valuedouble, 1000.0);
    cr_expect_eq(cJSON_GetObjectItem(d, "f")->valuedouble, 500.0);
    cJSON_Delete(d);
    dotdb_close(db);
    /* The WAL holds what the operators resolved to: a restart replays the
     * same state. */
    h_stop(&c);
    h_start(&c);
    db = h_open(&c);
    d = get_doc(db, "ctr", "x");
    cr_expect_eq(cJSON_GetObjectItem(d, "n")->valuedouble, 1000.0);
    cJSON_Delete(d);
    dotdb_close(db);
    h_cleanup(&c);
}

static void load_users(dotdb *db, int n)
{
    static const char *cities[] = {"Oslo", "Paris", "Lima", "Kyoto", "Accra"};
    char buf[256];
    for (int base = 0; base < n; base += 1000) {
        size_t cap = 1000 * 256, len = 0;
        char *batch = malloc(cap);
        cr_assert_not_null(batch);
        for (int i = base; i < base + 1000 && i < n; i++)
            len += (size_t)snprintf(batch + len, cap - len,
                                    "{\"id\":\"u%06d\",\"age\":%d,\"city\":\"%s\",\"score\":%d.5,"
                                    "\"tags\":[\"t%d\",\"t%d\"]}\n",
                                    i, i % 80, cities[i % 5], i % 100, i % 3, i % 7);
        size_t stored = 0;
        int rc = dotdb_put_many(db, "users", batch, len, &stored);
        cr_assert_eq(rc, DOTDB_OK, "put_many: %s", dotdb_errmsg(db));
        free(batch);
    }
    (void)buf;
}

Test(query, one_and_four_threads_give_the_same_results_in_the_same_order, .timeout = 120)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *one = open_threads(&c, 1), *four = open_threads(&c, 4);
    load_users(one, 100000);
    const char *filters[] = {"{}", "{\"age\":{\"$gt\":25}}",
                             "{\"$or\":[{\"city\":\"Oslo\"},{\"tags\":\"t6\"}]}",
                             "{\"city\":{\"$in\":[\"Lima\",\"Kyoto\"]},\"age\":{\"$lt\":10}}"};
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++) {
        uint64_t n1 = 0, n4 = 0;
        cr_assert_eq(dotdb_count(one, "users", filters[i], &n1), DOTDB_OK);
        cr_assert_eq(dotdb_count(four, "users", filters[i], &n4), DOTDB_OK);
        cr_expect_eq(n1, n4, "count %s: %" PRIu64 " vs %" PRIu64, filters[i], n1, n4);
        char *a = find_all(one, "users", filters[i], NULL);
        char *b = find_all(four, "users", filters[i], NULL);
        cr_expect_str_eq(a, b, "find %s differs between 1 and 4 threads", filters[i]);
        free(a);
        free(b);
    }
    uint64_t n = 0;
    cr_assert_eq(dotdb_count(four, "users", "{\"age\":{\"$gt\":25}}", &n), DOTDB_OK);
    /* ages are i % 80: 54 of every 80 are > 25 */
    cr_expect_eq(n, 100000 / 80 * 54, "count age > 25: %" PRIu64, n);
    const char *opts = "{\"sort\":{\"age\":-1,\"id\":1},\"skip\":5,\"limit\":20}";
    char *a = find_all(one, "users", "{\"city\":\"Paris\"}", opts);
    char *b = find_all(four, "users", "{\"city\":\"Paris\"}", opts);
    cr_expect_str_eq(a, b);
    free(a);
    free(b);
    dotdb_close(one);
    dotdb_close(four);
    h_cleanup(&c);
}

Test(query, sort_projection_skip_limit_and_explain, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    put_ok(db, "p", "{\"id\":\"a\",\"age\":30,\"name\":\"Ann\",\"pref\":{\"theme\":\"dark\",\"lang\":\"en\"}}");
    put_ok(db, "p", "{\"id\":\"b\",\"age\":25.5,\"name\":\"Bob\",\"pref\":{\"theme\":\"light\"}}");
    put_ok(db, "p", "{\"id\":\"c\",\"name\":\"Cy\"}");
    put_ok(db, "p", "{\"id\":\"d\",\"age\":\"old\",\"name\":\"Di\"}");
    put_ok(db, "p", "{\"id\":\"e\",\"age\":41,\"name\":\"Ed\"}");
    /* MongoDB order: missing/null < numbers < strings. */
    char *s = find_all(db, "p", "{}", "{\"sort\":{\"age\":1},\"projection\":{\"name\":1}}");
    cr_expect_str_eq(s, "{\"id\":\"c\",\"name\":\"Cy\"}\n{\"id\":\"b\",\"name\":\"Bob\"}\n"
                        "{\"id\":\"a\",\"name\":\"Ann\"}\n{\"id\":\"e\",\"name\":\"Ed\"}\n"
                        "{\"id\":\"d\",\"name\":\"Di\"}\n");
    free(s);
    s = find_all(db, "p", "{\"age\":{\"$gt\":25}}",
                 "{\"sort\":{\"age\":-1},\"skip\":1,\"limit\":1,\"projection\":{\"id\":0,\"pref.theme\":1}}");
    cr_expect_str_eq(s, "{\"pref\":{\"theme\":\"dark\"}}\n");
    free(s);
    char *plan = NULL;
    cr_assert_eq(dotdb_explain(db, "p", "{\"id\":\"a\"}", NULL, &plan, NULL), DOTDB_OK);
    cr_expect_not_null(strstr(plan, "\"plan\":\"IDLOOKUP\""), "%s", plan);
    cr_expect_not_null(strstr(plan, "\"returned\":1"), "%s", plan);
    dotdb_free(plan);
    cr_assert_eq(dotdb_explain(db, "p", "{\"age\":{\"$gte\":30}}", NULL, &plan, NULL), DOTDB_OK);
    cr_expect_not_null(strstr(plan, "\"plan\":\"COLLSCAN\""), "%s", plan);
    cr_expect_not_null(strstr(plan, "\"examined\":5"), "%s", plan);
    cr_expect_not_null(strstr(plan, "\"returned\":2"), "%s", plan);
    dotdb_free(plan);
    /* Bad filters and options are refused before anything runs. */
    dotdb_cursor *cur = NULL;
    cr_expect_eq(dotdb_find(db, "p", "{\"age\":{\"$foo\":1}}", NULL, &cur), DOTDB_EINVAL);
    cr_expect_not_null(strstr(dotdb_errmsg(db), "$foo"), "%s", dotdb_errmsg(db));
    cr_expect_eq(dotdb_find(db, "p", "{}", "{\"sort\":{\"age\":2}}", &cur), DOTDB_EINVAL);
    cr_expect_eq(dotdb_find(db, "p", "{}", "{\"projection\":{\"a\":1,\"b\":0}}", &cur),
                 DOTDB_EINVAL);
    cr_expect_eq(dotdb_find(db, "p", "{}", "{\"batch\":3}", &cur), DOTDB_EINVAL);
    cr_expect_null(cur);
    dotdb_close(db);
    h_cleanup(&c);
}

Test(query, update_many_delete_many_and_upsert_are_atomic_batches, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    load_users(db, 3000);
    uint64_t matched = 0, modified = 0, deleted = 0, n = 0;
    int rc = dotdb_update_many(db, "users", "{\"city\":\"Oslo\"}",
                               "{\"$set\":{\"vip\":true},\"$inc\":{\"age\":1}}", &matched,
                               &modified);
    cr_assert_eq(rc, DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_expect_eq(matched, 600);
    cr_expect_eq(modified, 600);
    cr_assert_eq(dotdb_count(db, "users", "{\"vip\":true}", &n), DOTDB_OK);
    cr_expect_eq(n, 600);
    /* Setting what is already there matches but modifies nothing. */
    rc = dotdb_update_many(db, "users", "{\"vip\":true}", "{\"$set\":{\"vip\":true}}", &matched,
                           &modified);
    cr_assert_eq(rc, DOTDB_OK);
    cr_expect_eq(matched, 600);
    cr_expect_eq(modified, 0);
    /* A failing update changes nothing at all, even for documents where
     * it would have worked: $inc on a string fails on the first one. */
    put_ok(db, "users", "{\"id\":\"zz\",\"city\":\"Oslo\",\"age\":\"n/a\"}");
    rc = dotdb_update_many(db, "users", "{\"city\":\"Oslo\"}", "{\"$inc\":{\"age\":100}}",
                           &matched, &modified);
    cr_expect_eq(rc, DOTDB_EINVAL);
    cr_expect_not_null(strstr(dotdb_errmsg(db), "$inc"), "%s", dotdb_errmsg(db));
    cr_assert_eq(dotdb_count(db, "users", "{\"age\":{\"$gt\":99}}", &n), DOTDB_OK);
    cr_expect_eq(n, 0, "a failed update_many left %" PRIu64 " changed documents", n);
    /* id cannot change; conflicting paths are refused. */
    const char *u = "{\"$set\":{\"id\":\"other\"}}";
    cr_expect_eq(dotdb_update(db, "users", "u000001", u, strlen(u)), DOTDB_EINVAL);
    u = "{\"$set\":{\"a\":1,\"a.b\":2}}";
    cr_expect_eq(dotdb_update(db, "users", "u000001", u, strlen(u)), DOTDB_EINVAL);
    u = "{\"$set\":{\"x\":1}}";
    cr_expect_eq(dotdb_update(db, "users", "nobody", u, strlen(u)), DOTDB_ENOTFOUND);
    /* Upsert by id and by filter. */
    int upserted = 0;
    rc = dotdb_update_ex(db, "users", "nobody", u, strlen(u), DOTDB_UPSERT, &upserted);
    cr_assert_eq(rc, DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_expect_eq(upserted, 1);
    cJSON *d = get_doc(db, "users", "nobody");
    cr_expect_eq(cJSON_GetObjectItem(d, "x")->valuedouble, 1.0);
    cJSON_Delete(d);
    char newid[DOTDB_ID_MAX + 1];
    rc = dotdb_update_many_ex(db, "users", "{\"email\":\"q@x.org\",\"age\":{\"$gt\":5}}",
                              "{\"$set\":{\"name\":\"Q\"}}", DOTDB_UPSERT, &matched, &modified,
                              newid);
    cr_assert_eq(rc, DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_expect_eq(matched, 0);
    cr_expect_eq(strlen(newid), 24u, "upserted id \"%s\"", newid);
    d = get_doc(db, "users", newid);
    cr_expect_str_eq(cJSON_GetObjectItem(d, "email")->valuestring, "q@x.org");
    cr_expect_str_eq(cJSON_GetObjectItem(d, "name")->valuestring, "Q");
    cr_expect_null(cJSON_GetObjectItem(d, "age"));
    cJSON_Delete(d);
    /* delete_many */
    rc = dotdb_delete_many(db, "users", "{\"age\":{\"$lt\":10}}", &deleted);
    cr_assert_eq(rc, DOTDB_OK, "%s", dotdb_errmsg(db));
    cr_assert_eq(dotdb_count(db, "users", "{\"age\":{\"$lt\":10}}", &n), DOTDB_OK);
    cr_expect_eq(n, 0);
    cr_expect_gt(deleted, 300);
    uint64_t before = 0, vip_before = 0;
    cr_assert_eq(dotdb_count(db, "users", NULL, &before), DOTDB_OK);
    cr_assert_eq(dotdb_count(db, "users", "{\"vip\":true}", &vip_before), DOTDB_OK);
    cr_expect_lt(vip_before, 600u);
    /* Restart: the resolved WAL gives the same state. */
    dotdb_close(db);
    h_stop(&c);
    h_start(&c);
    db = h_open(&c);
    cr_assert_eq(dotdb_count(db, "users", NULL, &n), DOTDB_OK);
    cr_expect_eq(n, before);
    cr_assert_eq(dotdb_count(db, "users", "{\"vip\":true}", &n), DOTDB_OK);
    cr_expect_eq(n, vip_before);
    rc = dotdb_delete_many(db, "users", "{}", &deleted);
    cr_assert_eq(rc, DOTDB_OK);
    cr_assert_eq(dotdb_count(db, "users", NULL, &n), DOTDB_OK);
    cr_expect_eq(n, 0);
    dotdb_close(db);
    h_cleanup(&c);
}
