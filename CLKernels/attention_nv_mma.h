/*
 * attention_nv_mma.h: the NVIDIA tensor-core tile path of every attention kernel family, in
 * inline PTX (sm_80+: mma.sync m16n8k16 f16/bf16 -> f32, ldmatrix, cp.async, shfl.sync), on the
 * same four macros as attention_portable.h (see there for the contract).
 *
 * FlashAttention-2 structure: MMA_WARPS warps, each owning 16 * MMA_M_TILES query rows; Q is
 * loaded once as mma A-fragments (kept in registers, or re-read from shared memory with
 * MMA_Q_IN_SMEM); per step of MMA_KV keys
 *     wait K_t, issue V_t (cp.async)          S = Q K_t^T (ldmatrix K)   mask, online softmax
 *     wait V_t, issue K_t+1 (cp.async)        O += P V_t (P straight from S's registers, ldmatrix.trans V)
 * so each copy overlaps the other product. Shared memory holds one K and one V tile (and Q, or
 * Q's staging reuses it), rows XOR-swizzled in 16-byte chunks so ldmatrix reads are
 * conflict-free. Every K/V fragment read from shared memory serves all MMA_M_TILES m-tiles.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16, lane = 4 * group + quad):
 *   A (16x16, row): a0 (group, 2q..2q+1)  a1 (group+8, 2q..)  a2 (group, 8+2q..)  a3 (group+8, 8+2q..)
 *   B (16x8, col):  b0 (k = 2q..2q+1, n = group)  b1 (k = 8+2q.., n = group)
 *   C (16x8):       c0, c1 (group, 2q, 2q+1)   c2, c3 (group+8, 2q, 2q+1)
 * The C fragments of two adjacent 8-key n-tiles are, packed to 16 bits, exactly the A fragment
 * of P for a 16-key step, so P never leaves registers.
 *
 * Requires: INPUT_DTYPE f16 or bf16, HEAD_DIM 64 or 128, __local arrays 16-byte aligned
 * (NVIDIA-OPENCL.md: ldmatrix/cp.async fault otherwise).
 */
#ifndef MINFERENCECL_ATTENTION_NV_MMA_H
#define MINFERENCECL_ATTENTION_NV_MMA_H

#ifndef MMA_WARPS
#define MMA_WARPS 4 /* warps per work-group */
#endif
#ifndef MMA_M_TILES
#define MMA_M_TILES 1 /* 16-row m-tiles per warp: 2 reuses every K/V fragment twice (half the shared-memory reads) */
#endif
#ifndef MMA_KV
#define MMA_KV 64 /* keys per pipeline step: 32 or 64 (a 64-key source tile is walked in 64 / MMA_KV steps) */
#endif
#ifndef MMA_Q_IN_SMEM
#define MMA_Q_IN_SMEM 0 /* 1: Q fragments are re-read from shared memory every step (frees 32 * MMA_M_TILES registers) */
#endif
#ifndef MMA_STAGES
#define MMA_STAGES 1 /* 1: K and V tiles alternate in one buffer each; 2: step t+1 loads while step t computes */
#endif
#ifndef MMA_RESCALE_LOG2
#define MMA_RESCALE_LOG2 0 /* > 0: keep a stale row maximum until the true one exceeds it by this many
                              powers of two (P <= 2^MMA_RESCALE_LOG2), skipping O's rescale; 0: every step */
