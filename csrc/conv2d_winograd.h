/* conv2d_winograd.h: conv2d's Winograd path for 3x3 convolutions at stride 1 (F(2x2, 3x3), Lavin and Gray 2016),
 * included by conv2d.c once per real type (K, real, and its helpers wino_geo, wino_layout, K(parallel) in scope).
 *
 * A 2x2 block of outputs (a tile) is Aᵀ [U ⊙ V] A summed over input channels, U = G g Gᵀ the 4x4 transform
 * of a 3x3 kernel and V = Bᵀ d B that of the tile's 4x4 input patch d: 16 multiplies per tile and channel
 * pair where the direct sum takes 36. Per block of T tiles the multiplies are 16 gemms, element e of the
 * transforms: M[e] (CO, T) = U[e] (CO, CI) · V[e] (CI, T). The input gradient is the same convolution of dy
 * with the kernel turned 180 degrees and its channels swapped (padding 2 - p); the weight gradient sums, per
 * element, dU[e] (CO, CI) += (A dyₜ Aᵀ)[e] (CO, T) · V[e]ᵀ over the tiles, and dw = Gᵀ dU G.
 * Error (float32 against float64 PyTorch, 64 -> 64 channels, 30x30, tests/test_conv2d_winograd.py): 2.7e-7
 * relative in norm for y, dx and dw, as the direct path's; per output, at most 1.6e-7 of Σ|x|·|w| on normal data
 * and 2.4e-6 on data spanning 8 decades (the direct path: 1.1e-7 and 6.7e-7), as the transforms add and subtract
 * a patch's large and small cells before the multiply. float64 stays near 1e-15.
 * Blocks are fixed by the sizes alone, each block is one thread's, and the weight gradient sums the blocks in
 * R fixed chunks, added in order, so results do not depend on the thread count. */

/* E[k] = row[col0 + 2k] and O[k] = row[col0 + 2k + 1] for k in [0, len), zero outside [0, iw) (NULL row: all zero):
 * a row of patches split into even and odd columns, so that the transforms read every operand at unit stride */
static inline __attribute__((always_inline)) void K(wino_split_row)(real *restrict E, real *restrict O, const real *row,
                                                                    int col0, int iw, int len)
{
    if (!row) {
        memset(E, 0, (size_t)len * sizeof(real));
        memset(O, 0, (size_t)len * sizeof(real));
        return;
    }
    /* pairs k < a start left of the row, k >= b end right of it */
    long m = (long)iw - col0, a = col0 >= 0 ? 0 : (1 - (long)col0) / 2, b = m <= 0 ? 0 : m / 2;
    a = a < len ? a : len;
    b = b < a ? a : b < len ? b : len;
    for (long k = 0; k < a; k++)
        E[k] = 0, O[k] = col0 + 2 * k + 1 >= 0 && col0 + 2 * k + 1 < iw ? row[col0 + 2 * k + 1] : 0;
    const real *p = row + col0 + 2 * a; /* a pointer: int indexes made gcc gather each cell on its own */
    real *e = E + a, *o = O + a;
    for (long k = 0; k < b - a; k++) {
        e[k] = p[2 * k];
        o[k] = p[2 * k + 1];
    }
    for (long k = b; k < len; k++) E[k] = col0 + 2 * k < iw ? row[col0 + 2 * k] : 0, O[k] = 0;
}

/* V (16, CI, T) = the input transforms of tiles [t0, t0 + nt): element e = 4a + b of tile t0 + j, channel c, at
 * V[e·vs + c·T + j]. A segment of a sample's tiles reads, per channel, its rows of the padded input split into
 * four phase planes P (2a + b) (rows 2u + a, columns 2v + b, as many columns as tiles in a row): with tiles
 * numbered ty·tw + tx, cell (i, s) of tile j is P (2(i mod 2) + s mod 2)[j + (i/2)·tw + s/2], so one loop at unit
 * stride runs over the whole segment. The junk tile ending each row (tx = tw - 1) reads the next row's first
 * cell, and the last one a zero after the planes. */
