/*
 * manifest.c - reading and atomically replacing DIR/system/manifest.json
 * (format in manifest.h).  cJSON parses it: the manifest is small (one
 * entry per collection and segment) and read once at start.
 */
#include "manifest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "dotdb.h"
#include "segment.h"
#include "wire.h"

#define MANIFEST_MAX_BYTES (64u << 20)

static void mix(XXH64_state_t *st, uint64_t v)
{
    XXH64_update(st, &v, sizeof v);
}

/* xxh64 over every value of the manifest in a fixed order. */
static uint64_t mf_checksum(const manifest *m)
{
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    mix(&st, MANIFEST_FORMAT);
    mix(&st, m->checkpoint_lsn);
    mix(&st, (uint64_t)m->created_ms);
    mix(&st, m->ncolls);
    for (size_t i = 0; i < m->ncolls; i++) {
        const mf_coll *c = &m->colls[i];
        XXH64_update(&st, c->name, strlen(c->name) + 1);
        mix(&st, c->create_lsn);
        mix(&st, c->modified_lsn);
        mix(&st, c->docs);
        mix(&st, c->bytes);
        mix(&st, c->nsegs);
        for (size_t j = 0; j < c->nsegs; j++) {
            const mf_segment *s = &c->segs[j];
            mix(&st, s->segno);
            mix(&st, s->docs);
            mix(&st, s->blocks);
            mix(&st, s->size);
            mix(&st, s->raw_bytes);
            mix(&st, s->ckpt_lsn);
        }
    }
    return XXH64_digest(&st);
}

void manifest_free(manifest *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->ncolls; i++)
        free(m->colls[i].segs);
    free(m->colls);
    memset(m, 0, sizeof *m);
}

int manifest_add(manifest *m, const mf_coll *c)
{
    mf_coll *p = realloc(m->colls, (m->ncolls + 1) * sizeof *p);
    if (p == NULL)
        return DOTDB_ENOMEM;
    m->colls = p;
    mf_coll *d = &m->colls[m->ncolls];
    *d = *c;
    d->segs = NULL;
    if (c->nsegs) {
        d->segs = malloc(c->nsegs * sizeof *d->segs);
        if (d->segs == NULL)
            return DOTDB_ENOMEM;
        memcpy(d->segs, c->segs, c->nsegs * sizeof *d->segs);
    }
    m->ncolls++;
    return DOTDB_OK;
}

int manifest_copy(const manifest *src, manifest *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->checkpoint_lsn = src->checkpoint_lsn;
    dst->created_ms = src->created_ms;
    for (size_t i = 0; i < src->ncolls; i++) {
        int rc = manifest_add(dst, &src->colls[i]);
        if (rc != DOTDB_OK) {
            manifest_free(dst);
            return rc;
        }
    }
    return DOTDB_OK;
}

const mf_coll *manifest_find(const manifest *m, const char *name)
{
    for (size_t i = 0; i < m->ncolls; i++)
        if (strcmp(m->colls[i].name, name) == 0)
            return &m->colls[i];
    return NULL;
}

/* ---- reading ---- */

static int get_u64(const cJSON *o, const char *key, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
        return -1;
    *out = (uint64_t)v->valuedouble;
    return 0;
}

