/*
 * query_order.c - MongoDB's order across types (qvalue_cmp) and multi-key
 * sort specifications (qsort_*), on the binary encoding in place.
 *
 * Order of types (query.h): missing = null < numbers < strings < objects
 * < arrays < false < true.  Numbers compare by exact value: an int64 and
 * a double are never converted to a common type (2^53 + 1 > 2^53 as a
 * double).  Strings compare as bytes (memcmp, then the shorter first).
 * Objects compare member by member in stored order, the key first (as
 * bytes) then the value, and a prefix sorts first; arrays element by
 * element.  (MongoDB compares the type of a member's value before its key;
 * DotDB follows query.h and dval_cmp, which compare the key first: the
 * order differs only between objects whose members differ in both.)
 *
 * Sort keys.  For each key of the spec, a document gives a set of
 * candidate values at the dotted path, walked as MongoDB's sort does:
 *   - through an object, the member (missing: null);
 *   - through an array when the path goes on: each element that is an
 *     object continues the path, any other element gives null; a part
 *     that is a canonical index ("0") picks that element instead; an
 *     empty array gives null;
 *   - at the end of the path an array gives each of its elements (an
 *     empty array gives "undefined", which sorts before null, as in
 *     MongoDB), anything else gives itself.
 * Ascending uses the smallest candidate, descending the largest.
 */
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "query_int.h"

static const uint8_t undefined_marker = 0xff;
const codec_val QVAL_UNDEFINED = {&undefined_marker, 0};

int qvalue_rank(codec_val v)
{
    if (v.p == &undefined_marker)
        return 0;
    if (v.p == NULL)
        return 1;
    switch (codec_type(v)) {
    case DOTDB_T_NULL:
        return 1;
    case DOTDB_T_INT:
    case DOTDB_T_DOUBLE:
        return 2;
    case DOTDB_T_STRING:
        return 3;
    case DOTDB_T_OBJECT:
        return 4;
    case DOTDB_T_ARRAY:
        return 5;
    default:
        return 6; /* DOTDB_T_BOOL */
    }
}

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return (alen > blen) - (alen < blen);
}

/* int64 i against double d exactly: trunc(d) is representable both as a
 * double and (in range) as an int64, so no rounding happens anywhere. */
static int cmp_int_double(int64_t i, double d)
{
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    int64_t t = (int64_t)d;
    if (i != t)
        return i < t ? -1 : 1;
    double td = (double)t;
    return d > td ? -1 : d < td ? 1 : 0;
}

static int cmp_numbers(codec_val a, codec_val b)
{
    int64_t ia, ib;
    double da, db;
    int a_int = codec_as_int64(a, &ia), b_int = codec_as_int64(b, &ib);
    if (a_int && b_int)
        return (ia > ib) - (ia < ib);
    if (a_int) {
        codec_as_double(b, &db);
        return cmp_int_double(ia, db);
    }
    codec_as_double(a, &da);
    if (b_int)
        return -cmp_int_double(ib, da);
    codec_as_double(b, &db);
    return (da > db) - (da < db);
}

/* Recursion depth is bounded by the depth the values were validated to. */
int qvalue_cmp(codec_val a, codec_val b)
{
    int ra = qvalue_rank(a), rb = qvalue_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (ra) {
    case 0:
    case 1:
        return 0;
    case 2:
        return cmp_numbers(a, b);
    case 3: {
        const char *sa, *sb;
        size_t la, lb;
        codec_as_string(a, &sa, &la);
        codec_as_string(b, &sb, &lb);
        return bytes_cmp(sa, la, sb, lb);
    }
    case 4: {
        size_t na = codec_count(a), nb = codec_count(b);
        for (size_t i = 0; i < na && i < nb; i++) {
            const char *ka, *kb;
            size_t kla, klb;
            codec_val va, vb;
            codec_obj_at(a, i, &ka, &kla, &va);
            codec_obj_at(b, i, &kb, &klb, &vb);
            int c = bytes_cmp(ka, kla, kb, klb);
            if (c == 0)
                c = qvalue_cmp(va, vb);
            if (c != 0)
                return c;
        }
        return (na > nb) - (na < nb);
    }
    case 5: {
        size_t na = codec_count(a), nb = codec_count(b);
        for (size_t i = 0; i < na && i < nb; i++) {
            codec_val ea, eb;
            codec_arr_at(a, i, &ea);
            codec_arr_at(b, i, &eb);
            int c = qvalue_cmp(ea, eb);
            if (c != 0)
                return c;
        }
        return (na > nb) - (na < nb);
    }
    default:
        return (a.p[0] == CODEC_TRUE) - (b.p[0] == CODEC_TRUE);
    }
}

/* ---- sort specifications ---- */

#define QSORT_MAX_KEYS 32

typedef struct qsort_key {
    qpath path;
    int dir; /* 1 ascending, -1 descending */
} qsort_key;

