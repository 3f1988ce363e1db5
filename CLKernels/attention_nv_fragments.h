/*
 * attention_nv_fragments.h: what the two NVIDIA tensor-core tile paths share (attention_nv_mma.h,
 * mma.sync on sm_80+; attention_nv_wgmma.h, wgmma on sm_90a): the 16-byte asynchronous copies,
 * the quad shuffles, and the row math on the accumulator fragment layout both instructions use.
 *
 * The C fragment of mma.m16n8k16 and the f32 accumulator of wgmma.m64nNk16 (per warp of the
 * warpgroup) place values alike: lane = 4 * group + quad holds rows group and group + 8 of the
 * warp's 16, columns 2 quad and 2 quad + 1 of every 8-column block, in the order
 * (group, 2q) (group, 2q+1) (group+8, 2q) (group+8, 2q+1). So S, P and O are arrays
 * [MMA_M_TILES][n-tiles][4] on either path, and the softmax, the mask and the store are written once.
 *
 * The including path defines MMA_M_TILES, MMA_KEY_TILES (8-key n-tiles of S per step) and
 * MMA_D_TILES (8-wide n-tiles of O) first.
 */
#ifndef MINFERENCECL_ATTENTION_NV_FRAGMENTS_H
#define MINFERENCECL_ATTENTION_NV_FRAGMENTS_H
#ifndef MMA_RESCALE_LOG2
#define MMA_RESCALE_LOG2 0 /* > 0: keep a stale row maximum until the true one exceeds it by this many
                              powers of two (P <= 2^MMA_RESCALE_LOG2), skipping O's rescale; 0: every step */
#endif

#if INPUT_DTYPE == DTYPE_F16
#define MMA_TYPE "f16"
#elif INPUT_DTYPE == DTYPE_BF16
#define MMA_TYPE "bf16"
#else
#error "the mma path takes f16 or bf16 inputs"
#endif

/* Element offset of (row, 16-byte chunk) in a swizzled [rows][HEAD_DIM] 16-bit tile. */
INLINE int swizzled(int row, int chunk) { return row * HEAD_DIM + ((chunk ^ (row & 7)) << 3); }

INLINE uint smem_address(__local const ushort* p) { return (uint)(size_t)p; }

/* 16 bytes global -> shared, asynchronously; `bytes` 0 zero-fills (keys past the end). */
INLINE void cp_async16(__local ushort* dst, __global const ushort* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_address(dst)), "l"((ulong)src), "r"(bytes));
}
INLINE void cp_async_commit(void) { asm volatile("cp.async.commit_group;" ::); }
INLINE void cp_async_wait_all(void) { asm volatile("cp.async.wait_group 0;" ::); }

