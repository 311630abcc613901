/* mlp.c: scikit-learn's MLPClassifier/MLPRegressor training, a whole run of minibatches per call.
 * The step is sklearn's _backprop + optimizer update built from the shared kernels (dense, activation,
 * l2_penalty, sgd_step/adam_step in their keras forms), so a tiny network pays no per-step Python cost.
 * Losses are computed from the output probabilities as sklearn does, clipped to [eps, 1 - eps], so
 * loss_curve_ matches sklearn's even where a logit-based loss would differ.
 * Worked example (binary log loss): p = 0.8 for target 1 and 0.25 for target 0 over n = 2 rows →
 * loss = -(ln 0.8 + ln 0.75)/2 = 0.2554, output deltas (p - y)/n = [-0.1, 0.125]. */
#ifndef real
#include <float.h>
#include <string.h>
#include <tgmath.h>
#include "cnn.h"

/* Σ (units[i] + 1)·units[i+1]: every layer's weights and biases. */
size_t cnn_mlp_param_count(const cnn_mlp *net)
{
    size_t p = 0;
    for (int i = 0; i < net->n_layers; i++)
        p = cnn_size_add(p, cnn_size_mul((size_t)net->units[i] + 1, (size_t)net->units[i + 1]));
    return p;
}

/* Parameters that are weights (the L2 penalty's): they come first in the flat vector. */
static size_t mlp_weight_count(const cnn_mlp *net)
{
    size_t nw = 0;
    for (int i = 0; i < net->n_layers; i++) nw += (size_t)net->units[i] * net->units[i + 1];
    return nw;
}

/* Reals per row of every layer output (forward: the hidden ones) and, training, of every delta. */
static size_t mlp_layers_width(const cnn_mlp *net, int training)
{
    int L = net->n_layers;
    size_t rows = 0; /* at most 3·256 + 2 widths below INT_MAX each: no overflow before the product */
    for (int i = 1; i < L; i++) rows += net->units[i];
    return training ? 2 * (rows + net->units[L]) : rows;
}

/* n rows of every hidden layer (forward); training adds the output layer, a delta per layer, and a batch
 * of y rows, sample weights and (dense x only) x rows at the end for mlp_epoch to gather shuffled rows into:
 * a sparse x arrives gathered (module.c), and a row of a bag of words would be wide. */
size_t cnn_mlp_workspace_size(const cnn_mlp *net, int n, int training, int sparse)
{
    size_t rows = mlp_layers_width(net, training);
    if (training) rows += (size_t)net->units[net->n_layers] + 1 + (sparse ? 0 : (size_t)net->units[0]);
    return cnn_size_mul(rows, (size_t)n);
}

#define TEMPLATE "mlp.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* Layer pointers into work: act[0] = x, act[1..L] the layer outputs, delta[1..L] their gradients. */
static void K(mlp_layout)(const real **act, real **delta, real *work, const real *x, int n, const cnn_mlp *net,
                          int training)
{
    int L = net->n_layers;
    act[0] = x;
    for (int i = 1; i <= L - !training; i++) {
        act[i] = work;
        work += (size_t)n * net->units[i];
    }
    for (int i = 1; training && i <= L; i++) {
        delta[i] = work;
        work += (size_t)n * net->units[i];
    }
}

/* act[i] (N, units[i]): act[1..L] from act[0] (or from xs when x is sparse), a dense layer each; the output
 * layer gets the output activation, the others the hidden one, applied in place. */
static void K(mlp_run)(real *const *act, const cnn_csr *xs, const real *params, int n, const cnn_mlp *net)
{
    int L = net->n_layers;
    const real *w = params, *b = params;
    for (int i = 0; i < L; i++) b += (size_t)net->units[i] * net->units[i + 1];
    for (int i = 0; i < L; i++) {
        int in = net->units[i], out = net->units[i + 1];
        size_t count = (size_t)n * out;
        if (i == 0 && xs) K(sparse_forward)(act[1], xs->data, xs->indices, xs->indptr, w, b, n, out);
        else K(dense_forward)(act[i + 1], act[i], w, b, n, in, out);
        w += (size_t)in * out;
        b += out;
        if (i < L - 1) {
            K(activation_forward)(act[i + 1], act[i + 1], count, net->hidden, 0, 1);
            continue;
        }
        if (net->output == MLP_OUT_LOGISTIC) K(activation_forward)(act[L], act[L], count, ACT_SIGMOID, 0, 1);
        else if (net->output == MLP_OUT_SOFTMAX) K(softmax_forward)(act[L], act[L], n, out);
        else if (net->output == MLP_OUT_EXP)
            for (size_t j = 0; j < count; j++) act[L][j] = exp(act[L][j]);
    }
}

