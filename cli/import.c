/*
 * import.c - `dotdb import` and `dotdb export`: JSON lines in and out.
 *
 * Import reads the file line by line (any length, LF or CRLF, a last line
 * without a newline), skips blank lines and sends the documents to
 * dotdb_put_many() in batches of at most IMPORT_BATCH_DOCS documents and
 * IMPORT_BATCH_BYTES bytes (a longer line goes alone).  A batch is atomic in the library: when
 * one document is bad, nothing of its batch is stored, earlier batches stay
 * stored, and the import stops.  The library names the bad document by its
 * 0-based index in the batch; lines[] maps that index back to the line
 * number of the file, which is what the user can act on.  For that mapping
 * to hold, each line must be exactly one JSON object: the CLI checks the
 * syntax of every line before it queues it (see add_line).
 *
 * Export is a find without a filter, one document per line, which import
 * reads back unchanged.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define IMPORT_BATCH_DOCS 1000
#define IMPORT_BATCH_BYTES (4u << 20)

struct import {
    struct cli_ctx *ctx;
    const char *coll;
    const char *path;       /* for messages; "-" is stdin */
    FILE *in;
    struct cbuf batch;      /* the documents of the batch, one per line */
    size_t lines[IMPORT_BATCH_DOCS]; /* file line number of each document */
    size_t ndocs;           /* documents in the batch */
    uint64_t imported;      /* stored by earlier batches */
    int show_progress;      /* stderr is a terminal */
    off_t total_bytes;      /* size of a regular input file, else 0 */
    int progress_shown;     /* a progress line is on the terminal */
};

/* ---- progress ----------------------------------------------------------- */

static void progress_update(struct import *im)
{
    off_t pos;

    if (!im->show_progress)
        return;
    pos = im->total_bytes > 0 ? ftello(im->in) : -1;
    if (pos >= 0 && im->total_bytes > 0) {
        int pct = (int)(pos * 100 / im->total_bytes);
        int filled = pct / 5;

        fprintf(stderr, "\rimport: [%.*s%*s] %3d%%  %" PRIu64 " documents",
                filled, "####################", 20 - filled, "", pct, im->imported);
    } else {
        fprintf(stderr, "\rimport: %" PRIu64 " documents", im->imported);
    }
    im->progress_shown = 1;
}

/* End the progress line so a message or the shell prompt starts clean. */
static void progress_end(struct import *im)
{
    if (im->progress_shown)
        fputc('\n', stderr);
    im->progress_shown = 0;
}

/* ---- stopping ------------------------------------------------------------ */

/* The closing message of a failed import: what is stored and what is not.
 * Nothing of the current batch was sent, or it failed as a whole. */
static void report_stopped(struct import *im, size_t bad_line)
{
    size_t first_unstored = im->ndocs ? im->lines[0] : bad_line;

    cli_msg("import: stopped: %" PRIu64 " documents imported; nothing from line %zu on was stored",
            im->imported, first_unstored);
}

/* "import: line N: reason" for a line the CLI itself rejects. */
static int reject_line(struct import *im, size_t lineno, const char *reason, size_t column)
{
    progress_end(im);
    if (column)
        cli_msg("import: line %zu: %s at column %zu", lineno, reason, column);
    else
        cli_msg("import: line %zu: %s", lineno, reason);
    report_stopped(im, lineno);
    return CLI_EXIT_INPUT;
}

/* ---- batches ------------------------------------------------------------ */

/* The 0-based document index that dotdb_put_many's message names, or -1.
 * The message reads "document N: reason"; take the number after the first
 * "document " that has one. */
static long failed_index(const char *msg)
{
    static const char word[] = "document ";

    for (const char *p = strstr(msg, word); p; p = strstr(p + 1, word)) {
        const char *digits = p + sizeof word - 1;
        char *end;
        long idx;

        if (*digits < '0' || *digits > '9')
            continue;
        errno = 0;
        idx = strtol(digits, &end, 10);
        if (errno == 0 && end != digits)
            return idx;
    }
    return -1;
}

/* "document 2: reason" -> "reason": the line number replaces the index. */
static const char *strip_index(const char *msg)
{
    const char *colon = strstr(msg, ": ");

    return colon && strncmp(msg, "document ", 9) == 0 && failed_index(msg) >= 0 ? colon + 2 : msg;
}

