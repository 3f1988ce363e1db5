/*
 * sparse_attention.cl: the FlashAttention-2 kernels of MInference's three sparse patterns,
 * portable OpenCL C 1.2. Each visits a different key set per 64-query row block and shares the
 * staged-tile step of attention_common.h (causal mask per element inside every tile).
 *
 *   a_shape_attention:         keys [0, sink) and [i - window + 1, i]        (section 3)
 *   vertical_slash_attention:  64-key windows block_offset[m][*], then the gathered
 *                              columns column_index[m][*]                     (section 6)
 *   block_sparse_attention:    key blocks selected[m][*] (64 keys each)       (section 7)
 *
 * All heads of one pattern run in one launch: group (row block, slot), slot s computing
 * flattened query head slots[s] with its own budgets or index lists. Layout as in
 * dense_attention.cl; prefill only (Nq = Nk = n). Work: global (R * ROW_BLOCK, slots), local
 * (ROW_BLOCK, 1), R = ceil(n / ROW_BLOCK); row blocks run heaviest (last) first.
 */
#include "attention_common.h"

#define ROW_BLOCK 64 /* query rows per work-group: upstream's index lists are per 64 queries */

/* The per-row state and the loop over staged tiles, shared by the three kernels. */
#define SPARSE_PROLOGUE                                                                          \
    __local float k_tile[KEY_TILE * HEAD_DIM];                                                   \
    __local float v_tile[KEY_TILE * HEAD_DIM];                                                   \
    __local int key_pos[KEY_TILE];                                                               \
    const int m = (int)get_num_groups(0) - 1 - (int)get_group_id(0);                             \
    const int slot = get_group_id(1);                                                            \
    const int head = slots[slot];                                                                \
    const int lid = get_local_id(0);                                                             \
    const int row = m * ROW_BLOCK + lid;                                                         \
    const int start = m * ROW_BLOCK;                                                             \
    const int kv = kv_head_of(head, heads_q, heads_kv);                                          \
    __global const in_t* kh = k + (size_t)kv * n * HEAD_DIM;                                     \
    __global const in_t* vh = v + (size_t)kv * n * HEAD_DIM;                                     \
    const size_t q_offset = ((size_t)head * n + (size_t)min(row, n - 1)) * HEAD_DIM;             \
    float8 q_row[HEAD_VEC];                                                                      \
    float8 acc[HEAD_VEC];                                                                        \
    for (int c = 0; c < HEAD_VEC; ++c) {                                                         \
        float x[8];                                                                              \
        for (int e = 0; e < 8; ++e) x[e] = LOAD_IN(q, q_offset + 8 * c + e) * scale_log2;         \
        q_row[c] = vload8(0, x);                                                                 \
        acc[c] = (float8)(0.0f);                                                                 \
    }                                                                                            \
    float running_max = -INFINITY, running_sum = 0.0f;

/* Attends every key of [lo, hi) (clipped to n) in KEY_TILE steps. */
#define ATTEND_RANGE(lo, hi, sink, window)                                                       \
    for (int first = (lo); first < (hi); first += KEY_TILE) {                                    \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
        stage_key_range(k_tile, v_tile, key_pos, kh, vh, first, min(KEY_TILE, (hi) - first), n,  \
                        lid, ROW_BLOCK);                                                         \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
        attend_tile(q_row, acc, &running_max, &running_sum, k_tile, v_tile, key_pos, row, 1,     \
                    (sink), (window));                                                           \
    }

#define SPARSE_EPILOGUE \
    if (row < n) store_row(o, ((size_t)head * n + row) * HEAD_DIM, acc, running_sum);

__kernel __attribute__((reqd_work_group_size(ROW_BLOCK, 1, 1)))
void a_shape_attention(__global const in_t* q, __global const in_t* k, __global const in_t* v,
                       __global out_t* o, __global const int* slots, __global const int* sinks,
                       __global const int* windows, int n, int heads_q, int heads_kv,
                       float scale_log2) {
    SPARSE_PROLOGUE
    const int sink = sinks[slot], window = windows[slot];
    const int end = min(start + ROW_BLOCK, n);
    /* keys [0, sink) and the window of the block's rows [start - window + 1, end), visited once */
    const int sink_end = min(sink, end);
    const int window_begin = max(sink_end, start - window + 1);
    ATTEND_RANGE(0, sink_end, sink, window)
    ATTEND_RANGE(window_begin, end, sink, window)
    SPARSE_EPILOGUE
}

__kernel __attribute__((reqd_work_group_size(ROW_BLOCK, 1, 1)))
void vertical_slash_attention(__global const in_t* q, __global const in_t* k, __global const in_t* v,
                              __global out_t* o, __global const int* slots,
                              __global const int* block_count, __global const int* block_offset,
                              int nnz_s, __global const int* column_count,
                              __global const int* column_index, int nnz_v, int n, int heads_q,
                              int heads_kv, float scale_log2) {
    SPARSE_PROLOGUE
    const int rows = get_num_groups(0);
    const size_t index_row = (size_t)slot * rows + m;
    const int windows = block_count[index_row];
    __global const int* offsets = block_offset + index_row * nnz_s;
    for (int b = 0; b < windows; ++b) {
        const int lo = offsets[b];
        ATTEND_RANGE(lo, lo + ROW_BLOCK, 0, 0)
    }
    const int columns = column_count[index_row];
    __global const int* column_keys = column_index + index_row * nnz_v;
    for (int first = 0; first < columns; first += KEY_TILE) {
        barrier(CLK_LOCAL_MEM_FENCE);
        stage_key_gather(k_tile, v_tile, key_pos, kh, vh, column_keys + first,
                         min(KEY_TILE, columns - first), lid, ROW_BLOCK);
        barrier(CLK_LOCAL_MEM_FENCE);
        attend_tile(q_row, acc, &running_max, &running_sum, k_tile, v_tile, key_pos, row, 1, 0, 0);
    }
    SPARSE_EPILOGUE
}

__kernel __attribute__((reqd_work_group_size(ROW_BLOCK, 1, 1)))
void block_sparse_attention(__global const in_t* q, __global const in_t* k, __global const in_t* v,
                            __global out_t* o, __global const int* slots,
                            __global const int* selected, __global const int* selected_counts,
                            int selected_stride, int blocks_per_head, int n, int heads_q,
                            int heads_kv, float scale_log2) {
    SPARSE_PROLOGUE
    const size_t index_row = (size_t)slot * blocks_per_head + m;
    const int count = selected_counts[index_row];
    __global const int* chosen = selected + index_row * selected_stride;
    for (int b = 0; b < count; ++b) {
        const int lo = chosen[b] * ROW_BLOCK;
        ATTEND_RANGE(lo, lo + ROW_BLOCK, 0, 0)
    }
    SPARSE_EPILOGUE
}
