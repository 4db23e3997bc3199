/*
 * agg.c - MongoDB aggregation pipelines (agg.h): compiling the stages and
 * running them, push-based, over DDB1 documents.
 *
 * Execution.  agg_push() hands a document to the first stage, which hands
 * its output (zero, one or several documents) to the next one by a direct
 * call, and so on: a document goes through the streaming stages depth
 * first and is finished with before the next one arrives.  So a stage may
 * build its output in its own arena and reset that arena for its next
 * document: every stage downstream is done with the previous one.  The
 * documents that come out of the last stage are appended to the caller's
 * buffer.
 *
 * Blocking stages ($group, $sort, $count, $sortByCount) keep what they
 * need and hand their output downstream in agg_finish(), in pipeline
 * order (a blocking stage further down receives everything the earlier
 * one emits before it is flushed in turn).
 *
 * Stability.  Each document travels with a flag saying whether its bytes
 * stay valid until agg_finish() returns: true for the caller's documents
 * (agg.h promises it), for parts of them ($replaceRoot on a sub-object)
 * and for documents $sort holds.  $sort keeps pointers to stable
 * documents and copies the others.
 *
 * $limit returns AGG_STOP once it has passed its last document; streaming
 * stages pass that up, so agg_push() tells the caller to stop scanning,
 * and a flushing stage stops emitting.  A $sort followed by $limit (with
 * or without a $skip between) keeps only the documents that can still be
 * in the result (a heap of skip + limit), so "top 10" needs no memory for
 * the rest.
 *
 * Messages.  Compile errors name the stage by its index in the pipeline
 * and its name ("pipeline[1] $group: unknown accumulator '$median' (field
 * 'm')"); run-time errors name the stage ("$project: $divide: cannot
 * divide by zero", "$group: the groups need more than 104857600 bytes
 * (aggregation memory budget)").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg_internal.h"

enum stage_kind {
    ST_MATCH,
    ST_PROJECT,   /* inclusions and computed fields (agg_shape) */
    ST_EXCLUDE,   /* exclusion $project and $unset (qproj) */
    ST_ADDFIELDS, /* $addFields, $set */
    ST_GROUP,     /* $group, and the first half of $sortByCount */
    ST_SORT,      /* $sort, and the second half of $sortByCount */
    ST_LIMIT,
    ST_SKIP,
    ST_UNWIND,
    ST_COUNT,
    ST_REPLACEROOT, /* $replaceRoot, $replaceWith */
};

typedef struct stage {
    int kind;
    const char *name; /* as the user wrote it: "$set", "$sortByCount" */
    size_t index;     /* in the user's pipeline */
    qfilter *filter;  /* ST_MATCH */
    qproj *proj;      /* ST_EXCLUDE */
    agg_shape *shape; /* ST_PROJECT, ST_ADDFIELDS */
    agg_group_spec *group;
    qsort_spec *sort;
    size_t sort_keep; /* ST_SORT: keep only this many (0: all) */
    int64_t n;        /* ST_LIMIT, ST_SKIP */
    agg_path path;    /* ST_UNWIND */
    agg_path index_path;
    int has_index, preserve;
    char *field; /* ST_COUNT */
    size_t field_len;
    agg_expr *expr; /* ST_REPLACEROOT */
} stage;

struct agg_pipeline {
    stage *st;
    size_t n;
};

/* ---- compiling ---------------------------------------------------------------- */

static void stage_fini(stage *s)
{
    qfilter_free(s->filter);
    qproj_free(s->proj);
    agg_shape_free(s->shape);
    agg_group_spec_free(s->group);
    qsort_free(s->sort);
    agg_path_fini(&s->path);
    agg_path_fini(&s->index_path);
    free(s->field);
    agg_expr_free(s->expr);
}

void agg_free(agg_pipeline *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        stage_fini(&p->st[i]);
    free(p->st);
    free(p);
}

const qfilter *agg_leading_match(const agg_pipeline *p)
{
    return p->n > 0 && p->st[0].kind == ST_MATCH ? p->st[0].filter : NULL;
}

/* The compile functions fill the stage and write a message without the
 * stage prefix (the caller adds it). */
typedef int (*stage_compile_fn)(stage *s, codec_val arg, char *err, size_t errlen);

static int need_object(codec_val arg, char *err, size_t errlen)
{
    if (codec_type(arg) != DOTDB_T_OBJECT)
        return agg_err(DOTDB_EINVAL, err, errlen, "the argument must be an object, not %s",
                       agg_type_name(arg));
    return DOTDB_OK;
}

