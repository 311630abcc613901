"""cnn's default thread count against one thread while another process keeps a core busy.

    PYTHONPATH=python python3 benchmarks/contention.py                    # cnn's adaptive count vs a fixed one
    PYTHONPATH=python python3 benchmarks/contention.py --idle             # the same without the competitor
    PYTHONPATH=python python3 benchmarks/contention.py --policies cnn,fixed,passive,spin=10000 --pairs 9

B1 (MLP 784-500-500-10 SGD epoch) and B2 (LeNet-5 Adam) from benchmarks/workloads.py, each timed at one
thread and at the default thread count back to back (the order swapped every pair), wall-clock, while
`python -c "while True: pass"` (started and stopped here, pinned nowhere) keeps one core busy. Printed per
policy and workload: the median of the pairs' ratios default/1 (above 1: the default count is slower
than one thread; the target with the competitor is at most 1.25), their quartiles, and each side's
median time. With --idle, 1/ratio is B7's 2-thread speed-up on a 2-CPU machine.

libgomp reads its wait policy (OMP_WAIT_POLICY, GOMP_SPINCOUNT) once, when it loads, so each policy lives
in a worker process of its own, started once; the workers take turns pair by pair, so a slow phase of a
shared machine falls on every policy alike. Policies: `cnn` (nothing set: libgomp's spin, and a fit caps
its threads at the cores other processes leave free, cnn/_contention.py), `fixed` (CNN_ADAPT_THREADS=0:
libgomp's spin at the count set, cnn before it adapted), `passive` (OMP_WAIT_POLICY=passive at the count
set), `spin=N` (GOMP_SPINCOUNT=N at the count set; libgomp spins ~12 ns a count here, and a worker's pool
spins that long after each of its pairs, while the next policy is timed: no active policy)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

FIXED = {"CNN_ADAPT_THREADS": "0"}
POLICY_ENV = {"cnn": {}, "fixed": FIXED, "passive": dict(FIXED, OMP_WAIT_POLICY="passive")}
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "CNN_ADAPT_THREADS")
WORKLOADS = ("B1", "B2")


def policy_env(name):
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES}
    if name.startswith("spin=") and name[5:].isdigit():
        return dict(env, GOMP_SPINCOUNT=name[5:], **FIXED)
    if name not in POLICY_ENV:
        raise SystemExit(f"contention.py: unknown policy {name!r}; valid: {sorted(POLICY_ENV)} or spin=N")
    return dict(env, **POLICY_ENV[name])


def worker(quick):
    """One policy's process: builds B1 and B2, warms each at both counts, then times one pair per line
    read from stdin (the workload's name, and 1 when the default count goes first), answering in JSON."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cnn
    import workloads

    default = cnn.get_num_threads()
    fits = {"B1": workloads.b1_setup(quick)[0], "B2": workloads.b2_setup(quick)[0]}
    for fit in fits.values():
        for n in (1, default):  # buffers allocated, the pool started
            cnn.set_num_threads(n)
            fit()
    print(json.dumps({"threads": default}), flush=True)
    for line in sys.stdin:
        name, default_first = line.split()
        times = {}
        for n in ((default, 1) if default_first == "1" else (1, default)):
            cnn.set_num_threads(n)
            start = time.perf_counter()
            fits[name]()
            times[n] = time.perf_counter() - start
        print(json.dumps([times[1], times[default]]), flush=True)


def start_worker(policy, quick):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker"] + (["--quick"] if quick else [])
    proc = subprocess.Popen(cmd, env=policy_env(policy), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, json.loads(proc.stdout.readline())["threads"]


def ask(proc, line):
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def report(policy, threads, name, pairs):
    one, default = [p[0] for p in pairs], [p[1] for p in pairs]
    ratios = [d / o for o, d in pairs]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(f"  {policy:12s} {name}: 1 thread {statistics.median(one):.3f} s, {threads} threads "
          f"{statistics.median(default):.3f} s, default/1 = {statistics.median(ratios):.2f}x "
          f"(quartiles {q1:.2f}-{q3:.2f})", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default="cnn,fixed", help="comma-separated policies (default cnn,fixed)")
    parser.add_argument("--idle", action="store_true", help="no competing process")
    parser.add_argument("--pairs", type=int, default=7, help="1-thread/default pairs per policy and workload")
    parser.add_argument("--quick", action="store_true", help="smaller data (benchmarks/workloads.py's quick sizes)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.quick)
    if args.pairs < 2:
        parser.error("--pairs must be at least 2 (quartiles)")
    policies = [p.strip() for p in args.policies.split(",")]
    for p in policies:
        policy_env(p)  # an unknown name stops here, before any timing
    workers, competitor = {}, None
    try:
        for p in policies:
            workers[p] = start_worker(p, args.quick)
        if not args.idle:
            competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        pairs = {(p, w): [] for p in policies for w in WORKLOADS}
        for i in range(args.pairs):
            for w in WORKLOADS:
                for p in policies:
                    pairs[p, w].append(ask(workers[p][0], f"{w} {i % 2}"))
    finally:
        if competitor:
            competitor.kill()
            competitor.wait()
        for proc, _ in workers.values():
            proc.stdin.close()
            proc.wait()
    print(f"{'idle' if args.idle else 'one core kept busy by another process'}; {os.cpu_count()} CPUs; "
          f"{args.pairs} pairs per policy and workload, taken in turn; wall-clock")
    for p in policies:
        for w in WORKLOADS:
            report(p, workers[p][1], w, pairs[p, w])


if __name__ == "__main__":
    main()
