/*
 * agg_group.c - the $group stage: a hash table of groups and their
 * accumulators (agg_internal.h).
 *
 * Keys.  A group's key is the value of the _id expression (missing counts
 * as null, as in MongoDB).  Keys that MongoDB considers equal fall in one
 * group: int 1 and double 1.0, the same strings, objects with the same
 * members in the same order.  The hash is computed over a canonical form
 * in which every number with an exact int64 value is that int64 (so 1 and
 * 1.0 hash alike) and every other double is its bits; strings, arrays and
 * objects hash their contents with lengths (never the encoding's widths,
 * which a valid document need not choose minimal).  Equal hashes are
 * confirmed with codec_equal().  The first key seen is the one output.
 *
 * Memory.  Scalar keys and scalar accumulators allocate nothing per
 * document: the key is evaluated into a scratch arena, hashed, looked up,
 * and copied into the key arena only for a new group; accumulator states
 * live in one array (group x accumulator).  $push, $addToSet and large
 * $min/$max/$first/$last values hold heap memory.  Everything held is
 * counted, and past the budget the stage fails with DOTDB_ETOOBIG.
 *
 * Open addressing, linear probing, load <= 1/2; a slot is the high 32 bits
 * of the hash and the group index + 1 (0 = empty), so most probes never
 * touch the group itself.  Groups come out in order of first appearance.
 *
 * Accumulators as MongoDB documents them: $sum and $avg ignore
 * non-numbers ($sum of nothing is 0, $avg of nothing null), sum ints
 * exactly in 128 bits and doubles with Neumaier compensation.  $sum is an
 * int when every number was an int and the exact total fits int64, else a
 * double: as MongoDB's long, the type depends on the total, not on whether
 * a partial sum overflowed ([INT64_MAX, 1, -1] is the int INT64_MAX); $min/$max ignore null and missing (null when nothing
 * else); $first/$last keep null for missing; $push and $addToSet skip
 * missing; $count is {$sum: 1}.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "agg_internal.h"

enum acc_kind { ACC_SUM, ACC_AVG, ACC_MIN, ACC_MAX, ACC_FIRST, ACC_LAST, ACC_PUSH, ACC_ADDTOSET };

static const struct {
    const char *name;
    int kind;
} k_accs[] = {
    {"$sum", ACC_SUM},     {"$avg", ACC_AVG},   {"$min", ACC_MIN},
    {"$max", ACC_MAX},     {"$first", ACC_FIRST}, {"$last", ACC_LAST},
    {"$push", ACC_PUSH},   {"$addToSet", ACC_ADDTOSET}, {"$count", ACC_SUM},
};

typedef struct acc_def {
    char *name; /* output field, owned */
    size_t nlen;
    int kind;
    agg_expr *expr;
} acc_def;

struct agg_group_spec {
    agg_expr *id;
    acc_def *acc;
    size_t nacc;
};

/* ---- spec -------------------------------------------------------------------- */

void agg_group_spec_free(agg_group_spec *s)
{
    if (s == NULL)
        return;
    agg_expr_free(s->id);
    for (size_t i = 0; i < s->nacc; i++) {
        free(s->acc[i].name);
        agg_expr_free(s->acc[i].expr);
    }
    free(s->acc);
    free(s);
}

