/*
 * test_codec.c - unit tests of the DDB1 codec (lib/codec.c, lib/json.c).
 *
 * JSON -> binary -> JSON round trips, zero-copy access (widths 1, 2 and 4),
 * equality, the id rules and limits, malformed JSON, and malformed binary:
 * codec_validate() is fed truncated, mutated and hand-corrupted encodings
 * and must reject them without reading outside the buffer (run the suite
 * with -DDOTDB_SANITIZE=ON so ASan checks that).
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define ERRLEN 256

static const codec_limits default_lim = {CODEC_DEFAULT_MAX_SIZE, CODEC_DEFAULT_MAX_DEPTH};

/* ---- helpers ------------------------------------------------------------- */

/* Encode any JSON value; fails the test on error. */
static void enc(const char *json, dbuf *out)
{
    char err[ERRLEN];
    dbuf_init(out);
    int rc = codec_value_from_json(json, strlen(json), &default_lim, out, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "parse of %.80s failed: %s", json, err);
    rc = codec_validate(out->data, out->len, CODEC_DEFAULT_MAX_DEPTH, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "own encoding of %.80s does not validate: %s", json, err);
}

static codec_val val_of(const dbuf *b) { return (codec_val){b->data, b->len}; }

/* JSON text of an encoded value, NUL-terminated, caller frees. */
static char *to_text(codec_val v)
{
    dbuf out;
    dbuf_init(&out);
    cr_assert_eq(codec_to_json(v, &out), DOTDB_OK);
    cr_assert_eq(dbuf_putc(&out, 0), 0);
    return (char *)dbuf_steal(&out, NULL);
}

/* JSON -> binary -> JSON. */
static char *roundtrip(const char *json)
{
    dbuf b;
    enc(json, &b);
    char *s = to_text(val_of(&b));
    dbuf_free(&b);
    return s;
}

/* Parse expecting failure; returns the code and fills err. */
static int parse_fail(const char *json, size_t len, char *err)
{
    dbuf b;
    dbuf_init(&b);
    int rc = codec_value_from_json(json, len, &default_lim, &b, err, ERRLEN);
    cr_assert_eq(b.len, 0, "failed parse left %zu bytes", b.len);
    dbuf_free(&b);
    return rc;
}

static int doc_parse(const char *json, const char *gen_id, dbuf *out, char *id_buf, char *err)
{
    dbuf_init(out);
    return codec_from_json(json, strlen(json), &default_lim, gen_id, out, id_buf, err, ERRLEN);
}

static int validate(const dbuf *b, char *err)
{
    return codec_validate(b->data, b->len, CODEC_DEFAULT_MAX_DEPTH, err, ERRLEN);
}

/* A string of n copies of c, then tail (caller frees). */
static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    cr_assert_not_null(s);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + hl + i * ul, unit, ul);
    memcpy(s + hl + ul * n, tail, tl + 1);
    return s;
}

/* n nested arrays around `inner` (e.g. "[[1]]" for n = 2). */
static char *nested_arrays(size_t n, const char *inner)
{
    size_t il = strlen(inner);
    char *s = malloc(2 * n + il + 1);
    cr_assert_not_null(s);
    memset(s, '[', n);
    memcpy(s + n, inner, il);
    memset(s + n + il, ']', n);
    s[2 * n + il] = '\0';
    return s;
}

/* ---- round trips --------------------------------------------------------- */

Test(codec, roundtrips_many_documents)
{
    static const char *same[] = {
        "{}",
        "[]",
        "{\"a\":{}}",
        "{\"a\":[]}",
        "[[],{},[[]],[{}]]",
        "{\"a\":1,\"b\":\"x\",\"c\":null,\"d\":true,\"e\":false}",
        "{\"nested\":{\"deeper\":{\"deepest\":[1,2,{\"k\":\"v\"}]}}}",
        "[1,-1,0,127,128,-128,-129,32767,32768,-32768,-32769,2147483647,2147483648,"
        "-2147483648,-2147483649]",
        "{\"min\":-9223372036854775808,\"max\":9223372036854775807}",
        "{\"s\":\"\",\"t\":\"plain text\"}",
        "{\"\":\"empty key\"}",
        "{\"unicode\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87\"}",
        "{\"esc\":\"quote\\\" backslash\\\\ nl\\n tab\\t cr\\r bs\\b ff\\f\"}",
        "{\"ctl\":\"\\u0000\\u0001\\u001f\"}",
        "[0.1,1.5,-2.25,1e+300,1e-300,2.2250738585072014e-308,1.7976931348623157e+308]",
        "[1.0,-1.0,0.0,-0.0,100.0]",
        "[0.30000000000000004,123456789.123]",
        "\"just a string\"",
        "42",
        "null",
        "true",
        "{\"id\":\"user_000123\",\"name\":\"Alice Johnson\",\"age\":30,\"score\":87.5,"
        "\"city\":\"Berlin\",\"tags\":[\"developer\",\"admin\"],"
        "\"preferences\":{\"theme\":\"dark\",\"notifications\":true}}",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char *s = roundtrip(same[i]);
        cr_expect_str_eq(s, same[i]);
        free(s);
    }
}

Test(codec, roundtrip_normalises_whitespace_and_escapes)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {" { \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { } } ", "{\"a\":[1,2],\"b\":{}}"},
        {"\"\\u00e9\\u20AC\"", "\"\xc3\xa9\xe2\x82\xac\""},
        {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""},
        {"\"\\/\"", "\"/\""},
        {"\"a\\u0041\"", "\"aA\""},
        {"[1E2,1e-2,2.50,-0,1e300]", "[100.0,0.01,2.5,0,1e+300]"},
        {"[1.0e0, 0.1e1]", "[1.0,1.0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = roundtrip(cases[i].in);
        cr_expect_str_eq(s, cases[i].out, "input %s", cases[i].in);
        free(s);
    }
}

Test(codec, keeps_member_order_of_the_input)
{
    char *s = roundtrip("{\"zeta\":1,\"alpha\":2,\"mid\":3,\"Beta\":4}");
    cr_assert_str_eq(s, "{\"zeta\":1,\"alpha\":2,\"mid\":3,\"Beta\":4}");
    free(s);
}

Test(codec, doubles_stay_doubles_and_roundtrip_exactly)
{
    static const double vals[] = {0.1, 1e300, 1.0, -0.0, 5e-324, 2.2250738585072014e-308,
                                  1.7976931348623157e308, 0.1 + 0.2, 1.0 / 3.0, 123456.789e-20,
                                  9007199254740993.0, 4.35, 87.5};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "%.17e", vals[i]);
        dbuf b;
        enc(text, &b);
        cr_assert_eq(codec_type(val_of(&b)), DOTDB_T_DOUBLE, "%s", text);
        char *back = to_text(val_of(&b));
        dbuf b2;
        enc(back, &b2);
        double d1, d2;
        cr_assert(codec_as_double(val_of(&b), &d1));
        cr_assert(codec_as_double(val_of(&b2), &d2));
        cr_expect(memcmp(&d1, &d2, sizeof d1) == 0, "%s -> %s changed the double", text, back);
        cr_expect(memcmp(&d1, &vals[i], sizeof d1) == 0, "%s parsed wrong", text);
        cr_expect(strpbrk(back, ".e") != NULL, "%s printed as %s looks like an int", text, back);
        free(back);
        dbuf_free(&b);
        dbuf_free(&b2);
    }
}

Test(codec, negative_zero_keeps_its_sign)
{
    dbuf b;
    enc("-0.0", &b);
    double d;
    cr_assert(codec_as_double(val_of(&b), &d));
    cr_assert(signbit(d));
    char *s = to_text(val_of(&b));
    cr_assert_str_eq(s, "-0.0");
    free(s);
    dbuf_free(&b);
}

