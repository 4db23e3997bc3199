/*
 * test_agg.c - unit tests of the aggregation pipeline (lib/agg.h and
 * lib/agg*.c), run without a coordinator: documents are encoded from JSON
 * with the codec, pushed into a compiled pipeline, and the output compared
 * with the documents MongoDB gives.
 *
 * Tables.  A stage row is {input documents, pipeline, expected output
 * documents} or {input, pipeline, NULL, expected error substring}; an
 * expression row is {document, expression, expected value} evaluated as
 * [{$replaceWith: {r: <expression>}}] (a missing result leaves r out; the
 * expected value is written MISSING).  Every stage, accumulator and
 * expression operator of agg.h has rows, with the awkward cases: missing
 * fields, null, nested arrays, arrays of arrays, mixed int/double/string
 * values, empty arrays, unicode strings.
 *
 * Comparison is exact, types included: 1 is an int and 1.0 a double (the
 * codec keeps the difference and so does MongoDB's result typing: $avg and
 * $divide give doubles, $sum of ints an int, and so on); member order is
 * compared too.  Every output document is also run through codec_validate,
 * so a malformed encoding of a computed value fails the row.
 *
 * JSON in this file is written with single quotes for readability; the
 * helpers turn them into double quotes before parsing.
 */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "codec.h"

#define ERRLEN 512

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

/* JSON text of n encoded documents back to back, as an array with ' for ". */
static char *docs_text(const uint8_t *p, size_t len)
{
    dbuf out;
    dbuf_init(&out);
    cr_assert_eq(dbuf_putc(&out, '['), 0);
    for (size_t off = 0, i = 0; off < len; i++) {
        codec_val v = {p + off, codec_val_len(p + off)};
        if (i > 0)
            cr_assert_eq(dbuf_putc(&out, ','), 0);
        cr_assert_eq(codec_to_json(v, &out), DOTDB_OK);
        off += v.len;
    }
    cr_assert_eq(dbuf_putc(&out, ']'), 0);
    cr_assert_eq(dbuf_putc(&out, 0), 0);
    char *s = (char *)dbuf_steal(&out, NULL);
    for (char *q = s; *q; q++)
        if (*q == '"')
            *q = '\'';
    return s;
}

/* Exact equality: same types (int is not double), same numbers, same bytes,
 * members in the same order. */
static int same(codec_val a, codec_val b)
{
    int ta = codec_type(a), tb = codec_type(b);
    if (ta != tb)
        return 0;
    switch (ta) {
    case DOTDB_T_INT: {
        int64_t x, y;
        codec_as_int64(a, &x);
        codec_as_int64(b, &y);
        return x == y;
    }
    case DOTDB_T_DOUBLE: {
        double x, y;
        codec_as_double(a, &x);
        codec_as_double(b, &y);
        return x == y;
    }
    case DOTDB_T_ARRAY: {
        size_t n = codec_count(a);
        if (n != codec_count(b))
            return 0;
        for (size_t i = 0; i < n; i++) {
            codec_val x, y;
            codec_arr_at(a, i, &x);
            codec_arr_at(b, i, &y);
            if (!same(x, y))
                return 0;
        }
        return 1;
    }
    case DOTDB_T_OBJECT: {
        size_t n = codec_count(a);
        if (n != codec_count(b))
            return 0;
        for (size_t i = 0; i < n; i++) {
            const char *ka, *kb;
            size_t la, lb;
            codec_val x, y;
            codec_obj_at(a, i, &ka, &la, &x);
            codec_obj_at(b, i, &kb, &lb, &y);
            if (la != lb || memcmp(ka, kb, la) != 0 || !same(x, y))
                return 0;
        }
        return 1;
    }
    default:
        return codec_equal(a, b);
    }
}

/* Run the pipeline over the documents (a JSON array).  The output
 * documents go to out; on an error the code is returned and the message is
 * in err.  Each output document must be a valid encoded object. */
static int run(const char *docs, const char *pipe, size_t budget, dbuf *out, char *err,
               size_t errlen)
{
    dbuf d, pb;
    agg_pipeline *p = (agg_pipeline *)&p; /* must be reset */
    agg_run *r = NULL;
    enc(pipe, &pb);
    enc(docs, &d);
    dbuf_init(out);
    err[0] = '\0';
    int rc = agg_compile(val(&pb), &p, err, errlen);
    dbuf_free(&pb); /* the compiled pipeline must not need its input */
    if (rc != DOTDB_OK) {
        cr_expect_null(p, "%s: *out not cleared on a compile failure", pipe);
        goto out;
    }
    cr_assert_not_null(p);
    rc = agg_begin(p, 0, budget, out, &r);
    cr_assert_eq(rc, DOTDB_OK);
    cr_assert_eq(codec_type(val(&d)), DOTDB_T_ARRAY, "input of %s is not an array", pipe);
    for (size_t i = 0; i < codec_count(val(&d)); i++) {
        codec_val doc;
        codec_arr_at(val(&d), i, &doc);
        rc = agg_push(r, doc, err, errlen);
        if (rc == AGG_STOP)
            break;
        if (rc != DOTDB_OK)
            goto out;
    }
    rc = agg_finish(r, err, errlen);
    if (rc != DOTDB_OK)
        goto out;
    for (size_t off = 0; off < out->len;) {
        size_t n = codec_val_len(out->data + off);
        char verr[ERRLEN];
        cr_assert_leq(off + n, out->len, "%s: output overruns its buffer", pipe);
        cr_assert_eq(codec_validate(out->data + off, n, 100, verr, sizeof verr), DOTDB_OK,
                     "%s: output document %zu invalid: %s", pipe, off, verr);
        cr_assert_eq(codec_type((codec_val){out->data + off, n}), DOTDB_T_OBJECT);
        off += n;
    }
out:
    agg_run_free(r);
    agg_free(p == (agg_pipeline *)&p ? NULL : p);
    dbuf_free(&d);
    return rc;
}

typedef struct arow {
    const char *docs; /* JSON array of the input documents */
    const char *pipe; /* JSON array of stages */
    const char *want; /* JSON array of the output documents; NULL: an error */
    const char *err;  /* substring of the message when want is NULL */
    int rc;           /* the error code (0: DOTDB_EINVAL) */
    size_t budget;    /* memory_bytes for agg_begin (0: the default) */
} arow;

static void check_row(const arow *c, size_t i)
{
    dbuf out;
    char err[ERRLEN];
    int rc = run(c->docs, c->pipe, c->budget, &out, err, sizeof err);
    if (c->want == NULL) {
        int want_rc = c->rc ? c->rc : DOTDB_EINVAL;
        cr_expect_eq(rc, want_rc, "row %zu %s on %.300s: expected error %d ('%s'), got %d", i, c->pipe,
                     c->docs, want_rc, c->err, rc);
        cr_expect(strstr(err, c->err) != NULL, "row %zu %s: message '%s' lacks '%s'", i, c->pipe,
                  err, c->err);
        dbuf_free(&out);
        return;
    }
    cr_expect_eq(rc, DOTDB_OK, "row %zu %s on %.300s: failed: %s", i, c->pipe, c->docs, err);
    if (rc == DOTDB_OK) {
        dbuf w;
        enc(c->want, &w);
        size_t off = 0, k = 0, n = codec_count(val(&w));
        int ok = 1;
        for (; k < n && off < out.len; k++) {
            codec_val e, got = {out.data + off, codec_val_len(out.data + off)};
            codec_arr_at(val(&w), k, &e);
            ok &= same(got, e);
            off += got.len;
        }
        ok &= k == n && off == out.len;
        char *t = docs_text(out.data, out.len);
        cr_expect(ok, "row %zu %s on %.300s:\n  got  %.600s\n  want %s", i, c->pipe, c->docs, t,
                  c->want);
        free(t);
        dbuf_free(&w);
    }
    dbuf_free(&out);
}

static void check_rows(const arow *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_row(&c[i], i);
}

#define OK(docs, pipe, want) {docs, pipe, want, NULL, 0, 0}
#define ERR(docs, pipe, msg) {docs, pipe, NULL, msg, 0, 0}
#define ROWS(...)                                                                            \
    do {                                                                                     \
        const arow rows_[] = {__VA_ARGS__};                                                  \
        check_rows(rows_, sizeof rows_ / sizeof rows_[0]);                                   \
    } while (0)

/* Expression rows: the value of expr on doc, as [{$replaceWith: {r: expr}}]. */
typedef struct erow {
    const char *doc;
    const char *expr;
    const char *want; /* JSON value, "MISSING", or NULL: an error */
    const char *err;
} erow;

static void check_exprs(const erow *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char docs[1024], pipe[1024], want[1024];
        snprintf(docs, sizeof docs, "[%s]", c[i].doc);
        snprintf(pipe, sizeof pipe, "[{'$replaceWith': {'r': %s}}]", c[i].expr);
        if (c[i].want != NULL && strcmp(c[i].want, "MISSING") == 0)
            snprintf(want, sizeof want, "[{}]");
        else if (c[i].want != NULL)
            snprintf(want, sizeof want, "[{'r': %s}]", c[i].want);
        arow row = {docs, pipe, c[i].want ? want : NULL, c[i].err, 0, 0};
        check_row(&row, i);
    }
}

#define EXPRS(...)                                                                           \
    do {                                                                                     \
        static const erow rows_[] = {__VA_ARGS__};                                           \
        check_exprs(rows_, sizeof rows_ / sizeof rows_[0]);                                  \
    } while (0)
#define EV(doc, expr, want) {doc, expr, want, NULL}
#define EE(doc, expr, msg) {doc, expr, NULL, msg}

/* ---- $match --------------------------------------------------------------- */

Test(agg_match, filters_with_the_query_language)
{
    static const char *docs = "[{'a':1},{'a':1.0},{'a':'1'},{},{'a':null},{'a':[1,2]},{'a':[[1]]}]";
    ROWS(OK(docs, "[{'$match':{'a':1}}]", "[{'a':1},{'a':1.0},{'a':[1,2]}]"),
         OK(docs, "[{'$match':{'a':null}}]", "[{},{'a':null}]"),
         OK(docs, "[{'$match':{'a':[1]}}]", "[{'a':[[1]]}]"),
         OK(docs, "[{'$match':{'a':{'$type':'string'}}}]", "[{'a':'1'}]"),
         OK(docs, "[{'$match':{}}]", docs),
         OK("[{'a':[{'b':1},{'b':2}]},{'a':{'b':2}},{'a':[[{'b':2}]]}]",
            "[{'$match':{'a.b':2}}]", "[{'a':[{'b':1},{'b':2}]},{'a':{'b':2}}]"),
         OK("[{'s':'héllo'},{'s':'hello'},{'s':'日本'}]", "[{'$match':{'s':{'$gt':'hz'}}}]",
            "[{'s':'héllo'},{'s':'日本'}]"),
         OK("[{'a':1},{'a':2},{'a':2}]",
            "[{'$group':{'_id':'$a','n':{'$sum':1}}},{'$match':{'n':{'$gt':1}}}]",
            "[{'_id':2,'n':2}]"),
         OK("[]", "[{'$match':{'a':1}}]", "[]"),
         ERR(docs, "[{'$match':{'a':{'$frob':1}}}]", "pipeline[0] $match: unknown operator"),
         ERR(docs, "[{'$match':[1]}]", "pipeline[0] $match: the argument must be an object"));
}

/* ---- $project ------------------------------------------------------------- */