static int compile_acc(acc_def *d, const char *k, size_t kl, codec_val v, char *err, size_t errlen)
{
    if (kl == 0 || k[0] == '$' || memchr(k, '.', kl) != NULL)
        return agg_err(DOTDB_EINVAL, err, errlen,
                       "field name '%.*s' may not be empty, start with '$' or contain '.'", (int)kl,
                       k);
    const char *op;
    size_t oplen;
    codec_val operand;
    if (codec_type(v) != DOTDB_T_OBJECT || codec_count(v) != 1 ||
        !codec_obj_at(v, 0, &op, &oplen, &operand))
        return agg_err(DOTDB_EINVAL, err, errlen,
                       "field '%.*s' must be an object with one accumulator, such as "
                       "{\"$sum\": 1}", (int)kl, k);
    d->kind = -1;
    for (size_t i = 0; i < sizeof k_accs / sizeof k_accs[0]; i++)
        if (strlen(k_accs[i].name) == oplen && memcmp(k_accs[i].name, op, oplen) == 0)
            d->kind = k_accs[i].kind;
    if (d->kind < 0)
        return agg_err(DOTDB_EINVAL, err, errlen, "unknown accumulator '%.*s' (field '%.*s')",
                       (int)oplen, op, (int)kl, k);
    if ((d->name = malloc(kl + 1)) == NULL)
        return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    memcpy(d->name, k, kl);
    d->name[kl] = '\0';
    d->nlen = kl;
    static const uint8_t one[2] = {CODEC_INT8, 1};
    if (oplen == 6 && memcmp(op, "$count", 6) == 0) {
        if (codec_type(operand) != DOTDB_T_OBJECT || codec_count(operand) != 0)
            return agg_err(DOTDB_EINVAL, err, errlen,
                           "$count takes no argument: {\"$count\": {}} (field '%.*s')", (int)kl, k);
        operand = (codec_val){one, sizeof one};
    } else if (codec_type(operand) == DOTDB_T_ARRAY) {
        return agg_err(DOTDB_EINVAL, err, errlen,
                       "%.*s is a unary operator: give one expression, not an array (field '%.*s')",
                       (int)oplen, op, (int)kl, k);
    }
    char msg[256];
    int rc = agg_expr_compile(operand, &d->expr, msg, sizeof msg);
    if (rc != DOTDB_OK)
        return agg_err(rc, err, errlen, "field '%.*s': %s", (int)kl, k, msg);
    return DOTDB_OK;
}

int agg_group_compile(codec_val spec, agg_group_spec **out, char *err, size_t errlen)
{
    *out = NULL;
    if (codec_type(spec) != DOTDB_T_OBJECT)
        return agg_err(DOTDB_EINVAL, err, errlen, "the specification must be an object");
    size_t n = codec_count(spec);
    agg_group_spec *s = calloc(1, sizeof *s);
    int rc = DOTDB_OK;
    if (s == NULL || (n > 0 && (s->acc = calloc(n, sizeof *s->acc)) == NULL)) {
        rc = agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t kl;
        codec_val v;
        codec_obj_at(spec, i, &k, &kl, &v);
        if (kl == 3 && memcmp(k, "_id", 3) == 0) {
            char msg[256];
            if ((rc = agg_expr_compile(v, &s->id, msg, sizeof msg)) != DOTDB_OK) {
                agg_err(rc, err, errlen, "_id: %s", msg);
                goto fail;
            }
            continue;
        }
        rc = compile_acc(&s->acc[s->nacc], k, kl, v, err, errlen);
        s->nacc++; /* counted even on failure: free releases what was built */
        if (rc != DOTDB_OK)
            goto fail;
    }
    if (s->id == NULL) {
        rc = agg_err(DOTDB_EINVAL, err, errlen, "the specification must include an _id");
        goto fail;
    }
    *out = s;
    return DOTDB_OK;
fail:
    agg_group_spec_free(s);
    return rc;
}

/* ---- runtime state ---------------------------------------------------------- */

/* A value kept by $min/$max/$first/$last: inline when small. */
#define HVAL_INLINE 16
typedef struct hval {
    uint32_t len; /* 0: none */
    uint32_t cap; /* 0: inline, else heap bytes */
    union {
        uint8_t inl[HVAL_INLINE];
        uint8_t *heap;
    } u;
} hval;

/* A GCC/Clang extension on every 64-bit target DotDB builds for: fewer
 * than 2^63 int64 values can never overflow it, so ints sum exactly. */
__extension__ typedef __int128 agg_int128;

typedef struct acc_sum {
    agg_int128 i;   /* exact sum of the ints */
    double d, comp; /* sum of the doubles, Neumaier compensation */
    int64_t n;      /* numbers seen ($avg) */
    uint8_t has_double;
} acc_sum;

typedef struct acc_list {
    dbuf bytes; /* encoded elements back to back */
    uint32_t n;
} acc_list;

typedef struct acc_state {
    union {
        acc_sum sum;
        hval val;
        acc_list list;
    } u;
} acc_state;

