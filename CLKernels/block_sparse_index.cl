/*
 * block_sparse_index.cl: the mean-pooled queries and keys of MInference's block-sparse
 * estimate (MINFERENCE.md section 7). Block scores are then pooled_q . pooled_k^T (a batched
 * GEMM: CLBlast, or block_scores below) and top-k per query block (topk.cl, causal rows).
 *
 *   pooled[h, m, c] = (sum of x[h, i, c] over i in [64m, 64m + 64), i < N) / 64
 *
 * Dividing by 64 in the last, partial block follows upstream, which zero-pads to a multiple of
 * 64 before taking the mean (so its rows count as zeros). Upstream also pads a length that is
 * already a multiple of 64 by one whole zero block: nb = floor(N / 64) + 1 blocks.
 */
#include "attention_common.h"

#define POOL_ROWS 64

/* Work: global (HEAD_DIM, nb, heads); `slots` maps the third index to a flattened head
 * (identity for keys). */
__kernel void block_mean_pool(__global const in_t* x, __global const int* slots, __global float* pooled,
                              int n, int blocks) {
    const int c = get_global_id(0);
    const int m = get_global_id(1);
    const int slot = get_global_id(2);
    if (c >= HEAD_DIM || m >= blocks) return;
    const int head = slots[slot];
    const int first = m * POOL_ROWS, last = min(first + POOL_ROWS, n);
    float sum = 0.0f;
    for (int i = first; i < last; ++i) sum += LOAD_IN(x, ((size_t)head * n + i) * HEAD_DIM + c);
    pooled[((size_t)slot * blocks + m) * HEAD_DIM + c] = sum * (1.0f / POOL_ROWS);
}

/* scores[slot, m, b] = pooled_q[slot, m] . pooled_k[kv(slot), b] for b <= m (the rest is never
 * read). Portable stand-in for the CLBlast GEMM. Work: global (nb, nb, slots). */
__kernel void block_scores(__global const float* pooled_q, __global const float* pooled_k,
                           __global const int* slots, __global float* scores, int blocks, int heads_q,
                           int heads_kv) {
    const int b = get_global_id(0);
    const int m = get_global_id(1);
    const int slot = get_global_id(2);
    if (b >= blocks || m >= blocks || b > m) return;
    const int kv = kv_head_of(slots[slot], heads_q, heads_kv);
    __global const float* qr = pooled_q + ((size_t)slot * blocks + m) * HEAD_DIM;
    __global const float* kr = pooled_k + ((size_t)kv * blocks + b) * HEAD_DIM;
    float8 dot = (float8)(0.0f);
    for (int c = 0; c < HEAD_VEC; ++c) dot = fma(vload8(c, qr), vload8(c, kr), dot);
    scores[((size_t)slot * blocks + m) * blocks + b] = horizontal_sum8(dot);
}
