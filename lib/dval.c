/*
 * dval.c - the mutable document tree of dval.h: construction, deep copy,
 * decoding from and encoding to DDB1 (codec.h), dotted paths, equality and
 * MongoDB's cross-type order.
 *
 * Recursion: every walk here recurses once per nesting level.  Trees come
 * from validated documents and update operands, whose depth the
 * configuration bounds (limits.max_depth <= 1000), so the C stack used is
 * bounded too (a few hundred bytes per level).
 *
 * Encoding is two passes over the tree.  The first (enc_measure) computes,
 * for every container in pre-order, its encoded size and width and the
 * number of containers below it; the second (enc_emit) writes straight into
 * space reserved once in the output buffer, using those sizes for the
 * offset tables.  A container's children that are containers are found in
 * the pre-order table by skipping each sibling's descendants, so neither
 * pass does more than O(n) work (plus the sort of each object's keys).
 */
#include "dval.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Scalars, containers, release, copy ---------------------------------- */

dval dval_null(void) { return (dval){.type = DV_NULL}; }
dval dval_bool(int b) { return (dval){.type = DV_BOOL, .u.b = b ? 1 : 0}; }
dval dval_int(int64_t i) { return (dval){.type = DV_INT, .u.i = i}; }
dval dval_double(double d) { return (dval){.type = DV_DOUBLE, .u.d = d}; }
dval dval_array(void) { return (dval){.type = DV_ARRAY}; }
dval dval_object(void) { return (dval){.type = DV_OBJECT}; }

/* A NUL-terminated heap copy of s[0..len) (never NULL on success, even for
 * len 0, so owned strings and keys are always real pointers). */
static char *dup_bytes(const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *p = malloc(len + 1);
    if (p == NULL)
        return NULL;
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

int dval_string(const char *s, size_t len, dval *out)
{
    *out = dval_null();
    char *p = dup_bytes(s, len);
    if (p == NULL)
        return DOTDB_ENOMEM;
    out->type = DV_STRING;
    out->u.str.s = p;
    out->u.str.len = len;
    return DOTDB_OK;
}

void dval_free(dval *v)
{
    if (v == NULL)
        return;
    switch (v->type) {
    case DV_STRING:
        free(v->u.str.s);
        break;
    case DV_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++)
            dval_free(&v->u.arr.v[i]);
        free(v->u.arr.v);
        break;
    case DV_OBJECT:
        for (size_t i = 0; i < v->u.obj.n; i++) {
            free(v->u.obj.m[i].key);
            dval_free(&v->u.obj.m[i].v);
        }
        free(v->u.obj.m);
        break;
    default:
        break;
    }
    *v = dval_null();
}

/* Grow an element array to hold at least `need` items. */
static int grow(void **p, size_t *cap, size_t need, size_t elsize)
{
    if (need <= *cap)
        return DOTDB_OK;
    size_t ncap = *cap ? *cap : 4;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elsize)
            return DOTDB_ENOMEM;
        ncap *= 2;
    }
    void *q = realloc(*p, ncap * elsize);
    if (q == NULL)
        return DOTDB_ENOMEM;
    *p = q;
    *cap = ncap;
    return DOTDB_OK;
}

static int arr_reserve(dval *arr, size_t need)
{
    return grow((void **)&arr->u.arr.v, &arr->u.arr.cap, need, sizeof(dval));
}

static int obj_reserve(dval *obj, size_t need)
{
    return grow((void **)&obj->u.obj.m, &obj->u.obj.cap, need, sizeof(dval_member));
}

