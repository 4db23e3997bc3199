/*
 * commands.c - the dotdb commands other than import/export.
 *
 * Each handler receives its positional arguments already counted by
 * main.c (so argv[i] exists for every i the usage promises), calls the
 * library, prints its result as one JSON line on stdout and returns an
 * exit code.  Commands that only change state print nothing on success:
 * the exit code says it worked.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* "document "x" not found in collection "c"": names both, which the bare
 * DOTDB_ENOTFOUND message cannot. */
static int report_not_found(const struct cli_ctx *ctx, const char *coll, const char *id)
{
    cli_msg("%s: document \"%s\" not found in collection \"%s\"", ctx->cmd, id, coll);
    return CLI_EXIT_NOTFOUND;
}

/* Print a library-owned JSON result and release it. */
static int print_owned_json(char *json, size_t len)
{
    int wrc = cli_write_json_line(stdout, json, len);

    dotdb_free(json);
    return wrc == 0 ? CLI_EXIT_OK : cli_stdout_status();
}

/* ---- collections -------------------------------------------------------- */

int cmd_create_collection(struct cli_ctx *ctx, int argc, char **argv)
{
    int rc;

    (void)argc;
    rc = dotdb_create_collection(ctx->db, argv[0]);
    return rc == DOTDB_OK ? CLI_EXIT_OK : cli_lib_error(ctx, rc);
}

int cmd_delete_collection(struct cli_ctx *ctx, int argc, char **argv)
{
    int rc;

    (void)argc;
    rc = dotdb_drop_collection(ctx->db, argv[0]);
    return rc == DOTDB_OK ? CLI_EXIT_OK : cli_lib_error(ctx, rc);
}

int cmd_collections(struct cli_ctx *ctx, int argc, char **argv)
{
    char *json = NULL;
    size_t len = 0;
    int rc;

    (void)argc;
    (void)argv;
    rc = dotdb_list_collections(ctx->db, &json, &len);
    if (rc != DOTDB_OK)
        return cli_lib_error(ctx, rc);
    return print_owned_json(json, len);
}

int cmd_stats(struct cli_ctx *ctx, int argc, char **argv)
{
    char *json = NULL;
    size_t len = 0;
    int rc;

    rc = dotdb_stats(ctx->db, argc > 0 ? argv[0] : NULL, &json, &len);
    if (rc != DOTDB_OK)
        return cli_lib_error(ctx, rc);
    return print_owned_json(json, len);
}

/* ---- documents ---------------------------------------------------------- */

int cmd_put(struct cli_ctx *ctx, int argc, char **argv)
{
    struct cbuf file = { 0 };
    struct cbuf line = { 0 };
    char id[DOTDB_ID_MAX + 1];
    const char *json;
    size_t len;
    int rc, status;

    (void)argc;
    status = cli_json_arg(ctx, argv[1], &file, &json, &len);
    if (status != CLI_EXIT_OK)
        goto out;
    rc = dotdb_put(ctx->db, argv[0], json, len, id);
    if (rc != DOTDB_OK) {
        status = cli_lib_error(ctx, rc);
        goto out;
    }
    if (cbuf_append_str(&line, "{\"id\":") != 0 ||
        cbuf_append_json_string(&line, id, strlen(id)) != 0 || cbuf_append(&line, "}", 1) != 0) {
        status = cli_oom(ctx);
        goto out;
    }
    if (cli_write_json_line(stdout, line.data, line.len) != 0)
        status = cli_stdout_status();
out:
    cbuf_fini(&line);
    cbuf_fini(&file);
    return status;
}

int cmd_get(struct cli_ctx *ctx, int argc, char **argv)
{
    char *json = NULL;
    size_t len = 0;
    int rc;

    (void)argc;
    rc = dotdb_get(ctx->db, argv[0], argv[1], &json, &len);
    if (rc == DOTDB_ENOTFOUND)
        return report_not_found(ctx, argv[0], argv[1]);
    if (rc != DOTDB_OK)
        return cli_lib_error(ctx, rc);
    return print_owned_json(json, len);
}

