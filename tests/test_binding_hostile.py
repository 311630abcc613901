"""The binding off the happy path: another thread writing an index array during the call, sizes at the int32
and int64 boundaries, arrays in the other byte order, NaN through the losses. Each case here once crashed or
answered wrongly without a word. No torch: this file also runs under AddressSanitizer (tests/sanitize.sh)."""
import warnings

import numpy as np
import pytest

from cnn import _core
from core_signatures import INT_MAX, SIGNATURES, RandomPick, run_python, valid_call

# ---- a second thread writing an index array while the kernel runs ------------------------------------------

# A child process calls one binding for RACE_SECONDS while a thread flips the back half of its index array
# between the valid indices and out-of-range ones (2**62, -1). The binding checks the indices while it holds
# the GIL and the kernel runs without it, so the kernel must read only what was checked: every call either
# raises a ValueError naming the array or gives exactly the answer of the valid indices. Reading the array
# itself again, the kernel crashed (2**62) or read a neighbouring row (-1).
RACE_SECONDS = 0.6
RACE = """
import sys, threading, time
import numpy as np
from cnn import _core
rng = np.random.default_rng(0)
{setup}
good = index.copy()
ref = call()
stop = False

def writer():
    half, turn = index.size // 2, 0
    flat = index.reshape(-1)
    while not stop:
        flat[half:] = (2**62, -1)[turn % 2]
        flat[half:] = good.reshape(-1)[half:]
        turn += 1

sys.setswitchinterval(1e-6)
thread = threading.Thread(target=writer)
thread.start()
answered = refused = 0
end = time.perf_counter() + {seconds}
try:
    while time.perf_counter() < end:
        try:
            result = call()
        except ValueError as e:
            assert "'{name}'" in str(e), str(e)
            refused += 1
            continue
        assert all(np.array_equal(a, b) for a, b in zip(result, ref)), "the kernel read indices it did not check"
        answered += 1
finally:
    stop = True
    thread.join()
print("answered", answered, "refused", refused)
"""

RACES = {
    "sparse_cross_entropy_loss": ("labels", """
x = rng.standard_normal((20000, 10))
index = rng.integers(0, 10, 20000)
dx = np.empty_like(x)
def call():
    return _core.sparse_cross_entropy_loss(dx, x, index), dx.copy()
"""),
    "multiclass_hinge_loss": ("labels", """
x = rng.standard_normal((20000, 10))
index = rng.integers(0, 10, 20000)
dx = np.empty_like(x)
def call():
    return _core.multiclass_hinge_loss(dx, x, index, 1.0), dx.copy()
"""),
    "maxpool2d_backward": ("argmax", """
geometry = ((2, 2), (2, 2), (0, 0, 0, 0))
x = rng.standard_normal((16, 16, 32, 32)).astype(np.float32)
y, index = np.empty((16, 16, 16, 16), np.float32), np.empty((16, 16, 16, 16), np.int64)
_core.maxpool2d_forward(y, index, x, *geometry)
dy, dx = rng.standard_normal(y.shape).astype(np.float32), np.empty_like(x)
def call():
    _core.maxpool2d_backward(dx, dy, index, *geometry)
    return (dx.copy(),)
"""),
    "mlp_epoch": ("order", """
n, batch, units = 20000, 500, np.array([8, 16, 3])
x, y = rng.standard_normal((n, 8)), np.eye(3)[rng.integers(0, 3, n)]
index = rng.permutation(n)
count = 9 * 16 + 17 * 3
p0, grad = rng.standard_normal(count) * 0.1, np.empty(count)
work = np.empty(_core.mlp_workspace_size(units, batch, True))
def call():
    p, state = p0.copy(), np.zeros(count)
    total, t = _core.mlp_epoch(p, state, grad, work, x, y, index, units, _core.ACT_RELU, _core.MLP_OUT_SOFTMAX,
                               1e-4, batch, 0, n // batch, (False, 0.1, 0.9, True, 0.9, 0.999, 1e-8, 0))
    return total, p
"""),
    # the CSR's column indices and its row offsets, each in turn (index is the array written)
    "sparse_forward": ("indices", """
n, cols = 4000, 300
indptr = np.arange(0, 5 * n + 1, 5)
index, data = rng.integers(0, cols, 5 * n), rng.standard_normal(5 * n)
w, out = rng.standard_normal((cols, 64)), np.empty((n, 64))
def call():
    _core.sparse_forward(out, data, index, indptr, w, None)
    return (out.copy(),)
"""),
    "sparse_backward": ("indptr", """
n, cols = 4000, 300
index = np.arange(0, 5 * n + 1, 5)
indices, data = rng.integers(0, cols, 5 * n), rng.standard_normal(5 * n)
dw, dy = np.empty((cols, 64)), rng.standard_normal((n, 64))
def call():
    _core.sparse_backward(dw, None, dy, data, indices, index, False)
    return (dw.copy(),)
"""),
    "mlp_epoch (CSR x)": ("indices", """
n, batch, units = 4000, 100, np.array([300, 16, 3])
indptr = np.arange(0, 5 * n + 1, 5)
index, data = rng.integers(0, 300, 5 * n), rng.standard_normal(5 * n)
y = np.eye(3)[rng.integers(0, 3, n)]
count = 301 * 16 + 17 * 3
p0, grad = rng.standard_normal(count) * 0.1, np.empty(count)
work = np.empty(_core.mlp_workspace_size(units, batch, True, True))
def call():
    p, state = p0.copy(), np.zeros(count)
    total, t = _core.mlp_epoch(p, state, grad, work, data, y, None, units, _core.ACT_RELU, _core.MLP_OUT_SOFTMAX,
                               1e-4, batch, 0, n // batch, (False, 0.1, 0.9, True, 0.9, 0.999, 1e-8, 0), None, index,
                               indptr)
    return total, p
"""),
}