CNN_VECTOR_CLONES static void K(wino_input_tiles)(real *restrict V, real *restrict P, const real *restrict in,
                                                  const wino_geo *q, long t0, int nt)
{
    size_t plane = (size_t)q->ih * q->iw, vs = q->vs, L = (size_t)q->tw;
    long per = (long)q->th * q->tw;
    for (int j = 0; j < nt;) {
        long t = t0 + j, p0 = t % per;
        int n = (int)(t / per), len = per - p0 < nt - j ? (int)(per - p0) : nt - j;
        long u0 = p0 / q->tw, u1 = (p0 + len - 1) / q->tw + 2; /* the phase planes' rows [u0, u1) */
        size_t ps = (size_t)(u1 - u0) * L + 1, off = (size_t)(p0 - u0 * q->tw);
        long iy0 = 2 * u0 - q->pt < 0 ? 0 : 2 * u0 - q->pt, iy1 = 2 * u1 - q->pt < q->ih ? 2 * u1 - q->pt : q->ih;
        for (int c = 0; c < q->ci; c++) {
            const real *x = in + ((size_t)n * q->ci + c) * plane;
            if (c + WINO_AHEAD < q->ci && iy1 > iy0)
                wino_prefetch(x + WINO_AHEAD * plane + (size_t)iy0 * q->iw, (size_t)(iy1 - iy0) * q->iw * sizeof(real));
            for (int a = 0; a < 2; a++) {
                for (long u = u0; u < u1; u++) {
                    long iy = 2 * u + a - q->pt;
                    real *E = P + 2 * a * ps + (size_t)(u - u0) * L;
                    K(wino_split_row)(E, E + ps, iy >= 0 && iy < q->ih ? x + (size_t)iy * q->iw : NULL, -q->pl, q->iw,
                                      q->tw);
                }
                P[2 * a * ps + ps - 1] = P[(2 * a + 1) * ps + ps - 1] = 0;
            }
            const real *P0 = P + off, *P1 = P0 + ps, *P2 = P1 + ps, *P3 = P2 + ps;
            real *v = V + (size_t)c * q->T + j;
#pragma omp simd
            for (size_t k = 0; k < (size_t)len; k++) {
                real d[4][4], u[4][4];
                for (int h = 0; h < 2; h++) { /* rows 2h (planes 0, 1) and 2h + 1 (planes 2, 3) of the patch */
                    size_t r = k + h * L;
                    d[2 * h][0] = P0[r], d[2 * h][1] = P1[r], d[2 * h][2] = P0[r + 1], d[2 * h][3] = P1[r + 1];
                    d[2 * h + 1][0] = P2[r], d[2 * h + 1][1] = P3[r], d[2 * h + 1][2] = P2[r + 1];
                    d[2 * h + 1][3] = P3[r + 1];
                }
                for (int i = 0; i < 4; i++)
                    u[i][0] = d[i][0] - d[i][2], u[i][1] = d[i][1] + d[i][2], u[i][2] = d[i][2] - d[i][1],
                    u[i][3] = d[i][1] - d[i][3];
                for (int s = 0; s < 4; s++) {
                    v[(0 + s) * vs + k] = u[0][s] - u[2][s];
                    v[(4 + s) * vs + k] = u[1][s] + u[2][s];
                    v[(8 + s) * vs + k] = u[2][s] - u[1][s];
                    v[(12 + s) * vs + k] = u[1][s] - u[3][s];
                }
            }
        }
        j += len;
    }
}

/* out's 2x2 tile at rows y0 (and y0 + 1 when rows = 2), columns col (and col + 1 when cols = 2) = Aᵀ m A + bias,
 * m (4x4) at M[e·ms] */
static inline __attribute__((always_inline)) void K(wino_out_tile)(real *y0, ptrdiff_t ld, const real *m, size_t ms,
                                                                   real bias, int col, int rows, int cols)
{
    real t[2][4];
    for (int s = 0; s < 4; s++) {
        t[0][s] = m[s * ms] + m[(4 + s) * ms] + m[(8 + s) * ms];
        t[1][s] = m[(4 + s) * ms] - m[(8 + s) * ms] - m[(12 + s) * ms];
    }
    for (int i = 0; i < rows; i++) {
        y0[i * ld + col] = t[i][0] + t[i][1] + t[i][2] + bias;
        if (cols == 2) y0[i * ld + col + 1] = t[i][1] - t[i][2] - t[i][3] + bias;
    }
}

/* the output tiles [t0, t0 + nt) of out (N, CO, OH, OW) from M (16, CO, T), plus bias (CO) or NULL; a tile's row or
 * column past the output (OH or OW odd, and the junk tile ending each row) is dropped */
CNN_VECTOR_CLONES static void K(wino_output_tiles)(real *restrict out, const real *restrict M, const real *bias,
                                                   const wino_geo *q, long t0, int nt)
{
    size_t plane = (size_t)q->oh * q->ow, ms = q->ms;
    long per = (long)q->th * q->tw;
    for (int j = 0; j < nt;) {
        long t = t0 + j;
        int n = (int)(t / per), ty = (int)(t % per / q->tw), tx0 = (int)(t % q->tw);
        int len = q->tw - tx0 < nt - j ? q->tw - tx0 : nt - j, b = 0, rows = 2 * ty + 1 < q->oh ? 2 : 1;
        while (b < len && 2 * (tx0 + b) + 1 < q->ow) b++;
        for (int o = 0; o < q->co; o++) {
            real *y0 = out + ((size_t)n * q->co + o) * plane + (size_t)2 * ty * q->ow, bias_o = bias ? bias[o] : 0;
            const real *m = M + (size_t)o * q->T + j;
            if (rows == 2) {
#pragma omp simd
                for (int k = 0; k < b; k++) K(wino_out_tile)(y0, q->ow, m + k, ms, bias_o, 2 * (tx0 + k), 2, 2);
            } else {
#pragma omp simd
                for (int k = 0; k < b; k++) K(wino_out_tile)(y0, q->ow, m + k, ms, bias_o, 2 * (tx0 + k), 1, 2);
            }
            if (b < len && 2 * (tx0 + b) < q->ow)
                K(wino_out_tile)(y0, q->ow, m + b, ms, bias_o, 2 * (tx0 + b), rows, 1);
        }
        j += len;
    }
}

