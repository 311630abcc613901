/* cnn.h: every kernel of the cnn core. No Python here.
 *
 * Contract (kernels trust their inputs; module.c validates them):
 *   - Buffers are C-contiguous, aligned, non-overlapping unless a kernel says otherwise.
 *   - Sizes are int in layout order; offsets are computed in size_t/ptrdiff_t.
 *   - Kernels never allocate, print or validate. Scratch is passed in.
 *   - Parameter gradients (dw, db) ACCUMULATE (+=), so a shared weight needs no special code, unless
 *     the kernel's accumulate flag is 0: then they OVERWRITE and the caller need not zero them first
 *     (Sequential's Dense and Conv2D). Input gradients (dinp) OVERWRITE.
 *   - Parallel loops split over outputs (CNN_FOR hands out pieces as threads come free; gemm gives each
 *     thread one rectangle); reductions over the batch use a fixed number of chunks, so results are
 *     bitwise identical for any thread count.
 *
 * Every templated kernel exists twice: name_f32 (real = float) and name_f64 (real = double).
 * Shape legend: N batch, IN/OUT features, K classes, P parameter count.
 */
#ifndef real
#ifndef CNN_H
#define CNN_H

#include <stddef.h>
#include <stdint.h>

/* Element-wise activations. Backward uses the forward's output y (and input x for leaky relu). */
typedef enum {
    ACT_IDENTITY = 0,
    ACT_SIGMOID = 1,
    ACT_TANH = 2,
    ACT_SCALED_TANH = 3, /* a·tanh(s·x): alpha = a, beta = s (LeNet: a = 1.7159, s = 1) */
    ACT_RELU = 4,
    ACT_LEAKY_RELU = 5, /* x > 0 ? x : alpha·x */
    ACT_COUNT
} cnn_activation;

/* Optimizer update rules. */
typedef enum {
    OPT_TORCH =
        0,        /* torch.optim.SGD/Adam: coupled L2 weight decay, buffer b = μb + (1-τ)g, eps after bias correction */
    OPT_KERAS = 1 /* Keras/scikit-learn: v = μv - lr·g, eps on the uncorrected sqrt(v), decoupled weight decay */
} cnn_opt_variant;

/* Convolution geometry, NCHW: x (n, c, h, w), weight (oc, c/groups, kh, kw), y (n, oc, oh, ow) with
 * oh = (h + pt + pb - dil_h·(kh-1) - 1)/sh + 1 (zero padding top/bottom/left/right, so 'same' with an
 * even kernel can put the extra cell at the bottom/right as PyTorch and Keras do). */
typedef struct {
    int n, c, h, w, oc, oh, ow, kh, kw, sh, sw, pt, pb, pl, pr, dil_h, dil_w, groups;
    /* the Winograd test switch (cnn_set_conv2d_winograd) as the binding read it once for this call, so that the
     * scratch it sized and the path the kernel takes agree even if another thread flips the switch meanwhile */
    int winograd;
} cnn_conv2d;

/* Pooling geometry, NCHW: x (n, c, h, w), y (n, c, oh, ow), oh = (h + pt + pb - kh)/sh + 1. */
typedef struct {
    int n, c, h, w, oh, ow, kh, kw, sh, sw, pt, pb, pl, pr;
} cnn_pool2d;

/* image.c, affine warps: how a sample outside the plane reads (scipy.ndimage's modes of the same names). */
typedef enum {
    IMAGE_FILL_CONSTANT = 0,
    IMAGE_FILL_NEAREST = 1,
    IMAGE_FILL_REFLECT = 2,
    IMAGE_FILL_COUNT
} cnn_image_fill;
/* x (n, c, h, w) warped into y (n, c, oh, ow); order 0 (nearest cell) or 1 (bilinear); per_image: one matrix
 * per image, else one for all; cval the 'constant' fill (and what a NaN or infinite coordinate reads). */
typedef struct {
    int n, c, h, w, oh, ow, order, per_image;
    cnn_image_fill fill;
    double cval;
} cnn_affine;

/* Sizes multiplied and added in size_t, saturating at SIZE_MAX: a count that does not fit reads as SIZE_MAX
 * (never as a small wrapped number that would pass a length check). Every factor is >= 1. */