#endif
#if MMA_STAGES != 1 && MMA_STAGES != 2
#error "MMA_STAGES must be 1 or 2"
#endif
#define ATTENTION_ROWS (16 * MMA_M_TILES * MMA_WARPS)
#define ATTENTION_THREADS (32 * MMA_WARPS)
#define MMA_CHUNKS (HEAD_DIM / 8)          /* 16-byte chunks per row */
#define MMA_K_STEPS (HEAD_DIM / 16)        /* k-steps of Q K^T */
#define MMA_D_TILES (HEAD_DIM / 8)         /* 8-wide n-tiles of O */
#define MMA_KEY_TILES (MMA_KV / 8)         /* 8-wide n-tiles of S */
#define MMA_STEPS_PER_TILE (SOURCE_TILE / MMA_KV)
#define MMA_TILE_ELEMS (MMA_KV * HEAD_DIM)
#define MMA_Q_ELEMS (ATTENTION_ROWS * HEAD_DIM)
#define MMA_KV_ELEMS (2 * MMA_STAGES * MMA_TILE_ELEMS) /* K and V tiles of every stage */
#if MMA_Q_IN_SMEM
#define MMA_KV_BASE MMA_Q_ELEMS /* Q stays; K and V follow it */
#define MMA_SMEM_ELEMS (MMA_Q_ELEMS + MMA_KV_ELEMS)
#else
#define MMA_KV_BASE 0 /* Q's staging area is reused for K and V */
#define MMA_SMEM_ELEMS (MMA_Q_ELEMS > MMA_KV_ELEMS ? MMA_Q_ELEMS : MMA_KV_ELEMS)
#endif

/* Key lists in shared memory: two alternate in one stage; with two stages a third lets step
 * u + 2's keys (read from global index lists) load while step u computes. */
#define MMA_KEY_SLOTS (MMA_STAGES + 1)
#define MMA_KEYS_PER_THREAD ((MMA_KV + ATTENTION_THREADS - 1) / ATTENTION_THREADS)

#if INPUT_DTYPE == DTYPE_F16
#define MMA_TYPE "f16"
#elif INPUT_DTYPE == DTYPE_BF16
#define MMA_TYPE "bf16"
#else
#error "the mma path takes f16 or bf16 inputs"
#endif
#if HEAD_DIM != 64 && HEAD_DIM != 128
#error "the mma path is built for HEAD_DIM 64 or 128"
#endif
#if (MMA_KV != 32 && MMA_KV != 64) || SOURCE_TILE % MMA_KV != 0
#error "MMA_KV must be 32 or 64 and divide SOURCE_TILE"
#endif
#if MMA_M_TILES != 1 && MMA_M_TILES != 2
#error "MMA_M_TILES must be 1 or 2"
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

#define LDSM_X4(r0, r1, r2, r3, ptr)                                                             \
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"                 \
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_address(ptr)))
#define LDSM_X4_T(r0, r1, r2, r3, ptr)                                                           \
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"           \
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_address(ptr)))
/* c += A * B for one m16n8k16 tile. */
#define MMA(c, a0, a1, a2, a3, b0, b1)                                                           \
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." MMA_TYPE "." MMA_TYPE ".f32 "          \
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"                     \
                 : "=f"(c[0]), "=f"(c[1]), "=f"(c[2]), "=f"(c[3])                                \
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1),                         \
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]))

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

INLINE float quad_sum(float x) {
    uint y;
    asm volatile("shfl.sync.bfly.b32 %0, %1, 1, 0x1f, 0xffffffff;" : "=r"(y) : "r"(as_uint(x)));
    x += as_float(y);
    asm volatile("shfl.sync.bfly.b32 %0, %1, 2, 0x1f, 0xffffffff;" : "=r"(y) : "r"(as_uint(x)));
    return x + as_float(y);
}

/* Issues the copy of one MMA_KV-row tile of `src` rows (key_of_slot[r], -1 = zero row) into `dst`. */
INLINE void load_tile_async(__local ushort* dst, __global const ushort* src, __local const int* key_of_slot,
                            int tid) {
    for (int e = tid; e < MMA_KV * MMA_CHUNKS; e += ATTENTION_THREADS) {
        const int r = e / MMA_CHUNKS, chunk = e % MMA_CHUNKS;
        const int key = key_of_slot[r];
        cp_async16(dst + swizzled(r, chunk), src + (size_t)max(key, 0) * HEAD_DIM + chunk * 8, key >= 0 ? 16 : 0);
    }
}

