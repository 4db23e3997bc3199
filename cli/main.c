/*
 * main.c - the dotdb command line: global options, the command table,
 * help, argument checks, opening the database and the exit status.
 *
 *   dotdb [--db DIR] [--no-autostart] [--config FILE] COMMAND [ARGS...]
 *
 * Global options come before the command; each command's own options
 * (--limit, --skip) may sit anywhere among its arguments, and "--" ends
 * options so a literal argument may start with "--".  --help / -h anywhere
 * (before "--") prints help instead of running anything.
 *
 * One handle is opened for commands that need it and closed on every path
 * through the single exit at the end of main(); stdout is flushed and
 * checked last, so a full disk or a closed pipe turns into exit 1 instead
 * of silently lost output.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* parse_command_line() result meaning "go on and run the command" (the
 * other results are exit codes, help having printed CLI_EXIT_OK). */
#define CLI_CONTINUE (-1)

#define CMD_NEEDS_DB 0x1u  /* open a handle before running */
#define CMD_OPT_LIMIT 0x2u /* accepts --limit N */
#define CMD_OPT_SKIP 0x4u  /* accepts --skip N */
#define CMD_JSON_ARGS 0x8u /* takes JSON arguments (which may be @FILE) */
#define CMD_OPT_QUERY 0x10u /* accepts --project P, --sort S, --explain */
#define CMD_OPT_UPSERT 0x20u /* accepts --upsert */

struct cli_command {
    const char *name;
    const char *synopsis; /* arguments, as shown in usage lines */
    const char *summary;  /* one line for `dotdb --help` */
    const char *detail;   /* extra lines for `dotdb COMMAND --help`, or NULL */
    int min_args, max_args;
    unsigned flags;
    cli_handler *run;
};