/* Two floats to a packed pair of MMA_TYPE (lo in the low half). */
INLINE uint pack2(float lo, float hi) {
    uint r;
    asm("cvt.rn." MMA_TYPE "x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

INLINE float quad_max(float x) {
    uint y;
    asm volatile("shfl.sync.bfly.b32 %0, %1, 1, 0x1f, 0xffffffff;" : "=r"(y) : "r"(as_uint(x)));
    x = fmax(x, as_float(y));
    asm volatile("shfl.sync.bfly.b32 %0, %1, 2, 0x1f, 0xffffffff;" : "=r"(y) : "r"(as_uint(x)));
    return fmax(x, as_float(y));
}

/* 1 when `x` is non-zero in any lane of the quad. */
INLINE int quad_any(int x) {
    int y;
    asm volatile("shfl.sync.bfly.b32 %0, %1, 1, 0x1f, 0xffffffff;" : "=r"(y) : "r"(x));
    x |= y;
    asm volatile("shfl.sync.bfly.b32 %0, %1, 2, 0x1f, 0xffffffff;" : "=r"(y) : "r"(x));
    return (x | y) != 0;
}

INLINE float quad_sum(float x) {
    uint y;
    asm volatile("shfl.sync.bfly.b32 %0, %1, 1, 0x1f, 0xffffffff;" : "=r"(y) : "r"(as_uint(x)));
    x += as_float(y);
    asm volatile("shfl.sync.bfly.b32 %0, %1, 2, 0x1f, 0xffffffff;" : "=r"(y) : "r"(as_uint(x)));
    return x + as_float(y);
}

/* -inf where a key is not visible to this thread's rows: q_pos_base + 16 mt (+ 8). */
INLINE void mask_scores(float s[MMA_M_TILES][MMA_KEY_TILES][4], __local const int* keys, int quad, int q_pos_base,
                        int causal, int sink, int window) {
    _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
        const int q_pos0 = q_pos_base + 16 * mt, q_pos1 = q_pos0 + 8;
        _Pragma("unroll") for (int t = 0; t < MMA_KEY_TILES; ++t) {
            const int key0 = keys[t * 8 + 2 * quad], key1 = keys[t * 8 + 2 * quad + 1];
            if (!key_visible(key0, q_pos0, causal, sink, window)) s[mt][t][0] = -INFINITY;
            if (!key_visible(key1, q_pos0, causal, sink, window)) s[mt][t][1] = -INFINITY;
            if (!key_visible(key0, q_pos1, causal, sink, window)) s[mt][t][2] = -INFINITY;
            if (!key_visible(key1, q_pos1, causal, sink, window)) s[mt][t][3] = -INFINITY;
        }
    }
}

/* Marks this thread's rows that cover a flagged key of the step (attention_path.h: the key
 * flags): only read when the layer has one. `masked` 0: every key of the step is visible. */
INLINE void flag_rows(int poisoned[MMA_M_TILES][2], __local const int* keys, __global const uchar* kfh, int masked,
                      int quad, int q_pos_base, int causal, int sink, int window) {
    _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
        const int q_pos0 = q_pos_base + 16 * mt, q_pos1 = q_pos0 + 8;
        _Pragma("unroll") for (int t = 0; t < MMA_KEY_TILES; ++t) {
            _Pragma("unroll") for (int e = 0; e < 2; ++e) {
                const int key = keys[t * 8 + 2 * quad + e];
                if (key < 0 || !kfh[key]) continue;
                poisoned[mt][0] |= !masked || key_visible(key, q_pos0, causal, sink, window);
                poisoned[mt][1] |= !masked || key_visible(key, q_pos1, causal, sink, window);
            }
        }
    }
}

/* Sets flags[row] to whether row `row` of the 16-bit Q tile in shared memory holds a NaN or an
 * infinity, checked by the four threads of a quad together: this thread reads 16-byte chunks
 * quad, quad + 4, ... at the element offsets OFFSET(row, chunk) of the path's swizzle; the quad's
 * first thread writes. Once per work-group, NONFINITE_KEYS only. */
#define Q_NONFINITE(flags, tile, row, quad, OFFSET)                                              \
    {                                                                                            \
        int bad_ = 0;                                                                            \
        for (int c_ = (quad); c_ < HEAD_DIM / 8; c_ += 4) {                                      \
            const uint4 w_ = *(__local const uint4*)((tile) + OFFSET((row), c_));                \
            bad_ |= word_nonfinite(w_.x) | word_nonfinite(w_.y) | word_nonfinite(w_.z) | word_nonfinite(w_.w); \
        }                                                                                        \
        bad_ = quad_any(bad_);                                                                   \
        if ((quad) == 0) (flags)[row] = (uchar)bad_;                                             \
        asm volatile("bar.warp.sync -1;" ::: "memory"); /* the quad's other threads read it */   \
    }

/* 1 when `p` is non-zero in any lane of the warp (every lane gets the same answer). */
INLINE int warp_any(int p) {
    int r;
    asm volatile("{\n\t.reg .pred in, out;\n\tsetp.ne.s32 in, %1, 0;\n\tvote.sync.any.pred out, in, 0xffffffff;\n\t"
                 "selp.s32 %0, 1, 0, out;\n\t}" : "=r"(r) : "r"(p));
    return r;
}

