/*
 * query.c - MongoDB filters: compiled once (qfilter_compile), evaluated on
 * encoded documents in place (qfilter_match), read-only and shareable
 * between threads after compiling.
 *
 * Compiled form.  The encoded filter is copied once; every operand and
 * path in the compiled tree points into that copy.  The tree is made of
 * nodes in one arena:
 *   AND / OR / NOT / FALSE         logic ($and, $or, $nor = NOT(OR), $ne =
 *                                  NOT(EQ), $nin = NOT(IN), $not, $all: [])
 *   PATH(path, op, operand)        one operator on one dotted path
 * As in MongoDB, {a: {$gt: 1, $lt: 5}} is AND(PATH(a, $gt), PATH(a, $lt)):
 * each operator walks the path on its own, so with an array [0, 10] both
 * hold (different elements); $elemMatch asks for one element.
 *
 * Paths (MongoDB's rules, src/mongo/db/matcher/path.cpp, reimplemented).
 * Walking a path yields zero or more values, or "missing":
 *   - Through objects, member by member.  A missing member, or a scalar
 *     before the end of the path, yields "missing" (so {"a.b": null}
 *     matches {a: 5}).
 *   - When an array is met before the end of the path, each element that
 *     is an object continues the same remaining path; other elements
 *     yield nothing (so {"a.b": null} does not match {a: [1]}, while
 *     {a: [{c: 1}]} does).  When the next part is a canonical index ("0")
 *     the element at that index also continues with the part after it (an
 *     array element there keeps walking from that nested array), or is
 *     yielded itself when the index ends the path.  Arrays nested in
 *     arrays are not entered by field names ({"a.b": 1} does not match
 *     {a: [[{b: 1}]]}; {"a.0.b": 1} does).
 *   - An array at the end of the path reached through a member ("leaf
 *     array") is yielded together with its elements (one level): {a: 1}
 *     matches {a: [1, 2]}, {a: [1, 2]} matches it too, {a: 1} does not
 *     match {a: [[1]]}.  An element picked by an index ending the path is
 *     yielded alone ({"a.0": 1} does not match {a: [[1]]}).
 *   - $size and $elemMatch look at the leaf array itself only.
 * A PATH node holds when any yielded value satisfies its operator; a
 * negation ($ne, $nin, $not, $nor, $exists: false) holds when none does.
 *
 * Operators on one value ("missing" included):
 *   $eq v       equal (codec_equal: 1 == 1.0, objects in member order); a
 *               null operand also matches missing
 *   $gt $gte $lt $lte   only values of the operand's type bracket (numbers
 *               with numbers, strings with strings, ...; qvalue_cmp); a
 *               null operand: $gte/$lte match null and missing, $gt/$lt
 *               nothing
 *   $in [..]    $eq any element (binary search over a sorted copy when
 *               the list is long)
 *   $exists b   not missing (b: false, 0 and null mean false)
 *   $type t     by alias or BSON type code, or an array of them (below)
 *   $regex      strings only; PCRE2 (MongoDB uses PCRE), UTF-8 mode,
 *               $options i m s x (u accepted, always on)
 *   $mod [d, r] numbers; doubles truncate toward zero; d != 0
 *   $size n     an array of exactly n elements
 *   $elemMatch  an array with an element that matches: the query form
 *               ({$elemMatch: {a: 1, b: {$gt: 2}}}) on object (or array)
 *               elements, the operator form ({$elemMatch: {$gt: 1, $lt: 5}})
 *               on each element directly, with no further array expansion
 *   $all [..]   AND of $eq for each element ([] matches nothing), or AND
 *               of $elemMatch when the elements are {$elemMatch: ...}
 *
 * $type aliases: "double", "string", "object", "array", "bool", "null",
 * "int", "long", "number"; codes 1 double, 2 string, 3 object, 4 array,
 * 8 bool, 10 null, 16 int, 18 long.  DotDB stores every integer as an
 * int64, so "int" (16) and "long" (18) both match every integer; "number"
 * matches integers and doubles.  Types DotDB cannot hold (date, objectId,
 * decimal, ...) are errors rather than conditions that never hold.
 *
 * Regex and threads.  A compiled pattern is shared read-only; PCRE2
 * needs per-match scratch space (match data), kept one per thread
 * (pthread key, freed when the thread exits), so matching allocates only
 * the first time a thread matches.  Patterns are JIT-compiled when the
 * library supports it, else interpreted (and a match that overflows the
 * JIT stack is run again by the interpreter).  Hitting PCRE2's match,
 * depth or heap limits (or an allocation failure) counts as no match:
 * qfilter_match has no error path.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <assert.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dval.h"
#include "query.h"
#include "query_int.h"

/* ---- arena, paths, messages (shared with query_order.c, query_proj.c) ---- */

#define QARENA_BLOCK 4096

struct qarena_blk {
    qarena_blk *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
};

