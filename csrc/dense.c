/* dense.c: fully connected layer, y = x·W + b with W (in, out) as Keras kernels and sklearn coefs_.
 * Worked example: x = [1 2], W = [[1 0 2], [0 1 3]], b = [1 1 1] → y = [1+1, 2+1, 2+6+1] = [2 3 9]. */
#ifndef real
#include "cnn.h"

#define TEMPLATE "dense.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* inp (N, IN), w (IN, OUT), b (OUT) or NULL, out (N, OUT): one gemm, then the bias row by row */
void K(dense_forward)(real *out, const real *inp, const real *w, const real *b, int n, int in, int out_dim)
{
    K(gemm_nn)(out, inp, w, n, out_dim, in, 0);
    if (!b) return;
    CNN_FOR((size_t)n * out_dim > 65536, int, i, n, {
        real *row = out + (size_t)i * out_dim;
        for (int j = 0; j < out_dim; j++) row[j] += b[j];
    });
}

/* dout (N, OUT) → db (OUT) [+]= Σ_n dout: each thread owns a slice of columns and sums its rows in order, so
 * there is no reduction across threads (dense_backward, sparse_backward) */
void K(bias_backward)(real *db, const real *dout, int n, int out_dim, int accumulate)
{
    enum { COLS = 64 };
    int blocks = (out_dim + COLS - 1) / COLS;
    CNN_FOR((size_t)n * out_dim > 65536, int, cb, blocks, {
        int j0 = cb * COLS, j1 = j0 + COLS < out_dim ? j0 + COLS : out_dim;
        for (int j = j0; !accumulate && j < j1; j++) db[j] = 0;
        for (int i = 0; i < n; i++) {
            const real *row = dout + (size_t)i * out_dim;
            for (int j = j0; j < j1; j++) db[j] += row[j];
        }
    });
}

/* dout (N, OUT), inp (N, IN), w (IN, OUT) → dinp (N, IN) = dout·wᵀ, dw (IN, OUT) [+]= inpᵀ·dout,
 * db (OUT) [+]= Σ_n dout: both transposes are gemm forms, so neither operand is copied */
void K(dense_backward)(real *dinp, real *dw, real *db, const real *dout, const real *inp, const real *w, int n, int in,
                       int out_dim, int accumulate)
{
    if (dinp) K(gemm_nt)(dinp, dout, w, n, in, out_dim, 0);
    K(gemm_tn)(dw, inp, dout, in, out_dim, n, accumulate);
    if (db) K(bias_backward)(db, dout, n, out_dim, accumulate);
}

#endif
