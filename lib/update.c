/*
 * update.c - compiling MongoDB update documents and the apply driver.
 *
 * update_compile checks everything that does not depend on the document:
 * operator names, operand shapes, paths (no empty part, no positional
 * "$", not "id"), and that no two paths overlap ($set "a" with $inc "a.b",
 * $rename's source and target included).  The overlap check sorts all
 * paths part by part (numeric parts by value), which puts every path right
 * before the paths it is a prefix of, so comparing neighbours finds every
 * overlap in O(n log n).  The operators are kept in that order and applied
 * in it: like MongoDB 5.0+, fields are processed in lexicographic order
 * (numeric names numerically), so new fields appear in that order.
 *
 * update_apply decodes the document into a dval tree, applies each operator
 * (update_ops.c) or builds the replacement, then encodes the result and
 * checks it against the limits.  The input is never modified; the output
 * is appended to the caller's buffer only once everything succeeded.
 */
#include "update_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More parts than any configurable depth (limits.max_depth <= 1000): a
 * longer path could only build a tree too deep to store, and bounding it
 * bounds the recursion of the dval walks. */
#define UPD_MAX_PATH_PARTS 1000

const char *const upd_op_names[UOP_COUNT] = {
    [UOP_SET] = "$set",         [UOP_UNSET] = "$unset",       [UOP_INC] = "$inc",
    [UOP_MUL] = "$mul",         [UOP_MIN] = "$min",           [UOP_MAX] = "$max",
    [UOP_RENAME] = "$rename",   [UOP_PUSH] = "$push",         [UOP_PULL] = "$pull",
    [UOP_ADDTOSET] = "$addToSet", [UOP_POP] = "$pop",         [UOP_CURRENTDATE] = "$currentDate",
};

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

const char *upd_type_name(const dval *v)
{
    static const char *const names[] = {"null", "bool", "int", "double", "string", "array",
                                        "object"};
    return v->type >= DV_NULL && v->type <= DV_OBJECT ? names[v->type] : "unknown";
}

static const char *codec_type_name(codec_val v)
{
    static const char *const names[] = {"missing", "null", "bool", "int", "double", "string",
                                        "array", "object"};
    int t = codec_type(v);
    return t >= DOTDB_T_MISSING && t <= DOTDB_T_OBJECT ? names[t] : "unknown";
}

static char *dup_str(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p == NULL)
        return NULL;
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* ---- Freeing -------------------------------------------------------------- */

static void pull_free(upd_pull_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].path);
        for (size_t j = 0; j < f[i].nconds; j++)
            dval_free(&f[i].conds[j].v);
        free(f[i].conds);
    }
    free(f);
}

static void op_free(upd_op *op)
{
    free(op->path);
    free(op->to);
    dval_free(&op->arg);
    pull_free(op->pull, op->npull);
}

void update_free(upd_spec *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->nops; i++)
        op_free(&u->ops[i]);
    free(u->ops);
    dval_free(&u->repl);
    dval_free(&u->repl_id);
    free(u);
}

int update_is_replacement(const upd_spec *u) { return u->is_replacement; }

/* ---- Paths ---------------------------------------------------------------- */

/* Check a field path of operator `name`: not empty, no empty part, no
 * positional or other "$" part, not "id" or below it, not too deep. */
static int check_path(const char *name, const char *p, size_t len, char *err, size_t errlen)
{
    size_t parts = 0, start = 0;
    if (len == 0)
        return fail(err, errlen, DOTDB_EINVAL, "%s: empty field path", name);
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '.')
            continue;
        if (i == start)
            return fail(err, errlen, DOTDB_EINVAL, "%s: path '%.*s' has an empty part", name,
                        (int)len, p);
        if (p[start] == '$')
            return fail(err, errlen, DOTDB_EINVAL,
                        "%s: path '%.*s': positional and '$' parts are not supported", name,
                        (int)len, p);
        if (++parts > UPD_MAX_PATH_PARTS)
            return fail(err, errlen, DOTDB_EINVAL, "%s: path '%.60s...' has more than %d parts",
                        name, p, UPD_MAX_PATH_PARTS);
        start = i + 1;
    }
    if (len >= 2 && p[0] == 'i' && p[1] == 'd' && (len == 2 || p[2] == '.'))
        return fail(err, errlen, DOTDB_EINVAL, "%s: update would change the id (path '%.*s')",
                    name, (int)len, p);
    return DOTDB_OK;
}