void *qarena_alloc(qarena *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    if (n == 0)
        n = align;
    qarena_blk *b = a->head;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > QARENA_BLOCK ? n : QARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (b == NULL)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

void qarena_free(qarena *a)
{
    if (a == NULL)
        return;
    while (a->head != NULL) {
        qarena_blk *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

static int64_t canonical_index(const char *s, size_t n)
{
    if (n == 0 || n > 18 || (n > 1 && s[0] == '0'))
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int qpath_parse(qarena *a, const char *s, size_t len, qpath *out)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '.';
    qpart *parts = qarena_alloc(a, n * sizeof *parts);
    if (parts == NULL)
        return DOTDB_ENOMEM;
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        parts[k].s = s + start;
        parts[k].len = i - start;
        parts[k].idx = canonical_index(s + start, i - start);
        k++;
        start = i + 1;
    }
    assert(k == n);
    *out = (qpath){s, len, parts, n};
    return DOTDB_OK;
}

void qerr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- compiled form ---- */

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

/* ---- per-thread PCRE2 match data ---- */

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t md_key;
static int md_key_ok;
static __thread pcre2_match_data *tl_md;

static void md_destroy(void *p)
{
    pcre2_match_data_free(p);
    tl_md = NULL;
}

static void md_init(void) { md_key_ok = pthread_key_create(&md_key, md_destroy) == 0; }

/* This thread's match data (one ovector pair is enough: only "does it
 * match" is asked), or NULL when it cannot be kept. */
static pcre2_match_data *thread_match_data(void)
{
    if (tl_md != NULL)
        return tl_md;
    if (pthread_once(&md_once, md_init) != 0 || !md_key_ok)
        return NULL;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (md == NULL)
        return NULL;
    if (pthread_setspecific(md_key, md) != 0) {
        pcre2_match_data_free(md);
        return NULL;
    }
    tl_md = md;
    return md;
}

static int regex_match(const pcre2_code *re, const char *s, size_t len)
{
    pcre2_match_data *md = thread_match_data();
    pcre2_match_data *own = NULL;
    if (md == NULL) {
        own = md = pcre2_match_data_create(1, NULL);
        if (md == NULL)
            return 0;
    }
    /* strings in the encoding are valid UTF-8 (codec_validate) */
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        /* past the JIT's 32 KiB stack: the interpreter keeps its
         * backtracking frames on the heap */
        rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
    }
    pcre2_match_data_free(own);
    return rc >= 0;
}

/* ---- evaluation ---- */

static int node_match_doc(const qnode *n, codec_val doc);
static int node_match_value(const qnode *n, codec_val v);

static int is_missing(codec_val v) { return v.p == NULL; }

static int eq_match(codec_val arg, int arg_is_null, codec_val v)
{
    if (is_missing(v))
        return arg_is_null;
    return codec_equal(v, arg);
}

static int cmp_match(const qnode *n, codec_val v)
{
    if (is_missing(v))
        return n->arg_is_null && (n->op == OP_GTE || n->op == OP_LTE);
    if (qvalue_rank(v) != qvalue_rank(n->arg))
        return 0;
    int c = qvalue_cmp(v, n->arg);
    switch (n->op) {
    case OP_GT:
        return c > 0;
    case OP_GTE:
        return c >= 0;
    case OP_LT:
        return c < 0;
    default:
        return c <= 0;
    }
}

static int in_match(const qnode *n, codec_val v)
{
    if (is_missing(v))
        return n->in_has_null;
    if (n->in_sorted != NULL) {
        size_t lo = 0, hi = n->in_n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = qvalue_cmp(n->in_sorted[mid], v);
            if (c == 0)
                return 1;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return 0;
    }
    for (size_t i = 0; i < n->in_n; i++) {
        codec_val e;
        codec_arr_at(n->arg, i, &e);
        if (codec_equal(v, e))
            return 1;
    }
    return 0;
}

/* MongoDB's numberLong(): doubles truncate toward zero, clamped. */
static int64_t number_as_int64(codec_val v)
{
    int64_t i;
    double d;
    if (codec_as_int64(v, &i))
        return i;
    codec_as_double(v, &d);
    if (d >= 9223372036854775808.0)
        return INT64_MAX;
    if (d < -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)d;
}

static int mod_match(const qnode *n, codec_val v)
{
    int t = codec_type(v);
    if (t != DOTDB_T_INT && t != DOTDB_T_DOUBLE)
        return 0;
    int64_t x = number_as_int64(v);
    /* INT64_MIN % -1 overflows in C; the remainder is 0 */
    int64_t r = n->mod_div == -1 ? 0 : x % n->mod_div;
    return r == n->mod_rem;
}

static int elem_match(const qnode *n, codec_val arr)
{
    size_t cnt = codec_count(arr);
    for (size_t i = 0; i < cnt; i++) {
        codec_val e;
        codec_arr_at(arr, i, &e);
        if (n->op == OP_ELEM_VAL) {
            if (node_match_value(n->sub, e))
                return 1;
        } else {
            int t = codec_type(e);
            if ((t == DOTDB_T_OBJECT || t == DOTDB_T_ARRAY) && node_match_doc(n->sub, e))
                return 1;
        }
    }
    return 0;
}

/* One operator on one value (MongoDB's matchesSingleElement). */
static int op_match(const qnode *n, codec_val v)
{
    switch (n->op) {
    case OP_EQ:
        return eq_match(n->arg, n->arg_is_null, v);
    case OP_GT:
    case OP_GTE:
    case OP_LT:
    case OP_LTE:
        return cmp_match(n, v);
    case OP_IN:
        return in_match(n, v);
    case OP_EXISTS:
        return !is_missing(v);
    default:
        break;
    }
    if (is_missing(v))
        return 0;
    int t = codec_type(v);
    switch (n->op) {
    case OP_TYPE:
        return (n->type_mask >> t) & 1u;
    case OP_REGEX: {
        const char *s;
        size_t len;
        return codec_as_string(v, &s, &len) && regex_match(n->re, s, len);
    }
    case OP_MOD:
        return mod_match(n, v);
    case OP_SIZE:
        return t == DOTDB_T_ARRAY && codec_count(v) == n->size;
    default: /* OP_ELEM_OBJ, OP_ELEM_VAL */
        return t == DOTDB_T_ARRAY && elem_match(n, v);
    }
}

/* A value yielded by the path walk; leaf arrays also offer their elements
 * to the operators that traverse them. */
static int yield(const qnode *n, codec_val v, int is_leaf_array)
{
    if (op_match(n, v))
        return 1;
    if (!is_leaf_array || n->op == OP_SIZE || n->op == OP_ELEM_OBJ || n->op == OP_ELEM_VAL)
        return 0;
    size_t cnt = codec_count(v);
    for (size_t i = 0; i < cnt; i++) {
        codec_val e;
        codec_arr_at(v, i, &e);
        if (op_match(n, e))
            return 1;
    }
    return 0;
}

/* Member `part` of ctx; ctx is an object, or (only as the root of a
 * query-form $elemMatch on an array element) an array whose members are
 * named "0", "1", ... */
static int ctx_get(codec_val ctx, const qpart *part, codec_val *out)
{
    if (codec_type(ctx) == DOTDB_T_ARRAY)
        return part->idx >= 0 && codec_arr_at(ctx, (size_t)part->idx, out);
    return codec_obj_get(ctx, part->s, part->len, out);
}

static int walk_array(const qnode *n, codec_val arr, size_t k);

/* The path from part i on, in the object (or array) ctx. */
static int walk_obj(const qnode *n, codec_val ctx, size_t i)
{
    const qpath *p = n->path;
    codec_val cur = ctx;
    for (;; i++) {
        codec_val v;
        if (!ctx_get(cur, &p->parts[i], &v))
            return yield(n, (codec_val){NULL, 0}, 0);
        int t = codec_type(v);
        if (t == DOTDB_T_ARRAY) {
            if (i + 1 == p->n)
                return yield(n, v, 1);
            return walk_array(n, v, i + 1);
        }
        if (i + 1 == p->n)
            return yield(n, v, 0);
        if (t != DOTDB_T_OBJECT)
            return yield(n, (codec_val){NULL, 0}, 0);
        cur = v;
    }
}

/* Array arr met with parts k.. still to walk (k < n). */
static int walk_array(const qnode *n, codec_val arr, size_t k)
{
    const qpath *p = n->path;
    const qpart *part = &p->parts[k];
    int last = k + 1 == p->n;
    size_t cnt = codec_count(arr);
    for (size_t i = 0; i < cnt; i++) {
        codec_val e;
        codec_arr_at(arr, i, &e);
        int t = codec_type(e);
        int at_index = part->idx >= 0 && (uint64_t)part->idx == i;
        if (t == DOTDB_T_OBJECT && walk_obj(n, e, k))
            return 1;
        if (!at_index)
            continue;
        if (last) {
            if (yield(n, e, 0))
                return 1;
        } else if (t == DOTDB_T_OBJECT) {
            if (walk_obj(n, e, k + 1))
                return 1;
        } else if (t == DOTDB_T_ARRAY) {
            if (walk_array(n, e, k + 1))
                return 1;
        }
    }
    return 0;
}

/* A node on a document (or, for query-form $elemMatch, an element). */
static int node_match_doc(const qnode *n, codec_val doc)
{
    switch (n->kind) {
    case QN_AND:
        for (size_t i = 0; i < n->nkids; i++)
            if (!node_match_doc(n->kids[i], doc))
                return 0;
        return 1;
    case QN_OR:
        for (size_t i = 0; i < n->nkids; i++)
            if (node_match_doc(n->kids[i], doc))
                return 1;
        return 0;
    case QN_NOT:
        return !node_match_doc(n->kids[0], doc);
    case QN_FALSE:
        return 0;
    default:
        assert(n->path != NULL);
        return walk_obj(n, doc, 0);
    }
}

/* A node on one value directly (operator-form $elemMatch): no path, no
 * array expansion. */
static int node_match_value(const qnode *n, codec_val v)
{
    switch (n->kind) {
    case QN_AND:
        for (size_t i = 0; i < n->nkids; i++)
            if (!node_match_value(n->kids[i], v))
                return 0;
        return 1;
    case QN_OR:
        for (size_t i = 0; i < n->nkids; i++)
            if (node_match_value(n->kids[i], v))
                return 1;
        return 0;
    case QN_NOT:
        return !node_match_value(n->kids[0], v);
    case QN_FALSE:
        return 0;
    default:
        return op_match(n, v);
    }
}

int qfilter_match(const qfilter *q, codec_val doc)
{
    if (q->is_all)
        return 1;
    return node_match_doc(q->root, doc);
}

int qfilter_is_all(const qfilter *q) { return q->is_all; }

/* ---- compilation ---- */

typedef struct qcc {
    qfilter *q;
    char *err;
    size_t errlen;
} qcc;

static qnode *new_node(qcc *c, int kind)
{
    qnode *n = qarena_alloc(&c->q->arena, sizeof *n);
    if (n != NULL)
        n->kind = kind;
    return n;
}

/* An AND / OR node with room for cap kids. */
static qnode *new_group(qcc *c, int kind, size_t cap)
{
    qnode *n = new_node(c, kind);
    if (n == NULL)
        return NULL;
    if (cap > 0 && (n->kids = qarena_alloc(&c->q->arena, cap * sizeof *n->kids)) == NULL)
        return NULL;
    return n;
}

static qnode *new_not(qcc *c, qnode *kid)
{
    qnode *n = new_group(c, QN_NOT, 1);
    if (n == NULL)
        return NULL;
    n->kids[0] = kid;
    n->nkids = 1;
    return n;
}

static qnode *new_path(qcc *c, const qpath *path, int op)
{
    qnode *n = new_node(c, QN_PATH);
    if (n != NULL) {
        n->path = path;
        n->op = op;
    }
    return n;
}

static int key_is(const char *k, size_t klen, const char *name)
{
    return strlen(name) == klen && memcmp(k, name, klen) == 0;
}

static int is_null(codec_val v) { return codec_type(v) == DOTDB_T_NULL; }

static int is_number(codec_val v)
{
    int t = codec_type(v);
    return t == DOTDB_T_INT || t == DOTDB_T_DOUBLE;
}

/* An object whose first key starts with '$' ({$gt: 1}), as opposed to a
 * literal object compared for equality ({a: 1}, {}). */
static int is_operator_object(codec_val v)
{
    const char *k;
    size_t klen;
    codec_val m;
    return codec_type(v) == DOTDB_T_OBJECT && codec_obj_at(v, 0, &k, &klen, &m) && klen > 0 &&
           k[0] == '$';
}

static int compile_filter(qcc *c, codec_val obj, qnode **out);
static int compile_ops(qcc *c, const qpath *path, codec_val obj, qnode **out);

static int enomem(void) { return DOTDB_ENOMEM; }

static int compile_eq(qcc *c, const qpath *path, codec_val v, qnode **out)
{
    qnode *n = new_path(c, path, OP_EQ);
    if (n == NULL)
        return enomem();
    n->arg = v;
    n->arg_is_null = is_null(v);
    *out = n;
    return DOTDB_OK;
}

static int compile_cmp(qcc *c, const qpath *path, int op, codec_val v, qnode **out)
{
    qnode *n = new_path(c, path, op);
    if (n == NULL)
        return enomem();
    n->arg = v;
    n->arg_is_null = is_null(v);
    *out = n;
    return DOTDB_OK;
}

static int cmp_vals(const void *x, const void *y)
{
    return qvalue_cmp(*(const codec_val *)x, *(const codec_val *)y);
}

static int compile_in(qcc *c, const qpath *path, const char *name, codec_val v, qnode **out)
{
    if (codec_type(v) != DOTDB_T_ARRAY) {
        qerr(c->err, c->errlen, "%s: needs an array", name);
        return DOTDB_EINVAL;
    }
    qnode *n = new_path(c, path, OP_IN);
    if (n == NULL)
        return enomem();
    n->arg = v;
    n->in_n = codec_count(v);
    for (size_t i = 0; i < n->in_n; i++) {
        codec_val e;
        codec_arr_at(v, i, &e);
        if (is_operator_object(e)) {
            qerr(c->err, c->errlen, "%s: operators are not allowed in the list (element %zu)",
                 name, i);
            return DOTDB_EINVAL;
        }
        n->in_has_null |= is_null(e);
    }
    if (n->in_n > IN_LINEAR_MAX) {
        codec_val *sorted = qarena_alloc(&c->q->arena, n->in_n * sizeof *sorted);
        if (sorted == NULL)
            return enomem();
        for (size_t i = 0; i < n->in_n; i++)
            codec_arr_at(v, i, &sorted[i]);
        qsort(sorted, n->in_n, sizeof *sorted, cmp_vals);
        n->in_sorted = sorted;
    }
    *out = n;
    return DOTDB_OK;
}

/* MongoDB's trueValue(): false, 0 and null are false. */
static int truthy(codec_val v)
{
    double d;
    switch (codec_type(v)) {
    case DOTDB_T_NULL:
        return 0;
    case DOTDB_T_BOOL:
        return v.p[0] == CODEC_TRUE;
    case DOTDB_T_INT:
    case DOTDB_T_DOUBLE:
        codec_as_double(v, &d);
        return d != 0;
    default:
        return 1;
    }
}

static int compile_exists(qcc *c, const qpath *path, codec_val v, qnode **out)
{
    qnode *n = new_path(c, path, OP_EXISTS);
    if (n == NULL)
        return enomem();
    if (!truthy(v) && (n = new_not(c, n)) == NULL)
        return enomem();
    *out = n;
    return DOTDB_OK;
}

#define TBIT(t) (1u << (t))

static const struct {
    const char *alias;
    int code;
    uint32_t mask;
} type_table[] = {
    {"double", 1, TBIT(DOTDB_T_DOUBLE)},
    {"string", 2, TBIT(DOTDB_T_STRING)},
    {"object", 3, TBIT(DOTDB_T_OBJECT)},
    {"array", 4, TBIT(DOTDB_T_ARRAY)},
    {"bool", 8, TBIT(DOTDB_T_BOOL)},
    {"null", 10, TBIT(DOTDB_T_NULL)},
    {"int", 16, TBIT(DOTDB_T_INT)},  /* every integer is an int64 in DotDB */
    {"long", 18, TBIT(DOTDB_T_INT)},
    {"number", 0, TBIT(DOTDB_T_INT) | TBIT(DOTDB_T_DOUBLE)},
};

/* One $type designator (alias or code) into *mask. */
static int type_one(qcc *c, codec_val v, uint32_t *mask)
{
    const char *s;
    size_t len;
    size_t nt = sizeof type_table / sizeof type_table[0];
    if (codec_as_string(v, &s, &len)) {
        for (size_t i = 0; i < nt; i++)
            if (key_is(s, len, type_table[i].alias)) {
                *mask |= type_table[i].mask;
                return DOTDB_OK;
            }
        qerr(c->err, c->errlen,
             "$type: unknown type alias '%.*s' (DotDB has double, string, object, array, bool, "
             "null, int, long, number)",
             (int)(len > 64 ? 64 : len), s);
        return DOTDB_EINVAL;
    }
    if (is_number(v)) {
        double d;
        codec_as_double(v, &d);
        for (size_t i = 0; i < nt; i++)
            if (type_table[i].code != 0 && d == type_table[i].code) {
                *mask |= type_table[i].mask;
                return DOTDB_OK;
            }
        qerr(c->err, c->errlen, "$type: unknown type code %g (DotDB has 1, 2, 3, 4, 8, 10, 16, 18)",
             d);
        return DOTDB_EINVAL;
    }
    qerr(c->err, c->errlen, "$type: needs a type alias, a type code or an array of them");
    return DOTDB_EINVAL;
}

static int compile_type(qcc *c, const qpath *path, codec_val v, qnode **out)
{
    uint32_t mask = 0;
    int rc;
    if (codec_type(v) == DOTDB_T_ARRAY) {
        size_t cnt = codec_count(v);
        if (cnt == 0) {
            qerr(c->err, c->errlen, "$type: the array of types is empty");
            return DOTDB_EINVAL;
        }
        for (size_t i = 0; i < cnt; i++) {
            codec_val e;
            codec_arr_at(v, i, &e);
            if (codec_type(e) == DOTDB_T_ARRAY) {
                qerr(c->err, c->errlen, "$type: needs a type alias, a type code or an array of them");
                return DOTDB_EINVAL;
            }
            if ((rc = type_one(c, e, &mask)) != DOTDB_OK)
                return rc;
        }
    } else if ((rc = type_one(c, v, &mask)) != DOTDB_OK) {
        return rc;
    }
    qnode *n = new_path(c, path, OP_TYPE);
    if (n == NULL)
        return enomem();
    n->type_mask = mask;
    *out = n;
    return DOTDB_OK;
}

/* A whole number (int, or a double without fraction) that fits int64. */
static int whole_number(codec_val v, int64_t *out)
{
    double d;
    if (codec_as_int64(v, out))
        return 1;
    if (codec_type(v) != DOTDB_T_DOUBLE)
        return 0;
    codec_as_double(v, &d);
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || (double)(int64_t)d != d)
        return 0;
    *out = (int64_t)d;
    return 1;
}

