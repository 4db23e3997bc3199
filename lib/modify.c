/*
 * modify.c - writes that the coordinator resolves against the current
 * state: updates with operators ($set, $inc, ...), updates and deletes by
 * filter, upserts.  The client only encodes the JSON arguments; compiling
 * and evaluating them happens in the coordinator's write path (engine.c),
 * so a read-modify-write is atomic however many processes race on it.
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* Encode one JSON argument (filter, update) appended to out.  what names it
 * in messages.  NULL text means {} for a filter. */
static int encode_arg(dotdb *db, conn *c, const char *what, const char *json, dbuf *out)
{
    if (json == NULL)
        json = "{}";
    codec_limits lim = cl_limits(c);
    char err[512] = "";
    size_t before = out->len;
    int rc = codec_value_from_json(json, strlen(json), &lim, out, err, sizeof err);
    if (rc != 0)
        return cl_fail(db, rc, "%s: %s", what, err[0] ? err : dotdb_strerror(rc));
    if (codec_type((codec_val){out->data + before, out->len - before}) != DOTDB_T_OBJECT)
        return cl_fail(db, DOTDB_EINVAL, "%s must be a JSON object", what);
    return 0;
}

/* One derived op in a batch of its own; the reply's counts come back. */
static int call_derived(dotdb *db, const batch_op *op, uint64_t *matched, uint64_t *modified,
                        char *upserted_id)
{
    dbuf b, resp;
    size_t start;
    dbuf_init(&b);
    dbuf_init(&resp);
    int rc = batch_begin(&b, &start);
    if (rc == 0)
        rc = batch_add(&b, start, op);
    if (rc != 0)
        rc = cl_fail(db, rc, "out of memory");
    else
        rc = cl_call(db, WIRE_OP_BATCH, 0, b.data, b.len, &resp, NULL);
    if (rc == 0) {
        if (resp.len < 18 || resp.len < 18u + ld_u16(resp.data + 16) ||
            ld_u16(resp.data + 16) > DOTDB_ID_MAX) {
            rc = cl_fail(db, DOTDB_EPROTO, "malformed reply to an update (%zu bytes)", resp.len);
        } else {
            size_t idn = ld_u16(resp.data + 16);
            if (matched)
                *matched = ld_u64(resp.data);
            if (modified)
                *modified = ld_u64(resp.data + 8);
            if (upserted_id) {
                memcpy(upserted_id, resp.data + 18, idn);
                upserted_id[idn] = 0;
            }
        }
    }
    dbuf_free(&b);
    dbuf_free(&resp);
    return rc;
}

int dotdb_update_ex(dotdb *db, const char *coll, const char *id, const char *json, size_t len,
                    unsigned flags, int *upserted_out)
{
    if (upserted_out)
        *upserted_out = 0;
    int rc = cl_check_name(db, coll);
    if (rc == 0)
        rc = cl_check_id(db, id);
    if (rc == 0 && (flags & ~DOTDB_UPSERT))
        rc = cl_fail(db, DOTDB_EINVAL, "unknown update flags 0x%x", flags & ~DOTDB_UPSERT);
    if (rc != 0)
        return rc;
    conn *c;
    if ((rc = cl_conn_get(db, &c)) != 0)
        return rc;
    dbuf u;
    dbuf_init(&u);
    codec_limits lim = cl_limits(c);
    char err[512] = "";
    rc = codec_value_from_json(json ? json : "", json ? len : 0, &lim, &u, err, sizeof err);
    if (rc != 0)
        rc = cl_fail(db, rc, "update: %s", err[0] ? err : dotdb_strerror(rc));
    else if (codec_type((codec_val){u.data, u.len}) != DOTDB_T_OBJECT)
        rc = cl_fail(db, DOTDB_EINVAL, "update must be a JSON object");
    conn_unref(c);
    char upserted[DOTDB_ID_MAX + 1] = "";
    if (rc == 0) {
        batch_op op = {.kind = BOP_MODIFY, .flags = (flags & DOTDB_UPSERT) ? BOP_F_UPSERT : 0,
                       .coll = coll, .coll_len = strlen(coll), .id = id, .id_len = strlen(id),
                       .doc = u.data, .doc_len = u.len};
        rc = call_derived(db, &op, NULL, NULL, upserted);
    }
    if (rc == 0 && upserted_out)
        *upserted_out = upserted[0] != 0;
    dbuf_free(&u);
    return rc;
}

