"""The lecture's LeNet-5 (cnn.applications) in cnn.Sequential against torch.nn, from identical weights.

Also the convolution/pooling layers' shape inference, names, weights layout and errors."""
import numpy as np
import pytest
import torch

import cnn
from cnn.applications import lenet5, lenet5_inputs, lenet5_torch
from cnn.interop import to_torch
from cnn.layers import AveragePooling2D, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, MaxPooling2D, ZeroPadding2D


def test_lenet_names_and_grouped_weights():
    model = lenet5(seed=0)
    model.build()
    assert [layer.name for layer in model.layers[:3]] == ["conv2d", "average_pooling2d", "conv2d_1"]
    kernel, bias = model.layers[2].get_weights()
    assert kernel.shape == (6, 1, 1, 1) and bias.shape == (6,)


@pytest.fixture
def one_thread():
    """Both libraries on one thread: the parity check stays quick on a shared machine."""
    old = cnn.get_num_threads(), torch.get_num_threads()
    cnn.set_num_threads(1)
    torch.set_num_threads(1)
    yield
    cnn.set_num_threads(old[0])
    torch.set_num_threads(old[1])


# Largest per-step loss difference allowed over 100 steps. float64 holds the 1e-4 with ten digits to
# spare. In float32 the two libraries' rounding differences grow along the trajectory (Adam turns the sign of a
# near-zero gradient into a full step, and a relu whose input sits near 0 can switch on in one and off in the
# other), and how fast depends on the CPU torch runs on: on an AMD Zen 4 torch's float32 run stayed within
# 1.1e-4 of ours, on an Intel Xeon (AVX-512) it drifted 1.3e-2 from its own float64 run by step 69, while
# ours stayed within 1.1e-4 of float64. So a float32 run is held to the float64 trajectory (the exact one,
# which both libraries agree on to 1e-10), and torch's own float32 drift is printed beside it.
PARITY = {np.float64: 1e-10, np.float32: 1e-3}


