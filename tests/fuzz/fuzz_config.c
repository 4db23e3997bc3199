/*
 * fuzz_config.c - the configuration parser (coordinator/config.c,
 * config_apply_json).
 *
 * Input: the text of a configuration file.  Never crash.  Oracles:
 *   - a failure (DOTDB_ECONFIG / DOTDB_EJSON) leaves the configuration
 *     exactly as it was (a source applies all or nothing) and sets err;
 *   - a success keeps the cross-key rule buffer_pool_size <= max_size;
 *   - config_to_json of the result, applied to the defaults, reproduces
 *     the result field by field (config.h: "Feeding it back to
 *     config_apply_json reproduces cfg") with no warning;
 *   - warnings stay NUL-terminated within their buffer.
 * The text is applied twice, over the defaults and over a configuration
 * with every field changed, so "unchanged on failure" is checked against
 * non-default values too.
 */
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "dotdb.h"
#include "fuzz_util.h"

static int same_config(const dotdb_config *a, const dotdb_config *b)
{
    return strcmp(a->data_directory, b->data_directory) == 0 &&
           strcmp(a->wal_directory, b->wal_directory) == 0 &&
           a->segment_size == b->segment_size && a->compression == b->compression &&
           a->sync_mode == b->sync_mode && a->sync_interval_ms == b->sync_interval_ms &&
           a->checkpoint_wal_size == b->checkpoint_wal_size &&
           a->checkpoint_interval_ms == b->checkpoint_interval_ms &&
           strcmp(a->socket_path, b->socket_path) == 0 &&
           a->buffer_pool_size == b->buffer_pool_size && a->max_size == b->max_size &&
           a->cache_size == b->cache_size && a->max_connections == b->max_connections &&
           a->worker_threads == b->worker_threads &&
           a->max_snapshot_age_ms == b->max_snapshot_age_ms && a->auto_index == b->auto_index &&
           a->index_cache_size == b->index_cache_size &&
           a->btree_page_size == b->btree_page_size &&
           a->hash_bucket_count == b->hash_bucket_count &&
           a->max_document_size == b->max_document_size && a->max_depth == b->max_depth &&
           a->n_allowed_uids == b->n_allowed_uids &&
           memcmp(a->allowed_uids, b->allowed_uids,
                  sizeof a->allowed_uids[0] * (size_t)(a->n_allowed_uids > 0 ? a->n_allowed_uids
                                                                             : 0)) == 0 &&
           strcmp(a->group, b->group) == 0;
}

static void apply_and_check(const dotdb_config *start, const char *text, size_t len)
{
    dotdb_config cfg = *start, again;
    char err[512], warn[300];
    warn[0] = '\0';
    memset(err, 'x', sizeof err);
    int rc = config_apply_json(&cfg, text, len, "fuzz.json", err, sizeof err, warn, sizeof warn);
    FUZZ_CHECK(memchr(warn, 0, sizeof warn) != NULL, "warnings not terminated");
    FUZZ_CHECK(memchr(err, 0, sizeof err) != NULL, "error not terminated");
    if (rc != DOTDB_OK) {
        FUZZ_CHECK(rc == DOTDB_ECONFIG || rc == DOTDB_EJSON || rc == DOTDB_ENOMEM, "rc %d", rc);
        FUZZ_CHECK(err[0] != '\0', "failure without a message");
        FUZZ_CHECK(memcmp(&cfg, start, sizeof cfg) == 0, "a failed source changed the config");
        return;
    }
    FUZZ_CHECK(cfg.buffer_pool_size <= cfg.max_size, "buffer_pool_size > max_size");
    FUZZ_CHECK(cfg.n_allowed_uids >= 0 && cfg.n_allowed_uids <= CONFIG_MAX_UIDS, "uids");
    char *json = NULL;
    FUZZ_CHECK(config_to_json(&cfg, &json) == DOTDB_OK, "config_to_json");
    config_defaults(&again);
    warn[0] = '\0';
    rc = config_apply_json(&again, json, strlen(json), "effective", err, sizeof err, warn,
                           sizeof warn);
    FUZZ_CHECK(rc == DOTDB_OK, "the effective configuration does not apply: %s\n%s", err, json);
    FUZZ_CHECK(warn[0] == '\0', "the effective configuration warns: %s", warn);
    FUZZ_CHECK(same_config(&cfg, &again), "config_to_json does not reproduce the config: %s",
               json);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dotdb_config base;
    config_defaults(&base);
    apply_and_check(&base, (const char *)data, size);

    dotdb_config other;
    config_defaults(&other);
    strcpy(other.data_directory, "/srv/db");
    strcpy(other.wal_directory, "/srv/wal");
    strcpy(other.socket_path, "/run/dotdb.sock");
    strcpy(other.group, "dotdb");
    other.segment_size = 2u << 20;
    other.compression = COMP_NONE;
    other.sync_mode = SYNC_NORMAL;
    other.sync_interval_ms = 7;
    other.checkpoint_wal_size = 3u << 20;
    other.checkpoint_interval_ms = 1000;
    other.buffer_pool_size = 4u << 20;
    other.max_size = 8u << 20;
    other.cache_size = 1;
    other.max_connections = 3;
    other.worker_threads = 1;
    other.max_snapshot_age_ms = 5;
    other.auto_index = 0;
    other.index_cache_size = 9;
    other.btree_page_size = 1024;
    other.hash_bucket_count = 64;
    other.max_document_size = 4096;
    other.max_depth = 10;
    other.allowed_uids[0] = 1000;
    other.n_allowed_uids = 1;
    apply_and_check(&other, (const char *)data, size);
    return 0;
}
