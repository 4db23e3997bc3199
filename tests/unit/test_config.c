/*
 * test_config.c - unit tests of coordinator/config.c: defaults, the size
 * parser, nested and flat keys, validation messages, unknown keys, the
 * all-or-nothing rule, files, config_to_json round trips and the help text.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dotdb.h"

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* Apply a NUL-terminated JSON text; err and warn land in the given buffers. */
static int apply(dotdb_config *cfg, const char *json, char *err, size_t errlen, char *warn,
                 size_t warnlen)
{
    return config_apply_json(cfg, json, strlen(json), "/x/config.json", err, errlen, warn,
                             warnlen);
}

/* Apply text that must be rejected with code `want`; returns the message. */
static void expect_error(const char *json, int want, const char *must_contain)
{
    dotdb_config cfg, before;
    char err[512], warn[256] = "";
    config_defaults(&cfg);
    before = cfg;
    int rc = apply(&cfg, json, err, sizeof err, warn, sizeof warn);
    cr_assert_eq(rc, want, "%s: rc %d (%s), want %d", json, rc, err, want);
    cr_assert(strstr(err, must_contain) != NULL, "%s: message \"%s\" lacks \"%s\"", json, err,
              must_contain);
    cr_assert(memcmp(&cfg, &before, sizeof cfg) == 0, "%s: failed apply changed cfg", json);
}

Test(config, defaults_match_the_documentation)
{
    dotdb_config c;
    config_defaults(&c);
    cr_assert_str_eq(c.data_directory, "");
    cr_assert_str_eq(c.wal_directory, "");
    cr_assert_eq(c.segment_size, 64 * MiB);
    cr_assert_eq(c.compression, COMP_LZ4);
    cr_assert_eq(c.sync_mode, SYNC_FULL);
    cr_assert_eq(c.sync_interval_ms, 100);
    cr_assert_eq(c.checkpoint_wal_size, 64 * MiB);
    cr_assert_eq(c.checkpoint_wal_percent, 100);
    cr_assert_eq(c.checkpoint_interval_ms, 300000);
    cr_assert_str_eq(c.socket_path, "");
    cr_assert_eq(c.buffer_pool_size, 64 * MiB);
    cr_assert_eq(c.max_size, 8 * GiB);
    cr_assert_eq(c.cache_size, 256 * MiB);
    cr_assert_eq(c.max_connections, 1000);
    cr_assert_eq(c.worker_threads, 2);
    cr_assert_eq(c.max_snapshot_age_ms, 0);
    cr_assert_eq(c.frame_timeout_ms, 10000);
    cr_assert_eq(c.auto_index, 1);
    cr_assert_eq(c.index_cache_size, 128 * MiB);
    cr_assert_eq(c.btree_page_size, 4096);
    cr_assert_eq(c.hash_bucket_count, 1024);
    cr_assert_eq(c.max_document_size, 16 * MiB);
    cr_assert_eq(c.max_depth, 100);
    cr_assert_eq(c.max_fields, 100000);
    cr_assert_eq(c.n_allowed_uids, 0);
    cr_assert_str_eq(c.group, "");
}

Test(config, parse_size_accepts_units)
{
    static const struct { const char *s; uint64_t v; } ok[] = {
        {"0", 0},
        {"4096", 4096},
        {"512B", 512},
        {"4KB", 4096},
        {"4kb", 4096},
        {"4 KB", 4096},
        {"64MB", 64 * MiB},
        {"64MiB", 64 * MiB},
        {"64mib", 64 * MiB},
        {"64M", 64 * MiB},
        {"1GB", GiB},
        {"1GiB", GiB},
        {"2TB", UINT64_C(2) << 40},
        {"16777215TB", UINT64_C(16777215) << 40},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 1;
        cr_assert_eq(config_parse_size(ok[i].s, &v), DOTDB_OK, "%s", ok[i].s);
        cr_assert_eq(v, ok[i].v, "%s -> %llu", ok[i].s, (unsigned long long)v);
    }
}

