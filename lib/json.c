/*
 * json.c - strict RFC 8259 JSON text -> DDB1 binary encoding (codec.h).
 *
 * One pass over the text, two over memory:
 *
 *  1. parse: an iterative state machine appends one node per value and per
 *     object key to a tape, in document order.  Open containers live on an
 *     explicit stack whose height is checked against lim->max_depth before
 *     each push, so hostile nesting ("[[[[...") fails with DOTDB_ETOODEEP
 *     and never grows the C stack.  When a container closes, the encoded
 *     sizes of all its children are known: its width W, its size and (for
 *     objects) its sorted[] table are computed right there, which is also
 *     where duplicate keys are found.
 *
 *  2. emit: a forward walk over the tape writes the encoding straight into
 *     the caller's buffer, grown once to the exact final size.  A container
 *     header needs the sizes of its direct children for its offset tables;
 *     each node's subtree end (the index after its last descendant) lets the
 *     walk step from child to child, so all headers together cost O(n).
 *
 * Typical documents fit the inline arrays of struct jparser and the parse
 * makes no heap allocation at all.  Strings without escapes are not copied
 * during the parse: their nodes point into the JSON text.
 */
#include "codec.h"

#include <assert.h>
#include <langinfo.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "json.c stores little-endian fields with plain memcpy: port st_u16/st_u32 first"
#endif

enum jkind {
    JK_NULL,
    JK_FALSE,
    JK_TRUE,
    JK_INT,
    JK_DOUBLE,
    JK_STRING,
    JK_KEY, /* an object member's key: no tag byte in the encoding */
    JK_ARRAY,
    JK_OBJECT,
};

/* One tape entry.  Field use depends on the kind (32 bytes). */
typedef struct jnode {
    uint8_t kind;    /* enum jkind */
    uint8_t width;   /* containers: W (1, 2 or 4) */
    uint8_t in_text; /* strings, keys: bytes are in the JSON text (no escapes) */
    uint32_t a;      /* strings, keys: byte length; containers: count */
    uint32_t b;      /* strings, keys: offset of the bytes in the text or in
                      * scratch; containers: index of the node after the subtree */
    uint32_t c;      /* keys: text offset of the opening quote (for errors) */
    uint32_t size;   /* encoded bytes (a key: its varint and bytes); set when
                      * the node is made, for a container when it closes */
    union {
        int64_t i;     /* JK_INT */
        double d;      /* JK_DOUBLE */
        uint32_t rank; /* key of member j: sorted[j] of its object; root object
                        * with an inserted id: sorted[0] */
    } u;
} jnode;

/* One open container during the parse. */
typedef struct jframe {
    uint32_t node;    /* its tape index */
    uint32_t count;   /* children completed so far */
    uint64_t content; /* encoded bytes of those children (keys included) */
} jframe;

/* One member while an object's sorted[] table is computed. */
typedef struct sortent {
    uint64_t prefix;  /* the key's first 8 bytes, big endian, zero padded */
    const uint8_t *key;
    uint32_t len;
    uint32_t member; /* index in input order */
    uint32_t node;   /* tape index of its key (UINT32_MAX: inserted id) */
} sortent;

#define INL_NODES 64
#define INL_FRAMES 16
#define INL_SORT 32

typedef struct jparser {
    const uint8_t *s; /* the text */
    size_t len;
    size_t pos;       /* next byte to read */
    size_t max_size;
    int max_depth;
    jnode *nodes;     /* inl_nodes or heap */
    size_t nnodes, ncap;
    jframe *stack;    /* inl_frames or heap */
    size_t depth, scap;
    sortent *sorts;   /* inl_sorts or heap */
    size_t sortcap;
    dbuf scratch;     /* unescaped bytes of strings that had escapes */
    const uint8_t *gen_id;
    uint32_t gen_id_len;
    int insert_id;    /* emit "id": gen_id as the root's first member */
    int prefix;       /* the value may be followed by more text (its own) */
    char *err;
    size_t errlen;
    jnode inl_nodes[INL_NODES];
    jframe inl_frames[INL_FRAMES];
    sortent inl_sorts[INL_SORT];
} jparser;

static const uint8_t id_key[2] = {'i', 'd'};

/* ---- Errors -------------------------------------------------------------- */

