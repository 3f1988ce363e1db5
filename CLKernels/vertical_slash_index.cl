/*
 * vertical_slash_index.cl: turns each vertical-slash head's selected key columns and diagonals
 * into per-row-block index lists (docs/MINFERENCE.md section 5; upstream
 * csrc/vertical_slash_index.cu, reproduced step for step so the covered key set is the same).
 *
 * For row block m (queries [start, end) = [64m, 64m + 64)):
 *   skip offsets o >= end; E(o) = max(end - o, 64); cur = [E(o_first) - 64, E(o_first))
 *   walk offsets in descending order (E increasing), interleaved with ascending verticals c:
 *     c < cur.hi: store c if c < cur.lo (a column left of the range), else drop it (covered)
 *     else take the next offset: e = E(o); e > cur.hi + 64: emit cur, cur = [e - 64, e)
 *                                          cur.hi < e <= cur.hi + 64: cur.hi += 64
 *   after the last offset: emit cur; verticals not yet consumed are dropped
 * "emit [lo, hi)" stores lo, lo + 64, ..., hi - 64: key windows of 64 (not block numbers).
 *
 * Input: selected [2 * slots, selected_stride] from topk.cl: rows 0..slots-1 the verticals of
 * each slot (ascending), rows slots..2*slots-1 the slash offsets (ascending; walked backwards),
 * with their counts. Output per slot: block_count [R], block_offset [R, nnz_s],
 * column_count [R], column_index [R, nnz_v], covered_pairs [R] (causal (i, j) pairs the kernel
 * covers, for the density report, counting only query positions >= first_row). Row block m of
 * the launch is block first_block + m of the n key positions: all ceil(n / 64) blocks in
 * prefill, the chunk's blocks in a chunked prefill (first_row = Nk - Nq, first_block =
 * first_row / 64). One work-item per (row block, slot): global (R, slots).
 */
#include "attention_common.h"
#define ROW_BLOCK 64

/* sum over t in (0, x] of clamp(t, 0, w) */
INLINE long ramp_prefix(long x, long w) {
    if (x <= 0) return 0;
    if (x <= w) return x * (x + 1) / 2;
    return w * (w + 1) / 2 + (x - w) * w;
}

/* Causal pairs (i, j) with i in [row_begin, row_end), j in [lo, hi), j <= i. */
INLINE long covered_range_pairs(int row_begin, int row_end, int lo, int hi) {
    if (hi <= lo || row_end <= row_begin) return 0;
    const long w = hi - lo;
    return ramp_prefix(row_end - lo, w) - ramp_prefix(row_begin - lo, w);
}

INLINE void emit_range(int lo, int hi, __global int* offsets, int* count, int capacity, int row_begin,
                       int row_end, int n, long* pairs) {
    for (int key = lo; key < hi; key += ROW_BLOCK) {
        if (*count < capacity) offsets[(*count)++] = key;
    }
    *pairs += covered_range_pairs(row_begin, row_end, lo, min(hi, n));
}

__kernel void vs_convert_indexes(__global const int* selected, __global const int* selected_counts,
                                 int selected_stride, int slot_count, int n, int first_row,
                                 __global int* block_count, __global int* block_offset, int nnz_s,
                                 __global int* column_count, __global int* column_index, int nnz_v,
                                 __global long* covered_pairs) {
    const int first_block = first_row / ROW_BLOCK;
    const int m = get_global_id(0);
    const int slot = get_global_id(1);
    const int rows = (n + ROW_BLOCK - 1) / ROW_BLOCK - first_block;
    if (m >= rows || slot >= slot_count) return;
    const int start = (first_block + m) * ROW_BLOCK, end = start + ROW_BLOCK;
    const int row_begin = max(start, first_row), row_end = min(end, n);
    __global const int* verticals = selected + (size_t)slot * selected_stride;
    __global const int* offsets = selected + (size_t)(slot_count + slot) * selected_stride;
    const int n_v = selected_counts[slot];
    const int n_s = selected_counts[slot_count + slot];
    const size_t row = (size_t)slot * rows + m;
    __global int* blocks = block_offset + row * nnz_s;
    __global int* columns = column_index + row * nnz_v;
    int blocks_stored = 0, columns_stored = 0;
    long pairs = 0;

    int s = n_s - 1; /* offsets are walked from the largest down */
    while (s >= 0 && offsets[s] >= end) --s;
    if (s >= 0) { /* upstream reads past its array here; no offset < end means no ranges */
        int e = max(end - offsets[s--], ROW_BLOCK);
        int lo = e - ROW_BLOCK, hi = e;
        int v = 0;
        int vertical = v < n_v ? verticals[v++] : end + ROW_BLOCK;
        while (true) {
            if (vertical < hi) {
                if (vertical < lo && columns_stored < nnz_v) columns[columns_stored++] = vertical;
                vertical = v < n_v ? verticals[v++] : end + ROW_BLOCK;
            } else {
                if (s < 0) {
                    emit_range(lo, hi, blocks, &blocks_stored, nnz_s, row_begin, row_end, n, &pairs);
                    break;
                }
                e = max(end - offsets[s--], ROW_BLOCK);
                if (e > hi + ROW_BLOCK) {
                    emit_range(lo, hi, blocks, &blocks_stored, nnz_s, row_begin, row_end, n, &pairs);
                    lo = e - ROW_BLOCK;
                    hi = e;
                } else if (e > hi) {
                    hi += ROW_BLOCK;
                }
            }
        }
    }
    /* every stored column is left of the row block: all its rows see it */
    pairs += (long)columns_stored * (row_end - row_begin);
    block_count[row] = blocks_stored;
    column_count[row] = columns_stored;
    covered_pairs[row] = pairs;
}
