/* conv_depthwise.c: conv2d's depthwise path (groups = C > 1, one input channel per group, m = OC/C outputs
 * each) for any window, stride, dilation and padding, but the 1x1 per-channel scale (conv2d.c's is_scale).
 * A gemm per group would be m rows tall (often 1): too few to fill a register tile. Instead every output row is
 * computed once from the KH input rows it needs (conv_depthwise_tile.h, one instance per real type and ISA, as
 * gemm.c picks it): the forward per (sample, output channel) plane, the input gradient as the transposed
 * correlation of dy per (sample, input channel) plane, and the weight gradient per output channel, all its taps
 * in one pass over each (dy, x) plane pair and the samples summed in order: bitwise the same for any thread
 * count. An output row is described by a dw_row, built here from the geometry alone.
 * Worked example: x = [[1 2 3], [4 5 6], [7 8 9]] (one channel of 3x3), w = [[1 0], [0 1]], no padding
 *   → y = [[1+5, 2+6], [4+8, 5+9]] = [[6 8], [12 14]], as conv2d.c's. */
#ifndef real
#include <string.h>
#include "cnn.h"

/* One row of outputs t < n, written at out[t·os]: out = init + Σ_p Σ_k Σ_l w[p·wp + k·wr + l·wc] ·
 * in[p·ip + k·ir + col] over the taps whose col = c0 + t·s + l·ic falls in [0, width), the rest padding.
 * planes p (the m output channels of an input gradient), tap rows k (those inside the input), tap columns l.
 * Outputs [ta, tb) have every tap inside the row (dw_interior). A plane's rows share all but rows, ir, wr: the
 * builders set the columns' part once (_cols) and the rows' part per row (_rows). */
typedef struct {
    int n, os, planes, rows, cols;
    ptrdiff_t ip, ir, wp, wr, wc;
    long ic, s, c0, width, ta, tb;
} dw_row;

static long floor_div(long a, long b) { return a >= 0 ? a / b : -((-a + b - 1) / b); } /* b > 0 */
static long gcd(long a, long b) { return b ? gcd(b, a % b) : a; }

static void dw_interior(dw_row *r)
{
    long reach = (long)(r->cols - 1) * r->ic, lo = r->c0 + (reach < 0 ? reach : 0),
         hi = r->c0 + (reach > 0 ? reach : 0);
    long a = lo >= 0 ? 0 : (-lo + r->s - 1) / r->s, b = hi >= r->width ? 0 : (r->width - hi + r->s - 1) / r->s;
    r->ta = a < r->n ? a : r->n;
    r->tb = b < r->n ? b : r->n;
    if (r->tb < r->ta) r->tb = r->ta;
}

/* The forward: tap (i, j) of output (oh, t) reads x[oh·sh - pt + i·dh, t·sw - pl + j·dw]. */
static void dw_forward_cols(dw_row *r, const cnn_conv2d *g)
{
    *r = (dw_row){.n = g->ow,
                  .os = 1,
                  .planes = 1,
                  .cols = g->kw,
                  .ir = (ptrdiff_t)g->dil_h * g->w,
                  .wr = g->kw,
                  .wc = 1,
                  .ic = g->dil_w,
                  .s = g->sw,
                  .c0 = -(long)g->pl,
                  .width = g->w};
    dw_interior(r);
}

/* Row oh: the tap rows inside x. in_off: x's row of the first; w_off: that row's first weight. */
static void dw_forward_rows(dw_row *r, const cnn_conv2d *g, int oh, ptrdiff_t *in_off, ptrdiff_t *w_off)
{
    long ih = (long)oh * g->sh - g->pt, step = g->dil_h, a, b;
    if (step == 1) /* no division: a row costs as much as two of them */
        a = ih >= 0 ? 0 : -ih, b = ih >= g->h ? 0 : g->h - ih;
    else a = ih >= 0 ? 0 : (-ih + step - 1) / step, b = ih >= g->h ? 0 : (g->h - 1 - ih) / step + 1;
    a = a < g->kh ? a : g->kh;
    b = b < g->kh ? b : g->kh;
    r->rows = b > a ? (int)(b - a) : 0;
    *in_off = r->rows ? (ptrdiff_t)(ih + a * step) * g->w : 0;
    *w_off = (ptrdiff_t)a * g->kw;
}