#define ATTENTION_SETUP(row_begin, q_shift)                                                      \
    __local ushort smem[MMA_SMEM_ELEMS] __attribute__((aligned(16)));                            \
    __local int tile_keys[MMA_KEY_SLOTS][MMA_KV];                                                \
    __local int tile_plain[MMA_KEY_SLOTS];                                                       \
    const int tid = get_local_id(0);                                                             \
    const int warp = tid / 32, lane = tid % 32, group = lane / 4, quad = lane % 4;                \
    const int block_row = (row_begin);                                                           \
    /* the first row of this warp; m-tile mt covers rows warp_row + 16 mt + [0, 16) */           \
    const int warp_row = block_row + warp * 16 * MMA_M_TILES;                                    \
    const int q_pos_base = warp_row + group + (q_shift);                                         \
    __global const ushort* kh16 = (__global const ushort*)kh;                                    \
    __global const ushort* vh16 = (__global const ushort*)vh;                                    \
    MMA_Q_FRAGMENTS                                                                              \
    float acc_o[MMA_M_TILES][MMA_D_TILES][4];                                                    \
    float row_max[MMA_M_TILES][2], row_sum[MMA_M_TILES][2];                                      \
    {                                                                                            \
        __global const ushort* qh16 = (__global const ushort*)(q + (size_t)head * n_q * HEAD_DIM); \
        for (int e = tid; e < ATTENTION_ROWS * MMA_CHUNKS; e += ATTENTION_THREADS) {             \
            const int r = e / MMA_CHUNKS, chunk = e % MMA_CHUNKS;                                \
            const int qrow = block_row + r;                                                      \
            const bool ok = qrow >= 0 && qrow < n_q;                                             \
            cp_async16(smem + swizzled(r, chunk), qh16 + (size_t)(ok ? qrow : 0) * HEAD_DIM + chunk * 8, \
                       ok ? 16 : 0);                                                             \
        }                                                                                        \
        cp_async_commit();                                                                       \
        cp_async_wait_all();                                                                     \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
        MMA_LOAD_Q_REGISTERS                                                                     \
        _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {                             \
            row_max[mt][0] = -INFINITY; row_max[mt][1] = -INFINITY;                              \
            row_sum[mt][0] = 0.0f; row_sum[mt][1] = 0.0f;                                        \
            _Pragma("unroll") for (int t = 0; t < MMA_D_TILES; ++t) {                            \
                acc_o[mt][t][0] = 0.0f; acc_o[mt][t][1] = 0.0f;                                  \
                acc_o[mt][t][2] = 0.0f; acc_o[mt][t][3] = 0.0f;                                  \
            }                                                                                    \
        }                                                                                        \
        barrier(CLK_LOCAL_MEM_FENCE); /* without MMA_Q_IN_SMEM, Q's staging becomes K/V */       \
    }                                                                                            \
    __local ushort* k_smem = smem + MMA_KV_BASE;                                                 \
    __local ushort* v_smem = smem + MMA_KV_BASE + MMA_TILE_ELEMS;

#if MMA_Q_IN_SMEM
#define MMA_Q_FRAGMENTS
#define MMA_LOAD_Q_REGISTERS
#define MMA_Q_ARGUMENT smem
#else
#define MMA_Q_FRAGMENTS uint qf[MMA_M_TILES][MMA_K_STEPS][4];
#define MMA_LOAD_Q_REGISTERS                                                                     \
    _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {                                 \
        _Pragma("unroll") for (int ks = 0; ks < MMA_K_STEPS; ++ks)                               \
            load_q_fragment(qf[mt][ks], smem, warp, mt, ks, lane);                               \
    }
#define MMA_Q_ARGUMENT qf
#endif

/* Keys of pipeline step u: slot r of source tile u / MMA_STEPS_PER_TILE. */
#define MMA_STEP_KEY(KEY_OF, u, r) KEY_OF((u) / MMA_STEPS_PER_TILE, ((u) % MMA_STEPS_PER_TILE) * MMA_KV + (r))

