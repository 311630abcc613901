"""LeNet-5's convolutions, one kernel call at a time: cnn's conv2d_forward/backward against
torch.nn.functional.conv2d and its autograd, batch 32, one thread, fastest of 7 runs of 5 calls
(the fastest is the least disturbed on a shared machine). Backward computes dx, dw and db.

    python benchmarks/conv_kernels.py
"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from cnn import _core  # noqa: E402

# (in channels, input size, out channels, kernel, groups)
LAYERS = {"conv1": (1, 32, 6, 5, 1), "scale1 (1x1, groups=6)": (6, 28, 6, 1, 6), "conv3": (6, 14, 16, 5, 1),
          "conv5": (16, 5, 120, 5, 1)}


def fastest_ms(f, runs=7, calls=5):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(calls):
            f()
        times.append((time.perf_counter() - t) / calls)
    return min(times) * 1e3


def main():
    torch.set_num_threads(1)
    _core.set_num_threads(1)
    rng = np.random.default_rng(0)
    n, geo = 32, ((1, 1), (0, 0, 0, 0), (1, 1))
    print(f"{'layer':24s} {'cnn fwd':>8s} {'cnn bwd':>8s} {'torch fwd':>10s} {'torch bwd':>10s}  (ms)")
    for name, (c, h, oc, k, g) in LAYERS.items():
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = rng.standard_normal((oc, c // g, k, k)).astype(np.float32)
        b = np.zeros(oc, np.float32)
        size = _core.conv2d_scratch_size(x.shape, w.shape, *geo, g)
        scratch = np.empty(size, np.float32) if size else None
        y = np.empty((n, oc, h - k + 1, h - k + 1), np.float32)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx, dw, db = np.empty_like(x), np.zeros_like(w), np.zeros_like(b)
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        dyt = torch.tensor(dy)
        fwd = fastest_ms(lambda: _core.conv2d_forward(y, x, w, b, scratch, *geo, g))
        bwd = fastest_ms(lambda: _core.conv2d_backward(dx, dw, db, dy, x, w, scratch, *geo, g))
        tfwd = fastest_ms(lambda: torch.nn.functional.conv2d(xt, wt, bt, groups=g))
        yt = torch.nn.functional.conv2d(xt, wt, bt, groups=g)
        tbwd = fastest_ms(lambda: torch.autograd.grad(yt, (xt, wt, bt), dyt, retain_graph=True))
        print(f"{name:24s} {fwd:8.3f} {bwd:8.3f} {tfwd:10.3f} {tbwd:10.3f}")


if __name__ == "__main__":
    main()
