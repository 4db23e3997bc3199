/*
 * client.c - handles, attaching to the coordinator, requests, snapshots,
 * errors and ids.
 *
 * Attaching: connect to DIR/dotdb.sock (starting a coordinator if allowed),
 * send HELLO, receive three descriptors (the sealed data object, our
 * reader-slot page, the lock file's live word), map them, close them.
 * From then on reads need no system call: a snapshot is a slot store and a
 * validation load; a stale attachment is noticed by comparing the live
 * word's epoch with ours (one load).
 */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "readers.h"

static __thread char open_errmsg[1024];

/* ---- errors ---- */

const char *dotdb_strerror(int rc)
{
    switch (rc) {
#define XX(name, value, msg) \
    case value:              \
        return msg;
        DOTDB_ERRNO_MAP(XX)
#undef XX
    }
    return "unknown error";
}

const char *dotdb_err_name(int rc)
{
    switch (rc) {
#define XX(name, value, msg) \
    case value:              \
        return "DOTDB_" #name;
        DOTDB_ERRNO_MAP(XX)
#undef XX
    }
    return "DOTDB_E?";
}

const char *dotdb_errmsg(dotdb *db) { return db ? db->errmsg : open_errmsg; }

int cl_fail(dotdb *db, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->errmsg, sizeof db->errmsg, fmt, ap);
    va_end(ap);
    return rc;
}

void cl_set_open_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(open_errmsg, sizeof open_errmsg, fmt, ap);
    va_end(ap);
}

void dotdb_free(void *p) { free(p); }

/* ---- low-level I/O ---- */

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A frame's header and payload in one system call: sent apart, the
 * header alone would wake the coordinator, which would find half a frame
 * and sleep again until the payload came (two wake-ups per request). */
