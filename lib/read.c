/*
 * read.c - reads and transactions: dotdb_get, dotdb_txn_*, document views,
 * and the write calls built on batches (put, update, delete, collections).
 *
 * A read claims one of the connection's reader slots, publishes a snapshot
 * (readers.h), looks the document up in shared memory (snap.h) and clears
 * the slot: no system call, no lock.  A transaction keeps its slot until it
 * ends; its writes are buffered and go to the coordinator as one batch
 * stamped with the snapshot LSN, which the coordinator checks for
 * conflicts (optimistic concurrency).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "snap.h"

typedef struct txn_write {
    uint8_t kind;          /* BOP_PUT or BOP_DELETE */
    char coll[DOTDB_COLL_NAME_MAX + 1];
    size_t coll_len;
    char id[DOTDB_ID_MAX + 1];
    size_t id_len;
    uint8_t *doc;          /* owned; binary document for BOP_PUT */
    size_t doc_len;
    size_t id_pos;
} txn_write;

typedef struct txn_read {
    char coll[DOTDB_COLL_NAME_MAX + 1];
    char id[DOTDB_ID_MAX + 1];
} txn_read;

struct dotdb_txn {
    dotdb *db;
    conn *c;
    int slot;
    uint64_t lsn;
    unsigned flags;
    txn_write *w;
    size_t n_w, cap_w;
    txn_read *r;           /* serializable: ids read from the snapshot */
    size_t n_r, cap_r;
};

static void view_of(const shm_version *v, dotdb_doc *out)
{
    out->data = v->data;
    out->len = v->doc_len;
    out->id = ver_id(v);
    out->id_len = v->id_len;
}

static int to_json_string(dotdb *db, const uint8_t *p, size_t len, char **out, size_t *len_out)
{
    dbuf b;
    dbuf_init(&b);
    /* One allocation for most documents: the text is rarely longer than
     * the encoding (no offset tables, but quotes and commas). */
    int rc = dbuf_reserve(&b, len + len / 4 + 32) ? DOTDB_ENOMEM : 0;
    if (rc == 0)
        rc = codec_to_json((codec_val){p, len}, &b);
    if (rc == 0)
        rc = dbuf_to_cstr(&b, out, len_out);
    else
        dbuf_free(&b);
    return rc ? cl_fail(db, rc, "out of memory") : 0;
}

/* ---- one-shot reads ---- */

int dotdb_get(dotdb *db, const char *coll, const char *id, char **json_out, size_t *len_out)
{
    *json_out = NULL;
    if (len_out)
        *len_out = 0;
    int rc = cl_check_name(db, coll);
    if (rc == 0)
        rc = cl_check_id(db, id);
    conn *c;
    if (rc != 0 || (rc = cl_conn_get(db, &c)) != 0)
        return rc;
    int slot;
    uint64_t lsn;
    if ((rc = cl_snap_begin(db, c, &slot, &lsn)) != 0) {
        conn_unref(c);
        return rc;
    }
    const shm_cat_entry *ce = snap_find_coll(c->base, lsn, coll, strlen(coll));
    const shm_version *v =
        ce ? snap_lookup(c->base, (const shm_coll *)(c->base + ce->coll_off), lsn, id, strlen(id))
           : NULL;
    if (ce == NULL)
        rc = cl_fail(db, DOTDB_ENOCOLL, "collection \"%s\" does not exist", coll);
    else if (v == NULL)
        rc = cl_fail(db, DOTDB_ENOTFOUND, "document \"%s\" not found in collection \"%s\"", id, coll);
    else
        rc = to_json_string(db, v->data, v->doc_len, json_out, len_out);
    cl_snap_end(c, slot);
    conn_unref(c);
    return rc;
}

/* ---- writes through batches ---- */

static int send_batch(dotdb *db, const dbuf *b, uint64_t snapshot)
{
    return cl_call(db, WIRE_OP_BATCH, snapshot, b->data, b->len, NULL, NULL);
}

static int one_op(dotdb *db, uint8_t kind, const char *coll, const char *id, const uint8_t *doc,
                  size_t doc_len)
{
    dbuf b;
    size_t start;
    dbuf_init(&b);
    batch_op op = {.kind = kind, .coll = coll, .coll_len = strlen(coll), .id = id,
                   .id_len = id ? strlen(id) : 0, .doc = doc, .doc_len = doc_len};
    int rc = batch_begin(&b, &start);
    if (rc == 0)
        rc = batch_add(&b, start, &op);
    rc = rc ? cl_fail(db, rc, "out of memory") : send_batch(db, &b, 0);
    dbuf_free(&b);
    return rc;
}

