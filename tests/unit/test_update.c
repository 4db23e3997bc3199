/*
 * test_update.c - unit tests of MongoDB update documents (lib/update.c,
 * lib/update_ops.c): replacement, every operator and modifier, the type
 * rules, every error message, limits, the "changed" flag, and that a
 * failing update leaves the output buffer as it was.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "update.h"

#define ERRLEN 256
#define NOW_MS 1700000000123LL /* 2023-11-14T22:13:20.123Z */

static const codec_limits lim = {CODEC_DEFAULT_MAX_SIZE, CODEC_DEFAULT_MAX_DEPTH};

static void enc(const char *json, dbuf *out)
{
    char err[ERRLEN];
    dbuf_init(out);
    int rc = codec_value_from_json(json, strlen(json), &lim, out, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "parse of %.80s failed: %s", json, err);
}

static codec_val val_of(const dbuf *b) { return (codec_val){b->data, b->len}; }

static upd_spec *compile_ok(const char *upd)
{
    dbuf u;
    upd_spec *spec;
    char err[ERRLEN];
    enc(upd, &u);
    int rc = update_compile(val_of(&u), &spec, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "compile of %s failed: %s", upd, err);
    dbuf_free(&u); /* the spec owns copies */
    return spec;
}

/* Compile must fail with DOTDB_EINVAL and exactly this message. */
static void compile_err(const char *upd, const char *want)
{
    dbuf u;
    upd_spec *spec = (upd_spec *)1;
    char err[ERRLEN];
    enc(upd, &u);
    int rc = update_compile(val_of(&u), &spec, err, sizeof err);
    cr_assert_eq(rc, DOTDB_EINVAL, "compile of %s: rc %d", upd, rc);
    cr_assert_null(spec);
    cr_assert_str_eq(err, want, "for %s", upd);
    dbuf_free(&u);
}

/* Apply a compiled spec to doc; returns the result's JSON (caller frees). */
static char *run_spec(const upd_spec *spec, const char *doc, const codec_limits *l, int *changed,
                      int *rc_out, char *err)
{
    dbuf d, out, text;
    enc(doc, &d);
    dbuf_init(&out);
    cr_assert_eq(dbuf_append(&out, "pre", 3), 0);
    *changed = -1;
    int rc = update_apply(spec, val_of(&d), NOW_MS, l, &out, changed, err, ERRLEN);
    *rc_out = rc;
    char *res = NULL;
    if (rc == DOTDB_OK) {
        const char *id;
        size_t idlen;
        char verr[ERRLEN];
        cr_assert(memcmp(out.data, "pre", 3) == 0);
        cr_assert_eq(codec_validate_doc(out.data + 3, out.len - 3, CODEC_DEFAULT_MAX_DEPTH, &id,
                                        &idlen, verr, sizeof verr),
                     DOTDB_OK, "result does not validate: %s", verr);
        dbuf_init(&text);
        cr_assert_eq(codec_to_json((codec_val){out.data + 3, out.len - 3}, &text), DOTDB_OK);
        cr_assert_eq(dbuf_putc(&text, 0), 0);
        res = (char *)dbuf_steal(&text, NULL);
    } else {
        cr_assert_eq(out.len, 3, "out restored on failure");
        cr_assert(memcmp(out.data, "pre", 3) == 0);
    }
    dbuf_free(&d);
    dbuf_free(&out);
    return res;
}

/* upd applied to doc must give want, with *changed == want_changed. */
static void check(const char *upd, const char *doc, const char *want, int want_changed)
{
    upd_spec *spec = compile_ok(upd);
    int changed, rc;
    char err[ERRLEN];
    char *got = run_spec(spec, doc, &lim, &changed, &rc, err);
    cr_assert_eq(rc, DOTDB_OK, "%s on %s: %s", upd, doc, err);
    cr_assert_str_eq(got, want, "%s on %s", upd, doc);
    cr_assert_eq(changed, want_changed, "%s on %s: changed %d", upd, doc, changed);
    free(got);
    update_free(spec);
}

/* upd compiles but applying it to doc fails with rc and exactly want. */
static void check_err(const char *upd, const char *doc, int want_rc, const char *want)
{
    upd_spec *spec = compile_ok(upd);
    int changed, rc;
    char err[ERRLEN];
    char *got = run_spec(spec, doc, &lim, &changed, &rc, err);
    cr_assert_null(got);
    cr_assert_eq(rc, want_rc, "%s on %s: rc %d (%s)", upd, doc, rc, err);
    cr_assert_str_eq(err, want, "%s on %s", upd, doc);
    update_free(spec);
}

/* ---- replacement ------------------------------------------------------- */

