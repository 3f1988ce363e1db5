/*
 * synthetic_input.cl: long-context-like attention inputs generated on the device, so that
 * benchmarks at 1M tokens need no host-side data. Every element is a pure function of
 * (seed, head, position, channel), so the host can regenerate any row for a reference.
 *
 * Structure (per KV head, shared by its query heads):
 *   q_i = RoPE_i(z_q + alpha * a) + boost_q * u        k_j = RoPE_j(z_k + alpha * a) + [j vertical] boost_k * u
 *   v_j = z_v
 * z_* ~ N(0, 1) per element, a = a random unit direction of the KV head (scores then depend
 * mostly on the distance i - j: local and periodic diagonals), u = a random unit direction of
 * the KV head, "vertical" columns = the first SINK_COLUMNS keys and about `vertical_count`
 * random positions (strong key columns every query attends to). RoPE is rotate-half with
 * base theta. Layout: [heads, n, HEAD_DIM].
 */
#include "attention_common.h"

#ifndef SINK_COLUMNS
#define SINK_COLUMNS 16 /* leading keys that are always vertical columns */
#endif

INLINE uint mix32(uint x) {
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

INLINE uint hash4(uint seed, uint a, uint b, uint c) {
    return mix32(seed ^ mix32(a ^ mix32(b ^ mix32(c + 0x9e3779b9u))));
}

/* Uniform in (0, 1]. */
INLINE float unit_float(uint h) { return ((float)(h >> 8) + 1.0f) * (1.0f / 16777216.0f); }

/* Standard normal from two hashes (Box-Muller). */
INLINE float normal(uint seed, uint a, uint b, uint c) {
    const float u1 = unit_float(hash4(seed, a, b, c));
    const float u2 = unit_float(hash4(seed ^ 0x5bd1e995u, a, b, c));
    return sqrt(-2.0f * log(u1)) * cos(6.28318530718f * u2);
}

INLINE bool is_vertical(uint seed, int kv, int j, int n, int vertical_count) {
    if (j < SINK_COLUMNS) return true;
    return (hash4(seed ^ 0x3c6ef372u, (uint)kv, (uint)j, 7u) % (uint)n) < (uint)vertical_count;
}

/* kind: 0 = queries, 1 = keys, 2 = values. directions: [kv heads][2][HEAD_DIM], unit vectors a
 * and u per KV head. One work-item per (rotated channel pair, position, head): global
 * (HEAD_DIM / 2, n, heads). */
__kernel void synthetic_input(__global out_t* out, __global const float* directions, int kind, int n,
                              int heads, int group, uint seed, float alpha, float boost,
                              float rope_theta, int vertical_count) {
    const int c = get_global_id(0);
    const int pos = get_global_id(1);
    const int head = get_global_id(2);
    if (c >= HEAD_DIM / 2 || pos >= n || head >= heads) return;
    const int kv = head / group;
    const int half_dim = HEAD_DIM / 2;
    const size_t base = ((size_t)head * n + pos) * HEAD_DIM;
    const uint stream = (uint)kind * 0x01000193u + (uint)head;
    if (kind == 2) {
        STORE_OUT(out, base + c, normal(seed, stream, pos, c));
        STORE_OUT(out, base + c + half_dim, normal(seed, stream, pos, c + half_dim));
        return;
    }
    __global const float* a = directions + (size_t)kv * 2 * HEAD_DIM;
    __global const float* u = a + HEAD_DIM;
    const float x0 = normal(seed, stream, pos, c) + alpha * a[c];
    const float x1 = normal(seed, stream, pos, c + half_dim) + alpha * a[c + half_dim];
    /* rotate-half RoPE: channel c pairs with c + d/2 at frequency theta^(-2c/d) */
    const float angle = (float)pos * pow(rope_theta, -2.0f * (float)c / (float)HEAD_DIM);
    const float cs = cos(angle), sn = sin(angle);
    float y0 = x0 * cs - x1 * sn;
    float y1 = x1 * cs + x0 * sn;
    if (kind == 0 || is_vertical(seed, kv, pos, n, vertical_count)) {
        y0 += boost * u[c];
        y1 += boost * u[c + half_dim];
    }
    STORE_OUT(out, base + c, y0);
    STORE_OUT(out, base + c + half_dim, y1);
}
