/*
 * main.c - dotdbd: arguments, the data directory, configuration, recovery,
 * daemonising, then the event loop (server.c).
 *
 * Start-up order matters for safety: take the directory's lock first (a
 * second coordinator must not even read the WAL), then configuration,
 * then rebuild the shared state from the WAL (I5: nothing of a previous
 * coordinator's memory is trusted), and only then listen.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "config.h"
#include "dotdb.h"
#include "engine.h"
#include "lockfile.h"
#include "server.h"
#include "wal.h"
#include "checkpoint.h"
#include "manifest.h"
#include "recovery.h"

#define DOTDBD_VERSION "0.1.0"

/* Exit statuses the launcher (lib/launch.c) tells apart. */
#define EXIT_LOCKED 3 /* another coordinator owns the directory */
#define EXIT_CONFIG 4 /* invalid configuration */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dotdbd --db DIR [--config FILE] [--foreground] [--recover]\n"
            "       dotdbd --db DIR --check\n"
            "       dotdbd --db DIR --restore BACKUP\n"
            "\n"
            "The DotDB coordinator: owns the data directory DIR (its WAL and files),\n"
            "serves clients on DIR/dotdb.sock and shares the database with them\n"
            "through shared memory.\n"
            "\n"
            "  --db DIR        data directory (created 0700 if missing); default: the\n"
            "                  storage.data_directory of --config\n"
            "  --config FILE   configuration (JSON), applied after DIR/system/config.json\n"
            "  --foreground    stay in the foreground, log to stderr\n"
            "  --recover       start from the WAL alone, setting a damaged checkpoint aside\n"
            "                  (only when the WAL still holds every write)\n"
            "  --check         verify every checksum of the checkpoint and the WAL and the\n"
            "                  manifest's consistency, changing nothing (also while a\n"
            "                  coordinator runs); exit 0 intact, 1 damaged\n"
            "  --restore SRC   copy the backup SRC into DIR (new or empty) and check it\n"
            "  --help-config   list every configuration key\n"
            "  --version\n"
            "\n"
            "Without --foreground dotdbd returns once the database accepts connections\n"
            "(exit 0) or start-up failed (exit 1, reason on stderr); the daemon logs to\n"
            "DIR/dotdbd.log.  SIGTERM or SIGINT stops it cleanly.\n"
            "\n"
            "Exit status: 0 clean stop, 1 failure (or damage found by --check), 2 usage,\n"
            "3 another coordinator owns DIR, 4 invalid configuration.\n");
}

typedef struct opts {
    const char *dir;
    const char *config;
    int foreground;
    int check;
    int recover;
    const char *restore;
} opts;

static int parse_args(int argc, char **argv, opts *o)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},       {"config", required_argument, 0, 'c'},
        {"foreground", no_argument, 0, 'f'},     {"help", no_argument, 0, 'h'},
        {"help-config", no_argument, 0, 'H'},    {"version", no_argument, 0, 'V'},
        {"check", no_argument, 0, 'K'},          {"recover", no_argument, 0, 'R'},
        {"restore", required_argument, 0, 'S'},
        {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "d:c:fh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o->dir = optarg; break;
        case 'c': o->config = optarg; break;
        case 'f': o->foreground = 1; break;
        case 'K': o->check = 1; break;
        case 'R': o->recover = 1; break;
        case 'S': o->restore = optarg; break;
        case 'h': usage(stdout); exit(0);
        case 'H': fputs(config_help(), stdout); exit(0);
        case 'V': printf("dotdbd %s\n", DOTDBD_VERSION); exit(0);
        default:
            fprintf(stderr, "dotdbd: unknown or incomplete option \"%s\" (see dotdbd --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dotdbd: unexpected argument \"%s\" (see dotdbd --help)\n", argv[optind]);
        return 2;
    }
    return 0;
}

static int mkdir_private(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return -1;
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash == NULL || slash == parent)
        return -1;
    *slash = 0;
    if (mkdir_private(parent, 0755) != 0)
        return -1;
    return (mkdir(path, mode) == 0 || errno == EEXIST) ? 0 : -1;
}

/* DESIGN §2: the data directory must be local; shared-memory coherence and
 * flock mean nothing on a network file system. */
static int check_local_fs(const char *dir)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0)
        return 0;
    switch ((unsigned long)sf.f_type) {
    case 0x6969UL:     /* NFS */
    case 0x517BUL:     /* SMB */
    case 0xFF534D42UL: /* CIFS */
    case 0xFE534D42UL: /* SMB2 */
    case 0x5346414FUL: /* AFS */
    case 0x73757245UL: /* CODA */
        fprintf(stderr, "dotdbd: %s is on a network file system; DotDB needs a local "
                "file system for its data directory\n", dir);
        return -1;
    default:
        return 0;
    }
}