int dval_copy(const dval *src, dval *out)
{
    int rc = DOTDB_OK;
    *out = dval_null();
    switch (src->type) {
    case DV_STRING:
        return dval_string(src->u.str.s, src->u.str.len, out);
    case DV_ARRAY:
        *out = dval_array();
        if ((rc = arr_reserve(out, src->u.arr.n)) != DOTDB_OK)
            goto err;
        for (size_t i = 0; i < src->u.arr.n; i++) {
            if ((rc = dval_copy(&src->u.arr.v[i], &out->u.arr.v[i])) != DOTDB_OK)
                goto err;
            out->u.arr.n++;
        }
        return DOTDB_OK;
    case DV_OBJECT:
        *out = dval_object();
        if ((rc = obj_reserve(out, src->u.obj.n)) != DOTDB_OK)
            goto err;
        for (size_t i = 0; i < src->u.obj.n; i++) {
            const dval_member *sm = &src->u.obj.m[i];
            dval_member *dm = &out->u.obj.m[i];
            if ((dm->key = dup_bytes(sm->key, sm->klen)) == NULL) {
                rc = DOTDB_ENOMEM;
                goto err;
            }
            dm->klen = sm->klen;
            if ((rc = dval_copy(&sm->v, &dm->v)) != DOTDB_OK) {
                free(dm->key);
                goto err;
            }
            out->u.obj.n++;
        }
        return DOTDB_OK;
    default:
        *out = *src; /* scalars own nothing */
        return DOTDB_OK;
    }
err:
    dval_free(out);
    return rc;
}

/* ---- Decoding ------------------------------------------------------------ */

int dval_from_codec(codec_val v, dval *out)
{
    int rc = DOTDB_OK;
    const char *s;
    size_t len;
    *out = dval_null();
    switch (codec_type(v)) {
    case DOTDB_T_BOOL:
        *out = dval_bool(v.p[0] == CODEC_TRUE);
        return DOTDB_OK;
    case DOTDB_T_INT:
        out->type = DV_INT;
        codec_as_int64(v, &out->u.i);
        return DOTDB_OK;
    case DOTDB_T_DOUBLE:
        out->type = DV_DOUBLE;
        codec_as_double(v, &out->u.d);
        return DOTDB_OK;
    case DOTDB_T_STRING:
        codec_as_string(v, &s, &len);
        return dval_string(s, len, out);
    case DOTDB_T_ARRAY: {
        size_t n = codec_count(v);
        *out = dval_array();
        if ((rc = arr_reserve(out, n)) != DOTDB_OK)
            goto err;
        for (size_t i = 0; i < n; i++) {
            codec_val e;
            codec_arr_at(v, i, &e);
            if ((rc = dval_from_codec(e, &out->u.arr.v[i])) != DOTDB_OK)
                goto err;
            out->u.arr.n++;
        }
        return DOTDB_OK;
    }
    case DOTDB_T_OBJECT: {
        size_t n = codec_count(v);
        *out = dval_object();
        if ((rc = obj_reserve(out, n)) != DOTDB_OK)
            goto err;
        for (size_t i = 0; i < n; i++) {
            codec_val e;
            dval_member *m = &out->u.obj.m[i];
            codec_obj_at(v, i, &s, &len, &e);
            if ((m->key = dup_bytes(s, len)) == NULL) {
                rc = DOTDB_ENOMEM;
                goto err;
            }
            m->klen = len;
            if ((rc = dval_from_codec(e, &m->v)) != DOTDB_OK) {
                free(m->key);
                goto err;
            }
            out->u.obj.n++;
        }
        return DOTDB_OK;
    }
    default:
        return DOTDB_OK; /* null */
    }
err:
    dval_free(out);
    return rc;
}

/* ---- Encoding ------------------------------------------------------------ */

/* One container in pre-order: its encoded size and width, and how many
 * containers its subtree holds below it (to skip to the next sibling). */
typedef struct enc_node {
    uint32_t size;
    uint32_t below;
    uint8_t width;
} enc_node;

typedef struct enc_ctx {
    enc_node *nodes;
    size_t n, cap;
    const dval_member **sorted; /* scratch for one object's key order */
    size_t scap;
} enc_ctx;

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t int_payload(int64_t v)
{
    if (v >= INT8_MIN && v <= INT8_MAX)
        return 1;
    if (v >= INT16_MIN && v <= INT16_MAX)
        return 2;
    if (v >= INT32_MIN && v <= INT32_MAX)
        return 4;
    return 8;
}

static uint64_t header_bytes(int is_obj, unsigned w, uint64_t count)
{
    return 1 + 2u * w + count * w * (is_obj ? 2 : 1);
}

/*
 * Measure v: *size receives its encoded bytes.  Containers get an entry in
 * ctx->nodes (pre-order).  DOTDB_EINVAL for a non-finite double,
 * DOTDB_ETOOBIG past 4 GiB, DOTDB_ENOMEM.
 */
