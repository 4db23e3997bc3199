/*
 * query_proj.c - MongoDB find projections: inclusion ({"a": 1, "b.c": 1})
 * or exclusion ({"a": 0, "b.c": 0}), "id" included unless {"id": 0}.
 *
 * The specification compiles into a tree of path parts (a trie); a leaf
 * ends a projected path.  Two paths where one is a prefix of the other
 * ({"a": 1, "a.b": 1}) are an error, as in MongoDB ("path collision").
 *
 * Inclusion builds a new document (lib/dval.h) in the document's own
 * member order: a member named by a leaf is copied whole; a member named
 * by an inner node is projected further when it is an object, and when it
 * is an array each element is (objects projected, nested arrays projected
 * element by element, scalars dropped); a scalar there is dropped.  An
 * object left with no members stays as {} ({b: {x: 1}} under "b.c" gives
 * {b: {}}), as MongoDB does.
 *
 * Exclusion copies the document and removes the named members, through
 * objects and through arrays of objects the same way (scalars in such
 * arrays stay).  A document with none of the excluded top-level members
 * is appended as it is, without decoding.
 *
 * Numeric parts are field names here ("a.0" names the member "0", not an
 * array element), as in MongoDB's find projection.
 */
#include <stdlib.h>
#include <string.h>

#include "dval.h"
#include "query.h"
#include "query_int.h"

typedef struct pnode pnode;
struct pnode {
    const char *key; /* into qproj.src */
    size_t klen;
    int is_leaf;
    pnode *kids;     /* first child */
    pnode *next;     /* next sibling */
};

struct qproj {
    qarena arena;
    uint8_t *src;
    int is_inclusion;
    pnode root;      /* kids: the top-level fields */
};

static pnode *find_kid(const pnode *n, const char *key, size_t klen)
{
    for (pnode *k = n->kids; k != NULL; k = k->next)
        if (k->klen == klen && memcmp(k->key, key, klen) == 0)
            return k;
    return NULL;
}

/* Add path p to the trie. */
static int trie_add(qproj *pr, const qpath *p, char *err, size_t errlen)
{
    pnode *cur = &pr->root;
    for (size_t i = 0; i < p->n; i++) {
        const qpart *part = &p->parts[i];
        int last = i + 1 == p->n;
        pnode *k = find_kid(cur, part->s, part->len);
        if (k != NULL && (k->is_leaf || last)) {
            qerr(err, errlen, "projection: path collision at '%.*s'", (int)p->full_len, p->full);
            return DOTDB_EINVAL;
        }
        if (k == NULL) {
            if ((k = qarena_alloc(&pr->arena, sizeof *k)) == NULL)
                return DOTDB_ENOMEM;
            k->key = part->s;
            k->klen = part->len;
            k->is_leaf = last;
            k->next = cur->kids;
            cur->kids = k;
        }
        cur = k;
    }
    return DOTDB_OK;
}

/* 1 include, 0 exclude, -1 not a projection value. */
static int proj_flag(codec_val v)
{
    double d;
    switch (codec_type(v)) {
    case DOTDB_T_BOOL:
        return v.p[0] == CODEC_TRUE;
    case DOTDB_T_INT:
    case DOTDB_T_DOUBLE:
        codec_as_double(v, &d);
        return d != 0;
    default:
        return -1;
    }
}

static int valid_path(const char *k, size_t klen)
{
    if (klen == 0 || k[0] == '$' || k[0] == '.' || k[klen - 1] == '.')
        return 0;
    for (size_t i = 1; i < klen; i++)
        if (k[i] == '.' && k[i - 1] == '.')
            return 0;
    return 1;
}

int qproj_compile(codec_val spec, qproj **out, char *err, size_t errlen)
{
    *out = NULL;
    if (spec.p == NULL || codec_type(spec) != DOTDB_T_OBJECT) {
        qerr(err, errlen, "projection: the specification must be an object");
        return DOTDB_EINVAL;
    }
    qproj *pr = calloc(1, sizeof *pr);
    if (pr == NULL || (pr->src = malloc(spec.len)) == NULL) {
        free(pr);
        return DOTDB_ENOMEM;
    }
    memcpy(pr->src, spec.p, spec.len);
    spec.p = pr->src;
    int rc = DOTDB_OK;
    int mode = -1;    /* 1 inclusion, 0 exclusion, -1 not yet known */
    int id_flag = -1; /* {"id": ...} when given */
    size_t n = codec_count(spec);
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        codec_val v;
        codec_obj_at(spec, i, &k, &klen, &v);
        int flag = proj_flag(v);
        if (flag < 0) {
            qerr(err, errlen, "projection: the value of '%.*s' must be 1, 0, true or false",
                 (int)klen, k);
            rc = DOTDB_EINVAL;
            goto fail;
        }
        if (!valid_path(k, klen)) {
            qerr(err, errlen, "projection: invalid field path '%.*s'", (int)klen, k);
            rc = DOTDB_EINVAL;
            goto fail;
        }
        if (klen == 2 && memcmp(k, "id", 2) == 0) {
            id_flag = flag;
            continue;
        }
        if (mode >= 0 && mode != flag) {
            qerr(err, errlen,
                 "projection: cannot mix inclusion and exclusion ('%.*s'); only \"id\" may be "
                 "excluded from an inclusion",
                 (int)klen, k);
            rc = DOTDB_EINVAL;
            goto fail;
        }
        mode = flag;
        qpath p;
        if ((rc = qpath_parse(&pr->arena, k, klen, &p)) != DOTDB_OK ||
            (rc = trie_add(pr, &p, err, errlen)) != DOTDB_OK)
            goto fail;
    }
    if (mode < 0) /* only "id", or nothing */
        mode = id_flag == 1 ? 1 : 0;
    pr->is_inclusion = mode;
    /* inclusion keeps id unless {"id": 0}; exclusion drops it on {"id": 0} */
    if ((mode == 1 && id_flag != 0) || (mode == 0 && id_flag == 0)) {
        qpath p;
        if ((rc = qpath_parse(&pr->arena, "id", 2, &p)) != DOTDB_OK ||
            (rc = trie_add(pr, &p, err, errlen)) != DOTDB_OK)
            goto fail;
    }
    *out = pr;
    return DOTDB_OK;
