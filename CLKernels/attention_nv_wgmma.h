/*
 * attention_nv_wgmma.h: the Hopper tile path of every attention kernel family (NVIDIA compute
 * capability 9.0): wgmma, Hopper's asynchronous warpgroup matrix instruction, on the same four
 * macros as attention_portable.h (see there for the contract).
 *
 * wgmma is an sm_90a instruction, which NVIDIA's OpenCL compiler rejects (it targets sm_90). Every
 * sm_90a line therefore sits behind the PTX comment marker "// SM90A " (the SM90A() macro): the
 * driver's ordinary build accepts the comments, and the host's second stage (Sm90aBuild.swift)
 * strips the markers, retargets the PTX to sm_90a and builds it again (docs/NVIDIA-OPENCL.md).
 *
 * FlashAttention-3 structure, warp-specialised (Shah et al. 2024, "FlashAttention-3"):
 *   producer, WG_PRODUCER_WARPS warps after the consumers (a whole warpgroup for the dense
 *     kernels); for every step u (WG_KV keys: one or two 64-key tiles of the family's key list):
 *     waits until stage u % WG_STAGES of the shared-memory ring is free (mbarrier empty[]), stores
 *     the step's keys and mask flag, issues the K and V rows with cp.async, each thread one 16-byte
 *     chunk of every WG_ROWS_PER_PASS-th row (zero rows for padding keys), and hands the stage over
 *     on mbarrier full[] once its copies have landed (cp.async.mbarrier.arrive.noinc); the keys of
 *     step u + 1 load from the index lists meanwhile. One producer warp cannot issue the copies
 *     fast enough (202 against 438 TF/s dense on the H200): the copies are the work here that
 *     TMA does in FlashAttention-3, and tensor-map copies are out of OpenCL's reach;
 *   consumers, WG_CONSUMERS warpgroups of 64 query rows; for every step u:
 *       wait full[u]; S = Q K_u^T    wgmma m64nWG_KVk16 x HEAD_DIM/16, Q and K from shared memory
 *       wait; free stage u - 1; mask, online softmax (attention_nv_fragments.h)
 *       O += P V_u                   wgmma m64nHEAD_DIMk16 x WG_KV/16, P straight from registers,
 *                                    left running into the next step's S
 *   With WG_OVERLAP the S of step u and the P V of step u - 1 are in flight together and the
 *   softmax of step u runs while that P V finishes (FlashAttention-3's intra-warpgroup overlap).
 *   Either way one warpgroup's softmax overlaps the products of the other warpgroups on the SM.
 *   No work-group barrier after the start.
 *
 * Shared-memory tiles use the 128-byte swizzle of the wgmma descriptors: a [rows][HEAD_DIM] tile is
 * HEAD_DIM / 64 column blocks of [rows][64] (128-byte rows), 16-byte chunk c of row r stored at
 * chunk c ^ (r & 7), 1024-byte aligned (the swizzle repeats every 8 rows). Q and K are K-major
 * operands (stride byte offset 1024: the next 8 rows); V is the MN-major B operand of P V
 * (transposed; stride byte offset 1024: the next 8 keys; leading byte offset: the next 64 columns).
 *
 * Requires: INPUT_DTYPE f16 or bf16, HEAD_DIM 64 or 128, SOURCE_TILE 64.
 */
#ifndef MINFERENCECL_ATTENTION_NV_WGMMA_H
#define MINFERENCECL_ATTENTION_NV_WGMMA_H

