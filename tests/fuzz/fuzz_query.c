/*
 * fuzz_query.c - the filter compiler and evaluator (lib/query*.c), sort
 * and projection, the update-operator parser and applier (lib/update*.c)
 * and the aggregation pipeline parser and runner (lib/agg*.c).
 *
 * Input: a mode byte, then NUL-separated JSON texts: the spec first, then
 * up to MAX_DOCS documents (documents without an id get "d<N>").  JSON
 * text cannot hold a raw NUL, so the split is unambiguous.  Mode:
 *   'f' filter, 'u' update, 'a' aggregation, 's' sort, 'p' projection;
 *   any other byte picks one of them by its value modulo 5.
 * The spec is compiled by all five compilers (every error path must free
 * what it built: LeakSanitizer checks), then evaluated in the mode's way:
 *   f: qfilter_match is 0 or 1; {} matches everything; a filter that pins
 *      the id (qfilter_id_eq) matches no document with another id; an
 *      upsert seed (qfilter_seed) validates, and a failing seed leaves its
 *      buffer as it was; {"$and": [F]} and {"$or": [F]} match what F
 *      matches and {"$nor": [F]} the rest; the pipeline [{"$match": F}]
 *      outputs exactly the matching documents, unchanged and in order;
 *   u: a successful update_apply yields a valid document with the same
 *      id, within the limits; a failing one leaves the buffer as it was;
 *   a: every output document validates; running with the leading $match
 *      done by the caller (agg_leading_match, skip_leading_match = 1)
 *      gives the same bytes as letting the pipeline do it;
 *   s: qsort_cmp and qvalue_cmp are a total preorder on the documents:
 *      reflexive, antisymmetric in sign, transitive; the pipeline
 *      [{"$sort": S}] outputs the documents unchanged, ordered by qsort_cmp
 *      and stable (ties keep the input order);
 *   p: qproj_apply output validates.
 */
#include <stdint.h>
#include <string.h>

#include "agg.h"
#include "codec.h"
#include "fuzz_util.h"
#include "query.h"
#include "update.h"

#define MAX_DOCS 12
#define NOW_MS 1700000000123LL

typedef struct input {
    const char *spec_text;
    size_t spec_len;
    dbuf spec;
    int has_spec;
    dbuf doc[MAX_DOCS];
    size_t ndocs;
} input;

static const codec_limits lim_small = {4096, 20};

static codec_val val(const dbuf *b) { return (codec_val){b->data, b->len}; }

static int sgn(int c) { return (c > 0) - (c < 0); }

static void check_docs_out(const dbuf *out, size_t from, const char *what)
{
    char err[256];
    for (size_t off = from; off < out->len;) {
        /* Documents back to back: read the object's own size (checked
         * against the buffer) before validating exactly that many bytes. */
        const uint8_t *p = out->data + off;
        size_t avail = out->len - off;
        FUZZ_CHECK((p[0] & 0xf0) == CODEC_OBJECT && (p[0] & 0x0f) <= 2,
                   "%s: output at %zu is not an object (tag 0x%02x)", what, off, p[0]);
        unsigned w = 1u << (p[0] & 0x0f);
        FUZZ_CHECK(avail >= 1 + w, "%s: truncated output", what);
        size_t n = 0;
        for (unsigned i = 0; i < w; i++)
            n |= (size_t)p[1 + i] << (8 * i);
        FUZZ_CHECK(n >= 1 && n <= avail, "%s: document overruns the buffer", what);
        int rc = codec_validate(p, n, 1000, err, sizeof err);
        FUZZ_CHECK(rc == DOTDB_OK, "%s: invalid output at %zu: %s", what, off, err);
        off += n;
    }
}

/* Encode pre + the spec's text + post (a spec wrapped in an operator or
 * a stage); 0 when that does not parse (too deep, too big). */
static int wrap_spec(const input *in, const char *pre, const char *post, dbuf *out)
{
    dbuf t;
    dbuf_init(&t);
    int rc = dbuf_append(&t, pre, strlen(pre));
    if (rc == 0)
        rc = dbuf_append(&t, in->spec_text, in->spec_len);
    if (rc == 0)
        rc = dbuf_append(&t, post, strlen(post));
    if (rc == 0)
        rc = codec_value_from_json((const char *)t.data, t.len, NULL, out, NULL, 0);
    dbuf_free(&t);
    return rc == DOTDB_OK;
}

static int agg_once(const agg_pipeline *p, const input *in, int skip_match, dbuf *out);

/* Run the one-stage pipeline pre + spec + post over the documents: 1 with
 * the output in out when it compiles and runs, else 0. */
