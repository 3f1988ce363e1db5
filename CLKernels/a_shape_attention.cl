/*
 * a_shape_attention.cl: MInference's static A-shape pattern (docs/MINFERENCE.md section 3), each
 * query i attending keys [0, sink) and [i - window + 1, i], element-exact. The key set does not
 * depend on the row blocking, so the kernel runs on the dense kernel's tile configuration
 * (ATTENTION_ROWS rows per work-group: 128 on the NVIDIA path, where a warp's 32 rows reuse every
 * K/V fragment twice) rather than on upstream's 64-row blocks.
 *
 *   per row block [start, end): the sink tiles [0, min(sink, end)), then the window
 *   [max(sink_end, start - window + 1), end) in 64-key tiles; the mask is exact per element.
 *
 * All A-shape heads of a layer run in one launch: group (row block, slot), slot s computing
 * flattened query head slots[s] with its own sink and window. Layout as in dense_attention.cl.
 * Prefill (Nq = Nk) or a chunk of it (Nq < Nk: query row i at position Nk - Nq + i, which sees
 * the same keys as in the whole prompt). Work: global (R * ATTENTION_THREADS, slots), local
 * (ATTENTION_THREADS, 1), R = ceil(Nq / ATTENTION_ROWS); row blocks run last first.
 */
#include "attention_path.h"
#include "pattern_tiles.h"

__kernel __attribute__((reqd_work_group_size(ATTENTION_THREADS, 1, 1)))
void a_shape_attention(ATTENTION_TENSORS, __global const int* slots, __global const int* sinks,
                       __global const int* windows, int n_q, int n_k, int heads_q, int heads_kv,
                       float scale_log2) {
    const int row_block = (int)get_num_groups(0) - 1 - (int)get_group_id(0);
    const int slot = get_group_id(1);
    const int head = slots[slot];
    const int shift = n_k - n_q; /* position of query row 0 among the keys */
    const int row_begin = row_block * ATTENTION_ROWS;
    ATTENTION_HEADS(head, kv_head_of(head, heads_q, heads_kv))
    ATTENTION_SETUP(row_begin, shift)

    /* the block's rows as key positions */
    const int sink = sinks[slot], window = windows[slot];
    const int start = row_begin + shift, end = min(row_begin + ATTENTION_ROWS, n_q) + shift;
    A_SHAPE_TILES(start, end, sink, window)
#define A_SHAPE_KEY(t, r) A_SHAPE_TILE_KEY(end, t, r)
    /* every key of the tile left of the first row, and none older than the last row's window */
#define A_SHAPE_UNMASKED(t)                                                                      \
    ((t) < sink_tiles ? ((t) + 1) * PATTERN_TILE <= sink_end && ((t) + 1) * PATTERN_TILE - 1 <= start \
                      : A_SHAPE_WINDOW_KEY(t, PATTERN_TILE) <= start + 1 && end - 1 - A_SHAPE_WINDOW_KEY(t, 0) < window)
    ATTENTION_TILES(sink_tiles + window_tiles, A_SHAPE_KEY, 1, sink, window, A_SHAPE_UNMASKED)
#undef A_SHAPE_KEY
#undef A_SHAPE_UNMASKED
    ATTENTION_STORE()
}
