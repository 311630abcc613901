"""cnn.MLPClassifier against scikit-learn's on a bag of words: a random CSR matrix of 10,000 documents x
100,000 words at density 1e-3 (about 100 words a document), 5 classes, one hidden layer of 100 ReLU units,
a few epochs of Adam (batch 200). Both train on the same CSR matrix and must agree (loss_curve_ to 1e-10);
runs interleave (cnn, sklearn, sklearn, cnn, ...) and the medians are compared. Also times cnn on the dense
copy's first layer cost for scale: none, the dense copy alone would be 8 GB.

Each fit's time is dominated by the 10M-parameter first layer: its gradient xᵀ·dY (nonzeros only, but the
dense (100,000, 100) result is written each batch) and Adam's update over all 10M weights, as in scikit-learn.
Both libraries get the same thread count (cnn.set_num_threads, threadpoolctl for scipy/BLAS).

    PYTHONPATH=python python3 benchmarks/sparse.py [--threads 2] [--repeats 3] [--epochs 3] [--samples 10000]
"""
import argparse
import statistics
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLP
from threadpoolctl import threadpool_limits

import cnn
from cnn.sklearn import MLPClassifier as CnnMLP


def bag_of_words(samples, words, density, classes, seed=0):
    """Word counts (1 to 3) at random positions; the label is a noisy function of a few hundred words, so the
    loss falls over the epochs."""
    rng = np.random.default_rng(seed)
    per_doc = max(1, round(density * words))  # drawn with replacement (a repeat adds to the count), as scipy's
    rows = np.repeat(np.arange(samples), per_doc)  # sparse.random would draw from all samples·words cells at once
    X = sp.csr_matrix((rng.integers(1, 4, rows.size).astype(np.float64),
                       (rows, rng.integers(0, words, rows.size))), shape=(samples, words))
    topic = rng.standard_normal((words, classes)) * (rng.random((words, 1)) < 0.005)
    y = np.argmax(X @ topic + 0.5 * rng.standard_normal((samples, classes)), axis=1)
    return X, y


def timed_fit(cls, X, y, epochs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        model = cls(hidden_layer_sizes=(100,), solver="adam", max_iter=epochs, random_state=0, tol=0).fit(X, y)
        return model, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--words", type=int, default=100_000)
    args = ap.parse_args()
    cnn.set_num_threads(args.threads)
    X, y = bag_of_words(args.samples, args.words, 1e-3, 5)
    print(f"X: {X.shape[0]} x {X.shape[1]} CSR, {X.nnz} nonzeros (density {X.nnz / np.prod(X.shape):.1e}); "
          f"MLP {X.shape[1]}-100-5, adam, {args.epochs} epochs, batch 200, {args.threads} threads")
    times = {"cnn": [], "sklearn": []}
    with threadpool_limits(args.threads):
        for r in range(args.repeats):
            for name in (("cnn", "sklearn") if r % 2 == 0 else ("sklearn", "cnn")):
                model, dt = timed_fit(CnnMLP if name == "cnn" else SkMLP, X, y, args.epochs)
                times[name].append(dt)
                if name == "cnn":
                    ours = model
                else:
                    ref = model
                print(f"  {name:>7} run {r + 1}: {dt:7.2f} s  loss_curve_ {np.round(model.loss_curve_, 6).tolist()}",
                      flush=True)
    gap = float(np.max(np.abs(np.subtract(ours.loss_curve_, ref.loss_curve_)) / np.abs(ref.loss_curve_)))
    med = {k: statistics.median(v) for k, v in times.items()}
    per_epoch = {k: v / args.epochs for k, v in med.items()}
    print(f"loss_curve_ largest relative gap cnn vs sklearn: {gap:.1e}")
    print(f"median fit: cnn {med['cnn']:.2f} s ({per_epoch['cnn']:.2f} s/epoch), sklearn {med['sklearn']:.2f} s "
          f"({per_epoch['sklearn']:.2f} s/epoch); sklearn/cnn = {med['sklearn'] / med['cnn']:.2f}x")


if __name__ == "__main__":
    main()
