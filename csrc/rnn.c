/* rnn.c: SimpleRNN, LSTM and GRU over whole sequences, forward and backpropagation through time, with
 * Keras's weights: kernel (IN, G·U), recurrent_kernel (U, G·U), bias (G·U), or (2, G·U) for the GRU; gate
 * blocks in Keras's order (LSTM i, f, c, o; GRU z, r, h). Per cell, z_t = x_t·W + h_{t-1}·R + b and:
 *   SimpleRNN  h = act(z)
 *   LSTM       i, f, o = σ(z_i, z_f, z_o); g = tanh(z_c); c = f·c_{t-1} + i·g; h = o·tanh(c)
 *   GRU        z, r = σ(xW + b_x + hR + b_h) in blocks z, r; n = tanh(xW_n + b_xn + r·(hR_n + b_hn));
 *              h = z·h_{t-1} + (1 - z)·n   (reset_after: r multiplies the projected state, as PyTorch)
 * Everything runs time-major: the input is first copied into (T, N, IN) in processing order (reversed for
 * go_backwards), so one gemm projects every step's input, each step's recurrent product is one gemm on
 * contiguous rows, and the backward's weight gradients are one gemm each over all T·N rows.
 * Worked example (SimpleRNN, U = IN = 1, W = 1, R = 0.5, b = 0, tanh): x = [1, 0] gives h_1 = tanh(1) =
 * 0.7616 and h_2 = tanh(0.5·0.7616) = 0.3634. */
#ifndef real
#include <string.h>
#include "cnn.h"
#include "fastmath.h"

/* The cache's arrays, as offsets in elements: xt (T, N, IN) the input in processing order; a (T, N, G·U)
 * the input projection, which each step overwrites with its gates' activations; h (T+1, N, U) the states,
 * h_0 first; c (T+1, N, U) the LSTM's cells; rn (T, N, U) the GRU's hR_n + b_hn, which its reset gate
 * multiplied; rec (N, G·U) one step's recurrent product. */
typedef struct {
    size_t xt, a, h, c, rn, rec, end;
} rnn_cache_layout;
/* The backward's scratch: da (T, N, G·U) the gradients of the gate pre-activations (the input projection's);
 * dr (T, N, G·U) the recurrent product's, the GRU's only (elsewhere it is da); dh, dc (N, U) the running
 * state gradients; dxt (T, N, IN) the input gradient in processing order. */
typedef struct {
    size_t da, dr, dh, dc, dxt, end;
} rnn_work_layout;

static rnn_cache_layout cache_layout(const cnn_rnn *g)
{
    size_t tn = cnn_size_mul(g->t, g->n), gu = cnn_size_mul(cnn_rnn_gates(g->cell), g->units), o = 0;
    rnn_cache_layout l;
    l.xt = o, o = cnn_size_add(o, cnn_size_mul(tn, g->in));
    l.a = o, o = cnn_size_add(o, cnn_size_mul(tn, gu));
    l.h = o, o = cnn_size_add(o, cnn_size_mul(cnn_size_add(tn, g->n), g->units));
    l.c = o, o = g->cell == CELL_LSTM ? cnn_size_add(o, cnn_size_mul(cnn_size_add(tn, g->n), g->units)) : o;
    l.rn = o, o = g->cell == CELL_GRU ? cnn_size_add(o, cnn_size_mul(tn, g->units)) : o;
    l.rec = o, o = cnn_size_add(o, cnn_size_mul(g->n, gu));
    l.end = o;
    return l;
}

static rnn_work_layout work_layout(const cnn_rnn *g)
{
    size_t tn = cnn_size_mul(g->t, g->n), gu = cnn_size_mul(cnn_rnn_gates(g->cell), g->units), o = 0;
    size_t nu = cnn_size_mul(g->n, g->units);
    rnn_work_layout l;
    l.da = o, o = cnn_size_add(o, cnn_size_mul(tn, gu));
    l.dr = o, o = g->cell == CELL_GRU ? cnn_size_add(o, cnn_size_mul(tn, gu)) : o;
    l.dh = o, o = cnn_size_add(o, nu);
    l.dc = o, o = g->cell == CELL_LSTM ? cnn_size_add(o, nu) : o;
    l.dxt = o, o = cnn_size_add(o, cnn_size_mul(tn, g->in));
    l.end = o;
    return l;
}

size_t rnn_cache_size(const cnn_rnn *g) { return cache_layout(g).end; }
size_t rnn_work_size(const cnn_rnn *g) { return work_layout(g).end; }

