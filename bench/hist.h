/* hist: a latency histogram with bounded memory, HdrHistogram-like: values (microseconds)
 * below 256 are exact, larger ones fall in log2 magnitudes of 128 linear sub-buckets each,
 * so every value is kept within 1/128 (< 0.8 %) of its true size. */
#ifndef PB_HIST_H
#define PB_HIST_H

#include <stdint.h>

#define PB_HIST_SUB     128
#define PB_HIST_BUCKETS (58 * PB_HIST_SUB)

typedef struct {
    uint64_t counts[PB_HIST_BUCKETS];
    uint64_t total;
    uint64_t max;
    uint64_t min;
    double sum;
} pb_hist_t;

void pb_hist_init(pb_hist_t *h);
void pb_hist_add(pb_hist_t *h, uint64_t v);
/* The value at percentile p (0..100): the upper edge of its bucket, never above the
 * maximum recorded; 0 when empty. Monotone in p. */
uint64_t pb_hist_percentile(const pb_hist_t *h, double p);
double pb_hist_mean(const pb_hist_t *h);

#endif