#ifndef WG_CONSUMERS
#define WG_CONSUMERS 2 /* consumer warpgroups, 64 query rows each */
#endif
#ifndef WG_STAGES
#define WG_STAGES 2 /* K/V stages in the shared-memory ring */
#endif
#ifndef WG_PRODUCER_WARPS
#define WG_PRODUCER_WARPS 1 /* warps issuing the copies */
#endif
#ifndef WG_KV
#define WG_KV 64 /* keys per step: 64 (one source tile) or 128 (two: half the per-step overhead, N = 128 products) */
#endif
#ifndef WG_OVERLAP
#define WG_OVERLAP 1 /* 1: step u's softmax runs while step u - 1's O += P V does (FlashAttention-3's intra-warpgroup overlap) */
#endif
#if WG_CONSUMERS < 1 || WG_CONSUMERS > 2
#error "WG_CONSUMERS must be 1 or 2"
#endif
#if WG_STAGES < 2 || WG_STAGES > 4
#error "WG_STAGES must be 2, 3 or 4"
#endif
#if WG_PRODUCER_WARPS != 1 && WG_PRODUCER_WARPS != 2 && WG_PRODUCER_WARPS != 4
#error "WG_PRODUCER_WARPS must be 1, 2 or 4"
#endif
#ifndef WG_PRODUCER_REGISTERS
#define WG_PRODUCER_REGISTERS 0 /* > 0: setmaxnreg moves registers from the producer warpgroup to the consumers */
#endif
#ifndef WG_CONSUMER_REGISTERS
#define WG_CONSUMER_REGISTERS 0 /* the consumers' count then; the host balances both against the entry's .maxnreg */
#endif
#if WG_PRODUCER_REGISTERS > 0 && (WG_PRODUCER_WARPS != 4 || WG_CONSUMER_REGISTERS == 0)
#error "setmaxnreg needs a producer warpgroup (WG_PRODUCER_WARPS 4) and WG_CONSUMER_REGISTERS"
#endif
#if HEAD_DIM != 64 && HEAD_DIM != 128
#error "the wgmma path is built for HEAD_DIM 64 or 128"
#endif
#if SOURCE_TILE != 64
#error "the wgmma path steps over 64-key source tiles"
#endif
#if WG_KV != 64 && WG_KV != 128
#error "WG_KV must be 64 or 128"
#endif

#define MMA_M_TILES 1               /* per warp: 16 rows of its warpgroup's 64 */
#define MMA_KEY_TILES (WG_KV / 8)   /* 8-key n-tiles of S per step */
#define MMA_D_TILES (HEAD_DIM / 8)
#include "attention_nv_fragments.h"

#define ATTENTION_ROWS (64 * WG_CONSUMERS)
#define WG_CONSUMER_THREADS (128 * WG_CONSUMERS)
#define WG_PRODUCER_THREADS (32 * WG_PRODUCER_WARPS)
#define ATTENTION_THREADS (WG_CONSUMER_THREADS + WG_PRODUCER_THREADS)
#define WG_CHUNKS (HEAD_DIM / 8)                /* 16-byte chunks per row */
#define WG_K_STEPS (HEAD_DIM / 16)              /* k-steps of Q K^T */
#define WG_TILES_PER_STEP (WG_KV / SOURCE_TILE)
#define WG_TILE_ELEMS (WG_KV * HEAD_DIM)        /* one step's K or V rows */
#define WG_Q_ELEMS (ATTENTION_ROWS * HEAD_DIM)
#define WG_SMEM_ELEMS (WG_Q_ELEMS + WG_STAGES * 2 * WG_TILE_ELEMS)
#define WG_KEYS_PER_PRODUCER ((WG_KV + WG_PRODUCER_THREADS - 1) / WG_PRODUCER_THREADS)
#define WG_ROWS_PER_PASS (WG_PRODUCER_THREADS / WG_CHUNKS) /* rows one pass of the producers copies */

/* One sm_90a line of an inline-asm string, hidden from the sm_90 build. */
#define SM90A(line) "// SM90A " line "\n\t"

/* Element offset of 16-byte chunk `chunk` of row `row` in a 128-byte-swizzled [rows][HEAD_DIM] tile. */
INLINE int sw128_offset(int rows, int row, int chunk) {
    return (chunk >> 3) * rows * 64 + row * 64 + (((chunk & 7) ^ (row & 7)) << 3);
}

/* wgmma shared-memory matrix descriptor (PTX ISA, "matrix descriptor"): start address >> 4 in bits
 * 0-13, leading byte offset >> 4 in 16-29, stride byte offset >> 4 in 32-45, 128-byte swizzle (1) in
 * 62-63. The stride byte offset is always 1024: 8 rows of 128 bytes. */
