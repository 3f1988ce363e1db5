/*
 * attention_common.h: element types and helpers shared by every kernel family (dense, A-shape,
 * vertical-slash, block-sparse, estimation).
 *
 * Layout of q, k, v and the output in global memory: any (batch, head, token) strides with the
 * HEAD_DIM channels of a row contiguous, described by a layout_t per tensor (below): [B, H, N, d]
 * C order, FlashAttention's [B, N, H, d], or a view into a caller's larger buffer. Query head h of
 * a batch reads KV head h / (heads_q / heads_kv) of the same batch (grouped-query attention
 * without copying K/V). Work buffers of the index builders are contiguous.
 *
 * Softmax runs in the log2 domain: the host folds log2(e) into the scale, so a score is
 * q . k * scale * log2(e) and probabilities are exp2(score - running_max).
 *
 * This header holds what every kernel shares (element types, head mapping, visibility, the
 * portable fp32 row math); attention_path.h picks the tile path of the attention kernels.
 */
#ifndef MINFERENCECL_ATTENTION_COMMON_H
#define MINFERENCECL_ATTENTION_COMMON_H

/* Helpers are always inlined: C99 `inline` alone leaves an external reference when a compiler
 * declines to inline, and the register arrays of the tile paths must not go through memory. */
#define INLINE static inline __attribute__((always_inline))

/* ---- Element types ----------------------------------------------------------------------- */
#define DTYPE_F32 0
#define DTYPE_F16 1
#define DTYPE_BF16 2

#ifndef INPUT_DTYPE
#define INPUT_DTYPE DTYPE_F16 /* dtype of q, k and v */
#endif
#ifndef OUTPUT_DTYPE
#define OUTPUT_DTYPE INPUT_DTYPE /* dtype of the attention output */
#endif
#ifndef HEAD_DIM
#define HEAD_DIM 128 /* elements per query/key/value row; a multiple of 8 */
#endif
#if HEAD_DIM % 8 != 0
#error "HEAD_DIM must be a multiple of 8"
#endif
#ifndef KEY_TILE
#define KEY_TILE 32 /* portable path: keys staged in local memory per step (local: 8 * KEY_TILE * HEAD_DIM bytes) */
#endif
#if KEY_TILE > 64 || KEY_TILE < 4 || KEY_TILE % 4 != 0
#error "KEY_TILE must be a multiple of 4 in 4...64"
#endif
#define HEAD_VEC (HEAD_DIM / 8)
INLINE float horizontal_sum8(float8 v) {
    const float4 h = v.lo + v.hi;
    return (h.x + h.y) + (h.z + h.w);
}

/* fp16 travels through vload_half / vstore_half, which need no cl_khr_fp16; bf16 is stored as
 * raw 16-bit words and widened by a shift. */
#if INPUT_DTYPE == DTYPE_F32
typedef float in_t;
#define LOAD_IN(p, i) ((p)[i])
#elif INPUT_DTYPE == DTYPE_F16
typedef half in_t;
#define LOAD_IN(p, i) vload_half((i), (p))
#elif INPUT_DTYPE == DTYPE_BF16
typedef ushort in_t;
#define LOAD_IN(p, i) bf16_to_float((p)[i])
#else
#error "INPUT_DTYPE must be DTYPE_F32, DTYPE_F16 or DTYPE_BF16"
#endif

#if OUTPUT_DTYPE == DTYPE_F32
typedef float out_t;
#define STORE_OUT(p, i, x) ((p)[i] = (x))
#elif OUTPUT_DTYPE == DTYPE_F16
typedef half out_t;
#define STORE_OUT(p, i, x) vstore_half_rte((x), (i), (p))
#elif OUTPUT_DTYPE == DTYPE_BF16
typedef ushort out_t;
#define STORE_OUT(p, i, x) ((p)[i] = float_to_bf16(x))
#else
#error "OUTPUT_DTYPE must be DTYPE_F32, DTYPE_F16 or DTYPE_BF16"
#endif

INLINE float bf16_to_float(ushort x) { return as_float(((uint)x) << 16); }

