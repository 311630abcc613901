# %% [markdown]
# # Architectures: a residual network and autoencoders (Nature of Mathematical Modeling)
#
# The lecture leaves straight stacks of layers for the architectures people use. Three of them here:
#
# 1. A small ResNet (He et al. 2016: conv-BN-ReLU blocks around identity shortcuts and 1×1 projections),
#    `cnn.applications.resnet`, trained on Fashion-MNIST by `cnn` and by its PyTorch twin from the same
#    initial weights on the same batches: per-step losses side by side, then test accuracy.
# 2. A convolutional autoencoder on MNIST, `cnn.applications.conv_autoencoder`, squeezed through a 2-D code:
#    its reconstructions, and the codes of the test images plotted in the plane, coloured by digit.
# 3. A masked autoencoder: half of each image's 7×7 patches hidden, the network asked for the whole image,
#    as masked autoencoders (He et al. 2022) are trained, here with convolutions instead of a transformer.
#
# Full mode trains ResNet-20 for one epoch of Fashion-MNIST in both libraries and each autoencoder for five
# epochs of MNIST: minutes on a many-core machine, longer on a laptop. Quick mode (CNN_QUICK=1) runs a
# ResNet-8 for a few steps and the autoencoders on subsets, to check the notebook, not to learn.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import cnn

QUICK = os.environ.get("CNN_QUICK") == "1"
MNIST_DIR = None  # a folder holding the four MNIST IDX files, to use your own copy
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed: the ResNet below trains in cnn alone")

# %% [markdown]
# ## The data
# MNIST when its files are found (see `cnn.datasets.load_mnist`), otherwise Fashion-MNIST, for the
# autoencoders; Fashion-MNIST for the ResNet, or MNIST where only MNIST is installed.

# %%
(x_train, y_train), (x_test, y_test), DATA = cnn.datasets.load_mnist_or_fashion(MNIST_DIR)
try:
    (f_train, fy_train), (f_test, fy_test) = cnn.datasets.load_fashion_mnist()
    FASHION = "Fashion-MNIST"
except FileNotFoundError:
    (f_train, fy_train), (f_test, fy_test), FASHION = (x_train, y_train), (x_test, y_test), DATA


def images(x):
    """uint8 (N, 28, 28) → float32 (N, 1, 28, 28) in [0, 1], the NCHW layout cnn and PyTorch share."""
    return (x[:, None] / np.float32(255)).astype(np.float32)


# %% [markdown]
# ## A small ResNet, cnn against PyTorch from the same weights
# `resnet(depth)` is the CIFAR ResNet: a 3×3 conv stem, three stages of (depth − 2)/6 residual blocks with
# 16, 32 and 64 filters (the 2nd and 3rd halve the resolution, 28 → 14 → 7, through a 1×1 projection on
# the shortcut), global average pooling and a softmax layer. BatchNormalization normalises each batch in
# training and uses its moving statistics (momentum 0.99, as Keras) at test time. `cnn.interop.to_torch`
# copies the weights into `resnet_torch`, whose modules carry the same names; both then take SGD steps
# (momentum 0.9) on the same batches. The first step's losses agree to float32 rounding; after it the two
# float32 runs drift apart (the cell after next shows why, and that the arithmetic is the same).

# %%
DEPTH, BATCH, LR = (8, 16, 0.05) if QUICK else (20, 64, 0.05)
STEPS = 6 if QUICK else len(f_train) // BATCH  # one epoch in full mode
resnet_train, resnet_test = images(f_train), images(f_test)
if QUICK:
    resnet_test, fy_test = resnet_test[:200], fy_test[:200]
order = np.random.default_rng(0).permutation(len(resnet_train))[:STEPS * BATCH]
batches = [order[s:s + BATCH] for s in range(0, len(order), BATCH)]

model = cnn.applications.resnet(DEPTH, input_shape=(1, 28, 28), seed=0)
model.compile(cnn.optimizers.SGD(LR, momentum=0.9, variant="torch"), "sparse_categorical_crossentropy",
              ["accuracy"])
print(f"ResNet-{DEPTH}: {model.count_params():,} weights, {len(model.layers)} layers")
initial = [w.copy() for w in model.get_weights()]
curves, times, accuracy = {}, {}, {}
if torch is not None:
    twin = cnn.interop.to_torch(model, cnn.applications.resnet_torch(DEPTH, in_channels=1))

start = time.perf_counter()
curves["cnn"] = [model.train_on_batch(resnet_train[idx], fy_train[idx])[0] for idx in batches]
times["cnn"] = time.perf_counter() - start
accuracy["cnn"] = model.evaluate(resnet_test, fy_test, batch_size=500, verbose=0)[1]