int cmd_update(struct cli_ctx *ctx, int argc, char **argv)
{
    struct cbuf file = { 0 };
    const char *json;
    size_t len;
    int rc, status, upserted = 0;

    (void)argc;
    status = cli_json_arg(ctx, argv[2], &file, &json, &len);
    if (status == CLI_EXIT_OK) {
        if (ctx->upsert)
            rc = dotdb_update_ex(ctx->db, argv[0], argv[1], json, len, DOTDB_UPSERT, &upserted);
        else
            rc = dotdb_update(ctx->db, argv[0], argv[1], json, len);
        if (rc == DOTDB_ENOTFOUND && !ctx->upsert)
            status = report_not_found(ctx, argv[0], argv[1]);
        else if (rc != DOTDB_OK)
            status = cli_lib_error(ctx, rc);
        else if (ctx->upsert && printf("{\"upserted\":%s}\n", upserted ? "true" : "false") < 0)
            status = cli_stdout_status();
    }
    cbuf_fini(&file);
    return status;
}

int cmd_update_many(struct cli_ctx *ctx, int argc, char **argv)
{
    struct cbuf ffile = { 0 }, ufile = { 0 }, line = { 0 };
    const char *filter, *update;
    size_t flen, ulen;
    uint64_t matched = 0, modified = 0;
    char upserted[DOTDB_ID_MAX + 1] = "";
    char head[128];
    int rc, status;

    (void)argc;
    status = cli_json_arg(ctx, argv[1], &ffile, &filter, &flen);
    if (status == CLI_EXIT_OK)
        status = cli_json_arg(ctx, argv[2], &ufile, &update, &ulen);
    if (status != CLI_EXIT_OK)
        goto out;
    /* The library takes NUL-terminated text: @FILE contents are, and so
     * are plain arguments. */
    rc = dotdb_update_many_ex(ctx->db, argv[0], filter, update, ctx->upsert ? DOTDB_UPSERT : 0,
                              &matched, &modified, upserted);
    if (rc != DOTDB_OK) {
        status = cli_lib_error(ctx, rc);
        goto out;
    }
    snprintf(head, sizeof head, "{\"matched\":%" PRIu64 ",\"modified\":%" PRIu64, matched,
             modified);
    if (cbuf_append_str(&line, head) != 0 ||
        (upserted[0] && (cbuf_append_str(&line, ",\"upserted_id\":") != 0 ||
                         cbuf_append_json_string(&line, upserted, strlen(upserted)) != 0)) ||
        cbuf_append(&line, "}", 1) != 0) {
        status = cli_oom(ctx);
        goto out;
    }
    if (cli_write_json_line(stdout, line.data, line.len) != 0)
        status = cli_stdout_status();
out:
    cbuf_fini(&line);
    cbuf_fini(&ufile);
    cbuf_fini(&ffile);
    return status;
}

int cmd_delete_many(struct cli_ctx *ctx, int argc, char **argv)
{
    struct cbuf file = { 0 };
    const char *filter;
    size_t len;
    uint64_t deleted = 0;
    int rc, status;

    (void)argc;
    status = cli_json_arg(ctx, argv[1], &file, &filter, &len);
    if (status == CLI_EXIT_OK) {
        rc = dotdb_delete_many(ctx->db, argv[0], filter, &deleted);
        if (rc != DOTDB_OK)
            status = cli_lib_error(ctx, rc);
        else if (printf("{\"deleted\":%" PRIu64 "}\n", deleted) < 0)
            status = cli_stdout_status();
    }
    cbuf_fini(&file);
    return status;
}

