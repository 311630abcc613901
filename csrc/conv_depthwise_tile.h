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

/* Output t of row r (dw_row, conv_depthwise.c): init + the taps whose column falls inside the input row */
static inline real G(element)(const real *in, const real *w, const dw_row *r, long t, real init)
{
    real acc = init;
    for (int p = 0; p < r->planes; p++)
        for (int k = 0; k < r->rows; k++)
            for (int l = 0; l < r->cols; l++) {
                long col = r->c0 + t * r->s + (long)l * r->ic;
                if (col >= 0 && col < r->width)
                    acc += w[p * r->wp + k * r->wr + l * r->wc] * in[p * r->ip + k * r->ir + col];
            }
    return acc;
}

/* out[t·os] = init + Σ taps, t < n: the vector at output t (all its taps inside the row) */
static inline __attribute__((always_inline)) void
G(row_vector)(real *out, const real *in, const real *w, const dw_row *r, long t, real init, const int S, const int COLS)
{
    int cols = COLS ? COLS : r->cols;
    G(vec) acc = (G(vec)){0} + init;
    const real *base = in + (r->c0 + t * r->s);
    for (int p = 0; p < r->planes; p++)
        for (int k = 0; k < r->rows; k++) {
            const real *row = base + p * r->ip + k * r->ir, *wk = w + p * r->wp + k * r->wr;
            for (int l = 0; l < cols; l++) acc += wk[l * r->wc] * G(loads)(row + l * r->ic, S, r->s);
        }
    if (r->os == 1) {
        G(store)(out + t, acc);
        return;
    }
    for (int q = 0; q < VLEN; q++) out[(t + q) * r->os] = acc[q];
}

static inline __attribute__((always_inline)) void G(row_k)(real *out, const real *in, const real *w, const dw_row *r,
                                                           real init, const int S, const int COLS)
{
    long ta, tb, t = 0;
    dw_interior(r, &ta, &tb);
    if (tb - ta >= VLEN) {
        for (; t < ta; t++) out[t * r->os] = G(element)(in, w, r, t, init);
        for (; t < tb; t += VLEN) G(row_vector)(out, in, w, r, t + VLEN <= tb ? t : tb - VLEN, init, S, COLS);
        t = tb;
    }
    for (; t < r->n; t++) out[t * r->os] = G(element)(in, w, r, t, init);
}

/* one row, with the common windows (3 and 5 wide, stride 1 or 2) unrolled */
static void G(row)(real *out, const real *in, const real *w, const dw_row *r, real init)
{
    if (r->s == 1 && r->cols == 3) G(row_k)(out, in, w, r, init, 1, 3);
    else if (r->s == 1 && r->cols == 5) G(row_k)(out, in, w, r, init, 1, 5);
    else if (r->s == 1) G(row_k)(out, in, w, r, init, 1, 0);
    else if (r->s == 2 && r->cols == 3) G(row_k)(out, in, w, r, init, 2, 3);
    else if (r->s == 2 && r->cols == 5) G(row_k)(out, in, w, r, init, 2, 5);
    else if (r->s == 2) G(row_k)(out, in, w, r, init, 2, 0);
    else G(row_k)(out, in, w, r, init, 0, 0);
}

/* y (OH, OW) = bias + the correlation of x (H, W) with w (KH, KW): one output channel of one sample */
static void G(dw_forward_plane)(real *y, const real *x, const real *w, real bias, const cnn_conv2d *g)
{
    for (int oh = 0; oh < g->oh; oh++) {
        dw_row r;
        ptrdiff_t in_off, w_off;
        dw_forward_row(&r, g, oh, &in_off, &w_off);
        G(row)(y + (size_t)oh * g->ow, x + in_off, w + w_off, &r, bias);
    }
}

/* dx (H, W) = Σ over the m output channels of input channel c of dy (m, OH, OW) correlated with w (m, KH, KW)
 * transposed, one phase of columns (those ≡ b mod SW) at a time */
