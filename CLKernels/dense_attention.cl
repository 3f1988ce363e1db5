/*
 * dense_attention.cl: exact (dense) attention, FlashAttention-2 style, portable OpenCL C 1.2.
 *
 *   for each (head, block of QUERY_TILE query rows), one work-item per row:
 *     q   = q_row * scale * log2(e)
 *     for key tiles [t, t + KEY_TILE) up to the last key any row of the block may see:
 *       stage K, V tile in local memory (fp32)
 *       s_j = q . k_j (masked: causal, past the end)      m' = max(m, max_j s_j)
 *       acc = acc * 2^(m - m') + sum_j 2^(s_j - m') v_j    l = l * 2^(m - m') + sum_j 2^(s_j - m')
 *     o_row = acc / l
 *
 * Layout: q [B*Hq, n_q, HEAD_DIM], k and v [B*Hkv, n_k, HEAD_DIM], o like q. Causal with
 * n_q < n_k aligns queries to the end: query i sits at position n_k - n_q + i.
 * Heads: group (row block, slot) computes flattened query head slots[slot] (all heads of a
 * dense call, or the dense heads of a mixed-pattern layer).
 * Work: global (ceil(n_q / QUERY_TILE) * QUERY_TILE, slots), local (QUERY_TILE, 1).
 */
#include "attention_common.h"

#ifndef QUERY_TILE
#define QUERY_TILE 64 /* query rows per work-group, one per work-item; 32..128 */
#endif

__kernel __attribute__((reqd_work_group_size(QUERY_TILE, 1, 1)))
void dense_attention(__global const in_t* q, __global const in_t* k, __global const in_t* v,
                     __global out_t* o, __global const int* slots, int n_q, int n_k, int heads_q,
                     int heads_kv, float scale_log2, int causal) {
    __local float k_tile[KEY_TILE * HEAD_DIM];
    __local float v_tile[KEY_TILE * HEAD_DIM];
    __local int key_pos[KEY_TILE];

    /* Heaviest row blocks (the last, under a causal mask) are scheduled first. */
    const int row_block = (int)get_num_groups(0) - 1 - (int)get_group_id(0);
    const int head = slots[get_group_id(1)];
    const int lid = get_local_id(0);
    const int row = row_block * QUERY_TILE + lid;
    const int kv = kv_head_of(head, heads_q, heads_kv);
    const int shift = n_k - n_q; /* position of query 0 among the keys */

    __global const in_t* kh = k + (size_t)kv * n_k * HEAD_DIM;
    __global const in_t* vh = v + (size_t)kv * n_k * HEAD_DIM;
    const size_t q_offset = ((size_t)head * n_q + (size_t)min(row, n_q - 1)) * HEAD_DIM;

    float8 q_row[HEAD_VEC];
    float8 acc[HEAD_VEC];
    for (int c = 0; c < HEAD_VEC; ++c) {
        float x[8];
        for (int e = 0; e < 8; ++e) x[e] = LOAD_IN(q, q_offset + 8 * c + e) * scale_log2;
        q_row[c] = vload8(0, x);
        acc[c] = (float8)(0.0f);
    }
    float running_max = -INFINITY, running_sum = 0.0f;

    const int q_pos = row + shift;
    const int last_row = min(row_block * QUERY_TILE + QUERY_TILE, n_q) - 1;
    const int key_end = causal ? clamp(last_row + shift + 1, 0, n_k) : n_k;
    for (int first = 0; first < key_end; first += KEY_TILE) {
        barrier(CLK_LOCAL_MEM_FENCE);
        stage_key_range(k_tile, v_tile, key_pos, kh, vh, first, KEY_TILE, key_end, lid,
                        QUERY_TILE);
        barrier(CLK_LOCAL_MEM_FENCE);
        attend_tile(q_row, acc, &running_max, &running_sum, k_tile, v_tile, key_pos, q_pos,
                    causal, 0, 0);
    }
    if (row < n_q) store_row(o, ((size_t)head * n_q + row) * HEAD_DIM, acc, running_sum);
}
