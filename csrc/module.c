/* module.c: the only Python-aware C file. Every wrapper has one shape: parse, check the memory
 * contract (type, dtype, rank, shape, contiguity, alignment, writeability, overlap, index values),
 * release the GIL, call the kernel, return. Arguments must already be NumPy arrays: the wrappers
 * never convert or copy, so they take no references and need no cleanup path. The friendly,
 * meaning-level checks live in python/cnn/_validation.py; these are the last line of defence. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
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
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must be a numpy.ndarray of float32 or float64, got %s",
                     fn, name, Py_TYPE(o)->tp_name);
        return -1;
    }
    int t = PyArray_TYPE((PyArrayObject *)o);
    if (t != NPY_FLOAT32 && t != NPY_FLOAT64) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must have dtype float32 or float64, got %s",
                     fn, name, PyArray_DESCR((PyArrayObject *)o)->typeobj->tp_name);
        return -1;
    }
    return t;
}

/* o as an array of exactly this dtype and rank, C-contiguous, aligned, writeable if access == WRITE,
 * every dimension in [1, INT_MAX] and equal to dims[i] unless dims[i] == ANY. NULL with an error set
 * otherwise. Returns a borrowed reference: the caller's argument tuple keeps it alive. */
static PyArrayObject *array_arg(PyObject *o, const char *fn, const char *name, int type, int ndim,
                                const npy_intp *dims, int access)
{
    char want[128], got[128];
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must be a numpy.ndarray of %s, got %s",
                     fn, name, dtype_name(type), Py_TYPE(o)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if (PyArray_TYPE(a) != type) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must have dtype %s, got %s",
                     fn, name, dtype_name(type), PyArray_DESCR(a)->typeobj->tp_name);
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
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' must be C-contiguous and aligned "
                     "(use numpy.ascontiguousarray), got a strided or misaligned array", fn, name);
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

/* An output may alias an input only where the kernel allows it (same_ok: element-wise kernels). */
static int check_overlap(const char *fn, const char *out_name, PyArrayObject *out, const char *in_name,
                         PyArrayObject *in, int same_ok)
{
    if (!out || !in) return 0;
    char *o0 = PyArray_BYTES(out), *o1 = o0 + PyArray_NBYTES(out);
    char *i0 = PyArray_BYTES(in), *i1 = i0 + PyArray_NBYTES(in);
    if (o0 >= i1 || i0 >= o1) return 0;
    if (same_ok && o0 == i0 && o1 == i1) return 0;
    PyErr_Format(PyExc_ValueError, "%s: output '%s' must not overlap input '%s'%s", fn, out_name, in_name,
                 same_ok ? " (except as the very same array)" : "");
    return -1;
}

/* No output overlaps another output or any input (NULL entries are skipped). */
static int check_disjoint(const char *fn, PyArrayObject **outs, const char **out_names, int n_out,
                          PyArrayObject **ins, const char **in_names, int n_in)
{
    for (int i = 0; i < n_out; i++) {
        for (int j = 0; j < n_in; j++)
            if (check_overlap(fn, out_names[i], outs[i], in_names[j], ins[j], 0)) return -1;
        for (int j = i + 1; j < n_out; j++)
            if (check_overlap(fn, out_names[i], outs[i], out_names[j], outs[j], 0)) return -1;
    }
    return 0;
}

/* Class indices must lie in [0, k): the kernels index with them. */
static int check_labels(const char *fn, PyArrayObject *labels, int k)
{
    const int64_t *y = PyArray_DATA(labels);
    npy_intp n = PyArray_SIZE(labels);
    for (npy_intp i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= k) {
            PyErr_Format(PyExc_ValueError, "%s: argument 'labels' must hold class indices in [0, %d), got %lld at %ld",
                         fn, k, (long long)y[i], (long)i);
            return -1;
        }
    return 0;
}

/* A double as text for an error message (PyErr_Format has no %g). */
typedef struct { char s[32]; } numtext;
static numtext num(double v)
{
    numtext t;
    snprintf(t.s, sizeof t.s, "%g", v);
    return t;
}

static int check_positive_finite(const char *fn, const char *name, double v, int allow_zero)
{
    if (isfinite(v) && (v > 0 || (allow_zero && v == 0))) return 0;
    PyErr_Format(PyExc_ValueError, "%s: argument '%s' must be a finite number %s 0, got %s", fn, name,
                 allow_zero ? ">=" : ">", num(v).s);
    return -1;
}

#define DATA(a) ((a) ? PyArray_DATA(a) : NULL)
#define DIM(a, i) ((int)PyArray_DIM(a, i))
/* Call the float32 or float64 instance of a kernel; `type` is the NumPy dtype. */
#define CALL(type, kernel, ...) ((type) == NPY_FLOAT32 ? kernel##_f32(__VA_ARGS__) : kernel##_f64(__VA_ARGS__))

/* ---- gemm ------------------------------------------------------------------------------------ */