static const struct cli_command commands[] = {
    { "create-collection", "C", "create collection C", NULL, 1, 1, CMD_NEEDS_DB,
      cmd_create_collection },
    { "delete-collection", "C", "delete collection C and all its documents", NULL, 1, 1,
      CMD_NEEDS_DB, cmd_delete_collection },
    { "collections", "", "print the collection names as one JSON array", NULL, 0, 0,
      CMD_NEEDS_DB, cmd_collections },
    { "put", "C JSON", "store a document; prints {\"id\":\"...\"}",
      "Inserts, or replaces the document with the same \"id\". Without an \"id\"\n"
      "one is generated. The collection is created if needed.\n",
      2, 2, CMD_NEEDS_DB | CMD_JSON_ARGS, cmd_put },
    { "get", "C ID", "print document ID (exit 3 if not found)", NULL, 2, 2, CMD_NEEDS_DB,
      cmd_get },
    { "update", "C ID UPDATE [--upsert]",
      "replace document ID, or apply update operators to it (exit 3 if not found)",
      "UPDATE is a replacement document (its \"id\", if present, must equal ID) or\n"
      "update operators such as '{\"$set\":{\"age\":31},\"$inc\":{\"visits\":1}}',\n"
      "applied atomically by the coordinator. --upsert inserts the document\n"
      "when it does not exist (and prints {\"upserted\":true|false}).\n",
      3, 3, CMD_NEEDS_DB | CMD_JSON_ARGS | CMD_OPT_UPSERT, cmd_update },
    { "update-many", "C FILTER UPDATE [--upsert]",
      "update every matching document; prints {\"matched\":N,\"modified\":N}",
      "One atomic batch. UPDATE is update operators or a replacement document.\n"
      "--upsert inserts one document built from the filter's equality fields\n"
      "when nothing matches, and adds \"upserted_id\" to the output.\n",
      3, 3, CMD_NEEDS_DB | CMD_JSON_ARGS | CMD_OPT_UPSERT, cmd_update_many },
    { "delete-many", "C FILTER", "delete every matching document; prints {\"deleted\":N}",
      "One atomic batch. FILTER {} deletes every document (the collection stays).\n",
      2, 2, CMD_NEEDS_DB | CMD_JSON_ARGS, cmd_delete_many },
    { "delete", "C ID", "delete document ID (exit 3 if not found)", NULL, 2, 2, CMD_NEEDS_DB,
      cmd_delete },
    { "find", "C [FILTER_JSON | FIELD VALUE] [--project P] [--sort S] [--skip N] [--limit N] [--explain]",
      "print matching documents, one per line",
      "FILTER_JSON is a MongoDB filter such as '{\"age\":{\"$gt\":25},\"tags\":\"admin\"}'.\n"
      "FIELD VALUE matches one field: VALUE is read as JSON when it is valid JSON\n"
      "(30, true, null, \"30\") and as a string otherwise (Alice).\n"
      "--project '{\"name\":1}' keeps (1) or drops (0) fields; --sort '{\"age\":-1}'\n"
      "orders by one or more fields; --explain prints the plan and the counts of\n"
      "documents examined and returned instead of the documents.\n",
      1, 3, CMD_NEEDS_DB | CMD_OPT_LIMIT | CMD_OPT_SKIP | CMD_JSON_ARGS | CMD_OPT_QUERY,
      cmd_find },
    { "count", "C [FILTER_JSON | FIELD VALUE]", "print the number of matching documents",
      "The filter is given as for find; without one every document counts.\n", 1, 3,
      CMD_NEEDS_DB | CMD_JSON_ARGS, cmd_count },
    { "aggregate", "C PIPELINE", "run an aggregation pipeline; prints the results, one per line",
      "PIPELINE is a JSON array of stages, MongoDB syntax, e.g.\n"
      "'[{\"$match\":{\"age\":{\"$gt\":25}}},{\"$group\":{\"_id\":\"$city\",\"n\":{\"$sum\":1}}}]'.\n",
      2, 2, CMD_NEEDS_DB | CMD_JSON_ARGS, cmd_aggregate },
    { "list", "C [--limit N] [--skip N]", "print the documents of C, one per line", NULL, 1, 1,
      CMD_NEEDS_DB | CMD_OPT_LIMIT | CMD_OPT_SKIP, cmd_list },
    { "import", "C FILE", "store the JSON lines of FILE (- for stdin)",
      "Blank lines are skipped. Documents go in atomic batches of up to 1000\n"
      "documents or 4 MiB. On a bad document the error names its line, nothing\n"
      "of its batch is stored, earlier batches stay stored, and the import stops\n"
      "with a non-zero exit code. {\"imported\":N} on stdout reports how many\n"
      "documents were stored, also when the import stopped.\n"
      "A progress line is shown on stderr when stderr is a terminal.\n",
      2, 2, CMD_NEEDS_DB, cmd_import },
    { "export", "C", "print every document of C, one per line (for import)", NULL,
      1, 1, CMD_NEEDS_DB, cmd_export },
    { "stats", "[C]", "print statistics of C, or of the whole database", NULL, 0, 1,
      CMD_NEEDS_DB, cmd_stats },
    { "checkpoint", "", "write a checkpoint now; prints a summary",
      "Writes every collection changed since the last checkpoint into segment\n"
      "files (collections/C/data/segment_NNN.db), renames a new manifest into\n"
      "place and removes the WAL it covers. Returns once it is durable.\n"
      "The coordinator also checkpoints by itself (storage.checkpoint_wal_size,\n"
      "storage.checkpoint_interval_ms) and when it stops cleanly.\n",
      0, 0, CMD_NEEDS_DB, cmd_checkpoint },
    { "compact", "[C]", "rewrite the segments of C (or of every collection)",
      "A checkpoint that rewrites even unchanged collections, so their files\n"
      "hold exactly the live documents (no deleted or superseded ones).\n",
      0, 1, CMD_NEEDS_DB, cmd_compact },
    { "backup", "DEST", "online, consistent backup into DEST (new or empty directory)",
      "Takes a checkpoint, then copies its segments and the WAL written up to\n"
      "that moment into DEST while writes go on; prints a summary. DEST is a\n"
      "data directory: `dotdb restore DEST --db NEWDIR` brings it back.\n",
      1, 1, CMD_NEEDS_DB, cmd_backup },
    { "restore", "SRC [--db DIR]", "restore the backup SRC into DIR (new or empty)",
      "Copies the backup and checks every checksum of the copy; exit 1 if it is\n"
      "damaged. No coordinator may run for DIR.\n",
      1, 1, 0, cmd_restore },
    { "check", "[--db DIR]", "verify every checksum of the segments and the WAL",
      "Reads the manifest, every segment block (xxh64) and document, and every\n"
      "WAL record, and checks that the counts agree and the WAL continues the\n"
      "checkpoint. Prints each damaged block with its file and byte offset.\n"
      "Changes nothing; works with the coordinator running or stopped.\n"
      "Exit 0 when intact, 1 when anything is damaged.\n",
      0, 0, 0, cmd_check },
    { "recover", "[--db DIR]", "rebuild the database from the WAL, setting a damaged checkpoint aside",
      "For a checkpoint that `dotdb check` reports damaged while the WAL still\n"
      "holds every write (the coordinator says so when it refuses to start).\n"
      "Starts the coordinator from the WAL alone; the damaged manifest is kept\n"
      "as system/manifest.json.damaged.\n",
      0, 0, 0, cmd_recover },
    { "coordinator", "start|stop|status", "control the coordinator (dotdbd) of the database",
      "start   start it in the background (with --config FILE if given);\n"
      "        prints {\"running\":true,\"pid\":N}; exit 1 if one already runs\n"
      "stop    stop it (it syncs and exits); prints {\"running\":false}; exit 4 if none runs\n"
      "status  prints {\"running\":true,\"pid\":N} and exits 0, or\n"
      "        prints {\"running\":false} and exits 4\n",
      1, 1, 0, cmd_coordinator },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* ---- help ----------------------------------------------------------------- */

static void print_usage_line(FILE *out, const struct cli_command *cmd)
{
    fprintf(out, "usage: dotdb [GLOBAL OPTIONS] %s%s%s\n", cmd->name, *cmd->synopsis ? " " : "",
            cmd->synopsis);
}

static void print_command_help(FILE *out, const struct cli_command *cmd)
{
    print_usage_line(out, cmd);
    fprintf(out, "\n%s\n", cmd->summary);
    if (cmd->detail)
        fprintf(out, "\n%s", cmd->detail);
    if (cmd->flags & CMD_JSON_ARGS)
        fprintf(out, "\nA JSON argument given as @FILE is read from FILE (@- for stdin).\n");
    fprintf(out, "\nSee dotdb --help for the global options and the exit codes.\n");
}

static void print_help(FILE *out)
{
    fputs("usage: dotdb [--db DIR] [--no-autostart] [--config FILE] COMMAND [ARGS...]\n"
          "       dotdb COMMAND --help | dotdb --help | dotdb --version\n"
          "\n"
          "Global options (before the command):\n"
          "  --db DIR        data directory (default: $DOTDB_DIR, else ./dotdb-data)\n"
          "  --no-autostart  fail (exit 4) instead of starting a coordinator\n"
          "  --config FILE   configuration for a coordinator this command starts\n"
          "  -h, --help      print help (after a command: that command's help)\n"
          "  --version       print the version\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        char head[96];

        snprintf(head, sizeof head, "%s %s", commands[i].name, commands[i].synopsis);
        if (strlen(head) > 34) /* too wide for the column: summary below */
            fprintf(out, "  %s\n  %-34s %s\n", head, "", commands[i].summary);
        else
            fprintf(out, "  %-34s %s\n", head, commands[i].summary);
    }
    fputs("\n"
          "Arguments: C is a collection name, ID a document id, JSON a JSON object;\n"
          "JSON and FILTER_JSON may be @FILE (@- for stdin).\n"
          "\n"
          "Output: results on stdout, one JSON value per line; commands that only\n"
          "change something print nothing. Messages go to stderr, prefixed \"dotdb: \".\n"
          "If no coordinator runs for the directory, one is started in the background.\n"
          "\n"
          "Exit codes:\n"
          "  0  success\n"
          "  1  error (I/O, internal, corrupt data, conflict, already exists, ...)\n"
          "  2  usage (unknown command or option, wrong number of arguments, bad N)\n"
          "  3  not found (document or collection)\n"
          "  4  no coordinator, cannot connect, or not allowed at the socket\n"
          "  5  invalid input (malformed JSON, bad id or collection name, document\n"
          "     too large or nested too deeply)\n",
          out);
}

static const struct cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* ---- options ---------------------------------------------------------------- */

/* Does argv[*i] name option `name` ("--name VALUE" or "--name=VALUE")?  On
 * a match *value gets the value and *i moves past it; a missing value is
 * reported (returns -1). */
static int match_valued(const char *name, int argc, char **argv, int *i, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);

    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
    } else if (arg[n] == '\0') {
        if (*i + 1 >= argc) {
            cli_msg("option %s needs a value (see dotdb --help)", name);
            return -1;
        }
        *value = argv[++*i];
    } else {
        return 0;
    }
    if (**value == '\0') {
        cli_msg("option %s needs a non-empty value", name);
        return -1;
    }
    return 1;
}

