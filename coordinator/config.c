/*
 * config.c - the coordinator's configuration: one table of every key.
 *
 * `config_keys` below is the only place a key is described: its name
 * ("section.key"), its type, where it lives in dotdb_config, its default,
 * its bounds and its help text.  Defaults (config_defaults), parsing and
 * validation (config_apply_json), the effective configuration
 * (config_to_json, used by `stats`) and `dotdbd --help-config`
 * (config_help) all walk that table, so adding a key is adding one row.
 *
 * Applying a source is all or nothing: the JSON is applied to a copy of
 * the caller's configuration, cross-key rules are checked (buffer_pool_size
 * <= max_size), and only then is the copy stored back.  Later sources
 * override earlier ones key by key.
 *
 * cJSON records the position of its last parse error in a file-scope
 * variable (cJSON_GetErrorPtr); we never read it and take the position from
 * the parse-end pointer of cJSON_ParseWithLengthOpts instead.  The write to
 * that variable is still a race if two threads parse at once: the
 * coordinator loads its configuration from one thread at start-up.
 */
#include "config.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dotdb.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

/* A configuration file bigger than this is a mistake (a log file passed as
 * --config), not a configuration. */
#define CONFIG_FILE_MAX (1u << 20)

/* Values quoted in messages are cut to this many characters. */
#define VALUE_SHOWN_MAX 64

enum cfg_type {
    CFG_SIZE,   /* uint64_t: bytes, a number or a string with a unit */
    CFG_UINT,   /* uint64_t: a JSON integer */
    CFG_BOOL,   /* int: true / false */
    CFG_ENUM,   /* int: one of `choices`, stored as its index */
    CFG_STRING, /* char[size]: NUL-terminated, zero-filled */
    CFG_UIDS,   /* allowed_uids + n_allowed_uids: an array of integers */
};

#define CFG_POW2 0x1u /* the value must be a power of two */

struct cfg_key {
    const char *name;   /* "section.key" */
    enum cfg_type type;
    size_t offset;      /* into dotdb_config */
    size_t size;        /* of the field (the capacity of a string) */
    uint64_t def;       /* default of SIZE, UINT, BOOL and ENUM keys */
    uint64_t min, max;  /* SIZE and UINT bounds, inclusive */
    unsigned flags;     /* CFG_POW2 */
    const char *const *choices; /* ENUM: names by value, NULL-terminated */
    const char *help;
};

/* The field's type is checked at compile time: a row that names an int
 * field as a size would otherwise write 8 bytes into 4. */
#define FIELD_CHECKED(f, T)                                                          \
    .offset = offsetof(dotdb_config, f) +                                            \
              0 * sizeof(char[_Generic(((dotdb_config *)0)->f, T: 1, default: -1)]), \
    .size = sizeof(((dotdb_config *)0)->f)
#define FIELD_STR(f) .offset = offsetof(dotdb_config, f), .size = sizeof(((dotdb_config *)0)->f)

#define K_SIZE(n, f, d, lo, hi, fl, h)                                                    \
    {.name = n, .type = CFG_SIZE, FIELD_CHECKED(f, uint64_t), .def = d, .min = lo,     \
     .max = hi, .flags = fl, .help = h}
#define K_UINT(n, f, d, lo, hi, fl, h)                                                    \
    {.name = n, .type = CFG_UINT, FIELD_CHECKED(f, uint64_t), .def = d, .min = lo,     \
     .max = hi, .flags = fl, .help = h}
#define K_BOOL(n, f, d, h) {.name = n, .type = CFG_BOOL, FIELD_CHECKED(f, int), .def = d, .help = h}
#define K_ENUM(n, f, d, c, h)                                                             \
    {.name = n, .type = CFG_ENUM, FIELD_CHECKED(f, int), .def = d, .choices = c, .help = h}
#define K_STR(n, f, h) {.name = n, .type = CFG_STRING, FIELD_STR(f), .help = h}