int dotdb_update_many_ex(dotdb *db, const char *coll, const char *filter_json,
                         const char *update_json, unsigned flags, uint64_t *matched_out,
                         uint64_t *modified_out, char *upserted_id_out)
{
    if (matched_out)
        *matched_out = 0;
    if (modified_out)
        *modified_out = 0;
    if (upserted_id_out)
        upserted_id_out[0] = 0;
    int rc = cl_check_name(db, coll);
    if (rc == 0 && (flags & ~DOTDB_UPSERT))
        rc = cl_fail(db, DOTDB_EINVAL, "unknown update flags 0x%x", flags & ~DOTDB_UPSERT);
    if (rc == 0 && update_json == NULL)
        rc = cl_fail(db, DOTDB_EINVAL, "update must be a JSON object");
    if (rc != 0)
        return rc;
    conn *c;
    if ((rc = cl_conn_get(db, &c)) != 0)
        return rc;
    dbuf d;
    dbuf_init(&d);
    rc = dbuf_put_u32(&d, 0);
    if (rc == 0 && (rc = encode_arg(db, c, "filter", filter_json, &d)) == 0) {
        st_u32(d.data, (uint32_t)(d.len - 4));
        rc = encode_arg(db, c, "update", update_json, &d);
    } else if (rc != 0) {
        rc = cl_fail(db, rc, "out of memory");
    }
    conn_unref(c);
    if (rc == 0) {
        char newid[DOTDB_ID_MAX + 1];
        cl_new_id(db, newid); /* used only if the upsert inserts */
        batch_op op = {.kind = BOP_UPDATE_MANY,
                       .flags = (flags & DOTDB_UPSERT) ? BOP_F_UPSERT : 0, .coll = coll,
                       .coll_len = strlen(coll), .id = newid, .id_len = strlen(newid),
                       .doc = d.data, .doc_len = d.len};
        char upserted[DOTDB_ID_MAX + 1] = "";
        rc = call_derived(db, &op, matched_out, modified_out, upserted);
        if (rc == 0 && upserted_id_out)
            memcpy(upserted_id_out, upserted, strlen(upserted) + 1);
    }
    dbuf_free(&d);
    return rc;
}

int dotdb_update_many(dotdb *db, const char *coll, const char *filter_json,
                      const char *update_json, uint64_t *matched_out, uint64_t *modified_out)
{
    return dotdb_update_many_ex(db, coll, filter_json, update_json, 0, matched_out,
                                modified_out, NULL);
}

int dotdb_delete_many(dotdb *db, const char *coll, const char *filter_json,
                      uint64_t *deleted_out)
{
    if (deleted_out)
        *deleted_out = 0;
    int rc = cl_check_name(db, coll);
    if (rc != 0)
        return rc;
    conn *c;
    if ((rc = cl_conn_get(db, &c)) != 0)
        return rc;
    dbuf f;
    dbuf_init(&f);
    rc = encode_arg(db, c, "filter", filter_json, &f);
    conn_unref(c);
    if (rc == 0) {
        batch_op op = {.kind = BOP_DELETE_MANY, .coll = coll, .coll_len = strlen(coll),
                       .doc = f.data, .doc_len = f.len};
        rc = call_derived(db, &op, NULL, deleted_out, NULL);
    }
    dbuf_free(&f);
    return rc;
}
