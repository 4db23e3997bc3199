/*
 * wire.h - DotDB's wire protocol and batch encoding.
 *
 * Frames over a SOCK_STREAM Unix socket, both directions, little endian:
 *
 *   0  len      u32  payload bytes that follow the 24-byte header
 *   4  req_id   u32  chosen by the client, echoed in the response
 *   8  op       u16  WIRE_OP_*
 *   10 flags    u16  WIRE_F_* (requests), 0 (responses)
 *   12 status   i32  responses: DOTDB_OK or a DOTDB_E* code; requests: 0
 *   16 lsn      u64  requests: the snapshot LSN of an optimistic batch (0:
 *                    none); responses: the commit LSN the request produced
 *                    or observed
 *   24 payload
 *
 * A failed response's payload is the error message (UTF-8, no NUL).
 * The first request on a connection must be HELLO; the coordinator checks
 * the peer's credentials before it answers, and the HELLO response carries
 * two descriptors (SCM_RIGHTS): the sealed data object and the
 * connection's reader-slot page.  Clients may pipeline requests; responses
 * come back in request order.
 *
 * HELLO request:  u32 protocol version, u32 layout version, u64 pid
 * HELLO response: u64 epoch, u64 max_size, u32 conn_id, u32 nslots,
 *                 u64 max_document_size, u64 max_depth
 * BATCH request:  a batch (below); response: the batch's LSN.  With flag
 *                 WIRE_F_MORE the frame is a fragment of a larger batch
 *                 that goes on in the next BATCH frame of the connection:
 *                 no response; the frame without the flag ends the batch
 *                 and its response answers for all of it, applied as one
 *                 batch (coordinator/fragments.h).  An ending frame with
 *                 no operations abandons the batch.
 * STATS request:  a collection name (may be empty); response: JSON text.
 *
 * Batch (also the payload of a WAL record, so replay applies exactly what
 * was acknowledged):
 *   u32 nops, then nops times:
 *   0  kind     u8   BOP_*
 *   1  flags    u8   BOP_F_* (0 for most kinds)
 *   2  coll_len u16  1..64
 *   4  id_len   u16  0..255
 *   6  reserved u16  0
 *   8  doc_len  u32  bytes of binary document (BOP_PUT / BOP_UPDATE)
 *   12 coll, id, doc bytes
 */
#ifndef DOTDB_WIRE_H
#define DOTDB_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define WIRE_HDR_SIZE 24u
#define WIRE_MAX_FRAME (1u << 30)

enum wire_op {
    WIRE_OP_HELLO = 1,
    WIRE_OP_BATCH = 2,
    WIRE_OP_STATS = 3,
    WIRE_OP_PING = 4,
    WIRE_OP_CHECKPOINT = 5, /* u32 flags, optional collection name -> JSON summary */
    WIRE_OP_BACKUP = 6,     /* absolute destination directory -> JSON summary */
};
#define WIRE_CKPT_COMPACT 1u  /* CHECKPOINT flag: rewrite unchanged collections too */

#define WIRE_F_MORE 0x0001u /* BATCH request: a fragment, more of the batch follows */

typedef struct wire_hdr {
    uint32_t len;
    uint32_t req_id;
    uint16_t op;
    uint16_t flags;
    int32_t status;
    uint64_t lsn;
} wire_hdr;

enum batch_kind {
    BOP_PUT = 1,         /* insert or replace; creates the collection if needed */
    BOP_UPDATE = 2,      /* replace an existing document */
    BOP_DELETE = 3,      /* delete an existing document */
    BOP_CREATE_COLL = 4,
    BOP_DROP_COLL = 5,
    BOP_CHECK = 6,       /* optimistic read check: unchanged since the snapshot */
    /* Derived operations: the coordinator resolves them against the
     * current state into PUT / DELETE operations, and the WAL records the
     * resolved batch, never these (replay needs no query evaluation and
     * $currentDate replays the time that was acknowledged). */
    BOP_MODIFY = 7,      /* id; doc = encoded update (replacement or operators) */
    BOP_UPDATE_MANY = 8, /* id = id for an upserted document (may be empty);
                            doc = u32 filter length, filter, update (encoded) */
    BOP_DELETE_MANY = 9, /* doc = encoded filter */
};

#define BOP_F_UPSERT 0x01u /* BOP_MODIFY, BOP_UPDATE_MANY: insert when nothing matches */
#define BOP_KIND_MAX BOP_DELETE_MANY

/* 1 when ops of this kind are resolved by the coordinator. */
static inline int bop_is_derived(uint8_t kind)
{
    return kind == BOP_MODIFY || kind == BOP_UPDATE_MANY || kind == BOP_DELETE_MANY;
}

/*
 * The response to a BATCH that held derived operations carries, for each
 * of them in order: u64 matched, u64 modified (deleted, for
 * BOP_DELETE_MANY), u16 upserted id length (0: nothing upserted), id
 * bytes.  Other batches have an empty response payload.
 */

#define BOP_HDR_SIZE 12u

typedef struct batch_op {
    uint8_t kind;
    uint8_t flags;
    const char *coll;
    size_t coll_len;
    const char *id;
    size_t id_len;
    const uint8_t *doc;
    size_t doc_len;
} batch_op;

/* Encode / decode the 24-byte header. */
void wire_hdr_put(uint8_t *p, const wire_hdr *h);
void wire_hdr_get(const uint8_t *p, wire_hdr *h);

/* Start a batch in b (appends the op count placeholder; b is caller-owned). */
int batch_begin(dbuf *b, size_t *start);
/* Append one op; bumps the count at b->data + start. */
int batch_add(dbuf *b, size_t start, const batch_op *op);
/* Append a PUT op into `coll` whose document the caller then appends to b
 * itself (encoding straight into the batch, no copy); *op_start receives
 * where the op begins.  batch_put_end sets the document's length from
 * b->len and bumps the count.  On a failed encoding, b->len = *op_start
 * drops the op. */
int batch_put_begin(dbuf *b, const char *coll, size_t coll_len, size_t *op_start);
int batch_put_end(dbuf *b, size_t start, size_t op_start);
/* Number of ops so far. */
uint32_t batch_count(const dbuf *b, size_t start);

/* Iterator over an untrusted batch: every length is checked against the
 * buffer (I9).  batch_next returns 1 with *op filled, 0 at the end, or
 * DOTDB_EPROTO with a message in err for a malformed batch. */
typedef struct batch_iter {
    const uint8_t *p;
    size_t len;
    size_t pos;
    uint32_t nops;
    uint32_t done;
} batch_iter;

int batch_iter_init(batch_iter *it, const uint8_t *p, size_t len, char *err, size_t errlen);
int batch_next(batch_iter *it, batch_op *op, char *err, size_t errlen);

/* Collection name rule: ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$.  1 valid, 0 not. */
int name_is_valid(const char *name, size_t len);

/* The length of NUL-terminated `name` when it follows that rule, else 0
 * (also for NULL); reads at most DOTDB_COLL_NAME_MAX + 1 bytes. */
size_t name_cstr_len(const char *name);

#endif /* DOTDB_WIRE_H */
