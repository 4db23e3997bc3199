/*
 * fragments.h - a BATCH that arrives in several frames (WIRE_F_MORE).
 *
 * A client with a large batch (dotdb_put_many) sends it in fragments while
 * it is still encoding the rest: each fragment is a batch encoding of the
 * next operations (wire.h), flagged WIRE_F_MORE, and the frame that ends
 * the batch carries no flag.  The coordinator checks each fragment's
 * documents as it arrives (engine_check_docs: the cost of I9 overlaps the
 * client's encoding on another core) and appends its operations to the
 * session's assembly; the last frame's operations are checked and
 * appended too, and the assembled batch is then applied exactly like a
 * batch sent in one frame: one LSN, all or nothing, one WAL record that
 * holds the assembled batch.  A batch of plain puts may be applied as its
 * fragments come, invisibly, at the LSN it will have (server.c,
 * apply_ahead); anything else the coordinator applies first undoes that,
 * and the batch is then applied whole at its last frame: other sessions'
 * batches go on meanwhile and a client that stops half-way leaves no
 * trace (the assembly is freed, and what it applied undone, with its
 * session).
 *
 * Fragments get no response; the last frame's response answers for the
 * whole batch.  After a bad fragment the rest are dropped unread and the
 * last frame is answered with the first error.  A last frame with no
 * operations abandons the batch (the client could not encode all of it):
 * answered with DOTDB_EINVAL.  The assembly may not exceed max_bytes (the
 * coordinator's frame limit).
 */
#ifndef DOTDB_FRAGMENTS_H
#define DOTDB_FRAGMENTS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "engine.h"

typedef struct frag_batch {
    dbuf buf;        /* u32 nops, then the operations of the fragments so far */
    dbuf meta;       /* engine_doc_meta of each of those operations */
    uint32_t nops;
    int active;      /* a fragment arrived and the batch has not ended */
    int ahead;       /* its fragments are applied as they come (server.c): 1
                      * yes, -1 not this batch, 0 not decided yet */
    int status;      /* the first error (0: none) */
    char err[512];
} frag_batch;

void frag_init(frag_batch *f);
void frag_free(frag_batch *f);

/* A frame with WIRE_F_MORE: check the fragment p[0..len) and add it. */
void frag_add(frag_batch *f, engine *e, const uint8_t *p, size_t len, size_t max_bytes);

/* The frame that ends an active batch: check and add it, then return 0
 * with the assembled batch in *batch / *batch_len (valid until
 * frag_reset), or the error code with the message in f->err. */
int frag_finish(frag_batch *f, engine *e, const uint8_t *p, size_t len, size_t max_bytes,
                const uint8_t **batch, size_t *batch_len);

/* Ready for the next batch (keeps a buffer of up to a few MiB). */
void frag_reset(frag_batch *f);

#endif /* DOTDB_FRAGMENTS_H */