static int compile_size(qcc *c, const qpath *path, codec_val v, qnode **out)
{
    int64_t n64;
    if (!whole_number(v, &n64) || n64 < 0) {
        qerr(c->err, c->errlen, "$size: needs a non-negative integer");
        return DOTDB_EINVAL;
    }
    qnode *n = new_path(c, path, OP_SIZE);
    if (n == NULL)
        return enomem();
    n->size = (uint64_t)n64;
    *out = n;
    return DOTDB_OK;
}

/* $mod operands: ints, or doubles truncated toward zero (as MongoDB). */
static int mod_operand(codec_val v, int64_t *out)
{
    double d;
    if (codec_as_int64(v, out))
        return 1;
    if (codec_type(v) != DOTDB_T_DOUBLE)
        return 0;
    codec_as_double(v, &d);
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return 0;
    *out = (int64_t)d;
    return 1;
}

static int compile_mod(qcc *c, const qpath *path, codec_val v, qnode **out)
{
    codec_val d, r;
    int64_t div, rem;
    if (codec_type(v) != DOTDB_T_ARRAY || codec_count(v) != 2) {
        qerr(c->err, c->errlen, "$mod: needs an array [divisor, remainder]");
        return DOTDB_EINVAL;
    }
    codec_arr_at(v, 0, &d);
    codec_arr_at(v, 1, &r);
    if (!mod_operand(d, &div) || !mod_operand(r, &rem)) {
        qerr(c->err, c->errlen, "$mod: divisor and remainder must be numbers in the int64 range");
        return DOTDB_EINVAL;
    }
    if (div == 0) {
        qerr(c->err, c->errlen, "$mod: divisor cannot be 0");
        return DOTDB_EINVAL;
    }
    qnode *n = new_path(c, path, OP_MOD);
    if (n == NULL)
        return enomem();
    n->mod_div = div;
    n->mod_rem = rem;
    *out = n;
    return DOTDB_OK;
}

