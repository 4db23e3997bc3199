/*
 * gen.c - the benchmark's records and key choice, identical for every
 * system.
 *
 * Document k, variant v is a pure function of (k, v): about 250 bytes of
 * JSON with the fields
 *   id      "u" + k in 10 digits (fixed width, so a document's id can be
 *           rewritten in place)
 *   name    two generated words
 *   age     integer 0..80
 *   score   a double with three decimals (always written with a '.')
 *   city    one of 5
 *   tags    an array of 1..4 short strings
 *   profile a nested object (email, active, level, address {street, zip})
 * Keys are drawn with a splitmix64 stream seeded by the caller, uniformly
 * or with YCSB's scrambled zipfian (theta 0.99).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const char *const syllables[] = {"ka", "lo", "mi", "ra", "tu", "se", "no", "vi",
                                        "da", "pe", "zo", "ni", "bar", "len", "tor", "gus"};
static const char *const cities[] = {"Lisbon", "Oslo", "Kyoto", "Lima", "Accra"};
static const char *const tag_words[] = {"red", "blue", "fast", "new", "vip", "beta",
                                        "admin", "dev", "ops", "trial", "gold", "eu"};
static const char *const streets[] = {"Oak Lane", "Main Street", "Harbour Road",
                                      "Mill Way", "Station Square", "Elm Avenue"};

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint64_t gen_next(gen_rng *r)
{
    r->s += UINT64_C(0x9e3779b97f4a7c15);
    return mix64(r->s);
}

double gen_unit(gen_rng *r)
{
    return (double)(gen_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

void gen_id(uint64_t k, char *out)
{
    out[0] = 'u';
    for (int i = BENCH_ID_LEN - 1; i >= 1; i--) {
        out[i] = (char)('0' + k % 10);
        k /= 10;
    }
    out[BENCH_ID_LEN] = 0;
}

void batch_init(bench_batch *b)
{
    memset(b, 0, sizeof *b);
}

void batch_clear(bench_batch *b)
{
    b->text_len = 0;
    b->n = 0;
}

void batch_free(bench_batch *b)
{
    free(b->text);
    free(b->docs);
    batch_init(b);
}

static int batch_reserve(bench_batch *b, size_t more_text)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        bench_doc *d = realloc(b->docs, cap * sizeof *d);
        if (!d)
            return -1;
        b->docs = d;
        b->cap = cap;
    }
    if (b->text_len + more_text > b->text_cap) {
        size_t cap = b->text_cap ? b->text_cap : 4096;
        while (cap < b->text_len + more_text)
            cap *= 2;
        char *t = malloc(cap);
        if (!t)
            return -1;
        if (b->text_len)
            memcpy(t, b->text, b->text_len);
        for (size_t i = 0; i < b->n; i++) /* views follow the moved text */
            b->docs[i].json = t + (b->docs[i].json - b->text);
        free(b->text);
        b->text = t;
        b->text_cap = cap;
    }
    return 0;
}

static size_t put_word(char *p, uint64_t h, int syl)
{
    size_t n = 0;
    for (int i = 0; i < syl; i++) {
        const char *s = syllables[(h >> (4 * i)) & 15];
        size_t l = strlen(s);
        memcpy(p + n, s, l);
        n += l;
    }
    return n;
}

int gen_doc(bench_batch *b, uint64_t k, uint64_t variant)
{
    enum { DOC_MAX = 512 };
    if (batch_reserve(b, DOC_MAX + 1) != 0)
        return -1;
    uint64_t h1 = mix64(k * 2 + 1 + variant * UINT64_C(0x632be59bd9b4e019));
    uint64_t h2 = mix64(h1 ^ UINT64_C(0x2545f4914f6cdd1d));
    uint64_t h3 = mix64(h2 + 7);
    char first[32], last[32];
    size_t fl = put_word(first, h1, 2 + (int)(h1 >> 60 & 1));
    size_t ll = put_word(last, h1 >> 12, 3);
    first[0] = (char)(first[0] - 32); /* capitalised */
    last[0] = (char)(last[0] - 32);
    char tags[96];
    size_t tl = 0;
    int ntags = 1 + (int)(h2 % 4);
    for (int i = 0; i < ntags; i++)
        tl += (size_t)snprintf(tags + tl, sizeof tags - tl, "%s\"%s\"", i ? "," : "",
                               tag_words[(h2 >> (8 + 4 * i)) % 12]);
    char *p = b->text + b->text_len;
    char id[BENCH_ID_LEN + 1];
    gen_id(k, id);
    int n = snprintf(p, DOC_MAX,
                     "{\"id\":\"%s\",\"name\":\"%.*s %.*s\",\"age\":%d,\"score\":%d.%03d,"
                     "\"city\":\"%s\",\"tags\":[%s],\"profile\":{\"email\":\"%.*s.%.*s@example.com\","
                     "\"active\":%s,\"level\":%d,\"address\":{\"street\":\"%d %s\","
                     "\"zip\":\"%05d\"}},\"visits\":%d}",
                     id, (int)fl, first, (int)ll, last, (int)(h2 % 81),
                     (int)(h3 % 1000), (int)((h3 >> 20) % 1000), cities[(h3 >> 40) % 5], tags,
                     (int)fl, first, (int)ll, last, (h1 >> 40) & 1 ? "true" : "false",
                     (int)((h1 >> 44) % 10), 1 + (int)((h3 >> 44) % 200),
                     streets[(h3 >> 52) % 6], (int)((h2 >> 30) % 100000), (int)((h1 >> 50) % 5000));
    if (n < 0 || n >= DOC_MAX)
        return -1;
    p[n] = '\n';
    bench_doc *d = &b->docs[b->n++];
    memcpy(d->id, id, sizeof d->id);
    d->json = p;
    d->len = (size_t)n;
    b->text_len += (size_t)n + 1;
    return 0;
}

void batch_set_id(bench_batch *b, size_t i, uint64_t k)
{
    bench_doc *d = &b->docs[i];
    gen_id(k, d->id);
    memcpy((char *)d->json + 7, d->id, BENCH_ID_LEN); /* after {"id":" */
}

/* ---- zipfian ---- */

static double zeta(uint64_t n, double theta)
{
    double s = 0;
    for (uint64_t i = 1; i <= n; i++)
        s += 1.0 / pow((double)i, theta);
    return s;
}

void gen_zipf_init(gen_zipf *z, uint64_t n)
{
    z->n = n;
    z->theta = 0.99;
    z->alpha = 1.0 / (1.0 - z->theta);
    z->zetan = zeta(n, z->theta);
    z->zeta2 = zeta(2, z->theta);
    z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - z->theta)) / (1.0 - z->zeta2 / z->zetan);
}

uint64_t gen_zipf_next(gen_zipf *z, gen_rng *r)
{
    double u = gen_unit(r);
    double uz = u * z->zetan;
    uint64_t rank;
    if (uz < 1.0)
        rank = 0;
    else if (uz < 1.0 + pow(0.5, z->theta))
        rank = 1;
    else
        rank = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
    if (rank >= z->n)
        rank = z->n - 1;
    return mix64(rank ^ UINT64_C(0xcbf29ce484222325)) % z->n; /* scrambled */
}
