/* warp_matrix.c: the matrices of the random warp layers (RandomRotation, RandomZoom, RandomTranslation), built
 * from their draws and composed, so that a chain of them costs one call a layer rather than a dozen small NumPy
 * operations (each of which finds the caches cold in a training step). A matrix maps an output (row, column, 1)
 * to the input coordinate it reads, in cnn.image's (row, column) order; Keras's layers build the same matrices
 * in (x, y) order. The warps of an (H, W) image, about its centre (cy, cx) = ((H-1)/2, (W-1)/2):
 *   rotation by f (a fraction of a turn, a = 2πf, positive counter-clockwise):
 *     [[cos a, sin a, cy - (cos a·cy + sin a·cx)], [-sin a, cos a, cx - (cos a·cx - sin a·cy)]]
 *   zoom by (fy, fx) (1 + f: positive zooms out):  [[1 + fy, 0, cy·(-fy)], [0, 1 + fx, cx·(-fx)]]
 *   translation by (fy, fx) (fractions of H and W, positive down and right):  [[1, 0, -fy·H], [0, 1, -fx·W]]
 * Worked example: zoom (1, 1) of a 3x3 image: [[2, 0, -1], [0, 2, -1]] reads output (1, 1) at input (1, 1) (the
 * centre stays) and output (0, 0) at (-1, -1). Sums in double; images are independent, the loop is serial (a
 * batch is tens of images). */
#ifndef real
#include <math.h>
#include "cnn.h"

/* The warp of `kind` from one image's draws f[0] and f[stride] (the second draw; rotation has one, zoom one
 * (both axes) or two): a, the matrix in row-major order. */
static void warp_of(double a[6], cnn_warp_kind kind, double f0, double f1, const cnn_warp_matrix *g)
{
    double cy = (g->h - 1) / 2.0, cx = (g->w - 1) / 2.0;
    if (kind == WARP_ROTATION) {
        double angle = f0 * 6.283185307179586, c = cos(angle), s = sin(angle); /* 2π rounded to double */
        a[0] = c, a[1] = s, a[2] = cy - (c * cy + s * cx);
        a[3] = -s, a[4] = c, a[5] = cx - (c * cx - s * cy);
    } else if (kind == WARP_ZOOM) {
        a[0] = 1 + f0, a[1] = 0, a[2] = cy * -f0;
        a[3] = 0, a[4] = 1 + f1, a[5] = cx * -f1;
    } else {
        a[0] = 1, a[1] = 0, a[2] = -(f0 * g->h);
        a[3] = 0, a[4] = 1, a[5] = -(f1 * g->w);
    }
}

#define TEMPLATE "warp_matrix.c"
#include "template.h" /* the kernel below, once per real type */
#else

/* matrix (N, 2, 3), draws (K, N): matrix[n] = the warp kind(draws[:, n]), or with compose matrix[n] · that warp
 * as 3x3 affine maps (the warp applied first to an output coordinate, then matrix[n]) */
void K(warp_matrix_forward)(real *matrix, const real *draws, const cnn_warp_matrix *g)
{
    for (int n = 0; n < g->n; n++) {
        double a[6];
        double f0 = (double)draws[n], f1 = (double)draws[g->k > 1 ? (size_t)g->n + n : (size_t)n];
        warp_of(a, g->kind, f0, f1, g);
        real *m = matrix + (size_t)n * 6;
        if (!g->compose) {
            for (int e = 0; e < 6; e++) m[e] = (real)a[e];
            continue;
        }
        for (int r = 0; r < 2; r++) {
            double m0 = (double)m[3 * r], m1 = (double)m[3 * r + 1], m2 = (double)m[3 * r + 2];
            m[3 * r] = (real)(m0 * a[0] + m1 * a[3]);
            m[3 * r + 1] = (real)(m0 * a[1] + m1 * a[4]);
            m[3 * r + 2] = (real)(m0 * a[2] + m1 * a[5] + m2);
        }
    }
}

#endif