Test(update, replacement_keeps_the_id_first)
{
    upd_spec *spec = compile_ok("{\"name\":\"x\",\"n\":1}");
    cr_assert(update_is_replacement(spec));
    update_free(spec);
    check("{\"name\":\"x\",\"n\":1}", "{\"id\":\"k\",\"old\":true}",
          "{\"id\":\"k\",\"name\":\"x\",\"n\":1}", 1);
    check("{\"n\":1,\"id\":\"k\"}", "{\"id\":\"k\",\"old\":true}", "{\"id\":\"k\",\"n\":1}", 1);
    check("{}", "{\"id\":\"k\",\"old\":true}", "{\"id\":\"k\"}", 1);
    check("{\"a\":1}", "{\"id\":\"k\",\"a\":1}", "{\"id\":\"k\",\"a\":1}", 0);
    check("{\"a\":1.0}", "{\"id\":\"k\",\"a\":1}", "{\"id\":\"k\",\"a\":1.0}", 1);
}

Test(update, replacement_cannot_change_the_id)
{
    check_err("{\"id\":\"other\",\"a\":1}", "{\"id\":\"k\"}", DOTDB_EINVAL,
              "update would change the id");
    check_err("{\"id\":5}", "{\"id\":\"5\"}", DOTDB_EINVAL, "update would change the id");
}

/* ---- $set / $unset ------------------------------------------------------ */

Test(update, set_fields_paths_and_arrays)
{
    upd_spec *spec = compile_ok("{\"$set\":{\"a\":1}}");
    cr_assert_not(update_is_replacement(spec));
    update_free(spec);
    check("{\"$set\":{\"a\":2,\"b.c\":\"x\"}}", "{\"id\":\"1\",\"a\":1}",
          "{\"id\":\"1\",\"a\":2,\"b\":{\"c\":\"x\"}}", 1);
    check("{\"$set\":{\"arr.1\":9,\"arr.4\":8}}", "{\"id\":\"1\",\"arr\":[1,2]}",
          "{\"id\":\"1\",\"arr\":[1,9,null,null,8]}", 1);
    check("{\"$set\":{\"o\":{\"x\":[1,{\"y\":null}]}}}", "{\"id\":\"1\"}",
          "{\"id\":\"1\",\"o\":{\"x\":[1,{\"y\":null}]}}", 1);
    check("{\"$set\":{\"a\":1}}", "{\"id\":\"1\",\"a\":1}", "{\"id\":\"1\",\"a\":1}", 0);
    check("{\"$set\":{\"a\":1.0}}", "{\"id\":\"1\",\"a\":1}", "{\"id\":\"1\",\"a\":1.0}", 1);
    check("{\"$set\":{\"arr.0.k\":1}}", "{\"id\":\"1\",\"arr\":[{\"k\":0}]}",
          "{\"id\":\"1\",\"arr\":[{\"k\":1}]}", 1);
}

Test(update, new_fields_appear_in_path_order)
{
    check("{\"$set\":{\"b\":1,\"a\":1,\"c.10\":1,\"c.9\":2}}", "{\"id\":\"1\"}",
          "{\"id\":\"1\",\"a\":1,\"b\":1,\"c\":{\"9\":2,\"10\":1}}", 1);
    check("{\"$inc\":{\"z\":1},\"$set\":{\"y\":1}}", "{\"id\":\"1\"}",
          "{\"id\":\"1\",\"y\":1,\"z\":1}", 1);
}

Test(update, set_cannot_cross_a_scalar_or_an_array)
{
    check_err("{\"$set\":{\"a.b\":1}}", "{\"id\":\"1\",\"a\":5}", DOTDB_EINVAL,
              "$set: cannot create field 'b' in element {a: 5}");
    check_err("{\"$set\":{\"a.b\":1}}", "{\"id\":\"1\",\"a\":[{\"b\":0}]}", DOTDB_EINVAL,
              "$set: cannot create field 'b' in element {a: [...]}");
    check_err("{\"$set\":{\"a.b.c\":1}}", "{\"id\":\"1\",\"a\":{\"b\":\"s\"}}", DOTDB_EINVAL,
              "$set: cannot create field 'c' in element {b: \"s\"}");
}

/* Found while fuzzing the update path (a hand-written fuzz_query input):
 * the padding was allocated before any limit could
 * refuse the result ("a.2000000000" asked for 64 GB). */
Test(update, set_pads_at_most_1500000_nulls)
{
    check_err("{\"$set\":{\"a.2000000000\":1}}", "{\"id\":\"1\",\"a\":[]}", DOTDB_ETOOBIG,
              "$set: cannot pad array 'a' with 2000000000 nulls (at most 1500000)");
    check_err("{\"$inc\":{\"x.a.1500002\":1}}", "{\"id\":\"1\",\"x\":{\"a\":[0]}}",
              DOTDB_ETOOBIG, "$inc: cannot pad array 'a' with 1500001 nulls (at most 1500000)");
}

Test(update, unset_fields_and_array_elements)
{
    check("{\"$unset\":{\"a\":\"\",\"b.c\":1}}", "{\"id\":\"1\",\"a\":1,\"b\":{\"c\":2,\"d\":3}}",
          "{\"id\":\"1\",\"b\":{\"d\":3}}", 1);
    check("{\"$unset\":{\"arr.1\":1}}", "{\"id\":\"1\",\"arr\":[1,2,3]}",
          "{\"id\":\"1\",\"arr\":[1,null,3]}", 1);
    check("{\"$unset\":{\"nope\":1,\"a.b.c\":1}}", "{\"id\":\"1\",\"a\":5}",
          "{\"id\":\"1\",\"a\":5}", 0);
}

