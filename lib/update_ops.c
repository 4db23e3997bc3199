/*
 * update_ops.c - what each update operator does to a document tree
 * (MongoDB semantics; the compiled operands come from update.c).
 *
 * Numbers: int op int stays int and fails on int64 overflow (MongoDB
 * refuses too, rather than wrapping or silently turning into a double);
 * anything with a double gives a double, which must stay finite.  $min and
 * $max compare across types in MongoDB's order (dval_cmp).
 *
 * Each function works on the caller's private copy of the document, so a
 * failure half-way needs no undo: update_apply drops the whole tree.
 */
#include "update_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int nomem(char *err, size_t errlen)
{
    return fail(err, errlen, DOTDB_ENOMEM, "out of memory");
}

static const char *opname(const upd_op *op) { return upd_op_names[op->kind]; }

/* Set op's path (or `path` when not NULL) to *v, moved in.  On failure *v
 * is freed and err says why, prefixed with the operator. */
static int set_at(const upd_op *op, dval *doc, const char *path, size_t plen, dval *v, char *err,
                  size_t errlen)
{
    char why[160];
    int rc = dval_path_set(doc, path, plen, v, why, sizeof why);
    if (rc == DOTDB_OK)
        return DOTDB_OK;
    dval_free(v);
    if (rc == DOTDB_ENOMEM)
        return nomem(err, errlen);
    return fail(err, errlen, rc, "%s: %s", opname(op), why);
}

static int set_copy(const upd_op *op, dval *doc, const dval *src, char *err, size_t errlen)
{
    dval v;
    if (dval_copy(src, &v) != DOTDB_OK)
        return nomem(err, errlen);
    return set_at(op, doc, op->path, op->plen, &v, err, errlen);
}

/* Replace *cur (inside the tree) with a copy of src. */
static int replace_copy(dval *cur, const dval *src, char *err, size_t errlen)
{
    dval v;
    if (dval_copy(src, &v) != DOTDB_OK)
        return nomem(err, errlen);
    dval_free(cur);
    *cur = v;
    return DOTDB_OK;
}

static int wrong_type(const upd_op *op, const dval *cur, const char *want, char *err,
                      size_t errlen)
{
    return fail(err, errlen, DOTDB_EINVAL, "%s: cannot apply to %s field '%s' (%s)", opname(op),
                want, op->path, upd_type_name(cur));
}

/* ---- $inc $mul $min $max -------------------------------------------------- */

static int is_num(const dval *v) { return v->type == DV_INT || v->type == DV_DOUBLE; }
static double num_d(const dval *v) { return v->type == DV_INT ? (double)v->u.i : v->u.d; }

static int arith(const upd_op *op, dval *doc, char *err, size_t errlen)
{
    int is_inc = op->kind == UOP_INC;
    dval *cur = dval_path_get(doc, op->path, op->plen);
    if (cur == NULL) {
        /* $inc creates the field with the amount, $mul with a zero of the
         * multiplier's type (MongoDB) */
        dval v = is_inc ? op->arg : op->arg.type == DV_INT ? dval_int(0) : dval_double(0.0);
        return set_at(op, doc, op->path, op->plen, &v, err, errlen);
    }
    if (!is_num(cur))
        return wrong_type(op, cur, "non-numeric", err, errlen);
    if (cur->type == DV_INT && op->arg.type == DV_INT) {
        int64_t r;
        int over = is_inc ? __builtin_add_overflow(cur->u.i, op->arg.u.i, &r)
                          : __builtin_mul_overflow(cur->u.i, op->arg.u.i, &r);
        if (over)
            return fail(err, errlen, DOTDB_EINVAL,
                        "%s: integer overflow on field '%s' (%lld %c %lld does not fit 64 bits)",
                        opname(op), op->path, (long long)cur->u.i, is_inc ? '+' : '*',
                        (long long)op->arg.u.i);
        cur->u.i = r;
        return DOTDB_OK;
    }
    double r = is_inc ? num_d(cur) + num_d(&op->arg) : num_d(cur) * num_d(&op->arg);
    if (!isfinite(r))
        return fail(err, errlen, DOTDB_EINVAL, "%s: result for field '%s' is not a finite number",
                    opname(op), op->path);
    *cur = dval_double(r);
    return DOTDB_OK;
}