struct qsort_spec {
    qarena arena;
    uint8_t *src; /* copy of the spec: the paths point into it */
    qsort_key keys[QSORT_MAX_KEYS];
    size_t n;
};

static const uint8_t null_byte = CODEC_NULL;
static const codec_val null_val = {&null_byte, 1};

/* The best candidate seen so far for one key of one document. */
typedef struct key_acc {
    codec_val best;
    int have;
    int dir;
} key_acc;

static void consider(key_acc *acc, codec_val v)
{
    if (!acc->have || qvalue_cmp(v, acc->best) * acc->dir < 0) {
        acc->best = v;
        acc->have = 1;
    }
}

static void collect(key_acc *acc, codec_val v, const qpath *p, size_t i)
{
    for (;;) {
        int t = codec_type(v);
        if (i == p->n) {
            size_t n = t == DOTDB_T_ARRAY ? codec_count(v) : 0;
            if (t != DOTDB_T_ARRAY)
                consider(acc, v);
            else if (n == 0)
                consider(acc, QVAL_UNDEFINED);
            for (size_t k = 0; k < n; k++) {
                codec_val e;
                codec_arr_at(v, k, &e);
                consider(acc, e);
            }
            return;
        }
        const qpart *part = &p->parts[i];
        if (t == DOTDB_T_OBJECT) {
            if (!codec_obj_get(v, part->s, part->len, &v)) {
                consider(acc, null_val);
                return;
            }
            i++;
            continue;
        }
        if (t != DOTDB_T_ARRAY) {
            consider(acc, null_val);
            return;
        }
        if (part->idx >= 0) {
            if (!codec_arr_at(v, (size_t)part->idx, &v)) {
                consider(acc, null_val);
                return;
            }
            i++;
            continue;
        }
        size_t n = codec_count(v);
        if (n == 0)
            consider(acc, null_val);
        for (size_t k = 0; k < n; k++) {
            codec_val e;
            codec_arr_at(v, k, &e);
            if (codec_type(e) == DOTDB_T_OBJECT)
                collect(acc, e, p, i);
            else
                consider(acc, null_val);
        }
        return;
    }
}

static codec_val sort_key(const qsort_key *k, codec_val doc)
{
    key_acc acc = {null_val, 0, k->dir};
    collect(&acc, doc, &k->path, 0);
    return acc.best;
}

int qsort_compile(codec_val spec, qsort_spec **out, char *err, size_t errlen)
{
    *out = NULL;
    if (spec.p == NULL || codec_type(spec) != DOTDB_T_OBJECT) {
        qerr(err, errlen, "sort: the specification must be an object");
        return DOTDB_EINVAL;
    }
    size_t n = codec_count(spec);
    if (n > QSORT_MAX_KEYS) {
        qerr(err, errlen, "sort: at most %d keys (got %zu)", QSORT_MAX_KEYS, n);
        return DOTDB_EINVAL;
    }
    qsort_spec *s = calloc(1, sizeof *s);
    if (s == NULL || (s->src = malloc(spec.len)) == NULL) {
        free(s);
        return DOTDB_ENOMEM;
    }
    memcpy(s->src, spec.p, spec.len);
    spec.p = s->src;
    int rc = DOTDB_OK;
    for (size_t i = 0; i < n; i++) {
        const char *key;
        size_t klen;
        codec_val v;
        int64_t iv;
        double dv;
        codec_obj_at(spec, i, &key, &klen, &v);
        int dir = 0;
        if (codec_as_int64(v, &iv))
            dir = iv == 1 ? 1 : iv == -1 ? -1 : 0;
        else if (codec_type(v) == DOTDB_T_DOUBLE && codec_as_double(v, &dv))
            dir = dv == 1.0 ? 1 : dv == -1.0 ? -1 : 0;
        if (dir == 0) {
            qerr(err, errlen, "sort: the direction of '%.*s' must be 1 or -1", (int)klen, key);
            rc = DOTDB_EINVAL;
            goto fail;
        }
        if (klen == 0 || key[0] == '$') {
            qerr(err, errlen, "sort: invalid field name '%.*s'", (int)klen, key);
            rc = DOTDB_EINVAL;
            goto fail;
        }
        if ((rc = qpath_parse(&s->arena, key, klen, &s->keys[i].path)) != DOTDB_OK)
            goto fail;
        s->keys[i].dir = dir;
        s->n++;
    }
    *out = s;
    return DOTDB_OK;
fail:
    qsort_free(s);
    return rc;
}

int qsort_cmp(const qsort_spec *s, codec_val a, codec_val b)
{
    for (size_t i = 0; i < s->n; i++) {
        const qsort_key *k = &s->keys[i];
        int c = qvalue_cmp(sort_key(k, a), sort_key(k, b));
        if (c != 0)
            return c * k->dir;
    }
    return 0;
}

void qsort_free(qsort_spec *s)
{
    if (s == NULL)
        return;
    qarena_free(&s->arena);
    free(s->src);
    free(s);
}
