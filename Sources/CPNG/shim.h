// libpng's simplified write API (png_image, libpng >= 1.6.24): the attention-map pictures of
// `minference-cl inspect` are encoded by libpng rather than by hand.
#ifndef MINFERENCECL_CPNG_SHIM_H
#define MINFERENCECL_CPNG_SHIM_H
#include <png.h>

// Macros Swift does not import (they expand to expressions).
static const unsigned int cpng_image_version = PNG_IMAGE_VERSION;
static const unsigned int cpng_format_rgb = PNG_FORMAT_RGB;
#endif