static int jmsg(jparser *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int jerr_at(jparser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int jmsg(jparser *p, int rc, const char *fmt, ...)
{
    if (p->err != NULL && p->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* DOTDB_EJSON with the 1-based line and column (in characters) of byte pos.
 * Computed only on failure, so the parse never tracks lines. */
static int jerr_at(jparser *p, size_t pos, const char *fmt, ...)
{
    if (p->err == NULL || p->errlen == 0)
        return DOTDB_EJSON;
    size_t line = 1, line_start = 0, col = 1;
    for (size_t i = 0; i < pos && i < p->len; i++)
        if (p->s[i] == '\n') {
            line++;
            line_start = i + 1;
        }
    for (size_t i = line_start; i < pos && i < p->len; i++)
        if ((p->s[i] & 0xc0) != 0x80)
            col++;
    int n = snprintf(p->err, p->errlen, "malformed JSON at line %zu, column %zu: ", line, col);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return DOTDB_EJSON;
}

static int nomem(jparser *p) { return jmsg(p, DOTDB_ENOMEM, "out of memory"); }

/* "'x'" for a printable byte, "byte 0xNN" otherwise. */
static const char *describe(uint8_t c, char *buf, size_t cap)
{
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else
        snprintf(buf, cap, "byte 0x%02x", c);
    return buf;
}

/* ---- Tape and stacks ----------------------------------------------------- */

/* Grow an array that starts in inline storage `inl`; NULL on failure (the
 * old array is intact). */
static void *grow_array(void *arr, size_t *cap, size_t need, size_t elsize, const void *inl)
{
    size_t ncap = *cap;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elsize)
            return NULL;
        ncap *= 2;
    }
    void *p = arr == inl ? malloc(ncap * elsize) : realloc(arr, ncap * elsize);
    if (p == NULL)
        return NULL;
    if (arr == inl)
        memcpy(p, inl, *cap * elsize);
    *cap = ncap;
    return p;
}

static int grow_nodes(jparser *p)
{
    jnode *a = grow_array(p->nodes, &p->ncap, p->nnodes + 1, sizeof *a, p->inl_nodes);
    if (a == NULL)
        return nomem(p);
    p->nodes = a;
    return DOTDB_OK;
}

/* Field by field: copied whole, the node built in registers went through
 * the stack and was read back in 16-byte loads spanning narrower stores,
 * a store-forwarding stall on every node (a third of parse_key's time). */
static inline int add_node(jparser *p, jnode n)
{
    if (__builtin_expect(p->nnodes == p->ncap, 0) && grow_nodes(p) != DOTDB_OK)
        return DOTDB_ENOMEM;
    jnode *d = &p->nodes[p->nnodes++];
    d->kind = n.kind;
    d->width = n.width;
    d->in_text = n.in_text;
    d->a = n.a;
    d->b = n.b;
    d->c = n.c;
    d->size = n.size;
    d->u = n.u;
    return DOTDB_OK;
}

static uint32_t next_sibling(const jparser *p, uint32_t i)
{
    return p->nodes[i].kind >= JK_ARRAY ? p->nodes[i].b : i + 1;
}

static const uint8_t *str_bytes(const jparser *p, const jnode *n)
{
    return n->in_text ? p->s + n->b : p->scratch.data + n->b;
}

/* ---- Sizes --------------------------------------------------------------- */

static size_t varint_len(uint32_t v)
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

/* Encoded bytes of node n (for a key: its varint and bytes). */
static inline uint64_t node_size(const jnode *n) { return n->size; }

static uint64_t id_member_size(const jparser *p)
{
    return 1 + sizeof id_key + 1 + varint_len(p->gen_id_len) + p->gen_id_len;
}

/*
 * Pick the smallest width W whose size field can hold the container's size,
 * which itself grows with W (the header is 1 + 2W bytes plus W or 2W per
 * entry), so each width is tried in turn.
 */
static int size_container(jparser *p, uint32_t idx, uint64_t count, uint64_t content)
{
    static const unsigned widths[] = {1, 2, 4};
    jnode *n = &p->nodes[idx];
    for (size_t k = 0; k < 3; k++) {
        unsigned w = widths[k];
        uint64_t size = header_bytes(n->kind == JK_OBJECT, w, count) + content;
        uint64_t max = w == 4 ? UINT32_MAX : (1ull << (8 * w)) - 1;
        if (size <= max) {
            if (size > p->max_size)
                break;
            n->width = (uint8_t)w;
            n->size = (uint32_t)size;
            return DOTDB_OK;
        }
    }
    return jmsg(p, DOTDB_ETOOBIG, "encoded document exceeds the size limit of %zu bytes",
                p->max_size);
}

/* ---- Objects: sorted[] and duplicate keys ------------------------------- */

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0; /* an empty key may come with a NULL pointer */
    if (c != 0)
        return c;
    return (alen > blen) - (alen < blen);
}

/* Keys in memcmp order compare like their big-endian prefixes as long as
 * those differ (padding zeros tie with real zero bytes: then memcmp). */
static uint64_t key_prefix(const uint8_t *k, size_t len, const uint8_t *readable_end)
{
    if (len >= 8)
        return __builtin_bswap64(ld_u64(k));
    if (len == 0)
        return 0;
    if (readable_end - k >= 8) /* one load, the bytes past the key masked off */
        return __builtin_bswap64(ld_u64(k)) & ~(~0ull >> (8 * len));
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++)
        v |= (uint64_t)k[i] << (56 - 8 * i);
    return v;
}

static int sortent_cmp(const void *x, const void *y)
{
    const sortent *a = x, *b = y;
    if (a->prefix != b->prefix) /* most keys differ in their first 8 bytes */
        return a->prefix < b->prefix ? -1 : 1;
    int c = key_cmp(a->key, a->len, b->key, b->len);
    if (c != 0)
        return c;
    return (a->member > b->member) - (a->member < b->member);
}

static int duplicate_key(jparser *p, const sortent *e)
{
    /* print at most 64 bytes, without bytes that would garble the message */
    char shown[72];
    size_t n = e->len < 64 ? e->len : 64, j = 0;
    while (n > 0 && n < e->len && (e->key[n] & 0xc0) == 0x80)
        n--; /* do not cut a UTF-8 sequence */
    for (size_t i = 0; i < n; i++)
        shown[j++] = (e->key[i] < 0x20 || e->key[i] == '"') ? '?' : (char)e->key[i];
    shown[j] = '\0';
    return jerr_at(p, p->nodes[e->node].c, "duplicate key \"%s\"%s", shown,
                   n < e->len ? "..." : "");
}

