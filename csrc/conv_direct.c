/* conv_direct.c: the instances of conv_direct_tile.h, the inner kernels of conv2d's direct path, one per real
 * type and instruction set, and the entry points that pick the one gemm.c picks (cnn_get_gemm_isa), so a
 * test that forces a narrower instruction set reaches these too. */
#include <string.h>
#include "cnn.h"

#define ISA_TEMPLATE "conv_direct_tile.h"
#include "isa.h"

void conv_offset_gemm_f32(float *c, ptrdiff_t ldc, const float *a, ptrdiff_t lda, const float *b, const ptrdiff_t *offs,
                          int M, int N, int KD, int accumulate)
{
    ISA_DISPATCH(offset_gemm_f32, c, ldc, a, lda, b, offs, M, N, KD, accumulate);
}

void conv_offset_gemm_f64(double *c, ptrdiff_t ldc, const double *a, ptrdiff_t lda, const double *b,
                          const ptrdiff_t *offs, int M, int N, int KD, int accumulate)
{
    ISA_DISPATCH(offset_gemm_f64, c, ldc, a, lda, b, offs, M, N, KD, accumulate);
}

void conv_window_gemm_f32(float *c, ptrdiff_t ldc, const float *a, const ptrdiff_t *offs, const float *b, ptrdiff_t ldb,
                          int M, int N, int KD, int accumulate)
{
    ISA_DISPATCH(window_gemm_f32, c, ldc, a, offs, b, ldb, M, N, KD, accumulate);
}

void conv_window_gemm_f64(double *c, ptrdiff_t ldc, const double *a, const ptrdiff_t *offs, const double *b,
                          ptrdiff_t ldb, int M, int N, int KD, int accumulate)
{
    ISA_DISPATCH(window_gemm_f64, c, ldc, a, offs, b, ldb, M, N, KD, accumulate);
}

void conv_window3_gemm_f32(float *c, ptrdiff_t ldc, const float *a, const ptrdiff_t *offs, const float *bz,
                           ptrdiff_t ldb, int M3, int N, int KD, int accumulate)
{
    ISA_DISPATCH(window3_gemm_f32, c, ldc, a, offs, bz, ldb, M3, N, KD, accumulate);
}

void conv_window3_gemm_f64(double *c, ptrdiff_t ldc, const double *a, const ptrdiff_t *offs, const double *bz,
                           ptrdiff_t ldb, int M3, int N, int KD, int accumulate)
{
    ISA_DISPATCH(window3_gemm_f64, c, ldc, a, offs, bz, ldb, M3, N, KD, accumulate);
}