static int minmax(const upd_op *op, dval *doc, char *err, size_t errlen)
{
    dval *cur = dval_path_get(doc, op->path, op->plen);
    if (cur == NULL)
        return set_copy(op, doc, &op->arg, err, errlen);
    int c = dval_cmp(&op->arg, cur);
    if ((op->kind == UOP_MIN && c < 0) || (op->kind == UOP_MAX && c > 0))
        return replace_copy(cur, &op->arg, err, errlen);
    return DOTDB_OK;
}

/* ---- $rename -------------------------------------------------------------- */

/* 1 when walking path through doc passes through an array (MongoDB's
 * $rename does not reach into arrays). */
static int crosses_array(const dval *doc, const char *path, size_t plen)
{
    const dval *cur = doc;
    size_t start = 0;
    for (size_t i = 0; i <= plen && cur != NULL; i++) {
        if (i < plen && path[i] != '.')
            continue;
        if (cur->type == DV_ARRAY)
            return 1;
        cur = dval_obj_get(cur, path + start, i - start);
        start = i + 1;
    }
    return 0;
}

static int rename_field(const upd_op *op, dval *doc, char *err, size_t errlen)
{
    if (crosses_array(doc, op->path, op->plen))
        return fail(err, errlen, DOTDB_EINVAL,
                    "$rename: source field '%s' cannot be inside an array", op->path);
    if (crosses_array(doc, op->to, op->tolen))
        return fail(err, errlen, DOTDB_EINVAL,
                    "$rename: target field '%s' cannot be inside an array", op->to);
    const char *dot = memrchr(op->path, '.', op->plen);
    dval *parent = dot ? dval_path_get(doc, op->path, (size_t)(dot - op->path)) : doc;
    const char *key = dot ? dot + 1 : op->path;
    size_t klen = op->plen - (size_t)(key - op->path);
    dval *src = dval_obj_get(parent, key, klen);
    if (src == NULL)
        return DOTDB_OK; /* nothing to rename */
    dval v = *src;
    *src = dval_null();
    dval_obj_remove(parent, key, klen);
    return set_at(op, doc, op->to, op->tolen, &v, err, errlen);
}

/* ---- Arrays --------------------------------------------------------------- */

/* The array at op's path for an array operator: *arr NULL when missing.
 * A present non-array is an error. */
static int get_array(const upd_op *op, dval *doc, dval **arr, char *err, size_t errlen)
{
    *arr = dval_path_get(doc, op->path, op->plen);
    if (*arr != NULL && (*arr)->type != DV_ARRAY)
        return wrong_type(op, *arr, "non-array", err, errlen);
    return DOTDB_OK;
}

/* Free elements [from, to) of arr and close the gap. */
static void arr_drop(dval *arr, size_t from, size_t to)
{
    dval *e = arr->u.arr.v;
    for (size_t i = from; i < to; i++)
        dval_free(&e[i]);
    memmove(e + from, e + to, (arr->u.arr.n - to) * sizeof *e);
    arr->u.arr.n -= to - from;
}

