"""The benchmark workloads B1-B6 (and B7, the thread scaling of B1 and B2): each returns rows comparing cnn with its
reference on the same work.

A workload is a function (threads, quick, repeats) -> list of rows, or a string saying why it was skipped.
Every pair is timed interleaved (cnn, reference, cnn, reference, ...) after one warm-up run of each, in
this one process and at the same thread count; a row carries the median time of each side. Time is
wall-clock, except at one thread where it is the thread's CPU time (see use_clock)."""
import statistics
import time
import warnings

import numpy as np
import torch

import cnn
from cnn import _core
from cnn.applications import lenet5, lenet5_torch, resnet, resnet_torch
from cnn.interop import to_torch


# At one thread every side runs in this thread, so its CPU time is the work's time and stays true when
# other processes take the core (a shared machine's main noise); run.py --wall switches it off.
# Above one thread, each side's pool (OpenBLAS, PyTorch's and cnn's OpenMP) spins for up to ~0.1 s after
# its call and would take the core the next side needs, so each timed run waits for them to sleep, then
# runs once untimed so that its own pool is awake (a sleeping worker can wait a whole time slice to run).
CLOCK = {"clock": time.perf_counter, "settle": 0.0}


def use_clock(threads, wall):
    CLOCK["clock"] = time.perf_counter if wall or threads > 1 else time.thread_time
    CLOCK["settle"] = 0.2 if threads > 1 else 0.0
    return "wall" if CLOCK["clock"] is time.perf_counter else "thread_cpu"


def timed(fn):
    clock = CLOCK["clock"]
    if CLOCK["settle"]:
        time.sleep(CLOCK["settle"])
        fn()
    start = clock()
    fn()
    return clock() - start


def interleave(fns, repeats):
    """Median seconds of each of fns, run in turn repeats times after one warm-up each."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            t.append(timed(fn))
    return [statistics.median(t) for t in times]


def flops_per_sample(macs):
    """Forward, weight gradients and input gradients (none for the first layer): 2 FLOP per multiply-add."""
    return 2 * (3 * sum(macs) - macs[0])


def pair(workload, shape, ref_name, t_cnn, t_ref, flop, extra=None):
    rows = []
    for impl, t in (("cnn", t_cnn), (ref_name, t_ref)):
        if t is not None:
            rows.append({"workload": workload, "shape": shape, "impl": impl, "time_s": t, "flop": flop,
                         **(extra or {})})
    return rows


# ---- B1: MLP 784-500-500-10, SGD Nesterov, batch 50, one epoch of 6,000 -------------------------

def torch_epoch(model, opt, loss_fn, x, y, batch, gen):
    """What Keras' fit does per epoch: shuffle, then one step per batch, tracking the loss."""
    order = torch.randperm(len(x), generator=gen)
    total = 0.0
    for start in range(0, len(x), batch):
        idx = order[start:start + batch]
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        total += loss.item()
    return total


def epoch_pair(model, tm, topt, x, y, batch):
    """(cnn's epoch, torch's epoch) on the same data: Sequential.fit and torch_epoch with cross-entropy."""
    xt, yt, gen = torch.from_numpy(x), torch.from_numpy(y), torch.Generator().manual_seed(0)
    loss_fn = torch.nn.CrossEntropyLoss()
    return (lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0),
            lambda: torch_epoch(tm, topt, loss_fn, xt, yt, batch, gen))


B1_SIZES, B1_BATCH = [784, 500, 500, 10], 50


def b1_model(n, wrap=lambda opt: opt):
    """B1's data (n rows) and cnn model, its optimizer passed through wrap (benchmarks/distributed.py's
    DistributedOptimizer)."""
    sizes = B1_SIZES
    rng = np.random.default_rng(0)
    x, y = rng.random((n, sizes[0]), dtype=np.float32), rng.integers(0, sizes[-1], n)
    model = cnn.Sequential([cnn.layers.Dense(sizes[1], activation="relu", input_dim=sizes[0]),
                            cnn.layers.Dense(sizes[2], activation="relu"),
                            cnn.layers.Dense(sizes[3], activation="softmax")], seed=0)
    model.compile(optimizer=wrap(cnn.optimizers.SGD(0.1, momentum=0.9, nesterov=True)),
                  loss="sparse_categorical_crossentropy")
    return x, y, model