Test(config, parse_size_rejects_garbage)
{
    static const char *const bad[] = {
        "", "-1", "-4KB", "1.5GB", "0.5", "KB", " 4KB", "4KB ", "4 ", "4XB", "4PB",
        "4 K B", "0x10", "+4", "16777216TB", "18446744073709551616", "99999999999999999999KB",
        "4KBB", "4iB",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        cr_assert_eq(config_parse_size(bad[i], &v), DOTDB_ECONFIG, "\"%s\" accepted", bad[i]);
        cr_assert_eq(v, 0, "\"%s\": out-parameter not cleared", bad[i]);
    }
}

Test(config, nested_and_flat_keys_both_apply)
{
    dotdb_config c;
    char err[256], warn[256] = "";
    config_defaults(&c);
    int rc = apply(&c,
                   "{\"storage\": {\"sync_mode\": \"normal\", \"segment_size\": \"128MB\","
                   " \"compression\": \"none\", \"wal_directory\": \"/w\"},"
                   " \"memory.worker_threads\": 8, \"indexing\": {\"auto_index\": false,"
                   " \"btree_page_size\": \"8KB\", \"hash_bucket_count\": 65536},"
                   " \"limits.max_document_size\": 1048576, \"limits\": {\"max_depth\": 7},"
                   " \"security\": {\"allowed_uids\": [0, 1000, 4294967294], \"group\": \"db\"}}",
                   err, sizeof err, warn, sizeof warn);
    cr_assert_eq(rc, DOTDB_OK, "%s", err);
    cr_assert_str_eq(err, "");
    cr_assert_str_eq(warn, "");
    cr_assert_eq(c.sync_mode, SYNC_NORMAL);
    cr_assert_eq(c.segment_size, 128 * MiB);
    cr_assert_eq(c.compression, COMP_NONE);
    cr_assert_str_eq(c.wal_directory, "/w");
    cr_assert_eq(c.worker_threads, 8);
    cr_assert_eq(c.auto_index, 0);
    cr_assert_eq(c.btree_page_size, 8192);
    cr_assert_eq(c.hash_bucket_count, 65536);
    cr_assert_eq(c.max_document_size, MiB);
    cr_assert_eq(c.max_depth, 7);
    cr_assert_eq(c.n_allowed_uids, 3);
    cr_assert_eq(c.allowed_uids[1], 1000);
    cr_assert_eq(c.allowed_uids[2], 4294967294u);
    cr_assert_str_eq(c.group, "db");
}

Test(config, later_sources_override_earlier_ones)
{
    dotdb_config c;
    char err[256], warn[256] = "";
    config_defaults(&c);
    cr_assert_eq(apply(&c, "{\"storage\": {\"sync_mode\": \"off\", \"sync_interval_ms\": 5}}",
                       err, sizeof err, warn, sizeof warn),
                 DOTDB_OK);
    cr_assert_eq(apply(&c, "{\"storage.sync_mode\": \"FULL\"}", err, sizeof err, warn,
                       sizeof warn),
                 DOTDB_OK);
    cr_assert_eq(c.sync_mode, SYNC_FULL);
    cr_assert_eq(c.sync_interval_ms, 5);
    /* a later list of uids replaces the earlier one */
    cr_assert_eq(apply(&c, "{\"security.allowed_uids\": [1, 2, 3]}", err, sizeof err, NULL, 0),
                 DOTDB_OK);
    cr_assert_eq(apply(&c, "{\"security.allowed_uids\": [9]}", err, sizeof err, NULL, 0),
                 DOTDB_OK);
    cr_assert_eq(c.n_allowed_uids, 1);
    cr_assert_eq(c.allowed_uids[0], 9);
}

Test(config, invalid_enum_names_key_value_and_origin)
{
    dotdb_config c;
    char err[256];
    config_defaults(&c);
    int rc = apply(&c, "{\"storage\": {\"sync_mode\": \"fast\"}}", err, sizeof err, NULL, 0);
    cr_assert_eq(rc, DOTDB_ECONFIG);
    cr_assert_str_eq(err, "storage.sync_mode: invalid value \"fast\" in /x/config.json "
                          "(expected \"full\", \"normal\" or \"off\")");
}

