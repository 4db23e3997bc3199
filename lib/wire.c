/*
 * wire.c - frame headers and the batch encoding (see wire.h).  The decoder
 * is the coordinator's first line of defence: nothing from the socket is
 * trusted, every length is checked before it is used.
 */
#include "wire.h"

#include <stdio.h>
#include <string.h>

#include "dotdb.h"

void wire_hdr_put(uint8_t *p, const wire_hdr *h)
{
    st_u32(p, h->len);
    st_u32(p + 4, h->req_id);
    st_u16(p + 8, h->op);
    st_u16(p + 10, h->flags);
    st_u32(p + 12, (uint32_t)h->status);
    st_u64(p + 16, h->lsn);
}

void wire_hdr_get(const uint8_t *p, wire_hdr *h)
{
    h->len = ld_u32(p);
    h->req_id = ld_u32(p + 4);
    h->op = ld_u16(p + 8);
    h->flags = ld_u16(p + 10);
    h->status = (int32_t)ld_u32(p + 12);
    h->lsn = ld_u64(p + 16);
}

int batch_begin(dbuf *b, size_t *start)
{
    *start = b->len;
    return dbuf_put_u32(b, 0);
}

uint32_t batch_count(const dbuf *b, size_t start) { return ld_u32(b->data + start); }

int batch_add(dbuf *b, size_t start, const batch_op *op)
{
    if (op->coll_len > 0xffff || op->id_len > 0xffff || op->doc_len > UINT32_MAX)
        return DOTDB_EINVAL;
    uint8_t hdr[BOP_HDR_SIZE];
    hdr[0] = op->kind;
    hdr[1] = op->flags;
    st_u16(hdr + 2, (uint16_t)op->coll_len);
    st_u16(hdr + 4, (uint16_t)op->id_len);
    st_u16(hdr + 6, 0);
    st_u32(hdr + 8, (uint32_t)op->doc_len);
    int rc = dbuf_reserve(b, sizeof hdr + op->coll_len + op->id_len + op->doc_len);
    if (rc != 0)
        return rc;
    dbuf_append(b, hdr, sizeof hdr);
    dbuf_append(b, op->coll, op->coll_len);
    dbuf_append(b, op->id, op->id_len);
    dbuf_append(b, op->doc, op->doc_len);
    st_u32(b->data + start, batch_count(b, start) + 1);
    return 0;
}

int batch_put_begin(dbuf *b, const char *coll, size_t coll_len, size_t *op_start)
{
    *op_start = b->len;
    if (coll_len > 0xffff)
        return DOTDB_EINVAL;
    uint8_t hdr[BOP_HDR_SIZE] = {BOP_PUT, 0};
    st_u16(hdr + 2, (uint16_t)coll_len);
    int rc = dbuf_reserve(b, sizeof hdr + coll_len);
    if (rc != 0)
        return rc;
    dbuf_append(b, hdr, sizeof hdr);
    dbuf_append(b, coll, coll_len);
    return 0;
}

int batch_put_end(dbuf *b, size_t start, size_t op_start)
{
    uint8_t *h = b->data + op_start;
    size_t doc_len = b->len - op_start - BOP_HDR_SIZE - ld_u16(h + 2);
    if (doc_len > UINT32_MAX)
        return DOTDB_EINVAL;
    st_u32(h + 8, (uint32_t)doc_len);
    st_u32(b->data + start, batch_count(b, start) + 1);
    return 0;
}

int batch_iter_init(batch_iter *it, const uint8_t *p, size_t len, char *err, size_t errlen)
{
    if (len < 4) {
        snprintf(err, errlen, "batch of %zu bytes is too short", len);
        return DOTDB_EPROTO;
    }
    it->p = p;
    it->len = len;
    it->pos = 4;
    it->nops = ld_u32(p);
    it->done = 0;
    /* Each op takes at least its header: a huge count cannot make us loop
     * or allocate past what the bytes can hold. */
    if (it->nops > (len - 4) / BOP_HDR_SIZE) {
        snprintf(err, errlen, "batch declares %u operations in %zu bytes", it->nops, len);
        return DOTDB_EPROTO;
    }
    return 0;
}

int batch_next(batch_iter *it, batch_op *op, char *err, size_t errlen)
{
    if (it->done == it->nops) {
        if (it->pos != it->len) {
            snprintf(err, errlen, "%zu trailing bytes after the batch", it->len - it->pos);
            return DOTDB_EPROTO;
        }
        return 0;
    }
    if (it->len - it->pos < BOP_HDR_SIZE) {
        snprintf(err, errlen, "operation %u is cut off at byte %zu", it->done, it->pos);
        return DOTDB_EPROTO;
    }
    const uint8_t *h = it->p + it->pos;
    op->kind = h[0];
    op->flags = h[1];
    op->coll_len = ld_u16(h + 2);
    op->id_len = ld_u16(h + 4);
    op->doc_len = ld_u32(h + 8);
    size_t body = op->coll_len + op->id_len + (size_t)op->doc_len;
    if (body > it->len - it->pos - BOP_HDR_SIZE) {
        snprintf(err, errlen, "operation %u at byte %zu declares %zu bytes past the end",
                 it->done, it->pos, body);
        return DOTDB_EPROTO;
    }
    if (op->kind < BOP_PUT || op->kind > BOP_KIND_MAX) {
        snprintf(err, errlen, "operation %u has unknown kind %u", it->done, op->kind);
        return DOTDB_EPROTO;
    }
    const uint8_t *q = h + BOP_HDR_SIZE;
    op->coll = (const char *)q;
    op->id = (const char *)q + op->coll_len;
    op->doc = q + op->coll_len + op->id_len;
    if (op->flags & ~(bop_is_derived(op->kind) ? BOP_F_UPSERT : 0u)) {
        snprintf(err, errlen, "operation %u has unknown flags 0x%x", it->done, op->flags);
        return DOTDB_EPROTO;
    }
    it->pos += BOP_HDR_SIZE + body;
    it->done++;
    return 1;
}

/* 1: a character a name may have anywhere; 2: not as its first. */
static const uint8_t name_chars[256] = {
    ['-'] = 2, ['.'] = 2, ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['_'] = 1, ['a' ... 'z'] = 1,
};

int name_is_valid(const char *name, size_t len)
{
    if (len == 0 || len > DOTDB_COLL_NAME_MAX || name_chars[(unsigned char)name[0]] != 1)
        return 0;
    for (size_t i = 1; i < len; i++)
        if (name_chars[(unsigned char)name[i]] == 0)
            return 0;
    return 1;
}

size_t name_cstr_len(const char *name)
{
    if (name == NULL || name_chars[(unsigned char)name[0]] != 1)
        return 0;
    for (size_t i = 1;; i++) {
        if (name[i] == '\0')
            return i;
        if (i == DOTDB_COLL_NAME_MAX || name_chars[(unsigned char)name[i]] == 0)
            return 0;
    }
}