if torch is not None:
    optimizer = torch.optim.SGD(twin.parameters(), lr=LR, momentum=0.9)
    xt, yt = torch.from_numpy(resnet_train), torch.from_numpy(fy_train.astype(np.int64))
    curves["PyTorch"] = []
    twin.train()
    start = time.perf_counter()
    for idx in batches:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(twin(xt[idx]), yt[idx])
        loss.backward()
        optimizer.step()
        curves["PyTorch"].append(loss.item())
    times["PyTorch"] = time.perf_counter() - start
    twin.eval()
    with torch.no_grad():
        logits = torch.cat([twin(torch.from_numpy(resnet_test[s:s + 500])) for s in range(0, len(resnet_test), 500)])
    accuracy["PyTorch"] = float((logits.argmax(1).numpy() == fy_test).mean())
    gap = np.abs(np.array(curves["cnn"]) - np.array(curves["PyTorch"]))
    print(f"largest |loss(cnn) - loss(PyTorch)|: first 5 steps {gap[:5].max():.2e}, all {STEPS} steps "
          f"{gap.max():.2e}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3))
window = 1 if QUICK else 20
for name, curve in curves.items():
    axes[0].plot(np.convolve(curve, np.ones(window) / window, mode="valid"), label=name, alpha=0.8)
axes[0].set(xlabel="step", ylabel=f"training loss ({window}-step mean)", title=f"ResNet-{DEPTH} on {FASHION}")
axes[0].legend()
if "PyTorch" in curves:
    axes[1].semilogy(np.maximum(gap, 1e-9))
    axes[1].set(xlabel="step", ylabel="|loss(cnn) − loss(PyTorch)|", title="the same steps, side by side")
plt.tight_layout()
plt.show()
print({name: f"{acc:.4f}" for name, acc in accuracy.items()}, "test accuracy")

# %% [markdown]
# ### Same arithmetic, different rounding
# The same first steps again in float64, from the same weights in both libraries: the losses agree to about
# 1e-10, so cnn and PyTorch compute the same network, gradients and updates. In float32 each rounds its sums
# in its own order; SGD with momentum at this rate, through BatchNormalization, multiplies a 1e-7 difference
# several-fold a step. PyTorch's own float32 run leaves the float64 trajectory as fast as cnn's does.

# %%
CHECK = 3 if QUICK else 10
if torch is not None:
    exact = cnn.applications.resnet(DEPTH, input_shape=(1, 28, 28), seed=0, dtype="float64")
    exact.set_weights([w.astype(np.float64) for w in initial])
    exact.compile(cnn.optimizers.SGD(LR, momentum=0.9, variant="torch"), "sparse_categorical_crossentropy")
    exact_twin = cnn.interop.to_torch(exact, cnn.applications.resnet_torch(DEPTH, in_channels=1).double())
    optimizer = torch.optim.SGD(exact_twin.parameters(), lr=LR, momentum=0.9)
    losses64 = {"cnn": [], "PyTorch": []}
    for idx in batches[:CHECK]:
        xb = resnet_train[idx].astype(np.float64)
        losses64["cnn"].append(exact.train_on_batch(xb, fy_train[idx]))
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(exact_twin(torch.from_numpy(xb)), yt[idx])
        loss.backward()
        optimizer.step()
        losses64["PyTorch"].append(loss.item())
    reference = np.array(losses64["PyTorch"])
    print("step  |cnn64 - PyTorch64|  |cnn32 - PyTorch64|  |PyTorch32 - PyTorch64|")
    for step in range(CHECK):
        print(f"{step:4d} {abs(losses64['cnn'][step] - reference[step]):20.1e} "
              f"{abs(curves['cnn'][step] - reference[step]):20.1e} "
              f"{abs(curves['PyTorch'][step] - reference[step]):23.1e}")
    float64_gap = np.abs(np.array(losses64["cnn"]) - reference).max()

# %% [markdown]
# ## A convolutional autoencoder with a 2-D code
# Encoder: two 3×3 conv + max-pool stages and a Dense layer to 2 numbers (the layer named `code`); decoder:
# Dense back to 8×7×7, two stride-2 transposed convolutions up to 28×28, a sigmoid conv. It is trained to
# reproduce its input under binary cross-entropy (pixels in [0, 1]), with Adam.

# %%
AE_EPOCHS = 1 if QUICK else 5
ae_train, ae_test = images(x_train), images(x_test)
if QUICK:
    ae_train, ae_test, y_test = ae_train[:2048], ae_test[:500], y_test[:500]

autoencoder = cnn.applications.conv_autoencoder(latent_dim=2, seed=0)
autoencoder.compile(cnn.optimizers.Adam(1e-3), "binary_crossentropy")
start = time.perf_counter()
ae_history = autoencoder.fit(ae_train, ae_train, batch_size=64, epochs=AE_EPOCHS, verbose=0,
                             validation_data=(ae_test, ae_test))
ae_seconds = time.perf_counter() - start
ae_loss = ae_history.history["val_loss"][-1]
print(f"{DATA}: test binary cross-entropy {ae_loss:.4f} after {AE_EPOCHS} epoch(s), {ae_seconds:.1f} s")
cnn.plot.history(ae_history)
plt.show()


def encoder(model):
    """The autoencoder's layers up to and including 'code', as their own Sequential with the same weights."""
    upto = [layer.name for layer in model.layers].index("code") + 1
    layers = model.layers[:upto]
    net = cnn.Sequential([type(layer).from_config(layer.get_config()) for layer in layers], dtype=model.dtype)
    net.build()
    net.set_weights([w for layer in layers for w in layer.get_weights()])
    return net


def show_rows(rows, titles):
    """Rows of images (each (n, 1, 28, 28)) one above the other, each row titled."""
    fig, axes = plt.subplots(len(rows), len(rows[0]), figsize=(len(rows[0]), 1.1 * len(rows)))
    for r, (row, title) in enumerate(zip(rows, titles)):
        for c, image in enumerate(row):
            axes[r, c].imshow(image[0], cmap="gray", vmin=0, vmax=1)
            axes[r, c].axis("off")
        axes[r, 0].set_title(title, loc="left", fontsize=9)
    plt.tight_layout()
    plt.show()


show_rows([ae_test[:10], autoencoder.predict(ae_test[:10])], ["test images", "reconstructed from 2 numbers"])
codes = encoder(autoencoder).predict(ae_test)
plt.figure(figsize=(6, 5))
plt.scatter(codes[:, 0], codes[:, 1], c=y_test, cmap="tab10", s=3)
plt.colorbar(label="label")
plt.xlabel("code 1")
plt.ylabel("code 2")
plt.title(f"2-D codes of {len(codes)} {DATA} test images")
plt.show()

# %% [markdown]
# ## A masked autoencoder
# Each image is cut into a 4×4 grid of 7×7 patches and half of them, chosen afresh every epoch, are
# blanked; the target is the whole image, so the network has to fill the holes from what it sees. A 2-D
# code cannot carry enough to inpaint, so this one has a 16-D code. (He et al.'s masked autoencoders
# score the loss on the hidden patches only and mask 75% of them; here the loss covers the whole image.)

# %%
PATCH, MASK_RATIO = 7, 0.5


def mask(x, rng):
    """x with MASK_RATIO of its PATCH×PATCH patches set to 0, drawn independently for each image."""
    n, grid = len(x), x.shape[-1] // PATCH
    hidden = np.argsort(rng.random((n, grid * grid)), axis=1) < MASK_RATIO * grid * grid
    keep = np.repeat(np.repeat(~hidden.reshape(n, 1, grid, grid), PATCH, 2), PATCH, 3)
    return x * keep


rng = np.random.default_rng(1)
masked_test = mask(ae_test, rng)
mae = cnn.applications.conv_autoencoder(latent_dim=16, seed=0)
mae.compile(cnn.optimizers.Adam(1e-3), "binary_crossentropy")
mae_logs = {"loss": [], "val_loss": []}
start = time.perf_counter()
for epoch in range(AE_EPOCHS):
    logs = mae.fit(mask(ae_train, rng), ae_train, batch_size=64, epochs=epoch + 1, initial_epoch=epoch,
                   verbose=0, validation_data=(masked_test, ae_test)).history
    mae_logs["loss"] += logs["loss"]
    mae_logs["val_loss"] += logs["val_loss"]
mae_seconds = time.perf_counter() - start
mae_loss = mae_logs["val_loss"][-1]
plain_on_masked = autoencoder.evaluate(masked_test, ae_test, verbose=0)
print(f"masked test images: binary cross-entropy {mae_loss:.4f} (masked autoencoder), "
      f"{plain_on_masked:.4f} (the 2-D autoencoder above, never shown masks)")
cnn.plot.history(mae_logs)
plt.show()
show_rows([ae_test[:10], masked_test[:10], mae.predict(masked_test[:10])],
          ["test images", "half the patches hidden", "filled in by the masked autoencoder"])

# %% [markdown]
# ## The table

# %%
steps = f"{STEPS} steps of {BATCH}"
rows = [
    (f"ResNet-{DEPTH} training loss, mean of last 5 steps", *(f"{np.mean(curves[k][-5:]):.4f}" for k in curves)),
    (f"ResNet-{DEPTH} test accuracy, {steps} ({FASHION})", *(f"{accuracy[k]:.4f}" for k in curves)),
    (f"ResNet-{DEPTH} training time, s ({cnn.get_num_threads()} threads)", *(f"{times[k]:.1f}" for k in curves)),
    (f"ResNet-{DEPTH} float64, largest loss gap to PyTorch, {CHECK} steps",
     f"{float64_gap:.1e}" if torch is not None else "-"),
    (f"autoencoder (2-D code) test BCE, {AE_EPOCHS} epoch(s) ({DATA})", f"{ae_loss:.4f}"),
    (f"masked autoencoder (16-D code) test BCE, masked inputs ({DATA})", f"{mae_loss:.4f}"),
    ("2-D autoencoder test BCE on the same masked inputs", f"{plain_on_masked:.4f}"),
]
print(f"{'quantity':<62} {'cnn':>10} {'PyTorch':>10}")
for name, *values in rows:
    print(f"{name:<62} " + " ".join(f"{v:>10}" for v in values + ["-"] * (2 - len(values))))