def _lenet_losses(model, net, dtype):
    """Per-step losses of 100 Adam steps of batch 32, cnn's model and torch's net on the same batches."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model.compile(optimizer=cnn.optimizers.Adam(5e-4, variant="torch"), loss="sparse_categorical_crossentropy")
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    # images with a learnable signal: the class shifts a blob, so the loss falls noticeably in 100 steps
    labels = rng.integers(0, 10, 3200)
    images = rng.integers(0, 77, (3200, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 * c:2 * c + 8, 4:24] += 178
    x = lenet5_inputs(images).astype(dtype)
    ours, theirs = [], []
    for step in range(100):
        xb, yb = x[32 * step:32 * (step + 1)], labels[32 * step:32 * (step + 1)]
        ours.append(model.train_on_batch(xb, yb))
        opt.zero_grad()
        xt = torch.from_numpy(xb).to(next(net.parameters()).dtype)
        loss = torch.nn.functional.cross_entropy(net(xt), torch.from_numpy(yb))
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    return np.array(ours), np.array(theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lenet_trains_like_torch(one_thread, dtype):
    """100 Adam steps of batch 32 from the same weights on the same batches: per-step losses as PyTorch's in
    float64; in float32, as the float64 trajectory from the same starting weights."""
    model = lenet5(seed=1, dtype=dtype)
    net = to_torch(model, lenet5_torch().to(torch.float64))
    ours, theirs = _lenet_losses(model, net, dtype)
    worst = np.max(np.abs(ours - theirs) / theirs)
    print(f"LeNet-5 {np.dtype(dtype)}, 100 Adam steps: largest per-step loss difference from PyTorch's float64 "
          f"run {worst:.2e} (relative)")
    if dtype == np.float32:
        torch32 = to_torch(lenet5(seed=1, dtype=dtype), lenet5_torch().to(torch.float32))
        drift = np.max(np.abs(_lenet_losses(lenet5(seed=1, dtype=dtype), torch32, dtype)[1] - theirs) / theirs)
        print(f"  torch's own float32 run: {drift:.2e} from its float64 run")
    assert worst < PARITY[dtype]
    assert theirs[-10:].mean() < 0.8 * theirs[:10].mean()
    for layer, mod in zip([lay for lay in model.layers if lay.weights],
                          [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]):
        kernel = layer.get_weights()[0]
        ref = mod.weight.detach().numpy()
        ref = ref.T if isinstance(layer, Dense) else ref
        assert np.linalg.norm(kernel - ref) <= 1e-3 * np.linalg.norm(ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_pool_model_gradients_match_torch(dtype):
    """Strided, dilated, grouped and padded layers chained: one step's parameter gradients as PyTorch's."""
    rng = np.random.default_rng(3)
    model = cnn.Sequential([
        Conv2D(4, 3, padding="same", input_shape=(2, 9, 8)),
        MaxPooling2D(2, padding="same"),
        Conv2D(6, (3, 2), strides=2, padding=1, groups=2, activation="tanh"),
        AvgPool2D((2, 2), strides=1, padding="same"),
        Conv2D(6, 2, dilation_rate=2, padding="same", groups=6),
        Flatten(),
        Dense(3),
    ], seed=0, dtype=np.dtype(dtype).name)
    model.compile(optimizer=cnn.optimizers.SGD(0.0), loss="mse")
    model.build()
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding="same"),
        torch.nn.ZeroPad2d((0, 0, 0, 1)), torch.nn.MaxPool2d(2),  # 'same' pads bottom; zero pad is safe: see below
        torch.nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2), torch.nn.Tanh(),
        torch.nn.ZeroPad2d((0, 1, 0, 1)), torch.nn.AvgPool2d(2, 1, count_include_pad=False),
        torch.nn.Conv2d(6, 6, 2, dilation=2, padding=1, groups=6),
        torch.nn.Flatten(), torch.nn.Linear(6 * 3 * 3, 3)).to(torch.float64 if dtype == np.float64 else torch.float32)
    to_torch(model, net)
    # positive inputs and a positive first kernel make the max pool's zero padding never win, and the
    # avg pool after 'same' padding divides by real cells: correct the torch side by the padded count
    x = rng.uniform(0.5, 1, (5, 2, 9, 8)).astype(dtype)
    with torch.no_grad():
        net[0].weight.abs_()
        net[0].bias.abs_()
    model.layers[0].set_weights([net[0].weight.detach().numpy(), net[0].bias.detach().numpy()])
    y = rng.standard_normal((5, 3)).astype(dtype)

    class RealCellsAvg(torch.nn.Module):  # AvgPool2d over a zero-padded input, rescaled to real-cell counts
        def forward(self, z):
            ones = torch.ones_like(z[:1, :1])
            pad = torch.nn.functional.pad
            cnt = torch.nn.functional.avg_pool2d(pad(ones, (0, 1, 0, 1)), 2, 1)
            return torch.nn.functional.avg_pool2d(pad(z, (0, 1, 0, 1)), 2, 1) / cnt
    net[5], net[6] = torch.nn.Identity(), RealCellsAvg()

    model.train_on_batch(x, y)
    loss = torch.nn.functional.mse_loss(net(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    tol = 1e-10 if dtype == np.float64 else 1e-5
    mods = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    for layer, mod in zip([lay for lay in model.layers if lay.weights], mods):
        for g, ref in zip(layer.grads, (mod.weight.grad.numpy(), mod.bias.grad.numpy())):
            ref = ref.T if isinstance(layer, Dense) and ref.ndim == 2 else ref
            assert np.linalg.norm(g - ref) <= tol * np.linalg.norm(ref)


def test_layer_names_aliases_and_shapes():
    assert MaxPool2D is MaxPooling2D and AvgPool2D is AveragePooling2D
    assert [c.default_name() for c in (Conv2D, MaxPooling2D, AveragePooling2D, Flatten, ZeroPadding2D)] == [
        "conv2d", "max_pooling2d", "average_pooling2d", "flatten", "zero_padding2d"]
    model = cnn.Sequential([Conv2D(3, 4, padding="same", input_shape=(2, 7, 6)), MaxPool2D(), Flatten()])
    model.build()
    assert model.layers[0].pads == (1, 2, 1, 2) and model.layers[0].output_shape == (3, 7, 6)
    assert model.layers[1].output_shape == (3, 3, 3)
    assert model.layers[2].output_shape == (27,)
    out = model.predict(np.ones((2, 2, 7, 6), np.float32))
    assert out.shape == (2, 27)
    assert ZeroPadding2D(((1, 2), (3, 4))).pads == (1, 2, 3, 4)
    assert Conv2D(1, 3, padding=(1, 2)).pads == (1, 1, 2, 2)


def test_flatten_order_is_nchw():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2)
    y = Flatten(input_shape=(3, 2, 2)).forward(x)
    np.testing.assert_array_equal(y, torch.nn.Flatten()(torch.from_numpy(x)).numpy())


def test_layer_errors():
    with pytest.raises(ValueError, match="strided"):
        Conv2D(4, 3, strides=2, padding="same")
    with pytest.raises(ValueError, match="padding"):
        Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="divisible"):
        Conv2D(5, 3, groups=2)
    with pytest.raises(ValueError, match=">= 1"):
        Conv2D(4, 0)
    with pytest.raises(TypeError):
        Conv2D(4, 2.5)
    with pytest.raises(ValueError, match="half"):
        MaxPool2D(2, padding=2)
    model = cnn.Sequential([Conv2D(4, 3, groups=2, input_shape=(3, 8, 8))])
    with pytest.raises(ValueError, match="divisible"):
        model.build()
    with pytest.raises(ValueError, match="does not fit"):
        cnn.Sequential([Conv2D(4, 9, input_shape=(3, 8, 8))]).build()
    with pytest.raises(ValueError, match="channels, height, width"):
        cnn.Sequential([MaxPool2D(input_shape=(8, 8))]).build()
    layer = Conv2D(2, 3, input_shape=(1, 6, 6), name="c")
    cnn.Sequential([layer]).build()
    with pytest.raises(ValueError, match=r"'c'.*\(None, 1, 6, 6\).*\(2, 1, 5, 6\)"):
        layer.forward(np.zeros((2, 1, 5, 6), np.float32))


def test_buffers_kept_across_batches():
    """A short batch reuses the buffers of a long one (a layer's own, the model's gradient slots and conv scratch);
    a longer one grows them once."""
    model = lenet5(seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((40, 1, 32, 32)).astype(np.float32)
    y = np.arange(40) % 10
    conv, ws = model.layers[0], model._workspace
    model.train_on_batch(x[:32], y[:32])
    z, scratch, slots = conv._buffers["z"], ws._scratch, list(ws._slots)
    model.train_on_batch(x[:8], y[:8])
    assert conv._buffers["z"] is z and ws._scratch is scratch
    assert len(ws._slots) == len(slots) and all(a is b for a, b in zip(ws._slots, slots))
    model.train_on_batch(x, y)
    assert conv._buffers["z"].shape[0] == 40 > z.shape[0]
    # the scratch is a tile of columns per chunk of the batch, and 32 samples fill every chunk already
    assert ws._scratch is scratch and scratch.size >= conv._scratch(40, np.float32).nbytes


def test_zero_padding_forward_backward():
    layer = ZeroPadding2D(((1, 2), (0, 3)), input_shape=(2, 3, 4))
    cnn.Sequential([layer]).build()
    x = np.random.default_rng(0).standard_normal((5, 2, 3, 4))
    y = layer.forward(x)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 3))))
    y2 = layer.forward(x[:2] + 1)  # a shorter batch reuses the buffer; its border stays zero
    np.testing.assert_array_equal(y2, np.pad(x[:2] + 1, ((0, 0), (0, 0), (1, 2), (0, 3))))
    dy = np.random.default_rng(1).standard_normal(y2.shape)
    np.testing.assert_array_equal(layer.backward(dy), dy[:, :, 1:4, 0:4])