#if MMA_STAGES == 1
#define ATTENTION_TILES(count, KEY_OF, causal, sink, window, UNMASKED)                           \
    {                                                                                            \
        const int step_count = (count) * MMA_STEPS_PER_TILE;                                     \
        if (step_count > 0) {                                                                    \
            for (int r = tid; r < MMA_KV; r += ATTENTION_THREADS) tile_keys[0][r] = MMA_STEP_KEY(KEY_OF, 0, r); \
            barrier(CLK_LOCAL_MEM_FENCE);                                                        \
            load_tile_async(k_smem, kh16, tile_keys[0], tid);                                    \
            cp_async_commit();                                                                   \
        }                                                                                        \
        for (int step = 0; step < step_count; ++step) {                                          \
            __local const int* keys = tile_keys[step & 1];                                       \
            cp_async_wait_all();                                                                 \
            barrier(CLK_LOCAL_MEM_FENCE); /* K landed; every warp is done with the last V */     \
            load_tile_async(v_smem, vh16, keys, tid);                                            \
            cp_async_commit();                                                                   \
            float s[MMA_M_TILES][MMA_KEY_TILES][4];                                              \
            mma_scores(s, MMA_Q_ARGUMENT, k_smem, warp, lane);                       \
            if (!(UNMASKED(step / MMA_STEPS_PER_TILE)))                                          \
                mask_scores(s, keys, quad, q_pos_base, (causal), (sink), (window));              \
            online_softmax(s, acc_o, row_max, row_sum, scale_log2);                                          \
            if (step + 1 < step_count) { /* next step's keys, into the other slot */             \
                for (int r = tid; r < MMA_KV; r += ATTENTION_THREADS)                            \
                    tile_keys[(step + 1) & 1][r] = MMA_STEP_KEY(KEY_OF, step + 1, r);            \
            }                                                                                    \
            cp_async_wait_all();                                                                 \
            barrier(CLK_LOCAL_MEM_FENCE); /* V landed; every warp is done with K */              \
            if (step + 1 < step_count) {                                                         \
                load_tile_async(k_smem, kh16, tile_keys[(step + 1) & 1], tid);                   \
                cp_async_commit();                                                               \
            }                                                                                    \
            mma_pv(s, acc_o, v_smem, lane);                                                      \
        }                                                                                        \
    }

#else
/* Two stages: the K and V tiles of step t + 1 load into the other buffer while step t computes;
 * one barrier per step. The keys of step t + 2 (and whether its tile needs the mask) are read
 * from the family's index lists at the start of step t and stored at its end, so the latency of
 * those global reads hides behind step t's products and the copies of step t + 1 are issued from
 * shared memory. Slot (t + 2) % 3 is free then: step t - 1, its last reader, ended before step
 * t's barrier. */
