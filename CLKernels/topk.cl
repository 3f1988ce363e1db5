/*
 * topk.cl: exact, deterministic top-k of many rows of fp32 scores, one work-group per row,
 * by radix select on order-preserving 32-bit keys (4 passes of 8 bits) and an ordered
 * compaction. Ties are broken by the smaller index; +inf ranks above everything, then NaN (of
 * either sign: devices differ in the sign a NaN gets), then the finite scores, so the forced +inf
 * entries always stay selected. The selected indices come out ascending. Memory is O(k) per row:
 * rows of 1M scores need no sort.
 *
 *   key(x)    = bits of x with the order of x (negatives flipped); NaN takes +inf's key and +inf
 *               the next one up (a key no finite score or canonical NaN has)
 *   T         = the k-th largest key (found digit by digit, high to low, from histograms)
 *   selected  = { i : key_i > T } + the first (k - #{key > T}) indices with key_i == T
 *
 * Rows: row `row` of `scores` starts at row * row_stride. Its length is `length`, or, with
 * `causal_rows` set, causal_first + (row % rows_per_group) + 1 (block-sparse: query block m sees
 * key blocks 0..m; a chunk's rows start at block causal_first). Its k is
 * k_of_group[row / rows_per_k] (rows_per_k = rows_per_group for budgets per group of rows, 1 for
 * a k per row), clamped to the length. Output: indices
 * [rows, out_stride] (int), counts [rows].
 */
#include "attention_common.h"
#ifndef TOPK_THREADS
#define TOPK_THREADS 256 /* work-items per row; a power of 2 */
#endif
#define RADIX_BITS 8
#define RADIX_BINS (1 << RADIX_BITS)

INLINE uint order_key(float x) {
    const uint u = as_uint(x);
    const uint key = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    /* canonical NaN, whatever its sign and payload: +inf's key, and +inf one above it */
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0xff800000u;
    return u == 0x7f800000u ? 0xff800001u : key;
}

/* Exclusive prefix sum of TOPK_THREADS values in local memory (one work-item does it: 256
 * additions are cheaper than a parallel scan's barriers). Returns the total. */
INLINE uint exclusive_scan(__local uint* values, int lid, __local uint* total) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        uint sum = 0;
        for (int t = 0; t < TOPK_THREADS; ++t) {
            const uint v = values[t];
            values[t] = sum;
            sum += v;
        }
        *total = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    return *total;
}

__kernel __attribute__((reqd_work_group_size(TOPK_THREADS, 1, 1)))
void topk_rows(__global const float* scores, ulong row_stride, int length, int causal_rows,
               int causal_first, int rows_per_group, __global const int* k_of_group, int rows_per_k,
               __global int* indices, int out_stride, __global int* counts) {
    __local uint histogram[RADIX_BINS];
    __local uint above[TOPK_THREADS];
    __local uint equal[TOPK_THREADS];
    __local uint shared_word[3];
    const int row = get_group_id(0);
    const int lid = get_local_id(0);
    const int n = causal_rows ? causal_first + (row % rows_per_group) + 1 : length;
    const int k = min(k_of_group[row / rows_per_k], n);
    __global const float* x = scores + (size_t)row * row_stride;
    __global int* out = indices + (size_t)row * out_stride;
    if (lid == 0) counts[row] = k;
    if (k <= 0) return;
    if (k == n) { /* everything is selected */
        for (int i = lid; i < n; i += TOPK_THREADS) out[i] = i;
        return;
    }

    /* Radix select of the k-th largest key. */
    uint prefix = 0, prefix_mask = 0;
    uint wanted = (uint)k; /* how many of the keys matching the prefix are still to be taken */
    for (int shift = 32 - RADIX_BITS; shift >= 0; shift -= RADIX_BITS) {
        for (int b = lid; b < RADIX_BINS; b += TOPK_THREADS) histogram[b] = 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int i = lid; i < n; i += TOPK_THREADS) {
            const uint key = order_key(x[i]);
            if ((key & prefix_mask) == prefix) atomic_inc(&histogram[(key >> shift) & (RADIX_BINS - 1)]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid == 0) {
            uint seen = 0;
            int digit = RADIX_BINS - 1;
            for (; digit > 0; --digit) {
                if (seen + histogram[digit] >= wanted) break;
                seen += histogram[digit];
            }
            shared_word[0] = (uint)digit;
            shared_word[1] = wanted - seen;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        prefix |= shared_word[0] << shift;
        prefix_mask |= (uint)(RADIX_BINS - 1) << shift;
        wanted = shared_word[1];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const uint threshold = prefix; /* the k-th largest key; `wanted` keys equal to it are taken */

    /* Ordered compaction: each work-item owns a contiguous chunk of the row. */
    const int chunk = (n + TOPK_THREADS - 1) / TOPK_THREADS;
    const int begin = min(n, lid * chunk), end = min(n, begin + chunk);
    uint n_above = 0, n_equal = 0;
    for (int i = begin; i < end; ++i) {
        const uint key = order_key(x[i]);
        n_above += key > threshold;
        n_equal += key == threshold;
    }
    equal[lid] = n_equal;
    exclusive_scan(equal, lid, &shared_word[2]);
    const uint equal_before = equal[lid];
    const uint take_equal = equal_before >= wanted ? 0u : min(n_equal, wanted - equal_before);
    above[lid] = n_above + take_equal;
    exclusive_scan(above, lid, &shared_word[2]);
    uint position = above[lid];
    uint equal_seen = equal_before;
    for (int i = begin; i < end; ++i) {
        const uint key = order_key(x[i]);
        bool take = key > threshold;
        if (key == threshold) {
            take = equal_seen < wanted;
            ++equal_seen;
        }
        if (take) out[position++] = i;
    }
}