Test(config, wrong_types_are_rejected)
{
    expect_error("{\"storage.sync_mode\": 1}", DOTDB_ECONFIG, "storage.sync_mode: invalid value 1");
    expect_error("{\"memory.worker_threads\": \"8\"}", DOTDB_ECONFIG,
                 "memory.worker_threads: invalid value \"8\" in /x/config.json");
    expect_error("{\"indexing.auto_index\": 1}", DOTDB_ECONFIG, "indexing.auto_index");
    expect_error("{\"indexing.auto_index\": \"true\"}", DOTDB_ECONFIG, "true or false");
    expect_error("{\"storage.segment_size\": true}", DOTDB_ECONFIG, "storage.segment_size");
    expect_error("{\"storage.segment_size\": null}", DOTDB_ECONFIG, "invalid value null");
    expect_error("{\"storage.data_directory\": 5}", DOTDB_ECONFIG, "storage.data_directory");
    expect_error("{\"security.group\": [\"a\"]}", DOTDB_ECONFIG, "security.group");
    expect_error("{\"storage\": 5}", DOTDB_ECONFIG, "storage: invalid value 5");
    expect_error("{\"storage\": \"full\"}", DOTDB_ECONFIG, "expected an object");
    expect_error("{\"security.allowed_uids\": 1000}", DOTDB_ECONFIG, "security.allowed_uids");
    expect_error("{\"security.allowed_uids\": [\"root\"]}", DOTDB_ECONFIG, "[\"root\"]");
    expect_error("{\"security.allowed_uids\": [-1]}", DOTDB_ECONFIG, "security.allowed_uids");
    expect_error("{\"security.allowed_uids\": [1.5]}", DOTDB_ECONFIG, "security.allowed_uids");
    expect_error("{\"security.allowed_uids\": [4294967295]}", DOTDB_ECONFIG, "allowed_uids");
}

Test(config, out_of_range_values_are_rejected)
{
    expect_error("{\"storage.segment_size\": \"64KB\"}", DOTDB_ECONFIG,
                 "storage.segment_size: invalid value \"64KB\" in /x/config.json (expected a "
                 "size from 1MB to 16GB");
    expect_error("{\"storage.segment_size\": \"17GB\"}", DOTDB_ECONFIG, "storage.segment_size");
    expect_error("{\"storage.segment_size\": -1}", DOTDB_ECONFIG, "invalid value -1");
    expect_error("{\"storage.segment_size\": 1048576.5}", DOTDB_ECONFIG, "1048576.5");
    expect_error("{\"storage.segment_size\": 1e300}", DOTDB_ECONFIG, "storage.segment_size");
    expect_error("{\"storage.segment_size\": \"\"}", DOTDB_ECONFIG, "invalid value \"\"");
    expect_error("{\"storage.segment_size\": \"64XB\"}", DOTDB_ECONFIG, "\"64XB\"");
    expect_error("{\"storage.segment_size\": \"-64MB\"}", DOTDB_ECONFIG, "\"-64MB\"");
    expect_error("{\"storage.segment_size\": \"99999999999999999999MB\"}", DOTDB_ECONFIG,
                 "storage.segment_size");
    expect_error("{\"memory.max_size\": \"2TB\"}", DOTDB_ECONFIG, "memory.max_size");
    expect_error("{\"memory.max_connections\": 0}", DOTDB_ECONFIG,
                 "memory.max_connections: invalid value 0 in /x/config.json (expected an "
                 "integer from 1 to 100000)");
    expect_error("{\"memory.max_connections\": 100001}", DOTDB_ECONFIG, "100001");
    expect_error("{\"memory.worker_threads\": 257}", DOTDB_ECONFIG, "from 1 to 256");
    expect_error("{\"memory.worker_threads\": 2.5}", DOTDB_ECONFIG, "2.5");
    expect_error("{\"indexing.btree_page_size\": 256}", DOTDB_ECONFIG, "btree_page_size");
    expect_error("{\"indexing.btree_page_size\": \"128KB\"}", DOTDB_ECONFIG, "btree_page_size");
    expect_error("{\"indexing.btree_page_size\": 3000}", DOTDB_ECONFIG, "power-of-two");
    expect_error("{\"indexing.hash_bucket_count\": 1000}", DOTDB_ECONFIG, "hash_bucket_count");
    expect_error("{\"indexing.hash_bucket_count\": 8}", DOTDB_ECONFIG, "hash_bucket_count");
    expect_error("{\"indexing.hash_bucket_count\": 2147483648}", DOTDB_ECONFIG, "hash_bucket");
    expect_error("{\"limits.max_document_size\": \"512B\"}", DOTDB_ECONFIG, "from 1KB to 256MB");
    expect_error("{\"limits.max_document_size\": \"257MB\"}", DOTDB_ECONFIG, "max_document_size");
    expect_error("{\"limits.max_depth\": 0}", DOTDB_ECONFIG, "limits.max_depth");
    expect_error("{\"limits.max_depth\": 1001}", DOTDB_ECONFIG, "limits.max_depth");
}

