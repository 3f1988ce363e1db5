/*
 * nonfinite_keys.cl: the scan that lets the attention kernels give NaN and infinities plain
 * softmax attention's meaning (docs/NON-FINITE.md section 1). Once per layer call, before any
 * attention kernel, over k and v, then q:
 *
 *   nonfinite_keys:  key_flags[kv * n_k + key] = 1 when row `key` of K or of V (KV head kv) holds
 *                    a NaN or an infinity, else 0; count[0] += the number of such keys
 *   nonfinite_rows:  count[0] += the number of 16-byte chunks of q holding one (no flags: a
 *                    query row's own test is the attention kernel's)
 *
 * The caller zeroes count[0] first. Every attention kernel reads count[0] (attention_path.h,
 * NONFINITE_KEYS): with 0, the usual case, it runs without its flag code; otherwise it loads
 * flagged keys as zeros and writes the rows that read a non-finite value as NaN.
 *
 * One work-item per 16-byte chunk of a row, so a warp reads whole rows (coalesced); a key's chunks
 * are reduced in local memory. Elements are tested on their bits (attention_common.h:
 * word_nonfinite). Layouts as in the attention kernels (layout_t), rows 16-byte aligned.
 *   nonfinite_keys: global (roundup(n_k, SCAN_KEYS) * ROW_CHUNKS, heads_kv * B), local (SCAN_KEYS * ROW_CHUNKS, 1)
 *   nonfinite_rows: global (n * ROW_CHUNKS, heads * B)
 */
#include "attention_common.h"

#define ROW_CHUNKS (HEAD_DIM / (4 * ELEMENTS_PER_WORD)) /* 16-byte chunks per row */
#ifndef SCAN_KEYS
#define SCAN_KEYS 16 /* keys per work-group of nonfinite_keys (the host makes SCAN_KEYS * ROW_CHUNKS about 256) */
#endif

/* Whether 16-byte chunk `chunk` of a row holds a NaN or an infinity. */
INLINE int chunk_nonfinite(__global const in_t* row, int chunk) {
    const uint4 w = ((__global const uint4*)row)[chunk];
    return word_nonfinite(w.x) | word_nonfinite(w.y) | word_nonfinite(w.z) | word_nonfinite(w.w);
}

__kernel __attribute__((reqd_work_group_size(SCAN_KEYS * ROW_CHUNKS, 1, 1)))
void nonfinite_keys(__global const in_t* k, __global const in_t* v, layout_t k_layout, layout_t v_layout,
                    int n_k, int heads_kv, __global uchar* key_flags, __global int* count) {
    __local uchar chunk_bad[SCAN_KEYS * ROW_CHUNKS];
    const int lid = get_local_id(0);
    const int key = get_group_id(0) * SCAN_KEYS + lid / ROW_CHUNKS, chunk = lid % ROW_CHUNKS;
    const int head = get_global_id(1);
    int bad = 0;
    if (key < n_k) {
        bad = chunk_nonfinite(k + head_origin(k_layout, head, heads_kv) + (size_t)key * TOKEN_STRIDE(k_layout), chunk)
            | chunk_nonfinite(v + head_origin(v_layout, head, heads_kv) + (size_t)key * TOKEN_STRIDE(v_layout), chunk);
    }
    chunk_bad[lid] = (uchar)bad;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (chunk == 0 && key < n_k) {
        int any = 0;
        for (int c = 0; c < ROW_CHUNKS; ++c) any |= chunk_bad[lid + c];
        key_flags[(size_t)head * n_k + key] = (uchar)any;
        if (any) atomic_inc(count);
    }
}

__kernel void nonfinite_rows(__global const in_t* x, layout_t layout, int n, int heads, __global int* count) {
    const int row = get_global_id(0) / ROW_CHUNKS, chunk = get_global_id(0) % ROW_CHUNKS;
    const int head = get_global_id(1);
    if (row < n && chunk_nonfinite(x + head_origin(layout, head, heads) + (size_t)row * TOKEN_STRIDE(layout), chunk))
        atomic_inc(count);
}
