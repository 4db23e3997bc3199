/*
 * agg_shape.c - the field trees of the stages that reshape documents
 * ($project with inclusions or computed fields, $addFields and $set), and
 * setting one dotted path ($unwind).  See agg_internal.h.
 *
 * A spec such as {"a.b": 1, "a.c": {"$add": ["$x", 1]}, "d": "$y"} (or the
 * same with nested objects, {"a": {"b": 1, ...}}) becomes a tree: inner
 * nodes for path parts, leaves that include a field or compute one.  It is
 * applied as MongoDB documents it, in two passes over the binary document:
 *
 *   1. ($project only) inclusion: the fields named by the tree, in the
 *      input document's order; an inner node applies to an object, to
 *      each element of an array (scalars in it are dropped, nested arrays
 *      are descended), and drops anything else.  "id" and "_id" are
 *      included unless the spec excludes them with 0 or false.
 *   2. computed fields, in the spec's order: an existing field keeps its
 *      position and gets the new value (a MISSING value removes it), a new
 *      field is appended; an inner node applies to an object, to each
 *      element of an array, and replaces anything else (a scalar, or
 *      nothing) by a new object of its computed fields.
 *
 * Expressions always see the stage's input document as $$ROOT.
 * Exclusion-only $project specs do not come here: they go to qproj
 * (query.h) through agg_shape_exclusion_spec().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg_internal.h"

enum { SN_INCLUDE, SN_EXPR, SN_INNER };

typedef struct snode snode;
struct snode {
    char *key; /* owned */
    size_t klen;
    int kind;
    agg_expr *expr; /* SN_EXPR */
    snode *kids;    /* SN_INNER: owned, spec order */
    size_t nkids, cap;
    int has_expr; /* the subtree computes something */
};

struct agg_shape {
    int mode;
    snode root;
};

static void snode_fini(snode *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        snode_fini(&n->kids[i]);
    free(n->kids);
    free(n->key);
    agg_expr_free(n->expr);
    memset(n, 0, sizeof *n);
}

void agg_shape_free(agg_shape *s)
{
    if (s == NULL)
        return;
    snode_fini(&s->root);
    free(s);
}

static snode *find_kid(const snode *n, const char *key, size_t klen)
{
    for (size_t i = 0; i < n->nkids; i++)
        if (n->kids[i].klen == klen && memcmp(n->kids[i].key, key, klen) == 0)
            return &n->kids[i];
    return NULL;
}

/* A new child of n (its address is valid until the next add to n). */
static snode *add_kid(snode *n, const char *key, size_t klen, int kind)
{
    if (n->nkids == n->cap) {
        size_t ncap = n->cap ? n->cap * 2 : 4;
        snode *k = realloc(n->kids, ncap * sizeof *k);
        if (k == NULL)
            return NULL;
        n->kids = k;
        n->cap = ncap;
    }
    snode *k = &n->kids[n->nkids];
    memset(k, 0, sizeof *k);
    if ((k->key = malloc(klen + 1)) == NULL)
        return NULL;
    memcpy(k->key, key, klen);
    k->key[klen] = '\0';
    k->klen = klen;
    k->kind = kind;
    n->nkids++;
    return k;
}

/* {"b": ...} whose first key is not an operator: a nested spec. */
static int is_subspec(codec_val v)
{
    const char *k;
    size_t kl;
    codec_val mv;
    return codec_type(v) == DOTDB_T_OBJECT && codec_count(v) > 0 &&
           codec_obj_at(v, 0, &k, &kl, &mv) && !(kl > 0 && k[0] == '$');
}

static int is_id_key(const char *k, size_t kl)
{
    return (kl == 2 && memcmp(k, "id", 2) == 0) || (kl == 3 && memcmp(k, "_id", 3) == 0);
}

typedef struct shape_build {
    agg_shape *s;
    int excluded_id, excluded__id;
    char *err;
    size_t errlen;
} shape_build;

static int shape_add(shape_build *b, snode *node, codec_val spec, const char *prefix);