/*
 * Sort the members of object `obj` by key, fail on a duplicate, and store
 * sorted[j] in the key node of member j (member 0's in the object node when
 * with_id inserts "id" in front of the real members).
 */
static int sort_members(jparser *p, uint32_t obj, int with_id)
{
    const jnode *o = &p->nodes[obj];
    size_t n = (size_t)o->a + (with_id ? 1 : 0);
    if (n > p->sortcap) {
        sortent *a = grow_array(p->sorts, &p->sortcap, n, sizeof *a, p->inl_sorts);
        if (a == NULL)
            return nomem(p);
        p->sorts = a;
    }
    size_t j = 0;
    if (with_id)
        p->sorts[j++] = (sortent){key_prefix(id_key, sizeof id_key, id_key + sizeof id_key), id_key,
                                  sizeof id_key, 0,
                                  UINT32_MAX};
    for (uint32_t k = obj + 1; k < o->b; k = next_sibling(p, k + 1), j++) {
        const jnode *key = &p->nodes[k];
        const uint8_t *kb = str_bytes(p, key);
        const uint8_t *end = key->in_text ? p->s + p->len : kb + key->a;
        p->sorts[j] = (sortent){key_prefix(kb, key->a, end), kb, key->a, (uint32_t)j, k};
    }
    if (n > 16) {
        qsort(p->sorts, n, sizeof *p->sorts, sortent_cmp);
    } else {
        /* typical objects are small: insertion sort beats qsort's overhead;
         * the prefixes decide almost every comparison inline */
        sortent *a = p->sorts;
        for (size_t i = 1; i < n; i++) {
            if (a[i - 1].prefix < a[i].prefix)
                continue; /* already in place */
            sortent e = a[i];
            size_t k = i;
            for (; k > 0 && (a[k - 1].prefix > e.prefix ||
                             (a[k - 1].prefix == e.prefix && sortent_cmp(&a[k - 1], &e) > 0));
                 k--)
                a[k] = a[k - 1];
            a[k] = e;
        }
    }
    for (size_t i = 1; i < n; i++)
        if (p->sorts[i - 1].prefix == p->sorts[i].prefix &&
            key_cmp(p->sorts[i - 1].key, p->sorts[i - 1].len, p->sorts[i].key,
                    p->sorts[i].len) == 0)
            return duplicate_key(p, &p->sorts[i]); /* the later one in the text */
    j = 0;
    if (with_id)
        p->nodes[obj].u.rank = p->sorts[j++].member;
    for (uint32_t k = obj + 1; k < o->b; k = next_sibling(p, k + 1))
        p->nodes[k].u.rank = p->sorts[j++].member;
    return DOTDB_OK;
}

/* ---- Scalars ------------------------------------------------------------- */