static int c_match(stage *s, codec_val arg, char *err, size_t errlen)
{
    int rc = need_object(arg, err, errlen);
    s->kind = ST_MATCH;
    return rc ? rc : qfilter_compile(arg, &s->filter, err, errlen);
}

static int c_project(stage *s, codec_val arg, char *err, size_t errlen)
{
    int rc = need_object(arg, err, errlen);
    if (rc != DOTDB_OK)
        return rc;
    if (codec_count(arg) == 0)
        return agg_err(DOTDB_EINVAL, err, errlen, "the specification must have at least one field");
    dbuf flat;
    dbuf_init(&flat);
    rc = agg_shape_exclusion_spec(arg, &flat, err, errlen);
    if (rc == 1) {
        s->kind = ST_EXCLUDE;
        rc = qproj_compile((codec_val){flat.data, flat.len}, &s->proj, err, errlen);
    } else if (rc == 0) {
        s->kind = ST_PROJECT;
        rc = agg_shape_compile(arg, AGG_SHAPE_PROJECT, &s->shape, err, errlen);
    }
    dbuf_free(&flat);
    return rc;
}

static int c_addfields(stage *s, codec_val arg, char *err, size_t errlen)
{
    int rc = need_object(arg, err, errlen);
    if (rc != DOTDB_OK)
        return rc;
    if (codec_count(arg) == 0)
        return agg_err(DOTDB_EINVAL, err, errlen, "the specification must have at least one field");
    s->kind = ST_ADDFIELDS;
    return agg_shape_compile(arg, AGG_SHAPE_ADDFIELDS, &s->shape, err, errlen);
}

static int c_unset(stage *s, codec_val arg, char *err, size_t errlen)
{
    int is_list = codec_type(arg) == DOTDB_T_ARRAY;
    size_t n = is_list ? codec_count(arg) : 1;
    if (!is_list && codec_type(arg) != DOTDB_T_STRING)
        return agg_err(DOTDB_EINVAL, err, errlen,
                       "the argument must be a field path or an array of them, not %s",
                       agg_type_name(arg));
    if (n == 0)
        return agg_err(DOTDB_EINVAL, err, errlen, "the array of fields must not be empty");
    agg_arena a;
    agg_arena_init(&a);
    agg_kv *m = agg_arena_alloc(&a, n * sizeof *m);
    codec_val zero, spec;
    int rc = DOTDB_OK;
    if (m == NULL || agg_enc_int(&a, 0, &zero) != DOTDB_OK) {
        rc = agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        codec_val v = arg;
        const char *k;
        size_t kl;
        if (is_list)
            codec_arr_at(arg, i, &v);
        if (!codec_as_string(v, &k, &kl)) {
            rc = agg_err(DOTDB_EINVAL, err, errlen, "field %zu is %s, not a string", i,
                         agg_type_name(v));
            goto out;
        }
        agg_path check;
        if ((rc = agg_path_init(&check, k, kl, "field", err, errlen)) != DOTDB_OK)
            goto out;
        agg_path_fini(&check);
        m[i] = (agg_kv){k, kl, zero};
    }
    rc = agg_enc_object(&a, m, n, &spec);
    if (rc == DOTDB_EINVAL)
        rc = agg_err(rc, err, errlen, "a field is named twice");
    else if (rc != DOTDB_OK)
        rc = agg_err(rc, err, errlen, "out of memory");
    else
        rc = qproj_compile(spec, &s->proj, err, errlen);
    s->kind = ST_EXCLUDE;
out:
    agg_arena_free(&a);
    return rc;
}

static int c_group(stage *s, codec_val arg, char *err, size_t errlen)
{
    s->kind = ST_GROUP;
    return agg_group_compile(arg, &s->group, err, errlen);
}

static int c_sort(stage *s, codec_val arg, char *err, size_t errlen)
{
    int rc = need_object(arg, err, errlen);
    if (rc != DOTDB_OK)
        return rc;
    if (codec_count(arg) == 0)
        return agg_err(DOTDB_EINVAL, err, errlen, "the sort specification must not be empty");
    s->kind = ST_SORT;
    return qsort_compile(arg, &s->sort, err, errlen);
}

/* A non-negative integer (an int, or a double with an integral value). */
static int get_count(codec_val v, int64_t *n)
{
    double d;
    if (codec_as_int64(v, n))
        return *n >= 0;
    if (v.p[0] == CODEC_DOUBLE && codec_as_double(v, &d) && d >= 0 && d < 9.2e18 && d == floor(d)) {
        *n = (int64_t)d;
        return 1;
    }
    return 0;
}

