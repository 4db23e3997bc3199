/*
 * protocol.pml - DotDB's snapshot, publish and reclamation protocol as a
 * SPIN model (shm/readers.h, shm/snap.h, shm/region.c, coordinator/engine.c,
 * the checkpoint pin of coordinator/storage.c).  scripts/model.sh checks it
 * exhaustively, and checks that each deliberately broken variant (the -D
 * flags below) is caught with a counterexample.
 *
 * What is modelled
 *   Writer (the coordinator's loop thread), nondeterministically at every
 *   step: apply the next batch (new versions stamped begin_lsn, linked by a
 *   store of the table word; LSN 3 grows the table in the middle of the
 *   batch and deletes B; LSN 4 re-creates B), publish one or all applied
 *   batches (retire what they superseded, tagged with the LSN published
 *   until then, queue the tombstone's removal, then store commit_lsn), run
 *   a reclaim scan (load every reader slot one at a time, remove the
 *   tombstone's table word once no snapshot older than the delete is left,
 *   free retired items in FIFO order while tag < min and tag < commit_lsn,
 *   clearing the newer version's prev link first), start a checkpoint
 *   (pin = published LSN, hand the job over) and adopt a finished one
 *   (pin = 0).
 *   NR readers, each taking SNAPS snapshots: load commit_lsn, store it into
 *   its slot, reload commit_lsn and retry until they agree
 *   (publish-then-validate), then look up A and B (load table_off, load the
 *   word, walk the chain to the first version with begin_lsn <= L), then
 *   clear the slot.  A snapshot may last across any number of writer steps.
 *   A checkpoint job that reads A and B at the pinned LSN without a slot.
 *
 * Workload: LSN 1 holds A and B (begin 1); LSN 2 updates both; LSN 3
 * updates A, grows the table, deletes B; LSN 4 updates A and re-creates B.
 * So at snapshot L the visible A is the version with begin_lsn L, and B is
 * absent at L = 3 and the version with begin_lsn L otherwise.
 *
 * Properties (assertions)
 *   - no reader or checkpoint dereferences a freed version or table;
 *   - every lookup returns exactly the value of its snapshot (consistent
 *     snapshot: both keys of one batch at the same LSN, never a newer or
 *     older one, never a missing one);
 *   - no invalid end state (nobody blocks forever).
 *
 * Memory model.  SPIN interleaves whole statements: sequential consistency.
 * That is what the C code earns with its seq_cst atomics where the proof
 * needs them: the reader's slot store and commit_lsn reload, the
 * coordinator's commit_lsn store and slot-scan loads are all
 * memory_order_seq_cst, so they sit in one total order and the
 * store-buffering outcome (the reader's reload misses the new LSN *and*
 * the scan misses the reader's slot) is forbidden, exactly as here.  The
 * links (table words, table_off, prev_off) are release stores read by
 * acquire loads: a reader that sees a link sees the block it points to
 * fully written, which is what one SPIN step per store gives.  The TSO_*
 * variants show what the seq_cst is for: they give the reader's slot store
 * or the coordinator's commit_lsn store an x86 store buffer (what a plain
 * release store compiles to) and the checker then finds a reclaimed read;
 * with -DFENCE (the mfence / xchg that seq_cst compiles to) they pass.
 *
 * Variants (-D flags; scripts/model.sh)
 *   CKPT          add the checkpoint job and the pin          (must pass)
 *   NO_VALIDATE   readers skip the reload of commit_lsn        (must fail)
 *   TSO_SLOT      reader slot store buffered, no fence         (must fail)
 *   TSO_COMMIT    commit_lsn store buffered, no fence          (must fail)
 *   FENCE         with TSO_*: drain the buffer after the store (must pass)
 *   RECLAIM_LE    free when tag <= min (a slot equal to the tag ignored)
 *                                                              (must fail)
 *   IGNORE_PIN    reclaim ignores the checkpoint pin           (must fail)
 *   NR=n SNAPS=n  readers and snapshots per reader (default 2, 2)
 */

#ifndef NR
#define NR 2
#endif
#ifndef SNAPS
#define SNAPS 2
#endif

