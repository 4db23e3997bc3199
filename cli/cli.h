/*
 * cli.h - internal interface of the `dotdb` command-line tool.
 *
 * The CLI is a thin client of lib/dotdb.h: main.c parses the command line,
 * resolves the data directory, opens one handle and dispatches to a command
 * handler; commands.c and import.c hold the handlers; jsontext.c builds and
 * checks JSON text; report.c prints messages and maps library status codes
 * to exit codes.  All state lives in one struct cli_ctx owned by main() and
 * passed down; nothing here keeps global mutable state.
 *
 * Output contract: stdout carries only results, one JSON value per line;
 * every message goes to stderr prefixed "dotdb: ".
 */
#ifndef DOTDB_CLI_H
#define DOTDB_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dotdb.h"

#define DOTDB_CLI_VERSION "0.1.0"

/* Exit codes; `dotdb --help` documents them, report.c maps DOTDB_E* here. */
enum cli_exit {
    CLI_EXIT_OK = 0,       /* success */
    CLI_EXIT_ERROR = 1,    /* I/O, internal, corrupt, conflict, exists ... */
    CLI_EXIT_USAGE = 2,    /* unknown command/option, wrong arguments */
    CLI_EXIT_NOTFOUND = 3, /* document or collection not found */
    CLI_EXIT_NOCOORD = 4,  /* no coordinator, cannot connect, not allowed */
    CLI_EXIT_INPUT = 5     /* malformed JSON, bad id or name, too big/deep */
};

/* Everything a command may use; owned by main(), lives for the whole run. */
struct cli_ctx {
    const char *dir;         /* data directory (resolved, never NULL) */
    const char *config_path; /* --config FILE, or NULL */
    int no_autostart;        /* --no-autostart given */
    dotdb *db;               /* open handle for commands that need one */
    const char *cmd;         /* command name, for messages */
    int has_limit;           /* --limit given */
    uint64_t limit;
    int has_skip;            /* --skip given */
    uint64_t skip;
    const char *project;     /* --project P (JSON or @FILE), or NULL */
    const char *sort;        /* --sort S (JSON or @FILE), or NULL */
    int explain;             /* --explain given */
    int upsert;              /* --upsert given */
};

/* ---- growable text buffer (jsontext.c) ------------------------------- */

/* Caller-owned struct, heap-owned bytes; zero-initialise before use.  The
 * bytes are kept NUL-terminated so they can be passed as C strings. */
struct cbuf {
    char *data;
    size_t len;
    size_t cap;
};

/* Each returns 0, or -1 with errno = ENOMEM (contents left intact). */
int cbuf_append(struct cbuf *b, const void *p, size_t n);
int cbuf_append_str(struct cbuf *b, const char *s);
/* Append s (n bytes) as a quoted JSON string literal, escaping as needed. */
int cbuf_append_json_string(struct cbuf *b, const char *s, size_t n);
void cbuf_reset(struct cbuf *b);
void cbuf_fini(struct cbuf *b);

/* ---- JSON text (jsontext.c) ------------------------------------------ */

/* Results of cli_json_check(). */
enum cli_json_syntax {
    CLI_JSON_OK = 0, /* exactly one JSON value, whitespace around allowed */
    CLI_JSON_BAD,    /* not JSON; *err_offset is near the first bad byte */
    CLI_JSON_DEEP    /* nested too deeply to scan: let the library judge */
};
/* Check the syntax of text (len bytes) against RFC 8259.  Syntax only:
 * the library does the real validation.  The CLI needs it to decide how
 * to read `find FIELD VALUE` and to hold import to one document per line
 * (dotdb_put_many splits on braces, not on newlines). */
int cli_json_check(const char *text, size_t len, size_t *err_offset);
/* Write json (len bytes) to out as one line: if the text spans several
 * lines, whitespace outside strings is dropped.  0, or -1 on write error. */
int cli_write_json_line(FILE *out, const char *json, size_t len);
/* Read the whole file at path ("-": stdin) into b (replacing its
 * contents).  0, or -1 with errno set. */
int cli_read_file(const char *path, struct cbuf *b);
/* Resolve a JSON argument: "@FILE" reads FILE into store, anything else is
 * used as is.  Sets *json and *len.  Returns a cli_exit code (message printed). */
int cli_json_arg(const struct cli_ctx *ctx, const char *arg, struct cbuf *store,
                 const char **json, size_t *len);

/* ---- messages and exit codes (report.c) ------------------------------ */

/* "dotdb: " + formatted message + newline, on stderr. */
void cli_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The exit code for a DOTDB_* status. */
int cli_exit_code(int rc);
/* Report a failed library call on ctx->db as "dotdb: CMD: detail" and
 * return its exit code.  Read right after the failing call. */
int cli_lib_error(const struct cli_ctx *ctx, int rc);
/* The detail for rc: dotdb_errmsg(db) when it has one, else strerror. */
const char *cli_detail(dotdb *db, int rc);
/* Report "dotdb: CMD: out of memory" and return CLI_EXIT_ERROR. */
int cli_oom(const struct cli_ctx *ctx);
/* Check stdout after a result was written; report and return
 * CLI_EXIT_ERROR if it failed, else CLI_EXIT_OK. */
int cli_stdout_status(void);

/* ---- command handlers (commands.c, import.c) ------------------------- */

/* Each gets the positional arguments after the command name (options
 * already parsed into ctx) and returns a cli_exit code. */
typedef int cli_handler(struct cli_ctx *ctx, int argc, char **argv);

cli_handler cmd_create_collection;
cli_handler cmd_delete_collection;
cli_handler cmd_collections;
cli_handler cmd_put;
cli_handler cmd_get;
cli_handler cmd_update;
cli_handler cmd_delete;
cli_handler cmd_find;
cli_handler cmd_count;
cli_handler cmd_list;
cli_handler cmd_stats;
cli_handler cmd_coordinator;
cli_handler cmd_import;
cli_handler cmd_export;
cli_handler cmd_update_many;
cli_handler cmd_aggregate;
cli_handler cmd_delete_many;
cli_handler cmd_checkpoint;
cli_handler cmd_compact;
cli_handler cmd_backup;
cli_handler cmd_check;
cli_handler cmd_restore;
cli_handler cmd_recover;

/* Print every document of coll matching filter (NULL: all) as JSON lines,
 * honouring ctx->limit / ctx->skip.  Returns a cli_exit code. */
int cli_print_matches(struct cli_ctx *ctx, const char *coll, const char *filter);

#endif /* DOTDB_CLI_H */
