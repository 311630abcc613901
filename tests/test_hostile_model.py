"""Sequential off the happy path: NaN and infinity in the weights, two threads on one model, a layer added
to two models, sizes past what the kernels' int holds, arguments of the wrong kind, non-native byte order.
(Crafted model files are test_save.py's; an interrupt anywhere in fit is test_interrupt.py's.)"""
import copy
import pickle
import threading

import numpy as np
import pytest

import cnn
from cnn.callbacks import Callback, TerminateOnNaN
from cnn.layers import AveragePooling2D, Conv2D, Dense, Flatten, MaxPooling2D, ZeroPadding2D

INT_MAX = 2**31 - 1


# ---- non-finite weights --------------------------------------------------------------------------------


def overflowing_model(lr, dtype="float32"):
    """A sigmoid hidden layer (it saturates: an infinite weight before it leaves the loss finite), SGD at
    `lr` and targets that give gradients of about 10 to 100; returns (model, x, y)."""
    model = cnn.Sequential([Dense(4, activation="sigmoid", input_dim=3), Dense(1)], seed=0, dtype=dtype)
    model.compile(optimizer=cnn.optimizers.SGD(learning_rate=lr), loss="mse")
    rng = np.random.default_rng(0)
    return model, rng.standard_normal((8, 3)).astype(dtype) * 10, rng.standard_normal((8, 1)).astype(dtype) * 100


def test_a_step_that_overflows_the_weights_stops_fit_at_the_epoch_end():
    # lr 1e38 times gradients of 10 or more overflows float32 in some weights; the batch's loss was finite
    model, x, y = overflowing_model(1e38)
    with pytest.raises(FloatingPointError, match=r"weights hold NaN or infinity after epoch 0 \(layer 'dense"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not np.isfinite(model._params).all()  # the message says the step was applied: it was
    assert model.optimizer.iterations == 1


def test_a_nan_loss_after_an_overflow_says_the_weights_were_already_non_finite():
    model, x, y = overflowing_model(1e38)
    with pytest.raises(FloatingPointError) as info:
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    message = str(info.value)
    if "training loss became" in message:  # the second batch saw the first batch's infinite weights
        assert "already held NaN or infinity before it" in message and "batch 1 of epoch 0" in message
        assert "as they were before" not in message
    else:
        assert "after epoch 0" in message
    assert not np.isfinite(model._params).all()


def test_a_nan_loss_with_finite_weights_says_so_and_leaves_them():
    model, x, y = overflowing_model(1e-6, "float64")
    model.fit(x, y, epochs=1, verbose=0)
    before = model.get_weights()
    with pytest.raises(FloatingPointError, match="weights, all finite, are as they were before it"):
        model.train_on_batch(x, np.full_like(y, 1e200))  # the squared error overflows, not the weights
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_train_on_batch_reports_weights_its_step_made_non_finite():
    model, x, y = overflowing_model(1e38)
    with pytest.raises(FloatingPointError, match="after this batch's step, which was applied"):
        model.train_on_batch(x, y)
    assert model.optimizer.iterations == 1


def test_fit_refuses_weights_that_are_non_finite_before_training():
    model, x, y = overflowing_model(0.01)
    model.build()
    model.layers[0].weights[0][1, 2] = np.nan
    with pytest.raises(ValueError, match=r"before training \(layer 'dense' kernel: 1 of 12 values\)"):
        model.fit(x, y, epochs=1, verbose=0)
    assert model.optimizer.iterations == 0


def test_terminate_on_nan_does_not_hide_non_finite_weights():
    model, x, y = overflowing_model(1e38)
    with pytest.raises(FloatingPointError, match="NaN or infinity"):
        model.fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False, callbacks=[TerminateOnNaN()])


# ---- threads ------------------------------------------------------------------------------------------------


