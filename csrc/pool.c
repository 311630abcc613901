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
static void K(argmax2x2_forward)(real *y, int64_t *argmax, const real *x, const cnn_pool2d *g)
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
static void K(argmax2x2_backward)(real *dx, const real *dy, const int64_t *argmax, const cnn_pool2d *g)
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
        K(argmax2x2_forward)(y, argmax, x, g);
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
        K(argmax2x2_backward)(dx, dy, argmax, g);
        return;
    }
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    CNN_FOR((size_t)g->n * g->c * hw > CNN_PARALLEL_WORK, long, pl, (long)g->n * g->c, {
        real *out = dx + pl * hw;
        for (size_t p = 0; p < hw; p++) out[p] = 0;
        for (size_t o = pl * ohw; o < (pl + 1) * ohw; o++) out[argmax[o]] += dy[o];
    });
}

/* ---- issue 20: the 2x2 max-pool with one byte per window, and a ReLU folded in ------------------------------
 * The CIFAR convnets' Conv2D(relu) + MaxPooling2D(2): the window code (the winner's cell 0..3 in row-major order, or
 * MASKED) replaces the int64 plane index, 8x less to write and read back, and backward needs no bounds check: any
 * byte is a valid code, as a code names a cell of its own window. With relu the forward writes relu of each
 * window's maximum (the maximum of relu(x) but for the sign of a zero) and codes a window whose maximum is not
 * positive MASKED: the unfused pair's gradient there is 0 (activation_backward's relu reads y), and elsewhere it
 * reaches the same cell, so backward writes the input gradient of the ReLU and the pool together, each cell once. */
#define MASKED 4

/* Windows [0, count) of one output row, count <= CHUNK: rows r0, r1 of the input → y, and code through kf, the
 * codes as reals. Selects in the general loop's order (a later cell wins when larger or NaN), so that y matches
 * maxpool2d_forward's bits. relu: relu of the maximum, which is the maximum of relu of the cells (up to the sign of a
 * zero) and wins at the same cell when positive. The codes go through reals because a loop that writes bytes
 * vectorizes 32 windows at a time, and the CIFAR planes' rows hold 4 to 16, which its scalar tail, branching on
 * random signs, ran 5x slower; in reals the selects vectorize 4 or 8 at a time, and the narrowing copy has no
 * branch. Long indices: under CPython's -fwrapv an int one, scaled by 2, defeats the vectorizer (as
 * maxpool2x2_row's). Always inlined: GCC otherwise outlines it for the baseline ISA only, out of max2x2_plane's
 * AVX2 clone (10x slower). */
#define CHUNK 64
static inline __attribute__((always_inline)) void K(max2x2_windows)(real *restrict y, uint8_t *restrict code,
                                                                    const real *restrict r0, const real *restrict r1,
                                                                    long count, int relu)
{
    real kf[CHUNK];
    for (long ow = 0; ow < count; ow++) {
        real m = r0[2 * ow], v = r0[2 * ow + 1], k = 0;
        int t = v > m || v != v;
        m = t ? v : m, k = t ? 1 : k;
        v = r1[2 * ow], t = v > m || v != v;
        m = t ? v : m, k = t ? 2 : k;
        v = r1[2 * ow + 1], t = v > m || v != v;
        m = t ? v : m, k = t ? 3 : k;
        if (relu) /* activation_forward's relu (NaN passes); activation_backward's mask, off y */
            m = m < 0 ? 0 : m, k = m <= 0 ? MASKED : k;
        y[ow] = m;
        kf[ow] = k;
    }
    for (long ow = 0; ow < count; ow++) code[ow] = (uint8_t)kf[ow];
}

