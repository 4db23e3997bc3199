/*
 * server.c - the coordinator's libev loop: listening socket, access
 * control, sessions, frames, the handshake, and group commit.
 *
 * Group commit (DESIGN §3, STYLE 18): the read callbacks validate and apply
 * each batch at once (unpublished, so invisible) and append it to the WAL
 * buffer; the prepare watcher, which libev runs once per loop turn right
 * before it would block, writes everything buffered in one write().  In
 * sync_mode full it then fdatasyncs right there, publishes every batch the
 * sync covered and acknowledges them; requests that arrived meanwhile wait
 * in their sockets and form the next group: N clients writing at once cost
 * one fdatasync, not N.  Only the loop thread is held: readers work in
 * shared memory and never wait for it.  When an fdatasync takes longer than
 * SLOW_SYNC_NS (a stalling disk) the next ones go to worker threads
 * instead, up to two in flight, reported back through ev_async, so the
 * loop keeps accepting, answering stats and applying batches meanwhile;
 * the choice is measured in docs/PERFORMANCE.md.
 *
 * Responses on a connection leave in request order: every request's
 * response is queued on its session and the queue is flushed after the
 * group is published.
 */
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dotdb.h"
#include "fragments.h"
#include "pool.h"
#include "readers.h"
#include "storage.h"
#include "wire.h"

#define READ_CHUNK (256u * 1024u)
#define SYNCS_IN_FLIGHT 2
/* An fdatasync on the loop thread slower than this sends the next
 * SLOW_SYNC_OFFLOAD ones to workers, so that a stalling disk does not
 * stall accepting, stats and timeouts with it. */
#define SLOW_SYNC_NS (20u * 1000u * 1000u)
#define SLOW_SYNC_OFFLOAD 128u
/* Longest wait for just-acknowledged writers to send their next request
 * before an fdatasync starts (gather): about one wake-up and one round
 * trip on this machine.  The loop polls for them without sleeping. */
#define GATHER_NS (100u * 1000u)
#define GATHER_MAX 64
#define MAX_OUTPUT (256u * 1024u * 1024u) /* a client that never reads is dropped */

typedef struct response {
    wire_hdr h;
    char *payload;     /* owned */
    uint64_t wait_gen; /* nonzero: waits for that checkpoint/backup generation */
} response;

typedef struct session {
    struct server *srv;
    int fd;
    ev_io rio, wio;
    dbuf in;
    dbuf out;
    size_t out_pos;
    rdr_page *slots;        /* this connection's reader slots (I8) */
    uint64_t ousted_mask;   /* slots expired by max_snapshot_age */
    /* What each ousted slot held (snapshot LSN, begin_seq), kept here and
     * not in the client's writable page: the slot is ignored while it
     * still holds exactly that snapshot. */
    uint64_t ousted_lsn[RDR_SLOTS], ousted_seq[RDR_SLOTS];
    /* Each slot's snapshot as the tick last saw it (snapshot LSN and
     * begin_seq) and since when (0: idle when last looked at): snapshot
     * ages are timed here, to within one tick, not trusted to the page. */
    uint64_t seen_lsn[RDR_SLOTS], seen_seq[RDR_SLOTS], seen_ns[RDR_SLOTS];
    uint64_t partial_since_ns; /* handshake or a frame incomplete since then; 0: none */
    uint32_t conn_id;
    pid_t pid;
    uid_t uid;
    int hello_done;
    int closing;            /* close once the output is flushed */
    int rejoin;             /* its write was just acknowledged (sync_mode full):
                             * its next one is worth a short wait (gather) */
    response *resp;
    size_t n_resp, cap_resp;
    frag_batch frag;        /* a BATCH arriving in fragments (fragments.h) */
    struct session *next, *prev;
} session;

typedef struct server {
    const server_args *a;
    struct ev_loop *loop;
    int listen_fd;
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    ev_io lio;
    ev_prepare prep;
    ev_signal sig_term, sig_int;
    ev_timer tick;
    ev_async wake;          /* a worker finished a job */
    wk_pool *pool;
    /* fdatasyncs in flight, oldest first (a ring): a second one starts
     * as soon as records are written behind the first, so the kernel
     * begins it the moment the first ends, with no trip through this loop
     * in between.  Results are taken in start order. */
    struct sync_slot {
        wal_sync_ticket ticket;
        int done; /* the worker finished it */
    } sync_slots[SYNCS_IN_FLIGHT];
    unsigned sync_head, syncing;
    session *sessions;
    size_t n_sessions;
    uint32_t next_conn_id;
    int dirty;              /* batches appended since the last group commit */
    int read_only;          /* after a failed fdatasync (never retried) */
    char fail_reason[600];
    uint64_t last_sync_ns;
    uint64_t groups, batches, syncs;
    uint64_t syncs_inline;  /* of which on the loop thread */
    uint64_t sync_ns_inline; /* time spent in them */
    /* Where a closed-loop group's time goes besides its fdatasync (stats):
     * gathers that waited for just-acknowledged writers and the time they
     * took; for the inline syncs after such a gather, the time from the
     * inline sync before to this one's start (acknowledge, the writers'
     * turnaround, gather, apply, write). */
    uint64_t gathers, gather_ns;
    uint64_t turns, turn_ns;
    uint64_t last_inline_end_ns;
    int gathered;           /* the coming sync's group waited for writers */
    unsigned offload_left;  /* syncs still to hand to workers after a slow one */
    uint64_t ousted;        /* snapshots expired by max_snapshot_age */
    uint64_t frame_timeouts; /* connections closed by frame_timeout_ms */
    int accept_paused;      /* out of descriptors: accept again at the next tick */
    uint64_t fd_conn_limit; /* connections the descriptor limit leaves room for */
    time_t started;
    engine_out apply_out;   /* reused by every batch */
    session *ahead;         /* the session whose batch in fragments is
                             * being applied as it comes (apply_ahead) */
    uint64_t ahead_done;    /* batches so applied (stats) */
    uint64_t ahead_undone;  /* and those whose early part was undone */
    unsigned ahead_skip;    /* batches in fragments not to apply ahead, after
                             * one was overtaken by another session's */
    storage *st;            /* checkpoints and backups */
} server;

static void session_close(session *s);
static void flush_output(session *s);

/* ---- responses ---- */

static int queue_response(session *s, uint32_t req_id, uint16_t op, int status, uint64_t lsn,
                          const void *payload, size_t len)
{
    if (s->n_resp == s->cap_resp) {
        size_t cap = s->cap_resp ? s->cap_resp * 2 : 16;
        response *p = realloc(s->resp, cap * sizeof *p);
        if (p == NULL)
            return DOTDB_ENOMEM;
        s->resp = p;
        s->cap_resp = cap;
    }
    response *r = &s->resp[s->n_resp];
    r->h = (wire_hdr){.len = (uint32_t)len, .req_id = req_id, .op = op, .status = status, .lsn = lsn};
    r->payload = NULL;
    r->wait_gen = 0;
    if (len) {
        r->payload = malloc(len);
        if (r->payload == NULL)
            return DOTDB_ENOMEM;
        memcpy(r->payload, payload, len);
    }
    s->n_resp++;
    return 0;
}

static void queue_error(session *s, uint32_t req_id, uint16_t op, int status, const char *msg)
{
    if (queue_response(s, req_id, op, status, 0, msg, strlen(msg)) != 0)
        s->closing = 1;
}

/* A successful batch is acknowledged only once it is published (durable
 * per sync_mode and visible); everything else is ready at once. */
static int response_ready(const session *s, const response *r)
{
    if (r->wait_gen)
        return 0;
    return r->h.op != WIRE_OP_BATCH || r->h.status != 0 ||
           r->h.lsn <= engine_published_lsn(s->srv->a->eng);
}

/* Move the ready responses, in request order, into the output buffer and
 * write what we can. */
