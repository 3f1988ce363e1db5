/*
 * attention_path.h: chooses the tile path of the attention kernel families. For f16/bf16 inputs
 * with head dim 64 or 128 the host defines NV_WGMMA=1 on NVIDIA devices of compute capability 9.0
 * whose context passed the wgmma probe (attention_nv_wgmma.h, built for sm_90a in two stages), else
 * NV_MMA=1 on NVIDIA devices of compute capability >= 8.0 (attention_nv_mma.h); everything else,
 * PoCL included, takes the portable OpenCL C 1.2 path (attention_portable.h). Each path defines
 * ATTENTION_SETUP / ATTENTION_TILES / ATTENTION_STORE, ATTENTION_ROWS and ATTENTION_THREADS, so
 * each family kernel is written once.
 */
#ifndef MINFERENCECL_ATTENTION_PATH_H
#define MINFERENCECL_ATTENTION_PATH_H
#include "attention_common.h"

#ifndef SOURCE_TILE
#define SOURCE_TILE 64 /* keys per tile of a key source (upstream's 64-key blocks) */
#endif
#ifndef NV_MMA
#define NV_MMA 0
#endif
#ifndef NV_WGMMA
#define NV_WGMMA 0
#endif

/* The rows of one query head and its KV head, as the tile paths read them: qh/kh/vh/oh point at
 * token 0 of the head, q_rows/k_rows/v_rows/o_rows are the token strides (elements). A family
 * kernel takes q, k, v, o and their layouts q_layout ... o_layout, and heads_q / heads_kv. */
#define ATTENTION_HEADS(head, kv)                                                                \
    __global const in_t* qh = q + head_origin(q_layout, (head), heads_q);                        \
    __global const in_t* kh = k + head_origin(k_layout, (kv), heads_kv);                         \
    __global const in_t* vh = v + head_origin(v_layout, (kv), heads_kv);                         \
    __global out_t* oh = o + head_origin(o_layout, (head), heads_q);                             \
    __global const uchar* kfh = key_flags + (size_t)(kv) * key_flag_stride;                      \
    NONFINITE_VARIANT                                                                            \
    ATTENTION_ROW_STRIDES

/* `flagged`: whether this launch runs the flag-aware code (see ATTENTION_TENSORS). Variants 0 and
 * 1 return (before any barrier) when the other one computes this launch. */
#if NONFINITE_KEYS == 2
#define NONFINITE_VARIANT const int flagged = nonfinite_count[0] != 0;
#else
#define NONFINITE_VARIANT                                                                        \
    if ((nonfinite_count[0] != 0) != NONFINITE_KEYS) return;                                     \
    const int flagged = NONFINITE_KEYS;
#endif

/* Token strides: with CONTIGUOUS_ROWS (the host saw every tensor's rows HEAD_DIM apart) they are
 * constants, so row addresses are shifts as in a contiguous-only kernel (dense ran ~4% slower on
 * the H200's wgmma path with run-time strides); else the layouts' run-time strides. */
#ifndef CONTIGUOUS_ROWS
#define CONTIGUOUS_ROWS 0
#endif
#if CONTIGUOUS_ROWS
#define ATTENTION_ROW_STRIDES                                                                    \
    const size_t q_rows = HEAD_DIM, k_rows = HEAD_DIM, v_rows = HEAD_DIM, o_rows = HEAD_DIM;
#else
#define ATTENTION_ROW_STRIDES                                                                    \
    const size_t q_rows = TOKEN_STRIDE(q_layout), k_rows = TOKEN_STRIDE(k_layout);               \
    const size_t v_rows = TOKEN_STRIDE(v_layout), o_rows = TOKEN_STRIDE(o_layout);
#endif

/* The tensor parameters of every attention family kernel, and nonfinite_keys.cl's results: key r
 * of KV head kv is flagged when key_flags[kv * key_flag_stride + r] is 1 (its k or v row holds a
 * NaN or an infinity), and nonfinite_count[0] counts flagged keys and q's non-finite chunks. Each
 * path gives them plain softmax attention's meaning (docs/NON-FINITE.md section 1): a flagged
 * key's K and V rows are staged as zeros, and a row that covers one, or whose own q row is not
 * finite, is written as NaN. NONFINITE_KEYS says how a kernel decides to do that:
 *   0: never (count 0: q, k and v finite); returns at once otherwise
 *   1: always (count > 0); returns at once otherwise
 *   2: when the count, read at run time, is not 0 (one launch; the portable path)
 * The tensor-core paths enqueue variants 0 and 1 after a scan, so finite inputs pay a launch of
 * work-groups that exit instead of a branch and registers in the tile loop (10-35 % on the H200);
 * the portable path, whose CPUs have neither concern, takes 2 and builds one program. */
#ifndef NONFINITE_KEYS
#define NONFINITE_KEYS 0
#endif
#define ATTENTION_TENSORS                                                                        \
    __global const in_t *q, __global const in_t *k, __global const in_t *v, __global out_t *o,   \
        layout_t q_layout, layout_t k_layout, layout_t v_layout, layout_t o_layout,              \
        __global const uchar *key_flags, int key_flag_stride, __global const int *nonfinite_count

#if NV_WGMMA
#include "attention_nv_wgmma.h"
#elif NV_MMA
#include "attention_nv_mma.h"
#else
#include "attention_portable.h"
#endif
#endif
