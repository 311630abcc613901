/* reference.c: gemm and convolution as their definitions, one plain loop nest each, to test the fast
 * kernels against (as llm.c keeps matmul_forward_naive). Nothing here is tuned, blocked or threaded, and
 * every sum runs in double, so the float32 oracle stays nearer the exact value than the kernel under test. */
#ifndef real
#include "cnn.h"

#define TEMPLATE "reference.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* c (M, N) [+]= a (M, KD) · b (KD, N), with a(i,k) = a[i·rsa + k·csa] and b(k,j) = b[k·rsb + j·csb],
 * c(i,j) = c[i·ldc + j]: the arguments of gemm, so the same call can be made to both */
void K(gemm_reference)(real *c, const real *a, const real *b, int M, int N, int KD, ptrdiff_t rsa, ptrdiff_t csa,
                       ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t ldc, int accumulate)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < KD; k++) s += (double)a[i * rsa + k * csa] * b[k * rsb + j * csb];
            real *cij = c + i * ldc + j;
            *cij = accumulate ? *cij + (real)s : (real)s;
        }
}

/* x (N, C, H, W), w (OC, C/G, KH, KW), b (OC) or NULL → y (N, OC, OH, OW), as cnn_conv2d defines them:
 * y[n, o, oh, ow] = b[o] + Σ over the C/G input channels of o's group and the window (i, j) of
 * w[o, ci, i, j] · x[n, c, oh·sh - pt + i·dil_h, ow·sw - pl + j·dil_w], cells outside x being zero padding */
void K(conv2d_reference_forward)(real *y, const real *x, const real *w, const real *b, const cnn_conv2d *g)
{
    int cg = g->c / g->groups, og = g->oc / g->groups;
    for (int n = 0; n < g->n; n++)
        for (int o = 0; o < g->oc; o++)
            for (int oh = 0; oh < g->oh; oh++)
                for (int ow = 0; ow < g->ow; ow++) {
                    double s = b ? b[o] : 0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int i = 0; i < g->kh; i++)
                            for (int j = 0; j < g->kw; j++) {
                                int c = o / og * cg + ci;
                                long long ih = (long long)oh * g->sh - g->pt + (long long)i * g->dil_h;
                                long long iw = (long long)ow * g->sw - g->pl + (long long)j * g->dil_w;
                                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                                s += (double)w[(((size_t)o * cg + ci) * g->kh + i) * g->kw + j] *
                                     x[(((size_t)n * g->c + c) * g->h + ih) * g->w + iw];
                            }
                    y[(((size_t)n * g->oc + o) * g->oh + oh) * g->ow + ow] = (real)s;
                }
}

#endif
