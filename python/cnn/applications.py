"""Ready-made networks, each in cnn and as a torch.nn twin of the same architecture (cnn.interop copies the
weights between them): the lecture's LeNet-5 and its input mapping, the CIFAR-style ResNet of He et al. 2016
(resnet), and a convolutional autoencoder for 28x28 images (conv_autoencoder).

The architecture (LeCun et al. 1998, as the lecture builds it in Keras), for 1x32x32 inputs:
Conv 6@5x5 → AvgPool 2 → per-channel a·x + b (a 1x1 Conv with groups=6) → scaled tanh → Conv 16@5x5 →
AvgPool 2 → 1x1 Conv groups=16 → scaled tanh → Conv 120@5x5 relu → Flatten → Dense 84 relu → Dense 10
softmax; scaled tanh is 1.7159·tanh(x). The lecture's list names no activation for C5 and F6: they take a
relu, which on Fashion-MNIST learns faster in the five epochs the lecture trains for than LeCun et al.'s
squashing (see lenet5). 61,750 parameters. `lenet5_torch` is the same network in torch.nn, so
cnn.interop.from_torch / to_torch copy weights between the two."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import initializers
from .layers import (Activation, Add, AveragePooling2D, BatchNormalization, Conv2D, Conv2DTranspose, Dense, Flatten,
                     GlobalAveragePooling2D, Input, MaxPooling2D, ReLU, Reshape)
from .models import Model, Sequential

if TYPE_CHECKING:
    import torch

    from ._types import ArrayLike, DTypeLike

__all__ = ["lenet5", "lenet5_torch", "lenet5_inputs", "resnet", "resnet_torch", "conv_autoencoder",
           "conv_autoencoder_torch"]

# the lecture's mapping of a pixel x in [0, 1]: background 1.175, full ink -0.1
BACKGROUND, INK_SLOPE = 1.175, 1.275


def zero_sum_he_uniform(shape: tuple[int, ...], rng: np.random.Generator, dtype: DTypeLike) -> np.ndarray:
    """He's uniform kernel (limit √(6/fan_in)) less its mean over each filter, so a constant input gives 0."""
    kernel = initializers.he_uniform(shape, rng, np.float64)
    return (kernel - kernel.mean(axis=tuple(range(1, kernel.ndim)), keepdims=True)).astype(dtype)


def lenet5(seed: int | None = None, dtype: DTypeLike = "float32") -> Sequential:
    """The lecture's LeNet-5 as a cnn.Sequential for (N, 1, 32, 32) inputs (see lenet5_inputs).

    Initialisation, chosen on Fashion-MNIST (Adam 5e-4, batch 32, 5 epochs, benchmarks/lenet5.py):
    - the 5x5 kernels are He-uniform with each filter's mean removed (zero_sum_he_uniform). The input's
      background is 1.175, not 0, so an ordinary kernel maps a window of plain background to 1.175·Σw,
      about ±1.4 with He's limit: tanh starts saturated on the background in many channels. A filter
      summing to 0 answers a constant input with 0 and starts out seeing edges and strokes only.
    - the per-channel 1x1 layers start at scale 1 and bias 0, so each subsampling begins as a plain
      average (Glorot's ±1.7 for a 1-in-1-out kernel can start a channel near zero or flipped);
    - Dense kernels are Glorot-uniform; all biases start at 0.
    C5 and F6 take a relu. Mean test accuracy after 5 epochs over seeds 0-9 (`benchmarks/lenet5.py --seeds`):
    - relu C5 and F6 (this network): 88.37%, each seed 87.7 to 88.9% (nine of ten at 88% or more);
    - relu C5, scaled-tanh F6: 88.24%; relu C5 and F6 with He-uniform dense kernels: 88.20%;
    - scaled tanh on both, as LeCun et al. 1998: 87.94% (87.4 to 88.7%); C5 linear (seeds 0-2): 87.4%.
    With C5 and F6 squashing, no other start did better (seeds 0-4 each, means 87.4 to 88.1% against 88.1%
    on the same seeds): the 5x5 kernels at half or 1.5 times He's limit, C5's at half, the 1x1 scales at
    0.5 or 2, He-uniform dense kernels, a linear F6, plain tanh; Keras' default initialisation (C5 linear)
    gave 85.6%, PyTorch's 85.7% (4 epochs)."""
    return Sequential([
        Conv2D(6, 5, kernel_initializer=zero_sum_he_uniform, input_shape=(1, 32, 32)),
        AveragePooling2D(2),
        Conv2D(6, 1, groups=6, kernel_initializer="ones"),
        Activation("scaled_tanh"),
        Conv2D(16, 5, kernel_initializer=zero_sum_he_uniform),
        AveragePooling2D(2),
        Conv2D(16, 1, groups=16, kernel_initializer="ones"),
        Activation("scaled_tanh"),
        Conv2D(120, 5, activation="relu", kernel_initializer=zero_sum_he_uniform),
        Flatten(),
        Dense(84, activation="relu"),
        Dense(10, activation="softmax"),
    ], seed=seed, dtype=dtype)


