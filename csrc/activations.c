/* activations.c: element-wise activations, softmax and log-softmax along the last axis. */
#ifdef real

#define ELEMENTWISE_PARALLEL _Pragma("omp parallel for schedule(static) if (count > 32768)")

void K(activation_forward)(real *out, const real *inp, size_t count, cnn_activation act, real alpha, real beta)
{
    switch (act) {
    case ACT_IDENTITY:
        if (out != inp) memcpy(out, inp, count * sizeof(real));
        break;
    case ACT_SIGMOID:
        ELEMENTWISE_PARALLEL
        for (size_t i = 0; i < count; i++) out[i] = 1 / (1 + exp(-inp[i]));
        break;
    case ACT_TANH:
        ELEMENTWISE_PARALLEL
        for (size_t i = 0; i < count; i++) out[i] = tanh(inp[i]);
        break;
    case ACT_SCALED_TANH:
        ELEMENTWISE_PARALLEL
        for (size_t i = 0; i < count; i++) out[i] = alpha * tanh(beta * inp[i]);
        break;
    case ACT_RELU:
        ELEMENTWISE_PARALLEL
        for (size_t i = 0; i < count; i++) out[i] = inp[i] > 0 ? inp[i] : 0;
        break;
    case ACT_LEAKY_RELU:
        ELEMENTWISE_PARALLEL
        for (size_t i = 0; i < count; i++) out[i] = inp[i] > 0 ? inp[i] : alpha * inp[i];
        break;
    default:
        break;
    }
}

void K(activation_backward)(real *dinp, const real *dout, const real *inp, const real *out, size_t count,
                            cnn_activation act, real alpha, real beta)
{
    switch (act) {
    case ACT_IDENTITY:
        if (dinp != dout) memcpy(dinp, dout, count * sizeof(real));
        break;
    /* Derivatives from the output y, in double: 1 - y² cancels at saturation, and in float it would
     * turn y's last-bit rounding into a large relative error of the gradient. */
    case ACT_SIGMOID:
        ELEMENTWISE_PARALLEL
        for (size_t i = 0; i < count; i++) dinp[i] = (real)((double)dout[i] * out[i] * (1 - (double)out[i]));
        break;
    case ACT_TANH:
        ELEMENTWISE_PARALLEL
        for (size_t i = 0; i < count; i++) dinp[i] = (real)((double)dout[i] * (1 - (double)out[i] * out[i]));
        break;
    case ACT_SCALED_TANH: /* y = a·tanh(s·x) → dy/dx = a·s·(1 - tanh²) = s·(a - y²/a); module.c keeps a ≠ 0 */
        ELEMENTWISE_PARALLEL
        for (size_t i = 0; i < count; i++)
            dinp[i] = (real)((double)dout[i] * beta * (alpha - (double)out[i] * out[i] / alpha));
        break;
    case ACT_RELU:
        ELEMENTWISE_PARALLEL
        for (size_t i = 0; i < count; i++) dinp[i] = out[i] > 0 ? dout[i] : 0;
        break;
    case ACT_LEAKY_RELU: /* from the input, as PyTorch: the output's sign flips for a negative slope */
        ELEMENTWISE_PARALLEL
        for (size_t i = 0; i < count; i++) dinp[i] = inp[i] > 0 ? dout[i] : alpha * dout[i];
        break;
    default:
        break;
    }
}

/* Row maximum first, so exp never overflows: logits of ±1e4 stay finite. Same formulas as PyTorch:
 * softmax = e^(x-m) / Σ e^(x-m), log-softmax = (x - m) - log Σ e^(x-m). */
static inline real K(row_max)(const real *x, int k)
{
    real m = x[0];
    for (int j = 1; j < k; j++) m = x[j] > m ? x[j] : m;
    return m;
}

void K(softmax_forward)(real *out, const real *inp, int n, int k)
{
#pragma omp parallel for schedule(static) if ((size_t)n * k > 32768)
    for (int i = 0; i < n; i++) {
        const real *x = inp + (size_t)i * k;
        real m = K(row_max)(x, k), s = 0, *y = out + (size_t)i * k;
        for (int j = 0; j < k; j++) s += y[j] = exp(x[j] - m);
        for (int j = 0; j < k; j++) y[j] /= s;
    }
}

void K(log_softmax_forward)(real *out, const real *inp, int n, int k)
{
#pragma omp parallel for schedule(static) if ((size_t)n * k > 32768)
    for (int i = 0; i < n; i++) {
        const real *x = inp + (size_t)i * k;
        real m = K(row_max)(x, k), s = 0, *y = out + (size_t)i * k;
        for (int j = 0; j < k; j++) s += exp(x[j] - m);
        real ls = log(s);
        for (int j = 0; j < k; j++) y[j] = (x[j] - m) - ls;
    }
}

void K(softmax_backward)(real *dinp, const real *dout, const real *out, int n, int k)
{
#pragma omp parallel for schedule(static) if ((size_t)n * k > 32768)
    for (int i = 0; i < n; i++) {
        const real *dy = dout + (size_t)i * k, *y = out + (size_t)i * k;
        real *dx = dinp + (size_t)i * k, dot = 0;
        for (int j = 0; j < k; j++) dot += dy[j] * y[j];
        for (int j = 0; j < k; j++) dx[j] = y[j] * (dy[j] - dot);
    }
}

void K(log_softmax_backward)(real *dinp, const real *dout, const real *out, int n, int k)
{
#pragma omp parallel for schedule(static) if ((size_t)n * k > 32768)
    for (int i = 0; i < n; i++) {
        const real *dy = dout + (size_t)i * k, *y = out + (size_t)i * k;
        real *dx = dinp + (size_t)i * k, sum = 0;
        for (int j = 0; j < k; j++) sum += dy[j];
        for (int j = 0; j < k; j++) dx[j] = dy[j] - exp(y[j]) * sum;
    }
}

#undef ELEMENTWISE_PARALLEL
#else
#include <string.h>
#define TEMPLATE "activations.c"
#include "template.h"
#endif
