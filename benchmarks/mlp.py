"""One epoch of a 784-500-500-10 ReLU MLP, SGD(0.1, momentum 0.9, Nesterov), batch 50, on 6,000 x 784
float32 samples: cnn.Sequential against the same model in PyTorch at the same thread count.

Runs interleave (cnn, torch, cnn, torch, ...) after a warm-up epoch each, and the medians of --repeats
runs are compared.  --profile prints cProfile's top functions for one cnn epoch.

    PYTHONPATH=python python3 benchmarks/mlp.py --threads 1
    PYTHONPATH=python python3 benchmarks/mlp.py --threads 2 --profile
"""
import argparse
import cProfile
import pstats
import statistics
import time

import numpy as np
import torch

import cnn
from cnn.layers import Dense, Input

N, D, H, C, BATCH = 6000, 784, 500, 10, 50


def cnn_model(seed=0):
    model = cnn.Sequential([Input((D,)), Dense(H, activation="relu"), Dense(H, activation="relu"),
                            Dense(C, activation="softmax")], seed=seed)
    model.compile(optimizer=cnn.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def torch_setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, H), torch.nn.ReLU(),
                                torch.nn.Linear(H, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    return model, opt


def torch_epoch(model, opt, x, y, generator):
    """What Keras' fit does per epoch: shuffle, step through batches, track the loss and accuracy."""
    loss_fn = torch.nn.CrossEntropyLoss()
    order = torch.randperm(len(x), generator=generator)
    total, hits = 0.0, 0
    for start in range(0, len(x), BATCH):
        idx = order[start:start + BATCH]
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=False)
        out = model(xb)
        loss = loss_fn(out, yb)
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
        hits += int((out.argmax(1) == yb).sum())
    return total / len(x), hits / len(x)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    cnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.random((N, D), dtype=np.float32)
    y = rng.integers(0, C, N)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    model = cnn_model()
    tmodel, topt = torch_setup()
    gen = torch.Generator().manual_seed(0)

    def run_cnn():
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    def run_torch():
        torch_epoch(tmodel, topt, xt, yt, gen)

    run_cnn()
    run_torch()
    times = {"cnn": [], "torch": []}
    for _ in range(args.repeats):
        times["cnn"].append(timed(run_cnn))
        times["torch"].append(timed(run_torch))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"MLP 784-500-500-10, SGD Nesterov, batch {BATCH}, one epoch of {N}, {args.threads} thread(s), "
          f"median of {args.repeats}")
    for k, v in times.items():
        print(f"  {k:6s} {med[k]:.3f} s   (runs: {', '.join(f'{t:.3f}' for t in v)})")
    print(f"  cnn / torch = {med['cnn'] / med['torch']:.2f}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_cnn()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