Test(codec, shortest_double_text)
{
    static const struct {
        const char *in, *out;
    } cases[] = {{"0.1", "0.1"}, {"1e300", "1e+300"}, {"1.0", "1.0"}, {"87.5", "87.5"},
                 {"0.30000000000000004", "0.30000000000000004"}, {"1e22", "1e+22"},
                 {"100000000000000000000000.0", "1e+23"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = roundtrip(cases[i].in);
        cr_expect_str_eq(s, cases[i].out);
        free(s);
    }
}

Test(codec, ints_use_the_smallest_width)
{
    static const struct {
        const char *in;
        uint8_t tag;
        int64_t v;
    } cases[] = {
        {"0", CODEC_INT8, 0},
        {"127", CODEC_INT8, 127},
        {"-128", CODEC_INT8, -128},
        {"128", CODEC_INT16, 128},
        {"-129", CODEC_INT16, -129},
        {"32768", CODEC_INT32, 32768},
        {"-2147483648", CODEC_INT32, INT32_MIN},
        {"2147483648", CODEC_INT64, 2147483648LL},
        {"9223372036854775807", CODEC_INT64, INT64_MAX},
        {"-9223372036854775808", CODEC_INT64, INT64_MIN},
        {"-0", CODEC_INT8, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dbuf b;
        enc(cases[i].in, &b);
        int64_t v;
        cr_expect_eq(b.data[0], cases[i].tag, "%s", cases[i].in);
        cr_expect_eq(b.len, codec_val_len(b.data));
        cr_assert(codec_as_int64(val_of(&b), &v));
        cr_expect_eq(v, cases[i].v, "%s", cases[i].in);
        dbuf_free(&b);
    }
}

Test(codec, parses_long_number_texts_exactly)
{
    /* longer than any stack buffer: 1 + 10^-120 rounds to 1.0; 0.1 with 200 zeros */
    char *one = repeat("1.", "0", 120, "1");
    dbuf b;
    enc(one, &b);
    double d;
    cr_assert(codec_as_double(val_of(&b), &d) && d == 1.0);
    dbuf_free(&b);
    char *tenth = repeat("0.1", "0", 200, "e0");
    enc(tenth, &b);
    cr_assert(codec_as_double(val_of(&b), &d) && d == 0.1);
    dbuf_free(&b);
    char *big = repeat("1", "0", 300, "");
    enc(big, &b);
    cr_assert(codec_as_double(val_of(&b), &d) && d == 1e300);
    dbuf_free(&b);
    /* ints read as doubles too */
    enc("-7", &b);
    cr_assert(codec_as_double(val_of(&b), &d) && d == -7.0);
    dbuf_free(&b);
    free(one);
    free(tenth);
    free(big);
}

Test(codec, ints_beyond_int64_become_doubles)
{
    dbuf b;
    enc("[9223372036854775808,-9223372036854775809,123456789012345678901234567890]", &b);
    codec_val e;
    double d;
    for (size_t i = 0; i < 3; i++) {
        cr_assert(codec_arr_at(val_of(&b), i, &e));
        cr_expect_eq(codec_type(e), DOTDB_T_DOUBLE);
    }
    codec_arr_at(val_of(&b), 0, &e);
    codec_as_double(e, &d);
    cr_expect_eq(d, 9223372036854775808.0);
    dbuf_free(&b);
}

Test(codec, appends_after_existing_buffer_contents)
{
    dbuf b;
    dbuf_init(&b);
    cr_assert_eq(dbuf_append(&b, "xyz", 3), 0);
    cr_assert_eq(codec_value_from_json("[1]", 3, NULL, &b, NULL, 0), DOTDB_OK);
    cr_assert_eq(memcmp(b.data, "xyz", 3), 0);
    cr_assert_eq(codec_validate(b.data + 3, b.len - 3, 100, NULL, 0), DOTDB_OK);
    dbuf_free(&b);
}

/* ---- zero-copy access ---------------------------------------------------- */

Test(codec, finds_fields_among_300_keys_with_width_2)
{
    dbuf text;
    dbuf_init(&text);
    dbuf_putc(&text, '{');
    for (int i = 0; i < 300; i++) {
        char m[48];
        int n = snprintf(m, sizeof m, "%s\"key%03d\":%d", i ? "," : "", (i * 7919) % 300, i);
        dbuf_append(&text, m, (size_t)n);
    }
    dbuf_append(&text, "}", 2);
    dbuf b;
    enc((const char *)text.data, &b);
    cr_assert_eq(b.data[0], CODEC_OBJECT | 1, "expected width 2, tag 0x%02x", b.data[0]);
    cr_assert_eq(codec_count(val_of(&b)), 300);
    for (int i = 0; i < 300; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "key%03d", (i * 7919) % 300);
        codec_val v;
        int64_t x;
        cr_assert(codec_obj_get(val_of(&b), k, (size_t)n, &v), "%s missing", k);
        cr_assert(codec_as_int64(v, &x));
        cr_assert_eq(x, i);
        /* and by position, in input order */
        const char *key;
        size_t klen;
        cr_assert(codec_obj_at(val_of(&b), (size_t)i, &key, &klen, &v));
        cr_assert(klen == (size_t)n && memcmp(key, k, klen) == 0);
    }
    codec_val v;
    cr_expect_not(codec_obj_get(val_of(&b), "key300", 6, &v));
    cr_expect_not(codec_obj_get(val_of(&b), "key", 3, &v));
    cr_expect_not(codec_obj_get(val_of(&b), "key0000", 7, &v));
    cr_expect_not(codec_obj_get(val_of(&b), "", 0, &v));
    char *back = to_text(val_of(&b));
    cr_expect_str_eq(back, (const char *)text.data);
    free(back);
    dbuf_free(&b);
    dbuf_free(&text);
}

Test(codec, indexes_arrays_over_255_elements)
{
    char *json = repeat("[0", ",1", 999, "]");
    dbuf b;
    enc(json, &b);
    cr_assert_eq(b.data[0], CODEC_ARRAY | 1);
    cr_assert_eq(codec_count(val_of(&b)), 1000);
    codec_val e;
    int64_t x;
    for (size_t i = 0; i < 1000; i++) {
        cr_assert(codec_arr_at(val_of(&b), i, &e));
        cr_assert(codec_as_int64(e, &x));
        cr_assert_eq(x, i == 0 ? 0 : 1);
    }
    cr_assert_not(codec_arr_at(val_of(&b), 1000, &e));
    char *back = to_text(val_of(&b));
    cr_expect_str_eq(back, json);
    free(back);
    free(json);
    dbuf_free(&b);
}

Test(codec, uses_width_4_for_containers_over_64k)
{
    char *json = repeat("{\"id\":\"big\",\"list\":[\"", "0123456789012345678901234567890123456789\",\"",
                        2000, "end\"]}");
    dbuf b;
    enc(json, &b);
    cr_assert_gt(b.len, 65536);
    cr_assert_eq(b.data[0], CODEC_OBJECT | 2);
    codec_val list, e;
    cr_assert(codec_obj_get(val_of(&b), "list", 4, &list));
    cr_assert_eq(list.p[0], CODEC_ARRAY | 2);
    cr_assert_eq(codec_count(list), 2001);
    const char *s;
    size_t n;
    cr_assert(codec_arr_at(list, 2000, &e));
    cr_assert(codec_as_string(e, &s, &n));
    cr_assert(n == 3 && memcmp(s, "end", 3) == 0);
    char *back = to_text(val_of(&b));
    cr_expect_str_eq(back, json);
    free(back);
    free(json);
    dbuf_free(&b);
}

Test(codec, width_boundary_sizes_roundtrip)
{
    /* strings of every length around the 255 and 65535 size thresholds */
    for (size_t n = 230; n < 270; n++) {
        char *json = repeat("[\"", "x", n, "\"]");
        char *back = roundtrip(json);
        cr_assert_str_eq(back, json);
        free(back);
        free(json);
    }
    for (size_t n = 65500; n < 65540; n += 3) {
        char *json = repeat("{\"k\":\"", "y", n, "\"}");
        char *back = roundtrip(json);
        cr_assert_str_eq(back, json);
        free(back);
        free(json);
    }
}

Test(codec, looks_up_dotted_paths)
{
    dbuf b;
    enc("{\"a\":{\"b\":[{\"c\":42},{\"c\":\"x\"}],\"7\":\"seven\"},\"t\":[[1,2],[3]],\"\":{\"\":5}}",
        &b);
    codec_val v, doc = val_of(&b);
    int64_t x;
    cr_assert(codec_get_path(doc, "a.b.0.c", 7, &v));
    cr_assert(codec_as_int64(v, &x) && x == 42);
    cr_assert(codec_get_path(doc, "a.b.1.c", 7, &v));
    cr_assert_eq(codec_type(v), DOTDB_T_STRING);
    cr_assert(codec_get_path(doc, "a.7", 3, &v), "numeric part must match an object key");
    cr_assert_eq(codec_type(v), DOTDB_T_STRING);
    cr_assert(codec_get_path(doc, "t.1.0", 5, &v));
    cr_assert(codec_as_int64(v, &x) && x == 3);
    cr_assert(codec_get_path(doc, "a", 1, &v));
    cr_assert_eq(codec_type(v), DOTDB_T_OBJECT);
    cr_assert(codec_get_path(doc, ".", 1, &v));
    cr_assert(codec_as_int64(v, &x) && x == 5);
    cr_expect_not(codec_get_path(doc, "a.b.2.c", 7, &v));
    cr_expect_not(codec_get_path(doc, "a.b.01.c", 8, &v));
    cr_expect_not(codec_get_path(doc, "a.b.x", 5, &v));
    cr_expect_not(codec_get_path(doc, "a.b.0.c.d", 9, &v));
    cr_expect_not(codec_get_path(doc, "missing", 7, &v));
    cr_expect_not(codec_get_path(doc, "a.b.99999999999999999999", 24, &v));
    /* plen bounds the path: "a.7" followed by junk */
    cr_expect(codec_get_path(doc, "a.7.zzz", 3, &v));
    dbuf_free(&b);
}

Test(codec, fills_public_value_views)
{
    dbuf b;
    enc("{\"i\":-5,\"d\":2.5,\"s\":\"hey\",\"t\":true,\"n\":null,\"arr\":[1,2,3],\"o\":{\"x\":1}}",
        &b);
    dotdb_value dv;
    codec_val v;
    codec_obj_get(val_of(&b), "i", 1, &v);
    codec_to_value(v, &dv);
    cr_expect(dv.type == DOTDB_T_INT && dv.i == -5);
    codec_obj_get(val_of(&b), "d", 1, &v);
    codec_to_value(v, &dv);
    cr_expect(dv.type == DOTDB_T_DOUBLE && dv.d == 2.5);
    codec_obj_get(val_of(&b), "s", 1, &v);
    codec_to_value(v, &dv);
    cr_expect(dv.type == DOTDB_T_STRING && dv.str_len == 3 && memcmp(dv.str, "hey", 3) == 0);
    codec_obj_get(val_of(&b), "t", 1, &v);
    codec_to_value(v, &dv);
    cr_expect(dv.type == DOTDB_T_BOOL && dv.i == 1);
    codec_obj_get(val_of(&b), "n", 1, &v);
    codec_to_value(v, &dv);
    cr_expect(dv.type == DOTDB_T_NULL);
    codec_obj_get(val_of(&b), "arr", 3, &v);
    codec_to_value(v, &dv);
    cr_expect(dv.type == DOTDB_T_ARRAY && dv.count == 3 && dv.raw == v.p && dv.raw_len == v.len);
    codec_obj_get(val_of(&b), "o", 1, &v);
    codec_to_value(v, &dv);
    cr_expect(dv.type == DOTDB_T_OBJECT && dv.count == 1);
    cr_expect_eq(codec_count(v), 1);
    double d;
    const char *s;
    size_t n;
    int64_t x;
    cr_expect_not(codec_as_string(v, &s, &n));
    cr_expect_not(codec_as_double(v, &d));
    cr_expect_not(codec_as_int64(v, &x));
    dbuf_free(&b);
}

/* ---- equality ------------------------------------------------------------ */

static int json_equal(const char *a, const char *b)
{
    dbuf x, y;
    enc(a, &x);
    enc(b, &y);
    int eq = codec_equal(val_of(&x), val_of(&y));
    cr_assert_eq(eq, codec_equal(val_of(&y), val_of(&x)), "equality not symmetric");
    dbuf_free(&x);
    dbuf_free(&y);
    return eq;
}

Test(codec, equality_follows_mongodb_rules)
{
    cr_expect(json_equal("1", "1.0"));
    cr_expect(json_equal("-0.0", "0"));
    cr_expect(json_equal("300", "300"));
    cr_expect(json_equal("1e2", "100"));
    cr_expect_not(json_equal("1", "1.5"));
    cr_expect_not(json_equal("1", "true"));
    cr_expect_not(json_equal("0", "false"));
    cr_expect_not(json_equal("0", "null"));
    cr_expect_not(json_equal("\"1\"", "1"));
    cr_expect(json_equal("null", "null"));
    cr_expect(json_equal("true", "true"));
    cr_expect_not(json_equal("true", "false"));
    cr_expect(json_equal("\"abc\"", "\"abc\""));
    cr_expect(json_equal("\"a\\u0000b\"", "\"a\\u0000b\""));
    cr_expect_not(json_equal("\"a\\u0000b\"", "\"a\\u0000c\""));
    cr_expect_not(json_equal("\"abc\"", "\"abcd\""));
    cr_expect(json_equal("[1,[2,{\"a\":3}]]", "[1.0,[2,{\"a\":3.0}]]"));
    cr_expect_not(json_equal("[1,2]", "[2,1]"));
    cr_expect_not(json_equal("[1,2]", "[1,2,3]"));
    cr_expect(json_equal("{\"a\":1,\"b\":{\"c\":[]}}", "{\"a\":1,\"b\":{\"c\":[]}}"));
    cr_expect_not(json_equal("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"));
    cr_expect_not(json_equal("{\"a\":1}", "{\"b\":1}"));
    cr_expect_not(json_equal("{}", "[]"));
}

Test(codec, equality_of_large_ints_and_doubles_is_exact)
{
    /* 2^53 + 1 is not a double: it must not equal the double 2^53 */
    cr_expect_not(json_equal("9007199254740993", "9007199254740992.0"));
    cr_expect(json_equal("9007199254740992", "9007199254740992.0"));
    cr_expect_not(json_equal("9223372036854775807", "9223372036854775808.0"));
    cr_expect(json_equal("-9223372036854775808", "-9223372036854775808.0"));
    cr_expect_not(json_equal("9223372036854775807", "1e300"));
    cr_expect_not(json_equal("1", "1.0000000000000002"));
    cr_expect(json_equal("9007199254740993", "9007199254740993"));
}

/* ---- ids ----------------------------------------------------------------- */

Test(codec, inserts_generated_id_first_when_missing)
{
    dbuf b;
    char err[ERRLEN], id[DOTDB_ID_MAX + 1];
    int rc = doc_parse("{\"name\":\"x\",\"a\":1,\"zz\":2}", "0123456789abcdefGHIJKLMN", &b, id, err);
    cr_assert_eq(rc, DOTDB_OK, "%s", err);
    cr_assert_str_eq(id, "0123456789abcdefGHIJKLMN");
    char *s = to_text(val_of(&b));
    cr_assert_str_eq(s, "{\"id\":\"0123456789abcdefGHIJKLMN\",\"name\":\"x\",\"a\":1,\"zz\":2}");
    free(s);
    const char *vid;
    size_t vlen;
    rc = codec_validate_doc(b.data, b.len, 100, &vid, &vlen, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "%s", err);
    cr_assert(vlen == 24 && memcmp(vid, id, 24) == 0);
    codec_val v;
    cr_assert(codec_obj_get(val_of(&b), "a", 1, &v));
    cr_assert(codec_obj_get(val_of(&b), "zz", 2, &v));
    cr_assert(codec_obj_get(val_of(&b), "name", 4, &v));
    dbuf_free(&b);
}

Test(codec, generated_id_on_empty_object_and_near_width_threshold)
{
    dbuf b;
    char err[ERRLEN], id[DOTDB_ID_MAX + 1];
    cr_assert_eq(doc_parse("{}", "g", &b, id, err), DOTDB_OK, "%s", err);
    char *s = to_text(val_of(&b));
    cr_assert_str_eq(s, "{\"id\":\"g\"}");
    free(s);
    dbuf_free(&b);
    /* inserting the id pushes the object over 255 bytes: width must grow */
    for (size_t n = 225; n < 255; n++) {
        char *json = repeat("{\"k\":\"", "x", n, "\"}");
        cr_assert_eq(doc_parse(json, "generated-id-24-chars-xx", &b, id, err), DOTDB_OK, "%s", err);
        cr_assert_eq(validate(&b, err), DOTDB_OK, "n=%zu: %s", n, err);
        dbuf_free(&b);
        free(json);
    }
}

Test(codec, keeps_an_existing_id_in_place)
{
    dbuf b;
    char err[ERRLEN], id[DOTDB_ID_MAX + 1];
    cr_assert_eq(doc_parse("{\"a\":1,\"id\":\"mine\"}", "gen", &b, id, err), DOTDB_OK, "%s", err);
    cr_assert_str_eq(id, "mine");
    char *s = to_text(val_of(&b));
    cr_assert_str_eq(s, "{\"a\":1,\"id\":\"mine\"}");
    free(s);
    dbuf_free(&b);
}

Test(codec, rejects_missing_id_without_generator)
{
    dbuf b;
    char err[ERRLEN], id[DOTDB_ID_MAX + 1];
    cr_assert_eq(doc_parse("{\"a\":1}", NULL, &b, id, err), DOTDB_EBADID);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(id, "");
    dbuf_free(&b);
}

Test(codec, rejects_bad_ids)
{
    static const char *bad[] = {"{\"id\":123}", "{\"id\":\"\"}", "{\"id\":null}",
                                "{\"id\":[\"a\"]}", "{\"id\":{\"x\":\"y\"}}", "{\"id\":1.5}"};
    dbuf b;
    char err[ERRLEN], id[DOTDB_ID_MAX + 1];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(doc_parse(bad[i], "gen", &b, id, err), DOTDB_EBADID, "%s", bad[i]);
        cr_expect_str_eq(err, "id must be a string of 1 to 255 bytes");
        cr_expect_eq(b.len, 0);
        dbuf_free(&b);
    }
}

