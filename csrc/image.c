/* image.c: affine warps of NCHW planes, following scipy.ndimage.affine_transform (ni_interpolation.c) with
 * mode='constant': the input coordinate of output (i, j) is (m00·i + m01·j + m02, m10·i + m11·j + m12), summed
 * in that order in double, so that a coordinate on the grid's edge falls on scipy's side of it; a coordinate
 * outside [0, H-1] × [0, W-1] reads cval (no interpolation toward the fill); order 0 takes the cell
 * floor(c + 0.5) (scipy's very numbers); order 1 blends the cells floor(c) and floor(c) + 1 with t = c - floor(c)
 * (scipy's value to the plane type's rounding: scipy sums four weighted cells in double, we lerp twice along
 * the rows and once down). Fill 'nearest' and 'reflect' instead extend the plane beyond its edges
 * (a b c d | d d d d, and d c b a | a b c d | d c b a) and sample the extension.
 * Worked example: the plane [[1 2], [3 4]] sampled at (0.5, 0.25) is 0.5·(1·0.75 + 2·0.25) + 0.5·(3·0.75 +
 * 4·0.25) = 2.25. Each thread owns whole output planes. */
#ifndef real
#include <limits.h>
#include <math.h>
#include "cnn.h"

/* A cell index of the extended plane [0, len) under a 'nearest' or 'reflect' fill: idx may lie anywhere
 * the caller's coordinate reduction leaves it, a few periods out at most. */
static inline long extend_index(long idx, long len, cnn_image_fill fill)
{
    if (fill == IMAGE_FILL_NEAREST) return idx < 0 ? 0 : idx >= len ? len - 1 : idx;
    long period = 2 * len;
    idx %= period;
    if (idx < 0) idx += period;
    return idx < len ? idx : period - 1 - idx;
}

/* A coordinate brought into [-1, len], where its neighbours' indices fit a long: 'nearest' reads the edge
 * anywhere past it; 'reflect' repeats every 2·len cells and mirrors about -1/2 as scipy's map_coordinate
 * does, before rounding, so that order 0 breaks a tie outside the plane as scipy does. False for a coordinate
 * that samples no cell (NaN or infinite). */
static inline int reduce_coordinate(double *c, long len, cnn_image_fill fill)
{
    double n = (double)len, period = 2.0 * n;
    if (*c >= 0 && *c <= n - 1) return 1; /* inside the plane: most samples */
    if (!isfinite(*c)) return 0;
    if (fill == IMAGE_FILL_NEAREST) {
        if (*c < -1) *c = -1;
        if (*c > n) *c = n;
        return 1;
    }
    if (*c <= -period || *c >= period) *c = fmod(*c, period);
    if (*c < 0) *c = *c < -n ? *c + period : -*c - 1;
    else if (*c >= n) *c = period - *c - 1;
    return 1;
}

/* floor(v) as a long, for |v| < 2^62 (every caller has bounded v first): libm's floor is a call on baseline
 * x86-64 (no SSE4.1 roundsd), and two of them a sample cost more than the rest of a bilinear sample. */
