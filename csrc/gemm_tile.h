/* gemm_tile.h: the gemm body, included by gemm.c once per (real type, ISA).
 * Expects INSTANCE = (real, VLEN, suffix): the real type, the elements per vector register, and the suffix
 * that G(name) appends to make the instance's names unique. The register tile is MR x NR = 6 x VLEN·NV
 * (NV = 2 vectors per tile row): 12 accumulators, two b vectors and one broadcast, which fits the 16
 * registers of AVX2/SSE2; AVX-512's 32 take MR = 12 (24 accumulators), which halves the loads of b per
 * multiply-add (measured on a Xeon: 64x576x256, a 3x3 conv tile, 112 -> 151 GFLOP/s). Every element's sum
 * over k keeps its order, so the tile's size never changes a result.
 *
 * Blocking follows BLIS: a thread owns a rectangle of c; for each NC-column block and KC-deep slice it
 * packs b into NR-wide panels (kc x NR, contiguous, zero-padded), for each MC-row block it packs a into
 * MR-row panels (kc x MR), then runs each a panel (held in L1) along the block's panels of b (streamed
 * from L2 in memory order, which the hardware prefetcher follows). Packing is skipped where the
 * operand is already usable in place and little reused (batch-sized shapes): b when its rows are
 * contiguous and M fits one row block, a when its rows are contiguous and N <= NA.
 * Every element of c is summed over k in the same KC slices and the same order whatever the
 * partition, so results are bitwise identical for any thread count. */
#define INSTANCE_ARG1(a, b, c) a
#define INSTANCE_ARG2(a, b, c) b
#define INSTANCE_ARG3(a, b, c) c
#define INSTANCE_APPLY(f, args) f args
#define real INSTANCE_APPLY(INSTANCE_ARG1, INSTANCE)
#define VLEN INSTANCE_APPLY(INSTANCE_ARG2, INSTANCE)
#define G(name) PASTE2(name, INSTANCE_APPLY(INSTANCE_ARG3, INSTANCE))
#define NV 2
#define MR (VLEN * (int)sizeof(real) == 64 ? 12 : 6) /* AVX-512: 24 of its 32 registers */
#define NR (VLEN * NV)
#define KC (1024 / (int)sizeof(real)) /* a kc x MR panel of a is 12 KiB (f32, AVX-512): it stays in L1 */
#define MC (MR * (192 / MR))          /* an MC x KC block of a is 192 KiB: it stays in L2 */
/* A KC x NC block of packed b is 256 KiB, on the stack. NC = 1024 packs a 1024-wide a once instead of four
 * times (7% of a 1024^3 product), but its 1.2 MiB of stack crashed a thread started with 1 MiB
 * (threading.stack_size): a caller's small stack must not be the reason a session dies. */
#define NC 256
#define NA 256 /* a is packed when b is wider than this: each panel is then read by >= 8 register tiles */

typedef real G(vec) __attribute__((vector_size(VLEN * sizeof(real))));

static inline G(vec) G(loadu)(const real *p)
{
    G(vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void G(storeu)(real *p, G(vec) v) { memcpy(p, &v, sizeof v); }

/* c (rows, nr) [+]= a (rows, kc) · b (kc, nv·VLEN), with a(i,k) = a[i·rsa + k·csa] and b(k,j) = b[k·ldb + j];
 * columns of b past nr are padding and are dropped. A bias (rows) starts row i's sums at bias[i] (the
 * convolution's epilogue, for free: no second pass over c). Always inlined, and called with constant rows and
 * nv, so edge tiles get their own smaller register tile instead of computing padding, and packed
 * calls see constant strides. */
static inline __attribute__((always_inline)) void G(tile)(real *restrict c, ptrdiff_t ldc, const real *a, ptrdiff_t rsa,
                                                          ptrdiff_t csa, const real *b, ptrdiff_t ldb, const int rows,
                                                          const int nv, int nr, int kc, int accumulate,
                                                          const real *bias)
{
    /* c's tile is read (or written) only after kc steps; fetched now, its lines arrive while they run
     * (on a 1024-wide c they come from L3: waiting for them at the end cost ~10%) */
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < nv; v++) __builtin_prefetch(c + i * ldc + v * VLEN, 1, 3);
    G(vec) acc[MR][NV];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = (G(vec)){0} + (bias ? bias[i] : 0);
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        G(vec) bv[NV];
        for (int v = 0; v < nv; v++) bv[v] = G(loadu)(b + k * ldb + v * VLEN);
        for (int i = 0; i < rows; i++) {
            real av = a[i * rsa + k * csa];
            for (int v = 0; v < nv; v++) acc[i][v] += av * bv[v];
        }
    }
    if (nr == nv * VLEN) {
        for (int i = 0; i < rows; i++)
            for (int v = 0; v < nv; v++) {
                real *p = c + i * ldc + v * VLEN;
                G(storeu)(p, accumulate ? G(loadu)(p) + acc[i][v] : acc[i][v]);
            }
        return;
    }
    /* constant-trip loops to read acc, so it stays in registers on the full-tile path */
    real t[MR * NR];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < nv; v++) G(storeu)(t + i * NR + v * VLEN, acc[i][v]);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < nr; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i * NR + j] : t[i * NR + j];
}

