/*
 * pattern_tiles.h: the key lists of MInference's sparse patterns as tiles of 64 keys, shared by
 * the attention kernels (a_shape_attention.cl, sparse_attention.cl) and the recall of the pattern
 * search (recall.cl), so that both visit exactly the same keys. A *_KEY macro names the key in
 * slot r of tile t of a row block (-1: none); the mask inside a tile is the kernels' own.
 *
 *   A-shape        rows [start, end): sink tiles over [0, min(sink, end)), then window tiles
 *                  over [max(sink_end, start - window + 1), end)       (docs/MINFERENCE.md 3)
 *   vertical-slash the 64-key windows offsets[*], then the gathered columns column_keys[*]
 *                  64 per tile (upstream's convert_vertical_slash_indexes layout)   (6)
 *   block-sparse   the key blocks chosen[*], 64 keys each                           (7)
 *   block lists    the key blocks chosen[*], 64 * BLOCK_TILES keys each (XAttention,
 *                  FlexPrefill: docs/PREFILL-METHODS.md 4.8, 5.8)
 */
#ifndef MINFERENCECL_PATTERN_TILES_H
#define MINFERENCECL_PATTERN_TILES_H
#include "attention_common.h"

#define PATTERN_TILE 64 /* keys per tile: upstream's 64-key blocks */
#if defined(SOURCE_TILE) && SOURCE_TILE != PATTERN_TILE
#error "the attention kernels' SOURCE_TILE must equal PATTERN_TILE to visit these lists"
#endif

/* Declares sink_end, window_begin, sink_tiles and window_tiles: the sink and window tiles of
 * rows [start, end), each key once. (A macro: a struct-returning helper leaves LLVM intrinsics
 * that Oclgrind cannot run.) */
#define A_SHAPE_TILES(start, end, sink, window)                                                  \
    const int sink_end = min((sink), (end));                                                     \
    const int window_begin = max(sink_end, (start) - (window) + 1);                              \
    const int sink_tiles = (sink_end + PATTERN_TILE - 1) / PATTERN_TILE;                         \
    const int window_tiles = ((end) - window_begin + PATTERN_TILE - 1) / PATTERN_TILE;

/* Key r of tile t, with the names A_SHAPE_TILES declared. */
#define A_SHAPE_WINDOW_KEY(t, r) (window_begin + ((t) - sink_tiles) * PATTERN_TILE + (r))
#define A_SHAPE_TILE_KEY(end, t, r)                                                              \
    ((t) < sink_tiles ? ((t) * PATTERN_TILE + (r) < sink_end ? (t) * PATTERN_TILE + (r) : -1)    \
                      : (A_SHAPE_WINDOW_KEY(t, r) < (end) ? A_SHAPE_WINDOW_KEY(t, r) : -1))

#define VS_TILE_COUNT(windows, columns) ((windows) + ((columns) + PATTERN_TILE - 1) / PATTERN_TILE)
#define VS_TILE_KEY(t, r, windows, offsets, columns, column_keys, n)                             \
    ((t) < (windows) ? ((offsets)[t] + (r) < (n) ? (offsets)[t] + (r) : -1)                      \
                     : (((t) - (windows)) * PATTERN_TILE + (r) < (columns)                       \
                            ? (column_keys)[((t) - (windows)) * PATTERN_TILE + (r)] : -1))

/* Block lists: BLOCK_TILES 64-key tiles per listed key block (1: block-sparse's 64-blocks; B / 64
 * for XAttention's and FlexPrefill's B-blocks), tile t being part t % BLOCK_TILES of entry
 * t / BLOCK_TILES. */
#ifndef BLOCK_TILES
#define BLOCK_TILES 1
#endif
#define BS_TILE_START(t, chosen)                                                                 \
    ((chosen)[(t) / BLOCK_TILES] * (PATTERN_TILE * BLOCK_TILES) + ((t) % BLOCK_TILES) * PATTERN_TILE)
#define BS_TILE_KEY(t, r, chosen, n)                                                             \
    (BS_TILE_START(t, chosen) + (r) < (n) ? BS_TILE_START(t, chosen) + (r) : -1)

#endif