int dotdb_create_collection(dotdb *db, const char *coll)
{
    int rc = cl_check_name(db, coll);
    return rc ? rc : one_op(db, BOP_CREATE_COLL, coll, NULL, NULL, 0);
}

int dotdb_drop_collection(dotdb *db, const char *coll)
{
    int rc = cl_check_name(db, coll);
    return rc ? rc : one_op(db, BOP_DROP_COLL, coll, NULL, NULL, 0);
}

int dotdb_delete(dotdb *db, const char *coll, const char *id)
{
    int rc = cl_check_name(db, coll);
    if (rc == 0)
        rc = cl_check_id(db, id);
    return rc ? rc : one_op(db, BOP_DELETE, coll, id, NULL, 0);
}

static int put_or_update(dotdb *db, uint8_t kind, const char *coll, const char *id,
                         const char *json, size_t len, char *id_out)
{
    char idb[DOTDB_ID_MAX + 1];
    if (id_out)
        id_out[0] = 0;
    int rc = cl_check_name(db, coll);
    if (rc != 0)
        return rc;
    conn *c;
    if ((rc = cl_conn_get(db, &c)) != 0)
        return rc;
    dbuf doc;
    dbuf_init(&doc);
    if (kind == BOP_UPDATE) {
        /* The update's target id goes in when the document has none. */
        codec_limits lim = cl_limits(c);
        char err[512] = "";
        rc = codec_from_json(json, len, &lim, id, &doc, idb, err, sizeof err);
        if (rc != 0)
            rc = cl_fail(db, rc, "%s", err[0] ? err : dotdb_strerror(rc));
        else if (strcmp(idb, id) != 0)
            rc = cl_fail(db, DOTDB_EBADID, "the document's id \"%s\" differs from \"%s\"", idb, id);
    } else {
        rc = cl_encode_doc(db, c, json, len, 1, &doc, idb);
    }
    conn_unref(c);
    if (rc == 0)
        rc = one_op(db, kind, coll, kind == BOP_UPDATE ? id : NULL, doc.data, doc.len);
    if (rc == 0 && id_out)
        memcpy(id_out, idb, strlen(idb) + 1);
    dbuf_free(&doc);
    return rc;
}

int dotdb_put(dotdb *db, const char *coll, const char *json, size_t len, char *id_out)
{
    return put_or_update(db, BOP_PUT, coll, NULL, json, len, id_out);
}

/* Does the JSON text start with an object whose first key begins with '$'
 * (update operators rather than a replacement)?  The coordinator checks
 * the whole document; this only picks the route. */
