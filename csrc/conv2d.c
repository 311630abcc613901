/* conv2d.c: 2-D convolution (cross-correlation, as PyTorch) over NCHW, with stride, zero padding,
 * dilation and groups. Three paths, chosen from the geometry alone so forward and backward agree:
 *   depthwise (one input channel per group: groups = C > 1, the lecture's per-channel 1x1 scale included):
 *     direct loops over each plane, no scratch;
 *   1x1, stride 1, no padding: a gemm per sample on x as it lies, no scratch;
 *   otherwise im2col of the whole batch into columns (C·KH·KW, N·OH·OW), so each group is ONE gemm
 *     whose K (backward: dw) runs over the whole batch: deterministic for any thread count.
 * Worked example: x = [[1 2 3], [4 5 6], [7 8 9]] (1x1x3x3), w = [[1 0], [0 1]] (1x1x2x2), no bias
 *   → y = [[1+5, 2+6], [4+8, 5+9]] = [[6 8], [12 14]]. */
#ifdef real

/* Row kernels over outputs o in [lo, hi) reading input o·s + off. dst and src never overlap, which gcc
 * cannot prove on its own: `omp simd` lets the s = 1 loops vectorize (rows are short, 10 to 28 cells). */
static inline void K(row_gather)(real *restrict dst, const real *restrict src, real a, int lo, int hi, int s, int off)
{
    if (s == 1) {
#pragma omp simd
        for (int o = lo; o < hi; o++) dst[o] += a * src[o + off];
    } else
        for (int o = lo; o < hi; o++) dst[o] += a * src[o * s + off];
}

static inline void K(row_scatter)(real *restrict dst, const real *restrict src, real a, int lo, int hi, int s, int off)
{
    if (s == 1) {
#pragma omp simd
        for (int o = lo; o < hi; o++) dst[o + off] += a * src[o];
    } else
        for (int o = lo; o < hi; o++) dst[o * s + off] += a * src[o];
}

/* columns (C·KH·KW, N·OH·OW): row (c, i, j), column (n, oh, ow) holds x[n, c, oh·sh - pt + i·dh, ow·sw - pl + j·dw] */
static void K(im2col)(real *col, const real *x, const cnn_conv2d *g)
{
    int kk = g->kh * g->kw, ohw = g->oh * g->ow;
    size_t np = (size_t)g->n * ohw;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)g->c * kk * np > CNN_PARALLEL_WORK)
    for (int r = 0; r < g->c * kk; r++)
        for (int n = 0; n < g->n; n++) {
            int c = r / kk, i = r % kk / g->kw, j = r % g->kw;
            int off_h = i * g->dil_h - g->pt, off_w = j * g->dil_w - g->pl, lo, hi;
            span(g->ow, g->w, g->sw, off_w, &lo, &hi);
            const real *plane = x + ((size_t)n * g->c + c) * g->h * g->w;
            real *out = col + r * np + (size_t)n * ohw;
            for (int oh = 0; oh < g->oh; oh++, out += g->ow) {
                int ih = oh * g->sh + off_h;
                if (ih < 0 || ih >= g->h || lo >= hi) {
                    for (int ow = 0; ow < g->ow; ow++) out[ow] = 0;
                    continue;
                }
                const real *row = plane + (size_t)ih * g->w;
                for (int ow = 0; ow < lo; ow++) out[ow] = 0;
                if (g->sw == 1)
                    memcpy(out + lo, row + lo + off_w, (size_t)(hi - lo) * sizeof(real));
                else
                    for (int ow = lo; ow < hi; ow++) out[ow] = row[ow * g->sw + off_w];
                for (int ow = hi; ow < g->ow; ow++) out[ow] = 0;
            }
        }
}

