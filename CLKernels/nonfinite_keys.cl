/*
 * nonfinite_keys.cl: the key flags the attention kernels read to give non-finite inputs plain
 * softmax attention's meaning (docs/NON-FINITE.md section 1). Once per layer call, before any
 * attention kernel:
 *
 *   key_flags[kv * n_k + key] = 1 when row `key` of K or of V (KV head kv) holds a NaN or an
 *                               infinity, else 0
 *   flagged[0]               += the number of flagged keys (the caller zeroes it first)
 *
 * The attention kernels read flagged[0] once: with no flagged key (the usual case) they run
 * exactly as without this pass; otherwise a flagged key enters their products as zeros (so it
 * cannot reach a row that does not cover it, not even as 0 * NaN in P V) and every row that covers
 * it is written as NaN.
 *
 * Elements are tested on their bits (attention_common.h: word_nonfinite). Layout: k and v as in
 * the attention kernels (layout_t). Work: global (n_k, heads), heads = batch * heads_kv.
 */
#include "attention_common.h"

/* Whether one HEAD_DIM row holds a non-finite element; rows are 16-byte aligned (the host checks
 * offsets and strides), so it is read as uint4. */
INLINE int row_nonfinite(__global const in_t* row) {
    __global const uint4* words = (__global const uint4*)row;
    int bad = 0;
    for (int c = 0; c < HEAD_DIM / (4 * ELEMENTS_PER_WORD); ++c) {
        const uint4 w = words[c];
        bad |= word_nonfinite(w.x) | word_nonfinite(w.y) | word_nonfinite(w.z) | word_nonfinite(w.w);
    }
    return bad;
}

__kernel void nonfinite_keys(__global const in_t* k, __global const in_t* v, layout_t k_layout, layout_t v_layout,
                             int n_k, int heads_kv, __global uchar* key_flags, __global int* flagged) {
    const int key = get_global_id(0);
    const int head = get_global_id(1);
    if (key >= n_k) return;
    const int bad = row_nonfinite(k + head_origin(k_layout, head, heads_kv) + (size_t)key * TOKEN_STRIDE(k_layout))
                  | row_nonfinite(v + head_origin(v_layout, head, heads_kv) + (size_t)key * TOKEN_STRIDE(v_layout));
    key_flags[(size_t)head * n_k + key] = (uchar)bad;
    if (bad) atomic_inc(flagged);
}