static inline size_t cnn_size_mul(size_t a, size_t b) { return b && a > SIZE_MAX / b ? SIZE_MAX : a * b; }
static inline size_t cnn_size_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* Elements of scratch conv2d_forward/backward need: 0 for the depthwise (groups = C > 1) and dense
 * (window = whole unpadded input) paths; else, per chunk of the batch (min(n, CNN_REDUCE_CHUNKS) of them),
 * one tile of im2col columns (c·kh·kw, min(oh·ow, 256)), none for the 1x1 (stride 1, unpadded) path, a copy
 * of one sample's padded input and of its dy for the direct path (conv2d.c's direct_geo), and a partial
 * weight gradient: never the batch's columns. SIZE_MAX when the count does not fit in size_t. */
size_t conv2d_scratch_size(const cnn_conv2d *g);
/* Entries of the offset table conv2d_forward/backward need (0 but on the direct path): memory the caller
 * cannot reach, as the kernels index with it (the binding allocates it per call). */
size_t conv2d_offsets_size(const cnn_conv2d *g);
/* The path conv2d takes for this geometry, in words ("im2col tiles", "pointwise gemm", "depthwise direct",
 * "dense gemm", "direct phases", "winograd F(2x2,3x3)"): the benchmarks print it beside each shape. */
const char *conv2d_path_name(const cnn_conv2d *g);
/* issue 20's Winograd path (conv2d_winograd.h): 1 forces it on every convolution it can take (3x3, stride 1,
 * undilated, ungrouped), -1 off, 0 (the default) leaves the choice to the sizes. For tests and benchmarks. */
void cnn_set_conv2d_winograd(int mode);
int cnn_get_conv2d_winograd(void);

/* Loops that gain from AVX2 but are not gemm (the branch-free tanh and logistic, which baseline SSE2 does
 * not vectorize profitably at all; im2col/col2im rows) are compiled twice on x86-64, for x86-64-v3 (AVX2,
 * FMA) and for the baseline, and the loader picks one: a wheel stays portable. Such a function must not
 * hold an OpenMP region: its outlined body would not be cloned. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(CNN_NO_CLONES)
#define CNN_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CNN_VECTOR_CLONES
#endif

/* Element loops below this many touched elements run on one thread: waking a team costs more. */
#define CNN_PARALLEL_WORK 8192
/* CNN_FOR loops cut their iterations into about CNN_UNITS pieces per thread, which threads take in turn as
 * they come free (schedule(dynamic)): a fixed share per thread waits for the slowest one, and on a shared
 * machine a core whose hyperthread sibling is busy runs load-and-store-bound loops at half speed for
 * seconds. Which thread takes a piece never changes a result: pieces write disjoint outputs, and reductions
 * sum fixed chunks. (gemm keeps one rectangle per thread: splitting it further costs packing.) */
#define CNN_UNITS 4
/* The threads kernels use (threads.c): process-wide, set by cnn_set_num_threads, limited in one thread by
 * threadpoolctl; a call also brings the calling thread's OpenMP count to it, so a region opened after it
 * has that many threads. cnn_threads_init registers the fork handlers; the binding calls it at import. */
int cnn_num_threads(void);
void cnn_set_num_threads(int n);
void cnn_cap_threads(int n); /* at most n threads in the calling thread (0: no cap), below the count */
int cnn_threads_init(void);
#ifdef _OPENMP
#include <omp.h>
/* Pieces of more than 64 iterations are rounded to 16, so that element loops over aligned float buffers
 * hand each thread whole cache lines. */
static inline long cnn_chunk(long n)
{
    long pieces = (long)CNN_UNITS * omp_get_max_threads(), c = (n + pieces - 1) / pieces;
    return c > 64 ? (c + 15) / 16 * 16 : c < 1 ? 1 : c;
}
static inline int cnn_team(void) { return !omp_in_parallel() && cnn_num_threads() > 1; }
#else
static inline long cnn_chunk(long n)
{
    (void)n;
    return 1;
}
static inline int cnn_team(void) { return 0; }
#endif
/* for (type i = 0; i < n; i++) { body }, split over the team in cnn_chunk pieces when `parallel` holds
 * and there is a team to split over, else a plain loop: entering an OpenMP region costs ~0.6 µs even
 * when it runs on one thread, and a small training step crosses some twenty of them. */
#define CNN_FOR(parallel, type, i, n, ...)                                                                           \
    do {                                                                                                             \
        if ((parallel) && cnn_team()) {                                                                              \
            long cnn_chunk_ = cnn_chunk((long)(n));                                                                  \
            (void)cnn_chunk_; /* unused without OpenMP */                                                            \
            _Pragma("omp parallel for schedule(dynamic, cnn_chunk_)") for (type i = 0; i < (n); i++) { __VA_ARGS__ } \
        } else {                                                                                                     \
            for (type i = 0; i < (n); i++) {                                                                         \
                __VA_ARGS__                                                                                          \
            }                                                                                                        \
        }                                                                                                            \
    } while (0)

