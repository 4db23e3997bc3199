/*
 * agg_expr.c - aggregation expressions (agg_internal.h): compiled once per
 * pipeline, evaluated per document on the binary encoding in place.
 *
 * Semantics follow MongoDB's documentation:
 *
 *   - "$a.b" reads field a then b; when a value on the way is an array the
 *     rest of the path is applied to each of its object elements and the
 *     results that are not missing form an array ("$items.sku" over
 *     [{sku: 1}, {}, 5] is [1]).  Parts are always keys, never indexes.
 *   - Missing is not null: {$eq: ["$nope", null]} is false, $ifNull and
 *     the arithmetic operators treat both as "nullish".
 *   - Arithmetic on ints stays int64 and moves to double on overflow (as
 *     MongoDB promotes long to double); any double operand makes a double;
 *     a null or missing operand makes the result null; $divide always
 *     returns a double; division by zero is an error naming the operator.
 *   - Array expressions turn missing elements into null; object
 *     expressions leave missing fields out.
 *
 * Constants are folded at compile time (an array or object of constants is
 * one constant), so ["a", "b"] in {$in: ["$x", ["a", "b"]]} costs nothing
 * per document.  Computed values go to the caller's arena (agg_ectx).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg_internal.h"
#include "query.h"

/* ---- field paths ------------------------------------------------------------ */

int agg_path_init(agg_path *p, const char *s, size_t len, const char *what, char *err,
                  size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (len == 0)
        return agg_err(DOTDB_EINVAL, err, errlen, "%s: empty field path", what);
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '.';
    p->text = malloc(len + 1);
    p->parts = malloc(n * sizeof *p->parts);
    if (p->text == NULL || p->parts == NULL) {
        agg_path_fini(p);
        return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    }
    memcpy(p->text, s, len);
    p->text[len] = '\0';
    p->len = len;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (i == start || p->text[start] == '$') {
            int rc = agg_err(DOTDB_EINVAL, err, errlen,
                             i == start ? "%s: field path '%.*s' has an empty part"
                                        : "%s: field path '%.*s' has a part starting with '$'",
                             what, (int)len, s);
            agg_path_fini(p);
            return rc;
        }
        p->parts[p->n++] = (agg_path_part){p->text + start, i - start};
        start = i + 1;
    }
    return DOTDB_OK;
}

void agg_path_fini(agg_path *p)
{
    free(p->text);
    free(p->parts);
    memset(p, 0, sizeof *p);
}

codec_val agg_path_get_plain(codec_val obj, const agg_path *p)
{
    codec_val cur = obj;
    for (size_t i = 0; i < p->n; i++) {
        codec_val next;
        if (cur.p == NULL || !codec_obj_get(cur, p->parts[i].s, p->parts[i].len, &next))
            return AGG_MISSING;
        cur = next;
    }
    return cur;
}

/* ---- compiled form ------------------------------------------------------- */

enum ae_kind {
    AE_CONST,  /* cv */
    AE_PATH,   /* path from $$ROOT; no parts: $$ROOT itself */
    AE_REMOVE, /* $$REMOVE: always missing */
    AE_ARRAY,  /* args */
    AE_OBJECT, /* keys, args */
    AE_OP,     /* op, args */
};

enum ae_op {
    OP_ADD, OP_SUBTRACT, OP_MULTIPLY, OP_DIVIDE, OP_MOD, OP_ABS,
    OP_CONCAT, OP_TOLOWER, OP_TOUPPER, OP_SIZE,
    OP_COND, OP_IFNULL,
    OP_EQ, OP_NE, OP_GT, OP_GTE, OP_LT, OP_LTE,
    OP_AND, OP_OR, OP_NOT, OP_IN,
};

typedef struct op_def {
    const char *name;
    int op;
    int min_args, max_args; /* max -1: any number */
} op_def;

static const op_def k_ops[] = {
    {"$add", OP_ADD, 0, -1},          {"$subtract", OP_SUBTRACT, 2, 2},
    {"$multiply", OP_MULTIPLY, 0, -1}, {"$divide", OP_DIVIDE, 2, 2},
    {"$mod", OP_MOD, 2, 2},           {"$abs", OP_ABS, 1, 1},
    {"$concat", OP_CONCAT, 0, -1},    {"$toLower", OP_TOLOWER, 1, 1},
    {"$toUpper", OP_TOUPPER, 1, 1},   {"$size", OP_SIZE, 1, 1},
    {"$cond", OP_COND, 3, 3},         {"$ifNull", OP_IFNULL, 2, -1},
    {"$eq", OP_EQ, 2, 2},             {"$ne", OP_NE, 2, 2},
    {"$gt", OP_GT, 2, 2},             {"$gte", OP_GTE, 2, 2},
    {"$lt", OP_LT, 2, 2},             {"$lte", OP_LTE, 2, 2},
    {"$and", OP_AND, 0, -1},          {"$or", OP_OR, 0, -1},
    {"$not", OP_NOT, 1, 1},           {"$in", OP_IN, 2, 2},
};

