/*
 * client.h - internals of libdotdb-shm shared by its files (not installed).
 *
 * A handle (struct dotdb) owns a current attachment (struct conn): the
 * socket to the coordinator, the read-only mapping of the data object, the
 * connection's reader-slot page and the live word of DIR/dotdb.lock.
 * Transactions and cursors hold a reference to the conn they began on, so
 * a re-attach (coordinator restarted) never unmaps memory a snapshot is
 * still reading; the old conn goes when its last reference does.
 */
#ifndef DOTDB_CLIENT_H
#define DOTDB_CLIENT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "codec.h"
#include "dotdb.h"
#include "layout.h"
#include "livefile.h"
#include "wire.h"

typedef struct conn {
    int fd;
    uint8_t *base;            /* data object, PROT_READ */
    size_t map_size;
    rdr_page *slots;          /* our reader slots, read-write */
    live_word *live;          /* DIR/dotdb.lock, PROT_READ */
    uint64_t epoch;
    _Atomic int broken;       /* the socket failed: re-attach on next use */
    _Atomic uint64_t slot_used; /* bitmap of claimed slots */
    _Atomic int refs;         /* the handle's own + one per txn/cursor */
    uint32_t next_req;
    uint64_t max_doc;
    uint64_t max_depth;
} conn;

struct dotdb {
    char dir[PATH_MAX];
    dotdb_options opts;
    char coord_path[PATH_MAX];
    pthread_mutex_t mu;       /* socket I/O, re-attach */
    _Atomic(conn *) cur;
    _Atomic int active;       /* threads between loading cur and taking a ref */
    char errmsg[1024];
    uint32_t rnd;             /* per-handle random part of generated ids */
    int spin_us;              /* reply polling budget, resolved (0: none) */
    _Atomic uint64_t id_clock; /* ms << 16 | counter */
    _Atomic(struct dotdb_txn *) spare_txn; /* one ended transaction, with its
                                            * connection reference and idle
                                            * reader slot, for the next
                                            * dotdb_txn_begin (lib/read.c) */
};

/* Set db->errmsg (printf-style) and return rc. */
int cl_fail(dotdb *db, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Take a reference to a usable conn (re-attaching first if the
 * coordinator restarted or stopped).  Release with conn_unref. */
int cl_conn_get(dotdb *db, conn **out);
void conn_unref(conn *c);

/* Send one request and wait for its response (under db->mu).  On a
 * failed status the payload is the message, copied into db->errmsg.
 * resp may be NULL; *lsn_out (may be NULL) gets the response LSN. */
int cl_call(dotdb *db, uint16_t op, uint64_t lsn, const void *payload, size_t len, dbuf *resp,
            uint64_t *lsn_out);

/*
 * One request sent in several frames (a BATCH in fragments, wire.h): the
 * handle's lock is held from cl_stream_begin to cl_stream_end or
 * cl_stream_abort, so no other request of this handle can slip between
 * the fragments, and every frame goes on the same connection (never
 * re-attached half-way).  cl_stream_part sends one fragment (WIRE_F_MORE)
 * without waiting; cl_stream_end sends the last frame and waits for the
 * answer to the whole request; cl_stream_abort abandons what was sent.
 */
typedef struct cl_stream {
    dotdb *db;
    conn *c;
    int sent; /* a fragment went out */
} cl_stream;
int cl_stream_begin(dotdb *db, cl_stream *st);
int cl_stream_part(cl_stream *st, uint16_t op, const void *payload, size_t len);
int cl_stream_end(cl_stream *st, uint16_t op, uint64_t lsn, const void *payload, size_t len,
                  dbuf *resp, uint64_t *lsn_out);
void cl_stream_abort(cl_stream *st, uint16_t op);

/* Snapshots: claim a slot of c and publish a snapshot in it. */
int cl_snap_begin(dotdb *db, conn *c, int *slot_out, uint64_t *lsn_out);
void cl_snap_end(conn *c, int slot);
/* cl_snap_end in two steps, for a slot kept claimed between snapshots:
 * end the snapshot (the slot is idle but still this caller's), and give
 * the slot back.  cl_snap_resume publishes a new snapshot in a slot kept
 * so and returns its LSN. */
void cl_snap_pause(conn *c, int slot);
void cl_slot_release(conn *c, int slot);
uint64_t cl_snap_resume(conn *c, int slot);
/* c is still the live connection to the running coordinator. */
int cl_conn_is_current(const conn *c);

/* Free a spare transaction (db->spare_txn, lib/read.c) with the slot and
 * connection reference it kept; NULL is fine. */
void txn_spare_free(struct dotdb_txn *t);
/* DOTDB_ESNAPSHOT_EXPIRED if the coordinator ousted the snapshot. */
int cl_snap_check(dotdb *db, conn *c, int slot, uint64_t lsn);

/* Generate a new id (24 lowercase hex characters + NUL) into buf. */
void cl_new_id(dotdb *db, char buf[DOTDB_ID_MAX + 1]);
/* Encode a JSON document, generating an id when it has none (gen = 1). */
int cl_encode_doc(dotdb *db, conn *c, const char *json, size_t len, int gen, dbuf *out,
                  char *id_buf);
codec_limits cl_limits(const conn *c);
/* DOTDB_EBADNAME / DOTDB_EBADID with a message when invalid, else 0. */
int cl_check_name(dotdb *db, const char *coll);
int cl_check_id(dotdb *db, const char *id);

/* Coordinator launching (launch.c). */
int cl_autostart(dotdb *db);
void cl_set_open_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* DOTDB_CLIENT_H */
