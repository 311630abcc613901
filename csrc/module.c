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
    case NPY_UINT8: return "uint8";
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
                      .pb = pad[1], .pl = pad[2], .pr = pad[3], .dil_h = dil[0], .dil_w = dil[1], .groups = groups,
                      .winograd = cnn_get_conv2d_winograd()};
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

/* The kernels' offset table (conv2d_offsets_size), in memory of the call's own that no caller can write
 * while the kernel indexes with it; NULL when the path needs none. -1 with MemoryError. */
static int conv_offsets(const cnn_conv2d *g, ptrdiff_t **offsets)
{
    size_t count = conv2d_offsets_size(g);
    *offsets = count ? PyMem_RawMalloc(count * sizeof **offsets) : NULL;
    if (count && !*offsets) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* g from (x_shape, w_shape, stride, pad, dilation, groups) as conv2d_scratch_size and _conv2d_path take them
 * (format names the function); a size outside [0, INT_MAX] becomes 0, which conv_geometry refuses. -1 on error. */
static int conv_shapes(PyObject *args, const char *format, const char *fn, cnn_conv2d *g)
{
    npy_intp xd[4], wd[4];
    int stride[2], pad[4], dil[2], groups;
    long long xl[4], wl[4];
    if (!PyArg_ParseTuple(args, format, &xl[0], &xl[1], &xl[2], &xl[3], &wl[0], &wl[1], &wl[2], &wl[3], &stride[0],
                          &stride[1], &pad[0], &pad[1], &pad[2], &pad[3], &dil[0], &dil[1], &groups))
        return -1;
    for (int i = 0; i < 4; i++) {
        xd[i] = xl[i] < 0 || xl[i] > INT_MAX ? 0 : (npy_intp)xl[i];
        wd[i] = wl[i] < 0 || wl[i] > INT_MAX ? 0 : (npy_intp)wl[i];
    }
    return conv_geometry(fn, g, xd, wd, stride, pad, dil, groups);
}

static PyObject *py_conv2d_scratch_size(PyObject *self, PyObject *args)
{
    static const char *fn = "conv2d_scratch_size";
    cnn_conv2d g;
    if (conv_shapes(args, "(LLLL)(LLLL)" CONV_ARGS ":conv2d_scratch_size", fn, &g)) return NULL;
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
    cnn_conv2d g;
    if (conv_shapes(args, "(LLLL)(LLLL)" CONV_ARGS ":_conv2d_path", "_conv2d_path", &g)) return NULL;
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
    ptrdiff_t *offsets;
    if (conv_offsets(&g, &offsets)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, conv2d_forward, DATA(y), DATA(x), DATA(w), DATA(b), DATA(sc), offsets, &g);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(offsets);
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
    ptrdiff_t *offsets;
    if (conv_offsets(&g, &offsets)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, conv2d_backward, DATA(dx), DATA(dw), DATA(db), DATA(dy), DATA(x), DATA(w), DATA(sc), offsets, &g,
         accumulate);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(offsets);
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

/* ---- maxpool2d_backward in chunks of samples (the gradient workspace's issue: peak training memory) ---- */

/* Entries of argmax one chunk copies: a copy of the whole of it, as large as the batch's pooled output in
 * int64, added 16 MB to the CIFAR convnet's peak training memory at batch 256 (benchmark B10). */
#define POOL_COPY_ENTRIES ((npy_intp)1 << 17)

/* dx, dy of type t and argmax, checked by pool(): the kernel a chunk of samples at a time, each on a checked
 * copy of its part of argmax (checked_indices). argmax is checked whole first, so that a bad entry raises
 * before dx is written; a chunk's own check then stops only an index another thread changed meanwhile. */
static PyObject *maxpool_backward_chunks(const char *fn, int t, PyArrayObject *dx, PyArrayObject *dy,
                                         PyArrayObject *idx, const cnn_pool2d *g)
{
    int64_t bound = (int64_t)g->h * g->w;
    const int64_t *all = PyArray_DATA(idx);
    npy_intp count = PyArray_SIZE(idx); /* an API call: out of the loop, which then vectorizes */
    uint64_t bad = 0;
    for (npy_intp i = 0; i < count; i++) bad |= (uint64_t)all[i] >= (uint64_t)bound; /* < 0 wraps */
    if (bad) { /* checked_indices finds and names the entry, unless a thread in a GIL-free loop undid it */
        int64_t *copy = checked_indices(fn, "argmax", "plane indices", idx, 0, count, bound);
        if (!copy) return NULL;
        PyMem_RawFree(copy);
    }
    npy_intp per = (npy_intp)g->c * g->oh * g->ow; /* argmax entries per sample */
    int step = per > 0 && per < POOL_COPY_ENTRIES ? (int)(POOL_COPY_ENTRIES / per) : 1;
    size_t item = PyArray_ITEMSIZE(dx), xs = (size_t)g->c * g->h * g->w * item, ys = (size_t)per * item;
    for (int s0 = 0; s0 < g->n; s0 += step) {
        cnn_pool2d part = *g;
        part.n = g->n - s0 < step ? g->n - s0 : step;
        int64_t *argmax = checked_indices(fn, "argmax", "plane indices", idx, (npy_intp)s0 * per,
                                          (npy_intp)part.n * per, bound);
        if (!argmax) return NULL;
        void *dxs = (char *)PyArray_DATA(dx) + s0 * xs;
        const void *dys = (const char *)PyArray_DATA(dy) + s0 * ys;
        Py_BEGIN_ALLOW_THREADS
        CALL(t, maxpool2d_backward, dxs, dys, argmax, &part);
        Py_END_ALLOW_THREADS
        PyMem_RawFree(argmax);
    }
    Py_RETURN_NONE;
}

/* ---- end of maxpool2d_backward in chunks ---- */

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
    /* backward scatters through argmax: it reads checked copies (the forward only writes argmax) */
    if (max && backward) return maxpool_backward_chunks(fn, t, full, pooled, idx, &g);
    Py_BEGIN_ALLOW_THREADS
    if (max) CALL(t, maxpool2d_forward, DATA(pooled), DATA(idx), DATA(full), &g);
    else if (backward) CALL(t, avgpool2d_backward, DATA(full), DATA(pooled), &g, include);
    else CALL(t, avgpool2d_forward, DATA(pooled), DATA(full), &g, include);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_maxpool2d_forward(PyObject *s, PyObject *a) { return pool(a, "maxpool2d_forward", 1, 0); }
static PyObject *py_maxpool2d_backward(PyObject *s, PyObject *a) { return pool(a, "maxpool2d_backward", 1, 1); }
static PyObject *py_avgpool2d_forward(PyObject *s, PyObject *a) { return pool(a, "avgpool2d_forward", 0, 0); }
static PyObject *py_avgpool2d_backward(PyObject *s, PyObject *a) { return pool(a, "avgpool2d_backward", 0, 1); }

/* ---- issue 20: the 2x2 max-pool with window codes (and a ReLU folded in) ----------------------------------------
 * maxpool2x2_forward(y, code, x, relu) and maxpool2x2_backward(dx, dy, code): the full-size array (x or dx) gives the
 * type and the sizes, which must be at least 2x2. Backward reads code unchecked: every byte is a valid code. */
static PyObject *maxpool2x2(PyObject *args, const char *fn, int backward)
{
    PyObject *o[3];
    int relu = 0;
    int parsed = backward ? PyArg_ParseTuple(args, parse_format("OOO", fn).s, &o[0], &o[1], &o[2])
                          : PyArg_ParseTuple(args, parse_format("OOOp", fn).s, &o[0], &o[1], &o[2], &relu);
    if (!parsed) return NULL;
    const char *full_name = backward ? "dx" : "x", *pooled_name = backward ? "dy" : "y";
    PyObject *ofull = o[backward ? 0 : 2], *opooled = o[backward ? 1 : 0], *ocode = o[backward ? 2 : 1];
    int t = real_type(ofull, fn, full_name);
    PyArrayObject *full = t < 0 ? NULL : array_arg(ofull, fn, full_name, t, 4, NULL, backward ? WRITE : READ);
    if (!full) return NULL;
    if (DIM(full, 2) < 2 || DIM(full, 3) < 2)
        return PyErr_Format(PyExc_ValueError, "%s: argument '%s' must have planes of at least 2x2, got %dx%d", fn,
                            full_name, DIM(full, 2), DIM(full, 3));
    npy_intp od[] = {PyArray_DIM(full, 0), PyArray_DIM(full, 1), PyArray_DIM(full, 2) / 2, PyArray_DIM(full, 3) / 2};
    PyArrayObject *pooled = array_arg(opooled, fn, pooled_name, t, 4, od, backward ? READ : WRITE);
    PyArrayObject *code = pooled ? array_arg(ocode, fn, "code", NPY_UINT8, 4, od, backward ? READ : WRITE) : NULL;
    int full_role = backward ? OUT : IN, pooled_role = backward ? IN : OUT;
    if (!code || check_overlap(fn, OPERANDS({full_name, full, full_role}, {pooled_name, pooled, pooled_role},
                                            {"code", code, pooled_role})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (backward)
        CALL(t, maxpool2x2_backward, DATA(full), DATA(pooled), DATA(code), DIM(full, 0), DIM(full, 1), DIM(full, 2),
             DIM(full, 3));
    else
        CALL(t, maxpool2x2_forward, DATA(pooled), DATA(code), DATA(full), DIM(full, 0), DIM(full, 1), DIM(full, 2),
             DIM(full, 3), relu);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_maxpool2x2_forward(PyObject *s, PyObject *a) { return maxpool2x2(a, "maxpool2x2_forward", 0); }
static PyObject *py_maxpool2x2_backward(PyObject *s, PyObject *a) { return maxpool2x2(a, "maxpool2x2_backward", 1); }
/* ---- end of issue 20's 2x2 max-pool ---- */

/* ---- image: affine warps ------------------------------------------------------------------------ */

static PyObject *py_affine_transform_forward(PyObject *self, PyObject *args)
{
    const char *fn = "affine_transform_forward";
    PyObject *oy, *ox, *om;
    int order, fill;
    double cval;
    if (!PyArg_ParseTuple(args, "OOOiid:affine_transform_forward", &oy, &ox, &om, &order, &fill, &cval)) return NULL;
    if (order != 0 && order != 1) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'order' must be 0 or 1, got %d", fn, order);
        return NULL;
    }
    if (fill < 0 || fill >= IMAGE_FILL_COUNT) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'fill' must be an IMAGE_FILL_* code in [0, %d), got %d", fn,
                     IMAGE_FILL_COUNT, fill);
        return NULL;
    }
    int t = real_type(ox, fn, "x");
    PyArrayObject *x = t < 0 ? NULL : array_arg(ox, fn, "x", t, 4, NULL, READ);
    PyArrayObject *y = x ? array_arg(oy, fn, "y", t, 4, (npy_intp[]){DIM(x, 0), DIM(x, 1), ANY, ANY}, WRITE) : NULL;
    PyArrayObject *m = y ? array_arg(om, fn, "matrix", t, 3, (npy_intp[]){ANY, 2, 3}, READ) : NULL;
    if (!m) return NULL;
    if (DIM(m, 0) != 1 && DIM(m, 0) != DIM(x, 0)) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'matrix' must hold 1 or N = %d matrices, got %d", fn, DIM(x, 0),
                     DIM(m, 0));
        return NULL;
    }
    if (check_overlap(fn, OPERANDS({"y", y, OUT}, {"x", x, IN}, {"matrix", m, IN}))) return NULL;
    cnn_affine g = {.n = DIM(x, 0),
                    .c = DIM(x, 1),
                    .h = DIM(x, 2),
                    .w = DIM(x, 3),
                    .oh = DIM(y, 2),
                    .ow = DIM(y, 3),
                    .order = order,
                    .per_image = DIM(m, 0) > 1,
                    .fill = (cnn_image_fill)fill,
                    .cval = cval};
    Py_BEGIN_ALLOW_THREADS
    CALL(t, affine_transform_forward, DATA(y), DATA(x), DATA(m), &g);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ---- random warp matrices (warp_matrix.c) ---------------------------------------------------- */

static PyObject *py_warp_matrix_forward(PyObject *self, PyObject *args)
{
    const char *fn = "warp_matrix_forward";
    PyObject *om, *od;
    int kind, h, w, compose;
    if (!PyArg_ParseTuple(args, "OOiiip:warp_matrix_forward", &om, &od, &kind, &h, &w, &compose)) return NULL;
    if (kind < 0 || kind >= WARP_KIND_COUNT) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'kind' must be a WARP_* code in [0, %d), got %d", fn,
                     WARP_KIND_COUNT, kind);
        return NULL;
    }
    if (h < 1 || w < 1) {
        PyErr_Format(PyExc_ValueError, "%s: arguments 'h' and 'w' must be >= 1, got %d and %d", fn, h, w);
        return NULL;
    }
    int t = real_type(om, fn, "matrix");
    PyArrayObject *m = t < 0 ? NULL : array_arg(om, fn, "matrix", t, 3, (npy_intp[]){ANY, 2, 3}, WRITE);
    PyArrayObject *d = m ? array_arg(od, fn, "draws", t, 2, (npy_intp[]){ANY, DIM(m, 0)}, READ) : NULL;
    if (!d) return NULL;
    int k = DIM(d, 0);
    static const char *rows[WARP_KIND_COUNT] = {"1 row (rotation)", "1 or 2 rows (zoom)", "2 rows (translation)"};
    if (k < (kind == WARP_TRANSLATION ? 2 : 1) || k > (kind == WARP_ROTATION ? 1 : 2)) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'draws' must have %s for warp kind %d, got %d", fn, rows[kind],
                     kind, k);
        return NULL;
    }
    if (check_overlap(fn, OPERANDS({"matrix", m, OUT}, {"draws", d, IN}))) return NULL;
    cnn_warp_matrix g = {.n = DIM(m, 0), .k = k, .h = h, .w = w, .kind = (cnn_warp_kind)kind, .compose = compose};
    Py_BEGIN_ALLOW_THREADS
    CALL(t, warp_matrix_forward, DATA(m), DATA(d), &g);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ---- sparse input (sparse.c; mlp's CSR x) ------------------------------------------------------------ */

/* The three arrays of a CSR matrix as scipy holds them (data, indices, indptr), checked for type and shape:
 * NNZ may be 0 (every row empty), so these two are checked here rather than by array_arg. */
typedef struct {
    PyArrayObject *data, *indices, *indptr;
    int n;        /* rows: len(indptr) - 1 */
    npy_intp nnz; /* len(data) = len(indices) */
} csr_arrays;

static PyArrayObject *csr_vector(PyObject *o, const char *fn, const char *name, int type, npy_intp len)
{
    if (PyArray_Check(o) && PyArray_NDIM((PyArrayObject *)o) == 1 && PyArray_DIM((PyArrayObject *)o, 0) == 0 &&
        len <= 0 && PyArray_TYPE((PyArrayObject *)o) == type)
        return (PyArrayObject *)o; /* empty: its data pointer is never read */
    return array_arg(o, fn, name, type, 1, (npy_intp[]){len < 0 ? ANY : len}, READ);
}

static int csr_arrays_arg(const char *fn, const char *data_name, PyObject *odata, PyObject *oindices, PyObject *oindptr,
                          int t, csr_arrays *c)
{
    c->data = csr_vector(odata, fn, data_name, t, -1);
    c->nnz = c->data ? PyArray_DIM(c->data, 0) : 0;
    c->indices = c->data ? csr_vector(oindices, fn, "indices", NPY_INT64, c->nnz ? c->nnz : -1) : NULL;
    if (c->indices && PyArray_DIM(c->indices, 0) != c->nnz) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'indices' must have shape (%ld,), as '%s', got (%ld,)", fn,
                     (long)c->nnz, data_name, (long)PyArray_DIM(c->indices, 0));
        return -1;
    }
    c->indptr = c->indices ? array_arg(oindptr, fn, "indptr", NPY_INT64, 1, NULL, READ) : NULL;
    if (c->indptr && PyArray_DIM(c->indptr, 0) < 2) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'indptr' must hold N + 1 >= 2 offsets, got %ld", fn,
                     (long)PyArray_DIM(c->indptr, 0));
        return -1;
    }
    c->n = c->indptr ? (int)PyArray_DIM(c->indptr, 0) - 1 : 0;
    return c->indptr ? 0 : -1;
}

