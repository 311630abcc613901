# %% [markdown]
# # A two-layer ReLU network with the multiclass SVM loss (ROB 102, lecture 13)
#
# First the lecture's worked example by hand: a 4-pixel image x, a hidden layer
# H = max(0, W1·x + b1) and class scores W2·H + b2 for (cat, dog, ship). The slide's weight values are
# not reproduced here; the weights below are chosen to give exactly the slide's H and scores.
# Then the lecture's training run: hidden 36, 1,500 minibatch SGD iterations of 20 images,
# regularisation 1e-5 on both weight matrices, learning rate 0.1, weights 1e-4·randn, biases 0.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import cnn
from cnn.layers import Dense

QUICK = os.environ.get("CNN_QUICK") == "1"
MNIST_DIR = None  # a folder holding the four MNIST IDX files, to use your own copy

# %%
x = np.array([[56.0, 231.0, 24.0, 2.0]])
W1 = np.array([[0.2, -0.5, 0.1, 2.0], [0.1, 0.0, -0.1, 0.5], [1.5, 0.3, 0.2, -1.0], [0.0, 0.6, 0.5, 1.0]])
b1 = np.array([1.1, 4.1, 18.2, -0.1])
W2 = np.array([[0.5, 1.0, 0.4, 0.7], [-0.3, 0.9, 0.6, 0.6], [1.2, 0.2, -0.3, -0.2]])
b2 = np.array([4.2, 8.42, -2.99])

net = cnn.Sequential([Dense(4, "relu", input_dim=4), Dense(3)], dtype="float64")
net.set_weights([W1.T, b1, W2.T, b2])  # Dense kernels are (in, out): the transpose of W·x's W
H = net.layers[0].forward(x)
scores = net.predict(x)
print("H      =", np.round(H[0], 2))
print("scores =", np.round(scores[0], 2))
print("class  =", ["cat", "dog", "ship"][int(np.argmax(scores))], f"(class {int(np.argmax(scores)) + 1})")

# %% [markdown]
# ## Training on images
# MNIST when its files are found (see `cnn.datasets.load_mnist`), otherwise Fashion-MNIST.

# %%
(x_train, y_train), (x_test, y_test), DATA = cnn.datasets.load_mnist_or_fashion(MNIST_DIR)
x_train = x_train.reshape(len(x_train), -1).astype(np.float32) / 255
x_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 255
mean = x_train.mean(axis=0)
x_train, x_test = x_train - mean, x_test - mean
print(DATA, x_train.shape, x_test.shape)

# %%
ITERATIONS, BATCH, REG, LR, HIDDEN = (300 if QUICK else 1500), 20, 1e-5, 0.1, 36


def small_normal(shape, rng, dtype):
    return (1e-4 * rng.standard_normal(shape)).astype(dtype)


model = cnn.Sequential([
    Dense(HIDDEN, "relu", input_dim=784, kernel_initializer=small_normal, kernel_regularizer=cnn.regularizers.l2(REG)),
    Dense(10, kernel_initializer=small_normal, kernel_regularizer=cnn.regularizers.l2(REG)),
], seed=0)
model.compile(cnn.optimizers.SGD(LR), "multiclass_hinge", ["accuracy"])
rng = np.random.default_rng(0)
losses = []
for it in range(ITERATIONS):
    idx = rng.choice(len(x_train), BATCH)  # minibatches drawn with replacement, as the lecture does
    losses.append(model.train_on_batch(x_train[idx], y_train[idx])[0])
    if it % 300 == 0:
        print(f"iteration {it}: loss {losses[-1]:.4f}")

# %%
plt.figure(figsize=(6, 3))
plt.plot(losses)
plt.xlabel("iteration")
plt.ylabel("SVM loss + L2")
plt.title(f"two-layer ReLU network on {DATA}")
plt.show()
train_acc = model.evaluate(x_train[:10000], y_train[:10000])[1]
test_loss, test_acc = model.evaluate(x_test, y_test)

# %% [markdown]
# ## The table

# %%
print(f"{'quantity':<28} {'lecture':>24} {'cnn':>24}")
print(f"{'H = max(0, W1 x + b1)':<28} {'[0, 8.3, 174.3, 152.5]':>24} {str(np.round(H[0], 2).tolist()):>24}")
print(f"{'scores':<28} {'[188.97, 211.97, -84.12]':>24} {str(np.round(scores[0], 2).tolist()):>24}")
print(f"{'predicted class':<28} {'2 (dog)':>24} {str(int(np.argmax(scores)) + 1) + ' (dog)':>24}")
print(f"{'final training loss':<28} {'(curve on the slide)':>24} {losses[-1]:>24.4f}")
print(f"{'test accuracy (' + DATA + ')':<28} {'-':>24} {test_acc:>24.4f}")