static PyObject *py_gemm(PyObject *self, PyObject *args)
{
    static const char *fn = "gemm";
    PyObject *oc, *oa, *ob;
    int ta = 0, tb = 0, acc = 0;
    if (!PyArg_ParseTuple(args, "OOO|ppp:gemm", &oc, &oa, &ob, &ta, &tb, &acc)) return NULL;
    int t = real_type(oa, fn, "a");
    if (t < 0) return NULL;
    PyArrayObject *a = array_arg(oa, fn, "a", t, 2, NULL, READ);
    if (!a) return NULL;
    int m = DIM(a, ta ? 1 : 0), kd = DIM(a, ta ? 0 : 1);
    PyArrayObject *b = array_arg(ob, fn, "b", t, 2, tb ? (npy_intp[]){ANY, kd} : (npy_intp[]){kd, ANY}, READ);
    if (!b) return NULL;
    int n = DIM(b, tb ? 0 : 1);
    PyArrayObject *c = array_arg(oc, fn, "c", t, 2, (npy_intp[]){m, n}, WRITE);
    if (!c || check_overlap(fn, "c", c, "a", a, 0) || check_overlap(fn, "c", c, "b", b, 0)) return NULL;
    ptrdiff_t rsa = ta ? 1 : kd, csa = ta ? m : 1, rsb = tb ? 1 : n, csb = tb ? kd : 1;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, gemm, DATA(c), DATA(a), DATA(b), m, n, kd, rsa, csa, rsb, csb, n, acc);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

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
    if (!y || check_overlap(fn, "y", y, "x", x, 0) || check_overlap(fn, "y", y, "w", w, 0) ||
        check_overlap(fn, "y", y, "b", b, 0))
        return NULL;
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
    if (!ok) return NULL;
    PyArrayObject *outs[] = {dx, dw, db}, *ins[] = {dy, x, w};
    const char *on[] = {"dx", "dw", "db"}, *inn[] = {"dy", "x", "w"};
    if (check_disjoint(fn, outs, on, 3, ins, inn, 3)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, dense_backward, DATA(dx), DATA(dw), DATA(db), DATA(dy), DATA(x), DATA(w), n, in, out, accumulate);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ---- activations ----------------------------------------------------------------------------- */

static int check_activation(const char *fn, int act, double alpha)
{
    if (act < 0 || act >= ACT_COUNT) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'act' must be an activation code in [0, %d), got %d",
                     fn, ACT_COUNT, act);
        return -1;
    }
    if (act == ACT_SCALED_TANH && (alpha == 0 || !isfinite(alpha))) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'alpha' (the scale a of a*tanh(s*x)) must be finite and "
                     "non-zero, got %s", fn, num(alpha).s);
        return -1;
    }
    return 0;
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
    if (!y || check_overlap(fn, "y", y, "x", x, 1) || check_activation(fn, act, alpha)) return NULL;
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
    if (!PyArg_ParseTuple(args, "OOOOi|dd:activation_backward", &odx, &ody, &ox, &oy, &act, &alpha, &beta))
        return NULL;
    PyArrayObject *x = elementwise_arg(ox, fn, "x");
    PyArrayObject *y = x ? like(oy, fn, "y", x, READ) : NULL;
    PyArrayObject *dy = y ? like(ody, fn, "dy", x, READ) : NULL;
    PyArrayObject *dx = dy ? like(odx, fn, "dx", x, WRITE) : NULL;
    if (!dx || check_overlap(fn, "dx", dx, "dy", dy, 1) || check_overlap(fn, "dx", dx, "x", x, 0) ||
        check_overlap(fn, "dx", dx, "y", y, 0) || check_activation(fn, act, alpha))
        return NULL;
    int t = PyArray_TYPE(x);
    size_t count = (size_t)PyArray_SIZE(x);
    Py_BEGIN_ALLOW_THREADS
    CALL(t, activation_backward, DATA(dx), DATA(dy), DATA(x), DATA(y), count, (cnn_activation)act, alpha, beta);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* softmax_forward(y, x) and log_softmax_forward(y, x): x (N, K). */