static void send_responses(session *s)
{
    size_t i = 0;
    for (; i < s->n_resp && response_ready(s, &s->resp[i]); i++) {
        response *r = &s->resp[i];
        uint8_t hdr[WIRE_HDR_SIZE];
        wire_hdr_put(hdr, &r->h);
        if (dbuf_append(&s->out, hdr, sizeof hdr) != 0 ||
            dbuf_append(&s->out, r->payload, r->h.len) != 0)
            s->closing = 1;
        if (r->h.op == WIRE_OP_BATCH && r->h.status == 0 &&
            s->srv->a->cfg->sync_mode == SYNC_FULL)
            s->rejoin = 1;
        free(r->payload);
    }
    memmove(s->resp, s->resp + i, (s->n_resp - i) * sizeof *s->resp);
    s->n_resp -= i;
    flush_output(s);
}

static void flush_output(session *s)
{
    while (s->out_pos < s->out.len) {
        ssize_t n = send(s->fd, s->out.data + s->out_pos, s->out.len - s->out_pos, MSG_NOSIGNAL);
        if (n > 0) {
            s->out_pos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (s->out.len - s->out_pos > MAX_OUTPUT) {
                session_close(s);
                return;
            }
            ev_io_start(s->srv->loop, &s->wio);
            return;
        }
        session_close(s); /* the peer went away */
        return;
    }
    s->out.len = s->out_pos = 0;
    ev_io_stop(s->srv->loop, &s->wio);
    if (s->closing)
        session_close(s);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    flush_output(w->data);
}

/* ---- group commit ---- */

/* Fail every queued, successful batch response after `published`. */
static void fail_unpublished(server *srv, uint64_t published, int status, const char *msg)
{
    for (session *s = srv->sessions; s; s = s->next) {
        for (size_t i = 0; i < s->n_resp; i++) {
            response *r = &s->resp[i];
            if (r->h.op != WIRE_OP_BATCH || r->h.status != 0 || r->h.lsn <= published)
                continue;
            free(r->payload);
            r->payload = strdup(msg);
            r->h.len = r->payload ? (uint32_t)strlen(msg) : 0;
            r->h.status = status;
            r->h.lsn = 0;
        }
    }
}

/* Does slot i of s still hold the snapshot that was ousted?  The page is
 * the client's to scribble on, so this compares with what we recorded. */
static int slot_is_ousted(const session *s, uint32_t i, uint64_t lsn)
{
    if (!((s->ousted_mask >> i) & 1) || lsn != s->ousted_lsn[i])
        return 0;
    /* Loaded after snapshot_lsn: a snapshot begun again at the same LSN
     * has stored a new begin_seq before it, and so is not ignored. */
    return atomic_load_explicit(&s->slots->slots[i].begin_seq, memory_order_seq_cst) ==
           s->ousted_seq[i];
}

static uint64_t min_active_snapshot(server *srv)
{
    uint64_t min = UINT64_MAX;
    for (session *s = srv->sessions; s; s = s->next) {
        if (s->slots == NULL)
            continue;
        if (s->ousted_mask == 0) {
            rdr_page_min(s->slots, &min);
            continue;
        }
        for (uint32_t i = 0; i < RDR_SLOTS; i++) {
            uint64_t v = atomic_load_explicit(&s->slots->slots[i].snapshot_lsn, memory_order_seq_cst);
            if (v != 0 && v < min && !slot_is_ousted(s, i, v))
                min = v;
        }
    }
    /* A running checkpoint reads its snapshot like any reader (I7). */
    uint64_t pin = srv->st ? storage_pin(srv->st) : 0;
    if (pin && pin < min)
        min = pin;
    return min;
}

static void send_all_responses(server *srv)
{
    for (session *s = srv->sessions, *next; s; s = next) {
        next = s->next;
        if (s->n_resp)
            send_responses(s);
    }
}

/* Undo what a batch in fragments applied ahead of its last frame: before
 * anything else is applied or undone, and when its session goes.  The
 * batch goes on, to be applied whole at its last frame. */
static void ahead_drop(server *srv)
{
    if (srv->ahead == NULL)
        return;
    engine *e = srv->a->eng;
    engine_undo(e, engine_applied_lsn(e) + 1);
    srv->ahead->frag.ahead = -1;
    srv->ahead = NULL;
    srv->ahead_undone++;
}

/* The WAL can no longer be trusted: refuse writes from now on, undo and
 * fail everything not yet published, keep serving reads. */
static void wal_failed(server *srv, const char *err)
{
    engine *e = srv->a->eng;
    uint64_t published = engine_published_lsn(e);
    srv->read_only = 1;
    snprintf(srv->fail_reason, sizeof srv->fail_reason,
             "WAL fdatasync failed, writes disabled until restart: %s", err);
    fprintf(stderr, "dotdbd: %s\n", srv->fail_reason);
    ahead_drop(srv);
    engine_undo(e, published + 1);
    fail_unpublished(srv, published, DOTDB_EIO, srv->fail_reason);
}

static void sync_job(void *arg)
{
    wal_sync_run(arg); /* the ticket: the only state a worker touches */
}

static struct sync_slot *sync_slot_at(server *srv, unsigned k)
{
    return &srv->sync_slots[(srv->sync_head + k) % SYNCS_IN_FLIGHT];
}

static void finish_syncs(server *srv);

/* Does the next fdatasync run on the loop thread?  In sync_mode full, when
 * none is in flight and no slow one recently sent them to workers. */
static int sync_on_loop(const server *srv)
{
    return srv->a->cfg->sync_mode == SYNC_FULL && srv->syncing == 0 && srv->offload_left == 0;
}

/* Start an fdatasync on a worker if one is wanted: something written is
 * not covered by a sync in flight, and fewer than SYNCS_IN_FLIGHT run. */
static void start_sync(server *srv)
{
    char err[512];
    if (srv->syncing == SYNCS_IN_FLIGHT || srv->read_only)
        return;
    if (srv->syncing > 0 &&
        sync_slot_at(srv, srv->syncing - 1)->ticket.lsn >= wal_written_lsn(srv->a->log))
        return; /* the newest sync in flight covers everything written */
    struct sync_slot *sl = sync_slot_at(srv, srv->syncing);
    int on_loop = sync_on_loop(srv);
    int rc = on_loop ? wal_sync_begin_here(srv->a->log, &sl->ticket, err, sizeof err)
                     : wal_sync_begin(srv->a->log, &sl->ticket, err, sizeof err);
    if (rc != 0) {
        wal_failed(srv, err);
        return;
    }
    if (sl->ticket.fd < 0) {
        /* Nothing unsynced (a segment rotation synced it already).  Not
         * while a sync runs: an error it reports may be one the rotation's
         * fdatasync did not see, so its result comes first (wake_cb calls
         * here again once it is in). */
        if (srv->syncing == 0 && srv->a->cfg->sync_mode == SYNC_FULL &&
            sl->ticket.lsn > engine_published_lsn(srv->a->eng))
            engine_publish(srv->a->eng, sl->ticket.lsn);
        return;
    }
    srv->syncs++;
    srv->last_sync_ns = rdr_now_ns();
    sl->done = 0;
    srv->syncing++;
    if (on_loop) {
        /* Every writer is waiting for this sync: run it right here, as a
         * single-threaded server would.  The two thread hand-offs it saves
         * (~25-30 µs each on this machine) are a fifth of a durable put,
         * and the requests that arrive meanwhile wait in their sockets and
         * form the next group.  Readers never need this thread. */
        srv->syncs_inline++;
        if (srv->gathered && srv->last_inline_end_ns) {
            srv->turns++;
            srv->turn_ns += srv->last_sync_ns - srv->last_inline_end_ns;
        }
        srv->gathered = 0;
        wal_sync_run(&sl->ticket);
        srv->last_inline_end_ns = rdr_now_ns();
        uint64_t took = srv->last_inline_end_ns - srv->last_sync_ns;
        srv->sync_ns_inline += took;
        if (took > SLOW_SYNC_NS)
            srv->offload_left = SLOW_SYNC_OFFLOAD;
        sl->done = 1;
        finish_syncs(srv);
        return;
    }
    if (srv->offload_left > 0 && srv->a->cfg->sync_mode == SYNC_FULL)
        srv->offload_left--;
    if (wk_submit(srv->pool, sync_job, &sl->ticket) != 0) {
        /* No memory for a job: sync here rather than never. */
        wal_sync_run(&sl->ticket);
        sl->done = 1;
        ev_async_send(srv->loop, &srv->wake);
    }
}

