/* conv_direct.c: the instances of conv_direct_tile.h, the inner kernels of conv2d's direct path, one per real
 * type and instruction set, and the entry points that pick the one gemm.c picks (cnn_get_gemm_isa), so a
 * test that forces a narrower instruction set reaches these too. */
#include <string.h>
#include "cnn.h"

#define PASTE(a, b) a##b
#define PASTE2(a, b) PASTE(a, b)

#if defined(__x86_64__) && defined(__GNUC__)
#define CNN_X86 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
#define INSTANCE (float, 16, _f32_avx512)
#include "conv_direct_tile.h"
#define INSTANCE (double, 8, _f64_avx512)
#include "conv_direct_tile.h"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define INSTANCE (float, 8, _f32_avx2)
#include "conv_direct_tile.h"
#define INSTANCE (double, 4, _f64_avx2)
#include "conv_direct_tile.h"
#pragma GCC pop_options
#endif

#define INSTANCE (float, 4, _f32_base)
#include "conv_direct_tile.h"
#define INSTANCE (double, 2, _f64_base)
#include "conv_direct_tile.h"

#ifdef CNN_X86
#define DISPATCH(S, ...)                                     \
    do {                                                     \
        cnn_gemm_isa isa = cnn_get_gemm_isa();               \
        if (isa == CNN_ISA_AVX512) S##_avx512(__VA_ARGS__);  \
        else if (isa == CNN_ISA_AVX2) S##_avx2(__VA_ARGS__); \
        else S##_base(__VA_ARGS__);                          \
    } while (0)
#else
#define DISPATCH(S, ...) S##_base(__VA_ARGS__)
#endif

void conv_offset_gemm_f32(float *c, ptrdiff_t ldc, const float *a, ptrdiff_t lda, const float *b, const ptrdiff_t *offs,
                          int M, int N, int KD, int accumulate)
{
    DISPATCH(offset_gemm_f32, c, ldc, a, lda, b, offs, M, N, KD, accumulate);
}

void conv_offset_gemm_f64(double *c, ptrdiff_t ldc, const double *a, ptrdiff_t lda, const double *b,
                          const ptrdiff_t *offs, int M, int N, int KD, int accumulate)
{
    DISPATCH(offset_gemm_f64, c, ldc, a, lda, b, offs, M, N, KD, accumulate);
}

void conv_window_gemm_f32(float *c, ptrdiff_t ldc, const float *a, const ptrdiff_t *offs, const float *b, ptrdiff_t ldb,
                          int M, int N, int KD, int accumulate)
{
    DISPATCH(window_gemm_f32, c, ldc, a, offs, b, ldb, M, N, KD, accumulate);
}

void conv_window_gemm_f64(double *c, ptrdiff_t ldc, const double *a, const ptrdiff_t *offs, const double *b,
                          ptrdiff_t ldb, int M, int N, int KD, int accumulate)
{
    DISPATCH(window_gemm_f64, c, ldc, a, offs, b, ldb, M, N, KD, accumulate);
}

void conv_window3_gemm_f32(float *c, ptrdiff_t ldc, const float *a, const ptrdiff_t *offs, const float *bz,
                           ptrdiff_t ldb, int M3, int N, int KD, int accumulate)
{
    DISPATCH(window3_gemm_f32, c, ldc, a, offs, bz, ldb, M3, N, KD, accumulate);
}

void conv_window3_gemm_f64(double *c, ptrdiff_t ldc, const double *a, const ptrdiff_t *offs, const double *bz,
                           ptrdiff_t ldb, int M3, int N, int KD, int accumulate)
{
    DISPATCH(window3_gemm_f64, c, ldc, a, offs, bz, ldb, M3, N, KD, accumulate);
}
