/*
 * Copyright (C) Data Loom
 */


#ifndef _LOOMGEN_HIST_H_INCLUDED_
#define _LOOMGEN_HIST_H_INCLUDED_


#include <stdint.h>
#include <string.h>


/*
 * A fixed-memory log-linear histogram of nanosecond values, in the manner
 * of HdrHistogram: every power of two is split into 128 linear buckets, so
 * a value is known to within 1/128 (0.8%) of itself.  Values below 128 ns
 * are exact; values above 2^41 ns (about 36 minutes) land in the last
 * bucket.  The whole thing is about 36 KB and recording is a few
 * instructions with no branch on the common path.
 */


#define LG_HIST_SUB_BITS  7
#define LG_HIST_SUB       (1u << LG_HIST_SUB_BITS)
#define LG_HIST_MAX_EXP   41
#define LG_HIST_BUCKETS   ((LG_HIST_MAX_EXP - LG_HIST_SUB_BITS + 1)          \
                           * LG_HIST_SUB)


typedef struct {
    uint64_t  count;
    uint64_t  min;
    uint64_t  max;
    uint64_t  sum;
    uint64_t  bucket[LG_HIST_BUCKETS];
} lg_hist_t;


static inline void
lg_hist_init(lg_hist_t *h)
{
    memset(h, 0, sizeof(lg_hist_t));
    h->min = UINT64_MAX;
}


static inline unsigned
lg_hist_index(uint64_t v)
{
    unsigned  e, shift;

    if (v < LG_HIST_SUB) {
        return (unsigned) v;
    }

    e = 63 - (unsigned) __builtin_clzll(v);

    if (e >= LG_HIST_MAX_EXP) {
        return LG_HIST_BUCKETS - 1;
    }

    /* v is in [2^e, 2^(e+1)): 128 buckets of 2^shift each */

    shift = e - LG_HIST_SUB_BITS;

    return (shift + 1) * LG_HIST_SUB
           + (unsigned) ((v >> shift) - LG_HIST_SUB);
}


/* the highest value that falls into bucket i */

static inline uint64_t
lg_hist_high(unsigned i)
{
    unsigned  shift, sub;

    if (i < LG_HIST_SUB) {
        return i;
    }

    shift = i / LG_HIST_SUB - 1;
    sub = i % LG_HIST_SUB;

    return (((uint64_t) (LG_HIST_SUB + sub) << shift)
            + ((uint64_t) 1 << shift) - 1);
}


static inline void
lg_hist_record(lg_hist_t *h, uint64_t v)
{
    h->bucket[lg_hist_index(v)]++;
    h->count++;
    h->sum += v;

    if (v < h->min) {
        h->min = v;
    }

    if (v > h->max) {
        h->max = v;
    }
}


static inline void
lg_hist_merge(lg_hist_t *to, const lg_hist_t *from)
{
    unsigned  i;

    for (i = 0; i < LG_HIST_BUCKETS; i++) {
        to->bucket[i] += from->bucket[i];
    }

    to->count += from->count;
    to->sum += from->sum;

    if (from->min < to->min) {
        to->min = from->min;
    }

    if (from->max > to->max) {
        to->max = from->max;
    }
}


/*
 * The value at quantile q (0..1): the highest value of the bucket that
 * holds the ceil(q * count)-th smallest value, but never above the exact
 * maximum.  0 when the histogram is empty.
 */

static inline uint64_t
lg_hist_quantile(const lg_hist_t *h, double q)
{
    unsigned  i;
    uint64_t  rank, seen, v;

    if (h->count == 0) {
        return 0;
    }

    if (q >= 1.0) {
        return h->max;
    }

    rank = (uint64_t) (q * (double) h->count + 0.999999);

    if (rank == 0) {
        rank = 1;
    }

    seen = 0;

    for (i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->bucket[i];

        if (seen >= rank) {
            v = lg_hist_high(i);
            return v < h->max ? v : h->max;
        }
    }

    return h->max;
}


#endif /* _LOOMGEN_HIST_H_INCLUDED_ */
