"""The binding neither leaks nor steals references, never writes its inputs, and training does not
grow the process. Every binding is covered through the signature table (core_signatures.py)."""
import gc
import os
import sys

import numpy as np
import pytest

import cnn
from cnn.layers import Dense
from core_signatures import ALLOWED_ERRORS, SIGNATURES, Arr, Bytes, Labels, RandomPick, broken_call, call, valid_call

ROWS = [pytest.param(row, id=f"{row.name}-{i}") for i, row in enumerate(SIGNATURES)]
CALLS = 1000


def shared(o):
    """Interpreter-wide singletons (small ints, bools) whose counts move with unrelated code."""
    return isinstance(o, int) and -5 <= o <= 256


def refcounts(objects):
    return [sys.getrefcount(o) for o in objects if not shared(o)]


def repeat(row, args):
    """(references to the args and None before and after CALLS calls, references to the last result).

    No assert in between: pytest's rewritten asserts keep None in temporaries. The collector stays off
    meanwhile: freeing unrelated garbage moves None's count by tens, a stolen reference by CALLS."""
    gc.collect()
    gc.disable()
    try:
        before = refcounts(args + [None])
        for _ in range(CALLS):
            try:
                result = call(row, args)
            except ALLOWED_ERRORS:
                result = None
        held = 2 if result is None or shared(result) else sys.getrefcount(result)
        del result
        return before, refcounts(args + [None]), held
    finally:
        gc.enable()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row", ROWS)
def test_refcounts_after_successful_calls(row, dtype):
    args = valid_call(row, RandomPick(np.random.default_rng(0)), dtype)
    before, after, held = repeat(row, args)
    assert after == before
    assert held == 2  # the name `result` and getrefcount's argument: the binding kept nothing


@pytest.mark.parametrize("row", ROWS)
def test_refcounts_after_failing_calls(row):
    pick = RandomPick(np.random.default_rng(1))
    failing = 0
    while failing < 5:
        args = broken_call(row, pick, np.float64)
        try:
            call(row, args)
            continue
        except ALLOWED_ERRORS:
            failing += 1
        before, after, _ = repeat(row, args)
        assert after == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row", ROWS)
def test_inputs_are_never_written(row, dtype):
    pick = RandomPick(np.random.default_rng(2))
    for _ in range(10):
        args = valid_call(row, pick, dtype)
        inputs = [(a, a.copy()) for spec, a in zip(row.args, args)
                  if isinstance(spec, (Labels, Arr, Bytes)) and not spec.write and a is not None]
        call(row, args)
        for arr, copy in inputs:
            assert arr.tobytes() == copy.tobytes()


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(os.environ.get("CNN_SANITIZE") == "1",
                    reason="AddressSanitizer's quarantine holds freed memory, so RSS grows by design")