static int enc_measure(enc_ctx *c, const dval *v, uint64_t *size)
{
    switch (v->type) {
    case DV_INT:
        *size = 1 + int_payload(v->u.i);
        return DOTDB_OK;
    case DV_DOUBLE:
        if (!isfinite(v->u.d))
            return DOTDB_EINVAL;
        *size = 9;
        return DOTDB_OK;
    case DV_STRING:
        if (v->u.str.len > UINT32_MAX)
            return DOTDB_ETOOBIG;
        *size = 1 + varint_len(v->u.str.len) + v->u.str.len;
        return DOTDB_OK;
    case DV_ARRAY:
    case DV_OBJECT:
        break;
    default:
        *size = 1;
        return DOTDB_OK;
    }
    int is_obj = v->type == DV_OBJECT;
    size_t count = is_obj ? v->u.obj.n : v->u.arr.n;
    if (count > UINT32_MAX)
        return DOTDB_ETOOBIG;
    int rc = grow((void **)&c->nodes, &c->cap, c->n + 1, sizeof *c->nodes);
    if (rc != DOTDB_OK)
        return rc;
    size_t self = c->n++;
    uint64_t content = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t sz;
        if (is_obj) {
            const dval_member *m = &v->u.obj.m[i];
            if (m->klen > UINT32_MAX)
                return DOTDB_ETOOBIG;
            content += varint_len(m->klen) + m->klen;
            rc = enc_measure(c, &m->v, &sz);
        } else {
            rc = enc_measure(c, &v->u.arr.v[i], &sz);
        }
        if (rc != DOTDB_OK)
            return rc;
        content += sz;
        if (content > UINT32_MAX)
            return DOTDB_ETOOBIG;
    }
    static const unsigned widths[] = {1, 2, 4};
    for (size_t k = 0; k < 3; k++) {
        unsigned w = widths[k];
        uint64_t total = header_bytes(is_obj, w, count) + content;
        uint64_t max = w == 4 ? UINT32_MAX : (1ull << (8 * w)) - 1;
        if (total <= max) {
            c->nodes[self] = (enc_node){.size = (uint32_t)total,
                                        .below = (uint32_t)(c->n - self - 1),
                                        .width = (uint8_t)w};
            *size = total;
            return DOTDB_OK;
        }
    }
    return DOTDB_ETOOBIG;
}

static uint8_t *put_w(uint8_t *w, unsigned width, uint64_t v)
{
    if (width == 1)
        *w = (uint8_t)v;
    else if (width == 2)
        st_u16(w, (uint16_t)v);
    else
        st_u32(w, (uint32_t)v);
    return w + width;
}

static uint8_t *put_varint(uint8_t *w, uint64_t v)
{
    while (v >= 0x80) {
        *w++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *w++ = (uint8_t)v;
    return w;
}

static uint8_t *put_bytes(uint8_t *w, const char *s, size_t n)
{
    w = put_varint(w, n);
    if (n > 0)
        memcpy(w, s, n);
    return w + n;
}

static uint8_t *put_int(uint8_t *w, int64_t v)
{
    switch (int_payload(v)) {
    case 1:
        *w++ = CODEC_INT8;
        *w++ = (uint8_t)v;
        return w;
    case 2:
        *w++ = CODEC_INT16;
        st_u16(w, (uint16_t)v);
        return w + 2;
    case 4:
        *w++ = CODEC_INT32;
        st_u32(w, (uint32_t)v);
        return w + 4;
    default:
        *w++ = CODEC_INT64;
        st_u64(w, (uint64_t)v);
        return w + 8;
    }
}

/* Encoded size of child v whose container entry (if any) is nodes[*slot];
 * advances *slot past v's subtree. */
static uint64_t child_size(const enc_ctx *c, const dval *v, size_t *slot)
{
    switch (v->type) {
    case DV_INT:
        return 1 + int_payload(v->u.i);
    case DV_DOUBLE:
        return 9;
    case DV_STRING:
        return 1 + varint_len(v->u.str.len) + v->u.str.len;
    case DV_ARRAY:
    case DV_OBJECT: {
        const enc_node *n = &c->nodes[*slot];
        *slot += 1 + n->below;
        return n->size;
    }
    default:
        return 1;
    }
}

/* memcmp over the shorter key, then the shorter key first (codec.h). */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return (alen > blen) - (alen < blen);
}

