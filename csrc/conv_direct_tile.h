/* conv_direct_tile.h: the two inner kernels of conv2d's direct path, included by conv_direct.c once per
 * (real type, ISA) as gemm_tile.h is (INSTANCE = (real, VLEN, suffix); this file undefines it).
 *
 * Both read an operand B whose row k is a shifted window of one buffer: B(k, j) = b[offs[k] + j]. A
 * convolution's tap (c, i, j) over a zero-padded input plane, laid out with the output's positions flat,
 * is such a row, so neither kernel needs im2col's copy of the input per tap:
 *   offset_gemm  c (M, N) [+]= a (M, KD) · B   (forward; the input gradient as a convolution of dy)
 *   window_gemm  c (M, N) [+]= A (M, KD) · b with A(i, p) = a[offs[i] + p]  (the weight gradient, transposed:
 *                taps x output channels, summed over positions, against dy transposed)
 * Every sum runs over k (or over positions) in an order fixed by the sizes alone. */
#define INSTANCE_ARG1(a, b, c) a
#define INSTANCE_ARG2(a, b, c) b
#define INSTANCE_ARG3(a, b, c) c
#define INSTANCE_APPLY(f, args) f args
#define real INSTANCE_APPLY(INSTANCE_ARG1, INSTANCE)
#define VLEN INSTANCE_APPLY(INSTANCE_ARG2, INSTANCE)
#define G(name) PASTE2(name, INSTANCE_APPLY(INSTANCE_ARG3, INSTANCE))
#define WIDE (VLEN * (int)sizeof(real) == 64) /* AVX-512: 32 vector registers, else 16 */
/* offset_gemm's register tile: MR rows x NV vectors. Rows are output channels, which the small networks
 * have in multiples of 8 (16, 32, 64): 8 rows leave no ragged tile, where gemm's 12 left 16 = 12 + 4. */
#define MR (WIDE ? 8 : 4)
#define NV 3
#define NR (NV * VLEN)
/* a KC-deep slice of B's NR columns (48 KiB at most, f32 AVX-512; a 16-channel 3x3 layer's 144 taps are
 * 27 KiB) stays in L1 or close while every row tile reads it */
#define KC (1024 / (int)sizeof(real))
/* window_gemm's tile: WR rows (taps) x WV vectors (output channels): AVX-512's 12 x 2 is gemm's own, and
 * 16 output channels take a 12 x 1 tile that still hides the FMA latency */
#define WR (WIDE ? 12 : 6)
#define WV 2
/* window3_gemm's: W3R windows of three taps each, over one vector (16 channels), or W3R / WV over WV */
#define W3R (WIDE ? 8 : 2)

typedef real G(dvec) __attribute__((vector_size(VLEN * sizeof(real))));

static inline G(dvec) G(dload)(const real *p)
{
    G(dvec) v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void G(dstore)(real *p, G(dvec) v) { memcpy(p, &v, sizeof v); }

/* c (rows, nr) [+]= a (rows, kc) · B (kc, nv·VLEN); B's columns past nr are read (the caller leaves slack
 * after b) and dropped. Called with constant rows and nv: the edge tiles get their own register tiles. */
static inline __attribute__((always_inline)) void G(otile)(real *restrict c, ptrdiff_t ldc, const real *a,
                                                           ptrdiff_t lda, const real *b, const ptrdiff_t *offs,
                                                           const int rows, const int nv, int nr, int kc, int accumulate)
{
    G(dvec) acc[MR][NV];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = (G(dvec)){0};
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        G(dvec) bv[NV];
        const real *bk = b + offs[k];
        for (int v = 0; v < nv; v++) bv[v] = G(dload)(bk + v * VLEN);
        for (int i = 0; i < rows; i++) {
            real av = a[i * lda + k];
            for (int v = 0; v < nv; v++) acc[i][v] += av * bv[v];
        }
    }
    if (nr == nv * VLEN) {
        for (int i = 0; i < rows; i++)
            for (int v = 0; v < nv; v++) {
                real *p = c + i * ldc + v * VLEN;
                G(dstore)(p, accumulate ? G(dload)(p) + acc[i][v] : acc[i][v]);
            }
        return;
    }
    real t[MR * NR];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < nv; v++) G(dstore)(t + i * NR + v * VLEN, acc[i][v]);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < nr; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i * NR + j] : t[i * NR + j];
}