#define NK 2          /* keys: A = 0, B = 1 */
#define KA 0
#define KB 1
#define MAXLSN 4
#define GROW_LSN 3    /* this batch grows the table between its two ops */
#define DEL_LSN 3     /* this batch deletes B */
#define NV 8          /* versions: one per (LSN, key), never reused */
#define NT 2          /* tables: the first, the grown one */
#define NIL 255
#define INF 255       /* "no active snapshot" */
#define RQ 8          /* retire queue capacity (at most 7 retirements) */

#define VNODE(lsn, k) (((lsn) - 1) * NK + (k))
#define R_VERSION 0
#define R_TOMB 1
#define R_TABLE 2

/* ---- shared memory (the data object and the reader slots) ---- */
byte commit_lsn = 1;          /* an empty database publishes LSN 1 */
byte table_off = 0;           /* current table of the collection */
byte tword[NT * NK];          /* table words: head version or NIL */
bool tfreed[NT];              /* ghost: the table's memory was freed */
byte vbegin[NV];
byte vprev[NV];
bool vtomb[NV];
bool vfreed[NV];              /* ghost: the version's memory was freed */
byte slot[NR];                /* reader slots: snapshot LSN, 0 = idle */

/* ---- coordinator-private state (its heap, not shared memory) ---- */
byte applied = 1, published = 1;
byte sup[(MAXLSN + 1) * NK];  /* version superseded by (lsn, key), NIL none */
bool grew[MAXLSN + 1];        /* batch lsn replaced table 0 */
byte rq_kind[RQ], rq_idx[RQ], rq_tag[RQ], rq_aux[RQ];
byte rq_head = 0, rq_len = 0;
bool d_pending = false;       /* the deferred removal of B's tombstone */
byte d_lsn, d_node;

/* ---- checkpoint hand-off ---- */
byte ck_pin = 0;              /* storage_pin(): read by the reclaim scan */
byte ck_lsn = 0;              /* the job's LSN */
bool ck_started = false, ck_done = false;

#ifdef TSO_SLOT
byte sb_val[NR];              /* each reader's one-entry store buffer */
bool sb_full[NR];
#endif
#ifdef TSO_COMMIT
byte cb_val;                  /* the coordinator's store buffer (commit_lsn) */
bool cb_full = false;
#endif

/* The coordinator's shared stores queue behind a buffered commit_lsn store
 * (x86 keeps stores in order). */
#ifdef TSO_COMMIT
#define W_STORE_READY (!cb_full)
#else
#define W_STORE_READY true
#endif

/* ---- the reader's lookup (snap_lookup / snap_visible) ---- */
/* Look up key k at snapshot L; res = visible version or NIL. */
inline lookup(k, L, t, v, res)
{
    t = table_off;                       /* acquire load of table_off */
    atomic { assert(!tfreed[t]); v = tword[t * NK + k] } /* acquire load of the word */
    res = NIL;
    do
    :: v == NIL -> break
    :: v != NIL ->
        /* begin_lsn, then (if too new) the acquire load of prev_off: one
         * step, as begin_lsn never changes and a free before the prev load
         * is also a free before this step. */
        atomic {
            assert(!vfreed[v]);
            if
            :: vbegin[v] <= L -> res = v; break
            :: else -> v = vprev[v]
            fi
        }
    od
}

/* What snapshot L must see: A at L; B at L except absent at DEL_LSN. */
inline check(k, L, res)
{
    if
    :: k == KB && L == DEL_LSN -> assert(res == NIL || vtomb[res])
    :: else -> assert(res != NIL && !vtomb[res] && vbegin[res] == L)
    fi
}

inline read_both(L, t, v, res)
{
    lookup(KA, L, t, v, res); check(KA, L, res);
    lookup(KB, L, t, v, res); check(KB, L, res)
}

/* ---- reader slot stores (seq_cst in C) ---- */
inline slot_store(r, val)
{
#ifdef TSO_SLOT
    atomic { !sb_full[r] -> sb_val[r] = val; sb_full[r] = true };
#ifdef FENCE
    !sb_full[r]                          /* mfence / xchg: drain before the next load */
#endif
#else
    slot[r] = val
#endif
}

