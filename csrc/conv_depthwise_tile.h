/* conv_depthwise_tile.h: the plane kernels of the depthwise convolution, included by conv_depthwise.c once per
 * (real type, ISA) as conv_direct_tile.h is (INSTANCE = (real, VLEN, suffix); this file undefines it), with
 * conv_depthwise.c's row descriptions (dw_row) and their builders in scope.
 *
 * Every output row is computed once, all its taps in registers, a vector of VLEN outputs at a time along the
 * row: the input gradient too, as the transposed correlation of dy (a gather), so each dx row is written once.
 * The weight gradient sums all taps of a (dy, x) plane pair in one pass. Outputs whose window crosses the row's
 * edge (the padding) are computed one by one at the row's two ends; a last vector that would run past the
 * interior is moved back to end at it (recomputing outputs the one before it wrote). */
#define INSTANCE_ARG1(a, b, c) a
#define INSTANCE_ARG2(a, b, c) b
#define INSTANCE_ARG3(a, b, c) c
#define INSTANCE_APPLY(f, args) f args
#define real INSTANCE_APPLY(INSTANCE_ARG1, INSTANCE)
#define VLEN INSTANCE_APPLY(INSTANCE_ARG2, INSTANCE)
#define G(name) PASTE2(name, INSTANCE_APPLY(INSTANCE_ARG3, INSTANCE))

typedef real G(vec) __attribute__((vector_size(VLEN * sizeof(real))));
/* the integer vector of real's width, for shuffles and masks */
typedef __typeof__(__builtin_choose_expr(sizeof(real) == 4, (int32_t)0, (int64_t)0)) G(lane);
typedef G(lane) G(mask) __attribute__((vector_size(VLEN * sizeof(real))));

