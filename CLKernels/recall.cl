/*
 * recall.cl: attention recall of the key sets the sparse kernels cover, in blocks: the share of
 * each query's dense causal softmax mass that falls on the keys its pattern's kernel visits (the
 * score of the offline pattern search, docs/MINFERENCE.md section 9), with O(N) memory per head.
 *
 *   s_ij = q_i . k_j * scale * log2(e)
 *   dense_row_stats, once per layer, over the keys j <= i in 64-key tiles (online softmax):
 *     m_i = max_j s_ij                 l_i = sum_j 2^(s_ij - m_i)
 *   covered_mass_*, once per candidate, over exactly the 64-key tiles that candidate's sparse
 *   kernel visits (the tile lists of pattern_tiles.h), each key masked as there (causal;
 *   A-shape element-exact):
 *     recall_i = min(1, sum_{j in K(i)} 2^(s_ij - m_i) / l_i)
 *     partial[slot, m] = sum of recall_i over the rows i of row block m
 *
 * Both passes compute s_ij with the same code from the same staged fp32 keys, so a covered set
 * that holds every causal key gives recall 1 up to the order of the sums (hence the min).
 *
 * Layout: q [B*Hq, n, HEAD_DIM], k [B*Hkv, n, HEAD_DIM] (attention_common.h); row_max and
 * row_sum [B*Hq, n] fp32, indexed by flattened query head. Slot s of a launch computes flattened
 * query head heads[s]; heads may repeat (one slot per candidate). partial [slots, R] fp32,
 * R = ceil(n / 64). Work: global (R * RECALL_ROWS, count), local (RECALL_ROWS, 1), computing
 * slots first_slot ..< first_slot + count (the host splits long launches): one work-item per
 * query row of a 64-row block.
 */
#include "pattern_tiles.h"

#ifndef RECALL_KEYS
/* Keys staged in local memory per step (4 * RECALL_KEYS * HEAD_DIM bytes): 4, 8, 16, 32 or 64. */
#define RECALL_KEYS 16
#endif
#if RECALL_KEYS < 4 || RECALL_KEYS > 64 || 64 % RECALL_KEYS != 0
#error "RECALL_KEYS must be 4, 8, 16, 32 or 64"
#endif
#define RECALL_ROWS 64 /* query rows per work-group: the sparse kernels' (upstream's) row block */

/* Names every kernel below uses: row block m, slot, head, this work-item's row, its KV head's
 * keys, the row's pre-scaled query in registers and the staging buffers. */
#define RECALL_SETUP                                                                             \
    const int m = get_group_id(0);                                                               \
    const int slot = first_slot + (int)get_group_id(1);                                          \
    const int head = heads[slot];                                                                \
    const int lid = get_local_id(0);                                                             \
    const int start = m * RECALL_ROWS;                                                           \
    const int row = start + lid;                                                                 \
    __global const in_t* kh = k + (size_t)kv_head_of(head, heads_q, heads_kv) * n * HEAD_DIM;    \
    __local float k_tile[RECALL_KEYS * HEAD_DIM];                                                \
    __local int key_pos[RECALL_KEYS];                                                            \
    __local float row_recall[RECALL_ROWS];                                                       \
    float8 q_row[HEAD_VEC];                                                                      \
    load_scaled_row(q_row, q, ((size_t)head * n + (size_t)min(row, n - 1)) * HEAD_DIM, scale_log2);

/* Visits `count` tiles of 64 keys, KEY_OF(t, r) naming slot r of tile t (-1: none), staging
 * RECALL_KEYS keys at a time; STEP runs for every staged part with `scores` and `key_pos`. */
#define RECALL_TILES(count, KEY_OF, STEP)                                                        \
    for (int tile = 0; tile < (count); ++tile) {                                                 \
        for (int part = 0; part < PATTERN_TILE; part += RECALL_KEYS) {                           \
            barrier(CLK_LOCAL_MEM_FENCE);                                                        \
            for (int j = lid; j < RECALL_KEYS; j += RECALL_ROWS)                                 \
                key_pos[j] = KEY_OF(tile, part + j);                                             \
            barrier(CLK_LOCAL_MEM_FENCE);                                                        \
            stage_keys(k_tile, key_pos, kh, lid);                                                \
            barrier(CLK_LOCAL_MEM_FENCE);                                                        \
            float scores[RECALL_KEYS];                                                           \
            staged_scores(q_row, k_tile, scores, RECALL_KEYS);                                   \
            STEP;                                                                                \
        }                                                                                        \
    }