#define OTILE_ROWS(r)                                                            \
    (nr > 2 * VLEN ? G(otile)(c, ldc, a, lda, b, offs, r, 3, nr, kc, accumulate) \
     : nr > VLEN   ? G(otile)(c, ldc, a, lda, b, offs, r, 2, nr, kc, accumulate) \
                   : G(otile)(c, ldc, a, lda, b, offs, r, 1, nr, kc, accumulate))
static inline __attribute__((always_inline)) void G(otile_any)(real *restrict c, ptrdiff_t ldc, const real *a,
                                                               ptrdiff_t lda, const real *b, const ptrdiff_t *offs,
                                                               int mr, int nr, int kc, int accumulate)
{
    switch (mr) {
    case 1: OTILE_ROWS(1); break;
    case 2: OTILE_ROWS(2); break;
    case 3: OTILE_ROWS(3); break;
    case 4: OTILE_ROWS(4 < MR ? 4 : MR); break;
    case 5: OTILE_ROWS(5 < MR ? 5 : MR); break;
    case 6: OTILE_ROWS(6 < MR ? 6 : MR); break;
    case 7: OTILE_ROWS(7 < MR ? 7 : MR); break;
    default: OTILE_ROWS(MR); break;
    }
}
#undef OTILE_ROWS

/* c (M, N) [+]= a (M, KD) · B with a(i, k) = a[i·lda + k] and B(k, j) = b[offs[k] + j]: for each NR columns, KD
 * in equal slices of at most KC, each swept by every row tile while it is in L1. Reads up to NR - 1 reals
 * past b[offs[k] + N - 1]. */
static void G(offset_gemm)(real *c, ptrdiff_t ldc, const real *a, ptrdiff_t lda, const real *b, const ptrdiff_t *offs,
                           int M, int N, int KD, int accumulate)
{
    int slices = (KD + KC - 1) / KC, step = (KD + slices - 1) / slices;
    for (int j0 = 0; j0 < N; j0 += NR) {
        int nr = N - j0 < NR ? N - j0 : NR;
        for (int k0 = 0; k0 < KD; k0 += step) {
            int kc = KD - k0 < step ? KD - k0 : step, acc = accumulate || k0 > 0;
            for (int i0 = 0; i0 < M; i0 += MR)
                G(otile_any)(c + i0 * ldc + j0, ldc, a + i0 * lda + k0, lda, b + j0, offs + k0,
                             M - i0 < MR ? M - i0 : MR, nr, kc, acc);
        }
    }
}

/* c (rows, nv·VLEN) [+]= A (rows, kd) · b (kd, nv·VLEN), A(i, p) = a[offs[i] + p], b(p, j) = b[p·ldb + j]: the
 * windows are rows of A here, each broadcast along the positions p, and the sums run over p in order. */