Test(agg_project, inclusion_keeps_document_order_and_ids)
{
    ROWS(OK("[{'id':'x','_id':7,'b':2,'a':1}]", "[{'$project':{'a':1}}]",
            "[{'id':'x','_id':7,'a':1}]"),
         OK("[{'id':'x','_id':7,'b':2,'a':1}]", "[{'$project':{'a':true,'b':5,'_id':0}}]",
            "[{'id':'x','b':2,'a':1}]"),
         OK("[{'id':'x','a':1}]", "[{'$project':{'id':0,'a':1}}]", "[{'a':1}]"),
         OK("[{'b':1},{}]", "[{'$project':{'a':1}}]", "[{},{}]"),
         OK("[{'a':{'b':1,'c':2},'d':3}]", "[{'$project':{'a.b':1}}]", "[{'a':{'b':1}}]"),
         OK("[{'a':{'b':1,'c':2},'d':3}]", "[{'$project':{'a':{'c':1}}}]", "[{'a':{'c':2}}]"),
         /* through arrays: scalars dropped, objects kept (possibly empty), nested arrays
          * descended */
         OK("[{'a':[{'b':1,'c':2},{'c':3},5,[{'b':4},6],[]]}]", "[{'$project':{'a.b':1}}]",
            "[{'a':[{'b':1},{},[{'b':4}],[]]}]"),
         OK("[{'a':5},{'a':null},{'a':[]}]", "[{'$project':{'a.b':1}}]", "[{},{},{'a':[]}]"));
}

Test(agg_project, computed_fields)
{
    ROWS(OK("[{'a':1,'x':2}]", "[{'$project':{'b':'$a','a':1}}]", "[{'a':1,'b':1}]"),
         OK("[{'a':1}]", "[{'$project':{'s':'lit','n':{'$literal':1},'t':{'$literal':true}}}]",
            "[{'s':'lit','n':1,'t':true}]"),
         OK("[{'a':2}]", "[{'$project':{'r':{'$add':['$a',1]},'m':'$nope'}}]", "[{'r':3}]"),
         OK("[{'a':{'b':1,'d':2},'x':5}]", "[{'$project':{'a.b':1,'a.c':'$x'}}]",
            "[{'a':{'b':1,'c':5}}]"),
         OK("[{'a':3}]", "[{'$project':{'a.b':1,'a.c':{'$literal':5}}}]", "[{'a':{'c':5}}]"),
         /* the inclusion pass drops the scalar 2, as MongoDB's does */
         OK("[{'a':[{'b':1},2]}]", "[{'$project':{'a.c':{'$literal':0}}}]", "[{'a':[{'c':0}]}]"),
         OK("[{'a':1,'b':2}]", "[{'$project':{'a':1,'b':'$$REMOVE'}}]", "[{'a':1}]"),
         OK("[{'u':'日本','v':'語'}]", "[{'$project':{'w':{'$concat':['$u','$v']}}}]",
            "[{'w':'日本語'}]"));
}

Test(agg_project, exclusion)
{
    ROWS(OK("[{'id':'x','a':1,'b':2}]", "[{'$project':{'a':0}}]", "[{'id':'x','b':2}]"),
         OK("[{'id':'x','a':1,'b':2}]", "[{'$project':{'a':false,'id':0}}]", "[{'b':2}]"),
         OK("[{'a':{'b':1,'c':2}}]", "[{'$project':{'a.b':0}}]", "[{'a':{'c':2}}]"),
         OK("[{'a':[{'b':1,'c':2},3]}]", "[{'$project':{'a':{'b':0}}}]",
            "[{'a':[{'c':2},3]}]"),
         OK("[{'_id':1,'a':1}]", "[{'$project':{'_id':0}}]", "[{'a':1}]"),
         OK("[{'a':1}]", "[{'$project':{'nope':0}}]", "[{'a':1}]"),
         /* _id (and id) never decide the kind of projection: 1 is their default */
         OK("[{'id':'x','_id':1,'a':1,'b':2}]", "[{'$project':{'a':0,'_id':1}}]",
            "[{'id':'x','_id':1,'b':2}]"),
         OK("[{'id':'x','_id':1,'a':1,'b':2}]", "[{'$project':{'id':true,'b':0}}]",
            "[{'id':'x','_id':1,'a':1}]"),
         OK("[{'id':'x','_id':1,'a':1}]", "[{'$project':{'_id':1}}]", "[{'id':'x','_id':1}]"),
         OK("[{'id':'x','_id':1,'a':1}]", "[{'$project':{'_id':1,'id':0}}]", "[{'_id':1}]"));
}

Test(agg_project, errors)
{
    ROWS(ERR("[{}]", "[{'$project':{}}]", "pipeline[0] $project: the specification must have"),
         ERR("[{}]", "[{'$project':'a'}]", "the argument must be an object, not string"),
         ERR("[{}]", "[{'$project':{'a':0,'b':1}}]", "cannot exclude 'a'"),
         ERR("[{}]", "[{'$project':{'b':1,'a':{'c':0}}}]", "cannot exclude 'a.c'"),
         ERR("[{}]", "[{'$project':{'$a':1}}]", "may not start with '$'"),
         ERR("[{}]", "[{'$project':{'a':1,'a.b':1}}]", "path collision at 'a.b'"),
         ERR("[{}]", "[{'$project':{'a..b':1}}]", "empty part"),
         ERR("[{}]", "[{'$project':{'a':{}}}]", "an empty object is not a valid value"),
         ERR("[{}]", "[{'$project':{'a':{'$frob':1}}}]", "unknown expression operator '$frob'"),
         ERR("[{'a':'x'}]", "[{'$project':{'r':{'$add':['$a',1]}}}]",
             "$project: $add only supports numeric types, not string"));
}

/* ---- $addFields / $set / $unset -------------------------------------------- */

Test(agg_addfields, adds_replaces_and_removes)
{
    ROWS(OK("[{'a':1}]", "[{'$addFields':{'b':{'$add':['$a',1]}}}]", "[{'a':1,'b':2}]"),
         OK("[{'a':1,'b':2}]", "[{'$set':{'a':'x'}}]", "[{'a':'x','b':2}]"),
         OK("[{'a':1}]", "[{'$set':{'c.d':1}}]", "[{'a':1,'c':{'d':1}}]"),
         OK("[{'a':1}]", "[{'$set':{'c':{'d':1,'e':'$a'}}}]", "[{'a':1,'c':{'d':1,'e':1}}]"),
         OK("[{'a':5}]", "[{'$set':{'a.b':1}}]", "[{'a':{'b':1}}]"),
         OK("[{'a':[{'x':1},2,[{'y':3}]]}]", "[{'$set':{'a.b':1}}]",
            "[{'a':[{'x':1,'b':1},{'b':1},[{'y':3,'b':1}]]}]"),
         OK("[{'a':[]}]", "[{'$set':{'a.b':1}}]", "[{'a':[]}]"),
         OK("[{'a':1,'b':2}]", "[{'$set':{'a':'$$REMOVE'}}]", "[{'b':2}]"),
         OK("[{'a':1,'b':2}]", "[{'$set':{'a':'$nope'}}]", "[{'b':2}]"),
         /* every expression sees the stage's input document */
         OK("[{'a':1}]", "[{'$set':{'a':5,'b':'$a'}}]", "[{'a':5,'b':1}]"),
         OK("[{'a':1}]", "[{'$set':{'a':5}},{'$set':{'b':'$a'}}]", "[{'a':5,'b':5}]"),
         OK("[{'a':1}]", "[{'$set':{'n':null,'e':[],'s':'é'}}]",
            "[{'a':1,'n':null,'e':[],'s':'é'}]"),
         ERR("[{}]", "[{'$addFields':{}}]", "pipeline[0] $addFields: the specification must"),
         ERR("[{}]", "[{'$set':5}]", "pipeline[0] $set: the argument must be an object"),
         ERR("[{}]", "[{'$set':{'a':1,'a.b':2}}]", "path collision"),
         ERR("[{'a':[1]}]", "[{'$set':{'n':{'$size':'$b'}}}]",
             "$set: $size: the argument must be an array, not missing"));
}

Test(agg_unset, removes_fields)
{
    ROWS(OK("[{'a':1,'b':2}]", "[{'$unset':'a'}]", "[{'b':2}]"),
         OK("[{'a':1,'b':{'c':1,'d':2}}]", "[{'$unset':['a','b.c']}]", "[{'b':{'d':2}}]"),
         OK("[{'a':[{'c':1,'d':2},7]}]", "[{'$unset':'a.c'}]", "[{'a':[{'d':2},7]}]"),
         OK("[{'a':1}]", "[{'$unset':['x','y.z']}]", "[{'a':1}]"),
         ERR("[{}]", "[{'$unset':[]}]", "pipeline[0] $unset: the array of fields must not be empty"),
         ERR("[{}]", "[{'$unset':[1]}]", "field 0 is int, not a string"),
         ERR("[{}]", "[{'$unset':5}]", "must be a field path or an array of them, not int"),
         ERR("[{}]", "[{'$unset':'$a'}]", "starting with '$'"),
         ERR("[{}]", "[{'$unset':['a','a']}]", "a field is named twice"),
         ERR("[{}]", "[{'$unset':['b','b.c']}]", "path collision at 'b.c'"));
}

/* ---- $group and the accumulators ------------------------------------------- */

Test(agg_group, keys)
{
    ROWS(OK("[{'a':1},{'a':2},{}]", "[{'$group':{'_id':null,'n':{'$sum':1}}}]",
            "[{'_id':null,'n':3}]"),
         /* missing is null; 1 and 1.0 are one group (the first key is output) */
         OK("[{'a':1},{},{'a':1.0},{'a':null},{'a':'1'}]",
            "[{'$group':{'_id':'$a','n':{'$sum':1}}}]",
            "[{'_id':1,'n':2},{'_id':null,'n':2},{'_id':'1','n':1}]"),
         OK("[{'a':[1,2]},{'a':[1,2.0]},{'a':[[1,2]]},{'a':[]},{'a':[]}]",
            "[{'$group':{'_id':'$a','n':{'$sum':1}}}]",
            "[{'_id':[1,2],'n':2},{'_id':[[1,2]],'n':1},{'_id':[],'n':2}]"),
         OK("[{'a':1,'b':'x'},{'a':1,'b':'x'},{'a':1},{'b':'x'}]",
            "[{'$group':{'_id':{'x':'$a','y':'$b'},'n':{'$sum':1}}}]",
            "[{'_id':{'x':1,'y':'x'},'n':2},{'_id':{'x':1},'n':1},{'_id':{'y':'x'},'n':1}]"),
         OK("[{'a':1},{'a':2}]", "[{'$group':{'_id':'k'}}]", "[{'_id':'k'}]"),
         OK("[{'s':'ÉCOLE'},{'s':'école'},{'s':'ECOLE'}]",
            "[{'$group':{'_id':{'$toLower':'$s'},'n':{'$sum':1}}}]",
            "[{'_id':'École','n':1},{'_id':'école','n':1},{'_id':'ecole','n':1}]"),
         OK("[{'s':'日本'},{'s':'日本'},{'s':'😀'}]", "[{'$group':{'_id':'$s','n':{'$sum':1}}}]",
            "[{'_id':'日本','n':2},{'_id':'😀','n':1}]"),
         OK("[{'a':{'x':1,'y':2}},{'a':{'y':2,'x':1}},{'a':{'x':1.0,'y':2}}]",
            "[{'$group':{'_id':'$a','n':{'$sum':1}}}]",
            "[{'_id':{'x':1,'y':2},'n':2},{'_id':{'y':2,'x':1},'n':1}]"),
         OK("[{'a':true},{'a':1},{'a':false},{'a':0},{'a':-0.0}]",
            "[{'$group':{'_id':'$a','n':{'$sum':1}}}]",
            "[{'_id':true,'n':1},{'_id':1,'n':1},{'_id':false,'n':1},{'_id':0,'n':2}]"),
         OK("[]", "[{'$group':{'_id':null,'n':{'$sum':1}}}]", "[]"),
         OK("[{'a':1}]", "[{'$group':{'_id':'$a'}},{'$project':{'_id':0,'k':'$_id'}}]",
            "[{'k':1}]"));
}

