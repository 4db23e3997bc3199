/*
 * ack_wake.c - how much of a durable group's cycle the acknowledgements
 * cost, and what one futex wake for all of them would save.
 *
 *   ack_wake MODE ROUNDS FILE
 *
 * Eight child processes each send a one-byte request over its own Unix
 * socket pair and wait for the reply; the parent collects all eight,
 * writes a byte to FILE and fdatasyncs it (the group commit), then replies
 * to each.  MODE "send": the children block in recv(), so every reply's
 * send() wakes one of them.  MODE "futex": the children poll recv() with
 * MSG_DONTWAIT and sleep in FUTEX_WAIT_BITSET on a shared epoch word; the
 * parent sends all eight replies (waking nobody), then bumps the epoch and
 * wakes every child with one FUTEX_WAKE_BITSET.  MODE "pollUS" (e.g.
 * poll500): each child polls recv() with MSG_DONTWAIT, yielding the CPU
 * between tries, for up to US microseconds before it blocks in recv(), as
 * libdotdb-shm does (dotdb_options.spin_us).  Prints the time per round
 * and the reply phase alone.  Built by bench.sh (so that it keeps
 * compiling), not run by it: a design experiment, whose figures are in
 * docs/PERFORMANCE.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NCHILD 8

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static long futex(uint32_t *w, int op, uint32_t val, const struct timespec *ts, uint32_t mask)
{
    return syscall(SYS_futex, w, op, val, ts, NULL, mask);
}

/* One child: ROUNDS requests, each waited for as MODE says. */
static void child(int fd, int use_futex, uint32_t *epoch, unsigned bit, int rounds, int poll_us)
{
    char buf[64];
    for (int r = 0; r < rounds; r++) {
        if (send(fd, "q", 1, 0) != 1)
            _exit(2);
        if (poll_us > 0) {
            double until = now_us() + poll_us;
            ssize_t n;
            while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) < 0 && errno == EAGAIN &&
                   now_us() < until)
                sched_yield();
            if (n > 0)
                continue;
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                _exit(3);
        }
        if (!use_futex) {
            if (recv(fd, buf, sizeof buf, 0) <= 0)
                _exit(3);
            continue;
        }
        for (;;) {
            uint32_t e = __atomic_load_n(epoch, __ATOMIC_ACQUIRE);
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0)
                break;
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                _exit(4);
            /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += 100 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (futex(epoch, FUTEX_WAIT_BITSET, e, &ts, 1u << bit) != 0 && errno != EAGAIN &&
                errno != ETIMEDOUT && errno != EINTR)
                _exit(5);
        }
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "send") != 0 && strcmp(argv[1], "futex") != 0 &&
                      strncmp(argv[1], "poll", 4) != 0)) {
        fprintf(stderr, "usage: ack_wake send|futex|pollUS ROUNDS FILE\n");
        return 2;
    }
    int use_futex = strcmp(argv[1], "futex") == 0;
    int poll_us = strncmp(argv[1], "poll", 4) == 0 ? atoi(argv[1] + 4) : 0;
    int rounds = atoi(argv[2]);
    if (rounds <= 0) {
        fprintf(stderr, "ack_wake: ROUNDS must be positive\n");
        return 2;
    }
    int wfd = open(argv[3], O_RDWR | O_CREAT, 0644);
    if (wfd < 0 || ftruncate(wfd, 1 << 20) != 0) {
        perror("ack_wake: data file");
        return 1;
    }
    static char zeros[1 << 16];
    for (int k = 0; k < 16; k++) /* written blocks, as the WAL's */
        if (pwrite(wfd, zeros, sizeof zeros, (off_t)k << 16) != (ssize_t)sizeof zeros) {
            perror("ack_wake: pwrite");
            return 1;
        }
    if (fsync(wfd) != 0) {
        perror("ack_wake: fsync");
        return 1;
    }
    uint32_t *epoch = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (epoch == MAP_FAILED) {
        perror("ack_wake: mmap");
        return 1;
    }
    int sv[NCHILD][2];
    for (int i = 0; i < NCHILD; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0) {
            perror("ack_wake: socketpair");
            return 1;
        }
    for (int i = 0; i < NCHILD; i++) {
        pid_t p = fork();
        if (p < 0) {
            perror("ack_wake: fork");
            return 1;
        }
        if (p == 0)
            child(sv[i][1], use_futex, epoch, (unsigned)i, rounds, poll_us);
    }
    char buf[8];
    double t0 = now_us(), t_reply = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < NCHILD; i++)
            if (recv(sv[i][0], buf, 1, 0) != 1) {
                fprintf(stderr, "ack_wake: a child went away\n");
                return 1;
            }
        if (pwrite(wfd, "x", 1, (off_t)(r % 1000) * 64) != 1 || fdatasync(wfd) != 0) {
            perror("ack_wake: commit");
            return 1;
        }
        double a = now_us();
        for (int i = 0; i < NCHILD; i++)
            if (send(sv[i][0], "ack", 3, 0) != 3) {
                perror("ack_wake: send");
                return 1;
            }
        if (use_futex) {
            __atomic_add_fetch(epoch, 1, __ATOMIC_RELEASE);
            if (futex(epoch, FUTEX_WAKE_BITSET, INT_MAX, NULL, (1u << NCHILD) - 1) < 0) {
                perror("ack_wake: futex wake");
                return 1;
            }
        }
        t_reply += now_us() - a;
    }
    double t = now_us() - t0;
    int bad = 0;
    for (int i = 0; i < NCHILD; i++) {
        int st;
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad = 1;
    }
    printf("%s: %.1f us/round, reply phase %.1f us, %.0f requests/s\n", argv[1], t / rounds,
           t_reply / rounds, NCHILD * rounds * 1e6 / t);
    return bad;
}