def b1_setup(quick):
    """(cnn's epoch, torch's epoch, label, FLOP per epoch) of B1."""
    n, sizes, batch = (2000 if quick else 6000), B1_SIZES, B1_BATCH
    x, y, model = b1_model(n)
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Linear(500, 500),
                             torch.nn.ReLU(), torch.nn.Linear(500, 10))
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    macs = [a * b for a, b in zip(sizes, sizes[1:])]
    return epoch_pair(model, tm, topt, x, y, batch) + (f"MLP 784-500-500-10 SGD-Nesterov b50, epoch of {n}",
                                                        n * flops_per_sample(macs))


def b1_mlp(threads, quick, repeats):
    ours, ref, label, flop = b1_setup(quick)
    return pair("B1", label, "torch", *interleave([ours, ref], repeats), flop)


# ---- B2: LeNet-5 (the lecture's variant), Adam, batch 32 --------------------------------------

# multiply-adds per sample, first layer first (its input gradient is never computed)
LENET_MACS = [6 * 28 * 28 * 25, 6 * 14 * 14, 16 * 10 * 10 * 150, 16 * 5 * 5, 120 * 400, 120 * 84, 84 * 10]


def b2_setup(quick):
    """(cnn's run, torch's run, label, FLOP per run) of B2."""
    n, batch = (1600 if quick else 6400), 32
    rng = np.random.default_rng(0)
    x, y = rng.random((n, 1, 32, 32), dtype=np.float32), rng.integers(0, 10, n)
    model = lenet5(seed=0)
    model.compile(optimizer=cnn.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy")
    torch.manual_seed(0)
    tm = lenet5_torch()
    topt = torch.optim.Adam(tm.parameters(), lr=0.001)
    return epoch_pair(model, tm, topt, x, y, batch) + (f"LeNet-5 Adam b32, {n} of 60,000 samples "
                                                        f"({n / 60000:.3g} epoch)", n * flops_per_sample(LENET_MACS))


def b2_lenet(threads, quick, repeats):
    ours, ref, label, flop = b2_setup(quick)
    return pair("B2", label, "torch", *interleave([ours, ref], repeats), flop)


# ---- B3: MLPClassifier((100,), adam), one epoch of 60,000 x 784 ---------------------------------

def sklearn_mlp(cls, **params):
    return cls(hidden_layer_sizes=params.pop("hidden", (100,)), solver="adam", max_iter=1, shuffle=True,
               random_state=0, **params)


def fit_quietly(est, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch never converges: ConvergenceWarning is expected
        est.fit(x, y)


def b3_mlp_classifier(threads, quick, repeats):
    try:
        ours = cnn.MLPClassifier
    except AttributeError:
        return "cnn.MLPClassifier is not there yet"
    from sklearn.neural_network import MLPClassifier
    n = 10000 if quick else 60000
    rng = np.random.default_rng(0)
    x, y = rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)
    t_cnn, t_ref = interleave([lambda: fit_quietly(sklearn_mlp(ours), x, y),
                               lambda: fit_quietly(sklearn_mlp(MLPClassifier), x, y)], repeats)
    return pair("B3", f"MLPClassifier((100,), adam) b200, epoch of {n}x784", "sklearn", t_cnn, t_ref,
                n * flops_per_sample([784 * 100, 100 * 10]))


# ---- B4: the 40-point toy, 2-(10,10)-1 tanh, Adam, one full-batch step --------------------------

def b4_toy(threads, quick, repeats):
    from sklearn.neural_network import MLPClassifier
    steps = 100 if quick else 500
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    seq = cnn.Sequential([cnn.layers.Dense(10, activation="tanh", input_dim=2),
                          cnn.layers.Dense(10, activation="tanh"),
                          cnn.layers.Dense(1, activation="sigmoid")], seed=0)
    seq.compile(optimizer=cnn.optimizers.Adam(0.01), loss="binary_crossentropy")
    yf = y.astype(np.float32)[:, None]
    tm = torch.nn.Sequential(torch.nn.Linear(2, 10), torch.nn.Tanh(), torch.nn.Linear(10, 10), torch.nn.Tanh(),
                             torch.nn.Linear(10, 1))
    topt = torch.optim.Adam(tm.parameters(), lr=0.01)
    xt, yt, loss_fn = torch.from_numpy(x), torch.from_numpy(yf), torch.nn.BCEWithLogitsLoss()

    def seq_steps():
        for _ in range(steps):
            seq.train_on_batch(x, yf)

    def torch_steps():
        for _ in range(steps):
            topt.zero_grad(set_to_none=False)
            loss_fn(tm(xt), yt).backward()
            topt.step()

    def sk_steps(cls):
        est = sklearn_mlp(cls, hidden=(10, 10), activation="tanh", batch_size=40, learning_rate_init=0.01)
        est.set_params(max_iter=steps, tol=0.0, n_iter_no_change=steps + 1)
        return lambda: fit_quietly(est, x, y)

    fns = [seq_steps, torch_steps, sk_steps(MLPClassifier)]
    try:
        fns.append(sk_steps(cnn.MLPClassifier))
    except AttributeError:
        pass
    times = [t / steps for t in interleave(fns, repeats)]
    flop = flops_per_sample([2 * 10, 10 * 10, 10]) * 40
    rows = pair("B4", "toy 2-(10,10)-1 tanh Adam, 40 points, one step (Sequential)", "torch", times[0],
                times[1], flop)
    shape = "toy 2-(10,10)-1 tanh Adam, 40 points, one step (MLPClassifier)"
    rows += pair("B4", shape, "sklearn", times[3] if len(times) > 3 else None, times[2], flop)
    return rows


# ---- B12: the lecture's 18-fit MLPClassifier grid on the 40-point set (benchmarks/sklearn_grid.py) -------

def b12_sklearn_grid(threads, quick, repeats):
    try:
        ours = cnn.MLPClassifier
    except AttributeError:
        return "cnn.MLPClassifier is not there yet"
    from sklearn.neural_network import MLPClassifier
    from cnn.datasets import moon_and_sun
    from sklearn_grid import configs
    x, y = moon_and_sun()
    widths = (10, 100) if quick else (10, 100, 1000)
    n_iter = {}

    def fit_all(cls):
        def run():
            n_iter[cls] = []
            for kw in configs(widths):
                est = cls(**kw)
                fit_quietly(est, x, y)
                n_iter[cls].append(est.n_iter_)
        return run

    t_cnn, t_ref = interleave([fit_all(ours), fit_all(MLPClassifier)], repeats)
    if n_iter[ours] != n_iter[MLPClassifier]:  # a different number of epochs would time different work
        raise RuntimeError(f"B12: n_iter_ differ, cnn {n_iter[ours]} vs scikit-learn {n_iter[MLPClassifier]}")
    # one full batch (40 <= batch_size 200) per epoch: forward, weight and input gradients of the 2-w-w-1 net
    flop = sum(n * len(x) * flops_per_sample([2 * w, w * w, w])
               for n, w in zip(n_iter[ours], [w for w in widths for _ in range(6)]))
    return pair("B12", f"MLPClassifier grid: (w, w) w in {widths} x sgd/adam x 3 activations, 40 points, "
                "max_iter 5000", "sklearn", t_cnn, t_ref, flop)


# ---- B5: GEMM --------------------------------------------------------------------------------

GEMM_SHAPES = [  # (M, K, N, trans_a, trans_b, role)
    (50, 784, 500, False, False, "MLP forward b50"), (784, 50, 500, True, False, "MLP dW b50"),
    (50, 500, 784, False, True, "MLP dX b50"), (50, 500, 500, False, False, "MLP hidden b50"),
    (50, 500, 10, False, False, "MLP output b50"), (25088, 25, 6, False, False, "LeNet conv1 im2col b32"),
    (3200, 150, 16, False, False, "LeNet conv3 im2col b32"), (1024, 1024, 1024, False, False, "square"),
    (64, 576, 256, False, False, "conv 64->64 3x3 tile"), (64, 1600, 256, False, False, "conv 64->64 5x5 tile"),
    (128, 1024, 1024, False, False, "dense 1024 forward b128"),
]


def b5_gemm(threads, quick, repeats):
    rng = np.random.default_rng(0)
    rows = []
    for m, k, n, ta, tb, role in GEMM_SHAPES:
        a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
        c = np.empty((m, n), np.float32)
        av, bv = (a.T if ta else a), (b.T if tb else b)
        reps = max(1, int((2e7 if quick else 1e8) / (2 * m * n * k)))  # about 10-50 ms per timed run

        def ours():
            for _ in range(reps):
                _core.gemm(c, a, b, ta, tb)

        def ref():
            for _ in range(reps):
                np.matmul(av, bv, out=c)

        t_cnn, t_ref = interleave([ours, ref], repeats)
        form = ("T" if ta else "N") + ("T" if tb else "N")
        rows += pair("B5", f"{m}x{k}x{n} {form} ({role})", "numpy", t_cnn / reps, t_ref / reps, 2 * m * n * k)
    return rows


# ---- B6: convolution layers, forward + backward, LeNet shapes at batch 32 -----------------------

def b6_conv(threads, quick, repeats):
    if not hasattr(cnn.layers, "Conv2D"):
        return "cnn.layers has no Conv2D yet"
    rng = np.random.default_rng(0)
    rows, batch = [], 32
    model = lenet5(seed=0)
    model.build()
    convs = [lay for lay in model.layers if isinstance(lay, cnn.layers.Conv2D) and lay.kernel_size == (5, 5)]
    for role, layer in zip(("conv1", "conv3", "conv5"), convs):
        (cin, h, _), cout, k = layer.input_shape, layer.filters, layer.kernel_size[0]
        x = rng.random((batch, cin, h, h), dtype=np.float32)
        ho = h - k + 1
        dy = rng.random((batch, cout, ho, ho), dtype=np.float32)
        conv = torch.nn.Conv2d(cin, cout, k)
        xt, dyt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)
        reps = 3 if quick else 10

        def ours():
            for _ in range(reps):
                layer.forward(x, training=True)
                layer.backward(dy, need_dx=True)

        def ref():
            for _ in range(reps):
                conv.zero_grad(set_to_none=False)
                conv(xt).backward(dyt)

        t_cnn, t_ref = interleave([ours, ref], repeats)
        macs = batch * cout * ho * ho * cin * k * k
        rows += pair("B6", f"{role} {cin}->{cout} {k}x{k} on {h}x{h}, b32, fwd+bwd", "torch", t_cnn / reps,
                     t_ref / reps, 2 * 3 * macs)
    return rows