static int server_stats_json(server *srv, dbuf *out);

/* Give the responses parked on a finished checkpoint or backup generation
 * its outcome, and refresh system/stats.json. */
static void complete_waiting(server *srv)
{
    const char *json;
    int rc = storage_last_result(srv->st, &json);
    uint64_t done = storage_completed_gen(srv->st);
    for (session *s = srv->sessions; s; s = s->next) {
        for (size_t i = 0; i < s->n_resp; i++) {
            response *r = &s->resp[i];
            if (r->wait_gen == 0 || r->wait_gen > done)
                continue;
            r->wait_gen = 0;
            free(r->payload);
            r->payload = strdup(json);
            r->h.len = r->payload ? (uint32_t)strlen(json) : 0;
            r->h.status = rc;
            r->h.lsn = engine_published_lsn(srv->a->eng);
        }
    }
    dbuf b;
    dbuf_init(&b);
    if (server_stats_json(srv, &b) == 0)
        storage_write_stats(srv->st, (const char *)b.data, b.len);
    dbuf_free(&b);
}

/* Loop thread: a pool job finished (an fdatasync, or storage's). */
static void sync_done(void *arg, void *ctx)
{
    server *srv = ctx;
    for (unsigned k = 0; k < srv->syncing; k++) {
        if (&sync_slot_at(srv, k)->ticket == arg) {
            sync_slot_at(srv, k)->done = 1;
            return;
        }
    }
    if (storage_job_done(srv->st, arg)) /* a checkpoint or a backup */
        complete_waiting(srv);
}

/* Take the results of the finished syncs in start order: a later sync
 * never acknowledges anything before every earlier one has succeeded
 * (an error may be reported to only one of two syncs of a file). */
static void finish_syncs(server *srv)
{
    char err[512];
    engine *e = srv->a->eng;
    while (srv->syncing > 0 && srv->sync_slots[srv->sync_head].done) {
        struct sync_slot *sl = &srv->sync_slots[srv->sync_head];
        srv->sync_head = (srv->sync_head + 1) % SYNCS_IN_FLIGHT;
        srv->syncing--;
        if (srv->read_only)
            continue; /* failed already: everything unpublished was undone */
        if (wal_sync_end(srv->a->log, &sl->ticket, err, sizeof err) != 0) {
            wal_failed(srv, err);
            continue;
        }
        if (srv->a->cfg->sync_mode == SYNC_FULL && sl->ticket.lsn > engine_published_lsn(e)) {
            engine_publish(e, sl->ticket.lsn);
            srv->groups++;
        }
    }
}

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    server *srv = w->data;
    wk_collect(srv->pool, sync_done, srv);
    finish_syncs(srv);
    /* What was written while that sync ran needs the next one. */
    if (srv->a->cfg->sync_mode == SYNC_FULL &&
        wal_written_lsn(srv->a->log) > engine_published_lsn(srv->a->eng))
        start_sync(srv);
    send_all_responses(srv);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents);

/*
 * Before an fdatasync on the loop thread: give the writers acknowledged by
 * the last one up to GATHER_NS to send their next request, so it joins
 * this group.  Without the wait, eight closed-loop writers settle into two
 * groups that alternate, each sync covering half of them; with it one
 * sync covers them all (docs/PERFORMANCE.md, durable_put_8c).  Sessions
 * that do not write again within the wait are not waited for again until
 * their next write is acknowledged.  The wait polls (ppoll with a zero
 * timeout, yielding the CPU between tries) instead of sleeping in ppoll:
 * the loop then takes each request the moment it comes instead of after a
 * wake-up, and a vCPU that never halts takes the fdatasync's completion
 * sooner (docs/PERFORMANCE.md, "Polling instead of sleeping").
 */
static void gather(server *srv)
{
    struct pollfd pfd[GATHER_MAX];
    session *who[GATHER_MAX];
    nfds_t n = 0;
    for (session *s = srv->sessions; s && n < GATHER_MAX; s = s->next) {
        if (!s->rejoin || s->closing)
            continue;
        s->rejoin = 0;
        pfd[n] = (struct pollfd){.fd = s->fd, .events = POLLIN};
        who[n++] = s;
    }
    uint64_t start = rdr_now_ns(), left = n;
    while (left > 0) {
        uint64_t spent = rdr_now_ns() - start;
        if (spent >= GATHER_NS)
            break;
        struct timespec ts = {0, 0};
        int k = ppoll(pfd, n, &ts, NULL);
        if (k < 0)
            break; /* EINTR: the signal watcher runs next turn */
        if (k == 0) {
            sched_yield();
            continue;
        }
        for (nfds_t i = 0; i < n; i++) {
            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            pfd[i].fd = -1; /* once: read_cb may close (free) the session */
            left--;
            read_cb(srv->loop, &who[i]->rio, EV_READ);
        }
    }
    if (n > 0) {
        srv->gathers++;
        srv->gather_ns += rdr_now_ns() - start;
        srv->gathered = 1;
    }
}

static void group_commit(server *srv)
{
    const dotdb_config *cfg = srv->a->cfg;
    engine *e = srv->a->eng;
    char err[512];
    if (srv->dirty && sync_on_loop(srv) && !srv->read_only)
        gather(srv);
    if (srv->dirty) {
        srv->dirty = 0;
        uint64_t written = wal_written_lsn(srv->a->log);
        int rc = wal_write(srv->a->log, err, sizeof err);
        if (rc != 0) {
            /* Only this group's records were cut back; earlier ones (maybe
             * waiting for their sync) stand. */
            ahead_drop(srv);
            engine_undo(e, written + 1);
            fail_unpublished(srv, written, rc, err);
            fprintf(stderr, "dotdbd: WAL write failed, group undone: %s\n", err);
            if (wal_is_failed(srv->a->log)) /* an fsync failed (a rotation's): never retried */
                wal_failed(srv, err);
        } else if (cfg->sync_mode == SYNC_FULL) {
            start_sync(srv);
        } else {
            engine_publish(e, engine_applied_lsn(e));
            srv->groups++;
        }
    }
    engine_reclaim(e, min_active_snapshot(srv));
    send_all_responses(srv);
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    group_commit(w->data);
}

/* ---- requests ---- */

/* The handshake response and its descriptors.  *setup_errno: why the
 * descriptors could not be made (0 when sending failed: the peer left). */