@pytest.mark.parametrize("binding", sorted(RACES))
def test_index_array_written_during_the_call(binding):
    name, setup = RACES[binding]
    proc = run_python(RACE.format(setup=setup, name=name, seconds=RACE_SECONDS), timeout=120)
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    answered = int(proc.stdout.split()[1])
    assert answered > 0, proc.stdout  # the valid indices were seen, and gave the valid answer


# ---- sizes at the int32 and int64 boundaries -------------------------------------------------------------------


def test_mlp_counts_that_overflow_are_refused_naming_units():
    # (2**31 - 1 + 1)·(2**31 - 1) parameters: the width + 1 overflowed int, and the count wrapped
    with pytest.raises(ValueError, match="'units'.*parameters"):
        _core.mlp_workspace_size(np.array([1, INT_MAX, INT_MAX]), 1, False)
    # 257 widths of 2**31 - 1 for 2**31 - 1 rows: about 2**72 reals of workspace wrapped around 2**64
    with pytest.raises(ValueError, match="'units'"):
        _core.mlp_workspace_size(np.array([1] + [INT_MAX] * 255 + [1]), INT_MAX, True)
    with pytest.raises(ValueError, match="'units' and 'n'.*workspace"):
        _core.mlp_workspace_size(np.array([1, 2**30, 1]), INT_MAX, True)


def test_mlp_counts_at_the_int32_boundary_are_exact():
    units = np.array([5, INT_MAX, 3])
    # 2·(hidden + out) + in + out rows of scratch: computed in size_t, not wrapped in int
    assert _core.mlp_workspace_size(units, 100, True) == 100 * (2 * (INT_MAX + 3) + 5 + 3 + 1)
    assert _core.mlp_workspace_size(units, 7, False) == 7 * INT_MAX
    # params must hold (in + 1)·hidden + (hidden + 1)·out, not that count after hidden + 1 wrapped in int
    count = (1 + 1) * INT_MAX + (INT_MAX + 1) * 1
    with pytest.raises(ValueError, match=rf"'params' must have shape \({count},\)"):
        _core.mlp_forward(np.empty((1, 1)), np.empty(8), np.empty(3), np.ones((1, 1)), np.array([1, INT_MAX, 1]),
                          _core.ACT_RELU, _core.MLP_OUT_IDENTITY)


