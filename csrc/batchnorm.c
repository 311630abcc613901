/* batchnorm.c: batch normalization over axis 1 of x (N, C, S), S the pixels of a plane (1 after a Dense layer).
 * Training normalises with the batch's mean and biased variance and moves the moving statistics toward them as
 * Keras does (moving = moving·momentum + batch·(1 - momentum), the biased variance included; PyTorch would use the
 * unbiased one and 1 - momentum); inference normalises with the moving statistics.
 * Threads own blocks of whole channels, and each channel's sums run in one fixed order (element p of a row into
 * lane p mod LANES, rows in batch order, then the lanes in a fixed tree), so results are bitwise identical for any
 * thread count and any blocking. Sums accumulate in double.
 * Worked example: one channel holding [1 3] (N = 2, S = 1), eps = 0, no gamma or beta: mean 2, variance 1,
 * y = [-1 1]. */
#ifndef real
#include <tgmath.h>
#include "cnn.h"

/* A block of channels is swept row by row (batch item by batch item), so that each pass reads one contiguous
 * run of block·S elements per row rather than N runs of S (a stride of C·S, which for 8×8 planes is 256 bytes
 * read per 16 KiB jump), and is small enough (BLOCK_ELEMENTS per array) for the passes after the first to find
 * it in L2. LANES partial sums per channel hide an add's latency and vectorize. */
#define LANES 8
#define MAX_BLOCK 64
#define BLOCK_ELEMENTS 65536

static inline int block_channels(int n, int c, int s)
{
    size_t per = (size_t)n * s, b = per ? BLOCK_ELEMENTS / per : MAX_BLOCK;
    if (b > MAX_BLOCK) b = MAX_BLOCK;
    if (b > (size_t)c) b = (size_t)c;
    return b < 1 ? 1 : (int)b;
}

