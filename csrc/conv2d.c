/* conv2d.c: 2-D convolution (cross-correlation, as PyTorch) over NCHW, with stride, zero padding,
 * dilation and groups. Six paths, chosen from the geometry alone so forward and backward agree:
 *   depthwise (one input channel per group: groups = C > 1, the lecture's per-channel 1x1 scale included):
 *     row by row over each plane (conv_depthwise.c), the scale as whole-plane loops, no scratch;
 *   dense (the window covers the whole unpadded input, LeNet's C5): one gemm over the batch, as a dense layer;
 *   1x1, stride 1, no padding: a gemm per sample on x as it lies, the bias added inside gemm's register tile;
 *   3x3, stride 1, ungrouped, from 64 channels on 40x40 planes: Winograd F(2x2, 3x3) (conv2d_winograd.h), 16
 *     gemms per block of 2x2 output tiles on transformed inputs and kernels, 2.25x fewer multiply-adds;
 *   groups = 1 with a stride at most the window (ResNet's and the CIFAR convnet's 3x3 layers): direct phases
 *     (conv2d_direct.h), gemms whose operand rows are windows of a copy of the sample's input: no im2col, which
 *     at 16 to 64 channels cost as much as the multiply-adds, and no col2im;
 *   otherwise (grouped, or strided past the window) im2col in tiles: a tile of CONV_TILE output positions at a
 *     time has its columns
 *     (C·KH·KW, CONV_TILE) built in cache and multiplied at once, forward and backward alike, so the
 *     workspace is a tile per batch chunk, never a batch's columns (a 5x5 64-channel layer at batch 16
 *     needed 321 MB of columns; its tiles need 26 MB).
 * Threads take whole chunks of samples; the weight gradient sums over the batch in a fixed number of chunks,
 * so results are bitwise identical for any thread count.
 * Worked example: x = [[1 2 3], [4 5 6], [7 8 9]] (1x1x3x3), w = [[1 0], [0 1]] (1x1x2x2), no bias
 *   → y = [[1+5, 2+6], [4+8, 5+9]] = [[6 8], [12 14]]. */
#ifndef real
#include <string.h>
#include "cnn.h"

typedef enum { PATH_IM2COL, PATH_POINTWISE, PATH_DEPTHWISE, PATH_DENSE, PATH_DIRECT, PATH_WINOGRAD } conv_path;

/* Elements of the direct path's copies of one sample's input and dy, at most (its scratch per chunk) */
#define DIRECT_MAX_COPIES (1 << 21)

/* From these sizes on, 3x3 stride-1 convolutions take the Winograd path: measured against the direct path at
 * 1 thread (float32, issue 20), it wins at 64 channels on 40x40 and 56x56 planes, and loses at 28x28 and below
 * (its transforms cost more per multiply-add saved as planes shrink) and at 32 channels. */
#define WINO_MIN_CHANNELS 64
#define WINO_MIN_POSITIONS (40 * 40)
/* the tests' switch: 1 puts every convolution the Winograd path can take on it, -1 none, 0 follows the sizes */
static int wino_forced;
void cnn_set_conv2d_winograd(int mode) { wino_forced = mode; }
int cnn_get_conv2d_winograd(void) { return wino_forced; }

/* The path from the geometry alone, so that forward and backward agree on it and on the scratch. */
static conv_path conv2d_path(const cnn_conv2d *g)
{
    /* one input channel feeding several outputs is better served by gemm's register tile */
    if (g->groups == g->c && g->c > 1) return PATH_DEPTHWISE;
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 && g->oh == g->h &&
        g->ow == g->w)
        return PATH_POINTWISE;
    /* the window covers the whole unpadded input once (LeNet's C5): each sample's columns are x itself */
    if (g->groups == 1 && g->kh == g->h && g->kw == g->w && g->oh == 1 && g->ow == 1 && g->pt == 0 && g->pl == 0 &&
        g->dil_h == 1 && g->dil_w == 1)
        return PATH_DENSE;
    /* Winograd F(2x2, 3x3) (conv2d_winograd.h): 3x3 at stride 1, where its transforms cost less than the
     * multiply-adds they save */
    if (g->groups == 1 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dil_h == 1 && g->dil_w == 1 &&
        g->winograd >= 0 &&
        (g->winograd > 0 ||
         (g->c >= WINO_MIN_CHANNELS && g->oc >= WINO_MIN_CHANNELS && (long long)g->oh * g->ow >= WINO_MIN_POSITIONS)))
        return PATH_WINOGRAD;
    /* every phase plane (direct_geo below) holds taps: a stride at most the window, and not both stride and
     * dilation; and a chunk's copies of a sample's input and dy stay under DIRECT_MAX_COPIES (a 64-channel
     * 56x56 layer's are 0.45 M; a huge sample goes to im2col, whose tiles never grow with it) */
    double msi = (double)((long long)(g->kh - 1) * g->dil_h / g->sh);
    double hq = g->oh + msi, wq = g->ow + (double)((long long)(g->kw - 1) * g->dil_w / g->sw);
    double copies = (double)g->c * g->sh * g->sw * hq * wq + (double)g->oc * (hq + msi + 1) * wq;
    if (g->groups == 1 && g->sh <= g->kh && g->sw <= g->kw && (g->sh == 1 || g->dil_h == 1) &&
        (g->sw == 1 || g->dil_w == 1) && copies <= DIRECT_MAX_COPIES)
        return PATH_DIRECT;
    return PATH_IM2COL;
}