/* scikit-learn's MLP (mlp.c): units[0..n_layers] are the layer widths, input first. Parameters lie
 * in one flat vector packed as sklearn's _pack: every coefs_[i] (units[i], units[i+1]) row-major,
 * then every intercepts_[i] (units[i+1]). */
typedef enum {
    MLP_OUT_IDENTITY = 0,
    MLP_OUT_LOGISTIC = 1,
    MLP_OUT_SOFTMAX = 2,
    MLP_OUT_EXP = 3,
    MLP_OUT_COUNT
} cnn_mlp_output;
typedef struct {
    int n_layers; /* weight layers L: units has L + 1 entries */
    const int *units;
    cnn_activation hidden; /* identity, sigmoid, tanh or relu */
    cnn_mlp_output output; /* identity: squared error; logistic: binary log loss; softmax: log loss; exp: Poisson */
    double alpha;          /* L2 strength: loss += alpha/2·Σ‖W‖²/n (weights only) */
} cnn_mlp;
typedef struct {
    int adam; /* 0: SGD with momentum (keras velocity form); 1: Adam (keras epsilon form) */
    double lr, momentum;
    int nesterov;
    double beta1, beta2, eps;
    long long t; /* Adam steps taken so far; an epoch advances it */
} cnn_mlp_optim;
/* Both counts are SIZE_MAX when they do not fit in size_t (module.c refuses such a network). */
size_t cnn_mlp_param_count(const cnn_mlp *net);
/* Reals of scratch for n rows: hidden activations only (forward), or with the output, every delta and
 * room to gather a shuffled batch (training; its x rows only when x is dense, sparse = 0). */
size_t cnn_mlp_workspace_size(const cnn_mlp *net, int n, int training, int sparse);

/* ---- sparse input (sparse.c, mlp.c) ----
 * A CSR matrix: row i holds the entries indptr[i] <= e < indptr[i + 1], in column indices[e] with value
 * data[e], a real of the kernel's type. module.c passes private copies of indptr and indices whose every
 * entry it has checked (indptr non-decreasing from 0, indices in [0, columns)). */
typedef struct {
    const int64_t *indptr, *indices;
    const void *data;
} cnn_csr;

/* Reductions over the batch split into this many fixed chunks, whatever the thread count. */
#define CNN_REDUCE_CHUNKS 16

/* gemm's instruction set: AUTO picks the widest the CPU has; tests force the others. */
typedef enum { CNN_ISA_AUTO = 0, CNN_ISA_BASE = 1, CNN_ISA_AVX2 = 2, CNN_ISA_AVX512 = 3 } cnn_gemm_isa;
int cnn_gemm_isa_supported(cnn_gemm_isa isa);
cnn_gemm_isa cnn_get_gemm_isa(void); /* the instance in use, never AUTO */
void cnn_set_gemm_isa(cnn_gemm_isa isa);

/* ---- recurrent layers (rnn.c) ----------------------------------------------------------------
 * A whole sequence at once: x (N, T, IN), units U, G gate blocks of U (cnn_rnn_gates). */
typedef enum { CELL_RNN = 0, CELL_LSTM = 1, CELL_GRU = 2, CELL_COUNT } cnn_rnn_cell;
typedef struct {
    int n, t, in, units;
    cnn_rnn_cell cell;
    cnn_activation act; /* SimpleRNN's: identity, sigmoid, tanh or relu; LSTM and GRU use tanh and σ */
    int go_backwards;   /* read x from its last step to its first; outputs stay in processing order (Keras) */
    int sequences;      /* y holds every step's h (N, T, U), else the last one (N, U) */
} cnn_rnn;
static inline int cnn_rnn_gates(cnn_rnn_cell cell) { return cell == CELL_LSTM ? 4 : cell == CELL_GRU ? 3 : 1; }
/* Elements of the forward's cache (kept for the backward) and of the backward's scratch; SIZE_MAX when
 * the count does not fit in size_t. */
size_t rnn_cache_size(const cnn_rnn *g);
size_t rnn_work_size(const cnn_rnn *g);
/* ---- issue 16's layers: transposed convolution geometry ------------------------------------------
 * x (n, c, h, w), weight (c, oc, kh, kw) as PyTorch's ConvTranspose2d, y (n, oc, oh, ow): the full output
 * ((h-1)·sh + kh rows) with its first pt rows and pl columns dropped, cut or zero-extended to oh x ow. */
