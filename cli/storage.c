/*
 * storage.c - the storage commands of the dotdb tool: checkpoint, compact,
 * backup (through the running coordinator) and check, restore, recover
 * (the coordinator program in a maintenance mode, which needs no running
 * coordinator; check also works beside one).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dotdb.h"

static int print_result(const struct cli_ctx *ctx, int rc, char *json, size_t len)
{
    if (rc != DOTDB_OK)
        return cli_lib_error(ctx, rc);
    int wrc = cli_write_json_line(stdout, json, len);
    dotdb_free(json);
    return wrc == 0 ? CLI_EXIT_OK : cli_stdout_status();
}

int cmd_checkpoint(struct cli_ctx *ctx, int argc, char **argv)
{
    char *json = NULL;
    size_t len = 0;
    (void)argc;
    (void)argv;
    int rc = dotdb_checkpoint(ctx->db, 0, NULL, &json, &len);
    return print_result(ctx, rc, json, len);
}

int cmd_compact(struct cli_ctx *ctx, int argc, char **argv)
{
    char *json = NULL;
    size_t len = 0;
    int rc = dotdb_checkpoint(ctx->db, DOTDB_CHECKPOINT_COMPACT, argc > 0 ? argv[0] : NULL, &json,
                              &len);
    return print_result(ctx, rc, json, len);
}

int cmd_backup(struct cli_ctx *ctx, int argc, char **argv)
{
    char *json = NULL;
    size_t len = 0;
    (void)argc;
    int rc = dotdb_backup(ctx->db, argv[0], &json, &len);
    return print_result(ctx, rc, json, len);
}

/* dotdbd's exit status to ours: 0 ok, 1 damage or failure, 2 usage. */
static int run_tool(struct cli_ctx *ctx, const char *const *args)
{
    int status;
    int rc = dotdb_coordinator_run(ctx->dir, args, NULL, &status);
    if (rc != DOTDB_OK) {
        cli_msg("%s: %s", ctx->cmd, dotdb_errmsg(NULL) && *dotdb_errmsg(NULL) ? dotdb_errmsg(NULL)
                                                                                : dotdb_strerror(rc));
        return CLI_EXIT_NOCOORD;
    }
    switch (status) {
    case 0: return CLI_EXIT_OK;
    case 2: return CLI_EXIT_USAGE;
    case 3: return CLI_EXIT_NOCOORD; /* another coordinator owns the directory */
    default: return CLI_EXIT_ERROR;
    }
}

int cmd_check(struct cli_ctx *ctx, int argc, char **argv)
{
    static const char *const args[] = {"--check", NULL};
    (void)argc;
    (void)argv;
    return run_tool(ctx, args);
}

int cmd_restore(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    if (dotdb_coordinator_status(ctx->dir, NULL) == 1) {
        cli_msg("restore: a coordinator is running for \"%s\"; restore goes into a new or empty "
                "directory", ctx->dir);
        return CLI_EXIT_ERROR;
    }
    const char *args[] = {"--restore", argv[0], NULL};
    return run_tool(ctx, args);
}

int cmd_recover(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (dotdb_coordinator_status(ctx->dir, NULL) == 1) {
        cli_msg("recover: a coordinator is running for \"%s\": stop it first", ctx->dir);
        return CLI_EXIT_ERROR;
    }
    static const char *const args[] = {"--recover", NULL};
    int st = run_tool(ctx, args);
    if (st == CLI_EXIT_OK)
        printf("{\"recovered\":true,\"running\":true}\n");
    return st;
}
