/* conv_transpose.c: the 2-D transposed convolution (PyTorch's ConvTranspose2d, Keras's Conv2DTranspose) over NCHW.
 * It is the input gradient of a convolution: each input pixel spreads w[c] over a window of the output, windows
 * STRIDE apart. With the weight (C, OC, KH, KW), as PyTorch lays it out, that convolution is cnn_conv2d g with input
 * y (N, OC, OH, OW), output x (N, C, H, W), weight w as it lies and padding (PT, PL): the full output
 * ((H-1)·SH + KH) cropped by PT rows at the top and PL columns at the left and cut or zero-extended to OH x OW.
 * So forward is conv2d_backward's column step (wᵀ·x, then col2im) and backward is conv2d_forward's (im2col of dy,
 * w·columns) with the weight gradient x·columnsᵀ. Threads take whole samples; the weight gradient sums over
 * the batch in fixed chunks, so results are bitwise identical for any thread count.
 * Worked example: x = [[1 2]] (1x1x1x2), w = [[1 1]] (1x1x1x2), stride 1, no crop → y = [[1, 1+2, 2]] = [[1 3 2]]. */
#ifndef real
#include "cnn.h"

/* The convolution whose input gradient this transposed convolution is (the header comment). */
static cnn_conv2d conv_of(const cnn_conv_transpose2d *t)
{
    return (cnn_conv2d){.n = t->n,
                        .c = t->oc,
                        .h = t->oh,
                        .w = t->ow,
                        .oc = t->c,
                        .oh = t->h,
                        .ow = t->w,
                        .kh = t->kh,
                        .kw = t->kw,
                        .sh = t->sh,
                        .sw = t->sw,
                        .pt = t->pt,
                        .pl = t->pl,
                        .dil_h = 1,
                        .dil_w = 1,
                        .groups = 1};
}

/* each sample's columns (OC·KH·KW, H·W), then min(N, CNN_REDUCE_CHUNKS) partial weight gradients */
static size_t columns_size(const cnn_conv_transpose2d *t) { return (size_t)t->oc * t->kh * t->kw * t->h * t->w; }

size_t conv_transpose2d_scratch_size(const cnn_conv_transpose2d *t)
{
    size_t chunks = t->n < CNN_REDUCE_CHUNKS ? (size_t)t->n : CNN_REDUCE_CHUNKS;
    size_t wsize = cnn_size_mul(cnn_size_mul((size_t)t->c, (size_t)t->oc), (size_t)t->kh * t->kw);
    return cnn_size_add(cnn_size_mul((size_t)t->n, columns_size(t)), cnn_size_mul(chunks, wsize));
}

#define TEMPLATE "conv_transpose.c"
#include "template.h" /* the kernels below, once per real type */
#else

static inline int K(parallel)(const cnn_conv_transpose2d *t)
{
    return t->n > 1 && (size_t)t->n * t->c * t->h * t->w * t->oc * t->kh * t->kw > CNN_PARALLEL_WORK;
}

/* x (N, C, H, W), w (C, OC, KH, KW), b (OC) or NULL, scratch (conv_transpose2d_scratch_size) → y (N, OC, OH, OW).
 * Per sample: columns (OC·KH·KW, H·W) = wᵀ · x[n] (C, H·W), then col2im adds each column onto its output cells. */
void K(conv_transpose2d_forward)(real *y, const real *x, const real *w, const real *b, real *scratch,
                                 const cnn_conv_transpose2d *t)
{
    cnn_conv2d g = conv_of(t);
    int ck = t->oc * t->kh * t->kw, hw = t->h * t->w, ohw = t->oh * t->ow;
    size_t xs = (size_t)t->c * hw, ys = (size_t)t->oc * ohw;
    CNN_FOR(K(parallel)(t), int, n, t->n, {
        real *col = scratch + n * columns_size(t);
        K(gemm_tn)(col, w, x + n * xs, ck, hw, t->c, 0);
        K(conv2d_col2im)(y + n * ys, col, &g);
        for (int o = 0; b && o < t->oc; o++) {
            real *out = y + n * ys + (size_t)o * ohw;
            for (int p = 0; p < ohw; p++) out[p] += b[o];
        }
    });
}

/* dy (N, OC, OH, OW), x, w → dx (N, C, H, W) overwritten (NULL skips it), dw (C, OC, KH, KW) and db (OC) added to,
 * or overwritten when accumulate = 0 (NULL skips db). Per sample, on the columns of dy: dx[n] = w · columns,
 * dw += x[n] · columnsᵀ, summed in chunks of consecutive samples that are then added in chunk order. */
void K(conv_transpose2d_backward)(real *dx, real *dw, real *db, const real *dy, const real *x, const real *w,
                                  real *scratch, const cnn_conv_transpose2d *t, int accumulate)
{
    cnn_conv2d g = conv_of(t);
    int ck = t->oc * t->kh * t->kw, hw = t->h * t->w, ohw = t->oh * t->ow;
    size_t xs = (size_t)t->c * hw, ys = (size_t)t->oc * ohw;
    if (db) /* each channel's planes summed in batch order, in double */
        CNN_FOR((size_t)t->n * ys > CNN_PARALLEL_WORK, int, o, t->oc, {
            double acc = 0;
            for (int n = 0; n < t->n; n++) {
                const real *plane = dy + n * ys + (size_t)o * ohw;
                for (int p = 0; p < ohw; p++) acc += plane[p];
            }
            db[o] = (real)(accumulate ? db[o] + acc : acc);
        });
    int R = t->n < CNN_REDUCE_CHUNKS ? t->n : CNN_REDUCE_CHUNKS;
    size_t wsize = (size_t)t->c * ck;
    real *part = scratch + t->n * columns_size(t);
    CNN_FOR(K(parallel)(t), int, r, R, {
        int lo = (int)((long long)r * t->n / R), hi = (int)((long long)(r + 1) * t->n / R);
        for (int n = lo; n < hi; n++) {
            real *col = scratch + n * columns_size(t);
            K(conv2d_im2col)(col, dy + n * ys, &g);
            K(gemm_nt)(part + r * wsize, x + n * xs, col, t->c, ck, hw, n > lo); /* (C, CK) [+]= x (C, HW) · colᵀ */
            if (dx) K(gemm_nn)(dx + n * xs, w, col, t->c, hw, ck, 0);            /* (C, HW) = w (C, CK) · col */
        }
    });
    CNN_FOR(wsize * R > CNN_PARALLEL_WORK, size_t, e, wsize, {
        real acc = part[e];
        for (int r = 1; r < R; r++) acc += part[r * wsize + e];
        dw[e] = accumulate ? dw[e] + acc : acc;
    });
}

#endif