/* Add one member of a spec (key k, value v) under node. */
static int shape_add_member(shape_build *b, snode *node, const char *k, size_t kl, codec_val v,
                            const char *prefix)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s%.*s", prefix, prefix[0] ? "." : "", (int)kl, k);
    int project = b->s->mode == AGG_SHAPE_PROJECT;
    int t = codec_type(v);

    if (project && node == &b->s->root && is_id_key(k, kl) &&
        (t == DOTDB_T_BOOL || t == DOTDB_T_INT || t == DOTDB_T_DOUBLE) && !agg_truthy(v)) {
        if (kl == 2)
            b->excluded_id = 1;
        else
            b->excluded__id = 1;
        return DOTDB_OK;
    }
    /* walk the dotted parts, creating inner nodes */
    snode *cur = node;
    size_t start = 0;
    for (size_t i = 0; i <= kl; i++) {
        if (i < kl && k[i] != '.')
            continue;
        const char *part = k + start;
        size_t plen = i - start;
        if (plen == 0)
            return agg_err(DOTDB_EINVAL, b->err, b->errlen, "field path '%s' has an empty part",
                           path);
        if (part[0] == '$')
            return agg_err(DOTDB_EINVAL, b->err, b->errlen,
                           "field name '%.*s' in '%s' may not start with '$'", (int)plen, part,
                           path);
        int last = i == kl;
        snode *kid = find_kid(cur, part, plen);
        if (kid != NULL && (kid->kind != SN_INNER || (last && !is_subspec(v))))
            return agg_err(DOTDB_EINVAL, b->err, b->errlen, "path collision at '%s'", path);
        if (kid == NULL && !(last && !is_subspec(v))) {
            if ((kid = add_kid(cur, part, plen, SN_INNER)) == NULL)
                return agg_err(DOTDB_ENOMEM, b->err, b->errlen, "out of memory");
        }
        if (!last) {
            cur = kid;
            start = i + 1;
            continue;
        }
        if (kid != NULL) /* a nested spec: {"a": {"b": 1}} */
            return shape_add(b, kid, v, path);
        if (project && (t == DOTDB_T_BOOL || t == DOTDB_T_INT || t == DOTDB_T_DOUBLE)) {
            if (!agg_truthy(v))
                return agg_err(DOTDB_EINVAL, b->err, b->errlen,
                               "cannot exclude '%s' in a projection that includes or computes "
                               "fields (only id and _id may be excluded there)", path);
            return add_kid(cur, part, plen, SN_INCLUDE) != NULL
                       ? DOTDB_OK
                       : agg_err(DOTDB_ENOMEM, b->err, b->errlen, "out of memory");
        }
        if (project && t == DOTDB_T_OBJECT && codec_count(v) == 0)
            return agg_err(DOTDB_EINVAL, b->err, b->errlen,
                           "an empty object is not a valid value (field '%s')", path);
        agg_expr *e;
        char msg[256];
        int rc = agg_expr_compile(v, &e, msg, sizeof msg);
        if (rc != DOTDB_OK)
            return agg_err(rc, b->err, b->errlen, "field '%s': %s", path, msg);
        if ((kid = add_kid(cur, part, plen, SN_EXPR)) == NULL) {
            agg_expr_free(e);
            return agg_err(DOTDB_ENOMEM, b->err, b->errlen, "out of memory");
        }
        kid->expr = e;
        return DOTDB_OK;
    }
    return DOTDB_OK; /* not reached */
}

static int shape_add(shape_build *b, snode *node, codec_val spec, const char *prefix)
{
    for (size_t i = 0; i < codec_count(spec); i++) {
        const char *k;
        size_t kl;
        codec_val v;
        codec_obj_at(spec, i, &k, &kl, &v);
        if (kl == 0)
            return agg_err(DOTDB_EINVAL, b->err, b->errlen, "empty field name");
        int rc = shape_add_member(b, node, k, kl, v, prefix);
        if (rc != DOTDB_OK)
            return rc;
    }
    return DOTDB_OK;
}

static int mark_exprs(snode *n)
{
    n->has_expr = n->kind == SN_EXPR;
    for (size_t i = 0; i < n->nkids; i++)
        n->has_expr |= mark_exprs(&n->kids[i]);
    return n->has_expr;
}

