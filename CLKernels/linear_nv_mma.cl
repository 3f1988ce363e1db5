/*
 * linear_nv_mma.cl: a model's products on NVIDIA tensor cores, C = A B^T (+ C), in inline PTX
 * (sm_80+: mma.sync m16n8k16 f16 -> f32, ldmatrix, cp.async), the instructions of the attention
 * kernels' nvidia-mma path. A is [M, K] fp16 row-major (activations, one token per row), B is
 * [N, K] fp16 row-major (a GGUF weight's row order: one output feature per row), C is [M, N]
 * fp32 row-major; fp32 accumulation. Portable devices run the same product through CLBlast.
 *
 * One work-group computes a LINEAR_BM x LINEAR_BN tile of C with 8 warps (2 x 4), each warp a
 * 64 x 32 sub-tile (4 m-tiles x 4 n-tiles of m16n8k16). K advances LINEAR_BK at a time through
 * two shared-memory stages: while the warps multiply stage s, cp.async fills stage s ^ 1.
 * Shared rows are padded from 32 to 40 halves (80 bytes): the 8 row addresses of an ldmatrix
 * phase then fall in 8 distinct 16-byte bank groups.
 *
 * Fragment layouts (PTX ISA, lane = 4 * group + quad): A (16x16, row) from ldmatrix.x4 of rows
 * lane & 15, chunk lane >> 4; B (16x8, col) from ldmatrix.x4 of [N, K] rows, two n-tiles per
 * load; C c0, c1 at (group, 2 quad ..), c2, c3 at (group + 8, 2 quad ..).
 *
 * Requires: K a multiple of 8 and A, B offsets multiples of 8 elements (16-byte cp.async
 * sources); rows and columns past M and N, and k past K, are zero-filled and not stored.
 */

#define LINEAR_BM 128 /* rows of C per work-group */
#define LINEAR_BN 128 /* columns of C per work-group */
#define LINEAR_BK 32  /* k per shared-memory stage */
#define LINEAR_THREADS 256
#define LINEAR_ROW_PAD 40 /* halves per shared row: 32 + 8 padding */
#define LINEAR_CHUNKS (LINEAR_BK / 8) /* 16-byte chunks per row and stage */
#define LINEAR_STAGE_ELEMS ((LINEAR_BM + LINEAR_BN) * LINEAR_ROW_PAD)

#define INLINE static inline __attribute__((always_inline))

/* C's element type: fp32 (the model's products), or with LINEAR_C_DTYPE 1 / 2 the fp32 sums
 * rounded to fp16 / bf16 (XAttention's antidiagonal scores, which upstream keeps in the model's
 * dtype: half the bytes to write and read back). Accumulation (C += A B^T) is fp32 only. */
#ifndef LINEAR_C_DTYPE
#define LINEAR_C_DTYPE 0
#endif
#if LINEAR_C_DTYPE == 0
typedef float c_t;
#define STORE_C(p, i, x) ((p)[i] = (x))
#else
typedef ushort c_t;
#if LINEAR_C_DTYPE == 1
#define STORE_C(p, i, x) vstore_half_rte((x), (i), (__global half*)(p))
#else
/* round to nearest even; NaN stays NaN */
INLINE ushort float_to_bf16_bits(float x) {
    uint u = as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}
#define STORE_C(p, i, x) ((p)[i] = float_to_bf16_bits(x))
#endif
#endif

INLINE uint smem_address(__local const ushort* p) { return (uint)(size_t)p; }

/* 16 bytes global -> shared, asynchronously; `bytes` 0 zero-fills. */
INLINE void cp_async16(__local ushort* dst, __global const ushort* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_address(dst)), "l"((ulong)src), "r"(bytes));
}

#define LDSM_X4(r0, r1, r2, r3, ptr)                                                             \
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"                 \
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_address(ptr)))

#define MMA_F16(c, a, b0, b1)                                                                    \
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "                            \
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"                     \
                 : "=f"(c[0]), "=f"(c[1]), "=f"(c[2]), "=f"(c[3])                                \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1),                 \
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]))

/* Issues the copies of k-block kb of the work-group's A rows and B rows into `stage`. */
INLINE void load_stage(__local ushort* stage, __global const ushort* a, __global const ushort* b, int m0, int n0,
                       int kb, int m, int n, int k, int tid) {
    for (int e = tid; e < (LINEAR_BM + LINEAR_BN) * LINEAR_CHUNKS; e += LINEAR_THREADS) {
        const int r = e / LINEAR_CHUNKS, chunk = e % LINEAR_CHUNKS;
        const int col = kb * LINEAR_BK + chunk * 8;
        const int is_b = r >= LINEAR_BM;
        const int row = is_b ? n0 + r - LINEAR_BM : m0 + r;
        const int live = row < (is_b ? n : m) && col < k;
        __global const ushort* src = (is_b ? b : a) + (live ? (size_t)row * k + col : 0);
        cp_async16(stage + r * LINEAR_ROW_PAD + chunk * 8, src, live ? 16 : 0);
    }
    asm volatile("cp.async.commit_group;" ::);
}

