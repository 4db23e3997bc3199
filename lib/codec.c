/*
 * codec.c - validation, decoding and JSON output of the DDB1 binary
 * document encoding (the format is specified byte by byte in codec.h).
 *
 * Two kinds of code live here and must not be confused:
 *
 *   - codec_validate() / codec_validate_doc() read UNTRUSTED bytes (from a
 *     socket, the WAL, a fuzzer).  Every load is preceded by a bounds check
 *     against the enclosing container, and the walk is iterative with an
 *     explicit stack so hostile nesting cannot exhaust the C stack.
 *
 *   - Everything else (accessors, codec_to_json, codec_equal) trusts its
 *     input: it runs on values that were validated before they reached
 *     shared memory, so it follows offsets without re-checking them.
 *
 * The JSON parser that produces the encoding is in json.c.
 */
#include "codec.h"

#include <langinfo.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "codec.c loads little-endian fields with plain memcpy: port ld_u16/ld_u32 first"
#endif

/* ---- Small shared helpers ------------------------------------------------ */

/* Width in bytes of a container from its tag's low bits (0,1,2 -> 1,2,4). */
static inline unsigned tag_width(uint8_t tag) { return 1u << (tag & 0x0f); }

static inline int is_array_tag(uint8_t tag) { return (tag & 0xf0) == CODEC_ARRAY; }
static inline int is_object_tag(uint8_t tag) { return (tag & 0xf0) == CODEC_OBJECT; }

static inline uint32_t rd_w(const uint8_t *p, unsigned w)
{
    if (w == 1)
        return p[0];
    if (w == 2)
        return ld_u16(p);
    return ld_u32(p);
}

size_t codec_utf8_seq(const uint8_t *s, size_t avail)
{
    uint8_t c = s[0];
    uint8_t lo = 0x80, hi = 0xbf;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c < 0xc2) /* continuation byte or overlong 2-byte lead */
        return 0;
    if (c < 0xe0) {
        n = 2;
    } else if (c < 0xf0) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* UTF-16 surrogates U+D800..U+DFFF */
    } else if (c < 0xf5) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* 1 when s[0..n) is valid UTF-8, byte sequence by byte sequence (ASCII
 * runs 8 bytes at a time). */
static __attribute__((noinline)) int utf8_valid_slow(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8 && (ld_u64(s + i) & 0x8080808080808080ull) == 0) {
            i += 8;
            continue;
        }
        size_t k = codec_utf8_seq(s + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

/* 1 when s[0..n) is valid UTF-8.  Most keys and strings are plain ASCII:
 * no byte with its high bit set, checked inline 8 bytes at a time. */
static inline int utf8_valid(const uint8_t *s, size_t n)
{
    uint64_t high = 0;
    size_t i = 0;
    for (; n - i >= 8; i += 8)
        high |= ld_u64(s + i);
    for (; i < n; i++)
        high |= s[i];
    return (high & 0x8080808080808080ull) == 0 || utf8_valid_slow(s, n);
}

/* Bounded LEB128 read: 0 on success with *v and *n set, -1 when the varint
 * runs past `avail`, is longer than 5 bytes or does not fit 32 bits. */
static int varint_get(const uint8_t *p, size_t avail, uint32_t *v, size_t *n)
{
    if (avail > 0 && p[0] < 0x80) { /* lengths below 128: one byte */
        *v = p[0];
        *n = 1;
        return 0;
    }
    uint64_t val = 0;
    for (size_t i = 0; i < 5 && i < avail; i++) {
        val |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            if (val > UINT32_MAX)
                return -1;
            *v = (uint32_t)val;
            *n = i + 1;
            return 0;
        }
    }
    return -1;
}

/* Trusted LEB128 read; returns the number of bytes consumed. */
static size_t varint_read(const uint8_t *p, uint32_t *v)
{
    uint32_t val = 0;
    size_t i = 0;
    do {
        val |= (uint32_t)(p[i] & 0x7f) << (7 * i);
    } while (p[i++] & 0x80);
    *v = val;
    return i;
}

/* memcmp over the shorter key, then the shorter key first (codec.h). */
static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (alen && blen && a[0] != b[0]) /* most keys differ in their first byte */
        return (int)a[0] - (int)b[0];
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0; /* an empty key may come with a NULL pointer */
    if (c != 0)
        return c;
    return (alen > blen) - (alen < blen);
}

/* ---- Validation (untrusted input) ---------------------------------------- */

/* One open container during validation.  Offsets are from buf[0]. */
typedef struct vframe {
    size_t base;    /* the container's tag byte */
    size_t end;     /* one past its last byte (base + size) */
    size_t cur;     /* where the next element/member must start */
    uint32_t count; /* elements or members */
    uint32_t i;     /* next element to check */
    uint8_t w;      /* width W */
    uint8_t is_obj;
} vframe;

