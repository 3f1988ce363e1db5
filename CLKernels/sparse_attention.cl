/*
 * sparse_attention.cl: the FlashAttention-2 kernels of MInference's two dynamic patterns. Each
 * visits its own key set per 64-query row block as a list of 64-key tiles (a tile's keys need not
 * be contiguous) and shares the tile path of attention_path.h (portable, or NVIDIA tensor cores);
 * inside every tile the causal mask is applied per element. (A-shape, whose key set does not
 * depend on the row blocking, is a_shape_attention.cl.)
 *
 *   vertical_slash_attention:  64-key windows block_offset[m][*], then the gathered
 *                              columns column_index[m][*], 64 per tile        (section 6)
 *   block_sparse_attention:    key blocks selected[m][*] (64 keys each)       (section 7); with
 *                              BLOCK_TILES > 1 the lists of XAttention and FlexPrefill: one list
 *                              per B = 64 * BLOCK_TILES rows, B keys per entry
 *                              (docs/PREFILL-METHODS.md 4.8, 5.8)
 *
 * All heads of one pattern run in one launch: group (row block, slot), slot s computing
 * flattened query head slots[s] with its own budgets or index lists. Layout as in
 * dense_attention.cl. Row blocks are 64 key positions, aligned to position 0: prefill (Nq = Nk)
 * runs blocks 0 .. ceil(Nk / 64) - 1; a chunk of it (Nq < Nk, query row i at position
 * Nk - Nq + i) runs the blocks from first_block = (Nk - Nq) / 64 on, so each of its rows sees the
 * key set the same index lists give it in the whole prompt. Index rows are per launched block
 * (slot * blocks + m). Work: global (R * ATTENTION_THREADS, slots), local (ATTENTION_THREADS, 1),
 * R = ceil(Nk / 64) - first_block; row blocks run heaviest (last) first.
 */
#include "attention_path.h"
#include "pattern_tiles.h"

#if ATTENTION_ROWS != 64
#error "the sparse kernels compute 64-query row blocks (upstream's index granularity)"
#endif

/* Names the tile paths expect, for one slot's row block: block m of the launch is the chunk's
 * (first_block + m)-th 64-position block; `start` is its first key position, its rows before
 * the chunk (start < shift) are neither read nor written. */
#define SPARSE_PROLOGUE                                                                          \
    const int m = (int)get_num_groups(0) - 1 - (int)get_group_id(0);                             \
    const int slot = get_group_id(1);                                                            \
    const int head = slots[slot];                                                                \
    const int n = n_k;                                                                           \
    const int shift = n_k - n_q;                                                                 \
    const int start = (first_block + m) * 64;                                                    \
    ATTENTION_HEADS(head, kv_head_of(head, heads_q, heads_kv))                                   \
    ATTENTION_SETUP(start - shift, shift)

__kernel __attribute__((reqd_work_group_size(ATTENTION_THREADS, 1, 1)))
void vertical_slash_attention(ATTENTION_TENSORS, __global const int* slots,
                              __global const int* block_count, __global const int* block_offset,
                              int nnz_s, __global const int* column_count,
                              __global const int* column_index, int nnz_v, int n_q, int n_k,
                              int first_block, int heads_q, int heads_kv, float scale_log2) {
    SPARSE_PROLOGUE
    const size_t index_row = (size_t)slot * get_num_groups(0) + m;
    const int windows = block_count[index_row];
    const int columns = column_count[index_row];
    __global const int* offsets = block_offset + index_row * nnz_s;
    __global const int* column_keys = column_index + index_row * nnz_v;
    /* window tiles first, then the stored columns 64 at a time (all left of the row block) */
#define VS_KEY(t, r) VS_TILE_KEY(t, r, windows, offsets, columns, column_keys, n)
#define VS_UNMASKED(t) ((t) < windows ? offsets[t] + 63 <= start : ((t) - windows + 1) * 64 <= columns)
    ATTENTION_TILES(VS_TILE_COUNT(windows, columns), VS_KEY, 1, 0, 0, VS_UNMASKED)
#undef VS_KEY
#undef VS_UNMASKED
    ATTENTION_STORE()
}

__kernel __attribute__((reqd_work_group_size(ATTENTION_THREADS, 1, 1)))
void block_sparse_attention(ATTENTION_TENSORS, __global const int* slots,
                            __global const int* selected, __global const int* selected_counts,
                            int selected_stride, int blocks_per_head, int n_q, int n_k,
                            int first_block, int heads_q, int heads_kv, float scale_log2) {
    SPARSE_PROLOGUE
    /* one index row per listed block of BLOCK_TILES row blocks (first_block is a multiple of it) */
    const size_t index_row = (size_t)slot * blocks_per_head + m / BLOCK_TILES;
    __global const int* chosen = selected + index_row * selected_stride;
    int tiles = selected_counts[index_row] * BLOCK_TILES;
#if BLOCK_TILES > 1
    /* a listed block's tiles right of this row block (the diagonal block's) see no key */
    while (tiles > 0 && BS_TILE_START(tiles - 1, chosen) > start + 63) --tiles;
#endif
#define BS_KEY(t, r) BS_TILE_KEY(t, r, chosen, n)
#define BS_UNMASKED(t) (BS_TILE_START(t, chosen) + 63 <= start)
    ATTENTION_TILES(tiles, BS_KEY, 1, 0, 0, BS_UNMASKED)
#undef BS_KEY
#undef BS_UNMASKED
    ATTENTION_STORE()
}