static int run_stage(const input *in, const char *pre, const char *post, dbuf *out)
{
    dbuf pb;
    dbuf_init(&pb);
    agg_pipeline *p = NULL;
    int ok = wrap_spec(in, pre, post, &pb) &&
             agg_compile(val(&pb), &p, NULL, 0) == DOTDB_OK && agg_once(p, in, 0, out) == 0;
    agg_free(p);
    dbuf_free(&pb);
    return ok;
}

/* The same filter in another spelling must match the same documents
 * (negate: the complement). */
static void same_matches(const input *in, const char *pre, const char *post, const int *m,
                         int negate)
{
    dbuf fb;
    dbuf_init(&fb);
    qfilter *q = NULL;
    if (wrap_spec(in, pre, post, &fb) && qfilter_compile(val(&fb), &q, NULL, 0) == DOTDB_OK) {
        for (size_t i = 0; i < in->ndocs; i++)
            FUZZ_CHECK(qfilter_match(q, val(&in->doc[i])) == (negate ? !m[i] : m[i]),
                       "document %zu: %sF%s disagrees with F", i, pre, post);
    }
    qfilter_free(q);
    dbuf_free(&fb);
}

static void run_filter(const input *in)
{
    char err[256];
    qfilter *q = NULL;
    if (qfilter_compile(val(&in->spec), &q, err, sizeof err) != DOTDB_OK) {
        FUZZ_CHECK(q == NULL, "failed compile left *out set");
        return;
    }
    const char *pin = NULL;
    size_t pin_len = 0;
    int pinned = qfilter_id_eq(q, &pin, &pin_len);
    int ms[MAX_DOCS];
    for (size_t i = 0; i < in->ndocs; i++) {
        int m = ms[i] = qfilter_match(q, val(&in->doc[i]));
        FUZZ_CHECK(m == 0 || m == 1, "match returned %d", m);
        if (qfilter_is_all(q))
            FUZZ_CHECK(m == 1, "{} did not match");
        if (pinned && m) {
            codec_val id;
            const char *s;
            size_t n;
            FUZZ_CHECK(codec_obj_get(val(&in->doc[i]), "id", 2, &id) &&
                           codec_as_string(id, &s, &n) && n == pin_len &&
                           memcmp(s, pin, n) == 0,
                       "filter pins id %.*s but matched another document", (int)pin_len, pin);
        }
    }
    same_matches(in, "{\"$and\":[", "]}", ms, 0);
    same_matches(in, "{\"$or\":[", "]}", ms, 0);
    same_matches(in, "{\"$nor\":[", "]}", ms, 1);
    dbuf out;
    dbuf_init(&out);
    if (run_stage(in, "[{\"$match\":", "}]", &out)) {
        size_t off = 0;
        for (size_t i = 0; i < in->ndocs; i++) {
            if (!ms[i])
                continue;
            const dbuf *d = &in->doc[i];
            FUZZ_CHECK(out.len - off >= d->len && memcmp(out.data + off, d->data, d->len) == 0,
                       "$match output differs from the filter at document %zu", i);
            off += d->len;
        }
        FUZZ_CHECK(off == out.len, "$match output has extra bytes");
    }
    dbuf_free(&out);
    dbuf seed;
    dbuf_init(&seed);
    FUZZ_CHECK(dbuf_append(&seed, "xy", 2) == DOTDB_OK, "alloc");
    int rc = qfilter_seed(q, &seed);
    if (rc == DOTDB_OK) {
        FUZZ_CHECK(codec_validate(seed.data + 2, seed.len - 2, 1000, err, sizeof err) ==
                           DOTDB_OK &&
                       codec_type((codec_val){seed.data + 2, seed.len - 2}) == DOTDB_T_OBJECT,
                   "upsert seed invalid: %s", err);
    } else {
        FUZZ_CHECK(rc == DOTDB_EINVAL || rc == DOTDB_ENOMEM, "seed rc %d", rc);
        FUZZ_CHECK(seed.len == 2, "failed seed changed the buffer");
    }
    dbuf_free(&seed);
    qfilter_free(q);
}

