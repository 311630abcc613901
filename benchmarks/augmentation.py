"""The cost of augmentation in a LeNet-5 training step: cnn.applications.lenet5 at batch 32 with and without
RandomRotation + RandomZoom + RandomTranslation in front (python -m cnn.lenet --augment's layers, bilinear,
constant fill), one train_on_batch each, interleaved so that machine noise hits both alike. Prints the median
step of each, their ratio and the median ratio of adjacent pairs (the steadier on a busy machine), and the
three layers' own forward time.

    python benchmarks/augmentation.py [--steps 300] [--threads 1]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import cnn  # noqa: E402
from cnn import lenet  # noqa: E402
from cnn.applications import lenet5_inputs  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        cnn.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = lenet5_inputs(rng.integers(0, 256, (32 * 16, 28, 28), dtype=np.uint8))
    y = rng.integers(0, 10, len(x))
    models = {}
    for name, flags in (("plain", []), ("augmented", ["--augment"])):
        models[name] = lenet.build_model(lenet.parser().parse_args(flags))
        models[name].compile(cnn.optimizers.Adam(5e-4, variant="torch"), "sparse_categorical_crossentropy")
    augment = models["augmented"].layers[:3]
    times = {"plain": [], "augmented": [], "layers": []}
    for step in range(args.steps + 20):  # the first 20 warm up
        s = 32 * (step % 16)
        xb, yb = x[s:s + 32], y[s:s + 32]
        for name in ("plain", "augmented") if step % 2 else ("augmented", "plain"):
            t = time.perf_counter()
            models[name].train_on_batch(xb, yb)
            times[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        h = xb
        for layer in augment:
            h = layer.forward(h, training=True)
        times["layers"].append(time.perf_counter() - t)
    med = {k: float(np.median(v[20:])) for k, v in times.items()}
    print(f"LeNet-5, batch 32, {args.steps} steps, {cnn.get_num_threads()} threads (medians)")
    print(f"  step without augmentation  {med['plain'] * 1e3:8.3f} ms")
    print(f"  step with rotation+zoom+translation {med['augmented'] * 1e3:8.3f} ms")
    print(f"  the three layers' forward  {med['layers'] * 1e3:8.3f} ms")
    paired = np.median(np.array(times["augmented"][20:]) / np.array(times["plain"][20:]))
    print(f"  ratio with/without {med['augmented'] / med['plain']:.3f} of the medians, {paired:.3f} the median of "
          f"adjacent pairs (layers alone: {med['layers'] / med['plain']:.1%} of a plain step)")


if __name__ == "__main__":
    main()
