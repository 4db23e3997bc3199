/*
 * query_int.h - internals shared by the query modules: lib/query.c
 * (filters), lib/query_order.c (qvalue_cmp, sort) and lib/query_proj.c
 * (projection).  Not part of any public interface.
 *
 * A compiled filter, sort or projection keeps its memory in one arena
 * (qarena): many small allocations at compile time, one free.  Paths are
 * split once into parts; a part remembers whether it is a canonical array
 * index ("0", "12"), the only spelling that can name an array element
 * (MongoDB compares the part with the element's field name "0", "1", ...).
 */
#ifndef DOTDB_QUERY_INT_H
#define DOTDB_QUERY_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/* ---- arena ---- */

typedef struct qarena_blk qarena_blk;
typedef struct qarena {
    qarena_blk *head; /* newest block first; owned */
} qarena;

/* Zeroed memory of n bytes aligned for any type, or NULL (out of memory).
 * Lives until qarena_free. */
void *qarena_alloc(qarena *a, size_t n);
/* Release every block; a becomes empty (may be reused).  NULL-safe. */
void qarena_free(qarena *a);

/* ---- paths ---- */

typedef struct qpart {
    const char *s; /* not NUL-terminated; points into the owner's copy */
    size_t len;
    int64_t idx;   /* canonical array index, or -1 */
} qpart;

typedef struct qpath {
    const char *full; /* the dotted path as written */
    size_t full_len;
    qpart *parts;     /* n >= 1 parts ("" is one empty part) */
    size_t n;
} qpath;

/* Split path s[0..len) at '.' into *out (parts in arena a; s must outlive
 * the result).  DOTDB_ENOMEM. */
int qpath_parse(qarena *a, const char *s, size_t len, qpath *out);

/* ---- order ---- */

/* The rank of v's type in MongoDB's order: 0 for the "undefined" marker
 * (QVAL_UNDEFINED, an empty array as a sort key), 1 null and missing,
 * 2 numbers, 3 strings, 4 objects, 5 arrays, 6 booleans. */
int qvalue_rank(codec_val v);
/* A marker value used only as a sort key: sorts before null and missing.
 * Never passed to codec_* functions (qvalue_cmp knows it). */
extern const codec_val QVAL_UNDEFINED;

/* ---- messages ---- */

/* snprintf into err (errlen bytes; err may be NULL). */
void qerr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* DOTDB_QUERY_INT_H */
