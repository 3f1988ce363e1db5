// CLBlast's C API (batched SGEMM for the sparse-pattern estimation products).
#ifndef MINFERENCECL_CCLBLAST_SHIM_H
#define MINFERENCECL_CCLBLAST_SHIM_H
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <clblast_c.h>
#endif