static int push(const upd_op *op, dval *doc, char *err, size_t errlen)
{
    dval *arr, fresh = dval_array();
    int rc = get_array(op, doc, &arr, err, errlen);
    if (rc != DOTDB_OK)
        return rc;
    dval *a = arr ? arr : &fresh;
    size_t n = a->u.arr.n, pos = n;
    if (op->has_position) {
        int64_t p = op->position;
        if (p < 0)
            pos = (uint64_t)-(p + 1) + 1 >= n ? 0 : n - ((uint64_t)-(p + 1) + 1);
        else
            pos = (uint64_t)p < n ? (size_t)p : n;
    }
    for (size_t i = 0; i < op->arg.u.arr.n; i++) {
        dval v;
        if (dval_copy(&op->arg.u.arr.v[i], &v) != DOTDB_OK ||
            dval_arr_insert(a, pos + i, &v) != DOTDB_OK) {
            dval_free(&v);
            rc = nomem(err, errlen);
            goto done;
        }
    }
    if (op->has_slice) {
        n = a->u.arr.n;
        if (op->slice >= 0 && (uint64_t)op->slice < n)
            arr_drop(a, (size_t)op->slice, n);
        else if (op->slice < 0 && (uint64_t)-(op->slice + 1) + 1 < n)
            arr_drop(a, 0, n - (size_t)((uint64_t)-(op->slice + 1) + 1));
    }
    if (arr == NULL)
        return set_at(op, doc, op->path, op->plen, &fresh, err, errlen);
done:
    dval_free(&fresh);
    return rc;
}

static int contains(const dval *arr, const dval *v)
{
    for (size_t i = 0; i < arr->u.arr.n; i++)
        if (dval_equal(&arr->u.arr.v[i], v))
            return 1;
    return 0;
}

static int add_to_set(const upd_op *op, dval *doc, char *err, size_t errlen)
{
    dval *arr, fresh = dval_array();
    int rc = get_array(op, doc, &arr, err, errlen);
    if (rc != DOTDB_OK)
        return rc;
    dval *a = arr ? arr : &fresh;
    for (size_t i = 0; i < op->arg.u.arr.n; i++) {
        dval v;
        if (contains(a, &op->arg.u.arr.v[i]))
            continue;
        if (dval_copy(&op->arg.u.arr.v[i], &v) != DOTDB_OK || dval_arr_push(a, &v) != DOTDB_OK) {
            dval_free(&v);
            dval_free(&fresh);
            return nomem(err, errlen);
        }
    }
    if (arr == NULL)
        return set_at(op, doc, op->path, op->plen, &fresh, err, errlen);
    return DOTDB_OK;
}

static int pop(const upd_op *op, dval *doc, char *err, size_t errlen)
{
    dval *arr;
    int rc = get_array(op, doc, &arr, err, errlen);
    if (rc == DOTDB_OK && arr != NULL && arr->u.arr.n > 0)
        dval_arr_remove(arr, op->pop_first ? 0 : arr->u.arr.n - 1);
    return rc;
}

/* ---- $pull conditions ----------------------------------------------------- */

/*
 * A small local matcher for $pull, with MongoDB's rules for the operators
 * it knows: $gt/$gte/$lt/$lte only compare values of the same type class
 * (numbers with numbers, strings with strings...), a missing field behaves
 * as null, and a field that holds an array matches when the array itself
 * or one of its elements does ($ne / $nin: when none does).  It should be
 * replaced by qfilter_compile/qfilter_match (query.h) once that lands;
 * the call site is match_element below.
 */
static int cmp_holds(int op, const dval *v, const dval *x)
{
    if (dval_type_rank(v->type) != dval_type_rank(x->type))
        return 0;
    int c = dval_cmp(v, x);
    switch (op) {
    case UC_GT:
        return c > 0;
    case UC_GTE:
        return c >= 0;
    case UC_LT:
        return c < 0;
    default:
        return c <= 0;
    }
}

/* v equals x, or (expand) v is an array with an element equal to x. */
static int eq_holds(const dval *v, const dval *x, int expand)
{
    if (dval_equal(v, x))
        return 1;
    if (expand && v->type == DV_ARRAY)
        for (size_t i = 0; i < v->u.arr.n; i++)
            if (dval_equal(&v->u.arr.v[i], x))
                return 1;
    return 0;
}