/* Part-by-part order: canonical indexes by value, other parts by bytes (a
 * shorter prefix first), an index before a name; a path before its
 * extensions.  Equal-up-to-a-prefix paths are thus adjacent when sorted. */
static int path_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i = 0, j = 0;
    for (;;) {
        if (i >= alen || j >= blen)
            return (i < alen) - (j < blen);
        const char *ea = memchr(a + i, '.', alen - i), *eb = memchr(b + j, '.', blen - j);
        size_t la = ea ? (size_t)(ea - a) - i : alen - i, lb = eb ? (size_t)(eb - b) - j : blen - j;
        size_t na, nb;
        int ia = dval_parse_index(a + i, la, &na), ib = dval_parse_index(b + j, lb, &nb);
        int c;
        if (ia && ib) {
            c = (na > nb) - (na < nb);
        } else if (ia != ib) {
            c = ia ? -1 : 1;
        } else {
            size_t n = la < lb ? la : lb;
            c = memcmp(a + i, b + j, n);
            if (c == 0)
                c = (la > lb) - (la < lb);
        }
        if (c != 0)
            return c;
        i += la + 1;
        j += lb + 1;
    }
}

/* 1 when path a (alen) equals b or is a prefix of it ending at a part. */
static int path_covers(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen <= blen && memcmp(a, b, alen) == 0 && (alen == blen || b[alen] == '.');
}

typedef struct path_ent {
    const char *p;
    size_t len;
    size_t op; /* index in the update document's order */
    int kind;
} path_ent;

static int path_ent_cmp(const void *x, const void *y)
{
    const path_ent *a = x, *b = y;
    int c = path_cmp(a->p, a->len, b->p, b->len);
    if (c != 0)
        return c;
    return (a->op > b->op) - (a->op < b->op);
}

static int op_order_cmp(const void *x, const void *y)
{
    const upd_op *a = x, *b = y;
    return path_cmp(a->path, a->plen, b->path, b->plen);
}

/* Fail when two paths (sources and $rename targets) overlap; then sort the
 * operators into apply order. */
static int check_conflicts(upd_spec *u, char *err, size_t errlen)
{
    size_t n = 0;
    path_ent *e = malloc((2 * u->nops + 1) * sizeof *e);
    if (e == NULL)
        return nomem(err, errlen);
    for (size_t i = 0; i < u->nops; i++) {
        const upd_op *op = &u->ops[i];
        e[n++] = (path_ent){op->path, op->plen, i, op->kind};
        if (op->kind == UOP_RENAME)
            e[n++] = (path_ent){op->to, op->tolen, i, op->kind};
    }
    qsort(e, n, sizeof *e, path_ent_cmp);
    int rc = DOTDB_OK;
    for (size_t i = 1; i < n && rc == DOTDB_OK; i++) {
        const path_ent *a = &e[i - 1], *b = &e[i];
        if (!path_covers(a->p, a->len, b->p, b->len))
            continue;
        /* name the longer path, or for equal ones the later operator */
        const path_ent *blame = b->len > a->len || b->op > a->op ? b : a;
        const path_ent *other = blame == b ? a : b;
        rc = fail(err, errlen, DOTDB_EINVAL, "%s: path '%.*s' conflicts with '%.*s'",
                  upd_op_names[blame->kind], (int)blame->len, blame->p, (int)other->len,
                  other->p);
    }
    free(e);
    if (rc == DOTDB_OK)
        qsort(u->ops, u->nops, sizeof *u->ops, op_order_cmp);
    return rc;
}

/* ---- Operands ------------------------------------------------------------- */

static int is_number(codec_val v)
{
    int t = codec_type(v);
    return t == DOTDB_T_INT || t == DOTDB_T_DOUBLE;
}

/* An integral number operand (ints, or doubles with an integer value). */
static int as_integral(codec_val v, int64_t *out)
{
    double d;
    if (codec_as_int64(v, out))
        return 1;
    if (codec_type(v) != DOTDB_T_DOUBLE || !codec_as_double(v, &d))
        return 0;
    if (d < -9.2e18 || d > 9.2e18 || d != (double)(int64_t)d)
        return 0;
    *out = (int64_t)d;
    return 1;
}

/* The values to add for $push / $addToSet, with $each and (for $push) its
 * modifiers.  A plain value (or an object without "$each") is one value. */