static int report_batch_failure(struct import *im, int rc)
{
    const char *detail = cli_detail(im->ctx->db, rc);
    long idx = failed_index(detail);

    progress_end(im);
    if (idx >= 0 && (size_t)idx < im->ndocs)
        cli_msg("import: line %zu: %s", im->lines[idx], strip_index(detail));
    else
        cli_msg("import: lines %zu-%zu: %s", im->lines[0], im->lines[im->ndocs - 1], detail);
    report_stopped(im, im->lines[0]);
    return cli_exit_code(rc);
}

static int flush_batch(struct import *im)
{
    size_t stored = 0;
    int rc;

    if (im->ndocs == 0)
        return CLI_EXIT_OK;
    rc = dotdb_put_many(im->ctx->db, im->coll, im->batch.data, im->batch.len, &stored);
    if (rc != DOTDB_OK)
        return report_batch_failure(im, rc);
    im->imported += stored;
    im->ndocs = 0;
    cbuf_reset(&im->batch);
    progress_update(im);
    return CLI_EXIT_OK;
}

/* ---- lines -------------------------------------------------------------- */

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

/* Queue one line (newline and CR already removed).  dotdb_put_many finds
 * documents by matching braces, not by lines, so a line with a stray brace
 * or two objects, or an object continued on the next line, would shift
 * its index -> line mapping (or be glued into one document).  Checking
 * that each line is exactly one JSON object keeps one document per line
 * and names the right line. */
static int add_line(struct import *im, const char *line, size_t n, size_t lineno)
{
    size_t bad_at = 0;
    int syntax = cli_json_check(line, n, &bad_at);

    if (syntax == CLI_JSON_BAD)
        return bad_at >= n ? reject_line(im, lineno, "malformed JSON: unexpected end of line", 0)
                           : reject_line(im, lineno, "malformed JSON", bad_at + 1);
    if (line[strspn(line, " \t\r\n")] != '{')
        return reject_line(im, lineno, "not a JSON object", 0);
    /* send first if this line would take the batch past its byte budget;
     * a single line larger than the budget goes alone */
    if (im->ndocs > 0 && im->batch.len + n + 1 > IMPORT_BATCH_BYTES) {
        int status = flush_batch(im);

        if (status != CLI_EXIT_OK)
            return status;
    }
    if (cbuf_append(&im->batch, line, n) != 0 || cbuf_append(&im->batch, "\n", 1) != 0)
        return cli_oom(im->ctx);
    im->lines[im->ndocs++] = lineno;
    return im->ndocs == IMPORT_BATCH_DOCS ? flush_batch(im) : CLI_EXIT_OK;
}

static int read_lines(struct import *im)
{
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int status = CLI_EXIT_OK;

    while (status == CLI_EXIT_OK && (n = getline(&line, &cap, im->in)) >= 0) {
        size_t len = (size_t)n;

        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        line[len] = '\0';
        if (!is_blank(line, len))
            status = add_line(im, line, len, lineno);
    }
    if (status == CLI_EXIT_OK && ferror(im->in)) {
        progress_end(im);
        cli_msg("import: reading \"%s\": %s", im->path, strerror(errno));
        status = CLI_EXIT_ERROR;
    }
    if (status == CLI_EXIT_OK)
        status = flush_batch(im);
    free(line);
    return status;
}

static int open_input(struct import *im)
{
    struct stat st;

    if (strcmp(im->path, "-") == 0) {
        im->in = stdin;
    } else {
        im->in = fopen(im->path, "r");
        if (!im->in) {
            cli_msg("import: cannot open \"%s\": %s", im->path, strerror(errno));
            return CLI_EXIT_ERROR;
        }
    }
    if (fstat(fileno(im->in), &st) == 0 && S_ISREG(st.st_mode))
        im->total_bytes = st.st_size;
    return CLI_EXIT_OK;
}

int cmd_import(struct cli_ctx *ctx, int argc, char **argv)
{
    struct import *im;
    int status;

    (void)argc;
    /* heap: lines[] is too large to sit comfortably on the stack */
    im = calloc(1, sizeof *im);
    if (!im)
        return cli_oom(ctx);
    im->ctx = ctx;
    im->coll = argv[0];
    im->path = argv[1];
    im->show_progress = isatty(STDERR_FILENO);
    status = open_input(im);
    if (status == CLI_EXIT_OK) {
        status = read_lines(im);
        progress_end(im);
        /* how many were stored is a result even when the import stopped */
        printf("{\"imported\":%" PRIu64 "}\n", im->imported);
        if (im->in != stdin)
            (void)fclose(im->in); /* read-only: a failed close loses nothing */
    }
    cbuf_fini(&im->batch);
    free(im);
    return status;
}

int cmd_export(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    return cli_print_matches(ctx, argv[0], NULL);
}
