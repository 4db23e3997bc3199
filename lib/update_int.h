/*
 * update_int.h - the compiled form of an update document, shared by
 * update.c (compiling, checking paths, the apply driver) and update_ops.c
 * (what each operator does to a dval tree).  Internal to those two files.
 *
 * A compiled spec owns copies of everything (paths, operand values as dval
 * trees), so the encoded update may be freed after update_compile, and it
 * is never written by update_apply: several threads may apply one spec.
 */
#ifndef DOTDB_UPDATE_INT_H
#define DOTDB_UPDATE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dval.h"
#include "update.h"

enum upd_kind {
    UOP_SET, UOP_UNSET, UOP_INC, UOP_MUL, UOP_MIN, UOP_MAX, UOP_RENAME, UOP_PUSH, UOP_PULL,
    UOP_ADDTOSET, UOP_POP, UOP_CURRENTDATE, UOP_COUNT
};

/* Comparison operators of $pull conditions. */
enum upd_cmp { UC_EQ, UC_NE, UC_GT, UC_GTE, UC_LT, UC_LTE, UC_IN, UC_NIN };

typedef struct upd_cond {
    int op;  /* enum upd_cmp */
    dval v;  /* the operand; an array for UC_IN / UC_NIN */
} upd_cond;

/* One field of a $pull condition: path NULL tests the element itself (a
 * plain value, or {"$gte": 6}); otherwise the element must be an object and
 * path is looked up inside it ({"score": {"$lt": 5}, "item": "B"}). */
typedef struct upd_pull_field {
    char *path;
    size_t plen;
    upd_cond *conds; /* all must hold */
    size_t nconds;
} upd_pull_field;

typedef struct upd_op {
    int kind;         /* enum upd_kind */
    char *path;       /* owned, NUL-terminated */
    size_t plen;
    char *to;         /* $rename: the target path */
    size_t tolen;
    dval arg;         /* $set/$min/$max value, $inc/$mul number; $push and
                         $addToSet: the array of values to add */
    int has_slice, has_position;
    int64_t slice, position;       /* $push modifiers */
    int pop_first;                 /* $pop: -1 removes the first element */
    int is_timestamp;              /* $currentDate {"$type": "timestamp"} */
    upd_pull_field *pull;          /* $pull: all fields must match */
    size_t npull;
    int pull_doc;                  /* $pull matches object elements by field */
} upd_op;

struct upd_spec {
    int is_replacement;
    dval repl;        /* replacement: its members without "id" */
    dval repl_id;     /* replacement: its "id" (DV_NULL when absent) */
    upd_op *ops;      /* operators, sorted by path (the order they apply) */
    size_t nops;
};

/* Operator names, indexed by enum upd_kind ("$set", ...). */
extern const char *const upd_op_names[UOP_COUNT];

/* Type name of a dval for messages ("string", "int", ...). */
const char *upd_type_name(const dval *v);

/* Apply one operator to doc (a DV_OBJECT).  now_ms as in update_apply.
 * DOTDB_EINVAL with a message naming the operator and the field,
 * DOTDB_ENOMEM.  On failure doc may be partly changed: the caller drops
 * the whole tree. */
int upd_apply_op(const upd_op *op, dval *doc, int64_t now_ms, char *err, size_t errlen);

#endif /* DOTDB_UPDATE_INT_H */