static int compile_regex(qcc *c, const qpath *path, codec_val re, codec_val opts, qnode **out)
{
    const char *pat, *o = "";
    size_t plen, olen = 0;
    if (!codec_as_string(re, &pat, &plen)) {
        qerr(c->err, c->errlen, "$regex: needs a string");
        return DOTDB_EINVAL;
    }
    if (opts.p != NULL && !codec_as_string(opts, &o, &olen)) {
        qerr(c->err, c->errlen, "$options: needs a string");
        return DOTDB_EINVAL;
    }
    uint32_t flags = PCRE2_UTF;
    for (size_t i = 0; i < olen; i++) {
        switch (o[i]) {
        case 'i': flags |= PCRE2_CASELESS; break;
        case 'm': flags |= PCRE2_MULTILINE; break;
        case 's': flags |= PCRE2_DOTALL; break;
        case 'x': flags |= PCRE2_EXTENDED; break;
        case 'u': break; /* UTF-8 is always on */
        default:
            qerr(c->err, c->errlen, "$options: unknown option '%c' (use i, m, s, x)", o[i]);
            return DOTDB_EINVAL;
        }
    }
    qnode *n = new_path(c, path, OP_REGEX);
    qregex *holder = qarena_alloc(&c->q->arena, sizeof *holder);
    if (n == NULL || holder == NULL)
        return enomem();
    int code;
    PCRE2_SIZE off;
    pcre2_code *re_code = pcre2_compile((PCRE2_SPTR)pat, plen, flags, &code, &off, NULL);
    if (re_code == NULL) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", code);
        if (code == PCRE2_ERROR_NOMEMORY)
            return enomem();
        qerr(c->err, c->errlen, "$regex: invalid pattern '%.*s': %s at offset %zu",
             (int)(plen > 64 ? 64 : plen), pat, (const char *)msg, (size_t)off);
        return DOTDB_EINVAL;
    }
    /* JIT when available; a failure (no JIT support, no executable
     * memory) leaves the interpreter, which pcre2_match uses then */
    (void)pcre2_jit_compile(re_code, PCRE2_JIT_COMPLETE);
    holder->code = re_code;
    holder->next = c->q->regexes;
    c->q->regexes = holder;
    n->re = re_code;
    *out = n;
    return DOTDB_OK;
}

