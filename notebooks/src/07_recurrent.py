# %% [markdown]
# # Recurrent networks (Nature of Mathematical Modeling; CS 461)
#
# "An RNN is like an IIR filter": its state is fed back, so its response to an impulse goes on after the
# impulse ends, where a feed-forward network (an FIR filter) forgets after its window. LSTMs add cells with
# memories, gated so that gradients can carry information across many steps.
#
# 1. A `SimpleRNN` learns a second-order IIR filter from a noisy record of its input and output; the learned
#    and the true impulse and frequency responses are plotted.
# 2. An `LSTM` reads MNIST digits row by row (28 steps of 28 pixels) and classifies them.
#
# Each is trained with `cnn` and with PyTorch from the same initial weights (`cnn.interop.to_torch`), on the
# same batches, with the same Adam.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import signal

import cnn
from cnn.interop import to_torch
from cnn.layers import LSTM, Dense, SimpleRNN, TimeDistributed

QUICK = os.environ.get("CNN_QUICK") == "1"
MNIST_DIR = None  # a folder holding the four MNIST IDX files, to use your own copy
torch.manual_seed(0)

# %% [markdown]
# ## An RNN learns an IIR filter
# The system: a resonant second-order low-pass, y[n] = 1.6 y[n-1] - 0.81 y[n-2] + 0.1 u[n] (poles at
# 0.9·e^{±0.48i}). Its input u is white noise; the record we train on is its output plus measurement noise of
# standard deviation 0.05 (a mean squared error of 0.0025 is the floor). The network, SimpleRNN(16) then a
# Dense(1) at every step, is a nonlinear IIR filter with 16 states; torch's twin is nn.RNN then nn.Linear.

# %%
b_true, a_true = [0.1], [1.0, -1.6, 0.81]
rng = np.random.default_rng(0)
n_seq, steps = 32, 64
u = rng.standard_normal((n_seq, steps, 1))
y_clean = signal.lfilter(b_true, a_true, u, axis=1)
y_noisy = y_clean + 0.05 * rng.standard_normal(y_clean.shape)

filt = cnn.Sequential([SimpleRNN(16, return_sequences=True, input_shape=(steps, 1)), TimeDistributed(Dense(1))],
                      seed=1, dtype="float64")
filt.compile(optimizer=cnn.optimizers.Adam(0.01, variant="torch"), loss="mse")


class TorchFilter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.out = torch.nn.RNN(1, 16, batch_first=True), torch.nn.Linear(16, 1)

    def forward(self, x):
        return self.out(self.rnn(x)[0])


twin = to_torch(filt, TorchFilter().double())
# cnn's SimpleRNN keeps one bias, torch two that add (to_torch puts the sum in b_ih and zeros b_hh); Adam moves
# each torch bias on its own, so b_hh stays fixed at zero for the two to take the same steps
twin.rnn.bias_hh_l0.requires_grad_(False)
topt = torch.optim.Adam([p for p in twin.parameters() if p.requires_grad], lr=0.01)
epochs = 200 if QUICK else 1500
filt_curves = {"cnn": [], "PyTorch": []}
ut, yt = torch.tensor(u), torch.tensor(y_noisy)
for _ in range(epochs):  # full batch: one step an epoch
    filt_curves["cnn"].append(filt.train_on_batch(u, y_noisy))
    topt.zero_grad()
    loss = torch.mean((twin(ut) - yt) ** 2)
    loss.backward()
    topt.step()
    filt_curves["PyTorch"].append(loss.item())
filt_gap = max(abs(a - b) for a, b in zip(filt_curves["cnn"], filt_curves["PyTorch"]))
print(f"final training MSE: cnn {filt_curves['cnn'][-1]:.5f}, PyTorch {filt_curves['PyTorch'][-1]:.5f}; "
      f"largest per-step difference {filt_gap:.2e} (noise floor 0.0025)")

# %%
# the response to a small impulse, rescaled: the tanh network is close to linear for small inputs
impulse = np.zeros((1, steps, 1))
impulse[0, 0, 0] = 0.1
h_true = signal.lfilter(b_true, a_true, impulse[0, :, 0]) / 0.1
h_learned = (filt.predict(impulse, verbose=0) - filt.predict(np.zeros_like(impulse), verbose=0))[0, :, 0] / 0.1
fig, axes = plt.subplots(1, 3, figsize=(13, 3))
axes[0].plot(h_true, "k", label="true")
axes[0].plot(h_learned, "r--", label="learned (cnn)")
axes[0].set(title="impulse response", xlabel="n")
axes[0].legend()
w, H_true = signal.freqz(b_true, a_true, worN=256)
H_learned = np.fft.rfft(h_learned, 2 * 256)[:256]
axes[1].semilogy(w, np.abs(H_true), "k", label="true")
axes[1].semilogy(w, np.abs(H_learned), "r--", label="learned")
axes[1].set(title="frequency response |H|", xlabel="ω (rad/sample)")
axes[1].legend()
axes[2].plot(y_noisy[0, :, 0], ".", color="0.6", label="noisy record")
axes[2].plot(y_clean[0, :, 0], "k", label="true output")
axes[2].plot(filt.predict(u[:1], verbose=0)[0, :, 0], "r--", label="RNN")
axes[2].set(title="a training sequence", xlabel="n")
axes[2].legend()
plt.show()
impulse_error = float(np.linalg.norm(h_learned - h_true) / np.linalg.norm(h_true))
print(f"relative error of the learned impulse response: {impulse_error:.3f}")

