/* module.c: the only Python-aware C file. Every wrapper has one shape: parse, check the memory
 * contract (type, dtype, byte order, rank, shape, contiguity, alignment, writeability, overlap, sizes
 * that fit, index values, enum codes), release the GIL, call the kernel, return. Arguments must already
 * be NumPy arrays: the wrappers never convert or copy them, so they take no references. The one
 * exception is an index array (labels, argmax, order): another Python thread may write it while the
 * kernel runs without the GIL, so the kernel reads a private copy, checked while the GIL is held and
 * freed after the call. The wrappers check nothing that only guards meaning (a learning rate's sign, a
 * beta's range): the friendly, meaning-level checks live in python/cnn (optimizers, layers, losses,
 * _validation.py); these are the last line of defence for memory. Each function's signature is stated
 * once, in its docstring in the method table at the bottom. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "cnn.h"

#define ANY -1
enum { READ = 0, WRITE = 1 };

static const char *dtype_name(int type)
{
    switch (type) {
    case NPY_FLOAT32: return "float32";
    case NPY_FLOAT64: return "float64";
    case NPY_INT64: return "int64";
    default: return "?";
    }
}

static void shape_str(char *buf, size_t size, int ndim, const npy_intp *dims)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, dims[i] < 0 ? "%s?" : "%s%ld", i ? ", " : "", (long)dims[i]);
    if (used < size) snprintf(buf + used, size - used, ndim == 1 ? ",)" : ")");
}

/* The dtype of a floating argument that decides the kernel instance: float32 or float64. */
static int real_type(PyObject *o, const char *fn, const char *name)
{
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must be a numpy.ndarray of float32 or float64, got %s", fn,
                     name, Py_TYPE(o)->tp_name);
        return -1;
    }
    int t = PyArray_TYPE((PyArrayObject *)o);
    if (t != NPY_FLOAT32 && t != NPY_FLOAT64) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must have dtype float32 or float64, got %s", fn, name,
                     PyArray_DESCR((PyArrayObject *)o)->typeobj->tp_name);
        return -1;
    }
    return t;
}

/* o as an array of exactly this dtype and rank, C-contiguous, aligned, writeable if access == WRITE,
 * every dimension in [1, INT_MAX] and equal to dims[i] unless dims[i] == ANY. NULL with an error set
 * otherwise. Returns a borrowed reference: the caller's argument tuple keeps it alive. */
static PyArrayObject *array_arg(PyObject *o, const char *fn, const char *name, int type, int ndim, const npy_intp *dims,
                                int access)
{
    char want[128], got[128];
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must be a numpy.ndarray of %s, got %s", fn, name,
                     dtype_name(type), Py_TYPE(o)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if (PyArray_TYPE(a) != type) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must have dtype %s, got %s", fn, name, dtype_name(type),
                     PyArray_DESCR(a)->typeobj->tp_name);
        return NULL;
    }
    if (PyArray_ISBYTESWAPPED(a)) { /* the kernels would read its bytes as native numbers */
        char native = PY_LITTLE_ENDIAN ? '<' : '>', swapped = PY_LITTLE_ENDIAN ? '>' : '<';
        PyErr_Format(PyExc_TypeError,
                     "%s: argument '%s' must have dtype %s in native byte order ('%c%c%d'), "
                     "got the byte-swapped '%c%c%d' (convert it with .astype('%c%c%d'))",
                     fn, name, dtype_name(type), native, PyArray_DESCR(a)->kind, (int)PyArray_ITEMSIZE(a), swapped,
                     PyArray_DESCR(a)->kind, (int)PyArray_ITEMSIZE(a), native, PyArray_DESCR(a)->kind,
                     (int)PyArray_ITEMSIZE(a));
        return NULL;
    }
    int bad = PyArray_NDIM(a) != ndim;
    for (int i = 0; !bad && i < ndim; i++) {
        npy_intp d = PyArray_DIM(a, i);
        bad = d < 1 || d > INT_MAX || (dims && dims[i] != ANY && dims[i] != d);
    }
    if (bad) {
        shape_str(want, sizeof want, ndim, dims ? dims : (npy_intp[8]){ANY, ANY, ANY, ANY, ANY, ANY, ANY, ANY});
        shape_str(got, sizeof got, PyArray_NDIM(a), PyArray_DIMS(a));
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' must have shape %s with every dimension in [1, %d], got %s",
                     fn, name, want, INT_MAX, got);
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: argument '%s' must be C-contiguous and aligned "
                     "(use numpy.ascontiguousarray), got a strided or misaligned array",
                     fn, name);
        return NULL;
    }
    if (access == WRITE && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' is written to and must be writeable, got a read-only array",
                     fn, name);
        return NULL;
    }
    return a;
}

/* As array_arg, but None gives NULL with no error; *ok is cleared on a real error. */
static PyArrayObject *optional_arg(PyObject *o, int *ok, const char *fn, const char *name, int type, int ndim,
                                   const npy_intp *dims, int access)
{
    if (o == Py_None) return NULL;
    PyArrayObject *a = array_arg(o, fn, name, type, ndim, dims, access);
    if (!a) *ok = 0;
    return a;
}

/* One overlap rule for every wrapper: an output shares no memory with another output or an input, except
 * that an element-wise kernel's output may be the very same array as the input flagged SAME (same start,
 * same length: each element is read before it is written). The wrapper lists its operands in one table;
 * NULL arrays (arguments given as None) are skipped. */
enum { IN, OUT, SAME };
typedef struct {
    const char *name;
    PyArrayObject *a;
    int role;
} operand;
#define OPERANDS(...) (operand[]){__VA_ARGS__}, (int)(sizeof((operand[]){__VA_ARGS__}) / sizeof(operand))

static int check_overlap(const char *fn, const operand *ops, int count)
{
    for (int i = 0; i < count; i++)
        for (int j = 0; j < count; j++) {
            const operand *o = &ops[i], *in = &ops[j];
            if (o->role != OUT || i == j || !o->a || !in->a || (in->role == OUT && j < i)) continue;
            char *o0 = PyArray_BYTES(o->a), *o1 = o0 + PyArray_NBYTES(o->a);
            char *i0 = PyArray_BYTES(in->a), *i1 = i0 + PyArray_NBYTES(in->a);
            if (o0 >= i1 || i0 >= o1 || (in->role == SAME && o0 == i0 && o1 == i1)) continue;
            PyErr_Format(PyExc_ValueError, "%s: output '%s' must not overlap %s '%s'%s", fn, o->name,
                         in->role == OUT ? "output" : "input", in->name,
                         in->role == SAME ? " (except as the very same array)" : "");
            return -1;
        }
    return 0;
}

/* Entries [first, first + count) of the int64 index array a, copied while the GIL is held into a buffer
 * the caller frees with PyMem_RawFree, every entry of the COPY checked to lie in [0, bound): the kernel
 * indexes memory with them, and the caller's array may change under it once the GIL is released.
 * NULL with an error set otherwise (MemoryError, or ValueError naming the argument and the bad entry). */
static int64_t *checked_indices(const char *fn, const char *name, const char *what, PyArrayObject *a, npy_intp first,
                                npy_intp count, int64_t bound)
{
    int64_t *copy = PyMem_RawMalloc(count > 0 ? (size_t)count * sizeof *copy : 1);
    if (!copy) return (int64_t *)PyErr_NoMemory();
    if (count > 0) memcpy(copy, (const int64_t *)PyArray_DATA(a) + first, (size_t)count * sizeof *copy);
    uint64_t bad = 0;
    for (npy_intp i = 0; i < count; i++) bad |= (uint64_t)copy[i] >= (uint64_t)bound; /* negatives wrap high */
    for (npy_intp i = 0; bad && i < count; i++)
        if (copy[i] < 0 || copy[i] >= bound) {
            PyErr_Format(PyExc_ValueError, "%s: argument '%s' must hold %s in [0, %lld), got %lld at %ld", fn, name,
                         what, (long long)bound, (long long)copy[i], (long)(first + i));
            break;
        }
    if (bad) {
        PyMem_RawFree(copy);
        return NULL;
    }
    return copy;
}

/* The most elements one array may hold: its size in bytes must be a Py_ssize_t. */
#define MAX_ELEMENTS ((size_t)PY_SSIZE_T_MAX / sizeof(double))

/* An element count for an error message: the sizes functions saturate at SIZE_MAX (cnn.h). */
typedef struct {
    char s[32];
} numtext;
static numtext count_text(size_t v)
{
    numtext t;
    if (v == SIZE_MAX) snprintf(t.s, sizeof t.s, "over 2**64");
    else snprintf(t.s, sizeof t.s, "%zu", v);
    return t;
}

#define DATA(a) ((a) ? PyArray_DATA(a) : NULL)
#define DIM(a, i) ((int)PyArray_DIM(a, i))
/* Call the float32 or float64 instance of a kernel; `type` is the NumPy dtype. */
#define CALL(type, kernel, ...) ((type) == NPY_FLOAT32 ? kernel##_f32(__VA_ARGS__) : kernel##_f64(__VA_ARGS__))

/* The parse format of a family's wrappers (softmax, losses, pooling), units then ":fn", so that a parse
 * error names the function as the others' literal ":name" formats do. */
typedef struct {
    char s[64];
} format_text;
static format_text parse_format(const char *units, const char *fn)
{
    format_text f;
    snprintf(f.s, sizeof f.s, "%s:%s", units, fn);
    return f;
}

/* ---- gemm ------------------------------------------------------------------------------------ */