static int send_hello(session *s, uint32_t req_id, int *setup_errno)
{
    server *srv = s->srv;
    int rc = DOTDB_EOS;
    *setup_errno = 0;
    int slot_fd = memfd_create("dotdb-readers", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int live_fd = lockfile_open_readonly(srv->a->lock);
    /* The client may write its page but never resize it: a shrunk page
     * would fault (SIGBUS) in our next reclamation scan. */
    if (slot_fd < 0 || live_fd < 0 || ftruncate(slot_fd, RDR_PAGE_SIZE) != 0 ||
        fcntl(slot_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        *setup_errno = errno;
        goto out;
    }
    void *p = mmap(NULL, RDR_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, slot_fd, 0);
    if (p == MAP_FAILED) {
        *setup_errno = errno;
        goto out;
    }
    s->slots = p;
    s->slots->magic = RDR_MAGIC;
    s->slots->nslots = RDR_SLOTS;
    s->slots->conn_id = s->conn_id;
    s->slots->pid = (uint64_t)s->pid;

    shm_region *r = engine_region(srv->a->eng);
    const shm_header *h = region_header(r);
    uint8_t frame[WIRE_HDR_SIZE + 40];
    uint8_t *pl = frame + WIRE_HDR_SIZE;
    st_u64(pl, h->epoch);
    st_u64(pl + 8, h->max_size);
    st_u32(pl + 16, s->conn_id);
    st_u32(pl + 20, RDR_SLOTS);
    st_u64(pl + 24, srv->a->cfg->max_document_size);
    st_u64(pl + 32, srv->a->cfg->max_depth);
    wire_hdr hd = {.len = 40, .req_id = req_id, .op = WIRE_OP_HELLO,
                   .lsn = engine_published_lsn(srv->a->eng)};
    wire_hdr_put(frame, &hd);

    int fds[3] = {region_fd(r), slot_fd, live_fd};
    union {
        char buf[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct iovec iov = {frame, sizeof frame};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    ssize_t n;
    do
        n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    rc = n == (ssize_t)sizeof frame ? 0 : DOTDB_EOS;
out:
    if (slot_fd >= 0)
        close(slot_fd);
    if (live_fd >= 0)
        close(live_fd);
    return rc;
}

static void handle_hello(session *s, const wire_hdr *h, const uint8_t *p)
{
    char msg[256];
    if (h->len < 16) {
        queue_error(s, h->req_id, WIRE_OP_HELLO, DOTDB_EPROTO, "HELLO payload too short");
        s->closing = 1;
        return;
    }
    uint32_t proto = ld_u32(p), layout = ld_u32(p + 4);
    if (proto != DOTDB_PROTOCOL_VERSION || layout != SHM_LAYOUT_VERSION) {
        snprintf(msg, sizeof msg,
                 "client speaks protocol %u / layout %u, coordinator %u / %u: upgrade the "
                 "client library", proto, layout, DOTDB_PROTOCOL_VERSION, SHM_LAYOUT_VERSION);
        queue_error(s, h->req_id, WIRE_OP_HELLO, DOTDB_EVERSION, msg);
        s->closing = 1;
        return;
    }
    int e;
    if (send_hello(s, h->req_id, &e) != 0) {
        if (e) {
            snprintf(msg, sizeof msg, "the coordinator cannot set up this connection's shared "
                     "memory: %s", strerror(e));
            queue_error(s, h->req_id, WIRE_OP_HELLO, e == EMFILE || e == ENFILE ? DOTDB_ETOOMANY
                                                                                : DOTDB_EOS, msg);
        }
        s->closing = 1;
        return;
    }
    s->hello_done = 1;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t max_frame(const server *srv);

/* After another session's write undid a batch's early part, this many
 * batches in fragments are applied whole at their end: with several
 * sessions writing at once the early work would mostly be undone. */
#define AHEAD_SKIP 8

/*
 * A batch in fragments is applied as it comes (docs/ARCHITECTURE.md): the
 * fragment p[0..len), just checked and added, is applied now at the LSN
 * the batch will have, so that its last frame finds only itself left to
 * apply.  Only one batch at a time, only from its first fragment, only
 * plain puts; what it applied stays invisible, since the applied LSN does
 * not move until its last frame, and anything else to be applied undoes it
 * first (ahead_drop), the batch then waiting for its last frame to be
 * applied whole, as every batch in fragments did before.  Returns 1 when
 * the fragment was applied.
 */
static int apply_ahead(session *s, const uint8_t *p, size_t len)
{
    server *srv = s->srv;
    frag_batch *f = &s->frag;
    if (f->status != 0 || srv->read_only) { /* the batch fails: none of it stays */
        if (srv->ahead == s)
            ahead_drop(srv);
        f->ahead = -1;
        return 0;
    }
    if (f->ahead < 0)
        return 0;
    uint32_t n = ld_u32(p);
    if (f->ahead == 0) {
        if (srv->ahead != NULL || f->nops != n) { /* another's, or not the first */
            f->ahead = -1;
            return 0;
        }
        if (srv->ahead_skip > 0) {
            srv->ahead_skip--;
            f->ahead = -1;
            return 0;
        }
        f->ahead = 1;
        srv->ahead = s;
    }
    const engine_doc_meta *m = (const engine_doc_meta *)f->meta.data + (f->nops - n);
    char err[512];
    if (engine_apply_part(srv->a->eng, p, len, m, n, f->nops - n, err, sizeof err) != 0) {
        ahead_drop(srv); /* the batch's own apply at its end decides */
        return 0;
    }
    return 1;
}

static void handle_batch(session *s, const wire_hdr *h, const uint8_t *p)
{
    server *srv = s->srv;
    engine *e = srv->a->eng;
    engine_out *out = &srv->apply_out;
    char err[512];
    size_t len = h->len;
    if (h->flags & WIRE_F_MORE) { /* a fragment: checked and kept, no response */
        frag_add(&s->frag, e, p, len, max_frame(srv));
        apply_ahead(s, p, len);
        return;
    }
    out->docs_checked = 0;
    out->meta = NULL;
    out->n_meta = 0;
    int done = 0; /* applied as it came, the last frame included */
    if (s->frag.active) { /* the last frame: the batch is the assembly */
        const uint8_t *whole;
        const uint8_t *last = p;
        size_t last_len = len;
        int rc = frag_finish(&s->frag, e, p, len, max_frame(srv), &whole, &len);
        if (rc != 0) {
            if (srv->ahead == s)
                ahead_drop(srv);
            queue_error(s, h->req_id, h->op, rc, s->frag.err);
            frag_reset(&s->frag);
            return;
        }
        p = whole;
        out->docs_checked = 1;
        out->meta = (const engine_doc_meta *)s->frag.meta.data;
        out->n_meta = s->frag.meta.len / sizeof *out->meta;
        /* a transaction's commit (h->lsn, its snapshot) is checked whole */
        done = h->lsn == 0 && apply_ahead(s, last, last_len);
    }
    if (!done && srv->ahead != NULL) {
        /* nothing may be applied behind a batch's first part */
        if (srv->ahead != s)
            srv->ahead_skip = AHEAD_SKIP;
        ahead_drop(srv);
    }
    if (srv->read_only) {
        queue_error(s, h->req_id, h->op, DOTDB_EREADONLY, srv->fail_reason);
        frag_reset(&s->frag);
        return;
    }
    if (len < 4 || ld_u32(p) == 0) {
        queue_error(s, h->req_id, h->op, DOTDB_EINVAL, "empty batch");
        frag_reset(&s->frag);
        return;
    }
    uint64_t lsn = engine_applied_lsn(e) + 1;
    out->now_ms = wall_ms();
    out->is_resolved = 0;
    out->reply.len = 0;
    int rc = 0;
    if (done) {
        lsn = engine_commit_part(e);
        srv->ahead = NULL;
        srv->ahead_done++;
    } else {
        rc = engine_apply_ex(e, lsn, h->lsn, p, len, out, err, sizeof err);
    }
    if (rc == 0) {
        /* Derived operations are logged as what they resolved to. */
        const uint8_t *rec = out->is_resolved ? out->log.data : p;
        size_t rec_len = out->is_resolved ? out->log.len : len;
        rc = wal_append(srv->a->log, lsn, WAL_REC_BATCH, rec, rec_len);
        if (rc != 0) {
            engine_undo(e, lsn);
            snprintf(err, sizeof err, "cannot buffer the WAL record: %s", dotdb_strerror(rc));
        }
    }
    frag_reset(&s->frag); /* the WAL buffer holds its own copy of the record */
    if (rc != 0) {
        queue_error(s, h->req_id, h->op, rc, err);
        return;
    }
    srv->dirty = 1;
    srv->batches++;
    s->rejoin = 0;
    if (queue_response(s, h->req_id, h->op, 0, lsn, out->reply.data, out->reply.len) != 0)
        s->closing = 1;
    if (out->log.cap > (1u << 20)) { /* don't keep a huge buffer around */
        dbuf_free(&out->log);
        dbuf_free(&out->reply);
    }
}

static int snapshots_json(server *srv, dbuf *out)
{
    uint64_t now = rdr_now_ns();
    int rc = dbuf_putc(out, '[');
    int first = 1;
    for (session *s = srv->sessions; s && rc == 0; s = s->next) {
        for (uint32_t i = 0; s->slots && i < RDR_SLOTS; i++) {
            uint64_t lsn = atomic_load(&s->slots->slots[i].snapshot_lsn);
            if (lsn == 0)
                continue;
            /* the age the tick has timed; 0 for one it has not seen yet */
            uint64_t seq = atomic_load(&s->slots->slots[i].begin_seq);
            uint64_t st = s->seen_ns[i] && s->seen_lsn[i] == lsn && s->seen_seq[i] == seq
                              ? s->seen_ns[i] : 0;
            char b[200];
            int n = snprintf(b, sizeof b,
                             "%s{\"pid\":%d,\"connection\":%u,\"lsn\":%" PRIu64 ",\"age_ms\":%" PRIu64
                             ",\"ousted\":%s}",
                             first ? "" : ",", (int)s->pid, s->conn_id, lsn,
                             st && now > st ? (now - st) / 1000000 : 0,
                             slot_is_ousted(s, i, lsn) ? "true" : "false");
            first = 0;
            rc = dbuf_append(out, b, (size_t)n);
        }
    }
    return rc ? rc : dbuf_putc(out, ']');
}

static int server_stats_json(server *srv, dbuf *out)
{
    const dotdb_config *cfg = srv->a->cfg;
    static const char *modes[] = {"full", "normal", "off"};
    char b[2048];
    int n = snprintf(
        b, sizeof b,
        "{\"coordinator\":{\"pid\":%d,\"data_directory\":\"%s\",\"epoch\":%" PRIu64
        ",\"uptime_s\":%ld,\"commit_lsn\":%" PRIu64 ",\"sync_mode\":\"%s\",\"connections\":%zu"
        ",\"max_connections\":%" PRIu64 ",\"read_only\":%s,\"error\":\"%s\",\"groups\":%" PRIu64
        ",\"batches\":%" PRIu64 ",\"fsyncs\":%" PRIu64 ",\"fsyncs_inline\":%" PRIu64
        ",\"fsync_inline_avg_us\":%" PRIu64 ",\"gathers\":%" PRIu64
        ",\"gather_avg_us\":%" PRIu64 ",\"turnaround_avg_us\":%" PRIu64
        ",\"snapshots_ousted\":%" PRIu64
        ",\"frame_timeouts\":%" PRIu64 ",\"batches_applied_ahead\":%" PRIu64
        ",\"batches_ahead_undone\":%" PRIu64 "},\"wal\":{\"bytes\":%" PRIu64
        ",\"segment\":%" PRIu64 ",\"unsynced_bytes\":%" PRIu64 "},\"memory\":",
        (int)getpid(), srv->a->dir, lockfile_epoch(srv->a->lock), (long)(time(NULL) - srv->started),
        engine_published_lsn(srv->a->eng), modes[cfg->sync_mode], srv->n_sessions,
        cfg->max_connections, srv->read_only ? "true" : "false", srv->fail_reason, srv->groups,
        srv->batches, srv->syncs, srv->syncs_inline,
        srv->syncs_inline ? srv->sync_ns_inline / srv->syncs_inline / 1000 : 0, srv->gathers,
        srv->gathers ? srv->gather_ns / srv->gathers / 1000 : 0,
        srv->turns ? srv->turn_ns / srv->turns / 1000 : 0, srv->ousted,
        srv->frame_timeouts, srv->ahead_done, srv->ahead_undone,
        wal_total_bytes(srv->a->log), wal_current_segno(srv->a->log),
        wal_unsynced_bytes(srv->a->log));
    int rc = dbuf_append(out, b, (size_t)n);
    if (rc == 0)
        rc = engine_memory_json(srv->a->eng, out);
    if (rc == 0)
        rc = dbuf_append(out, ",\"storage\":", 11);
    if (rc == 0)
        rc = storage_stats_json(srv->st, out);
    if (rc == 0)
        rc = dbuf_append(out, ",\"snapshots\":", 13);
    if (rc == 0)
        rc = snapshots_json(srv, out);
    if (rc == 0)
        rc = dbuf_append(out, ",\"collections\":", 15);
    if (rc == 0)
        rc = engine_stats_json_ex(srv->a->eng, NULL, 0, storage_coll_json, srv->st, out);
    return rc ? rc : dbuf_putc(out, '}');
}

static void handle_stats(session *s, const wire_hdr *h, const uint8_t *p)
{
    if (h->len && !name_is_valid((const char *)p, h->len)) {
        queue_error(s, h->req_id, h->op, DOTDB_EBADNAME, "invalid collection name (expected 1 to "
                    "64 of A-Z a-z 0-9 _ . -, not starting with . or -)");
        return;
    }
    dbuf out;
    dbuf_init(&out);
    int rc = h->len ? engine_stats_json_ex(s->srv->a->eng, (const char *)p, h->len,
                                           storage_coll_json, s->srv->st, &out)
                    : server_stats_json(s->srv, &out);
    if (rc == DOTDB_ENOCOLL) {
        char msg[200];
        snprintf(msg, sizeof msg, "collection \"%.*s\" does not exist", (int)(h->len > 64 ? 64 : h->len),
                 (const char *)p);
        queue_error(s, h->req_id, h->op, rc, msg);
    } else if (rc != 0) {
        queue_error(s, h->req_id, h->op, rc, dotdb_strerror(rc));
    } else if (queue_response(s, h->req_id, h->op, 0, engine_published_lsn(s->srv->a->eng),
                              out.data, out.len) != 0) {
        s->closing = 1;
    }
    dbuf_free(&out);
}

/* CHECKPOINT: u32 flags (WIRE_CKPT_COMPACT) then an optional collection
 * name; BACKUP: the destination directory (absolute path).  The response
 * is parked until that generation completes. */
static void handle_storage(session *s, const wire_hdr *h, const uint8_t *p)
{
    server *srv = s->srv;
    char only[65] = "", dest[4096] = "";
    if (srv->read_only) {
        queue_error(s, h->req_id, h->op, DOTDB_EREADONLY, srv->fail_reason);
        return;
    }
    int force = 0;
    if (h->op == WIRE_OP_CHECKPOINT) {
        if (h->len < 4 || h->len - 4 > 64 || (ld_u32(p) & ~WIRE_CKPT_COMPACT) ||
            (h->len > 4 && !name_is_valid((const char *)p + 4, h->len - 4))) {
            queue_error(s, h->req_id, h->op, DOTDB_EINVAL, "malformed CHECKPOINT request");
            return;
        }
        force = (ld_u32(p) & WIRE_CKPT_COMPACT) != 0;
        memcpy(only, p + 4, h->len - 4);
        only[h->len - 4] = 0;
        dbuf probe;
        dbuf_init(&probe);
        int exists = !only[0] || engine_stats_json(srv->a->eng, only, strlen(only), &probe) != DOTDB_ENOCOLL;
        dbuf_free(&probe);
        if (!exists) {
            char msg[120];
            snprintf(msg, sizeof msg, "collection \"%s\" does not exist", only);
            queue_error(s, h->req_id, h->op, DOTDB_ENOCOLL, msg);
            return;
        }
    } else {
        if (s->uid != geteuid()) {
            /* The coordinator would write DEST with its own rights. */
            char msg[160];
            snprintf(msg, sizeof msg, "only the database owner (uid %u) may start a backup: it "
                     "writes files with the coordinator's rights", (unsigned)geteuid());
            queue_error(s, h->req_id, h->op, DOTDB_EPERM, msg);
            return;
        }
        if (h->len == 0 || h->len >= sizeof dest || p[0] != '/' || memchr(p, 0, h->len)) {
            queue_error(s, h->req_id, h->op, DOTDB_EINVAL,
                        "a backup needs an absolute destination path");
            return;
        }
        memcpy(dest, p, h->len);
        dest[h->len] = 0;
        if (strcmp(dest, srv->a->dir) == 0 ||
            (strncmp(dest, srv->a->dir, strlen(srv->a->dir)) == 0 && dest[strlen(srv->a->dir)] == '/')) {
            queue_error(s, h->req_id, h->op, DOTDB_EINVAL,
                        "the backup destination must be outside the data directory");
            return;
        }
    }
    uint64_t gen;
    int rc = storage_request(srv->st, force, only, dest[0] ? dest : NULL, &gen);
    if (rc != 0) {
        queue_error(s, h->req_id, h->op, rc,
                    rc == DOTDB_EBUSY ? "a backup is already waiting; try again when it is done"
                                      : dotdb_strerror(rc));
        return;
    }
    if (queue_response(s, h->req_id, h->op, 0, 0, NULL, 0) != 0) {
        s->closing = 1;
        return;
    }
    s->resp[s->n_resp - 1].wait_gen = gen;
    if (storage_completed_gen(srv->st) >= gen)
        complete_waiting(srv);
}

static void handle_frame(session *s, const wire_hdr *h, const uint8_t *p)
{
    char msg[128];
    if (!s->hello_done && h->op != WIRE_OP_HELLO) {
        queue_error(s, h->req_id, h->op, DOTDB_EPROTO, "the first request must be HELLO");
        s->closing = 1;
        return;
    }
    switch (h->op) {
    case WIRE_OP_HELLO:
        if (s->hello_done) {
            queue_error(s, h->req_id, h->op, DOTDB_EPROTO, "HELLO sent twice");
            return;
        }
        handle_hello(s, h, p);
        return;
    case WIRE_OP_BATCH:
        handle_batch(s, h, p);
        return;
    case WIRE_OP_STATS:
        handle_stats(s, h, p);
        return;
    case WIRE_OP_CHECKPOINT:
    case WIRE_OP_BACKUP:
        handle_storage(s, h, p);
        return;
    case WIRE_OP_PING:
        if (queue_response(s, h->req_id, h->op, 0, engine_published_lsn(s->srv->a->eng), NULL, 0))
            s->closing = 1;
        return;
    default:
        snprintf(msg, sizeof msg, "unknown opcode %u", h->op);
        queue_error(s, h->req_id, h->op, DOTDB_EPROTO, msg);
    }
}

static uint64_t max_frame(const server *srv)
{
    uint64_t m = srv->a->cfg->max_document_size + 64u * 1024u * 1024u;
    return m > WIRE_MAX_FRAME ? WIRE_MAX_FRAME : m;
}

/* Handle every whole frame in s->in; returns the bytes consumed. */
static size_t parse_frames(session *s)
{
    size_t pos = 0;
    while (!s->closing && s->in.len - pos >= WIRE_HDR_SIZE) {
        wire_hdr h;
        wire_hdr_get(s->in.data + pos, &h);
        if (h.len > max_frame(s->srv)) {
            char msg[160];
            snprintf(msg, sizeof msg, "frame of %u bytes exceeds the limit of %" PRIu64 " bytes",
                     h.len, max_frame(s->srv));
            queue_error(s, h.req_id, h.op, DOTDB_ETOOBIG, msg);
            s->closing = 1;
            break;
        }
        if (s->in.len - pos - WIRE_HDR_SIZE < h.len)
            break;
        handle_frame(s, &h, s->in.data + pos + WIRE_HDR_SIZE);
        pos += WIRE_HDR_SIZE + h.len;
    }
    memmove(s->in.data, s->in.data + pos, s->in.len - pos);
    s->in.len -= pos;
    return pos;
}

/* After a read: is a frame (or the handshake) left incomplete, and since
 * when?  The clock starts at a frame's first byte, not its latest one, so
 * a client trickling a byte at a time is bounded too. */
static void track_partial(session *s, size_t consumed)
{
    if (s->in.len == 0 && s->hello_done)
        s->partial_since_ns = 0;
    else if ((consumed && s->hello_done) || s->partial_since_ns == 0)
        s->partial_since_ns = rdr_now_ns();
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    session *s = w->data;
    for (int rounds = 0; rounds < 16 && !s->closing; rounds++) {
        if (dbuf_reserve(&s->in, READ_CHUNK) != 0) {
            session_close(s);
            return;
        }
        size_t room = s->in.cap - s->in.len;
        ssize_t n = read(s->fd, s->in.data + s->in.len, room);
        if (n > 0) {
            s->in.len += (size_t)n;
            track_partial(s, parse_frames(s));
            if ((size_t)n < room)
                break; /* drained: no read just to see EAGAIN (the watcher is level-triggered) */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        session_close(s); /* EOF or error: the client is gone; its slots go with it (I8) */
        return;
    }
    if (s->closing) {
        /* Whatever made us close (out of memory queuing a response,
         * a protocol error), nothing else will: send what is ready and
         * close once it is out (flush_output), or now if nothing is. */
        ev_io_stop(s->srv->loop, &s->rio);
        send_responses(s);
    }
}

/* ---- sessions ---- */

static void session_close(session *s)
{
    server *srv = s->srv;
    ev_io_stop(srv->loop, &s->rio);
    ev_io_stop(srv->loop, &s->wio);
    close(s->fd);
    if (s->slots)
        munmap(s->slots, RDR_PAGE_SIZE); /* its snapshots no longer pin anything (I8) */
    for (size_t i = 0; i < s->n_resp; i++)
        free(s->resp[i].payload);
    free(s->resp);
    if (srv->ahead == s)
        ahead_drop(srv);
    frag_free(&s->frag);
    dbuf_free(&s->in);
    dbuf_free(&s->out);
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->n_sessions--;
    free(s);
}

/* Is gid the peer's group or one of its supplementary groups (as they
 * were when it connected)? */
static int peer_in_group(int fd, const struct ucred *cred, gid_t gid)
{
    if (cred->gid == gid)
        return 1;
    gid_t small[64], *g = small;
    socklen_t len = sizeof small;
    int found = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) != 0) {
        if (errno != ERANGE || (g = malloc(len)) == NULL)
            return 0;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) != 0)
            len = 0;
    }
    for (size_t i = 0; i < len / sizeof *g && !found; i++)
        found = g[i] == gid;
    if (g != small)
        free(g);
    return found;
}

/* I3: the owner, a uid in security.allowed_uids, or a member of
 * security.group (the group the socket is 0660 for). */
static int peer_allowed(const server *srv, int fd, const struct ucred *cred)
{
    const dotdb_config *cfg = srv->a->cfg;
    if (cred->uid == geteuid())
        return 1;
    for (int i = 0; i < cfg->n_allowed_uids; i++)
        if (cfg->allowed_uids[i] == cred->uid)
            return 1;
    return srv->a->group_gid >= 0 && peer_in_group(fd, cred, (gid_t)srv->a->group_gid);
}

/* Refuse a connection with one error frame and no descriptor. */
static void refuse(int fd, int status, const char *msg)
{
    uint8_t frame[WIRE_HDR_SIZE + 256];
    size_t len = strlen(msg) > 256 ? 256 : strlen(msg);
    wire_hdr h = {.len = (uint32_t)len, .op = WIRE_OP_HELLO, .status = status};
    wire_hdr_put(frame, &h);
    memcpy(frame + WIRE_HDR_SIZE, msg, len);
    (void)!send(fd, frame, WIRE_HDR_SIZE + len, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    server *srv = w->data;
    for (;;) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
            /* The connection stays queued and the socket readable: stop
             * watching it until the next tick instead of spinning. */
            ev_io_stop(loop, &srv->lio);
            srv->accept_paused = 1;
            return;
        }
        if (fd < 0)
            return; /* EAGAIN, or a connection that went away meanwhile */
        struct ucred cred;
        socklen_t cl = sizeof cred;
        char msg[200];
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
            close(fd);
            continue;
        }
        if (!peer_allowed(srv, fd, &cred)) {
            snprintf(msg, sizeof msg, "uid %u is not allowed to use this database "
                     "(security.allowed_uids, security.group)", (unsigned)cred.uid);
            refuse(fd, DOTDB_EPERM, msg);
            continue;
        }
        if (srv->n_sessions >= srv->a->cfg->max_connections) {
            snprintf(msg, sizeof msg, "too many connections: memory.max_connections is %" PRIu64,
                     srv->a->cfg->max_connections);
            refuse(fd, DOTDB_ETOOMANY, msg);
            continue;
        }
        if (srv->n_sessions >= srv->fd_conn_limit) {
            snprintf(msg, sizeof msg, "too many connections: the coordinator's descriptor limit "
                     "(RLIMIT_NOFILE) leaves room for %" PRIu64, srv->fd_conn_limit);
            refuse(fd, DOTDB_ETOOMANY, msg);
            continue;
        }
        session *s = calloc(1, sizeof *s);
        if (s == NULL) {
            refuse(fd, DOTDB_ENOMEM, "coordinator out of memory");
            continue;
        }
        s->srv = srv;
        s->fd = fd;
        s->pid = cred.pid;
        s->uid = cred.uid;
        s->conn_id = ++srv->next_conn_id;
        s->partial_since_ns = rdr_now_ns(); /* the handshake must follow */
        dbuf_init(&s->in);
        dbuf_init(&s->out);
        frag_init(&s->frag);
        ev_io_init(&s->rio, read_cb, fd, EV_READ);
        ev_io_init(&s->wio, write_cb, fd, EV_WRITE);
        s->rio.data = s->wio.data = s;
        s->next = srv->sessions;
        if (srv->sessions)
            srv->sessions->prev = s;
        srv->sessions = s;
        srv->n_sessions++;
        ev_io_start(loop, &s->rio);
    }
}

