/*
 * harness.h - helpers for tests that run real coordinators and real client
 * processes: a private data directory per test, dotdbd started in the
 * foreground as a child (so it can be SIGKILLed), readiness by polling a
 * connection, never by sleeping and hoping.
 */
#ifndef DOTDB_TEST_HARNESS_H
#define DOTDB_TEST_HARNESS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dotdb.h"

typedef struct coord {
    char dir[256];
    char config[300];
    pid_t pid;
    long fsize_limit; /* > 0: RLIMIT_FSIZE of the coordinator, a "full disk" */
    long nofile_limit; /* > 0: RLIMIT_NOFILE of the coordinator */
    char fault_ctl[300]; /* non-empty: run dotdbd under tests/fault/faultfs.c with
                            this control file (see there) */
} coord;

static inline void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline uint64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A fresh data directory (and an optional config file with `json`). */
static inline void h_init(coord *c, const char *config_json)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/dotdb-it-XXXXXX");
    cr_assert_not_null(mkdtemp(c->dir), "mkdtemp: %s", strerror(errno));
    if (config_json) {
        snprintf(c->config, sizeof c->config, "%s.json", c->dir);
        FILE *f = fopen(c->config, "w");
        cr_assert_not_null(f);
        fputs(config_json, f);
        fclose(f);
    }
}

/* Open a handle without autostart; retry until the coordinator listens. */
static inline dotdb *h_open(coord *c)
{
    dotdb_options o = {.no_autostart = 1};
    dotdb *db = NULL;
    uint64_t deadline = h_now_ms() + 20000;
    int rc;
    while ((rc = dotdb_open(c->dir, &o, &db)) != DOTDB_OK && h_now_ms() < deadline)
        h_sleep_ms(5);
    cr_assert_eq(rc, DOTDB_OK, "dotdb_open(%s): %s", c->dir, dotdb_errmsg(NULL));
    return db;
}

/* The coordinator program: $DOTDB_TEST_DOTDBD (scripts/test.sh points it at
 * a ThreadSanitizer build), else the one built with the tests. */
static inline const char *h_dotdbd(void)
{
    const char *p = getenv("DOTDB_TEST_DOTDBD");
    return p && *p ? p : DOTDBD_PATH;
}

/* In a child about to exec dotdbd: preload the fault shim when asked. */
static inline void h_fault_env(const coord *c)
{
#ifdef DOTDB_FAULTFS_PATH
    if (c->fault_ctl[0]) {
        char log[340];
        snprintf(log, sizeof log, "%s.log", c->fault_ctl);
        setenv("DOTDB_FAULT_CTL", c->fault_ctl, 1);
        setenv("DOTDB_FAULT_LOG", log, 1);
        setenv("LD_PRELOAD", DOTDB_FAULTFS_PATH, 1);
        const char *a = getenv("ASAN_OPTIONS");
        char opts[600];
        snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", a ? a : "", a && *a ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
    }
#else
    (void)c;
#endif
}

/* How many faults fired since the last call (the shim's log, emptied). */
static inline int h_faults_fired(const coord *c)
{
    char log[340], line[4200];
    snprintf(log, sizeof log, "%s.log", c->fault_ctl);
    FILE *f = fopen(log, "r");
    int n = 0;
    if (f) {
        while (fgets(line, sizeof line, f))
            n++;
        fclose(f);
        unlink(log);
    }
    return n;
}

/* Write the fault control file (NULL: remove it, faults off). */
static inline void h_fault(const coord *c, const char *rules)
{
    if (rules == NULL) {
        unlink(c->fault_ctl);
        return;
    }
    FILE *f = fopen(c->fault_ctl, "w");
    cr_assert_not_null(f);
    fputs(rules, f);
    fclose(f);
}

/* Run dotdbd --foreground with extra arguments (NULL-terminated, may be
 * NULL) to completion when it fails at start-up or runs a maintenance
 * mode; stdout and stderr go to out (NUL-terminated).  Returns the exit
 * status, or -1 if it was still running after timeout_ms (then killed). */
static inline int h_run_dotdbd(const coord *c, const char *const *extra, char *out, size_t outlen,
                               int timeout_ms)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        const char *argv[16] = {"dotdbd", "--db", c->dir, "--foreground"};
        int n = 4;
        if (c->config[0]) {
            argv[n++] = "--config";
            argv[n++] = c->config;
        }
        for (int i = 0; extra && extra[i] && n < 15; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
        h_fault_env(c);
        execv(h_dotdbd(), (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    size_t used = 0;
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    int st = 0, done = 0;
    while (!done) {
        ssize_t k = read(p[0], out + used, outlen - 1 - used);
        if (k > 0) {
            used += (size_t)k;
            if (used >= outlen - 1)
                used = 0; /* keep the tail */
            continue;
        }
        if (waitpid(pid, &st, WNOHANG) == pid) {
            done = 1;
            while ((k = read(p[0], out + used, outlen - 1 - used)) > 0 && used + (size_t)k < outlen - 1)
                used += (size_t)k;
            break;
        }
        if (h_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            close(p[0]);
            out[used] = 0;
            return -1;
        }
        h_sleep_ms(5);
    }
    close(p[0]);
    out[used] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Start dotdbd --foreground as our child and wait until it accepts. */
static inline void h_start(coord *c)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* Die with the test process, so a failed assertion leaves no
         * coordinator behind holding the test runner's output pipe. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (c->fsize_limit > 0) {
            struct rlimit rl = {(rlim_t)c->fsize_limit, (rlim_t)c->fsize_limit};
            signal(SIGXFSZ, SIG_IGN); /* write(2) then fails with EFBIG, as on a full disk */
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        if (c->nofile_limit > 0) {
            struct rlimit rl = {(rlim_t)c->nofile_limit, (rlim_t)c->nofile_limit};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0 && getenv("DOTDB_TEST_VERBOSE") == NULL)
            dup2(nul, 2);
        h_fault_env(c);
        if (c->config[0])
            execl(h_dotdbd(), "dotdbd", "--db", c->dir, "--foreground", "--config", c->config,
                  (char *)NULL);
        else
            execl(h_dotdbd(), "dotdbd", "--db", c->dir, "--foreground", (char *)NULL);
        _exit(127);
    }
    c->pid = pid;
    dotdb *db = h_open(c);
    dotdb_close(db);
}

static inline int h_wait(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return st;
}

static inline void h_kill9(coord *c)
{
    kill(c->pid, SIGKILL);
    h_wait(c->pid);
    c->pid = 0;
}

/* SIGTERM and expect a clean exit 0. */
static inline void h_stop(coord *c)
{
    if (c->pid <= 0)
        return;
    kill(c->pid, SIGTERM);
    int st = h_wait(c->pid);
    c->pid = 0;
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "coordinator exit status %d", st);
}

static inline void h_cleanup(coord *c)
{
    if (c->pid > 0)
        h_kill9(c);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", c->dir, c->config);
    (void)!system(cmd);
}

#endif /* DOTDB_TEST_HARNESS_H */
