/*
 * codec.h - DotDB's binary document encoding ("DDB1"), JSON <-> binary.
 *
 * Every document is stored, logged and sent in this encoding.  The client
 * library produces it from JSON text; the coordinator validates every
 * document it receives with codec_validate() before it touches shared
 * memory (I9).  Readers decode it in place, zero-copy.
 *
 * Byte layout.  All integers little endian, nothing aligned (loads go
 * through memcpy).  A value is one tag byte followed by its payload:
 *
 *   0x00 null          -
 *   0x01 false         -
 *   0x02 true          -
 *   0x03 int8          1 byte two's complement
 *   0x04 int16         2 bytes
 *   0x05 int32         4 bytes
 *   0x06 int64         8 bytes        (the smallest width that holds it)
 *   0x07 double        8 bytes IEEE 754
 *   0x08 string        varint length, then that many bytes of valid UTF-8
 *                      (no terminator; NUL bytes allowed as \u0000)
 *   0x10|w array       w = width code 0,1,2 -> W = 1,2,4 bytes
 *                      size:W   total bytes of the array, tag included
 *                      count:W  number of elements
 *                      off[count]:W  offset of element i from the tag byte
 *                      elements, in order
 *   0x20|w object      size:W, count:W as for arrays, then
 *                      koff[count]:W    offset of member i's key from the tag
 *                                       byte, members in the input's order
 *                      sorted[count]:W  member indexes ordered by key bytes
 *                                       (memcmp over the shorter, then the
 *                                       shorter key first)
 *                      members: key = varint length + bytes (valid UTF-8),
 *                      immediately followed by the member's value
 *
 * The width W of a container is the smallest of 1, 2, 4 such that its size
 * fits in W bytes.  varint = unsigned LEB128, at most 5 bytes, value
 * < 2^32.  Keys in one object are unique.  A document is an object value.
 *
 * Validity (codec_validate): every tag known; every size, offset and length
 * inside the enclosing container (and offsets past the container's table);
 * element i+1 starts where element i ends (values are contiguous and fill
 * the container exactly); doubles finite (JSON has no inf/nan); strings
 * and keys valid UTF-8; sorted[] a permutation in key order with no
 * duplicate keys; depth <= max_depth (the document itself is depth 1; only
 * containers add depth); nothing after the value.  The smallest width is
 * NOT required, for ints, for container widths W or for varints: the
 * encoder always writes the smallest, the validator accepts any width that
 * is otherwise consistent (any width decodes).
 *
 * Complexity: field by name O(log n) (binary search over sorted[]), array
 * element O(1), member iteration in input order.
 */
#ifndef DOTDB_CODEC_H
#define DOTDB_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dotdb.h"

enum codec_tag {
    CODEC_NULL = 0x00,
    CODEC_FALSE = 0x01,
    CODEC_TRUE = 0x02,
    CODEC_INT8 = 0x03,
    CODEC_INT16 = 0x04,
    CODEC_INT32 = 0x05,
    CODEC_INT64 = 0x06,
    CODEC_DOUBLE = 0x07,
    CODEC_STRING = 0x08,
    CODEC_ARRAY = 0x10,  /* | width code */
    CODEC_OBJECT = 0x20, /* | width code */
};

typedef struct codec_limits {
    size_t max_size;   /* encoded document bytes; also the JSON text limit */
    int max_depth;     /* nesting depth, document = 1 */
} codec_limits;

#define CODEC_DEFAULT_MAX_SIZE (16u * 1024u * 1024u)
#define CODEC_DEFAULT_MAX_DEPTH 100

/* A view of one encoded value (borrowed memory). */
typedef struct codec_val {
    const uint8_t *p; /* tag byte */
    size_t len;       /* bytes of this value */
} codec_val;

/*
 * Parse `len` bytes of JSON text (RFC 8259, strict: no comments, no
 * trailing commas, no NaN; UTF-8 validated; \uXXXX escapes and surrogate
 * pairs decoded) into the binary encoding, appended to `out` (caller-owned
 * buffer).  The top-level value must be an object.
 *
 * id handling: if the object has a member "id" it must be a string of 1 to
 * DOTDB_ID_MAX bytes (else DOTDB_EBADID).  If it has none and gen_id is not
 * NULL (a NUL-terminated string of 1 to DOTDB_ID_MAX bytes of valid UTF-8,
 * else DOTDB_EBADID), a member "id": gen_id is inserted as the first member;
 * if it has none and gen_id is NULL, DOTDB_EBADID.  No pointer to the id
 * inside `out->data` is returned (the buffer may move); instead the id is
 * copied into id_buf (DOTDB_ID_MAX + 1 bytes, NUL-terminated) when id_buf is
 * not NULL.  An id containing "\u0000" is copied whole; its C-string view
 * then ends early.
 *
 * lim may be NULL, and a zero max_size or max_depth means its default.
 * Depth counts containers only: a scalar inside 100 nested arrays is at
 * depth 100.  The text may not exceed lim->max_size nor 4 GiB - 1 bytes,
 * and neither may the encoding.  Parsing is iterative: the depth limit is
 * checked before each container is opened, so no input can exhaust the
 * stack.  Thread-safe (no global state); numbers do not depend on the
 * LC_NUMERIC locale.
 *
 * Errors: DOTDB_EJSON (with line and column), DOTDB_ETOOBIG (text or
 * encoding over lim->max_size), DOTDB_ETOODEEP, DOTDB_EBADID, DOTDB_ENOMEM.
 * On error `out` is restored to its length on entry and `err` (errlen
 * bytes, may be NULL) holds a message such as
 * "malformed JSON at line 1, column 9: expected ':' after object key".
 * Integers that fit int64 (no '.', 'e' or 'E' in the text) are ints;
 * everything else is a double (out-of-range doubles: DOTDB_EJSON).
 * Duplicate keys in one object: DOTDB_EJSON naming the key.
 */