def test_rss_flat_over_repeated_fits():
    rng = np.random.default_rng(0)
    # 128 KiB of inputs: one leaked copy per fit would add 25 MiB over the run
    x, y = rng.standard_normal((512, 32)), rng.integers(0, 4, 512)
    model = cnn.Sequential([Dense(16, activation="relu", input_dim=32), Dense(4, activation="softmax")],
                           dtype="float64", seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def fits(count):
        for _ in range(count):
            model.fit(x, y, batch_size=128, epochs=1, verbose=0, validation_split=0.25)
            model.predict(x[:64])
        gc.collect()

    fits(20)
    start = rss_bytes()
    fits(200)
    grown = rss_bytes() - start
    assert grown < 4 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 200 fits"


def test_training_step_allocates_no_activation_sized_arrays():
    """After the first batch, a LeNet-5 step reuses every layer's buffers: what it allocates stays below the
    smallest feature map (16·5·5·16 floats), so no layer sizes a buffer per batch."""
    import tracemalloc

    from cnn.applications import lenet5

    rng = np.random.default_rng(0)
    x, y = rng.random((16, 1, 32, 32), dtype=np.float32), rng.integers(0, 10, 16)
    model = lenet5(seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(x, y)
    tracemalloc.start()
    try:
        for _ in range(3):
            model.train_on_batch(x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 5 * 5 * 16 * 4, f"a training step allocated up to {peak} bytes at once"


def retained_per_block(make, depths=(2, 6)):
    """Bytes a model keeps allocated after a training step (tracemalloc, from before its first step), per block of
    layers added: make(depth) -> (model, x, y)."""
    import tracemalloc

    kept = []
    for depth in depths:
        model, x, y = make(depth)
        gc.collect()
        tracemalloc.start()
        try:
            for _ in range(2):
                model.train_on_batch(x, y)
            gc.collect()
            kept.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
    return (kept[1] - kept[0]) / (depths[1] - depths[0])


def test_layers_keep_no_gradient_buffers_of_their_own():
    """Between steps a conv layer keeps its output (y written over z) and nothing else batch-sized: its dz and dx
    come from the model's gradient workspace, whose slots serve every layer (dead once the layer below has read
    them), and the conv scratch is the model's. Per-layer dz, dx and scratch kept 1.5 MB per layer here."""
    n, c, h = 16, 4, 16
    act = n * c * h * h * 8  # one feature map, float64

    def make(depth):
        rng = np.random.default_rng(0)
        layers = [cnn.layers.Input((c, h, h))]
        layers += [cnn.layers.Conv2D(c, 3, padding="same", activation="relu") for _ in range(depth)]
        model = cnn.Sequential(layers + [cnn.layers.Flatten(), Dense(3, activation="softmax")], dtype="float64",
                               seed=0)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model, rng.standard_normal((n, c, h, h)), rng.integers(0, 3, n)

    per_layer = retained_per_block(make)
    assert per_layer < 1.25 * act, f"each conv layer keeps {per_layer / act:.2f} feature maps between steps"


def test_functional_branches_keep_no_gradient_buffers_of_their_own():
    """A residual block (x + relu(conv(x))) keeps its conv output and the sum between steps; the gradient of x,
    read by both branches and summed, lives in the workspace like every other gradient."""
    n, c, h = 16, 4, 16
    act = n * c * h * h * 8

    def make(depth):
        rng = np.random.default_rng(0)
        inp = cnn.layers.Input((c, h, h))
        t = inp
        for _ in range(depth):
            t = cnn.layers.Add()([t, cnn.layers.Conv2D(c, 3, padding="same", activation="relu")(t)])
        out = Dense(3, activation="softmax")(cnn.layers.Flatten()(t))
        model = cnn.Model(inp, out, dtype="float64", seed=0)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model, rng.standard_normal((n, c, h, h)), rng.integers(0, 3, n)

    per_block = retained_per_block(make)
    assert per_block < 2.25 * act, f"each residual block keeps {per_block / act:.2f} feature maps between steps"


def test_a_model_layers_backward_called_directly_keeps_its_own_buffers():
    """A layer of a model whose backward the user calls directly (outside the model's pass) uses its own buffers,
    as a layer outside a model: the workspace's slots, never freed outside a pass, grew by two per call (200 calls
    kept 400 slots, 13 MB, for good), and the returned gradient lay in a slot the next step wrote over."""
    model = cnn.Sequential([Dense(64, input_shape=(32,), activation="relu"), Dense(64, activation="relu"), Dense(10)],
                           dtype="float64", seed=0)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.random((128, 32)), rng.random((128, 10))
    model.train_on_batch(x, y)
    ws = model._workspace
    slots = len(ws._slots)
    first, layer = model.layers[0], model.layers[1]
    for _ in range(20):
        dx = layer.backward(np.ones_like(layer.forward(first.forward(x, training=True), training=True)))
    assert len(ws._slots) == slots, f"20 direct backward calls grew the workspace to {len(ws._slots)} slots"
    kept = dx.copy()
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(dx, kept)


def test_a_layers_backward_called_from_another_thread_during_a_pass_keeps_its_own_buffers():
    """While the model's backward pass runs in one thread, a direct call of one of its layers' backward from
    another thread takes no slot of that pass (the pass frees and reuses its slots as it goes)."""
    import threading

    model = cnn.Sequential([Dense(8, input_shape=(4,), activation="relu"), Dense(3)], dtype="float64", seed=0)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 4)), rng.random((16, 3))
    model.train_on_batch(x, y)
    layer, ws = model.layers[1], model._workspace
    layer.forward(model.layers[0].forward(x, training=True), training=True)
    took = []
    ws.begin()  # as a pass running in this thread
    try:
        worker = threading.Thread(target=lambda: took.append(layer.backward(np.ones((16, 3)))))
        worker.start()
        worker.join()
        assert ws._count == 0, "the other thread's backward took a slot of this thread's pass"
        assert np.shares_memory(took[0], layer._buffers["dx"])
    finally:
        ws.end()