Test(config, boundary_values_are_accepted)
{
    dotdb_config c;
    char err[256];
    config_defaults(&c);
    int rc = apply(&c,
                   "{\"storage.segment_size\": \"1MB\", \"indexing.btree_page_size\": 512,"
                   " \"indexing.hash_bucket_count\": 1073741824, \"limits.max_depth\": 1000,"
                   " \"limits.max_document_size\": \"256MB\", \"memory.max_size\": \"1TB\","
                   " \"memory.buffer_pool_size\": \"1TB\", \"memory.worker_threads\": 256}",
                   err, sizeof err, NULL, 0);
    cr_assert_eq(rc, DOTDB_OK, "%s", err);
    cr_assert_eq(c.segment_size, MiB);
    cr_assert_eq(c.btree_page_size, 512);
    cr_assert_eq(c.hash_bucket_count, UINT64_C(1) << 30);
    cr_assert_eq(c.buffer_pool_size, UINT64_C(1) << 40);
}

Test(config, strings_longer_than_their_field_are_rejected)
{
    char json[512];
    char path[201];
    memset(path, 'a', 200);
    path[200] = '\0';
    snprintf(json, sizeof json, "{\"storage.socket_path\": \"/%s\"}", path);
    expect_error(json, DOTDB_ECONFIG, "storage.socket_path: invalid value \"/aaaa");
    expect_error(json, DOTDB_ECONFIG, "...");
    expect_error(json, DOTDB_ECONFIG, "at most 107 bytes");
}

Test(config, buffer_pool_must_fit_in_max_size)
{
    expect_error("{\"memory\": {\"buffer_pool_size\": \"16GB\"}}", DOTDB_ECONFIG,
                 "memory.buffer_pool_size: 16GB is larger than memory.max_size (8GB)");
    expect_error("{\"memory.max_size\": \"32MB\"}", DOTDB_ECONFIG, "memory.max_size (32MB)");
    /* the order of the keys inside a source does not matter */
    dotdb_config c;
    char err[256];
    config_defaults(&c);
    int rc = apply(&c, "{\"memory.buffer_pool_size\": \"16GB\", \"memory.max_size\": \"32GB\"}",
                   err, sizeof err, NULL, 0);
    cr_assert_eq(rc, DOTDB_OK, "%s", err);
    cr_assert_eq(c.buffer_pool_size, 16 * GiB);
}

Test(config, unknown_keys_warn_and_succeed)
{
    dotdb_config c;
    char err[256], warn[512] = "";
    config_defaults(&c);
    int rc = apply(&c,
                   "{\"storage\": {\"foo\": 1, \"sync_mode\": \"off\"}, \"storage.bar\": 2,"
                   " \"cluster\": {\"nodes\": 3}, \"verbose\": true}",
                   err, sizeof err, warn, sizeof warn);
    cr_assert_eq(rc, DOTDB_OK, "%s", err);
    cr_assert_eq(c.sync_mode, SYNC_OFF);
    cr_assert_str_eq(warn,
                     "unknown configuration key \"storage.foo\" in /x/config.json (ignored)\n"
                     "unknown configuration key \"storage.bar\" in /x/config.json (ignored)\n"
                     "unknown configuration key \"cluster\" in /x/config.json (ignored)\n"
                     "unknown configuration key \"verbose\" in /x/config.json (ignored)\n");
    /* a second source appends */
    rc = apply(&c, "{\"x.y\": 1}", err, sizeof err, warn, sizeof warn);
    cr_assert_eq(rc, DOTDB_OK);
    cr_assert(strstr(warn, "\"verbose\"") != NULL);
    cr_assert(strstr(warn, "\"x.y\"") != NULL);
}

