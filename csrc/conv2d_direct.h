/* conv2d_direct.h: conv2d's direct path, included by conv2d.c once per real type (K, real, and its
 * helpers direct_layout, span, conv_chunks, CHUNK_BOUNDS, K(parallel) in scope).
 *
 * No im2col: a sample's input is copied once into phase planes (direct_geo, conv2d.c), and every tap
 * reads a window of them, so the forward is one gemm whose B rows are windows (conv_offset_gemm), the
 * weight gradient dot products of dy against the same windows (conv_offset_dots), and the input gradient,
 * per phase plane, the forward's gemm again on dy's zero-bordered copy with the kernel flipped: no columns
 * to build, and no col2im scatter. For small channel counts (16 to 64) im2col's copies cost about as much as
 * the multiply-adds; here a copy of the input and of dy per sample remain. Sums keep a fixed order per
 * output, and a sample is one thread's, so results do not depend on the thread count. */

/* xph (C, sh, sw, hq, wq) = the phase planes of x (C, H, W), zero where they fall in the padding, and
 * DIRECT_SLACK + msj zeros after them */
CNN_VECTOR_CLONES static void K(direct_phases)(real *restrict xph, const real *restrict x, const cnn_conv2d *g,
                                               const direct_geo *d)
{
    for (int c = 0; c < g->c; c++)
        for (int a = 0; a < g->sh; a++)
            for (int b = 0; b < g->sw; b++) {
                real *p = xph + ((size_t)(c * g->sh + a) * g->sw + b) * d->plane;
                int lo, hi;
                span(d->wq, g->w, g->sw, b - g->pl, &lo, &hi);
                for (int u = 0; u < d->hq; u++) {
                    real *row = p + (size_t)u * d->wq;
                    long ih = (long)u * g->sh + a - g->pt;
                    if (ih < 0 || ih >= g->h) {
                        memset(row, 0, (size_t)d->wq * sizeof(real));
                        continue;
                    }
                    const real *src = x + ((size_t)c * g->h + ih) * g->w;
                    for (int v = 0; v < lo; v++) row[v] = 0;
                    /* the strides as constants, so that the copies vectorize (stride 2's took 2.4 ms of a
                     * 64->128 3x3 layer's 16 ms forward, as a scalar loop, at batch 16) */
                    if (g->sw == 1)
#pragma omp simd
                        for (long v = lo; v < hi; v++) row[v] = src[v + b - g->pl];
                    else if (g->sw == 2)
#pragma omp simd
                        for (long v = lo; v < hi; v++) row[v] = src[2 * v + b - g->pl];
                    else
                        for (long v = lo; v < hi; v++) row[v] = src[v * g->sw + b - g->pl];
                    for (int v = hi; v < d->wq; v++) row[v] = 0;
                }
            }
    memset(xph + direct_planes_size(g, d), 0, ((size_t)d->msj + DIRECT_SLACK) * sizeof(real));
}

/* dyp (OC, top + OH + msi, wq) = dy (OC, OH, OW) at row top, zero around it, then DIRECT_SLACK zeros */
CNN_VECTOR_CLONES static void K(direct_dy_copy)(real *restrict dyp, const real *restrict dy, const cnn_conv2d *g,
                                                const direct_geo *d)
{
    for (int o = 0; o < g->oc; o++) {
        real *p = dyp + (size_t)o * d->dplane;
        memset(p, 0, (size_t)d->top * d->wq * sizeof(real));
        p += (size_t)d->top * d->wq;
        for (int oh = 0; oh < g->oh; oh++, p += d->wq) {
            const real *src = dy + ((size_t)o * g->oh + oh) * g->ow;
#pragma omp simd
            for (int v = 0; v < g->ow; v++) p[v] = src[v];
            for (int v = g->ow; v < d->wq; v++) p[v] = 0;
        }
        memset(p, 0, (size_t)d->msi * d->wq * sizeof(real));
    }
    memset(dyp + (size_t)g->oc * d->dplane, 0, DIRECT_SLACK * sizeof(real));
}

/* dx (C, H, W) = the cells of the phase planes dxph that are not padding; cells no tap reaches (past the
 * planes) get 0 */