#define ATTENTION_TILES(count, KEY_OF, causal, sink, window, UNMASKED)                           \
    {                                                                                            \
        const int step_count = (count) * MMA_STEPS_PER_TILE;                                     \
        for (int u = 0; u < 2 && u < step_count; ++u) {                                          \
            for (int r = tid; r < MMA_KV; r += ATTENTION_THREADS) tile_keys[u][r] = MMA_STEP_KEY(KEY_OF, u, r); \
            if (tid == 0) tile_plain[u] = UNMASKED(u / MMA_STEPS_PER_TILE);                     \
        }                                                                                        \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
        if (step_count > 0) {                                                                    \
            MMA_ISSUE_STEP(0)                                                                    \
        }                                                                                        \
        for (int step = 0; step < step_count; ++step) {                                          \
            const int stage = step & 1, slot = step % 3;                                         \
            const bool prefetch = step + 2 < step_count;                                         \
            int next_keys[MMA_KEYS_PER_THREAD], next_plain = 0;                                  \
            _Pragma("unroll") for (int j = 0; j < MMA_KEYS_PER_THREAD; ++j) {                    \
                const int r = tid + j * ATTENTION_THREADS;                                       \
                next_keys[j] = prefetch && r < MMA_KV ? MMA_STEP_KEY(KEY_OF, step + 2, r) : -1;  \
            }                                                                                    \
            if (prefetch && tid == 0) next_plain = UNMASKED((step + 2) / MMA_STEPS_PER_TILE);    \
            cp_async_wait_all();                                                                 \
            barrier(CLK_LOCAL_MEM_FENCE); /* step's tiles landed; every warp left step - 1 */    \
            if (step + 1 < step_count) {                                                         \
                MMA_ISSUE_STEP(step + 1)                                                         \
            }                                                                                    \
            float s[MMA_M_TILES][MMA_KEY_TILES][4];                                              \
            mma_scores(s, MMA_Q_ARGUMENT, k_smem + stage * 2 * MMA_TILE_ELEMS, warp, lane);      \
            if (!tile_plain[slot])                                                               \
                mask_scores(s, tile_keys[slot], quad, q_pos_base, (causal), (sink), (window));   \
            online_softmax(s, acc_o, row_max, row_sum, scale_log2);                              \
            mma_pv(s, acc_o, k_smem + stage * 2 * MMA_TILE_ELEMS + MMA_TILE_ELEMS, lane);        \
            _Pragma("unroll") for (int j = 0; j < MMA_KEYS_PER_THREAD; ++j) {                    \
                const int r = tid + j * ATTENTION_THREADS;                                       \
                if (prefetch && r < MMA_KV) tile_keys[(step + 2) % 3][r] = next_keys[j];         \
            }                                                                                    \
            if (prefetch && tid == 0) tile_plain[(step + 2) % 3] = next_plain;                  \
        }                                                                                        \
    }

/* Copies step u's K and V rows (keys from its slot) into stage u & 1. */
#define MMA_ISSUE_STEP(u)                                                                        \
    {                                                                                            \
        __local ushort* k_dst = k_smem + ((u) & 1) * 2 * MMA_TILE_ELEMS;                         \
        __local ushort* v_dst = k_dst + MMA_TILE_ELEMS;                                          \
        __local const int* step_keys = tile_keys[(u) % 3];                                       \
        for (int e = tid; e < MMA_KV * MMA_CHUNKS; e += ATTENTION_THREADS) {                     \
            const int r = e / MMA_CHUNKS, chunk = e % MMA_CHUNKS;                                \
            const int key = step_keys[r];                                                        \
            const size_t src = (size_t)max(key, 0) * HEAD_DIM + chunk * 8;                       \
            cp_async16(k_dst + swizzled(r, chunk), kh16 + src, key >= 0 ? 16 : 0);              \
            cp_async16(v_dst + swizzled(r, chunk), vh16 + src, key >= 0 ? 16 : 0);              \
        }                                                                                        \
        cp_async_commit();                                                                       \
    }
#endif

#define ATTENTION_STORE() store_rows(o, head, n_q, warp_row + group, acc_o, row_sum, quad);

/* A fragment of Q for m-tile mt, k-step ks, from the swizzled Q tile. */
INLINE void load_q_fragment(uint* f, __local const ushort* q_smem, int warp, int mt, int ks, int lane) {
    const int r = (warp * MMA_M_TILES + mt) * 16 + (lane & 15), chunk = 2 * ks + (lane >> 4);
    LDSM_X4(f[0], f[1], f[2], f[3], q_smem + swizzled(r, chunk));
}

/* S = Q K^T (unscaled: the softmax folds the scale into its exp2) for one step; each K fragment
 * serves every m-tile of the warp. */
