# %% [markdown]
# # LeNet-5 on MNIST: training-set size, the learning-rate schedule, augmentation (CS 461, lecture 20)
#
# The lecture trains LeNet-5 with a command-line program, `python -m cnn.lenet` here, whose knobs are
# `--train_samples`, `--epochs`, `--batch_size`, `--random_seed` and `--save_mismatch`. This notebook runs
# the program's training (`cnn.lenet.train`, the same code) for the lecture's experiments:
#
# 1. loss and accuracy per epoch for several training-set sizes;
# 2. the original authors' schedule (0.0005 for two epochs, 0.0002 for two, 0.0001 for three, 0.00005 for
#    four, then 0.00001) against a constant rate;
# 3. augmentation ("some stretching and light rotation", plus small shifts) against none, on the same seeds:
#    the augmented network starts from the same weights and sees its batches in the same order;
# 4. a stronger augmentation, to see what a bad one does;
# 5. a gallery of misclassified test digits, and a table of the lecture's conclusions next to ours.
#
# CNN_QUICK=1 (the test suite) runs tiny versions of each on 1,000 test images.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import cnn
from cnn import lenet

QUICK = os.environ.get("CNN_QUICK") == "1"
MNIST_DIR = None  # a folder holding the four MNIST IDX files, to use your own copy

(x_train, y_train), (x_test, y_test), DATA = cnn.datasets.load_mnist_or_fashion(MNIST_DIR)
if QUICK:
    x_test, y_test = x_test[:1000], y_test[:1000]
DATASET = ((x_train, y_train), (x_test, y_test))
print(DATA, x_train.shape, x_test.shape)

SIZES = [300, 1000] if QUICK else [1000, 5000, 20000, 60000]
EPOCHS = 1 if QUICK else 5
SEED = 0
started = time.perf_counter()


def run(*flags):
    """cnn.lenet.train with the program's flags, quietly; the result's history is per epoch."""
    return lenet.train(lenet.parser().parse_args(["--random_seed", str(SEED), *map(str, flags)]), DATASET,
                       verbose=False)


# %% [markdown]
# ## 1. Curves for several training-set sizes
# Constant learning rate 0.0005 (Adam), batch 32. Each size trains on the first N training images and is
# tested on the whole test set after every epoch.

# %%
by_size = {n: run("--train_samples", n, "--epochs", EPOCHS) for n in SIZES}

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
epochs = np.arange(1, EPOCHS + 1)
for n, result in by_size.items():
    h = result["history"]
    line, = axes[0].plot(epochs, h["loss"], "--", label=f"train, {n}")
    axes[0].plot(epochs, h["val_loss"], "-", color=line.get_color(), label=f"test, {n}")
    axes[1].plot(epochs, h["accuracy"], "--", color=line.get_color())
    axes[1].plot(epochs, h["val_accuracy"], "-", color=line.get_color(), label=f"{n} images")
axes[0].set(xlabel="epoch", ylabel="loss", title="training (dashed) and testing (solid) loss")
axes[1].set(xlabel="epoch", ylabel="accuracy", title="training (dashed) and testing (solid) accuracy")
axes[0].legend(fontsize=7, ncol=2)
axes[1].legend(fontsize=7)
plt.tight_layout()
plt.show()
for n, result in by_size.items():
    print(f"{n:>6} training images: test accuracy {result['accuracy']:.4f}")

# %% [markdown]
# ## 2. The lecture's learning-rate schedule against a constant rate
# `--schedule lecture` is `LearningRateScheduler(PiecewiseConstantDecay([1, 3, 6, 10], [5e-4, 2e-4, 1e-4,
# 5e-5, 1e-5]))`: one line, with Keras's boundaries (epochs from 0, each boundary closing its piece).

# %%
SCHEDULE_SAMPLES, SCHEDULE_EPOCHS = (1000, 3) if QUICK else (20000, 12)
constant = run("--train_samples", SCHEDULE_SAMPLES, "--epochs", SCHEDULE_EPOCHS)
scheduled = run("--train_samples", SCHEDULE_SAMPLES, "--epochs", SCHEDULE_EPOCHS, "--schedule", "lecture")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.3))
epochs = np.arange(1, SCHEDULE_EPOCHS + 1)
for name, result in (("constant 0.0005", constant), ("lecture's schedule", scheduled)):
    h = result["history"]
    axes[0].plot(epochs, h["learning_rate"], "o-", label=name)
    axes[1].plot(epochs, h["loss"], "--", label=f"train, {name}")
    axes[1].plot(epochs, h["val_loss"], "-", label=f"test, {name}")
    axes[2].plot(epochs, h["val_accuracy"], "o-", label=name)
axes[0].set(xlabel="epoch", ylabel="learning rate", yscale="log")
axes[1].set(xlabel="epoch", ylabel="loss")
axes[2].set(xlabel="epoch", ylabel="test accuracy")
for ax in axes:
    ax.legend(fontsize=7)
plt.tight_layout()
plt.show()
print(f"{SCHEDULE_SAMPLES} images, {SCHEDULE_EPOCHS} epochs: constant {constant['accuracy']:.4f}, "
      f"schedule {scheduled['accuracy']:.4f}")

# %% [markdown]
# ## 3. Augmentation against none, on the same seeds
# `--augment`: rotation up to 0.03 of a turn (about 11°), height and width each stretched by up to 10%
# independently, shifts up to 5% of the image, resampled bilinearly by `cnn.image.affine_transform`'s C
# kernel; the border fills with the background level. Active only while training. The runs without it are
# section 1's: same seed, same initial weights, same batch order.