proctype Reader(byte r)
{
    byte L, again, t, v, res, n = 0;
    do
    :: n < SNAPS ->
        L = commit_lsn;                  /* acquire load */
        do
        :: slot_store(r, L);             /* seq_cst store */
#ifdef NO_VALIDATE
           break
#else
           again = commit_lsn;           /* seq_cst reload */
           if
           :: again == L -> break
           :: else -> L = again
           fi
#endif
        od;
        read_both(L, t, v, res);
        slot_store(r, 0);                /* release store: the snapshot ends */
        d_step { n++; L = 0; again = 0; t = 0; v = 0; res = 0 } /* dead locals: fewer states */
    :: else -> break
    od
}

#ifdef TSO_SLOT
/* The reader's store buffer drains at any moment. */
proctype SlotFlusher(byte r)
{
end:
    do
    :: atomic { sb_full[r] -> slot[r] = sb_val[r]; sb_full[r] = false }
    od
}
#endif

#ifdef TSO_COMMIT
proctype CommitFlusher()
{
end:
    do
    :: atomic { cb_full -> commit_lsn = cb_val; cb_full = false }
    od
}
#endif

#ifdef CKPT
/* The checkpoint job (worker thread): reads at the pinned LSN, no slot. */
proctype Checkpoint()
{
    byte L, t, v, res;
end:
    ck_started;
    L = ck_lsn;
    read_both(L, t, v, res);
    ck_done = true
}
#endif

/* ---- the coordinator ---- */

inline retire(kind, idx, aux)
{
    /* region_retire: tag = the LSN readers may hold now (its own latest
     * store of commit_lsn: `published`). */
    assert(rq_len < RQ);
    rq_kind[(rq_head + rq_len) % RQ] = kind;
    rq_idx[(rq_head + rq_len) % RQ] = idx;
    rq_tag[(rq_head + rq_len) % RQ] = published;
    rq_aux[(rq_head + rq_len) % RQ] = aux;
    rq_len++
}

/* link_version: a new version of key k at lsn x becomes the head. */
inline link(x, k, is_tomb, n)
{
    atomic {
        W_STORE_READY;
        n = VNODE(x, k);
        vbegin[n] = x;                   /* private until linked */
        vtomb[n] = is_tomb;
        vprev[n] = tword[table_off * NK + k];
        sup[x * NK + k] = vprev[n];
        tword[table_off * NK + k] = n    /* release store of the word */
    }
}

/* table_grow: copy the words into table 1, publish it, remember table 0. */
inline grow(x)
{
    atomic {
        W_STORE_READY;
        tword[1 * NK + KA] = tword[0 * NK + KA];
        tword[1 * NK + KB] = tword[0 * NK + KB];
        table_off = 1;                   /* release store of table_off */
        grew[x] = true
    }
}

inline apply(x, n)
{
    link(x, KA, false, n);
    if
    :: x == GROW_LSN -> grow(x)
    :: else -> skip
    fi;
    link(x, KB, (x == DEL_LSN), n);
    d_step { applied = x; n = 0 }
}

/* engine_publish(y): retire what batches published+1..y superseded, then
 * the seq_cst store of commit_lsn. */
inline publish(y, x, k)
{
    atomic {
        W_STORE_READY;
        x = published + 1;
        do
        :: x <= y ->
            k = 0;
            do
            :: k < NK ->
                if
                :: sup[x * NK + k] != NIL -> retire(R_VERSION, sup[x * NK + k], VNODE(x, k))
                :: else -> skip
                fi;
                k++
            :: else -> break
            od;
            if
            :: grew[x] -> retire(R_TABLE, 0, NIL)
            :: else -> skip
            fi;
            if
            :: x == DEL_LSN -> d_pending = true; d_lsn = x; d_node = VNODE(x, KB)
            :: else -> skip
            fi;
            x++
        :: else -> break
        od;
        published = y;
        x = 0; k = 0;
#ifdef TSO_COMMIT
        cb_val = y; cb_full = true
#else
        commit_lsn = y
#endif
    }
#if defined(TSO_COMMIT) && defined(FENCE)
    ; !cb_full
#endif
}