typedef struct {
    int n, c, h, w, oc, oh, ow, kh, kw, sh, sw, pt, pl;
} cnn_conv_transpose2d;
/* Elements of scratch conv_transpose2d_forward/backward need: each sample's columns (oc·kh·kw, h·w), then
 * min(n, CNN_REDUCE_CHUNKS) partial weight gradients; SIZE_MAX when the count does not fit in size_t. */
size_t conv_transpose2d_scratch_size(const cnn_conv_transpose2d *t);
/* ---- random warp matrices (warp_matrix.c) ---------------------------------------------------
 * The warps of RandomRotation, RandomZoom and RandomTranslation, as warp_matrix.c states them: the kind of
 * warp, n images of h x w, k draws an image (rotation 1, zoom 1 or 2, translation 2). */
typedef enum { WARP_ROTATION = 0, WARP_ZOOM = 1, WARP_TRANSLATION = 2, WARP_KIND_COUNT } cnn_warp_kind;
typedef struct {
    int n, k, h, w;
    cnn_warp_kind kind;
    int compose; /* matrix · warp, else the warp alone */
} cnn_warp_matrix;

/* The templated prototypes below, as name_f32 and name_f64. */
#define TEMPLATE "cnn.h"
#include "template.h"
#undef TEMPLATE

#endif /* CNN_H */
#else  /* templated prototypes, included once per real type */

/* ---- gemm.c ------------------------------------------------------------------------------
 * c (M, N) = [c +] a (M, KD) · b (KD, N), with a(i,k) = a[i·rsa + k·csa], b(k,j) = b[k·rsb + j·csb],
 * so NN, NT and TN forms are stride choices. accumulate = 0 overwrites c, 1 adds to it. */
void K(gemm)(real *c, const real *a, const real *b, int M, int N, int KD, ptrdiff_t rsa, ptrdiff_t csa, ptrdiff_t rsb,
             ptrdiff_t csb, ptrdiff_t ldc, int accumulate);
/* c (M, N) = bias (M) added to every column of a · b (the convolution's NCHW bias), inside the register tile */
void K(gemm_bias)(real *c, const real *a, const real *b, const real *bias, int M, int N, int KD, ptrdiff_t rsa,
                  ptrdiff_t csa, ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t ldc);

/* The forms the layers call, on row-major contiguous matrices: c (m, n) [+]= a (m, k) · b (k, n).
 * nt: b is stored (n, k) and used transposed; tn: a is stored (k, m) and used transposed. A convolution
 * group's blocks are whole rows of their matrices, so no caller needs a leading dimension of its own. */
static inline void K(gemm_nn)(real *c, const real *a, const real *b, int m, int n, int k, int accumulate)
{
    K(gemm)(c, a, b, m, n, k, k, 1, n, 1, n, accumulate);
}
static inline void K(gemm_nt)(real *c, const real *a, const real *b, int m, int n, int k, int accumulate)
{
    K(gemm)(c, a, b, m, n, k, k, 1, 1, k, n, accumulate);
}
static inline void K(gemm_tn)(real *c, const real *a, const real *b, int m, int n, int k, int accumulate)
{
    K(gemm)(c, a, b, m, n, k, 1, m, n, 1, n, accumulate);
}

/* ---- conv_direct.c: the inner kernels of conv2d's direct path ------------------------------------
 * B(k, j) = b[offs[k] + j]: row k of B is a window of one buffer (a tap over a padded plane, flat).
 * offset_gemm: c (M, N) [+]= a (M, KD) · B, a(i, k) = a[i·lda + k], c(i, j) = c[i·ldc + j]; reads up to 47
 * reals past each row's window. window_gemm: c (M, N) [+]= A (M, KD) · b (KD, N), A(i, p) = a[offs[i] + p],
 * b(p, j) = b[p·ldb + j], c(i, j) = c[i·ldc + j]. window3_gemm: window_gemm with M = 3·M3 rows whose windows
 * come in triples a cell apart (offs[3r + j] = offs[3r] + j), b with two zero rows before and after its KD rows
 * (bz: the first of them). */
void K(conv_offset_gemm)(real *c, ptrdiff_t ldc, const real *a, ptrdiff_t lda, const real *b, const ptrdiff_t *offs,
                         int M, int N, int KD, int accumulate);
void K(conv_window_gemm)(real *c, ptrdiff_t ldc, const real *a, const ptrdiff_t *offs, const real *b, ptrdiff_t ldb,
                         int M, int N, int KD, int accumulate);
