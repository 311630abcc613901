/* sparse.c: a dense layer whose input is a CSR matrix, y = x·W + b, as scikit-learn's MLP runs its first layer
 * on a bag of words (safe_sparse_dot). Only the nonzeros are touched: a row of x costs nnz·OUT, never IN·OUT.
 * There is no input gradient: the input is data, not a layer's output.
 * CSR: row i holds the entries indptr[i] <= e < indptr[i + 1], in column indices[e], value data[e].
 * Worked example: x = [[0 2 0], [0 0 0]] (indptr [0 1 1], indices [1], data [2]), W = [[1 1], [3 4], [5 6]],
 * b = [1 1] → y = [[2·3 + 1, 2·4 + 1], [1, 1]] = [[7 9], [1 1]]; with dy = [[1 0], [0 1]], dW = xᵀ·dy =
 * [[0 0], [2 0], [0 0]] and db = [1 1]. */
#ifndef real
#include "cnn.h"

#define TEMPLATE "sparse.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* data, indices (NNZ), indptr (N + 1) a CSR x (N, IN); w (IN, OUT), b (OUT) or NULL → out (N, OUT).
 * Each row is its own output, summed in the row's entry order (scipy's csr_matvecs), then the bias added. */
void K(sparse_forward)(real *out, const real *data, const int64_t *indices, const int64_t *indptr, const real *w,
                       const real *b, int n, int out_dim)
{
    CNN_FOR((size_t)(indptr[n] + n) * out_dim > CNN_PARALLEL_WORK, int, i, n, {
        real *row = out + (size_t)i * out_dim;
        for (int j = 0; j < out_dim; j++) row[j] = 0;
        for (int64_t e = indptr[i]; e < indptr[i + 1]; e++) {
            const real v = data[e], *wr = w + (size_t)indices[e] * out_dim;
            for (int j = 0; j < out_dim; j++) row[j] += v * wr[j];
        }
        for (int j = 0; b && j < out_dim; j++) row[j] += b[j];
    });
}

/* dout (N, OUT), x as sparse_forward's → dw (IN, OUT) [+]= xᵀ·dout, db (OUT) [+]= Σ_n dout (NULL skips it);
 * accumulate = 0 overwrites. Each piece owns a fixed band of dw's rows and scans every entry, keeping those in
 * its band: each dw row sums its samples in row order (scipy's csc_matvecs over xᵀ) whatever the thread
 * count, and the zeroing of the band (the bulk of the work when IN·OUT dwarfs nnz) is shared too. */
void K(sparse_backward)(real *dw, real *db, const real *dout, const real *data, const int64_t *indices,
                        const int64_t *indptr, int n, int in, int out_dim, int accumulate)
{
    int bands = in < CNN_REDUCE_CHUNKS ? in : CNN_REDUCE_CHUNKS;
    CNN_FOR((size_t)in * out_dim > CNN_PARALLEL_WORK, int, c, bands, {
        int64_t r0 = (int64_t)in * c / bands, r1 = (int64_t)in * (c + 1) / bands;
        if (!accumulate)
            for (size_t k = (size_t)r0 * out_dim; k < (size_t)r1 * out_dim; k++) dw[k] = 0;
        for (int i = 0; i < n; i++) {
            const real *dy = dout + (size_t)i * out_dim;
            for (int64_t e = indptr[i]; e < indptr[i + 1]; e++) {
                if (indices[e] < r0 || indices[e] >= r1) continue;
                real v = data[e], *dr = dw + (size_t)indices[e] * out_dim;
                for (int j = 0; j < out_dim; j++) dr[j] += v * dy[j];
            }
        }
    });
    if (db) K(bias_backward)(db, dout, n, out_dim, accumulate);
}

#endif
