/*
 * agg_internal.h - the parts of the aggregation pipeline (agg.h) shared by
 * its files; not part of any public API.
 *
 *   agg_enc.c    arenas, and the encoding of values the pipeline computes
 *                (scalars, arrays and objects built from encoded parts)
 *   agg_expr.c   expressions: compile once, evaluate per document on the
 *                binary encoding in place
 *   agg_shape.c  the document-shaping stages' field trees ($project with
 *                inclusions and computed fields, $addFields/$set) and
 *                setting one dotted path ($unwind)
 *   agg_group.c  $group: the hash table of groups and the accumulators
 *   agg.c        compiling the pipeline, running the stages
 *
 * Values.  Every value in the pipeline is a codec_val: either a view into
 * an input document, into a compiled constant, or into an arena where a
 * computed value was encoded (codec.h's encoding, smallest widths).  A
 * MISSING value (a field that is not there, $$REMOVE) is {NULL, 0}; it is
 * distinct from null, as in MongoDB.  Nothing is converted to a tree to be
 * read, and nothing is allocated per document once the arenas are warm.
 */
#ifndef DOTDB_AGG_INTERNAL_H
#define DOTDB_AGG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "buf.h"
#include "codec.h"

/* ---- arenas (agg_enc.c) ---- */

/*
 * A bump allocator in chained blocks.  Pointers stay valid until
 * agg_arena_reset() (which keeps the blocks for reuse) or
 * agg_arena_free().  Allocations are 8-byte aligned.  One owner.
 */
typedef struct agg_arena_block agg_arena_block;
typedef struct agg_arena {
    agg_arena_block *head; /* all blocks, in order */
    agg_arena_block *tail; /* the last one */
    agg_arena_block *cur;  /* the block being filled */
    size_t block_bytes;    /* total bytes of all blocks (what the arena holds) */
} agg_arena;

void agg_arena_init(agg_arena *a);
/* n bytes, or NULL when out of memory. */
void *agg_arena_alloc(agg_arena *a, size_t n);
void agg_arena_reset(agg_arena *a);
void agg_arena_free(agg_arena *a);

/* ---- encoding computed values (agg_enc.c) ---- */

#define AGG_MISSING ((codec_val){NULL, 0})
static inline int agg_is_missing(codec_val v) { return v.p == NULL; }

/* Views of constants in static storage (never freed). */
codec_val agg_null(void);
codec_val agg_bool(int b);
codec_val agg_empty_object(void);

/* Encode a scalar into the arena.  DOTDB_ENOMEM; agg_enc_double:
 * DOTDB_EINVAL for NaN or an infinity (the encoding has no such values). */
int agg_enc_int(agg_arena *a, int64_t i, codec_val *out);
int agg_enc_double(agg_arena *a, double d, codec_val *out);
int agg_enc_string(agg_arena *a, const char *s, size_t len, codec_val *out);
/* Copy an encoded value into the arena (MISSING stays MISSING). */
int agg_enc_copy(agg_arena *a, codec_val v, codec_val *out);

/* One member of an object under construction: key bytes and value. */
typedef struct agg_kv {
    const char *key;
    size_t klen;
    codec_val v; /* never MISSING */
} agg_kv;

/* An array of the n elements (none MISSING), encoded into the arena.
 * DOTDB_ETOOBIG past 4 GiB, DOTDB_ENOMEM. */
int agg_enc_array(agg_arena *a, const codec_val *el, size_t n, codec_val *out);
/* An object of the n members, in that order (keys unique: DOTDB_EINVAL
 * otherwise).  DOTDB_ETOOBIG, DOTDB_ENOMEM. */
int agg_enc_object(agg_arena *a, const agg_kv *m, size_t n, codec_val *out);

/* Name of a value's type for messages: "missing", "null", "bool", "int",
 * "double", "string", "array", "object". */
const char *agg_type_name(codec_val v);