/* ---- $inc / $mul ---------------------------------------------------------- */

Test(update, inc_type_rules)
{
    check("{\"$inc\":{\"n\":2}}", "{\"id\":\"1\",\"n\":40}", "{\"id\":\"1\",\"n\":42}", 1);
    check("{\"$inc\":{\"n\":-50}}", "{\"id\":\"1\",\"n\":40}", "{\"id\":\"1\",\"n\":-10}", 1);
    check("{\"$inc\":{\"n\":0.5}}", "{\"id\":\"1\",\"n\":1}", "{\"id\":\"1\",\"n\":1.5}", 1);
    check("{\"$inc\":{\"n\":1}}", "{\"id\":\"1\",\"n\":1.5}", "{\"id\":\"1\",\"n\":2.5}", 1);
    check("{\"$inc\":{\"n\":1.0}}", "{\"id\":\"1\",\"n\":1}", "{\"id\":\"1\",\"n\":2.0}", 1);
    check("{\"$inc\":{\"m.x\":5}}", "{\"id\":\"1\"}", "{\"id\":\"1\",\"m\":{\"x\":5}}", 1);
    check("{\"$inc\":{\"a.1\":5}}", "{\"id\":\"1\",\"a\":[1,2]}", "{\"id\":\"1\",\"a\":[1,7]}", 1);
    check("{\"$inc\":{\"n\":0}}", "{\"id\":\"1\",\"n\":3}", "{\"id\":\"1\",\"n\":3}", 0);
    /* int widths grow as needed */
    check("{\"$inc\":{\"n\":1}}", "{\"id\":\"1\",\"n\":2147483647}",
          "{\"id\":\"1\",\"n\":2147483648}", 1);
}

Test(update, inc_and_mul_errors)
{
    check_err("{\"$inc\":{\"name\":1}}", "{\"id\":\"1\",\"name\":\"bob\"}", DOTDB_EINVAL,
              "$inc: cannot apply to non-numeric field 'name' (string)");
    check_err("{\"$mul\":{\"a\":2}}", "{\"id\":\"1\",\"a\":[1]}", DOTDB_EINVAL,
              "$mul: cannot apply to non-numeric field 'a' (array)");
    check_err("{\"$inc\":{\"n\":1}}", "{\"id\":\"1\",\"n\":9223372036854775807}", DOTDB_EINVAL,
              "$inc: integer overflow on field 'n' (9223372036854775807 + 1 does not fit 64 "
              "bits)");
    check_err("{\"$mul\":{\"n\":4294967296}}", "{\"id\":\"1\",\"n\":4294967296}", DOTDB_EINVAL,
              "$mul: integer overflow on field 'n' (4294967296 * 4294967296 does not fit 64 "
              "bits)");
    check_err("{\"$mul\":{\"n\":1e300}}", "{\"id\":\"1\",\"n\":1e300}", DOTDB_EINVAL,
              "$mul: result for field 'n' is not a finite number");
    check_err("{\"$inc\":{\"a.b\":1}}", "{\"id\":\"1\",\"a\":true}", DOTDB_EINVAL,
              "$inc: cannot create field 'b' in element {a: true}");
    compile_err("{\"$inc\":{\"n\":\"1\"}}", "$inc: value for 'n' must be a number, got string");
    compile_err("{\"$mul\":{\"n\":null}}", "$mul: value for 'n' must be a number, got null");
}

Test(update, mul_type_rules)
{
    check("{\"$mul\":{\"n\":3}}", "{\"id\":\"1\",\"n\":7}", "{\"id\":\"1\",\"n\":21}", 1);
    check("{\"$mul\":{\"n\":0.5}}", "{\"id\":\"1\",\"n\":3}", "{\"id\":\"1\",\"n\":1.5}", 1);
    check("{\"$mul\":{\"n\":2}}", "{\"id\":\"1\"}", "{\"id\":\"1\",\"n\":0}", 1);
    check("{\"$mul\":{\"n\":2.0}}", "{\"id\":\"1\"}", "{\"id\":\"1\",\"n\":0.0}", 1);
    check("{\"$mul\":{\"n\":1}}", "{\"id\":\"1\",\"n\":5}", "{\"id\":\"1\",\"n\":5}", 0);
}

/* ---- $min / $max ------------------------------------------------------------ */

