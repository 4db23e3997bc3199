/*
 * server.h - the coordinator's event loop: the socket, sessions, the
 * handshake and group commit.
 */
#ifndef DOTDB_SERVER_H
#define DOTDB_SERVER_H

#include "config.h"
#include "engine.h"
#include "lockfile.h"
#include "manifest.h"
#include "wal.h"

typedef struct server_args {
    const dotdb_config *cfg;
    const char *dir;          /* absolute data directory */
    engine *eng;
    wal *log;
    lockfile *lock;
    int ready_fd;             /* write "ok\n" here once accepting, then close; -1: none */
    manifest *mf;             /* the checkpoint loaded at start; moved into the server */
    long group_gid;           /* security.group resolved; -1: none */
} server_args;

/*
 * Listen on the configured socket and serve until SIGTERM/SIGINT; then
 * finish the group in flight, sync the WAL, remove the socket and return 0.
 * Returns a negative code (with a message on stderr) if it cannot start.
 */
int server_run(const server_args *args);

#endif /* DOTDB_SERVER_H */
