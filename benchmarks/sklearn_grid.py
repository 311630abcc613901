"""cnn.MLPClassifier against scikit-learn's on the same work, in one process, interleaved.

1. The lecture's 18-configuration grid on the 40-point "moon and sun" set: hidden_layer_sizes in
   {(10,10), (100,100), (1000,1000)} x solver in {sgd, adam} x activation in {logistic, tanh, relu},
   max_iter=5000. Prints each fit's n_iter_, train accuracy and time, and the total time ratio.
2. Fashion-MNIST with MLPClassifier(hidden_layer_sizes=(100,), solver='adam'): time per epoch and
   test accuracy.

Both libraries get the same thread count (cnn.set_num_threads, threadpoolctl for sklearn's BLAS).
    PYTHONPATH=python python3 benchmarks/sklearn_grid.py [--threads 1] [--repeats 1] [--mnist-epochs 5]
        [--no-grid] [--widths 10,100,1000] [--fashion-dir DIR]
"""
import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLP
from threadpoolctl import threadpool_limits

import cnn
from cnn.datasets import load_fashion_mnist, moon_and_sun
from cnn.sklearn import MLPClassifier as CnnMLP

def timed_fit(cls, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        model = cls(**kw).fit(X, y)
        return model, time.perf_counter() - t0


def configs(widths):
    """The grid's estimator parameters: (w, w) networks for each width x solver x activation."""
    return [dict(hidden_layer_sizes=(w, w), activation=activation, solver=solver, max_iter=5000, random_state=0)
            for w in widths for solver in ["sgd", "adam"] for activation in ["logistic", "tanh", "relu"]]


def grid(repeats, widths):
    X, y = moon_and_sun()
    totals = {"cnn": 0.0, "sklearn": 0.0}
    print(f"{'hidden':>12} {'solver':>6} {'activation':>10} | {'n_iter cnn/skl':>15} {'acc cnn/skl':>13} |"
          f" {'cnn s':>8} {'sklearn s':>9} {'ratio':>6}")
    for kw in configs(widths):
        hidden, solver, activation = kw["hidden_layer_sizes"], kw["solver"], kw["activation"]
        times = {"cnn": [], "sklearn": []}
        for r in range(repeats):  # alternate which goes first
            for name in (("cnn", "sklearn") if r % 2 == 0 else ("sklearn", "cnn")):
                model, dt = timed_fit(CnnMLP if name == "cnn" else SkMLP, X, y, **kw)
                times[name].append(dt)
                if name == "cnn":
                    ours = model
                else:
                    ref = model
        med = {k: float(np.median(v)) for k, v in times.items()}
        for k in totals:
            totals[k] += med[k]
        print(f"{str(hidden):>12} {solver:>6} {activation:>10} | {ours.n_iter_:>7}/{ref.n_iter_:<7}"
              f" {ours.score(X, y):>6.3f}/{ref.score(X, y):<6.3f} | {med['cnn']:8.3f} {med['sklearn']:9.3f}"
              f" {med['sklearn'] / med['cnn']:6.1f}x", flush=True)
    print(f"grid total: cnn {totals['cnn']:.2f} s, sklearn {totals['sklearn']:.2f} s, "
          f"sklearn/cnn = {totals['sklearn'] / totals['cnn']:.1f}x")


def fashion(folder, epochs, repeats):
    (X, y), (Xt, yt) = load_fashion_mnist(folder)
    X, Xt = X.reshape(-1, 784) / 255.0, Xt.reshape(-1, 784) / 255.0
    kw = dict(hidden_layer_sizes=(100,), solver="adam", max_iter=epochs, random_state=0)
    per_epoch, acc = {"cnn": [], "sklearn": []}, {}
    for r in range(repeats):
        for name in (("cnn", "sklearn") if r % 2 == 0 else ("sklearn", "cnn")):
            model, dt = timed_fit(CnnMLP if name == "cnn" else SkMLP, X, y, **kw)
            per_epoch[name].append(dt / model.n_iter_)
            acc[name] = model.score(Xt, yt)
    med = {k: float(np.median(v)) for k, v in per_epoch.items()}
    print(f"Fashion-MNIST MLP 784-100-10 adam, {epochs} epochs of 60,000: per epoch cnn {med['cnn']:.3f} s, "
          f"sklearn {med['sklearn']:.3f} s, sklearn/cnn = {med['sklearn'] / med['cnn']:.2f}x; "
          f"test accuracy cnn {acc['cnn']:.4f}, sklearn {acc['sklearn']:.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="fits per configuration (median taken)")
    parser.add_argument("--mnist-epochs", type=int, default=5, help="0 skips the Fashion-MNIST run")
    parser.add_argument("--no-grid", action="store_true")
    parser.add_argument("--widths", default="10,100,1000", help="hidden widths w of the grid's (w, w) networks")
    parser.add_argument("--fashion-dir", default=None, help="folder of the four Fashion-MNIST IDX files "
                        "(default: cnn.datasets.load_fashion_mnist's)")
    args = parser.parse_args()
    cnn.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        print(f"threads: {args.threads} (cnn and sklearn's BLAS)")
        if not args.no_grid:
            grid(args.repeats, [int(w) for w in args.widths.split(",")])
        if args.mnist_epochs:
            fashion(args.fashion_dir, args.mnist_epochs, max(args.repeats, 3))


if __name__ == "__main__":
    main()
