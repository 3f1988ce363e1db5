/*
 * block_list_attention.cl: the B-block lists of XAttention and FlexPrefill (docs/PREFILL-METHODS.md
 * 4.8, 5.8) on the dense kernel's tile configuration. Their blocks are B = LIST_BLOCK rows, a
 * multiple of ATTENTION_ROWS (128 on the H200's wgmma path, where the 64-row work-groups of
 * sparse_attention.cl would leave half of each warpgroup's fragment reuse unused), so every
 * work-group reads one list: key blocks chosen[*] of B keys, ascending, in 64-key tiles
 * (BLOCK_TILES = B / 64 per block), the causal mask per element.
 *
 * All heads of one method run in one launch: group (row block, slot), slot s computing flattened
 * query head slots[s]; list row slot * lists_per_head + (its query block - the first one). Layout
 * as in dense_attention.cl. Prefill, or a chunk starting on a block boundary (query row i at
 * position Nk - Nq + i). Work: global (R * ATTENTION_THREADS, slots), local (ATTENTION_THREADS, 1),
 * R = ceil(Nq / ATTENTION_ROWS); row blocks run last (heaviest) first.
 */
#ifndef LIST_BLOCK
#define LIST_BLOCK 128 /* B: rows per query block and keys per key block */
#endif
#ifndef BLOCK_TILES
#define BLOCK_TILES (LIST_BLOCK / 64)
#endif
#include "attention_path.h"
#include "pattern_tiles.h"
#if LIST_BLOCK % ATTENTION_ROWS != 0 || LIST_BLOCK != BLOCK_TILES * PATTERN_TILE
#error "LIST_BLOCK must be BLOCK_TILES 64-key tiles and a multiple of the work-group's rows"
#endif

__kernel __attribute__((reqd_work_group_size(ATTENTION_THREADS, 1, 1)))
void block_list_attention(ATTENTION_TENSORS, __global const int* slots, __global const int* lists,
                          __global const int* list_counts, int list_stride, int lists_per_head, int n_q,
                          int n_k, int heads_q, int heads_kv, float scale_log2) {
    const int row_block = (int)get_num_groups(0) - 1 - (int)get_group_id(0);
    const int slot = get_group_id(1);
    const int head = slots[slot];
    const int shift = n_k - n_q; /* position of query row 0: a multiple of LIST_BLOCK */
    const int row_begin = row_block * ATTENTION_ROWS;
    ATTENTION_HEADS(head, kv_head_of(head, heads_q, heads_kv))
    ATTENTION_SETUP(row_begin, shift)

    const int start = row_begin + shift, end = min(row_begin + ATTENTION_ROWS, n_q) + shift;
    const size_t index_row = (size_t)slot * lists_per_head + row_begin / LIST_BLOCK;
    __global const int* chosen = lists + index_row * list_stride;
    int tiles = list_counts[index_row] * BLOCK_TILES;
    /* the diagonal block's tiles right of this row block see no key */
    while (tiles > 0 && BS_TILE_START(tiles - 1, chosen) >= end) --tiles;
#define BL_KEY(t, r) BS_TILE_KEY(t, r, chosen, n_k)
#define BL_UNMASKED(t) (BS_TILE_START(t, chosen) + PATTERN_TILE - 1 <= start)
    ATTENTION_TILES(tiles, BL_KEY, 1, 0, 0, BL_UNMASKED)
#undef BL_KEY
#undef BL_UNMASKED
    ATTENTION_STORE()
}
