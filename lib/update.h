/*
 * update.h - MongoDB update documents: a replacement ({"name": "x"}) or
 * update operators ({"$set": {...}, "$inc": {...}}).  Compiled once, then
 * applied by the coordinator inside its write path to the current version
 * of each document, so concurrent $inc from many processes lose nothing.
 *
 * Operators: $set $unset $inc $mul $min $max $rename $push (with $each,
 * $slice, $position) $pull (value or condition) $addToSet (with $each)
 * $pop $currentDate.  Paths are dotted; numeric parts index arrays (an
 * index past the end pads with nulls, at most 1,500,000 of them, as
 * MongoDB: more is DOTDB_ETOOBIG before anything is allocated).
 *
 * Errors (DOTDB_EINVAL with a message naming the operator and field): an
 * unknown operator, a mix of operators and plain fields, a wrong operand
 * type, two operators on the same or overlapping paths ($set a and a.b),
 * a change of "id", $inc/$mul on a non-number, $push on a non-array.
 *
 * Semantics are MongoDB's (README.md, "Update operators"), with these
 * choices: an empty operator ({"$set": {}}) is an error; no path may be or
 * lie below "id"; paths have no empty part, no "$" part (positional
 * operators are not supported) and at most 1000 parts; int op int stays an
 * int and fails on int64 overflow, a double makes a double that must be
 * finite; $min/$max use dval_cmp's order across types; fields are
 * processed in lexicographic path order (numeric parts by value), so new
 * fields appear in that order.  $push modifiers: $each, $position, $slice
 * ($sort is not supported).  $pull takes a value (equality), a condition on
 * the element ({"$gte": 6}; $eq $ne $gt $gte $lt $lte $in $nin), or fields
 * matched inside object elements ({"item": "B", "score": {"$lt": 5}}).
 */
#ifndef DOTDB_UPDATE_H
#define DOTDB_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "codec.h"

typedef struct upd_spec upd_spec;

/* Compile update `u` (an encoded object) into *out (caller-owned,
 * update_free; NULL on failure).  Compile-time checks: operator names,
 * operand shapes, conflicting paths, paths touching "id".  The spec keeps
 * copies: u may be freed afterwards.  Thread-safe after compiling.
 * DOTDB_EINVAL with a message in err (may be NULL), DOTDB_ENOMEM. */
int update_compile(codec_val u, upd_spec **out, char *err, size_t errlen);
/* 1 when it is a replacement document rather than operators. */
int update_is_replacement(const upd_spec *u);
/*
 * Apply to document `doc` (validated encoded object with "id") and append
 * the new document to out.  now_ms (ms since the epoch) is the time
 * $currentDate writes: DotDB has no date type, so {"f": true} and
 * {"f": {"$type": "date"}} write an ISO-8601 UTC string
 * ("2026-11-24T10:00:00.123Z", which sorts in time order) and
 * {"f": {"$type": "timestamp"}} writes the int64 milliseconds.  For a replacement the new document keeps doc's id (a
 * different "id" in the replacement is DOTDB_EINVAL).  *changed is set to
 * 0 when the result equals doc (MongoDB's nModified excludes those).
 * lim bounds the result (DOTDB_ETOOBIG, DOTDB_ETOODEEP; NULL or zero
 * fields mean the codec defaults).  On failure out is restored to its
 * length on entry and err (errlen bytes, may be NULL) says why; errors:
 * DOTDB_EINVAL (an operator cannot apply to this document: "$push: cannot
 * apply to non-array field 'tags' (string)", "$set: cannot create field
 * 'b' in element {a: 5}", integer overflow, a changed id), DOTDB_ETOOBIG,
 * DOTDB_ETOODEEP, DOTDB_ENOMEM.  *changed compares bytes: a stored document
 * encoded with wider fields than the encoder writes counts as changed.
 */
int update_apply(const upd_spec *u, codec_val doc, int64_t now_ms, const codec_limits *lim,
                 dbuf *out, int *changed, char *err, size_t errlen);
/* NULL allowed. */
void update_free(upd_spec *u);

#endif /* DOTDB_UPDATE_H */