INLINE ulong sw128_descriptor(__local const ushort* tile, uint leading_bytes) {
    const uint address = smem_address(tile);
    return (ulong)((address & 0x3FFFF) >> 4) | ((ulong)(leading_bytes >> 4) << 16) | ((ulong)(1024 >> 4) << 32) | (1ul << 62);
}

/* ---- wgmma and its ordering (all sm_90a) --------------------------------------------------- */

INLINE void wgmma_fence(void) { asm volatile(SM90A("wgmma.fence.sync.aligned;") ::: "memory"); }
INLINE void wgmma_commit(void) { asm volatile(SM90A("wgmma.commit_group.sync.aligned;") ::: "memory"); }
INLINE void wgmma_wait_all(void) { asm volatile(SM90A("wgmma.wait_group.sync.aligned 0;") ::: "memory"); }
/* Waits until at most one committed group is in flight (groups complete in order). */
INLINE void wgmma_wait_one(void) { asm volatile(SM90A("wgmma.wait_group.sync.aligned 1;") ::: "memory"); }

#define WG_ACC4(a, t) "+f"(a[0][t][0]), "+f"(a[0][t][1]), "+f"(a[0][t][2]), "+f"(a[0][t][3])
#define WG_ACC32(a) WG_ACC4(a, 0), WG_ACC4(a, 1), WG_ACC4(a, 2), WG_ACC4(a, 3), WG_ACC4(a, 4), WG_ACC4(a, 5), \
                    WG_ACC4(a, 6), WG_ACC4(a, 7)
#define WG_ACC64(a) WG_ACC32(a), WG_ACC4(a, 8), WG_ACC4(a, 9), WG_ACC4(a, 10), WG_ACC4(a, 11), WG_ACC4(a, 12), \
                    WG_ACC4(a, 13), WG_ACC4(a, 14), WG_ACC4(a, 15)
#define WG_REGS32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
                  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define WG_REGS64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
                  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, "   \
                  "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "   \
                  "%56, %57, %58, %59, %60, %61, %62, %63}"

/* S (+)= A B^T for 64 rows x WG_KV keys x 16 of the head dim, both operands K-major in shared
 * memory; `accumulate` 0 overwrites S. */
INLINE void wgmma_scores(float s[1][MMA_KEY_TILES][4], ulong a_desc, ulong b_desc, int accumulate) {
#if WG_KV == 128
    asm volatile(SM90A("{") SM90A(".reg .pred p;") SM90A("setp.ne.b32 p, %66, 0;")
                 SM90A("wgmma.mma_async.sync.aligned.m64n128k16.f32." MMA_TYPE "." MMA_TYPE " " WG_REGS64 ", %64, %65, p, 1, 1, 0, 0;")
                 SM90A("}")
                 : WG_ACC64(s) : "l"(a_desc), "l"(b_desc), "r"(accumulate) : "memory");
#else
    asm volatile(SM90A("{") SM90A(".reg .pred p;") SM90A("setp.ne.b32 p, %34, 0;")
                 SM90A("wgmma.mma_async.sync.aligned.m64n64k16.f32." MMA_TYPE "." MMA_TYPE " " WG_REGS32 ", %32, %33, p, 1, 1, 0, 0;")
                 SM90A("}")
                 : WG_ACC32(s) : "l"(a_desc), "l"(b_desc), "r"(accumulate) : "memory");
#endif
}

/* O += P V for 64 rows x HEAD_DIM x 16 keys: P from registers (the packed A fragment), V MN-major
 * (transposed) in shared memory. */