Test(codec, id_length_limit_is_255_bytes)
{
    dbuf b;
    char err[ERRLEN], id[DOTDB_ID_MAX + 1];
    char *ok = repeat("{\"id\":\"", "i", 255, "\"}");
    char *bad = repeat("{\"id\":\"", "i", 256, "\"}");
    cr_assert_eq(doc_parse(ok, NULL, &b, id, err), DOTDB_OK, "%s", err);
    cr_assert_eq(strlen(id), 255);
    dbuf_free(&b);
    cr_assert_eq(doc_parse(bad, NULL, &b, id, err), DOTDB_EBADID);
    cr_assert_eq(b.len, 0);
    dbuf_free(&b);
    char *longgen = repeat("", "g", 256, "");
    cr_assert_eq(doc_parse("{}", longgen, &b, id, err), DOTDB_EBADID);
    cr_assert_eq(doc_parse("{}", "", &b, id, err), DOTDB_EBADID);
    cr_assert_eq(doc_parse("{}", "bad\xff", &b, id, err), DOTDB_EBADID);
    free(ok);
    free(bad);
    free(longgen);
}

Test(codec, document_must_be_an_object)
{
    dbuf b;
    char err[ERRLEN];
    cr_assert_eq(doc_parse("  [1]", "gen", &b, NULL, err), DOTDB_EJSON);
    cr_assert(strstr(err, "line 1, column 3") != NULL, "%s", err);
    cr_assert_eq(doc_parse("\"id\"", "gen", &b, NULL, err), DOTDB_EJSON);
}