typedef struct grp {
    codec_val key; /* in the key arena */
    uint64_t hash;
} grp;

/* $addToSet membership: one table per $addToSet field, over all groups. */
typedef struct set_entry {
    uint64_t hash; /* 0: empty (hashes are forced non-zero) */
    uint32_t group;
    uint32_t off; /* of the element in the group's list */
} set_entry;

typedef struct aset {
    set_entry *e;
    size_t n, cap; /* cap: power of two or 0 */
} aset;

struct agg_group {
    const agg_group_spec *s;
    const char *stage;
    size_t budget;
    grp *groups;
    size_t n, cap;
    acc_state *st; /* cap * nacc */
    uint64_t *slots;
    size_t nslots; /* power of two */
    aset *sets;    /* nacc, used by $addToSet fields */
    size_t held;   /* heap bytes of hvals and lists */
    agg_arena keys;
    agg_arena scratch; /* per-document expression values */
    dbuf canon;        /* canonical form of a container, for hashing */
};

static codec_val hval_view(const hval *h)
{
    return (codec_val){h->cap ? h->u.heap : h->u.inl, h->len};
}

static int hval_set(agg_group *g, hval *h, codec_val v)
{
    if (v.len <= HVAL_INLINE) {
        if (h->cap) {
            g->held -= h->cap;
            free(h->u.heap);
            h->cap = 0;
        }
        memcpy(h->u.inl, v.p, v.len);
        h->len = (uint32_t)v.len;
        return DOTDB_OK;
    }
    if (h->cap < v.len) {
        uint8_t *p = h->cap ? realloc(h->u.heap, v.len) : malloc(v.len);
        if (p == NULL)
            return DOTDB_ENOMEM;
        g->held += v.len - h->cap;
        h->u.heap = p;
        h->cap = (uint32_t)v.len;
    }
    memcpy(h->u.heap, v.p, v.len);
    h->len = (uint32_t)v.len;
    return DOTDB_OK;
}

static void state_fini(const acc_def *d, acc_state *st)
{
    if (d->kind == ACC_PUSH || d->kind == ACC_ADDTOSET)
        dbuf_free(&st->u.list.bytes);
    else if (d->kind != ACC_SUM && d->kind != ACC_AVG && st->u.val.cap)
        free(st->u.val.u.heap);
}

void agg_group_free(agg_group *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->n; i++)
        for (size_t j = 0; j < g->s->nacc; j++)
            state_fini(&g->s->acc[j], &g->st[i * g->s->nacc + j]);
    if (g->sets != NULL)
        for (size_t j = 0; j < g->s->nacc; j++)
            free(g->sets[j].e);
    free(g->sets);
    free(g->groups);
    free(g->st);
    free(g->slots);
    agg_arena_free(&g->keys);
    agg_arena_free(&g->scratch);
    dbuf_free(&g->canon);
    free(g);
}

#define GROUP_FIRST_SLOTS 64

int agg_group_new(const agg_group_spec *s, size_t memory_bytes, const char *stage,
                  agg_group **out)
{
    *out = NULL;
    agg_group *g = calloc(1, sizeof *g);
    if (g == NULL)
        return DOTDB_ENOMEM;
    g->s = s;
    g->stage = stage;
    g->budget = memory_bytes;
    agg_arena_init(&g->keys);
    agg_arena_init(&g->scratch);
    dbuf_init(&g->canon);
    g->nslots = GROUP_FIRST_SLOTS;
    if ((g->slots = calloc(g->nslots, sizeof *g->slots)) == NULL ||
        (s->nacc > 0 && (g->sets = calloc(s->nacc, sizeof *g->sets)) == NULL)) {
        agg_group_free(g);
        return DOTDB_ENOMEM;
    }
    *out = g;
    return DOTDB_OK;
}

size_t agg_group_count(const agg_group *g) { return g->n; }

/* ---- hashing ------------------------------------------------------------------- */

/* An exact int64 value of a double, if it has one. */
static int double_as_int(double d, int64_t *i)
{
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return 0;
    int64_t t = (int64_t)d;
    if ((double)t != d)
        return 0;
    *i = t;
    return 1;
}

