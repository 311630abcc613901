"""Data-parallel B1 over MPI (cnn.distributed): time per epoch at 1 and 2 ranks, bytes allreduced per step, and a
cost model for N ranks that says where scaling stops for B1 and for ResNet-20 at 1, 10 and 100 Gbit/s.

    PYTHONPATH=python python3 benchmarks/distributed.py               # runs itself under mpiexec -n 1, then -n 2
    PYTHONPATH=python python3 benchmarks/distributed.py --markdown    # the same, printing the README's tables

Measured (one OpenMP thread per rank; --rounds runs of 1 rank, then 2 ranks, in turn, each timing --epochs epochs
after a warm-up): B1 (784-500-500-10, SGD-Nesterov, global batch 50, 6,000 rows) at 1 rank, with steps of 50 and
of 25 rows, and at 2 ranks with 25 rows each: the median epoch and the median step (wall-clock, from a step's
begin to its end, Allreduces included), and each step's thread CPU time; the Allreduce of B1's float32
gradient (648,010 values, 2.59 MB) and of the 3 values of the per-step logs. The 2 ranks share this machine:
a step's Allreduce waits until both run, so where other processes keep the cores busy the 2-rank wall-clock
time measures the scheduler more than cnn, and the model's check is only as good as the machine is idle.

The model. A step on N ranks costs
    t(N) = a + c·B/N + 2(N-1)·α + 2(N-1)/N · S/β + ceil(log2 N)·α
compute: a fixed part a (Python, kernel launches) and c per row, fitted from the best 1-rank steps (thread CPU
time) at 50 and 25 rows, each rank computing B/N rows of the global batch B (strong scaling: the same training
as one process); the gradient Allreduce as a ring (2(N-1) messages of S/N bytes each way, S = 4·parameters),
latency α per message, bandwidth β; the small logs Allreduce by recursive doubling, ceil(log2 N)·α. Assumed: α =
--latency (10 µs, a TCP round on a switched network); every rank computes at this machine's one-core speed; the
network, not memory or the switch, limits the ring; no overlap of communication with compute (cnn reduces after
the backward pass). Speed-up S(N) = t(1)/t(N); scaling stops at the N of the largest S(N) (N ≤ B: a rank needs a
row), and the table also gives the last N whose efficiency S(N)/N is at least 50 %.
ResNet-20 (He et al. 2016, CIFAR-10): 272,474 parameters, 40.8 M multiply-adds per 32×32 image forward, so
6·40.8 M FLOP per training image; global batch 128; assumed to run at B1's measured FLOP rate per row with
B1's fixed cost a (cnn's convolutions run at 0.3-1.1× B1's rate, B6, which makes compute longer and scaling
better: this is the case least favourable to scaling).
Check: the 2-rank prediction uses the Allreduce times measured here on loopback in place of α and β."""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESNET20 = {"params": 272_474, "flop_per_row": 6 * 40.8e6, "batch": 128}
NETWORKS_GBIT = (1, 10, 100)