static int compile_elem_match(qcc *c, const qpath *path, codec_val v, qnode **out)
{
    int rc;
    if (codec_type(v) != DOTDB_T_OBJECT) {
        qerr(c->err, c->errlen, "$elemMatch: needs an object");
        return DOTDB_EINVAL;
    }
    const char *k = NULL;
    size_t klen = 0;
    codec_val m;
    codec_obj_at(v, 0, &k, &klen, &m);
    int value_form = is_operator_object(v) && !key_is(k, klen, "$and") &&
                     !key_is(k, klen, "$or") && !key_is(k, klen, "$nor") &&
                     !key_is(k, klen, "$comment");
    qnode *n = new_path(c, path, value_form ? OP_ELEM_VAL : OP_ELEM_OBJ);
    if (n == NULL)
        return enomem();
    if (value_form)
        rc = compile_ops(c, NULL, v, &n->sub);
    else
        rc = compile_filter(c, v, &n->sub);
    if (rc != DOTDB_OK)
        return rc;
    *out = n;
    return DOTDB_OK;
}

static int compile_all(qcc *c, const qpath *path, codec_val v, qnode **out)
{
    int rc;
    if (codec_type(v) != DOTDB_T_ARRAY) {
        qerr(c->err, c->errlen, "$all: needs an array");
        return DOTDB_EINVAL;
    }
    size_t cnt = codec_count(v);
    if (cnt == 0) { /* MongoDB: an empty $all matches nothing */
        *out = new_node(c, QN_FALSE);
        return *out != NULL ? DOTDB_OK : enomem();
    }
    qnode *and = new_group(c, QN_AND, cnt);
    if (and == NULL)
        return enomem();
    and->from_all = 1;
    int elem_form = -1;
    for (size_t i = 0; i < cnt; i++) {
        codec_val e, sub;
        codec_arr_at(v, i, &e);
        int is_em = codec_type(e) == DOTDB_T_OBJECT && codec_count(e) == 1 &&
                    codec_obj_get(e, "$elemMatch", 10, &sub);
        if (elem_form == -1)
            elem_form = is_em;
        if (is_em != elem_form) {
            qerr(c->err, c->errlen, "$all: cannot mix $elemMatch and plain values");
            return DOTDB_EINVAL;
        }
        if (is_em)
            rc = compile_elem_match(c, path, sub, &and->kids[i]);
        else if (is_operator_object(e)) {
            qerr(c->err, c->errlen, "$all: only $elemMatch may appear as an operator (element %zu)",
                 i);
            return DOTDB_EINVAL;
        } else
            rc = compile_eq(c, path, e, &and->kids[i]);
        if (rc != DOTDB_OK)
            return rc;
        and->nkids++;
    }
    *out = and;
    return DOTDB_OK;
}