static int has_operators(const char *json, size_t len)
{
    size_t i = 0;
    while (i < len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r'))
        i++;
    if (i >= len || json[i] != '{')
        return 0;
    for (i++; i < len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r');)
        i++;
    return i + 1 < len && json[i] == '"' && json[i + 1] == '$';
}

int dotdb_update(dotdb *db, const char *coll, const char *id, const char *json, size_t len)
{
    int rc = cl_check_id(db, id);
    if (rc == 0 && json && has_operators(json, len))
        return dotdb_update_ex(db, coll, id, json, len, 0, NULL);
    return rc ? rc : put_or_update(db, BOP_UPDATE, coll, id, json, len, NULL);
}

/* Skip what separates the documents of a put_many text: whitespace and
 * commas.  Returns 1 at the next document, 0 at the end (or a closing
 * ']'), -1 at anything that cannot start a JSON object. */
static int next_json_object(const char *s, size_t len, size_t *pos)
{
    size_t i = *pos;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n' || s[i] == ','))
        i++;
    *pos = i;
    if (i >= len || s[i] == ']')
        return 0;
    return s[i] == '{' ? 1 : -1;
}

/* put_many sends what it has encoded once it holds this much, while it
 * encodes the rest: the coordinator checks each fragment meanwhile, on the
 * other core (coordinator/fragments.h).  Large enough that frames cost
 * little, small enough that the last fragment's check is short. */
#define PUT_MANY_FRAGMENT (128u * 1024u)
/* A text at least this long is encoded by two threads when the machine has
 * two cores or more (docs/ARCHITECTURE.md, "put_many encodes with two
 * threads"): it is cut into chunks of about PUT_MANY_CHUNK bytes at lines
 * that open an object, which the calling thread and a helper take in turn;
 * the calling thread sends each as a fragment, in order, as soon as it and
 * the chunks before it are encoded, so the coordinator checks them while
 * the rest are encoded.  At most PUT_MANY_AHEAD chunks wait to be sent. */
#define PUT_MANY_SPLIT_MIN (1u << 20)
#define PUT_MANY_CHUNK PUT_MANY_FRAGMENT
#define PUT_MANY_AHEAD 8

/* What stopped an encoder: nothing (rc 0), a document that is not an
 * object, one that does not encode (detail in msg), or one too large. */
enum { ENC_BAD_START = 1, ENC_BAD_DOC, ENC_TOO_LARGE };

/* Encode one document of json[pos..] as a put into b (batch at `start`);
 * *used: its length.  On failure returns the status with *why and msg set,
 * touching nothing shared (the helper thread calls it too). */
static int encode_put(dotdb *db, conn *c, const char *coll, size_t coll_len, const char *json,
                      size_t len, dbuf *b, size_t start, size_t *used, int *why, char *msg,
                      size_t msglen)
{
    size_t op_start;
    char idb[DOTDB_ID_MAX + 1], gid[DOTDB_ID_MAX + 1];
    if (batch_put_begin(b, coll, coll_len, &op_start) != 0) {
        *why = ENC_BAD_DOC;
        snprintf(msg, msglen, "out of memory");
        return DOTDB_ENOMEM;
    }
    cl_new_id(db, gid);
    codec_limits lim = cl_limits(c);
    msg[0] = 0;
    int rc = codec_from_json_first(json, len, &lim, gid, b, idb, used, msg, msglen);
    if (rc != 0) {
        if (msg[0] == 0)
            snprintf(msg, msglen, "%s", dotdb_strerror(rc));
        *why = ENC_BAD_DOC;
        return rc;
    }
    if ((rc = batch_put_end(b, start, op_start)) != 0)
        *why = ENC_TOO_LARGE;
    return rc;
}

/* json[from..to): documents, if `from` really starts one.  Chunk k+1's
 * `from` is a guess (a line opening an object may open a nested object of
 * a document that spans lines); it holds when chunk k's encoder, which
 * started where a document does, stops exactly there. */
typedef struct pm_chunk {
    size_t from, to;
    size_t end;   /* where its encoder stopped: `to`, or past it */
    size_t n;     /* documents encoded */
    size_t start; /* the batch's count in frag */
    dbuf frag;    /* owned: the batch of those documents */
    int rc, why;  /* the first failure, at document n of the chunk */
    int done;     /* encoded (under pm_par.mu; taken: index < next) */
    char msg[512];
} pm_chunk;

typedef struct pm_par {
    dotdb *db;
    conn *c;
    const char *coll, *json;
    size_t coll_len, len;
    pm_chunk *ch; /* owned, nch of them */
    size_t nch;
    size_t next;  /* the next chunk to encode */
    size_t sent;  /* chunks the calling thread has used */
    int stop;     /* no more chunks are taken */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} pm_par;

/* Cut json[from..len) into chunks; 0 (and nothing cut) if it holds only
 * one or memory is short. */
static int pm_cut(pm_par *pp, size_t from)
{
    const char *json = pp->json, *end = json + pp->len;
    size_t cap = (pp->len - from) / PUT_MANY_CHUNK + 2, n = 0;
    pm_chunk *ch = calloc(cap, sizeof *ch);
    if (ch == NULL)
        return 0;
    for (size_t at = from; n < cap;) {
        ch[n].from = at;
        ch[n].to = pp->len;
        dbuf_init(&ch[n].frag);
        n++;
        if (pp->len - at <= PUT_MANY_CHUNK)
            break;
        const char *p = json + at + PUT_MANY_CHUNK;
        while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL && p + 1 < end && p[1] != '{')
            p++;
        if (p == NULL || p + 1 >= end)
            break;
        at = (size_t)(p + 1 - json);
        ch[n - 1].to = at;
    }
    if (n < 2) {
        free(ch);
        return 0;
    }
    pp->ch = ch;
    pp->nch = n;
    return 1;
}

/* Encode chunk k into its own batch (either thread). */
static void pm_encode(pm_par *pp, pm_chunk *k)
{
    size_t pos = k->from;
    if (batch_begin(&k->frag, &k->start) != 0 ||
        dbuf_reserve(&k->frag, PUT_MANY_CHUNK + PUT_MANY_CHUNK / 4) != 0) {
        k->rc = DOTDB_ENOMEM;
        k->why = ENC_BAD_DOC;
        snprintf(k->msg, sizeof k->msg, "out of memory");
        k->end = pos;
        return;
    }
    for (;;) {
        int more = next_json_object(pp->json, pp->len, &pos);
        if (more == 0 || pos >= k->to)
            break;
        if (more < 0) {
            k->rc = DOTDB_EJSON;
            k->why = ENC_BAD_START;
            break;
        }
        size_t used;
        k->rc = encode_put(pp->db, pp->c, pp->coll, pp->coll_len, pp->json + pos, pp->len - pos,
                           &k->frag, k->start, &used, &k->why, k->msg, sizeof k->msg);
        if (k->rc != 0)
            break;
        pos += used;
        k->n++;
    }
    k->end = pos;
}

/* With pp->mu held: take the next chunk to encode, if one may be. */
static int pm_take(pm_par *pp, size_t *k)
{
    if (pp->stop || pp->next == pp->nch || pp->next >= pp->sent + PUT_MANY_AHEAD)
        return 0;
    *k = pp->next++;
    return 1;
}

/* With pp->mu held: encode one chunk if one may be taken (1), else 0. */
static int pm_work(pm_par *pp)
{
    size_t k;
    if (!pm_take(pp, &k))
        return 0;
    pthread_mutex_unlock(&pp->mu);
    pm_encode(pp, &pp->ch[k]);
    pthread_mutex_lock(&pp->mu);
    pp->ch[k].done = 1;
    pthread_cond_broadcast(&pp->cv);
    return 1;
}

static void *pm_helper(void *arg)
{
    pm_par *pp = arg;
    pthread_mutex_lock(&pp->mu);
    while (!pp->stop && pp->next < pp->nch)
        if (!pm_work(pp))
            pthread_cond_wait(&pp->cv, &pp->mu);
    pthread_mutex_unlock(&pp->mu);
    return NULL;
}

static int put_many_fail(dotdb *db, int rc, int why, size_t doc, const char *msg)
{
    if (why == ENC_BAD_START)
        return cl_fail(db, DOTDB_EJSON, "document %zu: expected a JSON object", doc);
    if (why == ENC_TOO_LARGE)
        return cl_fail(db, rc, "document %zu is too large", doc);
    return cl_fail(db, rc, "document %zu: %s", doc, msg);
}

/* Send one frame of the batch: a fragment, or with last != 0 the end.
 * *streaming: 0 before the first fragment, 1 while the batch is open (the
 * stream holds db->mu: it must be ended or aborted), 2 once ended. */
static int put_many_frame(dotdb *db, cl_stream *st, int *streaming, const dbuf *b, int last)
{
    if (last && !*streaming)
        return send_batch(db, b, 0);
    int rc;
    if (!*streaming && (rc = cl_stream_begin(db, st)) != 0)
        return rc;
    *streaming = 1;
    if (!last)
        return cl_stream_part(st, WIRE_OP_BATCH, b->data, b->len);
    *streaming = 2;
    return cl_stream_end(st, WIRE_OP_BATCH, 0, b->data, b->len, NULL, NULL);
}

/* The sending side of the parallel encoding, on the calling thread, which
 * also encodes chunks while the next one to send is not ready.  The chunk
 * held back in *b (its count at *start) is sent as a fragment once the
 * next one has proved a document follows; what is held at the end, the
 * caller sends or extends.  Returns 0 with *pos where the caller goes on
 * alone (the end of the text, or where a guessed start did not hold) and
 * *n the documents encoded so far, or the failure. */
static int pm_send(pm_par *pp, dbuf *b, size_t *start, size_t *pos, size_t *n, cl_stream *st,
                   int *streaming)
{
    int rc = 0;
    pthread_mutex_lock(&pp->mu);
    while (pp->sent < pp->nch) {
        pm_chunk *k = &pp->ch[pp->sent];
        if (!k->done) {
            if (!pm_work(pp))
                pthread_cond_wait(&pp->cv, &pp->mu);
            continue;
        }
        pthread_mutex_unlock(&pp->mu);
        /* k starts where a document does: its failure is the text's */
        if (k->rc != 0) {
            rc = put_many_fail(pp->db, k->rc, k->why, *n + k->n, k->msg);
            pthread_mutex_lock(&pp->mu);
            break;
        }
        if (k->n > 0 && batch_count(b, *start) > 0)
            rc = put_many_frame(pp->db, st, streaming, b, 0);
        if (k->n > 0 && rc == 0) {
            dbuf_free(b);
            *b = k->frag;
            *start = k->start;
            dbuf_init(&k->frag);
            *n += k->n;
        }
        *pos = k->end;
        int held = pp->sent + 1 < pp->nch && k->n > 0 && k->end == pp->ch[pp->sent + 1].from;
        pthread_mutex_lock(&pp->mu);
        pp->sent++;
        pthread_cond_broadcast(&pp->cv);
        if (rc != 0 || !held)
            break;
    }
    pp->stop = 1;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
    return rc;
}

int dotdb_put_many(dotdb *db, const char *coll, const char *json, size_t len, size_t *count_out)
{
    if (count_out)
        *count_out = 0;
    int rc = cl_check_name(db, coll);
    if (rc != 0)
        return rc;
    conn *c;
    if ((rc = cl_conn_get(db, &c)) != 0)
        return rc;
    dbuf b;
    size_t start, pos = 0, n = 0, coll_len = strlen(coll);
    dbuf_init(&b);
    if (json == NULL)
        json = "", len = 0;
    while (len && (json[pos] == ' ' || json[pos] == '\n' || json[pos] == '\t' || json[pos] == '\r'))
        if (++pos == len)
            break;
    if (pos < len && json[pos] == '[')
        pos++;
    rc = batch_begin(&b, &start);
    /* Room for the whole batch (or a fragment and a document) at once:
     * growing a large buffer by doubling copies it several times. */
    if (rc == 0)
        rc = dbuf_reserve(&b, len < 2 * PUT_MANY_FRAGMENT ? len + len / 8 + 64
                                                          : 2 * PUT_MANY_FRAGMENT);
    if (rc != 0)
        rc = cl_fail(db, DOTDB_ENOMEM, "out of memory");
    cl_stream st;
    int more, streaming = 0, why = 0;
    char msg[512];
    pm_par pp = {.db = db, .c = c, .coll = coll, .coll_len = coll_len, .json = json, .len = len};
    if (rc == 0 && len - pos >= PUT_MANY_SPLIT_MIN && sysconf(_SC_NPROCESSORS_ONLN) >= 2 &&
        pm_cut(&pp, pos)) {
        pthread_t helper;
        pthread_mutex_init(&pp.mu, NULL);
        pthread_cond_init(&pp.cv, NULL);
        /* without a helper the calling thread encodes every chunk itself */
        int helping = pthread_create(&helper, NULL, pm_helper, &pp) == 0;
        rc = pm_send(&pp, &b, &start, &pos, &n, &st, &streaming);
        if (helping)
            pthread_join(helper, NULL);
        pthread_cond_destroy(&pp.cv);
        pthread_mutex_destroy(&pp.mu);
        for (size_t i = 0; i < pp.nch; i++)
            dbuf_free(&pp.ch[i].frag);
        free(pp.ch);
    }
    while (rc == 0 && (more = next_json_object(json, len, &pos)) != 0) {
        if (more < 0) {
            rc = put_many_fail(db, DOTDB_EJSON, ENC_BAD_START, n, "");
            break;
        }
        if (b.len >= PUT_MANY_FRAGMENT) {
            /* Another document follows, so the last frame will not be
             * empty: send this much as a fragment. */
            if ((rc = put_many_frame(db, &st, &streaming, &b, 0)) != 0)
                break;
            b.len = 0;
            if ((rc = batch_begin(&b, &start)) != 0) {
                rc = cl_fail(db, rc, "out of memory");
                break;
            }
        }
        /* The document is encoded straight into the batch. */
        size_t used;
        rc = encode_put(db, c, coll, coll_len, json + pos, len - pos, &b, start, &used, &why, msg,
                        sizeof msg);
        if (rc != 0) {
            rc = put_many_fail(db, rc, why, n, msg);
            break;
        }
        pos += used;
        n++;
    }
    conn_unref(c);
    if (rc == 0 && n == 0)
        rc = cl_fail(db, DOTDB_EINVAL, "no documents given");
    if (rc == 0)
        rc = put_many_frame(db, &st, &streaming, &b, 1);
    if (streaming == 1) /* a failure left the batch open: abandon it */
        cl_stream_abort(&st, WIRE_OP_BATCH);
    if (rc == 0 && count_out)
        *count_out = n;
    dbuf_free(&b);
    return rc;
}

/* ---- collections and stats ---- */

static int cmp_names(const void *a, const void *b)
{
    const shm_cat_entry *x = *(const shm_cat_entry *const *)a, *y = *(const shm_cat_entry *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int r = memcmp(x->name, y->name, n);
    return r ? r : (int)x->name_len - (int)y->name_len;
}

int dotdb_list_collections(dotdb *db, char **json_out, size_t *len_out)
{
    *json_out = NULL;
    if (len_out)
        *len_out = 0;
    conn *c;
    int slot, rc = cl_conn_get(db, &c);
    uint64_t lsn;
    if (rc != 0)
        return rc;
    if ((rc = cl_snap_begin(db, c, &slot, &lsn)) != 0) {
        conn_unref(c);
        return rc;
    }
    const shm_header *h = (const shm_header *)c->base;
    const shm_catalog *cat =
        snap_at(c->base, atomic_load_explicit(&((shm_header *)h)->catalog_off, memory_order_acquire));
    size_t n = 0;
    const shm_cat_entry **v = malloc((cat ? cat->count : 0) * sizeof *v + 1);
    dbuf b;
    dbuf_init(&b);
    rc = v ? dbuf_putc(&b, '[') : DOTDB_ENOMEM;
    for (uint32_t i = 0; rc == 0 && cat && i < cat->count; i++)
        if (cat->entries[i].create_lsn <= lsn && lsn < cat->entries[i].drop_lsn)
            v[n++] = &cat->entries[i];
    if (rc == 0)
        qsort(v, n, sizeof *v, cmp_names);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = dbuf_putc(&b, ',');
        if (rc == 0)
            rc = dbuf_putc(&b, '"');
        if (rc == 0)
            rc = dbuf_append(&b, v[i]->name, v[i]->name_len); /* names need no escaping */
        if (rc == 0)
            rc = dbuf_putc(&b, '"');
    }
    cl_snap_end(c, slot);
    conn_unref(c);
    free(v);
    if (rc == 0)
        rc = dbuf_putc(&b, ']');
    if (rc == 0)
        return dbuf_to_cstr(&b, json_out, len_out) ? cl_fail(db, DOTDB_ENOMEM, "out of memory") : 0;
    dbuf_free(&b);
    return cl_fail(db, rc, "out of memory");
}

int dotdb_stats(dotdb *db, const char *coll, char **json_out, size_t *len_out)
{
    *json_out = NULL;
    if (len_out)
        *len_out = 0;
    if (coll) {
        int rc = cl_check_name(db, coll);
        if (rc != 0)
            return rc;
    }
    dbuf b;
    dbuf_init(&b);
    int rc = cl_call(db, WIRE_OP_STATS, 0, coll, coll ? strlen(coll) : 0, &b, NULL);
    if (rc != 0) {
        dbuf_free(&b);
        return rc;
    }
    return dbuf_to_cstr(&b, json_out, len_out) ? cl_fail(db, DOTDB_ENOMEM, "out of memory") : 0;
}

/* ---- transactions ---- */

/*
 * The spare (db->spare_txn): the last ended transaction, kept with its
 * connection reference and its reader slot (idle, still claimed).  A
 * point read is begin, get, abort: from the spare, begin costs no calloc,
 * no reference counting and no slot search, only the snapshot itself.
 */
static dotdb_txn *take_spare(dotdb *db)
{
    dotdb_txn *t = atomic_exchange_explicit(&db->spare_txn, NULL, memory_order_acquire);
    if (t == NULL)
        return NULL;
    if (t->c == atomic_load(&db->cur) && cl_conn_is_current(t->c))
        return t;
    txn_spare_free(t); /* the coordinator restarted, or the handle re-attached */
    return NULL;
}

void txn_spare_free(dotdb_txn *t)
{
    if (t == NULL)
        return;
    cl_slot_release(t->c, t->slot);
    conn_unref(t->c);
    free(t);
}

int dotdb_txn_begin(dotdb *db, unsigned flags, dotdb_txn **out)
{
    *out = NULL;
    if (flags & ~(DOTDB_TXN_READONLY | DOTDB_TXN_SERIALIZABLE))
        return cl_fail(db, DOTDB_EINVAL, "unknown transaction flags 0x%x", flags);
    dotdb_txn *t = take_spare(db);
    if (t != NULL) {
        conn *c = t->c;
        int slot = t->slot;
        memset(t, 0, sizeof *t);
        t->c = c;
        t->slot = slot;
        t->lsn = cl_snap_resume(c, slot);
    } else {
        if ((t = calloc(1, sizeof *t)) == NULL)
            return cl_fail(db, DOTDB_ENOMEM, "out of memory");
        int rc = cl_conn_get(db, &t->c);
        if (rc == 0)
            rc = cl_snap_begin(db, t->c, &t->slot, &t->lsn);
        if (rc != 0) {
            if (t->c)
                conn_unref(t->c);
            free(t);
            return rc;
        }
    }
    t->db = db;
    t->flags = flags;
    *out = t;
    return 0;
}

uint64_t dotdb_txn_lsn(const dotdb_txn *txn) { return txn->lsn; }

static txn_write *find_write(dotdb_txn *t, const char *coll, const char *id)
{
    for (size_t i = t->n_w; i-- > 0;)
        if (strcmp(t->w[i].coll, coll) == 0 && strcmp(t->w[i].id, id) == 0)
            return &t->w[i];
    return NULL;
}

static int remember_read(dotdb_txn *t, const char *coll, const char *id)
{
    if (!(t->flags & DOTDB_TXN_SERIALIZABLE))
        return 0;
    if (t->n_r == t->cap_r) {
        size_t cap = t->cap_r ? t->cap_r * 2 : 8;
        txn_read *p = realloc(t->r, cap * sizeof *p);
        if (p == NULL)
            return cl_fail(t->db, DOTDB_ENOMEM, "out of memory");
        t->r = p;
        t->cap_r = cap;
    }
    snprintf(t->r[t->n_r].coll, sizeof t->r[0].coll, "%s", coll);
    snprintf(t->r[t->n_r].id, sizeof t->r[0].id, "%s", id);
    t->n_r++;
    return 0;
}

int dotdb_txn_get(dotdb_txn *txn, const char *coll, const char *id, dotdb_doc *out)
{
    memset(out, 0, sizeof *out);
    dotdb *db = txn->db;
    int rc = cl_check_name(db, coll);
    if (rc == 0)
        rc = cl_check_id(db, id);
    if (rc != 0)
        return rc;
    txn_write *w = find_write(txn, coll, id);
    if (w) {
        if (w->kind == BOP_DELETE)
            return cl_fail(db, DOTDB_ENOTFOUND, "document \"%s\" was deleted in this transaction", id);
        out->data = w->doc;
        out->len = w->doc_len;
        out->id = (const char *)w->doc + w->id_pos;
        out->id_len = w->id_len;
        return 0;
    }
    conn *c = txn->c;
    const shm_cat_entry *ce = snap_find_coll(c->base, txn->lsn, coll, strlen(coll));
    const shm_version *v = ce ? snap_lookup(c->base, (const shm_coll *)(c->base + ce->coll_off),
                                            txn->lsn, id, strlen(id))
                              : NULL;
    if ((rc = cl_snap_check(db, c, txn->slot, txn->lsn)) != 0)
        return rc;
    if ((rc = remember_read(txn, coll, id)) != 0)
        return rc;
    if (ce == NULL)
        return cl_fail(db, DOTDB_ENOCOLL, "collection \"%s\" does not exist", coll);
    if (v == NULL)
        return cl_fail(db, DOTDB_ENOTFOUND, "document \"%s\" not found in collection \"%s\"", id, coll);
    view_of(v, out);
    return 0;
}

static int add_write(dotdb_txn *t, uint8_t kind, const char *coll, const char *id,
                     uint8_t *doc, size_t doc_len, size_t id_pos)
{
    if (t->flags & DOTDB_TXN_READONLY) {
        free(doc);
        return cl_fail(t->db, DOTDB_EINVAL, "the transaction is read-only");
    }
    if (t->n_w == t->cap_w) {
        size_t cap = t->cap_w ? t->cap_w * 2 : 8;
        txn_write *p = realloc(t->w, cap * sizeof *p);
        if (p == NULL) {
            free(doc);
            return cl_fail(t->db, DOTDB_ENOMEM, "out of memory");
        }
        t->w = p;
        t->cap_w = cap;
    }
    txn_write *w = &t->w[t->n_w++];
    w->kind = kind;
    snprintf(w->coll, sizeof w->coll, "%s", coll);
    w->coll_len = strlen(coll);
    snprintf(w->id, sizeof w->id, "%s", id);
    w->id_len = strlen(id);
    w->doc = doc;
    w->doc_len = doc_len;
    w->id_pos = id_pos;
    return 0;
}

int dotdb_txn_put(dotdb_txn *txn, const char *coll, const char *json, size_t len, char *id_out)
{
    dotdb *db = txn->db;
    char idb[DOTDB_ID_MAX + 1];
    if (id_out)
        id_out[0] = 0;
    int rc = cl_check_name(db, coll);
    if (rc != 0)
        return rc;
    dbuf doc;
    dbuf_init(&doc);
    if ((rc = cl_encode_doc(db, txn->c, json, len, 1, &doc, idb)) != 0)
        return rc;
    const char *idp;
    size_t idl;
    char err[128];
    codec_validate_doc(doc.data, doc.len, (int)txn->c->max_depth, &idp, &idl, err, sizeof err);
    size_t id_pos = (size_t)((const uint8_t *)idp - doc.data);
    size_t n;
    uint8_t *bytes = dbuf_steal(&doc, &n);
    if ((rc = add_write(txn, BOP_PUT, coll, idb, bytes, n, id_pos)) != 0)
        return rc;
    if (id_out)
        memcpy(id_out, idb, strlen(idb) + 1);
    return 0;
}

int dotdb_txn_delete(dotdb_txn *txn, const char *coll, const char *id)
{
    int rc = cl_check_name(txn->db, coll);
    if (rc == 0)
        rc = cl_check_id(txn->db, id);
    return rc ? rc : add_write(txn, BOP_DELETE, coll, id, NULL, 0, 0);
}

static void txn_free(dotdb_txn *t)
{
    cl_snap_pause(t->c, t->slot);
    for (size_t i = 0; i < t->n_w; i++)
        free(t->w[i].doc);
    free(t->w);
    free(t->r);
    t->w = NULL;
    t->r = NULL;
    dotdb_txn *none = NULL;
    if (!atomic_compare_exchange_strong_explicit(&t->db->spare_txn, &none, t,
                                                 memory_order_release, memory_order_relaxed))
        txn_spare_free(t); /* another thread's is kept already */
}

int dotdb_txn_commit(dotdb_txn *txn)
{
    dotdb *db = txn->db;
    if (txn->n_w == 0) {
        int rc = cl_snap_check(db, txn->c, txn->slot, txn->lsn);
        txn_free(txn);
        return rc;
    }
    dbuf b;
    size_t start;
    dbuf_init(&b);
    int rc = batch_begin(&b, &start);
    for (size_t i = 0; rc == 0 && i < txn->n_r; i++) {
        batch_op op = {.kind = BOP_CHECK, .coll = txn->r[i].coll, .coll_len = strlen(txn->r[i].coll),
                       .id = txn->r[i].id, .id_len = strlen(txn->r[i].id)};
        rc = batch_add(&b, start, &op);
    }
    for (size_t i = 0; rc == 0 && i < txn->n_w; i++) {
        txn_write *w = &txn->w[i];
        batch_op op = {.kind = w->kind, .coll = w->coll, .coll_len = w->coll_len,
                       .id = w->kind == BOP_DELETE ? w->id : NULL,
                       .id_len = w->kind == BOP_DELETE ? w->id_len : 0, .doc = w->doc,
                       .doc_len = w->doc_len};
        rc = batch_add(&b, start, &op);
    }
    uint64_t snap = txn->lsn;
    txn_free(txn);
    rc = rc ? cl_fail(db, rc, "out of memory") : send_batch(db, &b, snap);
    dbuf_free(&b);
    return rc;
}

void dotdb_txn_abort(dotdb_txn *txn)
{
    if (txn)
        txn_free(txn);
}

/* ---- views ---- */

int dotdb_doc_get(const dotdb_doc *doc, const char *path, dotdb_value *out)
{
    memset(out, 0, sizeof *out);
    codec_val v = {doc->data, doc->len}, r;
    if (path == NULL)
        return DOTDB_EINVAL;
    if (!codec_get_path(v, path, strlen(path), &r)) {
        out->type = DOTDB_T_MISSING;
        return 0;
    }
    codec_to_value(r, out);
    return 0;
}

int dotdb_doc_to_json(const dotdb_doc *doc, char **json_out, size_t *len_out)
{
    *json_out = NULL;
    dbuf b;
    dbuf_init(&b);
    int rc = codec_to_json((codec_val){doc->data, doc->len}, &b);
    if (rc != 0) {
        dbuf_free(&b);
        return rc;
    }
    return dbuf_to_cstr(&b, json_out, len_out);
}