/* The tile for an mr x nr corner of c: one constant-size instance per row count and width. */
#define TILE_ROWS(rows)                                                                   \
    (nr > VLEN ? G(tile)(c, ldc, a, rsa, csa, b, ldb, rows, NV, nr, kc, accumulate, bias) \
               : G(tile)(c, ldc, a, rsa, csa, b, ldb, rows, 1, nr, kc, accumulate, bias))
static inline
    __attribute__((always_inline)) void G(tile_any)(real *restrict c, ptrdiff_t ldc, const real *a, ptrdiff_t rsa,
                                                    ptrdiff_t csa, const real *b, ptrdiff_t ldb, int mr, int nr, int kc,
                                                    int accumulate, const real *bias)
{
    switch (mr) {
    case 1: TILE_ROWS(1); break;
    case 2: TILE_ROWS(2); break;
    case 3: TILE_ROWS(3); break;
    case 4: TILE_ROWS(4); break;
    case 5: TILE_ROWS(5); break;
    case 6: TILE_ROWS(6); break;
    case 7: TILE_ROWS(7 < MR ? 7 : MR); break;
    case 8: TILE_ROWS(8 < MR ? 8 : MR); break;
    case 9: TILE_ROWS(9 < MR ? 9 : MR); break;
    case 10: TILE_ROWS(10 < MR ? 10 : MR); break;
    case 11: TILE_ROWS(11 < MR ? 11 : MR); break;
    default: TILE_ROWS(MR); break;
    }
}
#undef TILE_ROWS

typedef real G(vec4) __attribute__((vector_size(4 * sizeof(real))));

/* p (kc x w panel, row k at p + k·w) = sᵀ for the n <= w rows of s that hold k contiguously (s(j,k) =
 * s[j·ld + k]): an NT b or an NN a. By 4x4 in-register transposes: one scalar store per element would make
 * packing cost a third of a batch-50 dX gemm, and strided gathers made packing a 8% of a 1024^3 product. */
static inline __attribute__((always_inline)) void G(pack_t)(real *restrict p, const int w, const real *s, ptrdiff_t ld,
                                                            int kc, int n)
{
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const real *r0 = s + j * ld, *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;
        int k = 0;
        for (; k + 4 <= kc; k += 4) {
            if (k % (64 / (int)sizeof(real)) == 0) /* the next 4 rows' line at k: rows too short to train */
                for (int r = 4; r < 8; r++)        /* the hardware prefetcher (an address, never dereferenced) */
                    __builtin_prefetch((const void *)((uintptr_t)(r0 + k) + (uintptr_t)(r * ld * sizeof(real))));
            G(vec4) x0, x1, x2, x3;
            memcpy(&x0, r0 + k, sizeof x0);
            memcpy(&x1, r1 + k, sizeof x1);
            memcpy(&x2, r2 + k, sizeof x2);
            memcpy(&x3, r3 + k, sizeof x3);
            G(vec4) t0 = __builtin_shufflevector(x0, x1, 0, 4, 1, 5), t1 = __builtin_shufflevector(x0, x1, 2, 6, 3, 7);
            G(vec4) t2 = __builtin_shufflevector(x2, x3, 0, 4, 1, 5), t3 = __builtin_shufflevector(x2, x3, 2, 6, 3, 7);
            G(vec4) y0 = __builtin_shufflevector(t0, t2, 0, 1, 4, 5), y1 = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
            G(vec4) y2 = __builtin_shufflevector(t1, t3, 0, 1, 4, 5), y3 = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
            memcpy(p + (k + 0) * w + j, &y0, sizeof y0);
            memcpy(p + (k + 1) * w + j, &y1, sizeof y1);
            memcpy(p + (k + 2) * w + j, &y2, sizeof y2);
            memcpy(p + (k + 3) * w + j, &y3, sizeof y3);
        }
        for (; k < kc; k++) {
            p[k * w + j] = r0[k];
            p[k * w + j + 1] = r1[k];
            p[k * w + j + 2] = r2[k];
            p[k * w + j + 3] = r3[k];
        }
    }
    for (; j < n; j++)
        for (int k = 0; k < kc; k++) p[k * w + j] = s[j * ld + k];
}