static int compile_not(qcc *c, const qpath *path, codec_val v, qnode **out)
{
    qnode *inner;
    if (codec_type(v) != DOTDB_T_OBJECT) {
        qerr(c->err, c->errlen, "$not: needs an operator document or a $regex");
        return DOTDB_EINVAL;
    }
    if (codec_count(v) == 0) {
        qerr(c->err, c->errlen, "$not: cannot be empty");
        return DOTDB_EINVAL;
    }
    if (!is_operator_object(v)) {
        const char *k;
        size_t klen;
        codec_val m;
        codec_obj_at(v, 0, &k, &klen, &m);
        qerr(c->err, c->errlen, "$not: needs operators, not a field ('%.*s')",
             (int)(klen > 64 ? 64 : klen), k);
        return DOTDB_EINVAL;
    }
    int rc = compile_ops(c, path, v, &inner);
    if (rc != DOTDB_OK)
        return rc;
    *out = new_not(c, inner);
    return *out != NULL ? DOTDB_OK : enomem();
}

/* An operator object {$gt: 1, $lt: 5} on path (NULL inside an
 * operator-form $elemMatch): one node per operator, ANDed. */
static int compile_ops(qcc *c, const qpath *path, codec_val obj, qnode **out)
{
    size_t cnt = codec_count(obj);
    qnode *and = new_group(c, QN_AND, cnt);
    if (and == NULL)
        return enomem();
    codec_val re = {NULL, 0}, opts = {NULL, 0};
    for (size_t i = 0; i < cnt; i++) {
        const char *k;
        size_t klen;
        codec_val v;
        qnode *kid = NULL;
        int rc;
        codec_obj_at(obj, i, &k, &klen, &v);
        if (klen == 0 || k[0] != '$') {
            qerr(c->err, c->errlen, "unknown operator: '%.*s' (operators and values cannot be mixed)",
                 (int)(klen > 64 ? 64 : klen), k);
            return DOTDB_EINVAL;
        }
        if (key_is(k, klen, "$eq"))
            rc = compile_eq(c, path, v, &kid);
        else if (key_is(k, klen, "$ne")) {
            rc = compile_eq(c, path, v, &kid);
            if (rc == DOTDB_OK && (kid = new_not(c, kid)) == NULL)
                rc = enomem();
        } else if (key_is(k, klen, "$gt"))
            rc = compile_cmp(c, path, OP_GT, v, &kid);
        else if (key_is(k, klen, "$gte"))
            rc = compile_cmp(c, path, OP_GTE, v, &kid);
        else if (key_is(k, klen, "$lt"))
            rc = compile_cmp(c, path, OP_LT, v, &kid);
        else if (key_is(k, klen, "$lte"))
            rc = compile_cmp(c, path, OP_LTE, v, &kid);
        else if (key_is(k, klen, "$in"))
            rc = compile_in(c, path, "$in", v, &kid);
        else if (key_is(k, klen, "$nin")) {
            rc = compile_in(c, path, "$nin", v, &kid);
            if (rc == DOTDB_OK && (kid = new_not(c, kid)) == NULL)
                rc = enomem();
        } else if (key_is(k, klen, "$exists"))
            rc = compile_exists(c, path, v, &kid);
        else if (key_is(k, klen, "$type"))
            rc = compile_type(c, path, v, &kid);
        else if (key_is(k, klen, "$all"))
            rc = compile_all(c, path, v, &kid);
        else if (key_is(k, klen, "$size"))
            rc = compile_size(c, path, v, &kid);
        else if (key_is(k, klen, "$elemMatch"))
            rc = compile_elem_match(c, path, v, &kid);
        else if (key_is(k, klen, "$not"))
            rc = compile_not(c, path, v, &kid);
        else if (key_is(k, klen, "$mod"))
            rc = compile_mod(c, path, v, &kid);
        else if (key_is(k, klen, "$regex")) {
            re = v; /* compiled below, with $options wherever it is */
            continue;
        } else if (key_is(k, klen, "$options")) {
            opts = v;
            continue;
        } else {
            qerr(c->err, c->errlen, "unknown operator: %.*s", (int)(klen > 64 ? 64 : klen), k);
            return DOTDB_EINVAL;
        }
        if (rc != DOTDB_OK)
            return rc;
        and->kids[and->nkids++] = kid;
    }
    if (opts.p != NULL && re.p == NULL) {
        qerr(c->err, c->errlen, "$options: needs a $regex");
        return DOTDB_EINVAL;
    }
    if (re.p != NULL) {
        int rc = compile_regex(c, path, re, opts, &and->kids[and->nkids]);
        if (rc != DOTDB_OK)
            return rc;
        and->nkids++;
    }
    *out = and->nkids == 1 ? and->kids[0] : and;
    return DOTDB_OK;
}

