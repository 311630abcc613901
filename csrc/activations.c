/* activations.c: element-wise activations, softmax and log-softmax along the last axis. */
#ifndef real
#include <stdint.h>
#include <string.h>
#include <tgmath.h>
#include "cnn.h"

/* exp, tanh and the logistic function without libm calls, so element loops vectorize (glibc's scalar
 * tanh was a third of a tanh network's epoch). Cephes' rational approximations in double, within a few
 * ulp of the correctly rounded double: float64 stays far inside the 1e-10 relative tolerance against
 * PyTorch. The logistic function computes in double for float too; tanh has a float version below. */
static inline double cnn_exp(double x)
{
    /* clamped so that 2^n below stays a normal double; NaN fails both comparisons and propagates */
    x = x < -708 ? -708 : x > 709 ? 709 : x;
    /* n = round(x/ln 2) by the 1.5·2^52 shift: t's low mantissa bits then hold n as an integer */
    const double shift = 0x1.8p52;
    double t = x * 1.4426950408889634074 + shift, n = t - shift;
    double r = (x - n * 6.93145751953125e-1) - n * 1.42860682030941723212e-6, rr = r * r;
    double p = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr + 9.99999999999999999910e-1);
    double q = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr + 2.27265548208155028766e-1) * rr +
               2.00000000000000000009e0;
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4338000000000000u + 1023u) << 52; /* 2^n */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return (1 + 2 * p / (q - p)) * scale;
}

/* 1 - 2/(e^2|x| + 1) loses relative precision near 0, where Cephes' rational form takes over. */
static inline double cnn_tanh(double x)
{
    double ax = x < 0 ? -x : x, z = x * x;
    double big = 1 - 2 / (cnn_exp(2 * (ax > 22 ? 22 : ax)) + 1); /* tanh(22) rounds to 1 */
    double small = x +
                   x * z *
                       ((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3) /
                       (((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3);
    /* copysign keeps tanh(-0) = -0 (x + x·z·R rounds -0 + 0 to +0) and changes no other bit: small already
     * has the sign of x */
    return ax < 0.625 ? copysign(small, x) : x < 0 ? -big : big;
}

static inline double cnn_sigmoid(double x) { return 1 / (1 + cnn_exp(-x)); }

/* float tanh as Cephes' tanhf, within 2e-7 relative: eight lanes to a vector instead of four, and one
 * division instead of three (LeNet's scaled tanh is its costliest element-wise pass). e^y for y in
 * [1.25, 20] needs no clamping: Cephes' expf polynomial on y - n·ln 2, scaled by 2^n built in the bits. */
static inline float cnn_tanh_f32(float x)
{
    float ax = x < 0 ? -x : x, z = x * x;
    float y = 2 * (ax > 10 ? 10 : ax); /* tanh(10) rounds to 1 */
    const float shift = 0x1.8p23f;
    float t = y * 1.44269504088896341f + shift, n = t - shift;
    float r = (y - n * 0.693359375f) + n * 2.12194440e-4f;
    float e = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
                1.6666665459e-1f) *
                   r +
               5.0000001201e-1f) *
                  r * r +
              r + 1;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23; /* 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float big = 1 - 2 / (e * scale + 1);
    /* x·(1 + z·P(z)), not x + x·z·P(z): -0 stays -0 */
    float small =
        x *
        (1 + z * ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
                  3.33332819422e-1f));
    return ax < 0.625f ? small : x < 0 ? -big : big;
}

static inline double cnn_tanh_f64(double x) { return cnn_tanh(x); }

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