static int canon_put(dbuf *b, codec_val v)
{
    int64_t i;
    double d;
    uint8_t tag;
    switch (codec_type(v)) {
    case DOTDB_T_NULL:
        return dbuf_putc(b, 'n');
    case DOTDB_T_BOOL:
        return dbuf_putc(b, v.p[0] == CODEC_TRUE ? 't' : 'f');
    case DOTDB_T_INT:
        codec_as_int64(v, &i);
        return dbuf_putc(b, 'i') || dbuf_put_u64(b, (uint64_t)i) ? DOTDB_ENOMEM : DOTDB_OK;
    case DOTDB_T_DOUBLE:
        codec_as_double(v, &d);
        if (double_as_int(d, &i))
            return dbuf_putc(b, 'i') || dbuf_put_u64(b, (uint64_t)i) ? DOTDB_ENOMEM : DOTDB_OK;
        {
            uint64_t bits;
            memcpy(&bits, &d, sizeof bits);
            return dbuf_putc(b, 'd') || dbuf_put_u64(b, bits) ? DOTDB_ENOMEM : DOTDB_OK;
        }
    case DOTDB_T_STRING: {
        const char *s;
        size_t len;
        codec_as_string(v, &s, &len);
        return dbuf_putc(b, 's') || dbuf_put_u32(b, (uint32_t)len) || dbuf_append(b, s, len)
                   ? DOTDB_ENOMEM
                   : DOTDB_OK;
    }
    case DOTDB_T_ARRAY:
    case DOTDB_T_OBJECT: {
        int is_obj = codec_type(v) == DOTDB_T_OBJECT;
        size_t n = codec_count(v);
        tag = is_obj ? 'o' : 'a';
        if (dbuf_putc(b, tag) || dbuf_put_u32(b, (uint32_t)n))
            return DOTDB_ENOMEM;
        for (size_t k = 0; k < n; k++) {
            codec_val e;
            if (is_obj) {
                const char *key;
                size_t klen;
                codec_obj_at(v, k, &key, &klen, &e);
                if (dbuf_put_u32(b, (uint32_t)klen) || dbuf_append(b, key, klen))
                    return DOTDB_ENOMEM;
            } else {
                codec_arr_at(v, k, &e);
            }
            int rc = canon_put(b, e);
            if (rc != DOTDB_OK)
                return DOTDB_ENOMEM;
        }
        return DOTDB_OK;
    }
    default:
        return dbuf_putc(b, '?');
    }
}

/* The hash of v (never 0), equal for values codec_equal() calls equal.
 * Scalars are hashed directly; containers through their canonical form. */
static int value_hash(agg_group *g, codec_val v, uint64_t *h)
{
    int64_t i;
    double d;
    uint64_t r;
    switch (v.p[0]) {
    case CODEC_NULL:
        r = 0x6e756c6cull;
        break;
    case CODEC_FALSE:
        r = 0x66616c73ull;
        break;
    case CODEC_TRUE:
        r = 0x74727565ull;
        break;
    case CODEC_STRING: {
        const char *s;
        size_t len;
        codec_as_string(v, &s, &len);
        r = XXH3_64bits_withSeed(s, len, 's');
        break;
    }
    case CODEC_DOUBLE:
        codec_as_double(v, &d);
        if (!double_as_int(d, &i)) {
            r = XXH3_64bits_withSeed(&d, sizeof d, 'd');
            break;
        }
        r = XXH3_64bits_withSeed(&i, sizeof i, 'i');
        break;
    default:
        if (codec_as_int64(v, &i)) {
            r = XXH3_64bits_withSeed(&i, sizeof i, 'i');
            break;
        }
        g->canon.len = 0;
        if (canon_put(&g->canon, v) != DOTDB_OK)
            return DOTDB_ENOMEM;
        r = XXH3_64bits(g->canon.data, g->canon.len);
        break;
    }
    *h = r ? r : 1;
    return DOTDB_OK;
}

/* ---- the table ------------------------------------------------------------------ */