/* $and / $or / $nor: a non-empty array of filter objects. */
static int compile_logical(qcc *c, const char *name, codec_val v, qnode **out)
{
    if (codec_type(v) != DOTDB_T_ARRAY || codec_count(v) == 0) {
        qerr(c->err, c->errlen, "%s: needs a non-empty array", name);
        return DOTDB_EINVAL;
    }
    size_t cnt = codec_count(v);
    int is_and = strcmp(name, "$and") == 0;
    qnode *g = new_group(c, is_and ? QN_AND : QN_OR, cnt);
    if (g == NULL)
        return enomem();
    for (size_t i = 0; i < cnt; i++) {
        codec_val e;
        codec_arr_at(v, i, &e);
        if (codec_type(e) != DOTDB_T_OBJECT) {
            qerr(c->err, c->errlen, "%s: element %zu is not an object", name, i);
            return DOTDB_EINVAL;
        }
        int rc = compile_filter(c, e, &g->kids[i]);
        if (rc != DOTDB_OK)
            return rc;
        g->nkids++;
    }
    if (strcmp(name, "$nor") == 0 && (g = new_not(c, g)) == NULL)
        return enomem();
    *out = g;
    return DOTDB_OK;
}

/* A query object {field: value-or-operators, $and: [...], ...}: AND. */
static int compile_filter(qcc *c, codec_val obj, qnode **out)
{
    size_t cnt = codec_count(obj);
    qnode *and = new_group(c, QN_AND, cnt);
    if (and == NULL)
        return enomem();
    for (size_t i = 0; i < cnt; i++) {
        const char *k;
        size_t klen;
        codec_val v;
        int rc;
        codec_obj_at(obj, i, &k, &klen, &v);
        if (klen > 0 && k[0] == '$') {
            if (key_is(k, klen, "$and"))
                rc = compile_logical(c, "$and", v, &and->kids[and->nkids]);
            else if (key_is(k, klen, "$or"))
                rc = compile_logical(c, "$or", v, &and->kids[and->nkids]);
            else if (key_is(k, klen, "$nor"))
                rc = compile_logical(c, "$nor", v, &and->kids[and->nkids]);
            else if (key_is(k, klen, "$comment"))
                continue;
            else {
                qerr(c->err, c->errlen, "unknown top level operator: %.*s",
                     (int)(klen > 64 ? 64 : klen), k);
                return DOTDB_EINVAL;
            }
        } else {
            qpath *path = qarena_alloc(&c->q->arena, sizeof *path);
            if (path == NULL || qpath_parse(&c->q->arena, k, klen, path) != DOTDB_OK)
                return enomem();
            if (is_operator_object(v))
                rc = compile_ops(c, path, v, &and->kids[and->nkids]);
            else
                rc = compile_eq(c, path, v, &and->kids[and->nkids]);
        }
        if (rc != DOTDB_OK)
            return rc;
        and->nkids++;
    }
    *out = and;
    return DOTDB_OK;
}