struct agg_expr {
    int kind;           /* enum ae_kind */
    const op_def *op;   /* AE_OP */
    codec_val cv;       /* AE_CONST: a view of `bytes` */
    uint8_t *bytes;     /* owned encoding of a constant */
    int is_self;        /* AE_CONST whose value is its own spec (no $literal inside) */
    agg_path path;      /* AE_PATH */
    agg_expr **args;    /* AE_ARRAY, AE_OBJECT, AE_OP: owned */
    size_t nargs;
    char **keys;        /* AE_OBJECT: owned, one per arg */
    size_t *klens;
};

void agg_expr_free(agg_expr *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->nargs; i++) {
        agg_expr_free(e->args[i]);
        if (e->keys != NULL)
            free(e->keys[i]);
    }
    free(e->args);
    free(e->keys);
    free(e->klens);
    free(e->bytes);
    agg_path_fini(&e->path);
    free(e);
}

int agg_expr_is_const(const agg_expr *e) { return e->kind == AE_CONST; }

int agg_expr_is_top_field(const agg_expr *e, const char **key, size_t *klen)
{
    if (e->kind != AE_PATH || e->path.n != 1)
        return 0;
    *key = e->path.parts[0].s;
    *klen = e->path.parts[0].len;
    return 1;
}

static agg_expr *expr_new(int kind)
{
    agg_expr *e = calloc(1, sizeof *e);
    if (e != NULL)
        e->kind = kind;
    return e;
}

/* Turn e into a constant holding a copy of v. */
static int make_const(agg_expr *e, codec_val v, int is_self)
{
    uint8_t *b = malloc(v.len);
    if (b == NULL)
        return DOTDB_ENOMEM;
    memcpy(b, v.p, v.len);
    free(e->bytes);
    e->bytes = b;
    e->cv = (codec_val){b, v.len};
    e->is_self = is_self;
    e->kind = AE_CONST;
    return DOTDB_OK;
}

static int compile_value(codec_val v, agg_expr **out, char *err, size_t errlen);

/* An array or object expression whose members are all constants becomes
 * one constant: its own spec when nothing inside was a $literal, else the
 * encoding of the members' values. */
static int fold_container(agg_expr *e, codec_val spec)
{
    int all_self = 1;
    for (size_t i = 0; i < e->nargs; i++) {
        if (e->args[i]->kind != AE_CONST)
            return DOTDB_OK;
        all_self &= e->args[i]->is_self;
    }
    if (all_self)
        return make_const(e, spec, 1);
    agg_arena a;
    agg_arena_init(&a);
    codec_val v;
    int rc;
    if (e->kind == AE_ARRAY) {
        codec_val *el = agg_arena_alloc(&a, e->nargs * sizeof *el);
        if (el == NULL) {
            rc = DOTDB_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < e->nargs; i++)
            el[i] = e->args[i]->cv;
        rc = agg_enc_array(&a, el, e->nargs, &v);
    } else {
        agg_kv *m = agg_arena_alloc(&a, e->nargs * sizeof *m);
        if (m == NULL) {
            rc = DOTDB_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < e->nargs; i++)
            m[i] = (agg_kv){e->keys[i], e->klens[i], e->args[i]->cv};
        rc = agg_enc_object(&a, m, e->nargs, &v);
    }
    if (rc == DOTDB_OK)
        rc = make_const(e, v, 0);
out:
    agg_arena_free(&a);
    return rc;
}