/* The fused gate passes split each step into pieces of one batch row and UNIT_BLOCK units: parallel over
 * the batch and the units, and each piece's elements are independent, so any thread count gives the same bits. */
#define UNIT_BLOCK 64

#define TEMPLATE "rnn.c"
#include "template.h" /* the kernels below, once per real type */
#else

static inline real K(rnn_act)(real z, cnn_activation act)
{
    switch (act) {
    case ACT_TANH: return K(cnn_tanh)(z);
    case ACT_SIGMOID: return (real)cnn_sigmoid(z);
    case ACT_RELU: return z < 0 ? 0 : z;
    default: return z;
    }
}

/* act'(z) read off y = act(z), as activations.c does */
static inline real K(rnn_act_grad)(real y, cnn_activation act)
{
    switch (act) {
    case ACT_TANH: return 1 - y * y;
    case ACT_SIGMOID: return y * (1 - y);
    case ACT_RELU: return y <= 0 ? 0 : 1;
    default: return 1;
    }
}

static inline real K(sig)(real z) { return (real)cnn_sigmoid(z); }

/* Step s's gates for units [j0, j1) of batch row i: reads a_s (the input projection) and rec (h_{s}·R),
 * overwrites a_s with the activations and writes h_{s+1} (and c_{s+1}, rn_s). */
CNN_VECTOR_CLONES static void K(gates_forward)(real *cache, const real *b, const cnn_rnn *g, rnn_cache_layout l, int s,
                                               int i, int j0, int j1)
{
    int u = g->units, gu = cnn_rnn_gates(g->cell) * u;
    size_t row = (size_t)s * g->n + i, next = row + g->n;
    real *a = cache + l.a + row * gu, *h = cache + l.h + next * u;
    const real *rec = cache + l.rec + (size_t)i * gu, *hp = cache + l.h + row * u;
    static const real zero[1] = {0};
    if (g->cell == CELL_RNN) {
        for (int j = j0; j < j1; j++) h[j] = a[j] = K(rnn_act)(a[j] + rec[j] + (b ? b[j] : 0), g->act);
    } else if (g->cell == CELL_LSTM) {
        real *c = cache + l.c + next * u;
        const real *cp = cache + l.c + row * u, *bb = b ? b : zero;
        int step = b ? 1 : 0;
        for (int j = j0; j < j1; j++) {
            real ig = K(sig)(a[j] + rec[j] + bb[j * step]);
            real fg = K(sig)(a[u + j] + rec[u + j] + bb[(u + j) * step]);
            real cg = K(cnn_tanh)(a[2 * u + j] + rec[2 * u + j] + bb[(2 * u + j) * step]);
            real og = K(sig)(a[3 * u + j] + rec[3 * u + j] + bb[(3 * u + j) * step]);
            c[j] = fg * cp[j] + ig * cg;
            h[j] = og * K(cnn_tanh)(c[j]);
            a[j] = ig, a[u + j] = fg, a[2 * u + j] = cg, a[3 * u + j] = og;
        }
    } else {
        real *rn = cache + l.rn + row * u;
        const real *bx = b ? b : zero, *bh = b ? b + gu : zero;
        int step = b ? 1 : 0;
        for (int j = j0; j < j1; j++) {
            real zg = K(sig)(a[j] + bx[j * step] + rec[j] + bh[j * step]);
            real rg = K(sig)(a[u + j] + bx[(u + j) * step] + rec[u + j] + bh[(u + j) * step]);
            rn[j] = rec[2 * u + j] + bh[(2 * u + j) * step];
            real ng = K(cnn_tanh)(a[2 * u + j] + bx[(2 * u + j) * step] + rg * rn[j]);
            h[j] = zg * hp[j] + (1 - zg) * ng;
            a[j] = zg, a[u + j] = rg, a[2 * u + j] = ng;
        }
    }
}

/* x (N, T, IN) → xt (T, N, IN) in processing order; back = 1 copies dxt into dx the other way */
static void K(to_time_major)(real *dst, const real *src, const cnn_rnn *g, int back)
{
    size_t in = (size_t)g->in;
    CNN_FOR((size_t)g->n * g->t * g->in > CNN_PARALLEL_WORK, int, s, g->t, {
        int ts = g->go_backwards ? g->t - 1 - s : s;
        for (int i = 0; i < g->n; i++) {
            real *d = back ? dst + ((size_t)i * g->t + ts) * in : dst + ((size_t)s * g->n + i) * in;
            const real *o = back ? src + ((size_t)s * g->n + i) * in : src + ((size_t)i * g->t + ts) * in;
            memcpy(d, o, in * sizeof(real));
        }
    });
}

