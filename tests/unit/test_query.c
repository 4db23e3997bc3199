/*
 * test_query.c - unit tests of MongoDB filters, order and projection
 * (lib/query.c, lib/query_order.c, lib/query_proj.c).
 *
 * Filters are checked operator by operator against tables of documents
 * and the answer MongoDB gives, with the cross-type rules (comparison
 * within one type bracket, ints against doubles exactly), missing fields
 * and null, arrays (implicit element matching, leaf and nested arrays,
 * numeric path parts, paths through arrays of objects) and every compile
 * error message.  Then qvalue_cmp's order across types, sort keys with
 * MongoDB's array rule, projections, qfilter_id_eq and qfilter_seed, and
 * two randomized cross-checks ($in's sorted search against a plain $or,
 * comparison operators against qvalue_cmp).
 *
 * JSON in this file is written with single quotes for readability; the
 * helpers turn them into double quotes before parsing.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "query.h"

#define ERRLEN 256

static const codec_limits lim = {CODEC_DEFAULT_MAX_SIZE, CODEC_DEFAULT_MAX_DEPTH};

/* ---- helpers ------------------------------------------------------------- */

/* Encode JSON written with ' for " (a copy is converted). */
static void enc(const char *json, dbuf *out)
{
    char err[ERRLEN];
    size_t n = strlen(json);
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    for (size_t i = 0; i <= n; i++)
        s[i] = json[i] == '\'' ? '"' : json[i];
    dbuf_init(out);
    int rc = codec_value_from_json(s, n, &lim, out, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "parse of %s failed: %s", s, err);
    free(s);
}

static codec_val val(const dbuf *b) { return (codec_val){b->data, b->len}; }

/* JSON text of an encoded value with " turned into ', caller frees. */
static char *text(codec_val v)
{
    dbuf out;
    dbuf_init(&out);
    cr_assert_eq(codec_to_json(v, &out), DOTDB_OK);
    cr_assert_eq(dbuf_putc(&out, 0), 0);
    char *s = (char *)dbuf_steal(&out, NULL);
    for (char *p = s; *p; p++)
        if (*p == '"')
            *p = '\'';
    return s;
}

static qfilter *compile_ok(const char *filter)
{
    dbuf f;
    char err[ERRLEN] = "";
    qfilter *q = NULL;
    enc(filter, &f);
    int rc = qfilter_compile(val(&f), &q, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "compile %s: %s", filter, err);
    cr_assert_not_null(q);
    dbuf_free(&f); /* the compiled filter must not need its input */
    return q;
}

static int match(const char *filter, const char *doc)
{
    dbuf d;
    qfilter *q = compile_ok(filter);
    enc(doc, &d);
    int m = qfilter_match(q, val(&d));
    cr_assert(m == 0 || m == 1);
    qfilter_free(q);
    dbuf_free(&d);
    return m;
}

typedef struct mcase {
    const char *doc;
    int want;
} mcase;

static void check(const char *filter, const mcase *cs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(match(filter, cs[i].doc), cs[i].want, "filter %s on %s: expected %s", filter,
                     cs[i].doc, cs[i].want ? "match" : "no match");
}

#define CHECK(filter, ...)                                                                   \
    do {                                                                                     \
        static const mcase cs_[] = {__VA_ARGS__};                                            \
        check(filter, cs_, sizeof cs_ / sizeof cs_[0]);                                      \
    } while (0)

/* Compile expecting DOTDB_EINVAL and a message containing `want`. */
static void compile_fails(const char *filter, const char *want)
{
    dbuf f;
    char err[ERRLEN] = "";
    qfilter *q = (qfilter *)&q; /* must be reset to NULL */
    enc(filter, &f);
    int rc = qfilter_compile(val(&f), &q, err, sizeof err);
    dbuf_free(&f);
    cr_expect_eq(rc, DOTDB_EINVAL, "compile %s: expected DOTDB_EINVAL, got %d", filter, rc);
    cr_expect_null(q, "compile %s: *out not cleared on failure", filter);
    cr_expect(strstr(err, want) != NULL, "compile %s: message '%s' lacks '%s'", filter, err, want);
    if (rc == DOTDB_OK)
        qfilter_free(q);
}

/* Projection of doc by spec as JSON text (with '), caller frees. */
static char *project(const char *spec, const char *doc);

/* ---- equality ------------------------------------------------------------ */

Test(filter_eq, implicit_scalar_equality)
{
    CHECK("{'a':1}", {"{'a':1}", 1}, {"{'a':1.0}", 1}, {"{'a':2}", 0}, {"{}", 0},
          {"{'a':'1'}", 0}, {"{'a':true}", 0}, {"{'b':1}", 0});
    CHECK("{'a':'x'}", {"{'a':'x'}", 1}, {"{'a':'X'}", 0}, {"{'a':'x '}", 0}, {"{'a':['y','x']}", 1});
    CHECK("{'a':true}", {"{'a':true}", 1}, {"{'a':1}", 0}, {"{'a':false}", 0});
    CHECK("{'a':0}", {"{'a':false}", 0}, {"{'a':-0.0}", 1}, {"{'a':null}", 0});
}

Test(filter_eq, explicit_eq_is_the_same)
{
    CHECK("{'a':{'$eq':1}}", {"{'a':1.0}", 1}, {"{'a':[3,1]}", 1}, {"{'a':2}", 0}, {"{}", 0});
    CHECK("{'a':{'$eq':{'b':1}}}", {"{'a':{'b':1}}", 1}, {"{'a':{'b':1,'c':1}}", 0});
}

Test(filter_eq, scalar_matches_array_elements_one_level)
{
    CHECK("{'a':1}", {"{'a':[1,2]}", 1}, {"{'a':[2,3]}", 0}, {"{'a':[]}", 0}, {"{'a':[[1]]}", 0},
          {"{'a':[2,1.0]}", 1});
}

Test(filter_eq, array_operand_matches_whole_array_or_element)
{
    CHECK("{'a':[1,2]}", {"{'a':[1,2]}", 1}, {"{'a':[2,1]}", 0}, {"{'a':[[1,2],3]}", 1},
          {"{'a':[1,2,3]}", 0}, {"{'a':1}", 0}, {"{'a':[1.0,2.0]}", 1});
    CHECK("{'a':[]}", {"{'a':[]}", 1}, {"{'a':[[]]}", 1}, {"{'a':[1]}", 0}, {"{}", 0});
}

Test(filter_eq, object_operand_is_exact_in_order)
{
    CHECK("{'a':{'b':1}}", {"{'a':{'b':1}}", 1}, {"{'a':{'b':1.0}}", 1}, {"{'a':{'b':1,'c':2}}", 0},
          {"{'a':[{'b':1}]}", 1}, {"{'a':{'b':2}}", 0}, {"{'a':{'c':1}}", 0});
    CHECK("{'a':{'b':1,'c':2}}", {"{'a':{'b':1,'c':2}}", 1}, {"{'a':{'c':2,'b':1}}", 0});
    CHECK("{'a':{}}", {"{'a':{}}", 1}, {"{'a':{'b':1}}", 0}, {"{}", 0}, {"{'a':[{}]}", 1});
}

Test(filter_eq, int64_against_double_is_exact)
{
    /* 2^53 + 1 is not a double: converting it would make these equal */
    CHECK("{'a':9007199254740993}", {"{'a':9007199254740993}", 1},
          {"{'a':9007199254740992.0}", 0}, {"{'a':9007199254740992}", 0});
    CHECK("{'a':9007199254740992}", {"{'a':9007199254740992.0}", 1});
    CHECK("{'a':9223372036854775807}", {"{'a':9223372036854775808.0}", 0},
          {"{'a':9223372036854775807}", 1});
}

Test(filter_eq, null_matches_null_and_missing)
{
    CHECK("{'a':null}", {"{}", 1}, {"{'a':null}", 1}, {"{'a':0}", 0}, {"{'a':false}", 0},
          {"{'a':[]}", 0}, {"{'a':[null]}", 1}, {"{'a':[1]}", 0}, {"{'a':''}", 0});
    CHECK("{'a':{'$eq':null}}", {"{}", 1}, {"{'a':null}", 1}, {"{'a':1}", 0});
}

Test(filter_eq, null_on_dotted_paths)
{
    /* missing through a scalar or an object: match; through an array,
     * only object elements lacking the field count */
    CHECK("{'a.b':null}", {"{'a':5}", 1}, {"{'a':{}}", 1}, {"{}", 1}, {"{'a':{'b':null}}", 1},
          {"{'a':[1]}", 0}, {"{'a':[{'c':1}]}", 1}, {"{'a':[{'b':1}]}", 0},
          {"{'a':[{'b':1},{'c':1}]}", 1}, {"{'a':[]}", 0}, {"{'a':{'b':0}}", 0});
}