# %% [markdown]
# ## An LSTM reads MNIST row by row
# Each image is a sequence of 28 rows of 28 pixels; LSTM(64) reads it top to bottom and Dense(10) classifies
# its last state. MNIST when its files are found (see `cnn.datasets.load_mnist`), otherwise Fashion-MNIST.

# %%
(x_train, y_train), (x_test, y_test), DATA = cnn.datasets.load_mnist_or_fashion(MNIST_DIR)
n_train, n_test, EPOCHS = (2000, 500, 1) if QUICK else (20000, 10000, 3)
rows_train = x_train[:n_train].reshape(-1, 28, 28).astype(np.float32) / 255
rows_test = x_test[:n_test].reshape(-1, 28, 28).astype(np.float32) / 255
labels_train, labels_test = y_train[:n_train], y_test[:n_test]

model = cnn.Sequential([LSTM(64, input_shape=(28, 28)), Dense(10, activation="softmax")], seed=0)
model.build()
model.compile(optimizer=cnn.optimizers.Adam(2e-3, variant="torch"), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])


class TorchLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.fc = torch.nn.LSTM(28, 64, batch_first=True), torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1])


net = to_torch(model, TorchLSTM())
# cnn's LSTM keeps one bias, torch two that add (to_torch puts the sum in b_ih and zeros b_hh); Adam moves each
# torch bias on its own, so b_hh stays fixed at zero for the two to take the same steps
net.lstm.bias_hh_l0.requires_grad_(False)
optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=2e-3)
curves, times, accuracy = {"cnn": [], "PyTorch": []}, {}, {}
start = time.perf_counter()
for _ in range(EPOCHS):
    for s in range(0, n_train, 32):
        curves["cnn"].append(model.train_on_batch(rows_train[s:s + 32], labels_train[s:s + 32])[0])
times["cnn"] = time.perf_counter() - start
accuracy["cnn"] = float((model.predict(rows_test, verbose=0).argmax(1) == labels_test).mean())
xt, yt_ = torch.tensor(rows_train), torch.tensor(labels_train.astype(np.int64))
start = time.perf_counter()
for _ in range(EPOCHS):
    for s in range(0, n_train, 32):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt[s:s + 32]), yt_[s:s + 32])
        loss.backward()
        optimizer.step()
        curves["PyTorch"].append(loss.item())
times["PyTorch"] = time.perf_counter() - start
with torch.no_grad():
    accuracy["PyTorch"] = float((net(torch.tensor(rows_test)).argmax(1).numpy() == labels_test).mean())
lstm_gap = max(abs(a - b) for a, b in zip(curves["cnn"][:50], curves["PyTorch"][:50]))
print(f"largest per-step loss difference over the first 50 steps: {lstm_gap:.2e}")

plt.figure(figsize=(7, 3))
for name, curve in curves.items():
    plt.plot(np.convolve(curve, np.ones(10) / 10, mode="valid"), label=name, alpha=0.8)
plt.xlabel("step")
plt.ylabel("training loss (10-step mean)")
plt.legend()
plt.show()

# %% [markdown]
# ## The table

# %%
rows = [
    ("IIR filter: final training MSE (noise floor 0.0025)", f"{filt_curves['cnn'][-1]:.5f}",
     f"{filt_curves['PyTorch'][-1]:.5f}"),
    ("IIR filter: impulse response relative error", f"{impulse_error:.3f}", "-"),
    (f"LSTM rows of {DATA}: test accuracy, {EPOCHS} epoch(s)", f"{accuracy['cnn']:.4f}",
     f"{accuracy['PyTorch']:.4f}"),
    (f"LSTM training time, s ({cnn.get_num_threads()} threads)", f"{times['cnn']:.1f}", f"{times['PyTorch']:.1f}"),
    ("LSTM: largest loss difference, first 50 steps", f"{lstm_gap:.1e}", "-"),
]
print(f"{'quantity':<55} {'cnn':>10} {'PyTorch':>10}")
for row in rows:
    print(f"{row[0]:<55} {row[1]:>10} {row[2]:>10}")
