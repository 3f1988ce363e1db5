/*
 * attention_map.cl: a picture of one head's dense causal attention matrix, pooled to an S x S
 * grid of cells (S <= n), from the row statistics of recall.cl (dense_row_stats):
 *
 *   P_ij = 2^(s_ij - m_i) / l_i for j <= i (0 above the diagonal), s_ij = q_i . k_j * scale * log2 e
 *   cell (r, c) = rows [floor(r n / S), floor((r + 1) n / S)) x the same range of keys for c
 *   POOL_MAX:  the largest P_ij over the cell's causal pairs
 *   POOL_MEAN: the sum of P_ij over the cell divided by its area (zeros above the diagonal count)
 *   a cell without a causal pair is -1 (drawn as background); a cell holding a row whose
 *   statistics are NaN (the row read a NaN or +inf score) is NaN, whichever pooling
 *
 * Layout: q [B*Hq, n, HEAD_DIM], k [B*Hkv, n, HEAD_DIM]; row_max / row_sum [B*Hq, n] (recall.cl);
 * map [slots, S, S] fp32, row-major, slot s showing flattened query head heads[s].
 * Work: global (S, S, slots), one work-item per cell reading q and k from global memory. A
 * diagnostic that runs once per layer: it repeats the dense QK^T work once, in O(S^2) memory.
 */
#include "attention_common.h"

#define POOL_MAX 0
#define POOL_MEAN 1

__kernel void attention_map(__global const in_t* q, __global const in_t* k,
                            __global const int* heads,
                            __global const float* row_max, __global const float* row_sum, int n,
                            int heads_q, int heads_kv, float scale_log2, int cells, int pooling,
                            __global float* map) {
    const int c = get_global_id(0);
    const int r = get_global_id(1);
    const int slot = get_global_id(2);
    if (c >= cells || r >= cells) return;
    const int head = heads[slot];
    const int row_begin = (int)((long)r * n / cells), row_end = (int)((long)(r + 1) * n / cells);
    const int key_begin = (int)((long)c * n / cells), key_end = (int)((long)(c + 1) * n / cells);
    __global const in_t* kh = k + (size_t)kv_head_of(head, heads_q, heads_kv) * n * HEAD_DIM;
    float pooled = 0.0f;
    int causal_pairs = 0;
    for (int i = max(row_begin, key_begin); i < row_end; ++i) {
        const size_t stat = (size_t)head * n + i;
        const float m_i = row_max[stat], inv_l = 1.0f / row_sum[stat];
        float8 q_row[HEAD_VEC];
        for (int v = 0; v < HEAD_VEC; ++v) {
            float x[8];
            const size_t offset = ((size_t)head * n + i) * HEAD_DIM + 8 * v;
            for (int e = 0; e < 8; ++e) x[e] = LOAD_IN(q, offset + e) * scale_log2;
            q_row[v] = vload8(0, x);
        }
        const int last = min(key_end, i + 1);
        for (int j = key_begin; j < last; ++j) {
            float8 dot = (float8)(0.0f);
            for (int v = 0; v < HEAD_VEC; ++v) {
                float x[8];
                for (int e = 0; e < 8; ++e) x[e] = LOAD_IN(kh, (size_t)j * HEAD_DIM + 8 * v + e);
                dot = fma(q_row[v], vload8(0, x), dot);
            }
            const float p = exp2(horizontal_sum8(dot) - m_i) * inv_l;
            /* a NaN p (the row's l_i is NaN: it read a non-finite value) stays: fmax would drop it */
            pooled = pooling == POOL_MAX ? (p > pooled || isnan(p) ? p : pooled) : pooled + p;
        }
        causal_pairs += max(0, last - key_begin);
    }
    const float area = (float)(row_end - row_begin) * (float)(key_end - key_begin);
    map[((size_t)slot * cells + r) * cells + c] =
        causal_pairs == 0 ? -1.0f : (pooling == POOL_MAX ? pooled : pooled / area);
}
