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
 * The copies, softmax, mask and store are attention_nv_fragments.h's, shared with the wgmma path.
 * Fragment layouts (PTX ISA, mma.m16n8k16, lane = 4 * group + quad):
 *   A (16x16, row): a0 (group, 2q..2q+1)  a1 (group+8, 2q..)  a2 (group, 8+2q..)  a3 (group+8, 8+2q..)
 *   B (16x8, col):  b0 (k = 2q..2q+1, n = group)  b1 (k = 8+2q.., n = group)
 *   C (16x8):       c0, c1 (group, 2q, 2q+1)   c2, c3 (group+8, 2q, 2q+1)
 * The C fragments of two adjacent 8-key n-tiles are, packed to 16 bits, exactly the A fragment
 * of P for a 16-key step, so P never leaves registers.
 *
 * Requires: INPUT_DTYPE f16 or bf16, HEAD_DIM 64 or 128, __local arrays 16-byte aligned
 * (docs/NVIDIA-OPENCL.md: ldmatrix/cp.async fault otherwise).
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

#if HEAD_DIM != 64 && HEAD_DIM != 128
#error "the mma path is built for HEAD_DIM 64 or 128"
#endif
#if (MMA_KV != 32 && MMA_KV != 64) || SOURCE_TILE % MMA_KV != 0
#error "MMA_KV must be 32 or 64 and divide SOURCE_TILE"
#endif
#if MMA_M_TILES != 1 && MMA_M_TILES != 2
#error "MMA_M_TILES must be 1 or 2"
#endif
#include "attention_nv_fragments.h"


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


/* 16 for a key whose row is copied, 0 for none (-1) and for a flagged key (attention_path.h: both
 * become zero rows). */
#define MMA_ROW_BYTES(key) ((key) >= 0 && !(flagged && kfh[key]) ? 16 : 0)

/* Issues the copy of one MMA_KV-row tile of `src` rows (key_of_slot[r], -1 = zero row; rows
 * `row_stride` elements apart) into `dst`; flagged keys (when `flagged`) become zero rows. */
INLINE void load_tile_async(__local ushort* dst, __global const ushort* src, size_t row_stride,
                            __local const int* key_of_slot, int tid, int flagged, __global const uchar* kfh) {
    for (int e = tid; e < MMA_KV * MMA_CHUNKS; e += ATTENTION_THREADS) {
        const int r = e / MMA_CHUNKS, chunk = e % MMA_CHUNKS;
        const int key = key_of_slot[r];
        cp_async16(dst + swizzled(r, chunk), src + (size_t)max(key, 0) * row_stride + chunk * 8, MMA_ROW_BYTES(key));
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
    /* NONFINITE_KEYS: rows written as NaN, covering a flagged key or with a non-finite q */     \
    int poisoned[MMA_M_TILES][2] = {{0, 0}};                                                     \
    __local uchar q_nonfinite[ATTENTION_ROWS];                                                   \
    {                                                                                            \
        __global const ushort* qh16 = (__global const ushort*)qh;                                \
        for (int e = tid; e < ATTENTION_ROWS * MMA_CHUNKS; e += ATTENTION_THREADS) {             \
            const int r = e / MMA_CHUNKS, chunk = e % MMA_CHUNKS;                                \
            const int qrow = block_row + r;                                                      \
            const bool ok = qrow >= 0 && qrow < n_q;                                             \
            cp_async16(smem + swizzled(r, chunk), qh16 + (size_t)(ok ? qrow : 0) * q_rows + chunk * 8, \
                       ok ? 16 : 0);                                                             \
        }                                                                                        \
        cp_async_commit();                                                                       \
        cp_async_wait_all();                                                                     \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
        MMA_LOAD_Q_REGISTERS                                                                     \
        _Pragma("unroll") for (int mt = 0; mt < MMA_M_TILES; ++mt) {                             \
            const int q_row_ = (warp * MMA_M_TILES + mt) * 16 + group;                           \
            if (NONFINITE_KEYS) {                                                                \
                Q_NONFINITE(q_nonfinite, smem, q_row_, quad, swizzled)                           \
                Q_NONFINITE(q_nonfinite, smem, q_row_ + 8, quad, swizzled)                       \
            }                                                                                    \
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
            load_tile_async(k_smem, kh16, k_rows, tile_keys[0], tid, flagged, kfh);              \
            cp_async_commit();                                                                   \
        }                                                                                        \
        for (int step = 0; step < step_count; ++step) {                                          \
            __local const int* keys = tile_keys[step & 1];                                       \
            cp_async_wait_all();                                                                 \
            barrier(CLK_LOCAL_MEM_FENCE); /* K landed; every warp is done with the last V */     \
            load_tile_async(v_smem, vh16, v_rows, keys, tid, flagged, kfh);                      \
            cp_async_commit();                                                                   \
            float s[MMA_M_TILES][MMA_KEY_TILES][4];                                              \
            mma_scores(s, MMA_Q_ARGUMENT, k_smem, warp, lane);                                   \
            const int masked = !(UNMASKED(step / MMA_STEPS_PER_TILE));                           \
            if (masked) mask_scores(s, keys, quad, q_pos_base, (causal), (sink), (window));      \
            if (flagged)                                                                         \
                flag_rows(poisoned, keys, kfh, masked, quad, q_pos_base, (causal), (sink), (window)); \
            online_softmax(s, acc_o, row_max, row_sum, scale_log2);                                          \
            if (step + 1 < step_count) { /* next step's keys, into the other slot */             \
                for (int r = tid; r < MMA_KV; r += ATTENTION_THREADS)                            \
                    tile_keys[(step + 1) & 1][r] = MMA_STEP_KEY(KEY_OF, step + 1, r);            \
            }                                                                                    \
            cp_async_wait_all();                                                                 \
            barrier(CLK_LOCAL_MEM_FENCE); /* V landed; every warp is done with K */              \
            if (step + 1 < step_count) {                                                         \
                load_tile_async(k_smem, kh16, k_rows, tile_keys[(step + 1) & 1], tid, flagged, kfh); \
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
            if (flagged)                                                                         \
                flag_rows(poisoned, tile_keys[slot], kfh, !tile_plain[slot], quad, q_pos_base,   \
                          (causal), (sink), (window));                                           \
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
            const size_t row = (size_t)max(key, 0);                                              \
            cp_async16(k_dst + swizzled(r, chunk), kh16 + row * k_rows + chunk * 8, MMA_ROW_BYTES(key)); \
            cp_async16(v_dst + swizzled(r, chunk), vh16 + row * v_rows + chunk * 8, MMA_ROW_BYTES(key)); \
        }                                                                                        \
        cp_async_commit();                                                                       \
    }
#endif

#define ATTENTION_STORE()                                                                        \
    store_rows(oh, o_rows, n_q, warp_row + group, acc_o, row_sum, poisoned,                      \
               q_nonfinite + warp * 16 * MMA_M_TILES + group, quad);

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


#endif
