/*
 * fuzz_json.c - JSON text -> binary -> JSON text round trip (lib/json.c,
 * lib/codec.c).
 *
 * Input: arbitrary bytes taken as JSON text.  Never crash.  When the
 * parser accepts it:
 *   - the encoding validates (codec_validate; codec_validate_doc for
 *     codec_from_json output, with the id it reported);
 *   - codec_to_json's text parses again to exactly the same bytes (the
 *     encoding is canonical, so "same meaning" is "same bytes");
 *   - a parse under a tight size limit that succeeds gives the same bytes
 *     as under the default limits.
 * When it refuses: the output buffer is left exactly as it was on entry
 * (codec.h) and the code is one of the documented ones.
 */
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "fuzz_util.h"

#define PREFIX "pre"
#define PREFIX_LEN 3u

static void check_untouched(const dbuf *b, int rc)
{
    FUZZ_CHECK(rc == DOTDB_EJSON || rc == DOTDB_ETOOBIG || rc == DOTDB_ETOODEEP ||
                   rc == DOTDB_EBADID,
               "unexpected error %d", rc);
    FUZZ_CHECK(b->len == PREFIX_LEN && memcmp(b->data, PREFIX, PREFIX_LEN) == 0,
               "a failed parse changed the output buffer (len %zu)", b->len);
}

/* parse -> print -> parse: the second encoding equals the first. */
static void round_trip(const dbuf *enc, int as_doc)
{
    char err[256];
    dbuf text, again;
    dbuf_init(&text);
    dbuf_init(&again);
    codec_val v = {enc->data + PREFIX_LEN, enc->len - PREFIX_LEN};
    FUZZ_CHECK(codec_to_json(v, &text) == DOTDB_OK, "to_json");
    codec_limits lim = {0, 0};
    int rc = as_doc ? codec_from_json((const char *)text.data, text.len, &lim, NULL, &again,
                                      NULL, err, sizeof err)
                    : codec_value_from_json((const char *)text.data, text.len, &lim, &again, err,
                                            sizeof err);
    FUZZ_CHECK(rc == DOTDB_OK, "printed text does not parse (%s): %.*s", err, (int)text.len,
               (const char *)text.data);
    FUZZ_CHECK(again.len == v.len && memcmp(again.data, v.p, v.len) == 0,
               "round trip changed the encoding of %.*s", (int)text.len,
               (const char *)text.data);
    dbuf_free(&text);
    dbuf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    const char *json = (const char *)data;
    dbuf enc, small;
    dbuf_init(&enc);
    dbuf_init(&small);
    FUZZ_CHECK(dbuf_append(&enc, PREFIX, PREFIX_LEN) == DOTDB_OK, "alloc");
    FUZZ_CHECK(dbuf_append(&small, PREFIX, PREFIX_LEN) == DOTDB_OK, "alloc");

    /* Any value. */
    codec_limits lim = {0, 0};
    int rc = codec_value_from_json(json, size, &lim, &enc, err, sizeof err);
    if (rc != DOTDB_OK) {
        check_untouched(&enc, rc);
    } else {
        FUZZ_CHECK(codec_validate(enc.data + PREFIX_LEN, enc.len - PREFIX_LEN,
                                  CODEC_DEFAULT_MAX_DEPTH, err, sizeof err) == DOTDB_OK,
                   "parser output does not validate: %s", err);
        round_trip(&enc, 0);
    }
    codec_limits tight = {64, 4};
    int rc_small = codec_value_from_json(json, size, &tight, &small, err, sizeof err);
    if (rc_small != DOTDB_OK)
        check_untouched(&small, rc_small);
    else
        FUZZ_CHECK(rc == DOTDB_OK && small.len == enc.len &&
                       memcmp(small.data, enc.data, enc.len) == 0,
                   "tight limits accepted what the defaults refuse, or encoded differently");

    /* As a document, with a generated id when it has none. */
    char id_buf[DOTDB_ID_MAX + 1];
    enc.len = PREFIX_LEN;
    rc = codec_from_json(json, size, &lim, "gen-id", &enc, id_buf, err, sizeof err);
    if (rc != DOTDB_OK) {
        check_untouched(&enc, rc);
    } else {
        const char *id;
        size_t id_len;
        rc = codec_validate_doc(enc.data + PREFIX_LEN, enc.len - PREFIX_LEN,
                                CODEC_DEFAULT_MAX_DEPTH, &id, &id_len, err, sizeof err);
        FUZZ_CHECK(rc == DOTDB_OK, "document does not validate: %s", err);
        FUZZ_CHECK(memcmp(id, id_buf, id_len) == 0 && id_buf[id_len] == '\0',
                   "id_buf differs from the encoded id");
        round_trip(&enc, 1);
    }
    dbuf_free(&enc);
    dbuf_free(&small);
    return 0;
}