/* c[m, n] (+)= sum_k a[m, k] b[n, k]. Work: global (ceil(N / LINEAR_BN) * LINEAR_THREADS,
 * ceil(M / LINEAR_BM)), local (LINEAR_THREADS, 1). Offsets in elements. */
__kernel __attribute__((reqd_work_group_size(LINEAR_THREADS, 1, 1)))
void linear_nv_mma(__global const ushort* a, ulong a_offset, __global const ushort* b, ulong b_offset,
                   __global c_t* c, ulong c_offset, int m, int n, int k, int accumulate) {
    __local ushort smem[2 * LINEAR_STAGE_ELEMS] __attribute__((aligned(16)));
    a += a_offset;
    b += b_offset;
    c += c_offset;
    const int tid = get_local_id(0), warp = tid / 32, lane = tid % 32;
    const int warp_m = warp / 4, warp_n = warp % 4; /* 2 x 4 warps of 64 x 32 */
    const int m0 = get_group_id(1) * LINEAR_BM, n0 = get_group_id(0) * LINEAR_BN;
    const int k_blocks = (k + LINEAR_BK - 1) / LINEAR_BK;

    float acc[4][4][4];
    _Pragma("unroll") for (int i = 0; i < 4; ++i)
        _Pragma("unroll") for (int j = 0; j < 4; ++j)
            _Pragma("unroll") for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    load_stage(smem, a, b, m0, n0, 0, m, n, k, tid);
    for (int kb = 0; kb < k_blocks; ++kb) {
        __local ushort* stage = smem + (kb & 1) * LINEAR_STAGE_ELEMS;
        if (kb + 1 < k_blocks) {
            load_stage(smem + ((kb + 1) & 1) * LINEAR_STAGE_ELEMS, a, b, m0, n0, kb + 1, m, n, k, tid);
            asm volatile("cp.async.wait_group 1;" ::);
        } else {
            asm volatile("cp.async.wait_group 0;" ::);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        __local const ushort* a_tile = stage + (warp_m * 64) * LINEAR_ROW_PAD;
        __local const ushort* b_tile = stage + (LINEAR_BM + warp_n * 32) * LINEAR_ROW_PAD;
        _Pragma("unroll") for (int ks = 0; ks < LINEAR_BK / 16; ++ks) {
            uint af[4][4], bf[4][2];
            _Pragma("unroll") for (int mt = 0; mt < 4; ++mt) {
                const int r = mt * 16 + (lane & 15), chunk = 2 * ks + (lane >> 4);
                LDSM_X4(af[mt][0], af[mt][1], af[mt][2], af[mt][3], a_tile + r * LINEAR_ROW_PAD + chunk * 8);
            }
            _Pragma("unroll") for (int np = 0; np < 2; ++np) {
                const int r = np * 16 + (lane & 7) + ((lane >> 4) << 3), chunk = 2 * ks + ((lane >> 3) & 1);
                LDSM_X4(bf[2 * np][0], bf[2 * np][1], bf[2 * np + 1][0], bf[2 * np + 1][1], b_tile + r * LINEAR_ROW_PAD + chunk * 8);
            }
            _Pragma("unroll") for (int mt = 0; mt < 4; ++mt)
                _Pragma("unroll") for (int nt = 0; nt < 4; ++nt) MMA_F16(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
        }
        /* The next iteration's copies overwrite the stage read here. */
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    const int group = lane / 4, quad = lane % 4;
    _Pragma("unroll") for (int mt = 0; mt < 4; ++mt) {
        _Pragma("unroll") for (int half_row = 0; half_row < 2; ++half_row) {
            const int row = m0 + warp_m * 64 + mt * 16 + group + 8 * half_row;
            if (row >= m) continue;
            __global c_t* c_row = c + (size_t)row * n;
            _Pragma("unroll") for (int nt = 0; nt < 4; ++nt) {
                const int col = n0 + warp_n * 32 + nt * 8 + 2 * quad;
                _Pragma("unroll") for (int e = 0; e < 2; ++e) {
                    if (col + e < n) {
                        const float value = acc[mt][nt][2 * half_row + e];
#if LINEAR_C_DTYPE == 0
                        c_row[col + e] = accumulate ? c_row[col + e] + value : value;
#else
                        STORE_C(c_row, col + e, value);
#endif
                    }
                }
            }
        }
    }
}
