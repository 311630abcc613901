"""ReLU and LeakyReLU layers (Keras's arguments) and GlobalAverage/MaxPooling2D against PyTorch."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnn
from cnn import _core
from cnn.layers import GlobalAveragePooling2D, GlobalMaxPooling2D, LeakyReLU, ReLU
from conftest import DTYPES, assert_close


def keras_relu(x, max_value, negative_slope, threshold):
    """keras.activations.relu written in torch ops: x above threshold (and 0), capped, plus the slope below it."""
    pos = torch.clamp(x * (x > threshold), min=0, max=max_value)
    return pos + negative_slope * torch.clamp(x - threshold, max=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3), (4, 2, 5, 3), (3, 7)])
@pytest.mark.parametrize("args", [(None, 0.0, 0.0), (6.0, 0.0, 0.0), (2.5, 0.1, 1.0), (None, 0.3, -0.5)])
def test_relu_matches_keras_formula(rng, dtype, shape, args):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    layer = ReLU(*args)
    xt = torch.tensor(x, requires_grad=True)
    yt = keras_relu(xt, *args)
    dy = rng.standard_normal(shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    assert_close(layer.forward(x), yt.detach().numpy(), dtype)
    assert_close(layer.backward(dy), xt.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_and_leaky_relu_match_torch(rng, dtype):
    x = rng.standard_normal((3, 2, 5, 4)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    for layer, fn in ((ReLU(), F.relu), (LeakyReLU(), lambda t: F.leaky_relu(t, 0.3)),
                      (LeakyReLU(alpha=0.1), lambda t: F.leaky_relu(t, 0.1)),
                      (ReLU(max_value=6.0), F.relu6)):
        xt = torch.tensor(x, requires_grad=True)
        yt = fn(xt)
        yt.backward(torch.tensor(dy))
        assert_close(layer.forward(x), yt.detach().numpy(), dtype)
        assert_close(layer.backward(dy), xt.grad.numpy(), dtype)


def test_relu_worked_example_and_nan():
    x = np.array([-1.0, 0.5, 3.0, 9.0, np.nan, -np.inf])
    y = np.empty_like(x)
    _core.relu_forward(y, x, 6.0, 0.1, 1.0)
    np.testing.assert_allclose(y[:4], [-0.2, -0.05, 3, 6])
    assert np.isnan(y[4]) and y[5] == -np.inf
    _core.relu_forward(y, x, np.inf, 0.0, 0.0)
    assert y[5] == 0 and np.isnan(y[4])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (4, 2, 8, 1)])
def test_global_pooling_matches_torch(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape[:2]).astype(dtype)
    for layer, fn in ((GlobalAveragePooling2D(), lambda t: t.mean(dim=(2, 3))),
                      (GlobalMaxPooling2D(), lambda t: F.adaptive_max_pool2d(t, 1).flatten(1))):
        cnn.Sequential([layer], dtype=dtype).build(shape[1:])
        assert layer.output_shape == shape[1:2]
        xt = torch.tensor(x, requires_grad=True)
        yt = fn(xt)
        yt.backward(torch.tensor(dy))
        assert_close(layer.forward(x), yt.detach().numpy(), dtype)
        assert_close(layer.backward(dy), xt.grad.numpy(), dtype)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_value"):
        ReLU(max_value=-1)
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(-0.1)
    with pytest.raises(ValueError, match="channels, height, width"):
        cnn.Sequential([GlobalAveragePooling2D(input_shape=(3,))]).build()