int cmd_delete(struct cli_ctx *ctx, int argc, char **argv)
{
    int rc;

    (void)argc;
    rc = dotdb_delete(ctx->db, argv[0], argv[1]);
    if (rc == DOTDB_ENOTFOUND)
        return report_not_found(ctx, argv[0], argv[1]);
    return rc == DOTDB_OK ? CLI_EXIT_OK : cli_lib_error(ctx, rc);
}

/* ---- queries ------------------------------------------------------------ */

/* Is arg meant as a whole filter document: "{...}" or "@FILE"? */
static int is_filter_arg(const char *arg)
{
    arg += strspn(arg, " \t\r\n");
    return arg[0] == '{' || arg[0] == '@';
}

/* {FIELD: VALUE}: VALUE goes in as JSON when it is JSON (30, true, null,
 * "quoted", [1,2]), otherwise as a string, so `find users name Alice`
 * needs no shell quoting of JSON quotes. */
static int build_field_filter(const char *field, const char *value, struct cbuf *out)
{
    size_t vlen = strlen(value), bad_at;
    int is_json = cli_json_check(value, vlen, &bad_at) != CLI_JSON_BAD;

    if (cbuf_append(out, "{", 1) != 0 || cbuf_append_json_string(out, field, strlen(field)) != 0 ||
        cbuf_append(out, ":", 1) != 0)
        return -1;
    if (is_json ? cbuf_append(out, value, vlen) != 0
                : cbuf_append_json_string(out, value, vlen) != 0)
        return -1;
    return cbuf_append(out, "}", 1);
}

/* The filter of find/count from the arguments after the collection:
 * none, FILTER_JSON, or FIELD VALUE.  *filter is NULL (all), an argument,
 * or store's bytes.  Returns an exit code (message printed). */
static int filter_from_args(const struct cli_ctx *ctx, int nargs, char **args,
                            struct cbuf *store, const char **filter)
{
    size_t len;

    *filter = NULL;
    if (nargs == 0)
        return CLI_EXIT_OK;
    if (nargs == 2) {
        if (build_field_filter(args[0], args[1], store) != 0)
            return cli_oom(ctx);
        *filter = store->data;
        return CLI_EXIT_OK;
    }
    if (!is_filter_arg(args[0])) {
        cli_msg("%s: a single filter argument must be a JSON object or @FILE; "
                "to match one field give FIELD VALUE",
                ctx->cmd);
        return CLI_EXIT_USAGE;
    }
    return cli_json_arg(ctx, args[0], store, filter, &len);
}

/* Append `"name":` and a JSON argument (@FILE read into a scratch buffer). */
static int append_json_option(const struct cli_ctx *ctx, struct cbuf *out, const char *name,
                              const char *arg)
{
    struct cbuf file = { 0 };
    const char *json;
    size_t len;
    int status = cli_json_arg(ctx, arg, &file, &json, &len);

    if (status == CLI_EXIT_OK &&
        (cbuf_append(out, out->len > 1 ? "," : "", out->len > 1) != 0 ||
         cbuf_append_json_string(out, name, strlen(name)) != 0 || cbuf_append(out, ":", 1) != 0 ||
         cbuf_append(out, json, len) != 0))
        status = cli_oom(ctx);
    cbuf_fini(&file);
    return status;
}

/* The find options object for what was given ({"projection":P,"sort":S,
 * "skip":N,"limit":N}), or NULL.  A limit of 0 is not passed on: the CLI
 * stops on its own count, so 0 prints nothing whatever the library makes
 * of a zero limit.  Returns an exit code (message printed). */
