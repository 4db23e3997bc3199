/*
 * raw_client.h - a client that speaks the wire protocol (lib/wire.h) by
 * hand, for tests that send what the library never would: garbage, cut-off
 * frames, wrong versions, batches that skip the library's checks.  Every
 * wait is bounded by a deadline (poll), never by a sleep.
 */
#ifndef DOTDB_TEST_RAW_CLIENT_H
#define DOTDB_TEST_RAW_CLIENT_H

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "harness.h"
#include "layout.h"
#include "wire.h"

typedef struct rframe {
    wire_hdr h;
    char pl[4096]; /* the payload, cut to fit and NUL-terminated */
    int nfds;
    int fds[3];
} rframe;

/* A connected socket to c's coordinator, or -1 with errno. */
static inline int raw_connect(const coord *c)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%.*s/dotdb.sock",
                     (int)(sizeof addr.sun_path - 12), c->dir);
    cr_assert(n > 0 && (size_t)n < sizeof addr.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Send all n bytes; -1 when the peer closed first. */
static inline int raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static inline int raw_frame(int fd, uint16_t op, uint32_t req_id, uint64_t lsn, const void *pl,
                            uint32_t len)
{
    uint8_t hdr[WIRE_HDR_SIZE];
    wire_hdr h = {.len = len, .req_id = req_id, .op = op, .lsn = lsn};
    wire_hdr_put(hdr, &h);
    if (raw_send(fd, hdr, sizeof hdr) != 0)
        return -1;
    return len ? raw_send(fd, pl, len) : 0;
}

/* Read exactly n bytes by the deadline: 1, 0 at EOF, -1 on timeout. */
static inline int raw_read_by(int fd, void *p, size_t n, uint64_t deadline, struct msghdr *first)
{
    uint8_t *b = p;
    while (n) {
        int left = (int)(deadline > h_now_ms() ? deadline - h_now_ms() : 0);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t k;
        if (first) {
            first->msg_iov->iov_base = b;
            first->msg_iov->iov_len = n;
            k = recvmsg(fd, first, MSG_CMSG_CLOEXEC);
            first = NULL;
        } else {
            k = read(fd, b, n);
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == ECONNRESET)
            return 0;
        if (k <= 0)
            return k == 0 ? 0 : -1;
        b += k;
        n -= (size_t)k;
    }
    return 1;
}

/* The next frame within timeout_ms: 1 (in *f, descriptors it carried in
 * f->fds), 0 at EOF, -1 on timeout. */
static inline int raw_recv(int fd, rframe *f, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    uint8_t hdr[WIRE_HDR_SIZE];
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    memset(f, 0, sizeof *f);
    f->fds[0] = f->fds[1] = f->fds[2] = -1;
    int r = raw_read_by(fd, hdr, sizeof hdr, deadline, &msg);
    if (r <= 0)
        return r;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        f->nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        memcpy(f->fds, CMSG_DATA(c), (size_t)(f->nfds > 3 ? 3 : f->nfds) * sizeof(int));
    }
    wire_hdr_get(hdr, &f->h);
    size_t keep = f->h.len < sizeof f->pl - 1 ? f->h.len : sizeof f->pl - 1;
    if (keep && (r = raw_read_by(fd, f->pl, keep, deadline, NULL)) <= 0)
        return r;
    for (size_t rest = f->h.len - keep; rest;) { /* drop what does not fit */
        char sink[4096];
        size_t n = rest < sizeof sink ? rest : sizeof sink;
        if ((r = raw_read_by(fd, sink, n, deadline, NULL)) <= 0)
            return r;
        rest -= n;
    }
    f->pl[keep] = 0;
    return 1;
}

static inline void raw_close_fds(rframe *f)
{
    for (int i = 0; i < 3; i++)
        if (f->fds[i] >= 0)
            close(f->fds[i]);
    f->fds[0] = f->fds[1] = f->fds[2] = -1;
}

/* Send HELLO with the given versions; 1 and the response in *f, or 0/-1. */
static inline int raw_hello(int fd, uint32_t proto, uint32_t layout, rframe *f)
{
    uint8_t pl[16];
    st_u32(pl, proto);
    st_u32(pl + 4, layout);
    st_u64(pl + 8, (uint64_t)getpid());
    (void)raw_frame(fd, WIRE_OP_HELLO, 1, 0, pl, sizeof pl); /* a refusal may close first */
    return raw_recv(fd, f, 5000);
}

/* Connect and complete the handshake; the descriptors stay in *f when f
 * is not NULL (else they are closed).  Returns the socket. */
static inline int raw_open(const coord *c, rframe *f)
{
    rframe local;
    rframe *r = f ? f : &local;
    int fd = raw_connect(c);
    cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
    cr_assert_eq(raw_hello(fd, DOTDB_PROTOCOL_VERSION, SHM_LAYOUT_VERSION, r), 1);
    cr_assert_eq(r->h.status, 0, "HELLO refused: %s", r->pl);
    cr_assert_eq(r->nfds, 3);
    if (f == NULL)
        raw_close_fds(r);
    return fd;
}

/* PING on an open connection: the status of its response (skipping
 * nothing: the next frame must be the answer), or -1000 if none came. */
static inline int raw_ping(int fd, uint32_t req_id)
{
    rframe f;
    if (raw_frame(fd, WIRE_OP_PING, req_id, 0, NULL, 0) != 0 || raw_recv(fd, &f, 5000) != 1)
        return -1000;
    if (f.h.req_id != req_id || f.h.op != WIRE_OP_PING)
        return -1001;
    return f.h.status;
}

/* Read frames until EOF (1) or timeout (0); error frames are counted into
 * *n_err and the last one kept in *last (both may be NULL). */
static inline int raw_wait_eof(int fd, int timeout_ms, int *n_err, rframe *last)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    rframe f;
    for (;;) {
        int left = (int)(deadline > h_now_ms() ? deadline - h_now_ms() : 0);
        int r = raw_recv(fd, &f, left);
        if (r == 0)
            return 1;
        if (r < 0)
            return 0;
        raw_close_fds(&f);
        if (f.h.status != 0) {
            if (n_err)
                (*n_err)++;
            if (last)
                *last = f;
        }
    }
}

#endif /* DOTDB_TEST_RAW_CLIENT_H */