Test(filter_eq, dotted_paths_through_objects_and_arrays)
{
    CHECK("{'a.b':1}", {"{'a':{'b':1}}", 1}, {"{'a':{'b':{'c':1}}}", 0}, {"{'a':[{'b':1}]}", 1},
          {"{'a':[{'b':2},{'b':1}]}", 1}, {"{'a':[{'b':[1,2]}]}", 1}, {"{'a':[[{'b':1}]]}", 0},
          {"{'a':5}", 0}, {"{'a':[5,{'b':1}]}", 1}, {"{'a.b':1}", 0});
    CHECK("{'a.b.c':1}", {"{'a':[{'b':[{'c':1}]}]}", 1}, {"{'a':{'b':[{'c':[0,1]}]}}", 1},
          {"{'a':{'b':[{'c':[[1]]}]}}", 0}, {"{'a':[{'b':{'c':2}},{'b':{'c':1}}]}", 1});
}

Test(filter_eq, numeric_path_parts)
{
    CHECK("{'a.0':1}", {"{'a':[1,2]}", 1}, {"{'a':[2,1]}", 0}, {"{'a':{'0':1}}", 1},
          {"{'a':[[1]]}", 0}, {"{'a':[{'0':1}]}", 1}, {"{'a':[]}", 0});
    CHECK("{'a.0':[1]}", {"{'a':[[1]]}", 1});
    CHECK("{'a.1.b':2}", {"{'a':[{'b':1},{'b':2}]}", 1}, {"{'a':[{'b':2},{'b':1}]}", 0});
    CHECK("{'a.0.b':1}", {"{'a':[[{'b':1}]]}", 1}, {"{'a':[{'b':1}]}", 1});
    CHECK("{'a.0.0':1}", {"{'a':[[1,2]]}", 1}, {"{'a':[[2,1]]}", 0});
    /* only the canonical spelling names an element */
    CHECK("{'a.00':1}", {"{'a':[1]}", 0}, {"{'a':{'00':1}}", 1});
    CHECK("{'a.5':null}", {"{'a':[1]}", 0}, {"{'a':{}}", 1});
    CHECK("{'a.5':{'$exists':false}}", {"{'a':[1]}", 1}, {"{'a':[1,2,3,4,5,6]}", 0});
    /* MongoDB quirk kept: an object element at the index is also searched
     * for a member named "0", which is missing, and missing is null */
    CHECK("{'a.0':null}", {"{'a':[{'x':1}]}", 1}, {"{'a':[1]}", 0});
}

Test(filter_eq, empty_path_parts_and_keys)
{
    CHECK("{'':1}", {"{'':1}", 1}, {"{'a':1}", 0});
    CHECK("{'a.':1}", {"{'a':{'':1}}", 1}, {"{'a':1}", 0});
}

/* The documents and answers of MongoDB's own null-semantics test
 * (jstests/core/not_equals_null; its "undefined" variants left out): which
 * documents each query returns, as a string of '1' and '0' per document. */
static const char *const null_docs[] = {
    "{'a':{}}",                          /* 0 */
    "{'a':null}",                        /* 1 */
    "{'a':4}",                           /* 2 */
    "{'a':{'b':'hi'}}",                  /* 3 */
    "{'a':{'b':null}}",                  /* 4 */
    "{}",                                /* 5 */
    "{'a':[[]]}",                        /* 6 */
    "{'a':[]}",                          /* 7 */
    "{'a':[{'b':null},{'b':null},{}]}",  /* 8 */
    "{'a':[{'b':1},{'b':3},{'b':'string'}]}", /* 9 */
    "{'a':[{'b':null},{'b':3},{'b':null}]}",  /* 10 */
    "{'a':[{'b':3},{}]}",                /* 11 */
    "{'a':[null,null]}",                 /* 12 */
    "{'a':[1,'string',4]}",              /* 13 */
    "{'a':[1,'string',null,4]}",         /* 14 */
};

static void null_table(const char *filter, const char *want)
{
    size_t n = sizeof null_docs / sizeof null_docs[0];
    cr_assert_eq(strlen(want), n);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(match(filter, null_docs[i]), want[i] == '1', "filter %s on doc %zu %s", filter,
                     i, null_docs[i]);
}

Test(filter_eq, mongodb_null_semantics_table)
{
    /*                                               0123456789abcde */
    null_table("{'a':{'$eq':null}}",                "010001000000101");
    null_table("{'a':{'$ne':null}}",                "101110111111010");
    null_table("{'a':{'$elemMatch':{'$eq':null}}}", "000000000000101");
    null_table("{'a':{'$elemMatch':{'$ne':null}}}", "000000101111011");
    null_table("{'a.b':{'$eq':null}}",              "111011001011000");
    null_table("{'a.b':{'$ne':null}}",              "000100110100111");
    null_table("{'a.b':{'$elemMatch':{'$eq':null}}}", "000000000000000");
    null_table("{'a.b':{'$elemMatch':{'$ne':null}}}", "000000000000000");
    null_table("{'a':{'$elemMatch':{'b':{'$eq':null}}}}", "000000101011000");
    null_table("{'a':{'$elemMatch':{'b':{'$ne':null}}}}", "000000000111000");
}

Test(projection, mongodb_null_semantics_table)
{
    static const char *const want[] = {
        "{'a':{}}", "{}", "{}", "{'a':{'b':'hi'}}", "{'a':{'b':null}}", "{}", "{'a':[[]]}",
        "{'a':[]}", "{'a':[{'b':null},{'b':null},{}]}", "{'a':[{'b':1},{'b':3},{'b':'string'}]}",
        "{'a':[{'b':null},{'b':3},{'b':null}]}", "{'a':[{'b':3},{}]}", "{'a':[]}", "{'a':[]}",
        "{'a':[]}",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *t = project("{'a.b':1,'id':0}", null_docs[i]);
        cr_expect_str_eq(t, want[i], "projection of %s", null_docs[i]);
        free(t);
    }
}

/* ---- $ne ------------------------------------------------------------------ */

Test(filter_ne, negates_equality_over_the_whole_path)
{
    CHECK("{'a':{'$ne':1}}", {"{'a':1}", 0}, {"{'a':2}", 1}, {"{}", 1}, {"{'a':[1,2]}", 0},
          {"{'a':[2,3]}", 1}, {"{'a':null}", 1}, {"{'a':'1'}", 1}, {"{'a':1.0}", 0});
    CHECK("{'a':{'$ne':null}}", {"{}", 0}, {"{'a':null}", 0}, {"{'a':1}", 1}, {"{'a':[null]}", 0},
          {"{'a':[]}", 1});
    CHECK("{'a.b':{'$ne':1}}", {"{'a':[{'b':1},{'b':2}]}", 0}, {"{'a':[{'b':2}]}", 1},
          {"{'a':5}", 1});
}

/* ---- $gt $gte $lt $lte ----------------------------------------------------- */

Test(filter_cmp, numbers_only_match_numbers)
{
    CHECK("{'a':{'$gt':25}}", {"{'a':30}", 1}, {"{'a':25}", 0}, {"{'a':25.5}", 1},
          {"{'a':'30'}", 0}, {"{'a':'z'}", 0}, {"{}", 0}, {"{'a':null}", 0}, {"{'a':true}", 0},
          {"{'a':[1,30]}", 1}, {"{'a':[1,2]}", 0}, {"{'a':{'b':30}}", 0}, {"{'a':[[30]]}", 0});
    CHECK("{'a':{'$gte':25}}", {"{'a':25}", 1}, {"{'a':25.0}", 1}, {"{'a':24.999}", 0},
          {"{'a':'25'}", 0});
    CHECK("{'a':{'$lt':25}}", {"{'a':-1}", 1}, {"{'a':'a'}", 0}, {"{'a':null}", 0}, {"{}", 0},
          {"{'a':false}", 0}, {"{'a':[]}", 0});
    CHECK("{'a':{'$lte':25}}", {"{'a':25}", 1}, {"{'a':25.000001}", 0}, {"{'a':-1e300}", 1});
}

Test(filter_cmp, strings_compare_as_bytes)
{
    CHECK("{'a':{'$gt':'b'}}", {"{'a':'c'}", 1}, {"{'a':'b'}", 0}, {"{'a':'ba'}", 1},
          {"{'a':'B'}", 0}, {"{'a':5}", 0}, {"{'a':'\\u00e9'}", 1}, {"{'a':['a','bb']}", 1});
    CHECK("{'a':{'$lt':''}}", {"{'a':''}", 0}, {"{'a':'a'}", 0});
}

Test(filter_cmp, null_operand)
{
    CHECK("{'a':{'$gte':null}}", {"{}", 1}, {"{'a':null}", 1}, {"{'a':1}", 0}, {"{'a':'x'}", 0});
    CHECK("{'a':{'$lte':null}}", {"{}", 1}, {"{'a':null}", 1}, {"{'a':1}", 0});
    CHECK("{'a':{'$gt':null}}", {"{}", 0}, {"{'a':null}", 0}, {"{'a':1}", 0});
    CHECK("{'a':{'$lt':null}}", {"{}", 0}, {"{'a':null}", 0}, {"{'a':-1}", 0});
}

