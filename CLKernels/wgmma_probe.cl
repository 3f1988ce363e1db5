/*
 * wgmma_probe.cl: the check a context runs once before it takes the wgmma path
 * (Sources/MInferenceCL/Runtime/WGMMAProbe.swift). One warpgroup computes S = Q K^T and O = S V for
 * a block of 64 query rows and 64 keys at head dim 128 with exactly the instruction forms,
 * descriptors and 128-byte-swizzled layouts of attention_nv_wgmma.h (two column blocks for Q and K,
 * the MN-major V with its leading byte offset), on small integers whose products are exact in
 * f16/f32, so the host compares bit for bit. Built like the attention kernels (two stages, sm_90a).
 *
 * q, k, v: [64][128] f16 bits, row-major; s_out [64][64] and o_out [64][128] f32. The host defines
 * NV_WGMMA=1; without it (PoCL, Oclgrind: no PTX) the kernel compiles to an empty body.
 */
#ifndef NV_WGMMA
#define NV_WGMMA 0
#endif
#define HEAD_DIM 128
#define INPUT_DTYPE DTYPE_F16
#define SOURCE_TILE 64
#define WG_CONSUMERS 1
#define WG_KV 64
#include "attention_common.h"
#if NV_WGMMA
#include "attention_nv_wgmma.h"
#endif

__kernel __attribute__((reqd_work_group_size(128, 1, 1)))
void wgmma_probe(__global const ushort* q, __global const ushort* k, __global const ushort* v,
                 __global float* s_out, __global float* o_out) {
#if NV_WGMMA
    __local ushort tiles[3 * WG_TILE_ELEMS] __attribute__((aligned(1024)));
    __local ushort* q_tile = tiles;
    __local ushort* k_tile = tiles + WG_TILE_ELEMS;
    __local ushort* v_tile = tiles + 2 * WG_TILE_ELEMS;
    const int tid = get_local_id(0);
    for (int e = tid; e < 64 * WG_CHUNKS; e += 128) {
        const int r = e / WG_CHUNKS, chunk = e % WG_CHUNKS, at = sw128_offset(64, r, chunk);
        for (int i = 0; i < 8; ++i) {
            q_tile[at + i] = q[r * HEAD_DIM + chunk * 8 + i];
            k_tile[at + i] = k[r * HEAD_DIM + chunk * 8 + i];
            v_tile[at + i] = v[r * HEAD_DIM + chunk * 8 + i];
        }
    }
    fence_proxy_async(); /* ordinary stores, then wgmma reads */
    barrier(CLK_LOCAL_MEM_FENCE);

    float s[1][MMA_KEY_TILES][4];
    float o[1][MMA_D_TILES][4];
    _Pragma("unroll") for (int t = 0; t < MMA_D_TILES; ++t) { o[0][t][0] = 0.0f; o[0][t][1] = 0.0f; o[0][t][2] = 0.0f; o[0][t][3] = 0.0f; }
    wgmma_fence();
    tile_scores(s, q_tile, 0, k_tile);
    wgmma_commit();
    wgmma_wait_all();
    pin_scores(s);

    const int warp = tid / 32, lane = tid % 32, row = warp * 16 + lane / 4, col = 2 * (lane % 4);
    _Pragma("unroll") for (int t = 0; t < MMA_KEY_TILES; ++t) {
        s_out[row * 64 + t * 8 + col] = s[0][t][0];
        s_out[row * 64 + t * 8 + col + 1] = s[0][t][1];
        s_out[(row + 8) * 64 + t * 8 + col] = s[0][t][2];
        s_out[(row + 8) * 64 + t * 8 + col + 1] = s[0][t][3];
    }
    uint p[4][4];
    pack_probabilities(p, s);
    wgmma_fence();
    tile_pv(o, p, v_tile);
    wgmma_commit();
    wgmma_wait_all();
    pin_output(o);
    _Pragma("unroll") for (int t = 0; t < MMA_D_TILES; ++t) {
        o_out[row * HEAD_DIM + t * 8 + col] = o[0][t][0];
        o_out[row * HEAD_DIM + t * 8 + col + 1] = o[0][t][1];
        o_out[(row + 8) * HEAD_DIM + t * 8 + col] = o[0][t][2];
        o_out[(row + 8) * HEAD_DIM + t * 8 + col + 1] = o[0][t][3];
    }
#endif
}
