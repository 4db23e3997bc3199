/*
 * agg_enc.c - arenas, and the encoding of the values an aggregation
 * pipeline computes (agg_internal.h).
 *
 * The pipeline reads documents in place and writes what it computes in the
 * same encoding (codec.h), so a computed value and a stored one are read
 * by the same accessors, compared by the same functions and copied as
 * bytes.  Containers are built from parts that are already encoded: the
 * children are copied behind a fresh header and offset tables, never
 * decoded.  Like every encoder of DDB1 this one writes the smallest widths
 * (ints, container widths W, varints) and sorted[] in key order.
 *
 * Arenas hand out memory for one document's worth of computed values and
 * are reset, not freed, between documents: once warm, evaluating a
 * pipeline on a document allocates nothing.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg_internal.h"

/* ---- arenas ---------------------------------------------------------------- */

struct agg_arena_block {
    agg_arena_block *next;
    size_t size; /* bytes of data[] */
    size_t used;
    uint64_t data[]; /* 8-byte aligned */
};

#define ARENA_FIRST_BLOCK (16u * 1024u)
#define ARENA_MAX_GROWTH (1u * 1024u * 1024u)

void agg_arena_init(agg_arena *a)
{
    a->head = a->tail = a->cur = NULL;
    a->block_bytes = 0;
}

void *agg_arena_alloc(agg_arena *a, size_t n)
{
    n = n == 0 ? 8 : (n + 7) & ~(size_t)7;
    for (agg_arena_block *b = a->cur; b != NULL; b = b->next) {
        if (b->size - b->used >= n) {
            a->cur = b;
            void *p = (uint8_t *)b->data + b->used;
            b->used += n;
            return p;
        }
    }
    /* Blocks double up to ARENA_MAX_GROWTH; a larger request gets a block
     * of its own size. */
    size_t size = a->tail == NULL ? ARENA_FIRST_BLOCK : a->tail->size * 2;
    if (size > ARENA_MAX_GROWTH)
        size = ARENA_MAX_GROWTH;
    if (size < n)
        size = n;
    if (size > SIZE_MAX - sizeof(agg_arena_block))
        return NULL;
    agg_arena_block *b = malloc(sizeof *b + size);
    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = n;
    if (a->tail != NULL)
        a->tail->next = b;
    else
        a->head = b;
    a->tail = b;
    a->cur = b;
    a->block_bytes += size + sizeof *b;
    return b->data;
}

void agg_arena_reset(agg_arena *a)
{
    for (agg_arena_block *b = a->head; b != NULL; b = b->next) {
        b->used = 0;
        if (b == a->cur)
            break; /* blocks past cur were never touched since the last reset */
    }
    a->cur = a->head;
}

void agg_arena_free(agg_arena *a)
{
    if (a == NULL)
        return;
    agg_arena_block *b = a->head;
    while (b != NULL) {
        agg_arena_block *next = b->next;
        free(b);
        b = next;
    }
    agg_arena_init(a);
}

/* ---- messages ------------------------------------------------------------ */

