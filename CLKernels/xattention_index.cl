/*
 * xattention_index.cl: XAttention's block selection (docs/PREFILL-METHODS.md section 4), for every
 * XAttention head of a layer in one launch per step. B = block size, S = stride, R = B / S
 * strided rows per block; query row i of the problem sits at key position shift + i, and a chunk
 * (shift > 0) starts on a block boundary.
 *
 *   strided rows   Q'[r] = (q[S r], q[S r + 1], ..., q[S r + S - 1])            (S * d values)
 *                  K'[c] = (k[S c + S - 1], ..., k[S c])      reversed, so that
 *   antidiagonal   A[r, c] = Q'[r] . K'[c] = sum_t q[S r + S - 1 - t] . k[S c + t]   (zero past N)
 *                  A comes from a GEMM (CLBlast, or linear_nv_mma.cl on NVIDIA) and is rounded to
 *                  the input dtype, as upstream stores it                        (4.4, Triton)
 *   block scores   Sc[m, n] = sum over the R rows r of query block m and the R columns c <= r of
 *                  key block n of softmax_c(A[r, c] / (S sqrt(d) norm)) over c <= r;
 *                  rows r >= ceil(N / S) (all padding) count nothing; Sc rounded to the dtype (4.5)
 *   counts         per query block, how many non-forced blocks the threshold rule takes (4.7);
 *                  the forced blocks' scores become +inf, so topk.cl then takes exactly the
 *                  selection: forced blocks, the counted largest others, block 0
 */
#include "mass_threshold.h"

#ifndef XATTN_STRIDE
#define XATTN_STRIDE 8 /* S */
#endif
#ifndef XATTN_BLOCK
#define XATTN_BLOCK 128 /* B */
#endif
#define XATTN_ROWS (XATTN_BLOCK / XATTN_STRIDE) /* R: strided rows (and columns) per block */
#define STRIDED_WIDTH (XATTN_STRIDE * HEAD_DIM)
#ifndef SUM_THREADS
#define SUM_THREADS 128 /* work-items per query block in xattn_block_sums; a power of 2 */
#endif

/* A value as the input dtype stores it (upstream keeps A and Sc in the model's dtype). */
INLINE float round_to_input(float x) {
#if INPUT_DTYPE == DTYPE_F16
    ushort bits;
    vstore_half_rte(x, 0, (__private half*)&bits);
    return vload_half(0, (__private const half*)&bits);
#elif INPUT_DTYPE == DTYPE_BF16
    return bf16_to_float(float_to_bf16(x));
#else
    return x;
#endif
}

/* How the antidiagonal scores A are stored: fp32 from CLBlast (rounded to the input dtype when
 * read), or already in the input dtype from the tensor-core GEMM (SCORES_F16, SCORES_BF16). */
#if defined(SCORES_F16)
typedef ushort score_t;
#define LOAD_SCORE(p, i) vload_half((i), (__global const half*)(p))
#elif defined(SCORES_BF16)
typedef ushort score_t;
#define LOAD_SCORE(p, i) bf16_to_float((p)[i])
#else
typedef float score_t;
#define LOAD_SCORE(p, i) round_to_input((p)[i])
#endif

/* Strided rows of `count` heads: out[h][r] = Q'[first_row + r] (reverse 0) or K'[first_row + r]
 * (reverse 1) of head heads_of[h], rows of `rows` positions read through the layout; positions at
 * or past `length` are zero. fp32 rows, or fp16 bits with STRIDED_HALF (the tensor-core GEMM's
 * input). Work: global (S * d, rows, count). */