static int prepare_dir(const char *dir, char *abs, size_t abslen)
{
    if (mkdir_private(dir, 0700) != 0) {
        fprintf(stderr, "dotdbd: cannot create data directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char buf[PATH_MAX];
    if (realpath(dir, buf) == NULL || strlen(buf) >= abslen) {
        fprintf(stderr, "dotdbd: cannot resolve %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(abs, abslen, "%s", buf);
    struct stat st;
    if (stat(abs, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "dotdbd: %s is not a directory\n", abs);
        return -1;
    }
    return check_local_fs(abs);
}

/* security.group as a gid: a group name or a number.  -1 with a message
 * when it names no group. */
static long resolve_group(const char *name)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(name, &end, 10);
    if (*name && *end == 0 && errno == 0 && n < (unsigned long)(gid_t)-1)
        return (long)n;
    struct group *g = getgrnam(name);
    if (g == NULL) {
        fprintf(stderr, "dotdbd: security.group: no group named \"%s\"\n", name);
        return -1;
    }
    return (long)g->gr_gid;
}

static int load_config(const opts *o, const char *dir, dotdb_config *cfg)
{
    char err[1024], warn[2048], path[PATH_MAX + 32];
    struct stat st;
    snprintf(path, sizeof path, "%s/system/config.json", dir);
    const char *files[2] = {stat(path, &st) == 0 ? path : NULL, o->config};
    for (int i = 0; i < 2; i++) {
        if (files[i] == NULL)
            continue;
        warn[0] = 0;
        int rc = config_apply_file(cfg, files[i], err, sizeof err, warn, sizeof warn);
        if (warn[0])
            fprintf(stderr, "dotdbd: warning: %s%s", warn, warn[strlen(warn) - 1] == '\n' ? "" : "\n");
        if (rc != 0) {
            fprintf(stderr, "dotdbd: %s\n", err);
            return -1;
        }
    }
    return 0;
}

typedef struct replay_ctx {
    engine *e;
    uint64_t applied;
} replay_ctx;

static int replay_one(void *ctx, uint64_t lsn, uint32_t type, const uint8_t *p, size_t len)
{
    replay_ctx *rc = ctx;
    char err[512];
    if (type != WAL_REC_BATCH)
        return 0;
    if (lsn != engine_applied_lsn(rc->e) + 1) {
        /* The WAL must continue exactly where the checkpoint (or the empty
         * database, LSN 1) ends: a gap means lost writes, never skip it. */
        fprintf(stderr, "dotdbd: WAL record %" PRIu64 " does not follow LSN %" PRIu64
                " (%s): records %" PRIu64 " to %" PRIu64 " are missing\n", lsn,
                engine_applied_lsn(rc->e), rc->applied ? "the previous record" :
                engine_applied_lsn(rc->e) > 1 ? "the checkpoint" : "an empty database",
                engine_applied_lsn(rc->e) + 1, lsn - 1);
        return DOTDB_ECORRUPT;
    }
    int r = engine_apply(rc->e, lsn, 0, p, len, err, sizeof err);
    if (r == DOTDB_ENOSPC) {
        /* No reader exists during recovery: everything superseded so far
         * can go before we give up on memory. */
        engine_reclaim(rc->e, UINT64_MAX);
        r = engine_apply(rc->e, lsn, 0, p, len, err, sizeof err);
    }
    if (r != 0) {
        fprintf(stderr, "dotdbd: cannot replay WAL record %" PRIu64 ": %s\n", lsn, err);
        return r;
    }
    engine_publish(rc->e, lsn);
    if (++rc->applied % 4096 == 0)
        engine_reclaim(rc->e, UINT64_MAX);
    return 0;
}

/* After a damaged checkpoint: can the WAL alone rebuild the database? */
static void recovery_hint(const dotdb_config *cfg, const char *waldir)
{
    (void)cfg;
    wal_replay_info info;
    char err[512];
    int rc = wal_check(waldir, 0, &info, err, sizeof err);
    if (rc == 0 && info.records && info.first_lsn == 2)
        fprintf(stderr, "dotdbd: the WAL still holds every write since the database was created "
                "(LSN 2 to %" PRIu64 "): `dotdb recover` rebuilds the database from it and sets "
                "the damaged checkpoint aside\n", info.last_lsn);
    else
        fprintf(stderr, "dotdbd: the WAL no longer covers the damaged data%s: restore from a "
                "backup (`dotdb restore BACKUP --db DIR`); `dotdb check` lists every damaged "
                "block\n", rc == 0 && info.records ? " (it starts later)" : "");
}

/* Fork; the parent waits for the child's "ok" on a pipe and exits with its
 * verdict.  Returns the write end of the pipe in the child. */
static int daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("dotdbd: pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("dotdbd: fork");
        exit(1);
    }
    if (pid > 0) {
        close(p[1]);
        char buf[8];
        ssize_t n;
        do
            n = read(p[0], buf, sizeof buf);
        while (n < 0 && errno == EINTR);
        exit(n >= 2 && memcmp(buf, "ok", 2) == 0 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    return p[1];
}

static int detach_stdio(const char *dir)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/dotdbd.log", dir);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (nul < 0 || log < 0) {
        fprintf(stderr, "dotdbd: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    dup2(nul, 0);
    dup2(nul, 1);
    dup2(log, 2);
    close(nul);
    close(log);
    return 0;
}

int main(int argc, char **argv)
{
    opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    dotdb_config cfg;
    config_defaults(&cfg);
    char err[1024];
    if (o.dir == NULL && o.config) {
        /* The data directory may come from --config alone. */
        dotdb_config probe;
        config_defaults(&probe);
        if (config_apply_file(&probe, o.config, err, sizeof err, NULL, 0) == 0 &&
            probe.data_directory[0])
            o.dir = strdup(probe.data_directory);
    }
    if (o.dir == NULL) {
        fprintf(stderr, "dotdbd: no data directory: use --db DIR (see dotdbd --help)\n");
        return 2;
    }
    static char dir[PATH_MAX];
    umask(077);
    if (o.restore) {
        uint64_t files;
        rc = recovery_restore(o.restore, o.dir, &files, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "dotdbd: restore failed: %s\n", err);
            return 1;
        }
        fprintf(stderr, "dotdbd: restored %" PRIu64 " files from %s into %s; checking\n", files,
                o.restore, o.dir);
    }
    if (o.check || o.restore) {
        struct stat cst;
        if (stat(o.dir, &cst) != 0 || !S_ISDIR(cst.st_mode)) {
            fprintf(stderr, "dotdbd: %s is not a data directory\n", o.dir);
            return 1;
        }
        if (load_config(&o, o.dir, &cfg) != 0)
            return EXIT_CONFIG;
        int running = 0;
        lockfile probe;
        if (lockfile_acquire(o.dir, &probe, err, sizeof err) == 0)
            lockfile_release(&probe);
        else
            running = 1;
        int v = recovery_check(&cfg, o.dir, running, stdout);
        return v == 0 ? 0 : 1;
    }
    if (prepare_dir(o.dir, dir, sizeof dir) != 0)
        return 1;
    lockfile lock;
    rc = lockfile_acquire(dir, &lock, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "dotdbd: %s\n", err);
        return rc == DOTDB_ELOCKED ? EXIT_LOCKED : 1;
    }
    if (load_config(&o, dir, &cfg) != 0)
        return EXIT_CONFIG;
    long group_gid = cfg.group[0] ? resolve_group(cfg.group) : -1;
    if (cfg.group[0] && group_gid < 0)
        return EXIT_CONFIG;
    /* The group first: 0750 must never apply to whichever group the
     * directory happened to have. */
    if (group_gid >= 0 && chown(dir, (uid_t)-1, (gid_t)group_gid) != 0) {
        fprintf(stderr, "dotdbd: cannot give group %s access to %s: %s\n", cfg.group, dir,
                strerror(errno));
        return 1;
    }
    if (chmod(dir, cfg.group[0] ? 0750 : 0700) != 0)
        fprintf(stderr, "dotdbd: warning: cannot chmod %s: %s\n", dir, strerror(errno));
    char sysdir[PATH_MAX + 16], waldir[PATH_MAX + 16];
    snprintf(sysdir, sizeof sysdir, "%s/system", dir);
    if (mkdir_private(sysdir, 0700) != 0) {
        fprintf(stderr, "dotdbd: cannot create %s: %s\n", sysdir, strerror(errno));
        return 1;
    }
    if (cfg.wal_directory[0])
        snprintf(waldir, sizeof waldir, "%s", cfg.wal_directory);
    else
        snprintf(waldir, sizeof waldir, "%s/wal", dir);

    int ready_fd = o.foreground ? -1 : daemonize();
    if (!o.foreground) {
        /* The lock is held by the parent's descriptor too until it exits;
         * flock locks belong to the open file, which the child shares. */
        atomic_store(&lock.word->pid, (uint64_t)getpid());
    }

    engine *eng = NULL;
    wal *log = NULL;
    manifest mf = {0};
    uint64_t ckpt_docs = 0;
    rc = manifest_read(dir, &mf, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "dotdbd: %s\n", err);
        if (!o.recover)
            goto fail_hint;
    }
    if (o.recover) {
        /* Only when the WAL alone holds every write since LSN 2: else the
         * rebuilt database would silently lack what the checkpoint held. */
        wal_replay_info wi;
        int wrc = wal_check(waldir, 0, &wi, err, sizeof err);
        if (wrc != 0 || wi.records == 0 || wi.first_lsn != 2) {
            fprintf(stderr, "dotdbd: --recover refused: the WAL in %s %s, so writes the "
                    "checkpoint holds would be missing; restore from a backup instead\n", waldir,
                    wrc != 0 ? "is damaged too" : wi.records == 0 ? "holds no records"
                                                                  : "does not start at LSN 2");
            rc = DOTDB_ECORRUPT;
            goto fail;
        }
        manifest_free(&mf);
        fprintf(stderr, "dotdbd: --recover: ignoring the checkpoint, rebuilding from the WAL "
                "(LSN 2 to %" PRIu64 ")\n", wi.last_lsn);
    }
    rc = engine_create(&cfg, lockfile_epoch(&lock), &eng, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "dotdbd: cannot create the shared memory (memory.buffer_pool_size %" PRIu64
                "): %s\n", cfg.buffer_pool_size, err);
        goto fail;
    }
    rc = recovery_load(&cfg, dir, eng, &mf, &ckpt_docs, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "dotdbd: cannot load the checkpoint at LSN %" PRIu64 ": %s\n",
                mf.checkpoint_lsn, err);
        goto fail_hint;
    }
    rc = wal_open(waldir, cfg.segment_size, &log, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "dotdbd: %s\n", err);
        goto fail;
    }
    /* zeros reserved ahead of the log: an fdatasync after an append then
     * commits no size change; in sync_mode full they are also written, so
     * it commits no extent conversion either (docs/PERFORMANCE.md,
     * durable_put_8c) */
    wal_set_preallocate(log, WAL_PREALLOC_STEP, cfg.sync_mode == SYNC_FULL);
    replay_ctx rctx = {.e = eng};
    wal_replay_info info;
    rc = wal_replay(log, engine_applied_lsn(eng), replay_one, &rctx, &info, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "dotdbd: recovery failed: %s\n", err[0] ? err : dotdb_strerror(rc));
        goto fail;
    }
    if (o.recover) {
        /* The WAL rebuilt everything: set the damaged manifest aside (its
         * segments go with the cleanup below). */
        char from[PATH_MAX + 64], to[PATH_MAX + 64];
        snprintf(from, sizeof from, "%s/system/manifest.json", dir);
        snprintf(to, sizeof to, "%s/system/manifest.json.damaged", dir);
        if (rename(from, to) != 0 && errno != ENOENT) {
            fprintf(stderr, "dotdbd: cannot set %s aside: %s\n", from, strerror(errno));
            goto fail;
        }
    }
    (void)ckpt_cleanup(dir, &mf, err, sizeof err); /* leftovers of an unfinished checkpoint */
    char note[PATH_MAX + 1024];
    snprintf(note, sizeof note, "dotdbd: pid %d serving %s: loaded %" PRIu64
             " documents from the checkpoint at LSN %" PRIu64 ", replayed %" PRIu64
             " WAL batches up to LSN %" PRIu64 "%s%s\n", (int)getpid(), dir, ckpt_docs,
             mf.checkpoint_lsn, rctx.applied, engine_published_lsn(eng),
             info.warning[0] ? "; warning: " : "", info.warning);
    engine_reclaim(eng, UINT64_MAX);
    rc = region_seal(engine_region(eng), err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "dotdbd: %s\n", err);
        goto fail;
    }
    if (!o.foreground && detach_stdio(dir) != 0)
        goto fail;
    fputs(note, stderr); /* into DIR/dotdbd.log when detached */
    server_args sa = {.cfg = &cfg, .dir = dir, .eng = eng, .log = log, .lock = &lock,
                      .ready_fd = ready_fd, .mf = &mf, .group_gid = group_gid};
    rc = server_run(&sa);
    wal_close(log);
    engine_destroy(eng);
    manifest_free(&mf);
    lockfile_release(&lock);
    return rc == 0 ? 0 : 1;
fail_hint:
    if (rc == DOTDB_ECORRUPT || rc == DOTDB_EVERSION)
        recovery_hint(&cfg, waldir);
fail:
    manifest_free(&mf);
    wal_close(log);
    engine_destroy(eng);
    lockfile_release(&lock);
    return 1;
}