static int compile_push(upd_op *op, const char *name, codec_val v, int allow_mods, char *err,
                        size_t errlen)
{
    codec_val each;
    int rc;
    if (codec_type(v) != DOTDB_T_OBJECT || !codec_obj_get(v, "$each", 5, &each)) {
        const char *k;
        size_t klen;
        codec_val m;
        for (size_t i = 0; codec_type(v) == DOTDB_T_OBJECT && i < codec_count(v); i++) {
            codec_obj_at(v, i, &k, &klen, &m);
            if (klen > 0 && k[0] == '$')
                return fail(err, errlen, DOTDB_EINVAL, "%s: modifier '%.*s' on '%s' needs $each",
                            name, (int)klen, k, op->path);
        }
        dval one;
        op->arg = dval_array();
        if ((rc = dval_from_codec(v, &one)) != DOTDB_OK)
            return nomem(err, errlen);
        if ((rc = dval_arr_push(&op->arg, &one)) != DOTDB_OK) {
            dval_free(&one);
            return nomem(err, errlen);
        }
        return DOTDB_OK;
    }
    if (codec_type(each) != DOTDB_T_ARRAY)
        return fail(err, errlen, DOTDB_EINVAL, "%s: $each for '%s' must be an array, got %s", name,
                    op->path, codec_type_name(each));
    for (size_t i = 0; i < codec_count(v); i++) {
        const char *k;
        size_t klen;
        codec_val m;
        int64_t n;
        codec_obj_at(v, i, &k, &klen, &m);
        if (klen == 5 && memcmp(k, "$each", 5) == 0)
            continue;
        if (allow_mods && klen == 6 && memcmp(k, "$slice", 6) == 0) {
            if (!as_integral(m, &n))
                return fail(err, errlen, DOTDB_EINVAL, "%s: $slice for '%s' must be an integer",
                            name, op->path);
            op->has_slice = 1;
            op->slice = n;
        } else if (allow_mods && klen == 9 && memcmp(k, "$position", 9) == 0) {
            if (!as_integral(m, &n))
                return fail(err, errlen, DOTDB_EINVAL, "%s: $position for '%s' must be an integer",
                            name, op->path);
            op->has_position = 1;
            op->position = n;
        } else {
            return fail(err, errlen, DOTDB_EINVAL, "%s: unsupported modifier '%.*s' for '%s'",
                        name, (int)klen, k, op->path);
        }
    }
    if ((rc = dval_from_codec(each, &op->arg)) != DOTDB_OK)
        return nomem(err, errlen);
    return DOTDB_OK;
}

/* The comparison operator named k[0..klen), or -1. */
static int cond_op(const char *k, size_t klen)
{
    static const char *const names[] = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"};
    for (int i = 0; i < 8; i++)
        if (strlen(names[i]) == klen && memcmp(names[i], k, klen) == 0)
            return i;
    return -1;
}

/* 1 when v is an object whose first key starts with '$' (a condition). */
static int is_condition(codec_val v)
{
    const char *k;
    size_t klen;
    codec_val m;
    return codec_type(v) == DOTDB_T_OBJECT && codec_obj_at(v, 0, &k, &klen, &m) && klen > 0 &&
           k[0] == '$';
}

/* Compile the test of one $pull field: a condition object or a value
 * (equality).  fpath names the field in messages. */
static int compile_pull_field(upd_pull_field *f, const char *fpath, codec_val v, char *err,
                              size_t errlen)
{
    size_t n = is_condition(v) ? codec_count(v) : 1;
    if ((f->conds = calloc(n, sizeof *f->conds)) == NULL)
        return nomem(err, errlen);
    if (!is_condition(v)) {
        f->nconds = 1;
        f->conds[0].op = UC_EQ;
        return dval_from_codec(v, &f->conds[0].v) == DOTDB_OK ? DOTDB_OK : nomem(err, errlen);
    }
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        codec_val m;
        codec_obj_at(v, i, &k, &klen, &m);
        int op = cond_op(k, klen);
        /* qfilter (query.h) will take over here: then every query operator
         * ($regex, $elemMatch, $exists, $and ...) works in $pull too. */
        if (op < 0 && klen > 0 && k[0] == '$')
            return fail(err, errlen, DOTDB_EINVAL, "$pull: operator '%.*s' in '%s' is not supported",
                        (int)klen, k, fpath);
        if (op < 0)
            return fail(err, errlen, DOTDB_EINVAL,
                        "$pull: condition on '%s' mixes operators and fields ('%.*s')", fpath,
                        (int)klen, k);
        if ((op == UC_IN || op == UC_NIN) && codec_type(m) != DOTDB_T_ARRAY)
            return fail(err, errlen, DOTDB_EINVAL, "$pull: %.*s in '%s' needs an array, got %s",
                        (int)klen, k, fpath, codec_type_name(m));
        f->conds[i].op = op;
        f->nconds++;
        if (dval_from_codec(m, &f->conds[i].v) != DOTDB_OK)
            return nomem(err, errlen);
    }
    return DOTDB_OK;
}