Test(agg_group, errors)
{
    ROWS(ERR("[{}]", "[{'$group':{'n':{'$sum':1}}}]", "pipeline[0] $group: the specification must include an _id"),
         ERR("[{}]", "[{'$group':5}]", "the specification must be an object"),
         ERR("[{}]", "[{'$group':{'_id':null,'a.b':{'$sum':1}}}]", "may not be empty, start with '$' or contain '.'"),
         ERR("[{}]", "[{'$group':{'_id':null,'n':5}}]", "field 'n' must be an object with one accumulator"),
         ERR("[{}]", "[{'$group':{'_id':null,'n':{'$sum':1,'$avg':1}}}]", "field 'n' must be an object with one accumulator"),
         ERR("[{}]", "[{'$group':{'_id':null,'n':{'$median':'$a'}}}]", "unknown accumulator '$median' (field 'n')"),
         ERR("[{}]", "[{'$group':{'_id':null,'n':{'$sum':['$a','$b']}}}]", "$sum is a unary operator"),
         ERR("[{}]", "[{'$group':{'_id':null,'n':{'$count':1}}}]", "$count takes no argument"),
         ERR("[{}]", "[{'$group':{'_id':{'$frob':1}}}]", "_id: unknown expression operator '$frob'"),
         ERR("[{}]", "[{'$group':{'_id':null,'n':{'$sum':{'$frob':1}}}}]", "field 'n': unknown expression operator '$frob'"),
         ERR("[{'a':1,'b':0}]", "[{'$group':{'_id':null,'n':{'$sum':{'$divide':['$a','$b']}}}}]",
             "$group: $divide: cannot divide by zero"),
         ERR("[{'a':'x'}]", "[{'$group':{'_id':{'$abs':'$a'}}}]", "$group: $abs only supports numeric types, not string"));
}

Test(agg_acc, sum)
{
    static const char *mixed = "[{'a':1},{'a':2.5},{'a':'x'},{'a':null},{},{'a':[1,2]},{'a':true},{'a':{'b':1}}]";
    ROWS(OK(mixed, "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]", "[{'_id':null,'s':3.5}]"),
         OK("[{'a':1},{'a':2},{'a':'3'}]", "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]",
            "[{'_id':null,'s':3}]"),
         OK("[{'a':'x'},{}]", "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]", "[{'_id':null,'s':0}]"),
         OK("[{'a':1.0},{'a':2}]", "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]",
            "[{'_id':null,'s':3.0}]"),
         OK("[{},{},{}]", "[{'$group':{'_id':null,'s':{'$sum':1.5}}}]", "[{'_id':null,'s':4.5}]"),
         OK("[{'p':2,'q':3},{'p':4,'q':0.5}]",
            "[{'$group':{'_id':null,'s':{'$sum':{'$multiply':['$p','$q']}}}}]",
            "[{'_id':null,'s':8.0}]"),
         OK("[{'a':0.1},{'a':0.2}]", "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]",
            "[{'_id':null,'s':0.30000000000000004}]"),
         /* compensated: a plain double sum would lose both ones */
         OK("[{'a':1e16},{'a':1.0},{'a':1.0}]", "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]",
            "[{'_id':null,'s':1.0000000000000002e16}]"),
         /* a total past int64 is a double, as MongoDB's long; the type depends on
          * the exact total, not on a partial sum overflowing */
         OK("[{'a':9223372036854775807},{'a':9223372036854775807}]",
            "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]", "[{'_id':null,'s':1.8446744073709552e19}]"),
         OK("[{'a':-9223372036854775808},{'a':-1}]", "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]",
            "[{'_id':null,'s':-9.223372036854775809e18}]"),
         OK("[{'a':9223372036854775807},{'a':1}]", "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]",
            "[{'_id':null,'s':9.223372036854775808e18}]"),
         OK("[{'a':9223372036854775807},{'a':1},{'a':-1}]",
            "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]", "[{'_id':null,'s':9223372036854775807}]"),
         OK("[{'a':-9223372036854775808},{'a':-9223372036854775808},{'a':9223372036854775807},{'a':9223372036854775807}]",
            "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]", "[{'_id':null,'s':-2}]"),
         /* the ints stay exact next to doubles: 2^63 + 1 - 2^63 + 0.5 */
         OK("[{'a':9223372036854775807},{'a':2},{'a':0.5},{'a':-9223372036854775807}]",
            "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]", "[{'_id':null,'s':2.5}]"),
         OK("[{'a':9223372036854775806},{'a':1}]", "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]",
            "[{'_id':null,'s':9223372036854775807}]"),
         OK("[{'g':'b','a':1},{'g':'a','a':2},{'g':'b','a':3}]",
            "[{'$group':{'_id':'$g','s':{'$sum':'$a'}}}]", "[{'_id':'b','s':4},{'_id':'a','s':2}]"),
         ERR("[{'a':1e308},{'a':1e308}]", "[{'$group':{'_id':null,'s':{'$sum':'$a'}}}]",
             "field 's': the result is not a finite number"));
}

Test(agg_acc, avg)
{
    ROWS(OK("[{'a':1},{'a':2}]", "[{'$group':{'_id':null,'v':{'$avg':'$a'}}}]", "[{'_id':null,'v':1.5}]"),
         OK("[{'a':2},{'a':4}]", "[{'$group':{'_id':null,'v':{'$avg':'$a'}}}]", "[{'_id':null,'v':3.0}]"),
         OK("[{'a':'x'},{},{'a':null}]", "[{'$group':{'_id':null,'v':{'$avg':'$a'}}}]",
            "[{'_id':null,'v':null}]"),
         OK("[{'a':1},{'a':'x'},{'a':2.0},{},{'a':[3]}]", "[{'$group':{'_id':null,'v':{'$avg':'$a'}}}]",
            "[{'_id':null,'v':1.5}]"),
         OK("[{'a':9223372036854775807},{'a':9223372036854775807}]",
            "[{'$group':{'_id':null,'v':{'$avg':'$a'}}}]", "[{'_id':null,'v':9.223372036854775807e18}]"),
         OK("[{'a':9223372036854775807},{'a':9223372036854775805}]",
            "[{'$group':{'_id':null,'v':{'$avg':'$a'}}}]", "[{'_id':null,'v':9.223372036854775806e18}]"),
         OK("[{'g':1,'a':1},{'g':2}]", "[{'$group':{'_id':'$g','v':{'$avg':'$a'}}}]",
            "[{'_id':1,'v':1.0},{'_id':2,'v':null}]"));
}

Test(agg_acc, min_max)
{
    static const char *mixed = "[{'a':'b'},{'a':3},{'a':null},{},{'a':[0]},{'a':{'x':1}},{'a':true},{'a':2.5},{'a':'é'}]";
    ROWS(OK("[{'a':3},{'a':1},{'a':2}]", "[{'$group':{'_id':null,'lo':{'$min':'$a'},'hi':{'$max':'$a'}}}]",
            "[{'_id':null,'lo':1,'hi':3}]"),
         /* the cross-type order: numbers < strings < objects < arrays < booleans */
         OK(mixed, "[{'$group':{'_id':null,'lo':{'$min':'$a'},'hi':{'$max':'$a'}}}]",
            "[{'_id':null,'lo':2.5,'hi':true}]"),
         OK("[{'a':'b'},{'a':{'x':1}},{'a':[0]}]", "[{'$group':{'_id':null,'hi':{'$max':'$a'}}}]",
            "[{'_id':null,'hi':[0]}]"),
         OK("[{'a':'z'},{'a':'é'},{'a':'日本'}]", "[{'$group':{'_id':null,'lo':{'$min':'$a'},'hi':{'$max':'$a'}}}]",
            "[{'_id':null,'lo':'z','hi':'日本'}]"),
         OK("[{'a':null},{}]", "[{'$group':{'_id':null,'lo':{'$min':'$a'},'hi':{'$max':'$a'}}}]",
            "[{'_id':null,'lo':null,'hi':null}]"),
         /* equal values keep the first one seen */
         OK("[{'a':2},{'a':1.0},{'a':1}]", "[{'$group':{'_id':null,'lo':{'$min':'$a'}}}]",
            "[{'_id':null,'lo':1.0}]"),
         OK("[{'a':[1,5]},{'a':[2]},{'a':[]}]", "[{'$group':{'_id':null,'lo':{'$min':'$a'},'hi':{'$max':'$a'}}}]",
            "[{'_id':null,'lo':[],'hi':[2]}]"),
         OK("[{'a':'a long string that does not fit inline'},{'a':'a'}]",
            "[{'$group':{'_id':null,'lo':{'$min':'$a'},'hi':{'$max':'$a'}}}]",
            "[{'_id':null,'lo':'a','hi':'a long string that does not fit inline'}]"),
         OK("[{'a':-9223372036854775808},{'a':-9.3e18}]", "[{'$group':{'_id':null,'lo':{'$min':'$a'}}}]",
            "[{'_id':null,'lo':-9.3e18}]"));
}

Test(agg_acc, first_last)
{
    ROWS(OK("[{'a':1},{'a':2},{'a':3}]", "[{'$group':{'_id':null,'f':{'$first':'$a'},'l':{'$last':'$a'}}}]",
            "[{'_id':null,'f':1,'l':3}]"),
         OK("[{},{'a':2},{}]", "[{'$group':{'_id':null,'f':{'$first':'$a'},'l':{'$last':'$a'}}}]",
            "[{'_id':null,'f':null,'l':null}]"),
         OK("[{'a':null},{'a':[1,[2]]}]", "[{'$group':{'_id':null,'f':{'$first':'$a'},'l':{'$last':'$a'}}}]",
            "[{'_id':null,'f':null,'l':[1,[2]]}]"),
         OK("[{'g':1,'a':'x'},{'g':2,'a':'y'},{'g':1,'a':'z'}]",
            "[{'$sort':{'a':-1}},{'$group':{'_id':'$g','f':{'$first':'$a'},'l':{'$last':'$a'}}}]",
            "[{'_id':1,'f':'z','l':'x'},{'_id':2,'f':'y','l':'y'}]"),
         OK("[{'a':{'long':'an object longer than sixteen bytes'}},{'a':5}]",
            "[{'$group':{'_id':null,'f':{'$first':'$a'},'l':{'$last':'$a'}}}]",
            "[{'_id':null,'f':{'long':'an object longer than sixteen bytes'},'l':5}]"));
}

Test(agg_acc, push_and_add_to_set)
{
    ROWS(OK("[{'a':1},{'a':null},{},{'a':[2]},{'a':'x'},{'a':1}]",
            "[{'$group':{'_id':null,'p':{'$push':'$a'}}}]", "[{'_id':null,'p':[1,null,[2],'x',1]}]"),
         OK("[{},{}]", "[{'$group':{'_id':null,'p':{'$push':'$a'},'s':{'$addToSet':'$a'}}}]",
            "[{'_id':null,'p':[],'s':[]}]"),
         OK("[{'a':1},{'a':1.0},{'a':2},{'a':'1'},{'a':[1]},{'a':[1.0]},{'a':{'b':1}},{'a':{'b':1.0}},{'a':null},{'a':null},{}]",
            "[{'$group':{'_id':null,'s':{'$addToSet':'$a'}}}]",
            "[{'_id':null,'s':[1,2,'1',[1],{'b':1},null]}]"),
         /* composed and decomposed forms are different strings (no normalisation) */
         OK("[{'a':'é'},{'a':'e\\u0301'},{'a':'é'}]", "[{'$group':{'_id':null,'s':{'$addToSet':'$a'}}}]",
            "[{'_id':null,'s':['é','e\\u0301']}]"),
         OK("[{'g':1,'a':1},{'g':2,'a':1},{'g':1,'a':1},{'g':1,'a':2}]",
            "[{'$group':{'_id':'$g','s':{'$addToSet':'$a'},'p':{'$push':'$a'}}}]",
            "[{'_id':1,'s':[1,2],'p':[1,1,2]},{'_id':2,'s':[1],'p':[1]}]"),
         OK("[{'a':[1,2],'b':3}]", "[{'$group':{'_id':null,'p':{'$push':{'x':'$a','y':'$b'}}}}]",
            "[{'_id':null,'p':[{'x':[1,2],'y':3}]}]"),
         OK("[{'a':[1,2]},{'a':[1,2]},{'a':[2,1]},{'a':[[1,2]]}]",
            "[{'$group':{'_id':null,'s':{'$addToSet':'$a'}}}]",
            "[{'_id':null,'s':[[1,2],[2,1],[[1,2]]]}]"));
}

