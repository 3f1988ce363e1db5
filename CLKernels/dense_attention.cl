/*
 * dense_attention.cl: exact (dense) attention, FlashAttention-2 style.
 *
 *   for each (head, block of ATTENTION_ROWS query rows):
 *     for key tiles [t, t + 64) up to the last key any row of the block may see:
 *       s_j = q . k_j * scale (masked: causal, past the end)      m' = max(m, max_j s_j)
 *       acc = acc * 2^(m - m') + sum_j 2^(s_j - m') v_j    l = l * 2^(m - m') + sum_j 2^(s_j - m')
 *     o_row = acc / l
 * The tile step is the portable path or the NVIDIA tensor-core path (attention_path.h).
 *
 * Layout: q [B, Hq, n_q, HEAD_DIM], k and v [B, Hkv, n_k, HEAD_DIM], o like q, each at any
 * (batch, head, token) strides (attention_common.h: layout_t). Causal with
 * n_q < n_k aligns queries to the end: query i sits at position n_k - n_q + i; rows that see
 * no key (n_q > n_k) are 0. Heads: group (row block, slot) computes flattened query head
 * slots[slot] (all heads of a dense call, or the dense heads of a mixed-pattern layer).
 * Work: global (ceil(n_q / ATTENTION_ROWS) * ATTENTION_THREADS, slots), local (ATTENTION_THREADS, 1).
 */
#include "attention_path.h"

__kernel __attribute__((reqd_work_group_size(ATTENTION_THREADS, 1, 1)))
void dense_attention(ATTENTION_TENSORS, __global const int* slots, int n_q, int n_k, int heads_q,
                     int heads_kv, float scale_log2, int causal) {
    /* Heaviest row blocks (the last, under a causal mask) are scheduled first. */
    const int row_block = (int)get_num_groups(0) - 1 - (int)get_group_id(0);
    const int head = slots[get_group_id(1)];
    ATTENTION_HEADS(head, kv_head_of(head, heads_q, heads_kv))
    const int shift = n_k - n_q; /* position of query 0 among the keys */
    const int row_begin = row_block * ATTENTION_ROWS;
    ATTENTION_SETUP(row_begin, shift)

    const int last_row = min(row_begin + ATTENTION_ROWS, n_q) - 1;
    const int key_end = causal ? clamp(last_row + shift + 1, 0, n_k) : n_k;
    const int first_visible = row_begin + shift; /* the block's first row sees keys up to here */
#define DENSE_KEY(t, r) ((t) * SOURCE_TILE + (r) < key_end ? (t) * SOURCE_TILE + (r) : -1)
#define DENSE_UNMASKED(t) \
    ((t + 1) * SOURCE_TILE <= key_end && (!causal || (t + 1) * SOURCE_TILE - 1 <= first_visible))
    ATTENTION_TILES((key_end + SOURCE_TILE - 1) / SOURCE_TILE, DENSE_KEY, causal, 0, 0, DENSE_UNMASKED)
#undef DENSE_KEY
#undef DENSE_UNMASKED
    ATTENTION_STORE()
}