/* The taps f + k·q (k < count, returned) of a window of `taps` dilated by d that reach cell `cell` of the padded
 * input from an output at stride s: output u0 - k·step for tap k. None (0) when no tap lands on a multiple of s. */
static int dw_transposed_taps(long cell, int taps, int d, int s, int *f, int *q, long *u0, long *step)
{
    if (s == 1) { /* every tap, without the divisions */
        *f = 0, *q = 1, *u0 = cell, *step = d;
        return taps;
    }
    *q = (int)(s / gcd(s, d));
    for (*f = 0; *f < taps && *f < *q; (*f)++)
        if ((cell - (long)*f * d) % s == 0) break;
    if (*f >= taps || *f >= *q) return 0;
    *u0 = (cell - (long)*f * d) / s;
    *step = (long)*q * d / s;
    return (taps - 1 - *f) / *q + 1;
}

/* Row ih, columns ≡ b (mod sw), of the input gradient of one input channel from its m output channels:
 * dx[ih, b + t·sw] = Σ over the taps (i, j) with ih + pt - i·dh = oh·sh and b + t·sw + pl - j·dw = ow·sw of
 * w[i, j]·dy[oh, ow]. Such taps are every q-th row and column of the window, and along the phase ow steps by
 * one: each dx cell gathers its taps, and is written once. dw_input_cols sets the columns' part of r, once per
 * phase b, and w_off to the first tap column; dw_input_rows the rows' part for row ih, and adds to w_off. */
static void dw_input_cols(dw_row *r, const cnn_conv2d *g, int m, int b, ptrdiff_t *w_off)
{
    int fj = 0, qj = 1;
    long ow = 0, cstep = 1;
    int cols = dw_transposed_taps((long)b + g->pl, g->kw, g->dil_w, g->sw, &fj, &qj, &ow, &cstep);
    /* the columns' edges (ow outside [0, OW)) are the row kernel's */
    *r = (dw_row){.n = (int)((g->w - b + g->sw - 1) / g->sw),
                  .os = g->sw,
                  .planes = m,
                  .cols = cols,
                  .ip = (ptrdiff_t)g->oh * g->ow,
                  .wp = (ptrdiff_t)g->kh * g->kw,
                  .wc = qj,
                  .ic = -cstep,
                  .s = 1,
                  .c0 = ow,
                  .width = g->ow};
    dw_interior(r);
    *w_off = fj;
}

static void dw_input_rows(dw_row *r, const cnn_conv2d *g, int ih, ptrdiff_t *in_off, ptrdiff_t *w_off)
{
    int fi = 0, qi = 1;
    long oh = 0, rstep = 1;
    int rows = dw_transposed_taps((long)ih + g->pt, g->kh, g->dil_h, g->sh, &fi, &qi, &oh, &rstep);
    /* the tap rows whose oh - k·rstep lies in [0, OH) */
    long ka, kb;
    if (rstep == 1) ka = oh - g->oh + 1 <= 0 ? 0 : oh - g->oh + 1, kb = oh < 0 ? 0 : oh + 1;
    else ka = oh - g->oh + 1 <= 0 ? 0 : -floor_div(-(oh - g->oh + 1), rstep), kb = oh < 0 ? 0 : oh / rstep + 1;
    kb = kb < rows ? kb : rows;
    r->rows = r->cols && kb > ka ? (int)(kb - ka) : 0;
    r->ir = -(ptrdiff_t)rstep * g->ow;
    r->wr = (ptrdiff_t)qi * g->kw;
    *in_off = r->rows ? (ptrdiff_t)(oh - ka * rstep) * g->ow : 0;
    *w_off += r->rows ? ((ptrdiff_t)fi + (ptrdiff_t)ka * qi) * g->kw : 0;
}

