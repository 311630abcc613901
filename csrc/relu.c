/* relu.c: Keras's general rectifier, f(x) = min(x > threshold ? max(x, 0) : 0, max_value)
 * + negative_slope·min(x - threshold, 0), as keras.activations.relu computes it (the ReLU and LeakyReLU layers).
 * Element-wise, so threads take fixed spans and results do not depend on the thread count.
 * Worked example: max_value 6, negative_slope 0.1, threshold 1 → f(-1) = -0.2, f(0.5) = -0.05, f(3) = 3, f(9) = 6. */
#ifndef real
#include "cnn.h"

/* Spans of SPAN elements, one thread below CNN_PARALLEL_WORK elements; each span a function of its own so
 * that it is compiled for AVX2 too (CNN_VECTOR_CLONES). The loops are written as selects, which vectorize:
 * with branches, a batch of random signs mispredicts every other element. */
#define SPAN 4096
#define IVDEP _Pragma("GCC ivdep")

#define TEMPLATE "relu.c"
#include "template.h" /* the kernels below, once per real type */
#else

CNN_VECTOR_CLONES static void K(forward_span)(real *y, const real *x, size_t count, real max_value, real slope,
                                              real threshold)
{
    int sloped = slope != 0; /* a zero slope adds nothing: 0·-inf would be NaN */
    IVDEP for (size_t i = 0; i < count; i++)
    {
        real v = x[i], d = v - threshold;
        real pos = v > threshold && v > 0 ? (v < max_value ? v : max_value) : 0;
        real neg = sloped && d < 0 ? slope * d : 0;
        y[i] = v != v ? v : pos + neg; /* NaN propagates */
    }
}

CNN_VECTOR_CLONES static void K(backward_span)(real *dx, const real *dy, const real *x, size_t count, real max_value,
                                               real slope, real threshold)
{
    IVDEP for (size_t i = 0; i < count; i++)
    {
        real v = x[i];
        real g = dy[i]; /* selects, not a 0/1 factor: an infinite dy where f' = 0 gives 0, as PyTorch */
        dx[i] = v > threshold && v > 0 && v < max_value ? g : v < threshold ? slope * g : 0;
    }
}

/* x, y (count): y may be x. max_value is +inf for no cap. */
void K(relu_forward)(real *y, const real *x, size_t count, real max_value, real negative_slope, real threshold)
{
    CNN_FOR(count > CNN_PARALLEL_WORK, size_t, sp, (count + SPAN - 1) / SPAN, {
        size_t lo = sp * SPAN, len = count - lo < SPAN ? count - lo : SPAN;
        K(forward_span)(y + lo, x + lo, len, max_value, negative_slope, threshold);
    });
}

/* dy, x (count) → dx (count) = dy·f'(x): 1 where threshold < x, 0 < x and x < max_value; negative_slope where
 * x < threshold; else 0. dx may be dy. */
void K(relu_backward)(real *dx, const real *dy, const real *x, size_t count, real max_value, real negative_slope,
                      real threshold)
{
    CNN_FOR(count > CNN_PARALLEL_WORK, size_t, sp, (count + SPAN - 1) / SPAN, {
        size_t lo = sp * SPAN, len = count - lo < SPAN ? count - lo : SPAN;
        K(backward_span)(dx + lo, dy + lo, x + lo, len, max_value, negative_slope, threshold);
    });
}

#endif
