# %% [markdown]
# # Universal approximation and vanishing gradients (CS 461, lecture 19)
#
# 1. A hand-weighted Linear–Sigmoid–Linear–Sigmoid–Linear network that turns sigmoids into a ReLU.
#    Layer 1 makes 19 steep sigmoid steps σ(100·(x − k + ½)), k = 1..19 (each ≈ 1 once x ≥ k);
#    layer 2 re-sharpens each step; layer 3 adds them up, so for whole numbers x the output is
#    max(0, x). The weights are set by hand with `set_weights`.
# 2. Wide one-hidden-layer networks fitted to 1-D functions.
# 3. The vanishing gradient made visible: per-layer gradient norms of a deep sigmoid network
#    against a ReLU one, recorded by the `GradientNorms` callback.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import cnn
from cnn.layers import Dense

QUICK = os.environ.get("CNN_QUICK") == "1"

# %%
K = 19
steep = 100.0
relu_net = cnn.Sequential([Dense(K, "sigmoid", input_dim=1), Dense(K, "sigmoid"), Dense(1)], dtype="float64")
relu_net.set_weights([
    np.full((1, K), steep), -steep * (np.arange(1, K + 1) - 0.5),  # σ(100(x - k + 1/2))
    steep * np.eye(K), np.full(K, -steep / 2),                     # σ(100(h - 1/2)): 0 or 1
    np.ones((K, 1)), np.zeros(1),                                  # count the steps passed
])
inputs = np.arange(-20, 20, dtype=np.float64).reshape(-1, 1)
h1 = relu_net.layers[0].forward(inputs)
h2 = relu_net.layers[1].forward(h1)
out = relu_net.layers[2].forward(h2)
for x, a, b, o in zip(inputs[:, 0], h1, h2, out[:, 0]):
    print(f"x = {x:5.0f}   layer 1 active: {int((a > 0.5).sum()):2d}   layer 2 active: {int((b > 0.5).sum()):2d}"
          f"   output = {o:8.4f}   max(0, x) = {max(0, x):4.0f}")
relu_error = float(np.max(np.abs(out[:, 0] - np.maximum(0, inputs[:, 0]))))

# %%
plt.figure(figsize=(5, 3))
plt.plot(inputs, np.maximum(0, inputs), "k--", label="max(0, x)")
plt.plot(inputs, out, "o", label="sigmoid network")
plt.legend()
plt.title("a ReLU from sigmoids")
plt.show()

# %% [markdown]
# ## Wide one-layer networks fitted to 1-D functions

# %%
grid = np.linspace(-3, 3, 256).reshape(-1, 1).astype(np.float32)
targets = {"sin(2x)": np.sin(2 * grid), "|x|": np.abs(grid), "step": (grid > 0).astype(np.float32)}
fits = {}
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, (name, target) in zip(axes, targets.items()):
    model = cnn.Sequential([Dense(200, "sigmoid", input_dim=1), Dense(1)], seed=0)
    model.compile(cnn.optimizers.Adam(0.01), "mse")
    model.fit(grid, target, epochs=100 if QUICK else 1000, batch_size=64, verbose=0)
    fits[name] = float(model.evaluate(grid, target))
    ax.plot(grid, target, "k--", label=name)
    ax.plot(grid, model.predict(grid), label=f"200 sigmoids (mse {fits[name]:.4f})")
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## The vanishing gradient
# Eight hidden layers of 32 units on scikit-learn's digits, sigmoid against ReLU, same seed and
# optimizer. `GradientNorms` records each layer's weight-gradient norm per epoch.

# %%
from sklearn.datasets import load_digits

digits_x, digits_y = load_digits(return_X_y=True)
digits_x = (digits_x / 16.0).astype(np.float32)
norms = {}
for activation in ["sigmoid", "relu"]:
    layers = [Dense(32, activation, input_dim=64)] + [Dense(32, activation) for _ in range(7)] + [Dense(10, "softmax")]
    model = cnn.Sequential(layers, seed=0)
    model.compile(cnn.optimizers.SGD(0.05), "sparse_categorical_crossentropy", ["accuracy"])
    history = model.fit(digits_x, digits_y, epochs=3 if QUICK else 10, batch_size=32, verbose=0,
                        callbacks=[cnn.callbacks.GradientNorms()])
    norms[activation] = [history.history[f"grad_norm/{layer.name}"][0] for layer in model.layers]

plt.figure(figsize=(6, 3))
for activation, values in norms.items():
    plt.semilogy(range(1, len(values) + 1), values, "o-", label=activation)
plt.xlabel("layer (input → output)")
plt.ylabel("weight-gradient norm, first epoch")
plt.legend()
plt.show()

# %% [markdown]
# ## The table

# %%
ratio = {a: v[0] / v[-2] for a, v in norms.items()}  # first hidden layer over last hidden layer
print(f"{'quantity':<52} {'lecture':>12} {'cnn':>12}")
print(f"{'sigmoid network = max(0, x) on -20..19, max error':<52} {'0 (exact)':>12} {relu_error:>12.2e}")
for name, mse in fits.items():
    print(f"{'200-sigmoid fit of ' + name + ', mean squared error':<52} {'small':>12} {mse:>12.5f}")
print(f"{'gradient norm layer 1 / layer 8, sigmoid':<52} {'<< 1':>12} {ratio['sigmoid']:>12.2e}")
print(f"{'gradient norm layer 1 / layer 8, relu':<52} {'~ 1':>12} {ratio['relu']:>12.2e}")