/* min_active_snapshot + engine_reclaim + region_reclaim. */
inline reclaim(i, min, s, it)
{
    min = INF;
    i = 0;
    do
    :: i < NR ->
        s = slot[i];                     /* seq_cst load, one slot at a time */
        if
        :: s != 0 && s < min -> min = s
        :: else -> skip
        fi;
        i++
    :: else -> break
    od;
#ifndef IGNORE_PIN
    if
    :: ck_pin != 0 && ck_pin < min -> min = ck_pin
    :: else -> skip
    fi;
#endif
    /* A deleted document's word goes once no snapshot older than the
     * delete is left (and only if the tombstone is still the head). */
    if
    :: d_pending && d_lsn <= min && d_lsn <= published ->
        atomic {
            W_STORE_READY;
            if
            :: tword[table_off * NK + KB] == d_node ->
                tword[table_off * NK + KB] = NIL; /* release store: DELETED */
                retire(R_TOMB, d_node, NIL)
            :: else -> skip
            fi;
            d_pending = false
        }
    :: else -> skip
    fi;
    /* Frees are coordinator-private (free lists in its heap); the only
     * shared store is the prev clear.  One step for the whole batch of
     * frees: a premature free is caught whichever step it is in. */
    atomic {
        W_STORE_READY;
        do
        :: rq_len > 0 &&
#ifdef RECLAIM_LE
           rq_tag[rq_head] <= min &&
#else
           rq_tag[rq_head] < min &&
#endif
           rq_tag[rq_head] < published ->
            it = rq_head;
            if
            :: rq_kind[it] == R_VERSION && vprev[rq_aux[it]] == rq_idx[it] ->
                vprev[rq_aux[it]] = NIL      /* release store */
            :: else -> skip
            fi;
            if
            :: rq_kind[it] == R_TABLE -> tfreed[rq_idx[it]] = true
            :: else -> vfreed[rq_idx[it]] = true
            fi;
            rq_head = (rq_head + 1) % RQ;
            rq_len--
        :: else -> break
        od;
        i = 0; min = 0; s = 0; it = 0    /* dead locals: fewer states */
    }
}

proctype Writer()
{
    byte n, x, y, k, i, min, s, it;
    /* Inline arguments are substituted as text: pass plain variables. */
    do
    :: applied < MAXLSN -> y = applied + 1; apply(y, n); y = 0
    :: published < applied -> y = published + 1; publish(y, x, k); y = 0
    :: published + 1 < applied -> y = applied; publish(y, x, k); y = 0
    :: reclaim(i, min, s, it)
#ifdef CKPT
    :: !ck_started ->                    /* storage.c start(): pin, then submit */
        atomic { ck_lsn = published; ck_pin = published; ck_started = true }
    :: ck_done && ck_pin != 0 -> ck_pin = 0 /* ckpt_finished() */
#endif
    :: published == MAXLSN -> break
    od
}

init {
    byte i;
    atomic {
        /* LSN 1: A and B, in table 0 */
        vbegin[VNODE(1, KA)] = 1; vprev[VNODE(1, KA)] = NIL;
        vbegin[VNODE(1, KB)] = 1; vprev[VNODE(1, KB)] = NIL;
        tword[0 * NK + KA] = VNODE(1, KA);
        tword[0 * NK + KB] = VNODE(1, KB);
        tword[1 * NK + KA] = NIL;
        tword[1 * NK + KB] = NIL;
        i = 0;
        do
        :: i < (MAXLSN + 1) * NK -> sup[i] = NIL; i++
        :: else -> break
        od;
        i = 0;
        do
        :: i < NR ->
            run Reader(i);
#ifdef TSO_SLOT
            run SlotFlusher(i);
#endif
            i++
        :: else -> break
        od;
#ifdef TSO_COMMIT
        run CommitFlusher();
#endif
#ifdef CKPT
        run Checkpoint();
#endif
        run Writer()
    }
}