/* params (P), x (N, units[0]) or its CSR xs → out (N, units[L]); work holds the hidden layers */
void K(mlp_forward)(real *out, real *work, const real *params, const real *x, const cnn_csr *xs, int n,
                    const cnn_mlp *net)
{
    const real *act[net->n_layers + 1];
    K(mlp_layout)(act, NULL, work, x, n, net, 0);
    act[net->n_layers] = out;
    K(mlp_run)((real *const *)act, xs, params, n, net);
}

/* Σ sw over the n rows (in double), or n when there are no sample weights: sklearn's sw_sum, which divides the
 * batch's loss, its L2 term and every gradient. */
static double K(mlp_weight_sum)(const real *sw, int n)
{
    double s = 0;
    for (int i = 0; sw && i < n; i++) s += sw[i];
    return sw ? s : n;
}

/* p, y, delta (N, K), sw (N) or NULL: sklearn's data loss of the output p against y (_base.LOSS_FUNCTIONS,
 * summed over the outputs, each row weighted by sw and the sum divided by norm = Σ sw), and delta = (p - y)·
 * sw/norm: the output gradient for each of the four link/loss pairs. Serial: n·k is a minibatch of outputs,
 * too small to share. */
static double K(mlp_output_loss)(real *delta, const real *p, const real *y, const real *sw, size_t n, size_t k,
                                 double norm, cnn_mlp_output kind)
{
    const real eps = sizeof(real) == sizeof(float) ? FLT_EPSILON : DBL_EPSILON, inv = (real)(1 / norm);
    double total = 0, s = 0; /* unweighted, s runs over every output, in their order */
    for (size_t r = 0; r < n; r++) {
        real scale = sw ? sw[r] * inv : inv;
        if (sw) s = 0;
        for (size_t i = r * k; i < (r + 1) * k; i++) {
            real pi = p[i], yi = y[i], pc = pi < eps ? eps : pi > 1 - eps ? 1 - eps : pi;
            switch (kind) {
            case MLP_OUT_IDENTITY: s += (double)(yi - pi) * (yi - pi); break;
            case MLP_OUT_SOFTMAX:
                if (yi != 0) s -= (double)yi * log(pc);
                break;
            case MLP_OUT_LOGISTIC:
                if (yi != 0) s -= (double)yi * log(pc);
                if (yi != 1) s -= (double)(1 - yi) * log(1 - pc);
                break;
            default: s += (yi != 0 ? (double)yi * log(yi / pi) : 0) - yi + pi; break;
            }
            delta[i] = (pi - yi) * scale;
        }
        if (sw) total += sw[r] * s;
    }
    if (!sw) total = s;
    /* squared error is halved and averaged over all outputs; the others are summed over outputs */
    return kind == MLP_OUT_IDENTITY ? 0.5 * total / (norm * k) : total / norm;
}

/* params, grad (P), x (N, units[0]) or its CSR xs, y (N, units[L]), sw (N) or NULL summing to norm: the data
 * loss of the batch, and grad overwritten with its gradient without the L2 term, layer by layer from the output
 * back (sklearn's _backprop). */
static double K(mlp_backprop)(real *grad, real *work, const real *params, const real *x, const cnn_csr *xs,
                              const real *y, const real *sw, int n, double norm, const cnn_mlp *net)
{
    int L = net->n_layers;
    const real *act[L + 1];
    real *delta[L + 1];
    K(mlp_layout)(act, delta, work, x, n, net, 1);
    K(mlp_run)((real *const *)act, xs, params, n, net);
    double loss = K(mlp_output_loss)(delta[L], act[L], y, sw, n, net->units[L], norm, net->output);

    size_t nw = 0, offset_w[L], offset_b[L];
    for (int i = 0; i < L; i++) {
        offset_w[i] = nw;
        nw += (size_t)net->units[i] * net->units[i + 1];
    }
    for (int i = 0; i < L; i++) {
        offset_b[i] = nw;
        nw += net->units[i + 1];
    }
    /* every gradient is written once, so it is overwritten rather than zeroed and added to */
    for (int i = L - 1; i >= 0; i--) {
        int in = net->units[i], out = net->units[i + 1];
        if (i == 0 && xs)
            K(sparse_backward)(grad + offset_w[0], grad + offset_b[0], delta[1], xs->data, xs->indices, xs->indptr, n,
                               in, out, 0);
        else
            K(dense_backward)(i ? delta[i] : NULL, grad + offset_w[i], grad + offset_b[i], delta[i + 1], act[i],
                              params + offset_w[i], n, in, out, 0);
        if (i) K(activation_backward)(delta[i], delta[i], NULL, act[i], (size_t)n * in, net->hidden, 0, 1);
    }
    return loss;
}

