/*
 * query_filter.h - the compiled form of a filter, shared by the compiler
 * (lib/query_compile.c) and the evaluator (lib/query.c).  Internal.
 *
 * The encoded filter is copied once (qfilter.src); every operand and path
 * in the tree points into that copy.  Nodes live in the filter's arena:
 *   AND / OR / NOT / FALSE         logic ($and, $or, $nor = NOT(OR), $ne =
 *                                  NOT(EQ), $nin = NOT(IN), $not, $all: [])
 *   PATH(path, op, operand)        one operator on one dotted path
 * After qfilter_compile returns, nothing in the tree is written again: the
 * evaluator only reads, so threads share a compiled filter freely (PCRE2
 * patterns included: pcre2_match only reads the code).
 */
#ifndef DOTDB_QUERY_FILTER_H
#define DOTDB_QUERY_FILTER_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif

#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "query.h"
#include "query_int.h"

enum qkind { QN_AND, QN_OR, QN_NOT, QN_FALSE, QN_PATH };

enum qop {
    OP_EQ,
    OP_GT,
    OP_GTE,
    OP_LT,
    OP_LTE,
    OP_IN,
    OP_EXISTS,
    OP_TYPE,
    OP_REGEX,
    OP_MOD,
    OP_SIZE,
    OP_ELEM_OBJ, /* $elemMatch, query form: sub is a filter */
    OP_ELEM_VAL, /* $elemMatch, operator form: sub's conditions on each element */
};

typedef struct qnode qnode;
struct qnode {
    int kind;          /* enum qkind */
    int op;            /* enum qop, QN_PATH only */
    int from_all;      /* an AND made by $all (not an equality for seeds) */
    const qpath *path; /* QN_PATH; NULL inside an operator-form $elemMatch */
    qnode **kids;      /* AND, OR: nkids; NOT: 1 */
    size_t nkids;
    codec_val arg;     /* EQ, GT..LTE, IN (the array) */
    int arg_is_null;   /* EQ, GT..LTE: arg is null (matches missing too) */
    const codec_val *in_sorted; /* IN: elements sorted by qvalue_cmp, or NULL */
    size_t in_n;
    int in_has_null;
    uint32_t type_mask; /* TYPE: bits 1 << DOTDB_T_* */
    pcre2_code *re;     /* REGEX: owned through qfilter.regexes */
    int64_t mod_div, mod_rem;
    uint64_t size;      /* SIZE */
    qnode *sub;         /* ELEM_OBJ: filter root; ELEM_VAL: AND of conditions */
};

typedef struct qregex qregex;
struct qregex {
    pcre2_code *code;
    qregex *next;
};

struct qfilter {
    qarena arena;
    uint8_t *src;       /* copy of the encoded filter */
    size_t src_len;
    qnode *root;
    qregex *regexes;    /* compiled patterns to free */
    int is_all;
};

/* $in lists longer than this are sorted at compile time and searched. */
#define IN_LINEAR_MAX 8

#endif /* DOTDB_QUERY_FILTER_H */
