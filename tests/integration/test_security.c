/*
 * test_security.c - what the kernel and the socket refuse a client (I1, I3).
 *
 * A raw client speaks the handshake itself, receives the descriptors the
 * library would receive, and tries what a buggy or hostile client could:
 * a writable mapping, mprotect, write(2), shrinking, new seals.  A peer
 * whose uid is not allowed must get an error frame and no descriptor.
 * Also the defaults on disk: owner-only files, security.group, backups
 * only for the owner, and symlinks planted under the data directory
 * before a checkpoint.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <ftw.h>
#include <grp.h>
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
    int seals = fcntl(data, F_GET_SEALS);
    cr_expect_eq(seals & (F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL),
                 F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL, "data object seals 0x%x", seals);
    seals = fcntl(r.fds[1], F_GET_SEALS);
    cr_expect_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, "slot page seals 0x%x", seals);

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

/* Run raw_hello in a child as uid/gid with the supplementary groups
 * given; report status and descriptor count. */
static void hello_as(const char *dir, uid_t uid, gid_t gid, int ngroups, const gid_t *groups,
                     int *status, int *nfds)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        hello_result r;
        if (setgroups((size_t)ngroups, groups) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
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
    cr_assert_eq(n, (ssize_t)sizeof out, "child acting as uid %u reported nothing "
                 "(read %zd, errno %d, exit status 0x%x)", (unsigned)uid, n, errno, st);
    *status = out[0];
    *nfds = out[1];
}

static void hello_as_nobody(const char *dir, int *status, int *nfds)
{
    hello_as(dir, 65534, 65534, 0, NULL, status, nfds);
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

/* ---- the defaults on disk ---- */

/* nftw has no user pointer: the walk reports through these. */
static const char *walk_sock;
static int walk_bad, walk_seen;
static char walk_first_bad[600];

static int owner_only(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)flag;
    walk_seen++;
    if (ftw->level == 0 || (walk_sock && strcmp(path, walk_sock) == 0))
        return 0; /* the directory and the socket are checked on their own */
    if ((st->st_mode & 077) != 0 && walk_bad++ == 0)
        snprintf(walk_first_bad, sizeof walk_first_bad, "%s is %o", path,
                 (unsigned)(st->st_mode & 0777));
    return 0;
}

/* Every file and directory below dir is accessible to its owner only. */
static void expect_owner_only_below(const char *dir, const char *sock)
{
    walk_sock = sock;
    walk_bad = walk_seen = 0;
    cr_assert_eq(nftw(dir, owner_only, 16, FTW_PHYS), 0);
    cr_expect_eq(walk_bad, 0, "%d entries readable by others, e.g. %s", walk_bad, walk_first_bad);
    cr_expect_gt(walk_seen, 8, "the walk saw the database's files");
}

