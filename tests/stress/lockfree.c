/*
 * test_lockfree.c - the snapshot, publish and reclaim protocol on one
 * mapping, with threads instead of processes, so ThreadSanitizer can see
 * every access (it cannot see across processes).  scripts/test.sh builds
 * and runs this program under TSan as well as under ASan.  It is a plain
 * program, not a Criterion test: Criterion cannot start under TSan
 * (Snaipe/Criterion#274).
 *
 * One thread plays the coordinator: it applies, publishes and reclaims as
 * fast as it can, with a small hash table so it grows, and with memory
 * reuse so a reclaim that came too early would hand a reader recycled
 * bytes.  Reader threads take snapshots through their own reader slots and
 * check that every document they see is whole: its two fields always hold
 * the same number, and that number never goes backwards between snapshots.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "engine.h"
#include "readers.h"
#include "snap.h"
#include "wire.h"

#define KEYS 64
#define READERS 3

typedef struct shared {
    engine *e;
    rdr_page *page;
    _Atomic int stop;
    _Atomic long reads;
    _Atomic int bad;
} shared;

static void put_doc(engine *e, int key, long v)
{
    char json[160], err[256];
    snprintf(json, sizeof json, "{\"id\":\"k%d\",\"a\":%ld,\"pad\":\"%0*d\",\"b\":%ld}", key, v,
             (int)(v % 50), 0, v);
    dbuf doc, b;
    dbuf_init(&doc);
    dbuf_init(&b);
    codec_limits lim = {CODEC_DEFAULT_MAX_SIZE, CODEC_DEFAULT_MAX_DEPTH};
    if (codec_from_json(json, strlen(json), &lim, NULL, &doc, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "encode: %s\n", err);
        exit(2);
    }
    size_t start;
    batch_begin(&b, &start);
    batch_op op = {.kind = BOP_PUT, .coll = "c", .coll_len = 1, .doc = doc.data, .doc_len = doc.len};
    batch_add(&b, start, &op);
    uint64_t lsn = engine_applied_lsn(e) + 1;
    if (engine_apply(e, lsn, 0, b.data, b.len, err, sizeof err) != 0) {
        fprintf(stderr, "apply: %s\n", err);
        exit(2);
    }
    engine_publish(e, lsn);
    dbuf_free(&doc);
    dbuf_free(&b);
}

static void *reader(void *arg)
{
    shared *sh = arg;
    static _Atomic int next_slot;
    int slot = atomic_fetch_add(&next_slot, 1) % RDR_SLOTS;
    rdr_slot *s = &sh->page->slots[slot];
    const uint8_t *base = region_base(engine_region(sh->e));
    long seen[KEYS] = {0};
    while (!atomic_load(&sh->stop)) {
        uint64_t lsn = rdr_begin(s, region_header(engine_region(sh->e)));
        const shm_cat_entry *ce = snap_find_coll(base, lsn, "c", 1);
        if (ce) {
            const shm_coll *c = (const shm_coll *)(base + ce->coll_off);
            for (int k = 0; k < KEYS; k++) {
                char id[16];
                int n = snprintf(id, sizeof id, "k%d", k);
                const shm_version *v = snap_lookup(base, c, lsn, id, (size_t)n);
                if (v == NULL)
                    continue;
                codec_val d = {v->data, v->doc_len}, a, b;
                int64_t ai = -1, bi = -2;
                if (codec_obj_get(d, "a", 1, &a))
                    codec_as_int64(a, &ai);
                if (codec_obj_get(d, "b", 1, &b))
                    codec_as_int64(b, &bi);
                if (ai != bi || ai < seen[k])
                    atomic_fetch_add(&sh->bad, 1);
                seen[k] = ai;
            }
            /* a scan sees every key at most once */
            snap_iter it;
            snap_iter_init(&it, base, c, lsn);
            int count = 0;
            while (snap_iter_next(&it))
                count++;
            if (count > KEYS)
                atomic_fetch_add(&sh->bad, 1);
        }
        rdr_end(s);
        atomic_fetch_add(&sh->reads, 1);
    }
    return NULL;
}

static int check(int ok, const char *what, int *failed)
{
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    *failed += !ok;
    return ok;
}

int main(int argc, char **argv)
{
    long writes = argc > 1 ? atol(argv[1]) : 20000;
    dotdb_config cfg;
    config_defaults(&cfg);
    cfg.buffer_pool_size = 8u << 20;
    cfg.max_size = 64u << 20;
    cfg.hash_bucket_count = 16;
    char err[256];
    shared sh = {0};
    if (engine_create(&cfg, 1, &sh.e, err, sizeof err) != 0) {
        fprintf(stderr, "engine_create: %s\n", err);
        return 2;
    }
    sh.page = aligned_alloc(64, sizeof(rdr_page));
    memset(sh.page, 0, sizeof(rdr_page));

    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&th[i], NULL, reader, &sh);
    for (long v = 1; v <= writes; v++) {
        put_doc(sh.e, (int)(v % KEYS), v);
        uint64_t min = UINT64_MAX;
        rdr_page_min(sh.page, &min);
        engine_reclaim(sh.e, min);
    }
    atomic_store(&sh.stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);

    int failed = 0;
    char what[200];
    snprintf(what, sizeof what, "%ld snapshot reads during %ld writes saw no torn, recycled or "
             "backward version (%d bad)", (long)atomic_load(&sh.reads), writes, atomic_load(&sh.bad));
    check(atomic_load(&sh.bad) == 0 && atomic_load(&sh.reads) > 0, what, &failed);
    region_stats st;
    engine_reclaim(sh.e, UINT64_MAX);
    region_get_stats(engine_region(sh.e), &st);
    snprintf(what, sizeof what, "memory is reused: %llu bytes of shared memory used for %d keys",
             (unsigned long long)st.top, KEYS);
    check(st.top < (4u << 20), what, &failed);
    free(sh.page);
    engine_destroy(sh.e);
    printf("%d passed, %d failed\n", 2 - failed, failed);
    return failed ? 1 : 0;
}
