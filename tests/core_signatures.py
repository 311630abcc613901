"""The signature of every cnn._core binding, read from its docstring, and argument lists built from it.

The first line of a binding's docstring is the one statement of its signature (module.c says how it reads):
the arguments in order, their kinds and shapes, which are written, which may be None or left out.
signature(name) parses it. A Row adds only what a docstring cannot say: the values a valid call draws for
its scalars (SCALARS by name, or the row's own), how sizes follow from others (`derive`), their ranges
(`ranges`), and a spec that replaces the parsed one for an argument (`a=Arr("K,M")`: gemm with trans_a).
The fuzz, memory and sanitizer tests all draw their calls from SIGNATURES. Nothing in this file imports
torch, so it also runs under AddressSanitizer.

Argument specs:
  Arr("N,K", write=False, optional=False)  float array of the call's dtype; sizes are symbols shared by the
                                           row ("*" = one shared element-wise shape of rank 1 to 4)
  Labels("N", "K", write=False)            int64 indices, shape N, values in [0, K) ("H·W": a product)
  Bytes("N", write=False)                  uint8 codes, shape N, any values (every byte is a valid code)
  Real(lo, hi)                             a float in [lo, hi]
  Int(lo, hi)                              an int (or enum code) in [lo, hi]
  Bool(value=None)                         a flag (value fixes it: the shapes of the row depend on it)
  Units("IN,H,K")                          int64 array of the sizes of those symbols (an MLP's layer widths)
  Size("SH")                               an int equal to that symbol's size (a stride, a pad, a group count)
  Tup(spec, ...)                           a tuple of the specs' values
  Indptr("N", "NNZ")                       a CSR matrix's int64 row offsets: N + 1 of them, from 0 to NNZ, never
                                           decreasing (some rows empty)
  Const(value)                             that value, always (None: a dense call of a binding that takes a CSR)
Arguments from `first_optional` (the first with a default) on may be left out. A symbol is drawn from
`ranges` ({symbol: (lo, hi)}, default (1, 9)) when first needed, unless `derive` computes it from others
({symbol: function of the sizes mapping}: an MLP's parameter count, a convolution's output height). An
array whose derived size is 0 is passed as None (a convolution's scratch on the paths that need none)."""
import os
import re
import subprocess
import sys
import threading

import numpy as np

from cnn import _core

ALLOWED_ERRORS = (TypeError, ValueError, MemoryError, OverflowError)
INT_MAX = 2**31 - 1
# sizes at the int32 and int64 boundaries and past them: as dims, widths, windows, strides and paddings they
# must be refused or handled, never overflow a product in C that then passes a length check
BOUNDARY = [0, -1, INT_MAX, 2**31, 2**32 + 1, 2**62, 2**63 - 1, -2**63, 2**63, -2**64]


class Arr:
    def __init__(self, shape, write=False, optional=False):
        self.shape, self.write, self.optional = shape, write, optional


class Labels:
    def __init__(self, shape, classes, write=False):
        self.shape, self.classes, self.write = shape, classes, write


class Bytes:
    def __init__(self, shape, write=False):
        self.shape, self.write = shape, write


class Real:
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi


class Int:
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi


class Bool:
    def __init__(self, value=None):
        self.value = value


class Units:
    def __init__(self, shape):
        self.shape = shape


class Size:
    def __init__(self, symbol):
        self.symbol = symbol


class Tup:
    def __init__(self, *specs):
        self.specs = specs


class Indptr:
    def __init__(self, rows, nnz):
        self.rows, self.nnz = rows, nnz


class Const:
    def __init__(self, value):
        self.value = value


# ---- the docstrings --------------------------------------------------------------------------------------


class Arg:
    """One argument as its docstring states it. kind: "real" (float array), "int64" (index or width array), "uint8",
    "float", "int", "bool", "size" (a capital: an int equal to that size) or "tuple" (of `items`)."""

    def __init__(self, name, kind, shape=None, write=False, optional=False, default=False, bound=None, items=()):
        self.name, self.kind, self.shape, self.write, self.optional = name, kind, shape, write, optional
        self.default, self.bound, self.items = default, bound, items

    def __repr__(self):
        return f"Arg({self.name}: {self.kind})"


_ARRAY = re.compile(r"(?P<access>in|out|inout)(?P<int> int64| uint8)?\[(?P<shape>[^\]]*)\]( < (?P<bound>\S+))?"
                    r"(?P<none> \| None)?$")


