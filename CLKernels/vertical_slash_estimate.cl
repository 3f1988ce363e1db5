/*
 * vertical_slash_estimate.cl: MInference's online estimate of a vertical-slash head
 * (docs/MINFERENCE.md section 4), for every vertical-slash head of a layer in one launch per step.
 *
 *   X[r, j]   = q[Nq - L + r] . k[j] * scale        r < L = min(LAST_Q, Nq), j < N = Nk
 *   P[r, j]   = softmax_j(X[r, j]) over j <= N - L + r   (fp32, causal mask of the last block)
 *   column[j] = sum_r P[r, j]                 +inf for j < FORCED_COLUMNS
 *   diag[o]   = sum_r P[r, N - L + r - o]     +inf for o < FORCED_DIAGONALS  (o = i - j >= 0)
 *
 * Query row Nq - L + r sits at key position N - L + r: in prefill (Nq = Nk) these are the last
 * L queries; in a chunk of it (Nq < Nk) the chunk's last L, which are the prompt's last L when
 * Nq >= LAST_Q (the same estimate as the whole prompt), else the chunk's own Nq queries.
 *
 * Heads are addressed through `slots`: slot s of the launch is flattened query head slots[s]
 * (batch * Hq + h); q and k are read through their layouts (attention_common.h). Buffers:
 * logits [slots, L, N] fp32, row_max / row_inv_sum [slots, L], scores [2 * slots, N] fp32 (rows
 * 0..slots-1 column scores, then the diagonal scores), so one top-k launch selects verticals and
 * slashes together.
 */
#include "attention_common.h"

#ifndef LAST_Q
#define LAST_Q 64 /* queries the estimate looks at (upstream's last_q) */
#endif
#ifndef LOGIT_COLUMNS
#define LOGIT_COLUMNS 64 /* key columns per work-group in vs_logits, one per work-item */
#endif
#ifndef STATS_THREADS
#define STATS_THREADS 256 /* work-items reducing one logits row in vs_row_stats; a power of 2 */
#endif
#ifndef FORCED_COLUMNS
#define FORCED_COLUMNS 30 /* upstream's forced verticals (FlexPrefill's estimate forces none: 0) */
#endif
#ifndef FORCED_DIAGONALS
#define FORCED_DIAGONALS 100
#endif

/* Logits of the last L queries against every key. Work: global (ceil(N / LOGIT_COLUMNS) *
 * LOGIT_COLUMNS, slots), local (LOGIT_COLUMNS, 1). Masked entries are written too; the
 * softmax steps skip them. */
__kernel __attribute__((reqd_work_group_size(LOGIT_COLUMNS, 1, 1)))
void vs_logits(__global const in_t* q, layout_t q_layout, __global const in_t* k, layout_t k_layout,
               __global const int* slots, __global float* logits, int n_q, int n, int heads_q,
               int heads_kv, float scale) {
    __local float q_tile[LAST_Q * HEAD_DIM];
    const int slot = get_group_id(1);
    const int head = slots[slot];
    const int lid = get_local_id(0);
    const int j = get_global_id(0);
    const int rows = min(LAST_Q, n_q);
    __global const in_t* qh = q + head_origin(q_layout, head, heads_q) + (size_t)(n_q - rows) * TOKEN_STRIDE(q_layout);
    for (int e = lid; e < rows * HEAD_DIM; e += LOGIT_COLUMNS)
        q_tile[e] = LOAD_IN(qh, (size_t)(e / HEAD_DIM) * TOKEN_STRIDE(q_layout) + e % HEAD_DIM) * scale;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (j >= n) return;
    __global const in_t* kr = k + head_origin(k_layout, kv_head_of(head, heads_q, heads_kv), heads_kv)
                              + (size_t)j * TOKEN_STRIDE(k_layout);
    float8 key[HEAD_VEC];
    for (int c = 0; c < HEAD_VEC; ++c) {
        float x[8];
        for (int e = 0; e < 8; ++e) x[e] = LOAD_IN(kr, 8 * c + e);
        key[c] = vload8(0, x);
    }
    __global float* out = logits + (size_t)slot * rows * n + j;
    for (int r = 0; r < rows; ++r) {
        float8 dot = (float8)(0.0f);
        for (int c = 0; c < HEAD_VEC; ++c) dot = fma(vload8(c, q_tile + r * HEAD_DIM), key[c], dot);
        out[(size_t)r * n] = horizontal_sum8(dot);
    }
}

