/*
 * config.h - the coordinator's configuration: one table, one home.
 *
 * Every key lives in one table in config.c with its type, default, bounds
 * and help text; parsing, validation, `dotdbd --help-config` and `stats`
 * read that table.  Sources, later ones overriding earlier ones:
 * defaults, DIR/system/config.json, the --config FILE.  Files are JSON
 * objects of sections ({"storage": {"sync_mode": "full"}}); a key may also
 * be written flat ({"storage.sync_mode": "full"}).
 *
 * Sizes accept a number of bytes or a string with a unit: "4KB", "64MB",
 * "1GB", "512B", "2TB" (units are powers of 1024; case-insensitive;
 * "KiB"/"MiB"/"GiB"/"TiB" and a bare "K"/"M"/"G"/"T" also accepted; blanks
 * allowed between number and unit).  Negative, fractional, empty,
 * overflowing sizes and unknown units are rejected.  Durations ("*_ms") and
 * counts accept JSON integers only.
 * An unknown key or section adds a warning and is ignored (the call still
 * succeeds); an invalid value fails with DOTDB_ECONFIG and a message naming
 * the key, the value as written and the origin:
 *   storage.sync_mode: invalid value "fast" in /x/config.json (expected
 *   "full", "normal" or "off")
 * After each source the cross-key rule memory.buffer_pool_size <=
 * memory.max_size is checked (DOTDB_ECONFIG naming both).
 * Not thread-safe against other cJSON parses running at the same time
 * (cJSON's global error position): load the configuration from one thread.
 */
#ifndef DOTDB_CONFIG_H
#define DOTDB_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum sync_mode { SYNC_FULL = 0, SYNC_NORMAL = 1, SYNC_OFF = 2 };
enum compression { COMP_NONE = 0, COMP_LZ4 = 1 };

#define CONFIG_MAX_UIDS 32

typedef struct dotdb_config {
    /* storage */
    char data_directory[4096];   /* "" = the --db directory */
    char wal_directory[4096];    /* "" = <data_directory>/wal */
    uint64_t segment_size;       /* WAL and data segment size, default 64MB */
    int compression;             /* enum compression, default lz4 */
    int sync_mode;               /* enum sync_mode, default full */
    uint64_t sync_interval_ms;   /* normal mode: fsync at least this often, default 100 */
    uint64_t checkpoint_wal_size;   /* default 64MB */
    uint64_t checkpoint_wal_percent; /* default 100: and this % of the checkpointed data */
    uint64_t checkpoint_interval_ms; /* default 300000 */
    char socket_path[108];       /* "" = <data_directory>/dotdb.sock */
    /* memory */
    uint64_t buffer_pool_size;   /* initial size of the shared data object, default 64MB */
    uint64_t max_size;           /* ceiling of the shared data object, default 8GB */
    uint64_t cache_size;         /* default 256MB */
    uint64_t max_connections;    /* default 1000 */
    uint64_t worker_threads;     /* default 2 */
    uint64_t max_snapshot_age_ms;   /* 0 = unbounded (default) */
    uint64_t frame_timeout_ms;   /* a started frame or handshake must arrive whole within this, default 10000 */
    /* indexing */
    int auto_index;              /* bool, default true */
    uint64_t index_cache_size;   /* default 128MB */
    uint64_t btree_page_size;    /* default 4KB, power of two 512..64KB */
    uint64_t hash_bucket_count;  /* initial primary hash slots, default 1024, power of two */
    /* limits */
    uint64_t max_document_size;  /* default 16MB */
    uint64_t max_depth;          /* default 100 */
    uint64_t max_fields;         /* members of one object, default 100000 */
    /* security */
    uint32_t allowed_uids[CONFIG_MAX_UIDS];
    int n_allowed_uids;
    char group[64];              /* "" = none; else socket 0660 / dir 0750 for this group */
} dotdb_config;

/* Fill *cfg with the defaults. */
void config_defaults(dotdb_config *cfg);

/*
 * Apply the JSON configuration text (len bytes, need not be NUL-terminated)
 * to *cfg.  `origin` names the source in messages (a file path; NULL:
 * "(configuration)").  On DOTDB_ECONFIG (or DOTDB_EJSON for text that is
 * not a JSON object: malformed, trailing text, or another JSON type; the
 * message gives origin, line and column) err holds the message and *cfg is
 * left unchanged: a source applies all or nothing.  err is set to "" on
 * entry.  Warnings for unknown keys are appended to warn, which must hold a
 * NUL-terminated string on entry (start with ""), so that several sources
 * can share it: one line each, "unknown configuration key \"storage.foo\"
 * in ORIGIN (ignored)\n", truncated to warnlen.  err and warn may be NULL.
 */
int config_apply_json(dotdb_config *cfg, const char *text, size_t len, const char *origin,
                      char *err, size_t errlen, char *warn, size_t warnlen);

/* Read the file at path and apply it (DOTDB_EOS naming the path and errno
 * if it cannot be read; a missing file is an error here: callers check
 * existence for the optional DIR/system/config.json; DOTDB_ECONFIG if it is
 * not a regular file of at most 1 MiB).  Messages name path as the origin. */
int config_apply_file(dotdb_config *cfg, const char *path, char *err, size_t errlen,
                      char *warn, size_t warnlen);

/* Parse a size ("64MB", "4KB", "1GB", "4096") into bytes.  0 or
 * DOTDB_ECONFIG (*out 0).  Bounds are the caller's business. */
int config_parse_size(const char *s, uint64_t *out);

/* The whole effective configuration as a JSON object (sections as in the
 * files; sizes and durations as integers, enums as their names) in a new
 * NUL-terminated string in *out that the caller frees with free().  Feeding
 * it back to config_apply_json reproduces cfg.  DOTDB_ENOMEM (*out NULL). */
int config_to_json(const dotdb_config *cfg, char **out);

/* Help text listing every key, its default, its meaning and what it
 * accepts.  Static, built from the table on the first call (thread-safe,
 * pthread_once); never freed, never changed afterwards. */
const char *config_help(void);

#endif /* DOTDB_CONFIG_H */