@pytest.mark.parametrize("k", [46341, INT_MAX])
def test_average_pool_divisor_of_a_huge_window(k):
    """A window of k·k cells, k·k > 2**31 - 1, around a single real cell: with count_include_pad the value is
    divided by k·k (as int, the product wrapped negative or to 1)."""
    x, y, dx = np.ones((1, 1, 1, 1)), np.empty((1, 1, 1, 1)), np.empty((1, 1, 1, 1))
    geometry = ((k, k), (1, 1), (k // 2,) * 4)
    _core.avgpool2d_forward(y, x, *geometry, True)
    assert y[0, 0, 0, 0] == 1.0 / (float(k) * k)
    _core.avgpool2d_backward(dx, np.full((1, 1, 1, 1), 2.0), *geometry, True)
    assert dx[0, 0, 0, 0] == 2.0 / (float(k) * k)
    _core.avgpool2d_forward(y, x, *geometry, False)  # only the real cell counts
    assert y[0, 0, 0, 0] == 1.0


def test_conv_scratch_that_overflows_is_refused():
    # 16 chunks of an (2**31 - 1)·(2**31 - 1) weight gradient: about 2**66 elements, which wrapped around 2**64
    shape_x, shape_w = (16, INT_MAX, 1, 1), (INT_MAX, INT_MAX, 1, 1)
    with pytest.raises(ValueError, match="'x_shape' and 'w_shape'"):
        _core.conv2d_scratch_size(shape_x, shape_w, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    # one chunk of it fits in size_t but is no array either
    with pytest.raises(ValueError, match="'x_shape' and 'w_shape'"):
        _core.conv2d_scratch_size((1, INT_MAX, 1, 1), shape_w, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    # a tile of 256 output positions' columns (rows 256 + 16 apart), never the whole (INT_MAX - 1)-row sample's
    assert _core.conv2d_scratch_size((1, 1, INT_MAX, 1), (1, 1, 2, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1) == \
        2 * (256 + 16) + 2


# ---- byte order --------------------------------------------------------------------------------------------------


def swapped(a):
    return a.astype(a.dtype.newbyteorder("S"))


CALLS = [(row, valid_call(row, RandomPick(np.random.default_rng(1)), np.float32)) for row in SIGNATURES]


@pytest.mark.parametrize("row,args", [pytest.param(r, a, id=f"{r.name}-{i}") for i, (r, a) in enumerate(CALLS)
                                      if any(isinstance(v, np.ndarray) for v in a)])
def test_byte_swapped_arrays_are_refused(row, args):
    """Every array argument of every binding, in turn, in the other byte order: a TypeError that names the
    function, says native byte order was expected and which order came (the kernels read such bytes as native)."""
    for i, a in enumerate(args):
        if not isinstance(a, np.ndarray) or a.dtype.itemsize == 1:  # a byte has no order (maxpool2x2's codes)
            continue
        bad = list(args)
        bad[i] = swapped(a)
        with pytest.raises(TypeError, match=rf"{row.name}: argument '\w+' must have dtype \w+ in native byte "
                                            rf"order .*got the byte-swapped '>{a.dtype.kind}{a.dtype.itemsize}'"):
            getattr(_core, row.name)(*bad)


def test_public_api_converts_byte_swapped_input():
    """Sequential and MLPClassifier take '>f4'/'>f8' data (and '>i8' labels) and give the very same results as
    with native arrays."""
    import cnn
    from cnn.layers import Dense, Input

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((40, 5)).astype(np.float32), rng.integers(0, 3, 40)

    def sequential(x, y):
        model = cnn.Sequential([Input((5,)), Dense(4, activation="relu"), Dense(3, activation="softmax")], seed=1)
        model.compile(cnn.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        return model.predict(x, verbose=0), model.predict(swapped(x), verbose=0)

    for predicted in sequential(x, y)[1:] + sequential(swapped(x), swapped(y)):
        np.testing.assert_array_equal(predicted, sequential(x, y)[0])
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning

    from cnn.sklearn import MLPClassifier

    def mlp(x, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # five iterations are enough to compare
            clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(x, y)
        return clf.predict_proba(x), clf.predict(swapped(x)), *clf.coefs_

    native, theirs = mlp(x.astype(np.float64), y), mlp(swapped(x.astype(np.float64)), swapped(y))
    for a, b in zip(native, theirs):
        np.testing.assert_array_equal(a, b)


# ---- NaN through the losses ----------------------------------------------------------------------------------------

LOSSES = ["sparse_cross_entropy_loss", "cross_entropy_loss", "binary_cross_entropy_loss", "mse_loss",
          "multiclass_hinge_loss"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", LOSSES)
def test_a_nan_logit_makes_the_loss_nan(name, dtype):
    """One NaN logit: the loss is NaN and so is its row of the gradient; the other rows keep their finite
    gradient. (The hinge loss skipped it: NaN > 0 is false, so the loss came out finite. PyTorch's
    multi_margin_loss does the same; a silent finite loss hides the NaN, so ours says NaN.)"""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3)).astype(dtype)
    x[1, 2] = np.nan
    labels = np.array([0, 0, 1, 2])
    sparse = name in ("sparse_cross_entropy_loss", "multiclass_hinge_loss")
    target = labels if sparse else np.eye(3, dtype=dtype)[labels]
    dx = np.empty_like(x)
    assert np.isnan(getattr(_core, name)(dx, x, target))
    assert np.isnan(dx[1]).any() and np.isnan(dx[1, 2])
    assert np.isfinite(dx[[0, 2, 3]]).all()
    if name == "multiclass_hinge_loss":
        assert np.isnan(dx[1, 0])  # the label's entry sums the row


def test_adam_step_count_at_the_int64_boundary():
    """mlp_epoch advances Adam's step count once a batch: from 2**63 - 1 it overflowed (to -2**63 under -fwrapv)."""
    units, x, y = np.array([2, 2]), np.ones((4, 2)), np.zeros((4, 2))
    work = np.empty(_core.mlp_workspace_size(units, 2, True))

    def epoch(t):
        return _core.mlp_epoch(np.zeros(6), np.zeros(12), np.empty(6), work, x, y, None, units, 0, 0, 0.0, 2, 0, 2,
                               (True, 0.1, 0.9, False, 0.9, 0.999, 1e-8, t))

    assert epoch(2**63 - 3)[1] == 2**63 - 1
    with pytest.raises(ValueError, match=r"step count 't' must lie in \[0, 9223372036854775805\] for 2 batches"):
        epoch(2**63 - 2)
