/*
 * test_readpath.c - the read path makes no system call (DESIGN §9).
 *
 * A child process attaches, begins a snapshot, then enters seccomp strict
 * mode, in which the kernel kills the process on any system call other
 * than read, write, _exit and sigreturn.  It then does thousands of
 * dotdb_txn_get and field reads and reports the sum through a pipe with
 * write(2).  If the lookup made any other system call (futex, mmap, ...),
 * the child would die with SIGKILL instead of reporting.
 */
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "harness.h"

Test(readpath, point_reads_make_no_system_call, .timeout = 60)
{
    coord c;
    h_init(&c, NULL);
    h_start(&c);
    dotdb *db = h_open(&c);
    char doc[128];
    for (int i = 0; i < 100; i++) {
        snprintf(doc, sizeof doc, "{\"id\":\"k%d\",\"n\":%d,\"nested\":{\"x\":%d}}", i, i, i * 2);
        cr_assert_eq(dotdb_put(db, "r", doc, strlen(doc), NULL), DOTDB_OK);
    }
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dotdb *cdb = h_open(&c);
        dotdb_txn *t;
        if (dotdb_txn_begin(cdb, DOTDB_TXN_READONLY, &t) != DOTDB_OK)
            _exit(3);
        static const char *ids[100];
        static char idbuf[100][8];
        for (int i = 0; i < 100; i++) {
            snprintf(idbuf[i], sizeof idbuf[i], "k%d", i);
            ids[i] = idbuf[i];
        }
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_STRICT, 0, NULL) != 0)
            _exit(4);
        int64_t sum = 0;
        for (int round = 0; round < 100; round++) {
            for (int i = 0; i < 100; i++) {
                dotdb_doc d;
                dotdb_value v;
                if (dotdb_txn_get(t, "r", ids[i], &d) != DOTDB_OK)
                    syscall(SYS_exit, 5);
                dotdb_doc_get(&d, "nested.x", &v);
                sum += v.i;
            }
        }
        if (write(p[1], &sum, sizeof sum) != (ssize_t)sizeof sum)
            syscall(SYS_exit, 6);
        syscall(SYS_exit, 0); /* exit_group is not allowed in strict mode */
    }
    close(p[1]);
    int64_t sum = -1;
    ssize_t n = read(p[0], &sum, sizeof sum);
    int st = h_wait(pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the reader was killed or failed (status 0x%x): a system call on the read path?", st);
    cr_expect_eq(n, (ssize_t)sizeof sum);
    cr_expect_eq(sum, 100 * 9900, "every read returned the right field");
    dotdb_close(db);
    h_stop(&c);
    h_cleanup(&c);
}