_Static_assert(SYNC_FULL == 0 && SYNC_NORMAL == 1 && SYNC_OFF == 2, "sync_names order");
_Static_assert(COMP_NONE == 0 && COMP_LZ4 == 1, "compression_names order");
static const char *const sync_names[] = {"full", "normal", "off", NULL};
static const char *const compression_names[] = {"none", "lz4", NULL};

static const struct cfg_key config_keys[] = {
    K_STR("storage.data_directory", data_directory,
          "directory of the database; empty: the --db directory"),
    K_STR("storage.wal_directory", wal_directory,
          "directory of the write-ahead log; empty: <data_directory>/wal"),
    K_SIZE("storage.segment_size", segment_size, 64 * MiB, 1 * MiB, 16 * GiB, 0,
           "size of a WAL or data segment file"),
    K_ENUM("storage.compression", compression, COMP_LZ4, compression_names,
           "compression of data segments"),
    K_ENUM("storage.sync_mode", sync_mode, SYNC_FULL, sync_names,
           "when a write is acknowledged: full = after fdatasync, normal = after write "
           "(fdatasync at least every sync_interval_ms), off = never fdatasync"),
    K_UINT("storage.sync_interval_ms", sync_interval_ms, 100, 1, 3600000, 0,
           "normal mode: longest time between two fdatasyncs of the WAL"),
    K_SIZE("storage.checkpoint_wal_size", checkpoint_wal_size, 64 * MiB, 1 * MiB, 1 * TiB, 0,
           "take a checkpoint once the WAL holds this many bytes"),
    K_UINT("storage.checkpoint_wal_percent", checkpoint_wal_percent, 100, 0, 100000, 0,
           "and once it holds this percentage of the data the last checkpoint wrote "
           "(0: the size alone), so that checkpoints cost in proportion to what is written"),
    K_UINT("storage.checkpoint_interval_ms", checkpoint_interval_ms, 300000, 100,
           UINT64_C(2592000000), 0, "take a checkpoint at least this often"),
    K_STR("storage.socket_path", socket_path,
          "the coordinator's Unix socket; empty: <data_directory>/dotdb.sock"),
    K_SIZE("memory.buffer_pool_size", buffer_pool_size, 64 * MiB, 1 * MiB, 1 * TiB, 0,
           "initial size of the shared data object (at most memory.max_size)"),
    K_SIZE("memory.max_size", max_size, 8 * GiB, 1 * MiB, 1 * TiB, 0,
           "largest size the shared data object may grow to"),
    K_SIZE("memory.cache_size", cache_size, 256 * MiB, 0, 1 * TiB, 0,
           "memory for cached data segments"),
    K_UINT("memory.max_connections", max_connections, 1000, 1, 100000, 0,
           "most client connections at once; more are refused"),
    K_UINT("memory.worker_threads", worker_threads, 2, 1, 256, 0,
           "background threads (WAL flushing, checkpoints, index builds)"),
    K_UINT("memory.max_snapshot_age_ms", max_snapshot_age_ms, 0, 0, UINT64_C(31536000000), 0,
           "oldest a client snapshot may get before it is expired; 0: unbounded"),
    K_UINT("memory.frame_timeout_ms", frame_timeout_ms, 10000, 10, 3600000, 0,
           "longest a connection may take to send its handshake or the rest of a frame it "
           "has started; then it gets an error and is closed (an idle connection between "
           "frames is never closed)"),
    K_BOOL("indexing.auto_index", auto_index, 1, "create indexes for frequently queried fields"),
    K_SIZE("indexing.index_cache_size", index_cache_size, 128 * MiB, 0, 1 * TiB, 0,
           "memory for cached persisted indexes"),
    K_SIZE("indexing.btree_page_size", btree_page_size, 4 * KiB, 512, 64 * KiB, CFG_POW2,
           "size of a B+ tree node"),
    K_UINT("indexing.hash_bucket_count", hash_bucket_count, 1024, 16, UINT64_C(1) << 30,
           CFG_POW2, "initial slots of a collection's primary hash table"),
    K_SIZE("limits.max_document_size", max_document_size, 16 * MiB, 1 * KiB, 256 * MiB, 0,
           "largest document accepted, both as JSON text and in its binary encoding"),
    K_UINT("limits.max_depth", max_depth, 100, 1, 1000, 0,
           "deepest nesting of objects and arrays in a document"),
    K_UINT("limits.max_fields", max_fields, 100000, 1, UINT32_MAX, 0,
           "most members of one object in a document (each nested object counted on its own)"),
    {.name = "security.allowed_uids", .type = CFG_UIDS,
     FIELD_CHECKED(allowed_uids[0], uint32_t),
     .help = "numeric user ids allowed to connect besides the database owner "
             "(at most 32)"},
    K_STR("security.group", group,
          "group given access: socket 0660 and directory 0750 for it; empty: none"),
};

