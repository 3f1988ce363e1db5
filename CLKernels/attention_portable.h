/*
 * attention_portable.h: the portable (OpenCL C 1.2) tile path of every attention kernel family.
 * One work-item per query row; key tiles are staged in local memory as fp32 and each row runs
 * the FlashAttention-2 online-softmax step over them (attention_common.h: attend_tile).
 *
 * A family kernel is written against four macros that both paths define:
 *   ATTENTION_SETUP(row_begin, q_shift)      state for rows [row_begin, row_begin + ATTENTION_ROWS)
 *   ATTENTION_TILES(count, KEY_OF, causal, sink, window, UNMASKED)
 *       visits `count` tiles of SOURCE_TILE keys; KEY_OF(t, r) is the key in slot r of tile t (-1:
 *       none); UNMASKED(t) is true when every key of tile t is visible to every row (mask skipped)
 *   ATTENTION_STORE()                         writes the normalised rows
 * and reads ATTENTION_ROWS / ATTENTION_THREADS for its launch shape. Non-finite inputs
 * (attention_path.h, NONFINITE_KEYS; `flagged`): a flagged key is staged as zeros, and a row that
 * covers one, or whose q row is not finite, is written as NaN.
 */
#ifndef MINFERENCECL_ATTENTION_PORTABLE_H
#define MINFERENCECL_ATTENTION_PORTABLE_H

#ifndef QUERY_TILE
#define QUERY_TILE 64 /* query rows per work-group, one per work-item */
#endif
#define ATTENTION_ROWS QUERY_TILE
#define ATTENTION_THREADS QUERY_TILE
#if SOURCE_TILE % KEY_TILE != 0
#error "KEY_TILE must divide SOURCE_TILE"
#endif

#define ATTENTION_SETUP(row_begin, q_shift)                                                      \
    __local float k_tile[KEY_TILE * HEAD_DIM];                                                   \
    __local float v_tile[KEY_TILE * HEAD_DIM];                                                   \
    __local int key_pos[KEY_TILE];                                                               \
    __local uchar key_flagged[KEY_TILE];                                                         \
    const int lid = get_local_id(0);                                                             \
    const int row = (row_begin) + lid;                                                           \
    const int q_pos = row + (q_shift);                                                           \
    float8 q_row[HEAD_VEC];                                                                      \
    float8 acc[HEAD_VEC];                                                                        \
    /* NONFINITE_KEYS: a row with a non-finite q element, or covering a flagged key, is NaN */   \
    const int q_nonfinite = load_scaled_row(q_row, qh, (size_t)clamp(row, 0, n_q - 1) * q_rows, scale_log2); \
    int poisoned = flagged && q_nonfinite;                                                       \
    for (int c = 0; c < HEAD_VEC; ++c) acc[c] = (float8)(0.0f);                                  \
    float running_max = -INFINITY, running_sum = 0.0f;

#define ATTENTION_TILES(count, KEY_OF, causal, sink, window, UNMASKED)                           \
    for (int tile = 0; tile < (count); ++tile) {                                                 \
        for (int part = 0; part < SOURCE_TILE; part += KEY_TILE) {                               \
            barrier(CLK_LOCAL_MEM_FENCE);                                                        \
            for (int j = lid; j < KEY_TILE; j += ATTENTION_THREADS) {                            \
                const int key = KEY_OF(tile, part + j);                                          \
                key_pos[j] = key;                                                                \
                key_flagged[j] = flagged && key >= 0 ? kfh[key] : 0;                             \
            }                                                                                    \
            barrier(CLK_LOCAL_MEM_FENCE);                                                        \
            stage_keys(k_tile, v_tile, key_pos, key_flagged, kh, k_rows, vh, v_rows, lid, ATTENTION_THREADS); \
            barrier(CLK_LOCAL_MEM_FENCE);                                                        \
            if (flagged) poisoned |= covers_flagged(key_pos, key_flagged, q_pos, (causal), (sink), (window)); \
            attend_tile(q_row, acc, &running_max, &running_sum, k_tile, v_tile, key_pos, q_pos,  \
                        (causal), (sink), (window));                                             \
        }                                                                                        \
    }

#define ATTENTION_STORE()                                                                        \
    if (row >= 0 && row < n_q) store_row(oh, (size_t)row * o_rows, acc, running_sum, poisoned);