Test(update, min_max_numbers_and_type_order)
{
    check("{\"$min\":{\"n\":3}}", "{\"id\":\"1\",\"n\":5}", "{\"id\":\"1\",\"n\":3}", 1);
    check("{\"$min\":{\"n\":7}}", "{\"id\":\"1\",\"n\":5}", "{\"id\":\"1\",\"n\":5}", 0);
    check("{\"$max\":{\"n\":7.5}}", "{\"id\":\"1\",\"n\":5}", "{\"id\":\"1\",\"n\":7.5}", 1);
    check("{\"$max\":{\"n\":5.0}}", "{\"id\":\"1\",\"n\":5}", "{\"id\":\"1\",\"n\":5}", 0);
    check("{\"$min\":{\"n\":1}}", "{\"id\":\"1\"}", "{\"id\":\"1\",\"n\":1}", 1);
    /* null < numbers < strings < objects < arrays < booleans */
    check("{\"$min\":{\"s\":5}}", "{\"id\":\"1\",\"s\":\"abc\"}", "{\"id\":\"1\",\"s\":5}", 1);
    check("{\"$max\":{\"s\":5}}", "{\"id\":\"1\",\"s\":\"abc\"}", "{\"id\":\"1\",\"s\":\"abc\"}",
          0);
    check("{\"$min\":{\"s\":null}}", "{\"id\":\"1\",\"s\":0}", "{\"id\":\"1\",\"s\":null}", 1);
    check("{\"$max\":{\"s\":false}}", "{\"id\":\"1\",\"s\":[9]}", "{\"id\":\"1\",\"s\":false}", 1);
    check("{\"$max\":{\"s\":[1]}}", "{\"id\":\"1\",\"s\":{\"a\":1}}", "{\"id\":\"1\",\"s\":[1]}",
          1);
    check("{\"$max\":{\"d\":\"2024-01-02\"}}", "{\"id\":\"1\",\"d\":\"2023-12-31\"}",
          "{\"id\":\"1\",\"d\":\"2024-01-02\"}", 1);
}

/* ---- $rename ---------------------------------------------------------------- */

Test(update, rename_fields)
{
    check("{\"$rename\":{\"a\":\"b\"}}", "{\"id\":\"1\",\"a\":1,\"c\":2}",
          "{\"id\":\"1\",\"c\":2,\"b\":1}", 1);
    check("{\"$rename\":{\"a.x\":\"b.y\"}}", "{\"id\":\"1\",\"a\":{\"x\":[1],\"z\":0}}",
          "{\"id\":\"1\",\"a\":{\"z\":0},\"b\":{\"y\":[1]}}", 1);
    check("{\"$rename\":{\"a\":\"c\"}}", "{\"id\":\"1\",\"a\":1,\"c\":2}", "{\"id\":\"1\",\"c\":1}",
          1);
    check("{\"$rename\":{\"nope\":\"b\"}}", "{\"id\":\"1\",\"a\":1}", "{\"id\":\"1\",\"a\":1}", 0);
}

Test(update, rename_errors)
{
    check_err("{\"$rename\":{\"a.0\":\"b\"}}", "{\"id\":\"1\",\"a\":[1]}", DOTDB_EINVAL,
              "$rename: source field 'a.0' cannot be inside an array");
    check_err("{\"$rename\":{\"a\":\"b.0\"}}", "{\"id\":\"1\",\"a\":1,\"b\":[1]}", DOTDB_EINVAL,
              "$rename: target field 'b.0' cannot be inside an array");
    check_err("{\"$rename\":{\"a\":\"b.c\"}}", "{\"id\":\"1\",\"a\":1,\"b\":2}", DOTDB_EINVAL,
              "$rename: cannot create field 'c' in element {b: 2}");
    compile_err("{\"$rename\":{\"a\":\"a\"}}", "$rename: source and target of 'a' are the same");
    compile_err("{\"$rename\":{\"a\":1}}", "$rename: target for 'a' must be a string, got int");
    compile_err("{\"$rename\":{\"a\":\"a.b\"}}", "$rename: path 'a.b' conflicts with 'a'");
    compile_err("{\"$rename\":{\"a\":\"id\"}}", "$rename: update would change the id (path 'id')");
    compile_err("{\"$rename\":{\"a\":\"b\"},\"$set\":{\"b.c\":1}}",
                "$set: path 'b.c' conflicts with 'b'");
}

/* ---- $push ------------------------------------------------------------------ */

Test(update, push_values_and_each)
{
    check("{\"$push\":{\"t\":\"c\"}}", "{\"id\":\"1\",\"t\":[\"a\"]}",
          "{\"id\":\"1\",\"t\":[\"a\",\"c\"]}", 1);
    check("{\"$push\":{\"t\":[1,2]}}", "{\"id\":\"1\",\"t\":[]}", "{\"id\":\"1\",\"t\":[[1,2]]}", 1);
    check("{\"$push\":{\"t\":{\"k\":1}}}", "{\"id\":\"1\"}", "{\"id\":\"1\",\"t\":[{\"k\":1}]}", 1);
    check("{\"$push\":{\"t\":{\"$each\":[1,2,3]}}}", "{\"id\":\"1\",\"t\":[0]}",
          "{\"id\":\"1\",\"t\":[0,1,2,3]}", 1);
    check("{\"$push\":{\"a.b\":{\"$each\":[]}}}", "{\"id\":\"1\"}",
          "{\"id\":\"1\",\"a\":{\"b\":[]}}", 1);
    check("{\"$push\":{\"t\":{\"$each\":[]}}}", "{\"id\":\"1\",\"t\":[1]}",
          "{\"id\":\"1\",\"t\":[1]}", 0);
}