static int parse_coll(const cJSON *jc, mf_coll *c, const char **why)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(jc, "name");
    if (!cJSON_IsString(name) || !name_is_valid(name->valuestring, strlen(name->valuestring))) {
        *why = "a collection without a valid name";
        return -1;
    }
    snprintf(c->name, sizeof c->name, "%s", name->valuestring);
    if (get_u64(jc, "create_lsn", &c->create_lsn) || get_u64(jc, "modified_lsn", &c->modified_lsn) ||
        get_u64(jc, "documents", &c->docs) || get_u64(jc, "bytes", &c->bytes)) {
        *why = "a collection field is missing or not a number";
        return -1;
    }
    const cJSON *segs = cJSON_GetObjectItemCaseSensitive(jc, "segments");
    if (!cJSON_IsArray(segs)) {
        *why = "a collection without a segments array";
        return -1;
    }
    int n = cJSON_GetArraySize(segs);
    c->segs = n ? calloc((size_t)n, sizeof *c->segs) : NULL;
    if (n && c->segs == NULL) {
        *why = "out of memory";
        return -1;
    }
    const cJSON *js;
    cJSON_ArrayForEach(js, segs)
    {
        mf_segment *s = &c->segs[c->nsegs];
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(js, "file");
        uint64_t parsed;
        if (get_u64(js, "segno", &s->segno) || get_u64(js, "documents", &s->docs) ||
            get_u64(js, "blocks", &s->blocks) || get_u64(js, "size", &s->size) ||
            get_u64(js, "raw_bytes", &s->raw_bytes) || get_u64(js, "checkpoint_lsn", &s->ckpt_lsn) ||
            !cJSON_IsString(file) || !seg_parse_name(file->valuestring, &parsed) ||
            parsed != s->segno) {
            *why = "a segment entry is malformed";
            return -1;
        }
        c->nsegs++;
    }
    return 0;
}

int manifest_read(const char *dir, manifest *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    char path[4200];
    snprintf(path, sizeof path, "%s/system/%s", dir, MANIFEST_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return DOTDB_OK;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return DOTDB_EOS;
    }
    struct stat st;
    char *text = NULL;
    int rc = DOTDB_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MANIFEST_MAX_BYTES) {
        snprintf(err, errlen, "%s is not a regular file of at most %u bytes", path,
                 MANIFEST_MAX_BYTES);
        close(fd);
        return DOTDB_ECORRUPT;
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        close(fd);
        return DOTDB_ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, text + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        snprintf(err, errlen, "cannot read %s", path);
        free(text);
        return DOTDB_EOS;
    }
    text[got] = 0;
    cJSON *root = cJSON_ParseWithLength(text, got);
    free(text);
    const char *why = NULL;
    uint64_t fmt = 0, created = 0;
    const cJSON *check = NULL, *colls = NULL;
    if (!cJSON_IsObject(root))
        why = "not a JSON object";
    else if (get_u64(root, "format", &fmt) || fmt != MANIFEST_FORMAT)
        why = "unknown format (this build reads format 1)";
    else if (get_u64(root, "checkpoint_lsn", &m->checkpoint_lsn) || m->checkpoint_lsn == 0 ||
             get_u64(root, "created_ms", &created))
        why = "checkpoint_lsn or created_ms missing";
    else if (!cJSON_IsString(check = cJSON_GetObjectItemCaseSensitive(root, "check")))
        why = "no check";
    else if (!cJSON_IsArray(colls = cJSON_GetObjectItemCaseSensitive(root, "collections")))
        why = "no collections array";
    m->created_ms = (int64_t)created;
    const cJSON *jc;
    if (why == NULL) {
        cJSON_ArrayForEach(jc, colls)
        {
            mf_coll c = {0};
            if (parse_coll(jc, &c, &why) != 0) {
                free(c.segs);
                break;
            }
            if (manifest_find(m, c.name)) {
                free(c.segs);
                why = "a collection is listed twice";
                break;
            }
            mf_coll *p = realloc(m->colls, (m->ncolls + 1) * sizeof *p);
            if (p == NULL) {
                free(c.segs);
                why = "out of memory";
                break;
            }
            m->colls = p;
            m->colls[m->ncolls++] = c;
        }
    }
    if (why == NULL) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, mf_checksum(m));
        if (strcmp(hex, check->valuestring) != 0)
            why = "check does not match the contents";
    }
    cJSON_Delete(root);
    if (why != NULL) {
        snprintf(err, errlen, "checkpoint manifest %s is damaged: %s", path, why);
        manifest_free(m);
        rc = DOTDB_ECORRUPT;
    }
    return rc;
}

/* ---- writing ---- */

static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return DOTDB_EINVAL;
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return DOTDB_OK;
        }
        size_t c = (*cap ? *cap * 2 : 4096) + (size_t)n;
        char *p = realloc(*buf, c);
        if (p == NULL)
            return DOTDB_ENOMEM;
        *buf = p;
        *cap = c;
    }
}