static inline G(vec) G(load)(const real *p)
{
    G(vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void G(store)(real *p, G(vec) v) { memcpy(p, &v, sizeof v); }

/* p[0], p[s], ..., p[(VLEN-1)·s]. Stride 2 from two loads ending at the last element read, so that no load
 * runs past the row. */
static inline __attribute__((always_inline)) G(vec) G(loads)(const real *p, const int S, int s)
{
    if (S == 1) return G(load)(p);
    if (S == 2) return __builtin_shuffle(G(load)(p), G(load)(p + VLEN - 1), (G(mask)){PASTE2(DW_EVEN, VLEN)});
    real t[VLEN];
    for (int q = 0; q < VLEN; q++) t[q] = p[(ptrdiff_t)q * s];
    return G(load)(t);
}

static inline real G(hsum)(G(vec) v)
{
    real s = 0;
    for (int q = 0; q < VLEN; q++) s += v[q];
    return s;
}

/* A row's taps as a table: tap q reads in[off[q] + c0 + t·s] (its column lc[q] from the first's) with weight wt[q].
 * Built when a row's taps differ from the row before's (a plane's interior rows share one), it leaves the vector loop
 * a load of x, a broadcast and an FMA per tap (indexing planes, rows and columns there ran out of registers).
 * Rows of more taps go DW_ROW_TAPS at a time. */
#define DW_ROW_TAPS 64
typedef struct {
    ptrdiff_t off[DW_ROW_TAPS];
    long lc[DW_ROW_TAPS];
    real wt[DW_ROW_TAPS];
    const real *w; /* the table's row: most rows of a plane share it, and keep it */
    int rows, q0, nt;
    ptrdiff_t ir, wr;
} G(taps);

/* taps [q0, q0 + count) of row r into tt, in (plane, row, column) order; returns count */
static int G(tap_table)(G(taps) * tt, const real *w, const dw_row *r, int q0)
{
    if (tt->w == w && tt->rows == r->rows && tt->q0 == q0 && tt->ir == r->ir && tt->wr == r->wr) return tt->nt;
    *tt = (G(taps)){.w = w, .rows = r->rows, .q0 = q0, .ir = r->ir, .wr = r->wr};
    int q = 0, nt = 0;
    for (int p = 0; p < r->planes; p++)
        for (int k = 0; k < r->rows; k++)
            for (int l = 0; l < r->cols; l++, q++) {
                if (q < q0) continue;
                if (nt == DW_ROW_TAPS) return tt->nt = nt;
                tt->off[nt] = p * r->ip + k * r->ir + l * r->ic;
                tt->lc[nt] = l * r->ic;
                tt->wt[nt++] = w[p * r->wp + k * r->wr + l * r->wc];
            }
    return tt->nt = nt;
}

/* out[t·os] (+ when more)= init + Σ taps of output t inside the input row */
static inline real G(element)(const real *in, const G(taps) * tt, int nt, const dw_row *r, long t, real init)
{
    long base = r->c0 + t * r->s;
    real acc = init;
    for (int q = 0; q < nt; q++) {
        long col = base + tt->lc[q];
        if (col >= 0 && col < r->width) acc += tt->wt[q] * in[tt->off[q] + base];
    }
    return acc;
}

/* The VLEN outputs from t, all their taps inside the row. NT: the taps when a constant (unrolled), else 0. */
static inline __attribute__((always_inline)) G(vec)
    G(vector)(const real *in, const G(taps) * tt, int nt, const dw_row *r, long t, G(vec) acc, const int S,
              const int NT)
{
    const real *base = in + (r->c0 + t * r->s);
    for (int q = 0; q < (NT ? NT : nt); q++) acc += tt->wt[q] * G(loads)(base + tt->off[q], S, r->s);
    return acc;
}

static inline __attribute__((always_inline)) void G(row_taps)(real *out, const real *in, const G(taps) * tt, int nt,
                                                              const dw_row *r, real init, int more, const int S,
                                                              const int NT)
{
    long n = r->n, ta = r->ta, tb = r->tb, t = 0;
    if (tb - ta < VLEN) ta = tb = n;
    for (; t < ta; t++) out[t * r->os] = G(element)(in, tt, nt, r, t, more ? out[t * r->os] : init);
    for (; t + VLEN <= tb || (t < tb && !more); t += VLEN) {
        long t0 = t + VLEN <= tb ? t : tb - VLEN; /* the last moved back to end at tb: it rewrites equal values */
        if (r->os == 1) {
            G(store)(out + t0, G(vector)(in, tt, nt, r, t0, more ? G(load)(out + t0) : (G(vec)){0} + init, S, NT));
            continue;
        }
        G(vec) acc = (G(vec)){0} + init;
        if (more)
            for (int q = 0; q < VLEN; q++) acc[q] = out[(t0 + q) * r->os];
        acc = G(vector)(in, tt, nt, r, t0, acc, S, NT);
        for (int q = 0; q < VLEN; q++) out[(t0 + q) * r->os] = acc[q];
    }
    for (t = t < tb ? t : tb; t < n; t++) out[t * r->os] = G(element)(in, tt, nt, r, t, more ? out[t * r->os] : init);
}

/* One row of outputs (dw_row), its taps DW_ROW_TAPS at a time: the outputs at its ends one by one, the interior
 * a vector at a time (S: the stride, 0 any; COLS: the tap columns, 0 any; constants, so the common windows of
 * full rows unroll with their weights in registers) */
static inline __attribute__((always_inline)) void G(row_k)(real *out, const real *in, const real *w, const dw_row *r,
                                                           G(taps) * tt, real init, const int S, const int COLS)
{
    int q0 = 0, taps = r->planes * r->rows * r->cols;
    do {
        int nt = G(tap_table)(tt, w, r, q0);
        if (COLS == 3 && nt == 9) G(row_taps)(out, in, tt, nt, r, init, q0 > 0, S, 9);
        else if (COLS == 5 && nt == 25) G(row_taps)(out, in, tt, nt, r, init, q0 > 0, S, 25);
        else G(row_taps)(out, in, tt, nt, r, init, q0 > 0, S, 0);
        q0 += nt;
    } while (q0 < taps);
}

/* y (OH, OW) = bias + the correlation of x (H, W) with w (KH, KW): one output channel of one sample */
static inline __attribute__((always_inline)) void G(forward_k)(real *y, const real *x, const real *w, real bias,
                                                               const cnn_conv2d *g, const int S, const int COLS)
{
    dw_row r;
    G(taps) tt = {.w = NULL};
    dw_forward_cols(&r, g);
    for (int oh = 0; oh < g->oh; oh++) {
        ptrdiff_t in_off, w_off;
        dw_forward_rows(&r, g, oh, &in_off, &w_off);
        G(row_k)(y + (size_t)oh * g->ow, x + in_off, w + w_off, &r, &tt, bias, S, COLS);
    }
}

static void G(dw_forward_plane)(real *y, const real *x, const real *w, real bias, const cnn_conv2d *g)
{
    if (g->sw == 1 && g->kw == 3) G(forward_k)(y, x, w, bias, g, 1, 3);
    else if (g->sw == 1 && g->kw == 5) G(forward_k)(y, x, w, bias, g, 1, 5);
    else if (g->sw == 1) G(forward_k)(y, x, w, bias, g, 1, 0);
    else if (g->sw == 2 && g->kw == 3) G(forward_k)(y, x, w, bias, g, 2, 3);
    else if (g->sw == 2 && g->kw == 5) G(forward_k)(y, x, w, bias, g, 2, 5);
    else if (g->sw == 2) G(forward_k)(y, x, w, bias, g, 2, 0);
    else G(forward_k)(y, x, w, bias, g, 0, 0);
}

/* dx (H, W) = Σ over the m output channels of input channel c of dy (m, OH, OW) correlated with w (m, KH, KW)
 * transposed, one phase of columns (those ≡ b mod SW) at a time; a phase reads dy at stride 1 */
static inline __attribute__((always_inline)) void G(input_grad_k)(real *dx, const real *dy, const real *w, dw_row *r,
                                                                  ptrdiff_t w_col, int b, const cnn_conv2d *g,
                                                                  const int COLS)
{
    G(taps) tt = {.w = NULL};
    for (int ih = 0; ih < g->h; ih++) {
        ptrdiff_t in_off, w_off = w_col;
        dw_input_rows(r, g, ih, &in_off, &w_off);
        G(row_k)(dx + (size_t)ih * g->w + b, dy + in_off, w + w_off, r, &tt, 0, 1, COLS);
    }
}

static void G(dw_input_grad_plane)(real *dx, const real *dy, const real *w, int m, const cnn_conv2d *g)
{
    for (int b = 0; b < g->sw && b < g->w; b++) {
        dw_row r;
        ptrdiff_t w_col;
        dw_input_cols(&r, g, m, b, &w_col);
        if (r.cols == 3) G(input_grad_k)(dx, dy, w, &r, w_col, b, g, 3);
        else if (r.cols == 5) G(input_grad_k)(dx, dy, w, &r, w_col, b, g, 5);
        else if (r.cols == 2) G(input_grad_k)(dx, dy, w, &r, w_col, b, g, 2);
        else if (r.cols == 1) G(input_grad_k)(dx, dy, w, &r, w_col, b, g, 1);
        else G(input_grad_k)(dx, dy, w, &r, w_col, b, g, 0);
    }
}

/* The weight gradient of one (dy, x) plane pair, rows [oa, ob) whose taps all lie inside x (KH, KW constant):
 * every tap's running sum in a register over the rows, added to va at the end; the outputs at the rows' ends
 * go to sa one by one. A last vector that would run past the interior is moved back, and the products of its
 * lanes already counted are masked off (to zero, whatever x holds there). */
static inline __attribute__((always_inline)) void G(wgrad_full)(G(vec) * va, real *sa, const real *dy, const real *x,
                                                                const cnn_conv2d *g, const dw_row *r, int oa, int ob,
                                                                const int S, const int KH, const int KW)
{
    G(vec) acc[KH * KW];
    for (int q = 0; q < KH * KW; q++) acc[q] = (G(vec)){0};
    long n = r->n, ta = r->ta, tb = r->tb;
    if (tb - ta < VLEN) ta = tb = n;
    G(mask) tail = (G(mask)){PASTE2(DW_IOTA, VLEN)} >= (G(mask)){0} + (int)((VLEN - (tb - ta) % VLEN) % VLEN);
    for (int oh = oa; oh < ob; oh++) {
        const real *dyrow = dy + (size_t)oh * g->ow;
        ptrdiff_t row = ((ptrdiff_t)oh * g->sh - g->pt) * g->w; /* x's row of tap row 0 */
        for (long t = ta; t < tb; t += VLEN) {
            long t0 = t + VLEN <= tb ? t : tb - VLEN;
            G(vec) d = G(load)(dyrow + t0);
            const real *base = x + (row + r->c0 + t0 * r->s);
            for (int i = 0; i < KH; i++)
                for (int j = 0; j < KW; j++) {
                    G(vec) v = G(loads)(base + (ptrdiff_t)i * r->ir + (ptrdiff_t)j * r->ic, S, r->s);
                    acc[i * KW + j] += t0 == t ? d * v : (G(vec))((G(mask))(d * v) & tail);
                }
        }
        /* the ends, one output at a time */
        for (long t = 0; t < n; t++) {
            if (t == ta) t = tb;
            if (t >= n) break;
            for (int j = 0; j < KW; j++) {
                long col = r->c0 + t * r->s + (long)j * r->ic;
                if (col < 0 || col >= r->width) continue;
                for (int i = 0; i < KH; i++) sa[i * KW + j] += dyrow[t] * x[row + col + (ptrdiff_t)i * r->ir];
            }
        }
    }
    for (int q = 0; q < KH * KW; q++) va[q] += acc[q];
}

/* The same for any one row oh and the taps [qa, qb) of its rows inside x, tap by tap over the row */
static inline __attribute__((always_inline)) void G(wgrad_row_k)(G(vec) * va, real *sa, const real *dy, const real *x,
                                                                 const cnn_conv2d *g, dw_row r, int oh, int qa, int qb,
                                                                 const int S)
{
    ptrdiff_t in_off, w_off;
    dw_forward_rows(&r, g, oh, &in_off, &w_off);
    long ta = r.ta, tb = r.tb;
    if (tb - ta < VLEN) ta = tb = 0;
    G(mask) tail = (G(mask)){PASTE2(DW_IOTA, VLEN)} >= (G(mask)){0} + (int)((VLEN - (tb - ta) % VLEN) % VLEN);
    const real *dyrow = dy + (size_t)oh * g->ow;
    int lo = (int)w_off > qa ? (int)w_off : qa, hi = (int)w_off + r.rows * g->kw;
    hi = hi < qb ? hi : qb;
    for (int q = lo; q < hi; q++) {
        int k = (q - (int)w_off) / g->kw, j = q % g->kw;
        ptrdiff_t row = in_off + (ptrdiff_t)k * r.ir; /* x's row of tap q */
        G(vec) acc = (G(vec)){0};
        for (long t = ta; t < tb; t += VLEN) {
            long t0 = t + VLEN <= tb ? t : tb - VLEN;
            G(vec) d = G(load)(dyrow + t0), v = G(loads)(x + (row + r.c0 + (ptrdiff_t)j * r.ic + t0 * r.s), S, r.s);
            acc += t0 == t ? d * v : (G(vec))((G(mask))(d * v) & tail);
        }
        va[q - qa] += acc;
        for (long t = 0; t < r.n; t++) {
            if (t == ta) t = tb;
            if (t >= r.n) break;
            long col = r.c0 + t * r.s + (long)j * r.ic;
            if (col >= 0 && col < r.width) sa[q - qa] += dyrow[t] * x[row + col];
        }
    }
}

/* va, sa (qb - qa) += the taps [qa, qb) of one (dy (OH, OW), x (H, W)) plane pair: rows whose taps all lie
 * inside x with 3x3 and 5x5 windows at stride 1 or 2 in registers, the rest tap by tap */
static void G(wgrad_plane)(G(vec) * va, real *sa, const real *dy, const real *x, const cnn_conv2d *g, int qa, int qb)
{
    int k = g->kh == g->kw && (g->kh == 3 || g->kh == 5) && g->sw <= 2 && qa == 0 && qb == g->kh * g->kw ? g->kh : 0;
    int oa = 0, ob = 0;
    if (k) dw_full_rows(g, &oa, &ob);
    dw_row r;
    dw_forward_cols(&r, g);
    for (int oh = 0; oh < g->oh; oh++) {
        if (oh == oa && oa < ob) {
            if (k == 3 && g->sw == 1) G(wgrad_full)(va, sa, dy, x, g, &r, oa, ob, 1, 3, 3);
            else if (k == 3) G(wgrad_full)(va, sa, dy, x, g, &r, oa, ob, 2, 3, 3);
            else if (g->sw == 1) G(wgrad_full)(va, sa, dy, x, g, &r, oa, ob, 1, 5, 5);
            else G(wgrad_full)(va, sa, dy, x, g, &r, oa, ob, 2, 5, 5);
            oh = ob - 1;
        } else if (g->sw == 1) G(wgrad_row_k)(va, sa, dy, x, g, r, oh, qa, qb, 1);
        else if (g->sw == 2) G(wgrad_row_k)(va, sa, dy, x, g, r, oh, qa, qb, 2);
        else G(wgrad_row_k)(va, sa, dy, x, g, r, oh, qa, qb, 0);
    }
}

/* Σ of a plane of count reals: in VLEN lanes, then the rest */
static real G(plane_sum)(const real *p, size_t count)
{
    G(vec) acc = (G(vec)){0};
    size_t i = 0;
    for (; i + VLEN <= count; i += VLEN) acc += G(load)(p + i);
    real rest = 0;
    for (; i < count; i++) rest += p[i];
    return G(hsum)(acc) + rest;
}

/* dw (KH, KW) [+]= Σ_n dy[n] ⋆ x[n] for one output channel o of input channel c, and db (one real; NULL skips
 * it) [+]= Σ_n Σ dy[n], their sums over the batch in sample order, DW_TAPS taps at a time; with dx, also dx[n]
 * (H, W) = the input gradient of channel c from its m output channels dyg[n] (m, OH, OW) and their weights
 * w (m, KH, KW): each sample's dy is read once from memory for all three. dy, dyg: sample 0's planes,
 * OC·OH·OW apart; x, dx: sample 0's plane, C·H·W apart. */
#define DW_TAPS 32
static void G(dw_backward_channel)(real *dx, real *dw, real *db, const real *dy, const real *dyg, const real *x,
                                   const real *w, int m, int accumulate, const cnn_conv2d *g)
{
    ptrdiff_t xs = (ptrdiff_t)g->c * g->h * g->w, ys = (ptrdiff_t)g->oc * g->oh * g->ow;
    int kk = g->kh * g->kw;
    real bsum = 0;
    for (int qa = 0; qa < kk; qa += DW_TAPS) {
        int qb = kk - qa < DW_TAPS ? kk : qa + DW_TAPS;
        G(vec) va[DW_TAPS];
        real sa[DW_TAPS];
        for (int q = 0; q < qb - qa; q++) va[q] = (G(vec)){0}, sa[q] = 0;
        for (int n = 0; n < g->n; n++) {
            if (dx && qa == 0) G(dw_input_grad_plane)(dx + n * xs, dyg + n * ys, w, m, g);
            G(wgrad_plane)(va, sa, dy + n * ys, x + n * xs, g, qa, qb);
            if (db && qa == 0) bsum += G(plane_sum)(dy + n * ys, (size_t)g->oh * g->ow);
        }
        for (int q = 0; q < qb - qa; q++) {
            real s = G(hsum)(va[q]) + sa[q];
            dw[qa + q] = accumulate ? dw[qa + q] + s : s;
        }
    }
    if (db) *db = accumulate ? *db + bsum : bsum;
}
#undef DW_TAPS
#undef DW_ROW_TAPS

#undef G
#undef VLEN
#undef real
#undef INSTANCE_APPLY
#undef INSTANCE_ARG3
#undef INSTANCE_ARG2
#undef INSTANCE_ARG1
#undef INSTANCE
