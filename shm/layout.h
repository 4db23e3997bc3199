/*
 * layout.h - the byte layout of DotDB's shared-memory objects.
 *
 * Two kinds of object, both anonymous memfds handed to clients over the
 * coordinator's Unix socket (SCM_RIGHTS):
 *
 * 1. The DATA object: written only by the coordinator (I1).  The
 *    coordinator seals it with F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE before
 *    it hands it out, so the kernel refuses clients a writable mapping,
 *    write(2) and ftruncate-to-shrink.  Everybody maps `max_size` bytes of
 *    virtual space once (MAP_NORESERVE); the coordinator backs the first
 *    `size` bytes with ftruncate + posix_fallocate and grows them before it
 *    publishes any offset past the old end (I4), so the mapping never moves
 *    and a reader never touches an unbacked page.
 *
 *      0            shm_header (one page)
 *      4096 ...     blocks handed out by the coordinator's allocator:
 *                   catalogs, collections, hash tables, versions
 *
 *    Every reference is a byte offset from the start of the object (I2);
 *    0 means "none".  Blocks are 16-byte aligned.
 *
 * 2. A READER SLOT page per connection (8 KiB), shared read-write between
 *    one client and the coordinator: the client publishes its snapshot LSNs
 *    there, the coordinator reads them to decide what it may free (I7).  A
 *    client can only hurt itself through its own page: garbage there at
 *    worst pins old versions until its connection closes (I8).
 *
 * Publication protocol (see docs/ARCHITECTURE.md for the proof sketch):
 *   the coordinator applies a batch with LSN x by creating new versions
 *   stamped begin_lsn = x and linking them (release stores) into the hash
 *   tables; versions with begin_lsn > commit_lsn are invisible.  After the
 *   WAL write (and fdatasync per sync_mode) it stores commit_lsn = x
 *   (seq_cst).  A reader loads commit_lsn (acquire), stores it into its
 *   slot (seq_cst), reloads commit_lsn (seq_cst) and retries until the two
 *   agree; then everything reachable is stable until the slot is cleared.
 *
 * Reclamation: memory unlinked or superseded while the published LSN is P
 *   is retired with tag P; it is freed once commit_lsn > P and every reader
 *   slot is either 0 or > P.
 */
#ifndef DOTDB_LAYOUT_H
#define DOTDB_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC 0x314D48534244544FULL /* "OTDBSHM1" read little endian */
#define SHM_LAYOUT_VERSION 1u
#define SHM_HEADER_SIZE 4096u
#define SHM_ALIGN 16u

#define SHM_STATE_STARTING 0u
#define SHM_STATE_RUNNING 1u
#define SHM_STATE_STOPPED 2u /* the coordinator exited cleanly: re-attach */

/* The header at offset 0 of the data object. */
typedef struct shm_header {
    uint64_t magic;           /* SHM_MAGIC; written once before sealing */
    uint32_t layout_version;  /* SHM_LAYOUT_VERSION */
    uint32_t header_size;     /* SHM_HEADER_SIZE */
    uint64_t epoch;           /* changes at every coordinator start (I5) */
    uint64_t max_size;        /* bytes of virtual space to map */
    uint64_t coordinator_pid;
    _Atomic uint64_t size;    /* backed bytes; coordinator (release) */
    _Atomic uint64_t commit_lsn; /* published LSN; coordinator seq_cst store,
                                    readers acquire/seq_cst load (read protocol) */
    _Atomic uint64_t catalog_off; /* current catalog; coordinator release store
                                     before commit_lsn, readers acquire */
    _Atomic uint32_t state;   /* SHM_STATE_*; coordinator release */
    uint32_t reserved0;
    _Atomic uint64_t max_document_size; /* limits the client applies too */
    _Atomic uint64_t max_depth;
    uint8_t pad[SHM_HEADER_SIZE - 88];
} shm_header;
_Static_assert(sizeof(shm_header) == SHM_HEADER_SIZE, "header is one page");
_Static_assert(offsetof(shm_header, commit_lsn) == 48, "commit_lsn offset");

/*
 * Catalog: an immutable array of collection entries, replaced copy-on-write
 * (new catalog, release store of catalog_off, old one retired).  An entry is
 * visible to snapshot L when create_lsn <= L < drop_lsn, so a snapshot sees
 * exactly the collections that existed at L even when it reads a newer
 * catalog.
 */
typedef struct shm_cat_entry {
    char name[64];            /* NUL-padded, name_len bytes used */
    uint32_t name_len;
    uint32_t reserved;
    uint64_t create_lsn;
    uint64_t drop_lsn;        /* UINT64_MAX while live */
    uint64_t coll_off;        /* shm_coll */
} shm_cat_entry;
_Static_assert(sizeof(shm_cat_entry) == 96, "catalog entry size");

