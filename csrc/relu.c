/* relu.c: Keras's general rectifier, f(x) = min(x > threshold ? max(x, 0) : 0, max_value)
 * + negative_slope·min(x - threshold, 0), as keras.activations.relu computes it (the ReLU and LeakyReLU layers).
 * Element-wise, so threads take fixed spans and results do not depend on the thread count.
 * Worked example: max_value 6, negative_slope 0.1, threshold 1 → f(-1) = -0.2, f(0.5) = -0.05, f(3) = 3, f(9) = 6. */
#ifndef real
#include "cnn.h"

#define SPAN 4096

#define TEMPLATE "relu.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* x, y (count): y may be x. max_value is +inf for no cap. NaN propagates; a zero slope adds nothing (0·-inf
 * would be NaN). */
void K(relu_forward)(real *y, const real *x, size_t count, real max_value, real negative_slope, real threshold)
{
    CNN_FOR(count > CNN_PARALLEL_WORK, size_t, sp, (count + SPAN - 1) / SPAN, {
        size_t lo = sp * SPAN, hi = count - lo < SPAN ? count : lo + SPAN;
        for (size_t i = lo; i < hi; i++) {
            real v = x[i], d = v - threshold;
            real pos = v > threshold && v > 0 ? (v < max_value ? v : max_value) : 0;
            y[i] = v != v ? v : pos + (negative_slope != 0 && d < 0 ? negative_slope * d : 0);
        }
    });
}

/* dy, x (count) → dx (count) = dy·f'(x): 1 where threshold < x, 0 < x and x < max_value; negative_slope where
 * x < threshold; else 0. dx may be dy. */
void K(relu_backward)(real *dx, const real *dy, const real *x, size_t count, real max_value, real negative_slope,
                      real threshold)
{
    CNN_FOR(count > CNN_PARALLEL_WORK, size_t, sp, (count + SPAN - 1) / SPAN, {
        size_t lo = sp * SPAN, hi = count - lo < SPAN ? count : lo + SPAN;
        for (size_t i = lo; i < hi; i++) {
            real v = x[i];
            dx[i] = v > threshold && v > 0 && v < max_value ? dy[i] : v < threshold ? negative_slope * dy[i] : 0;
        }
    });
}

#endif