/* Z (16, CO, T) = A dy Aᵀ for the output tiles [t0, t0 + nt) of dy (N, CO, OH, OW), its cells past the output zero:
 * the gradient of the loss with respect to each tile's M. Rows split as wino_split_row's (4 of tw). */
CNN_VECTOR_CLONES static void K(wino_dy_tiles)(real *restrict Z, real *restrict rows, const real *restrict dy,
                                               const wino_geo *q, long t0, int nt)
{
    size_t plane = (size_t)q->oh * q->ow, zs = q->ms, rl = (size_t)q->tw;
    long per = (long)q->th * q->tw;
    for (int j = 0; j < nt;) {
        long t = t0 + j;
        int n = (int)(t / per), ty = (int)(t % per / q->tw), tx0 = (int)(t % q->tw);
        int len = q->tw - tx0 < nt - j ? q->tw - tx0 : nt - j;
        for (int o = 0; o < q->co; o++) {
            const real *r0 = dy + ((size_t)n * q->co + o) * plane + (size_t)2 * ty * q->ow;
            if (o + WINO_AHEAD < q->co)
                wino_prefetch(r0 + WINO_AHEAD * plane, (size_t)(2 * ty + 1 < q->oh ? 2 : 1) * q->ow * sizeof(real));
            K(wino_split_row)(rows, rows + rl, r0, 2 * tx0, q->ow, len);
            K(wino_split_row)(rows + 2 * rl, rows + 3 * rl, 2 * ty + 1 < q->oh ? r0 + q->ow : NULL, 2 * tx0, q->ow,
                              len);
            real *z = Z + (size_t)o * q->T + j;
#pragma omp simd
            for (int k = 0; k < len; k++) {
                real u[2][4];
                for (int i = 0; i < 2; i++) {
                    real d0 = rows[2 * i * rl + k], d1 = rows[(2 * i + 1) * rl + k];
                    u[i][0] = d0, u[i][1] = d0 + d1, u[i][2] = d0 - d1, u[i][3] = -d1;
                }
                for (int s = 0; s < 4; s++) {
                    z[(size_t)s * zs + k] = u[0][s];
                    z[(size_t)(4 + s) * zs + k] = u[0][s] + u[1][s];
                    z[(size_t)(8 + s) * zs + k] = u[0][s] - u[1][s];
                    z[(size_t)(12 + s) * zs + k] = -u[1][s];
                }
            }
        }
        j += len;
    }
}

/* U (16, CO, CI) = G g Gᵀ per kernel g: g = w[o, c] (w (CO, CI, 3, 3)), or with flip the input gradient's,
 * g = w[c, o] turned 180 degrees (w (CI, CO, 3, 3)) */
static void K(wino_weights)(real *U, const real *w, int co, int ci, int flip)
{
    size_t us = (size_t)co * ci;
    for (int o = 0; o < co; o++)
        for (int c = 0; c < ci; c++) {
            const real *k = w + ((flip ? (size_t)c * co + o : (size_t)o * ci + c) * 9);
            real g[3][3], t[4][3];
            for (int i = 0; i < 9; i++) g[i / 3][i % 3] = flip ? k[8 - i] : k[i];
            for (int s = 0; s < 3; s++) {
                t[0][s] = g[0][s];
                t[1][s] = (g[0][s] + g[1][s] + g[2][s]) / 2;
                t[2][s] = (g[0][s] - g[1][s] + g[2][s]) / 2;
                t[3][s] = g[2][s];
            }
            real *u = U + (size_t)o * ci + c;
            for (int a = 0; a < 4; a++) {
                u[(4 * a + 0) * us] = t[a][0];
                u[(4 * a + 1) * us] = (t[a][0] + t[a][1] + t[a][2]) / 2;
                u[(4 * a + 2) * us] = (t[a][0] - t[a][1] + t[a][2]) / 2;
                u[(4 * a + 3) * us] = t[a][2];
            }
        }
}

