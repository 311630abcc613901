/* embedding.c: a lookup table, y[m] = table[ids[m]], whose backward scatters each dy row onto the row its id
 * names. Worked example: table = [[1 2], [3 4], [5 6]], ids = [2, 0, 2] → y = [[5 6], [1 2], [5 6]], and
 * dy = ones gives dtable = [[1 1], [0 0], [2 2]]. */
#ifndef real
#include <string.h>
#include "cnn.h"

#define TEMPLATE "embedding.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* ids (M) in [0, V), table (V, D) → y (M, D) */
void K(embedding_forward)(real *y, const int64_t *ids, const real *table, int m, int d)
{
    CNN_FOR((size_t)m * d > CNN_PARALLEL_WORK, int, i, m,
            { memcpy(y + (size_t)i * d, table + (size_t)ids[i] * d, (size_t)d * sizeof(real)); });
}

/* dy (M, D), ids (M) in [0, V) → dtable (V, D) [+]=: repeated ids add into one row, so each thread owns a
 * block of columns and visits the ids in order: no atomics, and the same sums for any thread count */
void K(embedding_backward)(real *dtable, const real *dy, const int64_t *ids, int m, int v, int d, int accumulate)
{
    enum { COLS = 64 };
    int blocks = (d + COLS - 1) / COLS;
    if (!accumulate) memset(dtable, 0, (size_t)v * d * sizeof(real));
    CNN_FOR((size_t)m * d > CNN_PARALLEL_WORK, int, cb, blocks, {
        int j0 = cb * COLS, j1 = j0 + COLS < d ? j0 + COLS : d;
        for (int i = 0; i < m; i++) {
            real *row = dtable + (size_t)ids[i] * d;
            const real *g = dy + (size_t)i * d;
            for (int j = j0; j < j1; j++) row[j] += g[j];
        }
    });
}

#endif
