/*
 * bench_redis.c - the Redis driver: hiredis over the Unix socket --socket,
 * documents as strings under their id.
 *
 *   load       10,000 SET pipelined (all sent, then all replies read)
 *   read       GET, touch the bytes of the reply
 *   get_json   GET (the reply already is a new string)
 *   put        SET, one round trip
 *   put_batch  --depth SET pipelined: that many in flight per client, as
 *              redis-benchmark -P
 *   rmw        GET then SET
 * Durability: prepare() sets appendfsync to "always" for sync full (the
 * AOF is fsynced before replies go out) and "everysec" otherwise
 * (scripts/bench.sh starts the server with appendonly yes).  scan_filter
 * and group_by are not offered: the values are opaque strings.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static int fail(char *err, redisContext *c, const char *what)
{
    snprintf(err, BENCH_ERRLEN, "%s: %s", what, c && c->err ? c->errstr : "unexpected reply");
    return BENCH_ERR;
}

static int connect_to(const bench_cfg *cfg, redisContext **out, char *err)
{
    if (!cfg->socket) {
        snprintf(err, BENCH_ERRLEN, "--socket is required");
        return BENCH_ERR;
    }
    redisContext *c = redisConnectUnix(cfg->socket);
    if (!c || c->err) {
        snprintf(err, BENCH_ERRLEN, "connect %s: %s", cfg->socket, c ? c->errstr : "out of memory");
        redisFree(c);
        return BENCH_ERR;
    }
    *out = c;
    return BENCH_OK;
}

/* Read one reply and check its type. */
static int expect(redisContext *c, int type, const char *what, char *err)
{
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK || !r)
        return fail(err, c, what);
    int ok = r->type == type;
    if (!ok && r->type == REDIS_REPLY_ERROR)
        snprintf(err, BENCH_ERRLEN, "%s: %s", what, r->str);
    else if (!ok)
        snprintf(err, BENCH_ERRLEN, "%s: reply of type %d", what, r->type);
    freeReplyObject(r);
    return ok ? BENCH_OK : BENCH_ERR;
}

static int rd_prepare(const bench_cfg *cfg, char *err)
{
    if (!cfg->writes)
        return BENCH_OK;
    redisContext *c;
    if (connect_to(cfg, &c, err) != BENCH_OK)
        return BENCH_ERR;
    const char *mode = cfg->sync == BENCH_SYNC_FULL ? "always" : "everysec";
    int rc = BENCH_ERR;
    if (redisAppendCommand(c, "CONFIG SET appendfsync %s", mode) == REDIS_OK)
        rc = expect(c, REDIS_REPLY_STATUS, "CONFIG SET appendfsync", err);
    else
        fail(err, c, "CONFIG SET");
    redisFree(c);
    return rc;
}

static int rd_open(const bench_cfg *cfg, void **h, char *err)
{
    redisContext *c;
    if (connect_to(cfg, &c, err) != BENCH_OK)
        return BENCH_ERR;
    *h = c;
    return BENCH_OK;
}

static void rd_close(void *h)
{
    redisFree(h);
}

static int pipelined_set(redisContext *c, const bench_batch *b, char *err)
{
    for (size_t i = 0; i < b->n; i++)
        if (redisAppendCommand(c, "SET %b %b", b->docs[i].id, (size_t)BENCH_ID_LEN,
                               b->docs[i].json, b->docs[i].len) != REDIS_OK)
            return fail(err, c, "SET");
    int rc = BENCH_OK;
    for (size_t i = 0; i < b->n; i++) /* read every reply even after an error */
        if (expect(c, REDIS_REPLY_STATUS, "SET", err) != BENCH_OK)
            rc = BENCH_ERR;
    return rc;
}

static int rd_load(void *h, const bench_batch *b, char *err)
{
    return pipelined_set(h, b, err);
}

static int rd_read(void *h, const char *id, uint64_t *sink, char *err)
{
    redisContext *c = h;
    redisReply *r = redisCommand(c, "GET %s", id);
    if (!r)
        return fail(err, c, "GET");
    int ok = r->type == REDIS_REPLY_STRING && r->len > 0;
    if (ok)
        *sink += r->len + (uint8_t)r->str[0] + (uint8_t)r->str[r->len - 1];
    else
        snprintf(err, BENCH_ERRLEN, "GET %s: reply of type %d", id, r->type);
    freeReplyObject(r);
    return ok ? BENCH_OK : BENCH_ERR;
}

static int rd_put(void *h, const bench_doc *d, char *err)
{
    redisContext *c = h;
    if (redisAppendCommand(c, "SET %b %b", d->id, (size_t)BENCH_ID_LEN, d->json, d->len) !=
        REDIS_OK)
        return fail(err, c, "SET");
    return expect(c, REDIS_REPLY_STATUS, "SET", err);
}

static int rd_put_batch(void *h, const bench_batch *b, char *err)
{
    return pipelined_set(h, b, err);
}

static int rd_rmw(void *h, const bench_doc *d, uint64_t *sink, char *err)
{
    return rd_read(h, d->id, sink, err) == BENCH_OK ? rd_put(h, d, err) : BENCH_ERR;
}

static const bench_system redis_system = {
    .name = "redis",
    .prepare = rd_prepare,
    .open = rd_open,
    .close = rd_close,
    .load = rd_load,
    .read = rd_read,
    .get_json = rd_read, /* a GET reply is already the document as a new string */
    .put = rd_put,
    .put_batch = rd_put_batch,
    .rmw = rd_rmw,
};

int main(int argc, char **argv)
{
    return bench_main(argc, argv, &redis_system);
}
