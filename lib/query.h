/*
 * query.h - MongoDB filters, sort order and projection, evaluated on the
 * binary encoding (codec.h) in place: no copy, no JSON, no allocation per
 * document in the common case.  One parser and one evaluator, used by the
 * client library (find, count, aggregate $match) and by the coordinator
 * (update_many, delete_many).
 *
 * A filter, sort or projection is compiled once from its encoded JSON
 * (codec_value_from_json output) and then run on many documents.  The
 * compiled form owns copies of everything it needs; the caller may free
 * the encoded input right after compiling.  A compiled object is
 * read-only after compilation and may be used by several threads at once
 * (parallel scans); it is freed by its owner with the matching *_free.
 *
 * The primary key field is "id" (DotDB's _id).
 */
#ifndef DOTDB_QUERY_H
#define DOTDB_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "codec.h"

/* ---- filters ---- */

typedef struct qfilter qfilter;

/*
 * Compile filter `f` (an encoded value that must be an object) into *out
 * (owned by the caller, qfilter_free; NULL on failure).  Errors:
 * DOTDB_EINVAL with a message in err (errlen bytes, err may be NULL)
 * naming the operator and the reason ("$size: needs a non-negative
 * integer", "unknown operator: $foo", "unknown top level operator: $x",
 * "$regex: invalid pattern '(': ... at offset 1"), DOTDB_ENOMEM.
 *
 * Operators: $eq $ne $gt $gte $lt $lte $in $nin $and $or $nor $not
 * $exists $type $all $size $elemMatch $regex/$options $mod, top-level
 * $comment (ignored).  Semantics are MongoDB's (see lib/query.c for the
 * path and array rules): comparisons only match within the operand's
 * type bracket, ints and doubles compare exactly, null matches missing,
 * $ne/$nin/$not/$nor match documents missing the field.  $type takes
 * "double" "string" "object" "array" "bool" "null" "int" "long" "number"
 * or codes 1 2 3 4 8 10 16 18 (or an array of them); every DotDB integer
 * is an int64, so "int" and "long" both match all integers.
 */
int qfilter_compile(codec_val f, qfilter **out, char *err, size_t errlen);
/* 1 when doc (a validated encoded object) matches, 0 when not.  No
 * allocation, except once per thread for the first $regex match (PCRE2
 * match data, freed when the thread exits).  Thread-safe on a shared q. */
int qfilter_match(const qfilter *q, codec_val doc);
void qfilter_free(qfilter *q);
/* 1 when the filter matches every document ({}). */
int qfilter_is_all(const qfilter *q);
/* 1 when the filter requires "id" to equal one string (top-level
 * {"id": "x"} or {"id": {"$eq": "x"}}, also inside a top-level $and), with
 * *id / *id_len pointing into q; 0 otherwise.  Lets callers use the
 * primary index (the whole filter must still be checked on that doc). */
int qfilter_id_eq(const qfilter *q, const char **id, size_t *id_len);
/* For upsert: append to out an encoded object made of the filter's
 * equality conditions at top level (implicit or $eq, also inside a
 * top-level $and), dotted paths expanded into nested objects.  DOTDB_EINVAL
 * when two equalities name the same or overlapping paths ({"a": 1,
 * "a.b": 2}; MongoDB: "path matched twice"), DOTDB_ENOMEM; out is left as
 * it was on failure. */
int qfilter_seed(const qfilter *q, dbuf *out);

/* ---- order ---- */

/*
 * MongoDB's comparison order across types, for sort, $min/$max and $gt...:
 * missing and null < numbers (ints and doubles by value) < strings (byte
 * order) < objects (member by member: key, then value) < arrays (element by
 * element) < false < true.  A missing value is given as {NULL, 0}.
 * Returns <0, 0, >0.
 */
int qvalue_cmp(codec_val a, codec_val b);

typedef struct qsort_spec qsort_spec;
/* Compile {"a": 1, "b.c": -1} (1 or -1, at most 32 keys).  DOTDB_EINVAL. */
int qsort_compile(codec_val spec, qsort_spec **out, char *err, size_t errlen);
/* Compare two documents by the spec (an array field sorts by its smallest
 * element ascending, its largest descending, as MongoDB does; an empty
 * array sorts before null and missing, like MongoDB's "undefined"; a
 * missing field sorts as null; dotted paths go through arrays of
 * objects).  Ties return 0 (callers keep natural order: stable). */
int qsort_cmp(const qsort_spec *s, codec_val a, codec_val b);
void qsort_free(qsort_spec *s);

/* ---- projection ---- */

typedef struct qproj qproj;
/* Compile {"a": 1, "b.c": 1} (inclusion) or {"a": 0} (exclusion); "id" is
 * included unless {"id": 0}; mixing inclusion and exclusion (other than
 * id) is DOTDB_EINVAL. */
int qproj_compile(codec_val spec, qproj **out, char *err, size_t errlen);
/* Append the projected document to out (an encoded object): members in
 * the document's order; dotted paths go through objects and arrays of
 * objects (lib/query_proj.c).  DOTDB_ENOMEM, DOTDB_ETOOBIG. */
int qproj_apply(const qproj *p, codec_val doc, dbuf *out);
void qproj_free(qproj *p);

#endif /* DOTDB_QUERY_H */
