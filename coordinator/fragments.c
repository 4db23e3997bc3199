/*
 * fragments.c - assembling a batch sent in fragments; see fragments.h.
 */
#include "fragments.h"

#include <stdio.h>
#include <string.h>

#include "dotdb.h"

#define FRAG_KEEP (8u << 20) /* a larger assembly buffer is freed after its batch */

void frag_init(frag_batch *f)
{
    memset(f, 0, sizeof *f);
    dbuf_init(&f->buf);
    dbuf_init(&f->meta);
}

void frag_free(frag_batch *f)
{
    dbuf_free(&f->buf);
    dbuf_free(&f->meta);
    frag_init(f);
}

static void frag_fail(frag_batch *f, int status, const char *msg)
{
    f->status = status;
    snprintf(f->err, sizeof f->err, "%s", msg);
}

/* Check the fragment and append its operations (not its count). */
static void frag_append(frag_batch *f, engine *e, const uint8_t *p, size_t len, size_t max_bytes)
{
    char err[512];
    if (f->status != 0)
        return; /* the batch failed already: the rest is dropped unread */
    if (len < 4) {
        frag_fail(f, DOTDB_EPROTO, "batch fragment of fewer than 4 bytes");
        return;
    }
    uint32_t n = ld_u32(p);
    if (n > UINT32_MAX - f->nops || f->buf.len + len > max_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "batch in fragments exceeds the limit of %zu bytes", max_bytes);
        frag_fail(f, DOTDB_ETOOBIG, msg);
        return;
    }
    int rc = engine_check_docs(e, p, len, f->nops, &f->meta, err, sizeof err);
    if (rc != 0) {
        frag_fail(f, rc, err);
        return;
    }
    if (f->buf.len == 0 && dbuf_put_u32(&f->buf, 0) != 0) {
        frag_fail(f, DOTDB_ENOMEM, "coordinator out of memory");
        return;
    }
    if (dbuf_append(&f->buf, p + 4, len - 4) != 0) {
        frag_fail(f, DOTDB_ENOMEM, "coordinator out of memory");
        return;
    }
    f->nops += n;
}

void frag_add(frag_batch *f, engine *e, const uint8_t *p, size_t len, size_t max_bytes)
{
    f->active = 1;
    frag_append(f, e, p, len, max_bytes);
}

int frag_finish(frag_batch *f, engine *e, const uint8_t *p, size_t len, size_t max_bytes,
                const uint8_t **batch, size_t *batch_len)
{
    *batch = NULL;
    *batch_len = 0;
    if (f->status == 0 && len >= 4 && ld_u32(p) == 0)
        frag_fail(f, DOTDB_EINVAL, "the client abandoned the batch");
    frag_append(f, e, p, len, max_bytes);
    if (f->status != 0)
        return f->status;
    st_u32(f->buf.data, f->nops);
    *batch = f->buf.data;
    *batch_len = f->buf.len;
    return 0;
}

void frag_reset(frag_batch *f)
{
    f->buf.len = 0;
    f->meta.len = 0;
    f->nops = 0;
    f->active = 0;
    f->ahead = 0;
    f->status = 0;
    f->err[0] = 0;
    if (f->buf.cap > FRAG_KEEP) {
        dbuf_free(&f->buf);
        dbuf_free(&f->meta);
    }
}