static size_t mem_used(const agg_group *g)
{
    size_t m = g->keys.block_bytes + g->cap * sizeof(grp) +
               g->cap * g->s->nacc * sizeof(acc_state) + g->nslots * sizeof(uint64_t) + g->held;
    if (g->sets != NULL)
        for (size_t j = 0; j < g->s->nacc; j++)
            m += g->sets[j].cap * sizeof(set_entry);
    return m;
}

static int over_budget(agg_group *g, char *err, size_t errlen)
{
    return agg_err(DOTDB_ETOOBIG, err, errlen,
                   "%s: the groups need more than %zu bytes (aggregation memory budget)",
                   g->stage, g->budget);
}

static int grow_slots(agg_group *g)
{
    size_t n = g->nslots * 2;
    uint64_t *s = calloc(n, sizeof *s);
    if (s == NULL)
        return DOTDB_ENOMEM;
    for (size_t i = 0; i < g->n; i++) {
        size_t pos = (size_t)g->groups[i].hash & (n - 1);
        while (s[pos] != 0)
            pos = (pos + 1) & (n - 1);
        s[pos] = (g->groups[i].hash & 0xffffffff00000000ull) | (uint64_t)(i + 1);
    }
    free(g->slots);
    g->slots = s;
    g->nslots = n;
    return DOTDB_OK;
}

static int add_group(agg_group *g, codec_val key, uint64_t h, size_t slot)
{
    size_t nacc = g->s->nacc;
    if (g->n == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 16;
        grp *gs = realloc(g->groups, ncap * sizeof *gs);
        if (gs == NULL)
            return DOTDB_ENOMEM;
        g->groups = gs;
        if (nacc > 0) {
            acc_state *st = realloc(g->st, ncap * nacc * sizeof *st);
            if (st == NULL)
                return DOTDB_ENOMEM;
            g->st = st;
        }
        g->cap = ncap;
    }
    codec_val copy;
    if (agg_enc_copy(&g->keys, key, &copy) != DOTDB_OK)
        return DOTDB_ENOMEM;
    if (nacc > 0) { /* {"_id": ...} alone has no state array: g->st stays NULL */
        memset(&g->st[g->n * nacc], 0, nacc * sizeof *g->st);
        for (size_t j = 0; j < nacc; j++)
            if (g->s->acc[j].kind == ACC_PUSH || g->s->acc[j].kind == ACC_ADDTOSET)
                dbuf_init(&g->st[g->n * nacc + j].u.list.bytes);
    }
    g->groups[g->n] = (grp){copy, h};
    g->slots[slot] = (h & 0xffffffff00000000ull) | (uint64_t)(g->n + 1);
    g->n++;
    if (g->n * 2 > g->nslots)
        return grow_slots(g);
    return DOTDB_OK;
}

/* The index of key's group, created when new. */
static int find_group(agg_group *g, codec_val key, size_t *gi)
{
    uint64_t h;
    if (value_hash(g, key, &h) != DOTDB_OK)
        return DOTDB_ENOMEM;
    uint64_t tag = h & 0xffffffff00000000ull;
    size_t mask = g->nslots - 1, pos = (size_t)h & mask;
    for (;;) {
        uint64_t s = g->slots[pos];
        if (s == 0)
            break;
        if ((s & 0xffffffff00000000ull) == tag) {
            size_t i = (size_t)(uint32_t)s - 1;
            if (g->groups[i].hash == h && codec_equal(g->groups[i].key, key)) {
                *gi = i;
                return DOTDB_OK;
            }
        }
        pos = (pos + 1) & mask;
    }
    *gi = g->n;
    return add_group(g, key, h, pos);
}

/* ---- accumulators ---------------------------------------------------------------- */

static void neumaier_add(acc_sum *s, double x)
{
    double t = s->d + x;
    if (fabs(s->d) >= fabs(x))
        s->comp += (s->d - t) + x;
    else
        s->comp += (x - t) + s->d;
    s->d = t;
}

static void sum_add(acc_sum *s, codec_val v)
{
    int64_t i;
    double d;
    if (codec_as_int64(v, &i)) {
        s->i += i;
    } else if (v.p[0] == CODEC_DOUBLE) {
        codec_as_double(v, &d);
        s->has_double = 1;
        neumaier_add(s, d);
    } else {
        return;
    }
    s->n++;
}