#define N_KEYS (sizeof config_keys / sizeof config_keys[0])

/* Where a source's messages go. */
struct apply_ctx {
    const char *origin;
    char *err;
    size_t errlen;
    char *warn;
    size_t warnlen;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t *u64_field(dotdb_config *cfg, const struct cfg_key *k)
{
    return (uint64_t *)((char *)cfg + k->offset);
}

static const uint64_t *u64_field_c(const dotdb_config *cfg, const struct cfg_key *k)
{
    return (const uint64_t *)((const char *)cfg + k->offset);
}

static int *int_field(dotdb_config *cfg, const struct cfg_key *k)
{
    return (int *)((char *)cfg + k->offset);
}

static const int *int_field_c(const dotdb_config *cfg, const struct cfg_key *k)
{
    return (const int *)((const char *)cfg + k->offset);
}

static char *str_field(dotdb_config *cfg, const struct cfg_key *k)
{
    return (char *)cfg + k->offset;
}

static const char *str_field_c(const dotdb_config *cfg, const struct cfg_key *k)
{
    return (const char *)cfg + k->offset;
}

static __attribute__((format(printf, 3, 4))) void msg_set(char *buf, size_t len,
                                                          const char *fmt, ...)
{
    if (buf == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static const struct cfg_key *key_find(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

/* Is `name` the section part of some key ("storage")? */
static bool is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < N_KEYS; i++)
        if (strncmp(config_keys[i].name, name, n) == 0 && config_keys[i].name[n] == '.')
            return true;
    return false;
}

static bool is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

/* "64MB" when exact, else bytes: the form a user would write. */
static void size_text(uint64_t v, char *buf, size_t len)
{
    static const struct { uint64_t unit; const char *name; } units[] = {
        {TiB, "TB"}, {GiB, "GB"}, {MiB, "MB"}, {KiB, "KB"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (v >= units[i].unit && v % units[i].unit == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(v / units[i].unit), units[i].name);
            return;
        }
    }
    snprintf(buf, len, v == 0 ? "0" : "%lluB", (unsigned long long)v);
}

/* `"a", "b" or "c"` for an enum's choices. */
static void choices_text(const char *const *choices, char *buf, size_t len)
{
    size_t used = 0, n = 0;
    while (choices[n] != NULL)
        n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + used, len - used, "%s\"%s\"", sep, choices[i]);
        if (w < 0)
            return;
        used += (size_t)w;
    }
}

