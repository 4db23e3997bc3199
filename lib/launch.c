/*
 * launch.c - starting, stopping and probing a coordinator for a data
 * directory, and the autostart that makes a new user's first command work.
 *
 * Whether a coordinator runs is decided by the lock it holds on
 * DIR/dotdb.lock (shm/livefile.h), not by a pid file that a crash leaves
 * behind: if we can take a shared lock, nobody holds the exclusive one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int dotdb_coordinator_status(const char *dir, long *pid_out)
{
    char path[PATH_MAX + 32];
    if (pid_out)
        *pid_out = 0;
    snprintf(path, sizeof path, "%s/%s", dir, LIVE_FILE_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : DOTDB_EOS;
    int running = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
        running = errno == EWOULDBLOCK;
        live_word w;
        if (running && pid_out && pread(fd, &w, sizeof w, 0) == (ssize_t)sizeof w &&
            w.magic == LIVE_MAGIC)
            *pid_out = (long)atomic_load(&w.pid);
    }
    close(fd);
    return running;
}

/* Where is dotdbd?  opts, $DOTDB_COORDINATOR, next to this program, PATH. */
static void find_coordinator(const dotdb_options *opts, char out[PATH_MAX], size_t outlen)
{
    const char *env = getenv("DOTDB_COORDINATOR");
    if (opts && opts->coordinator_path) {
        snprintf(out, outlen, "%s", opts->coordinator_path);
        return;
    }
    if (env && env[0]) {
        snprintf(out, outlen, "%s", env);
        return;
    }
    char self[PATH_MAX - 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, outlen, "%s/dotdbd", self);
            if (access(out, X_OK) == 0)
                return;
        }
    }
    snprintf(out, outlen, "dotdbd");
}

/* Run dotdbd (which returns once ready) and collect its stderr. */
static int run_dotdbd(const char *exe, const char *dir, const char *config, char *msg,
                      size_t msglen)
{
    int p[2];
    msg[0] = 0;
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(msg, msglen, "pipe: %s", strerror(errno));
        return DOTDB_EOS;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        snprintf(msg, msglen, "fork: %s", strerror(errno));
        return DOTDB_EOS;
    }
    if (pid == 0) {
        dup2(p[1], 2);
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        if (config)
            execlp(exe, exe, "--db", dir, "--config", config, (char *)NULL);
        else
            execlp(exe, exe, "--db", dir, (char *)NULL);
        fprintf(stderr, "cannot run the coordinator \"%s\": %s (set DOTDB_COORDINATOR or put "
                "dotdbd on PATH)\n", exe, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    size_t used = 0;
    for (;;) {
        ssize_t n = read(p[0], msg + used, msglen - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        used += (size_t)n;
        if (used == msglen - 1)
            break;
    }
    msg[used] = 0;
    while (used && (msg[used - 1] == '\n'))
        msg[--used] = 0;
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status))
        return DOTDB_ENOCOORD;
    switch (WEXITSTATUS(status)) {
    case 0: return 0;
    case 3: return DOTDB_ELOCKED; /* dotdbd's exit statuses, see dotdbd --help */
    case 4: return DOTDB_ECONFIG;
    default: return DOTDB_ENOCOORD;
    }
}

int dotdb_coordinator_start(const char *dir, const char *config_path, const dotdb_options *opts)
{
    char exe[PATH_MAX], msg[2048];
    long pid;
    if (dotdb_coordinator_status(dir, &pid) == 1) {
        cl_set_open_error("a coordinator (pid %ld) already serves %s", pid, dir);
        return DOTDB_ELOCKED;
    }
    find_coordinator(opts, exe, sizeof exe);
    int rc = run_dotdbd(exe, dir, config_path, msg, sizeof msg);
    if (rc != 0) {
        const char *m = msg;
        if (strncmp(m, "dotdbd: ", 8) == 0)
            m += 8;
        cl_set_open_error("cannot start the coordinator for %s: %s", dir,
                          m[0] ? m : "it exited without a message");
    }
    return rc;
}

int dotdb_coordinator_stop(const char *dir, int timeout_ms)
{
    long pid;
    int rc = dotdb_coordinator_status(dir, &pid);
    if (rc < 0)
        return rc;
    if (rc == 0 || pid <= 0) {
        cl_set_open_error("no coordinator is running for %s", dir);
        return DOTDB_ENOCOORD;
    }
    if (kill((pid_t)pid, SIGTERM) != 0 && errno != ESRCH) {
        cl_set_open_error("cannot signal coordinator pid %ld: %s", pid, strerror(errno));
        return errno == EPERM ? DOTDB_EPERM : DOTDB_EOS;
    }
    if (timeout_ms <= 0)
        timeout_ms = 30000;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (dotdb_coordinator_status(dir, NULL) == 0)
            return 0;
        sleep_ms(10);
    }
    cl_set_open_error("coordinator pid %ld did not stop within %d ms", pid, timeout_ms);
    return DOTDB_EBUSY;
}

int cl_autostart(dotdb *db)
{
    int rc = dotdb_coordinator_start(db->dir, NULL, &db->opts);
    if (rc == DOTDB_ELOCKED)
        rc = 0; /* another process started it first: just connect */
    if (rc != 0)
        return cl_fail(db, DOTDB_ENOCOORD, "%s", dotdb_errmsg(NULL));
    /* dotdbd returned after it began listening; a concurrent starter's
     * coordinator may still be on its way, so give it a moment. */
    int timeout = db->opts.connect_timeout_ms > 0 ? db->opts.connect_timeout_ms : 10000;
    for (int waited = 0; waited < timeout; waited += 10) {
        char sock[PATH_MAX + 16];
        snprintf(sock, sizeof sock, "%s/dotdb.sock", db->dir);
        if (access(sock, F_OK) == 0)
            return 0;
        sleep_ms(10);
    }
    return cl_fail(db, DOTDB_ENOCOORD, "the coordinator for %s did not start listening within "
                   "%d ms", db->dir, timeout);
}

int dotdb_coordinator_run(const char *dir, const char *const *args, const dotdb_options *opts,
                          int *exit_status)
{
    char exe[PATH_MAX];
    *exit_status = -1;
    find_coordinator(opts, exe, sizeof exe);
    const char *argv[16];
    int n = 0;
    argv[n++] = exe;
    argv[n++] = "--db";
    argv[n++] = dir;
    for (int i = 0; args && args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        cl_set_open_error("fork: %s", strerror(errno));
        return DOTDB_EOS;
    }
    if (pid == 0) {
        execvp(exe, (char *const *)argv);
        fprintf(stderr, "dotdb: cannot run the coordinator \"%s\": %s (set DOTDB_COORDINATOR or "
                "put dotdbd on PATH)\n", exe, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            cl_set_open_error("waitpid: %s", strerror(errno));
            return DOTDB_EOS;
        }
    }
    *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return *exit_status == 127 ? DOTDB_EOS : 0;
}