static int c_limit(stage *s, codec_val arg, char *err, size_t errlen)
{
    s->kind = ST_LIMIT;
    if (!get_count(arg, &s->n) || s->n == 0)
        return agg_err(DOTDB_EINVAL, err, errlen, "the limit must be a positive integer");
    return DOTDB_OK;
}

static int c_skip(stage *s, codec_val arg, char *err, size_t errlen)
{
    s->kind = ST_SKIP;
    if (!get_count(arg, &s->n))
        return agg_err(DOTDB_EINVAL, err, errlen, "the number to skip must be an integer >= 0");
    return DOTDB_OK;
}

/* A "$a.b" path operand. */
static int field_path_arg(codec_val v, const char *what, agg_path *p, char *err, size_t errlen)
{
    const char *s;
    size_t len;
    if (!codec_as_string(v, &s, &len) || len < 2 || s[0] != '$' || s[1] == '$')
        return agg_err(DOTDB_EINVAL, err, errlen, "%s must be a field path such as \"$a.b\"",
                       what);
    return agg_path_init(p, s + 1, len - 1, what, err, errlen);
}

static int c_unwind(stage *s, codec_val arg, char *err, size_t errlen)
{
    s->kind = ST_UNWIND;
    if (codec_type(arg) != DOTDB_T_OBJECT)
        return field_path_arg(arg, "the path", &s->path, err, errlen);
    codec_val path = AGG_MISSING;
    for (size_t i = 0; i < codec_count(arg); i++) {
        const char *k, *name;
        size_t kl, nlen;
        codec_val v;
        codec_obj_at(arg, i, &k, &kl, &v);
        int rc;
        if (kl == 4 && memcmp(k, "path", 4) == 0) {
            path = v;
        } else if (kl == 26 && memcmp(k, "preserveNullAndEmptyArrays", 26) == 0) {
            if (codec_type(v) != DOTDB_T_BOOL)
                return agg_err(DOTDB_EINVAL, err, errlen,
                               "preserveNullAndEmptyArrays must be true or false");
            s->preserve = v.p[0] == CODEC_TRUE;
        } else if (kl == 17 && memcmp(k, "includeArrayIndex", 17) == 0) {
            if (!codec_as_string(v, &name, &nlen) || nlen == 0 || name[0] == '$')
                return agg_err(DOTDB_EINVAL, err, errlen,
                               "includeArrayIndex must be a field name not starting with '$'");
            if ((rc = agg_path_init(&s->index_path, name, nlen, "includeArrayIndex", err,
                                    errlen)) != DOTDB_OK)
                return rc;
            s->has_index = 1;
        } else {
            return agg_err(DOTDB_EINVAL, err, errlen, "unknown option '%.*s'", (int)kl, k);
        }
    }
    if (path.p == NULL)
        return agg_err(DOTDB_EINVAL, err, errlen, "the 'path' option is required");
    return field_path_arg(path, "the path", &s->path, err, errlen);
}

static int c_count(stage *s, codec_val arg, char *err, size_t errlen)
{
    const char *k;
    size_t kl;
    s->kind = ST_COUNT;
    /* MongoDB's four rules, each with its own message */
    if (!codec_as_string(arg, &k, &kl))
        return agg_err(DOTDB_EINVAL, err, errlen,
                       "the argument must be a string (the name of the count field), not %s",
                       agg_type_name(arg));
    if (kl == 0)
        return agg_err(DOTDB_EINVAL, err, errlen, "the count field must be a non-empty string");
    if (k[0] == '$')
        return agg_err(DOTDB_EINVAL, err, errlen, "the count field cannot start with '$'");
    if (memchr(k, '.', kl) != NULL)
        return agg_err(DOTDB_EINVAL, err, errlen, "the count field cannot contain '.'");
    if (memchr(k, '\0', kl) != NULL)
        return agg_err(DOTDB_EINVAL, err, errlen, "the count field cannot contain a null byte");
    if ((s->field = malloc(kl + 1)) == NULL)
        return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    memcpy(s->field, k, kl);
    s->field[kl] = '\0';
    s->field_len = kl;
    return DOTDB_OK;
}

static int c_replace_with(stage *s, codec_val arg, char *err, size_t errlen)
{
    s->kind = ST_REPLACEROOT;
    return agg_expr_compile(arg, &s->expr, err, errlen);
}