/* What a key accepts, for messages and help: "1MB to 16GB". */
static void expected_text(const struct cfg_key *k, char *buf, size_t len)
{
    char lo[32], hi[32];
    switch (k->type) {
    case CFG_SIZE:
        size_text(k->min, lo, sizeof lo);
        size_text(k->max, hi, sizeof hi);
        snprintf(buf, len, "%ssize from %s to %s (bytes, or a string such as \"64MB\")",
                 k->flags & CFG_POW2 ? "a power-of-two " : "a ", lo, hi);
        break;
    case CFG_UINT:
        snprintf(buf, len, "%sinteger from %llu to %llu",
                 k->flags & CFG_POW2 ? "a power-of-two " : "an ", (unsigned long long)k->min,
                 (unsigned long long)k->max);
        break;
    case CFG_BOOL:
        snprintf(buf, len, "true or false");
        break;
    case CFG_ENUM:
        choices_text(k->choices, buf, len);
        break;
    case CFG_STRING:
        snprintf(buf, len, "a string of at most %zu bytes", k->size - 1);
        break;
    case CFG_UIDS:
        snprintf(buf, len, "an array of at most %d user ids", CONFIG_MAX_UIDS);
        break;
    }
}

/* The value as JSON text, cut short: messages quote what the user wrote. */
static void value_text(const cJSON *v, char *buf, size_t len)
{
    char *s = cJSON_PrintUnformatted(v);
    if (s == NULL) {
        snprintf(buf, len, "(value)");
        return;
    }
    if (strlen(s) > VALUE_SHOWN_MAX)
        snprintf(buf, len, "%.*s...", VALUE_SHOWN_MAX, s);
    else
        snprintf(buf, len, "%s", s);
    free(s);
}

static int bad_value(const struct apply_ctx *x, const struct cfg_key *k, const cJSON *v)
{
    char shown[VALUE_SHOWN_MAX + 8], expected[160];
    value_text(v, shown, sizeof shown);
    expected_text(k, expected, sizeof expected);
    msg_set(x->err, x->errlen, "%s: invalid value %s in %s (expected %s)", k->name, shown,
            x->origin, expected);
    return DOTDB_ECONFIG;
}

static void warn_unknown(const struct apply_ctx *x, const char *key)
{
    if (x->warn == NULL || x->warnlen == 0)
        return;
    size_t used = strnlen(x->warn, x->warnlen);
    if (used >= x->warnlen - 1) {
        x->warn[x->warnlen - 1] = '\0';
        return;
    }
    snprintf(x->warn + used, x->warnlen - used,
             "unknown configuration key \"%s\" in %s (ignored)\n", key, x->origin);
}

/* ---- sizes and numbers ---------------------------------------------------- */

/* log2 of the unit named by s ("", "B", "KB", "KiB", "K", ...); -1 if none. */
static int unit_shift(const char *s)
{
    static const struct { const char *name; int shift; } units[] = {
        {"", 0},      {"B", 0},     {"K", 10},    {"KB", 10},   {"KiB", 10},
        {"M", 20},    {"MB", 20},   {"MiB", 20},  {"G", 30},    {"GB", 30},
        {"GiB", 30},  {"T", 40},    {"TB", 40},   {"TiB", 40}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(s, units[i].name) == 0)
            return units[i].shift;
    return -1;
}

int config_parse_size(const char *s, uint64_t *out)
{
    *out = 0;
    if (s == NULL || !(*s >= '0' && *s <= '9'))
        return DOTDB_ECONFIG;
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return DOTDB_ECONFIG;
        v = v * 10 + d;
    }
    const char *digits_end = p;
    while (*p == ' ')
        p++;
    if (*p == '\0' && p != digits_end)
        return DOTDB_ECONFIG; /* trailing blanks and no unit */
    int shift = unit_shift(p);
    if (shift < 0 || v > (UINT64_MAX >> shift))
        return DOTDB_ECONFIG;
    *out = v << shift;
    return DOTDB_OK;
}

/* A JSON number that is a whole, non-negative integer; values past 2^64
 * saturate so that the range check names them. */