/* Sums the rows' recalls of the work-group into partial[slot, m] (row_recall: RECALL_SETUP's). */
#define RECALL_STORE(recall)                                                                     \
    {                                                                                            \
        row_recall[lid] = row < n ? (recall) : 0.0f;                                             \
        for (int stride = RECALL_ROWS / 2; stride > 0; stride /= 2) {                            \
            barrier(CLK_LOCAL_MEM_FENCE);                                                        \
            if (lid < stride) row_recall[lid] += row_recall[lid + stride];                       \
        }                                                                                        \
        if (lid == 0) partial[(size_t)slot * get_num_groups(0) + m] = row_recall[0];             \
    }

/* Loads the keys named in key_pos (-1: zeros) into the fp32 tile. */
INLINE void stage_keys(__local float* k_tile, __local const int* key_pos, __global const in_t* kh,
                       int lid) {
    for (int e = lid; e < RECALL_KEYS * HEAD_DIM; e += RECALL_ROWS) {
        const int key = key_pos[e / HEAD_DIM];
        k_tile[e] = key >= 0 ? LOAD_IN(kh, (size_t)key * HEAD_DIM + (size_t)(e % HEAD_DIM)) : 0.0f;
    }
}

/* Online max and sum over the visible keys of one staged part, with a float64 softmax's
 * non-finite rules: a visible NaN or +inf score makes the sum NaN (fmax skips a NaN, but its
 * exp2 term does not), a -inf score adds exactly 0, also while the maximum is still -inf (no
 * early exit: a part of NaN scores only has part_max -inf). Invisible keys are never read. */
INLINE void dense_step(const float* scores, __local const int* key_pos, int row, float* row_max,
                       float* row_sum) {
    float part_max = -INFINITY;
    for (int j = 0; j < RECALL_KEYS; ++j)
        if (key_visible(key_pos[j], row, 1, 0, 0)) part_max = fmax(part_max, scores[j]);
    const float new_max = fmax(*row_max, part_max);
    float sum = *row_sum * (*row_max == new_max ? 1.0f : exp2(*row_max - new_max));
    for (int j = 0; j < RECALL_KEYS; ++j)
        if (key_visible(key_pos[j], row, 1, 0, 0)) sum += scores[j] == -INFINITY ? 0.0f : exp2(scores[j] - new_max);
    *row_max = new_max;
    *row_sum = sum;
}

/* Dense mass 2^(s - m_i) of the visible keys of one staged part (NaN for a NaN or +inf score;
 * the row's l_i is NaN then too). */
INLINE float covered_step(const float* scores, __local const int* key_pos, int row, int sink,
                          int window, float row_max) {
    float mass = 0.0f;
    for (int j = 0; j < RECALL_KEYS; ++j)
        if (key_visible(key_pos[j], row, 1, sink, window)) mass += exp2(scores[j] - row_max);
    return mass;
}

/* min(1, mass / l) keeping NaN (fmin would turn a NaN recall into 1). */
INLINE float recall_of(float mass, float l) {
    const float r = mass / l;
    return r > 1.0f ? 1.0f : r;
}

/* m_i and l_i of every row of the flattened heads in `heads`. */
__kernel __attribute__((reqd_work_group_size(RECALL_ROWS, 1, 1)))
void dense_row_stats(__global const in_t* q, __global const in_t* k, __global const int* heads,
                     int first_slot, int n, int heads_q, int heads_kv, float scale_log2,
                     __global float* row_max, __global float* row_sum) {
    RECALL_SETUP
    const int end = min(start + RECALL_ROWS, n);
    float running_max = -INFINITY, running_sum = 0.0f;
#define DENSE_KEY(t, r) ((t) * PATTERN_TILE + (r) < end ? (t) * PATTERN_TILE + (r) : -1)
    RECALL_TILES((end + PATTERN_TILE - 1) / PATTERN_TILE, DENSE_KEY,
                 dense_step(scores, key_pos, row, &running_max, &running_sum))
#undef DENSE_KEY
    if (row < n) {
        row_max[(size_t)head * n + row] = running_max;
        row_sum[(size_t)head * n + row] = running_sum;
    }
}