CNN_VECTOR_CLONES static void K(direct_unphase)(real *restrict dx, const real *restrict dxph, const cnn_conv2d *g,
                                                const direct_geo *d)
{
    for (int c = 0; c < g->c; c++)
        for (int ih = 0; ih < g->h; ih++) {
            real *row = dx + ((size_t)c * g->h + ih) * g->w;
            long r = (long)ih + g->pt, u = r / g->sh;
            int a = (int)(r % g->sh);
            if (u >= d->hq) {
                memset(row, 0, (size_t)g->w * sizeof(real));
                continue;
            }
            const real *p = dxph + (size_t)(c * g->sh + a) * g->sw * d->plane + (size_t)u * d->wq;
            if (g->sw == 1) { /* one plane: the row's cells from column pl on, those past wq zero */
                int w = d->wq - g->pl < g->w ? d->wq - g->pl : g->w;
#pragma omp simd
                for (int iw = 0; iw < w; iw++) row[iw] = p[iw + g->pl];
                for (int iw = w < 0 ? 0 : w; iw < g->w; iw++) row[iw] = 0;
                continue;
            }
            for (int b = 0; b < g->sw; b++) { /* the row's cells in plane b: every sw-th, from the first */
                const real *pb = p + (size_t)b * d->plane;
                int iw = (b - g->pl % g->sw + g->sw) % g->sw;
                for (long v = ((long)iw + g->pl) / g->sw; iw < g->w; iw += g->sw, v++) row[iw] = v < d->wq ? pb[v] : 0;
            }
        }
}

/* y (OC, OH, OW) at positions [p0, p0 + np) (flat over rows of wq, as the planes) = the block yq (OC, np) +
 * b (OC) or NULL, its junk columns (ow >= OW) dropped: run by run along the output rows */
CNN_VECTOR_CLONES static void K(direct_compact)(real *restrict y, const real *restrict yq, const real *b,
                                                const cnn_conv2d *g, const direct_geo *d, int p0, int np)
{
    size_t ohw = (size_t)g->oh * g->ow;
    for (int p = p0; p < p0 + np;) {
        int oh = p / d->wq, ow = p % d->wq, end = oh * d->wq + g->ow < p0 + np ? oh * d->wq + g->ow : p0 + np;
        for (int o = 0; o < g->oc && ow < g->ow; o++) {
            real bias = b ? b[o] : 0, *out = y + o * ohw + (size_t)oh * g->ow + ow;
            const real *src = yq + (size_t)o * np + (p - p0);
#pragma omp simd
            for (int q = 0; q < end - p; q++) out[q] = src[q] + bias;
        }
        p = (oh + 1) * d->wq;
    }
}

/* Per phase plane (a, b) in order, its input gradient as a forward gemm over dy's copy: weights
 * wb (C, OC·taps), wb[c, o·taps + t] = w[o, c, i_t, j_t], and offs (OC·taps), the window of dy's copy that
 * tap t of output channel o reads, relative to the copy's row top: o·dplane - si·wq - sj. */
static void K(direct_input_grad_weights)(real *wb, ptrdiff_t *offs, const real *w, const cnn_conv2d *g,
                                         const direct_geo *d)
{
    int kk = g->kh * g->kw;
    for (int a = 0; a < g->sh; a++)
        for (int b = 0; b < g->sw; b++) {
            int nt = phase_taps(g, a, b), t = 0;
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++) {
                    if (i * g->dil_h % g->sh != a || j * g->dil_w % g->sw != b) continue;
                    int si = i * g->dil_h / g->sh, sj = j * g->dil_w / g->sw;
                    for (int o = 0; o < g->oc; o++) {
                        offs[o * nt + t] = (ptrdiff_t)o * d->dplane - (ptrdiff_t)si * d->wq - sj;
                        for (int c = 0; c < g->c; c++)
                            wb[(size_t)c * g->oc * nt + o * nt + t] = w[((size_t)o * g->c + c) * kk + i * g->kw + j];
                    }
                    t++;
                }
            wb += (size_t)g->c * g->oc * nt;
            offs += (size_t)g->oc * nt;
        }
}

/* Ask for the lines that the forward will next write and read while a block's gemm runs, as the hardware does
 * not: y's lines that direct_compact will write for block [p0, p0 + np) of np_all positions (128 channels' runs
 * of a few rows each, out of the stream prefetcher's reach: their misses made the compact 13% of a 64->128
 * layer's forward), and over the second half of the blocks, the next sample's input xn, which direct_phases reads
 * next (into L2, where it displaces the planes' rows the first blocks read: spread over all blocks, it was itself
 * displaced before its use, and the phase copy waited on it). */