def worker(rows, epochs):
    """Runs in every rank: rank 0 prints one JSON line of measurements."""
    import numpy as np
    from mpi4py import MPI

    sys.path.insert(0, HERE)
    import workloads

    import cnn
    from cnn import distributed

    cnn.set_num_threads(1)
    comm, ranks = MPI.COMM_WORLD, MPI.COMM_WORLD.Get_size()
    wrap = distributed.DistributedOptimizer if ranks > 1 else (lambda opt: opt)
    x, y, model = workloads.b1_model(rows, wrap)
    waits = []  # each step's gradient Allreduce as the training calls it, waiting for the other rank included
    if ranks > 1:
        x, y = distributed.shard(x, y)
        group, allreduce = model.optimizer._group, model.optimizer._group.allreduce

        def timed_allreduce(buf):
            start = time.perf_counter()
            allreduce(buf)
            if buf.size > 3:  # the gradient, not the logs
                waits.append(time.perf_counter() - start)
        group.allreduce = timed_allreduce

    class StepTimer(cnn.callbacks.Callback):
        """Each step's wall-clock and thread CPU time (from the batch's begin to its end, Allreduces included)."""

        def __init__(self):
            super().__init__()
            self.wall, self.cpu = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter(), time.thread_time()

        def on_train_batch_end(self, batch, logs=None):
            self.wall.append(time.perf_counter() - self.start[0])
            self.cpu.append(time.thread_time() - self.start[1])

    def epoch(batch, timer):
        """Wall-clock of one epoch (the slowest rank's); its steps go to timer."""
        comm.Barrier()
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[timer])
        return comm.allreduce(time.perf_counter() - start, op=MPI.MAX)

    batches = [workloads.B1_BATCH // ranks] + ([workloads.B1_BATCH // 2] if ranks == 1 else [])
    for b in batches:
        epoch(b, StepTimer())  # warm-up
    timers, times = {b: StepTimer() for b in batches}, {b: [] for b in batches}
    for _ in range(epochs):  # interleaved, so both batch sizes see the same machine
        for b in batches:
            times[b].append(epoch(b, timers[b]))
    out = {"ranks": ranks, "params": int(model.count_params()), "epoch_s": {str(b): t for b, t in times.items()},
           "step_s": {str(b): t.wall for b, t in timers.items()},
           "step_cpu_s": {str(b): t.cpu for b, t in timers.items()}}
    if ranks > 1:
        out["in_allreduce_s"] = waits
        out["allreduce_s"] = {"grad": _allreduce_time(comm, np.zeros(model.count_params(), np.float32), 30),
                              "logs": _allreduce_time(comm, np.zeros(3), 300)}
    if comm.Get_rank() == 0:
        print(json.dumps(out), flush=True)


def _allreduce_time(comm, buf, repeats):
    from mpi4py import MPI

    times = []
    for _ in range(repeats):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(time.perf_counter() - start)
    return times


def run_ranks(ranks, rows, epochs):
    cmd = ["mpiexec", "--oversubscribe", "-n", str(ranks)] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CNN_ADAPT_THREADS": "0"}
    done = subprocess.run(cmd + [sys.executable, os.path.abspath(__file__), "--worker", "--rows", str(rows),
                                 "--epochs", str(epochs)], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"mpiexec -n {ranks} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- the cost model ----------------------------------------------------------------------------------

def step_time(n, fixed, per_row, batch, allreduce):
    """t(N): compute for B/N rows, then the Allreduces; allreduce(n) is their time at n ranks."""
    return fixed + per_row * batch / n + (allreduce(n) if n > 1 else 0.0)


def ring(nbytes, latency, bandwidth):
    """Ring Allreduce of nbytes plus the small logs Allreduce, at n ranks (seconds)."""
    return lambda n: (2 * (n - 1) * latency + 2 * (n - 1) / n * nbytes / bandwidth
                      + math.ceil(math.log2(n)) * latency)


def scaling(fixed, per_row, batch, allreduce):
    """(best N, speed-up there, last N at >= 50 % efficiency) over N = 1..batch."""
    t1 = step_time(1, fixed, per_row, batch, allreduce)
    speed = {n: t1 / step_time(n, fixed, per_row, batch, allreduce) for n in range(1, batch + 1)}
    best = max(speed, key=speed.get)
    half = max(n for n, s in speed.items() if s / n >= 0.5)
    return best, speed[best], half


def fit_compute(one, stat):
    """(a, c): seconds per step = a + c·rows, from the 1-rank steps of 50 and of 25 rows in thread CPU time."""
    s50, s25 = (stat(one["step_cpu_s"][b]) for b in ("50", "25"))
    per_row = (s50 - s25) / 25
    return s25 - 25 * per_row, per_row


def report(one, two, rows, latency, markdown):
    params, med = one["params"], statistics.median
    sizes = [784, 500, 500, 10]
    macs = [p * q for p, q in zip(sizes, sizes[1:])]
    b1_flop_row = 2 * (3 * sum(macs) - macs[0])
    e1, e2 = med(one["epoch_s"]["50"]), med(two["epoch_s"]["25"])
    print(f"B1 (784-500-500-10, SGD-Nesterov, global batch 50, {rows} rows), one thread per rank; allreduced per "
          f"step: {4 * params:,} bytes of gradient ({params:,} float32) + 24 bytes of logs")
    print(f"epoch (median, wall-clock): 1 rank {e1 * 1e3:.1f} ms, 2 ranks {e2 * 1e3:.1f} ms: speed-up {e1 / e2:.2f}x")
    # the median step is what a user sees on this machine now; the best of hundreds of steps is its speed when no
    # other process interferes, which is what the model assumes
    for label, stat in (("median", med), ("best", min)):
        fixed, per_row = fit_compute(one, stat)
        grad, logs = stat(two["allreduce_s"]["grad"]), stat(two["allreduce_s"]["logs"])
        s1, s2 = stat(one["step_s"]["50"]), stat(two["step_s"]["25"])
        predicted = fixed + per_row * 25 + grad + logs
        print(f"{label} step: 1 rank {s1 * 1e6:.0f} µs, 2 ranks {s2 * 1e6:.0f} µs (wall-clock), speed-up "
              f"{s1 / s2:.2f}x; model: compute a + c·rows (thread CPU) with a = {fixed * 1e6:.0f} µs, c = "
              f"{per_row * 1e6:.2f} µs per row ({b1_flop_row / per_row / 1e9:.1f} GFLOP/s), loopback Allreduce "
              f"{grad * 1e6:.0f} µs + {logs * 1e6:.1f} µs logs: a + 25c + Allreduces = {predicted * 1e6:.0f} µs "
              f"per 2-rank step, speed-up {(fixed + 50 * per_row) / predicted:.2f}x")
    print(f"in the training's gradient Allreduce, waiting for the other rank included: median "
          f"{med(two['in_allreduce_s']) * 1e6:.0f} µs, best {min(two['in_allreduce_s']) * 1e6:.0f} µs per 2-rank step")
    fixed, per_row = fit_compute(one, min)  # the model assumes ranks that nothing else interrupts
    rate = b1_flop_row / per_row
    header = ("| model | parameters (bytes per step) | compute per step, 1 rank | network | allreduce at N=2 | "
              "scaling stops at N | speed-up there | last N at ≥ 50 % efficiency |")
    table = [header, "|---|---|---|---|---|---|---|---|"]
    models = [("B1 MLP 784-500-500-10, batch 50", params, per_row, 50),
              ("ResNet-20 (CIFAR-10), batch 128", RESNET20["params"], RESNET20["flop_per_row"] / rate,
               RESNET20["batch"])]
    for name, p, c, batch in models:
        for gbit in NETWORKS_GBIT:
            allreduce = ring(4 * p, latency, gbit * 1e9 / 8)
            best, speed, half = scaling(fixed, c, batch, allreduce)
            stops = f"{best} (1 row each)" if best == batch else str(best)
            table.append(f"| {name} | {p:,} ({4 * p / 1e6:.2f} MB) | {(fixed + c * batch) * 1e3:.2f} ms "
                         f"| {gbit} Gbit/s | {allreduce(2) * 1e3:.2f} ms | {stops} | {speed:.1f}× | {half} |")
    print(f"\ncost model (strong scaling; compute a + c·rows from the best steps, {rate / 1e9:.1f} GFLOP/s per "
          f"rank; latency {latency * 1e6:.0f} µs per message; assumptions in benchmarks/distributed.py's docstring):")
    print("\n".join(table if markdown else [line.replace("|", " ") for line in table]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after a warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of 1 rank then 2 ranks, in turn")
    parser.add_argument("--latency", type=float, default=10e-6, help="seconds per message (default 10 µs)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker(args.rows, args.epochs)
    runs = {1: [], 2: []}
    for _ in range(args.rounds):  # in turn, so a busy phase of the machine falls on both
        for ranks in runs:
            runs[ranks].append(run_ranks(ranks, args.rows, args.epochs))
    one, two = (merge(r) for r in runs.values())
    report(one, two, args.rows, args.latency, args.markdown)


def merge(results):
    """The runs' measurements as one: every list concatenated."""
    out = dict(results[0])
    for key, value in out.items():
        if isinstance(value, dict):
            out[key] = {k: [t for r in results for t in r[key][k]] for k in value}
    return out


if __name__ == "__main__":
    main()
