/*
 * jsontext.c - JSON text helpers for the dotdb CLI.
 *
 * The CLI never parses documents itself: the library does, and its errors
 * carry the detail.  What the CLI does need is small and syntactic: build a
 * filter from a FIELD and a VALUE (escaping the field, and deciding whether
 * VALUE is JSON or a bare string), keep every result on one output line,
 * and read "@FILE" arguments.  cJSON is not used here on purpose: the CLI
 * links only the public library.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Past this depth the scanner gives up and says so (CLI_JSON_DEEP): the
 * library's limit is lower, so it will reject the text with a proper
 * message; the bound keeps the recursion of a hostile input small. */
#define SCAN_MAX_DEPTH 128

/* ---- cbuf ------------------------------------------------------------- */

static int cbuf_reserve(struct cbuf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    /* +1 keeps room for the terminating NUL */
    if (extra > SIZE_MAX - b->len - 1) {
        errno = ENOMEM;
        return -1;
    }
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int cbuf_append(struct cbuf *b, const void *p, size_t n)
{
    if (cbuf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int cbuf_append_str(struct cbuf *b, const char *s)
{
    return cbuf_append(b, s, strlen(s));
}

int cbuf_append_json_string(struct cbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char esc[7];
    size_t i, start = 0;

    if (cbuf_append(b, "\"", 1) != 0)
        return -1;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue; /* copied in runs below: most bytes need no escape */
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            elen = 6;
            break;
        }
        if (cbuf_append(b, s + start, i - start) != 0 || cbuf_append(b, esc, elen) != 0)
            return -1;
        start = i + 1;
    }
    if (cbuf_append(b, s + start, n - start) != 0)
        return -1;
    return cbuf_append(b, "\"", 1);
}

void cbuf_reset(struct cbuf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void cbuf_fini(struct cbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- syntax scanner -----------------------------------------------------
 *
 * Recursive descent over RFC 8259 syntax; on failure s->p is left at (or
 * just past) the offending byte, which error messages report. */

struct scan {
    const char *p;
    const char *end;
    int depth;
    int too_deep; /* gave up at SCAN_MAX_DEPTH */
};

static int scan_value(struct scan *s);

static void scan_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int scan_digits(struct scan *s)
{
    const char *start = s->p;

    while (s->p < s->end && is_digit(*s->p))
        s->p++;
    return s->p > start;
}

static int scan_number(struct scan *s)
{
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++; /* no leading zeros: "007" stays a string */
    else if (!scan_digits(s))
        return 0;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!scan_digits(s))
            return 0;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!scan_digits(s))
            return 0;
    }
    return 1;
}

static int scan_string(struct scan *s)
{
    s->p++; /* opening quote */
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p++;

        if (c == '"')
            return 1;
        if (c < 0x20)
            return 0;
        if (c != '\\')
            continue;
        if (s->p >= s->end)
            return 0;
        c = (unsigned char)*s->p++;
        if (c == 'u') {
            for (int i = 0; i < 4; i++)
                if (s->p >= s->end || !is_hex(*s->p++))
                    return 0;
        } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
            return 0;
        }
    }
    return 0;
}

static int scan_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return 0;
    s->p += n;
    return 1;
}

/* Members of an array ('[' already consumed, close = ']') or an object
 * (close = '}'): "key": value pairs separated by commas. */
static int scan_members(struct scan *s, char close)
{
    scan_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 1;
    }
    for (;;) {
        scan_ws(s);
        if (close == '}') {
            if (s->p >= s->end || *s->p != '"' || !scan_string(s))
                return 0;
            scan_ws(s);
            if (s->p >= s->end || *s->p++ != ':')
                return 0;
        }
        if (!scan_value(s))
            return 0;
        scan_ws(s);
        if (s->p >= s->end)
            return 0;
        if (*s->p == close) {
            s->p++;
            return 1;
        }
        if (*s->p++ != ',')
            return 0;
    }
}

static int scan_value(struct scan *s)
{
    int ok;

    scan_ws(s);
    if (s->p >= s->end)
        return 0;
    switch (*s->p) {
    case '{':
    case '[':
        if (++s->depth > SCAN_MAX_DEPTH) {
            s->too_deep = 1;
            return 0;
        }
        ok = scan_members(s, *s->p++ == '{' ? '}' : ']');
        s->depth--;
        return ok;
    case '"':
        return scan_string(s);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        return scan_number(s);
    }
}

int cli_json_check(const char *text, size_t len, size_t *err_offset)
{
    struct scan s = { text, text + len, 0, 0 };
    int ok;

    ok = scan_value(&s);
    if (ok)
        scan_ws(&s);
    *err_offset = (size_t)(s.p - text);
    if (s.too_deep)
        return CLI_JSON_DEEP;
    return ok && s.p == s.end ? CLI_JSON_OK : CLI_JSON_BAD;
}

/* ---- output ------------------------------------------------------------ */

/* Slow path of cli_write_json_line: copy, dropping whitespace outside
 * strings.  Only taken when the library hands back multi-line text. */
static int write_compacted(FILE *out, const char *json, size_t len)
{
    int in_string = 0, escaped = 0;

    for (size_t i = 0; i < len; i++) {
        char c = json[i];

        if (in_string) {
            if (escaped)
                escaped = 0;
            else if (c == '\\')
                escaped = 1;
            else if (c == '"')
                in_string = 0;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        } else if (c == '"') {
            in_string = 1;
        }
        if (putc_unlocked(c, out) == EOF)
            return -1;
    }
    return 0;
}

int cli_write_json_line(FILE *out, const char *json, size_t len)
{
    int rc;

    if (memchr(json, '\n', len) || memchr(json, '\r', len))
        rc = write_compacted(out, json, len);
    else
        rc = fwrite(json, 1, len, out) == len ? 0 : -1;
    if (rc != 0 || putc_unlocked('\n', out) == EOF)
        return -1;
    return 0;
}

/* ---- files ------------------------------------------------------------- */

static int read_stream(FILE *in, struct cbuf *b)
{
    char chunk[65536];
    size_t n;

    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0)
        if (cbuf_append(b, chunk, n) != 0)
            return -1;
    if (ferror(in)) {
        errno = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

int cli_read_file(const char *path, struct cbuf *b)
{
    FILE *in;
    int rc, saved;

    cbuf_reset(b);
    errno = 0;
    if (strcmp(path, "-") == 0)
        return read_stream(stdin, b);
    in = fopen(path, "rb");
    if (!in)
        return -1;
    rc = read_stream(in, b);
    saved = errno;
    if (fclose(in) != 0 && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

int cli_json_arg(const struct cli_ctx *ctx, const char *arg, struct cbuf *store,
                 const char **json, size_t *len)
{
    *json = NULL;
    *len = 0;
    if (arg[0] != '@') {
        *json = arg;
        *len = strlen(arg);
        return CLI_EXIT_OK;
    }
    if (cli_read_file(arg + 1, store) != 0) {
        cli_msg("%s: cannot read \"%s\": %s", ctx->cmd, arg + 1, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    /* an empty store has data == NULL: hand the library "" instead */
    *json = store->data ? store->data : "";
    *len = store->len;
    return CLI_EXIT_OK;
}
