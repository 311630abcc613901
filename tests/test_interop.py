"""from_torch / to_torch: identical outputs after copying, round trips, clear errors on mismatch."""
import numpy as np
import pytest
import torch

import cnn
from cnn import layers
from cnn.interop import from_torch, to_torch


def mlp(dtype="float64", bias=True):
    return cnn.Sequential([layers.Dense(7, activation="tanh", input_dim=5, use_bias=bias),
                           layers.Dense(3, activation="relu", use_bias=bias), layers.Dense(4, use_bias=bias)],
                          dtype=dtype, seed=0)


def torch_mlp(dtype=torch.float64, bias=True):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7, bias=bias), torch.nn.Tanh(), torch.nn.Linear(7, 3, bias=bias),
                               torch.nn.ReLU(), torch.nn.Linear(3, 4, bias=bias)).to(dtype)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype,tdtype,tol", [("float64", torch.float64, 1e-12), ("float32", torch.float32, 1e-6)])
def test_from_torch_gives_the_same_outputs(dtype, tdtype, tol, bias):
    x = np.random.default_rng(0).standard_normal((9, 5))
    net = torch_mlp(tdtype, bias)
    model = from_torch(mlp(dtype, bias), net)
    want = net(torch.tensor(x, dtype=tdtype)).detach().numpy()
    got = model.predict(x)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= tol


def test_from_torch_across_dtypes():
    x = np.random.default_rng(1).standard_normal((4, 5))
    net = torch_mlp(torch.float64)
    got = from_torch(mlp("float32"), net).predict(x)
    want = net(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_to_torch_round_trip():
    model = mlp()
    net = to_torch(model, torch_mlp())
    torch.testing.assert_close(net[0].weight, torch.tensor(model.layers[0].weights[0].T))
    x = np.random.default_rng(2).standard_normal((6, 5))
    np.testing.assert_allclose(net(torch.tensor(x)).detach().numpy(), model.predict(x), rtol=1e-12, atol=1e-14)
    back = from_torch(mlp(), net)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_to_torch_keeps_autograd_usable():
    net = to_torch(mlp(), torch_mlp())
    x = torch.ones(2, 5, dtype=torch.float64)
    net(x).sum().backward()
    assert net[0].weight.grad is not None
    for p in net.parameters():
        assert p.is_leaf and p.requires_grad and p.grad.shape == p.shape
    # d(Σ out)/d(last bias) is the batch size; d(Σ out)/d(last weight) is the batch's summed hidden output, per row
    torch.testing.assert_close(net[4].bias.grad, torch.full((4,), 2.0, dtype=torch.float64))
    hidden = net[:4](x).detach().sum(0)
    torch.testing.assert_close(net[4].weight.grad, hidden.expand(4, 3))
    assert net[0].weight.grad.abs().sum() > 0


def test_layer_count_mismatch():
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 4)).double()
    with pytest.raises(ValueError, match="3 layers with weights.*torch module 2"):
        from_torch(mlp(), net)


def test_shape_mismatch():
    net = torch_mlp()
    net[2] = torch.nn.Linear(7, 2).double()
    with pytest.raises(ValueError, match="weight shapes"):
        from_torch(mlp(), net)


def test_bias_mismatch():
    with pytest.raises(ValueError, match="missing bias"):
        to_torch(mlp(bias=True), torch_mlp(bias=False))


def test_unsupported_torch_parameters():
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7), torch.nn.Linear(7, 3),
                              torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="BatchNorm1d"):
        from_torch(mlp(), net)


def test_wrong_kind_of_layer():
    net = torch.nn.Sequential(torch.nn.Conv2d(5, 7, 1), torch.nn.Linear(7, 3), torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="cannot pair"):
        from_torch(mlp(), net)


def test_not_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        from_torch(mlp(), [np.zeros((5, 7))])


def test_unbuilt_model_without_input_shape():
    model = cnn.Sequential([layers.Dense(3)])
    with pytest.raises(ValueError, match="input_shape"):
        from_torch(model, torch.nn.Linear(4, 3))


def test_conv_model():
    for name in ("Conv2D", "MaxPool2D", "Flatten"):
        if not hasattr(layers, name):
            pytest.skip(f"cnn.layers.{name} is not in this build yet (it comes with the convolution layers)")
    model = cnn.Sequential([layers.Conv2D(4, 3, input_shape=(2, 9, 8)), layers.MaxPool2D(2), layers.Flatten(),
                            layers.Dense(5)], dtype="float64", seed=0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 3 * 3, 5)).double()
    x = np.random.default_rng(0).standard_normal((3, 2, 9, 8))
    want = net(torch.tensor(x)).detach().numpy()
    got = from_torch(model, net).predict(x)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-12
    fresh = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 3 * 3, 5)).double()
    to_torch(model, fresh)
    np.testing.assert_allclose(fresh(torch.tensor(x)).detach().numpy(), want, rtol=1e-12, atol=1e-14)
