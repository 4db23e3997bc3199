/*
 * find.c - cursors and counting with equality filters, evaluated in place
 * on the binary documents in shared memory (no copy, no JSON parsing per
 * document).
 *
 * Filter semantics (MongoDB's, for equality): {path: value} matches when
 * the value at the dotted path equals `value`, or when the field is an
 * array holding an element equal to it; a path part crosses arrays of
 * objects ("items.sku"); a numeric part indexes an array ("tags.0");
 * {path: null} also matches documents where the path is missing.  Several
 * members mean AND.  Operators ($gt, ...) come with the query language.
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "snap.h"

typedef struct filter {
    uint8_t *bin;   /* encoded filter object (owned) */
    size_t len;
} filter;

struct dotdb_cursor {
    dotdb *db;
    conn *c;
    int slot;
    uint64_t lsn;
    filter f;
    snap_iter it;
    uint64_t skip, limit, returned;
    int done;
};

static int parse_filter(dotdb *db, const char *json, filter *f)
{
    f->bin = NULL;
    f->len = 0;
    if (json == NULL)
        return 0;
    dbuf b;
    dbuf_init(&b);
    codec_limits lim = {.max_size = CODEC_DEFAULT_MAX_SIZE, .max_depth = CODEC_DEFAULT_MAX_DEPTH};
    char err[512] = "";
    int rc = codec_value_from_json(json, strlen(json), &lim, &b, err, sizeof err);
    if (rc != 0) {
        dbuf_free(&b);
        return cl_fail(db, rc, "filter: %s", err[0] ? err : dotdb_strerror(rc));
    }
    codec_val v = {b.data, b.len};
    if (codec_type(v) != DOTDB_T_OBJECT) {
        dbuf_free(&b);
        return cl_fail(db, DOTDB_EINVAL, "filter must be a JSON object");
    }
    for (size_t i = 0; i < codec_count(v); i++) {
        const char *k;
        size_t kl;
        codec_val m;
        codec_obj_at(v, i, &k, &kl, &m);
        if (kl == 0 || k[0] == '$') {
            cl_fail(db, DOTDB_EINVAL, "filter: operator \"%.*s\" is not supported yet "
                    "(equality filters only)", (int)kl, k);
            dbuf_free(&b); /* after the message: k points into b */
            return DOTDB_EINVAL;
        }
        if (codec_type(m) == DOTDB_T_OBJECT && codec_count(m) > 0) {
            const char *k2;
            size_t kl2;
            codec_val m2;
            codec_obj_at(m, 0, &k2, &kl2, &m2);
            if (kl2 && k2[0] == '$') {
                cl_fail(db, DOTDB_EINVAL, "filter: operator \"%.*s\" on \"%.*s\" is not "
                        "supported yet (equality filters only)", (int)kl2, k2, (int)kl, k);
                dbuf_free(&b);
                return DOTDB_EINVAL;
            }
        }
    }
    f->bin = dbuf_steal(&b, &f->len);
    return 0;
}

static int eq_or_contains(codec_val field, codec_val want)
{
    if (codec_equal(field, want))
        return 1;
    if (codec_type(field) == DOTDB_T_ARRAY && codec_type(want) != DOTDB_T_ARRAY) {
        codec_val e;
        for (size_t i = 0; codec_arr_at(field, i, &e); i++)
            if (codec_equal(e, want))
                return 1;
    }
    return 0;
}

static int is_index(const char *p, size_t n, size_t *out)
{
    if (n == 0 || n > 9)
        return 0;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (size_t)(p[i] - '0');
    }
    *out = v;
    return 1;
}

/* Does any value reached by `path` from v match?  *seen records whether
 * the path reached anything at all (for null matching missing). */
static int match_path(codec_val v, const char *path, size_t plen, codec_val want, int *seen)
{
    if (plen == 0) {
        *seen = 1;
        return eq_or_contains(v, want);
    }
    const char *dot = memchr(path, '.', plen);
    size_t n = dot ? (size_t)(dot - path) : plen;
    const char *rest = dot ? dot + 1 : path + plen;
    size_t rlen = dot ? plen - n - 1 : 0;
    codec_val sub;
    int t = codec_type(v);
    if (t == DOTDB_T_OBJECT) {
        return codec_obj_get(v, path, n, &sub) && match_path(sub, rest, rlen, want, seen);
    }
    if (t == DOTDB_T_ARRAY) {
        size_t idx;
        if (is_index(path, n, &idx) && codec_arr_at(v, idx, &sub) &&
            match_path(sub, rest, rlen, want, seen))
            return 1;
        for (size_t i = 0; codec_arr_at(v, i, &sub); i++)
            if (codec_type(sub) == DOTDB_T_OBJECT && match_path(sub, path, plen, want, seen))
                return 1;
    }
    return 0;
}

static int filter_match(const filter *f, const uint8_t *doc, size_t len)
{
    if (f->bin == NULL)
        return 1;
    codec_val fv = {f->bin, f->len}, d = {doc, len};
    for (size_t i = 0; i < codec_count(fv); i++) {
        const char *k;
        size_t kl;
        codec_val want;
        codec_obj_at(fv, i, &k, &kl, &want);
        int seen = 0;
        if (match_path(d, k, kl, want, &seen))
            continue;
        if (!seen && codec_type(want) == DOTDB_T_NULL)
            continue; /* {field: null} matches a missing field */
        return 0;
    }
    return 1;
}