/* ---- timers and signals ---- */

/*
 * Time every snapshot (every tick) and oust those older than
 * max_snapshot_age_ms.  A snapshot is a slot's (snapshot_lsn, begin_seq)
 * pair; its age counts from the tick that first saw it, so a snapshot
 * lives at most one tick (50 ms) longer than the limit, and nothing the
 * client writes into its page can make it look younger except changing
 * that pair, i.e. looking like a new snapshot.  A client that keeps doing
 * so while it reads can still pin versions, but only its own connection's,
 * and only until it disconnects (I1, I8).
 */
static void expire_snapshots(server *srv)
{
    uint64_t max_ns = srv->a->cfg->max_snapshot_age_ms * 1000000ull, now = rdr_now_ns();
    for (session *s = srv->sessions; s; s = s->next) {
        for (uint32_t i = 0; s->slots && i < RDR_SLOTS; i++) {
            rdr_slot *sl = &s->slots->slots[i];
            /* begin_seq after snapshot_lsn: pairs with the client's
             * relaxed store of it before its seq_cst store of the LSN. */
            uint64_t lsn = atomic_load(&sl->snapshot_lsn), seq = atomic_load(&sl->begin_seq);
            if (lsn == 0) {
                s->seen_ns[i] = 0;
            } else if (s->seen_ns[i] == 0 || lsn != s->seen_lsn[i] || seq != s->seen_seq[i]) {
                s->seen_lsn[i] = lsn; /* a snapshot this tick sees first */
                s->seen_seq[i] = seq;
                s->seen_ns[i] = now;
            }
            if (lsn == 0 || !((s->ousted_mask >> i) & 1) || lsn != s->ousted_lsn[i] ||
                seq != s->ousted_seq[i])
                s->ousted_mask &= ~(1ull << i); /* idle, or another snapshot */
            if (max_ns == 0 || lsn == 0 || (s->ousted_mask >> i) & 1)
                continue;
            if (now - s->seen_ns[i] > max_ns) {
                s->ousted_lsn[i] = lsn;
                s->ousted_seq[i] = seq;
                s->ousted_mask |= 1ull << i;
                srv->ousted++;
                /* Pairs with the client's acquire load in cl_snap_check(). */
                atomic_store_explicit(&sl->ousted_lsn, lsn, memory_order_seq_cst);
            }
        }
    }
}