static int member_ptr_cmp(const void *x, const void *y)
{
    const dval_member *a = *(const dval_member *const *)x;
    const dval_member *b = *(const dval_member *const *)y;
    return key_cmp(a->key, a->klen, b->key, b->klen);
}

/* Write v at w; *slot is v's entry in nodes when v is a container. */
static uint8_t *enc_emit(enc_ctx *c, const dval *v, size_t *slot, uint8_t *w)
{
    switch (v->type) {
    case DV_NULL:
        *w++ = CODEC_NULL;
        return w;
    case DV_BOOL:
        *w++ = v->u.b ? CODEC_TRUE : CODEC_FALSE;
        return w;
    case DV_INT:
        return put_int(w, v->u.i);
    case DV_DOUBLE:
        *w++ = CODEC_DOUBLE;
        memcpy(w, &v->u.d, 8);
        return w + 8;
    case DV_STRING:
        *w++ = CODEC_STRING;
        return put_bytes(w, v->u.str.s, v->u.str.len);
    default:
        break;
    }
    const enc_node *node = &c->nodes[*slot];
    unsigned width = node->width;
    uint8_t code = width == 1 ? 0 : width == 2 ? 1 : 2;
    int is_obj = v->type == DV_OBJECT;
    size_t count = is_obj ? v->u.obj.n : v->u.arr.n;
    size_t first_child = *slot + 1, s = first_child;
    *slot += 1 + node->below;

    *w++ = (uint8_t)((is_obj ? CODEC_OBJECT : CODEC_ARRAY) | code);
    w = put_w(w, width, node->size);
    w = put_w(w, width, count);
    uint64_t off = header_bytes(is_obj, width, count);
    for (size_t i = 0; i < count; i++) {
        w = put_w(w, width, off);
        if (is_obj) {
            const dval_member *m = &v->u.obj.m[i];
            off += varint_len(m->klen) + m->klen + child_size(c, &m->v, &s);
        } else {
            off += child_size(c, &v->u.arr.v[i], &s);
        }
    }
    if (is_obj) {
        /* the scratch was sized for the largest object by dval_encode */
        const dval_member **sorted = c->sorted;
        int in_order = 1;
        for (size_t i = 0; i < count; i++) {
            sorted[i] = &v->u.obj.m[i];
            if (i > 0 && in_order && member_ptr_cmp(&sorted[i - 1], &sorted[i]) > 0)
                in_order = 0;
        }
        if (!in_order)
            qsort(sorted, count, sizeof *sorted, member_ptr_cmp);
        for (size_t i = 0; i < count; i++)
            w = put_w(w, width, (uint64_t)(sorted[i] - v->u.obj.m));
    }
    s = first_child;
    for (size_t i = 0; i < count; i++) {
        if (is_obj) {
            const dval_member *m = &v->u.obj.m[i];
            w = put_bytes(w, m->key, m->klen);
            w = enc_emit(c, &m->v, &s, w);
        } else {
            w = enc_emit(c, &v->u.arr.v[i], &s, w);
        }
    }
    return w;
}

/* Largest member count of any object in v (sizes the sort scratch). */
static size_t max_members(const dval *v)
{
    size_t best = 0;
    if (v->type == DV_OBJECT) {
        best = v->u.obj.n;
        for (size_t i = 0; i < v->u.obj.n; i++) {
            size_t b = max_members(&v->u.obj.m[i].v);
            best = b > best ? b : best;
        }
    } else if (v->type == DV_ARRAY) {
        for (size_t i = 0; i < v->u.arr.n; i++) {
            size_t b = max_members(&v->u.arr.v[i]);
            best = b > best ? b : best;
        }
    }
    return best;
}

int dval_encode(const dval *v, dbuf *out)
{
    enc_ctx c = {0};
    uint64_t size = 0;
    int rc = enc_measure(&c, v, &size);
    if (rc != DOTDB_OK)
        goto done;
    size_t nmax = max_members(v);
    if (nmax > 0 && (c.sorted = malloc(nmax * sizeof *c.sorted)) == NULL) {
        rc = DOTDB_ENOMEM;
        goto done;
    }
    if ((rc = dbuf_reserve(out, size)) != DOTDB_OK)
        goto done;
    size_t slot = 0;
    uint8_t *end = enc_emit(&c, v, &slot, out->data + out->len);
    assert((uint64_t)(end - (out->data + out->len)) == size && slot == c.n);
    (void)end;
    out->len += size;
done:
    free(c.nodes);
    free(c.sorted);
    return rc;
}

