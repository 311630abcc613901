/* fastmath.h: exp, tanh and the logistic function without libm calls, shared by the element-wise
 * activations (activations.c) and the recurrent cells' fused gate passes (rnn.c). No Python here. */
#ifndef CNN_FASTMATH_H
#define CNN_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

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

#endif /* CNN_FASTMATH_H */
