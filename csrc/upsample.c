/* upsample.c: 2-D upsampling of NCHW planes by integer factors, nearest or bilinear. Bilinear samples with half-pixel
 * centres (align_corners = False: PyTorch's F.interpolate(mode='bilinear'), and Keras's UpSampling2D, which resizes
 * by tf.image.resize/jax.image.resize): output cell o reads input coordinate (o + 1/2)/s - 1/2, clamped at 0, between
 * its two neighbouring cells (the last cell twice at the far edge). Threads own whole planes, so backward's scatter
 * needs no atomics and results do not depend on the thread count.
 * Worked example: the 1x2 row [0 4] upsampled by 2 → nearest [0 0 4 4]; bilinear reads 0, 0.25, 0.75, 1 (clamped to
 * 0 and the last cell at the ends) → [0 1 3 4]. */
#ifndef real
#include <string.h>
#include "cnn.h"

#define TEMPLATE "upsample.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* Output cell o of a row upsampled by s from `in` cells: neighbours i0, i1 and the weight of i1. */
static inline void K(source)(int o, int s, int in, int *i0, int *i1, real *l1)
{
    real src = ((real)o + (real)0.5) / (real)s - (real)0.5;
    if (src < 0) src = 0;
    *i0 = (int)src;
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *l1 = src - (real)*i0;
}

/* x (N, C, H, W) → y (N, C, H·SH, W·SW) */
void K(upsample2d_forward)(real *y, const real *x, int n, int c, int h, int w, int sh, int sw, int bilinear)
{
    int oh = h * sh, ow = w * sw;
    size_t hw = (size_t)h * w, ohw = (size_t)oh * ow;
    CNN_FOR((size_t)n * c * ohw > CNN_PARALLEL_WORK, long, pl, (long)n *c, {
        const real *in = x + pl * hw;
        real *out = y + pl * ohw;
        for (int r = 0; r < oh; r++) {
            real *row = out + (size_t)r * ow;
            if (!bilinear) {
                const real *src = in + (size_t)(r / sh) * w;
                for (int q = 0; q < ow; q++) row[q] = src[q / sw];
                continue;
            }
            int h0, h1, w0, w1;
            real lh, lw;
            K(source)(r, sh, h, &h0, &h1, &lh);
            const real *a = in + (size_t)h0 * w, *b = in + (size_t)h1 * w;
            for (int q = 0; q < ow; q++) {
                K(source)(q, sw, w, &w0, &w1, &lw);
                real top = a[w0] * (1 - lw) + a[w1] * lw, bottom = b[w0] * (1 - lw) + b[w1] * lw;
                row[q] = top * (1 - lh) + bottom * lh;
            }
        }
    });
}

/* dy (N, C, H·SH, W·SW) → dx (N, C, H, W) overwritten: each output's gradient back onto the cells it read */
void K(upsample2d_backward)(real *dx, const real *dy, int n, int c, int h, int w, int sh, int sw, int bilinear)
{
    int oh = h * sh, ow = w * sw;
    size_t hw = (size_t)h * w, ohw = (size_t)oh * ow;
    CNN_FOR((size_t)n * c * ohw > CNN_PARALLEL_WORK, long, pl, (long)n *c, {
        real *in = dx + pl * hw;
        const real *out = dy + pl * ohw;
        memset(in, 0, hw * sizeof(real));
        for (int r = 0; r < oh; r++) {
            const real *row = out + (size_t)r * ow;
            if (!bilinear) {
                real *dst = in + (size_t)(r / sh) * w;
                for (int q = 0; q < ow; q++) dst[q / sw] += row[q];
                continue;
            }
            int h0, h1, w0, w1;
            real lh, lw;
            K(source)(r, sh, h, &h0, &h1, &lh);
            real *a = in + (size_t)h0 * w, *b = in + (size_t)h1 * w;
            for (int q = 0; q < ow; q++) {
                K(source)(q, sw, w, &w0, &w1, &lw);
                real top = row[q] * (1 - lh), bottom = row[q] * lh;
                a[w0] += top * (1 - lw);
                a[w1] += top * lw;
                b[w0] += bottom * (1 - lw);
                b[w1] += bottom * lw;
            }
        }
    });
}

#endif