/* dx (N, C, H, W) = the sum of every column entry back onto the pixel it was copied from; each thread owns planes */
static void K(col2im)(real *dx, const real *col, const cnn_conv2d *g)
{
    int kk = g->kh * g->kw, ohw = g->oh * g->ow;
    size_t np = (size_t)g->n * ohw;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)g->c * kk * np > CNN_PARALLEL_WORK)
    for (int n = 0; n < g->n; n++)
        for (int c = 0; c < g->c; c++) {
            real *plane = dx + ((size_t)n * g->c + c) * g->h * g->w;
            for (size_t p = 0; p < (size_t)g->h * g->w; p++) plane[p] = 0;
            for (int r = c * kk; r < (c + 1) * kk; r++) {
                int i = r % kk / g->kw, j = r % g->kw;
                int off_h = i * g->dil_h - g->pt, off_w = j * g->dil_w - g->pl, lo, hi;
                span(g->ow, g->w, g->sw, off_w, &lo, &hi);
                const real *in = col + r * np + (size_t)n * ohw;
                for (int oh = 0; oh < g->oh; oh++, in += g->ow) {
                    int ih = oh * g->sh + off_h;
                    if (ih < 0 || ih >= g->h) continue;
                    real *row = plane + (size_t)ih * g->w;
                    K(row_scatter)(row, in, 1, lo, hi, g->sw, off_w);
                }
            }
        }
}

/* One kernel tap (i, j) between an output plane (OH, OW) and an input plane (H, W), over the cells it
 * reaches inside the input: out += wv·in (forward), in += wv·out (input gradient; in is written only
 * then), or returns Σ out·in (weight gradient). */
static inline real K(plane_tap)(real *out, real *in, real wv, const cnn_conv2d *g, int i, int j, tap_mode mode)
{
    int off_h = i * g->dil_h - g->pt, off_w = j * g->dil_w - g->pl, lo, hi;
    span(g->ow, g->w, g->sw, off_w, &lo, &hi);
    real acc = 0;
    for (int oh = 0; oh < g->oh; oh++) {
        int ih = oh * g->sh + off_h;
        if (ih < 0 || ih >= g->h) continue;
        real *row = in + (size_t)ih * g->w, *orow = out + (size_t)oh * g->ow;
        if (mode == TAP_FORWARD) K(row_gather)(orow, row, wv, lo, hi, g->sw, off_w);
        else if (mode == TAP_INPUT_GRAD) K(row_scatter)(row, orow, wv, lo, hi, g->sw, off_w);
        else
            for (int ow = lo; ow < hi; ow++) acc += orow[ow] * row[ow * g->sw + off_w];
    }
    return acc;
}

/* y[n, o] = b[o] + Σ_ij w[o, 0, i, j]·x[n, o/m, ...] with m = OC/C outputs per input channel */
static void K(depthwise_forward)(real *y, const real *x, const real *w, const real *b, const cnn_conv2d *g)
{
    int m = g->oc / g->c, kk = g->kh * g->kw, ohw = g->oh * g->ow;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)g->n * g->oc * ohw * kk > CNN_PARALLEL_WORK)
    for (int n = 0; n < g->n; n++)
        for (int o = 0; o < g->oc; o++) {
            real *plane = (real *)x + ((size_t)n * g->c + o / m) * g->h * g->w;
            real *out = y + ((size_t)n * g->oc + o) * ohw;
            real bias = b ? b[o] : 0;
            for (int p = 0; p < ohw; p++) out[p] = bias;
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++)
                    K(plane_tap)(out, plane, w[(size_t)o * kk + i * g->kw + j], g, i, j, TAP_FORWARD);
        }
}

