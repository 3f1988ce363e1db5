/*
 * block_sparse_index.cl: the mean-pooled queries and keys of MInference's block-sparse
 * estimate (docs/MINFERENCE.md section 7). Block scores are then pooled_q . pooled_k^T (a batched
 * GEMM: CLBlast, or block_scores below) and top-k per query block (topk.cl, causal rows).
 *
 *   pooled[h, m, c] = (sum of x[h, i, c] over i in [64m, 64m + 64), i < N) / 64
 *
 * Positions are key positions: keys pool blocks 0 .. nb - 1; the queries of a chunk (Nq < Nk,
 * query row i at position Nk - Nq + i) pool the blocks from first_block = (Nk - Nq) / 64 on, over
 * the rows they hold (all 64 when Nk - Nq is a multiple of 64: then the pooled blocks are the
 * whole prompt's). Scores and top-k rows are per pooled query block.
 *
 * Dividing by 64 in the last, partial block follows upstream, which zero-pads to a multiple of
 * 64 before taking the mean (so its rows count as zeros). Upstream also pads a length that is
 * already a multiple of 64 by one whole zero block: nb = floor(N / 64) + 1 blocks.
 */
#include "attention_common.h"

#define POOL_ROWS 64

/* Pools `blocks` blocks from position first_block * 64 of x (n rows, row i at position
 * shift + i, read through its layout; `heads` per batch entry). Work: global (HEAD_DIM, blocks,
 * slots); `slots` maps the third index to a flattened head (identity for keys). */
__kernel void block_mean_pool(__global const in_t* x, layout_t layout, __global const int* slots,
                              __global float* pooled, int n, int shift, int first_block, int blocks,
                              int heads) {
    const int c = get_global_id(0);
    const int m = get_global_id(1);
    const int slot = get_global_id(2);
    if (c >= HEAD_DIM || m >= blocks) return;
    __global const in_t* xh = x + head_origin(layout, slots[slot], heads);
    const int first = max((first_block + m) * POOL_ROWS - shift, 0);
    const int last = min((first_block + m + 1) * POOL_ROWS - shift, n);
    float sum = 0.0f;
    for (int i = first; i < last; ++i) sum += LOAD_IN(xh, (size_t)i * TOKEN_STRIDE(layout) + c);
    pooled[((size_t)slot * blocks + m) * HEAD_DIM + c] = sum * (1.0f / POOL_ROWS);
}

/* Tiling of block_scores: SCORE_TILE x SCORE_TILE scores per work-group of
 * (SCORE_TILE / SCORE_PER_THREAD)^2 work-items, each SCORE_PER_THREAD^2 of them in registers;
 * SCORE_DEPTH channels staged in local memory per step. */
#ifndef SCORE_TILE
#define SCORE_TILE 64
#endif
#ifndef SCORE_PER_THREAD
#define SCORE_PER_THREAD 4
#endif
#ifndef SCORE_DEPTH
#define SCORE_DEPTH (HEAD_DIM % 16 == 0 ? 16 : 8)
#endif
#define SCORE_SIDE (SCORE_TILE / SCORE_PER_THREAD) /* work-items per side */
#define SCORE_THREADS (SCORE_SIDE * SCORE_SIDE)
#if SCORE_PER_THREAD != 4 || HEAD_DIM % SCORE_DEPTH != 0 || SCORE_DEPTH % 4 != 0
#error "block_scores: SCORE_PER_THREAD must be 4 (float4 rows), SCORE_DEPTH a multiple of 4 dividing HEAD_DIM"
#endif

/* Stages rows [first, first + SCORE_TILE) x channels [c0, c0 + SCORE_DEPTH) of `x` ([blocks,
 * HEAD_DIM]) transposed into tile[channel][row]; rows past `blocks` are 0. */