/* a depthwise 1x1 convolution at stride 1 without padding: y = w[o]·x[o/m] + b[o], plane by plane */
static int is_scale(const cnn_conv2d *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && !g->pt && !g->pb && !g->pl && !g->pr;
}

const char *conv2d_path_name(const cnn_conv2d *g)
{
    static const char *names[] = {"im2col tiles", "pointwise gemm", "depthwise direct",
                                  "dense gemm",   "direct phases",  "winograd F(2x2,3x3)"};
    return names[conv2d_path(g)];
}

/* Output positions a tile of columns covers: a multiple of the register tile's width (16 or 32 floats),
 * so only a sample's last tile has a ragged edge, and wide enough that the gemm reuses each weight row
 * over 256 columns. A 64-channel 3x3 tile is 576 KiB (f32): it stays in L2 from the im2col that writes
 * it to the gemm that reads it, where a whole sample's columns (7 MB at 56x56) went out to DRAM and back. */
#define CONV_TILE 256
static inline int conv_tile(const cnn_conv2d *g)
{
    long long ohw = (long long)g->oh * g->ow;
    return ohw < CONV_TILE ? (int)ohw : CONV_TILE;
}

/* The batch in R chunks of consecutive samples, fixed by N alone: chunk r is [n·r/R, n·(r+1)/R). */
static inline int conv_chunks(const cnn_conv2d *g) { return g->n < CNN_REDUCE_CHUNKS ? g->n : CNN_REDUCE_CHUNKS; }

/* A tile's rows lie 16 elements (one or two cache lines) further apart than its width: at a width of 1 KiB,
 * the 256 rows a gemm panel sweeps would share 8 of L1's 64 sets and evict each other. */
static inline int conv_tile_ld(const cnn_conv2d *g) { return conv_tile(g) + 16; }

/* one chunk's tile of columns (C·KH·KW, T) at leading dimension conv_tile_ld; in scratch the R tiles, then
 * the R chunk sums of dw */
static size_t conv2d_columns_size(const cnn_conv2d *g)
{
    return conv2d_path(g) == PATH_IM2COL ? (size_t)g->c * g->kh * g->kw * conv_tile_ld(g) : 0;
}

/* The direct path's layout (conv2d_direct.h). A sample's input becomes sh·sw phase planes per channel, plane
 * (a, b) holding the zero-padded input's cells (u·sh + a, v·sw + b) for u < hq, v < wq: tap (i, j) of output
 * (oh, ow) is then cell (oh + si, ow + sj) of plane ((i·dh) mod sh, (j·dw) mod sw), si = i·dh / sh,
 * sj = j·dw / sw, so with positions flat (oh·wq + ow) every tap reads a window of the planes at one offset.
 * Rows are wq = OW + msj cells: the msj extra columns are junk outputs the forward drops (and zeros in dy's
 * copy, which the input gradient reads past its row ends). dy's copy has top = msi + 1 zero rows above and
 * msi below each channel, the reach of a tap read backwards. */
typedef struct {
    int ph, hq, wq, msi, msj, top;
    size_t plane, dplane; /* hq·wq; one channel of dy's copy, (top + OH + msi)·wq */
} direct_geo;

static direct_geo direct_layout(const cnn_conv2d *g)
{
    direct_geo d;
    d.ph = g->sh * g->sw;
    d.msi = (g->kh - 1) * g->dil_h / g->sh;
    d.msj = (g->kw - 1) * g->dil_w / g->sw;
    d.hq = g->oh + d.msi;
    d.wq = g->ow + d.msj;
    d.top = d.msi + 1;
    d.plane = (size_t)d.hq * d.wq;
    d.dplane = ((size_t)d.top + g->oh + d.msi) * d.wq;
    return d;
}

/* Reals readable, and zero, past the planes and dy's copy: the offset kernels read up to 47 past a window. */
#define DIRECT_SLACK 64
/* The direct path's tap offset tables: the forward's (C·KH·KW), then the input gradient's per phase (OC·KH·KW
 * in all). They index memory, so they live in the binding's own allocation, not in scratch, which the caller
 * (and another thread of theirs) can write during the call. */