Test(codec, validate_doc_checks_the_id)
{
    char err[ERRLEN];
    const char *id = (const char *)1;
    size_t idlen = 7;
    dbuf b;
    enc("{\"id\":5}", &b);
    cr_expect_eq(codec_validate_doc(b.data, b.len, 100, &id, &idlen, err, sizeof err),
                 DOTDB_EBADID);
    cr_expect(id == NULL && idlen == 0);
    dbuf_free(&b);
    enc("{\"x\":\"y\"}", &b);
    cr_expect_eq(codec_validate_doc(b.data, b.len, 100, &id, &idlen, err, sizeof err),
                 DOTDB_EBADID);
    dbuf_free(&b);
    enc("[\"id\"]", &b);
    cr_expect_eq(codec_validate_doc(b.data, b.len, 100, &id, &idlen, err, sizeof err),
                 DOTDB_ECORRUPT);
    dbuf_free(&b);
}

/* ---- duplicate keys, limits ---------------------------------------------- */

Test(codec, rejects_duplicate_keys_naming_them)
{
    char err[ERRLEN];
    const char *j1 = "{\"a\":1,\"name\":2,\"name\":3}";
    cr_assert_eq(parse_fail(j1, strlen(j1), err), DOTDB_EJSON);
    cr_assert(strstr(err, "duplicate key \"name\"") != NULL, "%s", err);
    cr_assert(strstr(err, "column 17") != NULL, "%s", err);
    const char *j2 = "{\"o\":{\"x\":1,\"y\":{},\"x\":[]}}";
    cr_assert_eq(parse_fail(j2, strlen(j2), err), DOTDB_EJSON);
    cr_assert(strstr(err, "\"x\"") != NULL, "%s", err);
    /* the same key escaped differently is still the same key */
    const char *j3 = "{\"ab\":1,\"a\\u0062\":2}";
    cr_assert_eq(parse_fail(j3, strlen(j3), err), DOTDB_EJSON);
    cr_assert(strstr(err, "duplicate key \"ab\"") != NULL, "%s", err);
    /* long keys are shortened in the message without cutting a character */
    char *lk = repeat("{\"", "\xc3\xa9", 40, "\":1,");
    char *j4 = repeat(lk, "", 0, "");
    size_t l4 = strlen(lk);
    j4 = realloc(j4, 2 * l4 + 2);
    memcpy(j4 + l4, lk + 1, l4 - 1);
    memcpy(j4 + 2 * l4 - 2, "2}", 3);
    cr_assert_eq(parse_fail(j4, strlen(j4), err), DOTDB_EJSON);
    cr_assert(strstr(err, "duplicate key") != NULL && strstr(err, "...") != NULL, "%s", err);
    free(lk);
    free(j4);
    /* same key in sibling objects is fine */
    char *s = roundtrip("[{\"a\":1},{\"a\":2}]");
    free(s);
}

