/*
 * errors.h - the one table of DotDB status codes.
 *
 * Every DotDB function returns DOTDB_OK (0) or one of the negative codes
 * below.  The X-macro drives the enum in dotdb.h, dotdb_strerror() and
 * dotdb_err_name(), so a code, its name and its message never drift apart.
 * This header is included by lib/dotdb.h (public) and by internal modules.
 */
#ifndef DOTDB_ERRORS_H
#define DOTDB_ERRORS_H

/* XX(NAME, value, message) */
#define DOTDB_ERRNO_MAP(XX)                                                        \
    XX(OK, 0, "success")                                                            \
    XX(EINVAL, -1, "invalid argument")                                              \
    XX(ENOMEM, -2, "out of memory")                                                 \
    XX(ENOSPC, -3, "no space left (shared memory or disk is full)")                 \
    XX(EIO, -4, "input/output error")                                               \
    XX(ECORRUPT, -5, "data is corrupt")                                             \
    XX(ENOTFOUND, -6, "document not found")                                         \
    XX(ENOCOLL, -7, "collection does not exist")                                    \
    XX(EEXISTS, -8, "already exists")                                               \
    XX(EJSON, -9, "malformed JSON")                                                 \
    XX(ETOOBIG, -10, "document too large")                                          \
    XX(ETOODEEP, -11, "document nested too deeply")                                 \
    XX(EBADID, -12, "invalid document id")                                          \
    XX(EBADNAME, -13, "invalid collection name")                                    \
    XX(ECONFLICT, -14, "transaction conflict: a document changed after the snapshot") \
    XX(EDISCONNECTED, -15, "not connected to the coordinator")                     \
    XX(ENOCOORD, -16, "no coordinator is running for this database")               \
    XX(EPROTO, -17, "protocol error")                                               \
    XX(EVERSION, -18, "incompatible version")                                       \
    XX(EPERM, -19, "permission denied")                                             \
    XX(EBUSY, -20, "resource busy")                                                 \
    XX(ETOOMANY, -21, "too many connections")                                       \
    XX(ESNAPSHOT_EXPIRED, -22, "snapshot expired (max_snapshot_age)")              \
    XX(ECONFIG, -23, "invalid configuration")                                       \
    XX(ELOCKED, -24, "database is owned by another coordinator")                   \
    XX(EREADONLY, -25, "coordinator accepts no writes")                             \
    XX(ETYPE, -26, "wrong type")                                                    \
    XX(EOS, -27, "operating system error")                                          \
    XX(EDONE, -28, "no more results")

#endif /* DOTDB_ERRORS_H */
