/*
 * buf.h - a growable byte buffer (caller-owned struct, heap-owned bytes).
 *
 * dbuf_init() leaves an empty buffer that owns nothing; every append grows
 * the heap block as needed and returns DOTDB_ENOMEM on failure, leaving the
 * existing contents intact.  dbuf_free() releases the block and may be called
 * on an initialised buffer any number of times.
 */
#ifndef DOTDB_BUF_H
#define DOTDB_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct dbuf {
    uint8_t *data; /* owned; NULL while cap == 0 */
    size_t len;
    size_t cap;
} dbuf;

void dbuf_init(dbuf *b);
void dbuf_free(dbuf *b);
/* Make room for at least `extra` more bytes.  0 or DOTDB_ENOMEM. */
int dbuf_reserve(dbuf *b, size_t extra);
int dbuf_append(dbuf *b, const void *p, size_t n);
int dbuf_putc(dbuf *b, uint8_t c);
int dbuf_put_u16(dbuf *b, uint16_t v); /* little endian */
int dbuf_put_u32(dbuf *b, uint32_t v); /* little endian */
int dbuf_put_u64(dbuf *b, uint64_t v); /* little endian */
/* Hand the bytes to the caller (who frees them with free()); b becomes empty. */
uint8_t *dbuf_steal(dbuf *b, size_t *len_out);
/* NUL-terminate b and hand it to the caller as a C string (free() it);
 * *len_out (may be NULL) gets the length without the NUL.  On
 * DOTDB_ENOMEM b is freed and *out is NULL. */
int dbuf_to_cstr(dbuf *b, char **out, size_t *len_out);

/* Format into a caller's fixed buffer (an error message), cutting what does
 * not fit; err may be NULL or errlen 0 (nothing written). */
void msgf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Little-endian loads from possibly unaligned memory. */
static inline uint16_t ld_u16(const void *p)
{
    uint16_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
static inline uint32_t ld_u32(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
static inline uint64_t ld_u64(const void *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
static inline void st_u16(void *p, uint16_t v) { __builtin_memcpy(p, &v, sizeof v); }
static inline void st_u32(void *p, uint32_t v) { __builtin_memcpy(p, &v, sizeof v); }
static inline void st_u64(void *p, uint64_t v) { __builtin_memcpy(p, &v, sizeof v); }

#endif /* DOTDB_BUF_H */