/* Loads the keys named in key_pos into the fp32 tiles, zeros for none (-1) and for flagged keys
 * (a masked key's NaN would otherwise reach P V as 0 * NaN); k and v point at token 0 of the
 * head, rows `k_rows` / `v_rows` elements apart. */
INLINE void stage_keys(__local float* k_tile, __local float* v_tile, __local const int* key_pos,
                       __local const uchar* key_flagged, __global const in_t* k, size_t k_rows,
                       __global const in_t* v, size_t v_rows, int lid, int lsize) {
    for (int e = lid; e < KEY_TILE * HEAD_DIM; e += lsize) {
        const int slot = e / HEAD_DIM, key = key_pos[slot];
        const size_t row = (size_t)max(key, 0), channel = (size_t)(e % HEAD_DIM);
        const bool read = key >= 0 && !key_flagged[slot];
        k_tile[e] = read ? LOAD_IN(k, row * k_rows + channel) : 0.0f;
        v_tile[e] = read ? LOAD_IN(v, row * v_rows + channel) : 0.0f;
    }
}

/* Whether the row at q_pos sees a flagged key of the staged tile. */
INLINE int covers_flagged(__local const int* key_pos, __local const uchar* key_flagged, int q_pos, int causal,
                          int sink, int window) {
    int covers = 0;
    for (int j = 0; j < KEY_TILE; ++j) covers |= key_flagged[j] && key_visible(key_pos[j], q_pos, causal, sink, window);
    return covers;
}

/* One FlashAttention-2 step for one query row over a staged tile: scores, running max, rescale
 * of the accumulator, P.V. `q` is pre-scaled by scale * log2(e) (load_scaled_row). */
INLINE void attend_tile(const float8* q, float8* acc, float* running_max, float* running_sum,
                        __local const float* k_tile, __local const float* v_tile,
                        __local const int* key_pos, int q_pos, int causal, int sink, int window) {
    float scores[KEY_TILE];
    staged_scores(q, k_tile, scores, KEY_TILE);
    float tile_max = -INFINITY;
    for (int j = 0; j < KEY_TILE; ++j) {
        if (!key_visible(key_pos[j], q_pos, causal, sink, window)) scores[j] = -INFINITY;
        tile_max = fmax(tile_max, scores[j]);
    }
    if (tile_max == -INFINITY) return; /* nothing visible in this tile for this row */
    const float new_max = fmax(*running_max, tile_max);
    const float alpha = exp2(*running_max - new_max); /* 0 on the first visible tile */
    *running_sum *= alpha;
    float probs[KEY_TILE];
    for (int j = 0; j < KEY_TILE; ++j) {
        probs[j] = exp2(scores[j] - new_max); /* masked scores give exactly 0 */
        *running_sum += probs[j];
    }
    /* Channel-outer order keeps the accumulator in registers across the tile; four partial sums
     * over the keys give independent FMA chains. */
    for (int c = 0; c < HEAD_VEC; ++c) {
        float8 a0 = acc[c] * alpha, a1 = (float8)(0.0f), a2 = (float8)(0.0f), a3 = (float8)(0.0f);
        for (int j = 0; j < KEY_TILE; j += 4) {
            __local const float* vr = v_tile + j * HEAD_DIM;
            a0 = fma((float8)(probs[j]), vload8(c, vr), a0);
            a1 = fma((float8)(probs[j + 1]), vload8(c, vr + HEAD_DIM), a1);
            a2 = fma((float8)(probs[j + 2]), vload8(c, vr + 2 * HEAD_DIM), a2);
            a3 = fma((float8)(probs[j + 3]), vload8(c, vr + 3 * HEAD_DIM), a3);
        }
        acc[c] = (a0 + a1) + (a2 + a3);
    }
    *running_max = new_max;
}

/* Writes acc / running_sum; a row that saw no key (only possible with causal Nq > Nk) is 0, a
 * poisoned one NaN. */
INLINE void store_row(__global out_t* o, size_t row_offset, const float8* acc, float running_sum, int poisoned) {
    const float inv = running_sum > 0.0f ? 1.0f / running_sum : 0.0f;
    for (int c = 0; c < HEAD_VEC; ++c) {
        float x[8];
        vstore8(poisoned ? (float8)(NAN) : acc[c] * inv, 0, x);
        for (int e = 0; e < 8; ++e) STORE_OUT(o, row_offset + 8 * c + e, x[e]);
    }
}

#endif