/*
 * $pull operand: a plain value or array (equality), a condition on the
 * element ({"$gte": 6}), or an object of fields matched inside object
 * elements ({"item": "B", "score": {"$lt": 5}}).
 */
static int compile_pull(upd_op *op, codec_val v, char *err, size_t errlen)
{
    int doc = codec_type(v) == DOTDB_T_OBJECT && !is_condition(v);
    size_t n = doc ? codec_count(v) : 1;
    if (n > 0 && (op->pull = calloc(n, sizeof *op->pull)) == NULL)
        return nomem(err, errlen);
    op->pull_doc = doc;
    if (!doc) {
        op->npull = 1;
        return compile_pull_field(&op->pull[0], op->path, v, err, errlen);
    }
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        codec_val m;
        codec_obj_at(v, i, &k, &klen, &m);
        if (klen > 0 && k[0] == '$')
            return fail(err, errlen, DOTDB_EINVAL,
                        "$pull: condition on '%s' mixes fields and operators ('%.*s')", op->path,
                        (int)klen, k);
        upd_pull_field *f = &op->pull[op->npull++];
        if ((f->path = dup_str(k, klen)) == NULL)
            return nomem(err, errlen);
        f->plen = klen;
        int rc = compile_pull_field(f, f->path, m, err, errlen);
        if (rc != DOTDB_OK)
            return rc;
    }
    return DOTDB_OK;
}

/* Compile one `path: value` of operator `kind` into op (zeroed). */
static int compile_op(upd_op *op, int kind, const char *path, size_t plen, codec_val v, char *err,
                      size_t errlen)
{
    const char *name = upd_op_names[kind];
    const char *s;
    size_t slen;
    int64_t n;
    int rc = check_path(name, path, plen, err, errlen);
    if (rc != DOTDB_OK)
        return rc;
    op->kind = kind;
    if ((op->path = dup_str(path, plen)) == NULL)
        return nomem(err, errlen);
    op->plen = plen;
    switch (kind) {
    case UOP_UNSET:
        return DOTDB_OK;
    case UOP_INC:
    case UOP_MUL:
        if (!is_number(v))
            return fail(err, errlen, DOTDB_EINVAL, "%s: value for '%s' must be a number, got %s",
                        name, op->path, codec_type_name(v));
        break;
    case UOP_RENAME:
        if (!codec_as_string(v, &s, &slen))
            return fail(err, errlen, DOTDB_EINVAL, "$rename: target for '%s' must be a string, got %s",
                        op->path, codec_type_name(v));
        if ((rc = check_path(name, s, slen, err, errlen)) != DOTDB_OK)
            return rc;
        if (slen == plen && memcmp(s, path, plen) == 0)
            return fail(err, errlen, DOTDB_EINVAL, "$rename: source and target of '%s' are the same",
                        op->path);
        if ((op->to = dup_str(s, slen)) == NULL)
            return nomem(err, errlen);
        op->tolen = slen;
        return DOTDB_OK;
    case UOP_PUSH:
    case UOP_ADDTOSET:
        return compile_push(op, name, v, kind == UOP_PUSH, err, errlen);
    case UOP_PULL:
        return compile_pull(op, v, err, errlen);
    case UOP_POP:
        if (!as_integral(v, &n) || (n != 1 && n != -1))
            return fail(err, errlen, DOTDB_EINVAL, "$pop: value for '%s' must be 1 or -1", op->path);
        op->pop_first = n == -1;
        return DOTDB_OK;
    case UOP_CURRENTDATE: {
        codec_val t;
        if (codec_type(v) == DOTDB_T_BOOL)
            return DOTDB_OK;
        if (codec_type(v) == DOTDB_T_OBJECT && codec_count(v) == 1 &&
            codec_obj_get(v, "$type", 5, &t) && codec_as_string(t, &s, &slen)) {
            if (slen == 4 && memcmp(s, "date", 4) == 0)
                return DOTDB_OK;
            if (slen == 9 && memcmp(s, "timestamp", 9) == 0) {
                op->is_timestamp = 1;
                return DOTDB_OK;
            }
        }
        return fail(err, errlen, DOTDB_EINVAL,
                    "$currentDate: value for '%s' must be true or {\"$type\": \"date\"} or "
                    "{\"$type\": \"timestamp\"}",
                    op->path);
    }
    default:
        break; /* $set, $min, $max keep the value as is */
    }
    return dval_from_codec(v, &op->arg) == DOTDB_OK ? DOTDB_OK : nomem(err, errlen);
}