void K(conv_window3_gemm)(real *c, ptrdiff_t ldc, const real *a, const ptrdiff_t *offs, const real *bz, ptrdiff_t ldb,
                          int M3, int N, int KD, int accumulate);

/* ---- dense.c -----------------------------------------------------------------------------
 * inp (N, IN), w (IN, OUT), b (OUT) or NULL, out (N, OUT) */
void K(dense_forward)(real *out, const real *inp, const real *w, const real *b, int n, int in, int out_dim);
/* dinp (N, IN) = dout·wᵀ (overwrite; NULL skips it), dw (IN, OUT) += inpᵀ·dout, db (OUT) += Σ_n dout (NULL
 * skips); accumulate = 0 overwrites dw and db instead (mlp.c, Dense: no zeroed gradient to read back) */
void K(dense_backward)(real *dinp, real *dw, real *db, const real *dout, const real *inp, const real *w, int n, int in,
                       int out_dim, int accumulate);
/* db (OUT) [+]= Σ_n dout (N, OUT): the bias gradient of dense_backward and sparse_backward, not bound on its own
 * (tests/test_dense.py and tests/test_sparse.py check it as their db) */
void K(bias_backward)(real *db, const real *dout, int n, int out_dim, int accumulate);

/* ---- sparse.c ----------------------------------------------------------------------------
 * x (N, IN) as CSR: data, indices (NNZ), indptr (N + 1), as cnn_csr; w (IN, OUT), b (OUT) or NULL, out (N, OUT).
 * sparse_forward: out = x·w + b. sparse_backward: dw (IN, OUT) [+]= xᵀ·dout, db (OUT) [+]= Σ_n dout (NULL skips
 * it), overwritten when accumulate = 0; no input gradient (the input is data). */
void K(sparse_forward)(real *out, const real *data, const int64_t *indices, const int64_t *indptr, const real *w,
                       const real *b, int n, int out_dim);
void K(sparse_backward)(real *dw, real *db, const real *dout, const real *data, const int64_t *indices,
                        const int64_t *indptr, int n, int in, int out_dim, int accumulate);

/* ---- activations.c -----------------------------------------------------------------------
 * inp, out (count): out may equal inp (in place). */
void K(activation_forward)(real *out, const real *inp, size_t count, cnn_activation act, real alpha, real beta);
/* dinp = dout · f'(x), from out y = f(x) (and inp x, needed by leaky relu only). dinp may equal dout. */
void K(activation_backward)(real *dinp, const real *dout, const real *inp, const real *out, size_t count,
                            cnn_activation act, real alpha, real beta);
/* inp, out (N, K): softmax / log-softmax along the last axis, max-subtracted (stable at ±1e4). */
void K(softmax_forward)(real *out, const real *inp, int n, int k);
void K(log_softmax_forward)(real *out, const real *inp, int n, int k);
/* dinp (N, K) from dout and the forward's out: softmax dx = y·(dy - Σ dy·y); log-softmax dx = dy - e^y·Σ dy */
void K(softmax_backward)(real *dinp, const real *dout, const real *out, int n, int k);
void K(log_softmax_backward)(real *dinp, const real *dout, const real *out, int n, int k);

/* ---- losses.c ----------------------------------------------------------------------------
 * Each returns the mean loss over the batch (accumulated in double) and writes its gradient
 * w.r.t. the input into dinp (overwrite; NULL skips it). Inputs are logits unless named otherwise.
 *   sparse_cross_entropy: logits (N, K), labels (N) in [0, K)           softmax + NLL
 *   cross_entropy:        logits (N, K), target (N, K) one-hot or probs   -Σ t·log_softmax
 *   binary_cross_entropy: logits (N, K), target (N, K) in [0, 1]          mean over all N·K elements
 *   mse:                  pred (N, K), target (N, K)                      mean over all N·K elements
 *   multiclass_hinge:     scores (N, K), labels (N)   Σ_{j≠y} max(0, s_j - s_y + margin), mean over N */
double K(sparse_cross_entropy_loss)(real *dinp, const real *logits, const int64_t *labels, int n, int k);
double K(cross_entropy_loss)(real *dinp, const real *logits, const real *target, int n, int k);
double K(binary_cross_entropy_loss)(real *dinp, const real *logits, const real *target, int n, int k);
double K(mse_loss)(real *dinp, const real *pred, const real *target, int n, int k);
double K(multiclass_hinge_loss)(real *dinp, const real *scores, const int64_t *labels, int n, int k, real margin);