static inline double lanes_total(const double *s)
{
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

#define TEMPLATE "batchnorm.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* acc[p mod LANES] += x[p] - m, or with sq (x[p] - m)², over a row; a copy in locals, as acc may alias x when real
 * is double */
static inline void K(row_sums)(double *acc, const real *x, double m, int count, int sq)
{
    double s[LANES];
    for (int l = 0; l < LANES; l++) s[l] = acc[l];
    int p = 0;
    if (sq) {
        for (; p + LANES <= count; p += LANES)
            for (int l = 0; l < LANES; l++) s[l] += ((double)x[p + l] - m) * ((double)x[p + l] - m);
        for (int l = 0; p < count; p++, l++) s[l] += ((double)x[p] - m) * ((double)x[p] - m);
    } else {
        for (; p + LANES <= count; p += LANES)
            for (int l = 0; l < LANES; l++) s[l] += (double)x[p + l] - m;
        for (int l = 0; p < count; p++, l++) s[l] += (double)x[p] - m;
    }
    for (int l = 0; l < LANES; l++) acc[l] = s[l];
}

/* sdy[p mod LANES] += dy[p] and sdx[p mod LANES] += dy[p]·(x[p] - m) over a row */
static inline void K(row_dots)(double *sdy, double *sdx, const real *dy, const real *x, double m, int count)
{
    double a[LANES], b[LANES];
    for (int l = 0; l < LANES; l++) a[l] = sdy[l], b[l] = sdx[l];
    int p = 0;
    for (; p + LANES <= count; p += LANES)
        for (int l = 0; l < LANES; l++) {
            a[l] += (double)dy[p + l];
            b[l] += (double)dy[p + l] * ((double)x[p + l] - m);
        }
    for (int l = 0; p < count; p++, l++) {
        a[l] += (double)dy[p];
        b[l] += (double)dy[p] * ((double)x[p] - m);
    }
    for (int l = 0; l < LANES; l++) sdy[l] = a[l], sdx[l] = b[l];
}

/* dx = dy·a + (x - m)·k + b over a row */
static inline void K(row_dx)(real *dx, const real *dy, const real *x, real m, real a, real k, real b, int count)
{
    for (int p = 0; p < count; p++) dx[p] = dy[p] * a + (x[p] - m) * k + b;
}

/* Issue 20's fused ReLU: the gradient dy of the output y of a forward with relu, taken through that ReLU (0 unless
 * 0 < y < inf: relu_backward's mask for the plain ReLU, as y = x where x > 0 and 0 or NaN elsewhere; its 0·dy for
 * x < 0 differs only for an infinite or NaN dy, which it makes NaN), into g, and then the very loops above run on g
 * a STAGE at a time (a multiple of LANES, so that each element keeps its lane): a select inside them changes which
 * multiply-adds the compiler fuses, and so the last bit of the sums. */
#define STAGE 256
static inline void K(through_relu)(real *g, const real *dy, const real *y, int count)
{
    for (int p = 0; p < count; p++) g[p] = y[p] > 0 && y[p] < INFINITY ? dy[p] : 0;
}

static inline void K(row_dots_relu)(double *sdy, double *sdx, const real *dy, const real *y, const real *x, double m,
                                    int count)
{
    real g[STAGE];
    for (int p0 = 0; p0 < count; p0 += STAGE) {
        int len = count - p0 < STAGE ? count - p0 : STAGE;
        K(through_relu)(g, dy + p0, y + p0, len);
        K(row_dots)(sdy, sdx, g, x + p0, m, len);
    }
}

static inline void K(row_dx_relu)(real *dx, const real *dy, const real *y, const real *x, real m, real a, real k,
                                  real b, int count)
{
    real g[STAGE];
    for (int p0 = 0; p0 < count; p0 += STAGE) {
        int len = count - p0 < STAGE ? count - p0 : STAGE;
        K(through_relu)(g, dy + p0, y + p0, len);
        K(row_dx)(dx + p0, g, x + p0, m, a, k, b, len);
    }
}
#undef STAGE

/* Channels c0 .. c1 - 1 (at most MAX_BLOCK) of batchnorm_forward. */
CNN_VECTOR_CLONES static void K(forward_block)(real *y, real *mean, real *invstd, real *moving_mean, real *moving_var,
                                               const real *x, const real *gamma, const real *beta, int n, int c, int s,
                                               int c0, int c1, double eps, double momentum, int training, int relu)
{
    size_t plane = (size_t)c * s;
    const real *xb = x + (size_t)c0 * s;
    real *yb = y + (size_t)c0 * s;
    int b = c1 - c0;
    double acc[MAX_BLOCK][LANES], m[MAX_BLOCK], var[MAX_BLOCK], count = (double)n * s;
    if (training) { /* two passes: the mean, then squares about it (no cancellation of Σx² - M·m²) */
        for (int j = 0; j < b; j++)
            for (int l = 0; l < LANES; l++) acc[j][l] = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < b; j++) K(row_sums)(acc[j], xb + i * plane + (size_t)j * s, 0, s, 0);
        for (int j = 0; j < b; j++) {
            m[j] = lanes_total(acc[j]) / count;
            for (int l = 0; l < LANES; l++) acc[j][l] = 0;
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < b; j++) K(row_sums)(acc[j], xb + i * plane + (size_t)j * s, m[j], s, 1);
        for (int j = 0, ch = c0; j < b; j++, ch++) {
            var[j] = lanes_total(acc[j]) / count;
            moving_mean[ch] = (real)(moving_mean[ch] * momentum + m[j] * (1 - momentum));
            moving_var[ch] = (real)(moving_var[ch] * momentum + var[j] * (1 - momentum));
        }
    } else {
        for (int j = 0; j < b; j++) m[j] = moving_mean[c0 + j], var[j] = moving_var[c0 + j];
    }
    real mr[MAX_BLOCK], ar[MAX_BLOCK], br[MAX_BLOCK];
    for (int j = 0, ch = c0; j < b; j++, ch++) {
        double inv = 1 / sqrt(var[j] + eps);
        mean[ch] = (real)m[j];
        invstd[ch] = (real)inv;
        mr[j] = (real)m[j];
        ar[j] = (real)((gamma ? gamma[ch] : 1) * inv);
        br[j] = beta ? beta[ch] : 0;
    }
    /* (x - m)·a + b, not x·a + (b - m·a): a large mean would cancel in the latter. relu: relu_forward's plain ReLU
     * (NaN passes) on the way out, the ReLU layer's pass saved */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < b; j++) {
            const real *in = xb + i * plane + (size_t)j * s;
            real *out = yb + i * plane + (size_t)j * s, mj = mr[j], aj = ar[j], bj = br[j];
            if (relu)
                for (int p = 0; p < s; p++) {
                    real v = (in[p] - mj) * aj + bj;
                    out[p] = v > 0 || v != v ? v : 0;
                }
            else
                for (int p = 0; p < s; p++) out[p] = (in[p] - mj) * aj + bj;
        }
}

/* x (N, C, S), gamma, beta (C) or NULL (1 and 0), moving_mean, moving_var (C) → y (N, C, S), and the mean and
 * 1/sqrt(var + eps) used (C), which backward reads. training: the batch's statistics, and the moving ones updated
 * in place; else the moving ones. relu: y = relu(the normalised x), the plain ReLU taken over (issue 20). */