/* gemm(c, a, b, trans_a, trans_b, accumulate), and _gemm_reference with the same arguments (reference.c) */
static PyObject *gemm_like(PyObject *args, const char *fn, int reference)
{
    PyObject *oc, *oa, *ob;
    int ta = 0, tb = 0, acc = 0;
    if (!PyArg_ParseTuple(args, reference ? "OOO|ppp:_gemm_reference" : "OOO|ppp:gemm", &oc, &oa, &ob, &ta, &tb, &acc))
        return NULL;
    int t = real_type(oa, fn, "a");
    if (t < 0) return NULL;
    PyArrayObject *a = array_arg(oa, fn, "a", t, 2, NULL, READ);
    if (!a) return NULL;
    int m = DIM(a, ta ? 1 : 0), kd = DIM(a, ta ? 0 : 1);
    PyArrayObject *b = array_arg(ob, fn, "b", t, 2, tb ? (npy_intp[]){ANY, kd} : (npy_intp[]){kd, ANY}, READ);
    if (!b) return NULL;
    int n = DIM(b, tb ? 0 : 1);
    PyArrayObject *c = array_arg(oc, fn, "c", t, 2, (npy_intp[]){m, n}, WRITE);
    if (!c || check_overlap(fn, OPERANDS({"c", c, OUT}, {"a", a, IN}, {"b", b, IN}))) return NULL;
    ptrdiff_t rsa = ta ? 1 : kd, csa = ta ? m : 1, rsb = tb ? 1 : n, csb = tb ? kd : 1;
    Py_BEGIN_ALLOW_THREADS
    if (reference) CALL(t, gemm_reference, DATA(c), DATA(a), DATA(b), m, n, kd, rsa, csa, rsb, csb, n, acc);
    else CALL(t, gemm, DATA(c), DATA(a), DATA(b), m, n, kd, rsa, csa, rsb, csb, n, acc);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_gemm(PyObject *s, PyObject *a) { return gemm_like(a, "gemm", 0); }

/* ---- dense ----------------------------------------------------------------------------------- */

static PyObject *py_dense_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "dense_forward";
    PyObject *oy, *ox, *ow, *ob;
    if (!PyArg_ParseTuple(args, "OOOO:dense_forward", &oy, &ox, &ow, &ob)) return NULL;
    int t = real_type(ox, fn, "x"), ok = 1;
    if (t < 0) return NULL;
    PyArrayObject *x = array_arg(ox, fn, "x", t, 2, NULL, READ);
    if (!x) return NULL;
    int n = DIM(x, 0), in = DIM(x, 1);
    PyArrayObject *w = array_arg(ow, fn, "w", t, 2, (npy_intp[]){in, ANY}, READ);
    if (!w) return NULL;
    int out = DIM(w, 1);
    PyArrayObject *b = optional_arg(ob, &ok, fn, "b", t, 1, (npy_intp[]){out}, READ);
    PyArrayObject *y = ok ? array_arg(oy, fn, "y", t, 2, (npy_intp[]){n, out}, WRITE) : NULL;
    if (!y || check_overlap(fn, OPERANDS({"y", y, OUT}, {"x", x, IN}, {"w", w, IN}, {"b", b, IN}))) return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, dense_forward, DATA(y), DATA(x), DATA(w), DATA(b), n, in, out);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_dense_backward(PyObject *self, PyObject *args)
{
    static const char *fn = "dense_backward";
    PyObject *odx, *odw, *odb, *ody, *ox, *ow;
    int accumulate = 1;
    if (!PyArg_ParseTuple(args, "OOOOOO|p:dense_backward", &odx, &odw, &odb, &ody, &ox, &ow, &accumulate)) return NULL;
    int t = real_type(ox, fn, "x"), ok = 1;
    if (t < 0) return NULL;
    PyArrayObject *x = array_arg(ox, fn, "x", t, 2, NULL, READ);
    if (!x) return NULL;
    int n = DIM(x, 0), in = DIM(x, 1);
    PyArrayObject *w = array_arg(ow, fn, "w", t, 2, (npy_intp[]){in, ANY}, READ);
    if (!w) return NULL;
    int out = DIM(w, 1);
    PyArrayObject *dy = array_arg(ody, fn, "dy", t, 2, (npy_intp[]){n, out}, READ);
    PyArrayObject *dw = dy ? array_arg(odw, fn, "dw", t, 2, (npy_intp[]){in, out}, WRITE) : NULL;
    if (!dw) return NULL;
    PyArrayObject *dx = optional_arg(odx, &ok, fn, "dx", t, 2, (npy_intp[]){n, in}, WRITE);
    PyArrayObject *db = ok ? optional_arg(odb, &ok, fn, "db", t, 1, (npy_intp[]){out}, WRITE) : NULL;
    if (!ok || check_overlap(fn, OPERANDS({"dx", dx, OUT}, {"dw", dw, OUT}, {"db", db, OUT}, {"dy", dy, IN},
                                          {"x", x, IN}, {"w", w, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, dense_backward, DATA(dx), DATA(dw), DATA(db), DATA(dy), DATA(x), DATA(w), n, in, out, accumulate);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ---- activations ----------------------------------------------------------------------------- */

static int check_activation(const char *fn, int act)
{
    if (act >= 0 && act < ACT_COUNT) return 0;
    PyErr_Format(PyExc_ValueError, "%s: argument 'act' must be an activation code in [0, %d), got %d", fn, ACT_COUNT,
                 act);
    return -1;
}

/* Element-wise arrays: any rank 1..8, every one shaped as x. */
static PyArrayObject *like(PyObject *o, const char *fn, const char *name, PyArrayObject *x, int access)
{
    return array_arg(o, fn, name, PyArray_TYPE(x), PyArray_NDIM(x), PyArray_DIMS(x), access);
}

static PyArrayObject *elementwise_arg(PyObject *o, const char *fn, const char *name)
{
    int t = real_type(o, fn, name);
    if (t < 0) return NULL;
    int nd = PyArray_NDIM((PyArrayObject *)o);
    if (nd < 1 || nd > 8) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' must have rank 1 to 8, got rank %d", fn, name, nd);
        return NULL;
    }
    return array_arg(o, fn, name, t, nd, NULL, READ);
}

static PyObject *py_activation_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "activation_forward";
    PyObject *oy, *ox;
    int act;
    double alpha = 0, beta = 1;
    if (!PyArg_ParseTuple(args, "OOi|dd:activation_forward", &oy, &ox, &act, &alpha, &beta)) return NULL;
    PyArrayObject *x = elementwise_arg(ox, fn, "x");
    PyArrayObject *y = x ? like(oy, fn, "y", x, WRITE) : NULL;
    if (!y || check_overlap(fn, OPERANDS({"y", y, OUT}, {"x", x, SAME})) || check_activation(fn, act)) return NULL;
    int t = PyArray_TYPE(x);
    size_t count = (size_t)PyArray_SIZE(x);
    Py_BEGIN_ALLOW_THREADS
    CALL(t, activation_forward, DATA(y), DATA(x), count, (cnn_activation)act, alpha, beta);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_activation_backward(PyObject *self, PyObject *args)
{
    static const char *fn = "activation_backward";
    PyObject *odx, *ody, *ox, *oy;
    int act;
    double alpha = 0, beta = 1;
    if (!PyArg_ParseTuple(args, "OOOOi|dd:activation_backward", &odx, &ody, &ox, &oy, &act, &alpha, &beta)) return NULL;
    PyArrayObject *x = elementwise_arg(ox, fn, "x");
    PyArrayObject *y = x ? like(oy, fn, "y", x, READ) : NULL;
    PyArrayObject *dy = y ? like(ody, fn, "dy", x, READ) : NULL;
    PyArrayObject *dx = dy ? like(odx, fn, "dx", x, WRITE) : NULL;
    if (!dx || check_overlap(fn, OPERANDS({"dx", dx, OUT}, {"dy", dy, SAME}, {"x", x, IN}, {"y", y, IN})) ||
        check_activation(fn, act))
        return NULL;
    int t = PyArray_TYPE(x);
    size_t count = (size_t)PyArray_SIZE(x);
    Py_BEGIN_ALLOW_THREADS
    CALL(t, activation_backward, DATA(dx), DATA(dy), DATA(x), DATA(y), count, (cnn_activation)act, alpha, beta);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* softmax and log_softmax along the last axis, forward and backward. */
static PyObject *softmax_like_forward(PyObject *args, const char *fn, int log)
{
    PyObject *oy, *ox;
    if (!PyArg_ParseTuple(args, parse_format("OO", fn).s, &oy, &ox)) return NULL;
    int t = real_type(ox, fn, "x");
    PyArrayObject *x = t < 0 ? NULL : array_arg(ox, fn, "x", t, 2, NULL, READ);
    PyArrayObject *y = x ? like(oy, fn, "y", x, WRITE) : NULL;
    if (!y || check_overlap(fn, OPERANDS({"y", y, OUT}, {"x", x, SAME}))) return NULL;
    int n = DIM(x, 0), k = DIM(x, 1);
    Py_BEGIN_ALLOW_THREADS
    if (log) CALL(t, log_softmax_forward, DATA(y), DATA(x), n, k);
    else CALL(t, softmax_forward, DATA(y), DATA(x), n, k);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *softmax_like_backward(PyObject *args, const char *fn, int log)
{
    PyObject *odx, *ody, *oy;
    if (!PyArg_ParseTuple(args, parse_format("OOO", fn).s, &odx, &ody, &oy)) return NULL;
    int t = real_type(oy, fn, "y");
    PyArrayObject *y = t < 0 ? NULL : array_arg(oy, fn, "y", t, 2, NULL, READ);
    PyArrayObject *dy = y ? like(ody, fn, "dy", y, READ) : NULL;
    PyArrayObject *dx = dy ? like(odx, fn, "dx", y, WRITE) : NULL;
    if (!dx || check_overlap(fn, OPERANDS({"dx", dx, OUT}, {"dy", dy, SAME}, {"y", y, IN}))) return NULL;
    int n = DIM(y, 0), k = DIM(y, 1);
    Py_BEGIN_ALLOW_THREADS
    if (log) CALL(t, log_softmax_backward, DATA(dx), DATA(dy), DATA(y), n, k);
    else CALL(t, softmax_backward, DATA(dx), DATA(dy), DATA(y), n, k);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_softmax_forward(PyObject *s, PyObject *a) { return softmax_like_forward(a, "softmax_forward", 0); }
static PyObject *py_log_softmax_forward(PyObject *s, PyObject *a)
{
    return softmax_like_forward(a, "log_softmax_forward", 1);
}
static PyObject *py_softmax_backward(PyObject *s, PyObject *a)
{
    return softmax_like_backward(a, "softmax_backward", 0);
}
static PyObject *py_log_softmax_backward(PyObject *s, PyObject *a)
{
    return softmax_like_backward(a, "log_softmax_backward", 1);
}

/* ---- losses ---------------------------------------------------------------------------------- */

typedef enum { SPARSE_CE, CE, BCE, MSE, HINGE } loss_kind;

/* The five losses: the sparse ones (SPARSE_CE, HINGE) take int64 labels, the others a target shaped as x. */
static PyObject *loss(PyObject *args, const char *fn, loss_kind kind)
{
    PyObject *odx, *ox, *oy;
    double margin = 1;
    int sparse = kind == SPARSE_CE || kind == HINGE;
    if (!PyArg_ParseTuple(args, parse_format(kind == HINGE ? "OOO|d" : "OOO", fn).s, &odx, &ox, &oy, &margin))
        return NULL;
    int t = real_type(ox, fn, "x"), ok = 1;
    PyArrayObject *x = t < 0 ? NULL : array_arg(ox, fn, "x", t, 2, NULL, READ);
    if (!x) return NULL;
    int n = DIM(x, 0), k = DIM(x, 1);
    PyArrayObject *y = sparse ? array_arg(oy, fn, "labels", NPY_INT64, 1, (npy_intp[]){n}, READ)
                              : like(oy, fn, "target", x, READ);
    if (!y) return NULL;
    PyArrayObject *dx = optional_arg(odx, &ok, fn, "dx", t, 2, PyArray_DIMS(x), WRITE);
    if (!ok || check_overlap(fn, OPERANDS({"dx", dx, OUT}, {"x", x, IN}, {sparse ? "labels" : "target", y, IN})))
        return NULL;
    int64_t *labels = sparse ? checked_indices(fn, "labels", "class indices", y, 0, n, k) : NULL;
    if (sparse && !labels) return NULL;
    double value = 0;
    Py_BEGIN_ALLOW_THREADS
    switch (kind) {
    case SPARSE_CE: value = CALL(t, sparse_cross_entropy_loss, DATA(dx), DATA(x), labels, n, k); break;
    case CE: value = CALL(t, cross_entropy_loss, DATA(dx), DATA(x), DATA(y), n, k); break;
    case BCE: value = CALL(t, binary_cross_entropy_loss, DATA(dx), DATA(x), DATA(y), n, k); break;
    case MSE: value = CALL(t, mse_loss, DATA(dx), DATA(x), DATA(y), n, k); break;
    case HINGE: value = CALL(t, multiclass_hinge_loss, DATA(dx), DATA(x), labels, n, k, margin); break;
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(labels);
    return PyFloat_FromDouble(value);
}

static PyObject *py_sparse_cross_entropy_loss(PyObject *s, PyObject *a)
{
    return loss(a, "sparse_cross_entropy_loss", SPARSE_CE);
}
static PyObject *py_cross_entropy_loss(PyObject *s, PyObject *a) { return loss(a, "cross_entropy_loss", CE); }
static PyObject *py_binary_cross_entropy_loss(PyObject *s, PyObject *a)
{
    return loss(a, "binary_cross_entropy_loss", BCE);
}
static PyObject *py_mse_loss(PyObject *s, PyObject *a) { return loss(a, "mse_loss", MSE); }
static PyObject *py_multiclass_hinge_loss(PyObject *s, PyObject *a) { return loss(a, "multiclass_hinge_loss", HINGE); }

/* ---- optimizers ------------------------------------------------------------------------------ */

static int check_variant(const char *fn, int variant)
{
    if (variant == OPT_TORCH || variant == OPT_KERAS) return 0;
    PyErr_Format(PyExc_ValueError, "%s: argument 'variant' must be 0 (torch) or 1 (keras), got %d", fn, variant);
    return -1;
}

static PyObject *py_sgd_step(PyObject *self, PyObject *args)
{
    static const char *fn = "sgd_step";
    PyObject *op, *obuf, *og;
    double lr, mom, damp, wd;
    int nesterov, first, variant;
    if (!PyArg_ParseTuple(args, "OOOddddppi:sgd_step", &op, &obuf, &og, &lr, &mom, &damp, &wd, &nesterov, &first,
                          &variant))
        return NULL;
    int t = real_type(op, fn, "p"), ok = 1;
    PyArrayObject *p = t < 0 ? NULL : array_arg(op, fn, "p", t, 1, NULL, WRITE);
    PyArrayObject *g = p ? like(og, fn, "g", p, READ) : NULL;
    if (!g || check_variant(fn, variant)) return NULL;
    PyArrayObject *buf = optional_arg(obuf, &ok, fn, "buf", t, 1, PyArray_DIMS(p), WRITE);
    if (!ok) return NULL;
    if (mom != 0 && !buf) /* the kernel keeps its momentum there */
        return PyErr_Format(PyExc_ValueError, "%s: argument 'buf' must be an array when momentum != 0, got None", fn);
    if (check_overlap(fn, OPERANDS({"p", p, OUT}, {"buf", buf, OUT}, {"g", g, IN}))) return NULL;
    size_t count = (size_t)PyArray_SIZE(p);
    Py_BEGIN_ALLOW_THREADS
    CALL(t, sgd_step, DATA(p), DATA(buf), DATA(g), count, lr, mom, damp, wd, nesterov, first, (cnn_opt_variant)variant);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_adam_step(PyObject *self, PyObject *args)
{
    static const char *fn = "adam_step";
    PyObject *op, *om, *ov, *og;
    double lr, b1, b2, eps, wd;
    int decoupled, variant;
    long long step;
    if (!PyArg_ParseTuple(args, "OOOOdddddpLi:adam_step", &op, &om, &ov, &og, &lr, &b1, &b2, &eps, &wd, &decoupled,
                          &step, &variant))
        return NULL;
    int t = real_type(op, fn, "p");
    PyArrayObject *p = t < 0 ? NULL : array_arg(op, fn, "p", t, 1, NULL, WRITE);
    PyArrayObject *m = p ? like(om, fn, "m", p, WRITE) : NULL;
    PyArrayObject *v = m ? like(ov, fn, "v", p, WRITE) : NULL;
    PyArrayObject *g = v ? like(og, fn, "g", p, READ) : NULL;
    if (!g || check_variant(fn, variant) ||
        check_overlap(fn, OPERANDS({"p", p, OUT}, {"m", m, OUT}, {"v", v, OUT}, {"g", g, IN})))
        return NULL;
    if (step < 1) /* the bias correction 1 - beta1**t divides the step: t = 0 divides by zero */
        return PyErr_Format(PyExc_ValueError, "%s: argument 't' must be a step count >= 1, got %lld", fn, step);
    size_t count = (size_t)PyArray_SIZE(p);
    Py_BEGIN_ALLOW_THREADS
    CALL(t, adam_step, DATA(p), DATA(m), DATA(v), DATA(g), count, lr, b1, b2, eps, wd, decoupled, step,
         (cnn_opt_variant)variant);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_l2_penalty(PyObject *self, PyObject *args)
{
    static const char *fn = "l2_penalty";
    PyObject *og, *op;
    double lam;
    if (!PyArg_ParseTuple(args, "OOd:l2_penalty", &og, &op, &lam)) return NULL;
    int t = real_type(op, fn, "p");
    PyArrayObject *p = t < 0 ? NULL : array_arg(op, fn, "p", t, 1, NULL, READ);
    PyArrayObject *g = p ? like(og, fn, "g", p, WRITE) : NULL;
    if (!g || check_overlap(fn, OPERANDS({"g", g, OUT}, {"p", p, IN}))) return NULL;
    size_t count = (size_t)PyArray_SIZE(p);
    double value;
    Py_BEGIN_ALLOW_THREADS
    value = CALL(t, l2_penalty, DATA(g), DATA(p), count, lam);
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(value);
}

/* ---- conv2d and pooling ---------------------------------------------------------------------- */

/* Pairs and quadruples of geometry arguments, each at least `low`. */
static int check_ints(const char *fn, const char *name, const int *v, int count, int low)
{
    for (int i = 0; i < count; i++)
        if (v[i] < low) {
            PyErr_Format(PyExc_ValueError, "%s: every value of '%s' must be >= %d, got %d", fn, name, low, v[i]);
            return -1;
        }
    return 0;
}

/* out = (in + pad_lo + pad_hi - span)/stride + 1, or -1 with an error when it is below 1. */
static int out_size(const char *fn, const char *what, int in, int pad_lo, int pad_hi, long long span, int stride)
{
    long long room = (long long)in + pad_lo + pad_hi - span;
    if ((long long)in + pad_lo + pad_hi > INT_MAX) { /* the kernels index the padded input with ints */
        PyErr_Format(PyExc_ValueError, "%s: the padded input %s (%lld cells) exceeds %d", fn, what,
                     (long long)in + pad_lo + pad_hi, INT_MAX);
        return -1;
    }
    if (room < 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the %s window (%lld cells with dilation) is larger than the padded "
                     "input (%lld cells): the output would be empty",
                     fn, what, span, (long long)in + pad_lo + pad_hi);
        return -1;
    }
    long long out = room / stride + 1;
    if (out > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: the output %s is too large", fn, what);
        return -1;
    }
    return (int)out;
}

/* Fill g from x (N, C, H, W), the kernel shape (OC, C/G, KH, KW) and the hyperparameters; -1 with an error if bad. */
static int conv_geometry(const char *fn, cnn_conv2d *g, const npy_intp *xd, const npy_intp *wd, const int *stride,
                         const int *pad, const int *dil, int groups)
{
    if (check_ints(fn, "stride", stride, 2, 1) || check_ints(fn, "padding", pad, 4, 0) ||
        check_ints(fn, "dilation", dil, 2, 1) || check_ints(fn, "groups", &groups, 1, 1))
        return -1;
    for (int i = 0; i < 4; i++)
        if (xd[i] < 1 || xd[i] > INT_MAX || wd[i] < 1 || wd[i] > INT_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: every dimension of 'x' and 'w' must lie in [1, %d]", fn, INT_MAX);
            return -1;
        }
    // clang-format off: the geometry in layout order, a row per tensor
    *g = (cnn_conv2d){.n = (int)xd[0], .c = (int)xd[1], .h = (int)xd[2], .w = (int)xd[3], .oc = (int)wd[0],
                      .kh = (int)wd[2], .kw = (int)wd[3], .sh = stride[0], .sw = stride[1], .pt = pad[0],
                      .pb = pad[1], .pl = pad[2], .pr = pad[3], .dil_h = dil[0], .dil_w = dil[1], .groups = groups};
    // clang-format on
    if (g->c % groups || g->oc % groups || wd[1] != g->c / groups) {
        PyErr_Format(PyExc_ValueError,
                     "%s: with groups=%d, the %d input and %ld output channels must both divide "
                     "by groups and 'w' must have shape (out, %d, kh, kw), got %ld in its second dimension",
                     fn, groups, g->c, (long)wd[0], g->c / groups, (long)wd[1]);
        return -1;
    }
    g->oh = out_size(fn, "height", g->h, g->pt, g->pb, (long long)g->dil_h * (g->kh - 1) + 1, g->sh);
    g->ow = g->oh < 0 ? -1 : out_size(fn, "width", g->w, g->pl, g->pr, (long long)g->dil_w * (g->kw - 1) + 1, g->sw);
    if (g->ow < 0) return -1;
    if ((long long)g->n * g->oh * g->ow > INT_MAX || (long long)g->c * g->kh * g->kw > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: the batch's output positions or the kernel's window exceed %d", fn,
                     INT_MAX);
        return -1;
    }
    return 0;
}

/* The scratch argument: None when the geometry needs none, else a 1-D array of exactly that size. */
static PyArrayObject *scratch_arg(PyObject *o, int *ok, const char *fn, int type, const cnn_conv2d *g)
{
    size_t size = conv2d_scratch_size(g);
    if (size == 0) {
        if (o != Py_None) {
            PyErr_Format(PyExc_ValueError, "%s: argument 'scratch' must be None for this geometry (it needs none)", fn);
            *ok = 0;
        }
        return NULL;
    }
    if (size > MAX_ELEMENTS) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the scratch this convolution of 'x' and 'w' needs (%s elements) is more "
                     "than an array can hold (%zu)",
                     fn, count_text(size).s, MAX_ELEMENTS);
        *ok = 0;
        return NULL;
    }
    PyArrayObject *a = array_arg(o, fn, "scratch", type, 1, (npy_intp[]){(npy_intp)size}, WRITE);
    if (!a) *ok = 0;
    return a;
}

/* x (N, C, H, W) and w (OC, C/G, KH, KW) of one float type, and their geometry; that type or -1. */
static int conv_operands(const char *fn, PyObject *ox, PyObject *ow, const int *stride, const int *pad, const int *dil,
                         int groups, PyArrayObject **x, PyArrayObject **w, cnn_conv2d *g)
{
    int t = real_type(ox, fn, "x");
    *x = t < 0 ? NULL : array_arg(ox, fn, "x", t, 4, NULL, READ);
    *w = *x ? array_arg(ow, fn, "w", t, 4, NULL, READ) : NULL;
    if (!*w || conv_geometry(fn, g, PyArray_DIMS(*x), PyArray_DIMS(*w), stride, pad, dil, groups)) return -1;
    return t;
}

#define CONV_ARGS "(ii)(iiii)(ii)i"

static PyObject *py_conv2d_scratch_size(PyObject *self, PyObject *args)
{
    static const char *fn = "conv2d_scratch_size";
    npy_intp xd[4], wd[4];
    int stride[2], pad[4], dil[2], groups;
    long long xl[4], wl[4];
    if (!PyArg_ParseTuple(args, "(LLLL)(LLLL)" CONV_ARGS ":conv2d_scratch_size", &xl[0], &xl[1], &xl[2], &xl[3], &wl[0],
                          &wl[1], &wl[2], &wl[3], &stride[0], &stride[1], &pad[0], &pad[1], &pad[2], &pad[3], &dil[0],
                          &dil[1], &groups))
        return NULL;
    for (int i = 0; i < 4; i++) {
        xd[i] = xl[i] < 0 || xl[i] > INT_MAX ? 0 : (npy_intp)xl[i];
        wd[i] = wl[i] < 0 || wl[i] > INT_MAX ? 0 : (npy_intp)wl[i];
    }
    cnn_conv2d g;
    if (conv_geometry(fn, &g, xd, wd, stride, pad, dil, groups)) return NULL;
    size_t size = conv2d_scratch_size(&g);
    if (size > MAX_ELEMENTS)
        return PyErr_Format(PyExc_ValueError,
                            "%s: arguments 'x_shape' and 'w_shape' need a scratch of %s elements, "
                            "more than an array can hold (%zu)",
                            fn, count_text(size).s, MAX_ELEMENTS);
    return PyLong_FromSize_t(size);
}

/* ---- conv2d path (issue 20: the heuristic's choice, for the benchmarks) ---- */
static PyObject *py__conv2d_path(PyObject *self, PyObject *args)
{
    static const char *fn = "_conv2d_path";
    int stride[2], pad[4], dil[2], groups;
    long long xl[4], wl[4];
    npy_intp xd[4], wd[4];
    if (!PyArg_ParseTuple(args, "(LLLL)(LLLL)" CONV_ARGS ":_conv2d_path", &xl[0], &xl[1], &xl[2], &xl[3], &wl[0],
                          &wl[1], &wl[2], &wl[3], &stride[0], &stride[1], &pad[0], &pad[1], &pad[2], &pad[3], &dil[0],
                          &dil[1], &groups))
        return NULL;
    for (int i = 0; i < 4; i++) {
        xd[i] = xl[i] < 0 || xl[i] > INT_MAX ? 0 : (npy_intp)xl[i];
        wd[i] = wl[i] < 0 || wl[i] > INT_MAX ? 0 : (npy_intp)wl[i];
    }
    cnn_conv2d g;
    if (conv_geometry(fn, &g, xd, wd, stride, pad, dil, groups)) return NULL;
    return PyUnicode_FromString(conv2d_path_name(&g));
}

static PyObject *py_conv2d_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "conv2d_forward";
    PyObject *oy, *ox, *ow, *ob, *os;
    int stride[2], pad[4], dil[2], groups;
    if (!PyArg_ParseTuple(args, "OOOOO" CONV_ARGS ":conv2d_forward", &oy, &ox, &ow, &ob, &os, &stride[0], &stride[1],
                          &pad[0], &pad[1], &pad[2], &pad[3], &dil[0], &dil[1], &groups))
        return NULL;
    PyArrayObject *x, *w;
    cnn_conv2d g;
    int t = conv_operands(fn, ox, ow, stride, pad, dil, groups, &x, &w, &g), ok = 1;
    if (t < 0) return NULL;
    PyArrayObject *b = optional_arg(ob, &ok, fn, "b", t, 1, (npy_intp[]){g.oc}, READ);
    PyArrayObject *sc = ok ? scratch_arg(os, &ok, fn, t, &g) : NULL;
    PyArrayObject *y = ok ? array_arg(oy, fn, "y", t, 4, (npy_intp[]){g.n, g.oc, g.oh, g.ow}, WRITE) : NULL;
    if (!y ||
        check_overlap(fn, OPERANDS({"y", y, OUT}, {"scratch", sc, OUT}, {"x", x, IN}, {"w", w, IN}, {"b", b, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, conv2d_forward, DATA(y), DATA(x), DATA(w), DATA(b), DATA(sc), &g);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_conv2d_backward(PyObject *self, PyObject *args)
{
    static const char *fn = "conv2d_backward";
    PyObject *odx, *odw, *odb, *ody, *ox, *ow, *os;
    int stride[2], pad[4], dil[2], groups, accumulate = 1;
    if (!PyArg_ParseTuple(args, "OOOOOOO" CONV_ARGS "|p:conv2d_backward", &odx, &odw, &odb, &ody, &ox, &ow, &os,
                          &stride[0], &stride[1], &pad[0], &pad[1], &pad[2], &pad[3], &dil[0], &dil[1], &groups,
                          &accumulate))
        return NULL;
    PyArrayObject *x, *w;
    cnn_conv2d g;
    int t = conv_operands(fn, ox, ow, stride, pad, dil, groups, &x, &w, &g), ok = 1;
    if (t < 0) return NULL;
    PyArrayObject *dy = array_arg(ody, fn, "dy", t, 4, (npy_intp[]){g.n, g.oc, g.oh, g.ow}, READ);
    PyArrayObject *dw = dy ? like(odw, fn, "dw", w, WRITE) : NULL;
    if (!dw) return NULL;
    PyArrayObject *dx = optional_arg(odx, &ok, fn, "dx", t, 4, PyArray_DIMS(x), WRITE);
    PyArrayObject *db = ok ? optional_arg(odb, &ok, fn, "db", t, 1, (npy_intp[]){g.oc}, WRITE) : NULL;
    PyArrayObject *sc = ok ? scratch_arg(os, &ok, fn, t, &g) : NULL;
    if (!ok || check_overlap(fn, OPERANDS({"dx", dx, OUT}, {"dw", dw, OUT}, {"db", db, OUT}, {"scratch", sc, OUT},
                                          {"dy", dy, IN}, {"x", x, IN}, {"w", w, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, conv2d_backward, DATA(dx), DATA(dw), DATA(db), DATA(dy), DATA(x), DATA(w), DATA(sc), &g, accumulate);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* Fill g from x (N, C, H, W) and the pooling hyperparameters. Each pad is at most half its window (as
 * PyTorch), so every window holds a real cell. */
static int pool_geometry(const char *fn, cnn_pool2d *g, PyArrayObject *x, const int *kernel, const int *stride,
                         const int *pad)
{
    if (check_ints(fn, "kernel_size", kernel, 2, 1) || check_ints(fn, "stride", stride, 2, 1) ||
        check_ints(fn, "padding", pad, 4, 0))
        return -1;
    for (int i = 0; i < 4; i++)
        if (pad[i] > kernel[i / 2] / 2) {
            PyErr_Format(PyExc_ValueError, "%s: each padding must be at most half the window (%d), got %d", fn,
                         kernel[i / 2] / 2, pad[i]);
            return -1;
        }
    // clang-format off: as conv_geometry's
    *g = (cnn_pool2d){.n = DIM(x, 0), .c = DIM(x, 1), .h = DIM(x, 2), .w = DIM(x, 3), .kh = kernel[0],
                      .kw = kernel[1], .sh = stride[0], .sw = stride[1], .pt = pad[0], .pb = pad[1], .pl = pad[2],
                      .pr = pad[3]};
    // clang-format on
    g->oh = out_size(fn, "height", g->h, g->pt, g->pb, g->kh, g->sh);
    g->ow = g->oh < 0 ? -1 : out_size(fn, "width", g->w, g->pl, g->pr, g->kw, g->sw);
    return g->ow < 0 ? -1 : 0;
}

#define POOL_ARGS "(ii)(ii)(iiii)"

/* The four pooling wrappers: max pooling passes argmax as its third array, average pooling a count_include_pad
 * flag after the geometry. The full-size array is x or dx; the pooled ones y or dy and argmax. Backward reads
 * argmax, so it reads a copy whose indices are checked to lie inside a plane. */
static PyObject *pool(PyObject *args, const char *fn, int max, int backward)
{
    PyObject *o[3] = {NULL, NULL, NULL};
    int k[2], s[2], p[4], include = 1;
    int parsed = max ? PyArg_ParseTuple(args, parse_format("OOO" POOL_ARGS, fn).s, &o[0], &o[1], &o[2], &k[0], &k[1],
                                        &s[0], &s[1], &p[0], &p[1], &p[2], &p[3])
                     : PyArg_ParseTuple(args, parse_format("OO" POOL_ARGS "p", fn).s, &o[0], &o[1], &k[0], &k[1], &s[0],
                                        &s[1], &p[0], &p[1], &p[2], &p[3], &include);
    if (!parsed) return NULL;
    PyObject *ofull = backward ? o[0] : o[max ? 2 : 1], *opooled = backward ? o[1] : o[0];
    PyObject *oidx = max ? o[backward ? 2 : 1] : NULL;
    const char *full_name = backward ? "dx" : "x", *pooled_name = backward ? "dy" : "y";
    int full_access = backward ? WRITE : READ, pooled_access = backward ? READ : WRITE;
    int t = real_type(ofull, fn, full_name);
    PyArrayObject *full = t < 0 ? NULL : array_arg(ofull, fn, full_name, t, 4, NULL, full_access);
    cnn_pool2d g;
    if (!full || pool_geometry(fn, &g, full, k, s, p)) return NULL;
    npy_intp od[] = {g.n, g.c, g.oh, g.ow};
    PyArrayObject *pooled = array_arg(opooled, fn, pooled_name, t, 4, od, pooled_access);
    PyArrayObject *idx = pooled && max ? array_arg(oidx, fn, "argmax", NPY_INT64, 4, od, pooled_access) : NULL;
    int full_role = backward ? OUT : IN, pooled_role = backward ? IN : OUT;
    if (!pooled || (max && !idx) ||
        check_overlap(fn, OPERANDS({full_name, full, full_role}, {pooled_name, pooled, pooled_role},
                                   {"argmax", idx, pooled_role})))
        return NULL;
    /* backward scatters through argmax: it reads a checked copy (the forward only writes argmax) */
    int64_t *argmax = max && backward ? checked_indices(fn, "argmax", "plane indices", idx, 0, PyArray_SIZE(idx),
                                                        (int64_t)g.h * g.w)
                                      : NULL;
    if (max && backward && !argmax) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (max && backward) CALL(t, maxpool2d_backward, DATA(full), DATA(pooled), argmax, &g);
    else if (max) CALL(t, maxpool2d_forward, DATA(pooled), DATA(idx), DATA(full), &g);
    else if (backward) CALL(t, avgpool2d_backward, DATA(full), DATA(pooled), &g, include);
    else CALL(t, avgpool2d_forward, DATA(pooled), DATA(full), &g, include);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(argmax);
    Py_RETURN_NONE;
}

static PyObject *py_maxpool2d_forward(PyObject *s, PyObject *a) { return pool(a, "maxpool2d_forward", 1, 0); }
static PyObject *py_maxpool2d_backward(PyObject *s, PyObject *a) { return pool(a, "maxpool2d_backward", 1, 1); }
static PyObject *py_avgpool2d_forward(PyObject *s, PyObject *a) { return pool(a, "avgpool2d_forward", 0, 0); }
static PyObject *py_avgpool2d_backward(PyObject *s, PyObject *a) { return pool(a, "avgpool2d_backward", 0, 1); }

/* ---- mlp --------------------------------------------------------------------------------------- */

enum { MLP_MAX_UNITS = 257 }; /* up to 256 weight layers */

/* The network description: units (L + 1,) int64 widths, hidden activation code, output kind, alpha. */
static int mlp_net_arg(const char *fn, PyObject *ounits, int hidden, int output, double alpha, cnn_mlp *net, int *units)
{
    PyArrayObject *u = array_arg(ounits, fn, "units", NPY_INT64, 1, NULL, READ);
    if (!u) return -1;
    npy_intp len = PyArray_DIM(u, 0);
    if (len < 2 || len > MLP_MAX_UNITS) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'units' must hold 2 to %d layer widths, got %ld", fn,
                     MLP_MAX_UNITS, (long)len);
        return -1;
    }
    const int64_t *v = PyArray_DATA(u);
    for (npy_intp i = 0; i < len; i++) {
        if (v[i] < 1 || v[i] > INT_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: argument 'units' must hold widths in [1, %d], got %lld at %ld", fn,
                         INT_MAX, (long long)v[i], (long)i);
            return -1;
        }
        units[i] = (int)v[i];
    }
    if (hidden != ACT_IDENTITY && hidden != ACT_SIGMOID && hidden != ACT_TANH && hidden != ACT_RELU) {
        PyErr_Format(PyExc_ValueError,
                     "%s: argument 'hidden' must be ACT_IDENTITY, ACT_SIGMOID, ACT_TANH or "
                     "ACT_RELU, got %d",
                     fn, hidden);
        return -1;
    }
    if (output < 0 || output >= MLP_OUT_COUNT) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'output' must be an MLP_OUT_* code in [0, %d), got %d", fn,
                     MLP_OUT_COUNT, output);
        return -1;
    }
    *net = (cnn_mlp){(int)len - 1, units, (cnn_activation)hidden, (cnn_mlp_output)output, alpha};
    size_t count = cnn_mlp_param_count(net);
    if (count > MAX_ELEMENTS) {
        PyErr_Format(PyExc_ValueError,
                     "%s: argument 'units' describes a network of %s parameters, more than "
                     "an array can hold (%zu)",
                     fn, count_text(count).s, MAX_ELEMENTS);
        return -1;
    }
    return 0;
}

/* The training (or forward) scratch of n rows, or SIZE_MAX with an error naming 'units' and the rows'
 * argument when it cannot be an array. */
static size_t mlp_workspace_arg(const char *fn, const cnn_mlp *net, int n, const char *rows_name, int training)
{
    size_t size = cnn_mlp_workspace_size(net, n, training);
    if (size <= MAX_ELEMENTS) return size;
    PyErr_Format(PyExc_ValueError,
                 "%s: arguments 'units' and '%s' (%d rows) need a workspace of %s elements, more "
                 "than an array can hold (%zu)",
                 fn, rows_name, n, count_text(size).s, MAX_ELEMENTS);
    return SIZE_MAX;
}

/* A 1-D scratch or parameter vector of at least `count` elements (scratch may be longer). */
static PyArrayObject *vector_arg(PyObject *o, const char *fn, const char *name, int t, size_t count, int exact)
{
    PyArrayObject *a = array_arg(o, fn, name, t, 1, exact ? (npy_intp[]){(npy_intp)count} : NULL, WRITE);
    if (a && (size_t)PyArray_DIM(a, 0) < count) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' must have at least %zu elements, got %ld", fn, name, count,
                     (long)PyArray_DIM(a, 0));
        return NULL;
    }
    return a;
}

static PyObject *py_mlp_workspace_size(PyObject *self, PyObject *args)
{
    static const char *fn = "mlp_workspace_size";
    PyObject *ou;
    int n, training, units[MLP_MAX_UNITS];
    cnn_mlp net;
    if (!PyArg_ParseTuple(args, "Oip:mlp_workspace_size", &ou, &n, &training)) return NULL;
    if (mlp_net_arg(fn, ou, ACT_IDENTITY, MLP_OUT_IDENTITY, 0, &net, units)) return NULL;
    if (n < 1) return PyErr_Format(PyExc_ValueError, "%s: argument 'n' must be >= 1, got %d", fn, n);
    size_t size = mlp_workspace_arg(fn, &net, n, "n", training);
    return size == SIZE_MAX ? NULL : PyLong_FromSize_t(size);
}

static PyObject *py_mlp_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "mlp_forward";
    PyObject *oout, *owork, *op, *ox, *ou;
    int hidden, output, units[MLP_MAX_UNITS];
    cnn_mlp net;
    if (!PyArg_ParseTuple(args, "OOOOOii:mlp_forward", &oout, &owork, &op, &ox, &ou, &hidden, &output)) return NULL;
    if (mlp_net_arg(fn, ou, hidden, output, 0, &net, units)) return NULL;
    int t = real_type(ox, fn, "x");
    PyArrayObject *x = t < 0 ? NULL : array_arg(ox, fn, "x", t, 2, (npy_intp[]){ANY, units[0]}, READ);
    if (!x) return NULL;
    int n = DIM(x, 0);
    PyArrayObject *p = array_arg(op, fn, "params", t, 1, (npy_intp[]){(npy_intp)cnn_mlp_param_count(&net)}, READ);
    PyArrayObject *out = p ? array_arg(oout, fn, "out", t, 2, (npy_intp[]){n, units[net.n_layers]}, WRITE) : NULL;
    size_t size = out ? mlp_workspace_arg(fn, &net, n, "x", 0) : SIZE_MAX;
    PyArrayObject *work = size != SIZE_MAX ? vector_arg(owork, fn, "work", t, size, 0) : NULL;
    if (!work || check_overlap(fn, OPERANDS({"out", out, OUT}, {"work", work, OUT}, {"params", p, IN}, {"x", x, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, mlp_forward, DATA(out), DATA(work), DATA(p), DATA(x), n, &net);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* The arrays shared by mlp_loss_grad and mlp_epoch: x (N, units[0]), y (N, units[L]), params (P), grad (P),
 * work (at least the training workspace for `rows` rows). */
typedef struct {
    PyArrayObject *x, *y, *p, *grad, *work;
    int t, n;
} mlp_arrays;

static int mlp_arrays_arg(const char *fn, mlp_arrays *a, PyObject *ox, PyObject *oy, PyObject *op, PyObject *og,
                          PyObject *owork, const cnn_mlp *net, int param_access, int batch)
{
    a->t = real_type(ox, fn, "x");
    a->x = a->t < 0 ? NULL : array_arg(ox, fn, "x", a->t, 2, (npy_intp[]){ANY, net->units[0]}, READ);
    if (!a->x) return -1;
    a->n = DIM(a->x, 0);
    size_t count = cnn_mlp_param_count(net);
    a->y = array_arg(oy, fn, "y", a->t, 2, (npy_intp[]){a->n, net->units[net->n_layers]}, READ);
    a->p = a->y ? array_arg(op, fn, "params", a->t, 1, (npy_intp[]){(npy_intp)count}, param_access) : NULL;
    a->grad = a->p ? vector_arg(og, fn, "grad", a->t, count, 1) : NULL;
    if (a->grad && batch > a->n) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'batch' must lie in [1, %d], got %d", fn, a->n, batch);
        return -1;
    }
    size_t size = a->grad ? mlp_workspace_arg(fn, net, batch ? batch : a->n, batch ? "batch" : "x", 1) : SIZE_MAX;
    a->work = size != SIZE_MAX ? vector_arg(owork, fn, "work", a->t, size, 0) : NULL;
    return a->work ? 0 : -1;
}

static PyObject *py_mlp_loss_grad(PyObject *self, PyObject *args)
{
    static const char *fn = "mlp_loss_grad";
    PyObject *og, *owork, *op, *ox, *oy, *ou;
    int hidden, output, units[MLP_MAX_UNITS];
    double alpha, loss;
    cnn_mlp net;
    mlp_arrays a;
    if (!PyArg_ParseTuple(args, "OOOOOOiid:mlp_loss_grad", &og, &owork, &op, &ox, &oy, &ou, &hidden, &output, &alpha))
        return NULL;
    if (mlp_net_arg(fn, ou, hidden, output, alpha, &net, units) ||
        mlp_arrays_arg(fn, &a, ox, oy, op, og, owork, &net, READ, 0) ||
        check_overlap(fn, OPERANDS({"grad", a.grad, OUT}, {"work", a.work, OUT}, {"params", a.p, IN}, {"x", a.x, IN},
                                   {"y", a.y, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    loss = CALL(a.t, mlp_loss_grad, DATA(a.grad), DATA(a.work), DATA(a.p), DATA(a.x), DATA(a.y), a.n, &net);
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(loss);
}

static PyObject *py_mlp_epoch(PyObject *self, PyObject *args)
{
    static const char *fn = "mlp_epoch";
    PyObject *op, *ostate, *og, *owork, *ox, *oy, *oorder, *ou;
    int hidden, output, batch, b0, b1, adam, nesterov, units[MLP_MAX_UNITS], ok = 1;
    double alpha, total;
    cnn_mlp net;
    cnn_mlp_optim opt;
    mlp_arrays a;
    if (!PyArg_ParseTuple(args, "OOOOOOOOiidiii(pddpdddL):mlp_epoch", &op, &ostate, &og, &owork, &ox, &oy, &oorder, &ou,
                          &hidden, &output, &alpha, &batch, &b0, &b1, &adam, &opt.lr, &opt.momentum, &nesterov,
                          &opt.beta1, &opt.beta2, &opt.eps, &opt.t))
        return NULL;
    opt.adam = adam;
    opt.nesterov = nesterov;
    if (batch < 1) return PyErr_Format(PyExc_ValueError, "%s: argument 'batch' must be >= 1, got %d", fn, batch);
    if (mlp_net_arg(fn, ou, hidden, output, alpha, &net, units) ||
        mlp_arrays_arg(fn, &a, ox, oy, op, og, owork, &net, WRITE, batch))
        return NULL;
    size_t count = cnn_mlp_param_count(&net); /* mlp_net_arg kept 2·count within MAX_ELEMENTS < SIZE_MAX/2 */
    PyArrayObject *state = vector_arg(ostate, fn, "state", a.t, adam ? 2 * count : count, 1);
    PyArrayObject *order = state ? optional_arg(oorder, &ok, fn, "order", NPY_INT64, 1, (npy_intp[]){a.n}, READ) : NULL;
    if (!state || !ok) return NULL;
    int n_batches = (int)(((long long)a.n + batch - 1) / batch);
    if (b0 < 0 || b0 > b1 || b1 > n_batches)
        return PyErr_Format(PyExc_ValueError,
                            "%s: arguments 'begin', 'end' must satisfy 0 <= begin <= end <= %d "
                            "batches, got %d and %d",
                            fn, n_batches, b0, b1);
    if (opt.t < 0 || opt.t > LLONG_MAX - (b1 - b0)) /* Adam counts one step per batch */
        return PyErr_Format(PyExc_ValueError, "%s: the step count 't' must lie in [0, %lld] for %d batches, got %lld",
                            fn, LLONG_MAX - (b1 - b0), b1 - b0, opt.t);
    if (check_overlap(fn, OPERANDS({"params", a.p, OUT}, {"state", state, OUT}, {"grad", a.grad, OUT},
                                   {"work", a.work, OUT}, {"x", a.x, IN}, {"y", a.y, IN}, {"order", order, IN})))
        return NULL;
    /* only the rows of the batches run: a call per batch must not pay for copying the whole epoch's order */
    long long first = (long long)b0 * batch, last = (long long)b1 * batch < a.n ? (long long)b1 * batch : a.n;
    int64_t *rows = order ? checked_indices(fn, "order", "row indices", order, (npy_intp)first,
                                            (npy_intp)(last - first), a.n)
                          : NULL;
    if (order && !rows) return NULL;
    Py_BEGIN_ALLOW_THREADS
    total = CALL(a.t, mlp_epoch, DATA(a.p), DATA(state), DATA(a.grad), DATA(a.work), DATA(a.x), DATA(a.y), rows, a.n,
                 batch, b0, b1, &net, &opt);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(rows);
    return Py_BuildValue("dL", total, opt.t);
}

/* ---- threads --------------------------------------------------------------------------------- */

#define GET_NUM_THREADS_DOC                                                                                 \
    "get_num_threads() -> int\n\n"                                                                          \
    "The OpenMP threads cnn's kernels called from this thread use: set_num_threads'\n"                      \
    "count, unless threadpoolctl (or any omp_set_num_threads) set another in this thread since. OpenMP's\n" \
    "own count in this thread is brought to it, so threadpoolctl.threadpool_info() then shows the same."

static PyObject *py_get_num_threads(PyObject *self, PyObject *args) { return PyLong_FromLong(cnn_num_threads()); }

#define SET_NUM_THREADS_DOC                                                                                     \
    "set_num_threads(n: int)\n\n"                                                                               \
    "The OpenMP threads cnn's kernels use, 1 <= n <= 1024, in every thread of the process (OpenMP's own\n"      \
    "omp_set_num_threads reaches only the calling thread). Starts at OMP_NUM_THREADS, or the number of CPUs.\n" \
    "threadpoolctl.threadpool_limits(k) still limits kernels called from the thread that entered it, while\n"   \
    "it lasts (a set_num_threads inside the block is undone in that thread when it ends). A process forked\n"   \
    "after cnn ran keeps the count and may set its own. Results are bitwise the same at any count."

#define MAX_THREADS 1024

static PyObject *py_set_num_threads(PyObject *self, PyObject *args)
{
    int n;
    if (!PyArg_ParseTuple(args, "i:set_num_threads", &n)) return NULL;
    /* libgomp aborts the process when it cannot create the threads asked for, so absurd counts stop here */
    if (n < 1 || n > MAX_THREADS)
        return PyErr_Format(PyExc_ValueError, "set_num_threads: argument 'n' must lie in [1, %d], got %d", MAX_THREADS,
                            n);
    cnn_set_num_threads(n);
    Py_RETURN_NONE;
}

static PyObject *py__cap_threads(PyObject *self, PyObject *args)
{
    int n;
    if (!PyArg_ParseTuple(args, "i:_cap_threads", &n)) return NULL;
    if (n < 0 || n > MAX_THREADS)
        return PyErr_Format(PyExc_ValueError, "_cap_threads: argument 'n' must lie in [0, %d], got %d", MAX_THREADS, n);
    cnn_cap_threads(n);
    Py_RETURN_NONE;
}

/* ---- gemm instruction set (for tests and benchmarks) ---------------------------------------- */

static const char *const isa_names[] = {"auto", "base", "avx2", "avx512"};

static PyObject *py_gemm_isa(PyObject *self, PyObject *args)
{
    return PyUnicode_FromString(isa_names[cnn_get_gemm_isa()]);
}

static PyObject *py_set_gemm_isa(PyObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:_set_gemm_isa", &name)) return NULL;
    for (int i = 0; i < (int)(sizeof isa_names / sizeof *isa_names); i++)
        if (!strcmp(name, isa_names[i])) {
            if (!cnn_gemm_isa_supported(i))
                return PyErr_Format(PyExc_ValueError, "_set_gemm_isa: this CPU does not support '%s'", name);
            cnn_set_gemm_isa(i);
            Py_RETURN_NONE;
        }
    return PyErr_Format(PyExc_ValueError,
                        "_set_gemm_isa: argument 'name' must be one of 'auto', 'base', "
                        "'avx2', 'avx512', got '%s'",
                        name);
}

/* ---- reference kernels (reference.c): the tests' oracles --------------------------------------- */

static PyObject *py__gemm_reference(PyObject *s, PyObject *a) { return gemm_like(a, "_gemm_reference", 1); }

static PyObject *py__conv2d_reference_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "_conv2d_reference_forward";
    PyObject *oy, *ox, *ow, *ob;
    int stride[2], pad[4], dil[2], groups, ok = 1;
    if (!PyArg_ParseTuple(args, "OOOO" CONV_ARGS ":_conv2d_reference_forward", &oy, &ox, &ow, &ob, &stride[0],
                          &stride[1], &pad[0], &pad[1], &pad[2], &pad[3], &dil[0], &dil[1], &groups))
        return NULL;
    PyArrayObject *x, *w;
    cnn_conv2d g;
    int t = conv_operands(fn, ox, ow, stride, pad, dil, groups, &x, &w, &g);
    PyArrayObject *b = t < 0 ? NULL : optional_arg(ob, &ok, fn, "b", t, 1, (npy_intp[]){g.oc}, READ);
    PyArrayObject *y = t < 0 || !ok ? NULL : array_arg(oy, fn, "y", t, 4, (npy_intp[]){g.n, g.oc, g.oh, g.ow}, WRITE);
    if (!y || check_overlap(fn, OPERANDS({"y", y, OUT}, {"x", x, IN}, {"w", w, IN}, {"b", b, IN}))) return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, conv2d_reference_forward, DATA(y), DATA(x), DATA(w), DATA(b), &g);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ---- module ---------------------------------------------------------------------------------- */

/* Each docstring is the one statement of its function's signature: tests/core_signatures.py reads it. The first
 * line lists the arguments in order, named as the errors name them: in[...], out[...] and inout[...] are arrays
 * of float32 or float64 (one dtype per call) that the function reads, writes, or both, of the shape in
 * brackets; int64[...] < B holds indices in [0, B); "| None" means the argument may be None, "= v" that it
 * may be left out; a tuple holds ints. Capitals are sizes, shared by the arguments of one call. */
#define METHOD(name, doc) {#name, py_##name, METH_VARARGS, doc}
static PyMethodDef methods[] = {
    METHOD(gemm, "gemm(c: out[M, N], a: in[M, K], b: in[K, N], trans_a: bool = False, trans_b: bool = False, "
                 "accumulate: bool = False)\n\n"
                 "c = op(a)·op(b), or c += op(a)·op(b) with accumulate; op(a) = aᵀ with trans_a, then a is (K, M), "
                 "op(b) = bᵀ with trans_b, then b is (N, K)."),
    METHOD(dense_forward, "dense_forward(y: out[N, OUT], x: in[N, IN], w: in[IN, OUT], b: in[OUT] | None)\n\n"
                          "y = x·w + b."),
    METHOD(dense_backward, "dense_backward(dx: out[N, IN] | None, dw: inout[IN, OUT], db: inout[OUT] | None, "
                           "dy: in[N, OUT], x: in[N, IN], w: in[IN, OUT], accumulate: bool = True)\n\n"
                           "dx = dy·wᵀ, dw += xᵀ·dy, db += Σdy (= when accumulate is false)."),
    METHOD(activation_forward, "activation_forward(y: out[*], x: in[*], act: int, alpha: float = 0, "
                               "beta: float = 1)\n\n"
                               "y = act(x) element-wise, * any shape of rank 1 to 8; y may be x. act is an ACT_* "
                               "code; alpha and beta are its parameters (ACT_SCALED_TANH: a and s of a·tanh(s·x), "
                               "ACT_LEAKY_RELU: alpha the slope)."),
    METHOD(activation_backward, "activation_backward(dx: out[*], dy: in[*], x: in[*], y: in[*], act: int, "
                                "alpha: float = 0, beta: float = 1)\n\n"
                                "dx = dy·act'(x), from the forward's input x and output y; dx may be dy."),
    METHOD(softmax_forward, "softmax_forward(y: out[N, K], x: in[N, K])\n\n"
                            "y = softmax of each row of x; y may be x."),
    METHOD(log_softmax_forward, "log_softmax_forward(y: out[N, K], x: in[N, K])\n\n"
                                "y = log(softmax) of each row of x; y may be x."),
    METHOD(softmax_backward, "softmax_backward(dx: out[N, K], dy: in[N, K], y: in[N, K])\n\n"
                             "dx = the gradient through softmax_forward, whose output was y; dx may be dy."),
    METHOD(log_softmax_backward, "log_softmax_backward(dx: out[N, K], dy: in[N, K], y: in[N, K])\n\n"
                                 "dx = the gradient through log_softmax_forward, whose output was y; dx may be dy."),
    METHOD(sparse_cross_entropy_loss, "sparse_cross_entropy_loss(dx: out[N, K] | None, x: in[N, K], "
                                      "labels: in int64[N] < K) -> float\n\n"
                                      "The mean cross-entropy of the logits x against class labels; dx = its "
                                      "gradient."),
    METHOD(cross_entropy_loss, "cross_entropy_loss(dx: out[N, K] | None, x: in[N, K], target: in[N, K]) -> float\n\n"
                               "The mean cross-entropy of the logits x against target distributions; dx = its "
                               "gradient."),
    METHOD(binary_cross_entropy_loss, "binary_cross_entropy_loss(dx: out[N, K] | None, x: in[N, K], "
                                      "target: in[N, K]) -> float\n\n"
                                      "The mean binary cross-entropy of the logits x against targets in [0, 1]; dx = "
                                      "its gradient."),
    METHOD(mse_loss, "mse_loss(dx: out[N, K] | None, x: in[N, K], target: in[N, K]) -> float\n\n"
                     "The mean squared error of the predictions x; dx = its gradient."),
    METHOD(multiclass_hinge_loss, "multiclass_hinge_loss(dx: out[N, K] | None, x: in[N, K], labels: in int64[N] < K, "
                                  "margin: float = 1) -> float\n\n"
                                  "The mean of Σ_{j≠label} max(0, x_j - x_label + margin) over the rows of scores "
                                  "x; dx = its gradient."),
    METHOD(sgd_step, "sgd_step(p: inout[P], buf: inout[P] | None, g: in[P], lr: float, momentum: float, "
                     "dampening: float, weight_decay: float, nesterov: bool, first: bool, variant: int)\n\n"
                     "One SGD step of p along g; buf holds the momentum (None only when momentum is 0); variant is "
                     "OPT_TORCH or OPT_KERAS."),
    METHOD(adam_step, "adam_step(p: inout[P], m: inout[P], v: inout[P], g: in[P], lr: float, beta1: float, "
                      "beta2: float, eps: float, weight_decay: float, decoupled: bool, t: int, variant: int)\n\n"
                      "Adam's step number t >= 1 of p along g, m and v its moments; variant is OPT_TORCH or "
                      "OPT_KERAS."),
    METHOD(l2_penalty, "l2_penalty(g: inout[P], p: in[P], lam: float) -> float\n\n"
                       "Returns lam/2·Σp² and adds its gradient lam·p to g."),
    METHOD(conv2d_scratch_size, "conv2d_scratch_size(x_shape: (N, C, H, W), w_shape: (OC, CG, KH, KW), "
                                "stride: (SH, SW), padding: (PT, PB, PL, PR), dilation: (DH, DW), groups: G) -> int\n\n"
                                "S, the elements of scratch conv2d_forward and conv2d_backward need for this "
                                "geometry."),
    METHOD(conv2d_forward, "conv2d_forward(y: out[N, OC, OH, OW], x: in[N, C, H, W], w: in[OC, CG, KH, KW], "
                           "b: in[OC] | None, scratch: out[S], stride: (SH, SW), padding: (PT, PB, PL, PR), "
                           "dilation: (DH, DW), groups: G)\n\n"
                           "y = the convolution of x with w, plus b. C and OC divide by G, CG = C/G; OH = (H + PT + "
                           "PB - DH·(KH - 1) - 1)/SH + 1, OW likewise; S = conv2d_scratch_size(...), and scratch is "
                           "None when S is 0."),
    METHOD(conv2d_backward, "conv2d_backward(dx: out[N, C, H, W] | None, dw: inout[OC, CG, KH, KW], "
                            "db: inout[OC] | None, dy: in[N, OC, OH, OW], x: in[N, C, H, W], w: in[OC, CG, KH, KW], "
                            "scratch: out[S], stride: (SH, SW), padding: (PT, PB, PL, PR), dilation: (DH, DW), "
                            "groups: G, accumulate: bool = True)\n\n"
                            "dx = the input gradient; dw and db += the parameter gradients (= when accumulate is "
                            "false). Sizes and scratch as conv2d_forward; scratch is workspace, its contents "
                            "ignored."),
    /* issue 20: the conv path heuristic */
    METHOD(_conv2d_path, "_conv2d_path(x_shape: (N, C, H, W), w_shape: (OC, CG, KH, KW), stride: (SH, SW), "
                         "padding: (PT, PB, PL, PR), dilation: (DH, DW), groups: G) -> str\n\n"
                         "The path conv2d_forward and conv2d_backward take for this geometry, in words."),
    METHOD(maxpool2d_forward, "maxpool2d_forward(y: out[N, C, OH, OW], argmax: out int64[N, C, OH, OW] < H·W, "
                              "x: in[N, C, H, W], kernel_size: (KH, KW), stride: (SH, SW), padding: (PT, PB, PL, PR))"
                              "\n\n"
                              "y = the maximum of each window, argmax its index in the plane. Each pad is at most "
                              "half its window; OH = (H + PT + PB - KH)/SH + 1, OW likewise."),
    METHOD(maxpool2d_backward, "maxpool2d_backward(dx: out[N, C, H, W], dy: in[N, C, OH, OW], "
                               "argmax: in int64[N, C, OH, OW] < H·W, kernel_size: (KH, KW), stride: (SH, SW), "
                               "padding: (PT, PB, PL, PR))\n\n"
                               "dx = dy scattered to the forward's argmax. Sizes as maxpool2d_forward."),
    METHOD(avgpool2d_forward, "avgpool2d_forward(y: out[N, C, OH, OW], x: in[N, C, H, W], kernel_size: (KH, KW), "
                              "stride: (SH, SW), padding: (PT, PB, PL, PR), count_include_pad: bool)\n\n"
                              "y = the mean of each window (padding cells counted with count_include_pad). Sizes as "
                              "maxpool2d_forward."),
    METHOD(avgpool2d_backward, "avgpool2d_backward(dx: out[N, C, H, W], dy: in[N, C, OH, OW], kernel_size: (KH, KW), "
                               "stride: (SH, SW), padding: (PT, PB, PL, PR), count_include_pad: bool)\n\n"
                               "dx = the gradient through avgpool2d_forward. Sizes as maxpool2d_forward."),
    METHOD(mlp_workspace_size, "mlp_workspace_size(units: in int64[L + 1], n: int, training: bool) -> int\n\n"
                               "W, the reals of scratch mlp_forward (training false) or mlp_loss_grad and mlp_epoch "
                               "need for n rows of the network whose L + 1 layer widths are units."),
    METHOD(mlp_forward, "mlp_forward(out: out[N, K], work: out[W], params: in[P], x: in[N, IN], "
                        "units: in int64[L + 1], hidden: int, output: int)\n\n"
                        "out = the network's prediction for x. units = (IN, hidden widths..., K); P = Σ (units[i] "
                        "+ 1)·units[i + 1], each layer's (in, out) weights then its biases; work at least W = "
                        "mlp_workspace_size(units, N, False); hidden is ACT_IDENTITY, ACT_SIGMOID, ACT_TANH or "
                        "ACT_RELU, output an MLP_OUT_* code."),
    METHOD(mlp_loss_grad, "mlp_loss_grad(grad: out[P], work: out[W], params: in[P], x: in[N, IN], y: in[N, K], "
                          "units: in int64[L + 1], hidden: int, output: int, alpha: float) -> float\n\n"
                          "The loss of the network on (x, y) plus alpha/(2N)·Σw² over its weights; grad = its "
                          "gradient. Sizes and codes as mlp_forward, W = mlp_workspace_size(units, N, True)."),
    METHOD(mlp_epoch, "mlp_epoch(params: inout[P], state: inout[S], grad: out[P], work: out[W], x: in[N, IN], "
                      "y: in[N, K], order: in int64[N] < N | None, units: in int64[L + 1], hidden: int, output: int, "
                      "alpha: float, batch: int, begin: int, end: int, opt: (adam: bool, lr: float, momentum: float, "
                      "nesterov: bool, beta1: float, beta2: float, eps: float, t: int)) -> (float, int)\n\n"
                      "Trains on batches [begin, end) of the rows of (x, y) taken in order (None: 0, 1, ...), one "
                      "optimizer step a batch; returns Σ batch loss·rows and the new step count t. S = P for SGD, "
                      "2·P for Adam; W = mlp_workspace_size(units, batch, True); sizes and codes as mlp_forward."),
    {"get_num_threads", py_get_num_threads, METH_NOARGS, GET_NUM_THREADS_DOC},
    METHOD(set_num_threads, SET_NUM_THREADS_DOC),
    METHOD(_cap_threads, "_cap_threads(n: int)\n\nKernels called from this thread use at most n threads (0: no cap): "
                         "a fit's cap while other processes keep cores busy (python/cnn/_contention.py)."),
    {"_gemm_isa", py_gemm_isa, METH_NOARGS, "_gemm_isa() -> the instruction set gemm runs: 'base', 'avx2' or 'avx512'"},
    {"_set_gemm_isa", py_set_gemm_isa, METH_VARARGS,
     "_set_gemm_isa(name): force gemm's instruction set ('auto' restores the widest)"},
    METHOD(_gemm_reference, "_gemm_reference(c: out[M, N], a: in[M, K], b: in[K, N], trans_a: bool = False, "
                            "trans_b: bool = False, accumulate: bool = False)\n\n"
                            "gemm by the triple loop of reference.c, summing in double: the tests' oracle."),
    METHOD(_conv2d_reference_forward, "_conv2d_reference_forward(y: out[N, OC, OH, OW], x: in[N, C, H, W], "
                                      "w: in[OC, CG, KH, KW], b: in[OC] | None, stride: (SH, SW), "
                                      "padding: (PT, PB, PL, PR), dilation: (DH, DW), groups: G)\n\n"
                                      "conv2d_forward as a direct loop nest, summing in double: the tests' oracle."),
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_core", "cnn's C kernels (see csrc/cnn.h)", -1, methods};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    if (cnn_threads_init()) return PyErr_Format(PyExc_OSError, "cnn: pthread_atfork failed (out of memory)");
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    static const struct {
        const char *name;
        int value;
    } constants[] = {
        {"ACT_IDENTITY", ACT_IDENTITY},
        {"ACT_SIGMOID", ACT_SIGMOID},
        {"ACT_TANH", ACT_TANH},
        {"ACT_SCALED_TANH", ACT_SCALED_TANH},
        {"ACT_RELU", ACT_RELU},
        {"ACT_LEAKY_RELU", ACT_LEAKY_RELU},
        {"OPT_TORCH", OPT_TORCH},
        {"OPT_KERAS", OPT_KERAS},
        {"MLP_OUT_IDENTITY", MLP_OUT_IDENTITY},
        {"MLP_OUT_LOGISTIC", MLP_OUT_LOGISTIC},
        {"MLP_OUT_SOFTMAX", MLP_OUT_SOFTMAX},
        {"MLP_OUT_EXP", MLP_OUT_EXP},
#ifdef _OPENMP
        {"HAVE_OPENMP", 1},
#else
        {"HAVE_OPENMP", 0},
#endif
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