def _split(text):
    """The comma-separated parts of text, commas inside brackets and parentheses kept."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "([") - (ch in ")]")
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return parts + [text[start:].strip()] if text.strip() else parts


def _arg(text):
    """An Arg from 'name: kind [= default]', or from a bare capital (a size inside a tuple)."""
    if ": " not in text:
        return Arg(None, "size", shape=text)
    name, kind = text.split(": ", 1)
    kind, _, default = kind.partition(" = ")
    array = _ARRAY.match(kind)
    if array:
        return Arg(name, array["int"].strip() if array["int"] else "real", shape=array["shape"].replace(" ", ""),
                   write=array["access"] != "in", optional=bool(array["none"]), default=bool(default),
                   bound=array["bound"])
    if kind.startswith("("):
        return Arg(name, "tuple", items=[_arg(item) for item in _split(kind[1:-1])], default=bool(default))
    if kind in ("float", "int", "bool"):
        return Arg(name, kind, default=bool(default))
    assert re.fullmatch(r"[A-Z]\w*", kind), f"{name}: unknown kind {kind!r}"
    return Arg(name, "size", shape=kind, default=bool(default))


def signature(name):
    """The arguments of cnn._core.<name>, parsed from the first line of its docstring."""
    line = getattr(_core, name).__doc__.split("\n", 1)[0]
    assert line.startswith(name + "("), f"{name}: its docstring must open with its signature, got {line!r}"
    return [_arg(part) for part in _split(line[len(name) + 1:_closing(line, len(name))])]


def _closing(text, start):
    """The index of the parenthesis that closes the one at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        depth += (text[i] == "(") - (text[i] == ")")
        if depth == 0:
            return i
    raise ValueError(f"unclosed parenthesis in {text!r}")


# ---- the rows -------------------------------------------------------------------------------------------


class Row:
    """One way of calling a binding: its docstring's arguments as specs, with the row's overrides."""

    def __init__(self, name, derive=None, ranges=None, **specs):
        self.name, self.derive, self.ranges = name, derive or {}, ranges or {}
        parsed = signature(name)
        self.args = tuple(_spec(arg, specs) for arg in parsed)
        self.first_optional = next((i for i, arg in enumerate(parsed) if arg.default), len(parsed))

    def __repr__(self):
        return f"Row({self.name})"


# The values a valid call gives each scalar, by argument name (a row may give its own).
SCALARS = {"act": Int(0, 5), "alpha": Real(0.5, 2.0), "beta": Real(-2.0, 2.0), "margin": Real(0.0, 2.0),
           "lr": Real(0, 1), "momentum": Real(0, 1), "dampening": Real(0, 1), "weight_decay": Real(0, 0.1),
           "beta1": Real(0, 0.99), "beta2": Real(0, 0.999), "eps": Real(1e-8, 1e-3), "t": Int(1, 10**6),
           "variant": Int(0, 1), "lam": Real(0, 1), "hidden": Int(0, 2), "output": Int(0, 3), "n": Int(1, 4)}


def _spec(arg, specs):
    """The spec of a parsed argument: the row's own for that name, else what its kind and SCALARS give."""
    if arg.name in specs:
        return specs[arg.name]
    if arg.kind == "real":
        return Arr(arg.shape, arg.write, arg.optional)
    if arg.kind == "int64":
        assert arg.bound, f"{arg.name}: an int64 array without a bound (layer widths) needs the row's Units spec"
        return Labels(arg.shape, arg.bound, arg.write)
    if arg.kind == "uint8":
        return Bytes(arg.shape, arg.write)
    if arg.kind == "size":
        return Size(arg.shape)
    if arg.kind == "tuple":
        return Tup(*(_spec(item, specs) for item in arg.items))
    if arg.kind == "bool":
        return Bool()
    assert arg.name in SCALARS, f"{arg.name}: give its valid values in SCALARS or in the row"
    return SCALARS[arg.name]


