/*
 * gen_corpus.c - writes the seed corpora of tests/fuzz/corpus/ (run by
 * hand: `build-fuzz/tests/fuzz/gen_corpus tests/fuzz/corpus`; files that
 * exist are overwritten with the same bytes).  Binary seeds are made with
 * the real encoders (codec_from_json, batch_add, wal_append, seg_add), so
 * every target starts from well-formed input and mutates from there.
 * Crash inputs found later are added to the corpora by hand as
 * regression-* files (scripts/fuzz.sh says how); this program does not
 * touch them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "dotdb.h"
#include "fuzz_util.h"
#include "segment.h"
#include "wal.h"
#include "wire.h"

static const char *root;

static void put(const char *target, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    fuzz_write_file(path, p, n);
}

static void put_str(const char *target, const char *name, const char *s)
{
    put(target, name, s, strlen(s));
}

static void enc_doc(const char *json, dbuf *out)
{
    char err[256];
    if (codec_from_json(json, strlen(json), NULL, "gen", out, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "gen_corpus: %s: %s\n", json, err);
        exit(1);
    }
}

static void enc_val(const char *json, dbuf *out)
{
    char err[256];
    if (codec_value_from_json(json, strlen(json), NULL, out, err, sizeof err) != 0) {
        fprintf(stderr, "gen_corpus: %s: %s\n", json, err);
        exit(1);
    }
}

static const char *docs[] = {
    "{}",
    "{\"id\":\"a1\",\"name\":\"Ada\",\"age\":36,\"tags\":[\"x\",\"y\"],\"addr\":{\"city\":\"Oslo\","
    "\"zip\":\"0150\"}}",
    "{\"id\":\"n\",\"i8\":-5,\"i16\":300,\"i32\":-70000,\"i64\":9007199254740993,\"d\":0.1,"
    "\"neg\":-0.0,\"big\":1e300,\"t\":true,\"f\":false,\"z\":null}",
    "{\"id\":\"s\",\"esc\":\"q\\\"b\\\\n\\n\\t\\u0001\\u0000end\",\"uni\":\"\\u00e9\\u4e2d"
    "\\ud83d\\ude00\",\"raw\":\"caf\xc3\xa9\"}",
    "{\"id\":\"deep\",\"a\":{\"b\":{\"c\":{\"d\":{\"e\":[[[[1]]]]}}}}}",
    "{\"id\":\"arr\",\"a\":[1,2.5,\"three\",null,true,{\"k\":[]},[]],\"m\":[{\"x\":1,\"y\":2},"
    "{\"x\":3}]}",
    "{\"id\":\"keys\",\"b\":1,\"a\":2,\"ab\":3,\"\":4,\"aa\":5,\"B\":6}",
};

static void codec_and_json(void)
{
    char name[64];
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        dbuf b;
        dbuf_init(&b);
        enc_doc(docs[i], &b);
        snprintf(name, sizeof name, "seed-doc-%zu", i);
        put("fuzz_codec", name, b.data, b.len);
        put_str("fuzz_json", name, docs[i]);
        dbuf_free(&b);
    }
    /* Wider containers: 2-byte widths and varints. */
    dbuf t, b;
    dbuf_init(&t);
    dbuf_init(&b);
    dbuf_append(&t, "{\"id\":\"wide\",\"arr\":[", 20);
    for (int i = 0; i < 300; i++)
        dbuf_append(&t, i ? ",7" : "7", i ? 2 : 1);
    dbuf_append(&t, "],\"s\":\"", 7);
    for (int i = 0; i < 200; i++)
        dbuf_putc(&t, (uint8_t)('a' + i % 26));
    dbuf_append(&t, "\"}", 3);
    enc_doc((const char *)t.data, &b);
    put("fuzz_codec", "seed-wide", b.data, b.len);
    put("fuzz_json", "seed-wide", t.data, t.len - 1);
    dbuf_free(&t);
    dbuf_free(&b);
    static const char *vals[] = {"[1,[2,[3]],{\"a\":{}}]", "\"just a string\"", "-12345678901",
                                 "1.5e-7", "null"};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        dbuf_init(&b);
        enc_val(vals[i], &b);
        snprintf(name, sizeof name, "seed-val-%zu", i);
        put("fuzz_codec", name, b.data, b.len);
        put_str("fuzz_json", name, vals[i]);
        dbuf_free(&b);
    }
    put_str("fuzz_json", "seed-ws", " \t\r\n{ \"id\" : \"w\" , \"x\" : [ 1 , 2 ] } \n");
    put_str("fuzz_json", "seed-num", "[0,-0,1E2,1e-2,-1.5E+3,9223372036854775807,"
                                     "-9223372036854775808,9223372036854775808,123.456e10]");
}