static inline long floor_long(double v)
{
    long t = (long)v;
    return t - (v < (double)t);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(CNN_NO_CLONES)
#include <immintrin.h>
/* The constant-fill bilinear row of a float plane from column j, four samples at a time on AVX2 (gathering the
 * four cells of each): lane by lane the scalar path's operations in its order, without FMA, so the same bits.
 * Outside the plane a lane reads cell 0 and is replaced by cval. Returns the column it stopped at, the last
 * multiple of 4 past j that fits; the caller does the rest. The plane's cell indices must fit an int. */
__attribute__((target("avx2"))) static int warp_row_f32_avx2(float *out, const float *in, int h, int w, int ow,
                                                             double ri, double ci, const double *m, float cval, int j)
{
    const __m256d zero = _mm256_setzero_pd(), hm1 = _mm256_set1_pd(h - 1), wm1 = _mm256_set1_pd(w - 1);
    const __m256d vri = _mm256_set1_pd(ri), vci = _mm256_set1_pd(ci), m01 = _mm256_set1_pd(m[1]),
                  m02 = _mm256_set1_pd(m[2]), m11 = _mm256_set1_pd(m[4]), m12 = _mm256_set1_pd(m[5]);
    const __m128i last_r = _mm_set1_epi32(h - 1), last_c = _mm_set1_epi32(w - 1), width = _mm_set1_epi32(w);
    const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    const __m128 fill = _mm_set1_ps(cval);
    for (; j + 4 <= ow; j += 4) {
        __m256d jd = _mm256_setr_pd(j, j + 1, j + 2, j + 3);
        __m256d r = _mm256_add_pd(_mm256_add_pd(vri, _mm256_mul_pd(jd, m01)), m02);
        __m256d c = _mm256_add_pd(_mm256_add_pd(vci, _mm256_mul_pd(jd, m11)), m12);
        __m256d in_r = _mm256_and_pd(_mm256_cmp_pd(r, zero, _CMP_GE_OQ), _mm256_cmp_pd(r, hm1, _CMP_LE_OQ));
        __m256d in_c = _mm256_and_pd(_mm256_cmp_pd(c, zero, _CMP_GE_OQ), _mm256_cmp_pd(c, wm1, _CMP_LE_OQ));
        __m256d inside = _mm256_and_pd(in_r, in_c);
        r = _mm256_and_pd(r, inside), c = _mm256_and_pd(c, inside);
        __m128i i0 = _mm256_cvttpd_epi32(r), j0 = _mm256_cvttpd_epi32(c); /* truncation: floor inside */
        __m128i i1 = _mm_sub_epi32(i0, _mm_cmplt_epi32(i0, last_r)),
                j1 = _mm_sub_epi32(j0, _mm_cmplt_epi32(j0, last_c));
        __m128 tr = _mm256_cvtpd_ps(_mm256_sub_pd(r, _mm256_cvtepi32_pd(i0)));
        __m128 tc = _mm256_cvtpd_ps(_mm256_sub_pd(c, _mm256_cvtepi32_pd(j0)));
        __m128i row0 = _mm_mullo_epi32(i0, width), row1 = _mm_mullo_epi32(i1, width);
        __m128 a = _mm_i32gather_ps(in, _mm_add_epi32(row0, j0), 4),
               b = _mm_i32gather_ps(in, _mm_add_epi32(row0, j1), 4);
        __m128 cc = _mm_i32gather_ps(in, _mm_add_epi32(row1, j0), 4),
               d = _mm_i32gather_ps(in, _mm_add_epi32(row1, j1), 4);
        __m128 top = _mm_add_ps(a, _mm_mul_ps(_mm_sub_ps(b, a), tc));
        __m128 bottom = _mm_add_ps(cc, _mm_mul_ps(_mm_sub_ps(d, cc), tc));
        __m128 v = _mm_add_ps(top, _mm_mul_ps(_mm_sub_ps(bottom, top), tr));
        __m128 keep = _mm_castsi128_ps(
            _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(inside), low_halves)));
        _mm_storeu_ps(out + j, _mm_blendv_ps(fill, v, keep));
    }
    return j;
}

/* GCC fuses a multiply and an add of vector intrinsics into one FMA (one rounding, other bits) wherever the
 * target has FMA, as AVX-512F does; clang fuses only within one C expression, never across intrinsics. */
#ifdef __clang__
#define CNN_NO_CONTRACT
#else
#define CNN_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#endif

/* The same row eight samples at a time on AVX-512, from column 0: the eight coordinates in one register of
 * doubles and the tests as masks, the AVX2 row's operations lane by lane (so the same bits) in about half the
 * instructions; cell indices are computed in double (exact) and truncated once. A LeNet-5 input (32 columns)
 * is four steps a row. The plane must be at least 2 wide (a pair read on the last column starts one cell left). */