Test(update, push_position_and_slice)
{
    const char *doc = "{\"id\":\"1\",\"t\":[1,2,3]}";
    check("{\"$push\":{\"t\":{\"$each\":[8,9],\"$position\":0}}}", doc,
          "{\"id\":\"1\",\"t\":[8,9,1,2,3]}", 1);
    check("{\"$push\":{\"t\":{\"$each\":[8],\"$position\":1}}}", doc,
          "{\"id\":\"1\",\"t\":[1,8,2,3]}", 1);
    check("{\"$push\":{\"t\":{\"$each\":[8],\"$position\":99}}}", doc,
          "{\"id\":\"1\",\"t\":[1,2,3,8]}", 1);
    check("{\"$push\":{\"t\":{\"$each\":[8],\"$position\":-1}}}", doc,
          "{\"id\":\"1\",\"t\":[1,2,8,3]}", 1);
    check("{\"$push\":{\"t\":{\"$each\":[8],\"$position\":-9}}}", doc,
          "{\"id\":\"1\",\"t\":[8,1,2,3]}", 1);
    check("{\"$push\":{\"t\":{\"$each\":[4,5],\"$slice\":3}}}", doc,
          "{\"id\":\"1\",\"t\":[1,2,3]}", 0);
    check("{\"$push\":{\"t\":{\"$each\":[4,5],\"$slice\":-2}}}", doc,
          "{\"id\":\"1\",\"t\":[4,5]}", 1);
    check("{\"$push\":{\"t\":{\"$each\":[4],\"$slice\":0}}}", doc, "{\"id\":\"1\",\"t\":[]}", 1);
    check("{\"$push\":{\"t\":{\"$each\":[],\"$slice\":-9}}}", doc,
          "{\"id\":\"1\",\"t\":[1,2,3]}", 0);
    check("{\"$push\":{\"t\":{\"$slice\":1.0,\"$each\":[0],\"$position\":0}}}", doc,
          "{\"id\":\"1\",\"t\":[0]}", 1);
    check("{\"$push\":{\"n\":{\"$each\":[1,2,3],\"$slice\":-1}}}", "{\"id\":\"1\"}",
          "{\"id\":\"1\",\"n\":[3]}", 1);
}

Test(update, push_errors)
{
    check_err("{\"$push\":{\"t\":1}}", "{\"id\":\"1\",\"t\":\"str\"}", DOTDB_EINVAL,
              "$push: cannot apply to non-array field 't' (string)");
    compile_err("{\"$push\":{\"t\":{\"$each\":1}}}", "$push: $each for 't' must be an array, got int");
    compile_err("{\"$push\":{\"t\":{\"$each\":[1],\"$sort\":1}}}",
                "$push: unsupported modifier '$sort' for 't'");
    compile_err("{\"$push\":{\"t\":{\"$slice\":1}}}", "$push: modifier '$slice' on 't' needs $each");
    compile_err("{\"$push\":{\"t\":{\"$each\":[1],\"$slice\":1.5}}}",
                "$push: $slice for 't' must be an integer");
    compile_err("{\"$push\":{\"t\":{\"$each\":[1],\"$position\":\"0\"}}}",
                "$push: $position for 't' must be an integer");
}

/* ---- $addToSet -------------------------------------------------------------- */

Test(update, add_to_set)
{
    check("{\"$addToSet\":{\"t\":\"b\"}}", "{\"id\":\"1\",\"t\":[\"a\"]}",
          "{\"id\":\"1\",\"t\":[\"a\",\"b\"]}", 1);
    check("{\"$addToSet\":{\"t\":\"a\"}}", "{\"id\":\"1\",\"t\":[\"a\"]}",
          "{\"id\":\"1\",\"t\":[\"a\"]}", 0);
    check("{\"$addToSet\":{\"t\":{\"$each\":[1,2,2,1.0,3]}}}", "{\"id\":\"1\",\"t\":[3]}",
          "{\"id\":\"1\",\"t\":[3,1,2]}", 1);
    check("{\"$addToSet\":{\"t\":{\"a\":1,\"b\":2}}}", "{\"id\":\"1\",\"t\":[{\"b\":2,\"a\":1}]}",
          "{\"id\":\"1\",\"t\":[{\"b\":2,\"a\":1},{\"a\":1,\"b\":2}]}", 1);
    check("{\"$addToSet\":{\"t\":[1]}}", "{\"id\":\"1\",\"t\":[[1]]}", "{\"id\":\"1\",\"t\":[[1]]}",
          0);
    check("{\"$addToSet\":{\"n.t\":{\"$each\":[5,5]}}}", "{\"id\":\"1\"}",
          "{\"id\":\"1\",\"n\":{\"t\":[5]}}", 1);
    check_err("{\"$addToSet\":{\"t\":1}}", "{\"id\":\"1\",\"t\":{}}", DOTDB_EINVAL,
              "$addToSet: cannot apply to non-array field 't' (object)");
    compile_err("{\"$addToSet\":{\"t\":{\"$each\":[1],\"$slice\":1}}}",
                "$addToSet: unsupported modifier '$slice' for 't'");
}