static void run_update(const input *in)
{
    char err[256];
    upd_spec *u = NULL;
    if (update_compile(val(&in->spec), &u, err, sizeof err) != DOTDB_OK) {
        FUZZ_CHECK(u == NULL, "failed compile left *out set");
        return;
    }
    (void)update_is_replacement(u);
    for (size_t i = 0; i < in->ndocs; i++) {
        for (int pass = 0; pass < 2; pass++) {
            const codec_limits *lim = pass ? &lim_small : NULL;
            dbuf out;
            dbuf_init(&out);
            FUZZ_CHECK(dbuf_append(&out, "xy", 2) == DOTDB_OK, "alloc");
            int changed = -1;
            codec_val doc = val(&in->doc[i]);
            int rc = update_apply(u, doc, NOW_MS, lim, &out, &changed, err, sizeof err);
            if (rc == DOTDB_OK) {
                const char *id, *id0;
                size_t id_len, id0_len;
                rc = codec_validate_doc(out.data + 2, out.len - 2, lim ? lim->max_depth : 100,
                                        &id, &id_len, err, sizeof err);
                FUZZ_CHECK(rc == DOTDB_OK, "update result invalid: %s", err);
                FUZZ_CHECK(!lim || out.len - 2 <= lim->max_size, "result past max_size");
                codec_validate_doc(doc.p, doc.len, 100, &id0, &id0_len, NULL, 0);
                FUZZ_CHECK(id_len == id0_len && memcmp(id, id0, id_len) == 0,
                           "update changed the id");
                FUZZ_CHECK(changed == (out.len - 2 != doc.len ||
                                       memcmp(out.data + 2, doc.p, doc.len) != 0),
                           "changed flag %d is wrong", changed);
            } else {
                FUZZ_CHECK(rc == DOTDB_EINVAL || rc == DOTDB_ETOOBIG || rc == DOTDB_ETOODEEP ||
                               rc == DOTDB_ENOMEM,
                           "update rc %d", rc);
                FUZZ_CHECK(out.len == 2, "failed update changed the buffer");
            }
            dbuf_free(&out);
        }
    }
    update_free(u);
}

/* One run of p over the input documents; rc of the first failure. */
static int agg_once(const agg_pipeline *p, const input *in, int skip_match, dbuf *out)
{
    char err[256];
    agg_run *r = NULL;
    const qfilter *lead = skip_match ? agg_leading_match(p) : NULL;
    int rc = agg_begin(p, skip_match, 64 * 1024, out, &r);
    FUZZ_CHECK(rc == DOTDB_OK, "agg_begin %d", rc);
    for (size_t i = 0; i < in->ndocs; i++) {
        if (lead != NULL && !qfilter_match(lead, val(&in->doc[i])))
            continue;
        rc = agg_push(r, val(&in->doc[i]), err, sizeof err);
        if (rc == AGG_STOP)
            break;
        if (rc != DOTDB_OK)
            goto out;
    }
    rc = agg_finish(r, err, sizeof err);
out:
    agg_run_free(r);
    return rc < 0 ? rc : 0;
}

static void run_agg(const input *in)
{
    char err[256];
    agg_pipeline *p = NULL;
    if (agg_compile(val(&in->spec), &p, err, sizeof err) != DOTDB_OK) {
        FUZZ_CHECK(p == NULL, "failed compile left *out set");
        return;
    }
    dbuf a, b;
    dbuf_init(&a);
    dbuf_init(&b);
    int rc_a = agg_once(p, in, 0, &a);
    if (rc_a == DOTDB_OK)
        check_docs_out(&a, 0, "aggregate");
    if (agg_leading_match(p) != NULL) {
        int rc_b = agg_once(p, in, 1, &b);
        FUZZ_CHECK(rc_a == rc_b, "leading $match by the caller: rc %d vs %d", rc_b, rc_a);
        if (rc_a == DOTDB_OK)
            FUZZ_CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0),
                       "leading $match by the caller changed the output");
    }
    dbuf_free(&a);
    dbuf_free(&b);
    agg_free(p);
}

static void check_order(const input *in, const qsort_spec *s)
{
    size_t n = in->ndocs;
    int c[MAX_DOCS][MAX_DOCS];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            c[i][j] = sgn(s ? qsort_cmp(s, val(&in->doc[i]), val(&in->doc[j]))
                            : qvalue_cmp(val(&in->doc[i]), val(&in->doc[j])));
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(c[i][i] == 0, "document %zu not equal to itself", i);
        for (size_t j = 0; j < n; j++) {
            FUZZ_CHECK(c[i][j] == -c[j][i], "cmp(%zu,%zu) = %d, cmp(%zu,%zu) = %d", i, j,
                       c[i][j], j, i, c[j][i]);
            for (size_t k = 0; k < n; k++)
                if (c[i][j] <= 0 && c[j][k] <= 0)
                    FUZZ_CHECK(c[i][k] <= 0 && (c[i][j] < 0 || c[j][k] < 0 ? c[i][k] < 0 : 1),
                               "order not transitive over %zu, %zu, %zu", i, j, k);
        }
    }
}