static int compile_string(codec_val v, agg_expr **out, char *err, size_t errlen)
{
    const char *s;
    size_t len;
    codec_as_string(v, &s, &len);
    agg_expr *e = expr_new(AE_CONST);
    int rc;
    if (e == NULL)
        return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    if (len == 0 || s[0] != '$') {
        rc = make_const(e, v, 1);
    } else if (len >= 2 && s[1] == '$') {
        size_t nlen = 2;
        while (nlen < len && s[nlen] != '.')
            nlen++;
        const char *name = s + 2;
        size_t name_len = nlen - 2;
        if ((name_len == 4 && memcmp(name, "ROOT", 4) == 0) ||
            (name_len == 7 && memcmp(name, "CURRENT", 7) == 0)) {
            e->kind = AE_PATH;
            rc = nlen == len ? DOTDB_OK
                             : agg_path_init(&e->path, s + nlen + 1, len - nlen - 1, "$$ROOT",
                                             err, errlen);
        } else if (name_len == 6 && memcmp(name, "REMOVE", 6) == 0) {
            e->kind = AE_REMOVE;
            rc = nlen == len ? DOTDB_OK
                             : agg_err(DOTDB_EINVAL, err, errlen,
                                       "$$REMOVE has no fields ('%.*s')", (int)len, s);
        } else {
            rc = agg_err(DOTDB_EINVAL, err, errlen,
                         "unknown variable '%.*s' (only $$ROOT, $$CURRENT and $$REMOVE)",
                         (int)nlen, s);
        }
    } else {
        e->kind = AE_PATH;
        rc = len == 1 ? agg_err(DOTDB_EINVAL, err, errlen, "'$' by itself is not a field path")
                      : agg_path_init(&e->path, s + 1, len - 1, "field path", err, errlen);
    }
    if (rc == DOTDB_ENOMEM)
        agg_err(rc, err, errlen, "out of memory");
    if (rc != DOTDB_OK) {
        agg_expr_free(e);
        return rc;
    }
    *out = e;
    return DOTDB_OK;
}

static int compile_array(codec_val v, agg_expr **out, char *err, size_t errlen)
{
    size_t n = codec_count(v);
    agg_expr *e = expr_new(AE_ARRAY);
    int rc = DOTDB_ENOMEM;
    if (e == NULL || (n > 0 && (e->args = calloc(n, sizeof *e->args)) == NULL))
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        codec_val el;
        codec_arr_at(v, i, &el);
        if ((rc = compile_value(el, &e->args[i], err, errlen)) != DOTDB_OK)
            goto fail;
        e->nargs++;
    }
    if ((rc = fold_container(e, v)) != DOTDB_OK)
        goto nomem;
    *out = e;
    return DOTDB_OK;
nomem:
    rc = agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
fail:
    agg_expr_free(e);
    return rc;
}

static int compile_object_expr(codec_val v, agg_expr **out, char *err, size_t errlen)
{
    size_t n = codec_count(v);
    agg_expr *e = expr_new(AE_OBJECT);
    int rc = DOTDB_ENOMEM;
    /* {} has no members: calloc(0) may rightly return NULL, which is no failure */
    if (e == NULL || (n > 0 && ((e->args = calloc(n, sizeof *e->args)) == NULL ||
                                (e->keys = calloc(n, sizeof *e->keys)) == NULL ||
                                (e->klens = calloc(n, sizeof *e->klens)) == NULL)))
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t kl;
        codec_val mv;
        codec_obj_at(v, i, &k, &kl, &mv);
        if (kl > 0 && k[0] == '$') {
            rc = agg_err(DOTDB_EINVAL, err, errlen,
                         "field '%.*s' in an object expression: only the single field of an "
                         "operator may start with '$'", (int)kl, k);
            goto fail;
        }
        if (memchr(k, '.', kl) != NULL) {
            rc = agg_err(DOTDB_EINVAL, err, errlen,
                         "field '%.*s' in an object expression may not contain '.'", (int)kl, k);
            goto fail;
        }
        if ((e->keys[i] = malloc(kl + 1)) == NULL)
            goto nomem;
        memcpy(e->keys[i], k, kl);
        e->keys[i][kl] = '\0';
        e->klens[i] = kl;
        if ((rc = compile_value(mv, &e->args[i], err, errlen)) != DOTDB_OK) {
            free(e->keys[i]);
            e->keys[i] = NULL;
            goto fail;
        }
        e->nargs++;
    }
    if ((rc = fold_container(e, v)) != DOTDB_OK)
        goto nomem;
    *out = e;
    return DOTDB_OK;
nomem:
    rc = agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
fail:
    agg_expr_free(e);
    return rc;
}