static void query(void)
{
    static const struct { const char *name, *text; } q[] = {
        {"seed-filter-cmp", "f{\"age\":{\"$gte\":30,\"$lt\":40},\"name\":{\"$ne\":\"Bob\"}}"},
        {"seed-filter-logic", "f{\"$or\":[{\"tags\":\"x\"},{\"addr.city\":{\"$in\":[\"Oslo\","
                              "\"Lima\"]}}],\"$nor\":[{\"z\":{\"$exists\":true}}]}"},
        {"seed-filter-array", "f{\"tags\":{\"$all\":[\"x\"],\"$size\":2},\"m\":{\"$elemMatch\":"
                              "{\"x\":{\"$gt\":1}}}}"},
        {"seed-filter-misc", "f{\"name\":{\"$regex\":\"^a\",\"$options\":\"i\"},\"age\":{\"$mod\":"
                             "[5,1],\"$type\":\"number\",\"$not\":{\"$gt\":100}},\"$comment\":\"c\"}"},
        {"seed-filter-id", "f{\"id\":\"a1\",\"age\":36}"},
        {"seed-update-set", "u{\"$set\":{\"a.b\":1,\"tags.5\":\"p\"},\"$unset\":{\"name\":\"\"},"
                            "\"$inc\":{\"age\":1},\"$mul\":{\"d\":2.5}}"},
        {"seed-update-array", "u{\"$push\":{\"tags\":{\"$each\":[\"q\",\"r\"],\"$position\":0,"
                              "\"$slice\":3}},\"$addToSet\":{\"s\":{\"$each\":[1,1]}},\"$pop\":{"
                              "\"m\":-1}}"},
        {"seed-update-misc", "u{\"$min\":{\"age\":10},\"$max\":{\"n\":\"z\"},\"$rename\":{\"name\":"
                             "\"nm\"},\"$currentDate\":{\"ts\":true,\"ms\":{\"$type\":\"timestamp\"}},"
                             "\"$pull\":{\"tags\":\"x\",\"m\":{\"x\":{\"$gte\":2}}}}"},
        {"seed-update-replace", "u{\"name\":\"replaced\",\"n\":[1]}"},
        {"seed-agg-group", "a[{\"$match\":{\"age\":{\"$gt\":1}}},{\"$group\":{\"_id\":\"$addr.city\","
                           "\"n\":{\"$sum\":1},\"avg\":{\"$avg\":\"$age\"},\"all\":{\"$push\":\"$name\"},"
                           "\"set\":{\"$addToSet\":\"$tags\"},\"lo\":{\"$min\":\"$age\"},\"f\":{"
                           "\"$first\":\"$id\"}}},{\"$sort\":{\"n\":-1}},{\"$limit\":5}]"},
        {"seed-agg-shape", "a[{\"$unwind\":{\"path\":\"$tags\",\"preserveNullAndEmptyArrays\":true,"
                           "\"includeArrayIndex\":\"i\"}},{\"$project\":{\"name\":1,\"x\":{\"$concat\":"
                           "[\"$name\",\"-\",{\"$toUpper\":\"$tags\"}]},\"c\":{\"$cond\":[{\"$gt\":[\"$age\","
                           "30]},\"old\",\"young\"]}}},{\"$skip\":1},{\"$count\":\"n\"}]"},
        {"seed-agg-expr", "a[{\"$addFields\":{\"s\":{\"$add\":[\"$age\",{\"$multiply\":[2,3]}]},\"q\":"
                          "{\"$divide\":[\"$age\",4]},\"m\":{\"$mod\":[\"$age\",7]},\"z\":{\"$size\":"
                          "{\"$ifNull\":[\"$tags\",[]]}}}},{\"$unset\":\"addr\"},{\"$sortByCount\":"
                          "\"$age\"}]"},
        {"seed-agg-root", "a[{\"$replaceRoot\":{\"newRoot\":\"$addr\"}},{\"$set\":{\"k\":{\"$literal\":"
                          "\"$x\"}}}]"},
        {"seed-sort", "s{\"age\":1,\"addr.city\":-1,\"tags\":1}"},
        {"seed-proj-in", "p{\"name\":1,\"addr.city\":1,\"m.x\":1}"},
        {"seed-proj-ex", "p{\"id\":0,\"tags\":0}"},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        dbuf b;
        dbuf_init(&b);
        dbuf_append(&b, q[i].text, strlen(q[i].text));
        for (size_t d = 1; d < sizeof docs / sizeof docs[0]; d++) {
            dbuf_putc(&b, 0);
            dbuf_append(&b, docs[d], strlen(docs[d]));
        }
        dbuf_putc(&b, 0);
        dbuf_append(&b, "{\"id\":\"b2\",\"name\":\"Bob\",\"age\":25,\"tags\":[\"y\"],\"addr\":"
                        "{\"city\":\"Lima\"},\"m\":[{\"x\":2}]}", 81);
        put("fuzz_query", q[i].name, b.data, b.len);
        dbuf_free(&b);
    }
}