Test(codec, accepts_depth_100_and_rejects_101)
{
    char err[ERRLEN];
    char *ok = nested_arrays(100, "1");
    char *bad = nested_arrays(101, "");
    free(roundtrip(ok));
    cr_assert_eq(parse_fail(bad, strlen(bad), err), DOTDB_ETOODEEP);
    cr_assert_str_eq(err, "document nesting depth exceeds 100");
    free(ok);
    free(bad);
    /* objects count the same way */
    char *objs = repeat("", "{\"a\":", 101, "1");
    cr_assert_eq(parse_fail(objs, strlen(objs), err), DOTDB_ETOODEEP);
    free(objs);
}

Test(codec, rejects_a_million_open_brackets_without_recursion)
{
    char err[ERRLEN];
    size_t n = 1000000;
    char *s = malloc(n);
    cr_assert_not_null(s);
    memset(s, '[', n);
    cr_assert_eq(parse_fail(s, n, err), DOTDB_ETOODEEP);
    free(s);
}

Test(codec, deep_nesting_allowed_by_limits_parses_and_validates_iteratively)
{
    /* 100000 levels: the parser, validator and printer use no C recursion */
    size_t n = 100000;
    char *json = nested_arrays(n, "\"x\"");
    codec_limits lim = {CODEC_DEFAULT_MAX_SIZE, (int)n};
    char err[ERRLEN];
    dbuf b;
    dbuf_init(&b);
    int rc = codec_value_from_json(json, strlen(json), &lim, &b, err, sizeof err);
    cr_assert_eq(rc, DOTDB_OK, "%s", err);
    cr_assert_eq(codec_validate(b.data, b.len, (int)n, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_eq(codec_validate(b.data, b.len, 100, err, sizeof err), DOTDB_ETOODEEP);
    char *back = to_text(val_of(&b));
    cr_assert_str_eq(back, json);
    free(back);
    free(json);
    dbuf_free(&b);
}

Test(codec, enforces_size_limit_on_text_and_encoding)
{
    char err[ERRLEN];
    dbuf b;
    dbuf_init(&b);
    const char *doc = "{\"id\":\"x\",\"pad\":\"0123456789\"}";
    codec_limits small = {10, 100};
    cr_assert_eq(codec_from_json(doc, strlen(doc), &small, NULL, &b, NULL, err, sizeof err),
                 DOTDB_ETOOBIG);
    cr_assert_eq(b.len, 0);
    /* text under the limit, encoding over it: 10000 small ints need offsets */
    char *arr = repeat("[0", ",0", 9999, "]");
    codec_limits lim = {strlen(arr), 100};
    cr_assert_eq(codec_value_from_json(arr, strlen(arr), &lim, &b, err, sizeof err),
                 DOTDB_ETOOBIG);
    cr_assert_eq(b.len, 0);
    codec_limits roomy = {strlen(arr) * 4, 100};
    cr_assert_eq(codec_value_from_json(arr, strlen(arr), &roomy, &b, err, sizeof err), DOTDB_OK,
                 "%s", err);
    free(arr);
    dbuf_free(&b);
}

/* ---- malformed JSON ------------------------------------------------------ */

Test(codec, rejects_malformed_json)
{
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        const char *why;
    } bad[] = {
        {"", 0, "unexpected end"},
        {"   ", 0, "unexpected end"},
        {"{", 0, "end of input"},
        {"{\"a\":1", 0, "end of input"},
        {"{\"a\":", 0, "expected a value"},
        {"{\"a\"", 0, "expected ':'"},
        {"[1,2", 0, "end of input"},
        {"\"abc", 0, "unterminated string"},
        {"{\"a\":1}x", 0, "after the JSON value"},
        {"{} {}", 0, "after the JSON value"},
        {"[1,]", 0, "trailing comma"},
        {"{\"a\":1,}", 0, "trailing comma"},
        {"[,1]", 0, "expected a value"},
        {"{,}", 0, "object key"},
        {"{a:1}", 0, "object key"},
        {"{'a':1}", 0, "object key"},
        {"{\"a\" 1}", 0, "expected ':' after object key"},
        {"[1 2]", 0, "expected ','"},
        {"\"\\x\"", 0, "invalid escape"},
        {"\"\\u12\"", 0, "4 hex digits"},
        {"\"\\u12G4\"", 0, "4 hex digits"},
        {"\"\\", 0, "unterminated"},
        {"\"\\ud800\"", 0, "lone high surrogate"},
        {"\"\\ud800\\u0041\"", 0, "lone high surrogate"},
        {"\"\\udc00\"", 0, "lone low surrogate"},
        {"\"\\ud800x\"", 0, "lone high surrogate"},
        {"\"\xc0\x80\"", 0, "invalid UTF-8"},       /* overlong NUL */
        {"\"\xe0\x80\xaf\"", 0, "invalid UTF-8"},   /* overlong '/' */
        {"\"\xed\xa0\x80\"", 0, "invalid UTF-8"},   /* surrogate in UTF-8 */
        {"\"\xf4\x90\x80\x80\"", 0, "invalid UTF-8"}, /* > U+10FFFF */
        {"\"\xf8\x88\x80\x80\x80\"", 0, "invalid UTF-8"},
        {"\"\x80\"", 0, "invalid UTF-8"},
        {"\"\xe2\x82\"", 0, "invalid UTF-8"},       /* truncated */
        {"\"a\xff\"", 0, "invalid UTF-8"},
        {"{\"\xc3\x28\":1}", 0, "invalid UTF-8"},
        {"\"tab\there\"", 0, "control character"},
        {"\"nl\nhere\"", 0, "control character"},
        {"\"nul\0here\"", 10, "control character"},
        {"01", 0, "leading zeros"},
        {"-01", 0, "leading zeros"},
        {"[00]", 0, "leading zeros"},
        {"NaN", 0, "expected a value"},
        {"-NaN", 0, "digit"},
        {"Infinity", 0, "expected a value"},
        {"-Infinity", 0, "digit"},
        {"+1", 0, "expected a value"},
        {".5", 0, "expected a value"},
        {"1.", 0, "after '.'"},
        {"1.e5", 0, "after '.'"},
        {"1e", 0, "exponent"},
        {"1e+", 0, "exponent"},
        {"-", 0, "digit"},
        {"0x10", 0, "after the JSON value"},
        {"1e400", 0, "out of range"},
        {"-1e400", 0, "out of range"},
        {"tru", 0, "literal"},
        {"nul", 0, "literal"},
        {"True", 0, "expected a value"},
        {"nulls", 0, "after the JSON value"},
        {"// c\n{}", 0, "expected a value"},
        {"{} /* c */", 0, "after the JSON value"},
        {"\xef\xbb\xbf{}", 0, "expected a value"}, /* BOM */
        {"[1]\0", 4, "after the JSON value"},
        {"{\"a\":1}}", 0, "after the JSON value"},
        {"[1}", 0, "expected ','"},
        {"{\"a\":1]", 0, "expected ','"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[ERRLEN];
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
        int rc = parse_fail(bad[i].text, len, err);
        cr_expect_eq(rc, DOTDB_EJSON, "case %zu (%s) gave %d", i, bad[i].text, rc);
        cr_expect(strstr(err, bad[i].why) != NULL, "case %zu (%s): message \"%s\" lacks \"%s\"",
                  i, bad[i].text, err, bad[i].why);
        cr_expect(strncmp(err, "malformed JSON at line ", 23) == 0, "case %zu: %s", i, err);
    }
}

Test(codec, error_messages_give_line_and_column)
{
    char err[ERRLEN];
    const char *j = "{\"name\" 1}";
    cr_assert_eq(parse_fail(j, strlen(j), err), DOTDB_EJSON);
    cr_assert_str_eq(err, "malformed JSON at line 1, column 9: expected ':' after object key");
    const char *multi = "{\n  \"a\": 1,\n  \"b\": [1, 2,]\n}";
    cr_assert_eq(parse_fail(multi, strlen(multi), err), DOTDB_EJSON);
    cr_assert_str_eq(err, "malformed JSON at line 3, column 14: trailing comma");
    /* columns count characters, not bytes */
    const char *uni = "[\"\xc3\xa9\xc3\xa9\" x]";
    cr_assert_eq(parse_fail(uni, strlen(uni), err), DOTDB_EJSON);
    cr_assert(strstr(err, "line 1, column 7") != NULL, "%s", err);
}

Test(codec, failed_parse_restores_the_output_buffer)
{
    dbuf b;
    dbuf_init(&b);
    cr_assert_eq(dbuf_append(&b, "prefix", 6), 0);
    char err[ERRLEN], id[DOTDB_ID_MAX + 1];
    static const char *bad[] = {"{\"a\":[1,2,", "{\"id\":7}", "{\"a\":1,\"a\":2}", "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = codec_from_json(bad[i], strlen(bad[i]), NULL, "gen", &b, id, err, sizeof err);
        cr_expect_neq(rc, DOTDB_OK, "%s", bad[i]);
        cr_expect_eq(b.len, 6);
        cr_expect_str_eq(id, "");
    }
    cr_assert_eq(memcmp(b.data, "prefix", 6), 0);
    dbuf_free(&b);
}

Test(codec, accepts_null_err_and_null_limits)
{
    dbuf b;
    dbuf_init(&b);
    cr_assert_eq(codec_value_from_json("[1,", 3, NULL, &b, NULL, 0), DOTDB_EJSON);
    cr_assert_eq(codec_from_json("{}", 2, NULL, NULL, &b, NULL, NULL, 0), DOTDB_EBADID);
    cr_assert_eq(codec_validate((const uint8_t *)"\x10", 1, 100, NULL, 0), DOTDB_ECORRUPT);
    char tiny[8];
    cr_assert_eq(codec_value_from_json("[1,", 3, NULL, &b, tiny, sizeof tiny), DOTDB_EJSON);
    cr_assert_eq(strlen(tiny), 7);
    dbuf_free(&b);
}

/* ---- malformed binary ---------------------------------------------------- */

/* A small document touching every tag. */
static const char *sample =
    "{\"id\":\"d1\",\"n\":null,\"f\":false,\"t\":true,\"i8\":-3,\"i16\":1000,\"i32\":100000,"
    "\"i64\":10000000000,\"d\":0.5,\"s\":\"h\xc3\xa9\",\"a\":[1,[],{}],\"o\":{\"k\":\"v\",\"j\":[]}}";

Test(codec, rejects_truncated_binary)
{
    dbuf b;
    enc(sample, &b);
    char err[ERRLEN];
    for (size_t n = 0; n < b.len; n++) {
        /* a private copy of exactly n bytes so ASan sees any read past it */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.data, n);
        int rc = codec_validate(copy, n, 100, err, sizeof err);
        cr_assert_eq(rc, DOTDB_ECORRUPT, "length %zu of %zu accepted", n, b.len);
        cr_assert(strstr(err, "byte") != NULL);
        free(copy);
    }
    dbuf_free(&b);
}

/* Validate; when the bytes pass, exercise every accessor on them. */
static int validate_and_walk(const uint8_t *p, size_t len)
{
    int rc = codec_validate(p, len, 100, NULL, 0);
    if (rc == DOTDB_OK) {
        codec_val v = {p, len};
        char *s = to_text(v);
        dbuf again;
        dbuf_init(&again);
        /* the printed text parses back to an equal value (unless it was
         * printed from keys/strings whose order or uniqueness is fine) */
        int prc = codec_value_from_json(s, strlen(s), NULL, &again, NULL, 0);
        cr_assert_eq(prc, DOTDB_OK, "valid binary printed unparsable JSON %s", s);
        cr_assert(codec_equal(v, (codec_val){again.data, again.len}), "%s", s);
        cr_assert_eq(codec_val_len(p), len);
        codec_val out;
        codec_get_path(v, "o.k", 3, &out);
        codec_get_path(v, "a.1", 3, &out);
        dbuf_free(&again);
        free(s);
    }
    return rc;
}

Test(codec, survives_every_single_byte_mutation)
{
    dbuf b;
    enc(sample, &b);
    uint8_t *copy = malloc(b.len);
    size_t accepted = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (unsigned x = 0; x < 256; x++) {
            memcpy(copy, b.data, b.len);
            if (copy[i] == x)
                continue;
            copy[i] = (uint8_t)x;
            int rc = validate_and_walk(copy, b.len);
            cr_assert(rc == DOTDB_OK || rc == DOTDB_ECORRUPT || rc == DOTDB_ETOODEEP, "rc %d", rc);
            accepted += rc == DOTDB_OK;
        }
    }
    /* mutations inside ints, doubles and string bytes stay valid */
    cr_assert_gt(accepted, 0);
    free(copy);
    dbuf_free(&b);
}