static int c_replace_root(stage *s, codec_val arg, char *err, size_t errlen)
{
    codec_val root;
    s->kind = ST_REPLACEROOT;
    if (codec_type(arg) != DOTDB_T_OBJECT || codec_count(arg) != 1 ||
        !codec_obj_get(arg, "newRoot", 7, &root))
        return agg_err(DOTDB_EINVAL, err, errlen,
                       "the argument must be {\"newRoot\": <expression>}");
    return agg_expr_compile(root, &s->expr, err, errlen);
}

/* $sortByCount: expr is {$group: {_id: expr, count: {$sum: 1}}} followed
 * by {$sort: {count: -1}}; s and s[1] are the two stages. */
static int c_sort_by_count(stage *s, codec_val arg, char *err, size_t errlen)
{
    const char *k;
    size_t kl;
    codec_val mv;
    /* As MongoDB: a constant would put every document in one group, which
     * is never what was meant, so only a "$path" or an {$op: ...} is taken. */
    int t = codec_type(arg);
    if (t == DOTDB_T_OBJECT &&
        !(codec_count(arg) == 1 && codec_obj_at(arg, 0, &k, &kl, &mv) && kl > 0 && k[0] == '$'))
        return agg_err(DOTDB_EINVAL, err, errlen,
                       "the argument must be a field path or an operator expression, not an "
                       "object literal");
    if (t != DOTDB_T_OBJECT && !(codec_as_string(arg, &k, &kl) && kl > 0 && k[0] == '$'))
        return agg_err(DOTDB_EINVAL, err, errlen,
                       "the argument must be a field path (\"$a\") or an operator expression, "
                       "not %s", t == DOTDB_T_STRING ? "a string without '$'" : agg_type_name(arg));
    static const uint8_t one[2] = {CODEC_INT8, 1};
    agg_arena a;
    agg_arena_init(&a);
    agg_kv sum = {"$sum", 4, {one, sizeof one}};
    agg_kv m[2] = {{"_id", 3, arg}, {"count", 5, {NULL, 0}}};
    codec_val spec;
    int rc = agg_enc_object(&a, &sum, 1, &m[1].v);
    if (rc == DOTDB_OK)
        rc = agg_enc_object(&a, m, 2, &spec);
    if (rc != DOTDB_OK) {
        agg_arena_free(&a);
        return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    }
    s->kind = ST_GROUP;
    rc = agg_group_compile(spec, &s->group, err, errlen);
    agg_arena_free(&a);
    if (rc != DOTDB_OK)
        return rc;
    dbuf b;
    dbuf_init(&b);
    s[1].kind = ST_SORT;
    rc = codec_value_from_json("{\"count\":-1}", 12, NULL, &b, err, errlen);
    if (rc == DOTDB_OK)
        rc = qsort_compile((codec_val){b.data, b.len}, &s[1].sort, err, errlen);
    dbuf_free(&b);
    return rc;
}

static const struct {
    const char *name;
    stage_compile_fn fn;
    int nstages; /* stages it compiles into */
} k_stages[] = {
    {"$match", c_match, 1},         {"$project", c_project, 1},
    {"$addFields", c_addfields, 1}, {"$set", c_addfields, 1},
    {"$unset", c_unset, 1},         {"$group", c_group, 1},
    {"$sort", c_sort, 1},           {"$limit", c_limit, 1},
    {"$skip", c_skip, 1},           {"$unwind", c_unwind, 1},
    {"$count", c_count, 1},         {"$sortByCount", c_sort_by_count, 2},
    {"$replaceRoot", c_replace_root, 1}, {"$replaceWith", c_replace_with, 1},
};

/* $sort then $limit (or $skip then $limit): how many documents the sort
 * must keep. */
static void plan_top_k(agg_pipeline *p)
{
    for (size_t i = 0; i + 1 < p->n; i++) {
        stage *s = &p->st[i];
        if (s->kind != ST_SORT)
            continue;
        if (p->st[i + 1].kind == ST_LIMIT) {
            s->sort_keep = (size_t)p->st[i + 1].n;
        } else if (p->st[i + 1].kind == ST_SKIP && i + 2 < p->n &&
                   p->st[i + 2].kind == ST_LIMIT &&
                   p->st[i + 1].n <= INT64_MAX - p->st[i + 2].n) {
            s->sort_keep = (size_t)(p->st[i + 1].n + p->st[i + 2].n);
        }
    }
}

