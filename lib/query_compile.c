/*
 * query_compile.c - compiles MongoDB filters (qfilter_compile) into the
 * tree of lib/query_filter.h, checking every operator and operand (errors
 * name the operator: "$in: needs an array", "unknown operator: $foo");
 * reads the compiled tree back for the primary index (qfilter_id_eq) and
 * upsert seeds (qfilter_seed).  Also the small compile-time helpers shared
 * with the sort and projection compilers: the arena, dotted paths and
 * error messages (query_int.h).
 *
 * The semantics each node implements are described in lib/query.c.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dval.h"
#include "query_filter.h"

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

