# %% [markdown]
# # Keras-style dense networks (CS 5489, lecture 8b)
#
# The lecture builds every model with Keras' `Sequential`. Here the same code runs with `cnn`:
# toy 2-D models with their `summary()` tables and decision regions, `EarlyStopping`, then the MNIST
# table — logistic regression, one hidden layer of 50/200/1000 ReLU units, and 500-500 — trained on a
# 6,000-image subset (every tenth training image), mean-centred, with SGD(momentum 0.9, Nesterov),
# batch 50 and EarlyStopping(val_accuracy, min_delta 1e-4, patience 5).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons

import cnn
from cnn.callbacks import EarlyStopping
from cnn.layers import Dense
from cnn.optimizers import SGD
from cnn.utils import to_categorical

QUICK = os.environ.get("CNN_QUICK") == "1"
MNIST_DIR = None  # a folder holding the four MNIST IDX files, to use your own copy

# %% [markdown]
# ## Toy 2-D models

# %%
X, Y = make_moons(n_samples=300, noise=0.2, random_state=0)
Xf = X.astype(np.float32)
Yb = to_categorical(Y)


def toy(layers):
    model = cnn.Sequential(layers, seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
                  metrics=["accuracy"])
    return model


toys = {
    "2-40-2": toy([Dense(40, input_dim=2, activation="relu"), Dense(2, activation="softmax")]),
    "2-8-8-3-2": toy([Dense(8, input_dim=2, activation="relu"), Dense(8, activation="relu"),
                      Dense(3, activation="relu"), Dense(2, activation="softmax")]),
}
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
xx, yy = np.meshgrid(np.linspace(-2, 3, 200), np.linspace(-1.5, 2, 200))
for ax, (name, model) in zip(axes, toys.items()):
    model.summary()
    model.fit(Xf, Yb, epochs=20 if QUICK else 100, batch_size=50, verbose=0)
    regions = model.predict(np.c_[xx.ravel(), yy.ravel()].astype(np.float32)).argmax(axis=1)
    ax.contourf(xx, yy, regions.reshape(xx.shape), alpha=0.3, cmap="coolwarm")
    ax.scatter(X[:, 0], X[:, 1], c=Y, cmap="coolwarm", edgecolors="k", s=12)
    ax.set_title(f"{name}: {model.count_params()} parameters, accuracy {model.evaluate(Xf, Yb, verbose=0)[1]:.3f}")
plt.show()

# %% [markdown]
# ## Early stopping
# `EarlyStopping(monitor='val_loss', patience=5, verbose=1)` stops once the validation loss has not
# improved for 5 epochs; with `restore_best_weights=True` the best epoch's weights come back.

# %%
model = toy([Dense(40, input_dim=2, activation="relu"), Dense(2, activation="softmax")])
stop = EarlyStopping(monitor="val_loss", min_delta=1e-4, patience=5, verbose=1, restore_best_weights=True)
history = model.fit(Xf, Yb, epochs=200, batch_size=50, validation_split=0.2, callbacks=[stop], verbose=0)
print(f"ran {len(history.history['loss'])} epochs; best val_loss {min(history.history['val_loss']):.4f}")
cnn.plot.history(history)
plt.show()

# %% [markdown]
# ## MNIST: the lecture's table
# MNIST when its files are found (see `cnn.datasets.load_mnist`), otherwise Fashion-MNIST.

# %%
(x_train, y_train), (x_test, y_test), DATA = cnn.datasets.load_mnist_or_fashion(MNIST_DIR)
x_train = x_train[::10].reshape(-1, 784).astype(np.float32) / 255  # every tenth image: 6,000
y_train = y_train[::10]
x_test = x_test.reshape(-1, 784).astype(np.float32) / 255
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:1500], y_train[:1500], x_test[:2000], y_test[:2000]
mean = x_train.mean(axis=0)
x_train, x_test = x_train - mean, x_test - mean
Yb_train, Yb_test = to_categorical(y_train, 10), to_categorical(y_test, 10)
print(DATA, x_train.shape, x_test.shape)

# %%
LECTURE = {"logistic regression": 0.8911, "50 ReLU": 0.9380, "200 ReLU": 0.9437, "1000 ReLU": 0.9462,
           "500-500 ReLU": 0.9529}
ARCHITECTURES = {
    "logistic regression": ([], 0.05),
    "50 ReLU": ([50], 0.1),
    "200 ReLU": ([200], 0.1),
    "1000 ReLU": ([1000], 0.1),
    "500-500 ReLU": ([500, 500], 0.1),
}
results = {}
for name, (hidden, lr) in ARCHITECTURES.items():
    layers = [Dense(h, activation="relu", **({"input_dim": 784} if i == 0 else {})) for i, h in enumerate(hidden)]
    layers.append(Dense(10, activation="softmax", **({} if hidden else {"input_dim": 784})))
    model = cnn.Sequential(layers, seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=SGD(learning_rate=lr, momentum=0.9, nesterov=True),
                  metrics=["accuracy"])
    stop = EarlyStopping(monitor="val_accuracy", min_delta=1e-4, patience=5, verbose=1)
    start = time.perf_counter()
    history = model.fit(x_train, Yb_train, epochs=3 if QUICK else 100, batch_size=50, validation_split=0.1,
                        callbacks=[stop], verbose=0)
    seconds = time.perf_counter() - start
    results[name] = dict(model=model, accuracy=model.evaluate(x_test, Yb_test, verbose=0)[1],
                         epochs=len(history.history["loss"]), seconds=seconds, params=model.count_params())
    print(f"{name}: test accuracy {results[name]['accuracy']:.4f} after {results[name]['epochs']} epochs "
          f"({seconds:.1f} s)")

# %% [markdown]
# ## What the first layer learned
# Each hidden unit's 784 input weights, as a 28×28 image.

# %%
W = results["50 ReLU"]["model"].get_layer(index=0).get_weights()[0]
cnn.plot.filters(W, (28, 28))
plt.show()
W = results["logistic regression"]["model"].get_layer(index=0).get_weights()[0]
cnn.plot.filters(W, (28, 28))
plt.show()

# %% [markdown]
# ## The table

# %%
print(f"{'model':<22} {'params':>9} {'lecture (Keras, MNIST)':>23} {'cnn (' + DATA + ')':>22} {'epochs':>7} "
      f"{'time s':>7}")
for name, r in results.items():
    print(f"{name:<22} {r['params']:>9,} {LECTURE[name]:>23.4f} {r['accuracy']:>22.4f} {r['epochs']:>7} "
          f"{r['seconds']:>7.1f}")