# ---- B7: the 2-thread / 1-thread speed-up of B1 and B2 ------------------------------------------

def b7_scaling(quick, pairs):
    """Each side of B1 and B2 timed at 1 and at 2 threads back to back, `pairs` times, the order of the two
    swapped every pair, wall-clock at both (a ratio of the 1-thread CPU time the other rows use to a
    2-thread wall time would charge the machine's stolen time to the 2-thread side only).
    The speed-up is the median of the pairs' ratios: a host that slows one vCPU for a few seconds slows both
    runs of a pair or neither, where a ratio of medians would mix pairs from different phases.
    Returns rows {of, impl, shape, speedup, speedup_q1, speedup_q3, pairs, time_1, time_2}."""
    if pairs < 2:
        raise ValueError(f"b7_scaling needs at least 2 pairs for quartiles, got {pairs}")
    rows = []
    for name, setup in (("B1", b1_setup), ("B2", b2_setup)):
        ours, ref, label, _ = setup(quick)
        for impl, fn in (("cnn", ours), ("torch", ref)):
            times = {1: [], 2: []}
            for p in range(pairs):
                for n in ((1, 2) if p % 2 == 0 else (2, 1)):
                    cnn.set_num_threads(n)
                    torch.set_num_threads(n)
                    time.sleep(0.2)  # the other side's spinning pool goes to sleep
                    fn()  # and this side's pool is awake
                    start = time.perf_counter()
                    fn()
                    times[n].append(time.perf_counter() - start)
            ratios = [a / b for a, b in zip(times[1], times[2])]
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            rows.append({"workload": "B7", "of": name, "impl": impl, "shape": label, "pairs": pairs,
                         "speedup": statistics.median(ratios), "speedup_q1": q1, "speedup_q3": q3,
                         "time_1": statistics.median(times[1]), "time_2": statistics.median(times[2])})
    return rows