Test(security, data_directory_socket_and_every_file_are_owner_only, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    cr_assert_eq(chmod(c.dir, 0755), 0); /* a directory made by hand, too open */
    h_start(&c);
    dotdb *db = h_open(&c);
    const char *doc = "{\"id\":\"a\",\"v\":1}";
    cr_assert_eq(dotdb_put(db, "s", doc, strlen(doc), NULL), DOTDB_OK);
    char *out = NULL;
    cr_assert_eq(dotdb_checkpoint(db, 0, NULL, &out, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_free(out);
    struct stat st;
    char sock[300];
    snprintf(sock, sizeof sock, "%s/dotdb.sock", c.dir);
    cr_assert_eq(stat(c.dir, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700, "data directory is %o", (unsigned)(st.st_mode & 0777));
    cr_assert_eq(stat(sock, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "socket is %o", (unsigned)(st.st_mode & 0777));
    expect_owner_only_below(c.dir, sock);
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}

Test(security, group_gets_0750_and_0660_and_its_members_are_let_in, .timeout = 60)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to act as other users and groups");
    struct group *g = getgrnam("nogroup");
    if (g == NULL)
        cr_skip_test("no group \"nogroup\"");
    gid_t gid = g->gr_gid;
    coord c;
    h_init(&c, "{\"security\": {\"group\": \"nogroup\"}}");
    h_start(&c);
    dotdb *db = h_open(&c);
    const char *doc = "{\"id\":\"a\",\"v\":1}";
    cr_assert_eq(dotdb_put(db, "s", doc, strlen(doc), NULL), DOTDB_OK);
    char *out = NULL;
    cr_assert_eq(dotdb_checkpoint(db, 0, NULL, &out, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_free(out);
    dotdb_close(db);
    struct stat st;
    char sock[300];
    snprintf(sock, sizeof sock, "%s/dotdb.sock", c.dir);
    cr_assert_eq(stat(c.dir, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0750, "data directory is %o", (unsigned)(st.st_mode & 0777));
    cr_expect_eq(st.st_gid, gid, "data directory belongs to group %u", (unsigned)st.st_gid);
    cr_assert_eq(stat(sock, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0660, "socket is %o", (unsigned)(st.st_mode & 0777));
    cr_expect_eq(st.st_gid, gid, "socket belongs to group %u", (unsigned)st.st_gid);
    expect_owner_only_below(c.dir, sock); /* the group reaches the socket, nothing else */

    int status, nfds;
    hello_as(c.dir, 12345, gid, 0, NULL, &status, &nfds);
    cr_expect_eq(status, 0, "a member by primary group is served (status %d)", status);
    cr_expect_eq(nfds, 3);
    gid_t sup[1] = {gid};
    hello_as(c.dir, 12345, 12345, 1, sup, &status, &nfds);
    cr_expect_eq(status, 0, "a member by supplementary group is served (status %d)", status);
    cr_expect_eq(nfds, 3);
    hello_as(c.dir, 12345, 12345, 0, NULL, &status, &nfds);
    cr_expect(status == -1000 - EACCES, "the file system stops a non-member (status %d)", status);
    open_up_permissions(&c);
    hello_as(c.dir, 12345, 12345, 0, NULL, &status, &nfds);
    cr_expect_eq(status, DOTDB_EPERM, "the coordinator refuses a non-member (status %d)", status);
    cr_expect_eq(nfds, 0);
    h_stop(&c);
    h_cleanup(&c);
}

Test(security, unknown_group_stops_start_up, .timeout = 60)
{
    coord c;
    h_init(&c, "{\"security\": {\"group\": \"no-such-group-dotdb\"}}");
    char out[2048];
    int st = h_run_dotdbd(&c, NULL, out, sizeof out, 20000);
    cr_expect(st != 0 && st != -1, "dotdbd must refuse to start (status %d)", st);
    cr_expect(strstr(out, "no group named \"no-such-group-dotdb\"") != NULL, "%s", out);
    h_cleanup(&c);
}

Test(security, only_the_owner_may_start_a_backup, .timeout = 60)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to act as another uid");
    coord c;
    h_init(&c, "{\"security\": {\"allowed_uids\": [12345]}}");
    h_start(&c);
    open_up_permissions(&c);
    char dest[300];
    snprintf(dest, sizeof dest, "%s-backup", c.dir);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        int out[2] = {1, 0};
        if (setgroups(0, NULL) == 0 && setgid(12345) == 0 && setuid(12345) == 0) {
            dotdb_options o = {.no_autostart = 1};
            dotdb *db = NULL;
            out[0] = dotdb_open(c.dir, &o, &db);
            if (out[0] == DOTDB_OK) {
                char *json = NULL;
                out[0] = dotdb_backup(db, dest, &json, NULL);
                out[1] = strstr(dotdb_errmsg(db), "only the database owner") != NULL;
                dotdb_free(json);
                dotdb_close(db);
            }
        }
        (void)!write(p[1], out, sizeof out);
        _exit(0);
    }
    close(p[1]);
    int out[2] = {0, 0};
    cr_assert_eq(read(p[0], out, sizeof out), (ssize_t)sizeof out);
    close(p[0]);
    h_wait(pid);
    cr_expect_eq(out[0], DOTDB_EPERM, "a backup by another uid: %s", dotdb_err_name(out[0]));
    cr_expect(out[1], "the message says why");
    struct stat st;
    cr_expect_neq(stat(dest, &st), 0, "nothing was written at the destination");
    /* the owner may */
    dotdb *db = h_open(&c);
    char *json = NULL;
    cr_expect_eq(dotdb_backup(db, dest, &json, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_free(json);
    dotdb_close(db);
    h_stop(&c);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dest);
    (void)!system(cmd);
    h_cleanup(&c);
}

/* ---- symlinks planted under the data directory ---- */

static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    cr_assert_not_null(d, "%s: %s", path, strerror(errno));
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n == 0;
}

static void file_has(const char *path, const char *want)
{
    char buf[64] = "";
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s is gone", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cr_expect_str_eq(buf, want, "%s was written through a symlink", path);
}

static void put_docs(dotdb *db, const char *coll, int n)
{
    char doc[128];
    for (int i = 0; i < n; i++) {
        snprintf(doc, sizeof doc, "{\"id\":\"%s-%d\",\"v\":%d}", coll, i, i);
        cr_assert_eq(dotdb_put(db, coll, doc, strlen(doc), NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    }
}

static char *last_storage_error(dotdb *db)
{
    char *s = NULL;
    cr_assert_eq(dotdb_stats(db, NULL, &s, NULL), DOTDB_OK);
    cJSON *j = cJSON_Parse(s);
    dotdb_free(s);
    cJSON *e = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "storage"), "last_error");
    char *r = strdup(cJSON_IsString(e) ? e->valuestring : "");
    cJSON_Delete(j);
    return r;
}

/* A checkpoint meeting a planted symlink: refused with a message naming
 * the path, nothing written outside, the coordinator still serving. */
static void expect_checkpoint_refused(coord *c, dotdb *db, const char *planted, const char *what)
{
    char *json = NULL;
    int rc = dotdb_checkpoint(db, 0, NULL, &json, NULL);
    dotdb_free(json);
    cr_expect_neq(rc, DOTDB_OK, "%s: the checkpoint followed or ignored the symlink", what);
    const char *msg = dotdb_errmsg(db);
    cr_expect(strstr(msg, planted) != NULL, "%s: the message names %s: %s", what, planted, msg);
    cr_expect(strstr(msg, strerror(ELOOP)) != NULL || strstr(msg, strerror(ENOTDIR)) != NULL,
              "%s: the message says it is a link: %s", what, msg);
    char *last = last_storage_error(db);
    cr_expect(strstr(last, planted) != NULL, "%s: stats storage.last_error: %s", what, last);
    free(last);
    int st;
    cr_assert_eq(waitpid(c->pid, &st, WNOHANG), 0, "%s: the coordinator died", what);
    put_docs(db, "still", 1); /* and serves writes */
}

Test(security, symlinks_under_the_data_directory_fail_the_checkpoint_cleanly, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    char outside[300], path[600], target[700], colls[400];
    snprintf(outside, sizeof outside, "%s-outside", c.dir);
    cr_assert_eq(mkdir(outside, 0700), 0);
    snprintf(colls, sizeof colls, "%s/collections", c.dir);
    char *json = NULL;

    /* 1. DIR/collections itself, before the first checkpoint creates it */
    put_docs(db, "c1", 5);
    rmdir(colls); /* if it exists it is empty */
    cr_assert_eq(symlink(outside, colls), 0, "%s", strerror(errno));
    expect_checkpoint_refused(&c, db, "collections", "DIR/collections");
    cr_expect(dir_is_empty(outside), "a checkpoint wrote through DIR/collections");
    cr_assert_eq(unlink(colls), 0);
    cr_assert_eq(dotdb_checkpoint(db, 0, NULL, &json, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_free(json);

    /* 2. DIR/collections/<name> of a collection not yet checkpointed */
    put_docs(db, "c2", 5);
    snprintf(path, sizeof path, "%s/c2", colls);
    cr_assert_eq(symlink(outside, path), 0);
    expect_checkpoint_refused(&c, db, "collections/c2", "DIR/collections/c2");
    cr_expect(dir_is_empty(outside), "a checkpoint wrote through DIR/collections/c2");
    cr_assert_eq(unlink(path), 0);

    /* 3. DIR/collections/<name>/data */
    snprintf(path, sizeof path, "%s/c2", colls);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/c2/data", colls);
    cr_assert_eq(symlink(outside, path), 0);
    expect_checkpoint_refused(&c, db, "collections/c2/data", "DIR/collections/c2/data");
    cr_expect(dir_is_empty(outside), "a checkpoint wrote through DIR/collections/c2/data");
    cr_assert_eq(unlink(path), 0);

    /* 4. the collection's metadata.json.tmp, pointing at a file outside */
    snprintf(target, sizeof target, "%s/precious", outside);
    FILE *f = fopen(target, "w");
    cr_assert_not_null(f);
    fputs("precious", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/c2/metadata.json.tmp", colls);
    cr_assert_eq(symlink(target, path), 0);
    expect_checkpoint_refused(&c, db, "collections/c2/metadata.json", "metadata.json.tmp");
    file_has(target, "precious");
    (void)unlink(path); /* the failed checkpoint removed its temporary name already */

    /* 5. a segment's name, and system/manifest.json.tmp: never opened
     * through the link (a new segment number is taken, the temporary
     * manifest is refused); whatever the outcome, the target is intact */
    snprintf(path, sizeof path, "%s/c2/data/segment_000009.db", colls);
    cr_assert_eq(symlink(target, path), 0);
    int rc = dotdb_checkpoint(db, 0, NULL, &json, NULL);
    dotdb_free(json);
    cr_expect_eq(rc, DOTDB_OK, "a planted segment name: %s", dotdb_errmsg(db));
    file_has(target, "precious");
    (void)unlink(path);
    put_docs(db, "c3", 3);
    snprintf(path, sizeof path, "%s/system/manifest.json.tmp", c.dir);
    cr_assert_eq(symlink(target, path), 0);
    expect_checkpoint_refused(&c, db, "manifest.json", "system/manifest.json.tmp");
    file_has(target, "precious");
    (void)unlink(path);
    cr_assert_eq(unlink(target), 0);
    cr_expect(dir_is_empty(outside), "nothing else appeared outside");

    /* Without the links everything checkpoints, and a restart has it all. */
    cr_assert_eq(dotdb_checkpoint(db, 0, NULL, &json, NULL), DOTDB_OK, "%s", dotdb_errmsg(db));
    dotdb_free(json);
    dotdb_close(db);
    h_stop(&c);
    h_start(&c);
    db = h_open(&c);
    const char *ids[] = {"c1-4", "c2-4", "c3-2", "still-0"};
    const char *colls_of[] = {"c1", "c2", "c3", "still"};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(dotdb_get(db, colls_of[i], ids[i], &json, NULL), DOTDB_OK, "%s: %s", ids[i],
                     dotdb_errmsg(db));
        dotdb_free(json);
    }
    dotdb_close(db);
    h_stop(&c);
    rmdir(outside);
    h_cleanup(&c);
}
