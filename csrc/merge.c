/* merge.c: the element-wise and concatenating merges of several tensors (Keras's Add, Multiply, Concatenate).
 * Add and Multiply combine two tensors of one shape; a merge of k inputs is k - 1 of them in turn, left to
 * right, as Keras and PyTorch sum and multiply. Add's backward is the identity (each input's gradient is
 * dy), so it has no kernel. Concatenate sees each tensor as rows: M = the product of the dimensions before
 * the axis (batch included), and a row holds the axis and everything after it.
 * Worked example: concatenating x0 = [[1 2]] and x1 = [[3]] along the last axis gives [[1 2 3]] (M = 1,
 * rows of 2 and 1 at offsets 0 and 2); its backward hands dy[:, 0:2] to x0 and dy[:, 2:3] to x1. */
#ifndef real
#include <string.h>
#include "cnn.h"

/* Element loops run over spans of SPAN elements, one thread below CNN_PARALLEL_WORK elements. */
#define SPAN 4096
#define IVDEP _Pragma("GCC ivdep") /* y may be a or b: element i reads only index i */
#define ELEMENTS(body)                                                         \
    CNN_FOR(count > CNN_PARALLEL_WORK, size_t, s, (count + SPAN - 1) / SPAN, { \
        size_t lo = s * SPAN, hi = count - lo < SPAN ? count : lo + SPAN;      \
        IVDEP for (size_t i = lo; i < hi; i++) body;                           \
    })

#define TEMPLATE "merge.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* a, b (count) → y (count) = a + b, or with relu (issue 20: a ReLU layer after the Add taken over) relu_forward's
 * plain ReLU of it (NaN passes), one pass saved; y may be a or b */
void K(add_forward)(real *y, const real *a, const real *b, size_t count, int relu)
{
    if (relu)
        ELEMENTS({
            real v = a[i] + b[i];
            y[i] = v > 0 || v != v ? v : 0;
        });
    else ELEMENTS(y[i] = a[i] + b[i]);
}

/* a, b (count) → y (count) = a·b; y may be a or b */
void K(multiply_forward)(real *y, const real *a, const real *b, size_t count) { ELEMENTS(y[i] = a[i] * b[i]); }

/* dy, a, b (count) → da = dy·b, db = dy·a (either may be NULL: its gradient is not wanted) */
void K(multiply_backward)(real *da, real *db, const real *dy, const real *a, const real *b, size_t count)
{
    if (da) ELEMENTS(da[i] = dy[i] * b[i]);
    if (db) ELEMENTS(db[i] = dy[i] * a[i]);
}

/* x (M, I) → y (M, J)[:, offset:offset + I]; offset + I <= J */
void K(concatenate_forward)(real *y, const real *x, size_t m, size_t in, size_t out, size_t offset)
{
    CNN_FOR(m * in > CNN_PARALLEL_WORK, size_t, r, m, memcpy(y + r * out + offset, x + r * in, in * sizeof(real)););
}

/* dy (M, J) → dx (M, I) = dy[:, offset:offset + I] */
void K(concatenate_backward)(real *dx, const real *dy, size_t m, size_t in, size_t out, size_t offset)
{
    CNN_FOR(m * in > CNN_PARALLEL_WORK, size_t, r, m, memcpy(dx + r * in, dy + r * out + offset, in * sizeof(real)););
}

#endif