static void G(dw_input_grad_plane)(real *dx, const real *dy, const real *w, int m, const cnn_conv2d *g)
{
    for (int b = 0; b < g->sw && b < g->w; b++) {
        dw_row r;
        ptrdiff_t w_col;
        dw_input_cols(&r, g, m, b, &w_col);
        for (int ih = 0; ih < g->h; ih++) {
            ptrdiff_t in_off, w_off = w_col;
            dw_input_rows(&r, g, ih, &in_off, &w_off);
            G(row)(dx + (size_t)ih * g->w + b, dy + in_off, w + w_off, &r, 0);
        }
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
    long ta, tb;
    dw_interior(r, &ta, &tb);
    if (tb - ta < VLEN) ta = tb = 0;
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
        for (long t = 0; t < r->n; t++) {
            if (t == ta) t = tb;
            if (t >= r->n) break;
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
                                                                 const cnn_conv2d *g, int oh, int qa, int qb,
                                                                 const int S)
{
    dw_row r;
    ptrdiff_t in_off, w_off;
    dw_forward_row(&r, g, oh, &in_off, &w_off);
    long ta, tb;
    dw_interior(&r, &ta, &tb);
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
    for (int oh = 0; oh < g->oh; oh++) {
        if (oh == oa && oa < ob) {
            dw_row r;
            ptrdiff_t in_off, w_off;
            dw_forward_row(&r, g, oa, &in_off, &w_off);
            if (k == 3 && g->sw == 1) G(wgrad_full)(va, sa, dy, x, g, &r, oa, ob, 1, 3, 3);
            else if (k == 3) G(wgrad_full)(va, sa, dy, x, g, &r, oa, ob, 2, 3, 3);
            else if (g->sw == 1) G(wgrad_full)(va, sa, dy, x, g, &r, oa, ob, 1, 5, 5);
            else G(wgrad_full)(va, sa, dy, x, g, &r, oa, ob, 2, 5, 5);
            oh = ob - 1;
        } else if (g->sw == 1) G(wgrad_row_k)(va, sa, dy, x, g, oh, qa, qb, 1);
        else if (g->sw == 2) G(wgrad_row_k)(va, sa, dy, x, g, oh, qa, qb, 2);
        else G(wgrad_row_k)(va, sa, dy, x, g, oh, qa, qb, 0);
    }
}

/* dw (KH, KW) [+]= Σ_n dy[n] ⋆ x[n] for one output channel o of input channel c, its sums over the batch in
 * sample order, DW_TAPS taps at a time; with dx, also dx[n] (H, W) = the input gradient of channel c from its m
 * output channels dyg[n] (m, OH, OW) and their weights w (m, KH, KW), while the sample's dy is in cache.
 * dy, dyg: sample 0's planes, OC·OH·OW apart; x, dx: sample 0's plane, C·H·W apart. */
#define DW_TAPS 32
static void G(dw_backward_channel)(real *dx, real *dw, const real *dy, const real *dyg, const real *x, const real *w,
                                   int m, int accumulate, const cnn_conv2d *g)
{
    ptrdiff_t xs = (ptrdiff_t)g->c * g->h * g->w, ys = (ptrdiff_t)g->oc * g->oh * g->ow;
    int kk = g->kh * g->kw;
    for (int qa = 0; qa < kk; qa += DW_TAPS) {
        int qb = kk - qa < DW_TAPS ? kk : qa + DW_TAPS;
        G(vec) va[DW_TAPS];
        real sa[DW_TAPS];
        for (int q = 0; q < qb - qa; q++) va[q] = (G(vec)){0}, sa[q] = 0;
        for (int n = 0; n < g->n; n++) {
            if (dx && qa == 0) G(dw_input_grad_plane)(dx + n * xs, dyg + n * ys, w, m, g);
            G(wgrad_plane)(va, sa, dy + n * ys, x + n * xs, g, qa, qb);
        }
        for (int q = 0; q < qb - qa; q++) {
            real s = G(hsum)(va[q]) + sa[q];
            dw[qa + q] = accumulate ? dw[qa + q] + s : s;
        }
    }
}
#undef DW_TAPS

#undef G
#undef VLEN
#undef real
#undef INSTANCE_APPLY
#undef INSTANCE_ARG3
#undef INSTANCE_ARG2
#undef INSTANCE_ARG1
#undef INSTANCE