Test(config, warnings_are_truncated_to_the_buffer)
{
    dotdb_config c;
    char err[256], warn[40];
    memset(warn, 'z', sizeof warn);
    warn[0] = '\0';
    config_defaults(&c);
    int rc = apply(&c, "{\"aaaaaaaaaaaa\": 1, \"bbbbbbbbbbbbbbbb\": 2, \"ccc\": 3}", err,
                   sizeof err, warn, sizeof warn);
    cr_assert_eq(rc, DOTDB_OK);
    cr_assert_eq(strlen(warn), sizeof warn - 1);
    cr_assert(strncmp(warn, "unknown configuration key \"aaaa", 31) == 0);
}

Test(config, malformed_json_names_the_origin)
{
    expect_error("{\"storage\": {\"sync_mode\": }}", DOTDB_EJSON,
                 "malformed JSON in /x/config.json at line 1");
    expect_error("{\n  \"storage\": {\n    \"sync_mode\": \"full\",\n  }\n}", DOTDB_EJSON,
                 "at line 4");
    expect_error("[1, 2]", DOTDB_EJSON, "/x/config.json is not a JSON object");
    expect_error("\"storage\"", DOTDB_EJSON, "not a JSON object");
    expect_error("{} {}", DOTDB_EJSON, "unexpected text after the JSON value in /x/config.json");
    expect_error("", DOTDB_EJSON, "empty configuration in /x/config.json");
    expect_error("   ", DOTDB_EJSON, "/x/config.json");
}

Test(config, text_is_bounded_by_len)
{
    /* the text after len must not be read: here it would be invalid */
    const char *text = "{\"limits.max_depth\": 9}GARBAGE";
    dotdb_config c;
    char err[256];
    config_defaults(&c);
    int rc = config_apply_json(&c, text, strlen(text) - 7, "t", err, sizeof err, NULL, 0);
    cr_assert_eq(rc, DOTDB_OK, "%s", err);
    cr_assert_eq(c.max_depth, 9);
}

Test(config, a_failed_source_changes_nothing)
{
    dotdb_config c, before;
    char err[256];
    config_defaults(&c);
    before = c;
    int rc = apply(&c, "{\"storage.sync_mode\": \"off\", \"limits.max_depth\": 0}", err,
                   sizeof err, NULL, 0);
    cr_assert_eq(rc, DOTDB_ECONFIG);
    cr_assert_eq(c.sync_mode, SYNC_FULL);
    cr_assert(memcmp(&c, &before, sizeof c) == 0);
}

Test(config, to_json_gives_byte_integers_and_round_trips)
{
    dotdb_config a, b;
    char err[256], warn[256] = "";
    char *json = NULL;
    config_defaults(&a);
    cr_assert_eq(config_to_json(&a, &json), DOTDB_OK);
    cr_assert(strstr(json, "\"segment_size\":67108864") != NULL, "%s", json);
    cr_assert(strstr(json, "\"max_size\":8589934592") != NULL, "%s", json);
    cr_assert(strstr(json, "\"sync_mode\":\"full\"") != NULL, "%s", json);
    cr_assert(strstr(json, "\"compression\":\"lz4\"") != NULL, "%s", json);
    cr_assert(strstr(json, "\"auto_index\":true") != NULL, "%s", json);
    cr_assert(strstr(json, "\"allowed_uids\":[]") != NULL, "%s", json);
    cr_assert(strncmp(json, "{\"storage\":{", 12) == 0, "%s", json);
    /* the defaults validate: every default is inside its own bounds */
    config_defaults(&b);
    cr_assert_eq(apply(&b, json, err, sizeof err, warn, sizeof warn), DOTDB_OK, "%s", err);
    cr_assert_str_eq(warn, "");
    cr_assert(memcmp(&a, &b, sizeof a) == 0);
    free(json);

    cr_assert_eq(apply(&a,
                       "{\"storage\": {\"data_directory\": \"/d\", \"sync_mode\": \"normal\","
                       " \"socket_path\": \"/tmp/s \\\"q\\\"\"}, \"memory.max_size\": \"1TB\","
                       " \"security.allowed_uids\": [5, 6], \"indexing.auto_index\": false}",
                       err, sizeof err, NULL, 0),
                 DOTDB_OK, "%s", err);
    cr_assert_eq(config_to_json(&a, &json), DOTDB_OK);
    cr_assert(strstr(json, "\"max_size\":1099511627776") != NULL, "%s", json);
    config_defaults(&b);
    cr_assert_eq(apply(&b, json, err, sizeof err, warn, sizeof warn), DOTDB_OK, "%s", err);
    cr_assert(memcmp(&a, &b, sizeof a) == 0, "%s", json);
    free(json);
}

