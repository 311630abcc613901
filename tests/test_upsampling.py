"""upsample2d and UpSampling2D against torch.nn.functional.interpolate (nearest; bilinear with
align_corners=False), forward and input gradient."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnn
from cnn import _core
from cnn.layers import UpSampling2D
from conftest import DTYPES, assert_close

CASES = [(1, 1, 1, 1, (2, 2)), (2, 3, 4, 5, (2, 3)), (1, 2, 7, 3, (3, 1)), (3, 1, 5, 5, (1, 4)), (2, 4, 7, 7, (2, 2))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c,h,w,size", CASES)
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_matches_torch(rng, dtype, n, c, h, w, size, interpolation):
    layer = UpSampling2D(size, interpolation)
    cnn.Sequential([layer], dtype=dtype).build((c, h, w))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    extra = {"align_corners": False} if interpolation == "bilinear" else {}
    yt = F.interpolate(xt, scale_factor=size, mode=interpolation, **extra)
    dy = rng.standard_normal(yt.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    assert_close(layer.forward(x), yt.detach().numpy(), dtype)
    assert_close(layer.backward(dy), xt.grad.numpy(), dtype)


def test_worked_example():
    x = np.array([[[[0.0, 4.0]]]])
    for bilinear, expected in ((False, [0, 0, 4, 4]), (True, [0, 1, 3, 4])):
        y = np.empty((1, 1, 1, 4))
        _core.upsample2d_forward(y, x, (1, 2), bilinear)
        np.testing.assert_array_equal(y.ravel(), expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="interpolation"):
        UpSampling2D(interpolation="bicubic")
    with pytest.raises(ValueError, match="size"):
        UpSampling2D(size=0)


def test_reshape_and_image_targets(rng):
    """A decoder's Reshape (one -1) and a loss on image-shaped outputs: y keeps its shape, its gradient too."""
    layer = cnn.layers.Reshape((2, -1, 3))
    model = cnn.Sequential([cnn.layers.Dense(24, input_dim=5), layer, UpSampling2D(2)], seed=0, dtype="float64")
    model.compile(optimizer=cnn.optimizers.SGD(0.1), loss="mse")
    model.build()
    assert layer.output_shape == (2, 4, 3) and model.output_shape == (2, 8, 6)
    x, y = rng.standard_normal((3, 5)), rng.standard_normal((3, 2, 8, 6))
    out = model.predict(x, verbose=0)
    assert out.shape == (3, 2, 8, 6)
    assert np.isclose(model.evaluate(x, y, verbose=0), np.mean((out - y) ** 2))
    before = model.train_on_batch(x, y)
    assert model.train_on_batch(x, y) < before
    with pytest.raises(ValueError, match="target_shape"):
        cnn.layers.Reshape((-1, -1))
    with pytest.raises(ValueError, match="cannot reshape"):
        cnn.Sequential([cnn.layers.Reshape((5, 5), input_shape=(24,))]).build()