void K(batchnorm_forward)(real *y, real *mean, real *invstd, real *moving_mean, real *moving_var, const real *x,
                          const real *gamma, const real *beta, int n, int c, int s, double eps, double momentum,
                          int training, int relu)
{
    int bc = block_channels(n, c, s), blocks = (c + bc - 1) / bc;
    CNN_FOR((size_t)n * c * s > CNN_PARALLEL_WORK, int, k, blocks, {
        int c0 = k * bc, c1 = c0 + bc < c ? c0 + bc : c;
        K(forward_block)(y, mean, invstd, moving_mean, moving_var, x, gamma, beta, n, c, s, c0, c1, eps, momentum,
                         training, relu);
    });
}

/* Channels c0 .. c1 - 1 (at most MAX_BLOCK) of batchnorm_backward. */
CNN_VECTOR_CLONES static void K(backward_block)(real *dx, real *dgamma, real *dbeta, const real *dy, const real *y,
                                                const real *x, const real *mean, const real *invstd, const real *gamma,
                                                int n, int c, int s, int c0, int c1, int training, int accumulate)
{
    size_t plane = (size_t)c * s, off = (size_t)c0 * s;
    int b = c1 - c0;
    double sdy[MAX_BLOCK][LANES] = {{0}}, sdx[MAX_BLOCK][LANES] = {{0}};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < b; j++) {
            size_t at = off + i * plane + (size_t)j * s;
            if (y) K(row_dots_relu)(sdy[j], sdx[j], dy + at, y + at, x + at, mean[c0 + j], s);
            else K(row_dots)(sdy[j], sdx[j], dy + at, x + at, mean[c0 + j], s);
        }
    real mr[MAX_BLOCK], ar[MAX_BLOCK], kr[MAX_BLOCK], br[MAX_BLOCK];
    for (int j = 0, ch = c0; j < b; j++, ch++) {
        double inv = invstd[ch], sum_dy = lanes_total(sdy[j]), sum_dy_xc = lanes_total(sdx[j]);
        double dg = sum_dy_xc * inv; /* Σ dy·x̂ */
        if (dgamma) dgamma[ch] = (real)(accumulate ? dgamma[ch] + dg : dg);
        if (dbeta) dbeta[ch] = (real)(accumulate ? dbeta[ch] + sum_dy : sum_dy);
        double count = (double)n * s, a = (gamma ? gamma[ch] : 1) * inv;
        /* dx = a·dy - a·Σdy/M - a·(x - m)·inv²·Σdy·(x - m)/M, as dy·a + (x - m)·k + b */
        double k = training ? -a * inv * inv * sum_dy_xc / count : 0, bb = training ? -a * sum_dy / count : 0;
        mr[j] = mean[ch], ar[j] = (real)a, kr[j] = (real)k, br[j] = (real)bb;
    }
    if (!dx) return;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < b; j++) {
            size_t at = off + i * plane + (size_t)j * s;
            if (y) K(row_dx_relu)(dx + at, dy + at, y + at, x + at, mr[j], ar[j], kr[j], br[j], s);
            else K(row_dx)(dx + at, dy + at, x + at, mr[j], ar[j], kr[j], br[j], s);
        }
}

/* dy, x (N, C, S), the forward's mean and invstd (C), gamma (C) or NULL → dx (N, C, S) overwritten (NULL skips it),
 * y (N, C, S) or NULL: the output of a forward with relu, and dy the gradient of that output, taken through the ReLU,
 * dgamma = Σ dy·x̂ and dbeta = Σ dy (C) added to, or overwritten when accumulate = 0 (NULL skips them), with
 * x̂ = (x - mean)·invstd. training: the statistics were the batch's, so dx also flows through them:
 * dx = gamma·invstd·(dy - Σdy/M - x̂·Σdy·x̂/M), M = N·S; else dx = gamma·invstd·dy. */
void K(batchnorm_backward)(real *dx, real *dgamma, real *dbeta, const real *dy, const real *y, const real *x,
                           const real *mean, const real *invstd, const real *gamma, int n, int c, int s, int training,
                           int accumulate)
{
    /* two arrays (dy, x) stay in L2 between the passes: half the channels of a forward block */
    int bc = block_channels(n, c, 2 * s), blocks = (c + bc - 1) / bc;
    CNN_FOR((size_t)n * c * s > CNN_PARALLEL_WORK, int, k, blocks, {
        int c0 = k * bc, c1 = c0 + bc < c ? c0 + bc : c;
        K(backward_block)(dx, dgamma, dbeta, dy, y, x, mean, invstd, gamma, n, c, s, c0, c1, training, accumulate);
    });
}

#endif