static int build_options(const struct cli_ctx *ctx, struct cbuf *out, const char **opts)
{
    char num[64];
    int status = CLI_EXIT_OK;

    *opts = NULL;
    if (!ctx->project && !ctx->sort && !(ctx->has_limit && ctx->limit > 0) && !ctx->has_skip)
        return CLI_EXIT_OK;
    if (cbuf_append(out, "{", 1) != 0)
        return cli_oom(ctx);
    if (ctx->project)
        status = append_json_option(ctx, out, "projection", ctx->project);
    if (status == CLI_EXIT_OK && ctx->sort)
        status = append_json_option(ctx, out, "sort", ctx->sort);
    if (status == CLI_EXIT_OK && ctx->has_limit && ctx->limit > 0) {
        snprintf(num, sizeof num, "%s\"limit\":%" PRIu64, out->len > 1 ? "," : "", ctx->limit);
        if (cbuf_append_str(out, num) != 0)
            status = cli_oom(ctx);
    }
    if (status == CLI_EXIT_OK && ctx->has_skip) {
        snprintf(num, sizeof num, "%s\"skip\":%" PRIu64, out->len > 1 ? "," : "", ctx->skip);
        if (cbuf_append_str(out, num) != 0)
            status = cli_oom(ctx);
    }
    if (status == CLI_EXIT_OK && cbuf_append(out, "}", 1) != 0)
        status = cli_oom(ctx);
    if (status == CLI_EXIT_OK)
        *opts = out->data;
    return status;
}

/* Drain the cursor onto stdout, at most ctx->limit documents when given.
 * Returns a DOTDB status (reported by the caller), or 1 after a write
 * error on stdout, which is already reported. */
static int drain_cursor(const struct cli_ctx *ctx, dotdb_cursor *cur)
{
    uint64_t printed = 0;

    while (!ctx->has_limit || printed < ctx->limit) {
        char *doc = NULL;
        size_t len = 0;
        int rc = dotdb_cursor_next(cur, &doc, &len);

        if (rc == DOTDB_EDONE)
            return DOTDB_OK;
        if (rc != DOTDB_OK)
            return rc;
        rc = cli_write_json_line(stdout, doc, len);
        dotdb_free(doc);
        if (rc != 0) {
            (void)cli_stdout_status();
            return 1; /* stop early: nobody reads the rest */
        }
        printed++;
    }
    return DOTDB_OK;
}

int cli_print_matches(struct cli_ctx *ctx, const char *coll, const char *filter)
{
    struct cbuf optbuf = { 0 };
    const char *opts;
    dotdb_cursor *cur = NULL;
    int rc, status;

    status = build_options(ctx, &optbuf, &opts);
    if (status != CLI_EXIT_OK)
        goto out;
    if (ctx->explain) {
        char *json = NULL;
        size_t len = 0;

        rc = dotdb_explain(ctx->db, coll, filter, opts, &json, &len);
        status = rc == DOTDB_OK ? print_owned_json(json, len) : cli_lib_error(ctx, rc);
        goto out;
    }
    rc = dotdb_find(ctx->db, coll, filter, opts, &cur);
    if (rc != DOTDB_OK) {
        status = cli_lib_error(ctx, rc);
        goto out;
    }
    rc = drain_cursor(ctx, cur);
    if (rc == 1)
        status = CLI_EXIT_ERROR;
    else if (rc != DOTDB_OK)
        status = cli_lib_error(ctx, rc);
    dotdb_cursor_close(cur);
out:
    cbuf_fini(&optbuf);
    return status;
}

int cmd_find(struct cli_ctx *ctx, int argc, char **argv)
{
    struct cbuf store = { 0 };
    const char *filter;
    int status;

    status = filter_from_args(ctx, argc - 1, argv + 1, &store, &filter);
    if (status == CLI_EXIT_OK)
        status = cli_print_matches(ctx, argv[0], filter);
    cbuf_fini(&store);
    return status;
}