/* x (N, T, IN), w (IN, G·U), r (U, G·U), b (G·U) or (2, G·U) for the GRU, or NULL; h0, c0 (N, U) or NULL
 * (zeros) → y (N, T, U) every step's h in processing order when g->sequences, else (N, U) the last;
 * h_last, c_last (N, U) or NULL; cache (rnn_cache_size) what the backward reads. */
void K(rnn_forward)(real *y, real *h_last, real *c_last, real *cache, const real *x, const real *w, const real *r,
                    const real *b, const real *h0, const real *c0, const cnn_rnn *g)
{
    rnn_cache_layout l = cache_layout(g);
    int n = g->n, u = g->units, gu = cnn_rnn_gates(g->cell) * u, pieces = (u + UNIT_BLOCK - 1) / UNIT_BLOCK;
    size_t nu = (size_t)n * u;
    K(to_time_major)(cache + l.xt, x, g, 0);
    K(gemm_nn)(cache + l.a, cache + l.xt, w, g->t * n, gu, g->in, 0);
    if (h0) memcpy(cache + l.h, h0, nu * sizeof(real));
    else memset(cache + l.h, 0, nu * sizeof(real));
    if (g->cell == CELL_LSTM && c0) memcpy(cache + l.c, c0, nu * sizeof(real));
    else if (g->cell == CELL_LSTM) memset(cache + l.c, 0, nu * sizeof(real));
    for (int s = 0; s < g->t; s++) {
        K(gemm_nn)(cache + l.rec, cache + l.h + (size_t)s * nu, r, n, gu, u, 0);
        CNN_FOR(nu * gu / u > CNN_PARALLEL_WORK, int, p, n *pieces, {
            int j0 = p % pieces * UNIT_BLOCK, j1 = j0 + UNIT_BLOCK < u ? j0 + UNIT_BLOCK : u;
            K(gates_forward)(cache, b, g, l, s, p / pieces, j0, j1);
        });
    }
    const real *hs = cache + l.h + nu;
    if (!g->sequences) memcpy(y, hs + (size_t)(g->t - 1) * nu, nu * sizeof(real));
    else
        for (int i = 0; i < n; i++)
            for (int s = 0; s < g->t; s++)
                memcpy(y + ((size_t)i * g->t + s) * u, hs + (size_t)s * nu + (size_t)i * u, u * sizeof(real));
    if (h_last) memcpy(h_last, hs + (size_t)(g->t - 1) * nu, nu * sizeof(real));
    if (c_last) memcpy(c_last, cache + l.c + (size_t)g->t * nu, nu * sizeof(real));
}

/* Step s's gate gradients for units [j0, j1) of batch row i, from dh (the state's gradient from later steps,
 * plus dy_s) and the LSTM's dc: writes da_s (and the GRU's dr_s), and leaves in dh and dc what flows to
 * step s - 1 without passing through R (the recurrent gemm adds the rest to dh). */
CNN_VECTOR_CLONES static void K(gates_backward)(real *work, const real *cache, const real *dy, const cnn_rnn *g,
                                                rnn_cache_layout l, rnn_work_layout wl, int s, int i, int j0, int j1)
{
    int u = g->units, gu = cnn_rnn_gates(g->cell) * u;
    size_t row = (size_t)s * g->n + i, next = row + g->n;
    const real *a = cache + l.a + row * gu, *h = cache + l.h + next * u, *hp = cache + l.h + row * u;
    real *da = work + wl.da + row * gu, *dh = work + wl.dh + (size_t)i * u;
    static const real zero[1] = {0};
    /* dy_s when every step's output is returned, else only the last step's output has one */
    const real *dys = g->sequences ? dy + ((size_t)i * g->t + s) * u : s == g->t - 1 ? dy + (size_t)i * u : zero;
    int dstep = g->sequences || s == g->t - 1 ? 1 : 0;
    if (g->cell == CELL_RNN) {
        for (int j = j0; j < j1; j++) {
            da[j] = (dh[j] + dys[j * dstep]) * K(rnn_act_grad)(h[j], g->act);
            dh[j] = 0;
        }
    } else if (g->cell == CELL_LSTM) {
        real *dc = work + wl.dc + (size_t)i * u;
        const real *c = cache + l.c + next * u, *cp = cache + l.c + row * u;
        for (int j = j0; j < j1; j++) {
            real ig = a[j], fg = a[u + j], cg = a[2 * u + j], og = a[3 * u + j];
            real dht = dh[j] + dys[j * dstep], tc = K(cnn_tanh)(c[j]);
            real dct = dc[j] + dht * og * (1 - tc * tc);
            da[j] = dct * cg * ig * (1 - ig);
            da[u + j] = dct * cp[j] * fg * (1 - fg);
            da[2 * u + j] = dct * ig * (1 - cg * cg);
            da[3 * u + j] = dht * tc * og * (1 - og);
            dc[j] = dct * fg;
            dh[j] = 0;
        }
    } else {
        real *dr = work + wl.dr + row * gu;
        const real *rn = cache + l.rn + row * u;
        for (int j = j0; j < j1; j++) {
            real zg = a[j], rg = a[u + j], ng = a[2 * u + j];
            real dht = dh[j] + dys[j * dstep];
            real dn = dht * (1 - zg) * (1 - ng * ng);
            dr[j] = da[j] = dht * (hp[j] - ng) * zg * (1 - zg);
            dr[u + j] = da[u + j] = dn * rn[j] * rg * (1 - rg);
            da[2 * u + j] = dn;
            dr[2 * u + j] = dn * rg;
            dh[j] = dht * zg;
        }
    }
}

