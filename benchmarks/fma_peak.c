/* fma_peak.c: this core's float32 and float64 multiply-add ceiling, the bound a convolution's FLOPs are held
 * to (benchmarks/run.py's "% of peak" is the best sgemm run, which loads and stores keep below this).
 * Twelve independent accumulator chains keep both FMA pipes busy through their 4-cycle latency.
 *     gcc -O2 -mavx512f -mfma benchmarks/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
 * Timed in thread CPU time, best of 5, so another process on the core does not lower it. */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define CHAINS 12
#define STEPS 20000000L

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void)
{
    double best32 = 0, best64 = 0;
    float sink32 = 0;
    double sink64 = 0;
    for (int rep = 0; rep < 5; rep++) {
        __m512 a[CHAINS], b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
        double t = cpu_seconds();
        for (long k = 0; k < STEPS; k++)
#pragma GCC unroll 12
            for (int i = 0; i < CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
        t = cpu_seconds() - t;
        for (int i = 0; i < CHAINS; i++) sink32 += _mm512_reduce_add_ps(a[i]);
        double flops = (double)STEPS * CHAINS * 16 * 2;
        best32 = flops / t > best32 ? flops / t : best32;

        __m512d d[CHAINS], e = _mm512_set1_pd(1.0000001), f = _mm512_set1_pd(1e-7);
        for (int i = 0; i < CHAINS; i++) d[i] = _mm512_set1_pd((double)i);
        t = cpu_seconds();
        for (long k = 0; k < STEPS; k++)
#pragma GCC unroll 12
            for (int i = 0; i < CHAINS; i++) d[i] = _mm512_fmadd_pd(d[i], e, f);
        t = cpu_seconds() - t;
        for (int i = 0; i < CHAINS; i++) sink64 += _mm512_reduce_add_pd(d[i]);
        flops = (double)STEPS * CHAINS * 8 * 2;
        best64 = flops / t > best64 ? flops / t : best64;
    }
    printf("FMA peak, one core: float32 %.1f GFLOP/s, float64 %.1f GFLOP/s (checksum %g)\n", best32 / 1e9, best64 / 1e9,
           (double)sink32 + sink64);
    return 0;
}