/* ---- Objects and arrays ---------------------------------------------------- */

dval *dval_obj_get(const dval *obj, const char *key, size_t klen)
{
    if (obj == NULL || obj->type != DV_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->u.obj.n; i++) {
        dval_member *m = &obj->u.obj.m[i];
        if (m->klen == klen && (klen == 0 || memcmp(m->key, key, klen) == 0))
            return &m->v;
    }
    return NULL;
}

int dval_obj_set(dval *obj, const char *key, size_t klen, dval *v)
{
    dval *cur = dval_obj_get(obj, key, klen);
    if (cur != NULL) {
        dval_free(cur);
        *cur = *v;
        *v = dval_null();
        return DOTDB_OK;
    }
    if (obj_reserve(obj, obj->u.obj.n + 1) != DOTDB_OK)
        return DOTDB_ENOMEM;
    char *k = dup_bytes(key, klen);
    if (k == NULL)
        return DOTDB_ENOMEM;
    obj->u.obj.m[obj->u.obj.n++] = (dval_member){.key = k, .klen = klen, .v = *v};
    *v = dval_null();
    return DOTDB_OK;
}

int dval_obj_remove(dval *obj, const char *key, size_t klen)
{
    dval *cur = dval_obj_get(obj, key, klen);
    if (cur == NULL)
        return 0;
    dval_member *m = (dval_member *)((char *)cur - offsetof(dval_member, v));
    size_t i = (size_t)(m - obj->u.obj.m);
    free(m->key);
    dval_free(&m->v);
    memmove(m, m + 1, (obj->u.obj.n - i - 1) * sizeof *m);
    obj->u.obj.n--;
    return 1;
}

int dval_arr_push(dval *arr, dval *v) { return dval_arr_insert(arr, arr->u.arr.n, v); }

int dval_arr_insert(dval *arr, size_t i, dval *v)
{
    if (i > arr->u.arr.n)
        return DOTDB_EINVAL;
    if (arr_reserve(arr, arr->u.arr.n + 1) != DOTDB_OK)
        return DOTDB_ENOMEM;
    dval *e = arr->u.arr.v;
    memmove(e + i + 1, e + i, (arr->u.arr.n - i) * sizeof *e);
    e[i] = *v;
    arr->u.arr.n++;
    *v = dval_null();
    return DOTDB_OK;
}

void dval_arr_remove(dval *arr, size_t i)
{
    dval *e = arr->u.arr.v;
    dval_free(&e[i]);
    memmove(e + i, e + i + 1, (arr->u.arr.n - i - 1) * sizeof *e);
    arr->u.arr.n--;
}

/* ---- Dotted paths ---------------------------------------------------------- */

/* The part of path starting at *pos (up to the next '.'); advances *pos
 * past the dot.  Returns 0 when there is no more part. */
static int next_part(const char *path, size_t plen, size_t *pos, const char **part, size_t *len)
{
    if (*pos > plen)
        return 0;
    const char *s = path + *pos;
    const char *dot = memchr(s, '.', plen - *pos);
    *part = s;
    *len = dot ? (size_t)(dot - s) : plen - *pos;
    *pos += *len + 1;
    return 1;
}

int dval_parse_index(const char *s, size_t len, size_t *out)
{
    if (len == 0 || len > 18 || (len > 1 && s[0] == '0'))
        return 0;
    size_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return 1;
}

dval *dval_path_get(const dval *root, const char *path, size_t plen)
{
    const char *part;
    size_t len, pos = 0, idx;
    dval *cur = (dval *)root;
    while (cur != NULL && next_part(path, plen, &pos, &part, &len)) {
        if (cur->type == DV_OBJECT)
            cur = dval_obj_get(cur, part, len);
        else if (cur->type == DV_ARRAY && dval_parse_index(part, len, &idx) && idx < cur->u.arr.n)
            cur = &cur->u.arr.v[idx];
        else
            cur = NULL;
    }
    return cur;
}