/* bp (nc/NR panels of kc x NR) = b (kc, nc), zero-padding the last panel to NR columns. */
static void G(pack_b)(real *restrict bp, const real *b, ptrdiff_t rsb, ptrdiff_t csb, int kc, int nc)
{
    for (int j0 = 0; j0 < nc; j0 += NR) {
        int nr = nc - j0 < NR ? nc - j0 : NR;
        real *p = bp + (size_t)j0 * kc;
        if (csb == 1) {
            for (int k = 0; k < kc; k++)
                for (int j = 0; j < NR; j++) p[k * NR + j] = j < nr ? b[k * rsb + j0 + j] : 0;
            continue;
        }
        if (nr < NR) memset(p, 0, (size_t)kc * NR * sizeof(real));
        if (rsb == 1) {
            G(pack_t)(p, NR, b + j0 * csb, csb, kc, nr);
            continue;
        }
        for (int j = 0; j < nr; j++)
            for (int k = 0; k < kc; k++) p[k * NR + j] = b[k * rsb + (j0 + j) * csb];
    }
}

/* ap (mc/MR panels of kc x MR) = a (mc, kc), zero-padding the last panel to MR rows. With N large
 * every column block repacks a, so the common layouts get copy loops without per-element branches. */
static void G(pack_a)(real *restrict ap, const real *a, ptrdiff_t rsa, ptrdiff_t csa, int mc, int kc)
{
    for (int i0 = 0; i0 < mc; i0 += MR) {
        int mr = mc - i0 < MR ? mc - i0 : MR;
        real *p = ap + (size_t)i0 * kc;
        const real *src = a + i0 * rsa;
        if (csa == 1) { /* a as stored (NN) */
            if (mr < MR) memset(p, 0, (size_t)kc * MR * sizeof(real));
            G(pack_t)(p, MR, src, rsa, kc, mr);
        } else if (mr < MR) {
            for (int k = 0; k < kc; k++)
                for (int i = 0; i < MR; i++) p[k * MR + i] = i < mr ? src[i * rsa + k * csa] : 0;
        } else if (rsa == 1) { /* a transposed (TN): each k's MR values are adjacent */
            for (int k = 0; k < kc; k++) memcpy(p + k * MR, src + k * csa, MR * sizeof(real));
        } else {
            for (int k = 0; k < kc; k++)
                for (int i = 0; i < MR; i++) p[k * MR + i] = src[i * rsa + k * csa];
        }
    }
}