/* Compile the arguments of an operator into e->args. */
static int compile_args(agg_expr *e, codec_val operand, char *err, size_t errlen)
{
    const op_def *op = e->op;
    size_t n;
    int rc;
    if (op->op == OP_COND && codec_type(operand) == DOTDB_T_OBJECT) {
        /* {$cond: {if: ..., then: ..., else: ...}} */
        static const char *const names[3] = {"if", "then", "else"};
        for (size_t i = 0; i < codec_count(operand); i++) {
            const char *k;
            size_t kl;
            codec_val mv;
            codec_obj_at(operand, i, &k, &kl, &mv);
            if (!((kl == 2 && memcmp(k, "if", 2) == 0) || (kl == 4 && memcmp(k, "then", 4) == 0) ||
                  (kl == 4 && memcmp(k, "else", 4) == 0)))
                return agg_err(DOTDB_EINVAL, err, errlen, "$cond: unknown argument '%.*s'",
                               (int)kl, k);
        }
        if ((e->args = calloc(3, sizeof *e->args)) == NULL)
            return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
        for (size_t i = 0; i < 3; i++) {
            codec_val mv;
            if (!codec_obj_get(operand, names[i], strlen(names[i]), &mv))
                return agg_err(DOTDB_EINVAL, err, errlen, "$cond: missing '%s' argument",
                               names[i]);
            if ((rc = compile_value(mv, &e->args[i], err, errlen)) != DOTDB_OK)
                return rc;
            e->nargs++;
        }
        return DOTDB_OK;
    }
    int is_list = codec_type(operand) == DOTDB_T_ARRAY;
    n = is_list ? codec_count(operand) : 1;
    if ((size_t)op->min_args > n || (op->max_args >= 0 && n > (size_t)op->max_args)) {
        if (op->min_args == op->max_args)
            return agg_err(DOTDB_EINVAL, err, errlen,
                           "%s: expects exactly %d argument%s, got %zu", op->name, op->min_args,
                           op->min_args == 1 ? "" : "s", n);
        return agg_err(DOTDB_EINVAL, err, errlen, "%s: expects at least %d arguments, got %zu",
                       op->name, op->min_args, n);
    }
    if (n > 0 && (e->args = calloc(n, sizeof *e->args)) == NULL)
        return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        codec_val a = operand;
        if (is_list)
            codec_arr_at(operand, i, &a);
        if ((rc = compile_value(a, &e->args[i], err, errlen)) != DOTDB_OK)
            return rc;
        e->nargs++;
    }
    return DOTDB_OK;
}

static int compile_operator(codec_val v, agg_expr **out, char *err, size_t errlen)
{
    const char *k;
    size_t kl;
    codec_val operand;
    codec_obj_at(v, 0, &k, &kl, &operand);
    if (codec_count(v) != 1)
        return agg_err(DOTDB_EINVAL, err, errlen,
                       "an expression object naming an operator ('%.*s') must have exactly one "
                       "field, found %zu", (int)kl, k, codec_count(v));
    agg_expr *e = expr_new(AE_OP);
    int rc;
    if (e == NULL)
        return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    if (kl == 8 && memcmp(k, "$literal", 8) == 0) {
        rc = make_const(e, operand, 0);
        if (rc != DOTDB_OK)
            agg_err(rc, err, errlen, "out of memory");
    } else {
        for (size_t i = 0; i < sizeof k_ops / sizeof k_ops[0]; i++)
            if (strlen(k_ops[i].name) == kl && memcmp(k_ops[i].name, k, kl) == 0)
                e->op = &k_ops[i];
        rc = e->op == NULL ? agg_err(DOTDB_EINVAL, err, errlen,
                                     "unknown expression operator '%.*s'", (int)kl, k)
                           : compile_args(e, operand, err, errlen);
    }
    if (rc != DOTDB_OK) {
        agg_expr_free(e);
        return rc;
    }
    *out = e;
    return DOTDB_OK;
}

static int compile_value(codec_val v, agg_expr **out, char *err, size_t errlen)
{
    *out = NULL;
    switch (codec_type(v)) {
    case DOTDB_T_STRING:
        return compile_string(v, out, err, errlen);
    case DOTDB_T_ARRAY:
        return compile_array(v, out, err, errlen);
    case DOTDB_T_OBJECT: {
        const char *k;
        size_t kl;
        codec_val mv;
        if (codec_count(v) > 0 && codec_obj_at(v, 0, &k, &kl, &mv) && kl > 0 && k[0] == '$')
            return compile_operator(v, out, err, errlen);
        return compile_object_expr(v, out, err, errlen);
    }
    default: {
        agg_expr *e = expr_new(AE_CONST);
        if (e == NULL || make_const(e, v, 1) != DOTDB_OK) {
            agg_expr_free(e);
            return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
        }
        *out = e;
        return DOTDB_OK;
    }
    }
}