static inline void K(direct_prefetch)(real *y, const cnn_conv2d *g, const direct_geo *d, int p0, int np, const real *xn,
                                      int np_all)
{
    size_t ohw = (size_t)g->oh * g->ow;
    for (int p = p0; p < p0 + np; p = (p / d->wq + 1) * d->wq) {
        int oh = p / d->wq, ow = p % d->wq, end = oh * d->wq + g->ow < p0 + np ? oh * d->wq + g->ow : p0 + np;
        for (int o = 0; o < g->oc && ow < g->ow; o++) {
            const real *out = y + o * ohw + (size_t)oh * g->ow + ow;
            for (uintptr_t l = (uintptr_t)out & ~(uintptr_t)63; l <= (uintptr_t)(out + (end - p) - 1); l += 64)
                __builtin_prefetch((const void *)l, 1, 3);
        }
    }
    if (!xn) return;
    size_t xs = (size_t)g->c * g->h * g->w, half = (size_t)np_all / 2;
    if ((size_t)p0 + np <= half) return;
    size_t lo = (size_t)p0 < half ? 0 : xs * (p0 - half) / (np_all - half),
           hi = xs * (p0 + np - half) / (np_all - half);
    for (uintptr_t l = (uintptr_t)(xn + lo) & ~(uintptr_t)63; l < (uintptr_t)(xn + hi); l += 64)
        __builtin_prefetch((const void *)l, 0, 2);
}

/* The forward's layout: direct_layout's, but a plane row's right padding is the next row's left padding (both
 * zeros; the last row's is the next plane's, or the slack), so a row holds s fewer cells, s the zeros the two
 * share, and so does each row's junk: a 5x5 layer padded by 2 computes 58 columns per row of 56, not 60. A tap reading
 * past its row's end reads the next row's left padding, zero as the cell it stands for. The backward keeps
 * direct_layout's rows (its input gradient reads dy's copy past the rows' ends). */
static direct_geo K(direct_forward_layout)(const cnn_conv2d *g)
{
    direct_geo d = direct_layout(g);
    int s = d.msj;
    for (int b = 0; b < g->sw; b++) {
        int lo, hi;
        span(d.wq, g->w, g->sw, b - g->pl, &lo, &hi);
        s = lo < s ? lo : s;
        s = d.wq - hi < s ? d.wq - hi : s;
    }
    d.wq -= s;
    d.plane = (size_t)d.hq * d.wq;
    return d;
}

/* Output positions a forward gemm call covers: its block of y with junk columns (OC, DIRECT_BLOCK) stays in L1
 * or L2 until direct_compact moves it into y, where a whole sample's (3.3 MB for a 64-channel 112x112 output)
 * went out to memory and back. A multiple of every instance's register tile width (48, 24, 12). */
#define DIRECT_BLOCK 96

/* Whether each thread of a CNN_FOR region opened here can keep buffer number team_rank() of R: the team has at
 * most R threads. Not inside the caller's own parallel region, where CNN_FOR runs serially and the thread's number
 * is the caller's, unrelated to R. */
#ifdef _OPENMP
static inline int K(team_fits)(int R) { return !omp_in_parallel() && omp_get_max_threads() <= R; }
static inline int K(team_rank)(void) { return omp_get_thread_num(); }
#else
static inline int K(team_fits)(int R) { return R >= 1; }
static inline int K(team_rank)(void) { return 0; }
#endif

/* x (N, C, H, W), w (OC, C, KH, KW), b (OC) or NULL → y (N, OC, OH, OW): per sample and block of positions, y
 * with junk columns (OC, block) = w (OC, C·KH·KW) · the taps' windows, then its real columns plus the bias
 * into y. */
