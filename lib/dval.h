/*
 * dval.h - a mutable, heap-owned document tree, for the places that build
 * new documents: update operators (lib/update.c), projection and upsert
 * seeds (lib/query.c), aggregation stages and accumulators (lib/agg.c).
 *
 * Reading never needs it: filters, sort and point reads work on the
 * binary encoding in place (codec.h).  A dval is built from an encoded
 * value (dval_from_codec), changed, and encoded again (dval_encode).
 *
 * Ownership: a dval owns everything below it (strings, elements, members,
 * keys).  dval_free() releases a subtree; functions that take a `dval *`
 * to insert MOVE it into the tree (the caller's struct is left DV_NULL and
 * owns nothing), so no value is ever owned twice.  Not thread-safe; one
 * owner at a time.  All allocation failures return DOTDB_ENOMEM and leave
 * the tree as it was; a function that fails does not move its `dval *`
 * argument (the caller still owns it and frees it).
 *
 * Walks recurse once per nesting level; trees come from validated
 * documents and operands whose depth limits.max_depth bounds (<= 1000).
 *
 * Objects keep members in insertion order (as the encoding does); keys are
 * unique.  Numbers keep their kind: DV_INT is int64, DV_DOUBLE a finite
 * double.
 */
#ifndef DOTDB_DVAL_H
#define DOTDB_DVAL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "codec.h"

enum dval_type { DV_NULL = 0, DV_BOOL, DV_INT, DV_DOUBLE, DV_STRING, DV_ARRAY, DV_OBJECT };

typedef struct dval dval;
typedef struct dval_member dval_member;

struct dval {
    int type; /* enum dval_type */
    union {
        int b;            /* DV_BOOL: 0 or 1 */
        int64_t i;        /* DV_INT */
        double d;         /* DV_DOUBLE */
        struct {
            char *s;      /* DV_STRING: owned, NUL-terminated for convenience,
                             may contain NUL bytes (len is authoritative) */
            size_t len;
        } str;
        struct {
            dval *v;      /* DV_ARRAY: owned elements */
            size_t n, cap;
        } arr;
        struct {
            dval_member *m; /* DV_OBJECT: owned members, insertion order */
            size_t n, cap;
        } obj;
    } u;
};

struct dval_member {
    char *key;            /* owned, NUL-terminated, klen bytes */
    size_t klen;
    dval v;
};

/* Scalars (never fail).  dval_null() etc. return a value owning nothing. */
dval dval_null(void);
dval dval_bool(int b);
dval dval_int(int64_t i);
dval dval_double(double d);
/* A string copied from s[0..len).  DOTDB_ENOMEM. */
int dval_string(const char *s, size_t len, dval *out);
/* Empty containers (own nothing until something is added). */
dval dval_array(void);
dval dval_object(void);

/* Release everything v owns; v becomes DV_NULL.  NULL allowed. */
void dval_free(dval *v);
/* Deep copy of src into *out.  DOTDB_ENOMEM (then *out is DV_NULL). */
int dval_copy(const dval *src, dval *out);

/* Decode an encoded value (validated earlier) into a new tree *out. */
int dval_from_codec(codec_val v, dval *out);
/* Append the encoding of v to out (smallest widths, as codec.h requires).
 * Doubles must be finite: DOTDB_EINVAL for NaN/inf (from $divide etc.).
 * DOTDB_ETOOBIG past 4 GiB, DOTDB_ENOMEM. */
int dval_encode(const dval *v, dbuf *out);

/* ---- objects ---- */

/* The member named key[0..klen), or NULL. */
dval *dval_obj_get(const dval *obj, const char *key, size_t klen);
/* Set member key to *v (moved in), replacing and freeing an existing value
 * in place (its position is kept), else appending.  obj must be DV_OBJECT. */
int dval_obj_set(dval *obj, const char *key, size_t klen, dval *v);
/* Remove member key; 1 when it was there, 0 when not. */
int dval_obj_remove(dval *obj, const char *key, size_t klen);

/* ---- arrays ---- */

/* Append *v (moved in).  arr must be DV_ARRAY. */
int dval_arr_push(dval *arr, dval *v);
/* Insert *v (moved in) at index i (0..n; DOTDB_EINVAL past n). */
int dval_arr_insert(dval *arr, size_t i, dval *v);
/* Remove and free element i (< n). */
void dval_arr_remove(dval *arr, size_t i);

/* ---- dotted paths ("a.b.0.c") ---- */

/*
 * The value at path, or NULL.  On an object every part is a key; on an
 * array a part must be a canonical index ("0", "12").  No implicit
 * traversal of arrays of objects.
 */
dval *dval_path_get(const dval *root, const char *path, size_t plen);
/*
 * Set the value at path to *v (moved in), creating missing objects on the
 * way (MongoDB $set semantics).  A numeric part on an array sets that
 * element, padding with nulls past the end.  Fails with DOTDB_EINVAL and a
 * message in err (may be NULL) when a part crosses a scalar ("cannot
 * create field 'b' in element {a: 5}") or a non-numeric part meets an array,
 * and with DOTDB_ETOOBIG when the padding would exceed DVAL_MAX_PAD nulls
 * (MongoDB refuses to backfill past 1,500,000 elements too).
 */
#define DVAL_MAX_PAD 1500000u
int dval_path_set(dval *root, const char *path, size_t plen, dval *v, char *err, size_t errlen);
/* Remove the value at path ($unset: on an array element it becomes null,
 * as MongoDB does).  1 when something was removed, 0 when absent. */
int dval_path_unset(dval *root, const char *path, size_t plen);

/* ---- comparison ---- */

/* MongoDB's equality (ints and doubles by value, objects member by member
 * in order, arrays element by element).  1 equal, 0 not. */
int dval_equal(const dval *a, const dval *b);
/* A view of a scalar or container as a codec value is not possible
 * without encoding; to compare a dval with stored data, encode it once. */

/* MongoDB's order across types, as qvalue_cmp (query.h) defines it: null <
 * numbers (ints and doubles by exact value) < strings (byte order) <
 * objects (member by member: key, then value; a prefix first) < arrays
 * (element by element) < false < true.  Returns -1, 0 or 1. */
int dval_cmp(const dval *a, const dval *b);
/* The rank of a DV_* type in that order (0 null, 1 numbers, 2 strings,
 * 3 objects, 4 arrays, 5 booleans). */
int dval_type_rank(int type);

/* ---- helpers for the modules that build on dval ---- */

/* 1 and *out when s[0..len) is a canonical array index ("0", "12"; not
 * "", "01", "+1", nor more than 18 digits), else 0. */
int dval_parse_index(const char *s, size_t len, size_t *out);
/* A short rendering of v for error messages into buf (cap bytes, always
 * NUL-terminated): scalars as JSON-ish text (strings cut at 24 bytes),
 * containers as "[...]" / "{...}". */
void dval_describe(const dval *v, char *buf, size_t cap);

#endif /* DOTDB_DVAL_H */