static int number_to_u64(const cJSON *v, uint64_t *out)
{
    *out = 0;
    if (!cJSON_IsNumber(v))
        return DOTDB_ECONFIG;
    double d = v->valuedouble;
    if (!(d >= 0.0))
        return DOTDB_ECONFIG;
    if (d >= 18446744073709551616.0) {
        *out = UINT64_MAX;
        return DOTDB_OK;
    }
    uint64_t u = (uint64_t)d;
    if ((double)u != d)
        return DOTDB_ECONFIG; /* fractional */
    *out = u;
    return DOTDB_OK;
}

/* ---- setting one key -------------------------------------------------------- */

static int set_number(dotdb_config *cfg, const struct cfg_key *k, const cJSON *v,
                      const struct apply_ctx *x)
{
    uint64_t u;
    int rc;
    if (k->type == CFG_SIZE && cJSON_IsString(v))
        rc = config_parse_size(v->valuestring, &u);
    else
        rc = number_to_u64(v, &u);
    if (rc != DOTDB_OK || u < k->min || u > k->max || ((k->flags & CFG_POW2) && !is_pow2(u)))
        return bad_value(x, k, v);
    *u64_field(cfg, k) = u;
    return DOTDB_OK;
}

static int set_bool(dotdb_config *cfg, const struct cfg_key *k, const cJSON *v,
                    const struct apply_ctx *x)
{
    if (!cJSON_IsBool(v))
        return bad_value(x, k, v);
    *int_field(cfg, k) = cJSON_IsTrue(v) ? 1 : 0;
    return DOTDB_OK;
}

static int set_enum(dotdb_config *cfg, const struct cfg_key *k, const cJSON *v,
                    const struct apply_ctx *x)
{
    if (cJSON_IsString(v)) {
        for (int i = 0; k->choices[i] != NULL; i++) {
            if (strcasecmp(v->valuestring, k->choices[i]) == 0) {
                *int_field(cfg, k) = i;
                return DOTDB_OK;
            }
        }
    }
    return bad_value(x, k, v);
}

static int set_string(dotdb_config *cfg, const struct cfg_key *k, const cJSON *v,
                      const struct apply_ctx *x)
{
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= k->size)
        return bad_value(x, k, v);
    /* zero-filled, so that two equal configurations compare equal bytewise */
    char *dst = str_field(cfg, k);
    memset(dst, 0, k->size);
    memcpy(dst, v->valuestring, strlen(v->valuestring));
    return DOTDB_OK;
}

static int set_uids(dotdb_config *cfg, const struct cfg_key *k, const cJSON *v,
                    const struct apply_ctx *x)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > CONFIG_MAX_UIDS)
        return bad_value(x, k, v);
    uint32_t uids[CONFIG_MAX_UIDS] = {0};
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        uint64_t u;
        /* (uid_t)-1 means "no user" to the kernel: never a real uid */
        if (number_to_u64(e, &u) != DOTDB_OK || u >= UINT32_MAX)
            return bad_value(x, k, v);
        uids[n++] = (uint32_t)u;
    }
    memcpy(cfg->allowed_uids, uids, sizeof uids);
    cfg->n_allowed_uids = n;
    return DOTDB_OK;
}

static int set_key(dotdb_config *cfg, const struct cfg_key *k, const cJSON *v,
                   const struct apply_ctx *x)
{
    switch (k->type) {
    case CFG_SIZE:
    case CFG_UINT:
        return set_number(cfg, k, v, x);
    case CFG_BOOL:
        return set_bool(cfg, k, v, x);
    case CFG_ENUM:
        return set_enum(cfg, k, v, x);
    case CFG_STRING:
        return set_string(cfg, k, v, x);
    case CFG_UIDS:
        return set_uids(cfg, k, v, x);
    }
    assert(!"unknown key type");
    return DOTDB_ECONFIG;
}

/* ---- applying a source ------------------------------------------------------ */