/* ---- $pull ---------------------------------------------------------------- */

Test(update, pull_values)
{
    check("{\"$pull\":{\"t\":2}}", "{\"id\":\"1\",\"t\":[1,2,3,2.0,\"2\"]}",
          "{\"id\":\"1\",\"t\":[1,3,\"2\"]}", 1);
    check("{\"$pull\":{\"t\":[1,2]}}", "{\"id\":\"1\",\"t\":[[1,2],[2,1],1]}",
          "{\"id\":\"1\",\"t\":[[2,1],1]}", 1);
    check("{\"$pull\":{\"t\":9}}", "{\"id\":\"1\",\"t\":[1]}", "{\"id\":\"1\",\"t\":[1]}", 0);
    check("{\"$pull\":{\"t\":9}}", "{\"id\":\"1\"}", "{\"id\":\"1\"}", 0);
    check("{\"$pull\":{\"t\":null}}", "{\"id\":\"1\",\"t\":[null,0,false]}",
          "{\"id\":\"1\",\"t\":[0,false]}", 1);
}

Test(update, pull_conditions)
{
    const char *doc = "{\"id\":\"1\",\"v\":[3,6,9,\"x\",7.5,null]}";
    check("{\"$pull\":{\"v\":{\"$gte\":6}}}", doc, "{\"id\":\"1\",\"v\":[3,\"x\",null]}", 1);
    check("{\"$pull\":{\"v\":{\"$gt\":3,\"$lt\":9}}}", doc,
          "{\"id\":\"1\",\"v\":[3,9,\"x\",null]}", 1);
    check("{\"$pull\":{\"v\":{\"$lte\":3}}}", doc, "{\"id\":\"1\",\"v\":[6,9,\"x\",7.5,null]}", 1);
    check("{\"$pull\":{\"v\":{\"$in\":[3,\"x\",null]}}}", doc, "{\"id\":\"1\",\"v\":[6,9,7.5]}", 1);
    check("{\"$pull\":{\"v\":{\"$nin\":[3,9]}}}", doc, "{\"id\":\"1\",\"v\":[3,9]}", 1);
    check("{\"$pull\":{\"v\":{\"$ne\":6}}}", doc, "{\"id\":\"1\",\"v\":[6]}", 1);
    check("{\"$pull\":{\"v\":{\"$eq\":6.0}}}", doc, "{\"id\":\"1\",\"v\":[3,9,\"x\",7.5,null]}",
          1);
    check("{\"$pull\":{\"v\":{\"$gt\":\"a\"}}}", doc, "{\"id\":\"1\",\"v\":[3,6,9,7.5,null]}", 1);
}

Test(update, pull_object_elements_by_field)
{
    const char *doc = "{\"id\":\"1\",\"r\":[{\"item\":\"A\",\"score\":5},{\"item\":\"B\","
                      "\"score\":8},{\"item\":\"B\",\"score\":3,\"x\":1},7,{\"item\":\"C\","
                      "\"tags\":[\"t1\",\"t2\"]}]}";
    check("{\"$pull\":{\"r\":{\"item\":\"B\",\"score\":{\"$lt\":5}}}}", doc,
          "{\"id\":\"1\",\"r\":[{\"item\":\"A\",\"score\":5},{\"item\":\"B\",\"score\":8},7,"
          "{\"item\":\"C\",\"tags\":[\"t1\",\"t2\"]}]}",
          1);
    check("{\"$pull\":{\"r\":{\"score\":{\"$gte\":5}}}}", doc,
          "{\"id\":\"1\",\"r\":[{\"item\":\"B\",\"score\":3,\"x\":1},7,{\"item\":\"C\","
          "\"tags\":[\"t1\",\"t2\"]}]}",
          1);
    /* a field holding an array matches through its elements */
    check("{\"$pull\":{\"r\":{\"tags\":\"t2\"}}}", doc,
          "{\"id\":\"1\",\"r\":[{\"item\":\"A\",\"score\":5},{\"item\":\"B\",\"score\":8},"
          "{\"item\":\"B\",\"score\":3,\"x\":1},7]}",
          1);
    /* a missing field is null */
    check("{\"$pull\":{\"r\":{\"x\":null}}}", doc,
          "{\"id\":\"1\",\"r\":[{\"item\":\"B\",\"score\":3,\"x\":1},7]}", 1);
    check("{\"$pull\":{\"r\":{}}}", doc, "{\"id\":\"1\",\"r\":[7]}", 1);
}

