"""Add, Multiply and Concatenate (merge.c) against PyTorch: forward and every input's gradient, float64 tight and
float32 loose, on odd shapes with batch 1; central differences in float64; the worked example; refusals."""
import numpy as np
import pytest
import torch

from cnn import _core
from cnn.layers import Add, Concatenate, Input, Multiply

TOL = {np.float64: 1e-12, np.float32: 1e-6}  # element-wise sums and products: a few roundings at most


def run(layer, xs, dy):
    """The layer's forward and input gradients on arrays, built for their shapes."""
    layer.build([x.shape[1:] for x in xs])
    y = layer.forward(xs).copy()
    return y, [d.copy() for d in layer.backward(dy)]


def torch_merge(kind, xs, dy, axis=-1):
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    if kind == "add":
        y = ts[0]
        for t in ts[1:]:
            y = y + t
    elif kind == "multiply":
        y = ts[0]
        for t in ts[1:]:
            y = y * t
    else:
        y = torch.cat(ts, dim=axis)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), [t.grad.numpy() for t in ts]


def close(a, b, dtype):
    np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["add", "multiply"])
@pytest.mark.parametrize("shape", [(1, 7), (3, 5), (1, 3, 5, 7), (2, 1, 13, 3)])
@pytest.mark.parametrize("k", [2, 3])
def test_elementwise_merges_match_torch(dtype, kind, shape, k):
    rng = np.random.default_rng(sum(shape) + k)
    xs = [rng.standard_normal(shape).astype(dtype) for _ in range(k)]
    dy = rng.standard_normal(shape).astype(dtype)
    y, dxs = run(Add() if kind == "add" else Multiply(), xs, dy)
    ty, tdxs = torch_merge(kind, xs, dy)
    assert y.dtype == dtype and len(dxs) == k
    close(y, ty, dtype)
    for d, t in zip(dxs, tdxs):
        assert d.shape == shape and d.dtype == dtype
        close(d, t, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shapes, axis", [
    ([(1, 3), (1, 5)], -1), ([(4, 2), (4, 7), (4, 1)], 1),
    ([(1, 2, 5, 3), (1, 3, 5, 3)], 1),  # NCHW channels
    ([(3, 2, 5, 3), (3, 2, 5, 4)], -1),  # width
    ([(2, 3, 1, 5), (2, 3, 4, 5)], 2), ([(2, 3, 4, 5), (2, 3, 4, 2)], 3), ([(5, 3, 2), (5, 3, 7)], -1)])
def test_concatenate_matches_torch(dtype, shapes, axis):
    rng = np.random.default_rng(len(shapes) + axis + 10)
    xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    out_shape = np.concatenate(xs, axis=axis).shape
    dy = rng.standard_normal(out_shape).astype(dtype)
    y, dxs = run(Concatenate(axis=axis), xs, dy)
    ty, tdxs = torch_merge("concatenate", xs, dy, axis)
    np.testing.assert_array_equal(y, ty)  # copies: exact
    for d, t in zip(dxs, tdxs):
        np.testing.assert_array_equal(d, t)


def test_multiply_backward_passes_central_differences():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((2, 3, 5)) for _ in range(3)]
    dy = rng.standard_normal((2, 3, 5))
    layer = Multiply()
    _, dxs = run(layer, xs, dy)
    eps = 1e-6
    for i, x in enumerate(xs):
        numeric = np.empty_like(x)
        for j in np.ndindex(x.shape):
            saved = x[j]
            x[j] = saved + eps
            up = float(np.sum(layer.forward(xs) * dy))
            x[j] = saved - eps
            down = float(np.sum(layer.forward(xs) * dy))
            x[j] = saved
            numeric[j] = (up - down) / (2 * eps)
        np.testing.assert_allclose(dxs[i], numeric, rtol=1e-7, atol=1e-9)


def test_worked_examples():
    # [[1 2]] and [[3]] joined on the last axis: [[1 2 3]]; the backward hands back the same columns
    y, dxs = run(Concatenate(), [np.array([[1.0, 2.0]]), np.array([[3.0]])], np.array([[10.0, 20.0, 30.0]]))
    assert y.tolist() == [[1.0, 2.0, 3.0]] and [d.tolist() for d in dxs] == [[[10.0, 20.0]], [[30.0]]]
    # 2·3·4 = 24; the gradient of x0 is dy·3·4
    y, dxs = run(Multiply(), [np.array([[2.0]]), np.array([[3.0]]), np.array([[4.0]])], np.array([[1.0]]))
    assert y.tolist() == [[24.0]] and [d.item() for d in dxs] == [12.0, 8.0, 6.0]


def test_kernels_write_in_place_where_allowed_and_refuse_bad_offsets():
    a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    _core.add_forward(a, a, b)  # y may be a
    assert a.tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(ValueError, match="concatenate_forward: argument 'offset' must be in \\[0, 2\\]"):
        _core.concatenate_forward(np.empty((2, 5)), b, 3)
    with pytest.raises(ValueError, match="concatenate_backward: argument 'dy' must have shape \\(2, \\?\\)"):
        _core.concatenate_backward(np.empty((2, 3)), np.empty((3, 5)), 0)
    with pytest.raises(ValueError, match="multiply_backward: output 'da' must not overlap input 'dy'"):
        _core.multiply_backward(b, None, b, a, a)
    with pytest.raises(TypeError, match="add_forward: argument 'b' must have dtype float64"):
        _core.add_forward(a, a, b.astype(np.float32))


@pytest.mark.parametrize("make, shapes, match", [
    (Add, [(3,), (4,)], "needs inputs of one shape"),
    (Multiply, [(3, 2), (3,)], "needs inputs of one shape"),
    (lambda: Concatenate(axis=0), [(3,), (3,)], "not the batch, axis 0"),
    (lambda: Concatenate(axis=3), [(3, 2), (3, 2)], "with that axis in it"),
    (lambda: Concatenate(axis=1), [(3, 2), (4, 5)], "agree on every other axis"),
    (lambda: Concatenate(axis=1), [(3, 2), (4,)], "of one rank"),
])
def test_mismatched_inputs_are_refused_naming_the_layer(make, shapes, match):
    layer = make()
    with pytest.raises(ValueError, match=match):
        layer([Input(s) for s in shapes])
    assert not layer.built and not layer._inbound_nodes  # a refused call leaves the layer as it was


def test_merges_take_a_list_and_other_layers_do_not():
    x = Input((3,))
    with pytest.raises(ValueError, match="takes inputs= a list of at least 2 tensors"):
        Add()(x)
    with pytest.raises(ValueError, match="takes inputs= a list of at least 2 tensors"):
        Add()([x])
    with pytest.raises(TypeError, match="takes inputs= symbolic tensors"):
        Add()([x, np.ones((1, 3))])
    with pytest.raises(TypeError, match="axis must be a finite integer"):
        Concatenate(axis=1.5)
    assert Concatenate(axis=1).get_config() == {"axis": 1, "name": "concatenate"}  # named once made, as in Keras