int agg_expr_compile(codec_val spec, agg_expr **out, char *err, size_t errlen)
{
    *out = NULL;
    return compile_value(spec, out, err, errlen);
}

/* ---- comparison and truth ------------------------------------------------- */

int agg_truthy(codec_val v)
{
    if (v.p == NULL)
        return 0;
    int64_t i;
    double d;
    switch (v.p[0]) {
    case CODEC_NULL:
    case CODEC_FALSE:
        return 0;
    case CODEC_TRUE:
        return 1;
    case CODEC_DOUBLE:
        codec_as_double(v, &d);
        return d != 0.0;
    default:
        if (codec_as_int64(v, &i))
            return i != 0;
        return 1; /* strings (even ""), arrays (even []), objects */
    }
}

int agg_cmp(codec_val a, codec_val b)
{
    if (a.p == NULL || b.p == NULL)
        return (a.p != NULL) - (b.p != NULL);
    return qvalue_cmp(a, b);
}

/* ---- evaluation ------------------------------------------------------------- */

static int eval_err(agg_ectx *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int eval_err(agg_ectx *c, int rc, const char *fmt, ...)
{
    if (c->err != NULL && c->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int nomem(agg_ectx *c) { return eval_err(c, DOTDB_ENOMEM, "out of memory"); }

/* Report an encoding failure of a computed value. */
static int enc_fail(agg_ectx *c, int rc, const char *op)
{
    if (rc == DOTDB_ENOMEM)
        return nomem(c);
    if (rc == DOTDB_ETOOBIG)
        return eval_err(c, rc, "%s: the result is larger than 4 GiB", op);
    return eval_err(c, rc, "%s: the result is not a finite number", op);
}

static int eval_path(agg_ectx *c, codec_val obj, const agg_path_part *parts, size_t n,
                     codec_val *out);

/* The rest of a path applied to each object element of arr. */
static int eval_path_array(agg_ectx *c, codec_val arr, const agg_path_part *parts, size_t n,
                           codec_val *out)
{
    size_t count = codec_count(arr), k = 0;
    codec_val *el = agg_arena_alloc(c->arena, (count ? count : 1) * sizeof *el);
    if (el == NULL)
        return nomem(c);
    for (size_t i = 0; i < count; i++) {
        codec_val e, r;
        codec_arr_at(arr, i, &e);
        if (codec_type(e) != DOTDB_T_OBJECT)
            continue;
        int rc = eval_path(c, e, parts, n, &r);
        if (rc != DOTDB_OK)
            return rc;
        if (r.p != NULL)
            el[k++] = r;
    }
    int rc = agg_enc_array(c->arena, el, k, out);
    return rc == DOTDB_OK ? rc : enc_fail(c, rc, "field path");
}

static int eval_path(agg_ectx *c, codec_val obj, const agg_path_part *parts, size_t n,
                     codec_val *out)
{
    codec_val cur = obj;
    for (size_t i = 0; i < n; i++) {
        codec_val next;
        if (!codec_obj_get(cur, parts[i].s, parts[i].len, &next)) {
            *out = AGG_MISSING;
            return DOTDB_OK;
        }
        if (i + 1 == n) {
            cur = next;
            break;
        }
        int t = codec_type(next);
        if (t == DOTDB_T_ARRAY)
            return eval_path_array(c, next, parts + i + 1, n - i - 1, out);
        if (t != DOTDB_T_OBJECT) {
            *out = AGG_MISSING;
            return DOTDB_OK;
        }
        cur = next;
    }
    *out = cur;
    return DOTDB_OK;
}

/* A number read from an encoded value. */
typedef struct anum {
    int is_int;
    int64_t i;
    double d;
} anum;

static int get_num(codec_val v, anum *n)
{
    if (v.p == NULL)
        return 0;
    if (codec_as_int64(v, &n->i)) {
        n->is_int = 1;
        n->d = (double)n->i;
        return 1;
    }
    if (v.p[0] == CODEC_DOUBLE) {
        codec_as_double(v, &n->d);
        n->is_int = 0;
        return 1;
    }
    return 0;
}

static int put_num(agg_ectx *c, const anum *n, const char *op, codec_val *out)
{
    int rc = n->is_int ? agg_enc_int(c->arena, n->i, out) : agg_enc_double(c->arena, n->d, out);
    return rc == DOTDB_OK ? rc : enc_fail(c, rc, op);
}

static int not_numeric(agg_ectx *c, const char *op, codec_val v)
{
    return eval_err(c, DOTDB_EINVAL, "%s only supports numeric types, not %s", op,
                    agg_type_name(v));
}

/* $add and $multiply: int64 until an overflow or a double. */
static int eval_add_mul(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    int is_mul = e->op->op == OP_MULTIPLY;
    anum acc = {.is_int = 1, .i = is_mul ? 1 : 0, .d = is_mul ? 1.0 : 0.0};
    for (size_t k = 0; k < e->nargs; k++) {
        codec_val v;
        anum x;
        int rc = agg_expr_eval(e->args[k], c, &v);
        if (rc != DOTDB_OK)
            return rc;
        if (agg_nullish(v)) {
            *out = agg_null();
            return DOTDB_OK;
        }
        if (!get_num(v, &x))
            return not_numeric(c, e->op->name, v);
        if (acc.is_int && x.is_int) {
            int64_t r;
            int over = is_mul ? __builtin_mul_overflow(acc.i, x.i, &r)
                              : __builtin_add_overflow(acc.i, x.i, &r);
            if (!over) {
                acc.i = r;
                continue;
            }
        }
        if (acc.is_int) {
            acc.is_int = 0;
            acc.d = (double)acc.i;
        }
        acc.d = is_mul ? acc.d * x.d : acc.d + x.d;
    }
    return put_num(c, &acc, e->op->name, out);
}

/* Both operands of a binary numeric operator: 1 with a and b, 0 with *out
 * null when one is nullish, negative on an error. */
static int eval_two_nums(const agg_expr *e, agg_ectx *c, anum *a, anum *b, codec_val *out)
{
    codec_val va, vb;
    int rc = agg_expr_eval(e->args[0], c, &va);
    if (rc == DOTDB_OK)
        rc = agg_expr_eval(e->args[1], c, &vb);
    if (rc != DOTDB_OK)
        return rc;
    if (agg_nullish(va) || agg_nullish(vb)) {
        *out = agg_null();
        return 0;
    }
    if (!get_num(va, a))
        return not_numeric(c, e->op->name, va);
    if (!get_num(vb, b))
        return not_numeric(c, e->op->name, vb);
    return 1;
}

static int eval_arith2(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    anum a, b, r = {0};
    int rc = eval_two_nums(e, c, &a, &b, out);
    if (rc <= 0)
        return rc;
    switch (e->op->op) {
    case OP_SUBTRACT:
        if (a.is_int && b.is_int && !__builtin_sub_overflow(a.i, b.i, &r.i)) {
            r.is_int = 1;
        } else {
            r.d = a.d - b.d;
        }
        break;
    case OP_DIVIDE:
        if (b.d == 0.0)
            return eval_err(c, DOTDB_EINVAL, "$divide: cannot divide by zero");
        r.d = a.d / b.d;
        break;
    default: /* OP_MOD: the sign of the dividend, as C's % and fmod */
        if (b.d == 0.0)
            return eval_err(c, DOTDB_EINVAL, "$mod: cannot divide by zero");
        if (a.is_int && b.is_int) {
            r.is_int = 1;
            r.i = b.i == -1 ? 0 : a.i % b.i; /* INT64_MIN % -1 overflows in C */
        } else {
            r.d = fmod(a.d, b.d);
        }
        break;
    }
    return put_num(c, &r, e->op->name, out);
}

static int eval_abs(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    codec_val v;
    anum x;
    int rc = agg_expr_eval(e->args[0], c, &v);
    if (rc != DOTDB_OK)
        return rc;
    if (agg_nullish(v)) {
        *out = agg_null();
        return DOTDB_OK;
    }
    if (!get_num(v, &x))
        return not_numeric(c, "$abs", v);
    if (x.is_int && x.i == INT64_MIN) {
        x.is_int = 0;
        x.d = -(double)INT64_MIN;
    } else if (x.is_int) {
        x.i = x.i < 0 ? -x.i : x.i;
    } else {
        x.d = fabs(x.d);
    }
    return put_num(c, &x, "$abs", out);
}

static int eval_concat(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    codec_val *parts = agg_arena_alloc(c->arena, (e->nargs ? e->nargs : 1) * sizeof *parts);
    size_t total = 0;
    if (parts == NULL)
        return nomem(c);
    for (size_t k = 0; k < e->nargs; k++) {
        int rc = agg_expr_eval(e->args[k], c, &parts[k]);
        if (rc != DOTDB_OK)
            return rc;
        if (agg_nullish(parts[k])) {
            *out = agg_null();
            return DOTDB_OK;
        }
        if (codec_type(parts[k]) != DOTDB_T_STRING)
            return eval_err(c, DOTDB_EINVAL, "$concat only supports strings, not %s",
                            agg_type_name(parts[k]));
        const char *s;
        size_t len;
        codec_as_string(parts[k], &s, &len);
        total += len;
    }
    char *buf = agg_arena_alloc(c->arena, total);
    if (buf == NULL)
        return nomem(c);
    size_t off = 0;
    for (size_t k = 0; k < e->nargs; k++) {
        const char *s;
        size_t len;
        codec_as_string(parts[k], &s, &len);
        if (len > 0)
            memcpy(buf + off, s, len);
        off += len;
    }
    int rc = agg_enc_string(c->arena, buf, total, out);
    return rc == DOTDB_OK ? rc : enc_fail(c, rc, "$concat");
}

/* $toLower / $toUpper: ASCII letters only (as MongoDB); null and missing
 * give ""; numbers are converted to their text first. */
static int eval_case(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    int upper = e->op->op == OP_TOUPPER;
    codec_val v;
    const char *s = "";
    size_t len = 0;
    dbuf text;
    dbuf_init(&text);
    int rc = agg_expr_eval(e->args[0], c, &v);
    if (rc != DOTDB_OK)
        return rc;
    if (agg_nullish(v)) {
        /* "" */
    } else if (codec_type(v) == DOTDB_T_STRING) {
        codec_as_string(v, &s, &len);
    } else if (codec_type(v) == DOTDB_T_INT || codec_type(v) == DOTDB_T_DOUBLE) {
        if (codec_to_json(v, &text) != DOTDB_OK) {
            dbuf_free(&text);
            return nomem(c);
        }
        s = (const char *)text.data;
        len = text.len;
        if (len > 2 && memcmp(s + len - 2, ".0", 2) == 0)
            len -= 2; /* 2.0 reads "2", as MongoDB prints it */
    } else {
        return eval_err(c, DOTDB_EINVAL, "%s: cannot convert %s to a string", e->op->name,
                        agg_type_name(v));
    }
    rc = agg_enc_string(c->arena, s, len, out);
    dbuf_free(&text);
    if (rc != DOTDB_OK)
        return enc_fail(c, rc, e->op->name);
    const char *r;
    size_t rlen;
    codec_as_string(*out, &r, &rlen);
    char *w = (char *)r; /* the arena copy we just made */
    for (size_t i = 0; i < rlen; i++) {
        if (upper && w[i] >= 'a' && w[i] <= 'z')
            w[i] = (char)(w[i] - 'a' + 'A');
        else if (!upper && w[i] >= 'A' && w[i] <= 'Z')
            w[i] = (char)(w[i] - 'A' + 'a');
    }
    return DOTDB_OK;
}

static int eval_size(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    codec_val v;
    int rc = agg_expr_eval(e->args[0], c, &v);
    if (rc != DOTDB_OK)
        return rc;
    if (v.p == NULL || codec_type(v) != DOTDB_T_ARRAY)
        return eval_err(c, DOTDB_EINVAL, "$size: the argument must be an array, not %s",
                        agg_type_name(v));
    rc = agg_enc_int(c->arena, (int64_t)codec_count(v), out);
    return rc == DOTDB_OK ? rc : nomem(c);
}

static int eval_compare(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    codec_val a, b;
    int rc = agg_expr_eval(e->args[0], c, &a);
    if (rc == DOTDB_OK)
        rc = agg_expr_eval(e->args[1], c, &b);
    if (rc != DOTDB_OK)
        return rc;
    int r = agg_cmp(a, b), t;
    switch (e->op->op) {
    case OP_EQ: t = r == 0; break;
    case OP_NE: t = r != 0; break;
    case OP_GT: t = r > 0; break;
    case OP_GTE: t = r >= 0; break;
    case OP_LT: t = r < 0; break;
    default: t = r <= 0; break;
    }
    *out = agg_bool(t);
    return DOTDB_OK;
}

static int eval_in(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    codec_val x, arr;
    int rc = agg_expr_eval(e->args[0], c, &x);
    if (rc == DOTDB_OK)
        rc = agg_expr_eval(e->args[1], c, &arr);
    if (rc != DOTDB_OK)
        return rc;
    if (arr.p == NULL || codec_type(arr) != DOTDB_T_ARRAY)
        return eval_err(c, DOTDB_EINVAL, "$in: the second argument must be an array, not %s",
                        agg_type_name(arr));
    int found = 0;
    if (x.p != NULL) {
        size_t n = codec_count(arr);
        for (size_t i = 0; i < n && !found; i++) {
            codec_val el;
            codec_arr_at(arr, i, &el);
            found = codec_equal(x, el);
        }
    }
    *out = agg_bool(found);
    return DOTDB_OK;
}

static int eval_op(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    codec_val v;
    int rc;
    switch (e->op->op) {
    case OP_ADD:
    case OP_MULTIPLY:
        return eval_add_mul(e, c, out);
    case OP_SUBTRACT:
    case OP_DIVIDE:
    case OP_MOD:
        return eval_arith2(e, c, out);
    case OP_ABS:
        return eval_abs(e, c, out);
    case OP_CONCAT:
        return eval_concat(e, c, out);
    case OP_TOLOWER:
    case OP_TOUPPER:
        return eval_case(e, c, out);
    case OP_SIZE:
        return eval_size(e, c, out);
    case OP_COND:
        if ((rc = agg_expr_eval(e->args[0], c, &v)) != DOTDB_OK)
            return rc;
        return agg_expr_eval(e->args[agg_truthy(v) ? 1 : 2], c, out);
    case OP_IFNULL:
        for (size_t k = 0; k + 1 < e->nargs; k++) {
            if ((rc = agg_expr_eval(e->args[k], c, out)) != DOTDB_OK)
                return rc;
            if (!agg_nullish(*out))
                return DOTDB_OK;
        }
        return agg_expr_eval(e->args[e->nargs - 1], c, out);
    case OP_AND:
    case OP_OR: {
        int want = e->op->op == OP_OR; /* the value that decides early */
        for (size_t k = 0; k < e->nargs; k++) {
            if ((rc = agg_expr_eval(e->args[k], c, &v)) != DOTDB_OK)
                return rc;
            if (agg_truthy(v) == want) {
                *out = agg_bool(want);
                return DOTDB_OK;
            }
        }
        *out = agg_bool(!want);
        return DOTDB_OK;
    }
    case OP_NOT:
        if ((rc = agg_expr_eval(e->args[0], c, &v)) != DOTDB_OK)
            return rc;
        *out = agg_bool(!agg_truthy(v));
        return DOTDB_OK;
    case OP_IN:
        return eval_in(e, c, out);
    default:
        return eval_compare(e, c, out);
    }
}

static int eval_array(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    codec_val *el = agg_arena_alloc(c->arena, (e->nargs ? e->nargs : 1) * sizeof *el);
    if (el == NULL)
        return nomem(c);
    for (size_t k = 0; k < e->nargs; k++) {
        int rc = agg_expr_eval(e->args[k], c, &el[k]);
        if (rc != DOTDB_OK)
            return rc;
        if (el[k].p == NULL)
            el[k] = agg_null();
    }
    int rc = agg_enc_array(c->arena, el, e->nargs, out);
    return rc == DOTDB_OK ? rc : enc_fail(c, rc, "array expression");
}

static int eval_object(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    agg_kv *m = agg_arena_alloc(c->arena, (e->nargs ? e->nargs : 1) * sizeof *m);
    size_t n = 0;
    if (m == NULL)
        return nomem(c);
    for (size_t k = 0; k < e->nargs; k++) {
        codec_val v;
        int rc = agg_expr_eval(e->args[k], c, &v);
        if (rc != DOTDB_OK)
            return rc;
        if (v.p != NULL)
            m[n++] = (agg_kv){e->keys[k], e->klens[k], v};
    }
    int rc = agg_enc_object(c->arena, m, n, out);
    return rc == DOTDB_OK ? rc : enc_fail(c, rc, "object expression");
}

int agg_expr_eval(const agg_expr *e, agg_ectx *c, codec_val *out)
{
    switch (e->kind) {
    case AE_CONST:
        *out = e->cv;
        return DOTDB_OK;
    case AE_PATH:
        return eval_path(c, c->root, e->path.parts, e->path.n, out);
    case AE_REMOVE:
        *out = AGG_MISSING;
        return DOTDB_OK;
    case AE_ARRAY:
        return eval_array(e, c, out);
    case AE_OBJECT:
        return eval_object(e, c, out);
    default:
        return eval_op(e, c, out);
    }
}