static void K(direct_forward)(real *y, const real *x, const real *w, const real *b, real *scratch, ptrdiff_t *offs,
                              const cnn_conv2d *g)
{
    direct_geo d = K(direct_forward_layout)(g);
    int ck = g->c * g->kh * g->kw, np = g->oh * d.wq, R = conv_chunks(g);
    size_t xs = (size_t)g->c * g->h * g->w, ys = (size_t)g->oc * g->oh * g->ow;
    direct_forward_offsets(offs, g, &d);
    real *chunks = scratch + direct_shared_size(g);
    /* A thread keeps one chunk's buffers for all its samples when there are enough of them, so they stay in cache
     * from sample to sample, where 16 chunks' (1.7 MB each at 64 channels on 56x56) came from memory each time.
     * The forward sums nothing across samples: which buffer serves a sample changes no bit. */
    int own = K(team_fits)(R);
    CNN_FOR(K(parallel)(g), int, r, R, {
        CHUNK_BOUNDS(r, R, g->n, lo, hi);
        real *xph = chunks + (own ? K(team_rank)() : r) * (direct_region1(g) + direct_region2(g));
        real *yq = xph + direct_region1(g);
        for (int n = lo; n < hi; n++) {
            K(direct_phases)(xph, x + n * xs, g, &d);
            for (int p0 = 0; p0 < np; p0 += DIRECT_BLOCK) {
                int nb = np - p0 < DIRECT_BLOCK ? np - p0 : DIRECT_BLOCK;
                K(direct_prefetch)(y + n * ys, g, &d, p0, nb, n + 1 < hi ? x + (n + 1) * xs : NULL, np);
                K(conv_offset_gemm)(yq, nb, w, ck, xph + p0, offs, g->oc, nb, ck, 0);
                K(direct_compact)(y + n * ys, yq, b, g, &d, p0, nb);
            }
        }
    });
}

typedef real K(vec4) __attribute__((vector_size(4 * sizeof(real))));

/* dyt (2 + OH·wq + 2, OC) = dy (OC, OH, OW) transposed, zero in the junk columns and in two rows before and
 * after (window3_gemm reads them): the weight gradient's b operand.
 * 4x4 blocks go through registers (as gemm's pack_bt): one scalar store per element cost 7% of a 16-channel
 * backward. */
CNN_VECTOR_CLONES static void K(direct_dy_transpose)(real *restrict dyt, const real *restrict dy, const cnn_conv2d *g,
                                                     const direct_geo *d)
{
    size_t ohw = (size_t)g->oh * g->ow;
    memset(dyt, 0, 2 * (size_t)g->oc * sizeof(real));
    memset(dyt + (2 + (size_t)g->oh * d->wq) * g->oc, 0, 2 * (size_t)g->oc * sizeof(real));
    dyt += 2 * (size_t)g->oc;
    for (int oh = 0; oh < g->oh; oh++) {
        real *row = dyt + (size_t)oh * d->wq * g->oc;
        const real *src = dy + (size_t)oh * g->ow;
        int o = 0;
        for (; o + 4 <= g->oc; o += 4) {
            const real *r0 = src + o * ohw, *r1 = r0 + ohw, *r2 = r1 + ohw, *r3 = r2 + ohw;
            int ow = 0;
            for (; ow + 4 <= g->ow; ow += 4) {
                K(vec4) x0, x1, x2, x3;
                memcpy(&x0, r0 + ow, sizeof x0);
                memcpy(&x1, r1 + ow, sizeof x1);
                memcpy(&x2, r2 + ow, sizeof x2);
                memcpy(&x3, r3 + ow, sizeof x3);
                K(vec4)
                t0 = __builtin_shufflevector(x0, x1, 0, 4, 1, 5), t1 = __builtin_shufflevector(x0, x1, 2, 6, 3, 7);
                K(vec4)
                t2 = __builtin_shufflevector(x2, x3, 0, 4, 1, 5), t3 = __builtin_shufflevector(x2, x3, 2, 6, 3, 7);
                K(vec4)
                y0 = __builtin_shufflevector(t0, t2, 0, 1, 4, 5), y1 = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
                K(vec4)
                y2 = __builtin_shufflevector(t1, t3, 0, 1, 4, 5), y3 = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
                real *q = row + (size_t)ow * g->oc + o;
                memcpy(q, &y0, sizeof y0);
                memcpy(q + g->oc, &y1, sizeof y1);
                memcpy(q + 2 * g->oc, &y2, sizeof y2);
                memcpy(q + 3 * g->oc, &y3, sizeof y3);
            }
            for (; ow < g->ow; ow++)
                for (int l = 0; l < 4; l++) row[(size_t)ow * g->oc + o + l] = src[(o + l) * ohw + ow];
        }
        for (; o < g->oc; o++)
            for (int ow = 0; ow < g->ow; ow++) row[(size_t)ow * g->oc + o] = src[o * ohw + ow];
        memset(row + (size_t)g->ow * g->oc, 0, (size_t)d->msj * g->oc * sizeof(real));
    }
}