static int cond_holds(const upd_cond *c, const dval *v, int expand)
{
    switch (c->op) {
    case UC_EQ:
        return eq_holds(v, &c->v, expand);
    case UC_NE:
        return !eq_holds(v, &c->v, expand);
    case UC_IN:
    case UC_NIN: {
        int any = 0;
        for (size_t i = 0; i < c->v.u.arr.n && !any; i++)
            any = eq_holds(v, &c->v.u.arr.v[i], expand);
        return c->op == UC_IN ? any : !any;
    }
    default:
        if (cmp_holds(c->op, v, &c->v))
            return 1;
        if (expand && v->type == DV_ARRAY)
            for (size_t i = 0; i < v->u.arr.n; i++)
                if (cmp_holds(c->op, &v->u.arr.v[i], &c->v))
                    return 1;
        return 0;
    }
}

static int field_holds(const upd_pull_field *f, const dval *v, int expand)
{
    static const dval missing = {.type = DV_NULL};
    if (v == NULL)
        v = &missing;
    for (size_t i = 0; i < f->nconds; i++)
        if (!cond_holds(&f->conds[i], v, expand))
            return 0;
    return 1;
}

/* 1 when array element e is to be pulled.  (qfilter_match goes here.) */
static int match_element(const upd_op *op, const dval *e)
{
    if (!op->pull_doc)
        return field_holds(&op->pull[0], e, 0);
    if (e->type != DV_OBJECT)
        return 0;
    for (size_t i = 0; i < op->npull; i++) {
        const upd_pull_field *f = &op->pull[i];
        if (!field_holds(f, dval_path_get(e, f->path, f->plen), 1))
            return 0;
    }
    return 1;
}

static int pull(const upd_op *op, dval *doc, char *err, size_t errlen)
{
    dval *arr;
    int rc = get_array(op, doc, &arr, err, errlen);
    if (rc != DOTDB_OK || arr == NULL)
        return rc;
    size_t keep = 0;
    for (size_t i = 0; i < arr->u.arr.n; i++) {
        if (match_element(op, &arr->u.arr.v[i]))
            dval_free(&arr->u.arr.v[i]);
        else
            arr->u.arr.v[keep++] = arr->u.arr.v[i];
    }
    arr->u.arr.n = keep;
    return DOTDB_OK;
}

/* ---- $currentDate ---------------------------------------------------------- */

static int current_date(const upd_op *op, dval *doc, int64_t now_ms, char *err, size_t errlen)
{
    dval v = dval_int(now_ms);
    if (!op->is_timestamp) {
        int64_t secs = now_ms / 1000, ms = now_ms % 1000;
        if (ms < 0) {
            ms += 1000;
            secs--;
        }
        time_t t = (time_t)secs;
        struct tm tm;
        char buf[64];
        if (gmtime_r(&t, &tm) == NULL)
            return fail(err, errlen, DOTDB_EINVAL, "$currentDate: time %lld ms is out of range",
                        (long long)now_ms);
        int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, (int)ms);
        if (dval_string(buf, (size_t)n, &v) != DOTDB_OK)
            return nomem(err, errlen);
    }
    return set_at(op, doc, op->path, op->plen, &v, err, errlen);
}

/* ---- Dispatch ---------------------------------------------------------------- */

int upd_apply_op(const upd_op *op, dval *doc, int64_t now_ms, char *err, size_t errlen)
{
    switch (op->kind) {
    case UOP_SET:
        return set_copy(op, doc, &op->arg, err, errlen);
    case UOP_UNSET:
        dval_path_unset(doc, op->path, op->plen);
        return DOTDB_OK;
    case UOP_INC:
    case UOP_MUL:
        return arith(op, doc, err, errlen);
    case UOP_MIN:
    case UOP_MAX:
        return minmax(op, doc, err, errlen);
    case UOP_RENAME:
        return rename_field(op, doc, err, errlen);
    case UOP_PUSH:
        return push(op, doc, err, errlen);
    case UOP_ADDTOSET:
        return add_to_set(op, doc, err, errlen);
    case UOP_POP:
        return pop(op, doc, err, errlen);
    case UOP_PULL:
        return pull(op, doc, err, errlen);
    case UOP_CURRENTDATE:
        return current_date(op, doc, now_ms, err, errlen);
    default:
        return fail(err, errlen, DOTDB_EINVAL, "unknown update operator");
    }
}
