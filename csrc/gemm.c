/* gemm.c: the one matrix multiply behind dense and convolution layers.
 * Runtime dispatch picks the widest vector unit the CPU has (AVX-512, AVX2+FMA, or baseline SSE2),
 * so one wheel runs on any x86-64 and is still fast. On Zen 4 AVX2 reaches the same FLOP peak as
 * AVX-512; the wider registers buy a larger tile. Other architectures get the portable instance. */
#include <string.h>
#include "cnn.h"
#ifdef _OPENMP
#include <omp.h>
static inline int team_size(void) { return omp_get_num_threads(); }
static inline int team_rank(void) { return omp_get_thread_num(); }
#else
static inline int team_size(void) { return 1; }
static inline int team_rank(void) { return 0; }
#endif

/* The widest of `parts` slices of `panels` panels of `unit` (the last one cut to `total`), as gemm splits
 * them: slice q takes panels [panels·q/parts, panels·(q+1)/parts). */
static inline int widest(int panels, int parts, int unit, int total)
{
    int interior = parts > 1 ? (panels + parts - 1) / parts * unit : 0;
    int last = total - (int)((long long)panels * (parts - 1) / parts) * unit;
    return interior > last ? interior : last;
}

/* Below this many multiply-adds a second thread costs more than it saves. */
#define CNN_GEMM_SERIAL_WORK (1 << 18)
#define ISA_TEMPLATE "gemm_tile.h"
#include "isa.h" /* gemm_tile.h per real type and instruction set */

/* The instance in use: the widest the CPU supports, unless a test forced a narrower one. */
static cnn_gemm_isa gemm_isa = CNN_ISA_AUTO;

int cnn_gemm_isa_supported(cnn_gemm_isa isa)
{
#ifdef CNN_X86
    if (isa == CNN_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq");
    if (isa == CNN_ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return isa == CNN_ISA_BASE || isa == CNN_ISA_AUTO;
}

cnn_gemm_isa cnn_get_gemm_isa(void)
{
    if (gemm_isa != CNN_ISA_AUTO) return gemm_isa;
    if (cnn_gemm_isa_supported(CNN_ISA_AVX512)) return CNN_ISA_AVX512;
    if (cnn_gemm_isa_supported(CNN_ISA_AVX2)) return CNN_ISA_AVX2;
    return CNN_ISA_BASE;
}

void cnn_set_gemm_isa(cnn_gemm_isa isa) { gemm_isa = isa; }

#define DISPATCH(S, ...) ISA_DISPATCH(gemm_##S, __VA_ARGS__)

/* c (M, N) [+]= a (M, KD) · b (KD, N), each read at its strides (cnn.h): the instance for this CPU */
void gemm_f32(float *c, const float *a, const float *b, int M, int N, int KD, ptrdiff_t rsa, ptrdiff_t csa,
              ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t ldc, int accumulate)
{
    DISPATCH(f32, c, a, b, M, N, KD, rsa, csa, rsb, csb, ldc, accumulate, NULL);
}

void gemm_f64(double *c, const double *a, const double *b, int M, int N, int KD, ptrdiff_t rsa, ptrdiff_t csa,
              ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t ldc, int accumulate)
{
    DISPATCH(f64, c, a, b, M, N, KD, rsa, csa, rsb, csb, ldc, accumulate, NULL);
}

/* c (M, N) = bias (M) on every column + a · b: gemm with the bias added in its register tile */
void gemm_bias_f32(float *c, const float *a, const float *b, const float *bias, int M, int N, int KD, ptrdiff_t rsa,
                   ptrdiff_t csa, ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t ldc)
{
    DISPATCH(f32, c, a, b, M, N, KD, rsa, csa, rsb, csb, ldc, 0, bias);
}

void gemm_bias_f64(double *c, const double *a, const double *b, const double *bias, int M, int N, int KD, ptrdiff_t rsa,
                   ptrdiff_t csa, ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t ldc)
{
    DISPATCH(f64, c, a, b, M, N, KD, rsa, csa, rsb, csb, ldc, 0, bias);
}