Test(agg_acc, count)
{
    ROWS(OK("[{'g':1},{'g':2},{'g':1},{}]", "[{'$group':{'_id':'$g','n':{'$count':{}}}}]",
            "[{'_id':1,'n':2},{'_id':2,'n':1},{'_id':null,'n':1}]"),
         OK("[{'a':1}]", "[{'$group':{'_id':null,'n':{'$count':{}},'m':{'$sum':1}}}]",
            "[{'_id':null,'n':1,'m':1}]"));
}

Test(agg_group, many_groups_and_accumulators)
{
    /* 300 groups make the table grow several times; every group's state
     * must survive the moves */
    dbuf docs;
    dbuf_init(&docs);
    cr_assert_eq(dbuf_putc(&docs, '['), 0);
    for (int i = 0; i < 3000; i++) {
        char one[128];
        snprintf(one, sizeof one, "%s{'g':%d,'v':%d,'s':'k%d'}", i ? "," : "", i % 300, i,
                 i % 7);
        cr_assert_eq(dbuf_append(&docs, one, strlen(one)), 0);
    }
    cr_assert_eq(dbuf_append(&docs, "]", 2), 0);
    dbuf out;
    char err[ERRLEN];
    int rc = run((const char *)docs.data,
                 "[{'$group':{'_id':'$g','n':{'$sum':1},'t':{'$sum':'$v'},'lo':{'$min':'$v'},"
                 "'hi':{'$max':'$v'},'f':{'$first':'$v'},'l':{'$last':'$v'},'set':{'$addToSet':'$s'},"
                 "'a':{'$avg':'$v'}}},{'$sort':{'_id':1}}]",
                 0, &out, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "%s", err);
    size_t off = 0;
    for (int g = 0; g < 300; g++) {
        codec_val d = {out.data + off, codec_val_len(out.data + off)}, v;
        int64_t x;
        double avg;
        off += d.len;
        cr_assert(codec_obj_get(d, "_id", 3, &v) && codec_as_int64(v, &x) && x == g);
        cr_expect(codec_obj_get(d, "n", 1, &v) && codec_as_int64(v, &x) && x == 10);
        cr_expect(codec_obj_get(d, "t", 1, &v) && codec_as_int64(v, &x) && x == 10 * g + 300 * 45);
        cr_expect(codec_obj_get(d, "lo", 2, &v) && codec_as_int64(v, &x) && x == g);
        cr_expect(codec_obj_get(d, "hi", 2, &v) && codec_as_int64(v, &x) && x == g + 2700);
        cr_expect(codec_obj_get(d, "f", 1, &v) && codec_as_int64(v, &x) && x == g);
        cr_expect(codec_obj_get(d, "l", 1, &v) && codec_as_int64(v, &x) && x == g + 2700);
        cr_expect(codec_obj_get(d, "set", 3, &v) && codec_count(v) == 7);
        cr_expect(codec_obj_get(d, "a", 1, &v) && v.p[0] == CODEC_DOUBLE &&
                  codec_as_double(v, &avg) && avg == g + 1350.0);
    }
    cr_expect_eq(off, out.len);
    dbuf_free(&out);
    dbuf_free(&docs);
}

/* Append printf output to a dbuf (test helper). */
static void put(dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(dbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof tmp);
    cr_assert_eq(dbuf_append(b, tmp, (size_t)n), 0);
}

static char *cstr(dbuf *b)
{
    cr_assert_eq(dbuf_putc(b, 0), 0);
    return (char *)dbuf_steal(b, NULL);
}

Test(agg_shapes, wide_objects_and_large_containers)
{
    /* 40 members (past the inline sort of an object's keys), keys out of
     * byte order and non-ASCII; every output is validated by run() */
    dbuf doc, spec, want, arr, big;
    dbuf_init(&doc);
    dbuf_init(&spec);
    dbuf_init(&want);
    put(&doc, "[{");
    put(&spec, "[{'$set':{");
    put(&want, "[{");
    for (int i = 0; i < 40; i++) {
        put(&doc, "%s'k%02d':%d", i ? "," : "", 39 - i, i);
        put(&spec, "%s'é%02d':{'$add':['$k%02d',1]}", i ? "," : "", 39 - i, 39 - i);
    }
    for (int i = 0; i < 40; i++)
        put(&want, "%s'k%02d':%d", i ? "," : "", 39 - i, i);
    for (int i = 0; i < 40; i++)
        put(&want, ",'é%02d':%d", 39 - i, i + 1);
    put(&doc, "}]");
    put(&spec, "}}]");
    put(&want, "}]");
    char *d = cstr(&doc), *sp = cstr(&spec), *w = cstr(&want);

    /* the same 40 fields as $group accumulators */
    dbuf gspec, gwant;
    dbuf_init(&gspec);
    dbuf_init(&gwant);
    put(&gspec, "[{'$group':{'_id':null");
    put(&gwant, "[{'_id':null");
    for (int i = 0; i < 40; i++) {
        put(&gspec, ",'z%02d':{'$max':'$k%02d'}", 39 - i, i);
        put(&gwant, ",'z%02d':%d", 39 - i, 39 - i);
    }
    put(&gspec, "}}]");
    put(&gwant, "}]");
    char *gs = cstr(&gspec), *gw = cstr(&gwant);

    /* 300 strings of 30 bytes: a $push result of ~10 KB needs 2-byte
     * offsets; 3000 of them (~100 KB) 4-byte ones */
    dbuf_init(&arr);
    dbuf_init(&big);
    put(&arr, "[");
    put(&big, "[");
    for (int i = 0; i < 3000; i++) {
        if (i < 300)
            put(&arr, "%s{'s':'%030d'}", i ? "," : "", i);
        put(&big, "%s{'s':'%030d'}", i ? "," : "", i);
    }
    put(&arr, "]");
    put(&big, "]");
    char *a = cstr(&arr), *bg = cstr(&big);

    arow rows[] = {
        {d, sp, w, NULL, 0, 0},
        {d, gs, gw, NULL, 0, 0},
        {a, "[{'$group':{'_id':null,'p':{'$push':'$s'}}},{'$unwind':'$p'},{'$count':'n'}]",
         "[{'n':300}]", NULL, 0, 0},
        {bg, "[{'$group':{'_id':null,'p':{'$push':'$s'},'u':{'$addToSet':'$s'}}},"
             "{'$project':{'_id':0,'np':{'$size':'$p'},'nu':{'$size':'$u'}}}]",
         "[{'np':3000,'nu':3000}]", NULL, 0, 0},
        {bg, "[{'$group':{'_id':{'$mod':[{'$size':[[]]},1]},'p':{'$push':'$$ROOT'}}},{'$unwind':'$p'},"
             "{'$replaceWith':'$p'},{'$sort':{'s':-1}},{'$limit':1}]",
         "[{'s':'000000000000000000000000002999'}]", NULL, 0, 0},
        /* top-k with k past the first allocation of the heap (64) */
        {bg, "[{'$sort':{'s':-1}},{'$limit':100},{'$skip':99}]",
         "[{'s':'000000000000000000000000002900'}]", NULL, 0, 0},
        {bg, "[{'$set':{'t':1}},{'$sort':{'s':1}},{'$skip':150},{'$limit':1},{'$project':{'s':1}}]",
         "[{'s':'000000000000000000000000000150'}]", NULL, 0, 0},
    };
    check_rows(rows, sizeof rows / sizeof rows[0]);

    /* the big $push itself, validated as output (4-byte widths) */
    dbuf out;
    char err[ERRLEN];
    cr_assert_eq(run(bg, "[{'$group':{'_id':null,'p':{'$push':'$s'}}}]", 0, &out, err, sizeof err),
                 DOTDB_OK, "%s", err);
    cr_expect_gt(out.len, 65536);
    cr_expect_eq(out.data[0], CODEC_OBJECT | 2);
    dbuf_free(&out);
    free(d);
    free(sp);
    free(w);
    free(gs);
    free(gw);
    free(a);
    free(bg);
}

Test(agg_shapes, add_to_set_tables_grow_per_group)
{
    /* three groups sharing the $addToSet table, 200 distinct values each,
     * every value seen twice (one as a double) */
    dbuf b;
    dbuf_init(&b);
    put(&b, "[");
    for (int i = 0; i < 1200; i++)
        put(&b, i % 2 ? "%s{'g':%d,'v':%d.0}" : "%s{'g':%d,'v':%d}", i ? "," : "", i % 3,
            (i / 6) % 200);
    put(&b, "]");
    char *docs = cstr(&b);
    arow rows[] = {
        {docs, "[{'$group':{'_id':'$g','u':{'$addToSet':'$v'}}},{'$project':{'n':{'$size':'$u'}}},"
               "{'$sort':{'_id':1}}]",
         "[{'_id':0,'n':200},{'_id':1,'n':200},{'_id':2,'n':200}]", NULL, 0, 0},
    };
    check_rows(rows, sizeof rows / sizeof rows[0]);
    free(docs);
}

/* ---- $sort, $limit, $skip ---------------------------------------------------- */

Test(agg_sort, order_across_types)
{
    static const char *docs =
        "[{'a':'x'},{'a':1},{},{'a':null},{'a':[]},{'a':true},{'a':{'b':1}},{'a':[0,5]},{'a':2.5},{'a':false}]";
    ROWS(OK(docs, "[{'$sort':{'a':1}}]",
            "[{'a':[]},{},{'a':null},{'a':[0,5]},{'a':1},{'a':2.5},{'a':'x'},{'a':{'b':1}},{'a':false},{'a':true}]"),
         OK(docs, "[{'$sort':{'a':-1}}]",
            "[{'a':true},{'a':false},{'a':{'b':1}},{'a':'x'},{'a':[0,5]},{'a':2.5},{'a':1},{},{'a':null},{'a':[]}]"),
         OK("[{'s':'日本'},{'s':'z'},{'s':'é'},{'s':'Z'},{'s':''}]", "[{'$sort':{'s':1}}]",
            "[{'s':''},{'s':'Z'},{'s':'z'},{'s':'é'},{'s':'日本'}]"),
         /* several keys; ties keep the input order */
         OK("[{'a':1,'b':1,'i':0},{'a':0,'b':2,'i':1},{'a':1,'b':0,'i':2},{'a':1,'b':1,'i':3}]",
            "[{'$sort':{'a':-1,'b':1}}]",
            "[{'a':1,'b':0,'i':2},{'a':1,'b':1,'i':0},{'a':1,'b':1,'i':3},{'a':0,'b':2,'i':1}]"),
         OK("[{'a':{'b':2}},{'a':{'b':1}},{'a':[{'b':3},{'b':0}]}]", "[{'$sort':{'a.b':1}}]",
            "[{'a':[{'b':3},{'b':0}]},{'a':{'b':1}},{'a':{'b':2}}]"),
         OK("[{'a':1},{'a':1.0},{'a':0.5}]", "[{'$sort':{'a':1}}]", "[{'a':0.5},{'a':1},{'a':1.0}]"),
         /* documents computed by an earlier stage are copied by the sort */
         OK("[{'a':3},{'a':1},{'a':2}]", "[{'$set':{'b':{'$multiply':['$a',10]}}},{'$sort':{'b':1}}]",
            "[{'a':1,'b':10},{'a':2,'b':20},{'a':3,'b':30}]"),
         OK("[{'g':'a'},{'g':'b'},{'g':'b'}]", "[{'$group':{'_id':'$g','n':{'$sum':1}}},{'$sort':{'n':-1}}]",
            "[{'_id':'b','n':2},{'_id':'a','n':1}]"),
         ERR("[{}]", "[{'$sort':{}}]", "pipeline[0] $sort: the sort specification must not be empty"),
         ERR("[{}]", "[{'$sort':{'a':2}}]", "pipeline[0] $sort:"),
         ERR("[{}]", "[{'$sort':1}]", "the argument must be an object, not int"));
}

