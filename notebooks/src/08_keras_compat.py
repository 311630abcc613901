# %% [markdown]
# # Keras 2 code, unchanged, on cnn (CS 5489, lecture 8b)
#
# The lecture was written for Keras 2.8 on TensorFlow. Its cells run here as they are: only the import
# block changes, one line for one line.
#
# | Keras / TensorFlow | cnn |
# |---|---|
# | `import tensorflow as tf` | `import cnn as tf` |
# | `from tensorflow import keras` | `from cnn import keras` |
# | `from tensorflow.keras.models import Sequential` | `from cnn.keras.models import Sequential` |
# | `from tensorflow.keras.layers import Dense, Activation` | `from cnn.keras.layers import Dense, Activation` |
# | `from tensorflow.keras import backend as K` | `from cnn.keras import backend as K` |
#
# The data are the lecture's kind: two half moons, three blobs and MNIST (`keras.datasets.mnist`,
# read offline from the installed files). Images and inputs are flat here, so NCHW against NHWC never
# arises.

# %%
import cnn as tf
from cnn import keras
from cnn.keras.models import Sequential
from cnn.keras.layers import Dense, Activation
from cnn.keras import backend as K

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn import datasets, model_selection

QUICK = os.environ.get("CNN_QUICK") == "1"
EPOCHS = 20 if QUICK else 100
print(keras.__version__, tf.__version__)

# %% [markdown]
# ## Two classes: logistic regression as one sigmoid unit

# %%
X, Y = datasets.make_moons(n_samples=400, noise=0.2, random_state=4487)
trainX, testX, trainY, testY = model_selection.train_test_split(X, Y, train_size=0.5, test_size=0.5,
                                                                random_state=4487)

K.clear_session()
tf.random.set_seed(4487)
nn = Sequential()
nn.add(Dense(units=1, input_dim=2, activation='sigmoid'))
nn.compile(loss=keras.losses.binary_crossentropy,
           optimizer=keras.optimizers.SGD(lr=0.3, momentum=0.9, nesterov=True),
           metrics=['accuracy'])
history = nn.fit(trainX, trainY, epochs=EPOCHS, batch_size=32, validation_data=(testX, testY), verbose=False)
nn.summary()

predY = nn.predict(testX, verbose=False).flatten() > 0.5
acc_logistic = np.mean(predY == testY)
print("test accuracy:", acc_logistic)
W = nn.get_layer(index=0).get_weights()
print("w =", W[0].ravel(), "b =", W[1])

# %%
xx, yy = np.meshgrid(np.linspace(-2, 3, 200), np.linspace(-1.5, 2, 200))
Z = nn.predict(np.c_[xx.ravel(), yy.ravel()], verbose=False).reshape(xx.shape)
plt.contourf(xx, yy, Z, levels=20, cmap='coolwarm', alpha=0.4)
plt.scatter(testX[:, 0], testX[:, 1], c=testY, cmap='coolwarm', edgecolors='k', s=12)
plt.title(f"logistic regression: test accuracy {acc_logistic:.3f}")
plt.show()

# %% [markdown]
# ## Three classes: a hidden layer and early stopping

# %%
X3, Y3 = datasets.make_blobs(n_samples=600, centers=3, cluster_std=2.0, random_state=4487)
trainX3, testX3, trainY3, testY3 = model_selection.train_test_split(X3, Y3, train_size=0.5, test_size=0.5,
                                                                    random_state=4487)
trainYb3 = keras.utils.to_categorical(trainY3)
vtrainX, validX, vtrainYb, validYb = model_selection.train_test_split(trainX3, trainYb3, train_size=0.8,
                                                                      test_size=0.2, random_state=4487)

K.clear_session()
tf.random.set_seed(4487)
nn = Sequential()
nn.add(Dense(units=20, input_dim=2))
nn.add(Activation('relu'))
nn.add(Dense(units=3, activation='softmax'))
nn.compile(loss=keras.losses.categorical_crossentropy,
           optimizer=keras.optimizers.SGD(lr=0.3, momentum=0.9, nesterov=True),
           metrics=['accuracy'])
earlystop = keras.callbacks.EarlyStopping(monitor='val_accuracy', min_delta=0.0001, patience=5, verbose=1,
                                          mode='auto')
callbacks_list = [earlystop]
history = nn.fit(vtrainX, vtrainYb, epochs=EPOCHS, batch_size=50, callbacks=callbacks_list,
                 validation_data=(validX, validYb), verbose=False)
predY3 = nn.predict(testX3, verbose=False).argmax(axis=1)
acc_hidden = np.mean(predY3 == testY3)
print(f"stopped after {len(history.epoch)} epochs; test accuracy {acc_hidden:.3f}")

# %% [markdown]
# ## MNIST: one hidden layer of 50 ReLU units
# Every tenth training image (every fortieth in quick mode), pixels scaled to [0, 1].

# %%
(trainI, trainL), (testI, testL) = keras.datasets.mnist.load_data()
step = 40 if QUICK else 10
trainXm = trainI[::step].reshape(-1, 784) / 255.0
trainYm = keras.utils.to_categorical(trainL[::step])
testXm = testI.reshape(-1, 784) / 255.0

K.clear_session()
tf.random.set_seed(4487)
nn = Sequential()
nn.add(Dense(units=50, input_dim=784, activation='relu'))
nn.add(Dense(units=10, activation='softmax'))
nn.compile(loss=keras.losses.categorical_crossentropy,
           optimizer=keras.optimizers.SGD(lr=0.1, momentum=0.9, nesterov=True),
           metrics=['accuracy'])
earlystop = keras.callbacks.EarlyStopping(monitor='val_accuracy', min_delta=0.0001, patience=5, verbose=1,
                                          mode='auto')
history = nn.fit(trainXm, trainYm, epochs=5 if QUICK else 100, batch_size=50, callbacks=[earlystop],
                 validation_split=0.1, verbose=False)
acc_mnist = np.mean(nn.predict(testXm, verbose=False).argmax(axis=1) == testL)
print(f"{len(history.epoch)} epochs; test accuracy {acc_mnist:.4f}")

# %%
W = nn.get_layer(index=0).get_weights()[0]
fig, axes = plt.subplots(5, 10, figsize=(10, 5))
for i, ax in enumerate(axes.flat):
    ax.imshow(W[:, i].reshape(28, 28), cmap='gray')
    ax.axis('off')
plt.show()

# %% [markdown]
# ## The results

# %%
print(f"{'model':<34} {'cnn test accuracy':>18}")
for name, acc in [("logistic regression (moons)", acc_logistic), ("20 ReLU + early stopping (blobs)", acc_hidden),
                  ("784-50-10 ReLU (MNIST)", acc_mnist)]:
    print(f"{name:<34} {acc:>18.4f}")