Test(codec, survives_random_bytes)
{
    uint8_t buf[64];
    unsigned seed = 12345;
    for (int round = 0; round < 200000; round++) {
        size_t n = 1 + (size_t)(rand_r(&seed) % (int)sizeof buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rand_r(&seed);
        /* bias towards plausible headers so the deep paths get exercised */
        if (round % 2)
            buf[0] = (uint8_t)(round % 4 ? 0x20 : 0x10);
        uint8_t *copy = malloc(n);
        memcpy(copy, buf, n);
        validate_and_walk(copy, n);
        free(copy);
    }
}

Test(codec, rejects_offsets_and_lengths_past_the_end)
{
    char err[ERRLEN];
    dbuf b;
    enc("[1,2,3]", &b);
    /* tag 0x10, size, count, off[3], elements */
    cr_assert_eq(b.data[0], CODEC_ARRAY);
    b.data[3] = 200;
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    cr_assert(strstr(err, "points to byte") != NULL, "%s", err);
    b.data[3] = 6;
    cr_assert_eq(validate(&b, err), DOTDB_OK, "%s", err);
    b.data[1] = (uint8_t)(b.len + 1); /* size past the end */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    b.data[1] = (uint8_t)(b.len - 1); /* size short of the contents */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    b.data[1] = (uint8_t)b.len;
    b.data[2] = 4; /* count larger than the elements */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    b.data[2] = 2; /* count smaller: contents do not fill the size */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    b.data[2] = 250; /* tables larger than the container */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    dbuf_free(&b);

    enc("[\"abc\"]", &b);
    /* 0x10 size count off | 0x08 len 'a' 'b' 'c' */
    cr_assert_eq(b.data[4], CODEC_STRING);
    b.data[5] = 4; /* string length past the end */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    b.data[5] = 0x83; /* unterminated varint */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    dbuf_free(&b);

    enc("{\"key\":1}", &b);
    /* 0x20 size count koff sorted | 3 'k' 'e' 'y' | int */
    cr_assert_eq(b.data[3], 5);
    b.data[3] = 40; /* key offset past the end */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    b.data[3] = 2; /* key offset inside the tables */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    b.data[3] = 5;
    b.data[5] = 9; /* key length past the end */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    b.data[5] = 3;
    b.data[4] = 1; /* sorted[0] is not a member index */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    dbuf_free(&b);
}

Test(codec, rejects_scalars_cut_short_and_trailing_bytes)
{
    char err[ERRLEN];
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"\x03", 1}, {"\x04\x01", 2}, {"\x05\x01\x02\x03", 4}, {"\x06\x01", 2}, {"\x07", 1},
        {"\x08", 1}, {"\x08\x02" "a", 3}, {"\x00\x00", 2}, {"\x09", 1}, {"\x0f", 1},
        {"\x13\x03\x00", 3}, {"\x23\x03\x00", 3}, {"\x30\x03\x00", 3}, {"\xff", 1},
        {"\x08\xff\xff\xff\xff\x7f", 6},       /* varint over 2^32 */
        {"\x08\x80\x80\x80\x80\x80\x00", 7},   /* varint over 5 bytes */
        {"\x10\x03\x00\x00", 4},               /* trailing byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *copy = malloc(bad[i].len);
        memcpy(copy, bad[i].bytes, bad[i].len);
        cr_expect_eq(codec_validate(copy, bad[i].len, 100, err, sizeof err), DOTDB_ECORRUPT,
                     "case %zu", i);
        free(copy);
    }
    cr_expect_eq(codec_validate(NULL, 0, 100, err, sizeof err), DOTDB_ECORRUPT);
    /* non-minimal varints and ints are accepted */
    cr_expect_eq(codec_validate((const uint8_t *)"\x08\x81\x00" "a", 4, 100, err, sizeof err),
                 DOTDB_OK, "%s", err);
    cr_expect_eq(codec_validate((const uint8_t *)"\x06\x01\0\0\0\0\0\0\0", 9, 100, err,
                                sizeof err),
                 DOTDB_OK, "%s", err);
}

