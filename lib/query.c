/*
 * query.c - MongoDB filters evaluated on encoded documents in place
 * (qfilter_match); a compiled filter (qfilter_compile) is read-only and
 * shared between threads.
 *
 * This file is the evaluator and the manual of the semantics; the compiler
 * is lib/query_compile.c and the compiled form lib/query_filter.h (a tree
 * of AND / OR / NOT / FALSE and PATH(path, operator, operand) nodes).
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
 *     yielded itself when the index ends the path.  Object elements are
 *     thus searched both ways, as MongoDB's matcher does: {"a.0": null}
 *     matches {a: [{x: 1}]} (no member "0" there is "missing"), while
 *     {"a.0": null} does not match {a: []} (nothing at all is yielded).
 *     Arrays nested in arrays are not entered by field names ({"a.b": 1}
 *     does not match {a: [[{b: 1}]]}; {"a.0.b": 1} does).
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
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include "query_filter.h"

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
