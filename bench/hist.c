#include "hist.h"

#include <string.h>

static int bucket_of(uint64_t v)
{
    if (v < 2 * PB_HIST_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 7; /* v >> shift is in [128, 255] */
    return (shift + 1) * PB_HIST_SUB + (int)((v >> shift) - PB_HIST_SUB);
}

static uint64_t bucket_upper(int idx)
{
    if (idx < 2 * PB_HIST_SUB)
        return (uint64_t)idx;
    int shift = idx / PB_HIST_SUB - 1;
    uint64_t m = (uint64_t)(idx % PB_HIST_SUB) + PB_HIST_SUB;
    return ((m + 1) << shift) - 1;
}

void pb_hist_init(pb_hist_t *h)
{
    memset(h, 0, sizeof *h);
}

void pb_hist_add(pb_hist_t *h, uint64_t v)
{
    h->counts[bucket_of(v)]++;
    if (h->total == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->total++;
    h->sum += (double)v;
}

uint64_t pb_hist_percentile(const pb_hist_t *h, double p)
{
    if (h->total == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->total + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < PB_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bucket_upper(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double pb_hist_mean(const pb_hist_t *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}