static int apply_section(dotdb_config *cfg, const cJSON *sec, const struct apply_ctx *x)
{
    if (!cJSON_IsObject(sec)) {
        char shown[VALUE_SHOWN_MAX + 8];
        value_text(sec, shown, sizeof shown);
        msg_set(x->err, x->errlen, "%s: invalid value %s in %s (expected an object of keys)",
                sec->string, shown, x->origin);
        return DOTDB_ECONFIG;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, sec) {
        char name[128];
        int w = snprintf(name, sizeof name, "%s.%s", sec->string, item->string);
        const struct cfg_key *k = w > 0 && (size_t)w < sizeof name ? key_find(name) : NULL;
        if (k == NULL) {
            warn_unknown(x, name);
            continue;
        }
        int rc = set_key(cfg, k, item, x);
        if (rc != DOTDB_OK)
            return rc;
    }
    return DOTDB_OK;
}

static int apply_object(dotdb_config *cfg, const cJSON *root, const struct apply_ctx *x)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        const struct cfg_key *k = key_find(item->string);
        int rc = DOTDB_OK;
        if (k != NULL)
            rc = set_key(cfg, k, item, x);
        else if (is_section(item->string))
            rc = apply_section(cfg, item, x);
        else
            warn_unknown(x, item->string);
        if (rc != DOTDB_OK)
            return rc;
    }
    return DOTDB_OK;
}

/* Rules between keys, checked once a source is fully applied so that the
 * order of keys in a file does not matter. */
static int check_cross(const dotdb_config *cfg, const struct apply_ctx *x)
{
    if (cfg->buffer_pool_size > cfg->max_size) {
        char pool[32], max[32];
        size_text(cfg->buffer_pool_size, pool, sizeof pool);
        size_text(cfg->max_size, max, sizeof max);
        msg_set(x->err, x->errlen,
                "memory.buffer_pool_size: %s is larger than memory.max_size (%s) after %s",
                pool, max, x->origin);
        return DOTDB_ECONFIG;
    }
    return DOTDB_OK;
}