/* ---- optim.c -----------------------------------------------------------------------------
 * In-place updates of one flat parameter vector p (P) from its gradient g (P).
 * sgd_step: buf (P) is the momentum buffer (unused when momentum = 0); first = 1 on the first step.
 *   OPT_TORCH: g += wd·p; b = first ? g : μb + (1-τ)g; g = nesterov ? g + μb : b; p -= lr·g
 *   OPT_KERAS: p -= lr·wd·p; v = μv - lr·g; p += nesterov ? μv - lr·g : v    (dampening unused) */
void K(sgd_step)(real *p, real *buf, const real *g, size_t count, real lr, real momentum, real dampening,
                 real weight_decay, int nesterov, int first, cnn_opt_variant variant);
/* adam_step: m, v (P) moments; t is the 1-based step count. decoupled = 1 for AdamW (p *= 1 - lr·wd).
 *   OPT_TORCH: p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)
 *   OPT_KERAS: p -= lr·sqrt(1-β2^t)/(1-β1^t) · m / (sqrt(v) + eps) */
void K(adam_step)(real *p, real *m, real *v, const real *g, size_t count, real lr, real beta1, real beta2, real eps,
                  real weight_decay, int decoupled, long long t, cnn_opt_variant variant);
/* g (P) += lam·p; returns lam/2·Σp² (in double): an L2 penalty term and its gradient. */
double K(l2_penalty)(real *g, const real *p, size_t count, real lam);


/* ---- conv2d.c ----------------------------------------------------------------------------
 * x (N, C, H, W), w (OC, C/G, KH, KW), b (OC) or NULL, y (N, OC, OH, OW), scratch (conv2d_scratch_size),
 * offsets (conv2d_offsets_size, or NULL when 0). scratch and offsets are workspace only: backward reads
 * nothing the forward left there, so one scratch may serve every layer of a model.
 * dx overwrite (NULL skips it), dw and db (NULL skips) accumulate, or overwrite when accumulate = 0. */
void K(conv2d_forward)(real *y, const real *x, const real *w, const real *b, real *scratch, ptrdiff_t *offsets,
                       const cnn_conv2d *g);
void K(conv2d_backward)(real *dx, real *dw, real *db, const real *dy, const real *x, const real *w, real *scratch,
                        ptrdiff_t *offsets, const cnn_conv2d *g, int accumulate);

/* ---- pool.c ------------------------------------------------------------------------------
 * x (N, C, H, W), y and argmax (N, C, OH, OW); argmax holds h·W + w within the plane, as PyTorch's
 * return_indices: the first maximum in row-major order wins, a NaN wins and propagates.
 * Average pooling divides by the window clipped at the padded border (count_include_pad = 1, PyTorch's
 * default) or by the real cells only (0, Keras 'same'). Backward overwrites dx. */
void K(maxpool2d_forward)(real *y, int64_t *argmax, const real *x, const cnn_pool2d *g);
void K(maxpool2d_backward)(real *dx, const real *dy, const int64_t *argmax, const cnn_pool2d *g);
void K(avgpool2d_forward)(real *y, const real *x, const cnn_pool2d *g, int count_include_pad);
void K(avgpool2d_backward)(real *dx, const real *dy, const cnn_pool2d *g, int count_include_pad);
/* issue 20: the 2x2 stride-2 max-pool (no padding) with a byte per window, code (N, C, H/2, W/2): the winner's
 * cell 0..3 in row-major order, or 4 when relu and the window's maximum is not positive. relu pools relu(x), and
 * backward then gives the gradient through the ReLU as well. Backward overwrites dx; any code byte is safe. */
void K(maxpool2x2_forward)(real *y, uint8_t *code, const real *x, int n, int c, int h, int w, int relu);
void K(maxpool2x2_backward)(real *dx, const real *dy, const uint8_t *code, int n, int c, int h, int w);
/* ---- image.c -----------------------------------------------------------------------------
 * x (N, C, H, W), matrix (M, 2, 3) with M = 1 or N, y (N, C, OH, OW): y[n, c, i, j] = x[n, c] at the input
 * coordinate matrix[n]·(i, j, 1), as scipy.ndimage.affine_transform with order 0 or 1 (cnn_affine). */
void K(affine_transform_forward)(real *y, const real *x, const real *matrix, const cnn_affine *g);
/* ---- mlp.c -------------------------------------------------------------------------------
 * params (P) as cnn_mlp says; x (N, units[0]) dense, or NULL and xs its CSR; y (N, units[L]) targets (0/1 for
 * the classifiers); sw (N) sample weights or NULL (all 1).
 * mlp_forward: out (N, units[L]) = the network's output; work (cnn_mlp_workspace_size(net, N, 0, 0)). */
