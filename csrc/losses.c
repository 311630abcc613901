/* losses.c: batch losses, each returning the mean and writing the gradient of that mean.
 * Sums run in double over CNN_REDUCE_CHUNKS fixed row ranges, so the result does not depend on
 * the thread count. Worked example (sparse cross-entropy): logits [0, ln 3], label 1 →
 * softmax [1/4, 3/4], loss = -ln(3/4) = 0.2877, gradient [1/4, -1/4]. */
#ifndef real
#include <tgmath.h>
#include "cnn.h"

/* Run the body (which calls ADD) for every row i, summing in chunks whose bounds depend only on n. */
#define CHUNKED_ROW_SUM(total, n, work, ...)                                \
    do {                                                                    \
        double part_[CNN_REDUCE_CHUNKS];                                    \
        size_t work_ = (work);                                              \
        CNN_FOR(work_ > 16384, int, c_, CNN_REDUCE_CHUNKS, {                \
            int r0_ = (int)((long long)(n) * c_ / CNN_REDUCE_CHUNKS);       \
            int r1_ = (int)((long long)(n) * (c_ + 1) / CNN_REDUCE_CHUNKS); \
            double s_ = 0;                                                  \
            for (int i = r0_; i < r1_; i++) {                               \
                __VA_ARGS__                                                 \
            }                                                               \
            part_[c_] = s_;                                                 \
        });                                                                 \
        total = 0;                                                          \
        for (int c_ = 0; c_ < CNN_REDUCE_CHUNKS; c_++) total += part_[c_];  \
    } while (0)
#define ADD(v) s_ += (v)

#define TEMPLATE "losses.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* log Σ exp(x) = m + log Σ exp(x - m) with m the row maximum, returned as (m, log Σ exp(x - m)):
 * the loss m - x_y + log s keeps its precision when x_y is the maximum, as PyTorch's log-softmax does. */
static inline real K(row_max_log_sum)(const real *x, int k, real *log_sum)
{
    real m = x[0];
    for (int j = 1; j < k; j++) m = x[j] > m ? x[j] : m;
    real s = 0;
    for (int j = 0; j < k; j++) s += exp(x[j] - m);
    *log_sum = log(s);
    return m;
}

/* logits, dinp (N, K), labels (N): mean of -log_softmax(x)[label] */
double K(sparse_cross_entropy_loss)(real *dinp, const real *logits, const int64_t *labels, int n, int k)
{
    double total;
    real inv_n = (real)1 / n;
    CHUNKED_ROW_SUM(total, n, (size_t)n * k, {
        const real *x = logits + (size_t)i * k;
        real ls, m = K(row_max_log_sum)(x, k, &ls);
        ADD((m - x[labels[i]]) + ls);
        if (dinp) {
            real *dx = dinp + (size_t)i * k;
            for (int j = 0; j < k; j++) dx[j] = exp((x[j] - m) - ls) * inv_n;
            dx[labels[i]] -= inv_n;
        }
    });
    return total / n;
}

/* logits, target, dinp (N, K): mean over rows of -Σ t·log_softmax(x); a target row need not sum to 1 */
double K(cross_entropy_loss)(real *dinp, const real *logits, const real *target, int n, int k)
{
    double total;
    real inv_n = (real)1 / n;
    CHUNKED_ROW_SUM(total, n, (size_t)n * k, {
        const real *x = logits + (size_t)i * k, *t = target + (size_t)i * k;
        real ls, m = K(row_max_log_sum)(x, k, &ls), tsum = 0;
        double l = 0;
        for (int j = 0; j < k; j++) {
            l += (double)t[j] * ((m - x[j]) + ls);
            tsum += t[j];
        }
        ADD(l);
        if (dinp) {
            real *dx = dinp + (size_t)i * k;
            for (int j = 0; j < k; j++) dx[j] = (exp((x[j] - m) - ls) * tsum - t[j]) * inv_n;
        }
    });
    return total / n;
}

/* logits, target, dinp (N, K): K independent sigmoid outputs a row, mean over all N·K */
double K(binary_cross_entropy_loss)(real *dinp, const real *logits, const real *target, int n, int k)
{
    double total;
    real inv = (real)1 / ((real)n * k);
    CHUNKED_ROW_SUM(total, n, (size_t)n * k, {
        const real *x = logits + (size_t)i * k, *t = target + (size_t)i * k;
        for (int j = 0; j < k; j++) {
            /* max(x,0) - x·t + log(1 + e^-|x|): no overflow for any x */
            real ax = x[j] > 0 ? x[j] : -x[j];
            ADD((x[j] > 0 ? x[j] : 0) - x[j] * t[j] + log1p(exp(-ax)));
            if (dinp) dinp[(size_t)i * k + j] = (1 / (1 + exp(-x[j])) - t[j]) * inv;
        }
    });
    return total / ((double)n * k);
}

/* pred, target, dinp (N, K): mean over all N·K of (pred - target)² */
double K(mse_loss)(real *dinp, const real *pred, const real *target, int n, int k)
{
    double total;
    real scale = (real)2 / ((real)n * k);
    CHUNKED_ROW_SUM(total, n, (size_t)n * k, {
        const real *p = pred + (size_t)i * k, *t = target + (size_t)i * k;
        for (int j = 0; j < k; j++) {
            real d = p[j] - t[j];
            ADD((double)d * d);
            if (dinp) dinp[(size_t)i * k + j] = scale * d;
        }
    });
    return total / ((double)n * k);
}

/* scores, dinp (N, K), labels (N): Weston-Watkins hinge, mean over rows */
double K(multiclass_hinge_loss)(real *dinp, const real *scores, const int64_t *labels, int n, int k, real margin)
{
    double total;
    real inv_n = (real)1 / n;
    CHUNKED_ROW_SUM(total, n, (size_t)n * k, {
        const real *s = scores + (size_t)i * k;
        int64_t y = labels[i];
        real *dx = dinp ? dinp + (size_t)i * k : NULL;
        int violated = 0, nan = 0;
        for (int j = 0; j < k; j++) {
            real m = s[j] - s[y] + margin;
            int on = j != y && m > 0;
            /* a NaN score fails m > 0: it is added anyway, so that the loss and its row's gradient say NaN */
            if (on || m != m) ADD(m);
            violated += on;
            nan |= m != m;
            if (dx) dx[j] = on ? inv_n : m != m ? m : 0;
        }
        if (dx) dx[y] = nan ? (real)NAN : -violated * inv_n;
    });
    return total / n;
}

#endif