# ---- R1, R2: recurrent layers (issue 17) ----------------------------------------------------------

def r1_lstm_step(threads, quick, repeats):
    """One Adam training step of LSTM(128) over 50 steps of 32 features, batch 32, then Dense(10) softmax."""
    batch, steps, features, units = 32, 50, 32, 128
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((batch, steps, features), dtype=np.float32), rng.integers(0, 10, batch)
    model = cnn.Sequential([cnn.layers.LSTM(units, input_shape=(steps, features)),
                            cnn.layers.Dense(10, activation="softmax")], seed=0)
    model.compile(optimizer=cnn.optimizers.Adam(1e-3, variant="torch"), loss="sparse_categorical_crossentropy")
    torch.manual_seed(0)
    lstm, fc = torch.nn.LSTM(features, units, batch_first=True), torch.nn.Linear(units, 10)
    topt = torch.optim.Adam([*lstm.parameters(), *fc.parameters()], lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    reps = 2 if quick else 5

    def ours():
        for _ in range(reps):
            model.train_on_batch(x, y)

    def ref():
        for _ in range(reps):
            topt.zero_grad(set_to_none=False)
            torch.nn.functional.cross_entropy(fc(lstm(xt)[0][:, -1]), yt).backward()
            topt.step()

    t_cnn, t_ref = interleave([ours, ref], repeats)
    macs = steps * batch * 4 * units * (features + units)  # the gate products; the Dense is noise
    return pair("R1", f"LSTM({units}) over {steps} steps of {features}, b{batch}, one Adam step", "torch",
                t_cnn / reps, t_ref / reps, 2 * 3 * macs)


def r2_gru_inference(threads, quick, repeats):
    """GRU(64) over 100 steps of 16 features at batch 1, inference: model.predict against the module under
    no_grad."""
    steps, features, units = 100, 16, 64
    x = np.random.default_rng(0).standard_normal((1, steps, features), dtype=np.float32)
    model = cnn.Sequential([cnn.layers.GRU(units, input_shape=(steps, features))], seed=0)
    model.build()
    gru = torch.nn.GRU(features, units, batch_first=True)
    xt = torch.from_numpy(x)
    reps = 20 if quick else 100

    def ours():
        for _ in range(reps):
            model.predict(x, verbose=0)

    def ref():
        with torch.no_grad():
            for _ in range(reps):
                gru(xt)

    t_cnn, t_ref = interleave([ours, ref], repeats)
    macs = steps * 3 * units * (features + units)
    return pair("R2", f"GRU({units}) over {steps} steps of {features}, b1, inference", "torch", t_cnn / reps,
                t_ref / reps, 2 * macs)


# ---- B11: ResNet-20 (CIFAR-style, issue 16), SGD momentum, batch 64 on 32x32x3 ----------------------

def resnet_macs(model):
    """Multiply-adds per sample of the model's convolutions and Dense layers, first layer first."""
    macs = []
    for layer in model.layers:
        if isinstance(layer, cnn.layers.Conv2D):
            c, (kh, kw), (oc, oh, ow) = layer.input_shape[0], layer.kernel_size, layer.output_shape
            macs.append(oc * c * kh * kw * oh * ow)
        elif isinstance(layer, cnn.layers.Dense):
            macs.append(layer.input_shape[-1] * layer.units)
    return macs


def b11_resnet20(threads, quick, repeats):
    """Training steps of ResNet-20 and its torch twin from the same weights on the same batches."""
    steps, batch = (3 if quick else 8), 64
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((steps * batch, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, steps * batch)
    model = resnet(20, seed=0)
    model.compile(optimizer=cnn.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    tm = to_torch(model, resnet_torch(20))
    topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
    ours, ref = epoch_pair(model, tm, topt, x, y, batch)
    flop = steps * batch * flops_per_sample(resnet_macs(model))
    return pair("B11", f"ResNet-20 SGD-momentum b64 on 3x32x32, {steps} steps", "torch",
                *interleave([ours, ref], repeats), flop)


WORKLOADS = {"B1": b1_mlp, "B2": b2_lenet, "B3": b3_mlp_classifier, "B4": b4_toy, "B5": b5_gemm, "B6": b6_conv,
             "B11": b11_resnet20, "B12": b12_sklearn_grid, "R1": r1_lstm_step, "R2": r2_gru_inference}