int agg_compile(codec_val pipeline, agg_pipeline **out, char *err, size_t errlen)
{
    *out = NULL;
    if (codec_type(pipeline) != DOTDB_T_ARRAY)
        return agg_err(DOTDB_EINVAL, err, errlen, "the pipeline must be an array of stages, not %s",
                       agg_type_name(pipeline));
    size_t n = codec_count(pipeline);
    agg_pipeline *p = calloc(1, sizeof *p);
    if (p == NULL || (n > 0 && (p->st = calloc(2 * n, sizeof *p->st)) == NULL)) {
        free(p);
        return agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    }
    int rc = DOTDB_OK;
    for (size_t i = 0; i < n && rc == DOTDB_OK; i++) {
        codec_val sv, arg;
        const char *k;
        size_t kl;
        codec_arr_at(pipeline, i, &sv);
        if (codec_type(sv) != DOTDB_T_OBJECT || codec_count(sv) != 1) {
            rc = agg_err(DOTDB_EINVAL, err, errlen,
                         "pipeline[%zu]: a stage must be an object with exactly one field, such "
                         "as {\"$match\": {...}}", i);
            break;
        }
        codec_obj_at(sv, 0, &k, &kl, &arg);
        size_t which = sizeof k_stages / sizeof k_stages[0];
        for (size_t j = 0; j < sizeof k_stages / sizeof k_stages[0]; j++)
            if (strlen(k_stages[j].name) == kl && memcmp(k_stages[j].name, k, kl) == 0)
                which = j;
        if (which == sizeof k_stages / sizeof k_stages[0]) {
            rc = agg_err(DOTDB_EINVAL, err, errlen, "pipeline[%zu]: unknown stage '%.*s'", i,
                         (int)kl, k);
            break;
        }
        stage *s = &p->st[p->n];
        for (int j = 0; j < k_stages[which].nstages; j++) {
            s[j].name = k_stages[which].name;
            s[j].index = i;
        }
        p->n += (size_t)k_stages[which].nstages; /* counted first: agg_free cleans up */
        char msg[400] = "";
        rc = k_stages[which].fn(s, arg, msg, sizeof msg);
        if (rc != DOTDB_OK)
            agg_err(rc, err, errlen, "pipeline[%zu] %s: %s", i, s->name,
                    msg[0] ? msg : dotdb_strerror(rc));
    }
    if (rc != DOTDB_OK) {
        agg_free(p);
        return rc;
    }
    plan_top_k(p);
    *out = p;
    return DOTDB_OK;
}

/* ---- running -------------------------------------------------------------------- */

typedef struct sort_item {
    codec_val doc;
    uint64_t seq;   /* arrival order: ties keep it (a stable sort) */
    uint8_t *owned; /* malloc'd copy (top-k mode), or NULL */
} sort_item;

typedef struct stage_run {
    agg_arena arena; /* output of this stage, reset per input document */
    dbuf buf;        /* ST_EXCLUDE output */
    int64_t seen;    /* $limit, $skip, $count */
    agg_group *group;
    sort_item *items; /* ST_SORT; a max-heap in top-k mode */
    size_t nitems, cap;
    agg_arena held;     /* ST_SORT copies (all-documents mode) */
    size_t owned_bytes; /* ST_SORT copies (top-k mode) */
} stage_run;

struct agg_run {
    const agg_pipeline *p;
    size_t first; /* 1 when the caller applies the leading $match */
    size_t budget;
    dbuf *out;
    stage_run *rs;
    int stopped;
    int failed; /* the first error: later calls repeat it */
    int finished;
};

int agg_begin(const agg_pipeline *p, int skip_leading_match, size_t memory_bytes, dbuf *out,
              agg_run **r)
{
    *r = NULL;
    agg_run *run = calloc(1, sizeof *run);
    if (run == NULL || (p->n > 0 && (run->rs = calloc(p->n, sizeof *run->rs)) == NULL)) {
        free(run);
        return DOTDB_ENOMEM;
    }
    run->p = p;
    run->first = skip_leading_match && agg_leading_match(p) != NULL ? 1 : 0;
    run->budget = memory_bytes ? memory_bytes : AGG_DEFAULT_MEMORY_BYTES;
    run->out = out;
    for (size_t i = 0; i < p->n; i++) {
        agg_arena_init(&run->rs[i].arena);
        agg_arena_init(&run->rs[i].held);
        dbuf_init(&run->rs[i].buf);
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->st[i].kind == ST_GROUP &&
            agg_group_new(p->st[i].group, run->budget, p->st[i].name, &run->rs[i].group) != 0) {
            agg_run_free(run);
            return DOTDB_ENOMEM;
        }
    }
    *r = run;
    return DOTDB_OK;
}

