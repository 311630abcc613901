"""Done-when of issue 21: a Keras 2 script in the style of the CS 5489 lecture, held here verbatim with its
TensorFlow import block, runs under cnn with only its import lines changed (the README's import table).

It uses every idiom the lecture does: K.clear_session(), tf.random.set_seed(4487), keras.utils.to_categorical,
the loss functions keras.losses.binary_crossentropy/categorical_crossentropy passed as loss=,
keras.optimizers.SGD(lr=0.3, momentum=0.9, nesterov=True), keras.callbacks.EarlyStopping,
fit(..., validation_data=..., verbose=False), predict(X, verbose=False), get_layer(index=0).get_weights(),
keras.__version__ and keras.datasets.mnist.load_data()."""
import contextlib
import io

import numpy as np

from user_env import require_mnist

KERAS2_SCRIPT = '''
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import Dense, Activation
from tensorflow.keras import backend as K
import numpy as np
from sklearn import datasets, model_selection

print(keras.__version__, tf.__version__)

# %% two classes: logistic regression as one sigmoid unit
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
history = nn.fit(trainX, trainY, epochs=100, batch_size=32, validation_data=(testX, testY), verbose=False)
predY = nn.predict(testX, verbose=False).flatten() > 0.5
acc_logistic = np.mean(predY == testY)
W_logistic = nn.get_layer(index=0).get_weights()

# %% three classes: one hidden layer of 20 ReLU units, early stopping on a validation set
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
history3 = nn.fit(vtrainX, vtrainYb, epochs=100, batch_size=50, callbacks=callbacks_list,
                  validation_data=(validX, validYb), verbose=False)
predY3 = nn.predict(testX3, verbose=False).argmax(axis=1)
acc_hidden = np.mean(predY3 == testY3)
W_hidden = nn.get_layer(index=0).get_weights()[0]

# %% MNIST digits, every 20th training image
(trainI, trainL), (testI, testL) = keras.datasets.mnist.load_data()
trainXm = trainI[::20].reshape(-1, 784) / 255.0
testXm = testI[::5].reshape(-1, 784) / 255.0
trainYm = keras.utils.to_categorical(trainL[::20])
K.clear_session()
tf.random.set_seed(4487)
nn = Sequential()
nn.add(Dense(units=50, input_dim=784, activation='relu'))
nn.add(Dense(units=10, activation='softmax'))
nn.compile(loss=keras.losses.categorical_crossentropy,
           optimizer=keras.optimizers.SGD(lr=0.1, momentum=0.9, nesterov=True),
           metrics=['accuracy'])
historym = nn.fit(trainXm, trainYm, epochs=10, batch_size=50, validation_split=0.1, verbose=False)
acc_mnist = np.mean(nn.predict(testXm, verbose=False).argmax(axis=1) == testL[::5])
W_mnist = nn.get_layer(index=0).get_weights()[0]
layer_names = [layer.name for layer in nn.layers]
'''


def to_cnn(script):
    """The script with each TensorFlow import line pointed at cnn (`tensorflow` -> `cnn` in the statement's
    module), every other line left as it is; returns it and how many lines changed."""
    lines = script.splitlines()
    changed = [line.replace("tensorflow", "cnn", 1) if line.startswith(("import tensorflow", "from tensorflow"))
               else line for line in lines]
    return "\n".join(changed), sum(a != b for a, b in zip(lines, changed))


def test_keras2_script_runs_with_only_its_imports_changed():
    require_mnist()
    script, n_changed = to_cnn(KERAS2_SCRIPT)
    assert n_changed == 5 and "tensorflow" not in script
    assert script.splitlines()[1:6] == [
        "import cnn as tf", "from cnn import keras", "from cnn.keras.models import Sequential",
        "from cnn.keras.layers import Dense, Activation", "from cnn.keras import backend as K"]
    namespace = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(script, "keras2_lecture", "exec"), namespace)
    import cnn

    assert printed.getvalue().splitlines()[0] == f"{cnn.__version__} {cnn.__version__}"
    assert namespace["acc_logistic"] > 0.8 and namespace["acc_hidden"] > 0.85 and namespace["acc_mnist"] > 0.85
    assert [w.shape for w in namespace["W_logistic"]] == [(2, 1), (1,)]
    assert namespace["W_hidden"].shape == (2, 20) and namespace["W_mnist"].shape == (784, 50)
    assert 6 <= len(namespace["history3"].epoch) <= 100  # EarlyStopping's patience 5 ran, or training ended
    assert set(namespace["history"].history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert namespace["layer_names"] == ["dense", "dense_1"]  # K.clear_session() restarted the numbering
    assert np.isfinite(namespace["historym"].history["val_loss"]).all()