#ifdef STRIDED_HALF
typedef ushort strided_t;
#else
typedef float strided_t;
#endif
__kernel void xattn_strided_rows(__global const in_t* x, layout_t layout, __global const int* heads_of, int heads,
                                 int first_row, int rows, int length, int reverse, __global strided_t* out) {
    const int e = get_global_id(0), r = get_global_id(1), h = get_global_id(2);
    if (e >= STRIDED_WIDTH || r >= rows) return;
    const int part = e / HEAD_DIM, channel = e % HEAD_DIM;
    const int position = (first_row + r) * XATTN_STRIDE + (reverse ? XATTN_STRIDE - 1 - part : part);
    const float value = position < length
        ? LOAD_IN(x, head_origin(layout, heads_of[h], heads) + (size_t)position * TOKEN_STRIDE(layout) + channel) : 0.0f;
    const size_t index = ((size_t)h * rows + r) * STRIDED_WIDTH + e;
#ifdef STRIDED_HALF
    vstore_half_rte(value, index, (__global half*)out);
#else
    out[index] = value;
#endif
}

/* Block scores of the query blocks [first_block, first_block + blocks) of a chunk of A.
 * A: [slots, blocks * R, a_columns] (score_t), row (b - first_block) * R + i is strided row
 * (block_base + b) * R + i; its columns are the strided key columns from 0. scores: [slots,
 * query_blocks, key_blocks] fp32 row-major (query block b of the problem = row b), causal entries
 * n <= block_base + b written. Work: global (SUM_THREADS * blocks, slots), local (SUM_THREADS, 1). */