/* relu a constant in each copy, so that both loops vectorize without a test per window */
CNN_VECTOR_CLONES static void K(max2x2_plane)(real *y, uint8_t *code, const real *x, int h, int w, int relu)
{
    long ow_n = w / 2;
    for (long oh = 0; oh < h / 2; oh++)
        for (long ow = 0; ow < ow_n; ow += CHUNK) {
            const real *r0 = x + 2 * oh * w + 2 * ow;
            long o = oh * ow_n + ow, count = ow_n - ow < CHUNK ? ow_n - ow : CHUNK;
            if (relu) K(max2x2_windows)(y + o, code + o, r0, r0 + w, count, 1);
            else K(max2x2_windows)(y + o, code + o, r0, r0 + w, count, 0);
        }
}
#undef CHUNK

/* Windows [0, count) of one output row's gradient dy, code → input rows r0, r1, count <= CHUNK, every cell written
 * once: dy + 0 at the winner (the unfused backward's 0 + dy, which makes a -0 gradient +0), 0 elsewhere. The codes
 * are widened to reals first, for max2x2_windows' reason. */
#define CHUNK 64
static inline __attribute__((always_inline)) void K(max2x2_windows_backward)(real *restrict r0, real *restrict r1,
                                                                             const real *restrict dy,
                                                                             const uint8_t *restrict code, long count)
{
    real kf[CHUNK];
    for (long ow = 0; ow < count; ow++) kf[ow] = code[ow];
    for (long ow = 0; ow < count; ow++) {
        real g = dy[ow] + 0, k = kf[ow];
        r0[2 * ow] = k == 0 ? g : 0;
        r0[2 * ow + 1] = k == 1 ? g : 0;
        r1[2 * ow] = k == 2 ? g : 0;
        r1[2 * ow + 1] = k == 3 ? g : 0;
    }
}

CNN_VECTOR_CLONES static void K(max2x2_plane_backward)(real *dx, const real *dy, const uint8_t *code, int h, int w)
{
    long ow_n = w / 2;
    for (long oh = 0; oh < h / 2; oh++) {
        real *r0 = dx + 2 * oh * w;
        for (long ow = 0; ow < ow_n; ow += CHUNK) {
            long o = oh * ow_n + ow, count = ow_n - ow < CHUNK ? ow_n - ow : CHUNK;
            K(max2x2_windows_backward)(r0 + 2 * ow, r0 + w + 2 * ow, dy + o, code + o, count);
        }
        if (w & 1) r0[w - 1] = r0[2 * w - 1] = 0; /* an odd width's last column */
    }
    if (h & 1) /* an odd height's last row */
        for (long p = 0; p < w; p++) dx[(long)(h - 1) * w + p] = 0;
}
#undef CHUNK

/* x (N, C, H, W) → y, code (N, C, H/2, W/2): y the maximum of each 2x2 window at stride 2 (of relu(x) when relu),
 * code the winner's cell in its window (0..3 row-major) or MASKED (relu, and the maximum is not positive) */
void K(maxpool2x2_forward)(real *y, uint8_t *code, const real *x, int n, int c, int h, int w, int relu)
{
    size_t hw = (size_t)h * w, ohw = (size_t)(h / 2) * (w / 2);
    CNN_FOR((size_t)n * c * hw > CNN_PARALLEL_WORK, long, pl, (long)n *c,
            { K(max2x2_plane)(y + pl * ohw, code + pl * ohw, x + pl * hw, h, w, relu); });
}

/* dy, code (N, C, H/2, W/2) → dx (N, C, H, W) overwritten: dy at each window's coded cell, 0 elsewhere (the whole
 * window when MASKED, or any other byte) */
void K(maxpool2x2_backward)(real *dx, const real *dy, const uint8_t *code, int n, int c, int h, int w)
{
    size_t hw = (size_t)h * w, ohw = (size_t)(h / 2) * (w / 2);
    CNN_FOR((size_t)n * c * hw > CNN_PARALLEL_WORK, long, pl, (long)n *c,
            { K(max2x2_plane_backward)(dx + pl * hw, dy + pl * ohw, code + pl * ohw, h, w); });
}
#undef MASKED
/* ---- end of issue 20's 2x2 max-pool ---- */

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