int cmd_aggregate(struct cli_ctx *ctx, int argc, char **argv)
{
    struct cbuf file = { 0 };
    const char *pipeline;
    size_t len;
    dotdb_cursor *cur = NULL;
    int rc, status;

    (void)argc;
    status = cli_json_arg(ctx, argv[1], &file, &pipeline, &len);
    if (status != CLI_EXIT_OK)
        goto out;
    rc = dotdb_aggregate(ctx->db, argv[0], pipeline, &cur);
    if (rc != DOTDB_OK) {
        status = cli_lib_error(ctx, rc);
        goto out;
    }
    rc = drain_cursor(ctx, cur);
    if (rc == 1)
        status = CLI_EXIT_ERROR;
    else if (rc != DOTDB_OK)
        status = cli_lib_error(ctx, rc);
    dotdb_cursor_close(cur);
out:
    cbuf_fini(&file);
    return status;
}

int cmd_list(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    return cli_print_matches(ctx, argv[0], NULL);
}

int cmd_count(struct cli_ctx *ctx, int argc, char **argv)
{
    struct cbuf store = { 0 };
    const char *filter;
    uint64_t count = 0;
    int rc, status;

    status = filter_from_args(ctx, argc - 1, argv + 1, &store, &filter);
    if (status != CLI_EXIT_OK)
        goto out;
    rc = dotdb_count(ctx->db, argv[0], filter, &count);
    if (rc != DOTDB_OK) {
        status = cli_lib_error(ctx, rc);
        goto out;
    }
    if (printf("%" PRIu64 "\n", count) < 0)
        status = cli_stdout_status();
out:
    cbuf_fini(&store);
    return status;
}

/* ---- coordinator ---------------------------------------------------------- */

/* Print {"running":...} for dir; returns 1 if running, 0 if not, or a
 * negative DOTDB status (nothing printed). */
static int print_coordinator_status(const char *dir)
{
    long pid = 0;
    int running = dotdb_coordinator_status(dir, &pid);

    if (running < 0)
        return running;
    if (running)
        printf("{\"running\":true,\"pid\":%ld}\n", pid);
    else
        printf("{\"running\":false}\n");
    return running;
}

static int coordinator_start(struct cli_ctx *ctx)
{
    int rc = dotdb_coordinator_start(ctx->dir, ctx->config_path, NULL);

    if (rc != DOTDB_OK) {
        cli_msg("coordinator start: %s", cli_detail(NULL, rc));
        return cli_exit_code(rc);
    }
    rc = print_coordinator_status(ctx->dir);
    if (rc < 0) {
        cli_msg("coordinator start: started, but status failed: %s", cli_detail(NULL, rc));
        return cli_exit_code(rc);
    }
    return CLI_EXIT_OK;
}

static int coordinator_stop(struct cli_ctx *ctx)
{
    int rc = dotdb_coordinator_stop(ctx->dir, 0);

    if (rc == DOTDB_ENOCOORD) {
        cli_msg("coordinator stop: no coordinator is running for \"%s\"", ctx->dir);
        return CLI_EXIT_NOCOORD;
    }
    if (rc != DOTDB_OK) {
        cli_msg("coordinator stop: %s", cli_detail(NULL, rc));
        return cli_exit_code(rc);
    }
    printf("{\"running\":false}\n");
    return CLI_EXIT_OK;
}

/* Exit 0 when running, 4 when not, so `dotdb coordinator status` works as
 * a shell condition; the JSON line is printed either way. */
static int coordinator_status(struct cli_ctx *ctx)
{
    int rc = print_coordinator_status(ctx->dir);

    if (rc < 0) {
        cli_msg("coordinator status: %s", cli_detail(NULL, rc));
        return cli_exit_code(rc);
    }
    return rc ? CLI_EXIT_OK : CLI_EXIT_NOCOORD;
}

int cmd_coordinator(struct cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    if (strcmp(argv[0], "start") == 0)
        return coordinator_start(ctx);
    if (strcmp(argv[0], "stop") == 0)
        return coordinator_stop(ctx);
    if (strcmp(argv[0], "status") == 0)
        return coordinator_status(ctx);
    cli_msg("coordinator: unknown action \"%s\" (expected start, stop or status)", argv[0]);
    return CLI_EXIT_USAGE;
}