__attribute__((target("avx512f,avx512vl"))) CNN_NO_CONTRACT static int warp_row_f32_avx512(float *out, const float *in,
                                                                                           int h, int w, int ow,
                                                                                           double ri, double ci,
                                                                                           const double *m, float cval)
{
    const __m512d zero = _mm512_setzero_pd(), hm1 = _mm512_set1_pd(h - 1), wm1 = _mm512_set1_pd(w - 1),
                  wd = _mm512_set1_pd(w), eight = _mm512_set1_pd(8.0);
    const __m512d vri = _mm512_set1_pd(ri), vci = _mm512_set1_pd(ci), m01 = _mm512_set1_pd(m[1]),
                  m02 = _mm512_set1_pd(m[2]), m11 = _mm512_set1_pd(m[4]), m12 = _mm512_set1_pd(m[5]);
    const __m256i one = _mm256_set1_epi32(1), width = _mm256_set1_epi32(w);
    const __m256 fill = _mm256_set1_ps(cval);
    const __m512i halves = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    __m512d jd = _mm512_setr_pd(0, 1, 2, 3, 4, 5, 6, 7); /* the columns, exact as the scalar path's (double)j */
    int j = 0;
    for (; j + 8 <= ow; j += 8, jd = _mm512_add_pd(jd, eight)) {
        __m512d r = _mm512_add_pd(_mm512_add_pd(vri, _mm512_mul_pd(jd, m01)), m02);
        __m512d c = _mm512_add_pd(_mm512_add_pd(vci, _mm512_mul_pd(jd, m11)), m12);
        __mmask8 inside = _mm512_cmp_pd_mask(r, zero, _CMP_GE_OQ);
        inside = _mm512_mask_cmp_pd_mask(inside, r, hm1, _CMP_LE_OQ);
        inside = _mm512_mask_cmp_pd_mask(inside, c, zero, _CMP_GE_OQ);
        inside = _mm512_mask_cmp_pd_mask(inside, c, wm1, _CMP_LE_OQ);
        r = _mm512_maskz_mov_pd(inside, r), c = _mm512_maskz_mov_pd(inside, c);
        __m512d i0 = _mm512_roundscale_pd(r, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC),
                j0 = _mm512_roundscale_pd(c, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m256 tr = _mm512_cvtpd_ps(_mm512_sub_pd(r, i0)), tc = _mm512_cvtpd_ps(_mm512_sub_pd(c, j0));
        /* each row's two cells as one 8-byte lane from the cell on the left: two gathers instead of four; on
         * the last column (where the second cell weighs 0) the pair that ends at the cell, read twice */
        __mmask8 last = _mm512_cmp_pd_mask(j0, wm1, _CMP_EQ_OQ), down = _mm512_cmp_pd_mask(i0, hm1, _CMP_LT_OQ);
        __m256i k0 = _mm512_cvttpd_epi32(_mm512_add_pd(_mm512_mul_pd(i0, wd), j0));
        k0 = _mm256_mask_sub_epi32(k0, last, k0, one);
        __m256i k1 = _mm256_mask_add_epi32(k0, down, k0, width);
        __m512i top_pair = _mm512_i32gather_epi64(k0, in, 4), bottom_pair = _mm512_i32gather_epi64(k1, in, 4);
        /* one permutation a pair register: the left cells in the low half, the right cells in the high half */
        __m512 tops = _mm512_permutexvar_ps(halves, _mm512_castsi512_ps(top_pair));
        __m512 bottoms = _mm512_permutexvar_ps(halves, _mm512_castsi512_ps(bottom_pair));
        __m256 b = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(tops), 1));
        __m256 d = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(bottoms), 1));
        __m256 a = _mm256_mask_blend_ps(last, _mm512_castps512_ps256(tops), b);
        __m256 cc = _mm256_mask_blend_ps(last, _mm512_castps512_ps256(bottoms), d);
        __m256 top = _mm256_add_ps(a, _mm256_mul_ps(_mm256_sub_ps(b, a), tc));
        __m256 bottom = _mm256_add_ps(cc, _mm256_mul_ps(_mm256_sub_ps(d, cc), tc));
        __m256 v = _mm256_add_ps(top, _mm256_mul_ps(_mm256_sub_ps(bottom, top), tr));
        _mm256_storeu_ps(out + j, _mm256_mask_blend_ps(inside, fill, v));
    }
    return j;
}
/* 2 with AVX-512 (F and VL), 1 with AVX2, else 0 */
static int warp_isa(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") ? 2
           : __builtin_cpu_supports("avx2")                                        ? 1
                                                                                   : 0;
}
#else
static int warp_row_f32_avx2(float *out, const float *in, int h, int w, int ow, double ri, double ci, const double *m,
                             float cval, int j)
{
    (void)out, (void)in, (void)h, (void)w, (void)ow, (void)ri, (void)ci, (void)m, (void)cval;
    return j;
}
static int warp_row_f32_avx512(float *out, const float *in, int h, int w, int ow, double ri, double ci, const double *m,
                               float cval)
{
    (void)out, (void)in, (void)h, (void)w, (void)ow, (void)ri, (void)ci, (void)m, (void)cval;
    return 0;
}
static int warp_isa(void) { return 0; }
#endif