/* dy (N, OC, OH, OW), x, w as the forward had them → dw (OC, C, KH, KW) [+]=, dx (N, C, H, W) overwritten unless
 * NULL. Chunk r's weight gradient, transposed (C·KH·KW, OC), sums the taps' windows times dy transposed over
 * each sample's positions (junk ones meet zeros), then over the chunk's samples in order, and the chunks are
 * added in order; dx's phase planes are each a forward gemm of dy's copy. */
static void K(direct_backward)(real *dx, real *dw, const real *dy, const real *x, const real *w, real *scratch,
                               ptrdiff_t *offs, const cnn_conv2d *g, int accumulate)
{
    direct_geo d = direct_layout(g);
    int kk = g->kh * g->kw, ck = g->c * kk, R = conv_chunks(g), np = g->oh * d.wq;
    size_t xs = (size_t)g->c * g->h * g->w, ys = (size_t)g->oc * g->oh * g->ow;
    size_t wsize = (size_t)g->oc * ck, chunk = direct_region1(g) + direct_region2(g);
    ptrdiff_t *offs_b = offs + ck;
    real *wb = scratch;
    direct_forward_offsets(offs, g, &d);
    if (dx) K(direct_input_grad_weights)(wb, offs_b, w, g, &d);
    real *chunks = scratch + direct_shared_size(g), *part = chunks + R * chunk;
    CNN_FOR(K(parallel)(g), int, r, R, {
        CHUNK_BOUNDS(r, R, g->n, lo, hi);
        /* the planes, then the input gradient's; dy transposed, then dy's copy */
        real *xph = chunks + r * chunk, *dxph = xph, *dyt = xph + direct_region1(g), *dyp = dyt;
        real *dwt = part + r * wsize;
        const real *dy0 = dyp + (size_t)d.top * d.wq; /* dy's first row in its copy */
        for (int n = lo; n < hi; n++) {
            K(direct_phases)(xph, x + n * xs, g, &d);
            K(direct_dy_transpose)(dyt, dy + n * ys, g, &d);
            if (g->kw == 3 && g->sw == 1 && g->dil_w == 1) /* a row of taps, windows a cell apart */
                K(conv_window3_gemm)(dwt, g->oc, xph, offs, dyt, g->oc, ck / 3, g->oc, np, n > lo);
            else K(conv_window_gemm)(dwt, g->oc, xph, offs, dyt + 2 * g->oc, g->oc, ck, g->oc, np, n > lo);
            if (!dx) continue;
            K(direct_dy_copy)(dyp, dy + n * ys, g, &d);
            const real *wq = wb;
            const ptrdiff_t *oq = offs_b;
            for (int q = 0; q < d.ph; q++) {
                int kq = g->oc * phase_taps(g, q / g->sw, q % g->sw);
                size_t lo, hi;
                direct_phase_range(g, &d, q / g->sw, q % g->sw, &lo, &hi);
                if (hi > lo)
                    K(conv_offset_gemm)(dxph + (size_t)q * d.plane + lo, (ptrdiff_t)d.ph * d.plane, wq, kq, dy0 + lo,
                                        oq, g->c, (int)(hi - lo), kq, 0);
                wq += (size_t)g->c * kq;
                oq += kq;
            }
            K(direct_unphase)(dx + n * xs, dxph, g, &d);
        }
    });
    /* chunk 0's rows k (OC) gather the later chunks in order, contiguously, then go to dw's column k */
    CNN_FOR(wsize * R > CNN_PARALLEL_WORK, int, k, ck, {
        real *row = part + (size_t)k * g->oc;
        for (int r = 1; r < R; r++)
            for (int o = 0; o < g->oc; o++) row[o] += part[r * wsize + (size_t)k * g->oc + o];
        for (int o = 0; o < g->oc; o++) {
            real *e = dw + (size_t)o * ck + k;
            *e = accumulate ? *e + row[o] : row[o];
        }
    });
}