/* A private CSR of `count` rows of c (rows[i], or first + i when rows is NULL), copied while the GIL is held
 * and checked on the copy: indptr runs from 0 to NNZ without decreasing, every index lies in [0, cols). The
 * kernels index memory with them, and another thread may write the caller's arrays once the GIL is released.
 * The gathered rows are what sklearn's _safe_indexing makes of a shuffled batch. Free with csr_free. */
typedef struct {
    int64_t *indptr, *indices;
    void *data;
} csr_copy;

static void csr_free(csr_copy *g)
{
    PyMem_RawFree(g->indptr);
    PyMem_RawFree(g->indices);
    PyMem_RawFree(g->data);
}

static int csr_gather(const char *fn, const csr_arrays *c, const int64_t *rows, npy_intp first, npy_intp count,
                      int cols, csr_copy *g)
{
    size_t item = PyArray_ITEMSIZE(c->data);
    int64_t *ptr = PyMem_RawMalloc(((size_t)c->n + 1) * sizeof *ptr);
    *g = (csr_copy){PyMem_RawMalloc(((size_t)count + 1) * sizeof(int64_t)), NULL, NULL};
    if (!ptr || !g->indptr) goto nomem;
    memcpy(ptr, PyArray_DATA(c->indptr), ((size_t)c->n + 1) * sizeof *ptr);
    for (int i = 0; i <= c->n; i++)
        if (i ? ptr[i] < ptr[i - 1] || ptr[i] > c->nnz : ptr[0] != 0) {
            PyErr_Format(PyExc_ValueError,
                         "%s: argument 'indptr' must run from 0 to NNZ = %ld without decreasing, got %lld at %d", fn,
                         (long)c->nnz, (long long)ptr[i], i);
            goto fail;
        }
    if (ptr[c->n] != c->nnz) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'indptr' must end at NNZ = %ld, got %lld", fn, (long)c->nnz,
                     (long long)ptr[c->n]);
        goto fail;
    }
    g->indptr[0] = 0;
    for (npy_intp i = 0; i < count; i++) {
        int64_t r = rows ? rows[i] : first + i;
        g->indptr[i + 1] = g->indptr[i] + ptr[r + 1] - ptr[r];
    }
    size_t total = (size_t)g->indptr[count];
    g->indices = PyMem_RawMalloc(total ? total * sizeof(int64_t) : 1);
    g->data = PyMem_RawMalloc(total ? total * item : 1);
    if (!g->indices || !g->data) goto nomem;
    for (npy_intp i = 0; i < count; i++) {
        int64_t r = rows ? rows[i] : first + i, len = ptr[r + 1] - ptr[r];
        memcpy(g->indices + g->indptr[i], (const int64_t *)PyArray_DATA(c->indices) + ptr[r], (size_t)len * 8);
        memcpy((char *)g->data + (size_t)g->indptr[i] * item, PyArray_BYTES(c->data) + (size_t)ptr[r] * item,
               (size_t)len * item);
    }
    for (size_t e = 0; e < total; e++)
        if (g->indices[e] < 0 || g->indices[e] >= cols) {
            PyErr_Format(PyExc_ValueError, "%s: argument 'indices' must hold column indices in [0, %d), got %lld", fn,
                         cols, (long long)g->indices[e]);
            goto fail;
        }
    PyMem_RawFree(ptr);
    return 0;
nomem:
    PyErr_NoMemory();
fail:
    PyMem_RawFree(ptr);
    csr_free(g);
    *g = (csr_copy){NULL, NULL, NULL};
    return -1;
}

static PyObject *py_sparse_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "sparse_forward";
    PyObject *oout, *odata, *oindices, *oindptr, *ow, *ob;
    csr_arrays c;
    csr_copy g;
    int ok = 1;
    if (!PyArg_ParseTuple(args, "OOOOOO:sparse_forward", &oout, &odata, &oindices, &oindptr, &ow, &ob)) return NULL;
    int t = real_type(ow, fn, "w");
    PyArrayObject *w = t < 0 ? NULL : array_arg(ow, fn, "w", t, 2, NULL, READ);
    if (!w || csr_arrays_arg(fn, "data", odata, oindices, oindptr, t, &c)) return NULL;
    int out_dim = DIM(w, 1);
    PyArrayObject *out = array_arg(oout, fn, "out", t, 2, (npy_intp[]){c.n, out_dim}, WRITE);
    PyArrayObject *b = out ? optional_arg(ob, &ok, fn, "b", t, 1, (npy_intp[]){out_dim}, READ) : NULL;
    if (!out || !ok ||
        check_overlap(fn, OPERANDS({"out", out, OUT}, {"data", c.data, IN}, {"w", w, IN}, {"b", b, IN})) ||
        csr_gather(fn, &c, NULL, 0, c.n, DIM(w, 0), &g))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, sparse_forward, DATA(out), g.data, g.indices, g.indptr, DATA(w), DATA(b), c.n, out_dim);
    Py_END_ALLOW_THREADS
    csr_free(&g);
    Py_RETURN_NONE;
}

