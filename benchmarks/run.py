"""cnn against PyTorch, scikit-learn and NumPy's BLAS on the same work, in one process.

    PYTHONPATH=python python3 benchmarks/run.py                      # everything, 1 and 2 threads
    PYTHONPATH=python python3 benchmarks/run.py --only B1,B5 --threads 1,2
    PYTHONPATH=python python3 benchmarks/run.py --quick              # smaller data, 5 repeats
    PYTHONPATH=python python3 benchmarks/run.py --markdown           # the README table from results/*.json

Workloads (benchmarks/workloads.py): B1 MLP 784-500-500-10 SGD-Nesterov vs PyTorch; B2 LeNet-5 Adam vs
PyTorch; B3 MLPClassifier((100,)) vs scikit-learn; B4 the 40-point toy, one step, vs PyTorch and
scikit-learn; B5 GEMM vs NumPy's BLAS; B6 convolution layers vs PyTorch; B8-B10 (conv_workloads.py) conv
shapes, the CIFAR-shaped convnet and its training memory vs PyTorch; B11 ResNet-20 training steps (batch 64,
3x32x32) vs its PyTorch twin; B12 the lecture's 18-fit MLPClassifier grid (sklearn_grid.py) vs scikit-learn,
failing if any fit's n_iter_ differs; B7 the 2-thread/1-thread speed-up
of B1 and B2, each side timed at 1 and 2 threads back to back (--b7-pairs pairs, 15 by default), wall-clock
at both: the median of the pairs' ratios, with their quartiles. Each row: median time of >= 5 interleaved
runs after a warm-up, GFLOP/s, % of the peak measured here (the best 1-thread sgemm run of cnn and NumPy
on an L2-resident product, times the threads), speed = reference time / cnn time (> 1: cnn is faster),
and the process's peak RSS so far. At one thread the time is the thread's CPU time, so other processes
taking the core do not count (--wall: wall-clock); above one thread it is wall-clock (after letting the
other side's thread pool go idle), and on a shared 2-core machine it is as noisy as the machine is busy.
OMP_WAIT_POLICY is recorded with the results: leave it unset (PASSIVE costs a wake-up at every parallel
region, and LeNet-5's 2 threads then gain nothing)."""
import argparse
import json
import os
import platform
import resource
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import cnn
from cnn import _core

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conv_workloads  # noqa: E402
import table  # noqa: E402
import workloads  # noqa: E402

WORKLOADS = {**workloads.WORKLOADS, **conv_workloads.WORKLOADS}
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def set_threads(n):
    cnn.set_num_threads(n)
    torch.set_num_threads(n)


def measure_peak(repeats):
    """GFLOP/s one core reaches: the best run of cnn's and NumPy's sgemm on a product that stays in L2,
    timed in thread CPU time so that another process taking the core does not lower it."""
    with threadpool_limits(1):
        set_threads(1)
        a, b = np.ones((192, 256), np.float32), np.ones((256, 256), np.float32)
        c = np.empty((192, 256), np.float32)
        best = float("inf")
        for _ in range(3 * repeats):
            for fn in (_core.gemm, np.matmul):
                start = time.thread_time()
                for _ in range(50):
                    fn(a, b, out=c) if fn is np.matmul else fn(c, a, b)
                best = min(best, (time.thread_time() - start) / 50)
    return 2 * 192 * 256 * 256 / best / 1e9


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def finish(rows, threads, peak, clock):
    by_shape = {}
    for row in rows:
        row["threads"] = threads
        row["clock"] = clock
        row["gflops"] = row["flop"] / row["time_s"] / 1e9 if row["flop"] else 0.0  # B10's rows count MB, not FLOP
        row["pct_peak"] = 100 * row["gflops"] / (peak * threads)
        row["rss_mb"] = peak_rss_mb()
        by_shape.setdefault(row["shape"], []).append(row)
    for group in by_shape.values():
        ours = [r for r in group if r["impl"] == "cnn"]
        for r in group:
            if ours and r["impl"] != "cnn":
                r["speed"] = r["time_s"] / ours[0]["time_s"]
    return rows


def fmt(t):
    return f"{t * 1e6:9.1f} us" if t < 1e-2 else f"{t * 1e3:9.1f} ms" if t < 1 else f"{t:9.3f} s "


def print_rows(rows):
    for r in rows:
        speed = f"speed {r['speed']:.2f}x" if "speed" in r else ""
        print(f"  {r['workload']} t={r['threads']} {r['impl']:8s} {fmt(r['time_s'])} {r['gflops']:7.1f} GFLOP/s "
              f"{r['pct_peak']:5.1f}% peak  rss {r['rss_mb']:6.0f} MB  {speed}  {r['shape']}")


def machine(peak):
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "gemm_isa": _core._gemm_isa(),
            "peak_gflops_per_core": peak, "numpy": np.__version__, "torch": torch.__version__,
            "python": platform.python_version(), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--only", default=None, help="comma-separated workloads, e.g. B1,B5 (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller data, for a fast look")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (median; at least 5)")
    parser.add_argument("--b7-pairs", type=int, default=15,
                        help="B7: 1-thread/2-thread pairs per side (median of their ratios; at least 5)")
    parser.add_argument("--wall", action="store_true",
                        help="wall-clock time at 1 thread too (default: thread CPU time)")
    parser.add_argument("--markdown", action="store_true", help="print the README table from results/*.json")
    args = parser.parse_args()
    if args.markdown:
        print(table.markdown(table.load(RESULTS)))
        return
    if args.repeats < 5 or args.b7_pairs < 5:
        parser.error("--repeats and --b7-pairs must be at least 5: medians of fewer runs are noise on a shared machine")
    threads = [int(t) for t in args.threads.split(",")]
    only = [w.strip().upper() for w in args.only.split(",")] if args.only else list(WORKLOADS) + ["B7"]
    unknown = sorted(set(only) - set(WORKLOADS) - {"B7"})
    if unknown:
        parser.error(f"unknown workloads {unknown}; valid: {sorted(WORKLOADS) + ['B7']}")
    os.makedirs(RESULTS, exist_ok=True)
    peak = measure_peak(args.repeats)
    print(f"gemm isa {_core._gemm_isa()}, measured peak {peak:.1f} GFLOP/s per core; threads {threads}")
    results = {}
    for name in (w for w in only if w in WORKLOADS):
        rows = []
        for n in threads:
            with threadpool_limits(n):
                set_threads(n)
                clock = workloads.use_clock(n, args.wall)
                got = WORKLOADS[name](n, args.quick, args.repeats)
            if isinstance(got, str):
                print(f"{name}: skipped: {got}")
                break
            rows += finish(got, n, peak, clock)
            print_rows([r for r in rows if r["threads"] == n])
        if rows:
            results[name] = rows
            with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
                json.dump({"workload": name, "quick": args.quick, "machine": machine(peak), "rows": rows}, f, indent=1)
    if "B7" in only:
        rows = workloads.b7_scaling(args.quick, args.b7_pairs)
        for r in rows:
            print(f"  B7 {r['of']} {r['impl']:8s} 2 threads / 1 thread: {r['speedup']:.2f}x "
                  f"(quartiles {r['speedup_q1']:.2f}-{r['speedup_q3']:.2f} over {r['pairs']} pairs; medians "
                  f"{fmt(r['time_1'])} -> {fmt(r['time_2'])}, wall-clock both)")
        with open(os.path.join(RESULTS, "B7.json"), "w") as f:
            json.dump({"workload": "B7", "machine": machine(peak), "rows": rows}, f, indent=1)

if __name__ == "__main__":
    main()