/* Frames on the C stack (~4 KiB): documents within the default depth limit
 * validate without malloc, so only deeper limits can see DOTDB_ENOMEM. */
#define VSTACK_INLINE CODEC_DEFAULT_MAX_DEPTH

typedef struct vctx {
    const uint8_t *buf;
    size_t len;
    int max_depth;
    uint32_t max_fields; /* members of one object; 0: no limit */
    char *err;
    size_t errlen;
    vframe *st; /* inl or heap */
    size_t depth, cap;
    vframe inl[VSTACK_INLINE];
} vctx;

static int verr(vctx *c, int rc, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int verr(vctx *c, int rc, size_t off, const char *fmt, ...)
{
    if (c->err == NULL || c->errlen == 0)
        return rc;
    /* A limit is not damage: say "corrupt" only for DOTDB_ECORRUPT. */
    int n = snprintf(c->err, c->errlen, "%svalue at byte %zu: ",
                     rc == DOTDB_ECORRUPT ? "corrupt " : "", off);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int vpush(vctx *c, const vframe *f)
{
    if (c->depth == c->cap) {
        size_t ncap = c->cap * 2;
        vframe *p = c->st == c->inl ? malloc(ncap * sizeof *p) : realloc(c->st, ncap * sizeof *p);
        if (p == NULL) {
            if (c->err && c->errlen)
                snprintf(c->err, c->errlen, "out of memory");
            return DOTDB_ENOMEM;
        }
        if (c->st == c->inl)
            memcpy(p, c->inl, sizeof c->inl);
        c->st = p;
        c->cap = ncap;
    }
    c->st[c->depth++] = *f;
    return DOTDB_OK;
}

/* Locate the key of member m of the object in frame f (already checked
 * by check_object_keys). */
static const uint8_t *vkey(const vctx *c, const vframe *f, uint32_t m, uint32_t *klen)
{
    const uint8_t *koff = c->buf + f->base + 1 + 2u * f->w;
    const uint8_t *k = c->buf + f->base + rd_w(koff + (size_t)m * f->w, f->w);
    return k + varint_read(k, klen);
}

/*
 * Check every key of a freshly opened object (inside the object, past its
 * tables, valid UTF-8) and then that sorted[] lists the members in strictly
 * increasing key order.  Strictly increasing keys over `count` indexes that
 * are each < count means sorted[] is a permutation and the keys are unique.
 */
static int check_object_keys(vctx *c, const vframe *f)
{
    const uint8_t *koff = c->buf + f->base + 1 + 2u * f->w;
    const uint8_t *sorted = koff + (size_t)f->count * f->w;
    size_t hdr = 1 + 2u * f->w + 2u * (size_t)f->count * f->w;
    size_t size = f->end - f->base;

    for (uint32_t m = 0; m < f->count; m++) {
        size_t ko = rd_w(koff + (size_t)m * f->w, f->w);
        uint32_t klen;
        size_t vn;
        if (ko < hdr || ko >= size)
            return verr(c, DOTDB_ECORRUPT, f->base, "key offset %zu of member %u outside the object",
                        ko, m);
        if (varint_get(c->buf + f->base + ko, size - ko, &klen, &vn) != 0 ||
            klen > size - ko - vn)
            return verr(c, DOTDB_ECORRUPT, f->base + ko, "bad key length");
        if (!utf8_valid(c->buf + f->base + ko + vn, klen))
            return verr(c, DOTDB_ECORRUPT, f->base + ko, "key is not valid UTF-8");
    }
    const uint8_t *prev = NULL;
    uint32_t prev_len = 0;
    for (uint32_t j = 0; j < f->count; j++) {
        uint32_t m = rd_w(sorted + (size_t)j * f->w, f->w);
        uint32_t klen;
        if (m >= f->count)
            return verr(c, DOTDB_ECORRUPT, f->base, "sorted[%u] = %u is not a member index", j, m);
        const uint8_t *k = vkey(c, f, m, &klen);
        if (prev != NULL && key_cmp(prev, prev_len, k, klen) >= 0)
            return verr(c, DOTDB_ECORRUPT, f->base,
                        "sorted[] out of key order or duplicate key at entry %u", j);
        prev = k;
        prev_len = klen;
    }
    return DOTDB_OK;
}

/* Check the fixed header of a container at pos (limit end) and fill *f. */
static int check_container(vctx *c, size_t pos, size_t end, vframe *f)
{
    uint8_t tag = c->buf[pos];
    unsigned w = tag_width(tag);
    size_t avail = end - pos;

    if (avail < 1 + 2u * w)
        return verr(c, DOTDB_ECORRUPT, pos, "container header runs past the end");
    size_t size = rd_w(c->buf + pos + 1, w);
    uint32_t count = rd_w(c->buf + pos + 1 + w, w);
    uint64_t tables = (uint64_t)count * w * (is_object_tag(tag) ? 2 : 1);
    if (size > avail)
        return verr(c, DOTDB_ECORRUPT, pos, "container size %zu runs past the end", size);
    if (1 + 2u * w + tables > size)
        return verr(c, DOTDB_ECORRUPT, pos, "%u entries do not fit a container of %zu bytes",
                    count, size);
    if (c->depth + 1 > (size_t)c->max_depth)
        return verr(c, DOTDB_ETOODEEP, pos, "nesting depth exceeds %d", c->max_depth);
    if (is_object_tag(tag) && c->max_fields && count > c->max_fields)
        return verr(c, DOTDB_ETOOBIG, pos, "object has %u members, more than "
                    "limits.max_fields (%u)", count, c->max_fields);
    *f = (vframe){.base = pos, .end = pos + size, .cur = pos + 1 + 2u * w + (size_t)tables,
                  .count = count, .i = 0, .w = (uint8_t)w, .is_obj = is_object_tag(tag)};
    return f->is_obj ? check_object_keys(c, f) : DOTDB_OK;
}

/*
 * Check the value at pos that must end by `end`.  *vend receives where it
 * ends.  A container's header and tables are checked here and *opened is
 * set with its frame in *child; its elements are checked later by the
 * caller's loop.
 */
static int check_value(vctx *c, size_t pos, size_t end, size_t *vend, vframe *child, int *opened)
{
    static const uint8_t fixed_len[] = {1, 1, 1, 2, 3, 5, 9, 9};
    *opened = 0;
    if (pos >= end)
        return verr(c, DOTDB_ECORRUPT, pos, "value runs past the end of its container");
    uint8_t tag = c->buf[pos];
    if (tag <= CODEC_DOUBLE) {
        if (fixed_len[tag] > end - pos)
            return verr(c, DOTDB_ECORRUPT, pos, "scalar runs past the end");
        if (tag == CODEC_DOUBLE) {
            double d;
            memcpy(&d, c->buf + pos + 1, sizeof d);
            if (!isfinite(d)) /* JSON has no inf/nan: codec_to_json could not print it */
                return verr(c, DOTDB_ECORRUPT, pos, "double is not finite");
        }
        *vend = pos + fixed_len[tag];
        return DOTDB_OK;
    }
    if (tag == CODEC_STRING) {
        uint32_t slen;
        size_t vn;
        if (varint_get(c->buf + pos + 1, end - pos - 1, &slen, &vn) != 0 ||
            slen > end - pos - 1 - vn)
            return verr(c, DOTDB_ECORRUPT, pos, "bad string length");
        if (!utf8_valid(c->buf + pos + 1 + vn, slen))
            return verr(c, DOTDB_ECORRUPT, pos, "string is not valid UTF-8");
        *vend = pos + 1 + vn + slen;
        return DOTDB_OK;
    }
    if ((is_array_tag(tag) || is_object_tag(tag)) && (tag & 0x0f) <= 2) {
        int rc = check_container(c, pos, end, child);
        if (rc != DOTDB_OK)
            return rc;
        *vend = child->end;
        *opened = 1;
        return DOTDB_OK;
    }
    return verr(c, DOTDB_ECORRUPT, pos, "unknown tag 0x%02x", tag);
}

/* Advance frame f to its next element: check that the table entry points
 * exactly where the previous element ended and skip the member's key.
 * *pos receives where the element's value starts. */
static int next_element(vctx *c, vframe *f, size_t *pos)
{
    const uint8_t *tbl = c->buf + f->base + 1 + 2u * f->w;
    size_t off = f->base + rd_w(tbl + (size_t)f->i * f->w, f->w);
    if (off != f->cur)
        return verr(c, DOTDB_ECORRUPT, f->base,
                    "entry %u points to byte %zu but the previous one ends at %zu", f->i, off,
                    f->cur);
    if (f->is_obj) {
        uint32_t klen;
        size_t vn;
        /* bounds were checked by check_object_keys; re-decoded to skip it */
        if (varint_get(c->buf + off, f->end - off, &klen, &vn) != 0 || klen > f->end - off - vn)
            return verr(c, DOTDB_ECORRUPT, off, "bad key length");
        off += vn + klen;
    }
    *pos = off;
    return DOTDB_OK;
}

static int validate_walk(vctx *c)
{
    size_t vend;
    vframe child;
    int opened;
    int rc = check_value(c, 0, c->len, &vend, &child, &opened);
    if (rc != DOTDB_OK)
        return rc;
    if (vend != c->len)
        return verr(c, DOTDB_ECORRUPT, vend, "%zu trailing bytes after the value", c->len - vend);
    if (opened && (rc = vpush(c, &child)) != DOTDB_OK)
        return rc;
    while (c->depth > 0) {
        vframe *f = &c->st[c->depth - 1];
        size_t pos = 0;
        if (f->i == f->count) {
            if (f->cur != f->end)
                return verr(c, DOTDB_ECORRUPT, f->base,
                            "contents end at byte %zu but the size says %zu", f->cur, f->end);
            c->depth--;
            continue;
        }
        if ((rc = next_element(c, f, &pos)) != DOTDB_OK)
            return rc;
        if ((rc = check_value(c, pos, f->end, &vend, &child, &opened)) != DOTDB_OK)
            return rc;
        f->cur = vend; /* update before vpush: it may move the stack */
        f->i++;
        if (opened && (rc = vpush(c, &child)) != DOTDB_OK)
            return rc;
    }
    return DOTDB_OK;
}

static int validate_value(const uint8_t *buf, size_t len, int max_depth, uint32_t max_fields,
                          char *err, size_t errlen)
{
    /* Field by field: an initialiser would zero the 4 KiB inline stack on
     * every call (a tenth of validating a small document). */
    vctx c;
    c.buf = buf;
    c.len = len;
    c.max_depth = max_depth;
    c.max_fields = max_fields;
    c.err = err;
    c.errlen = errlen;
    c.depth = 0;
    c.cap = VSTACK_INLINE;
    c.st = c.inl;
    if (err && errlen)
        err[0] = '\0';
    if (buf == NULL || len == 0)
        return verr(&c, DOTDB_ECORRUPT, 0, "empty buffer");
    int rc = validate_walk(&c);
    if (c.st != c.inl)
        free(c.st);
    return rc;
}

int codec_validate(const uint8_t *buf, size_t len, int max_depth, char *err, size_t errlen)
{
    return validate_value(buf, len, max_depth, 0, err, errlen);
}

int codec_validate_doc(const uint8_t *buf, size_t len, int max_depth, const char **id,
                       size_t *id_len, char *err, size_t errlen)
{
    return codec_validate_doc_lim(buf, len, max_depth, 0, id, id_len, err, errlen);
}

int codec_validate_doc_lim(const uint8_t *buf, size_t len, int max_depth, uint32_t max_fields,
                           const char **id, size_t *id_len, char *err, size_t errlen)
{
    if (id)
        *id = NULL;
    if (id_len)
        *id_len = 0;
    int rc = validate_value(buf, len, max_depth, max_fields, err, errlen);
    if (rc != DOTDB_OK)
        return rc;
    codec_val doc = {buf, len};
    if (!is_object_tag(buf[0])) {
        if (err && errlen)
            snprintf(err, errlen, "corrupt value at byte 0: a document must be an object");
        return DOTDB_ECORRUPT;
    }
    codec_val v;
    const char *s;
    size_t slen;
    if (!codec_obj_get(doc, "id", 2, &v) || !codec_as_string(v, &s, &slen) || slen == 0 ||
        slen > DOTDB_ID_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "id must be a string of 1 to %d bytes", DOTDB_ID_MAX);
        return DOTDB_EBADID;
    }
    if (id)
        *id = s;
    if (id_len)
        *id_len = slen;
    return DOTDB_OK;
}

/* ---- Zero-copy accessors (trusted input) -------------------------------- */

size_t codec_val_len(const uint8_t *p)
{
    static const uint8_t fixed_len[] = {1, 1, 1, 2, 3, 5, 9, 9};
    uint8_t tag = p[0];
    if (tag <= CODEC_DOUBLE)
        return fixed_len[tag];
    if (tag == CODEC_STRING) {
        uint32_t slen;
        size_t vn = varint_read(p + 1, &slen);
        return 1 + vn + slen;
    }
    return rd_w(p + 1, tag_width(tag));
}

int codec_type(codec_val v)
{
    uint8_t tag = v.p[0];
    switch (tag) {
    case CODEC_NULL:
        return DOTDB_T_NULL;
    case CODEC_FALSE:
    case CODEC_TRUE:
        return DOTDB_T_BOOL;
    case CODEC_INT8:
    case CODEC_INT16:
    case CODEC_INT32:
    case CODEC_INT64:
        return DOTDB_T_INT;
    case CODEC_DOUBLE:
        return DOTDB_T_DOUBLE;
    case CODEC_STRING:
        return DOTDB_T_STRING;
    default:
        if (is_array_tag(tag))
            return DOTDB_T_ARRAY;
        if (is_object_tag(tag))
            return DOTDB_T_OBJECT;
        return DOTDB_T_MISSING;
    }
}

size_t codec_count(codec_val v)
{
    uint8_t tag = v.p[0];
    if (!is_array_tag(tag) && !is_object_tag(tag))
        return 0;
    unsigned w = tag_width(tag);
    return rd_w(v.p + 1 + w, w);
}

int codec_as_int64(codec_val v, int64_t *out)
{
    switch (v.p[0]) {
    case CODEC_INT8:
        *out = (int8_t)v.p[1];
        return 1;
    case CODEC_INT16:
        *out = (int16_t)ld_u16(v.p + 1);
        return 1;
    case CODEC_INT32:
        *out = (int32_t)ld_u32(v.p + 1);
        return 1;
    case CODEC_INT64:
        *out = (int64_t)ld_u64(v.p + 1);
        return 1;
    default:
        *out = 0;
        return 0;
    }
}

int codec_as_double(codec_val v, double *out)
{
    int64_t i;
    if (v.p[0] == CODEC_DOUBLE) {
        memcpy(out, v.p + 1, sizeof *out);
        return 1;
    }
    if (codec_as_int64(v, &i)) {
        *out = (double)i;
        return 1;
    }
    *out = 0;
    return 0;
}

int codec_as_string(codec_val v, const char **s, size_t *len)
{
    if (v.p[0] != CODEC_STRING) {
        *s = NULL;
        *len = 0;
        return 0;
    }
    uint32_t slen;
    size_t vn = varint_read(v.p + 1, &slen);
    *s = (const char *)v.p + 1 + vn;
    *len = slen;
    return 1;
}

void codec_to_value(codec_val v, dotdb_value *out)
{
    memset(out, 0, sizeof *out);
    out->type = codec_type(v);
    out->raw = v.p;
    out->raw_len = v.len;
    switch (out->type) {
    case DOTDB_T_BOOL:
        out->i = v.p[0] == CODEC_TRUE;
        break;
    case DOTDB_T_INT:
        codec_as_int64(v, &out->i);
        break;
    case DOTDB_T_DOUBLE:
        codec_as_double(v, &out->d);
        break;
    case DOTDB_T_STRING:
        codec_as_string(v, &out->str, &out->str_len);
        break;
    case DOTDB_T_ARRAY:
    case DOTDB_T_OBJECT:
        out->count = codec_count(v);
        break;
    default:
        break;
    }
}

int codec_arr_at(codec_val v, size_t i, codec_val *out)
{
    *out = (codec_val){NULL, 0};
    if (!is_array_tag(v.p[0]))
        return 0;
    unsigned w = tag_width(v.p[0]);
    if (i >= rd_w(v.p + 1 + w, w))
        return 0;
    out->p = v.p + rd_w(v.p + 1 + 2u * w + i * w, w);
    out->len = codec_val_len(out->p);
    return 1;
}

int codec_obj_at(codec_val v, size_t i, const char **key, size_t *klen, codec_val *out)
{
    *key = NULL;
    *klen = 0;
    *out = (codec_val){NULL, 0};
    if (!is_object_tag(v.p[0]))
        return 0;
    unsigned w = tag_width(v.p[0]);
    if (i >= rd_w(v.p + 1 + w, w))
        return 0;
    const uint8_t *k = v.p + rd_w(v.p + 1 + 2u * w + i * w, w);
    uint32_t len;
    k += varint_read(k, &len);
    *key = (const char *)k;
    *klen = len;
    out->p = k + len;
    out->len = codec_val_len(out->p);
    return 1;
}

/* O(log n): binary search over sorted[]. */
int codec_obj_get(codec_val v, const char *key, size_t klen, codec_val *out)
{
    *out = (codec_val){NULL, 0};
    if (!is_object_tag(v.p[0]))
        return 0;
    unsigned w = tag_width(v.p[0]);
    size_t count = rd_w(v.p + 1 + w, w);
    const uint8_t *koff = v.p + 1 + 2u * w;
    const uint8_t *sorted = koff + count * w;
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint8_t *k = v.p + rd_w(koff + (size_t)rd_w(sorted + mid * w, w) * w, w);
        uint32_t len;
        k += varint_read(k, &len);
        int c = key_cmp(k, len, (const uint8_t *)key, klen);
        if (c == 0) {
            out->p = k + len;
            out->len = codec_val_len(out->p);
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* A canonical array index: "0" or digits without a leading zero. */
static int parse_index(const char *s, size_t n, size_t *idx)
{
    if (n == 0 || n > 18 || (n > 1 && s[0] == '0'))
        return 0;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *idx = v;
    return 1;
}

int codec_get_path(codec_val v, const char *path, size_t plen, codec_val *out)
{
    codec_val cur = v;
    size_t i = 0;
    *out = (codec_val){NULL, 0};
    for (;;) {
        size_t j = i;
        while (j < plen && path[j] != '.')
            j++;
        size_t idx;
        int found;
        if (is_object_tag(cur.p[0]))
            found = codec_obj_get(cur, path + i, j - i, &cur);
        else if (is_array_tag(cur.p[0]) && parse_index(path + i, j - i, &idx))
            found = codec_arr_at(cur, idx, &cur);
        else
            found = 0;
        if (!found)
            return 0;
        if (j >= plen)
            break;
        i = j + 1;
    }
    *out = cur;
    return 1;
}

/* ---- Equality ------------------------------------------------------------ */

/* Exact comparison of an int64 with a double: converting the int to a
 * double would make 2^53 + 1 equal to 2^53. */
static int int_eq_double(int64_t i, double d)
{
    /* -2^63 <= d < 2^63 (false for NaN too), so the cast is defined */
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return 0;
    int64_t t = (int64_t)d;
    return (double)t == d && t == i;
}

static int numbers_equal(codec_val a, codec_val b)
{
    int64_t ia, ib;
    double da, db;
    int a_int = codec_as_int64(a, &ia), b_int = codec_as_int64(b, &ib);
    if (a_int && b_int)
        return ia == ib;
    if (a_int) {
        codec_as_double(b, &db);
        return int_eq_double(ia, db);
    }
    codec_as_double(a, &da);
    if (b_int)
        return int_eq_double(ib, da);
    codec_as_double(b, &db);
    return da == db;
}

/* Recursion depth is bounded by the depth limit the values were validated
 * against (100 for documents). */
int codec_equal(codec_val a, codec_val b)
{
    int ta = codec_type(a), tb = codec_type(b);
    int a_num = ta == DOTDB_T_INT || ta == DOTDB_T_DOUBLE;
    int b_num = tb == DOTDB_T_INT || tb == DOTDB_T_DOUBLE;
    if (a_num && b_num)
        return numbers_equal(a, b);
    if (ta != tb)
        return 0;
    switch (ta) {
    case DOTDB_T_NULL:
        return 1;
    case DOTDB_T_BOOL:
        return a.p[0] == b.p[0];
    case DOTDB_T_STRING: {
        const char *sa, *sb;
        size_t la, lb;
        codec_as_string(a, &sa, &la);
        codec_as_string(b, &sb, &lb);
        return la == lb && memcmp(sa, sb, la) == 0;
    }
    case DOTDB_T_ARRAY: {
        size_t n = codec_count(a);
        if (n != codec_count(b))
            return 0;
        for (size_t i = 0; i < n; i++) {
            codec_val ea, eb;
            codec_arr_at(a, i, &ea);
            codec_arr_at(b, i, &eb);
            if (!codec_equal(ea, eb))
                return 0;
        }
        return 1;
    }
    case DOTDB_T_OBJECT: {
        size_t n = codec_count(a);
        if (n != codec_count(b))
            return 0;
        for (size_t i = 0; i < n; i++) {
            const char *ka, *kb;
            size_t kla, klb;
            codec_val va, vb;
            codec_obj_at(a, i, &ka, &kla, &va);
            codec_obj_at(b, i, &kb, &klb, &vb);
            if (kla != klb || memcmp(ka, kb, kla) != 0 || !codec_equal(va, vb))
                return 0;
        }
        return 1;
    }
    default:
        return 0;
    }
}

/* ---- JSON output (trusted input) ----------------------------------------- */

/* Room for n more bytes; the common case (room enough) stays inline. */
static inline int jw_room(dbuf *out, size_t n)
{
    return n <= out->cap - out->len ? DOTDB_OK : (dbuf_reserve(out, n) ? DOTDB_ENOMEM : DOTDB_OK);
}

static inline int jw_putc(dbuf *out, char c)
{
    if (jw_room(out, 1) != DOTDB_OK)
        return DOTDB_ENOMEM;
    out->data[out->len++] = (uint8_t)c;
    return DOTDB_OK;
}

/* Bytes JSON text must escape: control characters, '"' and '\\'. */
static const uint8_t json_escaped[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

/*
 * Copy s[i..n) to w + i up to the first byte JSON must escape; returns its
 * index (n when none).  w has room for n + 8 bytes: words are stored whole.
 * Eight bytes at a time: the lowest flagged byte of a word is exact (a
 * subtraction's borrow only flags bytes above a flagged one); bytes >= 0x80
 * are never flagged (~v masks them).
 */
static size_t copy_plain(const uint8_t *s, size_t i, size_t n, uint8_t *w)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (; n - i >= 8; i += 8) {
        uint64_t v = ld_u64(s + i), q = v ^ (ones * '"'), b = v ^ (ones * '\\');
        uint64_t hit = (((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
        st_u64(w + i, v);
        if (hit)
            return i + ((size_t)__builtin_ctzll(hit) >> 3);
    }
    for (; i < n && !json_escaped[s[i]]; i++)
        w[i] = s[i];
    return i;
}

/* "s" with JSON escapes, then `after` (':' for keys, 0 for none). */
static int put_json_string(dbuf *out, const uint8_t *s, size_t n, char after)
{
    static const char hex[] = "0123456789abcdef";
    if (jw_room(out, n + 3 + 8) != DOTDB_OK)
        return DOTDB_ENOMEM;
    out->data[out->len++] = '"';
    size_t i = 0;
    for (;;) {
        /* out->data + out->len - i is where s[i] goes */
        size_t e = copy_plain(s, i, n, out->data + out->len - i);
        out->len += e - i;
        if (e == n)
            break;
        /* an escape takes at most 6 bytes instead of 1 */
        if (jw_room(out, 5 + (n - e) + 2 + 8) != DOTDB_OK)
            return DOTDB_ENOMEM;
        uint8_t ch = s[e], *w = out->data + out->len;
        w[0] = '\\';
        size_t elen = 2;
        switch (ch) {
        case '"': w[1] = '"'; break;
        case '\\': w[1] = '\\'; break;
        case '\b': w[1] = 'b'; break;
        case '\f': w[1] = 'f'; break;
        case '\n': w[1] = 'n'; break;
        case '\r': w[1] = 'r'; break;
        case '\t': w[1] = 't'; break;
        default:
            memcpy(w + 1, "u00", 3);
            w[4] = (uint8_t)hex[ch >> 4];
            w[5] = (uint8_t)hex[ch & 15];
            elen = 6;
        }
        out->len += elen;
        i = e + 1;
    }
    out->data[out->len++] = '"';
    if (after)
        out->data[out->len++] = (uint8_t)after;
    return DOTDB_OK;
}

/* Decimal digits of v, written backwards ending at `end`; returns the start. */
static char *put_u64_rev(char *end, uint64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        end -= 2;
        memcpy(end, pairs + 2 * r, 2);
    }
    if (v >= 10) {
        end -= 2;
        memcpy(end, pairs + 2 * v, 2);
    } else {
        *--end = (char)('0' + v);
    }
    return end;
}

/* %lld, by hand. */
static size_t format_int(int64_t i, char *buf)
{
    char tmp[24], *end = tmp + sizeof tmp;
    uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
    char *p = put_u64_rev(end, u);
    if (i < 0)
        *--p = '-';
    size_t n = (size_t)(end - p);
    memcpy(buf, p, n);
    return n;
}

/*
 * The text the general path below would print, for the doubles most
 * documents hold: 1e-4 <= |d| < 1e15 with at most 15 significant digits,
 * i.e. d is the double nearest to m / 10^k for an integer m < 10^15 and
 * k <= 19.  Then %.15g prints exactly those digits (any other 15-digit
 * decimal is more than half an ulp away from d) and they read back, so it
 * is the choice of the general path; m and 10^k are exact doubles and the
 * division is correctly rounded, so `m / 10^k == d` is the exact test.
 * The smallest such k gives no trailing zeros, as %g.  Returns 0 when d is
 * outside that range.
 */
static size_t format_double_fast(double d, char *buf)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
                                   1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19};
    double a = d < 0 ? -d : d;
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (int k = 0; k <= 19; k++) {
        double t = a * pow10[k];
        if (t >= 1e15)
            return 0;
        uint64_t m = (uint64_t)(t + 0.5);
        if ((double)m / pow10[k] != a)
            continue;
        /* m with a '.' k digits from the right, "0." and zeros in front
         * when m has fewer digits; ".0" for an integral value */
        char tmp[48], *end = tmp + sizeof tmp, *p;
        if (k == 0) {
            memcpy(end - 2, ".0", 2);
            p = put_u64_rev(end - 2, m);
        } else {
            p = put_u64_rev(end, m);
            int digits = (int)(end - p);
            while (digits < k + 1) {
                *--p = '0';
                digits++;
            }
            /* move the integral digits one left to open the '.' */
            char *point = end - k;
            memmove(p - 1, p, (size_t)(point - p));
            p--;
            point[-1] = '.';
        }
        if (d < 0)
            *--p = '-';
        size_t n = (size_t)(end - p);
        memcpy(buf, p, n);
        return n;
    }
    return 0;
}

/*
 * Shortest of %.15g, %.16g, %.17g that reads back as the same double, with
 * ".0" appended when it would otherwise read back as an int.  printf and
 * strtod both follow LC_NUMERIC, so the round trip is checked in the
 * current locale and its radix character is then replaced by '.'.
 */
static size_t format_double(double d, char *buf, size_t cap)
{
    size_t fast = format_double_fast(d, buf);
    if (fast)
        return fast;
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, cap, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            break;
    }
    const char *radix = nl_langinfo(RADIXCHAR);
    size_t rlen = strlen(radix);
    if (rlen > 0 && strcmp(radix, ".") != 0) {
        char *r = strstr(buf, radix);
        if (r != NULL) {
            *r = '.';
            memmove(r + 1, r + rlen, strlen(r + rlen) + 1);
            n -= (int)(rlen - 1);
        }
    }
    if (strpbrk(buf, ".en") == NULL && (size_t)n + 2 < cap) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    return (size_t)n;
}

static int put_scalar(dbuf *out, codec_val v)
{
    int64_t i;
    double d;
    if (jw_room(out, 48) != DOTDB_OK)
        return DOTDB_ENOMEM;
    char *w = (char *)out->data + out->len;
    switch (codec_type(v)) {
    case DOTDB_T_NULL:
        memcpy(w, "null", 4);
        out->len += 4;
        return DOTDB_OK;
    case DOTDB_T_BOOL:
        if (v.p[0] == CODEC_TRUE) {
            memcpy(w, "true", 4);
            out->len += 4;
        } else {
            memcpy(w, "false", 5);
            out->len += 5;
        }
        return DOTDB_OK;
    case DOTDB_T_INT:
        codec_as_int64(v, &i);
        out->len += format_int(i, w);
        return DOTDB_OK;
    case DOTDB_T_DOUBLE:
        codec_as_double(v, &d);
        out->len += format_double(d, w, 48);
        return DOTDB_OK;
    default: {
        const char *s;
        size_t len;
        codec_as_string(v, &s, &len);
        return put_json_string(out, (const uint8_t *)s, len, 0);
    }
    }
}

/* One open container while printing. */
typedef struct pframe {
    codec_val v;
    size_t count, i;
    int is_obj;
} pframe;

#define PSTACK_INLINE 32

typedef struct pstack {
    pframe *f;
    size_t n, cap;
    pframe inl[PSTACK_INLINE];
} pstack;

/* Print a scalar, or the opening bracket of a container and push it. */
static int put_open(pstack *st, codec_val v, dbuf *out)
{
    int t = codec_type(v);
    if (t != DOTDB_T_ARRAY && t != DOTDB_T_OBJECT)
        return put_scalar(out, v);
    if (st->n == st->cap) {
        size_t ncap = st->cap * 2;
        pframe *p = st->f == st->inl ? malloc(ncap * sizeof *p) : realloc(st->f, ncap * sizeof *p);
        if (p == NULL)
            return DOTDB_ENOMEM;
        if (st->f == st->inl)
            memcpy(p, st->inl, sizeof st->inl);
        st->f = p;
        st->cap = ncap;
    }
    st->f[st->n++] = (pframe){v, codec_count(v), 0, t == DOTDB_T_OBJECT};
    return jw_putc(out, t == DOTDB_T_OBJECT ? '{' : '[');
}

/* Iterative so that printing needs no C stack proportional to depth. */
static int to_json_walk(pstack *st, codec_val v, dbuf *out)
{
    int rc = put_open(st, v, out);
    while (rc == DOTDB_OK && st->n > 0) {
        pframe *f = &st->f[st->n - 1];
        if (f->i == f->count) {
            rc = jw_putc(out, f->is_obj ? '}' : ']');
            st->n--;
            continue;
        }
        if (f->i > 0 && jw_putc(out, ','))
            return DOTDB_ENOMEM;
        codec_val e;
        if (f->is_obj) {
            const char *k;
            size_t klen;
            codec_obj_at(f->v, f->i, &k, &klen, &e);
            if ((rc = put_json_string(out, (const uint8_t *)k, klen, ':')) != DOTDB_OK)
                return rc;
        } else {
            codec_arr_at(f->v, f->i, &e);
        }
        f->i++; /* before put_open: it may move the stack */
        rc = put_open(st, e, out);
    }
    return rc;
}

int codec_to_json(codec_val v, dbuf *out)
{
    size_t entry_len = out->len;
    pstack st; /* no initialiser: it would clear the inline frames on every call */
    st.n = 0;
    st.cap = PSTACK_INLINE;
    st.f = st.inl;
    int rc = to_json_walk(&st, v, out);
    if (st.f != st.inl)
        free(st.f);
    if (rc != DOTDB_OK)
        out->len = entry_len;
    return rc;
}