/* out (N, CO, OH, OW) = the convolution q describes of in (N, CI, IH, IW) by U (wino_weights), plus bias or NULL;
 * chunk r of q->R takes blocks [blocks·r/R, blocks·(r+1)/R) in its own slice of work */
static void K(wino_conv)(real *out, const real *in, const real *U, const real *bias, real *work, const wino_geo *q,
                         int parallel)
{
    CNN_FOR(parallel, int, r, q->R, {
        real *V = work + r * wino_chunk_size(q), *M = V + 16 * q->vs, *rows = M + 16 * q->ms;
        for (long blk = q->blocks * r / q->R; blk < q->blocks * (r + 1) / q->R; blk++) {
            long t0 = blk * q->T;
            int nt = q->tiles - t0 < q->T ? (int)(q->tiles - t0) : q->T;
            K(wino_input_tiles)(V, rows, in, q, t0, nt);
            for (int e = 0; e < 16; e++)
                K(gemm)(M + e * q->ms, U + (size_t)e * q->co * q->ci, V + e * q->vs, q->co, nt, q->ci, q->ci, 1, q->T,
                        1, q->T, 0);
            K(wino_output_tiles)(out, M, bias, q, t0, nt);
        }
    });
}

/* x (N, C, H, W), w (OC, C, 3, 3), b (OC) or NULL → y (N, OC, OH, OW) */
static void K(wino_forward)(real *y, const real *x, const real *w, const real *b, real *scratch, const cnn_conv2d *g)
{
    wino_geo q = wino_forward_geo(g);
    K(wino_weights)(scratch, w, g->oc, g->c, 0);
    K(wino_conv)(y, x, scratch, b, scratch + wino_weights_size(g), &q, K(parallel)(g));
}

/* dy (N, OC, OH, OW), x, w as the forward had them → dw (OC, C, 3, 3) [+]=, dx (N, C, H, W) overwritten unless NULL.
 * Chunk r's dU (16, OC, C) sums its blocks in order; the chunks are added in order, then dw = Gᵀ dU G. */
static void K(wino_backward)(real *dx, real *dw, const real *dy, const real *x, const real *w, real *scratch,
                             const cnn_conv2d *g, int accumulate)
{
    wino_geo q = wino_forward_geo(g);
    size_t us = wino_weights_size(g) / 16;
    real *work = scratch + wino_weights_size(g), *part = work + wino_work_size(g);
    CNN_FOR(K(parallel)(g), int, r, q.R, {
        real *V = work + r * wino_chunk_size(&q), *Z = V + 16 * q.vs, *rows = Z + 16 * q.ms, *dU = part + r * 16 * us;
        long b0 = q.blocks * r / q.R;
        for (long blk = b0; blk < q.blocks * (r + 1) / q.R; blk++) {
            long t0 = blk * q.T;
            int nt = q.tiles - t0 < q.T ? (int)(q.tiles - t0) : q.T;
            K(wino_input_tiles)(V, rows, x, &q, t0, nt);
            K(wino_dy_tiles)(Z, rows, dy, &q, t0, nt);
            for (int e = 0; e < 16; e++) /* dU[e] (OC, C) [+]= Z[e] (OC, nt) · V[e]ᵀ */
                K(gemm)(dU + e * us, Z + e * q.ms, V + e * q.vs, q.co, q.ci, nt, q.T, 1, 1, q.T, q.ci, blk > b0);
        }
    });
    CNN_FOR(us * q.R * 16 > CNN_PARALLEL_WORK, size_t, k, us, {
        real d[4][4], t[3][4];
        for (int e = 0; e < 16; e++) {
            real acc = part[e * us + k];
            for (int r = 1; r < q.R; r++) acc += part[(r * 16 + e) * us + k];
            d[e / 4][e % 4] = acc;
        }
        for (int s = 0; s < 4; s++) { /* Gᵀ dU G: G's columns are (1, ½, ½, 0), (0, ½, -½, 0), (0, ½, ½, 1) */
            t[0][s] = d[0][s] + (d[1][s] + d[2][s]) / 2;
            t[1][s] = (d[1][s] - d[2][s]) / 2;
            t[2][s] = (d[1][s] + d[2][s]) / 2 + d[3][s];
        }
        real *out = dw + k * 9;
        for (int i = 0; i < 3; i++) {
            real v[3] = {t[i][0] + (t[i][1] + t[i][2]) / 2, (t[i][1] - t[i][2]) / 2, (t[i][1] + t[i][2]) / 2 + t[i][3]};
            for (int j = 0; j < 3; j++) out[i * 3 + j] = accumulate ? out[i * 3 + j] + v[j] : v[j];
        }
    });
    if (!dx) return;
    wino_geo p = wino_input_grad_geo(g);
    K(wino_weights)(scratch, w, g->c, g->oc, 1);
    K(wino_conv)(dx, dy, scratch, NULL, work, &p, K(parallel)(g));
}