/*
 * Close the connections that started a frame (or connected and sent no
 * handshake) more than frame_timeout_ms ago: a client that sends part of
 * a frame and then falls silent must not hold a connection and its
 * buffer forever.  The offender gets an error frame first.
 */
static void expire_partial_frames(server *srv)
{
    uint64_t max_ns = srv->a->cfg->frame_timeout_ms * 1000000ull, now = rdr_now_ns();
    for (session *s = srv->sessions, *next; s; s = next) {
        next = s->next;
        if (s->closing || s->partial_since_ns == 0 || now - s->partial_since_ns <= max_ns)
            continue;
        char msg[200];
        wire_hdr h = {0};
        if (!s->hello_done && s->in.len == 0) {
            snprintf(msg, sizeof msg, "no handshake within memory.frame_timeout_ms (%" PRIu64
                     " ms)", srv->a->cfg->frame_timeout_ms);
        } else if (s->in.len < WIRE_HDR_SIZE) {
            snprintf(msg, sizeof msg, "incomplete frame: %zu of the %u header bytes within "
                     "memory.frame_timeout_ms (%" PRIu64 " ms)", s->in.len, WIRE_HDR_SIZE,
                     srv->a->cfg->frame_timeout_ms);
        } else {
            wire_hdr_get(s->in.data, &h);
            snprintf(msg, sizeof msg, "incomplete frame: %zu of %" PRIu64 " bytes within "
                     "memory.frame_timeout_ms (%" PRIu64 " ms)", s->in.len,
                     (uint64_t)h.len + WIRE_HDR_SIZE, srv->a->cfg->frame_timeout_ms);
        }
        srv->frame_timeouts++;
        ev_io_stop(srv->loop, &s->rio);
        queue_error(s, h.req_id, h.op, DOTDB_EPROTO, msg);
        s->closing = 1;
        send_responses(s); /* may free s */
    }
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    server *srv = w->data;
    expire_snapshots(srv);
    expire_partial_frames(srv);
    if (srv->accept_paused) {
        srv->accept_paused = 0;
        ev_io_start(srv->loop, &srv->lio);
    }
    if (srv->a->cfg->sync_mode == SYNC_NORMAL && wal_unsynced_bytes(srv->a->log) > 0 &&
        rdr_now_ns() - srv->last_sync_ns >= srv->a->cfg->sync_interval_ms * 1000000ull)
        start_sync(srv);
    storage_tick(srv->st, srv->read_only);
    engine_reclaim(srv->a->eng, min_active_snapshot(srv));
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    server *srv = w->data;
    /* Finish the group in flight; server_run syncs and cleans up. */
    group_commit(srv);
    ev_break(loop, EVBREAK_ALL);
}