/* c[i0:i1, j0:j1] [+]= a[i0:i1, :] · b[:, j0:j1] (+ bias[i0:i1] on each column): one thread's rectangle. */
static void G(block)(real *c, const real *a, const real *b, int i0, int i1, int j0, int j1, int KD, ptrdiff_t rsa,
                     ptrdiff_t csa, ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t ldc, int accumulate, int pa, int pb,
                     const real *bias)
{
    real ap[MC * KC] __attribute__((aligned(64)));
    real bp[KC * NC] __attribute__((aligned(64)));
    for (int jc = j0; jc < j1; jc += NC) {
        int nc = j1 - jc < NC ? j1 - jc : NC, full = pb ? nc : nc / NR * NR;
        for (int k0 = 0; k0 < KD; k0 += KC) {
            int kc = KD - k0 < KC ? KD - k0 : KC, acc = accumulate || k0 > 0;
            const real *bk = b + k0 * rsb + jc * csb;
            if (pb) G(pack_b)(bp, bk, rsb, csb, kc, nc);
            else if (full < nc) G(pack_b)(bp, bk + full, rsb, 1, kc, nc - full); /* the edge panel, padded */
            for (int ic = i0; ic < i1; ic += MC) {
                int mc = i1 - ic < MC ? i1 - ic : MC;
                const real *ak = a + ic * rsa + k0 * csa;
                if (pa) G(pack_a)(ap, ak, rsa, csa, mc, kc);
                for (int ir = 0; ir < mc; ir += MR) {
                    int mr = mc - ir < MR ? mc - ir : MR;
                    const real *bi = bias && k0 == 0 ? bias + ic + ir : NULL; /* only the first slice */
                    for (int jr = 0; jr < nc; jr += NR) {
                        int nr = nc - jr < NR ? nc - jr : NR;
                        const real *bj = pb ? bp + (size_t)jr * kc : jr < full ? bk + jr : bp;
                        ptrdiff_t ldb = pb || jr >= full ? NR : rsb;
                        real *cc = c + (ic + ir) * ldc + jc + jr;
                        if (pa) G(tile_any)(cc, ldc, ap + (size_t)ir * kc, 1, MR, bj, ldb, mr, nr, kc, acc, bi);
                        else /* !pa implies csa == 1; a constant frees a register */
                            G(tile_any)(cc, ldc, ak + ir * rsa, rsa, 1, bj, ldb, mr, nr, kc, acc, bi);
                    }
                }
            }
        }
    }
}

static void G(gemm)(real *c, const real *a, const real *b, int M, int N, int KD, ptrdiff_t rsa, ptrdiff_t csa,
                    ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t ldc, int accumulate, const real *bias)
{
    int pa = csa != 1 || N > NA, pb = csb != 1 || M > MC;
    if ((double)M * N * KD <= CNN_GEMM_SERIAL_WORK || !cnn_team()) { /* one thread: no region at all */
        G(block)(c, a, b, 0, M, 0, N, KD, rsa, csa, rsb, csb, ldc, accumulate, pa, pb, bias);
        return;
    }
    int mt = (M + MR - 1) / MR, nt = (N + NR - 1) / NR;
#pragma omp parallel
    {
        /* the grid of tm x tn rectangles whose largest is smallest (16 threads on N = 100, 7 panels of 16,
         * leave 2 idle in a column split); on a tie the most column splits, so that each thread packs only
         * its own part of b */
        int nth = team_size(), t = team_rank(), tn = 1;
        double best = -1;
        for (int cols = 1; cols <= nth && cols <= nt; cols++) {
            int rows = nth / cols < mt ? nth / cols : mt;
            double area = (double)widest(nt, cols, NR, N) * widest(mt, rows, MR, M);
            if (best < 0 || area <= best) best = area, tn = cols;
        }
        int tm = nth / tn < mt ? nth / tn : mt, q = t % tn, r = t / tn;
        if (r < tm) {
            int i0 = (int)((long long)mt * r / tm) * MR, i1 = (int)((long long)mt * (r + 1) / tm) * MR;
            int j0 = (int)((long long)nt * q / tn) * NR, j1 = (int)((long long)nt * (q + 1) / tn) * NR;
            i1 = i1 < M ? i1 : M;
            j1 = j1 < N ? j1 : N;
            if (i0 < i1 && j0 < j1)
                G(block)(c, a, b, i0, i1, j0, j1, KD, rsa, csa, rsb, csb, ldc, accumulate, pa, pb, bias);
        }
    }
}

#undef NR
#undef KC
#undef MC
#undef NC
#undef NA
#undef MR
#undef NV
#undef G
#undef VLEN
#undef real
#undef INSTANCE_APPLY
#undef INSTANCE_ARG3
#undef INSTANCE_ARG2
#undef INSTANCE_ARG1
#undef INSTANCE