/* One wire frame holding payload p. */
static void frame(dbuf *out, uint16_t op, uint16_t flags, uint64_t lsn, const void *p, size_t n)
{
    uint8_t h[WIRE_HDR_SIZE];
    wire_hdr hd = {.len = (uint32_t)n, .req_id = 1, .op = op, .flags = flags, .lsn = lsn};
    wire_hdr_put(h, &hd);
    dbuf_append(out, h, sizeof h);
    dbuf_append(out, p, n);
}

static void add_op(dbuf *b, size_t start, uint8_t kind, uint8_t flags, const char *coll,
                   const char *id, const void *doc, size_t doc_len)
{
    batch_op op = {.kind = kind, .flags = flags, .coll = coll, .coll_len = strlen(coll),
                   .id = id, .id_len = id ? strlen(id) : 0, .doc = doc, .doc_len = doc_len};
    if (batch_add(b, start, &op) != 0)
        exit(1);
}

static void engine_seeds(void)
{
    dbuf s, b, d, f, u;
    size_t st;
    /* puts, then update / check / delete, stats, a drop: published in two groups */
    dbuf_init(&s);
    dbuf_init(&b);
    batch_begin(&b, &st);
    for (size_t i = 1; i < sizeof docs / sizeof docs[0]; i++) {
        dbuf_init(&d);
        enc_doc(docs[i], &d);
        add_op(&b, st, BOP_PUT, 0, "users", NULL, d.data, d.len);
        dbuf_free(&d);
    }
    frame(&s, WIRE_OP_BATCH, 1, 0, b.data, b.len);
    b.len = 0;
    batch_begin(&b, &st);
    dbuf_init(&d);
    enc_doc("{\"id\":\"a1\",\"name\":\"Ada L\",\"age\":37}", &d);
    add_op(&b, st, BOP_UPDATE, 0, "users", "a1", d.data, d.len);
    add_op(&b, st, BOP_CHECK, 0, "users", "n", NULL, 0);
    add_op(&b, st, BOP_DELETE, 0, "users", "s", NULL, 0);
    add_op(&b, st, BOP_CREATE_COLL, 0, "other", NULL, NULL, 0);
    frame(&s, WIRE_OP_BATCH, 0, 0, b.data, b.len);
    frame(&s, WIRE_OP_STATS, 0, 0, "users", 5);
    frame(&s, WIRE_OP_STATS, 0, 0, NULL, 0);
    b.len = 0;
    batch_begin(&b, &st);
    add_op(&b, st, BOP_DROP_COLL, 0, "other", NULL, NULL, 0);
    frame(&s, WIRE_OP_BATCH, 1 | 4, 0, b.data, b.len);
    put("fuzz_engine", "seed-crud", s.data, s.len);

    /* derived operations: modify (with upsert), update-many, delete-many;
     * the second group is undone */
    s.len = 0;
    b.len = 0;
    batch_begin(&b, &st);
    add_op(&b, st, BOP_PUT, 0, "c", NULL, d.data, d.len);
    dbuf_init(&u);
    enc_val("{\"$inc\":{\"age\":1},\"$set\":{\"x.y\":[1,2]}}", &u);
    add_op(&b, st, BOP_MODIFY, 0, "c", "a1", u.data, u.len);
    add_op(&b, st, BOP_MODIFY, BOP_F_UPSERT, "c", "new", u.data, u.len);
    dbuf_init(&f);
    enc_val("{\"age\":{\"$gte\":1}}", &f);
    dbuf um;
    dbuf_init(&um);
    dbuf_put_u32(&um, (uint32_t)f.len);
    dbuf_append(&um, f.data, f.len);
    dbuf_append(&um, u.data, u.len);
    add_op(&b, st, BOP_UPDATE_MANY, 0, "c", NULL, um.data, um.len);
    frame(&s, WIRE_OP_BATCH, 1, 0, b.data, b.len);
    b.len = 0;
    batch_begin(&b, &st);
    add_op(&b, st, BOP_DELETE_MANY, 0, "c", NULL, f.data, f.len);
    frame(&s, WIRE_OP_BATCH, 2, 0, b.data, b.len);
    b.len = 0;
    batch_begin(&b, &st);
    dbuf_free(&f);
    dbuf_init(&f);
    enc_val("{\"email\":\"q@x.org\"}", &f);
    um.len = 0;
    dbuf_put_u32(&um, (uint32_t)f.len);
    dbuf_append(&um, f.data, f.len);
    dbuf_append(&um, u.data, u.len);
    add_op(&b, st, BOP_UPDATE_MANY, BOP_F_UPSERT, "c", "up1", um.data, um.len);
    frame(&s, WIRE_OP_BATCH, 0, 2, b.data, b.len);
    put("fuzz_engine", "seed-derived", s.data, s.len);
    dbuf_free(&s);
    dbuf_free(&b);
    dbuf_free(&d);
    dbuf_free(&f);
    dbuf_free(&u);
    dbuf_free(&um);
}