Test(codec, rejects_non_finite_doubles_in_binary)
{
    char err[ERRLEN];
    uint8_t b[9] = {CODEC_DOUBLE};
    double bad[] = {INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < 3; i++) {
        memcpy(b + 1, &bad[i], 8);
        cr_expect_eq(codec_validate(b, sizeof b, 100, err, sizeof err), DOTDB_ECORRUPT);
        cr_expect(strstr(err, "finite") != NULL, "%s", err);
    }
    double ok = 2.5;
    memcpy(b + 1, &ok, 8);
    cr_expect_eq(codec_validate(b, sizeof b, 100, err, sizeof err), DOTDB_OK, "%s", err);
}

Test(codec, accepts_wider_than_needed_containers)
{
    /* [7] with W = 2: tag, size:2, count:2, off:2, int8 */
    static const uint8_t wide[] = {0x11, 9, 0, 1, 0, 7, 0, CODEC_INT8, 7};
    char err[ERRLEN];
    cr_assert_eq(codec_validate(wide, sizeof wide, 100, err, sizeof err), DOTDB_OK, "%s", err);
    codec_val v = {wide, sizeof wide}, e;
    int64_t x;
    cr_assert(codec_arr_at(v, 0, &e) && codec_as_int64(e, &x) && x == 7);
    cr_assert_eq(codec_val_len(wide), sizeof wide);
}

Test(codec, rejects_binary_deeper_than_the_limit)
{
    char err[ERRLEN];
    char *json = nested_arrays(100, "{}"); /* depth 101 */
    codec_limits lim = {CODEC_DEFAULT_MAX_SIZE, 200};
    dbuf b;
    dbuf_init(&b);
    cr_assert_eq(codec_value_from_json(json, strlen(json), &lim, &b, err, sizeof err), DOTDB_OK);
    cr_assert_eq(codec_validate(b.data, b.len, 100, err, sizeof err), DOTDB_ETOODEEP);
    cr_assert_eq(codec_validate(b.data, b.len, 101, err, sizeof err), DOTDB_OK, "%s", err);
    free(json);
    dbuf_free(&b);
}

Test(codec, rejects_unsorted_sorted_table)
{
    char err[ERRLEN];
    dbuf b;
    enc("{\"a\":1,\"b\":2}", &b);
    /* 0x20 size 2 koff0 koff1 sorted0 sorted1 ... */
    cr_assert_eq(b.data[5], 0);
    cr_assert_eq(b.data[6], 1);
    b.data[5] = 1;
    b.data[6] = 0;
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    cr_assert(strstr(err, "sorted") != NULL, "%s", err);
    b.data[5] = 0;
    b.data[6] = 0; /* not a permutation */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    dbuf_free(&b);
}

Test(codec, rejects_duplicate_keys_in_binary)
{
    char err[ERRLEN];
    dbuf b;
    enc("{\"a\":1,\"b\":2}", &b);
    size_t kb = b.data[4]; /* koff[1] */
    cr_assert_eq(b.data[kb + 1], 'b');
    b.data[kb + 1] = 'a';
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    dbuf_free(&b);
}

Test(codec, rejects_bad_utf8_in_binary)
{
    char err[ERRLEN];
    dbuf b;
    enc("[\"ab\xc3\xa9\"]", &b);
    cr_assert_eq(b.data[4], CODEC_STRING);
    b.data[8] = 0x41; /* cut the 2-byte sequence */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    cr_assert(strstr(err, "UTF-8") != NULL, "%s", err);
    b.data[7] = 0xed; /* start of a UTF-8-encoded surrogate */
    b.data[8] = 0xa0;
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    dbuf_free(&b);
    enc("{\"k\xc3\xa9\":1}", &b);
    b.data[7] = 0xc0; /* key: overlong lead */
    cr_assert_eq(validate(&b, err), DOTDB_ECORRUPT);
    cr_assert(strstr(err, "key") != NULL, "%s", err);
    dbuf_free(&b);
}

Test(codec, printing_escapes_control_characters)
{
    dbuf b;
    enc("\"\\u0001\\u001fa\\\"\\\\\\u007f\"", &b);
    char *s = to_text(val_of(&b));
    cr_assert_str_eq(s, "\"\\u0001\\u001fa\\\"\\\\\x7f\"");
    free(s);
    dbuf_free(&b);
}

/* ---- the typical document ------------------------------------------------ */

Test(codec, typical_document_encodes_smaller_than_its_text)
{
    const char *doc = "{\"id\":\"user_000123\",\"name\":\"Alice Johnson\",\"age\":30,"
                      "\"score\":87.5,\"city\":\"Berlin\",\"tags\":[\"developer\",\"admin\"],"
                      "\"preferences\":{\"theme\":\"dark\",\"notifications\":true}}";
    dbuf b;
    char err[ERRLEN], id[DOTDB_ID_MAX + 1];
    cr_assert_eq(doc_parse(doc, NULL, &b, id, err), DOTDB_OK, "%s", err);
    cr_assert_leq(b.len, strlen(doc), "encoded %zu > text %zu", b.len, strlen(doc));
    cr_assert_str_eq(id, "user_000123");
    codec_val v;
    const char *s;
    size_t n;
    cr_assert(codec_get_path(val_of(&b), "preferences.theme", 17, &v));
    cr_assert(codec_as_string(v, &s, &n) && n == 4 && memcmp(s, "dark", 4) == 0);
    dbuf_free(&b);
}

/* ---- limits.max_fields (codec_validate_doc_lim) ------------------------- */

