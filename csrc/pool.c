/* pool.c: max and average pooling over NCHW planes, following PyTorch's CPU kernels
 * (aten/src/ATen/native/cpu/MaxPoolKernel.cpp, AvgPoolKernel.cpp) so indices and divisors agree.
 * Each thread owns whole (n, c) planes of its output, so backward scatters need no atomics.
 * Worked example: the 2x2 plane [[1 3], [3 2]] max-pools to 3 at index 1 (the first 3 in row-major
 * order) and average-pools to (1+3+3+2)/4 = 2.25. */
#ifndef real
#include <math.h>
#include "cnn.h"

/* 2x2 windows at stride 2 without padding (LeNet's subsampling, the CIFAR convnets' max-pool): every window
 * is whole and windows do not overlap. The fast paths visit a window's cells in the general loop's order
 * (row by row), so the sums, the maxima and the indices are the same bits. */
static inline int tiles_2x2(const cnn_pool2d *g)
{
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && !g->pt && !g->pb && !g->pl && !g->pr;
}

#define TEMPLATE "pool.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* One output row of the 2x2 max-pool: rows r0 and r1 of the input, the first cell's index in its plane at
 * base. Branch-free selects in the general loop's order, so that a row vectorizes: a later cell wins when it
 * is larger or NaN (a NaN propagates, as PyTorch's), an equal one does not (the first maximum keeps it).
 * The index is a long: under CPython's -fwrapv an int one, scaled by 2, defeats the vectorizer (10x slower). */
CNN_VECTOR_CLONES static void K(maxpool2x2_row)(real *y, int64_t *argmax, const real *r0, const real *r1, long ow_n,
                                                int w, int64_t base)
{
    for (long ow = 0; ow < ow_n; ow++) {
        real m = r0[2 * ow], v = r0[2 * ow + 1];
        int64_t k = 0;
        int t = v > m || v != v;
        m = t ? v : m, k = t ? 1 : k;
        v = r1[2 * ow], t = v > m || v != v;
        m = t ? v : m, k = t ? w : k;
        v = r1[2 * ow + 1], t = v > m || v != v;
        m = t ? v : m, k = t ? w + 1 : k;
        y[ow] = m;
        argmax[ow] = base + 2 * ow + k;
    }
}

/* dy, argmax of one output row of the 2x2 max-pool → the two input rows from r (2·W cells, the first at
 * base in its plane): zeroed, then each gradient added at its winner, while both rows are in L1 (selects
 * per cell measured 8x slower than this) */
CNN_VECTOR_CLONES static void K(maxpool2x2_row_backward)(real *restrict r, const real *restrict dy,
                                                         const int64_t *restrict argmax, long ow_n, long w,
                                                         int64_t base)
{
    for (long p = 0; p < 2 * w; p++) r[p] = 0;
    for (long ow = 0; ow < ow_n; ow++) r[argmax[ow] - base] += dy[ow];
}

/* x (N, C, H, W) → y, argmax (N, C, H/2, W/2): tiles_2x2 geometry only */
static void K(maxpool2x2_forward)(real *y, int64_t *argmax, const real *x, const cnn_pool2d *g)
{
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    CNN_FOR((size_t)g->n * g->c * hw > CNN_PARALLEL_WORK, long, pl, (long)g->n * g->c, {
        for (int oh = 0; oh < g->oh; oh++) {
            const real *r0 = x + pl * hw + (size_t)2 * oh * g->w;
            size_t o = pl * ohw + (size_t)oh * g->ow;
            K(maxpool2x2_row)(y + o, argmax + o, r0, r0 + g->w, g->ow, g->w, (int64_t)2 * oh * g->w);
        }
    });
}

/* dy, argmax (N, C, H/2, W/2) → dx (N, C, H, W), row pair by row pair */
static void K(maxpool2x2_backward)(real *dx, const real *dy, const int64_t *argmax, const cnn_pool2d *g)
{
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    CNN_FOR((size_t)g->n * g->c * hw > CNN_PARALLEL_WORK, long, pl, (long)g->n * g->c, {
        real *plane = dx + pl * hw;
        for (int oh = 0; oh < g->oh; oh++) {
            size_t o = pl * ohw + (size_t)oh * g->ow;
            K(maxpool2x2_row_backward)(plane + (size_t)2 * oh * g->w, dy + o, argmax + o, g->ow, g->w,
                                       (int64_t)2 * oh * g->w);
        }
        for (size_t p = (size_t)2 * g->oh * g->w; p < hw; p++) plane[p] = 0; /* an odd height's last row */
    });
}

/* x (N, C, H, W) → y, argmax (N, C, OH, OW): argmax keeps each window's winner (h·W + w in its plane), so
 * the backward is a scatter that needs neither x nor y */
void K(maxpool2d_forward)(real *y, int64_t *argmax, const real *x, const cnn_pool2d *g)
{
    if (tiles_2x2(g)) {
        K(maxpool2x2_forward)(y, argmax, x, g);
        return;
    }
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    CNN_FOR((size_t)g->n * g->c * ohw * g->kh * g->kw > CNN_PARALLEL_WORK, long, pl, (long)g->n * g->c, {
        const real *in = x + pl * hw;
        for (int oh = 0; oh < g->oh; oh++)
            for (int ow = 0; ow < g->ow; ow++) {
                int h0 = oh * g->sh - g->pt, w0 = ow * g->sw - g->pl;
                int h1 = h0 + g->kh < g->h ? h0 + g->kh : g->h, w1 = w0 + g->kw < g->w ? w0 + g->kw : g->w;
                if (h0 < 0) h0 = 0;
                if (w0 < 0) w0 = 0;
                int64_t best = (int64_t)h0 * g->w + w0;
                real m = -INFINITY;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) {
                        real v = in[(size_t)ih * g->w + iw];
                        if (v > m || isnan(v)) {
                            m = v;
                            best = (int64_t)ih * g->w + iw;
                        }
                    }
                size_t o = pl * ohw + (size_t)oh * g->ow + ow;
                y[o] = m;
                argmax[o] = best;
            }
    });
}