Test(filter_cmp, ints_and_doubles_compare_exactly)
{
    CHECK("{'a':{'$gt':9007199254740992.0}}", {"{'a':9007199254740993}", 1},
          {"{'a':9007199254740992}", 0});
    CHECK("{'a':{'$lt':9007199254740993}}", {"{'a':9007199254740992.0}", 1},
          {"{'a':9007199254740993}", 0});
    CHECK("{'a':{'$gt':9223372036854775807}}", {"{'a':9.3e18}", 1},
          {"{'a':9223372036854775808.0}", 1}, {"{'a':9.2e18}", 0});
    CHECK("{'a':{'$lt':-9223372036854775808}}", {"{'a':-9.3e18}", 1},
          {"{'a':-9223372036854775808.0}", 0});
    CHECK("{'a':{'$gt':1}}", {"{'a':1.5}", 1}, {"{'a':1.0}", 0}, {"{'a':0.999}", 0});
    CHECK("{'a':{'$gt':1.5}}", {"{'a':2}", 1}, {"{'a':1}", 0});
    CHECK("{'a':{'$gt':-1.5}}", {"{'a':-1}", 1}, {"{'a':-2}", 0});
    CHECK("{'a':{'$lte':-1.5}}", {"{'a':-2}", 1}, {"{'a':-1}", 0});
}

Test(filter_cmp, arrays_objects_and_bools_in_their_own_bracket)
{
    CHECK("{'a':{'$gt':[1]}}", {"{'a':[2]}", 1}, {"{'a':[1]}", 0}, {"{'a':[[5]]}", 1},
          {"{'a':[1,0]}", 1}, {"{'a':5}", 0});
    CHECK("{'a':{'$gt':{'b':1}}}", {"{'a':{'b':2}}", 1}, {"{'a':{'c':0}}", 1}, {"{'a':{'b':1}}", 0},
          {"{'a':{'a':9}}", 0}, {"{'a':{'b':1,'c':0}}", 1}, {"{'a':5}", 0});
    CHECK("{'a':{'$gt':false}}", {"{'a':true}", 1}, {"{'a':false}", 0}, {"{'a':1}", 0});
    CHECK("{'a':{'$lte':true}}", {"{'a':true}", 1}, {"{'a':false}", 1}, {"{'a':0}", 0});
}

Test(filter_cmp, several_operators_on_one_field_are_anded_per_element_set)
{
    /* each operator walks the array on its own (MongoDB): 10 > 1, 0 < 5 */
    CHECK("{'a':{'$gt':1,'$lt':5}}", {"{'a':[0,10]}", 1}, {"{'a':[0]}", 0}, {"{'a':3}", 1},
          {"{'a':5}", 0}, {"{'a':1}", 0});
    CHECK("{'a':{'$gte':1,'$lte':3,'$ne':2}}", {"{'a':1}", 1}, {"{'a':2}", 0}, {"{'a':4}", 0},
          {"{'a':3}", 1}, {"{}", 0});
}

/* ---- $in $nin -------------------------------------------------------------- */

Test(filter_in, any_element_equal)
{
    CHECK("{'a':{'$in':[1,'x',null]}}", {"{'a':1}", 1}, {"{'a':1.0}", 1}, {"{'a':'x'}", 1},
          {"{}", 1}, {"{'a':null}", 1}, {"{'a':2}", 0}, {"{'a':[2,'x']}", 1}, {"{'a':[2,3]}", 0},
          {"{'a':true}", 0});
    CHECK("{'a':{'$in':[]}}", {"{'a':1}", 0}, {"{}", 0}, {"{'a':[]}", 0});
    CHECK("{'a':{'$in':[[1,2]]}}", {"{'a':[1,2]}", 1}, {"{'a':[[1,2]]}", 1}, {"{'a':1}", 0});
    CHECK("{'a':{'$in':[{'b':1}]}}", {"{'a':{'b':1}}", 1}, {"{'a':[{'b':1}]}", 1},
          {"{'a':{'b':1,'c':1}}", 0});
    CHECK("{'a.b':{'$in':[2,3]}}", {"{'a':[{'b':1},{'b':3}]}", 1}, {"{'a':[{'b':1}]}", 0});
}

Test(filter_in, long_lists_use_the_sorted_search)
{
    const char *f = "{'a':{'$in':[10,9,8,7,6,5,4,3,2,1,'s',{'x':1},[1],true,null,1.5]}}";
    CHECK(f, {"{'a':5}", 1}, {"{'a':5.0}", 1}, {"{'a':11}", 0}, {"{'a':'s'}", 1},
          {"{'a':{'x':1}}", 1}, {"{'a':{'x':1.0}}", 1}, {"{'a':{'x':2}}", 0}, {"{'a':[1]}", 1},
          {"{'a':true}", 1}, {"{'a':false}", 0}, {"{}", 1}, {"{'a':null}", 1},
          {"{'a':[11,'s']}", 1}, {"{'a':'t'}", 0}, {"{'a':1.5}", 1}, {"{'a':2.5}", 0},
          {"{'a':[[1]]}", 1});
    CHECK("{'a':{'$in':[1,2,3,4,5,6,7,8,9]}}", {"{}", 0}, {"{'a':null}", 0}, {"{'a':9}", 1},
          {"{'a':0}", 0});
}

Test(filter_in, nin_is_the_negation)
{
    CHECK("{'a':{'$nin':[1,2]}}", {"{'a':3}", 1}, {"{'a':1}", 0}, {"{}", 1}, {"{'a':[3,1]}", 0},
          {"{'a':[3,4]}", 1}, {"{'a':null}", 1}, {"{'a':2.0}", 0});
    CHECK("{'a':{'$nin':[null]}}", {"{}", 0}, {"{'a':1}", 1}, {"{'a':null}", 0});
    CHECK("{'a':{'$nin':[]}}", {"{}", 1}, {"{'a':1}", 1});
}

/* ---- $exists $type ------------------------------------------------------- */

Test(filter_exists, presence)
{
    CHECK("{'a':{'$exists':true}}", {"{'a':null}", 1}, {"{}", 0}, {"{'a':[]}", 1}, {"{'a':0}", 1},
          {"{'b':1}", 0});
    CHECK("{'a':{'$exists':false}}", {"{}", 1}, {"{'a':null}", 0}, {"{'a':[]}", 0});
    CHECK("{'a':{'$exists':0}}", {"{}", 1}, {"{'a':1}", 0});
    CHECK("{'a':{'$exists':1}}", {"{'a':1}", 1}, {"{}", 0});
    CHECK("{'a':{'$exists':null}}", {"{}", 1});
    CHECK("{'a':{'$exists':'yes'}}", {"{'a':1}", 1});
}

Test(filter_exists, dotted_paths)
{
    CHECK("{'a.b':{'$exists':true}}", {"{'a':[{'b':1},{'c':1}]}", 1}, {"{'a':[{'c':1}]}", 0},
          {"{'a':[1]}", 0}, {"{'a':{'b':null}}", 1}, {"{'a':5}", 0}, {"{'a':[[{'b':1}]]}", 0});
    CHECK("{'a.b':{'$exists':false}}", {"{'a':[{'c':1}]}", 1}, {"{'a':[{'b':1},{'c':1}]}", 0},
          {"{'a':[]}", 1});
    CHECK("{'a.1':{'$exists':true}}", {"{'a':[1,2]}", 1}, {"{'a':[1]}", 0});
}

Test(filter_type, aliases)
{
    CHECK("{'a':{'$type':'double'}}", {"{'a':1.5}", 1}, {"{'a':1}", 0}, {"{'a':2.0}", 1});
    CHECK("{'a':{'$type':'int'}}", {"{'a':1}", 1}, {"{'a':1.5}", 0}, {"{'a':9007199254740993}", 1});
    CHECK("{'a':{'$type':'long'}}", {"{'a':1}", 1}, {"{'a':1.5}", 0});
    CHECK("{'a':{'$type':'number'}}", {"{'a':1}", 1}, {"{'a':1.5}", 1}, {"{'a':'1'}", 0},
          {"{}", 0});
    CHECK("{'a':{'$type':'string'}}", {"{'a':'x'}", 1}, {"{'a':1}", 0}, {"{'a':[1,'x']}", 1},
          {"{'a':[1]}", 0});
    CHECK("{'a':{'$type':'object'}}", {"{'a':{}}", 1}, {"{'a':[]}", 0}, {"{'a':[{}]}", 1});
    CHECK("{'a':{'$type':'array'}}", {"{'a':[]}", 1}, {"{'a':[1]}", 1}, {"{'a':1}", 0},
          {"{'a':[[1]]}", 1}, {"{'a':{}}", 0});
    CHECK("{'a':{'$type':'bool'}}", {"{'a':false}", 1}, {"{'a':0}", 0});
    CHECK("{'a':{'$type':'null'}}", {"{'a':null}", 1}, {"{}", 0}, {"{'a':[null]}", 1});
}