/* The total as a double: the int part rounded, plus what the rounding
 * lost, plus the compensated double part. */
static double sum_total(const acc_sum *s)
{
    double hi = (double)s->i; /* |i| < 2^126: the conversion back cannot overflow */
    acc_sum t = {.d = hi};
    neumaier_add(&t, (double)(s->i - (agg_int128)hi));
    neumaier_add(&t, s->d);
    neumaier_add(&t, s->comp);
    return t.d + t.comp;
}

/* Append v to a list: 0, or DOTDB_ENOMEM. */
static int list_push(agg_group *g, acc_list *l, codec_val v)
{
    size_t before = l->bytes.cap;
    if (dbuf_append(&l->bytes, v.p, v.len) != 0)
        return DOTDB_ENOMEM;
    g->held += l->bytes.cap - before;
    l->n++;
    return DOTDB_OK;
}

static int set_grow(aset *s)
{
    size_t ncap = s->cap ? s->cap * 2 : 64;
    set_entry *e = calloc(ncap, sizeof *e);
    if (e == NULL)
        return DOTDB_ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->e[i].hash == 0)
            continue;
        size_t pos = (size_t)s->e[i].hash & (ncap - 1);
        while (e[pos].hash != 0)
            pos = (pos + 1) & (ncap - 1);
        e[pos] = s->e[i];
    }
    free(s->e);
    s->e = e;
    s->cap = ncap;
    return DOTDB_OK;
}

/* $addToSet: append v to group gi's list unless it is there already. */
static int set_add(agg_group *g, aset *s, acc_list *l, size_t gi, codec_val v)
{
    uint64_t h;
    if (value_hash(g, v, &h) != DOTDB_OK)
        return DOTDB_ENOMEM;
    h ^= ((uint64_t)gi + 1) * 0x9e3779b97f4a7c15ull; /* one table for all the groups */
    h ^= h >> 29;
    h = h ? h : 1;
    if ((s->n + 1) * 2 > s->cap && set_grow(s) != DOTDB_OK)
        return DOTDB_ENOMEM;
    size_t mask = s->cap - 1, pos = (size_t)h & mask;
    while (s->e[pos].hash != 0) {
        set_entry *e = &s->e[pos];
        if (e->hash == h && e->group == gi) {
            const uint8_t *p = l->bytes.data + e->off;
            if (codec_equal((codec_val){p, codec_val_len(p)}, v))
                return DOTDB_OK;
        }
        pos = (pos + 1) & mask;
    }
    if (l->bytes.len > UINT32_MAX)
        return DOTDB_ETOOBIG;
    s->e[pos] = (set_entry){h, (uint32_t)gi, (uint32_t)l->bytes.len};
    s->n++;
    return list_push(g, l, v);
}

static int acc_update(agg_group *g, size_t gi, size_t j, codec_val v)
{
    const acc_def *d = &g->s->acc[j];
    acc_state *st = &g->st[gi * g->s->nacc + j];
    switch (d->kind) {
    case ACC_SUM:
    case ACC_AVG:
        if (v.p != NULL)
            sum_add(&st->u.sum, v);
        return DOTDB_OK;
    case ACC_MIN:
    case ACC_MAX:
        if (agg_nullish(v))
            return DOTDB_OK;
        if (st->u.val.len != 0) {
            int c = agg_cmp(v, hval_view(&st->u.val));
            if (d->kind == ACC_MIN ? c >= 0 : c <= 0)
                return DOTDB_OK;
        }
        return hval_set(g, &st->u.val, v);
    case ACC_FIRST:
        if (st->u.val.len != 0)
            return DOTDB_OK;
        return hval_set(g, &st->u.val, v.p ? v : agg_null());
    case ACC_LAST:
        return hval_set(g, &st->u.val, v.p ? v : agg_null());
    case ACC_PUSH:
        return v.p ? list_push(g, &st->u.list, v) : DOTDB_OK;
    default: /* ACC_ADDTOSET */
        return v.p ? set_add(g, &g->sets[j], &st->u.list, gi, v) : DOTDB_OK;
    }
}

