/*
 * agg.h - MongoDB aggregation pipelines over DDB1 documents (codec.h).
 *
 * Stages: $match $project $addFields $set $unset $group $sort $limit $skip
 * $unwind (string path, or {path, preserveNullAndEmptyArrays,
 * includeArrayIndex}) $count $sortByCount $replaceRoot.
 * Accumulators: $sum $avg $min $max $first $last $push $addToSet $count.
 * Expressions: field paths ("$a.b", through arrays of objects as MongoDB
 * does), literals ({"$literal": v} too), objects and arrays of
 * expressions, $add $subtract $multiply $divide $mod $abs $concat $toLower
 * $toUpper $size $cond $ifNull $eq $ne $gt $gte $lt $lte $and $or $not $in.
 * $group's key is "_id" (MongoDB's spelling; the output field is "_id");
 * groups come out in order of first appearance.  Semantics are MongoDB's;
 * README.md ("Aggregation") lists where DotDB differs (64-bit integers only,
 * no infinities, id treated like _id by $project).
 *
 * Execution is push-based and streaming: the caller pushes each input
 * document (from its own scan of a snapshot); streaming stages pass
 * documents on at once, blocking stages ($group, $sort, $count,
 * $sortByCount) hold what they need until agg_finish().  Blocking stages
 * stay within memory_bytes each and fail with DOTDB_ETOOBIG and a message
 * naming the stage and the budget past it.  Results are appended to the
 * caller's buffer as encoded documents back to back.
 *
 * A compiled pipeline is read-only and may be shared by threads; an
 * agg_run belongs to one thread.
 */
#ifndef DOTDB_AGG_H
#define DOTDB_AGG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "codec.h"
#include "query.h"

#define AGG_STOP 1 /* agg_push: no more input needed ($limit reached) */
#define AGG_DEFAULT_MEMORY_BYTES (100u * 1024u * 1024u)

typedef struct agg_pipeline agg_pipeline;
typedef struct agg_run agg_run;

/* Compile `pipeline` (an encoded array of stage objects) into *out
 * (caller-owned, agg_free).  DOTDB_EINVAL with a message naming the stage
 * (by index and name) and the operator: unknown stage or operator, wrong
 * operand, bad filter in $match, etc.  DOTDB_ENOMEM. */
int agg_compile(codec_val pipeline, agg_pipeline **out, char *err, size_t errlen);
void agg_free(agg_pipeline *p);

/* The filter of a leading $match (NULL if the pipeline does not start
 * with one), owned by p, so the caller can evaluate it inside its own
 * (parallel) scan and push only matching documents. */
const qfilter *agg_leading_match(const agg_pipeline *p);

/* Start running p.  Results go to `out` (caller-owned; appended, encoded
 * documents back to back).  skip_leading_match: the caller already applied
 * agg_leading_match().  memory_bytes: budget per blocking stage (0: the
 * default).  *r owned by the caller (agg_run_free). */
int agg_begin(const agg_pipeline *p, int skip_leading_match, size_t memory_bytes, dbuf *out,
              agg_run **r);
/* Push one input document.  The bytes must stay valid until agg_finish()
 * (true for documents in a held snapshot): stages may keep pointers to
 * them instead of copies.  0, AGG_STOP, or a negative DOTDB_E* with a
 * message in err. */
int agg_push(agg_run *r, codec_val doc, char *err, size_t errlen);
/* End of input: flush the blocking stages into `out`.  0 or DOTDB_E*. */
int agg_finish(agg_run *r, char *err, size_t errlen);
void agg_run_free(agg_run *r);

#endif /* DOTDB_AGG_H */
