/*
 * block_lists.cl: the causal (query, key) pairs XAttention's and FlexPrefill's block lists cover
 * (docs/PREFILL-METHODS.md 4.8, 5.8): for list row (slot, b), query block m = block_base + b,
 * its queries [max(m B, first_query), min(m B + B, n)) against the keys [c B, min(c B + B, n)) of
 * every listed block c, masked causally (j <= i). Work: global (rows); pairs: [rows] long.
 */

/* Pairs (i, j) with i < x among the rows from key_begin on, j in a block of w keys from key_begin,
 * j <= i (x = rows counted from key_begin). */
static inline long ramp(long x, long w) { return x <= 0 ? 0 : x <= w ? x * (x + 1) / 2 : w * (w + 1) / 2 + (x - w) * w; }

static inline long causal_pairs(long row_begin, long row_end, long key_begin, long key_end) {
    if (row_begin >= row_end || key_begin >= key_end) return 0;
    const long w = key_end - key_begin;
    return ramp(row_end - key_begin, w) - ramp(row_begin - key_begin, w);
}

__kernel void block_list_pairs(__global const int* lists, __global const int* counts, int stride, int query_blocks,
                               int block_base, int block, int first_query, int n, __global long* pairs, int rows) {
    const int row = get_global_id(0);
    if (row >= rows) return;
    const int m = block_base + row % query_blocks;
    const long row_begin = max((long)m * block, (long)first_query), row_end = min((long)m * block + block, (long)n);
    long total = 0;
    for (int e = 0; e < counts[row]; ++e) {
        const long c = lists[(size_t)row * stride + e];
        total += causal_pairs(row_begin, row_end, c * block, min(c * block + block, (long)n));
    }
    pairs[row] = total;
}
