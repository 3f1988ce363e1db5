/*
 * flexprefill_index.cl: FlexPrefill's block selection (docs/PREFILL-METHODS.md section 5), for
 * every FlexPrefill head of a layer in one launch per step. B = block size, nb = ceil(N / B) key
 * blocks, L = min(B, Nq) last queries; query row i sits at key position shift + i (a chunk starts
 * on a block boundary, block_base = shift / B).
 *
 *   estimate      column[j], diagonal[o]: sums over the last L queries of their softmax
 *                 attention (vertical_slash_estimate.cl with LAST_Q = B, nothing forced);
 *                 vert = column / L, slash[t] = diagonal[N - 1 - t] / L             (5.3)
 *   budgets       cover(x) = 1 + #{p >= 1 : sum of the p largest x <= gamma};
 *                 n = cover / B + 1 blocks, raised to min_blocks, lowered to max_blocks (5.4)
 *   head choice   Vb[n] = vert over key block n; pq = softmax_n(mean of the last L queries .
 *                 mean key of block n / sqrt(d)); query-aware iff the Jensen-Shannon distance
 *                 sqrt(JS(pq, Vb)) < tau (NaN, from an exact zero, is not)                (5.5)
 *   verticals     top n_v of Vb with Vb[0] = +inf; slashes: top n_s of Sb (slash summed over
 *                 t in [B s, B s + B)) with Sb[nb - 1] = +inf; query-aware heads use
 *                 n_v = n_s = min_blocks                                                  (5.6)
 *   query-aware   Ab[m, n] = softmax_{n <= m}(mean query of block m . mean key of block n /
 *                 sqrt(d)) over all rows m, flattened; the largest entries whose running sum,
 *                 themselves included, stays <= gamma * (rows)                            (5.7)
 *   lists         row m: verticals v <= m, diagonals m - (nb - 1 - s) >= 0, and the row's
 *                 query-aware blocks; ascending                                          (5.6, 5.8)
 *
 * Block means are over a block's real rows only (the last block may be partial).
 */
#include "mass_threshold.h"

#ifndef FLEX_BLOCK
#define FLEX_BLOCK 128 /* B */
#endif

/* out[h][b] = mean over the real positions of block b of head heads_of[h]: positions
 * first_row + b * block_rows ... (excluding those >= length), times `scale`. Work: global
 * (HEAD_DIM, blocks, count). */
__kernel void flex_block_mean(__global const in_t* x, layout_t layout, __global const int* heads_of, int heads,
                              int first_row, int block_rows, int length, float scale, __global float* out, int blocks) {
    const int c = get_global_id(0), b = get_global_id(1), h = get_global_id(2);
    if (c >= HEAD_DIM || b >= blocks) return;
    const int begin = first_row + b * block_rows, end = min(begin + block_rows, length);
    __global const in_t* rows = x + head_origin(layout, heads_of[h], heads) + c;
    float sum = 0.0f;
    for (int p = begin; p < end; ++p) sum += LOAD_IN(rows, (size_t)p * TOKEN_STRIDE(layout));
    out[((size_t)h * blocks + b) * HEAD_DIM + c] = end > begin ? sum / (float)(end - begin) * scale : 0.0f;
}

/* Per slot: budgets, pooled vertical and slash scores, the Jensen-Shannon choice.
 * estimate: [2 * slots, n] column then diagonal sums; last_mean: [slots, d] (already / sqrt(d));
 * pooled_k: [kv heads, nb, d]; block_scores: [2 * slots, nb] (Vb rows, then Sb rows, forced
 * entries +inf); logits: [slots, nb] scratch. Outputs per slot: ks[slot] (verticals),
 * ks[slots + slot] (slashes), query_aware[slot], distance[slot].
 * Work: global (MASS_THREADS * slots), local (MASS_THREADS). */