Test(agg_sort, top_k_with_limit_and_skip)
{
    static const char *docs = "[{'a':5,'i':0},{'a':1,'i':1},{'a':4,'i':2},{'a':1,'i':3},{'a':3,'i':4},{'a':2,'i':5}]";
    ROWS(OK(docs, "[{'$sort':{'a':1}},{'$limit':3}]", "[{'a':1,'i':1},{'a':1,'i':3},{'a':2,'i':5}]"),
         OK(docs, "[{'$sort':{'a':-1}},{'$limit':1}]", "[{'a':5,'i':0}]"),
         OK(docs, "[{'$sort':{'a':1}},{'$skip':2},{'$limit':2}]", "[{'a':2,'i':5},{'a':3,'i':4}]"),
         OK(docs, "[{'$sort':{'a':1}},{'$limit':100}]",
            "[{'a':1,'i':1},{'a':1,'i':3},{'a':2,'i':5},{'a':3,'i':4},{'a':4,'i':2},{'a':5,'i':0}]"),
         /* ties at the cut keep the earliest */
         OK("[{'a':1,'i':0},{'a':1,'i':1},{'a':1,'i':2},{'a':0,'i':3}]", "[{'$sort':{'a':1}},{'$limit':2}]",
            "[{'a':0,'i':3},{'a':1,'i':0}]"),
         OK(docs, "[{'$set':{'b':{'$subtract':[0,'$a']}}},{'$sort':{'b':1}},{'$limit':2},{'$project':{'i':1}}]",
            "[{'i':0},{'i':2}]"));
}

Test(agg_limit_skip, counts)
{
    static const char *docs = "[{'i':0},{'i':1},{'i':2},{'i':3}]";
    ROWS(OK(docs, "[{'$limit':2}]", "[{'i':0},{'i':1}]"),
         OK(docs, "[{'$limit':10}]", docs),
         OK(docs, "[{'$limit':2.0}]", "[{'i':0},{'i':1}]"),
         OK(docs, "[{'$skip':0}]", docs),
         OK(docs, "[{'$skip':3}]", "[{'i':3}]"),
         OK(docs, "[{'$skip':9}]", "[]"),
         OK(docs, "[{'$skip':1},{'$limit':2}]", "[{'i':1},{'i':2}]"),
         OK(docs, "[{'$limit':3},{'$skip':1}]", "[{'i':1},{'i':2}]"),
         OK(docs, "[{'$group':{'_id':'$i'}},{'$limit':1}]", "[{'_id':0}]"),
         OK(docs, "[{'$limit':1},{'$limit':5}]", "[{'i':0}]"),
         ERR(docs, "[{'$limit':0}]", "pipeline[0] $limit: the limit must be a positive integer"),
         ERR(docs, "[{'$limit':-1}]", "the limit must be a positive integer"),
         ERR(docs, "[{'$limit':1.5}]", "the limit must be a positive integer"),
         ERR(docs, "[{'$limit':'2'}]", "the limit must be a positive integer"),
         ERR(docs, "[{'$skip':-1}]", "pipeline[0] $skip: the number to skip must be an integer >= 0"),
         ERR(docs, "[{'$skip':null}]", "the number to skip must be an integer >= 0"));
}

/* ---- $unwind ----------------------------------------------------------------- */

Test(agg_unwind, arrays_scalars_null_missing)
{
    static const char *docs = "[{'i':0,'a':[1,2]},{'i':1},{'i':2,'a':null},{'i':3,'a':[]},{'i':4,'a':5},{'i':5,'a':[[1,2],[],{'x':1}]}]";
    ROWS(OK(docs, "[{'$unwind':'$a'}]",
            "[{'i':0,'a':1},{'i':0,'a':2},{'i':4,'a':5},{'i':5,'a':[1,2]},{'i':5,'a':[]},{'i':5,'a':{'x':1}}]"),
         OK(docs, "[{'$unwind':{'path':'$a','preserveNullAndEmptyArrays':true}}]",
            "[{'i':0,'a':1},{'i':0,'a':2},{'i':1},{'i':2,'a':null},{'i':3},{'i':4,'a':5},"
            "{'i':5,'a':[1,2]},{'i':5,'a':[]},{'i':5,'a':{'x':1}}]"),
         OK(docs, "[{'$unwind':{'path':'$a','preserveNullAndEmptyArrays':false}},{'$count':'n'}]", "[{'n':6}]"),
         OK(docs, "[{'$unwind':{'path':'$a','includeArrayIndex':'k'}},{'$project':{'_id':0,'i':1,'k':1}}]",
            "[{'i':0,'k':0},{'i':0,'k':1},{'i':4,'k':null},{'i':5,'k':0},{'i':5,'k':1},{'i':5,'k':2}]"),
         OK(docs, "[{'$unwind':{'path':'$a','includeArrayIndex':'k','preserveNullAndEmptyArrays':true}},"
                  "{'$match':{'i':{'$in':[1,2,3]}}}]",
            "[{'i':1,'k':null},{'i':2,'a':null,'k':null},{'i':3,'k':null}]"),
         OK(docs, "[{'$unwind':'$a'},{'$unwind':'$a'}]",
            "[{'i':0,'a':1},{'i':0,'a':2},{'i':4,'a':5},{'i':5,'a':1},{'i':5,'a':2},{'i':5,'a':{'x':1}}]"));
}

Test(agg_unwind, paths)
{
    ROWS(OK("[{'a':{'b':[1,2],'c':0},'d':1}]", "[{'$unwind':'$a.b'}]",
            "[{'a':{'b':1,'c':0},'d':1},{'a':{'b':2,'c':0},'d':1}]"),
         /* no traversal of arrays of objects: a.b through an array is missing */
         OK("[{'a':[{'b':[1]}]}]", "[{'$unwind':'$a.b'}]", "[]"),
         OK("[{'a':[{'b':[1]}]}]", "[{'$unwind':{'path':'$a.b','preserveNullAndEmptyArrays':true}}]",
            "[{'a':[{'b':[1]}]}]"),
         OK("[{'a':['é','日本','😀']}]", "[{'$unwind':'$a'}]", "[{'a':'é'},{'a':'日本'},{'a':'😀'}]"),
         OK("[{'a':[1,2],'x':{'y':5}}]", "[{'$unwind':{'path':'$a','includeArrayIndex':'x.i'}}]",
            "[{'a':1,'x':{'y':5,'i':0}},{'a':2,'x':{'y':5,'i':1}}]"),
         OK("[{'t':['x','y','x']},{'t':['y']}]",
            "[{'$unwind':'$t'},{'$group':{'_id':'$t','n':{'$sum':1}}}]",
            "[{'_id':'x','n':2},{'_id':'y','n':2}]"),
         ERR("[{}]", "[{'$unwind':'a'}]", "pipeline[0] $unwind: the path must be a field path"),
         ERR("[{}]", "[{'$unwind':'$$ROOT'}]", "the path must be a field path"),
         ERR("[{}]", "[{'$unwind':5}]", "the path must be a field path"),
         ERR("[{}]", "[{'$unwind':{'path':'$a','frob':1}}]", "unknown option 'frob'"),
         ERR("[{}]", "[{'$unwind':{'preserveNullAndEmptyArrays':true}}]", "the 'path' option is required"),
         ERR("[{}]", "[{'$unwind':{'path':'$a','preserveNullAndEmptyArrays':1}}]",
             "preserveNullAndEmptyArrays must be true or false"),
         ERR("[{}]", "[{'$unwind':{'path':'$a','includeArrayIndex':'$k'}}]",
             "includeArrayIndex must be a field name not starting with '$'"),
         ERR("[{}]", "[{'$unwind':'$a..b'}]", "empty part"));
}

/* ---- $count, $sortByCount, $replaceRoot ----------------------------------------- */

Test(agg_count, counts_and_names)
{
    ROWS(OK("[{},{},{}]", "[{'$count':'n'}]", "[{'n':3}]"),
         OK("[]", "[{'$count':'n'}]", "[]"),
         OK("[{'a':1},{'a':2},{'a':3}]", "[{'$match':{'a':{'$gt':1}}},{'$count':'big'}]", "[{'big':2}]"),
         OK("[{'a':1}]", "[{'$match':{'a':2}},{'$count':'n'}]", "[]"),
         OK("[{},{}]", "[{'$count':'数'}]", "[{'数':2}]"),
         OK("[{},{}]", "[{'$count':'n'},{'$set':{'m':{'$add':['$n',1]}}}]", "[{'n':2,'m':3}]"),
         OK("[{},{}]", "[{'$count':'_id'}]", "[{'_id':2}]"),
         ERR("[{}]", "[{'$count':''}]", "pipeline[0] $count: the count field must be a non-empty string"),
         ERR("[{}]", "[{'$count':'$n'}]", "the count field cannot start with '$'"),
         ERR("[{}]", "[{'$count':'a.b'}]", "the count field cannot contain '.'"),
         ERR("[{}]", "[{'$count':5}]", "the argument must be a string (the name of the count field), not int"),
         ERR("[{}]", "[{'$count':{'n':1}}]", "not object"),
         ERR("[{}]", "[{'$count':'a\\u0000b'}]", "the count field cannot contain a null byte"));
}

Test(agg_sort_by_count, groups_and_sorts)
{
    ROWS(OK("[{'a':'x'},{'a':'y'},{'a':'y'},{},{'a':null},{'a':'z'},{'a':null}]", "[{'$sortByCount':'$a'}]",
            "[{'_id':null,'count':3},{'_id':'y','count':2},{'_id':'x','count':1},{'_id':'z','count':1}]"),
         OK("[{'a':'X'},{'a':'x'},{'a':'y'}]", "[{'$sortByCount':{'$toLower':'$a'}}]",
            "[{'_id':'x','count':2},{'_id':'y','count':1}]"),
         OK("[{'t':['a','b']},{'t':['b']}]", "[{'$unwind':'$t'},{'$sortByCount':'$t'}]",
            "[{'_id':'b','count':2},{'_id':'a','count':1}]"),
         OK("[{'a':1},{'a':1.0},{'a':2}]", "[{'$sortByCount':'$a'},{'$limit':1}]", "[{'_id':1,'count':2}]"),
         OK("[]", "[{'$sortByCount':'$a'}]", "[]"),
         ERR("[{}]", "[{'$sortByCount':{'a':'$a'}}]", "pipeline[0] $sortByCount: the argument must be"),
         ERR("[{}]", "[{'$sortByCount':{}}]", "pipeline[0] $sortByCount: the argument must be"),
         ERR("[{}]", "[{'$sortByCount':'a'}]", "pipeline[0] $sortByCount: the argument must be a field path (\"$a\") or an operator expression, not a string without '$'"),
         ERR("[{}]", "[{'$sortByCount':5}]", "or an operator expression, not int"),
         ERR("[{}]", "[{'$sortByCount':null}]", "or an operator expression, not null"),
         OK("[{'a':{'b':1}},{'a':{'b':1}}]", "[{'$sortByCount':'$$ROOT.a'}]", "[{'_id':{'b':1},'count':2}]"),
         ERR("[{}]", "[{'$sortByCount':{'$frob':1}}]", "unknown expression operator '$frob'"));
}