size_t conv2d_offsets_size(const cnn_conv2d *g)
{
    return conv2d_path(g) == PATH_DIRECT ? ((size_t)g->c + g->oc) * g->kh * g->kw : 0;
}

/* scratch of the direct path: the input gradient's weights per phase (C, OC·taps); then per
 * chunk two regions, each holding one buffer at a time: the phase planes, later the input gradient's; dy
 * transposed, later dy's copy (the forward's outputs with junk columns in the forward); then the chunks'
 * weight gradients, transposed (C·KH·KW, OC). */
static size_t direct_shared_size(const cnn_conv2d *g)
{
    return cnn_size_mul((size_t)g->c * g->oc, (size_t)g->kh * g->kw);
}
static size_t direct_planes_size(const cnn_conv2d *g, const direct_geo *d)
{
    return cnn_size_mul(cnn_size_mul((size_t)g->c, d->ph), d->plane);
}
/* the first region: the planes, msj + DIRECT_SLACK zeros after them */
static size_t direct_region1(const cnn_conv2d *g)
{
    direct_geo d = direct_layout(g);
    return cnn_size_add(direct_planes_size(g, &d), (size_t)d.msj + DIRECT_SLACK);
}
/* the second: dy's copy and its slack, or dy transposed (OH·wq, OC) between two zero rows before and after */
static size_t direct_region2(const cnn_conv2d *g)
{
    direct_geo d = direct_layout(g);
    return cnn_size_add(cnn_size_mul((size_t)g->oc, d.dplane), DIRECT_SLACK + 4 * (size_t)g->oc);
}

/* The cells [lo, hi) of phase plane (a, b), flat, that hold the unpadded input: the rest of the plane is
 * padding, or past it, and the input gradient need not compute it (a fifth of an 8x8 plane). */
static void direct_phase_range(const cnn_conv2d *g, const direct_geo *d, int a, int b, size_t *lo, size_t *hi)
{
    long u0 = g->pt > a ? ((long)g->pt - a + g->sh - 1) / g->sh : 0, u1 = ((long)g->h - 1 + g->pt - a) / g->sh;
    long v0 = g->pl > b ? ((long)g->pl - b + g->sw - 1) / g->sw : 0, v1 = ((long)g->w - 1 + g->pl - b) / g->sw;
    u1 = u1 < d->hq - 1 ? u1 : d->hq - 1;
    v1 = v1 < d->wq - 1 ? v1 : d->wq - 1;
    *lo = *hi = 0;
    if (u1 < u0 || v1 < v0 || g->h - 1 + g->pt < a || g->w - 1 + g->pl < b) return;
    *lo = (size_t)u0 * d->wq + v0;
    *hi = (size_t)u1 * d->wq + v1 + 1;
}

/* offs (C·KH·KW): tap (c, i, j)'s window in the phase planes */
static void direct_forward_offsets(ptrdiff_t *offs, const cnn_conv2d *g, const direct_geo *d)
{
    for (int c = 0; c < g->c; c++)
        for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++) {
                int a = i * g->dil_h % g->sh, b = j * g->dil_w % g->sw;
                int si = i * g->dil_h / g->sh, sj = j * g->dil_w / g->sw;
                offs[(c * g->kh + i) * g->kw + j] = (ptrdiff_t)((size_t)(c * g->sh + a) * g->sw + b) * d->plane +
                                                    (ptrdiff_t)si * d->wq + sj;
            }
}

/* The taps of phase plane (a, b): rows i with i·dh ≡ a (mod sh) times columns j with j·dw ≡ b (mod sw). */
static int phase_taps(const cnn_conv2d *g, int a, int b)
{
    int ni = 0, nj = 0;
    for (int i = 0; i < g->kh; i++) ni += i * g->dil_h % g->sh == a;
    for (int j = 0; j < g->kw; j++) nj += j * g->dil_w % g->sw == b;
    return ni * nj;
}

/* The Winograd path's layout (conv2d_winograd.h). One pass convolves in (N, CI, IH, IW) into out (N, CO, OH, OW)
 * with the input's origin at (-pt, -pl): the forward, x into y, or the input gradient, dy into dx (padding 2 - p).
 * Its th·tw tiles per sample (2x2 outputs each, OH·OW rounded up, and a junk tile ending each row) are numbered
 * across the batch and cut into blocks of T, so that an 8x8 image's 20 tiles still fill a gemm; R chunks of consecutive blocks each have
 * their own work (16·(CI + CO)·T) and, in the backward, their own sum of the weight gradient's blocks. */
typedef struct {
    int n, ci, ih, iw, co, oh, ow, pt, pl, th, tw, T, R;
    long tiles, blocks;
    size_t vs, ms; /* the elements' stride in a block's input (CI, T) and output (CO, T) transforms */
} wino_geo;