static PyObject *py_sparse_backward(PyObject *self, PyObject *args)
{
    static const char *fn = "sparse_backward";
    PyObject *odw, *odb, *ody, *odata, *oindices, *oindptr;
    int accumulate = 1, ok = 1;
    csr_arrays c;
    csr_copy g;
    if (!PyArg_ParseTuple(args, "OOOOOO|p:sparse_backward", &odw, &odb, &ody, &odata, &oindices, &oindptr, &accumulate))
        return NULL;
    int t = real_type(odw, fn, "dw");
    PyArrayObject *dw = t < 0 ? NULL : array_arg(odw, fn, "dw", t, 2, NULL, WRITE);
    if (!dw || csr_arrays_arg(fn, "data", odata, oindices, oindptr, t, &c)) return NULL;
    int in = DIM(dw, 0), out_dim = DIM(dw, 1);
    PyArrayObject *db = optional_arg(odb, &ok, fn, "db", t, 1, (npy_intp[]){out_dim}, WRITE);
    PyArrayObject *dy = ok ? array_arg(ody, fn, "dout", t, 2, (npy_intp[]){c.n, out_dim}, READ) : NULL;
    if (!dy || check_overlap(fn, OPERANDS({"dw", dw, OUT}, {"db", db, OUT}, {"dout", dy, IN}, {"data", c.data, IN})) ||
        csr_gather(fn, &c, NULL, 0, c.n, in, &g))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, sparse_backward, DATA(dw), DATA(db), DATA(dy), g.data, g.indices, g.indptr, c.n, in, out_dim, accumulate);
    Py_END_ALLOW_THREADS
    csr_free(&g);
    Py_RETURN_NONE;
}

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
static size_t mlp_workspace_arg(const char *fn, const cnn_mlp *net, int n, const char *rows_name, int training,
                                int sparse)
{
    size_t size = cnn_mlp_workspace_size(net, n, training, sparse);
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
    int n, training, sparse = 0, units[MLP_MAX_UNITS];
    cnn_mlp net;
    if (!PyArg_ParseTuple(args, "Oip|p:mlp_workspace_size", &ou, &n, &training, &sparse)) return NULL;
    if (mlp_net_arg(fn, ou, ACT_IDENTITY, MLP_OUT_IDENTITY, 0, &net, units)) return NULL;
    if (n < 1) return PyErr_Format(PyExc_ValueError, "%s: argument 'n' must be >= 1, got %d", fn, n);
    size_t size = mlp_workspace_arg(fn, &net, n, "n", training, sparse);
    return size == SIZE_MAX ? NULL : PyLong_FromSize_t(size);
}

/* The network's input: x (N, units[0]) dense, or with indices and indptr given, x the data of a CSR matrix
 * (N, units[0]); gathers all N rows when gather is set (mlp_epoch gathers only its batches' rows itself). */
typedef struct {
    int t, n;
    PyArrayObject *x; /* the dense x, or the CSR's data */
    csr_arrays csr;
    int sparse;
} mlp_input;

static int mlp_input_arg(const char *fn, PyObject *ox, PyObject *oindices, PyObject *oindptr, int cols, mlp_input *in)
{
    in->sparse = oindices != Py_None || oindptr != Py_None;
    in->t = real_type(ox, fn, "x");
    if (in->t < 0) return -1;
    if (!in->sparse) {
        in->x = array_arg(ox, fn, "x", in->t, 2, (npy_intp[]){ANY, cols}, READ);
        in->n = in->x ? DIM(in->x, 0) : 0;
        return in->x ? 0 : -1;
    }
    if (csr_arrays_arg(fn, "x", ox, oindices, oindptr, in->t, &in->csr)) return -1;
    in->x = in->csr.data;
    in->n = in->csr.n;
    return 0;
}

static PyObject *py_mlp_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "mlp_forward";
    PyObject *oout, *owork, *op, *ox, *ou, *oindices = Py_None, *oindptr = Py_None;
    int hidden, output, units[MLP_MAX_UNITS];
    cnn_mlp net;
    mlp_input in;
    csr_copy g = {NULL, NULL, NULL};
    if (!PyArg_ParseTuple(args, "OOOOOii|OO:mlp_forward", &oout, &owork, &op, &ox, &ou, &hidden, &output, &oindices,
                          &oindptr))
        return NULL;
    if (mlp_net_arg(fn, ou, hidden, output, 0, &net, units) || mlp_input_arg(fn, ox, oindices, oindptr, units[0], &in))
        return NULL;
    int t = in.t, n = in.n;
    PyArrayObject *p = array_arg(op, fn, "params", t, 1, (npy_intp[]){(npy_intp)cnn_mlp_param_count(&net)}, READ);
    PyArrayObject *out = p ? array_arg(oout, fn, "out", t, 2, (npy_intp[]){n, units[net.n_layers]}, WRITE) : NULL;
    size_t size = out ? mlp_workspace_arg(fn, &net, n, "x", 0, 0) : SIZE_MAX;
    PyArrayObject *work = size != SIZE_MAX ? vector_arg(owork, fn, "work", t, size, 0) : NULL;
    if (!work ||
        check_overlap(fn, OPERANDS({"out", out, OUT}, {"work", work, OUT}, {"params", p, IN}, {"x", in.x, IN})) ||
        (in.sparse && csr_gather(fn, &in.csr, NULL, 0, n, units[0], &g)))
        return NULL;
    cnn_csr xs = {g.indptr, g.indices, g.data};
    Py_BEGIN_ALLOW_THREADS
    CALL(t, mlp_forward, DATA(out), DATA(work), DATA(p), in.sparse ? NULL : DATA(in.x), in.sparse ? &xs : NULL, n,
         &net);
    Py_END_ALLOW_THREADS
    csr_free(&g);
    Py_RETURN_NONE;
}

/* The arrays shared by mlp_loss_grad and mlp_epoch: x (N, units[0]) dense or CSR, y (N, units[L]), sample
 * weights (N) or None, params (P), grad (P), work (at least the training workspace for `rows` rows). */
typedef struct {
    PyArrayObject *x, *y, *sw, *p, *grad, *work;
    mlp_input in;
    int t, n;
} mlp_arrays;

static int mlp_arrays_arg(const char *fn, mlp_arrays *a, PyObject *ox, PyObject *oy, PyObject *osw, PyObject *oindices,
                          PyObject *oindptr, PyObject *op, PyObject *og, PyObject *owork, const cnn_mlp *net,
                          int param_access, int batch)
{
    int ok = 1;
    if (mlp_input_arg(fn, ox, oindices, oindptr, net->units[0], &a->in)) return -1;
    a->t = a->in.t;
    a->x = a->in.x;
    a->n = a->in.n;
    a->sw = optional_arg(osw, &ok, fn, "sample_weight", a->t, 1, (npy_intp[]){a->n}, READ);
    if (!ok) return -1;
    size_t count = cnn_mlp_param_count(net);
    a->y = array_arg(oy, fn, "y", a->t, 2, (npy_intp[]){a->n, net->units[net->n_layers]}, READ);
    a->p = a->y ? array_arg(op, fn, "params", a->t, 1, (npy_intp[]){(npy_intp)count}, param_access) : NULL;
    a->grad = a->p ? vector_arg(og, fn, "grad", a->t, count, 1) : NULL;
    if (a->grad && batch > a->n) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'batch' must lie in [1, %d], got %d", fn, a->n, batch);
        return -1;
    }
    size_t size = a->grad ? mlp_workspace_arg(fn, net, batch ? batch : a->n, batch ? "batch" : "x", 1, a->in.sparse)
                          : SIZE_MAX;
    a->work = size != SIZE_MAX ? vector_arg(owork, fn, "work", a->t, size, 0) : NULL;
    return a->work ? 0 : -1;
}

static PyObject *py_mlp_loss_grad(PyObject *self, PyObject *args)
{
    static const char *fn = "mlp_loss_grad";
    PyObject *og, *owork, *op, *ox, *oy, *ou, *osw = Py_None, *oindices = Py_None, *oindptr = Py_None;
    int hidden, output, units[MLP_MAX_UNITS];
    double alpha, loss;
    cnn_mlp net;
    mlp_arrays a;
    csr_copy g = {NULL, NULL, NULL};
    if (!PyArg_ParseTuple(args, "OOOOOOiid|OOO:mlp_loss_grad", &og, &owork, &op, &ox, &oy, &ou, &hidden, &output,
                          &alpha, &osw, &oindices, &oindptr))
        return NULL;
    if (mlp_net_arg(fn, ou, hidden, output, alpha, &net, units) ||
        mlp_arrays_arg(fn, &a, ox, oy, osw, oindices, oindptr, op, og, owork, &net, READ, 0) ||
        check_overlap(fn, OPERANDS({"grad", a.grad, OUT}, {"work", a.work, OUT}, {"params", a.p, IN}, {"x", a.x, IN},
                                   {"y", a.y, IN}, {"sample_weight", a.sw, IN})) ||
        (a.in.sparse && csr_gather(fn, &a.in.csr, NULL, 0, a.n, units[0], &g)))
        return NULL;
    cnn_csr xs = {g.indptr, g.indices, g.data};
    Py_BEGIN_ALLOW_THREADS
    loss = CALL(a.t, mlp_loss_grad, DATA(a.grad), DATA(a.work), DATA(a.p), a.in.sparse ? NULL : DATA(a.x),
                a.in.sparse ? &xs : NULL, DATA(a.y), DATA(a.sw), a.n, &net);
    Py_END_ALLOW_THREADS
    csr_free(&g);
    return PyFloat_FromDouble(loss);
}

static PyObject *py_mlp_epoch(PyObject *self, PyObject *args)
{
    static const char *fn = "mlp_epoch";
    PyObject *op, *ostate, *og, *owork, *ox, *oy, *oorder, *ou, *osw = Py_None, *oindices = Py_None, *oindptr = Py_None;
    int hidden, output, batch, b0, b1, adam, nesterov, units[MLP_MAX_UNITS], ok = 1;
    double alpha, total;
    cnn_mlp net;
    cnn_mlp_optim opt;
    mlp_arrays a;
    csr_copy g = {NULL, NULL, NULL};
    if (!PyArg_ParseTuple(args, "OOOOOOOOiidiii(pddpdddL)|OOO:mlp_epoch", &op, &ostate, &og, &owork, &ox, &oy, &oorder,
                          &ou, &hidden, &output, &alpha, &batch, &b0, &b1, &adam, &opt.lr, &opt.momentum, &nesterov,
                          &opt.beta1, &opt.beta2, &opt.eps, &opt.t, &osw, &oindices, &oindptr))
        return NULL;
    opt.adam = adam;
    opt.nesterov = nesterov;
    if (batch < 1) return PyErr_Format(PyExc_ValueError, "%s: argument 'batch' must be >= 1, got %d", fn, batch);
    if (mlp_net_arg(fn, ou, hidden, output, alpha, &net, units) ||
        mlp_arrays_arg(fn, &a, ox, oy, osw, oindices, oindptr, op, og, owork, &net, WRITE, batch))
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
                                   {"work", a.work, OUT}, {"x", a.x, IN}, {"y", a.y, IN}, {"order", order, IN},
                                   {"sample_weight", a.sw, IN})))
        return NULL;
    /* only the rows of the batches run: a call per batch must not pay for copying the whole epoch's order */
    long long first = (long long)b0 * batch, last = (long long)b1 * batch < a.n ? (long long)b1 * batch : a.n;
    int64_t *rows = order ? checked_indices(fn, "order", "row indices", order, (npy_intp)first,
                                            (npy_intp)(last - first), a.n)
                          : NULL;
    if (order && !rows) return NULL;
    if (a.in.sparse && csr_gather(fn, &a.in.csr, rows, (npy_intp)first, (npy_intp)(last - first), units[0], &g)) {
        PyMem_RawFree(rows);
        return NULL;
    }
    cnn_csr xs = {g.indptr, g.indices, g.data};
    Py_BEGIN_ALLOW_THREADS
    total = CALL(a.t, mlp_epoch, DATA(a.p), DATA(state), DATA(a.grad), DATA(a.work), a.in.sparse ? NULL : DATA(a.x),
                 a.in.sparse ? &xs : NULL, DATA(a.y), DATA(a.sw), rows, a.n, batch, b0, b1, &net, &opt);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(rows);
    csr_free(&g);
    return Py_BuildValue("dL", total, opt.t);
}