/* A-shape: keys [0, sink) and the window [i - window + 1, i], the tiles of a_shape_attention;
 * rows from dense_from[slot] on (Tri-shape's dense tail; n for A-shape) cover every key. */
__kernel __attribute__((reqd_work_group_size(RECALL_ROWS, 1, 1)))
void covered_mass_a_shape(__global const in_t* q, __global const in_t* k, __global const int* heads,
                          int first_slot, __global const float* row_max,
                          __global const float* row_sum, __global const int* sinks,
                          __global const int* windows, __global const int* dense_from, int n, int heads_q,
                          int heads_kv, float scale_log2, __global float* partial) {
    RECALL_SETUP
    const int sink = sinks[slot], window = windows[slot];
    const int end = min(start + RECALL_ROWS, n);
    A_SHAPE_TILES(start, end, sink, window)
    const size_t stat = (size_t)head * n + min(row, n - 1);
    const float m_i = row_max[stat];
    float mass = 0.0f;
#define A_SHAPE_KEY(t, r) A_SHAPE_TILE_KEY(end, t, r)
    RECALL_TILES(sink_tiles + window_tiles, A_SHAPE_KEY,
                 mass += covered_step(scores, key_pos, row, sink, window, m_i))
#undef A_SHAPE_KEY
    /* dense rows: l / l, which is 1, or NaN where the row's dense mass is NaN (or 0: all -inf) */
    RECALL_STORE(row >= dense_from[slot] ? row_sum[stat] / row_sum[stat] : recall_of(mass, row_sum[stat]))
}

/* Vertical-slash: the 64-key windows block_offset[m][*], then the stored columns
 * column_index[m][*] 64 per tile (upstream's convert_vertical_slash_indexes layout, as built by
 * vertical_slash_index.cl for the same slots). */
__kernel __attribute__((reqd_work_group_size(RECALL_ROWS, 1, 1)))
void covered_mass_vertical_slash(__global const in_t* q, __global const in_t* k,
                                 __global const int* heads, int first_slot,
                                 __global const float* row_max, __global const float* row_sum,
                                 __global const int* block_count, __global const int* block_offset,
                                 int nnz_s, __global const int* column_count,
                                 __global const int* column_index, int nnz_v, int n, int heads_q,
                                 int heads_kv, float scale_log2, __global float* partial) {
    RECALL_SETUP
    const size_t index_row = (size_t)slot * get_num_groups(0) + m;
    const int windows = block_count[index_row];
    const int columns = column_count[index_row];
    __global const int* offsets = block_offset + index_row * nnz_s;
    __global const int* column_keys = column_index + index_row * nnz_v;
    const size_t stat = (size_t)head * n + min(row, n - 1);
    const float m_i = row_max[stat];
    float mass = 0.0f;
#define VS_KEY(t, r) VS_TILE_KEY(t, r, windows, offsets, columns, column_keys, n)
    RECALL_TILES(VS_TILE_COUNT(windows, columns), VS_KEY,
                 mass += covered_step(scores, key_pos, row, 0, 0, m_i))
#undef VS_KEY
    RECALL_STORE(recall_of(mass, row_sum[stat]))
}

/* Block-sparse: the key blocks selected[m][*] (64 keys each), as topk.cl selected them. */
__kernel __attribute__((reqd_work_group_size(RECALL_ROWS, 1, 1)))
void covered_mass_block_sparse(__global const in_t* q, __global const in_t* k,
                               __global const int* heads, int first_slot,
                               __global const float* row_max, __global const float* row_sum,
                               __global const int* selected, __global const int* selected_counts,
                               int selected_stride, int blocks_per_head, int n, int heads_q,
                               int heads_kv, float scale_log2, __global float* partial) {
    RECALL_SETUP
    const size_t index_row = (size_t)slot * blocks_per_head + m;
    const int count = selected_counts[index_row];
    __global const int* chosen = selected + index_row * selected_stride;
    const size_t stat = (size_t)head * n + min(row, n - 1);
    const float m_i = row_max[stat];
    float mass = 0.0f;
#define BS_KEY(t, r) BS_TILE_KEY(t, r, chosen, n)
    RECALL_TILES(count, BS_KEY, mass += covered_step(scores, key_pos, row, 0, 0, m_i))
#undef BS_KEY
    RECALL_STORE(recall_of(mass, row_sum[stat]))
}