/* One operation of a compact batch (fuzz_engine.c); json: bit 7 of kind. */
static void cop(dbuf *b, uint8_t kind, uint8_t flags, const char *coll, const char *id,
                const void *doc, size_t doc_len)
{
    uint8_t h[6] = {kind, flags, (uint8_t)strlen(coll), (uint8_t)(id ? strlen(id) : 0)};
    st_u16(h + 4, (uint16_t)doc_len);
    dbuf_append(b, h, sizeof h);
    dbuf_append(b, coll, strlen(coll));
    if (id)
        dbuf_append(b, id, strlen(id));
    dbuf_append(b, doc, doc_len);
}

static void compact_seeds(void)
{
    dbuf s, b;
    dbuf_init(&s);
    dbuf_init(&b);
    for (size_t i = 1; i < sizeof docs / sizeof docs[0]; i++)
        cop(&b, 0x80 | BOP_PUT, 0, "users", NULL, docs[i], strlen(docs[i]));
    frame(&s, WIRE_OP_BATCH, 8 | 1, 0, b.data, b.len);
    b.len = 0;
    static const char um[] = "{\"age\":{\"$gt\":1}}\0{\"$inc\":{\"age\":1},\"$set\":{\"seen\":true}}";
    cop(&b, 0x80 | BOP_UPDATE_MANY, 0, "users", NULL, um, sizeof um - 1);
    static const char up[] = "{\"email\":\"q@x.org\",\"n\":{\"$gt\":5}}\0{\"$set\":{\"name\":\"Q\"}}";
    cop(&b, 0x80 | BOP_UPDATE_MANY, BOP_F_UPSERT, "users", "up1", up, sizeof up - 1);
    static const char push[] = "{\"$push\":{\"tags\":{\"$each\":[\"z\"],\"$slice\":-2}}}";
    cop(&b, 0x80 | BOP_MODIFY, 0, "users", "a1", push, sizeof push - 1);
    cop(&b, 0x80 | BOP_MODIFY, BOP_F_UPSERT, "users", "zz", push, sizeof push - 1);
    frame(&s, WIRE_OP_BATCH, 8, 0, b.data, b.len);
    b.len = 0;
    static const char dm[] = "{\"tags\":\"x\"}";
    cop(&b, 0x80 | BOP_DELETE_MANY, 0, "users", NULL, dm, sizeof dm - 1);
    cop(&b, BOP_CHECK, 0, "users", "n", NULL, 0);
    frame(&s, WIRE_OP_BATCH, 8 | 2, 3, b.data, b.len);
    b.len = 0;
    static const char rep[] = "{\"id\":\"n\",\"replaced\":[1,2,3]}";
    cop(&b, 0x80 | BOP_UPDATE, 0, "users", "n", rep, sizeof rep - 1);
    cop(&b, BOP_DELETE, 0, "users", "deep", NULL, 0);
    cop(&b, BOP_CREATE_COLL, 0, "tmp", NULL, NULL, 0);
    cop(&b, BOP_DROP_COLL, 0, "tmp", NULL, NULL, 0);
    frame(&s, WIRE_OP_BATCH, 8 | 1 | 4, 0, b.data, b.len);
    frame(&s, WIRE_OP_STATS, 0, 0, "users", 5);
    put("fuzz_engine", "seed-compact", s.data, s.len);

    /* batches applied as they come (bit 4): committed; overtaken and
     * applied whole (bit 5); one holding a delete, applied whole; with a
     * duplicate id and a new collection */
    s.len = 0;
    b.len = 0;
    for (size_t i = 1; i < sizeof docs / sizeof docs[0]; i++)
        cop(&b, 0x80 | BOP_PUT, 0, "ahead", NULL, docs[i], strlen(docs[i]));
    cop(&b, 0x80 | BOP_PUT, 0, "ahead", NULL, docs[1], strlen(docs[1]));
    frame(&s, WIRE_OP_BATCH, 8 | 16, 0, b.data, b.len);
    frame(&s, WIRE_OP_BATCH, 8 | 16 | 32 | 1, 0, b.data, b.len);
    cop(&b, BOP_DELETE, 0, "ahead", "n", NULL, 0);
    frame(&s, WIRE_OP_BATCH, 8 | 16 | 2, 0, b.data, b.len);
    b.len = 0;
    cop(&b, 0x80 | BOP_PUT, 0, "fresh", NULL, docs[2], strlen(docs[2]));
    frame(&s, WIRE_OP_BATCH, 8 | 16 | 1 | 4, 0, b.data, b.len);
    put("fuzz_engine", "seed-ahead", s.data, s.len);
    dbuf_free(&s);
    dbuf_free(&b);
}