/* Online softmax over one step, without touching O: new row maxima, S -> P in place (p = 2^(s *
 * scale - m * scale): one FMA and one ex2 per score; maxima are kept unscaled, as scale > 0 commutes
 * with max), the row sums, and in `alpha` the factor O must be scaled by; returns whether O needs
 * it. The wgmma path applies alpha once the previous step's O += P V has landed, so this runs while
 * that product does. With MMA_RESCALE_LOG2 > 0 a row keeps its maximum (and O's scale) while its
 * new maximum does not exceed the kept one by 2^MMA_RESCALE_LOG2: P then stays <=
 * 2^MMA_RESCALE_LOG2, exact after the final division by the row sum (the FlashAttention-4 trick).
 * The warp branches once for all its rows, but each row decides for itself (alpha 1 otherwise), so
 * a row's bits depend on its own scores alone, never on keys only its neighbours see. */
INLINE int softmax_scores(float s[MMA_M_TILES][MMA_KEY_TILES][4], float row_max[MMA_M_TILES][2],
                          float row_sum[MMA_M_TILES][2], float scale_log2, float alpha[MMA_M_TILES][2]) {
    float new_max[MMA_M_TILES][2];
    int grows[MMA_M_TILES][2];
    int any_grows = 0;
    _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
        float m0 = row_max[mt][0], m1 = row_max[mt][1];
        _Pragma("unroll") for (int t = 0; t < MMA_KEY_TILES; ++t) {
            m0 = fmax(m0, fmax(s[mt][t][0], s[mt][t][1]));
            m1 = fmax(m1, fmax(s[mt][t][2], s[mt][t][3]));
        }
        new_max[mt][0] = quad_max(m0);
        new_max[mt][1] = quad_max(m1);
        alpha[mt][0] = 1.0f;
        alpha[mt][1] = 1.0f;
#if MMA_RESCALE_LOG2 > 0
        /* -inf kept and finite new: grows; both -inf (nothing seen yet): nothing to rescale */
        grows[mt][0] = new_max[mt][0] * scale_log2 > fma(row_max[mt][0], scale_log2, (float)MMA_RESCALE_LOG2);
        grows[mt][1] = new_max[mt][1] * scale_log2 > fma(row_max[mt][1], scale_log2, (float)MMA_RESCALE_LOG2);
#else
        grows[mt][0] = 1;
        grows[mt][1] = 1;
#endif
        any_grows |= grows[mt][0] | grows[mt][1];
    }
#if MMA_RESCALE_LOG2 > 0
    const int rescale = warp_any(any_grows);
#else
    const int rescale = 1;
#endif
    if (rescale) {
        _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
            _Pragma("unroll") for (int r = 0; r < 2; ++r) {
                if (!grows[mt][r]) continue;
                /* A row that has seen nothing yet keeps max -inf; its alpha multiplies zeros. */
                alpha[mt][r] = new_max[mt][r] == -INFINITY ? 1.0f : native_exp2((row_max[mt][r] - new_max[mt][r]) * scale_log2);
                row_sum[mt][r] *= alpha[mt][r];
                row_max[mt][r] = new_max[mt][r];
            }
        }
    }
    _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
        const float bias0 = row_max[mt][0] == -INFINITY ? 0.0f : -row_max[mt][0] * scale_log2;
        const float bias1 = row_max[mt][1] == -INFINITY ? 0.0f : -row_max[mt][1] * scale_log2;
        float sum0 = 0.0f, sum1 = 0.0f;
        _Pragma("unroll") for (int t = 0; t < MMA_KEY_TILES; ++t) {
            s[mt][t][0] = native_exp2(fma(s[mt][t][0], scale_log2, bias0));
            s[mt][t][1] = native_exp2(fma(s[mt][t][1], scale_log2, bias0));
            s[mt][t][2] = native_exp2(fma(s[mt][t][2], scale_log2, bias1));
            s[mt][t][3] = native_exp2(fma(s[mt][t][3], scale_log2, bias1));
            sum0 += s[mt][t][0] + s[mt][t][1];
            sum1 += s[mt][t][2] + s[mt][t][3];
        }
        /* per-thread partial sums; reduced over the quad at the end */
        row_sum[mt][0] += sum0;
        row_sum[mt][1] += sum1;
    }
    return rescale;
}