/* ---- merge (Add, Multiply, Concatenate) ------------------------------------------------------ */

/* add_forward and multiply_forward: y = a op b, element-wise over one shape; y may be a or b. */
static PyObject *elementwise_merge(PyObject *args, const char *fn, int multiply)
{
    PyObject *oy, *oa, *ob;
    int relu = 0; /* add_forward's optional flag (issue 20) */
    if (!PyArg_ParseTuple(args, parse_format(multiply ? "OOO" : "OOO|p", fn).s, &oy, &oa, &ob, &relu)) return NULL;
    PyArrayObject *a = elementwise_arg(oa, fn, "a");
    PyArrayObject *b = a ? like(ob, fn, "b", a, READ) : NULL;
    PyArrayObject *y = b ? like(oy, fn, "y", a, WRITE) : NULL;
    if (!y || check_overlap(fn, OPERANDS({"y", y, OUT}, {"a", a, SAME}, {"b", b, SAME}))) return NULL;
    int t = PyArray_TYPE(a);
    size_t count = (size_t)PyArray_SIZE(a);
    Py_BEGIN_ALLOW_THREADS
    if (multiply) CALL(t, multiply_forward, DATA(y), DATA(a), DATA(b), count);
    else CALL(t, add_forward, DATA(y), DATA(a), DATA(b), count, relu);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_add_forward(PyObject *s, PyObject *a) { return elementwise_merge(a, "add_forward", 0); }
static PyObject *py_multiply_forward(PyObject *s, PyObject *a) { return elementwise_merge(a, "multiply_forward", 1); }

static PyObject *py_multiply_backward(PyObject *self, PyObject *args)
{
    static const char *fn = "multiply_backward";
    PyObject *oda, *odb, *ody, *oa, *ob;
    if (!PyArg_ParseTuple(args, "OOOOO:multiply_backward", &oda, &odb, &ody, &oa, &ob)) return NULL;
    PyArrayObject *a = elementwise_arg(oa, fn, "a");
    PyArrayObject *b = a ? like(ob, fn, "b", a, READ) : NULL;
    PyArrayObject *dy = b ? like(ody, fn, "dy", a, READ) : NULL;
    if (!dy) return NULL;
    int ok = 1, t = PyArray_TYPE(a), nd = PyArray_NDIM(a);
    PyArrayObject *da = optional_arg(oda, &ok, fn, "da", t, nd, PyArray_DIMS(a), WRITE);
    PyArrayObject *db = ok ? optional_arg(odb, &ok, fn, "db", t, nd, PyArray_DIMS(a), WRITE) : NULL;
    if (!ok ||
        check_overlap(fn, OPERANDS({"da", da, OUT}, {"db", db, OUT}, {"dy", dy, IN}, {"a", a, IN}, {"b", b, IN})))
        return NULL;
    size_t count = (size_t)PyArray_SIZE(a);
    Py_BEGIN_ALLOW_THREADS
    CALL(t, multiply_backward, DATA(da), DATA(db), DATA(dy), DATA(a), DATA(b), count);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* concatenate_forward(y (M, J), x (M, I), offset) and concatenate_backward(dx (M, I), dy (M, J), offset): the
 * part (M, I) is columns [offset, offset + I) of the whole (M, J). */
static PyObject *concatenate(PyObject *args, const char *fn, int backward)
{
    PyObject *owhole, *opart;
    long long offset;
    if (!PyArg_ParseTuple(args, parse_format("OOL", fn).s, backward ? &opart : &owhole, backward ? &owhole : &opart,
                          &offset))
        return NULL;
    const char *part_name = backward ? "dx" : "x", *whole_name = backward ? "dy" : "y";
    int t = real_type(opart, fn, part_name);
    if (t < 0) return NULL;
    PyArrayObject *part = array_arg(opart, fn, part_name, t, 2, NULL, backward ? WRITE : READ);
    PyArrayObject *whole = part ? array_arg(owhole, fn, whole_name, t, 2, (npy_intp[]){PyArray_DIM(part, 0), ANY},
                                            backward ? READ : WRITE)
                                : NULL;
    if (!whole) return NULL;
    npy_intp m = PyArray_DIM(part, 0), in = PyArray_DIM(part, 1), out = PyArray_DIM(whole, 1);
    if (offset < 0 || offset > out - in) {
        PyErr_Format(PyExc_ValueError,
                     "%s: argument 'offset' must be in [0, %ld] (%s's %ld columns in %s's %ld), got %lld", fn,
                     (long)(out - in), part_name, (long)in, whole_name, (long)out, offset);
        return NULL;
    }
    PyArrayObject *dst = backward ? part : whole, *src = backward ? whole : part;
    if (check_overlap(fn, OPERANDS({backward ? "dx" : "y", dst, OUT}, {backward ? "dy" : "x", src, IN}))) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (backward)
        CALL(t, concatenate_backward, DATA(part), DATA(whole), (size_t)m, (size_t)in, (size_t)out, (size_t)offset);
    else CALL(t, concatenate_forward, DATA(whole), DATA(part), (size_t)m, (size_t)in, (size_t)out, (size_t)offset);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_concatenate_forward(PyObject *s, PyObject *a) { return concatenate(a, "concatenate_forward", 0); }
static PyObject *py_concatenate_backward(PyObject *s, PyObject *a) { return concatenate(a, "concatenate_backward", 1); }

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

/* ---- issue 20's Winograd path: the tests' switch ---------------------------------------------------- */

static PyObject *py_set_conv2d_winograd(PyObject *self, PyObject *args)
{
    static const char *const modes[] = {"never", "auto", "always"};
    const char *name;
    if (!PyArg_ParseTuple(args, "s:_set_conv2d_winograd", &name)) return NULL;
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, modes[i])) {
            cnn_set_conv2d_winograd(i - 1);
            Py_RETURN_NONE;
        }
    return PyErr_Format(PyExc_ValueError,
                        "_set_conv2d_winograd: argument 'mode' must be one of 'never', 'auto', 'always', got '%s'",
                        name);
}

/* ---- issue 16's layers: batch normalization, Keras's relu, upsampling, transposed convolution ----------------- */

static PyObject *py_batchnorm_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "batchnorm_forward";
    PyObject *oy, *omean, *oinv, *omm, *omv, *ox, *og, *ob;
    double eps, momentum;
    int training, relu = 0, ok = 1;
    if (!PyArg_ParseTuple(args, "OOOOOOOOddp|p:batchnorm_forward", &oy, &omean, &oinv, &omm, &omv, &ox, &og, &ob, &eps,
                          &momentum, &training, &relu))
        return NULL;
    int t = real_type(ox, fn, "x");
    PyArrayObject *x = t < 0 ? NULL : array_arg(ox, fn, "x", t, 3, NULL, READ);
    if (!x) return NULL;
    npy_intp ch[] = {PyArray_DIM(x, 1)};
    PyArrayObject *y = like(oy, fn, "y", x, WRITE);
    PyArrayObject *mean = y ? array_arg(omean, fn, "mean", t, 1, ch, WRITE) : NULL;
    PyArrayObject *inv = mean ? array_arg(oinv, fn, "invstd", t, 1, ch, WRITE) : NULL;
    PyArrayObject *mm = inv ? array_arg(omm, fn, "moving_mean", t, 1, ch, WRITE) : NULL;
    PyArrayObject *mv = mm ? array_arg(omv, fn, "moving_var", t, 1, ch, WRITE) : NULL;
    if (!mv) return NULL;
    PyArrayObject *gamma = optional_arg(og, &ok, fn, "gamma", t, 1, ch, READ);
    PyArrayObject *beta = ok ? optional_arg(ob, &ok, fn, "beta", t, 1, ch, READ) : NULL;
    if (!ok ||
        check_overlap(fn, OPERANDS({"y", y, OUT}, {"mean", mean, OUT}, {"invstd", inv, OUT}, {"moving_mean", mm, OUT},
                                   {"moving_var", mv, OUT}, {"x", x, IN}, {"gamma", gamma, IN}, {"beta", beta, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, batchnorm_forward, DATA(y), DATA(mean), DATA(inv), DATA(mm), DATA(mv), DATA(x), DATA(gamma), DATA(beta),
         DIM(x, 0), DIM(x, 1), DIM(x, 2), eps, momentum, training, relu);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_batchnorm_backward(PyObject *self, PyObject *args)
{
    static const char *fn = "batchnorm_backward";
    PyObject *odx, *odg, *odb, *ody, *ox, *omean, *oinv, *og, *orelu = Py_None;
    int training, accumulate = 1, ok = 1;
    if (!PyArg_ParseTuple(args, "OOOOOOOOp|pO:batchnorm_backward", &odx, &odg, &odb, &ody, &ox, &omean, &oinv, &og,
                          &training, &accumulate, &orelu))
        return NULL;
    int t = real_type(ox, fn, "x");
    PyArrayObject *x = t < 0 ? NULL : array_arg(ox, fn, "x", t, 3, NULL, READ);
    if (!x) return NULL;
    npy_intp ch[] = {PyArray_DIM(x, 1)};
    PyArrayObject *dy = like(ody, fn, "dy", x, READ);
    PyArrayObject *mean = dy ? array_arg(omean, fn, "mean", t, 1, ch, READ) : NULL;
    PyArrayObject *inv = mean ? array_arg(oinv, fn, "invstd", t, 1, ch, READ) : NULL;
    if (!inv) return NULL;
    PyArrayObject *gamma = optional_arg(og, &ok, fn, "gamma", t, 1, ch, READ);
    PyArrayObject *dx = ok ? optional_arg(odx, &ok, fn, "dx", t, 3, PyArray_DIMS(x), WRITE) : NULL;
    PyArrayObject *dg = ok ? optional_arg(odg, &ok, fn, "dgamma", t, 1, ch, WRITE) : NULL;
    PyArrayObject *db = ok ? optional_arg(odb, &ok, fn, "dbeta", t, 1, ch, WRITE) : NULL;
    PyArrayObject *ry = ok ? optional_arg(orelu, &ok, fn, "relu_y", t, 3, PyArray_DIMS(x), READ) : NULL;
    if (!ok || check_overlap(fn, OPERANDS({"dx", dx, OUT}, {"dgamma", dg, OUT}, {"dbeta", db, OUT}, {"dy", dy, IN},
                                          {"x", x, IN}, {"mean", mean, IN}, {"invstd", inv, IN}, {"gamma", gamma, IN},
                                          {"relu_y", ry, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, batchnorm_backward, DATA(dx), DATA(dg), DATA(db), DATA(dy), DATA(ry), DATA(x), DATA(mean), DATA(inv),
         DATA(gamma), DIM(x, 0), DIM(x, 1), DIM(x, 2), training, accumulate);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* relu_forward(y, x, ...) and relu_backward(dx, dy, x, ...): element-wise, the output may be the first input. */
static PyObject *relu_like(PyObject *args, const char *fn, int backward)
{
    PyObject *o[3] = {NULL, NULL, NULL};
    double max_value, slope, threshold;
    int parsed = backward ? PyArg_ParseTuple(args, parse_format("OOOddd", fn).s, &o[0], &o[1], &o[2], &max_value,
                                             &slope, &threshold)
                          : PyArg_ParseTuple(args, parse_format("OOddd", fn).s, &o[0], &o[1], &max_value, &slope,
                                             &threshold);
    if (!parsed) return NULL;
    PyArrayObject *x = elementwise_arg(o[backward ? 2 : 1], fn, "x");
    PyArrayObject *dy = x && backward ? like(o[1], fn, "dy", x, READ) : NULL;
    PyArrayObject *out = x && (dy || !backward) ? like(o[0], fn, backward ? "dx" : "y", x, WRITE) : NULL;
    if (!out || (backward ? check_overlap(fn, OPERANDS({"dx", out, OUT}, {"dy", dy, SAME}, {"x", x, IN}))
                          : check_overlap(fn, OPERANDS({"y", out, OUT}, {"x", x, SAME}))))
        return NULL;
    int t = PyArray_TYPE(x);
    size_t count = (size_t)PyArray_SIZE(x);
    Py_BEGIN_ALLOW_THREADS
    if (backward) CALL(t, relu_backward, DATA(out), DATA(dy), DATA(x), count, max_value, slope, threshold);
    else CALL(t, relu_forward, DATA(out), DATA(x), count, max_value, slope, threshold);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_relu_forward(PyObject *s, PyObject *a) { return relu_like(a, "relu_forward", 0); }
static PyObject *py_relu_backward(PyObject *s, PyObject *a) { return relu_like(a, "relu_backward", 1); }

/* upsample2d_forward(y, x, size, bilinear) and upsample2d_backward(dx, dy, size, bilinear): the small array is x
 * or dx, the large one y or dy, (N, C, H·SH, W·SW). */
static PyObject *upsample(PyObject *args, const char *fn, int backward)
{
    PyObject *olarge, *osmall, *o0, *o1;
    int size[2], bilinear;
    if (!PyArg_ParseTuple(args, parse_format("OO(ii)p", fn).s, &o0, &o1, &size[0], &size[1], &bilinear)) return NULL;
    olarge = backward ? o1 : o0;
    osmall = backward ? o0 : o1;
    const char *small_name = backward ? "dx" : "x", *large_name = backward ? "dy" : "y";
    if (check_ints(fn, "size", size, 2, 1)) return NULL;
    int t = real_type(osmall, fn, small_name);
    PyArrayObject *small = t < 0 ? NULL : array_arg(osmall, fn, small_name, t, 4, NULL, backward ? WRITE : READ);
    if (!small) return NULL;
    long long oh = (long long)PyArray_DIM(small, 2) * size[0], ow = (long long)PyArray_DIM(small, 3) * size[1];
    if (oh > INT_MAX || ow > INT_MAX || oh * ow > INT_MAX)
        return PyErr_Format(PyExc_ValueError, "%s: the upsampled plane (%lld x %lld) exceeds %d cells", fn, oh, ow,
                            INT_MAX);
    npy_intp ld[] = {PyArray_DIM(small, 0), PyArray_DIM(small, 1), (npy_intp)oh, (npy_intp)ow};
    PyArrayObject *large = array_arg(olarge, fn, large_name, t, 4, ld, backward ? READ : WRITE);
    if (!large ||
        check_overlap(fn, OPERANDS({small_name, small, backward ? OUT : IN}, {large_name, large, backward ? IN : OUT})))
        return NULL;
    int n = DIM(small, 0), c = DIM(small, 1), h = DIM(small, 2), w = DIM(small, 3);
    Py_BEGIN_ALLOW_THREADS
    if (backward) CALL(t, upsample2d_backward, DATA(small), DATA(large), n, c, h, w, size[0], size[1], bilinear);
    else CALL(t, upsample2d_forward, DATA(large), DATA(small), n, c, h, w, size[0], size[1], bilinear);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_upsample2d_forward(PyObject *s, PyObject *a) { return upsample(a, "upsample2d_forward", 0); }
static PyObject *py_upsample2d_backward(PyObject *s, PyObject *a) { return upsample(a, "upsample2d_backward", 1); }

/* Fill t from x (N, C, H, W), w (C, OC, KH, KW), the output plane (OH, OW), stride and crop; -1 with an error if
 * bad. Every index the kernels form (an input row times the stride plus a tap) must fit an int. */
static int conv_transpose_geometry(const char *fn, cnn_conv_transpose2d *t, const npy_intp *xd, const npy_intp *wd,
                                   int oh, int ow, const int *stride, const int *crop)
{
    if (check_ints(fn, "stride", stride, 2, 1) || check_ints(fn, "crop", crop, 2, 0)) return -1;
    for (int i = 0; i < 4; i++)
        if (xd[i] < 1 || xd[i] > INT_MAX || wd[i] < 1 || wd[i] > INT_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: every dimension of 'x' and 'w' must lie in [1, %d]", fn, INT_MAX);
            return -1;
        }
    if (wd[0] != xd[1]) {
        PyErr_Format(PyExc_ValueError,
                     "%s: 'w' must have shape (%ld, out, kh, kw) for the %ld input channels of 'x', "
                     "got %ld in its first dimension",
                     fn, (long)xd[1], (long)xd[1], (long)wd[0]);
        return -1;
    }
    // clang-format off: the geometry in layout order, a row per tensor
    *t = (cnn_conv_transpose2d){.n = (int)xd[0], .c = (int)xd[1], .h = (int)xd[2], .w = (int)xd[3], .oc = (int)wd[1],
                                .kh = (int)wd[2], .kw = (int)wd[3], .oh = oh, .ow = ow, .sh = stride[0],
                                .sw = stride[1], .pt = crop[0], .pl = crop[1]};
    // clang-format on
    long long full_h = (long long)(t->h - 1) * t->sh + t->kh, full_w = (long long)(t->w - 1) * t->sw + t->kw;
    if (full_h > INT_MAX || full_w > INT_MAX || (long long)t->h * t->w > INT_MAX ||
        (long long)t->n * t->h * t->w > INT_MAX || (long long)t->oh * t->ow > INT_MAX ||
        (long long)t->oc * t->kh * t->kw > INT_MAX || (long long)t->c * t->oc * t->kh * t->kw > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: the planes, the batch's input positions or the kernel's window exceed %d",
                     fn, INT_MAX);
        return -1;
    }
    return 0;
}

/* The scratch of a transposed convolution: a 1-D array of exactly conv_transpose2d_scratch_size elements. */
static PyArrayObject *transpose_scratch_arg(PyObject *o, const char *fn, int type, const cnn_conv_transpose2d *t)
{
    size_t size = conv_transpose2d_scratch_size(t);
    if (size > MAX_ELEMENTS) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the scratch this transposed convolution of 'x' and 'w' needs (%s elements) is more than an "
                     "array can hold (%zu)",
                     fn, count_text(size).s, MAX_ELEMENTS);
        return NULL;
    }
    return array_arg(o, fn, "scratch", type, 1, (npy_intp[]){(npy_intp)size}, WRITE);
}

static PyObject *py_conv_transpose2d_scratch_size(PyObject *self, PyObject *args)
{
    static const char *fn = "conv_transpose2d_scratch_size";
    long long xl[4], wl[4];
    npy_intp xd[4], wd[4];
    if (!PyArg_ParseTuple(args, "(LLLL)(LLLL):conv_transpose2d_scratch_size", &xl[0], &xl[1], &xl[2], &xl[3], &wl[0],
                          &wl[1], &wl[2], &wl[3]))
        return NULL;
    for (int i = 0; i < 4; i++) {
        xd[i] = xl[i] < 0 || xl[i] > INT_MAX ? 0 : (npy_intp)xl[i];
        wd[i] = wl[i] < 0 || wl[i] > INT_MAX ? 0 : (npy_intp)wl[i];
    }
    cnn_conv_transpose2d t;
    if (conv_transpose_geometry(fn, &t, xd, wd, 1, 1, (int[]){1, 1}, (int[]){0, 0})) return NULL;
    size_t size = conv_transpose2d_scratch_size(&t);
    if (size > MAX_ELEMENTS)
        return PyErr_Format(PyExc_ValueError,
                            "%s: arguments 'x_shape' and 'w_shape' need a scratch of %s elements, more than an array "
                            "can hold (%zu)",
                            fn, count_text(size).s, MAX_ELEMENTS);
    return PyLong_FromSize_t(size);
}

/* x (N, C, H, W), w (C, OC, KH, KW) and the output dy or y (N, OC, OH, OW) of one float type, and their geometry. */
static int conv_transpose_operands(const char *fn, PyObject *ox, PyObject *ow, PyObject *oout, const char *out_name,
                                   int out_access, const int *stride, const int *crop, PyArrayObject **x,
                                   PyArrayObject **w, PyArrayObject **out, cnn_conv_transpose2d *t)
{
    int type = real_type(ox, fn, "x");
    *x = type < 0 ? NULL : array_arg(ox, fn, "x", type, 4, NULL, READ);
    *w = *x ? array_arg(ow, fn, "w", type, 4, NULL, READ) : NULL;
    *out = *w ? array_arg(oout, fn, out_name, type, 4, NULL, out_access) : NULL;
    if (!*out) return -1;
    npy_intp *od = PyArray_DIMS(*out);
    if (od[0] != PyArray_DIM(*x, 0) || od[1] != PyArray_DIM(*w, 1)) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' must have shape (%ld, %ld, oh, ow), got (%ld, %ld, %ld, %ld)",
                     fn, out_name, (long)PyArray_DIM(*x, 0), (long)PyArray_DIM(*w, 1), (long)od[0], (long)od[1],
                     (long)od[2], (long)od[3]);
        return -1;
    }
    if (conv_transpose_geometry(fn, t, PyArray_DIMS(*x), PyArray_DIMS(*w), (int)od[2], (int)od[3], stride, crop))
        return -1;
    return type;
}

static PyObject *py_conv_transpose2d_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "conv_transpose2d_forward";
    PyObject *oy, *ox, *ow, *ob, *os;
    int stride[2], crop[2], ok = 1;
    if (!PyArg_ParseTuple(args, "OOOOO(ii)(ii):conv_transpose2d_forward", &oy, &ox, &ow, &ob, &os, &stride[0],
                          &stride[1], &crop[0], &crop[1]))
        return NULL;
    PyArrayObject *x, *w, *y;
    cnn_conv_transpose2d g;
    int t = conv_transpose_operands(fn, ox, ow, oy, "y", WRITE, stride, crop, &x, &w, &y, &g);
    if (t < 0) return NULL;
    PyArrayObject *b = optional_arg(ob, &ok, fn, "b", t, 1, (npy_intp[]){g.oc}, READ);
    PyArrayObject *sc = ok ? transpose_scratch_arg(os, fn, t, &g) : NULL;
    if (!sc ||
        check_overlap(fn, OPERANDS({"y", y, OUT}, {"scratch", sc, OUT}, {"x", x, IN}, {"w", w, IN}, {"b", b, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, conv_transpose2d_forward, DATA(y), DATA(x), DATA(w), DATA(b), DATA(sc), &g);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_conv_transpose2d_backward(PyObject *self, PyObject *args)
{
    static const char *fn = "conv_transpose2d_backward";
    PyObject *odx, *odw, *odb, *ody, *ox, *ow, *os;
    int stride[2], crop[2], accumulate = 1, ok = 1;
    if (!PyArg_ParseTuple(args, "OOOOOOO(ii)(ii)|p:conv_transpose2d_backward", &odx, &odw, &odb, &ody, &ox, &ow, &os,
                          &stride[0], &stride[1], &crop[0], &crop[1], &accumulate))
        return NULL;
    PyArrayObject *x, *w, *dy;
    cnn_conv_transpose2d g;
    int t = conv_transpose_operands(fn, ox, ow, ody, "dy", READ, stride, crop, &x, &w, &dy, &g);
    if (t < 0) return NULL;
    PyArrayObject *dw = like(odw, fn, "dw", w, WRITE);
    PyArrayObject *dx = dw ? optional_arg(odx, &ok, fn, "dx", t, 4, PyArray_DIMS(x), WRITE) : NULL;
    PyArrayObject *db = dw && ok ? optional_arg(odb, &ok, fn, "db", t, 1, (npy_intp[]){g.oc}, WRITE) : NULL;
    PyArrayObject *sc = dw && ok ? transpose_scratch_arg(os, fn, t, &g) : NULL;
    if (!sc || check_overlap(fn, OPERANDS({"dx", dx, OUT}, {"dw", dw, OUT}, {"db", db, OUT}, {"scratch", sc, OUT},
                                          {"dy", dy, IN}, {"x", x, IN}, {"w", w, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, conv_transpose2d_backward, DATA(dx), DATA(dw), DATA(db), DATA(dy), DATA(x), DATA(w), DATA(sc), &g,
         accumulate);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
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

/* ---- recurrent layers and embedding (issue 17) ------------------------------------------------- */

static int check_cell(const char *fn, int cell)
{
    if (cell >= 0 && cell < CELL_COUNT) return 0;
    PyErr_Format(PyExc_ValueError, "%s: argument 'cell' must be a CELL_* code in [0, %d), got %d", fn, CELL_COUNT,
                 cell);
    return -1;
}

/* The recurrent geometry from the sizes and codes; -1 with an error when a code is bad or T·N, the rows of
 * the kernels' gemms, exceeds an int. */
static int rnn_geometry(const char *fn, cnn_rnn *g, npy_intp n, npy_intp t, npy_intp in, npy_intp u, int cell, int act,
                        int go_backwards, int sequences)
{
    if (check_cell(fn, cell)) return -1;
    int simple = cell == CELL_RNN;
    if (simple ? act != ACT_IDENTITY && act != ACT_SIGMOID && act != ACT_TANH && act != ACT_RELU : act != ACT_TANH) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'act' must be %s, got %d", fn,
                     simple ? "ACT_IDENTITY, ACT_SIGMOID, ACT_TANH or ACT_RELU" : "ACT_TANH for LSTM and GRU", act);
        return -1;
    }
    if (n < 1 || t < 1 || in < 1 || u < 1 || n > INT_MAX || t > INT_MAX || in > INT_MAX ||
        u > INT_MAX / cnn_rnn_gates((cnn_rnn_cell)cell) || (long long)n * t > INT_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the sizes N=%ld, T=%ld, IN=%ld, U=%ld must be >= 1, with T·N and the gates' width "
                     "%d·U at most %d",
                     fn, (long)n, (long)t, (long)in, (long)u, cnn_rnn_gates((cnn_rnn_cell)cell), INT_MAX);
        return -1;
    }
    *g = (cnn_rnn){(int)n, (int)t, (int)in, (int)u, (cnn_rnn_cell)cell, (cnn_activation)act, go_backwards, sequences};
    return 0;
}

/* A scratch argument of exactly `size` elements (rnn_cache_size or rnn_work_size). */
static PyArrayObject *sized_arg(PyObject *o, const char *fn, const char *name, int type, size_t size, int access)
{
    if (size > MAX_ELEMENTS) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' would need %s elements, more than an array can hold (%zu)",
                     fn, name, count_text(size).s, MAX_ELEMENTS);
        return NULL;
    }
    return array_arg(o, fn, name, type, 1, (npy_intp[]){(npy_intp)size}, access);
}

/* The weights w (IN, G·U), r (U, G·U) of one float type t; U from r. */
static int rnn_weights(const char *fn, PyObject *ow, PyObject * or, int t, int cell, PyArrayObject **w,
                       PyArrayObject **r)
{
    *r = array_arg(or, fn, "r", t, 2, NULL, READ);
    if (!*r) return -1;
    npy_intp u = PyArray_DIM(*r, 0), gu = u * cnn_rnn_gates((cnn_rnn_cell)cell);
    if (gu > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'r' has %ld units: the gates' width exceeds %d", fn, (long)u,
                     INT_MAX);
        return -1;
    }
    *r = array_arg(or, fn, "r", t, 2, (npy_intp[]){u, gu}, READ);
    *w = *r ? array_arg(ow, fn, "w", t, 2, (npy_intp[]){ANY, gu}, READ) : NULL;
    return *w ? 0 : -1;
}

static PyObject *py_rnn_scratch_size(PyObject *self, PyObject *args)
{
    static const char *fn = "rnn_scratch_size";
    long long xs[3], u;
    int cell, backward;
    if (!PyArg_ParseTuple(args, "(LLL)Lip:rnn_scratch_size", &xs[0], &xs[1], &xs[2], &u, &cell, &backward)) return NULL;
    cnn_rnn g;
    for (int i = 0; i < 3; i++) xs[i] = xs[i] < 0 || xs[i] > INT_MAX ? 0 : xs[i];
    if (rnn_geometry(fn, &g, (npy_intp)xs[0], (npy_intp)xs[1], (npy_intp)xs[2], u < 0 || u > INT_MAX ? 0 : (npy_intp)u,
                     cell, ACT_TANH, 0, 0))
        return NULL;
    size_t size = backward ? rnn_work_size(&g) : rnn_cache_size(&g);
    if (size > MAX_ELEMENTS)
        return PyErr_Format(PyExc_ValueError, "%s: the scratch (%s elements) is more than an array can hold (%zu)", fn,
                            count_text(size).s, MAX_ELEMENTS);
    return PyLong_FromSize_t(size);
}

static PyObject *py_rnn_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "rnn_forward";
    PyObject *oy, *ohl, *ocl, *ocache, *ox, *ow, *or, *ob, *oh0, *oc0;
    int cell, act, back, seq, ok = 1;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOiipp:rnn_forward", &oy, &ohl, &ocl, &ocache, &ox, &ow, &or, &ob, &oh0, &oc0,
                          &cell, &act, &back, &seq))
        return NULL;
    int t = real_type(ox, fn, "x");
    if (t < 0 || check_cell(fn, cell)) return NULL;
    PyArrayObject *x = array_arg(ox, fn, "x", t, 3, NULL, READ), *w, *r;
    if (!x || rnn_weights(fn, ow, or, t, cell, &w, &r)) return NULL;
    cnn_rnn g;
    if (rnn_geometry(fn, &g, PyArray_DIM(x, 0), PyArray_DIM(x, 1), PyArray_DIM(x, 2), PyArray_DIM(r, 0), cell, act,
                     back, seq))
        return NULL;
    int n = g.n, u = g.units, gu = cnn_rnn_gates(g.cell) * u, lstm = cell == CELL_LSTM;
    w = array_arg(ow, fn, "w", t, 2, (npy_intp[]){g.in, gu}, READ);
    PyArrayObject *b = !w                 ? NULL
                       : cell == CELL_GRU ? optional_arg(ob, &ok, fn, "b", t, 2, (npy_intp[]){2, gu}, READ)
                                          : optional_arg(ob, &ok, fn, "b", t, 1, (npy_intp[]){gu}, READ);
    if (!w || !ok) return NULL;
    PyArrayObject *h0 = optional_arg(oh0, &ok, fn, "h0", t, 2, (npy_intp[]){n, u}, READ);
    PyArrayObject *c0 = ok && lstm ? optional_arg(oc0, &ok, fn, "c0", t, 2, (npy_intp[]){n, u}, READ) : NULL;
    PyArrayObject *y = !ok   ? NULL
                       : seq ? array_arg(oy, fn, "y", t, 3, (npy_intp[]){n, g.t, u}, WRITE)
                             : array_arg(oy, fn, "y", t, 2, (npy_intp[]){n, u}, WRITE);
    PyArrayObject *hl = y ? optional_arg(ohl, &ok, fn, "h_last", t, 2, (npy_intp[]){n, u}, WRITE) : NULL;
    PyArrayObject *cl = y && ok && lstm ? optional_arg(ocl, &ok, fn, "c_last", t, 2, (npy_intp[]){n, u}, WRITE) : NULL;
    if (!y || !ok) return NULL;
    if (!lstm && (oc0 != Py_None || ocl != Py_None))
        return PyErr_Format(PyExc_ValueError,
                            "%s: arguments 'c0' and 'c_last' must be None for a cell without a "
                            "cell state (only CELL_LSTM has one)",
                            fn);
    PyArrayObject *cache = sized_arg(ocache, fn, "cache", t, rnn_cache_size(&g), WRITE);
    if (!cache || check_overlap(fn, OPERANDS({"y", y, OUT}, {"h_last", hl, OUT}, {"c_last", cl, OUT},
                                             {"cache", cache, OUT}, {"x", x, IN}, {"w", w, IN}, {"r", r, IN},
                                             {"b", b, IN}, {"h0", h0, IN}, {"c0", c0, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, rnn_forward, DATA(y), DATA(hl), DATA(cl), DATA(cache), DATA(x), DATA(w), DATA(r), DATA(b), DATA(h0),
         DATA(c0), &g);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_rnn_backward(PyObject *self, PyObject *args)
{
    static const char *fn = "rnn_backward";
    PyObject *odx, *odh0, *odc0, *odw, *odr, *odb, *owork, *ody, *odhl, *odcl, *ocache, *ow, *or ;
    long long steps;
    int cell, act, back, seq, accumulate = 1, ok = 1;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOOLiipp|p:rnn_backward", &odx, &odh0, &odc0, &odw, &odr, &odb, &owork, &ody,
                          &odhl, &odcl, &ocache, &ow, &or, &steps, &cell, &act, &back, &seq, &accumulate))
        return NULL;
    int t = real_type(ody, fn, "dy");
    if (t < 0 || check_cell(fn, cell)) return NULL;
    PyArrayObject *dy = array_arg(ody, fn, "dy", t, seq ? 3 : 2, NULL, READ), *w, *r;
    if (!dy || rnn_weights(fn, ow, or, t, cell, &w, &r)) return NULL;
    cnn_rnn g;
    if (rnn_geometry(fn, &g, PyArray_DIM(dy, 0), steps < 1 || steps > INT_MAX ? 0 : (npy_intp)steps, PyArray_DIM(w, 0),
                     PyArray_DIM(r, 0), cell, act, back, seq))
        return NULL;
    int n = g.n, u = g.units, gu = cnn_rnn_gates(g.cell) * u, lstm = cell == CELL_LSTM;
    dy = seq ? array_arg(ody, fn, "dy", t, 3, (npy_intp[]){n, g.t, u}, READ)
             : array_arg(ody, fn, "dy", t, 2, (npy_intp[]){n, u}, READ);
    PyArrayObject *dhl = dy ? optional_arg(odhl, &ok, fn, "dh_last", t, 2, (npy_intp[]){n, u}, READ) : NULL;
    PyArrayObject *dcl = dy && ok && lstm ? optional_arg(odcl, &ok, fn, "dc_last", t, 2, (npy_intp[]){n, u}, READ)
                                          : NULL;
    PyArrayObject *dx = dy && ok ? optional_arg(odx, &ok, fn, "dx", t, 3, (npy_intp[]){n, g.t, g.in}, WRITE) : NULL;
    PyArrayObject *dh0 = dy && ok ? optional_arg(odh0, &ok, fn, "dh0", t, 2, (npy_intp[]){n, u}, WRITE) : NULL;
    PyArrayObject *dc0 = dy && ok && lstm ? optional_arg(odc0, &ok, fn, "dc0", t, 2, (npy_intp[]){n, u}, WRITE) : NULL;
    if (!dy || !ok) return NULL;
    if (!lstm && (odc0 != Py_None || odcl != Py_None))
        return PyErr_Format(PyExc_ValueError,
                            "%s: arguments 'dc0' and 'dc_last' must be None for a cell without a "
                            "cell state (only CELL_LSTM has one)",
                            fn);
    PyArrayObject *dw = array_arg(odw, fn, "dw", t, 2, (npy_intp[]){g.in, gu}, WRITE);
    PyArrayObject *dr = dw ? array_arg(odr, fn, "dr", t, 2, (npy_intp[]){u, gu}, WRITE) : NULL;
    PyArrayObject *db = !dr                ? NULL
                        : cell == CELL_GRU ? optional_arg(odb, &ok, fn, "db", t, 2, (npy_intp[]){2, gu}, WRITE)
                                           : optional_arg(odb, &ok, fn, "db", t, 1, (npy_intp[]){gu}, WRITE);
    if (!dr || !ok) return NULL;
    PyArrayObject *work = sized_arg(owork, fn, "work", t, rnn_work_size(&g), WRITE);
    PyArrayObject *cache = work ? sized_arg(ocache, fn, "cache", t, rnn_cache_size(&g), READ) : NULL;
    if (!cache || check_overlap(fn, OPERANDS({"dx", dx, OUT}, {"dh0", dh0, OUT}, {"dc0", dc0, OUT}, {"dw", dw, OUT},
                                             {"dr", dr, OUT}, {"db", db, OUT}, {"work", work, OUT}, {"dy", dy, IN},
                                             {"dh_last", dhl, IN}, {"dc_last", dcl, IN}, {"cache", cache, IN},
                                             {"w", w, IN}, {"r", r, IN})))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, rnn_backward, DATA(dx), DATA(dh0), DATA(dc0), DATA(dw), DATA(dr), DATA(db), DATA(work), DATA(dy), DATA(dhl),
         DATA(dcl), DATA(cache), DATA(w), DATA(r), &g, accumulate);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_embedding_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "embedding_forward";
    PyObject *oy, *oids, *otable;
    if (!PyArg_ParseTuple(args, "OOO:embedding_forward", &oy, &oids, &otable)) return NULL;
    int t = real_type(otable, fn, "table");
    PyArrayObject *table = t < 0 ? NULL : array_arg(otable, fn, "table", t, 2, NULL, READ);
    PyArrayObject *ids = table ? array_arg(oids, fn, "ids", NPY_INT64, 1, NULL, READ) : NULL;
    if (!ids) return NULL;
    int m = DIM(ids, 0), v = DIM(table, 0), d = DIM(table, 1);
    PyArrayObject *y = array_arg(oy, fn, "y", t, 2, (npy_intp[]){m, d}, WRITE);
    if (!y || check_overlap(fn, OPERANDS({"y", y, OUT}, {"ids", ids, IN}, {"table", table, IN}))) return NULL;
    int64_t *idx = checked_indices(fn, "ids", "row indices of the table", ids, 0, m, v);
    if (!idx) return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, embedding_forward, DATA(y), idx, DATA(table), m, d);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(idx);
    Py_RETURN_NONE;
}

static PyObject *py_embedding_backward(PyObject *self, PyObject *args)
{
    static const char *fn = "embedding_backward";
    PyObject *odt, *ody, *oids;
    int accumulate = 1;
    if (!PyArg_ParseTuple(args, "OOO|p:embedding_backward", &odt, &ody, &oids, &accumulate)) return NULL;
    int t = real_type(odt, fn, "dtable");
    PyArrayObject *dt = t < 0 ? NULL : array_arg(odt, fn, "dtable", t, 2, NULL, WRITE);
    PyArrayObject *ids = dt ? array_arg(oids, fn, "ids", NPY_INT64, 1, NULL, READ) : NULL;
    if (!ids) return NULL;
    int m = DIM(ids, 0), v = DIM(dt, 0), d = DIM(dt, 1);
    PyArrayObject *dy = array_arg(ody, fn, "dy", t, 2, (npy_intp[]){m, d}, READ);
    if (!dy || check_overlap(fn, OPERANDS({"dtable", dt, OUT}, {"dy", dy, IN}, {"ids", ids, IN}))) return NULL;
    int64_t *idx = checked_indices(fn, "ids", "row indices of the table", ids, 0, m, v);
    if (!idx) return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, embedding_backward, DATA(dt), DATA(dy), idx, m, v, d, accumulate);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(idx);
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
    /* issue 20: the 2x2 max-pool with window codes */
    METHOD(maxpool2x2_forward,
           "maxpool2x2_forward(y: out[N, C, OH, OW], code: out uint8[N, C, OH, OW], "
           "x: in[N, C, H, W], relu: bool)\n\n"
           "y = the maximum of each 2x2 window at stride 2 (of relu(x) when relu), OH = H/2 and "
           "OW = W/2 rounded down, H and W at least 2; code = the winner's cell in its window, 0..3 "
           "in row-major order, or 4 when relu and the maximum is not positive (no gradient)."),
    METHOD(maxpool2x2_backward, "maxpool2x2_backward(dx: out[N, C, H, W], dy: in[N, C, OH, OW], "
                                "code: in uint8[N, C, OH, OW])\n\n"
                                "dx = dy at each window's coded cell, 0 elsewhere: the gradient through "
                                "maxpool2x2_forward (and its relu). Sizes as maxpool2x2_forward; any code is valid."),
    /* merge (Add, Multiply, Concatenate) */
    METHOD(add_forward, "add_forward(y: out[*], a: in[*], b: in[*], relu: bool = False)\n\n"
                        "y = a + b element-wise, * any shape of rank 1 to 8; y may be a or b. relu: y = relu(a + b) "
                        "(the plain ReLU, NaN passing)."),
    METHOD(multiply_forward, "multiply_forward(y: out[*], a: in[*], b: in[*])\n\n"
                             "y = a·b element-wise, * any shape of rank 1 to 8; y may be a or b."),
    METHOD(multiply_backward, "multiply_backward(da: out[*] | None, db: out[*] | None, dy: in[*], a: in[*], "
                              "b: in[*])\n\n"
                              "da = dy·b, db = dy·a, the gradients through multiply_forward."),
    METHOD(concatenate_forward, "concatenate_forward(y: out[M, J], x: in[M, I], offset: int)\n\n"
                                "y[:, offset:offset + I] = x; 0 <= offset <= J - I."),
    METHOD(concatenate_backward, "concatenate_backward(dx: out[M, I], dy: in[M, J], offset: int)\n\n"
                                 "dx = dy[:, offset:offset + I], the gradient through concatenate_forward."),
    /* image: affine warps */
    METHOD(affine_transform_forward, "affine_transform_forward(y: out[N, C, OH, OW], x: in[N, C, H, W], "
                                     "matrix: in[M, 2, 3], order: int, fill: int, cval: float)\n\n"
                                     "y[n, c, i, j] = x[n, c] at the coordinate matrix[n]·(i, j, 1) (matrix[0] for "
                                     "every n when M = 1, else M = N), as scipy.ndimage.affine_transform: order 0 "
                                     "(nearest cell) or 1 (bilinear); fill an IMAGE_FILL_* code (CONSTANT reads cval "
                                     "outside the plane)."),
    /* random warp matrices (warp_matrix.c) */
    METHOD(warp_matrix_forward, "warp_matrix_forward(matrix: inout[N, 2, 3], draws: in[K, N], kind: int, h: int, "
                                "w: int, compose: bool)\n\n"
                                "matrix[n] = the warp of an h x w image drawn as draws[:, n], or with compose "
                                "matrix[n] · that warp: kind "
                                "WARP_ROTATION (K = 1, a fraction of a turn), WARP_ZOOM (K = 1 or 2, the height's and "
                                "the width's zoom less 1) or WARP_TRANSLATION (K = 2, fractions of h and w)."),
    METHOD(mlp_workspace_size, "mlp_workspace_size(units: in int64[L + 1], n: int, training: bool, "
                               "sparse: bool = False) -> int\n\n"
                               "W, the reals of scratch mlp_forward (training false) or mlp_loss_grad and mlp_epoch "
                               "need for n rows of the network whose L + 1 layer widths are units (sparse: with x "
                               "a CSR matrix)."),
    METHOD(mlp_forward, "mlp_forward(out: out[N, K], work: out[W], params: in[P], x: in[N, IN], "
                        "units: in int64[L + 1], hidden: int, output: int, indices: in int64[NNZ] < IN | None = None, "
                        "indptr: in int64[N1] < NNZ1 | None = None)\n\n"
                        "out = the network's prediction for x. units = (IN, hidden widths..., K); P = Σ (units[i] "
                        "+ 1)·units[i + 1], each layer's (in, out) weights then its biases; work at least W = "
                        "mlp_workspace_size(units, N, False); hidden is ACT_IDENTITY, ACT_SIGMOID, ACT_TANH or "
                        "ACT_RELU, output an MLP_OUT_* code. With indices and indptr, x is the data (NNZ) of a CSR "
                        "matrix (N, IN) as sparse_forward's."),
    METHOD(mlp_loss_grad, "mlp_loss_grad(grad: out[P], work: out[W], params: in[P], x: in[N, IN], y: in[N, K], "
                          "units: in int64[L + 1], hidden: int, output: int, alpha: float, "
                          "sample_weight: in[N] | None = None, indices: in int64[NNZ] < IN | None = None, "
                          "indptr: in int64[N1] < NNZ1 | None = None) -> float\n\n"
                          "The loss of the network on (x, y), rows weighted by sample_weight (None: 1) and divided by "
                          "their sum S, plus alpha/(2S)·Σw² over its weights; grad = its gradient. Sizes, codes and a "
                          "CSR x as mlp_forward, W = mlp_workspace_size(units, N, True, sparse)."),
    METHOD(mlp_epoch, "mlp_epoch(params: inout[P], state: inout[S], grad: out[P], work: out[W], x: in[N, IN], "
                      "y: in[N, K], order: in int64[N] < N | None, units: in int64[L + 1], hidden: int, output: int, "
                      "alpha: float, batch: int, begin: int, end: int, opt: (adam: bool, lr: float, momentum: float, "
                      "nesterov: bool, beta1: float, beta2: float, eps: float, t: int), "
                      "sample_weight: in[N] | None = None, indices: in int64[NNZ] < IN | None = None, "
                      "indptr: in int64[N1] < NNZ1 | None = None) -> (float, int)\n\n"
                      "Trains on batches [begin, end) of the rows of (x, y) taken in order (None: 0, 1, ...), one "
                      "optimizer step a batch, each batch's loss as mlp_loss_grad's; returns Σ batch loss·rows and "
                      "the new step count t. S = P for SGD, 2·P for Adam; W = mlp_workspace_size(units, batch, True, "
                      "sparse); sizes, codes and a CSR x as mlp_forward."),
    /* recurrent layers and embedding (issue 17) */
    METHOD(rnn_scratch_size, "rnn_scratch_size(x_shape: (N, T, IN), units: U, cell: int, backward: bool) -> int\n\n"
                             "S, the elements of the cache rnn_forward keeps (backward false) or of the work "
                             "rnn_backward needs (backward true) for this cell (a CELL_* code) and size."),
    METHOD(rnn_forward, "rnn_forward(y: out[N, T, U], h_last: out[N, U] | None, c_last: out[N, U] | None, "
                        "cache: out[S], x: in[N, T, IN], w: in[IN, GU], r: in[U, GU], b: in[GU] | None, "
                        "h0: in[N, U] | None, c0: in[N, U] | None, cell: int, act: int, go_backwards: bool, "
                        "sequences: bool)\n\n"
                        "Runs a SimpleRNN, LSTM or GRU (cell, a CELL_* code) over x: y = every step's state in "
                        "processing order, or with sequences false y is (N, U), the last; h_last, c_last = the "
                        "final states. w, r, b are Keras's kernel, recurrent_kernel and bias, GU = G·U for G = 1, "
                        "4, 3 gates, and the GRU's b is (2, GU). h0, c0 = the initial states (None: zeros); c0 "
                        "and c_last are the LSTM's only. act is SimpleRNN's activation (ACT_IDENTITY, "
                        "ACT_SIGMOID, ACT_TANH or ACT_RELU), ACT_TANH for the others. S = rnn_scratch_size(x.shape, "
                        "U, cell, False); go_backwards reads x from its last step."),
    METHOD(rnn_backward, "rnn_backward(dx: out[N, T, IN] | None, dh0: out[N, U] | None, dc0: out[N, U] | None, "
                         "dw: inout[IN, GU], dr: inout[U, GU], db: inout[GU] | None, work: out[W], dy: in[N, T, U], "
                         "dh_last: in[N, U] | None, dc_last: in[N, U] | None, cache: in[S], w: in[IN, GU], "
                         "r: in[U, GU], steps: T, cell: int, act: int, go_backwards: bool, sequences: bool, "
                         "accumulate: bool = True)\n\n"
                         "Backpropagation through time from the gradients dy of y and dh_last, dc_last of the final "
                         "states: dx, dh0, dc0 = the input and initial-state gradients; dw, dr, db += the weight "
                         "gradients (= when accumulate is false). cache as rnn_forward left it with the same "
                         "arguments; dy is (N, U) when sequences is false; W = rnn_scratch_size((N, T, IN), U, "
                         "cell, True)."),
    METHOD(embedding_forward, "embedding_forward(y: out[M, D], ids: in int64[M] < V, table: in[V, D])\n\n"
                              "y = the rows of table that ids name."),
    METHOD(embedding_backward, "embedding_backward(dtable: inout[V, D], dy: in[M, D], ids: in int64[M] < V, "
                               "accumulate: bool = True)\n\n"
                               "dtable += each row of dy added onto the row its id names (= when accumulate is "
                               "false: rows no id names become 0)."),
    /* sparse input */
    METHOD(sparse_forward, "sparse_forward(out: out[N, OUT], data: in[NNZ], indices: in int64[NNZ] < IN, "
                           "indptr: in int64[N1] < NNZ1, w: in[IN, OUT], b: in[OUT] | None)\n\n"
                           "out = x·w + b for the CSR matrix x (N, IN) = (data, indices, indptr) as scipy holds it: "
                           "N1 = N + 1 offsets from 0 to NNZ, never decreasing (NNZ may be 0)."),
    METHOD(sparse_backward, "sparse_backward(dw: inout[IN, OUT], db: inout[OUT] | None, dout: in[N, OUT], "
                            "data: in[NNZ], indices: in int64[NNZ] < IN, indptr: in int64[N1] < NNZ1, "
                            "accumulate: bool = True)\n\n"
                            "dw += xᵀ·dout, db += Σdout (= when accumulate is false), x as sparse_forward's."),
    /* ---- issue 16's layers ---- */
    METHOD(batchnorm_forward, "batchnorm_forward(y: out[N, C, S], mean: out[C], invstd: out[C], "
                              "moving_mean: inout[C], moving_var: inout[C], x: in[N, C, S], gamma: in[C] | None, "
                              "beta: in[C] | None, eps: float, momentum: float, training: bool, relu: bool = False)"
                              "\n\n"
                              "y = (x - mean)·invstd·gamma + beta per channel (axis 1), invstd = 1/sqrt(var + eps). "
                              "training: mean and var are the batch's (var biased) and moving_* = moving_*·momentum "
                              "+ batch·(1 - momentum); else they are moving_mean and moving_var. mean and invstd "
                              "receive the statistics used. relu: y = relu(that) (the plain ReLU, NaN passing)."),
    METHOD(batchnorm_backward, "batchnorm_backward(dx: out[N, C, S] | None, dgamma: inout[C] | None, "
                               "dbeta: inout[C] | None, dy: in[N, C, S], x: in[N, C, S], mean: in[C], invstd: in[C], "
                               "gamma: in[C] | None, training: bool, accumulate: bool = True, "
                               "relu_y: in[N, C, S] | None = None)\n\n"
                               "dx = the input gradient (through the batch statistics when training); dgamma += "
                               "Σdy·x̂, dbeta += Σdy (= when accumulate is false); mean and invstd as the forward "
                               "wrote them. relu_y: the output of a forward with relu, dy that output's gradient, "
                               "taken through the ReLU (0 where relu_y is not in (0, inf))."),
    METHOD(relu_forward, "relu_forward(y: out[*], x: in[*], max_value: float, negative_slope: float, "
                         "threshold: float)\n\n"
                         "y = min(x > threshold ? max(x, 0) : 0, max_value) + negative_slope·min(x - threshold, 0) "
                         "(keras.activations.relu; max_value inf for none); y may be x."),
    METHOD(relu_backward, "relu_backward(dx: out[*], dy: in[*], x: in[*], max_value: float, negative_slope: float, "
                          "threshold: float)\n\n"
                          "dx = dy·relu'(x) for relu_forward's function of x; dx may be dy."),
    METHOD(upsample2d_forward, "upsample2d_forward(y: out[N, C, OH, OW], x: in[N, C, H, W], size: (SH, SW), "
                               "bilinear: bool)\n\n"
                               "y = x upsampled by SH x SW, OH = H·SH and OW = W·SW: nearest, or bilinear with "
                               "half-pixel centres (align_corners=False)."),
    METHOD(upsample2d_backward, "upsample2d_backward(dx: out[N, C, H, W], dy: in[N, C, OH, OW], size: (SH, SW), "
                                "bilinear: bool)\n\n"
                                "dx = the gradient through upsample2d_forward. Sizes as upsample2d_forward."),
    METHOD(conv_transpose2d_scratch_size, "conv_transpose2d_scratch_size(x_shape: (N, C, H, W), "
                                          "w_shape: (C, OC, KH, KW)) -> int\n\n"
                                          "S, the elements of scratch conv_transpose2d_forward and "
                                          "conv_transpose2d_backward need."),
    METHOD(conv_transpose2d_forward, "conv_transpose2d_forward(y: out[N, OC, OH, OW], x: in[N, C, H, W], "
                                     "w: in[C, OC, KH, KW], b: in[OC] | None, scratch: out[S], stride: (SH, SW), "
                                     "crop: (PT, PL))\n\n"
                                     "y = the transposed convolution of x with w (PyTorch's layout), plus b: the "
                                     "full output ((H - 1)·SH + KH) x ((W - 1)·SW + KW) with its first PT rows and PL "
                                     "columns dropped, cut or zero-extended to OH x OW. S = "
                                     "conv_transpose2d_scratch_size(...)."),
    METHOD(conv_transpose2d_backward, "conv_transpose2d_backward(dx: out[N, C, H, W] | None, "
                                      "dw: inout[C, OC, KH, KW], db: inout[OC] | None, dy: in[N, OC, OH, OW], "
                                      "x: in[N, C, H, W], w: in[C, OC, KH, KW], scratch: out[S], stride: (SH, SW), "
                                      "crop: (PT, PL), accumulate: bool = True)\n\n"
                                      "dx = the input gradient; dw and db += the parameter gradients (= when "
                                      "accumulate is false). Sizes as conv_transpose2d_forward."),
    {"get_num_threads", py_get_num_threads, METH_NOARGS, GET_NUM_THREADS_DOC},
    METHOD(set_num_threads, SET_NUM_THREADS_DOC),
    METHOD(_cap_threads, "_cap_threads(n: int)\n\nKernels called from this thread use at most n threads (0: no cap): "
                         "a fit's cap while other processes keep cores busy (python/cnn/_contention.py)."),
    {"_gemm_isa", py_gemm_isa, METH_NOARGS, "_gemm_isa() -> the instruction set gemm runs: 'base', 'avx2' or 'avx512'"},
    {"_set_gemm_isa", py_set_gemm_isa, METH_VARARGS,
     "_set_gemm_isa(name): force gemm's instruction set ('auto' restores the widest)"},
    {"_set_conv2d_winograd", py_set_conv2d_winograd, METH_VARARGS,
     "_set_conv2d_winograd(mode): 'always' puts every 3x3 stride-1 ungrouped undilated convolution on the Winograd "
     "path, 'never' none, 'auto' (the default) follows the sizes"},
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
        /* recurrent cells (issue 17) */
        {"CELL_RNN", CELL_RNN},
        {"CELL_LSTM", CELL_LSTM},
        {"CELL_GRU", CELL_GRU},
        {"IMAGE_FILL_CONSTANT", IMAGE_FILL_CONSTANT},
        {"IMAGE_FILL_NEAREST", IMAGE_FILL_NEAREST},
        {"IMAGE_FILL_REFLECT", IMAGE_FILL_REFLECT},
        /* random warp matrices (warp_matrix.c) */
        {"WARP_ROTATION", WARP_ROTATION},
        {"WARP_ZOOM", WARP_ZOOM},
        {"WARP_TRANSLATION", WARP_TRANSLATION},
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
