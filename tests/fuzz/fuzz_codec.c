/*
 * fuzz_codec.c - the binary document validator and decoder (lib/codec.c).
 *
 * Input: raw bytes, taken as one encoded value (what arrives in a batch or
 * a segment file).  Never crash, never read outside the buffer.  When the
 * validator accepts the bytes, every zero-copy accessor must agree with
 * it, and decoding must be lossless:
 *   - codec_val_len of the value is the whole buffer;
 *   - every element / member is reachable by index, every member by
 *     codec_obj_get under its own key (keys are unique), and the pieces
 *     lie inside their container;
 *   - codec_to_json's text parses back (codec_value_from_json), the result
 *     validates, is codec_equal to the input and prints as the same text;
 *   - the dval decoder and encoder (dval_from_codec, dval_encode) produce
 *     the same canonical bytes as the JSON parser;
 *   - a validated document (codec_validate_doc) parses back as a document
 *     with the same id.
 */
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "dval.h"
#include "fuzz_util.h"

#define DEPTH 100

static void walk(codec_val v, int depth)
{
    FUZZ_CHECK(depth <= DEPTH, "walk deeper than the validated depth");
    FUZZ_CHECK(codec_val_len(v.p) == v.len, "codec_val_len %zu != %zu", codec_val_len(v.p),
               v.len);
    dotdb_value dv;
    codec_to_value(v, &dv);
    int type = codec_type(v);
    FUZZ_CHECK(type != DOTDB_T_MISSING && dv.type == type, "type %d / %d", type, dv.type);
    int64_t i64;
    double d;
    const char *s;
    size_t slen;
    FUZZ_CHECK(codec_as_int64(v, &i64) == (type == DOTDB_T_INT), "as_int64 vs type");
    FUZZ_CHECK(codec_as_double(v, &d) == (type == DOTDB_T_INT || type == DOTDB_T_DOUBLE),
               "as_double vs type");
    FUZZ_CHECK(codec_as_string(v, &s, &slen) == (type == DOTDB_T_STRING), "as_string vs type");
    if (type == DOTDB_T_STRING)
        FUZZ_CHECK(s > (const char *)v.p && s + slen == (const char *)v.p + v.len,
                   "string bytes outside the value");
    size_t n = codec_count(v);
    codec_val c, g;
    if (type == DOTDB_T_ARRAY) {
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(codec_arr_at(v, i, &c), "element %zu of %zu missing", i, n);
            FUZZ_CHECK(c.p > v.p && c.p + c.len <= v.p + v.len, "element %zu outside", i);
            walk(c, depth + 1);
        }
        FUZZ_CHECK(!codec_arr_at(v, n, &c), "element past the count");
    } else if (type == DOTDB_T_OBJECT) {
        const char *key;
        size_t klen;
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(codec_obj_at(v, i, &key, &klen, &c), "member %zu of %zu missing", i, n);
            FUZZ_CHECK(c.p > v.p && c.p + c.len <= v.p + v.len, "member %zu outside", i);
            FUZZ_CHECK(codec_obj_get(v, key, klen, &g) && g.p == c.p && g.len == c.len,
                       "member %zu not found by its key", i);
            if (memchr(key, '.', klen) == NULL)
                FUZZ_CHECK(codec_get_path(v, key, klen, &g) && g.p == c.p,
                           "member %zu not found by path", i);
            walk(c, depth + 1);
        }
        FUZZ_CHECK(!codec_obj_at(v, n, &key, &klen, &c), "member past the count");
    } else {
        FUZZ_CHECK(n == 0, "scalar with a count");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    const char *id;
    size_t id_len;
    int rc = codec_validate(data, size, DEPTH, err, sizeof err);
    int rc_shallow = codec_validate(data, size, 3, err, sizeof err);
    int rc_doc = codec_validate_doc(data, size, DEPTH, &id, &id_len, err, sizeof err);
    FUZZ_CHECK(rc_shallow != DOTDB_OK || rc == DOTDB_OK, "valid at depth 3 but not at 100");
    FUZZ_CHECK(rc_doc != DOTDB_OK || rc == DOTDB_OK, "a valid document that is no valid value");
    if (rc != DOTDB_OK) {
        FUZZ_CHECK(rc == DOTDB_ECORRUPT || rc == DOTDB_ETOODEEP, "rc %d", rc);
        return 0;
    }
    codec_val v = {data, size};
    walk(v, 1);

    dbuf text, enc, enc2, text2;
    dbuf_init(&text);
    dbuf_init(&enc);
    dbuf_init(&enc2);
    dbuf_init(&text2);
    FUZZ_CHECK(codec_to_json(v, &text) == DOTDB_OK, "to_json");
    codec_limits lim = {0, DEPTH};
    rc = codec_value_from_json((const char *)text.data, text.len, &lim, &enc, err, sizeof err);
    FUZZ_CHECK(rc == DOTDB_OK, "printed JSON does not parse back (%s): %.*s", err,
               (int)text.len, (const char *)text.data);
    FUZZ_CHECK(codec_validate(enc.data, enc.len, DEPTH, err, sizeof err) == DOTDB_OK,
               "encoder output invalid: %s", err);
    codec_val e = {enc.data, enc.len};
    FUZZ_CHECK(codec_equal(v, e), "round trip changed the value: %.*s", (int)text.len,
               (const char *)text.data);
    FUZZ_CHECK(codec_to_json(e, &text2) == DOTDB_OK, "to_json 2");
    FUZZ_CHECK(text.len == text2.len && memcmp(text.data, text2.data, text.len) == 0,
               "round trip prints differently: %.*s vs %.*s", (int)text.len,
               (const char *)text.data, (int)text2.len, (const char *)text2.data);

    dval tree;
    FUZZ_CHECK(dval_from_codec(v, &tree) == DOTDB_OK, "dval_from_codec");
    FUZZ_CHECK(dval_encode(&tree, &enc2) == DOTDB_OK, "dval_encode");
    FUZZ_CHECK(enc2.len == enc.len && memcmp(enc2.data, enc.data, enc.len) == 0,
               "dval_encode and the JSON parser disagree on %.*s", (int)text.len,
               (const char *)text.data);
    dval_free(&tree);

    if (rc_doc == DOTDB_OK) {
        char id_buf[DOTDB_ID_MAX + 1];
        enc.len = 0;
        rc = codec_from_json((const char *)text.data, text.len, &lim, NULL, &enc, id_buf, err,
                             sizeof err);
        FUZZ_CHECK(rc == DOTDB_OK, "document does not parse back: %s", err);
        FUZZ_CHECK(memcmp(id_buf, id, id_len) == 0 && id_buf[id_len] == '\0', "id changed");
        FUZZ_CHECK(enc.len == enc2.len && memcmp(enc.data, enc2.data, enc.len) == 0,
                   "codec_from_json and codec_value_from_json disagree");
    }
    dbuf_free(&text);
    dbuf_free(&text2);
    dbuf_free(&enc);
    dbuf_free(&enc2);
    return 0;
}