int agg_shape_compile(codec_val spec, int mode, agg_shape **out, char *err, size_t errlen)
{
    *out = NULL;
    agg_shape *s = calloc(1, sizeof *s);
    if (s == NULL)
        return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    s->mode = mode;
    s->root.kind = SN_INNER;
    shape_build b = {.s = s, .err = err, .errlen = errlen};
    int rc = shape_add(&b, &s->root, spec, "");
    if (rc == DOTDB_OK && mode == AGG_SHAPE_PROJECT) {
        /* id and _id are kept unless excluded; as the first inclusions they
         * still come out in the document's own order */
        if (!b.excluded_id && find_kid(&s->root, "id", 2) == NULL &&
            add_kid(&s->root, "id", 2, SN_INCLUDE) == NULL)
            rc = agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
        if (rc == DOTDB_OK && !b.excluded__id && find_kid(&s->root, "_id", 3) == NULL &&
            add_kid(&s->root, "_id", 3, SN_INCLUDE) == NULL)
            rc = agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    }
    if (rc != DOTDB_OK) {
        agg_shape_free(s);
        return rc;
    }
    mark_exprs(&s->root);
    *out = s;
    return DOTDB_OK;
}

/* ---- exclusion specs for qproj --------------------------------------------- */

/* 1 when every leaf of spec is 0 or false (nested specs allowed), with the
 * dotted paths appended to keys (NUL-separated) and counted in *n.  A
 * top-level id or _id set to 1 or true is skipped: that is their default,
 * and as in MongoDB it does not make the projection an inclusion
 * ({"a": 0, "_id": 1} excludes a); *ids_included says one was seen and
 * *ids_excluded counts the ids among the n exclusions. */
static int collect_exclusions(codec_val spec, const char *prefix, dbuf *keys, size_t *n,
                              int *ids_included, size_t *ids_excluded)
{
    for (size_t i = 0; i < codec_count(spec); i++) {
        const char *k;
        size_t kl;
        codec_val v;
        codec_obj_at(spec, i, &k, &kl, &v);
        int t = codec_type(v);
        int top_id = prefix[0] == '\0' && is_id_key(k, kl);
        if (top_id && (t == DOTDB_T_BOOL || t == DOTDB_T_INT || t == DOTDB_T_DOUBLE) &&
            agg_truthy(v)) {
            *ids_included = 1;
            continue;
        }
        dbuf path;
        dbuf_init(&path);
        if ((prefix[0] && (dbuf_append(&path, prefix, strlen(prefix)) || dbuf_putc(&path, '.'))) ||
            dbuf_append(&path, k, kl) || dbuf_putc(&path, 0)) {
            dbuf_free(&path);
            return DOTDB_ENOMEM;
        }
        int rc;
        if (is_subspec(v)) {
            rc = collect_exclusions(v, (const char *)path.data, keys, n, ids_included,
                                    ids_excluded);
        } else if ((t == DOTDB_T_BOOL || t == DOTDB_T_INT || t == DOTDB_T_DOUBLE) &&
                   !agg_truthy(v)) {
            rc = dbuf_append(keys, path.data, path.len) ? DOTDB_ENOMEM : 1;
            (*n)++;
            *ids_excluded += (size_t)top_id;
        } else {
            rc = 0;
        }
        dbuf_free(&path);
        if (rc <= 0)
            return rc;
    }
    return 1;
}