Test(agg_replace_root, new_roots)
{
    ROWS(OK("[{'a':{'x':1,'y':[2]},'b':1}]", "[{'$replaceRoot':{'newRoot':'$a'}}]", "[{'x':1,'y':[2]}]"),
         OK("[{'a':{'x':1},'b':1}]", "[{'$replaceWith':'$a'}]", "[{'x':1}]"),
         OK("[{'a':1,'b':'é'}]", "[{'$replaceRoot':{'newRoot':{'k':'$b','n':{'$add':['$a',1]},'m':'$nope'}}}]",
            "[{'k':'é','n':2}]"),
         OK("[{'a':1}]", "[{'$replaceRoot':{'newRoot':'$$ROOT'}}]", "[{'a':1}]"),
         OK("[{'a':{}}]", "[{'$replaceRoot':{'newRoot':'$a'}}]", "[{}]"),
         /* a sub-document of the input, then held by a sort */
         OK("[{'a':{'k':2}},{'a':{'k':1}}]", "[{'$replaceWith':'$a'},{'$sort':{'k':1}}]",
            "[{'k':1},{'k':2}]"),
         OK("[{'a':[{'x':1}]}]", "[{'$unwind':'$a'},{'$replaceWith':'$a'}]", "[{'x':1}]"),
         ERR("[{'b':1}]", "[{'$replaceRoot':{'newRoot':'$a'}}]",
             "$replaceRoot: the new root must evaluate to an object, not missing"),
         ERR("[{'a':5}]", "[{'$replaceRoot':{'newRoot':'$a'}}]", "must evaluate to an object, not int"),
         ERR("[{'a':null}]", "[{'$replaceWith':'$a'}]", "$replaceWith: the new root must evaluate to an object, not null"),
         ERR("[{'a':[{'x':1}]}]", "[{'$replaceWith':'$a'}]", "must evaluate to an object, not array"),
         ERR("[{}]", "[{'$replaceRoot':{}}]", "pipeline[0] $replaceRoot: the argument must be {\"newRoot\""),
         ERR("[{}]", "[{'$replaceRoot':{'newRoot':'$a','x':1}}]", "the argument must be {\"newRoot\""),
         ERR("[{}]", "[{'$replaceRoot':'$a'}]", "the argument must be {\"newRoot\""));
}

/* ---- expressions -------------------------------------------------------------------- */

Test(agg_expr, field_paths)
{
    EXPRS(EV("{'a':1}", "'$a'", "1"),
          EV("{'a':{'b':{'c':'x'}}}", "'$a.b.c'", "'x'"),
          EV("{'a':{'b':1}}", "'$nope'", "MISSING"),
          EV("{'a':{'b':1}}", "'$a.c'", "MISSING"),
          EV("{'a':5}", "'$a.b'", "MISSING"),
          EV("{'a':null}", "'$a'", "null"),
          /* through arrays of objects: elements that are not objects are skipped,
           * missing results left out, nested arrays not descended */
          EV("{'a':[{'b':1},{},{'b':[2,3]},5,{'b':null}]}", "'$a.b'", "[1,[2,3],null]"),
          EV("{'a':[[{'b':1}],{'b':2}]}", "'$a.b'", "[2]"),
          EV("{'a':[]}", "'$a.b'", "[]"),
          EV("{'a':[{'b':[{'c':1},{'c':2}]},{'b':{'c':3}}]}", "'$a.b.c'", "[[1,2],3]"),
          /* parts are keys, never indexes */
          EV("{'a':[10,20]}", "'$a.0'", "[]"),
          EV("{'a':{'0':5}}", "'$a.0'", "5"),
          EV("{'é':{'日本':1}}", "'$é.日本'", "1"),
          EV("{'a':1,'b':[2]}", "'$$ROOT'", "{'a':1,'b':[2]}"),
          EV("{'a':{'b':1}}", "'$$ROOT.a.b'", "1"),
          EV("{'a':{'b':1}}", "'$$CURRENT.a'", "{'b':1}"),
          EV("{'a':1}", "'$$REMOVE'", "MISSING"),
          EE("{}", "'$$NOW'", "unknown variable '$$NOW'"),
          EE("{}", "'$$REMOVE.a'", "$$REMOVE has no fields ('$$REMOVE.a')"),
          EE("{}", "'$'", "'$' by itself is not a field path"),
          EE("{}", "'$a..b'", "has an empty part"),
          EE("{}", "'$a.'", "has an empty part"),
          EE("{}", "'$a.$b'", "starting with '$'"));
}

Test(agg_expr, literals_arrays_objects)
{
    EXPRS(EV("{}", "5", "5"),
          EV("{}", "2.5", "2.5"),
          EV("{}", "'text'", "'text'"),
          EV("{}", "''", "''"),
          EV("{}", "true", "true"),
          EV("{}", "null", "null"),
          EV("{}", "[]", "[]"),
          EV("{'a':1}", "[1,'$a',[2,'$a']]", "[1,1,[2,1]]"),
          EV("{}", "['$nope',1]", "[null,1]"),
          EV("{'a':1}", "{'$literal':'$a'}", "'$a'"),
          EV("{}", "{'$literal':{'$add':[1,2]}}", "{'$add':[1,2]}"),
          EV("{}", "[{'$literal':'$x'},2]", "['$x',2]"),
          EV("{'a':1}", "{'x':{'y':'$a','z':'$nope'},'w':[]}", "{'x':{'y':1},'w':[]}"),
          EV("{}", "{'x':{'$literal':1}}", "{'x':1}"),
          EV("{}", "{}", "{}"),
          EV("{}", "'日本語😀'", "'日本語😀'"),
          EE("{}", "{'x':1,'$add':[1]}", "only the single field of an operator may start with '$'"),
          EE("{}", "{'$add':[1],'x':1}", "must have exactly one field"),
          EE("{}", "{'a.b':1}", "may not contain '.'"),
          EE("{}", "{'$frob':1}", "unknown expression operator '$frob'"));
}

Test(agg_expr, add_subtract_multiply)
{
    EXPRS(EV("{}", "{'$add':[1,2]}", "3"),
          EV("{}", "{'$add':[1,2.5]}", "3.5"),
          EV("{}", "{'$add':[1.5,1.5]}", "3.0"),
          EV("{'a':2}", "{'$add':['$a','$a','$a']}", "6"),
          EV("{}", "{'$add':[]}", "0"),
          EV("{'a':4}", "{'$add':'$a'}", "4"),
          EV("{}", "{'$add':[1,null]}", "null"),
          EV("{}", "{'$add':[1,'$nope']}", "null"),
          EV("{}", "{'$add':[null,'x']}", "null"),
          EV("{}", "{'$add':[9223372036854775807,1]}", "9.223372036854775808e18"),
          EV("{}", "{'$add':[9223372036854775807,-1]}", "9223372036854775806"),
          EE("{}", "{'$add':[1,'x']}", "$add only supports numeric types, not string"),
          EE("{}", "{'$add':[1,true]}", "$add only supports numeric types, not bool"),
          EE("{'a':[1]}", "{'$add':[1,'$a']}", "$add only supports numeric types, not array"),
          EV("{}", "{'$subtract':[5,3]}", "2"),
          EV("{}", "{'$subtract':[5,1.5]}", "3.5"),
          EV("{}", "{'$subtract':[5,null]}", "null"),
          EV("{}", "{'$subtract':['$nope',1]}", "null"),
          EV("{}", "{'$subtract':[-9223372036854775808,1]}", "-9.223372036854775808e18"),
          EE("{}", "{'$subtract':['a',1]}", "$subtract only supports numeric types, not string"),
          EE("{}", "{'$subtract':[1]}", "$subtract: expects exactly 2 arguments, got 1"),
          EE("{}", "{'$subtract':[1,2,3]}", "$subtract: expects exactly 2 arguments, got 3"),
          EV("{}", "{'$multiply':[2,3]}", "6"),
          EV("{}", "{'$multiply':[2,0.5]}", "1.0"),
          EV("{}", "{'$multiply':[]}", "1"),
          EV("{}", "{'$multiply':[2,null]}", "null"),
          EV("{}", "{'$multiply':[4294967296,4294967296]}", "1.8446744073709552e19"),
          EV("{}", "{'$multiply':[-1,0.0]}", "-0.0"),
          EE("{}", "{'$multiply':[2,'3']}", "$multiply only supports numeric types, not string"),
          EE("{}", "{'$add':[1e308,1e308]}", "$add: the result is not a finite number"));
}

Test(agg_expr, divide_mod_abs)
{
    EXPRS(EV("{}", "{'$divide':[6,3]}", "2.0"),
          EV("{}", "{'$divide':[7,2]}", "3.5"),
          EV("{}", "{'$divide':[1.5,0.5]}", "3.0"),
          EV("{}", "{'$divide':[null,0]}", "null"),
          EV("{}", "{'$divide':[1,'$nope']}", "null"),
          EE("{}", "{'$divide':[1,0]}", "$divide: cannot divide by zero"),
          EE("{}", "{'$divide':[1,-0.0]}", "$divide: cannot divide by zero"),
          EE("{}", "{'$divide':['6',3]}", "$divide only supports numeric types, not string"),
          EE("{}", "{'$divide':[1]}", "$divide: expects exactly 2 arguments"),
          EV("{}", "{'$mod':[7,3]}", "1"),
          EV("{}", "{'$mod':[-7,3]}", "-1"),
          EV("{}", "{'$mod':[7,-3]}", "1"),
          EV("{}", "{'$mod':[7.5,2]}", "1.5"),
          EV("{}", "{'$mod':[8,2.0]}", "0.0"),
          EV("{}", "{'$mod':[-9223372036854775808,-1]}", "0"),
          EV("{}", "{'$mod':[null,0]}", "null"),
          EE("{}", "{'$mod':[7,0]}", "$mod: cannot divide by zero"),
          EE("{}", "{'$mod':[7,0.0]}", "$mod: cannot divide by zero"),
          EE("{}", "{'$mod':[[7],2]}", "$mod only supports numeric types, not array"),
          EV("{}", "{'$abs':-5}", "5"),
          EV("{}", "{'$abs':[-2.5]}", "2.5"),
          EV("{}", "{'$abs':0}", "0"),
          EV("{}", "{'$abs':null}", "null"),
          EV("{}", "{'$abs':'$nope'}", "null"),
          EV("{}", "{'$abs':-9223372036854775808}", "9.223372036854775808e18"),
          EE("{}", "{'$abs':'x'}", "$abs only supports numeric types, not string"),
          EE("{}", "{'$abs':[1,2]}", "$abs: expects exactly 1 argument, got 2"));
}

Test(agg_expr, concat_and_case)
{
    EXPRS(EV("{'a':'x'}", "{'$concat':['a','$a','b']}", "'axb'"),
          EV("{}", "{'$concat':[]}", "''"),
          EV("{}", "{'$concat':['a','']}", "'a'"),
          EV("{}", "{'$concat':['a',null]}", "null"),
          EV("{}", "{'$concat':['a','$nope']}", "null"),
          EV("{}", "{'$concat':['日本','語','😀','é']}", "'日本語😀é'"),
          EE("{}", "{'$concat':['a',1]}", "$concat only supports strings, not int"),
          EE("{'a':['x']}", "{'$concat':['a','$a']}", "$concat only supports strings, not array"),
          EV("{}", "{'$toLower':'ABC def'}", "'abc def'"),
          EV("{}", "{'$toUpper':'abc DEF'}", "'ABC DEF'"),
          EV("{}", "{'$toLower':null}", "''"),
          EV("{}", "{'$toUpper':'$nope'}", "''"),
          /* ASCII letters only, as MongoDB: other characters pass through */
          EV("{}", "{'$toLower':'ÉCOLE'}", "'École'"),
          EV("{}", "{'$toUpper':'straße 日本'}", "'STRAßE 日本'"),
          EV("{}", "{'$toLower':12}", "'12'"),
          EV("{}", "{'$toUpper':2.5}", "'2.5'"),
          EV("{}", "{'$toUpper':2.0}", "'2'"),
          EV("{}", "{'$toLower':['X']}", "'x'"),
          EE("{}", "{'$toLower':true}", "$toLower: cannot convert bool to a string"),
          EE("{'a':['X']}", "{'$toUpper':'$a'}", "$toUpper: cannot convert array to a string"),
          EE("{}", "{'$toUpper':{'a':1}}", "$toUpper: cannot convert object to a string"),
          EE("{}", "{'$toLower':['a','b']}", "$toLower: expects exactly 1 argument, got 2"));
}