/* the output rows [oa, ob) whose taps all lie inside x (oa = ob when none) */
static void dw_full_rows(const cnn_conv2d *g, int *oa, int *ob)
{
    long a = ((long)g->pt + g->sh - 1) / g->sh, last = (long)g->h - 1 - (long)(g->kh - 1) * g->dil_h + g->pt;
    long b = last < 0 ? 0 : last / g->sh + 1;
    *oa = (int)(a < g->oh ? a : g->oh);
    *ob = (int)(b < g->oh ? b : g->oh);
    if (*ob < *oa) *ob = *oa;
}

/* DW_EVEN: the shuffle of two loads (p, p + V - 1) that picks p[0], p[2], ..., p[2V - 2]; DW_IOTA: 0..V-1 */
#define DW_EVEN2 0, 3
#define DW_EVEN4 0, 2, 5, 7
#define DW_EVEN8 0, 2, 4, 6, 9, 11, 13, 15
#define DW_EVEN16 0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29, 31
#define DW_IOTA2 0, 1
#define DW_IOTA4 0, 1, 2, 3
#define DW_IOTA8 0, 1, 2, 3, 4, 5, 6, 7
#define DW_IOTA16 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15

#define ISA_TEMPLATE "conv_depthwise_tile.h"
#include "isa.h" /* the plane kernels per real type and instruction set */

#define TEMPLATE "conv_depthwise.c"
#include "template.h" /* the entry points below, once per real type */
#else

/* the instance of plane kernel `name` for instruction set isa (gemm's: cnn_get_gemm_isa) */
#ifdef CNN_X86
#define DW_CALL(isa, name, ...)                                      \
    ((isa) == CNN_ISA_AVX512 ? PASTE2(K(name), _avx512)(__VA_ARGS__) \
     : (isa) == CNN_ISA_AVX2 ? PASTE2(K(name), _avx2)(__VA_ARGS__)   \
                             : PASTE2(K(name), _base)(__VA_ARGS__))
#else
#define DW_CALL(isa, name, ...) PASTE2(K(name), _base)(__VA_ARGS__)
#endif

/* x (N, C, H, W), w (OC, 1, KH, KW), b (OC) or NULL, y (N, OC, OH, OW): y[n, o] = b[o] + x[n, o/m] ⋆ w[o] */
void K(conv2d_depthwise_forward)(real *y, const real *x, const real *w, const real *b, const cnn_conv2d *g)
{
    int m = g->oc / g->c, kk = g->kh * g->kw;
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    cnn_gemm_isa isa = cnn_get_gemm_isa();
    CNN_FOR((size_t)g->n * g->oc * ohw * kk > CNN_PARALLEL_WORK, long, no, (long)g->n * g->oc, {
        int n = (int)(no / g->oc), o = (int)(no % g->oc);
        DW_CALL(isa, dw_forward_plane, y + (size_t)no * ohw, x + ((size_t)n * g->c + o / m) * hw, w + (size_t)o * kk,
                b ? b[o] : 0, g);
    });
}

/* dy (N, OC, OH, OW), x (N, C, H, W), w (OC, 1, KH, KW) → dw (OC, 1, KH, KW) and db (OC) (NULL skips it) [+]=,
 * dx (N, C, H, W) overwritten (NULL skips it). Threads own output channels: channel o's weight and bias
 * gradients, summed over the batch in sample order, and, for the first o of each input channel, that channel's
 * dx planes, computed from the same dy while it is in cache. */
void K(conv2d_depthwise_backward)(real *dx, real *dw, real *db, const real *dy, const real *x, const real *w,
                                  const cnn_conv2d *g, int accumulate)
{
    int m = g->oc / g->c, kk = g->kh * g->kw;
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    cnn_gemm_isa isa = cnn_get_gemm_isa();
    CNN_FOR((size_t)g->n * g->oc * ohw * kk > CNN_PARALLEL_WORK, int, o, g->oc, {
        int c = o / m;
        DW_CALL(isa, dw_backward_channel, dx && o % m == 0 ? dx + c * hw : NULL, dw + (size_t)o * kk,
                db ? db + o : NULL, dy + o * ohw, dy + (size_t)c * m * ohw, x + c * hw, w + (size_t)c * m * kk, m,
                accumulate, g);
    });
}

#undef DW_CALL
#endif