static inline __attribute__((always_inline)) void G(wtile)(real *restrict c, ptrdiff_t ldc, const real *a,
                                                           const ptrdiff_t *offs, const real *b, ptrdiff_t ldb,
                                                           const int rows, const int nv, int nr, int kd, int accumulate)
{
    G(dvec) acc[WR][WV];
    const real *ai[WR];
    for (int i = 0; i < rows; i++) {
        ai[i] = a + offs[i];
        for (int v = 0; v < nv; v++) acc[i][v] = (G(dvec)){0};
    }
#pragma GCC unroll 4
    for (int p = 0; p < kd; p++) {
        G(dvec) bv[WV];
        for (int v = 0; v < nv; v++) bv[v] = G(dload)(b + p * ldb + v * VLEN);
        for (int i = 0; i < rows; i++)
            for (int v = 0; v < nv; v++) acc[i][v] += ai[i][p] * bv[v];
    }
    if (nr == nv * VLEN) {
        for (int i = 0; i < rows; i++)
            for (int v = 0; v < nv; v++) {
                real *q = c + i * ldc + v * VLEN;
                G(dstore)(q, accumulate ? G(dload)(q) + acc[i][v] : acc[i][v]);
            }
        return;
    }
    real t[WV * VLEN];
    for (int i = 0; i < rows; i++) {
        for (int v = 0; v < nv; v++) G(dstore)(t + v * VLEN, acc[i][v]);
        for (int j = 0; j < nr; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[j] : t[j];
    }
}

#define WTILE_ROWS(r)                                                             \
    (nr > VLEN ? G(wtile)(cc, ldc, a, oo, b + j0, ldb, r, WV, nr, KD, accumulate) \
               : G(wtile)(cc, ldc, a, oo, b + j0, ldb, r, 1, nr, KD, accumulate))

/* c (M, N) [+]= A (M, KD) · b (KD, N), A(i, p) = a[offs[i] + p], b(p, j) = b[p·ldb + j], c(i, j) = c[i·ldc + j]: N is
 * a layer's output channels, a few register tiles wide, and b is read in place. */
static void G(window_gemm)(real *c, ptrdiff_t ldc, const real *a, const ptrdiff_t *offs, const real *b, ptrdiff_t ldb,
                           int M, int N, int KD, int accumulate)
{
    for (int j0 = 0; j0 < N; j0 += WV * VLEN) {
        int nr = N - j0 < WV * VLEN ? N - j0 : WV * VLEN;
        for (int i0 = 0; i0 < M; i0 += WR) {
            real *cc = c + i0 * ldc + j0;
            const ptrdiff_t *oo = offs + i0;
            switch (M - i0 < WR ? M - i0 : WR) {
            case 1: WTILE_ROWS(1); break;
            case 2: WTILE_ROWS(2); break;
            case 3: WTILE_ROWS(3); break;
            case 4: WTILE_ROWS(4); break;
            case 5: WTILE_ROWS(5); break;
            case 6: WTILE_ROWS(6 < WR ? 6 : WR); break;
            case 7: WTILE_ROWS(7 < WR ? 7 : WR); break;
            case 8: WTILE_ROWS(8 < WR ? 8 : WR); break;
            case 9: WTILE_ROWS(9 < WR ? 9 : WR); break;
            case 10: WTILE_ROWS(10 < WR ? 10 : WR); break;
            case 11: WTILE_ROWS(11 < WR ? 11 : WR); break;
            default: WTILE_ROWS(WR); break;
            }
        }
    }
}
#undef WTILE_ROWS

/* window_gemm for three taps a cell apart (a 3-wide window at stride 1, undilated): row r of A stands for the
 * taps j = 0, 1, 2 whose windows start at a[offs[r] + j], and tap j's sum Σ_p a[offs[r] + j + p]·b(p) is
 * Σ_q a[offs[r] + q]·b(q - j): one broadcast of a[offs[r] + q] feeds all three, against b's rows q, q - 1,
 * q - 2 held in registers. b has two zero rows before and after its KD rows (bz points at the first of
 * them): a third of window_gemm's broadcasts, which bound it at 16 channels. offs[3r] is row r's window. */
static inline __attribute__((always_inline)) void G(w3tile)(real *restrict c, ptrdiff_t ldc, const real *a,
                                                            const ptrdiff_t *offs, const real *bz, ptrdiff_t ldb,
                                                            const int rows, const int nv, int nr, int kd,
                                                            int accumulate)
{
    G(dvec) acc[W3R][3][WV], b0[WV], b1[WV], b2[WV];
    const real *ai[W3R];
    for (int i = 0; i < rows; i++) {
        ai[i] = a + offs[3 * i];
        for (int j = 0; j < 3; j++)
            for (int v = 0; v < nv; v++) acc[i][j][v] = (G(dvec)){0};
    }
    for (int v = 0; v < nv; v++) {
        b0[v] = G(dload)(bz + v * VLEN);       /* b(q - 2) at q = 0 */
        b1[v] = G(dload)(bz + ldb + v * VLEN); /* b(q - 1) */
    }
#pragma GCC unroll 2
    for (int q = 0; q < kd + 2; q++) {
        for (int v = 0; v < nv; v++) b2[v] = G(dload)(bz + (q + 2) * ldb + v * VLEN); /* b(q) */
        for (int i = 0; i < rows; i++) {
            real x = ai[i][q];
            for (int v = 0; v < nv; v++) {
                acc[i][0][v] += x * b2[v];
                acc[i][1][v] += x * b1[v];
                acc[i][2][v] += x * b0[v];
            }
        }
        for (int v = 0; v < nv; v++) {
            b0[v] = b1[v];
            b1[v] = b2[v];
        }
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < 3; j++) {
            real *row = c + (i * 3 + j) * ldc;
            if (nr == nv * VLEN) {
                for (int v = 0; v < nv; v++)
                    G(dstore)(row + v * VLEN, accumulate ? G(dload)(row + v * VLEN) + acc[i][j][v] : acc[i][j][v]);
                continue;
            }
            real t[WV * VLEN];
            for (int v = 0; v < nv; v++) G(dstore)(t + v * VLEN, acc[i][j][v]);
            for (int l = 0; l < nr; l++) row[l] = accumulate ? row[l] + t[l] : t[l];
        }
}

#define W3TILE(r, nv) G(w3tile)(cc, ldc, a, oo, bz + j0, ldb, r, nv, nr, KD, accumulate)
#define W3ROWS(nv, most)                                \
    switch (M3 - i0 < (most) ? M3 - i0 : (most)) {      \
    case 1: W3TILE(1, nv); break;                       \
    case 2: W3TILE(2 < (most) ? 2 : (most), nv); break; \
    case 3: W3TILE(3 < (most) ? 3 : (most), nv); break; \
    case 4: W3TILE(4 < (most) ? 4 : (most), nv); break; \
    case 5: W3TILE(5 < (most) ? 5 : (most), nv); break; \
    case 6: W3TILE(6 < (most) ? 6 : (most), nv); break; \
    case 7: W3TILE(7 < (most) ? 7 : (most), nv); break; \
    default: W3TILE(most, nv); break;                   \
    }

/* c (3·M3, N) [+]= window_gemm's, for windows whose offsets come in triples a cell apart: offs[3r + j] =
 * offs[3r] + j, and only offs[3r] is read. b (KD, N) has its rows ldb apart, with two zero rows before and
 * after (bz points at the first). */
static void G(window3_gemm)(real *c, ptrdiff_t ldc, const real *a, const ptrdiff_t *offs, const real *bz, ptrdiff_t ldb,
                            int M3, int N, int KD, int accumulate)
{
    for (int j0 = 0; j0 < N; j0 += WV * VLEN) {
        int nr = N - j0 < WV * VLEN ? N - j0 : WV * VLEN, wide = nr > VLEN, step = wide ? W3R / WV : W3R;
        for (int i0 = 0; i0 < M3; i0 += step) {
            real *cc = c + i0 * 3 * ldc + j0;
            const ptrdiff_t *oo = offs + 3 * i0;
            if (wide) {
                W3ROWS(WV, W3R / WV)
            } else {
                W3ROWS(1, W3R)
            }
        }
    }
}
#undef W3ROWS
#undef W3TILE

#undef W3R
#undef WV
#undef WR
#undef KC
#undef NR
#undef NV
#undef MR
#undef WIDE
#undef G
#undef VLEN
#undef real
#undef INSTANCE_APPLY
#undef INSTANCE_ARG3
#undef INSTANCE_ARG2
#undef INSTANCE_ARG1
#undef INSTANCE