Test(filter_type, codes_and_lists)
{
    CHECK("{'a':{'$type':1}}", {"{'a':1.5}", 1}, {"{'a':1}", 0});
    CHECK("{'a':{'$type':2}}", {"{'a':'s'}", 1}, {"{'a':1}", 0});
    CHECK("{'a':{'$type':3}}", {"{'a':{}}", 1}, {"{'a':1}", 0});
    CHECK("{'a':{'$type':4}}", {"{'a':[]}", 1}, {"{'a':1}", 0});
    CHECK("{'a':{'$type':8}}", {"{'a':true}", 1}, {"{'a':1}", 0});
    CHECK("{'a':{'$type':10}}", {"{'a':null}", 1}, {"{'a':1}", 0});
    CHECK("{'a':{'$type':16}}", {"{'a':1}", 1}, {"{'a':1.0}", 0});
    CHECK("{'a':{'$type':18}}", {"{'a':1}", 1}, {"{'a':1.0}", 0});
    CHECK("{'a':{'$type':16.0}}", {"{'a':1}", 1});
    CHECK("{'a':{'$type':['string','null']}}", {"{'a':null}", 1}, {"{'a':'x'}", 1},
          {"{'a':1}", 0}, {"{}", 0});
    CHECK("{'a':{'$type':[1,'int']}}", {"{'a':1}", 1}, {"{'a':1.5}", 1}, {"{'a':'1'}", 0});
}

/* ---- $regex ------------------------------------------------------------- */

Test(filter_regex, strings_only)
{
    CHECK("{'a':{'$regex':'^ab'}}", {"{'a':'abc'}", 1}, {"{'a':'xab'}", 0},
          {"{'a':['x','abz']}", 1}, {"{'a':5}", 0}, {"{}", 0}, {"{'a':null}", 0},
          {"{'a':{'b':'ab'}}", 0});
    CHECK("{'a':{'$regex':''}}", {"{'a':''}", 1}, {"{'a':'z'}", 1}, {"{'a':5}", 0});
    CHECK("{'a.b':{'$regex':'x'}}", {"{'a':[{'b':'y'},{'b':'xx'}]}", 1}, {"{'a':[{'b':'y'}]}", 0});
}

Test(filter_regex, options)
{
    CHECK("{'a':{'$regex':'^AB','$options':'i'}}", {"{'a':'abc'}", 1}, {"{'a':'xab'}", 0});
    CHECK("{'a':{'$options':'i','$regex':'^AB'}}", {"{'a':'ab'}", 1});
    CHECK("{'a':{'$regex':'^b','$options':'m'}}", {"{'a':'a\\nb'}", 1});
    CHECK("{'a':{'$regex':'^b'}}", {"{'a':'a\\nb'}", 0});
    CHECK("{'a':{'$regex':'a.b','$options':'s'}}", {"{'a':'a\\nb'}", 1});
    CHECK("{'a':{'$regex':'a.b'}}", {"{'a':'a\\nb'}", 0}, {"{'a':'axb'}", 1});
    CHECK("{'a':{'$regex':'a b # comment','$options':'x'}}", {"{'a':'ab'}", 1}, {"{'a':'a b'}", 0});
    CHECK("{'a':{'$regex':'^A.C$','$options':'ismxu'}}", {"{'a':'a\\nc'}", 1});
}

Test(filter_regex, utf8_mode)
{
    CHECK("{'a':{'$regex':'^.$'}}", {"{'a':'\\u00e9'}", 1}, {"{'a':'\\u20ac'}", 1},
          {"{'a':'ab'}", 0});
    CHECK("{'a':{'$regex':'\\u00c9','$options':'i'}}", {"{'a':'\\u00e9'}", 1});
    CHECK("{'a':{'$regex':'a\\u0000b'}}", {"{'a':'xa\\u0000by'}", 1}, {"{'a':'ab'}", 0});
}

Test(filter_regex, with_other_operators_and_not)
{
    CHECK("{'a':{'$regex':'b','$ne':'abc'}}", {"{'a':'abd'}", 1}, {"{'a':'abc'}", 0},
          {"{'a':'x'}", 0});
    CHECK("{'a':{'$not':{'$regex':'^a'}}}", {"{'a':'abc'}", 0}, {"{'a':'b'}", 1}, {"{}", 1},
          {"{'a':5}", 1}, {"{'a':['b','a']}", 0});
    CHECK("{'a':{'$not':{'$regex':'^A','$options':'i'}}}", {"{'a':'abc'}", 0}, {"{'a':'b'}", 1});
}

/* A subject that overflows the JIT's stack is matched by the interpreter. */
Test(filter_regex, long_subject_past_the_jit_stack)
{
    size_t n = 20000;
    char *doc = malloc(n + 16);
    cr_assert_not_null(doc);
    strcpy(doc, "{'a':'");
    memset(doc + 6, 'a', n);
    strcpy(doc + 6 + n, "'}");
    cr_expect_eq(match("{'a':{'$regex':'^(a|b)*$'}}", doc), 1);
    cr_expect_eq(match("{'a':{'$regex':'^(a|b)*c$'}}", doc), 0);
    free(doc);
}

/* The compiled pattern is shared; match data is per thread. */
typedef struct re_thread {
    const qfilter *q;
    const dbuf *yes, *no;
    int bad;
} re_thread;

static void *re_worker(void *arg)
{
    re_thread *t = arg;
    for (int i = 0; i < 2000; i++)
        if (qfilter_match(t->q, val(t->yes)) != 1 || qfilter_match(t->q, val(t->no)) != 0)
            t->bad++;
    return NULL;
}