fail:
    if (rc == DOTDB_ENOMEM)
        qerr(err, errlen, "out of memory compiling the projection");
    qproj_free(pr);
    return rc;
}

/* ---- inclusion ---- */

static int include_arr(const pnode *n, codec_val arr, dval *out);

static int include_obj(const pnode *n, codec_val obj, dval *out)
{
    *out = dval_object();
    size_t cnt = codec_count(obj);
    for (size_t i = 0; i < cnt; i++) {
        const char *k;
        size_t klen;
        codec_val v;
        codec_obj_at(obj, i, &k, &klen, &v);
        const pnode *kid = find_kid(n, k, klen);
        if (kid == NULL)
            continue;
        int t = codec_type(v), rc;
        dval child;
        if (kid->is_leaf)
            rc = dval_from_codec(v, &child);
        else if (t == DOTDB_T_OBJECT)
            rc = include_obj(kid, v, &child);
        else if (t == DOTDB_T_ARRAY)
            rc = include_arr(kid, v, &child);
        else
            continue;
        if (rc == DOTDB_OK && (rc = dval_obj_set(out, k, klen, &child)) != DOTDB_OK)
            dval_free(&child);
        if (rc != DOTDB_OK) {
            dval_free(out);
            return rc;
        }
    }
    return DOTDB_OK;
}

static int include_arr(const pnode *n, codec_val arr, dval *out)
{
    *out = dval_array();
    size_t cnt = codec_count(arr);
    for (size_t i = 0; i < cnt; i++) {
        codec_val e;
        codec_arr_at(arr, i, &e);
        int t = codec_type(e), rc;
        dval child;
        if (t == DOTDB_T_OBJECT)
            rc = include_obj(n, e, &child);
        else if (t == DOTDB_T_ARRAY)
            rc = include_arr(n, e, &child);
        else
            continue;
        if (rc == DOTDB_OK && (rc = dval_arr_push(out, &child)) != DOTDB_OK)
            dval_free(&child);
        if (rc != DOTDB_OK) {
            dval_free(out);
            return rc;
        }
    }
    return DOTDB_OK;
}

/* ---- exclusion ---- */

static void exclude_in(const pnode *n, dval *v);

static void exclude_obj(const pnode *n, dval *obj)
{
    for (const pnode *k = n->kids; k != NULL; k = k->next) {
        if (k->is_leaf) {
            dval_obj_remove(obj, k->key, k->klen);
            continue;
        }
        dval *child = dval_obj_get(obj, k->key, k->klen);
        if (child != NULL)
            exclude_in(k, child);
    }
}

/* Below a non-leaf node: objects lose the node's paths, arrays pass them
 * to their elements, scalars stay. */
static void exclude_in(const pnode *n, dval *v)
{
    if (v->type == DV_OBJECT)
        exclude_obj(n, v);
    else if (v->type == DV_ARRAY)
        for (size_t i = 0; i < v->u.arr.n; i++)
            exclude_in(n, &v->u.arr.v[i]);
}

static int exclusion_touches(const qproj *p, codec_val doc)
{
    for (const pnode *k = p->root.kids; k != NULL; k = k->next) {
        codec_val v;
        if (codec_obj_get(doc, k->key, k->klen, &v))
            return 1;
    }
    return 0;
}

int qproj_apply(const qproj *p, codec_val doc, dbuf *out)
{
    dval res;
    int rc;
    if (p->is_inclusion) {
        rc = include_obj(&p->root, doc, &res);
    } else {
        if (!exclusion_touches(p, doc))
            return dbuf_append(out, doc.p, doc.len) != 0 ? DOTDB_ENOMEM : DOTDB_OK;
        rc = dval_from_codec(doc, &res);
        if (rc == DOTDB_OK)
            exclude_obj(&p->root, &res);
    }
    if (rc == DOTDB_OK)
        rc = dval_encode(&res, out);
    dval_free(&res);
    return rc;
}

void qproj_free(qproj *p)
{
    if (p == NULL)
        return;
    qarena_free(&p->arena);
    free(p->src);
    free(p);
}
