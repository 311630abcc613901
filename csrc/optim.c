/* optim.c: one flat pass over all parameters per step (one buffer holds every parameter). */
#ifndef real
#include <tgmath.h>
#include "cnn.h"

/* Element loops: one thread below CNN_PARALLEL_WORK elements, and no OpenMP region at all there. */
#define EACH(...) CNN_FOR(count > CNN_PARALLEL_WORK, size_t, i, count, __VA_ARGS__)

#define TEMPLATE "optim.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* p, buf, g (P): buf is the momentum buffer (v in the Keras form), unread when momentum = 0 */
void K(sgd_step)(real *p, real *buf, const real *g, size_t count, real lr, real momentum, real dampening,
                 real weight_decay, int nesterov, int first, cnn_opt_variant variant)
{
    if (variant == OPT_KERAS) {
        real keep = 1 - lr * weight_decay;
        EACH({
            real w = p[i] * keep;
            if (momentum == 0) {
                p[i] = w - lr * g[i];
                continue;
            }
            real v = momentum * buf[i] - lr * g[i];
            buf[i] = v;
            p[i] = nesterov ? w + momentum * v - lr * g[i] : w + v;
        });
        return;
    }
    EACH({
        real d = g[i] + weight_decay * p[i];
        if (momentum != 0) {
            real b = first ? d : momentum * buf[i] + (1 - dampening) * d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] -= lr * d;
    });
}

/* p, m, v, g (P): m and v are the first and second moment of g */
void K(adam_step)(real *p, real *m, real *v, const real *g, size_t count, real lr, real beta1, real beta2, real eps,
                  real weight_decay, int decoupled, long long t, cnn_opt_variant variant)
{
    /* bias corrections in double, as PyTorch computes them on the host */
    double bc1 = 1 - pow((double)beta1, (double)t), bc2 = 1 - pow((double)beta2, (double)t);
    real keep = decoupled || variant == OPT_KERAS ? 1 - lr * weight_decay : 1;
    real coupled = decoupled || variant == OPT_KERAS ? 0 : weight_decay;
    real step = variant == OPT_KERAS ? (real)(lr * sqrt(bc2) / bc1) : (real)(lr / bc1);
    real bc2_sqrt = (real)sqrt(bc2);
    EACH({
        real w = p[i] * keep, gi = g[i] + coupled * w;
        real mi = m[i] + (gi - m[i]) * (1 - beta1);
        real vi = beta2 * v[i] + (1 - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        real denom = variant == OPT_KERAS ? sqrt(vi) + eps : sqrt(vi) / bc2_sqrt + eps;
        p[i] = w - step * mi / denom;
    });
}

/* g, p (P): g += lam·p, and lam/2·Σp² returned. Σp² in LANES running sums, element i in lane i mod LANES:
 * one sum would wait out an add's latency per element; the lanes vectorize, and their order is fixed, so the
 * total is the same for any thread count. */
#define LANES 8
double K(l2_penalty)(real *g, const real *p, size_t count, real lam)
{
    double part[CNN_REDUCE_CHUNKS];
    CNN_FOR(count > CNN_PARALLEL_WORK, int, c, CNN_REDUCE_CHUNKS, {
        size_t i0 = count * c / CNN_REDUCE_CHUNKS, i1 = count * (c + 1) / CNN_REDUCE_CHUNKS, i = i0;
        double s[LANES] = {0};
        for (; i + LANES <= i1; i += LANES)
            for (int l = 0; l < LANES; l++) {
                s[l] += (double)p[i + l] * p[i + l];
                g[i + l] += lam * p[i + l];
            }
        for (int l = 0; i < i1; i++, l++) {
            s[l] += (double)p[i] * p[i];
            g[i] += lam * p[i];
        }
        part[c] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    });
    double total = 0;
    for (int c = 0; c < CNN_REDUCE_CHUNKS; c++) total += part[c];
    return 0.5 * lam * total;
}

#undef LANES
#endif