__kernel __attribute__((reqd_work_group_size(MASS_THREADS, 1, 1)))
void flex_head_choice(__global float* estimate, int n, int rows, __global const float* last_mean,
                      __global const float* pooled_k, __global const int* kv_of_slot, int nb,
                      __global float* block_scores, __global float* logits, float gamma_high, float gamma_middle,
                      float gamma_low, float tau_high, float tau_middle, float tau_low, int min_blocks,
                      int max_blocks, __global int* ks, __global int* query_aware,
                      __global float* distance) {
    __local mass_t mass_scratch[MASS_THREADS];
    __local uint count_scratch[MASS_THREADS];
    __local float query[HEAD_DIM];
    __local float max_scratch[MASS_THREADS];
    const int slot = get_group_id(0), slots = get_num_groups(0), lid = get_local_id(0);
    __global float* column = estimate + (size_t)slot * n;
    __global float* diagonal = estimate + (size_t)(slots + slot) * n;
    __global float* vb = block_scores + (size_t)slot * nb;
    __global float* sb = block_scores + (size_t)(slots + slot) * nb;
    __global float* lg = logits + (size_t)slot * nb;
    const mass_t gamma = exact_parameter(gamma_high, gamma_middle, gamma_low);

    /* budgets in tokens, then blocks (the estimate's sums are L times upstream's means) */
    const int cover_v = 1 + largest_prefix_within(column, n, -1, -1, 0, gamma * rows, 0, mass_scratch, count_scratch);
    const int cover_s = 1 + largest_prefix_within(diagonal, n, -1, -1, 0, gamma * rows, 0, mass_scratch, count_scratch);
    const int upper = min(max_blocks, nb);

    /* pooled distributions; pq's logits */
    for (int c = lid; c < HEAD_DIM; c += MASS_THREADS) query[c] = last_mean[(size_t)slot * HEAD_DIM + c];
    barrier(CLK_LOCAL_MEM_FENCE);
    __global const float* keys = pooled_k + (size_t)kv_of_slot[slot] * nb * HEAD_DIM;
    float local_max = -INFINITY;
    for (int b = lid; b < nb; b += MASS_THREADS) {
        float v = 0.0f, s = 0.0f;
        for (int j = b * FLEX_BLOCK; j < min(n, b * FLEX_BLOCK + FLEX_BLOCK); ++j) {
            v += column[j];
            s += diagonal[n - 1 - j]; /* slash t = j: diagonal offset n - 1 - t */
        }
        vb[b] = v / (float)rows;
        sb[b] = s / (float)rows;
        float dot = 0.0f;
        for (int c = 0; c < HEAD_DIM; ++c) dot = fma(query[c], keys[(size_t)b * HEAD_DIM + c], dot);
        lg[b] = dot;
        local_max = fmax(local_max, dot);
    }
    max_scratch[lid] = local_max;
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    for (int s = MASS_THREADS / 2; s > 0; s >>= 1) {
        if (lid < s) max_scratch[lid] = fmax(max_scratch[lid], max_scratch[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float top = max_scratch[0];
    mass_t sum = 0;
    for (int b = lid; b < nb; b += MASS_THREADS) sum += exp((mass_t)(lg[b] - top));
    const mass_t inv_sum = 1 / group_mass_sum(sum, mass_scratch);
    mass_t js = 0;
    uint zeros = 0u;
    for (int b = lid; b < nb; b += MASS_THREADS) {
        const mass_t p = exp((mass_t)(lg[b] - top)) * inv_sum, q = (mass_t)vb[b], mid = (p + q) / 2;
        if (p == 0 || q == 0) ++zeros; /* upstream's 0 * log 0 is NaN */
        else js += p * log(p / mid) + q * log(q / mid);
    }
    js = group_mass_sum(js, mass_scratch);
    zeros = group_count_sum(zeros, count_scratch);
    const mass_t d = zeros ? (mass_t)NAN : sqrt(js / 2);
    const int aware = d < exact_parameter(tau_high, tau_middle, tau_low);

    barrier(CLK_GLOBAL_MEM_FENCE);
    if (lid == 0) {
        vb[0] = INFINITY;
        sb[nb - 1] = INFINITY;
        ks[slot] = aware ? min_blocks : min(max(cover_v / FLEX_BLOCK + 1, min_blocks), upper);
        ks[slots + slot] = aware ? min_blocks : min(max(cover_s / FLEX_BLOCK + 1, min_blocks), upper);
        query_aware[slot] = aware;
        distance[slot] = (float)d;
    }
}

/* Query-aware heads: the pooled block attention of query block b (absolute block_base + b)
 * against key blocks n <= block_base + b, flattened as pooled[slot][b * nb + n] (0 for n past
 * the row). pooled_q: [slots, query_blocks, d] (already / sqrt(d)). Computed for every head
 * (cheap; the other heads' rows are never read: a work-group that skipped its barriers on a
 * run-time flag crashed PoCL).
 * Work: global (MASS_THREADS * query_blocks, slots), local (MASS_THREADS, 1). */
__kernel __attribute__((reqd_work_group_size(MASS_THREADS, 1, 1)))
void flex_pooled_scores(__global const float* pooled_q, __global const float* pooled_k, __global const int* kv_of_slot,
                        int query_blocks, int block_base, int nb, __global float* pooled) {
    __local float query[HEAD_DIM];
    __local float partial[MASS_THREADS];
    const int b = get_group_id(0), slot = get_group_id(1), lid = get_local_id(0);
    const int m = block_base + b;
    for (int c = lid; c < HEAD_DIM; c += MASS_THREADS) query[c] = pooled_q[((size_t)slot * query_blocks + b) * HEAD_DIM + c];
    barrier(CLK_LOCAL_MEM_FENCE);
    __global const float* keys = pooled_k + (size_t)kv_of_slot[slot] * nb * HEAD_DIM;
    __global float* row = pooled + ((size_t)slot * query_blocks + b) * nb;
    float local_max = -INFINITY;
    for (int n = lid; n < nb; n += MASS_THREADS) {
        float dot = 0.0f;
        if (n <= m)
            for (int c = 0; c < HEAD_DIM; ++c) dot = fma(query[c], keys[(size_t)n * HEAD_DIM + c], dot);
        row[n] = dot;
        if (n <= m) local_max = fmax(local_max, dot);
    }
    partial[lid] = local_max;
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    for (int s = MASS_THREADS / 2; s > 0; s >>= 1) {
        if (lid < s) partial[lid] = fmax(partial[lid], partial[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float top = partial[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    float sum = 0.0f;
    for (int n = lid; n <= m && n < nb; n += MASS_THREADS) sum += exp(row[n] - top);
    partial[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = MASS_THREADS / 2; s > 0; s >>= 1) {
        if (lid < s) partial[lid] += partial[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float inv = 1.0f / partial[0];
    for (int n = lid; n < nb; n += MASS_THREADS) row[n] = n <= m ? exp(row[n] - top) * inv : 0.0f;
}

/* Query-aware heads: how many of the flattened pooled entries to take (their running sum,
 * themselves included, <= gamma * query_blocks); 0 for the other heads.
 * Work: global (MASS_THREADS * slots), local (MASS_THREADS). */
__kernel __attribute__((reqd_work_group_size(MASS_THREADS, 1, 1)))
void flex_pooled_counts(__global const float* pooled, int query_blocks, int nb, __global const int* query_aware,
                        float gamma_high, float gamma_middle, float gamma_low, __global int* k_out) {
    __local mass_t mass_scratch[MASS_THREADS];
    __local uint count_scratch[MASS_THREADS];
    const int slot = get_group_id(0);
    /* other heads: a negative limit, which nothing fits (no barrier is skipped on a flag) */
    const mass_t limit = query_aware[slot] ? exact_parameter(gamma_high, gamma_middle, gamma_low) * query_blocks : -1;
    const int taken = max(0, largest_prefix_within(pooled + (size_t)slot * query_blocks * nb, query_blocks * nb, -1, -1, 0, limit, 0,
                                                    mass_scratch, count_scratch));
    if (get_local_id(0) == 0) k_out[slot] = taken;
}

/* Row lists: for selection row (slot, b), absolute query block m = block_base + b, the key blocks
 * of the verticals (v <= m), the slashes (m - (nb - 1 - s) >= 0) and the query-aware entries of
 * the row, ascending, into lists [slots * query_blocks, nb] with counts. flags: [slots *
 * query_blocks, nb] scratch. Work: global (MASS_THREADS * query_blocks, slots), local (MASS_THREADS, 1). */
__kernel __attribute__((reqd_work_group_size(MASS_THREADS, 1, 1)))
void flex_row_lists(__global const int* selection, __global const int* selection_counts, int selection_stride,
                    __global const int* aware_blocks, __global const int* aware_counts, int aware_stride,
                    int query_blocks, int block_base, int nb, __global uchar* flags, __global int* lists,
                    __global int* counts) {
    __local uint offsets[MASS_THREADS];
    __local uint total;
    __local int range[2];
    const int b = get_group_id(0), slot = get_group_id(1), slots = get_num_groups(1), lid = get_local_id(0);
    const int m = block_base + b;
    const size_t row = (size_t)slot * query_blocks + b;
    __global uchar* flag = flags + row * nb;
    for (int n = lid; n <= m; n += MASS_THREADS) flag[n] = 0;
    barrier(CLK_GLOBAL_MEM_FENCE);
    __global const int* verticals = selection + (size_t)slot * selection_stride;
    __global const int* slashes = selection + (size_t)(slots + slot) * selection_stride;
    for (int e = lid; e < selection_counts[slot]; e += MASS_THREADS)
        if (verticals[e] <= m) flag[verticals[e]] = 1;
    for (int e = lid; e < selection_counts[slots + slot]; e += MASS_THREADS) {
        const int n = m - (nb - 1 - slashes[e]);
        if (n >= 0) flag[n] = 1;
    }
    /* the row's query-aware entries: the ascending flattened list's range [b * nb, b * nb + nb) */
    __global const int* aware = aware_blocks + (size_t)slot * aware_stride;
    if (lid < 2) {
        int lo = 0, hi = aware_counts[slot];
        const int bound = (b + lid) * nb;
        while (lo < hi) {
            const int mid = lo + (hi - lo) / 2;
            if (aware[mid] < bound) lo = mid + 1;
            else hi = mid;
        }
        range[lid] = lo;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int e = range[0] + lid; e < range[1]; e += MASS_THREADS) {
        const int n = aware[e] - b * nb;
        if (n <= m) flag[n] = 1;
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    /* ordered compaction: each work-item owns a contiguous run of the row */
    const int run = (m + 1 + MASS_THREADS - 1) / MASS_THREADS;
    const int begin = min(m + 1, lid * run), end = min(m + 1, begin + run);
    uint mine = 0u;
    for (int n = begin; n < end; ++n) mine += flag[n];
    offsets[lid] = mine;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        uint sum = 0u;
        for (int t = 0; t < MASS_THREADS; ++t) {
            const uint v = offsets[t];
            offsets[t] = sum;
            sum += v;
        }
        total = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    uint position = offsets[lid];
    __global int* out = lists + row * nb;
    for (int n = begin; n < end; ++n)
        if (flag[n]) out[position++] = n;
    if (lid == 0) counts[row] = (int)total;
}