/* Column sums of m (rows, cols) into s (cols) [+]=: each thread owns a block of columns and adds its rows in
 * order, so no sum depends on the thread count */
static void K(column_sums)(real *s, const real *m, size_t rows, int cols, int accumulate)
{
    enum { COLS = 64 };
    int blocks = (cols + COLS - 1) / COLS;
    CNN_FOR(rows * cols > 65536, int, cb, blocks, {
        int j0 = cb * COLS, j1 = j0 + COLS < cols ? j0 + COLS : cols;
        for (int j = j0; !accumulate && j < j1; j++) s[j] = 0;
        for (size_t i = 0; i < rows; i++) {
            const real *row = m + i * cols;
            for (int j = j0; j < j1; j++) s[j] += row[j];
        }
    });
}

/* dy as y of the forward; dh_last, dc_last (N, U) or NULL: the gradients of the returned states; cache as
 * the forward left it → dx (N, T, IN), dh0, dc0 (N, U) (each NULL skips it, overwrite); dw, dr, db as the
 * weights (db NULL skips it), += or = when accumulate is 0; work (rnn_work_size). */
void K(rnn_backward)(real *dx, real *dh0, real *dc0, real *dw, real *dr, real *db, real *work, const real *dy,
                     const real *dh_last, const real *dc_last, const real *cache, const real *w, const real *r,
                     const cnn_rnn *g, int accumulate)
{
    rnn_cache_layout l = cache_layout(g);
    rnn_work_layout wl = work_layout(g);
    int n = g->n, u = g->units, gu = cnn_rnn_gates(g->cell) * u, pieces = (u + UNIT_BLOCK - 1) / UNIT_BLOCK;
    size_t nu = (size_t)n * u, tn = (size_t)g->t * n;
    const real *drec = work + (g->cell == CELL_GRU ? wl.dr : wl.da);
    if (dh_last) memcpy(work + wl.dh, dh_last, nu * sizeof(real));
    else memset(work + wl.dh, 0, nu * sizeof(real));
    if (g->cell == CELL_LSTM && dc_last) memcpy(work + wl.dc, dc_last, nu * sizeof(real));
    else if (g->cell == CELL_LSTM) memset(work + wl.dc, 0, nu * sizeof(real));
    for (int s = g->t - 1; s >= 0; s--) {
        CNN_FOR(nu * gu / u > CNN_PARALLEL_WORK, int, p, n *pieces, {
            int j0 = p % pieces * UNIT_BLOCK, j1 = j0 + UNIT_BLOCK < u ? j0 + UNIT_BLOCK : u;
            K(gates_backward)(work, cache, dy, g, l, wl, s, p / pieces, j0, j1);
        });
        K(gemm_nt)(work + wl.dh, drec + (size_t)s * n * gu, r, n, u, gu, 1);
    }
    if (dh0) memcpy(dh0, work + wl.dh, nu * sizeof(real));
    if (dc0) memcpy(dc0, work + wl.dc, nu * sizeof(real));
    K(gemm_tn)(dw, cache + l.xt, work + wl.da, g->in, gu, (int)tn, accumulate);
    K(gemm_tn)(dr, cache + l.h, drec, u, gu, (int)tn, accumulate);
    if (db) K(column_sums)(db, work + wl.da, tn, gu, accumulate);
    if (db && g->cell == CELL_GRU) K(column_sums)(db + gu, drec, tn, gu, accumulate);
    if (!dx) return;
    K(gemm_nt)(work + wl.dxt, work + wl.da, w, (int)tn, g->in, gu, 0);
    K(to_time_major)(dx, work + wl.dxt, g, 1);
}

#endif