void K(mlp_forward)(real *out, real *work, const real *params, const real *x, const cnn_csr *xs, int n,
                    const cnn_mlp *net);
/* mlp_loss_grad: returns sklearn's batch loss (data loss + L2 term, both divided by Σ sw, or N) and OVERWRITES
 * grad (P) with its gradient: the whole gradient is divided by Σ sw, so it cannot accumulate.
 * work (cnn_mlp_workspace_size(net, N, 1, xs != NULL)). */
double K(mlp_loss_grad)(real *grad, real *work, const real *params, const real *x, const cnn_csr *xs, const real *y,
                        const real *sw, int n, const cnn_mlp *net);
/* mlp_epoch: batches [b0, b1) of size `batch` (the last one may be shorter) over the N rows, taken in
 * the order `order` when given, else in place; each is a loss_grad and an optimizer step on params.
 * order holds only the row indices of those batches, each in [0, N): order[0] is the first row of batch
 * b0 (module.c passes a checked private copy of that stretch of the caller's shuffled indices). A sparse
 * x arrives as xs already gathered: just the rows of those batches, in the order taken (module.c).
 * state: SGD velocity (P) or Adam moments m, v (2P). Returns Σ batch loss·batch rows. */
double K(mlp_epoch)(real *params, real *state, real *grad, real *work, const real *x, const cnn_csr *xs, const real *y,
                    const real *sw, const int64_t *order, int n, int batch, int b0, int b1, const cnn_mlp *net,
                    cnn_mlp_optim *opt);

/* ---- merge.c (Add, Multiply, Concatenate) -------------------------------------------------
 * Element-wise merges of two tensors of `count` elements; y may be a or b. Add's gradient is dy itself.
 * multiply_backward: da = dy·b, db = dy·a (NULL skips one). Concatenation along an axis, each tensor seen
 * as M rows (the dimensions before the axis): x (M, I) is y (M, J)'s columns [offset, offset + I). */
void K(add_forward)(real *y, const real *a, const real *b, size_t count, int relu); /* relu: y = relu(a + b) */
void K(multiply_forward)(real *y, const real *a, const real *b, size_t count);
void K(multiply_backward)(real *da, real *db, const real *dy, const real *a, const real *b, size_t count);
void K(concatenate_forward)(real *y, const real *x, size_t m, size_t in, size_t out, size_t offset);
void K(concatenate_backward)(real *dx, const real *dy, size_t m, size_t in, size_t out, size_t offset);
/* ---- rnn.c -------------------------------------------------------------------------------
 * x (N, T, IN), w (IN, G·U), r (U, G·U), b (G·U), or (2, G·U) input and recurrent biases for the GRU, or
 * NULL; h0, c0 (N, U) or NULL (zeros); y (N, T, U) or (N, U) as g->sequences; h_last, c_last (N, U) or
 * NULL; cache (rnn_cache_size). backward reads the cache as the forward left it; dy shaped as y, dh_last
 * and dc_last (N, U) or NULL; dx, dh0, dc0 overwrite (NULL skips), dw, dr, db (NULL skips) accumulate, or
 * overwrite when accumulate = 0; work (rnn_work_size). */
void K(rnn_forward)(real *y, real *h_last, real *c_last, real *cache, const real *x, const real *w, const real *r,
                    const real *b, const real *h0, const real *c0, const cnn_rnn *g);
void K(rnn_backward)(real *dx, real *dh0, real *dc0, real *dw, real *dr, real *db, real *work, const real *dy,
                     const real *dh_last, const real *dc_last, const real *cache, const real *w, const real *r,
                     const cnn_rnn *g, int accumulate);

/* ---- embedding.c -------------------------------------------------------------------------
 * ids (M) in [0, V), table (V, D), y (M, D). backward adds each dy row onto dtable's row ids[m] (overwrite
 * when accumulate = 0: rows no id names become 0). */
void K(embedding_forward)(real *y, const int64_t *ids, const real *table, int m, int d);
void K(embedding_backward)(real *dtable, const real *dy, const int64_t *ids, int m, int v, int d, int accumulate);