int codec_from_json(const char *json, size_t len, const codec_limits *lim,
                    const char *gen_id, dbuf *out, char *id_buf, char *err, size_t errlen);

/*
 * codec_from_json for the first JSON value of json[0..len), which may be
 * followed by anything (JSON lines, an array's next element): parsing stops
 * right after the value's last byte and *used receives the bytes it took.
 * The size limit applies to those bytes.  Same errors as codec_from_json
 * ("unexpected data after the JSON value" excepted: what follows is the
 * caller's); *used is 0 on error.
 */
int codec_from_json_first(const char *json, size_t len, const codec_limits *lim,
                          const char *gen_id, dbuf *out, char *id_buf, size_t *used, char *err,
                          size_t errlen);

/*
 * Parse any JSON value (not only objects; no id rules) into the encoding.
 * For filters, options and scalar arguments.  Same errors as above.
 */
int codec_value_from_json(const char *json, size_t len, const codec_limits *lim, dbuf *out,
                          char *err, size_t errlen);

/*
 * Check that buf[0..len) is exactly one valid value (see "Validity") that
 * is an object whose "id" member is a string of 1..DOTDB_ID_MAX bytes, and
 * return the id's location through id/id_len (pointers into buf).
 * DOTDB_ECORRUPT with a message naming the byte offset, DOTDB_ETOODEEP,
 * DOTDB_EBADID (DOTDB_ENOMEM only when max_depth > 100 and the value nests
 * deeper than 100).  Never reads outside buf[0..len); iterative, so depth
 * does not consume C stack.  A valid non-object is DOTDB_ECORRUPT.
 */
int codec_validate_doc(const uint8_t *buf, size_t len, int max_depth, const char **id,
                       size_t *id_len, char *err, size_t errlen);
/* As above for any value (no id rules). */
int codec_validate(const uint8_t *buf, size_t len, int max_depth, char *err, size_t errlen);
/* As codec_validate_doc, and no object has more than max_fields members
 * (0: no limit; more: DOTDB_ETOOBIG naming the object's byte offset).  The
 * coordinator checks limits.max_fields this way. */
int codec_validate_doc_lim(const uint8_t *buf, size_t len, int max_depth, uint32_t max_fields,
                           const char **id, size_t *id_len, char *err, size_t errlen);

/*
 * Append the JSON text of a value (trusted: validated earlier) to out.
 * Keys keep the input order; ints print as integers; doubles as the
 * shortest text that reads back to the same double ("%.17g" fallback),
 * always with a '.' or 'e' so they stay doubles; strings escape '"', '\\',
 * control characters (\n \t ... \u00XX); non-ASCII UTF-8 is copied as is.
 * Compact form: no spaces.  DOTDB_ENOMEM.
 */
int codec_to_json(codec_val v, dbuf *out);

/* ---- Zero-copy access (values must have been validated) ---- */

/* DOTDB_T_* type of the value. */
int codec_type(codec_val v);
/* Fill a public dotdb_value view. */
void codec_to_value(codec_val v, dotdb_value *out);
/* Member `key` (klen bytes) of an object: 1 and *out when present, 0 when
 * absent or v is not an object. */
int codec_obj_get(codec_val v, const char *key, size_t klen, codec_val *out);
/* Number of members / elements (0 for scalars). */
size_t codec_count(codec_val v);
/* Element i of an array: 1 and *out, or 0 when out of range / not array. */
int codec_arr_at(codec_val v, size_t i, codec_val *out);
/* Member i of an object in input order: key bytes and value. */
int codec_obj_at(codec_val v, size_t i, const char **key, size_t *klen, codec_val *out);
/* Value of a dotted path ("a.b.0.c"); numeric parts index arrays.  1 when
 * found, 0 when not.  On an object every part is a key, digits included
 * ("a.0" finds {"a":{"0":1}}); on an array a part must be a canonical
 * index ("0", "12", not "01" or "+1"); an empty part names the key "".
 * No implicit traversal of arrays of objects (that is the query layer's). */
int codec_get_path(codec_val v, const char *path, size_t plen, codec_val *out);
/* Total byte length of the value starting at p (trusted input). */
size_t codec_val_len(const uint8_t *p);
/* Scalar readers (0 on a wrong type). */
int codec_as_int64(codec_val v, int64_t *out);
int codec_as_double(codec_val v, double *out); /* ints convert */
int codec_as_string(codec_val v, const char **s, size_t *len);
/*
 * Equality as MongoDB defines it for {field: value}: same type class and
 * value; ints and doubles compare by numeric value (1 == 1.0); objects
 * member by member in order; arrays element by element.
 */
int codec_equal(codec_val a, codec_val b);

/* ---- Internal, shared by codec.c and json.c ---- */

/* Length (1..4) of the well-formed UTF-8 sequence at s (avail >= 1 bytes),
 * or 0 when it is invalid: overlong, a surrogate, above U+10FFFF, a stray
 * continuation byte or truncated. */
size_t codec_utf8_seq(const uint8_t *s, size_t avail);

#endif /* DOTDB_CODEC_H */