static PyObject *softmax_like_forward(PyObject *args, const char *fn, int log)
{
    PyObject *oy, *ox;
    if (!PyArg_ParseTuple(args, "OO", &oy, &ox)) return NULL;
    int t = real_type(ox, fn, "x");
    PyArrayObject *x = t < 0 ? NULL : array_arg(ox, fn, "x", t, 2, NULL, READ);
    PyArrayObject *y = x ? like(oy, fn, "y", x, WRITE) : NULL;
    if (!y || check_overlap(fn, "y", y, "x", x, 1)) return NULL;
    int n = DIM(x, 0), k = DIM(x, 1);
    Py_BEGIN_ALLOW_THREADS
    if (log) CALL(t, log_softmax_forward, DATA(y), DATA(x), n, k);
    else CALL(t, softmax_forward, DATA(y), DATA(x), n, k);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* softmax_backward(dx, dy, y) and log_softmax_backward(dx, dy, y): y is the forward's output. */
static PyObject *softmax_like_backward(PyObject *args, const char *fn, int log)
{
    PyObject *odx, *ody, *oy;
    if (!PyArg_ParseTuple(args, "OOO", &odx, &ody, &oy)) return NULL;
    int t = real_type(oy, fn, "y");
    PyArrayObject *y = t < 0 ? NULL : array_arg(oy, fn, "y", t, 2, NULL, READ);
    PyArrayObject *dy = y ? like(ody, fn, "dy", y, READ) : NULL;
    PyArrayObject *dx = dy ? like(odx, fn, "dx", y, WRITE) : NULL;
    if (!dx || check_overlap(fn, "dx", dx, "dy", dy, 1) || check_overlap(fn, "dx", dx, "y", y, 0)) return NULL;
    int n = DIM(y, 0), k = DIM(y, 1);
    Py_BEGIN_ALLOW_THREADS
    if (log) CALL(t, log_softmax_backward, DATA(dx), DATA(dy), DATA(y), n, k);
    else CALL(t, softmax_backward, DATA(dx), DATA(dy), DATA(y), n, k);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_softmax_forward(PyObject *s, PyObject *a) { return softmax_like_forward(a, "softmax_forward", 0); }
static PyObject *py_log_softmax_forward(PyObject *s, PyObject *a) { return softmax_like_forward(a, "log_softmax_forward", 1); }
static PyObject *py_softmax_backward(PyObject *s, PyObject *a) { return softmax_like_backward(a, "softmax_backward", 0); }
static PyObject *py_log_softmax_backward(PyObject *s, PyObject *a) { return softmax_like_backward(a, "log_softmax_backward", 1); }

/* ---- losses ---------------------------------------------------------------------------------- */

typedef enum { SPARSE_CE, CE, BCE, MSE, HINGE } loss_kind;

/* loss(dx or None, x (N, K), labels (N) int64 | target (N, K)[, margin]) -> float */
static PyObject *loss(PyObject *args, const char *fn, loss_kind kind)
{
    PyObject *odx, *ox, *oy;
    double margin = 1;
    int sparse = kind == SPARSE_CE || kind == HINGE;
    if (!PyArg_ParseTuple(args, kind == HINGE ? "OOO|d" : "OOO", &odx, &ox, &oy, &margin)) return NULL;
    int t = real_type(ox, fn, "x"), ok = 1;
    PyArrayObject *x = t < 0 ? NULL : array_arg(ox, fn, "x", t, 2, NULL, READ);
    if (!x) return NULL;
    int n = DIM(x, 0), k = DIM(x, 1);
    PyArrayObject *y = sparse ? array_arg(oy, fn, "labels", NPY_INT64, 1, (npy_intp[]){n}, READ)
                              : like(oy, fn, "target", x, READ);
    if (!y || (sparse && check_labels(fn, y, k))) return NULL;
    if (kind == HINGE && !isfinite(margin)) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'margin' must be finite, got %s", fn, num(margin).s);
        return NULL;
    }
    PyArrayObject *dx = optional_arg(odx, &ok, fn, "dx", t, 2, PyArray_DIMS(x), WRITE);
    if (!ok || check_overlap(fn, "dx", dx, "x", x, 0) || check_overlap(fn, "dx", dx, sparse ? "labels" : "target", y, 0))
        return NULL;
    double value = 0;
    Py_BEGIN_ALLOW_THREADS
    switch (kind) {
    case SPARSE_CE: value = CALL(t, sparse_cross_entropy_loss, DATA(dx), DATA(x), DATA(y), n, k); break;
    case CE: value = CALL(t, cross_entropy_loss, DATA(dx), DATA(x), DATA(y), n, k); break;
    case BCE: value = CALL(t, binary_cross_entropy_loss, DATA(dx), DATA(x), DATA(y), n, k); break;
    case MSE: value = CALL(t, mse_loss, DATA(dx), DATA(x), DATA(y), n, k); break;
    case HINGE: value = CALL(t, multiclass_hinge_loss, DATA(dx), DATA(x), DATA(y), n, k, margin); break;
    }
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(value);
}

static PyObject *py_sparse_cross_entropy_loss(PyObject *s, PyObject *a) { return loss(a, "sparse_cross_entropy_loss", SPARSE_CE); }
static PyObject *py_cross_entropy_loss(PyObject *s, PyObject *a) { return loss(a, "cross_entropy_loss", CE); }
static PyObject *py_binary_cross_entropy_loss(PyObject *s, PyObject *a) { return loss(a, "binary_cross_entropy_loss", BCE); }
static PyObject *py_mse_loss(PyObject *s, PyObject *a) { return loss(a, "mse_loss", MSE); }
static PyObject *py_multiclass_hinge_loss(PyObject *s, PyObject *a) { return loss(a, "multiclass_hinge_loss", HINGE); }

/* ---- optimizers ------------------------------------------------------------------------------ */

static int check_variant(const char *fn, int variant)
{
    if (variant == OPT_TORCH || variant == OPT_KERAS) return 0;
    PyErr_Format(PyExc_ValueError, "%s: argument 'variant' must be 0 (torch) or 1 (keras), got %d", fn, variant);
    return -1;
}

/* sgd_step(p, buf or None, g, lr, momentum, dampening, weight_decay, nesterov, first, variant) */
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
    if (!g || check_variant(fn, variant) || check_positive_finite(fn, "lr", lr, 1) ||
        check_positive_finite(fn, "momentum", mom, 1) || check_positive_finite(fn, "weight_decay", wd, 1))
        return NULL;
    if (!isfinite(damp)) return PyErr_Format(PyExc_ValueError, "%s: argument 'dampening' must be finite", fn);
    PyArrayObject *buf = optional_arg(obuf, &ok, fn, "buf", t, 1, PyArray_DIMS(p), WRITE);
    if (!ok) return NULL;
    if (mom != 0 && !buf)
        return PyErr_Format(PyExc_ValueError, "%s: argument 'buf' must be an array when momentum != 0, got None", fn);
    if (check_overlap(fn, "p", p, "g", g, 0) || check_overlap(fn, "buf", buf, "g", g, 0) ||
        check_overlap(fn, "buf", buf, "p", p, 0))
        return NULL;
    size_t count = (size_t)PyArray_SIZE(p);
    Py_BEGIN_ALLOW_THREADS
    CALL(t, sgd_step, DATA(p), DATA(buf), DATA(g), count, lr, mom, damp, wd, nesterov, first, (cnn_opt_variant)variant);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* adam_step(p, m, v, g, lr, beta1, beta2, eps, weight_decay, decoupled, t, variant) */
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
    if (!g || check_variant(fn, variant) || check_positive_finite(fn, "lr", lr, 1) ||
        check_positive_finite(fn, "eps", eps, 1) || check_positive_finite(fn, "weight_decay", wd, 1))
        return NULL;
    if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1))
        return PyErr_Format(PyExc_ValueError, "%s: arguments 'beta1' and 'beta2' must lie in [0, 1), got %s and %s",
                            fn, num(b1).s, num(b2).s);
    if (step < 1) return PyErr_Format(PyExc_ValueError, "%s: argument 't' must be a step count >= 1, got %lld", fn, step);
    PyArrayObject *all[] = {p, m, v, g};
    const char *names[] = {"p", "m", "v", "g"};
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 4; j++)
            if (check_overlap(fn, names[i], all[i], names[j], all[j], 0)) return NULL;
    size_t count = (size_t)PyArray_SIZE(p);
    Py_BEGIN_ALLOW_THREADS
    CALL(t, adam_step, DATA(p), DATA(m), DATA(v), DATA(g), count, lr, b1, b2, eps, wd, decoupled, step,
         (cnn_opt_variant)variant);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* l2_penalty(g, p, lam) -> lam/2·Σp², and g += lam·p */
