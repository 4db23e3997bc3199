/*
 * report.c - messages on stderr and the one table from library status
 * codes to the CLI's exit codes.
 *
 * Scripts branch on the exit code, so the mapping is deliberately coarse
 * and stable: a new DOTDB_E* code that is not listed here exits with 1
 * ("error") until someone decides better.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Every DOTDB_* status and the exit code it produces. */
static const struct {
    int rc;
    int exit_code;
} exit_table[] = {
    { DOTDB_OK, CLI_EXIT_OK },
    { DOTDB_EINVAL, CLI_EXIT_INPUT },
    { DOTDB_ENOMEM, CLI_EXIT_ERROR },
    { DOTDB_ENOSPC, CLI_EXIT_ERROR },
    { DOTDB_EIO, CLI_EXIT_ERROR },
    { DOTDB_ECORRUPT, CLI_EXIT_ERROR },
    { DOTDB_ENOTFOUND, CLI_EXIT_NOTFOUND },
    { DOTDB_ENOCOLL, CLI_EXIT_NOTFOUND },
    { DOTDB_EEXISTS, CLI_EXIT_ERROR },
    { DOTDB_EJSON, CLI_EXIT_INPUT },
    { DOTDB_ETOOBIG, CLI_EXIT_INPUT },
    { DOTDB_ETOODEEP, CLI_EXIT_INPUT },
    { DOTDB_EBADID, CLI_EXIT_INPUT },
    { DOTDB_EBADNAME, CLI_EXIT_INPUT },
    { DOTDB_ECONFLICT, CLI_EXIT_ERROR },
    { DOTDB_EDISCONNECTED, CLI_EXIT_NOCOORD },
    { DOTDB_ENOCOORD, CLI_EXIT_NOCOORD },
    { DOTDB_EPROTO, CLI_EXIT_ERROR },
    { DOTDB_EVERSION, CLI_EXIT_ERROR },
    { DOTDB_EPERM, CLI_EXIT_NOCOORD },
    { DOTDB_EBUSY, CLI_EXIT_ERROR },
    { DOTDB_ETOOMANY, CLI_EXIT_NOCOORD },
    { DOTDB_ESNAPSHOT_EXPIRED, CLI_EXIT_ERROR },
    { DOTDB_ECONFIG, CLI_EXIT_ERROR },
    { DOTDB_ELOCKED, CLI_EXIT_ERROR },
    { DOTDB_EREADONLY, CLI_EXIT_ERROR },
    { DOTDB_ETYPE, CLI_EXIT_INPUT },
    { DOTDB_EOS, CLI_EXIT_ERROR },
    { DOTDB_EDONE, CLI_EXIT_ERROR }, /* never escapes a cursor loop */
};

int cli_exit_code(int rc)
{
    for (size_t i = 0; i < sizeof exit_table / sizeof exit_table[0]; i++)
        if (exit_table[i].rc == rc)
            return exit_table[i].exit_code;
    return CLI_EXIT_ERROR;
}

void cli_msg(const char *fmt, ...)
{
    va_list ap;
    char *text = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&text, fmt, ap);
    va_end(ap);
    /* formatted first so the line goes out in one write (stderr is
     * unbuffered) and does not interleave with another process's */
    if (n >= 0)
        fprintf(stderr, "dotdb: %s\n", text);
    else
        fprintf(stderr, "dotdb: out of memory formatting a message\n");
    free(text);
}

const char *cli_detail(dotdb *db, int rc)
{
    const char *detail = dotdb_errmsg(db);

    return detail && *detail ? detail : dotdb_strerror(rc);
}

int cli_lib_error(const struct cli_ctx *ctx, int rc)
{
    cli_msg("%s: %s", ctx->cmd, cli_detail(ctx->db, rc));
    return cli_exit_code(rc);
}

int cli_oom(const struct cli_ctx *ctx)
{
    cli_msg("%s: out of memory", ctx->cmd);
    return CLI_EXIT_ERROR;
}

int cli_stdout_status(void)
{
    /* fflush reports what buffered writes hid: a full disk, a closed pipe
     * (SIGPIPE is ignored, so it arrives here as EPIPE) */
    int failed = fflush(stdout) != 0 || ferror(stdout);
    int err = errno;

    if (!failed)
        return CLI_EXIT_OK;
    /* A reader that went away (`dotdb export c | head`) chose to stop
     * reading: exit 1 so scripts notice, but say nothing. */
    if (err != EPIPE)
        cli_msg("write error on standard output: %s", strerror(err ? err : EIO));
    return CLI_EXIT_ERROR;
}