/* ---- start and stop ---- */

/* Called on a worker thread: wake the loop (ev_async_send is thread-safe). */
static void wake_notify(void *arg)
{
    server *srv = arg;
    ev_async_send(srv->loop, &srv->wake);
}

static int listen_socket(server *srv, char *err, size_t errlen)
{
    const dotdb_config *cfg = srv->a->cfg;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int n = cfg->socket_path[0]
                ? snprintf(srv->sock_path, sizeof srv->sock_path, "%s", cfg->socket_path)
                : snprintf(srv->sock_path, sizeof srv->sock_path, "%s/dotdb.sock", srv->a->dir);
    if (n < 0 || (size_t)n >= sizeof srv->sock_path) {
        snprintf(err, errlen, "socket path for %s is longer than %zu bytes; set "
                 "storage.socket_path to a shorter path", srv->a->dir, sizeof srv->sock_path - 1);
        return DOTDB_ECONFIG;
    }
    memcpy(addr.sun_path, srv->sock_path, sizeof addr.sun_path);
    srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return DOTDB_EOS;
    }
    unlink(srv->sock_path); /* a stale socket of a dead coordinator; we hold the lock */
    /* 0600 at first; with security.group, 0660 only once the socket
     * belongs to that group. */
    mode_t old = umask(0177);
    int brc = bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof addr);
    int berr = errno;
    umask(old);
    if (brc == 0 && srv->a->group_gid >= 0 &&
        (chown(srv->sock_path, (uid_t)-1, (gid_t)srv->a->group_gid) != 0 ||
         chmod(srv->sock_path, 0660) != 0)) {
        brc = -1;
        berr = errno;
    }
    if (brc != 0 || listen(srv->listen_fd, 512) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", srv->sock_path,
                 strerror(brc ? berr : errno));
        close(srv->listen_fd);
        unlink(srv->sock_path);
        return DOTDB_EOS;
    }
    return 0;
}