void agg_run_free(agg_run *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->p->n && r->rs != NULL; i++) {
        stage_run *s = &r->rs[i];
        agg_arena_free(&s->arena);
        agg_arena_free(&s->held);
        dbuf_free(&s->buf);
        agg_group_free(s->group);
        for (size_t k = 0; k < s->nitems; k++)
            free(s->items[k].owned);
        free(s->items);
    }
    free(r->rs);
    free(r);
}

/* Prefix the message already in err with the stage's name. */
static int stage_err(const stage *s, int rc, char *err, size_t errlen)
{
    if (err == NULL || errlen == 0)
        return rc;
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", err[0] ? err : dotdb_strerror(rc));
    snprintf(err, errlen, "%s: %s", s->name, tmp);
    return rc;
}

static int run_stage(agg_run *r, size_t i, codec_val doc, int stable, char *err, size_t errlen);

static int run_unwind(agg_run *r, size_t i, codec_val doc, int stable, char *err, size_t errlen)
{
    const stage *s = &r->p->st[i];
    stage_run *rs = &r->rs[i];
    codec_val v = agg_path_get_plain(doc, &s->path);
    int t = v.p == NULL ? DOTDB_T_MISSING : codec_type(v);
    size_t n = t == DOTDB_T_ARRAY ? codec_count(v) : 0;
    int rc;
    if (n > 0) {
        for (size_t k = 0; k < n; k++) {
            codec_val el, out, idx;
            agg_arena_reset(&rs->arena);
            codec_arr_at(v, k, &el);
            rc = agg_set_path(&rs->arena, doc, s->path.parts, s->path.n, el, &out);
            if (rc == DOTDB_OK && s->has_index &&
                (rc = agg_enc_int(&rs->arena, (int64_t)k, &idx)) == DOTDB_OK)
                rc = agg_set_path(&rs->arena, out, s->index_path.parts, s->index_path.n, idx,
                                  &out);
            if (rc != DOTDB_OK)
                return agg_err(rc, err, errlen, "%s: %s", s->name,
                               rc == DOTDB_ENOMEM ? "out of memory" : "document too large");
            if ((rc = run_stage(r, i + 1, out, 0, err, errlen)) != 0)
                return rc;
        }
        return 0;
    }
    int empty = t == DOTDB_T_ARRAY || t == DOTDB_T_MISSING || t == DOTDB_T_NULL;
    if (empty && !s->preserve)
        return 0;
    /* one document: a scalar is a one-element array; a preserved empty
     * array is removed, a preserved null or missing stays as it is */
    agg_arena_reset(&rs->arena);
    codec_val out = doc;
    rc = DOTDB_OK;
    if (t == DOTDB_T_ARRAY)
        rc = agg_set_path(&rs->arena, doc, s->path.parts, s->path.n, AGG_MISSING, &out);
    if (rc == DOTDB_OK && s->has_index)
        rc = agg_set_path(&rs->arena, out, s->index_path.parts, s->index_path.n, agg_null(), &out);
    if (rc != DOTDB_OK)
        return agg_err(rc, err, errlen, "%s: %s", s->name,
                       rc == DOTDB_ENOMEM ? "out of memory" : "document too large");
    return run_stage(r, i + 1, out, out.p == doc.p && stable, err, errlen);
}