/* Reals of one chunk's work at most: 1 MiB of float32 keeps a block's transforms in L2 (T = 128 tiles at 64
 * channels in and out; 512 at 16) */
#define WINO_CHUNK (1 << 18)
static wino_geo wino_layout(int n, int ci, int ih, int iw, int co, int oh, int ow, int pt, int pl)
{
    wino_geo q = {.n = n, .ci = ci, .ih = ih, .iw = iw, .co = co, .oh = oh, .ow = ow, .pt = pt, .pl = pl};
    q.th = (oh + 1) / 2;
    q.tw = (ow + 1) / 2 + 1; /* and a junk tile past each row (wino_input_tiles) */
    q.tiles = (long)n * q.th * q.tw;
    long T = WINO_CHUNK / (16 * ((long)ci + co)) / 16 * 16;
    T = T < 16 ? 16 : T;
    q.T = (int)(q.tiles < T ? q.tiles : T);
    q.blocks = (q.tiles + q.T - 1) / q.T;
    q.R = (int)(q.blocks < CNN_REDUCE_CHUNKS ? q.blocks : CNN_REDUCE_CHUNKS);
    /* a cache line past the elements' own size: at 32 KiB apart, the 16 elements' streams would share 16 of
     * L1's 64 sets, one way each */
    q.vs = (size_t)ci * q.T + 16;
    q.ms = (size_t)co * q.T + 16;
    return q;
}
static wino_geo wino_forward_geo(const cnn_conv2d *g)
{
    return wino_layout(g->n, g->c, g->h, g->w, g->oc, g->oh, g->ow, g->pt, g->pl);
}
static wino_geo wino_input_grad_geo(const cnn_conv2d *g)
{
    return wino_layout(g->n, g->oc, g->oh, g->ow, g->c, g->h, g->w, 2 - g->pt, 2 - g->pl);
}
/* a chunk's work: the block's input transforms (16, CI, T), its output's (16, CO, T), the four phase planes of
 * a segment of tiles (at most T / tw + 3 rows of tw, and a cell) */
static size_t wino_chunk_size(const wino_geo *q)
{
    return 16 * (q->vs + q->ms) + 4 * ((size_t)q->T + 3 * (size_t)q->tw + 1);
}
/* scratch: the transformed kernels U (16, OC, C); the chunks' work; in the backward the chunks' weight
 * gradients (16, OC, C) each */
static size_t wino_weights_size(const cnn_conv2d *g) { return cnn_size_mul(16, cnn_size_mul((size_t)g->oc, g->c)); }
static size_t wino_work_size(const cnn_conv2d *g)
{
    wino_geo f = wino_forward_geo(g), b = wino_input_grad_geo(g);
    size_t sf = cnn_size_mul((size_t)f.R, wino_chunk_size(&f)), sb = cnn_size_mul((size_t)b.R, wino_chunk_size(&b));
    return sf > sb ? sf : sb;
}
static size_t wino_scratch_size(const cnn_conv2d *g)
{
    size_t parts = cnn_size_mul((size_t)wino_forward_geo(g).R, wino_weights_size(g));
    return cnn_size_add(cnn_size_add(wino_weights_size(g), wino_work_size(g)), parts);
}

/* A run of tiles reads a few rows of each channel's plane in turn: planes apart, where no hardware prefetcher
 * looks, so the rows WINO_AHEAD channels on are asked for while this channel's are transformed. */
#define WINO_AHEAD 2
static inline void wino_prefetch(const void *p, size_t bytes)
{
    for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch((const char *)p + b);
}

size_t conv2d_scratch_size(const cnn_conv2d *g)
{
    conv_path path = conv2d_path(g);
    if (path == PATH_DEPTHWISE || path == PATH_DENSE) return 0;
    if (path == PATH_WINOGRAD) return wino_scratch_size(g);
    if (path == PATH_DIRECT) {
        size_t per_chunk = cnn_size_add(cnn_size_add(direct_region1(g), direct_region2(g)),
                                        cnn_size_mul((size_t)g->oc * g->c, g->kh * g->kw));
        return cnn_size_add(direct_shared_size(g), cnn_size_mul((size_t)conv_chunks(g), per_chunk));
    }
    /* module.c keeps n·oh·ow and c·kh·kw within INT_MAX, so only these products can leave size_t */
    size_t window = (size_t)(g->c / g->groups) * g->kh * g->kw;
    size_t per_chunk = cnn_size_add(conv2d_columns_size(g), cnn_size_mul((size_t)g->oc, window));
    return cnn_size_mul((size_t)conv_chunks(g), per_chunk);
}