int agg_shape_exclusion_spec(codec_val spec, dbuf *flat, char *err, size_t errlen)
{
    dbuf keys;
    dbuf_init(&keys);
    agg_arena a;
    agg_arena_init(&a);
    size_t n = 0, ids_excluded = 0;
    int ids_included = 0;
    int rc = codec_count(spec) == 0
                 ? 0
                 : collect_exclusions(spec, "", &keys, &n, &ids_included, &ids_excluded);
    if (rc == 1 && ids_included && n == ids_excluded)
        rc = 0; /* only ids named, one of them kept ({"_id": 1}): an inclusion of the ids */
    if (rc == 1) {
        agg_kv *m = agg_arena_alloc(&a, n * sizeof *m);
        codec_val zero, obj;
        if (m == NULL || agg_enc_int(&a, 0, &zero) != DOTDB_OK) {
            rc = DOTDB_ENOMEM;
        } else {
            const char *p = (const char *)keys.data;
            for (size_t i = 0; i < n; i++) {
                size_t len = strlen(p);
                m[i] = (agg_kv){p, len, zero};
                p += len + 1;
            }
            int erc = agg_enc_object(&a, m, n, &obj);
            if (erc == DOTDB_EINVAL)
                rc = agg_err(DOTDB_EINVAL, err, errlen, "the same path is excluded twice");
            else if (erc != DOTDB_OK || dbuf_append(flat, obj.p, obj.len) != 0)
                rc = DOTDB_ENOMEM;
        }
    }
    if (rc == DOTDB_ENOMEM)
        agg_err(rc, err, errlen, "out of memory");
    dbuf_free(&keys);
    agg_arena_free(&a);
    return rc;
}

/* ---- applying a shape ------------------------------------------------------ */

static int nomem(agg_ectx *c) { return agg_err(DOTDB_ENOMEM, c->err, c->errlen, "out of memory"); }

static int enc_result(agg_ectx *c, int rc)
{
    if (rc == DOTDB_ENOMEM)
        return nomem(c);
    return agg_err(rc, c->err, c->errlen, "the document being built is larger than 4 GiB");
}

static int project_value(const snode *n, codec_val v, agg_ectx *c, codec_val *out);

/* Pass 1 on an object: the included fields, in the object's order. */
static int project_object(const snode *n, codec_val obj, agg_ectx *c, codec_val *out)
{
    size_t cnt = codec_count(obj), k = 0;
    agg_kv *m = agg_arena_alloc(c->arena, (cnt ? cnt : 1) * sizeof *m);
    if (m == NULL)
        return nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        const char *key;
        size_t klen;
        codec_val v;
        codec_obj_at(obj, i, &key, &klen, &v);
        const snode *kid = find_kid(n, key, klen);
        if (kid == NULL || kid->kind == SN_EXPR)
            continue;
        if (kid->kind == SN_INNER) {
            int rc = project_value(kid, v, c, &v);
            if (rc != DOTDB_OK)
                return rc;
            if (v.p == NULL)
                continue;
        }
        m[k++] = (agg_kv){key, klen, v};
    }
    int rc = agg_enc_object(c->arena, m, k, out);
    return rc == DOTDB_OK ? rc : enc_result(c, rc);
}

static int project_value(const snode *n, codec_val v, agg_ectx *c, codec_val *out)
{
    int t = codec_type(v);
    if (t == DOTDB_T_OBJECT)
        return project_object(n, v, c, out);
    if (t != DOTDB_T_ARRAY) {
        *out = AGG_MISSING;
        return DOTDB_OK;
    }
    size_t cnt = codec_count(v), k = 0;
    codec_val *el = agg_arena_alloc(c->arena, (cnt ? cnt : 1) * sizeof *el);
    if (el == NULL)
        return nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        codec_val e;
        codec_arr_at(v, i, &e);
        int rc = project_value(n, e, c, &e);
        if (rc != DOTDB_OK)
            return rc;
        if (e.p != NULL)
            el[k++] = e;
    }
    int rc = agg_enc_array(c->arena, el, k, out);
    return rc == DOTDB_OK ? rc : enc_result(c, rc);
}

static int compute_value(const snode *n, codec_val v, agg_ectx *c, codec_val *out);

