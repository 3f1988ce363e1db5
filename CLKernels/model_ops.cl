/*
 * model_ops.cl: the element-wise and row-wise steps of a Llama-style forward pass around the
 * products (CLBlast, or linear_nv_mma.cl on NVIDIA tensor cores) and attention (the attention kernel families): token embedding, RMSNorm,
 * rotary position embedding, SwiGLU and the residual add. fp32 activations, fp32 arithmetic;
 * row reductions accumulate in fp32 over ROW_THREADS partial sums (the reference accumulates in
 * float64: the difference is within fp32 rounding of a 576-wide sum).
 *
 * Layouts: activations are [tokens, width] row-major; the RoPE input is [tokens, heads, head_dim].
 */

#ifndef ROW_THREADS
#define ROW_THREADS 128 /* work-items reducing one row in rms_norm; a power of 2 */
#endif

/* out[t, :] = table[tokens[t], :]. Work: global (width, tokens). */
__kernel void embed_rows(__global const float* table, __global const int* tokens, __global float* out,
                         int width) {
    const int c = get_global_id(0), t = get_global_id(1);
    if (c >= width) return;
    out[(size_t)t * width + c] = table[(size_t)tokens[t] * width + c];
}

/* A product's input: fp32, or fp16 rounded to nearest even (the tensor-core products' type). */
#define STORE_PRODUCT_INPUT(out, i, value, out_half)                                             \
    do {                                                                                         \
        if (out_half) vstore_half_rte((value), (i), (__global half*)(out));                      \
        else ((__global float*)(out))[i] = (value);                                              \
    } while (0)

/* out[t, c] = x[t, c] / sqrt(mean_c(x[t, c]^2) + eps) * weight[c], fp32 or (out_half) fp16.
 * Work: global (ROW_THREADS, tokens), local (ROW_THREADS, 1). */
__kernel __attribute__((reqd_work_group_size(ROW_THREADS, 1, 1)))
void rms_norm(__global const float* x, __global const float* weight, __global void* out, int width,
              float eps, int out_half) {
    __local float partial[ROW_THREADS];
    const int lid = get_local_id(0), t = get_group_id(1);
    __global const float* row = x + (size_t)t * width;
    float sum = 0.0f;
    for (int c = lid; c < width; c += ROW_THREADS) sum += row[c] * row[c];
    partial[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = ROW_THREADS / 2; stride > 0; stride /= 2) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float scale = rsqrt(partial[0] / (float)width + eps);
    for (int c = lid; c < width; c += ROW_THREADS)
        STORE_PRODUCT_INPUT(out, (size_t)t * width + c, row[c] * scale * weight[c], out_half);
}

/* Rotary position embedding on adjacent pairs (llama.cpp's "normal" mode, on weights stored with
 * its Q/K row permutation): in each head, (x[2i], x[2i+1]) rotates by pos * theta^(-2i / head_dim),
 * pos = first_position + t. In place on [tokens, heads, head_dim]. Work: global
 * (head_dim / 2, heads, tokens). */
__kernel void rope_pairs(__global float* x, int heads, int head_dim, int first_position, float theta) {
    const int i = get_global_id(0), h = get_global_id(1), t = get_global_id(2);
    if (i >= head_dim / 2 || h >= heads) return;
    const float angle = (float)(first_position + t) * pow(theta, -2.0f * (float)i / (float)head_dim);
    float c;
    const float s = sincos(angle, &c); /* returns the sine, stores the cosine */
    __global float* pair = x + ((size_t)t * heads + h) * head_dim + 2 * i;
    const float a = pair[0], b = pair[1];
    pair[0] = a * c - b * s;
    pair[1] = a * s + b * c;
}

/* out = silu(gate) * up, silu(g) = g / (1 + exp(-g)), fp32 or (out_half) fp16. Work: global (count). */
__kernel void swiglu(__global const float* gate, __global const float* up, __global void* out, ulong count,
                     int out_half) {
    const size_t i = get_global_id(0);
    if (i >= count) return;
    const float g = gate[i];
    STORE_PRODUCT_INPUT(out, i, g / (1.0f + exp(-g)) * up[i], out_half);
}

/* x += y. Work: global (count). */
__kernel void add_in_place(__global float* x, __global const float* y, ulong count) {
    const size_t i = get_global_id(0);
    if (i < count) x[i] += y[i];
}

/* Rounds fp32 to fp16 (round to nearest even), for attention inputs on the tensor-core paths:
 * y[y_offset + i] = x[i]. Work: global (count). */
__kernel void to_half(__global const float* x, __global half* y, ulong y_offset, ulong count) {
    const size_t i = get_global_id(0);
    if (i < count) vstore_half_rte(x[i], y_offset + i, y);
}