static void line_col(const char *text, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int json_error(const struct apply_ctx *x, const char *what, const char *text,
                      size_t len, const char *at)
{
    unsigned line, col;
    size_t off = at != NULL && at >= text && at <= text + len ? (size_t)(at - text) : 0;
    line_col(text, off, &line, &col);
    msg_set(x->err, x->errlen, "%s in %s at line %u, column %u", what, x->origin, line, col);
    return DOTDB_EJSON;
}

static int parse_root(const char *text, size_t len, const struct apply_ctx *x, cJSON **out)
{
    *out = NULL;
    if (text == NULL || len == 0) {
        msg_set(x->err, x->errlen, "empty configuration in %s (expected a JSON object)",
                x->origin);
        return DOTDB_EJSON;
    }
    /* The parse-end pointer, not cJSON_GetErrorPtr (see the file comment). */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root == NULL)
        return json_error(x, "malformed JSON", text, len, end);
    const char *p = end;
    while (p < text + len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    int rc = DOTDB_OK;
    if (p < text + len)
        rc = json_error(x, "unexpected text after the JSON value", text, len, p);
    else if (!cJSON_IsObject(root)) {
        msg_set(x->err, x->errlen, "the configuration in %s is not a JSON object", x->origin);
        rc = DOTDB_EJSON;
    }
    if (rc != DOTDB_OK)
        cJSON_Delete(root);
    else
        *out = root;
    return rc;
}

int config_apply_json(dotdb_config *cfg, const char *text, size_t len, const char *origin,
                      char *err, size_t errlen, char *warn, size_t warnlen)
{
    struct apply_ctx x = {origin != NULL ? origin : "(configuration)", err, errlen, warn,
                          warnlen};
    cJSON *root = NULL;
    dotdb_config *tmp = NULL;
    msg_set(err, errlen, "%s", "");
    int rc = parse_root(text, len, &x, &root);
    if (rc != DOTDB_OK)
        goto out;
    /* On the heap: dotdb_config is over 8 KB of paths. */
    tmp = malloc(sizeof *tmp);
    if (tmp == NULL) {
        msg_set(err, errlen, "out of memory applying %s", x.origin);
        rc = DOTDB_ENOMEM;
        goto out;
    }
    *tmp = *cfg;
    rc = apply_object(tmp, root, &x);
    if (rc == DOTDB_OK)
        rc = check_cross(tmp, &x);
    if (rc == DOTDB_OK)
        *cfg = *tmp;
out:
    free(tmp);
    cJSON_Delete(root);
    return rc;
}

/* ---- files -------------------------------------------------------------------- */

static int os_error(char *err, size_t errlen, const char *what, const char *path, int e)
{
    char buf[128];
    msg_set(err, errlen, "cannot %s configuration file %s: %s", what, path,
            strerror_r(e, buf, sizeof buf));
    return DOTDB_EOS;
}

/* Read up to n bytes (fewer at end of file) into buf; 0 or an errno value. */
static int read_all(int fd, char *buf, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = read(fd, buf + *got, n - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            break; /* shrank under us: parse what is there */
        *got += (size_t)r;
    }
    return 0;
}

/* The whole file in a new NUL-terminated buffer (*text_out, *len_out). */
static int read_file(const char *path, char **text_out, size_t *len_out, char *err,
                     size_t errlen)
{
    *text_out = NULL;
    *len_out = 0;
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    int rc = DOTDB_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return os_error(err, errlen, "open", path, errno);
    if (fstat(fd, &st) != 0) {
        rc = os_error(err, errlen, "stat", path, errno);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX) {
        msg_set(err, errlen, "configuration file %s is not a regular file of at most %u bytes",
                path, CONFIG_FILE_MAX);
        rc = DOTDB_ECONFIG;
        goto out;
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        rc = DOTDB_ENOMEM;
        goto out;
    }
    int e = read_all(fd, text, (size_t)st.st_size, &len);
    if (e != 0) {
        rc = os_error(err, errlen, "read", path, e);
        goto out;
    }
    text[len] = '\0';
    *text_out = text;
    *len_out = len;
    text = NULL;
out:
    free(text);
    close(fd); /* read-only: nothing to lose if close reports an error */
    return rc;
}

int config_apply_file(dotdb_config *cfg, const char *path, char *err, size_t errlen,
                      char *warn, size_t warnlen)
{
    char *text;
    size_t len;
    msg_set(err, errlen, "%s", "");
    int rc = read_file(path, &text, &len, err, errlen);
    if (rc != DOTDB_OK)
        return rc;
    rc = config_apply_json(cfg, text, len, path, err, errlen, warn, warnlen);
    free(text);
    return rc;
}

/* ---- defaults, output, help ------------------------------------------------- */

void config_defaults(dotdb_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct cfg_key *k = &config_keys[i];
        switch (k->type) {
        case CFG_SIZE:
        case CFG_UINT:
            *u64_field(cfg, k) = k->def;
            break;
        case CFG_BOOL:
        case CFG_ENUM:
            *int_field(cfg, k) = (int)k->def;
            break;
        case CFG_STRING: /* all string defaults are "" */
        case CFG_UIDS:   /* the default list is empty */
            break;
        }
    }
}

static cJSON *value_json(const dotdb_config *cfg, const struct cfg_key *k)
{
    switch (k->type) {
    case CFG_SIZE:
    case CFG_UINT: /* every bound is below 2^53: exact as a JSON number */
        return cJSON_CreateNumber((double)*u64_field_c(cfg, k));
    case CFG_BOOL:
        return cJSON_CreateBool(*int_field_c(cfg, k) != 0);
    case CFG_ENUM: {
        int v = *int_field_c(cfg, k), n = 0;
        while (k->choices[n] != NULL)
            n++;
        return v >= 0 && v < n ? cJSON_CreateString(k->choices[v]) : cJSON_CreateNumber(v);
    }
    case CFG_STRING: {
        char s[sizeof cfg->data_directory + 1];
        const char *f = str_field_c(cfg, k);
        size_t n = strnlen(f, k->size);
        assert(n < sizeof s);
        memcpy(s, f, n);
        s[n] = '\0';
        return cJSON_CreateString(s);
    }
    case CFG_UIDS: {
        cJSON *a = cJSON_CreateArray();
        int n = cfg->n_allowed_uids < 0 ? 0 : cfg->n_allowed_uids;
        for (int i = 0; a != NULL && i < n && i < CONFIG_MAX_UIDS; i++) {
            if (!cJSON_AddItemToArray(a, cJSON_CreateNumber(cfg->allowed_uids[i]))) {
                cJSON_Delete(a);
                a = NULL;
            }
        }
        return a;
    }
    }
    return NULL;
}

