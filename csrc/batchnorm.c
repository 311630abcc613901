/* batchnorm.c: batch normalization over axis 1 of x (N, C, S), S the pixels of a plane (1 after a Dense layer).
 * Training normalises with the batch's mean and biased variance and moves the moving statistics toward them as
 * Keras does (moving = moving·momentum + batch·(1 - momentum), the biased variance included; PyTorch would use the
 * unbiased one and 1 - momentum); inference normalises with the moving statistics.
 * Threads own whole channels, and each channel's sums run in one fixed order (lanes of a row, then rows in batch
 * order), so results are bitwise identical for any thread count. Sums accumulate in double.
 * Worked example: one channel holding [1 3] (N = 2, S = 1), eps = 0, no gamma or beta: mean 2, variance 1,
 * y = [-1 1]. */
#ifndef real
#include <tgmath.h>
#include "cnn.h"

#define TEMPLATE "batchnorm.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* Σ (x[p] - m) and Σ (x[p] - m)·y[p] (y NULL: (x[p] - m)²) over a row, in 8 lanes of doubles added in a fixed
 * order: one running sum would wait out an add's latency per element. */
#define LANES 8
static inline double K(row_sum)(const real *x, double m, int count)
{
    double s[LANES] = {0};
    int p = 0;
    for (; p + LANES <= count; p += LANES)
        for (int l = 0; l < LANES; l++) s[l] += (double)x[p + l] - m;
    for (int l = 0; p < count; p++, l++) s[l] += (double)x[p] - m;
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static inline double K(row_dot)(const real *x, double m, const real *y, int count)
{
    double s[LANES] = {0};
    int p = 0;
    for (; p + LANES <= count; p += LANES)
        for (int l = 0; l < LANES; l++) s[l] += ((double)x[p + l] - m) * (y ? (double)y[p + l] : (double)x[p + l] - m);
    for (int l = 0; p < count; p++, l++) s[l] += ((double)x[p] - m) * (y ? (double)y[p] : (double)x[p] - m);
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
#undef LANES

/* x (N, C, S), gamma, beta (C) or NULL (1 and 0), moving_mean, moving_var (C) → y (N, C, S), and the mean and
 * 1/sqrt(var + eps) used (C), which backward reads. training: the batch's statistics, and the moving ones updated
 * in place; else the moving ones. */
void K(batchnorm_forward)(real *y, real *mean, real *invstd, real *moving_mean, real *moving_var, const real *x,
                          const real *gamma, const real *beta, int n, int c, int s, double eps, double momentum,
                          int training)
{
    size_t plane = (size_t)c * s;
    CNN_FOR((size_t)n * c * s > CNN_PARALLEL_WORK, int, ch, c, {
        double m, var;
        if (training) { /* two passes: the mean, then squares about it (no cancellation of Σx² - M·m²) */
            double sum = 0, sq = 0, count = (double)n * s;
            for (int i = 0; i < n; i++) sum += K(row_sum)(x + i * plane + (size_t)ch * s, 0, s);
            m = sum / count;
            for (int i = 0; i < n; i++) sq += K(row_dot)(x + i * plane + (size_t)ch * s, m, NULL, s);
            var = sq / count;
            moving_mean[ch] = (real)(moving_mean[ch] * momentum + m * (1 - momentum));
            moving_var[ch] = (real)(moving_var[ch] * momentum + var * (1 - momentum));
        } else {
            m = moving_mean[ch];
            var = moving_var[ch];
        }
        double inv = 1 / sqrt(var + eps);
        mean[ch] = (real)m;
        invstd[ch] = (real)inv;
        /* (x - m)·a + b, not x·a + (b - m·a): a large mean would cancel in the latter */
        real mr = (real)m, ar = (real)((gamma ? gamma[ch] : 1) * inv), br = beta ? beta[ch] : 0;
        for (int i = 0; i < n; i++) {
            const real *in = x + i * plane + (size_t)ch * s;
            real *out = y + i * plane + (size_t)ch * s;
            for (int p = 0; p < s; p++) out[p] = (in[p] - mr) * ar + br;
        }
    });
}

/* dy, x (N, C, S), the forward's mean and invstd (C), gamma (C) or NULL → dx (N, C, S) overwritten (NULL skips it),
 * dgamma = Σ dy·x̂ and dbeta = Σ dy (C) added to, or overwritten when accumulate = 0 (NULL skips them), with
 * x̂ = (x - mean)·invstd. training: the statistics were the batch's, so dx also flows through them:
 * dx = gamma·invstd·(dy - Σdy/M - x̂·Σdy·x̂/M), M = N·S; else dx = gamma·invstd·dy. */
void K(batchnorm_backward)(real *dx, real *dgamma, real *dbeta, const real *dy, const real *x, const real *mean,
                           const real *invstd, const real *gamma, int n, int c, int s, int training, int accumulate)
{
    size_t plane = (size_t)c * s;
    CNN_FOR((size_t)n * c * s > CNN_PARALLEL_WORK, int, ch, c, {
        double m = mean[ch], inv = invstd[ch], sum_dy = 0, sum_dy_xc = 0;
        for (int i = 0; i < n; i++) {
            const real *g = dy + i * plane + (size_t)ch * s, *in = x + i * plane + (size_t)ch * s;
            sum_dy += K(row_sum)(g, 0, s);
            sum_dy_xc += K(row_dot)(in, m, g, s);
        }
        double dg = sum_dy_xc * inv; /* Σ dy·x̂ */
        if (dgamma) dgamma[ch] = (real)(accumulate ? dgamma[ch] + dg : dg);
        if (dbeta) dbeta[ch] = (real)(accumulate ? dbeta[ch] + sum_dy : sum_dy);
        if (dx) {
            double count = (double)n * s, a = (gamma ? gamma[ch] : 1) * inv;
            /* dx = a·dy - a·Σdy/M - a·(x - m)·inv²·Σdy·(x - m)/M, as dy·a + (x - m)·k + b */
            double k = training ? -a * inv * inv * sum_dy_xc / count : 0, b = training ? -a * sum_dy / count : 0;
            real mr = (real)m, ar = (real)a, kr = (real)k, br = (real)b;
            for (int i = 0; i < n; i++) {
                const real *g = dy + i * plane + (size_t)ch * s, *in = x + i * plane + (size_t)ch * s;
                real *out = dx + i * plane + (size_t)ch * s;
                for (int p = 0; p < s; p++) out[p] = g[p] * ar + (in[p] - mr) * kr + br;
            }
        }
    });
}

#endif