/* dy, argmax (N, C, OH, OW) → dx (N, C, H, W): each dy added onto its window's winner */
void K(maxpool2d_backward)(real *dx, const real *dy, const int64_t *argmax, const cnn_pool2d *g)
{
    if (tiles_2x2(g)) {
        K(maxpool2x2_backward)(dx, dy, argmax, g);
        return;
    }
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    CNN_FOR((size_t)g->n * g->c * hw > CNN_PARALLEL_WORK, long, pl, (long)g->n * g->c, {
        real *out = dx + pl * hw;
        for (size_t p = 0; p < hw; p++) out[p] = 0;
        for (size_t o = pl * ohw; o < (pl + 1) * ohw; o++) out[argmax[o]] += dy[o];
    });
}

/* The window of output (oh, ow) clipped to the input, and its divisor. False when it holds no real cell. */
static inline int K(avg_window)(const cnn_pool2d *g, int oh, int ow, int count_include_pad, int *h0, int *h1, int *w0,
                                int *w1, real *div)
{
    *h0 = oh * g->sh - g->pt;
    *w0 = ow * g->sw - g->pl;
    *h1 = *h0 + g->kh < g->h + g->pb ? *h0 + g->kh : g->h + g->pb;
    *w1 = *w0 + g->kw < g->w + g->pr ? *w0 + g->kw : g->w + g->pr;
    int64_t padded = (int64_t)(*h1 - *h0) * (*w1 - *w0); /* a huge window's area exceeds INT_MAX */
    if (*h0 < 0) *h0 = 0;
    if (*w0 < 0) *w0 = 0;
    if (*h1 > g->h) *h1 = g->h;
    if (*w1 > g->w) *w1 = g->w;
    if (*h0 >= *h1 || *w0 >= *w1) return 0;
    *div = (real)(count_include_pad ? padded : (int64_t)(*h1 - *h0) * (*w1 - *w0));
    return 1;
}