static int op_kind(const char *k, size_t klen)
{
    for (int i = 0; i < UOP_COUNT; i++)
        if (strlen(upd_op_names[i]) == klen && memcmp(upd_op_names[i], k, klen) == 0)
            return i;
    return -1;
}

static int compile_operators(upd_spec *u, codec_val doc, char *err, size_t errlen)
{
    size_t total = 0;
    for (size_t i = 0; i < codec_count(doc); i++) {
        const char *k;
        size_t klen;
        codec_val opnd;
        codec_obj_at(doc, i, &k, &klen, &opnd);
        int kind = op_kind(k, klen);
        if (kind < 0)
            return fail(err, errlen, DOTDB_EINVAL, "unknown update operator '%.*s'", (int)klen, k);
        if (codec_type(opnd) != DOTDB_T_OBJECT)
            return fail(err, errlen, DOTDB_EINVAL, "%s: operand must be an object, got %s",
                        upd_op_names[kind], codec_type_name(opnd));
        if (codec_count(opnd) == 0)
            return fail(err, errlen, DOTDB_EINVAL, "%s: operand is empty (name at least one field)",
                        upd_op_names[kind]);
        total += codec_count(opnd);
    }
    if ((u->ops = calloc(total, sizeof *u->ops)) == NULL)
        return nomem(err, errlen);
    for (size_t i = 0; i < codec_count(doc); i++) {
        const char *k;
        size_t klen;
        codec_val opnd;
        codec_obj_at(doc, i, &k, &klen, &opnd);
        int kind = op_kind(k, klen);
        for (size_t j = 0; j < codec_count(opnd); j++) {
            const char *path;
            size_t plen;
            codec_val v;
            codec_obj_at(opnd, j, &path, &plen, &v);
            int rc = compile_op(&u->ops[u->nops++], kind, path, plen, v, err, errlen);
            if (rc != DOTDB_OK)
                return rc;
        }
    }
    return check_conflicts(u, err, errlen);
}

/* A replacement: kept as an object whose first member is "id": null (the
 * document's id goes there at apply), then the other members in order. */
static int compile_replacement(upd_spec *u, codec_val doc, char *err, size_t errlen)
{
    dval idv = dval_null();
    u->is_replacement = 1;
    u->repl = dval_object();
    if (dval_obj_set(&u->repl, "id", 2, &idv) != DOTDB_OK)
        return nomem(err, errlen);
    for (size_t i = 0; i < codec_count(doc); i++) {
        const char *k;
        size_t klen;
        codec_val v;
        dval d;
        codec_obj_at(doc, i, &k, &klen, &v);
        if (dval_from_codec(v, &d) != DOTDB_OK)
            return nomem(err, errlen);
        if (klen == 2 && memcmp(k, "id", 2) == 0) {
            u->repl_id = d;
            continue;
        }
        if (dval_obj_set(&u->repl, k, klen, &d) != DOTDB_OK) {
            dval_free(&d);
            return nomem(err, errlen);
        }
    }
    return DOTDB_OK;
}

int update_compile(codec_val u, upd_spec **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (codec_type(u) != DOTDB_T_OBJECT)
        return fail(err, errlen, DOTDB_EINVAL, "update must be an object, got %s",
                    codec_type_name(u));
    /* operators or plain fields: all members must agree */
    const char *first_op = NULL, *first_field = NULL;
    size_t op_len = 0, field_len = 0;
    for (size_t i = 0; i < codec_count(u); i++) {
        const char *k;
        size_t klen;
        codec_val v;
        codec_obj_at(u, i, &k, &klen, &v);
        if (klen > 0 && k[0] == '$') {
            if (first_op == NULL)
                first_op = k, op_len = klen;
        } else if (first_field == NULL) {
            first_field = k, field_len = klen;
        }
    }
    if (first_op != NULL && first_field != NULL)
        return fail(err, errlen, DOTDB_EINVAL,
                    "update mixes operators and plain fields ('%.*s' and '%.*s')", (int)op_len,
                    first_op, (int)field_len, first_field);
    upd_spec *spec = calloc(1, sizeof *spec);
    if (spec == NULL)
        return nomem(err, errlen);
    int rc = first_op != NULL ? compile_operators(spec, u, err, errlen)
                              : compile_replacement(spec, u, err, errlen);
    if (rc != DOTDB_OK) {
        update_free(spec);
        return rc;
    }
    *out = spec;
    return DOTDB_OK;
}

