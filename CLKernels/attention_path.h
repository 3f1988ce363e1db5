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

#if NV_WGMMA
#include "attention_nv_wgmma.h"
#elif NV_MMA
#include "attention_nv_mma.h"
#else
#include "attention_portable.h"
#endif
#endif
