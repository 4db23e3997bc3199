/*
 * hist.c - latency histogram with log-linear buckets.
 *
 * Values below HIST_SUB ns have a bucket each; above, every power of two is
 * split into HIST_SUB equal buckets, so a quantile is known to within
 * 1/HIST_SUB (about 3%).  Values are capped at 2^40 ns (18 minutes).  A
 * histogram is a flat struct of counters: it can be sent through a pipe
 * and merged by adding.
 */
#include <string.h>

#include "bench.h"

#define HIST_CAP_NS (UINT64_C(1) << 40)

void hist_init(hist *h)
{
    memset(h, 0, sizeof *h);
}

static unsigned bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

void hist_add(hist *h, uint64_t ns)
{
    if (ns >= HIST_CAP_NS)
        ns = HIST_CAP_NS - 1;
    h->b[bucket_of(ns)]++;
    h->count++;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void hist_merge(hist *into, const hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
}

double hist_quantile(const hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count)
        rank = h->count - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank) {
            if (i < HIST_SUB)
                return (double)i;
            unsigned shift = i / HIST_SUB - 1;
            double low = (double)((uint64_t)(HIST_SUB + i % HIST_SUB) << shift);
            return low + (double)(UINT64_C(1) << shift) / 2.0;
        }
    }
    return (double)h->max_ns;
}