/* Outputs o in [lo, hi) read input o·s + off inside [0, in): the rest of the row is padding. */
static inline void span(int out, int in, int s, int off, int *lo, int *hi)
{
    long long a = off >= 0 ? 0 : (-(long long)off + s - 1) / s; /* s up to INT_MAX: sums in long long */
    long long b = (long long)in - off <= 0 ? 0 : ((long long)in - off + s - 1) / s;
    *lo = a < out ? (int)a : out;
    *hi = b < out ? (int)b : out;
    if (*hi < *lo) *hi = *lo;
}

/* The end b of the run of a tile's positions that starts at column a of an output row, with `left` positions
 * left in the tile: a tile of positions [p0, p0 + np) in OH·OW order crosses rows, and each run along one
 * row is copied as a row segment. The runs are stepped through (the next starts a row down at column 0):
 * a division per run cost as much as its copy on 8x8 images. */
static inline int run_end(const cnn_conv2d *g, int a, int left) { return g->ow - a < left ? g->ow : a + left; }

#define TEMPLATE "conv2d.c"
#include "template.h" /* the kernels below, once per real type */
#else

/* A row kernel over outputs o in [lo, hi) writing input o·s + off. dst and src never overlap, which gcc
 * cannot prove on its own: `omp simd` lets the s = 1 loop vectorize (rows are short, 10 to 28 cells). */
static inline void K(row_scatter)(real *restrict dst, const real *restrict src, real a, int lo, int hi, int s, int off)
{
    if (s == 1) {
#pragma omp simd
        for (int o = lo; o < hi; o++) dst[o + off] += a * src[o];
    } else
        for (int o = lo; o < hi; o++) dst[o * s + off] += a * src[o];
}

/* Σ x[p] and Σ a[p]·b[p] in LANES running sums, element p in lane p mod LANES, added in a fixed order:
 * one running sum waits out an add's latency per element (LeNet's C1 bias gradient is 150,000 adds a batch). */