def conv_model():
    model = cnn.Sequential([Conv2D(4, 3, activation="relu", input_shape=(1, 12, 12)), MaxPooling2D(2),
                            Flatten(), Dense(16, activation="relu"), Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def run_threads(*targets):
    errors = []

    def guarded(fn):
        try:
            fn()
        except BaseException as e:  # reported in the main thread
            errors.append(e)
    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_two_threads_predicting_with_one_model_get_the_single_threaded_answers():
    model = conv_model()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((64, 1, 12, 12)).astype(np.float32) for _ in range(2)]
    expected = [model.predict(x, batch_size=16, verbose=0) for x in inputs]
    wrong = [0, 0]

    def worker(i):
        for _ in range(150):
            if not np.array_equal(model.predict(inputs[i], batch_size=16, verbose=0), expected[i]):
                wrong[i] += 1
    run_threads(lambda: worker(0), lambda: worker(1))
    assert wrong == [0, 0]


def test_a_model_with_its_lock_pickles_and_copies():
    model = conv_model()
    x = np.random.default_rng(2).standard_normal((5, 1, 12, 12)).astype(np.float32)
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert other._lock is not model._lock
        np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
        with other._lock:  # a fresh, usable lock (re-entrant: predict takes it again)
            other.predict(x, verbose=0)


# ---- shared layers ------------------------------------------------------------------------------------------------


def test_a_layer_in_a_second_model_is_refused_by_name_and_the_first_keeps_training():
    shared = Dense(3, activation="softmax", name="head")
    first = cnn.Sequential([Dense(4, input_dim=2), shared], name="first", seed=0)
    first.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    first.build()
    with pytest.raises(ValueError, match="layer 'head' already belongs to model 'first'"):
        cnn.Sequential([Dense(4, input_dim=2), shared], name="second")
    second = cnn.Sequential([Dense(4, input_dim=2)], name="second")
    with pytest.raises(ValueError, match="layer 'head' already belongs to model 'first'"):
        second.add(shared)
    assert shared.model is first and len(second.layers) == 1
    before = shared.get_weights()
    x, y = np.random.default_rng(0).standard_normal((16, 2)), np.arange(16) % 3
    first.fit(x, y, epochs=2, verbose=0)
    assert not np.array_equal(before[0], shared.get_weights()[0])
    assert np.shares_memory(shared.weights[0], first._params)


def test_a_popped_layer_can_join_another_model_and_a_failed_constructor_releases_its_layers():
    layer = Dense(3)
    first = cnn.Sequential([Dense(4, input_dim=2), layer])
    assert first.pop() is layer and layer.model is None
    other = Dense(5, input_dim=2)
    with pytest.raises(TypeError, match="layers must be a list of cnn.layers.Layer"):
        cnn.Sequential([other, layer, "not a layer"])
    assert other.model is None and layer.model is None
    second = cnn.Sequential([other, layer])
    assert layer.model is second and second.count_params() == 2 * 5 + 5 + 5 * 3 + 3


# ---- sizes ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, name", [
    (lambda size: Dense(size), "units"),
    (lambda size: Conv2D(size, 1), "filters"),
])
def test_sizes_past_int_are_refused_by_argument(make, name):
    assert make(INT_MAX) is not None  # the int32 boundary itself is a valid request (build may then not fit)
    with pytest.raises(ValueError, match=f"{name} must be <= 2147483647, got 2147483648"):
        make(INT_MAX + 1)


@pytest.mark.parametrize("make, name", [
    (lambda: Conv2D(2, 1, groups=2**31), "groups must be <= 2147483647"),
    (lambda: Dense(3, name=5), "name"),
    (lambda: cnn.Sequential(name=["m"]), "name"),
    (lambda: cnn.Sequential(seed=-1), "seed"),
    (lambda: cnn.Sequential(seed="0"), "seed"),
    (lambda: cnn.Sequential(dtype="no such type"), "dtype"),
    (lambda: cnn.Sequential(layers=Dense(3)), "layers"),
])
def test_junk_is_refused_by_argument(make, name):
    with pytest.raises((TypeError, ValueError), match=name):
        make()


