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