static int sort_item_cmp(const qsort_spec *spec, const sort_item *a, const sort_item *b)
{
    int c = qsort_cmp(spec, a->doc, b->doc);
    if (c != 0)
        return c;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

static int sort_qsort_cmp(const void *a, const void *b, void *spec)
{
    return sort_item_cmp(spec, a, b);
}

static void heap_sift_down(const qsort_spec *spec, sort_item *h, size_t n, size_t k)
{
    for (;;) {
        size_t l = 2 * k + 1, big = k;
        if (l < n && sort_item_cmp(spec, &h[l], &h[big]) > 0)
            big = l;
        if (l + 1 < n && sort_item_cmp(spec, &h[l + 1], &h[big]) > 0)
            big = l + 1;
        if (big == k)
            return;
        sort_item t = h[k];
        h[k] = h[big];
        h[big] = t;
        k = big;
    }
}

static void heap_sift_up(const qsort_spec *spec, sort_item *h, size_t k)
{
    while (k > 0) {
        size_t parent = (k - 1) / 2;
        if (sort_item_cmp(spec, &h[k], &h[parent]) <= 0)
            return;
        sort_item t = h[k];
        h[k] = h[parent];
        h[parent] = t;
        k = parent;
    }
}

/* What the sort holds (its index, and the copies it made) against the
 * budget: 0, or DOTDB_ETOOBIG with the message. */
static int sort_check_budget(const agg_run *r, const stage *s, const stage_run *rs, char *err,
                             size_t errlen)
{
    if (rs->cap * sizeof(sort_item) + rs->held.block_bytes + rs->owned_bytes <= r->budget)
        return 0;
    return agg_err(DOTDB_ETOOBIG, err, errlen,
                   "%s: the documents need more than %zu bytes (aggregation memory budget)",
                   s->name, r->budget);
}

static int run_sort(agg_run *r, size_t i, codec_val doc, int stable, char *err, size_t errlen)
{
    const stage *s = &r->p->st[i];
    stage_run *rs = &r->rs[i];
    sort_item it = {doc, (uint64_t)rs->seen++, NULL};
    size_t keep = s->sort_keep;

    if (keep > 0 && rs->nitems == keep) { /* full heap: replace the worst, if worse */
        if (sort_item_cmp(s->sort, &it, &rs->items[0]) >= 0)
            return 0;
    }
    if (!stable) {
        if (keep > 0) {
            if ((it.owned = malloc(doc.len)) == NULL)
                return agg_err(DOTDB_ENOMEM, err, errlen, "%s: out of memory", s->name);
            memcpy(it.owned, doc.p, doc.len);
            it.doc.p = it.owned;
            rs->owned_bytes += doc.len;
        } else if (agg_enc_copy(&rs->held, doc, &it.doc) != DOTDB_OK) {
            return agg_err(DOTDB_ENOMEM, err, errlen, "%s: out of memory", s->name);
        }
    }
    if (keep > 0 && rs->nitems == keep) {
        if (rs->items[0].owned != NULL) {
            rs->owned_bytes -= rs->items[0].doc.len;
            free(rs->items[0].owned);
        }
        rs->items[0] = it;
        heap_sift_down(s->sort, rs->items, rs->nitems, 0);
        /* the new copy may be larger than the one it replaced */
        return sort_check_budget(r, s, rs, err, errlen);
    }
    if (rs->nitems == rs->cap) {
        size_t ncap = rs->cap ? rs->cap * 2 : 64;
        if (keep > 0 && ncap > keep)
            ncap = keep;
        sort_item *items = realloc(rs->items, ncap * sizeof *items);
        if (items == NULL) {
            free(it.owned);
            return agg_err(DOTDB_ENOMEM, err, errlen, "%s: out of memory", s->name);
        }
        rs->items = items;
        rs->cap = ncap;
    }
    rs->items[rs->nitems++] = it;
    if (keep > 0)
        heap_sift_up(s->sort, rs->items, rs->nitems - 1);
    return sort_check_budget(r, s, rs, err, errlen);
}

static int run_stage(agg_run *r, size_t i, codec_val doc, int stable, char *err, size_t errlen)
{
    if (i == r->p->n)
        return dbuf_append(r->out, doc.p, doc.len) == 0
                   ? 0
                   : agg_err(DOTDB_ENOMEM, err, errlen, "out of memory");
    const stage *s = &r->p->st[i];
    stage_run *rs = &r->rs[i];
    agg_ectx c = {.arena = &rs->arena, .root = doc, .err = err, .errlen = errlen};
    codec_val out;
    int rc;
    switch (s->kind) {
    case ST_MATCH:
        if (!qfilter_match(s->filter, doc))
            return 0;
        return run_stage(r, i + 1, doc, stable, err, errlen);
    case ST_LIMIT:
        if (rs->seen >= s->n)
            return AGG_STOP;
        rs->seen++;
        rc = run_stage(r, i + 1, doc, stable, err, errlen);
        return rc == 0 && rs->seen >= s->n ? AGG_STOP : rc;
    case ST_SKIP:
        if (rs->seen < s->n) {
            rs->seen++;
            return 0;
        }
        return run_stage(r, i + 1, doc, stable, err, errlen);
    case ST_PROJECT:
    case ST_ADDFIELDS:
        agg_arena_reset(&rs->arena);
        if ((rc = agg_shape_apply(s->shape, &c, &out)) != DOTDB_OK)
            return stage_err(s, rc, err, errlen);
        return run_stage(r, i + 1, out, 0, err, errlen);
    case ST_EXCLUDE:
        rs->buf.len = 0;
        if ((rc = qproj_apply(s->proj, doc, &rs->buf)) != DOTDB_OK)
            return agg_err(rc, err, errlen, "%s: %s", s->name, dotdb_strerror(rc));
        return run_stage(r, i + 1, (codec_val){rs->buf.data, rs->buf.len}, 0, err, errlen);
    case ST_REPLACEROOT:
        agg_arena_reset(&rs->arena);
        if ((rc = agg_expr_eval(s->expr, &c, &out)) != DOTDB_OK)
            return stage_err(s, rc, err, errlen);
        if (out.p == NULL || codec_type(out) != DOTDB_T_OBJECT)
            return agg_err(DOTDB_EINVAL, err, errlen,
                           "%s: the new root must evaluate to an object, not %s", s->name,
                           agg_type_name(out));
        return run_stage(r, i + 1, out,
                         stable && out.p >= doc.p && out.p < doc.p + doc.len, err, errlen);
    case ST_UNWIND:
        return run_unwind(r, i, doc, stable, err, errlen);
    case ST_GROUP:
        if ((rc = agg_group_add(rs->group, doc, err, errlen)) != DOTDB_OK)
            return rc == DOTDB_ETOOBIG ? rc : stage_err(s, rc, err, errlen);
        return 0;
    case ST_SORT:
        return run_sort(r, i, doc, stable, err, errlen);
    case ST_COUNT:
        rs->seen++;
        return 0;
    default:
        return agg_err(DOTDB_EINVAL, err, errlen, "unknown stage kind %d", s->kind);
    }
}

int agg_push(agg_run *r, codec_val doc, char *err, size_t errlen)
{
    if (r->failed)
        return agg_err(r->failed, err, errlen, "the aggregation has already failed");
    if (r->stopped || r->finished)
        return AGG_STOP;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    int rc = run_stage(r, r->first, doc, 1, err, errlen);
    if (rc < 0)
        r->failed = rc;
    else if (rc == AGG_STOP)
        r->stopped = 1;
    return rc;
}

/* Hand a blocking stage's held output downstream. */
static int flush_stage(agg_run *r, size_t i, char *err, size_t errlen)
{
    const stage *s = &r->p->st[i];
    stage_run *rs = &r->rs[i];
    codec_val out;
    int rc = 0;
    switch (s->kind) {
    case ST_GROUP:
        for (size_t g = 0; g < agg_group_count(rs->group) && rc == 0; g++) {
            agg_arena_reset(&rs->arena);
            if ((rc = agg_group_result(rs->group, g, &rs->arena, &out, err, errlen)) != DOTDB_OK)
                return stage_err(s, rc, err, errlen);
            rc = run_stage(r, i + 1, out, 0, err, errlen);
        }
        break;
    case ST_SORT:
        if (rs->nitems > 1)
            qsort_r(rs->items, rs->nitems, sizeof *rs->items, sort_qsort_cmp, s->sort);
        for (size_t k = 0; k < rs->nitems && rc == 0; k++)
            rc = run_stage(r, i + 1, rs->items[k].doc, 1, err, errlen);
        break;
    case ST_COUNT:
        if (rs->seen > 0) {
            agg_kv m = {s->field, s->field_len, {NULL, 0}};
            agg_arena_reset(&rs->arena);
            if (agg_enc_int(&rs->arena, rs->seen, &m.v) != DOTDB_OK ||
                agg_enc_object(&rs->arena, &m, 1, &out) != DOTDB_OK)
                return agg_err(DOTDB_ENOMEM, err, errlen, "%s: out of memory", s->name);
            rc = run_stage(r, i + 1, out, 0, err, errlen);
        }
        break;
    default:
        break;
    }
    return rc < 0 ? rc : 0;
}

int agg_finish(agg_run *r, char *err, size_t errlen)
{
    if (r->failed)
        return agg_err(r->failed, err, errlen, "the aggregation has already failed");
    if (r->finished)
        return DOTDB_OK;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    r->finished = 1;
    for (size_t i = r->first; i < r->p->n; i++) {
        int rc = flush_stage(r, i, err, errlen);
        if (rc < 0) {
            r->failed = rc;
            return rc;
        }
    }
    return DOTDB_OK;
}
