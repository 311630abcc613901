"""conv_transpose2d and Conv2DTranspose against torch.nn.functional.conv_transpose2d: forward, input, weight and
bias gradients, Keras's output sizes ('valid', 'same', output_padding) and TensorFlow's placement of 'same'."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnn
from cnn import _core
from cnn.layers import Conv2DTranspose
from cnn.layers.conv_transpose import deconv_geometry
from conftest import DTYPES, assert_close, central_differences

# (n, c, h, w, filters, kernel, strides, padding, output_padding)
CASES = [
    (1, 1, 3, 3, 1, (2, 2), (1, 1), "valid", None),
    (2, 3, 4, 5, 2, (3, 3), (2, 2), "same", None),
    (3, 2, 5, 3, 3, (3, 2), (2, 3), "valid", None),
    (1, 4, 3, 4, 5, (1, 1), (3, 2), "valid", None),     # stride above the kernel: zero rows between
    (2, 2, 4, 4, 3, (3, 3), (2, 2), "same", (1, 1)),
    (2, 3, 3, 5, 2, (4, 5), (3, 2), "same", (2, 0)),
    (1, 2, 6, 2, 4, (5, 3), (1, 1), "same", None),
    (2, 2, 7, 7, 16, (2, 2), (2, 2), "same", None),     # the autoencoder's decoder
]


def reference(xt, wt, bt, layer):
    """PyTorch's padding-0 output (the full one), cropped and zero-extended as the layer's geometry says."""
    full = F.conv_transpose2d(xt, wt, None, stride=layer.strides)
    (pt, pl), (oh, ow) = layer.crop, layer.output_shape[1:]
    out = F.pad(full, (-pl, ow - (full.shape[3] - pl), -pt, oh - (full.shape[2] - pt)))
    return out if bt is None else out + bt[None, :, None, None]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c,h,w,f,k,s,padding,op", CASES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_matches_torch(rng, dtype, n, c, h, w, f, k, s, padding, op, use_bias):
    layer = Conv2DTranspose(f, k, strides=s, padding=padding, output_padding=op, use_bias=use_bias,
                            activation="tanh")
    model = cnn.Sequential([layer], dtype=dtype, seed=0)
    model.build((c, h, w))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weights = [rng.standard_normal(v.shape).astype(dtype) for v in layer.weights]
    layer.set_weights(weights)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(weights[0], requires_grad=True)
    bt = torch.tensor(weights[1], requires_grad=True) if use_bias else None
    yt = torch.tanh(reference(xt, wt, bt, layer))
    assert yt.shape[1:] == layer.output_shape
    dy = rng.standard_normal(yt.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    assert_close(layer.forward(x, training=True), yt.detach().numpy(), dtype)
    assert_close(layer.backward(dy), xt.grad.numpy(), dtype)
    assert_close(layer.grads[0], wt.grad.numpy(), dtype)
    if use_bias:
        assert_close(layer.grads[1], bt.grad.numpy(), dtype)


def test_output_sizes_are_keras():
    # keras.src.utils.conv_utils.deconv_output_length, and where TF's 'SAME' puts the output
    assert deconv_geometry(4, 3, 2, "same", None) == (8, 0)   # total padding 1: TF pads the bottom
    assert deconv_geometry(4, 3, 2, "valid", None) == (9, 0)
    assert deconv_geometry(4, 1, 3, "valid", None) == (12, 0)  # max(k - s, 0) = 0; 2 zero cells after the last
    assert deconv_geometry(4, 5, 1, "same", None) == (4, 2)
    assert deconv_geometry(4, 3, 2, "same", 1) == (8, 0)
    assert deconv_geometry(4, 4, 2, "same", 0) == (6, 2)


def test_weight_gradient_matches_central_differences(rng):
    layer = Conv2DTranspose(2, (3, 2), strides=(2, 1), padding="same")
    model = cnn.Sequential([layer], dtype="float64", seed=0)
    model.build((2, 3, 3))
    x = rng.standard_normal((2, 2, 3, 3))
    dy = rng.standard_normal((2,) + layer.output_shape)

    def loss():
        return float(np.sum(layer.forward(x) * dy))

    loss()
    dx = layer.backward(dy).copy()
    np.testing.assert_allclose(layer.grads[0], central_differences(loss, layer.weights[0]), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, central_differences(loss, x), rtol=1e-6, atol=1e-8)


def test_worked_example():
    x, w = np.array([[[[1.0, 2.0]]]]), np.array([[[[1.0, 1.0]]]])
    y = np.empty((1, 1, 1, 3))
    scratch = np.empty(_core.conv_transpose2d_scratch_size(x.shape, w.shape))
    _core.conv_transpose2d_forward(y, x, w, None, scratch, (1, 1), (0, 0))
    np.testing.assert_array_equal(y.ravel(), [1, 3, 2])


def test_same_bits_at_any_thread_count(rng, restore_threads):
    layer = Conv2DTranspose(6, 3, strides=2, padding="same")
    cnn.Sequential([layer], seed=0).build((5, 9, 9))
    x = rng.standard_normal((13, 5, 9, 9)).astype(np.float32)
    dy = rng.standard_normal((13,) + layer.output_shape).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        cnn.set_num_threads(threads)
        y = layer.forward(x).copy()
        dx = layer.backward(dy).copy()
        results.append((y, dx, layer.grads[0].copy(), layer.grads[1].copy()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_bad_arguments():
    with pytest.raises(ValueError, match="output_padding"):
        Conv2DTranspose(2, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="padding"):
        Conv2DTranspose(2, 3, padding="full")
    with pytest.raises(ValueError, match="filters"):
        Conv2DTranspose(0, 3)