static void skip_ws_slow(jparser *p)
{
    while (p->pos < p->len) {
        uint8_t c = p->s[p->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            break;
        p->pos++;
    }
}

/* Compact JSON has no whitespace: one test says so. */
static inline void skip_ws(jparser *p)
{
    if (p->pos < p->len && p->s[p->pos] > ' ')
        return;
    skip_ws_slow(p);
}

static int hex4(const uint8_t *s, size_t avail, uint32_t *out)
{
    uint32_t v = 0;
    if (avail < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        uint8_t c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            v |= (uint32_t)((c | 0x20) - 'a' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int put_utf8(dbuf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | cp >> 6);
        u[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | cp >> 12);
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | cp >> 18);
        u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return dbuf_append(b, u, n);
}

/* The \uXXXX escape at s[*i] (after its backslash), with its low surrogate
 * when it is a high one; *i moves past what was used. */
static int parse_unicode_escape(jparser *p, size_t *i)
{
    size_t at = *i - 1; /* the backslash, for messages */
    uint32_t cp, lo;
    if (hex4(p->s + *i + 1, p->len - *i - 1, &cp) != 0)
        return jerr_at(p, at, "\\u must be followed by 4 hex digits");
    *i += 5;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return jerr_at(p, at, "lone low surrogate \\u%04X", cp);
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (p->len - *i < 6 || p->s[*i] != '\\' || p->s[*i + 1] != 'u' ||
            hex4(p->s + *i + 2, 4, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
            return jerr_at(p, at, "lone high surrogate \\u%04X (expected \\uDC00-\\uDFFF next)",
                           cp);
        *i += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    return put_utf8(&p->scratch, cp) ? nomem(p) : DOTDB_OK;
}

/* The escape whose backslash is at s[*i]; appends its bytes to scratch. */
static int parse_escape(jparser *p, size_t *i)
{
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    char shown[16];
    if (*i + 1 >= p->len)
        return jerr_at(p, *i, "unterminated string");
    uint8_t c = p->s[*i + 1];
    if (c == 'u') {
        *i += 1;
        return parse_unicode_escape(p, i);
    }
    const char *hit = c ? memchr(from, c, sizeof from - 1) : NULL;
    if (hit == NULL)
        return jerr_at(p, *i, "invalid escape \\%s", describe(c, shown, sizeof shown));
    *i += 2;
    return dbuf_putc(&p->scratch, (uint8_t)to[hit - from]) ? nomem(p) : DOTDB_OK;
}

/* The high bit of each byte of v that is >= 0x80, < 0x20, '"' or '\\'.
 * The borrows of the subtractions can only flag bytes above a flagged one,
 * so the lowest flag is exact. */
static inline uint64_t special_bytes(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    return (v | ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
}

/* Length of the run of plain characters (no quote, backslash or control
 * character) at s[i], UTF-8 checked; *bad is set at an invalid byte. */
static size_t plain_run(const jparser *p, size_t i, int *bad)
{
    size_t start = i;
    *bad = 0;
    while (i < p->len) {
        if (p->len - i >= 8) { /* eight bytes at a time */
            uint64_t special = special_bytes(ld_u64(p->s + i));
            if (special == 0) {
                i += 8;
                continue;
            }
            i += (size_t)__builtin_ctzll(special) >> 3;
        }
        uint8_t c = p->s[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\' || c < 0x20)
                break;
            i++;
            continue;
        }
        size_t k = codec_utf8_seq(p->s + i, p->len - i);
        if (k == 0) {
            *bad = 1;
            break;
        }
        i += k;
    }
    return i - start;
}

static inline uint32_t string_size(uint8_t kind, size_t len)
{
    return (uint32_t)((kind == JK_STRING) + varint_len((uint32_t)len) + len);
}

/* parse_string for a string with escapes, bytes >= 0x80 or an error. */
static int parse_string_full(jparser *p, uint8_t kind)
{
    size_t q = p->pos, i = q + 1;
    size_t scratch_start = p->scratch.len;
    int escaped = 0, bad, rc;
    for (;;) {
        size_t run = plain_run(p, i, &bad);
        if (escaped && dbuf_append(&p->scratch, p->s + i, run) != 0)
            return nomem(p);
        i += run;
        if (bad)
            return jerr_at(p, i, "invalid UTF-8 in string");
        if (i >= p->len)
            return jerr_at(p, q, "unterminated string");
        uint8_t c = p->s[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return jerr_at(p, i, "control character (byte 0x%02x) in string must be escaped", c);
        if (!escaped) { /* first backslash: copy what came before it */
            escaped = 1;
            if (dbuf_append(&p->scratch, p->s + q + 1, i - q - 1) != 0)
                return nomem(p);
        }
        if ((rc = parse_escape(p, &i)) != DOTDB_OK)
            return rc;
    }
    p->pos = i + 1;
    if (!escaped)
        return add_node(p, (jnode){.kind = kind, .in_text = 1, .a = (uint32_t)(i - q - 1),
                                   .b = (uint32_t)(q + 1), .c = (uint32_t)q,
                                   .size = string_size(kind, i - q - 1)});
    size_t n = p->scratch.len - scratch_start;
    return add_node(p, (jnode){.kind = kind, .a = (uint32_t)n, .b = (uint32_t)scratch_start,
                               .c = (uint32_t)q, .size = string_size(kind, n)});
}

/* A string whose opening quote is at p->pos; node of kind JK_STRING or
 * JK_KEY.  Strings without escapes stay in the text; the others are
 * decoded into scratch.  The usual string, ASCII without escapes, is
 * found here with one word test per 8 bytes. */
static inline int parse_string(jparser *p, uint8_t kind)
{
    const uint8_t *s = p->s;
    size_t q = p->pos, i = q + 1, len = p->len;
    for (;;) {
        if (len - i < 8) {
            while (i < len && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\')
                i++;
            break;
        }
        uint64_t special = special_bytes(ld_u64(s + i));
        if (special != 0) {
            i += (size_t)__builtin_ctzll(special) >> 3;
            break;
        }
        i += 8;
    }
    if (i >= len || s[i] != '"')
        return parse_string_full(p, kind);
    p->pos = i + 1;
    return add_node(p, (jnode){.kind = kind, .in_text = 1, .a = (uint32_t)(i - q - 1),
                               .b = (uint32_t)(q + 1), .c = (uint32_t)q,
                               .size = string_size(kind, i - q - 1)});
}

/*
 * Text -> double with strtod, which follows LC_NUMERIC: the number is copied
 * (the text is not NUL-terminated anyway) with '.' replaced by the current
 * locale's radix character, so the result does not depend on the locale.
 */
static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/*
 * Exact fast path (Clinger): a decimal with at most 15 significant digits
 * is an integer m < 2^53 times 10^e; when |e| <= 22, both m and 10^|e| are
 * doubles exactly, so one multiplication or division, correctly rounded by
 * IEEE 754, gives the correctly rounded result, the same as strtod.
 * Returns 0 when the text is outside that range (strtod decides then).
 */
static int decimal_fast(const uint8_t *s, size_t n, double *out)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    int neg = 0, digits = 0, frac = 0, exp_neg = 0;
    uint64_t m = 0;
    long e = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    for (; i < n && is_digit(s[i]); i++) {
        m = m * 10 + (uint64_t)(s[i] - '0');
        digits += m != 0;
        if (digits > 15)
            return 0;
    }
    if (i < n && s[i] == '.')
        for (i++; i < n && is_digit(s[i]); i++) {
            m = m * 10 + (uint64_t)(s[i] - '0');
            digits += m != 0;
            frac++;
            if (digits > 15)
                return 0;
        }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            exp_neg = s[i++] == '-';
        for (; i < n && is_digit(s[i]); i++) {
            e = e * 10 + (s[i] - '0');
            if (e > 1000)
                return 0;
        }
        if (exp_neg)
            e = -e;
    }
    e -= frac;
    if (i != n || e < -22 || e > 22)
        return 0;
    double d = (double)m;
    d = e >= 0 ? d * pow10[e] : d / pow10[-e];
    *out = neg ? -d : d;
    return 1;
}

static int text_to_double(jparser *p, size_t start, double *out)
{
    if (decimal_fast(p->s + start, p->pos - start, out))
        return DOTDB_OK;
    const char *radix = nl_langinfo(RADIXCHAR);
    size_t rlen = strlen(radix), n = p->pos - start;
    int swap = rlen > 0 && strcmp(radix, ".") != 0;
    char local[64], *buf = local;
    if (n + rlen + 1 > sizeof local && (buf = malloc(n + rlen + 1)) == NULL)
        return nomem(p);
    size_t j = 0;
    for (size_t i = start; i < p->pos; i++) {
        if (p->s[i] == '.' && swap) {
            memcpy(buf + j, radix, rlen);
            j += rlen;
        } else {
            buf[j++] = (char)p->s[i];
        }
    }
    buf[j] = '\0';
    char *end;
    double d = strtod(buf, &end);
    int ok = end == buf + j && !isinf(d);
    if (buf != local)
        free(buf);
    if (!ok)
        return jerr_at(p, start, "number out of range");
    *out = d;
    return DOTDB_OK;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; ints that fit int64 are
 * ints, anything else is a double. */
static int parse_number(jparser *p)
{
    const uint8_t *s = p->s;
    size_t start = p->pos;
    int neg = s[p->pos] == '-', is_int = 1, overflow = 0;
    uint64_t v = 0;
    if (neg)
        p->pos++;
    if (p->pos >= p->len || !is_digit(s[p->pos]))
        return jerr_at(p, p->pos, "expected a digit in number");
    if (s[p->pos] == '0' && p->pos + 1 < p->len && is_digit(s[p->pos + 1]))
        return jerr_at(p, p->pos, "leading zeros are not allowed in numbers");
    for (; p->pos < p->len && is_digit(s[p->pos]); p->pos++) {
        unsigned d = s[p->pos] - '0';
        if (v > (UINT64_MAX - d) / 10)
            overflow = 1;
        else
            v = v * 10 + d;
    }
    if (p->pos < p->len && s[p->pos] == '.') {
        is_int = 0;
        if (++p->pos >= p->len || !is_digit(s[p->pos]))
            return jerr_at(p, p->pos, "expected a digit after '.'");
        while (p->pos < p->len && is_digit(s[p->pos]))
            p->pos++;
    }
    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        is_int = 0;
        if (++p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || !is_digit(s[p->pos]))
            return jerr_at(p, p->pos, "expected a digit in exponent");
        while (p->pos < p->len && is_digit(s[p->pos]))
            p->pos++;
    }
    if (is_int && !overflow && v <= (uint64_t)INT64_MAX + neg) {
        int64_t i = neg ? (int64_t)(0 - v) : (int64_t)v; /* wraps to INT64_MIN for 2^63 */
        return add_node(p, (jnode){.kind = JK_INT, .size = (uint32_t)(1 + int_payload(i)), .u.i = i});
    }
    double d = 0;
    int rc = text_to_double(p, start, &d);
    if (rc != DOTDB_OK)
        return rc;
    return add_node(p, (jnode){.kind = JK_DOUBLE, .size = 9, .u.d = d});
}

static int parse_literal(jparser *p, const char *word, uint8_t kind)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return jerr_at(p, p->pos, "invalid literal (expected '%s')", word);
    p->pos += n;
    return add_node(p, (jnode){.kind = kind, .size = 1});
}

/* ---- Containers ---------------------------------------------------------- */

static int open_container(jparser *p, uint8_t kind)
{
    /* checked before the push: the depth limit bounds all parse memory */
    if (p->depth + 1 > (size_t)p->max_depth)
        return jmsg(p, DOTDB_ETOODEEP, "document nesting depth exceeds %d", p->max_depth);
    if (p->depth == p->scap) {
        jframe *a = grow_array(p->stack, &p->scap, p->depth + 1, sizeof *a, p->inl_frames);
        if (a == NULL)
            return nomem(p);
        p->stack = a;
    }
    p->stack[p->depth++] = (jframe){.node = (uint32_t)p->nnodes};
    p->pos++;
    return add_node(p, (jnode){.kind = kind});
}

/* The closing bracket was consumed: finish the innermost container. */
static int close_container(jparser *p, uint32_t *done)
{
    const jframe *f = &p->stack[p->depth - 1];
    jnode *n = &p->nodes[f->node];
    int rc;
    n->a = f->count;
    n->b = (uint32_t)p->nnodes;
    if (n->kind == JK_OBJECT && (rc = sort_members(p, f->node, 0)) != DOTDB_OK)
        return rc;
    if ((rc = size_container(p, f->node, f->count, f->content)) != DOTDB_OK)
        return rc;
    *done = f->node;
    p->depth--;
    return DOTDB_OK;
}

/* `"key" :` with p->pos at the key's expected opening quote. */
static int parse_key(jparser *p)
{
    char shown[16];
    int rc;
    skip_ws(p);
    if (p->pos >= p->len)
        return jerr_at(p, p->pos, "unexpected end of input, expected an object key");
    if (p->s[p->pos] != '"')
        return jerr_at(p, p->pos, "expected a string object key, found %s",
                       describe(p->s[p->pos], shown, sizeof shown));
    if ((rc = parse_string(p, JK_KEY)) != DOTDB_OK)
        return rc;
    p->stack[p->depth - 1].content += node_size(&p->nodes[p->nnodes - 1]);
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':')
        return jerr_at(p, p->pos, "expected ':' after object key");
    p->pos++;
    return DOTDB_OK;
}

/* One value; a container is only opened (its contents come later).
 * *opened tells which. */
static int parse_value(jparser *p, int *opened)
{
    char shown[16];
    *opened = 0;
    skip_ws(p);
    if (p->pos >= p->len)
        return jerr_at(p, p->pos, "unexpected end of input, expected a value");
    uint8_t c = p->s[p->pos];
    switch (c) {
    case '{':
        *opened = 1;
        return open_container(p, JK_OBJECT);
    case '[':
        *opened = 1;
        return open_container(p, JK_ARRAY);
    case '"':
        return parse_string(p, JK_STRING);
    case 't':
        return parse_literal(p, "true", JK_TRUE);
    case 'f':
        return parse_literal(p, "false", JK_FALSE);
    case 'n':
        return parse_literal(p, "null", JK_NULL);
    default:
        if (c == '-' || is_digit(c))
            return parse_number(p);
        return jerr_at(p, p->pos, "unexpected %s, expected a value",
                       describe(c, shown, sizeof shown));
    }
}

/*
 * Value `done` is complete: count it in its parent and read what follows
 * it, closing every container the text closes.  *want_value is set when
 * another element (or member, its key already read) follows.
 */
static int complete_value(jparser *p, uint32_t done, int *want_value)
{
    int rc;
    *want_value = 0;
    while (p->depth > 0) {
        jframe *f = &p->stack[p->depth - 1];
        int is_obj = p->nodes[f->node].kind == JK_OBJECT;
        uint8_t closer = is_obj ? '}' : ']';
        f->count++;
        f->content += node_size(&p->nodes[done]);
        skip_ws(p);
        if (p->pos >= p->len)
            return jerr_at(p, p->pos, "unexpected end of input inside an %s",
                           is_obj ? "object" : "array");
        uint8_t c = p->s[p->pos];
        if (c == ',') {
            p->pos++;
            skip_ws(p);
            if (p->pos < p->len && (p->s[p->pos] == ']' || p->s[p->pos] == '}'))
                return jerr_at(p, p->pos, "trailing comma");
            if (is_obj && (rc = parse_key(p)) != DOTDB_OK)
                return rc;
            *want_value = 1;
            return DOTDB_OK;
        }
        if (c != closer)
            return jerr_at(p, p->pos, "expected ',' or '%c' after an %s", closer,
                           is_obj ? "object member" : "array element");
        p->pos++;
        if ((rc = close_container(p, &done)) != DOTDB_OK)
            return rc;
    }
    return DOTDB_OK;
}

/* The whole text: exactly one value surrounded by whitespace. */
static int parse_text(jparser *p)
{
    int rc, opened, want_value = 1;
    while (want_value) {
        if ((rc = parse_value(p, &opened)) != DOTDB_OK)
            return rc;
        uint32_t done = (uint32_t)p->nnodes - 1;
        if (opened) {
            int is_obj = p->nodes[done].kind == JK_OBJECT;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != (is_obj ? '}' : ']')) {
                if (is_obj && (rc = parse_key(p)) != DOTDB_OK)
                    return rc;
                continue; /* the first element or member's value */
            }
            p->pos++; /* empty container */
            if ((rc = close_container(p, &done)) != DOTDB_OK)
                return rc;
        }
        if ((rc = complete_value(p, done, &want_value)) != DOTDB_OK)
            return rc;
    }
    if (p->prefix)
        return DOTDB_OK;
    skip_ws(p);
    if (p->pos != p->len)
        return jerr_at(p, p->pos, "unexpected data after the JSON value");
    return DOTDB_OK;
}

/* ---- id rules ------------------------------------------------------------ */

static int bad_id(jparser *p)
{
    return jmsg(p, DOTDB_EBADID, "id must be a string of 1 to %d bytes", DOTDB_ID_MAX);
}

static void copy_id(char *id_buf, const uint8_t *s, size_t n)
{
    if (id_buf != NULL) {
        memcpy(id_buf, s, n);
        id_buf[n] = '\0';
    }
}

/* Find "id" among the root's members, check it, or arrange for gen_id to
 * be inserted as the first member (re-sizing and re-sorting the root). */
static int apply_id_rules(jparser *p, const char *gen_id, char *id_buf)
{
    const jnode *root = &p->nodes[0];
    if (root->kind != JK_OBJECT) {
        p->pos = 0;
        skip_ws(p);
        return jerr_at(p, p->pos, "a document must be a JSON object");
    }
    for (uint32_t k = 1; k < root->b; k = next_sibling(p, k + 1)) {
        const jnode *key = &p->nodes[k], *val = &p->nodes[k + 1];
        if (key->a != sizeof id_key || memcmp(str_bytes(p, key), id_key, sizeof id_key) != 0)
            continue;
        if (val->kind != JK_STRING || val->a == 0 || val->a > DOTDB_ID_MAX)
            return bad_id(p);
        copy_id(id_buf, str_bytes(p, val), val->a);
        return DOTDB_OK;
    }
    if (gen_id == NULL)
        return jmsg(p, DOTDB_EBADID, "document has no \"id\" and none was generated");
    size_t glen = strlen(gen_id);
    if (glen == 0 || glen > DOTDB_ID_MAX)
        return bad_id(p);
    for (size_t i = 0, k; i < glen; i += k)
        if ((k = codec_utf8_seq((const uint8_t *)gen_id + i, glen - i)) == 0)
            return jmsg(p, DOTDB_EBADID, "generated id is not valid UTF-8");
    p->gen_id = (const uint8_t *)gen_id;
    p->gen_id_len = (uint32_t)glen;
    p->insert_id = 1;
    uint64_t content = root->size - header_bytes(1, root->width, root->a) + id_member_size(p);
    int rc = size_container(p, 0, (uint64_t)root->a + 1, content);
    if (rc == DOTDB_OK)
        rc = sort_members(p, 0, 1);
    if (rc == DOTDB_OK)
        copy_id(id_buf, p->gen_id, glen);
    return rc;
}

/* ---- Emission ------------------------------------------------------------ */

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

static uint8_t *put_varint(uint8_t *w, uint32_t v)
{
    while (v >= 0x80) {
        *w++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *w++ = (uint8_t)v;
    return w;
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

static uint8_t *put_bytes(uint8_t *w, const uint8_t *s, uint32_t n)
{
    w = put_varint(w, n);
    if (n > 0)
        memcpy(w, s, n);
    return w + n;
}

/* Room the emit may write past the encoding's end (never counted in len). */
#define EMIT_SLACK 16

/* A string or key node's varint and bytes.  A short string in the text is
 * copied as two 8-byte words: the text has them (checked) and the output
 * has EMIT_SLACK bytes of room past the end. */
static inline uint8_t *put_node_bytes(const jparser *p, uint8_t *w, const jnode *n)
{
    const uint8_t *src = str_bytes(p, n);
    if (n->in_text && n->a <= 16 && (size_t)(p->s + p->len - src) >= 16) {
        *w++ = (uint8_t)n->a; /* a one-byte varint */
        uint64_t x = ld_u64(src), y = ld_u64(src + 8);
        memcpy(w, &x, 8);
        memcpy(w + 8, &y, 8);
        return w + n->a;
    }
    return put_bytes(w, src, n->a);
}

static uint8_t width_code(unsigned w) { return w == 1 ? 0 : w == 2 ? 1 : 2; }

static uint8_t *emit_array_header(const jparser *p, uint32_t idx, uint8_t *w)
{
    const jnode *a = &p->nodes[idx];
    unsigned width = a->width;
    *w++ = (uint8_t)(CODEC_ARRAY | width_code(width));
    w = put_w(w, width, a->size);
    w = put_w(w, width, a->a);
    uint64_t off = header_bytes(0, width, a->a);
    for (uint32_t k = idx + 1; k < a->b; k = next_sibling(p, k)) {
        w = put_w(w, width, off);
        off += node_size(&p->nodes[k]);
    }
    return w;
}

/* Header and tables of an object; for the root with an inserted id, also
 * the id member, which comes before the first real member's key node. */
static uint8_t *emit_object_header(const jparser *p, uint32_t idx, uint8_t *w)
{
    const jnode *o = &p->nodes[idx];
    int extra = idx == 0 && p->insert_id;
    unsigned width = o->width;
    uint64_t count = (uint64_t)o->a + extra;
    *w++ = (uint8_t)(CODEC_OBJECT | width_code(width));
    w = put_w(w, width, o->size);
    w = put_w(w, width, count);
    uint64_t off = header_bytes(1, width, count);
    if (extra) {
        w = put_w(w, width, off);
        off += id_member_size(p);
    }
    for (uint32_t k = idx + 1; k < o->b; k = next_sibling(p, k + 1)) {
        w = put_w(w, width, off);
        off += node_size(&p->nodes[k]) + node_size(&p->nodes[k + 1]);
    }
    if (extra)
        w = put_w(w, width, o->u.rank);
    for (uint32_t k = idx + 1; k < o->b; k = next_sibling(p, k + 1))
        w = put_w(w, width, p->nodes[k].u.rank);
    if (extra) {
        w = put_bytes(w, id_key, sizeof id_key);
        *w++ = CODEC_STRING;
        w = put_bytes(w, p->gen_id, p->gen_id_len);
    }
    return w;
}

/* Write the whole tape at w; returns the end. */
static uint8_t *emit(const jparser *p, uint8_t *w)
{
    for (uint32_t i = 0; i < p->nnodes; i++) {
        const jnode *n = &p->nodes[i];
        switch (n->kind) {
        case JK_NULL:
            *w++ = CODEC_NULL;
            break;
        case JK_FALSE:
            *w++ = CODEC_FALSE;
            break;
        case JK_TRUE:
            *w++ = CODEC_TRUE;
            break;
        case JK_INT:
            w = put_int(w, n->u.i);
            break;
        case JK_DOUBLE:
            *w++ = CODEC_DOUBLE;
            memcpy(w, &n->u.d, 8);
            w += 8;
            break;
        case JK_STRING:
            *w++ = CODEC_STRING;
            w = put_node_bytes(p, w, n);
            break;
        case JK_KEY:
            w = put_node_bytes(p, w, n);
            break;
        case JK_ARRAY:
            w = emit_array_header(p, i, w);
            break;
        case JK_OBJECT:
            w = emit_object_header(p, i, w);
            break;
        }
    }
    return w;
}

/* ---- Entry points -------------------------------------------------------- */

static void parser_init(jparser *p, const char *json, size_t len, const codec_limits *lim,
                        char *err, size_t errlen)
{
    p->s = (const uint8_t *)json;
    p->len = len;
    p->pos = 0;
    p->max_size = lim && lim->max_size ? lim->max_size : CODEC_DEFAULT_MAX_SIZE;
    p->max_depth = lim && lim->max_depth > 0 ? lim->max_depth : CODEC_DEFAULT_MAX_DEPTH;
    p->nodes = p->inl_nodes;
    p->nnodes = 0;
    p->ncap = INL_NODES;
    p->stack = p->inl_frames;
    p->depth = 0;
    p->scap = INL_FRAMES;
    p->sorts = p->inl_sorts;
    p->sortcap = INL_SORT;
    dbuf_init(&p->scratch);
    p->gen_id = NULL;
    p->gen_id_len = 0;
    p->insert_id = 0;
    p->prefix = 0;
    p->err = err;
    p->errlen = errlen;
    if (err && errlen)
        err[0] = '\0';
}

static void parser_fini(jparser *p)
{
    if (p->nodes != p->inl_nodes)
        free(p->nodes);
    if (p->stack != p->inl_frames)
        free(p->stack);
    if (p->sorts != p->inl_sorts)
        free(p->sorts);
    dbuf_free(&p->scratch);
}

/* Parse, apply the id rules (documents only) and append the encoding. */
static int parse_and_emit(jparser *p, int is_doc, const char *gen_id, dbuf *out, char *id_buf)
{
    int rc;
    if (p->s == NULL && p->len > 0)
        return jmsg(p, DOTDB_EINVAL, "NULL JSON text");
    if (!p->prefix && (p->len > p->max_size || p->len > UINT32_MAX))
        return jmsg(p, DOTDB_ETOOBIG, "JSON text of %zu bytes exceeds the size limit of %zu bytes",
                    p->len, p->max_size);
    if ((rc = parse_text(p)) != DOTDB_OK)
        return rc;
    if (p->prefix && p->pos > p->max_size)
        return jmsg(p, DOTDB_ETOOBIG, "JSON text of %zu bytes exceeds the size limit of %zu bytes",
                    p->pos, p->max_size);
    if (is_doc && (rc = apply_id_rules(p, gen_id, id_buf)) != DOTDB_OK)
        return rc;
    uint64_t total = node_size(&p->nodes[0]);
    if (total > p->max_size)
        return jmsg(p, DOTDB_ETOOBIG, "encoded document exceeds the size limit of %zu bytes",
                    p->max_size);
    if (dbuf_reserve(out, total + EMIT_SLACK) != 0)
        return nomem(p);
    uint8_t *end = emit(p, out->data + out->len);
    assert((size_t)(end - (out->data + out->len)) == total); /* sizes and emit agree */
    (void)end;
    out->len += total;
    return DOTDB_OK;
}

int codec_from_json(const char *json, size_t len, const codec_limits *lim, const char *gen_id,
                    dbuf *out, char *id_buf, char *err, size_t errlen)
{
    jparser p;
    parser_init(&p, json, len, lim, err, errlen);
    if (id_buf != NULL)
        id_buf[0] = '\0';
    int rc = parse_and_emit(&p, 1, gen_id, out, id_buf);
    if (rc != DOTDB_OK && id_buf != NULL)
        id_buf[0] = '\0';
    parser_fini(&p);
    return rc;
}

int codec_from_json_first(const char *json, size_t len, const codec_limits *lim,
                          const char *gen_id, dbuf *out, char *id_buf, size_t *used, char *err,
                          size_t errlen)
{
    jparser p;
    /* Offsets into the text are 32-bit: a document past 4 GiB fails as
     * cut off (the size limit is far below that anyway). */
    parser_init(&p, json, len > UINT32_MAX ? UINT32_MAX : len, lim, err, errlen);
    p.prefix = 1;
    *used = 0;
    if (id_buf != NULL)
        id_buf[0] = '\0';
    size_t entry_len = out->len;
    int rc = parse_and_emit(&p, 1, gen_id, out, id_buf);
    if (rc == DOTDB_OK)
        *used = p.pos;
    else {
        out->len = entry_len;
        if (id_buf != NULL)
            id_buf[0] = '\0';
    }
    parser_fini(&p);
    return rc;
}

int codec_value_from_json(const char *json, size_t len, const codec_limits *lim, dbuf *out,
                          char *err, size_t errlen)
{
    jparser p;
    parser_init(&p, json, len, lim, err, errlen);
    int rc = parse_and_emit(&p, 0, NULL, out, NULL);
    parser_fini(&p);
    return rc;
}