int agg_err(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

const char *agg_type_name(codec_val v)
{
    if (v.p == NULL)
        return "missing";
    switch (codec_type(v)) {
    case DOTDB_T_NULL:
        return "null";
    case DOTDB_T_BOOL:
        return "bool";
    case DOTDB_T_INT:
        return "int";
    case DOTDB_T_DOUBLE:
        return "double";
    case DOTDB_T_STRING:
        return "string";
    case DOTDB_T_ARRAY:
        return "array";
    case DOTDB_T_OBJECT:
        return "object";
    default:
        return "unknown";
    }
}

/* ---- scalars --------------------------------------------------------------- */

static const uint8_t k_null[1] = {CODEC_NULL};
static const uint8_t k_false[1] = {CODEC_FALSE};
static const uint8_t k_true[1] = {CODEC_TRUE};
static const uint8_t k_empty_object[3] = {CODEC_OBJECT, 3, 0}; /* W=1: size 3, count 0 */

codec_val agg_null(void) { return (codec_val){k_null, 1}; }
codec_val agg_bool(int b) { return (codec_val){b ? k_true : k_false, 1}; }
codec_val agg_empty_object(void) { return (codec_val){k_empty_object, sizeof k_empty_object}; }

int agg_enc_int(agg_arena *a, int64_t i, codec_val *out)
{
    uint8_t *p = agg_arena_alloc(a, 9);
    if (p == NULL)
        return DOTDB_ENOMEM;
    size_t n;
    if (i >= INT8_MIN && i <= INT8_MAX) {
        p[0] = CODEC_INT8;
        p[1] = (uint8_t)(int8_t)i;
        n = 2;
    } else if (i >= INT16_MIN && i <= INT16_MAX) {
        p[0] = CODEC_INT16;
        st_u16(p + 1, (uint16_t)(int16_t)i);
        n = 3;
    } else if (i >= INT32_MIN && i <= INT32_MAX) {
        p[0] = CODEC_INT32;
        st_u32(p + 1, (uint32_t)(int32_t)i);
        n = 5;
    } else {
        p[0] = CODEC_INT64;
        st_u64(p + 1, (uint64_t)i);
        n = 9;
    }
    *out = (codec_val){p, n};
    return DOTDB_OK;
}

int agg_enc_double(agg_arena *a, double d, codec_val *out)
{
    if (!isfinite(d))
        return DOTDB_EINVAL;
    uint8_t *p = agg_arena_alloc(a, 9);
    if (p == NULL)
        return DOTDB_ENOMEM;
    p[0] = CODEC_DOUBLE;
    memcpy(p + 1, &d, sizeof d);
    *out = (codec_val){p, 9};
    return DOTDB_OK;
}

static size_t varint_len(uint32_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint32_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

int agg_enc_string(agg_arena *a, const char *s, size_t len, codec_val *out)
{
    if (len > UINT32_MAX - 6)
        return DOTDB_ETOOBIG;
    size_t n = 1 + varint_len((uint32_t)len) + len;
    uint8_t *p = agg_arena_alloc(a, n);
    if (p == NULL)
        return DOTDB_ENOMEM;
    p[0] = CODEC_STRING;
    uint8_t *q = varint_put(p + 1, (uint32_t)len);
    if (len > 0)
        memcpy(q, s, len);
    *out = (codec_val){p, n};
    return DOTDB_OK;
}

int agg_enc_copy(agg_arena *a, codec_val v, codec_val *out)
{
    if (v.p == NULL) {
        *out = AGG_MISSING;
        return DOTDB_OK;
    }
    uint8_t *p = agg_arena_alloc(a, v.len);
    if (p == NULL)
        return DOTDB_ENOMEM;
    memcpy(p, v.p, v.len);
    *out = (codec_val){p, v.len};
    return DOTDB_OK;
}

/* ---- containers ------------------------------------------------------------ */

/* The width code (0, 1, 2 for W = 1, 2, 4) of the smallest container with
 * n entries of tables_per_entry table slots each and `payload` bytes of
 * contents, and its total size; -1 when even W = 4 cannot hold it. */
static int pick_width(size_t n, size_t tables_per_entry, uint64_t payload, size_t *size_out)
{
    static const uint64_t max_size[3] = {0xffu, 0xffffu, 0xffffffffu};
    for (int code = 0; code < 3; code++) {
        uint64_t w = 1u << code;
        uint64_t size = 1 + 2 * w + (uint64_t)n * tables_per_entry * w + payload;
        if (size <= max_size[code]) {
            *size_out = (size_t)size;
            return code;
        }
    }
    return -1;
}

static inline void put_w(uint8_t *p, unsigned w, size_t v)
{
    if (w == 1)
        p[0] = (uint8_t)v;
    else if (w == 2)
        st_u16(p, (uint16_t)v);
    else
        st_u32(p, (uint32_t)v);
}

int agg_enc_array(agg_arena *a, const codec_val *el, size_t n, codec_val *out)
{
    uint64_t payload = 0;
    for (size_t i = 0; i < n; i++)
        payload += el[i].len;
    if (payload > UINT32_MAX)
        return DOTDB_ETOOBIG;
    size_t size;
    int code = pick_width(n, 1, payload, &size);
    if (code < 0)
        return DOTDB_ETOOBIG;
    unsigned w = 1u << code;
    uint8_t *p = agg_arena_alloc(a, size);
    if (p == NULL)
        return DOTDB_ENOMEM;
    p[0] = (uint8_t)(CODEC_ARRAY | code);
    put_w(p + 1, w, size);
    put_w(p + 1 + w, w, n);
    size_t off = 1 + 2 * (size_t)w + n * w;
    for (size_t i = 0; i < n; i++) {
        put_w(p + 1 + 2 * w + i * w, w, off);
        memcpy(p + off, el[i].p, el[i].len);
        off += el[i].len;
    }
    *out = (codec_val){p, size};
    return DOTDB_OK;
}

/* codec.h's key order: memcmp over the shorter, then the shorter first. */
static int kv_key_cmp(const agg_kv *x, const agg_kv *y)
{
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (c != 0)
        return c;
    return (x->klen > y->klen) - (x->klen < y->klen);
}

static int idx_cmp(const void *pa, const void *pb, void *ctx)
{
    const agg_kv *m = ctx;
    return kv_key_cmp(&m[*(const uint32_t *)pa], &m[*(const uint32_t *)pb]);
}

#define OBJ_SORT_INLINE 32

int agg_enc_object(agg_arena *a, const agg_kv *m, size_t n, codec_val *out)
{
    uint64_t payload = 0;
    for (size_t i = 0; i < n; i++) {
        if (m[i].klen > UINT32_MAX)
            return DOTDB_ETOOBIG;
        payload += varint_len((uint32_t)m[i].klen) + (uint64_t)m[i].klen + m[i].v.len;
    }
    if (payload > UINT32_MAX)
        return DOTDB_ETOOBIG;

    /* sorted[]: insertion sort for the usual handful of members */
    uint32_t inl[OBJ_SORT_INLINE];
    uint32_t *idx = inl;
    if (n > OBJ_SORT_INLINE && (idx = agg_arena_alloc(a, n * sizeof *idx)) == NULL)
        return DOTDB_ENOMEM;
    for (size_t i = 0; i < n; i++)
        idx[i] = (uint32_t)i;
    if (n <= OBJ_SORT_INLINE) {
        for (size_t i = 1; i < n; i++) {
            uint32_t x = idx[i];
            size_t j = i;
            while (j > 0 && kv_key_cmp(&m[idx[j - 1]], &m[x]) > 0) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = x;
        }
    } else {
        qsort_r(idx, n, sizeof *idx, idx_cmp, (void *)m);
    }
    for (size_t i = 1; i < n; i++)
        if (kv_key_cmp(&m[idx[i - 1]], &m[idx[i]]) == 0)
            return DOTDB_EINVAL;

    size_t size;
    int code = pick_width(n, 2, payload, &size);
    if (code < 0)
        return DOTDB_ETOOBIG;
    unsigned w = 1u << code;
    uint8_t *p = agg_arena_alloc(a, size);
    if (p == NULL)
        return DOTDB_ENOMEM;
    p[0] = (uint8_t)(CODEC_OBJECT | code);
    put_w(p + 1, w, size);
    put_w(p + 1 + w, w, n);
    uint8_t *koff = p + 1 + 2 * w;
    uint8_t *sorted = koff + n * w;
    size_t off = 1 + 2 * (size_t)w + 2 * n * w;
    for (size_t i = 0; i < n; i++) {
        put_w(koff + i * w, w, off);
        put_w(sorted + i * w, w, idx[i]);
        uint8_t *q = varint_put(p + off, (uint32_t)m[i].klen);
        if (m[i].klen > 0)
            memcpy(q, m[i].key, m[i].klen);
        q += m[i].klen;
        memcpy(q, m[i].v.p, m[i].v.len);
        off = (size_t)(q - p) + m[i].v.len;
    }
    *out = (codec_val){p, size};
    return DOTDB_OK;
}