static PyObject *py_l2_penalty(PyObject *self, PyObject *args)
{
    static const char *fn = "l2_penalty";
    PyObject *og, *op;
    double lam;
    if (!PyArg_ParseTuple(args, "OOd:l2_penalty", &og, &op, &lam)) return NULL;
    int t = real_type(op, fn, "p");
    PyArrayObject *p = t < 0 ? NULL : array_arg(op, fn, "p", t, 1, NULL, READ);
    PyArrayObject *g = p ? like(og, fn, "g", p, WRITE) : NULL;
    if (!g || check_overlap(fn, "g", g, "p", p, 0) || check_positive_finite(fn, "lam", lam, 1)) return NULL;
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
    if ((long long)in + pad_lo + pad_hi > INT_MAX) {  /* the kernels index the padded input with ints */
        PyErr_Format(PyExc_ValueError, "%s: the padded input %s (%lld cells) exceeds %d", fn, what,
                     (long long)in + pad_lo + pad_hi, INT_MAX);
        return -1;
    }
    if (room < 0) {
        PyErr_Format(PyExc_ValueError, "%s: the %s window (%lld cells with dilation) is larger than the padded "
                     "input (%lld cells): the output would be empty", fn, what, span, (long long)in + pad_lo + pad_hi);
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
    *g = (cnn_conv2d){.n = (int)xd[0], .c = (int)xd[1], .h = (int)xd[2], .w = (int)xd[3], .oc = (int)wd[0],
                      .kh = (int)wd[2], .kw = (int)wd[3], .sh = stride[0], .sw = stride[1], .pt = pad[0],
                      .pb = pad[1], .pl = pad[2], .pr = pad[3], .dil_h = dil[0], .dil_w = dil[1], .groups = groups};
    if (g->c % groups || g->oc % groups || wd[1] != g->c / groups) {
        PyErr_Format(PyExc_ValueError, "%s: with groups=%d, the %d input and %ld output channels must both divide "
                     "by groups and 'w' must have shape (out, %d, kh, kw), got %ld in its second dimension",
                     fn, groups, g->c, (long)wd[0], g->c / groups, (long)wd[1]);
        return -1;
    }
    g->oh = out_size(fn, "height", g->h, g->pt, g->pb, (long long)g->dil_h * (g->kh - 1) + 1, g->sh);
    g->ow = g->oh < 0 ? -1 : out_size(fn, "width", g->w, g->pl, g->pr, (long long)g->dil_w * (g->kw - 1) + 1, g->sw);
    if (g->ow < 0) return -1;
    if ((long long)g->n * g->oh * g->ow > INT_MAX || (long long)g->c * g->kh * g->kw > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: the batch's output positions or the kernel's window exceed %d", fn, INT_MAX);
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
    if (size > (size_t)INT_MAX * 64) {
        PyErr_Format(PyExc_ValueError, "%s: the scratch this convolution needs (%zu elements) is too large", fn, size);
        *ok = 0;
        return NULL;
    }
    PyArrayObject *a = array_arg(o, fn, "scratch", type, 1, (npy_intp[]){(npy_intp)size}, WRITE);
    if (!a) *ok = 0;
    return a;
}

/* x (N, C, H, W) and w (OC, C/G, KH, KW) of one float type, and their geometry; that type or -1. */
static int conv_operands(const char *fn, PyObject *ox, PyObject *ow, const int *stride, const int *pad,
                         const int *dil, int groups, PyArrayObject **x, PyArrayObject **w, cnn_conv2d *g)
{
    int t = real_type(ox, fn, "x");
    *x = t < 0 ? NULL : array_arg(ox, fn, "x", t, 4, NULL, READ);
    *w = *x ? array_arg(ow, fn, "w", t, 4, NULL, READ) : NULL;
    if (!*w || conv_geometry(fn, g, PyArray_DIMS(*x), PyArray_DIMS(*w), stride, pad, dil, groups)) return -1;
    return t;
}

#define CONV_ARGS "(ii)(iiii)(ii)i"

/* conv2d_scratch_size(x_shape, w_shape, stride, padding, dilation, groups) -> elements */
static PyObject *py_conv2d_scratch_size(PyObject *self, PyObject *args)
{
    static const char *fn = "conv2d_scratch_size";
    npy_intp xd[4], wd[4];
    int stride[2], pad[4], dil[2], groups;
    long long xl[4], wl[4];
    if (!PyArg_ParseTuple(args, "(LLLL)(LLLL)" CONV_ARGS ":conv2d_scratch_size", &xl[0], &xl[1], &xl[2], &xl[3],
                          &wl[0], &wl[1], &wl[2], &wl[3], &stride[0], &stride[1], &pad[0], &pad[1], &pad[2], &pad[3],
                          &dil[0], &dil[1], &groups))
        return NULL;
    for (int i = 0; i < 4; i++) {
        xd[i] = xl[i] < 0 || xl[i] > INT_MAX ? 0 : (npy_intp)xl[i];
        wd[i] = wl[i] < 0 || wl[i] > INT_MAX ? 0 : (npy_intp)wl[i];
    }
    cnn_conv2d g;
    if (conv_geometry(fn, &g, xd, wd, stride, pad, dil, groups)) return NULL;
    return PyLong_FromSize_t(conv2d_scratch_size(&g));
}

/* conv2d_forward(y, x, w, b or None, scratch or None, stride, padding, dilation, groups) */
static PyObject *py_conv2d_forward(PyObject *self, PyObject *args)
{
    static const char *fn = "conv2d_forward";
    PyObject *oy, *ox, *ow, *ob, *os;
    int stride[2], pad[4], dil[2], groups;
    if (!PyArg_ParseTuple(args, "OOOOO" CONV_ARGS ":conv2d_forward", &oy, &ox, &ow, &ob, &os, &stride[0],
                          &stride[1], &pad[0], &pad[1], &pad[2], &pad[3], &dil[0], &dil[1], &groups))
        return NULL;
    PyArrayObject *x, *w;
    cnn_conv2d g;
    int t = conv_operands(fn, ox, ow, stride, pad, dil, groups, &x, &w, &g), ok = 1;
    if (t < 0) return NULL;
    PyArrayObject *b = optional_arg(ob, &ok, fn, "b", t, 1, (npy_intp[]){g.oc}, READ);
    PyArrayObject *sc = ok ? scratch_arg(os, &ok, fn, t, &g) : NULL;
    PyArrayObject *y = ok ? array_arg(oy, fn, "y", t, 4, (npy_intp[]){g.n, g.oc, g.oh, g.ow}, WRITE) : NULL;
    if (!y) return NULL;
    PyArrayObject *outs[] = {y, sc}, *ins[] = {x, w, b};
    const char *on[] = {"y", "scratch"}, *inn[] = {"x", "w", "b"};
    if (check_disjoint(fn, outs, on, 2, ins, inn, 3)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, conv2d_forward, DATA(y), DATA(x), DATA(w), DATA(b), DATA(sc), &g);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* conv2d_backward(dx or None, dw, db or None, dy, x, w, scratch or None, stride, padding, dilation, groups,
 *                 accumulate=True) */
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
    if (!ok) return NULL;
    PyArrayObject *outs[] = {dx, dw, db, sc}, *ins[] = {dy, x, w};
    const char *on[] = {"dx", "dw", "db", "scratch"}, *inn[] = {"dy", "x", "w"};
    if (check_disjoint(fn, outs, on, 4, ins, inn, 3)) return NULL;
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
            PyErr_Format(PyExc_ValueError, "%s: each padding must be at most half the window (%d), got %d",
                         fn, kernel[i / 2] / 2, pad[i]);
            return -1;
        }
    *g = (cnn_pool2d){.n = DIM(x, 0), .c = DIM(x, 1), .h = DIM(x, 2), .w = DIM(x, 3), .kh = kernel[0],
                      .kw = kernel[1], .sh = stride[0], .sw = stride[1], .pt = pad[0], .pb = pad[1], .pl = pad[2],
                      .pr = pad[3]};
    g->oh = out_size(fn, "height", g->h, g->pt, g->pb, g->kh, g->sh);
    g->ow = g->oh < 0 ? -1 : out_size(fn, "width", g->w, g->pl, g->pr, g->kw, g->sw);
    return g->ow < 0 ? -1 : 0;
}

#define POOL_ARGS "(ii)(ii)(iiii)"

/* The four pooling wrappers, all (kernel_size, stride, padding) after their arrays:
 *   maxpool2d_forward(y, argmax, x)     maxpool2d_backward(dx, dy, argmax)
 *   avgpool2d_forward(y, x, include)    avgpool2d_backward(dx, dy, include)   include: count_include_pad
 * The full-size array is x or dx; the pooled ones y or dy and argmax. Backward reads argmax, so its
 * indices are checked to lie inside a plane. */
static PyObject *pool(PyObject *args, const char *fn, int max, int backward)
{
    PyObject *o[3] = {NULL, NULL, NULL};
    int k[2], s[2], p[4], include = 1;
    int parsed = max ? PyArg_ParseTuple(args, "OOO" POOL_ARGS, &o[0], &o[1], &o[2], &k[0], &k[1], &s[0], &s[1],
                                        &p[0], &p[1], &p[2], &p[3])
                     : PyArg_ParseTuple(args, "OO" POOL_ARGS "p", &o[0], &o[1], &k[0], &k[1], &s[0], &s[1], &p[0],
                                        &p[1], &p[2], &p[3], &include);
    if (!parsed) return NULL;
    PyObject *ofull = backward ? o[0] : o[max ? 2 : 1], *opooled = backward ? o[1] : o[0];
    PyObject *oidx = max ? o[backward ? 2 : 1] : NULL;
    const char *full_name = backward ? "dx" : "x", *pooled_name = backward ? "dy" : "y";
    int in = backward ? WRITE : READ, out = backward ? READ : WRITE;
    int t = real_type(ofull, fn, full_name);
    PyArrayObject *full = t < 0 ? NULL : array_arg(ofull, fn, full_name, t, 4, NULL, in);
    cnn_pool2d g;
    if (!full || pool_geometry(fn, &g, full, k, s, p)) return NULL;
    npy_intp od[] = {g.n, g.c, g.oh, g.ow};
    PyArrayObject *pooled = array_arg(opooled, fn, pooled_name, t, 4, od, out);
    if (!pooled || check_overlap(fn, full_name, full, pooled_name, pooled, 0)) return NULL;
    PyArrayObject *idx = NULL;
    if (max) {
        idx = array_arg(oidx, fn, "argmax", NPY_INT64, 4, od, out);
        if (!idx || check_overlap(fn, "argmax", idx, full_name, full, 0) ||
            check_overlap(fn, "argmax", idx, pooled_name, pooled, 0))
            return NULL;
        const int64_t *iv = PyArray_DATA(idx);
        int64_t hw = (int64_t)g.h * g.w;
        for (npy_intp i = 0; backward && i < PyArray_SIZE(idx); i++)
            if (iv[i] < 0 || iv[i] >= hw)
                return PyErr_Format(PyExc_ValueError, "%s: argument 'argmax' must hold plane indices in [0, %lld), "
                                    "got %lld at %ld", fn, (long long)hw, (long long)iv[i], (long)i);
    }
    Py_BEGIN_ALLOW_THREADS
    if (max && backward) CALL(t, maxpool2d_backward, DATA(full), DATA(pooled), DATA(idx), &g);
    else if (max) CALL(t, maxpool2d_forward, DATA(pooled), DATA(idx), DATA(full), &g);
    else if (backward) CALL(t, avgpool2d_backward, DATA(full), DATA(pooled), &g, include);
    else CALL(t, avgpool2d_forward, DATA(pooled), DATA(full), &g, include);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_maxpool2d_forward(PyObject *s, PyObject *a) { return pool(a, "maxpool2d_forward", 1, 0); }
static PyObject *py_maxpool2d_backward(PyObject *s, PyObject *a) { return pool(a, "maxpool2d_backward", 1, 1); }
static PyObject *py_avgpool2d_forward(PyObject *s, PyObject *a) { return pool(a, "avgpool2d_forward", 0, 0); }
static PyObject *py_avgpool2d_backward(PyObject *s, PyObject *a) { return pool(a, "avgpool2d_backward", 0, 1); }

/* ---- mlp --------------------------------------------------------------------------------------- */

enum { MLP_MAX_UNITS = 257 }; /* up to 256 weight layers */

/* The network description: units (L + 1,) int64 widths, hidden activation code, output kind, alpha. */
static int mlp_net_arg(const char *fn, PyObject *ounits, int hidden, int output, double alpha, cnn_mlp *net,
                       int *units)
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
        PyErr_Format(PyExc_ValueError, "%s: argument 'hidden' must be ACT_IDENTITY, ACT_SIGMOID, ACT_TANH or "
                     "ACT_RELU, got %d", fn, hidden);
        return -1;
    }
    if (output < 0 || output >= MLP_OUT_COUNT) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'output' must be an MLP_OUT_* code in [0, %d), got %d", fn,
                     MLP_OUT_COUNT, output);
        return -1;
    }
    if (check_positive_finite(fn, "alpha", alpha, 1)) return -1;
    *net = (cnn_mlp){(int)len - 1, units, (cnn_activation)hidden, (cnn_mlp_output)output, alpha};
    return 0;
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