#if MMA_Q_IN_SMEM
INLINE void mma_scores(float s[MMA_M_TILES][MMA_KEY_TILES][4], __local const ushort* q_smem,
                       __local const ushort* k_smem, int warp, int lane) {
#else
INLINE void mma_scores(float s[MMA_M_TILES][MMA_KEY_TILES][4], uint qf[MMA_M_TILES][MMA_K_STEPS][4],
                       __local const ushort* k_smem, int warp, int lane) {
#endif
    _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
        _Pragma("unroll") for (int t = 0; t < MMA_KEY_TILES; ++t) {
            s[mt][t][0] = 0.0f; s[mt][t][1] = 0.0f; s[mt][t][2] = 0.0f; s[mt][t][3] = 0.0f;
        }
    }
    _Pragma("unroll") for (int ks = 0; ks < MMA_K_STEPS; ++ks) {
#if MMA_Q_IN_SMEM
        uint q_step[MMA_M_TILES][4];
        _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) load_q_fragment(q_step[mt], q_smem, warp, mt, ks, lane);
#define Q_FRAGMENT(mt) q_step[mt]
#else
#define Q_FRAGMENT(mt) qf[mt][ks]
#endif
        _Pragma("unroll") for (int kb = 0; kb < MMA_KEY_TILES / 2; ++kb) {
            const int r = kb * 16 + (lane & 7) + ((lane >> 4) << 3);
            const int chunk = 2 * ks + ((lane >> 3) & 1);
            uint b0, b1, b2, b3;
            LDSM_X4(b0, b1, b2, b3, k_smem + swizzled(r, chunk));
            _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
                MMA(s[mt][2 * kb], Q_FRAGMENT(mt)[0], Q_FRAGMENT(mt)[1], Q_FRAGMENT(mt)[2], Q_FRAGMENT(mt)[3], b0, b1);
                MMA(s[mt][2 * kb + 1], Q_FRAGMENT(mt)[0], Q_FRAGMENT(mt)[1], Q_FRAGMENT(mt)[2], Q_FRAGMENT(mt)[3], b2, b3);
            }
        }
#undef Q_FRAGMENT
    }
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

/* 1 when `p` is non-zero in any lane of the warp (every lane gets the same answer). */
INLINE int warp_any(int p) {
    int r;
    asm volatile("{\n\t.reg .pred in, out;\n\tsetp.ne.s32 in, %1, 0;\n\tvote.sync.any.pred out, in, 0xffffffff;\n\t"
                 "selp.s32 %0, 1, 0, out;\n\t}" : "=r"(r) : "r"(p));
    return r;
}

/* Online softmax over one step: new row maxima, rescale O and the row sums, S -> P in place.
 * Maxima are kept unscaled (scale > 0 commutes with max); p = 2^(s * scale - m * scale) is one
 * FMA and one ex2 per score. With MMA_RESCALE_LOG2 > 0 a warp keeps its rows' maxima (and skips
 * the rescale of O, 4 * MMA_D_TILES multiplies per row pair) while no row's new maximum exceeds
 * its kept one by 2^MMA_RESCALE_LOG2: P then stays <= 2^MMA_RESCALE_LOG2, exact after the
 * final division by the row sum (the FlashAttention-4 trick). */
INLINE void online_softmax(float s[MMA_M_TILES][MMA_KEY_TILES][4], float acc_o[MMA_M_TILES][MMA_D_TILES][4],
                           float row_max[MMA_M_TILES][2], float row_sum[MMA_M_TILES][2], float scale_log2) {
    float new_max[MMA_M_TILES][2];
    int grows = 0;
    _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
        float m0 = row_max[mt][0], m1 = row_max[mt][1];
        _Pragma("unroll") for (int t = 0; t < MMA_KEY_TILES; ++t) {
            m0 = fmax(m0, fmax(s[mt][t][0], s[mt][t][1]));
            m1 = fmax(m1, fmax(s[mt][t][2], s[mt][t][3]));
        }
        new_max[mt][0] = quad_max(m0);
        new_max[mt][1] = quad_max(m1);
#if MMA_RESCALE_LOG2 > 0
        /* -inf kept and finite new: grows; both -inf (nothing seen yet): nothing to rescale */
        grows |= new_max[mt][0] * scale_log2 > fma(row_max[mt][0], scale_log2, (float)MMA_RESCALE_LOG2);
        grows |= new_max[mt][1] * scale_log2 > fma(row_max[mt][1], scale_log2, (float)MMA_RESCALE_LOG2);
#endif
    }