/* O *= alpha, per row. */
INLINE void rescale_output(float acc_o[MMA_M_TILES][MMA_D_TILES][4], float alpha[MMA_M_TILES][2]) {
    _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
        _Pragma("unroll") for (int t = 0; t < MMA_D_TILES; ++t) {
            acc_o[mt][t][0] *= alpha[mt][0]; acc_o[mt][t][1] *= alpha[mt][0];
            acc_o[mt][t][2] *= alpha[mt][1]; acc_o[mt][t][3] *= alpha[mt][1];
        }
    }
}

/* The whole online-softmax step of FlashAttention-2: softmax_scores, then O's rescale. */
INLINE void online_softmax(float s[MMA_M_TILES][MMA_KEY_TILES][4], float acc_o[MMA_M_TILES][MMA_D_TILES][4],
                           float row_max[MMA_M_TILES][2], float row_sum[MMA_M_TILES][2], float scale_log2) {
    float alpha[MMA_M_TILES][2];
    if (softmax_scores(s, row_max, row_sum, scale_log2, alpha)) rescale_output(acc_o, alpha);
}

/* Normalises by the quad-reduced row sums and writes this thread's rows (2 per m-tile) of the
 * head whose token 0 is at `o`, rows `row_stride` elements apart; a row that saw no key is 0. With
 * NONFINITE_KEYS a row is NaN when its q row is not finite (q_nonfinite[16 mt], [16 mt + 8]: this
 * thread's rows in the Q tile's flags) or any thread of its quad saw it cover a flagged key. */
INLINE void store_rows(__global out_t* o, size_t row_stride, int n_q, int row_base, float acc_o[MMA_M_TILES][MMA_D_TILES][4],
                       float row_sum[MMA_M_TILES][2], int poisoned[MMA_M_TILES][2], __local const uchar* q_nonfinite,
                       int quad) {
    _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
        const float sum0 = quad_sum(row_sum[mt][0]), sum1 = quad_sum(row_sum[mt][1]);
        float inv0 = sum0 > 0.0f ? 1.0f / sum0 : 0.0f, inv1 = sum1 > 0.0f ? 1.0f / sum1 : 0.0f;
#if NONFINITE_KEYS
        /* NaN * anything is NaN: the row's every channel */
        if (q_nonfinite[16 * mt] | quad_any(poisoned[mt][0])) inv0 = NAN;
        if (q_nonfinite[16 * mt + 8] | quad_any(poisoned[mt][1])) inv1 = NAN;
#endif
        const int row0 = row_base + 16 * mt, row1 = row0 + 8;
        _Pragma("unroll") for (int t = 0; t < MMA_D_TILES; ++t) {
            const int col = t * 8 + 2 * quad;
            if (row0 >= 0 && row0 < n_q) {
                const size_t at = (size_t)row0 * row_stride + col;
                STORE_OUT(o, at, acc_o[mt][t][0] * inv0);
                STORE_OUT(o, at + 1, acc_o[mt][t][1] * inv0);
            }
            if (row1 >= 0 && row1 < n_q) {
                const size_t at = (size_t)row1 * row_stride + col;
                STORE_OUT(o, at, acc_o[mt][t][2] * inv1);
                STORE_OUT(o, at + 1, acc_o[mt][t][3] * inv1);
            }
        }
    }
}

#endif