/* mlp_workspace_size(units, n, training) -> reals of scratch that mlp_forward / mlp_loss_grad / mlp_epoch need */
static PyObject *py_mlp_workspace_size(PyObject *self, PyObject *args)
{
    static const char *fn = "mlp_workspace_size";
    PyObject *ou;
    int n, training, units[MLP_MAX_UNITS];
    cnn_mlp net;
    if (!PyArg_ParseTuple(args, "Oip:mlp_workspace_size", &ou, &n, &training)) return NULL;
    if (mlp_net_arg(fn, ou, ACT_IDENTITY, MLP_OUT_IDENTITY, 0, &net, units)) return NULL;
    if (n < 1) return PyErr_Format(PyExc_ValueError, "%s: argument 'n' must be >= 1, got %d", fn, n);
    return PyLong_FromSize_t(cnn_mlp_workspace_size(&net, n, training));
}

/* mlp_forward(out, work, params, x, units, hidden, output) */
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
    PyArrayObject *work = out ? vector_arg(owork, fn, "work", t, cnn_mlp_workspace_size(&net, n, 0), 0) : NULL;
    if (!work) return NULL;
    PyArrayObject *outs[] = {out, work}, *ins[] = {p, x};
    if (check_disjoint(fn, outs, (const char *[]){"out", "work"}, 2, ins, (const char *[]){"params", "x"}, 2))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    CALL(t, mlp_forward, DATA(out), DATA(work), DATA(p), DATA(x), n, &net);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* The arrays shared by mlp_loss_grad and mlp_epoch: x (N, units[0]), y (N, units[L]), params (P), grad (P),
 * work (at least the training workspace for `rows` rows). */