Test(codec, max_fields_counts_the_members_of_each_object)
{
    char err[ERRLEN];
    dbuf b;
    const char *id;
    size_t id_len;
    /* 3 members at the top, 3 in "o", 5 elements in an array (not fields) */
    enc("{\"id\":\"x\",\"o\":{\"a\":1,\"b\":2,\"c\":3},\"arr\":[1,2,3,4,5]}", &b);
    cr_assert_eq(codec_validate_doc_lim(b.data, b.len, 100, 3, &id, &id_len, err, ERRLEN), DOTDB_OK,
                 "%s", err);
    cr_assert_eq(id_len, 1);
    cr_assert_eq(codec_validate_doc_lim(b.data, b.len, 100, 0, &id, &id_len, err, ERRLEN), DOTDB_OK,
                 "0 means no limit");
    cr_assert_eq(codec_validate_doc_lim(b.data, b.len, 100, 2, &id, &id_len, err, ERRLEN),
                 DOTDB_ETOOBIG);
    cr_assert(strstr(err, "3 members") && strstr(err, "limits.max_fields (2)"), "%s", err);
    cr_assert(strstr(err, "corrupt") == NULL, "a limit is not damage: %s", err);
    cr_assert_null(id, "no id on failure");
    dbuf_free(&b);
    /* a nested object over the limit, the top within it */
    enc("{\"id\":\"x\",\"o\":{\"a\":1,\"b\":2,\"c\":3}}", &b);
    cr_assert_eq(codec_validate_doc_lim(b.data, b.len, 100, 2, &id, &id_len, err, ERRLEN),
                 DOTDB_ETOOBIG, "%s", err);
    dbuf_free(&b);
}

/* ---- fast paths (json.c, codec.c) against the C library ------------------ */

static uint64_t test_rng(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A random JSON number text with a '.' or an exponent (a double). */
static void random_decimal(uint64_t *rng, char *out, size_t cap)
{
    uint64_t r = test_rng(rng);
    int digits = 1 + (int)(r % 19), point = (int)((r >> 8) % (uint64_t)(digits + 1));
    size_t n = 0;
    if ((r >> 16) & 1)
        out[n++] = '-';
    for (int i = 0; i < digits; i++) {
        if (i == point && i > 0)
            out[n++] = '.';
        uint64_t d = test_rng(rng) % 10;
        if (i == 0 && point != 1 && digits > 1 && d == 0)
            d = 1 + test_rng(rng) % 9; /* no leading zero unless "0." */
        out[n++] = (char)('0' + d);
    }
    if (point == 0 || point == digits || ((r >> 20) & 3) == 0)
        n += (size_t)snprintf(out + n, cap - n, "e%d", (int)((r >> 24) % 61) - 30);
    out[n] = 0;
}

Test(codec, decimal_texts_parse_exactly_like_strtod)
{
    uint64_t rng = 42;
    char text[64];
    for (int i = 0; i < 200000; i++) {
        random_decimal(&rng, text, sizeof text);
        dbuf b;
        enc(text, &b);
        double got, want = strtod(text, NULL);
        cr_assert(codec_as_double(val_of(&b), &got), "%s", text);
        cr_assert(memcmp(&got, &want, sizeof got) == 0, "%s parsed as %.17g, strtod says %.17g",
                  text, got, want);
        dbuf_free(&b);
    }
}

/* What codec_to_json printed for doubles before its fast path: the first
 * of %.15g, %.16g, %.17g that reads back, ".0" appended to integral text. */
static void reference_double_text(double d, char *buf, size_t cap)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, cap, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            break;
    }
    if (strpbrk(buf, ".en") == NULL)
        memcpy(buf + n, ".0", 3);
}

static void expect_double_text(double d)
{
    char want[64];
    reference_double_text(d, want, sizeof want);
    uint8_t enc_d[9] = {CODEC_DOUBLE};
    memcpy(enc_d + 1, &d, 8);
    char *got = to_text((codec_val){enc_d, 9});
    cr_assert_str_eq(got, want, "bits 0x%016llx", (unsigned long long)ld_u64(enc_d + 1));
    free(got);
}

Test(codec, doubles_print_like_printf)
{
    static const double fixed[] = {0.0,     -0.0,   1.0,     -1.0,    0.5,      499.123,
                                   1e-4,    1e-5,   9.99e-5, 1e14,    1e15,     1e16,
                                   123456789012345.0, 999999999999999.0, 0.1 + 0.2,
                                   4.35,    87.5,   1e22,    1e23,    5e-324,   1.7976931348623157e308,
                                   2.5e-7,  33.0,   -123.456, 0.001,  100.0,    1234567.125};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        expect_double_text(fixed[i]);
    uint64_t rng = 7;
    char text[64];
    for (int i = 0; i < 100000; i++) {
        /* short decimals (the common case) and arbitrary bit patterns */
        random_decimal(&rng, text, sizeof text);
        expect_double_text(strtod(text, NULL));
        uint64_t bits = test_rng(&rng);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (isfinite(d))
            expect_double_text(d);
        expect_double_text((double)(int64_t)(test_rng(&rng) % 2000001) / 1000.0 - 1000.0);
    }
}

Test(codec, ints_print_like_printf)
{
    static const int64_t vals[] = {0, 1, -1, 9, 10, -10, 127, -128, 32767, 65535, INT32_MAX,
                                   INT32_MIN, 1000000000000LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint8_t e[9] = {CODEC_INT64};
        st_u64(e + 1, (uint64_t)vals[i]);
        char want[32], *got = to_text((codec_val){e, 9});
        snprintf(want, sizeof want, "%lld", (long long)vals[i]);
        cr_expect_str_eq(got, want);
        free(got);
    }
}

Test(codec, from_json_first_stops_after_the_document)
{
    const char *text = "  {\"id\":\"a\",\"s\":\"x}\\\"{\"} {\"id\":\"b\"}\n,[";
    dbuf b;
    dbuf_init(&b);
    char err[ERRLEN], id[DOTDB_ID_MAX + 1];
    size_t used;
    cr_assert_eq(codec_from_json_first(text, strlen(text), &default_lim, "g", &b, id, &used, err,
                                       sizeof err), DOTDB_OK, "%s", err);
    cr_assert_str_eq(id, "a");
    cr_assert_eq(used, strlen("  {\"id\":\"a\",\"s\":\"x}\\\"{\"}"));
    char *s = to_text(val_of(&b));
    cr_assert_str_eq(s, "{\"id\":\"a\",\"s\":\"x}\\\"{\"}");
    free(s);
    /* the second one, appended; then what follows is no object */
    size_t first_len = b.len, used2;
    cr_assert_eq(codec_from_json_first(text + used, strlen(text + used), &default_lim, "g", &b, id,
                                       &used2, err, sizeof err), DOTDB_OK, "%s", err);
    cr_assert_str_eq(id, "b");
    cr_assert_gt(b.len, first_len);
    size_t at = used + used2;
    cr_assert_eq(codec_from_json_first(text + at, strlen(text + at), &default_lim, "g", &b, id,
                                       &used2, err, sizeof err), DOTDB_EJSON);
    cr_assert_eq(used2, 0);
    /* a cut-off document fails, and leaves the buffer as it was */
    size_t before = b.len;
    cr_assert_eq(codec_from_json_first("{\"id\":\"c\",", 10, &default_lim, "g", &b, id, &used2,
                                       err, sizeof err), DOTDB_EJSON);
    cr_assert_eq(b.len, before);
    /* the size limit applies to the document's own bytes, not the rest */
    codec_limits small = {64, CODEC_DEFAULT_MAX_DEPTH};
    char *big = repeat("{\"id\":\"d\"} ", " ", 1000, "{}");
    cr_assert_eq(codec_from_json_first(big, strlen(big), &small, "g", &b, id, &used2, err,
                                       sizeof err), DOTDB_OK, "%s", err);
    free(big);
    char *long_doc = repeat("{\"id\":\"e\",\"s\":\"", "x", 100, "\"}");
    cr_assert_eq(codec_from_json_first(long_doc, strlen(long_doc), &small, "g", &b, id, &used2,
                                       err, sizeof err), DOTDB_ETOOBIG);
    free(long_doc);
    dbuf_free(&b);
}
