"""The convolution workloads B8-B10 (issue 20): conv shapes off the lectures' sizes, the CIFAR-shaped convnet,
and the peak memory training it adds, each against PyTorch in one process (interleaved medians, workloads.py).

B8 prints the path conv2d's heuristic picks for each shape (conv2d_path), so a table row says which kernel
it timed. B10 runs each side in a fresh subprocess (peak RSS is a high-water mark of the whole process).

    PYTHONPATH=python python3 benchmarks/run.py --only B8,B9,B10
    PYTHONPATH=python python3 benchmarks/conv_workloads.py --rss cnn 256   # one side of B10, prints MB
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

import cnn
from cnn import _core
from workloads import flops_per_sample, interleave, pair

# ---- B8: convolution shapes, forward and forward+backward ---------------------------------------------------

# (label, batch, in channels, size, out channels, kernel, stride, padding, groups)
CONV_SHAPES = [
    ("64->64 3x3 on 56x56 b16", 16, 64, 56, 64, 3, 1, 1, 1),
    ("64->64 5x5 on 56x56 b16", 16, 64, 56, 64, 5, 1, 2, 1),
    ("64->64 1x1 on 56x56 b16", 16, 64, 56, 64, 1, 1, 0, 1),
    ("64->128 3x3 stride 2 on 56x56 b16", 16, 64, 56, 128, 3, 2, 1, 1),
    ("3->64 7x7 stride 2 on 224x224 b4", 4, 3, 224, 64, 7, 2, 3, 1),
    ("64 depthwise 3x3 on 56x56 b16", 16, 64, 56, 64, 3, 1, 1, 64),
]


def conv_case(n, c, h, oc, k, s, p, groups, rng):
    """(cnn's forward, cnn's forward+backward, torch's forward, torch's forward+backward, MACs, path)"""
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    w = (rng.standard_normal((oc, c // groups, k, k), dtype=np.float32) * 0.1).astype(np.float32)
    b = rng.standard_normal(oc, dtype=np.float32)
    geo = ((s, s), (p, p, p, p), (1, 1), groups)
    oh = (h + 2 * p - k) // s + 1
    size = _core.conv2d_scratch_size(x.shape, w.shape, *geo)
    scratch = np.empty(size, np.float32) if size else None
    y = np.empty((n, oc, oh, oh), np.float32)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(b)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_(True) for a in (x, w, b))
    dyt = torch.from_numpy(dy)

    def ours_fwd():
        _core.conv2d_forward(y, x, w, b, scratch, *geo)

    def ours_step():
        _core.conv2d_forward(y, x, w, b, scratch, *geo)
        _core.conv2d_backward(dx, dw, db, dy, x, w, scratch, *geo, False)

    def ref_fwd():
        with torch.no_grad():
            torch.nn.functional.conv2d(xt, wt, bt, s, p, 1, groups)

    def ref_step():
        out = torch.nn.functional.conv2d(xt, wt, bt, s, p, 1, groups)
        torch.autograd.grad(out, (xt, wt, bt), dyt)

    macs = n * oc * oh * oh * (c // groups) * k * k
    return ours_fwd, ours_step, ref_fwd, ref_step, macs, _core._conv2d_path(x.shape, w.shape, *geo)


def b8_conv_shapes(threads, quick, repeats):
    rng = np.random.default_rng(0)
    rows = []
    for label, *shape in CONV_SHAPES[:2] if quick else CONV_SHAPES:
        ours_fwd, ours_step, ref_fwd, ref_step, macs, path = conv_case(*shape, rng)
        if threads == 1:
            print(f"  B8 {label}: path {path}")
        t = interleave([ours_fwd, ref_fwd, ours_step, ref_step], repeats)
        rows += pair("B8", f"{label} fwd [{path}]", "torch", t[0], t[1], 2 * macs)
        rows += pair("B8", f"{label} fwd+bwd [{path}]", "torch", t[2], t[3], 6 * macs)
    return rows


# ---- B9: the CIFAR-shaped convnet, one Adam step at batch 8/64/256 and inference at 256 ---------------------

# multiply-adds per sample, first layer first: 3x3 pad-1 convs 3->32 on 32x32, 32->64 on 16x16, 64->128 on 8x8
# (each followed by a 2x2 max-pool), Dense 2048->256, 256->10
CIFAR_MACS = [32 * 32 * 32 * 27, 64 * 16 * 16 * 288, 128 * 8 * 8 * 576, 2048 * 256, 256 * 10]


def cifar_cnn(seed=0):
    layers = [cnn.layers.Input((3, 32, 32))]
    for filters in (32, 64, 128):
        layers += [cnn.layers.Conv2D(filters, 3, padding="same", activation="relu"), cnn.layers.MaxPooling2D(2)]
    layers += [cnn.layers.Flatten(), cnn.layers.Dense(256, activation="relu"),
               cnn.layers.Dense(10, activation="softmax")]
    model = cnn.Sequential(layers, seed=seed)
    model.compile(optimizer=cnn.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy")
    return model


def cifar_torch():
    nn, layers, c = torch.nn, [], 3
    for filters in (32, 64, 128):
        layers += [nn.Conv2d(c, filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = filters
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(2048, 256), nn.ReLU(), nn.Linear(256, 10))


def cifar_steps(batch, rng):
    """(cnn's Adam step, torch's Adam step) on one batch of random CIFAR-shaped data."""
    x, y = rng.random((batch, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, batch)
    model = cifar_cnn()
    torch.manual_seed(0)
    tm = cifar_torch()
    opt, loss_fn = torch.optim.Adam(tm.parameters(), lr=0.001), torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def ref():
        opt.zero_grad(set_to_none=False)
        loss_fn(tm(xt), yt).backward()
        opt.step()

    return (lambda: model.train_on_batch(x, y)), ref, model, tm, x


def b9_cifar(threads, quick, repeats):
    rng = np.random.default_rng(0)
    rows = []
    for batch in (8, 64) if quick else (8, 64, 256):
        ours, ref, *_ = cifar_steps(batch, rng)
        reps = max(1, 512 // batch)  # a timed run of about 512 samples

        def ours_n():
            for _ in range(reps):
                ours()

        def ref_n():
            for _ in range(reps):
                ref()

        t_cnn, t_ref = interleave([ours_n, ref_n], repeats)
        rows += pair("B9", f"CIFAR convnet Adam step b{batch}", "torch", t_cnn / reps, t_ref / reps,
                     batch * flops_per_sample(CIFAR_MACS))
    _, _, model, tm, x = cifar_steps(256, rng)
    xt = torch.from_numpy(x)

    def ref_infer():
        with torch.no_grad():
            tm(xt)

    t_cnn, t_ref = interleave([lambda: model.predict(x, batch_size=256, verbose=0), ref_infer], repeats)
    rows += pair("B9", "CIFAR convnet inference b256", "torch", t_cnn, t_ref, 256 * 2 * sum(CIFAR_MACS))
    return rows


# ---- B10: peak RSS added by training the CIFAR convnet --------------------------------------------------------

def status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def rss_added(impl, batch, steps=3):
    """MB the process's peak RSS rises above its RSS once the model and data exist, over `steps` training steps.
    The high-water mark is reset to the current RSS first (/proc/self/clear_refs): building both models and
    importing both libraries peak higher than a small batch's training does."""
    ours, ref, *_ = cifar_steps(batch, np.random.default_rng(0))
    step = ours if impl == "cnn" else ref
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kb("VmRSS")
    for _ in range(steps):
        step()
    return (status_kb("VmHWM") - before) / 1024


def b10_memory(threads, quick, repeats):
    rows = []
    for batch in (64, 256):
        added = {}
        for impl in ("cnn", "torch"):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss", impl, str(batch),
                                  "--threads", str(threads)], capture_output=True, text=True, check=True)
            added[impl] = json.loads(out.stdout.strip().splitlines()[-1])["mb"]
        # "time_s" carries megabytes here so that speed = torch's MB / cnn's MB (> 1: cnn uses less)
        rows += pair("B10", f"CIFAR convnet peak RSS added by training, b{batch} (MB, not s)", "torch",
                     added["cnn"], added["torch"], 0)
    return rows


WORKLOADS = {"B8": b8_conv_shapes, "B9": b9_cifar, "B10": b10_memory}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rss", nargs=2, metavar=("IMPL", "BATCH"), required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    cnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    print(json.dumps({"mb": rss_added(args.rss[0], int(args.rss[1]))}))