static void run_sort(const input *in)
{
    char err[256];
    qsort_spec *s = NULL;
    check_order(in, NULL);
    if (qsort_compile(val(&in->spec), &s, err, sizeof err) != DOTDB_OK)
        return;
    check_order(in, s);
    dbuf out;
    dbuf_init(&out);
    if (run_stage(in, "[{\"$sort\":", "}]", &out)) {
        /* Each output document is one of the inputs; consecutive ones are
         * in order, and equal ones keep their input order. */
        size_t off = 0, prev = SIZE_MAX, seen = 0;
        int used[MAX_DOCS] = {0};
        while (off < out.len) {
            size_t k = SIZE_MAX;
            for (size_t i = 0; i < in->ndocs && k == SIZE_MAX; i++) {
                const dbuf *d = &in->doc[i];
                if (!used[i] && out.len - off >= d->len &&
                    memcmp(out.data + off, d->data, d->len) == 0)
                    k = i;
            }
            FUZZ_CHECK(k != SIZE_MAX, "$sort output at %zu is no unused input document", off);
            used[k] = 1;
            if (prev != SIZE_MAX) {
                int c = qsort_cmp(s, val(&in->doc[prev]), val(&in->doc[k]));
                FUZZ_CHECK(c < 0 || (c == 0 && prev < k),
                           "$sort put document %zu after %zu (cmp %d)", k, prev, c);
            }
            prev = k;
            off += in->doc[k].len;
            seen++;
        }
        FUZZ_CHECK(seen == in->ndocs, "$sort output %zu of %zu documents", seen, in->ndocs);
    }
    dbuf_free(&out);
    qsort_free(s);
}

static void run_proj(const input *in)
{
    char err[256];
    qproj *p = NULL;
    if (qproj_compile(val(&in->spec), &p, err, sizeof err) != DOTDB_OK)
        return;
    for (size_t i = 0; i < in->ndocs; i++) {
        dbuf out;
        dbuf_init(&out);
        if (qproj_apply(p, val(&in->doc[i]), &out) == DOTDB_OK)
            check_docs_out(&out, 0, "projection");
        dbuf_free(&out);
    }
    qproj_free(p);
}

/* Every compiler on the spec, for their error paths. */
static void compile_all(const input *in)
{
    char err[256];
    qfilter *q;
    upd_spec *u;
    agg_pipeline *a;
    qsort_spec *s;
    qproj *p;
    if (qfilter_compile(val(&in->spec), &q, err, sizeof err) == DOTDB_OK)
        qfilter_free(q);
    if (update_compile(val(&in->spec), &u, err, sizeof err) == DOTDB_OK)
        update_free(u);
    if (agg_compile(val(&in->spec), &a, err, sizeof err) == DOTDB_OK)
        agg_free(a);
    if (qsort_compile(val(&in->spec), &s, err, sizeof err) == DOTDB_OK)
        qsort_free(s);
    if (qproj_compile(val(&in->spec), &p, err, sizeof err) == DOTDB_OK)
        qproj_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char modes[] = "fuasp";
    char mode = strchr(modes, data[0]) && data[0] ? (char)data[0] : modes[data[0] % 5];
    input in;
    memset(&in, 0, sizeof in);
    dbuf_init(&in.spec);
    codec_limits lim = {0, 0};
    char err[256];
    size_t pos = 1;
    for (int part = 0; pos <= size && in.ndocs < MAX_DOCS; part++) {
        const uint8_t *end = memchr(data + pos, 0, size - pos);
        size_t n = end ? (size_t)(end - (data + pos)) : size - pos;
        const char *text = (const char *)data + pos;
        if (part == 0) {
            in.has_spec =
                codec_value_from_json(text, n, &lim, &in.spec, err, sizeof err) == DOTDB_OK;
            in.spec_text = text;
            in.spec_len = n;
        } else {
            char gen[16];
            snprintf(gen, sizeof gen, "d%d", part);
            dbuf_init(&in.doc[in.ndocs]);
            if (codec_from_json(text, n, &lim, gen, &in.doc[in.ndocs], NULL, err, sizeof err) ==
                DOTDB_OK)
                in.ndocs++;
            else
                dbuf_free(&in.doc[in.ndocs]);
        }
        pos += n + 1;
    }
    if (in.has_spec) {
        compile_all(&in);
        switch (mode) {
        case 'f': run_filter(&in); break;
        case 'u': run_update(&in); break;
        case 'a': run_agg(&in); break;
        case 's': run_sort(&in); break;
        case 'p': run_proj(&in); break;
        }
    } else if (mode == 's') {
        check_order(&in, NULL);
    }
    dbuf_free(&in.spec);
    for (size_t i = 0; i < in.ndocs; i++)
        dbuf_free(&in.doc[i]);
    return 0;
}