/* Concatenate the files of a WAL directory, behind a flags byte. */
static void wal_seed(const char *name, uint8_t flags, uint64_t seg_size, int nrec)
{
    char dir[512], err[512];
    fuzz_mkdtemp(dir, sizeof dir, "gen");
    wal *w;
    wal_replay_info info;
    if (wal_open(dir, seg_size, &w, err, sizeof err) != 0 ||
        wal_replay(w, 1, NULL, NULL, &info, err, sizeof err) != 0) {
        fprintf(stderr, "gen_corpus: %s\n", err);
        exit(1);
    }
    for (int i = 0; i < nrec; i++) {
        dbuf b, d;
        size_t st;
        dbuf_init(&b);
        dbuf_init(&d);
        batch_begin(&b, &st);
        enc_doc(docs[1 + i % 6], &d);
        add_op(&b, st, BOP_PUT, 0, "users", NULL, d.data, d.len);
        if (wal_append(w, (uint64_t)i + 2, WAL_REC_BATCH, b.data, b.len) != 0 ||
            wal_write(w, err, sizeof err) != 0)
            exit(1);
        dbuf_free(&b);
        dbuf_free(&d);
    }
    wal_sync(w, err, sizeof err);
    wal_close(w);
    dbuf all;
    dbuf_init(&all);
    dbuf_putc(&all, flags);
    for (int seg = 1;; seg++) {
        char path[700];
        snprintf(path, sizeof path, "%s/wal_%06d.log", dir, seg);
        FILE *fp = fopen(path, "rb");
        if (fp == NULL)
            break;
        uint8_t buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
            dbuf_append(&all, buf, n);
        fclose(fp);
    }
    put("fuzz_wal", name, all.data, all.len);
    dbuf_free(&all);
    fuzz_rmtree(dir);
}