def lenet5_torch() -> torch.nn.Sequential:
    """The same network as a torch.nn.Sequential with PyTorch's own initialisation; it ends in logits
    (no softmax), to be trained with torch.nn.functional.cross_entropy."""
    import torch

    class ScaledTanh(torch.nn.Module):
        def forward(self, x):
            return 1.7159 * torch.tanh(x)

    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.AvgPool2d(2), nn.Conv2d(6, 6, 1, groups=6), ScaledTanh(),
        nn.Conv2d(6, 16, 5), nn.AvgPool2d(2), nn.Conv2d(16, 16, 1, groups=16), ScaledTanh(),
        nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def lenet5_inputs(images: ArrayLike) -> np.ndarray:
    """uint8 images (N, 28, 28) as LeNet-5's float32 input (N, 1, 32, 32).

    Each image is padded by 2 pixels of background and each pixel p mapped to 1.175 - 1.275·(p/255),
    the lecture's mapping: background 1.175, full ink -0.1 (LeCun et al. 1998's levels, reversed)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"lenet5_inputs: expected uint8 images of shape (N, 28, 28), got {images.dtype} of "
                         f"shape {images.shape}")
    x = np.pad(images, ((0, 0), (2, 2), (2, 2)))[:, None].astype(np.float32) / np.float32(255)
    return np.float32(BACKGROUND) - np.float32(INK_SLOPE) * x


def conv_autoencoder(latent_dim: int = 2, seed: int | None = None, dtype: DTypeLike = "float32") -> Sequential:
    """A convolutional autoencoder for (N, 1, 28, 28) images in [0, 1], trained with binary_crossentropy against
    its input. Encoder: Conv 16@3x3 relu → MaxPool 2 → Conv 8@3x3 relu → MaxPool 2 → Flatten → Dense latent_dim
    (the layer named 'code': a 2-D code by default, to plot). Decoder: Dense 392 relu → Reshape (8, 7, 7) →
    Conv2DTranspose 16@2x2 stride 2 relu → Conv2DTranspose 8@2x2 stride 2 relu → Conv 1@3x3 sigmoid. 'same'
    convolutions and 2x2 transposed ones at stride 2 (which need no padding), so the torch twin is plain.
    The encoder is model.layers up to and including 'code'."""
    return Sequential([
        Conv2D(16, 3, padding="same", activation="relu", input_shape=(1, 28, 28), name="enc_conv1"),
        MaxPooling2D(2, name="enc_pool1"),
        Conv2D(8, 3, padding="same", activation="relu", name="enc_conv2"),
        MaxPooling2D(2, name="enc_pool2"),
        Flatten(name="enc_flatten"),
        Dense(latent_dim, name="code"),
        Dense(8 * 7 * 7, activation="relu", name="dec_dense"),
        Reshape((8, 7, 7), name="dec_reshape"),
        Conv2DTranspose(16, 2, strides=2, activation="relu", name="dec_up1"),
        Conv2DTranspose(8, 2, strides=2, activation="relu", name="dec_up2"),
        Conv2D(1, 3, padding="same", activation="sigmoid", name="dec_out"),
    ], name="conv_autoencoder", seed=seed, dtype=dtype)


def conv_autoencoder_torch(latent_dim: int = 2) -> torch.nn.Sequential:
    """conv_autoencoder as a torch.nn.Sequential (PyTorch's initialisation) ending in logits: train it with
    torch.nn.functional.binary_cross_entropy_with_logits. Its modules carry the cnn layers' names."""
    import collections

    import torch

    nn = torch.nn
    return nn.Sequential(collections.OrderedDict([
        ("enc_conv1", nn.Conv2d(1, 16, 3, padding=1)), ("enc_relu1", nn.ReLU()), ("enc_pool1", nn.MaxPool2d(2)),
        ("enc_conv2", nn.Conv2d(16, 8, 3, padding=1)), ("enc_relu2", nn.ReLU()), ("enc_pool2", nn.MaxPool2d(2)),
        ("enc_flatten", nn.Flatten()), ("code", nn.Linear(8 * 7 * 7, latent_dim)),
        ("dec_dense", nn.Linear(latent_dim, 8 * 7 * 7)), ("dec_relu", nn.ReLU()),
        ("dec_reshape", nn.Unflatten(1, (8, 7, 7))),
        ("dec_up1", nn.ConvTranspose2d(8, 16, 2, stride=2)), ("dec_relu1", nn.ReLU()),
        ("dec_up2", nn.ConvTranspose2d(16, 8, 2, stride=2)), ("dec_relu2", nn.ReLU()),
        ("dec_out", nn.Conv2d(8, 1, 3, padding=1))]))


def _resnet_blocks(depth):
    """[(name, filters, stride, projection)] of the CIFAR ResNet's residual blocks: (depth - 2)/6 per stage."""
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 for n >= 1 (8, 14, 20, 32, 44, 56, 110), got {depth!r}")
    blocks, channels = [], 16
    for stage, filters in enumerate((16, 32, 64), 1):
        for block in range(1, (depth - 2) // 6 + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            blocks.append((f"stage{stage}_block{block}", filters, stride, stride != 1 or channels != filters))
            channels = filters
    return blocks


def resnet(depth: int = 20, num_classes: int = 10, input_shape: tuple[int, int, int] = (3, 32, 32),
           seed: int | None = None, dtype: DTypeLike = "float32") -> Model:
    """The CIFAR-10 ResNet of He et al. 2016 (section 4.2) as a cnn.Model for NCHW inputs (default 3x32x32).

    A 3x3 conv of 16 filters, BN, ReLU; then three stages of (depth - 2)/6 residual blocks with 16, 32 and
    64 filters, the 2nd and 3rd starting at stride 2; global average pooling and a softmax Dense layer.
    A block is conv3x3-BN-ReLU-conv3x3-BN added to its shortcut, then ReLU. The shortcut is the identity,
    or where the shape changes a 1x1 conv at the block's stride followed by BN (the paper's option B).
    Convolutions have no bias (BN follows) and He-normal kernels, as in the paper; 3x3 convolutions pad
    by 1 on every side (as PyTorch's padding=1; Keras's 'same' at stride 2 pads only bottom and right).
    BatchNormalization has Keras's defaults (momentum 0.99, epsilon 1e-3). Layer names say where each
    sits (stem_conv, stage2_block1_conv1, stage2_block1_proj, ..., head) and resnet_torch names its
    modules alike, so cnn.interop copies weights by name. ResNet-20: 272,474 trainable parameters (as the
    torch twin), 274,042 with the moving statistics."""
    blocks = _resnet_blocks(depth)

    def conv_bn(x, filters, kernel, stride, name):
        x = Conv2D(filters, kernel, strides=stride, padding=kernel // 2, use_bias=False,
                   kernel_initializer="he_normal", name=name)(x)
        return BatchNormalization(name=name + "_bn")(x)

    inputs = Input(shape=input_shape, name="image")
    x = ReLU(name="stem_relu")(conv_bn(inputs, 16, 3, 1, "stem_conv"))
    for name, filters, stride, projection in blocks:
        y = ReLU(name=name + "_relu1")(conv_bn(x, filters, 3, stride, name + "_conv1"))
        y = conv_bn(y, filters, 3, 1, name + "_conv2")
        shortcut = conv_bn(x, filters, 1, stride, name + "_proj") if projection else x
        x = ReLU(name=name + "_relu2")(Add(name=name + "_add")([y, shortcut]))
    x = GlobalAveragePooling2D(name="pool")(x)
    outputs = Dense(num_classes, activation="softmax", name="head")(x)
    return Model(inputs, outputs, name=f"resnet{depth}", seed=seed, dtype=dtype)


def resnet_torch(depth: int = 20, num_classes: int = 10, in_channels: int = 3) -> torch.nn.Module:
    """resnet as a torch.nn.Module (PyTorch's initialisation) ending in logits, train it with
    torch.nn.functional.cross_entropy. Its BatchNorm2d take Keras's settings in PyTorch's terms: eps 1e-3 and
    momentum 0.01 (PyTorch's running variance moves toward the unbiased batch variance, Keras's toward the
    biased one: moving statistics differ slightly, training steps do not). Its modules carry the cnn layers'
    names."""
    import torch

    nn = torch.nn
    blocks = _resnet_blocks(depth)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = nn.ModuleDict()
            self._conv_bn("stem_conv", in_channels, 16, 3, 1)
            channels = 16
            for name, filters, stride, projection in blocks:
                self._conv_bn(name + "_conv1", channels, filters, 3, stride)
                self._conv_bn(name + "_conv2", filters, filters, 3, 1)
                if projection:
                    self._conv_bn(name + "_proj", channels, filters, 1, stride)
                channels = filters
            self.m["head"] = nn.Linear(channels, num_classes)

        def _conv_bn(self, name, cin, cout, kernel, stride):
            self.m[name] = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
            self.m[name + "_bn"] = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)

        def forward(self, x):
            x = torch.relu(self.conv_bn("stem_conv", x))
            for name, _, _, projection in blocks:
                y = torch.relu(self.conv_bn(name + "_conv1", x))
                y = self.conv_bn(name + "_conv2", y)
                x = torch.relu(y + (self.conv_bn(name + "_proj", x) if projection else x))
            return self.m["head"](x.mean(dim=(2, 3)))

        def conv_bn(self, name, x):
            return self.m[name + "_bn"](self.m[name](x))

    return ResNet()