#if MMA_RESCALE_LOG2 > 0
    if (warp_any(grows))
#endif
    {
        _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
            /* A row that has seen nothing yet keeps max -inf; its alpha multiplies zeros. */
            const float alpha0 = new_max[mt][0] == -INFINITY ? 1.0f : native_exp2((row_max[mt][0] - new_max[mt][0]) * scale_log2);
            const float alpha1 = new_max[mt][1] == -INFINITY ? 1.0f : native_exp2((row_max[mt][1] - new_max[mt][1]) * scale_log2);
            row_sum[mt][0] *= alpha0;
            row_sum[mt][1] *= alpha1;
            _Pragma("unroll") for (int t = 0; t < MMA_D_TILES; ++t) {
                acc_o[mt][t][0] *= alpha0; acc_o[mt][t][1] *= alpha0;
                acc_o[mt][t][2] *= alpha1; acc_o[mt][t][3] *= alpha1;
            }
            row_max[mt][0] = new_max[mt][0];
            row_max[mt][1] = new_max[mt][1];
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
}

/* O += P V for one step; P comes from the softmaxed S registers, each V fragment serves every
 * m-tile of the warp. */
INLINE void mma_pv(float s[MMA_M_TILES][MMA_KEY_TILES][4], float acc_o[MMA_M_TILES][MMA_D_TILES][4],
                   __local const ushort* v_smem, int lane) {
    _Pragma("unroll") for (int kk = 0; kk < MMA_KEY_TILES / 2; ++kk) {
        uint p[MMA_M_TILES][4];
        _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
            p[mt][0] = pack2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
            p[mt][1] = pack2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
            p[mt][2] = pack2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
            p[mt][3] = pack2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
        _Pragma("unroll") for (int dp = 0; dp < MMA_D_TILES / 2; ++dp) {
            const int r = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
            const int chunk = 2 * dp + (lane >> 4);
            uint b0, b1, b2, b3;
            LDSM_X4_T(b0, b1, b2, b3, v_smem + swizzled(r, chunk));
            _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
                MMA(acc_o[mt][2 * dp], p[mt][0], p[mt][1], p[mt][2], p[mt][3], b0, b1);
                MMA(acc_o[mt][2 * dp + 1], p[mt][0], p[mt][1], p[mt][2], p[mt][3], b2, b3);
            }
        }
    }
}

/* Normalises by the quad-reduced row sums and writes this thread's rows (2 per m-tile). */
INLINE void store_rows(__global out_t* o, int head, int n_q, int row_base, float acc_o[MMA_M_TILES][MMA_D_TILES][4],
                       float row_sum[MMA_M_TILES][2], int quad) {
    _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {
        const float sum0 = quad_sum(row_sum[mt][0]), sum1 = quad_sum(row_sum[mt][1]);
        const float inv0 = sum0 > 0.0f ? 1.0f / sum0 : 0.0f, inv1 = sum1 > 0.0f ? 1.0f / sum1 : 0.0f;
        const int row0 = row_base + 16 * mt, row1 = row0 + 8;
        _Pragma("unroll") for (int t = 0; t < MMA_D_TILES; ++t) {
            const int col = t * 8 + 2 * quad;
            if (row0 >= 0 && row0 < n_q) {
                const size_t at = ((size_t)head * n_q + row0) * HEAD_DIM + col;
                STORE_OUT(o, at, acc_o[mt][t][0] * inv0);
                STORE_OUT(o, at + 1, acc_o[mt][t][1] * inv0);
            }
            if (row1 >= 0 && row1 < n_q) {
                const size_t at = ((size_t)head * n_q + row1) * HEAD_DIM + col;
                STORE_OUT(o, at, acc_o[mt][t][2] * inv1);
                STORE_OUT(o, at + 1, acc_o[mt][t][3] * inv1);
            }
        }
    }
}

#endif