/* ---- Apply ---------------------------------------------------------------- */

/* 1 when v (a container at depth `level`) nests deeper than max. */
static int too_deep(const dval *v, int level, int max)
{
    if (v->type == DV_ARRAY) {
        if (level > max)
            return 1;
        for (size_t i = 0; i < v->u.arr.n; i++)
            if (too_deep(&v->u.arr.v[i], level + 1, max))
                return 1;
    } else if (v->type == DV_OBJECT) {
        if (level > max)
            return 1;
        for (size_t i = 0; i < v->u.obj.n; i++)
            if (too_deep(&v->u.obj.m[i].v, level + 1, max))
                return 1;
    }
    return 0;
}

static int build_replacement(const upd_spec *u, codec_val doc, dval *tree, char *err,
                             size_t errlen)
{
    codec_val idv;
    dval id;
    if (!codec_obj_get(doc, "id", 2, &idv))
        return fail(err, errlen, DOTDB_EINVAL, "document has no id");
    if (dval_from_codec(idv, &id) != DOTDB_OK)
        return nomem(err, errlen);
    if (u->repl_id.type != DV_NULL && !dval_equal(&id, &u->repl_id)) {
        dval_free(&id);
        return fail(err, errlen, DOTDB_EINVAL, "update would change the id");
    }
    if (dval_copy(&u->repl, tree) != DOTDB_OK) {
        dval_free(&id);
        return nomem(err, errlen);
    }
    tree->u.obj.m[0].v = id; /* the "id": null placeholder */
    return DOTDB_OK;
}

int update_apply(const upd_spec *u, codec_val doc, int64_t now_ms, const codec_limits *lim,
                 dbuf *out, int *changed, char *err, size_t errlen)
{
    size_t start = out->len;
    size_t max_size = lim && lim->max_size ? lim->max_size : CODEC_DEFAULT_MAX_SIZE;
    int max_depth = lim && lim->max_depth > 0 ? lim->max_depth : CODEC_DEFAULT_MAX_DEPTH;
    dval tree = dval_null();
    int rc;

    *changed = 0;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (u->is_replacement) {
        rc = build_replacement(u, doc, &tree, err, errlen);
    } else {
        rc = dval_from_codec(doc, &tree) == DOTDB_OK ? DOTDB_OK : nomem(err, errlen);
        for (size_t i = 0; i < u->nops && rc == DOTDB_OK; i++)
            rc = upd_apply_op(&u->ops[i], &tree, now_ms, err, errlen);
    }
    if (rc != DOTDB_OK)
        goto done;
    if (too_deep(&tree, 1, max_depth)) {
        rc = fail(err, errlen, DOTDB_ETOODEEP, "updated document nests deeper than %d",
                  max_depth);
        goto done;
    }
    rc = dval_encode(&tree, out);
    if (rc == DOTDB_EINVAL) {
        rc = fail(err, errlen, rc, "update produced a number that is not finite");
        goto done;
    }
    if (rc == DOTDB_OK && out->len - start > max_size)
        rc = DOTDB_ETOOBIG;
    if (rc == DOTDB_ETOOBIG) {
        rc = fail(err, errlen, rc, "updated document exceeds the size limit of %zu bytes",
                  max_size);
        goto done;
    }
    if (rc != DOTDB_OK) {
        rc = nomem(err, errlen);
        goto done;
    }
    /* Byte comparison: the encoding is canonical, so an unchanged tree
     * encodes to the same bytes (a stored document written with wider
     * fields than needed would count as changed, and be rewritten). */
    *changed = out->len - start != doc.len || memcmp(out->data + start, doc.p, doc.len) != 0;
done:
    if (rc != DOTDB_OK)
        out->len = start;
    dval_free(&tree);
    return rc;
}