@pytest.mark.parametrize("layers, what", [
    ([ZeroPadding2D(((INT_MAX, 1), (0, 0)), input_shape=(1, 2, 2))], "output dimension"),
    ([Flatten(input_shape=(2**20, 2**20, 2**20))], "output dimension"),
    ([Conv2D(1, 3, dilation_rate=2**30, input_shape=(1, 5, 5))], "dilation_rate"),
    ([Conv2D(1, 1, padding=(INT_MAX - 1, 0), input_shape=(1, 5, 5))], "padded input size"),
    ([AveragePooling2D(1, padding=0, input_shape=(1, INT_MAX, 3)), ZeroPadding2D((1, 0))], "output dimension"),
])
def test_built_sizes_past_int_are_refused_naming_the_layer(layers, what):
    model = cnn.Sequential(layers)
    with pytest.raises(ValueError, match=f"layer '.*'.*{what}.*2147483647"):
        model.build()
    assert not model.built


def test_a_model_too_big_for_memory_is_a_memory_error_and_is_left_unbuilt():
    model = cnn.Sequential([Dense(INT_MAX, input_dim=INT_MAX)], name="huge")
    with pytest.raises(MemoryError, match="model 'huge' has 4611686016279904256 parameters"):
        model.build()
    assert not model.built
    model.pop()
    model.add(Dense(2, input_dim=3))
    assert model.count_params() == 8


# ---- arguments of the wrong kind ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, name", [
    (dict(loss=["mse"]), "loss"),
    (dict(loss={"a": 1}), "loss"),
    (dict(loss="mse", optimizer=["sgd"]), "optimizer"),
    (dict(loss="mse", metrics=5), "metrics"),
    (dict(loss="mse", metrics="accuracy"), "metrics"),
    (dict(loss="mse", metrics=[["accuracy"]]), "metrics"),
    (dict(loss="mse", metrics=["f1"]), "unknown metric 'f1'"),
])
def test_compile_names_the_argument(kwargs, name):
    model = cnn.Sequential([Dense(2, input_dim=3)])
    with pytest.raises((TypeError, ValueError), match=name):
        model.compile(**kwargs)
    assert model.loss is None and model.optimizer is None


@pytest.mark.parametrize("callbacks", [5, "History", Callback, [Callback(), 5], (None,)])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_callbacks_that_are_not_a_list_of_callbacks_are_refused_by_name(method, callbacks):
    model = cnn.Sequential([Dense(2, input_dim=3)], seed=0)
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 3)), np.ones((4, 2))
    args = (x,) if method == "predict" else (x, y)
    model.build()
    before = model.get_weights()
    with pytest.raises(TypeError, match="callbacks must be a list of cnn.callbacks.Callback"):
        getattr(model, method)(*args, callbacks=callbacks, verbose=0)
    np.testing.assert_array_equal(before[0], model.get_weights()[0])
    assert model.optimizer.iterations == 0


# ---- byte order -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_native_byte_order_gives_the_native_results(dtype):
    """A guard (main already converts these in as_float_array and as_labels): fit, validation, evaluate,
    predict and set_weights on '>f4'/'>f8' and '>i8' arrays give the native arrays' results bit for bit."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((40, 1, 12, 12)), rng.integers(0, 3, 40)
    swapped = x.astype(x.dtype.newbyteorder()), y.astype(y.dtype.newbyteorder())
    assert not swapped[0].dtype.isnative and np.array_equal(swapped[0], x)
    results = []
    for xs, ys in ((x, y), swapped):
        model = cnn.Sequential([Conv2D(2, 3, activation="relu", input_shape=(1, 12, 12)), Flatten(),
                                Dense(3, activation="softmax")], seed=0, dtype=dtype)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(xs, ys, batch_size=8, epochs=2, verbose=0, validation_data=(xs[:8], ys[:8]))
        model.layers[-1].set_weights([w.astype(w.dtype.newbyteorder()) for w in model.layers[-1].get_weights()])
        results.append((history.history, model.predict(xs, verbose=0), model.evaluate(xs, ys, verbose=0),
                        model.get_weights()))
    assert results[0][0] == results[1][0] and results[0][2] == results[1][2]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    for a, b in zip(results[0][3], results[1][3]):
        np.testing.assert_array_equal(a, b)
