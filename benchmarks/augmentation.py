"""The cost of augmentation in a LeNet-5 training step: cnn.applications.lenet5 at batch 32 with and without
RandomRotation + RandomZoom + RandomTranslation in front (python -m cnn.lenet --augment's layers: bilinear,
constant fill, resampled once with their product), trained by fit in epochs of 16 steps, the two models'
epochs interleaved so that machine noise hits both alike. Every step is timed by a callback.

On a shared machine a step's wall time is bimodal (about 4x apart on the 2-vCPU VM when other processes hold
the cores), so the cost is read from the calling thread's CPU time (time.thread_time: the time the step ran,
not the time it waited for a core), which counts all the work at one thread; the wall-time median is printed
beside it.

    python benchmarks/augmentation.py [--epochs 30] [--threads 1]
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


class StepTimes(cnn.callbacks.Callback):
    """Each step's CPU time in this thread and its wall time."""

    def __init__(self):
        super().__init__()
        self.cpu, self.wall, self.start = [], [], (0.0, 0.0)

    def on_train_batch_begin(self, batch, logs=None):
        self.start = (time.thread_time(), time.perf_counter())

    def on_train_batch_end(self, batch, logs=None):
        self.cpu.append(time.thread_time() - self.start[0])
        self.wall.append(time.perf_counter() - self.start[1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=30, help="timed epochs of 16 steps for each model")
    p.add_argument("--threads", type=int, default=1, help="1 (the default): the CPU time then holds all the work")
    args = p.parse_args()
    if args.threads:
        cnn.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = lenet5_inputs(rng.integers(0, 256, (32 * 16, 28, 28), dtype=np.uint8))
    y = rng.integers(0, 10, len(x))
    models, timers = {}, {}
    for name, flags in (("plain", []), ("augmented", ["--augment"])):
        models[name] = lenet.build_model(lenet.parser().parse_args(flags))
        models[name].compile(cnn.optimizers.Adam(5e-4, variant="torch"), "sparse_categorical_crossentropy")
        models[name].fit(x, y, batch_size=32, epochs=1, verbose=0)  # warm-up
        timers[name] = StepTimes()
    for epoch in range(args.epochs):
        for name in ("plain", "augmented") if epoch % 2 else ("augmented", "plain"):
            models[name].fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[timers[name]])
    stats = {name: (np.median(t.cpu) * 1e3, np.median(t.wall) * 1e3) for name, t in timers.items()}
    print(f"LeNet-5, batch 32, {16 * args.epochs} steps each, {cnn.get_num_threads()} threads: ms per step (medians)")
    print(f"{'':>32} {'CPU time':>9} {'wall':>8}")
    print(f"{'without augmentation':>32} {stats['plain'][0]:>9.3f} {stats['plain'][1]:>8.3f}")
    print(f"{'with rotation+zoom+translation':>32} {stats['augmented'][0]:>9.3f} {stats['augmented'][1]:>8.3f}")
    print(f"{'ratio':>32} {stats['augmented'][0] / stats['plain'][0]:>9.3f} "
          f"{stats['augmented'][1] / stats['plain'][1]:>8.3f}")

if __name__ == "__main__":
    main()