#define TEMPLATE "image.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* One sample of the plane (H, W) at the input coordinate (r, c), order and fill as cnn_affine says. */
static inline real K(sample)(const real *in, long h, long w, double r, double c, int order, cnn_image_fill fill,
                             real cval)
{
    if (fill == IMAGE_FILL_CONSTANT) {
        /* scipy's 'constant': outside the grid's extent (or NaN) is the fill, however close */
        if (!(r >= 0 && r <= (double)(h - 1) && c >= 0 && c <= (double)(w - 1))) return cval;
    } else if (!reduce_coordinate(&r, h, fill) || !reduce_coordinate(&c, w, fill)) return cval;
    if (order == 0) {
        long i = floor_long(r + 0.5), j = floor_long(c + 0.5);
        if (fill != IMAGE_FILL_CONSTANT) i = extend_index(i, h, fill), j = extend_index(j, w, fill);
        return in[i * w + j];
    }
    long i0, j0, i1, j1;
    if (fill == IMAGE_FILL_CONSTANT) {
        /* inside the plane floor is truncation; on the last row or column the second cell has weight 0 (scipy
         * reads it mirrored inside, the value is the same) */
        i0 = (long)r, j0 = (long)c;
        i1 = i0 + (i0 < h - 1), j1 = j0 + (j0 < w - 1);
    } else {
        i0 = floor_long(r), j0 = floor_long(c);
        i1 = extend_index(i0 + 1, h, fill), j1 = extend_index(j0 + 1, w, fill);
    }
    real tr = (real)(r - (double)i0), tc = (real)(c - (double)j0);
    if (fill != IMAGE_FILL_CONSTANT) i0 = extend_index(i0, h, fill), j0 = extend_index(j0, w, fill);
    /* scipy sums the four weighted cells in double; two lerps along the rows, then one down, in the plane's
     * type, give the same value to its rounding in half the multiplications */
    real a = in[i0 * w + j0], b = in[i0 * w + j1], cc = in[i1 * w + j0], d = in[i1 * w + j1];
    real top = a + (b - a) * tc, bottom = cc + (d - cc) * tc;
    return top + (bottom - top) * tr;
}

/* One output plane; called with constant order and fill, so that each loop is compiled without their tests. */
static inline void K(warp_plane)(real *out, const real *in, const real *m, const cnn_affine *g, int order,
                                 cnn_image_fill fill)
{
    /* locals: the stores to out could alias g's fields (cval is a double), which would reload them each sample */
    double m00 = m[0], m01 = m[1], m02 = m[2], m10 = m[3], m11 = m[4], m12 = m[5];
    long h = g->h, w = g->w;
    int oh = g->oh, ow = g->ow;
    real cval = (real)g->cval;
    double md[6] = {m00, m01, m02, m10, m11, m12};
    /* the vector rows: float planes, bilinear, constant fill, cell indices that fit an int */
    int isa = sizeof(real) == sizeof(float) && order == 1 && fill == IMAGE_FILL_CONSTANT && h * w <= INT_MAX
                  ? warp_isa()
                  : 0;
    for (int i = 0; i < oh; i++) {
        double ri = (double)i * m00, ci = (double)i * m10;
        real *row = out + (size_t)i * ow;
        int j = 0;
        if (isa == 2 && w >= 2)
            j = warp_row_f32_avx512((float *)row, (const float *)in, (int)h, (int)w, ow, ri, ci, md, (float)cval);
        if (isa) j = warp_row_f32_avx2((float *)row, (const float *)in, (int)h, (int)w, ow, ri, ci, md, (float)cval, j);
        for (; j < ow; j++) {
            /* scipy's order of the sums, so that a coordinate on the grid's edge falls on the same side */
            double r = ri + (double)j * m01 + m02, c = ci + (double)j * m11 + m12;
            row[j] = K(sample)(in, h, w, r, c, order, fill, cval);
        }
    }
}

/* x (N, C, H, W), matrix (M, 2, 3) with M = 1 (one for every image) or N (one each), y (N, C, OH, OW):
 * y[n, c, i, j] = x[n, c] sampled at matrix[n] · (i, j, 1) */
void K(affine_transform_forward)(real *y, const real *x, const real *matrix, const cnn_affine *g)
{
    size_t hw = (size_t)g->h * g->w, ohw = (size_t)g->oh * g->ow;
    CNN_FOR((size_t)g->n * g->c * ohw * 4 > CNN_PARALLEL_WORK, long, pl, (long)g->n * g->c, {
        const real *m = matrix + (g->per_image ? pl / g->c : 0) * 6, *in = x + pl * hw;
        real *out = y + pl * ohw;
        if (g->fill == IMAGE_FILL_CONSTANT && g->order == 1) K(warp_plane)(out, in, m, g, 1, IMAGE_FILL_CONSTANT);
        else if (g->fill == IMAGE_FILL_CONSTANT) K(warp_plane)(out, in, m, g, 0, IMAGE_FILL_CONSTANT);
        else K(warp_plane)(out, in, m, g, g->order, g->fill);
    });
}

#endif