# %%
augmented = {n: run("--train_samples", n, "--epochs", EPOCHS, "--augment") for n in SIZES}

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
plain_acc = [by_size[n]["accuracy"] for n in SIZES]
aug_acc = [augmented[n]["accuracy"] for n in SIZES]
axes[0].plot(SIZES, plain_acc, "o-", label="no augmentation")
axes[0].plot(SIZES, aug_acc, "s-", label="augmentation")
axes[0].set(xscale="log", xlabel="training images", ylabel="test accuracy",
            title=f"test accuracy after {EPOCHS} epoch(s)")
axes[0].legend()
n_big = SIZES[-1]
for name, result in (("none", by_size[n_big]), ("augmented", augmented[n_big])):
    h = result["history"]
    line, = axes[1].plot(np.arange(1, EPOCHS + 1), h["loss"], "--", label=f"train, {name}")
    axes[1].plot(np.arange(1, EPOCHS + 1), h["val_loss"], "-", color=line.get_color(), label=f"test, {name}")
axes[1].set(xlabel="epoch", ylabel="loss", title=f"{n_big} training images")
axes[1].legend(fontsize=7)
plt.tight_layout()
plt.show()
print(f"{'training images':>16} {'none':>8} {'augmented':>10} {'difference':>11}")
for n, a, b in zip(SIZES, plain_acc, aug_acc):
    print(f"{n:>16} {a:>8.4f} {b:>10.4f} {b - a:>+11.4f}")

# %% [markdown]
# A few augmented training images, as the network sees them (the first layers' output while training):

# %%
model = augmented[SIZES[0]]["model"]
sample = cnn.applications.lenet5_inputs(x_train[:8])
warped = sample
for layer in model.layers[:3]:
    warped = layer.forward(warped, training=True)
fig, axes = plt.subplots(2, 8, figsize=(10, 2.8))
for i in range(8):
    axes[0, i].imshow(sample[i, 0], cmap="gray_r")
    axes[1, i].imshow(warped[i, 0], cmap="gray_r")
    axes[0, i].axis("off")
    axes[1, i].axis("off")
axes[0, 0].set_title("original", fontsize=8, loc="left")
axes[1, 0].set_title("augmented", fontsize=8, loc="left")
plt.show()

# %% [markdown]
# ## 4. A bad augmentation
# Rotations up to a quarter turn, stretching up to 50% and shifts up to 20%: a 6 turns into a 9, a 1
# leaves the frame.

# %%
STRONG_SAMPLES = SIZES[-1] if QUICK else 5000
strong = run("--train_samples", STRONG_SAMPLES, "--epochs", EPOCHS, "--augment", "--rotation", 0.25, "--zoom", 0.5,
             "--translation", 0.2)
light = augmented.get(STRONG_SAMPLES) or run("--train_samples", STRONG_SAMPLES, "--epochs", EPOCHS, "--augment")
plain = by_size.get(STRONG_SAMPLES) or run("--train_samples", STRONG_SAMPLES, "--epochs", EPOCHS)
print(f"{'augmentation':>14} {'train loss':>11} {'test loss':>10} {'test accuracy':>14}")
for name, result in (("none", plain), ("light", light), ("strong", strong)):
    h = result["history"]
    print(f"{name:>14} {h['loss'][-1]:>11.4f} {h['val_loss'][-1]:>10.4f} {result['accuracy']:>14.4f}")

# %% [markdown]
# ## 5. Misclassified test digits
# What `--save_mismatch` writes as PNG files, from the largest training set's run.

# %%
best = by_size[SIZES[-1]]
wrong = np.flatnonzero(best["predicted"] != y_test)[:24]
fig, axes = plt.subplots(3, 8, figsize=(10, 4.2))
for ax in axes.flat:
    ax.axis("off")
for ax, i in zip(axes.flat, wrong):
    ax.imshow(x_test[i], cmap="gray_r")
    ax.set_title(f"{y_test[i]} as {best['predicted'][i]}", fontsize=8)
plt.suptitle(f"{int((best['predicted'] != y_test).sum())} of {len(y_test)} test digits misclassified "
             f"(true as predicted)")
plt.show()

# %% [markdown]
# ## The lecture's conclusions next to ours

# %%
gain = [b - a for a, b in zip(plain_acc, aug_acc)]
rows = [
    ("test accuracy grows with the training set", "yes",
     " -> ".join(f"{by_size[n]['accuracy']:.3f}" for n in SIZES) + f" ({'/'.join(map(str, SIZES))})"),
    (f"schedule vs constant 0.0005, {SCHEDULE_SAMPLES} images, {SCHEDULE_EPOCHS} ep.", "the authors' choice",
     f"{scheduled['accuracy']:.4f} vs {constant['accuracy']:.4f}"),
    ("light augmentation changes test accuracy", "no (unchanged)",
     ", ".join(f"{g:+.4f}" for g in gain) + " by size"),
    ("augmentation is another hyperparameter", "yes", f"strong: {strong['accuracy']:.4f} vs none "
     f"{plain['accuracy']:.4f} ({STRONG_SAMPLES} images)"),
    ("bad augmentations hurt (lecture: overfitting)", "yes",
     f"train/test loss {strong['history']['loss'][-1]:.3f}/{strong['history']['val_loss'][-1]:.3f}"),
]
print(f"{DATA}, {EPOCHS} epoch(s), seed {SEED}, {cnn.get_num_threads()} threads, "
      f"{time.perf_counter() - started:.0f} s in all")
print(f"{'conclusion':<55} {'lecture':>20}  cnn")
for row in rows:
    print(f"{row[0]:<55} {row[1]:>20}  {row[2]}")