Test(update, pull_errors)
{
    check_err("{\"$pull\":{\"t\":1}}", "{\"id\":\"1\",\"t\":5}", DOTDB_EINVAL,
              "$pull: cannot apply to non-array field 't' (int)");
    compile_err("{\"$pull\":{\"t\":{\"$regex\":\"a\"}}}",
                "$pull: operator '$regex' in 't' is not supported");
    compile_err("{\"$pull\":{\"t\":{\"$in\":1}}}", "$pull: $in in 't' needs an array, got int");
    compile_err("{\"$pull\":{\"t\":{\"$gt\":1,\"a\":1}}}",
                "$pull: condition on 't' mixes operators and fields ('a')");
    compile_err("{\"$pull\":{\"t\":{\"a\":1,\"$gt\":1}}}",
                "$pull: condition on 't' mixes fields and operators ('$gt')");
    compile_err("{\"$pull\":{\"t\":{\"a\":{\"$exists\":true}}}}",
                "$pull: operator '$exists' in 'a' is not supported");
}

/* ---- $pop ----------------------------------------------------------------- */

Test(update, pop_first_and_last)
{
    check("{\"$pop\":{\"t\":1}}", "{\"id\":\"1\",\"t\":[1,2,3]}", "{\"id\":\"1\",\"t\":[1,2]}", 1);
    check("{\"$pop\":{\"t\":-1}}", "{\"id\":\"1\",\"t\":[1,2,3]}", "{\"id\":\"1\",\"t\":[2,3]}",
          1);
    check("{\"$pop\":{\"t\":1.0}}", "{\"id\":\"1\",\"t\":[]}", "{\"id\":\"1\",\"t\":[]}", 0);
    check("{\"$pop\":{\"t\":1}}", "{\"id\":\"1\"}", "{\"id\":\"1\"}", 0);
    check_err("{\"$pop\":{\"t\":1}}", "{\"id\":\"1\",\"t\":\"s\"}", DOTDB_EINVAL,
              "$pop: cannot apply to non-array field 't' (string)");
    compile_err("{\"$pop\":{\"t\":2}}", "$pop: value for 't' must be 1 or -1");
    compile_err("{\"$pop\":{\"t\":\"1\"}}", "$pop: value for 't' must be 1 or -1");
}

/* ---- $currentDate --------------------------------------------------------- */

Test(update, current_date_representations)
{
    check("{\"$currentDate\":{\"d\":true}}", "{\"id\":\"1\"}",
          "{\"id\":\"1\",\"d\":\"2023-11-14T22:13:20.123Z\"}", 1);
    check("{\"$currentDate\":{\"d\":{\"$type\":\"date\"}}}", "{\"id\":\"1\",\"d\":0}",
          "{\"id\":\"1\",\"d\":\"2023-11-14T22:13:20.123Z\"}", 1);
    check("{\"$currentDate\":{\"a.t\":{\"$type\":\"timestamp\"}}}", "{\"id\":\"1\"}",
          "{\"id\":\"1\",\"a\":{\"t\":1700000000123}}", 1);
    compile_err("{\"$currentDate\":{\"d\":1}}",
                "$currentDate: value for 'd' must be true or {\"$type\": \"date\"} or "
                "{\"$type\": \"timestamp\"}");
    compile_err("{\"$currentDate\":{\"d\":{\"$type\":\"clock\"}}}",
                "$currentDate: value for 'd' must be true or {\"$type\": \"date\"} or "
                "{\"$type\": \"timestamp\"}");

    /* before the epoch, milliseconds still count up within the second */
    upd_spec *spec = compile_ok("{\"$currentDate\":{\"d\":true}}");
    dbuf d, out;
    int changed;
    char err[ERRLEN];
    enc("{\"id\":\"1\"}", &d);
    dbuf_init(&out);
    cr_assert_eq(update_apply(spec, val_of(&d), -1, &lim, &out, &changed, err, sizeof err),
                 DOTDB_OK);
    codec_val dv;
    const char *s;
    size_t slen;
    cr_assert(codec_obj_get(val_of(&out), "d", 1, &dv) && codec_as_string(dv, &s, &slen));
    cr_assert_eq(slen, 24);
    cr_assert(memcmp(s, "1969-12-31T23:59:59.999Z", 24) == 0);
    dbuf_free(&d);
    dbuf_free(&out);
    update_free(spec);
}

/* ---- several operators, reuse ----------------------------------------------- */

Test(update, several_operators_and_reuse_of_a_spec)
{
    upd_spec *spec = compile_ok("{\"$set\":{\"s\":\"x\"},\"$inc\":{\"n\":1},\"$push\":{\"l\":0},"
                                "\"$unset\":{\"gone\":1}}");
    int changed, rc;
    char err[ERRLEN];
    char *a = run_spec(spec, "{\"id\":\"1\",\"n\":1,\"gone\":true}", &lim, &changed, &rc, err);
    cr_assert_str_eq(a, "{\"id\":\"1\",\"n\":2,\"l\":[0],\"s\":\"x\"}");
    char *b = run_spec(spec, "{\"id\":\"2\",\"l\":[5],\"s\":\"x\"}", &lim, &changed, &rc, err);
    cr_assert_str_eq(b, "{\"id\":\"2\",\"l\":[5,0],\"s\":\"x\",\"n\":1}");
    free(a);
    free(b);
    update_free(spec);
    update_free(NULL);
}

/* ---- compile errors ------------------------------------------------------- */