/* params, grad (P), x (N, units[0]) or its CSR xs, y (N, units[L]), sw (N) or NULL. The deltas already carry
 * 1/norm (norm = Σ sw, or n), so the L2 term of the batch is (alpha/norm)/2·Σ‖W‖² with gradient (alpha/norm)·W. */
double K(mlp_loss_grad)(real *grad, real *work, const real *params, const real *x, const cnn_csr *xs, const real *y,
                        const real *sw, int n, const cnn_mlp *net)
{
    double norm = K(mlp_weight_sum)(sw, n);
    double loss = K(mlp_backprop)(grad, work, params, x, xs, y, sw, n, norm, net);
    return loss + K(l2_penalty)(grad, params, mlp_weight_count(net), (real)(net->alpha / norm));
}

/* p, g (P), state (P or 2P, as mlp_epoch says): the L2 term (returned) and gradient of the first nw
 * parameters, then the optimizer update, piece by piece so each piece of g and p is still in cache for the
 * update: on a wide net these are memory-bound passes over millions of parameters. Big vectors sum the
 * penalty in CNN_REDUCE_CHUNKS fixed chunks, so it does not depend on the thread count. */
static double K(mlp_step)(real *p, real *state, real *g, size_t count, size_t nw, real lam, cnn_mlp_optim *opt)
{
    enum { PIECE = 4096 };
    int chunks = count > CNN_PARALLEL_WORK ? CNN_REDUCE_CHUNKS : 1;
    long long t = opt->adam ? ++opt->t : 0;
    double part[CNN_REDUCE_CHUNKS];
    CNN_FOR(chunks > 1, int, c, chunks, {
        size_t i1 = count * (c + 1) / chunks;
        double s = 0;
        for (size_t i = count * c / chunks; i < i1; i += PIECE) {
            size_t len = i1 - i < PIECE ? i1 - i : PIECE, lw = i >= nw ? 0 : nw - i < len ? nw - i : len;
            if (lw) s += K(l2_penalty)(g + i, p + i, lw, lam);
            if (opt->adam)
                K(adam_step)(p + i, state + i, state + count + i, g + i, len, opt->lr, opt->beta1, opt->beta2, opt->eps,
                             0, 0, t, OPT_KERAS);
            else K(sgd_step)(p + i, state + i, g + i, len, opt->lr, opt->momentum, 0, 0, opt->nesterov, 0, OPT_KERAS);
        }
        part[c] = s;
    });
    double total = 0;
    for (int c = 0; c < chunks; c++) total += part[c];
    return total;
}

/* params, grad (P), state (P for SGD, 2P for Adam), x (N, units[0]) or xs (the CSR of just the rows of batches
 * b0..b1, in the order taken), y (N, units[L]), sw (N) or NULL, order (rows of batches b0..b1) or NULL. A whole
 * run of batches in one call: a small network's step is microseconds, which a Python loop around each step
 * would multiply. */
double K(mlp_epoch)(real *params, real *state, real *grad, real *work, const real *x, const cnn_csr *xs, const real *y,
                    const real *sw, const int64_t *order, int n, int batch, int b0, int b1, const cnn_mlp *net,
                    cnn_mlp_optim *opt)
{
    int in = net->units[0], k = net->units[net->n_layers];
    size_t count = cnn_mlp_param_count(net), nw = mlp_weight_count(net);
    real *yb = work + mlp_layers_width(net, 1) * batch, *wb = yb + (size_t)batch * k, *xb = wb + batch;
    double total = 0;
    for (int bi = b0; bi < b1; bi++) {
        int start = bi * batch, m = n - start < batch ? n - start : batch;
        const real *xr = xs ? NULL : x + (size_t)start * in, *ys = y + (size_t)start * k, *ws = sw ? sw + start : NULL;
        if (order) { /* sklearn copies the shuffled rows too (_safe_indexing) */
            const int64_t *rows = order + (size_t)(bi - b0) * batch;
            for (int r = 0; r < m; r++) {
                if (!xs) memcpy(xb + (size_t)r * in, x + (size_t)rows[r] * in, in * sizeof(real));
                memcpy(yb + (size_t)r * k, y + (size_t)rows[r] * k, k * sizeof(real));
                if (sw) wb[r] = sw[rows[r]];
            }
            xr = xs ? NULL : xb;
            ys = yb;
            ws = sw ? wb : NULL;
        }
        cnn_csr batch_xs = {xs ? xs->indptr + (size_t)(bi - b0) * batch : NULL, xs ? xs->indices : NULL,
                            xs ? xs->data : NULL};
        double norm = K(mlp_weight_sum)(ws, m);
        double loss = K(mlp_backprop)(grad, work, params, xr, xs ? &batch_xs : NULL, ys, ws, m, norm, net);
        total += (loss + K(mlp_step)(params, state, grad, count, nw, (real)(net->alpha / norm), opt)) * m;
    }
    return total;
}

#endif