Test(agg_expr, size)
{
    EXPRS(EV("{'a':[1,2,3]}", "{'$size':'$a'}", "3"),
          EV("{'a':[]}", "{'$size':'$a'}", "0"),
          EV("{'a':[[1,2],[3]]}", "{'$size':'$a'}", "2"),
          EV("{}", "{'$size':[[1,2]]}", "2"),
          EV("{}", "{'$size':{'$literal':[1,2,3]}}", "3"),
          EV("{'a':[{'b':1},{'b':2},{}]}", "{'$size':'$a.b'}", "2"),
          EE("{}", "{'$size':'$a'}", "$size: the argument must be an array, not missing"),
          EE("{'a':null}", "{'$size':'$a'}", "$size: the argument must be an array, not null"),
          EE("{'a':'abc'}", "{'$size':'$a'}", "$size: the argument must be an array, not string"),
          EE("{'a':{'b':1}}", "{'$size':'$a'}", "not object"),
          EE("{}", "{'$size':[1,2]}", "$size: expects exactly 1 argument, got 2"));
}

Test(agg_expr, cond_and_if_null)
{
    EXPRS(EV("{'a':1}", "{'$cond':[{'$gt':['$a',0]},'pos','neg']}", "'pos'"),
          EV("{'a':-1}", "{'$cond':[{'$gt':['$a',0]},'pos','neg']}", "'neg'"),
          EV("{'a':1}", "{'$cond':{'if':'$a','then':'y','else':'n'}}", "'y'"),
          EV("{'a':1}", "{'$cond':{'else':'n','if':'$nope','then':'y'}}", "'n'"),
          /* truthiness: false, null, missing and zeros are false; '', [] and {} true */
          EV("{'a':0.0}", "{'$cond':['$a','y','n']}", "'n'"),
          EV("{'a':null}", "{'$cond':['$a','y','n']}", "'n'"),
          EV("{'a':''}", "{'$cond':['$a','y','n']}", "'y'"),
          EV("{'a':[]}", "{'$cond':['$a','y','n']}", "'y'"),
          EV("{'a':{}}", "{'$cond':['$a','y','n']}", "'y'"),
          EV("{'a':false}", "{'$cond':['$a','y','$a']}", "false"),
          EV("{}", "{'$cond':[true,'$nope',1]}", "MISSING"),
          EE("{}", "{'$cond':{'if':true,'then':1}}", "$cond: missing 'else' argument"),
          EE("{}", "{'$cond':{'if':true,'else':1}}", "$cond: missing 'then' argument"),
          EE("{}", "{'$cond':{'if':true,'then':1,'else':2,'frob':3}}", "$cond: unknown argument 'frob'"),
          EE("{}", "{'$cond':[true,1]}", "$cond: expects exactly 3 arguments, got 2"),
          EE("{}", "{'$cond':true}", "$cond: expects exactly 3 arguments, got 1"),
          EV("{'a':null}", "{'$ifNull':['$a','d']}", "'d'"),
          EV("{}", "{'$ifNull':['$a','d']}", "'d'"),
          EV("{'a':0}", "{'$ifNull':['$a','d']}", "0"),
          EV("{'a':false}", "{'$ifNull':['$a','d']}", "false"),
          EV("{'a':[]}", "{'$ifNull':['$a','d']}", "[]"),
          EV("{'y':2}", "{'$ifNull':['$x','$y','d']}", "2"),
          EV("{}", "{'$ifNull':['$x',null]}", "null"),
          EV("{}", "{'$ifNull':['$x','$z']}", "MISSING"),
          EE("{}", "{'$ifNull':['$x']}", "$ifNull: expects at least 2 arguments, got 1"));
}

Test(agg_expr, comparisons)
{
    EXPRS(EV("{}", "{'$eq':[1,1.0]}", "true"),
          EV("{}", "{'$eq':[1,'1']}", "false"),
          EV("{}", "{'$eq':['$nope',null]}", "false"),
          EV("{}", "{'$eq':['$nope','$nada']}", "true"),
          EV("{'a':null}", "{'$eq':['$a',null]}", "true"),
          EV("{'a':[1,2]}", "{'$eq':['$a',[1,2.0]]}", "true"),
          EV("{'a':[1,2]}", "{'$eq':['$a',1]}", "false"),
          EV("{'a':{'x':1,'y':2}}", "{'$eq':['$a',{'y':2,'x':1}]}", "false"),
          EV("{'s':'é'}", "{'$eq':['$s','é']}", "true"),
          EV("{}", "{'$ne':[1,2]}", "true"),
          EV("{}", "{'$ne':['$nope',null]}", "true"),
          EV("{}", "{'$ne':[2,2.0]}", "false"),
          /* across types: null < numbers < strings < objects < arrays < booleans */
          EV("{}", "{'$gt':['a',1]}", "true"),
          EV("{}", "{'$gt':[true,1]}", "true"),
          EV("{}", "{'$gt':[[0],{'a':1}]}", "true"),
          EV("{}", "{'$gt':[[1,2],[1]]}", "true"),
          EV("{}", "{'$gt':[1,null]}", "true"),
          EV("{}", "{'$gt':[null,'$nope']}", "true"),
          EV("{}", "{'$gte':[2,2.0]}", "true"),
          EV("{}", "{'$gte':['é','z']}", "true"),
          EV("{}", "{'$lt':['$nope',null]}", "true"),
          EV("{}", "{'$lt':[9007199254740993,9007199254740992.0]}", "false"),
          EV("{}", "{'$lt':[9007199254740992.0,9007199254740993]}", "true"),
          EV("{}", "{'$lte':['abc','abd']}", "true"),
          EV("{}", "{'$lte':[false,true]}", "true"),
          EE("{}", "{'$eq':[1]}", "$eq: expects exactly 2 arguments, got 1"),
          EE("{}", "{'$gt':[1,2,3]}", "$gt: expects exactly 2 arguments, got 3"),
          EE("{}", "{'$lte':1}", "$lte: expects exactly 2 arguments, got 1"));
}

Test(agg_expr, boolean_operators)
{
    EXPRS(EV("{}", "{'$and':[true,1]}", "true"),
          EV("{}", "{'$and':[true,0]}", "false"),
          EV("{}", "{'$and':[]}", "true"),
          EV("{}", "{'$and':['$nope']}", "false"),
          EV("{}", "{'$and':[[],'',{}]}", "true"),
          EV("{'a':1}", "{'$and':[{'$gt':['$a',0]},{'$lt':['$a',2]}]}", "true"),
          EV("{}", "{'$or':[]}", "false"),
          EV("{}", "{'$or':[null,0,'x']}", "true"),
          EV("{}", "{'$or':[null,false,'$nope',0.0]}", "false"),
          /* short-circuit: the error after the deciding operand is never reached */
          EV("{}", "{'$or':[true,{'$divide':[1,0]}]}", "true"),
          EV("{}", "{'$and':[false,{'$divide':[1,0]}]}", "false"),
          EV("{}", "{'$not':[0]}", "true"),
          EV("{}", "{'$not':'$nope'}", "true"),
          EV("{}", "{'$not':[[]]}", "false"),
          EV("{}", "{'$not':[{'$eq':[1,1]}]}", "false"),
          EE("{}", "{'$not':[1,2]}", "$not: expects exactly 1 argument, got 2"),
          EE("{}", "{'$and':[{'$divide':[1,0]}]}", "$divide: cannot divide by zero"));
}

Test(agg_expr, in)
{
    EXPRS(EV("{'a':1.0}", "{'$in':['$a',[1,2]]}", "true"),
          EV("{'a':3}", "{'$in':['$a',[1,2]]}", "false"),
          EV("{'a':'x','l':['y','x']}", "{'$in':['$a','$l']}", "true"),
          EV("{}", "{'$in':['$nope',[null]]}", "false"),
          EV("{}", "{'$in':[null,[null]]}", "true"),
          EV("{}", "{'$in':[[1],[[1],2]]}", "true"),
          EV("{}", "{'$in':[1,[[1],2]]}", "false"),
          EV("{}", "{'$in':['日本',['é','日本']]}", "true"),
          EV("{}", "{'$in':[1,[]]}", "false"),
          EE("{}", "{'$in':[1,'$nope']}", "$in: the second argument must be an array, not missing"),
          EE("{'l':'abc'}", "{'$in':['a','$l']}", "$in: the second argument must be an array, not string"),
          EE("{}", "{'$in':[1,null]}", "not null"),
          EE("{}", "{'$in':[1]}", "$in: expects exactly 2 arguments, got 1"));
}

/* ---- chains of stages ---------------------------------------------------------------- */

Test(agg_chains, blocking_stages_and_views_into_other_stages)
{
    static const char *docs =
        "[{'g':'a','v':3,'sub':{'k':3}},{'g':'b','v':1,'sub':{'k':1}},{'g':'a','v':2,'sub':{'k':2}},"
        "{'g':'c','v':5,'sub':{'k':5}},{'g':'b','v':4,'sub':{'k':4}}]";
    ROWS(OK(docs, "[{'$group':{'_id':'$g','t':{'$max':'$v'}}},{'$sort':{'t':-1}},"
                  "{'$group':{'_id':{'$gt':['$t',3]},'gs':{'$push':'$_id'}}},{'$sort':{'_id':1}}]",
            "[{'_id':false,'gs':['a']},{'_id':true,'gs':['c','b']}]"),
         /* $replaceRoot of a view into a $group's output, held by a $sort */
         OK(docs, "[{'$group':{'_id':'$g','d':{'$first':'$$ROOT'}}},{'$replaceRoot':{'newRoot':'$d.sub'}},"
                  "{'$sort':{'k':-1}}]",
            "[{'k':5},{'k':3},{'k':1}]"),
         /* a view into a $sort's held documents, held by a second $sort */
         OK(docs, "[{'$set':{'w':1}},{'$sort':{'v':1}},{'$replaceWith':'$sub'},{'$sort':{'k':-1}},{'$limit':2}]",
            "[{'k':5},{'k':4}]"),
         /* the same through a top-k heap that dropped some of its copies */
         OK(docs, "[{'$set':{'w':1}},{'$sort':{'v':-1}},{'$limit':3},{'$replaceWith':'$sub'},{'$sort':{'k':1}}]",
            "[{'k':3},{'k':4},{'k':5}]"),
         OK(docs, "[{'$sort':{'g':1}},{'$sort':{'v':-1}},{'$project':{'_id':0,'v':1}}]",
            "[{'v':5},{'v':4},{'v':3},{'v':2},{'v':1}]"),
         OK(docs, "[{'$unset':'sub'},{'$unwind':{'path':'$g','includeArrayIndex':'i'}},{'$sort':{'v':1}},{'$limit':1}]",
            "[{'g':'b','v':1,'i':null}]"),
         OK(docs, "[{'$sortByCount':'$g'},{'$group':{'_id':'$count','gs':{'$push':'$_id'}}}]",
            "[{'_id':2,'gs':['a','b']},{'_id':1,'gs':['c']}]"),
         OK(docs, "[{'$limit':3},{'$group':{'_id':null,'n':{'$sum':1}}},{'$count':'c'}]", "[{'c':1}]"),
         OK(docs, "[{'$match':{'v':{'$gte':2}}},{'$skip':1},{'$sort':{'v':1}},{'$limit':2},"
                  "{'$replaceWith':{'v':'$v','big':{'$gt':['$v',3]}}}]",
            "[{'v':2,'big':false},{'v':4,'big':true}]"));
}