def _mlp_rows():
    """A 2-layer MLP: widths IN, H, K; P parameters; W reals of training scratch for N rows (batch 1): y, a sample
    weight and (dense x) x rows to gather a batch into. Each kernel once with a dense x and once with a CSR x."""
    derive = {"P": lambda s: (s["IN"] + 1) * s["H"] + (s["H"] + 1) * s["K"],
              "W": lambda s: s["N"] * (2 * (s["H"] + s["K"]) + s["IN"] + s["K"] + 1),
              "S": lambda s: 2 * ((s["IN"] + 1) * s["H"] + (s["H"] + 1) * s["K"])}  # Adam's two moments
    net = dict(units=Units("IN,H,K"), alpha=Real(0, 1), derive=derive)
    dense = dict(indices=Const(None), indptr=Const(None))
    csr = dict(x=Arr("NNZ"), indices=Labels("NNZ", "IN"), indptr=Indptr("N", "NNZ"))
    epoch = dict(batch=Int(1, 1), begin=Int(0, 0), end=Int(0, 1), adam=Bool(True), lr=Real(1e-4, 1), t=Int(0, 10**6))
    return [
        Row("mlp_workspace_size", n=Int(1, 100), **net),
        *(Row("mlp_forward", **net, **x) for x in (dense, csr)),
        *(Row("mlp_loss_grad", **net, **x) for x in (dense, csr)),
        *(Row("mlp_epoch", **epoch, **net, **x) for x in (dense, csr)),
    ]


def _sparse_rows():
    """CSR × dense (sparse.c): x (N, IN) with NNZ entries, some rows empty."""
    csr = dict(indptr=Indptr("N", "NNZ"))
    return [Row("sparse_forward", **csr), Row("sparse_backward", **csr)]


def _fits(size, k, d, lo, hi):
    """An input size that leaves the (dilated) window room in the padded input: at least one output."""
    return lambda s: max(1, s[d] * (s[k] - 1) + 1 + s[size + "X"] - s[lo] - s[hi])


def _out(size, k, d, lo, hi, stride):
    return lambda s: (s[size] + s[lo] + s[hi] - s[d] * (s[k] - 1) - 1) // s[stride] + 1


GEOMETRY = {"H": _fits("H", "KH", "DH", "PT", "PB"), "W": _fits("W", "KW", "DW", "PL", "PR"),
            "OH": _out("H", "KH", "DH", "PT", "PB", "SH"), "OW": _out("W", "KW", "DW", "PL", "PR", "SW")}
WINDOW = {"N": (1, 3), "KH": (1, 4), "KW": (1, 4), "SH": (1, 3), "SW": (1, 3), "HX": (0, 5), "WX": (0, 5),
          "PT": (0, 2), "PB": (0, 2), "PL": (0, 2), "PR": (0, 2), "DH": (1, 2), "DW": (1, 2)}


def _conv_rows():
    """Three geometries, one per kernel path: im2col (any), 1x1 stride 1 unpadded, depthwise (groups = C > 1)."""
    derive = {**GEOMETRY, "C": lambda s: s["G"] * s["CG"], "OC": lambda s: s["G"] * s["OCG"],
              "S": lambda s: _core.conv2d_scratch_size(*[tuple(s[k] for k in ks.split(",")) for ks in
                                                        ("N,C,H,W", "OC,CG,KH,KW", "SH,SW", "PT,PB,PL,PR", "DH,DW")],
                                                       s["G"])}
    general = {**WINDOW, "G": (1, 3), "CG": (1, 3), "OCG": (1, 3)}
    pointwise = {**general, **{k: (1, 1) for k in ("KH", "KW", "SH", "SW", "DH", "DW")},
                 **{k: (0, 0) for k in ("PT", "PB", "PL", "PR")}}
    depthwise = {**general, "G": (2, 4), "CG": (1, 1)}
    return [Row(name, derive=derive, ranges=ranges) for ranges in (general, pointwise, depthwise)
            for name in ("conv2d_scratch_size", "conv2d_forward", "conv2d_backward", "_conv2d_reference_forward",
                         "_conv2d_path")]