/* The section object for key k in root, created on first use. */
static cJSON *section_of(cJSON *root, const struct cfg_key *k)
{
    char sec[32];
    const char *dot = strchr(k->name, '.');
    assert(dot != NULL && (size_t)(dot - k->name) < sizeof sec);
    memcpy(sec, k->name, (size_t)(dot - k->name));
    sec[dot - k->name] = '\0';
    cJSON *s = cJSON_GetObjectItemCaseSensitive(root, sec);
    return s != NULL ? s : cJSON_AddObjectToObject(root, sec);
}

int config_to_json(const dotdb_config *cfg, char **out)
{
    *out = NULL;
    int rc = DOTDB_ENOMEM;
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        goto out;
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct cfg_key *k = &config_keys[i];
        cJSON *sec = section_of(root, k);
        cJSON *v = sec != NULL ? value_json(cfg, k) : NULL;
        if (v == NULL || !cJSON_AddItemToObject(sec, strchr(k->name, '.') + 1, v)) {
            cJSON_Delete(v);
            goto out;
        }
    }
    *out = cJSON_PrintUnformatted(root);
    if (*out != NULL)
        rc = DOTDB_OK;
out:
    cJSON_Delete(root);
    return rc;
}

static void default_text(const struct cfg_key *k, char *buf, size_t len)
{
    switch (k->type) {
    case CFG_SIZE:
        size_text(k->def, buf, len);
        break;
    case CFG_UINT:
        snprintf(buf, len, "%llu", (unsigned long long)k->def);
        break;
    case CFG_BOOL:
        snprintf(buf, len, "%s", k->def ? "true" : "false");
        break;
    case CFG_ENUM:
        snprintf(buf, len, "\"%s\"", k->choices[k->def]);
        break;
    case CFG_STRING:
        snprintf(buf, len, "\"\"");
        break;
    case CFG_UIDS:
        snprintf(buf, len, "[]");
        break;
    }
}

/* Built once from the table; never changes afterwards, so sharing it
 * between threads after the pthread_once is safe. */
static char help_text[12288];
static pthread_once_t help_once = PTHREAD_ONCE_INIT;

static void help_build(void)
{
    size_t used = 0, cap = sizeof help_text;
    int w = snprintf(help_text, cap,
                     "Configuration keys (JSON: {\"section\": {\"key\": value}} or "
                     "{\"section.key\": value}).\nSizes are bytes or strings with a unit "
                     "B, KB, MB, GB, TB (powers of 1024).\n");
    for (size_t i = 0; w >= 0 && (size_t)w < cap - used && i < N_KEYS; i++) {
        used += (size_t)w;
        char def[48], expected[160];
        default_text(&config_keys[i], def, sizeof def);
        expected_text(&config_keys[i], expected, sizeof expected);
        w = snprintf(help_text + used, cap - used, "\n  %s (default %s)\n      %s\n      %s\n",
                     config_keys[i].name, def, config_keys[i].help, expected);
    }
}

const char *config_help(void)
{
    int rc = pthread_once(&help_once, help_build);
    assert(rc == 0); /* pthread_once fails only for an invalid once control */
    (void)rc;
    return help_text;
}