static int option_u64(dotdb *db, codec_val opts, const char *name, uint64_t *out)
{
    codec_val v;
    int64_t i;
    if (!codec_obj_get(opts, name, strlen(name), &v))
        return 0;
    if (!codec_as_int64(v, &i) || i < 0)
        return cl_fail(db, DOTDB_EINVAL, "option \"%s\" must be a non-negative integer", name);
    *out = (uint64_t)i;
    return 0;
}

static int parse_options(dotdb *db, const char *json, dotdb_cursor *cur)
{
    if (json == NULL)
        return 0;
    filter o;
    dbuf b;
    dbuf_init(&b);
    codec_limits lim = {.max_size = 1u << 20, .max_depth = 16};
    char err[256] = "";
    int rc = codec_value_from_json(json, strlen(json), &lim, &b, err, sizeof err);
    if (rc != 0) {
        dbuf_free(&b);
        return cl_fail(db, rc, "options: %s", err);
    }
    o.bin = b.data;
    o.len = b.len;
    codec_val v = {o.bin, o.len};
    if (codec_type(v) != DOTDB_T_OBJECT)
        rc = cl_fail(db, DOTDB_EINVAL, "options must be a JSON object");
    for (size_t i = 0; rc == 0 && i < codec_count(v); i++) {
        const char *k;
        size_t kl;
        codec_val m;
        codec_obj_at(v, i, &k, &kl, &m);
        if (!((kl == 5 && memcmp(k, "limit", 5) == 0) || (kl == 4 && memcmp(k, "skip", 4) == 0)))
            rc = cl_fail(db, DOTDB_EINVAL, "unknown option \"%.*s\" (this version knows limit "
                         "and skip)", (int)kl, k);
    }
    if (rc == 0)
        rc = option_u64(db, v, "limit", &cur->limit);
    if (rc == 0)
        rc = option_u64(db, v, "skip", &cur->skip);
    dbuf_free(&b);
    return rc;
}

int dotdb_find(dotdb *db, const char *coll, const char *filter_json, const char *options_json,
               dotdb_cursor **out)
{
    *out = NULL;
    if (coll == NULL || !name_is_valid(coll, strlen(coll)))
        return cl_fail(db, DOTDB_EBADNAME, "invalid collection name \"%.80s\"", coll ? coll : "");
    dotdb_cursor *cur = calloc(1, sizeof *cur);
    if (cur == NULL)
        return cl_fail(db, DOTDB_ENOMEM, "out of memory");
    cur->db = db;
    int rc = parse_filter(db, filter_json, &cur->f);
    if (rc == 0)
        rc = parse_options(db, options_json, cur);
    if (rc == 0)
        rc = cl_conn_get(db, &cur->c);
    if (rc == 0 && (rc = cl_snap_begin(db, cur->c, &cur->slot, &cur->lsn)) != 0) {
        conn_unref(cur->c);
        cur->c = NULL;
    }
    if (rc == 0) {
        const shm_cat_entry *ce = snap_find_coll(cur->c->base, cur->lsn, coll, strlen(coll));
        if (ce == NULL) {
            rc = cl_fail(db, DOTDB_ENOCOLL, "collection \"%s\" does not exist", coll);
            dotdb_cursor_close(cur);
            return rc;
        }
        snap_iter_init(&cur->it, cur->c->base, (const shm_coll *)(cur->c->base + ce->coll_off),
                       cur->lsn);
        *out = cur;
        return 0;
    }
    free(cur->f.bin);
    free(cur);
    return rc;
}

/* Next matching version, honouring skip and limit; NULL at the end. */
static const shm_version *cursor_step(dotdb_cursor *cur)
{
    if (cur->done || (cur->limit && cur->returned >= cur->limit))
        return NULL;
    const shm_version *v;
    while ((v = snap_iter_next(&cur->it)) != NULL) {
        if (!filter_match(&cur->f, v->data, v->doc_len))
            continue;
        if (cur->skip) {
            cur->skip--;
            continue;
        }
        cur->returned++;
        return v;
    }
    cur->done = 1;
    return NULL;
}

int dotdb_cursor_next(dotdb_cursor *cur, char **json_out, size_t *len_out)
{
    *json_out = NULL;
    if (len_out)
        *len_out = 0;
    const shm_version *v = cursor_step(cur);
    int rc = cl_snap_check(cur->db, cur->c, cur->slot, cur->lsn);
    if (rc != 0)
        return rc;
    if (v == NULL)
        return DOTDB_EDONE;
    dbuf b;
    dbuf_init(&b);
    rc = codec_to_json((codec_val){v->data, v->doc_len}, &b);
    if (rc == 0)
        rc = dbuf_to_cstr(&b, json_out, len_out);
    else
        dbuf_free(&b);
    return rc ? cl_fail(cur->db, rc, "out of memory") : 0;
}

void dotdb_cursor_close(dotdb_cursor *cur)
{
    if (cur == NULL)
        return;
    if (cur->c) {
        cl_snap_end(cur->c, cur->slot);
        conn_unref(cur->c);
    }
    free(cur->f.bin);
    free(cur);
}

int dotdb_count(dotdb *db, const char *coll, const char *filter_json, uint64_t *count_out)
{
    *count_out = 0;
    dotdb_cursor *cur;
    int rc = dotdb_find(db, coll, filter_json, NULL, &cur);
    if (rc != 0)
        return rc;
    uint64_t n = 0;
    while (cursor_step(cur) != NULL)
        n++;
    rc = cl_snap_check(db, cur->c, cur->slot, cur->lsn);
    dotdb_cursor_close(cur);
    if (rc == 0)
        *count_out = n;
    return rc;
}