Test(filter_regex, shared_pattern_in_threads)
{
    qfilter *q = compile_ok("{'a':{'$regex':'^(x+)+y$','$options':'i'}}");
    dbuf yes, no;
    enc("{'a':'XXXXY'}", &yes);
    enc("{'a':'xxxxz'}", &no);
    pthread_t th[4];
    re_thread t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (re_thread){q, &yes, &no, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, re_worker, &t[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_expect_eq(t[i].bad, 0);
    }
    qfilter_free(q);
    dbuf_free(&yes);
    dbuf_free(&no);
}

/* ---- $mod $size --------------------------------------------------------- */

Test(filter_mod, remainders)
{
    CHECK("{'a':{'$mod':[4,0]}}", {"{'a':8}", 1}, {"{'a':9}", 0}, {"{'a':8.5}", 1}, {"{'a':-8}", 1},
          {"{'a':'8'}", 0}, {"{}", 0}, {"{'a':[1,12]}", 1}, {"{'a':null}", 0}, {"{'a':0}", 1});
    CHECK("{'a':{'$mod':[4,-1]}}", {"{'a':-5}", 1}, {"{'a':3}", 0}, {"{'a':-1.9}", 1});
    CHECK("{'a':{'$mod':[-1,0]}}", {"{'a':-9223372036854775808}", 1}, {"{'a':7}", 1});
    CHECK("{'a':{'$mod':[2.9,1]}}", {"{'a':3}", 1}, {"{'a':4}", 0});
    CHECK("{'a':{'$mod':[3,1]}}", {"{'a':1e300}", 1}, {"{'a':9223372036854775807}", 1});
}

Test(filter_size, exact_length_of_the_array_itself)
{
    CHECK("{'a':{'$size':2}}", {"{'a':[1,2]}", 1}, {"{'a':[1]}", 0}, {"{'a':[[1,2]]}", 0},
          {"{'a':'ab'}", 0}, {"{}", 0}, {"{'a':{'x':1,'y':2}}", 0});
    CHECK("{'a':{'$size':0}}", {"{'a':[]}", 1}, {"{}", 0}, {"{'a':null}", 0}, {"{'a':[[]]}", 0});
    CHECK("{'a.b':{'$size':1}}", {"{'a':[{'b':[1,2]},{'b':[3]}]}", 1}, {"{'a':[{'b':[1,2]}]}", 0});
    CHECK("{'a':{'$size':2.0}}", {"{'a':[1,2]}", 1});
    CHECK("{'a':{'$not':{'$size':1}}}", {"{'a':[1,2]}", 1}, {"{'a':[1]}", 0}, {"{}", 1});
}

/* ---- $all $elemMatch ------------------------------------------------------ */

Test(filter_all, every_value_present)
{
    CHECK("{'a':{'$all':[1,2]}}", {"{'a':[1,2,3]}", 1}, {"{'a':[2,1]}", 1}, {"{'a':[1]}", 0},
          {"{'a':1}", 0}, {"{}", 0}, {"{'a':[1.0,2.0]}", 1});
    CHECK("{'a':{'$all':[1]}}", {"{'a':1}", 1}, {"{'a':[0,1]}", 1});
    CHECK("{'a':{'$all':[]}}", {"{'a':[]}", 0}, {"{'a':[1]}", 0}, {"{}", 0});
    CHECK("{'a':{'$all':[[1,2]]}}", {"{'a':[1,2]}", 1}, {"{'a':[[1,2],3]}", 1}, {"{'a':[1]}", 0});
    CHECK("{'a.b':{'$all':[1,2]}}", {"{'a':[{'b':1},{'b':2}]}", 1}, {"{'a':[{'b':1}]}", 0});
    CHECK("{'a':{'$all':[null]}}", {"{}", 1}, {"{'a':1}", 0});
}

Test(filter_all, with_elem_match)
{
    CHECK("{'a':{'$all':[{'$elemMatch':{'b':1}},{'$elemMatch':{'c':2}}]}}",
          {"{'a':[{'b':1},{'c':2}]}", 1}, {"{'a':[{'b':1}]}", 0}, {"{'a':{'b':1,'c':2}}", 0});
    CHECK("{'a':{'$all':[{'$elemMatch':{'$gt':5}}]}}", {"{'a':[1,6]}", 1}, {"{'a':[1]}", 0});
}

Test(filter_elem_match, query_form_needs_one_element)
{
    CHECK("{'a':{'$elemMatch':{'b':1,'c':2}}}", {"{'a':[{'b':1,'c':2}]}", 1},
          {"{'a':[{'b':1},{'c':2}]}", 0}, {"{'a':{'b':1,'c':2}}", 0}, {"{'a':[{'b':[1],'c':2}]}", 1},
          {"{}", 0}, {"{'a':[]}", 0});
    CHECK("{'a':{'$elemMatch':{'b':{'$gt':1}}}}", {"{'a':[{'b':0},{'b':2}]}", 1},
          {"{'a':[{'b':0}]}", 0});
    CHECK("{'a':{'$elemMatch':{}}}", {"{'a':[{}]}", 1}, {"{'a':[1]}", 0}, {"{'a':[]}", 0},
          {"{'a':[[1]]}", 1});
    /* an array element is searched as an object with members "0", "1" */
    CHECK("{'a':{'$elemMatch':{'0':1}}}", {"{'a':[[1,2]]}", 1}, {"{'a':[[2,1]]}", 0},
          {"{'a':[{'0':1}]}", 1});
    CHECK("{'a':{'$elemMatch':{'$or':[{'b':1},{'c':1}]}}}", {"{'a':[{'c':1}]}", 1},
          {"{'a':[{'d':1}]}", 0});
    CHECK("{'a.b':{'$elemMatch':{'c':1}}}", {"{'a':[{'b':[{'c':1}]}]}", 1},
          {"{'a':[{'b':{'c':1}}]}", 0});
    CHECK("{'a':{'$elemMatch':{'b.c':{'$exists':true}}}}", {"{'a':[{'b':{'c':null}}]}", 1},
          {"{'a':[{'b':{}}]}", 0});
}

Test(filter_elem_match, operator_form_on_each_element)
{
    CHECK("{'a':{'$elemMatch':{'$gte':80,'$lt':85}}}", {"{'a':[82]}", 1}, {"{'a':[79,86]}", 0},
          {"{'a':82}", 0}, {"{'a':[[82]]}", 0});
    CHECK("{'a':{'$gt':1,'$lt':5}}", {"{'a':[79,0]}", 1});
    CHECK("{'a':{'$elemMatch':{'$eq':1}}}", {"{'a':[[1]]}", 0}, {"{'a':[2,1]}", 1});
    CHECK("{'a':{'$elemMatch':{'$eq':[1]}}}", {"{'a':[[1]]}", 1});
    CHECK("{'a':{'$elemMatch':{'$ne':1}}}", {"{'a':[1,1]}", 0}, {"{'a':[1,2]}", 1}, {"{'a':[]}", 0});
    CHECK("{'a':{'$elemMatch':{'$elemMatch':{'$eq':1}}}}", {"{'a':[[1]]}", 1}, {"{'a':[1]}", 0});
    CHECK("{'a':{'$elemMatch':{'$size':1}}}", {"{'a':[[5]]}", 1}, {"{'a':[[5,6]]}", 0});
    CHECK("{'a':{'$elemMatch':{'$in':[3,4],'$not':{'$eq':4}}}}", {"{'a':[4,3]}", 1},
          {"{'a':[4]}", 0});
    CHECK("{'a':{'$elemMatch':{'$type':'string','$regex':'^z'}}}", {"{'a':['y','zed']}", 1},
          {"{'a':['y']}", 0});
    CHECK("{'a':{'$elemMatch':{'$exists':true}}}", {"{'a':[null]}", 1}, {"{'a':[]}", 0});
    CHECK("{'a':{'$elemMatch':{'$all':[1]}}}", {"{'a':[1]}", 1}, {"{'a':[[1]]}", 0});
    CHECK("{'a':{'$elemMatch':{'$mod':[2,0]}}}", {"{'a':[1,4]}", 1}, {"{'a':[1,3]}", 0});
}

Test(filter_elem_match, negated)
{
    CHECK("{'a':{'$not':{'$elemMatch':{'b':1}}}}", {"{'a':[{'b':2}]}", 1}, {"{'a':[{'b':1}]}", 0},
          {"{}", 1});
}

/* ---- logic ---------------------------------------------------------------- */

Test(filter_logic, and_or_nor)
{
    CHECK("{'$and':[{'a':1},{'b':2}]}", {"{'a':1,'b':2}", 1}, {"{'a':1}", 0});
    CHECK("{'$and':[{'a':{'$gt':1}},{'a':{'$lt':5}}]}", {"{'a':[0,10]}", 1}, {"{'a':7}", 0});
    CHECK("{'$or':[{'a':1},{'b':2}]}", {"{'b':2}", 1}, {"{'a':1}", 1}, {"{'c':1}", 0});
    CHECK("{'$nor':[{'a':1},{'b':2}]}", {"{'a':2}", 1}, {"{'a':1}", 0}, {"{}", 1},
          {"{'b':2}", 0});
    CHECK("{'$or':[{'$and':[{'a':1},{'b':1}]},{'c':1}]}", {"{'a':1,'b':1}", 1}, {"{'a':1}", 0},
          {"{'c':1}", 1});
    CHECK("{'a':1,'$or':[{'b':1},{'c':1}]}", {"{'a':1,'c':1}", 1}, {"{'c':1}", 0},
          {"{'a':1}", 0});
    CHECK("{'$or':[{'a':1}],'$nor':[{'b':1}]}", {"{'a':1}", 1}, {"{'a':1,'b':1}", 0});
    CHECK("{'$and':[{}]}", {"{}", 1});
    CHECK("{'$or':[{}]}", {"{'x':1}", 1});
    CHECK("{'$nor':[{}]}", {"{'x':1}", 0});
}

Test(filter_logic, not_operator)
{
    CHECK("{'a':{'$not':{'$gt':5}}}", {"{'a':3}", 1}, {"{'a':6}", 0}, {"{}", 1}, {"{'a':'x'}", 1},
          {"{'a':[3,6]}", 0}, {"{'a':null}", 1});
    CHECK("{'a':{'$not':{'$gt':1,'$lt':5}}}", {"{'a':3}", 0}, {"{'a':7}", 1}, {"{'a':0}", 1});
    CHECK("{'a':{'$not':{'$in':[1,2]}}}", {"{'a':1}", 0}, {"{'a':3}", 1});
    CHECK("{'a':{'$not':{'$not':{'$eq':1}}}}", {"{'a':1}", 1}, {"{'a':2}", 0});
}

Test(filter_logic, comment_is_ignored)
{
    CHECK("{'$comment':'hello','a':1}", {"{'a':1}", 1}, {"{'a':2}", 0});
}

Test(filter_logic, fields_are_anded)
{
    CHECK("{'a':1,'b':'x','c.d':true}", {"{'a':1,'b':'x','c':{'d':true}}", 1},
          {"{'a':1,'b':'x','c':{'d':false}}", 0}, {"{'a':1,'b':'x'}", 0});
}

/* ---- compile errors -------------------------------------------------------- */

Test(filter_errors, shape_and_top_level)
{
    compile_fails("[1]", "the filter must be an object");
    compile_fails("5", "the filter must be an object");
    compile_fails("{'$foo':1}", "unknown top level operator: $foo");
    compile_fails("{'$where':'x'}", "unknown top level operator: $where");
    compile_fails("{'$gt':1}", "unknown top level operator: $gt");
    compile_fails("{'$and':[]}", "$and: needs a non-empty array");
    compile_fails("{'$or':{}}", "$or: needs a non-empty array");
    compile_fails("{'$nor':[1]}", "$nor: element 0 is not an object");
    compile_fails("{'$and':[{'a':1},'x']}", "$and: element 1 is not an object");
    compile_fails("{'$and':[{'a':{'$bad':1}}]}", "unknown operator: $bad");
}

Test(filter_errors, operators)
{
    compile_fails("{'a':{'$foo':1}}", "unknown operator: $foo");
    compile_fails("{'a':{'$gt':1,'b':2}}", "unknown operator: 'b'");
    compile_fails("{'a':{'$in':1}}", "$in: needs an array");
    compile_fails("{'a':{'$nin':'x'}}", "$nin: needs an array");
    compile_fails("{'a':{'$in':[1,{'$regex':'x'}]}}", "$in: operators are not allowed");
    compile_fails("{'a':{'$size':-1}}", "$size: needs a non-negative integer");
    compile_fails("{'a':{'$size':1.5}}", "$size: needs a non-negative integer");
    compile_fails("{'a':{'$size':'2'}}", "$size: needs a non-negative integer");
    compile_fails("{'a':{'$all':5}}", "$all: needs an array");
    compile_fails("{'a':{'$all':[{'$elemMatch':{'b':1}},1]}}", "$all: cannot mix");
    compile_fails("{'a':{'$all':[1,{'$elemMatch':{'b':1}}]}}", "$all: cannot mix");
    compile_fails("{'a':{'$all':[{'$gt':1}]}}", "$all: only $elemMatch");
    compile_fails("{'a':{'$elemMatch':5}}", "$elemMatch: needs an object");
    compile_fails("{'a':{'$elemMatch':{'$gt':1,'b':1}}}", "unknown operator: 'b'");
    compile_fails("{'a':{'$elemMatch':{'b':{'$bad':1}}}}", "unknown operator: $bad");
    compile_fails("{'a':{'$elemMatch':{'$bad':1}}}", "unknown operator: $bad");
    compile_fails("{'a':{'$not':5}}", "$not: needs an operator document or a $regex");
    compile_fails("{'a':{'$not':{}}}", "$not: cannot be empty");
    compile_fails("{'a':{'$not':{'b':1}}}", "$not: needs operators, not a field ('b')");
    compile_fails("{'a':{'$not':{'$bad':1}}}", "unknown operator: $bad");
}

Test(filter_errors, regex)
{
    compile_fails("{'a':{'$regex':5}}", "$regex: needs a string");
    compile_fails("{'a':{'$regex':'('}}", "$regex: invalid pattern '(':");
    compile_fails("{'a':{'$regex':'a[b'}}", "at offset 3");
    compile_fails("{'a':{'$regex':'x','$options':'q'}}", "$options: unknown option 'q'");
    compile_fails("{'a':{'$options':'i'}}", "$options: needs a $regex");
    compile_fails("{'a':{'$options':5,'$regex':'x'}}", "$options: needs a string");
    compile_fails("{'a':{'$not':{'$regex':'('}}}", "$regex: invalid pattern");
}

Test(filter_errors, mod_and_type)
{
    compile_fails("{'a':{'$mod':[0,1]}}", "$mod: divisor cannot be 0");
    compile_fails("{'a':{'$mod':[0.5,1]}}", "$mod: divisor cannot be 0");
    compile_fails("{'a':{'$mod':[1]}}", "$mod: needs an array [divisor, remainder]");
    compile_fails("{'a':{'$mod':[1,2,3]}}", "$mod: needs an array [divisor, remainder]");
    compile_fails("{'a':{'$mod':5}}", "$mod: needs an array [divisor, remainder]");
    compile_fails("{'a':{'$mod':['a',1]}}", "$mod: divisor and remainder must be numbers");
    compile_fails("{'a':{'$mod':[2,null]}}", "$mod: divisor and remainder must be numbers");
    compile_fails("{'a':{'$mod':[1e30,1]}}", "$mod: divisor and remainder must be numbers");
    compile_fails("{'a':{'$type':'date'}}", "$type: unknown type alias 'date'");
    compile_fails("{'a':{'$type':7}}", "$type: unknown type code 7");
    compile_fails("{'a':{'$type':2.5}}", "$type: unknown type code 2.5");
    compile_fails("{'a':{'$type':[]}}", "$type: the array of types is empty");
    compile_fails("{'a':{'$type':{}}}", "$type: needs a type alias");
    compile_fails("{'a':{'$type':['string',[2]]}}", "$type: needs a type alias");
    compile_fails("{'a':{'$type':['string','x']}}", "$type: unknown type alias 'x'");
}

Test(filter_errors, no_message_buffer_is_fine)
{
    dbuf f;
    qfilter *q;
    enc("{'a':{'$bad':1}}", &f);
    cr_expect_eq(qfilter_compile(val(&f), &q, NULL, 0), DOTDB_EINVAL);
    cr_expect_null(q);
    dbuf_free(&f);
}

/* ---- is_all, id_eq, seed --------------------------------------------------- */

static int is_all(const char *filter)
{
    qfilter *q = compile_ok(filter);
    int r = qfilter_is_all(q);
    qfilter_free(q);
    return r;
}

Test(filter_meta, is_all)
{
    cr_expect_eq(is_all("{}"), 1);
    cr_expect_eq(is_all("{'$comment':'x'}"), 1);
    cr_expect_eq(is_all("{'$and':[{}]}"), 1);
    cr_expect_eq(is_all("{'a':1}"), 0);
    cr_expect_eq(is_all("{'$nor':[{}]}"), 0);
    cr_expect_eq(is_all("{'a':{'$exists':false}}"), 0);
}

/* The id found, as a NUL-terminated copy in buf, or NULL. */
static const char *id_eq(const char *filter, char *buf)
{
    qfilter *q = compile_ok(filter);
    const char *id = (const char *)1;
    size_t len = 99;
    int r = qfilter_id_eq(q, &id, &len);
    const char *res = NULL;
    if (r) {
        memcpy(buf, id, len);
        buf[len] = 0;
        res = buf;
    } else {
        cr_expect_null(id);
        cr_expect_eq(len, 0);
    }
    qfilter_free(q);
    return res;
}

Test(filter_meta, id_eq)
{
    char buf[64];
    cr_expect_str_eq(id_eq("{'id':'x'}", buf), "x");
    cr_expect_str_eq(id_eq("{'a':1,'id':{'$eq':'k2'}}", buf), "k2");
    cr_expect_str_eq(id_eq("{'$and':[{'a':1},{'id':'y'}]}", buf), "y");
    cr_expect_str_eq(id_eq("{'$and':[{'$and':[{'id':'z'}]}]}", buf), "z");
    cr_expect_str_eq(id_eq("{'id':{'$gt':'a','$eq':'w'}}", buf), "w");
    cr_expect_null(id_eq("{'id':{'$in':['x']}}", buf));
    cr_expect_null(id_eq("{'$or':[{'id':'x'}]}", buf));
    cr_expect_null(id_eq("{'id':5}", buf));
    cr_expect_null(id_eq("{'a':1}", buf));
    cr_expect_null(id_eq("{'id':{'$ne':'x'}}", buf));
    cr_expect_null(id_eq("{'id':{'$all':['x']}}", buf));
    cr_expect_null(id_eq("{'a.id':'x'}", buf));
    cr_expect_null(id_eq("{'id':{'$not':{'$eq':'x'}}}", buf));
    cr_expect_null(id_eq("{}", buf));
}

/* Seed as JSON text (with '), or NULL when qfilter_seed fails (*rc). */
static char *seed(const char *filter, int *rc)
{
    qfilter *q = compile_ok(filter);
    dbuf out;
    dbuf_init(&out);
    *rc = qfilter_seed(q, &out);
    char *s = *rc == DOTDB_OK ? text(val(&out)) : NULL;
    dbuf_free(&out);
    qfilter_free(q);
    return s;
}

static void seed_is(const char *filter, const char *want)
{
    int rc;
    char *s = seed(filter, &rc);
    cr_assert_eq(rc, DOTDB_OK, "seed of %s failed: %d", filter, rc);
    cr_expect_str_eq(s, want, "seed of %s", filter);
    free(s);
}

Test(filter_meta, seed_from_equalities)
{
    seed_is("{}", "{}");
    seed_is("{'a':1,'b.c':'x','d':{'$gt':5},'$and':[{'e':{'$eq':null}}],'$or':[{'f':1}]}",
            "{'a':1,'b':{'c':'x'},'e':null}");
    seed_is("{'id':'k','n':{'x':[1,2.5]}}", "{'id':'k','n':{'x':[1,2.5]}}");
    seed_is("{'a':{'$in':[1]},'b':{'$all':[2]},'c':{'$not':{'$eq':3}},'d':{'$eq':4,'$lt':9}}",
            "{'d':4}");
    seed_is("{'x.y.z':1,'x.w':2}", "{'x':{'y':{'z':1},'w':2}}");
    int rc;
    cr_expect_null(seed("{'a':1,'a.b':2}", &rc));
    cr_expect_eq(rc, DOTDB_EINVAL);
    cr_expect_null(seed("{'$and':[{'a':1},{'a':2}]}", &rc));
    cr_expect_eq(rc, DOTDB_EINVAL);
    cr_expect_null(seed("{'a.b':1,'a':{'c':1}}", &rc));
    cr_expect_eq(rc, DOTDB_EINVAL);
}

/* ---- qvalue_cmp ------------------------------------------------------------ */

Test(order, qvalue_cmp_across_types)
{
    static const char *asc[] = {
        "null", "-1e300", "-9223372036854775808", "-9.2e18", "-1.5", "0", "0.5", "1", "9007199254740992.0",
        "9007199254740993", "9223372036854775807", "1e19", "''", "'A'", "'a'", "'ab'", "'b'",
        "'\\u00e9'", "{}", "{'a':null}", "{'a':1}", "{'a':2}", "{'a':2,'b':0}", "{'b':0}", "[]",
        "[null]", "[1]", "[1,2]", "[2]", "['a']", "false", "true",
    };
    size_t n = sizeof asc / sizeof asc[0];
    dbuf *b = calloc(n, sizeof *b);
    cr_assert_not_null(b);
    for (size_t i = 0; i < n; i++)
        enc(asc[i], &b[i]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int c = qvalue_cmp(val(&b[i]), val(&b[j]));
            int want = (i > j) - (i < j);
            cr_expect_eq((c > 0) - (c < 0), want, "qvalue_cmp(%s, %s) = %d", asc[i], asc[j], c);
        }
    for (size_t i = 0; i < n; i++)
        dbuf_free(&b[i]);
    free(b);
}

Test(order, qvalue_cmp_equal_values_and_missing)
{
    dbuf a, b, nul;
    enc("{'x':[1,{'y':2.0}]}", &a);
    enc("{'x':[1.0,{'y':2}]}", &b);
    enc("null", &nul);
    cr_expect_eq(qvalue_cmp(val(&a), val(&b)), 0);
    codec_val missing = {NULL, 0};
    cr_expect_eq(qvalue_cmp(missing, val(&nul)), 0);
    cr_expect_eq(qvalue_cmp(missing, missing), 0);
    cr_expect_lt(qvalue_cmp(missing, val(&a)), 0);
    cr_expect_gt(qvalue_cmp(val(&a), missing), 0);
    dbuf_free(&a);
    dbuf_free(&b);
    dbuf_free(&nul);
}

/* ---- sort ------------------------------------------------------------------ */

static qsort_spec *sort_ok(const char *spec)
{
    dbuf b;
    char err[ERRLEN] = "";
    qsort_spec *s = NULL;
    enc(spec, &b);
    cr_assert_eq(qsort_compile(val(&b), &s, err, sizeof err), DOTDB_OK, "sort %s: %s", spec, err);
    dbuf_free(&b);
    return s;
}

/* Sign of qsort_cmp(spec, a, b). */
static int scmp(const char *spec, const char *a, const char *b)
{
    qsort_spec *s = sort_ok(spec);
    dbuf da, db;
    enc(a, &da);
    enc(b, &db);
    int c = qsort_cmp(s, val(&da), val(&db));
    int rev = qsort_cmp(s, val(&db), val(&da));
    cr_expect_eq((c > 0) - (c < 0), -((rev > 0) - (rev < 0)), "sort %s not antisymmetric", spec);
    qsort_free(s);
    dbuf_free(&da);
    dbuf_free(&db);
    return (c > 0) - (c < 0);
}

Test(sort, single_key_types_and_missing)
{
    cr_expect_eq(scmp("{'a':1}", "{'a':1}", "{'a':2}"), -1);
    cr_expect_eq(scmp("{'a':-1}", "{'a':1}", "{'a':2}"), 1);
    cr_expect_eq(scmp("{'a':1}", "{}", "{'a':null}"), 0);
    cr_expect_eq(scmp("{'a':1}", "{}", "{'a':0}"), -1);
    cr_expect_eq(scmp("{'a':1}", "{'a':5}", "{'a':'5'}"), -1);
    cr_expect_eq(scmp("{'a':1}", "{'a':true}", "{'a':'5'}"), 1);
    cr_expect_eq(scmp("{'a':1}", "{'a':1}", "{'a':1.0}"), 0);
    cr_expect_eq(scmp("{'a':1.0}", "{'a':1}", "{'a':2}"), -1);
    cr_expect_eq(scmp("{'a':-1.0}", "{'a':1}", "{'a':2}"), 1);
}

Test(sort, arrays_use_min_ascending_max_descending)
{
    cr_expect_eq(scmp("{'a':1}", "{'a':[3,1]}", "{'a':2}"), -1);
    cr_expect_eq(scmp("{'a':-1}", "{'a':[3,1]}", "{'a':2}"), -1);
    cr_expect_eq(scmp("{'a':1}", "{'a':[3,5]}", "{'a':2}"), 1);
    cr_expect_eq(scmp("{'a':-1}", "{'a':[0,1]}", "{'a':2}"), 1);
    /* an empty array sorts before null and missing (MongoDB: undefined) */
    cr_expect_eq(scmp("{'a':1}", "{'a':[]}", "{}"), -1);
    cr_expect_eq(scmp("{'a':1}", "{'a':[]}", "{'a':null}"), -1);
    cr_expect_eq(scmp("{'a':-1}", "{'a':[]}", "{'a':null}"), 1);
    /* nested arrays are values: [[0]] has the single element [0], an array */
    cr_expect_eq(scmp("{'a':1}", "{'a':[[0]]}", "{'a':'z'}"), 1);
    cr_expect_eq(scmp("{'a':1}", "{'a':[null,5]}", "{'a':0}"), -1);
}

/* MongoDB's own order (jstests sorta): [] = [] < null = missing = null < 1 < [2]. */
Test(sort, mongodb_order_of_empty_arrays_null_and_missing)
{
    static const char *docs[] = {"{'a':[]}", "{'a':[]}",  "{'a':null}", "{}",
                                 "{'a':null}", "{'a':1}", "{'a':[2]}"};
    static const int group[] = {0, 0, 1, 1, 1, 2, 3};
    for (size_t i = 0; i < 7; i++)
        for (size_t j = 0; j < 7; j++) {
            int want = (group[i] > group[j]) - (group[i] < group[j]);
            cr_expect_eq(scmp("{'a':1}", docs[i], docs[j]), want, "%s vs %s", docs[i], docs[j]);
        }
}

Test(sort, dotted_and_numeric_paths)
{
    cr_expect_eq(scmp("{'a.b':1}", "{'a':[{'b':5},{'b':1}]}", "{'a':{'b':2}}"), -1);
    cr_expect_eq(scmp("{'a.b':-1}", "{'a':[{'b':5},{'b':1}]}", "{'a':{'b':2}}"), -1);
    /* an element without b gives null, the smallest */
    cr_expect_eq(scmp("{'a.b':1}", "{'a':[{'c':1},{'b':5}]}", "{'a':{'b':0}}"), -1);
    cr_expect_eq(scmp("{'a.b':1}", "{'a':5}", "{}"), 0);
    cr_expect_eq(scmp("{'a.0':1}", "{'a':[5,1]}", "{'a':[4,9]}"), 1);
    cr_expect_eq(scmp("{'a.0':1}", "{'a':[]}", "{}"), 0);
    cr_expect_eq(scmp("{'a.b.c':1}", "{'a':{'b':[{'c':3},{'c':2}]}}", "{'a':{'b':{'c':2.5}}}"), -1);
}

Test(sort, several_keys_and_ties)
{
    cr_expect_eq(scmp("{'a':1,'b':-1}", "{'a':1,'b':1}", "{'a':1,'b':2}"), 1);
    cr_expect_eq(scmp("{'a':1,'b':-1}", "{'a':0,'b':1}", "{'a':1,'b':2}"), -1);
    cr_expect_eq(scmp("{'a':1,'b':1}", "{'a':1,'b':2,'c':1}", "{'a':1,'b':2,'c':0}"), 0);
    cr_expect_eq(scmp("{}", "{'a':1}", "{'a':2}"), 0);
}

static void sort_fails(const char *spec, const char *want)
{
    dbuf b;
    char err[ERRLEN] = "";
    qsort_spec *s = (qsort_spec *)&s;
    enc(spec, &b);
    cr_expect_eq(qsort_compile(val(&b), &s, err, sizeof err), DOTDB_EINVAL, "sort %s", spec);
    cr_expect_null(s);
    cr_expect(strstr(err, want) != NULL, "sort %s: message '%s' lacks '%s'", spec, err, want);
    dbuf_free(&b);
}

Test(sort, compile_errors)
{
    sort_fails("[1]", "sort: the specification must be an object");
    sort_fails("{'a':2}", "sort: the direction of 'a' must be 1 or -1");
    sort_fails("{'a':'asc'}", "sort: the direction of 'a' must be 1 or -1");
    sort_fails("{'a':0}", "must be 1 or -1");
    sort_fails("{'$a':1}", "sort: invalid field name '$a'");
    sort_fails("{'':1}", "sort: invalid field name ''");
    char spec[1024] = "{";
    for (int i = 0; i < 33; i++)
        snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%s'k%d':1", i ? "," : "", i);
    strcat(spec, "}");
    sort_fails(spec, "sort: at most 32 keys");
}

/* ---- projection -------------------------------------------------------------- */

static char *project(const char *spec, const char *doc)
{
    dbuf s, d, out;
    char err[ERRLEN] = "";
    qproj *p = NULL;
    enc(spec, &s);
    enc(doc, &d);
    cr_assert_eq(qproj_compile(val(&s), &p, err, sizeof err), DOTDB_OK, "proj %s: %s", spec, err);
    dbuf_free(&s);
    dbuf_init(&out);
    cr_assert_eq(qproj_apply(p, val(&d), &out), DOTDB_OK);
    char vmsg[ERRLEN];
    cr_assert_eq(codec_validate(out.data, out.len, CODEC_DEFAULT_MAX_DEPTH, vmsg, sizeof vmsg),
                 DOTDB_OK, "projected doc invalid: %s", vmsg);
    char *t = text(val(&out));
    qproj_free(p);
    dbuf_free(&d);
    dbuf_free(&out);
    return t;
}

static void proj_is(const char *spec, const char *doc, const char *want)
{
    char *t = project(spec, doc);
    cr_expect_str_eq(t, want, "projection %s of %s", spec, doc);
    free(t);
}

Test(projection, inclusion_and_id)
{
    const char *d = "{'id':'x','a':1,'b':2}";
    proj_is("{'a':1}", d, "{'id':'x','a':1}");
    proj_is("{'a':true}", d, "{'id':'x','a':1}");
    proj_is("{'a':1,'id':0}", d, "{'a':1}");
    proj_is("{'a':1,'id':1}", d, "{'id':'x','a':1}");
    proj_is("{'id':1}", d, "{'id':'x'}");
    proj_is("{'b':1,'a':1}", d, "{'id':'x','a':1,'b':2}");
    proj_is("{'zz':1}", d, "{'id':'x'}");
    proj_is("{'zz':1,'id':0}", d, "{}");
}

Test(projection, exclusion)
{
    const char *d = "{'id':'x','a':1,'b':2}";
    proj_is("{'b':0}", d, "{'id':'x','a':1}");
    proj_is("{'b':false}", d, "{'id':'x','a':1}");
    proj_is("{'id':0}", d, "{'a':1,'b':2}");
    proj_is("{'a':0,'id':0}", d, "{'b':2}");
    proj_is("{}", d, "{'id':'x','a':1,'b':2}");
    proj_is("{'zz':0}", d, "{'id':'x','a':1,'b':2}");
}

Test(projection, dotted_inclusion_through_objects_and_arrays)
{
    proj_is("{'b.c':1}", "{'id':'x','b':{'c':1,'d':2},'e':3}", "{'id':'x','b':{'c':1}}");
    proj_is("{'b.c':1}", "{'id':'x','b':{'x':1}}", "{'id':'x','b':{}}");
    proj_is("{'b.c':1}", "{'id':'x','b':5}", "{'id':'x'}");
    proj_is("{'b.c':1}", "{'id':'x','b':[{'c':1,'d':1},{'d':2},5,[{'c':3},4]]}",
            "{'id':'x','b':[{'c':1},{},[{'c':3}]]}");
    proj_is("{'b.c':1,'b.d':1,'a':1}", "{'id':'x','a':[1],'b':{'d':{'z':1},'c':2,'e':3}}",
            "{'id':'x','a':[1],'b':{'d':{'z':1},'c':2}}");
    proj_is("{'a.b.c':1}", "{'id':'x','a':{'b':[{'c':1,'d':2}],'x':1}}",
            "{'id':'x','a':{'b':[{'c':1}]}}");
}

Test(projection, dotted_exclusion_through_objects_and_arrays)
{
    proj_is("{'b.c':0}", "{'id':'x','b':[{'c':1,'d':1},5,[{'c':2,'e':1}]],'e':{'c':1}}",
            "{'id':'x','b':[{'d':1},5,[{'e':1}]],'e':{'c':1}}");
    proj_is("{'b.c':0,'b.d':0}", "{'id':'x','b':{'c':1,'d':2,'e':3}}", "{'id':'x','b':{'e':3}}");
    proj_is("{'b.c':0}", "{'id':'x','b':7}", "{'id':'x','b':7}");
}

Test(projection, untouched_document_is_copied_verbatim)
{
    dbuf s, d, out;
    qproj *p;
    enc("{'zz':0}", &s);
    enc("{'id':'x','a':[1,{'b':2.5}],'c':'\\u00e9'}", &d);
    cr_assert_eq(qproj_compile(val(&s), &p, NULL, 0), DOTDB_OK);
    dbuf_init(&out);
    cr_assert_eq(dbuf_append(&out, "X", 1), 0);
    cr_assert_eq(qproj_apply(p, val(&d), &out), DOTDB_OK);
    cr_assert_eq(out.len, d.len + 1);
    cr_expect_eq(memcmp(out.data + 1, d.data, d.len), 0);
    qproj_free(p);
    dbuf_free(&s);
    dbuf_free(&d);
    dbuf_free(&out);
}

static void proj_fails(const char *spec, const char *want)
{
    dbuf b;
    char err[ERRLEN] = "";
    qproj *p = (qproj *)&p;
    enc(spec, &b);
    cr_expect_eq(qproj_compile(val(&b), &p, err, sizeof err), DOTDB_EINVAL, "proj %s", spec);
    cr_expect_null(p);
    cr_expect(strstr(err, want) != NULL, "proj %s: message '%s' lacks '%s'", spec, err, want);
    dbuf_free(&b);
}

Test(projection, compile_errors)
{
    proj_fails("[1]", "projection: the specification must be an object");
    proj_fails("{'a':1,'b':0}", "projection: cannot mix inclusion and exclusion ('b')");
    proj_fails("{'a':0,'b':1}", "projection: cannot mix inclusion and exclusion ('b')");
    proj_fails("{'a':'x'}", "projection: the value of 'a' must be 1, 0, true or false");
    proj_fails("{'a':{'$slice':1}}", "the value of 'a' must be");
    proj_fails("{'a':null}", "the value of 'a' must be");
    proj_fails("{'a':1,'a.b':1}", "projection: path collision at 'a.b'");
    proj_fails("{'a.b':1,'a':1}", "projection: path collision at 'a'");
    proj_fails("{'a.b':0,'a':0}", "projection: path collision at 'a'");
}

Test(projection, invalid_paths)
{
    proj_fails("{'$a':1}", "projection: invalid field path '$a'");
    proj_fails("{'a..b':1}", "projection: invalid field path 'a..b'");
    proj_fails("{'':1}", "projection: invalid field path ''");
    proj_fails("{'a.':1}", "projection: invalid field path 'a.'");
}

/* ---- randomized cross-checks ------------------------------------------------- */

static const char *rand_value(unsigned *seed)
{
    static const char *pool[] = {
        "0", "1", "-1", "2", "1.0", "1.5", "-0.5", "1e3", "1000", "9007199254740993",
        "9007199254740992.0", "'a'", "'b'", "'ab'", "''", "null", "true", "false", "[]", "[1]",
        "[1,2]", "['a',null]", "{}", "{'x':1}", "{'x':1.0}", "{'y':[]}", "[[1]]", "[{'x':1}]",
    };
    return pool[rand_r(seed) % (sizeof pool / sizeof pool[0])];
}

/* $in with a long list (sorted search) agrees with $or of equalities
 * (each checked on its own) on random documents. */
Test(random, long_in_agrees_with_or_of_eq)
{
    unsigned seed = 12345;
    for (int round = 0; round < 60; round++) {
        char in[2048] = "{'a':{'$in':[", ors[4096] = "{'$or':[";
        int n = 9 + (int)(rand_r(&seed) % 12);
        for (int i = 0; i < n; i++) {
            const char *v = rand_value(&seed);
            snprintf(in + strlen(in), sizeof in - strlen(in), "%s%s", i ? "," : "", v);
            snprintf(ors + strlen(ors), sizeof ors - strlen(ors), "%s{'a':{'$eq':%s}}",
                     i ? "," : "", v);
        }
        strcat(in, "]}}");
        strcat(ors, "]}");
        qfilter *qi = compile_ok(in), *qo = compile_ok(ors);
        for (int k = 0; k < 40; k++) {
            char doc[256];
            if (k == 0)
                snprintf(doc, sizeof doc, "{}");
            else
                snprintf(doc, sizeof doc, "{'a':%s}", rand_value(&seed));
            dbuf d;
            enc(doc, &d);
            cr_expect_eq(qfilter_match(qi, val(&d)), qfilter_match(qo, val(&d)), "%s vs %s on %s",
                         in, ors, doc);
            dbuf_free(&d);
        }
        qfilter_free(qi);
        qfilter_free(qo);
    }
}

/* On scalar fields, $gt/$gte/$lt/$lte agree with qvalue_cmp restricted to
 * one type bracket, and $eq with qvalue_cmp == 0. */
Test(random, comparisons_agree_with_qvalue_cmp)
{
    unsigned seed = 777;
    static const char *ops[] = {"$gt", "$gte", "$lt", "$lte", "$eq", "$ne"};
    for (int round = 0; round < 400; round++) {
        const char *x = rand_value(&seed), *y = rand_value(&seed);
        const char *op = ops[rand_r(&seed) % 6];
        char f[256], doc[256];
        snprintf(f, sizeof f, "{'a':{'%s':%s}}", op, y);
        snprintf(doc, sizeof doc, "{'a':%s}", x);
        dbuf bx, by;
        enc(x, &bx);
        enc(y, &by);
        if (codec_type(val(&bx)) == DOTDB_T_ARRAY) { /* arrays also match by element */
            dbuf_free(&bx);
            dbuf_free(&by);
            continue;
        }
        int c = qvalue_cmp(val(&bx), val(&by));
        int tx = codec_type(val(&bx)), ty = codec_type(val(&by));
        int numx = tx == DOTDB_T_INT || tx == DOTDB_T_DOUBLE;
        int numy = ty == DOTDB_T_INT || ty == DOTDB_T_DOUBLE;
        int same = tx == ty || (numx && numy);
        int want;
        if (strcmp(op, "$gt") == 0)
            want = same && c > 0;
        else if (strcmp(op, "$gte") == 0)
            want = same && c >= 0;
        else if (strcmp(op, "$lt") == 0)
            want = same && c < 0;
        else if (strcmp(op, "$lte") == 0)
            want = same && c <= 0;
        else if (strcmp(op, "$eq") == 0)
            want = c == 0;
        else
            want = c != 0;
        cr_expect_eq(match(f, doc), want, "%s on %s", f, doc);
        dbuf_free(&bx);
        dbuf_free(&by);
    }
}