#define LANES 8
static inline real K(sum_lanes)(const real *x, int count)
{
    real s[LANES] = {0};
    int p = 0;
    for (; p + LANES <= count; p += LANES)
        for (int l = 0; l < LANES; l++) s[l] += x[p + l];
    for (int l = 0; p < count; p++, l++) s[l] += x[p];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static inline real K(dot_lanes)(const real *a, const real *b, int count)
{
    real s[LANES] = {0};
    int p = 0;
    for (; p + LANES <= count; p += LANES)
        for (int l = 0; l < LANES; l++) s[l] += a[p + l] * b[p + l];
    for (int l = 0; p < count; p++, l++) s[l] += a[p] * b[p];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
#undef LANES

/* columns of output positions [p0, p0 + np) of one sample (C·KH·KW, np), rows ld apart: row (c, i, j), column p holds
 * x[c, oh·sh - pt + i·dh, ow·sw - pl + j·dw] for p = oh·OW + ow, zero in the padding */
CNN_VECTOR_CLONES static void K(im2col)(real *restrict col, const real *restrict x, const cnn_conv2d *g, int p0, int np,
                                        int ld)
{
    int kk = g->kh * g->kw;
    for (int r = 0; r < g->c * kk; r++) {
        int c = r / kk, i = r % kk / g->kw, j = r % g->kw;
        int off_h = i * g->dil_h - g->pt, off_w = j * g->dil_w - g->pl, lo, hi;
        span(g->ow, g->w, g->sw, off_w, &lo, &hi);
        const real *plane = x + (size_t)c * g->h * g->w;
        real *out = col + (size_t)r * ld;
        for (int p = p0, oh = p0 / g->ow, a = p0 % g->ow, b; p < p0 + np; p += b - a, out += b - a, oh++, a = 0) {
            b = run_end(g, a, p0 + np - p);
            int ih = oh * g->sh + off_h, l = lo > a ? lo : a, h = hi < b ? hi : b;
            if (ih < 0 || ih >= g->h || l >= h) {
                for (int ow = a; ow < b; ow++) out[ow - a] = 0;
                continue;
            }
            const real *row = plane + (size_t)ih * g->w;
            for (int ow = a; ow < l; ow++) out[ow - a] = 0;
            if (g->sw == 1) /* rows of 8 to 56 cells: an inline loop, where a memcpy call cost more than its copy */
                for (long ow = l; ow < h; ow++) out[ow - a] = row[ow + off_w];
            else
                for (int ow = l; ow < h; ow++) out[ow - a] = row[ow * g->sw + off_w];
            for (int ow = h; ow < b; ow++) out[ow - a] = 0;
        }
    }
}

/* dx (C, H, W) of one sample += every entry of the columns of positions [p0, p0 + np) back onto the pixel it
 * was copied from. Kernel columns j run outermost: rows for neighbouring j overlap shifted by one cell, and
 * a vector load that partly overlaps a store still in flight waits for it (store-to-load forwarding fails);
 * with j outermost, a row is read back only at the alignment it was just stored at. */
CNN_VECTOR_CLONES static void K(col2im)(real *dx, const real *col, const cnn_conv2d *g, int p0, int np, int ld)
{
    int kk = g->kh * g->kw;
    for (int j = 0; j < g->kw; j++) {
        int off_w = j * g->dil_w - g->pl, lo, hi;
        span(g->ow, g->w, g->sw, off_w, &lo, &hi);
        for (int c = 0; c < g->c; c++)
            for (int i = 0; i < g->kh; i++) {
                int off_h = i * g->dil_h - g->pt;
                real *plane = dx + (size_t)c * g->h * g->w;
                const real *in = col + (size_t)(c * kk + i * g->kw + j) * ld;
                for (int p = p0, oh = p0 / g->ow, a = p0 % g->ow, b; p < p0 + np;
                     p += b - a, in += b - a, oh++, a = 0) {
                    b = run_end(g, a, p0 + np - p);
                    int ih = oh * g->sh + off_h, l = lo > a ? lo : a, h = hi < b ? hi : b;
                    if (ih < 0 || ih >= g->h || l >= h) continue;
                    K(row_scatter)(plane + (size_t)ih * g->w + (ptrdiff_t)l * g->sw + off_w, in + (l - a), 1, 0, h - l,
                                   g->sw, 0);
                }
            }
    }
}

/* The 1x1 depthwise case (the lecture's per-channel a·x + b) as whole-plane loops that vectorize:
 * x (N, C, H, W), w (OC), b (OC) or NULL, y (N, OC, H, W), output o reading input channel o/m. */
static void K(scale_forward)(real *y, const real *x, const real *w, const real *b, const cnn_conv2d *g)
{
    int m = g->oc / g->c;
    size_t hw = (size_t)g->h * g->w;
    CNN_FOR((size_t)g->n * g->oc * hw > CNN_PARALLEL_WORK, int, n, g->n, {
        for (int o = 0; o < g->oc; o++) {
            const real *in = x + ((size_t)n * g->c + o / m) * hw;
            real *out = y + ((size_t)n * g->oc + o) * hw, a = w[o], bias = b ? b[o] : 0;
            for (size_t p = 0; p < hw; p++) out[p] = bias + a * in[p];
        }
    });
}

/* dy (N, OC, H, W), x (N, C, H, W), w (OC) → dw (OC) [+]= Σ dy·x over the planes, dx (N, C, H, W) = Σ_o w·dy */
static void K(scale_backward)(real *dx, real *dw, const real *dy, const real *x, const real *w, const cnn_conv2d *g,
                              int accumulate)
{
    int m = g->oc / g->c;
    size_t hw = (size_t)g->h * g->w;
    /* dw[o] sums each plane's products, then the planes in batch order, inside one thread */
    CNN_FOR((size_t)g->n * g->oc * hw > CNN_PARALLEL_WORK, int, o, g->oc, {
        real acc = 0;
        for (int n = 0; n < g->n; n++) {
            const real *grad = dy + ((size_t)n * g->oc + o) * hw, *in = x + ((size_t)n * g->c + o / m) * hw;
            acc += K(dot_lanes)(grad, in, (int)hw);
        }
        dw[o] = accumulate ? dw[o] + acc : acc;
    });
    if (!dx) return;
    CNN_FOR((size_t)g->n * g->oc * hw > CNN_PARALLEL_WORK, int, n, g->n, {
        for (int c = 0; c < g->c; c++) {
            real *out = dx + ((size_t)n * g->c + c) * hw;
            for (int o = c * m; o < (c + 1) * m; o++) {
                const real *grad = dy + ((size_t)n * g->oc + o) * hw;
                real a = w[o];
                if (o == c * m)
                    for (size_t p = 0; p < hw; p++) out[p] = a * grad[p];
                else
                    for (size_t p = 0; p < hw; p++) out[p] += a * grad[p];
            }
        }
    });
}

/* y (N, OC) += b (OC): the dense path's bias (OH·OW = 1) */
static void K(add_bias)(real *y, const real *b, const cnn_conv2d *g)
{
    CNN_FOR((size_t)g->n * g->oc > CNN_PARALLEL_WORK, int, n, g->n, {
        for (int o = 0; o < g->oc; o++) y[(size_t)n * g->oc + o] += b[o];
    });
}

/* Worth a second thread: below this many multiply-adds per call the fork costs more than it saves. */
static inline int K(parallel)(const cnn_conv2d *g)
{
    return g->n > 1 && (size_t)g->n * g->oc * g->oh * g->ow * (g->c / g->groups) * g->kh * g->kw > CNN_PARALLEL_WORK;
}

/* Samples [lo, hi) of chunk r of R (conv_chunks) */
#define CHUNK_BOUNDS(r, R, n, lo, hi) \
    int lo = (int)((long long)(r) * (n) / (R)), hi = (int)((long long)((r) + 1) * (n) / (R))

#include "conv2d_direct.h"
#include "conv2d_winograd.h"

/* x (N, C, H, W), w (OC, C/G, KH, KW), b (OC) or NULL, y (N, OC, OH, OW), scratch (conv2d_scratch_size).
 * Per group, y (OC/G, OH·OW) = w (OC/G, CK) · columns (CK, OH·OW) + b with CK = C/G·KH·KW, a tile of
 * output positions at a time: the gemm writes NCHW directly, adds the bias in its register tile, and
 * uses the weight as it lies. */
void K(conv2d_forward)(real *y, const real *x, const real *w, const real *b, real *scratch, ptrdiff_t *offsets,
                       const cnn_conv2d *g)
{
    conv_path path = conv2d_path(g);
    int G = g->groups, cg = g->c / G, og = g->oc / G, ohw = g->oh * g->ow, ck = cg * g->kh * g->kw;
    size_t xs = (size_t)g->c * g->h * g->w, ys = (size_t)g->oc * ohw;
    if (path == PATH_DEPTHWISE) { /* conv_depthwise.c, but the per-channel scale */
        if (is_scale(g)) K(scale_forward)(y, x, w, b, g);
        else K(conv2d_depthwise_forward)(y, x, w, b, g);
        return;
    }
    if (path == PATH_DIRECT) {
        K(direct_forward)(y, x, w, b, scratch, offsets, g);
        return;
    }
    if (path == PATH_WINOGRAD) {
        K(wino_forward)(y, x, w, b, scratch, g);
        return;
    }
    if (path == PATH_DENSE) { /* y (N, OC) = x (N, CK) · wᵀ */
        K(gemm_nt)(y, x, w, g->n, g->oc, ck, 0);
        if (b) K(add_bias)(y, b, g);
        return;
    }
    if (path == PATH_POINTWISE) { /* x[n] (C, H·W) is its own columns */
        CNN_FOR(K(parallel)(g), int, n, g->n, {
            for (int q = 0; q < G; q++)
                K(gemm_bias)(y + n * ys + (size_t)q * og * ohw, w + (size_t)q * og * ck,
                             x + n * xs + (size_t)q * ck * ohw, b ? b + q * og : NULL, og, ohw, ck, ck, 1, ohw, 1, ohw);
        });
        return;
    }
    /* Chunks of samples are independent: each thread takes whole chunks, and each chunk its own tile of
     * columns in scratch. y[n] group q, positions [p0, p0 + np) = w group q · the tile's group q rows. */
    int R = conv_chunks(g), T = conv_tile(g), ld = conv_tile_ld(g);
    CNN_FOR(K(parallel)(g), int, r, R, {
        CHUNK_BOUNDS(r, R, g->n, lo, hi);
        real *col = scratch + r * conv2d_columns_size(g);
        for (int n = lo; n < hi; n++)
            for (int p0 = 0; p0 < ohw; p0 += T) {
                int np = ohw - p0 < T ? ohw - p0 : T;
                K(im2col)(col, x + n * xs, g, p0, np, ld);
                for (int q = 0; q < G; q++)
                    K(gemm_bias)(y + n * ys + (size_t)q * og * ohw + p0, w + (size_t)q * og * ck,
                                 col + (size_t)q * ck * ld, b ? b + q * og : NULL, og, np, ck, ck, 1, ld, 1, ohw);
            }
    });
}

/* dy (N, OC, OH, OW), x, w as the forward had them → dx (N, C, H, W) overwritten (NULL skips it),
 * dw (OC, C/G, KH, KW) and db (OC) added to or, when accumulate = 0, overwritten (NULL skips db); scratch is
 * workspace only (nothing of the forward's is read back). Per sample, group and tile of output positions,
 * on the tile's columns (CK, np) rebuilt by im2col: dw += dy (OG, np) · columnsᵀ, and the columns' gradient
 * wᵀ · dy, written over the same tile, goes back onto dx by col2im. */
void K(conv2d_backward)(real *dx, real *dw, real *db, const real *dy, const real *x, const real *w, real *scratch,
                        ptrdiff_t *offsets, const cnn_conv2d *g, int accumulate)
{
    int G = g->groups, cg = g->c / G, og = g->oc / G, ohw = g->oh * g->ow, ck = cg * g->kh * g->kw;
    size_t xs = (size_t)g->c * g->h * g->w, ys = (size_t)g->oc * ohw;
    conv_path path = conv2d_path(g);
    if (path == PATH_DEPTHWISE && !is_scale(g)) { /* conv_depthwise.c sums db while dy is in cache */
        K(conv2d_depthwise_backward)(dx, dw, db, dy, x, w, g, accumulate);
        return;
    }
    if (db && ohw == 1) { /* one pixel per plane (the dense path): rows of dy summed in batch order, as vectors */
        for (int o = 0; o < g->oc; o++) db[o] = accumulate ? db[o] : 0;
        for (int n = 0; n < g->n; n++)
            for (int o = 0; o < g->oc; o++) db[o] += dy[n * ys + o];
    } else if (db) {
        CNN_FOR((size_t)g->n * g->oc * ohw > CNN_PARALLEL_WORK, int, o, g->oc, {
            real acc = 0;
            for (int n = 0; n < g->n; n++) acc += K(sum_lanes)(dy + n * ys + (size_t)o * ohw, ohw);
            db[o] = accumulate ? db[o] + acc : acc;
        });
    }
    if (path == PATH_DEPTHWISE) {
        K(scale_backward)(dx, dw, dy, x, w, g, accumulate);
        return;
    }
    if (path == PATH_DIRECT) {
        K(direct_backward)(dx, dw, dy, x, w, scratch, offsets, g, accumulate);
        return;
    }
    if (path == PATH_WINOGRAD) {
        K(wino_backward)(dx, dw, dy, x, w, scratch, g, accumulate);
        return;
    }
    if (path == PATH_DENSE) { /* as a dense layer: the gemm sums over the batch in one fixed order */
        K(gemm_tn)(dw, dy, x, g->oc, ck, g->n, accumulate); /* dw (OC, CK) [+]= dyᵀ · x (N, CK) */
        if (dx) K(gemm_nn)(dx, dy, w, g->n, ck, g->oc, 0);  /* dx (N, CK) = dy (N, OC) · w (OC, CK) */
        return;
    }
    /* dw sums over the batch in the R chunks: each chunk's sum goes to its own slice of scratch, and the
     * slices are added in chunk order, so any thread count gives the same bits. POINTWISE has one tile per
     * sample, x itself, and its column gradient is dx itself. */
    int R = conv_chunks(g), T = path == PATH_IM2COL ? conv_tile(g) : ohw;
    int ld = path == PATH_IM2COL ? conv_tile_ld(g) : ohw;
    size_t wsize = (size_t)g->oc * ck, colsize = conv2d_columns_size(g);
    real *part = scratch + R * colsize;
    CNN_FOR(K(parallel)(g), int, r, R, {
        CHUNK_BOUNDS(r, R, g->n, lo, hi);
        real *col = path == PATH_IM2COL ? scratch + r * colsize : NULL;
        for (int n = lo; n < hi; n++) {
            const real *grad = dy + n * ys;
            if (col && dx) memset(dx + n * xs, 0, xs * sizeof(real));
            for (int p0 = 0; p0 < ohw; p0 += T) {
                int np = ohw - p0 < T ? ohw - p0 : T;
                if (col) K(im2col)(col, x + n * xs, g, p0, np, ld);
                const real *cols = col ? col : x + n * xs;
                for (int q = 0; q < G; q++) /* chunk r's dw group q (OG, CK) [+]= dy (OG, np) · columnsᵀ */
                    K(gemm)(part + r * wsize + (size_t)q * og * ck, grad + (size_t)q * og * ohw + p0,
                            cols + (size_t)q * ck * ld, og, ck, np, ohw, 1, 1, ld, ck, n > lo || p0 > 0);
                if (!dx) continue;
                real *dcol = col ? col : dx + n * xs;
                for (int q = 0; q < G; q++) /* column gradient (CK, np) = w group q (OG, CK)ᵀ · dy (OG, np) */
                    K(gemm)(dcol + (size_t)q * ck * ld, w + (size_t)q * og * ck, grad + (size_t)q * og * ohw + p0, ck,
                            np, og, 1, ck, ohw, 1, ld, 0);
                if (col) K(col2im)(dx + n * xs, col, g, p0, np, ld);
            }
        }
    });
    CNN_FOR(wsize * R > CNN_PARALLEL_WORK, size_t, e, wsize, {
        real acc = part[e];
        for (int r = 1; r < R; r++) acc += part[r * wsize + e];
        dw[e] = accumulate ? dw[e] + acc : acc;
    });
}

/* ---- for conv_transpose.c: a transposed convolution is this convolution's input gradient, so it shares the
 * column layout. Entry points to the static row kernels above (which the loader's clones keep static), over a
 * whole sample: columns (C·KH·KW, OH·OW), and col2im overwrites dx. */
void K(conv2d_im2col)(real *col, const real *x, const cnn_conv2d *g)
{
    K(im2col)(col, x, g, 0, g->oh * g->ow, g->oh * g->ow);
}
void K(conv2d_col2im)(real *dx, const real *col, const cnn_conv2d *g)
{
    memset(dx, 0, (size_t)g->c * g->h * g->w * sizeof(real));
    K(col2im)(dx, col, g, 0, g->oh * g->ow, g->oh * g->ow);
}

#undef CHUNK_BOUNDS
#endif