/* Pass 2 on an object (or on nothing: a new object). */
static int compute_object(const snode *n, codec_val obj, agg_ectx *c, codec_val *out)
{
    size_t cnt = obj.p != NULL && codec_type(obj) == DOTDB_T_OBJECT ? codec_count(obj) : 0;
    size_t k = cnt;
    agg_kv *m = agg_arena_alloc(c->arena, (cnt + n->nkids + 1) * sizeof *m);
    if (m == NULL)
        return nomem(c);
    for (size_t i = 0; i < cnt; i++)
        codec_obj_at(obj, i, &m[i].key, &m[i].klen, &m[i].v);
    for (size_t j = 0; j < n->nkids; j++) {
        const snode *kid = &n->kids[j];
        if (!kid->has_expr)
            continue;
        size_t at = k;
        for (size_t i = 0; i < k; i++)
            if (m[i].klen == kid->klen && memcmp(m[i].key, kid->key, kid->klen) == 0)
                at = i;
        codec_val v;
        int rc = kid->kind == SN_EXPR
                     ? agg_expr_eval(kid->expr, c, &v)
                     : compute_value(kid, at < k ? m[at].v : AGG_MISSING, c, &v);
        if (rc != DOTDB_OK)
            return rc;
        if (at < k && v.p == NULL) { /* removed */
            memmove(&m[at], &m[at + 1], (k - at - 1) * sizeof *m);
            k--;
        } else if (at < k) {
            m[at].v = v;
        } else if (v.p != NULL) {
            m[k++] = (agg_kv){kid->key, kid->klen, v};
        }
    }
    int rc = agg_enc_object(c->arena, m, k, out);
    return rc == DOTDB_OK ? rc : enc_result(c, rc);
}

static int compute_value(const snode *n, codec_val v, agg_ectx *c, codec_val *out)
{
    int t = v.p == NULL ? DOTDB_T_MISSING : codec_type(v);
    if (t != DOTDB_T_ARRAY)
        return compute_object(n, t == DOTDB_T_OBJECT ? v : AGG_MISSING, c, out);
    size_t cnt = codec_count(v);
    codec_val *el = agg_arena_alloc(c->arena, (cnt ? cnt : 1) * sizeof *el);
    if (el == NULL)
        return nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        codec_val e;
        codec_arr_at(v, i, &e);
        int rc = compute_value(n, e, c, &el[i]);
        if (rc != DOTDB_OK)
            return rc;
    }
    int rc = agg_enc_array(c->arena, el, cnt, out);
    return rc == DOTDB_OK ? rc : enc_result(c, rc);
}

int agg_shape_apply(const agg_shape *s, agg_ectx *c, codec_val *out)
{
    codec_val doc = c->root;
    if (s->mode == AGG_SHAPE_PROJECT) {
        int rc = project_object(&s->root, doc, c, &doc);
        if (rc != DOTDB_OK || !s->root.has_expr) {
            *out = doc;
            return rc;
        }
    }
    return compute_object(&s->root, doc, c, out);
}

/* ---- one dotted path --------------------------------------------------------- */

int agg_set_path(agg_arena *a, codec_val obj, const agg_path_part *parts, size_t n, codec_val v,
                 codec_val *out)
{
    size_t cnt = obj.p != NULL && codec_type(obj) == DOTDB_T_OBJECT ? codec_count(obj) : 0;
    size_t k = 0;
    int found = 0;
    agg_kv *m = agg_arena_alloc(a, (cnt + 1) * sizeof *m);
    if (m == NULL)
        return DOTDB_ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        codec_obj_at(obj, i, &m[k].key, &m[k].klen, &m[k].v);
        if (m[k].klen != parts[0].len || memcmp(m[k].key, parts[0].s, parts[0].len) != 0) {
            k++;
            continue;
        }
        found = 1;
        if (n > 1 && v.p == NULL && codec_type(m[k].v) != DOTDB_T_OBJECT) {
            k++; /* nothing to remove below a non-object */
        } else if (n > 1) {
            int rc = agg_set_path(a, m[k].v, parts + 1, n - 1, v, &m[k].v);
            if (rc != DOTDB_OK)
                return rc;
            k++;
        } else if (v.p != NULL) {
            m[k++].v = v;
        }
    }
    if (!found && v.p != NULL) {
        m[k] = (agg_kv){parts[0].s, parts[0].len, v};
        if (n > 1) {
            int rc = agg_set_path(a, AGG_MISSING, parts + 1, n - 1, v, &m[k].v);
            if (rc != DOTDB_OK)
                return rc;
        }
        k++;
    }
    return agg_enc_object(a, m, k, out);
}