def _pool_rows():
    """Pads at most half the window (the binding's rule)."""
    derive = {**GEOMETRY, **{p: (lambda pad, win: lambda s: min(s[pad + "0"], s[win] // 2))(p, k)
                             for p, k in (("PT", "KH"), ("PB", "KH"), ("PL", "KW"), ("PR", "KW"))}}
    ranges = {**WINDOW, "C": (1, 3), "DH": (1, 1), "DW": (1, 1), "PT0": (0, 2), "PB0": (0, 2), "PL0": (0, 2),
              "PR0": (0, 2)}
    return [Row(name, derive=derive, ranges=ranges)
            for name in ("maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward")]


# ---- recurrent layers and embedding (issue 17) ----


def _rnn_rows():
    """Each cell (SimpleRNN, LSTM, GRU) with every step's output and with the last only. GU = gates·U; UC is U for
    the LSTM and 0 elsewhere, so that c0, c_last, dc0 and dc_last are None for the cells without a cell state;
    the GRU's bias has two rows (TWO)."""
    def size(s, c, backward):
        return _core.rnn_scratch_size((s["N"], s["T"], s["IN"]), s["U"], c, backward)

    rows = []
    for cell, gates in ((_core.CELL_RNN, 1), (_core.CELL_LSTM, 4), (_core.CELL_GRU, 3)):
        derive = {"GU": lambda s, g=gates: g * s["U"], "UC": lambda s, c=cell: s["U"] if c == _core.CELL_LSTM else 0,
                  "TWO": lambda s: 2, "S": lambda s, c=cell: size(s, c, False), "W": lambda s, c=cell: size(s, c, True)}
        bias = "TWO,GU" if cell == _core.CELL_GRU else "GU"
        codes = dict(cell=Int(cell, cell), act=Int(_core.ACT_TANH, _core.ACT_TANH), derive=derive)
        rows.append(Row("rnn_scratch_size", **codes))
        for seq in (True, False):
            out = "N,T,U" if seq else "N,U"
            rows.append(Row("rnn_forward", y=Arr(out, True), b=Arr(bias, optional=True), c_last=Arr("N,UC", True, True),
                            c0=Arr("N,UC", optional=True), sequences=Bool(seq), **codes))
            rows.append(Row("rnn_backward", dy=Arr(out), db=Arr(bias, True, True), dc0=Arr("N,UC", True, True),
                            dc_last=Arr("N,UC", optional=True), sequences=Bool(seq), **codes))
    return rows
def _layers16_rows():
    """Issue 16's layers: batch normalization, Keras's relu, upsampling (OH = H·SH), transposed convolution (any
    output plane: the full one is cropped by (PT, PL) and cut or zero-extended)."""
    relu = dict(max_value=Real(0.5, 6.0), negative_slope=Real(0.0, 1.0), threshold=Real(-1.0, 1.0))
    upsample = dict(derive={"OH": lambda s: s["H"] * s["SH"], "OW": lambda s: s["W"] * s["SW"]},
                    ranges={"SH": (1, 3), "SW": (1, 3)})
    transpose = dict(derive={"S": lambda s: _core.conv_transpose2d_scratch_size(
                         tuple(s[k] for k in ("N", "C", "H", "W")), tuple(s[k] for k in ("C", "OC", "KH", "KW")))},
                     ranges={**WINDOW, "PT": (0, 3), "PL": (0, 3)})
    return [Row("batchnorm_forward"), Row("batchnorm_backward"), Row("relu_forward", **relu),
            Row("relu_backward", **relu), Row("upsample2d_forward", **upsample), Row("upsample2d_backward", **upsample),
            Row("conv_transpose2d_scratch_size", ranges=WINDOW), Row("conv_transpose2d_forward", **transpose),
            Row("conv_transpose2d_backward", **transpose)]


SIGNATURES = [
    Row("gemm", trans_a=Bool(False), trans_b=Bool(False)),
    Row("gemm", trans_a=Bool(True), trans_b=Bool(True), a=Arr("K,M"), b=Arr("N,K")),
    Row("_gemm_reference", trans_a=Bool(False), trans_b=Bool(False)),
    Row("_gemm_reference", trans_a=Bool(True), trans_b=Bool(True), a=Arr("K,M"), b=Arr("N,K")),
    *map(Row, ("dense_forward", "dense_backward", "activation_forward", "activation_backward", "softmax_forward",
               "log_softmax_forward", "softmax_backward", "log_softmax_backward", "sparse_cross_entropy_loss",
               "cross_entropy_loss", "binary_cross_entropy_loss", "mse_loss", "multiclass_hinge_loss")),
    # without momentum the buffer may be None; with it, it must be there
    Row("sgd_step", momentum=Real(0, 0), nesterov=Bool(False)),
    Row("sgd_step", buf=Arr("P", True), momentum=Real(0.01, 0.99)),
    Row("adam_step"),
    Row("l2_penalty"),
    *_mlp_rows(),
    *_sparse_rows(),
    *_conv_rows(),
    *_pool_rows(),
    # issue 20: the 2x2 max-pool with window codes (planes of at least 2x2)
    Row("maxpool2x2_forward", derive={"OH": lambda s: s["H"] // 2, "OW": lambda s: s["W"] // 2},
        ranges={"H": (2, 9), "W": (2, 9)}),
    Row("maxpool2x2_backward", derive={"OH": lambda s: s["H"] // 2, "OW": lambda s: s["W"] // 2},
        ranges={"H": (2, 9), "W": (2, 9)}),
    # image: affine warps, one matrix for every image or one each
    Row("affine_transform_forward", order=Int(0, 1), fill=Int(0, 2), cval=Real(-2.0, 2.0),
        derive={"M": lambda s: 1, "2": lambda s: 2, "3": lambda s: 3}),
    Row("affine_transform_forward", order=Int(0, 1), fill=Int(0, 2), cval=Real(-2.0, 2.0),
        derive={"M": lambda s: s["N"], "2": lambda s: 2, "3": lambda s: 3}),
    # random warp matrices (warp_matrix.c): rotation has one draw an image, zoom one or two, translation two
    Row("warp_matrix_forward", kind=Int(0, 0), h=Int(1, 64), w=Int(1, 64),
        derive={"K": lambda s: 1, "2": lambda s: 2, "3": lambda s: 3}),
    Row("warp_matrix_forward", kind=Int(1, 1), h=Int(1, 64), w=Int(1, 64), ranges={"K": (1, 2)},
        derive={"2": lambda s: 2, "3": lambda s: 3}),
    Row("warp_matrix_forward", kind=Int(1, 2), h=Int(1, 64), w=Int(1, 64),
        derive={"K": lambda s: 2, "2": lambda s: 2, "3": lambda s: 3}),
    *_layers16_rows(),
    Row("get_num_threads"),
    Row("set_num_threads"),
    # merge (Add, Multiply, Concatenate): the part's columns lie inside the whole's
    *map(Row, ("add_forward", "multiply_forward", "multiply_backward")),
    *(Row(name, derive={"J": lambda s: s["I"] + s["OFF"]}, ranges={"OFF": (0, 9)}, offset=Size("OFF"))
      for name in ("concatenate_forward", "concatenate_backward")),
    *_rnn_rows(),
    Row("embedding_forward"),
    Row("embedding_backward"),
]


def bindings():
    """The callables of cnn._core: its kernels and the tests' reference kernels (constants and the private gemm
    instruction-set switch excluded)."""
    return sorted(n for n in dir(_core) if (not n.startswith("_") or "reference" in n) and callable(getattr(_core, n)))


# ---- drawing ------------------------------------------------------------------------------------------


class RandomPick:
    """Every choice of a case comes from one NumPy generator, so a case is known by its seed."""

    def __init__(self, rng):
        self.rng = rng

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def integer(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def chance(self, p):
        return bool(self.rng.random() < p)

    def real(self, lo, hi):
        return float(self.rng.uniform(lo, hi))


def _values(pick, shape, dtype):
    rng = np.random.default_rng(pick.integer(0, 2**32 - 1))
    return (rng.standard_normal(shape) * pick.choice([1.0, 1e-3, 30.0])).astype(dtype)


class _Sizes(dict):
    """The sizes of a row's symbols, each drawn from the row's ranges (or derived) when first asked for."""

    def __init__(self, row, pick, ranges=None):
        super().__init__()
        self.row, self.pick, self.ranges = row, pick, {**row.ranges, **(ranges or {})}

    def __missing__(self, sym):
        if sym == "*":
            value = tuple(self.pick.integer(1, 5) for _ in range(self.pick.integer(1, 4)))
        elif sym in self.row.derive:
            value = self.row.derive[sym](self)
        elif "·" in sym:  # a product of sizes: a bound on plane indices
            value = int(np.prod([self[part] for part in sym.split("·")]))
        else:
            value = self.pick.integer(*self.ranges.get(sym, (1, 9)))
        self[sym] = value
        return value


def _draw(row, pick, dtype, ranges=None):
    """(arguments the binding must accept, the sizes drawn for the row's symbols); ranges override the row's."""
    sizes = _Sizes(row, pick, ranges)

    def dims(spec):
        return sizes["*"] if spec == "*" else tuple(sizes[sym] for sym in spec.split(","))

    def value(a):
        if isinstance(a, Real):
            return pick.real(a.lo, a.hi)
        if isinstance(a, Int):
            return pick.integer(a.lo, a.hi)
        if isinstance(a, Size):
            return sizes[a.symbol]
        if isinstance(a, Tup):
            return tuple(value(s) for s in a.specs)
        return pick.chance(0.5) if a.value is None else a.value

    args = []
    for a in row.args:
        if isinstance(a, Units):
            args.append(np.array(dims(a.shape), np.int64))
        elif isinstance(a, Arr):
            shape = dims(a.shape)
            empty = 0 in shape or (a.optional and pick.chance(0.25))
            args.append(None if empty else _values(pick, shape, dtype))
        elif isinstance(a, Labels):
            shape, k = dims(a.shape), dims(a.classes)[0]
            args.append(_labels(pick, shape, k))
        elif isinstance(a, Indptr):
            args.append(_indptr(pick, sizes[a.rows], sizes[a.nnz]))
        elif isinstance(a, Bytes):
            args.append(np.random.default_rng(pick.integer(0, 2**32 - 1)).integers(0, 256, dims(a.shape), np.uint8))
        elif isinstance(a, Const):
            args.append(a.value)
        else:
            args.append(value(a))
    return args, sizes


def _labels(pick, shape, k):
    rng = np.random.default_rng(pick.integer(0, 2**32 - 1))
    return rng.integers(0, k, shape, dtype=np.int64)


def _indptr(pick, rows, nnz):
    rng = np.random.default_rng(pick.integer(0, 2**32 - 1))
    return np.concatenate([[0], np.sort(rng.integers(0, nnz + 1, rows - 1)), [nnz]]).astype(np.int64)


def valid_call(row, pick, dtype, ranges=None):
    """A list of arguments that the binding must accept."""
    return _draw(row, pick, dtype, ranges)[0]


# ---- breaking ------------------------------------------------------------------------------------------


def misaligned(arr):
    """The same values, at an address one byte off the dtype's alignment."""
    buf = bytearray(arr.nbytes + 1)
    out = np.frombuffer(buf, arr.dtype, arr.size, offset=1).reshape(arr.shape)
    out[...] = arr
    return out


class Subclass(np.ndarray):
    pass


def _bad_array(pick, arr, dtype):
    kind = pick.choice(["none", "object", "dtype", "rank", "zero", "shape", "strided", "fortran", "readonly",
                        "misaligned", "nonfinite", "huge", "list", "scalar", "subclass"])
    if kind == "none":
        return None
    if kind == "object":
        return pick.choice([1.0, "x", b"\0" * 8, object(), np.float64(1.0)])
    if kind == "list":
        return arr.tolist()
    if kind == "scalar":
        return np.array(1.0, dtype)
    if kind == "dtype":
        bad = pick.choice([np.int32, np.int64, np.float16, np.complex64, np.complex128, object, bool, np.uint8,
                           np.float32, np.float64, np.longdouble])
        return arr.astype(bad)
    if kind == "rank":
        return np.ones(tuple(pick.integer(1, 4) for _ in range(pick.integer(0, 5))), arr.dtype)
    if kind == "zero":
        shape = list(arr.shape) or [1]
        shape[pick.integer(0, len(shape) - 1)] = 0
        return np.zeros(shape, arr.dtype)
    if kind == "shape":
        shape = list(arr.shape) or [1]
        i = pick.integer(0, len(shape) - 1)
        shape[i] = max(1, shape[i] + pick.choice([-1, 1, 2]))
        return np.ones(shape, arr.dtype)
    if kind == "strided":
        wide = np.repeat(arr[..., None], 2, axis=-1).reshape(arr.shape[:-1] + (2 * arr.shape[-1],)) if arr.ndim else arr
        return wide[..., ::2] if arr.ndim else arr
    if kind == "fortran":
        return np.asfortranarray(arr.T.copy()).T if arr.ndim >= 2 else np.asfortranarray(arr)
    if kind == "readonly":
        out = arr.copy()
        out.setflags(write=False)
        return out
    if kind == "misaligned":
        return misaligned(arr)
    if kind == "nonfinite":
        out = arr.astype(arr.dtype if arr.dtype.kind == "f" else dtype, copy=True)
        out.reshape(-1)[pick.integer(0, out.size - 1)] = pick.choice([np.nan, np.inf, -np.inf])
        if pick.chance(0.3):
            out[...] = pick.choice([np.nan, np.inf, -np.inf, np.finfo(out.dtype).max])
        return out
    if kind == "huge":
        shape = list(arr.shape) or [1]
        shape[pick.integer(0, len(shape) - 1)] = pick.choice([2**31, 2**31 - 1, 2**40])
        return np.broadcast_to(np.zeros(1, arr.dtype), shape)  # stride 0: no memory behind the size
    return arr.copy().view(Subclass)


def _bad_labels(pick, labels, k):
    kind = pick.choice(["range", "dtype", "shape", "array"])
    out = labels.copy()
    if kind == "range":
        out.reshape(-1)[pick.integer(0, out.size - 1)] = pick.choice([-1, k, k + 1, 2**62, -2**63])
        return out
    if kind == "dtype":
        return out.astype(pick.choice([np.int32, np.float64, np.uint64, np.int8]))
    if kind == "shape":
        return np.zeros(out.size + pick.choice([-1, 1]), np.int64)
    return _bad_array(pick, out, np.float64)


def _bad_units(pick, units):
    """Layer widths at the boundaries: one width, every width, or 257 of them, huge or negative."""
    kind = pick.choice(["one", "all", "wide", "long", "other"])
    if kind == "other":
        return _bad_labels(pick, units, 1)  # zero or negative widths, other dtypes and shapes
    out = units.copy()
    big = [v for v in BOUNDARY if -2**63 <= v < 2**63]
    if kind == "one":
        out[pick.integer(0, out.size - 1)] = pick.choice(big)
    elif kind == "all":
        out[...] = pick.choice([INT_MAX, 2**31, 2**62])
    elif kind == "wide":  # a tiny input and output around huge hidden layers: the counts overflow, not the arrays
        out[1:-1] = INT_MAX
    else:
        out = np.full(pick.choice([257, 258]), pick.choice([1, INT_MAX]), np.int64)
    return out


def _bad_scalar(pick, spec, valid=None):
    if isinstance(spec, Size):
        # 0 and -1 break every stride, pad, dilation and group count; 2 breaks some; the boundaries test the sizes
        return pick.choice([0, 1, 2, *BOUNDARY]) if pick.chance(0.5) else pick.integer(0, 1)
    if isinstance(spec, Tup) and pick.chance(0.7):
        out = list(valid)
        if pick.chance(0.2):
            return tuple(out[:-1]) if pick.chance(0.5) else tuple(out + [1])
        i = pick.integer(0, len(out) - 1)
        out[i] = _bad_scalar(pick, spec.specs[i], out[i])
        return tuple(out)
    if isinstance(spec, Real):
        return pick.choice([np.nan, np.inf, -np.inf, -1.0, -1e-300, 1e308, 2.0, "1.0", None, 1j, np.float32(0.5),
                            [0.5], np.array([0.5, 0.5])])
    if isinstance(spec, Int):
        return pick.choice([spec.lo - 1, spec.hi + 1, *BOUNDARY, -INT_MAX - 1, -2**31 - 1, 1.5, None, "1",
                            np.int64(1), True, [1]])
    return pick.choice([None, 2, "", np.array([1, 2]), np.nan, object()])


def _alias(pick, args):
    """Two same-sized arrays of the call made to share memory: the very same array, or shifted by one element."""
    arrays = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    pairs = [(i, j) for i in arrays for j in arrays if i < j and args[i].shape == args[j].shape]
    if not pairs:
        return
    i, j = pick.choice(pairs)
    if pick.chance(0.5):
        args[i] = args[j]
        return
    buf = np.concatenate([args[i].reshape(-1), args[j].reshape(-1)[-1:]])
    args[i], args[j] = buf[:-1].reshape(args[i].shape), buf[1:].reshape(args[j].shape)


def broken_call(row, pick, dtype):
    """A valid call with one or more arguments spoiled (or the argument count changed)."""
    valid, sizes = _draw(row, pick, dtype)
    args = list(valid)
    if not args or pick.chance(0.05):
        cut = pick.integer(0, len(args) + 2)
        return args[:cut] if cut <= len(args) else args + [None] * (cut - len(args))
    for _ in range(pick.choice([1, 1, 1, 2, 3])):
        if pick.chance(0.1):
            _alias(pick, args)
            continue
        i = pick.integer(0, len(args) - 1)
        spec = row.args[i]
        if isinstance(spec, Labels):
            args[i] = _bad_labels(pick, valid[i], sizes[spec.classes])
        elif isinstance(spec, Units):
            args[i] = _bad_units(pick, valid[i])
        elif isinstance(spec, Arr):
            base = valid[i] if valid[i] is not None else _values(pick, (2, 3), dtype)
            args[i] = _bad_array(pick, base, dtype)
        elif isinstance(spec, Bytes):
            args[i] = _bad_array(pick, valid[i], dtype)
        elif isinstance(spec, Indptr):  # out of range, decreasing, the wrong length or type
            args[i] = _bad_labels(pick, valid[i][::-1].copy() if pick.chance(0.3) else valid[i], sizes[spec.nnz] + 1)
        elif isinstance(spec, Const):
            args[i] = _bad_scalar(pick, spec)
        else:
            args[i] = _bad_scalar(pick, spec, valid[i])
    if pick.chance(0.1) and len(args) > row.first_optional:
        args = args[:pick.integer(row.first_optional, len(args))]
    return args


def call(row, args):
    """Call the binding; the threads setting is put back so fuzzing leaves no trace."""
    threads = _core.get_num_threads()
    try:
        return getattr(_core, row.name)(*args)
    finally:
        _core.set_num_threads(threads)


def fuzz_case(row, pick):
    """One random call: a valid one must succeed; a broken one may only raise the allowed errors."""
    dtype = pick.choice([np.float32, np.float64])
    if pick.chance(0.15):
        call(row, valid_call(row, pick, dtype))
        return
    try:
        call(row, broken_call(row, pick, dtype))
    except ALLOWED_ERRORS:
        pass


# ---- a second thread --------------------------------------------------------------------------------


class Mutator:
    """A second Python thread that rewrites every array argument of the call in flight, in a tight loop, while
    the binding checks it and while its kernel runs without the GIL: floats to NaN, ±inf, huge and ordinary
    values; integer arrays (labels, argmax, order, units) to out-of-range indices (-1, 2**62, the dtype's
    extremes) and back to 0, a valid index. Use as a context manager; aim() names the next call's arguments."""

    FLOATS = (np.nan, 0.5, np.inf, -1.0, -np.inf, 1e30)

    def __init__(self):
        self.arrays, self.stop = [], False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)  # hand the GIL over often: the writes land between check and kernel
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        sys.setswitchinterval(self.switch)

    def aim(self, args):
        self.arrays = [a for a in args if isinstance(a, np.ndarray) and a.flags.writeable and a.size
                       and (a.dtype.kind == "i" or a.dtype in (np.float32, np.float64))]

    def _run(self):
        turn = 0
        while not self.stop:
            for a in self.arrays:
                if a.dtype.kind == "f":
                    a[...] = self.FLOATS[turn % len(self.FLOATS)]
                else:
                    info = np.iinfo(a.dtype)
                    a[...] = (-1, min(2**62, info.max), 0, info.max, info.min, 0)[turn % 6]
            turn += 1


def _long_call(row):
    """Larger batches (or pooled channels) for a row that takes an index array: under the mutator, a kernel
    that runs some microseconds gives the second thread time to write while it reads (a tiny call is over
    before the thread holds the GIL). Other rows keep their sizes: the suite stays fast."""
    if not any(isinstance(a, Labels) for a in row.args):
        return None
    return {"C": (1, 256)} if "N" in row.ranges else {"N": (1, 5000)}


def hostile_case(row, pick, mutator):
    """A valid call (or now and then a broken one) whose arrays the mutator rewrites during the call: it may
    only raise the allowed errors (a bad index is refused with a ValueError), never crash."""
    dtype = pick.choice([np.float32, np.float64])
    args = valid_call(row, pick, dtype, _long_call(row)) if pick.chance(0.8) else broken_call(row, pick, dtype)
    mutator.aim(args)
    try:
        call(row, args)
    except ALLOWED_ERRORS:
        pass
    finally:
        mutator.aim(())


def crash_run(cases, seed, hostile=False):
    """Many fuzz cases over every row (run in a subprocess: a crash shows as its exit status); with hostile,
    a second thread rewrites every array argument during each call."""
    pick = RandomPick(np.random.default_rng(seed))
    if hostile:
        with Mutator() as mutator:
            for i in range(cases):
                hostile_case(SIGNATURES[i % len(SIGNATURES)], pick, mutator)
    else:
        for i in range(cases):
            fuzz_case(SIGNATURES[i % len(SIGNATURES)], pick)
    print(f"{cases} cases, no crash")


def run_python(code, timeout=300):
    """Run code in a child Python that imports the very cnn this process tests (installed, or python/ on
    PYTHONPATH) and these helpers: a segfault or abort there shows as its exit status, not as a dead suite."""
    import cnn

    here = os.path.dirname(os.path.dirname(os.path.abspath(cnn.__file__)))
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, here] + sys.path))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
