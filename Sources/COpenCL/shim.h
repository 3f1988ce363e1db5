// The OpenCL 1.2 API surface MInferenceCL uses: every driver it targets (NVIDIA, AMD, Intel,
// PoCL) implements it, and 2.0+ features are not needed.
#ifndef MINFERENCECL_COPENCL_SHIM_H
#define MINFERENCECL_COPENCL_SHIM_H
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <CL/cl_ext.h>
#endif