typedef struct { PyArrayObject *x, *y, *p, *grad, *work; int t, n; } mlp_arrays;

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
    a->work = a->grad ? vector_arg(owork, fn, "work", a->t, cnn_mlp_workspace_size(net, batch ? batch : a->n, 1), 0)
                      : NULL;
    return a->work ? 0 : -1;
}

/* mlp_loss_grad(grad, work, params, x, y, units, hidden, output, alpha) -> loss */
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
        mlp_arrays_arg(fn, &a, ox, oy, op, og, owork, &net, READ, 0))
        return NULL;
    PyArrayObject *outs[] = {a.grad, a.work}, *ins[] = {a.p, a.x, a.y};
    if (check_disjoint(fn, outs, (const char *[]){"grad", "work"}, 2, ins, (const char *[]){"params", "x", "y"}, 3))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    loss = CALL(a.t, mlp_loss_grad, DATA(a.grad), DATA(a.work), DATA(a.p), DATA(a.x), DATA(a.y), a.n, &net);
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(loss);
}

/* mlp_epoch(params, state, grad, work, x, y, order or None, units, hidden, output, alpha, batch, begin, end,
 *           (adam, lr, momentum, nesterov, beta1, beta2, eps, t)) -> (Σ batch loss·rows, t) */
static PyObject *py_mlp_epoch(PyObject *self, PyObject *args)
{
    static const char *fn = "mlp_epoch";
    PyObject *op, *ostate, *og, *owork, *ox, *oy, *oorder, *ou;
    int hidden, output, batch, b0, b1, adam, nesterov, units[MLP_MAX_UNITS], ok = 1;
    double alpha, total;
    cnn_mlp net;
    cnn_mlp_optim opt;
    mlp_arrays a;
    if (!PyArg_ParseTuple(args, "OOOOOOOOiidiii(pddpdddL):mlp_epoch", &op, &ostate, &og, &owork, &ox, &oy, &oorder,
                          &ou, &hidden, &output, &alpha, &batch, &b0, &b1, &adam, &opt.lr, &opt.momentum, &nesterov,
                          &opt.beta1, &opt.beta2, &opt.eps, &opt.t))
        return NULL;
    opt.adam = adam;
    opt.nesterov = nesterov;
    if (batch < 1) return PyErr_Format(PyExc_ValueError, "%s: argument 'batch' must be >= 1, got %d", fn, batch);
    if (mlp_net_arg(fn, ou, hidden, output, alpha, &net, units) ||
        mlp_arrays_arg(fn, &a, ox, oy, op, og, owork, &net, WRITE, batch))
        return NULL;
    size_t count = cnn_mlp_param_count(&net);
    PyArrayObject *state = vector_arg(ostate, fn, "state", a.t, adam ? 2 * count : count, 1);
    PyArrayObject *order = state ? optional_arg(oorder, &ok, fn, "order", NPY_INT64, 1, (npy_intp[]){a.n}, READ) : NULL;
    if (!state || !ok) return NULL;
    int n_batches = (a.n + batch - 1) / batch;
    if (b0 < 0 || b0 > b1 || b1 > n_batches)
        return PyErr_Format(PyExc_ValueError, "%s: arguments 'begin', 'end' must satisfy 0 <= begin <= end <= %d "
                            "batches, got %d and %d", fn, n_batches, b0, b1);
    if (check_positive_finite(fn, "lr", opt.lr, 0) || check_positive_finite(fn, "eps", opt.eps, 0))
        return NULL;
    if (!(opt.momentum >= 0 && opt.momentum <= 1) || !(opt.beta1 >= 0 && opt.beta1 < 1) ||
        !(opt.beta2 >= 0 && opt.beta2 < 1))
        return PyErr_Format(PyExc_ValueError, "%s: 'momentum' must lie in [0, 1] and 'beta1', 'beta2' in [0, 1), "
                            "got %s, %s and %s", fn, num(opt.momentum).s, num(opt.beta1).s, num(opt.beta2).s);
    if (opt.t < 0) return PyErr_Format(PyExc_ValueError, "%s: the step count 't' must be >= 0, got %lld", fn, opt.t);
    /* only the rows of the batches run: a call per batch must not pay for checking the whole epoch's order */
    const int64_t *idx = DATA(order);
    long long first = (long long)b0 * batch, last = (long long)b1 * batch < a.n ? (long long)b1 * batch : a.n;
    for (int i = (int)first; order && i < last; i++)
        if (idx[i] < 0 || idx[i] >= a.n)
            return PyErr_Format(PyExc_ValueError, "%s: argument 'order' must hold row indices in [0, %d), got %lld "
                                "at %d", fn, a.n, (long long)idx[i], i);
    PyArrayObject *outs[] = {a.p, state, a.grad, a.work}, *ins[] = {a.x, a.y, order};
    if (check_disjoint(fn, outs, (const char *[]){"params", "state", "grad", "work"}, 4, ins,
                       (const char *[]){"x", "y", "order"}, 3))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    total = CALL(a.t, mlp_epoch, DATA(a.p), DATA(state), DATA(a.grad), DATA(a.work), DATA(a.x), DATA(a.y),
                 DATA(order), a.n, batch, b0, b1, &net, &opt);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("dL", total, opt.t);
}