Test(config, help_lists_every_key_with_its_default)
{
    static const char *const keys[] = {
        "storage.data_directory", "storage.wal_directory", "storage.segment_size",
        "storage.compression", "storage.sync_mode", "storage.sync_interval_ms",
        "storage.checkpoint_wal_size", "storage.checkpoint_wal_percent",
        "storage.checkpoint_interval_ms", "storage.socket_path",
        "memory.buffer_pool_size", "memory.max_size", "memory.cache_size",
        "memory.max_connections", "memory.worker_threads", "memory.max_snapshot_age_ms",
        "memory.frame_timeout_ms", "limits.max_fields",
        "indexing.auto_index", "indexing.index_cache_size", "indexing.btree_page_size",
        "indexing.hash_bucket_count", "limits.max_document_size", "limits.max_depth",
        "security.allowed_uids", "security.group",
    };
    const char *help = config_help();
    cr_assert_not_null(help);
    cr_assert_eq(help, config_help());
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert(strstr(help, keys[i]) != NULL, "help lacks %s", keys[i]);
    cr_assert(strstr(help, "storage.segment_size (default 64MB)") != NULL, "%s", help);
    cr_assert(strstr(help, "storage.sync_mode (default \"full\")") != NULL, "%s", help);
    cr_assert(strstr(help, "memory.max_size (default 8GB)") != NULL, "%s", help);
    cr_assert(strstr(help, "indexing.hash_bucket_count (default 1024)") != NULL, "%s", help);
    /* not truncated: the last key's help text is complete */
    cr_assert(strstr(help, "user ids\n") != NULL || strstr(help, "empty: none\n") != NULL);
    size_t n = strlen(help);
    cr_assert(n > 0 && help[n - 1] == '\n');
    cr_assert(strstr(help, "security.group (default \"\")") != NULL, "%s", help);
}

Test(config, files_are_read_and_missing_files_fail)
{
    char dir[] = "/tmp/dotdb-config-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256], missing[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(missing, sizeof missing, "%s/nope.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"storage\": {\"sync_mode\": \"normal\", \"typo\": 1}}\n", f);
    cr_assert_eq(fclose(f), 0);

    dotdb_config c;
    char err[512], warn[512] = "";
    config_defaults(&c);
    cr_assert_eq(config_apply_file(&c, path, err, sizeof err, warn, sizeof warn), DOTDB_OK,
                 "%s", err);
    cr_assert_eq(c.sync_mode, SYNC_NORMAL);
    cr_assert(strstr(warn, path) != NULL, "%s", warn);

    cr_assert_eq(config_apply_file(&c, missing, err, sizeof err, NULL, 0), DOTDB_EOS);
    cr_assert(strstr(err, missing) != NULL, "%s", err);
    cr_assert(strstr(err, "No such file") != NULL, "%s", err);
    cr_assert_eq(config_apply_file(&c, dir, err, sizeof err, NULL, 0), DOTDB_ECONFIG, "%s", err);

    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"storage\": {\"sync_mode\": \"fast\"}}", f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(config_apply_file(&c, path, err, sizeof err, NULL, 0), DOTDB_ECONFIG);
    char want[512];
    snprintf(want, sizeof want,
             "storage.sync_mode: invalid value \"fast\" in %s (expected \"full\", \"normal\" "
             "or \"off\")",
             path);
    cr_assert_str_eq(err, want);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rmdir(dir), 0);
}
