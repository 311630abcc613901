# %% [markdown]
# # XOR, an MLP on MNIST, and LeNet-5 (Nature of Mathematical Modeling; CS 461)
#
# 1. XOR with `MLPClassifier(solver='lbfgs', hidden_layer_sizes=(4), activation='tanh', random_state=1)`.
# 2. The same XOR as a tanh/sigmoid network trained on mean squared error by full-batch gradient
#    descent (rate 10, 500 steps).
# 3. `MLPClassifier(solver='adam', hidden_layer_sizes=(100), activation='relu', tol=0.05, verbose=True)`
#    on MNIST, with the first five test predictions shown as images.
# 4. LeNet-5 trained with `cnn` and with PyTorch from the same initial weights: loss curves overlaid,
#    accuracy, time, and a confusion matrix.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import cnn
from cnn.layers import Dense

QUICK = os.environ.get("CNN_QUICK") == "1"
MNIST_DIR = None  # a folder holding the four MNIST IDX files, to use your own copy

# %% [markdown]
# ## XOR

# %%
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
y = np.array([0, 1, 1, 0])
xor = cnn.MLPClassifier(solver="lbfgs", hidden_layer_sizes=(4), activation="tanh", random_state=1).fit(X, y)
xor_score = xor.score(X, y)
print("lbfgs predictions", xor.predict(X), "score", xor_score)

# %%
net = cnn.Sequential([Dense(2, "tanh", input_dim=2), Dense(1, "sigmoid")], seed=3, dtype="float64")
net.compile(cnn.optimizers.SGD(learning_rate=10.0), "mse")
history = net.fit(X, y.reshape(-1, 1), epochs=500, batch_size=4, shuffle=False, verbose=0)
gd_out = net.predict(X)[:, 0]
print("gradient descent outputs", np.round(gd_out, 3), "final mse", history.history["loss"][-1])
plt.figure(figsize=(4, 3))
plt.semilogy(history.history["loss"])
plt.xlabel("step")
plt.ylabel("mean squared error")
plt.show()

# %% [markdown]
# ## MLPClassifier on MNIST
# MNIST when its files are found (see `cnn.datasets.load_mnist`), otherwise Fashion-MNIST.

# %%
(x_train, y_train), (x_test, y_test), DATA = cnn.datasets.load_mnist_or_fashion(MNIST_DIR)
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:3000], y_train[:3000], x_test[:1000], y_test[:1000]
flat_train = x_train.reshape(len(x_train), -1).astype(np.float32) / 255
flat_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 255
mlp = cnn.MLPClassifier(solver="adam", hidden_layer_sizes=(100), activation="relu", tol=0.05, verbose=True,
                        random_state=0)
start = time.perf_counter()
mlp.fit(flat_train, y_train)
mlp_seconds = time.perf_counter() - start
mlp_score = mlp.score(flat_test, y_test)
print(f"{DATA}: test score {mlp_score:.4f} in {mlp_seconds:.1f} s")
fig, axes = plt.subplots(1, 5, figsize=(10, 2))
for ax, image, guess in zip(axes, x_test[:5], mlp.predict(flat_test[:5])):
    ax.imshow(image, cmap="gray")
    ax.set_title(f"predicted {guess}")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## LeNet-5, cnn against PyTorch from the same initial weights
# The lecture's variant: 32×32 inputs mapped to 1.175 − 1.275·x, Conv 6@5×5 → AvgPool 2 → 1×1 conv
# with groups=6 (a per-channel scale and bias) → 1.7159·tanh → Conv 16@5×5 → AvgPool 2 → 1×1 conv
# groups=16 → 1.7159·tanh → Conv 120@5×5 → relu → Flatten → Dense 84 → relu → Dense 10, Adam 5e-4,
# batch 32 (the lecture leaves C5's and F6's activations open; relu learns faster in five epochs).

# %%
EPOCHS = 1 if QUICK else 5
images_train = cnn.applications.lenet5_inputs(x_train)
images_test = cnn.applications.lenet5_inputs(x_test)
model = cnn.applications.lenet5(seed=0)
model.compile(cnn.optimizers.Adam(5e-4, variant="torch"), "sparse_categorical_crossentropy", ["accuracy"])
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed: the comparison below runs cnn alone")

# the same batches for both: one fixed order, stepped through with train_on_batch to log every loss
order = np.random.default_rng(0).permutation(len(images_train))
curves = {"cnn": []}
start = time.perf_counter()
for _ in range(EPOCHS):
    for s in range(0, len(order), 32):
        idx = order[s:s + 32]
        curves["cnn"].append(model.train_on_batch(images_train[idx], y_train[idx])[0])
times = {"cnn": time.perf_counter() - start}
accuracy = {"cnn": model.evaluate(images_test, y_test, verbose=0)[1]}

if torch is not None:
    twin = cnn.applications.lenet5_torch()
    cnn.interop.to_torch(cnn.applications.lenet5(seed=0), twin)  # the same initial weights
    optimizer = torch.optim.Adam(twin.parameters(), lr=5e-4)
    xt, yt = torch.tensor(images_train[order]), torch.tensor(y_train[order].astype(np.int64))
    curves["PyTorch"] = []
    start = time.perf_counter()
    for _ in range(EPOCHS):
        for s in range(0, len(xt), 32):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(twin(xt[s:s + 32]), yt[s:s + 32])
            loss.backward()
            optimizer.step()
            curves["PyTorch"].append(loss.item())
    times["PyTorch"] = time.perf_counter() - start
    with torch.no_grad():
        accuracy["PyTorch"] = float((twin(torch.tensor(images_test)).argmax(1).numpy() == y_test).mean())

plt.figure(figsize=(7, 3))
for name, curve in curves.items():
    plt.plot(np.convolve(curve, np.ones(50) / 50, mode="valid"), label=name, alpha=0.8)
plt.xlabel("step")
plt.ylabel("training loss (50-step mean)")
plt.legend()
plt.show()
cnn.plot.confusion_matrix(y_test, model.predict(images_test).argmax(axis=1))
plt.show()

# %% [markdown]
# ## The table

# %%
rows = [
    ("XOR, lbfgs MLPClassifier score", "1.0", f"{xor_score:.3f}", "-"),
    ("XOR, gradient descent on MSE, outputs", "[0 1 1 0]", str(np.round(gd_out).astype(int)), "-"),
    (f"MLPClassifier(100, adam, tol=0.05) test score ({DATA})", "0.958 (MNIST)", f"{mlp_score:.4f}", "-"),
    (f"LeNet-5 test accuracy, {EPOCHS} epoch(s) ({DATA})", "0.97-0.98 (MNIST)", f"{accuracy['cnn']:.4f}",
     f"{accuracy.get('PyTorch', float('nan')):.4f}"),
    (f"LeNet-5 training time, s ({cnn.get_num_threads()} threads)", "-", f"{times['cnn']:.1f}",
     f"{times.get('PyTorch', float('nan')):.1f}"),
]
print(f"{'quantity':<55} {'lecture':>18} {'cnn':>10} {'PyTorch':>10}")
for row in rows:
    print(f"{row[0]:<55} {row[1]:>18} {row[2]:>10} {row[3]:>10}")