/* Copies the last L queries of each slot, times `scale`, into fp32 [slots, L, HEAD_DIM]: the
 * left operand of the CLBlast estimation GEMM. Work: global (L * HEAD_DIM, slots). */
__kernel void vs_gather_last_queries(__global const in_t* q, layout_t q_layout, __global const int* slots,
                                     __global float* last_queries, int n_q, int heads_q, float scale) {
    const int e = get_global_id(0);
    const int slot = get_global_id(1);
    const int rows = min(LAST_Q, n_q);
    if (e >= rows * HEAD_DIM) return;
    const size_t src = head_origin(q_layout, slots[slot], heads_q)
                       + (size_t)(n_q - rows + e / HEAD_DIM) * TOKEN_STRIDE(q_layout) + e % HEAD_DIM;
    last_queries[(size_t)slot * rows * HEAD_DIM + e] = LOAD_IN(q, src) * scale;
}

/* Copies the rows of every head of x (`heads` per batch entry, `n` rows each, read through its
 * layout) into contiguous fp32 [batch * heads, n, HEAD_DIM]: the right operand of the CLBlast
 * estimation GEMM. Work: global (HEAD_DIM, n, batch * heads). */
__kernel void widen_to_float(__global const in_t* x, layout_t layout, __global float* y, int n, int heads) {
    const int c = get_global_id(0), i = get_global_id(1), head = get_global_id(2);
    if (c >= HEAD_DIM || i >= n) return;
    y[((size_t)head * n + i) * HEAD_DIM + c] = LOAD_IN(x, head_origin(layout, head, heads) + (size_t)i * TOKEN_STRIDE(layout) + c);
}

/* Row maximum and 1 / sum of exp over the visible keys j <= N - L + r of one logits row.
 * Work: global (STATS_THREADS * L, slots), local (STATS_THREADS, 1). */
__kernel __attribute__((reqd_work_group_size(STATS_THREADS, 1, 1)))
void vs_row_stats(__global const float* logits, __global float* row_max, __global float* row_inv_sum,
                  int rows, int n) {
    __local float partial[STATS_THREADS];
    const int r = get_group_id(0);
    const int slot = get_group_id(1);
    const int lid = get_local_id(0);
    const int visible = n - rows + r + 1;
    __global const float* x = logits + ((size_t)slot * rows + r) * n;
    float m = -INFINITY;
    for (int j = lid; j < visible; j += STATS_THREADS) m = fmax(m, x[j]);
    partial[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = STATS_THREADS / 2; stride > 0; stride /= 2) {
        if (lid < stride) partial[lid] = fmax(partial[lid], partial[lid + stride]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    m = partial[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    float s = 0.0f;
    for (int j = lid; j < visible; j += STATS_THREADS) s += exp(x[j] - m);
    partial[lid] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = STATS_THREADS / 2; stride > 0; stride /= 2) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        row_max[slot * rows + r] = m;
        row_inv_sum[slot * rows + r] = 1.0f / partial[0];
    }
}

/* Column scores (vertical) and diagonal scores (slash) of one slot. Work: global (N, slots);
 * work-item (x, slot) computes column x and diagonal offset x. */
__kernel void vs_scores(__global const float* logits, __global const float* row_max,
                        __global const float* row_inv_sum, __global float* scores, int rows, int n,
                        int slot_count) {
    const int x = get_global_id(0);
    const int slot = get_global_id(1);
    if (x >= n) return;
    __global const float* lg = logits + (size_t)slot * rows * n;
    __global const float* mx = row_max + slot * rows;
    __global const float* inv = row_inv_sum + slot * rows;
    float column = 0.0f, diagonal = 0.0f;
    for (int r = 0; r < rows; ++r) {
        const int last_visible = n - rows + r; /* query position of row r */
        if (x <= last_visible) column += exp(lg[(size_t)r * n + x] - mx[r]) * inv[r];
        const int j = last_visible - x;         /* the key on diagonal x in row r */
        if (j >= 0) diagonal += exp(lg[(size_t)r * n + j] - mx[r]) * inv[r];
    }
    scores[(size_t)slot * n + x] = x < FORCED_COLUMNS ? INFINITY : column;
    scores[(size_t)(slot_count + slot) * n + x] = x < FORCED_DIAGONALS ? INFINITY : diagonal;
}