void dval_describe(const dval *v, char *buf, size_t cap)
{
    switch (v->type) {
    case DV_NULL:
        snprintf(buf, cap, "null");
        break;
    case DV_BOOL:
        snprintf(buf, cap, "%s", v->u.b ? "true" : "false");
        break;
    case DV_INT:
        snprintf(buf, cap, "%lld", (long long)v->u.i);
        break;
    case DV_DOUBLE:
        snprintf(buf, cap, "%.17g", v->u.d);
        break;
    case DV_STRING: {
        int n = v->u.str.len > 24 ? 24 : (int)v->u.str.len;
        snprintf(buf, cap, "\"%.*s%s\"", n, v->u.str.s, v->u.str.len > 24 ? "..." : "");
        break;
    }
    case DV_ARRAY:
        snprintf(buf, cap, "[...]");
        break;
    default:
        snprintf(buf, cap, "{...}");
        break;
    }
}

/* Undo a chain built by dval_path_set: the value at the bottom of `levels`
 * single-member objects goes back to *v, the rest is freed. */
static void unwrap_chain(dval *chain, size_t levels, dval *v)
{
    dval *cur = chain;
    for (size_t i = 0; i < levels; i++)
        cur = &cur->u.obj.m[0].v;
    *v = *cur;
    *cur = dval_null();
    dval_free(chain);
}

int dval_path_set(dval *root, const char *path, size_t plen, dval *v, char *err, size_t errlen)
{
    const char *part = path, *prev = NULL;
    size_t len = 0, prevlen = 0, pos = 0, idx = 0;
    dval *cur = root;
    char what[64];

    /* Walk down while the parts exist; stop at the last part or at the
     * first missing one (creation starts there). */
    for (;;) {
        next_part(path, plen, &pos, &part, &len);
        int last = pos > plen;
        dval *next = NULL;
        if (cur->type == DV_OBJECT) {
            next = dval_obj_get(cur, part, len);
        } else if (cur->type == DV_ARRAY) {
            if (!dval_parse_index(part, len, &idx)) {
                if (err && errlen)
                    snprintf(err, errlen, "cannot create field '%.*s' in element {%.*s: [...]}",
                             (int)len, part, (int)prevlen, prev ? prev : "");
                return DOTDB_EINVAL;
            }
            next = idx < cur->u.arr.n ? &cur->u.arr.v[idx] : NULL;
        } else {
            dval_describe(cur, what, sizeof what);
            if (err && errlen)
                snprintf(err, errlen, "cannot create field '%.*s' in element {%.*s: %s}",
                         (int)len, part, (int)prevlen, prev ? prev : "", what);
            return DOTDB_EINVAL;
        }
        if (last && next != NULL) {
            dval_free(next);
            *next = *v;
            *v = dval_null();
            return DOTDB_OK;
        }
        if (next == NULL)
            break;
        prev = part;
        prevlen = len;
        cur = next;
    }

    /* cur lacks `part`.  Build the rest of the path as a chain of objects
     * around *v, innermost first, then attach it with one operation, so a
     * failure leaves the tree as it was and *v with the caller. */
    const char *attach = part;
    size_t attach_len = len, levels = 0;
    dval chain = *v;
    *v = dval_null();
    if (pos <= plen) {
        /* the parts after `attach`, taken from the last one backwards */
        size_t end = plen;
        for (;;) {
            const char *lastdot = NULL;
            for (const char *q = path + pos; q < path + end; q++)
                if (*q == '.')
                    lastdot = q;
            const char *k = lastdot ? lastdot + 1 : path + pos;
            size_t klen = (size_t)(path + end - k);
            dval obj = dval_object();
            if (dval_obj_set(&obj, k, klen, &chain) != DOTDB_OK) {
                unwrap_chain(&chain, levels, v);
                return DOTDB_ENOMEM;
            }
            chain = obj;
            levels++;
            if (lastdot == NULL)
                break;
            end = (size_t)(lastdot - path);
        }
    }
    int rc;
    if (cur->type == DV_OBJECT) {
        rc = dval_obj_set(cur, attach, attach_len, &chain);
    } else if (idx - cur->u.arr.n > DVAL_MAX_PAD) {
        /* The padding would be allocated before any size limit could
         * refuse the result: "a.2000000000" asked for 64 GB. */
        if (err && errlen)
            snprintf(err, errlen, "cannot pad array '%.*s' with %zu nulls (at most %u)",
                     (int)prevlen, prev ? prev : "", idx - cur->u.arr.n, DVAL_MAX_PAD);
        rc = DOTDB_ETOOBIG;
    } else {
        /* array, index idx >= n: pad with nulls */
        rc = arr_reserve(cur, idx + 1);
        if (rc == DOTDB_OK) {
            while (cur->u.arr.n < idx)
                cur->u.arr.v[cur->u.arr.n++] = dval_null();
            cur->u.arr.v[cur->u.arr.n++] = chain;
            chain = dval_null();
        }
    }
    if (rc != DOTDB_OK)
        unwrap_chain(&chain, levels, v);
    return rc;
}