/* ---- threads --------------------------------------------------------------------------------- */

#define GET_NUM_THREADS_DOC                                                                                \
    "get_num_threads() -> the OpenMP threads cnn's kernels called from this thread use: set_num_threads'\n"  \
    "count, unless threadpoolctl (or any omp_set_num_threads) set another in this thread since. OpenMP's\n"   \
    "own count in this thread is brought to it, so threadpoolctl.threadpool_info() then shows the same."

static PyObject *py_get_num_threads(PyObject *self, PyObject *args) { return PyLong_FromLong(cnn_num_threads()); }

#define SET_NUM_THREADS_DOC                                                                                 \
    "set_num_threads(n): the OpenMP threads cnn's kernels use, in every thread of the process (OpenMP's own\n" \
    "omp_set_num_threads reaches only the calling thread). Starts at OMP_NUM_THREADS, or the number of CPUs.\n" \
    "threadpoolctl.threadpool_limits(k) still limits kernels called from the thread that entered it, while\n"  \
    "it lasts (a set_num_threads inside the block is undone in that thread when it ends). A process forked\n" \
    "after cnn ran keeps the count and may set its own. Results are bitwise the same at any count."

#define MAX_THREADS 1024

static PyObject *py_set_num_threads(PyObject *self, PyObject *args)
{
    int n;
    if (!PyArg_ParseTuple(args, "i:set_num_threads", &n)) return NULL;
    /* libgomp aborts the process when it cannot create the threads asked for, so absurd counts stop here */
    if (n < 1 || n > MAX_THREADS)
        return PyErr_Format(PyExc_ValueError, "set_num_threads: argument 'n' must lie in [1, %d], got %d", MAX_THREADS, n);
    cnn_set_num_threads(n);
    Py_RETURN_NONE;
}

/* ---- gemm instruction set (for tests and benchmarks) ---------------------------------------- */

static const char *const isa_names[] = {"auto", "base", "avx2", "avx512"};

static PyObject *py_gemm_isa(PyObject *self, PyObject *args) { return PyUnicode_FromString(isa_names[cnn_get_gemm_isa()]); }

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
    return PyErr_Format(PyExc_ValueError, "_set_gemm_isa: argument 'name' must be one of 'auto', 'base', "
                        "'avx2', 'avx512', got '%s'", name);
}

