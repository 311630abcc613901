"""Bad input to the foundation's bindings raises TypeError/ValueError naming the function; one named
case per kind of fault. test_fuzz_core.py covers every binding (from core_signatures.py) at random."""
import numpy as np
import pytest

import cnn
from cnn import _core
from core_signatures import bindings, signature

F64 = np.float64


def good_calls():
    """name -> (function, a valid argument tuple, index of a float array argument to corrupt)."""
    x, w, b = np.ones((4, 3)), np.ones((3, 2)), np.ones(2)
    y, labels, p = np.ones((4, 2)), np.array([0, 1, 1, 0]), np.ones(5)
    return {
        "gemm": (_core.gemm, (np.empty((4, 2)), x, w), 1),
        "dense_forward": (_core.dense_forward, (np.empty((4, 2)), x, w, b), 1),
        "dense_backward": (_core.dense_backward, (np.empty((4, 3)), np.zeros((3, 2)), np.zeros(2), y, x, w), 3),
        "activation_forward": (_core.activation_forward, (np.empty((4, 3)), x, _core.ACT_TANH), 1),
        "activation_backward": (_core.activation_backward, (np.empty((4, 3)), x, x, x, _core.ACT_TANH), 1),
        "softmax_forward": (_core.softmax_forward, (np.empty((4, 3)), x), 1),
        "log_softmax_forward": (_core.log_softmax_forward, (np.empty((4, 3)), x), 1),
        "softmax_backward": (_core.softmax_backward, (np.empty((4, 3)), x, x), 1),
        "log_softmax_backward": (_core.log_softmax_backward, (np.empty((4, 3)), x, x), 1),
        "sparse_cross_entropy_loss": (_core.sparse_cross_entropy_loss, (np.empty((4, 2)), y, labels), 1),
        "cross_entropy_loss": (_core.cross_entropy_loss, (np.empty((4, 2)), y, y), 1),
        "binary_cross_entropy_loss": (_core.binary_cross_entropy_loss, (np.empty((4, 2)), y, y * 0.5), 1),
        "mse_loss": (_core.mse_loss, (np.empty((4, 2)), y, y), 1),
        "multiclass_hinge_loss": (_core.multiclass_hinge_loss, (np.empty((4, 2)), y, labels), 1),
        "sgd_step": (_core.sgd_step, (p.copy(), np.zeros(5), p, 0.1, 0.9, 0.0, 0.0, True, True, 0), 2),
        "adam_step": (_core.adam_step, (p.copy(), np.zeros(5), np.zeros(5), p, 0.1, 0.9, 0.999, 1e-8, 0.0,
                                        False, 1, 0), 3),
        "l2_penalty": (_core.l2_penalty, (np.zeros(5), p, 0.1), 1),
        # merge (Add, Multiply, Concatenate)
        "add_forward": (_core.add_forward, (np.empty((4, 3)), x, x.copy()), 1),
        "multiply_forward": (_core.multiply_forward, (np.empty((4, 3)), x, x.copy()), 2),
        "multiply_backward": (_core.multiply_backward, (np.empty((4, 3)), np.empty((4, 3)), x, x.copy(), x.copy()),
                              2),
        "concatenate_forward": (_core.concatenate_forward, (np.empty((4, 5)), x, 1), 1),
        "concatenate_backward": (_core.concatenate_backward, (np.empty((4, 3)), np.ones((4, 5)), 2), 1),
        **mlp_calls(),
        **sparse_calls(),
    }


def mlp_calls():
    """A 3-4-2 network on 4 rows; its arrays are fresh so a corrupted copy never aliases another's."""
    units, y, csr = np.array([3, 4, 2]), np.zeros((4, 2)), csr_parts()
    count, work = 4 * 4 + 5 * 2, np.zeros(_core.mlp_workspace_size(units, 4, True))
    net = (units, _core.ACT_TANH, _core.MLP_OUT_SOFTMAX)
    return {  # with a CSR x (its data in x's place), and weighted where the kernel takes sample weights
        "mlp_forward": (_core.mlp_forward, (np.empty((4, 2)), work.copy(), np.ones(count), csr[0], *net, *csr[1:]), 3),
        "mlp_loss_grad": (_core.mlp_loss_grad, (np.empty(count), work.copy(), np.ones(count), csr[0], y, *net, 1e-4,
                                                np.ones(4), *csr[1:]), 3),
        "mlp_epoch": (_core.mlp_epoch, (np.ones(count), np.zeros(count), np.empty(count), work.copy(), csr[0], y,
                                        np.arange(4), *net, 1e-4, 4, 0, 1,
                                        (False, 0.1, 0.9, True, 0.9, 0.999, 1e-8, 0), np.ones(4), *csr[1:]), 4),
    }


def sparse_calls():
    """The CSR of x = [[1 0 0], [0 0 2], [0 0 0], [3 0 4]] (one empty row) with dense (3, 2) weights."""
    return {
        "sparse_forward": (_core.sparse_forward, (np.empty((4, 2)), *csr_parts(), np.ones((3, 2)), np.ones(2)), 4),
        "sparse_backward": (_core.sparse_backward, (np.zeros((3, 2)), np.zeros(2), np.ones((4, 2)), *csr_parts()), 2),
    }