/* dx planes owned per (n, c); dw[o] sums over the batch in order inside its own thread */
static void K(depthwise_backward)(real *dx, real *dw, const real *dy, const real *x, const real *w,
                                  const cnn_conv2d *g)
{
    int m = g->oc / g->c, kk = g->kh * g->kw, ohw = g->oh * g->ow;
    size_t hw = (size_t)g->h * g->w;
#pragma omp parallel for schedule(static) if ((size_t)g->n * g->oc * ohw * kk > CNN_PARALLEL_WORK)
    for (int o = 0; o < g->oc; o++)
        for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++) {
                real acc = 0;
                for (int n = 0; n < g->n; n++)
                    acc += K(plane_tap)((real *)dy + ((size_t)n * g->oc + o) * ohw,
                                        (real *)x + ((size_t)n * g->c + o / m) * hw, 0, g, i, j, TAP_WEIGHT_GRAD);
                dw[(size_t)o * kk + i * g->kw + j] += acc;
            }
    if (!dx) return;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)g->n * g->oc * ohw * kk > CNN_PARALLEL_WORK)
    for (int n = 0; n < g->n; n++)
        for (int c = 0; c < g->c; c++) {
            real *plane = dx + ((size_t)n * g->c + c) * hw;
            for (size_t p = 0; p < hw; p++) plane[p] = 0;
            for (int o = c * m; o < (c + 1) * m; o++)
                for (int i = 0; i < g->kh; i++)
                    for (int j = 0; j < g->kw; j++)
                        K(plane_tap)((real *)dy + ((size_t)n * g->oc + o) * ohw, plane,
                                     w[(size_t)o * kk + i * g->kw + j], g, i, j, TAP_INPUT_GRAD);
        }
}

void K(conv2d_forward)(real *y, const real *x, const real *w, const real *b, real *scratch, const cnn_conv2d *g)
{
    conv_path path = conv2d_path(g);
    if (path == PATH_DEPTHWISE) {
        K(depthwise_forward)(y, x, w, b, g);
        return;
    }
    int G = g->groups, cg = g->c / G, og = g->oc / G, ohw = g->oh * g->ow;
    if (path == PATH_POINTWISE) {
#pragma omp parallel for schedule(static) if ((size_t)g->n * g->oc * ohw * cg > CNN_PARALLEL_WORK)
        for (int n = 0; n < g->n; n++)
            for (int q = 0; q < G; q++) {
                real *out = y + ((size_t)n * g->oc + (size_t)q * og) * ohw;
                K(gemm)(out, w + (size_t)q * og * cg, x + ((size_t)n * g->c + (size_t)q * cg) * ohw, og, ohw, cg,
                        cg, 1, ohw, 1, ohw, 0);
                for (int o = 0; b && o < og; o++)
                    for (int p = 0; p < ohw; p++) out[(size_t)o * ohw + p] += b[q * og + o];
            }
        return;
    }
    int ck = cg * g->kh * g->kw;
    size_t np = (size_t)g->n * ohw;
    real *col = scratch, *yt = scratch + (size_t)g->c * g->kh * g->kw * np;
    K(im2col)(col, x, g);
    for (int q = 0; q < G; q++)
        K(gemm)(yt + q * og * np, w + (size_t)q * og * ck, col + q * ck * np, og, (int)np, ck, ck, 1, np, 1, np, 0);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)g->n * g->oc * ohw > CNN_PARALLEL_WORK)
    for (int n = 0; n < g->n; n++)
        for (int o = 0; o < g->oc; o++) {
            const real *src = yt + o * np + (size_t)n * ohw;
            real *out = y + ((size_t)n * g->oc + o) * ohw, bias = b ? b[o] : 0;
            for (int p = 0; p < ohw; p++) out[p] = src[p] + bias;
        }
}