/* ---- module ---------------------------------------------------------------------------------- */

#define METHOD(name, doc) {#name, py_##name, METH_VARARGS, doc}
static PyMethodDef methods[] = {
    METHOD(gemm, "gemm(c, a, b, trans_a=False, trans_b=False, accumulate=False): c [+]= op(a)·op(b)"),
    METHOD(dense_forward, "dense_forward(y, x, w, b or None): y = x·w + b"),
    METHOD(dense_backward, "dense_backward(dx or None, dw, db or None, dy, x, w, accumulate=True): dx = dy·wᵀ, "
                           "dw += xᵀ·dy, db += Σdy (= when accumulate is false)"),
    METHOD(activation_forward, "activation_forward(y, x, act, alpha=0, beta=1)"),
    METHOD(activation_backward, "activation_backward(dx, dy, x, y, act, alpha=0, beta=1)"),
    METHOD(softmax_forward, "softmax_forward(y, x): along the last axis of x (N, K)"),
    METHOD(log_softmax_forward, "log_softmax_forward(y, x): along the last axis of x (N, K)"),
    METHOD(softmax_backward, "softmax_backward(dx, dy, y)"),
    METHOD(log_softmax_backward, "log_softmax_backward(dx, dy, y)"),
    METHOD(sparse_cross_entropy_loss, "sparse_cross_entropy_loss(dx or None, logits, labels) -> mean loss"),
    METHOD(cross_entropy_loss, "cross_entropy_loss(dx or None, logits, target) -> mean loss"),
    METHOD(binary_cross_entropy_loss, "binary_cross_entropy_loss(dx or None, logits, target) -> mean loss"),
    METHOD(mse_loss, "mse_loss(dx or None, pred, target) -> mean loss"),
    METHOD(multiclass_hinge_loss, "multiclass_hinge_loss(dx or None, scores, labels, margin=1) -> mean loss"),
    METHOD(sgd_step, "sgd_step(p, buf, g, lr, momentum, dampening, weight_decay, nesterov, first, variant)"),
    METHOD(adam_step, "adam_step(p, m, v, g, lr, beta1, beta2, eps, weight_decay, decoupled, t, variant)"),
    METHOD(l2_penalty, "l2_penalty(g, p, lam) -> lam/2·Σp²; g += lam·p"),
    METHOD(conv2d_scratch_size, "conv2d_scratch_size(x_shape, w_shape, stride, padding, dilation, groups) -> elements"),
    METHOD(conv2d_forward, "conv2d_forward(y, x, w, b or None, scratch or None, (sh, sw), (top, bottom, left, right), "
                           "(dh, dw), groups)"),
    METHOD(conv2d_backward, "conv2d_backward(dx or None, dw, db or None, dy, x, w, scratch or None, stride, padding, "
                            "dilation, groups, accumulate=True): scratch as the forward left it; dw and db += "
                            "(= when accumulate is false)"),
    METHOD(maxpool2d_forward, "maxpool2d_forward(y, argmax, x, (kh, kw), (sh, sw), (top, bottom, left, right))"),
    METHOD(maxpool2d_backward, "maxpool2d_backward(dx, dy, argmax, kernel_size, stride, padding)"),
    METHOD(avgpool2d_forward, "avgpool2d_forward(y, x, kernel_size, stride, padding, count_include_pad)"),
    METHOD(avgpool2d_backward, "avgpool2d_backward(dx, dy, kernel_size, stride, padding, count_include_pad)"),
    METHOD(mlp_workspace_size, "mlp_workspace_size(units, n, training) -> reals of scratch for n rows"),
    METHOD(mlp_forward, "mlp_forward(out, work, params, x, units, hidden, output)"),
    METHOD(mlp_loss_grad, "mlp_loss_grad(grad, work, params, x, y, units, hidden, output, alpha) -> loss"),
    METHOD(mlp_epoch, "mlp_epoch(params, state, grad, work, x, y, order or None, units, hidden, output, alpha, "
                      "batch, begin, end, (adam, lr, momentum, nesterov, beta1, beta2, eps, t)) -> (loss·rows, t)"),
    {"get_num_threads", py_get_num_threads, METH_NOARGS, GET_NUM_THREADS_DOC},
    METHOD(set_num_threads, SET_NUM_THREADS_DOC),
    {"_gemm_isa", py_gemm_isa, METH_NOARGS, "_gemm_isa() -> the instruction set gemm runs: 'base', 'avx2' or 'avx512'"},
    {"_set_gemm_isa", py_set_gemm_isa, METH_VARARGS, "_set_gemm_isa(name): force gemm's instruction set ('auto' restores the widest)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_core", "cnn's C kernels (see csrc/cnn.h)", -1, methods};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    if (cnn_threads_init()) return PyErr_Format(PyExc_OSError, "cnn: pthread_atfork failed (out of memory)");
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    static const struct { const char *name; int value; } constants[] = {
        {"ACT_IDENTITY", ACT_IDENTITY}, {"ACT_SIGMOID", ACT_SIGMOID}, {"ACT_TANH", ACT_TANH},
        {"ACT_SCALED_TANH", ACT_SCALED_TANH}, {"ACT_RELU", ACT_RELU}, {"ACT_LEAKY_RELU", ACT_LEAKY_RELU},
        {"OPT_TORCH", OPT_TORCH}, {"OPT_KERAS", OPT_KERAS},
        {"MLP_OUT_IDENTITY", MLP_OUT_IDENTITY}, {"MLP_OUT_LOGISTIC", MLP_OUT_LOGISTIC},
        {"MLP_OUT_SOFTMAX", MLP_OUT_SOFTMAX}, {"MLP_OUT_EXP", MLP_OUT_EXP},
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
