/*
 * test_security.c - what the kernel and the socket refuse a client (I1, I3).
 *
 * A raw client speaks the handshake itself, receives the descriptors the
 * library would receive, and tries what a buggy or hostile client could:
 * a writable mapping, mprotect, write(2), shrinking, new seals.  A peer
 * whose uid is not allowed must get an error frame and no descriptor.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "harness.h"
#include "layout.h"
#include "wire.h"

typedef struct hello_result {
    int status;
    int nfds;
    int fds[3];
    uint64_t map_size;
} hello_result;

static void raw_hello(const char *dir, hello_result *r)
{
    memset(r, 0, sizeof *r);
    r->fds[0] = r->fds[1] = r->fds[2] = -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/dotdb.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        r->status = -1000 - errno;
        close(fd);
        return;
    }
    uint8_t frame[WIRE_HDR_SIZE + 16];
    wire_hdr h = {.len = 16, .op = WIRE_OP_HELLO};
    wire_hdr_put(frame, &h);
    st_u32(frame + WIRE_HDR_SIZE, DOTDB_PROTOCOL_VERSION);
    st_u32(frame + WIRE_HDR_SIZE + 4, SHM_LAYOUT_VERSION);
    st_u64(frame + WIRE_HDR_SIZE + 8, (uint64_t)getpid());
    (void)!send(fd, frame, sizeof frame, MSG_NOSIGNAL); /* the refusal may close first */
    uint8_t resp[WIRE_HDR_SIZE + 512];
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {resp, sizeof resp};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    ssize_t n = recvmsg(fd, &msg, 0);
    if (n >= (ssize_t)WIRE_HDR_SIZE) {
        wire_hdr_get(resp, &h);
        r->status = h.status;
        if (h.status == 0)
            r->map_size = ld_u64(resp + WIRE_HDR_SIZE + 8);
    } else {
        r->status = -2000;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_type != SCM_RIGHTS)
            continue;
        r->nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        memcpy(r->fds, CMSG_DATA(c), (size_t)(r->nfds > 3 ? 3 : r->nfds) * sizeof(int));
    }
    close(fd);
}

Test(security, kernel_refuses_client_writes_to_the_data_object, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    hello_result r;
    raw_hello(c.dir, &r);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.nfds, 3, "data object, reader slots, live word");
    int data = r.fds[0];

    void *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, data, 0);
    cr_expect_eq(w, MAP_FAILED, "a writable shared mapping must be refused");
    cr_expect_eq(errno, EPERM);

    uint8_t *ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, data, 0);
    cr_assert_neq(ro, MAP_FAILED, "read-only mapping works");
    cr_expect_eq(ld_u64(ro), SHM_MAGIC);
    cr_expect_neq(mprotect(ro, 4096, PROT_READ | PROT_WRITE), 0, "mprotect to writable refused");

    cr_expect_eq(write(data, "x", 1), -1, "write(2) refused");
    cr_expect_eq(pwrite(data, "x", 1, 100), -1, "pwrite(2) refused");
    cr_expect_neq(ftruncate(data, 4096), 0, "shrinking refused");
    cr_expect_neq(fcntl(data, F_ADD_SEALS, F_SEAL_GROW), 0, "no new seals (would stop growth)");

    void *lw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.fds[2], 0);
    cr_expect_eq(lw, MAP_FAILED, "the live word is read-only for clients");

    munmap(ro, 4096);
    for (int i = 0; i < 3; i++)
        close(r.fds[i]);

    /* The coordinator and other clients are unaffected. */
    dotdb *db = h_open(&c);
    const char *doc = "{\"id\":\"a\",\"v\":1}";
    cr_expect_eq(dotdb_put(db, "s", doc, strlen(doc), NULL), DOTDB_OK);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

/* Run raw_hello as uid 65534 in a child; report status and descriptor count. */
static void hello_as_nobody(const char *dir, int *status, int *nfds)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        hello_result r;
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        raw_hello(dir, &r);
        int out[2] = {r.status, r.nfds};
        (void)!write(p[1], out, sizeof out);
        _exit(0);
    }
    close(p[1]);
    int out[2] = {0, -1};
    ssize_t n;
    do
        n = read(p[0], out, sizeof out);
    while (n < 0 && errno == EINTR);
    close(p[0]);
    int st = h_wait(pid);
    cr_assert_eq(n, (ssize_t)sizeof out, "child acting as uid 65534 reported nothing "
                 "(read %zd, errno %d, exit status 0x%x)", n, errno, st);
    *status = out[0];
    *nfds = out[1];
}

static void open_up_permissions(coord *c)
{
    char sock[300];
    snprintf(sock, sizeof sock, "%s/dotdb.sock", c->dir);
    /* Only to get past the file system so the coordinator's own check is
     * what is tested; the defaults (0700/0600) already stop other users. */
    cr_assert_eq(chmod(c->dir, 0755), 0);
    cr_assert_eq(chmod(sock, 0666), 0);
}

Test(security, uid_not_allowed_gets_an_error_and_no_descriptor, .timeout = 60)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to act as another uid");
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    struct stat st;
    char sock[300];
    snprintf(sock, sizeof sock, "%s/dotdb.sock", c.dir);
    cr_assert_eq(stat(c.dir, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700, "data directory is 0700");
    cr_assert_eq(stat(sock, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "socket is 0600");

    int status, nfds;
    hello_as_nobody(c.dir, &status, &nfds);
    cr_expect(status == -1000 - EACCES, "with default permissions the file system refuses "
              "(status %d)", status);
    open_up_permissions(&c);
    hello_as_nobody(c.dir, &status, &nfds);
    cr_expect_eq(status, DOTDB_EPERM, "coordinator refuses uid 65534 (status %d)", status);
    cr_expect_eq(nfds, 0, "and hands over no descriptor");
    h_stop(&c);
    h_cleanup(&c);
}

Test(security, allowed_uid_is_served, .timeout = 60)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to act as another uid");
    coord c;
    h_init(&c, "{\"security\": {\"allowed_uids\": [65534]}}");
    h_start(&c);
    open_up_permissions(&c);
    int status, nfds;
    hello_as_nobody(c.dir, &status, &nfds);
    cr_expect_eq(status, 0);
    cr_expect_eq(nfds, 3);
    h_stop(&c);
    h_cleanup(&c);
}
