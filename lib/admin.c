/*
 * admin.c - storage administration through the coordinator: checkpoints,
 * compaction and online backups (dotdb checkpoint / compact / backup).
 * Each is one request whose response the coordinator sends once the work
 * is durable, so these calls block for as long as the checkpoint takes.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "wire.h"

static int result_json(dotdb *db, int rc, dbuf *b, char **json_out, size_t *len_out)
{
    if (rc != 0) {
        dbuf_free(b);
        return rc;
    }
    return dbuf_to_cstr(b, json_out, len_out) ? cl_fail(db, DOTDB_ENOMEM, "out of memory") : 0;
}

int dotdb_checkpoint(dotdb *db, unsigned flags, const char *coll, char **json_out, size_t *len_out)
{
    *json_out = NULL;
    if (len_out)
        *len_out = 0;
    if (flags & ~(unsigned)DOTDB_CHECKPOINT_COMPACT)
        return cl_fail(db, DOTDB_EINVAL, "unknown checkpoint flags 0x%x", flags);
    if (coll && !(flags & DOTDB_CHECKPOINT_COMPACT))
        return cl_fail(db, DOTDB_EINVAL, "a collection can be named only with DOTDB_CHECKPOINT_COMPACT");
    if (coll) {
        int rc = cl_check_name(db, coll);
        if (rc != 0)
            return rc;
    }
    dbuf req, b;
    dbuf_init(&req);
    dbuf_init(&b);
    int rc = dbuf_put_u32(&req, (flags & DOTDB_CHECKPOINT_COMPACT) ? WIRE_CKPT_COMPACT : 0);
    if (rc == 0 && coll)
        rc = dbuf_append(&req, coll, strlen(coll));
    if (rc == 0)
        rc = cl_call(db, WIRE_OP_CHECKPOINT, 0, req.data, req.len, &b, NULL);
    else
        rc = cl_fail(db, rc, "out of memory");
    dbuf_free(&req);
    return result_json(db, rc, &b, json_out, len_out);
}

/* An absolute path for dest, which may not exist yet (its parent must). */
static int absolute_dest(const char *dest, char out[PATH_MAX])
{
    if (realpath(dest, out) != NULL)
        return 0;
    if (errno != ENOENT)
        return -1;
    char copy[PATH_MAX];
    if (snprintf(copy, sizeof copy, "%s", dest) >= (int)sizeof copy)
        return -1;
    size_t n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/')
        copy[--n] = 0;
    char *slash = strrchr(copy, '/');
    const char *base = slash ? slash + 1 : copy;
    char parent[PATH_MAX];
    if (slash == copy)
        snprintf(parent, sizeof parent, "/");
    else if (slash)
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - copy), copy);
    else
        snprintf(parent, sizeof parent, ".");
    char rp[PATH_MAX];
    if (realpath(parent, rp) == NULL || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || !*base)
        return -1;
    if (snprintf(out, PATH_MAX, "%s/%s", strcmp(rp, "/") == 0 ? "" : rp, base) >= PATH_MAX)
        return -1;
    return 0;
}

int dotdb_backup(dotdb *db, const char *dest_dir, char **json_out, size_t *len_out)
{
    *json_out = NULL;
    if (len_out)
        *len_out = 0;
    char abs[PATH_MAX];
    if (dest_dir == NULL || !*dest_dir || absolute_dest(dest_dir, abs) != 0)
        return cl_fail(db, DOTDB_EINVAL, "backup destination \"%s\": %s", dest_dir ? dest_dir : "",
                       errno ? strerror(errno) : "invalid path");
    dbuf b;
    dbuf_init(&b);
    int rc = cl_call(db, WIRE_OP_BACKUP, 0, abs, strlen(abs), &b, NULL);
    return result_json(db, rc, &b, json_out, len_out);
}