void K(conv2d_backward)(real *dx, real *dw, real *db, const real *dy, const real *x, const real *w, real *scratch,
                        const cnn_conv2d *g)
{
    int G = g->groups, cg = g->c / G, og = g->oc / G, ohw = g->oh * g->ow;
    if (db) {
#pragma omp parallel for schedule(static) if ((size_t)g->n * g->oc * ohw > CNN_PARALLEL_WORK)
        for (int o = 0; o < g->oc; o++) {
            real acc = 0;
            for (int n = 0; n < g->n; n++) {
                const real *grad = dy + ((size_t)n * g->oc + o) * ohw;
                for (int p = 0; p < ohw; p++) acc += grad[p];
            }
            db[o] += acc;
        }
    }
    conv_path path = conv2d_path(g);
    if (path == PATH_DEPTHWISE) {
        K(depthwise_backward)(dx, dw, dy, x, w, g);
        return;
    }
    if (path == PATH_POINTWISE) {
        /* dw: samples in order, each gemm deterministic on its own */
        for (int n = 0; n < g->n; n++)
            for (int q = 0; q < G; q++)
                K(gemm)(dw + (size_t)q * og * cg, dy + ((size_t)n * g->oc + (size_t)q * og) * ohw,
                        x + ((size_t)n * g->c + (size_t)q * cg) * ohw, og, cg, ohw, ohw, 1, 1, ohw, cg, 1);
        if (!dx) return;
#pragma omp parallel for schedule(static) if ((size_t)g->n * g->c * ohw * og > CNN_PARALLEL_WORK)
        for (int n = 0; n < g->n; n++)
            for (int q = 0; q < G; q++)
                K(gemm)(dx + ((size_t)n * g->c + (size_t)q * cg) * ohw, w + (size_t)q * og * cg,
                        dy + ((size_t)n * g->oc + (size_t)q * og) * ohw, cg, ohw, og, 1, cg, ohw, 1, ohw, 0);
        return;
    }
    int ck = cg * g->kh * g->kw;
    size_t np = (size_t)g->n * ohw;
    real *col = scratch, *dyt = scratch + (size_t)g->c * g->kh * g->kw * np;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)g->n * g->oc * ohw > CNN_PARALLEL_WORK)
    for (int n = 0; n < g->n; n++)
        for (int o = 0; o < g->oc; o++) {
            const real *src = dy + ((size_t)n * g->oc + o) * ohw;
            real *dst = dyt + o * np + (size_t)n * ohw;
            for (int p = 0; p < ohw; p++) dst[p] = src[p];
        }
    for (int q = 0; q < G; q++)
        K(gemm)(dw + (size_t)q * og * ck, dyt + q * og * np, col + q * ck * np, og, ck, (int)np, np, 1, 1, np, ck, 1);
    if (!dx) return;
    /* the columns are spent: reuse them for their gradient */
    for (int q = 0; q < G; q++)
        K(gemm)(col + q * ck * np, w + (size_t)q * og * ck, dyt + q * og * np, ck, (int)np, og, 1, ck, np, 1, np, 0);
    K(col2im)(dx, col, g);
}

#else
#define TEMPLATE "conv2d.c"
#include <string.h>
#include "cnn.h"

typedef enum { PATH_IM2COL, PATH_POINTWISE, PATH_DEPTHWISE } conv_path;
typedef enum { TAP_FORWARD, TAP_INPUT_GRAD, TAP_WEIGHT_GRAD } tap_mode;

static conv_path conv2d_path(const cnn_conv2d *g)
{
    /* one input channel feeding several outputs is better served by gemm's register tile */
    if (g->groups == g->c && g->c > 1) return PATH_DEPTHWISE;
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 && g->oh == g->h &&
        g->ow == g->w)
        return PATH_POINTWISE;
    return PATH_IM2COL;
}

size_t conv2d_scratch_size(const cnn_conv2d *g)
{
    if (conv2d_path(g) != PATH_IM2COL) return 0;
    return ((size_t)g->c * g->kh * g->kw + (size_t)g->oc) * g->n * g->oh * g->ow;
}

/* Outputs o in [lo, hi) read input o·s + off inside [0, in): the rest of the row is padding. */
static inline void span(int out, int in, int s, int off, int *lo, int *hi)
{
    long long a = off >= 0 ? 0 : (-(long long)off + s - 1) / s;  /* s up to INT_MAX: sums in long long */
    long long b = (long long)in - off <= 0 ? 0 : ((long long)in - off + s - 1) / s;
    *lo = a < out ? (int)a : out;
    *hi = b < out ? (int)b : out;
    if (*hi < *lo) *hi = *lo;
}

#include "template.h"
#endif
