/* gemm_tile.h: the register-tiled gemm body, included by gemm.c once per (real type, ISA).
 * Expects: real, VLEN (elements per vector register), NV (vectors per tile row), G(name) (a
 * unique name per instance). The tile is MR x NR = 6 x VLEN·NV: 12 accumulator registers.
 *
 * Loop order: tasks are (MC-row block, NR-column panel) pairs split statically over threads; each
 * task owns its block of c and walks k in order, so every element of c is summed in the same order
 * whatever the thread count. b is read in place when its panel is contiguous (NN, TN), otherwise
 * packed (NT) into a per-task stack buffer of KC x NR. a is read with its strides: a tile touches
 * only MR rows of it, which stay in L1/L2. */
#define NR (VLEN * NV)
#define MR 6
#define KC 256
#define MC 96

typedef real G(vec) __attribute__((vector_size(VLEN * sizeof(real))));

static inline G(vec) G(loadu)(const real *p) { G(vec) v; memcpy(&v, p, sizeof v); return v; }
static inline void G(storeu)(real *p, G(vec) v) { memcpy(p, &v, sizeof v); }

/* c (mr, nr) [+]= a (mr, kc) · b (kc, NR); rows of a past mr repeat row mr-1 and are dropped. */
static inline void G(tile)(real *restrict c, ptrdiff_t ldc, const real *a, ptrdiff_t rsa, ptrdiff_t csa,
                           const real *b, ptrdiff_t ldb, int mr, int nr, int kc, int accumulate)
{
    const real *ar[MR];
    for (int i = 0; i < MR; i++) ar[i] = a + (i < mr ? i : mr - 1) * rsa;
    G(vec) acc[MR][NV];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = (G(vec)){0};
    for (int k = 0; k < kc; k++) {
        G(vec) bv[NV];
        for (int v = 0; v < NV; v++) bv[v] = G(loadu)(b + k * ldb + v * VLEN);
        for (int i = 0; i < MR; i++) {
            real av = ar[i][k * csa];
            for (int v = 0; v < NV; v++) acc[i][v] += av * bv[v];
        }
    }
    if (mr == MR && nr == NR) {
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < NV; v++) {
                real *p = c + i * ldc + v * VLEN;
                G(storeu)(p, accumulate ? G(loadu)(p) + acc[i][v] : acc[i][v]);
            }
        return;
    }
    real t[MR * NR];
    memcpy(t, acc, sizeof t);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i * NR + j] : t[i * NR + j];
}

static void G(gemm)(real *c, const real *a, const real *b, int M, int N, int KD,
                    ptrdiff_t rsa, ptrdiff_t csa, ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t ldc, int accumulate)
{
    int nb = (N + NR - 1) / NR, mb = (M + MC - 1) / MC;
    double work = (double)M * N * KD;
#pragma omp parallel for collapse(2) schedule(static) if (work > CNN_GEMM_SERIAL_WORK)
    for (int ib = 0; ib < mb; ib++)
        for (int jb = 0; jb < nb; jb++) {
            real bp[KC * NR] __attribute__((aligned(64)));
            int i0 = ib * MC, i1 = i0 + MC < M ? i0 + MC : M;
            int j0 = jb * NR, nr = N - j0 < NR ? N - j0 : NR;
            for (int k0 = 0; k0 < KD; k0 += KC) {
                int kc = KD - k0 < KC ? KD - k0 : KC;
                const real *bk = bp;
                ptrdiff_t ldb = NR;
                if (csb == 1 && nr == NR) {
                    bk = b + k0 * rsb + j0;
                    ldb = rsb;
                } else {
                    /* k outer: the packed panel is written in order (j outer stored every 64 bytes and
                     * stalled on 4K aliasing with the loads, 10x slower for NT shapes with a long k) */
                    for (int k = 0; k < kc; k++)
                        for (int j = 0; j < NR; j++)
                            bp[k * NR + j] = j < nr ? b[(k0 + k) * rsb + (j0 + j) * csb] : 0;
                }
                for (int i = i0; i < i1; i += MR)
                    G(tile)(c + i * ldc + j0, ldc, a + i * rsa + k0 * csa, rsa, csa, bk, ldb,
                            i1 - i < MR ? i1 - i : MR, nr, kc, accumulate || k0 > 0);
            }
        }
}

#undef NR
#undef MR
#undef KC
#undef MC