/* printf into err (may be NULL) and return rc. */
int agg_err(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- field paths (agg_expr.c) ---- */

/* A dotted path split into parts (each a key; aggregation paths never
 * index arrays, "a.0" is the key "0"). */
typedef struct agg_path_part {
    const char *s;
    size_t len;
} agg_path_part;

typedef struct agg_path {
    char *text; /* owned copy of the dotted path */
    size_t len;
    agg_path_part *parts; /* owned, pointing into text */
    size_t n;
} agg_path;

/* Split `len` bytes of a dotted path (no leading '$').  what names the
 * place for messages.  DOTDB_EINVAL for an empty path or part, or a part
 * starting with '$'; DOTDB_ENOMEM. */
int agg_path_init(agg_path *p, const char *s, size_t len, const char *what, char *err,
                  size_t errlen);
void agg_path_fini(agg_path *p);
/* The value at p inside obj, following objects only (no array
 * traversal): MISSING when absent or when a part crosses a non-object. */
codec_val agg_path_get_plain(codec_val obj, const agg_path *p);

/* ---- expressions (agg_expr.c) ---- */

typedef struct agg_expr agg_expr;

/*
 * Compile the expression spec (field path "$a.b", "$$ROOT", "$$CURRENT",
 * "$$REMOVE", literal, {"$literal": v}, object or array of expressions,
 * {"$op": args}) into *out (agg_expr_free).  DOTDB_EINVAL with a message
 * naming the operator; DOTDB_ENOMEM.
 */
int agg_expr_compile(codec_val spec, agg_expr **out, char *err, size_t errlen);
void agg_expr_free(agg_expr *e);
/* 1 when e is a constant (its value is the same for every document). */
int agg_expr_is_const(const agg_expr *e);
/* 1 when e is a plain field path of one part ("$city"), with its key. */
int agg_expr_is_top_field(const agg_expr *e, const char **key, size_t *klen);

/* Evaluation context: the document ($$ROOT) and where computed values go. */
typedef struct agg_ectx {
    agg_arena *arena;
    codec_val root;
    char *err;
    size_t errlen;
} agg_ectx;

/* Evaluate e on c->root: *out is MISSING, a view into the document or a
 * constant, or a value encoded in c->arena.  DOTDB_EINVAL (a type error,
 * division by zero, with the operator named in c->err), DOTDB_ENOMEM,
 * DOTDB_ETOOBIG. */
int agg_expr_eval(const agg_expr *e, agg_ectx *c, codec_val *out);

/* MongoDB truthiness: false, null, missing and zero are false. */
int agg_truthy(codec_val v);
/* MongoDB's order (qvalue_cmp) with MISSING below everything, null
 * included. */
int agg_cmp(codec_val a, codec_val b);
/* 1 when v is null or MISSING. */
static inline int agg_nullish(codec_val v) { return v.p == NULL || v.p[0] == CODEC_NULL; }

/* ---- document shapes: $project, $addFields (agg_shape.c) ---- */

typedef struct agg_shape agg_shape;

enum agg_shape_mode {
    AGG_SHAPE_PROJECT,   /* inclusions and computed fields ($project) */
    AGG_SHAPE_ADDFIELDS, /* computed fields only ($addFields, $set) */
};

/*
 * 1 when spec is a $project made only of exclusions (0/false, nested
 * objects of them; a top-level id or _id may be 1/true, their default, as
 * long as something else is excluded); then *flat (caller frees with dbuf_free) holds the
 * encoded {"a.b": 0, ...} for qproj_compile.  0 when it has inclusions or
 * computed fields.  Negative DOTDB_E* on failure.
 */
int agg_shape_exclusion_spec(codec_val spec, dbuf *flat, char *err, size_t errlen);
/* Compile a $project (with at least one inclusion or computed field) or
 * $addFields spec.  DOTDB_EINVAL (message without the stage prefix),
 * DOTDB_ENOMEM. */
int agg_shape_compile(codec_val spec, int mode, agg_shape **out, char *err, size_t errlen);
void agg_shape_free(agg_shape *s);
/* Shape c->root into a new object in c->arena (*out). */
int agg_shape_apply(const agg_shape *s, agg_ectx *c, codec_val *out);

/* A copy of object obj with the value at path p set to v (removed when v
 * is MISSING), creating objects on the way and replacing non-objects
 * crossed ($unwind, includeArrayIndex). */
int agg_set_path(agg_arena *a, codec_val obj, const agg_path_part *parts, size_t n, codec_val v,
                 codec_val *out);

/* ---- $group (agg_group.c) ---- */

typedef struct agg_group_spec agg_group_spec;
typedef struct agg_group agg_group;

/* Compile {"_id": expr, "field": {"$acc": expr}, ...}.  DOTDB_EINVAL
 * (message without the stage prefix), DOTDB_ENOMEM. */
int agg_group_compile(codec_val spec, agg_group_spec **out, char *err, size_t errlen);
void agg_group_spec_free(agg_group_spec *s);

/* A table of groups for one run; memory_bytes is the budget, `stage` the
 * name in messages ("$group", "$sortByCount"). */
int agg_group_new(const agg_group_spec *s, size_t memory_bytes, const char *stage,
                  agg_group **out);
void agg_group_free(agg_group *g);
/* Add one document.  DOTDB_ETOOBIG past the budget ("$group: the groups
 * need more than N bytes (aggregation memory budget)"), expression
 * errors, DOTDB_ENOMEM. */
int agg_group_add(agg_group *g, codec_val doc, char *err, size_t errlen);
/* Number of groups, in order of first appearance. */
size_t agg_group_count(const agg_group *g);
/* The output document of group i, {"_id": key, field: result, ...}, built
 * in arena a. */
int agg_group_result(agg_group *g, size_t i, agg_arena *a, codec_val *out, char *err,
                     size_t errlen);

#endif /* DOTDB_AGG_INTERNAL_H */