/* Descriptors kept free for the coordinator's own files: a handshake
 * takes two for a moment, a checkpoint one per directory and file. */
#define FD_RESERVE 32

static uint64_t open_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    uint64_t n = 0;
    if (d == NULL)
        return 64; /* a guess; the accept loop copes with EMFILE anyway */
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own descriptor */
}

/*
 * One descriptor per connection plus the coordinator's own: raise the
 * soft limit as far as needed and allowed, and work out how many
 * connections fit, so that a connection past the limit is refused with a
 * clear error at accept rather than failing its handshake.
 */
static void fit_fd_limit(server *srv)
{
    const dotdb_config *cfg = srv->a->cfg;
    uint64_t open = open_fd_count(), reserve = FD_RESERVE;
    struct rlimit rl;
    srv->fd_conn_limit = UINT64_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    rlim_t want = (rlim_t)(cfg->max_connections + open + reserve);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t limit = (uint64_t)rl.rlim_cur;
    if (limit < open + 2 * reserve) /* a tight limit: share what is left */
        reserve = limit > open ? (limit - open) / 2 : 0;
    srv->fd_conn_limit = limit > open + reserve ? limit - open - reserve : 0;
    if (srv->fd_conn_limit < cfg->max_connections)
        fprintf(stderr, "dotdbd: warning: memory.max_connections is %" PRIu64 " but the "
                "descriptor limit (RLIMIT_NOFILE %llu) leaves room for %" PRIu64 " connections\n",
                cfg->max_connections, (unsigned long long)rl.rlim_cur, srv->fd_conn_limit);
}

/*
 * libev's allocator.  libev aborts the process when an allocation fails
 * (it grows its watcher, pending and epoll arrays when more of them are in
 * use at once than ever before, at any moment); a coordinator that dies on
 * a transient shortage would take every client's writes down with it.  So
 * a failed allocation is retried every millisecond for up to 30 s, and
 * only then handed back (and libev aborts).  tests/integration/
 * malloc_faults.sh fails allocations one by one.
 */
static void *ev_alloc_retrying(void *ptr, long size)
{
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    for (int tries = 0;; tries++) {
        void *p = realloc(ptr, (size_t)size);
        if (p != NULL || tries == 30000)
            return p;
        if (tries == 0)
            fprintf(stderr, "dotdbd: libev cannot allocate %ld bytes; retrying\n", size);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int server_run(const server_args *a)
{
    char err[512];
    ev_set_allocator(ev_alloc_retrying);
    server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return DOTDB_ENOMEM;
    srv->a = a;
    srv->started = time(NULL);
    srv->last_sync_ns = rdr_now_ns();
    srv->loop = ev_default_loop(EVFLAG_AUTO);
    if (srv->loop == NULL) {
        fprintf(stderr, "dotdbd: cannot initialise libev\n");
        free(srv);
        return DOTDB_EOS;
    }
    int rc = listen_socket(srv, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "dotdbd: %s\n", err);
        free(srv);
        return rc;
    }
    fit_fd_limit(srv);
    ev_io_init(&srv->lio, accept_cb, srv->listen_fd, EV_READ);
    ev_prepare_init(&srv->prep, prepare_cb);
    ev_signal_init(&srv->sig_term, signal_cb, SIGTERM);
    ev_signal_init(&srv->sig_int, signal_cb, SIGINT);
    ev_timer_init(&srv->tick, tick_cb, 0.05, 0.05);
    ev_async_init(&srv->wake, wake_cb);
    srv->lio.data = srv->prep.data = srv->sig_term.data = srv->sig_int.data = srv->tick.data =
        srv->wake.data = srv;
    int nworkers = a->cfg->worker_threads > 4 ? 4 : (int)a->cfg->worker_threads;
    rc = wk_create(nworkers > 0 ? nworkers : 1, wake_notify, srv, &srv->pool);
    if (rc != 0) {
        fprintf(stderr, "dotdbd: cannot start worker threads: %s\n", dotdb_strerror(rc));
        close(srv->listen_fd);
        unlink(srv->sock_path);
        free(srv);
        return rc;
    }
    rc = storage_create(a->cfg, a->dir, a->eng, a->log, srv->pool, a->mf, &srv->st);
    if (rc != 0) {
        fprintf(stderr, "dotdbd: %s\n", dotdb_strerror(rc));
        wk_destroy(srv->pool);
        close(srv->listen_fd);
        unlink(srv->sock_path);
        free(srv);
        return rc;
    }
    ev_async_start(srv->loop, &srv->wake);
    ev_io_start(srv->loop, &srv->lio);
    ev_prepare_start(srv->loop, &srv->prep);
    ev_signal_start(srv->loop, &srv->sig_term);
    ev_signal_start(srv->loop, &srv->sig_int);
    ev_timer_start(srv->loop, &srv->tick);
    signal(SIGPIPE, SIG_IGN);

    atomic_store_explicit(&region_header(engine_region(a->eng))->state, SHM_STATE_RUNNING,
                          memory_order_release);
    lockfile_set_state(a->lock, SHM_STATE_RUNNING);
    if (a->ready_fd >= 0) {
        (void)!write(a->ready_fd, "ok\n", 3);
        close(a->ready_fd);
    }
    ev_run(srv->loop, 0);
    ahead_drop(srv); /* a batch still in fragments is not committed */

    /* Shutdown: the last group was written by signal_cb; let the sync in
     * flight finish, then make everything durable whatever the sync_mode
     * and acknowledge what we can. */
    do
        wk_wait_idle(srv->pool);
    while (wk_collect(srv->pool, sync_done, srv) > 0);
    finish_syncs(srv);
    rc = 0;
    if (!srv->read_only) {
        if (wal_sync(a->log, err, sizeof err) != 0) {
            wal_failed(srv, err);
            rc = DOTDB_EIO;
        } else if (engine_applied_lsn(a->eng) > engine_published_lsn(a->eng)) {
            engine_publish(a->eng, engine_applied_lsn(a->eng));
        }
    }
    /* A clean stop leaves a checkpoint of everything: the next start loads
     * it instead of replaying the WAL. */
    if (!srv->read_only) {
        int crc;
        while ((crc = storage_checkpoint_now(srv->st, err, sizeof err)) == DOTDB_EBUSY)
            wk_collect(srv->pool, sync_done, srv);
        if (crc != 0)
            fprintf(stderr, "dotdbd: checkpoint at shutdown failed (the WAL still holds "
                    "everything): %s\n", err);
        else
            complete_waiting(srv);
    }
    send_all_responses(srv);
    wk_destroy(srv->pool);
    ev_io_stop(srv->loop, &srv->lio);
    close(srv->listen_fd);
    unlink(srv->sock_path);
    while (srv->sessions)
        session_close(srv->sessions);
    atomic_store_explicit(&region_header(engine_region(a->eng))->state, SHM_STATE_STOPPED,
                          memory_order_release);
    ev_loop_destroy(srv->loop);
    dbuf_free(&srv->apply_out.log);
    dbuf_free(&srv->apply_out.reply);
    storage_destroy(srv->st);
    free(srv);
    return rc;
}