INLINE void wgmma_pv(float o[1][MMA_D_TILES][4], uint a0, uint a1, uint a2, uint a3, ulong b_desc) {
#if HEAD_DIM == 128
    asm volatile(SM90A("{") SM90A(".reg .pred p;") SM90A("setp.ne.b32 p, %69, 0;")
                 SM90A("wgmma.mma_async.sync.aligned.m64n128k16.f32." MMA_TYPE "." MMA_TYPE " " WG_REGS64 ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;")
                 SM90A("}")
                 : WG_ACC64(o) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(b_desc), "r"(1) : "memory");
#else
    asm volatile(SM90A("{") SM90A(".reg .pred p;") SM90A("setp.ne.b32 p, %37, 0;")
                 SM90A("wgmma.mma_async.sync.aligned.m64n64k16.f32." MMA_TYPE "." MMA_TYPE " " WG_REGS32 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;")
                 SM90A("}")
                 : WG_ACC32(o) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(b_desc), "r"(1) : "memory");
#endif
}

/* Ties registers an asynchronous wgmma writes to the point after its wait: the compiler sees them
 * written here, so no read of them moves above the wait (CUTLASS's warpgroup_fence_operand). */
#define WG_PIN(x) asm volatile("" : "+f"(x) :: "memory")
INLINE void pin_scores(float s[1][MMA_KEY_TILES][4]) {
    _Pragma("unroll") for (int t = 0; t < MMA_KEY_TILES; ++t) {
        WG_PIN(s[0][t][0]); WG_PIN(s[0][t][1]); WG_PIN(s[0][t][2]); WG_PIN(s[0][t][3]);
    }
}
INLINE void pin_output(float o[1][MMA_D_TILES][4]) {
    _Pragma("unroll") for (int t = 0; t < MMA_D_TILES; ++t) {
        WG_PIN(o[0][t][0]); WG_PIN(o[0][t][1]); WG_PIN(o[0][t][2]); WG_PIN(o[0][t][3]);
    }
}

/* S = Q K^T for one consumer warpgroup: Q rows [64 g, 64 g + 64) of the Q tile, one step's K rows. */
INLINE void tile_scores(float s[1][MMA_KEY_TILES][4], __local const ushort* q_tile, int consumer,
                        __local const ushort* k_tile) {
    _Pragma("unroll") for (int ks = 0; ks < WG_K_STEPS; ++ks) {
        /* k-step ks: column block ks / 4, 32-byte offset (ks % 4) inside its swizzled rows */
        const ulong a = sw128_descriptor(q_tile + (ks >> 2) * ATTENTION_ROWS * 64 + consumer * 64 * 64 + (ks & 3) * 16, 16);
        const ulong b = sw128_descriptor(k_tile + (ks >> 2) * WG_KV * 64 + (ks & 3) * 16, 16);
        wgmma_scores(s, a, b, ks > 0);
    }
}

/* P, the softmaxed S packed to 16 bits: the A fragment of each 16-key step of P V. */
INLINE void pack_probabilities(uint p[WG_KV / 16][4], float s[1][MMA_KEY_TILES][4]) {
    _Pragma("unroll") for (int kk = 0; kk < WG_KV / 16; ++kk) {
        p[kk][0] = pack2(s[0][2 * kk][0], s[0][2 * kk][1]);
        p[kk][1] = pack2(s[0][2 * kk][2], s[0][2 * kk][3]);
        p[kk][2] = pack2(s[0][2 * kk + 1][0], s[0][2 * kk + 1][1]);
        p[kk][3] = pack2(s[0][2 * kk + 1][2], s[0][2 * kk + 1][3]);
    }
}

/* O += P V for one step's V rows. */
INLINE void tile_pv(float o[1][MMA_D_TILES][4], uint p[WG_KV / 16][4], __local const ushort* v_tile) {
    _Pragma("unroll") for (int kk = 0; kk < WG_KV / 16; ++kk) {
        /* keys 16 kk ... 16 kk + 15: rows 16 kk of every column block; the next block WG_KV * 64 elements on */
        wgmma_pv(o, p[kk][0], p[kk][1], p[kk][2], p[kk][3], sw128_descriptor(v_tile + kk * 16 * 64, WG_KV * 64 * 2));
    }
}

/* ---- mbarriers (sm_90) -------------------------------------------------------------------- */

INLINE uint barrier_address(__local const ulong* bar) { return (uint)(size_t)bar; }
INLINE void mbarrier_init(__local ulong* bar, uint count) {
    asm volatile("mbarrier.init.shared.b64 [%0], %1;" ::"r"(barrier_address(bar)), "r"(count) : "memory");
}
/* One arrival (release: the caller's earlier shared-memory stores are visible to the waiters). */
INLINE void mbarrier_arrive(__local ulong* bar) {
    asm volatile("mbarrier.arrive.shared.b64 _, [%0];" ::"r"(barrier_address(bar)) : "memory");
}
/* One arrival once every cp.async this thread issued so far has landed. */
INLINE void mbarrier_arrive_on_copies(__local ulong* bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared.b64 [%0];" ::"r"(barrier_address(bar)) : "memory");
}
/* Waits until the phase of parity `parity` has completed (acquire); the warp leaves converged, as
 * the .aligned wgmma instructions after it require. */
INLINE void mbarrier_wait(__local ulong* bar, uint parity) {
    uint done = 0;
    while (!done) {
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared.b64 p, [%1], %2;\n\tselp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done) : "r"(barrier_address(bar)), "r"(parity) : "memory");
    }
    asm volatile("bar.warp.sync -1;" ::: "memory");
}
/* Generic-proxy writes (ordinary stores, cp.async) before async-proxy reads (wgmma). */
INLINE void fence_proxy_async(void) { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
#define WG_STRING(x) #x
#define WG_NUMBER(x) WG_STRING(x)
/* setmaxnreg (sm_90a): the producers give registers back, the consumers take them (the entry's
 * .maxnreg, from Sm90aBuild, makes the count at entry known). */
#if WG_PRODUCER_REGISTERS > 0
#define WG_PRODUCER_ROLE() asm volatile(SM90A("setmaxnreg.dec.sync.aligned.u32 " WG_NUMBER(WG_PRODUCER_REGISTERS) ";") ::: "memory")
#define WG_CONSUMER_ROLE() asm volatile(SM90A("setmaxnreg.inc.sync.aligned.u32 " WG_NUMBER(WG_CONSUMER_REGISTERS) ";") ::: "memory")
#else
#define WG_PRODUCER_ROLE()
#define WG_CONSUMER_ROLE()
#endif

/* The producer warps alone (named barrier 1). */
INLINE void producer_sync(void) { asm volatile("bar.sync 1, %0;" ::"n"(WG_PRODUCER_THREADS) : "memory"); }

/* ---- the four macros ----------------------------------------------------------------------- */

#define ATTENTION_SETUP(row_begin, q_shift)                                                      \
    __local ushort smem[WG_SMEM_ELEMS] __attribute__((aligned(1024)));                           \
    __local ulong full_bar[WG_STAGES], empty_bar[WG_STAGES];                                     \
    __local int stage_keys[WG_STAGES][WG_KV];                                                    \
    __local int stage_plain[WG_STAGES];                                                          \
    const int tid = get_local_id(0);                                                             \
    const int warp = tid / 32, lane = tid % 32, group = lane / 4, quad = lane % 4;                \
    const bool producer = tid >= WG_CONSUMER_THREADS;                                            \
    const int block_row = (row_begin);                                                           \
    /* consumer warp w computes rows block_row + 16 w + [0, 16) (warpgroup w / 4) */            \
    const int warp_row = block_row + warp * 16;                                                  \
    const int q_pos_base = warp_row + group + (q_shift);                                         \
    __global const ushort* kh16 = (__global const ushort*)kh;                                    \
    __global const ushort* vh16 = (__global const ushort*)vh;                                    \
    __local ushort* q_tile = smem;                                                               \
    float acc_o[1][MMA_D_TILES][4];                                                              \
    float row_max[1][2], row_sum[1][2];                                                          \
    /* NONFINITE_KEYS: rows written as NaN, covering a flagged key or with a non-finite q */     \
    int poisoned[1][2] = {{0, 0}};                                                               \
    __local uchar q_nonfinite[ATTENTION_ROWS];                                                   \
    {                                                                                            \
        __global const ushort* qh16 = (__global const ushort*)qh;                                \
        for (int e = tid; e < ATTENTION_ROWS * WG_CHUNKS; e += ATTENTION_THREADS) {              \
            const int r = e / WG_CHUNKS, chunk = e % WG_CHUNKS;                                  \
            const int qrow = block_row + r;                                                      \
            const bool ok = qrow >= 0 && qrow < n_q;                                             \
            cp_async16(q_tile + sw128_offset(ATTENTION_ROWS, r, chunk),                          \
                       qh16 + (size_t)(ok ? qrow : 0) * q_rows + chunk * 8, ok ? 16 : 0);        \
        }                                                                                        \
        cp_async_commit();                                                                       \
        if (tid == 0) {                                                                          \
            for (int st = 0; st < WG_STAGES; ++st) {                                             \
                mbarrier_init(&full_bar[st], 2 * WG_PRODUCER_THREADS);                           \
                mbarrier_init(&empty_bar[st], WG_CONSUMER_THREADS);                              \
            }                                                                                    \
            asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");                   \
        }                                                                                        \
        row_max[0][0] = -INFINITY; row_max[0][1] = -INFINITY;                                    \
        row_sum[0][0] = 0.0f; row_sum[0][1] = 0.0f;                                              \
        _Pragma("unroll") for (int t = 0; t < MMA_D_TILES; ++t) {                                \
            acc_o[0][t][0] = 0.0f; acc_o[0][t][1] = 0.0f; acc_o[0][t][2] = 0.0f; acc_o[0][t][3] = 0.0f; \
        }                                                                                        \
        cp_async_wait_all();                                                                     \
        fence_proxy_async();                                                                     \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
        if (NONFINITE_KEYS && !producer) {                                                       \
            Q_NONFINITE(q_nonfinite, q_tile, warp * 16 + group, quad, WG_Q_OFFSET)               \
            Q_NONFINITE(q_nonfinite, q_tile, warp * 16 + group + 8, quad, WG_Q_OFFSET)           \
        }                                                                                        \
    }
#define WG_Q_OFFSET(row, chunk) sw128_offset(ATTENTION_ROWS, (row), (chunk))

/* Key r of pipeline step u (-1: none): slot r % 64 of source tile u * WG_TILES_PER_STEP + r / 64. */
#define WG_STEP_KEY(KEY_OF, u, r)                                                                \
    ((u) * WG_TILES_PER_STEP + (r) / SOURCE_TILE < tile_count                                    \
         ? KEY_OF((u) * WG_TILES_PER_STEP + (r) / SOURCE_TILE, (r) % SOURCE_TILE) : -1)

/* Producer: the keys of step u + 1 are read from the family's lists while step u's rows are issued.
 * Consumers: see the top of this file; with WG_OVERLAP the S of step u and the P V of step u - 1
 * are in flight together, and the softmax of step u runs while the P V finishes. */
#define ATTENTION_TILES(count, KEY_OF, causal, sink, window, UNMASKED)                           \
    {                                                                                            \
        const int tile_count = (count);                                                          \
        const int step_count = (tile_count + WG_TILES_PER_STEP - 1) / WG_TILES_PER_STEP;         \
        if (producer) {                                                                          \
            WG_PRODUCER_ROLE();                                                                  \
            const int ptid = tid - WG_CONSUMER_THREADS;                                          \
            /* each thread copies one 16-byte chunk of every WG_ROWS_PER_PASS-th row */          \
            const int chunk = ptid % WG_CHUNKS;                                                  \
            const int column_block = (chunk >> 3) * WG_KV * 64;                                  \
            int keys[WG_KEYS_PER_PRODUCER];                                                      \
            int plain = 0;                                                                       \
            for (int u = 0; u < step_count; ++u) {                                               \
                const int st = u % WG_STAGES;                                                    \
                if (u == 0) {                                                                    \
                    _Pragma("unroll") for (int j = 0; j < WG_KEYS_PER_PRODUCER; ++j)             \
                        keys[j] = ptid + j * WG_PRODUCER_THREADS < WG_KV                         \
                            ? WG_STEP_KEY(KEY_OF, 0, ptid + j * WG_PRODUCER_THREADS) : -1;       \
                    plain = WG_STEP_UNMASKED(UNMASKED, 0);                                       \
                }                                                                                \
                if (u >= WG_STAGES) mbarrier_wait(&empty_bar[st], (uint)((u / WG_STAGES - 1) & 1)); \
                _Pragma("unroll") for (int j = 0; j < WG_KEYS_PER_PRODUCER; ++j)                 \
                    if (ptid + j * WG_PRODUCER_THREADS < WG_KV) stage_keys[st][ptid + j * WG_PRODUCER_THREADS] = keys[j]; \
                if (ptid == 0) stage_plain[st] = plain;                                          \
                if (u + 1 < step_count) {                                                        \
                    _Pragma("unroll") for (int j = 0; j < WG_KEYS_PER_PRODUCER; ++j)             \
                        keys[j] = ptid + j * WG_PRODUCER_THREADS < WG_KV                         \
                            ? WG_STEP_KEY(KEY_OF, u + 1, ptid + j * WG_PRODUCER_THREADS) : -1;   \
                    plain = WG_STEP_UNMASKED(UNMASKED, u + 1);                                   \
                }                                                                                \
                producer_sync(); /* the stage's keys, for every producer thread */               \
                mbarrier_arrive(&full_bar[st]); /* ... and for the consumers */                  \
                __local ushort* k_dst = smem + WG_Q_ELEMS + st * 2 * WG_TILE_ELEMS;              \
                __local ushort* v_dst = k_dst + WG_TILE_ELEMS;                                   \
                for (int r = ptid / WG_CHUNKS; r < WG_KV; r += WG_ROWS_PER_PASS) {              \
                    const int key = stage_keys[st][r];                                           \
                    const size_t row = (size_t)max(key, 0);                                      \
                    const int at = column_block + r * 64 + (((chunk & 7) ^ (r & 7)) << 3);       \
                    /* none (-1) and flagged keys: zero rows */                                  \
                    const int bytes = key >= 0 && !(flagged && kfh[key]) ? 16 : 0;               \
                    cp_async16(k_dst + at, kh16 + row * k_rows + chunk * 8, bytes);              \
                    cp_async16(v_dst + at, vh16 + row * v_rows + chunk * 8, bytes);              \
                }                                                                                \
                mbarrier_arrive_on_copies(&full_bar[st]);                                        \
            }                                                                                    \
            cp_async_wait_all(); /* leave no copy in flight behind an exited warp */             \
        } else {                                                                                 \
            WG_CONSUMER_ROLE();                                                                  \
            WG_CONSUMER_STEPS(causal, sink, window)                                              \
        }                                                                                        \
    }

/* Whether no key of step u needs the mask (every tile present and unmasked). */
#define WG_STEP_UNMASKED(UNMASKED, u)                                                            \
    ((u) * WG_TILES_PER_STEP + WG_TILES_PER_STEP - 1 < tile_count && UNMASKED((u) * WG_TILES_PER_STEP) \
     && (WG_TILES_PER_STEP == 1 || UNMASKED((u) * WG_TILES_PER_STEP + WG_TILES_PER_STEP - 1)))

#define WG_K_TILE(u) (smem + WG_Q_ELEMS + ((u) % WG_STAGES) * 2 * WG_TILE_ELEMS)
#define WG_V_TILE(u) (WG_K_TILE(u) + WG_TILE_ELEMS)

/* The consumers' score and probability registers. */
#define WG_CONSUMER_FRAGMENTS                                                                   \
    const int consumer = warp / 4;                                                               \
    float s[1][MMA_KEY_TILES][4];                                                                \
    uint p[WG_KV / 16][4];                                                                       \
    _Pragma("unroll") for (int t = 0; t < MMA_KEY_TILES; ++t) {                                  \
        s[0][t][0] = 0.0f; s[0][t][1] = 0.0f; s[0][t][2] = 0.0f; s[0][t][3] = 0.0f;              \
    }

/* The start of consumer step u: wait until stage st holds its K and V, issue S = Q K_u^T. */
#define WG_ISSUE_SCORES(u, st)                                                                   \
    mbarrier_wait(&full_bar[st], (uint)(((u) / WG_STAGES) & 1));                                 \
    fence_proxy_async();                                                                         \
    wgmma_fence();                                                                               \
    tile_scores(s, q_tile, consumer, WG_K_TILE(u));                                              \
    wgmma_commit();

#if WG_OVERLAP
#define WG_CONSUMER_STEPS(causal, sink, window)                                                  \
    WG_CONSUMER_FRAGMENTS                                                                       \
    for (int u = 0; u < step_count; ++u) {                                                       \
        const int st = u % WG_STAGES;                                                            \
        WG_ISSUE_SCORES(u, st)                                                                   \
        if (u > 0) {                                                                             \
            tile_pv(acc_o, p, WG_V_TILE(u - 1));                                                 \
            wgmma_commit();                                                                      \
            wgmma_wait_one(); /* S of this step; P V of the last still running */                \
        } else {                                                                                 \
            wgmma_wait_all();                                                                    \
        }                                                                                        \
        pin_scores(s);                                                                           \
        if (!stage_plain[st])                                                                    \
            mask_scores(s, stage_keys[st], quad, q_pos_base, (causal), (sink), (window));        \
        if (flagged)                                                                             \
            flag_rows(poisoned, stage_keys[st], kfh, !stage_plain[st], quad, q_pos_base,         \
                      (causal), (sink), (window));                                               \
        float alpha[1][2];                                                                       \
        const int rescale = softmax_scores(s, row_max, row_sum, scale_log2, alpha);              \
        wgmma_wait_all();                                                                        \
        pin_output(acc_o);                                                                       \
        if (u > 0) mbarrier_arrive(&empty_bar[(u - 1) % WG_STAGES]);                             \
        if (rescale) rescale_output(acc_o, alpha);                                               \
        pack_probabilities(p, s);                                                                \
    }                                                                                            \
    if (step_count > 0) {                                                                        \
        wgmma_fence();                                                                           \
        tile_pv(acc_o, p, WG_V_TILE(step_count - 1));                                            \
        wgmma_commit();                                                                          \
        wgmma_wait_all();                                                                        \
        pin_output(acc_o);                                                                       \
    }
#else
#define WG_CONSUMER_STEPS(causal, sink, window)                                                  \
    WG_CONSUMER_FRAGMENTS                                                                       \
    for (int u = 0; u < step_count; ++u) {                                                       \
        const int st = u % WG_STAGES;                                                            \
        WG_ISSUE_SCORES(u, st)                                                                   \
        wgmma_wait_all(); /* this S, and the last step's P V */                                  \
        pin_scores(s);                                                                           \
        pin_output(acc_o);                                                                       \
        if (u > 0) mbarrier_arrive(&empty_bar[(u - 1) % WG_STAGES]);                             \
        if (!stage_plain[st])                                                                    \
            mask_scores(s, stage_keys[st], quad, q_pos_base, (causal), (sink), (window));        \
        if (flagged)                                                                             \
            flag_rows(poisoned, stage_keys[st], kfh, !stage_plain[st], quad, q_pos_base,         \
                      (causal), (sink), (window));                                               \
        online_softmax(s, acc_o, row_max, row_sum, scale_log2);                                  \
        pack_probabilities(p, s);                                                                \
        wgmma_fence();                                                                           \
        tile_pv(acc_o, p, WG_V_TILE(u));                                                         \
        wgmma_commit();                                                                          \
    }                                                                                            \
    wgmma_wait_all();                                                                            \
    pin_output(acc_o);
#endif

#define ATTENTION_STORE()                                                                        \
    if (!producer) store_rows(oh, o_rows, n_q, warp_row + group, acc_o, row_sum, poisoned, q_nonfinite + warp * 16 + group, quad);

#endif