/* ---- pipeline-level errors ---------------------------------------------------------- */

Test(agg_errors, stages)
{
    ROWS(ERR("[{}]", "[{'$lookup':{}}]", "pipeline[0]: unknown stage '$lookup'"),
         ERR("[{}]", "[{'$match':{}},{'$frob':1}]", "pipeline[1]: unknown stage '$frob'"),
         ERR("[{}]", "[{'match':{}}]", "unknown stage 'match'"),
         ERR("[{}]", "[{'$match':{},'$limit':1}]", "pipeline[0]: a stage must be an object with exactly one field"),
         ERR("[{}]", "[{}]", "a stage must be an object with exactly one field"),
         ERR("[{}]", "[5]", "a stage must be an object with exactly one field"),
         ERR("[{}]", "[{'$match':{}},{'$limit':1},{'$group':{'_id':null,'x':{'$frob':1}}}]",
             "pipeline[2] $group: unknown accumulator '$frob'"),
         ERR("[{}]", "[{'$project':{'x':{'$add':'$a','$b':1}}}]", "must have exactly one field"),
         ERR("[{'a':'s'}]", "[{'$match':{}},{'$set':{'x':{'$multiply':['$a',2]}}}]",
             "$set: $multiply only supports numeric types, not string"),
         OK("[{'a':1}]", "[]", "[{'a':1}]"));
}

Test(agg_errors, pipeline_must_be_an_array)
{
    dbuf pb;
    char err[ERRLEN] = "";
    agg_pipeline *p = (agg_pipeline *)&p;
    enc("{'$match':{}}", &pb);
    cr_expect_eq(agg_compile(val(&pb), &p, err, sizeof err), DOTDB_EINVAL);
    cr_expect_null(p);
    cr_expect(strstr(err, "the pipeline must be an array of stages, not object") != NULL, "%s", err);
    dbuf_free(&pb);
}

/* ---- memory budget -------------------------------------------------------------------- */

/* n documents {'k': i, 's': 'i-<pad bytes>'} as a JSON array (caller frees). */
static char *many_docs(int n, int pad)
{
    dbuf b;
    dbuf_init(&b);
    cr_assert_eq(dbuf_putc(&b, '['), 0);
    for (int i = 0; i < n; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s{'k':%d,'s':'%d-", i ? "," : "", i, i); /* unique */
        cr_assert_eq(dbuf_append(&b, head, strlen(head)), 0);
        for (int j = 0; j < pad; j++)
            cr_assert_eq(dbuf_putc(&b, 'a' + (i + j) % 26), 0);
        cr_assert_eq(dbuf_append(&b, "'}", 2), 0);
    }
    cr_assert_eq(dbuf_append(&b, "]", 2), 0);
    return (char *)dbuf_steal(&b, NULL);
}

Test(agg_budget, group_fails_past_the_budget)
{
    char *docs = many_docs(2000, 100);
    arow rows[] = {
        {"[{'a':1}]", "[{'$group':{'_id':'$a'}}]", NULL,
         "$group: the groups need more than 1024 bytes (aggregation memory budget)", DOTDB_ETOOBIG, 1024},
        {docs, "[{'$group':{'_id':'$s','n':{'$sum':1}}}]", NULL,
         "$group: the groups need more than 131072 bytes (aggregation memory budget)", DOTDB_ETOOBIG,
         128 * 1024},
        /* few groups, but a $push that holds every string */
        {docs, "[{'$group':{'_id':null,'all':{'$push':'$s'}}}]", NULL,
         "$group: the groups need more than 131072 bytes", DOTDB_ETOOBIG, 128 * 1024},
        {docs, "[{'$group':{'_id':null,'u':{'$addToSet':'$s'}}}]", NULL,
         "$group: the groups need more than 131072 bytes", DOTDB_ETOOBIG, 128 * 1024},
        {docs, "[{'$sortByCount':'$s'}]", NULL,
         "$sortByCount: the groups need more than 131072 bytes", DOTDB_ETOOBIG, 128 * 1024},
        /* within the budget */
        {docs, "[{'$group':{'_id':{'$mod':['$k',3]},'n':{'$sum':1}}},{'$sort':{'_id':1}}]",
         "[{'_id':0,'n':667},{'_id':1,'n':667},{'_id':2,'n':666}]", NULL, 0, 128 * 1024},
        {docs, "[{'$group':{'_id':'$s','n':{'$sum':1}}},{'$count':'groups'}]",
         "[{'groups':2000}]", NULL, 0, 0},
        {docs, "[{'$group':{'_id':null,'all':{'$push':'$s'}}},{'$project':{'n':{'$size':'$all'}}}]",
         "[{'_id':null,'n':2000}]", NULL, 0, 4 * 1024 * 1024},
    };
    check_rows(rows, sizeof rows / sizeof rows[0]);
    free(docs);
}

Test(agg_budget, sort_fails_past_the_budget)
{
    char *docs = many_docs(2000, 100);
    arow rows[] = {
        {"[{'a':1},{'a':2}]", "[{'$sort':{'a':1}}]", NULL,
         "$sort: the documents need more than 100 bytes (aggregation memory budget)", DOTDB_ETOOBIG, 100},
        /* documents an earlier stage computed are copied, and counted */
        {docs, "[{'$set':{'t':'$s'}},{'$sort':{'k':-1}}]", NULL,
         "$sort: the documents need more than 131072 bytes (aggregation memory budget)",
         DOTDB_ETOOBIG, 128 * 1024},
        {docs, "[{'$sort':{'k':-1}},{'$limit':2},{'$project':{'k':1}}]",
         "[{'k':1999},{'k':1998}]", NULL, 0, 0},
        /* top-k keeps only k documents: far within the budget */
        {docs, "[{'$set':{'t':'$s'}},{'$sort':{'k':-1}},{'$limit':2},{'$project':{'k':1}}]",
         "[{'k':1999},{'k':1998}]", NULL, 0, 16 * 1024},
        {docs, "[{'$set':{'t':'$s'}},{'$sort':{'k':-1}},{'$skip':1},{'$limit':1},{'$project':{'k':1}}]",
         "[{'k':1998}]", NULL, 0, 16 * 1024},
        {docs, "[{'$set':{'t':'$s'}},{'$sort':{'k':-1}},{'$count':'n'}]", "[{'n':2000}]", NULL, 0,
         4 * 1024 * 1024},
    };
    check_rows(rows, sizeof rows / sizeof rows[0]);
    free(docs);
}

Test(agg_budget, top_k_counts_the_documents_it_replaces)
{
    /* each document is better than the kept ones and larger: the heap of two
     * ends with the two largest, 2 x 12 KB, past a 16 KiB budget */
    dbuf b;
    dbuf_init(&b);
    cr_assert_eq(dbuf_putc(&b, '['), 0);
    for (int i = 0; i < 300; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s{'k':%d,'s':'", i ? "," : "", i);
        cr_assert_eq(dbuf_append(&b, head, strlen(head)), 0);
        for (int j = 0; j < 40 * i; j++)
            cr_assert_eq(dbuf_putc(&b, 'x'), 0);
        cr_assert_eq(dbuf_append(&b, "'}", 2), 0);
    }
    cr_assert_eq(dbuf_append(&b, "]", 2), 0);
    arow rows[] = {
        {(const char *)b.data, "[{'$set':{'t':1}},{'$sort':{'k':-1}},{'$limit':2},{'$project':{'k':1}}]",
         NULL, "$sort: the documents need more than 16384 bytes", DOTDB_ETOOBIG, 16 * 1024},
        {(const char *)b.data, "[{'$set':{'t':1}},{'$sort':{'k':1}},{'$limit':2},{'$project':{'k':1}}]",
         "[{'k':0},{'k':1}]", NULL, 0, 16 * 1024},
    };
    check_rows(rows, sizeof rows / sizeof rows[0]);
    dbuf_free(&b);
}

/* ---- the run API ------------------------------------------------------------------------- */

Test(agg_api, limit_stops_the_caller_and_errors_stick)
{
    dbuf pb, d, out;
    char err[ERRLEN];
    agg_pipeline *p;
    agg_run *r;
    enc("[{'$limit':2}]", &pb);
    enc("{'a':1}", &d);
    dbuf_init(&out);
    cr_assert_eq(agg_compile(val(&pb), &p, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_null(agg_leading_match(p));
    cr_assert_eq(agg_begin(p, 1, 0, &out, &r), DOTDB_OK);
    cr_expect_eq(agg_push(r, val(&d), err, sizeof err), 0);
    cr_expect_eq(agg_push(r, val(&d), err, sizeof err), AGG_STOP);
    cr_expect_eq(agg_push(r, val(&d), err, sizeof err), AGG_STOP);
    cr_expect_eq(agg_finish(r, err, sizeof err), DOTDB_OK);
    cr_expect_eq(out.len, 2 * d.len);
    agg_run_free(r);
    agg_free(p);
    dbuf_free(&pb);

    /* a failed run repeats its failure */
    enc("[{'$set':{'x':{'$divide':[1,'$a']}}}]", &pb);
    cr_assert_eq(agg_compile(val(&pb), &p, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_eq(agg_begin(p, 0, 0, &out, &r), DOTDB_OK);
    dbuf zero;
    enc("{'a':0}", &zero);
    cr_expect_eq(agg_push(r, val(&zero), err, sizeof err), DOTDB_EINVAL);
    cr_expect(strstr(err, "$set: $divide: cannot divide by zero") != NULL, "%s", err);
    cr_expect_eq(agg_push(r, val(&d), err, sizeof err), DOTDB_EINVAL);
    cr_expect(strstr(err, "already failed") != NULL, "%s", err);
    cr_expect_eq(agg_finish(r, err, sizeof err), DOTDB_EINVAL);
    agg_run_free(r);
    agg_free(p);
    agg_free(NULL);
    agg_run_free(NULL);
    dbuf_free(&zero);
    dbuf_free(&pb);
    dbuf_free(&d);
    dbuf_free(&out);
}

Test(agg_api, leading_match_may_be_applied_by_the_caller)
{
    dbuf pb, yes, no, out;
    char err[ERRLEN];
    agg_pipeline *p;
    agg_run *r;
    enc("[{'$match':{'a':1}},{'$count':'n'}]", &pb);
    enc("{'a':1}", &yes);
    enc("{'a':2}", &no);
    cr_assert_eq(agg_compile(val(&pb), &p, err, sizeof err), DOTDB_OK, "%s", err);
    dbuf_free(&pb);
    const qfilter *lead = agg_leading_match(p);
    cr_assert_not_null(lead);
    cr_expect_eq(qfilter_match(lead, val(&yes)), 1);
    cr_expect_eq(qfilter_match(lead, val(&no)), 0);
    for (int skip = 0; skip <= 1; skip++) {
        dbuf_init(&out);
        cr_assert_eq(agg_begin(p, skip, 0, &out, &r), DOTDB_OK);
        cr_assert_eq(agg_push(r, val(&yes), err, sizeof err), 0);
        cr_assert_eq(agg_push(r, val(&no), err, sizeof err), 0); /* filtered only when !skip */
        cr_assert_eq(agg_finish(r, err, sizeof err), DOTDB_OK, "%s", err);
        char *t = docs_text(out.data, out.len);
        cr_expect_str_eq(t, skip ? "[{'n':2}]" : "[{'n':1}]");
        free(t);
        agg_run_free(r);
        dbuf_free(&out);
    }
    /* the compiled pipeline is reusable */
    agg_free(p);
    dbuf_free(&yes);
    dbuf_free(&no);
}