int dval_path_unset(dval *root, const char *path, size_t plen)
{
    const char *dot = NULL;
    for (size_t i = plen; i > 0; i--)
        if (path[i - 1] == '.') {
            dot = path + i - 1;
            break;
        }
    dval *parent = dot ? dval_path_get(root, path, (size_t)(dot - path)) : root;
    const char *key = dot ? dot + 1 : path;
    size_t klen = (size_t)(path + plen - key), idx;
    if (parent == NULL)
        return 0;
    if (parent->type == DV_OBJECT)
        return dval_obj_remove(parent, key, klen);
    if (parent->type == DV_ARRAY && dval_parse_index(key, klen, &idx) && idx < parent->u.arr.n) {
        dval_free(&parent->u.arr.v[idx]);
        return 1;
    }
    return 0;
}

/* ---- Comparison ------------------------------------------------------------ */

/* int64 i against double d, exactly (no rounding of large ints; no libm). */
static int cmp_int_double(int64_t i, double d)
{
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    int64_t ti = (int64_t)d; /* in range: truncates toward zero, exactly */
    double t = (double)ti;   /* trunc(d) is a double, so this is exact too */
    if (i != ti)
        return i < ti ? -1 : 1;
    return d > t ? -1 : d < t ? 1 : 0;
}

static int cmp_numbers(const dval *a, const dval *b)
{
    if (a->type == DV_INT && b->type == DV_INT)
        return (a->u.i > b->u.i) - (a->u.i < b->u.i);
    if (a->type == DV_INT)
        return cmp_int_double(a->u.i, b->u.d);
    if (b->type == DV_INT)
        return -cmp_int_double(b->u.i, a->u.d);
    return (a->u.d > b->u.d) - (a->u.d < b->u.d);
}

int dval_type_rank(int type)
{
    switch (type) {
    case DV_NULL:
        return 0;
    case DV_INT:
    case DV_DOUBLE:
        return 1;
    case DV_STRING:
        return 2;
    case DV_OBJECT:
        return 3;
    case DV_ARRAY:
        return 4;
    default:
        return 5; /* DV_BOOL */
    }
}

int dval_cmp(const dval *a, const dval *b)
{
    int ra = dval_type_rank(a->type), rb = dval_type_rank(b->type);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (a->type) {
    case DV_NULL:
        return 0;
    case DV_BOOL:
        return a->u.b - b->u.b;
    case DV_INT:
    case DV_DOUBLE:
        return cmp_numbers(a, b);
    case DV_STRING: {
        int c = key_cmp(a->u.str.s, a->u.str.len, b->u.str.s, b->u.str.len);
        return (c > 0) - (c < 0);
    }
    case DV_ARRAY:
        for (size_t i = 0; i < a->u.arr.n && i < b->u.arr.n; i++) {
            int c = dval_cmp(&a->u.arr.v[i], &b->u.arr.v[i]);
            if (c != 0)
                return c;
        }
        return (a->u.arr.n > b->u.arr.n) - (a->u.arr.n < b->u.arr.n);
    default:
        for (size_t i = 0; i < a->u.obj.n && i < b->u.obj.n; i++) {
            const dval_member *x = &a->u.obj.m[i], *y = &b->u.obj.m[i];
            int c = key_cmp(x->key, x->klen, y->key, y->klen);
            if (c != 0)
                return (c > 0) - (c < 0);
            if ((c = dval_cmp(&x->v, &y->v)) != 0)
                return c;
        }
        return (a->u.obj.n > b->u.obj.n) - (a->u.obj.n < b->u.obj.n);
    }
}

int dval_equal(const dval *a, const dval *b) { return dval_cmp(a, b) == 0; }
