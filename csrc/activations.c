/* activations.c: element-wise activations, softmax and log-softmax along the last axis. */
#ifndef real
#include <stdint.h>
#include <string.h>
#include <tgmath.h>
#include "cnn.h"

#include "fastmath.h"

/* The element loops run over spans of SPAN elements, one thread below CNN_PARALLEL_WORK elements (no
 * OpenMP region at all there). Each span is a function of its own so that it can be compiled twice
 * (CNN_VECTOR_CLONES): the branch-free tanh and logistic only vectorize profitably with AVX2. */
#define SPAN 4096
/* out may be inp (in place): element i reads only index i, so there is no dependence across elements,
 * and gcc need not version the loop for aliasing (whose fallback is scalar) */
#define IVDEP _Pragma("GCC ivdep")
#define SPANS(fn, ...)                                                         \
    CNN_FOR(count > CNN_PARALLEL_WORK, size_t, s, (count + SPAN - 1) / SPAN, { \
        size_t lo = s * SPAN, len = count - lo < SPAN ? count - lo : SPAN;     \
        fn(__VA_ARGS__);                                                       \
    })

#define TEMPLATE "activations.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* inp, out (count), one span: out = f(inp) */
CNN_VECTOR_CLONES static void K(forward_span)(real *out, const real *inp, size_t count, cnn_activation act, real alpha,
                                              real beta)
{
    switch (act) {
    case ACT_SIGMOID: IVDEP for (size_t i = 0; i < count; i++) out[i] = (real)cnn_sigmoid(inp[i]); break;
    case ACT_TANH: IVDEP for (size_t i = 0; i < count; i++) out[i] = K(cnn_tanh)(inp[i]); break;
    case ACT_SCALED_TANH: IVDEP for (size_t i = 0; i < count; i++) out[i] = alpha * K(cnn_tanh)(beta * inp[i]); break;
    case ACT_RELU: /* as PyTorch's clamp_min(x, 0): NaN fails x < 0 and propagates, -0 stays -0 */
        IVDEP for (size_t i = 0; i < count; i++) out[i] = inp[i] < 0 ? 0 : inp[i];
        break;
    case ACT_LEAKY_RELU: IVDEP for (size_t i = 0; i < count; i++) out[i] = inp[i] > 0 ? inp[i] : alpha * inp[i]; break;
    default: break;
    }
}

/* inp, out (count), any shape as one flat run; out may be inp (in place) */
void K(activation_forward)(real *out, const real *inp, size_t count, cnn_activation act, real alpha, real beta)
{
    if (act == ACT_IDENTITY) {
        if (out != inp) memcpy(out, inp, count * sizeof(real));
        return;
    }
    SPANS(K(forward_span), out + lo, inp + lo, len, act, alpha, beta);
}

/* dout, inp, out, dinp (count), one span: dinp = dout·f'(x) */
CNN_VECTOR_CLONES static void K(backward_span)(real *dinp, const real *dout, const real *inp, const real *out,
                                               size_t count, cnn_activation act, real alpha, real beta)
{
    switch (act) {
    /* Derivatives from the output y, in double: 1 - y² cancels at saturation, and in float it would
     * turn y's last-bit rounding into a large relative error of the gradient. */
    case ACT_SIGMOID:
        IVDEP for (size_t i = 0; i < count; i++) dinp[i] = (real)((double)dout[i] * out[i] * (1 - (double)out[i]));
        break;
    case ACT_TANH:
        IVDEP for (size_t i = 0; i < count; i++) dinp[i] = (real)((double)dout[i] * (1 - (double)out[i] * out[i]));
        break;
    case ACT_SCALED_TANH: /* y = a·tanh(s·x) → dy/dx = a·s·(1 - tanh²) = s·(a - y²/a); module.c keeps a ≠ 0 */
        IVDEP for (size_t i = 0; i < count; i++)
            dinp[i] = (real)((double)dout[i] * beta * (alpha - (double)out[i] * out[i] / alpha));
        break;
    case ACT_RELU: /* PyTorch's threshold_backward: a NaN output passes dy through, as the forward passed x */
        IVDEP for (size_t i = 0; i < count; i++) dinp[i] = out[i] <= 0 ? 0 : dout[i];
        break;
    case ACT_LEAKY_RELU: /* from the input, as PyTorch: the output's sign flips for a negative slope */
        IVDEP for (size_t i = 0; i < count; i++) dinp[i] = inp[i] > 0 ? dout[i] : alpha * dout[i];
        break;
    default: break;
    }
}