static int send_frame(int fd, const uint8_t *hdr, const void *payload, size_t len)
{
    struct iovec iov[2] = {{(void *)hdr, WIRE_HDR_SIZE}, {(void *)payload, len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    size_t left = WIRE_HDR_SIZE + len;
    while (left) {
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        left -= (size_t)w;
        /* skip what went out */
        while (msg.msg_iovlen && (size_t)w >= msg.msg_iov[0].iov_len) {
            w -= (ssize_t)msg.msg_iov[0].iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen) {
            msg.msg_iov[0].iov_base = (uint8_t *)msg.msg_iov[0].iov_base + w;
            msg.msg_iov[0].iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Read n bytes, first polling for up to spin_us microseconds (yielding the
 * CPU between tries) before blocking.  A reply that comes within that time
 * costs no wake-up of this process, which on this kind of machine is most
 * of a round trip (docs/ARCHITECTURE.md, "A client polls for its reply").
 * spin_us 0: block at once. */
static int read_spin(int fd, void *p, size_t n, int spin_us)
{
    if (spin_us > 0) {
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
            if (r > 0)
                return (size_t)r == n ? 0 : read_all(fd, (uint8_t *)p + r, n - (size_t)r);
            if (r == 0 || (errno != EAGAIN && errno != EINTR))
                return -1;
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000000 + (t.tv_nsec - t0.tv_nsec) / 1000 >= spin_us)
                break;
            sched_yield();
        }
    }
    return read_all(fd, p, n);
}

/* ---- attaching ---- */

static void conn_free(conn *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    if (c->base)
        munmap(c->base, c->map_size);
    if (c->slots)
        munmap(c->slots, RDR_PAGE_SIZE);
    if (c->live)
        munmap(c->live, LIVE_FILE_SIZE);
    free(c);
}

void conn_unref(conn *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        conn_free(c);
}

static int sock_connect(dotdb *db, int *fd_out)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/dotdb.sock", db->dir);
    if (n < 0 || (size_t)n >= sizeof addr.sun_path)
        return cl_fail(db, DOTDB_EINVAL, "socket path %s/dotdb.sock is too long", db->dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cl_fail(db, DOTDB_EOS, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            return cl_fail(db, DOTDB_ENOCOORD, "no coordinator is running for %s "
                           "(start one with: dotdb --db %s coordinator start)", db->dir, db->dir);
        if (e == EACCES || e == EPERM)
            return cl_fail(db, DOTDB_EPERM, "permission denied on %s", addr.sun_path);
        return cl_fail(db, DOTDB_EOS, "connect %s: %s", addr.sun_path, strerror(e));
    }
    *fd_out = fd;
    return 0;
}

/* Receive the HELLO response and its descriptors. */
static int recv_hello(dotdb *db, int fd, wire_hdr *h, uint8_t *pl, size_t plcap, int fds[3])
{
    uint8_t frame[WIRE_HDR_SIZE + 64];
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {frame, WIRE_HDR_SIZE};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    fds[0] = fds[1] = fds[2] = -1;
    ssize_t n;
    do
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    while (n < 0 && errno == EINTR);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(fds, CMSG_DATA(c), c->cmsg_len - CMSG_LEN(0) < 3 * sizeof(int)
                                          ? c->cmsg_len - CMSG_LEN(0) : 3 * sizeof(int));
    if (n != WIRE_HDR_SIZE)
        return cl_fail(db, DOTDB_EDISCONNECTED, "the coordinator closed the connection during "
                       "the handshake");
    wire_hdr_get(frame, h);
    if (h->len > plcap || read_all(fd, pl, h->len) != 0)
        return cl_fail(db, DOTDB_EPROTO, "bad handshake response");
    if (h->status != 0) {
        return cl_fail(db, h->status, "%.*s", (int)h->len, (const char *)pl);
    }
    if (h->len < 40 || fds[0] < 0 || fds[1] < 0 || fds[2] < 0)
        return cl_fail(db, DOTDB_EPROTO, "handshake response without descriptors");
    return 0;
}

static int attach(dotdb *db, conn **out)
{
    *out = NULL;
    int fd = -1, fds[3] = {-1, -1, -1};
    int rc = sock_connect(db, &fd);
    if (rc == DOTDB_ENOCOORD && !db->opts.no_autostart) {
        rc = cl_autostart(db);
        if (rc == 0)
            rc = sock_connect(db, &fd);
    }
    if (rc != 0)
        return rc;
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return cl_fail(db, DOTDB_ENOMEM, "out of memory");
    }
    c->fd = fd;
    atomic_init(&c->refs, 1);
    uint8_t hello[WIRE_HDR_SIZE + 16], pl[1024];
    wire_hdr h = {.len = 16, .req_id = 0, .op = WIRE_OP_HELLO};
    wire_hdr_put(hello, &h);
    st_u32(hello + WIRE_HDR_SIZE, DOTDB_PROTOCOL_VERSION);
    st_u32(hello + WIRE_HDR_SIZE + 4, SHM_LAYOUT_VERSION);
    st_u64(hello + WIRE_HDR_SIZE + 8, (uint64_t)getpid());
    if (write_all(fd, hello, sizeof hello) != 0) {
        /* A coordinator that refuses us (uid, max_connections) answers at
         * accept and closes, maybe before our HELLO went out: its error
         * frame is then waiting to be read. */
        int e = errno;
        rc = recv_hello(db, fd, &h, pl, sizeof pl, fds);
        if (rc == 0 || rc == DOTDB_EDISCONNECTED || rc == DOTDB_EPROTO)
            rc = cl_fail(db, DOTDB_EDISCONNECTED, "cannot send the handshake: %s", strerror(e));
        goto fail;
    }
    if ((rc = recv_hello(db, fd, &h, pl, sizeof pl, fds)) != 0)
        goto fail;
    c->epoch = ld_u64(pl);
    c->map_size = ld_u64(pl + 8);
    c->max_doc = ld_u64(pl + 24);
    c->max_depth = ld_u64(pl + 32);
    void *p = mmap(NULL, c->map_size, PROT_READ, MAP_SHARED | MAP_NORESERVE, fds[0], 0);
    void *q = mmap(NULL, RDR_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
    void *l = mmap(NULL, LIVE_FILE_SIZE, PROT_READ, MAP_SHARED, fds[2], 0);
    c->base = p == MAP_FAILED ? NULL : p;
    c->slots = q == MAP_FAILED ? NULL : q;
    c->live = l == MAP_FAILED ? NULL : l;
    if (!c->base || !c->slots || !c->live) {
        rc = cl_fail(db, DOTDB_EOS, "cannot map the shared memory: %s", strerror(errno));
        goto fail;
    }
    const shm_header *hd = (const shm_header *)c->base;
    if (hd->magic != SHM_MAGIC || hd->layout_version != SHM_LAYOUT_VERSION || hd->epoch != c->epoch) {
        rc = cl_fail(db, DOTDB_EVERSION, "the shared memory has layout %u, this library "
                     "reads layout %u", hd->layout_version, SHM_LAYOUT_VERSION);
        goto fail;
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    *out = c;
    return 0;
fail:
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    conn_free(c);
    return rc;
}

/* Is c still attached to a running coordinator of the same epoch? */
int cl_conn_is_current(const conn *c)
{
    /* Pairs with the coordinator's release stores in lockfile.c. */
    return !atomic_load_explicit(&((conn *)c)->broken, memory_order_relaxed) &&
           atomic_load_explicit(&c->live->epoch, memory_order_acquire) == c->epoch &&
           atomic_load_explicit(&c->live->state, memory_order_acquire) != SHM_STATE_STOPPED;
}

/* Replace the current conn (under db->mu). */
static int reattach(dotdb *db, conn *stale)
{
    conn *cur = atomic_load(&db->cur);
    if (cur != stale && cur && cl_conn_is_current(cur))
        return 0; /* another thread already did it */
    conn *fresh;
    int rc = attach(db, &fresh);
    if (rc != 0)
        return rc;
    atomic_store(&db->cur, fresh);
    /* Wait out threads that loaded the old pointer without a reference. */
    while (atomic_load(&db->active) != 0)
        sched_yield();
    conn_unref(cur);
    return 0;
}

int cl_conn_get(dotdb *db, conn **out)
{
    for (int tries = 0;; tries++) {
        atomic_fetch_add(&db->active, 1);
        conn *c = atomic_load(&db->cur);
        if (c && cl_conn_is_current(c)) {
            atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
            atomic_fetch_sub(&db->active, 1);
            *out = c;
            return 0;
        }
        atomic_fetch_sub(&db->active, 1);
        if (tries > 0)
            return cl_fail(db, DOTDB_EDISCONNECTED, "cannot re-attach to the coordinator of %s",
                           db->dir);
        pthread_mutex_lock(&db->mu);
        int rc = reattach(db, c);
        pthread_mutex_unlock(&db->mu);
        if (rc != 0)
            return rc == DOTDB_ENOCOORD ? cl_fail(db, DOTDB_EDISCONNECTED,
                                                  "the coordinator of %s stopped: %s", db->dir,
                                                  db->errmsg)
                                        : rc;
    }
}

/* ---- requests ---- */

static int call_locked(dotdb *db, conn *c, uint16_t op, uint64_t lsn, const void *payload,
                       size_t len, dbuf *resp, uint64_t *lsn_out)
{
    uint8_t hdr[WIRE_HDR_SIZE];
    wire_hdr h = {.len = (uint32_t)len, .req_id = ++c->next_req, .op = op, .lsn = lsn};
    wire_hdr_put(hdr, &h);
    if (send_frame(c->fd, hdr, payload, len) != 0)
        return cl_fail(db, DOTDB_EDISCONNECTED, "lost the connection to the coordinator while "
                       "sending (the request was not applied)");
    if (read_spin(c->fd, hdr, sizeof hdr, db->spin_us) != 0)
        return cl_fail(db, DOTDB_EDISCONNECTED, "lost the connection to the coordinator before "
                       "its answer: the request may or may not have been applied");
    wire_hdr r;
    wire_hdr_get(hdr, &r);
    dbuf tmp;
    dbuf_init(&tmp);
    dbuf *body = resp ? resp : &tmp;
    if (r.len > WIRE_MAX_FRAME || dbuf_reserve(body, (size_t)r.len + 1) != 0) {
        dbuf_free(&tmp);
        return cl_fail(db, DOTDB_EPROTO, "response of %u bytes", r.len);
    }
    if (read_all(c->fd, body->data + body->len, r.len) != 0) {
        dbuf_free(&tmp);
        return cl_fail(db, DOTDB_EDISCONNECTED, "lost the connection to the coordinator");
    }
    if (r.req_id != h.req_id) {
        dbuf_free(&tmp);
        return cl_fail(db, DOTDB_EPROTO, "response %u to request %u", r.req_id, h.req_id);
    }
    int rc = r.status;
    if (rc != 0)
        cl_fail(db, rc, "%.*s", (int)r.len, (const char *)body->data + body->len);
    else
        body->len += r.len;
    if (lsn_out)
        *lsn_out = r.lsn;
    dbuf_free(&tmp);
    return rc;
}

int cl_call(dotdb *db, uint16_t op, uint64_t lsn, const void *payload, size_t len, dbuf *resp,
            uint64_t *lsn_out)
{
    conn *c;
    if (len > WIRE_MAX_FRAME)
        return cl_fail(db, DOTDB_ETOOBIG, "request of %zu bytes is too large", len);
    pthread_mutex_lock(&db->mu);
    conn *cur = atomic_load(&db->cur);
    int rc = 0;
    if (cur == NULL || !cl_conn_is_current(cur))
        rc = reattach(db, cur);
    if (rc == 0) {
        c = atomic_load(&db->cur);
        rc = call_locked(db, c, op, lsn, payload, len, resp, lsn_out);
        if (rc == DOTDB_EDISCONNECTED) {
            /* The next call starts over with a fresh attachment. */
            atomic_store(&c->broken, 1);
        }
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* ---- one request in fragments ---- */

int cl_stream_begin(dotdb *db, cl_stream *st)
{
    st->db = db;
    st->c = NULL;
    st->sent = 0;
    pthread_mutex_lock(&db->mu);
    conn *cur = atomic_load(&db->cur);
    int rc = 0;
    if (cur == NULL || !cl_conn_is_current(cur))
        rc = reattach(db, cur);
    if (rc != 0) {
        pthread_mutex_unlock(&db->mu);
        return rc;
    }
    st->c = atomic_load(&db->cur);
    return 0;
}

int cl_stream_part(cl_stream *st, uint16_t op, const void *payload, size_t len)
{
    dotdb *db = st->db;
    conn *c = st->c;
    if (len > WIRE_MAX_FRAME)
        return cl_fail(db, DOTDB_ETOOBIG, "request of %zu bytes is too large", len);
    uint8_t hdr[WIRE_HDR_SIZE];
    wire_hdr h = {.len = (uint32_t)len, .req_id = ++c->next_req, .op = op, .flags = WIRE_F_MORE};
    wire_hdr_put(hdr, &h);
    st->sent = 1;
    if (send_frame(c->fd, hdr, payload, len) != 0) {
        atomic_store(&c->broken, 1);
        return cl_fail(db, DOTDB_EDISCONNECTED, "lost the connection to the coordinator while "
                       "sending (the request was not applied)");
    }
    return 0;
}

int cl_stream_end(cl_stream *st, uint16_t op, uint64_t lsn, const void *payload, size_t len,
                  dbuf *resp, uint64_t *lsn_out)
{
    dotdb *db = st->db;
    int rc = len > WIRE_MAX_FRAME
                 ? cl_fail(db, DOTDB_ETOOBIG, "request of %zu bytes is too large", len)
                 : call_locked(db, st->c, op, lsn, payload, len, resp, lsn_out);
    if (rc == DOTDB_EDISCONNECTED || rc == DOTDB_ETOOBIG)
        atomic_store(&st->c->broken, 1); /* the coordinator may hold half a batch */
    pthread_mutex_unlock(&db->mu);
    return rc;
}

void cl_stream_abort(cl_stream *st, uint16_t op)
{
    dotdb *db = st->db;
    if (st->sent) {
        /* An ending frame without operations abandons the fragments sent;
         * its error answer is expected.  The caller's message stays. */
        char keep[sizeof db->errmsg];
        memcpy(keep, db->errmsg, sizeof keep);
        uint8_t none[4] = {0};
        int rc = call_locked(db, st->c, op, 0, none, sizeof none, NULL, NULL);
        if (rc == DOTDB_EDISCONNECTED || rc == DOTDB_OK)
            atomic_store(&st->c->broken, 1);
        memcpy(db->errmsg, keep, sizeof keep);
    }
    pthread_mutex_unlock(&db->mu);
}

/* ---- snapshots ---- */

int cl_snap_begin(dotdb *db, conn *c, int *slot_out, uint64_t *lsn_out)
{
    uint64_t used = atomic_load_explicit(&c->slot_used, memory_order_relaxed);
    int spare_freed = 0;
    for (;;) {
        if (used == UINT64_MAX && !spare_freed) {
            /* one of them may be the idle slot an ended transaction keeps */
            txn_spare_free(atomic_exchange_explicit(&db->spare_txn, NULL, memory_order_acquire));
            spare_freed = 1;
            used = atomic_load_explicit(&c->slot_used, memory_order_relaxed);
            continue;
        }
        if (used == UINT64_MAX)
            return cl_fail(db, DOTDB_EBUSY, "this handle already holds %u open snapshots "
                           "(transactions and cursors)", RDR_SLOTS);
        int i = __builtin_ctzll(~used);
        if (atomic_compare_exchange_weak_explicit(&c->slot_used, &used, used | (1ull << i),
                                                  memory_order_acquire, memory_order_relaxed)) {
            *lsn_out = cl_snap_resume(c, i);
            *slot_out = i;
            return 0;
        }
    }
}

uint64_t cl_snap_resume(conn *c, int slot)
{
    rdr_slot *s = &c->slots->slots[slot];
    /* A mark left by an ousted earlier snapshot must not expire this one
     * when it gets the same LSN (no write in between). */
    atomic_store_explicit(&s->ousted_lsn, 0, memory_order_relaxed);
    /* No clock read on this path: the coordinator times snapshots from
     * when it first sees this sequence number. */
    atomic_store_explicit(&s->begin_seq,
                          atomic_load_explicit(&s->begin_seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return rdr_begin(s, (shm_header *)c->base);
}

void cl_snap_pause(conn *c, int slot) { rdr_end(&c->slots->slots[slot]); }

void cl_slot_release(conn *c, int slot)
{
    atomic_fetch_and_explicit(&c->slot_used, ~(1ull << slot), memory_order_release);
}

void cl_snap_end(conn *c, int slot)
{
    cl_snap_pause(c, slot);
    cl_slot_release(c, slot);
}

int cl_snap_check(dotdb *db, conn *c, int slot, uint64_t lsn)
{
    /* Pairs with the coordinator's seq_cst store in expire_snapshots(). */
    if (atomic_load_explicit(&c->slots->slots[slot].ousted_lsn, memory_order_acquire) == lsn)
        return cl_fail(db, DOTDB_ESNAPSHOT_EXPIRED, "snapshot at LSN %llu outlived "
                       "memory.max_snapshot_age_ms and was released", (unsigned long long)lsn);
    return 0;
}

/* ---- ids and encoding ---- */

void cl_new_id(dotdb *db, char buf[DOTDB_ID_MAX + 1])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 16;
    uint64_t old = atomic_load(&db->id_clock), next;
    /* Monotonic per handle: the time in ms, or one more than the last id
     * when several fall in the same millisecond (up to 65536, then the
     * clock runs ahead a little). */
    do
        next = now > old ? now : old + 1;
    while (!atomic_compare_exchange_weak(&db->id_clock, &old, next));
    /* "%012llx%08x%04x" by hand: snprintf would cost more than parsing a
     * small document, and put_many asks for an id per document. */
    static const char hex[] = "0123456789abcdef";
    uint64_t ms = next >> 16;
    uint32_t rnd = db->rnd, ctr = (uint32_t)(next & 0xffff);
    for (int i = 11; i >= 0; i--, ms >>= 4)
        buf[i] = hex[ms & 15];
    for (int i = 19; i >= 12; i--, rnd >>= 4)
        buf[i] = hex[rnd & 15];
    for (int i = 23; i >= 20; i--, ctr >>= 4)
        buf[i] = hex[ctr & 15];
    buf[24] = 0;
}

codec_limits cl_limits(const conn *c)
{
    codec_limits lim = {.max_size = c->max_doc, .max_depth = (int)c->max_depth};
    return lim;
}

int cl_encode_doc(dotdb *db, conn *c, const char *json, size_t len, int gen, dbuf *out,
                  char *id_buf)
{
    char gid[DOTDB_ID_MAX + 1];
    if (json == NULL)
        return cl_fail(db, DOTDB_EINVAL, "no document given");
    if (gen)
        cl_new_id(db, gid);
    codec_limits lim = cl_limits(c);
    char err[512];
    err[0] = 0;
    int rc = codec_from_json(json, len, &lim, gen ? gid : NULL, out, id_buf, err, sizeof err);
    if (rc != 0)
        return cl_fail(db, rc, "%s", err[0] ? err : dotdb_strerror(rc));
    return 0;
}

/* ---- open / close ---- */

#define SPIN_US_DEFAULT 1000
#define SPIN_US_MAX 1000000

/* The reply polling budget of a handle: the option, else $DOTDB_SPIN_US (a
 * value that is not a whole number is ignored), else the default; none on
 * a machine with one core, where polling only delays the coordinator. */
static int resolve_spin_us(const dotdb_options *o)
{
    long v = o->spin_us;
    if (v == 0) {
        const char *env = getenv("DOTDB_SPIN_US");
        char *end;
        errno = 0;
        long e = env && *env ? strtol(env, &end, 10) : 0;
        v = env && *env && errno == 0 && *end == 0 ? (e > 0 ? e : -1) : SPIN_US_DEFAULT;
    }
    if (v < 0 || sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return 0;
    return v > SPIN_US_MAX ? SPIN_US_MAX : (int)v;
}

int dotdb_open(const char *dir, const dotdb_options *opts, dotdb **out)
{
    *out = NULL;
    if (dir == NULL || dir[0] == 0) {
        cl_set_open_error("no data directory given");
        return DOTDB_EINVAL;
    }
    dotdb *db = calloc(1, sizeof *db);
    if (db == NULL) {
        cl_set_open_error("out of memory");
        return DOTDB_ENOMEM;
    }
    if (realpath(dir, db->dir) == NULL) {
        if (strlen(dir) >= sizeof db->dir) {
            free(db);
            cl_set_open_error("data directory path is too long");
            return DOTDB_EINVAL;
        }
        snprintf(db->dir, sizeof db->dir, "%s", dir); /* may not exist yet: autostart creates it */
    }
    if (opts)
        db->opts = *opts;
    if (opts && opts->coordinator_path)
        snprintf(db->coord_path, sizeof db->coord_path, "%s", opts->coordinator_path);
    db->opts.coordinator_path = db->coord_path[0] ? db->coord_path : NULL;
    db->spin_us = resolve_spin_us(&db->opts);
    pthread_mutex_init(&db->mu, NULL);
    if (getrandom(&db->rnd, sizeof db->rnd, 0) != (ssize_t)sizeof db->rnd)
        db->rnd = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
    conn *c;
    int rc = attach(db, &c);
    if (rc != 0) {
        cl_set_open_error("%s", db->errmsg);
        pthread_mutex_destroy(&db->mu);
        free(db);
        return rc;
    }
    /* A relative dir resolved now that the coordinator created it. */
    char real[PATH_MAX];
    if (realpath(db->dir, real) != NULL)
        snprintf(db->dir, sizeof db->dir, "%s", real);
    atomic_store(&db->cur, c);
    *out = db;
    return 0;
}

void dotdb_close(dotdb *db)
{
    if (db == NULL)
        return;
    txn_spare_free(atomic_load(&db->spare_txn)); /* before cur: it may hold a reference */
    conn_unref(atomic_load(&db->cur));
    pthread_mutex_destroy(&db->mu);
    free(db);
}

int cl_check_name(dotdb *db, const char *coll)
{
    if (name_cstr_len(coll) == 0)
        return cl_fail(db, DOTDB_EBADNAME,
                       "invalid collection name \"%.80s\": use 1 to 64 characters A-Z a-z 0-9 _ "
                       ". -, not starting with . or -", coll ? coll : "(null)");
    return 0;
}

int cl_check_id(dotdb *db, const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > DOTDB_ID_MAX)
        return cl_fail(db, DOTDB_EBADID, "id must be a string of 1 to %d bytes", DOTDB_ID_MAX);
    return 0;
}