static int render(const manifest *m, char **out, size_t *out_len)
{
    char *b = NULL;
    size_t len = 0, cap = 0;
    int rc = append(&b, &len, &cap,
                    "{\"format\": %d, \"checkpoint_lsn\": %" PRIu64 ", \"created_ms\": %" PRId64
                    ", \"check\": \"%016" PRIx64 "\",\n \"collections\": [",
                    MANIFEST_FORMAT, m->checkpoint_lsn, m->created_ms, mf_checksum(m));
    for (size_t i = 0; rc == DOTDB_OK && i < m->ncolls; i++) {
        const mf_coll *c = &m->colls[i];
        rc = append(&b, &len, &cap,
                    "%s\n  {\"name\": \"%s\", \"create_lsn\": %" PRIu64 ", \"modified_lsn\": %" PRIu64
                    ", \"documents\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"segments\": [",
                    i ? "," : "", c->name, c->create_lsn, c->modified_lsn, c->docs, c->bytes);
        for (size_t j = 0; rc == DOTDB_OK && j < c->nsegs; j++) {
            const mf_segment *s = &c->segs[j];
            char name[SEG_NAME_MAX];
            seg_name(s->segno, name);
            rc = append(&b, &len, &cap,
                        "%s\n    {\"file\": \"%s\", \"segno\": %" PRIu64 ", \"documents\": %" PRIu64
                        ", \"blocks\": %" PRIu64 ", \"size\": %" PRIu64 ", \"raw_bytes\": %" PRIu64
                        ", \"checkpoint_lsn\": %" PRIu64 "}",
                        j ? "," : "", name, s->segno, s->docs, s->blocks, s->size, s->raw_bytes,
                        s->ckpt_lsn);
        }
        if (rc == DOTDB_OK)
            rc = append(&b, &len, &cap, "]}");
    }
    if (rc == DOTDB_OK)
        rc = append(&b, &len, &cap, "]}\n");
    if (rc != DOTDB_OK) {
        free(b);
        return rc;
    }
    *out = b;
    *out_len = len;
    return DOTDB_OK;
}

int manifest_write(int sysdir_fd, const char *dir, const manifest *m, int *renamed_out, char *err,
                   size_t errlen)
{
    if (renamed_out)
        *renamed_out = 0;
    static const char tmp[] = MANIFEST_NAME ".tmp";
    char *text = NULL;
    size_t len = 0;
    int rc = render(m, &text, &len);
    if (rc != DOTDB_OK) {
        snprintf(err, errlen, "cannot render the manifest: %s", dotdb_strerror(rc));
        return rc;
    }
    int fd = openat(sysdir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    const char *step = "create";
    int e = 0;
    if (fd < 0) {
        e = errno;
    } else {
        size_t done = 0;
        step = "write";
        while (done < len) {
            ssize_t k = write(fd, text + done, len - done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                e = k < 0 ? errno : EIO;
                break;
            }
            done += (size_t)k;
        }
        if (e == 0 && fdatasync(fd) != 0) {
            step = "fdatasync";
            e = errno;
        }
        if (close(fd) != 0 && e == 0) {
            step = "close";
            e = errno;
        }
    }
    if (e == 0 && renameat(sysdir_fd, tmp, sysdir_fd, MANIFEST_NAME) != 0) {
        step = "rename";
        e = errno;
    }
    int renamed = 0;
    if (e == 0)
        renamed = 1;
    if (renamed_out)
        *renamed_out = renamed;
    if (e == 0 && fsync(sysdir_fd) != 0) {
        /* The rename may or may not be durable: the caller must treat the
         * checkpoint as not taken (and keep the WAL it covers). */
        step = "fsync the directory of";
        e = errno;
    }
    free(text);
    if (e != 0) {
        if (!renamed)
            (void)unlinkat(sysdir_fd, tmp, 0);
        snprintf(err, errlen, "cannot %s %s/system/%s: %s", step, dir, renamed ? MANIFEST_NAME : tmp,
                 strerror(e));
        return (e == ENOSPC || e == EDQUOT || e == EFBIG) ? DOTDB_ENOSPC : DOTDB_EIO;
    }
    return DOTDB_OK;
}