typedef struct shm_catalog {
    uint32_t count;
    uint32_t reserved;
    uint64_t alloc_size;      /* bytes of this block */
    shm_cat_entry entries[];  /* count entries */
} shm_catalog;

/* One collection: the root of its primary index on "id". */
typedef struct shm_coll {
    _Atomic uint64_t table_off;  /* current shm_table; coordinator release,
                                    readers acquire */
    _Atomic uint64_t live_docs;  /* documents at the newest applied LSN (stats) */
    _Atomic uint64_t live_bytes; /* bytes of their encodings (stats) */
    _Atomic uint64_t versions;   /* versions allocated and not yet freed (stats) */
    uint64_t create_lsn;
    _Atomic uint64_t modified_lsn; /* LSN of the last applied change (may be
                                      unpublished or undone: an upper bound);
                                      coordinator relaxed, its checkpoint
                                      thread relaxed (the job hand-off orders it) */
    uint64_t reserved[2];
} shm_coll;
_Static_assert(sizeof(shm_coll) == 64, "collection size");

/*
 * Primary hash table: open addressing with linear probing over nslots
 * (a power of two) 64-bit words.  A word is 0 (empty: ends a probe), 1
 * (deleted: keep probing) or (tag << 40 | off) where off is the offset of
 * the newest version of a document (always a multiple of 16, < 2^40) and
 * tag the top 24 bits of the id's hash, so most mismatches cost no extra
 * cache miss.  The coordinator is the only writer: it fills a word with a
 * release store after the version is complete; a grow builds a new table,
 * publishes it through shm_coll.table_off and retires the old one, which
 * stays readable for the snapshots that still hold it.
 */
typedef struct shm_table {
    uint64_t nslots;
    uint64_t used;            /* non-empty words (incl. deleted); coordinator only */
    uint64_t alloc_size;
    uint64_t reserved;
    _Atomic uint64_t slots[];
} shm_table;

#define TABLE_EMPTY 0ull
#define TABLE_DELETED 1ull
#define TABLE_OFF_BITS 40
#define TABLE_OFF_MASK ((1ull << TABLE_OFF_BITS) - 1)
#define TABLE_TAG(h) ((h) >> TABLE_OFF_BITS)

/*
 * A version of one document, immutable once linked except for end_lsn and
 * prev_off.  Chains run newest first through prev_off.  The visible version
 * for snapshot L is the first with begin_lsn <= L; if it is a tombstone the
 * document does not exist at L.  The data area holds the binary document
 * (doc_len bytes, id at data[id_pos..id_pos+id_len)); a tombstone holds
 * only the id (id_pos = 0, doc_len = 0).
 */
typedef struct shm_version {
    uint64_t begin_lsn;
    _Atomic uint64_t end_lsn;  /* UINT64_MAX while newest; coordinator release */
    _Atomic uint64_t prev_off; /* older version or 0; coordinator release,
                                  readers acquire */
    uint32_t doc_len;
    uint32_t alloc_size;
    uint32_t id_pos;
    uint16_t id_len;
    uint8_t flags;             /* VER_TOMBSTONE */
    uint8_t reserved;
    uint8_t data[];
} shm_version;
_Static_assert(sizeof(shm_version) == 40, "version header size");

#define VER_TOMBSTONE 0x1u

/* ---- Reader slot page ---- */

#define RDR_SLOTS 64u
#define RDR_PAGE_SIZE 8192u
#define RDR_MAGIC 0x31524441455244ULL /* "DREADR1" */

typedef struct rdr_slot {
    _Atomic uint64_t snapshot_lsn; /* 0 = idle; owner seq_cst store, coordinator
                                      seq_cst load (reclaim scan) */
    _Atomic uint64_t begin_seq;    /* owner adds 1 at every begin (relaxed store
                                      before snapshot_lsn): with snapshot_lsn it
                                      tells one snapshot from the next; the
                                      coordinator times ages itself */
    _Atomic uint64_t ousted_lsn;   /* coordinator sets it to the slot's LSN when
                                      max_snapshot_age expired it; owner reads,
                                      and clears it (relaxed) when it begins a
                                      snapshot */
    uint64_t reserved[5];
} rdr_slot;
_Static_assert(sizeof(rdr_slot) == 64, "one cache line per slot");

typedef struct rdr_page {
    uint64_t magic;            /* coordinator, before handing out */
    uint32_t nslots;
    uint32_t conn_id;
    uint64_t pid;              /* client pid as seen by SO_PEERCRED */
    uint64_t reserved[5];
    rdr_slot slots[RDR_SLOTS];
} rdr_page;
/* The page is the client's to write (a memfd sealed against resizing):
 * the coordinator trusts nothing in it but uses it only to hold versions
 * back, so garbage there pins old versions of this connection at worst,
 * until it closes (I1, I8). */
_Static_assert(sizeof(rdr_page) <= RDR_PAGE_SIZE, "slot page fits");

#endif /* DOTDB_LAYOUT_H */
