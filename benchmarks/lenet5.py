"""LeNet-5 (the lecture's variant, cnn.applications.lenet5) trained by cnn and by PyTorch from identical
initial weights.

Inputs are cnn.applications.lenet5_inputs of the images (padded to 32x32, mapped to 1.175 - 1.275·x);
cross-entropy, Adam 5e-4, batch 32. Both see the same batches, reshuffled each epoch; epochs are
interleaved so machine noise hits both alike. --cnn-only trains cnn alone (faster when only its accuracy matters).
--seeds 0,1,2,3,4 repeats the run for each seed (initial weights and batch order) and ends with the final
test accuracy of each and their mean: one run's accuracy moves by about ±0.5% with the seed.

    python benchmarks/lenet5.py --epochs 5 --threads 1 [--train-limit 6000] [--data fashion|mnist|DIR]
        [--seeds 0,1,2] [--cnn-only] [--profile]
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import cnn  # noqa: E402
from cnn.applications import lenet5, lenet5_inputs, lenet5_torch  # noqa: E402
from cnn.interop import to_torch  # noqa: E402

LOADERS = {"fashion": cnn.datasets.load_fashion_mnist, "mnist": cnn.datasets.load_mnist}


def load(which):
    """x_train, y_train, x_test, y_test: LeNet-5 inputs and int64 labels."""
    loader = LOADERS.get(which)
    (x_train, y_train), (x_test, y_test) = loader() if loader else cnn.datasets.load_mnist(which)
    return (lenet5_inputs(x_train), y_train.astype(np.int64), lenet5_inputs(x_test), y_test.astype(np.int64))


def torch_epoch(net, opt, x, y, batch):
    total = 0.0
    for s in range(0, len(x), batch):
        xb, yb = torch.from_numpy(x[s:s + batch]), torch.from_numpy(y[s:s + batch])
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item() * len(xb)
    return total / len(x)


def torch_accuracy(net, x, y):
    with torch.no_grad():
        return float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def profile_layers(model, x, y, steps=50):
    """Fastest time per layer (the least disturbed by other work on the machine), forward and backward, over
    training steps."""
    times = {layer.name: ([], []) for layer in model.layers}
    for s in range(steps):
        h = x[32 * s:32 * (s + 1)]
        for layer in model.layers[:-1]:
            t = time.perf_counter()
            h = layer.forward(h, training=True)
            times[layer.name][0].append(time.perf_counter() - t)
        last = model.layers[-1]
        t = time.perf_counter()
        out = last.forward(h, training=True, logits=True)
        times[last.name][0].append(time.perf_counter() - t)
        _, d = model.loss(out, y[32 * s:32 * (s + 1)], logits=True)
        for i in range(len(model.layers) - 1, -1, -1):
            t = time.perf_counter()
            d = model.layers[i].backward(d, need_dx=i > 0)
            times[model.layers[i].name][1].append(time.perf_counter() - t)
    print(f"{'layer':22s} {'fwd ms':>8s} {'bwd ms':>8s}")
    for name, (f, b) in times.items():
        print(f"{name:22s} {np.min(f) * 1e3:8.3f} {np.min(b) * 1e3:8.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=None, help="train on the first N samples only")
    ap.add_argument("--data", default="fashion", help="fashion, mnist, or a directory of IDX files")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seeds", default="0", help="comma-separated seeds, one run each (default 0)")
    ap.add_argument("--cnn-only", action="store_true", help="train cnn alone, no PyTorch run")
    ap.add_argument("--profile", action="store_true", help="print per-layer times of cnn and stop")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cnn.set_num_threads(args.threads)
    x_train, y_train, x_test, y_test = load(args.data)
    if args.train_limit:
        x_train, y_train = x_train[:args.train_limit], y_train[:args.train_limit]
    seeds = [int(s) for s in args.seeds.split(",")]
    finals = [train(args, seed, x_train, y_train, x_test, y_test) for seed in seeds]
    if len(seeds) > 1 and None not in finals:
        print(f"cnn test accuracy after epoch {args.epochs}, seeds {args.seeds}: "
              f"{', '.join(f'{100 * a:.2f}' for a in finals)}% (mean {100 * np.mean(finals):.2f}%, "
              f"min {100 * min(finals):.2f}%, max {100 * max(finals):.2f}%)")


def train(args, seed, x_train, y_train, x_test, y_test):
    """One run from seed's initial weights and batch order; returns cnn's final test accuracy."""
    model = lenet5(seed=seed)
    model.compile(optimizer=cnn.optimizers.Adam(5e-4, variant="torch"), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.build()
    if args.profile:
        profile_layers(model, x_train, y_train)
        return None
    net = to_torch(model, lenet5_torch())
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    rng = np.random.default_rng(seed)

    print(f"LeNet-5 on {args.data}: {len(x_train)} train / {len(x_test)} test, batch {args.batch_size}, "
          f"{args.threads} thread(s), seed {seed}; cnn {cnn.__version__}, torch {torch.__version__}")
    print(f"{'epoch':>5s} | {'cnn loss':>9s} {'acc':>7s} {'time s':>7s} | {'torch loss':>10s} {'acc':>7s} "
          f"{'time s':>7s} | {'cnn/torch':>9s}")
    ratios, acc_cnn = [], None
    for epoch in range(1, args.epochs + 1):
        perm = rng.permutation(len(x_train))
        xe, ye = x_train[perm], y_train[perm]
        t = time.perf_counter()
        hist = model.fit(xe, ye, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
        t_cnn = time.perf_counter() - t
        acc_cnn = model.evaluate(x_test, y_test, batch_size=500, verbose=0)[1]
        row = f"{epoch:5d} | {hist.history['loss'][0]:9.4f} {acc_cnn:7.4f} {t_cnn:7.2f}"
        if args.cnn_only:
            print(row, flush=True)
            continue
        t = time.perf_counter()
        loss_torch = torch_epoch(net, opt, xe, ye, args.batch_size)
        t_torch = time.perf_counter() - t
        acc_torch = torch_accuracy(net, x_test, y_test)
        ratios.append(t_cnn / t_torch)
        print(f"{row} | {loss_torch:10.4f} {acc_torch:7.4f} {t_torch:7.2f} | {t_cnn / t_torch:9.2f}", flush=True)
    if ratios:
        print(f"median time ratio cnn/torch: {np.median(ratios):.2f}")
    return acc_cnn


if __name__ == "__main__":
    main()