int agg_group_add(agg_group *g, codec_val doc, char *err, size_t errlen)
{
    agg_arena_reset(&g->scratch);
    agg_ectx c = {.arena = &g->scratch, .root = doc, .err = err, .errlen = errlen};
    codec_val key;
    size_t gi;
    int rc = agg_expr_eval(g->s->id, &c, &key);
    if (rc != DOTDB_OK)
        return rc;
    if (key.p == NULL)
        key = agg_null();
    if ((rc = find_group(g, key, &gi)) != DOTDB_OK)
        return agg_err(rc, err, errlen, "out of memory");
    for (size_t j = 0; j < g->s->nacc; j++) {
        codec_val v;
        if ((rc = agg_expr_eval(g->s->acc[j].expr, &c, &v)) != DOTDB_OK)
            return rc;
        if ((rc = acc_update(g, gi, j, v)) != DOTDB_OK)
            return rc == DOTDB_ENOMEM ? agg_err(rc, err, errlen, "out of memory")
                                      : over_budget(g, err, errlen);
    }
    if (mem_used(g) > g->budget)
        return over_budget(g, err, errlen);
    return DOTDB_OK;
}

/* ---- results ---------------------------------------------------------------------- */

static int list_result(agg_arena *a, const acc_list *l, codec_val *out)
{
    codec_val *el = agg_arena_alloc(a, (l->n ? l->n : 1) * sizeof *el);
    if (el == NULL)
        return DOTDB_ENOMEM;
    size_t off = 0;
    for (uint32_t i = 0; i < l->n; i++) {
        const uint8_t *p = l->bytes.data + off;
        el[i] = (codec_val){p, codec_val_len(p)};
        off += el[i].len;
    }
    return agg_enc_array(a, el, l->n, out);
}

static int acc_result(const acc_def *d, const acc_state *st, agg_arena *a, codec_val *out,
                      char *err, size_t errlen)
{
    const acc_sum *s = &st->u.sum;
    int rc;
    switch (d->kind) {
    case ACC_SUM:
        if (!s->has_double && s->i >= INT64_MIN && s->i <= INT64_MAX)
            return agg_enc_int(a, (int64_t)s->i, out);
        rc = agg_enc_double(a, sum_total(s), out);
        break;
    case ACC_AVG:
        if (s->n == 0) {
            *out = agg_null();
            return DOTDB_OK;
        }
        rc = agg_enc_double(a, sum_total(s) / (double)s->n, out);
        break;
    case ACC_MIN:
    case ACC_MAX:
    case ACC_FIRST:
    case ACC_LAST:
        *out = st->u.val.len ? hval_view(&st->u.val) : agg_null();
        return DOTDB_OK;
    default:
        rc = list_result(a, &st->u.list, out);
        break;
    }
    if (rc == DOTDB_EINVAL)
        return agg_err(rc, err, errlen, "field '%s': the result is not a finite number", d->name);
    if (rc == DOTDB_ETOOBIG)
        return agg_err(rc, err, errlen, "field '%s': the array is larger than 4 GiB", d->name);
    return rc == DOTDB_OK ? rc : agg_err(rc, err, errlen, "out of memory");
}

int agg_group_result(agg_group *g, size_t i, agg_arena *a, codec_val *out, char *err,
                     size_t errlen)
{
    size_t nacc = g->s->nacc;
    agg_kv *m = agg_arena_alloc(a, (nacc + 1) * sizeof *m);
    if (m == NULL)
        return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    m[0] = (agg_kv){"_id", 3, g->groups[i].key};
    for (size_t j = 0; j < nacc; j++) {
        const acc_def *d = &g->s->acc[j];
        m[j + 1].key = d->name;
        m[j + 1].klen = d->nlen;
        int rc = acc_result(d, &g->st[i * nacc + j], a, &m[j + 1].v, err, errlen);
        if (rc != DOTDB_OK)
            return rc;
    }
    int rc = agg_enc_object(a, m, nacc + 1, out);
    if (rc == DOTDB_ENOMEM)
        return agg_err(rc, err, errlen, "out of memory");
    if (rc != DOTDB_OK)
        return agg_err(rc, err, errlen, "a group's document is larger than 4 GiB");
    return DOTDB_OK;
}