static void segment_seed(const char *name, uint8_t flags, unsigned codec, int mark_lz4)
{
    char dir[512], err[512];
    fuzz_mkdtemp(dir, sizeof dir, "gen");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    seg_writer *w;
    seg_info info;
    if (seg_create(dfd, dir, 1, 9, 2, codec, &w, err, sizeof err) != 0)
        exit(1);
    for (int i = 0; i < 8; i++) {
        dbuf d;
        dbuf_init(&d);
        enc_doc(docs[1 + i % 6], &d);
        if (seg_add(w, d.data, (uint32_t)d.len, err, sizeof err) != 0)
            exit(1);
        dbuf_free(&d);
    }
    if (seg_finish(w, &info, err, sizeof err) != 0)
        exit(1);
    char path[700];
    snprintf(path, sizeof path, "%s/segment_001.db", dir);
    FILE *fp = fopen(path, "rb");
    dbuf all;
    dbuf_init(&all);
    dbuf_putc(&all, flags);
    uint8_t buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
        dbuf_append(&all, buf, n);
    fclose(fp);
    if (mark_lz4) /* the first block: let the harness compress it */
        all.data[1 + SEG_HDR_SIZE + 4] = SEG_CODEC_LZ4;
    put("fuzz_segment", name, all.data, all.len);
    dbuf_free(&all);
    close(dfd);
    fuzz_rmtree(dir);
}

static void config_seeds(void)
{
    put_str("fuzz_config", "seed-sections",
            "{\"storage\":{\"sync_mode\":\"normal\",\"segment_size\":\"32MB\",\"compression\":"
            "\"none\",\"sync_interval_ms\":50,\"data_directory\":\"/var/lib/dotdb\"},\"memory\":"
            "{\"buffer_pool_size\":\"16 MiB\",\"max_size\":\"1G\",\"worker_threads\":4},"
            "\"indexing\":{\"auto_index\":false,\"btree_page_size\":\"8KB\",\"hash_bucket_count\":"
            "4096},\"limits\":{\"max_document_size\":1048576,\"max_depth\":50},\"security\":{"
            "\"allowed_uids\":[1000,1001],\"group\":\"dotdb\"}}");
    put_str("fuzz_config", "seed-flat",
            "{\"storage.sync_mode\":\"off\",\"memory.max_size\":\"2TB\",\"memory.cache_size\":0,"
            "\"storage.checkpoint_interval_ms\":100,\"unknown.key\":1,\"storage\":{\"foo\":2}}");
    put_str("fuzz_config", "seed-bad", "{\"memory\":{\"buffer_pool_size\":\"64MB\",\"max_size\":"
                                       "\"32MB\"},\"storage\":{\"sync_mode\":\"fast\"}}");
    put_str("fuzz_config", "seed-empty", "{}");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    codec_and_json();
    query();
    engine_seeds();
    compact_seeds();
    wal_seed("seed-one-segment", 0x00, 1 << 20, 6);
    wal_seed("seed-rotated", 0x00, 700, 9);
    wal_seed("seed-fixed-after3", 0x01 | 0x02 | (2 << 2), 1 << 20, 4);
    segment_seed("seed-none", 0x00, SEG_CODEC_NONE, 0);
    segment_seed("seed-lz4", 0x00, SEG_CODEC_LZ4, 0);
    segment_seed("seed-fix-lz4", 0x03 | 0x04, SEG_CODEC_NONE, 1);
    config_seeds();
    return 0;
}