/* A non-negative decimal count for --limit / --skip (at most INT64_MAX, as
 * the library reads it as a JSON integer). */
static int parse_count(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    uintmax_t v;

    if (*s < '0' || *s > '9') /* strtoumax would accept "-1" and " 1" */
        goto bad;
    errno = 0;
    v = strtoumax(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > INT64_MAX)
        goto bad;
    *out = v;
    return 0;
bad:
    cli_msg("option %s: \"%s\" is not a non-negative integer", opt, s);
    return -1;
}

/* Global options up to the command name; *next gets the index of the
 * command name.  Returns CLI_CONTINUE, or an exit code. */
static int parse_global(struct cli_ctx *ctx, int argc, char **argv, int *next)
{
    int i, m;

    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("dotdb %s (protocol %d)\n", DOTDB_CLI_VERSION, DOTDB_PROTOCOL_VERSION);
            return CLI_EXIT_OK;
        }
        if (strcmp(arg, "--no-autostart") == 0) {
            ctx->no_autostart = 1;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if ((m = match_valued("--db", argc, argv, &i, &ctx->dir)) != 0 ||
            (m = match_valued("--config", argc, argv, &i, &ctx->config_path)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        cli_msg("unknown option \"%s\" (see dotdb --help)", arg);
        return CLI_EXIT_USAGE;
    }
    *next = i;
    return CLI_CONTINUE;
}

/* Is --help / -h among the command's arguments (before "--")? */
static int wants_help(int argc, char **argv, int first)
{
    for (int i = first; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* One command option at argv[*i]: 1 consumed, 0 not an option, -1 error. */
static int parse_command_option(struct cli_ctx *ctx, const struct cli_command *cmd, int argc,
                                char **argv, int *i)
{
    const char *value;
    int m;

    if (strncmp(argv[*i], "--", 2) != 0 || argv[*i][2] == '\0')
        return 0;
    if ((m = match_valued("--db", argc, argv, i, &value)) != 0) {
        ctx->dir = value; /* also accepted after the command: dotdb restore SRC --db DIR */
        return m < 0 ? -1 : 1;
    }
    if ((cmd->flags & CMD_OPT_LIMIT) && (m = match_valued("--limit", argc, argv, i, &value))) {
        ctx->has_limit = 1;
        return m < 0 || parse_count("--limit", value, &ctx->limit) != 0 ? -1 : 1;
    }
    if ((cmd->flags & CMD_OPT_SKIP) && (m = match_valued("--skip", argc, argv, i, &value))) {
        ctx->has_skip = 1;
        return m < 0 || parse_count("--skip", value, &ctx->skip) != 0 ? -1 : 1;
    }
    if ((cmd->flags & CMD_OPT_QUERY) && (m = match_valued("--project", argc, argv, i, &value))) {
        ctx->project = value;
        return m < 0 ? -1 : 1;
    }
    if ((cmd->flags & CMD_OPT_QUERY) && (m = match_valued("--sort", argc, argv, i, &value))) {
        ctx->sort = value;
        return m < 0 ? -1 : 1;
    }
    if ((cmd->flags & CMD_OPT_QUERY) && strcmp(argv[*i], "--explain") == 0) {
        ctx->explain = 1;
        return 1;
    }
    if ((cmd->flags & CMD_OPT_UPSERT) && strcmp(argv[*i], "--upsert") == 0) {
        ctx->upsert = 1;
        return 1;
    }
    cli_msg("%s: unknown option \"%s\" (see dotdb %s --help)", cmd->name, argv[*i], cmd->name);
    return -1;
}

/* Split the command's arguments into options (into ctx) and positionals
 * (into pos, which has room for argc pointers).  Returns CLI_CONTINUE or
 * an exit code. */
static int parse_command_args(struct cli_ctx *ctx, const struct cli_command *cmd, int argc,
                              char **argv, int first, char **pos, int *npos)
{
    int options_done = 0;

    *npos = 0;
    for (int i = first; i < argc; i++) {
        int r = 0;

        if (!options_done && strcmp(argv[i], "--") == 0) {
            options_done = 1;
            continue;
        }
        if (!options_done)
            r = parse_command_option(ctx, cmd, argc, argv, &i);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r == 0)
            pos[(*npos)++] = argv[i];
    }
    if (*npos < cmd->min_args || *npos > cmd->max_args) {
        cli_msg("%s: wrong number of arguments (%d)", cmd->name, *npos);
        print_usage_line(stderr, cmd);
        return CLI_EXIT_USAGE;
    }
    return CLI_CONTINUE;
}

/* The whole command line.  On CLI_CONTINUE *cmd is set and pos[0..*npos)
 * holds the positional arguments. */
static int parse_command_line(struct cli_ctx *ctx, int argc, char **argv,
                              const struct cli_command **cmd, char **pos, int *npos)
{
    const char *env;
    int first, r;

    r = parse_global(ctx, argc, argv, &first);
    if (r != CLI_CONTINUE)
        return r;
    if (first >= argc) {
        cli_msg("no command given (see dotdb --help)");
        return CLI_EXIT_USAGE;
    }
    *cmd = find_command(argv[first]);
    if (!*cmd) {
        cli_msg("unknown command \"%s\" (see dotdb --help)", argv[first]);
        return CLI_EXIT_USAGE;
    }
    ctx->cmd = (*cmd)->name;
    if (wants_help(argc, argv, first + 1)) {
        print_command_help(stdout, *cmd);
        return CLI_EXIT_OK;
    }
    r = parse_command_args(ctx, *cmd, argc, argv, first + 1, pos, npos);
    if (r != CLI_CONTINUE)
        return r;
    if (!ctx->dir) {
        env = getenv("DOTDB_DIR");
        ctx->dir = env && *env ? env : "./dotdb-data";
    }
    return CLI_CONTINUE;
}

/* ---- the database ------------------------------------------------------- */

/* The library's message for a failed open or start names the directory
 * and the remedy; only a bare status code needs the directory added. */
static void report_open_failure(const struct cli_ctx *ctx, int rc)
{
    const char *detail = dotdb_errmsg(NULL);

    if (detail && *detail)
        cli_msg("%s", detail);
    else
        cli_msg("cannot open the database in \"%s\": %s", ctx->dir, dotdb_strerror(rc));
}

/* dotdb_open() cannot pass --config to the coordinator it autostarts, so
 * with --config start it here first.  Losing a start race to another
 * process (DOTDB_ELOCKED) is fine: dotdb_open() attaches to the winner. */
static int start_with_config(struct cli_ctx *ctx, const dotdb_options *opts)
{
    int running = dotdb_coordinator_status(ctx->dir, NULL);
    int rc;

    if (running != 0)
        return CLI_EXIT_OK; /* running, or an error dotdb_open() will report */
    rc = dotdb_coordinator_start(ctx->dir, ctx->config_path, opts);
    if (rc == DOTDB_OK || rc == DOTDB_ELOCKED)
        return CLI_EXIT_OK;
    report_open_failure(ctx, rc);
    return cli_exit_code(rc);
}

static int open_db(struct cli_ctx *ctx)
{
    dotdb_options opts = { 0 };
    int rc, status;

    opts.no_autostart = ctx->no_autostart;
    if (ctx->config_path && !ctx->no_autostart) {
        status = start_with_config(ctx, &opts);
        if (status != CLI_EXIT_OK)
            return status;
    }
    rc = dotdb_open(ctx->dir, &opts, &ctx->db);
    if (rc == DOTDB_OK)
        return CLI_EXIT_OK;
    report_open_failure(ctx, rc);
    return cli_exit_code(rc);
}

/* The library opens sockets and memfds; one that landed on a descriptor
 * 0-2 the caller had closed would receive our output.  Plug the holes
 * with /dev/null, and refuse to run without a stdout at all (results
 * would vanish while the exit code said success). */
static int guard_std_fds(void)
{
    int stdout_closed = 0;

    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        if (fd == 1)
            stdout_closed = 1;
        /* open() takes the lowest free number: this one */
        if (open("/dev/null", O_RDWR) != fd)
            return -1;
    }
    if (stdout_closed) {
        cli_msg("standard output is closed");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cli_ctx ctx = { 0 };
    const struct cli_command *cmd = NULL;
    char **pos;
    int npos = 0, status;

    /* A closed stdout must become a write error we can report and turn
     * into exit 1, not a silent death; the same protects the socket. */
    if (guard_std_fds() != 0)
        return CLI_EXIT_ERROR;
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        cli_msg("cannot ignore SIGPIPE: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos) {
        cli_msg("out of memory");
        return CLI_EXIT_ERROR;
    }
    status = parse_command_line(&ctx, argc, argv, &cmd, pos, &npos);
    if (status != CLI_CONTINUE)
        goto out;
    if (cmd->flags & CMD_NEEDS_DB) {
        status = open_db(&ctx);
        if (status != CLI_EXIT_OK)
            goto out;
    }
    status = cmd->run(&ctx, npos, pos);
out:
    dotdb_close(ctx.db);
    free(pos);
    /* after a failure the first error is the one to report; exit() still
     * flushes what is left */
    return status != CLI_EXIT_OK ? status : cli_stdout_status();
}
