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
 * h_0 first; c (T+1, N, U) the LSTM's cells and tc (T, N, U) their tanh; rn (T, N, U) the GRU's hR_n + b_hn, which its reset gate
 * multiplied; rec (N, G·U) one step's recurrent product. */
typedef struct {
    size_t xt, a, h, c, tc, rn, rec, end;
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
    l.tc = o, o = g->cell == CELL_LSTM ? cnn_size_add(o, cnn_size_mul(tn, g->units)) : o;
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
/* the element loops read and write disjoint rows: no dependence across j */
#define IVDEP _Pragma("GCC ivdep")

/* σ(z) = (1 + tanh(z/2))/2: in float by the float tanh, eight lanes to a vector where the double logistic
 * gives four (within 1e-7 absolute, far inside float32's 1e-5 parity with PyTorch); in double as activations.c */
static inline float sig_f32(float z) { return 0.5f + 0.5f * cnn_tanh_f32(0.5f * z); }
static inline double sig_f64(double z) { return cnn_sigmoid(z); }

#define TEMPLATE "rnn.c"
#include "template.h" /* the kernels below, once per real type */
#else

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

/* The row kernels below take units [j0, j1) of one batch row, every pointer at that row: a (G·U) the input
 * projection plus the input bias, overwritten with the gates' activations; rec (G·U) the recurrent product
 * (plus the GRU's recurrent bias); hp, h (U) the previous and the new state. No test in the loops, and
 * restrict and ivdep to say the rows do not alias: they vectorize (with AVX2 in the CNN_VECTOR_CLONES copy). */
CNN_VECTOR_CLONES static void K(rnn_row)(real *restrict a, real *restrict h, const real *restrict rec,
                                         cnn_activation act, int j0, int j1)
{
    switch (act) { /* a loop per activation: a switch inside the loop would keep it scalar */
    case ACT_TANH:
        IVDEP for (size_t j = (size_t)j0; j < (size_t)j1; j++) h[j] = a[j] = K(cnn_tanh)(a[j] + rec[j]);
        break;
    case ACT_SIGMOID: IVDEP for (size_t j = (size_t)j0; j < (size_t)j1; j++) h[j] = a[j] = K(sig)(a[j] + rec[j]); break;
    case ACT_RELU:
        IVDEP for (size_t j = (size_t)j0; j < (size_t)j1; j++) h[j] = a[j] = a[j] + rec[j] < 0 ? 0 : a[j] + rec[j];
        break;
    default: IVDEP for (size_t j = (size_t)j0; j < (size_t)j1; j++) h[j] = a[j] = a[j] + rec[j]; break;
    }
}

/* c (U) the new cell, cp the previous one, tc (U) tanh(c), kept for the backward */
CNN_VECTOR_CLONES static void K(lstm_row)(real *restrict a, real *restrict h, real *restrict c, real *restrict tc,
                                          const real *restrict rec, const real *restrict cp, size_t su, int j0, int j1)
{
    IVDEP for (size_t j = (size_t)j0; j < (size_t)j1; j++)
    {
        real ig = K(sig)(a[j] + rec[j]);
        real fg = K(sig)(a[su + j] + rec[su + j]);
        real cg = K(cnn_tanh)(a[2 * su + j] + rec[2 * su + j]);
        real og = K(sig)(a[3 * su + j] + rec[3 * su + j]);
        real cn = fg * cp[j] + ig * cg, t = K(cnn_tanh)(cn);
        c[j] = cn, tc[j] = t, h[j] = og * t;
        a[j] = ig, a[su + j] = fg, a[2 * su + j] = cg, a[3 * su + j] = og;
    }
}

/* rn (U) keeps hR_n + b_hn, which the reset gate scaled */
CNN_VECTOR_CLONES static void K(gru_row)(real *restrict a, real *restrict h, real *restrict rn,
                                         const real *restrict rec, const real *restrict hp, size_t su, int j0, int j1)
{
    IVDEP for (size_t j = (size_t)j0; j < (size_t)j1; j++)
    {
        real zg = K(sig)(a[j] + rec[j]);
        real rg = K(sig)(a[su + j] + rec[su + j]);
        real ng = K(cnn_tanh)(a[2 * su + j] + rg * rec[2 * su + j]);
        rn[j] = rec[2 * su + j], h[j] = zg * hp[j] + (1 - zg) * ng;
        a[j] = zg, a[su + j] = rg, a[2 * su + j] = ng;
    }
}

/* Step s's gates for units [j0, j1) of batch row i: reads a_s (the input projection) and rec (h_{s}·R),
 * overwrites a_s with the activations and writes h_{s+1} (and c_{s+1}, tanh c_{s+1}, rn_s). */
static void K(gates_forward)(real *cache, const cnn_rnn *g, rnn_cache_layout l, int s, int i, int j0, int j1)
{
    int u = g->units, gu = cnn_rnn_gates(g->cell) * u;
    size_t row = (size_t)s * g->n + i, next = row + g->n;
    real *a = cache + l.a + row * gu, *h = cache + l.h + next * u;
    const real *rec = cache + l.rec + (size_t)i * gu, *hp = cache + l.h + row * u;
    if (g->cell == CELL_RNN) K(rnn_row)(a, h, rec, g->act, j0, j1);
    else if (g->cell == CELL_LSTM)
        K(lstm_row)(a, h, cache + l.c + next * u, cache + l.tc + row * u, rec, cache + l.c + row * u, u, j0, j1);
    else K(gru_row)(a, h, cache + l.rn + row * u, rec, hp, u, j0, j1);
}

/* m (rows, cols) += b (cols) on every row: the input bias, once for every step */
static void K(add_rows)(real *m, const real *b, size_t rows, int cols)
{
    CNN_FOR(rows * cols > CNN_PARALLEL_WORK, size_t, i, rows, {
        real *restrict row = m + i * cols;
        IVDEP for (size_t j = 0; j < (size_t)cols; j++) row[j] += b[j];
    });
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
    if (b) K(add_rows)(cache + l.a, b, (size_t)g->t * n, gu);
    if (h0) memcpy(cache + l.h, h0, nu * sizeof(real));
    else memset(cache + l.h, 0, nu * sizeof(real));
    if (g->cell == CELL_LSTM && c0) memcpy(cache + l.c, c0, nu * sizeof(real));
    else if (g->cell == CELL_LSTM) memset(cache + l.c, 0, nu * sizeof(real));
    for (int s = 0; s < g->t; s++) {
        if (g->cell == CELL_GRU && b) /* the recurrent bias, which the reset gate scales with the product */
            for (int i = 0; i < n; i++) memcpy(cache + l.rec + (size_t)i * gu, b + gu, gu * sizeof(real));
        K(gemm_nn)(cache + l.rec, cache + l.h + (size_t)s * nu, r, n, gu, u, g->cell == CELL_GRU && b);
        CNN_FOR(nu * gu / u > CNN_PARALLEL_WORK, int, p, n *pieces, {
            int j0 = p % pieces * UNIT_BLOCK, j1 = j0 + UNIT_BLOCK < u ? j0 + UNIT_BLOCK : u;
            K(gates_forward)(cache, g, l, s, p / pieces, j0, j1);
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

/* The backward's row kernels, as the forward's: dh (U) holds the state's gradient, from later steps and from
 * this step's output, and each leaves in dh (and the LSTM's dc) what flows to the previous
 * step without passing through R; da, dr (G·U) the gradients of the pre-activations and of the recurrent product. */
CNN_VECTOR_CLONES static void K(rnn_row_backward)(real *restrict da, real *restrict dh, const real *restrict h,
                                                  cnn_activation act, int j0, int j1)
{
    IVDEP for (size_t j = (size_t)j0; j < (size_t)j1; j++)
    {
        da[j] = dh[j] * K(rnn_act_grad)(h[j], act);
        dh[j] = 0;
    }
}

CNN_VECTOR_CLONES static void K(lstm_row_backward)(real *restrict da, real *restrict dh, real *restrict dc,
                                                   const real *restrict a, const real *restrict tc,
                                                   const real *restrict cp, size_t su, int j0, int j1)
{
    IVDEP for (size_t j = (size_t)j0; j < (size_t)j1; j++)
    {
        real ig = a[j], fg = a[su + j], cg = a[2 * su + j], og = a[3 * su + j], t = tc[j];
        real dht = dh[j], dct = dc[j] + dht * og * (1 - t * t);
        da[j] = dct * cg * ig * (1 - ig);
        da[su + j] = dct * cp[j] * fg * (1 - fg);
        da[2 * su + j] = dct * ig * (1 - cg * cg);
        da[3 * su + j] = dht * t * og * (1 - og);
        dc[j] = dct * fg, dh[j] = 0;
    }
}

CNN_VECTOR_CLONES static void K(gru_row_backward)(real *restrict da, real *restrict dr, real *restrict dh,
                                                  const real *restrict a, const real *restrict rn,
                                                  const real *restrict hp, size_t su, int j0, int j1)
{
    IVDEP for (size_t j = (size_t)j0; j < (size_t)j1; j++)
    {
        real zg = a[j], rg = a[su + j], ng = a[2 * su + j], dht = dh[j];
        real dn = dht * (1 - zg) * (1 - ng * ng), dz = dht * (hp[j] - ng) * zg * (1 - zg);
        real drg = dn * rn[j] * rg * (1 - rg);
        dr[j] = da[j] = dz, dr[su + j] = da[su + j] = drg;
        da[2 * su + j] = dn, dr[2 * su + j] = dn * rg;
        dh[j] = dht * zg;
    }
}

/* Step s's gate gradients for units [j0, j1) of batch row i: dy_s counts where the forward returned it (every
 * step with sequences, else the last only) */
static void K(gates_backward)(real *work, const real *cache, const real *dy, const cnn_rnn *g, rnn_cache_layout l,
                              rnn_work_layout wl, int s, int i, int j0, int j1)
{
    int u = g->units, gu = cnn_rnn_gates(g->cell) * u;
    size_t row = (size_t)s * g->n + i, next = row + g->n;
    const real *a = cache + l.a + row * gu;
    real *da = work + wl.da + row * gu, *dh = work + wl.dh + (size_t)i * u;
    const real *dys = g->sequences ? dy + ((size_t)i * g->t + s) * u : s == g->t - 1 ? dy + (size_t)i * u : NULL;
    if (dys) IVDEP for (size_t j = (size_t)j0; j < (size_t)j1; j++) dh[j] += dys[j];
    if (g->cell == CELL_RNN) K(rnn_row_backward)(da, dh, cache + l.h + next * u, g->act, j0, j1);
    else if (g->cell == CELL_LSTM)
        K(lstm_row_backward)(da, dh, work + wl.dc + (size_t)i * u, a, cache + l.tc + row * u, cache + l.c + row * u, u,
                             j0, j1);
    else
        K(gru_row_backward)(da, work + wl.dr + row * gu, dh, a, cache + l.rn + row * u, cache + l.h + row * u, u, j0,
                            j1);
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