/* x (N, C, H, W) → y (N, C, H/2, W/2): avg_2x2 geometry only */
static void K(avgpool2x2_forward)(real *y, const real *x, const cnn_pool2d *g)
{
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    CNN_FOR((size_t)g->n * g->c * hw > CNN_PARALLEL_WORK, long, pl, (long)g->n * g->c, {
        for (int oh = 0; oh < g->oh; oh++) {
            const real *r0 = x + pl * hw + (size_t)2 * oh * g->w, *r1 = r0 + g->w;
            real *out = y + pl * ohw + (size_t)oh * g->ow;
            for (int ow = 0; ow < g->ow; ow++)
                out[ow] = (r0[2 * ow] + r0[2 * ow + 1] + r1[2 * ow] + r1[2 * ow + 1]) / (real)4;
        }
    });
}

/* dy (N, C, H/2, W/2) → dx (N, C, H, W): windows do not overlap, so each cell is written once */
static void K(avgpool2x2_backward)(real *dx, const real *dy, const cnn_pool2d *g)
{
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    CNN_FOR((size_t)g->n * g->c * hw > CNN_PARALLEL_WORK, long, pl, (long)g->n * g->c, {
        real *plane = dx + pl * hw;
        for (int oh = 0; oh < g->oh; oh++) {
            const real *grad = dy + pl * ohw + (size_t)oh * g->ow;
            real *r0 = plane + (size_t)2 * oh * g->w, *r1 = r0 + g->w;
            for (int ow = 0; ow < g->ow; ow++) {
                real share = grad[ow] / (real)4;
                r0[2 * ow] = r0[2 * ow + 1] = r1[2 * ow] = r1[2 * ow + 1] = share;
            }
            for (int iw = 2 * g->ow; iw < g->w; iw++) r0[iw] = r1[iw] = 0; /* an odd width's last column */
        }
        for (size_t p = (size_t)2 * g->oh * g->w; p < hw; p++) plane[p] = 0; /* an odd height's last row */
    });
}

/* x (N, C, H, W) → y (N, C, OH, OW) */
void K(avgpool2d_forward)(real *y, const real *x, const cnn_pool2d *g, int count_include_pad)
{
    if (tiles_2x2(g)) {
        K(avgpool2x2_forward)(y, x, g);
        return;
    }
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    CNN_FOR((size_t)g->n * g->c * ohw * g->kh * g->kw > CNN_PARALLEL_WORK, long, pl, (long)g->n * g->c, {
        const real *in = x + pl * hw;
        real *out = y + pl * ohw;
        for (int oh = 0; oh < g->oh; oh++)
            for (int ow = 0; ow < g->ow; ow++) {
                int h0, h1, w0, w1;
                real div, sum = 0;
                if (K(avg_window)(g, oh, ow, count_include_pad, &h0, &h1, &w0, &w1, &div)) {
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++) sum += in[(size_t)ih * g->w + iw];
                    sum /= div;
                }
                out[(size_t)oh * g->ow + ow] = sum;
            }
    });
}

/* dy (N, C, OH, OW) → dx (N, C, H, W): each window's share spread over its real cells */
void K(avgpool2d_backward)(real *dx, const real *dy, const cnn_pool2d *g, int count_include_pad)
{
    if (tiles_2x2(g)) {
        K(avgpool2x2_backward)(dx, dy, g);
        return;
    }
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    CNN_FOR((size_t)g->n * g->c * (hw + ohw * g->kh * g->kw) > CNN_PARALLEL_WORK, long, pl, (long)g->n * g->c, {
        real *out = dx + pl * hw;
        const real *grad = dy + pl * ohw;
        for (size_t p = 0; p < hw; p++) out[p] = 0;
        for (int oh = 0; oh < g->oh; oh++)
            for (int ow = 0; ow < g->ow; ow++) {
                int h0, h1, w0, w1;
                real div;
                if (!K(avg_window)(g, oh, ow, count_include_pad, &h0, &h1, &w0, &w1, &div)) continue;
                real share = grad[(size_t)oh * g->ow + ow] / div;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) out[(size_t)ih * g->w + iw] += share;
            }
    });
}

#endif