INLINE void stage_pooled(__local float* tile, __global const float* x, int first, int blocks, int c0, int lid) {
    for (int e = lid; e < SCORE_TILE * SCORE_DEPTH / 4; e += SCORE_THREADS) {
        const int r = e / (SCORE_DEPTH / 4), c = (e % (SCORE_DEPTH / 4)) * 4;
        const float4 x4 = first + r < blocks ? vload4(0, x + (size_t)(first + r) * HEAD_DIM + c0 + c) : (float4)(0.0f);
        tile[(c + 0) * SCORE_TILE + r] = x4.s0;
        tile[(c + 1) * SCORE_TILE + r] = x4.s1;
        tile[(c + 2) * SCORE_TILE + r] = x4.s2;
        tile[(c + 3) * SCORE_TILE + r] = x4.s3;
    }
}

/* scores[slot, m, b] = pooled_q[slot, m] . pooled_k[kv(slot), b] for b <= first_block + m (the
 * rest is never read, so tiles above the diagonal are skipped: half a GEMM's work in prefill).
 * pooled_q holds q_blocks blocks per slot (from first_block on), pooled_k `blocks` per KV head;
 * scores are [slots, q_blocks, blocks]. The portable stand-in for the CLBlast GEMM, fp32 like
 * it. Work: global (Tk * SCORE_SIDE, Tq * SCORE_SIDE, slots), local (SCORE_SIDE, SCORE_SIDE, 1),
 * Tk = ceil(blocks / SCORE_TILE), Tq = ceil(q_blocks / SCORE_TILE). */
__kernel __attribute__((reqd_work_group_size(SCORE_SIDE, SCORE_SIDE, 1)))
void block_scores(__global const float* pooled_q, __global const float* pooled_k,
                  __global const int* slots, __global float* scores, int q_blocks, int blocks,
                  int first_block, int heads_q, int heads_kv) {
    const int tile_b = get_group_id(0), tile_m = get_group_id(1), slot = get_group_id(2);
    /* above the diagonal: the whole work-group leaves */
    if (tile_b * SCORE_TILE > first_block + tile_m * SCORE_TILE + SCORE_TILE - 1) return;
    const int tx = get_local_id(0), ty = get_local_id(1), lid = ty * SCORE_SIDE + tx;
    const int kv = kv_head_of(slots[slot], heads_q, heads_kv);
    __global const float* qh = pooled_q + (size_t)slot * q_blocks * HEAD_DIM;
    __global const float* kh = pooled_k + (size_t)kv * blocks * HEAD_DIM;
    __local float q_tile[SCORE_DEPTH * SCORE_TILE] __attribute__((aligned(16)));
    __local float k_tile[SCORE_DEPTH * SCORE_TILE] __attribute__((aligned(16)));
    float4 acc[SCORE_PER_THREAD];
    for (int i = 0; i < SCORE_PER_THREAD; ++i) acc[i] = (float4)(0.0f);
    for (int c0 = 0; c0 < HEAD_DIM; c0 += SCORE_DEPTH) {
        barrier(CLK_LOCAL_MEM_FENCE); /* the last step's reads are done */
        stage_pooled(q_tile, qh, tile_m * SCORE_TILE, q_blocks, c0, lid);
        stage_pooled(k_tile, kh, tile_b * SCORE_TILE, blocks, c0, lid);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int c = 0; c < SCORE_DEPTH; ++c) {
            /* rows ty*4.., columns tx*4..: one float4 each from the transposed tiles */
            const float4 a = vload4(ty, q_tile + c * SCORE_TILE);
            const float4 b = vload4(tx, k_tile + c * SCORE_TILE);
            acc[0] = fma((float4)(a.s0), b, acc[0]);
            acc[1] = fma((float4)(a.s1), b, acc[1]);
            acc[2] = fma((float4)(a.s2), b, acc[2]);
            acc[3] = fma((float4)(a.s3), b, acc[3]);
        }
    }
    for (int i = 0; i < SCORE_PER_THREAD; ++i) {
        const int m = tile_m * SCORE_TILE + ty * SCORE_PER_THREAD + i;
        if (m >= q_blocks) continue;
        const float row[4] = {acc[i].s0, acc[i].s1, acc[i].s2, acc[i].s3};
        for (int j = 0; j < SCORE_PER_THREAD; ++j) {
            const int b = tile_b * SCORE_TILE + tx * SCORE_PER_THREAD + j;
            if (b <= first_block + m && b < blocks) scores[((size_t)slot * q_blocks + m) * blocks + b] = row[j];
        }
    }
}