Test(update, compile_errors_name_operator_and_field)
{
    compile_err("{\"$foo\":{\"a\":1}}", "unknown update operator '$foo'");
    compile_err("{\"$set\":{\"a\":1},\"name\":\"x\"}",
                "update mixes operators and plain fields ('$set' and 'name')");
    compile_err("{\"name\":\"x\",\"$inc\":{\"a\":1}}",
                "update mixes operators and plain fields ('$inc' and 'name')");
    compile_err("{\"$set\":{}}", "$set: operand is empty (name at least one field)");
    compile_err("{\"$set\":5}", "$set: operand must be an object, got int");
    compile_err("{\"$set\":{\"a\":1},\"$inc\":{\"a.b\":1}}", "$inc: path 'a.b' conflicts with 'a'");
    compile_err("{\"$inc\":{\"a.b\":1},\"$set\":{\"a\":1}}", "$inc: path 'a.b' conflicts with 'a'");
    compile_err("{\"$set\":{\"a\":1},\"$inc\":{\"a\":1}}", "$inc: path 'a' conflicts with 'a'");
    compile_err("{\"$set\":{\"a.b\":1,\"a\":{\"c\":1}}}", "$set: path 'a.b' conflicts with 'a'");
    compile_err("{\"$set\":{\"x.1.y\":1,\"x.1\":2}}", "$set: path 'x.1.y' conflicts with 'x.1'");
    compile_err("{\"$set\":{\"id\":\"new\"}}", "$set: update would change the id (path 'id')");
    compile_err("{\"$unset\":{\"id\":1}}", "$unset: update would change the id (path 'id')");
    compile_err("{\"$set\":{\"id.x\":1}}", "$set: update would change the id (path 'id.x')");
    compile_err("{\"$set\":{\"\":1}}", "$set: empty field path");
    compile_err("{\"$set\":{\"a..b\":1}}", "$set: path 'a..b' has an empty part");
    compile_err("{\"$set\":{\"a.\":1}}", "$set: path 'a.' has an empty part");
    compile_err("{\"$set\":{\"a.$.b\":1}}",
                "$set: path 'a.$.b': positional and '$' parts are not supported");

    dbuf u;
    upd_spec *spec;
    char err[ERRLEN];
    enc("[1]", &u);
    cr_assert_eq(update_compile(val_of(&u), &spec, err, sizeof err), DOTDB_EINVAL);
    cr_assert_str_eq(err, "update must be an object, got array");
    cr_assert_eq(update_compile(val_of(&u), &spec, NULL, 0), DOTDB_EINVAL);
    dbuf_free(&u);
}

Test(update, paths_that_only_look_alike_do_not_conflict)
{
    check("{\"$set\":{\"a\":1,\"ab\":2,\"a-b\":3,\"idx\":4},\"$inc\":{\"b.c\":1,\"b.d\":1}}",
          "{\"id\":\"1\"}",
          "{\"id\":\"1\",\"a\":1,\"a-b\":3,\"ab\":2,\"b\":{\"c\":1,\"d\":1},\"idx\":4}", 1);
}

/* ---- limits --------------------------------------------------------------- */

Test(update, result_limits_and_out_restored)
{
    upd_spec *spec = compile_ok("{\"$set\":{\"s\":\"0123456789012345678901234567890123456789\"}}");
    codec_limits small = {40, 100};
    int changed, rc;
    char err[ERRLEN];
    char *r = run_spec(spec, "{\"id\":\"1\"}", &small, &changed, &rc, err);
    cr_assert_null(r);
    cr_assert_eq(rc, DOTDB_ETOOBIG);
    cr_assert_str_eq(err, "updated document exceeds the size limit of 40 bytes");
    update_free(spec);

    spec = compile_ok("{\"$set\":{\"a.b.c\":[1]}}");
    codec_limits shallow = {1u << 20, 3};
    r = run_spec(spec, "{\"id\":\"1\"}", &shallow, &changed, &rc, err);
    cr_assert_null(r);
    cr_assert_eq(rc, DOTDB_ETOODEEP);
    cr_assert_str_eq(err, "updated document nests deeper than 3");
    codec_limits enough = {1u << 20, 4}; /* doc 1, a 2, b 3, [1] 4 */
    r = run_spec(spec, "{\"id\":\"1\"}", &enough, &changed, &rc, err);
    cr_assert_str_eq(r, "{\"id\":\"1\",\"a\":{\"b\":{\"c\":[1]}}}");
    free(r);
    r = run_spec(spec, "{\"id\":\"1\"}", NULL, &changed, &rc, err);
    cr_assert_eq(rc, DOTDB_OK, "NULL limits mean the defaults");
    free(r);
    update_free(spec);
}

Test(update, failure_mid_way_changes_nothing)
{
    /* $inc succeeds on n before $set fails on a.b: nothing of it is kept */
    check_err("{\"$inc\":{\"n\":1},\"$set\":{\"p.q\":1}}", "{\"id\":\"1\",\"n\":1,\"p\":3}",
              DOTDB_EINVAL, "$set: cannot create field 'q' in element {p: 3}");
}
