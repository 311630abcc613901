"""Where a training step's time goes, layer by layer and kernel by kernel: the CIFAR convnet's Adam step (B9) or
ResNet-20's SGD step (B11), thread CPU time at one thread, against the PyTorch twin's whole step.

    PYTHONPATH=python python benchmarks/layer_profile.py b9 64     # workload, batch [, threads]
    PYTHONPATH=python python benchmarks/layer_profile.py b11 64

Layers are timed by wrapping their forward and backward, kernels by wrapping the cnn._core functions the layers
call; the rest of a step (the loss, the graph's bookkeeping, copies) is the step less the kernels."""
import collections
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import cnn
from cnn import _core
from cnn.applications import resnet, resnet_torch
from conv_workloads import cifar_steps

KERNELS = ["conv2d_forward", "conv2d_backward", "activation_forward", "activation_backward", "relu_forward",
           "relu_backward", "maxpool2d_forward", "maxpool2d_backward", "maxpool2x2_forward", "maxpool2x2_backward",
           "batchnorm_forward", "batchnorm_backward", "add_forward", "avgpool2d_forward", "avgpool2d_backward",
           "dense_forward", "dense_backward", "adam_step", "sgd_step"]


def resnet_steps(batch, rng):
    x, y = rng.random((batch, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, batch)
    model = resnet(20, seed=0)
    model.compile(optimizer=cnn.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    tm = resnet_torch(20)
    opt, loss_fn = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9), torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def ref():
        opt.zero_grad(set_to_none=False)
        loss_fn(tm(xt), yt).backward()
        opt.step()

    return (lambda: model.train_on_batch(x, y)), ref, model


def timed(f, n):
    t0 = time.process_time()
    for _ in range(n):
        f()
    return (time.process_time() - t0) / n


def wrap(owner, name, acc, key):
    f = getattr(owner, name)

    def timed_call(*args, **kwargs):
        t0 = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            acc[key] += time.process_time() - t0

    setattr(owner, name, timed_call)


def main():
    workload, batch = sys.argv[1], int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        cnn.set_num_threads(threads)
        rng = np.random.default_rng(0)
        if workload == "b9":
            ours, ref, model, _, _ = cifar_steps(batch, rng)
        else:
            ours, ref, model = resnet_steps(batch, rng)
        for _ in range(3):
            ours(), ref()
        n = max(3, 1024 // batch)
        plain, torch_step = timed(ours, n), timed(ref, n)
        layers, kernels = collections.defaultdict(float), collections.defaultdict(float)
        for layer in model.layers:
            if hasattr(layer, "backward"):
                wrap(layer, "forward", layers, (type(layer).__name__, "forward"))
                wrap(layer, "backward", layers, (type(layer).__name__, "backward"))
        wrap(model.optimizer, "step", layers, ("optimizer", "step"))
        for name in KERNELS:
            if hasattr(_core, name):  # an older build may lack some
                wrap(_core, name, kernels, name)
        step = timed(ours, n)
    print(f"{workload} b{batch} threads {threads}: cnn step {plain * 1e3:.2f} ms, torch {torch_step * 1e3:.2f} ms, "
          f"speed {torch_step / plain:.2f}x (wrapped step {step * 1e3:.2f} ms)")
    for (kind, phase), t in sorted(layers.items(), key=lambda kv: -kv[1]):
        print(f"  layer  {kind:24s} {phase:9s} {t / n * 1e3:8.2f} ms")
    total = 0.0
    for name, t in sorted(kernels.items(), key=lambda kv: -kv[1]):
        if t:
            print(f"  kernel {name:34s} {t / n * 1e3:8.2f} ms")
            total += t / n
    print(f"  the rest (loss, graph, copies, Python) {(step - total) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