/* dout (count), inp x and out y (count) of the forward, dinp (count): dinp may be dout. Most derivatives are
 * read off y, which the layer keeps anyway; inp may be NULL except for leaky relu. */
void K(activation_backward)(real *dinp, const real *dout, const real *inp, const real *out, size_t count,
                            cnn_activation act, real alpha, real beta)
{
    if (act == ACT_IDENTITY) {
        if (dinp != dout) memcpy(dinp, dout, count * sizeof(real));
        return;
    }
    SPANS(K(backward_span), dinp + lo, dout + lo, inp ? inp + lo : NULL, out + lo, len, act, alpha, beta);
}

/* x (K): the row's maximum, subtracted first so that exp never overflows: logits of ±1e4 stay finite.
 * Same formulas as PyTorch: softmax = e^(x-m) / Σ e^(x-m), log-softmax = (x - m) - log Σ e^(x-m). */
static inline real K(row_max)(const real *x, int k)
{
    real m = x[0];
    for (int j = 1; j < k; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* inp, out (N, K): each row on its own, so threads take whole rows */
void K(softmax_forward)(real *out, const real *inp, int n, int k)
{
    CNN_FOR((size_t)n * k > CNN_PARALLEL_WORK, int, i, n, {
        const real *x = inp + (size_t)i * k;
        real m = K(row_max)(x, k), s = 0, *y = out + (size_t)i * k;
        for (int j = 0; j < k; j++) s += y[j] = exp(x[j] - m);
        for (int j = 0; j < k; j++) y[j] /= s;
    });
}

/* inp, out (N, K) */
void K(log_softmax_forward)(real *out, const real *inp, int n, int k)
{
    CNN_FOR((size_t)n * k > CNN_PARALLEL_WORK, int, i, n, {
        const real *x = inp + (size_t)i * k;
        real m = K(row_max)(x, k), s = 0, *y = out + (size_t)i * k;
        for (int j = 0; j < k; j++) s += exp(x[j] - m);
        real ls = log(s);
        for (int j = 0; j < k; j++) y[j] = (x[j] - m) - ls;
    });
}

/* dout, out (the forward's y), dinp (N, K): dx = y·(dy - Σ dy·y) */
void K(softmax_backward)(real *dinp, const real *dout, const real *out, int n, int k)
{
    CNN_FOR((size_t)n * k > CNN_PARALLEL_WORK, int, i, n, {
        const real *dy = dout + (size_t)i * k, *y = out + (size_t)i * k;
        real *dx = dinp + (size_t)i * k, dot = 0;
        for (int j = 0; j < k; j++) dot += dy[j] * y[j];
        for (int j = 0; j < k; j++) dx[j] = y[j] * (dy[j] - dot);
    });
}

/* dout, out (the forward's y = log-softmax), dinp (N, K): dx = dy - e^y·Σ dy */
void K(log_softmax_backward)(real *dinp, const real *dout, const real *out, int n, int k)
{
    CNN_FOR((size_t)n * k > CNN_PARALLEL_WORK, int, i, n, {
        const real *dy = dout + (size_t)i * k, *y = out + (size_t)i * k;
        real *dx = dinp + (size_t)i * k, sum = 0;
        for (int j = 0; j < k; j++) sum += dy[j];
        for (int j = 0; j < k; j++) dx[j] = dy[j] - exp(y[j]) * sum;
    });
}

#endif