/* Round to nearest even; NaN stays NaN (a quiet bit is forced so truncation cannot make Inf). */
INLINE ushort float_to_bf16(float x) {
    uint u = as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

/* ---- Non-finite tests on bits (an all-ones exponent: NaN or infinity) -------------------------
 * On bits, so that no compiler's finite-math assumption folds them away. A 32-bit word holds one
 * fp32 element or two 16-bit ones. */
#if INPUT_DTYPE == DTYPE_F32
#define ELEMENT_EXPONENT 0x7f800000u
#define ELEMENTS_PER_WORD 1
#elif INPUT_DTYPE == DTYPE_F16
#define ELEMENT_EXPONENT 0x7c00u
#define ELEMENTS_PER_WORD 2
#else
#define ELEMENT_EXPONENT 0x7f80u
#define ELEMENTS_PER_WORD 2
#endif

/* Whether an input element packed in `w` is a NaN or an infinity. */
INLINE int word_nonfinite(uint w) {
#if ELEMENTS_PER_WORD == 1
    return (w & ELEMENT_EXPONENT) == ELEMENT_EXPONENT;
#else
    return (w & ELEMENT_EXPONENT) == ELEMENT_EXPONENT || ((w >> 16) & ELEMENT_EXPONENT) == ELEMENT_EXPONENT;
#endif
}

/* ---- Tensor layouts ---------------------------------------------------------------------------
 * (offset, batch stride, head stride, token stride) in elements, channels contiguous (stride 1):
 * contiguous [B, H, N, d] is (0, H*N*d, N*d, d), FlashAttention's [B, N, H, d] is
 * (0, N*H*d, d, H*d). The host refuses offsets and strides that are not multiples of 8, so every
 * row starts 16-byte aligned (the tensor-core paths copy f16/bf16 rows in 16-byte chunks). */
typedef ulong4 layout_t;

/* Element offset of token 0, channel 0 of flattened head `head` (batch * heads + h). */
INLINE size_t head_origin(layout_t layout, int head, int heads) {
    return (size_t)(layout.x + (ulong)(head / heads) * layout.y + (ulong)(head % heads) * layout.z);
}
#define TOKEN_STRIDE(layout) ((size_t)(layout).w)

/* KV head read by flattened query head `head` (batch * heads_q + h). */
INLINE int kv_head_of(int head, int heads_q, int heads_kv) {
    return (head / heads_q) * heads_kv + (head % heads_q) / (heads_q / heads_kv);
}

/* ---- Portable fp32 row math (the portable tile path and recall.cl) ---------------------------- */

/* One query row widened to fp32 and pre-scaled (scale * log2(e)), as float8 vectors so the dot
 * products vectorise on CPUs; returns 1 when the row holds a NaN or an infinity. */
INLINE int load_scaled_row(float8* q_row, __global const in_t* q, size_t offset, float scale_log2) {
    int nonfinite = 0;
    for (int c = 0; c < HEAD_VEC; ++c) {
        float x[8];
        for (int e = 0; e < 8; ++e) {
            const float element = LOAD_IN(q, offset + 8 * c + e);
            nonfinite |= (as_uint(element) & 0x7f800000u) == 0x7f800000u;
            x[e] = element * scale_log2;
        }
        q_row[c] = vload8(0, x);
    }
    return nonfinite;
}

/* scores[j] = q_row . k_tile[j] for `keys` staged fp32 keys (a multiple of 4), four at a time:
 * four independent FMA chains hide the latency. Every key's dot product runs the same
 * operations in the same order wherever it is staged. */
INLINE void staged_scores(const float8* q_row, __local const float* k_tile, float* scores, int keys) {
    for (int j = 0; j < keys; j += 4) {
        float8 d0 = (float8)(0.0f), d1 = (float8)(0.0f), d2 = (float8)(0.0f), d3 = (float8)(0.0f);
        __local const float* kr = k_tile + j * HEAD_DIM;
        for (int c = 0; c < HEAD_VEC; ++c) {
            const float8 qc = q_row[c];
            d0 = fma(qc, vload8(c, kr), d0);
            d1 = fma(qc, vload8(c, kr + HEAD_DIM), d1);
            d2 = fma(qc, vload8(c, kr + 2 * HEAD_DIM), d2);
            d3 = fma(qc, vload8(c, kr + 3 * HEAD_DIM), d3);
        }
        scores[j] = horizontal_sum8(d0);
        scores[j + 1] = horizontal_sum8(d1);
        scores[j + 2] = horizontal_sum8(d2);
        scores[j + 3] = horizontal_sum8(d3);
    }
}

/* Which keys a query may see inside a staged tile: causal always (key <= q_pos) when `causal`,
 * and, for A-shape, only the first `sink` keys or the last `window` keys up to the query. */
INLINE bool key_visible(int key, int q_pos, int causal, int sink, int window) {
    if (key < 0) return false;
    if (causal && key > q_pos) return false;
    if (window > 0 && q_pos - key >= window && key >= sink) return false;
    return true;
}

#endif
