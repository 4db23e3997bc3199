/*
 * test_dval.c - unit tests of the mutable document tree (lib/dval.c).
 *
 * The encoder is checked byte for byte against the JSON parser's encoding
 * (encode(from_codec(x)) == x, and trees built by hand encode exactly as the
 * parser encodes the same JSON), then validated with codec_validate.  Paths,
 * ownership on failure, equality and the cross-type order follow.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dval.h"

#define ERRLEN 256

static const codec_limits lim = {64u * 1024u * 1024u, 1000};

static void enc(const char *json, dbuf *out)
{
    char err[ERRLEN];
    dbuf_init(out);
    int rc = codec_value_from_json(json, strlen(json), &lim, out, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "parse of %.80s failed: %s", json, err);
}

static dval from_json(const char *json)
{
    dbuf b;
    dval v;
    enc(json, &b);
    cr_assert_eq(dval_from_codec((codec_val){b.data, b.len}, &v), DOTDB_OK);
    dbuf_free(&b);
    return v;
}

/* JSON text of a tree (through the encoder), caller frees. */
static char *to_json(const dval *v)
{
    dbuf b, t;
    char err[ERRLEN];
    dbuf_init(&b);
    dbuf_init(&t);
    cr_assert_eq(dval_encode(v, &b), DOTDB_OK);
    cr_assert_eq(codec_validate(b.data, b.len, 1000, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_eq(codec_to_json((codec_val){b.data, b.len}, &t), DOTDB_OK);
    cr_assert_eq(dbuf_putc(&t, 0), 0);
    dbuf_free(&b);
    return (char *)dbuf_steal(&t, NULL);
}

/* encode(from_codec(json)) must equal the parser's bytes exactly. */
static void check_roundtrip(const char *json)
{
    dbuf a, b;
    dval v;
    char err[ERRLEN];
    enc(json, &a);
    cr_assert_eq(dval_from_codec((codec_val){a.data, a.len}, &v), DOTDB_OK);
    dbuf_init(&b);
    cr_assert_eq(dbuf_putc(&b, 0xee), 0); /* appends: existing bytes stay */
    cr_assert_eq(dval_encode(&v, &b), DOTDB_OK);
    cr_assert_eq(b.data[0], 0xee);
    cr_assert_eq(b.len - 1, a.len, "length %zu != %zu for %.60s", b.len - 1, a.len, json);
    cr_assert(memcmp(a.data, b.data + 1, a.len) == 0, "bytes differ for %.60s", json);
    cr_assert_eq(codec_validate(b.data + 1, b.len - 1, 1000, err, sizeof err), DOTDB_OK, "%s", err);
    dval_free(&v);
    dbuf_free(&a);
    dbuf_free(&b);
}

static void expect_json(const dval *v, const char *want)
{
    char *got = to_json(v);
    cr_assert_str_eq(got, want);
    free(got);
}

/* A JSON array of n small ints, or an object of n members, or a string. */
static char *big_json(const char *kind, size_t n)
{
    dbuf t;
    dbuf_init(&t);
    char item[64];
    if (strcmp(kind, "string") == 0) {
        cr_assert_eq(dbuf_putc(&t, '"'), 0);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(dbuf_putc(&t, (uint8_t)('a' + i % 26)), 0);
        cr_assert_eq(dbuf_append(&t, "\"", 2), 0);
        return (char *)dbuf_steal(&t, NULL);
    }
    int obj = strcmp(kind, "object") == 0;
    cr_assert_eq(dbuf_putc(&t, obj ? '{' : '['), 0);
    for (size_t i = 0; i < n; i++) {
        /* keys in descending order so sorted[] is a real permutation */
        int k = obj ? snprintf(item, sizeof item, "%s\"k%06zu\":%zu", i ? "," : "", n - i, i)
                    : snprintf(item, sizeof item, "%s%zu", i ? "," : "", i * 7);
        cr_assert_eq(dbuf_append(&t, item, (size_t)k), 0);
    }
    cr_assert_eq(dbuf_putc(&t, obj ? '}' : ']'), 0);
    cr_assert_eq(dbuf_putc(&t, 0), 0);
    return (char *)dbuf_steal(&t, NULL);
}

/* ---- encoding ------------------------------------------------------------ */

Test(dval, roundtrip_scalars_and_small_documents)
{
    static const char *cases[] = {
        "null", "true", "false", "0", "-1", "127", "-128", "128", "-129", "32767", "-32768",
        "32768", "-32769", "2147483647", "-2147483648", "2147483648", "-2147483649",
        "9223372036854775807", "-9223372036854775808", "1.5", "-0.0", "1e300", "1.0",
        "\"\"", "\"hello\"", "\"\\u0000nul inside\"", "\"caf\\u00e9 \\ud83d\\ude00\"", "[]", "{}",
        "[1,[2,[3,[]]],{}]", "{\"id\":\"x\",\"b\":1,\"a\":{\"z\":null,\"y\":[true,false]}}",
        "{\"\":1,\"a\":2,\"A\":3,\"aa\":4,\"\\u00e9\":5}", "{\"b\":{\"d\":1,\"c\":2},\"a\":[{\"y\":1,\"x\":2}]}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_roundtrip(cases[i]);
}

Test(dval, roundtrip_every_container_width)
{
    /* sizes around the 1-, 2- and 4-byte width boundaries */
    static const size_t arr_n[] = {0, 60, 80, 126, 127, 128, 10000, 40000};
    static const size_t obj_n[] = {1, 10, 20, 30, 2000, 8000};
    static const size_t str_n[] = {127, 128, 250, 255, 300, 16383, 16384, 70000};
    for (size_t i = 0; i < sizeof arr_n / sizeof arr_n[0]; i++) {
        char *j = big_json("array", arr_n[i]);
        check_roundtrip(j);
        free(j);
    }
    for (size_t i = 0; i < sizeof obj_n / sizeof obj_n[0]; i++) {
        char *j = big_json("object", obj_n[i]);
        check_roundtrip(j);
        free(j);
    }
    for (size_t i = 0; i < sizeof str_n / sizeof str_n[0]; i++) {
        char *s = big_json("string", str_n[i]);
        check_roundtrip(s);
        /* the same string inside containers moves them across widths */
        char *wrapped = malloc(2 * strlen(s) + 64);
        cr_assert_not_null(wrapped);
        sprintf(wrapped, "{\"s\":%s,\"t\":[%s]}", s, s);
        check_roundtrip(wrapped);
        free(wrapped);
        free(s);
    }
}

Test(dval, built_tree_encodes_like_the_parser)
{
    dval o = dval_object(), a = dval_array(), s, x;
    cr_assert_eq(dval_string("v", 1, &s), DOTDB_OK);
    x = dval_int(300);
    cr_assert_eq(dval_obj_set(&o, "zeta", 4, &x), DOTDB_OK);
    cr_assert_eq(x.type, DV_NULL, "moved in");
    x = dval_double(2.5);
    cr_assert_eq(dval_arr_push(&a, &x), DOTDB_OK);
    x = dval_bool(1);
    cr_assert_eq(dval_arr_push(&a, &x), DOTDB_OK);
    x = dval_null();
    cr_assert_eq(dval_arr_insert(&a, 0, &x), DOTDB_OK);
    cr_assert_eq(dval_obj_set(&o, "alpha", 5, &a), DOTDB_OK);
    cr_assert_eq(dval_obj_set(&o, "mid", 3, &s), DOTDB_OK);
    x = dval_int(-5000000000LL);
    cr_assert_eq(dval_obj_set(&o, "big", 3, &x), DOTDB_OK);

    dbuf want, got;
    enc("{\"zeta\":300,\"alpha\":[null,2.5,true],\"mid\":\"v\",\"big\":-5000000000}", &want);
    dbuf_init(&got);
    cr_assert_eq(dval_encode(&o, &got), DOTDB_OK);
    cr_assert_eq(got.len, want.len);
    cr_assert(memcmp(got.data, want.data, want.len) == 0);
    dbuf_free(&want);
    dbuf_free(&got);
    dval_free(&o);
    cr_assert_eq(o.type, DV_NULL);
}

Test(dval, encode_rejects_non_finite_and_restores_out)
{
    dval o = from_json("{\"a\":1}");
    dval n = dval_double(NAN);
    cr_assert_eq(dval_obj_set(&o, "b", 1, &n), DOTDB_OK);
    dbuf b;
    dbuf_init(&b);
    cr_assert_eq(dbuf_append(&b, "xyz", 3), 0);
    cr_assert_eq(dval_encode(&o, &b), DOTDB_EINVAL);
    cr_assert_eq(b.len, 3);
    dval inf = dval_double(INFINITY);
    cr_assert_eq(dval_encode(&inf, &b), DOTDB_EINVAL);
    cr_assert_eq(b.len, 3);
    dbuf_free(&b);
    dval_free(&o);
}

/* ---- copy, objects, arrays --------------------------------------------- */

Test(dval, copy_is_deep_and_independent)
{
    dval a = from_json("{\"x\":[1,{\"y\":\"s\"}],\"z\":2.0}");
    dval b;
    cr_assert_eq(dval_copy(&a, &b), DOTDB_OK);
    cr_assert(dval_equal(&a, &b));
    dval *y = dval_path_get(&b, "x.1.y", 5);
    cr_assert_not_null(y);
    cr_assert_neq(y->u.str.s, dval_path_get(&a, "x.1.y", 5)->u.str.s);
    dval seven = dval_int(7);
    cr_assert_eq(dval_path_set(&b, "x.1.y", 5, &seven, NULL, 0), DOTDB_OK);
    expect_json(&a, "{\"x\":[1,{\"y\":\"s\"}],\"z\":2.0}");
    expect_json(&b, "{\"x\":[1,{\"y\":7}],\"z\":2.0}");
    dval_free(&a);
    dval_free(&b);
}

Test(dval, obj_set_replaces_in_place_and_remove_keeps_order)
{
    dval o = from_json("{\"a\":1,\"b\":2,\"c\":3}");
    dval v = dval_bool(0);
    cr_assert_eq(dval_obj_set(&o, "b", 1, &v), DOTDB_OK);
    expect_json(&o, "{\"a\":1,\"b\":false,\"c\":3}");
    cr_assert_eq(dval_obj_remove(&o, "a", 1), 1);
    cr_assert_eq(dval_obj_remove(&o, "a", 1), 0);
    expect_json(&o, "{\"b\":false,\"c\":3}");
    cr_assert_null(dval_obj_get(&o, "bb", 2));
    cr_assert_null(dval_obj_get(&o, "", 0));
    v = dval_int(9);
    cr_assert_eq(dval_obj_set(&o, "", 0, &v), DOTDB_OK);
    cr_assert_eq(dval_obj_get(&o, "", 0)->u.i, 9);
    expect_json(&o, "{\"b\":false,\"c\":3,\"\":9}");
    dval_free(&o);
}

Test(dval, array_insert_and_remove)
{
    dval a = from_json("[1,2,3]");
    dval v = dval_int(0);
    cr_assert_eq(dval_arr_insert(&a, 0, &v), DOTDB_OK);
    v = dval_int(9);
    cr_assert_eq(dval_arr_insert(&a, 4, &v), DOTDB_OK);
    v = dval_int(5);
    cr_assert_eq(dval_arr_insert(&a, 6, &v), DOTDB_EINVAL);
    cr_assert_eq(v.type, DV_INT, "not moved on failure");
    expect_json(&a, "[0,1,2,3,9]");
    dval_arr_remove(&a, 2);
    dval_arr_remove(&a, 3);
    expect_json(&a, "[0,1,3]");
    dval_free(&a);
}

Test(dval, strings_keep_nul_bytes)
{
    dval s;
    cr_assert_eq(dval_string("a\0b", 3, &s), DOTDB_OK);
    cr_assert_eq(s.u.str.len, 3);
    cr_assert_eq(s.u.str.s[3], '\0');
    expect_json(&s, "\"a\\u0000b\"");
    dval_free(&s);
    cr_assert_eq(dval_string("", 0, &s), DOTDB_OK);
    cr_assert_not_null(s.u.str.s);
    expect_json(&s, "\"\"");
    dval_free(&s);
    dval_free(NULL);
}

/* ---- paths --------------------------------------------------------------- */

Test(dval, path_get_objects_arrays_and_no_traversal)
{
    dval d = from_json("{\"a\":{\"b\":[10,{\"c\":1}],\"0\":\"zero\"},\"\":{\"\":5}}");
    cr_assert_eq(dval_path_get(&d, "a.b.0", 5)->u.i, 10);
    cr_assert_eq(dval_path_get(&d, "a.b.1.c", 7)->u.i, 1);
    cr_assert_eq(dval_path_get(&d, "a.0", 3)->type, DV_STRING, "digits are keys on objects");
    cr_assert_null(dval_path_get(&d, "a.b.01", 6));
    cr_assert_null(dval_path_get(&d, "a.b.2", 5));
    cr_assert_null(dval_path_get(&d, "a.b.c", 5), "no implicit traversal");
    cr_assert_null(dval_path_get(&d, "a.b.0.x", 7));
    cr_assert_eq(dval_path_get(&d, ".", 1)->u.i, 5, "empty parts name the key \"\"");
    cr_assert_eq(dval_path_get(&d, "a", 1)->type, DV_OBJECT);
    dval_free(&d);
}

Test(dval, path_set_creates_objects_and_pads_arrays)
{
    dval d = from_json("{\"id\":\"1\",\"a\":{\"x\":1},\"arr\":[1]}");
    dval v = dval_int(5);
    cr_assert_eq(dval_path_set(&d, "a.b.c", 5, &v, NULL, 0), DOTDB_OK);
    cr_assert_eq(v.type, DV_NULL);
    v = dval_int(6);
    cr_assert_eq(dval_path_set(&d, "new.0.k", 7, &v, NULL, 0), DOTDB_OK);
    v = dval_int(7);
    cr_assert_eq(dval_path_set(&d, "arr.3", 5, &v, NULL, 0), DOTDB_OK);
    v = dval_int(8);
    cr_assert_eq(dval_path_set(&d, "arr.0", 5, &v, NULL, 0), DOTDB_OK);
    v = dval_int(9);
    cr_assert_eq(dval_path_set(&d, "arr.5.z.y", 9, &v, NULL, 0), DOTDB_OK);
    v = dval_int(10);
    cr_assert_eq(dval_path_set(&d, "a.x", 3, &v, NULL, 0), DOTDB_OK);
    expect_json(&d, "{\"id\":\"1\",\"a\":{\"x\":10,\"b\":{\"c\":5}},\"arr\":[8,null,null,7,null,"
                    "{\"z\":{\"y\":9}}],\"new\":{\"0\":{\"k\":6}}}");
    dval_free(&d);
}

Test(dval, path_set_errors_leave_tree_and_value)
{
    char err[ERRLEN];
    dval d = from_json("{\"a\":5,\"n\":null,\"arr\":[1,{\"q\":\"long string value here\"}]}");
    dval before;
    cr_assert_eq(dval_copy(&d, &before), DOTDB_OK);
    dval v;
    cr_assert_eq(dval_string("keep", 4, &v), DOTDB_OK);

    cr_assert_eq(dval_path_set(&d, "a.b", 3, &v, err, sizeof err), DOTDB_EINVAL);
    cr_assert_str_eq(err, "cannot create field 'b' in element {a: 5}");
    cr_assert_eq(dval_path_set(&d, "n.b.c", 5, &v, err, sizeof err), DOTDB_EINVAL);
    cr_assert_str_eq(err, "cannot create field 'b' in element {n: null}");
    cr_assert_eq(dval_path_set(&d, "arr.x", 5, &v, err, sizeof err), DOTDB_EINVAL);
    cr_assert_str_eq(err, "cannot create field 'x' in element {arr: [...]}");
    cr_assert_eq(dval_path_set(&d, "arr.1.q.z", 9, &v, err, sizeof err), DOTDB_EINVAL);
    cr_assert_str_eq(err, "cannot create field 'z' in element {q: \"long string value here\"}");
    cr_assert_eq(dval_path_set(&d, "arr.1.q.z", 9, &v, NULL, 0), DOTDB_EINVAL);

    cr_assert_eq(v.type, DV_STRING, "the value stays with the caller");
    cr_assert(dval_equal(&d, &before));
    dval_free(&v);
    dval_free(&d);
    dval_free(&before);
}

Test(dval, path_unset_objects_and_array_elements)
{
    dval d = from_json("{\"a\":{\"b\":1,\"c\":2},\"arr\":[1,2,3]}");
    cr_assert_eq(dval_path_unset(&d, "a.b", 3), 1);
    cr_assert_eq(dval_path_unset(&d, "a.b", 3), 0);
    cr_assert_eq(dval_path_unset(&d, "arr.1", 5), 1);
    cr_assert_eq(dval_path_unset(&d, "arr.7", 5), 0);
    cr_assert_eq(dval_path_unset(&d, "arr.x", 5), 0);
    cr_assert_eq(dval_path_unset(&d, "zz.y", 4), 0);
    expect_json(&d, "{\"a\":{\"c\":2},\"arr\":[1,null,3]}");
    cr_assert_eq(dval_path_unset(&d, "a", 1), 1);
    expect_json(&d, "{\"arr\":[1,null,3]}");
    dval_free(&d);
}

Test(dval, parse_index_is_canonical)
{
    size_t i;
    cr_assert(dval_parse_index("0", 1, &i) && i == 0);
    cr_assert(dval_parse_index("120", 3, &i) && i == 120);
    cr_assert_not(dval_parse_index("", 0, &i));
    cr_assert_not(dval_parse_index("01", 2, &i));
    cr_assert_not(dval_parse_index("+1", 2, &i));
    cr_assert_not(dval_parse_index("-1", 2, &i));
    cr_assert_not(dval_parse_index("1234567890123456789", 19, &i));
}

/* ---- comparison ---------------------------------------------------------- */

Test(dval, equality_compares_numbers_by_value)
{
    dval a = from_json("{\"x\":[1,2.0],\"y\":{\"z\":3}}");
    dval b = from_json("{\"x\":[1.0,2],\"y\":{\"z\":3.0}}");
    dval c = from_json("{\"y\":{\"z\":3},\"x\":[1,2]}");
    cr_assert(dval_equal(&a, &b));
    cr_assert_not(dval_equal(&a, &c), "member order matters");
    dval_free(&a);
    dval_free(&b);
    dval_free(&c);
    dval big = dval_int(9007199254740993LL), bd = dval_double(9007199254740992.0);
    cr_assert_not(dval_equal(&big, &bd), "no rounding of large ints");
    cr_assert_eq(dval_cmp(&big, &bd), 1);
    cr_assert_eq(dval_cmp(&bd, &big), -1);
    dval m = dval_int(INT64_MAX), md = dval_double(9223372036854775808.0);
    cr_assert_eq(dval_cmp(&m, &md), -1);
    dval neg = dval_int(-3), negd = dval_double(-2.5);
    cr_assert_eq(dval_cmp(&neg, &negd), -1);
    cr_assert_eq(dval_cmp(&negd, &neg), 1);
}

Test(dval, cmp_follows_mongodb_type_order)
{
    static const char *ordered[] = {
        "null", "-5", "1", "1.5", "2", "\"\"", "\"a\"", "\"ab\"", "\"b\"", "{}", "{\"a\":1}",
        "{\"a\":2}", "{\"b\":0}", "[]", "[1]", "[1,2]", "[2]", "false", "true",
    };
    size_t n = sizeof ordered / sizeof ordered[0];
    dval v[sizeof ordered / sizeof ordered[0]];
    for (size_t i = 0; i < n; i++)
        v[i] = from_json(ordered[i]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int want = (i > j) - (i < j);
            cr_assert_eq(dval_cmp(&v[i], &v[j]), want, "%s vs %s", ordered[i], ordered[j]);
        }
    for (size_t i = 0; i < n; i++)
        dval_free(&v[i]);
}

Test(dval, describe_for_messages)
{
    char buf[64];
    dval v = dval_double(2.5);
    dval_describe(&v, buf, sizeof buf);
    cr_assert_str_eq(buf, "2.5");
    v = dval_array();
    dval_describe(&v, buf, sizeof buf);
    cr_assert_str_eq(buf, "[...]");
    v = dval_bool(1);
    dval_describe(&v, buf, sizeof buf);
    cr_assert_str_eq(buf, "true");
}
