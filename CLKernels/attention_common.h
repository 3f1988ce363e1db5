/*
 * attention_common.h: element types and the online-softmax tile step shared by every attention
 * kernel family (dense, A-shape, vertical-slash, block-sparse) in its portable form.
 *
 * Layout of every tensor in global memory: [batch * heads, tokens, HEAD_DIM], C order. Query head
 * h of a batch reads KV head h / (heads_q / heads_kv) of the same batch (grouped-query
 * attention without copying K/V).
 *
 * Softmax runs in the log2 domain: the host folds log2(e) into the scale, so a score is
 * q . k * scale * log2(e) and probabilities are exp2(score - running_max).
 */
#ifndef MINFERENCECL_ATTENTION_COMMON_H
#define MINFERENCECL_ATTENTION_COMMON_H

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
#define KEY_TILE 32 /* keys staged in local memory per step; 16..64 (local: 8 * KEY_TILE * HEAD_DIM bytes) */
#endif
#if KEY_TILE > 64 || KEY_TILE < 4 || KEY_TILE % 4 != 0
#error "KEY_TILE must be a multiple of 4 in 4...64"
#endif

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

inline float bf16_to_float(ushort x) { return as_float(((uint)x) << 16); }

/* Round to nearest even; NaN stays NaN (a quiet bit is forced so truncation cannot make Inf). */
inline ushort float_to_bf16(float x) {
    uint u = as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

/* KV head read by flattened query head `head` (batch * heads_q + h). */
inline int kv_head_of(int head, int heads_q, int heads_kv) {
    return (head / heads_q) * heads_kv + (head % heads_q) / (heads_q / heads_kv);
}

/* ---- Portable tile step ------------------------------------------------------------------ */
/* Rows of keys and values staged in local memory as fp32; key_pos[j] is the key's position in
 * the sequence, or -1 for a slot that holds no key (past the end, or an unused gather slot). */

/* Loads `count` consecutive keys/values starting at `first_key` (clipped to n_k) into the tile;
 * called by every work-item of the group, `lid`/`lsize` share the copy. */
inline void stage_key_range(__local float* k_tile, __local float* v_tile, __local int* key_pos,
                            __global const in_t* k, __global const in_t* v, int first_key,
                            int count, int n_k, int lid, int lsize) {
    for (int e = lid; e < KEY_TILE * HEAD_DIM; e += lsize) {
        const int j = e / HEAD_DIM;
        const int key = first_key + j;
        const bool ok = j < count && key < n_k && key >= 0;
        const size_t src = (size_t)(ok ? key : 0) * HEAD_DIM + (size_t)(e % HEAD_DIM);
        k_tile[e] = ok ? LOAD_IN(k, src) : 0.0f;
        v_tile[e] = ok ? LOAD_IN(v, src) : 0.0f;
    }
    for (int j = lid; j < KEY_TILE; j += lsize) {
        const int key = first_key + j;
        key_pos[j] = (j < count && key < n_k && key >= 0) ? key : -1;
    }
}

/* Loads up to KEY_TILE gathered keys columns[0..count) into the tile. */
inline void stage_key_gather(__local float* k_tile, __local float* v_tile, __local int* key_pos,
                             __global const in_t* k, __global const in_t* v,
                             __global const int* columns, int count, int lid, int lsize) {
    for (int e = lid; e < KEY_TILE * HEAD_DIM; e += lsize) {
        const int j = e / HEAD_DIM;
        const bool ok = j < count;
        const size_t src = (size_t)(ok ? columns[j] : 0) * HEAD_DIM + (size_t)(e % HEAD_DIM);
        k_tile[e] = ok ? LOAD_IN(k, src) : 0.0f;
        v_tile[e] = ok ? LOAD_IN(v, src) : 0.0f;
    }
    for (int j = lid; j < KEY_TILE; j += lsize) key_pos[j] = j < count ? columns[j] : -1;
}

/* Which keys a query may see inside a staged tile: causal always (key <= q_pos) when `causal`,
 * and, for A-shape, only the first `sink` keys or the last `window` keys up to the query. */
inline bool key_visible(int key, int q_pos, int causal, int sink, int window) {
    if (key < 0) return false;
    if (causal && key > q_pos) return false;
    if (window > 0 && q_pos - key >= window && key >= sink) return false;
    return true;
}

/* One FlashAttention-2 step for one query row over a staged tile: scores, running max, rescale
 * of the accumulator, P.V. `q` is pre-scaled by scale * log2(e). Rows are float4 vectors so the
 * dot products vectorise on CPUs (a scalar float reduction may not be reassociated). */
#define HEAD_VEC (HEAD_DIM / 8)
inline float horizontal_sum8(float8 v) {
    const float4 h = v.lo + v.hi;
    return (h.x + h.y) + (h.z + h.w);
}
inline void attend_tile(const float8* q, float8* acc, float* running_max, float* running_sum,
                        __local const float* k_tile, __local const float* v_tile,
                        __local const int* key_pos, int q_pos, int causal, int sink, int window) {
    float scores[KEY_TILE];
    /* Four keys at a time: four independent accumulator chains hide the FMA latency. */
    for (int j = 0; j < KEY_TILE; j += 4) {
        float8 d0 = (float8)(0.0f), d1 = (float8)(0.0f), d2 = (float8)(0.0f), d3 = (float8)(0.0f);
        __local const float* kr = k_tile + j * HEAD_DIM;
        for (int c = 0; c < HEAD_VEC; ++c) {
            const float8 qc = q[c];
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
    float tile_max = -INFINITY;
    for (int j = 0; j < KEY_TILE; ++j) {
        if (!key_visible(key_pos[j], q_pos, causal, sink, window)) scores[j] = -INFINITY;
        tile_max = fmax(tile_max, scores[j]);
    }
    if (tile_max == -INFINITY) return; /* nothing visible in this tile for this row */
    const float new_max = fmax(*running_max, tile_max);
    const float alpha = exp2(*running_max - new_max); /* 0 on the first visible tile */
    *running_sum *= alpha;
    float probs[KEY_TILE];
    for (int j = 0; j < KEY_TILE; ++j) {
        probs[j] = exp2(scores[j] - new_max); /* masked scores give exactly 0 */
        *running_sum += probs[j];
    }
    /* Channel-outer order keeps the accumulator in registers across the tile; four partial sums
     * over the keys give independent FMA chains. */
    for (int c = 0; c < HEAD_VEC; ++c) {
        float8 a0 = acc[c] * alpha, a1 = (float8)(0.0f), a2 = (float8)(0.0f), a3 = (float8)(0.0f);
        for (int j = 0; j < KEY_TILE; j += 4) {
            __local const float* vr = v_tile + j * HEAD_DIM;
            a0 = fma((float8)(probs[j]), vload8(c, vr), a0);
            a1 = fma((float8)(probs[j + 1]), vload8(c, vr + HEAD_DIM), a1);
            a2 = fma((float8)(probs[j + 2]), vload8(c, vr + 2 * HEAD_DIM), a2);
            a3 = fma((float8)(probs[j + 3]), vload8(c, vr + 3 * HEAD_DIM), a3);
        }
        acc[c] = (a0 + a1) + (a2 + a3);
    }
    *running_max = new_max;
}

/* Writes acc / running_sum; a row that saw no key (only possible with causal Nq > Nk) is 0. */
inline void store_row(__global out_t* o, size_t row_offset, const float8* acc, float running_sum) {
    const float inv = running_sum > 0.0f ? 1.0f / running_sum : 0.0f;
    for (int c = 0; c < HEAD_VEC; ++c) {
        float x[8];
        vstore8(acc[c] * inv, 0, x);
        for (int e = 0; e < 8; ++e) STORE_OUT(o, row_offset + 8 * c + e, x[e]);
    }
}

#endif