static int node_is_all(const qnode *n)
{
    if (n->kind != QN_AND)
        return 0;
    for (size_t i = 0; i < n->nkids; i++)
        if (!node_is_all(n->kids[i]))
            return 0;
    return 1;
}

int qfilter_compile(codec_val f, qfilter **out, char *err, size_t errlen)
{
    *out = NULL;
    if (f.p == NULL || codec_type(f) != DOTDB_T_OBJECT) {
        qerr(err, errlen, "the filter must be an object");
        return DOTDB_EINVAL;
    }
    qfilter *q = calloc(1, sizeof *q);
    if (q == NULL || (q->src = malloc(f.len)) == NULL) {
        free(q);
        return DOTDB_ENOMEM;
    }
    memcpy(q->src, f.p, f.len);
    q->src_len = f.len;
    qcc c = {q, err, errlen};
    int rc = compile_filter(&c, (codec_val){q->src, f.len}, &q->root);
    if (rc != DOTDB_OK) {
        if (rc == DOTDB_ENOMEM)
            qerr(err, errlen, "out of memory compiling the filter");
        qfilter_free(q);
        return rc;
    }
    q->is_all = node_is_all(q->root);
    *out = q;
    return DOTDB_OK;
}

void qfilter_free(qfilter *q)
{
    if (q == NULL)
        return;
    for (qregex *r = q->regexes; r != NULL; r = r->next)
        pcre2_code_free(r->code);
    qarena_free(&q->arena);
    free(q->src);
    free(q);
}

/* ---- equality conditions at top level (primary index, upsert seeds) ---- */

/* Calls fn on every PATH $eq node reachable from n through ANDs that come
 * from the top level, $and or operator objects (not $all); stops at the
 * first non-zero return. */
static int each_top_eq(const qnode *n, int (*fn)(const qnode *, void *), void *arg)
{
    if (n->kind == QN_PATH)
        return n->op == OP_EQ ? fn(n, arg) : 0;
    if (n->kind != QN_AND || n->from_all)
        return 0;
    for (size_t i = 0; i < n->nkids; i++) {
        int rc = each_top_eq(n->kids[i], fn, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

typedef struct id_find {
    const char *id;
    size_t len;
} id_find;

static int find_id(const qnode *n, void *arg)
{
    id_find *f = arg;
    if (n->path->n != 1 || !key_is(n->path->full, n->path->full_len, "id"))
        return 0;
    return codec_as_string(n->arg, &f->id, &f->len);
}

int qfilter_id_eq(const qfilter *q, const char **id, size_t *id_len)
{
    id_find f = {NULL, 0};
    *id = NULL;
    *id_len = 0;
    if (!each_top_eq(q->root, find_id, &f))
        return 0;
    *id = f.id;
    *id_len = f.len;
    return 1;
}

typedef struct seed_ctx {
    dval root;
    const qpath **seen; /* paths set so far, for conflicts */
    size_t nseen, cap;
    int rc;
} seed_ctx;

/* 1 when one path is a prefix of the other (by parts), or both equal. */
static int paths_overlap(const qpath *a, const qpath *b)
{
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++)
        if (a->parts[i].len != b->parts[i].len ||
            memcmp(a->parts[i].s, b->parts[i].s, a->parts[i].len) != 0)
            return 0;
    return 1;
}

static int seed_one(const qnode *n, void *arg)
{
    seed_ctx *s = arg;
    for (size_t i = 0; i < s->nseen; i++)
        if (paths_overlap(s->seen[i], n->path)) {
            s->rc = DOTDB_EINVAL; /* MongoDB: "path is matched twice" */
            return 1;
        }
    if (s->nseen == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        const qpath **p = realloc(s->seen, cap * sizeof *p);
        if (p == NULL) {
            s->rc = DOTDB_ENOMEM;
            return 1;
        }
        s->seen = p;
        s->cap = cap;
    }
    s->seen[s->nseen++] = n->path;
    dval v;
    int rc = dval_from_codec(n->arg, &v);
    if (rc == DOTDB_OK) {
        rc = dval_path_set(&s->root, n->path->full, n->path->full_len, &v, NULL, 0);
        dval_free(&v);
    }
    if (rc != DOTDB_OK) {
        s->rc = rc;
        return 1;
    }
    return 0;
}

int qfilter_seed(const qfilter *q, dbuf *out)
{
    seed_ctx s = {dval_object(), NULL, 0, 0, DOTDB_OK};
    each_top_eq(q->root, seed_one, &s);
    int rc = s.rc;
    if (rc == DOTDB_OK)
        rc = dval_encode(&s.root, out);
    dval_free(&s.root);
    free(s.seen);
    return rc;
}