__kernel __attribute__((reqd_work_group_size(SUM_THREADS, 1, 1)))
void xattn_block_sums(__global const score_t* a, int a_columns, int first_block, int blocks, int block_base,
                      int real_rows, __global float* scores, int query_blocks, int key_blocks, float scale_log2) {
    __local float row_max[XATTN_ROWS];
    __local float row_inv[XATTN_ROWS];
    __local float partial[SUM_THREADS];
    __local float partial_max[SUM_THREADS];
    const int b = first_block + get_group_id(0);
    const int slot = get_group_id(1);
    const int lid = get_local_id(0);
    const int block = block_base + b; /* absolute query block: key blocks 0 .. block are causal */
    __global const score_t* rows = a + ((size_t)slot * blocks + (b - first_block)) * XATTN_ROWS * a_columns;

    for (int i = 0; i < XATTN_ROWS; ++i) {
        const int r = block * XATTN_ROWS + i; /* absolute strided row: columns 0 .. r are visible */
        __global const score_t* x = rows + (size_t)i * a_columns;
        /* online softmax statistics in one pass: running maximum m, sum l of exp2(v - m). As in
         * a float64 softmax, a NaN or +inf logit makes l NaN (1 + (v - v): 1, or NaN for +inf),
         * a NaN never raises m, and -inf adds exactly 0 (also while m is still -inf). */
        float m = -INFINITY, l = 0.0f;
        if (r < real_rows)
            for (int c = lid; c <= r; c += SUM_THREADS) {
                const float v = LOAD_SCORE(x, c) * scale_log2;
                if (v > m) {
                    l = l * exp2(m - v) + (1.0f + (v - v));
                    m = v;
                } else {
                    l += v == -INFINITY ? 0.0f : exp2(v - m);
                }
            }
        partial_max[lid] = m;
        partial[lid] = l;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = SUM_THREADS / 2; s > 0; s >>= 1) {
            if (lid < s) {
                const float m2 = partial_max[lid + s], m1 = partial_max[lid];
                const float top = fmax(m1, m2); /* m is never NaN */
                /* a part whose m is -inf holds 0 or NaN (NaN logits only): l * exp2(-inf) keeps
                 * that NaN, and with both at -inf the sums just add */
                partial[lid] = top > -INFINITY ? partial[lid] * exp2(m1 - top) + partial[lid + s] * exp2(m2 - top)
                                               : partial[lid] + partial[lid + s];
                partial_max[lid] = top;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        if (lid == 0) {
            row_max[i] = partial_max[0];
            row_inv[i] = r < real_rows ? 1.0f / partial[0] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    __global float* out = scores + ((size_t)slot * query_blocks + b) * key_blocks;
    for (int n = lid; n <= block && n < key_blocks; n += SUM_THREADS) {
        float sum = 0.0f;
        for (int i = 0; i < XATTN_ROWS; ++i) {
            const int r = block * XATTN_ROWS + i;
            if (r >= real_rows) break;
            const int last = min(r, n * XATTN_ROWS + XATTN_ROWS - 1);
            __global const score_t* x = rows + (size_t)i * a_columns;
            float row = 0.0f;
            for (int c = n * XATTN_ROWS; c <= last; ++c) row += exp2(LOAD_SCORE(x, c) * scale_log2 - row_max[i]);
            sum += row * row_inv[i];
        }
        out[n] = round_to_input(sum);
    }
}

/* Per selection row (slot, query block b): the count of non-forced key blocks the threshold rule
 * takes, as topk.cl's k, and +inf written over the forced blocks' scores.
 *
 *   T = sum of the causal scores, R = threshold * T (the threshold in three fp32 parts: the host's
 *   float64 value); F = {m, 0} for query blocks m >= first_chunk_blocks, F = {m} before (block 0
 *   is not forced in upstream's first chunk); others sorted by score (ties: smaller index).
 *   |F| = 2: others taken while  sum_F + (mass of the others already taken) < R
 *   |F| = 1: the first other always, then each while sum_F + (mass taken before the previous
 *            one) < R: upstream's running sum lags one block (docs/PREFILL-METHODS.md 4.7)
 *   block 0 is always selected: forced when it is not among the taken others.
 * `padded_blocks` (upstream's nb = ceil(N / C) C / B) bounds the count, its zero-score blocks being
 * "others" too. Work: global (MASS_THREADS * rows), local (MASS_THREADS); rows = slots *
 * query_blocks, row b of a slot being absolute query block block_base + b. */
__kernel __attribute__((reqd_work_group_size(MASS_THREADS, 1, 1)))
void xattn_counts(__global float* scores, int key_blocks, int query_blocks, int block_base, int padded_blocks,
                  int first_chunk_blocks, float threshold_high, float threshold_middle, float threshold_low,
                  __global int* k_out) {
    __local mass_t mass_scratch[MASS_THREADS];
    __local uint count_scratch[MASS_THREADS];
    const int row = get_group_id(0);
    const int m = block_base + row % query_blocks;
    __global float* x = scores + (size_t)row * key_blocks;
    const int n = m + 1; /* causal entries */
    const int zero_forced = m >= first_chunk_blocks && m > 0;
    const int skip1 = zero_forced ? 0 : -1;
    mass_t total = 0;
    for (int i = get_local_id(0); i < n; i += MASS_THREADS) total += (mass_t)x[i];
    total = group_mass_sum(total, mass_scratch);
    const mass_t limit = exact_parameter(threshold_high, threshold_middle, threshold_low) * total;
    const mass_t base = (mass_t)x[m] + (zero_forced ? (mass_t)x[0] : 0);
    const int p = largest_prefix_within(x, n, m, skip1, base, limit, 1, mass_scratch, count_scratch);
    const int forced = zero_forced ? 2 : 1;
    const int others = padded_blocks - forced;
    int taken;
    if (zero_forced || m == 0) taken = p < 0 ? 0 : min(others, p + 1);
    else taken = p < 0 ? min(others, 1) : min(others, p + 2);
    /* block 0 outside the forced set: selected anyway; force it unless the count already takes it */
    int force_zero = zero_forced;
    if (!zero_forced && m > 0) {
        const uint key0 = as_uint(x[0]);
        uint rank = 0u; /* others ranked above block 0: larger scores (block 0 wins every tie) */
        for (int i = get_local_id(0) + 1; i < n; i += MASS_THREADS) rank += i != m && as_uint(x[i]) > key0;
        rank = group_count_sum(rank, count_scratch);
        force_zero = (int)rank >= taken;
    }
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    if (get_local_id(0) == 0) {
        x[m] = INFINITY;
        if (force_zero) x[0] = INFINITY;
        k_out[row] = taken + 1 + (force_zero && m > 0 ? 1 : 0);
    }
}