/* ---- issue 16's layers: batchnorm.c, relu.c, upsample.c, conv_transpose.c ----------------------------
 * batchnorm: x, y (N, C, S) normalised over N and S per channel; gamma, beta (C) or NULL (1, 0); mean, invstd (C)
 * the statistics used, which backward reads; moving_mean, moving_var (C) updated in place when training
 * (moving = moving·momentum + batch·(1 - momentum), the batch variance biased, as Keras). */
void K(batchnorm_forward)(real *y, real *mean, real *invstd, real *moving_mean, real *moving_var, const real *x,
                          const real *gamma, const real *beta, int n, int c, int s, double eps, double momentum,
                          int training, int relu);
/* dx (N, C, S) overwrite (NULL skips it); dgamma, dbeta (C) accumulate, or overwrite when accumulate = 0 (NULL
 * skips them); training = 1 when the forward used the batch's statistics. relu (issue 20): the forward writes
 * relu(y); backward is given that output as y (else NULL) and dy through the ReLU. */
void K(batchnorm_backward)(real *dx, real *dgamma, real *dbeta, const real *dy, const real *y, const real *x,
                           const real *mean, const real *invstd, const real *gamma, int n, int c, int s, int training,
                           int accumulate);
/* Keras's relu: x, y (count), y may be x; max_value +inf for none. dx may be dy. */
void K(relu_forward)(real *y, const real *x, size_t count, real max_value, real negative_slope, real threshold);
void K(relu_backward)(real *dx, const real *dy, const real *x, size_t count, real max_value, real negative_slope,
                      real threshold);
/* x (N, C, H, W), y (N, C, H·SH, W·SW): nearest (bilinear = 0) or half-pixel bilinear. Backward overwrites dx. */
void K(upsample2d_forward)(real *y, const real *x, int n, int c, int h, int w, int sh, int sw, int bilinear);
void K(upsample2d_backward)(real *dx, const real *dy, int n, int c, int h, int w, int sh, int sw, int bilinear);
/* conv2d.c's column helpers for conv_transpose.c: im2col of one sample, col2im of one sample (overwrites dx). */
void K(conv2d_im2col)(real *col, const real *x, const cnn_conv2d *g);
void K(conv2d_col2im)(real *dx, const real *col, const cnn_conv2d *g);
/* x (N, C, H, W), w (C, OC, KH, KW), b (OC) or NULL, y (N, OC, OH, OW), scratch (conv_transpose2d_scratch_size).
 * Backward: dx overwrite (NULL skips it), dw and db (NULL skips) accumulate, or overwrite when accumulate = 0. */
void K(conv_transpose2d_forward)(real *y, const real *x, const real *w, const real *b, real *scratch,
                                 const cnn_conv_transpose2d *t);
void K(conv_transpose2d_backward)(real *dx, real *dw, real *db, const real *dy, const real *x, const real *w,
                                  real *scratch, const cnn_conv_transpose2d *t, int accumulate);

/* ---- random warp matrices (warp_matrix.c) ---------------------------------------------------
 * matrix (N, 2, 3) inout, draws (K, N): matrix[n] = the warp g->kind drawn as draws[:, n], or with g->compose
 * matrix[n] · that warp. */
void K(warp_matrix_forward)(real *matrix, const real *draws, const cnn_warp_matrix *g);

/* ---- conv_depthwise.c: conv2d's depthwise path (groups = C > 1), but the 1x1 per-channel scale -------------
 * x (N, C, H, W), w (OC, 1, KH, KW) with OC = m·C, b (OC) or NULL, y (N, OC, OH, OW), geometry as conv2d's.
 * forward: y[n, o] = b[o] + x[n, o/m] ⋆ w[o]. backward: dx (N, C, H, W) overwritten (NULL skips it), dw and db
 * (NULL skips it) [+]=. */
void K(conv2d_depthwise_forward)(real *y, const real *x, const real *w, const real *b, const cnn_conv2d *g);
void K(conv2d_depthwise_backward)(real *dx, real *dw, real *db, const real *dy, const real *x, const real *w,
                                  const cnn_conv2d *g, int accumulate);

/* ---- reference.c -------------------------------------------------------------------------
 * Each algorithm stated as a plain loop nest, summing in double: the tests' oracles, never used by a layer.
 * gemm_reference takes gemm's arguments; conv2d_reference_forward conv2d_forward's, less the scratch. */
void K(gemm_reference)(real *c, const real *a, const real *b, int M, int N, int KD, ptrdiff_t rsa, ptrdiff_t csa,
                       ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t ldc, int accumulate);
void K(conv2d_reference_forward)(real *y, const real *x, const real *w, const real *b, const cnn_conv2d *g);

#endif
