/*
 * buf.c - growable byte buffer; see buf.h.
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

void dbuf_init(dbuf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void dbuf_free(dbuf *b)
{
    free(b->data);
    dbuf_init(b);
}

int dbuf_reserve(dbuf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -2; /* DOTDB_ENOMEM */
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return -2; /* DOTDB_ENOMEM */
    b->data = p;
    b->cap = cap;
    return 0;
}

int dbuf_append(dbuf *b, const void *p, size_t n)
{
    int rc = dbuf_reserve(b, n);
    if (rc != 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int dbuf_putc(dbuf *b, uint8_t c) { return dbuf_append(b, &c, 1); }
int dbuf_put_u16(dbuf *b, uint16_t v) { return dbuf_append(b, &v, sizeof v); }
int dbuf_put_u32(dbuf *b, uint32_t v) { return dbuf_append(b, &v, sizeof v); }
int dbuf_put_u64(dbuf *b, uint64_t v) { return dbuf_append(b, &v, sizeof v); }

uint8_t *dbuf_steal(dbuf *b, size_t *len_out)
{
    uint8_t *p = b->data;
    if (len_out)
        *len_out = b->len;
    dbuf_init(b);
    return p;
}

int dbuf_to_cstr(dbuf *b, char **out, size_t *len_out)
{
    *out = NULL;
    if (dbuf_putc(b, 0) != 0) {
        dbuf_free(b);
        return -2; /* DOTDB_ENOMEM */
    }
    size_t n;
    *out = (char *)dbuf_steal(b, &n);
    if (len_out)
        *len_out = n - 1;
    return 0;
}

void msgf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