def csr_parts():
    return np.array([1.0, 2, 3, 4]), np.array([0, 2, 0, 2]), np.array([0, 1, 2, 2, 4])


CALLS = good_calls()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_valid_call_works(name):
    fn, args, _ = CALLS[name]
    fn(*args)


def corrupt(args, i, value):
    args = list(args)
    args[i] = value
    return tuple(args)


BAD_ARRAYS = {
    "wrong dtype": (lambda a: a.astype(np.int64), TypeError),
    "float16": (lambda a: a.astype(np.float16), TypeError),
    "complex": (lambda a: a.astype(np.complex128), TypeError),
    "object": (lambda a: a.astype(object), TypeError),
    "a list": (lambda a: a.tolist(), TypeError),
    "None": (lambda a: None, TypeError),
    "wrong rank": (lambda a: a.reshape(a.shape + (1,)), ValueError),
    "rank 0": (lambda a: np.array(1.0), ValueError),
    "mismatched shape": (lambda a: np.ones(tuple(d + 1 for d in a.shape)), ValueError),
    "non-contiguous": (lambda a: np.repeat(a, 2, axis=-1)[..., ::2], ValueError),
    "empty": (lambda a: np.ones((0,) + a.shape[1:]), ValueError),
    "misaligned": (lambda a: np.frombuffer(b"\0" + np.ascontiguousarray(a).tobytes(), F64, a.size, 1).reshape(a.shape),
                   ValueError),
    "byte-swapped": (lambda a: a.astype(a.dtype.newbyteorder("S")), TypeError),  # its bytes are not native numbers
}


@pytest.mark.parametrize("how", sorted(BAD_ARRAYS))
@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_array_raises(name, how):
    fn, args, i = CALLS[name]
    make, error = BAD_ARRAYS[how]
    bad = make(args[i])
    if how == "non-contiguous":
        assert not bad.flags.c_contiguous  # every case's array is wide enough for a strided view
    with pytest.raises((TypeError, ValueError)) as info:
        fn(*corrupt(args, i, bad))
    assert name in str(info.value) or how in ("wrong rank",)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_read_only_output_raises(name):
    fn, args, _ = CALLS[name]
    out = args[0]
    assert isinstance(out, np.ndarray)  # every binding listed here writes its first argument
    ro = out.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        fn(*corrupt(args, 0, ro))


def test_overlapping_output_raises():
    x, w = np.ones((4, 4)), np.ones((4, 4))
    with pytest.raises(ValueError, match="must not overlap"):
        _core.dense_forward(x, x, w, None)
    with pytest.raises(ValueError, match="must not overlap"):
        _core.gemm(w, x, w)


def test_bad_scalars_raise():
    p = np.ones(3)
    with pytest.raises(ValueError, match="'buf'"):
        _core.sgd_step(p, None, p.copy(), 0.1, 0.9, 0.0, 0.0, False, True, 0)
    with pytest.raises(ValueError, match="'variant'"):
        _core.sgd_step(p, None, p.copy(), 0.1, 0.0, 0.0, 0.0, False, True, 7)
    with pytest.raises(ValueError, match="'t'"):
        _core.adam_step(p, p * 0, p * 0, p.copy(), 0.1, 0.9, 0.999, 1e-8, 0.0, False, 0, 0)
    with pytest.raises(ValueError, match="'n'"):
        _core.set_num_threads(0)
    with pytest.raises(TypeError):
        _core.dense_forward(1, 2)


def test_hyperparameters_are_checked_where_the_optimizer_is_made():
    """The bindings check memory only: a learning rate or a beta's meaning is the optimizer's to check."""
    with pytest.raises(TypeError, match="learning_rate must be a finite number"):
        cnn.optimizers.SGD(float("nan"))
    with pytest.raises(ValueError, match="beta_1 must be < 1"):
        cnn.optimizers.Adam(beta_1=1.0)


# ---- the docstrings state the signatures -------------------------------------------------------------------


@pytest.mark.parametrize("name", bindings())
def test_a_wrong_argument_count_names_the_function(name):
    """Too few arguments and one too many: a TypeError whose message opens with the function's name (CPython
    qualifies it with the module for a function of no arguments)."""
    args = signature(name)
    required = sum(not arg.default for arg in args)  # the docstring's defaults are the optional ones
    counts = [len(args) + 1] + ([required - 1] if required else [])
    for count in counts:
        with pytest.raises(TypeError, match=rf"^(cnn\._core\.)?{name}\(\) takes"):
            getattr(_core, name)(*[None] * count)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_the_docstring_names_every_array_as_the_errors_do(name):
    """Each array argument in turn is given a string: the error names the argument as the docstring does."""
    fn, args, _ = CALLS[name]
    arrays = [(i, arg.name) for i, arg in enumerate(signature(name)) if arg.kind in ("real", "int64")]
    assert len(arrays) == sum(isinstance(a, np.ndarray) for a in args)
    for i, arg in arrays:
        with pytest.raises((TypeError, ValueError), match=rf"^{name}: argument '{arg}' "):
            fn(*corrupt(args, i, "not an array"))
